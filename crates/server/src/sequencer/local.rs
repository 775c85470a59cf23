//! The single-node sequencer: the room core, the embedded [`Store`], and one task per room.
//!
//! Each loaded room is one mutex around its [`History`] and [`Roster`]. Sequencing an op takes
//! the lock, gives it the next seq, applies it to the board, encodes its frame once, pushes it
//! (without waiting) into every member's queue, the Ack into the author's, and hands the frame
//! to the store; nothing under the lock awaits. Holding the lock across the fan-out is what
//! makes every member see the same order. The room's task only coalesces cursors and unloads
//! the room once it has been empty for a while.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kokuban_protocol::{Epoch, MemberId, Position, RoomId, Seq, ServerMsg, decode_kept_server};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::room::{
    CheckpointInfo, CompactAfter, Departures, History, Locked, RoomSettings, Roster, new_epoch,
};
use super::{
    Admission, Done, HeldRooms, JoinError, JoinRequest, Joined, KickReason, LinkGenerations,
    QueueFull, Sequencer, SequencerError, Unload,
};
use crate::BoxFuture;
use crate::blob::{Blob, BlobHash, BlobStored};
use crate::metrics::Metrics;
use crate::store::{Durability, Store, StoredRoom};

mod membership;

use membership::LocalMembership;

/// Bytes of a room's ops handed to the store and not yet on disk beyond which the room refuses
/// writes (temporarily read-only) until the disk catches up: a room that floods the store
/// slows itself, not every room of the node.
const MAX_UNDURABLE_BYTES: usize = 8 << 20;

/// The in-process [`Sequencer`].
#[derive(Debug, Clone)]
pub struct LocalSequencer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    settings: RoomSettings,
    metrics: Arc<Metrics>,
    rooms: HeldRooms<Room>,
    stop: CancellationToken,
    tasks: TaskTracker,
    links: LinkGenerations,
}

#[derive(Debug)]
struct Room {
    id: RoomId,
    core: Locked<Live>,
    /// The sequencer, to let go of the room when the store loses its writes.
    shared: Weak<Shared>,
}

/// A loaded room: the core, what of it is durable, and whether it was let go.
#[derive(Debug)]
struct Live {
    history: History,
    /// Each member with its author.
    roster: Roster<MemberId>,
    /// Ops up to this seq are on disk.
    durable: Seq,
    /// Members whose queue is held behind the Ack of the op at that seq, oldest first.
    awaiting: VecDeque<(Seq, MemberId)>,
    /// Ops handed to the store and not on disk yet (seq, frame bytes), oldest first, and their
    /// bytes.
    undurable: VecDeque<(Seq, usize)>,
    undurable_bytes: usize,
    /// Removed from the map: a join that still holds this room must load it afresh.
    unloaded: bool,
}

super::room::held_room!(Room, Live, MemberId);

impl Durability for Room {
    fn durable(&self, epoch: Epoch, seq: Seq) {
        let mut st = self.lock();
        if st.unloaded || st.history.epoch() != epoch || seq <= st.durable {
            return;
        }
        st.durable = seq;
        st.history.authors_mut().durable_through(seq);
        while st.undurable.front().is_some_and(|(s, _)| *s <= seq) {
            let (_, bytes) = st.undurable.pop_front().unwrap_or_default();
            st.undurable_bytes -= bytes;
        }
        let mut slow = Vec::new();
        while st.awaiting.front().is_some_and(|(s, _)| *s <= seq) {
            let Some((_, member)) = st.awaiting.pop_front() else {
                break;
            };
            let released = st.roster.get(member).map(|m| m.link.release(seq.0));
            if let Some(Err(QueueFull)) = released {
                slow.push(member);
            }
        }
        let departures = st.roster.evict(slow, KickReason::SlowConsumer);
        drop(st);
        self.settle(departures);
    }

    fn lost(&self) {
        // The room's board holds ops the disk does not: let go of it, and let everyone resume
        // from the store's history (a new epoch, since it has a hole), resending what was not
        // acknowledged.
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if !shared.rooms.unload_now(self) {
            return;
        }
        tracing::error!(room = %self.id, "the store lost writes of the room; its members resume");
        let mut st = self.lock();
        let everyone: Vec<MemberId> = st.roster.seats().map(|(id, _)| id).collect();
        let _ = st.roster.evict(everyone, KickReason::Resume);
        self.core.wake();
    }
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, Live> {
        self.core.lock()
    }

    /// Queues `ack`, the answer to an op at `seq`, for `member`: at once if the op is on
    /// disk, otherwise held (with everything after it) until it is.
    fn answer(&self, st: &mut Live, member: MemberId, seq: Seq, ack: Bytes) -> Departures {
        let Some(seat) = st.roster.get(member) else {
            return Departures::default();
        };
        let queued = if seq <= st.durable {
            seat.link.send(ack)
        } else {
            st.awaiting.push_back((seq, member));
            seat.link.hold(seq.0, ack)
        };
        match queued {
            Ok(()) => Departures::default(),
            Err(QueueFull) => st.roster.evict(vec![member], KickReason::SlowConsumer),
        }
    }

    /// Acts on members that left: nobody else is told (there is no other node), but a room
    /// that became empty wakes its task, which unloads it after the grace period.
    fn settle(&self, departures: Departures) {
        if departures.emptied {
            self.core.wake();
        }
    }
}

impl LocalSequencer {
    /// A sequencer over `store`.
    pub fn new(store: Arc<dyn Store>, settings: RoomSettings, metrics: Arc<Metrics>) -> Self {
        let stop = CancellationToken::new();
        let max_rooms = settings.max_rooms;
        let links = LinkGenerations::new(settings.room_grace);
        let shared = Arc::new(Shared {
            store,
            settings,
            rooms: HeldRooms::new(max_rooms, stop.clone(), metrics.clone()),
            metrics,
            stop,
            tasks: TaskTracker::new(),
            links,
        });
        if let Some(ttl) = shared.settings.room_ttl {
            shared.tasks.spawn(sweep_expired(shared.clone(), ttl));
        }
        Self { shared }
    }
}

/// Deletes rooms nobody used for `ttl`, at start and then every sweep interval. Rooms held
/// (loaded, or loading) count as used: their ids go with the request, which is handed to the
/// store under the map's lock, so a room loaded after it finds it deleted rather than being
/// deleted under its members.
async fn sweep_expired(shared: Arc<Shared>, ttl: Duration) {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let before = now.saturating_sub(ttl).as_millis() as u64;
        let expired = {
            let held = shared.rooms.lock();
            shared.store.expire(before, held.keys().cloned().collect())
        };
        match expired.await {
            Ok(gone) if !gone.is_empty() => {
                shared
                    .metrics
                    .rooms_expired
                    .fetch_add(gone.len() as u64, Relaxed);
                tracing::info!(
                    rooms = gone.len(),
                    ?ttl,
                    "rooms unused for the room TTL deleted"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("sweeping expired rooms: {e}"),
        }
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = tokio::time::sleep(shared.settings.room_sweep_interval) => {}
        }
    }
}

impl Shared {
    async fn load(self: &Arc<Self>, id: &RoomId) -> Result<Arc<Room>, JoinError> {
        let stored = self
            .store
            .load_room(id)
            .await
            .map_err(|e| JoinError::Unavailable(e.to_string()))?
            .ok_or(JoinError::NotFound)?;
        let history = self.restore(id, stored)?;
        let room = Arc::new(Room {
            id: id.clone(),
            core: Locked::new(Live {
                durable: history.head(),
                history,
                roster: Roster::new(self.metrics.clone()),
                awaiting: VecDeque::new(),
                undurable: VecDeque::new(),
                undurable_bytes: 0,
                unloaded: false,
            }),
            shared: Arc::downgrade(self),
        });
        let shared = self.clone();
        let task_room = room.clone();
        self.tasks
            .spawn(async move { shared.room_task(task_room).await });
        Ok(room)
    }

    /// Rebuilds a room's history from the store: snapshot, then the ops after it.
    fn restore(&self, id: &RoomId, stored: StoredRoom) -> Result<History, JoinError> {
        let at = Position {
            epoch: stored.epoch,
            seq: stored.snapshot_seq,
        };
        let mut history =
            History::from_snapshot(stored.snapshot, at, CompactAfter::from(&self.settings))
                .map_err(|e| {
                    tracing::error!(room = %id, "stored room is unreadable: {e}");
                    JoinError::Unavailable("stored room is unreadable".into())
                })?;
        history
            .authors_mut()
            .restore(stored.authors.iter().copied());
        let mut complete = true;
        for frame in &stored.ops {
            // Ops kept by the previous protocol version read alike.
            let applied = match decode_kept_server(frame) {
                Ok(ServerMsg::Op(op)) => history.apply(op, frame.len()).map_err(|e| e.to_string()),
                Ok(_) => Err("not an op".to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = applied {
                // Only a failed commit leaves a hole; what follows it cannot be applied.
                tracing::error!(room = %id, "stored op skipped, and the ops after it: {e}");
                complete = false;
                break;
            }
        }
        if stored.history_uncertain || !complete {
            // Acknowledged ops may be missing from this history (the node crashed, or a
            // commit failed). A client that saw them must not resume onto it: start a new
            // epoch from what survived, which every client takes as a fresh snapshot.
            let old = history.epoch();
            let epoch = new_epoch(Some(old));
            tracing::warn!(room = %id, old = old.0, new = epoch.0, "room starts a new epoch");
            let base = history.begin_epoch(epoch);
            self.store.compact(id, epoch, history.head(), base);
            self.metrics.compactions.fetch_add(1, Relaxed);
        }
        Ok(history)
    }

    /// Adds a member to a room this node holds.
    fn admit(self: &Arc<Self>, room: &Arc<Room>, request: JoinRequest) -> Admission {
        let mut st = room.lock();
        if st.unloaded {
            return Admission::Unloaded(request);
        }
        if self.settings.is_full(st.roster.len()) {
            return Admission::Refused(JoinError::RoomFull);
        }
        let me = request.member.id;
        // Registered first, under the same lock as the state read below: every op sequenced
        // after this point lands in the member's queue, every op before it is in the state.
        let (_, departures) = st
            .roster
            .admit(request.member, request.link, request.author);
        room.settle(departures);
        let (state, parts) = st.history.welcome_for(request.resume);
        let joined = Joined {
            epoch: st.history.epoch(),
            state,
            parts,
            members: st.roster.members().collect(),
            decided: st.history.authors().decided(request.author),
            membership: Box::new(LocalMembership {
                shared: self.clone(),
                room: room.clone(),
                member: me,
                author: request.author,
            }),
        };
        Admission::Joined(joined)
    }

    /// Flushes cursors while members come and go; unloads the room once it has been empty
    /// for the grace period.
    async fn room_task(self: Arc<Self>, room: Arc<Room>) {
        loop {
            let unload_at = {
                let st = room.lock();
                if st.unloaded {
                    return;
                }
                st.roster
                    .empty_since()
                    .map(|t| t + self.settings.room_grace)
            };
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                _ = room.core.woken() => {}
                _ = tokio::time::sleep_until(unload_at.unwrap_or(far).into()) => {
                    match self.rooms.unload_if_idle(&room, self.settings.room_grace) {
                        Unload::Now(_) | Unload::Already => return,
                        Unload::Busy => continue,
                    }
                }
                _ = self.stop.cancelled() => return,
            }
            if room.lock().roster.has_cursors() {
                // The coalescing window: moves within it replace each other.
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.cursor_interval) => {}
                    _ = self.stop.cancelled() => return,
                }
                let mut st = room.lock();
                let (_, departures) = st.roster.flush_cursors();
                room.settle(departures);
            }
        }
    }
}

impl Sequencer for LocalSequencer {
    fn store_new_room<'a>(&'a self, room: &'a RoomId, first: (Epoch, Bytes)) -> Done<'a> {
        Box::pin(async move {
            Ok(self
                .shared
                .store
                .create_room(room, first.0, first.1)
                .await?)
        })
    }

    fn join(&self, request: JoinRequest) -> BoxFuture<'_, Result<Joined, JoinError>> {
        let shared = &self.shared;
        Box::pin(shared.rooms.join(
            request,
            move |rooms| shared.rooms.unload_one_empty(rooms),
            move |id| async move { shared.load(&id).await },
            move |room, request| shared.admit(room, request),
        ))
    }

    fn link_generation<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<u64, SequencerError>> {
        Box::pin(async move { Ok(self.shared.store.link_generation(room).await?) })
    }

    fn reset_links<'a>(
        &'a self,
        room: &'a RoomId,
        from: u64,
    ) -> BoxFuture<'a, Result<Option<u64>, SequencerError>> {
        Box::pin(async move { Ok(self.shared.store.reset_links(room, from).await?) })
    }

    fn checkpoints<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<Vec<CheckpointInfo>, SequencerError>> {
        Box::pin(async move { Ok(self.shared.store.checkpoints(room).await?) })
    }

    fn checkpoint_board<'a>(
        &'a self,
        room: &'a RoomId,
        id: u64,
    ) -> BoxFuture<'a, Result<Option<Bytes>, SequencerError>> {
        Box::pin(async move { Ok(self.shared.store.checkpoint_board(room, id).await?) })
    }

    fn history_for_viewers<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<bool, SequencerError>> {
        Box::pin(async move { Ok(self.shared.store.history_for_viewers(room).await?) })
    }

    fn set_history_for_viewers<'a>(
        &'a self,
        room: &'a RoomId,
        allowed: bool,
    ) -> BoxFuture<'a, Result<bool, SequencerError>> {
        Box::pin(async move {
            Ok(self
                .shared
                .store
                .set_history_for_viewers(room, allowed)
                .await?)
        })
    }

    fn store_blob<'a>(
        &'a self,
        room: &'a RoomId,
        blob: Blob,
        budget: u64,
    ) -> BoxFuture<'a, Result<BlobStored, SequencerError>> {
        Box::pin(async move { Ok(self.shared.store.store_blob(room, blob, budget).await?) })
    }

    fn blob<'a>(
        &'a self,
        room: &'a RoomId,
        hash: BlobHash,
    ) -> BoxFuture<'a, Result<Option<Blob>, SequencerError>> {
        Box::pin(async move { Ok(self.shared.store.blob(room, hash).await?) })
    }

    fn link_generations(&self) -> &LinkGenerations {
        &self.shared.links
    }

    fn rooms_loaded(&self) -> usize {
        self.shared.rooms.len()
    }

    fn is_ready(&self) -> bool {
        self.shared.store.accepting_writes()
    }

    fn is_alive(&self) -> bool {
        !self.shared.store.is_broken()
    }

    fn shutdown(&self) -> Done<'_> {
        Box::pin(async move {
            let shared = &self.shared;
            shared.stop.cancel();
            shared.tasks.close();
            shared.tasks.wait().await;
            shared.rooms.unload_all(|_| {});
            Ok(shared.store.close().await?)
        })
    }
}

#[cfg(test)]
mod tests;
