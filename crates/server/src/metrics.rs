//! Counters for `GET /metrics`, in the Prometheus text format.
//!
//! Plain atomics: every update is one relaxed add on the hot path, and the handful of series
//! does not justify a metrics framework.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

mod rejection;
mod shards;

pub use rejection::Rejection;
pub use shards::ShardMetrics;

/// Upper bounds of the store commit latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// A cumulative histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    pub(crate) sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.count.load(Relaxed);
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Every counter of a node. Shared by `Arc`; all fields are updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket sessions open now.
    pub connections_open: AtomicU64,
    /// WebSocket sessions accepted since start.
    pub connections_total: AtomicU64,
    /// Rooms held in memory now.
    pub rooms_loaded: AtomicU64,
    /// Members joined to a room now.
    pub members: AtomicU64,
    /// Data frames received.
    pub frames_in: AtomicU64,
    /// Data frames sent.
    pub frames_out: AtomicU64,
    /// Payload bytes received.
    pub bytes_in: AtomicU64,
    /// Payload bytes sent.
    pub bytes_out: AtomicU64,
    /// Durable ops given a place in their room's order.
    pub ops_sequenced: AtomicU64,
    /// Members disconnected because their send queue was full.
    pub slow_consumer_disconnects: AtomicU64,
    /// Frames dropped by the rate limit.
    pub rate_limit_hits: AtomicU64,
    /// Connections closed for sustained rate-limit abuse.
    pub rate_limit_closes: AtomicU64,
    /// Connections closed by the heartbeat.
    pub idle_timeouts: AtomicU64,
    /// WebSocket handshakes refused because of their Origin.
    pub origin_rejections: AtomicU64,
    /// HTTP connections closed because their request header did not arrive in time.
    pub header_timeouts: AtomicU64,
    /// Connections refused at accept because a connection cap was reached.
    pub connections_refused: AtomicU64,
    /// WebSocket upgrades answered `429` because their address opened too many too fast.
    pub upgrades_refused: AtomicU64,
    /// `POST /api/rooms` answered `429` because their address created too many rooms.
    pub rooms_refused: AtomicU64,
    /// Rooms deleted because nobody used them for the configured time (single node).
    pub rooms_expired: AtomicU64,
    /// Snapshots written by compaction.
    pub compactions: AtomicU64,
    /// Versions of boards kept (checkpoints, before a Clear or after an interval of drawing).
    pub versions_kept: AtomicU64,
    /// Images of boards this node stored (an image a room held already is not counted).
    pub blobs_stored: AtomicU64,
    /// Bytes of those images.
    pub blob_bytes_stored: AtomicU64,
    /// Store commits that failed.
    pub store_errors: AtomicU64,
    /// Cluster mode: Redis connections (commands or subscription) found dead or unanswering.
    pub redis_disconnects: AtomicU64,
    /// Cluster mode: the shards in use, each with its own counters.
    pub redis_shards: std::sync::Mutex<Vec<std::sync::Arc<ShardMetrics>>>,
    /// Cluster mode on a Redis Cluster: changes of which master serves which slots seen
    /// (failovers, migrations).
    pub redis_topology_changes: AtomicU64,
    /// Cluster mode with `--redis-replicas`: rounds that asked the replicas to confirm writes.
    pub replica_rounds: AtomicU64,
    /// Cluster mode with `--redis-replicas`: rounds that found fewer replicas than wanted.
    pub replica_shortfalls: AtomicU64,
    /// Cluster mode: members disconnected to resume because Redis stayed unreachable while
    /// their ops were in flight (whether those were sequenced could not be known in time).
    pub in_doubt_disconnects: AtomicU64,
    /// Latency of one store commit (a group of writes).
    pub store_write_latency: Histogram,
    rejected: [AtomicU64; Rejection::ALL.len()],
}

impl Metrics {
    /// Counts a refused frame.
    pub fn reject(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Relaxed);
    }

    /// How many frames were refused for `why`.
    pub fn rejected(&self, why: Rejection) -> u64 {
        self.rejected[why as usize].load(Relaxed)
    }

    /// One frame received.
    pub fn frame_in(&self, bytes: usize) {
        self.frames_in.fetch_add(1, Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    /// One frame sent.
    pub fn frame_out(&self, bytes: usize) {
        self.frames_out.fetch_add(1, Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, node: &str) -> String {
        let mut out = String::with_capacity(4096);
        let mut one = |name: &str, kind: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Relaxed)
            );
        };
        one(
            "kokuban_connections_open",
            "gauge",
            "WebSocket sessions open.",
            &self.connections_open,
        );
        one(
            "kokuban_connections_total",
            "counter",
            "WebSocket sessions accepted.",
            &self.connections_total,
        );
        one(
            "kokuban_rooms_loaded",
            "gauge",
            "Rooms held in memory.",
            &self.rooms_loaded,
        );
        one(
            "kokuban_members",
            "gauge",
            "Members joined to a room.",
            &self.members,
        );
        one(
            "kokuban_frames_in_total",
            "counter",
            "Data frames received.",
            &self.frames_in,
        );
        one(
            "kokuban_frames_out_total",
            "counter",
            "Data frames sent.",
            &self.frames_out,
        );
        one(
            "kokuban_bytes_in_total",
            "counter",
            "Payload bytes received.",
            &self.bytes_in,
        );
        one(
            "kokuban_bytes_out_total",
            "counter",
            "Payload bytes sent.",
            &self.bytes_out,
        );
        one(
            "kokuban_ops_sequenced_total",
            "counter",
            "Durable ops sequenced.",
            &self.ops_sequenced,
        );
        one(
            "kokuban_slow_consumer_disconnects_total",
            "counter",
            "Members disconnected because their send queue was full.",
            &self.slow_consumer_disconnects,
        );
        one(
            "kokuban_rate_limit_hits_total",
            "counter",
            "Frames dropped by the rate limit.",
            &self.rate_limit_hits,
        );
        one(
            "kokuban_rate_limit_closes_total",
            "counter",
            "Connections closed for sustained rate-limit abuse.",
            &self.rate_limit_closes,
        );
        one(
            "kokuban_idle_timeouts_total",
            "counter",
            "Connections closed by the heartbeat.",
            &self.idle_timeouts,
        );
        one(
            "kokuban_origin_rejections_total",
            "counter",
            "WebSocket handshakes refused for their Origin.",
            &self.origin_rejections,
        );
        one(
            "kokuban_http_header_timeouts_total",
            "counter",
            "HTTP connections closed because their request header was not complete in time.",
            &self.header_timeouts,
        );
        one(
            "kokuban_http_connections_refused_total",
            "counter",
            "Connections answered 429 at once because a connection cap was reached.",
            &self.connections_refused,
        );
        one(
            "kokuban_upgrades_refused_total",
            "counter",
            "WebSocket upgrades answered 429 because their address upgraded too often.",
            &self.upgrades_refused,
        );
        one(
            "kokuban_rooms_refused_total",
            "counter",
            "Room creations answered 429 because their address created too many rooms.",
            &self.rooms_refused,
        );
        one(
            "kokuban_rooms_expired_total",
            "counter",
            "Rooms deleted by this node's store because nobody used them for --room-ttl-days.",
            &self.rooms_expired,
        );
        one(
            "kokuban_compactions_total",
            "counter",
            "Snapshots written by compaction.",
            &self.compactions,
        );
        one(
            "kokuban_versions_kept_total",
            "counter",
            "Versions of boards this node kept (before a Clear, or after an interval of drawing).",
            &self.versions_kept,
        );
        one(
            "kokuban_blobs_stored_total",
            "counter",
            "Images of boards this node stored (one a room held already is not counted).",
            &self.blobs_stored,
        );
        one(
            "kokuban_blob_bytes_stored_total",
            "counter",
            "Bytes of the images of boards this node stored.",
            &self.blob_bytes_stored,
        );
        one(
            "kokuban_store_errors_total",
            "counter",
            "Store commits that failed.",
            &self.store_errors,
        );
        one(
            "kokuban_redis_disconnects_total",
            "counter",
            "Redis connections (commands or subscription) found dead or unanswering.",
            &self.redis_disconnects,
        );
        one(
            "kokuban_redis_topology_changes_total",
            "counter",
            "Changes of which Redis Cluster master serves which slots (failovers, migrations).",
            &self.redis_topology_changes,
        );
        one(
            "kokuban_replica_rounds_total",
            "counter",
            "Rounds that asked the Redis replicas to confirm the latest writes.",
            &self.replica_rounds,
        );
        one(
            "kokuban_replica_shortfalls_total",
            "counter",
            "Rounds that found fewer Redis replicas holding the latest writes than wanted.",
            &self.replica_shortfalls,
        );
        one(
            "kokuban_in_doubt_disconnects_total",
            "counter",
            "Members told to resume because Redis stayed unreachable with their ops in flight.",
            &self.in_doubt_disconnects,
        );
        let _ = writeln!(
            out,
            "# HELP kokuban_rejected_frames_total Incoming frames refused, by reason.\n\
             # TYPE kokuban_rejected_frames_total counter"
        );
        for why in Rejection::ALL {
            let _ = writeln!(
                out,
                "kokuban_rejected_frames_total{{reason=\"{}\"}} {}",
                why.label(),
                self.rejected(why)
            );
        }
        self.render_shards(&mut out);
        self.store_write_latency.render(
            &mut out,
            "kokuban_store_write_seconds",
            "Time of one store commit (a group of writes, fsync included).",
        );
        render_process(&mut out);
        let _ = writeln!(
            out,
            "# HELP kokuban_node_info This node.\n# TYPE kokuban_node_info gauge\n\
             kokuban_node_info{{node=\"{}\",version=\"{}\"}} 1",
            node.replace(['"', '\\', '\n'], "_"),
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

/// Gauges of the process and its runtime, read when scraped rather than counted, so that a
/// leak anywhere (a socket nobody closes, a task that never ends) shows even where no counter
/// was placed. The soak run compares them before and after churn.
fn render_process(out: &mut String) {
    // Linux only: other systems have no /proc, and the series is then simply absent.
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle being read is one of the entries: a constant offset.
        let open = entries.count();
        let _ = writeln!(
            out,
            "# HELP kokuban_process_open_fds Open file descriptors of the process.\n\
             # TYPE kokuban_process_open_fds gauge\nkokuban_process_open_fds {open}"
        );
    }
    // Absent outside a runtime (a render from a plain test or thread).
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let _ = writeln!(
            out,
            "# HELP kokuban_runtime_alive_tasks Tokio tasks spawned and not yet finished.\n\
             # TYPE kokuban_runtime_alive_tasks gauge\nkokuban_runtime_alive_tasks {}",
            runtime.metrics().num_alive_tasks()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_labels_and_cumulative_buckets() {
        let m = Metrics::default();
        m.frame_in(10);
        m.reject(Rejection::Malformed);
        m.reject(Rejection::Malformed);
        m.store_write_latency.observe(Duration::from_micros(700));
        m.store_write_latency.observe(Duration::from_millis(30));
        let text = m.render("n1");
        assert!(text.contains("kokuban_frames_in_total 1\n"));
        assert!(text.contains("kokuban_bytes_in_total 10\n"));
        assert!(text.contains("kokuban_rejected_frames_total{reason=\"malformed\"} 2\n"));
        assert!(text.contains("kokuban_rejected_frames_total{reason=\"text\"} 0\n"));
        assert!(text.contains("kokuban_store_write_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(text.contains("kokuban_store_write_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("kokuban_store_write_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("kokuban_store_write_seconds_count 2\n"));
        assert!(text.contains("kokuban_node_info{node=\"n1\""));
    }

    fn gauge(text: &str, name: &str) -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn process_gauges_follow_tasks_and_descriptors() {
        // Outside a runtime there is no task count to report.
        assert_eq!(
            gauge(
                &Metrics::default().render("n"),
                "kokuban_runtime_alive_tasks"
            ),
            None
        );
        // A runtime of its own, so that no other test's tasks are counted.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let m = Metrics::default();
            let tasks = |m: &Metrics| gauge(&m.render("n"), "kokuban_runtime_alive_tasks");
            assert_eq!(tasks(&m), Some(0));
            let (release, released) = tokio::sync::watch::channel(false);
            let waiting: Vec<_> = (0..3)
                .map(|_| {
                    let mut released = released.clone();
                    tokio::spawn(async move { released.wait_for(|r| *r).await.map(|_| ()) })
                })
                .collect();
            assert_eq!(tasks(&m), Some(3));
            release.send(true).unwrap();
            for task in waiting {
                task.await.unwrap().unwrap();
            }
            assert_eq!(tasks(&m), Some(0));
        });
        if cfg!(target_os = "linux") {
            // Other tests open and close files meanwhile: only the presence of stdin,
            // stdout and stderr is certain.
            let fds = gauge(&Metrics::default().render("n"), "kokuban_process_open_fds");
            assert!(fds.is_some_and(|n| n >= 3), "{fds:?}");
        }
    }
}
