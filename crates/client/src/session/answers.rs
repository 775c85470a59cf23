//! How the server's answers settle our ops: the Welcome (what the last connection left in
//! doubt), Acks, and refusals, each answering the lowest-numbered op on the wire.

use kokuban_board::{Board, SnapshotError};
use kokuban_protocol::{
    Ack, Capability, ErrorCode, ErrorFrame, Op, PlacedImage, RoomState, Sequenced, Welcome,
};

use super::bridge::{self, op_ids};
use super::{
    BOARD_FULL_TOAST, CLEAR_REFUSED_TOAST, Fate, Notice, READ_ONLY_TOAST, Redraw, Session,
    same_content,
};
use crate::spatial::IndexedBoard;

/// What became of a decided op of ours, as far as this tab can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Applied,
    Refused,
    Unknown,
}

impl Session {
    pub(super) fn welcome(&mut self, w: Welcome) -> Vec<Notice> {
        let Welcome {
            member,
            author,
            capability,
            epoch,
            state,
            members,
            decided,
        } = w;
        let mut board = self.confirmed.clone();
        let (ops, replayed) = match state {
            RoomState::Snapshot { board: bytes, ops } => {
                match Board::from_snapshot(&bytes.0) {
                    Ok(b) => board = b,
                    // Written by a newer server: only a newer app can read it.
                    Err(SnapshotError::Version(_)) => return vec![Notice::Outdated],
                    Err(_) => return self.resync_from_scratch(),
                }
                (ops, false)
            }
            RoomState::InParts { ops } => {
                match Board::from_snapshot(&std::mem::take(&mut self.parts)) {
                    Ok(b) => board = b,
                    Err(SnapshotError::Version(_)) => return vec![Notice::Outdated],
                    Err(_) => return self.resync_from_scratch(),
                }
                (ops, false)
            }
            RoomState::Replay { ops } => {
                if board.position().map(|p| p.epoch) != Some(epoch) {
                    // A replay only makes sense on top of our own history.
                    return self.resync_from_scratch();
                }
                (ops, true)
            }
        };
        for s in ops.iter() {
            if board.apply_sequenced(s).is_err() {
                return self.resync_from_scratch();
            }
        }
        let first = !self.welcomed;
        self.confirmed = board;
        self.member = Some(member);
        self.author = Some(author);
        self.capability = Some(capability);
        self.welcomed = true;
        // A new connection (or a new history) may take writes again: one op may find out.
        self.probe = true;

        let mut notices = Vec::new();
        // A later Welcome on the same connection (the room's history was replaced) comes after
        // the answers to every op sent before the server queued it; the ops still on the wire
        // are answered after it, in the new epoch. Only a first Welcome settles ops in doubt.
        if first {
            let ours: Option<Vec<&Op>> = replayed.then(|| {
                ops.iter()
                    .filter(|s| s.author == author)
                    .map(|s| &s.op)
                    .collect()
            });
            self.settle_in_doubt(decided, ours.as_deref(), &mut notices);
        }
        if capability == Capability::View && !self.ops.is_empty() {
            self.ops.clear();
            self.version += 1;
            notices.push(Notice::Toast(
                "This link can only view the board; your changes were not saved.".into(),
            ));
        }
        self.rebase();
        notices.insert(
            0,
            Notice::Welcomed {
                member,
                capability,
                members: members.into_inner(),
            },
        );
        notices
    }

    /// Settles the in-doubt ops numbered up to `decided`. With `ours` (our ops in the replay,
    /// in room order) we know which were applied; without, the board tells what it can
    /// ([`Session::judge`]).
    fn settle_in_doubt(&mut self, decided: u64, ours: Option<&[&Op]>, notices: &mut Vec<Notice>) {
        let mut ours = ours.map(|o| o.iter().copied().peekable());
        let mut doubts: Vec<(u64, usize)> = self
            .ops
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e.fate {
                Fate::InDoubt(n) if n <= decided => Some((n, i)),
                _ => None,
            })
            .collect();
        doubts.sort_unstable();
        let (mut settled, mut applied, mut lost) = (Vec::new(), Vec::new(), Vec::new());
        for (_, i) in doubts {
            let op = &self.ops[i].op;
            let verdict = match &mut ours {
                Some(ours) => match ours.next_if(|o| *o == op) {
                    Some(_) => Verdict::Applied,
                    None => Verdict::Refused,
                },
                None => self.judge(op),
            };
            match verdict {
                Verdict::Applied => applied.push(i),
                Verdict::Refused if *op == Op::Clear => {
                    settled.push(i);
                    notices.push(Notice::Toast(CLEAR_REFUSED_TOAST.into()));
                }
                Verdict::Refused => self.ops[i].fate = Fate::Refused,
                Verdict::Unknown => {
                    settled.push(i);
                    lost.extend(op_ids(op));
                }
            }
        }
        if !lost.is_empty() {
            notices.push(Notice::Unconfirmed(lost));
        }
        // Applied ones on strokes that a refused one touched stay, after the refusals are all
        // known, so that the view keeps them in the order they were made; and so do later
        // applied ones on the strokes those touch.
        let mut dirty = self.dirty();
        for i in applied {
            if bridge::blocked(&self.ops[i].op, &dirty) {
                self.ops[i].fate = Fate::Applied;
                dirty.extend(op_ids(&self.ops[i].op));
            } else {
                settled.push(i);
            }
        }
        settled.sort_unstable();
        for i in settled.into_iter().rev() {
            self.ops.remove(i);
        }
        self.version += 1;
    }

    /// Our op at `i` was applied by the room: it leaves the queue, unless it touches strokes
    /// waiting to be brought in line (the view still needs it then, in its place).
    fn settle_applied(&mut self, i: usize) {
        if self.has_dirt() && bridge::blocked(&self.ops[i].op, &self.dirty()) {
            self.ops[i].fate = Fate::Applied;
        } else {
            self.ops.remove(i);
        }
        self.version += 1;
    }

    /// What `confirmed` tells of an op of ours that the room decided, when nothing else does
    /// (the Welcome was a snapshot): `Refused` when the board lacks what the op did (it is
    /// then brought about again from what the user sees, which is right either way), and
    /// `Unknown` for a stroke or text the board does not have at all: refused, or applied and
    /// cleared since, which no board can tell apart. Sending it again could undo someone's
    /// Clear, so it is given up, and the user told.
    fn judge(&self, op: &Op) -> Verdict {
        let room = &self.confirmed;
        let holds = match op {
            Op::StrokeBegin { id, .. }
            | Op::Text { id, .. }
            | Op::Image(PlacedImage { id, .. }) => {
                if room.get(id).is_none() {
                    return Verdict::Unknown;
                }
                true
            }
            // Erased strokes count too: a later Restore of ours may bring them back.
            Op::StrokePoints(b) => room
                .get(&b.id)
                .is_none_or(|s| s.points.len() >= b.start as usize + b.points.len()),
            Op::StrokeEnd { id } => room.get(id).is_none_or(|s| s.finished),
            Op::Erase { ids } => ids.iter().all(|id| room.get(id).is_none_or(|s| s.erased)),
            Op::Restore { ids } => ids.iter().all(|id| room.get(id).is_none_or(|s| !s.erased)),
            Op::Move { to } => to
                .iter()
                .all(|p| room.get(&p.id).is_none_or(|s| s.offset == (p.dx, p.dy))),
            Op::Restyle { to } => to.iter().all(|t| {
                room.get(&t.id)
                    .is_none_or(|s| (s.color, s.width) == (t.color, t.width))
            }),
            Op::Look { to } => to
                .iter()
                .all(|l| room.get(&l.id).is_none_or(|s| s.look == l.look)),
            Op::Form { to } => to
                .iter()
                .all(|f| room.get(&f.id).is_none_or(|s| s.form == f.form)),
            // Never sent again: late, it would wipe what others drew meanwhile.
            Op::Clear => true,
            // Never sent again either: a title set since by someone else is the room's word.
            Op::Title { .. } => true,
        };
        if holds {
            Verdict::Applied
        } else {
            Verdict::Refused
        }
    }

    pub(super) fn resync_from_scratch(&mut self) -> Vec<Notice> {
        // Forget the position so that the next Hello asks for a snapshot.
        self.confirmed = Board::new();
        self.welcomed = false;
        vec![Notice::Resync]
    }

    pub(super) fn ack(&mut self, ack: Ack) -> Vec<Notice> {
        let (Some(i), Some(author)) = (self.lowest(|f| matches!(f, Fate::Sent(_))), self.author)
        else {
            return vec![Notice::Resync];
        };
        let s = Sequenced {
            epoch: ack.epoch,
            seq: ack.seq,
            author,
            op: self.ops[i].op.clone(),
        };
        if self.confirmed.apply_sequenced(&s).is_err() {
            return vec![Notice::Resync];
        }
        let mut notices = Vec::new();
        if self.refused {
            self.refused = false;
            self.probe = false;
            notices.push(Notice::ReadOnly(false));
        }
        if s.op == Op::Clear {
            // Whatever was made before the Clear is wiped by it: what waits to be brought in
            // line or to be sent must not come back after it. (Ops still numbered are left to
            // their answers.)
            let count = self.ops.len();
            self.ops = std::mem::take(&mut self.ops)
                .into_iter()
                .enumerate()
                .filter(|(k, e)| *k > i || (*k < i && e.fate.number().is_some()))
                .map(|(_, e)| e)
                .collect();
            if count - self.ops.len() > 1 {
                self.rebase();
            }
            self.version += 1;
        } else {
            self.settle_applied(i);
        }
        if self.diverged && !self.has_outstanding() {
            self.diverged = false;
            if !same_content(&self.view, &self.confirmed) {
                self.view = IndexedBoard::new(self.confirmed.clone());
                self.redraw = Redraw::All;
            }
        }
        notices
    }

    pub(super) fn error(&mut self, e: ErrorFrame) -> Vec<Notice> {
        match e.code {
            // The server refuses only ops that would change nothing by the time they are
            // ordered (a stroke someone else erased first, a move back to where it is), and
            // ops no correct client sends: it leaves the view, without bothering the user.
            ErrorCode::InvalidOp => {
                self.forget_sent();
                Vec::new()
            }
            // The board is at its size limit: the op will not fit later either.
            ErrorCode::BoardFull => {
                self.forget_sent();
                vec![Notice::Toast(BOARD_FULL_TOAST.into())]
            }
            ErrorCode::ViewOnly => {
                self.forget_sent();
                vec![Notice::Toast("This link can only view the board.".into())]
            }
            ErrorCode::TemporarilyReadOnly => self.refused_write(),
            // A repeat of an op decided long ago: whatever it did is in what we received.
            ErrorCode::Decided => {
                let Some(i) = self.lowest(|f| matches!(f, Fate::Sent(_))) else {
                    return Vec::new();
                };
                match self.judge(&self.ops[i].op) {
                    Verdict::Refused => {
                        self.ops[i].fate = Fate::Refused;
                        self.version += 1;
                        Vec::new()
                    }
                    Verdict::Applied => {
                        self.settle_applied(i);
                        self.rebase();
                        Vec::new()
                    }
                    Verdict::Unknown => {
                        let lost = op_ids(&self.ops[i].op);
                        self.forget_sent();
                        vec![Notice::Unconfirmed(lost)]
                    }
                }
            }
            // The server drops frames silently once it has said this, so which of our ops
            // arrived is unknown: resume, and let the Welcome settle them by their numbers.
            ErrorCode::RateLimited => vec![
                Notice::Toast("Too many changes at once; catching up…".into()),
                Notice::Resync,
            ],
            ErrorCode::Malformed | ErrorCode::UnexpectedMessage => vec![Notice::Resync],
            ErrorCode::Forbidden => vec![Notice::Fatal(
                "This board does not exist, or the link is not valid.".into(),
            )],
            ErrorCode::VersionMismatch => vec![Notice::Outdated],
            ErrorCode::RoomFull => vec![Notice::Toast(
                "This board is full right now; trying again shortly.".into(),
            )],
            ErrorCode::Overloaded => vec![Notice::Toast(
                "The server is busy; trying again shortly.".into(),
            )],
            ErrorCode::Internal => {
                vec![Notice::Toast("Something went wrong on the server.".into())]
            }
        }
    }

    /// The oldest op on the wire was refused for good and will not be tried again: it leaves
    /// the queue and the view.
    fn forget_sent(&mut self) {
        if let Some(i) = self.lowest(|f| matches!(f, Fate::Sent(_))) {
            self.ops.remove(i);
            self.version += 1;
            self.rebase();
        }
    }

    /// The oldest op on the wire was refused because the room cannot take writes now.
    fn refused_write(&mut self) -> Vec<Notice> {
        let mut notices = Vec::new();
        if !self.refused {
            self.refused = true;
            notices.push(Notice::ReadOnly(true));
            notices.push(Notice::Toast(READ_ONLY_TOAST.into()));
        }
        self.probe = false;
        if let Some(i) = self.lowest(|f| matches!(f, Fate::Sent(_))) {
            if self.ops[i].op == Op::Clear {
                self.ops.remove(i);
                self.rebase();
                notices.push(Notice::Toast(CLEAR_REFUSED_TOAST.into()));
            } else {
                // Still shown; brought about again once the room takes writes.
                self.ops[i].fate = Fate::Refused;
            }
            self.version += 1;
        }
        notices
    }
}
