//! Following someone's camera, and asking everyone to follow ours.

use kokuban_protocol::limits::{MAX_ZOOM_MILLI, MIN_ZOOM_MILLI};
use kokuban_protocol::{Camera, Cursor, MemberId};

use super::{DECLINED_QUIET_MS, Editor, units};
use crate::geom::Pt;
use crate::viewport::Viewport;

impl Editor {
    /// Follows `member`'s camera (pan and zoom) until we pan or zoom ourselves, or press
    /// Escape. Nothing happens for ourselves or someone not in the room.
    pub fn follow(&mut self, member: MemberId) {
        if Some(member) == self.presence.me() || self.presence.member(member).is_none() {
            return;
        }
        self.following = Some(member);
        if let Some(c) = self.presence.camera_of(member) {
            self.show_camera(c);
        }
        self.bump();
    }

    /// Stops following.
    pub fn unfollow(&mut self) {
        if self.following.take().is_some() {
            self.bump();
        }
    }

    /// Whom we follow.
    pub fn following(&self) -> Option<MemberId> {
        self.following
    }

    /// Asks everyone else to follow our camera (sent with our camera, so that they see at once
    /// what we see).
    pub fn ask_everyone_to_follow(&mut self) {
        self.ask_pending = true;
        self.camera_due = true;
    }

    /// The member who asks us to follow them, while we have not answered and they are here.
    pub fn asked_to_follow(&self) -> Option<MemberId> {
        self.asked_to_follow
            .map(|(m, _)| m)
            .filter(|m| self.presence.member(*m).is_some())
    }

    /// Answers an ask to follow: follows the member who asked, or declines (and their asks of
    /// the next minute are not shown).
    pub fn answer_ask_to_follow(&mut self, follow: bool) {
        if let Some((member, at)) = self.asked_to_follow.take() {
            if follow {
                self.follow(member);
            } else {
                self.declined = Some((member, at));
            }
            self.bump();
        }
    }

    /// Someone asked everyone to follow them at `now_ms`: we are asked unless we already follow
    /// them, declined them within the last minute, or it is us or someone not in the room.
    pub(super) fn asked_by(&mut self, member: MemberId, now_ms: f64) {
        let declined_lately = self
            .declined
            .is_some_and(|(m, at)| m == member && now_ms - at < DECLINED_QUIET_MS);
        if Some(member) == self.presence.me()
            || self.presence.member(member).is_none()
            || self.following == Some(member)
            || declined_lately
        {
            return;
        }
        self.asked_to_follow = Some((member, now_ms));
        self.bump();
    }

    /// Shows what `camera` shows: the same world point at the centre of our screen (whatever
    /// its size), at the same zoom.
    pub(super) fn show_camera(&mut self, camera: Camera) {
        let zoom = Viewport::new(Pt::new(0.0, 0.0), f64::from(camera.zoom_milli()) / 1000.0).zoom();
        let c = camera.center();
        let center = Pt::new(f64::from(c.x()) / 8.0, f64::from(c.y()) / 8.0);
        let origin = Pt::new(
            center.x - self.screen.0 / 2.0 / zoom,
            center.y - self.screen.1 / 2.0 / zoom,
        );
        self.viewport = Viewport::new(origin, zoom);
        self.view_changed = true;
        // The zoom percentage on screen.
        self.bump();
    }

    /// Our camera as others may follow it.
    pub(super) fn camera(&self) -> Option<Camera> {
        let c = self
            .viewport
            .to_world(Pt::new(self.screen.0 / 2.0, self.screen.1 / 2.0));
        let zoom = (self.viewport.zoom() * 1000.0)
            .round()
            .clamp(f64::from(MIN_ZOOM_MILLI), f64::from(MAX_ZOOM_MILLI)) as u16;
        Camera::new(Cursor::new(units(c.x), units(c.y)).ok()?, zoom).ok()
    }
}
