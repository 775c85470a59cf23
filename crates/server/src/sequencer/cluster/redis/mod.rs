//! Everything that speaks to Redis: key names, Lua scripts, the command connection, the
//! pub/sub connection and the format of what travels on a room's channel. Nothing else in the
//! server names a Redis command.
//!
//! Keys of one room share the hash tag `{ROOM}`, so that in a Redis Cluster they live on one
//! shard and every script (which touches several of them) runs there:
//!
//! | key                      | type   | holds                                                  |
//! |--------------------------|--------|--------------------------------------------------------|
//! | `kokuban:{ROOM}:epoch`   | string | the room's history id (decimal u64); absent = lost      |
//! | `kokuban:{ROOM}:seq`     | string | the last seq given out in that history                 |
//! | `kokuban:{ROOM}:log`     | stream | one entry per op, id `<seq>-1`, fields `a` (author), `n` (its number), `o` (op frame) |
//! | `kokuban:{ROOM}:snap`    | hash   | `epoch`, `seq`, `board`: the board as of `seq`          |
//! | `kokuban:{ROOM}:members` | hash   | member id → `<expiry ms>\|<node>\|<Joined frame>`       |
//! | `kokuban:{ROOM}:compact` | string | the compaction lock (random token, with expiry)         |
//! | `kokuban:{ROOM}:authors` | hash   | author id → its last op number applied (any history)    |
//! | `kokuban:{ROOM}:ring:A`  | list   | author A's latest `n:epoch:seq`, newest first           |
//! | `kokuban:{ROOM}:links`   | string | the room's link generation (decimal u64); absent = 0    |
//! | `kokuban:{ROOM}:blobs`   | hash   | image SHA-256 (lowercase hex) → the image's bytes       |
//! | `kokuban:{ROOM}:blob-types` | hash | image SHA-256 → its media type (`image/png`, …)        |
//! | `kokuban:{ROOM}:blob-bytes` | string | bytes of the room's images together (decimal)       |
//! | shard channel `kokuban:{ROOM}` | pubsub | ops (`O…`), history resets (`E…`), presence/cursors (`P…`), link resets (`L…`) |
//!
//! The channel is a sharded one (`SPUBLISH`/`SSUBSCRIBE`, Redis 7.0 or later): in a Redis
//! Cluster its messages stay on the room's shard.
//!
//! `kokuban:secret` holds the cluster's capability key when no `--secret` is given;
//! `kokuban:replicated:{TAG}` is a counter written before each wait for replicas, with a tag
//! that puts it on the shard asked.
//!
//! - [`keys`]: the names of a room's keys and channel;
//! - [`scripts`]: the Lua scripts (in `scripts/*.lua`);
//! - [`wire`]: channel messages, script replies, the writer's commands;
//! - [`shards`]: which shard (a single Redis, or a master of a Redis Cluster) serves each
//!   room, and each shard's connections;
//! - [`db`]: a shard's command connection;
//! - [`replicas`]: waiting for replicas to hold the latest writes (`--redis-replicas`);
//! - [`shared_key`]: the cluster's capability key, when no secret is given;
//! - [`subscriber`]: a shard's pub/sub connection;
//! - [`resp`]: the Redis protocol as the pub/sub connection speaks it.

mod check;
mod db;
mod keys;
mod replicas;
mod resp;
mod scripts;
mod shards;
mod shared_key;
mod subscriber;
mod tls;
mod topology;
mod wire;

use std::time::Duration;

use redis::RedisError;

pub use self::check::check as check_redis;
pub(super) use self::db::Seed;
pub(super) use self::keys::Keys;
pub(super) use self::shards::{ShardSettings, Shards};
pub(super) use self::subscriber::Route;
pub(super) use self::tls::Tls;
pub(super) use self::wire::{Announced, Command, Inbound, LogEntry, Outcome};

/// Log entries read per round trip when catching up: bounded replies keep Redis responsive
/// for everyone else while a node reads a long range.
const READ_CHUNK: usize = 1000;
/// How often an idle command connection is checked, so that readiness and read-only mode
/// follow a Redis outage within about a second even when nobody writes.
const PING_EVERY: Duration = Duration::from_millis(500);
/// Bytes one round trip may carry (a pipeline of commands, or log entries read), at most. The
/// budget in force is halved after each round trip that missed the timeout and doubled back
/// after each that succeeded, so that on a slow link, which answers a big round trip only
/// after the timeout every time, round trips shrink until they fit and work still gets done.
const MAX_ROUND_TRIP_BYTES: usize = 256 * 1024;
/// The smallest budget: one op, or one log entry, always goes.
const MIN_ROUND_TRIP_BYTES: usize = 4 * 1024;
/// First and last reconnect delay: quick for a blip, gentle on a Redis that is down.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Redis could not be reached, or did not answer in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Redis is unreachable: {0}")]
pub(crate) struct Unreachable(pub String);

impl Unreachable {
    const MOVED: &str = "the room's slot is served elsewhere, or moving";

    /// Redis redirected a command (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`): it did not run.
    pub(crate) fn moved(e: &RedisError) -> Self {
        Unreachable(format!("{} ({e})", Self::MOVED))
    }

    /// Whether Redis redirected the command: sent again once the topology is read again, it
    /// may succeed.
    pub(crate) fn is_moved(&self) -> bool {
        self.0.starts_with(Self::MOVED)
    }
}

impl From<RedisError> for Unreachable {
    fn from(e: RedisError) -> Self {
        Unreachable(e.to_string())
    }
}

/// Jittered exponential backoff, so that nodes that lost Redis together do not reconnect in
/// lockstep.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(BACKOFF_MIN)
    }

    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        d.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new();
        let delays: Vec<_> = (0..12).map(|_| b.next()).collect();
        assert!(delays[0] <= BACKOFF_MIN);
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX));
        assert!(delays[11] >= BACKOFF_MAX / 2);
    }
}
