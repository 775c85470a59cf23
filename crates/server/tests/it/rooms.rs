//! Rooms and the relay, through real sockets: live order, late joiners, resume, presence.

use std::time::Duration;

use futures_util::StreamExt;
use kokuban_protocol::{
    Capability, ClientMsg, MorePoints, Offsets, Op, PresenceEvent, RoomState, Seq, ServerMsg,
    close, decode_server, encode_client,
};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{TestClient, TestServer, stroke_ops};

#[tokio::test]
async fn two_editors_see_each_others_strokes_in_one_order_while_they_are_drawn() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    let mut b = server.editor(&room, "bob").await;
    assert_eq!(a.welcome.as_ref().unwrap().capability, Capability::Edit);
    // Ada sees Bob arrive.
    a.recv_until(|m| matches!(m, ServerMsg::Presence(PresenceEvent::Joined(_))))
        .await;

    // Ada begins a stroke and sends a batch of points: Bob receives both while the stroke is
    // still being drawn, before it ends.
    let (id, ops) = stroke_ops(1, 40, 8);
    let (last, first_ops) = ops.split_last().unwrap();
    for op in first_ops.iter().take(2) {
        a.send_op(op.clone()).await;
    }
    let got = b
        .recv_until(|m| matches!(m, ServerMsg::Op(s) if s.op.is_points()))
        .await;
    let ServerMsg::Op(points) = got else {
        unreachable!()
    };
    assert_eq!(points.author, a.author());
    assert!(
        !b.board.get(&id).unwrap().finished,
        "stroke still open on Bob's board"
    );

    // Both draw at once, interleaved; then Ada finishes her stroke.
    let (_, bob_ops) = stroke_ops(2, 60, 6);
    for (i, op) in bob_ops.iter().enumerate() {
        b.send_op(op.clone()).await;
        if let Some(op) = first_ops.get(2 + i) {
            a.send_op(op.clone()).await;
        }
    }
    a.send_op(last.clone()).await;
    a.settle().await;
    b.settle().await;
    let head = a.position().seq.max(b.position().seq);
    a.sync_to(head).await;
    b.sync_to(head).await;

    // Same ops, same order, same board, down to the snapshot bytes.
    let order = |c: &TestClient| c.seen.iter().map(|s| (s.seq, s.author)).collect::<Vec<_>>();
    assert_eq!(order(&a), order(&b));
    assert_eq!(a.seen.len() as u64, head.0);
    assert!(
        a.seen.windows(2).all(|w| w[1].seq == w[0].seq.next()),
        "gapless"
    );
    assert_eq!(a.board.snapshot(), b.board.snapshot());
    assert_eq!(a.board.len(), 2);
    assert!(a.board.strokes().all(|s| s.finished));
}

#[tokio::test]
async fn a_late_joiner_gets_the_whole_board() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    let mut ids = Vec::new();
    for seed in 0..5 {
        ids.push(a.draw_stroke(seed, 30, 10).await);
    }
    a.send_op(Op::Erase {
        ids: kokuban_protocol::Bounded::new(vec![ids[1]]).unwrap(),
    })
    .await;
    // A stroke still being drawn is part of the board too.
    let (open, ops) = stroke_ops(9, 20, 5);
    for op in &ops[..ops.len() - 1] {
        a.send_op(op.clone()).await;
    }
    a.settle().await;

    let c = server.editor(&room, "cy").await;
    assert!(matches!(
        c.welcome.as_ref().unwrap().state,
        RoomState::Snapshot { .. }
    ));
    assert_eq!(c.position(), a.position());
    assert_eq!(c.board.snapshot(), a.board.snapshot());
    assert_eq!(c.board.len(), 5);
    assert!(c.board.get(&ids[1]).unwrap().erased);
    assert!(!c.board.get(&open).unwrap().finished);
    assert_eq!(c.welcome.as_ref().unwrap().members.len(), 2);
}

#[tokio::test]
async fn a_reconnecting_client_gets_exactly_the_ops_it_missed() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    let mut b = server.editor(&room, "bob").await;
    a.draw_stroke(1, 20, 5).await;
    a.settle().await;
    b.sync_to(a.position().seq).await;
    let left_at = b.position();
    let kept = b.board.clone();
    b.close().await;

    // Ada draws on while Bob is away.
    a.draw_stroke(2, 20, 5).await;
    a.draw_stroke(3, 4, 2).await;
    a.settle().await;

    let b = TestClient::rejoin(&server, &room, &room.edit, "bob", kept).await;
    let RoomState::Replay { ops } = &b.welcome.as_ref().unwrap().state else {
        panic!("expected a replay");
    };
    let seqs: Vec<Seq> = ops.iter().map(|o| o.seq).collect();
    let expected: Vec<Seq> = (left_at.seq.0 + 1..=a.position().seq.0).map(Seq).collect();
    assert_eq!(
        seqs, expected,
        "exactly the missed ops, no gap, no duplicate"
    );
    let mut b = b;
    assert_eq!(b.board.snapshot(), a.board.snapshot());

    // Live ops follow the replay with no gap.
    a.draw_stroke(5, 3, 3).await;
    a.settle().await;
    let head = a.position().seq;
    while b.seen.last().is_none_or(|s| s.seq < head) {
        b.recv().await;
    }
    let live: Vec<Seq> = b.seen.iter().map(|s| s.seq).collect();
    let all: Vec<Seq> = (left_at.seq.0 + 1..=head.0).map(Seq).collect();
    assert_eq!(live, all);

    // A position the log no longer covers (a Clear compacts at once) gets a snapshot.
    a.send_op(Op::Clear).await;
    a.draw_stroke(6, 4, 2).await;
    a.settle().await;
    let c = TestClient::join(&server, &room, &room.edit, "cy", Some(left_at)).await;
    assert!(matches!(
        c.welcome.as_ref().unwrap().state,
        RoomState::Snapshot { .. }
    ));
    assert_eq!(c.board.snapshot(), a.board.snapshot());

    // Nothing missed: an empty replay.
    let pos = a.position();
    let d = TestClient::rejoin(&server, &room, &room.edit, "dee", a.board.clone()).await;
    assert_eq!(d.position(), pos);
    assert!(
        matches!(&d.welcome.as_ref().unwrap().state, RoomState::Replay { ops } if ops.is_empty())
    );
}

#[tokio::test]
async fn presence_and_coalesced_cursors_reach_the_others_and_are_never_stored() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    let mut b = server.viewer(&room, "bob").await;
    let joined = a
        .recv_until(|m| matches!(m, ServerMsg::Presence(PresenceEvent::Joined(_))))
        .await;
    let ServerMsg::Presence(PresenceEvent::Joined(who)) = joined else {
        unreachable!()
    };
    assert_eq!((who.id, who.capability), (b.member(), Capability::View));
    assert_eq!(who.name.as_str(), "bob");

    // Many moves inside a coalescing window arrive as fewer updates, the last one winning.
    for i in 0..50 {
        a.send_cursor(i * 10, -i).await;
    }
    let mut updates = 0;
    loop {
        let ServerMsg::Cursor(c) = b.recv_until(|m| matches!(m, ServerMsg::Cursor(_))).await else {
            unreachable!()
        };
        updates += 1;
        assert_eq!(c.member, a.member());
        if c.at.is_some_and(|p| p.x() == 490 && p.y() == -49) {
            break;
        }
    }
    assert!(updates < 50, "{updates} cursor updates for 50 moves");
    // Viewers may point too; cursors are not ops and are never sequenced.
    b.send_cursor(5, 5).await;
    let bob = b.member();
    a.recv_until(|m| matches!(m, ServerMsg::Cursor(c) if c.member == bob))
        .await;
    assert_eq!(a.board.position().unwrap().seq, Seq(0));
    assert_eq!(server.metric("kokuban_ops_sequenced_total").await, 0.0);

    b.close().await;
    a.recv_until(|m| matches!(m, ServerMsg::Presence(PresenceEvent::Left(id)) if *id == bob))
        .await;
    let late = server.editor(&room, "cy").await;
    assert_eq!(late.welcome.as_ref().unwrap().members.len(), 2);
}

/// A peer whose program stopped (it reads nothing, so it answers no ping) while its TCP stack
/// still acknowledges every byte. A truly half-open peer, from which not even a FIN arrives, is
/// covered in `faults.rs` through a proxy that stops forwarding.
#[tokio::test]
async fn a_dead_peer_is_dropped_by_the_heartbeat_and_leaves_presence() {
    let server = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(200);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    // Bob joins, then never reads again, so he answers no ping.
    let b = server.editor(&room, "bob").await;
    let bob = b.member();
    // Ada keeps answering pings because she keeps reading.
    a.recv_until(|m| matches!(m, ServerMsg::Presence(PresenceEvent::Left(id)) if *id == bob))
        .await;
    assert!(server.metric("kokuban_idle_timeouts_total").await >= 1.0);
    drop(b);
}

#[tokio::test]
async fn an_empty_room_is_unloaded_and_comes_back_intact() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    a.draw_stroke(1, 10, 5).await;
    a.settle().await;
    let before = a.board.snapshot();
    let pos = a.position();
    let kept = a.board.clone();
    a.close().await;
    server
        .wait_metric("kokuban_rooms_loaded", |v| v == 0.0)
        .await;
    let b = TestClient::rejoin(&server, &room, &room.edit, "bob", kept).await;
    assert_eq!(b.position(), pos);
    assert!(
        matches!(&b.welcome.as_ref().unwrap().state, RoomState::Replay { ops } if ops.is_empty())
    );
    let c = server.editor(&room, "cy").await;
    assert_eq!(c.board.snapshot(), before);
}

#[tokio::test]
async fn batches_go_by_handle_both_ways_and_every_board_holds_them_in_full() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let mut bob = server.viewer(&room, "bob").await;
    let (id, ops) = stroke_ops(3, 25, 4);
    let (end, drawing) = ops.split_last().unwrap();
    for op in drawing {
        ada.send_op(op.clone()).await;
    }
    ada.settle().await;
    // Bob's socket, read raw: every batch arrives by handle, a few bytes beside its points.
    let mut batches = 0;
    while batches < drawing.len() - 1 {
        let frame = match bob.ws.next().await.expect("open").expect("a frame") {
            Message::Binary(b) => b,
            _ => continue,
        };
        match decode_server(&frame).unwrap() {
            ServerMsg::Points(live) => {
                assert!(
                    frame.len() <= 5 + 3 * live.points.len() + 4,
                    "{} bytes",
                    frame.len()
                );
                let s = bob.board.expand(&live).unwrap();
                assert_eq!(s.author, ada.author());
                bob.board.apply_sequenced(&s).unwrap();
                batches += 1;
            }
            ServerMsg::Op(s) => {
                assert!(!s.op.is_points(), "a batch in full: {s:?}");
                bob.board.apply_sequenced(&s).unwrap();
            }
            _ => {}
        }
    }
    ada.send_op(end.clone()).await;
    ada.settle().await;
    bob.sync_to(ada.position().seq).await;
    let late = TestClient::join(&server, &room, &room.view, "late", None).await;
    assert_eq!(late.board.get(&id).unwrap().points.len(), 25);
    assert_eq!(late.board.snapshot(), bob.board.snapshot());
    assert_eq!(late.board.snapshot(), ada.board.snapshot());
    for c in [ada, bob, late] {
        c.close().await;
    }
}

#[tokio::test]
async fn points_by_a_handle_the_connection_never_gave_close_it_and_change_nothing() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let mut bob = server.viewer(&room, "bob").await;
    let (id, ops) = stroke_ops(4, 9, 4);
    ada.send_op(ops[0].clone()).await;
    ada.settle().await;
    // Handle 0 is the stroke just begun; handle 1 names nothing on this connection.
    let unknown = ClientMsg::Points(MorePoints {
        stroke: 1,
        points: Offsets::new(vec![(8, 8, 1)]).unwrap(),
    });
    ada.send_raw(encode_client(&unknown)).await;
    assert_eq!(ada.expect_close().await, Some(close::INVALID_PAYLOAD));
    // Nothing reached the board: the stroke holds its first point, on every board.
    let late = TestClient::join(&server, &room, &room.view, "late", None).await;
    assert_eq!(late.board.get(&id).unwrap().points.len(), 1);
    bob.sync_to(late.position().seq).await;
    assert_eq!(bob.board.snapshot(), late.board.snapshot());
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"malformed\"}")
            .await
            >= 1.0
    );
    for c in [bob, late] {
        c.close().await;
    }
}
