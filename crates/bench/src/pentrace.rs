//! Bytes per point: what a realistic pen trace costs on the wire, in both directions with the
//! WebSocket framing, and at rest in the board's snapshot.
//!
//! The trace is handwriting with a stylus: cursive loops about 30 px tall written at a few
//! hundred pixels a second, sampled at 240 Hz, smoothed and decimated by the app's own
//! [`Smoother`], and sent as the app sends it — `StrokeBegin` with the first point, one
//! `StrokePoints` batch per 60 Hz animation frame (four samples; after the first, by the
//! stroke's handle), `StrokeEnd`.

use std::f64::consts::TAU;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use kokuban_client::geom::Pt;
use kokuban_client::smooth::{Device, Profile, Sample, Smoother};
use kokuban_protocol::Submit;
use kokuban_protocol::{
    ClientMsg, Color, Handles, Op, Point, Points, ServerMsg, StrokeId, StrokePoints, Tool, Welcome,
    Width, decode_server,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::http::create_room;
use crate::join::{board_of, hello};
use crate::net::{SourceAddrs, Ws, ws_connect};
use crate::scenario::Deployment;

/// Stylus samples per second (pointer events with their coalesced samples).
const SAMPLE_HZ: f64 = 240.0;
/// Batches per second: one per animation frame.
const FRAME_HZ: f64 = 60.0;

/// What a point costs.
#[derive(Debug, Clone, Serialize)]
pub struct BytesPerPoint {
    /// Strokes drawn.
    pub strokes: usize,
    /// Points in them.
    pub points: u64,
    /// Point batches sent.
    pub batches: u64,
    /// Points per batch, on average.
    pub points_per_batch: f64,
    /// Client → server: every frame of the strokes with its masked WebSocket header, per point.
    pub upstream: f64,
    /// Server → each other member: the relayed ops with their WebSocket headers, per point.
    pub downstream: f64,
    /// Server → author: the Acks of its ops, per point.
    pub acks: f64,
    /// The board's snapshot, per point.
    pub at_rest: f64,
    /// A newcomer's Welcome, per point.
    pub welcome: f64,
}

impl BytesPerPoint {
    /// The larger of the two live directions: what the ≤ 4 bytes target is held to.
    pub fn live(&self) -> f64 {
        self.upstream.max(self.downstream)
    }
}

/// Bytes of the WebSocket header of a frame of `len` payload bytes (client frames add a
/// four-byte mask key).
pub fn ws_header_bytes(len: usize, masked: bool) -> usize {
    let base = match len {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    base + if masked { 4 } else { 0 }
}

/// The ops of one handwritten stroke, in sending order, one element per animation frame.
pub fn handwriting(rng: &mut SmallRng, id: StrokeId) -> Vec<Vec<Op>> {
    let seconds = rng.random_range(0.8..1.6);
    let (x0, y0) = (rng.random_range(0.0..4000.0), rng.random_range(0.0..3000.0));
    let loops_hz = rng.random_range(2.5..3.5);
    let phase = rng.random_range(0.0..TAU);
    let advance = rng.random_range(90.0..140.0);
    let at = |t: f64| Pt {
        x: x0 + advance * t + 11.0 * (TAU * loops_hz * t + phase).sin(),
        y: y0 + 15.0 * (TAU * loops_hz * t + phase).cos() * (1.0 + 0.2 * (TAU * 0.7 * t).sin()),
    };
    let sample = |i: usize| {
        let t = i as f64 / SAMPLE_HZ;
        Sample {
            at: at(t),
            pressure: 0.5 + 0.25 * (TAU * 1.3 * t).sin(),
            time_ms: t * 1e3,
        }
    };
    let mut smoother = Smoother::new(Profile::pen(Device::Stylus), Device::Stylus, 1.0);
    let samples = (seconds * SAMPLE_HZ) as usize;
    let per_frame = (SAMPLE_HZ / FRAME_HZ) as usize;
    let mut frames: Vec<Vec<Op>> = Vec::new();
    let mut count = 0u32;
    let point = |(p, pressure): (Pt, f64)| Point::from_px(p.x, p.y, pressure).ok();
    for frame_start in (0..samples).step_by(per_frame) {
        let mut ops = Vec::new();
        let mut batch = Vec::new();
        for i in frame_start..(frame_start + per_frame).min(samples) {
            let kept = if i + 1 == samples {
                smoother.finish(sample(i))
            } else {
                smoother.push(sample(i))
            };
            let Some(p) = kept.and_then(point) else {
                continue;
            };
            if count == 0 {
                ops.push(Op::StrokeBegin {
                    id,
                    tool: Tool::Pen,
                    color: Color::rgb(20, 20, 20),
                    width: Width::new(16).expect("valid width"),
                    first: p,
                });
                count = 1;
            } else {
                batch.push(p);
            }
        }
        if !batch.is_empty() {
            let n = batch.len() as u32;
            let points = Points::new(batch).expect("a frame holds a few points");
            let b = StrokePoints::new(id, count, points).expect("strokes stay short");
            ops.push(Op::StrokePoints(b));
            count += n;
        }
        frames.push(ops);
    }
    if let Some(last) = frames.last_mut() {
        last.push(Op::StrokeEnd { id });
    }
    frames
}

/// Draws `strokes` handwritten strokes through node 0 at 60 frames a second while another
/// member watches, then measures the board a newcomer receives.
pub async fn run(dep: &Deployment, strokes: usize) -> anyhow::Result<BytesPerPoint> {
    let node = dep.nodes[0];
    let links = create_room(node).await?;
    let sources = SourceAddrs::default();
    let path = format!("/ws/{}", links.room);
    let mut editor = ws_connect(sources.next(), node, &path).await?;
    hello(&mut editor, &links, true, 1).await?;
    welcome(&mut editor).await?;
    let mut viewer = ws_connect(sources.next(), node, &path).await?;
    hello(&mut viewer, &links, false, 2).await?;
    welcome(&mut viewer).await?;

    let mut rng = SmallRng::seed_from_u64(0x9e11);
    let trace: Vec<Vec<Vec<Op>>> = (0..strokes)
        .map(|_| {
            let id = StrokeId(uuid::Uuid::from_u128(rng.random()));
            handwriting(&mut rng, id)
        })
        .collect();
    let ops: Vec<&Op> = trace.iter().flatten().flatten().collect();
    let points: u64 = ops.iter().map(|op| points_in(op)).sum();
    let batches = ops.iter().filter(|op| op.is_points()).count() as u64;

    // The viewer counts what it receives while the editor draws.
    let expected = ops.len();
    let watching = tokio::spawn(async move {
        let mut bytes = 0usize;
        let mut got = 0usize;
        while got < expected {
            match viewer.next().await.context("viewer closed")?? {
                Message::Binary(b) => {
                    if let ServerMsg::Op(_) | ServerMsg::Points(_) = decode_server(&b)? {
                        bytes += b.len() + ws_header_bytes(b.len(), false);
                        got += 1;
                    }
                }
                Message::Close(c) => bail!("viewer closed: {c:?}"),
                _ => {}
            }
        }
        anyhow::Ok(bytes)
    });
    let mut upstream = 0usize;
    // Later batches of a stroke go by handle, as the app sends them.
    let mut handles = Handles::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / FRAME_HZ));
    let mut n = 0;
    for stroke in &trace {
        for frame in stroke {
            tick.tick().await;
            for op in frame {
                n += 1;
                let bytes = handles.encode(&ClientMsg::Op(Submit { n, op: op.clone() }));
                upstream += bytes.len() + ws_header_bytes(bytes.len(), true);
                editor.feed(Message::binary(bytes)).await?;
            }
            editor.flush().await?;
        }
    }
    let mut acks = 0usize;
    let mut acked = 0;
    while acked < expected {
        let msg = tokio::time::timeout(Duration::from_secs(10), editor.next())
            .await
            .context("Acks did not arrive")?
            .context("editor closed")??;
        if let Message::Binary(b) = msg {
            match decode_server(&b)? {
                ServerMsg::Ack(_) | ServerMsg::Acked(_) => {
                    acks += b.len() + ws_header_bytes(b.len(), false);
                    acked += 1;
                }
                ServerMsg::Error(e) => bail!("op refused: {:?} {}", e.code, e.message),
                _ => {}
            }
        }
    }
    let downstream = tokio::time::timeout(Duration::from_secs(10), watching)
        .await
        .context("the viewer did not receive every op")???;

    let mut newcomer = ws_connect(sources.next(), node, &path).await?;
    hello(&mut newcomer, &links, false, 3).await?;
    let (w, welcome_bytes) = welcome(&mut newcomer).await?;
    let board = board_of(&w)?;
    if board.point_count() as u64 != points {
        bail!(
            "the board holds {} points, not the {points} drawn",
            board.point_count()
        );
    }
    let per = |b: usize| b as f64 / points.max(1) as f64;
    Ok(BytesPerPoint {
        strokes,
        points,
        batches,
        points_per_batch: points as f64 / batches.max(1) as f64,
        upstream: per(upstream),
        downstream: per(downstream),
        acks: per(acks),
        at_rest: per(board.snapshot().len()),
        welcome: per(welcome_bytes),
    })
}

fn points_in(op: &Op) -> u64 {
    match op {
        Op::StrokeBegin { .. } => 1,
        Op::StrokePoints(b) => b.points.len() as u64,
        _ => 0,
    }
}

/// Waits for the Welcome; returns it with its size on the wire (without the header).
async fn welcome(ws: &mut Ws) -> anyhow::Result<(Welcome, usize)> {
    loop {
        match ws.next().await.context("closed before Welcome")?? {
            Message::Binary(b) => match decode_server(&b)? {
                ServerMsg::Welcome(w) => return Ok((w, b.len())),
                ServerMsg::Error(e) => bail!("refused: {:?} {}", e.code, e.message),
                _ => {}
            },
            Message::Close(c) => bail!("closed before Welcome: {c:?}"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handwriting_is_sent_as_the_app_sends_it() {
        let mut rng = SmallRng::seed_from_u64(1);
        let id = StrokeId(uuid::Uuid::from_u128(9));
        let frames = handwriting(&mut rng, id);
        let ops: Vec<&Op> = frames.iter().flatten().collect();
        assert!(matches!(ops.first(), Some(Op::StrokeBegin { .. })));
        assert!(matches!(ops.last(), Some(Op::StrokeEnd { .. })));
        // Between 0.8 and 1.6 s at 60 frames a second.
        assert!((48..=97).contains(&frames.len()), "{} frames", frames.len());
        // Every frame carries at most one batch, and batches continue each other.
        let mut next = 1;
        for op in &ops {
            if let Op::StrokePoints(b) = op {
                assert_eq!(b.start, next);
                assert!(b.points.len() <= 4);
                next += b.points.len() as u32;
            }
        }
        // Handwriting moves a pixel or two between samples: few are decimated away.
        let points: u64 = ops.iter().map(|op| points_in(op)).sum();
        let samples = frames.len() as u64 * 4;
        assert!(
            points * 10 >= samples * 7,
            "{points} points of {samples} samples"
        );
    }

    /// The same handwriting encoded both ways, in full (every batch with its stroke's id, its
    /// index, its number, the room's epoch and its author) and by handle, with the WebSocket
    /// headers: what the handles save, without a server.
    #[test]
    fn batches_by_handle_cost_a_fraction_of_batches_in_full() {
        use kokuban_board::Board;
        use kokuban_protocol::{Epoch, MemberId, Seq, Sequenced, encode_client, encode_server};
        let mut rng = SmallRng::seed_from_u64(0x9e11);
        let (epoch, author) = (Epoch(rng.random()), MemberId(rng.random()));
        let mut board = Board::new();
        let mut handles = Handles::new();
        let (mut points, mut n) = (0usize, 0u64);
        let [mut up_full, mut up, mut down_full, mut down] = [0usize; 4];
        for _ in 0..40 {
            let id = StrokeId(uuid::Uuid::from_u128(rng.random()));
            for op in handwriting(&mut rng, id).into_iter().flatten() {
                points += points_in(&op) as usize;
                n += 1;
                let msg = ClientMsg::Op(Submit { n, op: op.clone() });
                let full = encode_client(&msg).len();
                up_full += full + ws_header_bytes(full, true);
                let short = handles.encode(&msg).len();
                up += short + ws_header_bytes(short, true);
                let s = Sequenced {
                    epoch,
                    seq: Seq(n + 20_000),
                    author,
                    op,
                };
                let full = encode_server(&ServerMsg::Op(s.clone())).len();
                down_full += full + ws_header_bytes(full, false);
                let live = match board.live_points(&s) {
                    Some(live) => encode_server(&ServerMsg::Points(live)).len(),
                    None => full,
                };
                down += live + ws_header_bytes(live, false);
                board.apply(author, &s.op);
            }
        }
        let per = |b: usize| b as f64 / points as f64;
        println!(
            "{points} points: up {:.2} → {:.2} B/point, down {:.2} → {:.2} B/point",
            per(up_full),
            per(up),
            per(down_full),
            per(down)
        );
        assert!(up * 2 < up_full && down * 2 < down_full);
    }

    #[test]
    fn websocket_headers() {
        assert_eq!(ws_header_bytes(0, false), 2);
        assert_eq!(ws_header_bytes(125, true), 6);
        assert_eq!(ws_header_bytes(126, false), 4);
        assert_eq!(ws_header_bytes(65_536, true), 14);
    }
}
