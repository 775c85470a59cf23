//! The whole benchmark: every scenario on both systems, in one run, sized to finish within
//! fifteen minutes on a two-core machine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::process::Command;

use crate::join::{self, JoinResult};
use crate::procfs::{self, Machine};
use crate::procs::{self, Adapter};
use crate::scenario::{self, Deployment, Load, Programs, RunResult};

/// What `all` is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// BENCHMARKS.md goes here; results.json and the plots into `bench/` under it.
    pub out: PathBuf,
    /// The workspace root (for `bench/socketio` and building the server).
    pub root: PathBuf,
    /// A short run with small loads, for development; its figures are not the reference.
    pub quick: bool,
    /// Use this `kokuban` binary instead of building one.
    pub kokuban_bin: Option<PathBuf>,
}

/// The p99 above which a relay sweep stops: the load is beyond what the system serves.
pub const P99_LIMIT_MS: f64 = 50.0;

/// Everything measured in one run (written as `bench/results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// Quick (development) run or the reference run.
    pub quick: bool,
    /// Wall-clock length of the run, seconds.
    pub duration_s: f64,
    /// Seconds since the Unix epoch when it started.
    pub started_unix: u64,
    /// Where it ran.
    pub machine: Machine,
    /// Versions of everything measured.
    pub versions: Vec<(String, String)>,
    /// Open-file limit in force.
    pub open_file_limit: u64,
    /// Scenario parameters common to the relay runs.
    pub relay_steps: Vec<usize>,
    /// What was skipped or failed, and why.
    pub notes: Vec<String>,
    /// Relay sweeps (and the sharded-adapter run), per system and mode.
    pub relay: Vec<RunResult>,
    /// One room, one editor, many viewers.
    pub fanout: Vec<RunResult>,
    /// Idle connections on one node.
    pub idle: Vec<RunResult>,
    /// Joining a board of a million points.
    pub join: Vec<JoinResult>,
}

struct Sizes {
    relay_steps: Vec<usize>,
    warmup: Duration,
    measure: Duration,
    drain: Duration,
    fanout_viewers: usize,
    idle_connections: usize,
    idle_measure: Duration,
    join_points: u64,
    joins: usize,
    sharded_clients: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                relay_steps: vec![100, 200, 400],
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(2),
                drain: Duration::from_secs(1),
                fanout_viewers: 200,
                idle_connections: 2_000,
                idle_measure: Duration::from_secs(2),
                join_points: 100_000,
                joins: 3,
                sharded_clients: 100,
            }
        } else {
            Sizes {
                // Doubling steps: the step before the capacity step is half the capacity.
                relay_steps: vec![100, 200, 400, 800, 1600, 3200],
                warmup: Duration::from_secs(2),
                measure: Duration::from_secs(6),
                drain: Duration::from_secs(2),
                fanout_viewers: 1_000,
                idle_connections: 50_000,
                // Longer than one heartbeat round of both systems (Socket.IO pings every 25 s,
                // Kokuban every 15 s), so "CPU at rest" includes keeping the connections alive.
                idle_measure: Duration::from_secs(30),
                join_points: 1_000_000,
                joins: 5,
                sharded_clients: 400,
            }
        }
    }

    fn relay(&self, clients: usize) -> Load {
        Load {
            scenario: "relay".into(),
            rooms: clients / 10,
            room_size: 10,
            editors_per_room: 2,
            rate_hz: 60.0,
            batch_bytes: (64, 128),
            warmup: self.warmup,
            measure: self.measure,
            drain: self.drain,
        }
    }

    fn fanout(&self) -> Load {
        Load {
            scenario: "fanout".into(),
            rooms: 1,
            room_size: self.fanout_viewers + 1,
            editors_per_room: 1,
            ..self.relay(10)
        }
    }

    fn idle(&self) -> Load {
        Load {
            scenario: "idle".into(),
            rooms: self.idle_connections / 10,
            room_size: 10,
            editors_per_room: 0,
            warmup: Duration::from_secs(2),
            measure: self.idle_measure,
            drain: Duration::ZERO,
            ..self.relay(10)
        }
    }
}

/// A deployment the plan can start again for every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    KokubanCluster,
    KokubanSingle,
    SocketIo(Option<Adapter>),
}

impl Setup {
    async fn start(self, programs: &Programs, nodes: usize) -> anyhow::Result<Deployment> {
        match self {
            Setup::KokubanCluster | Setup::KokubanSingle => {
                let bin = programs.kokuban.as_ref().context("no kokuban binary")?;
                let cluster = self == Setup::KokubanCluster;
                Deployment::kokuban(bin, if cluster { nodes } else { 1 }, cluster).await
            }
            Setup::SocketIo(adapter) => {
                let n = if adapter.is_some() { nodes } else { 1 };
                Deployment::socketio(&programs.socketio, n, adapter).await
            }
        }
    }
}

/// One run on a fresh deployment (fresh processes: memory figures do not inherit the previous
/// run's garbage, and a crashed run does not poison the next).
async fn once(programs: &Programs, setup: Setup, load: &Load) -> anyhow::Result<RunResult> {
    let mut dep = setup.start(programs, 2).await?;
    let started = Instant::now();
    let result = scenario::run(&mut dep, load).await;
    dep.stop().await;
    let r = result?;
    eprintln!(
        "  {} {} ({}): {} clients, {:.0} msg/s delivered, p50 {:.2} ms, p99 {:.2} ms, \
         server CPU {:.1} us/msg, lost {} dup {} reordered {}, errors {} [{:.0} s]",
        r.system.name(),
        load.scenario,
        r.mode,
        r.connected,
        r.delivered_per_s,
        r.latency.p50_ms,
        r.latency.p99_ms,
        r.server_cpu_us_per_msg.unwrap_or(0.0),
        r.lost,
        r.duplicates,
        r.reordered,
        r.errors,
        started.elapsed().as_secs_f64()
    );
    Ok(r)
}

async fn sweep(
    programs: &Programs,
    setup: Setup,
    sizes: &Sizes,
    notes: &mut Vec<String>,
) -> Vec<RunResult> {
    let mut out = Vec::new();
    for &n in &sizes.relay_steps {
        match once(programs, setup, &sizes.relay(n)).await {
            Ok(r) => {
                let over = r.latency.p99_ms > P99_LIMIT_MS || r.connected < r.clients;
                out.push(r);
                if over {
                    break;
                }
            }
            Err(e) => {
                notes.push(format!("relay {setup:?} at {n} clients failed: {e:#}"));
                break;
            }
        }
    }
    out
}

/// Runs everything and writes the report.
pub async fn all(opts: &Options) -> anyhow::Result<Results> {
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let machine = procfs::machine();
    let open_file_limit = crate::net::raise_open_file_limit();
    let mut sizes = Sizes::new(opts.quick);
    let mut notes = Vec::new();
    // Each idle connection holds a descriptor in the generator and one in the server; stay a
    // little under the limit for the processes' own files and Redis connections.
    let fd_room = (open_file_limit.saturating_sub(1_000) as usize) / 10 * 10;
    if fd_room < sizes.idle_connections {
        notes.push(format!(
            "Idle connections were capped at {fd_room} (asked {}): the open-file limit is \
             {open_file_limit} and could not be raised here, and every connection needs a \
             descriptor in the server and one in the load generator.",
            sizes.idle_connections
        ));
        sizes.idle_connections = fd_room;
    }

    let socketio = opts.root.join("bench").join("socketio");
    eprintln!("installing the Socket.IO baseline (npm ci)");
    procs::npm_ci(&socketio).await?;
    let kokuban = match &opts.kokuban_bin {
        Some(b) => Some(b.clone()),
        None => match build_kokuban(&opts.root).await {
            Ok(b) => Some(b),
            Err(e) => {
                notes.push(format!(
                    "Kokuban was not measured: the server did not build ({e:#})"
                ));
                None
            }
        },
    };
    let mut programs = Programs { kokuban, socketio };
    let (kokuban_ok, cluster_ok) = probe_kokuban(&mut programs, &mut notes).await;
    let versions = versions(&opts.root, &programs).await;

    let mut relay = Vec::new();
    let mut fanout = Vec::new();
    let mut idle = Vec::new();
    let mut join_results = Vec::new();

    eprintln!("relay sweep");
    // Both systems in both modes: two nodes sharing Redis (the deployment being compared), and
    // one node alone (what Redis and the second hop cost each of them).
    let setups = [
        Some(Setup::SocketIo(Some(Adapter::Classic))),
        cluster_ok.then_some(Setup::KokubanCluster),
        Some(Setup::SocketIo(None)),
        kokuban_ok.then_some(Setup::KokubanSingle),
    ];
    for setup in setups.into_iter().flatten() {
        relay.extend(sweep(&programs, setup, &sizes, &mut notes).await);
    }
    eprintln!("sharded adapter");
    match once(
        &programs,
        Setup::SocketIo(Some(Adapter::Sharded)),
        &sizes.relay(sizes.sharded_clients),
    )
    .await
    {
        Ok(r) => relay.push(r),
        Err(e) => notes.push(format!("Socket.IO with the sharded adapter failed: {e:#}")),
    }

    eprintln!("fan-out");
    let kokuban_fanout = if cluster_ok {
        Some(Setup::KokubanCluster)
    } else if kokuban_ok {
        notes.push("Fan-out ran Kokuban on a single node: cluster mode is not available.".into());
        Some(Setup::KokubanSingle)
    } else {
        None
    };
    for setup in [
        Some(Setup::SocketIo(Some(Adapter::Classic))),
        kokuban_fanout,
    ]
    .into_iter()
    .flatten()
    {
        match once(&programs, setup, &sizes.fanout()).await {
            Ok(r) => fanout.push(r),
            Err(e) => notes.push(format!("fan-out {setup:?} failed: {e:#}")),
        }
    }

    eprintln!("idle connections");
    let kokuban_idle = kokuban_ok.then_some(Setup::KokubanSingle);
    for setup in [Some(Setup::SocketIo(None)), kokuban_idle]
        .into_iter()
        .flatten()
    {
        match once(&programs, setup, &sizes.idle()).await {
            Ok(r) => idle.push(r),
            Err(e) => notes.push(format!("idle {setup:?} failed: {e:#}")),
        }
    }

    eprintln!("join");
    let join_setups = [
        kokuban_ok.then_some(Setup::KokubanSingle),
        cluster_ok.then_some(Setup::KokubanCluster),
    ];
    for setup in join_setups.into_iter().flatten() {
        let run = async {
            let dep = setup.start(&programs, 2).await?;
            let r = join::run(&dep, sizes.join_points, sizes.joins).await;
            dep.stop().await;
            r
        };
        match run.await {
            Ok(r) => {
                eprintln!(
                    "  join ({}): {} points drawn in {:.2} s; Welcome of {} bytes in {:.1} ms (median)",
                    r.mode, r.points, r.upload_s, r.welcome_bytes, r.welcome_median_ms
                );
                join_results.push(r);
            }
            Err(e) => notes.push(format!("join {setup:?} failed: {e:#}")),
        }
    }
    notes.push(
        "The Socket.IO baseline has no board state, so the join scenario measures Kokuban only."
            .into(),
    );

    let results = Results {
        quick: opts.quick,
        duration_s: started.elapsed().as_secs_f64(),
        started_unix,
        machine,
        versions,
        open_file_limit,
        relay_steps: sizes.relay_steps.clone(),
        notes,
        relay,
        fanout,
        idle,
        join: join_results,
    };
    crate::report::write(&opts.out, &results)?;
    Ok(results)
}

/// Builds the server with the same cargo that built this tool; the binary lands next to ours.
async fn build_kokuban(root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the kokuban server (release)");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "kokuban-server",
            "--bin",
            "kokuban",
        ])
        .current_dir(root)
        .stdout(Stdio::null())
        .status()
        .await
        .context("run cargo build")?;
    anyhow::ensure!(
        status.success(),
        "cargo build -p kokuban-server failed ({status})"
    );
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("kokuban");
    anyhow::ensure!(bin.exists(), "{} not found after the build", bin.display());
    Ok(bin)
}

/// Checks that the server starts and relays, alone and in a cluster; a mode that does not is
/// skipped with a note rather than measured wrongly.
async fn probe_kokuban(programs: &mut Programs, notes: &mut Vec<String>) -> (bool, bool) {
    if programs.kokuban.is_none() {
        return (false, false);
    }
    let probe = Load {
        scenario: "probe".into(),
        rooms: 1,
        room_size: 2,
        editors_per_room: 2,
        rate_hz: 30.0,
        batch_bytes: (64, 128),
        warmup: Duration::from_millis(200),
        measure: Duration::from_millis(500),
        drain: Duration::from_millis(500),
    };
    let check = async |setup: Setup| -> Result<(), String> {
        let r = once(programs, setup, &probe)
            .await
            .map_err(|e| format!("{e:#}"))?;
        if r.delivered == 0 || r.lost > 0 || r.errors > 0 {
            return Err(format!(
                "a two-member room did not relay cleanly (delivered {}, lost {}, errors {}: {})",
                r.delivered,
                r.lost,
                r.errors,
                r.first_error.unwrap_or_default()
            ));
        }
        Ok(())
    };
    let single = check(Setup::KokubanSingle).await;
    if let Err(e) = &single {
        notes.push(format!(
            "Kokuban was not measured: a single node did not work: {e}"
        ));
        programs.kokuban = None;
        return (false, false);
    }
    let cluster = check(Setup::KokubanCluster).await;
    if let Err(e) = &cluster {
        notes.push(format!(
            "Kokuban cluster mode was not measured (single node only): {e}"
        ));
    }
    (true, cluster.is_ok())
}

async fn command_version(program: &str, arg: &str) -> String {
    match Command::new(program).arg(arg).output().await {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Err(_) => "not found".into(),
    }
}

fn npm_package_version(dir: &Path, package: &str) -> String {
    let path = dir.join("node_modules").join(package).join("package.json");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("version")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

async fn versions(root: &Path, programs: &Programs) -> Vec<(String, String)> {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut v = vec![
        (
            "kokuban".to_string(),
            format!("{} (commit {commit})", env!("CARGO_PKG_VERSION")),
        ),
        ("rustc".into(), command_version("rustc", "--version").await),
        ("node".into(), command_version("node", "--version").await),
        (
            "redis-server".into(),
            command_version("redis-server", "--version").await,
        ),
    ];
    for p in [
        "socket.io",
        "@socket.io/redis-adapter",
        "redis",
        "engine.io",
        "ws",
    ] {
        v.push((p.to_string(), npm_package_version(&programs.socketio, p)));
    }
    v
}
