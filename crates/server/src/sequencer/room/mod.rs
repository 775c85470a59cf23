//! The room, once, for every backend: sans-IO state that knows no runtime, socket or Redis.
//!
//! - [`History`]: the board at the head of the room's order, the base snapshot and the ops
//!   after it; what a member resuming from a position gets; when compaction is due; which op
//!   numbers each author has applied (so that a retried op is applied once).
//! - [`Roster`]: the members of this node, their cursors, admission, broadcast, eviction and
//!   departure; when the room became empty.
//! - [`Checkpoint`]s: versions of the board kept so that it can be brought back to one; the
//!   history decides when one is due, the backend names its authors and stores it.
//! - [`RoomSettings`]: how rooms behave, taken from the node's configuration.
//!
//! The single-node sequencer is this core plus the embedded store and one task per room; the
//! cluster sequencer is this core plus Redis. Both call the same methods for the same idea.

mod authors;
mod checkpoints;
mod history;
mod roster;
mod settings;

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use kokuban_protocol::{
    Camera, Epoch, List, MemberId, RoomState, ServerMsg, Welcome, encode_server,
    encode_welcome_around,
};
use tokio::sync::Notify;

pub(crate) use authors::Seen;
pub use checkpoints::{Checkpoint, CheckpointInfo, Reason};
pub(crate) use history::{BoardFull, CompactAfter, History, Parts};
pub(crate) use roster::{Departures, Pointer, Roster, Seat};
pub use settings::{Budget, Retention, RoomSettings};

/// A backend's room state, which holds the room's local members.
pub(crate) trait Seated {
    /// What the backend keeps beside each member.
    type Extra;
    /// The room's local members.
    fn roster(&mut self) -> &mut Roster<Self::Extra>;
    /// Whether the room was let go: a join that still holds it must load it afresh.
    fn unloaded(&mut self) -> &mut bool;
}

/// Declares a backend's room (`$room`, with fields `id` and `core: Locked<$state>`) and its
/// state (`$state`, with fields `roster: Roster<$extra>` and `unloaded`) to the room core.
macro_rules! held_room {
    ($room:ty, $state:ty, $extra:ty) => {
        impl $crate::sequencer::room::Seated for $state {
            type Extra = $extra;
            fn roster(&mut self) -> &mut $crate::sequencer::room::Roster<$extra> {
                &mut self.roster
            }
            fn unloaded(&mut self) -> &mut bool {
                &mut self.unloaded
            }
        }

        impl $crate::sequencer::HeldRoom for $room {
            type State = $state;
            fn id(&self) -> &kokuban_protocol::RoomId {
                &self.id
            }
            fn core(&self) -> &$crate::sequencer::room::Locked<$state> {
                &self.core
            }
        }
    };
}
pub(crate) use held_room;

/// A loaded room's state behind its lock, and the signal that wakes the room's task (a cursor
/// to flush, the room became empty).
#[derive(Debug)]
pub(crate) struct Locked<L> {
    state: Mutex<L>,
    wake: Notify,
}

impl<L> Locked<L> {
    /// Puts `state` behind the lock.
    pub fn new(state: L) -> Self {
        Self {
            state: Mutex::new(state),
            wake: Notify::new(),
        }
    }

    /// The state. Nothing awaits under this lock and the state is consistent at every step
    /// between awaits, so a panic elsewhere must not poison the room for all its members.
    pub fn lock(&self) -> MutexGuard<'_, L> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the room's task.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when the room's task is woken.
    pub async fn woken(&self) {
        self.wake.notified().await
    }
}

impl<L: Seated> Locked<L> {
    /// Records a member's latest cursor, waking the task for the first one of a window.
    pub fn cursor(&self, member: MemberId, at: Pointer) {
        if self.lock().roster().cursor(member, at) {
            self.wake();
        }
    }

    /// Records a member's latest camera, waking the task for the first one of a window.
    pub fn camera(&self, member: MemberId, camera: Camera) {
        if self.lock().roster().camera(member, camera) {
            self.wake();
        }
    }

    /// Records that a member asks everyone to follow them, like a camera.
    pub fn ask_to_follow(&self, member: MemberId) {
        if self.lock().roster().ask_to_follow(member) {
            self.wake();
        }
    }
}

/// A server message encoded once, to be shared by every queue it goes to.
pub(crate) fn frame(msg: &ServerMsg) -> Bytes {
    Bytes::from(encode_server(msg))
}

/// A Welcome around a state encoded apart ([`History::welcome_for`]): the pieces of its
/// frame, in order. The state is shared, so a large board is not copied per member.
pub(crate) fn welcome_pieces(welcome: Welcome, state: Bytes) -> [Bytes; 3] {
    debug_assert!(matches!(&welcome.state, RoomState::Replay { ops } if ops.is_empty()));
    let (before, after) = encode_welcome_around(welcome);
    [Bytes::from(before), state, Bytes::from(after)]
}

/// The state to build a Welcome with before [`welcome_pieces`] puts the real one in.
pub(crate) fn state_apart() -> RoomState {
    RoomState::Replay {
        ops: List::from(Vec::new()),
    }
}

/// A new room's first history: a fresh id, and the encoded snapshot of its empty board.
pub(crate) fn first_history() -> (Epoch, Bytes) {
    let epoch = new_epoch(None);
    let board = kokuban_board::Board::at_start_of(epoch).snapshot();
    (epoch, Bytes::from(board))
}

/// A fresh history id, different from `old`.
pub(crate) fn new_epoch(old: Option<Epoch>) -> Epoch {
    loop {
        let e = Epoch(rand::random());
        if Some(e) != old {
            return e;
        }
    }
}

/// Members and ops for the tests of the room and its backends.
#[cfg(test)]
pub(crate) mod fixtures {
    use kokuban_protocol::{
        Capability, Color, Member, MemberId, Name, Op, Point, StrokeId, Tool, Width,
    };

    /// An editor named "m".
    pub fn member(id: u64) -> Member {
        Member {
            id: MemberId(id),
            name: Name::new("m").unwrap(),
            color: Color::rgb(1, 2, 3),
            capability: Capability::Edit,
        }
    }

    /// The start of stroke `n` (a fresh stroke for every `n`).
    pub fn stroke(n: u128) -> Op {
        Op::StrokeBegin {
            id: StrokeId(uuid::Uuid::from_u128(n)),
            tool: Tool::Pen,
            color: Color::rgb(0, 0, 0),
            width: Width::new(8).unwrap(),
            first: Point::new(1, 2, 3).unwrap(),
        }
    }
}
