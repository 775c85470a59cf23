//! A room's link generation, as this node last heard it: the number mixed into the room's
//! capability tokens, which a reset of the links advances (see [`crate::capability`]).
//!
//! The backend keeps the number durably and is asked for it at every Hello; this registry
//! only tells the sessions already in a room that their links were reset, wherever the reset
//! happened (here, or on another node of a cluster, heard on the room's channel).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kokuban_protocol::RoomId;
use tokio::sync::watch;

/// A room's generation as heard, whether it was ever heard from the backend (a new entry
/// starts at 0 before anything was read), and since when no session watches it.
#[derive(Debug)]
struct Heard {
    sender: watch::Sender<u64>,
    confirmed: bool,
    unwatched_since: Option<Instant>,
}

/// Rooms with sessions on this node → the newest link generation heard for each.
///
/// A room's entry outlives its last session by `keep` (the time an empty room stays held):
/// a member told to reconnect during a Redis outage, who was the room's only one here, must
/// find the generation its token was checked against when it comes back a moment later.
#[derive(Debug, Clone)]
pub struct LinkGenerations {
    rooms: Arc<Mutex<HashMap<RoomId, Heard>>>,
    keep: Duration,
}

impl LinkGenerations {
    /// A registry whose rooms are remembered for `keep` after their last session left.
    pub fn new(keep: Duration) -> Self {
        Self {
            rooms: Arc::default(),
            keep,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Heard>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation last heard from the backend for `room`, while sessions of this node
    /// are in it or left it less than `keep` ago: what a Hello checks its token against when
    /// the backend cannot be asked (Redis unreachable), so that members of a room this node
    /// holds can come back.
    pub fn known(&self, room: &RoomId) -> Option<u64> {
        let rooms = self.lock();
        let heard = rooms
            .get(room)
            .filter(|h| h.confirmed && !h.expired(self.keep))?;
        Some(*heard.sender.borrow())
    }

    /// Starts listening to `room`'s resets. Call it before reading the generation a session
    /// checks its token with, so that a reset in between is not missed.
    pub fn watch(&self, room: &RoomId) -> LinkWatch {
        let mut rooms = self.lock();
        rooms.retain(|_, h| !h.expired(self.keep));
        let heard = rooms.entry(room.clone()).or_insert_with(|| Heard {
            sender: watch::channel(0).0,
            confirmed: false,
            unwatched_since: None,
        });
        heard.unwatched_since = None;
        let receiver = heard.sender.subscribe();
        LinkWatch {
            room: room.clone(),
            receiver,
            registry: self.clone(),
        }
    }

    /// Tells the sessions in `room` on this node that its links are now of `generation`, as
    /// read from or announced by the backend. Older news (a message overtaken by a newer
    /// reset) changes nothing.
    pub fn advance(&self, room: &RoomId, generation: u64) {
        if let Some(heard) = self.lock().get_mut(room) {
            heard.confirmed = true;
            heard.sender.send_if_modified(|g| {
                let newer = generation > *g;
                if newer {
                    *g = generation;
                }
                newer
            });
        }
    }
}

/// A session's ear for resets of its room's links. Dropping the last one of a room forgets
/// the room.
#[derive(Debug)]
pub struct LinkWatch {
    room: RoomId,
    receiver: watch::Receiver<u64>,
    registry: LinkGenerations,
}

impl LinkWatch {
    /// Resolves once the room's links are of a generation newer than `mine`.
    pub fn reset_after(&self, mine: u64) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.receiver.clone();
        async move {
            if receiver.wait_for(|g| *g > mine).await.is_err() {
                // The sender lives as long as any watch of the room: never here.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Heard {
    fn expired(&self, keep: Duration) -> bool {
        self.unwatched_since.is_some_and(|t| t.elapsed() >= keep)
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        let mut rooms = self.registry.lock();
        // This receiver still counts: it is the last when the count is 1.
        let Some(heard) = rooms
            .get_mut(&self.room)
            .filter(|h| h.sender.receiver_count() <= 1)
        else {
            return;
        };
        if heard.confirmed {
            heard.unwatched_since = Some(Instant::now());
        } else {
            rooms.remove(&self.room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_hears_a_newer_generation_and_the_room_is_forgotten_after_its_last_watch() {
        let links = LinkGenerations::new(Duration::from_millis(50));
        let room = RoomId::new("room_one").unwrap();
        let watch = links.watch(&room);
        links.advance(&room, 1);
        tokio::time::timeout(std::time::Duration::from_secs(1), watch.reset_after(0))
            .await
            .expect("generation 1 is newer than 0");
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(20), watch.reset_after(1)).await;
        assert!(pending.is_err(), "nothing newer than 1 yet");
        assert_eq!(links.known(&room), Some(1));
        drop(watch);
        // Kept a while for a member coming back, and still told of resets meanwhile.
        assert_eq!(links.known(&room), Some(1));
        links.advance(&room, 2);
        assert_eq!(links.known(&room), Some(2));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(links.known(&room), None);
        // The next watch of any room sweeps it away.
        let other = RoomId::new("room_two").unwrap();
        drop(links.watch(&other));
        assert!(
            links.lock().is_empty(),
            "an unconfirmed room is forgotten at once"
        );
        // A room nobody watches keeps no entry.
        links.advance(&room, 3);
        assert!(links.lock().is_empty());
    }
}
