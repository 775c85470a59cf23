//! WebSocket framing attacks over raw TCP: the upgrade is done by hand and every frame is
//! built byte by byte, so that the test can send what no WebSocket library would (a header
//! declaring 2^62 bytes, endless fragments, unmasked or reserved frames, ping floods).
//!
//! Every case checks four things: the right close code, other rooms keep their latency while
//! it happens, the process's memory returns to its baseline once the attacker is gone, and a
//! metric counts the event.
//!
//! The hand-made client is shared with the inbound budget's tests (`inbound`): no WebSocket
//! library would send an unfinished message or withhold its final fragment.

use std::time::{Duration, Instant};

use crate::harness::{TIMEOUT, TestRoom, TestServer, stroke_ops, under_attack, unmetered};
use kokuban_protocol::limits::MAX_CLIENT_FRAME_BYTES;
use kokuban_protocol::{ClientKey, Submit};
use kokuban_protocol::{
    ClientMsg, Color, ErrorCode, Hello, Name, PROTOCOL_VERSION, ServerMsg, close, decode_server,
    encode_client,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const BINARY: u8 = 0x2;
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const CONTINUATION: u8 = 0x0;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
pub(crate) const PONG: u8 = 0xA;
pub(crate) const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame header: FIN, reserved bits (`rsv`, already shifted into place), opcode, the mask
/// bit and the declared payload length (which need not match what follows).
pub(crate) fn header(fin: bool, rsv: u8, opcode: u8, masked: bool, len: u64) -> Vec<u8> {
    let mut h = vec![(u8::from(fin) << 7) | rsv | opcode];
    let m = u8::from(masked) << 7;
    if len < 126 {
        h.push(m | len as u8);
    } else if len <= u64::from(u16::MAX) {
        h.push(m | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(m | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    if masked {
        h.extend_from_slice(&MASK);
    }
    h
}

/// A whole frame, masked as a client must send it.
pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = header(fin, 0, opcode, true, payload.len() as u64);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// A hand-made WebSocket client on a plain TCP stream.
pub(crate) struct Raw {
    pub tcp: TcpStream,
    /// Bytes read and not yet parsed.
    pub buf: Vec<u8>,
}

/// What the server sent.
#[derive(Debug)]
pub(crate) enum In {
    Frame(u8, Vec<u8>),
    /// The connection ended (EOF or reset) without a close frame.
    Ended,
}

impl Raw {
    /// Upgrades by hand and reads the `101`.
    pub(crate) async fn upgrade(server: &TestServer, room: &str) -> Raw {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let request = format!(
            "GET /ws/{room} HTTP/1.1\r\nHost: {}\r\nOrigin: http://{}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
            server.addr, server.addr
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Raw {
            tcp,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(i) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(raw.fill().await, "no upgrade answer");
        };
        let head = String::from_utf8_lossy(&raw.buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        raw.buf.drain(..end);
        raw
    }

    /// Upgrades, says Hello with the edit token and reads the Welcome.
    pub(crate) async fn member(server: &TestServer, room: &TestRoom) -> Raw {
        let mut raw = Raw::upgrade(server, room.id.as_str()).await;
        let hello = encode_client(&ClientMsg::Hello(Hello {
            room: room.id.clone(),
            token: room.edit.clone(),
            resume: None,
            name: Name::new("raw").unwrap(),
            color: Color::rgb(1, 2, 3),
            client: ClientKey(rand::random()),
        }));
        raw.send(&frame(true, BINARY, &hello)).await;
        match raw.next_msg().await {
            Some(ServerMsg::Welcome(_)) => raw,
            other => panic!("expected a Welcome, got {other:?}"),
        }
    }

    pub(crate) async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(TIMEOUT, self.tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(_) => false,
            Err(_) => panic!("nothing from the server in time"),
        }
    }

    /// Writes bytes; false once the server has gone.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    /// The next frame from the server (unmasked, never fragmented by this server).
    pub(crate) async fn next(&mut self) -> In {
        loop {
            if let Some((opcode, payload, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return In::Frame(opcode, payload);
            }
            if !self.fill().await {
                return In::Ended;
            }
        }
    }

    /// The next data message, decoded; `None` if the connection closes first.
    pub(crate) async fn next_msg(&mut self) -> Option<ServerMsg> {
        loop {
            match self.next().await {
                In::Frame(BINARY, payload) => return Some(decode_server(&payload).unwrap()),
                In::Frame(CLOSE, _) | In::Ended => return None,
                In::Frame(..) => {}
            }
        }
    }

    /// Reads until the server closes; its close code (`None`: ended without a close frame).
    /// Counts the pongs seen on the way.
    pub(crate) async fn close_code(&mut self) -> (Option<u16>, usize) {
        let mut pongs = 0;
        loop {
            match self.next().await {
                In::Frame(CLOSE, payload) => {
                    // Answer it, as a client should; the server may be gone already.
                    let _ = self.send(&frame(true, CLOSE, &payload)).await;
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return (code, pongs);
                }
                In::Frame(PONG, _) => pongs += 1,
                In::Frame(..) => {}
                In::Ended => return (None, pongs),
            }
        }
    }
}

/// One complete server frame at the start of `buf`: opcode, payload, bytes used.
pub(crate) fn parse(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames are never masked");
    let (len, at) = match buf[1] & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().unwrap()) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = buf.get(at..at + len)?.to_vec();
    Some((buf[0] & 0x0f, payload, at + len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_declaring_huge_payloads_are_closed_with_1009_without_reading_them() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let s = std::sync::Arc::new(server);
    let lengths = [1u64 << 62, 1 << 30, MAX_CLIENT_FRAME_BYTES as u64 + 1];
    let (server2, room2) = (s.clone(), room.clone());
    let codes = under_attack(&s, async move {
        let mut codes = Vec::new();
        for len in lengths {
            // In a session, and as the very first frame instead of a Hello.
            let mut member = Raw::member(&server2, &room2).await;
            member.send(&header(true, 0, BINARY, true, len)).await;
            codes.push(member.close_code().await.0);
            let mut stranger = Raw::upgrade(&server2, room2.id.as_str()).await;
            stranger.send(&header(true, 0, BINARY, true, len)).await;
            codes.push(stranger.close_code().await.0);
        }
        codes
    })
    .await;
    assert_eq!(codes, vec![Some(close::TOO_BIG); 6]);
    let counted = s
        .metric("kokuban_rejected_frames_total{reason=\"too_large\"}")
        .await;
    assert!(counted >= 6.0, "{counted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_floods_are_closed_with_1009_at_the_message_limit() {
    // The inbound budget would close the one-byte flood first (1008); the message limit is
    // what this test is about.
    let server = std::sync::Arc::new(TestServer::start_with(unmetered).await);
    let room = server.create_room().await;
    let (s, r) = (server.clone(), room.clone());
    let (big, tiny) = under_attack(&server, async move {
        // A first fragment, then 1000-byte continuations that never end the message: the
        // server must stop at the message limit, not buffer whatever arrives.
        let mut big = Raw::member(&s, &r).await;
        let chunk = vec![PROTOCOL_VERSION; 1000];
        big.send(&frame(false, BINARY, &chunk)).await;
        let mut sent = chunk.len();
        while sent <= MAX_CLIENT_FRAME_BYTES {
            if !big.send(&frame(false, CONTINUATION, &chunk)).await {
                break;
            }
            sent += chunk.len();
        }
        let big = big.close_code().await.0;
        // One-byte fragments: 65,537 frames of seven bytes, each cheap to parse, still
        // stopped at the same limit.
        let mut tiny = Raw::member(&s, &r).await;
        let mut flood = frame(false, BINARY, &[PROTOCOL_VERSION]);
        let one = frame(false, CONTINUATION, &[0]);
        for _ in 0..MAX_CLIENT_FRAME_BYTES {
            flood.extend_from_slice(&one);
        }
        tiny.send(&flood).await;
        (big, tiny.close_code().await.0)
    })
    .await;
    assert_eq!((big, tiny), (Some(close::TOO_BIG), Some(close::TOO_BIG)));
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"too_large\"}")
            .await
            >= 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_tiny_fragments_is_accepted_and_the_limit_is_exact() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let room = server.create_room().await;
    let (s, r) = (server.clone(), room.clone());
    let (acked, at_limit, over_limit) = under_attack(&server, async move {
        let mut raw = Raw::member(&s, &r).await;
        // A valid op in one-byte fragments is one message like any other: sequenced.
        let (_, ops) = stroke_ops(1, 2, 1);
        let op = encode_client(&ClientMsg::Op(Submit {
            n: 1,
            op: ops[0].clone(),
        }));
        let mut bytes = Vec::new();
        for (i, b) in op.iter().enumerate() {
            let opcode = if i == 0 { BINARY } else { CONTINUATION };
            bytes.extend(frame(i + 1 == op.len(), opcode, &[*b]));
        }
        raw.send(&bytes).await;
        let acked = matches!(
            raw.next_msg().await,
            Some(ServerMsg::Ack(_) | ServerMsg::Acked(_))
        );
        // Exactly the limit, in 4 KiB fragments: the WebSocket layer takes it and the codec
        // answers (it is not a valid message), and the session goes on.
        let body = vec![PROTOCOL_VERSION; MAX_CLIENT_FRAME_BYTES];
        let mut bytes = Vec::new();
        let parts: Vec<_> = body.chunks(4096).collect();
        for (i, part) in parts.iter().enumerate() {
            let opcode = if i == 0 { BINARY } else { CONTINUATION };
            bytes.extend(frame(i + 1 == parts.len(), opcode, part));
        }
        raw.send(&bytes).await;
        let at_limit = match raw.next_msg().await {
            Some(ServerMsg::Error(e)) => Some(e.code),
            _ => None,
        };
        // One byte more, in a single frame: closed.
        raw.send(&frame(
            true,
            BINARY,
            &vec![PROTOCOL_VERSION; MAX_CLIENT_FRAME_BYTES + 1],
        ))
        .await;
        (acked, at_limit, raw.close_code().await.0)
    })
    .await;
    assert!(acked, "an op sent in one-byte fragments was not sequenced");
    assert_eq!(at_limit, Some(ErrorCode::Malformed));
    assert_eq!(over_limit, Some(close::TOO_BIG));
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"malformed\"}")
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_answered_then_closed_with_1008() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let room = server.create_room().await;
    let (s, r) = (server.clone(), room.clone());
    let (in_session, pongs, before_hello) = under_attack(&server, async move {
        let raw = Raw::member(&s, &r).await;
        // Pings are written by one task while the other half reads what comes back.
        let Raw { tcp, buf } = raw;
        let (mut rd, mut wr) = tcp.into_split();
        let writer = tokio::spawn(async move {
            let ping = frame(true, PING, b"ping");
            let burst: Vec<u8> = std::iter::repeat_n(ping, 100).flatten().collect();
            for _ in 0..100 {
                if wr.write_all(&burst).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            wr
        });
        let mut buf = buf;
        let mut pongs = 0;
        let code = loop {
            if let Some((opcode, payload, used)) = parse(&buf) {
                buf.drain(..used);
                match opcode {
                    PONG => pongs += 1,
                    CLOSE => break Some(u16::from_be_bytes([payload[0], payload[1]])),
                    _ => {}
                }
                continue;
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout(TIMEOUT, rd.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => break None,
            }
        };
        drop(writer.await);
        // Pings in place of a Hello are cut off after a handful.
        let mut stranger = Raw::upgrade(&s, r.id.as_str()).await;
        let pings: Vec<u8> = std::iter::repeat_n(frame(true, PING, b""), 64)
            .flatten()
            .collect();
        stranger.send(&pings).await;
        (code, pongs, stranger.close_code().await.0)
    })
    .await;
    assert_eq!(in_session, Some(close::POLICY));
    assert!(pongs >= 1, "pings within the rate are answered");
    assert_eq!(before_hello, Some(close::POLICY));
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"ping_flood\"}")
            .await
            >= 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_break_the_websocket_protocol_are_closed_with_1002() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let room = server.create_room().await;
    let (s, r) = (server.clone(), room.clone());
    let op = {
        let (_, ops) = stroke_ops(1, 2, 1);
        encode_client(&ClientMsg::Op(Submit {
            n: 1,
            op: ops[0].clone(),
        }))
    };
    let cases: Vec<(&'static str, Vec<u8>)> = vec![
        ("unmasked", {
            let mut f = header(true, 0, BINARY, false, op.len() as u64);
            f.extend_from_slice(&op);
            f
        }),
        ("rsv1", {
            let mut f = frame(true, BINARY, &op);
            f[0] |= 0x40;
            f
        }),
        ("rsv3", {
            let mut f = frame(true, BINARY, &op);
            f[0] |= 0x10;
            f
        }),
        ("reserved data opcode", frame(true, 0x3, &op)),
        ("reserved control opcode", frame(true, 0xB, b"")),
        ("continuation first", frame(true, CONTINUATION, &op)),
        ("fragmented ping", frame(false, PING, b"x")),
        ("ping over 125 bytes", frame(true, PING, &[0; 126])),
        ("new message inside a fragmented one", {
            let mut f = frame(false, BINARY, &op[..3]);
            f.extend(frame(true, BINARY, &op));
            f
        }),
    ];
    let n = cases.len();
    let (codes, text, bad_utf8) = under_attack(&server, async move {
        let mut codes = Vec::new();
        for (what, bytes) in cases {
            let mut raw = Raw::member(&s, &r).await;
            raw.send(&bytes).await;
            codes.push((what, raw.close_code().await.0));
        }
        // Text frames: binary only (1003); one that is not even UTF-8 is invalid data (1007).
        let mut raw = Raw::member(&s, &r).await;
        raw.send(&frame(true, TEXT, b"hello")).await;
        let text = raw.close_code().await.0;
        let mut raw = Raw::member(&s, &r).await;
        raw.send(&frame(true, TEXT, &[0xff, 0xfe])).await;
        (codes, text, raw.close_code().await.0)
    })
    .await;
    for (what, code) in codes {
        assert_eq!(code, Some(close::PROTOCOL_ERROR), "{what}");
    }
    assert_eq!(text, Some(close::UNSUPPORTED_DATA));
    assert_eq!(bad_utf8, Some(close::INVALID_PAYLOAD));
    assert_eq!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"protocol\"}")
            .await,
        n as f64
    );
    assert!(
        server
            .metric("kokuban_rejected_frames_total{reason=\"text\"}")
            .await
            >= 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_empty_fragments_are_cut_off_by_the_idle_timeout() {
    // Empty continuations never grow the message, so the size limit never trips, and no
    // message ever completes, so the rate limit never sees one: what bounds them is that
    // they are no sign of life. The heartbeat closes the connection like any silent one.
    // (The inbound budget would close the flood first, and the message deadline a slower
    // trickle: both are lifted here.)
    let server = std::sync::Arc::new(
        TestServer::start_with(|c| {
            unmetered(c);
            c.message_deadline = Duration::from_secs(60);
            // Short, yet long enough that the probe (drawing every few milliseconds) is never
            // taken for silent on a loaded machine.
            c.ping_interval = Duration::from_millis(500);
            c.idle_timeout = Duration::from_secs(3);
        })
        .await,
    );
    let room = server.create_room().await;
    let (s, r) = (server.clone(), room.clone());
    let started = Instant::now();
    let code = under_attack(&server, async move {
        let raw = Raw::member(&s, &r).await;
        let Raw { tcp, mut buf } = raw;
        let (mut rd, mut wr) = tcp.into_split();
        let writer = tokio::spawn(async move {
            let mut flood = frame(false, BINARY, &[PROTOCOL_VERSION]);
            let empty = frame(false, CONTINUATION, &[]);
            for _ in 0..1000 {
                flood.extend_from_slice(&empty);
            }
            let give_up = Instant::now() + TIMEOUT;
            while Instant::now() < give_up {
                if wr.write_all(&flood[..]).await.is_err() {
                    break;
                }
                flood = std::iter::repeat_n(empty.clone(), 1000).flatten().collect();
                tokio::task::yield_now().await;
            }
        });
        let code = loop {
            if let Some((opcode, payload, used)) = parse(&buf) {
                buf.drain(..used);
                if opcode == CLOSE {
                    break Some(u16::from_be_bytes([payload[0], payload[1]]));
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(TIMEOUT, rd.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => break None,
            }
        };
        writer.abort();
        code
    })
    .await;
    assert_eq!(code, Some(close::IDLE_TIMEOUT));
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
    assert!(server.metric("kokuban_idle_timeouts_total").await >= 1.0);
}
