//! System calls of the server processes, counted by `perf stat` on the kernel's syscall
//! tracepoints.
//!
//! `/proc/PID/io` counts only calls of the `read`/`write` family (`syscr`, `syscw`), not
//! `sendto`, `recvfrom`, `epoll_wait` or `futex`, which is where a relay spends its calls; the
//! tracepoints count every entry into the kernel, per process, without stopping it (no
//! `ptrace`). Where `perf` is missing or tracepoints are not allowed, the figures are absent
//! rather than estimated. Counting costs a little kernel time per call, so it runs in a window
//! of its own after the CPU window, under the same load.

use std::time::Duration;

use serde::Serialize;
use tokio::process::Command;

/// The tracepoint that fires on every system call.
const ALL: &str = "raw_syscalls:sys_enter";

/// The calls counted by kind, each a group of `syscalls:sys_enter_*` tracepoints.
const GROUPS: [(Kind, &[&str]); 4] = [
    (
        Kind::Writes,
        &["write", "writev", "sendto", "sendmsg", "sendmmsg"],
    ),
    (
        Kind::Reads,
        &["read", "readv", "recvfrom", "recvmsg", "recvmmsg"],
    ),
    (Kind::Waits, &["epoll_wait", "epoll_pwait", "epoll_pwait2"]),
    (Kind::Futex, &["futex"]),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Writes,
    Reads,
    Waits,
    Futex,
}

/// System calls of one process over a span of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Every system call.
    pub total: f64,
    /// Socket and file writes (`write`, `writev`, `sendto`, `sendmsg`, `sendmmsg`).
    pub writes: Option<f64>,
    /// Socket and file reads (`read`, `readv`, `recvfrom`, `recvmsg`, `recvmmsg`).
    pub reads: Option<f64>,
    /// Waits for readiness (`epoll_wait` and its variants).
    pub waits: Option<f64>,
    /// `futex`: threads waking each other or waiting for a lock.
    pub futex: Option<f64>,
}

impl Counts {
    /// Adds another process's counts.
    pub fn add(&mut self, o: &Counts) {
        let sum = |a: Option<f64>, b: Option<f64>| Some(a? + b?);
        self.total += o.total;
        self.writes = sum(self.writes, o.writes);
        self.reads = sum(self.reads, o.reads);
        self.waits = sum(self.waits, o.waits);
        self.futex = sum(self.futex, o.futex);
    }

    /// Every figure divided by `n`.
    pub fn per(&self, n: f64) -> Counts {
        let d = |v: Option<f64>| v.map(|v| v / n);
        Counts {
            total: self.total / n,
            writes: d(self.writes),
            reads: d(self.reads),
            waits: d(self.waits),
            futex: d(self.futex),
        }
    }
}

/// Parses `perf stat -x,` output (`value,unit,event,…` per line) into counts; `None` if the
/// total was not counted.
pub fn parse_perf_csv(text: &str) -> Option<Counts> {
    let mut total = None;
    let mut kinds: Vec<(Kind, Option<f64>)> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split(',');
        let (Some(value), Some(_unit), Some(event)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // "<not counted>" and "<not supported>" parse as nothing.
        let value: Option<f64> = value.trim().parse().ok();
        if event == ALL {
            total = value;
            continue;
        }
        let Some(call) = event.strip_prefix("syscalls:sys_enter_") else {
            continue;
        };
        let Some((kind, _)) = GROUPS.iter().find(|(_, calls)| calls.contains(&call)) else {
            continue;
        };
        match kinds.iter_mut().find(|(k, _)| k == kind) {
            Some((_, sum)) => *sum = sum.zip(value).map(|(a, b)| a + b),
            None => kinds.push((*kind, value)),
        }
    }
    let of = |k: Kind| kinds.iter().find(|(x, _)| *x == k).and_then(|(_, v)| *v);
    Some(Counts {
        total: total?,
        writes: of(Kind::Writes),
        reads: of(Kind::Reads),
        waits: of(Kind::Waits),
        futex: of(Kind::Futex),
    })
}

/// `perf` with the tracepoints this machine allows, found once per run.
#[derive(Debug, Clone)]
pub struct Perf {
    events: Vec<String>,
}

impl Perf {
    /// Checks that `perf stat` can count syscall tracepoints here: all groups if it can, the
    /// total alone if only that works, `Err` with the reason otherwise.
    pub async fn probe() -> Result<Perf, String> {
        let detailed: Vec<String> = std::iter::once(ALL.to_string())
            .chain(
                GROUPS
                    .iter()
                    .flat_map(|(_, calls)| calls.iter().map(|c| format!("syscalls:sys_enter_{c}"))),
            )
            .collect();
        let mut reason = String::new();
        for events in [detailed, vec![ALL.to_string()]] {
            let out = Command::new("perf")
                .args(["stat", "-x,", "-e", &events.join(","), "--", "true"])
                .output()
                .await;
            match out {
                Ok(o) if o.status.success() => {
                    if parse_perf_csv(&String::from_utf8_lossy(&o.stderr)).is_some() {
                        return Ok(Perf { events });
                    }
                    reason = "perf counted nothing".into();
                }
                Ok(o) => reason = String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => reason = format!("perf could not be started: {e}"),
            }
        }
        Err(reason)
    }

    /// Counts the calls of each process for `span`, concurrently; `None` for a process perf
    /// could not attach to.
    pub async fn count(&self, pids: &[u32], span: Duration) -> Vec<Option<Counts>> {
        let runs = pids.iter().map(|pid| {
            let mut cmd = Command::new("perf");
            cmd.args(["stat", "-x,", "-e", &self.events.join(",")])
                .args(["-p", &pid.to_string(), "--", "sleep"])
                .arg(format!("{:.3}", span.as_secs_f64()))
                .kill_on_drop(true);
            async move {
                let o = cmd.output().await.ok()?;
                let c = parse_perf_csv(&String::from_utf8_lossy(&o.stderr))?;
                Some(c.per(span.as_secs_f64()))
            }
        });
        futures_util::future::join_all(runs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_csv_is_summed_by_kind() {
        let text = "10337,,raw_syscalls:sys_enter,440851673,100.00,,\n\
                    45,,syscalls:sys_enter_write,440851673,100.00,,\n\
                    5,,syscalls:sys_enter_sendto,440851673,100.00,,\n\
                    202,,syscalls:sys_enter_read,440851673,100.00,,\n\
                    4,,syscalls:sys_enter_recvfrom,440851673,100.00,,\n\
                    7,,syscalls:sys_enter_epoll_wait,440851673,100.00,,\n\
                    2429,,syscalls:sys_enter_futex,440851673,100.00,,\n";
        let c = parse_perf_csv(text).expect("counted");
        assert_eq!(c.total, 10337.0);
        assert_eq!(c.writes, Some(50.0));
        assert_eq!(c.reads, Some(206.0));
        assert_eq!(c.waits, Some(7.0));
        assert_eq!(c.futex, Some(2429.0));
        let half = c.per(2.0);
        assert_eq!((half.total, half.writes), (5168.5, Some(25.0)));
    }

    #[test]
    fn uncounted_events_give_no_figure() {
        let text = "<not supported>,,raw_syscalls:sys_enter,0,100.00,,\n";
        assert_eq!(parse_perf_csv(text), None);
        let only_total = "12,,raw_syscalls:sys_enter,1,100.00,,\n\
                          <not counted>,,syscalls:sys_enter_write,0,0.00,,\n\
                          3,,syscalls:sys_enter_writev,1,100.00,,\n";
        let c = parse_perf_csv(only_total).expect("total counted");
        assert_eq!((c.total, c.writes, c.reads), (12.0, None, None));
        let mut sum = c;
        sum.add(&Counts {
            total: 1.0,
            ..Counts::default()
        });
        assert_eq!((sum.total, sum.writes), (13.0, None));
    }
}
