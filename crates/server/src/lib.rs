//! The Kokuban server: HTTP, WebSocket sessions, rooms, the relay, the store, metrics.
//!
//! ```no_run
//! # async fn run() -> Result<(), kokuban_server::ServerError> {
//! let server = kokuban_server::Server::bind(kokuban_server::Config::new("./data")).await?;
//! let stop = server.shutdown_handle();
//! // ... stop.shutdown() from a signal handler ...
//! # stop.shutdown();
//! server.serve().await
//! # }
//! ```
//!
//! `main.rs` is only flag parsing, logging and signals; tests start the same [`Server`] on
//! port 0.

pub mod blob;
pub mod capability;
pub mod config;
mod connections;
pub mod metrics;
pub mod origin;
pub mod rate;
pub mod sequencer;
pub mod store;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::capability::Capabilities;
pub use crate::config::Config;
use crate::metrics::Metrics;
use crate::origin::OriginPolicy;
use crate::sequencer::{LocalSequencer, RedisSequencer, Sequencer};
use crate::store::RedbStore;

/// A boxed future, so that the sequencer and store traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The local clock, in ms since the Unix epoch (0 for a clock before it).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Name of the server key file inside the data directory.
pub const KEY_FILE: &str = "server.key";

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created or read.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The server key could not be read or created.
    #[error("server key {path}: {source}")]
    Key {
        /// The key file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store could not be opened or closed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The sequencer failed while stopping.
    #[error(transparent)]
    Sequencer(#[from] sequencer::SequencerError),
    /// A cluster `--secret` too short to resist an offline search.
    #[error(transparent)]
    Secret(#[from] capability::WeakSecret),
    /// An `--allowed-origin` is not an origin.
    #[error(transparent)]
    Origin(#[from] origin::InvalidOrigin),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// A bound, not yet serving, node.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: web::AppState,
}

/// Largest request head (request line and headers) a client may send; a bigger one is
/// answered `431` before it is read further. Browsers send well under 8 KiB.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// Accepts and serves HTTP/1.1 connections until the node closes (after the shutdown's drain
/// window), then tells the open ones to finish their current request; returns them, to be
/// awaited (upgraded WebSockets are tracked by `sessions`).
///
/// Not `axum::serve`: it sets no header-read deadline, so a client trickling its headers a
/// byte at a time holds a socket and a task forever (slowloris). Here every connection gets
/// [`Config::header_read_timeout`] and a bounded request head.
async fn serve_connections(
    listener: TcpListener,
    app: axum::Router,
    state: &web::AppState,
) -> TaskTracker {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tower::Service as _;

    // While the node drains it still answers (`/readyz` 503 tells the load balancer to go).
    let stop = state.closing.clone();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES);
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    let connections = TaskTracker::new();
    let slots = connections::ConnectionSlots::new(
        state.config.max_connections,
        state.config.max_connections_per_ip,
    );
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors (or similar): back off instead of spinning;
                    // connections already open keep being served.
                    tracing::warn!("accept failed: {e}");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(std::time::Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        // Nagle's algorithm would hold small frames (a point batch, an Ack) for up to 40 ms
        // waiting for more: the opposite of what a live drawing needs.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let Some(slot) = slots.try_take(peer.ip()) else {
            state
                .metrics
                .connections_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(%peer, "refused: connection cap reached");
            connections.spawn(connections::refuse(tcp));
            continue;
        };
        let tcp = connections::SlottedStream { tcp, _slot: slot };
        let service = match make.call(peer).await {
            Ok(service) => TowerToHyperService::new(service),
            Err(never) => match never {},
        };
        let connection = http
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let stop = stop.clone();
        let metrics = state.metrics.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    // Finish the request in flight, then close; a connection still sending
                    // its head is bounded by the header deadline.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                if e.is_timeout() {
                    metrics
                        .header_timeouts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(%peer, "closed: request header not complete in time");
                } else {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections
}

/// Stops a node: readiness turns 503 and new rooms and upgrades are refused; members are
/// served on for [`Config::shutdown_drain`], then every socket is closed with 1001; sessions
/// are awaited until [`Config::shutdown_timeout`] after the call, what remains is dropped, and
/// the store is flushed and marked clean. Cloneable; calling it more than once is harmless.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// Starts the shutdown; [`Server::serve`] returns when it is complete.
    pub fn shutdown(&self) {
        self.0.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.0.is_cancelled()
    }
}

impl Server {
    /// Opens the store and the key under `config.data_dir` and binds the listener.
    /// In cluster mode (`config.cluster`) Redis holds the rooms and the capability key instead.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let dir = config.data_dir.clone();
        let development = config.listen.ip().is_loopback() || config.allow_dev_origins;
        let origins = OriginPolicy::new(&config.allowed_origins, development)?;
        let metrics = Arc::new(Metrics::default());
        let (capabilities, sequencer): (Capabilities, Arc<dyn Sequencer>) = match &config.cluster {
            Some(cluster) => {
                if let Some(secret) = &cluster.secret {
                    capability::check_secret(secret)?;
                }
                let sequencer = RedisSequencer::start(&config, cluster, metrics.clone())?;
                let capabilities = Capabilities::for_cluster(
                    cluster.secret.as_deref(),
                    sequencer.key_store(),
                    cluster.redis_timeout,
                )
                .await;
                match capabilities {
                    Ok(capabilities) => (capabilities, Arc::new(sequencer)),
                    Err(e) => {
                        let _ = sequencer.shutdown().await;
                        return Err(ServerError::Sequencer(sequencer::SequencerError(e)));
                    }
                }
            }
            None => {
                std::fs::create_dir_all(&dir).map_err(|source| ServerError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
                let key_path = dir.join(KEY_FILE);
                let capabilities =
                    Capabilities::load_or_create(&key_path).map_err(|source| ServerError::Key {
                        path: key_path,
                        source,
                    })?;
                let store = RedbStore::open(
                    &dir,
                    config.store_backlog_ops,
                    config.store_max_lag,
                    metrics.clone(),
                )?;
                let sequencer =
                    LocalSequencer::new(Arc::new(store), (&config).into(), metrics.clone());
                (capabilities, Arc::new(sequencer))
            }
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(ServerError::Serve)?;
        tracing::info!(addr = %local_addr, data_dir = %dir.display(), node = %config.node_id, "listening");
        let state = web::AppState::new(web::App {
            upgrades: rate::PerAddress::new(
                config.upgrades_per_ip_per_sec,
                config.upgrade_burst_per_ip,
            ),
            room_creations: rate::PerAddress::per_minute(config.rooms_per_ip_per_min),
            version_reads: rate::PerAddress::per_minute(web::VERSION_READS_PER_MIN),
            blob_uploads: rate::PerAddress::per_minute(web::BLOB_UPLOADS_PER_MIN),
            blob_reads: rate::PerAddress::per_minute(web::BLOB_READS_PER_MIN),
            uploads_in_flight: Arc::new(tokio::sync::Semaphore::new(web::UPLOADS_IN_FLIGHT)),
            config,
            sequencer,
            capabilities,
            origins,
            metrics,
            shutdown: CancellationToken::new(),
            closing: CancellationToken::new(),
            sessions: TaskTracker::new(),
        });
        Ok(Server {
            listener,
            local_addr,
            state,
        })
    }

    /// The address the node listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the node.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.state.shutdown.clone())
    }

    /// The capability keys of this node (tests and tools mint links with them).
    pub fn capabilities(&self) -> &Capabilities {
        &self.state.capabilities
    }

    /// Serves until shut down, then drains (see [`ShutdownHandle`]): sessions closed and
    /// awaited up to the deadline, the store flushed and marked clean.
    pub async fn serve(self) -> Result<(), ServerError> {
        let state = self.state;
        let app = web::router(state.clone());
        let (drain, limit) = (state.config.shutdown_drain, state.config.shutdown_timeout);
        let (stop, closing) = (state.shutdown.clone(), state.closing.clone());
        let deadline = tokio::spawn(async move {
            stop.cancelled().await;
            let deadline = tokio::time::Instant::now() + limit;
            tracing::info!("shutting down: not ready; serving members for {drain:?} more");
            tokio::time::sleep(drain).await;
            closing.cancel();
            deadline
        });
        let connections = serve_connections(self.listener, app, &state).await;
        state.shutdown.cancel();
        state.closing.cancel();
        let deadline = deadline
            .await
            .unwrap_or_else(|_| tokio::time::Instant::now() + limit);
        tracing::info!("closing sessions");
        state.sessions.close();
        let closed = tokio::time::timeout_at(deadline, async {
            connections.wait().await;
            state.sessions.wait().await;
        })
        .await;
        if closed.is_err() {
            tracing::warn!(
                sessions = state.sessions.len(),
                connections = connections.len(),
                "shutdown deadline reached: dropping what has not closed"
            );
        } else {
            tracing::info!("sessions closed");
        }
        tracing::info!("flushing the store");
        state.sequencer.shutdown().await?;
        tracing::info!("shutdown complete");
        Ok(())
    }
}
