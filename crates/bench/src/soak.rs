//! `kokuban-bench soak`: connections opening and closing continuously against one node, then
//! a check that the node went back to where it started.
//!
//! A leak that costs one file descriptor, one task or a few kilobytes per connection is
//! invisible in a benchmark of a few seconds and fatal after a week in production. The soak
//! makes thousands of short sessions of every kind a real client has (editors that draw and
//! leave cleanly, tabs closed mid-stroke, viewers, clients that stop reading, handshakes
//! abandoned half-way), moving over the rooms so that rooms are loaded, emptied, unloaded and
//! loaded again. Afterwards the node must come back to its baseline: no connection, no room
//! loaded, as many open file descriptors and live tasks as before the churn, and a resident
//! memory that stayed flat while the churn went on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kokuban_bench::http;
use kokuban_bench::net::SourceAddrs;
use kokuban_bench::procfs;
use kokuban_bench::procs::{self, Proc};
use rand::Rng;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

mod session;

use session::client_loop;

/// Rooms in use at any moment. The window moves on by half its width every
/// [`WINDOW_STEP`], so each room is busy for a while, then empty long enough to be unloaded
/// (the server keeps an empty room for 30 s), then loaded again when the window comes back.
const WINDOW: usize = 8;
/// See [`WINDOW`].
const WINDOW_STEP: Duration = Duration::from_secs(10);

/// One editor session in this many ends by clearing the board, which keeps the boards (and
/// so the memory a loaded room needs) about the same size for the whole run.
const CLEAR_ONE_IN: u32 = 10;

/// How often the node's figures are sampled during the churn.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The resident memory is compared with its value this far into the churn, once allocator
/// pools, buffers and caches have grown to the load's working size.
const RSS_REFERENCE_AT: Duration = Duration::from_secs(60);

/// Longest a single session may take; one that hangs longer is a failure.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);

/// Share of sessions allowed to fail (a refused or timed-out connection on a loaded machine)
/// before the run is called failed.
const MAX_FAILED_SHARE: f64 = 0.01;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `kokuban` binary.
    pub kokuban_bin: PathBuf,
    /// How long connections churn.
    pub churn: Duration,
    /// Rooms the clients move over.
    pub rooms: usize,
    /// Clients connected at once (each runs one session after another).
    pub clients: usize,
    /// Longest wait after the churn for the node to settle.
    pub settle: Duration,
    /// Allowed growth of the resident memory between [`RSS_REFERENCE_AT`] and the end of the
    /// churn, in percent of the reference...
    pub rss_growth_pct: f64,
    /// ...but never less than this many MiB (small heaps move by whole allocator arenas).
    pub rss_slack_mib: f64,
}

/// The node's figures that must return to their baseline, read from its `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Gauges {
    connections: u64,
    rooms: u64,
    fds: u64,
    tasks: u64,
}

impl Gauges {
    /// Reads the gauges from a Prometheus text exposition; every one must be present.
    fn parse(text: &str) -> anyhow::Result<Gauges> {
        let value = |name: &str| -> anyhow::Result<u64> {
            text.lines()
                .find_map(|line| {
                    line.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse()
                        .ok()
                })
                .with_context(|| format!("/metrics has no {name}"))
        };
        Ok(Gauges {
            connections: value("kokuban_connections_open")?,
            rooms: value("kokuban_rooms_loaded")?,
            fds: value("kokuban_process_open_fds")?,
            tasks: value("kokuban_runtime_alive_tasks")?,
        })
    }

    fn max(self, other: Gauges) -> Gauges {
        Gauges {
            connections: self.connections.max(other.connections),
            rooms: self.rooms.max(other.rooms),
            fds: self.fds.max(other.fds),
            tasks: self.tasks.max(other.tasks),
        }
    }

    /// Back where the node started: nothing connected or loaded, and no more descriptors or
    /// tasks than before the churn.
    fn settled(self, baseline: Gauges) -> bool {
        self.connections == 0
            && self.rooms == 0
            && self.fds <= baseline.fds
            && self.tasks <= baseline.tasks
    }
}

async fn scrape(node: SocketAddr) -> anyhow::Result<Gauges> {
    let response = http::request(node, "GET", "/metrics").await?;
    if response.status != 200 {
        bail!("GET /metrics answered {}", response.status);
    }
    Gauges::parse(&String::from_utf8_lossy(&response.body))
}

/// The kinds of session, each a way real clients come and go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Draws a few strokes, waits for their acks, closes with a close handshake.
    Editor,
    /// Starts a stroke and vanishes mid-stroke: the TCP connection is dropped, no close frame.
    EditorDropped,
    /// Watches for a while, closes cleanly.
    Viewer,
    /// Watches for a while, then the TCP connection is dropped.
    ViewerDropped,
    /// Joins, then neither reads nor writes for a few seconds before dropping the connection.
    Silent,
    /// Upgrades to a WebSocket and drops it before saying Hello.
    NoHello,
    /// Sends half an HTTP request head and drops the connection.
    HalfRequest,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Editor,
        Kind::EditorDropped,
        Kind::Viewer,
        Kind::ViewerDropped,
        Kind::Silent,
        Kind::NoHello,
        Kind::HalfRequest,
    ];

    /// Relative frequency: mostly people drawing and watching, a steady trickle of the rest.
    fn weight(self) -> u32 {
        match self {
            Kind::Editor => 35,
            Kind::EditorDropped => 20,
            Kind::Viewer => 20,
            Kind::ViewerDropped => 10,
            Kind::Silent => 5,
            Kind::NoHello => 5,
            Kind::HalfRequest => 5,
        }
    }

    fn pick(rng: &mut impl Rng) -> Kind {
        let total: u32 = Kind::ALL.iter().map(|k| k.weight()).sum();
        let mut roll = rng.random_range(0..total);
        for kind in Kind::ALL {
            if roll < kind.weight() {
                return kind;
            }
            roll -= kind.weight();
        }
        Kind::Editor
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Editor => "editor, clean close",
            Kind::EditorDropped => "editor, dropped mid-stroke",
            Kind::Viewer => "viewer, clean close",
            Kind::ViewerDropped => "viewer, dropped",
            Kind::Silent => "silent, then dropped",
            Kind::NoHello => "upgraded, no Hello",
            Kind::HalfRequest => "half an HTTP request",
        }
    }
}

/// Counts of what the clients did.
#[derive(Debug, Default)]
struct Tally {
    by_kind: [AtomicU64; Kind::ALL.len()],
    strokes: AtomicU64,
    failed: AtomicU64,
    /// The first few failures, for the report.
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn sessions(&self) -> u64 {
        self.by_kind.iter().map(|n| n.load(Relaxed)).sum()
    }
}

/// One RSS sample of the node, `at` into the churn.
#[derive(Debug, Clone, Copy)]
struct RssSample {
    at: Duration,
    bytes: u64,
}

/// Runs the soak; `Ok(false)` when the node leaked (the table says what).
pub async fn run(opts: &Options) -> anyhow::Result<bool> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let node = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
    let mut server = procs::start_kokuban(
        &opts.kokuban_bin,
        node,
        &data_dir,
        None,
        "soak",
        dir.path(),
        &[],
    )
    .await?;
    let outcome = soak(opts, node, &mut server).await;
    let alive = server.check_alive();
    server.stop().await;
    alive?;
    outcome
}

async fn soak(opts: &Options, node: SocketAddr, server: &mut Proc) -> anyhow::Result<bool> {
    let mut rooms = Vec::with_capacity(opts.rooms);
    for _ in 0..opts.rooms.max(1) {
        rooms.push(http::create_room(node).await?);
    }
    let rooms = Arc::new(rooms);
    let baseline = scrape(node).await?;
    eprintln!(
        "soak: node {node} (pid {}), {} clients over {} rooms for {:.1} min; baseline {baseline:?}",
        server.pid,
        opts.clients,
        rooms.len(),
        opts.churn.as_secs_f64() / 60.0
    );

    let started = Instant::now();
    let deadline = started + opts.churn;
    let tally = Arc::new(Tally::default());
    let sources = Arc::new(SourceAddrs::default());
    let mut clients = JoinSet::new();
    for n in 0..opts.clients {
        let (rooms, tally, sources) = (rooms.clone(), tally.clone(), sources.clone());
        clients.spawn(client_loop(
            n as u64, node, rooms, tally, sources, started, deadline,
        ));
    }

    // Sample while the clients churn.
    let mut peak = baseline;
    let mut rss = Vec::new();
    let mut next_sample = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep_until(next_sample.min(deadline).into()).await;
        next_sample += SAMPLE_EVERY;
        server.check_alive()?;
        if let Ok(g) = scrape(node).await {
            peak = peak.max(g);
        }
        if let Some(sample) = procfs::sample(server.pid) {
            rss.push(RssSample {
                at: started.elapsed(),
                bytes: sample.rss_bytes,
            });
        }
        let elapsed = started.elapsed().as_secs();
        if elapsed > 0 && elapsed % 30 < SAMPLE_EVERY.as_secs() {
            eprintln!(
                "soak: {elapsed} s, {} sessions, peak {} connections",
                tally.sessions(),
                peak.connections
            );
        }
    }
    while let Some(r) = clients.join_next().await {
        r?;
    }
    let churned = started.elapsed();

    // Settle: every session has ended on the client side; the node gets time to notice the
    // dropped ones, time out the silent ones and unload the emptied rooms.
    let settle_started = Instant::now();
    let mut after = scrape(node).await?;
    while !after.settled(baseline) && settle_started.elapsed() < opts.settle {
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.check_alive()?;
        after = scrape(node).await?;
    }
    let settled_in = settle_started.elapsed();
    let rss_after = procfs::sample(server.pid).map(|s| s.rss_bytes);

    Ok(report(
        opts,
        &tally,
        churned,
        settled_in,
        Figures {
            baseline,
            peak,
            after,
            rss: &rss,
            rss_after,
        },
    )
    .await)
}

struct Figures<'a> {
    baseline: Gauges,
    peak: Gauges,
    after: Gauges,
    rss: &'a [RssSample],
    rss_after: Option<u64>,
}

/// The RSS verdict: the sample nearest [`RSS_REFERENCE_AT`] (or the middle of a shorter
/// churn) against the last one taken under the same load.
fn rss_growth(samples: &[RssSample], churn: Duration, opts: &Options) -> Option<(u64, u64, bool)> {
    let reference_at = RSS_REFERENCE_AT.min(churn / 2);
    let reference = samples.iter().find(|s| s.at >= reference_at)?;
    let last = samples.last()?;
    if last.at <= reference.at {
        return None;
    }
    let allowed = (reference.bytes as f64 * opts.rss_growth_pct / 100.0)
        .max(opts.rss_slack_mib * 1024.0 * 1024.0);
    let flat = (last.bytes as f64) <= reference.bytes as f64 + allowed;
    Some((reference.bytes, last.bytes, flat))
}

async fn report(
    opts: &Options,
    tally: &Tally,
    churned: Duration,
    settled_in: Duration,
    f: Figures<'_>,
) -> bool {
    let sessions = tally.sessions();
    let failed = tally.failed.load(Relaxed);
    println!(
        "\nsoak: {:.1} min of churn, {sessions} sessions ({:.1}/s), {} strokes drawn, {failed} \
         failed; settled after {:.1} s",
        churned.as_secs_f64() / 60.0,
        sessions as f64 / churned.as_secs_f64().max(1e-9),
        tally.strokes.load(Relaxed),
        settled_in.as_secs_f64()
    );
    for (kind, n) in Kind::ALL.iter().zip(&tally.by_kind) {
        println!("  {:<28} {:>8}", kind.label(), n.load(Relaxed));
    }
    for failure in tally.failures.lock().await.iter() {
        println!("  failure: {failure}");
    }

    let mut passed = true;
    let mut row = |name: &str, base: String, peak: String, after: String, ok: bool| {
        passed &= ok;
        let verdict = if ok { "ok" } else { "LEAK" };
        println!("{name:<24} {base:>12} {peak:>14} {after:>14}   {verdict}");
    };
    println!(
        "\n{:<24} {:>12} {:>14} {:>14}   verdict",
        "figure", "baseline", "peak (churn)", "after settling"
    );
    let (b, p, a) = (f.baseline, f.peak, f.after);
    row(
        "connections open",
        b.connections.to_string(),
        p.connections.to_string(),
        a.connections.to_string(),
        a.connections == 0,
    );
    row(
        "rooms loaded",
        b.rooms.to_string(),
        p.rooms.to_string(),
        a.rooms.to_string(),
        a.rooms == 0,
    );
    row(
        "open file descriptors",
        b.fds.to_string(),
        p.fds.to_string(),
        a.fds.to_string(),
        a.fds <= b.fds,
    );
    row(
        "tokio alive tasks",
        b.tasks.to_string(),
        p.tasks.to_string(),
        a.tasks.to_string(),
        a.tasks <= b.tasks,
    );
    let mib = |bytes: u64| format!("{:.1}", bytes as f64 / (1024.0 * 1024.0));
    match rss_growth(f.rss, churned, opts) {
        Some((reference, last, flat)) => {
            let max = f.rss.iter().map(|s| s.bytes).max().unwrap_or(last);
            row(
                "RSS MiB (ref → end)",
                format!("{} → {}", mib(reference), mib(last)),
                mib(max),
                f.rss_after.map_or_else(|| "-".into(), mib),
                flat,
            );
            println!(
                "  RSS: reference {:.0} s into the churn, end of churn {:+.1}% (allowed: \
                 {:.0}% or {:.0} MiB, whichever is larger)",
                RSS_REFERENCE_AT.min(churned / 2).as_secs_f64(),
                (last as f64 / reference as f64 - 1.0) * 100.0,
                opts.rss_growth_pct,
                opts.rss_slack_mib
            );
        }
        None => println!("RSS: too few samples to compare (churn too short)"),
    }
    let series: Vec<String> = f
        .rss
        .iter()
        .map(|s| format!("{:.0}s:{}", s.at.as_secs_f64(), mib(s.bytes)))
        .collect();
    println!("  RSS series (MiB): {}", series.join(" "));

    let failed_share = failed as f64 / sessions.max(1) as f64;
    if failed_share > MAX_FAILED_SHARE {
        println!(
            "sessions: {failed} of {sessions} failed ({:.1}%, allowed {:.0}%)   FAIL",
            failed_share * 100.0,
            MAX_FAILED_SHARE * 100.0
        );
        passed = false;
    }
    if sessions == 0 {
        println!("sessions: none ran   FAIL");
        passed = false;
    }
    passed
}

#[cfg(test)]
mod tests;
