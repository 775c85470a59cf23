//! Cluster mode: the [`Sequencer`] of a node among several, with Redis ordering every room.
//!
//! - **Order.** One Lua script gives each op its `(epoch, seq)`, appends it to the room's
//!   capped stream and publishes it on the room's channel, atomically. Every node delivers a
//!   room's ops strictly in seq order; a node that sees a seq jump, or whose subscription
//!   dropped, reads the missing range from the stream before delivering anything newer.
//! - **Routing.** Per Redis shard (one Redis, or each master of a Redis Cluster), one pub/sub
//!   connection per node, subscribed (sharded pub/sub) to exactly the channels of the rooms it
//!   holds there; commands go over a separate multiplexed connection, pipelined per room. A
//!   room's keys and channel share one slot, so a room lives on one shard; when its slot moves
//!   (a failover, a migration) the node follows it and the room catches up from its log.
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
//! The folder, around the state each part owns:
//! - [`room`]: a loaded room (the room core plus the other nodes' members and the writer's
//!   queue), loading it, admitting members, a member's handle;
//! - [`answers`]: a member's ops not answered yet, and the order its answers go out in;
//! - [`writer`]: the room's commands to Redis, in order, pipelined;
//! - [`delivery`]: the room's task: what arrives on the channel, delivered in seq order,
//!   catch-up from the log, presence, cursors, compaction, unloading;
//! - [`redis`]: everything that speaks to Redis.

mod answers;
mod delivery;
mod redis;
mod room;
mod writer;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use kokuban_protocol::{Epoch, RoomId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::redis::check_redis;
use self::redis::{Keys, Seed, ShardSettings, Shards, Tls, Unreachable};
use self::room::Room;
use super::room::{CheckpointInfo, RoomSettings};
use super::{
    Done, HeldRooms, JoinError, JoinRequest, Joined, LinkGenerations, Sequencer, SequencerError,
};
use crate::BoxFuture;
use crate::blob::{Blob, BlobHash, BlobStored};
use crate::capability::SharedKeyStore;
use crate::config::{ClusterConfig, Config, RedisAt};
use crate::metrics::Metrics;

/// How a cluster node's rooms behave: the settings of every room, and what Redis adds.
#[derive(Debug, Clone)]
struct Settings {
    room: RoomSettings,
    /// Log entries kept before a snapshot when compacting.
    keep_before_snapshot: usize,
    /// Unanswered ops a member may have; beyond, writes are refused (the member's queue could
    /// not hold their answers anyway).
    max_outstanding: usize,
    presence_ttl: Duration,
    heartbeat_every: Duration,
    redis_timeout: Duration,
}

/// The Redis-backed [`Sequencer`].
#[derive(Debug, Clone)]
pub struct RedisSequencer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The Redis shards and which rooms each serves.
    redis: Arc<Shards>,
    settings: Settings,
    metrics: Arc<Metrics>,
    rooms: HeldRooms<Room>,
    serial: AtomicU64,
    stop: CancellationToken,
    /// Room tasks, connections and helpers.
    tasks: TaskTracker,
    /// Room writers: awaited first at shutdown, so that departures reach Redis.
    writers: TaskTracker,
    /// The node's span, for the tasks it spawns.
    span: tracing::Span,
    /// Link resets heard on the channels of the rooms this node holds.
    links: LinkGenerations,
}

/// `kokuban:<node id>`, with what a Redis client name cannot hold (spaces, newlines) replaced.
fn client_name(node_id: &str) -> String {
    let id: String = node_id
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    format!("kokuban:{id}")
}

fn failed(e: Unreachable) -> SequencerError {
    SequencerError(e.to_string())
}

impl RedisSequencer {
    /// Connects to Redis (in the background: the node is not ready until it answers).
    pub fn start(
        config: &Config,
        cluster: &ClusterConfig,
        metrics: Arc<Metrics>,
    ) -> Result<RedisSequencer, SequencerError> {
        let room = RoomSettings::from(config);
        // The stream's length cap is a safety net far above compaction, which keeps it short:
        // trimming by length would cut history that no snapshot holds yet.
        let log_cap = room.compact_after_ops.saturating_mul(8).max(10_000);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        // Every log line of the cluster's tasks names the node: several run side by side.
        let span = tracing::info_span!("node", id = %config.node_id);
        let (url, seeds) = match &cluster.redis {
            RedisAt::One(url) => (url.clone(), None),
            RedisAt::Cluster(seeds) => (
                seeds.first().cloned().unwrap_or_default(),
                Some(seeds.clone()),
            ),
        };
        let tls = Tls::new(cluster.redis_ca.as_deref())
            .map_err(|e| SequencerError(format!("--redis-ca-file: {e}")))?;
        let redis = Shards::start(
            &url,
            seeds,
            ShardSettings {
                timeout: cluster.redis_timeout,
                log_cap,
                presence_ttl: cluster.presence_ttl,
                room_ttl: config.room_ttl,
                replicas: cluster.replicas,
                metrics: metrics.clone(),
                client_name: client_name(&config.node_id),
                tls,
            },
            stop.clone(),
            tasks.clone(),
            span.clone(),
        )
        .map_err(failed)?;
        let settings = Settings {
            keep_before_snapshot: (room.compact_after_ops / 2).max(256),
            max_outstanding: config.member_queue_frames.max(1),
            presence_ttl: cluster.presence_ttl,
            heartbeat_every: (cluster.presence_ttl / 3).max(Duration::from_millis(10)),
            redis_timeout: cluster.redis_timeout,
            room,
        };
        let max_rooms = settings.room.max_rooms;
        let links = LinkGenerations::new(settings.room.room_grace);
        let shared = Arc::new(Shared {
            redis,
            settings,
            rooms: HeldRooms::new(max_rooms, stop.clone(), metrics.clone()),
            metrics,
            serial: AtomicU64::new(0),
            stop,
            tasks,
            writers: TaskTracker::new(),
            span,
            links,
        });
        Ok(RedisSequencer { shared })
    }

    /// Where the cluster's shared capability key lives.
    pub(crate) fn key_store(&self) -> &dyn SharedKeyStore {
        &*self.shared.redis
    }
}

impl Sequencer for RedisSequencer {
    fn store_new_room<'a>(&'a self, room: &'a RoomId, first: (Epoch, Bytes)) -> Done<'a> {
        Box::pin(async move {
            let (epoch, board) = first;
            // A shard that is still connecting (a node just started) or failing over gets the
            // Redis timeout to come back before the creation is refused.
            let keys = Keys::of(room);
            let redis = &self.shared.redis;
            let timeout = self.shared.settings.redis_timeout;
            let seeded = redis
                .following(|| async {
                    if tokio::time::timeout(timeout, redis.wait_up(&keys))
                        .await
                        .is_err()
                    {
                        return Err(Unreachable("the room's Redis shard is down".into()));
                    }
                    // Only if the room has no history yet (a room id is never reused anyway).
                    redis.db(&keys).seed(&keys, epoch, &board, Seed::Init).await
                })
                .await;
            seeded.map(|_| ()).map_err(failed)
        })
    }

    fn join(&self, request: JoinRequest) -> BoxFuture<'_, Result<Joined, JoinError>> {
        let shared = &self.shared;
        let open = move |id: RoomId| async move { room::open(shared, &id).await };
        Box::pin(shared.rooms.join(
            request,
            // Unloading a cluster room early would cost its subscription and a reload from
            // Redis: at the cap, joins of new rooms are refused.
            |_| false,
            open,
            move |held, request| room::admit(shared, held, request),
        ))
    }

    fn link_generation<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<u64, SequencerError>> {
        Box::pin(async move {
            let keys = Keys::of(room);
            let redis = &self.shared.redis;
            let read = redis
                .following(|| async { redis.db(&keys).link_generation(&keys).await })
                .await;
            read.map_err(failed)
        })
    }

    fn reset_links<'a>(
        &'a self,
        room: &'a RoomId,
        from: u64,
    ) -> BoxFuture<'a, Result<Option<u64>, SequencerError>> {
        Box::pin(async move {
            // Every node holding the room hears it on the room's channel, this one too.
            let keys = Keys::of(room);
            let redis = &self.shared.redis;
            let reset = redis
                .following(|| async { redis.db(&keys).reset_links(&keys, from).await })
                .await;
            reset.map_err(failed)
        })
    }

    fn checkpoints<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<Vec<CheckpointInfo>, SequencerError>> {
        Box::pin(async move {
            let keys = Keys::of(room);
            let redis = &self.shared.redis;
            let listed = redis
                .following(|| async { redis.db(&keys).checkpoints(&keys).await })
                .await;
            listed.map_err(failed)
        })
    }

    fn checkpoint_board<'a>(
        &'a self,
        room: &'a RoomId,
        id: u64,
    ) -> BoxFuture<'a, Result<Option<Bytes>, SequencerError>> {
        Box::pin(async move {
            let keys = Keys::of(room);
            let redis = &self.shared.redis;
            let board = redis
                .following(|| async { redis.db(&keys).checkpoint_board(&keys, id).await })
                .await;
            board.map_err(failed)
        })
    }

    fn history_for_viewers<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<bool, SequencerError>> {
        Box::pin(async move {
            let keys = Keys::of(room);
            let redis = &self.shared.redis;
            let read = redis
                .following(|| async { redis.db(&keys).history_for_viewers(&keys).await })
                .await;
            read.map_err(failed)
        })
    }

    fn set_history_for_viewers<'a>(
        &'a self,
        room: &'a RoomId,
        allowed: bool,
    ) -> BoxFuture<'a, Result<bool, SequencerError>> {
        Box::pin(async move {
            let keys = Keys::of(room);
            let redis = &self.shared.redis;
            let set = redis
                .following(|| async {
                    redis
                        .db(&keys)
                        .set_history_for_viewers(&keys, allowed)
                        .await
                })
                .await;
            set.map_err(failed)
        })
    }

    fn store_blob<'a>(
        &'a self,
        room: &'a RoomId,
        blob: Blob,
        budget: u64,
    ) -> BoxFuture<'a, Result<BlobStored, SequencerError>> {
        Box::pin(async move {
            // Safe to send again after a redirect: a redirected script did not run, and one
            // that ran finds the image kept.
            let keys = Keys::of(room);
            let redis = &self.shared.redis;
            let stored = redis
                .following(|| async { redis.db(&keys).store_blob(&keys, &blob, budget).await })
                .await;
            stored.map_err(failed)
        })
    }

    fn blob<'a>(
        &'a self,
        room: &'a RoomId,
        hash: BlobHash,
    ) -> BoxFuture<'a, Result<Option<Blob>, SequencerError>> {
        Box::pin(async move {
            let keys = Keys::of(room);
            let redis = &self.shared.redis;
            let read = redis
                .following(|| async { redis.db(&keys).blob(&keys, hash).await })
                .await;
            read.map_err(failed)
        })
    }

    fn link_generations(&self) -> &LinkGenerations {
        &self.shared.links
    }

    fn rooms_loaded(&self) -> usize {
        self.shared.rooms.len()
    }

    fn is_ready(&self) -> bool {
        let s = &self.shared;
        !s.stop.is_cancelled() && s.redis.serves_any()
    }

    fn shutdown(&self) -> Done<'_> {
        Box::pin(async move {
            let shared = &self.shared;
            // Each writer sends what it holds, then ends.
            shared.rooms.unload_all(|st| st.writer = None);
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
