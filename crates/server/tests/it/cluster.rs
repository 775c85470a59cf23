//! Cluster mode against real processes: the test's own `redis-server`s, several nodes (in
//! process, and as child processes of the binary where one must die abruptly), and a real
//! nginx in front. Every wait is for an event, bounded by the harness's generous timeout.

use std::collections::HashSet;
use std::time::Instant;

use futures_util::StreamExt;
use kokuban_protocol::Submit;
use kokuban_protocol::{
    ClientMsg, Color, ErrorCode, MemberId, Op, Point, PresenceEvent, RoomState, Seq, Sequenced,
    ServerMsg, StrokeId, Text, Width, decode_server,
};

use crate::harness;
use crate::harness::cluster::{
    NodeProcess, PRESENCE_TTL, apply_new_welcome, create_room_at, join_at, node, node_with,
    wait_ready,
};
use crate::harness::nginx::Nginx;
use crate::harness::redis::RedisServer;
use crate::harness::{TestClient, http, stroke_ops};

/// Every op a client applied: (seq, author), in the order applied.
fn order(c: &TestClient) -> Vec<(Seq, MemberId)> {
    c.seen.iter().map(|s| (s.seq, s.author)).collect()
}

/// Asserts that a client applied every op of its history exactly once, in seq order, from
/// `first` on.
fn assert_exactly_once(c: &TestClient, first: u64) {
    let seqs: Vec<u64> = c.seen.iter().map(|s| s.seq.0).collect();
    let head = c.board.position().expect("joined").seq.0;
    assert_eq!(
        seqs,
        (first..=head).collect::<Vec<_>>(),
        "each op exactly once, in order"
    );
}

/// The members a client knows of: its Welcome's, then every presence event since.
fn members_known(c: &TestClient) -> HashSet<MemberId> {
    let mut known: HashSet<MemberId> = c
        .welcome
        .as_ref()
        .expect("joined")
        .members
        .iter()
        .map(|m| m.id)
        .collect();
    for m in &c.other {
        match m {
            ServerMsg::Presence(PresenceEvent::Joined(m) | PresenceEvent::Updated(m)) => {
                known.insert(m.id);
            }
            ServerMsg::Presence(PresenceEvent::Left(id)) => {
                known.remove(id);
            }
            _ => {}
        }
    }
    known
}

/// Reads until the client knows exactly `ids` to be in the room.
async fn wait_members(c: &mut TestClient, ids: &HashSet<MemberId>) {
    while &members_known(c) != ids {
        c.recv().await;
    }
}

/// Brings every client to the same head and checks that they agree on everything.
async fn converge(clients: &mut [&mut TestClient]) -> Seq {
    for c in clients.iter_mut() {
        c.settle().await;
    }
    let head = clients
        .iter()
        .map(|c| c.board.position().expect("joined").seq)
        .max()
        .unwrap();
    for c in clients.iter_mut() {
        c.sync_to(head).await;
    }
    let first = &clients[0];
    for c in clients.iter().skip(1) {
        assert_eq!(
            c.board.position(),
            first.board.position(),
            "same place in the same history"
        );
        assert_eq!(c.board.snapshot(), first.board.snapshot(), "same board");
    }
    head
}

async fn relay_across(nodes: usize) {
    let redis = RedisServer::shared().await;
    let mut servers = Vec::new();
    for i in 0..nodes {
        servers.push(node(redis, &format!("node-{i}")).await);
    }
    let room = servers[0].create_room().await;
    let mut ada = servers[0].editor(&room, "ada").await;
    let mut others = Vec::new();
    for (i, s) in servers.iter().enumerate().skip(1) {
        others.push(s.editor(&room, &format!("member-{i}")).await);
    }
    // Presence crosses nodes: everyone comes to know everyone.
    let everyone: HashSet<MemberId> = std::iter::once(ada.member())
        .chain(others.iter().map(|c| c.member()))
        .collect();
    wait_members(&mut ada, &everyone).await;
    for c in &mut others {
        wait_members(c, &everyone).await;
    }

    // Cursors cross nodes too (coalesced, never stored).
    ada.send_cursor(120, -40).await;
    let me = ada.member();
    for c in &mut others {
        c.until_seen(|m| matches!(m, ServerMsg::Cursor(u) if u.member == me && u.at.is_some_and(|p| p.x() == 120)))
            .await;
    }

    // Ada begins a stroke and sends a batch of points: every other node's member receives
    // both while the stroke is still being drawn.
    let (id, ops) = stroke_ops(1, 40, 8);
    for op in &ops[..2] {
        ada.send_op(op.clone()).await;
    }
    for c in &mut others {
        let got = c
            .recv_until(|m| matches!(m, ServerMsg::Op(s) if s.op.is_points()))
            .await;
        let ServerMsg::Op(points) = got else {
            unreachable!()
        };
        assert_eq!(points.author, ada.author());
        assert!(!c.board.get(&id).unwrap().finished, "stroke still open");
    }

    // Everyone draws at once, interleaved with the rest of Ada's stroke.
    let theirs: Vec<_> = (0..others.len())
        .map(|i| stroke_ops(10 + i as u32, 30, 5).1)
        .collect();
    let rest = &ops[2..];
    let longest = theirs
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(rest.len());
    for i in 0..longest {
        if let Some(op) = rest.get(i) {
            ada.send_op(op.clone()).await;
        }
        for (c, ops) in others.iter_mut().zip(&theirs) {
            if let Some(op) = ops.get(i) {
                c.send_op(op.clone()).await;
            }
        }
    }
    let mut all: Vec<&mut TestClient> =
        std::iter::once(&mut ada).chain(others.iter_mut()).collect();
    let head = converge(&mut all).await;

    // One order for all, gapless, the same board.
    for c in &all {
        assert_eq!(order(c), order(all[0]));
        assert_exactly_once(c, 1);
    }
    assert_eq!(all[0].seen.len() as u64, head.0);
    assert_eq!(all[0].board.len(), nodes);
    assert!(all[0].board.strokes().all(|s| s.finished));
}

#[tokio::test]
async fn two_nodes_relay_every_op_while_it_is_drawn_in_one_order() {
    relay_across(2).await;
}

#[tokio::test]
async fn three_nodes_relay_every_op_while_it_is_drawn_in_one_order() {
    relay_across(3).await;
}

#[tokio::test]
async fn a_killed_subscription_mid_stream_loses_and_duplicates_nothing() {
    let redis = RedisServer::start(false).await;
    let a_node = node(&redis, "a").await;
    let b_node = node(&redis, "b").await;
    let room = a_node.create_room().await;
    let mut ada = a_node.editor(&room, "ada").await;
    let mut bob = b_node.viewer(&room, "bob").await;
    let mut cy = a_node.viewer(&room, "cy").await;

    for seed in 0..8 {
        ada.draw_stroke(seed, 60, 4).await;
    }
    // Mid-stream: Bob is receiving, and most of the strokes are still on their way.
    bob.recv_until(|m| matches!(m, ServerMsg::Op(_))).await;
    let killed = redis.kill_subscribers().await;
    assert!(killed >= 2, "both nodes' subscriptions were cut ({killed})");
    for seed in 8..16 {
        ada.draw_stroke(seed, 60, 4).await;
    }
    // And once more, after the nodes resubscribed.
    wait_ready(a_node.addr, 200).await;
    wait_ready(b_node.addr, 200).await;
    redis.kill_subscribers().await;
    for seed in 16..20 {
        ada.draw_stroke(seed, 60, 4).await;
    }

    converge(&mut [&mut ada, &mut bob, &mut cy]).await;
    for c in [&ada, &bob, &cy] {
        assert_exactly_once(c, 1);
        assert_eq!(order(c), order(&ada));
    }
    assert_eq!(bob.board.len(), 20);
}

#[tokio::test]
async fn a_killed_command_connection_mid_stream_answers_every_op_once_in_order() {
    let redis = RedisServer::start(false).await;
    let a_node = node(&redis, "a").await;
    let b_node = node(&redis, "b").await;
    let room = a_node.create_room().await;
    let mut ada = a_node.editor(&room, "ada").await;
    let mut bob = b_node.viewer(&room, "bob").await;
    let ada_id = ada.author();
    // Text items: independent of each other, so any subset of them applies.
    let ops: Vec<Op> = (0..300)
        .map(|i| Op::Text {
            id: StrokeId(uuid::Uuid::new_v4()),
            at: Point::new(i * 10, 0, 0).unwrap(),
            color: Color::rgb(0, 0, 0),
            size: Width::new(16).unwrap(),
            text: Text::new(format!("t{i}")).unwrap(),
        })
        .collect();
    // Sent raw (the answers are read below, frame by frame); the nodes' command connections
    // are cut while most of them are in flight.
    for (i, op) in ops.iter().enumerate() {
        let n = ada.next_n;
        ada.next_n += 1;
        ada.send(&ClientMsg::Op(Submit { n, op: op.clone() })).await;
        if i == 100 {
            redis.command(&["CLIENT", "KILL", "TYPE", "normal"]).await;
            // The rest go out once the node is connected again, so some are sequenced
            // however slow the machine.
            wait_ready(a_node.addr, 200).await;
        }
    }
    // One answer per op, in the order sent: its place (Ack) or a refusal, never both, never
    // none.
    let mut answers = Vec::new();
    // Nobody else writes: an Ack by check byte names the place after Ada's last one.
    let mut last = ada.position().seq;
    while answers.len() < ops.len() {
        let frame = tokio::time::timeout(harness::TIMEOUT, ada.ws.next())
            .await
            .expect("an answer in time")
            .expect("connection open")
            .expect("a frame");
        let tokio_tungstenite::tungstenite::Message::Binary(bytes) = frame else {
            continue;
        };
        match decode_server(&bytes).unwrap() {
            ServerMsg::Ack(a) => {
                last = a.seq;
                answers.push(Some(a.seq));
            }
            ServerMsg::Acked(check) => {
                last = last.next();
                assert_eq!(last.0 as u8, check, "the Ack of the next place");
                answers.push(Some(last));
            }
            ServerMsg::Error(e) if e.code == ErrorCode::TemporarilyReadOnly => answers.push(None),
            ServerMsg::Error(e) => panic!("unexpected error {e:?}"),
            _ => {}
        }
    }
    let acked: Vec<Seq> = answers.iter().flatten().copied().collect();
    // Those that reached Redis before the cut, and those sent after the reconnect.
    assert!(!acked.is_empty());
    assert!(acked.windows(2).all(|w| w[0] < w[1]), "acks in order");
    // The other node delivered exactly the acknowledged ops, each once, at their places.
    bob.sync_to(*acked.last().unwrap()).await;
    assert_exactly_once(&bob, 1);
    let delivered: Vec<(Seq, &Op)> = bob
        .seen
        .iter()
        .filter(|s| s.author == ada_id)
        .map(|s| (s.seq, &s.op))
        .collect();
    let expected: Vec<(Seq, &Op)> = answers
        .iter()
        .zip(&ops)
        .filter_map(|(a, op)| a.map(|seq| (seq, op)))
        .collect();
    assert_eq!(delivered, expected);
    // And writing goes on once the node is connected again.
    wait_ready(a_node.addr, 200).await;
    ada.send_op(Op::Clear).await;
    bob.recv_until(|m| matches!(m, ServerMsg::Op(s) if s.op == Op::Clear))
        .await;
}

/// Redis stops and comes back: writes are refused during the outage while clients stay
/// connected, then everything resumes. Without persistence the history is new, but the board
/// the nodes held survives it.
async fn redis_outage(persistent: bool) {
    let mut redis = RedisServer::start(persistent).await;
    let a_node = node(&redis, "a").await;
    let b_node = node(&redis, "b").await;
    let room = a_node.create_room().await;
    let mut ada = a_node.editor(&room, "ada").await;
    let mut bob = b_node.editor(&room, "bob").await;
    for seed in 0..3 {
        ada.draw_stroke(seed, 20, 5).await;
    }
    bob.draw_stroke(9, 20, 5).await;
    converge(&mut [&mut ada, &mut bob]).await;
    let epoch = ada.epoch();
    let strokes = ada.board.len();

    redis.stop().await;
    wait_ready(a_node.addr, 503).await;
    wait_ready(b_node.addr, 503).await;
    // Creating a room needs Redis: once that fails, the nodes know it is gone.
    for s in [&a_node, &b_node] {
        let deadline = Instant::now() + harness::TIMEOUT;
        while http(s.addr, "POST", "/api/rooms", &[]).await.status == 201 {
            assert!(
                Instant::now() < deadline,
                "rooms still created without Redis"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let (_, refused) = stroke_ops(50, 5, 5);
    for c in [&mut ada, &mut bob] {
        c.send_op(refused[0].clone()).await;
        let message = c.expect_error(ErrorCode::TemporarilyReadOnly).await;
        assert!(message.contains("try again"), "{message}");
    }
    // Still connected, and a cursor still gets through locally.
    ada.send_cursor(5, 5).await;

    redis.restart().await;
    wait_ready(a_node.addr, 200).await;
    wait_ready(b_node.addr, 200).await;
    if !persistent {
        for c in [&mut ada, &mut bob] {
            let ServerMsg::Welcome(w) = c.recv_until(|m| matches!(m, ServerMsg::Welcome(_))).await
            else {
                unreachable!()
            };
            assert_ne!(w.epoch, epoch, "a lost history is a new epoch");
            apply_new_welcome(c, &w);
            assert_eq!(c.board.len(), strokes, "the board the nodes held survives");
        }
        assert_eq!(ada.epoch(), bob.epoch());
    }

    // Everything resumes without a restart.
    ada.draw_stroke(20, 20, 5).await;
    bob.draw_stroke(21, 20, 5).await;
    converge(&mut [&mut ada, &mut bob]).await;
    assert_eq!(order(&ada), order(&bob));
    assert_eq!(ada.board.len(), strokes + 2);
    if persistent {
        assert_eq!(ada.board.position().unwrap().epoch, epoch, "same history");
        assert_exactly_once(&ada, 1);
    }
    // A newcomer on either node sees the same board.
    let carol = b_node.viewer(&room, "carol").await;
    assert_eq!(carol.board.snapshot(), ada.board.snapshot());
}

#[tokio::test]
async fn redis_restarted_with_persistence_refuses_writes_meanwhile_then_resumes_the_same_history() {
    redis_outage(true).await;
}

#[tokio::test]
async fn redis_restarted_without_persistence_starts_a_new_epoch_and_clients_converge() {
    redis_outage(false).await;
}

#[tokio::test]
async fn a_node_killed_abruptly_its_clients_resume_elsewhere_and_presence_drops_them() {
    let redis = RedisServer::shared().await;
    let secret = "the cluster's shared secret, 32 bytes or more";
    let mut a_node = NodeProcess::start(redis, secret, "a").await;
    let b_node = node_with(redis, "b", |c| {
        c.cluster.as_mut().unwrap().secret = Some(secret.into());
    })
    .await;
    let room = b_node.create_room().await;
    let mut yui = b_node.editor(&room, "yui").await;
    let mut xan = join_at(a_node.addr, &room, &room.edit, None).await;
    let xan_id = xan.member();
    yui.until_seen(
        |m| matches!(m, ServerMsg::Presence(PresenceEvent::Joined(m)) if m.id == xan_id),
    )
    .await;
    for seed in 0..4 {
        xan.draw_stroke(seed, 30, 6).await;
    }
    converge(&mut [&mut xan, &mut yui]).await;
    let kept = xan.board.clone();

    a_node.kill();
    let killed_at = Instant::now();
    assert_eq!(
        xan.expect_close().await,
        None,
        "no goodbye from a dead node"
    );
    // While Xan reconnects, Yui goes on drawing.
    yui.draw_stroke(7, 30, 6).await;
    yui.settle().await;

    // Xan resumes on the other node: exactly the ops it missed, nothing else.
    let mut xan = join_at(b_node.addr, &room, &room.edit, Some(kept.clone())).await;
    let RoomState::Replay { ops } = &xan.welcome.as_ref().unwrap().state else {
        panic!("a resume on another node replays the gap");
    };
    let from = kept.position().unwrap().seq.0 + 1;
    let replayed: Vec<u64> = ops.iter().map(|s: &Sequenced| s.seq.0).collect();
    assert_eq!(
        replayed,
        (from..=yui.board.position().unwrap().seq.0).collect::<Vec<_>>()
    );
    assert_exactly_once(&xan, from);
    assert_eq!(xan.board.snapshot(), yui.board.snapshot());

    // The dead node's member leaves everyone's presence list within the TTL (plus one
    // refresh period): nobody said goodbye for it.
    yui.until_seen(|m| matches!(m, ServerMsg::Presence(PresenceEvent::Left(id)) if *id == xan_id))
        .await;
    let gone_after = killed_at.elapsed();
    assert!(
        gone_after < PRESENCE_TTL * 3,
        "left after {gone_after:?} (ttl {PRESENCE_TTL:?})"
    );
    while members_known(&xan).contains(&xan_id) {
        xan.recv().await;
    }

    xan.draw_stroke(9, 30, 6).await;
    converge(&mut [&mut xan, &mut yui]).await;
    assert_eq!(yui.board.len(), 6);
}

#[tokio::test]
async fn through_nginx_two_clients_land_on_different_nodes_and_see_each_others_strokes() {
    let redis = RedisServer::shared().await;
    let a_node = node(redis, "a").await;
    let b_node = node(redis, "b").await;
    let nginx = Nginx::start(&[a_node.addr, b_node.addr]).await;
    let room = create_room_at(nginx.addr).await;
    let mut one = join_at(nginx.addr, &room, &room.edit, None).await;
    let mut two = join_at(nginx.addr, &room, &room.edit, None).await;
    // Round-robin, no stickiness: one WebSocket on each node.
    a_node.wait_metric("kokuban_members", |v| v == 1.0).await;
    b_node.wait_metric("kokuban_members", |v| v == 1.0).await;

    let id = one.draw_stroke(1, 30, 5).await;
    one.settle().await;
    two.sync_to(one.position().seq).await;
    assert!(two.board.get(&id).is_some_and(|s| s.finished));
    let id2 = two.draw_stroke(2, 30, 5).await;
    converge(&mut [&mut one, &mut two]).await;
    assert!(one.board.get(&id2).is_some());
    assert_eq!(order(&one), order(&two));
}

#[tokio::test]
async fn compaction_in_redis_keeps_late_joiners_on_other_nodes_whole() {
    let redis = RedisServer::shared().await;
    let small = |c: &mut kokuban_server::Config| c.compact_after_ops = 20;
    let a_node = node_with(redis, "a", small).await;
    let b_node = node_with(redis, "b", small).await;
    let room = a_node.create_room().await;
    let mut ada = a_node.editor(&room, "ada").await;
    let mut ids = Vec::new();
    for seed in 0..10 {
        ids.push(ada.draw_stroke(seed, 20, 5).await);
    }
    ada.send_op(Op::Erase {
        ids: kokuban_protocol::Bounded::new(vec![ids[3]]).unwrap(),
    })
    .await;
    ada.settle().await;
    let total = ada.position().seq.0;
    a_node
        .wait_metric("kokuban_compactions_total", |v| v >= 1.0)
        .await;
    // B never held the room: it loads the snapshot Redis keeps, and the log after it.
    let bob = b_node.viewer(&room, "bob").await;
    let RoomState::Snapshot { ops, .. } = &bob.welcome.as_ref().unwrap().state else {
        panic!("a newcomer gets a snapshot");
    };
    assert!(
        (ops.len() as u64) < total,
        "{} of {total} ops replayed",
        ops.len()
    );
    assert_eq!(bob.board.snapshot(), ada.board.snapshot());
    assert_eq!(bob.board.len(), 9);
}

#[tokio::test]
async fn a_room_opens_on_any_node_and_rooms_unload_when_their_last_member_leaves() {
    let redis = RedisServer::shared().await;
    let a_node = node(redis, "a").await;
    let b_node = node(redis, "b").await;
    let room = a_node.create_room().await;
    // Links minted by one node open the room on another: the nodes share the key.
    let ada = b_node.editor(&room, "ada").await;
    b_node
        .wait_metric("kokuban_rooms_loaded", |v| v == 1.0)
        .await;
    ada.close().await;
    // The node stops holding (and receiving) the room after the grace period.
    b_node
        .wait_metric("kokuban_rooms_loaded", |v| v == 0.0)
        .await;
    let channel = format!("kokuban:{{{}}}", room.id);
    let deadline = Instant::now() + harness::TIMEOUT;
    loop {
        let numsub = redis.command(&["PUBSUB", "NUMSUB", &channel]).await;
        let redis::Value::Array(reply) = numsub else {
            panic!("PUBSUB NUMSUB answered {numsub:?}")
        };
        if reply.get(1) == Some(&redis::Value::Int(0)) {
            break;
        }
        assert!(Instant::now() < deadline, "still subscribed to {channel}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // And it opens again, with the same board.
    let bob = b_node.viewer(&room, "bob").await;
    assert!(bob.board.is_empty());
}

/// A Hello that a cap refuses: the error, then close 1013 (try again later).
async fn refused_at(node: &harness::TestServer, room: &harness::TestRoom, code: ErrorCode) {
    let mut c = TestClient::connect(node, room.id.as_str()).await;
    c.hello(&room.id, &room.edit, None).await;
    c.expect_error(code).await;
    assert_eq!(
        c.expect_close().await,
        Some(kokuban_protocol::close::TRY_AGAIN_LATER)
    );
}

#[tokio::test]
async fn a_room_full_across_nodes_and_a_node_full_of_rooms_refuse_joins_while_members_draw_on() {
    let redis = RedisServer::shared().await;
    let a_node = node_with(redis, "a", |c| {
        c.max_rooms = 1;
        c.max_members_per_room = 2;
    })
    .await;
    let b_node = node_with(redis, "b", |c| c.max_members_per_room = 2).await;
    let room = a_node.create_room().await;
    let other = a_node.create_room().await;
    let mut ada = a_node.editor(&room, "ada").await;
    let mut bob = b_node.editor(&room, "bob").await;
    let both: HashSet<MemberId> = [ada.member(), bob.member()].into();
    wait_members(&mut ada, &both).await;
    wait_members(&mut bob, &both).await;

    // Two members, one on each node: the room is full on both.
    refused_at(&a_node, &room, ErrorCode::RoomFull).await;
    refused_at(&b_node, &room, ErrorCode::RoomFull).await;
    // Node a holds one room, which is its cap; node b may load the other room.
    refused_at(&a_node, &other, ErrorCode::Overloaded).await;
    let carol = b_node.editor(&other, "carol").await;
    assert_eq!(a_node.metric("kokuban_rooms_loaded").await, 1.0);

    // The members inside draw on, across the nodes.
    ada.draw_stroke(1, 30, 10).await;
    bob.draw_stroke(2, 30, 10).await;
    converge(&mut [&mut ada, &mut bob]).await;
    assert_eq!(ada.board.len(), 2);
    for (node, reason) in [
        (&a_node, "room_full"),
        (&a_node, "overloaded"),
        (&b_node, "room_full"),
    ] {
        let series = format!("kokuban_rejected_frames_total{{reason=\"{reason}\"}}");
        assert_eq!(node.metric(&series).await, 1.0, "{series}");
    }

    // Once Bob leaves, and node a has heard, a newcomer gets in there.
    bob.close().await;
    let only_ada: HashSet<MemberId> = [ada.member()].into();
    wait_members(&mut ada, &only_ada).await;
    let dan = a_node.editor(&room, "dan").await;
    assert!(dan.board.len() == 2);
    carol.close().await;
}
