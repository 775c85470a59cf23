//! What an editor sends: the batches of one stroke after another, stamped, in Kokuban's frames
//! (as the app sends them, by handle where it can) or as a Socket.IO attachment.

use kokuban_protocol::{ClientMsg, Color, Handles, Lead, Op, Point, StrokeId, Submit, Tool, Width};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Shared;
use crate::stamp::Stamp;

/// What an editor sends next: the batches of one stroke after another.
#[derive(Debug)]
pub(super) struct Pen {
    editor: u32,
    batch: u32,
    stroke: StrokeId,
    /// Index of the next point of the stroke (0: the stroke has not begun).
    next_point: u32,
    batches_in_stroke: u32,
    /// The number of the last op sent (ops are numbered by their author).
    n: u64,
    /// Where the stroke stands after what was sent of it.
    lead: Lead,
    /// What the connection carried, for batches by handle (as the app sends them).
    handles: Handles,
    rng: SmallRng,
    buf: Vec<u8>,
}

impl Pen {
    /// The next op, numbered and encoded.
    fn encode(&mut self, op: Op) -> Vec<u8> {
        self.n += 1;
        self.handles
            .encode(&ClientMsg::Op(Submit { n: self.n, op }))
    }

    pub(super) fn new(editor: u32, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        Self {
            editor,
            batch: 0,
            stroke: StrokeId(uuid::Uuid::from_u128(rng.random())),
            next_point: 0,
            batches_in_stroke: 0,
            n: 0,
            lead: Lead::start(Point::new(0, 0, 0).expect("the origin is in bounds")),
            handles: Handles::new(),
            rng,
            buf: Vec::new(),
        }
    }

    fn target_len(&mut self, shared: &Shared) -> usize {
        let (lo, hi) = shared.batch_bytes;
        self.rng.random_range(lo..=hi)
    }

    fn stamp(&mut self, shared: &Shared) -> Stamp {
        let stamp = Stamp {
            sent_us: shared.now_us(),
            editor: self.editor,
            batch: self.batch,
        };
        self.batch += 1;
        stamp
    }

    /// Kokuban frames for one tick: a batch, preceded by `StrokeBegin` at the start of a stroke
    /// and followed by `StrokeEnd` at its end, as a browser sends them. Also gives which frame
    /// carries the batch.
    pub(super) fn kokuban_frames(&mut self, shared: &Shared) -> (Stamp, Vec<Vec<u8>>, usize) {
        let mut frames = Vec::with_capacity(3);
        if self.next_point == 0 {
            self.stroke = StrokeId(uuid::Uuid::from_u128(self.rng.random()));
            let first = Point::new(
                self.rng.random_range(0..8000),
                self.rng.random_range(0..8000),
                128,
            )
            .expect("small coordinates are in bounds");
            let begin = Op::StrokeBegin {
                id: self.stroke,
                tool: Tool::Pen,
                color: Color::rgb(20, 20, 20),
                width: Width::new(16).expect("valid width"),
                first,
            };
            frames.push(self.encode(begin));
            self.lead = Lead::start(first);
            self.next_point = 1;
            self.batches_in_stroke = 0;
        }
        let target = self.target_len(shared);
        let stamp = self.stamp(shared);
        // Size the batch: encode the stamp's points alone as they would be sent, then add
        // pen-trace points of three bytes each until the frame reaches the target size.
        let bare = self.handles.clone().encode(&ClientMsg::Op(Submit {
            n: self.n + 1,
            op: Op::StrokePoints(stamp.stroke_points(
                self.stroke,
                self.next_point,
                self.lead,
                0,
                &mut self.rng,
            )),
        }));
        let fillers = target.saturating_sub(bare.len()).div_ceil(3);
        let batch = stamp.stroke_points(
            self.stroke,
            self.next_point,
            self.lead,
            fillers,
            &mut self.rng,
        );
        self.next_point += batch.points.len() as u32;
        self.lead = self.lead.then(batch.points.as_slice());
        let points_at = frames.len();
        frames.push(self.encode(Op::StrokePoints(batch)));
        self.batches_in_stroke += 1;
        if self.batches_in_stroke >= shared.batches_per_stroke {
            let end = Op::StrokeEnd { id: self.stroke };
            frames.push(self.encode(end));
            self.next_point = 0;
        }
        (stamp, frames, points_at)
    }

    /// The Socket.IO attachment for one tick.
    pub(super) fn socketio_payload(&mut self, shared: &Shared) -> (Stamp, Vec<u8>) {
        let target = self.target_len(shared);
        let stamp = self.stamp(shared);
        let mut buf = std::mem::take(&mut self.buf);
        stamp.write_bytes(target, &mut self.rng, &mut buf);
        (stamp, buf)
    }
}
