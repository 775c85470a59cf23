//! A room's history as a node holds it: the board at the head of the order, the base snapshot,
//! and the ops after it.

use bytes::Bytes;
use kokuban_board::Board;
use kokuban_protocol::{List, Op, Position, RoomState, Seq, Sequenced, ServerMsg};

use super::{RoomSettings, frame};

/// When the tail is folded into a new base snapshot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompactAfter {
    /// Ops in the tail...
    pub ops: usize,
    /// ...or bytes they weigh.
    pub bytes: usize,
}

impl From<&RoomSettings> for CompactAfter {
    fn from(s: &RoomSettings) -> Self {
        Self {
            ops: s.compact_after_ops.max(1),
            bytes: s.compact_after_bytes.max(1),
        }
    }
}

/// The board of a room and how it got there.
///
/// Invariants: `board` is at `(epoch, head)`; `base` is the board's encoded snapshot at
/// `base_seq` of the same epoch; `tail` holds exactly the ops after `base_seq` up to `head`,
/// contiguous. So any member gets the room either as a replay of part of the tail or as `base`
/// plus the tail, and nothing in between is missing.
#[derive(Debug, Clone)]
pub(crate) struct History {
    board: Board,
    base: Bytes,
    base_seq: Seq,
    tail: Vec<Sequenced>,
    tail_bytes: usize,
    /// The last op applied emptied the board: its snapshot is tiny, compact at once.
    cleared: bool,
    compact_after: CompactAfter,
}

/// An op that does not continue the history at its head.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("op {got:?} does not follow the head {head:?}")]
pub(crate) struct OutOfOrder {
    pub head: Position,
    pub got: Position,
}

impl History {
    /// A new, empty history `epoch`.
    pub fn start(epoch: kokuban_protocol::Epoch, compact_after: CompactAfter) -> Self {
        Self::at(Board::at_start_of(epoch), compact_after)
    }

    /// The history whose base is `board`, which is at a position (every board built from a
    /// snapshot or for an epoch is), and no tail.
    fn at(board: Board, compact_after: CompactAfter) -> Self {
        let base = Bytes::from(board.snapshot());
        let base_seq = board.position().map_or(Seq(0), |p| p.seq);
        Self {
            board,
            base,
            base_seq,
            tail: Vec::new(),
            tail_bytes: 0,
            cleared: false,
            compact_after,
        }
    }

    /// The history whose base is the encoded snapshot `base`, which must be the board at
    /// `at` exactly; a snapshot that does not decode, or is of another place, is refused.
    pub fn from_snapshot(
        base: Bytes,
        at: Position,
        compact_after: CompactAfter,
    ) -> Result<Self, String> {
        let board = Board::from_snapshot(&base).map_err(|e| e.to_string())?;
        if board.position() != Some(at) {
            return Err(format!(
                "snapshot is at {:?}, expected {at:?}",
                board.position()
            ));
        }
        Ok(Self {
            board,
            base,
            base_seq: at.seq,
            tail: Vec::new(),
            tail_bytes: 0,
            cleared: false,
            compact_after,
        })
    }

    /// The board at the head.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// Where the head is.
    pub fn position(&self) -> Position {
        self.board
            .position()
            .unwrap_or_else(|| unreachable!("a history's board always has a position"))
    }

    /// The history's id.
    pub fn epoch(&self) -> kokuban_protocol::Epoch {
        self.position().epoch
    }

    /// The last op applied.
    pub fn head(&self) -> Seq {
        self.position().seq
    }

    /// Ops in the tail (after the base snapshot).
    #[cfg(test)]
    pub fn tail_len(&self) -> usize {
        self.tail.len()
    }

    /// Applies the op that follows the head and appends it to the tail. `weight`: the bytes it
    /// costs to keep and send (its encoded frame), counted toward compaction.
    pub fn apply(&mut self, op: Sequenced, weight: usize) -> Result<(), OutOfOrder> {
        let head = self.position();
        if op.epoch != head.epoch || op.seq != head.seq.next() {
            return Err(OutOfOrder {
                head,
                got: Position {
                    epoch: op.epoch,
                    seq: op.seq,
                },
            });
        }
        if let Err(e) = self.board.apply_sequenced(&op) {
            unreachable!("the board follows the head, checked above: {e}");
        }
        self.cleared = matches!(op.op, Op::Clear);
        self.tail_bytes += weight;
        self.tail.push(op);
        Ok(())
    }

    /// Applies the op that follows the head, like [`History::apply`], and returns its frame:
    /// encoded once, for every member it goes to (and the store).
    pub fn append(&mut self, op: Sequenced) -> Result<Bytes, OutOfOrder> {
        let msg = ServerMsg::Op(op);
        let op_frame = frame(&msg);
        let ServerMsg::Op(op) = msg else {
            unreachable!("built as an op just above")
        };
        self.apply(op, op_frame.len())?;
        Ok(op_frame)
    }

    /// Whether the tail should be folded into a new base: after a Clear (the board is empty,
    /// its snapshot tiny, everything before it irrelevant), or once the tail outgrows its
    /// bounds, so that storage and join time follow the board's content, not its history.
    pub fn compaction_due(&self) -> bool {
        self.cleared
            || self.tail.len() >= self.compact_after.ops
            || self.tail_bytes >= self.compact_after.bytes
    }

    /// Makes the board at the head the new base and empties the tail; returns the base, for
    /// the backend to make durable.
    pub fn compact(&mut self) -> Bytes {
        self.base = Bytes::from(self.board.snapshot());
        self.base_seq = self.head();
        self.tail.clear();
        self.tail_bytes = 0;
        self.cleared = false;
        self.base.clone()
    }

    /// Makes the board as it is the start (seq 0) of the new history `epoch`: for when the
    /// history that led here may be incomplete, so clients take it as a fresh snapshot.
    /// Returns the new base.
    pub fn begin_epoch(&mut self, epoch: kokuban_protocol::Epoch) -> Bytes {
        self.board.begin_epoch(epoch);
        self.compact()
    }

    /// What a member that was at `resume` must apply to be at the head: exactly the ops it
    /// missed when the tail still holds them all, otherwise the base snapshot and the tail.
    pub fn state_for(&self, resume: Option<Position>) -> RoomState {
        let head = self.position();
        match resume {
            Some(p) if p.epoch == head.epoch && p.seq >= self.base_seq && p.seq <= head.seq => {
                let skip = (p.seq.0 - self.base_seq.0) as usize;
                RoomState::Replay {
                    ops: List::from(self.tail[skip..].to_vec()),
                }
            }
            _ => self.snapshot_state(),
        }
    }

    /// The base snapshot and the tail: the whole board, for a member with nothing of it.
    pub fn snapshot_state(&self) -> RoomState {
        RoomState::Snapshot {
            board: kokuban_protocol::Bytes(self.base.to_vec()),
            ops: List::from(self.tail.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequencer::room::fixtures::stroke;
    use kokuban_protocol::{Epoch, MemberId};

    const E: Epoch = Epoch(7);

    fn limits(ops: usize, bytes: usize) -> CompactAfter {
        CompactAfter { ops, bytes }
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
            RoomState::Replay { ops } => (from.unwrap().clone(), ops),
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
}
