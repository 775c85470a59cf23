//! Every keyboard shortcut of the app, and the sheet that lists them (`?`).
//!
//! [`shortcut`] turns a key press into what it does; [`sheet`] is what the shortcut sheet
//! shows. A test checks that every shortcut is on the sheet and every line of the sheet does
//! what it says, so the two cannot drift apart.

use crate::tools::ToolKind;

/// Which way an arrow key nudges the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// ←
    Left,
    /// →
    Right,
    /// ↑
    Up,
    /// ↓
    Down,
}

impl Direction {
    /// The unit step, `(dx, dy)` in screen orientation (y grows downwards).
    pub fn step(self) -> (i32, i32) {
        match self {
            Direction::Left => (-1, 0),
            Direction::Right => (1, 0),
            Direction::Up => (0, -1),
            Direction::Down => (0, 1),
        }
    }
}

/// What a key press does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shortcut {
    /// Pick a tool.
    Tool(ToolKind),
    /// Undo this tab's latest action.
    Undo,
    /// Redo it.
    Redo,
    /// Select everything.
    SelectAll,
    /// Copy the selection to the clipboard.
    Copy,
    /// Copy the selection and erase it.
    Cut,
    /// Paste at the pointer.
    Paste,
    /// Copy the selection next to itself.
    Duplicate,
    /// Erase the selection.
    Delete,
    /// Close what is open, or clear the selection.
    Escape,
    /// Zoom in one step.
    ZoomIn,
    /// Zoom out one step.
    ZoomOut,
    /// Back to 100%.
    ResetZoom,
    /// Frame the whole drawing.
    ZoomToFit,
    /// Move the selection by one pixel (`far`: ten).
    Nudge {
        /// Which way.
        to: Direction,
        /// Shift held: ten times as far.
        far: bool,
    },
    /// Pan while held (Space).
    HoldToPan,
    /// Show the shortcut sheet.
    Help,
}

impl Shortcut {
    /// Every shortcut there is.
    pub fn all() -> Vec<Shortcut> {
        let mut all: Vec<Shortcut> = ToolKind::ALL.into_iter().map(Shortcut::Tool).collect();
        all.extend([
            Shortcut::Undo,
            Shortcut::Redo,
            Shortcut::SelectAll,
            Shortcut::Copy,
            Shortcut::Cut,
            Shortcut::Paste,
            Shortcut::Duplicate,
            Shortcut::Delete,
            Shortcut::Escape,
            Shortcut::ZoomIn,
            Shortcut::ZoomOut,
            Shortcut::ResetZoom,
            Shortcut::ZoomToFit,
            Shortcut::HoldToPan,
            Shortcut::Help,
        ]);
        for to in [
            Direction::Left,
            Direction::Right,
            Direction::Up,
            Direction::Down,
        ] {
            all.push(Shortcut::Nudge { to, far: false });
            all.push(Shortcut::Nudge { to, far: true });
        }
        all
    }
}

/// What pressing `key` (a `KeyboardEvent.key`) does, with Ctrl (or ⌘) and Shift as given.
/// Alt is left to the system (it types characters on some layouts).
pub fn shortcut(key: &str, ctrl: bool, shift: bool, alt: bool) -> Option<Shortcut> {
    if alt {
        return None;
    }
    let lower = key.to_lowercase();
    if ctrl {
        return Some(match lower.as_str() {
            "z" if shift => Shortcut::Redo,
            "z" => Shortcut::Undo,
            "y" => Shortcut::Redo,
            "a" => Shortcut::SelectAll,
            "c" => Shortcut::Copy,
            "x" => Shortcut::Cut,
            "v" => Shortcut::Paste,
            "d" => Shortcut::Duplicate,
            _ => return None,
        });
    }
    let arrow = |to| Shortcut::Nudge { to, far: shift };
    Some(match lower.as_str() {
        " " => Shortcut::HoldToPan,
        "delete" | "backspace" => Shortcut::Delete,
        "escape" => Shortcut::Escape,
        "+" | "=" => Shortcut::ZoomIn,
        "-" | "_" => Shortcut::ZoomOut,
        "0" => Shortcut::ResetZoom,
        "f" => Shortcut::ZoomToFit,
        "?" => Shortcut::Help,
        "arrowleft" => arrow(Direction::Left),
        "arrowright" => arrow(Direction::Right),
        "arrowup" => arrow(Direction::Up),
        "arrowdown" => arrow(Direction::Down),
        k => {
            let mut chars = k.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Shortcut::Tool(ToolKind::from_shortcut(c)?),
                _ => return None,
            }
        }
    })
}

/// A section of the shortcut sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Its heading.
    pub title: &'static str,
    /// `(keys, what they do)`, in the order shown.
    pub lines: Vec<(String, String)>,
}

/// One line of the sheet as written: the keys as shown (`Mod` is Ctrl, or ⌘ on a Mac), what
/// they do, and the key presses that line stands for (checked by the tests).
struct Line {
    keys: &'static str,
    what: &'static str,
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the tests check each line with it")
    )]
    presses: &'static [(&'static str, bool, bool)],
}

const EDIT: &[Line] = &[
    Line {
        keys: "Mod+Z",
        what: "Undo",
        presses: &[("z", true, false)],
    },
    Line {
        keys: "Mod+Shift+Z or Mod+Y",
        what: "Redo",
        presses: &[("Z", true, true), ("y", true, false)],
    },
    Line {
        keys: "Mod+A",
        what: "Select everything",
        presses: &[("a", true, false)],
    },
    Line {
        keys: "Mod+C",
        what: "Copy the selection",
        presses: &[("c", true, false)],
    },
    Line {
        keys: "Mod+X",
        what: "Cut the selection",
        presses: &[("x", true, false)],
    },
    Line {
        keys: "Mod+V",
        what: "Paste at the pointer (drawings, or text as a text item)",
        presses: &[("v", true, false)],
    },
    Line {
        keys: "Mod+D",
        what: "Duplicate the selection",
        presses: &[("d", true, false)],
    },
    Line {
        keys: "← ↑ → ↓",
        what: "Nudge the selection by 1 px",
        presses: &[
            ("ArrowLeft", false, false),
            ("ArrowRight", false, false),
            ("ArrowUp", false, false),
            ("ArrowDown", false, false),
        ],
    },
    Line {
        keys: "Shift+← ↑ → ↓",
        what: "Nudge the selection by 10 px",
        presses: &[
            ("ArrowLeft", false, true),
            ("ArrowRight", false, true),
            ("ArrowUp", false, true),
            ("ArrowDown", false, true),
        ],
    },
    Line {
        keys: "Delete or Backspace",
        what: "Erase the selection",
        presses: &[("Delete", false, false), ("Backspace", false, false)],
    },
    Line {
        keys: "Esc",
        what: "Close a menu, or clear the selection",
        presses: &[("Escape", false, false)],
    },
];

const VIEW: &[Line] = &[
    Line {
        keys: "Space + drag",
        what: "Pan",
        presses: &[(" ", false, false)],
    },
    Line {
        keys: "+ or =",
        what: "Zoom in",
        presses: &[("+", false, true), ("=", false, false)],
    },
    Line {
        keys: "−",
        what: "Zoom out",
        presses: &[("-", false, false), ("_", false, true)],
    },
    Line {
        keys: "0",
        what: "Zoom to 100%",
        presses: &[("0", false, false)],
    },
    Line {
        keys: "F",
        what: "Zoom to fit the drawing",
        presses: &[("f", false, false)],
    },
    Line {
        keys: "?",
        what: "This list",
        presses: &[("?", false, true)],
    },
];

/// Pointer gestures: not key presses, but part of what a user needs to know.
const GESTURES: &[(&str, &str)] = &[
    ("Wheel or two-finger scroll", "Pan"),
    ("Mod+wheel or pinch", "Zoom around the pointer"),
    ("Middle button drag", "Pan"),
    ("Two fingers on a touch screen", "Pan and zoom"),
    ("Shift+click", "Add to the selection"),
    ("Double-click a text", "Edit it"),
    (
        "Shift while drawing a shape",
        "Straight angles, squares and circles",
    ),
    ("Drag a handle of the selection", "Resize it"),
    ("Shift while resizing", "Keep its proportions"),
    ("Drag the knob above the selection", "Rotate it"),
    ("Shift while rotating", "In 15° steps"),
    ("Paste or drop a picture", "Add it to the board"),
];

/// The shortcut sheet, with `Mod` written as ⌘ on a Mac and Ctrl elsewhere.
pub fn sheet(mac: bool) -> Vec<Section> {
    let modifier = if mac { "⌘" } else { "Ctrl" };
    let lines = |lines: &[Line]| {
        lines
            .iter()
            .map(|l| (l.keys.replace("Mod", modifier), l.what.to_string()))
            .collect()
    };
    let tools = ToolKind::ALL
        .into_iter()
        .map(|k| {
            (
                k.shortcut().to_ascii_uppercase().to_string(),
                k.label().to_string(),
            )
        })
        .collect();
    vec![
        Section {
            title: "Tools",
            lines: tools,
        },
        Section {
            title: "Edit",
            lines: lines(EDIT),
        },
        Section {
            title: "View",
            lines: lines(VIEW),
        },
        Section {
            title: "Pointer",
            lines: GESTURES
                .iter()
                .map(|(k, w)| (k.replace("Mod", modifier), w.to_string()))
                .collect(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn keys_do_what_excalidraw_and_tldraw_users_expect() {
        assert_eq!(shortcut("z", true, false, false), Some(Shortcut::Undo));
        assert_eq!(shortcut("Z", true, true, false), Some(Shortcut::Redo));
        assert_eq!(shortcut("d", true, false, false), Some(Shortcut::Duplicate));
        assert_eq!(
            shortcut("ArrowLeft", false, true, false),
            Some(Shortcut::Nudge {
                to: Direction::Left,
                far: true
            })
        );
        assert_eq!(shortcut("?", false, true, false), Some(Shortcut::Help));
        // A tool letter with Ctrl is not the tool: Ctrl+A selects all, A alone is the arrow.
        assert_eq!(shortcut("a", true, false, false), Some(Shortcut::SelectAll));
        assert_eq!(
            shortcut("a", false, false, false),
            Some(Shortcut::Tool(ToolKind::Arrow))
        );
        assert_eq!(
            shortcut("P", false, true, false),
            Some(Shortcut::Tool(ToolKind::Pen))
        );
        // Alt combinations, unknown keys and characters are left alone.
        assert_eq!(shortcut("z", true, false, true), None);
        assert_eq!(shortcut("q", false, false, false), None);
        assert_eq!(shortcut("ß", false, false, false), None);
        assert_eq!(shortcut("Tab", false, false, false), None);
        assert_eq!(Direction::Up.step(), (0, -1));
    }

    #[test]
    fn the_sheet_lists_every_shortcut_and_each_line_does_what_it_says() {
        let mut listed = HashSet::new();
        for line in EDIT.iter().chain(VIEW) {
            assert!(!line.presses.is_empty(), "{}", line.keys);
            for &(key, ctrl, shift) in line.presses {
                let s = shortcut(key, ctrl, shift, false)
                    .unwrap_or_else(|| panic!("`{}` on the sheet does nothing", line.keys));
                listed.insert(s);
            }
        }
        for k in ToolKind::ALL {
            let letter = k.shortcut().to_string();
            assert_eq!(
                shortcut(&letter, false, false, false),
                Some(Shortcut::Tool(k))
            );
            listed.insert(Shortcut::Tool(k));
        }
        for s in Shortcut::all() {
            assert!(listed.contains(&s), "{s:?} is missing from the sheet");
        }

        let sheet = sheet(false);
        assert_eq!(
            sheet.iter().map(|s| s.title).collect::<Vec<_>>(),
            ["Tools", "Edit", "View", "Pointer"]
        );
        assert_eq!(sheet[0].lines.len(), ToolKind::ALL.len());
        assert!(sheet[0].lines.contains(&("P".into(), "Pen".into())));
        assert!(
            sheet[1]
                .lines
                .contains(&("Ctrl+D".into(), "Duplicate the selection".into()))
        );
        let mac = super::sheet(true);
        assert!(mac[1].lines.contains(&("⌘+Z".into(), "Undo".into())));
        assert!(
            mac.iter()
                .flat_map(|s| &s.lines)
                .all(|(k, _)| !k.contains("Ctrl"))
        );
    }
}
