//! A full redraw of the board's cache, spread over animation frames.
//!
//! After a zoom, every stroke on screen must be drawn again at the new scale. With 10,000
//! strokes in view that is most of a second of work: done in one frame, the page freezes. A
//! [`RedrawPass`] instead draws the strokes bottom first, a few milliseconds' worth per frame,
//! into a bitmap nobody sees yet, while the screen keeps showing the previous bitmap (scaled to
//! the new view) with live ink on top. When the pass is through, its bitmap replaces the old.
//!
//! How many strokes fit in a frame is estimated by a [`CostModel`] that learns, frame after
//! frame, how long the browser takes per point drawn. Changes to the board while a pass runs
//! are noted as dirty areas and redrawn on the finished bitmap, so the pass never has to start
//! over because someone keeps drawing; a new camera (another zoom, a pan) or a change of
//! everything (theme, a new board) starts a new pass instead.

use kokuban_protocol::StrokeId;

use crate::geom::Rect;
use crate::viewport::Viewport;

/// Drawing work per animation frame, in ms: half a 60 Hz frame, the rest is for the browser
/// (compositing the canvas, input, the network).
pub const FRAME_BUDGET_MS: f64 = 8.0;
/// What a stroke costs beyond its points (state changes, a lookup, a path object), counted in
/// points.
const STROKE_OVERHEAD: f64 = 8.0;
/// The first guess of the cost of one point, in ms: on the slow side (software rendering on a
/// busy core), so that the first frame of a pass stays short; the model learns the real figure
/// from that frame on.
const INITIAL_MS_PER_POINT: f64 = 0.004;
/// Dirty areas kept apart at most; more are merged into one.
const MAX_DIRTY: usize = 8;

/// How long drawing takes, per point, as measured on this machine.
///
/// Invariant: `ms_per_point` is finite and positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    ms_per_point: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        Self {
            ms_per_point: INITIAL_MS_PER_POINT,
        }
    }
}

impl CostModel {
    /// The work one stroke of `points` points counts for, in points.
    pub fn units(points: usize) -> f64 {
        points as f64 + STROKE_OVERHEAD
    }

    /// The estimated cost of one stroke of `points` points, in ms.
    pub fn estimate(&self, points: usize) -> f64 {
        Self::units(points) * self.ms_per_point
    }

    /// The estimated cost of one point, in ms.
    pub fn ms_per_point(&self) -> f64 {
        self.ms_per_point
    }

    /// Drawing `points` points (overhead included: the sum of [`CostModel::units`] of the
    /// strokes drawn) took `elapsed_ms`. The estimate moves halfway to the measure: fast enough to follow the
    /// first frames of a pass (which also build each stroke's path), steady against one slow
    /// frame (a garbage collection).
    pub fn learn(&mut self, points: f64, elapsed_ms: f64) {
        if !(points >= 1.0 && elapsed_ms.is_finite() && elapsed_ms >= 0.0) {
            return;
        }
        // A timer may be coarse (reduced precision): never believe drawing is free.
        let measured = (elapsed_ms / points).max(1e-6);
        self.ms_per_point = (self.ms_per_point + measured) / 2.0;
    }
}

/// One redraw of the cache for one camera, in steps.
///
/// Invariant: `order[..next]` have been handed out for drawing, bottom first, each once.
#[derive(Debug, Clone)]
pub struct RedrawPass {
    camera: Viewport,
    order: Vec<StrokeId>,
    next: usize,
    dirty: Vec<Rect>,
}

impl RedrawPass {
    /// A pass drawing `order` (the strokes in the cache's area, bottom first) for `camera`.
    pub fn new(camera: Viewport, order: Vec<StrokeId>) -> Self {
        Self {
            camera,
            order,
            next: 0,
            dirty: Vec::new(),
        }
    }

    /// The camera this pass draws for.
    pub fn camera(&self) -> Viewport {
        self.camera
    }

    /// Strokes handed out so far, and in all.
    pub fn progress(&self) -> (usize, usize) {
        (self.next, self.order.len())
    }

    /// Whether every stroke was handed out.
    pub fn is_done(&self) -> bool {
        self.next >= self.order.len()
    }

    /// The strokes to draw this frame, bottom first: as many as `model` says fit in
    /// `budget_ms`, and one at least so that every frame makes progress. `points` tells a
    /// stroke's size (`None`: it is gone, and costs nothing).
    pub fn step(
        &mut self,
        model: &CostModel,
        budget_ms: f64,
        points: impl Fn(&StrokeId) -> Option<usize>,
    ) -> &[StrokeId] {
        let start = self.next;
        let mut spent = 0.0;
        while let Some(id) = self.order.get(self.next) {
            let cost = points(id).map_or(0.0, |n| model.estimate(n));
            if self.next > start && spent + cost > budget_ms {
                break;
            }
            spent += cost;
            self.next += 1;
        }
        &self.order[start..self.next]
    }

    /// Something in `area` (world) changed while the pass ran: the strokes already drawn there
    /// may be wrong, so the area is redrawn once the pass is through.
    pub fn changed(&mut self, area: Rect) {
        if area.is_empty() {
            return;
        }
        let mut area = area;
        // Overlapping areas become one, so that no stroke is drawn twice for nothing.
        while let Some(i) = self.dirty.iter().position(|d| d.intersects(&area)) {
            area = area.union(self.dirty.swap_remove(i));
        }
        self.dirty.push(area);
        if self.dirty.len() > MAX_DIRTY {
            let all = self.dirty.drain(..).fold(Rect::EMPTY, Rect::union);
            self.dirty.push(all);
        }
    }

    /// The areas to redraw on the finished bitmap, apart from each other.
    pub fn take_dirty(&mut self) -> Vec<Rect> {
        std::mem::take(&mut self.dirty)
    }
}

#[cfg(test)]
mod tests;
