//! Images of a board: posted with an edit link, kept per room by the SHA-256 of their bytes,
//! read with any link of the room; refused when they are not what they claim, too big, past
//! the room's budget or too many; on one node across a restart, and across the nodes of a
//! cluster on one Redis and on a Redis Cluster.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use kokuban_protocol::RoomId;
use kokuban_testkit::cluster::RedisCluster;
use kokuban_testkit::http::{Request, Response};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::cluster::{node_at, wait_ready};
use crate::harness::redis::RedisServer;
use crate::harness::{TestRoom, TestServer};

/// A whole 1×1 PNG, as an editor's browser would post it.
const PIXEL_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

fn pixel() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(PIXEL_PNG)
        .unwrap()
}

/// `len` bytes that begin as a PNG of `tag`×1 pixels does (its signature and the start of its
/// header), distinct for each `tag`.
fn png(tag: u8, len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend(u32::from(tag.max(1)).to_be_bytes());
    bytes.extend(1u32.to_be_bytes());
    bytes.resize(len.max(bytes.len()), tag);
    bytes
}

/// The SHA-256 of `bytes` in lowercase hex, computed here, not by the server.
fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `POST /api/rooms/{room}/blobs{query}` with `token` (if any), `content_type` (if any) and
/// `body`.
async fn post_with(
    addr: SocketAddr,
    room: &RoomId,
    token: Option<&str>,
    content_type: Option<&str>,
    query: &str,
    body: Vec<u8>,
) -> Response {
    let mut r = Request::post(addr, &format!("/api/rooms/{room}/blobs{query}")).body(body);
    if let Some(token) = token {
        r = r.header("Authorization", &format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        r = r.header("Content-Type", content_type);
    }
    r.send().await.unwrap()
}

/// A PNG posted with the room's edit token.
async fn post(addr: SocketAddr, room: &TestRoom, body: Vec<u8>) -> Response {
    post_with(
        addr,
        &room.id,
        Some(room.edit.as_str()),
        Some("image/png"),
        "",
        body,
    )
    .await
}

/// Posts `body` as a PNG, checks the 201, and returns its hash.
async fn posted(addr: SocketAddr, room: &TestRoom, body: Vec<u8>) -> String {
    let r = post(addr, room, body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    json(&r)["hash"].as_str().expect("a hash").to_owned()
}

/// `GET /api/rooms/{room}/blobs/{hash}` with `token` (if any).
async fn get(addr: SocketAddr, room: &RoomId, token: Option<&str>, hash: &str) -> Response {
    let mut r = Request::get(addr, &format!("/api/rooms/{room}/blobs/{hash}"));
    if let Some(token) = token {
        r = r.header("Authorization", &format!("Bearer {token}"));
    }
    r.send().await.unwrap()
}

/// The JSON body of an answer (every refusal has one, with an `error`).
fn json(r: &Response) -> serde_json::Value {
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// Asserts `r` is a refusal with `status` whose message contains `words`.
fn refused(r: &Response, status: u16, words: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let error = json(r)["error"].as_str().expect("an error").to_owned();
    assert!(
        error.to_lowercase().contains(&words.to_lowercase()),
        "{error:?} does not say {words:?}"
    );
}

/// Asserts `r` serves `bytes` as a PNG, with the headers that keep it one.
fn serves_png(r: &Response, bytes: &[u8]) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(&r.body[..], bytes);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'")
    );
}

#[tokio::test]
async fn a_png_posted_with_the_edit_link_comes_back_whole_to_a_view_link_after_a_restart() {
    let mut server = TestServer::start().await;
    let room = server.create_room().await;
    let image = pixel();

    let hash = posted(server.addr, &room, image.clone()).await;
    assert_eq!(hash, sha256(&image));
    assert_eq!(hash.len(), 64);
    // Content-addressed: the same bytes again are the same image, stored once.
    assert_eq!(posted(server.addr, &room, image.clone()).await, hash);
    assert_eq!(server.metric("kokuban_blobs_stored_total").await, 1.0);
    assert_eq!(
        server.metric("kokuban_blob_bytes_stored_total").await,
        image.len() as f64
    );

    let view = Some(room.view.as_str());
    serves_png(&get(server.addr, &room.id, view, &hash).await, &image);
    let edit = Some(room.edit.as_str());
    serves_png(&get(server.addr, &room.id, edit, &hash).await, &image);
    // The hash's case does not matter; the image is the same.
    let upper = hash.to_uppercase();
    serves_png(&get(server.addr, &room.id, view, &upper).await, &image);

    // An image above axum's own default body limit (2 MB) and below ours (10 MiB).
    let photo = png(7, 3 << 20);
    let big = posted(server.addr, &room, photo.clone()).await;
    assert_eq!(big, sha256(&photo));

    server.restart().await;
    serves_png(&get(server.addr, &room.id, view, &hash).await, &image);
    serves_png(&get(server.addr, &room.id, view, &big).await, &photo);
}

#[tokio::test]
async fn only_an_edit_link_of_the_room_posts_and_only_links_of_the_room_read() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let other = server.create_room().await;
    let addr = server.addr;
    let image = pixel();
    let hash = posted(addr, &room, image.clone()).await;

    let forbidden = "does not exist or the link is not valid";
    let strangers = [None, Some("nope"), Some(other.edit.as_str())];
    for token in strangers.into_iter().chain([Some(room.view.as_str())]) {
        let r = post_with(addr, &room.id, token, Some("image/png"), "", png(1, 64)).await;
        refused(&r, 403, forbidden);
    }
    for token in strangers.into_iter().chain([Some(other.view.as_str())]) {
        refused(&get(addr, &room.id, token, &hash).await, 403, forbidden);
    }
    // A room's image is not one of another room's, whoever asks.
    let r = get(addr, &other.id, Some(other.edit.as_str()), &hash).await;
    refused(&r, 404, "no image");
    assert_eq!(posted(addr, &other, png(2, 64)).await, sha256(&png(2, 64)));

    // After a reset of the room's links, the old ones neither post nor read.
    let auth = format!("Bearer {}", room.edit.as_str());
    let reset = Request::post(addr, &format!("/api/rooms/{}/links", room.id))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status, 200, "{}", reset.text());
    let links = json(&reset);
    let new_view = links["view_url"].as_str().unwrap().split("#view=").nth(1);
    let new_edit = links["edit_url"].as_str().unwrap().split("#edit=").nth(1);
    let old = post_with(
        addr,
        &room.id,
        Some(room.edit.as_str()),
        Some("image/png"),
        "",
        png(3, 64),
    )
    .await;
    refused(&old, 403, forbidden);
    refused(
        &get(addr, &room.id, Some(room.view.as_str()), &hash).await,
        403,
        forbidden,
    );
    serves_png(&get(addr, &room.id, new_view, &hash).await, &image);
    let r = post_with(addr, &room.id, new_edit, Some("image/png"), "", png(3, 64)).await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn an_image_must_be_what_its_type_says_and_named_by_a_well_formed_hash() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let addr = server.addr;
    let post_as = async |content_type: Option<&str>, query: String, body: Vec<u8>| {
        let edit = Some(room.edit.as_str());
        post_with(addr, &room.id, edit, content_type, &query, body).await
    };

    // SVG can carry script: refused like any type outside the allow-list.
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    refused(
        &post_as(Some("image/svg+xml"), String::new(), svg).await,
        415,
        "png, jpeg, webp and gif",
    );
    let html = b"<!doctype html><script>alert(1)</script>".to_vec();
    refused(
        &post_as(Some("text/html"), String::new(), html.clone()).await,
        415,
        "png, jpeg",
    );
    refused(&post_as(None, String::new(), html).await, 415, "png, jpeg");
    // Bytes that are not what the type says (a GIF declared a PNG, HTML declared a GIF).
    let gif = b"GIF89a\x01\0\x01\0\x80\0\0\xff\xff\xff\0\0\0!\xf9\x04\0\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;".to_vec();
    refused(
        &post_as(Some("image/png"), String::new(), gif.clone()).await,
        415,
        "not a PNG image",
    );
    let fake = b"<html><script>alert(1)</script>".to_vec();
    refused(
        &post_as(Some("image/gif"), String::new(), fake).await,
        415,
        "not a GIF image",
    );
    // Each allowed type, by its own bytes.
    let webp = b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0"
        .to_vec();
    // (Its start of frame says 1×1: what a browser would decode.)
    let jpeg = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0\
                 \xff\xc0\0\x11\x08\0\x01\0\x01\x03\x01\x22\0\x02\x11\x01\x03\x11\x01\xff\xd9"
        .to_vec();
    for (content_type, bytes) in [
        ("image/gif", gif),
        ("image/webp", webp),
        ("image/jpeg", jpeg),
    ] {
        let r = post_as(Some(content_type), String::new(), bytes.clone()).await;
        assert_eq!(r.status, 201, "{content_type}: {}", r.text());
        let hash = json(&r)["hash"].as_str().unwrap().to_owned();
        let back = get(addr, &room.id, Some(room.view.as_str()), &hash).await;
        assert_eq!(back.header("content-type"), Some(content_type));
        assert_eq!(&back.body[..], &bytes[..]);
    }
    refused(
        &post_as(Some("image/png"), String::new(), Vec::new()).await,
        400,
        "empty",
    );

    // `?hash=` lets the client see a damaged upload refused rather than stored.
    let image = pixel();
    let wrong = format!("?hash={}", sha256(b"something else"));
    refused(
        &post_as(Some("image/png"), wrong, image.clone()).await,
        400,
        "hash mismatch",
    );
    refused(
        &post_as(Some("image/png"), "?hash=abc".into(), image.clone()).await,
        400,
        "64 hexadecimal",
    );
    let right = format!("?hash={}", sha256(&image));
    let r = post_as(Some("image/png"), right, image.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(server.metric("kokuban_blobs_stored_total").await, 4.0);

    let view = Some(room.view.as_str());
    for malformed in ["abc", &"z".repeat(64), &format!("{}0", sha256(&image))] {
        refused(
            &get(addr, &room.id, view, malformed).await,
            400,
            "64 hexadecimal",
        );
    }
    refused(
        &get(addr, &room.id, view, &sha256(b"never posted")).await,
        404,
        "no image",
    );
}

#[tokio::test]
async fn an_image_over_the_cap_or_past_the_rooms_budget_is_refused_with_our_413() {
    let server = TestServer::start_with(|c| {
        c.max_image_bytes = 1000;
        c.max_room_image_bytes = 2500;
    })
    .await;
    let room = server.create_room().await;
    let addr = server.addr;

    refused(
        &post(addr, &room, png(1, 1001)).await,
        413,
        "up to 1000 bytes",
    );
    // Without a declared length, the body is cut off as it arrives.
    let (status, body) = post_chunked(addr, &room, &png(1, 1500)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("up to 1000 bytes"), "{body}");

    let first = posted(addr, &room, png(1, 1000)).await;
    posted(addr, &room, png(2, 1000)).await;
    // The same bytes again are not counted again, even at the budget.
    assert_eq!(posted(addr, &room, png(1, 1000)).await, first);
    refused(
        &post(addr, &room, png(3, 1000)).await,
        413,
        "at their budget",
    );
    // What is left of the budget is still there to use, to the byte.
    posted(addr, &room, png(4, 500)).await;
    refused(&post(addr, &room, png(5, 9)).await, 413, "at their budget");
    assert_eq!(
        server.metric("kokuban_blob_bytes_stored_total").await,
        2500.0
    );
    // Each room has a budget of its own.
    let other = server.create_room().await;
    posted(addr, &other, png(3, 1000)).await;
}

/// Posts `body` as a PNG in chunks, without a `Content-Length`: the status and body of the
/// answer. (The test kit's client always declares the length.)
async fn post_chunked(addr: SocketAddr, room: &TestRoom, body: &[u8]) -> (u16, String) {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/rooms/{}/blobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: image/png\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        room.id,
        room.edit.as_str()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(400) {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
        // The server may answer, and close, before it has read every chunk.
        if socket.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer));
    let _ = read.await.expect("an answer in time");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    (status, answer)
}

/// Sends the head of an image upload declaring `len` bytes and the first few of them, then
/// holds the connection open.
async fn begin_upload(addr: SocketAddr, room: &TestRoom, len: usize) -> tokio::net::TcpStream {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/rooms/{}/blobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: image/png\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        room.id,
        room.edit.as_str()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&png(9, 64)).await.unwrap();
    socket
}

/// Uploads trickled in, or never finished, hold the node's places for uploads only until the
/// deadline: meanwhile others get 503 (not a node out of memory), then 408 frees them.
#[tokio::test]
async fn uploads_held_open_take_the_nodes_few_places_until_the_deadline_frees_them() {
    let server = TestServer::start_with(|c| c.upload_deadline = Duration::from_secs(2)).await;
    let room = server.create_room().await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(begin_upload(server.addr, &room, 1 << 20).await);
    }
    // The eighth has taken the last place once its headers are read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    refused(
        &post(server.addr, &room, png(1, 64)).await,
        503,
        "as many images",
    );
    for mut socket in held {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer));
        let _ = read.await.expect("an answer once the deadline passed");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("took too long"), "{answer}");
    }
    posted(server.addr, &room, png(1, 64)).await;
}

/// Few bytes that would decode to a huge picture in every tab are refused by what their
/// header says.
#[tokio::test]
async fn an_image_too_large_in_pixels_is_refused_whatever_its_bytes() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let header = |w: u32, h: u32| {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bytes.extend(w.to_be_bytes());
        bytes.extend(h.to_be_bytes());
        bytes.resize(200, 0);
        bytes
    };
    let r = post(server.addr, &room, header(20_000, 10)).await;
    refused(&r, 413, "16384 pixels a side");
    let r = post(server.addr, &room, header(8_000, 8_000)).await;
    refused(&r, 413, "this one is 8000×8000");
    refused(
        &post(server.addr, &room, header(0, 10)).await,
        413,
        "pixels",
    );
    // A header that is not where a PNG has it: not a PNG.
    let mut headless = header(10, 10);
    headless[12..16].copy_from_slice(b"IDAT");
    refused(&post(server.addr, &room, headless).await, 415, "not a PNG");
    posted(server.addr, &room, header(4_000, 3_000)).await;
}

/// A loop re-reading an image is slowed down; a board's tabs reading each image once are not.
#[tokio::test]
async fn a_loop_reading_images_gets_429_with_retry_after() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let hash = posted(server.addr, &room, png(1, 64)).await;
    let view = Some(room.view.as_str());
    let mut refusal = None;
    for n in 0..700 {
        let r = get(server.addr, &room.id, view, &hash).await;
        if r.status != 200 {
            refusal = Some((n, r));
            break;
        }
    }
    let (n, r) = refusal.expect("a refusal within 700 reads");
    refused(&r, 429, "too many image reads");
    assert!(n >= 600, "only {n} reads before the first refusal");
}

#[tokio::test]
async fn too_many_images_from_one_address_get_429_with_retry_after() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut refusal = None;
    for n in 0..70 {
        let r = post(server.addr, &room, png(1, 64)).await;
        if r.status != 201 {
            refusal = Some((n, r));
            break;
        }
    }
    let (n, r) = refusal.expect("a refusal within 70 images");
    refused(&r, 429, "too many images");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    // The burst is 60; a few more may have trickled in at one a second meanwhile.
    assert!((60..=66).contains(&n), "refused after {n} images");
}

#[tokio::test]
async fn an_image_posted_on_one_node_is_served_by_the_other_and_the_budget_holds_across_nodes() {
    let redis = RedisServer::shared().await;
    let small = |c: &mut kokuban_server::Config| {
        c.max_image_bytes = 1000;
        c.max_room_image_bytes = 2000;
        c.room_ttl = Some(Duration::from_secs(3600));
    };
    let a = node_at(&redis.url(), "blobs-a", small).await;
    let b = node_at(&redis.url(), "blobs-b", small).await;
    let room = a.create_room().await;
    let image = pixel();

    let hash = posted(a.addr, &room, image.clone()).await;
    assert_eq!(hash, sha256(&image));
    let view = Some(room.view.as_str());
    serves_png(&get(b.addr, &room.id, view, &hash).await, &image);
    // The other node finds it kept: stored, and counted, once.
    assert_eq!(posted(b.addr, &room, image.clone()).await, hash);
    let stored =
        a.metric("kokuban_blobs_stored_total").await + b.metric("kokuban_blobs_stored_total").await;
    assert_eq!(stored, 1.0);
    let other = b.create_room().await;
    refused(
        &get(b.addr, &other.id, Some(other.view.as_str()), &hash).await,
        404,
        "no image",
    );
    // The images live as long as the room, not longer: Redis expires them with its keys.
    for key in ["blobs", "blob-types", "blob-bytes"] {
        let ttl = redis
            .command(&["PTTL", &format!("kokuban:{{{}}}:{key}", room.id)])
            .await;
        assert!(
            matches!(ttl, redis::Value::Int(ms) if ms > 0),
            "{key}: {ttl:?}"
        );
    }

    // Four images posted at once through both nodes, room for two of them (with the pixel):
    // no more than the budget is ever kept.
    let left = 2000 - image.len();
    let each = left / 2;
    let posts = (0..4u8).map(|i| {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        let room = room.clone();
        tokio::spawn(async move { post(addr, &room, png(10 + i, each)).await })
    });
    let mut statuses = Vec::new();
    for p in posts.collect::<Vec<_>>() {
        statuses.push(p.await.unwrap().status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 201, 413, 413]);
    let bytes = a.metric("kokuban_blob_bytes_stored_total").await
        + b.metric("kokuban_blob_bytes_stored_total").await;
    assert_eq!(bytes, (image.len() + 2 * each) as f64);
}

#[tokio::test]
async fn on_a_redis_cluster_an_image_posted_on_one_node_is_served_by_another() {
    if !RedisCluster::available() {
        eprintln!("redis-cli not found: skipping");
        return;
    }
    let cluster = RedisCluster::shared().await;
    let seeds = cluster.seed_urls();
    let sharded = |name: &'static str| {
        let seeds = seeds.clone();
        async move {
            let mut redis = kokuban_server::config::ClusterConfig::sharded(seeds);
            redis.redis_timeout = Duration::from_secs(1);
            TestServer::start_with(move |c| {
                c.node_id = format!("{name}-{:08x}", rand::random::<u32>());
                c.cluster = Some(redis);
            })
            .await
        }
    };
    let a = sharded("blobs-sharded-a").await;
    let b = sharded("blobs-sharded-b").await;
    // Both have reached the cluster's shards (the machine may be slow to let them).
    wait_ready(a.addr, 200).await;
    wait_ready(b.addr, 200).await;
    let room = a.create_room().await;
    let image = pixel();
    let hash = posted(a.addr, &room, image.clone()).await;
    serves_png(
        &get(b.addr, &room.id, Some(room.view.as_str()), &hash).await,
        &image,
    );
    // Kept beside the room's other keys, on its slot's master.
    let master = cluster
        .master_of(&format!("kokuban:{{{}}}:seq", room.id))
        .await;
    let kept = cluster
        .node(master)
        .command(&["HEXISTS", &format!("kokuban:{{{}}}:blobs", room.id), &hash])
        .await;
    assert_eq!(kept, redis::Value::Int(1));
}
