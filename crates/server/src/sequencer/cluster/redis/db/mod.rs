//! The command connection: one multiplexed connection per node, kept open by a task that
//! pings it and reconnects with backoff; every room's commands and reads go through it.

use crate::unix_ms;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kokuban_protocol::{Epoch, Seq};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, ServerErrorKind, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::keys::{Keys, SECRET_KEY};
use super::scripts::{self, ANNOUNCE, DEPART, HEARTBEAT, SEQUENCE};
use super::wire::{Command, Outcome, ephemeral_message, outcome};
use super::{Backoff, MAX_ROUND_TRIP_BYTES, MIN_ROUND_TRIP_BYTES, PING_EVERY, Unreachable};
use crate::metrics::{Metrics, ShardMetrics};

mod blobs;
mod rooms;

/// A multiplexed connection for commands (many in flight at once, answers in order), kept
/// open by a background task that pings it and reconnects with backoff.
pub(crate) struct Db {
    client: Client,
    /// The connection and its generation (so that a failure seen on an old connection does
    /// not tear down a new one).
    conn: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    up: watch::Sender<bool>,
    /// Set once an outage has been logged, so that it is logged once.
    logged_down: AtomicBool,
    kick: tokio::sync::Notify,
    timeout: Duration,
    log_cap: usize,
    presence_ttl: Duration,
    /// The capability key read from Redis, written back (if missing) on every reconnect, so
    /// that a Redis that restarted empty hands later nodes the key the running ones use.
    pub(super) key: std::sync::OnceLock<[u8; 32]>,
    metrics: Arc<Metrics>,
    shard: Arc<ShardMetrics>,
    /// Bytes a round trip may carry now (see [`MAX_ROUND_TRIP_BYTES`]).
    budget: std::sync::atomic::AtomicUsize,
    /// Redis's clock minus the local one, in ms, as last observed.
    clock_offset_ms: AtomicI64,
    /// This process's id on the room channels (random per start).
    pub node: u64,
    /// Rooms' keys expire this many ms after the last heartbeat of a node holding the room
    /// (0: never).
    room_ttl_ms: u64,
    /// Told when Redis says a key is served by another shard: the topology is stale.
    moved: Arc<tokio::sync::Notify>,
    /// What the connection calls itself (`CLIENT SETNAME`), if anything.
    name: Option<String>,
}

/// When a new history replaces the room's (see [`Db::seed`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seed {
    /// Only if the room has no history (creating it, or it was lost with nobody holding it).
    Init,
    /// Only if the history the node holds (this epoch, at this head) is still lost: absent, or
    /// behind that head.
    Reseed(Epoch, Seq),
    /// Only if the history is still this one: it went back in time under the node.
    Fork(Epoch),
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("up", &*self.up.borrow())
            .field("node", &format_args!("{:016x}", self.node))
            .finish_non_exhaustive()
    }
}

impl Db {
    /// The commands of this node to the Redis `client` reaches.
    pub fn new(
        client: Client,
        timeout: Duration,
        log_cap: usize,
        presence_ttl: Duration,
        metrics: Arc<Metrics>,
        node: u64,
        moved: Arc<tokio::sync::Notify>,
    ) -> Db {
        Db {
            client,
            conn: Mutex::new(None),
            generation: AtomicU64::new(0),
            up: watch::channel(false).0,
            logged_down: AtomicBool::new(false),
            kick: tokio::sync::Notify::new(),
            timeout,
            log_cap,
            presence_ttl,
            key: std::sync::OnceLock::new(),
            metrics,
            shard: Arc::default(),
            budget: std::sync::atomic::AtomicUsize::new(MAX_ROUND_TRIP_BYTES),
            clock_offset_ms: AtomicI64::new(0),
            node,
            room_ttl_ms: 0,
            moved,
            name: None,
        }
    }

    /// Names each connection `name` (`CLIENT SETNAME`), so that an operator can tell nodes
    /// apart in `CLIENT LIST`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Counts this connection's requests, errors and reconnects in `shard`.
    pub fn with_shard_metrics(mut self, shard: Arc<ShardMetrics>) -> Self {
        self.shard = shard;
        self
    }

    /// Rooms' keys expire once no node has held the room for `ttl` (`None`: never).
    pub fn with_room_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.room_ttl_ms = ttl.map_or(0, |t| t.as_millis().max(1) as u64);
        self
    }

    fn slot(&self) -> MutexGuard<'_, Option<(u64, MultiplexedConnection)>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes a pipeline or a read of the log may carry now.
    pub fn budget(&self) -> usize {
        self.budget.load(Ordering::Relaxed)
    }

    /// A round trip that carried up to the budget came back in time: allow more.
    fn widen(&self) {
        let _ = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((b * 2).min(MAX_ROUND_TRIP_BYTES))
            });
    }

    /// A round trip did not come back in time: allow less.
    fn narrow(&self) {
        let _ = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((b / 2).max(MIN_ROUND_TRIP_BYTES))
            });
    }

    /// Redis's clock now, in ms, as estimated from its latest answers.
    pub fn redis_now_ms(&self) -> u64 {
        let local = unix_ms();
        local.saturating_add_signed(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Redis said its clock reads `redis_ms` (just now): the offset to the local clock follows
    /// it, so that deadlines sent with ops are on Redis's clock.
    fn observe_clock(&self, redis_ms: u64) {
        if redis_ms != 0 {
            let offset = redis_ms as i64 - unix_ms() as i64;
            self.clock_offset_ms.store(offset, Ordering::Relaxed);
        }
    }

    /// Whether the command connection is up (writes are accepted only then).
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Resolves once the command connection is up (or at once if it is).
    pub async fn wait_up(&self) {
        let mut rx = self.up.subscribe();
        let _ = rx.wait_for(|up| *up).await;
    }

    fn connection(&self) -> Result<(u64, MultiplexedConnection), Unreachable> {
        self.slot()
            .clone()
            .ok_or_else(|| Unreachable("not connected".into()))
    }

    /// Drops the connection `generation` after a failure on it; the maintenance task
    /// reconnects.
    fn fail(&self, generation: u64, why: &str) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
            *slot = None;
            drop(slot);
            self.up.send_replace(false);
            self.metrics
                .redis_disconnects
                .fetch_add(1, Ordering::Relaxed);
            self.shard.reconnects.fetch_add(1, Ordering::Relaxed);
            if !self.logged_down.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "Redis connection lost ({why}); rooms are read-only until it is back"
                );
            }
            self.kick.notify_one();
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // Loaded on every new connection (Redis forgets scripts when it restarts), so that
        // pipelined EVALSHAs, which cannot fall back to EVAL one by one, find them.
        let mut pipe = redis::pipe();
        for s in scripts::all() {
            pipe.load_script(s);
        }
        pipe.query_async::<Vec<String>>(&mut conn).await?;
        if let Some(name) = &self.name {
            // A name is for operators only: an ACL user denied it still gets a connection.
            let _ = redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(name)
                .query_async::<Value>(&mut conn)
                .await;
        }
        if let Some(key) = self.key.get() {
            // Refused (MOVED) by the shards of a Redis Cluster that do not serve the key.
            let _ = redis::cmd("SET")
                .arg(SECRET_KEY)
                .arg(&key[..])
                .arg("NX")
                .query_async::<Value>(&mut conn)
                .await;
        }
        Ok(conn)
    }

    /// Keeps the command connection open until `stop`: pings it, and reconnects with backoff.
    pub async fn maintain(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Backoff::new();
        loop {
            let current = self.slot().clone();
            if let Some((generation, mut conn)) = current {
                // TIME rather than PING: the answer also keeps the clock offset up to date.
                let ping = tokio::time::timeout(
                    self.timeout,
                    redis::cmd("TIME").query_async::<(u64, u64)>(&mut conn),
                )
                .await;
                match ping {
                    Ok(Ok((secs, micros))) => {
                        self.observe_clock(secs * 1000 + micros / 1000);
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(PING_EVERY) => {}
                            _ = self.kick.notified() => {}
                        }
                        continue;
                    }
                    Ok(Err(e)) => self.fail(generation, &e.to_string()),
                    Err(_) => self.fail(generation, "no answer in time"),
                }
            }
            if stop.is_cancelled() {
                return;
            }
            let attempt = tokio::select! {
                _ = stop.cancelled() => return,
                c = tokio::time::timeout(self.timeout, self.connect()) => c,
            };
            match attempt {
                Ok(Ok(conn)) => {
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                    *self.slot() = Some((generation, conn));
                    backoff = Backoff::new();
                    if self.logged_down.swap(false, Ordering::Relaxed) {
                        tracing::info!("Redis connection restored");
                    } else {
                        tracing::debug!("Redis command connection open");
                    }
                    self.up.send_replace(true);
                }
                failed => {
                    if !self.logged_down.swap(true, Ordering::Relaxed) {
                        let why = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "no answer in time".into(),
                        };
                        tracing::warn!("cannot reach Redis ({why}); retrying with backoff");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next()) => {}
                    }
                }
            }
        }
    }

    /// Runs `f` on the connection within the timeout; a failure of the connection (not a
    /// refusal by Redis) marks it down.
    pub(super) async fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, Unreachable> {
        let (generation, mut conn) = self.connection()?;
        self.shard.requests.fetch_add(1, Ordering::Relaxed);
        let result = self.run_on(generation, &mut conn, f).await;
        if result.is_err() {
            self.shard.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn run_on<T>(
        &self,
        generation: u64,
        conn: &mut MultiplexedConnection,
        f: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, Unreachable> {
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if is_redirect(&e) {
                    self.moved.notify_one();
                    return Err(Unreachable::moved(&e));
                }
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                {
                    self.fail(generation, &e.to_string());
                }
                Err(e.into())
            }
            Err(_) => {
                self.fail(generation, "no answer in time");
                Err(Unreachable("no answer in time".into()))
            }
        }
    }

    /// Runs a room writer's commands as one pipeline: one round trip for all of them, executed
    /// by Redis in order. `Err` means the answers were lost: any of the commands may or may
    /// not have run.
    /// `bytes`: what the commands weigh; only a pipeline that used most of the budget shows
    /// that the link carries more.
    pub async fn execute(
        &self,
        keys: &Keys,
        commands: &[&Command],
        bytes: usize,
    ) -> Result<Vec<Outcome>, Unreachable> {
        let mut outcomes = match self.execute_once(keys, commands, false).await {
            Ok(o) => {
                // The room's slot is served elsewhere, or moving: the commands redirected did
                // not run here, and the topology is read again for the writer to send them
                // where the slot is now.
                if o.iter().any(|r| matches!(r, Err(e) if is_redirect(e))) {
                    self.shard.errors.fetch_add(1, Ordering::Relaxed);
                    self.moved.notify_one();
                }
                if bytes * 2 >= self.budget() {
                    self.widen();
                }
                o
            }
            Err(e) => {
                self.narrow();
                return Err(e);
            }
        };
        // Only an operator's SCRIPT FLUSH gets here (every new connection loads the scripts):
        // run again, after loading them, exactly the commands that found no script.
        let missing: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)))
            .map(|(i, _)| i)
            .collect();
        if !missing.is_empty() {
            let again: Vec<&Command> = missing.iter().map(|&i| commands[i]).collect();
            let redone = self.execute_once(keys, &again, true).await?;
            for (i, o) in missing.into_iter().zip(redone) {
                outcomes[i] = o;
            }
        }
        Ok(outcomes
            .into_iter()
            .zip(commands)
            .map(|(r, c)| match r {
                Ok(v) => {
                    outcome(c, &v).unwrap_or_else(|| Outcome::Refused("unexpected reply".into()))
                }
                Err(e) if is_redirect(&e) => Outcome::Moved,
                Err(e) => Outcome::Refused(e.to_string()),
            })
            .collect())
    }

    async fn execute_once(
        &self,
        keys: &Keys,
        commands: &[&Command],
        load_first: bool,
    ) -> Result<Vec<Result<Value, RedisError>>, Unreachable> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        if load_first {
            for s in scripts::all() {
                pipe.load_script(s).ignore();
            }
        }
        let node = format!("{:016x}", self.node);
        let ttl = self.presence_ttl.as_millis().to_string();
        for c in commands {
            match c {
                Command::Sequence {
                    epoch,
                    head,
                    author,
                    n,
                    op,
                    deadline_ms,
                } => pipe.invoke_script(
                    SEQUENCE
                        .prepare_invoke()
                        .key(&keys.epoch)
                        .key(&keys.seq)
                        .key(&keys.log)
                        .key(&keys.authors)
                        .key(keys.ring(*author))
                        .arg(epoch.0.to_string())
                        .arg(head.0.to_string())
                        .arg(author.0.to_string())
                        .arg(n.to_string())
                        .arg(&op[..])
                        .arg(self.log_cap)
                        .arg(&keys.channel)
                        .arg(deadline_ms.to_string())
                        .arg(RING_OPS)
                        .arg(self.room_ttl_ms),
                ),
                Command::Announce {
                    member,
                    joined,
                    frame,
                } => pipe.invoke_script(
                    ANNOUNCE
                        .prepare_invoke()
                        .key(&keys.members)
                        .arg(member.0.to_string())
                        .arg(&node)
                        .arg(&joined[..])
                        .arg(&ttl)
                        .arg(&keys.channel)
                        .arg(ephemeral_message(self.node, frame)),
                ),
                Command::Depart { member, frame } => pipe.invoke_script(
                    DEPART
                        .prepare_invoke()
                        .key(&keys.members)
                        .arg(member.0.to_string())
                        .arg(&keys.channel)
                        .arg(ephemeral_message(self.node, frame)),
                ),
                Command::Publish { frame } => pipe
                    .cmd("SPUBLISH")
                    .arg(&keys.channel)
                    .arg(ephemeral_message(self.node, frame)),
                Command::Heartbeat { members } => {
                    let mut inv = HEARTBEAT.prepare_invoke();
                    inv.key(&keys.members)
                        .key(&keys.epoch)
                        .key(&keys.seq)
                        .key(&keys.log)
                        .key(&keys.snap)
                        .key(&keys.authors)
                        .key(&keys.links)
                        .key(&keys.versions)
                        .key(&keys.version_info)
                        .key(&keys.version_board)
                        .key(&keys.private_history)
                        .key(&keys.blobs)
                        .key(&keys.blob_types)
                        .key(&keys.blob_bytes)
                        .arg(&ttl)
                        .arg(&node)
                        .arg(self.room_ttl_ms);
                    for (id, frame) in members {
                        inv.arg(id.0.to_string()).arg(&frame[..]);
                    }
                    pipe.invoke_script(&inv)
                }
            };
        }
        self.run(async |conn| {
            pipe.query_async::<Vec<Result<Value, RedisError>>>(conn)
                .await
        })
        .await
    }

    /// Checks the connection now rather than at the next ping (another connection to the
    /// same Redis just failed).
    pub fn check_now(&self) {
        self.kick.notify_one();
    }
}

/// Latest places of an author's ops kept for retries (see the SEQUENCE script). A retry comes
/// from a client whose ops were in flight when its link failed: a few seconds of drawing.
const RING_OPS: usize = 256;

/// Whether Redis said that a key is served by another shard (`MOVED`), is being migrated
/// (`ASK`, `TRYAGAIN`), or that the cluster cannot serve it now (`CLUSTERDOWN`).
pub(super) fn is_redirect(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
        )
    )
}

#[cfg(test)]
mod tests;
