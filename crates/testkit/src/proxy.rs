//! A TCP proxy that injects network faults between a node and Redis, or a browser (or any
//! client) and a node: latency per direction, a throttled link, a blackhole (nothing forwarded,
//! nothing closed: a half-open link as a vanished peer or a partition leaves it) and a cut
//! (every connection closed and new ones refused), each switched at run time and healed again.
//!
//! It forwards bytes faithfully or not at all: a TCP stream either delivers in order or
//! fails, so the proxy never drops or reorders bytes of a connection it keeps open. Its
//! buffers are bounded, so a stalled side sees a full window, exactly as on a real network.
//!
//! Written here because no crate fits: toxiproxy is a separate server to install and drive,
//! and the Rust proxies are programs, not something a test embeds and switches in process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Chunks in flight per direction (read, not yet written): with latency, this many chunks
/// are held while they wait; beyond, the proxy stops reading and the sender's window fills.
const IN_FLIGHT_CHUNKS: usize = 256;
/// The largest chunk read at once.
const CHUNK_BYTES: usize = 16 * 1024;

/// The faults in force. `Default` is a healthy link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added to every chunk from the client to the upstream.
    pub latency_up: Duration,
    /// Added to every chunk from the upstream to the client.
    pub latency_down: Duration,
    /// Bytes per second each direction of each connection may carry (`None`: unlimited).
    pub rate: Option<u64>,
    /// Nothing is forwarded in either direction and nothing is closed; new connections are
    /// accepted and connected upstream, but carry nothing either.
    pub blackhole: bool,
    /// Every connection is closed and new ones are closed at once.
    pub cut: bool,
}

/// A running proxy. Dropping it closes everything. Bytes of a connection it keeps open are
/// delivered in order, whole, or held; never dropped or reordered.
#[derive(Debug)]
pub struct FaultProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    upstream: SocketAddr,
    faults: watch::Sender<Faults>,
    /// Bumped by every cut: connections of an older generation close.
    generation: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    /// Held for its drop: the accept loop, and with it every connection, ends with the proxy.
    _tasks: JoinSet<()>,
}

impl FaultProxy {
    /// A healthy proxy on a free loopback port in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let faults = watch::channel(Faults::default()).0;
        let generation = watch::channel(0u64).0;
        let accepted = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(
            listener,
            upstream,
            faults.clone(),
            generation.clone(),
            accepted.clone(),
            forwarded.clone(),
        ));
        FaultProxy {
            addr,
            upstream,
            faults,
            generation,
            accepted,
            forwarded,
            _tasks: tasks,
        }
    }

    /// A `redis://` URL through this proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// An `http://` URL through this proxy (no trailing slash).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The faults in force now.
    pub fn faults(&self) -> Faults {
        self.faults.borrow().clone()
    }

    /// Replaces the faults in force (a cut also closes every open connection).
    pub fn set(&self, faults: Faults) {
        let cut = faults.cut;
        self.faults.send_replace(faults);
        if cut {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// Adds `up` to the client-to-upstream direction and `down` to the other.
    pub fn delay(&self, up: Duration, down: Duration) {
        self.faults.send_modify(|f| {
            f.latency_up = up;
            f.latency_down = down;
        });
    }

    /// Limits each direction of each connection to `bytes_per_sec`.
    pub fn throttle(&self, bytes_per_sec: u64) {
        self.faults
            .send_modify(|f| f.rate = Some(bytes_per_sec.max(1)));
    }

    /// Stops forwarding without closing anything: the link freezes, as a vanished peer's.
    pub fn blackhole(&self) {
        self.faults.send_modify(|f| f.blackhole = true);
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.faults.send_modify(|f| f.cut = true);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Back to a healthy link: held bytes flow again, new connections are served.
    pub fn heal(&self) {
        self.faults.send_replace(Faults::default());
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Relaxed)
    }

    /// Bytes forwarded so far, both directions.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Relaxed)
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    faults: watch::Sender<Faults>,
    generation: watch::Sender<u64>,
    accepted: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
) {
    let mut conns = JoinSet::new();
    loop {
        let (client, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
            // Reap finished connections so that the set stays small.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        accepted.fetch_add(1, Relaxed);
        if faults.borrow().cut {
            drop(client);
            continue;
        }
        let faults = faults.subscribe();
        let generation = generation.subscribe();
        let forwarded = forwarded.clone();
        conns.spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            connection(client, server, faults, generation, forwarded).await;
        });
    }
}

/// Forwards both directions until both sides have closed, or until a cut closes both.
async fn connection(
    client: TcpStream,
    server: TcpStream,
    faults: watch::Receiver<Faults>,
    mut generation: watch::Receiver<u64>,
    forwarded: Arc<AtomicU64>,
) {
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let up = pipe(client_r, server_w, faults.clone(), true, forwarded.clone());
    let down = pipe(server_r, client_w, faults, false, forwarded);
    generation.mark_unchanged();
    tokio::select! {
        // Each direction passes its FIN on; the connection ends when both have.
        _ = async { tokio::join!(up, down) } => {}
        _ = generation.changed() => {}
    }
    // Dropping the halves closes both sockets.
}

/// One direction: a reader that timestamps chunks and a writer that releases each one after
/// the latency in force, at the rate in force, and neither while the link is a blackhole.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    faults: watch::Receiver<Faults>,
    up: bool,
    forwarded: Arc<AtomicU64>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(IN_FLIGHT_CHUNKS);
    let mut read_faults = faults.clone();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            // A blackhole reads nothing: the sender's window fills, as on a dead path.
            if read_faults.wait_for(|f| !f.blackhole).await.is_err() {
                return;
            }
            let limit = match read_faults.borrow().rate {
                // Small chunks keep a throttled stream smooth.
                Some(rate) => (rate as usize / 20).clamp(1, CHUNK_BYTES),
                None => CHUNK_BYTES,
            };
            match from.read(&mut buf[..limit]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    if tx.send((Instant::now(), chunk)).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let mut write_faults = faults;
    let writer = async move {
        while let Some((read_at, chunk)) = rx.recv().await {
            let latency = {
                let f = write_faults.borrow();
                if up { f.latency_up } else { f.latency_down }
            };
            tokio::time::sleep_until(read_at + latency).await;
            if write_faults.wait_for(|f| !f.blackhole).await.is_err() {
                return;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            forwarded.fetch_add(chunk.len() as u64, Relaxed);
            let rate = write_faults.borrow().rate;
            if let Some(rate) = rate {
                let secs = chunk.len() as f64 / rate as f64;
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
        }
        // The reader saw the end: pass the FIN on.
        let _ = to.shutdown().await;
    };
    // The writer must finish (flush what was read, then FIN) after the reader ends.
    tokio::join!(reader, writer);
}
