//! The clipboard's JSON format, by the names it documents: what a [`Clip`](super::Clip) is
//! written as and read from, apart from the wire's encoding (which may change).

use kokuban_protocol::{Align, Dash, Fill, Form, Look, Opacity, Scale, Tool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub(super) struct Json {
    pub(super) kokuban: u32,
    pub(super) items: Vec<JsonItem>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(super) enum JsonItem {
    Ink {
        tool: JsonTool,
        color: String,
        width: f64,
        points: Vec<[f64; 3]>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        look: Option<JsonLook>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        form: Option<JsonForm>,
    },
    Text {
        at: [f64; 2],
        color: String,
        size: f64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        look: Option<JsonLook>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        form: Option<JsonForm>,
    },
    Image {
        hash: String,
        at: [f64; 2],
        to: [f64; 2],
        #[serde(default, skip_serializing_if = "Option::is_none")]
        look: Option<JsonLook>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        form: Option<JsonForm>,
    },
}

/// A form by the names the format documents: stretches as factors, the turn in degrees
/// clockwise.
#[derive(Serialize, Deserialize)]
pub(super) struct JsonForm {
    sx: f64,
    sy: f64,
    turn: f64,
}

impl JsonForm {
    pub(super) fn of(form: Form) -> JsonForm {
        JsonForm {
            sx: form.sx.factor(),
            sy: form.sy.factor(),
            turn: (form.radians().to_degrees() * 100.0).round() / 100.0,
        }
    }

    pub(super) fn read(json: Option<&JsonForm>) -> Form {
        let Some(json) = json else {
            return Form::default();
        };
        Form {
            sx: Scale::from_factor(json.sx),
            sy: Scale::from_factor(json.sy),
            turn: Form::turn_of(json.turn.to_radians()),
        }
    }
}

/// A look by the names the format documents; a part left out is the default's.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub(super) struct JsonLook {
    fill: JsonFill,
    dash: JsonDash,
    opacity: f64,
    align: JsonAlign,
}

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum JsonFill {
    #[default]
    None,
    Tint,
    Solid,
    Hachure,
}

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum JsonDash {
    #[default]
    Solid,
    Dashed,
    Dotted,
}

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum JsonAlign {
    #[default]
    Left,
    Center,
    Right,
}

impl JsonLook {
    pub(super) fn of(look: Look) -> JsonLook {
        JsonLook {
            fill: match look.fill {
                Fill::None => JsonFill::None,
                Fill::Tint => JsonFill::Tint,
                Fill::Solid => JsonFill::Solid,
                Fill::Hachure => JsonFill::Hachure,
            },
            dash: match look.dash {
                Dash::Solid => JsonDash::Solid,
                Dash::Dashed => JsonDash::Dashed,
                Dash::Dotted => JsonDash::Dotted,
            },
            opacity: look.opacity.unit(),
            align: match look.align {
                Align::Left => JsonAlign::Left,
                Align::Center => JsonAlign::Center,
                Align::Right => JsonAlign::Right,
            },
        }
    }

    pub(super) fn read(json: Option<&JsonLook>) -> Look {
        let Some(json) = json else {
            return Look::default();
        };
        // Out of range, or left out (0): opaque.
        let percent = (json.opacity * 100.0).round();
        let opacity = if percent.is_finite() && (0.0..=100.0).contains(&percent) {
            Opacity::new(percent as u8).unwrap_or_default()
        } else {
            Opacity::default()
        };
        Look {
            fill: match json.fill {
                JsonFill::None => Fill::None,
                JsonFill::Tint => Fill::Tint,
                JsonFill::Solid => Fill::Solid,
                JsonFill::Hachure => Fill::Hachure,
            },
            dash: match json.dash {
                JsonDash::Solid => Dash::Solid,
                JsonDash::Dashed => Dash::Dashed,
                JsonDash::Dotted => Dash::Dotted,
            },
            opacity,
            align: match json.align {
                JsonAlign::Left => Align::Left,
                JsonAlign::Center => Align::Center,
                JsonAlign::Right => Align::Right,
            },
        }
    }
}

/// The tools by the names the format documents (not the wire's encoding, which may change).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum JsonTool {
    Pen,
    Highlighter,
    Line,
    Arrow,
    Rect,
    Ellipse,
}

impl JsonTool {
    pub(super) fn of(tool: Tool) -> JsonTool {
        match tool {
            Tool::Pen => JsonTool::Pen,
            Tool::Highlighter => JsonTool::Highlighter,
            Tool::Line => JsonTool::Line,
            Tool::Arrow => JsonTool::Arrow,
            Tool::Rect => JsonTool::Rect,
            Tool::Ellipse => JsonTool::Ellipse,
        }
    }

    pub(super) fn tool(&self) -> Tool {
        match self {
            JsonTool::Pen => Tool::Pen,
            JsonTool::Highlighter => Tool::Highlighter,
            JsonTool::Line => Tool::Line,
            JsonTool::Arrow => Tool::Arrow,
            JsonTool::Rect => Tool::Rect,
            JsonTool::Ellipse => Tool::Ellipse,
        }
    }
}
