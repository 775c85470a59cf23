//! The single-node sequencer: rooms ordered in process, boards kept in a [`Store`].
//!
//! Each loaded room is one mutex around its state. Sequencing an op takes the lock, assigns
//! the next seq, applies the op to the in-memory board, encodes the outgoing frame once,
//! pushes it (without waiting) into every member's queue, the Ack into the author's, and
//! hands the frame to the store; nothing under the lock awaits. Holding the lock across the
//! fan-out is what makes every member see the same order.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kokuban_board::Board;
use kokuban_protocol::{
    Ack, Color, Cursor, CursorUpdate, Epoch, List, Member, MemberId, Name, Op, PresenceEvent,
    RoomId, RoomState, Seq, Sequenced, ServerMsg, decode_server, encode_server,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    BoxFuture, JoinError, JoinRequest, Joined, KickReason, MemberLink, Membership, RoomCells,
    Sequencer, SequencerError, WriteRefused, hold_room, vet,
};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Store, StoredRoom};

/// When rooms are compacted and unloaded, and how cursors are paced.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Cursor coalescing window.
    pub cursor_interval: Duration,
    /// How long an empty room stays loaded.
    pub room_grace: Duration,
    /// Compact once this many ops follow the snapshot...
    pub compact_after_ops: usize,
    /// ...or once they weigh this many bytes.
    pub compact_after_bytes: usize,
    /// Rooms held at once; a join that would load one more is refused (0: no cap).
    pub max_rooms: usize,
    /// Members of one room at once; a join beyond it is refused (0: no cap).
    pub max_members_per_room: usize,
}

impl From<&Config> for RoomSettings {
    fn from(c: &Config) -> Self {
        Self {
            cursor_interval: c.cursor_interval,
            room_grace: c.room_grace,
            compact_after_ops: c.compact_after_ops.max(1),
            compact_after_bytes: c.compact_after_bytes.max(1),
            max_rooms: c.max_rooms,
            max_members_per_room: c.max_members_per_room,
        }
    }
}

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
    /// Loaded (or loading) rooms. Lock order: this map, then a room's state.
    rooms: Mutex<RoomCells<Room>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

#[derive(Debug)]
struct Room {
    id: RoomId,
    state: Mutex<Live>,
    /// Wakes the room's task: a cursor to flush, or the room became empty.
    wake: Notify,
}

/// Everything about a loaded room. The log holds exactly the ops after `snapshot_seq`, up to
/// the board's head, contiguous; `snapshot` is the board as of `snapshot_seq`.
#[derive(Debug)]
struct Live {
    epoch: Epoch,
    board: Board,
    head: Seq,
    snapshot: Bytes,
    snapshot_seq: Seq,
    log: Vec<Sequenced>,
    log_bytes: usize,
    members: HashMap<MemberId, Local>,
    /// Latest cursor per member since the last flush.
    cursors: HashMap<MemberId, Option<Cursor>>,
    empty_since: Option<Instant>,
    /// Removed from the map: a join that still holds this room must load it afresh.
    unloaded: bool,
}

#[derive(Debug)]
struct Local {
    info: Member,
    link: MemberLink,
}

fn lock(room: &Room) -> MutexGuard<'_, Live> {
    // A panic while holding the lock would be a bug in this module; the state is still
    // consistent at every await-free step, so keep serving rather than poison every member.
    room.state.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalSequencer {
    /// A sequencer over `store`.
    pub fn new(store: Arc<dyn Store>, settings: RoomSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                settings,
                metrics,
                rooms: Mutex::new(HashMap::new()),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }
}

impl Shared {
    fn rooms(&self) -> MutexGuard<'_, RoomCells<Room>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn load(self: &Arc<Self>, id: &RoomId) -> Result<Arc<Room>, JoinError> {
        let stored = self
            .store
            .load_room(id)
            .await
            .map_err(|e| JoinError::Unavailable(e.to_string()))?
            .ok_or(JoinError::NotFound)?;
        let state = self.restore(id, stored)?;
        let room = Arc::new(Room {
            id: id.clone(),
            state: Mutex::new(state),
            wake: Notify::new(),
        });
        self.metrics.rooms_loaded.fetch_add(1, Relaxed);
        let shared = self.clone();
        let task_room = room.clone();
        self.tasks
            .spawn(async move { shared.room_task(task_room).await });
        Ok(room)
    }

    /// Rebuilds a room's state from the store: snapshot, then the ops after it.
    fn restore(&self, id: &RoomId, stored: StoredRoom) -> Result<Live, JoinError> {
        let corrupt = |what: String| {
            tracing::error!(room = %id, "stored room is unreadable: {what}");
            JoinError::Unavailable("stored room is unreadable".into())
        };
        let mut board =
            Board::from_snapshot(&stored.snapshot).map_err(|e| corrupt(e.to_string()))?;
        if board.position().map(|p| p.epoch) != Some(stored.epoch) {
            return Err(corrupt("snapshot of another epoch".into()));
        }
        let mut log = Vec::with_capacity(stored.ops.len());
        let mut log_bytes = 0;
        let mut complete = true;
        for frame in &stored.ops {
            let applied = match decode_server(frame) {
                Ok(ServerMsg::Op(op)) => board
                    .apply_sequenced(&op)
                    .map(|_| op)
                    .map_err(|e| e.to_string()),
                Ok(_) => Err("not an op".to_string()),
                Err(e) => Err(e.to_string()),
            };
            match applied {
                Ok(op) => {
                    log_bytes += frame.len();
                    log.push(op);
                }
                Err(e) => {
                    // Only a failed commit leaves a hole; what follows it cannot be applied.
                    tracing::error!(room = %id, "stored op skipped, and the ops after it: {e}");
                    complete = false;
                    break;
                }
            }
        }
        let head = board.position().map_or(Seq(0), |p| p.seq);
        let mut state = Live {
            epoch: stored.epoch,
            head,
            snapshot: stored.snapshot,
            snapshot_seq: stored.snapshot_seq,
            board,
            log,
            log_bytes,
            members: HashMap::new(),
            cursors: HashMap::new(),
            empty_since: Some(Instant::now()),
            unloaded: false,
        };
        if stored.history_uncertain || !complete {
            // Acknowledged ops may be missing from this history (the node crashed, or a
            // commit failed). A client that saw them must not resume onto it: start a new
            // epoch from what survived, which every client takes as a fresh snapshot.
            let epoch = new_epoch(state.epoch);
            tracing::warn!(room = %id, old = state.epoch.0, new = epoch.0, "room starts a new epoch");
            state.epoch = epoch;
            state.board.begin_epoch(epoch);
            state.head = Seq(0);
            self.compact(id, &mut state);
        }
        Ok(state)
    }

    /// Writes a snapshot at the head and forgets the log before it.
    fn compact(&self, id: &RoomId, st: &mut Live) {
        st.snapshot = Bytes::from(st.board.snapshot());
        st.snapshot_seq = st.head;
        st.log.clear();
        st.log_bytes = 0;
        self.store
            .compact(id, st.epoch, st.head, st.snapshot.clone());
        self.metrics.compactions.fetch_add(1, Relaxed);
    }

    /// Sends `frame` to every member but `except`. Members whose queue is full are dropped
    /// and announced as gone, which may in turn drop others.
    fn broadcast(&self, st: &mut Live, frame: &Bytes, except: Option<MemberId>) {
        let mut slow = Vec::new();
        for (id, m) in &st.members {
            if Some(*id) != except && m.link.send(frame.clone()).is_err() {
                slow.push(*id);
            }
        }
        self.evict(st, slow);
    }

    fn evict(&self, st: &mut Live, mut slow: Vec<MemberId>) {
        while let Some(id) = slow.pop() {
            let Some(m) = st.members.remove(&id) else {
                continue;
            };
            st.cursors.remove(&id);
            m.link.kick(KickReason::SlowConsumer);
            self.metrics.members.fetch_sub(1, Relaxed);
            self.metrics.slow_consumer_disconnects.fetch_add(1, Relaxed);
            tracing::info!(member = %id, "slow consumer disconnected");
            let left = frame(&ServerMsg::Presence(PresenceEvent::Left(id)));
            for (other, m) in &st.members {
                if m.link.send(left.clone()).is_err() && !slow.contains(other) {
                    slow.push(*other);
                }
            }
        }
        if st.members.is_empty() && st.empty_since.is_none() {
            st.empty_since = Some(Instant::now());
        }
    }

    /// Flushes cursors while members come and go; unloads the room once it has been empty
    /// for the grace period.
    async fn room_task(self: Arc<Self>, room: Arc<Room>) {
        loop {
            let unload_at = {
                let st = lock(&room);
                if st.unloaded {
                    return;
                }
                st.empty_since.map(|t| t + self.settings.room_grace)
            };
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                _ = room.wake.notified() => {}
                _ = tokio::time::sleep_until(unload_at.unwrap_or(far).into()) => {
                    if self.try_unload(&room) {
                        return;
                    }
                    continue;
                }
                _ = self.stop.cancelled() => return,
            }
            let pending = !lock(&room).cursors.is_empty();
            if pending {
                // The coalescing window: moves within it replace each other.
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.cursor_interval) => {}
                    _ = self.stop.cancelled() => return,
                }
                let mut st = lock(&room);
                let cursors: Vec<_> = st.cursors.drain().collect();
                for (member, at) in cursors {
                    let f = frame(&ServerMsg::Cursor(CursorUpdate { member, at }));
                    self.broadcast(&mut st, &f, Some(member));
                }
            }
        }
    }

    /// At the room cap, makes room for a new one by unloading a room nobody is in (one
    /// waiting out its grace period) before its time: the cap is for rooms in use, and an
    /// empty room costs nothing to load again. False if every room held has members.
    fn unload_one_empty(&self, rooms: &mut RoomCells<Room>) -> bool {
        let empty = rooms.iter().find_map(|(id, cell)| {
            let room = cell.get()?;
            let mut st = lock(room);
            if !st.members.is_empty() || st.unloaded {
                return None;
            }
            st.unloaded = true;
            // Its task ends at once rather than when the grace period would have.
            room.wake.notify_one();
            Some(id.clone())
        });
        let Some(id) = empty else {
            return false;
        };
        rooms.remove(&id);
        self.metrics.rooms_loaded.fetch_sub(1, Relaxed);
        tracing::debug!(room = %id, "empty room unloaded early to make room for another");
        true
    }

    fn try_unload(&self, room: &Arc<Room>) -> bool {
        let mut rooms = self.rooms();
        let mut st = lock(room);
        let expired = st
            .empty_since
            .is_some_and(|t| t.elapsed() >= self.settings.room_grace);
        if !st.members.is_empty() || !expired || st.unloaded {
            return st.unloaded;
        }
        st.unloaded = true;
        let ours = rooms
            .get(&room.id)
            .and_then(|cell| cell.get())
            .is_some_and(|r| Arc::ptr_eq(r, room));
        if ours {
            rooms.remove(&room.id);
        }
        self.metrics.rooms_loaded.fetch_sub(1, Relaxed);
        tracing::debug!(room = %room.id, "room unloaded");
        true
    }
}

fn new_epoch(old: Epoch) -> Epoch {
    loop {
        let e = Epoch(rand::random());
        if e != old {
            return e;
        }
    }
}

fn frame(msg: &ServerMsg) -> Bytes {
    Bytes::from(encode_server(msg))
}

impl Sequencer for LocalSequencer {
    fn create_room<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<(), SequencerError>> {
        Box::pin(async move {
            let epoch = Epoch(rand::random());
            let snapshot = Bytes::from(Board::at_start_of(epoch).snapshot());
            self.shared
                .store
                .create_room(room, epoch, snapshot)
                .await
                .map_err(|e| SequencerError(e.to_string()))
        })
    }

    fn join(&self, request: JoinRequest) -> BoxFuture<'_, Result<Joined, JoinError>> {
        Box::pin(async move {
            let shared = &self.shared;
            loop {
                if shared.stop.is_cancelled() {
                    return Err(JoinError::ShuttingDown);
                }
                let room = hold_room(
                    &shared.rooms,
                    &request.room,
                    shared.settings.max_rooms,
                    |rooms| shared.unload_one_empty(rooms),
                    || shared.load(&request.room),
                )
                .await?;
                let mut st = lock(&room);
                if st.unloaded {
                    continue;
                }
                let cap = shared.settings.max_members_per_room;
                if cap != 0 && st.members.len() >= cap {
                    return Err(JoinError::RoomFull);
                }
                let me = request.member.clone();
                // Registered first, under the same lock as the state read below: every op
                // sequenced after this point lands in the member's queue, every op before
                // it is in the state.
                shared.broadcast(
                    &mut st,
                    &frame(&ServerMsg::Presence(PresenceEvent::Joined(me.clone()))),
                    None,
                );
                st.members.insert(
                    me.id,
                    Local {
                        info: me.clone(),
                        link: request.link,
                    },
                );
                st.empty_since = None;
                shared.metrics.members.fetch_add(1, Relaxed);
                let replay_from = request.resume.filter(|p| {
                    p.epoch == st.epoch && p.seq >= st.snapshot_seq && p.seq <= st.head
                });
                let (snapshot, ops) = match replay_from {
                    Some(p) => {
                        let skip = (p.seq.0 - st.snapshot_seq.0) as usize;
                        (None, st.log[skip..].to_vec())
                    }
                    None => (Some(st.snapshot.clone()), st.log.clone()),
                };
                let members = st.members.values().map(|m| m.info.clone()).collect();
                let epoch = st.epoch;
                drop(st);
                let state = match snapshot {
                    None => RoomState::Replay {
                        ops: List::from(ops),
                    },
                    Some(board) => RoomState::Snapshot {
                        board: kokuban_protocol::Bytes(board.to_vec()),
                        ops: List::from(ops),
                    },
                };
                let membership = LocalMembership {
                    shared: shared.clone(),
                    room,
                    member: me.id,
                };
                return Ok(Joined {
                    epoch,
                    state,
                    members,
                    membership: Box::new(membership),
                });
            }
        })
    }

    fn rooms_loaded(&self) -> usize {
        self.shared.rooms().len()
    }

    fn is_ready(&self) -> bool {
        self.shared.store.accepting_writes()
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), SequencerError>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared.stop.cancel();
            shared.tasks.close();
            shared.tasks.wait().await;
            let rooms: Vec<_> = shared.rooms().drain().collect();
            for (_, cell) in rooms {
                if let Some(room) = cell.get() {
                    let mut st = lock(room);
                    if !st.unloaded {
                        st.unloaded = true;
                        shared.metrics.rooms_loaded.fetch_sub(1, Relaxed);
                    }
                }
            }
            shared
                .store
                .close()
                .await
                .map_err(|e| SequencerError(e.to_string()))
        })
    }
}

/// A member of a loaded room.
#[derive(Debug)]
struct LocalMembership {
    shared: Arc<Shared>,
    room: Arc<Room>,
    member: MemberId,
}

impl Membership for LocalMembership {
    fn submit(&self, op: Op) -> Result<(), WriteRefused> {
        let shared = &self.shared;
        if !shared.store.accepting_writes() {
            return Err(WriteRefused::ReadOnly);
        }
        let mut st = lock(&self.room);
        if !st.members.contains_key(&self.member) {
            return Err(WriteRefused::Gone);
        }
        // The board is at `head` and this member's earlier ops are all in it: vet strictly.
        vet(&st.board, self.member, &op)?;
        let clears = matches!(op, Op::Clear);
        let seq = st.head.next();
        let msg = ServerMsg::Op(Sequenced {
            epoch: st.epoch,
            seq,
            author: self.member,
            op,
        });
        let op_frame = frame(&msg);
        let ServerMsg::Op(sequenced) = msg else {
            unreachable!("built as an op just above")
        };
        if let Err(e) = st.board.apply_sequenced(&sequenced) {
            // The board follows `head` exactly; this is a bug, not bad input.
            tracing::error!(room = %self.room.id, "board refused its own next op: {e}");
            return Err(WriteRefused::ReadOnly);
        }
        st.head = seq;
        let ack = frame(&ServerMsg::Ack(Ack {
            epoch: st.epoch,
            seq,
        }));
        let mut slow = Vec::new();
        for (id, m) in &st.members {
            let f = if *id == self.member { &ack } else { &op_frame };
            if m.link.send(f.clone()).is_err() {
                slow.push(*id);
            }
        }
        shared.store.append(&self.room.id, seq, op_frame.clone());
        st.log_bytes += op_frame.len();
        st.log.push(sequenced);
        shared.metrics.ops_sequenced.fetch_add(1, Relaxed);
        // After a Clear the board is empty, so its snapshot is tiny and everything before it
        // is irrelevant: compact at once. Otherwise when the log outgrows its bounds, so that
        // storage and join time follow the board's content, not its history.
        let settings = &shared.settings;
        if clears
            || st.log.len() >= settings.compact_after_ops
            || st.log_bytes >= settings.compact_after_bytes
        {
            shared.compact(&self.room.id, &mut st);
        }
        shared.evict(&mut st, slow);
        Ok(())
    }

    fn cursor(&self, at: Option<Cursor>) {
        let mut st = lock(&self.room);
        if !st.members.contains_key(&self.member) {
            return;
        }
        let first = st.cursors.is_empty();
        st.cursors.insert(self.member, at);
        if first {
            self.room.wake.notify_one();
        }
    }

    fn update_profile(&self, name: Name, color: Color) {
        let mut st = lock(&self.room);
        let Some(m) = st.members.get_mut(&self.member) else {
            return;
        };
        m.info.name = name;
        m.info.color = color;
        let f = frame(&ServerMsg::Presence(PresenceEvent::Updated(m.info.clone())));
        self.shared.broadcast(&mut st, &f, Some(self.member));
    }
}

impl Drop for LocalMembership {
    fn drop(&mut self) {
        let mut st = lock(&self.room);
        if st.members.remove(&self.member).is_none() {
            // Already dropped as a slow consumer, and announced then.
            return;
        }
        self.shared.metrics.members.fetch_sub(1, Relaxed);
        st.cursors.remove(&self.member);
        let left = frame(&ServerMsg::Presence(PresenceEvent::Left(self.member)));
        self.shared.broadcast(&mut st, &left, None);
        if st.members.is_empty() {
            st.empty_since = Some(Instant::now());
            self.room.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RedbStore;
    use kokuban_protocol::{Capability, Point, Position, StrokeId, Tool, Width};

    fn settings(ops: usize, bytes: usize) -> RoomSettings {
        RoomSettings {
            cursor_interval: Duration::from_millis(5),
            room_grace: Duration::from_secs(60),
            compact_after_ops: ops,
            compact_after_bytes: bytes,
            max_rooms: 0,
            max_members_per_room: 0,
        }
    }

    fn member(id: u64) -> Member {
        Member {
            id: MemberId(id),
            name: Name::new("m").unwrap(),
            color: Color::rgb(1, 2, 3),
            capability: Capability::Edit,
        }
    }

    fn stroke(n: u128) -> Op {
        Op::StrokeBegin {
            id: StrokeId(uuid::Uuid::from_u128(n)),
            tool: Tool::Pen,
            color: Color::rgb(0, 0, 0),
            width: Width::new(8).unwrap(),
            first: Point::new(1, 2, 3).unwrap(),
        }
    }

    async fn setup(
        dir: &std::path::Path,
        s: RoomSettings,
    ) -> (LocalSequencer, RoomId, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let store = RedbStore::open(dir, 10_000, Duration::from_secs(1), metrics.clone()).unwrap();
        let seq = LocalSequencer::new(Arc::new(store), s, metrics.clone());
        let room = RoomId::new("room").unwrap();
        seq.create_room(&room).await.unwrap();
        (seq, room, metrics)
    }

    async fn join(
        seq: &LocalSequencer,
        room: &RoomId,
        id: u64,
        resume: Option<Position>,
    ) -> (Joined, super::super::Outbox) {
        let (link, outbox) = MemberLink::channel(1024);
        let joined = seq
            .join(JoinRequest {
                room: room.clone(),
                member: member(id),
                resume,
                link,
            })
            .await
            .unwrap();
        (joined, outbox)
    }

    fn snapshot_of(state: &RoomState) -> (usize, usize) {
        match state {
            RoomState::Snapshot { board, ops } => (board.0.len(), ops.len()),
            RoomState::Replay { ops } => (0, ops.len()),
        }
    }

    #[tokio::test]
    async fn compaction_bounds_the_log_by_count_and_keeps_the_board() {
        let dir = tempfile::tempdir().unwrap();
        let (seq, room, metrics) = setup(dir.path(), settings(10, usize::MAX)).await;
        let (a, _out) = join(&seq, &room, 1, None).await;
        for n in 0..25 {
            a.membership.submit(stroke(n)).unwrap();
        }
        assert_eq!(metrics.compactions.load(Relaxed), 2);
        let (b, _out_b) = join(&seq, &room, 2, None).await;
        let RoomState::Snapshot { board, ops } = &b.state else {
            panic!("snapshot expected")
        };
        assert_eq!(ops.len(), 5);
        let mut rebuilt = Board::from_snapshot(&board.0).unwrap();
        for op in ops.iter() {
            rebuilt.apply_sequenced(op).unwrap();
        }
        assert_eq!(rebuilt.len(), 25);
        assert_eq!(rebuilt.position().unwrap().seq, Seq(25));
        drop((a, b));
        seq.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn compaction_by_bytes_and_on_clear_keeps_the_welcome_small() {
        let dir = tempfile::tempdir().unwrap();
        let (seq, room, _metrics) = setup(dir.path(), settings(usize::MAX, 2000)).await;
        let (a, _out) = join(&seq, &room, 1, None).await;
        for n in 0..200 {
            a.membership.submit(stroke(n)).unwrap();
        }
        let (b, _ob) = join(&seq, &room, 2, None).await;
        let (_, ops) = snapshot_of(&b.state);
        // A StrokeBegin frame is about 40 bytes: the log holds about 2000 bytes of them.
        assert!((1..80).contains(&ops), "log holds {ops} ops");
        a.membership.submit(Op::Clear).unwrap();
        let (c, _oc) = join(&seq, &room, 3, None).await;
        let (board_bytes, ops) = snapshot_of(&c.state);
        assert_eq!(ops, 0);
        assert!(
            board_bytes < 64,
            "empty board snapshot is {board_bytes} bytes"
        );
        drop((a, b, c));
        seq.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn resume_replays_exactly_the_missed_ops_or_falls_back_to_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (seq, room, _) = setup(dir.path(), settings(100, usize::MAX)).await;
        let (a, _out) = join(&seq, &room, 1, None).await;
        for n in 0..5 {
            a.membership.submit(stroke(n)).unwrap();
        }
        let epoch = a.epoch;
        let (b, _ob) = join(&seq, &room, 2, Some(Position { epoch, seq: Seq(3) })).await;
        let RoomState::Replay { ops } = &b.state else {
            panic!("replay expected")
        };
        assert_eq!(
            ops.iter().map(|o| o.seq).collect::<Vec<_>>(),
            vec![Seq(4), Seq(5)]
        );
        // Ahead of the head, or another epoch: a snapshot.
        let (c, _oc) = join(&seq, &room, 3, Some(Position { epoch, seq: Seq(9) })).await;
        assert!(matches!(c.state, RoomState::Snapshot { .. }));
        let (d, _od) = join(
            &seq,
            &room,
            4,
            Some(Position {
                epoch: Epoch(epoch.0 ^ 1),
                seq: Seq(1),
            }),
        )
        .await;
        assert!(matches!(d.state, RoomState::Snapshot { .. }));
        drop((a, b, c, d));
        seq.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn after_a_crash_a_room_starts_a_new_epoch_with_the_board_that_survived() {
        let dir = tempfile::tempdir().unwrap();
        let (old_epoch, board) = {
            // A short grace, so that the abandoned room's task ends and lets go of the store.
            let mut quick = settings(100, usize::MAX);
            quick.room_grace = Duration::from_millis(20);
            let (seq, room, _) = setup(dir.path(), quick).await;
            let (a, _out) = join(&seq, &room, 1, None).await;
            for n in 0..3 {
                a.membership.submit(stroke(n)).unwrap();
            }
            let (b, _ob) = join(&seq, &room, 2, None).await;
            let RoomState::Snapshot { board, ops } = &b.state else {
                panic!()
            };
            let mut rebuilt = Board::from_snapshot(&board.0).unwrap();
            for op in ops.iter() {
                rebuilt.apply_sequenced(op).unwrap();
            }
            // No shutdown: the store never records a clean stop, as in a crash.
            (a.epoch, rebuilt)
        };
        let reopened = loop {
            match RedbStore::open(
                dir.path(),
                10_000,
                Duration::from_secs(1),
                Arc::new(Metrics::default()),
            ) {
                Ok(s) => break s,
                // The old writer thread may hold the file for a moment longer.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let seq = LocalSequencer::new(
            Arc::new(reopened),
            settings(100, usize::MAX),
            Arc::new(Metrics::default()),
        );
        let room = RoomId::new("room").unwrap();
        let resume = board.position();
        let (c, _oc) = join(&seq, &room, 3, resume).await;
        assert_ne!(c.epoch, old_epoch, "a new epoch after an unclean stop");
        let RoomState::Snapshot { board: snap, ops } = &c.state else {
            panic!("a client of the old epoch gets a snapshot, not a replay");
        };
        assert!(ops.is_empty());
        let restored = Board::from_snapshot(&snap.0).unwrap();
        assert_eq!(restored.len(), board.len());
        assert_eq!(restored.position().unwrap().epoch, c.epoch);
        // New ops continue the new epoch from seq 1.
        c.membership.submit(Op::Clear).unwrap();
        drop(c);
        seq.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_kicks_only_that_member() {
        let dir = tempfile::tempdir().unwrap();
        let (seq, room, metrics) = setup(dir.path(), settings(10_000, usize::MAX)).await;
        let (a, mut out_a) = join(&seq, &room, 1, None).await;
        let (slow_link, slow_out) = MemberLink::channel(4);
        let _slow = seq
            .join(JoinRequest {
                room: room.clone(),
                member: member(2),
                resume: None,
                link: slow_link,
            })
            .await
            .unwrap();
        for n in 0..10 {
            a.membership.submit(stroke(n)).unwrap();
        }
        assert!(slow_out.kicked.is_kicked());
        assert_eq!(metrics.slow_consumer_disconnects.load(Relaxed), 1);
        // The author got every ack, plus the slow member's join and departure.
        let mut acks = 0;
        let mut left = 0;
        while let Ok(f) = out_a.frames.try_recv() {
            match decode_server(&f).unwrap() {
                ServerMsg::Ack(_) => acks += 1,
                ServerMsg::Presence(PresenceEvent::Left(MemberId(2))) => left += 1,
                _ => {}
            }
        }
        assert_eq!((acks, left), (10, 1));
        drop(a);
        seq.shutdown().await.unwrap();
    }
}
