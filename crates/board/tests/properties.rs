//! The board is a deterministic, idempotent state machine, and its snapshots are faithful.

use kokuban_board::{Board, Change, SequenceError};
use kokuban_protocol::arbitrary::{member_id, op};
use kokuban_protocol::{Epoch, MemberId, Op, Points, Seq, Sequenced, StrokePoints};
use proptest::collection::vec;
use proptest::prelude::*;

const EPOCH: Epoch = Epoch(42);

fn ops() -> impl Strategy<Value = Vec<(MemberId, Op)>> {
    vec((member_id(), op()), 0..80)
}

fn sequence(ops: &[(MemberId, Op)]) -> Vec<Sequenced> {
    ops.iter()
        .enumerate()
        .map(|(i, (author, op))| Sequenced {
            epoch: EPOCH,
            seq: Seq(i as u64 + 1),
            author: *author,
            op: op.clone(),
        })
        .collect()
}

fn replay(board: &mut Board, ops: &[Sequenced]) {
    for s in ops {
        board.apply_sequenced(s).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn every_op_applied_twice_in_a_row_is_applied_once(ops in ops()) {
        let mut once = Board::new();
        let mut twice = Board::new();
        for (author, op) in &ops {
            once.apply(*author, op);
            twice.apply(*author, op);
            prop_assert_eq!(twice.apply(*author, op), Change::None, "{:?}", op);
        }
        prop_assert_eq!(&once, &twice);
        prop_assert_eq!(once.snapshot(), twice.snapshot());
    }

    #[test]
    fn a_sequence_applied_twice_or_with_replayed_overlaps_equals_it_applied_once(
        ops in ops(),
        overlaps in vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..6),
    ) {
        let seq = sequence(&ops);
        let mut once = Board::at_start_of(EPOCH);
        replay(&mut once, &seq);

        let mut twice = Board::at_start_of(EPOCH);
        replay(&mut twice, &seq);
        replay(&mut twice, &seq);
        prop_assert_eq!(&once, &twice);

        // Deliver in chunks where each chunk re-sends a stretch already applied, like a node
        // that re-reads a range from the log after a reconnect.
        let mut interleaved = Board::at_start_of(EPOCH);
        let mut applied = 0;
        for (back, ahead) in overlaps {
            let from = if applied == 0 { 0 } else { back.index(applied) };
            let to = (applied + 1 + ahead.index(seq.len() + 1)).min(seq.len());
            replay(&mut interleaved, &seq[from..to]);
            applied = applied.max(to);
        }
        replay(&mut interleaved, &seq[applied.min(seq.len())..]);
        prop_assert_eq!(&once, &interleaved);
    }

    #[test]
    fn a_snapshot_round_trips_and_continues_like_the_original(ops in ops(), split in any::<prop::sample::Index>()) {
        let seq = sequence(&ops);
        let at = split.index(seq.len() + 1);
        let mut board = Board::at_start_of(EPOCH);
        replay(&mut board, &seq[..at]);

        let bytes = board.snapshot();
        let mut restored = Board::from_snapshot(&bytes).unwrap();
        prop_assert_eq!(&restored, &board);
        prop_assert_eq!(restored.snapshot(), bytes);

        replay(&mut board, &seq[at..]);
        replay(&mut restored, &seq[at..]);
        prop_assert_eq!(&restored, &board);
    }

    #[test]
    fn arbitrary_bytes_are_never_a_panic(bytes in vec(any::<u8>(), 0..400)) {
        if let Ok(board) = Board::from_snapshot(&bytes) {
            prop_assert_eq!(Board::from_snapshot(&board.snapshot()).unwrap(), board);
        }
    }

    #[test]
    fn corrupted_snapshots_are_never_a_panic(
        ops in ops(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut board = Board::at_start_of(EPOCH);
        replay(&mut board, &sequence(&ops));
        let mut bytes = board.snapshot();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = Board::from_snapshot(&bytes);
    }
}

#[test]
fn out_of_order_and_foreign_ops_are_refused_not_applied() {
    let mut board = Board::at_start_of(EPOCH);
    let op = |seq: u64, epoch: Epoch| Sequenced {
        epoch,
        seq: Seq(seq),
        author: MemberId(1),
        op: Op::Clear,
    };
    assert_eq!(board.apply_sequenced(&op(1, EPOCH)), Ok(Change::None));
    assert_eq!(
        board.apply_sequenced(&op(3, EPOCH)),
        Err(SequenceError::Gap {
            expected: Seq(2),
            got: Seq(3)
        })
    );
    assert!(matches!(
        board.apply_sequenced(&op(2, Epoch(7))),
        Err(SequenceError::Epoch { .. })
    ));
    assert!(matches!(
        Board::new().apply_sequenced(&op(1, EPOCH)),
        Err(SequenceError::Epoch { board: None, .. })
    ));
    assert_eq!(board.position().unwrap().seq, Seq(1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// What the room relays by handle, a member's board at the same op reads back as the op
    /// itself, and a member joining from a snapshot midway reads it the same.
    #[test]
    fn ops_relayed_by_handle_come_back_as_sent(
        ops in ops(),
        join in any::<prop::sample::Index>(),
    ) {
        let mut seq = sequence(&ops);
        let joins_at = join.index(seq.len() + 1);
        let mut room = Board::at_start_of(EPOCH);
        let mut short = 0;
        let mut member = Board::at_start_of(EPOCH);
        let mut joiner: Option<Board> = None;
        for (i, s) in seq.iter_mut().enumerate() {
            // Mostly batches that continue their stroke, by its author, as drawing sends them.
            if let Op::StrokePoints(b) = &mut s.op
                && let Some(stroke) = room.get(&b.id)
                && i % 4 != 0
            {
                let points = Points::new(b.points.as_slice().to_vec()).unwrap();
                if let Ok(next) = StrokePoints::new(b.id, stroke.points.len() as u32, points) {
                    *b = next;
                    s.author = stroke.author;
                }
            }
            let s = &*s;
            if i == joins_at {
                joiner = Some(Board::from_snapshot(&room.snapshot()).unwrap());
            }
            if let Some(live) = room.live_points(s) {
                short += 1;
                prop_assert_eq!(&member.expand(&live).unwrap(), s);
                if let Some(j) = &joiner {
                    prop_assert_eq!(&j.expand(&live).unwrap(), s);
                }
            }
            room.apply_sequenced(s).unwrap();
            member.apply_sequenced(s).unwrap();
            if let Some(j) = &mut joiner {
                j.apply_sequenced(s).unwrap();
            }
        }
        SHORT.fetch_add(short, std::sync::atomic::Ordering::Relaxed);
    }
}

static SHORT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn relays_by_handle_are_tried() {
    ops_relayed_by_handle_come_back_as_sent();
    assert!(SHORT.load(std::sync::atomic::Ordering::Relaxed) > 100);
}
