//! A member's outbound path: the room's end ([`MemberLink`]) pushes without waiting into a
//! bounded queue, the session's end ([`Outbox`]) writes it to the socket. A queue that is full
//! means the member cannot keep up; the room kicks it rather than wait.
//!
//! The queue can be held back: an Ack may only go out once its op is durable, and nothing
//! queued after it may overtake it, so from an Ack on the member's entries wait behind a gate
//! until the room says the op is durable ([`MemberLink::hold`], [`MemberLink::release`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::WriteRefused;

/// Why the room dropped a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickReason {
    /// Its send queue was full.
    SlowConsumer,
    /// The node lost track of the member's ops in flight, or of the room's log: the member
    /// resumes, and its client resends what was not acknowledged.
    Resume,
}

/// One entry of a member's queue.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// An encoded server frame, shared by every member it goes to.
    Frame(Bytes),
    /// One of the member's ops was not sequenced; the session says why (an error frame), in
    /// this place among the member's answers.
    Refused(WriteRefused),
}

#[derive(Debug, Default)]
struct Kick {
    token: CancellationToken,
    reason: OnceLock<KickReason>,
}

/// Entries held back behind an Ack that waits for durability.
#[derive(Debug, Default)]
struct Gate {
    /// A fast check for the common case, an open gate; `held` decides under its lock.
    closed: AtomicBool,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    /// The gate opens once ops up to this seq are durable.
    until: u64,
    entries: VecDeque<Outgoing>,
}

/// The room's end of a member's outbound path: a bounded queue and a way to tell the session
/// it was dropped.
#[derive(Debug, Clone)]
pub struct MemberLink {
    queue: mpsc::Sender<Outgoing>,
    capacity: usize,
    gate: Arc<Gate>,
    kick: Arc<Kick>,
}

/// The session's end of [`MemberLink`].
#[derive(Debug)]
pub struct Outbox {
    /// What to send, in order.
    pub queue: mpsc::Receiver<Outgoing>,
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
    /// A link whose queue holds `capacity` entries, and its outbox.
    pub fn channel(capacity: usize) -> (MemberLink, Outbox) {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let kick = Arc::new(Kick::default());
        (
            MemberLink {
                queue: tx,
                capacity,
                gate: Arc::default(),
                kick: kick.clone(),
            },
            Outbox {
                queue: rx,
                kicked: KickSignal { kick },
            },
        )
    }

    /// Queues a frame without waiting. A full queue is the caller's cue to kick the member.
    pub fn send(&self, frame: Bytes) -> Result<(), QueueFull> {
        self.push(Outgoing::Frame(frame))
    }

    /// Queues the refusal of one of the member's ops, in its place among the answers.
    pub fn refuse(&self, why: WriteRefused) -> Result<(), QueueFull> {
        self.push(Outgoing::Refused(why))
    }

    /// Queues `ack`, the Ack of an op at `seq` that is not durable yet, and holds it and
    /// everything queued after it until [`MemberLink::release`] is told that `seq` is durable.
    pub fn hold(&self, seq: u64, ack: Bytes) -> Result<(), QueueFull> {
        let mut held = self.held();
        held.until = held.until.max(seq);
        self.gate.closed.store(true, Ordering::Release);
        self.push_held(&mut held, Outgoing::Frame(ack))
    }

    /// Ops up to `seq` are durable: if what the gate waits for is among them, everything held
    /// goes into the queue, in order.
    pub fn release(&self, seq: u64) -> Result<(), QueueFull> {
        let mut held = self.held();
        if !self.gate.closed.load(Ordering::Acquire) || held.until > seq {
            return Ok(());
        }
        while let Some(entry) = held.entries.pop_front() {
            self.send_now(entry)?;
        }
        self.gate.closed.store(false, Ordering::Release);
        Ok(())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.gate.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push_held(&self, held: &mut Held, entry: Outgoing) -> Result<(), QueueFull> {
        let queued = self.capacity - self.queue.capacity();
        if held.entries.len() + queued >= self.capacity {
            return Err(QueueFull);
        }
        held.entries.push_back(entry);
        Ok(())
    }

    fn push(&self, entry: Outgoing) -> Result<(), QueueFull> {
        if self.gate.closed.load(Ordering::Acquire) {
            let mut held = self.held();
            // Checked again under the lock: the gate may have opened meanwhile.
            if self.gate.closed.load(Ordering::Acquire) {
                return self.push_held(&mut held, entry);
            }
        }
        self.send_now(entry)
    }

    fn send_now(&self, entry: Outgoing) -> Result<(), QueueFull> {
        match self.queue.try_send(entry) {
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

    /// Why the room dropped this member (a slow consumer, unless it said otherwise).
    pub fn reason(&self) -> KickReason {
        self.kick
            .reason
            .get()
            .copied()
            .unwrap_or(KickReason::SlowConsumer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(b: u8) -> Bytes {
        Bytes::from(vec![b])
    }

    fn drain(out: &mut Outbox) -> Vec<u8> {
        let mut got = Vec::new();
        while let Ok(Outgoing::Frame(f)) = out.queue.try_recv() {
            got.push(f[0]);
        }
        got
    }

    #[test]
    fn an_ack_and_everything_after_it_wait_until_its_op_is_durable() {
        let (link, mut out) = MemberLink::channel(16);
        link.send(frame(1)).unwrap();
        link.hold(7, frame(2)).unwrap();
        link.send(frame(3)).unwrap();
        assert_eq!(drain(&mut out), vec![1], "the Ack and what follows wait");
        link.release(6).unwrap();
        assert!(drain(&mut out).is_empty(), "seq 7 is not durable yet");
        link.hold(9, frame(4)).unwrap();
        link.release(7).unwrap();
        assert!(drain(&mut out).is_empty(), "the later Ack waits for seq 9");
        link.release(9).unwrap();
        assert_eq!(drain(&mut out), vec![2, 3, 4]);
        link.send(frame(5)).unwrap();
        assert_eq!(drain(&mut out), vec![5], "the gate is open again");
    }

    #[test]
    fn held_entries_count_toward_the_queue_bound() {
        let (link, _out) = MemberLink::channel(3);
        link.send(frame(1)).unwrap();
        link.hold(1, frame(2)).unwrap();
        link.send(frame(3)).unwrap();
        assert_eq!(link.send(frame(4)), Err(QueueFull));
    }
}
