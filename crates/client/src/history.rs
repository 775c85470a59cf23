//! Undo and redo of this tab's own actions, as new ops.
//!
//! Undo never rewinds the room: it emits the op that reverses one of *your* actions (an
//! `Erase` for a stroke you drew, a `Restore` for strokes you erased, a `Move` back for strokes
//! you moved, a `Restyle` back for strokes you restyled, the old text back for a text you
//! edited), which every member applies in the
//! room's order like any other op. Others'
//! actions are never undone by you. An action whose strokes are gone (cleared, or dropped from
//! the tombstones) is skipped rather than producing an op that does nothing.

use kokuban_board::Board;
use kokuban_protocol::limits::MAX_IDS_PER_OP;
use kokuban_protocol::{
    Bounded, Color, Form, FormOf, Look, LookOf, Op, Placement, StrokeId, Style, Width,
};

/// Undo steps kept; older ones are forgotten.
pub const MAX_UNDO: usize = 200;

/// One undoable action of this tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Strokes (or text) drawn.
    Drew(Vec<StrokeId>),
    /// Strokes erased (eraser, delete).
    Erased(Vec<StrokeId>),
    /// Strokes moved from one offset to another.
    Moved(Vec<Move>),
    /// Strokes given another colour, width or look.
    Restyled(Vec<Restyling>),
    /// The board was cleared, and `drawn` drawn on it (a version of the board brought back;
    /// nothing after a plain Clear). Undo erases `drawn` and draws the cleared items again as
    /// new items: `ids`, made by `ops` (Clear removes items for good, so the old ids cannot be
    /// restored); redo erases them and restores `drawn`.
    Cleared {
        /// The ops that draw the cleared items again.
        ops: Vec<Op>,
        /// The items they make.
        ids: Vec<StrokeId>,
        /// The items drawn after the Clear.
        drawn: Vec<StrokeId>,
    },
    /// A text item was edited: `old` was erased and `new`, the edited text, placed instead.
    Replaced {
        /// The item before the edit (a tombstone while the edit stands).
        old: StrokeId,
        /// The item after the edit.
        new: StrokeId,
    },
}

impl Action {
    /// The same action with every stroke id passed through `current` (ids that changed since
    /// the tools took them, see [`History::rename`]).
    pub fn follow(mut self, current: impl Fn(StrokeId) -> StrokeId) -> Self {
        match &mut self {
            Action::Drew(ids) | Action::Erased(ids) => {
                for id in ids {
                    *id = current(*id);
                }
            }
            Action::Cleared { ids, drawn, .. } => {
                for id in ids.iter_mut().chain(drawn) {
                    *id = current(*id);
                }
            }
            Action::Moved(moves) => {
                for m in moves {
                    m.id = current(m.id);
                }
            }
            Action::Restyled(styles) => {
                for s in styles {
                    s.id = current(s.id);
                }
            }
            Action::Replaced { old, new } => {
                *old = current(*old);
                *new = current(*new);
            }
        }
        self
    }
}

/// One stroke's move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// The stroke.
    pub id: StrokeId,
    /// Its offset before.
    pub from: (i32, i32),
    /// Its offset after.
    pub to: (i32, i32),
}

/// One stroke's change of style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restyling {
    /// The stroke.
    pub id: StrokeId,
    /// How it looked before.
    pub from: Dress,
    /// How it looks after.
    pub to: Dress,
}

/// What a restyle or a reshape sets of an item: its colour, its width (a text's font size),
/// its look, and its form with the offset that goes with it (a resize moves what it stretches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dress {
    /// Colour.
    pub color: Color,
    /// Width or font size.
    pub width: Width,
    /// Fill, stroke style, opacity and alignment.
    pub look: Look,
    /// Stretch and turn.
    pub form: Form,
    /// Offset from where it was drawn.
    pub offset: (i32, i32),
}

impl Dress {
    /// How `stroke` looks now.
    pub fn of(stroke: &kokuban_board::Stroke) -> Self {
        Self {
            color: stroke.color,
            width: stroke.width,
            look: stroke.look,
            form: stroke.form,
            offset: stroke.offset,
        }
    }
}

/// The undo and redo stacks.
#[derive(Debug, Clone, Default)]
pub struct History {
    undo: Vec<Action>,
    redo: Vec<Action>,
}

impl History {
    /// Empty stacks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a new action; it clears what could be redone.
    pub fn record(&mut self, action: Action) {
        self.redo.clear();
        self.undo.push(action);
        if self.undo.len() > MAX_UNDO {
            self.undo.remove(0);
        }
    }

    /// Whether there is something to undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Whether there is something to redo.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// The ops that undo the latest action that still has an effect on `board`.
    pub fn undo(&mut self, board: &Board) -> Vec<Op> {
        while let Some(action) = self.undo.pop() {
            let ops = reverse(&action, board);
            if !ops.is_empty() {
                self.redo.push(action);
                return ops;
            }
        }
        Vec::new()
    }

    /// The ops that redo the latest undone action.
    pub fn redo(&mut self, board: &Board) -> Vec<Op> {
        while let Some(action) = self.redo.pop() {
            let ops = replay(&action, board);
            if !ops.is_empty() {
                self.undo.push(action);
                return ops;
            }
        }
        Vec::new()
    }

    /// A stroke got a new id (the session sent it again whole, see its module documentation):
    /// its history follows it.
    pub fn rename(&mut self, from: StrokeId, to: StrokeId) {
        for action in self.undo.iter_mut().chain(self.redo.iter_mut()) {
            match action {
                Action::Drew(ids) | Action::Erased(ids) => {
                    for id in ids.iter_mut().filter(|id| **id == from) {
                        *id = to;
                    }
                }
                Action::Cleared { ids, drawn, .. } => {
                    for id in ids.iter_mut().chain(drawn).filter(|id| **id == from) {
                        *id = to;
                    }
                }
                Action::Moved(moves) => {
                    for m in moves.iter_mut().filter(|m| m.id == from) {
                        m.id = to;
                    }
                }
                Action::Restyled(styles) => {
                    for s in styles.iter_mut().filter(|s| s.id == from) {
                        s.id = to;
                    }
                }
                Action::Replaced { old, new } => {
                    for id in [old, new].into_iter().filter(|id| **id == from) {
                        *id = to;
                    }
                }
            }
        }
    }
}

fn reverse(action: &Action, board: &Board) -> Vec<Op> {
    match action {
        Action::Drew(ids) => erase(ids, board),
        Action::Erased(ids) => restore(ids, board),
        Action::Moved(moves) => place(moves.iter().map(|m| (m.id, m.from)), board),
        Action::Restyled(styles) => style(styles.iter().map(|s| (s.id, s.from)), board),
        Action::Replaced { old, new } => swap(*new, *old, board),
        Action::Cleared { ops, ids, drawn } => {
            let mut out = erase(drawn, board);
            // Drawn again the first time; restored after a redo erased them.
            if ids.iter().any(|id| board.get(id).is_some()) {
                out.extend(restore(ids, board));
            } else {
                out.extend(ops.iter().cloned());
            }
            out
        }
    }
}

fn replay(action: &Action, board: &Board) -> Vec<Op> {
    match action {
        Action::Drew(ids) => restore(ids, board),
        Action::Erased(ids) => erase(ids, board),
        Action::Moved(moves) => place(moves.iter().map(|m| (m.id, m.to)), board),
        Action::Restyled(styles) => style(styles.iter().map(|s| (s.id, s.to)), board),
        Action::Replaced { old, new } => swap(*old, *new, board),
        Action::Cleared { ids, drawn, .. } => {
            let mut out = erase(ids, board);
            out.extend(restore(drawn, board));
            out
        }
    }
}

/// Shows `back` instead of `shown`: restores the one, then erases the other (so that no client
/// ever shows neither). Only while `shown` is visible and `back` can still be restored: once
/// someone else erased the edited text, or the old one is gone for good, theirs was the later
/// word and the step is skipped.
fn swap(shown: StrokeId, back: StrokeId, board: &Board) -> Vec<Op> {
    let visible = board.get(&shown).is_some_and(|s| !s.erased);
    let restorable = board.get(&back).is_some_and(|s| s.erased);
    if !(visible && restorable) {
        return Vec::new();
    }
    let mut ops = restore(&[back], board);
    ops.extend(erase(&[shown], board));
    ops
}

/// `Erase` ops for those of `ids` that are visible on `board`.
pub fn erase(ids: &[StrokeId], board: &Board) -> Vec<Op> {
    let live: Vec<StrokeId> = ids
        .iter()
        .copied()
        .filter(|id| board.get(id).is_some_and(|s| !s.erased))
        .collect();
    chunks(live, |ids| Op::Erase { ids })
}

fn restore(ids: &[StrokeId], board: &Board) -> Vec<Op> {
    let gone: Vec<StrokeId> = ids
        .iter()
        .copied()
        .filter(|id| board.get(id).is_some_and(|s| s.erased))
        .collect();
    chunks(gone, |ids| Op::Restore { ids })
}

fn place(to: impl Iterator<Item = (StrokeId, (i32, i32))>, board: &Board) -> Vec<Op> {
    let placements: Vec<Placement> = to
        .filter(|(id, at)| board.get(id).is_some_and(|s| !s.erased && s.offset != *at))
        .filter_map(|(id, (dx, dy))| Placement::new(id, dx, dy).ok())
        .collect();
    chunks(placements, |to| Op::Move { to })
}

/// `Restyle` ops for those of the strokes that are visible and styled otherwise.
pub fn style(to: impl Iterator<Item = (StrokeId, Dress)>, board: &Board) -> Vec<Op> {
    let (mut styles, mut looks, mut forms, mut moves) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, dress) in to {
        let Some(s) = board.get(&id).filter(|s| !s.erased) else {
            continue;
        };
        if (s.color, s.width) != (dress.color, dress.width) {
            styles.push(Style {
                id,
                color: dress.color,
                width: dress.width,
            });
        }
        if s.look != dress.look {
            looks.push(LookOf {
                id,
                look: dress.look,
            });
        }
        // Only a finished item takes a form (see `Op::Form`).
        if s.finished && s.form != dress.form {
            forms.push(FormOf {
                id,
                form: dress.form,
            });
        }
        if s.offset != dress.offset
            && let Ok(p) = Placement::new(id, dress.offset.0, dress.offset.1)
        {
            moves.push(p);
        }
    }
    let mut ops = chunks(styles, |to| Op::Restyle { to });
    ops.extend(chunks(looks, |to| Op::Look { to }));
    ops.extend(chunks(forms, |to| Op::Form { to }));
    ops.extend(chunks(moves, |to| Op::Move { to }));
    ops
}

/// Splits a list into ops of at most [`MAX_IDS_PER_OP`] items.
pub fn chunks<T: Clone>(items: Vec<T>, op: impl Fn(Bounded<T, MAX_IDS_PER_OP>) -> Op) -> Vec<Op> {
    items
        .chunks(MAX_IDS_PER_OP)
        .filter_map(|c| Bounded::new(c.to_vec()).ok())
        .map(op)
        .collect()
}

#[cfg(test)]
mod tests {
    use kokuban_protocol::{Color, MemberId, Point, Tool, Width};

    use super::*;
    use crate::rng::stroke_id_from;

    const ME: MemberId = MemberId(1);

    fn draw(board: &mut Board, n: u128) -> StrokeId {
        let id = stroke_id_from(n);
        board.apply(
            ME,
            &Op::StrokeBegin {
                id,
                tool: Tool::Pen,
                color: Color::rgb(0, 0, 0),
                width: Width::from_px(2.0),
                first: Point::new(0, 0, 128).unwrap(),
            },
        );
        id
    }

    fn apply(board: &mut Board, ops: &[Op]) {
        for op in ops {
            board.apply(ME, op);
        }
    }

    #[test]
    fn undo_erases_what_you_drew_and_redo_restores_it() {
        let mut b = Board::new();
        let mut h = History::new();
        let a = draw(&mut b, 1);
        h.record(Action::Drew(vec![a]));
        let ops = h.undo(&b);
        assert!(matches!(&ops[..], [Op::Erase { ids }] if ids.as_slice() == [a]));
        apply(&mut b, &ops);
        assert!(b.is_empty());
        assert!(h.can_redo());
        let ops = h.redo(&b);
        assert!(matches!(&ops[..], [Op::Restore { ids }] if ids.as_slice() == [a]));
        apply(&mut b, &ops);
        assert_eq!(b.len(), 1);
        // A new action forgets the redo stack.
        h.undo(&b);
        h.record(Action::Drew(vec![draw(&mut b, 2)]));
        assert!(!h.can_redo());
    }

    #[test]
    fn undo_of_an_erase_restores_and_moves_go_back() {
        let mut b = Board::new();
        let mut h = History::new();
        let a = draw(&mut b, 1);
        let ops = erase(&[a], &b);
        apply(&mut b, &ops);
        h.record(Action::Erased(vec![a]));
        let ops = h.undo(&b);
        apply(&mut b, &ops);
        assert!(!b.get(&a).unwrap().erased);

        let to = Bounded::new(vec![Placement::new(a, 80, 0).unwrap()]).unwrap();
        b.apply(ME, &Op::Move { to });
        h.record(Action::Moved(vec![Move {
            id: a,
            from: (0, 0),
            to: (80, 0),
        }]));
        let ops = h.undo(&b);
        apply(&mut b, &ops);
        assert_eq!(b.get(&a).unwrap().offset, (0, 0));
        let ops = h.redo(&b);
        apply(&mut b, &ops);
        assert_eq!(b.get(&a).unwrap().offset, (80, 0));
    }

    #[test]
    fn actions_whose_strokes_are_gone_are_skipped() {
        let mut b = Board::new();
        let mut h = History::new();
        let a = draw(&mut b, 1);
        h.record(Action::Drew(vec![a]));
        let c = draw(&mut b, 2);
        h.record(Action::Drew(vec![c]));
        // Someone else erased c already: undo goes on to a.
        b.apply(
            MemberId(2),
            &Op::Erase {
                ids: Bounded::new(vec![c]).unwrap(),
            },
        );
        let ops = h.undo(&b);
        assert!(matches!(&ops[..], [Op::Erase { ids }] if ids.as_slice() == [a]));
        b.apply(MemberId(2), &Op::Clear);
        assert!(h.undo(&b).is_empty());
        assert!(!h.can_undo());
    }

    #[test]
    fn renamed_strokes_keep_their_history_and_big_erases_are_split() {
        let mut h = History::new();
        let (a, z) = (stroke_id_from(1), stroke_id_from(9));
        h.record(Action::Drew(vec![a]));
        h.rename(a, z);
        let mut b = Board::new();
        draw(&mut b, 9);
        assert!(matches!(&h.undo(&b)[..], [Op::Erase { ids }] if ids.as_slice() == [z]));
        let many: Vec<StrokeId> = (0..2000).map(|n| draw(&mut b, 100 + n)).collect();
        assert_eq!(erase(&many, &b).len(), 2);
    }
}
