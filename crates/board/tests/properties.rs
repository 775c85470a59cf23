//! The board is a deterministic, idempotent state machine, and its snapshots are faithful.

use kokuban_board::{Board, Change, SequenceError};
use kokuban_protocol::arbitrary::{member_id, op};
use kokuban_protocol::{Epoch, MemberId, Op, Seq, Sequenced};
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
