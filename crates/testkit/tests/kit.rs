//! The kit against the real things it starts: `redis-server` processes (alone and as a
//! cluster), a socket that answers HTTP the way ChromeDriver does, and an echo server behind
//! the fault proxy.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kokuban_testkit::cluster::{MASTERS, RedisCluster};
use kokuban_testkit::http::Request;
use kokuban_testkit::proxy::FaultProxy;
use kokuban_testkit::redis::RedisServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn text(v: redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b).unwrap(),
        redis::Value::SimpleString(s) => s,
        redis::Value::Okay => "OK".to_owned(),
        other => panic!("not text: {other:?}"),
    }
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn a_redis_server_pauses_resumes_survives_a_restart_and_dies_with_its_handle() {
    let mut redis = RedisServer::start(true).await;
    redis.command(&["SET", "k", "v"]).await;

    // Paused, it answers nothing, and keeps the connection open.
    let mut c = redis.connection().await.unwrap();
    redis.pause();
    let ping = tokio::time::timeout(
        Duration::from_millis(300),
        redis::cmd("PING").query_async::<String>(&mut c),
    )
    .await;
    assert!(ping.is_err(), "a paused server answered: {ping:?}");
    redis.resume();
    let pong: String = redis::cmd("PING").query_async(&mut c).await.unwrap();
    assert_eq!(pong, "PONG");

    // Append-only: what was written is there after a graceful stop and a restart.
    redis.stop().await;
    assert!(!redis.is_running());
    redis.restart().await;
    assert_eq!(text(redis.command(&["GET", "k"]).await), "v");

    // Killed, it is gone at once; dropped, too.
    let pid = redis.pid().unwrap();
    redis.kill();
    assert!(!process_exists(pid), "redis-server {pid} survived SIGKILL");
    assert!(!redis.is_running());
    assert!(TcpStream::connect(redis.addr()).await.is_err());
    redis.restart().await;
    let pid = redis.pid().unwrap();
    drop(redis);
    assert!(
        !process_exists(pid),
        "redis-server {pid} outlived its handle"
    );
}

/// Set in the copy of this test binary that the next test starts and kills.
const CHILD: &str = "KOKUBAN_TESTKIT_CHILD";

#[tokio::test]
async fn a_redis_server_dies_with_a_test_process_killed_before_it_could_drop_it() {
    if std::env::var_os(CHILD).is_some() {
        // The child: the shared server is never dropped; only the lifeline can end it.
        let redis = RedisServer::shared().await;
        println!("redis-pid={}", redis.pid().unwrap());
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "--nocapture", "--test-threads=1"])
        .arg("a_redis_server_dies_with_a_test_process_killed_before_it_could_drop_it")
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let pid: u32 = loop {
        let line = tokio::time::timeout(kokuban_testkit::TIMEOUT, lines.next_line())
            .await
            .expect("the child started its Redis")
            .unwrap()
            .expect("the child printed its Redis's pid");
        // libtest writes `test NAME ... ` before the test's own output, on the same line.
        if let Some((_, pid)) = line.split_once("redis-pid=") {
            break pid.trim().parse().unwrap();
        }
    };
    assert!(process_exists(pid));
    child.kill().await.unwrap();
    let deadline = Instant::now() + kokuban_testkit::TIMEOUT;
    while process_exists(pid) {
        assert!(
            Instant::now() < deadline,
            "redis-server {pid} outlived its killed test process"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_shared_redis_is_one_server_for_every_caller() {
    let a = RedisServer::shared().await;
    let b = RedisServer::shared().await;
    assert_eq!(a.port, b.port);
    assert_eq!(text(a.command(&["PING"]).await), "PONG");
}

/// A server that answers one request the way ChromeDriver does: `Connection: close`
/// announced, the body sized by `Content-Length` (or chunked), and the socket left open.
async fn answer_and_linger(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
        }
        s.write_all(answer).await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    addr
}

// Two workers: the blocking request holds one, the answering socket needs the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_client_reads_sized_and_chunked_bodies_from_a_socket_left_open() {
    let sized =
        answer_and_linger(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
            .await;
    let r = Request::get(sized, "/status")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "{}"));

    let chunked = answer_and_linger(
        b"HTTP/1.1 201 Created\r\nX-Kind: chunks\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .await;
    let r = Request::post(chunked, "/x")
        .body("payload")
        .timeout(Duration::from_secs(5))
        .send_blocking()
        .unwrap();
    assert_eq!((r.status, r.text().as_str()), (201, "abcde"));
    assert_eq!(r.header("x-kind"), Some("chunks"));

    // Nothing listening: an error, not a hang.
    let closed = SocketAddr::from(([127, 0, 0, 1], kokuban_testkit::free_port()));
    assert!(Request::get(closed, "/").send().await.is_err());
}

/// An echo server: every byte read is written back.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn round_trip(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.write_all(b"ping").await.ok()?;
    let mut buf = [0u8; 4];
    match tokio::time::timeout(within, s.read_exact(&mut buf)).await {
        Ok(Ok(_)) if &buf == b"ping" => Some(started.elapsed()),
        _ => None,
    }
}

#[tokio::test]
async fn the_proxy_delays_freezes_cuts_and_heals_a_link() {
    let proxy = FaultProxy::start(echo().await).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let second = Duration::from_secs(1);
    assert!(round_trip(&mut s, second).await.is_some());

    proxy.delay(Duration::from_millis(100), Duration::from_millis(100));
    let took = round_trip(&mut s, second).await.expect("a slow answer");
    assert!(took >= Duration::from_millis(200), "{took:?}");

    // Frozen: nothing passes and nothing closes; healed, the held bytes arrive.
    proxy.heal();
    proxy.blackhole();
    assert!(
        round_trip(&mut s, Duration::from_millis(300))
            .await
            .is_none()
    );
    proxy.heal();
    let mut buf = [0u8; 4];
    tokio::time::timeout(second, s.read_exact(&mut buf))
        .await
        .expect("held bytes delivered")
        .unwrap();

    // Cut: the open connection ends, new ones are closed at once; healed, they work again.
    proxy.cut();
    assert_eq!(
        tokio::time::timeout(second, s.read(&mut buf))
            .await
            .unwrap()
            .ok(),
        Some(0)
    );
    let mut fresh = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(
        round_trip(&mut fresh, Duration::from_millis(300))
            .await
            .is_none()
    );
    proxy.heal();
    let mut fresh = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(round_trip(&mut fresh, second).await.is_some());
    assert!(proxy.accepted() >= 3 && proxy.forwarded() > 0);
}

#[tokio::test]
async fn a_redis_cluster_serves_every_slot_and_fails_a_killed_master_over_to_its_replica() {
    let mut cluster = RedisCluster::start().await;
    assert_eq!(cluster.masters().await.len(), MASTERS);
    assert_eq!(cluster.seed_urls().len(), MASTERS * 2);

    // A key written on its master and acknowledged by its replica (WAIT) ...
    let key = "{room-1}:log";
    let owner = cluster.master_of(key).await;
    // One connection for both: WAIT counts the replicas that have this client's writes.
    let mut c = cluster.node(owner).connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("drawn")
        .query_async(&mut c)
        .await
        .unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(acked, 1, "the replica has the key");

    // ... survives the master's crash: a replica takes over its slots with the key.
    cluster.kill(owner);
    cluster.wait_failover().await;
    let promoted = cluster.master_of(key).await;
    assert_ne!(promoted, owner);
    let got = cluster.node(promoted).command(&["GET", key]).await;
    assert_eq!(
        got,
        redis::Value::BulkString(b"drawn".to_vec()),
        "owner {owner}, promoted {promoted}:\n{}",
        cluster.node(promoted).log()
    );
}
