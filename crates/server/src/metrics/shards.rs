//! What a node's connections to each Redis shard did, as series labelled by the shard.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Metrics;

/// What this node's connections to one Redis shard (a master of a Redis Cluster, or the one
/// Redis) did, rendered with a `shard` label (its address).
#[derive(Debug, Default)]
pub struct ShardMetrics {
    pub shard: String,
    /// Round trips (a pipeline of a room's ops counts once).
    pub requests: AtomicU64,
    /// Round trips that failed: no answer, a dropped connection, or a redirect (`MOVED`,
    /// `ASK`, `TRYAGAIN`, `CLUSTERDOWN`).
    pub errors: AtomicU64,
    /// Connections (commands or subscription) found dead and reopened.
    pub reconnects: AtomicU64,
    /// Room channels this node is subscribed to there.
    pub subscriptions: AtomicU64,
    /// Failovers seen: topology reads in which this master took over slots whose master had
    /// left the masters (a promoted replica). A slot moved between masters is not counted.
    pub failovers: AtomicU64,
}

impl ShardMetrics {
    pub fn new(shard: impl Into<String>) -> Self {
        Self {
            shard: shard.into(),
            ..Self::default()
        }
    }
}

/// A series family of [`ShardMetrics`]: name, type, help, and the counter.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ShardMetrics) -> &AtomicU64,
);

impl Metrics {
    pub(super) fn render_shards(&self, out: &mut String) {
        let shards = self
            .redis_shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if shards.is_empty() {
            return;
        }
        let families: [Family; 5] = [
            (
                "kokuban_redis_shard_requests_total",
                "counter",
                "Round trips to a Redis shard (a pipeline of a room's ops counts once).",
                |m| &m.requests,
            ),
            (
                "kokuban_redis_shard_errors_total",
                "counter",
                "Round trips to a Redis shard that failed (no answer, dropped, redirected).",
                |m| &m.errors,
            ),
            (
                "kokuban_redis_shard_reconnects_total",
                "counter",
                "Connections to a Redis shard found dead and reopened.",
                |m| &m.reconnects,
            ),
            (
                "kokuban_redis_shard_failovers_total",
                "counter",
                "Failovers seen: this master took over slots of a master that left the masters.",
                |m| &m.failovers,
            ),
            (
                "kokuban_redis_shard_subscriptions",
                "gauge",
                "Room channels this node is subscribed to on a Redis shard.",
                |m| &m.subscriptions,
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for m in &shards {
                let _ = writeln!(
                    out,
                    "{name}{{shard=\"{}\"}} {}",
                    m.shard.replace(['"', '\\', '\n'], "_"),
                    value(m).load(Relaxed)
                );
            }
        }
    }
}
