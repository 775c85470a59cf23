//! The room log and relay: the seam between sessions and whatever orders a room's ops.
//!
//! A session knows only [`Sequencer`] and [`Membership`]. The single-node implementation,
//! [`LocalSequencer`], orders ops in process and keeps boards in the embedded store; the
//! cluster implementation, [`RedisSequencer`], orders them in Redis. Sessions never branch on
//! which one runs.
//!
//! - [`room`]: the room itself, once for both backends, with no runtime, socket or Redis in
//!   it: its history (where a room's order is kept, and what a member resuming gets) and its
//!   roster (who gets which frame);
//! - [`link`]: a member's outbound queue, which the room fills and the session drains;
//! - `local`: the single node: the room core, the embedded store, and one task per room; the
//!   order is decided under the room's lock, in `submit`;
//! - `cluster`: a node of a cluster: the room core plus Redis, where the order is decided (by
//!   one Lua script per op) and which is spoken only in `cluster/redis`.
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
mod link;
mod links;
mod local;
pub(crate) mod room;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kokuban_board::{Board, Refusal};
use kokuban_protocol::{
    Camera, Color, Cursor, Epoch, Member, MemberId, Name, Op, Position, RoomId,
};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub use cluster::{RedisSequencer, check_redis};
pub use link::{KickReason, KickSignal, MemberLink, Outbox, Outgoing, QueueFull};
pub use links::{LinkGenerations, LinkWatch};
pub use local::LocalSequencer;
pub use room::{Budget, RoomSettings};

use self::room::{Locked, Seated};
use crate::BoxFuture;
use crate::blob::{Blob, BlobHash, BlobStored};
use crate::metrics::Metrics;

/// A sequencer's work that resolves once it is done (durable, where it writes).
pub type Done<'a> = BoxFuture<'a, Result<(), SequencerError>>;

/// The room log and relay. See the module documentation for its contract.
pub trait Sequencer: Send + Sync + fmt::Debug {
    /// Records that `room` exists, with a fresh, empty board, before its links are handed out.
    fn create_room<'a>(&'a self, room: &'a RoomId) -> Done<'a> {
        self.store_new_room(room, room::first_history())
    }

    /// Makes a new room's first history (its id, and the encoded empty board) durable.
    fn store_new_room<'a>(&'a self, room: &'a RoomId, first: (Epoch, bytes::Bytes)) -> Done<'a>;

    /// Joins a member to a room: registers its link for live frames and returns the room as
    /// of that moment (see [`Joined`]).
    fn join(&self, request: JoinRequest) -> BoxFuture<'_, Result<Joined, JoinError>>;

    /// The room's link generation (0 until its links are first reset), read from where the
    /// backend keeps it: once per Hello, never per frame.
    fn link_generation<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<u64, SequencerError>>;

    /// Advances the room's link generation from `from` durably and tells every other node
    /// holding the room (this node's sessions are the caller's to tell, through
    /// [`Sequencer::link_generations`]); resolves to the new generation (`None`: no such room, or its generation is no
    /// longer `from`, so that of two resets with one link only the first succeeds).
    fn reset_links<'a>(
        &'a self,
        room: &'a RoomId,
        from: u64,
    ) -> BoxFuture<'a, Result<Option<u64>, SequencerError>>;

    /// The room's versions of its board, newest first (see [`room::Checkpoint`]).
    fn checkpoints<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<Vec<room::CheckpointInfo>, SequencerError>>;

    /// The board (an encoded snapshot) of the room's version `id` (`None`: no such version).
    fn checkpoint_board<'a>(
        &'a self,
        room: &'a RoomId,
        id: u64,
    ) -> BoxFuture<'a, Result<Option<bytes::Bytes>, SequencerError>>;

    /// Whether view links may read the room's versions (yes, unless an editor said no).
    fn history_for_viewers<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<bool, SequencerError>>;

    /// Lets view links read the room's versions, or not, durably; resolves to whether the
    /// room exists.
    fn set_history_for_viewers<'a>(
        &'a self,
        room: &'a RoomId,
        allowed: bool,
    ) -> BoxFuture<'a, Result<bool, SequencerError>>;

    /// Keeps `blob` as an image of the room, once per distinct bytes, while the room's images
    /// weigh at most `budget` bytes with it; resolves, once it is durable, to what became of
    /// it. Two nodes storing at once can neither pass the budget nor count an image twice.
    fn store_blob<'a>(
        &'a self,
        room: &'a RoomId,
        blob: Blob,
        budget: u64,
    ) -> BoxFuture<'a, Result<BlobStored, SequencerError>>;

    /// The room's image named `hash`, from whichever node stored it (`None`: no such image in
    /// this room).
    fn blob<'a>(
        &'a self,
        room: &'a RoomId,
        hash: BlobHash,
    ) -> BoxFuture<'a, Result<Option<Blob>, SequencerError>>;

    /// Where this node's sessions hear that their room's links were reset.
    fn link_generations(&self) -> &LinkGenerations;

    /// Rooms held by this node now.
    fn rooms_loaded(&self) -> usize;

    /// Whether the node can serve new members (`/readyz`).
    fn is_ready(&self) -> bool;

    /// Whether the node works at all (`/healthz`): false once its store has been failing for
    /// so long that only a restart can help.
    fn is_alive(&self) -> bool {
        true
    }

    /// Stops background work and makes everything durable. Called once, after every session
    /// has ended.
    fn shutdown(&self) -> BoxFuture<'_, Result<(), SequencerError>>;
}

/// One member's place in a room. Dropping it leaves the room (others see `Left`).
pub trait Membership: Send + Sync + fmt::Debug {
    /// Sequences op `n` of the member's author, once: a number the room has applied is
    /// answered with its first Ack, never applied again. The Ack (or nothing, if the member was
    /// kicked meanwhile) arrives in the member's queue once the op is durable; this never
    /// waits for the store.
    fn submit(&self, n: u64, op: Op) -> Result<(), WriteRefused>;

    /// Moves this member's cursor. Coalesced: only the latest position is relayed.
    fn cursor(&self, at: Option<Cursor>);

    /// Moves this member's laser pointer (and cursor) there. Coalesced with the cursor: only
    /// the latest position is relayed. Allowed to every member: it changes nothing stored.
    fn laser(&self, at: Cursor);

    /// Shows this member's camera to the others (who may follow it). Coalesced like the
    /// cursor; allowed to every member.
    fn camera(&self, camera: Camera);

    /// Asks the others to follow this member's camera (each may decline). Coalesced like the
    /// camera; allowed to every member.
    fn ask_to_follow(&self);

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
    /// The author of its ops (derived from its client key by the session).
    pub author: MemberId,
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
    /// What the client must apply before the frames in its queue: a `RoomState`, encoded for
    /// the Welcome ([`room::welcome_pieces`]) and shared with others that join at the same
    /// point.
    pub state: Bytes,
    /// The `BoardPart` frames to send before the Welcome when `state` is in parts.
    pub parts: Option<room::Parts>,
    /// Everyone in the room, the new member included.
    pub members: Vec<Member>,
    /// Every op of the author numbered up to this is decided for good (see `Welcome`).
    pub decided: u64,
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
    /// The board holds as much as it may; the op would add to it.
    #[error("this board is full")]
    BoardFull,
    /// A retried op decided long ago (its first Ack is no longer known); whatever it did is in
    /// the room.
    #[error("this op was decided before")]
    Decided,
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

/// What a backend's admission of a member into a room it holds came to.
pub(crate) enum Admission {
    /// The member is in.
    Joined(Joined),
    /// The room was let go meanwhile: load it afresh and try again.
    Unloaded(JoinRequest),
    /// The room cannot take the member.
    Refused(JoinError),
}

/// A room as a backend holds it: its id and its state behind its lock.
pub(crate) trait HeldRoom {
    /// The backend's state of the room.
    type State: Seated;
    /// The room's id.
    fn id(&self) -> &RoomId;
    /// The room's state.
    fn core(&self) -> &Locked<Self::State>;
}

/// What [`HeldRooms::unload_if_idle`] did.
pub(crate) enum Unload<'a, L> {
    /// Unloaded now; the state, still locked, for the backend to let go of what it holds.
    Now(MutexGuard<'a, L>),
    /// Unloaded before.
    Already,
    /// Someone is in it, or has not been gone long enough.
    Busy,
}

/// The rooms a node holds, up to a cap: how a member joins one of them, and how they are let
/// go. Counts them in [`Metrics::rooms_loaded`].
#[derive(Debug)]
pub(crate) struct HeldRooms<R> {
    cells: Mutex<RoomCells<R>>,
    /// Rooms held at once (0: no cap).
    max: usize,
    /// Joins are refused once the node stops.
    stop: CancellationToken,
    metrics: Arc<Metrics>,
}

impl<R: HeldRoom> HeldRooms<R> {
    /// No rooms yet; at most `max` at once (0: no cap).
    pub fn new(max: usize, stop: CancellationToken, metrics: Arc<Metrics>) -> Self {
        Self {
            cells: Mutex::new(HashMap::new()),
            max,
            stop,
            metrics,
        }
    }

    /// Lets go of `room` if nobody has been in it for `grace`: a join that still holds it
    /// loads it afresh, and the map forgets it.
    pub fn unload_if_idle<'a>(&self, room: &'a Arc<R>, grace: Duration) -> Unload<'a, R::State> {
        let mut held = self.lock();
        let mut st = room.core().lock();
        if *st.unloaded() {
            return Unload::Already;
        }
        if !st.roster().idle_for(grace) {
            return Unload::Busy;
        }
        *st.unloaded() = true;
        let ours = held
            .get(room.id())
            .and_then(|cell| cell.get())
            .is_some_and(|r| Arc::ptr_eq(r, room));
        if ours {
            held.remove(room.id());
        }
        self.metrics.rooms_loaded.fetch_sub(1, Relaxed);
        tracing::debug!(room = %room.id(), "room unloaded");
        Unload::Now(st)
    }

    /// At the cap, makes room for a new one by unloading a room nobody is in (one waiting out
    /// its grace period) before its time: the cap is for rooms in use, and an empty room costs
    /// nothing to load again. False if every room held has members.
    pub fn unload_one_empty(&self, held: &mut RoomCells<R>) -> bool {
        let empty = held.iter().find_map(|(id, cell)| {
            let room = cell.get()?;
            let mut st = room.core().lock();
            if !st.roster().is_empty() || *st.unloaded() {
                return None;
            }
            *st.unloaded() = true;
            // Its task ends at once rather than when the grace period would have.
            room.core().wake();
            Some(id.clone())
        });
        let Some(id) = empty else {
            return false;
        };
        held.remove(&id);
        self.metrics.rooms_loaded.fetch_sub(1, Relaxed);
        tracing::debug!(room = %id, "empty room unloaded early to make room for another");
        true
    }

    /// Lets go of `room` now, whoever is in it (its state is no longer to be trusted); true if
    /// it was held. Its members are the backend's to send away.
    pub fn unload_now(&self, room: &R) -> bool {
        let mut held = self.lock();
        let mut st = room.core().lock();
        if *st.unloaded() {
            return false;
        }
        *st.unloaded() = true;
        let ours = held
            .get(room.id())
            .and_then(|cell| cell.get())
            .is_some_and(|r| std::ptr::eq(Arc::as_ptr(r), room));
        if ours {
            held.remove(room.id());
        }
        self.metrics.rooms_loaded.fetch_sub(1, Relaxed);
        tracing::debug!(room = %room.id(), "room unloaded");
        true
    }

    /// Lets go of every room (the node stops); `release` is given each one's state, locked,
    /// to let go of what the backend holds.
    pub fn unload_all(&self, mut release: impl FnMut(&mut R::State)) {
        let cells: Vec<_> = self.lock().drain().collect();
        for (_, cell) in cells {
            if let Some(room) = cell.get() {
                let mut st = room.core().lock();
                if !*st.unloaded() {
                    *st.unloaded() = true;
                    release(&mut st);
                    self.metrics.rooms_loaded.fetch_sub(1, Relaxed);
                }
            }
        }
    }

    /// The rooms, loaded or loading. Lock order: this map, then a room's state.
    pub fn lock(&self) -> MutexGuard<'_, RoomCells<R>> {
        self.cells.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rooms held or loading now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Joins a member to the room it asks for, holding the room first: loaded by `load` if
    /// this node does not hold it yet, then `admit`ted into.
    ///
    /// The room's cell is added under the map's lock, where the cap is checked, so that
    /// concurrent joins of new rooms cannot overshoot it together; rooms already held are
    /// never refused. At the cap, `make_room` may free a place (true) before the join is
    /// refused as [`JoinError::Overloaded`]. Concurrent joins of one room share a single load;
    /// a load that fails leaves no cell behind, so the next join tries again.
    pub async fn join<Fut>(
        &self,
        mut request: JoinRequest,
        mut make_room: impl FnMut(&mut RoomCells<R>) -> bool,
        load: impl Fn(RoomId) -> Fut,
        mut admit: impl FnMut(&Arc<R>, JoinRequest) -> Admission,
    ) -> Result<Joined, JoinError>
    where
        Fut: Future<Output = Result<Arc<R>, JoinError>>,
    {
        loop {
            if self.stop.is_cancelled() {
                return Err(JoinError::ShuttingDown);
            }
            let id = request.room.clone();
            let cell = {
                let mut held = self.lock();
                if self.max != 0
                    && held.len() >= self.max
                    && !held.contains_key(&id)
                    && !make_room(&mut held)
                {
                    return Err(JoinError::Overloaded);
                }
                held.entry(id.clone()).or_default().clone()
            };
            let loaded = || async {
                let room = load(id.clone()).await?;
                self.metrics.rooms_loaded.fetch_add(1, Relaxed);
                Ok(room)
            };
            let room = match cell.get_or_try_init(loaded).await {
                Ok(room) => room.clone(),
                Err(e) => {
                    let mut held = self.lock();
                    if held
                        .get(&id)
                        .is_some_and(|c| Arc::ptr_eq(c, &cell) && !c.initialized())
                    {
                        held.remove(&id);
                    }
                    return Err(e);
                }
            };
            match admit(&room, request) {
                Admission::Joined(joined) => return Ok(joined),
                Admission::Refused(e) => return Err(e),
                Admission::Unloaded(back) => {
                    // Let go of outside a join (its store lost writes, say): the map must not
                    // hand it out again.
                    let mut held = self.lock();
                    if held
                        .get(&back.room)
                        .and_then(|c| c.get())
                        .is_some_and(|r| Arc::ptr_eq(r, &room))
                    {
                        held.remove(&back.room);
                    }
                    request = back;
                }
            }
        }
    }
}

/// A failure of the sequencer's backing systems.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SequencerError(pub String);

/// The embedded store failed (its own message).
impl From<crate::store::StoreError> for SequencerError {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.to_string())
    }
}
