//! The whole app state behind one type: the session, the tools, the undo history, the
//! camera, presence and the connection policy. The frontend forwards browser events here and
//! draws what it holds; every decision about them is made (and tested) here.

use kokuban_board::{Board, Shape};
use kokuban_protocol::{
    ClientMsg, Color, Cursor, DecodeError, Name, Op, Profile, StrokeId, Width, decode_server,
    encode_client,
};

use crate::connection::{Connection, FrameBudget, Next, Status, WriteRetry};
use crate::geom::{Pt, Rect};
use crate::history::History;
use crate::link::RoomLink;
use crate::outbox::Outbox;
use crate::prefs::{Prefs, Size, clean_name};
use crate::presence::Presence;
use crate::rng::{Entropy, Xoshiro256};
use crate::session::{Notice, Redraw, Session};
use crate::smooth::Device;
use crate::spatial::IndexedBoard;
use crate::svg::content_bounds;
use crate::tools::{Output, TOUCH_RADIUS, TextTarget, ToolInput, ToolKind, Tools, pick_text};
use crate::viewport::{Viewport, wheel_zoom_factor};

/// Cursor positions are sent at most this often (the server relays them at 25 Hz anyway).
const CURSOR_INTERVAL_MS: f64 = 40.0;
/// Margin around the drawing when zooming to fit, in screen pixels.
const FIT_MARGIN: f64 = 48.0;
/// Zoom buttons and keys change the zoom by this factor.
const ZOOM_STEP: f64 = 1.25;
/// Two clicks this close in time (ms) and space (screen pixels) are a double click.
const DOUBLE_CLICK_MS: f64 = 500.0;
const DOUBLE_CLICK_PX: f64 = 6.0;

/// What kind of pointer an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerKind {
    /// Mouse or trackpad.
    Mouse,
    /// Stylus.
    Pen,
    /// Finger.
    Touch,
}

/// One pointer event (or one coalesced sample of it), in screen pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Input {
    /// The pointer's id (`pointerId`).
    pub id: i32,
    /// Where, in CSS pixels of the canvas.
    pub screen: Pt,
    /// Pressure (`0..=1`).
    pub pressure: f64,
    /// Device.
    pub kind: PointerKind,
    /// The button that went down (0 primary, 1 middle, 2 secondary); moves carry 0.
    pub button: i16,
    /// Event time (ms).
    pub time_ms: f64,
    /// Shift held.
    pub shift: bool,
}

/// A text editor the app should open (or has open) over the board.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRequest {
    /// World point of the text's top-left corner.
    pub at: Pt,
    /// The text item being edited; `None` for a new one.
    pub editing: Option<StrokeId>,
    /// The text it starts with.
    pub text: String,
    /// Ink.
    pub color: Color,
    /// Font size.
    pub size: Width,
}

/// What the owner of the WebSocket must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Close this connection and open a new one now (resume).
    Reconnect,
    /// Close for good.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Nav {
    Idle,
    Pan { id: i32, last: Pt },
    Pinch { a: (i32, Pt), b: (i32, Pt) },
}

/// The app's state. See the module documentation.
#[derive(Debug)]
pub struct Editor {
    session: Session,
    tools: Tools,
    history: History,
    viewport: Viewport,
    presence: Presence,
    connection: Connection,
    budget: FrameBudget,
    /// When to try a write again while the room refuses them.
    write_retry: WriteRetry,
    rng: Xoshiro256,
    prefs: Prefs,
    link: Option<RoomLink>,
    screen: (f64, f64, f64),
    pointers: Vec<(i32, Pt, PointerKind)>,
    nav: Nav,
    tool_pointer: Option<i32>,
    space_held: bool,
    stylus_seen: bool,
    cursor: Option<Option<Cursor>>,
    cursor_sent_ms: f64,
    profile_changed: bool,
    toasts: Vec<String>,
    text_request: Option<TextRequest>,
    /// The text editor that is open, until it is committed or cancelled.
    text_open: Option<TextRequest>,
    /// Where and when the primary button last went down (screen), for double clicks.
    last_click: Option<(Pt, f64)>,
    view_changed: bool,
    ui_version: u64,
}

impl Editor {
    /// An editor for `link` (None: no room, e.g. in tests of the tools) with `prefs`, seeded
    /// with 32 random bytes, carrying on with `outbox` (a kept one, or a fresh one whose key
    /// came from a secure source: not from the seed, whose generator's output others see in
    /// stroke ids).
    pub fn new(prefs: Prefs, link: Option<RoomLink>, seed: [u8; 32], outbox: Outbox) -> Self {
        Self {
            session: Session::restore(outbox),
            tools: Tools::new(prefs.tool, prefs.ink, prefs.size),
            history: History::new(),
            viewport: Viewport::default(),
            presence: Presence::new(),
            connection: Connection::new(),
            budget: FrameBudget::new(),
            write_retry: WriteRetry::default(),
            rng: Xoshiro256::from_seed(seed),
            prefs,
            link,
            screen: (800.0, 600.0, 1.0),
            pointers: Vec::new(),
            nav: Nav::Idle,
            tool_pointer: None,
            space_held: false,
            stylus_seen: false,
            cursor: None,
            cursor_sent_ms: f64::NEG_INFINITY,
            profile_changed: false,
            toasts: Vec::new(),
            text_request: None,
            text_open: None,
            last_click: None,
            view_changed: true,
            ui_version: 0,
        }
    }

    // ---- what the frontend reads ----

    /// The board as the user sees it.
    pub fn board(&self) -> &Board {
        self.session.view()
    }

    /// The board as the user sees it, with its spatial index (for the renderer).
    pub fn indexed(&self) -> &IndexedBoard {
        self.session.indexed()
    }

    /// The session (for what the board view does not tell).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The camera.
    pub fn viewport(&self) -> &Viewport {
        &self.viewport
    }

    /// Members and cursors.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Connection status.
    pub fn status(&self) -> &Status {
        self.connection.status()
    }

    /// Preferences (as currently chosen).
    pub fn prefs(&self) -> &Prefs {
        &self.prefs
    }

    /// The room link the page was opened with.
    pub fn link(&self) -> Option<&RoomLink> {
        self.link.as_ref()
    }

    /// The tools (selection, marquee).
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// Whether this tab may draw: it has an edit token and the server did not say otherwise.
    pub fn can_edit(&self) -> bool {
        let token_edits = self.link.as_ref().is_none_or(|l| l.edit.is_some());
        token_edits && self.session.capability() != Some(kokuban_protocol::Capability::View)
    }

    /// Whether there is something to undo / redo.
    pub fn can_undo(&self) -> (bool, bool) {
        (self.history.can_undo(), self.history.can_redo())
    }

    /// What the board renderer must redraw.
    pub fn take_redraw(&mut self) -> Redraw {
        self.session.take_redraw()
    }

    /// Whether the camera moved since the last call.
    pub fn take_view_changed(&mut self) -> bool {
        std::mem::take(&mut self.view_changed)
    }

    /// Messages for the user, oldest first.
    pub fn take_toasts(&mut self) -> Vec<String> {
        std::mem::take(&mut self.toasts)
    }

    /// A text editor to open: the text tool was clicked, or a text item double-clicked.
    pub fn take_text_request(&mut self) -> Option<TextRequest> {
        self.text_request.take()
    }

    /// The text item whose editor is open: the renderer leaves it out while its text is in
    /// the editor, so that it does not show twice.
    pub fn editing_text(&self) -> Option<StrokeId> {
        self.text_open.as_ref().and_then(|t| t.editing)
    }

    /// Grows whenever something the toolbar or the status shows may have changed.
    pub fn ui_version(&self) -> u64 {
        self.ui_version
    }

    /// A random word (for the frontend's own needs, e.g. ids of elements).
    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    // ---- settings ----

    /// The canvas is `width × height` CSS pixels at `ratio` device pixels per CSS pixel.
    pub fn set_screen(&mut self, width: f64, height: f64, ratio: f64) {
        self.screen = (width, height, ratio);
        self.view_changed = true;
    }

    /// Picks a tool.
    pub fn set_tool(&mut self, kind: ToolKind) {
        self.tools.set_kind(kind);
        self.prefs.tool = self.tools.kind();
        self.bump();
    }

    /// Picks an ink colour.
    pub fn set_ink(&mut self, ink: Color) {
        self.tools.ink = ink;
        self.prefs.ink = ink;
        self.bump();
    }

    /// Picks a size.
    pub fn set_size(&mut self, size: Size) {
        self.tools.size = size;
        self.prefs.size = size;
        self.bump();
    }

    /// Switches light/dark.
    pub fn toggle_theme(&mut self) {
        self.prefs.theme = self.prefs.theme.toggled();
        self.view_changed = true;
        self.bump();
    }

    /// Changes the display name and colour (sent to the room).
    pub fn set_profile(&mut self, name: &str, color: Color) {
        let name = clean_name(name);
        if !name.is_empty() {
            self.prefs.name = name;
        }
        self.prefs.color = color;
        self.profile_changed = true;
        self.bump();
    }

    // ---- commands ----

    /// Undoes this tab's latest action.
    pub fn undo(&mut self) {
        if !self.can_edit() || self.tools.is_active() {
            return;
        }
        let ops = self.history.undo(self.session.view());
        self.local(ops);
    }

    /// Redoes the latest undone action.
    pub fn redo(&mut self) {
        if !self.can_edit() || self.tools.is_active() {
            return;
        }
        let ops = self.history.redo(self.session.view());
        self.local(ops);
    }

    /// Erases the selection.
    pub fn delete_selection(&mut self) {
        let out = self.tools.delete_selection(self.session.view());
        self.apply(out);
    }

    /// Removes everything from the board, for everyone (not undoable).
    pub fn clear_board(&mut self) {
        if self.can_edit() && !self.session.view().is_empty() {
            self.local(vec![Op::Clear]);
            self.history = History::new();
        }
    }

    /// Closes the open text editor: with `Some(text)` its content is placed (a new item) or
    /// replaces the edited item's; with `None` it is dropped. An edited item that someone
    /// erased meanwhile is placed again as a new item, so that what was typed is not lost.
    pub fn commit_text(&mut self, text: Option<&str>) {
        let Some(open) = self.text_open.take() else {
            return;
        };
        self.bump();
        let Some(text) = text else { return };
        if !self.can_edit() {
            return;
        }
        let edited = open
            .editing
            .filter(|id| self.session.view().get(id).is_some_and(|s| !s.erased));
        let out = match edited {
            Some(id) => self
                .tools
                .edit_text(self.session.indexed(), id, text, &mut self.rng),
            None => {
                let at = match open.editing.and_then(|id| self.session.view().get(&id)) {
                    Some(s) => s.placed_points().next().map_or(open.at, Pt::of),
                    None => open.at,
                };
                self.tools.text(at, text, &mut self.rng)
            }
        };
        self.apply(out);
    }

    /// Zooms by `factor` around the screen's centre.
    pub fn zoom_by(&mut self, factor: f64) {
        let c = Pt::new(self.screen.0 / 2.0, self.screen.1 / 2.0);
        self.viewport.zoom_at(c, factor);
        self.view_changed = true;
        self.bump();
    }

    /// Zooms in one step.
    pub fn zoom_in(&mut self) {
        self.zoom_by(ZOOM_STEP);
    }

    /// Zooms out one step.
    pub fn zoom_out(&mut self) {
        self.zoom_by(1.0 / ZOOM_STEP);
    }

    /// Back to 100% around the centre.
    pub fn reset_zoom(&mut self) {
        let z = self.viewport.zoom();
        self.zoom_by(1.0 / z);
    }

    /// Frames the whole drawing.
    pub fn zoom_to_fit(&mut self) {
        let content = content_bounds(self.session.view());
        self.viewport
            .fit(content, self.screen.0, self.screen.1, FIT_MARGIN);
        self.view_changed = true;
        self.bump();
    }

    /// The world rectangle on screen now.
    pub fn visible(&self) -> Rect {
        self.viewport.visible(self.screen.0, self.screen.1)
    }

    // ---- input ----

    /// A pointer went down on the canvas.
    pub fn pointer_down(&mut self, input: Input) {
        self.pointers.retain(|p| p.0 != input.id);
        self.pointers.push((input.id, input.screen, input.kind));
        if input.kind == PointerKind::Pen {
            self.stylus_seen = true;
        }
        let touches: Vec<(i32, Pt)> = self
            .pointers
            .iter()
            .filter(|p| p.2 == PointerKind::Touch)
            .map(|p| (p.0, p.1))
            .collect();
        if input.kind == PointerKind::Touch && touches.len() >= 2 {
            // A second finger: whatever the first one started was the beginning of a pinch.
            let out = self.tools.cancel();
            self.apply(out);
            self.tool_pointer = None;
            self.nav = Nav::Pinch {
                a: touches[0],
                b: touches[1],
            };
            return;
        }
        if !matches!(self.nav, Nav::Idle) || self.tool_pointer.is_some() {
            return;
        }
        let pan = input.button == 1
            || self.space_held
            || self.tools.kind() == ToolKind::Hand
            || !self.can_edit()
            // Palm rejection: once a stylus was used, fingers only navigate.
            || (input.kind == PointerKind::Touch && self.stylus_seen);
        if pan {
            self.nav = Nav::Pan {
                id: input.id,
                last: input.screen,
            };
            return;
        }
        if input.button != 0 {
            return;
        }
        let double = self.last_click.is_some_and(|(at, t)| {
            input.time_ms - t <= DOUBLE_CLICK_MS && at.dist(input.screen) <= DOUBLE_CLICK_PX
        });
        self.last_click = (!double).then_some((input.screen, input.time_ms));
        let zoom = self.viewport.zoom();
        if double && self.tools.kind() == ToolKind::Select {
            let at = self.viewport.to_world(input.screen);
            if let Some(id) = pick_text(self.session.indexed(), at, TOUCH_RADIUS / zoom) {
                self.open_text(TextTarget::Edit(id));
                return;
            }
        }
        let out = self.tools.down(
            self.tool_input(&input),
            self.session.indexed(),
            zoom,
            &mut self.rng,
        );
        self.tool_pointer = Some(input.id);
        self.apply(out);
    }

    /// A pointer moved: `samples` are its coalesced samples, oldest first (one at least).
    pub fn pointer_move(&mut self, samples: &[Input]) {
        let Some(last) = samples.last().copied() else {
            return;
        };
        if let Some(p) = self.pointers.iter_mut().find(|p| p.0 == last.id) {
            p.1 = last.screen;
        }
        let world = self.viewport.to_world(last.screen);
        if last.kind != PointerKind::Touch || self.tool_pointer == Some(last.id) {
            self.cursor = Some(Cursor::new(units(world.x), units(world.y)).ok());
        }
        match self.nav {
            Nav::Pan { id, last: prev } if id == last.id => {
                self.viewport.pan(
                    last.screen.x - prev.x,
                    last.screen.y - prev.y,
                    self.screen.2,
                );
                self.nav = Nav::Pan {
                    id,
                    last: last.screen,
                };
                self.view_changed = true;
                return;
            }
            Nav::Pinch { a, b } if a.0 == last.id || b.0 == last.id => {
                let (na, nb) = if a.0 == last.id {
                    ((a.0, last.screen), b)
                } else {
                    (a, (b.0, last.screen))
                };
                let (m0, m1) = (a.1.lerp(b.1, 0.5), na.1.lerp(nb.1, 0.5));
                let (d0, d1) = (a.1.dist(b.1), na.1.dist(nb.1));
                self.viewport.pan(m1.x - m0.x, m1.y - m0.y, self.screen.2);
                if d0 > 1.0 && d1 > 1.0 {
                    self.viewport.zoom_at(m1, d1 / d0);
                }
                self.nav = Nav::Pinch { a: na, b: nb };
                self.view_changed = true;
                self.bump();
                return;
            }
            _ => {}
        }
        if self.tool_pointer == Some(last.id) {
            let inputs: Vec<ToolInput> = samples.iter().map(|s| self.tool_input(s)).collect();
            let zoom = self.viewport.zoom();
            let out = self
                .tools
                .moved(&inputs, self.session.indexed(), zoom, &mut self.rng);
            self.apply(out);
        }
    }

    /// A pointer went up.
    pub fn pointer_up(&mut self, input: Input) {
        self.pointers.retain(|p| p.0 != input.id);
        match self.nav {
            Nav::Pan { id, .. } if id == input.id => self.nav = Nav::Idle,
            Nav::Pinch { a, b } if a.0 == input.id || b.0 == input.id => self.nav = Nav::Idle,
            _ => {}
        }
        if self.tool_pointer == Some(input.id) {
            self.tool_pointer = None;
            let zoom = self.viewport.zoom();
            let out = self.tools.up(
                self.tool_input(&input),
                self.session.indexed(),
                zoom,
                &mut self.rng,
            );
            self.apply(out);
            self.bump();
        }
    }

    /// The browser took a pointer away (`pointercancel`).
    pub fn pointer_cancel(&mut self, id: i32) {
        self.pointers.retain(|p| p.0 != id);
        if self.tool_pointer == Some(id) {
            self.tool_pointer = None;
            let out = self.tools.cancel();
            self.apply(out);
        }
        if matches!(self.nav, Nav::Pan { id: i, .. } if i == id)
            || matches!(self.nav, Nav::Pinch { a, b } if a.0 == id || b.0 == id)
        {
            self.nav = Nav::Idle;
        }
    }

    /// The pointer left the canvas: others stop seeing our cursor.
    pub fn pointer_leave(&mut self) {
        self.cursor = Some(None);
    }

    /// A wheel event at `at`: Ctrl (a trackpad pinch) or a plain mouse wheel zooms around the
    /// pointer; a sideways component (a trackpad's two-finger scroll) pans.
    pub fn wheel(&mut self, at: Pt, dx: f64, dy: f64, ctrl: bool) {
        if ctrl || dx == 0.0 {
            self.viewport.zoom_at(at, wheel_zoom_factor(dy));
        } else {
            self.viewport.pan(-dx, -dy, self.screen.2);
        }
        self.view_changed = true;
        self.bump();
    }

    /// A key went down; returns whether the app used it (the page should not).
    pub fn key_down(&mut self, key: &str, ctrl: bool, shift: bool) -> bool {
        let lower = key.to_ascii_lowercase();
        match (ctrl, lower.as_str()) {
            (true, "z") if shift => self.redo(),
            (true, "z") => self.undo(),
            (true, "y") => self.redo(),
            (true, "a") => {
                if self.can_edit() {
                    self.tools.select_all(self.session.view());
                    self.prefs.tool = ToolKind::Select;
                }
            }
            (false, " ") => self.space_held = true,
            (false, "delete" | "backspace") => self.delete_selection(),
            (false, "escape") => self.tools.clear_selection(),
            (false, "+" | "=") => self.zoom_in(),
            (false, "-" | "_") => self.zoom_out(),
            (false, "0") => self.reset_zoom(),
            (false, "f") => self.zoom_to_fit(),
            (false, k) if k.chars().count() == 1 && self.can_edit() => {
                let Some(tool) = k.chars().next().and_then(ToolKind::from_shortcut) else {
                    return false;
                };
                self.set_tool(tool);
            }
            _ => return false,
        }
        self.bump();
        true
    }

    /// A key went up.
    pub fn key_up(&mut self, key: &str) {
        if key == " " {
            self.space_held = false;
        }
    }

    /// Whether the board is being panned with space held (the cursor shows a hand).
    pub fn is_panning(&self) -> bool {
        self.space_held || !matches!(self.nav, Nav::Idle)
    }

    // ---- connection ----

    /// The Hello frame for a connection that just opened (None without a usable link).
    pub fn hello(&mut self) -> Option<Vec<u8>> {
        let link = self.link.as_ref()?;
        let token = link.token()?.clone();
        let room = link.room.clone();
        let name = Name::new(clean_name(&self.prefs.name)).ok()?;
        let msg = self.session.hello(room, token, name, self.prefs.color);
        self.budget = FrameBudget::new();
        Some(encode_client(&msg))
    }

    /// A frame from the server; returns what the socket owner must do.
    pub fn receive(&mut self, bytes: &[u8], now_ms: f64) -> Option<Command> {
        let msg = match decode_server(bytes) {
            Ok(msg) => msg,
            Err(DecodeError::Version { .. }) => {
                self.connection.outdated();
                self.bump();
                return Some(Command::Close);
            }
            Err(_) => return Some(Command::Reconnect),
        };
        let notices = self.session.receive(msg, &mut self.rng);
        let mut command = None;
        for n in notices {
            match n {
                Notice::Welcomed {
                    member, members, ..
                } => {
                    self.presence.welcome(member, members);
                    self.connection.welcomed(now_ms);
                    self.tools.prune_selection(self.session.view());
                    // Others should see where our pointer is right away.
                    self.cursor_sent_ms = f64::NEG_INFINITY;
                    self.bump();
                }
                Notice::Presence(e) => {
                    self.presence.event(e);
                    self.bump();
                }
                Notice::Cursor(c) => self.presence.cursor(c, now_ms),
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

    /// The browser came back online.
    pub fn online(&mut self) -> Next {
        let next = self.connection.online();
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
            frames.push(encode_client(&msg));
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
        if let Some(at) = self.cursor
            && now_ms - self.cursor_sent_ms >= CURSOR_INTERVAL_MS
            && self.budget.take(now_ms)
        {
            self.cursor = None;
            self.cursor_sent_ms = now_ms;
            frames.push(encode_client(&ClientMsg::Cursor(at)));
        }
        frames
    }

    // ---- internals ----

    fn tool_input(&self, i: &Input) -> ToolInput {
        ToolInput {
            at: self.viewport.to_world(i.screen),
            pressure: i.pressure,
            device: match i.kind {
                PointerKind::Mouse => Device::Mouse,
                PointerKind::Pen => Device::Stylus,
                PointerKind::Touch => Device::Touch,
            },
            time_ms: i.time_ms,
            shift: i.shift,
        }
    }

    fn apply(&mut self, out: Output) {
        self.local(out.ops);
        if let Some(a) = out.action {
            // A stroke sent again under a new id while it was being drawn is recorded as such.
            let session = &self.session;
            self.history.record(a.follow(|id| session.current_id(id)));
            self.bump();
        }
        if let Some(target) = out.text {
            self.open_text(target);
        }
    }

    fn open_text(&mut self, target: TextTarget) {
        let request = match target {
            TextTarget::New(at) => TextRequest {
                at,
                editing: None,
                text: String::new(),
                color: self.tools.ink,
                size: self.tools.size.text(),
            },
            TextTarget::Edit(id) => {
                let Some(s) = self.session.view().get(&id) else {
                    return;
                };
                let Shape::Text(text) = &s.shape else { return };
                let Some(at) = s.placed_points().next() else {
                    return;
                };
                TextRequest {
                    at: Pt::of(at),
                    editing: Some(id),
                    text: text.as_str().to_string(),
                    color: s.color,
                    size: s.width,
                }
            }
        };
        // An editor still open (its blur did not arrive) is dropped for the new one.
        self.text_open = Some(request.clone());
        self.text_request = Some(request);
        self.bump();
    }

    fn local(&mut self, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        for op in ops {
            if !self.session.local(op) {
                break;
            }
        }
        self.tools.prune_selection(self.session.view());
        self.bump();
    }

    fn bump(&mut self) {
        self.ui_version += 1;
    }
}

fn units(px: f64) -> i32 {
    let u = (px * 8.0).round();
    if u.is_finite() { u as i32 } else { 0 }
}

#[cfg(test)]
mod tests;
