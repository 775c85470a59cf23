//! One WebSocket connection: checks before the upgrade, then (after the Hello, see
//! [`hello`](super::hello)) one `select!` loop that moves frames between the socket and the
//! room until one side ends it.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use kokuban_protocol::limits::{MAX_CLIENT_FRAME_BYTES, MAX_SERVER_FRAME_BYTES};
use kokuban_protocol::{
    Capability, ClientMsg, Color, DecodeError, Handles, MemberId, Name, RoomId, Submit, close,
};
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval_at, sleep, timeout};
use tungstenite::Message;
use tungstenite::protocol::WebSocketConfig;

use super::conn::Conn;
use super::hello::{self, Opened};
use super::inbound::{Budget, Refused};
use super::refusal::{Close, Refusal};
use super::upgrade::{self, Socket};
use super::{ApiError, AppState, check_origin};
use crate::metrics::{Metrics, Rejection};
use crate::rate::{RateLimiter, Verdict};
use crate::sequencer::{
    KickReason, LinkWatch, MemberLink, Membership, Outbox, Outgoing, WriteRefused,
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

/// How a session ends.
#[derive(Debug)]
pub(super) enum End {
    /// The peer went away or closed first.
    Gone,
    /// Close with this code, right away (shutdown, a member that cannot keep up).
    Close(Close),
    /// Close after sending what is already queued (the error frame that explains the close
    /// among it): the peer broke a rule, but it should hear why.
    Refuse(Close),
}

/// `GET /ws/{room}`: refuses handshakes that are not WebSocket version 13, foreign origins,
/// addresses over their upgrade rate and upgrades during shutdown, then upgrades with explicit
/// limits and the connection's inbound budget.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    mut request: Request,
) -> Response {
    let (response, handover) = match upgrade::accept(&mut request) {
        Ok(accepted) => accepted,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = check_origin(&state, request.headers(), "WebSocket") {
        return e.into_response();
    }
    if !state
        .upgrades
        .admit(state.client_ip(peer, request.headers()), Instant::now())
    {
        state
            .metrics
            .upgrades_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(%peer, "upgrade refused: over the per-address rate");
        return ApiError::TooManyRequests(
            "too many connections from this address; retry shortly",
            1,
        )
        .into_response();
    }
    if state.shutdown.is_cancelled() {
        return ApiError::Unavailable("the server is shutting down").into_response();
    }
    // Taken before the upgrade, so that shutdown also waits for sessions about to start.
    let tracked = state.sessions.token();
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(Some(MAX_CLIENT_FRAME_BYTES))
        .max_frame_size(Some(MAX_CLIENT_FRAME_BYTES));
    let budget = Budget::of(&state.config);
    tokio::spawn(async move {
        let _tracked = tracked;
        let Some(socket) = handover.socket(config, budget).await else {
            return;
        };
        let metrics = state.metrics.clone();
        let _open = OpenConnection::new(&metrics);
        // The Hello and the join run in a future of their own, freed once the member is
        // in: a task keeps the memory of its largest state for its whole life, and the
        // join's states are twice the size of the session's.
        let mut opened: Option<Opened> = None;
        Box::pin(hello::run(state, room, socket, &mut opened)).await;
        Opened::live(&mut opened).await;
    });
    response
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

/// What to answer a read error with: a message or frame over the size limit (1009; the
/// limit is checked on the frame header, before its payload is buffered), a frame that breaks
/// RFC 6455 (1002), a text frame that is not UTF-8 (1007), a connection over its inbound
/// budget or slow to finish a message (1008); `None` for a connection that simply went away,
/// which has nobody left to tell.
pub(super) fn classify(e: tungstenite::Error) -> Option<(Rejection, Close)> {
    use tungstenite::error::ProtocolError as P;
    match e {
        tungstenite::Error::Io(e) => match Refused::of(&e)? {
            Refused::OverBudget => Some((
                Rejection::OverBudget,
                (close::POLICY, "inbound budget exceeded"),
            )),
            Refused::Late => Some((
                Rejection::Late,
                (close::POLICY, "message not completed in time"),
            )),
        },
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

impl Session {
    /// A session for a member that joined.
    pub fn new(
        conn: Conn,
        membership: Box<dyn Membership>,
        (link, outbox): (MemberLink, Outbox),
        capability: Capability,
        (links, generation): (LinkWatch, u64),
        limiter: RateLimiter,
    ) -> Self {
        Self {
            conn,
            membership,
            link,
            outbox,
            capability,
            links,
            generation,
            limiter,
            handles: Handles::new(),
            malformed: 0,
            last_seen: Instant::now(),
            profile: None,
            profile_due: Instant::now(),
            // Not 0: an unsolicited pong of zeros must not pass for the answer to a ping
            // that was never sent.
            ping: rand::random(),
        }
    }

    /// Leaves the room, then closes the connection as `end` requires.
    pub async fn end(self, end: End, room: &RoomId, member: MemberId) {
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
                outbox.queue.close();
                let mut pending = Vec::new();
                while let Ok(entry) = outbox.queue.try_recv() {
                    pending.push(entry);
                }
                let wait = conn.state.config.close_timeout;
                let flushed = timeout(wait, async {
                    for entry in pending {
                        let frame = encoded(entry);
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

/// A member's connection while it is in the room.
pub(super) struct Session {
    conn: Conn,
    membership: Box<dyn Membership>,
    /// The member's own queue: error frames go through it, so that they keep their order
    /// relative to the Acks of earlier ops.
    link: MemberLink,
    outbox: Outbox,
    capability: Capability,
    /// Resets of the room's links, and the generation of the link this member joined with.
    links: LinkWatch,
    generation: u64,
    limiter: RateLimiter,
    /// What this connection carried that its point batches by handle refer to.
    handles: Handles,
    malformed: u32,
    /// When the peer last showed it is alive: a data message, or the answer to our latest
    /// ping. Control frames of its own choosing (its pings, unsolicited pongs) and empty
    /// fragments cost nothing to send, so they prove nothing.
    last_seen: Instant,
    /// A name or colour change waiting for [`Session::profile_due`].
    profile: Option<(Name, Color)>,
    /// When the next change may reach the room ([`crate::Config::profile_interval`]).
    profile_due: Instant,
    /// The payload of the latest ping sent (a counter).
    ping: u64,
}

impl Session {
    /// Runs until the connection should end.
    pub async fn run(&mut self) -> End {
        let config = self.conn.state.config.clone();
        let mut heartbeat = interval_at(
            (Instant::now() + config.ping_interval).into(),
            config.ping_interval,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Both signals are waited on by one future each for the whole session: creating them
        // per loop turn would lock and unlink a waiter list twice per delivered frame.
        let closing = self.conn.state.closing.clone();
        let stopping = closing.cancelled();
        tokio::pin!(stopping);
        let kicked = self.outbox.kicked.clone();
        let kick = kicked.wait();
        tokio::pin!(kick);
        let revoked = self.links.reset_after(self.generation);
        tokio::pin!(revoked);
        loop {
            tokio::select! {
                _ = &mut stopping => {
                    return End::Close((close::GOING_AWAY, "server shutting down"));
                }
                reason = &mut kick => return End::Close(kick_close(reason)),
                () = &mut revoked => {
                    return End::Close((close::LINKS_RESET, "this link was reset"));
                }
                entry = self.outbox.queue.recv() => {
                    // The session holds a sender itself, so the queue never closes.
                    let Some(entry) = entry else { return End::Gone };
                    let write = write_frames(
                        &mut self.conn.sink,
                        &mut self.outbox.queue,
                        entry,
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
                    match message {
                        Message::Binary(data) => {
                            self.last_seen = Instant::now();
                            if let Some(close) = self.on_frame(data) {
                                return End::Refuse(close);
                            }
                        }
                        Message::Text(_) => {
                            self.last_seen = Instant::now();
                            self.refuse(Refusal::Text);
                            return End::Refuse(Refusal::Text.close());
                        }
                        // tungstenite has queued the pong already (one at most: a newer ping's
                        // replaces it). Control frames draw on the same bucket as data, so a
                        // ping flood is closed like any other flood; a browser sends none
                        // but its answers to our pings.
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                            if let Message::Pong(payload) = &message
                                && payload[..] == self.ping.to_be_bytes()
                            {
                                self.last_seen = Instant::now();
                            }
                            if self.limiter.check(Instant::now()) == Verdict::Close {
                                self.conn.state.metrics.reject(Rejection::PingFlood);
                                return End::Close((close::POLICY, "too many control frames"));
                            }
                        }
                        // tungstenite answers the close itself.
                        Message::Close(_) => return End::Gone,
                    }
                }
                () = tokio::time::sleep_until(self.profile_due.into()), if self.profile.is_some() => {
                    self.change_profile();
                }
                _ = heartbeat.tick() => {
                    if self.last_seen.elapsed() >= config.idle_timeout {
                        self.conn.state.metrics.idle_timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return End::Close((close::IDLE_TIMEOUT, "no sign of life"));
                    }
                    self.ping = self.ping.wrapping_add(1);
                    let payload = Bytes::copy_from_slice(&self.ping.to_be_bytes());
                    let ping = self.conn.sink.send(Message::Ping(payload));
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
                    self.refuse(Refusal::RateLimited);
                }
                // Dropped, but read: later batches may name a stroke it began.
                if let Err(e @ DecodeError::Handle(_)) = self.handles.decode(&data) {
                    let refusal = Refusal::Decode(e);
                    self.refuse(refusal.clone());
                    return Some(refusal.close());
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
        let msg = match self.handles.decode(&data) {
            Ok(msg) => msg,
            Err(e) => {
                let refusal = Refusal::Decode(e);
                self.refuse(refusal.clone());
                if refusal.ends_session() {
                    return Some(refusal.close());
                }
                // The message boundary is intact (the WebSocket framed it), so the connection
                // can go on: the frame is dropped and the client told why.
                self.malformed += 1;
                if self.malformed > MAX_MALFORMED {
                    return Some((close::INVALID_PAYLOAD, "too many malformed frames"));
                }
                return None;
            }
        };
        match msg {
            ClientMsg::Hello(_) => self.refuse(Refusal::AlreadyJoined),
            ClientMsg::Op(_) if self.capability != Capability::Edit => {
                self.refuse(Refusal::ViewOnly)
            }
            ClientMsg::Op(Submit { n, op }) => match self.membership.submit(n, op) {
                // Dropped from the room meanwhile: the kick ends the session.
                Ok(()) | Err(WriteRefused::Gone) => {}
                Err(why) => self.refuse(Refusal::Write(why)),
            },
            ClientMsg::Cursor(at) => self.membership.cursor(at),
            ClientMsg::Laser(at) => self.membership.laser(at),
            ClientMsg::Camera(c) => self.membership.camera(c),
            ClientMsg::AskToFollow => self.membership.ask_to_follow(),
            ClientMsg::Profile(p) => {
                self.profile = Some((p.name, p.color));
                if Instant::now() >= self.profile_due {
                    self.change_profile();
                }
            }
            // Never here: the handles give every batch in full.
            ClientMsg::Points(_) => {}
        }
        None
    }

    /// Passes the waiting name or colour change to the room, and starts the interval before
    /// the next. Changes in between replace each other: the room hears the last.
    fn change_profile(&mut self) {
        if let Some((name, color)) = self.profile.take() {
            self.membership.update_profile(name, color);
            self.profile_due = Instant::now() + self.conn.state.config.profile_interval;
        }
    }

    /// Counts a refusal and queues its error frame behind everything already queued for this
    /// member, so that it keeps its place among the answers to earlier ops.
    fn refuse(&self, refusal: Refusal) {
        if let Some(why) = refusal.rejection() {
            self.conn.state.metrics.reject(why);
        }
        if self.link.send(refusal.frame()).is_err() {
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

/// The bytes of a queue entry: a refusal the room queued becomes its error frame here, where
/// every refusal is worded.
fn encoded(entry: Outgoing) -> Bytes {
    match entry {
        Outgoing::Frame(frame) => frame,
        Outgoing::Refused(why) => Refusal::Write(why).frame(),
    }
}

/// Writes `first` and whatever else is queued (up to a batch), then flushes once.
async fn write_frames(
    sink: &mut SplitSink<Socket, Message>,
    queue: &mut mpsc::Receiver<Outgoing>,
    first: Outgoing,
    metrics: &Metrics,
) -> Result<(), tungstenite::Error> {
    let mut next = Some(first);
    let mut written = 0;
    while let Some(entry) = next {
        let frame = encoded(entry);
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
