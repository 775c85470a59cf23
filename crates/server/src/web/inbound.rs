//! What a client sends, metered on its way to tungstenite: the frame headers are parsed from
//! the bytes as they are read (payloads are skipped by count, never copied), so that a
//! connection keeps to a budget of frames and bytes per second, and a message it begins is
//! finished in time. tungstenite alone would hold an unfinished message for as long as the
//! peer likes, and control frames in between would keep the connection looking alive.
//!
//! The meter stops a connection by failing its reads with a [`Refused`] error, which reaches
//! the session through tungstenite as an I/O error; the session closes with 1008.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::rate::TokenBucket;

/// What one connection may send (see the `inbound_*` fields of [`crate::Config`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub frames_per_sec: u32,
    pub frame_burst: u32,
    pub bytes_per_sec: u32,
    pub byte_burst: u32,
    /// A data message begun must be complete this long after its first byte arrived.
    pub message_deadline: Duration,
}

impl Budget {
    /// The budget a node's configuration sets.
    pub fn of(config: &crate::Config) -> Self {
        Self {
            frames_per_sec: config.inbound_frames_per_sec,
            frame_burst: config.inbound_frame_burst,
            bytes_per_sec: config.inbound_bytes_per_sec,
            byte_burst: config.inbound_byte_burst,
            message_deadline: config.message_deadline,
        }
    }
}

/// Why the meter stopped a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("inbound budget exceeded")]
    OverBudget,
    #[error("message not completed in time")]
    Late,
}

impl Refused {
    /// The meter's refusal inside an I/O error, if it is one.
    pub fn of(e: &io::Error) -> Option<Refused> {
        e.get_ref()?.downcast_ref::<Refused>().copied()
    }
}

/// Where the parser is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Inside a frame header, with this many of its bytes read (0: between frames).
    Header(u8),
    /// Inside a payload, with this many bytes still to come.
    Payload(u64),
}

/// The client→server frame headers of one connection, parsed as bytes pass.
#[derive(Debug)]
struct Frames {
    at: At,
    /// The header being read: at most 2 + 8 (length) + 4 (mask key) bytes.
    head: [u8; 14],
    /// A data message has begun and its final frame has not (all) arrived.
    in_message: bool,
}

/// What one read held.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fed {
    /// Frame headers completed.
    frames: usize,
    /// A message ended within it: whatever is unfinished after it began there.
    boundary: bool,
}

impl Frames {
    fn new() -> Self {
        Self {
            at: At::Header(0),
            head: [0; 14],
            in_message: false,
        }
    }

    /// A message or a frame is partly read.
    fn unfinished(&self) -> bool {
        self.in_message || self.at != At::Header(0)
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Fed {
        let mut fed = Fed::default();
        while let Some((&first, rest)) = bytes.split_first() {
            match self.at {
                At::Payload(left) => {
                    // Skipped by count: the payload is tungstenite's business.
                    let skip = left.min(bytes.len() as u64);
                    bytes = &bytes[skip as usize..];
                    self.at = if skip == left {
                        At::Header(0)
                    } else {
                        At::Payload(left - skip)
                    };
                }
                At::Header(have) => {
                    self.head[usize::from(have)] = first;
                    bytes = rest;
                    let have = have + 1;
                    if have < header_len(&self.head, have) {
                        self.at = At::Header(have);
                        continue;
                    }
                    fed.frames += 1;
                    self.at = match payload_len(&self.head) {
                        0 => At::Header(0),
                        n => At::Payload(n),
                    };
                    let fin = self.head[0] & 0x80 != 0;
                    match self.head[0] & 0x0f {
                        // Text or binary: a message begins.
                        0x1 | 0x2 => self.in_message = !fin,
                        0x0 if fin => self.in_message = false,
                        // Control frames may come between fragments; they end nothing.
                        _ => {}
                    }
                }
            }
            if !self.unfinished() {
                fed.boundary = true;
            }
        }
        fed
    }
}

/// The length of a header whose first `have` bytes are in `head`, as far as they tell.
fn header_len(head: &[u8; 14], have: u8) -> u8 {
    if have < 2 {
        return 2;
    }
    let length = match head[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if head[1] & 0x80 != 0 { 4 } else { 0 };
    2 + length + mask
}

/// The payload length a complete header declares.
fn payload_len(head: &[u8; 14]) -> u64 {
    match head[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        127 => u64::from_be_bytes(head[2..10].try_into().expect("eight bytes")),
        n => u64::from(n),
    }
}

/// A connection's byte stream with its inbound side metered; writes pass through untouched.
#[derive(Debug)]
pub(crate) struct Metered<S> {
    inner: S,
    frames: Frames,
    frame_budget: TokenBucket,
    byte_budget: TokenBucket,
    message_deadline: Duration,
    /// When the message (or frame) now unfinished began; `None` between messages.
    begun: Option<Instant>,
    /// Armed only while the peer has stopped sending in the middle of a message, so that a
    /// connection that sends nothing more is still woken at the deadline. Whole messages,
    /// the usual case, never touch a timer.
    timer: Option<Pin<Box<Sleep>>>,
    refused: Option<Refused>,
}

impl<S> Metered<S> {
    /// Meters what is read from `inner`, with full buckets.
    pub fn new(inner: S, budget: Budget) -> Self {
        let now = Instant::now();
        Self {
            inner,
            frames: Frames::new(),
            frame_budget: TokenBucket::new(budget.frames_per_sec, budget.frame_burst, now),
            byte_budget: TokenBucket::new(budget.bytes_per_sec, budget.byte_burst, now),
            message_deadline: budget.message_deadline,
            begun: None,
            timer: None,
            refused: None,
        }
    }

    /// Stops the connection: this read and every later one fail with `why`.
    fn refuse(&mut self, why: Refused) -> Poll<io::Result<()>> {
        self.refused = Some(why);
        self.timer = None;
        Poll::Ready(Err(io::Error::other(why)))
    }

    /// Accounts for `bytes` just read at `now`.
    fn meter(&mut self, bytes: &[u8], now: Instant) -> Result<(), Refused> {
        let fed = self.frames.feed(bytes);
        // One clock reading and two bucket updates per read, whatever the number of frames.
        if !self.byte_budget.take_many(bytes.len(), now)
            || !self.frame_budget.take_many(fed.frames, now)
        {
            return Err(Refused::OverBudget);
        }
        if !self.frames.unfinished() {
            self.begun = None;
            self.timer = None;
            return Ok(());
        }
        if fed.boundary {
            self.begun = Some(now);
        }
        let begun = *self.begun.get_or_insert(now);
        if now.saturating_duration_since(begun) >= self.message_deadline {
            return Err(Refused::Late);
        }
        Ok(())
    }

    /// Nothing more to read for now: an unfinished message needs a wake-up at its deadline.
    fn wait_for_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(begun) = self.begun else {
            return Poll::Pending;
        };
        let due = tokio::time::Instant::from_std(begun + self.message_deadline);
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != due {
                    timer.as_mut().reset(due);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(due))),
        };
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => self.refuse(Refused::Late),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> Metered<S> {
    /// Reads and drops what arrives, unmetered, until the peer closes or `limit` bytes came.
    pub async fn drain(&mut self, limit: usize) {
        use tokio::io::AsyncReadExt;
        let mut scrap = [0u8; 512];
        let mut left = limit;
        while left > 0 {
            match self.inner.read(&mut scrap).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(why) = this.refused {
            return this.refuse(why);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => this.wait_for_deadline(cx),
            Poll::Ready(Ok(())) => {
                let bytes = &buf.filled()[before..];
                if bytes.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                match this.meter(bytes, Instant::now()) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(why) => this.refuse(why),
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [1, 2, 3, 4];

    /// A masked client frame with a payload of `len` zero bytes (masking does not matter here).
    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(&MASK);
        f.resize(f.len() + len, 0);
        f
    }

    #[test]
    fn counts_frames_of_every_length_encoding() {
        let mut frames = Frames::new();
        let mut bytes = frame(true, 0x2, 5);
        bytes.extend(frame(true, 0x2, 300));
        bytes.extend(frame(true, 0x9, 0));
        bytes.extend(frame(true, 0x2, 70_000));
        let fed = frames.feed(&bytes);
        assert_eq!(fed.frames, 4);
        assert!(fed.boundary);
        assert!(!frames.unfinished());
    }

    #[test]
    fn headers_and_payloads_split_anywhere_across_reads() {
        let mut bytes = frame(true, 0x2, 300);
        bytes.extend(frame(false, 0x2, 3));
        bytes.extend(frame(true, 0xA, 8));
        bytes.extend(frame(true, 0x0, 70_000));
        // Every split point, and one byte per read.
        for split in 0..bytes.len() {
            let mut frames = Frames::new();
            let a = frames.feed(&bytes[..split]);
            let b = frames.feed(&bytes[split..]);
            assert_eq!(a.frames + b.frames, 4, "split at {split}");
            assert!(!frames.unfinished(), "split at {split}");
        }
        let mut frames = Frames::new();
        let total: usize = bytes.chunks(1).map(|b| frames.feed(b).frames).sum();
        assert_eq!(total, 4);
        assert!(!frames.unfinished());
    }

    #[test]
    fn a_fragmented_message_is_unfinished_until_its_final_frame_whatever_comes_between() {
        let mut frames = Frames::new();
        assert!(!frames.feed(&frame(false, 0x2, 10)).boundary);
        assert!(frames.unfinished());
        // Pongs and empty continuations finish nothing.
        frames.feed(&frame(true, 0xA, 8));
        frames.feed(&frame(false, 0x0, 0));
        assert!(frames.unfinished());
        let fed = frames.feed(&frame(true, 0x0, 4));
        assert_eq!(
            fed,
            Fed {
                frames: 1,
                boundary: true
            }
        );
        assert!(!frames.unfinished());
    }

    #[test]
    fn a_single_frame_whose_payload_is_still_coming_is_unfinished() {
        let mut frames = Frames::new();
        let f = frame(true, 0x2, 1000);
        frames.feed(&f[..500]);
        assert!(frames.unfinished());
        frames.feed(&f[500..]);
        assert!(!frames.unfinished());
        // Half a header too.
        frames.feed(&f[..1]);
        assert!(frames.unfinished());
    }

    #[test]
    fn a_message_ending_in_a_read_restarts_the_clock_for_the_next() {
        let budget = Budget {
            frames_per_sec: 1000,
            frame_burst: 1000,
            bytes_per_sec: 1 << 20,
            byte_burst: 1 << 20,
            message_deadline: Duration::from_secs(10),
        };
        let mut meter = Metered::new((), budget);
        let t0 = Instant::now();
        let whole = frame(true, 0x2, 100);
        meter.meter(&whole[..50], t0).unwrap();
        assert_eq!(meter.begun, Some(t0));
        // The rest, and half of the next message, 9 s later: the next one's clock starts.
        let t1 = t0 + Duration::from_secs(9);
        let mut next = whole[50..].to_vec();
        next.extend_from_slice(&whole[..50]);
        meter.meter(&next, t1).unwrap();
        assert_eq!(meter.begun, Some(t1));
        // A trickle of the same message never restarts it.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(meter.meter(&whole[50..51], t2), Err(Refused::Late));
    }

    #[test]
    fn frames_and_bytes_over_their_budget_are_refused() {
        let budget = Budget {
            frames_per_sec: 10,
            frame_burst: 20,
            bytes_per_sec: 1000,
            byte_burst: 4000,
            message_deadline: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let pings: Vec<u8> = (0..20).flat_map(|_| frame(true, 0x9, 0)).collect();
        let mut meter = Metered::new((), budget);
        meter.meter(&pings, t0).unwrap();
        assert_eq!(
            meter.meter(&frame(true, 0x9, 0), t0),
            Err(Refused::OverBudget)
        );
        // A second later, ten more.
        let mut meter = Metered::new((), budget);
        meter.meter(&pings, t0).unwrap();
        let ten: Vec<u8> = (0..10).flat_map(|_| frame(true, 0x9, 0)).collect();
        meter.meter(&ten, t0 + Duration::from_secs(1)).unwrap();
        // Bytes: the burst, then the rate.
        let mut meter = Metered::new((), budget);
        let big = frame(true, 0x2, 3000);
        meter.meter(&big, t0).unwrap();
        assert_eq!(
            meter.meter(&frame(true, 0x2, 1000), t0),
            Err(Refused::OverBudget)
        );
    }

    #[tokio::test]
    async fn a_peer_that_stops_mid_message_is_refused_at_the_deadline() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let budget = Budget {
            frames_per_sec: 1000,
            frame_burst: 1000,
            bytes_per_sec: 1 << 20,
            byte_burst: 1 << 20,
            message_deadline: Duration::from_millis(200),
        };
        let (mut client, server) = tokio::io::duplex(4096);
        let mut meter = Metered::new(server, budget);
        client.write_all(&frame(false, 0x2, 10)).await.unwrap();
        let mut buf = [0u8; 512];
        assert!(meter.read(&mut buf).await.unwrap() > 0);
        let started = Instant::now();
        let e = meter.read(&mut buf).await.unwrap_err();
        assert_eq!(Refused::of(&e), Some(Refused::Late));
        assert!(started.elapsed() <= Duration::from_secs(2));
        // Every later read fails the same way.
        let e = meter.read(&mut buf).await.unwrap_err();
        assert_eq!(Refused::of(&e), Some(Refused::Late));
    }
}
