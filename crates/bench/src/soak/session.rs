//! The soak's clients: short sessions one after another, each of a kind a real client has.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use kokuban_bench::http::RoomLinks;
use kokuban_bench::net::{SourceAddrs, Ws, connect_from, ws_connect};
use kokuban_protocol::{
    ClientKey, ClientMsg, Color, ErrorCode, Hello, Name, Op, Point, Points, ServerMsg, StrokeId,
    StrokePoints, Submit, Tool, Width, decode_server, encode_client,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use super::{CLEAR_ONE_IN, Kind, SESSION_TIMEOUT, Tally, WINDOW, WINDOW_STEP};

/// One client: sessions one after another until the deadline.
pub(super) async fn client_loop(
    n: u64,
    node: SocketAddr,
    rooms: Arc<Vec<RoomLinks>>,
    tally: Arc<Tally>,
    sources: Arc<SourceAddrs>,
    started: Instant,
    deadline: Instant,
) {
    let mut rng = SmallRng::seed_from_u64(n);
    while Instant::now() < deadline {
        let kind = Kind::pick(&mut rng);
        // The window of busy rooms moves with time (see WINDOW).
        let window_start =
            (started.elapsed().as_secs() / WINDOW_STEP.as_secs()) as usize * (WINDOW / 2).max(1);
        let room = &rooms[(window_start + rng.random_range(0..WINDOW)) % rooms.len()];
        let seed = rng.random();
        let from = sources.next();
        let outcome =
            tokio::time::timeout(SESSION_TIMEOUT, session(kind, node, from, room, seed)).await;
        tally.by_kind[kind as usize].fetch_add(1, Relaxed);
        let error = match outcome {
            Ok(Ok(strokes)) => {
                tally.strokes.fetch_add(strokes, Relaxed);
                continue;
            }
            Ok(Err(e)) => format!("{}: {e:#}", kind.label()),
            Err(_) => format!("{}: no end within {SESSION_TIMEOUT:?}", kind.label()),
        };
        tally.failed.fetch_add(1, Relaxed);
        let mut failures = tally.failures.lock().await;
        if failures.len() < 5 {
            failures.push(error);
        }
    }
}

/// One session of `kind`; returns the strokes it completed.
async fn session(
    kind: Kind,
    node: SocketAddr,
    from: Ipv4Addr,
    room: &RoomLinks,
    seed: u64,
) -> anyhow::Result<u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    if kind == Kind::HalfRequest {
        let mut stream = connect_from(from, node).await?;
        stream
            .write_all(format!("GET /ws/{} HTTP/1.1\r\nHost: ", room.room).as_bytes())
            .await?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        return Ok(0);
    }
    let mut ws = ws_connect(from, node, &format!("/ws/{}", room.room)).await?;
    if kind == Kind::NoHello {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;
        return Ok(0);
    }
    let edit = matches!(kind, Kind::Editor | Kind::EditorDropped | Kind::Silent);
    let hello = ClientMsg::Hello(Hello {
        room: room.room.clone(),
        token: if edit {
            room.edit.clone()
        } else {
            room.view.clone()
        },
        resume: None,
        name: Name::new(format!("soak-{}", seed % 10_000))?,
        color: Color::rgb(200, 60, 60),
        client: ClientKey(rand::random()),
    });
    ws.send(Message::binary(encode_client(&hello))).await?;
    loop {
        match next_msg(&mut ws).await? {
            ServerMsg::Welcome(_) => break,
            ServerMsg::Error(e) => bail!("Hello refused: {:?} {}", e.code, e.message),
            _ => {}
        }
    }
    match kind {
        Kind::Editor => {
            let strokes = rng.random_range(1..=3);
            let mut sent = 0;
            for _ in 0..strokes {
                sent += draw(&mut ws, &mut rng, true).await?;
            }
            // Now and then someone clears the board. Without it every board would grow for
            // the whole run, and so would the memory of every room loaded: the load must be
            // stationary for a flat memory to mean "no leak".
            if rng.random_ratio(1, CLEAR_ONE_IN) {
                let clear = ClientMsg::Op(Submit {
                    n: u64::MAX / 2,
                    op: Op::Clear,
                });
                ws.send(Message::binary(encode_client(&clear))).await?;
                sent += 1;
            }
            let mut answered = 0;
            while answered < sent {
                match next_msg(&mut ws).await? {
                    ServerMsg::Ack(_) | ServerMsg::Acked(_) => answered += 1,
                    // Another member's Clear can remove a stroke while it is being drawn; the
                    // server then refuses the rest of it, which is an answer too.
                    ServerMsg::Error(e) if e.code == ErrorCode::InvalidOp => answered += 1,
                    ServerMsg::Error(e) => bail!("op refused: {:?} {}", e.code, e.message),
                    _ => {}
                }
            }
            close(ws).await?;
            Ok(strokes)
        }
        Kind::EditorDropped => {
            draw(&mut ws, &mut rng, false).await?;
            Ok(0)
        }
        Kind::Viewer | Kind::ViewerDropped => {
            let watch = Duration::from_millis(rng.random_range(200..2000));
            let _ = tokio::time::timeout(watch, async { while next_msg(&mut ws).await.is_ok() {} })
                .await;
            if kind == Kind::Viewer {
                close(ws).await?;
            }
            Ok(0)
        }
        Kind::Silent => {
            tokio::time::sleep(Duration::from_millis(rng.random_range(1000..5000))).await;
            Ok(0)
        }
        Kind::NoHello | Kind::HalfRequest => Ok(0),
    }
}

/// Sends one stroke (begin, a few point batches, and the end if `finish`); returns the ops
/// sent.
async fn draw(ws: &mut Ws, rng: &mut SmallRng, finish: bool) -> anyhow::Result<u64> {
    let id = StrokeId(uuid::Uuid::from_u128(rng.random()));
    let mut last = Point::new(
        rng.random_range(0..40_000),
        rng.random_range(0..40_000),
        128,
    )?;
    let mut ops = vec![Op::StrokeBegin {
        id,
        tool: Tool::Pen,
        color: Color::rgb(20, 20, 20),
        width: Width::new(16)?,
        first: last,
    }];
    let mut start = 1u32;
    for _ in 0..rng.random_range(2..=4) {
        let count = rng.random_range(8..=32);
        let batch: Vec<Point> = (0..count)
            .map(|_| {
                last = last.offset(rng.random_range(-40..=40), rng.random_range(-40..=40));
                last
            })
            .collect();
        ops.push(Op::StrokePoints(StrokePoints::new(
            id,
            start,
            Points::new(batch)?,
        )?));
        start += count;
    }
    if finish {
        ops.push(Op::StrokeEnd { id });
    }
    // Numbered from a random point: each connection is a new author, and a later stroke of
    // the same connection only needs higher numbers.
    let first = rng.random_range(1..u64::MAX / 4);
    for (n, op) in (first..).zip(&ops) {
        let msg = ClientMsg::Op(Submit { n, op: op.clone() });
        ws.send(Message::binary(encode_client(&msg))).await?;
    }
    Ok(ops.len() as u64)
}

async fn next_msg(ws: &mut Ws) -> anyhow::Result<ServerMsg> {
    loop {
        match ws.next().await.context("connection closed")?? {
            Message::Binary(b) => return Ok(decode_server(&b)?),
            Message::Close(c) => bail!("closed by the server: {c:?}"),
            _ => {}
        }
    }
}

/// A clean close: our close frame, then read until the server's answer ends the stream.
async fn close(mut ws: Ws) -> anyhow::Result<()> {
    ws.close(None).await?;
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(msg) = ws.next().await {
            if msg.is_err() {
                break;
            }
        }
    })
    .await
    .context("the server did not answer the close")
}
