//! Shapes: a line, an arrow, a rectangle or an ellipse drawn from where the pointer went down
//! to where it is, begun once it has moved far enough and constrained while Shift is held.

use kokuban_protocol::limits::MAX_POINTS_PER_STROKE;
use kokuban_protocol::{Op, Point, Tool};

use super::{Gesture, Output, ToolInput, Tools, dressed, points_op};
use crate::geom::Pt;
use crate::rng::{Entropy, new_stroke_id};

/// A shape is begun only once the pointer has moved this far (screen pixels), so that a
/// stray click draws nothing.
const SHAPE_THRESHOLD: f64 = 3.0;

impl Tools {
    pub(super) fn shape_point(
        &mut self,
        input: ToolInput,
        zoom: f64,
        rng: &mut dyn Entropy,
        out: &mut Output,
    ) {
        let Gesture::Shape {
            tool,
            id,
            start,
            last,
            count,
        } = &mut self.gesture
        else {
            return;
        };
        let target = constrain(*tool, *start, input.at, input.shift);
        if id.is_none() {
            if start.dist(input.at) * zoom < SHAPE_THRESHOLD {
                return;
            }
            let Ok(first) = Point::from_px(start.x, start.y, 0.5) else {
                return;
            };
            let new = new_stroke_id(rng);
            out.ops.push(Op::StrokeBegin {
                id: new,
                tool: *tool,
                color: self.ink,
                width: self.size.pen(),
                first,
            });
            out.ops.extend(dressed(new, self.look));
            *id = Some(new);
            *count = 1;
        }
        if (target.dist(*last) * zoom < 1.0 && *count > 1) || *count >= MAX_POINTS_PER_STROKE {
            return;
        }
        let (Some(id), Ok(p)) = (*id, Point::from_px(target.x, target.y, 0.5)) else {
            return;
        };
        out.ops.push(points_op(id, *count, vec![p]));
        *count += 1;
        *last = target;
    }
}

/// With Shift: lines snap to 15° steps, rectangles and ellipses become squares and circles.
pub(super) fn constrain(tool: Tool, start: Pt, at: Pt, shift: bool) -> Pt {
    if !shift {
        return at;
    }
    let (dx, dy) = (at.x - start.x, at.y - start.y);
    match tool {
        Tool::Line | Tool::Arrow => {
            let step = std::f64::consts::PI / 12.0;
            let angle = (dy.atan2(dx) / step).round() * step;
            let len = dx.hypot(dy);
            Pt::new(start.x + len * angle.cos(), start.y + len * angle.sin())
        }
        _ => {
            let side = dx.abs().max(dy.abs());
            Pt::new(start.x + side * dx.signum(), start.y + side * dy.signum())
        }
    }
}
