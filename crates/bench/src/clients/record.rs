//! What the clients of a run record: latencies in histograms they share, and each client's
//! own report of what it sent, what reached it and what went wrong.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use super::Schedule;
use crate::stamp::{CursorStamp, Stamp};
use crate::stats::{Deliveries, Latencies, SeqCheck};

/// State shared by all clients of one run.
#[derive(Debug)]
pub struct Shared {
    /// The run's clock; every stamp is relative to it.
    pub clock: Instant,
    /// Node of each editor, to tell same-node from cross-node deliveries.
    pub editor_node: Vec<usize>,
    /// Bytes of each batch's payload are drawn from this range.
    pub batch_bytes: (usize, usize),
    /// Stroke length in batches before an editor ends the stroke and starts another.
    pub batches_per_stroke: u32,
    /// Latency histograms, sharded to keep lock contention out of the measurement.
    shards: Vec<Mutex<Hists>>,
}

/// Latencies split by where sender and receiver were.
#[derive(Debug, Clone, Default)]
pub struct Hists {
    /// Every measured delivery.
    pub all: Latencies,
    /// Sender and receiver on the same node.
    pub same_node: Latencies,
    /// Sender and receiver on different nodes.
    pub cross_node: Latencies,
    /// Cursor updates: receipt minus when the position they carry was sent.
    pub cursor: Latencies,
    /// Time between two consecutive cursor updates of the same mover at the same receiver.
    pub cursor_gap: Latencies,
}

impl Hists {
    fn merge(&mut self, other: &Hists) {
        self.all.merge(&other.all);
        self.same_node.merge(&other.same_node);
        self.cross_node.merge(&other.cross_node);
        self.cursor.merge(&other.cursor);
        self.cursor_gap.merge(&other.cursor_gap);
    }
}

const SHARDS: usize = 32;

impl Shared {
    /// State for a run.
    pub fn new(
        editor_node: Vec<usize>,
        batch_bytes: (usize, usize),
        batches_per_stroke: u32,
    ) -> Self {
        Self {
            clock: Instant::now(),
            editor_node,
            batch_bytes,
            batches_per_stroke,
            shards: (0..SHARDS).map(|_| Mutex::new(Hists::default())).collect(),
        }
    }

    /// Microseconds on the run clock.
    pub fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    fn shard(&self, client: usize) -> std::sync::MutexGuard<'_, Hists> {
        self.shards[client % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, client: usize, latency_us: u64, cross: bool) {
        let mut h = self.shard(client);
        h.all.record(latency_us);
        if cross {
            h.cross_node.record(latency_us);
        } else {
            h.same_node.record(latency_us);
        }
    }

    fn record_cursor(&self, client: usize, latency_us: u64, gap_us: Option<u64>) {
        let mut h = self.shard(client);
        h.cursor.record(latency_us);
        if let Some(gap) = gap_us {
            h.cursor_gap.record(gap);
        }
    }

    /// All latencies recorded so far.
    pub fn histograms(&self) -> Hists {
        let mut out = Hists::default();
        for shard in &self.shards {
            out.merge(&shard.lock().unwrap_or_else(|e| e.into_inner()));
        }
        out
    }
}

/// What a client saw, handed back when it stops.
#[derive(Debug, Clone, Default)]
pub struct ClientReport {
    /// The client.
    pub index: usize,
    /// Arrivals per editor (global editor index).
    pub deliveries: Vec<(u32, Deliveries)>,
    /// Distinct arrivals of measured batches.
    pub delivered_in_window: u64,
    /// Order of sequenced ops (Kokuban only).
    pub seq: SeqCheck,
    /// Errors (error frames, unexpected closes, undecodable frames).
    pub errors: u64,
    /// The first error, for the report.
    pub first_error: Option<String>,
    /// For an editor: the first and last batch sent in the window, and how many.
    pub sent_window: Option<(u32, u32)>,
    /// Batches sent in the window.
    pub sent_in_window: u64,
    /// For an editor: the batches the server refused with an error frame (the room was
    /// read-only for a moment), so that nobody could receive them. A real client keeps such
    /// ops and sends them again once the room takes writes; this one only counts them.
    pub refused: Vec<u32>,
    /// For an editor: its ops not answered yet, oldest first, with the batch each carries.
    /// Every op is answered in the order it was sent, by an Ack or by an error frame.
    pub(crate) awaiting: VecDeque<Option<u32>>,
    /// Cursor moves sent in the window.
    pub cursor_sent_in_window: u64,
    /// Send time of the last cursor move sent at all.
    pub cursor_last_sent_us: Option<u64>,
    /// Cursor updates received of moves sent in the window.
    pub cursor_delivered_in_window: u64,
    /// What arrived of each other member's cursor (by mover index).
    pub cursors: Vec<(u32, CursorSeen)>,
}

/// What a receiver saw of one other member's cursor.
#[derive(Debug, Clone, Copy, Default)]
pub struct CursorSeen {
    /// Send time of the newest position received.
    pub last_sent_us: u64,
    /// When the last update arrived (run clock).
    pub last_arrival_us: u64,
}

impl ClientReport {
    pub(super) fn error(&mut self, what: impl Into<String>) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what.into());
        }
    }

    pub(super) fn arrive(
        &mut self,
        shared: &Shared,
        schedule: Option<Schedule>,
        node: usize,
        stamp: Stamp,
    ) {
        let now = shared.now_us();
        let d = match self.deliveries.iter().position(|(e, _)| *e == stamp.editor) {
            Some(i) => &mut self.deliveries[i].1,
            None => {
                self.deliveries.push((stamp.editor, Deliveries::default()));
                &mut self.deliveries.last_mut().expect("just pushed").1
            }
        };
        let fresh = d.arrive(stamp.batch);
        if let Some(s) = schedule
            && fresh
            && s.in_window(stamp.sent_us)
        {
            self.delivered_in_window += 1;
            let cross = shared.editor_node.get(stamp.editor as usize) != Some(&node);
            shared.record(self.index, now.saturating_sub(stamp.sent_us), cross);
        }
    }

    pub(super) fn cursor_arrive(
        &mut self,
        shared: &Shared,
        schedule: Option<Schedule>,
        c: CursorStamp,
    ) {
        let now = shared.now_us();
        let i = match self.cursors.iter().position(|(m, _)| *m == c.mover) {
            Some(i) => i,
            None => {
                self.cursors.push((c.mover, CursorSeen::default()));
                self.cursors.len() - 1
            }
        };
        let seen = &mut self.cursors[i].1;
        let previous = std::mem::replace(&mut seen.last_arrival_us, now);
        seen.last_sent_us = seen.last_sent_us.max(c.sent_us);
        if let Some(s) = schedule
            && s.in_window(c.sent_us)
        {
            self.cursor_delivered_in_window += 1;
            let gap = (previous > 0).then(|| now.saturating_sub(previous));
            shared.record_cursor(self.index, now.saturating_sub(c.sent_us), gap);
        }
    }
}
