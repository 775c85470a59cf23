use super::*;
use crate::sequencer::room::fixtures::stroke;
use kokuban_protocol::{Epoch, MemberId, Point, RoomState, StrokeId};

const E: Epoch = Epoch(7);

fn limits(ops: usize, bytes: usize) -> CompactAfter {
    CompactAfter {
        ops,
        bytes,
        budget: Budget::UNLIMITED,
        checkpoint_every_ms: 0,
    }
}

fn op(seq: u64, op: Op) -> Sequenced {
    Sequenced {
        epoch: E,
        seq: Seq(seq),
        author: MemberId(1),
        op,
    }
}

fn rebuilt(state: &RoomState, from: Option<&Board>) -> Board {
    let (mut board, ops) = match state {
        RoomState::Snapshot { board, ops } => (Board::from_snapshot(&board.0).unwrap(), ops),
        RoomState::Replay { ops } | RoomState::InParts { ops } => (from.unwrap().clone(), ops),
    };
    for s in ops.iter() {
        board.apply_sequenced(s).unwrap();
    }
    board
}

#[test]
fn only_the_op_after_the_head_is_applied() {
    let mut h = History::start(E, limits(100, usize::MAX));
    h.apply(op(1, stroke(1)), 40).unwrap();
    assert!(h.apply(op(1, stroke(2)), 40).is_err(), "a repeat");
    assert!(h.apply(op(3, stroke(3)), 40).is_err(), "a gap");
    let other = Sequenced {
        epoch: Epoch(8),
        ..op(2, stroke(4))
    };
    assert!(h.apply(other, 40).is_err(), "another history");
    assert_eq!((h.head(), h.board().len(), h.tail_len()), (Seq(1), 1, 1));
}

#[test]
fn a_member_gets_exactly_what_it_missed_or_the_whole_board() {
    let mut h = History::start(E, limits(100, usize::MAX));
    for n in 1..=5 {
        h.apply(op(n, stroke(n as u128)), 40).unwrap();
    }
    let RoomState::Replay { ops } = h.state_for(Some(Position {
        epoch: E,
        seq: Seq(3),
    })) else {
        panic!("replay expected")
    };
    let seqs: Vec<_> = ops.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, vec![Seq(4), Seq(5)]);
    let at_head = h.state_for(Some(h.position()));
    assert!(matches!(at_head, RoomState::Replay { ops } if ops.is_empty()));
    // Ahead of the head, of another history, or nowhere: the whole board.
    for resume in [
        Some(Position {
            epoch: E,
            seq: Seq(9),
        }),
        Some(Position {
            epoch: Epoch(8),
            seq: Seq(1),
        }),
        None,
    ] {
        let state = h.state_for(resume);
        assert!(matches!(state, RoomState::Snapshot { .. }), "{resume:?}");
        assert_eq!(rebuilt(&state, None).len(), 5);
    }
}

#[test]
fn compaction_is_due_by_count_by_bytes_and_after_a_clear() {
    let mut by_count = History::start(E, limits(3, usize::MAX));
    for n in 1..=2 {
        by_count.apply(op(n, stroke(n as u128)), 10).unwrap();
    }
    assert!(!by_count.compaction_due());
    by_count.apply(op(3, stroke(3)), 10).unwrap();
    assert!(by_count.compaction_due());

    let mut by_bytes = History::start(E, limits(100, 100));
    by_bytes.apply(op(1, stroke(1)), 60).unwrap();
    assert!(!by_bytes.compaction_due());
    by_bytes.apply(op(2, stroke(2)), 60).unwrap();
    assert!(by_bytes.compaction_due());

    let mut cleared = History::start(E, limits(100, usize::MAX));
    cleared.apply(op(1, stroke(1)), 10).unwrap();
    cleared.apply(op(2, Op::Clear), 10).unwrap();
    assert!(cleared.compaction_due());
    cleared.compact();
    assert!(!cleared.compaction_due());
}

#[test]
fn a_full_board_refuses_what_would_grow_it_and_takes_what_makes_room() {
    let mut h = History::start(
        E,
        CompactAfter {
            budget: Budget {
                items: 2,
                ..Budget::UNLIMITED
            },
            ..limits(100, usize::MAX)
        },
    );
    h.apply(op(1, stroke(1)), 40).unwrap();
    assert!(h.admits(&stroke(2)).is_ok());
    h.apply(op(2, stroke(2)), 40).unwrap();
    assert_eq!(h.admits(&stroke(3)), Err(BoardFull));
    assert!(h.admits(&Op::Clear).is_ok(), "clearing makes room");
    h.apply(op(3, Op::Clear), 10).unwrap();
    h.compact();
    assert!(
        h.admits(&stroke(3)).is_ok(),
        "counted afresh at the new base"
    );

    let few_points = CompactAfter {
        budget: Budget {
            points: 3,
            ..Budget::UNLIMITED
        },
        ..limits(100, usize::MAX)
    };
    let mut p = History::start(E, few_points);
    p.apply(op(1, stroke(1)), 40).unwrap();
    let id = StrokeId(uuid::Uuid::from_u128(1));
    let pts = |n: usize| {
        let points = kokuban_protocol::Points::new(vec![Point::new(0, 0, 0).unwrap(); n]);
        Op::StrokePoints(kokuban_protocol::StrokePoints::new(id, 1, points.unwrap()).unwrap())
    };
    assert!(p.admits(&pts(2)).is_ok());
    assert_eq!(p.admits(&pts(3)), Err(BoardFull));
}

#[test]
fn a_large_board_compacts_in_proportion_to_what_changed() {
    let mut h = History::start(E, limits(1, 1));
    // A base of some size: many strokes, compacted once.
    for n in 1..=400 {
        h.apply(op(n, stroke(n as u128)), 40).unwrap();
    }
    let base = h.compact().len();
    assert!(base > 8 * 40, "base of {base} bytes");
    // Small ops past the usual thresholds do not re-encode it until they weigh an eighth.
    let mut seq = 400;
    let mut weight = 0;
    while weight * 8 < base {
        seq += 1;
        assert!(!h.compaction_due() || weight == 0);
        h.apply(op(seq, stroke(seq as u128)), 40).unwrap();
        weight += 40;
    }
    assert!(h.compaction_due());
}

#[test]
fn a_large_board_goes_out_in_shared_parts_that_make_up_its_snapshot() {
    let mut h = History::start(E, limits(100_000, usize::MAX));
    let mut seq = 0;
    while h.compact().len() <= 2 * PART_BYTES {
        for _ in 0..500 {
            seq += 1;
            h.apply(op(seq, stroke(seq as u128)), 40).unwrap();
        }
    }
    let RoomState::InParts { ops } = h.state_for(None) else {
        panic!("a large board comes in parts")
    };
    assert!(ops.is_empty());
    let parts = h.parts();
    assert!(parts.frames().count() >= 3);
    let mut snapshot = Vec::new();
    for [head, bytes] in parts.frames() {
        // Sliced from the base the room keeps, not copied.
        assert!(h.base.as_ptr_range().contains(&bytes.as_ptr()));
        assert!(bytes.len() <= PART_BYTES);
        let Ok(ServerMsg::BoardPart(part)) =
            kokuban_protocol::decode_server(&[head, bytes].concat())
        else {
            panic!("a BoardPart frame")
        };
        snapshot.extend(part.0);
    }
    assert_eq!(snapshot, h.base);
    let board = Board::from_snapshot(&snapshot).unwrap();
    assert_eq!(board.len(), seq as usize);
    // A small board still comes whole, in the Welcome itself.
    let small = History::start(E, limits(10, 10));
    assert!(matches!(small.state_for(None), RoomState::Snapshot { .. }));
}

#[test]
fn joiners_at_one_head_share_one_encoding_of_the_board() {
    let mut h = History::start(E, limits(100_000, usize::MAX));
    for seq in 1..=50 {
        h.apply(op(seq, stroke(seq as u128)), 40).unwrap();
    }
    let (a, _) = h.welcome_for(None);
    let (b, _) = h.welcome_for(None);
    assert_eq!(a.as_ptr(), b.as_ptr(), "one encoding, shared");
    // The head moves: the next joiner gets the board with the new op, encoded afresh.
    h.apply(op(51, stroke(51)), 40).unwrap();
    let (c, _) = h.welcome_for(None);
    assert_ne!(c, a);
    assert_eq!(
        rebuilt(&kokuban_protocol::decode_state(&c).unwrap(), None).len(),
        51
    );
    // So after a compaction, whose base holds what the tail did.
    h.compact();
    let (d, _) = h.welcome_for(None);
    let RoomState::Snapshot { ops, .. } = kokuban_protocol::decode_state(&d).unwrap() else {
        panic!("a small board comes whole")
    };
    assert!(ops.is_empty());
    // A member that missed a little gets only that, encoded for it alone.
    let (e, parts) = h.welcome_for(Some(h.position()));
    assert!(parts.is_none());
    assert!(matches!(
        kokuban_protocol::decode_state(&e).unwrap(),
        RoomState::Replay { ops } if ops.is_empty()
    ));
}

#[test]
fn compaction_keeps_the_board_and_moves_the_base_to_the_head() {
    let mut h = History::start(E, limits(100, usize::MAX));
    for n in 1..=4 {
        h.apply(op(n, stroke(n as u128)), 40).unwrap();
    }
    let old = h.clone();
    let base = h.compact();
    assert_eq!(h.tail_len(), 0);
    let restored = History::from_snapshot(base, h.position(), limits(100, usize::MAX))
        .expect("the base is the board at the head");
    assert_eq!(restored.board().len(), 4);
    // A member resuming from before the new base gets the whole board...
    let before = Position {
        epoch: E,
        seq: Seq(2),
    };
    assert!(matches!(
        h.state_for(Some(before)),
        RoomState::Snapshot { .. }
    ));
    // ...the same board the old history would have replayed to it.
    let replayed = rebuilt(&old.state_for(None), None);
    assert_eq!(
        rebuilt(&h.state_for(Some(before)), None).len(),
        replayed.len()
    );
    // A snapshot claimed for another place is refused.
    let wrong = Position {
        epoch: E,
        seq: Seq(3),
    };
    assert!(History::from_snapshot(h.compact(), wrong, limits(1, 1)).is_err());
}

#[test]
fn a_new_epoch_keeps_the_board_and_starts_over_at_seq_zero() {
    let mut h = History::start(E, limits(100, usize::MAX));
    h.apply(op(1, stroke(1)), 40).unwrap();
    h.begin_epoch(Epoch(9));
    assert_eq!(
        h.position(),
        Position {
            epoch: Epoch(9),
            seq: Seq(0)
        }
    );
    assert_eq!(h.board().len(), 1);
    let old_place = Position {
        epoch: E,
        seq: Seq(1),
    };
    assert!(matches!(
        h.state_for(Some(old_place)),
        RoomState::Snapshot { .. }
    ));
}
