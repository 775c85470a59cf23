//! One client must not hold a node open: a message begun must be finished in time, control
//! frames of the client's own choosing are no sign of life, and every connection keeps to a
//! budget of frames and bytes per second. The attackers use the hand-made client of
//! [`frames`](crate::frames), which can withhold a final fragment; the bystanders are
//! ordinary clients.

use std::time::{Duration, Instant};

use crate::frames::{BINARY, CLOSE, In, PING, PONG, Raw, frame};
use crate::harness::pen::text_op;
use crate::harness::{Event, TIMEOUT, TestClient, TestServer};
use kokuban_protocol::{ClientMsg, PROTOCOL_VERSION, Submit, close, encode_client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the server ended a connection: its close code and reason, or `None` if it was still
/// open after `wait`. Meanwhile the client answers every ping as a browser would (when
/// `answer_pings`) and sends an unsolicited pong every 100 ms.
async fn held_open(raw: &mut Raw, answer_pings: bool, wait: Duration) -> Option<(u16, String)> {
    let give_up = tokio::time::Instant::now() + wait;
    loop {
        let next = tokio::time::timeout(Duration::from_millis(100), raw.next());
        match next.await {
            Err(_) => {
                if tokio::time::Instant::now() >= give_up {
                    return None;
                }
                raw.send(&frame(true, PONG, b"still here")).await;
            }
            Ok(In::Frame(PING, payload)) if answer_pings => {
                raw.send(&frame(true, PONG, &payload)).await;
            }
            Ok(In::Frame(CLOSE, payload)) => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
                return Some((code, reason));
            }
            Ok(In::Ended) => panic!("the server went away without a close frame"),
            Ok(In::Frame(..)) => {}
        }
        if tokio::time::Instant::now() >= give_up {
            return None;
        }
    }
}

/// Reads for `time` what the server sends, as an open tab does (its WebSocket library answers
/// the pings meanwhile); panics if the server closes the connection.
async fn keep_reading(client: &mut TestClient, time: Duration) {
    let until = tokio::time::Instant::now() + time;
    while let Ok(event) = tokio::time::timeout_at(until, client.next_event()).await {
        if let Event::Closed(code) = event {
            panic!("a bystander was closed: {code:?}");
        }
    }
}

/// Short timers, so that what a node does after seconds in production happens in this test.
fn short_timers(c: &mut kokuban_server::Config) {
    c.message_deadline = Duration::from_secs(1);
    c.ping_interval = Duration::from_millis(200);
    c.idle_timeout = Duration::from_secs(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_never_finished_is_closed_at_the_deadline_however_lively_the_peer() {
    let server = TestServer::start_with(short_timers).await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let mut bob = server.viewer(&room, "bob").await;
    let mut raw = Raw::member(&server, &room).await;

    // The first fragment of a message whose last never comes, while the client answers
    // every ping and adds pongs of its own: it looks alive, and holds the fragment.
    raw.send(&frame(false, BINARY, &[PROTOCOL_VERSION; 1000]))
        .await;
    let started = Instant::now();
    let attack = async {
        let ended = held_open(&mut raw, true, Duration::from_secs(10)).await;
        (ended, started.elapsed())
    };
    let watching = Duration::from_secs(3);
    let ((ended, took), (), ()) = tokio::join!(
        attack,
        keep_reading(&mut ada, watching),
        keep_reading(&mut bob, watching)
    );
    assert_eq!(
        ended,
        Some((close::POLICY, "message not completed in time".into()))
    );
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"unfinished_message\"}")
            .await
            >= 1.0
    );

    // The room goes on: Ada's stroke reaches Bob.
    ada.draw_stroke(1, 5, 5).await;
    ada.settle().await;
    bob.sync_to(ada.position().seq).await;
    assert_eq!(bob.board, ada.board);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsolicited_pongs_are_no_sign_of_life_and_a_tab_that_only_watches_stays() {
    let server = TestServer::start_with(short_timers).await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let mut watcher = server.viewer(&room, "watcher").await;
    let mut raw = Raw::member(&server, &room).await;

    // The raw client never answers a ping, and sends a pong every 100 ms. The watcher reads
    // (its WebSocket library answers the pings) and sends nothing, for several idle timeouts.
    let watching = 4 * server.config.idle_timeout;
    let (ended, (), ()) = tokio::join!(
        held_open(&mut raw, false, Duration::from_secs(10)),
        keep_reading(&mut watcher, watching),
        keep_reading(&mut ada, watching)
    );
    let (code, _) = ended.expect("closed");
    assert_eq!(code, close::IDLE_TIMEOUT);

    // The watcher is still in the room and gets what is drawn.
    ada.draw_stroke(1, 5, 5).await;
    ada.settle().await;
    watcher.sync_to(ada.position().seq).await;
    assert_eq!(watcher.board, ada.board);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_flood_and_a_byte_flood_are_closed_with_1008() {
    let server = TestServer::start_with(|c| {
        // The per-message rate limit out of the way: the inbound budget is what is tested.
        c.rate_per_sec = 1_000_000;
        c.rate_burst = 1_000_000;
        c.inbound_frames_per_sec = 100;
        c.inbound_frame_burst = 200;
        c.inbound_bytes_per_sec = 16 * 1024;
        c.inbound_byte_burst = 64 * 1024;
    })
    .await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let over_budget = Some((close::POLICY, "inbound budget exceeded".to_string()));

    // Pings, each answered, a thousand at once.
    let mut pinger = Raw::member(&server, &room).await;
    let pings: Vec<u8> = (0..1000).flat_map(|_| frame(true, PING, b"")).collect();
    pinger.send(&pings).await;
    assert_eq!(
        held_open(&mut pinger, true, Duration::from_secs(5)).await,
        over_budget
    );

    // Valid ops of 4 KB, well within the frame budget, far beyond the byte budget.
    let mut writer = Raw::member(&server, &room).await;
    for n in 1..=40 {
        let op = encode_client(&ClientMsg::Op(Submit {
            n,
            op: text_op(4000),
        }));
        if !writer.send(&frame(true, BINARY, &op)).await {
            break;
        }
    }
    assert_eq!(
        held_open(&mut writer, true, Duration::from_secs(5)).await,
        over_budget
    );
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"over_budget\"}")
            .await
            >= 2.0
    );

    // Others are not touched.
    ada.draw_stroke(1, 5, 5).await;
    ada.settle().await;
}

/// Sends `request` on a fresh connection and returns the answer's head and body.
async fn answer(server: &TestServer, request: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(TIMEOUT, tcp.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap_or(0);
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if n == 0
            || text
                .split_once("\r\n\r\n")
                .is_some_and(|(_, b)| b.ends_with('}'))
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    (head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn a_bad_handshake_is_told_what_is_wrong() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let request = |headers: &str| {
        format!(
            "GET /ws/{} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{headers}\r\n",
            room.id.as_str(),
            server.addr
        )
    };
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    let (head, body) = answer(&server, &request("Sec-WebSocket-Version: 13\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(
        body,
        r#"{"error":"missing or malformed Sec-WebSocket-Key"}"#
    );

    let (head, body) = answer(
        &server,
        &request(&format!("{key}Sec-WebSocket-Version: 8\r\n")),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
    assert_eq!(
        body,
        r#"{"error":"only WebSocket version 13 is supported"}"#
    );

    // A plain GET of the WebSocket address.
    let plain = format!(
        "GET /ws/{} HTTP/1.1\r\nHost: {}\r\n\r\n",
        room.id.as_str(),
        server.addr
    );
    let (head, body) = answer(&server, &plain).await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(body.contains("WebSocket"), "{body}");

    // And a good one still upgrades.
    Raw::member(&server, &room).await;
}
