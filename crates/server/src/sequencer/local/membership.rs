//! A member's handle on a loaded room: its ops sequenced under the room's lock and handed to
//! the store, its cursor, laser and camera, and its leaving.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use kokuban_protocol::{
    Ack, Camera, Color, Cursor, MemberId, Name, Op, Position, Sequenced, ServerMsg,
};

use super::{MAX_UNDURABLE_BYTES, Room, Shared};
use crate::sequencer::room::{BoardFull, Pointer, Seen, frame};
use crate::sequencer::{Membership, WriteRefused, vet};
use crate::store::{Durability, StoredOp};
use crate::unix_ms;

/// A member of a loaded room.
#[derive(Debug)]
pub(super) struct LocalMembership {
    pub(super) shared: Arc<Shared>,
    pub(super) room: Arc<Room>,
    pub(super) member: MemberId,
    pub(super) author: MemberId,
}

impl Membership for LocalMembership {
    fn submit(&self, n: u64, op: Op) -> Result<(), WriteRefused> {
        let shared = &self.shared;
        if !shared.store.accepting_writes() {
            return Err(WriteRefused::ReadOnly);
        }
        let mut st = self.room.lock();
        if !st.roster.contains(self.member) {
            return Err(WriteRefused::Gone);
        }
        if st.undurable_bytes > MAX_UNDURABLE_BYTES {
            return Err(WriteRefused::ReadOnly);
        }
        let Position { epoch, seq: head } = st.history.position();
        match st.history.authors().seen(self.author, n) {
            Seen::New => {}
            // A retry (the client lost the Ack): its first Ack, in its place among the answers.
            Seen::At(seq) => {
                let ack = frame(&ServerMsg::Ack(Ack { epoch, seq }));
                let departures = self.room.answer(&mut st, self.member, seq, ack);
                drop(st);
                self.room.settle(departures);
                return Ok(());
            }
            Seen::Decided => return Err(WriteRefused::Decided),
        }
        // The board is at the head and this author's earlier ops are all in it: vet strictly.
        vet(st.history.board(), self.author, &op)?;
        st.history
            .admits(&op)
            .map_err(|BoardFull| WriteRefused::BoardFull)?;
        // The board before the op, when a version of it is due: in the store before the op.
        let now = unix_ms();
        if let Some(due) = st.history.checkpoint_before(self.author, &op, now) {
            let version = due.named(now, |a| st.roster.name_of(|author| *author == a));
            shared
                .store
                .checkpoint(&self.room.id, version, shared.settings.checkpoints);
            shared.metrics.versions_kept.fetch_add(1, Relaxed);
        }
        let seq = head.next();
        let sequenced = Sequenced {
            epoch,
            seq,
            author: self.author,
            op,
        };
        let frames = match st.history.append(sequenced, n) {
            Ok(f) => f,
            Err(e) => {
                // The history is at its head under this lock: this is a bug, not bad input.
                tracing::error!(room = %self.room.id, "history refused its own next op: {e}");
                return Err(WriteRefused::ReadOnly);
            }
        };
        // Everyone else sees the op at once; its author's Ack waits until it is on disk.
        let me = self.member;
        let mut departures = st
            .roster
            .deliver(&frames.live, |id, _| (id == me).then_some(Ok(())));
        // The author's queue holds everything before it: its Ack names the next place.
        let ack = frame(&ServerMsg::Acked(seq.0 as u8));
        departures.absorb(self.room.answer(&mut st, me, seq, ack));
        let op_frame = frames.stored;
        st.undurable.push_back((seq, op_frame.len()));
        st.undurable_bytes += op_frame.len();
        let op = StoredOp {
            seq,
            frame: op_frame,
            author: self.author,
            n,
        };
        let ear: Arc<dyn Durability> = self.room.clone();
        shared.store.append(&self.room.id, epoch, op, ear);
        shared.metrics.ops_sequenced.fetch_add(1, Relaxed);
        if st.history.compaction_due() {
            let base = st.history.compact();
            shared.store.compact(&self.room.id, epoch, seq, base);
            shared.metrics.compactions.fetch_add(1, Relaxed);
        }
        drop(st);
        self.room.settle(departures);
        Ok(())
    }

    fn cursor(&self, at: Option<Cursor>) {
        self.room.core.cursor(self.member, Pointer::Cursor(at));
    }

    fn laser(&self, at: Cursor) {
        self.room.core.cursor(self.member, Pointer::Laser(at));
    }

    fn camera(&self, camera: Camera) {
        self.room.core.camera(self.member, camera);
    }

    fn ask_to_follow(&self) {
        self.room.core.ask_to_follow(self.member);
    }

    fn update_profile(&self, name: Name, color: Color) {
        let changed = self
            .room
            .lock()
            .roster
            .change_profile(self.member, name, color);
        if let Some(changed) = changed {
            self.room.settle(changed.departures);
        }
    }
}

impl Drop for LocalMembership {
    fn drop(&mut self) {
        let left = self.room.lock().roster.leave(self.member);
        if let Some(departures) = left {
            self.room.settle(departures);
        }
    }
}
