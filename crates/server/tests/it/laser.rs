//! The laser pointer: ephemeral like a cursor (coalesced with it, never sequenced, never
//! stored), open to view-only members, and relayed across nodes.

use std::time::Instant;

use kokuban_protocol::{ClientMsg, Cursor, PresenceEvent, Seq, ServerMsg};

use crate::harness::cluster::{node, node_with};
use crate::harness::redis::RedisServer;
use crate::harness::{TestClient, TestServer, unmetered};

/// Sends `n` laser points along the x axis, ending at x = `n - 1`.
async fn sweep(c: &mut TestClient, n: i32) {
    for x in 0..n {
        c.send(&ClientMsg::Laser(Cursor::new(x, -x).unwrap())).await;
    }
}

/// Counts the laser updates of `from` that `to` receives until the one at x = `last`.
async fn updates_until(to: &mut TestClient, from: &TestClient, last: i32) -> usize {
    let who = from.member();
    let mut updates = 0;
    loop {
        let m = to
            .recv_until(|m| matches!(m, ServerMsg::Laser(l) if l.member == who))
            .await;
        updates += 1;
        if matches!(m, ServerMsg::Laser(l) if l.at.x() == last && l.at.y() == -last) {
            return updates;
        }
    }
}

/// Checks that `viewer` was refused nothing: it reads until a cursor of `other` arrives,
/// which comes after any answer to what it sent before.
async fn assert_not_refused(viewer: &mut TestClient, other: &mut TestClient) {
    other.send_cursor(1, 1).await;
    let who = other.member();
    viewer
        .recv_until(|m| matches!(m, ServerMsg::Cursor(c) if c.member == who))
        .await;
    assert!(
        !viewer
            .other
            .iter()
            .any(|m| matches!(m, ServerMsg::Error(_))),
        "a viewer may point"
    );
}

#[tokio::test]
async fn a_viewers_laser_reaches_the_others_coalesced_and_is_never_stored() {
    // Unmetered: the flood is there to see the coalescing, not the inbound budget.
    let server = TestServer::start_with(unmetered).await;
    let room = server.create_room().await;
    let mut ada = server.editor(&room, "ada").await;
    let mut bob = server.viewer(&room, "bob").await;
    ada.recv_until(|m| matches!(m, ServerMsg::Presence(PresenceEvent::Joined(_))))
        .await;

    let started = Instant::now();
    sweep(&mut bob, 200).await;
    let updates = updates_until(&mut ada, &bob, 199).await;
    // One update per coalescing window at most (plus the windows at either end).
    let windows = started.elapsed().as_millis() / server.config.cursor_interval.as_millis();
    assert!(
        updates as u128 <= windows + 2 && updates < 200,
        "{updates} laser updates for 200 moves in {windows} windows"
    );
    // The viewer was not refused, and nothing reached the room's history.
    assert_not_refused(&mut bob, &mut ada).await;
    assert_eq!(ada.board.position().unwrap().seq, Seq(0));
    assert_eq!(server.metric("kokuban_ops_sequenced_total").await, 0.0);
    let late = server.editor(&room, "cy").await;
    assert!(late.board.is_empty(), "no trace on the board");
    assert_eq!(late.board.position().unwrap().seq, Seq(0));
}

#[tokio::test]
async fn a_laser_crosses_nodes() {
    let redis = RedisServer::shared().await;
    let a = node(redis, "node-a").await;
    let b = node_with(redis, "node-b", unmetered).await;
    let room = a.create_room().await;
    let mut ada = a.editor(&room, "ada").await;
    let mut bob = b.viewer(&room, "bob").await;
    let who = bob.member();
    // A node relays a remote member's pointer once it knows the member.
    ada.until_seen(|m| matches!(m, ServerMsg::Presence(PresenceEvent::Joined(j)) if j.id == who))
        .await;
    sweep(&mut bob, 200).await;
    let updates = updates_until(&mut ada, &bob, 199).await;
    assert!(updates < 200, "{updates} laser updates for 200 moves");
    assert_not_refused(&mut bob, &mut ada).await;
    assert_eq!(ada.board.position().unwrap().seq, Seq(0));
    let late = b.editor(&room, "cy").await;
    assert!(late.board.is_empty());
}
