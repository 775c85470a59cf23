//! Exactly once: an op its author retries is applied once, whichever node it is retried on and
//! across a restart; a history that went back in time under the nodes ends, for every member,
//! in one new history; and an acknowledged op survives `kill -9`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness;
use crate::harness::cluster::{apply_new_welcome, create_room_at, node, node_at};
use crate::harness::faults::FaultProxy;
use crate::harness::redis::{RedisServer, free_port};
use crate::harness::{TIMEOUT, TestClient, TestRoom, TestServer, http};
use futures_util::{SinkExt, StreamExt};
use kokuban_protocol::{
    Bounded, Color, ErrorCode, Op, Placement, Point, ServerMsg, StrokeId, Text, Width,
};

/// The op whose Ack Ada loses, and what Bob does once it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Clear,
    Erase,
    Move,
    Restore,
}

fn ids(id: StrokeId) -> Bounded<StrokeId, { kokuban_protocol::limits::MAX_IDS_PER_OP }> {
    Bounded::new(vec![id]).unwrap()
}

fn move_to(id: StrokeId, dx: i32, dy: i32) -> Op {
    Op::Move {
        to: Bounded::new(vec![Placement::new(id, dx, dy).unwrap()]).unwrap(),
    }
}

/// Ada's op is applied, but she loses her connection before its Ack. Bob, on `later_on`, works
/// on after it. Ada comes back on `later_on` with the same key, from where she was before the
/// op, and (as a client that cannot tell may) sends it again under its number: it is not
/// applied again, so Bob's work stands, and Ada hears that it was applied (her Welcome counts
/// it as decided, and the retry is answered with its first Ack).
async fn a_retry_after_a_lost_ack(kind: Kind, first: &TestServer, later_on: &TestServer) {
    let room = first.create_room().await;
    let mut ada = first.editor(&room, "ada").await;
    let mut bob = later_on.editor(&room, "bob").await;
    let mine = ada.draw_stroke(1, 6, 2).await;
    if kind == Kind::Restore {
        ada.send_op(Op::Erase { ids: ids(mine) }).await;
    }
    ada.settle().await;
    bob.sync_to(ada.position().seq).await;
    let (lost, later) = match kind {
        Kind::Clear => (Op::Clear, None),
        Kind::Erase => (
            Op::Erase { ids: ids(mine) },
            Some(Op::Restore { ids: ids(mine) }),
        ),
        Kind::Move => (move_to(mine, 80, 80), Some(move_to(mine, 400, -400))),
        Kind::Restore => (
            Op::Restore { ids: ids(mine) },
            Some(Op::Erase { ids: ids(mine) }),
        ),
    };
    let (key, author, before) = (ada.key, ada.author(), ada.board.clone());
    let n = ada.next_n;
    ada.send_op(lost.clone()).await;
    // Gone before its Ack.
    ada.close().await;
    let applied_at = match bob
        .recv_until(|m| matches!(m, ServerMsg::Op(s) if s.op == lost))
        .await
    {
        ServerMsg::Op(s) => s.seq,
        _ => unreachable!(),
    };
    match later {
        None => {
            bob.draw_stroke(2, 6, 2).await;
        }
        Some(op) => bob.send_op(op).await,
    }
    bob.settle().await;
    let (expected, head) = (bob.board.snapshot(), bob.position());

    let mut back = TestClient::connect(later_on, room.id.as_str()).await;
    back.key = key;
    back.next_n = n + 1;
    back.board = before.clone();
    back.hello(&room.id, &room.edit, before.position()).await;
    let welcome = back.expect_welcome().await;
    assert_eq!(
        welcome.author, author,
        "{kind:?}: the same author on the same key"
    );
    assert!(
        welcome.decided >= n,
        "{kind:?}: the Welcome says op {n} was decided ({})",
        welcome.decided
    );
    back.send_op_numbered(n, lost.clone()).await;
    match back
        .recv_until(|m| matches!(m, ServerMsg::Ack(_) | ServerMsg::Error(_)))
        .await
    {
        ServerMsg::Ack(a) => assert_eq!(a.seq, applied_at, "{kind:?}: its first place"),
        other => panic!("{kind:?}: expected the first Ack, got {other:?}"),
    }
    // Nothing was sequenced by the retry, and Bob's work stands.
    let late = later_on.viewer(&room, "late").await;
    assert_eq!(late.position(), head, "{kind:?}: the retry took no place");
    assert_eq!(
        late.board.snapshot(),
        expected,
        "{kind:?}: Bob's work stands"
    );
    assert_eq!(back.board.snapshot(), expected, "{kind:?}: Ada sees it too");
}

#[tokio::test]
async fn a_retried_clear_erase_move_or_restore_never_undoes_later_work_on_one_node() {
    let server = TestServer::start().await;
    for kind in [Kind::Clear, Kind::Erase, Kind::Move, Kind::Restore] {
        a_retry_after_a_lost_ack(kind, &server, &server).await;
    }
}

#[tokio::test]
async fn an_op_retried_on_another_node_is_applied_once() {
    let redis = RedisServer::start(false).await;
    let one = node(&redis, "one").await;
    let two = node(&redis, "two").await;
    for kind in [Kind::Clear, Kind::Erase, Kind::Move, Kind::Restore] {
        a_retry_after_a_lost_ack(kind, &one, &two).await;
    }
}

#[tokio::test]
async fn an_op_retried_after_a_restart_is_applied_once() {
    let mut server = TestServer::start().await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let mut watcher = server.viewer(&room, "watcher").await;
    let mine = ada.draw_stroke(1, 6, 2).await;
    ada.settle().await;
    let (key, before) = (ada.key, ada.board.clone());
    let n = ada.next_n;
    let lost = move_to(mine, 30, 30);
    ada.send_op(lost.clone()).await;
    watcher
        .recv_until(|m| matches!(m, ServerMsg::Op(s) if s.op == lost))
        .await;
    // Applied; the node stops (cleanly: what it sequenced is on disk) before Ada reads the
    // Ack.
    server.begin_shutdown();
    let _ = ada.expect_close().await;
    server.finished().await;
    server.restart().await;
    let mut bob = server.editor(&room, "bob").await;
    bob.send_op(move_to(mine, -70, 10)).await;
    bob.settle().await;
    let (expected, head) = (bob.board.snapshot(), bob.position());

    let mut back = TestClient::connect(&server, room.id.as_str()).await;
    back.key = key;
    back.board = before.clone();
    back.hello(&room.id, &room.edit, before.position()).await;
    let welcome = back.expect_welcome().await;
    assert!(welcome.decided >= n, "decided: {}", welcome.decided);
    // Retried anyway: the node that restarted knows the number, if not its place.
    back.send_op_numbered(n, lost).await;
    match back
        .recv_until(|m| matches!(m, ServerMsg::Ack(_) | ServerMsg::Error(_)))
        .await
    {
        ServerMsg::Ack(_) => {}
        ServerMsg::Error(e) => assert_eq!(e.code, ErrorCode::Decided),
        _ => unreachable!(),
    }
    let late = server.viewer(&room, "late").await;
    assert_eq!(late.position(), head, "the retry took no place");
    assert_eq!(late.board.snapshot(), expected);
}

/// Three strokes by `c`, each settled.
async fn strokes(c: &mut TestClient, first_seed: u32) {
    for seed in first_seed..first_seed + 3 {
        c.draw_stroke(seed, 6, 2).await;
    }
    c.settle().await;
}

/// Waits for the Welcome of a new history (not `old`) on a live connection, and applies it.
async fn new_history(c: &mut TestClient, old: kokuban_protocol::Epoch) {
    let w = match c
        .recv_until(|m| matches!(m, ServerMsg::Welcome(w) if w.epoch != old))
        .await
    {
        ServerMsg::Welcome(w) => w,
        _ => unreachable!(),
    };
    apply_new_welcome(c, &w);
}

#[tokio::test]
async fn a_redis_restarted_from_older_data_puts_every_member_on_one_board_in_a_new_epoch() {
    let mut redis = RedisServer::start(false).await;
    // Nodes A and B reach Redis through proxies, so that they can miss what happens while
    // Redis rolls back; node C talks to it directly.
    let (pa, pb) = (
        FaultProxy::start(redis.addr()).await,
        FaultProxy::start(redis.addr()).await,
    );
    let a = node_at(&pa.redis_url(), "a", |_| {}).await;
    let b = node_at(&pb.redis_url(), "b", |_| {}).await;
    let room = a.create_room().await;
    let mut ada = a.editor(&room, "ada").await;
    let mut bob = b.editor(&room, "bob").await;
    strokes(&mut ada, 1).await;
    // A copy of Redis as it is now; then more is acknowledged.
    redis.command(&["SAVE"]).await;
    strokes(&mut ada, 10).await;
    bob.sync_to(ada.position().seq).await;
    let (old, head) = (ada.epoch(), ada.position().seq);

    // Redis restarts from the copy while A and B are cut off from it, and a member of a node
    // that loads the room afterwards writes past where A and B were.
    pa.cut();
    pb.cut();
    redis.stop().await;
    redis.restart().await;
    let c = node(&redis, "c").await;
    let mut cy = c.editor(&room, "cy").await;
    assert!(cy.position().seq < head, "Redis went back in time");
    while cy.position().seq <= head {
        let seed = 20 + cy.position().seq.0 as u32;
        strokes(&mut cy, seed).await;
    }

    // A and B come back: they cannot resume onto a history that is not the one they hold,
    // so the room starts a new one, and every member of every node takes it.
    pa.heal();
    pb.heal();
    for m in [&mut ada, &mut bob, &mut cy] {
        new_history(m, old).await;
    }
    let epoch = cy.epoch();
    assert_ne!(epoch, old);
    for m in [&ada, &bob] {
        assert_eq!(m.epoch(), epoch, "one new history for everyone");
        assert_eq!(
            m.board.snapshot(),
            cy.board.snapshot(),
            "one board for everyone"
        );
    }
    // And the room goes on in it.
    ada.draw_stroke(40, 6, 2).await;
    ada.settle().await;
    for m in [&mut bob, &mut cy] {
        m.sync_to(ada.position().seq).await;
        assert_eq!(m.board.snapshot(), ada.board.snapshot());
    }
}

/// A single node run as a child process on `data_dir`, so that it can be killed with -9.
struct SingleNode {
    child: Child,
}

impl SingleNode {
    async fn start(data_dir: &std::path::Path, addr: SocketAddr) -> SingleNode {
        let child = Command::new(env!("CARGO_BIN_EXE_kokuban"))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("the kokuban binary starts");
        // Owned at once, so that it is killed and reaped whatever happens next.
        let node = SingleNode { child };
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok()
                && http(addr, "GET", "/readyz", &[]).await.status == 200
            {
                return node;
            }
            assert!(tokio::time::Instant::now() < deadline, "node not ready");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SingleNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn text(i: u64) -> Op {
    Op::Text {
        id: StrokeId(uuid::Uuid::new_v4()),
        at: Point::new((i % 4000) as i32, 0, 0).unwrap(),
        color: Color::rgb(0, 0, 0),
        size: Width::new(16).unwrap(),
        text: Text::new(format!("t{i}")).unwrap(),
    }
}

/// An editor that writes text items as fast as the node answers, until its connection ends;
/// returns the ids of those acknowledged.
async fn write_until_gone(addr: SocketAddr, room: TestRoom) -> Vec<StrokeId> {
    let url = format!("ws://{addr}/ws/{}", room.id);
    let Ok(mut c) = TestClient::connect_to(&url, None).await else {
        return Vec::new();
    };
    c.hello(&room.id, &room.edit, None).await;
    let mut acked = Vec::new();
    match c.next_event().await {
        harness::Event::Msg(ServerMsg::Welcome(w)) => c.welcome = Some(w),
        _ => return acked,
    }
    let mut in_flight = std::collections::VecDeque::new();
    // Paced under the per-connection rate limit, so that every op gets an answer.
    let mut pace = tokio::time::interval(Duration::from_millis(6));
    for i in 0u64.. {
        // A few ops in flight at a time, as a drawing client has.
        while in_flight.len() < 8 {
            pace.tick().await;
            let op = text(i * 8 + in_flight.len() as u64);
            let Op::Text { id, .. } = op else {
                unreachable!()
            };
            let n = c.next_n;
            c.next_n += 1;
            let msg = kokuban_protocol::ClientMsg::Op(kokuban_protocol::Submit { n, op });
            let sent =
                c.ws.send(tokio_tungstenite::tungstenite::Message::Binary(
                    kokuban_protocol::encode_client(&msg).into(),
                ))
                .await;
            if sent.is_err() {
                return acked;
            }
            in_flight.push_back(id);
        }
        let next = tokio::time::timeout(TIMEOUT, c.ws.next()).await;
        let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(b)))) = next else {
            if matches!(next, Ok(Some(Ok(_)))) {
                continue;
            }
            return acked;
        };
        // Answers come in the order the ops were sent: an Ack, or a refusal (the node may turn
        // the room read-only while the disk catches up with this flood).
        match kokuban_protocol::decode_server(&b) {
            Ok(ServerMsg::Ack(_) | ServerMsg::Acked(_)) => acked.extend(in_flight.pop_front()),
            Ok(ServerMsg::Error(_)) => {
                in_flight.pop_front();
            }
            _ => {}
        }
    }
    acked
}

#[tokio::test]
async fn every_acknowledged_op_survives_kill_9_of_a_single_node() {
    const KILLS: usize = 6;
    const EDITORS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut node = SingleNode::start(dir.path(), addr).await;
    let room = create_room_at(addr).await;
    let (mut acked_total, mut lost_total) = (0usize, 0usize);
    for kill in 0..KILLS {
        let writers: Vec<_> = (0..EDITORS)
            .map(|_| tokio::spawn(write_until_gone(addr, room.clone())))
            .collect();
        // Killed at a moment the test does not choose from what it sees.
        let wait = 300 + rand::random::<u64>() % 700;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        node.kill();
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.await.unwrap());
        }
        node = SingleNode::start(dir.path(), addr).await;
        let url = format!("ws://{addr}/ws/{}", room.id);
        let mut viewer = TestClient::connect_to(&url, None).await.unwrap();
        viewer.hello(&room.id, &room.view, None).await;
        viewer.expect_welcome().await;
        let on_board: HashSet<StrokeId> = viewer.board.strokes().map(|s| s.id).collect();
        let lost = acked.iter().filter(|id| !on_board.contains(id)).count();
        println!(
            "kill {}: {} ops acknowledged before kill -9, {lost} missing after the restart",
            kill + 1,
            acked.len()
        );
        acked_total += acked.len();
        lost_total += lost;
    }
    println!("{KILLS} kills: {acked_total} acknowledged, {lost_total} missing");
    assert!(acked_total > 0, "the editors got to write");
    assert_eq!(
        lost_total, 0,
        "every acknowledged op is on the board after a crash"
    );
}
