//! Cluster mode on a Redis Cluster (`--redis-cluster`): rooms spread over its masters by slot,
//! each room's ops sequenced by the master of its slot and relayed over sharded pub/sub. Against
//! a real cluster of six `redis-server`s; a slot is moved and a master is killed under the
//! rooms while people draw.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kokuban_protocol::Op;
use kokuban_server::config::ClusterConfig;
use kokuban_testkit::cluster::{MASTERS, RedisCluster};
use kokuban_testkit::tls::Certs;

use crate::harness::cluster::{
    NodeProcess, PRESENCE_TTL, an_op_crosses, create_room_at, metric_at,
};
use crate::harness::pen::{Got, Pen, op_id, text_op};
use crate::harness::redis::free_port;
use crate::harness::{TIMEOUT, TestRoom, TestServer, http};

/// An in-process node of a cluster whose Redis is `cluster`, with `replicas` wanted per write.
async fn node_on(cluster: &RedisCluster, name: &str, replicas: u32) -> TestServer {
    node_of(ClusterConfig::sharded(cluster.seed_urls()), name, replicas).await
}

/// An in-process node of the cluster `redis` says, with `replicas` wanted per write.
async fn node_of(mut redis: ClusterConfig, name: &str, replicas: u32) -> TestServer {
    redis.presence_ttl = PRESENCE_TTL;
    redis.redis_timeout = Duration::from_secs(1);
    redis.replicas = replicas;
    let name = name.to_owned();
    TestServer::start_with(move |c| {
        c.node_id = name;
        c.cluster = Some(redis);
    })
    .await
}

/// Two editors of `room`: ada on node `a`, bob on node `b`, both joined.
async fn editors(room: &TestRoom, a: &TestServer, b: &TestServer) -> (Pen, Pen) {
    let mut ada = Pen::new("ada", room, &room.edit);
    let mut bob = Pen::new("bob", room, &room.edit);
    ada.connect(a.addr).await.unwrap();
    bob.connect(b.addr).await.unwrap();
    (ada, bob)
}

/// The room's slot, and a master that does not serve it.
async fn slot_and_another_master(cluster: &RedisCluster, room: &TestRoom) -> (u16, usize) {
    let slot = cluster.slot_of(&seq_key(room)).await;
    let from = cluster.master_of_slot(slot).await;
    let to = cluster.masters().await.into_iter().find(|m| *m != from);
    (slot, to.expect("another master"))
}

/// A node name no other test of this binary uses (they share one cluster).
fn unique(name: &str) -> String {
    format!("{name}-{:08x}", rand::random::<u32>())
}

/// The key every room has (its sequence counter): its slot is the room's.
fn seq_key(room: &TestRoom) -> String {
    format!("kokuban:{{{}}}:seq", room.id)
}

/// Rooms created through `addr` until every master serves `per_master` of them.
async fn rooms_on_every_master(
    cluster: &RedisCluster,
    addr: SocketAddr,
    per_master: usize,
) -> HashMap<usize, Vec<TestRoom>> {
    let mut by_master: HashMap<usize, Vec<TestRoom>> = HashMap::new();
    for _ in 0..200 {
        if by_master.len() == MASTERS && by_master.values().all(|r| r.len() >= per_master) {
            return by_master;
        }
        let room = create_room_at(addr).await;
        let master = cluster.master_of(&seq_key(&room)).await;
        let rooms = by_master.entry(master).or_default();
        if rooms.len() < per_master {
            rooms.push(room);
        }
    }
    panic!("200 rooms did not land on every master");
}

/// Draws an op every few milliseconds until `until`, reading what arrives in between and
/// reconnecting to `addr` whenever the connection ends; then waits until every op is answered.
async fn scribble(mut pen: Pen, addr: SocketAddr, until: Instant) -> Pen {
    // About 30 ops a second: a quick hand.
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    while Instant::now() < until {
        if !pen.connected() && pen.connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        pen.draw(text_op(40)).await;
        let next = tick.tick();
        tokio::pin!(next);
        loop {
            tokio::select! {
                _ = &mut next => break,
                // Closed: reconnect first (a closed pen's read returns at once).
                got = pen.read(Duration::from_millis(100)) => if matches!(got, Got::Closed) {
                    break;
                }
            }
        }
    }
    pen.settle(addr, TIMEOUT).await;
    pen
}

/// Draws one op until it is acknowledged (a shard whose replica was only just attached may
/// refuse the first ones), then forgets those refusals.
async fn until_taken(pen: &mut Pen, addr: SocketAddr) {
    let op = text_op(40);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        pen.draw(op.clone()).await;
        pen.settle(addr, TIMEOUT).await;
        if pen.acked.last() == Some(&op) {
            pen.refused.clear();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: writes never taken",
            pen.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Brings both pens to the same head (reconnecting as needed) and checks that they hold the
/// same board, that neither saw an op out of place, and that every op either was told was
/// kept is on it exactly once.
async fn assert_converged(a: &mut Pen, a_at: SocketAddr, b: &mut Pen, b_at: SocketAddr) {
    let lost = converge(a, a_at, b, b_at).await;
    assert_eq!(lost, 0, "acknowledged ops lost");
}

/// Brings both pens to the same head and checks that they hold the same board and that
/// neither saw an op out of place; returns how many acknowledged ops are not on it.
async fn converge(a: &mut Pen, a_at: SocketAddr, b: &mut Pen, b_at: SocketAddr) -> usize {
    for (p, at) in [(&mut *a, a_at), (&mut *b, b_at)] {
        if !p.connected() {
            p.connect(at).await.expect("reconnects");
        }
        p.drain(Duration::from_millis(300)).await;
    }
    let head = [a.head(), b.head()]
        .into_iter()
        .flatten()
        .max_by_key(|p| p.seq.0)
        .expect("joined");
    a.sync_to(head, TIMEOUT).await;
    b.sync_to(head, TIMEOUT).await;
    assert_eq!(a.board.len(), b.board.len(), "as many items");
    assert!(a.board.snapshot() == b.board.snapshot(), "the same board");
    let mut lost = 0;
    for p in [&*a, &*b] {
        assert!(p.misplaced.is_empty(), "{}: {:?}", p.name, p.misplaced);
        lost += p
            .acked
            .iter()
            .filter(|op| p.board.get(&op_id(op)).is_none())
            .count();
    }
    if a.snapshots == 0 && b.snapshots == 0 {
        // Every sequenced op is one text item: an op sequenced twice would leave more seqs
        // than items. (A new history starts from a snapshot, and its seqs over.)
        assert_eq!(
            head.seq.0 as usize,
            a.board.len(),
            "every op sequenced once"
        );
    }
    lost
}

/// The clients named `name` connected to `node`, as `CLIENT LIST` gives them.
async fn clients_named(cluster: &RedisCluster, node: usize, name: &str) -> Vec<String> {
    let list = cluster.node(node).command(&["CLIENT", "LIST"]).await;
    let list: String = redis::from_redis_value(list).unwrap();
    list.lines()
        .filter(|l| l.split(' ').any(|f| f == format!("name=kokuban:{name}")))
        .map(str::to_owned)
        .collect()
}

/// A field (`ssub=2`) of a `CLIENT LIST` line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(' ')
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_default()
}

#[tokio::test]
async fn rooms_spread_over_every_master_and_each_keeps_one_order_across_nodes() {
    let cluster = RedisCluster::shared().await;
    let (a_name, b_name) = (unique("spread-a"), unique("spread-b"));
    let a = node_on(cluster, &a_name, 0).await;
    let b = node_on(cluster, &b_name, 0).await;
    let rooms = rooms_on_every_master(cluster, a.addr, 2).await;

    // In every room, one member on each node draws at the same time.
    let until = Instant::now() + Duration::from_millis(1500);
    let mut drawing = Vec::new();
    for room in rooms.values().flatten() {
        let (ada, bob) = editors(room, &a, &b).await;
        drawing.push((
            tokio::spawn(scribble(ada, a.addr, until)),
            tokio::spawn(scribble(bob, b.addr, until)),
        ));
    }
    let mut members = Vec::new();
    for (ada, bob) in drawing {
        let (mut ada, mut bob) = (ada.await.unwrap(), bob.await.unwrap());
        assert!(
            ada.refused.is_empty() && bob.refused.is_empty(),
            "nothing refused"
        );
        assert!(ada.acked.len() >= 10 && bob.acked.len() >= 10, "both drew");
        assert_converged(&mut ada, a.addr, &mut bob, b.addr).await;
        members.push((ada, bob));
    }

    // Each room lives on its slot's master, and each node holds one subscription connection
    // per master, subscribed to exactly the channels of that master's rooms.
    for (&master, rooms) in &rooms {
        for room in rooms {
            let exists = cluster
                .node(master)
                .command(&["EXISTS", &format!("kokuban:{{{}}}:log", room.id)])
                .await;
            assert_eq!(
                exists,
                redis::Value::Int(1),
                "the log is on the room's master"
            );
        }
        for name in [&a_name, &b_name] {
            let (subscribers, commands): (Vec<String>, Vec<String>) =
                clients_named(cluster, master, name)
                    .await
                    .into_iter()
                    .partition(|l| field(l, "ssub") != "0");
            assert_eq!(subscribers.len(), 1, "one subscriber per node per master");
            assert_eq!(field(&subscribers[0], "ssub"), rooms.len().to_string());
            // The command connection carries the node's name too, for operators.
            assert_eq!(commands.len(), 1, "one command connection: {commands:?}");
        }
        // Operators see the same per shard.
        for node in [&a, &b] {
            let series = format!(
                "kokuban_redis_shard_subscriptions{{shard=\"{}\"}}",
                cluster.node(master).addr()
            );
            assert_eq!(metric_at(node.addr, &series).await, rooms.len() as f64);
        }
    }
}

#[tokio::test]
async fn a_redis_cluster_reached_over_tls_serves_rooms_on_every_master() {
    let certs = Certs::new();
    let cluster = RedisCluster::start_tls(&certs).await;
    let tls_seeds = cluster.tls_seed_urls();
    let node = |name: &'static str| {
        let mut redis = ClusterConfig::sharded(tls_seeds.clone());
        redis.redis_ca = Some(std::fs::read(&certs.ca).unwrap());
        node_of(redis, name, 0)
    };
    let (a, b) = (node("tls-a").await, node("tls-b").await);
    let rooms = rooms_on_every_master(&cluster, a.addr, 1).await;
    for (&master, rooms) in &rooms {
        an_op_crosses(&rooms[0], a.addr, b.addr).await;
        // The shard the nodes use is the master's TLS port, found from CLUSTER SLOTS asked
        // over TLS: nothing reached a plain port.
        let tls_addr = tls_seeds[master]
            .trim_start_matches("rediss://")
            .trim_end_matches('/');
        for node in [&a, &b] {
            let series = format!("kokuban_redis_shard_subscriptions{{shard=\"{tls_addr}\"}}");
            assert_eq!(metric_at(node.addr, &series).await, 1.0, "{series}");
        }
    }
}

#[tokio::test]
async fn a_room_whose_slot_moves_to_another_master_keeps_every_acknowledged_op_once() {
    let cluster = RedisCluster::shared().await;
    let a = node_on(cluster, &unique("move-a"), 0).await;
    let b = node_on(cluster, &unique("move-b"), 0).await;
    let room = create_room_at(a.addr).await;
    let (ada, bob) = editors(&room, &a, &b).await;
    let (slot, to) = slot_and_another_master(cluster, &room).await;

    // Both draw before, during and after the move; the move takes a while (its keys go one
    // at a time), so ops meet the slot half moved (ASK, TRYAGAIN) and then moved (MOVED), and
    // are sent again until they find it.
    let until = Instant::now() + Duration::from_secs(6);
    let drawing = (
        tokio::spawn(scribble(ada, a.addr, until)),
        tokio::spawn(scribble(bob, b.addr, until)),
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cluster.move_slot(slot, to, Duration::from_millis(50)).await;
    let (mut ada, mut bob) = (drawing.0.await.unwrap(), drawing.1.await.unwrap());
    assert_eq!(cluster.master_of_slot(slot).await, to);
    eprintln!(
        "slot move: {} + {} ops acknowledged, {} + {} refused, slowest answer {:?} / {:?}",
        ada.acked.len(),
        bob.acked.len(),
        ada.refused.len(),
        bob.refused.len(),
        ada.slowest_answer,
        bob.slowest_answer
    );
    // Ops Redis redirected were sent again where the slot went: none was refused.
    assert!(ada.refused.is_empty() && bob.refused.is_empty());
    assert_converged(&mut ada, a.addr, &mut bob, b.addr).await;

    // The room is served by its new master alone, and live ops still cross nodes through it.
    let log = format!("kokuban:{{{}}}:log", room.id);
    assert_eq!(
        cluster.node(to).command(&["EXISTS", &log]).await,
        redis::Value::Int(1)
    );
    let before = bob.head().expect("joined").seq.0;
    let op: Op = text_op(40);
    ada.draw(op.clone()).await;
    ada.settle(a.addr, TIMEOUT).await;
    assert_eq!(ada.acked.last(), Some(&op), "taken after the move");
    bob.sync_to(ada.head().unwrap(), TIMEOUT).await;
    assert!(bob.head().expect("joined").seq.0 > before);
    assert!(bob.board.get(&op_id(&op)).is_some());
    for node in [&a, &b] {
        assert!(metric_at(node.addr, "kokuban_redis_topology_changes_total").await >= 1.0);
        // Both masters stayed masters: a move, not a failover.
        let failovers = by_shard(node.addr, "kokuban_redis_shard_failovers_total").await;
        assert!(failovers.values().all(|n| *n == 0.0), "{failovers:?}");
    }
}

/// A per-shard family of `/metrics`: each shard's value, by its `host:port`.
async fn by_shard(addr: SocketAddr, family: &str) -> HashMap<String, f64> {
    let r = http(addr, "GET", "/metrics", &[]).await;
    assert_eq!(r.status, 200);
    let prefix = format!("{family}{{shard=\"");
    let series: HashMap<String, f64> = r
        .body
        .lines()
        .filter_map(|l| {
            let (shard, value) = l.strip_prefix(&prefix)?.split_once("\"} ")?;
            Some((shard.to_owned(), value.trim().parse().ok()?))
        })
        .collect();
    assert!(!series.is_empty(), "no series {family}");
    series
}

#[tokio::test]
async fn a_killed_master_fails_over_and_no_op_its_replica_acknowledged_is_lost() {
    let mut cluster = RedisCluster::start().await;
    let a = node_on(&cluster, "failover-a", 1).await;
    let b = node_on(&cluster, "failover-b", 1).await;
    let rooms = rooms_on_every_master(&cluster, a.addr, 1).await;
    let mut masters: Vec<usize> = rooms.keys().copied().collect();
    masters.sort_unstable();
    let (victim, bystander) = (masters[0], masters[1]);
    let (doomed, calm) = (&rooms[&victim][0], &rooms[&bystander][0]);

    let mut joined = Vec::new();
    for room in [doomed, calm] {
        let (mut ada, mut bob) = editors(room, &a, &b).await;
        until_taken(&mut ada, a.addr).await;
        until_taken(&mut bob, b.addr).await;
        joined.push((ada, bob));
    }
    let until = Instant::now() + Duration::from_secs(8);
    let mut pens = Vec::new();
    for (ada, bob) in joined {
        pens.push((
            tokio::spawn(scribble(ada, a.addr, until)),
            tokio::spawn(scribble(bob, b.addr, until)),
        ));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cluster.kill(victim);
    // Both nodes stay ready meanwhile: they serve the rooms of the other shards.
    let a_addr = a.addr;
    let watching = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(http(a_addr, "GET", "/readyz", &[]).await.status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        statuses
    });
    cluster.wait_failover().await;
    let promoted = cluster.master_of(&seq_key(doomed)).await;
    assert_ne!(promoted, victim);
    // The new master has no replica left: with one wanted, its rooms turn read-only (told,
    // never acknowledged unreplicated) until the old master comes back as its replica.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.restart(victim).await;

    let mut results = Vec::new();
    for (ada, bob) in pens {
        results.push((ada.await.unwrap(), bob.await.unwrap()));
    }
    let statuses = watching.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "/readyz: {statuses:?}");
    let (mut calm_a, mut calm_b) = results.pop().unwrap();
    let (mut doomed_a, mut doomed_b) = results.pop().unwrap();
    eprintln!(
        "failover: {} + {} ops acknowledged, {} + {} refused, slowest answer {:?} / {:?}",
        doomed_a.acked.len(),
        doomed_b.acked.len(),
        doomed_a.refused.len(),
        doomed_b.refused.len(),
        doomed_a.slowest_answer,
        doomed_b.slowest_answer
    );
    // The room on another master never noticed.
    for p in [&calm_a, &calm_b] {
        assert!(
            p.refused.is_empty(),
            "{}: refused on a healthy shard",
            p.name
        );
        assert!(
            p.closes.is_empty(),
            "{}: disconnected on a healthy shard",
            p.name
        );
    }
    assert_converged(&mut calm_a, a.addr, &mut calm_b, b.addr).await;
    assert_converged(&mut doomed_a, a.addr, &mut doomed_b, b.addr).await;

    // Writes are taken again once the old master replicates the new one.
    let op = text_op(40);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        doomed_a.draw(op.clone()).await;
        doomed_a.settle(a.addr, TIMEOUT).await;
        if doomed_a.acked.last() == Some(&op) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the room never took writes again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    doomed_b.sync_to(doomed_a.head().unwrap(), TIMEOUT).await;
    // Each node saw one failover, and names the shard it happened to by its new master.
    let promoted_at = cluster.node(promoted).addr().to_string();
    for node in [&a, &b] {
        assert!(metric_at(node.addr, "kokuban_redis_topology_changes_total").await >= 1.0);
        let failovers = by_shard(node.addr, "kokuban_redis_shard_failovers_total").await;
        assert_eq!(failovers.get(&promoted_at), Some(&1.0), "{failovers:?}");
        assert_eq!(failovers.values().sum::<f64>(), 1.0, "{failovers:?}");
    }
}

#[tokio::test]
async fn without_replicas_a_failover_that_loses_the_tail_still_leaves_everyone_on_one_board() {
    let mut cluster = RedisCluster::start().await;
    let a = node_on(&cluster, "lossy-a", 0).await;
    let b = node_on(&cluster, "lossy-b", 0).await;
    let room = create_room_at(a.addr).await;
    let victim = cluster.master_of(&seq_key(&room)).await;
    let (ada, bob) = editors(&room, &a, &b).await;

    // Both draw through the master's death and its replica's promotion, and on after it.
    let until = Instant::now() + Duration::from_secs(7);
    let drawing = (
        tokio::spawn(scribble(ada, a.addr, until)),
        tokio::spawn(scribble(bob, b.addr, until)),
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cluster.kill(victim);
    cluster.wait_failover().await;
    let (mut ada, mut bob) = (drawing.0.await.unwrap(), drawing.1.await.unwrap());
    let lost = converge(&mut ada, a.addr, &mut bob, b.addr).await;
    eprintln!(
        "failover without replicas: {} + {} ops acknowledged, {lost} of them lost, {} + {} \
         refused, {} + {} new histories",
        ada.acked.len(),
        bob.acked.len(),
        ada.refused.len(),
        bob.refused.len(),
        ada.snapshots,
        bob.snapshots
    );

    // The promoted replica takes writes at once (none is wanted), and they cross nodes.
    let op = text_op(40);
    ada.draw(op.clone()).await;
    ada.settle(a.addr, TIMEOUT).await;
    assert_eq!(ada.acked.last(), Some(&op));
    bob.sync_to(ada.head().unwrap(), TIMEOUT).await;
    assert!(bob.board.get(&op_id(&op)).is_some());
}

#[tokio::test]
async fn a_node_killed_and_restarted_while_the_rooms_slot_moves_loses_nothing_acknowledged() {
    let cluster = RedisCluster::shared().await;
    let seeds = cluster.seed_urls();
    let secret = format!("resharding-{:032x}", rand::random::<u128>());
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let (a_addr, b_addr) = (loopback(free_port()), loopback(free_port()));
    let _a = NodeProcess::start_sharded(&seeds, &secret, &unique("reshard-a"), a_addr).await;
    let b_name = unique("reshard-b");
    let mut b = NodeProcess::start_sharded(&seeds, &secret, &b_name, b_addr).await;
    let room = create_room_at(a_addr).await;
    let mut ada = Pen::new("ada", &room, &room.edit);
    let mut bob = Pen::new("bob", &room, &room.edit);
    ada.connect(a_addr).await.unwrap();
    bob.connect(b_addr).await.unwrap();
    let (slot, to) = slot_and_another_master(cluster, &room).await;

    // The slot moves slowly; Bob's node is killed early in the move and started again (on
    // the same address, from the seeds) while it is still under way.
    let until = Instant::now() + Duration::from_secs(7);
    let drawing = (
        tokio::spawn(scribble(ada, a_addr, until)),
        tokio::spawn(scribble(bob, b_addr, until)),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let moving = cluster.move_slot(slot, to, Duration::from_millis(250));
    let crash = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        NodeProcess::start_sharded(&seeds, &secret, &b_name, b_addr).await
    };
    let ((), restarted) = tokio::join!(moving, crash);
    b = restarted;
    let (mut ada, mut bob) = (drawing.0.await.unwrap(), drawing.1.await.unwrap());
    assert_eq!(cluster.master_of_slot(slot).await, to);
    assert!(!bob.closes.is_empty(), "bob's node went away under him");
    assert_converged(&mut ada, a_addr, &mut bob, b_addr).await;
    assert!(b.is_running());
}
