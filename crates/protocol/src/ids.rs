//! Identifiers and small validated values. Each one can only be built through a constructor
//! that checks it, and decoding goes through the same constructor.

use core::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits::{
    MAX_ID_CHARS, MAX_NAME_BYTES, MAX_TEXT_BYTES, MAX_TITLE_BYTES, MAX_WIDTH, MIN_WIDTH,
};

/// A value that is outside what the protocol allows; the text says which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

/// A stroke (or text item), named by the client that creates it with a random UUID, so that
/// creating it twice is harmless and no coordination is needed to name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StrokeId(pub Uuid);

impl fmt::Display for StrokeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who someone is in a room, always chosen by the server (never the client): a member for the
/// life of one connection (presence, cursors), or the author of ops, stable across the
/// connections of one [`ClientKey`] so that a stroke begun before a reconnect can be finished
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemberId(pub u64);

/// A client's secret for its ops, chosen at random by the client and kept with its unsent ops
/// (across reconnects, and across reloads of the page). The server derives the client's author
/// id from it; the key itself is never shown to anyone else, so nobody can write as that
/// author or use up its op numbers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientKey(pub [u8; 16]);

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientKey(<hidden>)")
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One unbroken history of a room. A new epoch means the history before it is gone and a
/// client must start from a fresh snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Epoch(pub u64);

/// An uploaded image, named by the SHA-256 of its bytes: the server stores it under this name
/// (content-addressed), so the same picture pasted twice is stored once and a name cannot be
/// made to point at other bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// Parses 64 hexadecimal digits (either case).
    pub fn parse(hex: &str) -> Result<Self, InvalidValue> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(InvalidValue("an image hash is 64 hexadecimal digits"));
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let digit = |c: u8| match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(InvalidValue("an image hash is 64 hexadecimal digits")),
            };
            *byte = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for BlobHash {
    /// Lowercase hexadecimal, as the blob endpoints name it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({self})")
    }
}

impl core::str::FromStr for BlobHash {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        Self::parse(s)
    }
}

/// The place of a durable op in its room's total order; gapless within an epoch, first op = 1.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Seq(pub u64);

impl Seq {
    /// The seq that follows this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

fn check_id_chars(s: &str) -> Result<(), InvalidValue> {
    if s.is_empty() || s.len() > MAX_ID_CHARS {
        return Err(InvalidValue("id must be 1 to 64 characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(InvalidValue("id may only hold A-Z, a-z, 0-9, '-' and '_'"));
    }
    Ok(())
}

macro_rules! id_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `s` (URL-safe base64 alphabet, 1 to 64 characters).
            pub fn new(s: impl Into<String>) -> Result<Self, InvalidValue> {
                let s = s.into();
                check_id_chars(&s)?;
                Ok(Self(s))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, InvalidValue> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl core::str::FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                Self::new(s)
            }
        }
    };
}

id_string! {
    /// A room's public id: it appears in URLs and says nothing about who may write.
    RoomId
}

id_string! {
    /// A capability token for one room: proof that the holder may view, or edit, that room.
    Token
}

/// A colour as `0xRRGGBBAA`. Fully transparent colours are refused: they draw nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Color(u32);

impl Color {
    /// Checks that the colour is not fully transparent.
    pub fn new(rgba: u32) -> Result<Self, InvalidValue> {
        if rgba & 0xff == 0 {
            return Err(InvalidValue("colour must not be fully transparent"));
        }
        Ok(Self(rgba))
    }

    /// Opaque colour from its components.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Self(u32::from_be_bytes([r, g, b, 0xff]))
    }

    /// The colour as `0xRRGGBBAA`.
    pub fn rgba(self) -> u32 {
        self.0
    }

    /// The components `[r, g, b, a]`.
    pub fn components(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

impl TryFrom<u32> for Color {
    type Error = InvalidValue;
    fn try_from(v: u32) -> Result<Self, InvalidValue> {
        Self::new(v)
    }
}

impl From<Color> for u32 {
    fn from(c: Color) -> u32 {
        c.0
    }
}

/// A stroke width (or text size) in fixed-point units, within `MIN_WIDTH..=MAX_WIDTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Width(u16);

impl Width {
    /// The thinnest width.
    pub const MIN: Width = Width(MIN_WIDTH);

    /// Checks the bounds.
    pub fn new(units: u16) -> Result<Self, InvalidValue> {
        if !(MIN_WIDTH..=MAX_WIDTH).contains(&units) {
            return Err(InvalidValue("width out of range"));
        }
        Ok(Self(units))
    }

    /// Width from CSS pixels, rounded to the nearest unit and clamped into range.
    pub fn from_px(px: f64) -> Self {
        let units = (px * f64::from(crate::limits::SUBPIXELS)).round();
        let units = if units.is_finite() { units } else { 0.0 };
        Self(units.clamp(f64::from(MIN_WIDTH), f64::from(MAX_WIDTH)) as u16)
    }

    /// Fixed-point units.
    pub fn units(self) -> u16 {
        self.0
    }

    /// CSS pixels.
    pub fn px(self) -> f64 {
        f64::from(self.0) / f64::from(crate::limits::SUBPIXELS)
    }
}

impl TryFrom<u16> for Width {
    type Error = InvalidValue;
    fn try_from(v: u16) -> Result<Self, InvalidValue> {
        Self::new(v)
    }
}

impl From<Width> for u16 {
    fn from(w: Width) -> u16 {
        w.0
    }
}

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:literal, allow_newlines = $nl:expr, plain = $plain:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks the length and refuses control characters (and, where the text must
            /// read plainly, invisible and direction-changing ones).
            pub fn new(s: impl Into<String>) -> Result<Self, InvalidValue> {
                let s = s.into();
                if s.len() > $max {
                    return Err(InvalidValue(concat!($what, " too long")));
                }
                if s.chars().any(|c| c.is_control() && !($nl && c == '\n')) {
                    return Err(InvalidValue(concat!($what, " holds control characters")));
                }
                if $plain && s.chars().any(is_hidden) {
                    return Err(InvalidValue(concat!(
                        $what,
                        " holds invisible or direction-changing characters"
                    )));
                }
                Ok(Self(s))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, InvalidValue> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text! {
    /// A member's display name (at most `MAX_NAME_BYTES`, one line).
    Name, MAX_NAME_BYTES, "name", allow_newlines = false, plain = true
}

bounded_text! {
    /// A board's title, which every member sees (at most `MAX_TITLE_BYTES`, one line; empty:
    /// the board has no title).
    Title, MAX_TITLE_BYTES, "title", allow_newlines = false, plain = true
}

bounded_text! {
    /// The content of a text item (at most `MAX_TEXT_BYTES`; newlines allowed).
    Text, MAX_TEXT_BYTES, "text", allow_newlines = true, plain = false
}

/// Characters a name may not hold because they change how the text around them reads without
/// being seen: bidirectional overrides, embeddings and isolates (a name that reverses the
/// "joined"/"left" words after it, or passes for another member's), and invisible ones
/// (zero-width spaces, joiners between letters, soft hyphens, BOMs, tag characters), which make
/// two names look identical. The zero-width joiner stays allowed: emoji sequences need it. Text
/// items may hold them all (right-to-left writing needs the marks).
pub fn is_hidden(c: char) -> bool {
    matches!(c,
        '\u{061C}'                  // Arabic letter mark
        | '\u{00AD}'                // soft hyphen
        | '\u{115F}' | '\u{1160}'   // Hangul fillers
        | '\u{180E}'                // Mongolian vowel separator
        | '\u{200B}' | '\u{200C}'   // zero-width space, non-joiner
        | '\u{200E}' | '\u{200F}'   // left-to-right and right-to-left marks
        | '\u{202A}'..='\u{202E}'   // embeddings and overrides
        | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}'   // isolates
        | '\u{206A}'..='\u{206F}'   // deprecated format characters
        | '\u{3164}' | '\u{FFA0}'   // Hangul fillers
        | '\u{FEFF}'                // byte order mark
        | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotations
        | '\u{E0000}'..='\u{E007F}' // tags
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_long_and_foreign_characters() {
        assert!(RoomId::new("abc_DEF-123").is_ok());
        assert!(RoomId::new("").is_err());
        assert!(RoomId::new("a".repeat(65)).is_err());
        assert!(RoomId::new("a/b").is_err());
        assert!(RoomId::new("a b").is_err());
        assert!(Token::new("é").is_err());
    }

    #[test]
    fn colours_widths_and_names_are_range_checked() {
        assert!(Color::new(0x11223300).is_err());
        assert_eq!(Color::rgb(1, 2, 3).components(), [1, 2, 3, 255]);
        assert!(Width::new(0).is_err());
        assert!(Width::new(MAX_WIDTH + 1).is_err());
        assert_eq!(Width::from_px(f64::NAN).units(), MIN_WIDTH);
        assert_eq!(Width::from_px(2.0).units(), 16);
        assert!(Name::new("Ada").is_ok());
        assert!(Name::new("a\nb").is_err());
        assert!(Text::new("a\nb").is_ok());
        assert!(Name::new("x".repeat(MAX_NAME_BYTES + 1)).is_err());
        assert!(Title::new("x".repeat(MAX_TITLE_BYTES)).is_ok());
        assert!(Title::new("x".repeat(MAX_TITLE_BYTES + 1)).is_err());
        assert!(Title::new("Plan\nB").is_err());
        assert!(Title::new("Plan \u{202E}B").is_err());
    }

    #[test]
    fn names_refuse_invisible_and_direction_changing_characters_text_keeps_them() {
        for name in [
            "Ada\u{202E}nimda",
            "\u{2067}Bob",
            "A\u{200B}da",
            "Ad\u{00AD}a",
            "\u{FEFF}Ada",
            "Ada\u{E0041}",
            "\u{200F}",
        ] {
            assert!(Name::new(name).is_err(), "{name:?}");
        }
        // Emoji sequences (zero-width joiner, variation selector) and other scripts stay.
        for name in ["👩\u{200D}💻 Ada", "❤\u{FE0F}", "שלום", "漢字", "Zoë"] {
            assert!(Name::new(name).is_ok(), "{name:?}");
        }
        assert!(Text::new("\u{200F}שלום, Ada").is_ok());
    }
}
