//! Points: fixed-point world coordinates, delta-encoded within a batch.
//!
//! A batch is written as its length, then the first point as absolute `(x, y, pressure)`,
//! then every further point as `(dx, dy, pressure)`. postcard writes `i32` as a zigzag
//! varint, so a pointer sample that moved less than 8 px on each axis (64 units) costs one
//! byte per axis, plus one byte of pressure.

use core::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::InvalidValue;
use crate::limits::{
    COORD_LIMIT, MAX_POINTS_PER_BATCH, MAX_POINTS_PER_STROKE, MAX_PREALLOCATED_ELEMENTS, SUBPIXELS,
};

/// A point in world space: `x` and `y` in 1/[`SUBPIXELS`] px within ±[`COORD_LIMIT`], and the
/// pen pressure scaled to `0..=255`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Point {
    x: i32,
    y: i32,
    pressure: u8,
}

impl Point {
    /// Checks the coordinate bounds.
    pub fn new(x: i32, y: i32, pressure: u8) -> Result<Self, InvalidValue> {
        if !(-COORD_LIMIT..=COORD_LIMIT).contains(&x) || !(-COORD_LIMIT..=COORD_LIMIT).contains(&y)
        {
            return Err(InvalidValue("coordinate out of bounds"));
        }
        Ok(Self { x, y, pressure })
    }

    /// Quantizes world pixels; refuses NaN, infinities and out-of-bounds values. `pressure` is
    /// in `0.0..=1.0` (clamped).
    pub fn from_px(x: f64, y: f64, pressure: f64) -> Result<Self, InvalidValue> {
        if !x.is_finite() || !y.is_finite() {
            return Err(InvalidValue("coordinate is not a finite number"));
        }
        let limit = f64::from(COORD_LIMIT);
        let qx = (x * f64::from(SUBPIXELS)).round();
        let qy = (y * f64::from(SUBPIXELS)).round();
        if qx.abs() > limit || qy.abs() > limit {
            return Err(InvalidValue("coordinate out of bounds"));
        }
        let p = if pressure.is_finite() {
            (pressure.clamp(0.0, 1.0) * 255.0).round() as u8
        } else {
            128
        };
        Ok(Self {
            x: qx as i32,
            y: qy as i32,
            pressure: p,
        })
    }

    /// x in fixed-point units.
    pub fn x(self) -> i32 {
        self.x
    }

    /// y in fixed-point units.
    pub fn y(self) -> i32 {
        self.y
    }

    /// Pressure, `0..=255`.
    pub fn pressure(self) -> u8 {
        self.pressure
    }

    /// x in world pixels.
    pub fn x_px(self) -> f64 {
        f64::from(self.x) / f64::from(SUBPIXELS)
    }

    /// y in world pixels.
    pub fn y_px(self) -> f64 {
        f64::from(self.y) / f64::from(SUBPIXELS)
    }

    /// Pressure in `0.0..=1.0`.
    pub fn pressure_unit(self) -> f64 {
        f64::from(self.pressure) / 255.0
    }

    /// The same point moved by `(dx, dy)` units, clamped into bounds.
    pub fn offset(self, dx: i32, dy: i32) -> Self {
        let clamp = |v: i64| v.clamp(-i64::from(COORD_LIMIT), i64::from(COORD_LIMIT)) as i32;
        Self {
            x: clamp(i64::from(self.x) + i64::from(dx)),
            y: clamp(i64::from(self.y) + i64::from(dy)),
            pressure: self.pressure,
        }
    }
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.x, self.y, self.pressure).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (x, y, pressure) = <(i32, i32, u8)>::deserialize(deserializer)?;
        Point::new(x, y, pressure).map_err(de::Error::custom)
    }
}

/// Reads a run of steps as [`DeltaPoints`] writes them: the count (1 to `max`), then each
/// step's `(dx, dy)` and pressure.
pub(crate) fn read_steps<'de, A: SeqAccess<'de>>(
    seq: &mut A,
    max: usize,
    expecting: &dyn de::Expected,
) -> Result<Vec<(i32, i32, u8)>, A::Error> {
    let len: u32 = seq
        .next_element()?
        .ok_or_else(|| de::Error::invalid_length(0, expecting))?;
    let len = len as usize;
    if len == 0 || len > max {
        return Err(de::Error::invalid_length(len, expecting));
    }
    let mut steps = Vec::with_capacity(len.min(MAX_PREALLOCATED_ELEMENTS));
    for i in 0..len {
        let (dx, dy): (i32, i32) = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(i, expecting))?;
        let pressure: u8 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(i, expecting))?;
        steps.push((dx, dy, pressure));
    }
    Ok(steps)
}

/// A non-empty run of at most `MAX` points, delta-encoded on the wire.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeltaPoints<const MAX: usize>(Vec<Point>);

/// One batch of a stroke being drawn: at most [`MAX_POINTS_PER_BATCH`] points.
pub type Points = DeltaPoints<MAX_POINTS_PER_BATCH>;

/// All the points of one stroke: at most [`MAX_POINTS_PER_STROKE`] points.
pub type Path = DeltaPoints<{ MAX_POINTS_PER_STROKE as usize }>;

impl<const MAX: usize> DeltaPoints<MAX> {
    /// Checks that the run is not empty and not too long.
    pub fn new(points: Vec<Point>) -> Result<Self, InvalidValue> {
        if points.is_empty() {
            return Err(InvalidValue("a point batch must not be empty"));
        }
        if points.len() > MAX {
            return Err(InvalidValue("too many points"));
        }
        Ok(Self(points))
    }

    /// The points.
    pub fn as_slice(&self) -> &[Point] {
        &self.0
    }

    /// Number of points (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a batch holds at least one point.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The points, unwrapped.
    pub fn into_inner(self) -> Vec<Point> {
        self.0
    }
}

impl<const MAX: usize> fmt::Debug for DeltaPoints<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Points[{}]", self.0.len())
    }
}

impl<const MAX: usize> Serialize for DeltaPoints<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A tuple has no length prefix in postcard, so the length is written first, then the
        // points: the first absolute, the rest as differences from their predecessor.
        let mut tuple = serializer.serialize_tuple(1 + self.0.len())?;
        tuple.serialize_element(&(self.0.len() as u32))?;
        let mut prev = (0i32, 0i32);
        for p in &self.0 {
            tuple.serialize_element(&(p.x.wrapping_sub(prev.0), p.y.wrapping_sub(prev.1)))?;
            tuple.serialize_element(&p.pressure)?;
            prev = (p.x, p.y);
        }
        tuple.end()
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for DeltaPoints<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PointsVisitor<const MAX: usize>;

        impl<'de, const MAX: usize> Visitor<'de> for PointsVisitor<MAX> {
            type Value = DeltaPoints<MAX>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "1 to {MAX} delta-encoded points")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let steps = read_steps(&mut seq, MAX, &self)?;
                let mut points = Vec::with_capacity(steps.len());
                let mut prev = (0i32, 0i32);
                for (dx, dy, pressure) in steps {
                    let x = prev.0.checked_add(dx);
                    let y = prev.1.checked_add(dy);
                    let (Some(x), Some(y)) = (x, y) else {
                        return Err(de::Error::custom("coordinate out of bounds"));
                    };
                    points.push(Point::new(x, y, pressure).map_err(de::Error::custom)?);
                    prev = (x, y);
                }
                Ok(DeltaPoints(points))
            }
        }

        // postcard needs the element count up front for a tuple; the real count follows in the
        // data, so ask for the largest possible run and let the visitor stop early.
        deserializer.deserialize_tuple(1 + 2 * MAX, PointsVisitor::<MAX>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_px_quantizes_and_refuses_non_finite() {
        let p = Point::from_px(1.5, -2.25, 0.5).unwrap();
        assert_eq!((p.x(), p.y(), p.pressure()), (12, -18, 128));
        assert!(Point::from_px(f64::NAN, 0.0, 0.5).is_err());
        assert!(Point::from_px(0.0, f64::INFINITY, 0.5).is_err());
        assert!(Point::from_px(1e9, 0.0, 0.5).is_err());
        assert_eq!(Point::from_px(0.0, 0.0, f64::NAN).unwrap().pressure(), 128);
    }

    #[test]
    fn batches_are_non_empty_and_bounded() {
        assert!(Points::new(vec![]).is_err());
        let p = Point::new(0, 0, 0).unwrap();
        assert!(Points::new(vec![p; MAX_POINTS_PER_BATCH]).is_ok());
        assert!(Points::new(vec![p; MAX_POINTS_PER_BATCH + 1]).is_err());
    }

    #[test]
    fn offset_clamps_into_bounds() {
        let p = Point::new(COORD_LIMIT - 1, 0, 9).unwrap();
        assert_eq!(p.offset(10, -3).x(), COORD_LIMIT);
        assert_eq!(p.offset(10, -3).y(), -3);
    }
}
