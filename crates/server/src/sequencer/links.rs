//! A room's link generation, as this node last heard it: the number mixed into the room's
//! capability tokens, which a reset of the links advances (see [`crate::capability`]).
//!
//! The backend keeps the number durably and is asked for it at every Hello; this registry
//! only tells the sessions already in a room that their links were reset, wherever the reset
//! happened (here, or on another node of a cluster, heard on the room's channel).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use kokuban_protocol::RoomId;
use tokio::sync::watch;

/// A room's generation as heard, and whether it was ever heard from the backend (a new
/// entry starts at 0 before anything was read).
#[derive(Debug)]
struct Heard {
    sender: watch::Sender<u64>,
    confirmed: bool,
}

/// Rooms with sessions on this node → the newest link generation heard for each.
#[derive(Debug, Default, Clone)]
pub struct LinkGenerations {
    rooms: Arc<Mutex<HashMap<RoomId, Heard>>>,
}

impl LinkGenerations {
    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Heard>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation last heard from the backend for `room`, while sessions of this node
    /// are in it: what a Hello checks its token against when the backend cannot be asked
    /// (Redis unreachable), so that members of a room this node holds can come back.
    pub fn known(&self, room: &RoomId) -> Option<u64> {
        let rooms = self.lock();
        let heard = rooms.get(room).filter(|h| h.confirmed)?;
        Some(*heard.sender.borrow())
    }

    /// Starts listening to `room`'s resets. Call it before reading the generation a session
    /// checks its token with, so that a reset in between is not missed.
    pub fn watch(&self, room: &RoomId) -> LinkWatch {
        let mut rooms = self.lock();
        let receiver = rooms
            .entry(room.clone())
            .or_insert_with(|| Heard {
                sender: watch::channel(0).0,
                confirmed: false,
            })
            .sender
            .subscribe();
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

impl Drop for LinkWatch {
    fn drop(&mut self) {
        let mut rooms = self.registry.lock();
        // This receiver still counts: it is the last when the count is 1.
        if rooms
            .get(&self.room)
            .is_some_and(|h| h.sender.receiver_count() <= 1)
        {
            rooms.remove(&self.room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_hears_a_newer_generation_and_the_last_watch_forgets_the_room() {
        let links = LinkGenerations::default();
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
        assert!(links.lock().is_empty());
        assert_eq!(links.known(&room), None);
        // A room nobody watches keeps no entry.
        links.advance(&room, 2);
        assert!(links.lock().is_empty());
    }
}
