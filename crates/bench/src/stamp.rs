//! What every measured message carries: when it was sent, by which editor, and which of that
//! editor's batches it is.
//!
//! The load generator is one process with one monotonic clock, so the sender writes its send
//! instant into the message itself and each receiver computes the latency from its own reading
//! of the same clock. This needs no state shared between the client tasks: a map from batch to
//! send instant, looked up by every receiver, would itself become a point of contention at
//! hundreds of thousands of deliveries per second and distort the figures it measures.
//!
//! - Socket.IO carries opaque bytes: the stamp is the first 16 bytes of the attachment.
//! - Kokuban carries points, whose pressures the server relays untouched; a batch by handle
//!   carries each pressure as its change from the point before. The stamp is those changes
//!   between the batch's first 17 points, so it reads the same from a whole batch and from one
//!   by handle. The points are a plausible pen trace, as a real batch would hold.

use kokuban_protocol::{Lead, Offsets, Point, Points, StrokeId, StrokePoints};
use rand::Rng;

/// Size of the stamp at the start of a Socket.IO attachment.
pub const STAMP_BYTES: usize = 16;

/// Points of a Kokuban batch whose changes of pressure carry the stamp.
pub const STAMP_POINTS: usize = STAMP_BYTES + 1;

/// The fastest a batch's pen moves, in units per point, before its swerves turn it back.
const MAX_SPEED: i32 = 40;

/// The low bits of the send time that a cursor's `x` carries.
const LOW_BITS: u32 = 26;

/// Identifies one batch and its send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Microseconds since the run's clock started.
    pub sent_us: u64,
    /// Global index of the sending editor.
    pub editor: u32,
    /// Index of the batch among that editor's batches, from 0.
    pub batch: u32,
}

impl Stamp {
    /// Writes the stamp, then filler bytes up to `len` (at least [`STAMP_BYTES`]).
    pub fn write_bytes(&self, len: usize, rng: &mut impl Rng, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.sent_us.to_le_bytes());
        out.extend_from_slice(&self.editor.to_le_bytes());
        out.extend_from_slice(&self.batch.to_le_bytes());
        while out.len() < len {
            out.push(rng.random());
        }
    }

    /// Reads a stamp written by [`Stamp::write_bytes`].
    pub fn read_bytes(bytes: &[u8]) -> Option<Stamp> {
        let head = bytes.get(..STAMP_BYTES)?;
        Some(Stamp {
            sent_us: u64::from_le_bytes(head[0..8].try_into().ok()?),
            editor: u32::from_le_bytes(head[8..12].try_into().ok()?),
            batch: u32::from_le_bytes(head[12..16].try_into().ok()?),
        })
    }

    /// The stamp as the changes of pressure between a batch's first [`STAMP_POINTS`] points.
    fn pressures(&self) -> [u8; STAMP_BYTES] {
        let mut out = [0; STAMP_BYTES];
        out[0..8].copy_from_slice(&self.sent_us.to_le_bytes());
        out[8..12].copy_from_slice(&self.editor.to_le_bytes());
        out[12..16].copy_from_slice(&self.batch.to_le_bytes());
        out
    }

    /// A batch of [`STAMP_POINTS`] points whose changes of pressure carry the stamp, then
    /// `fillers` more; all a pen trace going on from `from`. The stamp's points carry on the
    /// pen's last step; each filler swerves by 4 to 7 units on each axis and changes the
    /// pressure by 16 to 30, so that by handle it takes three bytes (7 + 7 + 10 bits), as a
    /// filler of a whole batch does.
    pub fn stroke_points(
        &self,
        id: StrokeId,
        start: u32,
        from: Lead,
        fillers: usize,
        rng: &mut impl Rng,
    ) -> StrokePoints {
        let stamp = self.pressures();
        let mut points = Vec::with_capacity(STAMP_POINTS + fillers);
        let (mut last, mut step) = (from.last(), from.step());
        let mut pressure: u8 = rng.random();
        let mut swerve = |v: i32| {
            let by = rng.random_range(4..=7);
            let left = if v.abs() > MAX_SPEED {
                v > 0
            } else {
                rng.random()
            };
            if left { v - by } else { v + by }
        };
        for i in 0..STAMP_POINTS + fillers {
            if i >= STAMP_POINTS {
                step = (swerve(step.0), swerve(step.1));
                pressure = pressure.wrapping_add((swerve(0) * 4) as u8);
            } else if i > 0 {
                pressure = pressure.wrapping_add(stamp[i - 1]);
            }
            let next = last.offset(step.0, step.1);
            last = Point::new(next.x(), next.y(), pressure).expect("offset keeps it in bounds");
            points.push(last);
        }
        let points = Points::new(points).expect("a batch of a few dozen points is within bounds");
        StrokePoints::new(id, start, points).expect("strokes stay far below the point limit")
    }

    /// Reads the stamp from the changes of pressure between the points of a batch built by
    /// [`Stamp::stroke_points`], from its second point on.
    pub fn read_pressures(pressures: impl Iterator<Item = u8>) -> Option<Stamp> {
        let mut bytes = [0; STAMP_BYTES];
        let mut n = 0;
        for (slot, p) in bytes.iter_mut().zip(pressures) {
            *slot = p;
            n += 1;
        }
        (n == STAMP_BYTES)
            .then(|| Stamp::read_bytes(&bytes))
            .flatten()
    }

    /// Reads the stamp from a batch built by [`Stamp::stroke_points`].
    pub fn read_points(points: &[Point]) -> Option<Stamp> {
        Self::read_pressures(
            points
                .windows(2)
                .map(|w| w[1].pressure().wrapping_sub(w[0].pressure())),
        )
    }

    /// Reads the stamp from a batch by handle, as Kokuban relays a stroke's later batches.
    pub fn read_offsets(offsets: &Offsets) -> Option<Stamp> {
        Self::read_pressures(offsets.as_slice().iter().skip(1).map(|&(_, _, p)| p))
    }
}

/// A cursor position that carries when it was sent and by whom: `x` holds the low 26 bits of
/// the send time, `y` the mover's index above the remaining high bits (8 of them: runs of up to
/// four hours). The floor and Socket.IO relay it as it is; Kokuban relays the latest position
/// of each member, so the receiver learns when that position was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorStamp {
    /// Microseconds since the run's clock started.
    pub sent_us: u64,
    /// Index of the moving client.
    pub mover: u32,
}

/// Bits of the send time above [`LOW_BITS`] that a cursor carries.
const CURSOR_HIGH_BITS: u32 = 8;

impl CursorStamp {
    /// The position, `None` past the ranges above.
    pub fn to_xy(self) -> Option<(i32, i32)> {
        let high = self.sent_us >> LOW_BITS;
        let mover = u64::from(self.mover);
        if high >> CURSOR_HIGH_BITS != 0 || mover >= 1 << (LOW_BITS - CURSOR_HIGH_BITS) {
            return None;
        }
        let x = (self.sent_us & ((1 << LOW_BITS) - 1)) as i32;
        Some((x, ((mover << CURSOR_HIGH_BITS) | high) as i32))
    }

    /// Reads a position written by [`CursorStamp::to_xy`].
    pub fn from_xy(x: i32, y: i32) -> Option<Self> {
        let (x, y) = (u64::try_from(x).ok()?, u64::try_from(y).ok()?);
        Some(Self {
            sent_us: ((y & ((1 << CURSOR_HIGH_BITS) - 1)) << LOW_BITS) | x,
            mover: u32::try_from(y >> CURSOR_HIGH_BITS).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use kokuban_protocol::{ClientMsg, MorePoints, Op, decode_client, encode_client};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use kokuban_protocol::Submit;

    #[test]
    fn bytes_round_trip_and_pad_to_the_requested_length() {
        let mut rng = StdRng::seed_from_u64(1);
        let stamp = Stamp {
            sent_us: 123_456_789_012,
            editor: 7,
            batch: 99,
        };
        let mut buf = Vec::new();
        stamp.write_bytes(100, &mut rng, &mut buf);
        assert_eq!(buf.len(), 100);
        assert_eq!(Stamp::read_bytes(&buf), Some(stamp));
        assert_eq!(Stamp::read_bytes(&buf[..15]), None);
    }

    #[test]
    fn cursor_stamps_round_trip_within_the_coordinate_limit() {
        for (sent_us, mover) in [
            (0, 0),
            (1, 1),
            ((1 << 26) - 1, 499),
            (1 << 26, 7),
            (3_600_000_000, 200_000),
        ] {
            let c = CursorStamp { sent_us, mover };
            let (x, y) = c.to_xy().expect("in range");
            assert!(kokuban_protocol::Cursor::new(x, y).is_ok(), "{c:?}");
            assert_eq!(CursorStamp::from_xy(x, y), Some(c));
        }
        let late = CursorStamp {
            sent_us: 1 << 40,
            mover: 0,
        };
        assert_eq!(late.to_xy(), None);
        let many = CursorStamp {
            sent_us: 0,
            mover: 1 << 18,
        };
        assert_eq!(many.to_xy(), None);
    }

    #[test]
    fn points_round_trip_through_the_wire_codec() {
        let mut rng = StdRng::seed_from_u64(2);
        let id = StrokeId(uuid::Uuid::from_u128(5));
        for sent_us in [0, 1, (1 << 26) - 1, 1 << 26, 900_000_000_000] {
            let stamp = Stamp {
                sent_us,
                editor: 12_345,
                batch: 67_890,
            };
            let from = Lead::of(&[
                Point::new(4000, 4000, 0).unwrap(),
                Point::new(4010, 3990, 9).unwrap(),
            ])
            .unwrap();
            let batch = stamp.stroke_points(id, 1, from, 6, &mut rng);
            let frame = encode_client(&ClientMsg::Op(Submit {
                n: 1,
                op: Op::StrokePoints(batch.clone()),
            }));
            let Ok(ClientMsg::Op(Submit {
                op: Op::StrokePoints(back),
                ..
            })) = decode_client(&frame)
            else {
                panic!("did not decode back to a batch")
            };
            assert_eq!(back.points.len(), 23);
            assert_eq!(Stamp::read_points(back.points.as_slice()), Some(stamp));
            let offsets = Offsets::between(from, &batch.points);
            assert_eq!(Stamp::read_offsets(&offsets), Some(stamp));
            assert_eq!(Stamp::read_points(&back.points.as_slice()[..16]), None);
            // By handle: the stamp's points cost their pressures and a few bits, each filler
            // three bytes.
            let stamped = Points::new(batch.points.as_slice()[..STAMP_POINTS].to_vec()).unwrap();
            let by_handle =
                |points| encode_client(&ClientMsg::Points(MorePoints { stroke: 0, points })).len();
            let bare = by_handle(Offsets::between(from, &stamped));
            let with = by_handle(offsets);
            assert!(bare <= 40, "{bare} bytes");
            assert_eq!(with - bare, 18);
        }
    }
}
