//! Text items: placing one where the text editor was opened, and replacing one by its
//! edited text.

use kokuban_board::Shape;
use kokuban_protocol::{Bounded, Op, Point, StrokeId, Text};

use super::{Output, Tools, dressed};
use crate::geom::Pt;
use crate::history::Action;
use crate::rng::{Entropy, new_stroke_id};
use crate::spatial::IndexedBoard;

impl Tools {
    /// Places a text item at `at` (after the text editor the app opened is committed).
    pub fn text(&mut self, at: Pt, text: &str, rng: &mut dyn Entropy) -> Output {
        let trimmed = text.trim_end();
        let (Ok(text), Ok(at)) = (Text::new(trimmed), Point::from_px(at.x, at.y, 0.5)) else {
            return Output::default();
        };
        if trimmed.trim().is_empty() {
            return Output::default();
        }
        let id = new_stroke_id(rng);
        let mut ops = vec![Op::Text {
            id,
            at,
            color: self.ink,
            size: self.size.text(),
            text,
        }];
        ops.extend(dressed(id, self.look));
        Output {
            ops,
            action: Some(Action::Drew(vec![id])),
            text: None,
        }
    }

    /// Replaces the content of the text item `id` by `text`, as a new item in its place (same
    /// corner, colour and size) and an erase of the old one: existing ops every client already
    /// applies, undone together as one [`Action::Replaced`]. Emptied text erases the item;
    /// unchanged text, or an item that is no longer on the board, changes nothing.
    pub fn edit_text(
        &mut self,
        board: &IndexedBoard,
        id: StrokeId,
        text: &str,
        rng: &mut dyn Entropy,
    ) -> Output {
        let Some(old) = board.get(&id).filter(|s| !s.erased) else {
            return Output::default();
        };
        let Shape::Text(before) = &old.shape else {
            return Output::default();
        };
        let trimmed = text.trim_end();
        if trimmed == before.as_str() {
            return Output::default();
        }
        let Ok(erase) = Bounded::new(vec![id]) else {
            return Output::default();
        };
        if trimmed.trim().is_empty() {
            return Output {
                ops: vec![Op::Erase { ids: erase }],
                action: Some(Action::Erased(vec![id])),
                text: None,
            };
        }
        let (Ok(text), Some(at)) = (Text::new(trimmed), old.placed_points().next()) else {
            return Output::default();
        };
        let new = new_stroke_id(rng);
        // The new item first, so that no client ever shows neither.
        let mut ops = vec![Op::Text {
            id: new,
            at,
            color: old.color,
            size: old.width,
            text,
        }];
        ops.extend(dressed(new, old.look));
        // Stretched or turned as the old one was.
        if old.form != kokuban_protocol::Form::default()
            && let Ok(to) = Bounded::new(vec![kokuban_protocol::FormOf {
                id: new,
                form: old.form,
            }])
        {
            ops.push(Op::Form { to });
        }
        ops.push(Op::Erase { ids: erase });
        Output {
            ops,
            action: Some(Action::Replaced { old: id, new }),
            text: None,
        }
    }
}
