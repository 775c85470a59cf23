//! The room log and relay: the seam between sessions and whatever orders a room's ops.
//!
//! A session knows only [`Sequencer`] and [`Membership`]. The single-node implementation,
//! [`LocalSequencer`], orders ops in process and keeps boards in the embedded store; a cluster
//! implementation orders them in Redis. Sessions never branch on which one runs.
//!
//! The contract every implementation keeps:
//! - every member of a room receives the room's ops in seq order, gapless within an epoch,
//!   each op's frame encoded once and shared by all recipients;
//! - a member's own op comes back as an `Ack` in its queue, in the order it was submitted,
//!   interleaved with the others' ops in the room's order;
//! - a join registers the member for live frames before it reads the state it returns, so the
//!   state and the frames that follow it have no gap and no duplicate;
//! - nothing waits for a slow member: a member whose queue is full is kicked
//!   ([`KickReason::SlowConsumer`]) and the room goes on.

mod cluster;
mod local;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use kokuban_board::{Board, Refusal};
use kokuban_protocol::{
    Color, Cursor, Epoch, Member, MemberId, Name, Op, Position, RoomId, RoomState,
};
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;

pub use cluster::{ClusterConfig, RedisSequencer};
pub use local::LocalSequencer;

/// A boxed future, so that the traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The room log and relay. See the module documentation for its contract.
pub trait Sequencer: Send + Sync + fmt::Debug {
    /// Records that `room` exists (a fresh, empty board) before its links are handed out.
    fn create_room<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<(), SequencerError>>;

    /// Joins a member to a room: registers its link for live frames and returns the room as
    /// of that moment (see [`Joined`]).
    fn join(&self, request: JoinRequest) -> BoxFuture<'_, Result<Joined, JoinError>>;

    /// Rooms held by this node now.
    fn rooms_loaded(&self) -> usize;

    /// Whether the node can serve new members (`/readyz`).
    fn is_ready(&self) -> bool;

    /// Stops background work and makes everything durable. Called once, after every session
    /// has ended.
    fn shutdown(&self) -> BoxFuture<'_, Result<(), SequencerError>>;
}

/// One member's place in a room. Dropping it leaves the room (others see `Left`).
pub trait Membership: Send + Sync + fmt::Debug {
    /// Sequences a durable op. The Ack (or nothing, if the member was kicked meanwhile)
    /// arrives in the member's queue; it never waits for the store.
    fn submit(&self, op: Op) -> Result<(), WriteRefused>;

    /// Moves this member's cursor. Coalesced: only the latest position is relayed.
    fn cursor(&self, at: Option<Cursor>);

    /// Changes this member's display name and colour.
    fn update_profile(&self, name: Name, color: Color);
}

/// What a session asks for when it joins.
#[derive(Debug)]
pub struct JoinRequest {
    /// The room.
    pub room: RoomId,
    /// Who joins (id chosen by the session, capability checked by it).
    pub member: Member,
    /// Where the client was, if anywhere.
    pub resume: Option<Position>,
    /// Where the room sends this member's frames.
    pub link: MemberLink,
}

/// A successful join.
#[derive(Debug)]
pub struct Joined {
    /// The room's current history.
    pub epoch: Epoch,
    /// What the client must apply before the frames in its queue.
    pub state: RoomState,
    /// Everyone in the room, the new member included.
    pub members: Vec<Member>,
    /// The member's handle on the room.
    pub membership: Box<dyn Membership>,
}

/// Why a join failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JoinError {
    /// No such room (told to the client exactly like a wrong token).
    #[error("no such room")]
    NotFound,
    /// The node is stopping.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The room could not be loaded.
    #[error("the room could not be loaded: {0}")]
    Unavailable(String),
    /// The room has [`crate::Config::max_members_per_room`] members already.
    #[error("the room is full")]
    RoomFull,
    /// Loading the room would exceed [`crate::Config::max_rooms`] on this node.
    #[error("this node holds as many rooms as it may")]
    Overloaded,
}

/// Why an op was not sequenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteRefused {
    /// The room cannot take writes now (its store is failing or far behind).
    #[error("the room is temporarily read-only")]
    ReadOnly,
    /// The member is no longer in the room (it was kicked).
    #[error("not a member of the room any more")]
    Gone,
    /// The board would ignore the op, or it is not this member's to make (see [`vet`]).
    #[error("{0}")]
    Invalid(Refusal),
}

/// Refuses, before it is sequenced, an op the room's board would ignore or that `author` may
/// not make: a replayed stroke id, points for or the end of another member's stroke, erasing,
/// restoring or moving strokes that do not exist. Such an op would otherwise take a seq, a
/// place in the log and storage, and be relayed to every member, all for nothing; refused
/// here it costs one error frame to its sender.
///
/// For a sequencer that orders ops in place, under its room's lock, with a board that has
/// applied every op ordered so far (the single node). See [`vet_behind`] for one whose board
/// may lag.
pub fn vet(board: &Board, author: MemberId, op: &Op) -> Result<(), WriteRefused> {
    board.vet(author, op).map_err(WriteRefused::Invalid)
}

/// [`vet`] for a board that may lag the room's order (a cluster node, with ops in flight to
/// Redis), with `unanswered` of the author's ops in flight. It refuses only what no op in
/// flight could make valid ([`Refusal::is_final`]), so a StrokePoints right behind its own
/// StrokeBegin is never refused; and only when nothing of the author's is unanswered, since
/// the error frame goes out at once and must not overtake the Acks of earlier ops (the client
/// matches refusals to its ops by their order).
pub fn vet_behind(
    board: &Board,
    author: MemberId,
    op: &Op,
    unanswered: usize,
) -> Result<(), WriteRefused> {
    match board.vet(author, op) {
        Err(refusal) if unanswered == 0 && refusal.is_final() => {
            Err(WriteRefused::Invalid(refusal))
        }
        _ => Ok(()),
    }
}

/// The rooms a node holds or is loading, each behind a cell that is filled once.
pub(crate) type RoomCells<R> = HashMap<RoomId, Arc<OnceCell<Arc<R>>>>;

/// The room `id` of `rooms`, loaded by `load` if this node does not hold it yet.
///
/// The cell is added under the map's lock, where the room cap is checked, so that concurrent
/// joins of new rooms cannot overshoot it together; rooms already held are never refused. At
/// the cap, `make_room` may free a place (true) before the join is refused as
/// [`JoinError::Overloaded`]. Concurrent joins of one room share a single load; a load that
/// fails leaves no cell behind, so the next join tries again.
pub(crate) async fn hold_room<R, F, Fut>(
    rooms: &Mutex<RoomCells<R>>,
    id: &RoomId,
    max_rooms: usize,
    make_room: impl FnOnce(&mut RoomCells<R>) -> bool,
    load: F,
) -> Result<Arc<R>, JoinError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Arc<R>, JoinError>>,
{
    let lock = || rooms.lock().unwrap_or_else(|p| p.into_inner());
    let cell = {
        let mut held = lock();
        if max_rooms != 0
            && held.len() >= max_rooms
            && !held.contains_key(id)
            && !make_room(&mut held)
        {
            return Err(JoinError::Overloaded);
        }
        held.entry(id.clone()).or_default().clone()
    };
    match cell.get_or_try_init(load).await {
        Ok(room) => Ok(room.clone()),
        Err(e) => {
            let mut held = lock();
            if held
                .get(id)
                .is_some_and(|c| Arc::ptr_eq(c, &cell) && !c.initialized())
            {
                held.remove(id);
            }
            Err(e)
        }
    }
}

/// A failure of the sequencer's backing systems.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SequencerError(pub String);

/// Why the room dropped a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickReason {
    /// Its send queue was full.
    SlowConsumer,
    /// The node lost track of the member's ops in flight, or of the room's log: the member
    /// resumes, and its client resends what was not acknowledged.
    Resume,
}

#[derive(Debug, Default)]
struct Kick {
    token: CancellationToken,
    reason: OnceLock<KickReason>,
}

/// The room's end of a member's outbound path: a bounded queue of encoded frames and a way to
/// tell the session it was dropped.
#[derive(Debug, Clone)]
pub struct MemberLink {
    frames: mpsc::Sender<Bytes>,
    kick: Arc<Kick>,
}

/// The session's end of [`MemberLink`].
#[derive(Debug)]
pub struct Outbox {
    /// Frames to send, in order.
    pub frames: mpsc::Receiver<Bytes>,
    /// Fires when the room drops the member.
    pub kicked: KickSignal,
}

/// Tells a session that its member was dropped, and why.
#[derive(Debug, Clone)]
pub struct KickSignal {
    kick: Arc<Kick>,
}

/// The queue is full: the member cannot keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

impl MemberLink {
    /// A link whose queue holds `capacity` frames, and its outbox.
    pub fn channel(capacity: usize) -> (MemberLink, Outbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let kick = Arc::new(Kick::default());
        (
            MemberLink {
                frames: tx,
                kick: kick.clone(),
            },
            Outbox {
                frames: rx,
                kicked: KickSignal { kick },
            },
        )
    }

    /// Queues a frame without waiting. A full queue is the caller's cue to kick the member.
    pub fn send(&self, frame: Bytes) -> Result<(), QueueFull> {
        match self.frames.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(QueueFull),
            // The session is gone; its drop guard is about to remove the member anyway.
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }

    /// Tells the session to close; the first reason given wins.
    pub fn kick(&self, reason: KickReason) {
        let _ = self.kick.reason.set(reason);
        self.kick.token.cancel();
    }
}

impl KickSignal {
    /// Resolves when the room has dropped this member, with the reason.
    pub async fn wait(&self) -> KickReason {
        self.kick.token.cancelled().await;
        self.reason()
    }

    /// Whether the room has dropped this member.
    pub fn is_kicked(&self) -> bool {
        self.kick.token.is_cancelled()
    }

    fn reason(&self) -> KickReason {
        self.kick
            .reason
            .get()
            .copied()
            .unwrap_or(KickReason::SlowConsumer)
    }
}
