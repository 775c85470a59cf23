use std::collections::{BTreeMap, HashMap, VecDeque};

use kokuban_protocol::limits::MAX_POINTS_PER_STROKE;
use kokuban_protocol::{
    Color, Epoch, MemberId, Op, Point, Position, Seq, Sequenced, StrokeId, StrokePoints, Style,
    Text, Title, Tool, Width,
};

/// How many erased strokes a board keeps so that undo can restore them. Beyond this the
/// oldest tombstone is dropped for good, so a board that is drawn on and erased forever keeps
/// a bounded size.
pub const MAX_TOMBSTONES: usize = 512;

/// What a stroke is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Drawn with a tool; its points are the path (or, for shapes, the defining corners).
    Ink(Tool),
    /// A text item; its one point is the top-left corner and its width the font size.
    Text(Text),
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
    /// Strokes got another colour or width.
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
}

/// Why [`Board::vet`] refuses an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A stroke or text item with this id exists (or existed, as a tombstone): ids are never
    /// reused, so a replayed id cannot take over someone else's stroke.
    #[error("a stroke with this id already exists")]
    IdTaken,
    /// The op continues or ends a stroke the board does not have.
    #[error("no such stroke")]
    UnknownStroke,
    /// Only a stroke's author adds points to it or ends it.
    #[error("only its author may continue or end a stroke")]
    NotAuthor,
    /// Points for a finished stroke or a text item.
    #[error("the stroke is finished")]
    Finished,
    /// The batch starts past the stroke's last point and would leave a hole.
    #[error("the points would leave a gap in the stroke")]
    Gap,
    /// The stroke holds as many points as a stroke may.
    #[error("the stroke has as many points as it may")]
    Full,
    /// Everything the op carries is already on the board.
    #[error("already applied")]
    Repeat,
    /// None of the strokes the op names exists in a state it would change.
    #[error("none of the strokes named exist or would change")]
    NoTargets,
}

impl Refusal {
    /// Whether the op would be ignored whatever other ops are ordered before it. A server
    /// that vets against a board which may lag the room's order (ops still in flight to the
    /// sequencer) may only refuse these; the others might be made valid by an op in flight
    /// (e.g. the author's own StrokeBegin, not yet delivered back).
    pub fn is_final(self) -> bool {
        match self {
            Refusal::IdTaken
            | Refusal::NotAuthor
            | Refusal::Finished
            | Refusal::Full
            | Refusal::Repeat => true,
            Refusal::UnknownStroke | Refusal::Gap | Refusal::NoTargets => false,
        }
    }
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
                    if let Some(s) = self.index.get(id).and_then(|o| self.strokes.get_mut(o))
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
                    if let Some(s) = self.index.get(id).and_then(|o| self.strokes.get_mut(o))
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
                let last: HashMap<StrokeId, usize> =
                    to.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
                for (i, p) in to.iter().enumerate() {
                    if last[&p.id] != i {
                        continue;
                    }
                    if let Some(s) = self.index.get(&p.id).and_then(|o| self.strokes.get_mut(o))
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
                for style in last_of_each(to.as_slice()) {
                    if let Some(s) = self
                        .index
                        .get(&style.id)
                        .and_then(|o| self.strokes.get_mut(o))
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
        }
    }

    /// Why `apply(author, op)` would change nothing, or would touch what is not `author`'s to
    /// touch; `Ok` when it would change the board. A server calls this before sequencing an
    /// op, so that an op the board would ignore (a replayed stroke id, points for another
    /// member's stroke, targets that do not exist) costs no seq, no storage and no relay.
    ///
    /// It mirrors the no-op cases of [`Board::apply`] exactly, except for `Clear`, which is
    /// always accepted (clearing an empty board is what a user asked for, not an attack). The
    /// unit tests check the two against each other.
    pub fn vet(&self, author: MemberId, op: &Op) -> Result<(), Refusal> {
        match op {
            Op::StrokeBegin { id, .. } | Op::Text { id, .. } => {
                if self.index.contains_key(id) {
                    return Err(Refusal::IdTaken);
                }
            }
            Op::StrokePoints(batch) => {
                let stroke = self.owned(author, &batch.id)?;
                if stroke.finished || !matches!(stroke.shape, Shape::Ink(_)) {
                    return Err(Refusal::Finished);
                }
                let have = stroke.points.len();
                let start = batch.start as usize;
                if start > have {
                    return Err(Refusal::Gap);
                }
                if have >= MAX_POINTS_PER_STROKE as usize {
                    return Err(Refusal::Full);
                }
                if start + batch.points.len() <= have {
                    return Err(Refusal::Repeat);
                }
            }
            Op::StrokeEnd { id } => {
                if self.owned(author, id)?.finished {
                    return Err(Refusal::Repeat);
                }
            }
            Op::Erase { ids } => {
                if !ids.iter().any(|id| self.get(id).is_some_and(|s| !s.erased)) {
                    return Err(Refusal::NoTargets);
                }
            }
            Op::Restore { ids } => {
                if !ids.iter().any(|id| self.get(id).is_some_and(|s| s.erased)) {
                    return Err(Refusal::NoTargets);
                }
            }
            Op::Move { to } => {
                // The last placement of an id is the one applied (see `apply`).
                let last: HashMap<StrokeId, (i32, i32)> =
                    to.iter().map(|p| (p.id, (p.dx, p.dy))).collect();
                if !last
                    .iter()
                    .any(|(id, at)| self.get(id).is_some_and(|s| s.offset != *at))
                {
                    return Err(Refusal::NoTargets);
                }
            }
            Op::Clear => {}
            Op::Title { title } => {
                if self.title.as_ref().map_or("", |t| t.as_str()) == title.as_str() {
                    return Err(Refusal::Repeat);
                }
            }
            Op::Restyle { to } => {
                if !last_of_each(to.as_slice()).any(|style| {
                    self.get(&style.id)
                        .is_some_and(|s| (s.color, s.width) != (style.color, style.width))
                }) {
                    return Err(Refusal::NoTargets);
                }
            }
        }
        Ok(())
    }

    /// The stroke `id`, if it is `author`'s.
    fn owned(&self, author: MemberId, id: &StrokeId) -> Result<&Stroke, Refusal> {
        match self.get(id) {
            None => Err(Refusal::UnknownStroke),
            Some(s) if s.author != author => Err(Refusal::NotAuthor),
            Some(s) => Ok(s),
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

/// The styles of `to` that apply: the last one of each id.
fn last_of_each(to: &[Style]) -> impl Iterator<Item = &Style> {
    let last: HashMap<StrokeId, usize> = to.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    to.iter()
        .enumerate()
        .filter(move |(i, s)| last[&s.id] == *i)
        .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use kokuban_protocol::{Bounded, Placement, Points};
    use uuid::Uuid;

    use super::*;

    const ADA: MemberId = MemberId(1);
    const BOB: MemberId = MemberId(2);

    fn id(n: u8) -> StrokeId {
        StrokeId(Uuid::from_bytes([n; 16]))
    }

    fn pt(x: i32) -> Point {
        Point::new(x, x, 100).unwrap()
    }

    fn begin(n: u8) -> Op {
        Op::StrokeBegin {
            id: id(n),
            tool: Tool::Pen,
            color: Color::rgb(0, 0, 0),
            width: Width::from_px(2.0),
            first: pt(0),
        }
    }

    fn points(n: u8, start: u32, xs: &[i32]) -> Op {
        let batch = Points::new(xs.iter().map(|&x| pt(x)).collect()).unwrap();
        Op::StrokePoints(StrokePoints::new(id(n), start, batch).unwrap())
    }

    fn ids(ns: &[u8]) -> Bounded<StrokeId, { kokuban_protocol::limits::MAX_IDS_PER_OP }> {
        Bounded::new(ns.iter().map(|&n| id(n)).collect()).unwrap()
    }

    fn xs(board: &Board, n: u8) -> Vec<i32> {
        board
            .get(&id(n))
            .unwrap()
            .points
            .iter()
            .map(|p| p.x())
            .collect()
    }

    #[test]
    fn batches_append_once_even_when_repeated_or_overlapping() {
        let mut b = Board::new();
        b.apply(ADA, &begin(1));
        assert_eq!(b.apply(ADA, &points(1, 1, &[1, 2])), Change::Grew(id(1), 1));
        assert_eq!(b.apply(ADA, &points(1, 1, &[1, 2])), Change::None);
        assert_eq!(
            b.apply(ADA, &points(1, 2, &[2, 3, 4])),
            Change::Grew(id(1), 3)
        );
        // A batch that would leave a hole is ignored.
        assert_eq!(b.apply(ADA, &points(1, 9, &[9])), Change::None);
        assert_eq!(xs(&b, 1), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn only_the_author_continues_a_stroke_and_nobody_after_it_ends() {
        let mut b = Board::new();
        b.apply(ADA, &begin(1));
        assert_eq!(b.apply(BOB, &points(1, 1, &[5])), Change::None);
        assert_eq!(b.apply(BOB, &Op::StrokeEnd { id: id(1) }), Change::None);
        // Bob replaying Ada's stroke id does not take it over.
        assert_eq!(b.apply(BOB, &begin(1)), Change::None);
        assert_eq!(b.get(&id(1)).unwrap().author, ADA);
        assert_eq!(
            b.apply(ADA, &Op::StrokeEnd { id: id(1) }),
            Change::Finished(id(1))
        );
        assert_eq!(b.apply(ADA, &points(1, 1, &[5])), Change::None);
        assert_eq!(xs(&b, 1), vec![0]);
    }

    #[test]
    fn ops_on_unknown_strokes_change_nothing() {
        let mut b = Board::new();
        assert_eq!(b.apply(ADA, &points(9, 1, &[1])), Change::None);
        assert_eq!(b.apply(ADA, &Op::StrokeEnd { id: id(9) }), Change::None);
        assert_eq!(b.apply(ADA, &Op::Erase { ids: ids(&[9]) }), Change::None);
        assert_eq!(b.apply(ADA, &Op::Restore { ids: ids(&[9]) }), Change::None);
        assert_eq!(b, Board::new());
    }

    #[test]
    fn erase_and_restore_are_undo_and_redo() {
        let mut b = Board::new();
        b.apply(ADA, &begin(1));
        b.apply(ADA, &begin(2));
        assert_eq!(
            b.apply(BOB, &Op::Erase { ids: ids(&[1]) }),
            Change::Removed(vec![id(1)])
        );
        assert_eq!(b.len(), 1);
        assert_eq!(b.strokes().map(|s| s.id).collect::<Vec<_>>(), vec![id(2)]);
        assert_eq!(
            b.apply(BOB, &Op::Restore { ids: ids(&[1]) }),
            Change::Added(vec![id(1)])
        );
        // Restored strokes keep their place in the drawing order.
        assert_eq!(
            b.strokes().map(|s| s.id).collect::<Vec<_>>(),
            vec![id(1), id(2)]
        );
    }

    #[test]
    fn tombstones_are_bounded() {
        let mut b = Board::new();
        for n in 0..=MAX_TOMBSTONES as u32 {
            let sid = StrokeId(Uuid::from_u128(u128::from(n) + 1));
            b.apply(
                ADA,
                &Op::StrokeBegin {
                    id: sid,
                    tool: Tool::Pen,
                    color: Color::rgb(0, 0, 0),
                    width: Width::from_px(1.0),
                    first: pt(0),
                },
            );
            b.apply(
                ADA,
                &Op::Erase {
                    ids: Bounded::new(vec![sid]).unwrap(),
                },
            );
        }
        assert_eq!(b.all_strokes().count(), MAX_TOMBSTONES);
        assert!(b.get(&StrokeId(Uuid::from_u128(1))).is_none());
        assert!(b.is_empty());
    }

    #[test]
    fn move_sets_absolute_offsets_and_clear_removes_everything() {
        let mut b = Board::new();
        b.apply(ADA, &begin(1));
        let to = Bounded::new(vec![Placement::new(id(1), 8, -8).unwrap()]).unwrap();
        assert_eq!(
            b.apply(BOB, &Op::Move { to: to.clone() }),
            Change::Moved(vec![id(1)])
        );
        assert_eq!(b.apply(BOB, &Op::Move { to }), Change::None);
        assert_eq!(b.get(&id(1)).unwrap().bounds(), (8, -8, 8, -8));
        assert_eq!(b.apply(ADA, &Op::Clear), Change::Cleared);
        assert_eq!(b.all_strokes().count(), 0);
        assert_eq!(b.point_count(), 0);
    }

    /// `vet` refuses exactly the ops `apply` would ignore (Clear aside), on a board with
    /// strokes in every state: Ada's open stroke, her finished one, an erased one, Bob's text.
    #[test]
    fn vet_refuses_exactly_what_apply_ignores() {
        let mut b = Board::new();
        b.apply(ADA, &begin(1));
        b.apply(ADA, &points(1, 1, &[1, 2]));
        b.apply(ADA, &begin(2));
        b.apply(ADA, &Op::StrokeEnd { id: id(2) });
        b.apply(ADA, &begin(3));
        b.apply(BOB, &Op::Erase { ids: ids(&[3]) });
        b.apply(
            BOB,
            &Op::Text {
                id: id(4),
                at: pt(0),
                color: Color::rgb(0, 0, 0),
                size: Width::from_px(12.0),
                text: Text::new("hi").unwrap(),
            },
        );
        let place = |n: u8, d: i32| Op::Move {
            to: Bounded::new(vec![Placement::new(id(n), d, d).unwrap()]).unwrap(),
        };
        let mut ops = Vec::new();
        for n in 1..=5 {
            ops.push(begin(n));
            ops.push(Op::StrokeEnd { id: id(n) });
            ops.push(Op::Erase { ids: ids(&[n]) });
            ops.push(Op::Restore { ids: ids(&[n]) });
            ops.push(place(n, 0));
            ops.push(place(n, 8));
            for (start, xs) in [(1, &[1][..]), (1, &[1, 2, 3]), (3, &[3]), (4, &[4])] {
                ops.push(points(n, start, xs));
            }
        }
        ops.push(Op::Erase { ids: ids(&[9, 1]) });
        ops.push(Op::Restore { ids: ids(&[9, 3]) });
        b.apply(BOB, &title("Plans"));
        for t in ["", "Plans", "Plans 2"] {
            ops.push(title(t));
        }
        b.apply(ADA, &restyle(&[(2, 9)]));
        for n in 1..=5 {
            ops.push(restyle(&[(n, 9)]));
            ops.push(restyle(&[(n, 8), (n, 9)]));
            ops.push(restyle(&[(n, 9), (n, 8)]));
        }
        let mut checked = 0;
        for op in &ops {
            for author in [ADA, BOB] {
                let vetted = b.vet(author, op);
                let changed = b.clone().apply(author, op) != Change::None;
                assert_eq!(vetted.is_ok(), changed, "{author:?} {op:?}: {vetted:?}");
                checked += usize::from(vetted.is_err());
            }
        }
        assert!(checked > ops.len(), "the board state exercises refusals");
        assert_eq!(b.vet(BOB, &points(1, 3, &[3])), Err(Refusal::NotAuthor));
        assert_eq!(b.vet(ADA, &points(1, 9, &[9])), Err(Refusal::Gap));
        assert_eq!(b.vet(ADA, &begin(1)), Err(Refusal::IdTaken));
        assert_eq!(b.vet(ADA, &points(5, 1, &[1])), Err(Refusal::UnknownStroke));
        assert!(Refusal::NotAuthor.is_final() && !Refusal::UnknownStroke.is_final());
        // Clearing is always allowed, even an empty board.
        assert_eq!(Board::new().vet(ADA, &Op::Clear), Ok(()));
        assert_eq!(Board::new().vet(ADA, &title("")), Err(Refusal::Repeat));
    }

    fn restyle(styles: &[(u8, u8)]) -> Op {
        let to = styles.iter().map(|&(n, shade)| Style {
            id: id(n),
            color: Color::rgb(shade, shade, shade),
            width: Width::from_px(f64::from(shade)),
        });
        Op::Restyle {
            to: Bounded::new(to.collect()).unwrap(),
        }
    }

    #[test]
    fn restyle_sets_colour_and_width_of_any_item_its_last_listing_winning() {
        let mut b = Board::new();
        b.apply(ADA, &begin(1));
        b.apply(BOB, &begin(2));
        assert_eq!(
            b.apply(BOB, &restyle(&[(1, 5), (2, 7), (1, 6), (9, 1)])),
            Change::Restyled(vec![id(2), id(1)])
        );
        let s = b.get(&id(1)).unwrap();
        assert_eq!(
            (s.color, s.width),
            (Color::rgb(6, 6, 6), Width::from_px(6.0))
        );
        assert_eq!(b.apply(ADA, &restyle(&[(1, 6), (2, 7)])), Change::None);
        let back = Board::from_snapshot(&b.snapshot()).unwrap();
        assert_eq!(back, b);
    }

    fn title(t: &str) -> Op {
        Op::Title {
            title: Title::new(t).unwrap(),
        }
    }

    #[test]
    fn the_title_is_the_last_one_set_survives_clear_and_an_empty_one_removes_it() {
        let mut b = Board::new();
        assert_eq!(b.title(), None);
        assert_eq!(b.apply(ADA, &title("Roadmap")), Change::Retitled);
        assert_eq!(b.apply(BOB, &title("Roadmap")), Change::None);
        assert_eq!(b.apply(BOB, &title("Roadmap 2027")), Change::Retitled);
        b.apply(ADA, &begin(1));
        b.apply(ADA, &Op::Clear);
        assert_eq!(b.title().map(Title::as_str), Some("Roadmap 2027"));
        let back = Board::from_snapshot(&b.snapshot()).unwrap();
        assert_eq!(back, b);
        assert_eq!(b.apply(ADA, &title("")), Change::Retitled);
        assert_eq!(b.title(), None);
        assert_eq!(b.apply(ADA, &title("")), Change::None);
    }

    #[test]
    fn strokes_stop_growing_at_the_point_limit() {
        let mut b = Board::new();
        b.apply(ADA, &begin(1));
        let mut start = 1u32;
        while start < MAX_POINTS_PER_STROKE {
            let n = (MAX_POINTS_PER_STROKE - start).min(1000) as usize;
            b.apply(ADA, &points(1, start, &vec![1; n]));
            start += n as u32;
        }
        assert_eq!(
            b.get(&id(1)).unwrap().points.len(),
            MAX_POINTS_PER_STROKE as usize
        );
        assert!(Board::from_snapshot(&b.snapshot()).is_ok());
    }
}
