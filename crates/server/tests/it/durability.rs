//! Boards survive restarts; storage follows content, not history; shutdown is orderly.

use crate::harness::{TestClient, TestServer, encoded_len, stroke_ops, unmetered};
use kokuban_protocol::{
    Align, Bounded, Dash, ErrorCode, Fill, Look, LookOf, Op, Opacity, RoomState, ServerMsg, Title,
    close,
};

#[tokio::test]
async fn a_restart_on_the_same_data_dir_keeps_every_acknowledged_op_and_the_epoch() {
    let mut server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    for seed in 0..10 {
        a.draw_stroke(seed, 50, 7).await;
    }
    // An open stroke, acknowledged but not finished, survives too.
    let (_, ops) = stroke_ops(99, 10, 3);
    for op in &ops[..2] {
        a.send_op(op.clone()).await;
    }
    a.settle().await;
    let board = a.board.snapshot();
    let position = a.position();
    let kept = a.board.clone();
    let code = {
        server.begin_shutdown();
        a.expect_close().await
    };
    assert_eq!(code, Some(close::GOING_AWAY));
    server.finished().await;

    server.restart().await;
    let b = server.editor(&room, "bob").await;
    assert_eq!(b.epoch(), position.epoch, "a clean restart keeps the epoch");
    assert_eq!(b.position(), position);
    assert_eq!(b.board.snapshot(), board);
    // Resuming across the restart works: nothing was missed.
    let c = TestClient::rejoin(&server, &room, &room.edit, "ada", kept).await;
    assert!(
        matches!(&c.welcome.as_ref().unwrap().state, RoomState::Replay { ops } if ops.is_empty())
    );
    // The links still work: the key survived with the data.
    let v = server.viewer(&room, "vi").await;
    assert_eq!(v.board.snapshot(), board);
}

fn title(t: &str) -> Op {
    Op::Title {
        title: Title::new(t).unwrap(),
    }
}

#[tokio::test]
async fn a_title_outlives_a_clear_reaches_late_joiners_and_survives_a_restart() {
    let mut server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    let mut v = server.viewer(&room, "vi").await;
    a.draw_stroke(1, 20, 5).await;
    a.send_op(title("Roadmap")).await;
    a.send_op(Op::Clear).await;
    a.settle().await;
    // The same title again changes nothing, so it is refused before it costs a seq.
    let at = a.position();
    a.send_op(title("Roadmap")).await;
    a.expect_error(ErrorCode::InvalidOp).await;
    assert_eq!(a.position(), at);
    // A viewer may not rename the board.
    v.send_op(title("Mine now")).await;
    v.expect_error(ErrorCode::ViewOnly).await;
    let late = server.editor(&room, "bob").await;
    assert_eq!(late.board.title().map(Title::as_str), Some("Roadmap"));
    assert!(late.board.is_empty());
    drop((late, v));
    a.close().await;

    server.restart().await;
    let after = server.editor(&room, "cy").await;
    assert_eq!(after.board.title().map(Title::as_str), Some("Roadmap"));
}

#[tokio::test]
async fn a_look_reaches_late_joiners_costs_no_seq_when_it_changes_nothing_and_survives_a_restart() {
    let mut server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    let mut v = server.viewer(&room, "vi").await;
    let id = a.draw_stroke(1, 20, 5).await;
    let look = Look {
        fill: Fill::Solid,
        dash: Dash::Dotted,
        opacity: Opacity::new(30).unwrap(),
        align: Align::Center,
    };
    let dress = |look| Op::Look {
        to: Bounded::new(vec![LookOf { id, look }]).unwrap(),
    };
    a.send_op(dress(look)).await;
    a.settle().await;
    assert_eq!(a.board.get(&id).unwrap().look, look);
    // The same look again changes nothing: refused before it costs a seq.
    let at = a.position();
    a.send_op(dress(look)).await;
    a.expect_error(ErrorCode::InvalidOp).await;
    assert_eq!(a.position(), at);
    // A viewer may not restyle.
    v.send_op(dress(Look::default())).await;
    v.expect_error(ErrorCode::ViewOnly).await;
    let late = server.editor(&room, "bob").await;
    assert_eq!(late.board.get(&id).unwrap().look, look);
    drop((late, v));
    a.close().await;

    server.restart().await;
    let after = server.editor(&room, "cy").await;
    assert_eq!(after.board.get(&id).unwrap().look, look);
}

#[tokio::test]
async fn a_board_drawn_and_cleared_a_thousand_times_stays_small_on_disk_and_in_its_welcome() {
    let mut server = TestServer::start_with(|c| {
        c.rate_per_sec = 1_000_000;
        c.rate_burst = 1_000_000;
        unmetered(c);
    })
    .await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    let mut sent_bytes = 0usize;
    for round in 0..1000u32 {
        let (_, ops) = stroke_ops(round % 50, 200, 50);
        for op in ops {
            sent_bytes += kokuban_protocol::encode_client(&kokuban_protocol::ClientMsg::Op(
                kokuban_protocol::Submit {
                    n: a.next_n,
                    op: op.clone(),
                },
            ))
            .len();
            a.send_op(op).await;
        }
        a.send_op(Op::Clear).await;
        a.settle().await;
    }
    // One more stroke, so the board is not empty.
    a.draw_stroke(7, 200, 50).await;
    a.settle().await;
    assert!(sent_bytes > 800_000, "history of {sent_bytes} bytes");

    let b = server.editor(&room, "bob").await;
    let welcome = encoded_len(&ServerMsg::Welcome(b.welcome.clone().unwrap()));
    assert_eq!(b.board.len(), 1);
    assert!(
        welcome < 4 * 1024,
        "Welcome of {welcome} bytes after {sent_bytes} bytes of history"
    );
    drop(b);
    a.close().await;

    server.stop().await;
    let file = std::fs::metadata(server.data_dir().join("kokuban.redb"))
        .unwrap()
        .len();
    eprintln!("history {sent_bytes} bytes, store file {file} bytes, welcome {welcome} bytes");
    assert!(
        (file as usize) < sent_bytes / 3,
        "store file of {file} bytes after {sent_bytes} bytes of history"
    );
    server.restart().await;
    let c = server.editor(&room, "cy").await;
    assert_eq!(c.board.len(), 1);
    let welcome = encoded_len(&ServerMsg::Welcome(c.welcome.clone().unwrap()));
    assert!(
        welcome < 4 * 1024,
        "Welcome of {welcome} bytes after a restart"
    );
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001_and_flushes() {
    let mut server = TestServer::start().await;
    let room = server.create_room().await;
    let other = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    let mut b = server.viewer(&room, "bob").await;
    let mut c = server.editor(&other, "cy").await;
    // Connected, but has not said Hello yet.
    let mut d = TestClient::connect(&server, room.id.as_str()).await;
    a.draw_stroke(1, 30, 10).await;
    a.settle().await;
    let position = a.position();

    server.begin_shutdown();
    for client in [&mut a, &mut b, &mut c, &mut d] {
        assert_eq!(client.expect_close().await, Some(close::GOING_AWAY));
    }
    server.finished().await;

    // New connections are refused once the node is down; after a restart the board is there.
    assert!(
        TestClient::connect_to(&server.ws_url(room.id.as_str()), None)
            .await
            .is_err()
    );
    server.restart().await;
    let e = server.viewer(&room, "eve").await;
    assert_eq!(e.position(), position);
}
