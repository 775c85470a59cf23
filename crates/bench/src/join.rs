//! The join scenario: how long a client waits for the Welcome of a board of a million points.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use kokuban_protocol::limits::{MAX_POINTS_PER_BATCH, MAX_POINTS_PER_STROKE};
use kokuban_protocol::{ClientKey, Submit};
use kokuban_protocol::{
    ClientMsg, Color, ErrorCode, Hello, Name, Op, Point, Points, ServerMsg, StrokeId, StrokePoints,
    Tool, Welcome, Width, decode_server, encode_client,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use kokuban_board::Board;
use kokuban_protocol::RoomState;

use crate::http::{RoomLinks, create_room};
use crate::net::{SourceAddrs, Ws, ws_connect};
use crate::scenario::Deployment;

/// Connections that draw the board in parallel. The server's per-connection rate limit is
/// meant for people drawing, so the upload is spread over several editors, each staying
/// within its burst allowance.
const UPLOADERS: usize = 8;

/// How long one op may wait for its acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// The figures of the join scenario.
#[derive(Debug, Clone, Serialize)]
pub struct JoinResult {
    /// Deployment mode.
    pub mode: String,
    /// Points on the board.
    pub points: u64,
    /// Strokes on the board.
    pub strokes: u64,
    /// Time to draw the board, seconds.
    pub upload_s: f64,
    /// Size of the Welcome frame, bytes.
    pub welcome_bytes: usize,
    /// Connect → Welcome frame received, per join, milliseconds.
    pub welcome_ms: Vec<f64>,
    /// Connect → board decoded and ready to render, per join, milliseconds.
    pub ready_ms: Vec<f64>,
    /// Median of `welcome_ms`.
    pub welcome_median_ms: f64,
    /// Largest of `welcome_ms`.
    pub welcome_max_ms: f64,
    /// Median of `ready_ms`.
    pub ready_median_ms: f64,
}

/// Draws a board of `points` points through node 0, then joins it `joins` times through the
/// last node (another node in a cluster).
pub async fn run(dep: &Deployment, points: u64, joins: usize) -> anyhow::Result<JoinResult> {
    let upload_node = dep.nodes[0];
    let join_node = *dep.nodes.last().context("no nodes")?;
    let links = create_room(upload_node).await?;
    let sources = SourceAddrs::default();

    let started = Instant::now();
    let strokes = draw(upload_node, &links, points, &sources, 0).await?;
    let upload_s = started.elapsed().as_secs_f64();

    let mut welcome_ms = Vec::new();
    let mut ready_ms = Vec::new();
    let mut welcome_bytes = 0;
    for i in 0..joins {
        let (w, r, bytes, got) = join_once(join_node, sources.next(), &links, i).await?;
        if got != points {
            bail!("the Welcome holds {got} points, not the {points} drawn");
        }
        welcome_ms.push(w);
        ready_ms.push(r);
        welcome_bytes = bytes;
    }
    Ok(JoinResult {
        mode: dep.mode.clone(),
        points,
        strokes,
        upload_s,
        welcome_bytes,
        welcome_median_ms: median(&welcome_ms),
        welcome_max_ms: welcome_ms.iter().copied().fold(0.0, f64::max),
        ready_median_ms: median(&ready_ms),
        welcome_ms,
        ready_ms,
    })
}

/// Draws `points` points into the room through `node`, in strokes as long as the protocol
/// allows, spread over several connections; returns the number of strokes. `seed` keeps the
/// stroke ids of several calls on one room apart.
pub(crate) async fn draw(
    node: SocketAddr,
    links: &RoomLinks,
    points: u64,
    sources: &SourceAddrs,
    seed: u64,
) -> anyhow::Result<u64> {
    let per_stroke = u64::from(MAX_POINTS_PER_STROKE);
    let strokes = points.div_ceil(per_stroke);
    let mut set = JoinSet::new();
    for u in 0..UPLOADERS as u64 {
        let sizes: Vec<u64> = (0..strokes)
            .filter(|s| s % UPLOADERS as u64 == u)
            .map(|s| per_stroke.min(points - s * per_stroke))
            .collect();
        let (links, from) = (links.clone(), sources.next());
        let n = seed * UPLOADERS as u64 + u;
        set.spawn(async move { upload(node, from, &links, &sizes, n).await });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(strokes)
}

/// The middle value (the upper one of an even count).
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Sends the Hello of a viewer (or an editor) named after `n`.
pub(crate) async fn hello(
    ws: &mut Ws,
    links: &RoomLinks,
    edit: bool,
    n: u64,
) -> anyhow::Result<()> {
    let hello = ClientMsg::Hello(Hello {
        room: links.room.clone(),
        token: if edit {
            links.edit.clone()
        } else {
            links.view.clone()
        },
        resume: None,
        name: Name::new(format!("join-{n}"))?,
        color: Color::rgb(10, 120, 200),
        client: ClientKey(rand::random()),
    });
    ws.send(Message::binary(encode_client(&hello))).await?;
    Ok(())
}

/// Draws strokes of the given sizes, one op at a time, each acknowledged before the next.
async fn upload(
    node: SocketAddr,
    from: std::net::Ipv4Addr,
    links: &RoomLinks,
    sizes: &[u64],
    n: u64,
) -> anyhow::Result<()> {
    let mut ws = ws_connect(from, node, &format!("/ws/{}", links.room)).await?;
    hello(&mut ws, links, true, n).await?;
    loop {
        match next_server_msg(&mut ws).await? {
            ServerMsg::Welcome(_) => break,
            ServerMsg::Error(e) => bail!("upload refused: {:?} {}", e.code, e.message),
            _ => {}
        }
    }
    let mut rng = SmallRng::seed_from_u64(n);
    let mut n_op = 0;
    for &size in sizes {
        let id = StrokeId(uuid::Uuid::from_u128(rng.random()));
        let mut last = Point::new(
            rng.random_range(0..80_000),
            rng.random_range(0..80_000),
            128,
        )?;
        send_acked(
            &mut ws,
            &mut n_op,
            Op::StrokeBegin {
                id,
                tool: Tool::Pen,
                color: Color::rgb(30, 30, 30),
                width: Width::new(16)?,
                first: last,
            },
        )
        .await?;
        let mut start = 1u64;
        while start < size {
            let count = (size - start).min(MAX_POINTS_PER_BATCH as u64) as usize;
            let mut batch = Vec::with_capacity(count);
            for _ in 0..count {
                last = last.offset(rng.random_range(-40..=40), rng.random_range(-40..=40));
                batch.push(last);
            }
            let op = StrokePoints::new(id, start as u32, Points::new(batch)?)?;
            send_acked(&mut ws, &mut n_op, Op::StrokePoints(op)).await?;
            start += count as u64;
        }
        send_acked(&mut ws, &mut n_op, Op::StrokeEnd { id }).await?;
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// The next binary frame, decoded.
pub(crate) async fn next_server_msg(ws: &mut Ws) -> anyhow::Result<ServerMsg> {
    loop {
        match ws.next().await.context("connection closed")?? {
            Message::Binary(b) => return Ok(decode_server(&b)?),
            Message::Close(c) => bail!("closed by server: {c:?}"),
            _ => {}
        }
    }
}

/// Sends an op and waits for its Ack; a rate-limited op is sent again after a pause.
async fn send_acked(ws: &mut Ws, n: &mut u64, op: Op) -> anyhow::Result<()> {
    // One number per op: a rate-limited op never reached the room, so its retry is the same op.
    *n += 1;
    let frame = encode_client(&ClientMsg::Op(Submit { n: *n, op }));
    for _attempt in 0..100 {
        ws.send(Message::binary(frame.clone())).await?;
        let outcome = tokio::time::timeout(ACK_TIMEOUT, async {
            loop {
                match next_server_msg(ws).await? {
                    ServerMsg::Ack(_) | ServerMsg::Acked(_) => return anyhow::Ok(true),
                    ServerMsg::Error(e) if e.code == ErrorCode::RateLimited => {
                        return anyhow::Ok(false);
                    }
                    ServerMsg::Error(e) => bail!("op refused: {:?} {}", e.code, e.message),
                    _ => {}
                }
            }
        })
        .await
        .context("no Ack")??;
        if outcome {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("op rate-limited 100 times in a row")
}

/// Reads up to the Welcome: the board parts before it (a large board comes in parts) are put
/// back together as its snapshot. Returns the Welcome and the bytes it took in all.
pub(crate) async fn next_welcome(ws: &mut Ws) -> anyhow::Result<(Welcome, usize)> {
    let mut parts = Vec::new();
    let mut bytes = 0;
    loop {
        match ws.next().await.context("closed before Welcome")?? {
            Message::Binary(b) => {
                bytes += b.len();
                match decode_server(&b)? {
                    ServerMsg::BoardPart(p) => parts.extend(p.0),
                    ServerMsg::Welcome(mut w) => {
                        if let RoomState::InParts { ops } = w.state {
                            w.state = RoomState::Snapshot {
                                board: kokuban_protocol::Bytes(parts),
                                ops,
                            };
                        }
                        return Ok((w, bytes));
                    }
                    ServerMsg::Error(e) => bail!("refused: {:?} {}", e.code, e.message),
                    _ => {}
                }
            }
            Message::Close(c) => bail!("closed before Welcome: {c:?}"),
            _ => {}
        }
    }
}

/// The board a Welcome describes, decoded and brought up to date as a client does.
pub(crate) fn board_of(welcome: &Welcome) -> anyhow::Result<Board> {
    let (mut board, ops) = match &welcome.state {
        RoomState::Snapshot { board, ops } => (Board::from_snapshot(&board.0)?, ops),
        RoomState::Replay { ops } => (Board::at_start_of(welcome.epoch), ops),
        RoomState::InParts { .. } => anyhow::bail!("a Welcome in parts not put together"),
    };
    for s in ops.as_slice() {
        board
            .apply_sequenced(s)
            .map_err(|e| anyhow::anyhow!("Welcome ops out of order: {e:?}"))?;
    }
    Ok(board)
}

/// One join: connect, Hello, Welcome; then decode the board as a client would.
/// Returns (ms to Welcome, ms to board ready, Welcome bytes, points on the board).
async fn join_once(
    node: SocketAddr,
    from: std::net::Ipv4Addr,
    links: &RoomLinks,
    n: usize,
) -> anyhow::Result<(f64, f64, usize, u64)> {
    let started = Instant::now();
    let mut ws = ws_connect(from, node, &format!("/ws/{}", links.room)).await?;
    hello(&mut ws, links, false, 1000 + n as u64).await?;
    let (welcome, bytes) = next_welcome(&mut ws).await?;
    let welcome_at = started.elapsed();
    let board = board_of(&welcome)?;
    let ready_at = started.elapsed();
    let _ = ws.close(None).await;
    Ok((
        welcome_at.as_secs_f64() * 1e3,
        ready_at.as_secs_f64() * 1e3,
        bytes,
        board.point_count() as u64,
    ))
}
