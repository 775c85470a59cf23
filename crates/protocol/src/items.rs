//! What ops carry about an item beyond its id: a batch of a stroke's points, an image's box, a
//! move's offset, a restyle's colour and width. Each checks its limits where it is made and,
//! through the same constructor, where it is decoded.

use serde::{Deserialize, Serialize};

use crate::ids::{BlobHash, Color, InvalidValue, StrokeId, Width};
use crate::limits::{COORD_LIMIT, MAX_POINTS_PER_STROKE};
use crate::point::{Point, Points};

/// Points `start..start + points.len()` of a stroke. Carrying the index makes a repeated batch
/// harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawStrokePoints")]
pub struct StrokePoints {
    /// The stroke.
    pub id: StrokeId,
    /// Index of the first point of this batch within the stroke (`StrokeBegin` holds point 0).
    pub start: u32,
    /// The points.
    pub points: Points,
}

impl StrokePoints {
    /// Checks that the batch stays within [`MAX_POINTS_PER_STROKE`].
    pub fn new(id: StrokeId, start: u32, points: Points) -> Result<Self, InvalidValue> {
        let end = u64::from(start) + points.len() as u64;
        if start == 0 || end > u64::from(MAX_POINTS_PER_STROKE) {
            return Err(InvalidValue("stroke has too many points"));
        }
        Ok(Self { id, start, points })
    }
}

#[derive(Deserialize)]
struct RawStrokePoints {
    id: StrokeId,
    start: u32,
    points: Points,
}

impl TryFrom<RawStrokePoints> for StrokePoints {
    type Error = InvalidValue;
    fn try_from(raw: RawStrokePoints) -> Result<Self, InvalidValue> {
        Self::new(raw.id, raw.start, raw.points)
    }
}

/// An image on the board: the blob it shows and the box it fills, corner to corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPlacedImage")]
pub struct PlacedImage {
    /// Fresh random id.
    pub id: StrokeId,
    /// The image's bytes, by their hash.
    pub blob: BlobHash,
    /// Top-left corner.
    pub at: Point,
    /// Bottom-right corner.
    pub to: Point,
}

impl PlacedImage {
    /// Checks that the box has a width and a height (`to` right of and below `at`).
    pub fn new(id: StrokeId, blob: BlobHash, at: Point, to: Point) -> Result<Self, InvalidValue> {
        if to.x() <= at.x() || to.y() <= at.y() {
            return Err(InvalidValue(
                "an image's box must have a width and a height",
            ));
        }
        Ok(Self { id, blob, at, to })
    }
}

#[derive(Deserialize)]
struct RawPlacedImage {
    id: StrokeId,
    blob: BlobHash,
    at: Point,
    to: Point,
}

impl TryFrom<RawPlacedImage> for PlacedImage {
    type Error = InvalidValue;
    fn try_from(raw: RawPlacedImage) -> Result<Self, InvalidValue> {
        Self::new(raw.id, raw.blob, raw.at, raw.to)
    }
}

/// Where a stroke sits relative to where it was drawn, in fixed-point units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "(StrokeId, i32, i32)", into = "(StrokeId, i32, i32)")]
pub struct Placement {
    /// The stroke.
    pub id: StrokeId,
    /// Horizontal offset.
    pub dx: i32,
    /// Vertical offset.
    pub dy: i32,
}

impl Placement {
    /// Checks that the offset cannot carry a stroke further than across the whole world.
    pub fn new(id: StrokeId, dx: i32, dy: i32) -> Result<Self, InvalidValue> {
        let max = 2 * COORD_LIMIT;
        if !(-max..=max).contains(&dx) || !(-max..=max).contains(&dy) {
            return Err(InvalidValue("offset out of bounds"));
        }
        Ok(Self { id, dx, dy })
    }
}

impl TryFrom<(StrokeId, i32, i32)> for Placement {
    type Error = InvalidValue;
    fn try_from((id, dx, dy): (StrokeId, i32, i32)) -> Result<Self, InvalidValue> {
        Self::new(id, dx, dy)
    }
}

impl From<Placement> for (StrokeId, i32, i32) {
    fn from(p: Placement) -> Self {
        (p.id, p.dx, p.dy)
    }
}

/// An item's colour and width (for a text item, its font size), as `Restyle` sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Style {
    /// The item.
    pub id: StrokeId,
    /// Its colour.
    pub color: Color,
    /// Its width or font size.
    pub width: Width,
}
