//! Plane geometry in world pixels: points, rectangles, and what a stroke covers — its visual
//! bounds and whether a pointer touches it (eraser, selection).

use kokuban_board::{Shape, Stroke};
use kokuban_protocol::{BlobHash, Fill, Form, Op, PlacedImage, Point, StrokeId, Tool};

use crate::shape::{TEXT_LINE_HEIGHT, text_box};

/// A point in world (or screen) pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pt {
    /// Horizontal, growing right.
    pub x: f64,
    /// Vertical, growing down.
    pub y: f64,
}

impl Pt {
    /// A point.
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    /// A protocol point in world pixels.
    pub fn of(p: Point) -> Self {
        Self::new(p.x_px(), p.y_px())
    }

    /// Distance to `o`.
    pub fn dist(self, o: Pt) -> f64 {
        (self.x - o.x).hypot(self.y - o.y)
    }

    /// Moved by `(dx, dy)`.
    pub fn translate(self, dx: f64, dy: f64) -> Pt {
        Pt::new(self.x + dx, self.y + dy)
    }

    /// `self + (o - self) * t`.
    pub fn lerp(self, o: Pt, t: f64) -> Pt {
        Pt::new(self.x + (o.x - self.x) * t, self.y + (o.y - self.y) * t)
    }
}

/// An axis-aligned rectangle; `min <= max` on both axes unless it is [`Rect::EMPTY`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left.
    pub x0: f64,
    /// Top.
    pub y0: f64,
    /// Right.
    pub x1: f64,
    /// Bottom.
    pub y1: f64,
}

impl Rect {
    /// Contains nothing; the identity of [`Rect::union`].
    pub const EMPTY: Rect = Rect {
        x0: f64::INFINITY,
        y0: f64::INFINITY,
        x1: f64::NEG_INFINITY,
        y1: f64::NEG_INFINITY,
    };

    /// The rectangle spanned by two corners in any order.
    pub fn spanning(a: Pt, b: Pt) -> Rect {
        Rect {
            x0: a.x.min(b.x),
            y0: a.y.min(b.y),
            x1: a.x.max(b.x),
            y1: a.y.max(b.y),
        }
    }

    /// Whether it holds no point.
    pub fn is_empty(&self) -> bool {
        !(self.x0 <= self.x1 && self.y0 <= self.y1)
    }

    /// Width (0 when empty).
    pub fn width(&self) -> f64 {
        (self.x1 - self.x0).max(0.0)
    }

    /// Height (0 when empty).
    pub fn height(&self) -> f64 {
        (self.y1 - self.y0).max(0.0)
    }

    /// The smallest rectangle holding both.
    pub fn union(self, o: Rect) -> Rect {
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }

    /// Grown by `d` on every side.
    pub fn inflate(self, d: f64) -> Rect {
        if self.is_empty() {
            return self;
        }
        Rect {
            x0: self.x0 - d,
            y0: self.y0 - d,
            x1: self.x1 + d,
            y1: self.y1 + d,
        }
    }

    /// Moved by `(dx, dy)`.
    pub fn translate(self, dx: f64, dy: f64) -> Rect {
        Rect {
            x0: self.x0 + dx,
            y0: self.y0 + dy,
            x1: self.x1 + dx,
            y1: self.y1 + dy,
        }
    }

    /// Whether the two share any point.
    pub fn intersects(&self, o: &Rect) -> bool {
        !self.is_empty()
            && !o.is_empty()
            && self.x0 <= o.x1
            && o.x0 <= self.x1
            && self.y0 <= o.y1
            && o.y0 <= self.y1
    }

    /// Whether `o` lies entirely inside.
    pub fn contains_rect(&self, o: &Rect) -> bool {
        !o.is_empty() && self.x0 <= o.x0 && self.y0 <= o.y0 && o.x1 <= self.x1 && o.y1 <= self.y1
    }

    /// Whether `p` lies inside (edges included).
    pub fn contains(&self, p: Pt) -> bool {
        self.x0 <= p.x && p.x <= self.x1 && self.y0 <= p.y && p.y <= self.y1
    }

    /// The centre.
    pub fn center(&self) -> Pt {
        Pt::new((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)
    }
}

/// Distance from `p` to the segment `a..b`.
pub fn dist_to_segment(p: Pt, a: Pt, b: Pt) -> f64 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len2 = dx * dx + dy * dy;
    if len2 == 0.0 {
        return p.dist(a);
    }
    let t = (((p.x - a.x) * dx + (p.y - a.y) * dy) / len2).clamp(0.0, 1.0);
    p.dist(Pt::new(a.x + t * dx, a.y + t * dy))
}

/// Distance between the segments `a..b` and `c..d`.
pub fn segment_distance(a: Pt, b: Pt, c: Pt, d: Pt) -> f64 {
    if segments_cross(a, b, c, d) {
        return 0.0;
    }
    dist_to_segment(a, c, d)
        .min(dist_to_segment(b, c, d))
        .min(dist_to_segment(c, a, b))
        .min(dist_to_segment(d, a, b))
}

fn segments_cross(a: Pt, b: Pt, c: Pt, d: Pt) -> bool {
    let orient = |p: Pt, q: Pt, r: Pt| (q.x - p.x) * (r.y - p.y) - (q.y - p.y) * (r.x - p.x);
    let (d1, d2) = (orient(c, d, a), orient(c, d, b));
    let (d3, d4) = (orient(a, b, c), orient(a, b, d));
    ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
}

/// The points of a stroke where it now is (offset applied), in world pixels.
pub fn placed(stroke: &Stroke) -> impl Iterator<Item = Pt> + '_ {
    stroke.placed_points().map(Pt::of)
}

/// How far a stroke's ink reaches beyond its centre line, in world pixels.
pub fn ink_reach(stroke: &Stroke) -> f64 {
    let w = stroke.width.px();
    match &stroke.shape {
        // A pen's outline is at most `MAX_PRESSURE_SCALE` times its nominal half width.
        Shape::Ink(Tool::Pen) => w * crate::shape::MAX_PRESSURE_SCALE / 2.0 + 1.0,
        Shape::Ink(Tool::Arrow) => w / 2.0 + crate::shape::arrow_head_length(w) + 1.0,
        Shape::Ink(_) => w / 2.0 + 1.0,
        Shape::Text(_) | Shape::Image(_) => 0.0,
    }
}

/// The rectangle a stroke's ink covers (offset applied).
pub fn visual_bounds(stroke: &Stroke) -> Rect {
    let (dx, dy) = (
        f64::from(stroke.offset.0) / 8.0,
        f64::from(stroke.offset.1) / 8.0,
    );
    unplaced_bounds(stroke).translate(dx, dy)
}

/// The rectangle a stroke's ink covers where it was drawn (offset not applied, form applied),
/// so that a renderer can cache it across moves.
pub fn unplaced_bounds(stroke: &Stroke) -> Rect {
    form_matrix(stroke).map_rect(local_bounds(&stretched(stroke)))
}

/// The rectangle a stroke's ink covers as it was drawn (neither its form nor its offset
/// applied): what it is stretched and turned from.
pub fn local_bounds(stroke: &Stroke) -> Rect {
    if let Shape::Text(text) = &stroke.shape {
        let at = Pt::of(stroke.points[0]);
        let (w, h) = text_box(text.as_str(), stroke.width.px());
        return Rect {
            x0: at.x,
            y0: at.y,
            x1: at.x + w,
            y1: at.y + h,
        };
    }
    if let Shape::Image(_) = stroke.shape {
        let (a, b) = ends(&stroke.points);
        return Rect::spanning(a, b);
    }
    let mut r = Rect::EMPTY;
    for p in &stroke.points {
        let p = Pt::of(*p);
        r = r.union(Rect::spanning(p, p));
    }
    if matches!(
        stroke.shape,
        Shape::Ink(Tool::Line | Tool::Arrow | Tool::Rect | Tool::Ellipse)
    ) {
        // Shapes use only their first and last points.
        let (a, b) = ends(&stroke.points);
        r = Rect::spanning(a, b);
    }
    r.inflate(ink_reach(stroke))
}

fn ends(points: &[Point]) -> (Pt, Pt) {
    let a = Pt::of(points[0]);
    let b = Pt::of(*points.last().unwrap_or(&points[0]));
    (a, b)
}

/// The op that places an image `blob` under `id` in the box its two `points` give (none when
/// they do not make a box, which a board never holds).
pub fn image_op(id: StrokeId, blob: BlobHash, points: &[Point]) -> Option<Op> {
    let [at, to] = points else { return None };
    PlacedImage::new(id, blob, *at, *to).ok().map(Op::Image)
}

/// The centre-line segments of a stroke where it now is, for hit-testing.
pub fn outline_segments(stroke: &Stroke) -> Vec<(Pt, Pt)> {
    let pts: Vec<Pt> = placed(stroke).collect();
    let (a, b) = (pts[0], *pts.last().unwrap_or(&pts[0]));
    match &stroke.shape {
        Shape::Ink(Tool::Pen | Tool::Highlighter) => {
            if pts.len() == 1 {
                vec![(a, a)]
            } else {
                pts.windows(2).map(|w| (w[0], w[1])).collect()
            }
        }
        Shape::Ink(Tool::Line | Tool::Arrow) => vec![(a, b)],
        Shape::Ink(Tool::Rect) => {
            let (c, d) = (Pt::new(b.x, a.y), Pt::new(a.x, b.y));
            vec![(a, c), (c, b), (b, d), (d, a)]
        }
        Shape::Ink(Tool::Ellipse) => {
            let r = Rect::spanning(a, b);
            let (c, rx, ry) = (r.center(), r.width() / 2.0, r.height() / 2.0);
            const STEPS: usize = 48;
            let at = |i: usize| {
                let t = i as f64 / STEPS as f64 * std::f64::consts::TAU;
                Pt::new(c.x + rx * t.cos(), c.y + ry * t.sin())
            };
            (0..STEPS).map(|i| (at(i), at(i + 1))).collect()
        }
        Shape::Text(_) | Shape::Image(_) => {
            let (dx, dy) = offset_px(stroke);
            let r = local_bounds(stroke).translate(dx, dy);
            let (p, q) = (Pt::new(r.x0, r.y0), Pt::new(r.x1, r.y1));
            let (c, d) = (Pt::new(q.x, p.y), Pt::new(p.x, q.y));
            vec![(p, c), (c, q), (q, d), (d, p)]
        }
    }
}

/// Whether the pointer's path `from..to`, with a tip of `radius`, touches the stroke.
pub fn hits(stroke: &Stroke, from: Pt, to: Pt, radius: f64) -> bool {
    if stroke.form == Form::default() {
        return hits_as_drawn(stroke, from, to, radius);
    }
    // Taken back to where the stroke was drawn, the tip shrinking or growing as the stroke
    // did (by its smaller stretch, so that it never misses what it touches).
    let (dx, dy) = offset_px(stroke);
    let Some(back) = form_matrix(stroke).inverse() else {
        return false;
    };
    let local = |p: Pt| back.apply(Pt::new(p.x - dx, p.y - dy)).translate(dx, dy);
    let stretch = match stroke.shape {
        Shape::Ink(_) => 1.0,
        Shape::Text(_) | Shape::Image(_) => {
            let (sx, sy) = (stroke.form.sx.factor(), stroke.form.sy.factor());
            sx.abs().min(sy.abs())
        }
    };
    hits_as_drawn(&stretched(stroke), local(from), local(to), radius / stretch)
}

/// [`hits`] for a stroke as drawn (its form left aside), its offset applied.
fn hits_as_drawn(stroke: &Stroke, from: Pt, to: Pt, radius: f64) -> bool {
    let reach = radius + stroke.width.px() / 2.0;
    let swept = Rect::spanning(from, to).inflate(reach);
    let (dx, dy) = offset_px(stroke);
    let drawn = local_bounds(stroke).translate(dx, dy);
    if !swept.intersects(&drawn.inflate(radius)) {
        return false;
    }
    if let Shape::Text(_) | Shape::Image(_) = stroke.shape {
        // Text and images are picked by their box, not only its outline.
        let r = drawn.inflate(radius);
        if r.contains(from) || r.contains(to) {
            return true;
        }
    }
    if filled_contains(stroke, from) || filled_contains(stroke, to) {
        return true;
    }
    outline_segments(stroke)
        .into_iter()
        .any(|(a, b)| segment_distance(from, to, a, b) <= reach)
}

/// Whether `p` lies inside a filled rectangle or ellipse (a filled shape is picked, and
/// erased, by its inside too, as it is seen).
fn filled_contains(stroke: &Stroke, p: Pt) -> bool {
    let Shape::Ink(tool @ (Tool::Rect | Tool::Ellipse)) = stroke.shape else {
        return false;
    };
    if stroke.look.fill == Fill::None {
        return false;
    }
    let mut placed = stroke.placed_points().map(Pt::of);
    let (Some(a), Some(b)) = (placed.next(), placed.last()) else {
        return false;
    };
    let r = Rect::spanning(a, b);
    if tool == Tool::Rect {
        return r.contains(p);
    }
    let (c, rx, ry) = (r.center(), r.width() / 2.0, r.height() / 2.0);
    if rx <= 0.0 || ry <= 0.0 {
        return false;
    }
    let (x, y) = ((p.x - c.x) / rx, (p.y - c.y) / ry);
    x * x + y * y <= 1.0
}

/// The rectangle outside of which a pointer cannot touch a stroke (offset applied): a path
/// that [`hits`] the stroke with a tip of radius `r` passes within `r` of it. For ink that is
/// its [`visual_bounds`] (which reach at least half its width beyond the centre line); a text
/// item is touched up to half its font size beyond its box.
pub fn touch_bounds(stroke: &Stroke) -> Rect {
    let (dx, dy) = (
        f64::from(stroke.offset.0) / 8.0,
        f64::from(stroke.offset.1) / 8.0,
    );
    unplaced_touch_bounds(stroke).translate(dx, dy)
}

/// [`touch_bounds`] where the stroke was drawn (offset not applied, form applied).
pub fn unplaced_touch_bounds(stroke: &Stroke) -> Rect {
    let local = match stroke.shape {
        Shape::Text(_) => local_bounds(stroke).inflate(stroke.width.px() / 2.0),
        Shape::Ink(_) | Shape::Image(_) => local_bounds(&stretched(stroke)),
    };
    form_matrix(stroke).map_rect(local)
}

/// An area that meets the [`touch_bounds`] of every stroke [`hits`] can find along `from..to`
/// with a tip of `radius`: what to ask a spatial index before testing each stroke.
pub fn reach_area(from: Pt, to: Pt, radius: f64) -> Rect {
    // One pixel more than the exact reach, so that rounding never loses a stroke at the edge.
    Rect::spanning(from, to).inflate(radius + 1.0)
}

/// Approximate line height of text, for layout.
pub fn text_line_height(size: f64) -> f64 {
    size * TEXT_LINE_HEIGHT
}

mod form;

pub use form::{
    Affine, form_about, form_matrix, offset_px, pivot, placement, shape_bounds, stretched,
};

#[cfg(test)]
mod tests {
    use kokuban_protocol::Text;

    use super::*;

    fn stroke(tool: Tool, pts: &[(f64, f64)]) -> Stroke {
        let pts: Vec<_> = pts.iter().map(|&(x, y)| (x, y, 0.5)).collect();
        crate::fixtures::stroke(tool, &pts)
    }

    #[test]
    fn segment_distances() {
        let (a, b) = (Pt::new(0.0, 0.0), Pt::new(10.0, 0.0));
        assert_eq!(dist_to_segment(Pt::new(5.0, 3.0), a, b), 3.0);
        assert_eq!(dist_to_segment(Pt::new(-4.0, 3.0), a, b), 5.0);
        // Crossing segments touch.
        assert_eq!(
            segment_distance(a, b, Pt::new(5.0, -1.0), Pt::new(5.0, 1.0)),
            0.0
        );
        assert_eq!(
            segment_distance(a, b, Pt::new(5.0, 2.0), Pt::new(5.0, 9.0)),
            2.0
        );
    }

    #[test]
    fn rects() {
        let r = Rect::spanning(Pt::new(4.0, 5.0), Pt::new(0.0, 1.0));
        assert_eq!((r.x0, r.y0, r.x1, r.y1), (0.0, 1.0, 4.0, 5.0));
        assert!(Rect::EMPTY.is_empty());
        assert_eq!(Rect::EMPTY.union(r), r);
        assert!(r.contains_rect(&Rect::spanning(Pt::new(1.0, 2.0), Pt::new(3.0, 3.0))));
        assert!(!r.intersects(&Rect::EMPTY));
        assert!(r.intersects(&r.translate(3.0, 3.0)));
        assert!(!r.intersects(&r.translate(5.0, 0.0)));
    }

    #[test]
    fn eraser_hits_ink_not_empty_space() {
        let s = stroke(Tool::Pen, &[(0.0, 0.0), (100.0, 0.0), (100.0, 100.0)]);
        assert!(hits(&s, Pt::new(50.0, 5.0), Pt::new(50.0, 5.0), 4.0));
        assert!(!hits(&s, Pt::new(50.0, 20.0), Pt::new(50.0, 20.0), 4.0));
        // A fast swipe crossing the stroke between two samples still hits it.
        assert!(hits(&s, Pt::new(50.0, -50.0), Pt::new(50.0, 50.0), 1.0));
        // The inside of a rectangle is not ink; its edge is.
        let r = stroke(Tool::Rect, &[(0.0, 0.0), (30.0, 30.0), (100.0, 100.0)]);
        assert!(!hits(&r, Pt::new(50.0, 50.0), Pt::new(50.0, 50.0), 4.0));
        assert!(hits(&r, Pt::new(99.0, 50.0), Pt::new(99.0, 50.0), 4.0));
        let e = stroke(Tool::Ellipse, &[(0.0, 0.0), (100.0, 50.0)]);
        assert!(hits(&e, Pt::new(50.0, 1.0), Pt::new(50.0, 1.0), 3.0));
        assert!(!hits(&e, Pt::new(50.0, 25.0), Pt::new(50.0, 25.0), 3.0));
        // Filled, their inside is ink too; outside an ellipse's curve, within its box, is not.
        let (mut r, mut e) = (r, e);
        r.look.fill = kokuban_protocol::Fill::Tint;
        e.look.fill = kokuban_protocol::Fill::Solid;
        assert!(hits(&r, Pt::new(50.0, 50.0), Pt::new(50.0, 50.0), 4.0));
        assert!(hits(&e, Pt::new(50.0, 25.0), Pt::new(50.0, 25.0), 3.0));
        assert!(!hits(&e, Pt::new(8.0, 4.0), Pt::new(8.0, 4.0), 1.0));
    }

    #[test]
    fn bounds_follow_moves_and_cover_the_ink() {
        let mut s = stroke(Tool::Pen, &[(0.0, 0.0), (10.0, 10.0)]);
        let b = visual_bounds(&s);
        assert!(b.x0 < 0.0 && b.x1 > 10.0);
        s.offset = (80, -80);
        let moved = visual_bounds(&s);
        assert_eq!(moved, b.translate(10.0, -10.0));
        // Shapes span their first and last point only.
        let l = stroke(Tool::Line, &[(0.0, 0.0), (500.0, 500.0), (10.0, 0.0)]);
        assert!(visual_bounds(&l).x1 < 20.0);
        let mut t = stroke(Tool::Pen, &[(0.0, 0.0)]);
        t.shape = Shape::Text(Text::new("hello\nworld").unwrap());
        let tb = visual_bounds(&t);
        assert!(tb.height() > 2.0 * 4.0 && tb.width() > 4.0);
        assert!(hits(&t, tb.center(), tb.center(), 1.0));
    }

    /// A form stretches and turns a stroke about the centre of where it was drawn: its bounds
    /// and what the pointer touches follow, its offset still applies after it.
    #[test]
    fn a_stretched_and_turned_stroke_is_seen_and_touched_where_it_shows() {
        use kokuban_protocol::{Form, Scale};
        // A line from (0, 0) to (100, 0), 4 px wide: its centre is (50, 0).
        let mut l = stroke(Tool::Line, &[(0.0, 0.0), (100.0, 0.0)]);
        l.form = Form {
            sx: Scale::new(2000).unwrap(),
            sy: Scale::ONE,
            turn: 16384,
        };
        // Twice as long, turned a quarter clockwise: from (50, -100) to (50, 100).
        let b = visual_bounds(&l);
        // (Its ink reaches 3 px beyond its ends: a stretch keeps the line's width.)
        assert!(
            (b.y0 + 103.0).abs() < 0.01 && (b.y1 - 103.0).abs() < 0.01,
            "{b:?}"
        );
        assert!(
            (b.x0 - 47.0).abs() < 0.01 && (b.x1 - 53.0).abs() < 0.01,
            "{b:?}"
        );
        let at = |x: f64, y: f64| Pt::new(x, y);
        assert!(hits(&l, at(50.0, 90.0), at(50.0, 90.0), 1.0));
        assert!(
            !hits(&l, at(90.0, 0.0), at(90.0, 0.0), 1.0),
            "no longer along x"
        );
        // Moved 10 px right, after the form.
        l.offset = (80, 0);
        assert!(hits(&l, at(60.0, -90.0), at(60.0, -90.0), 1.0));
        let back = placement(&l).inverse().unwrap();
        let p = back.apply(placement(&l).apply(at(12.0, 34.0)));
        assert!(p.dist(at(12.0, 34.0)) < 1e-9);
    }
}
