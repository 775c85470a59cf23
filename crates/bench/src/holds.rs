//! Memory under two holding attacks, each with the budget the node must stay under:
//!
//! - **stalled joiners**: viewers of a large board send their Hello and never read (a receive
//!   buffer of a few kilobytes, so the Welcome cannot drain into them). The Welcome is encoded
//!   once and shared, so each joiner after the first must cost the node far less than the
//!   board.
//! - **fragment hold**: connections each send the first fragment of a binary message whose
//!   last never comes. The node must close each at its message deadline, and hold no more
//!   than the fragments meanwhile.
//!
//! Resident memory is the node's RSS read from `/proc`; budgets are in the constants below.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::http::create_room;
use crate::join::hello;
use crate::joinstorm::draw_board;
use crate::net::{SourceAddrs, Ws, ws_connect, ws_connect_stalling};
use crate::procfs;
use crate::scenario::Deployment;

/// Each stalled joiner after the first may cost the node at most this much (its session, its
/// queue of shared frames, socket bookkeeping): the Welcome is encoded once and shared, so a
/// copy per joiner would break it many times over.
pub const STALLED_EXTRA_BUDGET: u64 = 1 << 20;
/// Each fragment holder may cost the node at most its fragment plus this much, while held and
/// after it was closed (the allocator keeps freed memory for reuse, so RSS after is bounded by
/// what was held, not brought back to where it started).
pub const HOLDER_SLACK: u64 = 64 << 10;
/// How long the node may take to close every fragment holder after the last fragment: its
/// message deadline (10 s by default) and two seconds.
pub const FRAGMENT_CLOSE_BUDGET: Duration = Duration::from_secs(12);
/// How long the measurement waits for the closes.
const FRAGMENT_CLOSE_WITHIN: Duration = Duration::from_secs(30);

/// The figures of both attacks.
#[derive(Debug, Clone, Serialize)]
pub struct HoldsResult {
    /// Deployment mode.
    pub mode: String,
    /// The board's Welcome, bytes.
    pub board_bytes: usize,
    /// Viewers that sent a Hello and never read.
    pub stalled_joiners: usize,
    /// Node RSS before they came, with the first one stalled, and with all of them stalled.
    pub stalled_rss_before: u64,
    pub stalled_rss_first: u64,
    pub stalled_rss_all: u64,
    /// What each joiner after the first cost: (all − first) ÷ (joiners − 1).
    pub per_extra_stalled_joiner: u64,
    /// Its budget, [`STALLED_EXTRA_BUDGET`].
    pub per_extra_stalled_joiner_budget: u64,
    /// Connections holding an unfinished message, and the fragment each sent.
    pub fragment_holders: usize,
    pub fragment_bytes: usize,
    /// Node RSS before, with every fragment held, and once every holder was closed.
    pub fragment_rss_before: u64,
    pub fragment_rss_held: u64,
    pub fragment_rss_after: u64,
    /// What held and after may be: before + holders × (fragment + [`HOLDER_SLACK`]).
    pub fragment_rss_budget: u64,
    /// Holders the node closed, and how long after the last fragment the last close came.
    pub fragment_closed: usize,
    pub fragment_closed_after_s: f64,
    /// Its budget, [`FRAGMENT_CLOSE_BUDGET`].
    pub fragment_closed_after_budget_s: f64,
}

impl HoldsResult {
    /// Whether both attacks stayed within their budgets.
    pub fn within_budgets(&self) -> bool {
        self.per_extra_stalled_joiner <= self.per_extra_stalled_joiner_budget
            && self.fragment_closed == self.fragment_holders
            && self.fragment_closed_after_s <= self.fragment_closed_after_budget_s
            && self.fragment_rss_held.max(self.fragment_rss_after) <= self.fragment_rss_budget
    }
}

/// Runs both attacks against the first node of `dep`.
pub async fn run(
    dep: &Deployment,
    board_bytes: usize,
    joiners: usize,
    holders: usize,
    fragment_bytes: usize,
) -> anyhow::Result<HoldsResult> {
    let node = *dep.nodes.first().context("no nodes")?;
    let pid = *dep.pids().0.first().context("no server")?;
    let rss = || procfs::sample(pid).map_or(0, |s| s.rss_bytes);
    let sources = SourceAddrs::default();

    // Stalled joiners of a large board.
    let links = create_room(node).await?;
    let (_, board) = draw_board(node, &links, &sources, board_bytes).await?;
    settle().await;
    let stalled_rss_before = rss();
    let joiners = joiners.max(2);
    let mut stalled = Vec::with_capacity(joiners);
    let mut stalled_rss_first = 0;
    for i in 0..joiners {
        let path = format!("/ws/{}", links.room);
        let mut ws = ws_connect_stalling(sources.next(), node, &path).await?;
        hello(&mut ws, &links, false, 20_000 + i as u64).await?;
        stalled.push(ws);
        if i == 0 {
            settle().await;
            stalled_rss_first = rss();
        }
    }
    settle().await;
    let stalled_rss_all = rss();
    drop(stalled);
    let per_extra_stalled_joiner =
        stalled_rss_all.saturating_sub(stalled_rss_first) / (joiners as u64 - 1);

    // Unfinished fragmented messages.
    settle().await;
    let fragment_rss_before = rss();
    let fragment = Bytes::from(vec![0x5a; fragment_bytes]);
    let mut held: Vec<Ws> = Vec::with_capacity(holders);
    for _ in 0..holders {
        let mut ws = ws_connect(sources.next(), node, &format!("/ws/{}", links.room)).await?;
        let first = Frame::message(fragment.clone(), OpCode::Data(Data::Binary), false);
        ws.send(Message::Frame(first)).await?;
        held.push(ws);
    }
    let sent = Instant::now();
    settle().await;
    let fragment_rss_held = rss();
    // Every holder waits for its close (answering nothing else).
    let mut waits = tokio::task::JoinSet::new();
    for mut ws in held {
        waits.spawn(async move {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Instant::now(),
                    Some(Ok(_)) => {}
                }
            }
        });
    }
    let mut fragment_closed = 0;
    let mut last_close = sent;
    let deadline = tokio::time::sleep(FRAGMENT_CLOSE_WITHIN);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            done = waits.join_next() => match done {
                Some(Ok(at)) => {
                    fragment_closed += 1;
                    last_close = last_close.max(at);
                }
                Some(Err(_)) => {}
                None => break,
            },
        }
    }
    waits.abort_all();
    settle().await;
    let fragment_rss_after = rss();
    Ok(HoldsResult {
        mode: dep.mode.clone(),
        board_bytes: board,
        stalled_joiners: joiners,
        stalled_rss_before,
        stalled_rss_first,
        stalled_rss_all,
        per_extra_stalled_joiner,
        per_extra_stalled_joiner_budget: STALLED_EXTRA_BUDGET,
        fragment_holders: holders,
        fragment_bytes,
        fragment_rss_before,
        fragment_rss_held,
        fragment_rss_after,
        fragment_rss_budget: fragment_rss_before
            + holders as u64 * (fragment_bytes as u64 + HOLDER_SLACK),
        fragment_closed,
        fragment_closed_after_s: last_close.duration_since(sent).as_secs_f64(),
        fragment_closed_after_budget_s: FRAGMENT_CLOSE_BUDGET.as_secs_f64(),
    })
}

/// Lets the node finish what it is doing before its memory is read.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}
