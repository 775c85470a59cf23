//! How an item is drawn beyond its colour and width: fill, stroke style, opacity and, for
//! text, alignment. Set by [`Op::Look`](crate::Op::Look), absolute like a restyle; an item
//! that was never given one has [`Look::default`] (no fill, solid, opaque, left-aligned), so
//! items stored before looks existed read as they always were drawn.

use serde::{Deserialize, Serialize};

use crate::ids::{InvalidValue, StrokeId};

/// The inside of a closed shape (rectangle, ellipse); other items have none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fill {
    /// Only the outline.
    #[default]
    None,
    /// A light tint of the item's colour.
    Tint,
    /// The item's colour, solid.
    Solid,
    /// Parallel diagonal lines in the item's colour, as if shaded by hand.
    Hachure,
}

/// The line of a drawn item (a pen's pressure outline is always solid).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dash {
    /// A continuous line.
    #[default]
    Solid,
    /// Dashes.
    Dashed,
    /// Dots.
    Dotted,
}

/// How the lines of a text item line up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Align {
    /// On the left edge.
    #[default]
    Left,
    /// Centred.
    Center,
    /// On the right edge.
    Right,
}

/// An item's opacity in percent, within `MIN_OPACITY..=100`: an item at 0 % would be on the
/// board yet invisible, a trap rather than a style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Opacity(u8);

impl Opacity {
    /// The faintest an item can be.
    pub const MIN: u8 = 10;
    /// Fully opaque.
    pub const FULL: Opacity = Opacity(100);

    /// Checks the bounds.
    pub fn new(percent: u8) -> Result<Self, InvalidValue> {
        if !(Self::MIN..=100).contains(&percent) {
            return Err(InvalidValue("opacity must be 10 to 100 percent"));
        }
        Ok(Self(percent))
    }

    /// Percent.
    pub fn percent(self) -> u8 {
        self.0
    }

    /// As a factor in `0.1..=1.0`.
    pub fn unit(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl Default for Opacity {
    fn default() -> Self {
        Self::FULL
    }
}

impl TryFrom<u8> for Opacity {
    type Error = InvalidValue;
    fn try_from(v: u8) -> Result<Self, InvalidValue> {
        Self::new(v)
    }
}

impl From<Opacity> for u8 {
    fn from(o: Opacity) -> u8 {
        o.0
    }
}

/// Fill, stroke style, opacity and text alignment of one item. Every item carries all four;
/// those that do not apply to its kind (a pen stroke's fill, a line's alignment) are kept as
/// given and not drawn, so a look copied from one item to another means the same everywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Look {
    /// The inside of a closed shape.
    pub fill: Fill,
    /// The line.
    pub dash: Dash,
    /// Opacity of the whole item.
    pub opacity: Opacity,
    /// Text alignment.
    pub align: Align,
}

/// An item's look, as [`Op::Look`](crate::Op::Look) sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LookOf {
    /// The item.
    pub id: StrokeId,
    /// Its look.
    pub look: Look,
}
