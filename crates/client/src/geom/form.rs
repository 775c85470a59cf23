//! Where an item's form and offset take it: the affine map from the points it was drawn with
//! to where it shows, and the stretching of ink whose line keeps its width.

use std::borrow::Cow;

use kokuban_board::{Shape, Stroke};
use kokuban_protocol::limits::{COORD_LIMIT, SUBPIXELS};
use kokuban_protocol::{Form, Point, Scale};

use super::{Pt, Rect, ink_reach, local_bounds};

/// An affine map `x' = a·x + c·y + e`, `y' = b·x + d·y + f` (the canvas's order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// The matrix, column by column, then the translation.
    pub a: f64,
    /// See `a`.
    pub b: f64,
    /// See `a`.
    pub c: f64,
    /// See `a`.
    pub d: f64,
    /// Horizontal translation.
    pub e: f64,
    /// Vertical translation.
    pub f: f64,
}

impl Affine {
    /// Leaves every point where it is.
    pub const IDENTITY: Affine = Affine {
        a: 1.0,
        b: 0.0,
        c: 0.0,
        d: 1.0,
        e: 0.0,
        f: 0.0,
    };

    /// Where `p` goes.
    pub fn apply(&self, p: Pt) -> Pt {
        Pt::new(
            self.a * p.x + self.c * p.y + self.e,
            self.b * p.x + self.d * p.y + self.f,
        )
    }

    /// The map back (none for a flat one, which no form gives).
    pub fn inverse(&self) -> Option<Affine> {
        let det = self.a * self.d - self.b * self.c;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (a, b, c, d) = (self.d / det, -self.b / det, -self.c / det, self.a / det);
        Some(Affine {
            a,
            b,
            c,
            d,
            e: -(a * self.e + c * self.f),
            f: -(b * self.e + d * self.f),
        })
    }

    /// Then moved by `(dx, dy)`.
    pub fn then_translate(self, dx: f64, dy: f64) -> Affine {
        Affine {
            e: self.e + dx,
            f: self.f + dy,
            ..self
        }
    }

    /// The bounds of where the corners of `r` go.
    pub fn map_rect(&self, r: Rect) -> Rect {
        if r.is_empty() || *self == Affine::IDENTITY {
            return r;
        }
        [(r.x0, r.y0), (r.x1, r.y0), (r.x1, r.y1), (r.x0, r.y1)]
            .into_iter()
            .map(|(x, y)| self.apply(Pt::new(x, y)))
            .fold(Rect::EMPTY, |acc, p| acc.union(Rect::spanning(p, p)))
    }
}

/// The point about which a stroke is stretched and turned: the centre of where it was drawn.
pub fn pivot(stroke: &Stroke) -> Pt {
    local_bounds(stroke).center()
}

/// A form as a map about `pivot`: stretched along the item's axes, then turned.
pub fn form_about(form: Form, pivot: Pt) -> Affine {
    if form == Form::default() {
        return Affine::IDENTITY;
    }
    let (sx, sy) = (form.sx.factor(), form.sy.factor());
    let (sin, cos) = form.radians().sin_cos();
    let (a, b, c, d) = (cos * sx, sin * sx, -sin * sy, cos * sy);
    Affine {
        a,
        b,
        c,
        d,
        e: pivot.x - (a * pivot.x + c * pivot.y),
        f: pivot.y - (b * pivot.x + d * pivot.y),
    }
}

/// Where a stroke's form takes it as [`stretched`] gives it (offset not applied): ink is only
/// turned (its points are already stretched), text and images are stretched and turned whole.
pub fn form_matrix(stroke: &Stroke) -> Affine {
    if stroke.form == Form::default() {
        return Affine::IDENTITY;
    }
    let form = match stroke.shape {
        Shape::Ink(_) => Form {
            sx: Scale::ONE,
            sy: Scale::ONE,
            ..stroke.form
        },
        Shape::Text(_) | Shape::Image(_) => stroke.form,
    };
    form_about(form, pivot(stroke))
}

/// A stroke of ink as its form stretches it: its points moved about its pivot, so that its
/// line keeps its width, as a resized shape does in any drawing tool (its turn is left to
/// [`form_matrix`]). Text, images and ink that is not stretched come as they are.
pub fn stretched(stroke: &Stroke) -> Cow<'_, Stroke> {
    let f = stroke.form;
    if !matches!(stroke.shape, Shape::Ink(_)) || (f.sx == Scale::ONE && f.sy == Scale::ONE) {
        return Cow::Borrowed(stroke);
    }
    let c = pivot(stroke);
    let (sx, sy) = (f.sx.factor(), f.sy.factor());
    let unit = f64::from(SUBPIXELS);
    let limit = f64::from(COORD_LIMIT);
    let to_units = |v: f64| (v * unit).round().clamp(-limit, limit) as i32;
    let mut out = stroke.clone();
    for p in &mut out.points {
        let (x, y) = (c.x + sx * (p.x_px() - c.x), c.y + sy * (p.y_px() - c.y));
        if let Ok(q) = Point::new(to_units(x), to_units(y), p.pressure()) {
            *p = q;
        }
    }
    Cow::Owned(out)
}

/// The offset of a stroke in world pixels.
pub fn offset_px(stroke: &Stroke) -> (f64, f64) {
    (
        f64::from(stroke.offset.0) / f64::from(SUBPIXELS),
        f64::from(stroke.offset.1) / f64::from(SUBPIXELS),
    )
}

/// Where a stroke draws a point it was drawn with: its form, then its offset.
pub fn placement(stroke: &Stroke) -> Affine {
    let (dx, dy) = offset_px(stroke);
    form_matrix(stroke).then_translate(dx, dy)
}

/// The rectangle a stroke's shape spans, its ink's width left out (offset applied): a line's
/// ends, a rectangle's corners, a text's or an image's box. What the resize handles frame, so
/// that a stretch takes the shape's corner exactly where the pointer takes the handle.
pub fn shape_bounds(stroke: &Stroke) -> Rect {
    let (dx, dy) = offset_px(stroke);
    let drawn = stretched(stroke);
    let local = local_bounds(&drawn).inflate(-ink_reach(&drawn));
    form_matrix(stroke).map_rect(local).translate(dx, dy)
}
