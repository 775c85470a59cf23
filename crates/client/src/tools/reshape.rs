//! Resizing and turning the selection by its handles: eight on its frame to stretch it (the
//! corners both ways, the edges one way; Shift keeps its proportions) and one above its top
//! edge to turn it (Shift: in 15° steps). The items keep their points: each gets a form (see
//! `Op::Form`) and an offset that carries its centre along as the frame is stretched about the
//! opposite handle or turned about its centre. A multi-selection is stretched and turned
//! together; an item turned by other than a right angle is stretched along its own axes, the
//! nearer ones to the frame's, as a form cannot shear.

use kokuban_board::{Board, Stroke};
use kokuban_protocol::{Form, FormOf, Op, Placement, Scale, StrokeId};

use super::{Gesture, ToolInput, ToolKind, Tools, units};
use crate::geom::{Pt, Rect, offset_px, pivot, shape_bounds};
use crate::history::{Action, Dress, Restyling, chunks};

/// How far above the frame's top edge the turn handle sits, in screen pixels.
pub const TURN_HANDLE_PX: f64 = 24.0;
/// How near the pointer must come to a handle to take it, in screen pixels.
pub const HANDLE_REACH_PX: f64 = 9.0;
/// The same for a finger, which covers more than it shows (a 40 px target about the handle).
pub const HANDLE_REACH_TOUCH_PX: f64 = 20.0;
/// The steps of a turn with Shift held.
const TURN_STEP: f64 = std::f64::consts::PI / 12.0;

/// A handle of the selection's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handle {
    /// A corner or the middle of an edge: `-1` left or top, `1` right or bottom, `0` the
    /// middle (never both).
    Stretch(i8, i8),
    /// Above the top edge.
    Turn,
}

/// A reshape in progress: the frame and the items as they were when it began.
#[derive(Debug, Clone)]
pub(super) struct Reshape {
    handle: Handle,
    start: Pt,
    frame: Rect,
    originals: Vec<(StrokeId, Dress, Pt)>,
    now: Vec<(StrokeId, Dress)>,
}

impl Tools {
    /// The selection's handles and where they are (world pixels), when the select tool shows
    /// them: nothing while another gesture is under way or nothing is selected.
    pub fn handles(&self, board: &Board, zoom: f64) -> Vec<(Handle, Pt)> {
        let reshaping = matches!(self.gesture, Gesture::Reshape(_));
        if self.kind != ToolKind::Select || (self.is_active() && !reshaping) {
            return Vec::new();
        }
        let Some(frame) = frame_of(board, &self.selection) else {
            return Vec::new();
        };
        let at = |hx: i8, hy: i8| {
            let along = |lo: f64, hi: f64, h: i8| lo + (hi - lo) * (f64::from(h) + 1.0) / 2.0;
            Pt::new(along(frame.x0, frame.x1, hx), along(frame.y0, frame.y1, hy))
        };
        let mut handles: Vec<(Handle, Pt)> = [
            (-1, -1),
            (0, -1),
            (1, -1),
            (1, 0),
            (1, 1),
            (0, 1),
            (-1, 1),
            (-1, 0),
        ]
        .into_iter()
        .map(|(hx, hy)| (Handle::Stretch(hx, hy), at(hx, hy)))
        .collect();
        let top = at(0, -1);
        handles.push((
            Handle::Turn,
            Pt::new(top.x, top.y - TURN_HANDLE_PX / zoom.max(1e-6)),
        ));
        handles
    }

    /// Starts a reshape if `input` takes one of the selection's handles.
    pub(super) fn take_handle(&mut self, input: &ToolInput, board: &Board, zoom: f64) -> bool {
        let reach = match input.device {
            crate::smooth::Device::Touch => HANDLE_REACH_TOUCH_PX,
            _ => HANDLE_REACH_PX,
        } / zoom.max(1e-6);
        let Some((handle, _)) = self
            .handles(board, zoom)
            .into_iter()
            .filter(|(_, at)| at.dist(input.at) <= reach)
            .min_by(|a, b| a.1.dist(input.at).total_cmp(&b.1.dist(input.at)))
        else {
            return false;
        };
        let Some(frame) = frame_of(board, &self.selection) else {
            return false;
        };
        let originals: Vec<(StrokeId, Dress, Pt)> = self
            .selection
            .iter()
            .filter_map(|id| board.get(id))
            .filter(|s| s.finished && !s.erased)
            .map(|s| (s.id, Dress::of(s), centre(s)))
            .collect();
        let now = originals.iter().map(|(id, d, _)| (*id, *d)).collect();
        self.gesture = Gesture::Reshape(Reshape {
            handle,
            start: input.at,
            frame,
            originals,
            now,
        });
        true
    }
}

impl Reshape {
    /// The pointer is at `at`: the ops that bring the items to where this puts them.
    pub(super) fn moved(&mut self, at: Pt, shift: bool) -> Vec<Op> {
        let map = self.map(at, shift);
        let next: Vec<(StrokeId, Dress)> = self
            .originals
            .iter()
            .map(|(id, dress, centre)| (*id, map.dress(*dress, *centre)))
            .collect();
        let (mut forms, mut moves) = (Vec::new(), Vec::new());
        for ((id, new), (_, old)) in next.iter().zip(&self.now) {
            if new.form != old.form {
                forms.push(FormOf {
                    id: *id,
                    form: new.form,
                });
            }
            if new.offset != old.offset
                && let Ok(p) = Placement::new(*id, new.offset.0, new.offset.1)
            {
                moves.push(p);
            }
        }
        self.now = next;
        let mut ops = chunks(forms, |to| Op::Form { to });
        ops.extend(chunks(moves, |to| Op::Move { to }));
        ops
    }

    /// The step undo takes back (none if nothing changed).
    pub(super) fn finish(self) -> Option<Action> {
        let changes: Vec<Restyling> = self
            .originals
            .iter()
            .zip(&self.now)
            .filter(|((_, from, _), (_, to))| from != to)
            .map(|((id, from, _), (_, to))| Restyling {
                id: *id,
                from: *from,
                to: *to,
            })
            .collect();
        (!changes.is_empty()).then_some(Action::Restyled(changes))
    }

    /// The ops that put everything back (a cancelled gesture).
    pub(super) fn cancel(self) -> Vec<Op> {
        let forms = self
            .originals
            .iter()
            .map(|(id, d, _)| FormOf {
                id: *id,
                form: d.form,
            })
            .collect();
        let moves = self
            .originals
            .iter()
            .filter_map(|(id, d, _)| Placement::new(*id, d.offset.0, d.offset.1).ok())
            .collect();
        let mut ops: Vec<Op> = chunks(forms, |to| Op::Form { to });
        ops.extend(chunks(moves, |to| Op::Move { to }));
        ops
    }

    fn map(&self, at: Pt, shift: bool) -> FrameMap {
        let f = self.frame;
        match self.handle {
            Handle::Turn => {
                let c = f.center();
                let angle = |p: Pt| (p.y - c.y).atan2(p.x - c.x);
                let mut turn = angle(at) - angle(self.start);
                if shift {
                    turn = (turn / TURN_STEP).round() * TURN_STEP;
                }
                FrameMap::Turn { about: c, turn }
            }
            Handle::Stretch(hx, hy) => {
                // The opposite handle stays put; the taken one follows the pointer.
                let side = |lo: f64, hi: f64, h: i8| match h {
                    -1 => (hi, lo),
                    1 => (lo, hi),
                    _ => ((lo + hi) / 2.0, (lo + hi) / 2.0),
                };
                let (ax, hx_at) = side(f.x0, f.x1, hx);
                let (ay, hy_at) = side(f.y0, f.y1, hy);
                let (dx, dy) = (at.x - self.start.x, at.y - self.start.y);
                let factor = |anchor: f64, handle: f64, d: f64, h: i8| {
                    let span = handle - anchor;
                    if h == 0 || span.abs() < 1e-6 {
                        1.0
                    } else {
                        (span + d) / span
                    }
                };
                let (mut gx, mut gy) = (factor(ax, hx_at, dx, hx), factor(ay, hy_at, dy, hy));
                if shift {
                    // Proportions kept: the larger stretch both ways (an edge's for both).
                    let g = match (hx, hy) {
                        (0, _) => gy.abs(),
                        (_, 0) => gx.abs(),
                        _ => gx.abs().max(gy.abs()),
                    };
                    gx = g * if hx != 0 { gx.signum() } else { 1.0 };
                    gy = g * if hy != 0 { gy.signum() } else { 1.0 };
                }
                FrameMap::Stretch {
                    anchor: Pt::new(ax, ay),
                    gx,
                    gy,
                }
            }
        }
    }
}

/// What a reshape does to the frame.
enum FrameMap {
    Stretch { anchor: Pt, gx: f64, gy: f64 },
    Turn { about: Pt, turn: f64 },
}

impl FrameMap {
    /// An item's dress once its centre (world pixels, `centre`) goes where the frame takes it.
    fn dress(&self, from: Dress, centre: Pt) -> Dress {
        let (to, form) = match *self {
            FrameMap::Stretch { anchor, gx, gy } => {
                let to = Pt::new(
                    anchor.x + gx * (centre.x - anchor.x),
                    anchor.y + gy * (centre.y - anchor.y),
                );
                // Along the item's own axes: the frame's, or swapped when it is turned
                // nearer a quarter than not.
                let (sin, cos) = from.form.radians().sin_cos();
                let (fx, fy) = if cos.abs() >= sin.abs() {
                    (gx, gy)
                } else {
                    (gy, gx)
                };
                let form = Form {
                    sx: Scale::from_factor(from.form.sx.factor() * fx),
                    sy: Scale::from_factor(from.form.sy.factor() * fy),
                    turn: from.form.turn,
                };
                (to, form)
            }
            FrameMap::Turn { about, turn } => {
                let (sin, cos) = turn.sin_cos();
                let (x, y) = (centre.x - about.x, centre.y - about.y);
                let to = Pt::new(about.x + cos * x - sin * y, about.y + sin * x + cos * y);
                let form = Form {
                    turn: Form::turn_of(from.form.radians() + turn),
                    ..from.form
                };
                (to, form)
            }
        };
        Dress {
            form,
            offset: (
                from.offset.0 + units(to.x - centre.x),
                from.offset.1 + units(to.y - centre.y),
            ),
            ..from
        }
    }
}

/// Where an item's centre is (its pivot, which its form keeps in place, moved by its offset).
fn centre(s: &Stroke) -> Pt {
    let (dx, dy) = offset_px(s);
    pivot(s).translate(dx, dy)
}

/// The frame around the shapes of the visible items of `ids` (their ink's width left out).
fn frame_of(board: &Board, ids: &[StrokeId]) -> Option<Rect> {
    let r = ids
        .iter()
        .filter_map(|id| board.get(id))
        .filter(|s| !s.erased)
        .map(shape_bounds)
        .fold(Rect::EMPTY, Rect::union);
    (!r.is_empty()).then_some(r)
}
