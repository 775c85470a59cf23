//! The benchmark clients: one speaks Kokuban's protocol, one Socket.IO over a websocket, and
//! one the floor's (Kokuban's client frames, relayed back unchanged). All play the same part:
//! join a room, and either draw (an editor sending a stamped batch at a fixed rate) or watch,
//! recording every batch that arrives; in the presence scenario every client also moves its
//! cursor at a fixed rate and records the cursor updates of the others.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use kokuban_protocol::{ClientKey, Submit};
use kokuban_protocol::{
    ClientMsg, Color, Cursor, ErrorCode, Handles, Hello, Lead, Name, Op, Point, RoomId, RoomState,
    ServerMsg, StrokeId, Token, Tool, Width, decode_client, decode_server, encode_client,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::engineio::{self, EnginePacket, SocketKind};
use crate::http::RoomLinks;
use crate::net::{Ws, ws_connect};
use crate::stamp::{CursorStamp, Stamp};
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
    /// A floor room name.
    Floor(Arc<str>),
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
    /// ...until here.
    pub window_end_us: u64,
    /// The clients stop sending here (the syscall count runs between the window's end and
    /// this instant, under the same load).
    pub send_until_us: u64,
    /// Sending rate of each editor.
    pub rate_hz: f64,
    /// Cursor moves per second of every client (0: nobody moves).
    pub cursor_hz: f64,
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
    /// Cursor updates: receipt minus when the position they carry was sent.
    pub cursor: Latencies,
    /// Time between two consecutive cursor updates of the same mover at the same receiver.
    pub cursor_gap: Latencies,
}

impl Hists {
    fn merge(&mut self, other: &Hists) {
        self.all.merge(&other.all);
        self.same_node.merge(&other.same_node);
        self.cross_node.merge(&other.cross_node);
        self.cursor.merge(&other.cursor);
        self.cursor_gap.merge(&other.cursor_gap);
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

    fn shard(&self, client: usize) -> std::sync::MutexGuard<'_, Hists> {
        self.shards[client % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, client: usize, latency_us: u64, cross: bool) {
        let mut h = self.shard(client);
        h.all.record(latency_us);
        if cross {
            h.cross_node.record(latency_us);
        } else {
            h.same_node.record(latency_us);
        }
    }

    fn record_cursor(&self, client: usize, latency_us: u64, gap_us: Option<u64>) {
        let mut h = self.shard(client);
        h.cursor.record(latency_us);
        if let Some(gap) = gap_us {
            h.cursor_gap.record(gap);
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
    /// For an editor: the batches the server refused with an error frame (the room was
    /// read-only for a moment), so that nobody could receive them. A real client keeps such
    /// ops and sends them again once the room takes writes; this one only counts them.
    pub refused: Vec<u32>,
    /// For an editor: its ops not answered yet, oldest first, with the batch each carries.
    /// Every op is answered in the order it was sent, by an Ack or by an error frame.
    pub(crate) awaiting: VecDeque<Option<u32>>,
    /// Cursor moves sent in the window.
    pub cursor_sent_in_window: u64,
    /// Send time of the last cursor move sent at all.
    pub cursor_last_sent_us: Option<u64>,
    /// Cursor updates received of moves sent in the window.
    pub cursor_delivered_in_window: u64,
    /// What arrived of each other member's cursor (by mover index).
    pub cursors: Vec<(u32, CursorSeen)>,
}

/// What a receiver saw of one other member's cursor.
#[derive(Debug, Clone, Copy, Default)]
pub struct CursorSeen {
    /// Send time of the newest position received.
    pub last_sent_us: u64,
    /// When the last update arrived (run clock).
    pub last_arrival_us: u64,
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

    fn cursor_arrive(&mut self, shared: &Shared, schedule: Option<Schedule>, c: CursorStamp) {
        let now = shared.now_us();
        let i = match self.cursors.iter().position(|(m, _)| *m == c.mover) {
            Some(i) => i,
            None => {
                self.cursors.push((c.mover, CursorSeen::default()));
                self.cursors.len() - 1
            }
        };
        let seen = &mut self.cursors[i].1;
        let previous = std::mem::replace(&mut seen.last_arrival_us, now);
        seen.last_sent_us = seen.last_sent_us.max(c.sent_us);
        if let Some(s) = schedule
            && s.in_window(c.sent_us)
        {
            self.cursor_delivered_in_window += 1;
            let gap = (previous > 0).then(|| now.saturating_sub(previous));
            shared.record_cursor(self.index, now.saturating_sub(c.sent_us), gap);
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
    /// The number of the last op sent (ops are numbered by their author).
    n: u64,
    /// Where the stroke stands after what was sent of it.
    lead: Lead,
    /// What the connection carried, for batches by handle (as the app sends them).
    handles: Handles,
    rng: SmallRng,
    buf: Vec<u8>,
}

impl Pen {
    /// The next op, numbered and encoded.
    fn encode(&mut self, op: Op) -> Vec<u8> {
        self.n += 1;
        self.handles
            .encode(&ClientMsg::Op(Submit { n: self.n, op }))
    }

    fn new(editor: u32, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        Self {
            editor,
            batch: 0,
            stroke: StrokeId(uuid::Uuid::from_u128(rng.random())),
            next_point: 0,
            batches_in_stroke: 0,
            n: 0,
            lead: Lead::start(Point::new(0, 0, 0).expect("the origin is in bounds")),
            handles: Handles::new(),
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
    /// The frames of one tick: the points batch, after its stroke's start and before its end
    /// when they fall on this tick. Also gives which frame carries the batch.
    fn kokuban_frames(&mut self, shared: &Shared) -> (Stamp, Vec<Vec<u8>>, usize) {
        let mut frames = Vec::with_capacity(3);
        if self.next_point == 0 {
            self.stroke = StrokeId(uuid::Uuid::from_u128(self.rng.random()));
            let first = Point::new(
                self.rng.random_range(0..8000),
                self.rng.random_range(0..8000),
                128,
            )
            .expect("small coordinates are in bounds");
            let begin = Op::StrokeBegin {
                id: self.stroke,
                tool: Tool::Pen,
                color: Color::rgb(20, 20, 20),
                width: Width::new(16).expect("valid width"),
                first,
            };
            frames.push(self.encode(begin));
            self.lead = Lead::start(first);
            self.next_point = 1;
            self.batches_in_stroke = 0;
        }
        let target = self.target_len(shared);
        let stamp = self.stamp(shared);
        // Size the batch: encode the stamp's points alone as they would be sent, then add
        // pen-trace points of three bytes each until the frame reaches the target size.
        let bare = self.handles.clone().encode(&ClientMsg::Op(Submit {
            n: self.n + 1,
            op: Op::StrokePoints(stamp.stroke_points(
                self.stroke,
                self.next_point,
                self.lead,
                0,
                &mut self.rng,
            )),
        }));
        let fillers = target.saturating_sub(bare.len()).div_ceil(3);
        let batch = stamp.stroke_points(
            self.stroke,
            self.next_point,
            self.lead,
            fillers,
            &mut self.rng,
        );
        self.next_point += batch.points.len() as u32;
        self.lead = self.lead.then(batch.points.as_slice());
        let points_at = frames.len();
        frames.push(self.encode(Op::StrokePoints(batch)));
        self.batches_in_stroke += 1;
        if self.batches_in_stroke >= shared.batches_per_stroke {
            let end = Op::StrokeEnd { id: self.stroke };
            frames.push(self.encode(end));
            self.next_point = 0;
        }
        (stamp, frames, points_at)
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
                client: ClientKey(rand::random()),
            });
            ws.send(Message::binary(encode_client(&hello))).await?;
            let (welcome, _) = crate::join::next_welcome(&mut ws).await?;
            let seq_after = welcome_seq(&welcome.state);
            Ok(Joined {
                spec,
                ws,
                seq_after,
                epoch: Some(welcome.epoch.0),
            })
        }
        RoomRef::Floor(room) => {
            let mut ws = ws_connect(spec.from, spec.addr, &format!("/ws/{room}")).await?;
            // The same Hello a Kokuban client sends; the floor answers it with one frame.
            let hello = ClientMsg::Hello(Hello {
                room: RoomId::new(room.to_string())?,
                token: Token::new("floor")?,
                resume: None,
                name: Name::new(format!("bench-{}", spec.index))?,
                color: Color::rgb(200, 40, (spec.index % 256) as u8),
                client: ClientKey(rand::random()),
            });
            ws.send(Message::binary(encode_client(&hello))).await?;
            loop {
                match ws.next().await.context("closed before joining")?? {
                    Message::Binary(_) => break,
                    Message::Close(c) => bail!("closed before joining: {c:?}"),
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
        // Put together by `next_welcome` before it gets here.
        RoomState::InParts { ops } => ops.as_slice().last().map(|s| s.seq.0),
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
    let mut next_move: Option<tokio::time::Instant> = None;
    let mut period = Duration::from_secs(1);
    let mut move_period = Duration::from_secs(1);
    // Socket.IO: a binary event's header arrived; its attachment is the next binary message.
    let mut attachment_pending = false;
    // Kokuban's and the floor's clients send the same frames; Socket.IO's send its events.
    let kokuban = matches!(spec.room, RoomRef::Kokuban(_));
    let floor = matches!(spec.room, RoomRef::Floor(_));
    let at = |us: u64| tokio::time::Instant::from_std(shared.clock + Duration::from_micros(us));
    // A random phase within one period, so that a room's clients do not all send in the
    // same instant.
    let phase_in =
        |p: Duration| Duration::from_secs_f64(rand::rng().random_range(0.0..p.as_secs_f64()));

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
                    if pen.is_some() && s.rate_hz > 0.0 {
                        period = Duration::from_secs_f64(1.0 / s.rate_hz);
                        next_send = Some(at(s.send_from_us) + phase_in(period));
                    }
                    if s.cursor_hz > 0.0 {
                        move_period = Duration::from_secs_f64(1.0 / s.cursor_hz);
                        next_move = Some(at(s.send_from_us) + phase_in(move_period));
                    }
                }
            }
            _ = async { tokio::time::sleep_until(next_move.expect("guarded")).await }, if next_move.is_some() => {
                let Some(s) = schedule else { continue };
                let sent_us = shared.now_us();
                let stamp = CursorStamp { sent_us, mover: spec.index as u32 };
                let Some((x, y)) = stamp.to_xy() else {
                    report.error("cursor stamp out of range");
                    break;
                };
                if s.in_window(sent_us) {
                    report.cursor_sent_in_window += 1;
                }
                report.cursor_last_sent_us = Some(sent_us);
                let result = if kokuban || floor {
                    let cursor = Cursor::new(x, y).expect("stamps are within the coordinate limit");
                    let frame = encode_client(&ClientMsg::Cursor(Some(cursor)));
                    send_all(&mut ws, std::iter::once(Message::binary(frame))).await
                } else {
                    let event = engineio::json_event(CURSOR_EVENT, &serde_json::json!({ "x": x, "y": y }));
                    send_all(&mut ws, std::iter::once(Message::text(event))).await
                };
                if let Err(e) = result {
                    report.error(format!("send: {e}"));
                    break;
                }
                next_move = next_tick(next_move.expect("guarded"), move_period, at(s.send_until_us));
            }
            _ = async { tokio::time::sleep_until(send_at.expect("guarded")).await }, if send_at.is_some() => {
                let (Some(s), Some(pen)) = (schedule, pen.as_mut()) else { continue };
                let result = if kokuban || floor {
                    let (stamp, frames, points_at) = pen.kokuban_frames(&shared);
                    count_sent(&mut report, s, stamp);
                    if kokuban {
                        report.awaiting.extend(
                            (0..frames.len()).map(|i| (i == points_at).then_some(stamp.batch)),
                        );
                    }
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
                next_send = next_tick(send_at.expect("guarded"), period, at(s.send_until_us));
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
                    Message::Binary(bytes) if floor => match decode_client(&bytes) {
                        Ok(m) => on_floor(m, &mut report, &shared, schedule, spec.node),
                        Err(e) => report.error(format!("undecodable frame: {e}")),
                    },
                    // The attachment that follows a binary event's header.
                    Message::Binary(bytes) if std::mem::take(&mut attachment_pending) => {
                        match Stamp::read_bytes(&bytes) {
                            Some(stamp) => report.arrive(&shared, schedule, spec.node, stamp),
                            None => report.error("short attachment"),
                        }
                    }
                    Message::Text(text) if !kokuban && !floor => match engineio::parse_engine(&text) {
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
                            Ok(p) if p.kind == SocketKind::Event
                                && engineio::event_name(p.data) == Some(CURSOR_EVENT) => {
                                match socketio_cursor(p.data) {
                                    Some(c) => report.cursor_arrive(&shared, schedule, c),
                                    None => report.error("cursor without stamp"),
                                }
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

/// The Socket.IO event that carries a cursor position, `["cursor",{"x":…,"y":…}]`, as a
/// Socket.IO app would send it (the position is a [`CursorStamp`]).
const CURSOR_EVENT: &str = "cursor";

/// The position of a Socket.IO cursor event's JSON payload.
fn socketio_cursor(data: &str) -> Option<CursorStamp> {
    #[derive(serde::Deserialize)]
    struct At {
        x: i32,
        y: i32,
    }
    let (_, at): (String, At) = serde_json::from_str(data).ok()?;
    CursorStamp::from_xy(at.x, at.y)
}

/// The tick after `last` on a fixed-rate schedule, `None` at `end`: a late tick is followed by
/// the next one on time, not by a burst (what a browser's animation frames do under load).
fn next_tick(
    last: tokio::time::Instant,
    period: Duration,
    end: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    let mut next = last + period;
    let now = tokio::time::Instant::now();
    while next <= now {
        next += period;
    }
    (next < end).then_some(next)
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
        ServerMsg::Points(live) => {
            report.seq.observe_low(live.check);
            match Stamp::read_offsets(&live.points) {
                Some(stamp) => report.arrive(shared, schedule, node, stamp),
                None => report.error("batch without stamp"),
            }
        }
        ServerMsg::Acked(check) => {
            report.awaiting.pop_front();
            report.seq.observe_low(check);
        }
        ServerMsg::Ack(a) => {
            report.awaiting.pop_front();
            if Some(a.epoch.0) != epoch {
                report.error("epoch changed");
            }
            report.seq.observe(a.seq.0);
        }
        ServerMsg::Error(e) => {
            // These codes answer an op (the oldest one unanswered), which was not applied.
            if matches!(
                e.code,
                ErrorCode::TemporarilyReadOnly
                    | ErrorCode::InvalidOp
                    | ErrorCode::BoardFull
                    | ErrorCode::Decided
            ) && let Some(Some(batch)) = report.awaiting.pop_front()
            {
                report.refused.push(batch);
            }
            report.error(format!("error frame: {:?} {}", e.code, e.message));
        }
        ServerMsg::Welcome(_) | ServerMsg::BoardPart(_) => report.error("second Welcome"),
        ServerMsg::Cursor(c) => {
            if let Some(at) = c.at {
                match CursorStamp::from_xy(at.x(), at.y()) {
                    Some(stamp) => report.cursor_arrive(shared, schedule, stamp),
                    None => report.error("cursor without stamp"),
                }
            }
        }
        // The load generator points no laser and follows nobody.
        ServerMsg::Presence(_)
        | ServerMsg::Laser(_)
        | ServerMsg::Camera(_)
        | ServerMsg::AskToFollow(_) => {}
    }
}

/// What the floor relays is another client's frame, exactly as it was sent.
fn on_floor(
    msg: ClientMsg,
    report: &mut ClientReport,
    shared: &Shared,
    schedule: Option<Schedule>,
    node: usize,
) {
    match msg {
        ClientMsg::Op(Submit {
            op: Op::StrokePoints(batch),
            ..
        }) => match Stamp::read_points(batch.points.as_slice()) {
            Some(stamp) => report.arrive(shared, schedule, node, stamp),
            None => report.error("batch without stamp"),
        },
        ClientMsg::Points(more) => match Stamp::read_offsets(&more.points) {
            Some(stamp) => report.arrive(shared, schedule, node, stamp),
            None => report.error("batch without stamp"),
        },
        ClientMsg::Cursor(Some(at)) => match CursorStamp::from_xy(at.x(), at.y()) {
            Some(stamp) => report.cursor_arrive(shared, schedule, stamp),
            None => report.error("cursor without stamp"),
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socketio_cursor_events_carry_a_cursor_stamp() {
        let stamp = CursorStamp {
            sent_us: 123_456_789,
            mover: 42,
        };
        let (x, y) = stamp.to_xy().expect("in range");
        let event = engineio::json_event(CURSOR_EVENT, &serde_json::json!({ "x": x, "y": y }));
        let data = event.strip_prefix("42").expect("a Socket.IO event");
        assert_eq!(socketio_cursor(data), Some(stamp));
        assert_eq!(socketio_cursor(r#"["cursor",{"x":-1,"y":0}]"#), None);
        assert_eq!(socketio_cursor(r#"["cursor"]"#), None);
    }

    #[test]
    fn a_late_tick_is_followed_by_the_next_on_time() {
        let now = tokio::time::Instant::now();
        let period = Duration::from_millis(10);
        let end = now + Duration::from_secs(1);
        // Three periods late: the next tick is the first one still ahead, not a burst.
        let next = next_tick(now - period * 3, period, end).expect("before the end");
        assert!(next > now && next <= now + period);
        assert_eq!(next_tick(now, period, now + period / 2), None);
    }
}
