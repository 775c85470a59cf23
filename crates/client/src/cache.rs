//! The cached bitmap of the board: which camera it was drawn with, and how it follows the view.
//!
//! Finished strokes are drawn once into a bitmap a margin larger than the screen, which is
//! copied to the screen each frame. A pan within the margin only moves the copy; past it, the
//! bitmap's pixels are shifted by whole device pixels and only the uncovered strips are drawn.
//! A zoom shows the bitmap scaled until the zoom settles, then a [`RedrawPass`] draws it sharp
//! again over several frames, into a second bitmap, which replaces the first when the pass is
//! through. [`BoardCache`] makes these decisions and does the arithmetic; the renderer owns the
//! bitmaps and draws what it is told.

use kokuban_protocol::StrokeId;

use crate::geom::{Pt, Rect};
use crate::redraw::{CostModel, RedrawPass};
use crate::spatial::IndexedBoard;
use crate::viewport::Viewport;

/// After the last zoom step (or pan of a bitmap that must be redrawn anyway), the bitmap is
/// redrawn this much later (ms), rather than on every frame of the gesture.
pub const SETTLE_MS: f64 = 120.0;
/// The bitmap reaches this far (CSS pixels) beyond each edge of the screen, so that a pan of
/// up to this much only moves the copy, and uncovered strips are redrawn in a few larger pieces
/// rather than thin ones every frame.
pub const CACHE_MARGIN: f64 = 128.0;

/// A rectangle of device pixels of a bitmap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceRect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// How the bitmap goes on screen this frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Show {
    /// Copied pixel for pixel, its top-left corner at `(x, y)` device pixels of the screen.
    At {
        /// Left.
        x: f64,
        /// Top.
        y: f64,
    },
    /// Scaled by `scale` (a zoom not redrawn yet), its top-left corner at `(x, y)`.
    Scaled {
        /// Left.
        x: f64,
        /// Top.
        y: f64,
        /// Screen pixels per bitmap pixel.
        scale: f64,
    },
    /// There is no bitmap yet: the background only.
    Nothing,
}

/// What the bitmap must do to follow the view.
#[derive(Debug, Clone, PartialEq)]
pub enum Follow {
    /// Nothing now: it holds the view, a redraw is running, or a zoom is settling.
    Stay,
    /// Move its pixels by `(dx, dy)` device pixels, then draw the uncovered `strips` (world
    /// areas, each to be drawn under its own rectangular clip).
    Shift {
        /// Rightwards.
        dx: f64,
        /// Downwards.
        dy: f64,
        /// What the shift uncovered.
        strips: Vec<Rect>,
    },
    /// Nothing of it is usable: start a redraw pass for this camera.
    Redraw(Viewport),
}

/// The bookkeeping of the board's cached bitmap (see the module documentation).
///
/// Invariant: `size` is the screen plus a margin of [`BoardCache::margin`] device pixels on
/// each side; `camera` is the camera the bitmap on screen was drawn with (None before the first
/// pass is through); `pass`, if any, draws for a camera that holds the current view.
#[derive(Debug)]
pub struct BoardCache {
    ratio: f64,
    size: (f64, f64),
    camera: Option<Viewport>,
    pass: Option<RedrawPass>,
    cost: CostModel,
    /// The bitmap shows something other than the board (a new board, another theme): a pass
    /// must redraw it.
    stale: bool,
    settle_at: Option<f64>,
    compose: bool,
}

impl Default for BoardCache {
    fn default() -> Self {
        Self {
            ratio: 1.0,
            size: (1.0, 1.0),
            camera: None,
            pass: None,
            cost: CostModel::default(),
            stale: true,
            settle_at: None,
            compose: true,
        }
    }
}

impl BoardCache {
    /// No bitmap yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The screen is `(width, height)` device pixels at `ratio` device pixels per CSS pixel;
    /// returns the size the bitmaps must have. Everything must be redrawn after this.
    pub fn resize(&mut self, ratio: f64, (width, height): (u32, u32)) -> (u32, u32) {
        self.ratio = if ratio.is_finite() && ratio > 0.0 {
            ratio
        } else {
            1.0
        };
        let m = 2 * self.margin() as u32;
        let size = (width.max(1) + m, height.max(1) + m);
        self.size = (f64::from(size.0), f64::from(size.1));
        size
    }

    /// Device pixels per CSS pixel.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The margin around the screen, in device pixels.
    pub fn margin(&self) -> f64 {
        (CACHE_MARGIN * self.ratio).round()
    }

    /// The camera the bitmap on screen was drawn with.
    pub fn camera(&self) -> Option<Viewport> {
        self.camera
    }

    /// The world area a bitmap drawn with `camera` shows.
    pub fn area(&self, camera: Viewport) -> Rect {
        camera.visible(self.size.0 / self.ratio, self.size.1 / self.ratio)
    }

    /// The bitmap's camera for a screen camera: the same zoom, the origin one margin up and
    /// left.
    pub fn camera_for(&self, view: Viewport) -> Viewport {
        let m = self.margin() / (view.zoom() * self.ratio);
        Viewport::new(
            Pt::new(view.origin().x - m, view.origin().y - m),
            view.zoom(),
        )
    }

    /// Whether a bitmap drawn with `camera` holds the screen of `view` at its zoom.
    pub fn holds(&self, camera: Viewport, view: Viewport) -> bool {
        let (ox, oy) = self.offset(camera, view);
        let m2 = 2.0 * self.margin() + 0.5;
        camera.zoom() == view.zoom() && (-0.5..=m2).contains(&ox) && (-0.5..=m2).contains(&oy)
    }

    /// Whether the bitmap on screen holds the screen of `view`.
    pub fn covers(&self, view: Viewport) -> bool {
        self.camera.is_some_and(|c| self.holds(c, view))
    }

    /// Where the screen's top-left corner is in a bitmap drawn with `camera`, in device pixels.
    fn offset(&self, camera: Viewport, view: Viewport) -> (f64, f64) {
        let k = view.zoom() * self.ratio;
        (
            (view.origin().x - camera.origin().x) * k,
            (view.origin().y - camera.origin().y) * k,
        )
    }

    /// Everything must be redrawn (a resize, a new theme, a cleared or replaced board); the
    /// bitmap on screen stays until a pass replaces it.
    pub fn invalidate(&mut self) {
        self.stale = true;
        self.pass = None;
    }

    /// The view moved this frame. A pass drawn for a view that is gone (another zoom, a pan
    /// past its margin) is dropped; a whole redraw waits for the view to settle rather than
    /// starting over on every frame of a pan (unless `now_invalid`: a resize blanked the
    /// screen, and nothing is there to wait with).
    pub fn moved(&mut self, view: Viewport, now: f64, now_invalid: bool) {
        if let Some(pass) = &self.pass
            && !self.holds(pass.camera(), view)
        {
            self.pass = None;
        }
        if self.stale && self.pass.is_none() && !now_invalid {
            self.settle_at = Some(now + SETTLE_MS);
        }
    }

    /// What the bitmap must do to show `view` (`moved`: the view moved this frame).
    pub fn follow(&mut self, view: Viewport, now: f64, moved: bool) -> Follow {
        // Only a real move re-arms the settle timer, so that it fires once the zoom stops.
        if self.covers(view) || self.pass.is_some() || !(moved || self.settle_at.is_none()) {
            return Follow::Stay;
        }
        let Some(old) = self.camera else {
            return Follow::Redraw(self.camera_for(view));
        };
        self.compose = true;
        if old.zoom() != view.zoom() {
            self.settle_at = Some(now + SETTLE_MS);
            return Follow::Stay;
        }
        // Shift the content so that the screen sits one margin inside the bitmap again.
        let (ox, oy) = self.offset(old, view);
        let m = self.margin();
        let (dx, dy) = ((m - ox).round(), (m - oy).round());
        let (w, h) = self.size;
        if dx.abs() >= w || dy.abs() >= h {
            // Nothing of the bitmap is in view any more: it stays on screen (shifted) while a
            // pass draws the new one.
            return Follow::Redraw(self.camera_for(view));
        }
        let camera = self.camera_for(view);
        self.camera = Some(camera);
        // The strips the shift uncovered, in device pixels: each is drawn under its own
        // rectangular clip, since a clip of two rectangles makes every stroke under it slower.
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
        let r = self.ratio;
        let strips = strips
            .into_iter()
            .map(|(x, y, sw, sh)| {
                Rect::spanning(
                    camera.to_world(Pt::new(x / r, y / r)),
                    camera.to_world(Pt::new((x + sw) / r, (y + sh) / r)),
                )
            })
            .collect();
        Follow::Shift { dx, dy, strips }
    }

    /// Whether a pass must start now: the view settled, or the bitmap is stale and nothing is
    /// redrawing it yet.
    pub fn due(&self, now: f64) -> bool {
        self.settle_at.is_some_and(|t| now >= t)
            || (self.stale && self.pass.is_none() && self.settle_at.is_none())
    }

    /// Starts a pass for `camera`: the finished strokes in its area, bottom first. The
    /// renderer clears the back bitmap to the background.
    pub fn start(&mut self, board: &IndexedBoard, camera: Viewport) {
        let order = board
            .strokes_in(self.area(camera))
            .filter(|s| s.finished)
            .map(|s| s.id)
            .collect();
        self.pass = Some(RedrawPass::new(camera, order));
        self.settle_at = None;
    }

    /// Whether a pass is running.
    pub fn is_redrawing(&self) -> bool {
        self.pass.is_some()
    }

    /// Something in `area` changed: a running pass redraws it once it is through.
    pub fn changed(&mut self, area: Rect) {
        if let Some(pass) = &mut self.pass {
            pass.changed(area);
        }
    }

    /// This frame's share of the running pass: its camera and the strokes to draw, bottom
    /// first (erased, unfinished and `hidden` ones left out), as many as fit in `budget_ms`.
    pub fn step(
        &mut self,
        board: &IndexedBoard,
        budget_ms: f64,
        hidden: Option<StrokeId>,
    ) -> Option<(Viewport, Vec<StrokeId>)> {
        let pass = self.pass.as_mut()?;
        let ids = pass
            .step(&self.cost, budget_ms, |id| {
                board.get(id).map(|s| s.points.len())
            })
            .iter()
            .filter(|id| {
                board
                    .get(id)
                    .is_some_and(|s| !s.erased && s.finished && hidden != Some(s.id))
            })
            .copied()
            .collect();
        Some((pass.camera(), ids))
    }

    /// Drawing `units` of work (see [`CostModel::units`]) took `elapsed_ms`.
    pub fn learn(&mut self, units: f64, elapsed_ms: f64) {
        self.cost.learn(units, elapsed_ms);
    }

    /// If the running pass is through: its bitmap is now the one on screen (the renderer swaps
    /// them), and these areas changed meanwhile and must be redrawn on it.
    pub fn finish(&mut self) -> Option<Vec<Rect>> {
        let pass = self.pass.as_mut().filter(|p| p.is_done())?;
        let dirty = pass.take_dirty();
        self.camera = Some(pass.camera());
        self.pass = None;
        self.stale = false;
        self.compose = true;
        Some(dirty)
    }

    /// The part of the bitmap that shows `world`, whole device pixels with one to spare on
    /// each side (anti-aliasing), within the bitmap; and the world area that part shows. None
    /// when it is off the bitmap or there is no bitmap.
    pub fn clip(&self, world: Rect) -> Option<(DeviceRect, Rect)> {
        let camera = self.camera?;
        let k = camera.zoom() * self.ratio;
        let (w, h) = self.size;
        let x0 = ((world.x0 - camera.origin().x) * k).floor().max(0.0) - 1.0;
        let y0 = ((world.y0 - camera.origin().y) * k).floor().max(0.0) - 1.0;
        let x1 = ((world.x1 - camera.origin().x) * k).ceil().min(w) + 1.0;
        let y1 = ((world.y1 - camera.origin().y) * k).ceil().min(h) + 1.0;
        if x1 <= x0 || y1 <= y0 || world.is_empty() {
            return None;
        }
        let r = self.ratio;
        let region = Rect::spanning(
            camera.to_world(Pt::new(x0 / r, y0 / r)),
            camera.to_world(Pt::new(x1 / r, y1 / r)),
        );
        Some((
            DeviceRect {
                x: x0,
                y: y0,
                w: x1 - x0,
                h: y1 - y0,
            },
            region,
        ))
    }

    /// How the bitmap goes on screen for `view`.
    pub fn show(&self, view: Viewport) -> Show {
        let Some(camera) = self.camera else {
            return Show::Nothing;
        };
        if self.holds(camera, view) {
            let (ox, oy) = self.offset(camera, view);
            return Show::At {
                x: -ox.round(),
                y: -oy.round(),
            };
        }
        let (ox, oy) = self.offset(camera, view);
        Show::Scaled {
            x: -ox,
            y: -oy,
            scale: view.zoom() / camera.zoom(),
        }
    }

    /// Asks for the screen to be composed again this frame.
    pub fn recompose(&mut self) {
        self.compose = true;
    }

    /// Whether the screen must be composed again, and from now on not (until asked).
    pub fn take_compose(&mut self) -> bool {
        std::mem::take(&mut self.compose)
    }
}

#[cfg(test)]
mod tests;
