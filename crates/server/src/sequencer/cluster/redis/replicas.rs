//! Waiting for Redis replicas (`--redis-replicas N`): a room delivers an op, and so
//! acknowledges it to its author, only once N replicas hold it, so that a failover to one of
//! them loses nothing anyone was shown.
//!
//! `WAIT` counts the writes of the connection it is sent on and blocks that connection while
//! it waits; the command connection carries every room's commands, so the wait runs on a
//! connection of its own, where a write of its own (`INCR` of [`PROBE_KEY`]) goes first. Redis
//! replicates one stream in the order it applied it: once the replicas hold that write, they
//! hold everything the primary applied before it, which is every op this node had received
//! when it asked. Rooms asking at the same time share one round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Unreachable;
use super::tls::Tls;
use crate::metrics::Metrics;

/// The probe each round writes, so that the round's `WAIT` has a write of its own to count
/// (in a Redis Cluster, with a hash tag that puts it on the shard asked).
pub(super) const PROBE_KEY: &str = "kokuban:replicated";

type Waiter = oneshot::Sender<Result<(), Unreachable>>;

/// Rounds of "do N replicas hold everything so far?", shared by the node's rooms.
#[derive(Debug)]
pub(crate) struct Replicas {
    wanted: u32,
    requests: mpsc::UnboundedSender<Waiter>,
    /// False since a round found fewer replicas than wanted, until one finds enough.
    enough: AtomicBool,
    /// The key each round writes: one the Redis asked serves.
    probe: std::sync::Mutex<String>,
}

impl Replicas {
    /// Rounds against the Redis at `url` needing `wanted` replicas (0: never asks), each waiting
    /// at most `timeout` for them; and the task that runs them until `stop`.
    pub fn new(
        url: &str,
        tls: &Tls,
        wanted: u32,
        timeout: Duration,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Result<(Arc<Replicas>, impl Future<Output = ()> + Send + 'static), Unreachable> {
        let client = tls.client(url)?;
        let (requests, rx) = mpsc::unbounded_channel();
        let replicas = Arc::new(Replicas {
            wanted,
            requests,
            enough: AtomicBool::new(true),
            probe: std::sync::Mutex::new(PROBE_KEY.to_owned()),
        });
        let round = Round {
            client,
            conn: None,
            wanted,
            timeout,
        };
        Ok((replicas.clone(), run(replicas, round, rx, metrics, stop)))
    }

    /// Rounds write `key` from now on (the shard's slots changed).
    pub fn set_probe(&self, key: String) {
        *self.probe.lock().unwrap_or_else(|p| p.into_inner()) = key;
    }

    fn probe(&self) -> String {
        self.probe.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// False while the last round found fewer replicas than wanted: writes are refused then,
    /// as when Redis is unreachable, rather than sequenced with nobody acknowledged.
    pub fn enough(&self) -> bool {
        self.enough.load(Ordering::Relaxed)
    }

    /// Resolves once the wanted replicas hold everything the primary had applied when it was
    /// called; `Err` if a round found too few of them, or Redis did not answer.
    pub async fn confirm(&self) -> Result<(), Unreachable> {
        if self.wanted == 0 {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(tx)
            .map_err(|_| Unreachable("the node is stopping".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(Unreachable("the node is stopping".into())))
    }
}

/// One connection and what a round asks on it.
struct Round {
    client: Client,
    conn: Option<MultiplexedConnection>,
    wanted: u32,
    timeout: Duration,
}

impl Round {
    /// Writes the probe and waits for it: how many replicas hold it.
    async fn ask(&mut self, probe: &str) -> Result<u32, Unreachable> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                // WAIT itself takes up to the timeout: the connection's own allows twice that.
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout * 2));
                let c = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                self.conn.insert(c)
            }
        };
        let held: Result<(u32,), _> = redis::pipe()
            .cmd("INCR")
            .arg(probe)
            .ignore()
            .cmd("WAIT")
            .arg(self.wanted)
            .arg(self.timeout.as_millis().max(1) as u64)
            .query_async(conn)
            .await;
        match held {
            Ok((n,)) => Ok(n),
            Err(e) => {
                self.conn = None;
                Err(e.into())
            }
        }
    }
}

/// Runs rounds while anyone waits: everyone who asked while a round was in flight is answered
/// by the next one (a round answers only what was applied before its probe).
async fn run(
    replicas: Arc<Replicas>,
    mut round: Round,
    mut rx: mpsc::UnboundedReceiver<Waiter>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut waiting = Vec::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            w = rx.recv() => match w {
                Some(w) => waiting.push(w),
                None => return,
            },
        }
        while let Ok(w) = rx.try_recv() {
            waiting.push(w);
        }
        let probe = replicas.probe();
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            held = round.ask(&probe) => held,
        };
        metrics.replica_rounds.fetch_add(1, Ordering::Relaxed);
        let result = match outcome {
            Ok(n) if n >= replicas.wanted => Ok(()),
            Ok(n) => Err(Unreachable(format!(
                "{n} of the {} Redis replicas wanted hold the latest writes",
                replicas.wanted
            ))),
            Err(e) => Err(e),
        };
        let was_enough = replicas.enough.swap(result.is_ok(), Ordering::Relaxed);
        match (&result, was_enough) {
            (Err(e), true) => {
                metrics.replica_shortfalls.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{e}; rooms are read-only until they do");
            }
            (Err(_), false) => {
                metrics.replica_shortfalls.fetch_add(1, Ordering::Relaxed);
            }
            (Ok(()), false) => tracing::info!("Redis replicas hold the latest writes again"),
            (Ok(()), true) => {}
        }
        for w in waiting.drain(..) {
            let _ = w.send(result.clone());
        }
    }
}
