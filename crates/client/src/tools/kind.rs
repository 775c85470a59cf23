//! The tools of the toolbar: their names, labels and shortcuts.

use kokuban_protocol::Tool;

/// The tools of the toolbar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolKind {
    /// Select, move and delete.
    Select,
    /// Pan the board.
    Hand,
    /// Freehand, pressure-sensitive.
    Pen,
    /// Freehand, translucent.
    Highlighter,
    /// Erases whole strokes it touches.
    Eraser,
    /// Straight line.
    Line,
    /// Line with an arrow head.
    Arrow,
    /// Rectangle.
    Rect,
    /// Ellipse.
    Ellipse,
    /// Text.
    Text,
    /// A laser pointer: a trail others see fade; draws nothing on the board. The one tool
    /// a view-only member may pick.
    Laser,
}

impl ToolKind {
    /// In toolbar order.
    pub const ALL: [ToolKind; 11] = [
        ToolKind::Select,
        ToolKind::Hand,
        ToolKind::Pen,
        ToolKind::Highlighter,
        ToolKind::Eraser,
        ToolKind::Line,
        ToolKind::Arrow,
        ToolKind::Rect,
        ToolKind::Ellipse,
        ToolKind::Text,
        ToolKind::Laser,
    ];

    /// Stored name, icon file name and `data-tool` attribute.
    pub fn name(self) -> &'static str {
        match self {
            ToolKind::Select => "select",
            ToolKind::Hand => "hand",
            ToolKind::Pen => "pen",
            ToolKind::Highlighter => "highlighter",
            ToolKind::Eraser => "eraser",
            ToolKind::Line => "line",
            ToolKind::Arrow => "arrow",
            ToolKind::Rect => "rect",
            ToolKind::Ellipse => "ellipse",
            ToolKind::Text => "text",
            ToolKind::Laser => "laser",
        }
    }

    /// Parses a stored name.
    pub fn from_name(s: &str) -> Option<ToolKind> {
        ToolKind::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Human name (tooltips).
    pub fn label(self) -> &'static str {
        match self {
            ToolKind::Select => "Select",
            ToolKind::Hand => "Hand (pan)",
            ToolKind::Pen => "Pen",
            ToolKind::Highlighter => "Highlighter",
            ToolKind::Eraser => "Eraser",
            ToolKind::Line => "Line",
            ToolKind::Arrow => "Arrow",
            ToolKind::Rect => "Rectangle",
            ToolKind::Ellipse => "Ellipse",
            ToolKind::Text => "Text",
            ToolKind::Laser => "Laser pointer",
        }
    }

    /// Keyboard shortcut (lower case).
    pub fn shortcut(self) -> char {
        match self {
            ToolKind::Select => 'v',
            ToolKind::Hand => 'h',
            ToolKind::Pen => 'p',
            ToolKind::Highlighter => 'm',
            ToolKind::Eraser => 'e',
            ToolKind::Line => 'l',
            ToolKind::Arrow => 'a',
            ToolKind::Rect => 'r',
            ToolKind::Ellipse => 'o',
            ToolKind::Text => 't',
            ToolKind::Laser => 'k',
        }
    }

    /// The tool a shortcut selects.
    pub fn from_shortcut(c: char) -> Option<ToolKind> {
        let c = c.to_ascii_lowercase();
        ToolKind::ALL.into_iter().find(|t| t.shortcut() == c)
    }

    /// The protocol's tool of a shape tool.
    pub(super) fn shape(self) -> Option<Tool> {
        match self {
            ToolKind::Line => Some(Tool::Line),
            ToolKind::Arrow => Some(Tool::Arrow),
            ToolKind::Rect => Some(Tool::Rect),
            ToolKind::Ellipse => Some(Tool::Ellipse),
            _ => None,
        }
    }
}
