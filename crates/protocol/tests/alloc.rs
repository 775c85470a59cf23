//! Decoding allocates in step with its input: a short frame cannot make the decoder reserve
//! much more than its own size, whatever lengths it declares.
//!
//! One test per binary, so that no other thread allocates while it measures.

use std::alloc::System;

use kokuban_protocol::arbitrary::{client_msg, server_msg};
use kokuban_protocol::limits::PROTOCOL_VERSION;
use kokuban_protocol::{decode_client, decode_server, encode_client, encode_server};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allowed allocation for decoding `len` input bytes: every decoded element costs at least one
/// input byte and at most a few dozen bytes of memory (a point is 12 bytes from 3 input bytes,
/// a Sequenced op about 100 bytes from ~20), plus a small fixed overhead.
fn budget(len: usize) -> usize {
    2048 + 48 * len
}

fn allocated_while(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    region.change().bytes_allocated
}

#[test]
fn decoding_allocates_in_step_with_the_input() {
    // Frames that declare huge collections but hold nothing: a 2^32-element erase list, a
    // Welcome with 2^60 ops, a snapshot of 2^40 bytes, a string of 2^31 bytes, a batch of
    // points by handle that announces 512 points in its first two bytes.
    let crafted: Vec<Vec<u8>> = vec![
        vec![PROTOCOL_VERSION, 1, 4, 0xff, 0xff, 0xff, 0xff, 0x0f],
        vec![
            PROTOCOL_VERSION,
            0,
            0,
            0,
            1,
            0,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x0f,
        ],
        vec![
            PROTOCOL_VERSION,
            0,
            0,
            0,
            1,
            1,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x1f,
        ],
        vec![PROTOCOL_VERSION, 0, 0xff, 0xff, 0xff, 0xff, 0x07],
        vec![PROTOCOL_VERSION, 5, 0, 0xff, 0xff, 0xff, 0xff, 0x07],
        vec![0xf0, 0, 0x40, 0],
    ];
    for frame in &crafted {
        let used = allocated_while(|| {
            let _ = decode_client(frame);
            let _ = decode_server(frame);
        });
        assert!(used <= budget(frame.len()), "{used} bytes for {frame:?}");
    }

    // Random bytes, and valid frames cut short (their declared lengths exceed what they hold).
    let mut runner = TestRunner::new(Config::with_cases(3000));
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..300), |bytes| {
            let used = allocated_while(|| {
                let _ = decode_client(&bytes);
                let _ = decode_server(&bytes);
            });
            prop_assert!(
                used <= budget(bytes.len()),
                "{} bytes for {:?}",
                used,
                bytes
            );
            Ok(())
        })
        .unwrap();
    let frames = (client_msg(), server_msg(), any::<prop::sample::Index>());
    runner
        .run(&frames, |(c, s, cut)| {
            for full in [encode_client(&c), encode_server(&s)] {
                let frame = &full[..cut.index(full.len())];
                let used = allocated_while(|| {
                    let _ = decode_client(frame);
                    let _ = decode_server(frame);
                });
                prop_assert!(
                    used <= budget(frame.len()),
                    "{} bytes for {:?}",
                    used,
                    frame
                );
            }
            Ok(())
        })
        .unwrap();
}
