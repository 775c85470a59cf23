//! A room's writer: sends the room's commands to Redis in the order they were made (a member's
//! ops in its order), as pipelines. Everything queued while one pipeline is in flight goes in
//! the next, so a busy room costs one round trip per batch, not per op.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use kokuban_protocol::MemberId;
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use super::delivery::Control;
use super::redis::{Command, Outcome};
use super::room::{Room, Settled};
use crate::sequencer::WriteRefused;

/// Commands a room's writer holds. Beyond it writes are refused as read-only: Redis is not
/// keeping up, and queuing more would only grow memory and latency.
pub(super) const QUEUE: usize = 4096;
/// Commands in one pipeline.
const MAX_BATCH: usize = 512;
/// How soon a command Redis redirected is sent again (the topology is read again at once).
const FOLLOW_SLOT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// How an op that Redis did not apply is refused: the board is read-only for now.
const READ_ONLY: Settled = Settled::Refused(WriteRefused::ReadOnly);

/// One command for the writer, and who waits for its outcome.
#[derive(Debug)]
pub(super) struct Job {
    pub command: Command,
    /// The member and answer entry of an op.
    pub entry: Option<(MemberId, u64)>,
    pub reply: Option<oneshot::Sender<Outcome>>,
    /// When it was queued: an op that waited longer than the Redis timeout is refused unsent.
    pub queued: Instant,
}

impl Job {
    /// A command queued now; `entry` for an op.
    pub fn new(command: Command, entry: Option<(MemberId, u64)>) -> Self {
        Self {
            command,
            entry,
            reply: None,
            queued: Instant::now(),
        }
    }
}

/// Roughly what a command weighs in a pipeline.
fn weight(command: &Command) -> usize {
    64 + match command {
        Command::Sequence { op, .. } => op.len(),
        Command::Announce { joined, frame, .. } => joined.len() + frame.len(),
        Command::Depart { frame, .. } | Command::Publish { frame } => frame.len(),
        Command::Heartbeat { members } => members.iter().map(|(_, f)| 24 + f.len()).sum(),
    }
}

/// Sends the room's commands in order, pipelined, until the room lets go of its queue.
pub(super) async fn run(shared: Arc<Shared>, room: Arc<Room>, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        // What the link to Redis carries in time now (it shrinks on a slow link).
        let budget = shared.redis.db(&room.keys).budget();
        let mut bytes = weight(&first.command);
        batch.push(first);
        while batch.len() < MAX_BATCH && bytes < budget {
            match jobs.try_recv() {
                Ok(j) => {
                    bytes += weight(&j.command);
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
                    room.settle_entry(member, entry, READ_ONLY);
                    false
                }
                (Command::Publish { .. }, _) => false,
                _ => true,
            }
        });
        if batch.is_empty() {
            continue;
        }
        let db = shared.redis.db(&room.keys);
        if !db.is_up() || !shared.redis.replicas(&room.keys).enough() {
            // Nothing is sent while Redis is down, or while fewer replicas than wanted hold
            // its latest writes: these ops were certainly not sequenced.
            for job in batch.drain(..) {
                if let Some((member, entry)) = job.entry {
                    room.settle_entry(member, entry, READ_ONLY);
                }
            }
            continue;
        }
        // Each op may be applied only until this moment on Redis's clock: once Redis's clock
        // is past it, an op whose answer was lost can be refused for good.
        let deadline = db.redis_now_ms() + shared.settings.redis_timeout.as_millis() as u64;
        for job in &mut batch {
            if let Command::Sequence { deadline_ms, .. } = &mut job.command {
                *deadline_ms = deadline;
            }
        }
        let commands: Vec<&Command> = batch.iter().map(|j| &j.command).collect();
        match db.execute(&room.keys, &commands, bytes).await {
            Ok(outcomes) => {
                let moved = conclude_all(&shared, &room, &mut batch, outcomes);
                if !moved.is_empty() && !follow_slot(&shared, &room, moved).await {
                    return;
                }
            }
            Err(e) => {
                shared.metrics.store_errors.fetch_add(1, Relaxed);
                tracing::debug!(room = %room.id, "pipeline failed: {e}");
                let in_doubt: Vec<_> = batch.drain(..).filter_map(|j| j.entry).collect();
                if in_doubt.is_empty() {
                    continue;
                }
                if !resolve(&shared, &room, in_doubt, deadline).await {
                    return;
                }
            }
        }
    }
}

/// Concludes every job of `batch` but those whose command was redirected (the room's slot is
/// served elsewhere, or moving), which are returned to be sent again.
fn conclude_all(
    shared: &Shared,
    room: &Room,
    batch: &mut Vec<Job>,
    outcomes: Vec<Outcome>,
) -> Vec<Job> {
    let mut moved = Vec::new();
    for (job, outcome) in batch.drain(..).zip(outcomes) {
        match outcome {
            Outcome::Moved => moved.push(job),
            outcome => conclude(shared, room, job, outcome),
        }
    }
    moved
}

/// Sends commands Redis redirected again, to whichever master serves the room's slot once the
/// topology is read again, for up to the Redis timeout (a slot being migrated answers
/// `TRYAGAIN` until its keys have moved). None of them ran where it was sent, so nothing can
/// be applied twice; an op that never finds its slot in time is refused as read-only (its
/// author sends it again later). False if the node is stopping.
async fn follow_slot(shared: &Shared, room: &Room, mut jobs: Vec<Job>) -> bool {
    let until = tokio::time::Instant::now() + shared.settings.redis_timeout;
    while !jobs.is_empty() && tokio::time::Instant::now() < until {
        tokio::select! {
            _ = shared.stop.cancelled() => return false,
            _ = tokio::time::sleep(FOLLOW_SLOT_EVERY) => {}
        }
        let db = shared.redis.db(&room.keys);
        if !db.is_up() || !shared.redis.replicas(&room.keys).enough() {
            continue;
        }
        let deadline = db.redis_now_ms() + shared.settings.redis_timeout.as_millis() as u64;
        for job in &mut jobs {
            if let Command::Sequence { deadline_ms, .. } = &mut job.command {
                *deadline_ms = deadline;
            }
        }
        let commands: Vec<&Command> = jobs.iter().map(|j| &j.command).collect();
        let bytes = jobs.iter().map(|j| weight(&j.command)).sum();
        match db.execute(&room.keys, &commands, bytes).await {
            Ok(outcomes) => jobs = conclude_all(shared, room, &mut jobs, outcomes),
            Err(e) => {
                shared.metrics.store_errors.fetch_add(1, Relaxed);
                tracing::debug!(room = %room.id, "pipeline failed: {e}");
                let in_doubt: Vec<_> = jobs.drain(..).filter_map(|j| j.entry).collect();
                if in_doubt.is_empty() {
                    return true;
                }
                return resolve(shared, room, in_doubt, deadline).await;
            }
        }
    }
    for job in jobs {
        conclude(shared, room, job, Outcome::Moved);
    }
    true
}

/// Waits out ops whose pipeline failed: whether they were sequenced is unknown until Redis
/// answers again. Every later op waits until the room has read its log, at a moment when
/// Redis's clock is past the ops' `deadline` (so none of them can be applied any more), and
/// answered these (an Ack for each one found, a refusal for the others), so that each member's
/// answers keep the order of its ops. A blip is waited out; an outage, or a link too slow to
/// read the log back in time, is not: their authors are told to resume meanwhile. False if
/// the node is stopping.
async fn resolve(
    shared: &Shared,
    room: &Room,
    in_doubt: Vec<(MemberId, u64)>,
    deadline: u64,
) -> bool {
    let resolution = async {
        shared.redis.wait_up(&room.keys).await;
        let (done, resolved) = oneshot::channel();
        if room
            .control
            .send(Control::Resolve {
                in_doubt,
                deadline,
                done,
            })
            .is_err()
        {
            return false;
        }
        resolved.await.is_ok()
    };
    tokio::select! {
        _ = shared.stop.cancelled() => false,
        // False: the room task is gone (the node is stopping).
        resolved = resolution => resolved,
        _ = tokio::time::sleep(shared.settings.redis_timeout * 2) => {
            // Nobody waits for the in-doubt ops any more, and nobody else's ops were behind
            // them: the writer goes on. Those that were sequenced reach the room like any op
            // it missed (a seq jump, a resync).
            room.abandon_unanswered();
            true
        }
    }
}

/// Acts on what became of one command.
fn conclude(shared: &Shared, room: &Room, job: Job, outcome: Outcome) {
    match (job.entry, &outcome) {
        (Some(_), Outcome::Sequenced(seq)) => {
            room.sequenced_hint.fetch_max(seq.0, Relaxed);
            shared.metrics.ops_sequenced.fetch_add(1, Relaxed);
        }
        (Some((member, entry)), Outcome::Stale | Outcome::Lost) => {
            room.settle_entry(member, entry, READ_ONLY);
            room.request_resync();
        }
        (Some((member, entry)), Outcome::Late) => {
            shared.metrics.store_errors.fetch_add(1, Relaxed);
            room.settle_entry(member, entry, READ_ONLY);
        }
        (Some((member, entry)), Outcome::Duplicate(seq)) => {
            room.settle_entry(member, entry, Settled::AppliedAt(*seq));
        }
        (Some((member, entry)), Outcome::Decided) => {
            room.settle_entry(member, entry, Settled::Refused(WriteRefused::Decided));
        }
        (Some((member, entry)), Outcome::Refused(why)) => {
            tracing::warn!(room = %room.id, "Redis refused an op: {why}");
            shared.metrics.store_errors.fetch_add(1, Relaxed);
            room.settle_entry(member, entry, READ_ONLY);
        }
        (Some((member, entry)), Outcome::Moved) => {
            shared.metrics.store_errors.fetch_add(1, Relaxed);
            room.settle_entry(member, entry, READ_ONLY);
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
