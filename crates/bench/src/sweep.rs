//! Running loads on fresh deployments: one run, and a relay sweep that grows the load until
//! the p99 passes the limit, then refines the steps near that limit.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::procs::{Adapter, FloorRuntime};
use crate::scenario::{self, Deployment, Load, Programs, RunResult};
use crate::syscalls::Perf;

/// The p99 above which a relay sweep stops: the load is beyond what the system serves.
pub const P99_LIMIT_MS: f64 = 50.0;

/// A deployment the plan can start again for every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Two Kokuban nodes sharing a Redis.
    KokubanCluster,
    /// Two Kokuban nodes sharing a Redis Cluster of this many masters.
    KokubanShards(usize),
    /// One Kokuban node with its embedded store.
    KokubanSingle,
    /// Socket.IO: two nodes with this Redis adapter, or one node without.
    SocketIo(Option<Adapter>),
    /// The floor.
    Floor(FloorRuntime),
}

impl Setup {
    /// Starts it (`nodes` for the cluster setups).
    pub async fn start(self, programs: &Programs, nodes: usize) -> anyhow::Result<Deployment> {
        match self {
            Setup::KokubanCluster | Setup::KokubanSingle => {
                let bin = programs.kokuban.as_ref().context("no kokuban binary")?;
                let cluster = self == Setup::KokubanCluster;
                Deployment::kokuban(bin, if cluster { nodes } else { 1 }, cluster).await
            }
            Setup::KokubanShards(masters) => {
                let bin = programs.kokuban.as_ref().context("no kokuban binary")?;
                Deployment::kokuban_on_redis_cluster(bin, nodes, masters).await
            }
            Setup::SocketIo(adapter) => {
                let n = if adapter.is_some() { nodes } else { 1 };
                Deployment::socketio(&programs.socketio, n, adapter).await
            }
            Setup::Floor(runtime) => {
                let bin = programs.floor.as_ref().context("no floor binary")?;
                Deployment::floor(bin, runtime).await
            }
        }
    }
}

/// What every run needs: the programs, the syscall counter, and what the run's notes collect.
#[derive(Debug)]
pub struct Runner {
    /// The programs under test.
    pub programs: Programs,
    /// Counts system calls where the machine allows it.
    pub perf: Option<Perf>,
    /// Kokuban's documented cursor coalescing interval.
    pub kokuban_coalescing: Duration,
    /// What was skipped or failed, and why.
    pub notes: Vec<String>,
}

impl Runner {
    /// One run on a fresh deployment (fresh processes: memory figures do not inherit the
    /// previous run's garbage, and a crashed run does not poison the next).
    pub async fn once(&self, setup: Setup, load: &Load) -> anyhow::Result<RunResult> {
        let mut dep = setup.start(&self.programs, 2).await?;
        let started = Instant::now();
        let coalescing = matches!(
            setup,
            Setup::KokubanCluster | Setup::KokubanSingle | Setup::KokubanShards(_)
        )
        .then_some(self.kokuban_coalescing);
        let result = scenario::run(&mut dep, load, self.perf.as_ref(), coalescing).await;
        dep.stop().await;
        let r = result?;
        if let Some(c) = &r.cursors {
            eprintln!(
                "  {} {} ({}): {} clients, {:.0} cursor updates/s delivered of {:.0} moves/s, \
                 p99 {:.2} ms, {} of {} pairs stale, server CPU {:.0}% [{:.0} s]",
                r.system.name(),
                load.scenario,
                r.mode,
                r.connected,
                c.delivered_per_s,
                c.sent as f64 / r.window_s,
                c.latency.p99_ms,
                c.stale_pairs,
                c.pairs,
                r.server_cpu_pct,
                started.elapsed().as_secs_f64()
            );
            return Ok(r);
        }
        eprintln!(
            "  {} {} ({}): {} clients, {:.0} msg/s delivered, p50 {:.2} ms, p99 {:.2} ms, \
             server CPU {:.1} us/msg ({:.0}%), syscalls {}/msg, lost {} refused {} dup {} reordered {}, \
             errors {} [{:.0} s]",
            r.system.name(),
            load.scenario,
            r.mode,
            r.connected,
            r.delivered_per_s,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.server_cpu_us_per_msg.unwrap_or(0.0),
            r.server_cpu_pct,
            r.server_syscalls_per_msg
                .map_or("?".into(), |c| format!("{:.2}", c.total)),
            r.lost,
            r.refused,
            r.duplicates,
            r.reordered,
            r.errors,
            started.elapsed().as_secs_f64()
        );
        Ok(r)
    }

    /// Runs `load` on each setup in turn; a failure becomes a note.
    pub async fn each(&mut self, setups: &[Setup], load: &Load) -> Vec<RunResult> {
        let mut out = Vec::new();
        for &setup in setups {
            match self.once(setup, load).await {
                Ok(r) => out.push(r),
                Err(e) => self
                    .notes
                    .push(format!("{} {setup:?} failed: {e:#}", load.scenario)),
            }
        }
        out
    }

    /// A relay sweep: `steps` until the first whose p99 passes the limit, then steps between
    /// the last within it and that one until they are at most `ratio` apart, then any of
    /// `extra` not run yet (loads another system is compared at). Sorted by clients.
    pub async fn sweep(
        &mut self,
        setup: Setup,
        steps: &[usize],
        ratio: f64,
        load: impl Fn(usize) -> Load,
        extra: &[usize],
    ) -> Vec<RunResult> {
        let mut runs = Vec::new();
        let (mut within, mut over) = (None, None);
        for &n in steps {
            if self.step(setup, &load(n), &mut runs).await {
                within = Some(n);
            } else {
                over = Some(n);
                break;
            }
        }
        while let Some(n) = refine(within, over, ratio) {
            if self.step(setup, &load(n), &mut runs).await {
                within = Some(n);
            } else {
                over = Some(n);
            }
        }
        for &n in extra {
            if !runs.iter().any(|r: &RunResult| r.clients == n) {
                self.step(setup, &load(n), &mut runs).await;
            }
        }
        runs.sort_by_key(|r| r.clients);
        runs
    }

    /// One step of a sweep; true if the system served it within the limit.
    async fn step(&mut self, setup: Setup, load: &Load, runs: &mut Vec<RunResult>) -> bool {
        match self.once(setup, load).await {
            Ok(r) => {
                let within = within_limit(&r);
                runs.push(r);
                within
            }
            Err(e) => {
                self.notes.push(format!(
                    "relay {setup:?} at {} clients failed: {e:#}",
                    load.clients()
                ));
                false
            }
        }
    }
}

/// Whether a run served its load: everyone joined and the p99 stayed within the limit.
pub fn within_limit(r: &RunResult) -> bool {
    r.latency.p99_ms <= P99_LIMIT_MS && r.connected == r.clients
}

/// The next load to try between the largest served (`within`) and the smallest not served
/// (`over`), while they are more than `ratio` apart: their geometric mean, in tens of clients
/// (rooms have ten members). Below a first step that already failed, halves it.
pub fn refine(within: Option<usize>, over: Option<usize>, ratio: f64) -> Option<usize> {
    let tens = |x: f64| ((x / 10.0).round() as usize * 10).max(10);
    match (within, over) {
        (Some(lo), Some(hi)) if hi as f64 > lo as f64 * ratio => {
            let m = tens((lo as f64 * hi as f64).sqrt());
            (m > lo && m < hi).then_some(m)
        }
        (None, Some(hi)) => Some(tens(hi as f64 / 2.0)).filter(|&m| m < hi),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refinement_narrows_until_steps_are_close_enough() {
        // Doubling steps: 200 served, 400 not.
        assert_eq!(refine(Some(200), Some(400), 1.25), Some(280));
        assert_eq!(refine(Some(280), Some(400), 1.25), Some(330));
        // 400 / 330 = 1.21: close enough.
        assert_eq!(refine(Some(330), Some(400), 1.25), None);
        assert_eq!(refine(Some(200), Some(280), 1.25), Some(240));
        assert_eq!(refine(Some(800), Some(1000), 1.25), None);
        // Nothing to refine without a failed step.
        assert_eq!(refine(Some(3200), None, 1.25), None);
        assert_eq!(refine(None, None, 1.25), None);
        // The first step failed: go down.
        assert_eq!(refine(None, Some(100), 1.25), Some(50));
        assert_eq!(refine(None, Some(10), 1.25), None);
        // Ten clients apart cannot be split.
        assert_eq!(refine(Some(10), Some(20), 1.25), None);
    }

    #[test]
    fn every_sequence_of_outcomes_ends_within_the_ratio() {
        // Whatever the outcomes, refinement ends with the bracket at most 1.25 apart (or ten
        // clients apart, the granularity).
        for pattern in 0u32..64 {
            let (mut lo, mut hi) = (Some(400), Some(800));
            let mut i = 0;
            while let Some(m) = refine(lo, hi, 1.25) {
                if pattern >> (i % 6) & 1 == 1 {
                    lo = Some(m);
                } else {
                    hi = Some(m);
                }
                i += 1;
                assert!(i < 20, "did not converge");
            }
            let (l, h) = (lo.unwrap_or(0), hi.unwrap_or(0));
            assert!(h as f64 <= l as f64 * 1.25 || h - l <= 10, "{l}..{h}");
        }
    }
}
