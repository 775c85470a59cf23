//! The palette, sizes and theme, and the preferences the app keeps in `localStorage`
//! (each as a short string under its own key, parsed here so that a corrupt or old value
//! falls back to the default instead of breaking the app).

use kokuban_protocol::{Align, Color, Dash, Fill, Look, Opacity, Width};

use crate::rng::Entropy;
use crate::tools::ToolKind;

/// The default ink: near-black on the light theme. The dark theme shows this exact colour as
/// chalk white (see [`Theme::display`]), so one stroke reads well on both.
pub const INK: Color = Color::rgb(0x1e, 0x1e, 0x1e);
const CHALK: Color = Color::rgb(0xf4, 0xf1, 0xe8);

/// Ink colours of the toolbar, with their names (tooltips).
pub const PALETTE: [(&str, Color); 8] = [
    ("Ink", INK),
    ("Red", Color::rgb(0xe0, 0x31, 0x31)),
    ("Orange", Color::rgb(0xf0, 0x8c, 0x00)),
    ("Yellow", Color::rgb(0xf5, 0xc2, 0x0b)),
    ("Green", Color::rgb(0x2f, 0x9e, 0x44)),
    ("Blue", Color::rgb(0x19, 0x71, 0xc2)),
    ("Violet", Color::rgb(0x70, 0x48, 0xe8)),
    ("Pink", Color::rgb(0xd6, 0x33, 0x6c)),
];

/// Colours for members' cursors and avatars, with their names (tooltips).
pub const MEMBER_COLORS: [(&str, Color); 8] = [
    ("Red", Color::rgb(0xe0, 0x31, 0x31)),
    ("Orange", Color::rgb(0xf0, 0x8c, 0x00)),
    ("Green", Color::rgb(0x2f, 0x9e, 0x44)),
    ("Teal", Color::rgb(0x0c, 0x8f, 0x9e)),
    ("Blue", Color::rgb(0x19, 0x71, 0xc2)),
    ("Violet", Color::rgb(0x70, 0x48, 0xe8)),
    ("Purple", Color::rgb(0xae, 0x3e, 0xc9)),
    ("Pink", Color::rgb(0xd6, 0x33, 0x6c)),
];

/// Stroke sizes of the toolbar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Size {
    /// Fine.
    S,
    /// Medium.
    #[default]
    M,
    /// Bold.
    L,
    /// Extra bold.
    Xl,
}

impl Size {
    /// Every size, small first.
    pub const ALL: [Size; 4] = [Size::S, Size::M, Size::L, Size::Xl];

    /// Width of pen, line and shape strokes.
    pub fn pen(self) -> Width {
        Width::from_px(match self {
            Size::S => 2.0,
            Size::M => 4.0,
            Size::L => 8.0,
            Size::Xl => 16.0,
        })
    }

    /// Width of the highlighter (a broad marker).
    pub fn highlighter(self) -> Width {
        Width::from_px(match self {
            Size::S => 10.0,
            Size::M => 18.0,
            Size::L => 28.0,
            Size::Xl => 44.0,
        })
    }

    /// Font size of text.
    pub fn text(self) -> Width {
        Width::from_px(match self {
            Size::S => 16.0,
            Size::M => 24.0,
            Size::L => 36.0,
            Size::Xl => 56.0,
        })
    }

    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            Size::S => "s",
            Size::M => "m",
            Size::L => "l",
            Size::Xl => "xl",
        }
    }

    /// Parses a stored name.
    pub fn from_name(s: &str) -> Option<Size> {
        Size::ALL.into_iter().find(|z| z.name() == s)
    }
}

/// Light or dark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    /// Dark ink on a light board.
    #[default]
    Light,
    /// Chalk on a slate board.
    Dark,
}

impl Theme {
    /// Stored name (also the `data-theme` attribute).
    pub fn name(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    /// Parses a stored name.
    pub fn from_name(s: &str) -> Option<Theme> {
        match s {
            "light" => Some(Theme::Light),
            "dark" => Some(Theme::Dark),
            _ => None,
        }
    }

    /// The other one.
    pub fn toggled(self) -> Theme {
        match self {
            Theme::Light => Theme::Dark,
            Theme::Dark => Theme::Light,
        }
    }

    /// The board's background.
    pub fn background(self) -> Color {
        match self {
            Theme::Light => Color::rgb(0xfb, 0xfa, 0xf7),
            Theme::Dark => Color::rgb(0x24, 0x45, 0x3a),
        }
    }

    /// How a stroke colour is shown: the default ink turns to chalk on the dark board.
    pub fn display(self, c: Color) -> Color {
        match self {
            Theme::Dark if c == INK => CHALK,
            _ => c,
        }
    }
}

/// `#rrggbb` (alpha dropped: strokes carry their opacity separately).
pub fn hex(c: Color) -> String {
    let [r, g, b, _] = c.components();
    let digit = |n: u8| char::from(b"0123456789abcdef"[usize::from(n & 15)]);
    let mut s = String::with_capacity(7);
    s.push('#');
    for v in [r, g, b] {
        s.push(digit(v >> 4));
        s.push(digit(v));
    }
    s
}

/// Parses `#rrggbb` as an opaque colour.
pub fn parse_hex(s: &str) -> Option<Color> {
    let h = s.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let v = u32::from_str_radix(h, 16).ok()?;
    Color::new((v << 8) | 0xff).ok()
}

/// Everything the app remembers between visits.
#[derive(Debug, Clone, PartialEq)]
pub struct Prefs {
    /// Display name.
    pub name: String,
    /// Display colour (cursor, avatar).
    pub color: Color,
    /// The selected tool.
    pub tool: ToolKind,
    /// The selected ink.
    pub ink: Color,
    /// The selected size.
    pub size: Size,
    /// The theme.
    pub theme: Theme,
    /// The look new items get.
    pub look: Look,
}

/// `localStorage` keys.
pub mod keys {
    /// Display name.
    pub const NAME: &str = "kokuban.name";
    /// Display colour.
    pub const COLOR: &str = "kokuban.color";
    /// Tool.
    pub const TOOL: &str = "kokuban.tool";
    /// Ink colour.
    pub const INK: &str = "kokuban.ink";
    /// Size.
    pub const SIZE: &str = "kokuban.size";
    /// Theme.
    pub const THEME: &str = "kokuban.theme";
    /// The look of new items: fill, line, opacity and alignment, e.g. `tint dashed 50 center`.
    pub const LOOK: &str = "kokuban.look";
}

impl Prefs {
    /// Preferences from stored values (`get(key)`), with fresh defaults for whatever is
    /// missing or unreadable: a random guest name and member colour.
    pub fn load(get: impl Fn(&str) -> Option<String>, rng: &mut dyn Entropy, dark: bool) -> Self {
        let name = get(keys::NAME)
            .map(|n| clean_name(&n))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| guest_name(rng));
        let color = get(keys::COLOR)
            .and_then(|c| parse_hex(&c))
            .unwrap_or(MEMBER_COLORS[(rng.next_u64() % MEMBER_COLORS.len() as u64) as usize].1);
        Self {
            name,
            color,
            tool: get(keys::TOOL)
                .and_then(|t| ToolKind::from_name(&t))
                .unwrap_or(ToolKind::Pen),
            ink: get(keys::INK).and_then(|c| parse_hex(&c)).unwrap_or(INK),
            size: get(keys::SIZE)
                .and_then(|s| Size::from_name(&s))
                .unwrap_or_default(),
            theme: get(keys::THEME)
                .and_then(|t| Theme::from_name(&t))
                .unwrap_or(if dark { Theme::Dark } else { Theme::Light }),
            look: get(keys::LOOK)
                .and_then(|l| parse_look(&l))
                .unwrap_or_default(),
        }
    }

    /// Every `(key, value)` to store.
    pub fn entries(&self) -> [(&'static str, String); 7] {
        [
            (keys::NAME, self.name.clone()),
            (keys::COLOR, hex(self.color)),
            (keys::TOOL, self.tool.name().into()),
            (keys::INK, hex(self.ink)),
            (keys::SIZE, self.size.name().into()),
            (keys::THEME, self.theme.name().into()),
            (keys::LOOK, look_name(self.look)),
        ]
    }
}

/// The preferences as this tab last stored them.
///
/// Invariant: `stored` holds, for every key of [`Prefs::entries`], the value this tab last
/// wrote (or found). Only what differs is written again, so storage is touched when the user
/// changes something, never on every frame, and two tabs do not overwrite each other's choices
/// with values they merely loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedPrefs {
    stored: [(&'static str, String); 7],
}

impl SavedPrefs {
    /// `prefs` as they are in storage now.
    pub fn new(prefs: &Prefs) -> Self {
        Self {
            stored: prefs.entries(),
        }
    }

    /// The `(key, value)` pairs of `prefs` that differ from what was stored, now recorded as
    /// stored: the caller writes exactly these.
    pub fn changes(&mut self, prefs: &Prefs) -> Vec<(&'static str, String)> {
        let mut changed = Vec::new();
        for ((key, value), (_, old)) in prefs.entries().into_iter().zip(self.stored.iter_mut()) {
            if *old != value {
                old.clone_from(&value);
                changed.push((key, value));
            }
        }
        changed
    }
}

const FILLS: [(Fill, &str); 4] = [
    (Fill::None, "none"),
    (Fill::Tint, "tint"),
    (Fill::Solid, "solid"),
    (Fill::Hachure, "hachure"),
];
const DASHES: [(Dash, &str); 3] = [
    (Dash::Solid, "solid"),
    (Dash::Dashed, "dashed"),
    (Dash::Dotted, "dotted"),
];
const ALIGNS: [(Align, &str); 3] = [
    (Align::Left, "left"),
    (Align::Center, "center"),
    (Align::Right, "right"),
];

/// A look as it is stored: `fill line opacity align`, e.g. `tint dashed 50 center`.
pub fn look_name(look: Look) -> String {
    format!(
        "{} {} {} {}",
        word(&FILLS, look.fill),
        word(&DASHES, look.dash),
        look.opacity.percent(),
        word(&ALIGNS, look.align),
    )
}

/// The look [`look_name`] wrote; None for anything else.
pub fn parse_look(s: &str) -> Option<Look> {
    let mut words = s.split(' ');
    let look = Look {
        fill: named(&FILLS, words.next()?)?,
        dash: named(&DASHES, words.next()?)?,
        opacity: Opacity::new(words.next()?.parse().ok()?).ok()?,
        align: named(&ALIGNS, words.next()?)?,
    };
    words.next().is_none().then_some(look)
}

fn word<T: PartialEq>(table: &[(T, &'static str)], v: T) -> &'static str {
    table.iter().find(|(k, _)| *k == v).map_or("", |(_, n)| n)
}

fn named<T: Copy>(table: &[(T, &str)], w: &str) -> Option<T> {
    table.iter().find(|(_, n)| *n == w).map(|(v, _)| *v)
}

/// A friendly random name for a first visit (two words, so avatars get two initials).
pub fn guest_name(rng: &mut dyn Entropy) -> String {
    const ADJECTIVES: [&str; 8] = [
        "Calm", "Brave", "Swift", "Quiet", "Bright", "Merry", "Keen", "Gentle",
    ];
    const ANIMALS: [&str; 8] = [
        "Otter", "Heron", "Lynx", "Panda", "Falcon", "Badger", "Crane", "Koala",
    ];
    let a = ADJECTIVES[(rng.next_u64() % 8) as usize];
    let b = ANIMALS[(rng.next_u64() % 8) as usize];
    format!("{a} {b}")
}

/// A display name as the protocol accepts it: one line, at most 48 bytes, trimmed, without
/// invisible or direction-changing characters.
pub fn clean_name(s: &str) -> String {
    let mut out = String::new();
    let shown = |c: &char| !c.is_control() && !kokuban_protocol::is_hidden(*c);
    for c in s.trim().chars().filter(shown) {
        if out.len() + c.len_utf8() > kokuban_protocol::limits::MAX_NAME_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::rng::Xoshiro256;

    #[test]
    fn colours_round_trip_as_hex() {
        assert_eq!(hex(Color::rgb(0x1e, 0xa0, 0x0f)), "#1ea00f");
        assert_eq!(parse_hex("#1ea00f"), Some(Color::rgb(0x1e, 0xa0, 0x0f)));
        assert_eq!(parse_hex("1ea00f"), None);
        assert_eq!(parse_hex("#zzzzzz"), None);
        assert_eq!(Theme::Dark.display(INK), CHALK);
        assert_eq!(Theme::Light.display(INK), INK);
    }

    #[test]
    fn prefs_survive_a_round_trip_and_bad_values_fall_back() {
        let mut rng = Xoshiro256::seeded(1);
        let fresh = Prefs::load(|_| None, &mut rng, false);
        assert_eq!(fresh.name.split(' ').count(), 2);
        assert_eq!(
            (fresh.tool, fresh.ink, fresh.size, fresh.theme),
            (ToolKind::Pen, INK, Size::M, Theme::Light)
        );
        let mut p = fresh.clone();
        p.name = "Ada".into();
        p.tool = ToolKind::Highlighter;
        p.size = Size::Xl;
        p.theme = Theme::Dark;
        p.look = Look {
            fill: Fill::Tint,
            dash: Dash::Dashed,
            opacity: Opacity::new(50).unwrap(),
            align: Align::Center,
        };
        let stored: HashMap<&str, String> = p.entries().into_iter().collect();
        assert_eq!(stored[keys::LOOK], "tint dashed 50 center");
        let back = Prefs::load(|k| stored.get(k).cloned(), &mut rng, false);
        assert_eq!(back, p);
        let junk = Prefs::load(|_| Some("\u{7}garbage".into()), &mut rng, true);
        assert_eq!(junk.name, "garbage");
        assert_eq!(
            (junk.tool, junk.size, junk.theme, junk.look),
            (ToolKind::Pen, Size::M, Theme::Dark, Look::default())
        );
        assert_eq!(parse_look("tint dashed 5 center"), None);
        assert_eq!(parse_look("tint dashed 50 center extra"), None);
        assert_eq!(clean_name(&"é".repeat(40)).len(), 48);
        let pasted = clean_name("\u{202E}Ada\u{200B} Lovelace\u{2069}");
        assert_eq!(pasted, "Ada Lovelace");
        assert!(kokuban_protocol::Name::new(pasted).is_ok());
    }

    #[test]
    fn only_changed_preferences_are_saved_and_only_once() {
        let mut rng = Xoshiro256::seeded(1);
        let mut p = Prefs::load(|_| None, &mut rng, false);
        let mut saved = SavedPrefs::new(&p);
        assert!(saved.changes(&p).is_empty());
        p.ink = PALETTE[1].1;
        p.size = Size::L;
        assert_eq!(
            saved.changes(&p),
            [
                (keys::INK, "#e03131".to_string()),
                (keys::SIZE, "l".to_string())
            ]
        );
        assert!(saved.changes(&p).is_empty());
        // Back and forth before the next save: nothing to write.
        p.theme = p.theme.toggled();
        p.theme = p.theme.toggled();
        assert!(saved.changes(&p).is_empty());
    }
}
