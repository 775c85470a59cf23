//! The processes under test: Kokuban nodes, Socket.IO nodes, the floor and Redis, each started
//! by the benchmark on free loopback ports and stopped when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long a process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process; killed if dropped without [`Proc::stop`].
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Where its standard error goes.
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> anyhow::Result<Proc> {
        let log = log_dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log)?;
        cmd.stdin(Stdio::null()).stderr(log_file).kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {name} ({:?})", cmd.as_std().get_program()))?;
        let pid = child.id().context("child has no pid")?;
        Ok(Proc {
            name: name.to_string(),
            pid,
            log,
            child,
        })
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}):\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// Asks it to stop (SIGTERM), then kills it if it has not exited within five seconds.
    pub async fn stop(mut self) {
        let pid = i32::try_from(self.pid).map(Pid::from_raw);
        if let Ok(pid) = pid {
            let _ = kill(pid, Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A free TCP port on 127.0.0.1 (the kernel picks it; a race with another process that binds
/// the same port in between is possible but harmless: the start then fails loudly).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_until<F, Fut>(proc: &mut Proc, what: &str, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        proc.check_alive()?;
        if ready().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "{} did not become ready ({what}) within {READY_TIMEOUT:?}:\n{}",
        proc.name,
        proc.log_tail()
    )
}

/// A Redis server of our own (never the machine's shared one).
pub async fn start_redis(dir: &Path) -> anyhow::Result<(Proc, u16)> {
    start_redis_with(dir, &[]).await
}

/// A Redis server of our own with more arguments (`--replicaof`, say), in a directory of its
/// own under `dir`.
pub async fn start_redis_with(dir: &Path, extra: &[String]) -> anyhow::Result<(Proc, u16)> {
    let port = free_port()?;
    let dir = dir.join(format!("redis-{port}"));
    std::fs::create_dir_all(&dir)?;
    let dir = dir.as_path();
    let mut cmd = Command::new("redis-server");
    // The append-only file is on, as the deployment guide configures it; snapshots are off.
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "yes", "--dir"])
        .arg(dir)
        .args(["--daemonize", "no", "--logfile", ""])
        .args(extra)
        .stdout(Stdio::null());
    let mut proc = Proc::spawn(&format!("redis-{port}"), cmd, dir)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until(&mut proc, "PING", || async move {
        let ping = async {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(b"PING\r\n").await?;
            let mut buf = [0u8; 7];
            s.read_exact(&mut buf).await?;
            anyhow::Ok(&buf == b"+PONG\r\n")
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), ping).await,
            Ok(Ok(true))
        )
    })
    .await?;
    Ok((proc, port))
}

/// A Redis Cluster of `masters` masters and no replicas, each a Redis server of our own under
/// `dir`; returns them once every one reports the cluster's state `ok`.
pub async fn start_redis_cluster(dir: &Path, masters: usize) -> anyhow::Result<Vec<(Proc, u16)>> {
    let mut shards = Vec::with_capacity(masters);
    for _ in 0..masters {
        let cluster = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ];
        let args: Vec<String> = cluster.iter().map(|a| (*a).to_owned()).collect();
        shards.push(start_redis_with(dir, &args).await?);
    }
    let mut create = Command::new("redis-cli");
    create.arg("--cluster").arg("create");
    for (_, port) in &shards {
        create.arg(format!("127.0.0.1:{port}"));
    }
    let out = create
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "redis-cli --cluster create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + READY_TIMEOUT;
    for (_, port) in &shards {
        loop {
            let info = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "cluster", "info"])
                .output()
                .await?;
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the Redis Cluster never became ok"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(shards)
}

/// How many times the Redis on `port` ran `command` since it started, scripts' calls included
/// (`INFO commandstats`); `None` if it does not answer.
pub async fn command_calls(port: u16, command: &str) -> Option<u64> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "info", "commandstats"])
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("cmdstat_{command}:calls=");
    match text.lines().find_map(|l| l.strip_prefix(&prefix)) {
        Some(rest) => rest.split(',').next()?.trim().parse().ok(),
        // Never run: Redis lists only the commands it ran.
        None => out.status.success().then_some(0),
    }
}

/// The Redis adapter variant of the Socket.IO baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Adapter {
    /// `createAdapter`: every node pattern-subscribes to every broadcast.
    Classic,
    /// `createShardedAdapter`: one Redis 7 sharded channel per room.
    Sharded,
}

impl Adapter {
    fn flag(self) -> &'static str {
        match self {
            Adapter::Classic => "classic",
            Adapter::Sharded => "sharded",
        }
    }
}

/// Installs the baseline's pinned dependencies (`npm ci`).
pub async fn npm_ci(dir: &Path) -> anyhow::Result<()> {
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .await
        .context("run npm ci")?;
    if !status.success() {
        bail!("npm ci in {} failed ({status})", dir.display());
    }
    Ok(())
}

/// One Socket.IO node; ready when it prints `ready`.
pub async fn start_socketio(
    dir: &Path,
    listen: SocketAddr,
    redis_port: Option<u16>,
    adapter: Adapter,
    log_dir: &Path,
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new("node");
    cmd.arg("server.js")
        .current_dir(dir)
        .args(["--listen", &listen.to_string()])
        .stdout(Stdio::piped());
    if let Some(port) = redis_port {
        cmd.args(["--redis-url", &format!("redis://127.0.0.1:{port}")])
            .args(["--adapter", adapter.flag()]);
    }
    let proc = Proc::spawn(&format!("socketio-{}", listen.port()), cmd, log_dir)?;
    ready_line(proc).await
}

/// Waits for the `ready` line a process prints on its piped standard output.
async fn ready_line(mut proc: Proc) -> anyhow::Result<Proc> {
    let stdout = proc.child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(READY_TIMEOUT, lines.next_line())
        .await
        .ok()
        .and_then(|l| l.ok().flatten());
    if !line.as_deref().is_some_and(|l| l.starts_with("ready")) {
        proc.check_alive()?;
        bail!("{} did not print ready:\n{}", proc.name, proc.log_tail());
    }
    // Keep draining stdout so the node never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(proc)
}

/// How the floor spreads its connections over threads (its `--runtime` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum FloorRuntime {
    /// A current-thread runtime per core, each with its own `SO_REUSEPORT` listener.
    PerCore,
    /// One multi-thread runtime.
    Multi,
}

impl FloorRuntime {
    fn flag(self) -> &'static str {
        match self {
            FloorRuntime::PerCore => "per-core",
            FloorRuntime::Multi => "multi",
        }
    }

    /// The deployment's description in the report.
    pub fn mode(self) -> &'static str {
        match self {
            FloorRuntime::PerCore => "per-core runtimes",
            FloorRuntime::Multi => "multi-thread runtime",
        }
    }
}

/// The floor; ready when it prints `ready`.
pub async fn start_floor(
    bin: &Path,
    listen: SocketAddr,
    runtime: FloorRuntime,
    log_dir: &Path,
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", &listen.to_string()])
        .args(["--runtime", runtime.flag()])
        .stdout(Stdio::piped());
    let proc = Proc::spawn(&format!("floor-{}", listen.port()), cmd, log_dir)?;
    ready_line(proc).await
}

/// One Kokuban node, with `extra` arguments; ready when `/readyz` answers 200.
pub async fn start_kokuban(
    bin: &Path,
    listen: SocketAddr,
    data_dir: &Path,
    redis_port: Option<u16>,
    node_id: &str,
    log_dir: &Path,
    extra: &[String],
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(bin);
    cmd.args(extra);
    cmd.args(["--listen", &listen.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--node-id", node_id])
        // The benchmarks create thousands of rooms from one address.
        .args(["--rooms-per-ip-per-min", "0"])
        // Warnings only: logging every connection would charge the server for the
        // benchmark's own bookkeeping (the baseline logs nothing either).
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null());
    if let Some(port) = redis_port {
        cmd.args(["--redis-url", &format!("redis://127.0.0.1:{port}")]);
    }
    let mut proc = Proc::spawn(&format!("kokuban-{}", listen.port()), cmd, log_dir)?;
    wait_until(&mut proc, "GET /readyz", || async move {
        crate::http::request(listen, "GET", "/readyz")
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await?;
    Ok(proc)
}
