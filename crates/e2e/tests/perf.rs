//! Rendering with a big board: seeds a room with 10,000 strokes over the protocol, opens it in
//! headless Chromium, and reports frame times while panning, drawing and zoomed out to show
//! everything. And with a crowd: the same tab's frame times alone in a room, then with 199
//! other members whose cursors and cameras keep moving. Headless Chromium renders in software on a shared CI core, so this reports
//! numbers rather than asserting a frame rate:
//!
//! ```sh
//! cargo test -p kokuban-e2e --test perf -- --ignored --nocapture
//! ```

mod common;

use std::time::{Duration, Instant};

use common::{Browser, Driver, Node, member_of, prerequisites, wave};
use futures_util::{SinkExt, StreamExt};
use kokuban_protocol::{
    Camera, ClientMsg, Color, Cursor, Hello, Name, Op, Point, Points, RoomId, StrokeId,
    StrokePoints, Token, Tool, Width, encode_client,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const STROKES: usize = 10_000;
const WRITERS: usize = 20;

/// Draws `count` strokes through one connection, at a rate the server accepts.
async fn seed(addr: std::net::SocketAddr, room: RoomId, token: Token, first: usize, count: usize) {
    let url = format!("ws://{addr}/ws/{room}");
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects");
    let (mut tx, mut rx) = ws.split();
    let hello = ClientMsg::Hello(Hello {
        room,
        token,
        resume: None,
        name: Name::new("seed").unwrap(),
        color: Color::rgb(0, 0, 0),
        client: kokuban_protocol::ClientKey(*uuid::Uuid::new_v4().as_bytes()),
    });
    tx.send(Message::Binary(encode_client(&hello).into()))
        .await
        .unwrap();
    // Everything others draw comes back to us: read it, or the server drops us as slow.
    let acks = tokio::spawn(async move {
        let mut frames = 0usize;
        while let Some(Ok(_)) = rx.next().await {
            frames += 1;
        }
        frames
    });
    let colors = [
        Color::rgb(0x1e, 0x1e, 0x1e),
        Color::rgb(0xe0, 0x31, 0x31),
        Color::rgb(0x19, 0x71, 0xc2),
        Color::rgb(0x2f, 0x9e, 0x44),
    ];
    let start = Instant::now();
    let mut sent = 0u32;
    for n in first..first + count {
        let id = StrokeId(uuid::Uuid::new_v4());
        let (x0, y0) = ((n * 37 % 2000) as f64, (n * 91 % 1500) as f64);
        let pts: Vec<Point> = (0..40)
            .map(|i| {
                let t = f64::from(i);
                Point::from_px(x0 + t * 3.0, y0 + (t / 4.0).sin() * 12.0, 0.5).unwrap()
            })
            .collect();
        let ops = [
            Op::StrokeBegin {
                id,
                tool: Tool::Pen,
                color: colors[n % colors.len()],
                width: Width::from_px(2.0 + (n % 3) as f64),
                first: pts[0],
            },
            Op::StrokePoints(
                StrokePoints::new(id, 1, Points::new(pts[1..].to_vec()).unwrap()).unwrap(),
            ),
            Op::StrokeEnd { id },
        ];
        for op in ops {
            sent += 1;
            let msg = ClientMsg::Op(kokuban_protocol::Submit {
                n: u64::from(sent),
                op,
            });
            tx.send(Message::Binary(encode_client(&msg).into()))
                .await
                .unwrap();
            // 100 frames per second keeps under the server's 120/s.
            let due = Duration::from_millis(u64::from(sent) * 10);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = tx.close().await;
    let _ = acks.await;
}

/// Frame intervals, and the app's own work per frame (ms), recorded while `during` runs.
async fn frames(
    b: &Browser,
    during: impl std::future::Future<Output = ()>,
) -> (Vec<f64>, Vec<f64>) {
    b.js(
        "window.kokuban.frameTimes(); window.__frames = []; let last = performance.now();\
         const tick = (t) => { window.__frames.push(t - last); last = t; \
           if (window.__frames.length < 100000 && !window.__stop) requestAnimationFrame(tick); };\
         window.__stop = false; requestAnimationFrame(tick);",
        json!([]),
    )
    .await;
    during.await;
    let v = b
        .js("window.__stop = true; return window.__frames;", json!([]))
        .await;
    let mut f: Vec<f64> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    if !f.is_empty() {
        f.remove(0);
    }
    let work = b
        .js("return Array.from(window.kokuban.frameTimes());", json!([]))
        .await;
    let work = work
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    (f, work)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn report(what: &str, (mut f, mut work): (Vec<f64>, Vec<f64>)) {
    if f.is_empty() || work.is_empty() {
        println!("{what}: no frames");
        return;
    }
    f.sort_by(f64::total_cmp);
    work.sort_by(f64::total_cmp);
    println!(
        "{what}: {} frames, interval median {:.1} ms, p95 {:.1} ms, max {:.1} ms (≈{:.0} fps); \
         app work per frame median {:.2} ms, p95 {:.2} ms, max {:.1} ms",
        f.len(),
        pct(&f, 0.5),
        pct(&f, 0.95),
        pct(&f, 1.0),
        1000.0 / pct(&f, 0.5),
        pct(&work, 0.5),
        pct(&work, 0.95),
        pct(&work, 1.0),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
async fn ten_thousand_strokes() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let (edit, _) = node.create_room().await;
    let (path, token) = edit.split_once("#edit=").unwrap();
    let room = RoomId::new(path.trim_start_matches("/r/")).unwrap();
    let token = Token::new(token).unwrap();
    let t = Instant::now();
    let per = STROKES / WRITERS;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(seed(node.addr, room.clone(), token.clone(), w * per, per)))
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    println!(
        "seeded {STROKES} strokes in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let driver = Driver::start().await;
    let b = driver.browser(1280, 860).await;
    let t = Instant::now();
    b.goto(&format!("{}{edit}", node.url())).await;
    b.wait_for(
        "the whole board",
        "return !!window.kokuban && window.kokuban.strokeCount() === arguments[0];",
        json!([STROKES]),
    )
    .await;
    println!(
        "page load to {STROKES} strokes: {:.2} s",
        t.elapsed().as_secs_f64()
    );

    // Pan with the hand tool for about two seconds.
    b.js(
        "document.querySelector('[data-tool=hand]').click();",
        json!([]),
    )
    .await;
    let pan: Vec<(i64, i64)> = (0..120).map(|i| (900 - i * 4, 500 - i * 2)).collect();
    report("panning at 100%", frames(&b, b.draw(&pan)).await);

    b.js(
        "document.querySelector('[data-tool=pen]').click();",
        json!([]),
    )
    .await;
    let stroke: Vec<(i64, i64)> = (0..8).flat_map(|k| wave(200, 1100, 200 + k * 60)).collect();
    report("drawing at 100%", frames(&b, b.draw(&stroke)).await);

    // Everything on screen at once.
    b.js(
        "document.querySelector('[title^=\"Zoom to fit\"]').click();",
        json!([]),
    )
    .await;
    // The first sharp frame after a zoom draws every stroke once.
    let (_, settle) = frames(&b, tokio::time::sleep(Duration::from_millis(2500))).await;
    println!(
        "first full redraw with all {STROKES} visible: {:.0} ms",
        settle.iter().copied().fold(0.0, f64::max)
    );
    report(
        "drawing, all 10k visible",
        frames(&b, b.draw(&wave(200, 1100, 400))).await,
    );
    b.js(
        "document.querySelector('[data-tool=hand]').click();",
        json!([]),
    )
    .await;
    report("panning, all 10k visible", frames(&b, b.draw(&pan)).await);
    b.screenshot("perf-10k").await;
    b.quit().await;
}

/// Members besides the tab in the crowded room.
const CROWD: usize = 199;

/// `n` members of the room of `edit` (a link), each moving its cursor ten times a second over
/// the tab's screen and its camera once a second, until the tasks are aborted.
async fn restless_crowd(node: &Node, edit: &str, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let (mut tx, mut rx) = member_of(node, edit, i).await.split();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(_)) = rx.next().await {}
        }));
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for k in 0u64.. {
                tick.tick().await;
                // Over the tab's 1280×860 screen at 100 %, in eighths of a pixel.
                let x = ((i as u64 * 97 + k * 13) % 1280) as i32 * 8;
                let y = ((i as u64 * 53 + k * 7) % 860) as i32 * 8;
                let at = Cursor::new(x, y).unwrap();
                let mut frames = vec![ClientMsg::Cursor(Some(at))];
                if k % 10 == 0 {
                    frames.push(ClientMsg::Camera(Camera::new(at, 1000).unwrap()));
                }
                for f in frames {
                    if tx
                        .send(Message::Binary(encode_client(&f).into()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }));
    }
    tasks
}

/// Frame times panning and drawing, and idle for two seconds.
async fn pan_draw_idle(b: &Browser, who: &str) {
    b.js(
        "document.querySelector('[data-tool=hand]').click();",
        json!([]),
    )
    .await;
    let pan: Vec<(i64, i64)> = (0..120).map(|i| (900 - i * 4, 500 - i * 2)).collect();
    report(&format!("{who}: panning"), frames(b, b.draw(&pan)).await);
    b.js(
        "document.querySelector('[data-tool=pen]').click();",
        json!([]),
    )
    .await;
    report(
        &format!("{who}: drawing"),
        frames(b, b.draw(&wave(200, 1100, 400))).await,
    );
    report(
        &format!("{who}: idle"),
        frames(b, tokio::time::sleep(Duration::from_secs(2))).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
async fn two_hundred_members_moving() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let (edit, _) = node.create_room().await;
    let driver = Driver::start().await;
    let b = driver.browser(1280, 860).await;
    b.goto(&format!("{}{edit}", node.url())).await;
    b.wait_status("connected").await;
    pan_draw_idle(&b, "alone").await;

    let crowd = restless_crowd(&node, &edit, CROWD).await;
    b.wait_for(
        "everyone in the room",
        "const more = document.querySelector('.avatar.more');
         return more !== null && more.textContent.trim() === '+' + arguments[0];",
        json!([CROWD - 2]),
    )
    .await;
    pan_draw_idle(&b, &format!("with {CROWD} others moving")).await;
    b.screenshot("perf-200-members").await;
    for t in crowd {
        t.abort();
    }
    b.quit().await;
}
