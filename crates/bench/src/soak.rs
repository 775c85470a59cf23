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

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use kokuban_bench::http::{self, RoomLinks};
use kokuban_bench::net::{SourceAddrs, Ws, connect_from, ws_connect};
use kokuban_bench::procfs;
use kokuban_bench::procs::{self, Proc};
use kokuban_protocol::{ClientKey, Submit};
use kokuban_protocol::{
    ClientMsg, Color, ErrorCode, Hello, Name, Op, Point, Points, ServerMsg, StrokeId, StrokePoints,
    Tool, Width, decode_server, encode_client,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

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

/// One client: sessions one after another until the deadline.
async fn client_loop(
    n: u64,
    node: SocketAddr,
    rooms: Arc<Vec<RoomLinks>>,
    tally: Arc<Tally>,
    sources: Arc<SourceAddrs>,
    started: Instant,
    deadline: Instant,
) {
    let mut rng = SmallRng::seed_from_u64(n);
    while Instant::now() < deadline {
        let kind = Kind::pick(&mut rng);
        // The window of busy rooms moves with time (see WINDOW).
        let window_start =
            (started.elapsed().as_secs() / WINDOW_STEP.as_secs()) as usize * (WINDOW / 2).max(1);
        let room = &rooms[(window_start + rng.random_range(0..WINDOW)) % rooms.len()];
        let seed = rng.random();
        let from = sources.next();
        let outcome =
            tokio::time::timeout(SESSION_TIMEOUT, session(kind, node, from, room, seed)).await;
        tally.by_kind[kind as usize].fetch_add(1, Relaxed);
        let error = match outcome {
            Ok(Ok(strokes)) => {
                tally.strokes.fetch_add(strokes, Relaxed);
                continue;
            }
            Ok(Err(e)) => format!("{}: {e:#}", kind.label()),
            Err(_) => format!("{}: no end within {SESSION_TIMEOUT:?}", kind.label()),
        };
        tally.failed.fetch_add(1, Relaxed);
        let mut failures = tally.failures.lock().await;
        if failures.len() < 5 {
            failures.push(error);
        }
    }
}

/// One session of `kind`; returns the strokes it completed.
async fn session(
    kind: Kind,
    node: SocketAddr,
    from: Ipv4Addr,
    room: &RoomLinks,
    seed: u64,
) -> anyhow::Result<u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    if kind == Kind::HalfRequest {
        let mut stream = connect_from(from, node).await?;
        stream
            .write_all(format!("GET /ws/{} HTTP/1.1\r\nHost: ", room.room).as_bytes())
            .await?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        return Ok(0);
    }
    let mut ws = ws_connect(from, node, &format!("/ws/{}", room.room)).await?;
    if kind == Kind::NoHello {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        return Ok(0);
    }
    let edit = matches!(kind, Kind::Editor | Kind::EditorDropped | Kind::Silent);
    let hello = ClientMsg::Hello(Hello {
        room: room.room.clone(),
        token: if edit {
            room.edit.clone()
        } else {
            room.view.clone()
        },
        resume: None,
        name: Name::new(format!("soak-{}", seed % 10_000))?,
        color: Color::rgb(200, 60, 60),
        client: ClientKey(rand::random()),
    });
    ws.send(Message::binary(encode_client(&hello))).await?;
    loop {
        match next_msg(&mut ws).await? {
            ServerMsg::Welcome(_) => break,
            ServerMsg::Error(e) => bail!("Hello refused: {:?} {}", e.code, e.message),
            _ => {}
        }
    }
    match kind {
        Kind::Editor => {
            let strokes = rng.random_range(1..=3);
            let mut sent = 0;
            for _ in 0..strokes {
                sent += draw(&mut ws, &mut rng, true).await?;
            }
            // Now and then someone clears the board. Without it every board would grow for
            // the whole run, and so would the memory of every room loaded: the load must be
            // stationary for a flat memory to mean "no leak".
            if rng.random_ratio(1, CLEAR_ONE_IN) {
                let clear = ClientMsg::Op(Submit {
                    n: u64::MAX / 2,
                    op: Op::Clear,
                });
                ws.send(Message::binary(encode_client(&clear))).await?;
                sent += 1;
            }
            let mut answered = 0;
            while answered < sent {
                match next_msg(&mut ws).await? {
                    ServerMsg::Ack(_) | ServerMsg::Acked(_) => answered += 1,
                    // Another member's Clear can remove a stroke while it is being drawn; the
                    // server then refuses the rest of it, which is an answer too.
                    ServerMsg::Error(e) if e.code == ErrorCode::InvalidOp => answered += 1,
                    ServerMsg::Error(e) => bail!("op refused: {:?} {}", e.code, e.message),
                    _ => {}
                }
            }
            close(ws).await?;
            Ok(strokes)
        }
        Kind::EditorDropped => {
            draw(&mut ws, &mut rng, false).await?;
            Ok(0)
        }
        Kind::Viewer | Kind::ViewerDropped => {
            let watch = Duration::from_millis(rng.random_range(200..2000));
            let _ = tokio::time::timeout(watch, async { while next_msg(&mut ws).await.is_ok() {} })
                .await;
            if kind == Kind::Viewer {
                close(ws).await?;
            }
            Ok(0)
        }
        Kind::Silent => {
            tokio::time::sleep(Duration::from_millis(rng.random_range(1000..5000))).await;
            Ok(0)
        }
        Kind::NoHello | Kind::HalfRequest => Ok(0),
    }
}

/// Sends one stroke (begin, a few point batches, and the end if `finish`); returns the ops
/// sent.
async fn draw(ws: &mut Ws, rng: &mut SmallRng, finish: bool) -> anyhow::Result<u64> {
    let id = StrokeId(uuid::Uuid::from_u128(rng.random()));
    let mut last = Point::new(
        rng.random_range(0..40_000),
        rng.random_range(0..40_000),
        128,
    )?;
    let mut ops = vec![Op::StrokeBegin {
        id,
        tool: Tool::Pen,
        color: Color::rgb(20, 20, 20),
        width: Width::new(16)?,
        first: last,
    }];
    let mut start = 1u32;
    for _ in 0..rng.random_range(2..=4) {
        let count = rng.random_range(8..=32);
        let batch: Vec<Point> = (0..count)
            .map(|_| {
                last = last.offset(rng.random_range(-40..=40), rng.random_range(-40..=40));
                last
            })
            .collect();
        ops.push(Op::StrokePoints(StrokePoints::new(
            id,
            start,
            Points::new(batch)?,
        )?));
        start += count;
    }
    if finish {
        ops.push(Op::StrokeEnd { id });
    }
    // Numbered from a random point: each connection is a new author, and a later stroke of
    // the same connection only needs higher numbers.
    let first = rng.random_range(1..u64::MAX / 4);
    for (n, op) in (first..).zip(&ops) {
        let msg = ClientMsg::Op(Submit { n, op: op.clone() });
        ws.send(Message::binary(encode_client(&msg))).await?;
    }
    Ok(ops.len() as u64)
}

async fn next_msg(ws: &mut Ws) -> anyhow::Result<ServerMsg> {
    loop {
        match ws.next().await.context("connection closed")?? {
            Message::Binary(b) => return Ok(decode_server(&b)?),
            Message::Close(c) => bail!("closed by the server: {c:?}"),
            _ => {}
        }
    }
}

/// A clean close: our close frame, then read until the server's answer ends the stream.
async fn close(mut ws: Ws) -> anyhow::Result<()> {
    ws.close(None).await?;
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(msg) = ws.next().await {
            if msg.is_err() {
                break;
            }
        }
    })
    .await
    .context("the server did not answer the close")
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "\
# HELP kokuban_connections_open WebSocket sessions open.
# TYPE kokuban_connections_open gauge
kokuban_connections_open 3
kokuban_connections_total 17
kokuban_rooms_loaded 2
kokuban_process_open_fds 41
kokuban_runtime_alive_tasks 12
";

    #[test]
    fn gauges_are_read_by_exact_name() {
        let g = Gauges::parse(METRICS).unwrap();
        assert_eq!(
            g,
            Gauges {
                connections: 3,
                rooms: 2,
                fds: 41,
                tasks: 12
            }
        );
        let without_tasks = METRICS.replace("kokuban_runtime_alive_tasks 12\n", "");
        assert!(Gauges::parse(&without_tasks).is_err());
    }

    #[test]
    fn settled_means_nothing_open_and_nothing_above_the_baseline() {
        let baseline = Gauges {
            connections: 0,
            rooms: 0,
            fds: 20,
            tasks: 8,
        };
        assert!(baseline.settled(baseline));
        assert!(
            !Gauges {
                fds: 21,
                ..baseline
            }
            .settled(baseline)
        );
        assert!(
            !Gauges {
                tasks: 9,
                ..baseline
            }
            .settled(baseline)
        );
        assert!(
            !Gauges {
                rooms: 1,
                ..baseline
            }
            .settled(baseline)
        );
        assert!(
            !Gauges {
                connections: 1,
                ..baseline
            }
            .settled(baseline)
        );
        assert!(
            Gauges {
                fds: 19,
                ..baseline
            }
            .settled(baseline)
        );
    }

    fn options() -> Options {
        Options {
            kokuban_bin: PathBuf::new(),
            churn: Duration::from_secs(600),
            rooms: 1,
            clients: 1,
            settle: Duration::ZERO,
            rss_growth_pct: 10.0,
            rss_slack_mib: 8.0,
        }
    }

    fn samples(mib: &[(u64, u64)]) -> Vec<RssSample> {
        mib.iter()
            .map(|&(s, m)| RssSample {
                at: Duration::from_secs(s),
                bytes: m << 20,
            })
            .collect()
    }

    #[test]
    fn rss_is_compared_from_the_first_minute_to_the_end() {
        let opts = options();
        let churn = opts.churn;
        // Growth before the reference point (warm-up) does not count.
        let warm = samples(&[(0, 10), (30, 80), (60, 100), (600, 109)]);
        assert_eq!(
            rss_growth(&warm, churn, &opts),
            Some((100 << 20, 109 << 20, true))
        );
        let leak = samples(&[(0, 10), (60, 100), (600, 111)]);
        assert_eq!(rss_growth(&leak, churn, &opts).map(|r| r.2), Some(false));
        // Small heaps get the slack in MiB instead of the percentage.
        let small = samples(&[(60, 20), (600, 27)]);
        assert_eq!(rss_growth(&small, churn, &opts).map(|r| r.2), Some(true));
        // A short churn compares its middle with its end.
        let short = samples(&[(0, 10), (30, 20), (55, 20)]);
        assert_eq!(
            rss_growth(&short, Duration::from_secs(60), &opts).map(|r| r.0),
            Some(20 << 20)
        );
        assert_eq!(rss_growth(&samples(&[(0, 10)]), churn, &opts), None);
    }

    #[test]
    fn every_kind_of_session_is_picked() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut seen = [0u32; Kind::ALL.len()];
        for _ in 0..10_000 {
            seen[Kind::pick(&mut rng) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
        // Editors (weight 35) come about seven times as often as silent clients (weight 5).
        assert!(seen[Kind::Editor as usize] > 5 * seen[Kind::Silent as usize]);
    }
}
