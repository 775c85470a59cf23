use std::collections::{BTreeMap, HashMap, VecDeque};

use kokuban_protocol::limits::MAX_POINTS_PER_STROKE;
use kokuban_protocol::{
    BlobHash, Color, Epoch, Form, Look, MemberId, Op, Point, Position, Seq, Sequenced, StrokeId,
    StrokePoints, Text, Title, Tool, Width,
};

/// How many erased strokes a board keeps so that undo can restore them. Beyond this the
/// oldest tombstone is dropped for good, so a board that is drawn on and erased forever keeps
/// a bounded size.
pub const MAX_TOMBSTONES: usize = 512;

/// The colour an image item is given (nothing draws it, but every item has one).
pub const IMAGE_COLOR: Color = Color::rgb(0, 0, 0);

/// The width an image item is given (nothing draws it, but every item has one).
pub const IMAGE_WIDTH: Width = Width::MIN;

/// What a stroke is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Drawn with a tool; its points are the path (or, for shapes, the defining corners).
    Ink(Tool),
    /// A text item; its one point is the top-left corner and its width the font size.
    Text(Text),
    /// An image; its two points are the top-left and bottom-right corners of the box it fills.
    /// Its colour and width are unused (Restyle may set them; nothing shows them).
    Image(BlobHash),
}

/// One stroke or text item of a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stroke {
    /// Id chosen by its author.
    pub id: StrokeId,
    /// Who drew it; only they may add points to it or end it.
    pub author: MemberId,
    /// Tool or text.
    pub shape: Shape,
    /// Colour.
    pub color: Color,
    /// Width or font size.
    pub width: Width,
    /// Points as drawn (not moved); never empty.
    pub points: Vec<Point>,
    /// The author has finished drawing it.
    pub finished: bool,
    /// Erased (a tombstone kept for undo).
    pub erased: bool,
    /// Offset from where it was drawn, set by Move.
    pub offset: (i32, i32),
    /// Fill, stroke style, opacity and alignment, set by Look.
    pub look: Look,
    /// Stretch and turn about the centre of where it was drawn, set by Form.
    pub form: Form,
}

impl Stroke {
    /// The points where the stroke now is (offset applied).
    pub fn placed_points(&self) -> impl Iterator<Item = Point> + '_ {
        let (dx, dy) = self.offset;
        self.points.iter().map(move |p| p.offset(dx, dy))
    }

    /// Bounding box `(min_x, min_y, max_x, max_y)` in fixed-point units, offset applied, not
    /// including the width.
    pub fn bounds(&self) -> (i32, i32, i32, i32) {
        let mut b = (i32::MAX, i32::MAX, i32::MIN, i32::MIN);
        for p in self.placed_points() {
            b = (
                b.0.min(p.x()),
                b.1.min(p.y()),
                b.2.max(p.x()),
                b.3.max(p.y()),
            );
        }
        b
    }
}

/// What an op changed, so that a renderer can redraw only that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing (a repeat, or an op about strokes the board does not have).
    None,
    /// A stroke appeared (begun, placed, or restored).
    Added(Vec<StrokeId>),
    /// Points were appended to a stroke, starting at this index.
    Grew(StrokeId, usize),
    /// A stroke was finished.
    Finished(StrokeId),
    /// Strokes disappeared.
    Removed(Vec<StrokeId>),
    /// Strokes moved.
    Moved(Vec<StrokeId>),
    /// Everything disappeared.
    Cleared,
    /// The board's title changed.
    Retitled,
    /// Strokes got another colour, width, look or form.
    Restyled(Vec<StrokeId>),
}

/// A sequenced op that does not follow the board's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// The op belongs to another history: the board must be replaced by a fresh snapshot.
    #[error("op of epoch {got:?} on a board of epoch {board:?}")]
    Epoch {
        /// The board's epoch.
        board: Option<Epoch>,
        /// The op's epoch.
        got: Epoch,
    },
    /// Ops are missing between the board's position and this op.
    #[error("expected seq {expected:?}, got {got:?}")]
    Gap {
        /// The next seq the board can apply.
        expected: Seq,
        /// The op's seq.
        got: Seq,
    },
    /// Points by handle that do not fit this board (it is not where the room's was).
    #[error("points by handle: {0}")]
    Handle(&'static str),
}

/// A whiteboard: strokes in drawing order plus a bounded set of tombstones.
///
/// Invariant: `index` maps exactly the ids in `strokes`, and `tombstones` lists exactly the
/// erased strokes, oldest erase first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    /// Where this board is in its room's history (`None`: not tied to one yet).
    pub(crate) position: Option<Position>,
    /// Strokes by drawing order (z-order), keyed by a counter that only grows.
    pub(crate) strokes: BTreeMap<u64, Stroke>,
    pub(crate) index: HashMap<StrokeId, u64>,
    pub(crate) tombstones: VecDeque<StrokeId>,
    pub(crate) next_order: u64,
    /// The board's name (`None`: untitled; never an empty title).
    pub(crate) title: Option<Title>,
}

impl Board {
    /// An empty board, not tied to any history.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty board at the start of `epoch`.
    pub fn at_start_of(epoch: Epoch) -> Self {
        Self {
            position: Some(Position { epoch, seq: Seq(0) }),
            ..Self::default()
        }
    }

    /// Makes the board's current content the starting state (seq 0) of a new history `epoch`.
    /// A server does this when the history that led here may be incomplete (e.g. after a
    /// crash), so that clients take this board as a fresh snapshot instead of resuming.
    pub fn begin_epoch(&mut self, epoch: Epoch) {
        self.position = Some(Position { epoch, seq: Seq(0) });
    }

    /// The last sequenced op applied.
    pub fn position(&self) -> Option<Position> {
        self.position
    }

    /// The board's title, if it has one.
    pub fn title(&self) -> Option<&Title> {
        self.title.as_ref()
    }

    /// Visible strokes, bottom first.
    pub fn strokes(&self) -> impl Iterator<Item = &Stroke> {
        self.strokes.values().filter(|s| !s.erased)
    }

    /// Every stroke, tombstones included, bottom first.
    pub fn all_strokes(&self) -> impl Iterator<Item = &Stroke> {
        self.strokes.values()
    }

    /// A stroke by id (tombstones included).
    pub fn get(&self, id: &StrokeId) -> Option<&Stroke> {
        self.index.get(id).and_then(|o| self.strokes.get(o))
    }

    /// Number of visible strokes.
    pub fn len(&self) -> usize {
        self.strokes.len() - self.tombstones.len()
    }

    /// Whether no stroke is visible.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Points held, tombstones included (the board's weight).
    pub fn point_count(&self) -> usize {
        self.strokes.values().map(|s| s.points.len()).sum()
    }

    /// Applies a sequenced op. Ops at or before the board's position are repeats and change
    /// nothing; an op further ahead, or of another epoch, is refused so that the caller fetches
    /// what is missing (or a snapshot) first.
    pub fn apply_sequenced(&mut self, s: &Sequenced) -> Result<Change, SequenceError> {
        let expected = match self.position {
            Some(pos) if pos.epoch != s.epoch => {
                return Err(SequenceError::Epoch {
                    board: Some(pos.epoch),
                    got: s.epoch,
                });
            }
            Some(pos) => pos.seq.next(),
            None => {
                return Err(SequenceError::Epoch {
                    board: None,
                    got: s.epoch,
                });
            }
        };
        if s.seq < expected {
            return Ok(Change::None);
        }
        if s.seq > expected {
            return Err(SequenceError::Gap {
                expected,
                got: s.seq,
            });
        }
        self.position = Some(Position {
            epoch: s.epoch,
            seq: s.seq,
        });
        Ok(self.apply(s.author, &s.op))
    }

    /// Applies an op by `author`, outside any order (the browser's optimistic preview uses
    /// this). Applying the same op twice in a row changes nothing the second time.
    pub fn apply(&mut self, author: MemberId, op: &Op) -> Change {
        match op {
            Op::StrokeBegin {
                id,
                tool,
                color,
                width,
                first,
            } => self.insert(Stroke {
                id: *id,
                author,
                shape: Shape::Ink(*tool),
                color: *color,
                width: *width,
                points: vec![*first],
                finished: false,
                erased: false,
                offset: (0, 0),
                look: Look::default(),
                form: Form::default(),
            }),
            Op::Text {
                id,
                at,
                color,
                size,
                text,
            } => self.insert(Stroke {
                id: *id,
                author,
                shape: Shape::Text(text.clone()),
                color: *color,
                width: *size,
                points: vec![*at],
                finished: true,
                erased: false,
                offset: (0, 0),
                look: Look::default(),
                form: Form::default(),
            }),
            Op::Image(image) => self.insert(Stroke {
                id: image.id,
                author,
                shape: Shape::Image(image.blob),
                color: IMAGE_COLOR,
                width: IMAGE_WIDTH,
                points: vec![image.at, image.to],
                finished: true,
                erased: false,
                offset: (0, 0),
                look: Look::default(),
                form: Form::default(),
            }),
            Op::StrokePoints(batch) => self.extend(author, batch),
            Op::StrokeEnd { id } => match self.stroke_of(author, id) {
                Some(s) if !s.finished => {
                    s.finished = true;
                    Change::Finished(*id)
                }
                _ => Change::None,
            },
            Op::Erase { ids } => {
                let mut erased = Vec::new();
                for id in ids.iter() {
                    if let Some(s) = self.stroke_mut(id)
                        && !s.erased
                    {
                        s.erased = true;
                        self.tombstones.push_back(*id);
                        erased.push(*id);
                    }
                }
                self.drop_old_tombstones();
                if erased.is_empty() {
                    Change::None
                } else {
                    Change::Removed(erased)
                }
            }
            Op::Restore { ids } => {
                let mut restored = Vec::new();
                for id in ids.iter() {
                    if let Some(s) = self.stroke_mut(id)
                        && s.erased
                    {
                        s.erased = false;
                        self.tombstones.retain(|t| t != id);
                        restored.push(*id);
                    }
                }
                if restored.is_empty() {
                    Change::None
                } else {
                    Change::Added(restored)
                }
            }
            Op::Move { to } => {
                let mut moved = Vec::new();
                // When an id is listed twice, its last placement wins; applying only that one
                // keeps a repeated Move a no-op.
                for p in last_of_each(to.as_slice(), |p| p.id) {
                    if let Some(s) = self.stroke_mut(&p.id)
                        && s.offset != (p.dx, p.dy)
                    {
                        s.offset = (p.dx, p.dy);
                        moved.push(p.id);
                    }
                }
                if moved.is_empty() {
                    Change::None
                } else {
                    Change::Moved(moved)
                }
            }
            Op::Clear => {
                if self.strokes.is_empty() {
                    return Change::None;
                }
                self.strokes.clear();
                self.index.clear();
                self.tombstones.clear();
                Change::Cleared
            }
            Op::Title { title } => {
                let title = Some(title).filter(|t| !t.as_str().is_empty());
                if self.title.as_ref() == title {
                    return Change::None;
                }
                self.title = title.cloned();
                Change::Retitled
            }
            Op::Restyle { to } => {
                let mut restyled = Vec::new();
                // As for Move, an id listed twice takes its last style.
                for style in last_of_each(to.as_slice(), |s| s.id) {
                    if let Some(s) = self.stroke_mut(&style.id)
                        && (s.color, s.width) != (style.color, style.width)
                    {
                        s.color = style.color;
                        s.width = style.width;
                        restyled.push(style.id);
                    }
                }
                if restyled.is_empty() {
                    Change::None
                } else {
                    Change::Restyled(restyled)
                }
            }
            Op::Look { to } => {
                let mut restyled = Vec::new();
                for look in last_of_each(to.as_slice(), |l| l.id) {
                    if let Some(s) = self.stroke_mut(&look.id)
                        && s.look != look.look
                    {
                        s.look = look.look;
                        restyled.push(look.id);
                    }
                }
                if restyled.is_empty() {
                    Change::None
                } else {
                    Change::Restyled(restyled)
                }
            }
            Op::Form { to } => {
                let mut reformed = Vec::new();
                for form in last_of_each(to.as_slice(), |f| f.id) {
                    // A stroke still being drawn keeps its form: its bounds grow with it.
                    if let Some(s) = self.stroke_mut(&form.id)
                        && s.finished
                        && s.form != form.form
                    {
                        s.form = form.form;
                        reformed.push(form.id);
                    }
                }
                if reformed.is_empty() {
                    Change::None
                } else {
                    Change::Restyled(reformed)
                }
            }
        }
    }

    fn insert(&mut self, stroke: Stroke) -> Change {
        // An id that exists (even as a tombstone) is never reused: a repeated begin is a no-op
        // and a replayed id from someone else cannot take over the stroke.
        if self.index.contains_key(&stroke.id) {
            return Change::None;
        }
        let order = self.next_order;
        self.next_order += 1;
        let id = stroke.id;
        self.index.insert(id, order);
        self.strokes.insert(order, stroke);
        Change::Added(vec![id])
    }

    fn stroke_mut(&mut self, id: &StrokeId) -> Option<&mut Stroke> {
        self.strokes.get_mut(self.index.get(id)?)
    }

    fn stroke_of(&mut self, author: MemberId, id: &StrokeId) -> Option<&mut Stroke> {
        let stroke = self.strokes.get_mut(self.index.get(id)?)?;
        (stroke.author == author).then_some(stroke)
    }

    fn extend(&mut self, author: MemberId, batch: &StrokePoints) -> Change {
        let Some(stroke) = self.stroke_of(author, &batch.id) else {
            return Change::None;
        };
        if stroke.finished || !matches!(stroke.shape, Shape::Ink(_)) {
            return Change::None;
        }
        let have = stroke.points.len();
        let start = batch.start as usize;
        // A batch that starts past the end would leave a hole: ignore it. One that overlaps
        // what the stroke already has contributes only its new tail.
        if start > have {
            return Change::None;
        }
        let room = (MAX_POINTS_PER_STROKE as usize).saturating_sub(have);
        let new = batch.points.as_slice().iter().skip(have - start).take(room);
        stroke.points.extend(new);
        if stroke.points.len() == have {
            Change::None
        } else {
            Change::Grew(batch.id, have)
        }
    }

    fn drop_old_tombstones(&mut self) {
        while self.tombstones.len() > MAX_TOMBSTONES {
            if let Some(id) = self.tombstones.pop_front()
                && let Some(order) = self.index.remove(&id)
            {
                self.strokes.remove(&order);
            }
        }
    }
}

/// The entries of a Move, Restyle, Look or Form that apply: the last one of each id, in their order.
fn last_of_each<T>(to: &[T], id: impl Fn(&T) -> StrokeId) -> impl Iterator<Item = &T> {
    let last: HashMap<StrokeId, usize> = to.iter().enumerate().map(|(i, t)| (id(t), i)).collect();
    to.iter()
        .enumerate()
        .filter(move |(i, t)| last[&id(t)] == *i)
        .map(|(_, t)| t)
}

mod vet;

pub use vet::Refusal;

#[cfg(test)]
mod tests;
