//! A connection before its session and under it: reading the Hello (or what came instead),
//! sending frames directly, in fragments when they are large, and the bounded closing
//! handshake.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use kokuban_protocol::limits::MAX_CLIENT_FRAME_BYTES;
use tokio::time::timeout;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};

use super::AppState;
use super::refusal::{Close, Refusal};
use super::socket::classify;
use super::upgrade::Socket;
use crate::metrics::Rejection;

/// A message larger than this (a board's part, a Welcome with a large board) goes out as
/// WebSocket fragments of at most this many bytes, sliced from the shared encoding: the
/// WebSocket layer copies what it writes into the connection's buffer, which keeps its size
/// for the connection's life, so a joiner pins one fragment there, not a board.
const FRAGMENT_BYTES: usize = 16 * 1024;

/// Bytes read and dropped after a close that a read error decided ([`Conn::close`]): what a
/// client had in flight when it was closed. A peer still sending beyond that is flooding, and
/// is reset.
const MAX_DRAIN_BYTES: usize = 4 * MAX_CLIENT_FRAME_BYTES;

/// Control frames (pings, pongs) tolerated before the Hello. A browser sends none at all (it
/// only answers the server's pings, and none is sent before the Hello), so a handful is
/// generous; a ping flood in place of a Hello is closed with 1008 instead of being answered
/// until the Hello deadline.
const MAX_CONTROL_BEFORE_HELLO: u32 = 16;

/// What the next message from the peer was, before a session exists.
pub(super) enum Incoming {
    Frame(Bytes),
    Text,
    /// The WebSocket layer refused what arrived; close with this code.
    Broken(Rejection, Close),
    /// Pings or pongs instead of a Hello, more than [`MAX_CONTROL_BEFORE_HELLO`].
    ControlFlood,
    Gone,
}

/// A connection before and during its session.
pub(super) struct Conn {
    pub state: AppState,
    pub sink: SplitSink<Socket, Message>,
    pub stream: SplitStream<Socket>,
}

impl Conn {
    /// The next data message, skipping (a few) control frames.
    pub async fn next_data(&mut self) -> Incoming {
        let mut control = 0;
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Binary(b))) => return Incoming::Frame(b),
                Some(Ok(Message::Text(_))) => return Incoming::Text,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
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
    pub async fn send_now(&mut self, frame: Vec<u8>, wait: Duration) -> bool {
        self.send_bytes(Bytes::from(frame), wait).await
    }

    /// Sends one frame, shared with other connections, directly; gives up after `wait`, or
    /// when the node closes (a Welcome to a peer that reads nothing must not hold a shutdown).
    pub async fn send_bytes(&mut self, frame: Bytes, wait: Duration) -> bool {
        self.state.metrics.frame_out(frame.len());
        let send = self.sink.send(Message::Binary(frame));
        tokio::select! {
            sent = timeout(wait, send) => matches!(sent, Ok(Ok(()))),
            () = self.state.closing.cancelled() => false,
        }
    }

    /// Sends one message made of `pieces` in order (some shared with other connections), in
    /// fragments when it is large (see [`FRAGMENT_BYTES`]); gives up when one fragment takes
    /// longer than `wait`, or when the node closes.
    pub async fn send_pieces(&mut self, pieces: &[Bytes], wait: Duration) -> bool {
        let len = pieces.iter().map(Bytes::len).sum();
        if len <= FRAGMENT_BYTES {
            return self.send_bytes(Bytes::from(pieces.concat()), wait).await;
        }
        self.state.metrics.frame_out(len);
        let fragments = fragments(pieces, FRAGMENT_BYTES);
        let last = fragments.len() - 1;
        for (i, fragment) in fragments.into_iter().enumerate() {
            let opcode = OpCode::Data(if i == 0 { Data::Binary } else { Data::Continue });
            let frame = Message::Frame(Frame::message(fragment, opcode, i == last));
            let send = self.sink.send(frame);
            let sent = tokio::select! {
                sent = timeout(wait, send) => matches!(sent, Ok(Ok(()))),
                () = self.state.closing.cancelled() => false,
            };
            if !sent {
                return false;
            }
        }
        true
    }

    /// Tells the peer why it is refused, then closes (before a session exists).
    pub async fn refuse(mut self, refusal: &Refusal) {
        if let Some(why) = refusal.rejection() {
            self.state.metrics.reject(why);
        }
        let frame = refusal.frame().to_vec();
        if self.send_now(frame, self.state.config.close_timeout).await {
            self.close(refusal.close()).await;
        }
    }

    /// The closing handshake, bounded in time: a peer that does not read cannot hold the
    /// session open.
    pub async fn close(mut self, (code, reason): Close) {
        let wait = self.state.config.close_timeout;
        let frame = Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }));
        if !matches!(timeout(wait, self.sink.send(frame)).await, Ok(Ok(()))) {
            return;
        }
        let Conn {
            sink, mut stream, ..
        } = self;
        let _ = timeout(wait, async move {
            while let Some(m) = stream.next().await {
                if matches!(m, Ok(Message::Close(_))) {
                    return;
                }
            }
            // tungstenite stopped reading at an error (a refused frame, or the meter's
            // refusal) while the peer may still be sending. Closing a socket with unread bytes
            // resets it, and the reset can destroy the close frame before the peer reads it:
            // read and drop what follows, so that the peer learns why it was closed.
            if let Ok(mut socket) = stream.reunite(sink) {
                socket.get_mut().drain(MAX_DRAIN_BYTES).await;
            }
        })
        .await;
    }
}

/// `pieces`, one after the other, cut into slices of at most `max` bytes (none empty), without
/// copying them.
fn fragments(pieces: &[Bytes], max: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    for piece in pieces {
        let mut at = 0;
        while at < piece.len() {
            let end = piece.len().min(at + max);
            out.push(piece.slice(at..end));
            at = end;
        }
    }
    if out.is_empty() {
        out.push(Bytes::new());
    }
    out
}
