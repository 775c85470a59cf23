//! How big each scenario of a run is: the full run's sizes, and the quick run's that check the
//! whole benchmark in a few minutes.

use std::time::Duration;

use crate::scenario::Load;
use crate::targets;

pub(super) struct Sizes {
    pub(super) relay_steps: Vec<usize>,
    pub(super) step_ratio: f64,
    pub(super) warmup: Duration,
    pub(super) measure: Duration,
    pub(super) syscall_window: Duration,
    /// Sampled by `perf record` at the loads targets compare at (the reference relay load and
    /// the scenarios).
    pub(super) profile_window: Duration,
    pub(super) drain: Duration,
    pub(super) fanout_viewers: usize,
    pub(super) presence_clients: usize,
    pub(super) big_room_editors: usize,
    pub(super) big_room_hz: f64,
    pub(super) idle_connections: usize,
    pub(super) idle_measure: Duration,
    pub(super) join_points: u64,
    pub(super) joins: usize,
    pub(super) storm_joiners: usize,
    /// Ops the Ack scenario measures per deployment.
    pub(super) ack_ops: usize,
    /// The holding attacks: board, stalled joiners, fragment holders.
    pub(super) hold_board_bytes: usize,
    pub(super) hold_joiners: usize,
    pub(super) hold_holders: usize,
    pub(super) storm_board_bytes: usize,
    pub(super) pen_strokes: usize,
    pub(super) sharded_clients: usize,
    /// Loads of the Redis Cluster comparison, in clients.
    pub(super) shard_loads: Vec<usize>,
}

impl Sizes {
    pub(super) fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                relay_steps: vec![100, 200, 400],
                step_ratio: 1.5,
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(2),
                syscall_window: Duration::from_secs(1),
                profile_window: Duration::from_secs(1),
                drain: Duration::from_secs(1),
                fanout_viewers: 300,
                presence_clients: 100,
                big_room_editors: 50,
                big_room_hz: 4.0,
                idle_connections: 2_000,
                idle_measure: Duration::from_secs(2),
                join_points: 100_000,
                joins: 3,
                storm_joiners: 30,
                ack_ops: 100,
                hold_board_bytes: 2_000_000,
                hold_joiners: 5,
                hold_holders: 100,
                storm_board_bytes: 1 << 20,
                pen_strokes: 2,
                sharded_clients: 100,
                shard_loads: vec![100],
            }
        } else {
            Sizes {
                // Doubling steps to find each system's limit, refined near it.
                relay_steps: vec![100, 200, 400, 800, 1600, 3200],
                step_ratio: 1.25,
                warmup: Duration::from_secs(2),
                measure: Duration::from_secs(6),
                syscall_window: Duration::from_secs(2),
                profile_window: Duration::from_secs(3),
                drain: Duration::from_secs(2),
                fanout_viewers: 1_500,
                presence_clients: 500,
                // Every batch of 200 editors reaches 199 members: at 2 Hz each that is 79,600
                // deliveries a second, what the load generator can check on two cores while
                // sharing them (at 60 Hz it would be 2.4 million).
                big_room_editors: 200,
                big_room_hz: 2.0,
                idle_connections: 50_000,
                // Longer than one heartbeat round of both systems (Socket.IO pings every 25 s,
                // Kokuban every 15 s), so "CPU at rest" includes keeping the connections alive.
                idle_measure: Duration::from_secs(30),
                join_points: 1_000_000,
                joins: 5,
                storm_joiners: 150,
                ack_ops: 1_000,
                hold_board_bytes: 16_000_000,
                hold_joiners: 20,
                hold_holders: 1_000,
                storm_board_bytes: 4_000_000,
                pen_strokes: 6,
                sharded_clients: 400,
                shard_loads: vec![200, 800],
            }
        }
    }

    pub(super) fn base(&self) -> Load {
        Load {
            scenario: "relay".into(),
            rooms: 1,
            room_size: 10,
            editors_per_room: 2,
            rate_hz: 60.0,
            // A second of drawing per stroke: StrokeBegin and StrokeEnd add 2 frames to 60.
            stroke_batches: 60,
            cursor_hz: 0.0,
            batch_bytes: (64, 128),
            warmup: self.warmup,
            measure: self.measure,
            syscall_window: self.syscall_window,
            profile_window: Duration::ZERO,
            drain: self.drain,
        }
    }

    pub(super) fn relay(&self, clients: usize) -> Load {
        let profiled = clients == targets::REFERENCE_CLIENTS;
        Load {
            rooms: clients / 10,
            profile_window: if profiled {
                self.profile_window
            } else {
                Duration::ZERO
            },
            ..self.base()
        }
    }

    pub(super) fn fanout(&self) -> Load {
        Load {
            scenario: "fanout".into(),
            room_size: self.fanout_viewers + 1,
            editors_per_room: 1,
            profile_window: self.profile_window,
            ..self.base()
        }
    }

    pub(super) fn presence(&self) -> Load {
        Load {
            scenario: "presence".into(),
            rooms: self.presence_clients / 10,
            editors_per_room: 0,
            rate_hz: 0.0,
            cursor_hz: 30.0,
            profile_window: self.profile_window,
            ..self.base()
        }
    }

    pub(super) fn big_room(&self) -> Load {
        Load {
            scenario: "big room".into(),
            room_size: self.big_room_editors,
            editors_per_room: self.big_room_editors,
            rate_hz: self.big_room_hz,
            profile_window: self.profile_window,
            ..self.base()
        }
    }

    pub(super) fn idle(&self) -> Load {
        Load {
            scenario: "idle".into(),
            rooms: self.idle_connections / 10,
            editors_per_room: 0,
            warmup: Duration::from_secs(2),
            measure: self.idle_measure,
            syscall_window: Duration::ZERO,
            drain: Duration::ZERO,
            ..self.base()
        }
    }
}
