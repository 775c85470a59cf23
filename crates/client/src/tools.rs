//! The drawing tools: a state machine from pointer input to protocol ops.
//!
//! A tool sees world-space input and the board the user sees, and answers with the ops to
//! apply (locally at once, then sent) and, when a gesture completes, the undoable action it
//! was. It never talks to the network or the screen.

use kokuban_board::{Board, Shape};
use kokuban_protocol::limits::{MAX_POINTS_PER_BATCH, MAX_POINTS_PER_STROKE, SUBPIXELS};
use kokuban_protocol::{
    Bounded, Color, Look, LookOf, Op, Placement, Point, Points, StrokeId, StrokePoints, Tool,
};

use crate::geom::{Pt, Rect, hits, reach_area, visual_bounds};
use crate::history::{Action, Move, chunks};
use crate::prefs::Size;
use crate::rng::{Entropy, new_stroke_id};
use crate::smooth::{Device, Profile, Sample, Smoother};
use crate::spatial::IndexedBoard;

/// The eraser's and the picker's reach around the pointer, in screen pixels.
pub const TOUCH_RADIUS: f64 = 8.0;
/// One pointer sample, in world pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolInput {
    /// Where.
    pub at: Pt,
    /// Pressure in `0..=1` (meaningful for a stylus only).
    pub pressure: f64,
    /// What drew it.
    pub device: Device,
    /// When (ms).
    pub time_ms: f64,
    /// Shift held: constrain shapes (squares, circles, 15° lines), add to the selection.
    pub shift: bool,
}

impl ToolInput {
    fn sample(&self) -> Sample {
        Sample {
            at: self.at,
            pressure: self.pressure,
            time_ms: self.time_ms,
        }
    }
}

/// Where the app should open a text editor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TextTarget {
    /// A new text item at this world point.
    New(Pt),
    /// This existing text item.
    Edit(StrokeId),
}

/// What a tool did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    /// Ops to apply and send, in order.
    pub ops: Vec<Op>,
    /// A completed undoable action.
    pub action: Option<Action>,
    /// The text tool was clicked: the app should open a text editor.
    pub text: Option<TextTarget>,
}

#[derive(Debug, Clone)]
enum Gesture {
    Idle,
    Freehand {
        tool: Tool,
        color: Color,
        width: kokuban_protocol::Width,
        id: StrokeId,
        smoother: Smoother,
        count: u32,
        ids: Vec<StrokeId>,
        last: Point,
    },
    Shape {
        tool: Tool,
        id: Option<StrokeId>,
        start: Pt,
        last: Pt,
        count: u32,
    },
    Erase {
        last: Pt,
        erased: Vec<StrokeId>,
    },
    Marquee {
        start: Pt,
        now: Pt,
    },
    Drag {
        start: Pt,
        originals: Vec<(StrokeId, (i32, i32))>,
        delta: (i32, i32),
    },
    /// The selection stretched or turned by a handle.
    Reshape(reshape::Reshape),
}

/// The current tool, its style, the gesture in progress and the selection.
#[derive(Debug, Clone)]
pub struct Tools {
    kind: ToolKind,
    /// Ink colour.
    pub ink: Color,
    /// Stroke size.
    pub size: Size,
    /// The look new items get.
    pub look: Look,
    gesture: Gesture,
    selection: Vec<StrokeId>,
}

impl Tools {
    /// The tool `kind`, with `ink`, `size` and `look` for new items.
    pub fn new(kind: ToolKind, ink: Color, size: Size, look: Look) -> Self {
        Self {
            kind,
            ink,
            size,
            look,
            gesture: Gesture::Idle,
            selection: Vec::new(),
        }
    }

    /// The selected tool.
    pub fn kind(&self) -> ToolKind {
        self.kind
    }

    /// Selects a tool (ignored in the middle of a gesture). Leaving Select clears the
    /// selection.
    pub fn set_kind(&mut self, kind: ToolKind) {
        if self.is_active() {
            return;
        }
        if kind != ToolKind::Select {
            self.selection.clear();
        }
        self.kind = kind;
    }

    /// Whether a gesture is in progress.
    pub fn is_active(&self) -> bool {
        !matches!(self.gesture, Gesture::Idle)
    }

    /// The id of the stroke being drawn, if any.
    pub fn drawing(&self) -> Option<StrokeId> {
        match &self.gesture {
            Gesture::Freehand { id, .. } => Some(*id),
            Gesture::Shape { id, .. } => *id,
            _ => None,
        }
    }

    /// The selected strokes.
    pub fn selection(&self) -> &[StrokeId] {
        &self.selection
    }

    /// Forgets selected strokes that are no longer visible.
    pub fn prune_selection(&mut self, board: &Board) {
        self.selection
            .retain(|id| board.get(id).is_some_and(|s| !s.erased));
    }

    /// Selects everything (Ctrl+A).
    pub fn select_all(&mut self, board: &Board) {
        self.kind = ToolKind::Select;
        self.selection = board.strokes().map(|s| s.id).collect();
    }

    /// Clears the selection (Escape).
    pub fn clear_selection(&mut self) {
        self.selection.clear();
    }

    /// The selection rectangle being dragged, if any.
    pub fn marquee(&self) -> Option<Rect> {
        match self.gesture {
            Gesture::Marquee { start, now } => Some(Rect::spanning(start, now)),
            _ => None,
        }
    }

    /// A pointer went down.
    pub fn down(
        &mut self,
        input: ToolInput,
        board: &IndexedBoard,
        zoom: f64,
        rng: &mut dyn Entropy,
    ) -> Output {
        let mut out = Output::default();
        if self.is_active() {
            return out;
        }
        match self.kind {
            // The laser is the editor's: it never reaches the tools.
            ToolKind::Hand | ToolKind::Laser => {}
            ToolKind::Pen | ToolKind::Highlighter => {
                let (tool, profile, width) = if self.kind == ToolKind::Pen {
                    (Tool::Pen, Profile::pen(input.device), self.size.pen())
                } else {
                    (
                        Tool::Highlighter,
                        Profile::highlighter(),
                        self.size.highlighter(),
                    )
                };
                let mut smoother = Smoother::new(profile, input.device, zoom);
                let Some((p, pressure)) = smoother.push(input.sample()) else {
                    return out;
                };
                let Ok(first) = Point::from_px(p.x, p.y, pressure) else {
                    return out;
                };
                let id = new_stroke_id(rng);
                out.ops.push(Op::StrokeBegin {
                    id,
                    tool,
                    color: self.ink,
                    width,
                    first,
                });
                out.ops.extend(dressed(id, self.look));
                self.gesture = Gesture::Freehand {
                    tool,
                    color: self.ink,
                    width,
                    id,
                    smoother,
                    count: 1,
                    ids: vec![id],
                    last: first,
                };
            }
            ToolKind::Line | ToolKind::Arrow | ToolKind::Rect | ToolKind::Ellipse => {
                let tool = self.kind.shape().unwrap_or(Tool::Line);
                self.gesture = Gesture::Shape {
                    tool,
                    id: None,
                    start: input.at,
                    last: input.at,
                    count: 0,
                };
            }
            ToolKind::Eraser => {
                self.gesture = Gesture::Erase {
                    last: input.at,
                    erased: Vec::new(),
                };
                self.erase_along(input.at, board, zoom, &mut out);
            }
            ToolKind::Text => {
                out.text = Some(match pick_text(board, input.at, TOUCH_RADIUS / zoom) {
                    Some(id) => TextTarget::Edit(id),
                    None => TextTarget::New(input.at),
                });
            }
            ToolKind::Select => {
                if self.take_handle(&input, board, zoom) {
                    return out;
                }
                let hit = pick(board, input.at, TOUCH_RADIUS / zoom);
                match hit {
                    Some(id) => {
                        if !self.selection.contains(&id) {
                            if !input.shift {
                                self.selection.clear();
                            }
                            self.selection.push(id);
                        }
                        let originals = self
                            .selection
                            .iter()
                            .filter_map(|id| board.get(id).map(|s| (*id, s.offset)))
                            .collect();
                        self.gesture = Gesture::Drag {
                            start: input.at,
                            originals,
                            delta: (0, 0),
                        };
                    }
                    None => {
                        if !input.shift {
                            self.selection.clear();
                        }
                        self.gesture = Gesture::Marquee {
                            start: input.at,
                            now: input.at,
                        };
                    }
                }
            }
        }
        out
    }

    /// The pointer moved (all coalesced samples since the last event, oldest first).
    pub fn moved(
        &mut self,
        inputs: &[ToolInput],
        board: &IndexedBoard,
        zoom: f64,
        rng: &mut dyn Entropy,
    ) -> Output {
        let mut out = Output::default();
        let Some(latest) = inputs.last().copied() else {
            return out;
        };
        match &mut self.gesture {
            Gesture::Idle => {}
            Gesture::Freehand { .. } => {
                for input in inputs {
                    self.freehand_point(input, rng, &mut out);
                }
            }
            Gesture::Shape { .. } => self.shape_point(latest, zoom, rng, &mut out),
            Gesture::Erase { .. } => self.erase_along(latest.at, board, zoom, &mut out),
            Gesture::Marquee { now, .. } => *now = latest.at,
            Gesture::Drag {
                start,
                originals,
                delta,
            } => {
                let d = (units(latest.at.x - start.x), units(latest.at.y - start.y));
                if d != *delta {
                    *delta = d;
                    out.ops.extend(placements(originals, d));
                }
            }
            Gesture::Reshape(r) => out.ops.extend(r.moved(latest.at, latest.shift)),
        }
        out
    }

    /// The pointer went up: the gesture completes.
    pub fn up(
        &mut self,
        input: ToolInput,
        board: &IndexedBoard,
        zoom: f64,
        rng: &mut dyn Entropy,
    ) -> Output {
        let mut out = self.moved(&[input], board, zoom, rng);
        match std::mem::replace(&mut self.gesture, Gesture::Idle) {
            Gesture::Idle => {}
            Gesture::Freehand {
                mut smoother,
                id,
                count,
                ids,
                ..
            } => {
                if let Some((p, pressure)) = smoother.finish(input.sample())
                    && let Ok(point) = Point::from_px(p.x, p.y, pressure)
                    && count < MAX_POINTS_PER_STROKE
                {
                    out.ops.push(points_op(id, count, vec![point]));
                }
                out.ops.push(Op::StrokeEnd { id });
                out.action = Some(Action::Drew(ids));
            }
            Gesture::Shape { id, .. } => {
                if let Some(id) = id {
                    out.ops.push(Op::StrokeEnd { id });
                    out.action = Some(Action::Drew(vec![id]));
                }
            }
            Gesture::Erase { erased, .. } => {
                if !erased.is_empty() {
                    out.action = Some(Action::Erased(erased));
                }
            }
            Gesture::Marquee { start, now } => {
                let r = Rect::spanning(start, now);
                for s in board.strokes_in(r) {
                    if r.contains_rect(&visual_bounds(s)) && !self.selection.contains(&s.id) {
                        self.selection.push(s.id);
                    }
                }
            }
            Gesture::Drag {
                originals, delta, ..
            } => {
                if delta != (0, 0) {
                    out.action = Some(Action::Moved(
                        originals
                            .iter()
                            .map(|&(id, from)| Move {
                                id,
                                from,
                                to: (from.0 + delta.0, from.1 + delta.1),
                            })
                            .collect(),
                    ));
                }
            }
            Gesture::Reshape(r) => out.action = r.finish(),
        }
        out
    }

    /// The gesture was interrupted (a second finger, a cancelled pointer, a lost
    /// connection to the pen): whatever it drew is taken back, nothing enters the history.
    pub fn cancel(&mut self) -> Output {
        let mut out = Output::default();
        match std::mem::replace(&mut self.gesture, Gesture::Idle) {
            Gesture::Freehand { ids, id, .. } => {
                out.ops.push(Op::StrokeEnd { id });
                out.ops.extend(chunks(ids, |ids| Op::Erase { ids }));
            }
            Gesture::Shape { id: Some(id), .. } => {
                out.ops.push(Op::StrokeEnd { id });
                out.ops.extend(chunks(vec![id], |ids| Op::Erase { ids }));
            }
            Gesture::Drag {
                originals, delta, ..
            } if delta != (0, 0) => out.ops.extend(placements(&originals, (0, 0))),
            Gesture::Reshape(r) => out.ops.extend(r.cancel()),
            Gesture::Erase { erased, .. } if !erased.is_empty() => {
                out.action = Some(Action::Erased(erased));
            }
            _ => {}
        }
        out
    }

    /// Erases the selection (Delete).
    pub fn delete_selection(&mut self, board: &Board) -> Output {
        let ids = std::mem::take(&mut self.selection);
        let ops = crate::history::erase(&ids, board);
        Output {
            action: (!ops.is_empty()).then_some(Action::Erased(ids)),
            ops,
            text: None,
        }
    }

    fn freehand_point(&mut self, input: &ToolInput, rng: &mut dyn Entropy, out: &mut Output) {
        let Gesture::Freehand {
            tool,
            color,
            width,
            id,
            smoother,
            count,
            ids,
            last,
        } = &mut self.gesture
        else {
            return;
        };
        let Some((p, pressure)) = smoother.push(input.sample()) else {
            return;
        };
        let Ok(point) = Point::from_px(p.x, p.y, pressure) else {
            return;
        };
        if *count >= MAX_POINTS_PER_STROKE {
            // A very long stroke continues seamlessly as a new one from its last point.
            out.ops.push(Op::StrokeEnd { id: *id });
            let next = new_stroke_id(rng);
            out.ops.push(Op::StrokeBegin {
                id: next,
                tool: *tool,
                color: *color,
                width: *width,
                first: *last,
            });
            out.ops.extend(dressed(next, self.look));
            *id = next;
            *count = 1;
            ids.push(next);
        }
        // Append to this event's batch of the stroke if there is one.
        if let Some(Op::StrokePoints(b)) = out.ops.last_mut()
            && b.id == *id
            && b.points.len() < MAX_POINTS_PER_BATCH
        {
            let mut pts = b.points.as_slice().to_vec();
            pts.push(point);
            *b = StrokePoints::new(b.id, b.start, Points::new(pts).expect("non-empty"))
                .expect("within the stroke limit");
        } else {
            out.ops.push(points_op(*id, *count, vec![point]));
        }
        *count += 1;
        *last = point;
    }

    fn erase_along(&mut self, to: Pt, board: &IndexedBoard, zoom: f64, out: &mut Output) {
        let Gesture::Erase { last, erased } = &mut self.gesture else {
            return;
        };
        let from = *last;
        *last = to;
        let radius = TOUCH_RADIUS / zoom;
        let fresh: Vec<StrokeId> = board
            .strokes_in(reach_area(from, to, radius))
            .filter(|s| !erased.contains(&s.id) && hits(s, from, to, radius))
            .map(|s| s.id)
            .collect();
        if fresh.is_empty() {
            return;
        }
        erased.extend(fresh.iter().copied());
        out.ops.extend(chunks(fresh, |ids| Op::Erase { ids }));
    }
}

/// The topmost visible stroke under `at`.
pub fn pick(board: &IndexedBoard, at: Pt, radius: f64) -> Option<StrokeId> {
    board
        .strokes_in(reach_area(at, at, radius))
        .rev()
        .find(|s| hits(s, at, at, radius))
        .map(|s| s.id)
}

/// The topmost visible text item under `at` (strokes drawn over it do not hide it from the
/// text tool).
pub fn pick_text(board: &IndexedBoard, at: Pt, radius: f64) -> Option<StrokeId> {
    board
        .strokes_in(reach_area(at, at, radius))
        .rev()
        .find(|s| matches!(s.shape, Shape::Text(_)) && hits(s, at, at, radius))
        .map(|s| s.id)
}

/// The op that gives a new item `look`, unless it is the look every item starts with.
fn dressed(id: StrokeId, look: Look) -> Option<Op> {
    let to = Bounded::new(vec![LookOf { id, look }]).ok()?;
    (look != Look::default()).then_some(Op::Look { to })
}

fn points_op(id: StrokeId, start: u32, points: Vec<Point>) -> Op {
    Op::StrokePoints(
        StrokePoints::new(id, start, Points::new(points).expect("one point at least"))
            .expect("start within the stroke limit"),
    )
}

fn placements(originals: &[(StrokeId, (i32, i32))], d: (i32, i32)) -> Vec<Op> {
    let to: Vec<Placement> = originals
        .iter()
        .filter_map(|&(id, (x, y))| Placement::new(id, x + d.0, y + d.1).ok())
        .collect();
    to.chunks(kokuban_protocol::limits::MAX_IDS_PER_OP)
        .filter_map(|c| Bounded::new(c.to_vec()).ok())
        .map(|to| Op::Move { to })
        .collect()
}

/// World pixels to fixed-point units.
fn units(px: f64) -> i32 {
    let u = (px * f64::from(SUBPIXELS)).round();
    if u.is_finite() {
        u.clamp(-f64::from(i32::MAX / 2), f64::from(i32::MAX / 2)) as i32
    } else {
        0
    }
}

mod kind;
mod reshape;
mod selection;
mod shape;
mod text;

pub use kind::ToolKind;
pub use reshape::{HANDLE_REACH_PX, HANDLE_REACH_TOUCH_PX, Handle, TURN_HANDLE_PX};
#[cfg(test)]
use shape::constrain;
#[cfg(test)]
mod tests;
