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
mod tests;
