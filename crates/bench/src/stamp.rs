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
//! - Kokuban carries points, which the server relays untouched: the stamp is written into the
//!   coordinates of the batch's first two points (`x` and `y` are within ±2^27, so the send
//!   time in microseconds is split into 26 low bits and the rest). The other points are a
//!   plausible pen trace with small steps, as a real batch would hold.

use kokuban_protocol::{Point, Points, StrokeId, StrokePoints};
use rand::Rng;

/// Size of the stamp at the start of a Socket.IO attachment.
pub const STAMP_BYTES: usize = 16;

/// The low bits of the send time that go into the first point's `x`.
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

    /// The two points that carry the stamp.
    fn points(&self) -> [Point; 2] {
        let low = (self.sent_us & ((1 << LOW_BITS) - 1)) as i32;
        let high = (self.sent_us >> LOW_BITS) as i32;
        // Both halves and both indices are far below the coordinate limit of 2^27 for any
        // run shorter than a century, so `Point::new` cannot refuse them.
        [
            Point::new(low, high, 128).expect("send time fits the coordinate range"),
            Point::new(self.editor as i32, self.batch as i32, 128)
                .expect("indices fit the coordinate range"),
        ]
    }

    /// A batch of the two stamp points followed by `fillers` points of a pen trace, each a
    /// small step from the previous one.
    pub fn stroke_points(
        &self,
        id: StrokeId,
        start: u32,
        fillers: usize,
        rng: &mut impl Rng,
    ) -> StrokePoints {
        let [a, b] = self.points();
        let mut points = Vec::with_capacity(2 + fillers);
        points.push(a);
        points.push(b);
        let mut last = b;
        for _ in 0..fillers {
            // Steps below 64 units keep each coordinate delta a one-byte varint, as most
            // steps of a real pen sampled per animation frame are.
            last = last.offset(rng.random_range(-40..=40), rng.random_range(-40..=40));
            points.push(last);
        }
        let points = Points::new(points).expect("a batch of a few dozen points is within bounds");
        StrokePoints::new(id, start, points).expect("strokes stay far below the point limit")
    }

    /// Reads the stamp from a batch built by [`Stamp::stroke_points`].
    pub fn read_points(points: &[Point]) -> Option<Stamp> {
        let (a, b) = (points.first()?, points.get(1)?);
        let (low, high) = (u64::try_from(a.x()).ok()?, u64::try_from(a.y()).ok()?);
        Some(Stamp {
            sent_us: (high << LOW_BITS) | low,
            editor: u32::try_from(b.x()).ok()?,
            batch: u32::try_from(b.y()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use kokuban_protocol::{ClientMsg, Op, decode_client, encode_client};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

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
    fn points_round_trip_through_the_wire_codec() {
        let mut rng = StdRng::seed_from_u64(2);
        let id = StrokeId(uuid::Uuid::from_u128(5));
        for sent_us in [0, 1, (1 << 26) - 1, 1 << 26, 900_000_000_000] {
            let stamp = Stamp {
                sent_us,
                editor: 12_345,
                batch: 67_890,
            };
            let batch = stamp.stroke_points(id, 1, 20, &mut rng);
            let frame = encode_client(&ClientMsg::Op(Op::StrokePoints(batch)));
            let Ok(ClientMsg::Op(Op::StrokePoints(back))) = decode_client(&frame) else {
                panic!("did not decode back to a batch")
            };
            assert_eq!(back.points.len(), 22);
            assert_eq!(Stamp::read_points(back.points.as_slice()), Some(stamp));
        }
    }
}
