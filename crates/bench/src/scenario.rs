//! One measured run: a deployment of either system, a population of clients in rooms, a
//! warm-up, a measured window, a drain, and the figures.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::clients::{self, ClientReport, ClientSpec, Hists, Phase, RoomRef, Schedule, Shared};
use crate::net::SourceAddrs;
use crate::procfs;
use crate::profile::{self, Profile};
use crate::stats::Summary;
use crate::syscalls::{Counts, Perf};

pub use crate::deployment::{Deployment, Programs};

mod tally;

use tally::{cursor_figures, tally};

/// Which system a deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum System {
    /// Kokuban.
    Kokuban,
    /// The Socket.IO baseline.
    SocketIo,
    /// The floor: the cheapest relay of the same frames (`kokuban-floor`).
    Floor,
}

impl System {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            System::Kokuban => "Kokuban",
            System::SocketIo => "Socket.IO",
            System::Floor => "Floor",
        }
    }
}

/// The shape of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    /// Scenario name, e.g. "relay".
    pub scenario: String,
    /// Rooms.
    pub rooms: usize,
    /// Members per room.
    pub room_size: usize,
    /// Editors per room (the first members); the others watch.
    pub editors_per_room: usize,
    /// Batches per second per editor.
    pub rate_hz: f64,
    /// Batches of a stroke before the editor ends it and begins the next.
    pub stroke_batches: u32,
    /// Cursor moves per second of every member (0: cursors stay still).
    pub cursor_hz: f64,
    /// Payload size range of a batch, in bytes.
    pub batch_bytes: (usize, usize),
    /// Sending before measuring.
    #[serde(serialize_with = "as_secs")]
    pub warmup: Duration,
    /// The measured window.
    #[serde(serialize_with = "as_secs")]
    pub measure: Duration,
    /// Sending on after the window while the server's system calls are counted (zero: not
    /// counted).
    #[serde(serialize_with = "as_secs")]
    pub syscall_window: Duration,
    /// Sending on after the system calls were counted while `perf record` samples the servers
    /// (zero: no profile).
    #[serde(serialize_with = "as_secs")]
    pub profile_window: Duration,
    /// Waiting for late deliveries after the last send.
    #[serde(serialize_with = "as_secs")]
    pub drain: Duration,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Load {
    /// Total clients.
    pub fn clients(&self) -> usize {
        self.rooms * self.room_size
    }
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// System.
    pub system: System,
    /// Deployment mode.
    pub mode: String,
    /// Server nodes.
    pub nodes: usize,
    /// The load.
    pub load: Load,
    /// Clients asked for.
    pub clients: usize,
    /// Clients that joined.
    pub connected: usize,
    /// The first join failure, if any.
    pub connect_error: Option<String>,
    /// Length of the measured window, seconds.
    pub window_s: f64,
    /// Batches sent in the window.
    pub sent: u64,
    /// Deliveries of those batches that should happen (sent × other members).
    pub expected: u64,
    /// Deliveries that happened (distinct).
    pub delivered: u64,
    /// Delivered per second.
    pub delivered_per_s: f64,
    /// Expected deliveries that had not happened by the end of the drain.
    pub lost: u64,
    /// Batches sent in the window that the server refused to their authors with an error
    /// frame (the room read-only for a moment, its store or Redis behind): never applied, so
    /// neither expected nor lost. A real client keeps them and sends them again.
    pub refused: u64,
    /// Deliveries of a batch a member already had.
    pub duplicates: u64,
    /// Deliveries after a later batch of the same editor.
    pub reordered: u64,
    /// Seqs skipped (Kokuban).
    pub seq_gaps: u64,
    /// Seqs that went backwards or repeated (Kokuban).
    pub seq_backwards: u64,
    /// Error frames, failed sends, unexpected closes.
    pub errors: u64,
    /// The first of them.
    pub first_error: Option<String>,
    /// Latency of every delivery.
    pub latency: Summary,
    /// Latency when sender and receiver are on the same node.
    pub latency_same_node: Summary,
    /// Latency when they are on different nodes.
    pub latency_cross_node: Summary,
    /// CPU seconds of the server nodes in the window.
    pub server_cpu_s: f64,
    /// Server CPU as a percentage of one core.
    pub server_cpu_pct: f64,
    /// Server CPU per delivered message (point batch or cursor update), microseconds.
    pub server_cpu_us_per_msg: Option<f64>,
    /// The kernel's part of it (system time: sockets, waits, wake-ups), microseconds.
    pub server_sys_us_per_msg: Option<f64>,
    /// Context switches of the server processes per delivered message.
    pub server_switches_per_msg: Option<f64>,
    /// System calls of the server processes per delivered message (absent where `perf` cannot
    /// count them), counted in a window after the CPU window under the same load.
    pub server_syscalls_per_msg: Option<Counts>,
    /// System calls of Redis per delivered message.
    pub redis_syscalls_per_msg: Option<f64>,
    /// Where the servers' CPU went, sampled after the other windows under the same load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// The presence scenario's cursor figures.
    pub cursors: Option<CursorFigures>,
    /// CPU seconds of Redis in the window.
    pub redis_cpu_s: Option<f64>,
    /// Redis CPU per delivered message, microseconds.
    pub redis_cpu_us_per_msg: Option<f64>,
    /// On a Redis Cluster, the busiest master's CPU in the window over the masters' mean (1:
    /// the rooms' work is spread evenly; the masters' count: it all fell on one).
    pub redis_cpu_spread: Option<f64>,
    /// On a Redis Cluster, the messages the busiest master published (`SPUBLISH`: ops,
    /// presence, cursors) over the masters' mean, for the whole run.
    pub redis_ops_spread: Option<f64>,
    /// CPU of the load generator itself, percent of one core (it shares the machine).
    pub generator_cpu_pct: f64,
    /// CPU of the whole machine, percent of one core: servers, Redis, the generator, and
    /// whatever else ran on the machine during the window.
    pub machine_cpu_pct: f64,
    /// Server RSS (all nodes) before the clients connected.
    pub server_rss_before: u64,
    /// Server RSS at the end of the window.
    pub server_rss_after: u64,
    /// Redis RSS at the end of the window.
    pub redis_rss: Option<u64>,
    /// (after − before) / connected.
    pub rss_per_connection: Option<f64>,
    /// Distributions, for the plots.
    #[serde(skip)]
    pub hists: Option<Arc<Hists>>,
}

/// What the members saw of each other's cursors.
#[derive(Debug, Clone, Serialize)]
pub struct CursorFigures {
    /// Moves sent in the window (all members).
    pub sent: u64,
    /// Updates received of moves sent in the window (all members).
    pub delivered: u64,
    /// Delivered per second.
    pub delivered_per_s: f64,
    /// Deliveries the system would make if it relayed every move to every other member.
    pub every_move: u64,
    /// Deliveries its documented coalescing allows at most (one update per member per
    /// interval to each other member); equal to `every_move` for a system that does not
    /// coalesce.
    pub coalesced_ceiling: u64,
    /// The coalescing interval, milliseconds (absent: every move is relayed).
    pub coalescing_ms: Option<f64>,
    /// Pairs (receiver, mover) whose receiver never got the mover's last position.
    pub stale_pairs: u64,
    /// Pairs in all.
    pub pairs: u64,
    /// Receipt minus the send time of the position an update carries.
    pub latency: Summary,
    /// Time between consecutive updates of one mover at one receiver.
    pub gap: Summary,
}

/// Time allowed for `perf` to start before each of its windows.
const PERF_START: Duration = Duration::from_secs(1);

fn perf_start(syscalls: Duration, profile: Duration) -> Duration {
    let windows = u32::from(!syscalls.is_zero()) + u32::from(!profile.is_zero());
    PERF_START * windows
}

/// How many clients connect at once. Beyond this, connection storms only fill accept queues.
const CONNECT_CONCURRENCY: usize = 256;

/// Runs one load against a running deployment; with `perf`, also counts the servers' system
/// calls. `coalescing` is the cursor coalescing interval the system documents, if any.
pub async fn run(
    dep: &mut Deployment,
    load: &Load,
    perf: Option<&Perf>,
    coalescing: Option<Duration>,
) -> anyhow::Result<RunResult> {
    let (servers_before, _) = dep.sample();
    let k = dep.nodes.len();
    let rooms = make_rooms(dep, load.rooms).await?;
    let sources = SourceAddrs::default();
    let e = load.editors_per_room;
    let mut editor_node = Vec::new();
    let mut specs = Vec::with_capacity(load.clients());
    for (r, room) in rooms.iter().enumerate() {
        for m in 0..load.room_size {
            // Members alternate between nodes, so every room spans all nodes and editors sit on
            // different nodes: most deliveries cross nodes.
            let node = m % k;
            let editor = (m < e).then(|| {
                editor_node.push(node);
                (r * e + m) as u32
            });
            specs.push(ClientSpec {
                index: r * load.room_size + m,
                node,
                addr: dep.nodes[node],
                from: sources.next(),
                room: room.clone(),
                editor,
            });
        }
    }
    let shared = Arc::new(Shared::new(
        editor_node,
        load.batch_bytes,
        load.stroke_batches.max(1),
    ));
    let (phase_tx, phase_rx) = watch::channel(Phase::Wait);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for spec in specs {
        let (shared, phase, ready, permits) = (
            shared.clone(),
            phase_rx.clone(),
            ready_tx.clone(),
            permits.clone(),
        );
        tasks.spawn(async move {
            let permit = permits.acquire_owned().await;
            let joined = clients::join(spec).await;
            drop(permit);
            match joined {
                Ok(j) => {
                    let _ = ready.send(Ok(()));
                    Some(clients::run(j, shared, phase).await)
                }
                Err(err) => {
                    let _ = ready.send(Err(format!("{err:#}")));
                    None
                }
            }
        });
    }
    drop(ready_tx);

    // Everyone joins before anyone draws, so every member can receive every measured batch.
    let total = load.clients();
    let join_deadline = clients::JOIN_TIMEOUT + Duration::from_millis(total as u64 / 2);
    let mut connected = 0;
    let mut failed = 0;
    let mut connect_error = None;
    let joining = async {
        while connected + failed < total {
            let Some(r) = ready_rx.recv().await else {
                break;
            };
            match r {
                Ok(()) => connected += 1,
                Err(e) => {
                    failed += 1;
                    connect_error.get_or_insert(e);
                }
            }
        }
    };
    let _ = tokio::time::timeout(join_deadline, joining).await;
    dep.check_alive()?;
    if connected == 0 {
        phase_tx.send_replace(Phase::Stop);
        tasks.shutdown().await;
        bail!(
            "no client could join: {}",
            connect_error.unwrap_or_else(|| "timed out".into())
        );
    }

    // Let the join storm (presence fan-out, adapter subscriptions) settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let send_from_us = shared.now_us() + 200_000;
    let window_end_us = send_from_us + (load.warmup + load.measure).as_micros() as u64;
    let syscall_window = perf.map_or(Duration::ZERO, |_| load.syscall_window);
    let profile_window = perf.map_or(Duration::ZERO, |_| load.profile_window);
    let schedule = Schedule {
        send_from_us,
        window_start_us: send_from_us + load.warmup.as_micros() as u64,
        window_end_us,
        // Each `perf` window also needs time to start perf, so sending goes on that long past
        // them: the load never stops inside a window.
        send_until_us: window_end_us
            + (syscall_window + profile_window + perf_start(syscall_window, profile_window))
                .as_micros() as u64,
        rate_hz: load.rate_hz,
        cursor_hz: load.cursor_hz,
    };
    phase_tx.send_replace(Phase::Go(schedule));
    let at = |us: u64| tokio::time::Instant::from_std(shared.clock + Duration::from_micros(us));
    tokio::time::sleep_until(at(schedule.window_start_us)).await;
    let (s0, r0) = dep.sample();
    let masters0 = dep.redis_masters();
    let g0 = procfs::sample(std::process::id()).unwrap_or_default();
    let m0 = procfs::machine_cpu().unwrap_or_default();
    tokio::time::sleep_until(at(schedule.window_end_us)).await;
    let (s1, r1) = dep.sample();
    let masters1 = dep.redis_masters();
    let g1 = procfs::sample(std::process::id()).unwrap_or_default();
    let m1 = procfs::machine_cpu().unwrap_or_default();
    let calls = match perf {
        Some(perf) if !syscall_window.is_zero() => {
            let (servers, redis) = dep.pids();
            let pids: Vec<u32> = servers.iter().copied().chain(redis).collect();
            let counts = perf.count(&pids, syscall_window).await;
            Some((counts, servers.len()))
        }
        _ => None,
    };
    let profile = if profile_window.is_zero() {
        None
    } else {
        let (servers, _) = dep.pids();
        match profile::record(&servers, profile_window).await {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("  no profile: {e}");
                None
            }
        }
    };
    tokio::time::sleep_until(at(schedule.send_until_us)).await;
    tokio::time::sleep(load.drain).await;
    phase_tx.send_replace(Phase::Stop);

    let mut reports: Vec<ClientReport> = Vec::with_capacity(total);
    let collect = async {
        while let Some(r) = tasks.join_next().await {
            if let Ok(Some(r)) = r {
                reports.push(r);
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), collect)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    dep.check_alive()?;
    let redis_ops_spread = dep.published_spread().await;

    let window_s = load.measure.as_secs_f64();
    let hists = shared.histograms();
    let tally = tally(&reports, load);
    let server_cpu: f64 = s0
        .iter()
        .zip(&s1)
        .map(|(a, b)| procfs::cpu_between(*a, *b).as_secs_f64())
        .sum();
    let redis_cpu = r0
        .zip(r1)
        .map(|(a, b)| procfs::cpu_between(a, b).as_secs_f64());
    let redis_cpu_spread = (masters0.len() > 1 && masters0.len() == masters1.len())
        .then(|| {
            let each: Vec<f64> = masters0
                .iter()
                .zip(&masters1)
                .map(|(a, b)| procfs::cpu_between(*a, *b).as_secs_f64())
                .collect();
            let mean = each.iter().sum::<f64>() / each.len() as f64;
            let max = each.iter().copied().fold(0.0, f64::max);
            (mean > 0.0).then_some(max / mean)
        })
        .flatten();
    let server_sys: f64 = s0
        .iter()
        .zip(&s1)
        .map(|(a, b)| procfs::sys_between(*a, *b).as_secs_f64())
        .sum();
    let switches: u64 = s0
        .iter()
        .zip(&s1)
        .map(|(a, b)| b.context_switches.saturating_sub(a.context_switches))
        .sum();
    // Costs are per delivered message: point batches, and cursor updates where cursors move.
    let messages = tally.delivered + tally.cursor_delivered;
    let per_msg = |cpu: f64| (messages > 0).then(|| cpu * 1e6 / messages as f64);
    // Counts are per second of the syscall window; messages per second come from the window.
    let messages_per_s = messages as f64 / window_s;
    let (server_calls, redis_calls) = match &calls {
        Some((counts, n)) if messages_per_s > 0.0 => {
            // Every server counted, or no figure: a partial sum would look like a cheap server.
            let servers = counts[..*n]
                .iter()
                .copied()
                .collect::<Option<Vec<Counts>>>()
                .and_then(|all| {
                    all.into_iter().reduce(|mut sum, c| {
                        sum.add(&c);
                        sum
                    })
                });
            let redis = counts.get(*n).copied().flatten();
            (
                servers.map(|c| c.per(messages_per_s)),
                redis.map(|c| c.total / messages_per_s),
            )
        }
        _ => (None, None),
    };
    let cursors =
        (load.cursor_hz > 0.0).then(|| cursor_figures(&tally, &hists, window_s, coalescing));
    let rss_before: u64 = servers_before.iter().map(|s| s.rss_bytes).sum();
    let rss_after: u64 = s1.iter().map(|s| s.rss_bytes).sum();
    Ok(RunResult {
        system: dep.system,
        mode: dep.mode.clone(),
        nodes: k,
        load: load.clone(),
        clients: total,
        connected,
        connect_error,
        window_s,
        sent: tally.sent,
        expected: tally.expected,
        delivered: tally.delivered,
        delivered_per_s: tally.delivered as f64 / window_s,
        lost: tally.lost,
        refused: tally.refused,
        duplicates: tally.duplicates,
        reordered: tally.reordered,
        seq_gaps: tally.seq_gaps,
        seq_backwards: tally.seq_backwards,
        errors: tally.errors,
        first_error: tally.first_error,
        latency: hists.all.summary(),
        latency_same_node: hists.same_node.summary(),
        latency_cross_node: hists.cross_node.summary(),
        server_cpu_s: server_cpu,
        server_cpu_pct: server_cpu * 100.0 / window_s,
        server_cpu_us_per_msg: per_msg(server_cpu),
        server_sys_us_per_msg: per_msg(server_sys),
        server_switches_per_msg: per_msg(switches as f64).map(|v| v / 1e6),
        server_syscalls_per_msg: server_calls,
        redis_syscalls_per_msg: redis_calls,
        profile,
        cursors,
        redis_cpu_s: redis_cpu,
        redis_cpu_spread,
        redis_ops_spread,
        redis_cpu_us_per_msg: redis_cpu.and_then(per_msg),
        generator_cpu_pct: procfs::cpu_between(g0, g1).as_secs_f64() * 100.0 / window_s,
        machine_cpu_pct: procfs::machine_cpu_pct(
            m0,
            m1,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        ),
        server_rss_before: rss_before,
        server_rss_after: rss_after,
        redis_rss: r1.map(|r| r.rss_bytes),
        rss_per_connection: (connected > 0)
            .then(|| (rss_after as f64 - rss_before as f64) / connected as f64),
        hists: Some(Arc::new(hists)),
    })
}

/// How many rooms are created at once on Kokuban.
const ROOM_CREATION_CONCURRENCY: usize = 32;

async fn make_rooms(dep: &Deployment, n: usize) -> anyhow::Result<Vec<RoomRef>> {
    match dep.system {
        System::SocketIo => Ok((0..n)
            .map(|i| RoomRef::SocketIo(Arc::from(format!("room-{i}"))))
            .collect()),
        System::Floor => Ok((0..n)
            .map(|i| RoomRef::Floor(Arc::from(format!("room-{i}"))))
            .collect()),
        System::Kokuban => {
            let permits = Arc::new(Semaphore::new(ROOM_CREATION_CONCURRENCY));
            let mut set = JoinSet::new();
            for i in 0..n {
                let addr = dep.nodes[i % dep.nodes.len()];
                let permits = permits.clone();
                set.spawn(async move {
                    let _p = permits.acquire_owned().await;
                    (i, crate::http::create_room(addr).await)
                });
            }
            let mut rooms = vec![None; n];
            while let Some(r) = set.join_next().await {
                let (i, links) = r?;
                rooms[i] = Some(RoomRef::Kokuban(Arc::new(links.context("create room")?)));
            }
            Ok(rooms.into_iter().flatten().collect())
        }
    }
}

#[cfg(test)]
mod tests;
