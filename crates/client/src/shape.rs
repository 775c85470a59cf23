//! Renderer-independent stroke geometry: every stroke becomes one SVG path string and a paint.
//!
//! The canvas renderer turns the string into a `Path2D` once per stroke (one call into the
//! browser instead of one per vertex) and the SVG export writes the same string, so both show
//! exactly the same ink. Paths are in world pixels where the stroke was drawn; a stroke's
//! offset (from Move) is applied as a translation by whoever draws it.

use std::fmt::Write as _;

use kokuban_board::{Shape, Stroke};
use kokuban_protocol::{Align, Dash, Fill, Tool};

use crate::geom::{Pt, Rect};

/// A pen's outline at full pressure is this many times its nominal width.
pub const MAX_PRESSURE_SCALE: f64 = 1.6;
/// Highlighter ink is translucent, so text under it stays readable.
pub const HIGHLIGHTER_ALPHA: f64 = 0.35;
/// Line height of text items, as a multiple of the font size.
pub const TEXT_LINE_HEIGHT: f64 = 1.25;
/// Average advance of a character, as a multiple of the font size. Only used to estimate a
/// text item's box (hit-testing, bounds); the glyphs themselves come from the browser.
const TEXT_ADVANCE: f64 = 0.6;
/// The font every client and the SVG export use for text items.
pub const TEXT_FONT_FAMILY: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/// How a path is painted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Paint {
    /// Filled (nonzero rule): the pen's pressure-shaped outline.
    Fill,
    /// Stroked with round caps and joins, this wide (world pixels).
    Stroke {
        /// Line width.
        width: f64,
    },
}

/// One stroke, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct StrokeGeometry {
    /// SVG path data in world pixels (offset not applied).
    pub d: String,
    /// Fill or stroke.
    pub paint: Paint,
    /// Opacity multiplied into the stroke's colour (the item's opacity included).
    pub alpha: f64,
    /// Dash and gap lengths of a stroked line (`None`: continuous).
    pub dash: Option<(f64, f64)>,
    /// Opacity of the fill inside a closed shape, before `alpha` (`None`: not filled).
    pub fill: Option<f64>,
    /// The hachure inside a closed shape: its lines as SVG path data, stroked this wide.
    pub hatch: Option<(String, f64)>,
}

/// How opaque a tinted fill is, before the item's own opacity.
pub const TINT_ALPHA: f64 = 0.22;

/// The dash and gap lengths of `dash` for a line `w` wide (`None` for a continuous line). A
/// dot is a zero-length dash, drawn round by the round caps every line has.
pub fn dash_pattern(dash: Dash, w: f64) -> Option<(f64, f64)> {
    match dash {
        Dash::Solid => None,
        Dash::Dashed => Some((w * 2.5 + 6.0, w * 1.5 + 6.0)),
        Dash::Dotted => Some((0.0, w * 2.0 + 2.0)),
    }
}

/// Where the lines of a text item `width` wide are anchored, from its left edge, and which
/// side of them the anchor is.
pub fn text_anchor(align: Align, width: f64) -> f64 {
    match align {
        Align::Left => 0.0,
        Align::Center => width / 2.0,
        Align::Right => width,
    }
}

/// The radius of a pen stroke of nominal width `w` at `pressure` (0..=1). At the neutral
/// pressure 0.5 (what a mouse reports) the stroke is exactly `w` wide.
pub fn pen_radius(w: f64, pressure: f64) -> f64 {
    w / 2.0 * (0.4 + 1.2 * pressure.clamp(0.0, 1.0))
}

/// Length of an arrow's head for a shaft of width `w`.
pub fn arrow_head_length(w: f64) -> f64 {
    (w * 4.0).max(12.0)
}

/// The geometry of an ink stroke; `None` for text (drawn as glyphs, see [`text_lines`]).
pub fn geometry(stroke: &Stroke) -> Option<StrokeGeometry> {
    let Shape::Ink(tool) = &stroke.shape else {
        return None;
    };
    let w = stroke.width.px();
    let pts: Vec<(Pt, f64)> = stroke
        .points
        .iter()
        .map(|p| (Pt::of(*p), p.pressure_unit()))
        .collect();
    let a = pts[0].0;
    let b = pts[pts.len() - 1].0;
    let look = stroke.look;
    let opacity = look.opacity.unit();
    let stroked = |d| StrokeGeometry {
        d,
        paint: Paint::Stroke { width: w },
        alpha: opacity,
        dash: dash_pattern(look.dash, w),
        fill: None,
        hatch: None,
    };
    let filled = |d, ellipse: bool| StrokeGeometry {
        fill: match look.fill {
            Fill::None | Fill::Hachure => None,
            Fill::Tint => Some(TINT_ALPHA),
            Fill::Solid => Some(1.0),
        },
        hatch: (look.fill == Fill::Hachure)
            .then(|| (hatch_path(a, b, ellipse, hatch_gap(w)), (w / 2.0).max(1.0))),
        ..stroked(d)
    };
    Some(match tool {
        Tool::Pen => StrokeGeometry {
            d: pen_outline(&pts, w),
            paint: Paint::Fill,
            alpha: opacity,
            dash: None,
            fill: None,
            hatch: None,
        },
        Tool::Highlighter => {
            let centre: Vec<Pt> = pts.iter().map(|p| p.0).collect();
            StrokeGeometry {
                alpha: HIGHLIGHTER_ALPHA * opacity,
                dash: None,
                ..stroked(smooth_polyline(&centre))
            }
        }
        Tool::Line => stroked(line_path(a, b)),
        Tool::Arrow => stroked(arrow_path(a, b, w)),
        Tool::Rect => filled(rect_path(a, b), false),
        Tool::Ellipse => filled(ellipse_path(a, b), true),
    })
}

/// Where the baseline of line `i` of a text item lies below its top, for font size `size`.
/// Canvas and SVG both place text by its alphabetic baseline, so they agree.
pub fn text_baseline(i: usize, size: f64) -> f64 {
    size * (1.0 + i as f64 * TEXT_LINE_HEIGHT)
}

/// The lines of a text item.
pub fn text_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
}

/// Estimated `(width, height)` of a text item at font size `size`.
pub fn text_box(text: &str, size: f64) -> (f64, f64) {
    let lines = text_lines(text).count().max(1) as f64;
    let widest = text_lines(text)
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    (
        widest * size * TEXT_ADVANCE,
        lines * size * TEXT_LINE_HEIGHT,
    )
}

/// The pressure-shaped outline of a pen stroke: the centre line offset by each point's radius
/// on both sides, smoothed with quadratic curves through the midpoints, closed by round caps.
fn pen_outline(pts: &[(Pt, f64)], w: f64) -> String {
    let mut d = String::with_capacity(pts.len() * 24);
    let far = pts.iter().any(|(p, _)| p.dist(pts[0].0) > 0.25);
    if !far {
        // A tap: a dot.
        let (c, pressure) = pts[0];
        let r = pen_radius(w, pressure);
        circle(&mut d, c, r);
        return d;
    }
    let n = pts.len();
    let mut left = Vec::with_capacity(n);
    let mut right = Vec::with_capacity(n);
    let mut tangent = (1.0, 0.0);
    for i in 0..n {
        let prev = pts[i.saturating_sub(1)].0;
        let next = pts[(i + 1).min(n - 1)].0;
        let (tx, ty) = (next.x - prev.x, next.y - prev.y);
        let len = tx.hypot(ty);
        if len > 1e-9 {
            tangent = (tx / len, ty / len);
        }
        let (p, pressure) = pts[i];
        let r = pen_radius(w, pressure);
        let normal = (-tangent.1 * r, tangent.0 * r);
        left.push(Pt::new(p.x + normal.0, p.y + normal.1));
        right.push(Pt::new(p.x - normal.0, p.y - normal.1));
    }
    let r_end = pen_radius(w, pts[n - 1].1);
    let r_start = pen_radius(w, pts[0].1);
    d.push('M');
    pair(&mut d, left[0]);
    smooth_through(&mut d, &left);
    // Round cap around the end, from the left side to the right side.
    arc(&mut d, r_end, right[n - 1]);
    right.reverse();
    smooth_through(&mut d, &right);
    arc(&mut d, r_start, left[0]);
    d.push('Z');
    d
}

/// Appends quadratic segments through the midpoints of `pts` (the current point is `pts[0]`),
/// ending exactly at the last point.
fn smooth_through(d: &mut String, pts: &[Pt]) {
    let n = pts.len();
    for i in 1..n.saturating_sub(1) {
        d.push('Q');
        pair(d, pts[i]);
        d.push(' ');
        pair(d, pts[i].lerp(pts[i + 1], 0.5));
    }
    if n > 1 {
        d.push('L');
        pair(d, pts[n - 1]);
    }
}

/// A smoothed open polyline (highlighter centre line).
fn smooth_polyline(pts: &[Pt]) -> String {
    let mut d = String::with_capacity(pts.len() * 14);
    d.push('M');
    pair(&mut d, pts[0]);
    if pts.len() == 1 {
        // A zero-length segment with round caps draws a dot.
        d.push('L');
        pair(&mut d, pts[0]);
    } else {
        smooth_through(&mut d, pts);
    }
    d
}

fn line_path(a: Pt, b: Pt) -> String {
    let mut d = String::new();
    d.push('M');
    pair(&mut d, a);
    d.push('L');
    pair(&mut d, b);
    d
}

fn arrow_path(a: Pt, b: Pt, w: f64) -> String {
    let mut d = line_path(a, b);
    let len = a.dist(b);
    if len < 1e-9 {
        return d;
    }
    // The head never grows longer than half the shaft, so short arrows stay arrows.
    let head = arrow_head_length(w).min(len / 2.0);
    let (ux, uy) = ((b.x - a.x) / len, (b.y - a.y) / len);
    let spread = 0.45f64; // about 26 degrees either side of the shaft
    let (s, c) = spread.sin_cos();
    let wing = |sign: f64| {
        let (rx, ry) = (ux * c - uy * s * sign, uy * c + ux * s * sign);
        Pt::new(b.x - rx * head, b.y - ry * head)
    };
    d.push('M');
    pair(&mut d, wing(1.0));
    d.push('L');
    pair(&mut d, b);
    d.push('L');
    pair(&mut d, wing(-1.0));
    d
}

/// The distance between hachure lines for an outline `w` wide.
pub fn hatch_gap(w: f64) -> f64 {
    (w * 3.0).max(8.0)
}

/// Diagonal lines (rising to the right) `gap` apart across the rectangle spanned by `a` and
/// `b`, or across the ellipse inscribed in it, each cut where it leaves the shape.
fn hatch_path(a: Pt, b: Pt, ellipse: bool, gap: f64) -> String {
    let r = Rect::spanning(a, b);
    let mut d = String::new();
    if r.width() <= 0.0 || r.height() <= 0.0 {
        return d;
    }
    // Lines x + y = c, one every `gap` measured across them.
    let step = gap * std::f64::consts::SQRT_2;
    let (c0, c1) = (r.x0 + r.y0, r.x1 + r.y1);
    let mut c = c0 + step / 2.0;
    while c < c1 {
        let span = if ellipse {
            ellipse_chord(r, c)
        } else {
            let (lo, hi) = ((c - r.y1).max(r.x0), (c - r.y0).min(r.x1));
            (lo < hi).then_some((lo, hi))
        };
        if let Some((lo, hi)) = span {
            d.push('M');
            pair(&mut d, Pt::new(lo, c - lo));
            d.push('L');
            pair(&mut d, Pt::new(hi, c - hi));
        }
        c += step;
    }
    d
}

/// Where the line x + y = c crosses the ellipse inscribed in `r`: the x of both ends.
fn ellipse_chord(r: Rect, c: f64) -> Option<(f64, f64)> {
    let (cx, cy) = ((r.x0 + r.x1) / 2.0, (r.y0 + r.y1) / 2.0);
    let (rx2, ry2) = ((r.width() / 2.0).powi(2), (r.height() / 2.0).powi(2));
    // ((x - cx)² / rx²) + ((c - x - cy)² / ry²) = 1, as A x² + B x + C = 0.
    let k = c - cy;
    let qa = 1.0 / rx2 + 1.0 / ry2;
    let qb = -2.0 * (cx / rx2 + k / ry2);
    let qc = cx * cx / rx2 + k * k / ry2 - 1.0;
    let disc = qb * qb - 4.0 * qa * qc;
    if disc <= 0.0 {
        return None;
    }
    let root = disc.sqrt();
    Some(((-qb - root) / (2.0 * qa), (-qb + root) / (2.0 * qa)))
}

fn rect_path(a: Pt, b: Pt) -> String {
    let r = Rect::spanning(a, b);
    let mut d = String::new();
    d.push('M');
    pair(&mut d, Pt::new(r.x0, r.y0));
    d.push('H');
    num(&mut d, r.x1);
    d.push('V');
    num(&mut d, r.y1);
    d.push('H');
    num(&mut d, r.x0);
    d.push('Z');
    d
}

fn ellipse_path(a: Pt, b: Pt) -> String {
    let r = Rect::spanning(a, b);
    let (c, rx, ry) = (r.center(), r.width() / 2.0, r.height() / 2.0);
    let mut d = String::new();
    d.push('M');
    pair(&mut d, Pt::new(c.x - rx, c.y));
    for end in [Pt::new(c.x + rx, c.y), Pt::new(c.x - rx, c.y)] {
        d.push('A');
        num(&mut d, rx);
        d.push(' ');
        num(&mut d, ry);
        d.push_str(" 0 1 0 ");
        pair(&mut d, end);
    }
    d.push('Z');
    d
}

fn circle(d: &mut String, c: Pt, r: f64) {
    d.push('M');
    pair(d, Pt::new(c.x - r, c.y));
    for end in [Pt::new(c.x + r, c.y), Pt::new(c.x - r, c.y)] {
        d.push('A');
        num(d, r);
        d.push(' ');
        num(d, r);
        d.push_str(" 0 1 0 ");
        pair(d, end);
    }
    d.push('Z');
}

fn arc(d: &mut String, r: f64, to: Pt) {
    d.push('A');
    num(d, r);
    d.push(' ');
    num(d, r);
    d.push_str(" 0 0 0 ");
    pair(d, to);
}

fn pair(d: &mut String, p: Pt) {
    num(d, p.x);
    d.push(' ');
    num(d, p.y);
}

/// Writes `v` with at most two decimals and no trailing zeros. Hand-rolled: float formatting
/// from `core::fmt` would add kilobytes to the browser build for no visible gain.
pub fn num(d: &mut String, v: f64) {
    let hundredths = (v * 100.0).round();
    // World coordinates are bounded (±16.7M px); anything else is a bug, drawn at 0.
    let h = if hundredths.is_finite() && hundredths.abs() < 9.0e15 {
        hundredths as i64
    } else {
        0
    };
    if h < 0 {
        d.push('-');
    }
    let h = h.unsigned_abs();
    let _ = write!(d, "{}", h / 100);
    let frac = h % 100;
    if frac != 0 {
        d.push('.');
        d.push(char::from(b'0' + (frac / 10) as u8));
        if frac % 10 != 0 {
            d.push(char::from(b'0' + (frac % 10) as u8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::stroke;

    fn s(v: f64) -> String {
        let mut d = String::new();
        num(&mut d, v);
        d
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(s(0.0), "0");
        assert_eq!(s(12.5), "12.5");
        assert_eq!(s(-3.125), "-3.13");
        assert_eq!(s(-0.004), "0");
        assert_eq!(s(-0.05), "-0.05");
        assert_eq!(s(7.10), "7.1");
        assert_eq!(s(f64::NAN), "0");
    }

    #[test]
    fn hachure_lines_stay_inside_their_shape() {
        let ends = |d: &str| -> Vec<(f64, f64)> {
            d.split(['M', 'L'])
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let mut xy = p.split(' ').map(|v| v.parse::<f64>().unwrap());
                    (xy.next().unwrap(), xy.next().unwrap())
                })
                .collect()
        };
        let (a, b) = (Pt::new(0.0, 0.0), Pt::new(100.0, 50.0));
        let rect = hatch_path(a, b, false, 10.0);
        let corners = ends(&rect);
        // One line every 10 px across the diagonal span (150 / √2 / 10 ≈ 10.6).
        assert_eq!(corners.len() / 2, 11, "{rect}");
        assert!(
            corners
                .iter()
                .all(|&(x, y)| (-0.01..=100.01).contains(&x) && (-0.01..=50.01).contains(&y))
        );
        let oval = hatch_path(a, b, true, 10.0);
        for (x, y) in ends(&oval) {
            let e = ((x - 50.0) / 50.0).powi(2) + ((y - 25.0) / 25.0).powi(2);
            assert!((e - 1.0).abs() < 0.01, "({x}, {y}) on the ellipse: {e}");
        }
        assert!(ends(&oval).len() < corners.len());
        assert_eq!(hatch_path(a, Pt::new(0.0, 50.0), false, 10.0), "");
    }

    #[test]
    fn pen_width_follows_pressure() {
        assert_eq!(pen_radius(4.0, 0.5), 2.0);
        assert!(pen_radius(4.0, 1.0) > pen_radius(4.0, 0.2));
        assert_eq!(pen_radius(4.0, 1.0), 4.0 * MAX_PRESSURE_SCALE / 2.0);
    }

    #[test]
    fn pen_is_a_filled_closed_outline_and_a_tap_is_a_dot() {
        let g = geometry(&stroke(
            Tool::Pen,
            &[(0.0, 0.0, 0.5), (10.0, 0.0, 0.5), (20.0, 5.0, 1.0)],
        ))
        .unwrap();
        assert_eq!(g.paint, Paint::Fill);
        assert!(g.d.starts_with("M0 2Q") && g.d.ends_with('Z'), "{}", g.d);
        // The end cap arcs from the left side to the right side of the last point.
        assert_eq!(g.d.matches('A').count(), 2);
        let dot = geometry(&stroke(Tool::Pen, &[(5.0, 5.0, 0.5)])).unwrap();
        assert_eq!(dot.d, "M3 5A2 2 0 1 0 7 5A2 2 0 1 0 3 5Z");
    }

    #[test]
    fn highlighter_is_a_translucent_stroked_centre_line() {
        let g = geometry(&stroke(
            Tool::Highlighter,
            &[(0.0, 0.0, 0.5), (10.0, 0.0, 0.5), (20.0, 0.0, 0.5)],
        ))
        .unwrap();
        assert_eq!(g.paint, Paint::Stroke { width: 4.0 });
        assert_eq!(g.alpha, HIGHLIGHTER_ALPHA);
        assert_eq!(g.d, "M0 0Q10 0 15 0L20 0");
    }

    #[test]
    fn shapes_use_their_first_and_last_points() {
        let pts = [(0.0, 0.0, 0.5), (99.0, 99.0, 0.5), (10.0, 20.0, 0.5)];
        let d = |tool| geometry(&stroke(tool, &pts)).unwrap().d;
        assert_eq!(d(Tool::Line), "M0 0L10 20");
        assert_eq!(d(Tool::Rect), "M0 0H10V20H0Z");
        assert_eq!(d(Tool::Ellipse), "M0 10A5 10 0 1 0 10 10A5 10 0 1 0 0 10Z");
        let arrow = d(Tool::Arrow);
        assert!(arrow.starts_with("M0 0L10 20M"), "{arrow}");
        assert_eq!(arrow.matches("L10 20").count(), 2);
    }

    #[test]
    fn text_box_grows_with_lines_and_length() {
        let (w1, h1) = text_box("ab", 20.0);
        let (w2, h2) = text_box("abcd\nx", 20.0);
        assert!(w2 > w1 && h2 > h1);
        assert!(
            geometry(&{
                let mut t = stroke(Tool::Pen, &[(0.0, 0.0, 0.5)]);
                t.shape = Shape::Text(kokuban_protocol::Text::new("hi").unwrap());
                t
            })
            .is_none()
        );
    }
}
