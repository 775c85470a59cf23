//! The two kinds of benchmark client: one speaks Kokuban's protocol, the other Socket.IO over
//! a websocket. Both play the same part: join a room, and either draw (an editor sending a
//! stamped batch at a fixed rate) or watch, recording every batch that arrives.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use kokuban_protocol::{
    ClientMsg, Color, Hello, Name, Op, Point, RoomState, ServerMsg, StrokeId, Tool, Width,
    decode_server, encode_client,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::engineio::{self, EnginePacket, SocketKind};
use crate::http::RoomLinks;
use crate::net::{Ws, ws_connect};
use crate::stamp::Stamp;
use crate::stats::{Deliveries, Latencies, SeqCheck};

/// How long a client may take to connect and join its room.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The room a client joins.
#[derive(Debug, Clone)]
pub enum RoomRef {
    /// A Kokuban room and its capability tokens.
    Kokuban(Arc<RoomLinks>),
    /// A Socket.IO room name.
    SocketIo(Arc<str>),
}

/// One client of a scenario.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// Index among all clients.
    pub index: usize,
    /// Node it connects to (index into the deployment's nodes).
    pub node: usize,
    /// Node address.
    pub addr: SocketAddr,
    /// Source address of its socket.
    pub from: Ipv4Addr,
    /// Its room.
    pub room: RoomRef,
    /// Global editor index if it draws.
    pub editor: Option<u32>,
}

/// When the clients draw and which send times are measured, in microseconds of the run clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Editors start drawing.
    pub send_from_us: u64,
    /// Batches sent from here on are measured...
    pub window_start_us: u64,
    /// ...until here, when the editors stop.
    pub window_end_us: u64,
    /// Sending rate of each editor.
    pub rate_hz: f64,
}

impl Schedule {
    /// Whether a batch sent at `us` is measured.
    pub fn in_window(&self, us: u64) -> bool {
        (self.window_start_us..self.window_end_us).contains(&us)
    }
}

/// What the controller tells the clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Connected; wait.
    Wait,
    /// Draw and measure.
    Go(Schedule),
    /// Report and close.
    Stop,
}

/// State shared by all clients of one run.
#[derive(Debug)]
pub struct Shared {
    /// The run's clock; every stamp is relative to it.
    pub clock: Instant,
    /// Node of each editor, to tell same-node from cross-node deliveries.
    pub editor_node: Vec<usize>,
    /// Bytes of each batch's payload are drawn from this range.
    pub batch_bytes: (usize, usize),
    /// Stroke length in batches before an editor ends the stroke and starts another.
    pub batches_per_stroke: u32,
    /// Latency histograms, sharded to keep lock contention out of the measurement.
    shards: Vec<Mutex<Hists>>,
}

/// Latencies split by where sender and receiver were.
#[derive(Debug, Clone, Default)]
pub struct Hists {
    /// Every measured delivery.
    pub all: Latencies,
    /// Sender and receiver on the same node.
    pub same_node: Latencies,
    /// Sender and receiver on different nodes.
    pub cross_node: Latencies,
}

impl Hists {
    fn merge(&mut self, other: &Hists) {
        self.all.merge(&other.all);
        self.same_node.merge(&other.same_node);
        self.cross_node.merge(&other.cross_node);
    }
}

const SHARDS: usize = 32;

impl Shared {
    /// State for a run.
    pub fn new(
        editor_node: Vec<usize>,
        batch_bytes: (usize, usize),
        batches_per_stroke: u32,
    ) -> Self {
        Self {
            clock: Instant::now(),
            editor_node,
            batch_bytes,
            batches_per_stroke,
            shards: (0..SHARDS).map(|_| Mutex::new(Hists::default())).collect(),
        }
    }

    /// Microseconds on the run clock.
    pub fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    fn record(&self, client: usize, latency_us: u64, cross: bool) {
        let mut h = self.shards[client % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        h.all.record(latency_us);
        if cross {
            h.cross_node.record(latency_us);
        } else {
            h.same_node.record(latency_us);
        }
    }

    /// All latencies recorded so far.
    pub fn histograms(&self) -> Hists {
        let mut out = Hists::default();
        for shard in &self.shards {
            out.merge(&shard.lock().unwrap_or_else(|e| e.into_inner()));
        }
        out
    }
}

/// What a client saw, handed back when it stops.
#[derive(Debug, Clone, Default)]
pub struct ClientReport {
    /// The client.
    pub index: usize,
    /// Arrivals per editor (global editor index).
    pub deliveries: Vec<(u32, Deliveries)>,
    /// Distinct arrivals of measured batches.
    pub delivered_in_window: u64,
    /// Order of sequenced ops (Kokuban only).
    pub seq: SeqCheck,
    /// Errors (error frames, unexpected closes, undecodable frames).
    pub errors: u64,
    /// The first error, for the report.
    pub first_error: Option<String>,
    /// For an editor: the first and last batch sent in the window, and how many.
    pub sent_window: Option<(u32, u32)>,
    /// Batches sent in the window.
    pub sent_in_window: u64,
}

impl ClientReport {
    fn error(&mut self, what: impl Into<String>) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what.into());
        }
    }

    fn arrive(&mut self, shared: &Shared, schedule: Option<Schedule>, node: usize, stamp: Stamp) {
        let now = shared.now_us();
        let d = match self.deliveries.iter().position(|(e, _)| *e == stamp.editor) {
            Some(i) => &mut self.deliveries[i].1,
            None => {
                self.deliveries.push((stamp.editor, Deliveries::default()));
                &mut self.deliveries.last_mut().expect("just pushed").1
            }
        };
        let fresh = d.arrive(stamp.batch);
        if let Some(s) = schedule
            && fresh
            && s.in_window(stamp.sent_us)
        {
            self.delivered_in_window += 1;
            let cross = shared.editor_node.get(stamp.editor as usize) != Some(&node);
            shared.record(self.index, now.saturating_sub(stamp.sent_us), cross);
        }
    }
}

/// What an editor sends next: the batches of one stroke after another.
#[derive(Debug)]
struct Pen {
    editor: u32,
    batch: u32,
    stroke: StrokeId,
    /// Index of the next point of the stroke (0: the stroke has not begun).
    next_point: u32,
    batches_in_stroke: u32,
    rng: SmallRng,
    buf: Vec<u8>,
}

impl Pen {
    fn new(editor: u32, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        Self {
            editor,
            batch: 0,
            stroke: StrokeId(uuid::Uuid::from_u128(rng.random())),
            next_point: 0,
            batches_in_stroke: 0,
            rng,
            buf: Vec::new(),
        }
    }

    fn target_len(&mut self, shared: &Shared) -> usize {
        let (lo, hi) = shared.batch_bytes;
        self.rng.random_range(lo..=hi)
    }

    fn stamp(&mut self, shared: &Shared) -> Stamp {
        let stamp = Stamp {
            sent_us: shared.now_us(),
            editor: self.editor,
            batch: self.batch,
        };
        self.batch += 1;
        stamp
    }

    /// Kokuban frames for one tick: a batch, preceded by `StrokeBegin` at the start of a stroke
    /// and followed by `StrokeEnd` at its end, as a browser sends them.
    fn kokuban_frames(&mut self, shared: &Shared) -> (Stamp, Vec<Vec<u8>>) {
        let mut frames = Vec::with_capacity(3);
        if self.next_point == 0 {
            self.stroke = StrokeId(uuid::Uuid::from_u128(self.rng.random()));
            let first = Point::new(
                self.rng.random_range(0..8000),
                self.rng.random_range(0..8000),
                128,
            )
            .expect("small coordinates are in bounds");
            frames.push(encode_client(&ClientMsg::Op(Op::StrokeBegin {
                id: self.stroke,
                tool: Tool::Pen,
                color: Color::rgb(20, 20, 20),
                width: Width::new(16).expect("valid width"),
                first,
            })));
            self.next_point = 1;
            self.batches_in_stroke = 0;
        }
        let target = self.target_len(shared);
        let stamp = self.stamp(shared);
        // Size the batch: encode the two stamp points alone, then add pen-trace points of
        // three bytes each until the frame reaches the target size.
        let bare = encode_client(&ClientMsg::Op(Op::StrokePoints(stamp.stroke_points(
            self.stroke,
            self.next_point,
            0,
            &mut self.rng,
        ))));
        let fillers = target.saturating_sub(bare.len()).div_ceil(3);
        let batch = stamp.stroke_points(self.stroke, self.next_point, fillers, &mut self.rng);
        self.next_point += batch.points.len() as u32;
        frames.push(encode_client(&ClientMsg::Op(Op::StrokePoints(batch))));
        self.batches_in_stroke += 1;
        if self.batches_in_stroke >= shared.batches_per_stroke {
            frames.push(encode_client(&ClientMsg::Op(Op::StrokeEnd {
                id: self.stroke,
            })));
            self.next_point = 0;
        }
        (stamp, frames)
    }

    /// The Socket.IO attachment for one tick.
    fn socketio_payload(&mut self, shared: &Shared) -> (Stamp, Vec<u8>) {
        let target = self.target_len(shared);
        let stamp = self.stamp(shared);
        let mut buf = std::mem::take(&mut self.buf);
        stamp.write_bytes(target, &mut self.rng, &mut buf);
        (stamp, buf)
    }
}

/// A connected client, ready to run.
#[derive(Debug)]
pub struct Joined {
    spec: ClientSpec,
    ws: Ws,
    /// Kokuban: the seq of the Welcome's position.
    seq_after: Option<u64>,
    epoch: Option<u64>,
}

/// Connects and joins the room: Hello/Welcome for Kokuban, the Engine.IO and Socket.IO
/// handshakes for the baseline.
pub async fn join(spec: ClientSpec) -> anyhow::Result<Joined> {
    tokio::time::timeout(JOIN_TIMEOUT, join_inner(spec))
        .await
        .context("join timed out")?
}

async fn join_inner(spec: ClientSpec) -> anyhow::Result<Joined> {
    match &spec.room {
        RoomRef::Kokuban(links) => {
            let path = format!("/ws/{}", links.room);
            let mut ws = ws_connect(spec.from, spec.addr, &path).await?;
            let token = if spec.editor.is_some() {
                &links.edit
            } else {
                &links.view
            };
            let hello = ClientMsg::Hello(Hello {
                room: links.room.clone(),
                token: token.clone(),
                resume: None,
                name: Name::new(format!("bench-{}", spec.index))?,
                color: Color::rgb(200, 40, (spec.index % 256) as u8),
            });
            ws.send(Message::binary(encode_client(&hello))).await?;
            let welcome = loop {
                match ws.next().await.context("closed before Welcome")?? {
                    Message::Binary(b) => match decode_server(&b)? {
                        ServerMsg::Welcome(w) => break w,
                        ServerMsg::Error(e) => bail!("refused: {:?} {}", e.code, e.message),
                        _ => {}
                    },
                    Message::Close(c) => bail!("closed before Welcome: {c:?}"),
                    _ => {}
                }
            };
            let seq_after = welcome_seq(&welcome.state);
            Ok(Joined {
                spec,
                ws,
                seq_after,
                epoch: Some(welcome.epoch.0),
            })
        }
        RoomRef::SocketIo(room) => {
            let path = format!("/socket.io/?EIO=4&transport=websocket&room={room}");
            let mut ws = ws_connect(spec.from, spec.addr, &path).await?;
            let mut opened = false;
            loop {
                let text = match ws.next().await.context("closed during handshake")?? {
                    Message::Text(t) => t,
                    Message::Close(c) => bail!("closed during handshake: {c:?}"),
                    _ => continue,
                };
                match engineio::parse_engine(&text)? {
                    EnginePacket::Open(json) => {
                        engineio::parse_open(json)?;
                        opened = true;
                        ws.send(Message::text(engineio::CONNECT_DEFAULT_NAMESPACE))
                            .await?;
                    }
                    EnginePacket::Ping(_) => ws.send(Message::text(engineio::PONG)).await?,
                    EnginePacket::Message(m) if opened => {
                        let p = engineio::parse_socket(m)?;
                        match p.kind {
                            SocketKind::Connect => break,
                            SocketKind::ConnectError => bail!("connect refused: {}", p.data),
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            Ok(Joined {
                spec,
                ws,
                seq_after: None,
                epoch: None,
            })
        }
    }
}

/// The seq a Welcome leaves the client at (`None` for an empty history).
pub fn welcome_seq(state: &RoomState) -> Option<u64> {
    match state {
        RoomState::Replay { ops } => ops.as_slice().last().map(|s| s.seq.0),
        RoomState::Snapshot { board, ops } => match ops.as_slice().last() {
            Some(s) => Some(s.seq.0),
            None => kokuban_board::Board::from_snapshot(&board.0)
                .ok()
                .and_then(|b| b.position())
                .map(|p| p.seq.0),
        },
    }
}

/// Runs a joined client until told to stop, then reports.
pub async fn run(
    joined: Joined,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> ClientReport {
    let Joined {
        spec,
        mut ws,
        seq_after,
        epoch,
    } = joined;
    let mut report = ClientReport {
        index: spec.index,
        seq: SeqCheck::starting_after(seq_after),
        ..ClientReport::default()
    };
    let mut pen = spec.editor.map(|e| {
        Pen::new(
            e,
            0x5eed ^ (spec.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )
    });
    let mut schedule: Option<Schedule> = None;
    let mut next_send: Option<tokio::time::Instant> = None;
    let mut period = Duration::from_secs(1);
    // Socket.IO: a binary event's header arrived; its attachment is the next binary message.
    let mut attachment_pending = false;
    let kokuban = matches!(spec.room, RoomRef::Kokuban(_));

    loop {
        let send_at = next_send;
        tokio::select! {
            changed = phase.changed() => {
                let current = *phase.borrow_and_update();
                if changed.is_err() || current == Phase::Stop {
                    break;
                }
                if let Phase::Go(s) = current {
                    schedule = Some(s);
                    period = Duration::from_secs_f64(1.0 / s.rate_hz);
                    if pen.is_some() {
                        // Editors start at a random phase within one period, so that the room's
                        // batches do not all leave in the same instant.
                        let offset = rand::rng().random_range(0.0..period.as_secs_f64());
                        let start_us = s.send_from_us + (offset * 1e6) as u64;
                        next_send = Some(tokio::time::Instant::from_std(
                            shared.clock + Duration::from_micros(start_us),
                        ));
                    }
                }
            }
            _ = async { tokio::time::sleep_until(send_at.expect("guarded")).await }, if send_at.is_some() => {
                let (Some(s), Some(pen)) = (schedule, pen.as_mut()) else { continue };
                let result = if kokuban {
                    let (stamp, frames) = pen.kokuban_frames(&shared);
                    count_sent(&mut report, s, stamp);
                    send_all(&mut ws, frames.into_iter().map(Message::binary)).await
                } else {
                    let (stamp, payload) = pen.socketio_payload(&shared);
                    count_sent(&mut report, s, stamp);
                    let header = Message::text(engineio::binary_event_header("batch"));
                    send_all(&mut ws, [header, Message::binary(payload)].into_iter()).await
                };
                if let Err(e) = result {
                    report.error(format!("send: {e}"));
                    break;
                }
                // Fixed-rate schedule: a late tick is followed by the next one on time, not
                // by a burst (what a browser's animation frames do under load).
                let mut next = send_at.expect("guarded") + period;
                let now = tokio::time::Instant::now();
                while next <= now {
                    next += period;
                }
                let end = shared.clock + Duration::from_micros(s.window_end_us);
                next_send = (next.into_std() < end).then_some(next);
            }
            msg = ws.next() => {
                let msg = match msg {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => { report.error(format!("receive: {e}")); break; }
                    None => { report.error("connection closed"); break; }
                };
                match msg {
                    Message::Binary(bytes) if kokuban => {
                        match decode_server(&bytes) {
                            Ok(m) => on_kokuban(m, &mut report, &shared, schedule, spec.node, epoch),
                            Err(e) => report.error(format!("undecodable frame: {e}")),
                        }
                    }
                    // The attachment that follows a binary event's header.
                    Message::Binary(bytes) if std::mem::take(&mut attachment_pending) => {
                        match Stamp::read_bytes(&bytes) {
                            Some(stamp) => report.arrive(&shared, schedule, spec.node, stamp),
                            None => report.error("short attachment"),
                        }
                    }
                    Message::Text(text) if !kokuban => match engineio::parse_engine(&text) {
                        Ok(EnginePacket::Ping(_)) => {
                            if let Err(e) = ws.send(Message::text(engineio::PONG)).await {
                                report.error(format!("pong: {e}"));
                                break;
                            }
                        }
                        Ok(EnginePacket::Message(m)) => match engineio::parse_socket(m) {
                            Ok(p) if p.kind == SocketKind::BinaryEvent
                                && engineio::event_name(p.data) == Some("batch") => {
                                attachment_pending = p.attachments == 1;
                            }
                            Ok(_) => {}
                            Err(e) => report.error(format!("socket.io packet: {e}")),
                        },
                        Ok(EnginePacket::Close) => { report.error("server closed the session"); break; }
                        Ok(_) => {}
                        Err(e) => report.error(format!("engine.io packet: {e}")),
                    },
                    Message::Close(frame) => {
                        report.error(format!("closed by server: {frame:?}"));
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    // Wait for the stop signal even after an error, so every report describes the same span.
    while *phase.borrow() != Phase::Stop {
        if phase.changed().await.is_err() {
            break;
        }
    }
    report
}

fn count_sent(report: &mut ClientReport, s: Schedule, stamp: Stamp) {
    if s.in_window(stamp.sent_us) {
        report.sent_in_window += 1;
        report.sent_window = Some(match report.sent_window {
            None => (stamp.batch, stamp.batch),
            Some((first, _)) => (first, stamp.batch),
        });
    }
}

async fn send_all(ws: &mut Ws, msgs: impl Iterator<Item = Message>) -> anyhow::Result<()> {
    for m in msgs {
        ws.feed(m).await?;
    }
    ws.flush().await?;
    Ok(())
}

fn on_kokuban(
    msg: ServerMsg,
    report: &mut ClientReport,
    shared: &Shared,
    schedule: Option<Schedule>,
    node: usize,
    epoch: Option<u64>,
) {
    match msg {
        ServerMsg::Op(s) => {
            if Some(s.epoch.0) != epoch {
                report.error("epoch changed");
            }
            report.seq.observe(s.seq.0);
            if let Op::StrokePoints(batch) = &s.op {
                match Stamp::read_points(batch.points.as_slice()) {
                    Some(stamp) => report.arrive(shared, schedule, node, stamp),
                    None => report.error("batch without stamp"),
                }
            }
        }
        ServerMsg::Ack(a) => {
            if Some(a.epoch.0) != epoch {
                report.error("epoch changed");
            }
            report.seq.observe(a.seq.0);
        }
        ServerMsg::Error(e) => report.error(format!("error frame: {:?} {}", e.code, e.message)),
        ServerMsg::Welcome(_) => report.error("second Welcome"),
        ServerMsg::Presence(_) | ServerMsg::Cursor(_) => {}
    }
}
