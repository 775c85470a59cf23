//! A member's outbound path: the room's end ([`MemberLink`]) pushes without waiting into a
//! bounded queue, the session's end ([`Outbox`]) writes it to the socket. A queue that is full
//! means the member cannot keep up; the room kicks it rather than wait.

use std::sync::{Arc, OnceLock};

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

/// The room's end of a member's outbound path: a bounded queue and a way to tell the session
/// it was dropped.
#[derive(Debug, Clone)]
pub struct MemberLink {
    queue: mpsc::Sender<Outgoing>,
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
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let kick = Arc::new(Kick::default());
        (
            MemberLink {
                queue: tx,
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

    fn push(&self, entry: Outgoing) -> Result<(), QueueFull> {
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
