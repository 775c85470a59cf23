//! The benchmark clients: one speaks Kokuban's protocol, one Socket.IO over a websocket, and
//! one the floor's (Kokuban's client frames, relayed back unchanged). All play the same part:
//! join a room, and either draw (an editor sending a stamped batch at a fixed rate) or watch,
//! recording every batch that arrives; in the presence scenario every client also moves its
//! cursor at a fixed rate and records the cursor updates of the others.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use kokuban_protocol::{
    ClientKey, ClientMsg, Color, Cursor, Hello, Name, RoomId, RoomState, Token, decode_client,
    decode_server, encode_client,
};
use rand::Rng;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::engineio::{self, EnginePacket, SocketKind};
use crate::http::RoomLinks;
use crate::net::{Ws, ws_connect};
use crate::stamp::{CursorStamp, Stamp};
use crate::stats::SeqCheck;

mod arrivals;
mod pen;
mod record;

use arrivals::{on_floor, on_kokuban, socketio_cursor};
use pen::Pen;
pub use record::{ClientReport, CursorSeen, Hists, Shared};

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
