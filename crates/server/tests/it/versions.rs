//! Versions of a board (checkpoints): kept before every Clear and at intervals of drawing,
//! listed and read by anyone with a link, within the room's retention, on either backend.

use std::net::SocketAddr;
use std::time::Duration;

use kokuban_board::Board;
use kokuban_protocol::{Op, RoomId};

use crate::harness::cluster::{join_at, node};
use crate::harness::redis::RedisServer;
use crate::harness::{TestServer, http};

/// `GET /api/rooms/{room}/checkpoints` with `token`: its status and the listing.
async fn list(addr: SocketAddr, room: &RoomId, token: &str) -> (u16, Vec<serde_json::Value>) {
    let auth = format!("Bearer {token}");
    let path = format!("/api/rooms/{room}/checkpoints");
    let r = http(addr, "GET", &path, &[("Authorization", &auth)]).await;
    if r.status != 200 {
        return (r.status, Vec::new());
    }
    let json: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    (200, json["checkpoints"].as_array().expect("a list").clone())
}

/// `GET /api/rooms/{room}/checkpoints/{id}` with `token`: its status and the board.
async fn board(addr: SocketAddr, room: &RoomId, token: &str, id: u64) -> (u16, Option<Board>) {
    let auth = format!("Bearer {token}");
    let path = format!("/api/rooms/{room}/checkpoints/{id}");
    let r = kokuban_testkit::http::request(addr, "GET", &path, &[("Authorization", &auth)]).await;
    let board = (r.status == 200).then(|| Board::from_snapshot(&r.body).expect("a snapshot"));
    (r.status, board)
}

fn ids(listing: &[serde_json::Value]) -> Vec<u64> {
    listing.iter().map(|v| v["id"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_clear_keeps_the_board_before_it_which_anyone_with_a_link_can_read_after_a_restart() {
    let mut server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    a.draw_stroke(1, 30, 10).await;
    a.draw_stroke(2, 30, 10).await;
    a.settle().await;
    let before = a.board.clone();
    a.send_op(Op::Clear).await;
    a.settle().await;
    assert!(a.board.is_empty());
    // A Clear of the empty board keeps nothing more.
    a.draw_stroke(3, 5, 5).await;
    a.settle().await;
    assert_eq!(a.board.len(), 1);
    a.send_op(Op::Erase {
        ids: kokuban_protocol::Bounded::new(a.board.strokes().map(|s| s.id).collect()).unwrap(),
    })
    .await;
    a.send_op(Op::Clear).await;
    a.settle().await;

    let (status, listed) = list(server.addr, &room.id, room.view.as_str()).await;
    assert_eq!(status, 200);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let v = &listed[0];
    assert_eq!(v["reason"], "clear");
    assert_eq!(v["items"], 2);
    assert_eq!(v["authors"], serde_json::json!(["ada"]));
    let id = v["id"].as_u64().unwrap();
    let (status, kept) = board(server.addr, &room.id, room.view.as_str(), id).await;
    assert_eq!(status, 200);
    let kept = kept.unwrap();
    assert_eq!(kept.len(), 2);
    for s in before.strokes() {
        assert_eq!(kept.get(&s.id).map(|k| &k.points), Some(&s.points));
    }

    // No link, a wrong one or another room's: 403 alike; an unknown version: 404.
    assert_eq!(list(server.addr, &room.id, "nope").await.0, 403);
    let r = http(
        server.addr,
        "GET",
        &format!("/api/rooms/{}/checkpoints", room.id),
        &[],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let other = server.create_room().await;
    assert_eq!(
        list(server.addr, &other.id, room.edit.as_str()).await.0,
        403
    );
    assert_eq!(
        board(server.addr, &room.id, room.edit.as_str(), id + 1)
            .await
            .0,
        404
    );
    assert_eq!(
        list(server.addr, &other.id, other.view.as_str())
            .await
            .1
            .len(),
        0
    );

    a.close().await;
    server.restart().await;
    let (_, listed) = list(server.addr, &room.id, room.edit.as_str()).await;
    assert_eq!(ids(&listed), vec![id]);
}

#[tokio::test]
async fn versions_are_kept_at_intervals_of_drawing_newest_first_within_the_retention() {
    let server = TestServer::start_with(|c| {
        c.checkpoint_every = Duration::from_millis(40);
        c.checkpoints_kept = 3;
    })
    .await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    for seed in 0..6 {
        a.draw_stroke(seed, 10, 10).await;
        a.settle().await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    a.draw_stroke(99, 10, 10).await;
    a.settle().await;
    let (_, listed) = list(server.addr, &room.id, room.edit.as_str()).await;
    assert_eq!(listed.len(), 3, "only the newest are kept: {listed:?}");
    let kept = ids(&listed);
    assert!(
        kept.windows(2).all(|w| w[0] > w[1]),
        "newest first: {kept:?}"
    );
    // Each is the board before the op that found it due: the newest holds six strokes.
    let items: Vec<u64> = listed
        .iter()
        .map(|v| v["items"].as_u64().unwrap())
        .collect();
    assert_eq!(items, vec![6, 5, 4]);
    assert!(listed.iter().all(|v| v["reason"] == "interval"));
    let (_, newest) = board(server.addr, &room.id, room.view.as_str(), kept[0]).await;
    assert_eq!(newest.unwrap().len(), 6);

    // One address may read versions 120 times a minute, as many at once; then 429. The
    // bucket refills two reads a second meanwhile, which a loaded machine can make count.
    let mut refused = None;
    let started = std::time::Instant::now();
    for n in 0..130 {
        let (status, _) = list(server.addr, &room.id, room.view.as_str()).await;
        if status != 200 {
            refused = Some((n, status));
            break;
        }
    }
    let (n, status) = refused.expect("a 429 within 130 reads");
    assert_eq!(status, 429);
    let refilled = (started.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    assert!(
        (110..=120 + refilled).contains(&n),
        "refused after {n} reads ({refilled} refilled)"
    );
}

#[tokio::test]
async fn a_clear_on_one_node_keeps_one_version_that_both_nodes_serve() {
    let redis = RedisServer::shared().await;
    let a = node(redis, "versions-a").await;
    let b = node(redis, "versions-b").await;
    let room = a.create_room().await;
    let mut ada = join_at(a.addr, &room, &room.edit, None).await;
    let mut bob = join_at(b.addr, &room, &room.edit, None).await;
    ada.draw_stroke(1, 20, 10).await;
    ada.settle().await;
    bob.sync_to(ada.position().seq).await;
    bob.draw_stroke(2, 20, 10).await;
    bob.settle().await;
    ada.sync_to(bob.position().seq).await;
    bob.send_op(Op::Clear).await;
    bob.settle().await;
    ada.sync_to(bob.position().seq).await;
    assert!(ada.board.is_empty());

    // Both nodes held the room and found the version due; Redis keeps it once.
    let mut listed = Vec::new();
    for _ in 0..50 {
        listed = list(a.addr, &room.id, room.view.as_str()).await.1;
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, from_b) = list(b.addr, &room.id, room.view.as_str()).await;
    assert_eq!(from_b.len(), 1, "{from_b:?}");
    assert_eq!(ids(&listed), ids(&from_b));
    assert_eq!(from_b[0]["reason"], "clear");
    assert_eq!(from_b[0]["items"], 2);
    // Named by a node that holds one of those who drew (each node names its own members).
    let authors = from_b[0]["authors"].as_array().unwrap();
    assert!(!authors.is_empty(), "{from_b:?}");
    let kept_by = a.metric("kokuban_versions_kept_total").await
        + b.metric("kokuban_versions_kept_total").await;
    assert_eq!(kept_by, 1.0, "one node kept it, the other found it kept");
    for addr in [a.addr, b.addr] {
        let (status, kept) = board(addr, &room.id, room.edit.as_str(), ids(&from_b)[0]).await;
        assert_eq!(status, 200);
        assert_eq!(kept.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn a_restore_is_ordered_with_everyone_elses_ops_and_keeps_the_board_it_replaced() {
    use kokuban_client::clipboard::Clip;
    use kokuban_client::rng::Xoshiro256;

    let redis = RedisServer::shared().await;
    let keep_two = |c: &mut kokuban_server::config::Config| c.checkpoints_kept = 2;
    let a = crate::harness::cluster::node_with(redis, "restore-a", keep_two).await;
    let b = crate::harness::cluster::node_with(redis, "restore-b", keep_two).await;
    let room = a.create_room().await;
    let mut ada = join_at(a.addr, &room, &room.edit, None).await;
    let mut bob = join_at(b.addr, &room, &room.edit, None).await;
    // A first version, which the retention lets go later.
    ada.draw_stroke(9, 20, 10).await;
    ada.send_op(Op::Clear).await;
    ada.settle().await;
    ada.draw_stroke(1, 20, 10).await;
    ada.draw_stroke(2, 20, 10).await;
    ada.settle().await;
    let version = ada.board.clone();
    ada.send_op(Op::Clear).await;
    ada.settle().await;
    bob.sync_to(ada.position().seq).await;
    bob.draw_stroke(3, 20, 10).await;
    bob.settle().await;
    ada.sync_to(bob.position().seq).await;

    // Ada brings the version back (as the app does: a Clear, then its items drawn again under
    // new ids) while Bob draws on the other node.
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = list(a.addr, &room.id, room.edit.as_str()).await.1;
        if listed.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(listed.len(), 2, "{listed:?}");
    let first = ids(&listed)[1];
    let id = ids(&listed)[0];
    let (_, kept) = board(a.addr, &room.id, room.edit.as_str(), id).await;
    let kept = kept.unwrap();
    assert_eq!(kept.len(), version.len());
    let again = Clip::everything(&kept)
        .unwrap()
        .paste_moved((0, 0), &mut Xoshiro256::from_seed([7; 32]));
    ada.send_op(Op::Clear).await;
    let drawing = async {
        bob.draw_stroke(4, 40, 5).await;
        bob.settle().await;
    };
    let restoring = async {
        for op in again.ops.clone() {
            ada.send_op(op).await;
        }
        ada.settle().await;
    };
    tokio::join!(drawing, restoring);
    let head = ada.position().seq.max(bob.position().seq);
    ada.sync_to(head).await;
    bob.sync_to(head).await;

    // One order for both: the version's items all there, whole, and Bob's stroke either
    // cleared with the rest or drawn after the Clear — never half.
    let looks = |b: &Board| -> Vec<(kokuban_protocol::StrokeId, Vec<kokuban_protocol::Point>)> {
        b.strokes().map(|s| (s.id, s.points.to_vec())).collect()
    };
    assert_eq!(looks(&ada.board), looks(&bob.board));
    for id in &again.ids {
        let s = ada.board.get(id).expect("a restored item");
        assert!(s.finished && !s.erased);
    }
    let others: Vec<_> = ada
        .board
        .strokes()
        .filter(|s| !again.ids.contains(&s.id))
        .collect();
    assert!(
        others.len() <= 1 && others.iter().all(|s| s.finished),
        "{others:?}"
    );
    assert_eq!(ada.board.len(), version.len() + others.len());

    // The board the restore replaced is a version too; with two kept, the oldest went.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, listed) = list(b.addr, &room.id, room.view.as_str()).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[1]["id"].as_u64(), Some(id));
    assert!(!ids(&listed).contains(&first));
    // Bob's stroke, before the restore's Clear (and his next one, if it began before it).
    let items = listed[0]["items"].as_u64().unwrap();
    assert!((1..=2).contains(&items), "{listed:?}");
    assert_eq!(
        board(b.addr, &room.id, room.view.as_str(), first).await.0,
        404
    );
}

/// `PUT /api/rooms/{room}/history` with `token` and `body`: the status.
async fn set_access(addr: SocketAddr, room: &RoomId, token: &str, body: &str) -> u16 {
    kokuban_testkit::http::Request::new("PUT", addr, &format!("/api/rooms/{room}/history"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status
}

#[tokio::test]
async fn editors_may_keep_the_history_from_view_links_after_a_restart_and_on_every_node() {
    let mut server = TestServer::start().await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    a.draw_stroke(1, 10, 10).await;
    a.send_op(Op::Clear).await;
    a.settle().await;
    let view = room.view.as_str();
    let (status, listed) = list(server.addr, &room.id, view).await;
    assert_eq!((status, listed.len()), (200, 1));
    let id = ids(&listed)[0];

    // A view link may not change it; a malformed body is a 400; an editor's word holds.
    let off = r#"{"viewers": false}"#;
    assert_eq!(set_access(server.addr, &room.id, view, off).await, 403);
    assert_eq!(
        set_access(server.addr, &room.id, room.edit.as_str(), "{}").await,
        400
    );
    assert_eq!(
        set_access(server.addr, &room.id, room.edit.as_str(), off).await,
        200
    );
    server.restart().await;
    assert_eq!(list(server.addr, &room.id, view).await.0, 403);
    assert_eq!(board(server.addr, &room.id, view, id).await.0, 403);
    let r = http(
        server.addr,
        "GET",
        &format!("/api/rooms/{}/checkpoints", room.id),
        &[("Authorization", &format!("Bearer {view}"))],
    )
    .await;
    assert!(
        r.body.contains("keep its history to themselves"),
        "{}",
        r.body
    );
    let (status, listed) = list(server.addr, &room.id, room.edit.as_str()).await;
    assert_eq!(
        (status, ids(&listed)),
        (200, vec![id]),
        "editors still read it"
    );
    let on = r#"{"viewers": true}"#;
    assert_eq!(
        set_access(server.addr, &room.id, room.edit.as_str(), on).await,
        200
    );
    assert_eq!(list(server.addr, &room.id, view).await.0, 200);

    // In a cluster, set through one node, it holds on the other.
    let redis = RedisServer::shared().await;
    let a = node(redis, "access-a").await;
    let b = node(redis, "access-b").await;
    let room = a.create_room().await;
    assert_eq!(list(b.addr, &room.id, room.view.as_str()).await.0, 200);
    assert_eq!(
        set_access(a.addr, &room.id, room.edit.as_str(), off).await,
        200
    );
    assert_eq!(list(b.addr, &room.id, room.view.as_str()).await.0, 403);
    assert_eq!(list(b.addr, &room.id, room.edit.as_str()).await.0, 200);
    let nowhere = RoomId::new("no_such_room").unwrap();
    assert_eq!(
        set_access(b.addr, &nowhere, room.edit.as_str(), off).await,
        403
    );
}
