//! What the server refuses, and that refusing one client never disturbs the others.

use crate::harness::{TestClient, TestServer, http, stroke_ops, unmetered};
use futures_util::SinkExt;
use kokuban_protocol::Submit;
use kokuban_protocol::limits::MAX_CLIENT_FRAME_BYTES;
use kokuban_protocol::{
    ClientMsg, ErrorCode, Op, PROTOCOL_VERSION, PresenceEvent, RoomId, ServerMsg, Token, close,
    encode_client,
};
use tokio_tungstenite::tungstenite::{self, Message};

#[tokio::test]
async fn a_view_only_client_cannot_write_and_nothing_is_relayed() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut editor = server.editor(&room, "ada").await;
    let mut viewer = server.viewer(&room, "vi").await;
    assert_eq!(
        viewer.welcome.as_ref().unwrap().capability,
        kokuban_protocol::Capability::View
    );
    // The view link does not contain the edit token.
    assert!(!room.view_url.contains(room.edit.as_str()));

    let (_, ops) = stroke_ops(1, 10, 5);
    for (n, op) in (1..).zip(ops) {
        viewer.send(&ClientMsg::Op(Submit { n, op })).await;
    }
    viewer
        .send(&ClientMsg::Op(Submit {
            n: 99,
            op: Op::Clear,
        }))
        .await;
    viewer.expect_error(ErrorCode::ViewOnly).await;
    // The viewer still watches: the editor's stroke reaches it, at seq 1 (nothing of the
    // viewer's was sequenced).
    editor.draw_stroke(2, 5, 5).await;
    editor.settle().await;
    assert_eq!(editor.seen.first().unwrap().seq.0, 1);
    assert_eq!(editor.seen.first().unwrap().author, editor.author());
    viewer.sync_to(editor.position().seq).await;
    assert_eq!(viewer.board.snapshot(), editor.board.snapshot());
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"view_only\"}")
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn a_foreign_origin_gets_403_and_allowed_ones_get_through() {
    let server = TestServer::start_with(|c| {
        c.allowed_origins = vec!["https://board.example.com".into()];
    })
    .await;
    let room = server.create_room().await;
    let url = server.ws_url(room.id.as_str());
    for origin in [
        "https://evil.example",
        "null",
        "http://localhost.evil.example:8080",
    ] {
        match TestClient::connect_to(&url, Some(origin)).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{origin}")
            }
            Err(e) => panic!("{origin}: unexpected error {e}"),
            Ok(_) => panic!("{origin}: upgrade accepted"),
        }
    }
    assert_eq!(server.metric("kokuban_origin_rejections_total").await, 3.0);
    let own = format!("http://{}", server.addr);
    for origin in [
        own.as_str(),
        "http://localhost:8081",
        "https://board.example.com",
    ] {
        assert!(
            TestClient::connect_to(&url, Some(origin)).await.is_ok(),
            "{origin}"
        );
    }
    // Room creation follows the same policy.
    let r = http(
        server.addr,
        "POST",
        "/api/rooms",
        &[("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("\"error\""));
}

#[tokio::test]
async fn wrong_tokens_malformed_ids_and_unknown_rooms_are_all_forbidden_alike() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let other = server.create_room().await;
    let unknown = RoomId::new("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    let cases: Vec<(String, RoomId, Token)> = vec![
        // A token of another room.
        (room.id.to_string(), room.id.clone(), other.edit.clone()),
        // A made-up token.
        (
            room.id.to_string(),
            room.id.clone(),
            Token::new("x".repeat(22)).unwrap(),
        ),
        // A room nobody created (with some token).
        (unknown.to_string(), unknown.clone(), room.edit.clone()),
        // The Hello names another room than the URL.
        (other.id.to_string(), room.id.clone(), room.edit.clone()),
        // A URL room id that is not an id at all.
        ("not%20an%20id".into(), room.id.clone(), room.edit.clone()),
    ];
    let mut messages = Vec::new();
    for (url_room, hello_room, token) in cases {
        let mut c = TestClient::connect(&server, &url_room).await;
        c.hello(&hello_room, &token, None).await;
        messages.push(c.expect_error(ErrorCode::Forbidden).await);
        assert_eq!(c.expect_close().await, Some(close::POLICY));
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");
}

#[tokio::test]
async fn garbage_truncated_oversized_and_text_frames_are_rejected_while_others_keep_working() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    let mut b = server.editor(&room, "bob").await;

    // Garbage after the version byte: an error frame, and the connection goes on.
    a.send_raw(vec![PROTOCOL_VERSION, 0xff, 0xff, 0xff, 0xff, 0x7f])
        .await;
    a.expect_error(ErrorCode::Malformed).await;
    // A truncated op.
    let (_, ops) = stroke_ops(1, 100, 100);
    let mut cut = encode_client(&ClientMsg::Op(Submit {
        n: 1,
        op: ops[1].clone(),
    }));
    cut.truncate(cut.len() / 2);
    a.send_raw(cut).await;
    a.expect_error(ErrorCode::Malformed).await;
    // An empty frame, and one with bytes after the message.
    a.send_raw(Vec::new()).await;
    a.expect_error(ErrorCode::Malformed).await;
    let mut trailing = encode_client(&ClientMsg::Op(Submit {
        n: 1,
        op: Op::Clear,
    }));
    trailing.push(0);
    a.send_raw(trailing).await;
    a.expect_error(ErrorCode::Malformed).await;
    // Still a working member: its stroke reaches Bob, and nothing bad was relayed.
    a.draw_stroke(2, 20, 5).await;
    a.settle().await;
    b.sync_to(a.position().seq).await;
    assert_eq!(b.board.snapshot(), a.board.snapshot());
    // Only the stroke's six ops were sequenced: nothing of the rejected frames.
    assert_eq!(a.position().seq.0, 6);

    // Another protocol version: told which one the server speaks, then closed with 4002.
    let mut old = server.editor(&room, "old").await;
    old.send_raw(vec![PROTOCOL_VERSION + 1, 0, 0]).await;
    let message = old.expect_error(ErrorCode::VersionMismatch).await;
    assert!(message.contains(&PROTOCOL_VERSION.to_string()), "{message}");
    assert_eq!(old.expect_close().await, Some(close::VERSION_MISMATCH));

    // A text frame: binary only.
    let mut texter = server.editor(&room, "txt").await;
    texter.ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(texter.expect_close().await, Some(close::UNSUPPORTED_DATA));

    // Over 64 KiB: cut off (1009, or a reset if the server drops the socket first).
    let mut big = server.editor(&room, "big").await;
    let _ = big
        .ws
        .send(Message::Binary(
            vec![PROTOCOL_VERSION; MAX_CLIENT_FRAME_BYTES + 1].into(),
        ))
        .await;
    let code = big.expect_close().await;
    assert!(matches!(code, None | Some(close::TOO_BIG)), "{code:?}");

    // Garbage as the very first frame closes at once (there is no session to keep).
    let mut stranger = TestClient::connect(&server, room.id.as_str()).await;
    stranger.send_raw(vec![PROTOCOL_VERSION, 0xee, 0xee]).await;
    stranger.expect_error(ErrorCode::Malformed).await;
    assert_eq!(stranger.expect_close().await, Some(close::INVALID_PAYLOAD));

    // Through all of that, Ada and Bob kept working.
    a.draw_stroke(3, 20, 5).await;
    a.settle().await;
    b.sync_to(a.position().seq).await;
    assert_eq!(b.board.snapshot(), a.board.snapshot());
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"malformed\"}")
            .await
            >= 3.0
    );
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"too_large\"}")
            .await
            >= 1.0
    );
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"text\"}")
            .await
            >= 1.0
    );
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"version\"}")
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_with_4001_while_the_others_keep_receiving() {
    let server = TestServer::start_with(|c| {
        // Larger than one stroke's burst of frames (18), so that only a reader that stopped
        // for good fills it.
        c.member_queue_frames = 64;
        c.rate_per_sec = 1_000_000;
        c.rate_burst = 1_000_000;
        unmetered(c);
        // Long enough for the stalled client to drain its socket and read the close frame.
        c.close_timeout = std::time::Duration::from_secs(15);
    })
    .await;
    let room = server.create_room().await;
    let mut writer = server.editor(&room, "ada").await;
    let mut observer = server.viewer(&room, "obs").await;
    // Joins, then never reads its socket (and has a tiny receive buffer).
    let mut stalled = TestClient::connect_small_buffer(&server, room.id.as_str()).await;
    stalled.hello(&room.id, &room.view, None).await;
    stalled.expect_welcome().await;
    let stalled_id = stalled.member();

    // Big point batches until the stalled member's kernel buffers and queue are full. The
    // writer and the observer read as they go.
    let mut kicked = false;
    for seed in 0..400 {
        let (_, ops) = stroke_ops(seed, 16_000, 1000);
        for op in ops {
            writer.send_op(op).await;
        }
        writer.settle().await;
        observer.sync_to(writer.position().seq).await;
        if server
            .metric("kokuban_slow_consumer_disconnects_total")
            .await
            >= 1.0
        {
            eprintln!("disconnected after {} strokes", seed + 1);
            kicked = true;
            break;
        }
    }
    assert!(kicked, "the stalled client was never disconnected");
    // The others saw its departure and keep receiving promptly.
    observer
        .until_seen(
            |m| matches!(m, ServerMsg::Presence(PresenceEvent::Left(id)) if *id == stalled_id),
        )
        .await;
    writer.draw_stroke(7, 10, 5).await;
    writer.settle().await;
    observer.sync_to(writer.position().seq).await;
    assert_eq!(observer.board.snapshot(), writer.board.snapshot());

    // When it reads again, it finds what was sent before the cut, then the close: 4001.
    assert_eq!(stalled.expect_close().await, Some(close::SLOW_CONSUMER));
}

#[tokio::test]
async fn the_rate_limit_answers_with_an_error_then_closes_on_sustained_abuse() {
    let server = TestServer::start_with(|c| {
        c.rate_per_sec = 50;
        c.rate_burst = 100;
        c.abuse_limit = 200;
    })
    .await;
    let room = server.create_room().await;
    let mut calm = server.editor(&room, "calm").await;
    let mut flood = server.editor(&room, "flood").await;
    let frame = encode_client(&ClientMsg::Cursor(None));
    // Well over burst + abuse limit, as fast as the socket takes them.
    for _ in 0..2000 {
        if flood
            .ws
            .send(Message::Binary(frame.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    flood.expect_error(ErrorCode::RateLimited).await;
    assert_eq!(flood.expect_close().await, Some(close::POLICY));
    assert!(server.metric("kokuban_rate_limit_hits_total").await >= 1.0);
    assert_eq!(server.metric("kokuban_rate_limit_closes_total").await, 1.0);
    // The calm member is unaffected.
    calm.draw_stroke(1, 10, 5).await;
    calm.settle().await;
}
