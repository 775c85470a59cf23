//! One room as a cluster node holds it: the room core (history and local members), the members
//! of other nodes, and the queue of the room's writer; loading it from Redis, admitting
//! members, and a member's handle on it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use kokuban_protocol::{
    Ack, Bounded, ClientMsg, Epoch, Member, MemberId, Op, PROTOCOL_VERSION, Position,
    PresenceEvent, RoomId, Seq, Sequenced, ServerMsg, decode_kept_client, decode_kept_server,
    encode_server,
};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::Shared;
use super::answers::{Answer, Answers};
use super::delivery::{self, Control};
use super::redis::{Announced, Command, Keys, LogEntry, Route, Seed, Unreachable};
use super::writer::{self, Job};
use crate::sequencer::room::{
    CompactAfter, Departures, History, Locked, Roster, Seat, frame, new_epoch,
};
use crate::sequencer::{
    Admission, JoinError, JoinRequest, Joined, KickReason, QueueFull, Unload, WriteRefused,
};

mod membership;

use membership::ClusterMembership;

/// Channel messages a room holds while its task is busy (reading a gap, say). Beyond it they
/// are dropped and read back from the log, so a stuck room costs bounded memory.
const INBOX_FRAMES: usize = 8192;

/// A loaded room.
#[derive(Debug)]
pub(super) struct Room {
    pub id: RoomId,
    pub keys: Keys,
    /// This load of the room (its subscription route).
    pub serial: u64,
    pub core: Locked<Live>,
    pub control: mpsc::UnboundedSender<Control>,
    /// A catch-up is already asked for.
    pub resync_asked: Arc<AtomicBool>,
    /// The highest seq this node's writer got back in the current history: if delivery stays
    /// behind it, a channel message was lost without a reconnect, and the log is read.
    pub sequenced_hint: AtomicU64,
    pub compacting: AtomicBool,
}

/// What a local member has besides its seat: its author, its presence frame and its
/// unanswered ops.
#[derive(Debug)]
pub(super) struct Local {
    /// The author of its ops.
    pub author: MemberId,
    /// Its `Presence(Joined)` frame, as kept in the members hash.
    pub joined: Bytes,
    pub answers: Answers,
}

/// A member of another node, as last announced.
#[derive(Debug)]
pub(super) struct Remote {
    pub info: Member,
    pub since: Instant,
}

/// The room's state, under its lock.
#[derive(Debug)]
pub(super) struct Live {
    pub history: History,
    pub roster: Roster<Local>,
    /// Members on other nodes.
    pub remote: HashMap<MemberId, Remote>,
    /// Members seen leaving (ids are never reused), so that a stale list does not revive them.
    pub departed: HashMap<MemberId, Instant>,
    pub unloaded: bool,
    pub writer: Option<mpsc::Sender<Job>>,
    /// Members told to resume while their ops were in doubt: the writer drops their ops that
    /// are still queued, since their clients resend whatever was not answered.
    pub abandoned: HashSet<MemberId>,
}

impl Live {
    /// Queues a command for the writer without waiting; false if it cannot take it now.
    pub fn push(&self, command: Command) -> bool {
        self.writer
            .as_ref()
            .is_some_and(|w| w.try_send(Job::new(command, None)).is_ok())
    }

    /// Everyone in the room on every node.
    pub fn everyone(&self) -> Vec<Member> {
        self.roster
            .members()
            .chain(self.remote.values().map(|r| r.info.clone()))
            .collect()
    }

    /// Sends `member` the answers now owed to it, in order; false if its queue is full.
    pub fn answer(&mut self, member: MemberId) -> bool {
        let head = self.history.position();
        let Some(seat) = self.roster.get_mut(member) else {
            return true;
        };
        let due = seat.extra.answers.due(head.seq);
        send_answers(seat, head.epoch, due).is_ok()
    }
}

crate::sequencer::room::held_room!(Room, Live, Local);

impl Room {
    pub fn lock(&self) -> MutexGuard<'_, Live> {
        self.core.lock()
    }

    pub fn request_resync(&self) {
        if !self.resync_asked.swap(true, Relaxed) {
            let _ = self.control.send(Control::Resync);
        }
    }

    /// Acts on members that left: the other nodes are told, and a room that became empty
    /// wakes its task, which unloads it after the grace period.
    pub fn settle(&self, st: &Live, departures: Departures) {
        for (member, frame) in departures.left {
            st.push(Command::Depart { member, frame });
        }
        if departures.emptied {
            self.core.wake();
        }
    }

    /// Settles what became of op `entry` of `member` (refused, or found applied before) and
    /// sends the answers now owed to it.
    pub fn settle_entry(&self, member: MemberId, entry: u64, outcome: Settled) {
        let mut st = self.lock();
        let Some(seat) = st.roster.get_mut(member) else {
            return;
        };
        match outcome {
            Settled::Refused(why) => seat.extra.answers.fail(entry, why),
            Settled::AppliedAt(seq) => seat.extra.answers.applied_at(entry, seq),
        }
        if !st.answer(member) {
            let departures = st.roster.evict(vec![member], KickReason::SlowConsumer);
            self.settle(&st, departures);
        }
    }

    /// Redis stayed unreachable with ops in flight: whether they were sequenced is unknown
    /// until it answers again, and every later answer of their authors waits behind them (the
    /// answers keep the order of the ops). Rather than hear nothing for as long as the outage
    /// lasts, every member with an unanswered op is told to resume; its client resends what
    /// was not answered (ops are idempotent, so one that did get sequenced costs nothing) and
    /// hears at once that the board is read-only.
    pub fn abandon_unanswered(&self) {
        let mut st = self.lock();
        let stuck: Vec<MemberId> = st
            .roster
            .seats()
            .filter(|(_, s)| s.extra.answers.has_pending())
            .map(|(id, _)| id)
            .collect();
        if stuck.is_empty() {
            return;
        }
        tracing::info!(room = %self.id, members = stuck.len(), "Redis unreachable with ops in flight: members told to resume");
        st.abandoned.extend(stuck.iter().copied());
        let departures = st.roster.evict(stuck, KickReason::Resume);
        self.settle(&st, departures);
    }
}

/// Queues `answers` (of history `epoch`) for the member in `seat`, in order.
pub(super) fn send_answers(
    seat: &Seat<Local>,
    epoch: Epoch,
    answers: Vec<Answer>,
) -> Result<(), QueueFull> {
    answers.into_iter().try_for_each(|a| match a {
        Answer::Ack(seq) => seat.link.send(frame(&ServerMsg::Ack(Ack { epoch, seq }))),
        Answer::Refuse(why) => seat.link.refuse(why),
    })
}

/// What became of an op the writer sent.
#[derive(Debug, Clone, Copy)]
pub(super) enum Settled {
    /// Not applied, for good.
    Refused(WriteRefused),
    /// A retry of the op applied at this seq.
    AppliedAt(Seq),
}

/// The op in a log entry or channel message (the author's encoded `ClientMsg::Op`, written by
/// a node of this protocol version or of the previous one).
pub(super) fn decode_op(entry: &LogEntry) -> Op {
    match decode_kept_client(&entry.op) {
        Ok(ClientMsg::Op(submit)) => submit.op,
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

/// A frame another node sent or announced, decoded, with the frame to forward to this node's
/// members: the same bytes, or, from a node of the previous protocol version in the middle of
/// an upgrade, the message encoded anew in this node's version.
pub(super) fn foreign_frame(bytes: &Bytes) -> Option<(ServerMsg, Bytes)> {
    let msg = decode_kept_server(bytes).ok()?;
    let frame = if bytes.first() == Some(&PROTOCOL_VERSION) {
        bytes.clone()
    } else {
        Bytes::from(encode_server(&msg))
    };
    Some((msg, frame))
}

/// The member of a `Presence(Joined)` frame another node announced.
pub(super) fn joined_member(frame: &[u8]) -> Option<Member> {
    match decode_kept_server(frame) {
        Ok(ServerMsg::Presence(PresenceEvent::Joined(m))) => Some(m),
        _ => None,
    }
}

/// A room as read from Redis, ready to be held.
pub(super) struct Fetched {
    pub history: History,
    pub members: Vec<Announced>,
    /// Redis's clock when it was read.
    pub now_ms: u64,
}

/// Reads a room: its snapshot, then the log after it. A room without a history (new, or lost
/// by Redis) gets a new one with an empty board: a room id with a valid token always opens.
pub(super) async fn fetch(
    shared: &Shared,
    keys: &Keys,
    id: &RoomId,
) -> Result<Fetched, Unreachable> {
    shared
        .redis
        .following(|| fetch_once(shared, keys, id))
        .await
}

async fn fetch_once(shared: &Shared, keys: &Keys, id: &RoomId) -> Result<Fetched, Unreachable> {
    let db = shared.redis.db(keys);
    let compact_after = CompactAfter::from(&shared.settings.room);
    let start_over = |e| History::start(e, compact_after).compact();
    // The history can change while it is read (a node re-seeds it): start over then.
    for _ in 0..8 {
        let mut first = db.read_room(keys, None).await?;
        let members = std::mem::take(&mut first.members);
        let now_ms = first.now_ms;
        let Some(epoch) = first.epoch else {
            let e = new_epoch(None);
            db.seed(keys, e, &start_over(e), Seed::Init).await?;
            continue;
        };
        let history = first
            .snapshot
            .clone()
            .filter(|(e, _, _)| *e == epoch)
            .and_then(|(epoch, seq, board)| {
                History::from_snapshot(board, Position { epoch, seq }, compact_after).ok()
            });
        let Some(mut history) = history else {
            tracing::error!(room = %id, "the room's snapshot in Redis is unreadable; it starts a new history");
            let e = new_epoch(Some(epoch));
            db.seed(keys, e, &start_over(e), Seed::Reseed(epoch, Seq(u64::MAX)))
                .await?;
            continue;
        };
        history
            .authors_mut()
            .restore(std::mem::take(&mut first.authors));
        let mut read = first;
        let complete = loop {
            let mut hole = false;
            for entry in &read.entries {
                if entry.seq <= history.head() {
                    continue;
                }
                let s = Sequenced {
                    epoch,
                    seq: entry.seq,
                    author: entry.author,
                    op: decode_op(entry),
                };
                // About the size of the op's frame, counted toward compaction.
                if history.apply(s, entry.op.len() + 24).is_err() {
                    hole = true;
                    break;
                }
                // Redis holds it: durable as far as this node can tell.
                let authors = history.authors_mut();
                authors.record(entry.seq, entry.author, entry.n);
                authors.durable_through(entry.seq);
            }
            let head = history.head();
            if head >= read.head {
                break true;
            }
            if hole || read.entries.is_empty() {
                break false;
            }
            read = db.read_room(keys, Some(head)).await?;
            if read.epoch != Some(epoch) || read.head < head {
                break false;
            }
        };
        if !complete {
            if read.epoch == Some(epoch) {
                // The log has a hole (trimmed past its snapshot by the length cap): what was
                // read is all that survived, and it becomes the start of a new history.
                tracing::error!(room = %id, "the room's log has a hole; it starts a new history from what survived");
                let e = new_epoch(Some(epoch));
                let board = history.begin_epoch(e);
                db.seed(keys, e, &board, Seed::Reseed(epoch, Seq(u64::MAX)))
                    .await?;
            }
            continue;
        }
        return Ok(Fetched {
            history,
            members,
            now_ms,
        });
    }
    Err(Unreachable(
        "the room's history kept changing while it was read".into(),
    ))
}

/// Loads a room on this node: subscribes to its channel, then reads it, so that everything
/// sequenced after the read arrives on the channel and everything before is in the read (the
/// overlap is dropped by seq).
pub(super) async fn open(shared: &Arc<Shared>, id: &RoomId) -> Result<Arc<Room>, JoinError> {
    let unavailable = |e: Unreachable| JoinError::Unavailable(e.to_string());
    let keys = Keys::of(id);
    if !shared.redis.db(&keys).is_up() {
        return Err(JoinError::Unavailable("Redis is unreachable".into()));
    }
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
        .redis
        .subscribe(
            &keys,
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
            shared.redis.unsubscribe(&keys, serial);
            return Err(unavailable(e));
        }
    };
    let (writer_tx, writer_rx) = mpsc::channel(writer::QUEUE);
    let mut live = Live {
        history: fetched.history,
        roster: Roster::new(shared.metrics.clone()),
        remote: HashMap::new(),
        departed: HashMap::new(),
        unloaded: false,
        writer: Some(writer_tx),
        abandoned: HashSet::new(),
    };
    set_remote(shared, &mut live, fetched.members);
    let room = Arc::new(Room {
        id: id.clone(),
        keys,
        serial,
        core: Locked::new(live),
        control: control_tx,
        resync_asked,
        sequenced_hint: AtomicU64::new(0),
        compacting: AtomicBool::new(false),
    });
    tracing::debug!(room = %id, "room loaded from Redis");
    let span = shared.span.clone();
    let (s, r) = (shared.clone(), room.clone());
    shared
        .writers
        .spawn(async move { writer::run(s, r, writer_rx).await }.instrument(span.clone()));
    let (s, r) = (shared.clone(), room.clone());
    shared
        .tasks
        .spawn(async move { delivery::run(s, r, inbox, control).await }.instrument(span));
    Ok(room)
}

/// Replaces the other nodes' members by `list` (no events: used with a Welcome).
pub(super) fn set_remote(shared: &Shared, st: &mut Live, list: Vec<Announced>) {
    st.remote.clear();
    for a in list {
        if a.node == shared.redis.node {
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

/// Adds a member to a loaded room.
pub(super) fn admit(shared: &Arc<Shared>, room: &Arc<Room>, request: JoinRequest) -> Admission {
    let mut st = room.lock();
    if st.unloaded {
        return Admission::Unloaded(request);
    }
    // Other nodes' members count as last announced (a heartbeat behind at most), so two
    // nodes admitting at the same moment can overshoot by a few; the cap bounds a room's
    // fan-out, not an exact head count.
    if shared
        .settings
        .room
        .is_full(st.roster.len() + st.remote.len())
    {
        return Admission::Refused(JoinError::RoomFull);
    }
    let me = request.member.id;
    // Registered under the same lock as the state read below: every op delivered after this
    // point lands in the member's queue, every op before it is in the state.
    let (joined, departures) = st.roster.admit(
        request.member,
        request.link,
        Local {
            author: request.author,
            joined: Bytes::new(),
            answers: Answers::default(),
        },
    );
    if let Some(seat) = st.roster.get_mut(me) {
        seat.extra.joined = joined.clone();
    }
    room.settle(&st, departures);
    // Other nodes learn of the member; if the writer is full or Redis down, the next
    // heartbeat announces it.
    st.push(Command::Announce {
        member: me,
        joined: joined.clone(),
        frame: joined,
    });
    let (state, parts) = st.history.welcome_for(request.resume);
    let members = st.everyone();
    let epoch = st.history.epoch();
    let decided = st.history.authors().decided(request.author);
    drop(st);
    Admission::Joined(Joined {
        epoch,
        state,
        parts,
        members,
        decided,
        membership: Box::new(ClusterMembership {
            shared: shared.clone(),
            room: room.clone(),
            member: me,
            author: request.author,
        }),
    })
}

/// Unloads a room that has been empty for its grace period; true if it is unloaded.
pub(super) fn try_unload(shared: &Shared, room: &Arc<Room>) -> bool {
    match shared
        .rooms
        .unload_if_idle(room, shared.settings.room.room_grace)
    {
        Unload::Now(mut st) => {
            // The writer sends what it holds, then ends.
            st.writer = None;
            drop(st);
            // The last member left a while ago: the node stops receiving the room's traffic.
            shared.redis.unsubscribe(&room.keys, room.serial);
            true
        }
        Unload::Already => true,
        Unload::Busy => false,
    }
}

#[cfg(test)]
mod tests {
    use kokuban_protocol::{OLDEST_KEPT_VERSION, Submit, decode_server, encode_client};

    use super::*;
    use crate::sequencer::room::fixtures::{member, stroke};

    #[test]
    fn what_a_node_of_the_previous_version_wrote_reads_and_is_forwarded_in_this_one() {
        // An op in the room's log, as the author's frame a node of that version encoded.
        let mut op = encode_client(&ClientMsg::Op(Submit {
            n: 3,
            op: stroke(4),
        }));
        op[0] = OLDEST_KEPT_VERSION;
        let entry = LogEntry {
            seq: Seq(9),
            author: MemberId(1),
            n: 3,
            op: Bytes::from(op),
        };
        assert_eq!(decode_op(&entry), stroke(4));
        // A member it announced: read, and passed on to this node's members in this version.
        let joined = ServerMsg::Presence(PresenceEvent::Joined(member(5)));
        let mut old = encode_server(&joined);
        old[0] = OLDEST_KEPT_VERSION;
        let (msg, frame) = foreign_frame(&Bytes::from(old)).unwrap();
        assert_eq!(msg, joined);
        assert_eq!(decode_server(&frame).unwrap(), joined);
        // This version's frames pass as they are.
        let now = Bytes::from(encode_server(&joined));
        assert_eq!(foreign_frame(&now).unwrap().1, now);
        assert!(foreign_frame(&Bytes::from_static(&[0xff, 1, 2])).is_none());
    }
}
