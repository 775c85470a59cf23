//! Versions of a room's board (checkpoints), kept so that the board can be brought back to one.
//!
//! A room keeps the board as it is before every Clear, and at least every
//! [`Retention::every`](super::settings::Retention) while it is drawn in. Each version is a
//! board snapshot in the board model's format, so a client shows it with the code that shows
//! the live board, and restoring it is an ordinary edit (a Clear, then the items drawn again),
//! which everyone sees in the room's order and which can itself be undone.
//!
//! Whether a version is due is decided here, by both backends alike, on the op path: the
//! encoding happens only when one is due (at most once per interval, and per Clear).

use bytes::Bytes;
use kokuban_protocol::{MemberId, Op, Position};
use serde::{Deserialize, Serialize};

/// Authors named in one version at most (the History panel shows a few and "+N").
const MAX_AUTHORS: usize = 12;

/// Why a version was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The room had been drawn in for a while since the last one.
    Interval,
    /// Someone cleared the board: this is the board just before.
    Clear,
}

/// What the History panel lists of a version (`GET /api/rooms/{room}/checkpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// When it was kept, in ms since the Unix epoch; unique in its room, and its id there.
    pub id: u64,
    /// The room's place it was kept at (the board's position).
    pub epoch: u64,
    /// ...and seq.
    pub seq: u64,
    /// Why.
    pub reason: Reason,
    /// The names of those who drew since the version before (as the node knew them).
    pub authors: Vec<String>,
    /// Items on the board.
    pub items: usize,
    /// The size of its encoded board.
    pub bytes: usize,
}

/// A version: what is listed of it, and its board (an encoded snapshot).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// What is listed.
    pub info: CheckpointInfo,
    /// The board.
    pub board: Bytes,
}

impl Checkpoint {
    /// As a store keeps it: the length of the listing (4 bytes, little endian), the listing
    /// as JSON, then the board.
    pub fn encode(&self) -> Vec<u8> {
        let info = serde_json::to_vec(&self.info).unwrap_or_default();
        let mut out = Vec::with_capacity(4 + info.len() + self.board.len());
        out.extend_from_slice(&(info.len() as u32).to_le_bytes());
        out.extend_from_slice(&info);
        out.extend_from_slice(&self.board);
        out
    }

    /// The listing of a stored version (None: not one).
    pub fn info_of(stored: &[u8]) -> Option<CheckpointInfo> {
        let (info, _) = split(stored)?;
        serde_json::from_slice(info).ok()
    }

    /// The board of a stored version (None: not one).
    pub fn board_of(stored: &[u8]) -> Option<&[u8]> {
        split(stored).map(|(_, board)| board)
    }
}

fn split(stored: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(stored.get(..4)?.try_into().ok()?) as usize;
    let rest = &stored[4..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A version due before the next op: the backend names its authors, stores it, and tells the
/// room's other nodes nothing (each node decides alike; the store keeps one per place).
#[derive(Debug, Clone)]
pub(crate) struct Due {
    /// Where the board is.
    pub at: Position,
    /// Why.
    pub reason: Reason,
    /// Who drew since the version before.
    pub authors: Vec<MemberId>,
    /// Items on the board.
    pub items: usize,
    /// The board, encoded.
    pub board: Bytes,
}

impl Due {
    /// The version, taken at `now_ms`, with its authors named by `name_of`.
    pub fn named(self, now_ms: u64, name_of: impl Fn(MemberId) -> Option<String>) -> Checkpoint {
        let mut authors: Vec<String> = Vec::new();
        for name in self.authors.into_iter().filter_map(name_of) {
            if !authors.contains(&name) {
                authors.push(name);
            }
        }
        Checkpoint {
            info: CheckpointInfo {
                id: now_ms,
                epoch: self.at.epoch.0,
                seq: self.at.seq.0,
                reason: self.reason,
                authors,
                items: self.items,
                bytes: self.board.len(),
            },
            board: self.board,
        }
    }
}

/// When the room's next version is due.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// At least this often while the room is drawn in, in ms.
    every_ms: u64,
    /// When the last version was kept (or the room was first written to in this load).
    last_ms: Option<u64>,
    /// Where the board was then.
    last_at: Option<Position>,
    /// Who drew since.
    authors: Vec<MemberId>,
}

impl Schedule {
    /// Versions at least every `every_ms` of activity (0: only before a Clear).
    pub fn every(every_ms: u64) -> Self {
        Self {
            every_ms,
            last_ms: None,
            last_at: None,
            authors: Vec::new(),
        }
    }

    /// Whether a version of the board at `at` is due before `op` by `author` is applied at
    /// `now_ms`, with `live_items` visible on the board; counts `author` among those who drew
    /// since. An empty board keeps no version.
    pub fn before(
        &mut self,
        at: Position,
        author: MemberId,
        op: &Op,
        now_ms: u64,
        live_items: usize,
    ) -> Option<(Reason, Vec<MemberId>, usize)> {
        let last_ms = *self.last_ms.get_or_insert(now_ms);
        let reason = if matches!(op, Op::Clear) {
            Some(Reason::Clear)
        } else if self.every_ms > 0 && now_ms.saturating_sub(last_ms) >= self.every_ms {
            Some(Reason::Interval)
        } else {
            None
        };
        let due = reason
            .filter(|_| self.last_at != Some(at))
            .filter(|_| live_items > 0)
            .map(|reason| {
                self.last_ms = Some(now_ms);
                self.last_at = Some(at);
                (reason, std::mem::take(&mut self.authors), live_items)
            });
        if !self.authors.contains(&author) && self.authors.len() < MAX_AUTHORS {
            self.authors.push(author);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kokuban_protocol::{Epoch, Seq};

    fn at(seq: u64) -> Position {
        Position {
            epoch: Epoch(1),
            seq: Seq(seq),
        }
    }

    const ADA: MemberId = MemberId(1);
    const BO: MemberId = MemberId(2);

    #[test]
    fn a_version_is_due_before_every_clear_of_a_drawn_board_and_after_each_interval() {
        let mut s = Schedule::every(1000);
        let draw = Op::StrokeEnd {
            id: kokuban_protocol::StrokeId(uuid::Uuid::from_u128(1)),
        };
        // The first op starts the clock: nothing is due yet.
        assert_eq!(s.before(at(0), ADA, &draw, 10_000, 1), None);
        assert_eq!(s.before(at(1), BO, &draw, 10_500, 1), None);
        // An interval later, the board before the op, with both authors.
        let (reason, authors, items) = s.before(at(2), ADA, &draw, 11_000, 3).unwrap();
        assert_eq!(
            (reason, authors, items),
            (Reason::Interval, vec![ADA, BO], 3)
        );
        // A Clear right after: due at once, naming who drew since.
        let (reason, authors, _) = s.before(at(3), BO, &Op::Clear, 11_001, 3).unwrap();
        assert_eq!((reason, authors), (Reason::Clear, vec![ADA]));
        // A Clear of an empty board keeps nothing; nor does a second one at the same place.
        assert_eq!(s.before(at(4), BO, &Op::Clear, 11_002, 0), None);
        let mut s = Schedule::every(0);
        assert!(s.before(at(5), ADA, &Op::Clear, 1, 1).is_some());
        assert_eq!(s.before(at(5), ADA, &Op::Clear, 2, 1), None);
        // With no interval, only Clears keep versions.
        assert_eq!(s.before(at(6), ADA, &draw, u64::MAX, 1), None);
    }

    #[test]
    fn a_stored_version_gives_back_its_listing_and_its_board() {
        let c = Due {
            at: at(7),
            reason: Reason::Clear,
            authors: vec![ADA, BO, ADA],
            items: 2,
            board: Bytes::from_static(b"board"),
        }
        .named(1234, |id| (id == ADA).then(|| "Ada".to_owned()));
        assert_eq!(c.info.authors, vec!["Ada".to_owned()]);
        let stored = c.encode();
        assert_eq!(Checkpoint::info_of(&stored), Some(c.info.clone()));
        assert_eq!(Checkpoint::board_of(&stored), Some(&b"board"[..]));
        assert_eq!(Checkpoint::info_of(&stored[..3]), None);
        assert_eq!(Checkpoint::board_of(&[255, 0, 0, 0, 1]), None);
    }
}
