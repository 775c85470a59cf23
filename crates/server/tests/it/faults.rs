//! Faults between the parts of a cluster, injected by a TCP proxy in the test harness (slow,
//! throttled, half-open and cut links to Redis; a half-open client), a client that stops
//! reading, and a rolling restart of every node under load.
//!
//! Every case checks four things: the node under fault keeps running; other rooms keep their
//! latency (measured against a baseline taken in the same test, with a generous factor, since
//! the machine running the tests is busy); the node's memory stays bounded and comes back down;
//! a metric counts the event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kokuban_client::connection::Backoff;
use kokuban_client::rng::Entropy;
use kokuban_protocol::{ErrorCode, Op, PresenceEvent, ServerMsg, close};

use crate::harness;
use crate::harness::bystanders::Bystanders;
use crate::harness::cluster::{
    FaultyPair, NodeProcess, SECRET, create_room_at, healthy_node, join_at, metric_at, node_at,
    wait_ready,
};
use crate::harness::faults::FaultProxy;
use crate::harness::pen::{Got, Pen, op_id, text_op};
use crate::harness::redis::{RedisServer, free_port};
use crate::harness::{http, mib};

/// The Redis timeout of the `kokuban` binary (its production default).
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Randomness for the client's backoff.
struct ThreadRng;

impl Entropy for ThreadRng {
    fn next_u64(&mut self) -> u64 {
        rand::random()
    }
}

#[tokio::test]
async fn a_slow_then_throttled_link_to_redis_answers_every_write_in_bounded_time_and_memory() {
    let FaultyPair {
        proxy,
        mut faulty,
        healthy,
        room,
    } = FaultyPair::start().await;
    let mut ada = Pen::new("ada", &room, &room.edit);
    ada.connect(faulty.addr).await.unwrap();
    let mut bob = join_at(healthy.addr, &room, &room.view, None).await;
    let mut others = Bystanders::on(&healthy).await;
    // Warm up, so that the baseline holds the node's working set.
    for _ in 0..20 {
        ada.draw(text_op(3000)).await;
    }
    ada.settle(faulty.addr, harness::TIMEOUT).await;
    let rss_before = faulty.resident_bytes().unwrap();

    // 500 ms each way: every round trip to Redis takes a second, within the timeout.
    proxy.delay(Duration::from_millis(500), Duration::from_millis(500));
    let slow_from = Instant::now();
    for _ in 0..30 {
        ada.draw(text_op(200)).await;
    }
    ada.settle(faulty.addr, harness::TIMEOUT).await;
    assert!(ada.refused.is_empty(), "a slow Redis still takes writes");
    assert!(
        slow_from.elapsed() >= Duration::from_secs(1),
        "the latency was in force"
    );
    assert!(
        ada.slowest_answer < REDIS_TIMEOUT * 3,
        "answered in {:?}",
        ada.slowest_answer
    );
    assert_eq!(http(faulty.addr, "GET", "/readyz", &[]).await.status, 200);
    others.check("another room while Redis is slow").await;

    // A link that carries 16 KiB/s each way, flooded with ops of 3 KB: far more than it can
    // carry. Pipelines that miss the timeout are answered as refusals, batches shrink to what
    // fits, and ops that waited too long are refused unsent: every op gets an answer soon.
    proxy.heal();
    proxy.throttle(16 * 1024);
    ada.slowest_answer = Duration::ZERO;
    let acked_before = ada.acked.len();
    let mut rss_peak = rss_before;
    for round in 0..3 {
        for _ in 0..40 {
            ada.draw(text_op(3000)).await;
        }
        let until = Instant::now() + Duration::from_millis(700);
        while Instant::now() < until {
            if ada.connected() {
                ada.read(Duration::from_millis(100)).await;
            } else {
                let _ = ada.connect(faulty.addr).await;
            }
        }
        rss_peak = rss_peak.max(faulty.resident_bytes().unwrap());
        if round == 1 {
            others
                .check("another room while the link is throttled")
                .await;
        }
    }
    ada.settle(faulty.addr, Duration::from_secs(40)).await;
    // Bounded by time: every op sent on a connection is answered, or the connection is closed
    // for the client to resume, within the wait in the queue (one timeout), a pipeline (one
    // timeout), the resolution of a pipeline that failed (one timeout), and the delivery of
    // its Ack over the same slow link (a stalled subscription is found by its ping and the
    // log read back in pieces the link carries), with room for a busy machine. Without those
    // bounds ops waited forever.
    assert!(
        ada.slowest_answer <= REDIS_TIMEOUT * 12,
        "an op waited {:?} for its answer",
        ada.slowest_answer
    );
    assert!(
        !ada.refused.is_empty(),
        "the writes the link could not carry were refused, and the author was told"
    );
    assert!(
        ada.acked.len() > acked_before,
        "what fits still goes through"
    );
    assert!(
        metric_at(faulty.addr, "kokuban_store_errors_total").await >= 1.0,
        "refused writes are counted"
    );
    // Bounded by memory: the writer's queue and the proxy's buffers are bounded.
    assert!(
        rss_peak < rss_before + (96 << 20),
        "resident memory grew from {:.1} MiB to {:.1} MiB",
        mib(rss_before),
        mib(rss_peak)
    );

    // Healed: everything works again, and every acknowledged op is on every board.
    proxy.heal();
    wait_ready(faulty.addr, 200).await;
    let refused_before = ada.refused.len();
    for _ in 0..10 {
        ada.draw(text_op(100)).await;
    }
    ada.settle(faulty.addr, harness::TIMEOUT).await;
    assert_eq!(ada.refused.len(), refused_before, "writes resume");
    let head = ada.head().unwrap();
    bob.sync_to(head.seq).await;
    assert_eq!(bob.board.snapshot(), ada.board.snapshot());
    for op in &ada.acked {
        assert!(bob.board.get(&op_id(op)).is_some(), "acknowledged op lost");
    }
    assert!(ada.misplaced.is_empty(), "{:?}", ada.misplaced);
    assert!(faulty.is_running(), "the node survived");
    let rss_after = faulty.resident_bytes().unwrap();
    eprintln!(
        "resident memory: {:.1} MiB before, {:.1} MiB peak, {:.1} MiB after; {} acked, {} refused, slowest answer {:?}",
        mib(rss_before),
        mib(rss_peak),
        mib(rss_after),
        ada.acked.len(),
        ada.refused.len(),
        ada.slowest_answer
    );
    assert!(
        rss_after < rss_before + (48 << 20),
        "resident memory stayed at {:.1} MiB (from {:.1} MiB)",
        mib(rss_after),
        mib(rss_before)
    );
}

/// Two members draw steadily (about 25 ops a second each, under the rate limit), reading as
/// they go and reconnecting to their node when it closes them, until `for_` has passed.
async fn draw_both(
    a: &mut Pen,
    a_addr: SocketAddr,
    b: &mut Pen,
    b_addr: SocketAddr,
    for_: Duration,
) {
    let until = Instant::now() + for_;
    let mut next_op = Instant::now();
    while Instant::now() < until {
        let due = Instant::now() >= next_op;
        if due {
            next_op += Duration::from_millis(40);
        }
        for (pen, addr) in [(&mut *a, a_addr), (&mut *b, b_addr)] {
            if !pen.connected() {
                let _ = pen.connect(addr).await;
                continue;
            }
            if due {
                pen.draw(text_op(200)).await;
            }
            pen.read(Duration::from_millis(5)).await;
        }
    }
}

/// The editor is the room's only member on a node cut off from Redis. Told to resume while
/// its ops are in doubt, it comes back at once, since the node still holds the room and the
/// link generation its token was checked against, and hears that the board is read-only
/// (rather than being refused as if the room could not be opened, and left reconnecting).
#[tokio::test]
async fn the_only_member_on_a_node_cut_off_from_redis_comes_back_read_only() {
    let FaultyPair {
        proxy,
        faulty,
        healthy,
        room,
    } = FaultyPair::start().await;
    let mut ada = Pen::new("ada", &room, &room.edit);
    ada.connect(faulty.addr).await.unwrap();
    let mut bob = Pen::new("bob", &room, &room.edit);
    bob.connect(healthy.addr).await.unwrap();
    let (a, b) = (faulty.addr, healthy.addr);
    draw_both(&mut ada, a, &mut bob, b, Duration::from_secs(1)).await;
    ada.settle(a, harness::TIMEOUT).await;

    proxy.cut();
    let deadline = Instant::now() + REDIS_TIMEOUT * 5;
    // Whether one of her ops was in flight at the cut (in doubt: she is told to resume) or
    // only queued behind a heartbeat (refused unsent: she stays) is a matter of timing; either
    // way she ends up connected and told the board is read-only.
    while ada.refused.is_empty() || !ada.connected() {
        assert!(
            Instant::now() < deadline,
            "ada was told to resume {:?}, refused {} ops, connected: {}",
            ada.closes,
            ada.refused.len(),
            ada.connected()
        );
        draw_both(&mut ada, a, &mut bob, b, Duration::from_millis(200)).await;
    }
    assert!(
        ada.closes.iter().all(|c| *c == Some(close::RESUME)),
        "only ever told to resume: {:?}",
        ada.closes
    );
    ada.settle(a, REDIS_TIMEOUT * 5).await;
    assert!(ada.connected(), "back, read-only");
    proxy.heal();
}

#[tokio::test]
async fn a_node_cut_off_from_redis_stays_connected_read_only_then_recovers_without_a_gap() {
    let FaultyPair {
        proxy,
        mut faulty,
        healthy,
        room,
    } = FaultyPair::start().await;
    let mut ada = Pen::new("ada", &room, &room.edit);
    ada.connect(faulty.addr).await.unwrap();
    let mut vic = Pen::new("vic", &room, &room.view);
    vic.connect(faulty.addr).await.unwrap();
    let mut bob = Pen::new("bob", &room, &room.edit);
    bob.connect(healthy.addr).await.unwrap();
    let mut others = Bystanders::on(&healthy).await;
    draw_both(
        &mut ada,
        faulty.addr,
        &mut bob,
        healthy.addr,
        Duration::from_secs(1),
    )
    .await;
    ada.settle(faulty.addr, harness::TIMEOUT).await;
    let rss_before = faulty.resident_bytes().unwrap();

    for (fault, apply) in [
        ("half-open", FaultProxy::blackhole as fn(&FaultProxy)),
        ("cut", FaultProxy::cut),
    ] {
        let refused_before = ada.refused.len();
        let lost_before = metric_at(faulty.addr, "kokuban_redis_disconnects_total").await;
        ada.slowest_answer = Duration::ZERO;
        apply(&proxy);
        let cut_at = Instant::now();
        // Both keep drawing; the faulty node's pen is told its writes cannot be saved.
        draw_both(
            &mut ada,
            faulty.addr,
            &mut bob,
            healthy.addr,
            Duration::from_secs(3),
        )
        .await;
        wait_ready(faulty.addr, 503).await;
        let deadline = cut_at + REDIS_TIMEOUT * 5;
        while ada.refused.len() == refused_before {
            assert!(
                Instant::now() < deadline,
                "{fault}: no write was refused {:?} after the fault",
                cut_at.elapsed()
            );
            draw_both(
                &mut ada,
                faulty.addr,
                &mut bob,
                healthy.addr,
                Duration::from_millis(200),
            )
            .await;
        }
        ada.settle(faulty.addr, REDIS_TIMEOUT * 5).await;
        assert!(
            ada.slowest_answer <= REDIS_TIMEOUT * 4,
            "{fault}: an op waited {:?} for its answer",
            ada.slowest_answer
        );
        // The documented read-only mode: members stay connected and see the board.
        assert!(vic.connected(), "{fault}: a viewer was disconnected");
        assert!(
            ada.closes.iter().all(|c| *c == Some(close::RESUME)),
            "{fault}: the editor was only ever told to resume: {:?}",
            ada.closes
        );
        let message = {
            let mut probe = Pen::new("probe", &room, &room.edit);
            probe.connect(faulty.addr).await.unwrap();
            probe.draw(text_op(10)).await;
            let mut text = None;
            while text.is_none() {
                if let Got::Msg(ServerMsg::Error(e)) = probe.read(harness::TIMEOUT).await {
                    text = Some(e);
                }
            }
            text.unwrap()
        };
        assert_eq!(message.code, ErrorCode::TemporarilyReadOnly);
        assert!(message.message.contains("try again"), "{message:?}");
        // A new board cannot be stored either: the answer says to try again, after the
        // Redis timeout the node gives the store to come back.
        let asked = Instant::now();
        let created = http(faulty.addr, "POST", "/api/rooms", &[]).await;
        assert_eq!(created.status, 503, "{fault}: {}", created.body);
        assert!(created.body.contains("try again"), "{}", created.body);
        assert!(asked.elapsed() < REDIS_TIMEOUT * 4, "{:?}", asked.elapsed());
        others
            .check(&format!("another room while a node is {fault}"))
            .await;

        // Both links are found dead and counted: the command connection by its pings, and the
        // subscription, which only receives, by pings of its own (a half-open one would
        // otherwise look alive forever).
        let deadline = Instant::now() + REDIS_TIMEOUT * 5;
        while metric_at(faulty.addr, "kokuban_redis_disconnects_total").await < lost_before + 2.0 {
            assert!(
                Instant::now() < deadline,
                "{fault}: a dead link to Redis went unnoticed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        proxy.heal();
        wait_ready(faulty.addr, 200).await;
        // Full recovery: writes flow, and everyone converges with no gap.
        let refused = ada.refused.len();
        draw_both(
            &mut ada,
            faulty.addr,
            &mut bob,
            healthy.addr,
            Duration::from_secs(1),
        )
        .await;
        ada.settle(faulty.addr, harness::TIMEOUT).await;
        bob.settle(healthy.addr, harness::TIMEOUT).await;
        assert_eq!(
            ada.refused.len(),
            refused,
            "{fault}: writes resume after it heals"
        );
        let head = [&ada, &bob]
            .iter()
            .filter_map(|p| p.head())
            .max_by_key(|p| p.seq)
            .unwrap();
        for p in [&mut ada, &mut bob, &mut vic] {
            p.sync_to(head, harness::TIMEOUT).await;
            assert!(p.misplaced.is_empty(), "{fault}: {:?}", p.misplaced);
            assert_eq!(
                p.snapshots, 1,
                "{fault}: {}'s history was not reset",
                p.name
            );
        }
        assert_eq!(ada.board.snapshot(), bob.board.snapshot());
        assert_eq!(vic.board.snapshot(), bob.board.snapshot());
        for op in ada.acked.iter().chain(&bob.acked) {
            assert!(
                vic.board.get(&op_id(op)).is_some(),
                "{fault}: acknowledged op lost"
            );
        }
    }
    assert!(
        metric_at(
            faulty.addr,
            "kokuban_rejected_frames_total{reason=\"read_only\"}"
        )
        .await
            >= 1.0
    );
    assert!(faulty.is_running(), "the node survived");
    vic.drain(Duration::from_millis(200)).await;
    let rss_after = faulty.resident_bytes().unwrap();
    eprintln!(
        "resident memory: {:.1} MiB before, {:.1} MiB after",
        mib(rss_before),
        mib(rss_after)
    );
    assert!(
        rss_after < rss_before + (32 << 20),
        "resident memory grew from {:.1} MiB to {:.1} MiB",
        mib(rss_before),
        mib(rss_after)
    );
}

/// One editor of the rolling restart: draws steadily and, when its node goes away,
/// reconnects to the next node after the app's own jittered backoff.
struct Drawer {
    pen: Pen,
    /// Time from losing the connection to the next Welcome, per reconnect.
    reconnects: Vec<Duration>,
    /// The client-side delays drawn before each reconnect attempt.
    delays: Vec<Duration>,
}

async fn keep_drawing(
    mut pen: Pen,
    nodes: Vec<SocketAddr>,
    mut home: usize,
    stop: Arc<AtomicBool>,
) -> Drawer {
    let mut backoff = Backoff::default();
    let mut rng = ThreadRng;
    let mut reconnects = Vec::new();
    let mut delays = Vec::new();
    pen.connect(nodes[home]).await.expect("first connection");
    let mut lost_at: Option<Instant> = None;
    let mut next_op = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if !pen.connected() {
            let lost = *lost_at.get_or_insert_with(Instant::now);
            let delay = Duration::from_secs_f64(backoff.next_delay(&mut rng) / 1000.0);
            delays.push(delay);
            tokio::time::sleep(delay).await;
            // The node that went away is the one least likely to be back: try the next.
            home = (home + 1) % nodes.len();
            if pen.connect(nodes[home]).await.is_ok() {
                reconnects.push(lost.elapsed());
                lost_at = None;
                backoff.reset();
            }
            continue;
        }
        if Instant::now() >= next_op {
            pen.draw(text_op(64)).await;
            // About 25 ops a second per editor: a steady hand.
            next_op += Duration::from_millis(40);
        }
        pen.read(Duration::from_millis(10)).await;
    }
    // Every op drawn gets its answer (on whichever node is up).
    let deadline = Instant::now() + harness::TIMEOUT;
    while !pen.unanswered.is_empty() && Instant::now() < deadline {
        if pen.connected() {
            pen.read(Duration::from_millis(100)).await;
        } else {
            home = (home + 1) % nodes.len();
            if pen.connect(nodes[home]).await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Drawer {
        pen,
        reconnects,
        delays,
    }
}

#[tokio::test]
async fn a_rolling_restart_of_three_nodes_under_drawing_load_loses_nothing_and_spreads_reconnects()
{
    let redis = RedisServer::shared().await;
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(NodeProcess::start(redis, SECRET, &format!("node-{i}")).await);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let room = create_room_at(addrs[0]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut drawers = Vec::new();
    for i in 0..6 {
        let pen = Pen::new(&format!("editor-{i}"), &room, &room.edit);
        drawers.push(tokio::spawn(keep_drawing(
            pen,
            addrs.clone(),
            i % 3,
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, node) in nodes.iter_mut().enumerate() {
        assert!(node.terminate().await, "node-{i} shut down cleanly");
        let addr = node.addr;
        *node = NodeProcess::start_at(&redis.url(), SECRET, &format!("node-{i}"), addr).await;
        // Let the clients settle on the cluster before the next node goes.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut done = Vec::new();
    for d in drawers {
        done.push(d.await.expect("a drawer panicked"));
    }

    // Everyone reaches the room's head and holds the same board.
    let head = done
        .iter()
        .filter_map(|d| d.pen.head())
        .max_by_key(|p| p.seq)
        .unwrap();
    for d in &mut done {
        assert!(
            d.pen.unanswered.is_empty(),
            "{}: ops unanswered",
            d.pen.name
        );
        if !d.pen.connected() {
            d.pen.connect(addrs[0]).await.unwrap();
        }
        d.pen.sync_to(head, harness::TIMEOUT).await;
    }
    let board = done[0].pen.board.snapshot();
    let mut acked = 0;
    for d in &done {
        assert_eq!(d.pen.board.snapshot(), board, "{} converged", d.pen.name);
        // No gap the server did not report: every op arrived at its place.
        assert!(d.pen.misplaced.is_empty(), "{:?}", d.pen.misplaced);
        assert_eq!(d.pen.snapshots, 1, "{}: resumed every time", d.pen.name);
        assert!(d.pen.refused.is_empty(), "{}: writes refused", d.pen.name);
        for op in &d.pen.acked {
            assert!(
                done[0].pen.board.get(&op_id(op)).is_some(),
                "acknowledged op lost"
            );
        }
        acked += d.pen.acked.len();
    }
    assert!(acked >= 6 * 50, "steady load: {acked} ops acknowledged");

    // Every node went away once under its clients: each of them reconnected, at spread times.
    let mut reconnects: Vec<Duration> = done.iter().flat_map(|d| d.reconnects.clone()).collect();
    let delays: Vec<Duration> = done.iter().flat_map(|d| d.delays.clone()).collect();
    reconnects.sort();
    eprintln!("reconnect times: {reconnects:?}");
    assert!(reconnects.len() >= 6, "{} reconnects", reconnects.len());
    let spread = *reconnects.last().unwrap() - reconnects[0];
    assert!(
        spread >= Duration::from_millis(20),
        "reconnects came in lockstep: {reconnects:?}"
    );
    let distinct: std::collections::HashSet<u128> =
        delays.iter().map(|d| d.as_micros() / 1000).collect();
    assert!(distinct.len() >= delays.len() / 2, "jitter: {delays:?}");
    for node in &mut nodes {
        assert!(node.is_running());
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_in_a_busy_cluster_room_is_dropped_and_nobody_else_waits() {
    let redis = RedisServer::shared().await;
    let free = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut busy = NodeProcess::start_at(&redis.url(), SECRET, "busy", free).await;
    let healthy = healthy_node(redis, "healthy").await;
    let room = create_room_at(busy.addr).await;
    let mut editors = Vec::new();
    for i in 0..3 {
        let mut pen = Pen::new(&format!("editor-{i}"), &room, &room.edit);
        pen.connect(busy.addr).await.unwrap();
        editors.push(pen);
    }
    let mut watcher = Pen::new("watcher", &room, &room.view);
    watcher.connect(busy.addr).await.unwrap();
    // A member of the room on the other node.
    let mut remote = Pen::new("remote", &room, &room.view);
    remote.connect(healthy.addr).await.unwrap();
    // Another room on the same node: it shares the node's Redis reader.
    let other_room = create_room_at(busy.addr).await;
    let talker = join_at(busy.addr, &other_room, &other_room.edit, None).await;
    let listener = join_at(busy.addr, &other_room, &other_room.view, None).await;
    let mut others = Bystanders::watch(talker, listener).await;
    let rss_before = busy.resident_bytes().unwrap();

    // Joins with a tiny receive buffer, then never reads again: a zero window.
    let mut stalled = Pen::new("stalled", &room, &room.view);
    stalled.connect_with(busy.addr, Some(4096)).await.unwrap();
    let stalled_id = stalled.member.unwrap();
    let mut rss_peak = rss_before;
    let started = Instant::now();
    let mut rounds = 0;
    while metric_at(busy.addr, "kokuban_slow_consumer_disconnects_total").await < 1.0 {
        assert!(
            // Generous: on a loaded machine the shared Redis can time out for a while, and
            // the room is read-only (nothing reaches the stalled client) until it is back.
            started.elapsed() < Duration::from_secs(120),
            "the stalled client was never disconnected"
        );
        // Each editor stays under the per-connection rate limit (240 frames/s).
        for _ in 0..6 {
            for e in &mut editors {
                e.draw(text_op(4000)).await;
            }
            tokio::time::sleep(Duration::from_millis(8)).await;
        }
        // The board is cleared now and then, so that what the node holds is the stalled
        // member's queue, not a growing board.
        editors[0].draw(Op::Clear).await;
        for e in &mut editors {
            e.drain(Duration::from_millis(1)).await;
        }
        watcher.drain(Duration::from_millis(1)).await;
        remote.drain(Duration::from_millis(1)).await;
        rounds += 1;
        if rounds % 10 == 0 {
            rss_peak = rss_peak.max(busy.resident_bytes().unwrap());
            others.check("another room on the node").await;
        }
    }
    eprintln!(
        "disconnected after {:?}, {} ops",
        started.elapsed(),
        rounds * 19
    );
    // The others saw it leave, and kept up all along: they reach the head at once.
    for e in &mut editors {
        e.settle(busy.addr, harness::TIMEOUT).await;
        assert!(e.closes.is_empty(), "{} was disconnected", e.name);
    }
    let head = editors
        .iter()
        .filter_map(|e| e.head())
        .max_by_key(|p| p.seq)
        .unwrap();
    watcher.sync_to(head, harness::TIMEOUT).await;
    assert!(watcher.misplaced.is_empty());
    assert!(watcher.closes.is_empty(), "the watcher kept up");
    let deadline = Instant::now() + harness::TIMEOUT;
    while !watcher.left.contains(&stalled_id) {
        assert!(Instant::now() < deadline, "the stalled member never left");
        watcher.read(Duration::from_millis(200)).await;
    }
    // Members of the other node saw it leave too, and kept up as well.
    remote.sync_to(head, harness::TIMEOUT).await;
    while !remote.left.contains(&stalled_id) {
        assert!(Instant::now() < deadline, "the other node still lists it");
        remote.read(Duration::from_millis(200)).await;
    }
    assert!(remote.misplaced.is_empty() && remote.closes.is_empty());
    assert_eq!(remote.board.snapshot(), watcher.board.snapshot());
    // When it reads again, it finds the end of its connection.
    stalled.drain(Duration::from_secs(5)).await;
    assert!(!stalled.connected(), "the stalled connection was closed");
    assert!(busy.is_running());
    let rss_after = busy.resident_bytes().unwrap();
    eprintln!(
        "resident memory: {:.1} MiB before, {:.1} MiB peak, {:.1} MiB after",
        mib(rss_before),
        mib(rss_peak),
        mib(rss_after)
    );
    // The queue holds at most its 4096 frames of 4 KB; the rest is the board's churn.
    assert!(
        rss_peak < rss_before + (64 << 20),
        "memory grew from {:.1} MiB to {:.1} MiB",
        mib(rss_before),
        mib(rss_peak)
    );
    assert!(
        rss_after < rss_before + (48 << 20),
        "memory stayed at {:.1} MiB (from {:.1} MiB)",
        mib(rss_after),
        mib(rss_before)
    );
}

#[tokio::test]
async fn a_half_open_client_is_found_by_the_heartbeat_and_leaves_presence_on_every_node() {
    let redis = RedisServer::shared().await;
    let quick = |c: &mut kokuban_server::Config| {
        c.cluster.as_mut().unwrap().secret = Some(SECRET.into());
        c.ping_interval = Duration::from_millis(250);
        c.idle_timeout = Duration::from_secs(2);
    };
    let near = node_at(&redis.url(), "near", quick).await;
    let far = node_at(&redis.url(), "far", quick).await;
    let mut others = Bystanders::on(&near).await;
    let room = near.create_room().await;
    let mut ada = near.editor(&room, "ada").await;
    let mut bob = far.viewer(&room, "bob").await;
    let open_before = near.metric("kokuban_connections_open").await;

    // The peer reaches the node through a proxy that then forwards nothing and closes
    // nothing: no FIN, no RST, no pong, as when a laptop lid closes on a train.
    let proxy = FaultProxy::start(near.addr).await;
    let mut ghost = Pen::new("ghost", &room, &room.edit);
    ghost.connect(proxy.addr).await.unwrap();
    let ghost_id = ghost.member.unwrap();
    bob.until_seen(
        |m| matches!(m, ServerMsg::Presence(PresenceEvent::Joined(m)) if m.id == ghost_id),
    )
    .await;
    proxy.blackhole();
    let vanished = Instant::now();
    // The room stays busy meanwhile.
    for seed in 0..5 {
        ada.draw_stroke(seed, 30, 6).await;
    }
    // Everyone reads meanwhile (and so answers the node's pings); another room on the node
    // is measured all along.
    let left = |m: &ServerMsg| matches!(m, ServerMsg::Presence(PresenceEvent::Left(id)) if *id == ghost_id);
    tokio::join!(ada.until_seen(left), bob.until_seen(left));
    others.check("another room while a peer is half-open").await;
    let gone_after = vanished.elapsed();
    assert!(
        gone_after < Duration::from_secs(10),
        "left after {gone_after:?} (idle timeout 2 s)"
    );
    // Found by the heartbeat (or, if the room's traffic filled its socket first, as a reader
    // that stopped): either way counted.
    let idle = near.metric("kokuban_idle_timeouts_total").await;
    let slow = near.metric("kokuban_slow_consumer_disconnects_total").await;
    assert!(idle + slow >= 1.0, "the dead peer is counted");
    ada.settle().await;
    bob.sync_to(ada.position().seq).await;
    assert_eq!(bob.board.snapshot(), ada.board.snapshot());
    // Its session is gone: the connection count is back where it was.
    near.wait_metric("kokuban_connections_open", |v| v <= open_before)
        .await;
    drop(ghost);
}

#[tokio::test]
async fn an_op_refused_while_redis_was_frozen_is_never_applied_afterwards() {
    let redis = RedisServer::start(false).await;
    let a = healthy_node(&redis, "a").await;
    let b = healthy_node(&redis, "b").await;
    let room = create_room_at(a.addr).await;
    let mut ada = Pen::new("ada", &room, &room.edit);
    ada.connect(a.addr).await.unwrap();
    let mut bob = Pen::new("bob", &room, &room.view);
    bob.connect(b.addr).await.unwrap();
    // Ada writes at 60 Hz for four seconds; Redis is frozen for two and a half of them, with
    // her pipelines in its socket buffer: when it thaws it runs them, long after the node
    // gave up on them.
    let start = Instant::now();
    let (mut frozen, mut thawed) = (false, false);
    let mut tick = tokio::time::interval(Duration::from_millis(16));
    while start.elapsed() < Duration::from_secs(4) {
        tick.tick().await;
        if !frozen && start.elapsed() > Duration::from_millis(500) {
            redis.pause();
            frozen = true;
        }
        if frozen && !thawed && start.elapsed() > Duration::from_millis(3000) {
            redis.resume();
            thawed = true;
        }
        if !ada.connected() {
            let _ = ada.connect(a.addr).await;
        }
        ada.draw(text_op(16)).await;
        ada.drain(Duration::from_millis(2)).await;
    }
    ada.settle(a.addr, harness::TIMEOUT).await;
    let head = ada.head().expect("joined");
    bob.sync_to(head, harness::TIMEOUT).await;
    let on_board: std::collections::HashSet<kokuban_protocol::StrokeId> =
        bob.board.strokes().map(|s| s.id).collect();
    println!(
        "{} ops acknowledged, {} refused, {} decided on a reconnect; {} items on the board",
        ada.acked.len(),
        ada.refused.len(),
        ada.decided.len(),
        on_board.len()
    );
    assert!(!ada.refused.is_empty(), "the freeze refused writes");
    for op in &ada.refused {
        assert!(
            !on_board.contains(&op_id(op)),
            "an op its author was told was refused is on the board"
        );
    }
    for op in &ada.acked {
        assert!(
            on_board.contains(&op_id(op)),
            "an acknowledged op is missing"
        );
    }
    assert_eq!(ada.board.snapshot(), bob.board.snapshot(), "one board");
}

#[tokio::test]
async fn an_op_whose_pipeline_timed_out_is_applied_once_or_never_as_its_author_was_told() {
    let FaultyPair {
        proxy,
        faulty,
        healthy,
        room,
    } = FaultyPair::start().await;
    let mut ada = Pen::new("ada", &room, &room.edit);
    ada.connect(faulty.addr).await.unwrap();
    let mut bob = Pen::new("bob", &room, &room.view);
    bob.connect(healthy.addr).await.unwrap();
    // Requests that reach Redis after the node gave up on them (Redis must refuse them
    // itself), then replies that come back after it gave up (Redis applied the ops: the
    // author must learn that, not be told they were refused).
    let late = REDIS_TIMEOUT + Duration::from_millis(1500);
    for (what, up, down) in [
        ("requests", late, Duration::ZERO),
        ("replies", Duration::ZERO, late),
    ] {
        let (acked, refused) = (ada.acked.len(), ada.refused.len());
        let start = Instant::now();
        let mut delayed = false;
        let mut tick = tokio::time::interval(Duration::from_millis(16));
        while start.elapsed() < Duration::from_secs(5) {
            tick.tick().await;
            if !delayed && start.elapsed() > Duration::from_millis(500) {
                proxy.delay(up, down);
                delayed = true;
            }
            if delayed && start.elapsed() > Duration::from_millis(3500) {
                proxy.heal();
            }
            if !ada.connected() {
                let _ = ada.connect(faulty.addr).await;
            }
            ada.draw(text_op(16)).await;
            ada.drain(Duration::from_millis(2)).await;
        }
        proxy.heal();
        ada.settle(faulty.addr, harness::TIMEOUT).await;
        println!(
            "{what} late: {} ops acknowledged, {} refused",
            ada.acked.len() - acked,
            ada.refused.len() - refused,
        );
    }
    let head = ada.head().expect("joined");
    bob.sync_to(head, harness::TIMEOUT).await;
    let on_board: std::collections::HashSet<kokuban_protocol::StrokeId> =
        bob.board.strokes().map(|s| s.id).collect();
    assert!(!ada.refused.is_empty(), "late requests refused writes");
    for op in &ada.refused {
        assert!(
            !on_board.contains(&op_id(op)),
            "an op its author was told was refused is on the board"
        );
    }
    for op in &ada.acked {
        assert!(
            on_board.contains(&op_id(op)),
            "an acknowledged op is missing"
        );
    }
    assert_eq!(ada.board.snapshot(), bob.board.snapshot(), "one board");
}
