//! An item's form: how much it is stretched along each of its axes and how far it is turned,
//! about the centre of where it was drawn. Resize and rotate handles set it; the points stay as
//! drawn, so a form is absolute (setting it twice is setting it once) and costs a few bytes
//! whatever the item holds.

use core::f64::consts::TAU;

use serde::{Deserialize, Serialize};

use crate::ids::{InvalidValue, StrokeId};

/// A stretch in thousandths, negative for a mirror image, with a magnitude within
/// `MIN..=MAX`: an item shrunk to nothing would be on the board yet invisible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i32", into = "i32")]
pub struct Scale(i32);

impl Scale {
    /// The smallest magnitude, in thousandths (1 %).
    pub const MIN: i32 = 10;
    /// The largest magnitude, in thousandths (100×).
    pub const MAX: i32 = 100_000;
    /// As drawn.
    pub const ONE: Scale = Scale(1000);

    /// Checks the bounds.
    pub fn new(milli: i32) -> Result<Self, InvalidValue> {
        if !(Self::MIN..=Self::MAX).contains(&milli.saturating_abs()) {
            return Err(InvalidValue("a scale must be 1 % to 100 times, either way"));
        }
        Ok(Self(milli))
    }

    /// The nearest scale to `factor`, clamped into range (a factor of 0 or NaN is 1 %).
    pub fn from_factor(factor: f64) -> Self {
        let milli = (factor * 1000.0).round();
        let sign = if milli < 0.0 { -1 } else { 1 };
        let magnitude = if milli.is_finite() { milli.abs() } else { 0.0 };
        Self(sign * magnitude.clamp(f64::from(Self::MIN), f64::from(Self::MAX)) as i32)
    }

    /// Thousandths.
    pub fn milli(self) -> i32 {
        self.0
    }

    /// As a factor.
    pub fn factor(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl Default for Scale {
    fn default() -> Self {
        Self::ONE
    }
}

impl TryFrom<i32> for Scale {
    type Error = InvalidValue;
    fn try_from(v: i32) -> Result<Self, InvalidValue> {
        Self::new(v)
    }
}

impl From<Scale> for i32 {
    fn from(s: Scale) -> i32 {
        s.0
    }
}

/// Stretch along the item's own axes, then a turn, clockwise on screen, in 1/65536 of a full
/// turn (every value is a valid angle). The default is the item as drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Form {
    /// Horizontal stretch.
    pub sx: Scale,
    /// Vertical stretch.
    pub sy: Scale,
    /// Turn.
    pub turn: u16,
}

impl Form {
    /// The turn in radians, in `0..TAU`.
    pub fn radians(self) -> f64 {
        f64::from(self.turn) / 65536.0 * TAU
    }

    /// The turn nearest to `radians` (any angle).
    pub fn turn_of(radians: f64) -> u16 {
        let t = (radians / TAU).rem_euclid(1.0) * 65536.0;
        if t.is_finite() {
            (t.round() as u32 % 65536) as u16
        } else {
            0
        }
    }
}

/// An item's form, as [`Op::Form`](crate::Op::Form) sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FormOf {
    /// The item.
    pub id: StrokeId,
    /// Its form.
    pub form: Form,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_bounded_both_ways_and_turns_wrap() {
        assert!(Scale::new(1000).is_ok() && Scale::new(-1000).is_ok());
        assert!(Scale::new(9).is_err() && Scale::new(-100_001).is_err() && Scale::new(0).is_err());
        assert!(Scale::new(i32::MIN).is_err());
        assert_eq!(Scale::from_factor(0.0).milli(), 10);
        assert_eq!(Scale::from_factor(-2.5).milli(), -2500);
        assert_eq!(Scale::from_factor(f64::NAN).milli(), 10);
        assert_eq!(Scale::from_factor(1e9).milli(), 100_000);
        assert_eq!(Form::turn_of(TAU / 4.0), 16384);
        assert_eq!(Form::turn_of(-TAU / 4.0), 49152);
        assert_eq!(Form::turn_of(TAU), 0);
        assert!(
            (Form {
                turn: 16384,
                ..Form::default()
            }
            .radians()
                - TAU / 4.0)
                .abs()
                < 1e-12
        );
    }
}
