//! A room's task: delivers what arrives on the room's channel strictly in seq order (a seq
//! jump, a reconnect or a full inbox makes it read the missing range from the log first; a new
//! history makes it reload the room and send every local member a new Welcome), keeps the
//! other nodes' members up to date, flushes cursors, stores compactions, and unloads the room
//! once it has been empty for a while.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kokuban_protocol::{Epoch, MemberId, PresenceEvent, Seq, Sequenced, ServerMsg};
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

use super::Shared;
use super::redis::{Announced, Command, Inbound, LogEntry, Outcome, Unreachable};
use super::room::{
    Live, Remote, Room, Settled, decode_op, foreign_frame, send_answers, try_unload,
};
use super::writer::Job;
use crate::sequencer::WriteRefused;
use crate::sequencer::room::{Checkpoint, frame};
use crate::unix_ms;

mod catch_up;

use catch_up::catch_up;

/// What the room task is told besides channel messages.
#[derive(Debug)]
pub(super) enum Control {
    /// Messages may have been missed, or the history may have changed: read the log.
    Resync,
    /// The writer lost the answers to ops of these members; once Redis is back, read the log
    /// and refuse every one of them that is not there.
    Resolve {
        in_doubt: Vec<(MemberId, u64)>,
        /// The ops could be applied until this moment on Redis's clock.
        deadline: u64,
        done: oneshot::Sender<()>,
    },
    /// Everyone in the room on every node, as Redis listed them when asked at `asked`.
    Members {
        list: Vec<Announced>,
        asked: Instant,
    },
}

/// A new base snapshot the room took, to be stored in Redis.
#[derive(Debug)]
struct Compaction {
    epoch: Epoch,
    seq: Seq,
    board: Bytes,
}

/// How long a node that can name none of a version's authors waits before it stores the
/// version, so that the node holding them stores it first (with their names).
const UNNAMED_VERSION_DELAY: Duration = Duration::from_millis(500);

/// The room task: delivery in order, catch-up, presence heartbeats, cursors, unloading.
pub(super) async fn run(
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
        let unload_at = room
            .lock()
            .roster
            .empty_since()
            .map(|t| t + settings.room.room_grace);
        let result = tokio::select! {
            _ = shared.stop.cancelled() => return,
            Some(c) = control.recv() => on_control(&shared, &room, c).await,
            Some(m) = inbox.recv() => on_inbound(&shared, &room, m).await,
            _ = tick.tick() => {
                let head = room.lock().history.head().0;
                let gap = room.sequenced_hint.load(Relaxed) > head;
                let r = if behind || (gap && lagging) {
                    let r = catch_up(&shared, &room).await.map(drop);
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
                shared.redis.wait_up(&room.keys).await;
            }, if behind => {
                let r = catch_up(&shared, &room).await.map(drop);
                behind = r.is_err();
                r
            }
            _ = room.core.woken() => {
                if cursors_due.is_none() && room.lock().roster.has_cursors() {
                    // The coalescing window: moves within it replace each other.
                    cursors_due = Some(Instant::now() + settings.room.cursor_interval);
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
        if let Err(e) = result {
            if !behind {
                tracing::debug!(room = %room.id, "catch-up postponed: {e}");
            }
            behind = true;
        }
    }
}

async fn on_control(shared: &Arc<Shared>, room: &Arc<Room>, c: Control) -> Result<(), Unreachable> {
    match c {
        Control::Resync => {
            // Caught up first: it clears the request, so that a failure below can ask again.
            catch_up(shared, room).await?;
            // A link reset may be among the messages missed: its members must still go.
            match shared
                .redis
                .db(&room.keys)
                .link_generation(&room.keys)
                .await
            {
                Ok(generation) => shared.links.advance(&room.id, generation),
                Err(e) => {
                    room.request_resync();
                    return Err(e);
                }
            }
            Ok(())
        }
        Control::Resolve {
            in_doubt,
            deadline,
            done,
        } => {
            // Read until a read happens after the deadline on Redis's clock: from then on none
            // of these ops can be applied, so what the log holds is all that ever will be.
            loop {
                match catch_up(shared, room).await {
                    Ok(now) if now > deadline => break,
                    Ok(now) => {
                        tokio::time::sleep(Duration::from_millis(deadline - now + 1)).await;
                    }
                    Err(_) => tokio::select! {
                        _ = shared.stop.cancelled() => return Ok(()),
                        _ = shared.redis.wait_up(&room.keys) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                }
            }
            // Everything Redis sequenced is delivered now: what is still pending was not.
            for (member, entry) in in_doubt {
                room.settle_entry(member, entry, Settled::Refused(WriteRefused::ReadOnly));
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
        Inbound::Op { epoch, entry } => {
            let (in_order, due) = {
                let st = room.lock();
                let head = st.history.position();
                let next = head.seq.next();
                // An op this node has already delivered must be the one it holds there: if
                // not, the history went back in time under it (Redis restarted from older
                // data) and another node is writing a different one.
                let known = entry.seq > head.seq
                    || st
                        .history
                        .authors()
                        .at(entry.seq)
                        .is_none_or(|at| at == (entry.author, entry.n));
                (
                    epoch == head.epoch && entry.seq <= next && known,
                    entry.seq == next,
                )
            };
            if !in_order {
                // Another history, a gap, or a history that went back: the log says which.
                return catch_up(shared, room).await.map(drop);
            }
            if !due {
                return Ok(());
            }
            // Until the replicas hold it, the op stays in the log: a refusal here leaves the
            // room behind, and the catch-up that follows delivers it once they do.
            shared.redis.replicas(&room.keys).confirm().await?;
            let compaction = {
                let mut st = room.lock();
                let head = st.history.position();
                (head.epoch == epoch && head.seq.next() == entry.seq)
                    .then(|| deliver(shared, room, &mut st, epoch, &entry))
                    .flatten()
            };
            store_compaction(shared, room, compaction);
            Ok(())
        }
        Inbound::Reset => catch_up(shared, room).await.map(drop),
        Inbound::Links { generation } => {
            shared.links.advance(&room.id, generation);
            Ok(())
        }
        Inbound::Ephemeral { node, frame } => {
            if node != shared.redis.node {
                on_ephemeral(room, frame);
            }
            Ok(())
        }
    }
}

/// Applies the op that follows the head and sends it to every local member; its author gets
/// the Ack instead when it is the op the author waits for. A pipeline that timed out may still
/// reach Redis later (its bytes were in flight), and its ops, already refused, then arrive like
/// anyone else's, not as Acks. Returns the new base when compaction is due.
fn deliver(
    shared: &Arc<Shared>,
    room: &Room,
    st: &mut Live,
    epoch: Epoch,
    entry: &LogEntry,
) -> Option<Compaction> {
    let (seq, author) = (entry.seq, entry.author);
    let op = decode_op(entry);
    let now = unix_ms();
    if let Some(due) = st.history.checkpoint_before(author, &op, now) {
        let version = due.named(now, |a| st.roster.name_of(|local| local.author == a));
        store_version(shared, room, version);
    }
    let sequenced = Sequenced {
        epoch,
        seq,
        author,
        op,
    };
    let op_frame = match st.history.append(sequenced, entry.n) {
        Ok(frames) => frames.live,
        Err(e) => {
            tracing::error!(room = %room.id, "op out of order not delivered: {e}");
            return None;
        }
    };
    // Redis holds it: durable as far as this node can tell.
    st.history.authors_mut().durable_through(seq);
    let departures = st.roster.deliver(&op_frame, |_, seat| {
        if seat.extra.author != author {
            return None;
        }
        // The author's own member: the op is its Ack if it is the one it waits for, and a
        // retry of it may now be owed its Ack too.
        // Everything before it reached the member first: its Ack names the next place.
        let answers = &mut seat.extra.answers;
        let first = if answers.delivered(entry.n) {
            seat.link.send(frame(&ServerMsg::Acked(seq.0 as u8)))
        } else {
            seat.link.send(op_frame.clone())
        };
        let owed = answers.due(seq);
        Some(first.and_then(|()| send_answers(seat, epoch, owed)))
    });
    room.settle(st, departures);
    // Joins and Redis memory follow the board, not its history.
    st.history.compaction_due().then(|| Compaction {
        board: st.history.compact(),
        epoch,
        seq,
    })
}

/// Keeps a version of the room's board in Redis in the background. Every node holding the room
/// finds the same versions due; Redis keeps each once, from the first node to store it. A node
/// names only the authors it holds, so one that can name nobody lets the others go first.
fn store_version(shared: &Arc<Shared>, room: &Room, version: Checkpoint) {
    let (s, keys, id) = (shared.clone(), room.keys.clone(), room.id.clone());
    let keep = shared.settings.room.checkpoints;
    let store = async move {
        if version.info.authors.is_empty() {
            tokio::time::sleep(UNNAMED_VERSION_DELAY).await;
        }
        let db = s.redis.db(&keys);
        match db.checkpoint(&keys, &version, keep).await {
            Ok(true) => {
                s.metrics.versions_kept.fetch_add(1, Relaxed);
            }
            // Another node kept it first.
            Ok(false) => {}
            Err(e) => tracing::warn!(room = %id, seq = version.info.seq, "version not kept: {e}"),
        }
    };
    shared.tasks.spawn(store.instrument(shared.span.clone()));
}

/// Stores a compaction in Redis in the background, unless one is being stored already.
fn store_compaction(shared: &Arc<Shared>, room: &Arc<Room>, compaction: Option<Compaction>) {
    let Some(c) = compaction else { return };
    if room.compacting.swap(true, Relaxed) {
        return;
    }
    let (s, r) = (shared.clone(), room.clone());
    shared
        .tasks
        .spawn(async move { compact(&s, &r, c).await }.instrument(shared.span.clone()));
}

/// Writes the node's snapshot to Redis and trims the log, if no other node is doing it.
async fn compact(shared: &Shared, room: &Room, c: Compaction) {
    let token = format!("{:016x}", rand::random::<u64>());
    let db = shared.redis.db(&room.keys);
    // The lock outlives a slow snapshot upload but not a node that died holding it.
    let ttl = shared.settings.redis_timeout * 5;
    if let Ok(true) = db.lock_compaction(&room.keys, &token, ttl).await {
        let keep = shared.settings.keep_before_snapshot;
        match db.compact(&room.keys, c.epoch, c.seq, &c.board, keep).await {
            Ok(true) => {
                shared.metrics.compactions.fetch_add(1, Relaxed);
                tracing::debug!(room = %room.id, seq = c.seq.0, "room compacted in Redis");
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(room = %room.id, "compaction skipped: {e}"),
        }
        let _ = db.unlock_compaction(&room.keys, &token).await;
    }
    room.compacting.store(false, Relaxed);
}

/// A presence or cursor frame from another node: remembered, and forwarded as it is.
fn on_ephemeral(room: &Room, bytes: Bytes) {
    let Some((msg, bytes)) = foreign_frame(&bytes) else {
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
        ServerMsg::Laser(l) => st.remote.contains_key(&l.member),
        ServerMsg::Camera(c) => st.remote.contains_key(&c.member),
        ServerMsg::AskToFollow(m) => st.remote.contains_key(&m),
        _ => false,
    };
    if forward {
        let departures = st.roster.broadcast(&bytes, None);
        room.settle(&st, departures);
    }
}

/// Compares the members Redis lists with the ones this node knows, and tells local members
/// the difference: this is how the members of a node that died disappear, once their entries
/// expire.
fn on_members(shared: &Shared, room: &Room, list: Vec<Announced>, asked: Instant) {
    let mine = shared.redis.node;
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
        let departures = st.roster.broadcast(&left, None);
        room.settle(&st, departures);
    }
    for (id, a) in live {
        if st.remote.contains_key(&id) || st.departed.contains_key(&id) {
            continue;
        }
        if let Some((ServerMsg::Presence(PresenceEvent::Joined(info)), joined)) =
            foreign_frame(&a.frame)
        {
            st.remote.insert(
                id,
                Remote {
                    info,
                    since: Instant::now(),
                },
            );
            let departures = st.roster.broadcast(&joined, None);
            room.settle(&st, departures);
        }
    }
}

/// Refreshes this node's members in Redis and asks who else is there.
fn heartbeat(shared: &Arc<Shared>, room: &Arc<Room>) {
    if !shared.redis.db(&room.keys).is_up() {
        return;
    }
    let st = room.lock();
    let (tx, rx) = oneshot::channel();
    let job = Job {
        reply: Some(tx),
        ..Job::new(
            Command::Heartbeat {
                members: st
                    .roster
                    .seats()
                    .map(|(id, s)| (id, s.extra.joined.clone()))
                    .collect(),
            },
            None,
        )
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

/// Sends the cursors that moved to the local members and to the other nodes.
fn flush_cursors(shared: &Shared, room: &Room) {
    let mut st = room.lock();
    let (frames, departures) = st.roster.flush_cursors();
    // Ephemeral: if the writer is full or Redis down, these moves are simply not relayed.
    if shared.redis.db(&room.keys).is_up() {
        for frame in frames {
            st.push(Command::Publish { frame });
        }
    }
    room.settle(&st, departures);
}
