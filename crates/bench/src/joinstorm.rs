//! The join storm: many clients open the same large board at the same moment — a class
//! opening the lecture's board. How long until each has its Welcome, and its board decoded and
//! ready to draw, and how much memory the server needed at its peak.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::http::create_room;
use crate::join::{board_of, draw, hello, next_welcome};
use crate::net::{SourceAddrs, ws_connect, ws_connect_bulk};
use crate::procfs;
use crate::scenario::Deployment;

/// Points drawn first to learn what a point weighs in a Welcome, before drawing the rest.
const PROBE_POINTS: u64 = 100_000;

/// The figures of one storm.
#[derive(Debug, Clone, Serialize)]
pub struct JoinStormResult {
    /// Deployment mode.
    pub mode: String,
    /// Clients that joined at once.
    pub joiners: usize,
    /// Joins that failed.
    pub failed: usize,
    /// The first failure.
    pub first_error: Option<String>,
    /// Points on the board.
    pub points: u64,
    /// The board's size as sent: the Welcome frame, bytes.
    pub board_bytes: usize,
    /// Hellos sent → Welcome received, milliseconds.
    pub welcome_ms: Percentiles,
    /// Hellos sent → board decoded and applied, milliseconds (see [`run`]).
    pub ready_ms: Percentiles,
    /// Server RSS just before the storm (the node the clients join).
    pub rss_before: u64,
    /// Peak server RSS from just before the storm to its end (the kernel's high-water mark).
    pub peak_rss: Option<u64>,
    /// Server RSS a second after the storm, every joiner gone and the room still loaded: what
    /// the node keeps for the board, apart from what only the storm needed.
    pub rss_after: u64,
}

/// Percentiles of a small sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `v`.
    pub fn of(v: &[f64]) -> Self {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1;
            v.get(i).copied().unwrap_or(0.0)
        };
        Self {
            p50: rank(0.5),
            p99: rank(0.99),
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// Draws a board of about `board_bytes` (as a Welcome) through node 0, connects `joiners`
/// WebSockets to the last node (another node in a cluster, which then loads the board from
/// Redis under the storm), and sends all their Hellos at once.
///
/// "Ready" is the Welcome's arrival plus that client's own decoding time: every browser decodes
/// on its own machine, so decodes run here no more than the cores at a time and a client's
/// wait for a free core of the load generator is not counted.
pub async fn run(
    dep: &Deployment,
    board_bytes: usize,
    joiners: usize,
) -> anyhow::Result<JoinStormResult> {
    let upload = dep.nodes[0];
    let join_node = *dep.nodes.last().context("no nodes")?;
    let join_pid = *dep.pids().0.last().context("no server")?;
    let links = Arc::new(create_room(upload).await?);
    let sources = SourceAddrs::default();

    let (points, mut size) = draw_board(upload, &links, &sources, board_bytes).await?;

    // Everyone connected and waiting, then the Hellos at once.
    let mut sockets = Vec::with_capacity(joiners);
    for _ in 0..joiners {
        let path = format!("/ws/{}", links.room);
        sockets.push(ws_connect_bulk(sources.next(), join_node, &path).await?);
    }
    let rss_before = procfs::sample(join_pid).map_or(0, |s| s.rss_bytes);
    let peak_reset = procfs::reset_peak_rss(join_pid);
    let (go_tx, go_rx) = watch::channel(None::<Instant>);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let decoders = Arc::new(Semaphore::new(cores));
    let mut set = JoinSet::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        let (links, decoders, mut go) = (links.clone(), decoders.clone(), go_rx.clone());
        set.spawn(async move {
            let t0 = loop {
                if let Some(t) = *go.borrow_and_update() {
                    break t;
                }
                go.changed().await?;
            };
            hello(&mut ws, &links, false, 10_000 + i as u64).await?;
            let (welcome, bytes) = next_welcome(&mut ws).await?;
            let welcome_at = t0.elapsed();
            drop(ws);
            let _core = decoders.acquire_owned().await?;
            let decoded = tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                board_of(&welcome).map(|b| (b.point_count(), started.elapsed()))
            })
            .await??;
            anyhow::Ok((welcome_at, welcome_at + decoded.1, bytes, decoded.0 as u64))
        });
    }
    go_tx.send_replace(Some(Instant::now()));
    let mut welcome_ms = Vec::new();
    let mut ready_ms = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    let collect = async {
        while let Some(r) = set.join_next().await {
            match r.map_err(anyhow::Error::from).and_then(|r| r) {
                Ok((w, ready, bytes, got)) if got == points => {
                    welcome_ms.push(ms(w));
                    ready_ms.push(ms(ready));
                    size = bytes;
                }
                Ok((_, _, _, got)) => {
                    failed += 1;
                    first_error.get_or_insert(format!("a Welcome held {got} of {points} points"));
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(format!("{e:#}"));
                }
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), collect)
        .await
        .is_err()
    {
        bail!("the join storm did not finish within two minutes");
    }
    let peak_rss = peak_reset.then(|| procfs::peak_rss(join_pid)).flatten();
    // The joiners closed their sockets as they got their Welcomes; their sessions end at once,
    // while the room stays loaded for its grace period.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = procfs::sample(join_pid).map_or(0, |s| s.rss_bytes);
    Ok(JoinStormResult {
        mode: dep.mode.clone(),
        joiners,
        failed,
        first_error,
        points,
        board_bytes: size,
        welcome_ms: Percentiles::of(&welcome_ms),
        ready_ms: Percentiles::of(&ready_ms),
        rss_before,
        peak_rss,
        rss_after,
    })
}

/// Draws a board of about `board_bytes` (as a Welcome) into the room through `upload`:
/// learns the weight of a point, draws the rest, and tops up if the estimate fell short (the
/// wire format may change; the size asked for is what is measured). Returns the points drawn
/// and the Welcome's size.
pub(crate) async fn draw_board(
    upload: std::net::SocketAddr,
    links: &crate::http::RoomLinks,
    sources: &SourceAddrs,
    board_bytes: usize,
) -> anyhow::Result<(u64, usize)> {
    let mut points = 0;
    let mut size = 0;
    for round in 0..3 {
        let more = if round == 0 {
            PROBE_POINTS
        } else if size >= board_bytes {
            break;
        } else {
            let per_point = size as f64 / points as f64;
            ((board_bytes - size) as f64 / per_point).ceil() as u64
        };
        draw(upload, links, more, sources, round).await?;
        points += more;
        size = welcome_size(upload, sources, links).await?;
    }
    Ok((points, size))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The size of the Welcome one viewer gets now.
async fn welcome_size(
    node: std::net::SocketAddr,
    sources: &SourceAddrs,
    links: &crate::http::RoomLinks,
) -> anyhow::Result<usize> {
    let mut ws = ws_connect(sources.next(), node, &format!("/ws/{}", links.room)).await?;
    hello(&mut ws, links, false, 9_999).await?;
    Ok(next_welcome(&mut ws).await?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=150).map(f64::from).collect();
        let p = Percentiles::of(&v);
        // The 99th percentile of 150 values is the 149th (ceil(148.5)).
        assert_eq!((p.p50, p.p99, p.max), (75.0, 149.0, 150.0));
        let one = Percentiles::of(&[7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }
}
