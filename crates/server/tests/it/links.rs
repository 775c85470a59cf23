//! Revocable links: `POST /api/rooms/{room}/links` hands out new links, and every older one,
//! edit and view alike, stops opening the room, on every node, across restarts.

use std::net::SocketAddr;

use kokuban_protocol::{ErrorCode, RoomId, Token, close};

use crate::harness::cluster::{join_at, node};
use crate::harness::redis::RedisServer;
use crate::harness::{HttpResponse, TestClient, TestRoom, TestServer, http};

async fn reset(addr: SocketAddr, room: &RoomId, bearer: &str) -> HttpResponse {
    let auth = format!("Bearer {bearer}");
    let path = format!("/api/rooms/{room}/links");
    http(addr, "POST", &path, &[("Authorization", &auth)]).await
}

/// Resets the room's links with `room.edit`, checks the answer, and returns the room with
/// its new tokens.
async fn reset_ok(addr: SocketAddr, room: &TestRoom) -> TestRoom {
    let r = reset(addr, &room.id, room.edit.as_str()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let json: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    let edit_url = json["edit_url"].as_str().unwrap();
    let view_url = json["view_url"].as_str().unwrap().to_owned();
    let prefix = format!("/r/{}#", room.id);
    let edit = edit_url
        .strip_prefix(&format!("{prefix}edit="))
        .expect("edit link of the room");
    let view = view_url
        .strip_prefix(&format!("{prefix}view="))
        .expect("view link of the room");
    TestRoom {
        id: room.id.clone(),
        edit: Token::new(edit).unwrap(),
        view: Token::new(view).unwrap(),
        view_url,
    }
}

/// Says Hello with `token` through `addr` and expects the Forbidden refusal.
async fn refused_at(addr: SocketAddr, room: &RoomId, token: &Token) {
    let url = format!("ws://{addr}/ws/{room}");
    let mut c = TestClient::connect_to(&url, None).await.unwrap();
    c.hello(room, token, None).await;
    c.expect_error(ErrorCode::Forbidden).await;
    assert_eq!(c.expect_close().await, Some(close::POLICY));
}

#[tokio::test]
async fn a_reset_hands_out_new_links_and_the_old_ones_stop_working() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut editor = server.editor(&room, "ada").await;
    let mut viewer = server.viewer(&room, "bob").await;

    let new = reset_ok(server.addr, &room).await;
    assert_ne!(new.edit, room.edit);
    assert_ne!(new.view, room.view);

    // Members in with an old link are told why they were closed.
    assert_eq!(editor.expect_close().await, Some(close::LINKS_RESET));
    assert_eq!(viewer.expect_close().await, Some(close::LINKS_RESET));
    refused_at(server.addr, &room.id, &room.edit).await;
    refused_at(server.addr, &room.id, &room.view).await;

    // The new links open the room, and a member with one stays when nothing else happens.
    let mut ada = server.editor(&new, "ada").await;
    let _bob = server.viewer(&new, "bob").await;
    ada.draw_stroke(1, 4, 2).await;
    ada.settle().await;

    // An old edit link cannot reset again; the new one can, once.
    assert_eq!(
        reset(server.addr, &room.id, room.edit.as_str())
            .await
            .status,
        403
    );
    let newer = reset_ok(server.addr, &new).await;
    assert_eq!(ada.expect_close().await, Some(close::LINKS_RESET));
    assert_eq!(
        reset(server.addr, &room.id, new.edit.as_str()).await.status,
        403
    );
    server.editor(&newer, "ada").await;
}

#[tokio::test]
async fn only_an_edit_link_of_the_room_resets_it() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let other = server.create_room().await;
    let cases = [
        (room.id.clone(), room.view.as_str().to_owned()),
        (room.id.clone(), "garbage".to_owned()),
        (room.id.clone(), String::new()),
        (room.id.clone(), other.edit.as_str().to_owned()),
        (
            RoomId::new("no_such_room").unwrap(),
            room.edit.as_str().to_owned(),
        ),
    ];
    for (id, bearer) in cases {
        let r = reset(server.addr, &id, &bearer).await;
        assert_eq!(r.status, 403, "{bearer}: {}", r.body);
        let json: serde_json::Value = serde_json::from_str(&r.body).expect("json");
        assert!(json["error"].is_string(), "{}", r.body);
    }
    let r = http(
        server.addr,
        "POST",
        &format!("/api/rooms/{}/links", room.id),
        &[],
    )
    .await;
    assert_eq!(r.status, 403, "no Authorization at all");
    // Nothing above reset anything.
    server.editor(&room, "ada").await;
    server.viewer(&room, "bob").await;
}

#[tokio::test]
async fn a_reset_survives_a_restart() {
    let mut server = TestServer::start().await;
    let room = server.create_room().await;
    let new = reset_ok(server.addr, &room).await;
    server.restart().await;
    refused_at(server.addr, &room.id, &room.edit).await;
    refused_at(server.addr, &room.id, &room.view).await;
    server.editor(&new, "ada").await;
    server.viewer(&new, "bob").await;
}

#[tokio::test]
async fn a_reset_on_one_node_closes_old_links_on_every_node() {
    let redis = RedisServer::shared().await;
    let a = node(redis, "links-a").await;
    let b = node(redis, "links-b").await;
    let room = a.create_room().await;
    let mut on_a = join_at(a.addr, &room, &room.edit, None).await;
    let mut on_b = join_at(b.addr, &room, &room.edit, None).await;
    let mut viewer_b = join_at(b.addr, &room, &room.view, None).await;

    let new = reset_ok(a.addr, &room).await;
    assert_eq!(on_a.expect_close().await, Some(close::LINKS_RESET));
    assert_eq!(on_b.expect_close().await, Some(close::LINKS_RESET));
    assert_eq!(viewer_b.expect_close().await, Some(close::LINKS_RESET));
    for addr in [a.addr, b.addr] {
        refused_at(addr, &room.id, &room.edit).await;
        refused_at(addr, &room.id, &room.view).await;
    }

    // The new links work on both nodes, and ops still cross between them.
    let mut ada = join_at(a.addr, &new, &new.edit, None).await;
    let mut bob = join_at(b.addr, &new, &new.edit, None).await;
    join_at(b.addr, &new, &new.view, None).await;
    ada.draw_stroke(7, 4, 2).await;
    ada.settle().await;
    let head = ada.position().seq;
    bob.sync_to(head).await;
    // A reset on B closes the members of A too.
    reset_ok(b.addr, &new).await;
    assert_eq!(ada.expect_close().await, Some(close::LINKS_RESET));
    assert_eq!(bob.expect_close().await, Some(close::LINKS_RESET));
}
