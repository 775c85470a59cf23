//! Cluster mode: the [`Sequencer`] of a node among several, with Redis ordering every room.
//!
//! - **Order.** One Lua script gives each op its `(epoch, seq)`, appends it to the room's
//!   capped stream and publishes it on the room's channel, atomically. Every node delivers a
//!   room's ops strictly in seq order; a node that sees a seq jump, or whose subscription
//!   dropped, reads the missing range from the stream before delivering anything newer.
//! - **Routing.** One pub/sub connection per node, subscribed to exactly the channels of the
//!   rooms it holds; commands go over a separate multiplexed connection, pipelined per room.
//! - **Histories.** When Redis loses a room's history (restarted without persistence), the
//!   first node that notices starts a new epoch from the board it holds, and every node sends
//!   its members a new Welcome with that board; a room nobody holds starts over empty.
//! - **Outages.** While Redis is unreachable members stay connected and see the board, writes
//!   are refused as temporarily read-only, and `/readyz` says not ready; when Redis is back
//!   everything resumes without a restart. Every op is answered within a few Redis timeouts,
//!   however slow or dead the link: ops that waited too long are refused unsent, round trips
//!   shrink to what a slow link carries, a member whose ops stay in doubt is told to resume,
//!   and the subscription is pinged, so that a link that died without a word is noticed.
//! - **Presence.** Members are announced on the room channel and kept in a hash with a
//!   per-member expiry that each node refreshes; a dead node's members expire and the other
//!   nodes report them gone.
//!
//! All Redis commands, keys and scripts are in [`redis`](self::redis).

mod redis;
mod room;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kokuban_board::Board;
use kokuban_protocol::RoomId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use self::redis::{Db, Keys, Subscriber, Unreachable};
use self::room::Room;
use super::{
    BoxFuture, JoinError, JoinRequest, Joined, RoomCells, Sequencer, SequencerError, hold_room,
};
use crate::capability::{Capabilities, KEY_BYTES};
use crate::config::Config;
use crate::metrics::Metrics;

/// How long a node waits for Redis at start when it must read the capability key from it.
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// What a node of a cluster needs besides the single-node settings.
#[derive(Clone)]
pub struct ClusterConfig {
    /// The Redis every node of the cluster uses, e.g. `redis://redis:6379`.
    pub redis_url: String,
    /// The secret every node derives the capability key from. Without it, the first node
    /// stores a random key in Redis and the others read it.
    pub secret: Option<String>,
    /// A member whose node stops refreshing it disappears from the other nodes' presence
    /// lists this long after the last refresh (nodes refresh three times per period).
    pub presence_ttl: Duration,
    /// A Redis command not answered within this is taken as Redis being unreachable.
    pub redis_timeout: Duration,
}

impl ClusterConfig {
    /// Production defaults for a cluster on `redis_url`.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            secret: None,
            // Refreshed every ~3 s: a dead node's members are gone within about ten seconds,
            // while a few lost heartbeats do not make anyone flicker.
            presence_ttl: Duration::from_secs(10),
            // Redis answers in well under a millisecond on a healthy network; two seconds of
            // silence means it is gone or stuck, and writes should be refused, not queued.
            redis_timeout: Duration::from_secs(2),
        }
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password and the secret mints links: neither goes to logs.
        let url = match self.redis_url.rsplit_once('@') {
            Some((_, host)) => format!("redis://…@{host}"),
            None => self.redis_url.clone(),
        };
        f.debug_struct("ClusterConfig")
            .field("redis_url", &url)
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("presence_ttl", &self.presence_ttl)
            .field("redis_timeout", &self.redis_timeout)
            .finish()
    }
}

#[derive(Debug, Clone)]
struct Settings {
    cursor_interval: Duration,
    room_grace: Duration,
    compact_after_ops: usize,
    compact_after_bytes: usize,
    /// Log entries kept before a snapshot when compacting.
    keep_before_snapshot: usize,
    /// Unanswered ops a member may have; beyond, writes are refused (the member's queue could
    /// not hold their answers anyway).
    max_outstanding: usize,
    presence_ttl: Duration,
    heartbeat_every: Duration,
    redis_timeout: Duration,
    /// Rooms this node holds at once; a join that would load one more is refused (0: no cap).
    max_rooms: usize,
    /// Members of one room across the cluster (this node's, and the others' as last
    /// announced); a join beyond it is refused (0: no cap).
    max_members_per_room: usize,
}

/// The Redis-backed [`Sequencer`].
#[derive(Debug, Clone)]
pub struct RedisSequencer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    db: Arc<Db>,
    subscriber: Arc<Subscriber>,
    settings: Settings,
    metrics: Arc<Metrics>,
    /// Loaded (or loading) rooms. Lock order: this map, then a room's state.
    rooms: Mutex<RoomCells<Room>>,
    serial: AtomicU64,
    stop: CancellationToken,
    /// Room tasks, connections and helpers.
    tasks: TaskTracker,
    /// Room writers: awaited first at shutdown, so that departures reach Redis.
    writers: TaskTracker,
    /// The node's span, for the tasks it spawns.
    span: tracing::Span,
}

impl Shared {
    fn rooms(&self) -> MutexGuard<'_, RoomCells<Room>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn failed(e: Unreachable) -> SequencerError {
    SequencerError(e.to_string())
}

impl RedisSequencer {
    /// Connects to Redis and returns the sequencer with the cluster's capability keys.
    /// Without a secret it waits (up to half a minute) for Redis to read the shared key;
    /// with one it starts at once and is not ready until Redis is reachable.
    pub async fn start(
        config: &Config,
        cluster: &ClusterConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(RedisSequencer, Capabilities), SequencerError> {
        let compact_after_ops = config.compact_after_ops.max(1);
        // The stream's length cap is a safety net far above compaction, which keeps it short:
        // trimming by length would cut history that no snapshot holds yet.
        let log_cap = compact_after_ops.saturating_mul(8).max(10_000);
        let db = Arc::new(
            Db::new(
                &cluster.redis_url,
                cluster.redis_timeout,
                log_cap,
                cluster.presence_ttl,
                metrics.clone(),
            )
            .map_err(failed)?,
        );
        let (subscriber, requests) =
            Subscriber::new(&cluster.redis_url, cluster.redis_timeout, metrics.clone())
                .map_err(failed)?;
        let subscriber = Arc::new(subscriber);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        // Every log line of the cluster's tasks names the node: several run side by side.
        let span = tracing::info_span!("node", id = %config.node_id);
        tasks.spawn(db.clone().maintain(stop.clone()).instrument(span.clone()));
        tasks.spawn(
            subscriber
                .clone()
                .run(requests, db.clone(), stop.clone())
                .instrument(span.clone()),
        );
        let capabilities = match &cluster.secret {
            // Every node derives the same key from the same secret; nothing to share. Redis
            // is waited for only briefly: the node starts (not ready) without it.
            Some(secret) => {
                let _ = tokio::time::timeout(cluster.redis_timeout, db.wait_up()).await;
                Capabilities::new(blake3::derive_key(
                    "kokuban capability key v1",
                    secret.as_bytes(),
                ))
            }
            None => {
                let key = tokio::time::timeout(STARTUP_WAIT, async {
                    loop {
                        db.wait_up().await;
                        match db.shared_key().await {
                            Ok(key) => return Ok(key),
                            Err(e) if db.is_up() => return Err(e),
                            Err(_) => continue,
                        }
                    }
                })
                .await;
                let key = match key {
                    Ok(Ok(key)) => key,
                    Ok(Err(e)) => {
                        stop.cancel();
                        return Err(failed(e));
                    }
                    Err(_) => {
                        stop.cancel();
                        return Err(SequencerError(format!(
                            "Redis is unreachable: cannot read the cluster's capability key \
                             within {STARTUP_WAIT:?} (or pass --secret)"
                        )));
                    }
                };
                if db.append_only().await != Some(true) {
                    tracing::warn!(
                        "the capability key is kept in Redis, which has no append-only file: \
                         a restart may forget it, and every link handed out would stop working \
                         (turn on appendonly, or pass the same --secret to every node)"
                    );
                }
                let key: [u8; KEY_BYTES] = key;
                Capabilities::new(key)
            }
        };
        let settings = Settings {
            cursor_interval: config.cursor_interval,
            room_grace: config.room_grace,
            compact_after_ops,
            compact_after_bytes: config.compact_after_bytes.max(1),
            keep_before_snapshot: (compact_after_ops / 2).max(256),
            max_outstanding: config.member_queue_frames.max(1),
            presence_ttl: cluster.presence_ttl,
            heartbeat_every: (cluster.presence_ttl / 3).max(Duration::from_millis(10)),
            redis_timeout: cluster.redis_timeout,
            max_rooms: config.max_rooms,
            max_members_per_room: config.max_members_per_room,
        };
        let shared = Arc::new(Shared {
            db,
            subscriber,
            settings,
            metrics,
            rooms: Mutex::new(HashMap::new()),
            serial: AtomicU64::new(0),
            stop,
            tasks,
            writers: TaskTracker::new(),
            span,
        });
        Ok((RedisSequencer { shared }, capabilities))
    }
}

impl Sequencer for RedisSequencer {
    fn create_room<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<(), SequencerError>> {
        Box::pin(async move {
            let epoch = room::new_epoch(None);
            let board = Bytes::from(Board::at_start_of(epoch).snapshot());
            self.shared
                .db
                .seed(&Keys::of(room), epoch, &board, None)
                .await
                .map(|_| ())
                .map_err(failed)
        })
    }

    fn join(&self, request: JoinRequest) -> BoxFuture<'_, Result<Joined, JoinError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let mut request = request;
            loop {
                if shared.stop.is_cancelled() {
                    return Err(JoinError::ShuttingDown);
                }
                let room = hold_room(
                    &shared.rooms,
                    &request.room,
                    shared.settings.max_rooms,
                    // Unloading a cluster room early would cost its subscription and a
                    // reload from Redis: at the cap, joins of new rooms are refused.
                    |_| false,
                    || room::open(shared, &request.room),
                )
                .await?;
                match room::admit(shared, &room, request) {
                    Ok(joined) => return Ok(joined),
                    Err(room::NotAdmitted::Full) => return Err(JoinError::RoomFull),
                    // Unloaded meanwhile: load it afresh.
                    Err(room::NotAdmitted::Unloaded(back)) => request = *back,
                }
            }
        })
    }

    fn rooms_loaded(&self) -> usize {
        self.shared.rooms().len()
    }

    fn is_ready(&self) -> bool {
        let s = &self.shared;
        !s.stop.is_cancelled() && s.db.is_up() && s.subscriber.is_up()
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), SequencerError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let rooms: Vec<_> = shared.rooms().drain().collect();
            for (_, cell) in rooms {
                if let Some(room) = cell.get() {
                    room::close(shared, room);
                }
            }
            // Departures and the last ops reach Redis, unless it is unreachable.
            shared.writers.close();
            let flushed =
                tokio::time::timeout(shared.settings.redis_timeout * 2, shared.writers.wait())
                    .await;
            shared.stop.cancel();
            shared.tasks.close();
            shared.tasks.wait().await;
            shared.writers.wait().await;
            if flushed.is_err() {
                // Their authors never got an Ack: their clients resend them on reconnect.
                tracing::warn!("Redis did not take the last writes before shutdown");
            }
            Ok(())
        })
    }
}
