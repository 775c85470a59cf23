//! Which strokes are near a place, without looking at every stroke.
//!
//! The eraser tests its path against the board on every pointer move, a click picks the
//! topmost stroke under the pointer, and the renderer redraws a region of its cache: with
//! 10,000 strokes on a board, a scan of all of them (and of all their points) for each of these
//! is what makes erasing and drawing stutter. [`SpatialIndex`] is a uniform grid: every stroke
//! is listed in the square cells its bounds touch, so a query looks at the few cells around the
//! pointer. The grid is kept in step with the board op by op ([`IndexedBoard::apply`]), from
//! the [`Change`] each op reports, so it never needs a rebuild while the board only changes.
//!
//! Answers are in drawing order (bottom first) and exact: a stroke is a candidate for an area
//! if and only if its [`touch_bounds`](crate::geom::touch_bounds) (its visual bounds, and for text a little more) intersect
//! it, so that whoever filters the candidates further finds exactly what a scan of every stroke
//! finds.

use std::collections::HashMap;
use std::ops::Deref;

use kokuban_board::{Board, Change, MAX_TOMBSTONES, Shape, Stroke};
use kokuban_protocol::{MemberId, Op, StrokeId, Tool};

use crate::geom::{Pt, Rect, ink_reach, unplaced_touch_bounds};

/// The side of a grid cell, in world pixels. About the size of a handwritten word: most
/// strokes touch one to four cells, and the eraser's reach touches one.
pub const CELL: f64 = 256.0;
/// A stroke whose bounds touch more cells than this (a long line across the board) is kept
/// in a short list that every query checks, so that one huge stroke does not fill thousands
/// of cells.
const MAX_CELLS_PER_STROKE: i64 = 64;

type Cell = (i32, i32);

/// A stroke as a cell lists it: with its order and bounds at hand, a query reads only the
/// cells' lists, never a map keyed by id.
#[derive(Debug, Clone, Copy)]
struct Slot {
    order: u64,
    bounds: Rect,
    id: StrokeId,
}

/// Where a stroke is in the index.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Drawing order: grows with every new stroke, as the board's does.
    order: u64,
    /// Bounds where it was drawn (offset not applied), as [`unplaced_touch_bounds`] computes
    /// them, or a superset of them while a shape is being drawn.
    unplaced: Rect,
    /// Its offset (from Move), in fixed-point units.
    offset: (i32, i32),
    /// Listed in the grid (not erased).
    visible: bool,
    /// The cells it is listed in; `None` when it is in the list of large strokes.
    cells: Option<(Cell, Cell)>,
}

impl Entry {
    /// Its bounds where it now is: exactly [`touch_bounds`](crate::geom::touch_bounds) of the stroke.
    fn bounds(&self) -> Rect {
        self.unplaced.translate(
            f64::from(self.offset.0) / 8.0,
            f64::from(self.offset.1) / 8.0,
        )
    }
}

/// A uniform grid of the board's visible strokes.
///
/// Invariant: every visible stroke is listed in exactly the cells its bounds touch, or in
/// `large`; erased strokes are in neither, but keep their entry (and drawing order) so that a
/// restore puts them back where they were in the drawing order.
#[derive(Debug, Clone, Default)]
pub struct SpatialIndex {
    cells: HashMap<Cell, Vec<Slot>>,
    large: Vec<Slot>,
    entries: HashMap<StrokeId, Entry>,
    next_order: u64,
    hidden: usize,
}

impl SpatialIndex {
    /// The index of `board`.
    pub fn of(board: &Board) -> Self {
        let mut index = Self::default();
        for s in board.all_strokes() {
            index.insert(s.id, unplaced_touch_bounds(s), s.offset);
            if s.erased {
                index.hide(&s.id);
            }
        }
        index
    }

    /// Visible strokes listed.
    pub fn len(&self) -> usize {
        self.entries.len() - self.hidden
    }

    /// Whether no visible stroke is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the visible strokes whose bounds intersect `area`, bottom first.
    pub fn query(&self, area: Rect) -> Vec<StrokeId> {
        if area.is_empty() || area.x0.is_nan() || area.y0.is_nan() {
            return Vec::new();
        }
        let ((cx0, cy0), (cx1, cy1)) = cell_range(area);
        let span = (i64::from(cx1) - i64::from(cx0) + 1) * (i64::from(cy1) - i64::from(cy0) + 1);
        let mut found: Vec<(u64, StrokeId)> = Vec::new();
        let take = |slots: &[Slot], found: &mut Vec<(u64, StrokeId)>| {
            found.extend(
                slots
                    .iter()
                    .filter(|s| s.bounds.intersects(&area))
                    .map(|s| (s.order, s.id)),
            );
        };
        // A large area (zoomed far out) has more cells than the board uses: walk those instead.
        if span > self.cells.len() as i64 {
            for (&(x, y), ids) in &self.cells {
                if (cx0..=cx1).contains(&x) && (cy0..=cy1).contains(&y) {
                    take(ids, &mut found);
                }
            }
        } else {
            for x in cx0..=cx1 {
                for y in cy0..=cy1 {
                    if let Some(ids) = self.cells.get(&(x, y)) {
                        take(ids, &mut found);
                    }
                }
            }
        }
        take(&self.large, &mut found);
        found.sort_unstable_by_key(|f| f.0);
        found.dedup_by_key(|f| f.0);
        found.into_iter().map(|f| f.1).collect()
    }

    /// The bounds the index holds for a visible stroke (its touch bounds, or a superset of
    /// them while a shape is being drawn).
    pub fn bounds(&self, id: &StrokeId) -> Option<Rect> {
        self.entries
            .get(id)
            .filter(|e| e.visible)
            .map(Entry::bounds)
    }

    /// Brings the index up to date with one change of `board` (the board after the op).
    pub fn update(&mut self, board: &Board, change: &Change) {
        match change {
            Change::None | Change::Retitled => {}
            Change::Cleared => *self = Self::default(),
            Change::Added(ids) => {
                for id in ids {
                    if let Some(s) = board.get(id).filter(|s| !s.erased) {
                        self.insert(*id, unplaced_touch_bounds(s), s.offset);
                    }
                }
            }
            Change::Grew(id, start) => {
                if let Some(s) = board.get(id).filter(|s| !s.erased) {
                    let grown = match self.entries.get(id) {
                        Some(e) => e.unplaced.union(new_ink(s, *start)),
                        None => unplaced_touch_bounds(s),
                    };
                    self.insert(*id, grown, s.offset);
                }
            }
            // A finished shape may be smaller than what it covered while being drawn.
            Change::Finished(id) => self.refresh(board, id),
            Change::Moved(ids) => {
                for id in ids {
                    self.refresh(board, id);
                }
            }
            // A width reaches further or less far.
            Change::Restyled(ids) => {
                for id in ids {
                    if let Some(s) = board.get(id).filter(|s| !s.erased) {
                        self.insert(*id, unplaced_touch_bounds(s), s.offset);
                    }
                }
            }
            Change::Removed(ids) => {
                for id in ids {
                    self.hide(id);
                }
                self.forget_dropped(board);
            }
        }
    }

    fn refresh(&mut self, board: &Board, id: &StrokeId) {
        if let Some(s) = board.get(id).filter(|s| !s.erased) {
            let unplaced = match self.entries.get(id) {
                // A move keeps the shape: only the offset changes.
                Some(e) if s.finished && e.offset != s.offset => e.unplaced,
                _ => unplaced_touch_bounds(s),
            };
            self.insert(*id, unplaced, s.offset);
        }
    }

    /// Lists (or re-lists) a visible stroke with these bounds, keeping its drawing order if
    /// it had one.
    fn insert(&mut self, id: StrokeId, unplaced: Rect, offset: (i32, i32)) {
        let order = match self.entries.get(&id) {
            Some(e) => {
                let order = e.order;
                self.hide(&id);
                self.hidden -= 1;
                order
            }
            None => {
                self.next_order += 1;
                self.next_order
            }
        };
        let mut entry = Entry {
            order,
            unplaced,
            offset,
            visible: true,
            cells: None,
        };
        let bounds = entry.bounds();
        let range = cell_range(bounds);
        let ((x0, y0), (x1, y1)) = range;
        let span = (i64::from(x1) - i64::from(x0) + 1) * (i64::from(y1) - i64::from(y0) + 1);
        let slot = Slot { order, bounds, id };
        if bounds.is_empty() || span > MAX_CELLS_PER_STROKE {
            self.large.push(slot);
        } else {
            for x in x0..=x1 {
                for y in y0..=y1 {
                    self.cells.entry((x, y)).or_default().push(slot);
                }
            }
            entry.cells = Some(range);
        }
        self.entries.insert(id, entry);
    }

    /// Takes a stroke out of the grid; its entry stays for a restore.
    fn hide(&mut self, id: &StrokeId) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        if !e.visible {
            return;
        }
        e.visible = false;
        self.hidden += 1;
        match e.cells.take() {
            None => self.large.retain(|l| l.id != *id),
            Some(((x0, y0), (x1, y1))) => {
                for x in x0..=x1 {
                    for y in y0..=y1 {
                        if let Some(list) = self.cells.get_mut(&(x, y)) {
                            if let Some(i) = list.iter().position(|l| l.id == *id) {
                                list.swap_remove(i);
                            }
                            if list.is_empty() {
                                self.cells.remove(&(x, y));
                            }
                        }
                    }
                }
            }
        }
    }

    /// The board forgets its oldest tombstones without saying so, once it holds more than
    /// [`MAX_TOMBSTONES`]. The index holds an erased entry for each of the board's tombstones
    /// and for no other stroke (a stroke begun again under a forgotten id must go on top, not
    /// back to its old place), so it forgets them at that same moment.
    fn forget_dropped(&mut self, board: &Board) {
        if self.hidden <= MAX_TOMBSTONES {
            return;
        }
        self.entries
            .retain(|id, e| e.visible || board.get(id).is_some());
        self.hidden = self.entries.values().filter(|e| !e.visible).count();
    }
}

/// The bounds of the ink a stroke gained from point `start` on (offset not applied). For
/// shapes, which span their first and last points, the bounds of those.
fn new_ink(s: &Stroke, start: usize) -> Rect {
    let pts = match s.shape {
        Shape::Ink(Tool::Pen | Tool::Highlighter) => &s.points[start.min(s.points.len())..],
        _ => return unplaced_bounds_of_ends(s),
    };
    let mut r = Rect::EMPTY;
    for p in pts {
        let p = Pt::of(*p);
        r = r.union(Rect::spanning(p, p));
    }
    r.inflate(ink_reach(s))
}

fn unplaced_bounds_of_ends(s: &Stroke) -> Rect {
    let a = Pt::of(s.points[0]);
    let b = Pt::of(*s.points.last().unwrap_or(&s.points[0]));
    Rect::spanning(a, b).inflate(ink_reach(s))
}

/// The cells a rectangle touches (corners included).
fn cell_range(r: Rect) -> (Cell, Cell) {
    // Clamped so that an unbounded area (or a stroke at the coordinate limit) stays in range.
    let cell = |v: f64| (v / CELL).floor().clamp(-1e9, 1e9) as i32;
    ((cell(r.x0), cell(r.y0)), (cell(r.x1), cell(r.y1)))
}

/// A board together with its spatial index, changed only through [`IndexedBoard::apply`] so
/// that the two never disagree. Reads of the board go through `Deref`.
#[derive(Debug, Clone, Default)]
pub struct IndexedBoard {
    board: Board,
    index: SpatialIndex,
}

impl IndexedBoard {
    /// `board`, indexed.
    pub fn new(board: Board) -> Self {
        let index = SpatialIndex::of(&board);
        Self { board, index }
    }

    /// The board.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// The index.
    pub fn index(&self) -> &SpatialIndex {
        &self.index
    }

    /// Applies an op to the board (see [`Board::apply`]) and to the index.
    pub fn apply(&mut self, author: MemberId, op: &Op) -> Change {
        let change = self.board.apply(author, op);
        self.index.update(&self.board, &change);
        change
    }

    /// The visible strokes whose bounds (as the index holds them) intersect `area`, bottom
    /// first: every stroke whose touch bounds (so also every stroke whose visual bounds)
    /// intersect it, and while a shape is being drawn possibly that shape too.
    pub fn strokes_in(&self, area: Rect) -> impl DoubleEndedIterator<Item = &Stroke> + '_ {
        self.index
            .query(area)
            .into_iter()
            .filter_map(|id| self.board.get(&id))
    }
}

impl Deref for IndexedBoard {
    type Target = Board;

    fn deref(&self) -> &Board {
        &self.board
    }
}

impl From<Board> for IndexedBoard {
    fn from(board: Board) -> Self {
        Self::new(board)
    }
}

#[cfg(test)]
mod tests;
