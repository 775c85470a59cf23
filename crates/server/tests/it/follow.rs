//! Cameras, for following a member: ephemeral like cursors (coalesced, never stored), open to
//! view-only members, and relayed across nodes.

use kokuban_protocol::{Camera, ClientMsg, Cursor, PresenceEvent, Seq, ServerMsg};

use crate::harness::cluster::{node, node_with};
use crate::harness::redis::RedisServer;
use crate::harness::unmetered;

#[tokio::test]
async fn a_viewers_camera_reaches_a_member_on_another_node_coalesced_and_is_never_stored() {
    let redis = RedisServer::shared().await;
    let a = node(redis, "node-a").await;
    let b = node_with(redis, "node-b", unmetered).await;
    let room = a.create_room().await;
    let mut ada = a.editor(&room, "ada").await;
    let mut bob = b.viewer(&room, "bob").await;
    let who = bob.member();
    ada.until_seen(|m| matches!(m, ServerMsg::Presence(PresenceEvent::Joined(j)) if j.id == who))
        .await;
    for x in 0..200 {
        let camera = Camera::new(Cursor::new(x * 8, 0).unwrap(), 1000 + x as u16).unwrap();
        bob.send(&ClientMsg::Camera(camera)).await;
    }
    let mut updates = 0;
    loop {
        let m = ada
            .recv_until(|m| matches!(m, ServerMsg::Camera(c) if c.member == who))
            .await;
        updates += 1;
        if matches!(m, ServerMsg::Camera(c) if c.camera.zoom_milli() == 1199) {
            break;
        }
    }
    assert!(updates < 200, "{updates} camera updates for 200 moves");
    // Bob was refused nothing: Ada's cursor reaches him after any answer to his frames.
    ada.send_cursor(1, 1).await;
    let ada_id = ada.member();
    bob.recv_until(|m| matches!(m, ServerMsg::Cursor(c) if c.member == ada_id))
        .await;
    assert!(!bob.other.iter().any(|m| matches!(m, ServerMsg::Error(_))));
    assert_eq!(ada.board.position().unwrap().seq, Seq(0));
    let late = b.editor(&room, "cy").await;
    assert!(late.board.is_empty());
}

#[tokio::test]
async fn an_ask_to_follow_reaches_everyone_on_every_node_after_the_askers_camera() {
    let redis = RedisServer::shared().await;
    let a = node(redis, "ask-a").await;
    let b = node(redis, "ask-b").await;
    let room = a.create_room().await;
    let mut bob = b.editor(&room, "bob").await;
    let mut cy = a.editor(&room, "cy").await;
    let mut ada = a.viewer(&room, "ada").await;
    let who = ada.member();
    for other in [&mut bob, &mut cy] {
        other
            .until_seen(
                |m| matches!(m, ServerMsg::Presence(PresenceEvent::Joined(j)) if j.id == who),
            )
            .await;
    }
    // A view-only presenter asks, twice in a row, right after moving: one ask arrives, after
    // the camera it was sent with.
    let camera = Camera::new(Cursor::new(640, 0).unwrap(), 1500).unwrap();
    ada.send(&ClientMsg::Camera(camera)).await;
    ada.send(&ClientMsg::AskToFollow).await;
    ada.send(&ClientMsg::AskToFollow).await;
    for other in [&mut bob, &mut cy] {
        let seen = other
            .recv_until(|m| matches!(m, ServerMsg::AskToFollow(m) if *m == who))
            .await;
        assert_eq!(seen, ServerMsg::AskToFollow(who));
        assert!(
            other.other.iter().any(
                |m| matches!(m, ServerMsg::Camera(c) if c.member == who && c.camera == camera)
            ),
            "the camera came first"
        );
    }
    // The asker gets no ask of their own, and nothing was refused or stored.
    let bob_id = bob.member();
    bob.send_cursor(1, 1).await;
    ada.recv_until(|m| matches!(m, ServerMsg::Cursor(c) if c.member == bob_id))
        .await;
    assert!(
        !ada.other
            .iter()
            .any(|m| matches!(m, ServerMsg::AskToFollow(_) | ServerMsg::Error(_)))
    );
    assert_eq!(bob.board.position().unwrap().seq, Seq(0));
}
