//! Live points under short handles: the hot path of drawing without the stroke's 16-byte id,
//! its index, the op's number or an absolute first point in every batch.
//!
//! A stroke keeps its [`StrokeId`] as its identity everywhere it lasts (the room's log, its
//! snapshots, every board); only the batches of points sent while it is drawn name it by a
//! handle that both ends of one connection can work out from what they have already
//! exchanged, and carry their points as residuals from where the stroke was heading
//! ([`Lead`], [`Offsets`]): a few bits a point, packed without byte boundaries.
//!
//! - Client to server ([`ClientMsg::Points`]): the handle counts back through the strokes this
//!   connection began and has not ended ([`Handles`]); the op's number is the one after the
//!   last number sent on this connection, and its first point follows the last point this
//!   connection sent of that stroke. Its frame is [`POINTS_FRAME`] with the handle in its low
//!   bits, then the residuals: no version byte, no message tag. Both ends keep the same
//!   [`Handles`], the client when it encodes and the server when it decodes, so a handle never
//!   outlives its connection: after a reconnect, a stroke begun before it is continued in full
//!   form until it ends.
//! - Server to members ([`crate::ServerMsg::Points`]): the handle counts back through the
//!   board's drawing order, and the op is the next one of the room's order, by the stroke's author,
//!   continuing the stroke where the board has it. Every member's board is at the op before
//!   it (the room's order is total), so one encoding serves every member, and
//!   [`LivePoints::check`] (the low byte of its seq) catches a board that is not.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, decode_client, encode_client};
use crate::ids::{InvalidValue, StrokeId};
use crate::items::StrokePoints;
use crate::msg::{ClientMsg, Op, Submit};
mod offsets;

pub use offsets::{Lead, Offsets};

/// Strokes a connection can name by handle at once: the most recently begun that it has not
/// ended. A client drawing more strokes at once sends the older ones in full.
pub const MAX_OPEN_HANDLES: usize = 16;

/// The first byte of a client's frame of points by handle: the handle in its low four bits
/// (all [`MAX_OPEN_HANDLES`] fit), then the [`Offsets`], so that a batch pays no version byte
/// and no message tag. It is never a [`crate::PROTOCOL_VERSION`], so a frame says by its
/// first byte which it is.
pub const POINTS_FRAME: u8 = 0xf0;

const _: () = assert!(MAX_OPEN_HANDLES <= 16 && crate::limits::PROTOCOL_VERSION < POINTS_FRAME);

/// How far below the top of the drawing order a stroke may lie for members to be sent its
/// points by handle; deeper strokes (one drawn while many others were added) go in full.
pub const MAX_HANDLE_DEPTH: usize = 64;

/// More points of a stroke this connection is drawing, by handle ([`ClientMsg::Points`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MorePoints {
    /// Which of the strokes this connection began and has not ended: 0 is the latest.
    pub stroke: u32,
    /// The points, from the last one this connection sent of the stroke.
    pub points: Offsets,
}

/// More points of a stroke, relayed by handle ([`crate::ServerMsg::Points`]): the op after the
/// member's board's last, by the stroke's author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePoints {
    /// The low byte of the op's seq, so that a board not at the op before it is caught.
    pub check: u8,
    /// How many strokes lie above it in the board's drawing order.
    pub stroke: u32,
    /// The points, from the stroke's last point on the board.
    pub points: Offsets,
}

/// A stroke a connection can name by handle.
#[derive(Debug, Clone, Copy)]
struct Open {
    id: StrokeId,
    /// The index its next batch starts at.
    next: u32,
    /// Where what was sent of it stands.
    lead: Lead,
}

/// What one connection's two ends know in common about the ops sent on it: the last number
/// and the strokes it can name by handle. The client encodes with it, the server decodes with
/// it; each starts afresh with every connection.
#[derive(Debug, Clone, Default)]
pub struct Handles {
    last_n: Option<u64>,
    /// Newest first.
    open: VecDeque<Open>,
}

impl Handles {
    /// A new connection's.
    pub fn new() -> Self {
        Self::default()
    }

    /// The message to send for `msg`: point batches in their short form where the connection
    /// allows it. Every message sent must pass through here, in sending order.
    pub fn shorten(&mut self, msg: &ClientMsg) -> Option<ClientMsg> {
        let short = match msg {
            ClientMsg::Op(Submit {
                n,
                op: Op::StrokePoints(b),
            }) if self.last_n.and_then(|l| l.checked_add(1)) == Some(*n) => self
                .open
                .iter()
                .position(|o| o.id == b.id && o.next == b.start)
                .map(|i| {
                    ClientMsg::Points(MorePoints {
                        stroke: i as u32,
                        points: Offsets::between(self.open[i].lead, &b.points),
                    })
                }),
            _ => None,
        };
        self.observe(msg);
        short
    }

    /// Decodes a client's frame and expands it (see [`Handles::expand`]).
    pub fn decode(&mut self, frame: &[u8]) -> Result<ClientMsg, DecodeError> {
        let msg = decode_client(frame)?;
        self.expand(msg).map_err(|e| DecodeError::Handle(e.0))
    }

    /// The frame to send for `msg` (see [`Handles::shorten`]).
    pub fn encode(&mut self, msg: &ClientMsg) -> Vec<u8> {
        match self.shorten(msg) {
            Some(short) => encode_client(&short),
            None => encode_client(msg),
        }
    }

    /// The message a received one stands for: a short point batch in full. Every message
    /// received must pass through here, in order, whatever becomes of it.
    pub fn expand(&mut self, msg: ClientMsg) -> Result<ClientMsg, InvalidValue> {
        let full = match msg {
            ClientMsg::Points(more) => {
                let n = self
                    .last_n
                    .and_then(|l| l.checked_add(1))
                    .ok_or(InvalidValue("points by handle before any op"))?;
                let open = self
                    .open
                    .get(more.stroke as usize)
                    .ok_or(InvalidValue("no stroke has this handle"))?;
                let points = more.points.from(open.lead)?;
                let b = StrokePoints::new(open.id, open.next, points)?;
                ClientMsg::Op(Submit {
                    n,
                    op: Op::StrokePoints(b),
                })
            }
            msg => msg,
        };
        self.observe(&full);
        Ok(full)
    }

    /// Takes in a message in full form.
    fn observe(&mut self, msg: &ClientMsg) {
        let ClientMsg::Op(Submit { n, op }) = msg else {
            return;
        };
        self.last_n = Some(*n);
        match op {
            Op::StrokeBegin { id, first, .. } => {
                self.open.retain(|o| o.id != *id);
                self.open.push_front(Open {
                    id: *id,
                    next: 1,
                    lead: Lead::start(*first),
                });
                self.open.truncate(MAX_OPEN_HANDLES);
            }
            Op::StrokePoints(b) => {
                if let Some(o) = self.open.iter_mut().find(|o| o.id == b.id) {
                    o.next = b.start + b.points.len() as u32;
                    o.lead = o.lead.then(b.points.as_slice());
                }
            }
            Op::StrokeEnd { id } => self.open.retain(|o| o.id != *id),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::BitWriter;
    use crate::ids::{Color, Width};
    use crate::limits::MAX_POINTS_PER_BATCH;
    use crate::msg::Tool;
    use crate::point::{Point, Points};

    fn id(n: u128) -> StrokeId {
        StrokeId(uuid::Uuid::from_u128(n))
    }

    fn p(x: i32, y: i32) -> Point {
        Point::new(x, y, 100).unwrap()
    }

    fn submit(n: u64, op: Op) -> ClientMsg {
        ClientMsg::Op(Submit { n, op })
    }

    fn begin(n: u64, stroke: u128) -> ClientMsg {
        submit(
            n,
            Op::StrokeBegin {
                id: id(stroke),
                tool: Tool::Pen,
                color: Color::rgb(1, 2, 3),
                width: Width::new(16).unwrap(),
                first: p(1000, 1000),
            },
        )
    }

    fn batch(n: u64, stroke: u128, start: u32, at: i32) -> ClientMsg {
        let points = Points::new(vec![p(at, 1000), p(at + 9, 1004)]).unwrap();
        submit(
            n,
            Op::StrokePoints(StrokePoints::new(id(stroke), start, points).unwrap()),
        )
    }

    /// Sends `msgs` through a client's handles and a server's, as frames.
    fn through(msgs: &[ClientMsg]) -> Vec<(usize, ClientMsg)> {
        let (mut client, mut server) = (Handles::new(), Handles::new());
        msgs.iter()
            .map(|m| {
                let frame = client.encode(m);
                let got = server.expand(decode_client(&frame).unwrap()).unwrap();
                (frame.len(), got)
            })
            .collect()
    }

    #[test]
    fn batches_that_continue_the_connection_go_short_and_come_out_whole() {
        let msgs = [
            begin(5, 1),
            batch(6, 1, 1, 1010),
            batch(7, 1, 3, 1030),
            submit(8, Op::StrokeEnd { id: id(1) }),
        ];
        let out = through(&msgs);
        for (m, (_, got)) in msgs.iter().zip(&out) {
            assert_eq!(m, got);
        }
        // A short batch of two points: the first byte with the handle, then 27 bits of codes.
        assert_eq!(out[1].0, 5);
        assert_eq!(out[1].1, msgs[1]);
        // The id (17 bytes), the index and the number stay home.
        assert!(encode_client(&msgs[1]).len() >= out[1].0 + 19);
    }

    #[test]
    fn a_gap_in_numbers_or_points_a_stroke_begun_elsewhere_and_an_ended_one_go_in_full() {
        let msgs = [
            // Begun on another connection: no handle here.
            batch(3, 9, 5, 2000),
            begin(5, 1),
            // A number skipped.
            batch(7, 1, 1, 1010),
            // Points skipped (a resend from further back).
            batch(8, 1, 1, 1010),
            batch(9, 1, 3, 1030),
            submit(10, Op::StrokeEnd { id: id(1) }),
            // Ended: no handle any more.
            batch(11, 1, 5, 1050),
        ];
        let mut client = Handles::new();
        let short: Vec<bool> = msgs.iter().map(|m| client.shorten(m).is_some()).collect();
        assert_eq!(short, [false, false, false, false, true, false, false]);
        for (m, (_, got)) in msgs.iter().zip(through(&msgs)) {
            assert_eq!(*m, got);
        }
    }

    #[test]
    fn strokes_drawn_at_once_keep_their_own_handles() {
        let msgs = [
            begin(1, 1),
            begin(2, 2),
            batch(3, 1, 1, 1010),
            batch(4, 2, 1, 3010),
            batch(5, 1, 3, 1030),
        ];
        let mut client = Handles::new();
        let forms: Vec<Option<ClientMsg>> = msgs.iter().map(|m| client.shorten(m)).collect();
        assert!(matches!(&forms[2], Some(ClientMsg::Points(m)) if m.stroke == 1));
        assert!(matches!(&forms[3], Some(ClientMsg::Points(m)) if m.stroke == 0));
        for (m, (_, got)) in msgs.iter().zip(through(&msgs)) {
            assert_eq!(*m, got);
        }
    }

    #[test]
    fn unknown_handles_are_refused() {
        let more = |stroke| {
            ClientMsg::Points(MorePoints {
                stroke,
                points: Offsets::new(vec![(1, 1, 1)]).unwrap(),
            })
        };
        let mut server = Handles::new();
        assert!(server.expand(more(0)).is_err(), "before any op");
        server.expand(begin(1, 1)).unwrap();
        assert!(server.expand(more(1)).is_err());
        assert!(server.expand(more(0)).is_ok());
        server
            .expand(submit(3, Op::StrokeEnd { id: id(1) }))
            .unwrap();
        assert!(server.expand(more(0)).is_err(), "after its end");
    }

    #[test]
    fn a_run_of_bits_that_is_cut_short_padded_with_ones_or_followed_by_more_is_refused() {
        let offsets = Offsets::new(vec![(3, -4, 200), (0, 1, 0)]).unwrap();
        let mut frame = encode_client(&ClientMsg::Points(MorePoints {
            stroke: 5,
            points: offsets.clone(),
        }));
        assert_eq!(frame[0], POINTS_FRAME | 5);
        let back = decode_client(&frame).unwrap();
        assert!(matches!(back, ClientMsg::Points(m) if m.stroke == 5 && m.points == offsets));
        assert!(
            decode_client(&frame[..frame.len() - 1]).is_err(),
            "cut short"
        );
        let last = frame.len() - 1;
        frame[last] |= 1;
        assert!(decode_client(&frame).is_err(), "padded with a one");
        frame[last] &= !1;
        frame.push(0);
        assert!(matches!(
            decode_client(&frame),
            Err(DecodeError::Trailing(1))
        ));
        // A count past the limit: 1,024 in the order-0 code (10 zeros, then 11 digits).
        let mut bits = BitWriter::new();
        bits.code(MAX_POINTS_PER_BATCH as u32, 0);
        let mut long = vec![POINTS_FRAME];
        long.extend(bits.finish());
        long.extend([0xff; 1200]);
        assert!(decode_client(&long).is_err());
    }

    #[test]
    fn handles_past_the_first_byte_go_in_a_message() {
        let more = MorePoints {
            stroke: MAX_OPEN_HANDLES as u32,
            points: Offsets::new(vec![(1, 2, 3)]).unwrap(),
        };
        let frame = encode_client(&ClientMsg::Points(more.clone()));
        assert_eq!(frame[0], crate::limits::PROTOCOL_VERSION);
        assert_eq!(decode_client(&frame), Ok(ClientMsg::Points(more)));
    }
}
