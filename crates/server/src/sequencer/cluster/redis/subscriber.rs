//! A pub/sub connection to one Redis (one shard of a Redis Cluster), subscribed with sharded
//! pub/sub (`SSUBSCRIBE`) to exactly the channels of the rooms this node holds there, routing
//! each message to its room.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::db::Db;
use super::resp::{self, Reply};
use super::tls::Tls;
use super::wire::{Inbound, parse_inbound};
use super::{Backoff, PING_EVERY, Unreachable};
use crate::metrics::{Metrics, ShardMetrics};

/// Where a room's channel messages go.
pub(crate) struct Route {
    /// This load of the room (a room unloaded and loaded again gets a new one).
    pub serial: u64,
    /// The room's inbox. Bounded: when it is full the message is dropped and `resync` called,
    /// and the room reads what it missed from the log.
    pub inbox: mpsc::Sender<Inbound>,
    /// Tells the room that messages may have been missed (a reconnect, a full inbox, a slot
    /// that moved).
    pub resync: Arc<dyn Fn() + Send + Sync>,
}

/// A routed channel.
pub(super) struct RouteSlot {
    route: Route,
    /// Fires when the subscription is confirmed for the first time.
    confirmed: Option<oneshot::Sender<()>>,
    /// Messages may have been missed since the last confirmed subscription: the room catches
    /// up once the next one is confirmed.
    resync_on_confirm: bool,
}

/// What a reply not carrying a message answers, in the order the commands went out.
#[derive(Debug)]
enum Asked {
    Subscribe(String),
    Unsubscribe(String),
    Ping,
}

/// Redis errors saying that a channel is served by another shard, or not right now.
fn is_redirect(error: &str) -> bool {
    ["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"]
        .iter()
        .any(|p| error.starts_with(p))
}

/// How soon a channel refused as served elsewhere is tried again (the topology is being
/// refreshed meanwhile, and moves the channel to the shard that serves it).
const RETRY_MOVED: Duration = Duration::from_millis(200);

/// One shard's pub/sub connection: it subscribes to exactly the channels of the rooms this node
/// holds on that shard (never a pattern, so it receives only its rooms' traffic), in batches.
pub(crate) struct Subscriber {
    url: String,
    tls: Tls,
    /// The connection's `CLIENT SETNAME`, so that an operator can tell nodes apart.
    name: String,
    routes: Mutex<HashMap<String, RouteSlot>>,
    requests: mpsc::UnboundedSender<String>,
    up: watch::Sender<bool>,
    timeout: Duration,
    metrics: Arc<Metrics>,
    shard: Arc<ShardMetrics>,
    /// Told when Redis says a channel is served elsewhere: the topology is stale.
    moved: Arc<Notify>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("up", &*self.up.borrow())
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// The subscriber of the Redis at `url` and the receiver its task needs.
    pub fn new(
        url: &str,
        tls: &Tls,
        name: &str,
        timeout: Duration,
        metrics: Arc<Metrics>,
        shard: Arc<ShardMetrics>,
        moved: Arc<Notify>,
    ) -> (Subscriber, mpsc::UnboundedReceiver<String>) {
        let (requests, rx) = mpsc::unbounded_channel();
        (
            Subscriber {
                url: url.to_owned(),
                tls: tls.clone(),
                name: name.to_owned(),
                routes: Mutex::new(HashMap::new()),
                requests,
                up: watch::channel(false).0,
                timeout,
                metrics,
                shard,
                moved,
            },
            rx,
        )
    }

    fn routes(&self) -> MutexGuard<'_, HashMap<String, RouteSlot>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the pub/sub connection is up.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Counts the channels routed here.
    fn count(&self, routes: &HashMap<String, RouteSlot>) {
        self.shard
            .subscriptions
            .store(routes.len() as u64, Ordering::Relaxed);
    }

    /// Routes `channel` to `route` and asks for the subscription; the receiver fires once
    /// Redis confirmed it, from when whatever is published reaches the route.
    pub fn route(&self, channel: &str, route: Route) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.adopt(
            channel.to_owned(),
            RouteSlot {
                route,
                confirmed: Some(tx),
                resync_on_confirm: false,
            },
        );
        rx
    }

    /// Waits for a confirmation [`route`](Self::route) promised.
    pub async fn confirmed(&self, rx: oneshot::Receiver<()>) -> Result<(), Unreachable> {
        match tokio::time::timeout(self.timeout * 2, rx).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Unreachable(
                "the subscription was not confirmed in time".into(),
            )),
        }
    }

    /// Takes over a routed channel (from another shard's subscriber) and subscribes.
    pub(super) fn adopt(&self, channel: String, slot: RouteSlot) {
        let mut routes = self.routes();
        routes.insert(channel.clone(), slot);
        self.count(&routes);
        drop(routes);
        let _ = self.requests.send(channel);
    }

    /// Gives up the channels `leaving` says are no longer served here (unsubscribing them), to
    /// be adopted elsewhere; what was published meanwhile is read from the log.
    pub(super) fn release(&self, leaving: impl Fn(&str) -> bool) -> Vec<(String, RouteSlot)> {
        let mut routes = self.routes();
        let names: Vec<String> = routes.keys().filter(|c| leaving(c)).cloned().collect();
        let mut released = Vec::with_capacity(names.len());
        for name in names {
            if let Some(mut slot) = routes.remove(&name) {
                slot.resync_on_confirm = true;
                let _ = self.requests.send(name.clone());
                released.push((name, slot));
            }
        }
        self.count(&routes);
        released
    }

    /// Stops routing `channel` (if it still belongs to the room load `serial`) and
    /// unsubscribes.
    pub fn unsubscribe(&self, channel: &str, serial: u64) {
        let mut routes = self.routes();
        if routes
            .get(channel)
            .is_some_and(|r| r.route.serial == serial)
        {
            routes.remove(channel);
            self.count(&routes);
            drop(routes);
            let _ = self.requests.send(channel.to_owned());
        }
    }

    fn deliver(&self, channel: &[u8], payload: &[u8]) {
        let Some(inbound) = parse_inbound(payload) else {
            tracing::warn!(
                channel = %String::from_utf8_lossy(channel),
                "unreadable channel message ignored"
            );
            return;
        };
        let routes = self.routes();
        let Some(slot) = std::str::from_utf8(channel)
            .ok()
            .and_then(|c| routes.get(c))
        else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = slot.route.inbox.try_send(inbound) {
            (slot.route.resync)();
        }
    }

    /// Keeps the pub/sub connection open until `stop`: reconnects with backoff, resubscribes
    /// every routed channel in one write, has every room catch up from its log, follows
    /// channels whose slot moved, and batches the (un)subscriptions asked for meanwhile.
    pub async fn run(
        self: Arc<Self>,
        mut requests: mpsc::UnboundedReceiver<String>,
        db: Arc<Db>,
        stop: CancellationToken,
    ) {
        let mut backoff = Backoff::new();
        let mut logged_down = false;
        loop {
            let connected = tokio::select! {
                _ = stop.cancelled() => return,
                c = resp::open(&self.url, &self.tls, &self.name, self.timeout) => c,
            };
            let (mut reader, mut writer) = match connected {
                Ok(c) => c,
                Err(e) => {
                    if !logged_down {
                        logged_down = true;
                        tracing::warn!("cannot open the Redis subscription ({e}); retrying");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next()) => {}
                    }
                    continue;
                }
            };
            // Requests queued while disconnected are covered by the full resubscription.
            while requests.try_recv().is_ok() {}
            let mut asked = VecDeque::new();
            let channels: Vec<String> = {
                let mut routes = self.routes();
                for slot in routes.values_mut() {
                    slot.resync_on_confirm |= slot.confirmed.is_none();
                }
                routes.keys().cloned().collect()
            };
            let mut out = Vec::new();
            for c in channels {
                resp::encode(&mut out, &[b"SSUBSCRIBE", c.as_bytes()]);
                asked.push_back(Asked::Subscribe(c));
            }
            let written = tokio::time::timeout(self.timeout, writer.write(&out)).await;
            if !matches!(written, Ok(Ok(()))) {
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
            backoff = Backoff::new();
            if std::mem::take(&mut logged_down) {
                tracing::info!(rooms = asked.len(), url = %redacted(&self.url), "Redis subscription restored");
            }
            self.up.send_replace(true);
            let why = self
                .serve(&mut reader, &mut writer, &mut asked, &mut requests, &stop)
                .await;
            self.up.send_replace(false);
            if stop.is_cancelled() {
                return;
            }
            self.metrics
                .redis_disconnects
                .fetch_add(1, Ordering::Relaxed);
            self.shard.reconnects.fetch_add(1, Ordering::Relaxed);
            logged_down = true;
            tracing::warn!(url = %redacted(&self.url), "Redis subscription lost ({why}); resubscribing");
            // Redis may be gone altogether: writes must be refused at once, not after a ping.
            db.check_now();
            self.moved.notify_one();
        }
    }

    /// Serves one connection until it fails (or `stop`); why it ended.
    async fn serve(
        &self,
        reader: &mut resp::Reader,
        writer: &mut resp::Writer,
        asked: &mut VecDeque<Asked>,
        requests: &mut mpsc::UnboundedReceiver<String>,
        stop: &CancellationToken,
    ) -> String {
        // A subscription only receives: if the path to Redis dies without a FIN (a partition,
        // a vanished host), nothing ever says so and the node would wait forever for messages
        // that go elsewhere. A ping answered in time proves it alive.
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        let mut pinged: Option<Instant> = None;
        loop {
            let mut out = Vec::new();
            tokio::select! {
                _ = stop.cancelled() => return "stopping".into(),
                reply = reader.read() => match reply {
                    Ok(r) => {
                        if let Err(why) = self.answer(r, asked, &mut pinged) {
                            return why;
                        }
                    }
                    Err(e) => return e.0,
                },
                _ = ping.tick() => {
                    if let Some(at) = pinged {
                        if at.elapsed() > self.timeout {
                            return "no answer to a ping in time".into();
                        }
                    } else {
                        resp::encode(&mut out, &[b"PING"]);
                        asked.push_back(Asked::Ping);
                        pinged = Some(Instant::now());
                    }
                }
                Some(first) = requests.recv() => {
                    let mut wanted = vec![first];
                    while let Ok(c) = requests.try_recv() {
                        wanted.push(c);
                    }
                    wanted.sort();
                    wanted.dedup();
                    let routes = self.routes();
                    // One channel per command: in a Redis Cluster the channels of one
                    // SSUBSCRIBE must share a slot.
                    for c in wanted {
                        if routes.contains_key(&c) {
                            resp::encode(&mut out, &[b"SSUBSCRIBE", c.as_bytes()]);
                            asked.push_back(Asked::Subscribe(c));
                        } else {
                            resp::encode(&mut out, &[b"SUNSUBSCRIBE", c.as_bytes()]);
                            asked.push_back(Asked::Unsubscribe(c));
                        }
                    }
                }
            }
            if !out.is_empty() {
                match tokio::time::timeout(self.timeout, writer.write(&out)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return e.0,
                    Err(_) => return "a write took too long".into(),
                }
            }
        }
    }

    /// Acts on one reply; `Err` if the connection cannot go on.
    fn answer(
        &self,
        reply: Reply,
        asked: &mut VecDeque<Asked>,
        pinged: &mut Option<Instant>,
    ) -> Result<(), String> {
        let parts = match reply {
            Reply::Array(parts) => parts,
            Reply::Simple(s) if s.eq_ignore_ascii_case("PONG") => {
                asked.pop_front();
                *pinged = None;
                return Ok(());
            }
            Reply::Error(e) => {
                return match asked.pop_front() {
                    Some(Asked::Subscribe(c)) if is_redirect(&e) => {
                        self.retry_elsewhere(c);
                        Ok(())
                    }
                    Some(Asked::Unsubscribe(_)) if is_redirect(&e) => Ok(()),
                    _ if e.contains("unknown command") => Err(format!(
                        "Redis refused SSUBSCRIBE ({e}): Kokuban needs Redis 7.0 or later, or Valkey"
                    )),
                    _ => Err(format!("Redis answered an error: {e}")),
                };
            }
            other => return Err(format!("unexpected reply {other:?}")),
        };
        let kind = parts.first().and_then(Reply::bytes).unwrap_or_default();
        let channel = parts.get(1).and_then(Reply::bytes).unwrap_or_default();
        match kind {
            b"smessage" | b"message" => {
                if let Some(payload) = parts.get(2).and_then(Reply::bytes) {
                    self.deliver(channel, payload);
                }
            }
            b"ssubscribe" => {
                if let Some(Asked::Subscribe(_)) = asked.front() {
                    asked.pop_front();
                }
                self.confirm(&String::from_utf8_lossy(channel));
            }
            b"sunsubscribe" => {
                let name = String::from_utf8_lossy(channel).into_owned();
                match asked.front() {
                    Some(Asked::Unsubscribe(c)) if *c == name => {
                        asked.pop_front();
                    }
                    // Not asked for: the channel's slot moved to another shard. Messages may
                    // be lost until the channel is subscribed where it now lives.
                    _ => {
                        tracing::info!(channel = %name, "Redis moved a room's channel; following it");
                        self.retry_elsewhere(name);
                    }
                }
            }
            b"pong" => {
                asked.pop_front();
                *pinged = None;
            }
            _ => {}
        }
        Ok(())
    }

    /// A routed channel that this shard does not serve (now): the topology is refreshed, which
    /// hands the channel to the shard that does; until then it is tried here again.
    fn retry_elsewhere(&self, channel: String) {
        if let Some(slot) = self.routes().get_mut(&channel) {
            slot.resync_on_confirm = true;
        }
        self.moved.notify_one();
        let requests = self.requests.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RETRY_MOVED).await;
            let _ = requests.send(channel);
        });
    }

    /// A subscription to `channel` was confirmed: the room waiting for its first one proceeds;
    /// a room that may have missed messages catches up.
    fn confirm(&self, channel: &str) {
        let mut routes = self.routes();
        if let Some(slot) = routes.get_mut(channel) {
            if let Some(tx) = slot.confirmed.take() {
                let _ = tx.send(());
            } else if std::mem::take(&mut slot.resync_on_confirm) {
                (slot.route.resync)();
            }
        }
    }
}

/// `url` without its password, for logs.
pub(super) fn redacted(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((scheme_user, host)) => {
            let scheme = scheme_user.split("://").next().unwrap_or("redis");
            format!("{scheme}://…@{host}")
        }
        None => url.to_owned(),
    }
}
