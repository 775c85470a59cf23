//! What Kokuban's test suites share, so that the server's integration tests, the browser tests
//! and the benchmark's tests start the outside world the same way:
//!
//! - [`redis::RedisServer`]: a real `redis-server` of the test's own on a free loopback port, in
//!   a temporary directory, that the test may stop, restart, freeze or kill; and
//!   [`redis::RedisServer::shared`], one per test binary for tests that only need *a* Redis.
//! - [`cluster::RedisCluster`]: six of them as a Redis Cluster (3 masters, 3 replicas).
//! - [`http`]: one HTTP/1.1 client for tests (hyper's, one connection per request).
//! - [`proxy::FaultProxy`]: one TCP proxy that injects network faults at run time.
//! - [`tls::Certs`]: a throwaway CA and a certificate it signed, for `rediss://`.
//! - [`free_port`]: a loopback port nobody listens on.
//!
//! Every process the kit starts dies with the test process, even when that one is killed.

pub mod cluster;
pub mod http;
mod lifeline;
pub mod proxy;
pub mod redis;
pub mod tls;

use std::net::TcpListener;
use std::time::Duration;

/// How long the kit waits for anything (a process to come up, an answer): generous, since
/// tests wait on events, never on timing, and CI machines are slow.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A loopback port nobody listens on now. Another process may take it before the caller
/// binds it; the caller's start then fails loudly, which is rare enough for tests.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `ready` every 20 ms until it holds; panics with `what` after [`TIMEOUT`].
pub(crate) async fn wait_until<F, Fut>(what: impl Fn() -> String, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !ready().await {
        assert!(tokio::time::Instant::now() < deadline, "{}", what());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
