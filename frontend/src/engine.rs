//! The room's machinery outside Leptos: the editor, the renderer, the socket, the input
//! listeners and the animation-frame loop that ties them together. Components read a
//! [`Ui`] snapshot from a signal and call [`Engine`] methods.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use kokuban_client::Editor;
use kokuban_client::connection::{Next, Remedy};
use kokuban_client::geom::Pt;
use kokuban_client::link::{RoomLink, socket_url};
use kokuban_client::outbox::Outbox;
use kokuban_client::panels::{Panel, Panels};
use kokuban_client::prefs::{Prefs, Size, Theme, hex};
use kokuban_client::presence::initials;
use kokuban_client::svg::{self, content_bounds};
use kokuban_client::tools::ToolKind;
use kokuban_protocol::{Capability, Color, Look};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::HtmlCanvasElement;

use crate::browser::{self, document, now, window};
use crate::images::Images;
use crate::outbox::Kept;
use crate::render::{Renderer, render_offscreen};
use crate::socket::Socket;

/// A member as the presence list shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberView {
    /// Stable key.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Avatar text.
    pub initials: String,
    /// CSS colour.
    pub color: String,
    /// This tab.
    pub me: bool,
    /// View-only member.
    pub viewer: bool,
    /// Our camera follows theirs.
    pub followed: bool,
}

/// What the toolbar, the status and the presence list show.
#[derive(Debug, Clone, PartialEq)]
pub struct Ui {
    /// Selected tool.
    pub tool: ToolKind,
    /// Selected ink (the selection's, when the selected items share one).
    pub ink: Color,
    /// Selected size (likewise).
    pub size: Size,
    /// The look of the selection's first item, or the one new items get.
    pub look: Look,
    /// Theme.
    pub theme: Theme,
    /// `data-status` of the status element.
    pub status: &'static str,
    /// Its text.
    pub status_label: String,
    /// Whether drawing tools are shown.
    pub can_edit: bool,
    /// Undo/redo availability.
    pub undo: (bool, bool),
    /// Members, us first.
    pub members: Vec<MemberView>,
    /// Zoom in percent.
    pub zoom: u32,
    /// Own name.
    pub name: String,
    /// Own colour.
    pub color: Color,
    /// Whether the board has anything on it.
    pub has_content: bool,
    /// Whether something is selected.
    pub selection: bool,
    /// The connection gave up for good: what the user can do.
    pub closed: Option<Remedy>,
    /// The name of the member whose camera ours follows.
    pub following: Option<String>,
    /// The name of the member who asks everyone to follow them, until we answer.
    pub asked_by: Option<String>,
    /// The board's title (`None`: untitled).
    pub title: Option<String>,
    /// The version of the board shown in place of the live one (its id).
    pub version: Option<u64>,
    /// Whether this tab may bring a version back.
    pub can_restore: bool,
}

impl Ui {
    fn of(e: &Editor) -> Ui {
        let me = e.presence().me();
        let mut members: Vec<MemberView> = e
            .presence()
            .members()
            .map(|m| MemberView {
                id: m.id.0,
                name: m.name.as_str().to_string(),
                initials: initials(m.name.as_str()),
                color: hex(m.color),
                me: Some(m.id) == me,
                viewer: m.capability == Capability::View,
                followed: e.following() == Some(m.id),
            })
            .collect();
        if members.is_empty() {
            let p = e.prefs();
            members.push(MemberView {
                id: 0,
                name: p.name.clone(),
                initials: initials(&p.name),
                color: hex(p.color),
                me: true,
                viewer: !e.can_edit(),
                followed: false,
            });
        }
        let p = e.prefs();
        // With items selected, the toolbar shows the colour and size they share.
        let (selected_ink, selected_size) = e.selection_style();
        Ui {
            tool: e.tools().kind(),
            ink: selected_ink.unwrap_or(p.ink),
            size: selected_size.unwrap_or(p.size),
            look: e.shown_look(),
            theme: p.theme,
            status: e.status().name(),
            status_label: e.status().label(),
            can_edit: e.can_edit(),
            undo: e.can_undo(),
            members,
            zoom: (e.viewport().zoom() * 100.0).round() as u32,
            name: p.name.clone(),
            color: p.color,
            has_content: !e.board().is_empty(),
            selection: e.has_selection(),
            closed: e.closed(),
            following: e
                .following()
                .and_then(|id| e.presence().member(id))
                .map(|m| m.name.as_str().to_string()),
            asked_by: e
                .asked_to_follow()
                .and_then(|id| e.presence().member(id))
                .map(|m| m.name.as_str().to_string()),
            title: e.title().map(str::to_owned),
            version: e.version_shown(),
            can_restore: e.can_restore(),
        }
    }
}

/// A text editor opened by the text tool, or on a text item to edit it.
#[derive(Debug, Clone, PartialEq)]
pub struct TextEdit {
    /// Screen point of the text's top-left corner.
    pub screen: Pt,
    /// Font size on screen.
    pub font_px: f64,
    /// Ink, as the theme shows it.
    pub color: Color,
    /// The text it opens with (an edited item's).
    pub text: String,
    /// CSS `text-align` of its lines.
    pub align: &'static str,
}

/// The room's machinery. Shared by components through a local `StoredValue`.
pub struct Engine {
    /// The app state.
    pub editor: Rc<RefCell<Editor>>,
    socket: Option<Socket>,
    /// The tab's unsaved ops in the browser's storage (None for a link without a token).
    kept: Option<Rc<Kept>>,
    renderer: RefCell<Option<Renderer>>,
    /// The pictures this tab shows or uploaded.
    images: Rc<Images>,
    ui: RwSignal<Ui>,
    panels: RwSignal<Panels>,
    toasts: RwSignal<Vec<(u64, String)>>,
    text: RwSignal<Option<TextEdit>>,
    /// What the History panel lists.
    versions: RwSignal<crate::versions::Versions>,
    last_ui: Cell<u64>,
    next_toast: Cell<u64>,
    /// How long recent frames took to prepare (ms), for `window.kokuban.frameTimes()`.
    frame_times: RefCell<Vec<f64>>,
}

impl Engine {
    /// Loads preferences, connects to the room and starts the frame loop.
    pub fn start(link: RoomLink) -> Rc<Engine> {
        let seed = browser::random_seed();
        let mut rng = kokuban_client::rng::Xoshiro256::from_seed(seed);
        let prefs = Prefs::load(browser::load, &mut rng, browser::prefers_dark());
        // What was missing or unreadable (a first visit's guest name) is stored once now;
        // later, only what the user changes (see `Editor::take_prefs_to_save`).
        for (k, v) in prefs.entries() {
            if browser::load(k).as_deref() != Some(v.as_str()) {
                browser::store(k, &v);
            }
        }
        let loc = window().location();
        let url = socket_url(
            &loc.protocol().unwrap_or_default(),
            &loc.host().unwrap_or_default(),
            &link.room,
        );
        // A link without a token never connects; the editor says why, for good.
        let has_token = link.token().is_some();
        // Only a link that can edit has ops to keep; a view-only one must not take an outbox
        // over (the server would refuse its ops, and they would be lost).
        let (outbox, keeper) = if link.edit.is_some() {
            let (outbox, keeper) = crate::outbox::adopt(&link.room);
            (outbox, Some(keeper))
        } else {
            (Outbox::new(crate::outbox::fresh_key()), None)
        };
        browser::remember_board(&link);
        let editor = Rc::new(RefCell::new(Editor::new(prefs, Some(link), seed, outbox)));
        let ui = RwSignal::new(Ui::of(&editor.borrow()));
        let socket = has_token.then(|| Socket::start(url, editor.clone()));
        let kept = keeper.map(|k| Kept::start(k, editor.clone(), socket.clone()));
        let engine = Rc::new(Engine {
            images: Images::new(editor.clone()),
            editor,
            socket,
            kept,
            renderer: RefCell::new(None),
            ui,
            panels: RwSignal::new(Panels::new()),
            toasts: RwSignal::new(Vec::new()),
            text: RwSignal::new(None),
            versions: RwSignal::new(Default::default()),
            last_ui: Cell::new(u64::MAX),
            next_toast: Cell::new(0),
            frame_times: RefCell::new(Vec::new()),
        });
        expose_test_hooks(&engine);
        run_frames(engine.clone());
        engine
    }

    /// The UI snapshot.
    pub fn ui(&self) -> RwSignal<Ui> {
        self.ui
    }

    /// The open popover.
    pub fn panels(&self) -> RwSignal<Panels> {
        self.panels
    }

    /// Toasts on screen.
    pub fn toasts(&self) -> RwSignal<Vec<(u64, String)>> {
        self.toasts
    }

    /// What the History panel lists.
    pub fn versions(&self) -> RwSignal<crate::versions::Versions> {
        self.versions
    }

    /// The open text editor.
    pub fn text(&self) -> RwSignal<Option<TextEdit>> {
        self.text
    }

    /// Attaches the canvases once they are in the DOM.
    pub fn attach(self: &Rc<Self>, board: HtmlCanvasElement, overlay: HtmlCanvasElement) {
        if self.renderer.borrow().is_some() {
            return;
        }
        let me = self.clone();
        let add_image = Rc::new(move |file: web_sys::Blob, at: Option<Pt>| me.add_image(file, at));
        crate::input::attach(&board, self.editor.clone(), self.panels, add_image);
        let theme = self.editor.borrow().prefs().theme;
        *self.renderer.borrow_mut() = Renderer::new(board, overlay, theme, self.images.clone());
    }

    /// Uploads a picture (pasted, dropped at `at` on screen, or picked) and places it on the
    /// board; a refusal is told in a toast.
    pub fn add_image(self: &Rc<Self>, file: web_sys::Blob, at: Option<Pt>) {
        if !self.editor.borrow().can_edit() {
            return;
        }
        let me = self.clone();
        leptos::task::spawn_local(async move {
            match me.images.upload(&file).await {
                Ok((blob, size)) => {
                    if !me.editor.borrow_mut().place_image(blob, size, at) {
                        me.toast("The picture could not be placed here.".into());
                    }
                }
                Err(why) => me.toast(why),
            }
        });
    }

    /// Runs `f` on the editor (a toolbar action).
    pub fn act(&self, f: impl FnOnce(&mut Editor)) {
        f(&mut self.editor.borrow_mut());
    }

    /// Shows a short message for a few seconds.
    pub fn toast(&self, text: String) {
        let id = self.next_toast.get();
        self.next_toast.set(id + 1);
        self.toasts.update(|t| {
            t.push((id, text));
            if t.len() > 4 {
                t.remove(0);
            }
        });
        let toasts = self.toasts;
        browser::after(4500.0, move || {
            toasts.update(|t| t.retain(|(i, _)| *i != id))
        });
    }

    /// Commits (or with `None`, cancels) the open text editor.
    pub fn commit_text(&self, text: Option<String>) {
        if self.text.with_untracked(Option::is_none) {
            return;
        }
        self.text.set(None);
        self.editor.borrow_mut().commit_text(text.as_deref());
    }

    /// Copies a link (path and fragment) as an absolute URL.
    pub fn copy_link(self: &Rc<Self>, path: String, what: &'static str) {
        let me = self.clone();
        leptos::task::spawn_local(async move {
            let url = format!("{}{path}", browser::origin());
            if browser::copy_text(&url).await {
                me.toast(format!("{what} copied"));
            } else {
                me.toast(format!("Copy failed — the {what} is {url}"));
            }
        });
    }

    /// Resets the room's links (`POST /api/rooms/{room}/links` with our edit token): every
    /// older link stops working. This tab takes the new ones (the address bar, and the token
    /// its reconnects say Hello with) and shows them in the share menu.
    pub fn reset_links(self: &Rc<Self>) {
        let Some(link) = self.editor.borrow().link().cloned() else {
            return;
        };
        let Some(edit) = link.edit.clone() else {
            return;
        };
        let me = self.clone();
        leptos::task::spawn_local(async move {
            let answer = crate::landing::reset_links(&link.room, &edit).await;
            let new = answer.and_then(|(edit_url, view_url)| {
                link.after_reset(&edit_url, &view_url)
                    .ok_or_else(|| "Unexpected answer from the server.".to_string())
            });
            let new = match new {
                Ok(new) => new,
                Err(e) => return me.toast(format!("The links were not reset: {e}")),
            };
            if let Some(url) = new.edit_url() {
                let _ = window()
                    .history()
                    .and_then(|h| h.replace_state_with_url(&JsValue::NULL, "", Some(&url)));
            }
            browser::remember_board(&new);
            let next = me.editor.borrow_mut().relink(new);
            if let (Next::RetryIn(_), Some(socket)) = (next, me.socket.as_ref()) {
                socket.resume();
            }
            me.toast("New links made: the old ones no longer open this board.".into());
            me.panels.update(|p| {
                if !p.is_open(Panel::Share) {
                    p.toggle(Panel::Share);
                }
            });
        });
    }

    /// Exports SVG of the whole drawing or the current view.
    pub fn export_svg(&self, whole: bool) {
        let e = self.editor.borrow();
        let area = (!whole).then(|| e.visible());
        let text = svg::export(e.board(), area, e.prefs().theme, &|blob| {
            self.images.data_url(blob)
        });
        if let Some(blob) = browser::text_blob(&text, "image/svg+xml") {
            browser::download("kokuban.svg", &blob);
        }
    }

    /// A small picture of the whole drawing, as a `data:` URL, for the landing page's list
    /// of boards (`None` for an empty board).
    pub fn thumbnail(&self) -> Option<String> {
        const WIDTH: f64 = 128.0;
        const HEIGHT: f64 = 80.0;
        let e = self.editor.borrow();
        let area = content_bounds(e.board());
        if area.is_empty() {
            return None;
        }
        let area = area.inflate(svg::MARGIN);
        let scale = (WIDTH / area.width()).min(HEIGHT / area.height()).min(1.0);
        let canvas = render_offscreen(e.board(), area, scale, e.prefs().theme, &self.images)?;
        canvas
            .to_data_url_with_type_and_encoder_options("image/webp", &JsValue::from_f64(0.7))
            .ok()
    }

    /// Exports PNG of the whole drawing or the current view.
    pub fn export_png(&self, whole: bool) {
        let canvas = if whole {
            let e = self.editor.borrow();
            let area = content_bounds(e.board());
            if area.is_empty() {
                drop(e);
                self.toast("The board is empty.".into());
                return;
            }
            let area = area.inflate(svg::MARGIN);
            // Sharp on high-density screens, but never a bitmap too large for the browser.
            let scale = window()
                .device_pixel_ratio()
                .clamp(1.0, 2.0)
                .min(8192.0 / area.width().max(area.height()));
            render_offscreen(e.board(), area, scale, e.prefs().theme, &self.images)
        } else {
            document()
                .get_element_by_id("board")
                .and_then(|c| c.dyn_into::<HtmlCanvasElement>().ok())
        };
        let Some(canvas) = canvas else { return };
        let done = Closure::once_into_js(move |blob: JsValue| {
            if let Ok(blob) = blob.dyn_into::<web_sys::Blob>() {
                browser::download("kokuban.png", &blob);
            }
        });
        let _ = canvas.to_blob(done.unchecked_ref());
    }

    fn frame(&self) {
        let t = now();
        let mut editor = self.editor.borrow_mut();
        let frames = editor.outgoing(t);
        // The numbers these frames carry are in storage before they go out.
        let kept = self
            .kept
            .as_ref()
            .is_none_or(|k| k.persist(&mut editor, false));
        if let Some(s) = self.socket.as_ref().filter(|_| kept) {
            s.send(frames);
        }
        if let Some(r) = self.renderer.borrow_mut().as_mut() {
            r.frame(&mut editor, t);
        }
        let toasts = editor.take_toasts();
        let text = editor.take_text_request().map(|req| {
            let v = editor.viewport();
            TextEdit {
                screen: v.to_screen(req.at),
                font_px: req.size.px() * v.zoom(),
                color: editor.prefs().theme.display(req.color),
                text: req.text,
                align: match req.align {
                    kokuban_protocol::Align::Left => "left",
                    kokuban_protocol::Align::Center => "center",
                    kokuban_protocol::Align::Right => "right",
                },
            }
        });
        let panning = editor.is_panning();
        let handle_cursor = editor.handle_cursor().unwrap_or("");
        for (k, v) in editor.take_prefs_to_save() {
            browser::store(k, &v);
        }
        let ui = (editor.ui_version() != self.last_ui.get()).then(|| {
            self.last_ui.set(editor.ui_version());
            Ui::of(&editor)
        });
        // Signals are set with the editor released: their effects may call back into it.
        drop(editor);
        if !kept && let Some(k) = &self.kept {
            k.stop();
        }
        if let Some(ui) = ui
            && self.ui.get_untracked() != ui
        {
            self.ui.set(ui);
        }
        for t in toasts {
            self.toast(t);
        }
        if let Some(edit) = text {
            self.text.set(Some(edit));
        }
        if let Some(board) = document().get_element_by_id("board") {
            let panning_now = board.class_list().contains("panning");
            if panning != panning_now {
                let _ = board.class_list().toggle("panning");
            }
            // Over a handle of the selection, what it does.
            if let Ok(board) = board.dyn_into::<web_sys::HtmlElement>() {
                let style = board.style();
                if style.get_property_value("cursor").ok().as_deref() != Some(handle_cursor) {
                    let _ = style.set_property("cursor", handle_cursor);
                }
            }
        }
        let mut times = self.frame_times.borrow_mut();
        if times.len() < 10_000 {
            times.push(now() - t);
        }
    }
}

/// Calls `Engine::frame` on every animation frame for the life of the page.
fn run_frames(engine: Rc<Engine>) {
    type Frame = Closure<dyn FnMut()>;
    let slot: Rc<RefCell<Option<Frame>>> = Rc::new(RefCell::new(None));
    let again = slot.clone();
    *slot.borrow_mut() = Some(Closure::new(move || {
        engine.frame();
        if let Some(cb) = again.borrow().as_ref() {
            let _ = window().request_animation_frame(cb.as_ref().unchecked_ref());
        }
    }));
    if let Some(cb) = slot.borrow().as_ref() {
        let _ = window().request_animation_frame(cb.as_ref().unchecked_ref());
    }
}

/// `window.kokuban`: a small surface for browser tests and debugging — the number of visible
/// strokes and of their points, the own ops not settled yet, the points of the laser trails
/// shown, how long recent frames took to prepare, and a way to cut the connection as a network
/// failure would.
fn expose_test_hooks(engine: &Rc<Engine>) {
    let hooks = js_sys::Object::new();
    let socket = engine.socket.clone();
    let drop_connection = Closure::<dyn FnMut()>::new(move || {
        if let Some(s) = &socket {
            s.drop_connection();
        }
    });
    let editor = engine.editor.clone();
    let strokes = Closure::<dyn FnMut() -> u32>::new(move || editor.borrow().board().len() as u32);
    // Own ops the room has not settled yet: a test waits for 0 before closing a tab, which
    // otherwise asks whether to leave.
    let editor = engine.editor.clone();
    let outstanding =
        Closure::<dyn FnMut() -> u32>::new(move || editor.borrow().session().outstanding() as u32);
    let _ = js_sys::Reflect::set(&hooks, &"outstanding".into(), outstanding.as_ref());
    outstanding.forget();
    // The number of points of each visible stroke, in board order: two tabs showing the same
    // strokes answer the same.
    let editor = engine.editor.clone();
    let points = Closure::<dyn FnMut() -> JsValue>::new(move || {
        let counts: Vec<u32> = editor
            .borrow()
            .board()
            .strokes()
            .map(|s| s.points.len() as u32)
            .collect();
        js_sys::Uint32Array::from(counts.as_slice()).into()
    });
    let _ = js_sys::Reflect::set(&hooks, &"strokePoints".into(), points.as_ref());
    points.forget();
    // The points of the laser trails this tab shows now (its own and others'): a test sees a
    // trail arrive, then fade.
    let editor = engine.editor.clone();
    let laser = Closure::<dyn FnMut() -> u32>::new(move || {
        let e = editor.borrow();
        let t = now();
        let others: usize = e.presence().laser_trails(t).map(|(l, _)| l.len(t)).sum();
        (others + e.laser().len(t)) as u32
    });
    let _ = js_sys::Reflect::set(&hooks, &"laserPoints".into(), laser.as_ref());
    laser.forget();
    let me = engine.clone();
    let frame_times = Closure::<dyn FnMut() -> JsValue>::new(move || {
        let times = std::mem::take(&mut *me.frame_times.borrow_mut());
        js_sys::Float64Array::from(times.as_slice()).into()
    });
    let _ = js_sys::Reflect::set(&hooks, &"frameTimes".into(), frame_times.as_ref());
    frame_times.forget();
    let _ = js_sys::Reflect::set(&hooks, &"dropConnection".into(), drop_connection.as_ref());
    let _ = js_sys::Reflect::set(&hooks, &"strokeCount".into(), strokes.as_ref());
    let _ = js_sys::Reflect::set(&window(), &"kokuban".into(), &hooks);
    drop_connection.forget();
    strokes.forget();
}
