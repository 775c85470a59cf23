//! One room as a cluster node holds it: the board as of the last op delivered here, the local
//! members, the members of other nodes, and two tasks.
//!
//! - The **writer** sends the room's commands to Redis in the order they were made (a member's
//!   ops in its order), as pipelines: everything queued while one pipeline is in flight goes in
//!   the next, so a busy room costs one round trip per batch, not per op.
//! - The **room task** delivers what arrives on the room's channel, strictly in seq order: a
//!   seq jump, a reconnect or a full inbox makes it read the missing range from the log first;
//!   a new history (epoch) makes it reload the room and send every local member a new Welcome.
//!
//! A member's own op comes back to its node on the channel like everyone else's and is turned
//! into an Ack there, so the Ack takes its place in the room's order. Each member keeps the
//! queue of its ops not yet answered; an op that could not be sequenced is answered with an
//! error frame at its place in that queue, so answers (Acks and errors) come in the order the
//! ops were sent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kokuban_board::Board;
use kokuban_protocol::{
    Ack, Bounded, ClientMsg, Color, Cursor, CursorUpdate, Epoch, ErrorCode, ErrorFrame, List,
    Member, MemberId, Name, Op, PresenceEvent, RoomId, RoomState, Seq, Sequenced, ServerMsg,
    Welcome, decode_client, decode_server, encode_client, encode_server,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

use super::Shared;
use super::redis::{Announced, Command, Inbound, Keys, LogEntry, Outcome, Route, Unreachable};
use crate::sequencer::{
    JoinError, JoinRequest, Joined, KickReason, MemberLink, Membership, WriteRefused,
};

/// Channel messages a room holds while its task is busy (reading a gap, say). Beyond it they
/// are dropped and read back from the log, so a stuck room costs bounded memory.
const INBOX_FRAMES: usize = 8192;
/// Commands a room's writer holds. Beyond it writes are refused as read-only: Redis is not
/// keeping up, and queuing more would only grow memory and latency.
const WRITER_QUEUE: usize = 4096;
/// Commands in one pipeline.
const MAX_BATCH: usize = 512;

/// A loaded room.
#[derive(Debug)]
pub(super) struct Room {
    pub id: RoomId,
    pub keys: Keys,
    /// This load of the room (its subscription route).
    pub serial: u64,
    state: Mutex<Live>,
    control: mpsc::UnboundedSender<Control>,
    /// A catch-up is already asked for.
    resync_asked: Arc<AtomicBool>,
    /// Wakes the room task: a cursor to flush, or the room became empty.
    wake: Notify,
    /// The highest seq this node's writer got back in the current history: if delivery stays
    /// behind it, a channel message was lost without a reconnect, and the log is read.
    sequenced_hint: AtomicU64,
    compacting: AtomicBool,
}

/// What the room task is told besides channel messages.
#[derive(Debug)]
enum Control {
    /// Messages may have been missed, or the history may have changed: read the log.
    Resync,
    /// The writer lost the answers to ops of these members; once Redis is back, read the log
    /// and answer every one of them that is not there with an error.
    Resolve {
        in_doubt: Vec<(MemberId, u64)>,
        done: oneshot::Sender<()>,
    },
    /// Everyone in the room on every node, as Redis listed them when asked at `asked`.
    Members {
        list: Vec<Announced>,
        asked: Instant,
    },
}

/// One command for the writer, and who waits for its outcome.
#[derive(Debug)]
struct Job {
    command: Command,
    /// The member and entry of an op.
    entry: Option<(MemberId, u64)>,
    reply: Option<oneshot::Sender<Outcome>>,
    /// When it was queued: an op that waited longer than the Redis timeout is refused unsent.
    queued: Instant,
}

/// The room's state. `board` is at `(epoch, head)`; `base` is the board's snapshot at
/// `base_seq`, and `tail` holds exactly the ops after it up to `head`, so that a joiner gets
/// either a replay from the tail or `base` plus the tail.
#[derive(Debug)]
struct Live {
    epoch: Epoch,
    board: Board,
    head: Seq,
    base: Bytes,
    base_seq: Seq,
    tail: Vec<Sequenced>,
    tail_bytes: usize,
    members: HashMap<MemberId, Local>,
    /// Members on other nodes.
    remote: HashMap<MemberId, Remote>,
    /// Members seen leaving (ids are never reused), so that a stale list does not revive them.
    departed: HashMap<MemberId, Instant>,
    cursors: HashMap<MemberId, Option<Cursor>>,
    empty_since: Option<Instant>,
    unloaded: bool,
    writer: Option<mpsc::Sender<Job>>,
    next_entry: u64,
    /// Members told to resume while their ops were in doubt: the writer drops their ops that
    /// are still queued, since their clients resend whatever was not answered.
    abandoned: HashSet<MemberId>,
}

#[derive(Debug)]
struct Local {
    info: Member,
    /// Its `Presence(Joined)` frame, as kept in the members hash.
    joined: Bytes,
    link: MemberLink,
    /// Its ops not answered yet, oldest first.
    outstanding: VecDeque<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Sent to Redis (or about to be), with the digest of its encoded op; the Ack comes when
    /// that op is delivered.
    Pending(u64, u64),
    /// Not sequenced; the error goes out once the ops before it are answered.
    Failed(u64),
}

#[derive(Debug)]
struct Remote {
    info: Member,
    since: Instant,
}

fn frame(msg: &ServerMsg) -> Bytes {
    Bytes::from(encode_server(msg))
}

fn refusal() -> Bytes {
    frame(&ServerMsg::Error(ErrorFrame::new(
        ErrorCode::TemporarilyReadOnly,
        "the board cannot be saved right now; try again shortly",
    )))
}

/// Tells an op from the others of its author (encoding is deterministic).
fn op_digest(encoded: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    encoded.hash(&mut h);
    h.finish()
}

pub(super) fn new_epoch(old: Option<Epoch>) -> Epoch {
    loop {
        let e = Epoch(rand::random());
        if Some(e) != old {
            return e;
        }
    }
}

fn decode_op(entry: &LogEntry) -> Op {
    match decode_client(&entry.op) {
        Ok(ClientMsg::Op(op)) => op,
        // Only a node speaking another protocol version writes this; the seq must still be
        // filled for the order to stay gapless, so it becomes an op that changes nothing.
        _ => {
            tracing::error!(
                seq = entry.seq.0,
                "unreadable op in the room log, applied as a no-op"
            );
            Op::Erase {
                ids: Bounded::new(Vec::new()).unwrap_or_else(|_| unreachable!("empty fits")),
            }
        }
    }
}

fn joined_member(frame: &[u8]) -> Option<Member> {
    match decode_server(frame) {
        Ok(ServerMsg::Presence(PresenceEvent::Joined(m))) => Some(m),
        _ => None,
    }
}

/// A room as read from Redis, ready to be held.
struct Fetched {
    epoch: Epoch,
    board: Board,
    base: Bytes,
    base_seq: Seq,
    tail: Vec<Sequenced>,
    tail_bytes: usize,
    members: Vec<Announced>,
}

/// Reads a room: its snapshot, then the log after it. A room without a history (new, or lost
/// by Redis) gets a new one with an empty board: a room id with a valid token always opens.
async fn fetch(shared: &Shared, keys: &Keys, id: &RoomId) -> Result<Fetched, Unreachable> {
    let db = &shared.db;
    // The history can change while it is read (a node re-seeds it): start over then.
    for _ in 0..8 {
        let mut first = db.read_room(keys, None).await?;
        let members = std::mem::take(&mut first.members);
        let Some(epoch) = first.epoch else {
            let e = new_epoch(None);
            db.seed(keys, e, &Board::at_start_of(e).snapshot(), None)
                .await?;
            continue;
        };
        let snapshot = first.snapshot.clone().filter(|(e, _, _)| *e == epoch);
        let board = snapshot.as_ref().and_then(|(_, seq, bytes)| {
            Board::from_snapshot(bytes).ok().filter(|b| {
                b.position()
                    .is_some_and(|p| p.epoch == epoch && p.seq == *seq)
            })
        });
        let (Some(mut board), Some((_, base_seq, base))) = (board, snapshot) else {
            tracing::error!(room = %id, "the room's snapshot in Redis is unreadable; it starts a new history");
            let e = new_epoch(Some(epoch));
            db.seed(
                keys,
                e,
                &Board::at_start_of(e).snapshot(),
                Some((epoch, Seq(u64::MAX))),
            )
            .await?;
            continue;
        };
        let mut tail = Vec::new();
        let mut tail_bytes = 0;
        let mut read = first;
        let complete = loop {
            let mut hole = false;
            for entry in &read.entries {
                let head = board.position().map_or(Seq(0), |p| p.seq);
                if entry.seq <= head {
                    continue;
                }
                if entry.seq != head.next() {
                    hole = true;
                    break;
                }
                let s = Sequenced {
                    epoch,
                    seq: entry.seq,
                    author: entry.author,
                    op: decode_op(entry),
                };
                if board.apply_sequenced(&s).is_err() {
                    hole = true;
                    break;
                }
                tail_bytes += entry.op.len() + 24;
                tail.push(s);
            }
            let head = board.position().map_or(Seq(0), |p| p.seq);
            if head >= read.head {
                break true;
            }
            if hole || read.entries.is_empty() {
                break false;
            }
            read = db.read_room(keys, Some(head)).await?;
            if read.epoch != Some(epoch) {
                break false;
            }
            if read.head < head {
                break false;
            }
        };
        if !complete {
            if read.epoch == Some(epoch) {
                // The log has a hole (trimmed past its snapshot by the length cap): what was
                // read is all that survived, and it becomes the start of a new history.
                tracing::error!(room = %id, "the room's log has a hole; it starts a new history from what survived");
                let e = new_epoch(Some(epoch));
                board.begin_epoch(e);
                db.seed(keys, e, &board.snapshot(), Some((epoch, Seq(u64::MAX))))
                    .await?;
            }
            continue;
        }
        return Ok(Fetched {
            epoch,
            board,
            base,
            base_seq,
            tail,
            tail_bytes,
            members,
        });
    }
    Err(Unreachable(
        "the room's history kept changing while it was read".into(),
    ))
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, Live> {
        // State is consistent at every await-free step; a panic elsewhere must not poison
        // every member of the room.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn request_resync(&self) {
        if !self.resync_asked.swap(true, Relaxed) {
            let _ = self.control.send(Control::Resync);
        }
    }

    /// Marks an op as not sequenced, answering it once the ops before it are answered.
    fn fail_entry(&self, shared: &Shared, member: MemberId, entry: u64) {
        let mut st = self.lock();
        let Some(m) = st.members.get_mut(&member) else {
            return;
        };
        if let Some(e) = m
            .outstanding
            .iter_mut()
            .find(|e| matches!(e, Entry::Pending(id, _) if *id == entry))
        {
            *e = Entry::Failed(entry);
        }
        if !flush_failed(m) {
            evict(shared, self, &mut st, vec![member]);
        }
    }

    /// Redis stayed unreachable with ops in flight: whether they were sequenced is unknown
    /// until it answers again, and every later answer of their authors waits behind them (the
    /// answers keep the order of the ops). Rather than hear nothing for as long as the outage
    /// lasts, every member with an unanswered op is told to resume; its client resends what
    /// was not answered (ops are idempotent, so one that did get sequenced costs nothing) and
    /// hears at once that the board is read-only.
    fn abandon_unanswered(&self, shared: &Shared) {
        let mut st = self.lock();
        let stuck: Vec<MemberId> = st
            .members
            .iter()
            .filter(|(_, m)| {
                m.outstanding
                    .iter()
                    .any(|e| matches!(e, Entry::Pending(..)))
            })
            .map(|(id, _)| *id)
            .collect();
        let mut slow = Vec::new();
        for id in stuck {
            let Some(m) = st.members.remove(&id) else {
                continue;
            };
            st.cursors.remove(&id);
            st.abandoned.insert(id);
            m.link.kick(KickReason::Resume);
            shared.metrics.members.fetch_sub(1, Relaxed);
            shared.metrics.in_doubt_disconnects.fetch_add(1, Relaxed);
            tracing::info!(room = %self.id, member = %id, "Redis unreachable with ops in flight: member told to resume");
            let left = frame(&ServerMsg::Presence(PresenceEvent::Left(id)));
            for (other, m) in &st.members {
                if m.link.send(left.clone()).is_err() {
                    slow.push(*other);
                }
            }
            push(
                &st,
                Command::Depart {
                    member: id,
                    frame: left,
                },
            );
        }
        evict(shared, self, &mut st, slow);
        if st.members.is_empty() && st.empty_since.is_none() {
            st.empty_since = Some(Instant::now());
            self.wake.notify_one();
        }
    }
}

impl Command {
    /// Roughly what the command weighs in a pipeline.
    fn weight(&self) -> usize {
        64 + match self {
            Command::Sequence { op, .. } => op.len(),
            Command::Announce { joined, frame, .. } => joined.len() + frame.len(),
            Command::Depart { frame, .. } | Command::Publish { frame } => frame.len(),
            Command::Heartbeat { members } => members.iter().map(|(_, f)| 24 + f.len()).sum(),
        }
    }
}

/// Sends the errors at the front of a member's queue. False if its queue is full.
fn flush_failed(m: &mut Local) -> bool {
    while let Some(Entry::Failed(_)) = m.outstanding.front() {
        m.outstanding.pop_front();
        if m.link.send(refusal()).is_err() {
            return false;
        }
    }
    true
}

/// Queues a command for the writer without waiting; false if it cannot take it now.
fn push(st: &Live, command: Command) -> bool {
    st.writer.as_ref().is_some_and(|w| {
        w.try_send(Job {
            command,
            entry: None,
            reply: None,
            queued: Instant::now(),
        })
        .is_ok()
    })
}

/// Sends `frame` to every local member but `except`, dropping those that cannot keep up.
fn broadcast(shared: &Shared, room: &Room, st: &mut Live, frame: &Bytes, except: Option<MemberId>) {
    let mut slow = Vec::new();
    for (id, m) in &st.members {
        if Some(*id) != except && m.link.send(frame.clone()).is_err() {
            slow.push(*id);
        }
    }
    evict(shared, room, st, slow);
}

/// Drops members whose queue is full and announces them as gone, which may drop others.
fn evict(shared: &Shared, room: &Room, st: &mut Live, mut slow: Vec<MemberId>) {
    while let Some(id) = slow.pop() {
        let Some(m) = st.members.remove(&id) else {
            continue;
        };
        st.cursors.remove(&id);
        m.link.kick(KickReason::SlowConsumer);
        shared.metrics.members.fetch_sub(1, Relaxed);
        shared
            .metrics
            .slow_consumer_disconnects
            .fetch_add(1, Relaxed);
        tracing::info!(member = %id, "slow consumer disconnected");
        let left = frame(&ServerMsg::Presence(PresenceEvent::Left(id)));
        for (other, m) in &st.members {
            if m.link.send(left.clone()).is_err() && !slow.contains(other) {
                slow.push(*other);
            }
        }
        push(
            st,
            Command::Depart {
                member: id,
                frame: left,
            },
        );
    }
    if st.members.is_empty() && st.empty_since.is_none() {
        st.empty_since = Some(Instant::now());
        room.wake.notify_one();
    }
}

/// Applies the next op of the room and sends it to every local member (its author gets the
/// Ack). `s.seq` must follow `head`.
fn deliver(
    shared: &Arc<Shared>,
    room: &Arc<Room>,
    st: &mut Live,
    s: Sequenced,
    slow: &mut Vec<MemberId>,
) {
    if let Err(e) = st.board.apply_sequenced(&s) {
        tracing::error!(room = %room.id, "op out of order not delivered: {e}");
        return;
    }
    st.head = s.seq;
    let clears = matches!(s.op, Op::Clear);
    let (epoch, seq, author) = (s.epoch, s.seq, s.author);
    // Encoded once; every member's queue shares the bytes.
    let msg = ServerMsg::Op(s);
    let op_frame = frame(&msg);
    let ServerMsg::Op(s) = msg else {
        unreachable!("built as an op just above")
    };
    // An op of a local member is its Ack only if it is the op the member waits for: a
    // pipeline that timed out may still reach Redis later (its bytes were in flight), and its
    // ops, already answered as refused, then arrive like anyone else's, not as Acks.
    let mut digest = None;
    for (id, m) in st.members.iter_mut() {
        let awaited = *id == author
            && match m.outstanding.front() {
                Some(Entry::Pending(_, d)) => {
                    *d == *digest.get_or_insert_with(|| {
                        op_digest(&encode_client(&ClientMsg::Op(s.op.clone())))
                    })
                }
                _ => false,
            };
        let sent = if awaited {
            m.outstanding.pop_front();
            let ack = frame(&ServerMsg::Ack(Ack { epoch, seq }));
            m.link.send(ack).is_ok() && flush_failed(m)
        } else {
            m.link.send(op_frame.clone()).is_ok()
        };
        if !sent {
            slow.push(*id);
        }
    }
    st.tail_bytes += op_frame.len();
    st.tail.push(s);
    // After a Clear the board is empty and its snapshot tiny; otherwise compact once the ops
    // outgrow their bounds, so that joins and Redis memory follow the board, not its history.
    let settings = &shared.settings;
    if clears
        || st.tail.len() >= settings.compact_after_ops
        || st.tail_bytes >= settings.compact_after_bytes
    {
        st.base = Bytes::from(st.board.snapshot());
        st.base_seq = st.head;
        st.tail.clear();
        st.tail_bytes = 0;
        if !room.compacting.swap(true, Relaxed) {
            let (shared, room) = (shared.clone(), room.clone());
            let (epoch, seq, board) = (st.epoch, st.head, st.base.clone());
            let span = shared.span.clone();
            shared.tasks.clone().spawn(
                async move { compact(&shared, &room, epoch, seq, board).await }.instrument(span),
            );
        }
    }
}

/// Writes the node's snapshot to Redis and trims the log, if no other node is doing it.
async fn compact(shared: &Shared, room: &Room, epoch: Epoch, seq: Seq, board: Bytes) {
    let token = format!("{:016x}", rand::random::<u64>());
    let db = &shared.db;
    // The lock outlives a slow snapshot upload but not a node that died holding it.
    let ttl = shared.settings.redis_timeout * 5;
    if let Ok(true) = db.lock_compaction(&room.keys, &token, ttl).await {
        let keep = shared.settings.keep_before_snapshot;
        match db.compact(&room.keys, epoch, seq, &board, keep).await {
            Ok(true) => {
                shared.metrics.compactions.fetch_add(1, Relaxed);
                tracing::debug!(room = %room.id, seq = seq.0, "room compacted in Redis");
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(room = %room.id, "compaction skipped: {e}"),
        }
        let _ = db.unlock_compaction(&room.keys, &token).await;
    }
    room.compacting.store(false, Relaxed);
}

/// Loads a room on this node: subscribes to its channel, then reads it, so that everything
/// sequenced after the read arrives on the channel and everything before is in the read (the
/// overlap is dropped by seq).
pub(super) async fn open(shared: &Arc<Shared>, id: &RoomId) -> Result<Arc<Room>, JoinError> {
    let unavailable = |e: Unreachable| JoinError::Unavailable(e.to_string());
    if !shared.db.is_up() {
        return Err(JoinError::Unavailable("Redis is unreachable".into()));
    }
    let keys = Keys::of(id);
    let serial = shared.serial.fetch_add(1, Relaxed);
    let (inbox_tx, inbox) = mpsc::channel(INBOX_FRAMES);
    let (control_tx, control) = mpsc::unbounded_channel();
    let resync_asked = Arc::new(AtomicBool::new(false));
    let resync = {
        let (tx, asked) = (control_tx.clone(), resync_asked.clone());
        Arc::new(move || {
            if !asked.swap(true, Relaxed) {
                let _ = tx.send(Control::Resync);
            }
        })
    };
    shared
        .subscriber
        .subscribe(
            &keys.channel,
            Route {
                serial,
                inbox: inbox_tx,
                resync,
            },
        )
        .await
        .map_err(unavailable)?;
    let fetched = match fetch(shared, &keys, id).await {
        Ok(f) => f,
        Err(e) => {
            shared.subscriber.unsubscribe(&keys.channel, serial);
            return Err(unavailable(e));
        }
    };
    let (writer_tx, writer_rx) = mpsc::channel(WRITER_QUEUE);
    let mut live = Live {
        epoch: fetched.epoch,
        head: fetched.board.position().map_or(Seq(0), |p| p.seq),
        board: fetched.board,
        base: fetched.base,
        base_seq: fetched.base_seq,
        tail: fetched.tail,
        tail_bytes: fetched.tail_bytes,
        members: HashMap::new(),
        remote: HashMap::new(),
        departed: HashMap::new(),
        cursors: HashMap::new(),
        empty_since: Some(Instant::now()),
        unloaded: false,
        writer: Some(writer_tx),
        next_entry: 0,
        abandoned: HashSet::new(),
    };
    set_remote(shared, &mut live, fetched.members);
    let room = Arc::new(Room {
        id: id.clone(),
        keys,
        serial,
        state: Mutex::new(live),
        control: control_tx,
        resync_asked,
        wake: Notify::new(),
        sequenced_hint: AtomicU64::new(0),
        compacting: AtomicBool::new(false),
    });
    shared.metrics.rooms_loaded.fetch_add(1, Relaxed);
    tracing::debug!(room = %id, "room loaded from Redis");
    let span = shared.span.clone();
    let (s, r) = (shared.clone(), room.clone());
    shared
        .writers
        .spawn(async move { write(s, r, writer_rx).await }.instrument(span.clone()));
    let (s, r) = (shared.clone(), room.clone());
    shared
        .tasks
        .spawn(async move { run(s, r, inbox, control).await }.instrument(span));
    Ok(room)
}

/// Replaces the other nodes' members by `list` (no events: used with a Welcome).
fn set_remote(shared: &Shared, st: &mut Live, list: Vec<Announced>) {
    st.remote.clear();
    for a in list {
        if a.node == shared.db.node {
            continue;
        }
        if let Some(info) = joined_member(&a.frame) {
            st.remote.insert(
                a.member,
                Remote {
                    info,
                    since: Instant::now(),
                },
            );
        }
    }
}

fn everyone(st: &Live) -> Vec<Member> {
    st.members
        .values()
        .map(|m| m.info.clone())
        .chain(st.remote.values().map(|r| r.info.clone()))
        .collect()
}

/// Why [`admit`] did not add a member.
pub(super) enum NotAdmitted {
    /// The room was unloaded meanwhile: the request, to load it afresh.
    Unloaded(Box<JoinRequest>),
    /// The room has `max_members_per_room` members across the cluster.
    Full,
}

/// Adds a member to a loaded room.
pub(super) fn admit(
    shared: &Arc<Shared>,
    room: &Arc<Room>,
    request: JoinRequest,
) -> Result<Joined, NotAdmitted> {
    let mut st = room.lock();
    if st.unloaded {
        return Err(NotAdmitted::Unloaded(Box::new(request)));
    }
    // Other nodes' members count as last announced (a heartbeat behind at most), so two
    // nodes admitting at the same moment can overshoot by a few; the cap bounds a room's
    // fan-out, not an exact head count.
    let cap = shared.settings.max_members_per_room;
    if cap != 0 && st.members.len() + st.remote.len() >= cap {
        return Err(NotAdmitted::Full);
    }
    let me = request.member.clone();
    let joined = frame(&ServerMsg::Presence(PresenceEvent::Joined(me.clone())));
    // Registered under the same lock as the state read below: every op delivered after this
    // point lands in the member's queue, every op before it is in the state.
    broadcast(shared, room, &mut st, &joined, None);
    st.members.insert(
        me.id,
        Local {
            info: me.clone(),
            joined: joined.clone(),
            link: request.link,
            outstanding: VecDeque::new(),
        },
    );
    st.empty_since = None;
    shared.metrics.members.fetch_add(1, Relaxed);
    // Other nodes learn of the member; if the writer is full or Redis down, the next
    // heartbeat announces it.
    push(
        &st,
        Command::Announce {
            member: me.id,
            joined: joined.clone(),
            frame: joined,
        },
    );
    let replay_from = request
        .resume
        .filter(|p| p.epoch == st.epoch && p.seq >= st.base_seq && p.seq <= st.head);
    let state = match replay_from {
        Some(p) => RoomState::Replay {
            ops: List::from(st.tail[(p.seq.0 - st.base_seq.0) as usize..].to_vec()),
        },
        None => RoomState::Snapshot {
            board: kokuban_protocol::Bytes(st.base.to_vec()),
            ops: List::from(st.tail.clone()),
        },
    };
    let members = everyone(&st);
    let epoch = st.epoch;
    drop(st);
    Ok(Joined {
        epoch,
        state,
        members,
        membership: Box::new(ClusterMembership {
            shared: shared.clone(),
            room: room.clone(),
            member: me.id,
        }),
    })
}

/// Sends the room's commands in order, pipelined.
async fn write(shared: Arc<Shared>, room: Arc<Room>, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        // What the link to Redis carries in time now (it shrinks on a slow link).
        let budget = shared.db.budget();
        let mut bytes = first.command.weight();
        batch.push(first);
        while batch.len() < MAX_BATCH && bytes < budget {
            match jobs.try_recv() {
                Ok(j) => {
                    bytes += j.command.weight();
                    batch.push(j);
                }
                Err(_) => break,
            }
        }
        {
            let mut st = room.lock();
            if !st.abandoned.is_empty() {
                batch.retain(|j| !j.entry.is_some_and(|(m, _)| st.abandoned.contains(&m)));
                // Abandoned members submit nothing more: once the queue is empty, none of
                // their ops is left in it.
                if jobs.is_empty() {
                    st.abandoned.clear();
                }
            }
        }
        // A link that carries less than the room sends (a throttled or lossy path to Redis)
        // would otherwise let the queue, and the wait for an answer, grow to the queue's
        // bound. An op that waited longer than the Redis timeout is refused unsent instead, so
        // that every op is answered within a few timeouts; a stale cursor is simply dropped.
        let stale_after = shared.settings.redis_timeout;
        batch.retain(|j| {
            if j.queued.elapsed() <= stale_after {
                return true;
            }
            match (&j.command, j.entry) {
                (_, Some((member, entry))) => {
                    shared.metrics.store_errors.fetch_add(1, Relaxed);
                    room.fail_entry(&shared, member, entry);
                    false
                }
                (Command::Publish { .. }, _) => false,
                _ => true,
            }
        });
        if batch.is_empty() {
            continue;
        }
        if !shared.db.is_up() {
            // Nothing is sent while Redis is down: these ops were certainly not sequenced.
            for job in batch.drain(..) {
                if let Some((member, entry)) = job.entry {
                    room.fail_entry(&shared, member, entry);
                }
            }
            continue;
        }
        let commands: Vec<&Command> = batch.iter().map(|j| &j.command).collect();
        match shared.db.execute(&room.keys, &commands, bytes).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    settle(&shared, &room, job, outcome);
                }
            }
            Err(e) => {
                shared.metrics.store_errors.fetch_add(1, Relaxed);
                tracing::debug!(room = %room.id, "pipeline failed: {e}");
                let in_doubt: Vec<_> = batch.drain(..).filter_map(|j| j.entry).collect();
                if in_doubt.is_empty() {
                    continue;
                }
                // Whether these ops were sequenced is unknown until Redis answers again. Every
                // later op waits until the room has read its log up to Redis's head and
                // answered these (an Ack for each one found, an error for the others), so
                // that each member's answers keep the order of its ops. A blip is waited
                // out; an outage, or a link too slow to read the log back in time, is not:
                // their authors are told to resume meanwhile.
                let resolution = async {
                    shared.db.wait_up().await;
                    let (done, resolved) = oneshot::channel();
                    if room
                        .control
                        .send(Control::Resolve { in_doubt, done })
                        .is_err()
                    {
                        return false;
                    }
                    resolved.await.is_ok()
                };
                tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    resolved = resolution => if !resolved {
                        // The room task is gone (the node is stopping).
                        return;
                    },
                    _ = tokio::time::sleep(shared.settings.redis_timeout) => {
                        // Nobody waits for the in-doubt ops any more, and nobody else's ops
                        // were behind them: the writer goes on. Those that were sequenced
                        // reach the room like any op it missed (a seq jump, a resync).
                        room.abandon_unanswered(&shared);
                    }
                }
            }
        }
    }
}

fn settle(shared: &Shared, room: &Room, job: Job, outcome: Outcome) {
    match (job.entry, &outcome) {
        (Some(_), Outcome::Sequenced(seq)) => {
            room.sequenced_hint.fetch_max(seq.0, Relaxed);
            shared.metrics.ops_sequenced.fetch_add(1, Relaxed);
        }
        (Some((member, entry)), Outcome::Stale | Outcome::Lost) => {
            room.fail_entry(shared, member, entry);
            room.request_resync();
        }
        (Some((member, entry)), Outcome::Refused(why)) => {
            tracing::warn!(room = %room.id, "Redis refused an op: {why}");
            shared.metrics.store_errors.fetch_add(1, Relaxed);
            room.fail_entry(shared, member, entry);
        }
        (None, Outcome::Refused(why)) => {
            tracing::debug!(room = %room.id, "Redis refused a command: {why}");
        }
        _ => {}
    }
    if let Some(reply) = job.reply {
        let _ = reply.send(outcome);
    }
}

/// The room task: delivery in order, catch-up, presence heartbeats, cursors, unloading.
async fn run(
    shared: Arc<Shared>,
    room: Arc<Room>,
    mut inbox: mpsc::Receiver<Inbound>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let settings = shared.settings.clone();
    let mut tick = tokio::time::interval(settings.heartbeat_every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // A catch-up failed (Redis unreachable): retried until it succeeds.
    let mut behind = false;
    // Delivery was behind the writer's last seq at the previous tick.
    let mut lagging = false;
    let mut cursors_due: Option<Instant> = None;
    let far = || Instant::now() + Duration::from_secs(86_400);
    loop {
        let unload_at = room.lock().empty_since.map(|t| t + settings.room_grace);
        let result = tokio::select! {
            _ = shared.stop.cancelled() => return,
            Some(c) = control.recv() => on_control(&shared, &room, c).await,
            Some(m) = inbox.recv() => on_inbound(&shared, &room, m).await,
            _ = tick.tick() => {
                let head = room.lock().head.0;
                let gap = room.sequenced_hint.load(Relaxed) > head;
                let r = if behind || (gap && lagging) {
                    let r = catch_up(&shared, &room).await;
                    behind = r.is_err();
                    r
                } else {
                    Ok(())
                };
                lagging = gap;
                heartbeat(&shared, &room);
                r
            }
            // A catch-up failed: retried as soon as Redis answers again.
            _ = async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                shared.db.wait_up().await;
            }, if behind => {
                let r = catch_up(&shared, &room).await;
                behind = r.is_err();
                r
            }
            _ = room.wake.notified() => {
                if cursors_due.is_none() && !room.lock().cursors.is_empty() {
                    // The coalescing window: moves within it replace each other.
                    cursors_due = Some(Instant::now() + settings.cursor_interval);
                }
                Ok(())
            }
            _ = tokio::time::sleep_until(cursors_due.unwrap_or_else(far).into()) => {
                cursors_due = None;
                flush_cursors(&shared, &room);
                Ok(())
            }
            _ = tokio::time::sleep_until(unload_at.unwrap_or_else(far).into()) => {
                if try_unload(&shared, &room) {
                    return;
                }
                Ok(())
            }
        };
        match result {
            Ok(()) => {}
            Err(e) => {
                if !behind {
                    tracing::debug!(room = %room.id, "catch-up postponed: {e}");
                }
                behind = true;
            }
        }
    }
}

async fn on_control(shared: &Arc<Shared>, room: &Arc<Room>, c: Control) -> Result<(), Unreachable> {
    match c {
        Control::Resync => catch_up(shared, room).await,
        Control::Resolve { in_doubt, done } => {
            loop {
                match catch_up(shared, room).await {
                    Ok(()) => break,
                    Err(_) => tokio::select! {
                        _ = shared.stop.cancelled() => return Ok(()),
                        _ = shared.db.wait_up() => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                }
            }
            // Everything Redis sequenced is delivered now: what is still pending was not.
            for (member, entry) in in_doubt {
                room.fail_entry(shared, member, entry);
            }
            let _ = done.send(());
            Ok(())
        }
        Control::Members { list, asked } => {
            on_members(shared, room, list, asked);
            Ok(())
        }
    }
}

async fn on_inbound(shared: &Arc<Shared>, room: &Arc<Room>, m: Inbound) -> Result<(), Unreachable> {
    match m {
        Inbound::Op {
            epoch,
            seq,
            author,
            op,
        } => {
            let in_order = {
                let mut st = room.lock();
                let in_order = epoch == st.epoch && seq <= st.head.next();
                if in_order && seq == st.head.next() {
                    let s = Sequenced {
                        epoch,
                        seq,
                        author,
                        op: decode_op(&LogEntry { seq, author, op }),
                    };
                    let mut slow = Vec::new();
                    deliver(shared, room, &mut st, s, &mut slow);
                    evict(shared, room, &mut st, slow);
                }
                in_order
            };
            if in_order {
                Ok(())
            } else {
                // Another history, or a gap: the log says what happened.
                catch_up(shared, room).await
            }
        }
        Inbound::Reset => catch_up(shared, room).await,
        Inbound::Ephemeral { node, frame } => {
            if node != shared.db.node {
                on_ephemeral(shared, room, frame);
            }
            Ok(())
        }
    }
}

/// Reads the log from the room's head and delivers what is there; reloads the room when its
/// history changed, and seeds a new history from this node's board when Redis lost it.
async fn catch_up(shared: &Arc<Shared>, room: &Arc<Room>) -> Result<(), Unreachable> {
    room.resync_asked.store(false, Relaxed);
    loop {
        let (epoch, head) = {
            let st = room.lock();
            (st.epoch, st.head)
        };
        let read = shared.db.read_room(&room.keys, Some(head)).await?;
        match read.epoch {
            Some(e) if e == epoch && read.head >= head => {}
            Some(e) if e != epoch => return reload(shared, room).await,
            _ => {
                // The history is gone (Redis restarted without persistence) or went back
                // (it lost its last writes): what this node holds is what survived.
                let new = new_epoch(Some(epoch));
                let board = {
                    let mut b = room.lock().board.clone();
                    b.begin_epoch(new);
                    b.snapshot()
                };
                if shared
                    .db
                    .seed(&room.keys, new, &board, Some((epoch, head)))
                    .await?
                    == new
                {
                    tracing::warn!(room = %room.id, "Redis lost the room's history; it starts a new one from this node's board");
                }
                return reload(shared, room).await;
            }
        }
        if read.head == head {
            room.sequenced_hint.fetch_min(head.0, Relaxed);
            return Ok(());
        }
        if read.entries.first().map(|e| e.seq) != Some(head.next()) {
            // Compacted past this node's head: the gap cannot be replayed to its members.
            return reload(shared, room).await;
        }
        tracing::debug!(room = %room.id, from = head.0 + 1, ops = read.entries.len(), "delivering missed ops from the log");
        let mut st = room.lock();
        let mut slow = Vec::new();
        for e in &read.entries {
            if st.epoch != epoch || e.seq != st.head.next() {
                break;
            }
            let s = Sequenced {
                epoch,
                seq: e.seq,
                author: e.author,
                op: decode_op(e),
            };
            deliver(shared, room, &mut st, s, &mut slow);
        }
        evict(shared, room, &mut st, slow);
    }
}

/// Reads the room afresh. A new history: every local member has its unanswered ops refused,
/// then gets a new Welcome with the new board (the protocol's way to say "start over"). The
/// same history (this node fell too far behind): members are disconnected to resume, since
/// the ops they missed can no longer be replayed one by one.
async fn reload(shared: &Arc<Shared>, room: &Arc<Room>) -> Result<(), Unreachable> {
    let f = fetch(shared, &room.keys, &room.id).await?;
    let mut st = room.lock();
    let same_history = f.epoch == st.epoch;
    st.head = f.board.position().map_or(Seq(0), |p| p.seq);
    st.epoch = f.epoch;
    st.board = f.board;
    st.base = f.base;
    st.base_seq = f.base_seq;
    st.tail = f.tail;
    st.tail_bytes = f.tail_bytes;
    set_remote(shared, &mut st, f.members);
    room.sequenced_hint.store(0, Relaxed);
    let ids: Vec<MemberId> = st.members.keys().copied().collect();
    if same_history {
        tracing::warn!(room = %room.id, "node fell behind the room's log; its members resume");
        for id in &ids {
            if let Some(m) = st.members.get(id) {
                m.link.kick(KickReason::Resume);
            }
        }
        return Ok(());
    }
    tracing::info!(room = %room.id, epoch = st.epoch.0, "room has a new history; members get a fresh board");
    let members = everyone(&st);
    let state = RoomState::Snapshot {
        board: kokuban_protocol::Bytes(st.base.to_vec()),
        ops: List::from(st.tail.clone()),
    };
    let epoch = st.epoch;
    let mut slow = Vec::new();
    for id in ids {
        let Some(m) = st.members.get_mut(&id) else {
            continue;
        };
        // Ops sent before the new Welcome are answered before it; none can be acknowledged
        // any more, since the history they were sent for is gone.
        let unanswered = m.outstanding.len();
        m.outstanding.clear();
        let mut ok = (0..unanswered).all(|_| m.link.send(refusal()).is_ok());
        let welcome = frame(&ServerMsg::Welcome(Welcome {
            member: id,
            capability: m.info.capability,
            epoch,
            state: state.clone(),
            members: List::from(members.clone()),
        }));
        ok = ok && m.link.send(welcome).is_ok();
        if !ok {
            slow.push(id);
        }
    }
    evict(shared, room, &mut st, slow);
    Ok(())
}

/// A presence or cursor frame from another node: remembered, and forwarded as it is.
fn on_ephemeral(shared: &Shared, room: &Room, bytes: Bytes) {
    let Ok(msg) = decode_server(&bytes) else {
        return;
    };
    let mut st = room.lock();
    let forward = match msg {
        ServerMsg::Presence(PresenceEvent::Joined(m) | PresenceEvent::Updated(m)) => {
            if st.departed.contains_key(&m.id) {
                false
            } else {
                st.remote.insert(
                    m.id,
                    Remote {
                        info: m,
                        since: Instant::now(),
                    },
                );
                true
            }
        }
        ServerMsg::Presence(PresenceEvent::Left(id)) => {
            st.departed.insert(id, Instant::now());
            st.remote.remove(&id).is_some()
        }
        ServerMsg::Cursor(c) => st.remote.contains_key(&c.member),
        _ => false,
    };
    if forward {
        broadcast(shared, room, &mut st, &bytes, None);
    }
}

/// Compares the members Redis lists with the ones this node knows, and tells local members
/// the difference: this is how the members of a node that died disappear, once their entries
/// expire.
fn on_members(shared: &Shared, room: &Room, list: Vec<Announced>, asked: Instant) {
    let mine = shared.db.node;
    let live: HashMap<MemberId, Announced> = list
        .into_iter()
        .filter(|a| a.node != mine)
        .map(|a| (a.member, a))
        .collect();
    let mut st = room.lock();
    let forget_after = shared.settings.presence_ttl * 3;
    st.departed.retain(|_, t| t.elapsed() < forget_after);
    // Only members known before the list was asked for: a newer one may be missing from it.
    let gone: Vec<MemberId> = st
        .remote
        .iter()
        .filter(|(id, r)| !live.contains_key(id) && r.since < asked)
        .map(|(id, _)| *id)
        .collect();
    for id in gone {
        st.remote.remove(&id);
        st.departed.insert(id, Instant::now());
        tracing::debug!(room = %room.id, member = %id, "member of another node expired");
        let left = frame(&ServerMsg::Presence(PresenceEvent::Left(id)));
        broadcast(shared, room, &mut st, &left, None);
    }
    for (id, a) in live {
        if st.remote.contains_key(&id) || st.departed.contains_key(&id) {
            continue;
        }
        if let Some(info) = joined_member(&a.frame) {
            st.remote.insert(
                id,
                Remote {
                    info,
                    since: Instant::now(),
                },
            );
            broadcast(shared, room, &mut st, &a.frame, None);
        }
    }
}

/// Refreshes this node's members in Redis and asks who else is there.
fn heartbeat(shared: &Arc<Shared>, room: &Arc<Room>) {
    if !shared.db.is_up() {
        return;
    }
    let st = room.lock();
    let (tx, rx) = oneshot::channel();
    let job = Job {
        command: Command::Heartbeat {
            members: st
                .members
                .iter()
                .map(|(id, m)| (*id, m.joined.clone()))
                .collect(),
        },
        entry: None,
        reply: Some(tx),
        queued: Instant::now(),
    };
    let asked = Instant::now();
    // Through the writer, so that it is ordered with this node's announcements and departures.
    if st.writer.as_ref().is_some_and(|w| w.try_send(job).is_ok()) {
        let control = room.control.clone();
        shared.tasks.spawn(async move {
            if let Ok(Outcome::Members(list)) = rx.await {
                let _ = control.send(Control::Members { list, asked });
            }
        });
    }
}

fn flush_cursors(shared: &Shared, room: &Room) {
    let mut st = room.lock();
    let cursors: Vec<_> = st.cursors.drain().collect();
    for (member, at) in cursors {
        let f = frame(&ServerMsg::Cursor(CursorUpdate { member, at }));
        broadcast(shared, room, &mut st, &f, Some(member));
        // Ephemeral: if the writer is full or Redis down, this move is simply not relayed.
        if shared.db.is_up() {
            push(&st, Command::Publish { frame: f });
        }
    }
}

fn try_unload(shared: &Shared, room: &Room) -> bool {
    let mut rooms = shared.rooms();
    let mut st = room.lock();
    let expired = st
        .empty_since
        .is_some_and(|t| t.elapsed() >= shared.settings.room_grace);
    if !st.members.is_empty() || !expired || st.unloaded {
        return st.unloaded;
    }
    st.unloaded = true;
    // The writer sends what it holds, then ends.
    st.writer = None;
    let ours = rooms
        .get(&room.id)
        .and_then(|cell| cell.get())
        .is_some_and(|r| std::ptr::eq(Arc::as_ptr(r), room));
    if ours {
        rooms.remove(&room.id);
    }
    drop(st);
    drop(rooms);
    shared.metrics.rooms_loaded.fetch_sub(1, Relaxed);
    // The last member left a while ago: the node stops receiving the room's traffic.
    shared
        .subscriber
        .unsubscribe(&room.keys.channel, room.serial);
    tracing::debug!(room = %room.id, "room unloaded");
    true
}

/// Marks a room unloaded at shutdown: its writer sends what it holds, then ends.
pub(super) fn close(shared: &Shared, room: &Room) {
    let mut st = room.lock();
    if !st.unloaded {
        st.unloaded = true;
        st.writer = None;
        shared.metrics.rooms_loaded.fetch_sub(1, Relaxed);
    }
}

/// A member of a room held by this node.
#[derive(Debug)]
struct ClusterMembership {
    shared: Arc<Shared>,
    room: Arc<Room>,
    member: MemberId,
}

impl ClusterMembership {
    /// Refuses an op in its place: at once if nothing of the member's is unanswered, else
    /// after the ops before it.
    fn refuse(st: &mut Live, member: MemberId) -> Result<(), WriteRefused> {
        let entry = st.next_entry;
        st.next_entry += 1;
        match st.members.get_mut(&member) {
            Some(m) if !m.outstanding.is_empty() => {
                m.outstanding.push_back(Entry::Failed(entry));
                Ok(())
            }
            _ => Err(WriteRefused::ReadOnly),
        }
    }
}

impl Membership for ClusterMembership {
    fn submit(&self, op: Op) -> Result<(), WriteRefused> {
        let shared = &self.shared;
        let mut st = self.room.lock();
        let Some(m) = st.members.get(&self.member) else {
            return Err(WriteRefused::Gone);
        };
        if !shared.db.is_up() || m.outstanding.len() >= shared.settings.max_outstanding {
            return Self::refuse(&mut st, self.member);
        }
        crate::sequencer::vet_behind(&st.board, self.member, &op, m.outstanding.len())?;
        let entry = st.next_entry;
        let op = encode_client(&ClientMsg::Op(op));
        let digest = op_digest(&op);
        let job = Job {
            command: Command::Sequence {
                epoch: st.epoch,
                head: st.head,
                author: self.member,
                op,
            },
            entry: Some((self.member, entry)),
            reply: None,
            queued: Instant::now(),
        };
        // Queued under the room lock, so the writer's order is the order of each member's
        // queue of unanswered ops.
        let queued = st.writer.as_ref().is_some_and(|w| w.try_send(job).is_ok());
        if !queued {
            return Self::refuse(&mut st, self.member);
        }
        st.next_entry += 1;
        if let Some(m) = st.members.get_mut(&self.member) {
            m.outstanding.push_back(Entry::Pending(entry, digest));
        }
        Ok(())
    }

    fn cursor(&self, at: Option<Cursor>) {
        let mut st = self.room.lock();
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
        let mut st = self.room.lock();
        let Some(m) = st.members.get_mut(&self.member) else {
            return;
        };
        m.info.name = name;
        m.info.color = color;
        let info = m.info.clone();
        m.joined = frame(&ServerMsg::Presence(PresenceEvent::Joined(info.clone())));
        let joined = m.joined.clone();
        let updated = frame(&ServerMsg::Presence(PresenceEvent::Updated(info)));
        broadcast(
            &self.shared,
            &self.room,
            &mut st,
            &updated,
            Some(self.member),
        );
        push(
            &st,
            Command::Announce {
                member: self.member,
                joined,
                frame: updated,
            },
        );
    }
}

impl Drop for ClusterMembership {
    fn drop(&mut self) {
        let mut st = self.room.lock();
        if st.members.remove(&self.member).is_none() {
            // Already dropped as a slow consumer, and announced then.
            return;
        }
        self.shared.metrics.members.fetch_sub(1, Relaxed);
        st.cursors.remove(&self.member);
        let left = frame(&ServerMsg::Presence(PresenceEvent::Left(self.member)));
        broadcast(&self.shared, &self.room, &mut st, &left, None);
        push(
            &st,
            Command::Depart {
                member: self.member,
                frame: left,
            },
        );
        if st.members.is_empty() {
            st.empty_since = Some(Instant::now());
            self.room.wake.notify_one();
        }
    }
}
