//! `kokuban-floor`: the cheapest relay the benchmark can put beside Kokuban — what any server
//! must spend at least to move the same frames between the same WebSocket clients.
//!
//! It accepts `GET /ws/{room}` upgrades, answers a client's first frame (its Hello) with one
//! empty binary frame that says "you are in the room", and from then on writes every binary
//! frame it reads, re-framed once as a server frame, to every other member of the room. No
//! decoding, no order, no store, no Redis; see README.md beside this file for what it leaves out
//! and why each remaining cost is one no relay can avoid.
//!
//! Usage: `kokuban-floor --listen 127.0.0.1:PORT [--runtime per-core|multi] [--threads N]`.
//! It prints `ready ADDR` on standard output once it accepts connections.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::io::Interest;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Most bytes waiting for one member before it is dropped as a slow reader: a bounded queue,
/// as any relay must have, about a second of the busiest benchmark room.
const MAX_BACKLOG_BYTES: usize = 4 << 20;
/// Free space kept in a connection's read buffer before each read.
const READ_CHUNK: usize = 16 << 10;
/// Largest upgrade request accepted.
const MAX_REQUEST_BYTES: usize = 8 << 10;
/// The answer to the Hello: an empty binary frame (FIN + binary opcode, length 0).
const JOINED: [u8; 2] = [0x82, 0x00];

/// How the connections are spread over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    /// One current-thread runtime per thread, each accepting on its own `SO_REUSEPORT`
    /// listener: a connection lives on one thread, and each thread writes what its readers
    /// produced once per scheduler tick.
    PerCore,
    /// One multi-thread runtime: tasks move between workers, so each read's frames are written
    /// at once, before the task yields.
    Multi,
}

fn main() -> io::Result<()> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 8090).into();
    let mut runtime = Runtime::PerCore;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        let bad = |what: &str| io::Error::new(ErrorKind::InvalidInput, format!("{what}: {value}"));
        match flag.as_str() {
            "--listen" => listen = value.parse().map_err(|_| bad("--listen"))?,
            "--threads" => threads = value.parse().map_err(|_| bad("--threads"))?,
            "--runtime" => {
                runtime = match value.as_str() {
                    "per-core" => Runtime::PerCore,
                    "multi" => Runtime::Multi,
                    _ => return Err(bad("--runtime is per-core or multi")),
                }
            }
            _ => return Err(bad("unknown flag")),
        }
    }
    let rooms = Arc::new(Rooms::default());
    match runtime {
        Runtime::Multi => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_io()
                .build()?;
            rt.block_on(async {
                let listener = bind(listen)?;
                println!("ready {}", listener.local_addr()?);
                accept(listener, rooms, false).await
            })
        }
        Runtime::PerCore => {
            // Every thread binds the same port; the kernel spreads new connections over them.
            let (tx, rx) = std::sync::mpsc::channel::<io::Result<()>>();
            let mut handles = Vec::new();
            for _ in 0..threads.max(1) {
                let (rooms, tx) = (rooms.clone(), tx.clone());
                handles.push(std::thread::spawn(move || -> io::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .build()?;
                    rt.block_on(async {
                        let listener = bind(listen);
                        let _ = tx.send(listener.as_ref().map(|_| ()).map_err(clone_err));
                        accept(listener?, rooms, true).await
                    })
                }));
            }
            for _ in 0..handles.len() {
                rx.recv().map_err(|_| io::Error::other("a thread died"))??;
            }
            println!("ready {listen}");
            for h in handles {
                h.join()
                    .map_err(|_| io::Error::other("a thread panicked"))??;
            }
            Ok(())
        }
    }
}

fn clone_err(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn accept(listener: TcpListener, rooms: Arc<Rooms>, per_tick: bool) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let _ = session(stream, rooms, per_tick).await;
        });
    }
}

/// Rooms by name, created by their first member.
#[derive(Debug, Default)]
struct Rooms(Mutex<HashMap<String, Arc<Room>>>);

#[derive(Debug, Default)]
struct Room {
    members: RwLock<Vec<Arc<Member>>>,
}

impl Rooms {
    fn join(&self, name: &str, member: Arc<Member>) -> Arc<Room> {
        let mut rooms = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = rooms.entry(name.to_string()).or_default().clone();
        write(&room.members).push(member);
        room
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// One connected client: its socket and the bytes waiting for it.
#[derive(Debug)]
struct Member {
    id: u64,
    stream: TcpStream,
    /// Never empty unless nobody owes it a write: whoever makes it non-empty either flushes
    /// it (a dirty list) or hands it to a task waiting for the socket to drain.
    backlog: Mutex<Backlog>,
}

#[derive(Debug, Default)]
struct Backlog {
    bytes: Vec<u8>,
    dead: bool,
}

thread_local! {
    /// Members this thread queued bytes for since its last flush.
    static DIRTY: RefCell<Vec<Arc<Member>>> = const { RefCell::new(Vec::new()) };
    static FLUSH_QUEUED: Cell<bool> = const { Cell::new(false) };
}

impl Member {
    fn lock(&self) -> std::sync::MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues already-framed bytes; the first bytes since the last write mark it dirty.
    fn queue(self: &Arc<Self>, frames: &[u8]) {
        let mut b = self.lock();
        let was_empty = b.bytes.is_empty();
        if self.append(&mut b, frames) && was_empty {
            DIRTY.with_borrow_mut(|d| d.push(self.clone()));
        }
    }

    /// Writes already-framed bytes at once, straight from the caller's buffer (the same bytes
    /// for every member, never copied), unless earlier bytes still wait for the socket.
    fn send(self: &Arc<Self>, frames: &[u8]) {
        let mut b = self.lock();
        if b.dead || !b.bytes.is_empty() {
            // Whoever owns the waiting bytes writes these after them.
            self.append(&mut b, frames);
            return;
        }
        match self.stream.try_write(frames) {
            Ok(n) if n == frames.len() => {}
            Ok(n) => {
                self.append(&mut b, &frames[n..]);
                drop(b);
                tokio::spawn(self.clone().drain());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.append(&mut b, frames);
                drop(b);
                tokio::spawn(self.clone().drain());
            }
            Err(_) => self.drop_connection(&mut b),
        }
    }

    /// Adds to the backlog; false if the member is gone or just became too slow to keep.
    fn append(&self, b: &mut Backlog, frames: &[u8]) -> bool {
        if b.dead {
            return false;
        }
        if b.bytes.len() + frames.len() > MAX_BACKLOG_BYTES {
            self.drop_connection(b);
            return false;
        }
        b.bytes.extend_from_slice(frames);
        true
    }

    /// Writes the whole backlog with one syscall; what the socket does not take is left to a
    /// task that waits for it to drain.
    fn flush(self: Arc<Self>) {
        let mut b = self.lock();
        if b.bytes.is_empty() || b.dead {
            return;
        }
        match self.stream.try_write(&b.bytes) {
            Ok(n) if n == b.bytes.len() => b.bytes.clear(),
            Ok(n) => {
                b.bytes.drain(..n);
                drop(b);
                tokio::spawn(self.drain());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                drop(b);
                tokio::spawn(self.drain());
            }
            Err(_) => self.drop_connection(&mut b),
        }
    }

    /// Gives up on a member: its bytes are dropped and its socket shut down, which ends its
    /// session (the read sees the end) without the session polling for it on every read.
    fn drop_connection(&self, b: &mut Backlog) {
        b.dead = true;
        b.bytes = Vec::new();
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Both);
    }

    /// The slow path: a socket whose send buffer is full.
    async fn drain(self: Arc<Self>) {
        loop {
            if self.stream.writable().await.is_err() {
                self.drop_connection(&mut self.lock());
                return;
            }
            let mut b = self.lock();
            match self.stream.try_write(&b.bytes) {
                Ok(n) => {
                    b.bytes.drain(..n);
                    if b.bytes.is_empty() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.drop_connection(&mut b);
                    return;
                }
            }
        }
    }
}

/// Writes every dirty member's backlog, one syscall each.
fn flush_dirty() {
    let dirty = DIRTY.with_borrow_mut(std::mem::take);
    for m in dirty {
        m.flush();
    }
}

/// Schedules [`flush_dirty`] behind the tasks already runnable on this thread (on a
/// current-thread runtime a spawned task queues at the back): every reader the same epoll
/// wake-up made runnable adds its frames first, and each member gets them in one write.
fn flush_after_this_tick() {
    if DIRTY.with_borrow(|d| !d.is_empty()) && !FLUSH_QUEUED.replace(true) {
        tokio::spawn(async {
            FLUSH_QUEUED.set(false);
            flush_dirty();
        });
    }
}

static NEXT_MEMBER: AtomicU64 = AtomicU64::new(1);

async fn session(stream: TcpStream, rooms: Arc<Rooms>, per_tick: bool) -> io::Result<()> {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let room_name = upgrade(&stream, &mut buf).await?;
    let me = Arc::new(Member {
        id: NEXT_MEMBER.fetch_add(1, Ordering::Relaxed),
        stream,
        backlog: Mutex::new(Backlog::default()),
    });
    let mut room: Option<Arc<Room>> = None;
    let mut out = Vec::with_capacity(READ_CHUNK);
    let result = loop {
        let mut at = 0;
        let mut closing = false;
        loop {
            let frame = match Frame::parse(&buf[at..]) {
                None => break,
                Some(Ok(f)) => f,
                // A frame this relay does not handle (a fragment, an unmasked client frame, an
                // oversized one) ends the connection; the benchmark's clients send none.
                Some(Err(_)) => {
                    closing = true;
                    break;
                }
            };
            let payload = &buf[at + frame.header..at + frame.header + frame.len];
            match frame.opcode {
                OP_BINARY if room.is_none() => {
                    // The Hello: join, then say so. It is not relayed.
                    room = Some(rooms.join(&room_name, me.clone()));
                    me.queue(&JOINED);
                }
                OP_BINARY => server_frame(OP_BINARY, payload, frame.mask, &mut out),
                OP_PING => {
                    let mut pong = Vec::new();
                    server_frame(OP_PONG, payload, frame.mask, &mut pong);
                    me.queue(&pong);
                }
                OP_CLOSE => {
                    let mut echo = Vec::new();
                    server_frame(OP_CLOSE, payload, frame.mask, &mut echo);
                    me.queue(&echo);
                    closing = true;
                }
                _ => {}
            }
            at += frame.header + frame.len;
            if closing {
                break;
            }
        }
        buf.drain(..at);
        if let (Some(room), false) = (&room, out.is_empty()) {
            let members = room.members.read().unwrap_or_else(|e| e.into_inner());
            for m in members.iter().filter(|m| m.id != me.id) {
                if per_tick {
                    m.queue(&out);
                } else {
                    m.send(&out);
                }
            }
            out.clear();
        }
        if per_tick {
            flush_after_this_tick();
        } else {
            // Only this connection's own answers (the Hello's, pongs) can be waiting.
            flush_dirty();
        }
        if closing {
            break Ok(());
        }
        match read_some(&me.stream, &mut buf).await {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    if let Some(room) = room {
        write(&room.members).retain(|m| m.id != me.id);
    }
    result
}

/// Reads what the socket holds into the spare capacity of `buf`.
///
/// A read shorter than the space offered emptied the socket, so its readiness is cleared at
/// once: otherwise the next wait returns at once and a second `recv` only learns "nothing
/// more" (`EAGAIN`), one wasted syscall per read.
async fn read_some(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    loop {
        stream.readable().await?;
        let offered = buf.capacity() - buf.len();
        let mut got = None;
        let result = stream.try_io(Interest::READABLE, || {
            let n = stream.try_read_buf(buf)?;
            got = Some(n);
            if n < offered {
                Err(ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match (got, result) {
            (Some(n), _) => return Ok(n),
            (None, Err(e)) if e.kind() == ErrorKind::WouldBlock => continue,
            (None, Err(e)) => return Err(e),
            (None, Ok(())) => return Err(io::Error::other("read reported no length")),
        }
    }
}

/// Reads the HTTP upgrade request, answers 101, and returns the room of `/ws/{room}`; bytes
/// after the request stay in `buf`.
async fn upgrade(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<String> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST_BYTES || read_some(stream, buf).await? == 0 {
            return Err(ErrorKind::InvalidData.into());
        }
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| ErrorKind::InvalidData)?;
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split(' ').next())
        .ok_or(ErrorKind::InvalidData)?;
    let room = path
        .strip_prefix("/ws/")
        .map(|r| r.split('?').next().unwrap_or(r).to_string())
        .ok_or(ErrorKind::InvalidData)?;
    let key = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, v)| v.trim())
        .ok_or(ErrorKind::InvalidData)?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    buf.drain(..end);
    write_all(stream, response.as_bytes()).await?;
    Ok(room)
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// Largest client frame relayed (the protocol's own limit).
const MAX_FRAME_BYTES: usize = 64 << 10;

/// One complete client frame at the start of a buffer (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    opcode: u8,
    header: usize,
    len: usize,
    mask: [u8; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameError {
    Fragmented,
    Unmasked,
    TooLarge,
}

impl Frame {
    /// The frame at the start of `b`, `None` until it has arrived whole.
    fn parse(b: &[u8]) -> Option<Result<Frame, FrameError>> {
        let (&b0, &b1) = (b.first()?, b.get(1)?);
        if b0 & 0x80 == 0 || b0 & 0x0f == 0 {
            return Some(Err(FrameError::Fragmented));
        }
        if b1 & 0x80 == 0 {
            return Some(Err(FrameError::Unmasked));
        }
        let (len, at) = match b1 & 0x7f {
            126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
            127 => {
                let raw: [u8; 8] = b.get(2..10)?.try_into().ok()?;
                (
                    usize::try_from(u64::from_be_bytes(raw)).unwrap_or(usize::MAX),
                    10,
                )
            }
            n => (n as usize, 2),
        };
        if len > MAX_FRAME_BYTES {
            return Some(Err(FrameError::TooLarge));
        }
        let mask: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        let header = at + 4;
        if b.len() < header + len {
            return None;
        }
        Some(Ok(Frame {
            opcode: b0 & 0x0f,
            header,
            len,
            mask,
        }))
    }
}

/// Appends `payload` (still masked) as one unmasked server frame: the header, then the
/// payload unmasked eight bytes at a time.
fn server_frame(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_ne_bytes(c.try_into().expect("chunks of eight")) ^ wide;
        out.extend_from_slice(&word.to_ne_bytes());
    }
    let done = payload.len() - chunks.remainder().len();
    for (i, byte) in chunks.remainder().iter().enumerate() {
        out.push(byte ^ mask[(done + i) % 4]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    #[test]
    fn client_frames_become_unmasked_server_frames() {
        for len in [0, 1, 7, 8, 9, 125, 126, 300, 70_000 / 2] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mask = [0x12, 0x34, 0x56, 0x78];
            let wire = client_frame(OP_BINARY, &payload, mask);
            let f = Frame::parse(&wire).expect("whole").expect("valid");
            assert_eq!(
                (f.opcode, f.len, f.header + f.len),
                (OP_BINARY, len, wire.len())
            );
            assert_eq!(Frame::parse(&wire[..wire.len() - 1]), None);
            let mut out = Vec::new();
            server_frame(OP_BINARY, &wire[f.header..], f.mask, &mut out);
            let head = if len < 126 { 2 } else { 4 };
            assert_eq!(out[0], 0x82);
            assert_eq!(&out[head..], &payload[..], "payload of {len} bytes");
        }
    }

    #[test]
    fn incomplete_and_unsupported_frames() {
        let wire = client_frame(OP_BINARY, b"hello", [1, 2, 3, 4]);
        for cut in 0..wire.len() {
            assert_eq!(Frame::parse(&wire[..cut]), None, "cut at {cut}");
        }
        let mut fragment = wire.clone();
        fragment[0] &= 0x7f;
        assert_eq!(Frame::parse(&fragment), Some(Err(FrameError::Fragmented)));
        let unmasked = [0x82, 0x01, 0xff];
        assert_eq!(Frame::parse(&unmasked), Some(Err(FrameError::Unmasked)));
        let huge = [0x82, 0xff, 0, 0, 0, 0, 0, 2, 0, 0];
        assert_eq!(Frame::parse(&huge), Some(Err(FrameError::TooLarge)));
    }
}
