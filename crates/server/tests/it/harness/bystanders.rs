//! Another room on a node under test, whose latency is watched while something else goes
//! wrong: the "other rooms keep their latency" check of the fault tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kokuban_protocol::{Op, ServerMsg};

use super::pen::{op_id, text_op};
use super::{TestClient, TestServer};

/// The time from one member's op to its arrival at another, median of `n` tries: the latency
/// a room's members feel.
pub async fn room_latency(from: &mut TestClient, to: &mut TestClient, n: usize) -> Duration {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let op = text_op(16);
        let id = op_id(&op);
        let sent = Instant::now();
        from.send_op(op).await;
        to.recv_until(|m| {
            matches!(m, ServerMsg::Op(s) if matches!(&s.op, Op::Text { id: i, .. } if *i == id))
        })
        .await;
        samples.push(sent.elapsed());
        from.settle().await;
    }
    samples.sort();
    samples[n / 2]
}

/// Latency under fault is "normal" if it stays within a generous factor of the baseline: two
/// busy cores make single samples noisy, but a room stalled behind a fault takes seconds.
pub fn assert_normal_latency(what: &str, baseline: Duration, now: Duration) {
    let bound = baseline * 5 + Duration::from_millis(100);
    assert!(
        now <= bound,
        "{what}: {now:?} against a baseline of {baseline:?}"
    );
}

/// Another room, whose latency the test watches: two members on a node, one sending small
/// ops and the other timing their arrival, all along in the background (so that they also
/// answer every ping).
pub struct Bystanders {
    baseline: Duration,
    samples: Arc<std::sync::Mutex<Vec<Duration>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Bystanders {
    pub async fn on(server: &TestServer) -> Bystanders {
        let room = server.create_room().await;
        let talker = server.editor(&room, "talker").await;
        let listener = server.viewer(&room, "listener").await;
        Self::watch(talker, listener).await
    }

    pub async fn watch(mut talker: TestClient, mut listener: TestClient) -> Bystanders {
        let baseline = room_latency(&mut talker, &mut listener, 7).await;
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (samples, stop) = (samples.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let d = room_latency(&mut talker, &mut listener, 1).await;
                    samples.lock().unwrap().push(d);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Bystanders {
            baseline,
            samples,
            stop,
            task,
        }
    }

    /// Checks the samples taken since the last check (waiting for at least three).
    pub async fn check(&mut self, what: &str) {
        let deadline = Instant::now() + super::TIMEOUT;
        let mut taken = loop {
            {
                let mut samples = self.samples.lock().unwrap();
                if samples.len() >= 3 {
                    break std::mem::take(&mut *samples);
                }
            }
            assert!(
                !self.task.is_finished(),
                "{what}: the other room's members failed"
            );
            assert!(Instant::now() < deadline, "{what}: the other room is stuck");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        taken.sort();
        assert_normal_latency(what, self.baseline, taken[taken.len() / 2]);
    }
}

impl Drop for Bystanders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
