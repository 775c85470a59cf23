//! A version of the board (one the server kept: before each Clear, and at intervals of
//! drawing) shown in place of the live board, read-only, and brought back for everyone.
//!
//! While a version is shown, the tab draws nothing (the tools are put down and
//! [`Editor::can_edit`] is false), and the live board goes on underneath: ops from the room
//! are applied to it as always, and it is shown again, as it is by then, when the version is
//! closed. Bringing a version back is an ordinary edit, so everyone sees it in the room's
//! order and it can be undone: a Clear (after which the server keeps the board it cleared
//! as a version too), then the version's items drawn again as new items, as one undo step.

use kokuban_board::Board;
use kokuban_protocol::Op;

use super::Editor;
use crate::clipboard::Clip;
use crate::history::Action;
use crate::spatial::IndexedBoard;

/// A version shown in place of the live board.
#[derive(Debug)]
pub(super) struct Shown {
    /// Its id (when the server kept it, in ms since the Unix epoch).
    id: u64,
    board: IndexedBoard,
}

impl Editor {
    /// Shows version `id`, whose board is `board`, in place of the live board, read-only,
    /// until [`Editor::show_live`] or [`Editor::restore_version`].
    pub fn show_version(&mut self, id: u64, board: Board) {
        let out = self.tools.cancel();
        self.apply(out);
        self.tool_pointer = None;
        self.tools.clear_selection();
        self.shown = Some(Shown {
            id,
            board: IndexedBoard::new(board),
        });
        self.board_swapped = true;
        self.bump();
    }

    /// Shows the live board again.
    pub fn show_live(&mut self) {
        if self.shown.take().is_some() {
            self.board_swapped = true;
            self.bump();
        }
    }

    /// The id of the version shown in place of the live board.
    pub fn version_shown(&self) -> Option<u64> {
        self.shown.as_ref().map(|s| s.id)
    }

    /// The board on screen: the version shown, or the live board (for the renderer).
    pub fn shown(&self) -> &IndexedBoard {
        self.shown
            .as_ref()
            .map_or_else(|| self.session.indexed(), |s| &s.board)
    }

    /// Whether the board on screen became another one since the last call: the renderer
    /// draws it afresh.
    pub fn take_board_swapped(&mut self) -> bool {
        std::mem::take(&mut self.board_swapped)
    }

    /// Whether this tab may bring a version back (it may edit the room).
    pub fn can_restore(&self) -> bool {
        self.may_write()
    }

    /// Brings the version shown back for everyone, and shows the live board: clears the
    /// board, then draws the version's items again as new items (items cleared for good
    /// cannot be restored under their ids). One undo erases them and draws again what was
    /// cleared; redo brings the version back again. Nothing happens in a view-only tab.
    pub fn restore_version(&mut self) {
        let Some(shown) = self.shown.take() else {
            return;
        };
        self.board_swapped = true;
        self.bump();
        if !self.may_write() {
            return;
        }
        let live = self.session.view();
        let before = Clip::everything(live).map(|c| c.paste_moved((0, 0), &mut self.rng));
        let after = Clip::everything(shown.board.board())
            .map(|c| c.paste_moved((0, 0), &mut self.rng))
            .unwrap_or_default();
        let mut ops = Vec::with_capacity(after.ops.len() + 1);
        if !live.is_empty() {
            ops.push(Op::Clear);
        }
        ops.extend(after.ops);
        if ops.is_empty() {
            return;
        }
        self.local(ops);
        let (ops, ids) = before.map(|b| (b.ops, b.ids)).unwrap_or_default();
        self.history.record(Action::Cleared {
            ops,
            ids,
            drawn: after.ids,
        });
    }
}
