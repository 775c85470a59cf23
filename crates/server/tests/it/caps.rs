//! Capacity caps: the per-address upgrade rate, rooms held by a node, members of a room.
//! Each refuses the newcomer with a clear answer, counts it, and leaves the sessions that are
//! already open alone.

use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::{TIMEOUT, TestClient, TestRoom, TestServer, Watch};
use kokuban_protocol::{ErrorCode, PresenceEvent, ServerMsg, close};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Attempts a WebSocket upgrade from `source` and returns the status and the rest of the
/// answer (head and body).
async fn upgrade_from(source: [u8; 4], addr: SocketAddr, room: &str) -> (u16, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /ws/{room} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    // A 101 leaves the socket open (the WebSocket has begun): read until the head is complete
    // and, for a refusal, until its JSON body has arrived.
    loop {
        let n = tokio::time::timeout(TIMEOUT, tcp.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap_or(0);
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        let done = match text.split_once("\r\n\r\n") {
            Some((head, body)) => head.starts_with("HTTP/1.1 101") || body.ends_with('}'),
            None => false,
        };
        if n == 0 || done {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A member that can still draw: its stroke is acknowledged.
async fn still_works(client: &mut TestClient, seed: u32) {
    client.draw_stroke(seed, 5, 5).await;
    client.settle().await;
}

#[tokio::test]
async fn upgrades_over_the_per_address_rate_get_429_and_open_sessions_go_on() {
    let server = TestServer::start_with(|c| {
        c.upgrades_per_ip_per_sec = 1;
        c.upgrade_burst_per_ip = 3;
    })
    .await;
    // The probe is a client of the same address: it takes one token of the burst.
    let mut watch = Watch::start(&server).await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let id = room.id.as_str();
    let mut statuses = Vec::new();
    let mut refusal = String::new();
    for _ in 0..8 {
        let (status, answer) = upgrade_from([127, 0, 0, 1], server.addr, id).await;
        if status == 429 {
            refusal = answer;
        }
        statuses.push(status);
    }
    // The probe and Ada took two tokens of the burst of three: one more, then refusals (a
    // token may come back in the meantime on a slow machine, hence "at least").
    assert_eq!(statuses[0], 101, "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 4,
        "{statuses:?}"
    );
    assert!(refusal.contains("Retry-After: 1") || refusal.contains("retry-after: 1"));
    assert!(refusal.contains("too many connections"), "{refusal}");
    assert!(server.metric("kokuban_upgrades_refused_total").await >= 4.0);
    // The open session never noticed; another address has its own budget.
    still_works(&mut ada, 1).await;
    watch.check().await;
    assert_eq!(upgrade_from([127, 0, 0, 2], server.addr, id).await.0, 101);
    // A second later the address has a token again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(upgrade_from([127, 0, 0, 1], server.addr, id).await.0, 101);
    ada.close().await;
    watch.finish(&server).await;
}

/// Says Hello and expects a refusal with `code`, then close 1013.
async fn refused_join(server: &TestServer, room: &TestRoom, code: ErrorCode) -> String {
    let mut c = TestClient::connect(server, room.id.as_str()).await;
    c.hello(&room.id, &room.edit, None).await;
    let message = c.expect_error(code).await;
    assert_eq!(c.expect_close().await, Some(close::TRY_AGAIN_LATER));
    message
}

#[tokio::test]
async fn a_node_refuses_to_load_one_room_too_many_while_its_rooms_go_on() {
    let server = TestServer::start_with(|c| {
        // The probe's room, and two more.
        c.max_rooms = 3;
        // Longer than the test: an empty room is only unloaded early, to make room.
        c.room_grace = Duration::from_secs(60);
    })
    .await;
    let mut watch = Watch::start(&server).await;
    let rooms = [
        server.create_room().await,
        server.create_room().await,
        server.create_room().await,
    ];
    let mut a = server.editor(&rooms[0], "a").await;
    let mut b = server.editor(&rooms[1], "b").await;
    still_works(&mut b, 9).await;
    let message = refused_join(&server, &rooms[2], ErrorCode::Overloaded).await;
    assert!(message.contains("try again"), "{message}");
    assert_eq!(server.metric("kokuban_rooms_loaded").await, 3.0);
    watch.check().await;
    assert_eq!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"overloaded\"}")
            .await,
        1.0
    );
    // Rooms already held take new members and keep working.
    let mut a2 = server.editor(&rooms[0], "a2").await;
    still_works(&mut a, 1).await;
    a2.sync_to(a.position().seq).await;
    // Once a room is empty, its place is free again (it is unloaded at once, not after its
    // grace period), and the newcomer gets in.
    let b_board = b.board.snapshot();
    b.close().await;
    server.wait_metric("kokuban_members", |v| v <= 3.0).await;
    let mut c = server.editor(&rooms[2], "c").await;
    still_works(&mut c, 2).await;
    assert_eq!(server.metric("kokuban_rooms_loaded").await, 3.0);
    // The room unloaded early comes back intact once there is room for it again.
    c.close().await;
    server.wait_metric("kokuban_members", |v| v <= 3.0).await;
    let b = server.editor(&rooms[1], "b").await;
    assert_eq!(b.board.snapshot(), b_board);
    for client in [a, a2, b] {
        client.close().await;
    }
    watch.finish(&server).await;
}

#[tokio::test]
async fn a_full_room_refuses_one_more_member_while_the_others_go_on() {
    let server = TestServer::start_with(|c| c.max_members_per_room = 2).await;
    let mut watch = Watch::start(&server).await;
    let room = server.create_room().await;
    let other = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let bob = server.viewer(&room, "bob").await;
    let message = refused_join(&server, &room, ErrorCode::RoomFull).await;
    assert!(message.contains("members"), "{message}");
    assert_eq!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"room_full\"}")
            .await,
        1.0
    );
    // The members in the room, and other rooms, are unaffected.
    still_works(&mut ada, 1).await;
    watch.check().await;
    let mut eve = server.editor(&other, "eve").await;
    let eve2 = server.editor(&other, "eve2").await;
    still_works(&mut eve, 2).await;
    // When a member leaves, a newcomer gets in.
    let bob_id = bob.member();
    bob.close().await;
    ada.until_seen(|m| matches!(m, ServerMsg::Presence(PresenceEvent::Left(id)) if *id == bob_id))
        .await;
    let mut carol = server.editor(&room, "carol").await;
    still_works(&mut carol, 3).await;
    for client in [ada, eve, eve2, carol] {
        client.close().await;
    }
    watch.finish(&server).await;
}

#[test]
fn the_binary_documents_every_cap_and_keeps_the_per_address_caps_off_by_default() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kokuban"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--max-connections-per-ip <N>",
        "--upgrades-per-ip-per-sec <N>",
        "--upgrade-burst-per-ip <N>",
        "--max-rooms <N>",
        "--max-members-per-room <N>",
        "--inbound-frames-per-sec <N>",
        "--inbound-bytes-per-sec <BYTES>",
        "--message-deadline <SECONDS>",
    ] {
        assert!(help.contains(flag), "{flag} missing from\n{help}");
    }
    // Behind a proxy every client shares one address: these stay off unless asked for.
    let default_of = |flag: &str| {
        let at = help.find(flag).unwrap();
        let rest = &help[at..];
        let next = rest[2..].find("\n  -").map_or(rest.len(), |i| i + 2);
        rest[..next].contains("[default: 0]")
    };
    assert!(default_of("--max-connections-per-ip"), "{help}");
    assert!(default_of("--upgrades-per-ip-per-sec"), "{help}");
    assert!(help.contains("proxy"));
}
