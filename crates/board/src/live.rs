//! Live points by handle on both sides of the relay: the room turns a sequenced batch of
//! points into its short form ([`Board::live_points`]) on the board before the op, and a
//! member's board, at the same op, turns it back ([`Board::expand`]). See
//! [`kokuban_protocol::live`].

use kokuban_protocol::live::MAX_HANDLE_DEPTH;
use kokuban_protocol::{Ack, Lead, LivePoints, Offsets, Op, Seq, Sequenced, StrokePoints};

use crate::board::{Board, SequenceError};

impl Board {
    /// The short form of `s` for members whose boards are where this one is (at the op
    /// before it), when `s` continues a stroke near the top of the drawing order right where
    /// the board has it; `None` sends it in full.
    pub fn live_points(&self, s: &Sequenced) -> Option<LivePoints> {
        let Op::StrokePoints(b) = &s.op else {
            return None;
        };
        let &order = self.index.get(&b.id)?;
        let stroke = &self.strokes[&order];
        let lead = Lead::of(&stroke.points)?;
        if stroke.author != s.author || stroke.points.len() != b.start as usize {
            return None;
        }
        let above = self
            .strokes
            .range(order + 1..)
            .take(MAX_HANDLE_DEPTH + 1)
            .count();
        (above <= MAX_HANDLE_DEPTH).then(|| LivePoints {
            check: s.seq.0 as u8,
            stroke: above as u32,
            points: Offsets::between(lead, &b.points),
        })
    }

    /// The place an [`kokuban_protocol::ServerMsg::Acked`] names on this board: the next one,
    /// when its low byte is `check`.
    pub fn acked(&self, check: u8) -> Result<Ack, SequenceError> {
        let position = self
            .position
            .ok_or(SequenceError::Handle("no history yet"))?;
        let seq = position.seq.next();
        if seq.0 as u8 != check {
            return Err(SequenceError::Handle("not the next place"));
        }
        Ok(Ack {
            epoch: position.epoch,
            seq,
        })
    }

    /// The op `live` stands for on this board: the next one of its history, by the author of
    /// the stroke it names. Refused when the board is not where the room's was.
    pub fn expand(&self, live: &LivePoints) -> Result<Sequenced, SequenceError> {
        let Some(position) = self.position else {
            return Err(SequenceError::Handle("no history yet"));
        };
        let seq: Seq = position.seq.next();
        if seq.0 as u8 != live.check {
            return Err(SequenceError::Handle("not the next op"));
        }
        let stroke = (live.stroke as usize <= MAX_HANDLE_DEPTH)
            .then(|| self.strokes.values().rev().nth(live.stroke as usize))
            .flatten()
            .ok_or(SequenceError::Handle("no stroke has this handle"))?;
        let lead =
            Lead::of(&stroke.points).ok_or(SequenceError::Handle("a stroke without points"))?;
        let points = live
            .points
            .from(lead)
            .map_err(|e| SequenceError::Handle(e.0))?;
        let b = StrokePoints::new(stroke.id, stroke.points.len() as u32, points)
            .map_err(|e| SequenceError::Handle(e.0))?;
        Ok(Sequenced {
            epoch: position.epoch,
            seq,
            author: stroke.author,
            op: Op::StrokePoints(b),
        })
    }
}

#[cfg(test)]
mod tests {
    use kokuban_protocol::{
        Color, Epoch, MemberId, Point, Points, Seq, Sequenced, StrokeId, Tool, Width,
    };

    use super::*;

    fn id(n: u128) -> StrokeId {
        StrokeId(uuid::Uuid::from_u128(n))
    }

    fn at(seq: u64, author: u64, op: Op) -> Sequenced {
        Sequenced {
            epoch: Epoch(3),
            seq: Seq(seq),
            author: MemberId(author),
            op,
        }
    }

    fn begin(stroke: u128, x: i32) -> Op {
        Op::StrokeBegin {
            id: id(stroke),
            tool: Tool::Pen,
            color: Color::rgb(0, 0, 0),
            width: Width::new(8).unwrap(),
            first: Point::new(x, 0, 50).unwrap(),
        }
    }

    fn points(stroke: u128, start: u32, x: i32) -> Op {
        let ps = (0..3).map(|i| Point::new(x + i, i, 60).unwrap()).collect();
        Op::StrokePoints(StrokePoints::new(id(stroke), start, Points::new(ps).unwrap()).unwrap())
    }

    /// Applies `ops` to a room's board and, in short form where it can, to a member's.
    fn relay(ops: Vec<Sequenced>) -> (Board, Board, usize) {
        let (mut room, mut member) = (Board::at_start_of(Epoch(3)), Board::at_start_of(Epoch(3)));
        let mut short = 0;
        for s in ops {
            let got = match room.live_points(&s) {
                Some(live) => {
                    short += 1;
                    member.expand(&live).unwrap()
                }
                None => s.clone(),
            };
            assert_eq!(got, s);
            room.apply_sequenced(&s).unwrap();
            member.apply_sequenced(&got).unwrap();
        }
        (room, member, short)
    }

    #[test]
    fn batches_of_strokes_drawn_at_once_come_back_whole() {
        let ops = vec![
            at(1, 1, begin(1, 0)),
            at(2, 2, begin(2, 500)),
            at(3, 1, points(1, 1, 10)),
            at(4, 2, points(2, 1, 510)),
            at(5, 1, points(1, 4, 20)),
            at(6, 1, Op::StrokeEnd { id: id(1) }),
            at(7, 2, points(2, 4, 520)),
        ];
        let (room, member, short) = relay(ops);
        assert_eq!(short, 4);
        assert_eq!(room.snapshot(), member.snapshot());
    }

    #[test]
    fn a_batch_after_a_gap_or_of_another_author_goes_in_full() {
        let (room, _, _) = relay(vec![at(1, 1, begin(1, 0))]);
        assert!(
            room.live_points(&at(2, 1, points(1, 5, 10))).is_none(),
            "gap"
        );
        assert!(
            room.live_points(&at(2, 9, points(1, 1, 10))).is_none(),
            "not its author"
        );
        assert!(
            room.live_points(&at(2, 1, points(7, 1, 10))).is_none(),
            "unknown stroke"
        );
        assert!(room.live_points(&at(2, 1, points(1, 1, 10))).is_some());
    }

    #[test]
    fn a_board_elsewhere_in_the_history_refuses_rather_than_misreads() {
        let (mut room, _, _) = relay(vec![at(1, 1, begin(1, 0))]);
        let live = room.live_points(&at(2, 1, points(1, 1, 10))).unwrap();
        // A member one op behind, or one ahead.
        let behind = Board::at_start_of(Epoch(3));
        assert!(behind.expand(&live).is_err());
        room.apply_sequenced(&at(2, 1, points(1, 1, 10))).unwrap();
        assert!(room.expand(&live).is_err());
        let far = LivePoints {
            stroke: 5,
            ..room.live_points(&at(3, 1, points(1, 4, 10))).unwrap()
        };
        assert!(room.expand(&far).is_err());
    }

    #[test]
    fn strokes_deep_in_the_drawing_order_go_in_full() {
        let mut ops = vec![at(1, 1, begin(1, 0))];
        for k in 0..MAX_HANDLE_DEPTH as u64 + 1 {
            ops.push(at(
                2 + k,
                2,
                Op::StrokeBegin {
                    id: id(100 + u128::from(k)),
                    tool: Tool::Line,
                    color: Color::rgb(0, 0, 0),
                    width: Width::new(8).unwrap(),
                    first: Point::new(0, 0, 0).unwrap(),
                },
            ));
        }
        let (room, _, _) = relay(ops);
        let next = MAX_HANDLE_DEPTH as u64 + 3;
        assert!(room.live_points(&at(next, 1, points(1, 1, 10))).is_none());
    }
}
