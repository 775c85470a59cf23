//! Which popover of the page is open: at most one. Opening one closes the other; a choice in
//! it, Esc, or a pointer going down anywhere outside it closes it, as in every desktop app.

use crate::keymap::Shortcut;

/// A popover (or panel, or sheet) of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Panel {
    /// Colours and sizes, when the toolbar is too narrow to show them.
    Style,
    /// The shape tools, when the toolbar is too narrow to show them.
    Shapes,
    /// The links to copy.
    Share,
    /// Export, the shortcut sheet, clearing the board.
    Menu,
    /// Our name and colour.
    Profile,
    /// The shortcut sheet.
    Help,
    /// Everyone in the room, when there are more than the avatars shown.
    Members,
    /// The versions of the board.
    History,
    /// Fill, line style, opacity and text alignment.
    Look,
}

impl Panel {
    /// Every panel.
    pub const ALL: [Panel; 9] = [
        Panel::Style,
        Panel::Shapes,
        Panel::Share,
        Panel::Menu,
        Panel::Profile,
        Panel::Help,
        Panel::Members,
        Panel::History,
        Panel::Look,
    ];

    /// Its `data-panel` attribute: the element holding a panel and its toggle carries it, so
    /// that a pointer going down inside it is not "outside".
    pub fn name(self) -> &'static str {
        match self {
            Panel::Style => "style",
            Panel::Shapes => "shapes",
            Panel::Share => "share",
            Panel::Menu => "menu",
            Panel::Profile => "profile",
            Panel::Help => "help",
            Panel::Members => "members",
            Panel::History => "history",
            Panel::Look => "look",
        }
    }

    /// The panel of a `data-panel` attribute.
    pub fn from_name(name: &str) -> Option<Panel> {
        Panel::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The open panel, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Panels {
    open: Option<Panel>,
}

impl Panels {
    /// None open.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `panel` is open.
    pub fn is_open(&self, panel: Panel) -> bool {
        self.open == Some(panel)
    }

    /// The open panel.
    pub fn open(&self) -> Option<Panel> {
        self.open
    }

    /// Its toggle was pressed: opens it (closing any other), or closes it.
    pub fn toggle(&mut self, panel: Panel) {
        self.open = if self.is_open(panel) {
            None
        } else {
            Some(panel)
        };
    }

    /// Closes whatever is open (a choice was made); returns whether something was.
    pub fn close(&mut self) -> bool {
        self.open.take().is_some()
    }

    /// A pointer went down inside `inside` (None: outside every panel): any other open panel
    /// closes. Returns whether one did.
    pub fn pointer_down(&mut self, inside: Option<Panel>) -> bool {
        if self.open.is_some() && self.open != inside {
            return self.close();
        }
        false
    }

    /// Whether the page takes this shortcut ([`Panels::shortcut`]) rather than the editor.
    /// The shortcut sheet is modal: while it is open, no other shortcut reaches the board.
    pub fn takes(&self, s: Shortcut) -> bool {
        match s {
            Shortcut::Help => true,
            Shortcut::Escape => self.open.is_some(),
            _ => self.is_open(Panel::Help),
        }
    }

    /// `?` opens the shortcut sheet (or closes it); Esc closes what is open, before it clears
    /// the selection; other keys do nothing while the sheet is open. Returns whether the
    /// shortcut was the page's.
    pub fn shortcut(&mut self, s: Shortcut) -> bool {
        if !self.takes(s) {
            return false;
        }
        match s {
            Shortcut::Help => self.toggle(Panel::Help),
            Shortcut::Escape => {
                self.close();
            }
            _ => {}
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_panel_at_a_time_and_each_closes_on_a_choice() {
        let mut p = Panels::new();
        p.toggle(Panel::Menu);
        assert!(p.is_open(Panel::Menu));
        // Opening the profile closes the menu: they never overlap.
        p.toggle(Panel::Profile);
        assert_eq!(p.open(), Some(Panel::Profile));
        p.toggle(Panel::Profile);
        assert_eq!(p.open(), None);
        p.toggle(Panel::Share);
        assert!(p.close());
        assert!(!p.close());
    }

    #[test]
    fn a_pointer_outside_the_open_panel_closes_it_inside_does_not() {
        let mut p = Panels::new();
        assert!(!p.pointer_down(None));
        p.toggle(Panel::Style);
        assert!(!p.pointer_down(Some(Panel::Style)));
        assert!(p.is_open(Panel::Style));
        // Drawing on the board, or pressing another panel's toggle.
        assert!(p.pointer_down(Some(Panel::Menu)));
        assert_eq!(p.open(), None);
        p.toggle(Panel::Help);
        assert!(p.pointer_down(None));
        assert_eq!(p.open(), None);
    }

    #[test]
    fn question_mark_shows_the_sheet_and_esc_closes_before_it_deselects() {
        let mut p = Panels::new();
        // Nothing open: Esc is the editor's (it clears the selection).
        assert!(!p.takes(Shortcut::Escape));
        assert!(!p.shortcut(Shortcut::Escape));
        assert!(p.shortcut(Shortcut::Help));
        assert!(p.is_open(Panel::Help));
        assert!(p.takes(Shortcut::Escape));
        assert!(p.shortcut(Shortcut::Escape));
        assert_eq!(p.open(), None);
        // The sheet is modal: a tool key does not reach the board behind it.
        assert!(p.shortcut(Shortcut::Help));
        assert!(p.shortcut(Shortcut::Tool(crate::tools::ToolKind::Pen)));
        assert!(p.is_open(Panel::Help));
        p.toggle(Panel::Menu);
        assert!(!p.takes(Shortcut::Undo));
        assert!(p.shortcut(Shortcut::Help));
        assert!(p.is_open(Panel::Help));
        for panel in Panel::ALL {
            assert_eq!(Panel::from_name(panel.name()), Some(panel));
        }
        assert_eq!(Panel::from_name("nope"), None);
    }
}
