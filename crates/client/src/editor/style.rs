//! Restyling the selection: a colour or size picked while items are selected is given to them
//! (and stays the default for new items), as one undoable `Restyle` for everyone.

use kokuban_board::{Shape, Stroke};
use kokuban_protocol::{Color, Tool, Width};

use super::Editor;
use crate::history::{Action, Restyling, style};
use crate::prefs::Size;

impl Editor {
    /// Gives the selected items `ink` (when given) and the width of `size` for their kind
    /// (when given): a text item's font size, a highlighter's or another stroke's width.
    pub(super) fn restyle_selection(&mut self, ink: Option<Color>, size: Option<Size>) {
        if !self.can_edit() || self.tools.is_active() {
            return;
        }
        let board = self.session.view();
        let changes: Vec<Restyling> = self
            .tools
            .selection()
            .iter()
            .filter_map(|id| board.get(id).filter(|s| !s.erased))
            .filter_map(|s| {
                let to = (
                    ink.unwrap_or(s.color),
                    size.map_or(s.width, |z| width_of(s, z)),
                );
                let from = (s.color, s.width);
                (to != from).then_some(Restyling { id: s.id, from, to })
            })
            .collect();
        if changes.is_empty() {
            return;
        }
        let ops = style(changes.iter().map(|c| (c.id, c.to)), board);
        self.history.record(Action::Restyled(changes));
        self.local(ops);
    }
}

impl Editor {
    /// The colour and the size the selected items share, if they share one (for the toolbar
    /// to show them picked); `None` for each when nothing is selected or they differ.
    pub fn selection_style(&self) -> (Option<Color>, Option<Size>) {
        let board = self.session.view();
        let selected: Vec<&Stroke> = self
            .tools
            .selection()
            .iter()
            .filter_map(|id| board.get(id).filter(|s| !s.erased))
            .collect();
        let Some(first) = selected.first() else {
            return (None, None);
        };
        let ink = selected
            .iter()
            .all(|s| s.color == first.color)
            .then_some(first.color);
        let size = Size::ALL
            .into_iter()
            .find(|&z| selected.iter().all(|s| s.width == width_of(s, z)));
        (ink, size)
    }
}

/// The width `size` gives an item of this kind.
fn width_of(stroke: &Stroke, size: Size) -> Width {
    match stroke.shape {
        Shape::Text(_) => size.text(),
        Shape::Ink(Tool::Highlighter) => size.highlighter(),
        Shape::Ink(_) => size.pen(),
    }
}
