//! The pub/sub connection: one per node, subscribed to exactly the channels of the rooms it
//! holds, routing each message to its room.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use redis::{Client, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::db::Db;
use super::wire::{Inbound, parse_inbound};
use super::{Backoff, PING_EVERY, Unreachable};
use crate::metrics::Metrics;

/// Where a room's channel messages go.
pub(crate) struct Route {
    /// This load of the room (a room unloaded and loaded again gets a new one).
    pub serial: u64,
    /// The room's inbox. Bounded: when it is full the message is dropped and `resync` called,
    /// and the room reads what it missed from the log.
    pub inbox: mpsc::Sender<Inbound>,
    /// Tells the room that messages may have been missed (a reconnect, a full inbox).
    pub resync: Arc<dyn Fn() + Send + Sync>,
}

struct RouteSlot {
    route: Route,
    /// Fires when the subscription is confirmed for the first time.
    confirmed: Option<oneshot::Sender<()>>,
}

/// The node's one pub/sub connection: it subscribes to exactly the channels of the rooms this
/// node holds (never a pattern, so it receives only its rooms' traffic), in batches.
pub(crate) struct Subscriber {
    client: Client,
    routes: Mutex<HashMap<String, RouteSlot>>,
    requests: mpsc::UnboundedSender<String>,
    up: watch::Sender<bool>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("up", &*self.up.borrow())
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// The subscriber and the receiver its task needs.
    pub fn new(
        url: &str,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<(Subscriber, mpsc::UnboundedReceiver<String>), Unreachable> {
        let client = Client::open(url).map_err(|e| Unreachable(format!("bad Redis URL: {e}")))?;
        let (requests, rx) = mpsc::unbounded_channel();
        Ok((
            Subscriber {
                client,
                routes: Mutex::new(HashMap::new()),
                requests,
                up: watch::channel(false).0,
                timeout,
                metrics,
            },
            rx,
        ))
    }

    fn routes(&self) -> MutexGuard<'_, HashMap<String, RouteSlot>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the pub/sub connection is up.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Routes `channel` to `route` and subscribes; resolves once Redis confirmed it, so that
    /// whatever is published from then on reaches the route.
    pub async fn subscribe(&self, channel: &str, route: Route) -> Result<(), Unreachable> {
        let (tx, rx) = oneshot::channel();
        self.routes().insert(
            channel.to_owned(),
            RouteSlot {
                route,
                confirmed: Some(tx),
            },
        );
        let _ = self.requests.send(channel.to_owned());
        match tokio::time::timeout(self.timeout * 2, rx).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Unreachable(
                "the subscription was not confirmed in time".into(),
            )),
        }
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
            drop(routes);
            let _ = self.requests.send(channel.to_owned());
        }
    }

    fn deliver(&self, msg: &redis::Msg) {
        let Some(inbound) = parse_inbound(msg.get_payload_bytes()) else {
            tracing::warn!(
                channel = msg.get_channel_name(),
                "unreadable channel message ignored"
            );
            return;
        };
        let routes = self.routes();
        let Some(slot) = routes.get(msg.get_channel_name()) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = slot.route.inbox.try_send(inbound) {
            (slot.route.resync)();
        }
    }

    /// Keeps the pub/sub connection open until `stop`: reconnects with backoff, resubscribes
    /// every routed channel in one command, tells every room to catch up from its log, and
    /// batches the (un)subscriptions asked for meanwhile.
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
                c = tokio::time::timeout(self.timeout, self.client.get_async_pubsub()) => c,
            };
            let pubsub = match connected {
                Ok(Ok(p)) => p,
                failed => {
                    if !logged_down {
                        logged_down = true;
                        let why = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "no answer in time".into(),
                        };
                        tracing::warn!("cannot open the Redis subscription ({why}); retrying");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next()) => {}
                    }
                    continue;
                }
            };
            let (mut sink, mut stream) = pubsub.split();
            // Requests queued while disconnected are covered by the full resubscription.
            while requests.try_recv().is_ok() {}
            let channels: Vec<String> = self.routes().keys().cloned().collect();
            if !channels.is_empty() {
                let subscribed =
                    tokio::time::timeout(self.timeout, sink.subscribe(&channels)).await;
                if !matches!(subscribed, Ok(Ok(()))) {
                    tokio::time::sleep(backoff.next()).await;
                    continue;
                }
            }
            backoff = Backoff::new();
            if std::mem::take(&mut logged_down) {
                tracing::info!(rooms = channels.len(), "Redis subscription restored");
            }
            self.up.send_replace(true);
            self.confirm(&channels, true);
            // A subscription only receives: if the path to Redis dies without a FIN (a
            // partition, a vanished host), nothing ever says so and the node would wait
            // forever for messages that go elsewhere. A ping answered in time proves it alive.
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ping.reset();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => {
                        self.up.send_replace(false);
                        return;
                    }
                    msg = stream.next() => match msg {
                        Some(m) => self.deliver(&m),
                        None => break,
                    },
                    _ = ping.tick() => {
                        let pong = tokio::time::timeout(self.timeout, sink.ping::<Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            break;
                        }
                    }
                    Some(first) = requests.recv() => {
                        let mut asked = vec![first];
                        while let Ok(c) = requests.try_recv() {
                            asked.push(c);
                        }
                        asked.sort();
                        asked.dedup();
                        let (sub, unsub): (Vec<String>, Vec<String>) = {
                            let routes = self.routes();
                            asked.into_iter().partition(|c| routes.contains_key(c))
                        };
                        if !sub.is_empty() {
                            match tokio::time::timeout(self.timeout, sink.subscribe(&sub)).await {
                                Ok(Ok(())) => self.confirm(&sub, false),
                                _ => break,
                            }
                        }
                        if !unsub.is_empty()
                            && !matches!(
                                tokio::time::timeout(self.timeout, sink.unsubscribe(&unsub)).await,
                                Ok(Ok(()))
                            )
                        {
                            break;
                        }
                    }
                }
            }
            self.up.send_replace(false);
            self.metrics
                .redis_disconnects
                .fetch_add(1, Ordering::Relaxed);
            logged_down = true;
            tracing::warn!("Redis subscription lost; resubscribing");
            // Redis may be gone altogether: writes must be refused at once, not after a ping.
            db.check_now();
        }
    }

    /// After a subscription to `channels` was confirmed: rooms waiting for their first one
    /// proceed; on a reconnect (`resubscribed`), every other room may have missed messages.
    fn confirm(&self, channels: &[String], resubscribed: bool) {
        let mut routes = self.routes();
        for c in channels {
            if let Some(slot) = routes.get_mut(c) {
                match slot.confirmed.take() {
                    Some(tx) => {
                        let _ = tx.send(());
                    }
                    None if resubscribed => (slot.route.resync)(),
                    None => {}
                }
            }
        }
    }
}
