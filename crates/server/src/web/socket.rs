//! One WebSocket connection: checks before the upgrade, the Hello, then one `select!` loop
//! that moves frames between the socket and the room until one side ends it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use kokuban_protocol::limits::{MAX_CLIENT_FRAME_BYTES, MAX_SERVER_FRAME_BYTES};
use kokuban_protocol::{
    Capability, ClientMsg, DecodeError, ErrorCode, ErrorFrame, Hello, Member, MemberId,
    PROTOCOL_VERSION, RoomId, ServerMsg, Welcome, close, decode_client, encode_server,
};
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval_at, sleep, timeout};

use super::{ApiError, AppState, check_origin};
use crate::metrics::{Metrics, Rejection};
use crate::rate::{RateLimiter, Verdict};
use crate::sequencer::{
    JoinError, JoinRequest, KickReason, MemberLink, Membership, Outbox, WriteRefused,
};

/// tungstenite reads the socket in chunks of this size, and every connection keeps (and
/// zero-fills) a buffer of it for its whole life. Client frames are mostly point batches of
/// one animation frame, a few hundred bytes, so 512 bytes reads most in one syscall while an
/// idle connection pins 7.5 KiB less than with 8 KiB; a large frame simply takes more reads.
const READ_BUFFER_BYTES: usize = 512;
/// Outgoing bytes are flushed once this many are buffered (each batch is also flushed).
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// A hard cap on buffered outgoing bytes. Output waits in the member's bounded queue, not
/// here; the cap only has to admit the largest single frame (a Welcome with a big board).
const MAX_WRITE_BUFFER_BYTES: usize = MAX_SERVER_FRAME_BYTES + WRITE_BUFFER_BYTES;
/// Frames written before one flush: amortizes syscalls when a busy room bursts.
const WRITE_BATCH: usize = 64;
/// Malformed frames tolerated on one connection (each answered with an error frame) before it
/// is closed with 1007: a client with a bug gets told, a fuzzer gets cut off.
const MAX_MALFORMED: u32 = 16;
/// Control frames (pings, pongs) tolerated before the Hello. A browser sends none at all (it
/// only answers the server's pings, and none is sent before the Hello), so a handful is
/// generous; a ping flood in place of a Hello is closed with 1008 instead of being answered
/// until the Hello deadline.
const MAX_CONTROL_BEFORE_HELLO: u32 = 16;

/// A close code with its reason.
type Close = (u16, &'static str);

/// How a session ends.
#[derive(Debug)]
enum End {
    /// The peer went away or closed first.
    Gone,
    /// Close with this code, right away (shutdown, a member that cannot keep up).
    Close(Close),
    /// Close after sending what is already queued (the error frame that explains the close
    /// among it): the peer broke a rule, but it should hear why.
    Refuse(Close),
}

const FORBIDDEN: &str = "this room does not exist or the link is not valid";

/// `GET /ws/{room}`: refuses foreign origins, addresses over their upgrade rate and upgrades
/// during shutdown, then upgrades with explicit limits.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = check_origin(&state, &headers, "WebSocket") {
        return e.into_response();
    }
    if !state.upgrades.admit(peer.ip(), Instant::now()) {
        state
            .metrics
            .upgrades_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(%peer, "upgrade refused: over the per-address rate");
        return ApiError::TooManyRequests("too many connections from this address; retry shortly")
            .into_response();
    }
    if state.shutdown.is_cancelled() {
        return ApiError::Unavailable("the server is shutting down").into_response();
    }
    // Taken before the upgrade, so that shutdown also waits for sessions about to start.
    let tracked = state.sessions.token();
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(MAX_CLIENT_FRAME_BYTES)
        .max_frame_size(MAX_CLIENT_FRAME_BYTES)
        .on_failed_upgrade(|e| tracing::debug!("WebSocket upgrade failed: {e}"))
        .on_upgrade(move |socket| async move {
            let _tracked = tracked;
            let metrics = state.metrics.clone();
            let _open = OpenConnection::new(&metrics);
            // The Hello and the join run in a future of their own, freed once the member is
            // in: a task keeps the memory of its largest state for its whole life, and the
            // join's states are twice the size of the session's.
            let mut opened = None;
            Box::pin(run(state, room, socket, &mut opened)).await;
            if let Some(opened) = opened {
                opened.live().await;
            }
        })
}

/// Counts an open connection for as long as it lives.
struct OpenConnection<'a>(&'a Metrics);

impl<'a> OpenConnection<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics
            .connections_open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics
            .connections_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(metrics)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What the next message from the peer was, before a session exists.
enum Incoming {
    Frame(Bytes),
    Text,
    /// The WebSocket layer refused what arrived; close with this code.
    Broken(Rejection, Close),
    /// Pings or pongs instead of a Hello, more than [`MAX_CONTROL_BEFORE_HELLO`].
    ControlFlood,
    Gone,
}

struct Conn {
    state: AppState,
    sink: SplitSink<WebSocket, Message>,
    stream: SplitStream<WebSocket>,
}

impl Conn {
    /// The next data message, skipping (a few) control frames.
    async fn next_data(&mut self) -> Incoming {
        let mut control = 0;
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Binary(b))) => return Incoming::Frame(b),
                Some(Ok(Message::Text(_))) => return Incoming::Text,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    control += 1;
                    if control > MAX_CONTROL_BEFORE_HELLO {
                        return Incoming::ControlFlood;
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Incoming::Gone,
                Some(Err(e)) => {
                    return match classify(e) {
                        Some((why, close)) => Incoming::Broken(why, close),
                        None => Incoming::Gone,
                    };
                }
            }
        }
    }

    /// Sends one frame directly (before the member has a queue), giving up after `wait`.
    async fn send_now(&mut self, frame: Vec<u8>, wait: Duration) -> bool {
        self.state.metrics.frame_out(frame.len());
        let send = self.sink.send(Message::Binary(Bytes::from(frame)));
        matches!(timeout(wait, send).await, Ok(Ok(())))
    }

    async fn error_and_close(mut self, code: ErrorCode, message: &str, close: Close) {
        let frame = encode_server(&ServerMsg::Error(ErrorFrame::new(code, message)));
        if self.send_now(frame, self.state.config.close_timeout).await {
            self.close(close).await;
        }
    }

    /// The closing handshake, bounded in time: a peer that does not read cannot hold the
    /// session open.
    async fn close(mut self, (code, reason): Close) {
        let wait = self.state.config.close_timeout;
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        if matches!(timeout(wait, self.sink.send(frame)).await, Ok(Ok(()))) {
            let _ = timeout(wait, async {
                while let Some(Ok(m)) = self.stream.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

/// What to answer a read error with: a message or frame over the size limit (1009; the
/// limit is checked on the frame header, before its payload is buffered), a frame that breaks
/// RFC 6455 (1002), a text frame that is not UTF-8 (1007); `None` for a connection that
/// simply went away, which has nobody left to tell.
fn classify(e: axum::Error) -> Option<(Rejection, Close)> {
    use tungstenite::error::ProtocolError as P;
    let e = e.into_inner().downcast::<tungstenite::Error>().ok()?;
    match *e {
        tungstenite::Error::Capacity(_) => {
            Some((Rejection::TooLarge, (close::TOO_BIG, "message too large")))
        }
        tungstenite::Error::Protocol(
            P::ResetWithoutClosingHandshake | P::ReceivedAfterClosing | P::SendAfterClosing,
        ) => None,
        tungstenite::Error::Protocol(p) => {
            tracing::debug!("WebSocket protocol error: {p}");
            Some((
                Rejection::Protocol,
                (close::PROTOCOL_ERROR, "protocol error"),
            ))
        }
        tungstenite::Error::Utf8(_) => Some((
            Rejection::Text,
            (close::INVALID_PAYLOAD, "text frame is not UTF-8"),
        )),
        _ => None,
    }
}

/// Reads the Hello and joins the room; a member that got in is left in `opened`.
async fn run(state: AppState, url_room: String, socket: WebSocket, opened: &mut Option<Opened>) {
    let metrics = state.metrics.clone();
    let (sink, stream) = socket.split();
    let mut conn = Conn {
        state,
        sink,
        stream,
    };

    let hello_timeout = conn.state.config.hello_timeout;
    let shutdown = conn.state.shutdown.clone();
    let first = tokio::select! {
        first = timeout(hello_timeout, conn.next_data()) => first,
        _ = shutdown.cancelled() => return conn.close((close::GOING_AWAY, "server shutting down")).await,
    };
    let hello = match first {
        Err(_) => return conn.close((close::POLICY, "no Hello in time")).await,
        Ok(Incoming::Gone) => return,
        Ok(Incoming::Broken(why, close)) => {
            metrics.reject(why);
            return conn.close(close).await;
        }
        Ok(Incoming::ControlFlood) => {
            metrics.reject(Rejection::PingFlood);
            return conn
                .close((close::POLICY, "control frames instead of a Hello"))
                .await;
        }
        Ok(Incoming::Text) => {
            metrics.reject(Rejection::Text);
            return conn
                .error_and_close(
                    ErrorCode::Malformed,
                    "binary frames only",
                    (close::UNSUPPORTED_DATA, "binary frames only"),
                )
                .await;
        }
        Ok(Incoming::Frame(bytes)) => {
            metrics.frame_in(bytes.len());
            match decode_client(&bytes) {
                Ok(ClientMsg::Hello(hello)) => hello,
                Ok(_) => {
                    metrics.reject(Rejection::Unexpected);
                    return conn
                        .error_and_close(
                            ErrorCode::UnexpectedMessage,
                            "the first message must be Hello",
                            (close::POLICY, "expected Hello"),
                        )
                        .await;
                }
                Err(e) => {
                    metrics.reject(Rejection::of_decode(&e));
                    let (code, close) = decode_failure(&e);
                    return conn.error_and_close(code, &e.to_string(), close).await;
                }
            }
        }
    };
    join(conn, url_room, hello, opened).await;
}

/// The error code and close for a frame that did not decode, when the connection cannot go on.
fn decode_failure(e: &DecodeError) -> (ErrorCode, Close) {
    match e {
        DecodeError::Version { .. } => (
            ErrorCode::VersionMismatch,
            (
                close::VERSION_MISMATCH,
                "protocol version mismatch; reload the app",
            ),
        ),
        DecodeError::TooLarge { .. } => {
            (ErrorCode::Malformed, (close::TOO_BIG, "message too large"))
        }
        _ => (
            ErrorCode::Malformed,
            (close::INVALID_PAYLOAD, "malformed frame"),
        ),
    }
}

async fn join(conn: Conn, url_room: String, hello: Hello, opened: &mut Option<Opened>) {
    let state = conn.state.clone();
    let metrics = &state.metrics;
    // A malformed id, a Hello for another room, a wrong token and a room nobody created all
    // get the same answer, so none of them tells an outsider anything.
    let room = RoomId::new(url_room).ok().filter(|r| *r == hello.room);
    let capability = room
        .as_ref()
        .and_then(|r| state.capabilities.check(r, &hello.token));
    let (Some(room), Some(capability)) = (room, capability) else {
        metrics.reject(Rejection::Forbidden);
        return conn
            .error_and_close(
                ErrorCode::Forbidden,
                FORBIDDEN,
                (close::POLICY, "forbidden"),
            )
            .await;
    };
    let me = Member {
        id: MemberId(rand::random()),
        name: hello.name,
        color: hello.color,
        capability,
    };
    let (link, outbox) = MemberLink::channel(state.config.member_queue_frames);
    let request = JoinRequest {
        room: room.clone(),
        member: me.clone(),
        resume: hello.resume,
        link: link.clone(),
    };
    let refusal = |rejection: Rejection, code: ErrorCode, message: &'static str, close: Close| {
        metrics.reject(rejection);
        (code, message, close)
    };
    let joined = match state.sequencer.join(request).await {
        Ok(joined) => joined,
        Err(e @ (JoinError::NotFound | JoinError::RoomFull | JoinError::Overloaded)) => {
            let (code, message, close) = match e {
                JoinError::RoomFull => refusal(
                    Rejection::RoomFull,
                    ErrorCode::RoomFull,
                    "this room has as many members as it may; try again later",
                    (close::TRY_AGAIN_LATER, "room full"),
                ),
                JoinError::Overloaded => refusal(
                    Rejection::Overloaded,
                    ErrorCode::Overloaded,
                    "the server holds as many rooms as it may; try again later",
                    (close::TRY_AGAIN_LATER, "server at capacity"),
                ),
                _ => refusal(
                    Rejection::Forbidden,
                    ErrorCode::Forbidden,
                    FORBIDDEN,
                    (close::POLICY, "forbidden"),
                ),
            };
            return conn.error_and_close(code, message, close).await;
        }
        Err(JoinError::ShuttingDown) => {
            return conn
                .close((close::GOING_AWAY, "server shutting down"))
                .await;
        }
        Err(JoinError::Unavailable(detail)) => {
            tracing::error!(%room, "join failed: {detail}");
            return conn
                .error_and_close(
                    ErrorCode::Internal,
                    "the room could not be opened",
                    (close::INTERNAL, "internal error"),
                )
                .await;
        }
    };
    tracing::debug!(%room, member = %me.id, ?capability, "member joined");
    let welcome = ServerMsg::Welcome(Welcome {
        member: me.id,
        capability,
        epoch: joined.epoch,
        state: joined.state,
        members: joined.members.into(),
    });
    let mut conn = conn;
    // The Welcome goes out before anything in the queue: the queue holds what followed it.
    // A big board on a slow link takes a while: allow as long as any other silence.
    if !conn
        .send_now(encode_server(&welcome), state.config.idle_timeout)
        .await
    {
        return;
    }
    let config = &state.config;
    let session = Session {
        limiter: RateLimiter::new(
            config.rate_per_sec,
            config.rate_burst,
            config.abuse_limit,
            config.abuse_window,
            Instant::now(),
        ),
        conn,
        membership: joined.membership,
        link,
        outbox,
        capability,
        malformed: 0,
        last_seen: Instant::now(),
    };
    *opened = Some(Opened {
        session,
        room,
        member: me.id,
    });
}

/// A member that joined: its session, and who it is for the logs.
struct Opened {
    session: Session,
    room: RoomId,
    member: MemberId,
}

impl Opened {
    /// Runs the session to its end, then closes the connection as that end requires.
    async fn live(self) {
        let Opened {
            mut session,
            room,
            member,
        } = self;
        let state = session.conn.state.clone();
        let end = session.run().await;
        session.end(end, &state, &room, member).await;
    }
}

impl Session {
    async fn end(self, end: End, state: &AppState, room: &RoomId, member: MemberId) {
        let Session {
            mut conn,
            membership,
            mut outbox,
            ..
        } = self;
        // Leave presence at once, not after the closing handshake.
        drop(membership);
        tracing::debug!(%room, %member, ?end, "member left");
        match end {
            End::Gone => {}
            End::Close(close) => conn.close(close).await,
            End::Refuse(close) => {
                outbox.frames.close();
                let mut pending = Vec::new();
                while let Ok(frame) = outbox.frames.try_recv() {
                    pending.push(frame);
                }
                let wait = state.config.close_timeout;
                let flushed = timeout(wait, async {
                    for frame in pending {
                        conn.state.metrics.frame_out(frame.len());
                        conn.sink.feed(Message::Binary(frame)).await?;
                    }
                    conn.sink.flush().await
                })
                .await;
                if matches!(flushed, Ok(Ok(()))) {
                    conn.close(close).await;
                }
            }
        }
    }
}

struct Session {
    conn: Conn,
    membership: Box<dyn Membership>,
    /// The member's own queue: error frames go through it, so that they keep their order
    /// relative to the Acks of earlier ops.
    link: MemberLink,
    outbox: Outbox,
    capability: Capability,
    limiter: RateLimiter,
    malformed: u32,
    last_seen: Instant,
}

impl Session {
    /// Runs until the connection should end.
    async fn run(&mut self) -> End {
        let config = self.conn.state.config.clone();
        let mut heartbeat = interval_at(
            (Instant::now() + config.ping_interval).into(),
            config.ping_interval,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Both signals are waited on by one future each for the whole session: creating them
        // per loop turn would lock and unlink a waiter list twice per delivered frame.
        let shutdown = self.conn.state.shutdown.clone();
        let stopping = shutdown.cancelled();
        tokio::pin!(stopping);
        let kicked = self.outbox.kicked.clone();
        let kick = kicked.wait();
        tokio::pin!(kick);
        loop {
            tokio::select! {
                _ = &mut stopping => {
                    return End::Close((close::GOING_AWAY, "server shutting down"));
                }
                reason = &mut kick => return End::Close(kick_close(reason)),
                frame = self.outbox.frames.recv() => {
                    // The session holds a sender itself, so the queue never closes.
                    let Some(frame) = frame else { return End::Gone };
                    let write = write_frames(
                        &mut self.conn.sink,
                        &mut self.outbox.frames,
                        frame,
                        &self.conn.state.metrics,
                    );
                    // A peer that stops reading blocks the write; it must not block shutdown,
                    // and a peer that reads nothing for the idle timeout is gone.
                    // Biased, the write first: it nearly always completes at once, and then
                    // the idle timer is never polled, so no timer is registered per write.
                    tokio::select! {
                        biased;
                        written = write => if written.is_err() { return End::Gone },
                        _ = &mut stopping => {
                            return End::Close((close::GOING_AWAY, "server shutting down"));
                        }
                        reason = &mut kick => return End::Close(kick_close(reason)),
                        _ = sleep(config.idle_timeout) => {
                            self.conn.state.metrics.slow_consumer_disconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            return End::Close((close::SLOW_CONSUMER, "not reading"));
                        }
                    }
                }
                message = self.conn.stream.next() => {
                    let message = match message {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            return match classify(e) {
                                Some((why, close)) => {
                                    self.conn.state.metrics.reject(why);
                                    End::Close(close)
                                }
                                None => End::Gone,
                            };
                        }
                        None => return End::Gone,
                    };
                    self.last_seen = Instant::now();
                    match message {
                        Message::Binary(data) => {
                            if let Some(close) = self.on_frame(data) {
                                return End::Refuse(close);
                            }
                        }
                        Message::Text(_) => {
                            self.conn.state.metrics.reject(Rejection::Text);
                            self.reply(ErrorCode::Malformed, "binary frames only");
                            return End::Refuse((close::UNSUPPORTED_DATA, "binary frames only"));
                        }
                        // tungstenite has queued the pong already (one at most: a newer ping's
                        // replaces it). Control frames draw on the same bucket as data, so a
                        // ping flood is closed like any other flood; a browser sends none
                        // but its answers to our pings.
                        Message::Ping(_) | Message::Pong(_) => {
                            if self.limiter.check(Instant::now()) == Verdict::Close {
                                self.conn.state.metrics.reject(Rejection::PingFlood);
                                return End::Close((close::POLICY, "too many control frames"));
                            }
                        }
                        // tungstenite answers the close itself.
                        Message::Close(_) => return End::Gone,
                    }
                }
                _ = heartbeat.tick() => {
                    if self.last_seen.elapsed() >= config.idle_timeout {
                        self.conn.state.metrics.idle_timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return End::Close((close::IDLE_TIMEOUT, "no sign of life"));
                    }
                    let ping = self.conn.sink.send(Message::Ping(Bytes::new()));
                    if !matches!(timeout(config.close_timeout, ping).await, Ok(Ok(()))) {
                        return End::Gone;
                    }
                }
            }
        }
    }

    /// Handles one binary frame; `Some` closes the connection.
    fn on_frame(&mut self, data: Bytes) -> Option<Close> {
        let metrics = self.conn.state.metrics.clone();
        metrics.frame_in(data.len());
        match self.limiter.check(Instant::now()) {
            Verdict::Pass => {}
            Verdict::Drop { notify } => {
                metrics
                    .rate_limit_hits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if notify {
                    self.reply(ErrorCode::RateLimited, "too many frames; slow down");
                }
                return None;
            }
            Verdict::Close => {
                metrics
                    .rate_limit_closes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Some((close::POLICY, "rate limit exceeded"));
            }
        }
        let msg = match decode_client(&data) {
            Ok(msg) => msg,
            Err(e) => {
                metrics.reject(Rejection::of_decode(&e));
                if matches!(e, DecodeError::Version { .. }) {
                    self.reply(
                        ErrorCode::VersionMismatch,
                        &format!("this server speaks protocol version {PROTOCOL_VERSION}"),
                    );
                    return Some((
                        close::VERSION_MISMATCH,
                        "protocol version mismatch; reload the app",
                    ));
                }
                // The message boundary is intact (the WebSocket framed it), so the connection
                // can go on: drop the frame and say why.
                self.reply(ErrorCode::Malformed, &e.to_string());
                self.malformed += 1;
                if self.malformed > MAX_MALFORMED {
                    return Some((close::INVALID_PAYLOAD, "too many malformed frames"));
                }
                return None;
            }
        };
        match msg {
            ClientMsg::Hello(_) => {
                metrics.reject(Rejection::Unexpected);
                self.reply(ErrorCode::UnexpectedMessage, "already joined");
            }
            ClientMsg::Op(op) => {
                if self.capability != Capability::Edit {
                    metrics.reject(Rejection::ViewOnly);
                    self.reply(ErrorCode::ViewOnly, "this link can only view the board");
                    return None;
                }
                match self.membership.submit(op) {
                    Ok(()) | Err(WriteRefused::Gone) => {}
                    Err(WriteRefused::Invalid(why)) => {
                        metrics.reject(Rejection::InvalidOp);
                        self.reply(ErrorCode::InvalidOp, &why.to_string());
                    }
                    Err(WriteRefused::ReadOnly) => {
                        metrics.reject(Rejection::ReadOnly);
                        self.reply(
                            ErrorCode::TemporarilyReadOnly,
                            "the board cannot be saved right now; try again shortly",
                        );
                    }
                }
            }
            ClientMsg::Cursor(at) => self.membership.cursor(at),
            ClientMsg::Profile(p) => self.membership.update_profile(p.name, p.color),
        }
        None
    }

    /// Queues an error frame behind everything already queued for this member.
    fn reply(&self, code: ErrorCode, message: &str) {
        let frame = Bytes::from(encode_server(&ServerMsg::Error(ErrorFrame::new(
            code, message,
        ))));
        if self.link.send(frame).is_err() {
            self.link.kick(KickReason::SlowConsumer);
        }
    }
}

fn kick_close(reason: KickReason) -> Close {
    match reason {
        KickReason::SlowConsumer => (close::SLOW_CONSUMER, "too slow: reconnect and resume"),
        KickReason::Resume => (close::RESUME, "reconnect and resume"),
    }
}

/// Writes `first` and whatever else is queued (up to a batch), then flushes once.
async fn write_frames(
    sink: &mut SplitSink<WebSocket, Message>,
    queue: &mut mpsc::Receiver<Bytes>,
    first: Bytes,
    metrics: &Metrics,
) -> Result<(), axum::Error> {
    let mut next = Some(first);
    let mut written = 0;
    while let Some(frame) = next {
        metrics.frame_out(frame.len());
        sink.feed(Message::Binary(frame)).await?;
        written += 1;
        next = if written < WRITE_BATCH {
            queue.try_recv().ok()
        } else {
            None
        };
    }
    sink.flush().await
}
