//! The whole benchmark: every scenario on Kokuban, the floor and the Socket.IO baseline, in
//! one run, sized to finish within about half an hour on a two-core machine.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::acks::{self, AcksResult};
use crate::holds::{self, HoldsResult};
use crate::join::{self, JoinResult};
use crate::joinstorm::{self, JoinStormResult};
use crate::pentrace::{self, BytesPerPoint};
use crate::procfs::{self, Machine};
use crate::procs::{self, Adapter, FloorRuntime};
use crate::scenario::{Deployment, Load, Programs, RunResult};
use crate::shards::{self, ShardsResult};
use crate::sweep::{Runner, Setup};
use crate::syscalls::Perf;
use crate::targets::{self, Ratios};

pub use crate::sweep::P99_LIMIT_MS;

mod setup;
mod sizes;

use setup::{build, commit, probe_kokuban, versions};
use sizes::Sizes;

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
    /// Use this `kokuban-floor` binary instead of building one.
    pub floor_bin: Option<PathBuf>,
}

/// The floor's runtime in the sweeps and scenarios: one current-thread runtime per core
/// writes each member once per scheduler tick, so as the load grows a write carries several
/// frames; the multi-thread runtime writes every frame as it is read (a task may move between
/// threads, so it cannot leave a per-thread batch behind), which in one-to-many rooms costs it
/// more writes and more latency.
pub const FLOOR_RUNTIME: FloorRuntime = FloorRuntime::PerCore;
/// The floor's other runtime, run where Kokuban is compared with the floor.
pub const FLOOR_OTHER_RUNTIME: FloorRuntime = FloorRuntime::Multi;

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
    /// The relay sweeps' first steps (each is refined near its limit).
    pub relay_steps: Vec<usize>,
    /// Near a limit, consecutive relay steps are at most this ratio apart.
    pub step_ratio: f64,
    /// Whether system calls were counted (`perf` with syscall tracepoints).
    pub syscalls_counted: bool,
    /// The floor's runtime in the sweeps and scenarios ([`FLOOR_RUNTIME`]).
    pub floor_runtime: FloorRuntime,
    /// What was skipped or failed, and why.
    pub notes: Vec<String>,
    /// Relay sweeps (and the sharded-adapter run), per system and mode.
    pub relay: Vec<RunResult>,
    /// The floor with its other runtime at the loads Kokuban is compared with it at; the
    /// comparison takes the cheaper of the two there.
    pub floor_variants: Vec<RunResult>,
    /// One room, one editor, many viewers.
    pub fanout: Vec<RunResult>,
    /// Everyone moving their cursor.
    pub presence: Vec<RunResult>,
    /// One room where everyone draws.
    pub big_room: Vec<RunResult>,
    /// Idle connections on one node.
    pub idle: Vec<RunResult>,
    /// Joining a board of a million points.
    pub join: Vec<JoinResult>,
    /// Many clients joining a large board at once.
    pub join_storm: Vec<JoinStormResult>,
    /// What an Ack costs beyond delivery, per deployment.
    pub acks: Vec<AcksResult>,
    /// Memory under holding attacks (single node).
    pub holds: Vec<HoldsResult>,
    /// Bytes per point of a pen trace.
    pub pen: Option<BytesPerPoint>,
    /// The relay on a Redis Cluster beside one Redis.
    pub redis_cluster: Option<ShardsResult>,
    /// The ratios and targets computed from all of the above.
    #[serde(flatten)]
    pub ratios: Ratios,
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
    let (kokuban, floor) = build(opts, &mut notes).await;
    let perf = match Perf::probe().await {
        Ok(p) => Some(p),
        Err(e) => {
            notes.push(format!(
                "System calls were not counted: `perf stat` cannot count the syscall tracepoints \
                 here ({}).",
                e.lines().next().unwrap_or_default()
            ));
            None
        }
    };
    let mut runner = Runner {
        programs: Programs {
            kokuban,
            socketio,
            floor,
        },
        perf,
        kokuban_coalescing: kokuban_server::Config::default().cursor_interval,
        notes,
    };
    let (kokuban_ok, cluster_ok) = probe_kokuban(&mut runner).await;
    let floor_ok = runner.programs.floor.is_some();
    let versions = versions(&opts.root, &runner.programs).await;
    let kokuban_setups = |both: [Option<Setup>; 2]| both.into_iter().flatten().collect::<Vec<_>>();
    let cluster = cluster_ok.then_some(Setup::KokubanCluster);
    let single = kokuban_ok.then_some(Setup::KokubanSingle);

    let floor_setup = floor_ok.then_some(Setup::Floor(FLOOR_RUNTIME));

    eprintln!("relay sweep");
    let mut relay = Vec::new();
    // The floor first: Kokuban also runs at the floor's capacity, to be compared there.
    let mut floor_cap = None;
    if let Some(f) = floor_setup {
        let runs = runner
            .sweep(
                f,
                &sizes.relay_steps,
                sizes.step_ratio,
                |n| sizes.relay(n),
                &[],
            )
            .await;
        floor_cap = runs
            .iter()
            .filter(|r| crate::sweep::within_limit(r))
            .map(|r| r.clients)
            .max();
        relay.extend(runs);
    }
    let kokuban_extra: Vec<usize> = floor_cap.into_iter().collect();
    // Both systems in both modes: two nodes sharing Redis (the deployment being compared), and
    // one node alone (what Redis and the second hop cost each of them).
    for (setup, extra) in [
        (Some(Setup::SocketIo(Some(Adapter::Classic))), &[][..]),
        (cluster, &kokuban_extra[..]),
        (Some(Setup::SocketIo(None)), &[][..]),
        (single, &kokuban_extra[..]),
    ] {
        let Some(setup) = setup else { continue };
        let runs = runner
            .sweep(
                setup,
                &sizes.relay_steps,
                sizes.step_ratio,
                |n| sizes.relay(n),
                extra,
            )
            .await;
        relay.extend(runs);
    }
    eprintln!("sharded adapter");
    relay.extend(
        runner
            .each(
                &[Setup::SocketIo(Some(Adapter::Sharded))],
                &sizes.relay(sizes.sharded_clients),
            )
            .await,
    );

    // The floor is the cheaper of its runtimes: the other one also runs the loads the targets
    // compare at.
    let mut floor_variants = Vec::new();
    if floor_ok {
        eprintln!("the floor's other runtime");
        let mut loads = vec![targets::REFERENCE_CLIENTS];
        loads.extend(floor_cap.filter(|&c| c != targets::REFERENCE_CLIENTS));
        for n in loads {
            let other = Setup::Floor(FLOOR_OTHER_RUNTIME);
            floor_variants.extend(runner.each(&[other], &sizes.relay(n)).await);
        }
    }

    eprintln!("fan-out");
    let mut setups = vec![Setup::SocketIo(Some(Adapter::Classic))];
    setups.extend(kokuban_setups([cluster, single]));
    setups.extend(floor_setup);
    let fanout = runner.each(&setups, &sizes.fanout()).await;

    eprintln!("presence storm");
    let mut setups = vec![Setup::SocketIo(None)];
    setups.extend(kokuban_setups([single, cluster]));
    setups.extend(floor_setup);
    let presence = runner.each(&setups, &sizes.presence()).await;

    eprintln!("big room");
    let big_room = runner.each(&setups, &sizes.big_room()).await;

    eprintln!("idle connections");
    let mut setups = vec![Setup::SocketIo(None)];
    setups.extend(single);
    let idle = runner.each(&setups, &sizes.idle()).await;

    eprintln!("join");
    let mut join_results = Vec::new();
    let mut join_storm = Vec::new();
    for setup in kokuban_setups([single, cluster]) {
        let run = async {
            let dep = setup.start(&runner.programs, 2).await?;
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
            Err(e) => runner.notes.push(format!("join {setup:?} failed: {e:#}")),
        }
        let storm = async {
            let dep = setup.start(&runner.programs, 2).await?;
            let r = joinstorm::run(&dep, sizes.storm_board_bytes, sizes.storm_joiners).await;
            dep.stop().await;
            r
        };
        match storm.await {
            Ok(r) => {
                eprintln!(
                    "  join storm ({}): {} joiners, board of {} bytes: Welcome p99 {:.0} ms, ready p99 {:.0} ms, peak RSS {:?}",
                    r.mode, r.joiners, r.board_bytes, r.welcome_ms.p99, r.ready_ms.p99, r.peak_rss
                );
                join_storm.push(r);
            }
            Err(e) => runner
                .notes
                .push(format!("join storm {setup:?} failed: {e:#}")),
        }
    }
    runner.notes.push(
        "The Socket.IO baseline and the floor have no board state, so the join, join-storm and \
         bytes-per-point scenarios measure Kokuban only."
            .into(),
    );

    eprintln!("what an Ack costs");
    let mut acks_results = Vec::new();
    if let Some(bin) = runner.programs.kokuban.clone().filter(|_| kokuban_ok) {
        for (nodes, cluster, replicas) in [(1, false, 0), (2, true, 0), (2, true, 1)] {
            if cluster && !cluster_ok {
                continue;
            }
            let run = async {
                let dep = Deployment::kokuban_with(&bin, nodes, cluster, replicas).await?;
                let r = acks::run(&dep, sizes.ack_ops).await;
                dep.stop().await;
                r
            };
            match run.await {
                Ok(r) => {
                    eprintln!(
                        "  acks ({}): Ack p50 {:.2} ms p99 {:.2} ms; seen p50 {:.2} ms p99 {:.2} ms",
                        r.mode, r.ack_ms.p50, r.ack_ms.p99, r.seen_ms.p50, r.seen_ms.p99
                    );
                    acks_results.push(r);
                }
                Err(e) => runner.notes.push(format!(
                    "the Ack scenario ({nodes} node(s), {replicas} replica(s)) failed: {e:#}"
                )),
            }
        }
    }

    eprintln!("holding attacks");
    let mut holds_results = Vec::new();
    if let Some(bin) = runner.programs.kokuban.clone().filter(|_| kokuban_ok) {
        let run = async {
            let dep = Deployment::kokuban(&bin, 1, false).await?;
            let r = holds::run(
                &dep,
                sizes.hold_board_bytes,
                sizes.hold_joiners,
                sizes.hold_holders,
                64 * 1024,
            )
            .await;
            dep.stop().await;
            r
        };
        match run.await {
            Ok(h) => {
                eprintln!(
                    "  stalled joiners: {} B each after the first; fragment hold: {} of {} closed after {:.1} s",
                    h.per_extra_stalled_joiner,
                    h.fragment_closed,
                    h.fragment_holders,
                    h.fragment_closed_after_s
                );
                holds_results.push(h);
            }
            Err(e) => runner
                .notes
                .push(format!("the holding attacks failed: {e:#}")),
        }
    }

    eprintln!("bytes per point");
    let mut pen = None;
    if let Some(setup) = single {
        let run = async {
            let dep = setup.start(&runner.programs, 1).await?;
            let r = pentrace::run(&dep, sizes.pen_strokes).await;
            dep.stop().await;
            r
        };
        match run.await {
            Ok(p) => {
                eprintln!(
                    "  {} points in {} batches: {:.2} B/point up, {:.2} down, {:.2} at rest",
                    p.points, p.batches, p.upstream, p.downstream, p.at_rest
                );
                pen = Some(p);
            }
            Err(e) => runner.notes.push(format!("bytes per point failed: {e:#}")),
        }
    }

    let redis_cluster = if cluster_ok {
        eprintln!("on a Redis Cluster");
        let loads: Vec<Load> = sizes.shard_loads.iter().map(|&n| sizes.relay(n)).collect();
        let mut result = shards::run(&mut runner, &loads).await;
        result.commit = commit(&opts.root).await;
        Some(result)
    } else {
        None
    };

    let mut results = Results {
        quick: opts.quick,
        duration_s: started.elapsed().as_secs_f64(),
        started_unix,
        machine,
        versions,
        open_file_limit,
        relay_steps: sizes.relay_steps.clone(),
        step_ratio: sizes.step_ratio,
        syscalls_counted: runner.perf.is_some(),
        floor_runtime: FLOOR_RUNTIME,
        notes: runner.notes,
        relay,
        floor_variants,
        fanout,
        presence,
        big_room,
        idle,
        join: join_results,
        join_storm,
        acks: acks_results,
        holds: holds_results,
        pen,
        redis_cluster,
        ratios: Ratios::default(),
    };
    results.ratios = targets::compute(&results);
    crate::report::write(&opts.out, &results)?;
    if let Some(rc) = &results.redis_cluster {
        shards::write_runs(&opts.out, rc)?;
    }
    Ok(results)
}

/// Only the Redis Cluster comparison: replaces its section of the BENCHMARKS.md under
/// `opts.out` and writes its runs to `bench/redis-cluster.json` there.
pub async fn redis_cluster_only(opts: &Options) -> anyhow::Result<ShardsResult> {
    crate::net::raise_open_file_limit();
    let sizes = Sizes::new(opts.quick);
    let mut notes = Vec::new();
    let (kokuban, _) = build(opts, &mut notes).await;
    anyhow::ensure!(kokuban.is_some(), "no kokuban binary: {}", notes.join("; "));
    let mut runner = Runner {
        programs: Programs {
            kokuban,
            socketio: opts.root.join("bench").join("socketio"),
            floor: None,
        },
        perf: Perf::probe().await.ok(),
        kokuban_coalescing: kokuban_server::Config::default().cursor_interval,
        notes,
    };
    let loads: Vec<Load> = sizes.shard_loads.iter().map(|&n| sizes.relay(n)).collect();
    let mut result = shards::run(&mut runner, &loads).await;
    result.commit = commit(&opts.root).await;
    for n in &runner.notes {
        eprintln!("note: {n}");
    }
    anyhow::ensure!(!result.runs.is_empty(), "every run failed");
    shards::write(&opts.out, &result)?;
    Ok(result)
}
