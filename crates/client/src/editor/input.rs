//! Pointer, wheel and keyboard input: which gestures navigate, which go to the tools, and
//! what each shortcut does.

use kokuban_protocol::Cursor;

use super::{DOUBLE_CLICK_MS, DOUBLE_CLICK_PX, Editor, Input, PointerKind, units};
use crate::geom::Pt;
use crate::keymap::{Shortcut, shortcut};
use crate::navigate::{self, WheelMove};
use crate::smooth::Device;
use crate::tools::{TOUCH_RADIUS, TextTarget, ToolInput, ToolKind, pick_text};

/// What the pointers are doing to the camera.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Nav {
    Idle,
    Pan { id: i32, last: Pt },
    Pinch { a: (i32, Pt), b: (i32, Pt) },
}

impl Editor {
    /// A pointer went down on the canvas.
    pub fn pointer_down(&mut self, input: Input) {
        self.pointers.retain(|p| p.0 != input.id);
        self.pointers.push((input.id, input.screen, input.kind));
        if input.kind == PointerKind::Pen {
            self.stylus_seen = true;
        }
        let touches: Vec<(i32, Pt)> = self
            .pointers
            .iter()
            .filter(|p| p.2 == PointerKind::Touch)
            .map(|p| (p.0, p.1))
            .collect();
        if input.kind == PointerKind::Touch && touches.len() >= 2 {
            // A second finger: whatever the first one started was the beginning of a pinch.
            let out = self.tools.cancel();
            self.apply(out);
            self.tool_pointer = None;
            self.nav = Nav::Pinch {
                a: touches[0],
                b: touches[1],
            };
            return;
        }
        if !matches!(self.nav, Nav::Idle)
            || self.tool_pointer.is_some()
            || self.laser_pointer.is_some()
        {
            return;
        }
        // The laser changes nothing on the board, so a view-only member may point with it too.
        if self.tools.kind() == ToolKind::Laser && input.button == 0 && !self.space_held {
            self.laser_pointer = Some(input.id);
            self.laser_point(input.screen, input.time_ms);
            return;
        }
        let pan = input.button == 1
            || self.space_held
            || self.tools.kind() == ToolKind::Hand
            || !self.can_edit()
            // Palm rejection: once a stylus was used, fingers only navigate.
            || (input.kind == PointerKind::Touch && self.stylus_seen);
        if pan {
            self.nav = Nav::Pan {
                id: input.id,
                last: input.screen,
            };
            return;
        }
        if input.button != 0 {
            return;
        }
        let double = self.last_click.is_some_and(|(at, t)| {
            input.time_ms - t <= DOUBLE_CLICK_MS && at.dist(input.screen) <= DOUBLE_CLICK_PX
        });
        self.last_click = (!double).then_some((input.screen, input.time_ms));
        let zoom = self.viewport.zoom();
        if double && self.tools.kind() == ToolKind::Select {
            let at = self.viewport.to_world(input.screen);
            if let Some(id) = pick_text(self.session.indexed(), at, TOUCH_RADIUS / zoom) {
                self.open_text(TextTarget::Edit(id));
                return;
            }
        }
        let out = self.tools.down(
            self.tool_input(&input),
            self.session.indexed(),
            zoom,
            &mut self.rng,
        );
        self.tool_pointer = Some(input.id);
        self.apply(out);
    }

    /// A pointer moved: `samples` are its coalesced samples, oldest first (one at least).
    pub fn pointer_move(&mut self, samples: &[Input]) {
        let Some(last) = samples.last().copied() else {
            return;
        };
        if let Some(p) = self.pointers.iter_mut().find(|p| p.0 == last.id) {
            p.1 = last.screen;
        }
        if self.laser_pointer == Some(last.id) {
            for s in samples {
                self.laser_point(s.screen, s.time_ms);
            }
            self.hover = Some(last.screen);
            return;
        }
        let world = self.viewport.to_world(last.screen);
        if last.kind != PointerKind::Touch || self.tool_pointer == Some(last.id) {
            self.cursor = Some(Cursor::new(units(world.x), units(world.y)).ok());
            // Where a paste lands.
            self.hover = Some(last.screen);
        }
        match self.nav {
            Nav::Pan { id, last: prev } if id == last.id => {
                self.viewport.pan(
                    last.screen.x - prev.x,
                    last.screen.y - prev.y,
                    self.screen.2,
                );
                self.nav = Nav::Pan {
                    id,
                    last: last.screen,
                };
                self.navigated();
                return;
            }
            Nav::Pinch { a, b } if a.0 == last.id || b.0 == last.id => {
                let (na, nb) = if a.0 == last.id {
                    ((a.0, last.screen), b)
                } else {
                    (a, (b.0, last.screen))
                };
                navigate::pinch(&mut self.viewport, (a.1, b.1), (na.1, nb.1), self.screen.2);
                self.nav = Nav::Pinch { a: na, b: nb };
                self.navigated();
                self.bump();
                return;
            }
            _ => {}
        }
        if self.tool_pointer == Some(last.id) {
            let inputs: Vec<ToolInput> = samples.iter().map(|s| self.tool_input(s)).collect();
            let zoom = self.viewport.zoom();
            let out = self
                .tools
                .moved(&inputs, self.session.indexed(), zoom, &mut self.rng);
            self.apply(out);
        }
    }

    /// The laser was at `screen` at `time_ms`: our trail grows at once, and the room hears
    /// of it (the latest point, at the cursor's rate). It also moves our cursor there.
    fn laser_point(&mut self, screen: Pt, time_ms: f64) {
        let world = self.viewport.to_world(screen);
        self.laser.push(world, time_ms);
        if let Ok(at) = Cursor::new(units(world.x), units(world.y)) {
            self.laser_at = Some(at);
            self.cursor = None;
        }
    }

    /// A pointer went up.
    pub fn pointer_up(&mut self, input: Input) {
        self.pointers.retain(|p| p.0 != input.id);
        if self.laser_pointer == Some(input.id) {
            self.laser_pointer = None;
        }
        match self.nav {
            Nav::Pan { id, .. } if id == input.id => self.nav = Nav::Idle,
            Nav::Pinch { a, b } if a.0 == input.id || b.0 == input.id => self.nav = Nav::Idle,
            _ => {}
        }
        if self.tool_pointer == Some(input.id) {
            self.tool_pointer = None;
            let zoom = self.viewport.zoom();
            let out = self.tools.up(
                self.tool_input(&input),
                self.session.indexed(),
                zoom,
                &mut self.rng,
            );
            self.apply(out);
            self.bump();
        }
    }

    /// The browser took a pointer away (`pointercancel`).
    pub fn pointer_cancel(&mut self, id: i32) {
        self.pointers.retain(|p| p.0 != id);
        if self.laser_pointer == Some(id) {
            self.laser_pointer = None;
        }
        if self.tool_pointer == Some(id) {
            self.tool_pointer = None;
            let out = self.tools.cancel();
            self.apply(out);
        }
        if matches!(self.nav, Nav::Pan { id: i, .. } if i == id)
            || matches!(self.nav, Nav::Pinch { a, b } if a.0 == id || b.0 == id)
        {
            self.nav = Nav::Idle;
        }
    }

    /// The pointer left the canvas: others stop seeing our cursor, and a paste lands in the
    /// middle of the screen.
    pub fn pointer_leave(&mut self) {
        self.cursor = Some(None);
        self.hover = None;
    }

    /// A wheel event at `at`, its deltas in pixels: the wheel and a trackpad's two-finger
    /// scroll pan, Ctrl (or ⌘, or a trackpad pinch) zooms around the pointer (see
    /// [`navigate::wheel`]).
    pub fn wheel(&mut self, at: Pt, dx: f64, dy: f64, ctrl: bool, shift: bool) {
        match navigate::wheel(dx, dy, ctrl, shift) {
            WheelMove::Zoom(factor) => {
                self.viewport.zoom_at(at, factor);
                // The zoom percentage on screen changes.
                self.bump();
            }
            WheelMove::Pan { dx, dy } => self.viewport.pan(dx, dy, self.screen.2),
        }
        self.view_changed = true;
    }

    /// A key went down; returns whether the app used it (the page should not). Copy, cut,
    /// paste and the shortcut sheet are the page's: see [`Editor::perform`].
    pub fn key_down(&mut self, key: &str, ctrl: bool, shift: bool) -> bool {
        shortcut(key, ctrl, shift, false).is_some_and(|s| self.perform(s))
    }

    /// Does what a shortcut says; returns whether it was the editor's to do. Copy, cut and
    /// paste return false: the browser's clipboard events carry them (they alone may touch
    /// the system clipboard), as does the shortcut sheet, which is the page's.
    pub fn perform(&mut self, s: Shortcut) -> bool {
        let edit = self.can_edit();
        match s {
            Shortcut::Copy | Shortcut::Cut | Shortcut::Paste | Shortcut::Help => return false,
            // Pointing and panning change nothing on the board: view-only members may too.
            Shortcut::Tool(tool) if edit || matches!(tool, ToolKind::Laser | ToolKind::Hand) => {
                self.set_tool(tool)
            }
            Shortcut::Tool(_) => return false,
            Shortcut::Undo => self.undo(),
            Shortcut::Redo => self.redo(),
            Shortcut::SelectAll => {
                if edit {
                    self.tools.select_all(self.session.view());
                    self.prefs.tool = ToolKind::Select;
                }
            }
            Shortcut::Duplicate => self.duplicate(),
            Shortcut::Delete => self.delete_selection(),
            Shortcut::Escape => {
                self.tools.clear_selection();
                self.unfollow();
                self.show_live();
            }
            Shortcut::Nudge { to, far } => self.nudge(to, far),
            Shortcut::HoldToPan => self.space_held = true,
            Shortcut::ZoomIn => self.zoom_in(),
            Shortcut::ZoomOut => self.zoom_out(),
            Shortcut::ResetZoom => self.reset_zoom(),
            Shortcut::ZoomToFit => self.zoom_to_fit(),
        }
        self.bump();
        true
    }

    /// A key went up.
    pub fn key_up(&mut self, key: &str) {
        if key == " " {
            self.space_held = false;
        }
    }

    /// Whether the board is being panned with space held (the cursor shows a hand).
    pub fn is_panning(&self) -> bool {
        self.space_held || !matches!(self.nav, Nav::Idle)
    }

    /// The handle of the selection under the mouse, if any, as a CSS cursor that says what
    /// it does (`None`: the board's own cursor).
    pub fn handle_cursor(&self) -> Option<&'static str> {
        let at = self.viewport.to_world(self.hover?);
        let zoom = self.viewport.zoom();
        let reach = crate::tools::HANDLE_REACH_PX / zoom;
        let (handle, _) = self
            .tools
            .handles(self.session.view(), zoom)
            .into_iter()
            .filter(|(_, p)| p.dist(at) <= reach)
            .min_by(|a, b| a.1.dist(at).total_cmp(&b.1.dist(at)))?;
        Some(match handle {
            crate::tools::Handle::Stretch(0, _) => "ns-resize",
            crate::tools::Handle::Stretch(_, 0) => "ew-resize",
            crate::tools::Handle::Stretch(x, y) if x == y => "nwse-resize",
            crate::tools::Handle::Stretch(..) => "nesw-resize",
            crate::tools::Handle::Turn => "grab",
        })
    }

    pub(super) fn tool_input(&self, i: &Input) -> ToolInput {
        ToolInput {
            at: self.viewport.to_world(i.screen),
            pressure: i.pressure,
            device: match i.kind {
                PointerKind::Mouse => Device::Mouse,
                PointerKind::Pen => Device::Stylus,
                PointerKind::Touch => Device::Touch,
            },
            time_ms: i.time_ms,
            shift: i.shift,
        }
    }
}
