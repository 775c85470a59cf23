//! What an Ack costs: one author adds items one at a time (the next once the last is
//! acknowledged) while a watcher in the same room, on the last node, waits to see each. The
//! author's round trip to its Ack and the watcher's time to see the op are measured for the
//! same ops: the difference is what the Ack waits for beyond delivery (the store's commit on a
//! single node; Redis's reply, or replicas with `--redis-replicas`, in a cluster).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::SinkExt;
use kokuban_protocol::{
    ClientMsg, Color, ErrorCode, Op, Point, ServerMsg, StrokeId, Submit, Text, Width, encode_client,
};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::http::{RoomLinks, create_room};
use crate::join::{hello, next_server_msg, next_welcome};
use crate::joinstorm::Percentiles;
use crate::net::{SourceAddrs, Ws, ws_connect};
use crate::scenario::Deployment;

/// Ops sent before measuring (a replica may still be syncing when the nodes start).
const WARM_UP: usize = 20;
/// How long one op may wait for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The least time between two ops of the author: 500 a second, under the server's budget of
/// inbound frames per connection (960 a second by default), which a round trip of well under
/// a millisecond would otherwise exceed. Each op is still timed alone.
const PACE: Duration = Duration::from_millis(2);

/// The figures of one deployment.
#[derive(Debug, Clone, Serialize)]
pub struct AcksResult {
    /// Deployment mode.
    pub mode: String,
    /// Ops measured.
    pub ops: usize,
    /// Author: op sent → its Ack received, milliseconds.
    pub ack_ms: Percentiles,
    /// Watcher (on the last node): op sent → op received, milliseconds.
    pub seen_ms: Percentiles,
}

/// Adds `ops` items one at a time through the first node, watched from the last.
pub async fn run(dep: &Deployment, ops: usize) -> anyhow::Result<AcksResult> {
    let first = *dep.nodes.first().context("no nodes")?;
    let last = *dep.nodes.last().context("no nodes")?;
    let links = create_room(first).await?;
    let sources = SourceAddrs::default();
    let mut author = join(first, &sources, &links, true).await?;
    let mut watcher = join(last, &sources, &links, false).await?;
    // The watcher reads on its own, noting when each item arrives.
    let (arrivals, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let watching = tokio::spawn(async move {
        loop {
            if let ServerMsg::Op(s) = next_server_msg(&mut watcher).await?
                && let Op::Text { id, .. } = s.op
                && arrivals.send((id, Instant::now())).is_err()
            {
                return anyhow::Ok(());
            }
        }
    });
    let mut n = 0u64;
    let (mut ack_ms, mut seen_ms) = (Vec::new(), Vec::new());
    let mut warm = 0;
    let mut last_sent: Option<Instant> = None;
    while ack_ms.len() < ops {
        n += 1;
        let id = StrokeId(uuid::Uuid::new_v4());
        let op = Op::Text {
            id,
            at: Point::new((n % 1000) as i32 * 64, 0, 0)?,
            color: Color::rgb(20, 20, 20),
            size: Width::new(16)?,
            text: Text::new(format!("op {n}"))?,
        };
        let frame = encode_client(&ClientMsg::Op(Submit { n, op }));
        if let Some(last) = last_sent {
            tokio::time::sleep_until((last + PACE).into()).await;
        }
        let sent = Instant::now();
        last_sent = Some(sent);
        author.send(Message::binary(frame)).await?;
        let acked = tokio::time::timeout(ANSWER_TIMEOUT, answer(&mut author))
            .await
            .context("no answer")??;
        let ack = sent.elapsed();
        if !acked {
            // Read-only for now (a replica still syncing): the op was not applied.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let at = loop {
            let (got, at) = tokio::time::timeout(ANSWER_TIMEOUT, arrived.recv())
                .await
                .context("the watcher never saw the op")?
                .context("the watcher's connection ended")?;
            if got == id {
                break at;
            }
        };
        if warm < WARM_UP {
            warm += 1;
            continue;
        }
        ack_ms.push(ack.as_secs_f64() * 1e3);
        seen_ms.push(at.duration_since(sent).as_secs_f64() * 1e3);
    }
    watching.abort();
    Ok(AcksResult {
        mode: dep.mode.clone(),
        ops,
        ack_ms: Percentiles::of(&ack_ms),
        seen_ms: Percentiles::of(&seen_ms),
    })
}

async fn join(
    node: std::net::SocketAddr,
    sources: &SourceAddrs,
    links: &RoomLinks,
    edit: bool,
) -> anyhow::Result<Ws> {
    let mut ws = ws_connect(sources.next(), node, &format!("/ws/{}", links.room)).await?;
    hello(&mut ws, links, edit, u64::from(edit)).await?;
    next_welcome(&mut ws).await?;
    Ok(ws)
}

/// The author's answer: true for an Ack, false for "read-only for now".
async fn answer(ws: &mut Ws) -> anyhow::Result<bool> {
    loop {
        match next_server_msg(ws).await? {
            ServerMsg::Ack(_) | ServerMsg::Acked(_) => return Ok(true),
            ServerMsg::Error(e) if e.code == ErrorCode::TemporarilyReadOnly => return Ok(false),
            ServerMsg::Error(e) => bail!("op refused: {:?} {}", e.code, e.message),
            _ => {}
        }
    }
}
