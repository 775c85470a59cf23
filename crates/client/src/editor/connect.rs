//! The editor's side of the connection: the Hello, what the server sends, what goes out each
//! frame, and what a lost or returning network means.

use kokuban_protocol::{
    ClientMsg, DecodeError, Handles, Name, PresenceEvent, Profile, ServerMsg, decode_server,
    encode_client,
};

use super::{CAMERA_INTERVAL_MS, CURSOR_INTERVAL_MS, Command, Editor};
use crate::connection::{FrameBudget, Next};
use crate::link::RoomLink;
use crate::prefs::clean_name;
use crate::session::Notice;

impl Editor {
    /// The Hello frame for a connection that just opened (None without a usable link).
    pub fn hello(&mut self) -> Option<Vec<u8>> {
        let link = self.link.as_ref()?;
        let token = link.token()?.clone();
        let room = link.room.clone();
        let name = Name::new(clean_name(&self.prefs.name)).ok()?;
        let msg = self.session.hello(room, token, name, self.prefs.color);
        self.budget = FrameBudget::new();
        self.handles = Handles::new();
        self.node_reads_handles = false;
        Some(encode_client(&msg))
    }

    /// A frame from the server; returns what the socket owner must do.
    pub fn receive(&mut self, bytes: &[u8], now_ms: f64) -> Option<Command> {
        let msg = match decode_server(bytes) {
            Ok(msg) => msg,
            // The server relays only what it decoded itself, so a frame of another version, or
            // one this build cannot read (a message or an op added since), comes from a newer
            // server: reconnecting would meet the same, only a newer app can go on.
            Err(DecodeError::Version { .. } | DecodeError::Malformed(_)) => {
                self.connection.outdated();
                self.bump();
                return Some(Command::Close);
            }
            Err(_) => return Some(Command::Reconnect),
        };
        if matches!(msg, ServerMsg::Acked(_) | ServerMsg::Points(_)) {
            self.node_reads_handles = true;
        }
        let had_content = !self.session.view().is_empty();
        let had_title = self.session.view().title().cloned();
        let notices = self.session.receive(msg, &mut self.rng);
        if had_content == self.session.view().is_empty()
            || had_title.as_ref() != self.session.view().title()
        {
            // Others' drawing (or clearing) changes what the menu offers ("Clear board"),
            // and a rename what the title says.
            self.bump();
        }
        let mut command = None;
        for n in notices {
            match n {
                Notice::Welcomed {
                    member, members, ..
                } => {
                    self.presence.welcome(member, members);
                    self.connection.welcomed(now_ms);
                    self.tools.prune_selection(self.session.view());
                    // Others should see where our pointer is, and what we look at, right away.
                    self.cursor_sent_ms = f64::NEG_INFINITY;
                    self.camera_due = true;
                    self.bump();
                }
                Notice::Presence(e) => {
                    match e {
                        // A newcomer should know where everyone looks, to follow them.
                        PresenceEvent::Joined(_) => self.camera_due = true,
                        PresenceEvent::Left(id) if self.following == Some(id) => self.unfollow(),
                        _ => {}
                    }
                    self.presence.event(e);
                    self.bump();
                }
                Notice::Cursor(c) => self.presence.cursor(c, now_ms),
                Notice::Laser(l) => self.presence.laser(l, now_ms),
                Notice::Camera(c) => {
                    self.presence.camera(c);
                    if self.following == Some(c.member) {
                        self.show_camera(c.camera);
                    }
                }
                Notice::AskToFollow(m) => self.asked_by(m, now_ms),
                Notice::Renamed { from, to } => self.history.rename(from, to),
                Notice::Unconfirmed(_) => {
                    self.toasts.push(crate::session::UNCONFIRMED_TOAST.into());
                    self.bump();
                }
                Notice::ReadOnly(refused) => {
                    self.connection.read_only(refused);
                    if !refused {
                        self.write_retry.reset();
                    }
                    self.bump();
                }
                Notice::Toast(t) => {
                    self.toasts.push(t);
                    self.bump();
                }
                Notice::Resync => command = command.or(Some(Command::Reconnect)),
                Notice::Fatal(reason) => {
                    self.connection.fatal(reason);
                    command = Some(Command::Close);
                }
                Notice::Outdated => {
                    self.connection.outdated();
                    command = Some(Command::Close);
                }
            }
        }
        command
    }

    /// The connection closed with `code`; returns when to try again.
    pub fn disconnected(&mut self, code: u16, online: bool, now_ms: f64) -> Next {
        self.session.disconnected();
        self.presence.clear();
        let next = self.connection.closed(code, online, now_ms, &mut self.rng);
        self.bump();
        next
    }

    /// This tab reset the room's links: `link` holds the new ones, which later Hellos use.
    /// Returns what the socket owner must do (`RetryIn(0)`: connect again now).
    pub fn relink(&mut self, link: RoomLink) -> Next {
        self.link = Some(link);
        let next = self.connection.relinked();
        self.bump();
        next
    }

    /// A message for the user from outside the editor (e.g. the browser's storage is full).
    pub fn notify(&mut self, text: impl Into<String>) {
        self.toasts.push(text.into());
        self.bump();
    }

    /// Another tab took this tab's kept outbox over (this one slept in the background for
    /// long): this tab stops for good, so that two tabs never write under one key.
    pub fn superseded(&mut self) {
        self.connection.fatal(
            "This board's unsaved changes were taken over by another tab. Reload to go on here."
                .into(),
        );
        self.session.disconnected();
        self.bump();
    }

    /// The browser went offline.
    pub fn offline(&mut self) {
        self.connection.offline();
        self.bump();
    }

    /// The browser came back online. A connection that is still welcomed survived the
    /// outage ([`Next::Stay`]).
    pub fn online(&mut self) -> Next {
        let next = self.connection.online(self.session.is_welcomed());
        self.bump();
        next
    }

    /// The frames to send this animation frame: queued ops within the frame budget, then a
    /// profile change, then the latest cursor position (at most every 40 ms).
    pub fn outgoing(&mut self, now_ms: f64) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        if !self.session.is_welcomed() {
            return frames;
        }
        if self.session.writes_refused() && self.write_retry.due(now_ms, &mut self.rng) {
            for n in self.session.retry_writes(&mut self.rng) {
                if let Notice::Renamed { from, to } = n {
                    self.history.rename(from, to);
                }
            }
        }
        // One token is kept back for the cursor, so that drawing never freezes it.
        while self.budget.available(now_ms) > 1 {
            let Some(msg) = self.session.next_op() else {
                break;
            };
            self.budget.take(now_ms);
            let short = self.handles.shorten(&msg);
            match short {
                Some(short) if self.node_reads_handles => frames.push(encode_client(&short)),
                _ => frames.push(encode_client(&msg)),
            }
        }
        if self.profile_changed
            && let Ok(name) = Name::new(clean_name(&self.prefs.name))
            && self.budget.take(now_ms)
        {
            self.profile_changed = false;
            frames.push(encode_client(&ClientMsg::Profile(Profile {
                name,
                color: self.prefs.color,
            })));
        }
        // A laser point moves the cursor too, so the two share one rate.
        if let Some(at) = self.laser_at
            && now_ms - self.cursor_sent_ms >= CURSOR_INTERVAL_MS
            && self.budget.take(now_ms)
        {
            self.laser_at = None;
            self.cursor = None;
            self.cursor_sent_ms = now_ms;
            frames.push(encode_client(&ClientMsg::Laser(at)));
        }
        if let Some(at) = self.cursor
            && now_ms - self.cursor_sent_ms >= CURSOR_INTERVAL_MS
            && self.budget.take(now_ms)
        {
            self.cursor = None;
            self.cursor_sent_ms = now_ms;
            frames.push(encode_client(&ClientMsg::Cursor(at)));
        }
        // Last: what we look at matters less than where we point.
        if let Some(camera) = self.camera()
            && (self.camera_due || self.camera_sent != Some(camera))
            && now_ms - self.camera_sent_ms >= CAMERA_INTERVAL_MS
            && self.budget.take(now_ms)
        {
            self.camera_due = false;
            self.camera_sent = Some(camera);
            self.camera_sent_ms = now_ms;
            frames.push(encode_client(&ClientMsg::Camera(camera)));
        }
        // After our camera, so that whoever follows us sees it at once.
        if self.ask_pending && !self.camera_due && self.budget.take(now_ms) {
            self.ask_pending = false;
            frames.push(encode_client(&ClientMsg::AskToFollow));
        }
        frames
    }
}
