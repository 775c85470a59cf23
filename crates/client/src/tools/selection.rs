//! What the keyboard and the clipboard do to the selection: select new items, nudge them.

use kokuban_board::Board;
use kokuban_protocol::StrokeId;

use super::{Output, ToolKind, Tools, placements};
use crate::history::{Action, Move};

impl Tools {
    /// Selects exactly `ids` (e.g. what a paste just made) with the select tool, so that they
    /// can be dragged or nudged at once. Ignored in the middle of a gesture.
    pub fn select(&mut self, ids: Vec<StrokeId>) {
        if self.is_active() {
            return;
        }
        self.kind = ToolKind::Select;
        self.selection = ids;
    }

    /// Moves the selection by `(dx, dy)` fixed-point units with one `Move` (undoable as one
    /// step). Nothing happens in the middle of a gesture or without a selection.
    pub fn nudge(&mut self, board: &Board, (dx, dy): (i32, i32)) -> Output {
        if self.is_active() || (dx, dy) == (0, 0) {
            return Output::default();
        }
        let originals: Vec<(StrokeId, (i32, i32))> = self
            .selection
            .iter()
            .filter_map(|id| board.get(id).filter(|s| !s.erased).map(|s| (*id, s.offset)))
            .collect();
        if originals.is_empty() {
            return Output::default();
        }
        let moves = originals
            .iter()
            .map(|&(id, from)| Move {
                id,
                from,
                to: (from.0 + dx, from.1 + dy),
            })
            .collect();
        Output {
            ops: placements(&originals, (dx, dy)),
            action: Some(Action::Moved(moves)),
            text: None,
        }
    }
}
