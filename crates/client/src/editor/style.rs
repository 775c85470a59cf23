//! Restyling the selection: a colour, size, fill, stroke style, opacity or alignment picked
//! while items are selected is given to them (and stays the default for new items), as one
//! undoable `Restyle` and `Look` for everyone.

use kokuban_board::{Shape, Stroke};
use kokuban_protocol::{Align, Color, Dash, Fill, Look, Opacity, Tool, Width};

use super::Editor;
use crate::history::{Action, Dress, Restyling, style};
use crate::prefs::Size;

/// One part of a look, as a control of the style panel picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookPart {
    /// The fill of closed shapes.
    Fill(Fill),
    /// The line's style.
    Dash(Dash),
    /// The opacity.
    Opacity(Opacity),
    /// The alignment of text.
    Align(Align),
}

impl LookPart {
    /// `look` with this part set.
    pub fn on(self, mut look: Look) -> Look {
        match self {
            LookPart::Fill(f) => look.fill = f,
            LookPart::Dash(d) => look.dash = d,
            LookPart::Opacity(o) => look.opacity = o,
            LookPart::Align(a) => look.align = a,
        }
        look
    }
}

impl Editor {
    /// Gives the selected items `ink` (when given), the width of `size` for their kind (when
    /// given: a text item's font size, a highlighter's or another stroke's width) and `part`
    /// of a look (when given).
    pub(super) fn restyle_selection(
        &mut self,
        ink: Option<Color>,
        size: Option<Size>,
        part: Option<LookPart>,
    ) {
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
                let from = Dress::of(s);
                let to = Dress {
                    color: ink.unwrap_or(s.color),
                    width: size.map_or(s.width, |z| width_of(s, z)),
                    look: part.map_or(s.look, |p| p.on(s.look)),
                    ..from
                };
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
    /// The look the style panel shows: the first selected item's whole look (even where the
    /// other selected items differ from it), else, with nothing selected, the one new items get.
    pub fn shown_look(&self) -> Look {
        let board = self.session.view();
        self.tools
            .selection()
            .iter()
            .find_map(|id| board.get(id).filter(|s| !s.erased))
            .map_or(self.tools.look, |s| s.look)
    }

    /// Sets `part` of the look new items get, and gives it to the selected items.
    pub fn set_look(&mut self, part: LookPart) {
        self.restyle_selection(None, None, Some(part));
        self.tools.look = part.on(self.tools.look);
        self.prefs.look = self.tools.look;
        self.prefs_changed = true;
        self.bump();
    }

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
        // An image has no width to speak of: a size leaves it as it is.
        Shape::Image(_) => stroke.width,
        Shape::Ink(Tool::Highlighter) => size.highlighter(),
        Shape::Ink(_) => size.pen(),
    }
}
