//! Cluster nodes for tests: in-process `TestServer`s in cluster mode, and nodes run as child
//! processes of the `kokuban` binary (so that a test can kill one abruptly).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kokuban_board::Board;
use kokuban_protocol::{RoomState, Token, Welcome};
use kokuban_server::Config;
use kokuban_server::config::ClusterConfig;

pub use super::create_room_at;
use super::faults::FaultProxy;
use super::pen::{Pen, op_id, text_op};
use super::redis::{RedisServer, free_port};
use super::{TIMEOUT, TestClient, TestRoom, TestServer, http};

/// Presence expiry in tests: short, so that a dead node's members leave quickly.
pub const PRESENCE_TTL: Duration = Duration::from_millis(1500);

/// Cluster settings for a node whose Redis is at `url` (a proxy in front of it, say).
pub fn cluster_config_at(url: &str) -> ClusterConfig {
    let mut c = ClusterConfig::new(url);
    c.presence_ttl = PRESENCE_TTL;
    c.redis_timeout = Duration::from_secs(1);
    c
}

/// An in-process node whose Redis is at `url`, with its configuration adjusted.
pub async fn node_at(url: &str, name: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let cluster = cluster_config_at(url);
    let name = name.to_owned();
    TestServer::start_with(move |c| {
        c.node_id = name;
        c.cluster = Some(cluster);
        adjust(c);
    })
    .await
}

/// An in-process node of the cluster on `redis`.
pub async fn node(redis: &RedisServer, name: &str) -> TestServer {
    node_with(redis, name, |_| {}).await
}

/// An in-process node, with its configuration adjusted.
pub async fn node_with(
    redis: &RedisServer,
    name: &str,
    adjust: impl FnOnce(&mut Config),
) -> TestServer {
    node_at(&redis.url(), name, adjust).await
}

/// A client joined through `addr` (a node or a proxy), resuming from `board` if given.
pub async fn join_at(
    addr: SocketAddr,
    room: &TestRoom,
    token: &Token,
    board: Option<Board>,
) -> TestClient {
    let url = format!("ws://{addr}/ws/{}", room.id);
    let mut c = TestClient::connect_to(&url, None)
        .await
        .expect("WebSocket handshake");
    let resume = board.as_ref().and_then(Board::position);
    if let Some(b) = board {
        c.board = b;
    }
    c.hello(&room.id, token, resume).await;
    c.expect_welcome().await;
    c
}

/// Applies a Welcome that arrived on a live connection (the room's history was replaced):
/// the board is replaced, and the ops seen restart with the new history.
pub fn apply_new_welcome(c: &mut TestClient, w: &Welcome) {
    let RoomState::Snapshot { board, ops } = &w.state else {
        panic!("a new history comes as a snapshot, got {:?}", w.state);
    };
    c.board = Board::from_snapshot(&board.0).expect("snapshot decodes");
    c.seen.clear();
    for op in ops.iter() {
        c.board
            .apply_sequenced(op)
            .expect("ops follow the snapshot");
        c.seen.push(op.clone());
    }
    c.welcome = Some(w.clone());
}

/// Polls `GET /readyz` until it answers `status`.
pub async fn wait_ready(addr: SocketAddr, status: u16) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let got = http(addr, "GET", "/readyz", &[]).await.status;
        if got == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz of {addr} stayed {got}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A node run as a child process of the `kokuban` binary. Dropping it kills it.
pub struct NodeProcess {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    /// Starts `kokuban --redis-url … --secret …` on a free port and waits until it is ready.
    pub async fn start(redis: &RedisServer, secret: &str, name: &str) -> NodeProcess {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Self::start_at(&redis.url(), secret, name, addr).await
    }

    /// Starts a node on `addr` (the address of a node stopped before, say) whose Redis is at
    /// `url`, and waits until it is ready.
    pub async fn start_at(url: &str, secret: &str, name: &str, addr: SocketAddr) -> NodeProcess {
        Self::launch(["--redis-url", url], secret, name, addr).await
    }

    /// Starts a node on `addr` whose Redis is the Redis Cluster found from `seeds`, and waits
    /// until it is ready.
    pub async fn start_sharded(
        seeds: &[String],
        secret: &str,
        name: &str,
        addr: SocketAddr,
    ) -> NodeProcess {
        Self::launch(["--redis-cluster", &seeds.join(",")], secret, name, addr).await
    }

    async fn launch(redis: [&str; 2], secret: &str, name: &str, addr: SocketAddr) -> NodeProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(env!("CARGO_BIN_EXE_kokuban"))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir.path())
            .args(redis)
            .arg("--secret")
            .arg(secret)
            .arg("--node-id")
            .arg(name)
            .arg("--presence-ttl")
            .arg(PRESENCE_TTL.as_secs_f64().to_string())
            .args(["--shutdown-drain", "0.1"])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("the kokuban binary starts");
        let mut node = NodeProcess {
            addr,
            child,
            _dir: dir,
        };
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("node {name} exited at start ({status})");
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok()
                && http(addr, "GET", "/readyz", &[]).await.status == 200
            {
                return node;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {name} did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: no graceful shutdown, no goodbye to Redis or to clients.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as an orchestrator stops a node, and waits for the process to exit; true if
    /// it exited by itself, with success, within the harness's timeout.
    pub async fn terminate(&mut self) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                _ => {
                    self.kill();
                    return false;
                }
            }
        }
    }

    /// Whether the process is still running (it did not crash or panic its way out).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's resident memory, in bytes (Linux; `None` elsewhere).
    pub fn resident_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The secret every node of a test cluster shares.
pub const SECRET: &str = "the fault tests' cluster secret, long enough";

/// A metric of a node reached over HTTP (a node process has no handle in the test).
pub async fn metric_at(addr: SocketAddr, series: &str) -> f64 {
    let r = http(addr, "GET", "/metrics", &[]).await;
    assert_eq!(r.status, 200);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series}"))
        .trim()
        .parse()
        .unwrap()
}

/// An in-process node of the cluster, talking to Redis directly, with the shared secret.
pub async fn healthy_node(redis: &RedisServer, name: &str) -> TestServer {
    node_at(&redis.url(), name, |c| {
        c.cluster.as_mut().unwrap().secret = Some(SECRET.into());
    })
    .await
}

/// Two nodes of one cluster on the binary's shared Redis: `faulty`, a process whose link to
/// Redis runs through the fault proxy, and `healthy`, in process and talking to Redis
/// directly; and a room made on `faulty`. Faults are the proxy's: Redis itself stays healthy.
pub struct FaultyPair {
    pub proxy: FaultProxy,
    pub faulty: NodeProcess,
    pub healthy: TestServer,
    pub room: TestRoom,
}

impl FaultyPair {
    pub async fn start() -> FaultyPair {
        let redis = RedisServer::shared().await;
        let proxy = FaultProxy::start(redis.addr()).await;
        let free = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let faulty = NodeProcess::start_at(&proxy.redis_url(), SECRET, "faulty", free).await;
        let healthy = healthy_node(redis, "healthy").await;
        let room = create_room_at(faulty.addr).await;
        FaultyPair {
            proxy,
            faulty,
            healthy,
            room,
        }
    }
}

/// One op drawn by a member on `a` in `room`: it is acknowledged, and a member on `b` gets it.
pub async fn an_op_crosses(room: &TestRoom, a: SocketAddr, b: SocketAddr) {
    let mut ada = Pen::new("ada", room, &room.edit);
    let mut bob = Pen::new("bob", room, &room.edit);
    ada.connect(a).await.unwrap();
    bob.connect(b).await.unwrap();
    let op = text_op(40);
    ada.draw(op.clone()).await;
    ada.settle(a, TIMEOUT).await;
    assert_eq!(ada.acked, vec![op.clone()], "sequenced");
    bob.sync_to(ada.head().unwrap(), TIMEOUT).await;
    assert!(bob.board.get(&op_id(&op)).is_some(), "it crossed nodes");
}
