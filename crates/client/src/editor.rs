//! The whole app state behind one type: the session, the tools, the undo history, the
//! camera, presence and the connection policy. The frontend forwards browser events here and
//! draws what it holds; every decision about them is made (and tested) here.

use kokuban_board::{Board, Shape};
use kokuban_protocol::{Camera, Color, Cursor, Handles, MemberId, Op, StrokeId, Width};

use crate::clipboard::Clip;
use crate::connection::{Connection, FrameBudget, Remedy, Status, WriteRetry};
use crate::geom::{Pt, Rect};
use crate::history::{Action, History};
use crate::link::RoomLink;
use crate::outbox::Outbox;
use crate::prefs::{Prefs, SavedPrefs, Size, clean_name};
use crate::presence::{LaserTrail, Presence};
use crate::rng::{Entropy, Xoshiro256};
use crate::session::{Redraw, Session};
use crate::spatial::IndexedBoard;
use crate::svg::content_bounds;
use crate::tools::{Output, TextTarget, ToolKind, Tools};
use crate::viewport::Viewport;

mod connect;
mod edit;
mod follow;
mod input;
mod style;
mod title;
mod version;

pub use edit::{DUPLICATE_OFFSET_PX, NUDGE_PX};
use input::Nav;
pub use style::LookPart;

/// Cursor positions are sent at most this often (the server relays them at 25 Hz anyway).
const CURSOR_INTERVAL_MS: f64 = 40.0;
/// Our camera is sent when it moved, at most this often: followers see a pan at 10 Hz, and
/// a still camera costs nothing.
const CAMERA_INTERVAL_MS: f64 = 100.0;
/// After declining someone's ask to follow, their asks are not shown again for this long: a
/// member asking over and over cannot nag the others.
const DECLINED_QUIET_MS: f64 = 60_000.0;
/// Margin around the drawing when zooming to fit, in screen pixels.
const FIT_MARGIN: f64 = 48.0;
/// Zoom buttons and keys change the zoom by this factor.
const ZOOM_STEP: f64 = 1.25;
/// Two clicks this close in time (ms) and space (screen pixels) are a double click.
const DOUBLE_CLICK_MS: f64 = 500.0;
const DOUBLE_CLICK_PX: f64 = 6.0;
/// What the page says for a link without a token, for as long as it is open.
pub const NO_TOKEN: &str = "This link has no key to the board. Ask for its edit or view link.";

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
    /// How its lines line up.
    pub align: kokuban_protocol::Align,
}

/// What the owner of the WebSocket must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Close this connection and open a new one now (resume).
    Reconnect,
    /// Close for good.
    Close,
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
    /// What this connection carried, so that point batches go by handle.
    handles: Handles,
    /// The node has sent something only a node that reads handles sends (a short Ack or a
    /// batch by handle): until then batches go in full, so that a node of an older version
    /// (in the middle of an upgrade) is never sent what it cannot read.
    node_reads_handles: bool,
    /// When to try a write again while the room refuses them.
    write_retry: WriteRetry,
    rng: Xoshiro256,
    prefs: Prefs,
    /// The preferences as last stored, and whether they may have changed since.
    saved: SavedPrefs,
    prefs_changed: bool,
    link: Option<RoomLink>,
    screen: (f64, f64, f64),
    pointers: Vec<(i32, Pt, PointerKind)>,
    nav: Nav,
    tool_pointer: Option<i32>,
    /// The pointer drawing with the laser, while it is down.
    laser_pointer: Option<i32>,
    /// Our own laser trail (shown at once; others get it through the room).
    laser: LaserTrail,
    /// The laser's latest point not sent yet.
    laser_at: Option<Cursor>,
    /// The member whose camera ours follows, until we navigate ourselves or press Escape.
    following: Option<MemberId>,
    /// The member who asked everyone to follow them, and when (ms), until we answer.
    asked_to_follow: Option<(MemberId, f64)>,
    /// The member whose ask we declined last, and when they asked: their asks within
    /// [`DECLINED_QUIET_MS`] of it are not shown.
    declined: Option<(MemberId, f64)>,
    /// Whether our own ask to follow us waits to be sent.
    ask_pending: bool,
    /// The camera we last sent, when, and whether to send it again anyway (someone joined).
    camera_sent: Option<Camera>,
    camera_sent_ms: f64,
    camera_due: bool,
    space_held: bool,
    stylus_seen: bool,
    cursor: Option<Option<Cursor>>,
    /// Where the mouse or pen last was over the board (screen), while it is there.
    hover: Option<Pt>,
    cursor_sent_ms: f64,
    profile_changed: bool,
    toasts: Vec<String>,
    text_request: Option<TextRequest>,
    /// The text editor that is open, until it is committed or cancelled.
    text_open: Option<TextRequest>,
    /// Where and when the primary button last went down (screen), for double clicks.
    last_click: Option<(Pt, f64)>,
    view_changed: bool,
    /// A version of the board shown in place of the live one, read-only.
    shown: Option<version::Shown>,
    /// The board on screen became another one (a version, or the live board again).
    board_swapped: bool,
    ui_version: u64,
}

impl Editor {
    /// An editor for `link` (None: no room, e.g. in tests of the tools) with `prefs`, seeded
    /// with 32 random bytes, carrying on with `outbox` (a kept one, or a fresh one whose key
    /// came from a secure source: not from the seed, whose generator's output others see in
    /// stroke ids).
    pub fn new(prefs: Prefs, link: Option<RoomLink>, seed: [u8; 32], outbox: Outbox) -> Self {
        let mut connection = Connection::new();
        if link.as_ref().is_some_and(|l| l.token().is_none()) {
            connection.refuse(NO_TOKEN.into());
        }
        Self {
            session: Session::restore(outbox),
            tools: Tools::new(prefs.tool, prefs.ink, prefs.size, prefs.look),
            history: History::new(),
            viewport: Viewport::default(),
            presence: Presence::new(),
            connection,
            budget: FrameBudget::new(),
            handles: Handles::new(),
            node_reads_handles: false,
            write_retry: WriteRetry::default(),
            rng: Xoshiro256::from_seed(seed),
            saved: SavedPrefs::new(&prefs),
            prefs_changed: false,
            prefs,
            link,
            screen: (800.0, 600.0, 1.0),
            pointers: Vec::new(),
            nav: Nav::Idle,
            tool_pointer: None,
            laser_pointer: None,
            laser: LaserTrail::default(),
            laser_at: None,
            following: None,
            asked_to_follow: None,
            declined: None,
            ask_pending: false,
            camera_sent: None,
            camera_sent_ms: f64::NEG_INFINITY,
            camera_due: true,
            space_held: false,
            stylus_seen: false,
            cursor: None,
            hover: None,
            cursor_sent_ms: f64::NEG_INFINITY,
            profile_changed: false,
            toasts: Vec::new(),
            text_request: None,
            text_open: None,
            last_click: None,
            view_changed: true,
            shown: None,
            board_swapped: false,
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

    /// Our own laser trail.
    pub fn laser(&self) -> &LaserTrail {
        &self.laser
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

    /// Whether this tab may draw: it has an edit token, the server did not say otherwise, the
    /// connection has not given up for good (drawing would then go nowhere), and it shows the
    /// live board (not a version of it).
    pub fn can_edit(&self) -> bool {
        self.may_write() && self.shown.is_none()
    }

    /// Whether this tab may write to the room (whatever it shows).
    fn may_write(&self) -> bool {
        let token_edits = self.link.as_ref().is_none_or(|l| l.edit.is_some());
        token_edits
            && self.session.capability() != Some(kokuban_protocol::Capability::View)
            && !self.connection.is_closed()
    }

    /// What the user can do once the connection gave up for good (None while it has not).
    pub fn closed(&self) -> Option<Remedy> {
        self.connection.remedy()
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

    /// The preferences to write to storage: those changed since the last call (usually none,
    /// and then nothing is compared or allocated).
    pub fn take_prefs_to_save(&mut self) -> Vec<(&'static str, String)> {
        if !std::mem::take(&mut self.prefs_changed) {
            return Vec::new();
        }
        self.saved.changes(&self.prefs)
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
        self.prefs_changed = true;
        self.bump();
    }

    /// Picks an ink colour, and gives it to the selected items.
    pub fn set_ink(&mut self, ink: Color) {
        self.restyle_selection(Some(ink), None, None);
        self.tools.ink = ink;
        self.prefs.ink = ink;
        self.prefs_changed = true;
        self.bump();
    }

    /// Picks a size, and gives it to the selected items.
    pub fn set_size(&mut self, size: Size) {
        self.restyle_selection(None, Some(size), None);
        self.tools.size = size;
        self.prefs.size = size;
        self.prefs_changed = true;
        self.bump();
    }

    /// Switches light/dark.
    pub fn toggle_theme(&mut self) {
        self.prefs.theme = self.prefs.theme.toggled();
        self.view_changed = true;
        self.prefs_changed = true;
        self.bump();
    }

    /// Changes the display name and colour (sent to the room).
    pub fn set_profile(&mut self, name: &str, color: Color) {
        let name = clean_name(name);
        if !name.is_empty() {
            self.prefs.name = name;
        }
        self.prefs.color = color;
        self.presence.rename_me(&self.prefs.name, color);
        self.profile_changed = true;
        self.prefs_changed = true;
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

    /// Removes everything from the board, for everyone. Undo (in this tab) draws what was
    /// cleared again, as new items; redo erases them.
    pub fn clear_board(&mut self) {
        if self.can_edit() && !self.session.view().is_empty() {
            let again = Clip::everything(self.session.view())
                .map(|clip| clip.paste_moved((0, 0), &mut self.rng));
            self.local(vec![Op::Clear]);
            if let Some(again) = again {
                self.history.record(Action::Cleared {
                    ops: again.ops,
                    ids: again.ids,
                    drawn: Vec::new(),
                });
            }
            self.bump();
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
        self.navigated();
        self.bump();
    }

    /// We moved the camera ourselves: that ends following.
    fn navigated(&mut self) {
        self.view_changed = true;
        self.unfollow();
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
        self.navigated();
        self.bump();
    }

    /// The world rectangle on screen now.
    pub fn visible(&self) -> Rect {
        self.viewport.visible(self.screen.0, self.screen.1)
    }

    // ---- internals ----

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
                align: self.tools.look.align,
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
                    align: s.look.align,
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
