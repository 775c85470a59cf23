//! Hardening checks: what every attack case asserts besides its own answer (no crash, other
//! rooms keep their latency, memory returns to its baseline, a metric counts it; the metric is
//! the case's own).

use std::time::Duration;

use super::{TIMEOUT, TestClient, TestServer, stroke_ops};

/// Resident memory of this process (the server runs in it), in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Memory the process may keep after an attack: allocator caches and the other tests of the
/// same binary running meanwhile, far below what any attack would cost if it were buffered.
pub const RSS_SLACK_KIB: u64 = 96 * 1024;

/// A member of another room that measures how long its own op takes to be acknowledged.
pub struct Probe {
    pub client: TestClient,
    seed: u32,
}

impl Probe {
    pub async fn new(server: &TestServer) -> Probe {
        let room = server.create_room().await;
        Probe {
            client: server.editor(&room, "probe").await,
            seed: 0,
        }
    }

    /// One op's round trip (sent, sequenced, acknowledged).
    pub async fn round_trip(&mut self) -> Duration {
        self.seed += 1;
        let (_, ops) = stroke_ops(self.seed, 2, 1);
        let started = std::time::Instant::now();
        self.client.send_op(ops[0].clone()).await;
        self.client.settle().await;
        started.elapsed()
    }
}

/// Watches a server through an attack: a probe in another room with its latency baseline, the
/// open connections and the process's memory before it began.
pub struct Watch {
    /// No other test's server runs meanwhile: memory is this test's alone.
    _alone: tokio::sync::OwnedRwLockWriteGuard<()>,
    probe: Probe,
    baseline: Duration,
    bound: Duration,
    open_before: f64,
    rss_before: u64,
}

impl Watch {
    /// Measures the baselines; start it before the attacker connects.
    pub async fn start(server: &TestServer) -> Watch {
        let alone = server.run_alone().await;
        let mut probe = Probe::new(server).await;
        let mut baseline = Duration::ZERO;
        for _ in 0..10 {
            baseline = baseline.max(probe.round_trip().await);
        }
        Watch {
            _alone: alone,
            probe,
            baseline,
            // Two busy cores and other tests in parallel: generous, yet far below the seconds
            // an attack that stalled the node would cause.
            bound: baseline * 20 + Duration::from_millis(750),
            open_before: server.metric("kokuban_connections_open").await,
            rss_before: rss_kib(),
        }
    }

    /// The other room's op is acknowledged within the bound, now.
    pub async fn check(&mut self) {
        let took = self.probe.round_trip().await;
        assert!(
            took <= self.bound,
            "another room's op took {took:?} during the attack (baseline {:?})",
            self.baseline
        );
    }

    /// After the attacker left: its connections are gone, memory is back near its baseline,
    /// and the other room still works.
    pub async fn finish(mut self, server: &TestServer) {
        let open_before = self.open_before;
        server
            .wait_metric("kokuban_connections_open", |v| v <= open_before)
            .await;
        let rss_after = rss_kib();
        assert!(
            rss_after <= self.rss_before + RSS_SLACK_KIB,
            "memory grew from {} KiB to {rss_after} KiB",
            self.rss_before
        );
        self.check().await;
    }
}

/// Runs `attack` against `server` while a member of another room keeps drawing (see
/// [`Watch`]). Returns what the attack returned.
pub async fn under_attack<T: Send + 'static>(
    server: &TestServer,
    attack: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let mut watch = Watch::start(server).await;
    let attacker = tokio::spawn(attack);
    let mut probes = 0;
    while !attacker.is_finished() || probes < 3 {
        watch.check().await;
        probes += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let result = tokio::time::timeout(TIMEOUT, attacker)
        .await
        .expect("the attack ends")
        .expect("the attack task");
    watch.finish(server).await;
    result
}

/// A resident-memory reading, for messages.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
