//! The HTTP surface: room creation, health, readiness, metrics, the app's page.

use crate::harness::{TestServer, http};

#[tokio::test]
async fn creating_a_room_answers_201_with_an_unguessable_id_and_two_links() {
    let server = TestServer::start().await;
    let r = http(server.addr, "POST", "/api/rooms", &[]).await;
    assert_eq!(r.status, 201);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let room = json["room"].as_str().unwrap();
    assert_eq!(room.len(), 22);
    assert!(
        room.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let edit = json["edit_url"].as_str().unwrap();
    let view = json["view_url"].as_str().unwrap();
    assert!(edit.starts_with(&format!("/r/{room}#edit=")), "{edit}");
    assert!(view.starts_with(&format!("/r/{room}#view=")), "{view}");
    let edit_token = edit.split('=').nth(1).unwrap();
    assert!(!view.contains(edit_token));
    assert_eq!(r.header("location"), Some(format!("/r/{room}").as_str()));
    let again = server.create_room().await;
    assert_ne!(again.id.as_str(), room);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = TestServer::start().await;
    assert_eq!(http(server.addr, "GET", "/healthz", &[]).await.status, 200);
    assert_eq!(http(server.addr, "GET", "/readyz", &[]).await.status, 200);
    let m = http(server.addr, "GET", "/metrics", &[]).await;
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    for series in [
        "kokuban_connections_open",
        "kokuban_rooms_loaded",
        "kokuban_frames_in_total",
        "kokuban_frames_out_total",
        "kokuban_bytes_in_total",
        "kokuban_bytes_out_total",
        "kokuban_ops_sequenced_total",
        "kokuban_slow_consumer_disconnects_total",
        "kokuban_rate_limit_hits_total",
        "kokuban_rejected_frames_total{reason=\"malformed\"}",
        "kokuban_store_write_seconds_bucket{le=\"+Inf\"}",
        "kokuban_origin_rejections_total",
    ] {
        assert!(m.body.contains(&format!("\n{series} ")), "missing {series}");
    }
    let room = server.create_room().await;
    let mut a = server.editor(&room, "ada").await;
    a.draw_stroke(1, 10, 5).await;
    a.settle().await;
    assert_eq!(server.metric("kokuban_ops_sequenced_total").await, 4.0);
    assert_eq!(server.metric("kokuban_connections_open").await, 1.0);
    assert_eq!(server.metric("kokuban_rooms_loaded").await, 1.0);
    assert!(server.metric("kokuban_store_write_seconds_count").await >= 1.0);
}

#[tokio::test]
async fn the_app_is_served_at_the_root_and_on_room_paths() {
    let server = TestServer::start().await;
    for path in ["/", "/r/AAAAAAAAAAAAAAAAAAAAAA"] {
        let r = http(server.addr, "GET", path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with("text/html"),
            "{path}"
        );
        // Either the app (revalidated on every load) or the page that says how to build it.
        let cache = r.header("cache-control").unwrap();
        assert!(cache == "no-cache" || cache == "no-store", "{cache}");
    }
    let missing = http(server.addr, "GET", "/no-such-file.js", &[]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("\"error\""));
    let climbing = http(server.addr, "GET", "/../Cargo.toml", &[]).await;
    assert_eq!(climbing.status, 404);
}
