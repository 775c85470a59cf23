//! A room's history as a node holds it: the board at the head of the order, the base snapshot,
//! and the ops after it.

use std::sync::OnceLock;

use bytes::Bytes;
use kokuban_board::Board;
use kokuban_protocol::{
    MemberId, Op, Position, Seq, Sequenced, ServerMsg, StateRef, board_part_head, encode_state,
};

use super::authors::Authors;
use super::checkpoints::{Due, Schedule};
use super::settings::Budget;
use super::{RoomSettings, frame};

/// When the tail is folded into a new base snapshot, and what the board may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompactAfter {
    /// Ops in the tail...
    pub ops: usize,
    /// ...or bytes they weigh.
    pub bytes: usize,
    /// What the board may hold.
    pub budget: Budget,
    /// A version of the board is kept at least this often (ms) while it is drawn in.
    pub checkpoint_every_ms: u64,
}

impl From<&RoomSettings> for CompactAfter {
    fn from(s: &RoomSettings) -> Self {
        Self {
            ops: s.compact_after_ops.max(1),
            bytes: s.compact_after_bytes.max(1),
            budget: s.budget,
            checkpoint_every_ms: s.checkpoints.every.as_millis() as u64,
        }
    }
}

/// The largest part of a snapshot sent as one frame. A snapshot larger than this goes out as
/// parts sliced from the snapshot the room keeps and shared by every joiner, so a joiner that
/// does not read pins a fragment of one part in its connection's write buffer, never a board.
pub(crate) const PART_BYTES: usize = 64 * 1024;

/// The base snapshot as `BoardPart` frames, each as its head and its bytes, a slice of the
/// base: no copy of the board is made to send it, whoever joins.
#[derive(Debug, Clone)]
pub struct Parts {
    base: Bytes,
}

impl Parts {
    /// The frames in order, each as the pieces of one message.
    pub fn frames(&self) -> impl Iterator<Item = [Bytes; 2]> + '_ {
        (0..self.base.len()).step_by(PART_BYTES).map(|at| {
            let part = self.base.slice(at..self.base.len().min(at + PART_BYTES));
            [Bytes::from(board_part_head(part.len())), part]
        })
    }

    /// The frames in order, each whole (for a queue that takes whole frames).
    pub fn whole_frames(&self) -> Vec<Bytes> {
        self.frames().map(|f| Bytes::from(f.concat())).collect()
    }
}

/// The board holds as much as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this board is full")]
pub(crate) struct BoardFull;

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
    /// The op numbers applied, per author.
    authors: Authors,
    /// Items and points on the board, tombstones included (exact at each base, counted up
    /// since).
    items: usize,
    points: usize,
    /// The state of a Welcome for a member with nothing of the board (the base, or the parts
    /// that carry it, and the tail), encoded at the first such Welcome after the head moves.
    whole: OnceLock<Bytes>,
    /// When the next version of the board is kept.
    versions: Schedule,
}

/// The frames of an op appended to the history ([`History::append`]), each encoded once.
pub(crate) struct Frames {
    /// The op in full, as the store keeps it.
    pub stored: Bytes,
    /// The op as members are sent it live: a batch of points by handle, when it can be.
    pub live: Bytes,
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
            authors: Authors::default(),
            items: 0,
            points: 0,
            whole: OnceLock::new(),
            versions: Schedule::every(compact_after.checkpoint_every_ms),
        }
        .counted()
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
            authors: Authors::default(),
            items: 0,
            points: 0,
            whole: OnceLock::new(),
            versions: Schedule::every(compact_after.checkpoint_every_ms),
        }
        .counted())
    }

    /// With the board's items and points counted.
    fn counted(mut self) -> Self {
        self.items = self.board.all_strokes().count();
        self.points = self.board.point_count();
        self
    }

    /// Whether the board can take `op`: an op that adds items or points to a board at its
    /// budget is refused. Others (erasing, clearing, moving) always pass, so a full board can
    /// be made room on.
    pub fn admits(&self, op: &Op) -> Result<(), BoardFull> {
        let (items, points) = grows(op);
        if items == 0 && points == 0 {
            return Ok(());
        }
        let budget = self.compact_after.budget;
        let bytes = self.base.len().saturating_add(self.tail_bytes);
        if self.items + items > budget.items
            || self.points + points > budget.points
            || bytes > budget.bytes
        {
            return Err(BoardFull);
        }
        Ok(())
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

    /// The version of the board to keep before `op` by `author` is applied at `now_ms` (ms
    /// since the Unix epoch), when one is due: before a Clear, or once an interval of drawing
    /// has passed since the last one (see [`Schedule`]).
    pub fn checkpoint_before(&mut self, author: MemberId, op: &Op, now_ms: u64) -> Option<Due> {
        let at = self.position();
        let live = self.board.len();
        let (reason, authors, items) = self.versions.before(at, author, op, now_ms, live)?;
        Some(Due {
            at,
            reason,
            authors,
            items,
            board: Bytes::from(self.board.snapshot()),
        })
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
        let (items, points) = grows(&op.op);
        self.items += items;
        self.points += points;
        self.tail_bytes += weight;
        self.tail.push(op);
        self.whole = OnceLock::new();
        Ok(())
    }

    /// Applies the op that follows the head, like [`History::apply`], records it as op `n` of
    /// its author, and returns its frames, each encoded once: in full for the store, and as
    /// every member it goes to is sent it (a batch of points by handle, when it can be).
    pub fn append(&mut self, op: Sequenced, n: u64) -> Result<Frames, OutOfOrder> {
        let (seq, author) = (op.seq, op.author);
        // Members' boards are where this one is now, before the op.
        let live = self
            .board
            .live_points(&op)
            .map(|l| frame(&ServerMsg::Points(l)));
        let msg = ServerMsg::Op(op);
        let stored = frame(&msg);
        let ServerMsg::Op(op) = msg else {
            unreachable!("built as an op just above")
        };
        self.apply(op, stored.len())?;
        self.authors.record(seq, author, n);
        Ok(Frames {
            live: live.unwrap_or_else(|| stored.clone()),
            stored,
        })
    }

    /// The op numbers applied, per author.
    pub fn authors(&self) -> &Authors {
        &self.authors
    }

    /// The op numbers applied, to record those of ops applied without one.
    pub fn authors_mut(&mut self) -> &mut Authors {
        &mut self.authors
    }

    /// Whether the tail should be folded into a new base: after a Clear (the board is empty,
    /// its snapshot tiny, everything before it irrelevant), or once the tail outgrows its
    /// bounds, so that storage and join time follow the board's content, not its history.
    ///
    /// On a large board the tail must also weigh an eighth of the base: re-encoding the board
    /// then costs at most eight times what changed, however large the board.
    pub fn compaction_due(&self) -> bool {
        let grown = self.tail.len() >= self.compact_after.ops
            || self.tail_bytes >= self.compact_after.bytes;
        self.cleared || (grown && self.tail_bytes.saturating_mul(8) >= self.base.len())
    }

    /// Makes the board at the head the new base and empties the tail; returns the base, for
    /// the backend to make durable.
    pub fn compact(&mut self) -> Bytes {
        self.base = Bytes::from(self.board.snapshot());
        self.base_seq = self.head();
        self.tail.clear();
        self.tail_bytes = 0;
        self.cleared = false;
        self.items = self.board.all_strokes().count();
        self.points = self.board.point_count();
        self.whole = OnceLock::new();
        self.base.clone()
    }

    /// Makes the board as it is the start (seq 0) of the new history `epoch`: for when the
    /// history that led here may be incomplete, so clients take it as a fresh snapshot.
    /// Returns the new base.
    pub fn begin_epoch(&mut self, epoch: kokuban_protocol::Epoch) -> Bytes {
        self.board.begin_epoch(epoch);
        self.authors.forget_places();
        self.compact()
    }

    /// What a member that was at `resume` must apply to be at the head: exactly the ops it
    /// missed when the tail still holds them all, otherwise the base snapshot and the tail.
    #[cfg(test)]
    pub fn state_for(&self, resume: Option<Position>) -> kokuban_protocol::RoomState {
        let (state, _) = self.welcome_for(resume);
        kokuban_protocol::decode_state(&state).expect("a state encoded here decodes")
    }

    /// The ops a member that was at `resume` missed, when the tail still holds them all.
    fn missed(&self, resume: Option<Position>) -> Option<&[Sequenced]> {
        let head = self.position();
        match resume {
            Some(p) if p.epoch == head.epoch && p.seq >= self.base_seq && p.seq <= head.seq => {
                Some(&self.tail[(p.seq.0 - self.base_seq.0) as usize..])
            }
            _ => None,
        }
    }

    /// What a member that was at `resume` must apply to be at the head, encoded for its
    /// Welcome ([`kokuban_protocol::encode_welcome_around`]), with the parts to send before
    /// the Welcome when the board comes in parts. The whole board is encoded once per head
    /// and shared by every member that joins there: a class joining a large board at once
    /// costs one copy of it, not one each.
    pub fn welcome_for(&self, resume: Option<Position>) -> (Bytes, Option<Parts>) {
        if let Some(ops) = self.missed(resume) {
            return (Bytes::from(encode_state(StateRef::Replay { ops })), None);
        }
        let in_parts = self.base.len() > PART_BYTES;
        let whole = self.whole.get_or_init(|| {
            let ops = &self.tail[..];
            Bytes::from(encode_state(if in_parts {
                StateRef::InParts { ops }
            } else {
                StateRef::Snapshot {
                    board: &self.base,
                    ops,
                }
            }))
        });
        (whole.clone(), in_parts.then(|| self.parts()))
    }

    /// The base snapshot as `BoardPart` frames, for a Welcome whose state is in parts.
    pub fn parts(&self) -> Parts {
        Parts {
            base: self.base.clone(),
        }
    }
}

/// The items and points an op adds to a board when it applies.
fn grows(op: &Op) -> (usize, usize) {
    match op {
        Op::StrokeBegin { .. } | Op::Text { .. } => (1, 1),
        Op::StrokePoints(batch) => (0, batch.points.len()),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
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
}
