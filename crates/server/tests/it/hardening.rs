//! Hardening before the WebSocket upgrade: slow and oversized request heads, malformed
//! upgrades and the security headers, all driven over raw TCP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::{TIMEOUT, TestServer, http, under_attack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Slow sockets in the slowloris test: 1,000 trickling connections, each holding a socket on
/// both ends, well inside the usual open-file limit.
const SLOW_SOCKETS: usize = 1000;
const HEADER_DEADLINE: Duration = Duration::from_secs(1);

/// Sends a request line and then one header byte every 100 ms, until the server closes the
/// connection or `give_up` passes. Returns how long the server kept it open (None: never
/// closed).
async fn trickle(addr: SocketAddr, give_up: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: kokuban\r\nX-Slow: ")
        .await
        .ok()?;
    let mut buf = [0u8; 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while start.elapsed() < give_up {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                // Whatever the server says before closing (if anything) is read and ignored.
                Ok(n) if n > 0 => {}
                _ => return Some(start.elapsed()),
            },
            _ = tick.tick() => {
                if stream.write_all(b"a").await.is_err() {
                    return Some(start.elapsed());
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_sockets_are_closed_by_the_header_deadline_while_others_are_served() {
    let server = TestServer::start_with(|c| c.header_read_timeout = HEADER_DEADLINE).await;
    let addr = server.addr;
    let timeouts_before = server.metric("kokuban_http_header_timeouts_total").await;
    // Meanwhile ordinary HTTP clients are answered at once, again and again (and a member of
    // another room keeps drawing: `under_attack`).
    let ordinary = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..10 {
            let started = Instant::now();
            let r = http(addr, "GET", "/healthz", &[]).await;
            assert_eq!(r.status, 200);
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "a normal request took {:?} during the attack",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let held = under_attack(&server, async move {
        // Opened in waves, all within a fraction of the deadline: a burst of simultaneous
        // connects could overflow the listen backlog, which is the kernel's business, not ours.
        let mut slow = Vec::with_capacity(SLOW_SOCKETS);
        for wave in (0..SLOW_SOCKETS).collect::<Vec<_>>().chunks(50) {
            for _ in wave {
                slow.push(tokio::spawn(trickle(addr, Duration::from_secs(15))));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut held = Vec::with_capacity(SLOW_SOCKETS);
        for task in slow {
            held.push(task.await.unwrap());
        }
        held
    })
    .await;
    ordinary.await.unwrap();
    for held in held {
        let held = held.expect("a trickling socket was never closed");
        assert!(
            held >= HEADER_DEADLINE - Duration::from_millis(200) && held < HEADER_DEADLINE * 5,
            "held for {held:?}"
        );
    }
    server
        .wait_metric("kokuban_http_header_timeouts_total", |v| {
            v >= timeouts_before + SLOW_SOCKETS as f64
        })
        .await;
}

#[tokio::test]
async fn silent_and_idle_keep_alive_sockets_are_closed_by_the_deadline_too() {
    let server = TestServer::start_with(|c| c.header_read_timeout = HEADER_DEADLINE).await;
    let started = Instant::now();
    // Connects and never sends a byte.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Sends one request, then keeps the connection open without a second one.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: k\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    for stream in [&mut silent, &mut idle] {
        let end = tokio::time::timeout(TIMEOUT, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(end.is_ok(), "a socket was held open");
    }
    assert!(
        started.elapsed() < HEADER_DEADLINE * 5,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_socket_stuck_in_its_request_head_does_not_hold_up_shutdown() {
    let mut server = TestServer::start_with(|c| c.header_read_timeout = HEADER_DEADLINE).await;
    let mut stuck = TcpStream::connect(server.addr).await.unwrap();
    stuck.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    // An idle keep-alive connection too.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: k\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < HEADER_DEADLINE * 5,
        "{:?}",
        started.elapsed()
    );
}

/// Sends raw bytes and returns the status of the answer and how long it took.
async fn raw_status(addr: SocketAddr, request: &[u8]) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(TIMEOUT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if raw.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    (status, started.elapsed())
}

#[tokio::test]
async fn oversized_request_heads_get_431_quickly() {
    let server = TestServer::start().await;
    let big = "a".repeat(kokuban_server::MAX_REQUEST_HEAD_BYTES * 2);
    let one_huge_header = format!("GET /healthz HTTP/1.1\r\nHost: k\r\nX-Big: {big}\r\n\r\n");
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: k\r\n{}\r\n",
        (0..200)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let huge_path = format!("GET /{big} HTTP/1.1\r\nHost: k\r\n\r\n");
    for request in [one_huge_header, many_headers, huge_path] {
        let (status, took) = raw_status(server.addr, request.as_bytes()).await;
        assert_eq!(status, 431, "{}", &request[..40]);
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    // The node is unharmed.
    assert_eq!(http(server.addr, "GET", "/healthz", &[]).await.status, 200);
}

#[tokio::test]
async fn malformed_requests_and_upgrades_get_4xx_quickly() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let ws = format!("/ws/{}", room.id.as_str());
    let upgrade = |extra: &str, method: &str| {
        format!(
            "{method} {ws} HTTP/1.1\r\nHost: k\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{extra}\r\n"
        )
    };
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cases = [
        // No key.
        upgrade("Sec-WebSocket-Version: 13\r\n", "GET"),
        // An unsupported version.
        upgrade(&format!("{key}Sec-WebSocket-Version: 8\r\n"), "GET"),
        // No version.
        upgrade(key, "GET"),
        // Not GET.
        upgrade(&format!("{key}Sec-WebSocket-Version: 13\r\n"), "POST"),
        // Upgrade to something else.
        format!(
            "GET {ws} HTTP/1.1\r\nHost: k\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n{key}Sec-WebSocket-Version: 13\r\n\r\n"
        ),
        // No upgrade at all.
        format!("GET {ws} HTTP/1.1\r\nHost: k\r\n\r\n"),
        // A foreign origin.
        upgrade(
            &format!("{key}Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n"),
            "GET",
        ),
        // Not HTTP at all.
        "\x16\x03\x01\x02\x00garbage\r\n\r\n".to_string(),
        "GET / HTTP/1.1\r\nHost: k\r\nBad Header Name: x\r\n\r\n".to_string(),
        "GET / HTTP/9.9\r\nHost: k\r\n\r\n".to_string(),
    ];
    for request in cases {
        let (status, took) = raw_status(server.addr, request.as_bytes()).await;
        assert!((400..500).contains(&status), "{status} for {request:?}");
        assert!(took < Duration::from_secs(2), "{took:?} for {request:?}");
    }
    assert_eq!(http(server.addr, "GET", "/healthz", &[]).await.status, 200);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let server = TestServer::start().await;
    for path in ["/", "/r/abc", "/healthz", "/metrics", "/missing.js"] {
        let r = http(server.addr, "GET", path, &[]).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            r.header("cross-origin-opener-policy"),
            Some("same-origin"),
            "{path}"
        );
        let csp = r.header("content-security-policy").expect(path);
        assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        // Scripts: never inline (except the loader, by hash) and never eval.
        let script_src = csp
            .split(';')
            .find(|d| d.trim().starts_with("script-src") || d.trim().starts_with("default-src"))
            .unwrap_or_default();
        assert!(!script_src.contains("unsafe-inline"), "{path}: {csp}");
        assert!(!csp.contains("'unsafe-eval'"), "{path}: {csp}");
    }
    let r = http(server.addr, "POST", "/api/rooms", &[]).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("content-security-policy").is_some());
}

#[tokio::test]
async fn the_app_page_admits_its_own_loader_and_wasm_and_nothing_else() {
    let server = TestServer::start().await;
    let r = http(server.addr, "GET", "/r/abc", &[]).await;
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").unwrap();
    if r.body.contains("<script type=\"module\">") {
        // The built app: its inline loader is admitted by hash, its wasm may compile.
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-"),
            "{csp}"
        );
        assert!(csp.contains("connect-src 'self'"), "{csp}");
    }
}

/// `GET path` from a chosen loopback source address; the status, or None if refused
/// before any answer.
async fn status_from(source: [u8; 4], addr: SocketAddr, path: &str) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    (status, text)
}

fn series(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_per_address_cap_answers_429_without_touching_open_sessions() {
    const CAP: usize = 3;
    let server = TestServer::start_with(|c| c.max_connections_per_ip = CAP).await;
    let room = server.create_room().await;
    // CAP sessions from 127.0.0.1 fill its share.
    let mut a = server.editor(&room, "a").await;
    let mut b = server.editor(&room, "b").await;
    let mut c = server.viewer(&room, "c").await;
    for _ in 0..5 {
        let (status, answer) = status_from([127, 0, 0, 1], server.addr, "/healthz").await;
        assert_eq!(status, 429, "{answer}");
        assert!(answer.contains("Retry-After"), "{answer}");
    }
    // Another address is served.
    let (status, metrics) = status_from([127, 0, 0, 2], server.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(series(&metrics, "kokuban_http_connections_refused_total") >= 5.0);
    // The open sessions never noticed.
    a.draw_stroke(1, 20, 5).await;
    a.settle().await;
    let head = a.position().seq;
    b.sync_to(head).await;
    c.sync_to(head).await;
    // A closed session gives its slot back.
    c.close().await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, _) = status_from([127, 0, 0, 1], server.addr, "/healthz").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_global_cap_answers_429_and_recovers_when_connections_close() {
    const CAP: usize = 4;
    let server = TestServer::start_with(|c| c.max_connections = CAP).await;
    let room = server.create_room().await;
    let mut a = server.editor(&room, "a").await;
    let mut b = server.viewer(&room, "b").await;
    // Two idle sockets fill the rest.
    let idle: Vec<_> =
        futures_util::future::join_all((0..CAP - 2).map(|_| TcpStream::connect(server.addr))).await;
    let (status, _) = status_from([127, 0, 0, 3], server.addr, "/healthz").await;
    assert_eq!(status, 429);
    a.draw_stroke(2, 20, 5).await;
    a.settle().await;
    b.sync_to(a.position().seq).await;
    drop(idle);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, metrics) = status_from([127, 0, 0, 3], server.addr, "/metrics").await;
        if status == 200 {
            assert!(series(&metrics, "kokuban_http_connections_refused_total") >= 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "slots were never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
