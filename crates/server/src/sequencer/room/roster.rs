//! The members a node holds in a room: who they are, where their frames go, their cursors.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use kokuban_protocol::{
    Camera, CameraUpdate, Color, Cursor, CursorUpdate, LaserUpdate, Member, MemberId, Name,
    PresenceEvent, ServerMsg,
};

use super::frame;
use crate::metrics::Metrics;
use crate::sequencer::{KickReason, MemberLink, QueueFull};

/// Where a member points: its cursor, or its laser pointer (which moves the cursor too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pointer {
    /// The cursor (`None`: off the canvas).
    Cursor(Option<Cursor>),
    /// A point of the laser's trail.
    Laser(Cursor),
}

/// A member of this node, with what its backend keeps beside it (`extra`).
#[derive(Debug)]
pub(crate) struct Seat<E> {
    /// As the others see it.
    pub info: Member,
    /// Where its frames go.
    pub link: MemberLink,
    /// The backend's own per-member state.
    pub extra: E,
}

/// Members that left in one step (each with its `Left` frame, already sent to the members
/// here), and whether the room became empty with them. The backend must act on both: tell the
/// other nodes, and let the room's task start counting down to unloading it.
#[must_use = "departures must be told to the other nodes and an emptied room to its task"]
#[derive(Debug, Default)]
pub(crate) struct Departures {
    /// Who left, with its `Left` frame.
    pub left: Vec<(MemberId, Bytes)>,
    /// The room had members before and has none now.
    pub emptied: bool,
}

impl Departures {
    /// Adds `other`'s departures to these.
    pub fn absorb(&mut self, other: Departures) {
        self.left.extend(other.left);
        self.emptied |= other.emptied;
    }
}

/// A profile change, as the members here were told it.
#[derive(Debug)]
pub(crate) struct ProfileChanged {
    /// The member as it is now.
    pub info: Member,
    /// Its `Updated` presence frame.
    pub updated: Bytes,
    /// Members dropped while it was sent.
    pub departures: Departures,
}

/// The local members of a room.
///
/// Invariants: every member here gets every frame broadcast while it is here, or is dropped
/// (kicked, and announced as gone to the others) the moment its queue is full; nothing ever
/// waits for a member. `empty_since` is set exactly while there are no members.
#[derive(Debug)]
pub(crate) struct Roster<E> {
    seats: HashMap<MemberId, Seat<E>>,
    /// Latest cursor or laser point per member since the last flush (coalesced): one window
    /// relays one position per member, whichever it was, so a laser costs what a cursor does.
    cursors: HashMap<MemberId, Pointer>,
    /// Latest camera per member since the last flush (coalesced the same way).
    cameras: HashMap<MemberId, Camera>,
    /// Members who asked everyone to follow them since the last flush (coalesced the same
    /// way: asking twice in a window asks once).
    asks: HashSet<MemberId>,
    empty_since: Option<Instant>,
    metrics: Arc<Metrics>,
}

impl<E> Roster<E> {
    /// A roster with nobody in it (empty since now).
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            seats: HashMap::new(),
            cursors: HashMap::new(),
            cameras: HashMap::new(),
            asks: HashSet::new(),
            empty_since: Some(Instant::now()),
            metrics,
        }
    }

    /// Members here.
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    /// Whether nobody is here.
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }

    /// Since when nobody is here (`None` while someone is).
    pub fn empty_since(&self) -> Option<Instant> {
        self.empty_since
    }

    /// Whether nobody has been here for at least `grace`.
    pub fn idle_for(&self, grace: std::time::Duration) -> bool {
        self.empty_since.is_some_and(|t| t.elapsed() >= grace)
    }

    /// Whether `id` is here.
    pub fn contains(&self, id: MemberId) -> bool {
        self.seats.contains_key(&id)
    }

    /// A member's seat.
    pub fn get(&self, id: MemberId) -> Option<&Seat<E>> {
        self.seats.get(&id)
    }

    /// A member's seat, to change the backend's state in it.
    pub fn get_mut(&mut self, id: MemberId) -> Option<&mut Seat<E>> {
        self.seats.get_mut(&id)
    }

    /// Every member here, with its seat.
    pub fn seats(&self) -> impl Iterator<Item = (MemberId, &Seat<E>)> {
        self.seats.iter().map(|(id, s)| (*id, s))
    }

    /// Every member here, to change the backend's state in their seats.
    pub fn seats_mut(&mut self) -> impl Iterator<Item = (MemberId, &mut Seat<E>)> {
        self.seats.iter_mut().map(|(id, s)| (*id, s))
    }

    /// The name of a member here whose backend state passes `is` (say, of a given author).
    pub fn name_of(&self, is: impl Fn(&E) -> bool) -> Option<String> {
        self.seats
            .values()
            .find(|s| is(&s.extra))
            .map(|s| s.info.name.as_str().to_owned())
    }

    /// Every member here, as the others see them.
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.seats.values().map(|s| s.info.clone())
    }

    /// Adds a member: the others are told first (`Joined`, returned too), then it is
    /// registered, so every frame broadcast from now on reaches it.
    pub fn admit(&mut self, info: Member, link: MemberLink, extra: E) -> (Bytes, Departures) {
        let joined = frame(&ServerMsg::Presence(PresenceEvent::Joined(info.clone())));
        let departures = self.broadcast(&joined, None);
        self.seats.insert(info.id, Seat { info, link, extra });
        self.empty_since = None;
        self.metrics.members.fetch_add(1, Relaxed);
        (joined, departures)
    }

    /// Sends `frame` to every member but `except`, dropping those that cannot keep up.
    pub fn broadcast(&mut self, frame: &Bytes, except: Option<MemberId>) -> Departures {
        let slow: Vec<MemberId> = self
            .seats
            .iter()
            .filter(|(id, s)| Some(**id) != except && s.link.send(frame.clone()).is_err())
            .map(|(id, _)| *id)
            .collect();
        self.evict(slow, KickReason::SlowConsumer)
    }

    /// Sends the frame of an op to every member. Each seat is first given to `answer`, which
    /// answers the op itself for the member that waits for it (its Ack) and returns how that
    /// went; for everyone else it returns `None`, and they get the op.
    pub fn deliver(
        &mut self,
        op_frame: &Bytes,
        mut answer: impl FnMut(MemberId, &mut Seat<E>) -> Option<Result<(), QueueFull>>,
    ) -> Departures {
        let mut slow = Vec::new();
        for (id, seat) in self.seats.iter_mut() {
            let answered = answer(*id, seat);
            let sent = answered.unwrap_or_else(|| seat.link.send(op_frame.clone()));
            if sent.is_err() {
                slow.push(*id);
            }
        }
        self.evict(slow, KickReason::SlowConsumer)
    }

    /// Drops members (their sessions are told why) and announces them as gone to the others;
    /// those whose queue is full by then are dropped as slow consumers in turn.
    pub fn evict(&mut self, ids: Vec<MemberId>, reason: KickReason) -> Departures {
        let mut out = Departures::default();
        let mut queue: Vec<(MemberId, KickReason)> =
            ids.into_iter().map(|id| (id, reason)).collect();
        while let Some((id, why)) = queue.pop() {
            let Some(seat) = self.remove(id) else {
                continue;
            };
            seat.link.kick(why);
            let counter = match why {
                KickReason::SlowConsumer => &self.metrics.slow_consumer_disconnects,
                KickReason::Resume => &self.metrics.in_doubt_disconnects,
            };
            counter.fetch_add(1, Relaxed);
            tracing::info!(member = %id, ?why, "member dropped");
            let left = frame(&ServerMsg::Presence(PresenceEvent::Left(id)));
            for (other, s) in &self.seats {
                if s.link.send(left.clone()).is_err() && !queue.iter().any(|(q, _)| q == other) {
                    queue.push((*other, KickReason::SlowConsumer));
                }
            }
            out.left.push((id, left));
        }
        out.emptied = self.note_if_empty(!out.left.is_empty());
        out
    }

    /// A member left of its own accord (its session ended). `None` if it was not here (it was
    /// dropped before, and announced then).
    pub fn leave(&mut self, id: MemberId) -> Option<Departures> {
        self.remove(id)?;
        let left = frame(&ServerMsg::Presence(PresenceEvent::Left(id)));
        let mut out = self.broadcast(&left, None);
        out.left.push((id, left));
        out.emptied = self.note_if_empty(true);
        Some(out)
    }

    /// Changes a member's name and colour and tells the others.
    pub fn change_profile(
        &mut self,
        id: MemberId,
        name: Name,
        color: Color,
    ) -> Option<ProfileChanged> {
        let seat = self.seats.get_mut(&id)?;
        seat.info.name = name;
        seat.info.color = color;
        let info = seat.info.clone();
        let updated = frame(&ServerMsg::Presence(PresenceEvent::Updated(info.clone())));
        let departures = self.broadcast(&updated, Some(id));
        Some(ProfileChanged {
            info,
            updated,
            departures,
        })
    }

    /// Records a member's latest cursor. True if it is the first one waiting to be sent: the
    /// caller starts the coalescing window then.
    pub fn cursor(&mut self, id: MemberId, at: Pointer) -> bool {
        if !self.seats.contains_key(&id) {
            return false;
        }
        let first = !self.has_cursors();
        self.cursors.insert(id, at);
        first
    }

    /// Records a member's latest camera, like [`Roster::cursor`] (the same window).
    pub fn camera(&mut self, id: MemberId, camera: Camera) -> bool {
        if !self.seats.contains_key(&id) {
            return false;
        }
        let first = !self.has_cursors();
        self.cameras.insert(id, camera);
        first
    }

    /// Records that a member asks everyone to follow them, like [`Roster::cursor`] (the same
    /// window).
    pub fn ask_to_follow(&mut self, id: MemberId) -> bool {
        if !self.seats.contains_key(&id) {
            return false;
        }
        let first = !self.has_cursors();
        self.asks.insert(id);
        first
    }

    /// Whether cursors, cameras or asks to follow wait to be sent.
    pub fn has_cursors(&self) -> bool {
        !self.cursors.is_empty() || !self.cameras.is_empty() || !self.asks.is_empty()
    }

    /// Sends every waiting cursor to the other members; returns the frames sent, for the
    /// other nodes.
    pub fn flush_cursors(&mut self) -> (Vec<Bytes>, Departures) {
        let mut frames = Vec::with_capacity(self.cursors.len());
        let mut out = Departures::default();
        let cursors: Vec<_> = self.cursors.drain().collect();
        for (member, at) in cursors {
            let f = frame(&match at {
                Pointer::Cursor(at) => ServerMsg::Cursor(CursorUpdate { member, at }),
                Pointer::Laser(at) => ServerMsg::Laser(LaserUpdate { member, at }),
            });
            out.absorb(self.broadcast(&f, Some(member)));
            frames.push(f);
        }
        let cameras: Vec<_> = self.cameras.drain().collect();
        for (member, camera) in cameras {
            let f = frame(&ServerMsg::Camera(CameraUpdate { member, camera }));
            out.absorb(self.broadcast(&f, Some(member)));
            frames.push(f);
        }
        // After the cameras: whoever follows the asker at once sees where they are.
        let asks: Vec<_> = self.asks.drain().collect();
        for member in asks {
            let f = frame(&ServerMsg::AskToFollow(member));
            out.absorb(self.broadcast(&f, Some(member)));
            frames.push(f);
        }
        (frames, out)
    }

    fn remove(&mut self, id: MemberId) -> Option<Seat<E>> {
        let seat = self.seats.remove(&id)?;
        self.cursors.remove(&id);
        self.cameras.remove(&id);
        self.asks.remove(&id);
        self.metrics.members.fetch_sub(1, Relaxed);
        Some(seat)
    }

    /// Starts the empty clock if somebody left and nobody is here; true if it started now.
    fn note_if_empty(&mut self, someone_left: bool) -> bool {
        if someone_left && self.seats.is_empty() && self.empty_since.is_none() {
            self.empty_since = Some(Instant::now());
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequencer::room::fixtures::member;
    use crate::sequencer::{Outbox, Outgoing};
    use kokuban_protocol::decode_server;

    fn roster() -> (Roster<()>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        (Roster::new(metrics.clone()), metrics)
    }

    fn join(r: &mut Roster<()>, id: u64, capacity: usize) -> Outbox {
        let (link, outbox) = MemberLink::channel(capacity);
        let (_, departures) = r.admit(member(id), link, ());
        assert!(departures.left.is_empty());
        outbox
    }

    fn received(out: &mut Outbox) -> Vec<ServerMsg> {
        let mut msgs = Vec::new();
        while let Ok(entry) = out.queue.try_recv() {
            if let Outgoing::Frame(f) = entry {
                msgs.push(decode_server(&f).unwrap());
            }
        }
        msgs
    }

    #[test]
    fn a_joiner_is_announced_to_the_others_and_then_gets_everything() {
        let (mut r, metrics) = roster();
        let mut a = join(&mut r, 1, 16);
        assert!(r.empty_since().is_none());
        let mut b = join(&mut r, 2, 16);
        assert!(matches!(
            received(&mut a)[..],
            [ServerMsg::Presence(PresenceEvent::Joined(ref m))] if m.id == MemberId(2)
        ));
        assert!(
            received(&mut b).is_empty(),
            "nobody announces the joiner to itself"
        );
        let f = frame(&ServerMsg::Presence(PresenceEvent::Left(MemberId(9))));
        let _ = r.broadcast(&f, Some(MemberId(1)));
        assert!(received(&mut a).is_empty());
        assert_eq!(received(&mut b).len(), 1);
        assert_eq!(metrics.members.load(Relaxed), 2);
    }

    #[test]
    fn a_full_queue_drops_only_that_member_and_the_room_empties_when_the_last_goes() {
        let (mut r, metrics) = roster();
        let mut a = join(&mut r, 1, 64);
        let slow = join(&mut r, 2, 2);
        let f = frame(&ServerMsg::Presence(PresenceEvent::Left(MemberId(9))));
        let mut dropped = Vec::new();
        for _ in 0..4 {
            dropped.extend(r.broadcast(&f, None).left.into_iter().map(|(id, _)| id));
        }
        assert_eq!(dropped, vec![MemberId(2)]);
        assert!(slow.kicked.is_kicked());
        assert_eq!(slow.kicked.reason(), KickReason::SlowConsumer);
        assert!(
            received(&mut a)
                .iter()
                .any(|m| matches!(m, ServerMsg::Presence(PresenceEvent::Left(MemberId(2)))))
        );
        assert_eq!(metrics.slow_consumer_disconnects.load(Relaxed), 1);
        // Evicting the last member empties the room, whichever way it goes.
        let gone = r.evict(vec![MemberId(1)], KickReason::SlowConsumer);
        assert!(gone.emptied);
        assert!(r.empty_since().is_some());
        assert_eq!(metrics.members.load(Relaxed), 0);
    }

    #[test]
    fn a_departure_is_announced_once_whether_dropped_or_leaving() {
        let (mut r, _) = roster();
        let mut a = join(&mut r, 1, 64);
        let _b = join(&mut r, 2, 64);
        received(&mut a);
        let _ = r.evict(vec![MemberId(2)], KickReason::Resume);
        assert!(
            r.leave(MemberId(2)).is_none(),
            "already announced when dropped"
        );
        assert_eq!(received(&mut a).len(), 1);
        let last = r.leave(MemberId(1)).expect("here");
        assert!(last.emptied);
        assert_eq!(last.left.len(), 1);
    }

    #[test]
    fn cursors_are_coalesced_per_member_and_not_echoed() {
        let (mut r, _) = roster();
        let mut a = join(&mut r, 1, 64);
        let mut b = join(&mut r, 2, 64);
        received(&mut a);
        assert!(r.cursor(MemberId(1), Pointer::Cursor(Cursor::new(1, 1).ok())));
        assert!(
            !r.cursor(MemberId(1), Pointer::Cursor(Cursor::new(2, 2).ok())),
            "already waiting"
        );
        assert!(
            !r.cursor(MemberId(7), Pointer::Cursor(None)),
            "not a member"
        );
        let (frames, _) = r.flush_cursors();
        assert_eq!(frames.len(), 1);
        assert!(received(&mut a).is_empty());
        assert!(matches!(
            received(&mut b)[..],
            [ServerMsg::Cursor(CursorUpdate { member: MemberId(1), at: Some(c) })] if c.x() == 2
        ));
        assert!(!r.has_cursors());
    }

    #[test]
    fn laser_points_are_coalesced_with_the_cursor() {
        let (mut r, _) = roster();
        let _a = join(&mut r, 1, 64);
        let mut b = join(&mut r, 2, 64);
        assert!(r.cursor(MemberId(1), Pointer::Cursor(Cursor::new(1, 1).ok())));
        for x in 2..200 {
            r.cursor(MemberId(1), Pointer::Laser(Cursor::new(x, 0).unwrap()));
        }
        let (frames, _) = r.flush_cursors();
        assert_eq!(frames.len(), 1, "one position per member and window");
        assert!(matches!(
            received(&mut b)[..],
            [ServerMsg::Laser(LaserUpdate { member: MemberId(1), at })] if at.x() == 199
        ));
    }

    #[test]
    fn cameras_are_coalesced_per_member_beside_cursors() {
        let (mut r, _) = roster();
        let _a = join(&mut r, 1, 64);
        let mut b = join(&mut r, 2, 64);
        let at = Cursor::new(0, 0).unwrap();
        assert!(r.camera(MemberId(1), Camera::new(at, 1000).unwrap()));
        assert!(
            !r.cursor(MemberId(1), Pointer::Cursor(Some(at))),
            "same window"
        );
        assert!(!r.camera(MemberId(1), Camera::new(at, 2000).unwrap()));
        let (frames, _) = r.flush_cursors();
        assert_eq!(frames.len(), 2, "the cursor and the last camera");
        let got = received(&mut b);
        assert!(got.iter().any(|m| matches!(m,
            ServerMsg::Camera(CameraUpdate { member: MemberId(1), camera }) if camera.zoom_milli() == 2000)));
        assert!(!r.has_cursors());
    }

    #[test]
    fn a_profile_change_reaches_the_others() {
        let (mut r, _) = roster();
        let mut a = join(&mut r, 1, 64);
        let mut b = join(&mut r, 2, 64);
        received(&mut a);
        let changed = r
            .change_profile(MemberId(2), Name::new("Ada").unwrap(), Color::rgb(9, 9, 9))
            .unwrap();
        assert_eq!(changed.info.name.as_str(), "Ada");
        assert_eq!(received(&mut a).len(), 1);
        assert!(received(&mut b).is_empty());
        assert!(
            r.change_profile(MemberId(5), Name::new("x").unwrap(), Color::rgb(0, 0, 0))
                .is_none()
        );
    }
}
