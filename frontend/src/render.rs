//! The canvas renderer.
//!
//! Finished strokes are drawn once into an offscreen *cache* canvas and copied to the visible
//! `<canvas id="board">` each frame; strokes still being drawn (ours and others') are drawn on
//! top of that copy, so live ink costs only itself. A change redraws only the part of the cache
//! it touched (clipped to the union of the old and new bounds of what changed). Panning shifts
//! the cache by whole device pixels and redraws only the uncovered strips; while zooming, the
//! cache is shown scaled and redrawn sharp once the zoom settles. Each stroke's geometry is
//! built once into a `Path2D` (from the SVG path data of the client crate) and reused.
//!
//! A redraw of the whole cache (after a zoom, a theme change, a new board) is spread over
//! animation frames: a [`RedrawPass`] of the client crate decides which strokes each frame
//! draws within its time budget, into a *back* canvas, while the previous cache stays on
//! screen (scaled to the new view) and keeps receiving the board's changes. When the pass is
//! through, the back canvas becomes the cache. Regions are found with the board's spatial
//! index, not by testing every stroke.
//!
//! Remote cursors, the selection and the marquee go on a second canvas above the board, so
//! the board's pixels are only ink and background.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use kokuban_board::{Board, Change, Shape, Stroke};
use kokuban_client::Editor;
use kokuban_client::geom::{Pt, Rect, unplaced_bounds, visual_bounds};
use kokuban_client::prefs::{Theme, hex};
use kokuban_client::redraw::{CostModel, FRAME_BUDGET_MS, RedrawPass};
use kokuban_client::session::Redraw;
use kokuban_client::shape::{Paint, TEXT_FONT_FAMILY, geometry, text_baseline, text_lines};
use kokuban_client::spatial::IndexedBoard;
use kokuban_client::viewport::Viewport;
use kokuban_protocol::StrokeId;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, Path2d};

use crate::browser::document;

/// After the last zoom step, the cache is redrawn sharp this much later (ms).
const ZOOM_SETTLE_MS: f64 = 120.0;
/// The cache reaches this far (CSS pixels) beyond each edge of the screen, so that a pan of
/// up to this much only moves the copy, and uncovered strips are redrawn in a few larger
/// pieces rather than thin ones every frame.
const CACHE_MARGIN: f64 = 128.0;

/// Stroke ids are random UUIDs: their own bits are a perfect hash, and the renderer looks
/// one up per stroke per redraw, so SipHash would be measurable.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

type Entries = HashMap<StrokeId, Entry, BuildHasherDefault<IdHasher>>;

/// A stroke ready to draw: its bounds, and its path once it was needed.
struct Entry {
    /// Bounds where it was drawn (offset not applied).
    bounds: Rect,
    /// Points it had when built (a growing stroke is rebuilt).
    points: usize,
    /// Its offset when it was last drawn into the cache.
    offset: (i32, i32),
    path: Option<(Path2d, Paint, f64)>,
    color: String,
}

/// Draws the board and the overlay.
pub struct Renderer {
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
    overlay: HtmlCanvasElement,
    octx: CanvasRenderingContext2d,
    cache: HtmlCanvasElement,
    cctx: CanvasRenderingContext2d,
    scratch: HtmlCanvasElement,
    sctx: CanvasRenderingContext2d,
    /// Where a redraw pass draws, until it replaces the cache.
    back: HtmlCanvasElement,
    bctx: CanvasRenderingContext2d,
    pass: Option<RedrawPass>,
    cost: CostModel,
    /// The cache shows something other than the board (a new board, another theme): a pass
    /// must redraw it.
    stale: bool,
    /// The text item in the text editor, left out so that it does not show twice.
    hidden: Option<StrokeId>,
    entries: Entries,
    /// Strokes just finished or restored, to draw on top of the cache if nothing covers them.
    on_top: Vec<StrokeId>,
    live: Vec<StrokeId>,
    cache_view: Option<Viewport>,
    theme: Theme,
    ratio: f64,
    settle_at: Option<f64>,
    compose: bool,
    overlay_drawn: bool,
}

impl Renderer {
    /// A renderer for the board canvas and the overlay canvas.
    pub fn new(
        canvas: HtmlCanvasElement,
        overlay: HtmlCanvasElement,
        theme: Theme,
    ) -> Option<Self> {
        let ctx = context(&canvas)?;
        let octx = context(&overlay)?;
        let cache = new_canvas()?;
        let cctx = context(&cache)?;
        let scratch = new_canvas()?;
        let sctx = context(&scratch)?;
        let back = new_canvas()?;
        let bctx = context(&back)?;
        Some(Self {
            canvas,
            ctx,
            overlay,
            octx,
            cache,
            cctx,
            scratch,
            sctx,
            back,
            bctx,
            pass: None,
            cost: CostModel::default(),
            stale: true,
            hidden: None,
            entries: Entries::default(),
            on_top: Vec::new(),
            live: Vec::new(),
            cache_view: None,
            theme,
            ratio: 1.0,
            settle_at: None,
            compose: true,
            overlay_drawn: false,
        })
    }

    /// Brings both canvases up to date with the editor; cheap when nothing changed.
    pub fn frame(&mut self, editor: &mut Editor, now: f64) {
        let mut full = self.fit(editor);
        let theme = editor.prefs().theme;
        if theme != self.theme {
            self.theme = theme;
            self.entries.clear();
            full = true;
        }
        let redraw = editor.take_redraw();
        let view_moved = editor.take_view_changed();
        let view = *editor.viewport();
        let hidden = editor.editing_text();
        let board = editor.indexed();
        let mut dirty = Rect::EMPTY;
        if hidden != self.hidden {
            for id in [self.hidden, hidden].into_iter().flatten() {
                if let Some(s) = board.get(&id) {
                    dirty = dirty.union(visual_bounds(s));
                }
            }
            self.hidden = hidden;
        }
        match redraw {
            Redraw::Nothing => {}
            Redraw::All => full = true,
            Redraw::Changes(changes) => {
                for change in changes {
                    self.note(change, board, &mut dirty, &mut full);
                }
            }
        }
        if full {
            self.live = board
                .strokes()
                .filter(|s| !s.finished)
                .map(|s| s.id)
                .collect();
            self.entries.retain(|id, _| board.get(id).is_some());
            self.stale = true;
            self.pass = None;
        }
        let target = self.cache_camera(view);
        if view_moved
            && let Some(pass) = &self.pass
            && !self.camera_covers(pass.camera(), view)
        {
            // Drawn for a zoom that is gone, or panned past its margin: the next pass starts
            // once the view settles. A smaller pan keeps the pass, which still holds the view.
            self.pass = None;
        }
        if view_moved && self.stale && self.pass.is_none() && !full {
            // A whole redraw waits for a pause in the panning, as for a zoom, rather than
            // starting over on every frame of it (a resize, which blanks the canvases, does
            // not wait).
            self.settle_at = Some(now + ZOOM_SETTLE_MS);
        }
        let on_top = std::mem::take(&mut self.on_top);
        if !on_top.is_empty() {
            if let Some(pass) = &mut self.pass {
                for id in &on_top {
                    if let Some(s) = board.get(id) {
                        pass.changed(visual_bounds(s));
                    }
                }
            }
            // The cache on screen stays right while a pass replaces it.
            self.draw_on_top(board, &on_top, &mut dirty);
        }
        if !self.covers(view) && self.pass.is_none() && (view_moved || self.settle_at.is_none()) {
            // Only a real move re-arms the zoom's settle timer, so that it fires once the
            // zoom stops.
            self.follow_view(board, view, now);
        }
        if self.settle_at.is_some_and(|t| now >= t)
            || (self.stale && self.pass.is_none() && self.settle_at.is_none())
        {
            self.start_pass(board, target);
        }
        if !dirty.is_empty() {
            if let Some(pass) = &mut self.pass {
                pass.changed(dirty);
            }
            self.redraw_region(board, dirty);
        }
        self.run_pass(board);
        if self.compose || view_moved {
            self.compose(board, view);
        }
        self.draw_overlay(editor, now);
    }

    /// Starts redrawing the whole cache for `camera` on the back canvas.
    fn start_pass(&mut self, board: &IndexedBoard, camera: Viewport) {
        let (w, h) = (f64::from(self.back.width()), f64::from(self.back.height()));
        let _ = self.bctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
        self.bctx.set_fill_style_str(&hex(self.theme.background()));
        self.bctx.fill_rect(0.0, 0.0, w, h);
        let region = camera.visible(w / self.ratio, h / self.ratio);
        let order = board
            .strokes_in(region)
            .filter(|s| s.finished)
            .map(|s| s.id)
            .collect();
        self.pass = Some(RedrawPass::new(camera, order));
        self.settle_at = None;
    }

    /// Draws this frame's share of the pass; once it is through, the back canvas becomes the
    /// cache and what changed meanwhile is redrawn on it.
    fn run_pass(&mut self, board: &IndexedBoard) {
        let Some(pass) = self.pass.as_mut() else {
            return;
        };
        let started = crate::browser::now();
        let camera = pass.camera();
        let step = pass
            .step(&self.cost, FRAME_BUDGET_MS, |id| {
                board.get(id).map(|s| s.points.len())
            })
            .to_vec();
        let region = camera.visible(
            f64::from(self.back.width()) / self.ratio,
            f64::from(self.back.height()) / self.ratio,
        );
        self.bctx.set_line_cap("round");
        self.bctx.set_line_join("round");
        let mut work = 0.0;
        for id in &step {
            let Some(s) = board.get(id) else { continue };
            if s.erased || !s.finished || self.hidden == Some(s.id) {
                continue;
            }
            draw_one(
                &self.bctx,
                &mut self.entries,
                s,
                region,
                camera,
                self.ratio,
                self.theme,
            );
            work += CostModel::units(s.points.len());
        }
        self.bctx.set_global_alpha(1.0);
        self.cost.learn(work, crate::browser::now() - started);
        if !pass.is_done() {
            return;
        }
        let dirty = pass.take_dirty();
        self.pass = None;
        self.stale = false;
        std::mem::swap(&mut self.cache, &mut self.back);
        std::mem::swap(&mut self.cctx, &mut self.bctx);
        self.cache_view = Some(camera);
        self.compose = true;
        for area in dirty {
            self.redraw_region(board, area);
        }
    }

    /// Sizes all canvases to the board element; true when they had to change.
    fn fit(&mut self, editor: &mut Editor) -> bool {
        let ratio = crate::browser::window().device_pixel_ratio().max(0.5);
        let (w, h) = (
            f64::from(self.canvas.client_width()),
            f64::from(self.canvas.client_height()),
        );
        let (dw, dh) = ((w * ratio).round() as u32, (h * ratio).round() as u32);
        if self.canvas.width() == dw && self.canvas.height() == dh && self.ratio == ratio {
            return false;
        }
        self.ratio = ratio;
        for c in [&self.canvas, &self.overlay] {
            c.set_width(dw.max(1));
            c.set_height(dh.max(1));
        }
        let m = 2 * self.margin() as u32;
        for c in [&self.cache, &self.scratch, &self.back] {
            c.set_width(dw.max(1) + m);
            c.set_height(dh.max(1) + m);
        }
        editor.set_screen(w, h, ratio);
        true
    }

    /// The cache margin in device pixels.
    fn margin(&self) -> f64 {
        (CACHE_MARGIN * self.ratio).round()
    }

    /// The camera of the cache for a screen camera: the same zoom, the origin one margin up
    /// and left.
    fn cache_camera(&self, view: Viewport) -> Viewport {
        let k = view.zoom() * self.ratio;
        let m = self.margin() / k;
        Viewport::new(
            Pt::new(view.origin().x - m, view.origin().y - m),
            view.zoom(),
        )
    }

    /// Where the screen's top-left corner is in the cache, in device pixels.
    fn offset_in_cache(&self, view: Viewport) -> Option<(f64, f64)> {
        let cv = self.cache_view?;
        let k = view.zoom() * self.ratio;
        Some((
            (view.origin().x - cv.origin().x) * k,
            (view.origin().y - cv.origin().y) * k,
        ))
    }

    /// Whether the cache holds the screen at its zoom.
    fn covers(&self, view: Viewport) -> bool {
        self.cache_view
            .is_some_and(|cv| self.camera_covers(cv, view))
    }

    /// Whether a cache drawn with camera `cv` holds the screen of `view`.
    fn camera_covers(&self, cv: Viewport, view: Viewport) -> bool {
        let k = view.zoom() * self.ratio;
        let (ox, oy) = (
            (view.origin().x - cv.origin().x) * k,
            (view.origin().y - cv.origin().y) * k,
        );
        let m2 = 2.0 * self.margin() + 0.5;
        cv.zoom() == view.zoom() && (-0.5..=m2).contains(&ox) && (-0.5..=m2).contains(&oy)
    }

    fn note(&mut self, change: Change, board: &Board, dirty: &mut Rect, full: &mut bool) {
        match change {
            Change::None => {}
            Change::Cleared => *full = true,
            Change::Added(ids) => {
                for id in ids {
                    let Some(s) = board.get(&id) else { continue };
                    if s.finished {
                        self.on_top.push(id);
                    } else if !self.live.contains(&id) {
                        self.live.push(id);
                        self.compose = true;
                    }
                }
            }
            Change::Grew(id, _) => {
                if !self.live.contains(&id) {
                    self.live.push(id);
                }
                self.compose = true;
            }
            Change::Finished(id) => {
                self.live.retain(|l| *l != id);
                self.on_top.push(id);
                self.compose = true;
            }
            Change::Removed(ids) => {
                for id in ids {
                    self.live.retain(|l| *l != id);
                    if let Some(e) = self.entries.get(&id) {
                        *dirty = dirty.union(placed(e.bounds, e.offset));
                    } else if let Some(s) = board.get(&id) {
                        *dirty = dirty.union(visual_bounds(s));
                    }
                    self.compose = true;
                }
            }
            Change::Moved(ids) => {
                for id in ids {
                    if let Some(e) = self.entries.get_mut(&id) {
                        *dirty = dirty.union(placed(e.bounds, e.offset));
                        if let Some(s) = board.get(&id) {
                            e.offset = s.offset;
                        }
                    }
                    if let Some(s) = board.get(&id) {
                        *dirty = dirty.union(visual_bounds(s));
                    }
                }
            }
        }
    }

    /// Draws strokes that were just finished straight onto the cache when no stroke above them
    /// overlaps them (the usual case: the newest stroke is the top one); the others join the
    /// dirty region, to be redrawn in drawing order.
    fn draw_on_top(&mut self, board: &IndexedBoard, ids: &[StrokeId], dirty: &mut Rect) {
        let Some(view) = self.cache_view else { return };
        let region = view.visible(
            f64::from(self.cache.width()) / self.ratio,
            f64::from(self.cache.height()) / self.ratio,
        );
        self.cctx.set_line_cap("round");
        self.cctx.set_line_join("round");
        for id in ids {
            let Some(s) = board.get(id).filter(|s| !s.erased) else {
                continue;
            };
            let bounds = visual_bounds(s);
            // The strokes near it, bottom first: any after it that overlaps it covers it.
            let covered = board
                .strokes_in(bounds)
                .skip_while(|o| o.id != *id)
                .skip(1)
                .any(|o| {
                    let b = match self.entries.get(&o.id) {
                        Some(e) if e.points == o.points.len() => placed(e.bounds, o.offset),
                        _ => visual_bounds(o),
                    };
                    b.intersects(&bounds)
                });
            if covered || self.hidden == Some(*id) {
                *dirty = dirty.union(bounds);
            } else {
                draw_one(
                    &self.cctx,
                    &mut self.entries,
                    s,
                    region,
                    view,
                    self.ratio,
                    self.theme,
                );
            }
        }
        self.cctx.set_global_alpha(1.0);
        self.compose = true;
    }

    /// The camera moved: shift the cache for a pan, or schedule a sharp redraw for a zoom.
    fn follow_view(&mut self, board: &IndexedBoard, view: Viewport, now: f64) {
        let Some(old) = self.cache_view else {
            self.start_pass(board, self.cache_camera(view));
            return;
        };
        self.compose = true;
        if old.zoom() != view.zoom() {
            self.settle_at = Some(now + ZOOM_SETTLE_MS);
            return;
        }
        let k = view.zoom() * self.ratio;
        // Shift the content so that the screen sits one margin inside the cache again.
        let m = self.margin();
        let dx = (m - (view.origin().x - old.origin().x) * k).round();
        let dy = (m - (view.origin().y - old.origin().y) * k).round();
        let (w, h) = (
            f64::from(self.cache.width()),
            f64::from(self.cache.height()),
        );
        if dx.abs() >= w || dy.abs() >= h {
            // Nothing of the cache is still in view: it stays on screen (shifted) meanwhile.
            self.start_pass(board, self.cache_camera(view));
            return;
        }
        let _ = self.sctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
        self.sctx.clear_rect(0.0, 0.0, w, h);
        let _ = self
            .sctx
            .draw_image_with_html_canvas_element(&self.cache, dx, dy);
        std::mem::swap(&mut self.cache, &mut self.scratch);
        std::mem::swap(&mut self.cctx, &mut self.sctx);
        let camera = self.cache_camera(view);
        self.cache_view = Some(camera);
        // The strips the shift uncovered, in device pixels.
        let mut strips = Vec::new();
        if dx > 0.0 {
            strips.push((0.0, 0.0, dx, h));
        } else if dx < 0.0 {
            strips.push((w + dx, 0.0, -dx, h));
        }
        if dy > 0.0 {
            strips.push((0.0, 0.0, w, dy));
        } else if dy < 0.0 {
            strips.push((0.0, h + dy, w, -dy));
        }
        // Each strip is redrawn under its own rectangular clip: a clip of two rectangles is
        // not a rectangle, and makes every stroke drawn under it slower.
        for (x, y, sw, sh) in strips {
            let a = camera.to_world(Pt::new(x / self.ratio, y / self.ratio));
            let b = camera.to_world(Pt::new((x + sw) / self.ratio, (y + sh) / self.ratio));
            self.redraw_region(board, Rect::spanning(a, b));
        }
    }

    /// Redraws the part of the cache that shows `world`.
    fn redraw_region(&mut self, board: &IndexedBoard, world: Rect) {
        let Some(view) = self.cache_view else { return };
        let k = view.zoom() * self.ratio;
        let (w, h) = (
            f64::from(self.cache.width()),
            f64::from(self.cache.height()),
        );
        let x0 = ((world.x0 - view.origin().x) * k).floor().max(0.0) - 1.0;
        let y0 = ((world.y0 - view.origin().y) * k).floor().max(0.0) - 1.0;
        let x1 = ((world.x1 - view.origin().x) * k).ceil().min(w) + 1.0;
        let y1 = ((world.y1 - view.origin().y) * k).ceil().min(h) + 1.0;
        if x1 <= x0 || y1 <= y0 {
            return;
        }
        let ctx = &self.cctx;
        ctx.save();
        let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
        ctx.begin_path();
        ctx.rect(x0, y0, x1 - x0, y1 - y0);
        ctx.clip();
        ctx.set_fill_style_str(&hex(self.theme.background()));
        ctx.fill_rect(x0, y0, x1 - x0, y1 - y0);
        let region = Rect::spanning(
            view.to_world(Pt::new(x0 / self.ratio, y0 / self.ratio)),
            view.to_world(Pt::new(x1 / self.ratio, y1 / self.ratio)),
        );
        let hidden = self.hidden;
        draw_strokes(
            ctx,
            &mut self.entries,
            board
                .strokes_in(region)
                .filter(|s| s.finished && hidden != Some(s.id)),
            region,
            view,
            self.ratio,
            self.theme,
        );
        ctx.restore();
        self.compose = true;
    }

    /// Copies the cache to the board canvas and draws live strokes on top.
    fn compose(&mut self, board: &Board, view: Viewport) {
        self.compose = false;
        let ctx = &self.ctx;
        let (w, h) = (
            f64::from(self.canvas.width()),
            f64::from(self.canvas.height()),
        );
        let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
        let covers = self.covers(view);
        match self.cache_view {
            Some(_) if covers => {
                let (ox, oy) = self.offset_in_cache(view).unwrap_or_default();
                let _ =
                    ctx.draw_image_with_html_canvas_element(&self.cache, -ox.round(), -oy.round());
            }
            Some(cv) => {
                // Zooming: the cache, scaled, until it is redrawn sharp.
                ctx.set_fill_style_str(&hex(self.theme.background()));
                ctx.fill_rect(0.0, 0.0, w, h);
                let s = view.zoom() / cv.zoom();
                let k = view.zoom() * self.ratio;
                let dx = (cv.origin().x - view.origin().x) * k;
                let dy = (cv.origin().y - view.origin().y) * k;
                let _ = ctx.draw_image_with_html_canvas_element_and_dw_and_dh(
                    &self.cache,
                    dx,
                    dy,
                    f64::from(self.cache.width()) * s,
                    f64::from(self.cache.height()) * s,
                );
            }
            None => {
                ctx.set_fill_style_str(&hex(self.theme.background()));
                ctx.fill_rect(0.0, 0.0, w, h);
            }
        }
        let region = view.visible(w / self.ratio, h / self.ratio);
        self.live
            .retain(|id| board.get(id).is_some_and(|s| !s.erased && !s.finished));
        for id in &self.live {
            if let Some(s) = board.get(id) {
                draw_one(
                    ctx,
                    &mut self.entries,
                    s,
                    region,
                    view,
                    self.ratio,
                    self.theme,
                );
            }
        }
    }

    fn draw_overlay(&mut self, editor: &Editor, now: f64) {
        let presence = editor.presence();
        let tools = editor.tools();
        let busy = presence.is_animating(now)
            || !tools.selection().is_empty()
            || tools.marquee().is_some();
        if !busy && !self.overlay_drawn {
            return;
        }
        self.overlay_drawn = busy;
        let ctx = &self.octx;
        let r = self.ratio;
        let _ = ctx.set_transform(r, 0.0, 0.0, r, 0.0, 0.0);
        ctx.clear_rect(
            0.0,
            0.0,
            f64::from(self.overlay.width()),
            f64::from(self.overlay.height()),
        );
        let view = editor.viewport();
        let accent = "#4c6ef5";
        ctx.set_line_width(1.5);
        ctx.set_stroke_style_str(accent);
        let dash = js_sys::Array::of2(&5.0.into(), &4.0.into());
        let _ = ctx.set_line_dash(&dash);
        let board = editor.board();
        for id in tools.selection() {
            if let Some(s) = board.get(id) {
                let b = visual_bounds(s).inflate(4.0 / view.zoom());
                let (a, c) = (
                    view.to_screen(Pt::new(b.x0, b.y0)),
                    view.to_screen(Pt::new(b.x1, b.y1)),
                );
                ctx.stroke_rect(a.x, a.y, c.x - a.x, c.y - a.y);
            }
        }
        if let Some(m) = tools.marquee() {
            let (a, c) = (
                view.to_screen(Pt::new(m.x0, m.y0)),
                view.to_screen(Pt::new(m.x1, m.y1)),
            );
            ctx.set_fill_style_str("rgba(76, 110, 245, 0.08)");
            ctx.fill_rect(a.x, a.y, c.x - a.x, c.y - a.y);
            ctx.stroke_rect(a.x, a.y, c.x - a.x, c.y - a.y);
        }
        let _ = ctx.set_line_dash(&js_sys::Array::new());
        ctx.set_font("600 12px system-ui, sans-serif");
        for (cursor, alpha, name, color) in presence.visible_cursors(now) {
            let p = view.to_screen(cursor.at);
            let color = hex(color);
            ctx.set_global_alpha(alpha);
            ctx.set_fill_style_str(&color);
            ctx.begin_path();
            ctx.move_to(p.x, p.y);
            ctx.line_to(p.x + 3.5, p.y + 15.0);
            ctx.line_to(p.x + 7.0, p.y + 10.0);
            ctx.line_to(p.x + 13.0, p.y + 10.0);
            ctx.close_path();
            ctx.fill();
            ctx.set_stroke_style_str("#ffffff");
            ctx.set_line_width(1.0);
            ctx.stroke();
            let width = ctx.measure_text(name).map_or(40.0, |m| m.width());
            let (x, y) = (p.x + 12.0, p.y + 14.0);
            ctx.set_fill_style_str(&color);
            ctx.fill_rect(x, y, width + 10.0, 18.0);
            ctx.set_fill_style_str("#ffffff");
            let _ = ctx.fill_text(name, x + 5.0, y + 13.0);
        }
        ctx.set_global_alpha(1.0);
    }
}

/// Renders the board (or `area` of it) into a new canvas at `scale` device pixels per world
/// pixel, for a PNG export of the whole drawing.
pub fn render_offscreen(
    board: &Board,
    area: Rect,
    scale: f64,
    theme: Theme,
) -> Option<HtmlCanvasElement> {
    let canvas = new_canvas()?;
    canvas.set_width((area.width() * scale).ceil().max(1.0) as u32);
    canvas.set_height((area.height() * scale).ceil().max(1.0) as u32);
    let ctx = context(&canvas)?;
    ctx.set_fill_style_str(&hex(theme.background()));
    ctx.fill_rect(
        0.0,
        0.0,
        f64::from(canvas.width()),
        f64::from(canvas.height()),
    );
    let view = Viewport::new(Pt::new(area.x0, area.y0), 1.0);
    let mut entries = Entries::default();
    draw_strokes(
        &ctx,
        &mut entries,
        board.strokes(),
        area,
        view,
        scale,
        theme,
    );
    Some(canvas)
}

fn placed(bounds: Rect, offset: (i32, i32)) -> Rect {
    bounds.translate(f64::from(offset.0) / 8.0, f64::from(offset.1) / 8.0)
}

/// Draws `strokes`, bottom first, where they touch `region`.
fn draw_strokes<'a>(
    ctx: &CanvasRenderingContext2d,
    entries: &mut Entries,
    strokes: impl Iterator<Item = &'a Stroke>,
    region: Rect,
    view: Viewport,
    ratio: f64,
    theme: Theme,
) {
    ctx.set_line_cap("round");
    ctx.set_line_join("round");
    for s in strokes {
        draw_one(ctx, entries, s, region, view, ratio, theme);
    }
    ctx.set_global_alpha(1.0);
}

fn draw_one(
    ctx: &CanvasRenderingContext2d,
    entries: &mut Entries,
    s: &Stroke,
    region: Rect,
    view: Viewport,
    ratio: f64,
    theme: Theme,
) -> bool {
    let entry = entries.entry(s.id).or_insert_with(|| Entry {
        bounds: unplaced_bounds(s),
        points: s.points.len(),
        offset: s.offset,
        path: None,
        color: hex(theme.display(s.color)),
    });
    if entry.points != s.points.len() {
        entry.bounds = unplaced_bounds(s);
        entry.points = s.points.len();
        entry.path = None;
    }
    entry.offset = s.offset;
    if !placed(entry.bounds, s.offset).intersects(&region) {
        return false;
    }
    let k = view.zoom() * ratio;
    let e = (f64::from(s.offset.0) / 8.0 - view.origin().x) * k;
    let f = (f64::from(s.offset.1) / 8.0 - view.origin().y) * k;
    let _ = ctx.set_transform(k, 0.0, 0.0, k, e, f);
    match &s.shape {
        Shape::Text(text) => {
            let size = s.width.px();
            let at = s.points[0];
            ctx.set_global_alpha(1.0);
            ctx.set_fill_style_str(&entry.color);
            ctx.set_font(&format!("{size}px {TEXT_FONT_FAMILY}"));
            for (i, line) in text_lines(text.as_str()).enumerate() {
                let _ = ctx.fill_text(line, at.x_px(), at.y_px() + text_baseline(i, size));
            }
        }
        Shape::Ink(_) => {
            if entry.path.is_none() {
                entry.path = geometry(s).and_then(|g| {
                    Path2d::new_with_path_string(&g.d)
                        .ok()
                        .map(|p| (p, g.paint, g.alpha))
                });
            }
            let Some((path, paint, alpha)) = &entry.path else {
                return false;
            };
            ctx.set_global_alpha(*alpha);
            match paint {
                Paint::Fill => {
                    ctx.set_fill_style_str(&entry.color);
                    ctx.fill_with_path_2d(path);
                }
                Paint::Stroke { width } => {
                    ctx.set_stroke_style_str(&entry.color);
                    ctx.set_line_width(*width);
                    ctx.set_line_cap("round");
                    ctx.set_line_join("round");
                    ctx.stroke_with_path(path);
                }
            }
        }
    }
    true
}

fn new_canvas() -> Option<HtmlCanvasElement> {
    document()
        .create_element("canvas")
        .ok()?
        .dyn_into::<HtmlCanvasElement>()
        .ok()
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas
        .get_context("2d")
        .ok()
        .flatten()?
        .dyn_into::<CanvasRenderingContext2d>()
        .ok()
}
