//! A member's handle on a room this node holds: its ops sent to the room's writer in order,
//! its cursor, laser and camera, and its leaving.

use std::sync::Arc;

use kokuban_protocol::{
    Camera, ClientMsg, Color, Cursor, MemberId, Name, Op, Position, PresenceEvent, Seq, ServerMsg,
    Submit, encode_kept_client,
};

use super::super::Shared;
use super::super::redis::Command;
use super::super::writer::Job;
use super::{Live, Room};
use crate::sequencer::room::{BoardFull, Pointer, Seen, frame};
use crate::sequencer::{KickReason, Membership, WriteRefused, vet_behind};

/// A member of a room held by this node.
#[derive(Debug)]
pub(super) struct ClusterMembership {
    pub(super) shared: Arc<Shared>,
    pub(super) room: Arc<Room>,
    pub(super) member: MemberId,
    pub(super) author: MemberId,
}

impl ClusterMembership {
    /// Answers a retry of an op delivered at `seq` with its first Ack, in its place.
    fn answer_retry(&self, st: &mut Live, seq: Seq) -> Result<(), WriteRefused> {
        let Some(seat) = st.roster.get_mut(self.member) else {
            return Err(WriteRefused::Gone);
        };
        seat.extra.answers.push_applied(seq);
        if !st.answer(self.member) {
            let departures = st.roster.evict(vec![self.member], KickReason::SlowConsumer);
            self.room.settle(st, departures);
        }
        Ok(())
    }

    /// Refuses an op in its place: at once if nothing of the member's is unanswered, else
    /// after the ops before it.
    fn refuse(st: &mut Live, member: MemberId, why: WriteRefused) -> Result<(), WriteRefused> {
        let queued = st
            .roster
            .get_mut(member)
            .is_some_and(|seat| seat.extra.answers.refuse_in_place(why));
        if queued { Ok(()) } else { Err(why) }
    }
}

impl Membership for ClusterMembership {
    fn submit(&self, n: u64, op: Op) -> Result<(), WriteRefused> {
        let shared = &self.shared;
        let mut st = self.room.lock();
        let Some(seat) = st.roster.get(self.member) else {
            return Err(WriteRefused::Gone);
        };
        let unanswered = seat.extra.answers.len();
        if !shared.redis.db(&self.room.keys).is_up()
            || unanswered >= shared.settings.max_outstanding
        {
            return Self::refuse(&mut st, self.member, WriteRefused::ReadOnly);
        }
        // What this node has delivered already tells most retries apart; Redis decides for
        // the ops it has not delivered yet.
        match st.history.authors().seen(self.author, n) {
            Seen::New => {}
            Seen::At(seq) => return self.answer_retry(&mut st, seq),
            Seen::Decided => return Self::refuse(&mut st, self.member, WriteRefused::Decided),
        }
        vet_behind(st.history.board(), self.author, &op, unanswered)?;
        // The board here may lag Redis by the ops in flight: a room can overshoot its budget
        // by that much, no more.
        st.history
            .admits(&op)
            .map_err(|BoardFull| WriteRefused::BoardFull)?;
        // In the oldest version that reads it alike, so that every node of a cluster in the
        // middle of an upgrade (or rolled back) reads the room's log.
        let op = encode_kept_client(&ClientMsg::Op(Submit { n, op }));
        let Position { epoch, seq: head } = st.history.position();
        let command = Command::Sequence {
            epoch,
            head,
            author: self.author,
            n,
            op,
            // Set by the writer when it sends the op.
            deadline_ms: 0,
        };
        // Queued under the room lock, so the writer's order is the order of each member's
        // unanswered ops.
        let live = &mut *st;
        let Some(permit) = live.writer.as_ref().and_then(|w| w.try_reserve().ok()) else {
            return Self::refuse(live, self.member, WriteRefused::ReadOnly);
        };
        let Some(seat) = live.roster.get_mut(self.member) else {
            return Err(WriteRefused::Gone);
        };
        let entry = seat.extra.answers.push(n);
        permit.send(Job::new(command, Some((self.member, entry))));
        Ok(())
    }

    fn update_profile(&self, name: Name, color: Color) {
        let mut st = self.room.lock();
        let Some(changed) = st.roster.change_profile(self.member, name, color) else {
            return;
        };
        let joined = frame(&ServerMsg::Presence(PresenceEvent::Joined(changed.info)));
        if let Some(seat) = st.roster.get_mut(self.member) {
            seat.extra.joined = joined.clone();
        }
        st.push(Command::Announce {
            member: self.member,
            joined,
            frame: changed.updated,
        });
        self.room.settle(&st, changed.departures);
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
}

impl Drop for ClusterMembership {
    fn drop(&mut self) {
        let mut st = self.room.lock();
        if let Some(departures) = st.roster.leave(self.member) {
            self.room.settle(&st, departures);
        }
    }
}
