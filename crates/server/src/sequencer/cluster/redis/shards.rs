//! Where each room lives: the Redis shards and which slots each serves. A single Redis is one
//! shard serving every slot; a Redis Cluster is one shard per master, found from the seed
//! nodes with `CLUSTER SLOTS` and refreshed when Redis says a key or channel moved, when a
//! shard is unreachable (a failover may be under way), and at an interval as a safety net.
//!
//! Each shard has its own command connection, pub/sub connection and replica rounds. When the
//! topology changes, the channels of rooms whose slot moved are handed to the shard that serves
//! it now, subscribed there, and their rooms catch up from the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::{AsyncConnectionConfig, Value};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::Unreachable;
use super::db::Db;
use super::keys::{Keys, SECRET_KEY, SLOTS, key_slot, slot_of};
use super::replicas::{PROBE_KEY, Replicas};
use super::subscriber::{Route, Subscriber, redacted};
use super::tls::Tls;
use super::topology::{host_port, parse_slots};
use crate::BoxFuture;
use crate::capability::{KEY_BYTES, SharedKeyStore};
use crate::metrics::{Metrics, ShardMetrics};

/// How often a healthy cluster's topology is read again, as a safety net.
const POLL_EVERY: Duration = Duration::from_secs(5);
/// How often it is read while a shard is unreachable or a slot unserved (a failover).
const POLL_UNHEALTHY: Duration = Duration::from_millis(250);
/// No slot has an owner.
const NOBODY: u16 = u16::MAX;
/// How soon what Redis redirected is tried again (the topology is read again at once).
const FOLLOW_EVERY: Duration = Duration::from_millis(50);

/// What every shard's connections are made with.
#[derive(Debug, Clone)]
pub(crate) struct ShardSettings {
    pub timeout: Duration,
    pub log_cap: usize,
    pub presence_ttl: Duration,
    pub room_ttl: Option<Duration>,
    pub replicas: u32,
    pub metrics: Arc<Metrics>,
    /// What this node's connections call themselves (`CLIENT SETNAME`).
    pub client_name: String,
    /// Whom `rediss://` connections trust.
    pub tls: Tls,
}

/// One Redis (a master of a cluster) and this node's connections to it.
#[derive(Debug)]
pub(crate) struct Shard {
    /// Its URL (the seed's scheme and credentials, its own host and port).
    pub url: String,
    pub db: Arc<Db>,
    pub sub: Arc<Subscriber>,
    pub replicas: Arc<Replicas>,
    /// Its counters on `/metrics`.
    counters: Arc<ShardMetrics>,
    stop: CancellationToken,
}

/// The shards and the slots each serves.
#[derive(Debug)]
struct Map {
    shards: Vec<Arc<Shard>>,
    /// Per slot, the index of its shard (or [`NOBODY`]).
    owner: Vec<u16>,
}

/// Where each room's Redis is.
pub(crate) struct Shards {
    /// A cluster's seed URLs; `None` for a single Redis.
    seeds: Option<Vec<String>>,
    settings: ShardSettings,
    /// This process's id on the room channels (random per start).
    pub node: u64,
    map: RwLock<Arc<Map>>,
    /// Bumped at every change of the map.
    changed: watch::Sender<u64>,
    /// Told when a shard said a key or channel is served elsewhere.
    moved: Arc<Notify>,
    /// Held while channels are handed between shards, and while one is routed.
    routing: Mutex<()>,
    /// Where rooms go while their slot has no known shard: never up.
    nowhere: Arc<Shard>,
    logged_unreachable: AtomicBool,
    stop: CancellationToken,
    tasks: TaskTracker,
    span: tracing::Span,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("shards", &self.map().shards.len())
            .finish_non_exhaustive()
    }
}

impl Shards {
    /// The shards of the single Redis at `url` (`seeds: None`) or of the Redis Cluster found
    /// from `seeds`; their connections open in the background, on `tasks`, until `stop`.
    pub fn start(
        url: &str,
        seeds: Option<Vec<String>>,
        settings: ShardSettings,
        stop: CancellationToken,
        tasks: TaskTracker,
        span: tracing::Span,
    ) -> Result<Arc<Shards>, Unreachable> {
        let moved = Arc::new(Notify::new());
        let node = rand::random();
        let nowhere = Arc::new(shard(url, &settings, node, &moved, stop.child_token())?.0);
        nowhere.stop.cancel();
        let single = seeds.is_none();
        let shards = Arc::new(Shards {
            seeds,
            settings,
            node,
            map: RwLock::new(Arc::new(Map {
                shards: Vec::new(),
                owner: vec![NOBODY; SLOTS],
            })),
            changed: watch::channel(0).0,
            moved,
            routing: Mutex::new(()),
            nowhere,
            logged_unreachable: AtomicBool::new(false),
            stop,
            tasks,
            span,
        });
        if single {
            let one = shards.open(url)?;
            shards.apply(vec![(0, SLOTS as u16 - 1, url.to_owned())], vec![one]);
        } else {
            shards.tasks.spawn(
                shards
                    .clone()
                    .follow_topology()
                    .instrument(shards.span.clone()),
            );
        }
        Ok(shards)
    }

    fn map(&self) -> Arc<Map> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The shard serving `slot` now.
    fn at(&self, slot: u16) -> Arc<Shard> {
        let map = self.map();
        match map.owner[usize::from(slot)] {
            NOBODY => self.nowhere.clone(),
            i => map.shards[usize::from(i)].clone(),
        }
    }

    /// The shard serving a room now.
    pub fn of(&self, keys: &Keys) -> Arc<Shard> {
        self.at(keys.slot)
    }

    /// The command connection of a room's shard.
    pub fn db(&self, keys: &Keys) -> Arc<Db> {
        self.of(keys).db.clone()
    }

    /// The replica rounds of a room's shard.
    pub fn replicas(&self, keys: &Keys) -> Arc<Replicas> {
        self.of(keys).replicas.clone()
    }

    /// Resolves once the room's shard (whichever it is by then) is up.
    pub async fn wait_up(&self, keys: &Keys) {
        let mut changed = self.changed.subscribe();
        loop {
            let db = self.db(keys);
            if db.is_up() {
                return;
            }
            tokio::select! {
                _ = db.wait_up() => {}
                _ = changed.changed() => {}
            }
        }
    }

    /// Whether every slot is served and every shard's connections are up.
    pub fn is_up(&self) -> bool {
        let map = self.map();
        !map.owner.contains(&NOBODY) && map.shards.iter().all(|s| s.db.is_up() && s.sub.is_up())
    }

    /// Runs `f` (a room's reads or writes on its shard) and, while Redis redirects it (the
    /// room's slot moved or is moving), runs it again once the topology is read again, for up
    /// to the Redis timeout.
    pub async fn following<T, F>(&self, f: impl Fn() -> F) -> Result<T, Unreachable>
    where
        F: Future<Output = Result<T, Unreachable>>,
    {
        let until = tokio::time::Instant::now() + self.settings.timeout;
        loop {
            match f().await {
                Err(e) if e.is_moved() && tokio::time::Instant::now() < until => {
                    tokio::time::sleep(FOLLOW_EVERY).await;
                }
                done => return done,
            }
        }
    }

    /// Whether this node can serve rooms: it knows the topology and reaches at least one
    /// shard. A shard without a master turns only its own rooms read-only; taking the node out
    /// of a load balancer for it would take every room out (each node sees the same outage).
    pub fn serves_any(&self) -> bool {
        self.map()
            .shards
            .iter()
            .any(|s| s.db.is_up() && s.sub.is_up())
    }

    /// Routes a room's channel on its shard and subscribes; resolves once Redis confirmed it.
    pub async fn subscribe(&self, keys: &Keys, route: Route) -> Result<(), Unreachable> {
        let (sub, confirmed) = {
            let _routing = self.routing.lock().unwrap_or_else(|p| p.into_inner());
            let sub = self.of(keys).sub.clone();
            let rx = sub.route(&keys.channel, route);
            (sub, rx)
        };
        sub.confirmed(confirmed).await
    }

    /// Stops routing a room's channel (if it still belongs to the room load `serial`).
    pub fn unsubscribe(&self, keys: &Keys, serial: u64) {
        let _routing = self.routing.lock().unwrap_or_else(|p| p.into_inner());
        for s in self.map().shards.iter().chain([&self.nowhere]) {
            s.sub.unsubscribe(&keys.channel, serial);
        }
    }

    /// Opens a shard's connections (their tasks run until the shard is dropped from the map).
    fn open(&self, url: &str) -> Result<Arc<Shard>, Unreachable> {
        let (shard, requests, rounds) = shard(
            url,
            &self.settings,
            self.node,
            &self.moved,
            self.stop.child_token(),
        )?;
        let shard = Arc::new(shard);
        self.settings
            .metrics
            .redis_shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(shard.counters.clone());
        let span = tracing::info_span!(parent: &self.span, "redis", shard = %redacted(url));
        self.tasks.spawn(
            shard
                .db
                .clone()
                .maintain(shard.stop.clone())
                .instrument(span.clone()),
        );
        self.tasks.spawn(rounds.instrument(span.clone()));
        self.tasks.spawn(
            shard
                .sub
                .clone()
                .run(requests, shard.db.clone(), shard.stop.clone())
                .instrument(span),
        );
        Ok(shard)
    }

    /// Makes `ranges` (first slot, last slot, shard URL) the map, with `shards` the shards
    /// serving them; hands the channels of rooms whose slot moved to their new shard, and
    /// stops the shards no longer in the map.
    fn apply(&self, ranges: Vec<(u16, u16, String)>, shards: Vec<Arc<Shard>>) {
        let mut owner = vec![NOBODY; SLOTS];
        for (first, last, url) in &ranges {
            if let Some(i) = shards.iter().position(|s| s.url == *url) {
                owner[usize::from(*first)..=usize::from(*last)].fill(i as u16);
            }
        }
        for (i, s) in shards.iter().enumerate() {
            if let Some(tag) = (0u32..100_000)
                .map(|n| format!("r{n}"))
                .find(|t| owner[usize::from(slot_of(t.as_bytes()))] == i as u16)
            {
                s.replicas.set_probe(format!("{PROBE_KEY}:{{{tag}}}"));
            }
        }
        let new = Arc::new(Map { shards, owner });
        let _routing = self.routing.lock().unwrap_or_else(|p| p.into_inner());
        let old = std::mem::replace(
            &mut *self.map.write().unwrap_or_else(|p| p.into_inner()),
            new.clone(),
        );
        let owner_of = |channel: &str| -> Option<&Arc<Shard>> {
            match new.owner[usize::from(key_slot(channel))] {
                NOBODY => None,
                i => Some(&new.shards[usize::from(i)]),
            }
        };
        for s in old.shards.iter().chain([&self.nowhere]) {
            let released = s
                .sub
                .release(|c| owner_of(c).is_none_or(|o| !Arc::ptr_eq(o, s)));
            for (channel, slot) in released {
                let to = owner_of(&channel).unwrap_or(&self.nowhere);
                to.sub.adopt(channel, slot);
            }
        }
        for s in &old.shards {
            if !new.shards.iter().any(|n| Arc::ptr_eq(n, s)) {
                s.stop.cancel();
                self.settings
                    .metrics
                    .redis_shards
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|c| !Arc::ptr_eq(c, &s.counters));
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Reads the cluster's topology until `stop`: at once, whenever a shard says something
    /// moved, quickly while a shard is unreachable or a slot unserved, and at an interval.
    async fn follow_topology(self: Arc<Self>) {
        loop {
            match self.discover().await {
                Ok(ranges) => {
                    if self.logged_unreachable.swap(false, Ordering::Relaxed) {
                        tracing::info!("Redis Cluster reachable again");
                    }
                    self.update(ranges);
                }
                Err(e) => {
                    if !self.logged_unreachable.swap(true, Ordering::Relaxed) {
                        tracing::warn!("cannot read the Redis Cluster's topology ({e}); retrying");
                    }
                }
            }
            let wait = if self.is_up() {
                POLL_EVERY
            } else {
                POLL_UNHEALTHY
            };
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.moved.notified() => {
                    // Several rooms notice one move together: one read for all of them.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Applies a topology read, if it differs from the map.
    fn update(&self, ranges: Vec<(u16, u16, String)>) {
        let map = self.map();
        let mut owner = vec![NOBODY; SLOTS];
        let mut urls: Vec<String> = Vec::new();
        for (first, last, url) in &ranges {
            let i = match urls.iter().position(|u| u == url) {
                Some(i) => i,
                None => {
                    urls.push(url.clone());
                    urls.len() - 1
                }
            };
            owner[usize::from(*first)..=usize::from(*last)].fill(i as u16);
        }
        let same = map.shards.len() == urls.len()
            && (0..SLOTS).all(|s| match (owner[s], map.owner[s]) {
                (NOBODY, NOBODY) => true,
                (a, b) if a != NOBODY && b != NOBODY => {
                    urls[usize::from(a)] == map.shards[usize::from(b)].url
                }
                _ => false,
            });
        if same {
            return;
        }
        let mut shards = Vec::with_capacity(urls.len());
        for url in &urls {
            match map.shards.iter().find(|s| s.url == *url) {
                Some(s) => shards.push(s.clone()),
                None => match self.open(url) {
                    Ok(s) => shards.push(s),
                    Err(e) => {
                        tracing::warn!("cannot use Redis shard {}: {e}", redacted(url));
                        return;
                    }
                },
            }
        }
        if !map.shards.is_empty() {
            self.settings
                .metrics
                .redis_topology_changes
                .fetch_add(1, Ordering::Relaxed);
        }
        for (i, shard) in shards.iter().enumerate() {
            if took_over_from_a_gone_master(&map, &owner, &urls, i) {
                shard.counters.failovers.fetch_add(1, Ordering::Relaxed);
            }
        }
        tracing::info!(
            masters = shards.len(),
            served = owner.iter().filter(|o| **o != NOBODY).count(),
            "Redis Cluster topology: {}",
            urls.iter()
                .map(|u| redacted(u))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.apply(ranges, shards);
    }

    /// The cluster's slot ranges and the URL of each one's master, as the first node that
    /// answers says: a shard of the map, else a seed.
    async fn discover(&self) -> Result<Vec<(u16, u16, String)>, Unreachable> {
        let seeds = self.seeds.as_deref().unwrap_or_default();
        let known: Vec<String> = self.map().shards.iter().map(|s| s.url.clone()).collect();
        let mut last = Unreachable("no seed".into());
        for url in known.iter().chain(seeds) {
            match self.slots_of(url).await {
                Ok(ranges) if !ranges.is_empty() => return Ok(ranges),
                Ok(_) => last = Unreachable(format!("{} serves no slots", redacted(url))),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `CLUSTER SLOTS` as the node at `url` sees it.
    async fn slots_of(&self, url: &str) -> Result<Vec<(u16, u16, String)>, Unreachable> {
        let client = self.settings.tls.client(url)?;
        let timeout = self.settings.timeout;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let read = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<Value>(&mut conn)
                .await
        };
        let reply = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| Unreachable(format!("{}: no answer in time", redacted(url))))??;
        parse_slots(&reply, url).ok_or_else(|| Unreachable("unreadable CLUSTER SLOTS".into()))
    }
}

/// A shard's connections, not started: the shard, its subscriber's requests, its replica
/// rounds.
#[allow(clippy::type_complexity)]
fn shard(
    url: &str,
    settings: &ShardSettings,
    node: u64,
    moved: &Arc<Notify>,
    stop: CancellationToken,
) -> Result<
    (
        Shard,
        tokio::sync::mpsc::UnboundedReceiver<String>,
        impl Future<Output = ()> + Send + 'static,
    ),
    Unreachable,
> {
    let counters = Arc::new(ShardMetrics::new(host_port(url)));
    let db = Arc::new(
        Db::new(
            settings.tls.client(url)?,
            settings.timeout,
            settings.log_cap,
            settings.presence_ttl,
            settings.metrics.clone(),
            node,
            moved.clone(),
        )
        .with_room_ttl(settings.room_ttl)
        .named(&settings.client_name)
        .with_shard_metrics(counters.clone()),
    );
    let (sub, requests) = Subscriber::new(
        url,
        &settings.tls,
        &settings.client_name,
        settings.timeout,
        settings.metrics.clone(),
        counters.clone(),
        moved.clone(),
    );
    // A round waits half the timeout for slow replicas: the room asking is behind until it is
    // answered, and retries.
    let (replicas, rounds) = Replicas::new(
        url,
        &settings.tls,
        settings.replicas,
        settings.timeout / 2,
        settings.metrics.clone(),
        stop.clone(),
    )?;
    Ok((
        Shard {
            url: url.to_owned(),
            db,
            sub: Arc::new(sub),
            replicas,
            counters,
            stop,
        },
        requests,
        rounds,
    ))
}

/// Whether master `i` of a new map (`owner` by slot, `urls` by master) serves slots that a
/// master of the old `map` served which is no master any more: a failover promoted it. Slots
/// moved between masters that both stay masters are a migration, not a failover.
fn took_over_from_a_gone_master(map: &Map, owner: &[u16], urls: &[String], i: usize) -> bool {
    owner.iter().zip(&map.owner).any(|(&new, &old)| {
        usize::from(new) == i
            && old != NOBODY
            && new != NOBODY
            && !urls.contains(&map.shards[usize::from(old)].url)
    })
}

impl SharedKeyStore for Shards {
    fn wait_up(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut changed = self.changed.subscribe();
            loop {
                let db = self.at(key_slot(SECRET_KEY)).db.clone();
                if db.is_up() {
                    return;
                }
                tokio::select! {
                    _ = db.wait_up() => {}
                    _ = changed.changed() => {}
                }
            }
        })
    }

    fn is_up(&self) -> bool {
        self.at(key_slot(SECRET_KEY)).db.is_up()
    }

    fn shared_key(&self) -> BoxFuture<'_, Result<[u8; KEY_BYTES], String>> {
        Box::pin(async move {
            let key = self
                .at(key_slot(SECRET_KEY))
                .db
                .shared_key()
                .await
                .map_err(|e| e.to_string())?;
            // Every shard writes it back after a reconnect (only the one serving it keeps it).
            for s in self.map().shards.iter() {
                let _ = s.db.key.set(key);
            }
            Ok(key)
        })
    }

    fn is_durable(&self) -> BoxFuture<'_, Option<bool>> {
        Box::pin(async move {
            let dbs: Vec<Arc<Db>> = self.map().shards.iter().map(|s| s.db.clone()).collect();
            // Durable only if every shard is; unknown if any would not say.
            let mut all = Some(true);
            for db in dbs {
                match db.append_only().await {
                    Some(true) => {}
                    Some(false) => return Some(false),
                    None => all = None,
                }
            }
            all
        })
    }
}
