//! How rooms behave, whichever backend holds them.

use std::time::Duration;

use crate::config::Config;

/// The settings every room of a node shares, taken from its [`Config`].
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Cursor coalescing window: moves within it replace each other.
    pub cursor_interval: Duration,
    /// How long an empty room stays loaded.
    pub room_grace: Duration,
    /// Compact once this many ops follow the snapshot...
    pub compact_after_ops: usize,
    /// ...or once they weigh this many bytes.
    pub compact_after_bytes: usize,
    /// What a board may hold.
    pub budget: Budget,
    /// Rooms held at once; a join that would load one more is refused (0: no cap).
    pub max_rooms: usize,
    /// Members of one room at once (across the cluster); a join beyond it is refused (0: no
    /// cap).
    pub max_members_per_room: usize,
    /// Rooms nobody wrote to or sat in for this long are deleted (`None`: kept forever).
    pub room_ttl: Option<Duration>,
    /// How often a single node looks for expired rooms.
    pub room_sweep_interval: Duration,
    /// When a room keeps a version of its board, and how many.
    pub checkpoints: Retention,
}

impl From<&Config> for RoomSettings {
    fn from(c: &Config) -> Self {
        Self {
            cursor_interval: c.cursor_interval,
            room_grace: c.room_grace,
            compact_after_ops: c.compact_after_ops.max(1),
            compact_after_bytes: c.compact_after_bytes.max(1),
            budget: Budget {
                items: cap(c.max_board_items),
                points: cap(c.max_board_points),
                bytes: cap(c.max_board_bytes),
            },
            max_rooms: c.max_rooms,
            max_members_per_room: c.max_members_per_room,
            room_ttl: c.room_ttl,
            room_sweep_interval: c.room_sweep_interval,
            checkpoints: Retention {
                every: c.checkpoint_every,
                kept: c.checkpoints_kept,
                bytes: cap(c.max_board_bytes).saturating_mul(2),
            },
        }
    }
}

/// What one board may hold; an op that would take it beyond is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Items, tombstones included.
    pub items: usize,
    /// Points, tombstones included.
    pub points: usize,
    /// Bytes of the encoded state: the snapshot and the ops after it.
    pub bytes: usize,
}

impl Budget {
    /// No limit at all.
    pub const UNLIMITED: Budget = Budget {
        items: usize::MAX,
        points: usize::MAX,
        bytes: usize::MAX,
    };
}

/// When a room keeps a version of its board (a checkpoint), and how many it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// At least this often while the room is drawn in (and always before a Clear).
    pub every: Duration,
    /// At most this many per room (0: none are kept); the oldest go first...
    pub kept: usize,
    /// ...and while they weigh more than this, all together.
    pub bytes: usize,
}

/// A configured cap, where 0 means none.
fn cap(n: usize) -> usize {
    if n == 0 { usize::MAX } else { n }
}

impl RoomSettings {
    /// Whether a room with `members` members (on every node) is full.
    pub fn is_full(&self, members: usize) -> bool {
        self.max_members_per_room != 0 && members >= self.max_members_per_room
    }
}
