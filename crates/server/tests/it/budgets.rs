//! Budgets: what one client can make a node spend, and what it cannot. Each test is an attack
//! that worked once (a flood of presence changes, of new rooms, a development origin on a
//! public node, stalled joiners holding up a shutdown) and what the node does now.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kokuban_protocol::{ClientMsg, Color, ErrorCode, Name, PresenceEvent, Profile, ServerMsg};
use kokuban_server::Server;

use crate::harness::{TIMEOUT, TestClient, TestServer, http, stroke_ops, test_config};

#[tokio::test]
async fn a_flood_of_name_changes_reaches_the_room_coalesced_and_the_last_one_wins() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    // A view-only link may set its name and colour: a flood from it is what was relayed
    // 200 times a second to every member.
    let mut viewer = server.viewer(&room, "viewer").await;
    let started = Instant::now();
    for i in 0..200 {
        let profile = Profile {
            name: Name::new(format!("viewer {i}")).unwrap(),
            color: Color::rgb(i as u8, 0, 0),
        };
        viewer.send(&ClientMsg::Profile(profile)).await;
    }
    let sent_in = started.elapsed();
    let viewer_id = viewer.member();
    let last = ada
        .recv_until(|m| {
            matches!(m, ServerMsg::Presence(PresenceEvent::Updated(who))
                if who.id == viewer_id && who.name.as_str() == "viewer 199")
        })
        .await;
    let took = started.elapsed();
    let ServerMsg::Presence(PresenceEvent::Updated(who)) = last else {
        unreachable!()
    };
    assert_eq!(who.color, Color::rgb(199, 0, 0));
    let updates = ada
        .other
        .iter()
        .chain([&ServerMsg::Presence(PresenceEvent::Updated(who.clone()))])
        .filter(
            |m| matches!(m, ServerMsg::Presence(PresenceEvent::Updated(w)) if w.id == viewer_id),
        )
        .count();
    // One change at once, then at most one per interval: the last arrives within one more.
    let interval = server.config.profile_interval;
    let allowed = 2 + (took.as_secs_f64() / interval.as_secs_f64()).ceil() as usize;
    eprintln!("200 profile frames sent in {sent_in:?}: {updates} updates relayed in {took:?}");
    assert!(
        updates <= allowed,
        "{updates} updates relayed for 200 changes in {took:?}"
    );
    assert!(
        took < sent_in + interval * 4,
        "the last change came late: {took:?}"
    );
}

#[tokio::test]
async fn room_creation_is_limited_per_client_address() {
    let server = TestServer::start_with(|c| c.rooms_per_ip_per_min = 20).await;
    let mut created = 0;
    let mut refused = None;
    for _ in 0..50 {
        let r = http(server.addr, "POST", "/api/rooms", &[]).await;
        match r.status {
            201 => created += 1,
            429 => refused = Some(r),
            other => panic!("POST /api/rooms answered {other}: {}", r.body),
        }
    }
    eprintln!("50 rooms asked for in a row: {created} created");
    assert_eq!(created, 20);
    let refused = refused.expect("some were refused");
    assert!(
        refused.body.contains("too many new rooms"),
        "{}",
        refused.body
    );
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    assert!(server.metric("kokuban_rooms_refused_total").await >= 30.0);
    // Without --trust-forwarded-for, a client cannot claim another address.
    let forged = http(
        server.addr,
        "POST",
        "/api/rooms",
        &[("X-Forwarded-For", "203.0.113.9")],
    )
    .await;
    assert_eq!(forged.status, 429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_budget() {
    let server = TestServer::start_with(|c| {
        c.rooms_per_ip_per_min = 3;
        c.trust_forwarded_for = true;
    })
    .await;
    let create = |chain: &'static str| async move {
        http(
            server.addr,
            "POST",
            "/api/rooms",
            &[("X-Forwarded-For", chain)],
        )
        .await
        .status
    };
    // The proxy appends the address it saw; what the client wrote before it is not trusted.
    for _ in 0..3 {
        assert_eq!(create("10.1.1.1, 198.51.100.7").await, 201);
    }
    assert_eq!(create("10.9.9.9, 198.51.100.7").await, 429);
    assert_eq!(create("198.51.100.8").await, 201);
}

#[tokio::test]
async fn a_public_node_refuses_development_origins_a_local_one_accepts_them() {
    // A node listening on every interface, as a public deployment does (the test still only
    // talks to it over loopback).
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.listen = SocketAddr::from(([0, 0, 0, 0], 0));
    let server = Server::bind(config).await.unwrap();
    let port = server.local_addr().port();
    let stop = server.shutdown_handle();
    let task = tokio::spawn(server.serve());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let from = |origin: &'static str| async move {
        http(addr, "POST", "/api/rooms", &[("Origin", origin)]).await
    };
    let refused = from("http://localhost:9").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("origin not allowed"));
    assert_eq!(from("http://127.0.0.1:3000").await.status, 403);
    let ws = TestClient::connect_to(
        &format!("ws://{addr}/ws/some-room"),
        Some("http://localhost:9"),
    )
    .await;
    assert!(
        ws.is_err(),
        "a WebSocket from a development origin was upgraded"
    );
    // Its own origin (the Host it is reached by) is fine.
    let own = http(
        addr,
        "POST",
        "/api/rooms",
        &[("Origin", &*format!("http://127.0.0.1:{port}").leak())],
    )
    .await;
    assert_eq!(own.status, 201, "{}", own.body);
    stop.shutdown();
    task.await.unwrap().unwrap();

    // On loopback (development) they are accepted.
    let local = TestServer::start().await;
    let r = http(
        local.addr,
        "POST",
        "/api/rooms",
        &[("Origin", "http://localhost:9")],
    )
    .await;
    assert_eq!(r.status, 201);
}

#[test]
fn a_short_cluster_secret_is_refused_with_how_to_make_one() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kokuban"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "redis://127.0.0.1:1",
        ])
        .args(["--secret", "hunter2"])
        .output()
        .expect("the kokuban binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(stderr.contains("openssl rand"), "{stderr}");
}

#[tokio::test]
async fn stalled_joiners_of_a_large_board_do_not_hold_up_a_shutdown_and_nothing_is_lost() {
    let mut server = TestServer::start_with(|c| {
        c.rate_per_sec = 1_000_000;
        c.rate_burst = 1_000_000;
        // A peer that reads nothing would hold its closing handshake this long...
        c.close_timeout = Duration::from_secs(60);
        // ...and the shutdown gives up on it after this.
        c.shutdown_timeout = Duration::from_secs(2);
    })
    .await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    // A board of several MiB: more than a socket's kernel buffers hold.
    for seed in 0..80 {
        let (_, ops) = stroke_ops(seed, 16_000, 1000);
        for op in ops {
            ada.send_op(op).await;
        }
        ada.settle().await;
    }
    let strokes = ada.board.len();
    let seq = ada.position().seq;
    // A member that stops reading while ops keep coming, and joiners that never read their
    // Welcome (each socket with a tiny receive buffer).
    let mut stalled_member = TestClient::connect_small_buffer(&server, room.id.as_str()).await;
    stalled_member.hello(&room.id, &room.view, None).await;
    let mut joiners = Vec::new();
    for _ in 0..10 {
        let mut c = TestClient::connect_small_buffer(&server, room.id.as_str()).await;
        c.hello(&room.id, &room.view, None).await;
        joiners.push(c);
    }
    server.wait_metric("kokuban_members", |n| n >= 12.0).await;

    let started = Instant::now();
    server.stop().await;
    let took = started.elapsed();
    eprintln!("shutdown with 11 stalled readers of a {strokes}-stroke board took {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "shutdown took {took:?} (deadline 2 s)"
    );
    assert!(took < TIMEOUT);
    drop((stalled_member, joiners));

    // The store was flushed: the board is whole after a restart.
    server.restart().await;
    let mut bob = server.viewer(&room, "bob").await;
    bob.sync_to(seq).await;
    assert_eq!(bob.board.len(), strokes);
    assert_eq!(bob.board.snapshot(), ada.board.snapshot());
}

/// Joins `room` with its edit link; the error code of the refusal, if refused.
async fn refused_join(server: &TestServer, room: &crate::harness::TestRoom) -> Option<ErrorCode> {
    let mut c = TestClient::connect(server, room.id.as_str()).await;
    c.hello(&room.id, &room.edit, None).await;
    match c
        .recv_until(|m| matches!(m, ServerMsg::Welcome(_) | ServerMsg::Error(_)))
        .await
    {
        ServerMsg::Error(e) => Some(e.code),
        _ => None,
    }
}

/// Rooms nobody used for the TTL are deleted; rooms drawn in, or sat in, are kept. `server`
/// is a node with the TTL `ttl`, single (where the link of a deleted room is refused) or of a
/// cluster (where it opens an empty board: a room Redis does not hold starts anew).
async fn rooms_expire_unless_used(server: &TestServer, ttl: Duration, single: bool) {
    let forgotten = server.create_room().await;
    let drawn_in = server.create_room().await;
    let sat_in = server.create_room().await;
    let mut ada = server.editor(&forgotten, "ada").await;
    ada.draw_stroke(1, 20, 5).await;
    ada.settle().await;
    ada.close().await;
    let mut carol = server.editor(&sat_in, "carol").await;
    carol.draw_stroke(2, 20, 5).await;
    carol.settle().await;
    // Bob draws now and then; Carol only stays (a board left open on a wall screen).
    let mut bob = server.editor(&drawn_in, "bob").await;
    let started = Instant::now();
    let mut seed = 10;
    while started.elapsed() < ttl * 2 {
        bob.draw_stroke(seed, 10, 5).await;
        bob.settle().await;
        seed += 1;
        tokio::time::sleep(ttl / 4).await;
    }
    bob.close().await;
    if single {
        assert_eq!(
            refused_join(server, &forgotten).await,
            Some(ErrorCode::Forbidden),
            "a room unused for twice its TTL is still there"
        );
    } else {
        let ada = server.viewer(&forgotten, "ada").await;
        assert_eq!(
            ada.board.len(),
            0,
            "a room unused for twice its TTL is still there"
        );
    }
    for (room, strokes) in [(&drawn_in, (seed - 10) as usize), (&sat_in, 1)] {
        let dan = server.viewer(room, "dan").await;
        assert_eq!(dan.board.len(), strokes);
    }
    carol.draw_stroke(3, 10, 5).await;
    carol.settle().await;
}

#[tokio::test]
async fn a_single_node_deletes_rooms_nobody_used_for_the_ttl_and_keeps_the_others() {
    let ttl = Duration::from_millis(1500);
    let mut server = TestServer::start_with(|c| {
        c.room_ttl = Some(ttl);
        c.room_sweep_interval = Duration::from_millis(100);
    })
    .await;
    rooms_expire_unless_used(&server, ttl, true).await;
    assert!(server.metric("kokuban_rooms_expired_total").await >= 1.0);
    // What was deleted stays deleted after a restart; what was kept is still there.
    let kept = server.create_room().await;
    let mut ada = server.editor(&kept, "ada").await;
    ada.draw_stroke(1, 20, 5).await;
    ada.settle().await;
    ada.close().await;
    server.restart().await;
    let ada = server.viewer(&kept, "ada").await;
    assert_eq!(ada.board.len(), 1);
}

#[tokio::test]
async fn in_a_cluster_redis_expires_rooms_nobody_used_for_the_ttl() {
    let redis = crate::harness::redis::RedisServer::shared().await;
    // Several heartbeats (every half second here) within the TTL.
    let ttl = Duration::from_secs(3);
    let server = crate::harness::cluster::node_at(&redis.url(), "ttl", |c| {
        c.room_ttl = Some(ttl);
        c.cluster.as_mut().unwrap().secret = Some(crate::harness::cluster::SECRET.into());
    })
    .await;
    rooms_expire_unless_used(&server, ttl, false).await;
}
