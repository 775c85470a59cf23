//! The canvas renderer.
//!
//! Finished strokes are drawn once into an offscreen *cache* layer and copied to the visible
//! `<canvas id="board">` each frame; strokes still being drawn (ours and others') are drawn on
//! top of that copy, so live ink costs only itself. A change redraws only the part of the cache
//! it touched (clipped to the union of the old and new bounds of what changed). Panning shifts
//! the cache by whole device pixels and redraws only the uncovered strips; while zooming, the
//! cache is shown scaled and redrawn sharp once the zoom settles, over several frames, into a
//! *back* layer that then becomes the cache.
//!
//! What to draw and when is decided in the client crate, natively tested: the cache's camera,
//! pans, passes and clips by [`BoardCache`], what each change of the board means (live ink,
//! strokes to put on top, areas to redraw, culling) by [`Scene`]. This module owns the layers
//! and draws what they say. Remote cursors, the selection and the marquee go on a second
//! visible layer above the board, so the board's pixels are only ink and background.

mod layer;
mod overlay;
mod paint;

use kokuban_client::Editor;
use kokuban_client::cache::{BoardCache, Follow, Show};
use kokuban_client::geom::{Rect, visual_bounds};
use kokuban_client::prefs::Theme;
use kokuban_client::redraw::{CostModel, FRAME_BUDGET_MS};
use kokuban_client::scene::Scene;
use kokuban_client::session::Redraw;
use kokuban_client::spatial::IndexedBoard;
use kokuban_client::viewport::Viewport;
use kokuban_protocol::StrokeId;
use web_sys::HtmlCanvasElement;

use std::rc::Rc;

use self::layer::Layer;
pub use self::paint::render_offscreen;
use self::paint::{Canvas, Paths};
use crate::images::Images;

/// Draws the board and the overlay.
pub struct Renderer {
    /// The visible board.
    screen: Layer,
    /// Cursors, selection and marquee, above the board.
    overlay: Layer,
    /// Finished strokes, a margin larger than the screen.
    cache: Layer,
    /// Where the cache's pixels are moved through when it is shifted for a pan.
    scratch: Layer,
    /// Where a redraw pass draws, until it replaces the cache.
    back: Layer,
    plan: BoardCache,
    scene: Scene,
    paths: Paths,
    theme: Theme,
    overlay_drawn: bool,
    images: Rc<Images>,
}

impl Renderer {
    /// A renderer for the board canvas and the overlay canvas.
    pub fn new(
        board: HtmlCanvasElement,
        overlay: HtmlCanvasElement,
        theme: Theme,
        images: Rc<Images>,
    ) -> Option<Self> {
        Some(Self {
            screen: Layer::of(board)?,
            overlay: Layer::of(overlay)?,
            cache: Layer::offscreen()?,
            scratch: Layer::offscreen()?,
            back: Layer::offscreen()?,
            plan: BoardCache::new(),
            scene: Scene::new(),
            paths: Paths::default(),
            theme,
            overlay_drawn: false,
            images,
        })
    }

    /// Brings both canvases up to date with the editor; cheap when nothing changed.
    pub fn frame(&mut self, editor: &mut Editor, now: f64) {
        let resized = self.fit(editor);
        let mut full = resized;
        let theme = editor.prefs().theme;
        // Another board on screen (a version of it, or the live one again) is drawn afresh,
        // like a new theme: the same ids may look otherwise there.
        let swapped = editor.take_board_swapped();
        // A picture that arrived is drawn where it shows (a frame stood in for it), which
        // is rare enough to draw everything again.
        if self.images.take_arrived() {
            full = true;
        }
        if theme != self.theme || swapped {
            self.theme = theme;
            self.paths.clear();
            self.scene.forget();
            full = true;
        }
        let mut redraw = editor.take_redraw();
        if editor.version_shown().is_some() {
            // Changes of the live board, underneath: it is drawn afresh when shown again.
            redraw = Redraw::Nothing;
        }
        let view_moved = editor.take_view_changed();
        let view = *editor.viewport();
        let board = editor.shown();
        let mut dirty = self.scene.hide(editor.editing_text(), board);
        match redraw {
            Redraw::Nothing => {}
            Redraw::All => full = true,
            Redraw::Changes(changes) => {
                for change in changes {
                    let noted = self.scene.note(change, board, &mut dirty);
                    full |= noted.full;
                    if noted.compose {
                        self.plan.recompose();
                    }
                }
            }
        }
        if full {
            self.scene.reset(board);
            self.paths.retain(board);
            self.plan.invalidate();
        }
        if view_moved {
            self.plan.moved(view, now, full);
        }
        let on_top = self.scene.take_on_top();
        if !on_top.is_empty() {
            for id in &on_top {
                if let Some(s) = board.get(id) {
                    self.plan.changed(visual_bounds(s));
                }
            }
            // The cache on screen stays right while a pass replaces it.
            self.draw_on_top(board, &on_top, &mut dirty);
        }
        match self.plan.follow(view, now, view_moved) {
            Follow::Stay => {}
            Follow::Redraw(camera) => self.start_pass(board, camera),
            Follow::Shift { dx, dy, strips } => {
                self.scratch.clear();
                self.scratch.copy(&self.cache, dx, dy);
                std::mem::swap(&mut self.cache, &mut self.scratch);
                for strip in strips {
                    self.redraw_region(board, strip);
                }
            }
        }
        if self.plan.due(now) {
            self.start_pass(board, self.plan.camera_for(view));
        }
        if !dirty.is_empty() {
            self.plan.changed(dirty);
            self.redraw_region(board, dirty);
        }
        self.run_pass(board);
        if self.plan.take_compose() || view_moved {
            self.compose(board, view);
        }
        overlay::draw(
            &self.overlay,
            editor,
            now,
            self.plan.ratio(),
            &mut self.overlay_drawn,
        );
    }

    /// Sizes all layers to the board element; true when they had to change.
    fn fit(&mut self, editor: &mut Editor) -> bool {
        let ratio = crate::browser::window().device_pixel_ratio().max(0.5);
        let (w, h) = self.screen.css_size();
        let device = ((w * ratio).round() as u32, (h * ratio).round() as u32);
        if self.screen.size() == (f64::from(device.0), f64::from(device.1))
            && self.plan.ratio() == ratio
        {
            return false;
        }
        self.screen.resize(device);
        self.overlay.resize(device);
        let cache = self.plan.resize(ratio, device);
        for layer in [&self.cache, &self.scratch, &self.back] {
            layer.resize(cache);
        }
        editor.set_screen(w, h, ratio);
        true
    }

    /// How strokes are drawn on `layer` drawn with `camera`.
    fn canvas<'a>(&self, layer: &'a Layer, camera: Viewport) -> Canvas<'a> {
        Canvas {
            images: self.images.clone(),
            layer,
            camera,
            ratio: self.plan.ratio(),
            theme: self.theme,
        }
    }

    /// Starts redrawing the whole cache for `camera` on the back layer.
    fn start_pass(&mut self, board: &IndexedBoard, camera: Viewport) {
        self.back.fill(self.theme);
        self.plan.start(board, camera);
    }

    /// Draws this frame's share of the pass; once it is through, the back layer becomes the
    /// cache and what changed meanwhile is redrawn on it.
    fn run_pass(&mut self, board: &IndexedBoard) {
        let started = crate::browser::now();
        let hidden = self.scene.hidden();
        let Some((camera, ids)) = self.plan.step(board, FRAME_BUDGET_MS, hidden) else {
            return;
        };
        let region = self.plan.area(camera);
        let canvas = Canvas {
            images: self.images.clone(),
            layer: &self.back,
            camera,
            ratio: self.plan.ratio(),
            theme: self.theme,
        };
        let strokes = ids.iter().filter_map(|id| board.get(id));
        let work: f64 = strokes
            .clone()
            .map(|s| CostModel::units(s.points.len()))
            .sum();
        canvas.strokes(&mut self.scene, &mut self.paths, strokes, region);
        self.plan.learn(work, crate::browser::now() - started);
        if let Some(dirty) = self.plan.finish() {
            std::mem::swap(&mut self.cache, &mut self.back);
            for area in dirty {
                self.redraw_region(board, area);
            }
        }
    }

    /// Draws strokes that were just finished straight onto the cache when no stroke above them
    /// overlaps them (the usual case: the newest stroke is the top one); the others join the
    /// dirty region, to be redrawn in drawing order.
    fn draw_on_top(&mut self, board: &IndexedBoard, ids: &[StrokeId], dirty: &mut Rect) {
        let Some(camera) = self.plan.camera() else {
            return;
        };
        let region = self.plan.area(camera);
        let canvas = self.canvas(&self.cache, camera);
        for id in ids {
            let Some(s) = board.get(id).filter(|s| !s.erased) else {
                continue;
            };
            if self.scene.covered(board, id) {
                *dirty = dirty.union(visual_bounds(s));
            } else {
                canvas.stroke(&mut self.scene, &mut self.paths, s, region);
            }
        }
        self.cache.ctx().set_global_alpha(1.0);
        self.plan.recompose();
    }

    /// Redraws the part of the cache that shows `world`.
    fn redraw_region(&mut self, board: &IndexedBoard, world: Rect) {
        let (Some(camera), Some((clip, region))) = (self.plan.camera(), self.plan.clip(world))
        else {
            return;
        };
        self.cache.clip_and_fill(clip, self.theme);
        let hidden = self.scene.hidden();
        let canvas = self.canvas(&self.cache, camera);
        canvas.strokes(
            &mut self.scene,
            &mut self.paths,
            board
                .strokes_in(region)
                .filter(|s| s.finished && hidden != Some(s.id)),
            region,
        );
        self.cache.unclip();
        self.plan.recompose();
    }

    /// Copies the cache to the board canvas and draws live strokes on top.
    fn compose(&mut self, board: &IndexedBoard, view: Viewport) {
        match self.plan.show(view) {
            Show::At { x, y } => self.screen.copy(&self.cache, x, y),
            Show::Scaled { x, y, scale } => {
                // Zooming: the cache, scaled, until it is redrawn sharp.
                self.screen.fill(self.theme);
                self.screen.copy_scaled(&self.cache, x, y, scale);
            }
            Show::Nothing => self.screen.fill(self.theme),
        }
        let (w, h) = self.screen.size();
        let ratio = self.plan.ratio();
        let region = view.visible(w / ratio, h / ratio);
        let canvas = self.canvas(&self.screen, view);
        let live: Vec<StrokeId> = self.scene.live(board).to_vec();
        canvas.strokes(
            &mut self.scene,
            &mut self.paths,
            live.iter().filter_map(|id| board.get(id)),
            region,
        );
    }
}
