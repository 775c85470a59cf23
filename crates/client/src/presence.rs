//! Who is in the room and where their pointers are. Ephemeral: nothing here is stored.

use std::collections::VecDeque;

use kokuban_protocol::{
    Camera, CameraUpdate, Color, Cursor, CursorUpdate, LaserUpdate, Member, MemberId, PresenceEvent,
};

use crate::geom::Pt;

/// A cursor is fully visible this long after it last moved...
pub const CURSOR_IDLE_MS: f64 = 3_000.0;
/// ...then fades out over this long.
pub const CURSOR_FADE_MS: f64 = 2_000.0;

/// A laser trail's points fade out over this long after they were drawn.
pub const LASER_TRAIL_MS: f64 = 1_000.0;
/// A trail keeps at most this many points (a local one gets one per pointer sample).
const MAX_TRAIL_POINTS: usize = 256;

/// The last second of a laser pointer: points with the time each was drawn, oldest first.
///
/// Invariant: at most [`MAX_TRAIL_POINTS`] points; points older than [`LASER_TRAIL_MS`] are
/// never shown (and are dropped at the next push).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaserTrail {
    points: VecDeque<(Pt, f64)>,
}

impl LaserTrail {
    /// The laser was at `at` (world pixels) at `now_ms`.
    pub fn push(&mut self, at: Pt, now_ms: f64) {
        self.points.retain(|&(_, t)| now_ms - t < LASER_TRAIL_MS);
        if self.points.len() == MAX_TRAIL_POINTS {
            self.points.pop_front();
        }
        self.points.push_back((at, now_ms));
    }

    /// The points still visible at `now_ms`, oldest first, with their opacity (1 when new, 0
    /// once [`LASER_TRAIL_MS`] old).
    pub fn visible(&self, now_ms: f64) -> impl Iterator<Item = (Pt, f64)> + '_ {
        self.points.iter().filter_map(move |&(p, t)| {
            let alpha = 1.0 - (now_ms - t) / LASER_TRAIL_MS;
            (alpha > 0.0).then_some((p, alpha.min(1.0)))
        })
    }

    /// How many points are visible at `now_ms`.
    pub fn len(&self, now_ms: f64) -> usize {
        self.visible(now_ms).count()
    }

    /// Whether nothing is visible at `now_ms`.
    pub fn is_empty(&self, now_ms: f64) -> bool {
        self.len(now_ms) == 0
    }
}

/// A remote pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteCursor {
    /// Whose.
    pub member: MemberId,
    /// Where, in world pixels.
    pub at: Pt,
    /// When it last moved (ms).
    pub moved_ms: f64,
}

/// The members of the room and their cursors.
///
/// Invariant: no member is one of our own earlier connections (`former`): after a reconnect,
/// possibly to another node, the room may still list the old connection until its presence
/// expires, and it must not show as a second "you".
#[derive(Debug, Clone, Default)]
pub struct Presence {
    me: Option<MemberId>,
    former: Vec<MemberId>,
    members: Vec<Member>,
    cursors: Vec<RemoteCursor>,
    lasers: Vec<(MemberId, LaserTrail)>,
    cameras: Vec<(MemberId, Camera)>,
}

impl Presence {
    /// Nobody.
    pub fn new() -> Self {
        Self::default()
    }

    /// A Welcome: everyone now in the room.
    pub fn welcome(&mut self, me: MemberId, mut members: Vec<Member>) {
        if let Some(old) = self.me.replace(me)
            && old != me
            && !self.former.contains(&old)
        {
            self.former.push(old);
        }
        members.retain(|m| !self.former.contains(&m.id));
        self.members = members;
        self.cursors.clear();
        self.lasers.clear();
        self.cameras.clear();
    }

    /// We changed our name or colour: our own entry shows it at once, without waiting for
    /// the room to echo it.
    pub fn rename_me(&mut self, name: &str, color: kokuban_protocol::Color) {
        let Ok(name) = kokuban_protocol::Name::new(name) else {
            return;
        };
        if let Some(m) = self.members.iter_mut().find(|m| Some(m.id) == self.me) {
            m.name = name;
            m.color = color;
        }
    }

    /// The connection is gone: others are unknown until the next Welcome.
    pub fn clear(&mut self) {
        self.members.retain(|m| Some(m.id) == self.me);
        self.cursors.clear();
        self.lasers.clear();
        self.cameras.clear();
    }

    /// Someone joined, changed or left.
    pub fn event(&mut self, e: PresenceEvent) {
        match e {
            PresenceEvent::Joined(m) | PresenceEvent::Updated(m) => {
                if self.former.contains(&m.id) {
                    return;
                }
                match self.members.iter_mut().find(|x| x.id == m.id) {
                    Some(x) => *x = m,
                    None => self.members.push(m),
                }
            }
            PresenceEvent::Left(id) => {
                self.members.retain(|m| m.id != id);
                self.cursors.retain(|c| c.member != id);
                self.lasers.retain(|l| l.0 != id);
                self.cameras.retain(|c| c.0 != id);
            }
        }
    }

    /// Someone's pointer moved (or left the canvas).
    pub fn cursor(&mut self, u: CursorUpdate, now_ms: f64) {
        if Some(u.member) == self.me {
            return;
        }
        self.cursors.retain(|c| c.member != u.member);
        if let Some(at) = u.at {
            self.cursors.push(RemoteCursor {
                member: u.member,
                at: cursor_px(at),
                moved_ms: now_ms,
            });
        }
    }

    /// Someone's laser pointer moved: its trail grows, and its cursor follows.
    pub fn laser(&mut self, u: LaserUpdate, now_ms: f64) {
        if Some(u.member) == self.me {
            return;
        }
        self.cursor(
            CursorUpdate {
                member: u.member,
                at: Some(u.at),
            },
            now_ms,
        );
        let at = cursor_px(u.at);
        match self.lasers.iter_mut().find(|l| l.0 == u.member) {
            Some(l) => l.1.push(at, now_ms),
            None => {
                let mut trail = LaserTrail::default();
                trail.push(at, now_ms);
                self.lasers.push((u.member, trail));
            }
        }
    }

    /// Someone's camera moved.
    pub fn camera(&mut self, u: CameraUpdate) {
        if Some(u.member) == self.me {
            return;
        }
        match self.cameras.iter_mut().find(|c| c.0 == u.member) {
            Some(c) => c.1 = u.camera,
            None => self.cameras.push((u.member, u.camera)),
        }
    }

    /// A member's latest camera, if they showed one.
    pub fn camera_of(&self, id: MemberId) -> Option<Camera> {
        self.cameras.iter().find(|c| c.0 == id).map(|c| c.1)
    }

    /// Others' laser trails still visible at `now_ms`, with their member's colour.
    pub fn laser_trails(&self, now_ms: f64) -> impl Iterator<Item = (&LaserTrail, Color)> {
        self.lasers.iter().filter_map(move |(id, trail)| {
            let m = self.member(*id)?;
            (!trail.is_empty(now_ms)).then_some((trail, m.color))
        })
    }

    /// Everyone, us first, then in order of arrival.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        let me = self.me;
        self.members
            .iter()
            .filter(move |m| Some(m.id) == me)
            .chain(self.members.iter().filter(move |m| Some(m.id) != me))
    }

    /// Our own id.
    pub fn me(&self) -> Option<MemberId> {
        self.me
    }

    /// A member by id.
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Cursors still visible at `now_ms`, with their opacity and their member's name and
    /// colour.
    pub fn visible_cursors(
        &self,
        now_ms: f64,
    ) -> impl Iterator<Item = (&RemoteCursor, f64, &str, Color)> {
        self.cursors.iter().filter_map(move |c| {
            let alpha = cursor_alpha(now_ms - c.moved_ms);
            let m = self.member(c.member)?;
            (alpha > 0.0).then_some((c, alpha, m.name.as_str(), m.color))
        })
    }

    /// Whether some cursor is still fading (the overlay must keep animating).
    pub fn is_animating(&self, now_ms: f64) -> bool {
        self.cursors
            .iter()
            .any(|c| now_ms - c.moved_ms < CURSOR_IDLE_MS + CURSOR_FADE_MS)
            || self.lasers.iter().any(|l| !l.1.is_empty(now_ms))
    }
}

/// How far outside the screen a cursor may be and still be drawn, in CSS pixels: its arrow
/// and name label reach this far to the right of and below its point.
const CURSOR_REACH: f64 = 240.0;

/// Whether a cursor at screen point `p` can show on a screen of `(width, height)` CSS pixels.
/// Others are not drawn: in a room of hundreds most cursors are far away, and each drawn one
/// costs a text measurement.
pub fn cursor_on_screen(p: Pt, (width, height): (f64, f64)) -> bool {
    p.x > -CURSOR_REACH && p.y > -CURSOR_REACH && p.x < width && p.y < height
}

/// Opacity of a cursor idle for `idle_ms`.
pub fn cursor_alpha(idle_ms: f64) -> f64 {
    if idle_ms <= CURSOR_IDLE_MS {
        1.0
    } else {
        (1.0 - (idle_ms - CURSOR_IDLE_MS) / CURSOR_FADE_MS).clamp(0.0, 1.0)
    }
}

fn cursor_px(c: Cursor) -> Pt {
    Pt::new(f64::from(c.x()) / 8.0, f64::from(c.y()) / 8.0)
}

/// Up to two initials of a display name, for avatars.
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let pick = |w: &str| {
        w.chars()
            .next()
            .map(|c| c.to_uppercase().collect::<String>())
    };
    match words.as_slice() {
        [] => "?".into(),
        [one] => one.chars().take(2).collect::<String>().to_uppercase(),
        [first, .., last] => pick(first).unwrap_or_default() + &pick(last).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {

    use kokuban_protocol::{Capability, Name};

    use super::*;

    fn member(id: u64, name: &str) -> Member {
        Member {
            id: MemberId(id),
            name: Name::new(name).unwrap(),
            color: Color::rgb(1, 2, 3),
            capability: Capability::Edit,
        }
    }

    #[test]
    fn members_join_change_and_leave() {
        let mut p = Presence::new();
        p.welcome(MemberId(2), vec![member(1, "Bob"), member(2, "Ada")]);
        assert_eq!(p.members().next().unwrap().name.as_str(), "Ada");
        p.event(PresenceEvent::Joined(member(3, "Cy")));
        p.event(PresenceEvent::Updated(member(1, "Robert")));
        assert_eq!(p.member(MemberId(1)).unwrap().name.as_str(), "Robert");
        p.event(PresenceEvent::Left(MemberId(3)));
        assert_eq!(p.members().count(), 2);
        p.clear();
        assert_eq!(p.members().count(), 1);
    }

    #[test]
    fn our_earlier_connection_never_shows_as_a_second_us() {
        let mut p = Presence::new();
        p.welcome(MemberId(2), vec![member(1, "Bob"), member(2, "Ada")]);
        p.clear();
        // Reconnected (to another node) before the room forgot the old connection: the
        // Welcome still lists it, and a late update of it arrives.
        p.welcome(
            MemberId(7),
            vec![member(1, "Bob"), member(2, "Ada"), member(7, "Ada")],
        );
        p.event(PresenceEvent::Updated(member(2, "Ada")));
        let names: Vec<(u64, &str)> = p.members().map(|m| (m.id.0, m.name.as_str())).collect();
        assert_eq!(names, [(7, "Ada"), (1, "Bob")]);
        // And again after a second reconnect.
        p.welcome(
            MemberId(9),
            vec![member(2, "Ada"), member(7, "Ada"), member(9, "Ada")],
        );
        assert_eq!(p.members().map(|m| m.id.0).collect::<Vec<_>>(), [9]);
    }

    #[test]
    fn renaming_ourselves_shows_at_once() {
        let mut p = Presence::new();
        p.welcome(MemberId(2), vec![member(1, "Bob"), member(2, "Ada")]);
        p.rename_me("Ada Lovelace", Color::rgb(9, 9, 9));
        let me = p.members().next().unwrap();
        assert_eq!(
            (me.name.as_str(), me.color),
            ("Ada Lovelace", Color::rgb(9, 9, 9))
        );
        assert_eq!(p.member(MemberId(1)).unwrap().name.as_str(), "Bob");
    }

    #[test]
    fn cursors_fade_when_idle_and_our_own_is_ignored() {
        let mut p = Presence::new();
        p.welcome(MemberId(2), vec![member(1, "Bob"), member(2, "Ada")]);
        let at = Some(Cursor::new(80, 16).unwrap());
        p.cursor(
            CursorUpdate {
                member: MemberId(1),
                at,
            },
            0.0,
        );
        p.cursor(
            CursorUpdate {
                member: MemberId(2),
                at,
            },
            0.0,
        );
        let v: Vec<_> = p.visible_cursors(100.0).collect();
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].0.at, v[0].1, v[0].2),
            (Pt::new(10.0, 2.0), 1.0, "Bob")
        );
        assert!((cursor_alpha(CURSOR_IDLE_MS + CURSOR_FADE_MS / 2.0) - 0.5).abs() < 1e-9);
        assert_eq!(p.visible_cursors(10_000.0).count(), 0);
        assert!(!p.is_animating(10_000.0));
        p.cursor(
            CursorUpdate {
                member: MemberId(1),
                at: None,
            },
            1.0,
        );
        assert_eq!(p.visible_cursors(2.0).count(), 0);
    }

    #[test]
    fn laser_trails_fade_within_a_second_and_move_the_cursor() {
        let mut p = Presence::new();
        p.welcome(MemberId(2), vec![member(1, "Bob"), member(2, "Ada")]);
        for (i, x) in [8, 16, 24].into_iter().enumerate() {
            let t = i as f64 * 100.0;
            p.laser(
                LaserUpdate {
                    member: MemberId(1),
                    at: Cursor::new(x, 0).unwrap(),
                },
                t,
            );
            p.laser(
                LaserUpdate {
                    member: MemberId(2),
                    at: Cursor::new(x, 0).unwrap(),
                },
                t,
            );
        }
        let trails: Vec<_> = p.laser_trails(250.0).collect();
        assert_eq!(trails.len(), 1, "ours is not shown as someone else's");
        let points: Vec<_> = trails[0].0.visible(250.0).collect();
        assert_eq!(points.len(), 3);
        assert_eq!(points[2].0, Pt::new(3.0, 0.0));
        assert!(points[0].1 < points[2].1, "older points are fainter");
        assert_eq!(
            p.visible_cursors(250.0).next().unwrap().0.at,
            Pt::new(3.0, 0.0)
        );
        assert!(p.is_animating(1_100.0));
        assert_eq!(
            p.laser_trails(1_200.0).count(),
            0,
            "gone a second after the last point"
        );
        p.event(PresenceEvent::Left(MemberId(1)));
        assert_eq!(p.laser_trails(250.0).count(), 0);
    }

    #[test]
    fn a_trail_is_bounded() {
        let mut t = LaserTrail::default();
        for i in 0..1000 {
            t.push(Pt::new(f64::from(i), 0.0), f64::from(i) / 10.0);
        }
        assert_eq!(t.len(100.0), MAX_TRAIL_POINTS);
        assert!(t.is_empty(100.0 + LASER_TRAIL_MS));
    }

    #[test]
    fn initials_of_names() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("ada"), "AD");
        assert_eq!(initials("Jean de la Fontaine"), "JF");
        assert_eq!(initials("  "), "?");
        assert_eq!(initials("élodie"), "ÉL");
    }

    #[test]
    fn only_cursors_that_can_show_on_screen_are_drawn() {
        let screen = (800.0, 600.0);
        assert!(cursor_on_screen(Pt::new(400.0, 300.0), screen));
        // Its label still reaches in from just above and left of the screen.
        assert!(cursor_on_screen(Pt::new(-100.0, -100.0), screen));
        assert!(!cursor_on_screen(Pt::new(-500.0, 300.0), screen));
        assert!(!cursor_on_screen(Pt::new(400.0, 601.0), screen));
        assert!(!cursor_on_screen(Pt::new(5000.0, 5000.0), screen));
    }
}
