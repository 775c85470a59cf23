//! The Kokuban browser app's logic, as plain Rust types with native tests.
//!
//! Nothing here touches the DOM: the `frontend/` crate turns browser events into calls on
//! [`Editor`] and draws what it holds. That keeps every decision that can be wrong — how a
//! stroke is smoothed, which ops a tool emits, how the local board reconciles with the room's
//! order, when to reconnect — testable with `cargo test`.
//!
//! Coordinates: the *world* is measured in CSS pixels at zoom 1 (`f64`), quantized to the
//! protocol's fixed point (1/8 px) only when a point becomes part of an op. The *screen* is
//! CSS pixels of the canvas element.

pub mod cache;
pub mod clipboard;
pub mod connection;
mod editor;
pub mod geom;
pub mod history;
pub mod keymap;
pub mod link;
pub mod navigate;
pub mod outbox;
pub mod panels;
pub mod prefs;
pub mod presence;
pub mod recent;
pub mod redraw;
pub mod rng;
pub mod scene;
pub mod session;
pub mod shape;
pub mod smooth;
pub mod spatial;
pub mod svg;
pub mod tools;
pub mod versions;
pub mod viewport;

pub use editor::{
    Command, DUPLICATE_OFFSET_PX, Editor, Input, LookPart, NO_TOKEN, NUDGE_PX, PointerKind,
    TextRequest,
};

#[cfg(test)]
mod fixtures {
    use kokuban_board::{Shape, Stroke};
    use kokuban_protocol::{Color, MemberId, Point, Tool, Width};

    use crate::rng::stroke_id_from;

    /// A finished 4 px black stroke through `(x, y, pressure)` points.
    pub(crate) fn stroke(tool: Tool, pts: &[(f64, f64, f64)]) -> Stroke {
        Stroke {
            id: stroke_id_from(1),
            author: MemberId(1),
            shape: Shape::Ink(tool),
            color: Color::rgb(0, 0, 0),
            width: Width::from_px(4.0),
            points: pts
                .iter()
                .map(|&(x, y, p)| Point::from_px(x, y, p).unwrap())
                .collect(),
            finished: true,
            erased: false,
            offset: (0, 0),
            look: Default::default(),
            form: Default::default(),
        }
    }
}
