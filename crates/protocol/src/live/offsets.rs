//! A batch's points as residuals from where its stroke was heading ([`Lead`]), packed as bit
//! codes ([`Offsets`]): what a point drawn live costs on the wire.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bits::{BitReader, BitWriter};
use crate::ids::InvalidValue;
use crate::limits::{MAX_POINTS_PER_BATCH, MAX_PREALLOCATED_ELEMENTS};
use crate::point::{Point, Points};
/// Where a stroke stands before a batch by handle, as both ends know it: its last point and
/// the step that reached it. A batch's points are sent as how far each strays from carrying
/// on that step, so a pen moving steadily costs little more than a bit per coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lead {
    last: Point,
    step: (i32, i32),
}

/// `a − b` per axis: within ±2 × [`crate::limits::COORD_LIMIT`], so it fits an `i32`.
fn step(a: Point, b: Point) -> (i32, i32) {
    (a.x() - b.x(), a.y() - b.y())
}

impl Lead {
    /// A stroke of one point.
    pub fn start(first: Point) -> Self {
        Self {
            last: first,
            step: (0, 0),
        }
    }

    /// Where a stroke with these points stands; `None` for none.
    pub fn of(points: &[Point]) -> Option<Self> {
        let (&last, before) = points.split_last()?;
        let step = before.last().map_or((0, 0), |&b| step(last, b));
        Some(Self { last, step })
    }

    /// Where the stroke stands once `points` follow.
    pub fn then(self, points: &[Point]) -> Self {
        match points {
            [] => self,
            [only] => Self {
                last: *only,
                step: step(*only, self.last),
            },
            [.., b, last] => Self {
                last: *last,
                step: step(*last, *b),
            },
        }
    }

    /// The stroke's last point.
    pub fn last(self) -> Point {
        self.last
    }

    /// The step that reached it, `(0, 0)` for a stroke of one point.
    pub fn step(self) -> (i32, i32) {
        self.step
    }
}

/// Order of the Exp-Golomb codes of the coordinates' residuals (see [`crate::bits`]): a
/// residual of 0 takes one bit, ±1 three.
const K_XY: u32 = 0;
/// Order of the codes of the pressure's changes: 0 and ±1 take two bits, up to ±3 four.
const K_PRESSURE: u32 = 1;

/// A batch's points as both ends of a link code them, from a [`Lead`]: per point, how far it
/// lies from where the stroke's last step would have taken it (`x`, `y`), and how much its
/// pressure differs from the point before (wrapping). Non-empty, at most
/// [`MAX_POINTS_PER_BATCH`] long.
///
/// On the wire it is a run of bits with no length before it: the count less one, then each
/// point's three values, as Exp-Golomb codes (signed values zigzagged), zeros filling the last
/// byte. On a pen trace at 60 batches a second that is about 11 bits a point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offsets(Vec<(i32, i32, u8)>);

impl Offsets {
    /// Raw residuals `(x, y, pressure change)`: checks the count.
    pub fn new(offsets: Vec<(i32, i32, u8)>) -> Result<Self, InvalidValue> {
        if offsets.is_empty() || offsets.len() > MAX_POINTS_PER_BATCH {
            return Err(InvalidValue("a point batch holds 1 to 1024 points"));
        }
        Ok(Self(offsets))
    }

    /// `points` coded from `lead`.
    pub fn between(lead: Lead, points: &Points) -> Self {
        let Lead {
            mut last,
            step: mut prev,
        } = lead;
        let offsets = points
            .as_slice()
            .iter()
            .map(|&p| {
                let s = step(p, last);
                // Both steps lie within ±2 × COORD_LIMIT (2^28), so their difference fits.
                let r = (
                    s.0 - prev.0,
                    s.1 - prev.1,
                    p.pressure().wrapping_sub(last.pressure()),
                );
                (last, prev) = (p, s);
                r
            })
            .collect();
        Self(offsets)
    }

    /// The points these residuals stand for after `lead`; refused when one leaves the board's
    /// coordinates.
    pub fn from(&self, lead: Lead) -> Result<Points, InvalidValue> {
        let Lead {
            mut last,
            step: mut prev,
        } = lead;
        let mut points = Vec::with_capacity(self.0.len());
        for &(rx, ry, dp) in &self.0 {
            let at = |from: i32, step: i32, r: i32| {
                i32::try_from(i64::from(from) + i64::from(step) + i64::from(r))
                    .map_err(|_| InvalidValue("coordinate out of bounds"))
            };
            let p = Point::new(
                at(last.x(), prev.0, rx)?,
                at(last.y(), prev.1, ry)?,
                last.pressure().wrapping_add(dp),
            )?;
            (last, prev) = (p, step(p, last));
            points.push(p);
        }
        Points::new(points)
    }

    /// The residuals `(x, y, pressure change)`.
    pub fn as_slice(&self) -> &[(i32, i32, u8)] {
        &self.0
    }

    /// How many points.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: at least one point.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Offsets {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bits = BitWriter::new();
        bits.code(self.0.len() as u32 - 1, 0);
        for &(rx, ry, dp) in &self.0 {
            bits.signed(rx, K_XY);
            bits.signed(ry, K_XY);
            bits.signed(i32::from(dp as i8), K_PRESSURE);
        }
        let bytes = bits.finish();
        // Bytes as the elements of a tuple: postcard writes them as they are, with no length.
        let mut tuple = serializer.serialize_tuple(bytes.len())?;
        for b in &bytes {
            tuple.serialize_element(b)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Offsets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OffsetsVisitor;

        impl<'de> Visitor<'de> for OffsetsVisitor {
            type Value = Offsets;

            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(
                    f,
                    "1 to {MAX_POINTS_PER_BATCH} points as a run of bit codes"
                )
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Offsets, A::Error> {
                let mut bits = BitReader::new(&mut seq);
                let len = bits.code(0)? as usize + 1;
                if len > MAX_POINTS_PER_BATCH {
                    return Err(de::Error::invalid_length(len, &self));
                }
                // The count is read before the codes it announces: reserve no more than a
                // short frame could hold, and let a long run grow as it is read.
                let mut offsets = Vec::with_capacity(len.min(MAX_PREALLOCATED_ELEMENTS));
                for _ in 0..len {
                    let rx = bits.signed(K_XY)?;
                    let ry = bits.signed(K_XY)?;
                    let dp = i8::try_from(bits.signed(K_PRESSURE)?)
                        .map_err(|_| de::Error::custom("a pressure change beyond ±128"))?;
                    offsets.push((rx, ry, dp as u8));
                }
                bits.finish()?;
                Ok(Offsets(offsets))
            }
        }

        // postcard needs a tuple's length up front; the run ends itself, so ask for as many
        // bytes as the longest run could take and let the visitor stop where it ends.
        deserializer.deserialize_tuple(MAX_RUN_BYTES, OffsetsVisitor)
    }
}

/// The most bytes a run of [`Offsets`] can take: 65 bits at most per code.
const MAX_RUN_BYTES: usize = (65 * (1 + 3 * MAX_POINTS_PER_BATCH)).div_ceil(8);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::COORD_LIMIT;

    fn p(x: i32, y: i32) -> Point {
        Point::new(x, y, 100).unwrap()
    }

    #[test]
    fn offsets_leaving_the_board_are_refused() {
        let far = Offsets(vec![(i32::MAX, 0, 0)]);
        assert!(far.from(Lead::start(p(10, 10))).is_err());
        let back = Offsets(vec![(-20, -20, 7)]);
        let points = back.from(Lead::start(p(10, 10))).unwrap();
        assert_eq!(points.as_slice(), [Point::new(-10, -10, 107).unwrap()]);
        // Heading off the board at full speed, even from a step that stays on it.
        let lead = Lead::of(&[p(-COORD_LIMIT, 0), p(COORD_LIMIT, 0)]).unwrap();
        assert!(Offsets(vec![(0, 0, 0)]).from(lead).is_err());
        let back = Offsets(vec![(-2 * COORD_LIMIT, 0, 0)]).from(lead).unwrap();
        assert_eq!(back.as_slice(), [p(COORD_LIMIT, 0)]);
    }

    #[test]
    fn a_steady_pen_costs_a_bit_per_coordinate() {
        let line: Vec<Point> = (0..60).map(|i| p(1000 + 12 * i, 500 - 5 * i)).collect();
        let lead = Lead::of(&line[..2]).unwrap();
        let batch = Points::new(line[2..].to_vec()).unwrap();
        let offsets = Offsets::between(lead, &batch);
        assert!(offsets.as_slice().iter().all(|&r| r == (0, 0, 0)));
        // The count (11 bits), then 4 bits a point, filled up to a whole byte.
        assert_eq!(
            postcard::to_allocvec(&offsets).unwrap().len(),
            (11 + 58 * 4usize).div_ceil(8)
        );
        assert_eq!(offsets.from(lead).unwrap(), batch);
        assert_eq!(lead.then(batch.as_slice()), Lead::of(&line).unwrap());
    }
}
