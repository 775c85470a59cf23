//! Editing the selection from the keyboard and the clipboard: copy, cut, paste, duplicate and
//! nudge. Everything is done with the ops that exist: a paste or a duplicate creates new items
//! (fresh ids, `StrokeBegin`/`StrokePoints`/`StrokeEnd`/`Text`), a nudge is a `Move`.

use kokuban_protocol::BlobHash;
use kokuban_protocol::limits::SUBPIXELS;

use super::Editor;
use crate::clipboard::{Clip, plain_text};
use crate::geom::Pt;
use crate::history::Action;
use crate::keymap::Direction;
use crate::tools::{Output, ToolKind};

/// A duplicate lands this far (screen pixels, right and down) from its original, so that it
/// is seen to be a new copy at any zoom.
pub const DUPLICATE_OFFSET_PX: f64 = 16.0;
/// An arrow key moves the selection this far (world pixels); with Shift ten times as far.
pub const NUDGE_PX: i32 = 1;
/// A picture is placed at its own size on screen, or smaller so that it covers at most this
/// share of the screen's width and height.
pub const IMAGE_SCREEN_SHARE: f64 = 0.6;

impl Editor {
    /// Whether something is selected (copy, cut, duplicate and nudge act on it).
    pub fn has_selection(&self) -> bool {
        !self.tools.selection().is_empty()
    }

    /// The selection as clipboard text (see [`crate::clipboard`]); None when nothing is
    /// selected, so that the browser copies whatever else the user meant.
    pub fn copy(&self) -> Option<String> {
        Clip::of(self.session.view(), self.tools.selection()).map(|c| c.to_json())
    }

    /// Copies the selection, then erases it (one undo step brings it back).
    pub fn cut(&mut self) -> Option<String> {
        if !self.can_edit() {
            return None;
        }
        let copied = self.copy()?;
        self.delete_selection();
        Some(copied)
    }

    /// Pastes clipboard text at the pointer (or the middle of the screen when the pointer is
    /// not over the board): a Kokuban clip becomes new copies of its items, selected; other
    /// text becomes a text item. Returns whether anything was pasted.
    pub fn paste(&mut self, text: &str) -> bool {
        if !self.can_edit() || self.tools.is_active() {
            return false;
        }
        let at = self.viewport.to_world(self.paste_point());
        if let Some(clip) = Clip::from_json(text) {
            let pasted = clip.paste_at(at, &mut self.rng);
            self.place(pasted.ops, pasted.ids);
            return true;
        }
        let Some(text) = plain_text(text) else {
            return false;
        };
        // Centred on the pointer, as a pasted drawing is.
        let size = self.tools.size.text().px();
        let (w, h) = crate::shape::text_box(&text, size);
        let corner = Pt::new(at.x - w / 2.0, at.y - h / 2.0);
        let out = self.tools.text(corner, &text, &mut self.rng);
        let ids = match &out.action {
            Some(Action::Drew(ids)) => ids.clone(),
            _ => return false,
        };
        self.place(out.ops, ids);
        true
    }

    /// Copies the selection next to itself and selects the copies (Ctrl+D); repeated, each
    /// copy steps further along.
    pub fn duplicate(&mut self) {
        if !self.can_edit() || self.tools.is_active() {
            return;
        }
        let Some(clip) = Clip::of(self.session.view(), self.tools.selection()) else {
            return;
        };
        let step = (DUPLICATE_OFFSET_PX / self.viewport.zoom() * f64::from(SUBPIXELS)).round();
        let step = step.clamp(1.0, f64::from(i32::MAX / 4)) as i32;
        let pasted = clip.paste_moved((step, step), &mut self.rng);
        self.place(pasted.ops, pasted.ids);
    }

    /// Moves the selection one pixel (`far`: ten) with an arrow key.
    pub fn nudge(&mut self, to: Direction, far: bool) {
        if !self.can_edit() {
            return;
        }
        let px = if far { 10 * NUDGE_PX } else { NUDGE_PX };
        let (x, y) = to.step();
        let d = (x * px * SUBPIXELS, y * px * SUBPIXELS);
        let out = self.tools.nudge(self.session.view(), d);
        self.apply(out);
    }

    /// Applies the ops that created `ids`, records them as one undoable step, and selects
    /// them with the select tool.
    fn place(&mut self, ops: Vec<kokuban_protocol::Op>, ids: Vec<kokuban_protocol::StrokeId>) {
        self.apply(Output {
            ops,
            action: Some(Action::Drew(ids.clone())),
            text: None,
        });
        self.tools.select(ids);
        self.prefs.tool = ToolKind::Select;
        self.prefs_changed = true;
        self.bump();
    }

    /// Places an uploaded picture `blob` of `natural` size (pixels) centred on `at` (screen;
    /// `None`: where a paste lands), at its own size on screen unless that is more than
    /// [`IMAGE_SCREEN_SHARE`] of the screen, selected, as one undo step. Returns whether it was
    /// placed (not by a view-only link, nor in the middle of a gesture).
    pub fn place_image(&mut self, blob: BlobHash, natural: (f64, f64), at: Option<Pt>) -> bool {
        if !self.can_edit() || self.tools.is_active() {
            return false;
        }
        let (w, h) = natural;
        if !(w.is_finite() && h.is_finite() && w >= 1.0 && h >= 1.0) {
            return false;
        }
        let fit = (IMAGE_SCREEN_SHARE * self.screen.0 / w)
            .min(IMAGE_SCREEN_SHARE * self.screen.1 / h)
            .min(1.0);
        let zoom = self.viewport.zoom();
        // World size: what shows `fit × natural` pixels on screen at this zoom, never less
        // than a pixel each way.
        let (w, h) = ((w * fit / zoom).max(1.0), (h * fit / zoom).max(1.0));
        let centre = self
            .viewport
            .to_world(at.unwrap_or_else(|| self.paste_point()));
        let corner = |x: f64, y: f64| kokuban_protocol::Point::from_px(x, y, 0.0).ok();
        let (Some(from), Some(to)) = (
            corner(centre.x - w / 2.0, centre.y - h / 2.0),
            corner(centre.x + w / 2.0, centre.y + h / 2.0),
        ) else {
            return false;
        };
        let id = crate::rng::new_stroke_id(&mut self.rng);
        let Some(op) = crate::geom::image_op(id, blob, &[from, to]) else {
            return false;
        };
        self.place(vec![op], vec![id]);
        true
    }

    /// Where a paste lands, on screen.
    fn paste_point(&self) -> Pt {
        self.hover
            .unwrap_or(Pt::new(self.screen.0 / 2.0, self.screen.1 / 2.0))
    }
}
