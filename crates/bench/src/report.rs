//! BENCHMARKS.md, bench/results.json and the plots, from the results of one run.

use std::fmt::Write as _;
use std::path::Path;

use crate::plan::{P99_LIMIT_MS, Results};
use crate::plot::{self, Series};
use crate::scenario::{RunResult, System};

/// The command that produces the report.
pub const XTASK_COMMAND: &str = "cargo xtask bench";
/// The same without the xtask.
pub const DIRECT_COMMAND: &str = "cargo run --release -p kokuban-bench -- all --out .";

/// Writes BENCHMARKS.md under `out`, and results.json and the plots under `out/bench`.
pub fn write(out: &Path, results: &Results) -> anyhow::Result<()> {
    let bench = out.join("bench");
    std::fs::create_dir_all(&bench)?;
    std::fs::write(
        bench.join("results.json"),
        serde_json::to_string_pretty(results)? + "\n",
    )?;
    let view = View::new(results);
    let plots = view.plots(&bench)?;
    std::fs::write(out.join("BENCHMARKS.md"), view.markdown(&plots))?;
    Ok(())
}

/// A run's series name, e.g. "Kokuban (2 node(s) + Redis)".
pub fn label(r: &RunResult) -> String {
    format!("{} ({})", r.system.name(), r.mode)
}

fn bytes(b: f64) -> String {
    let a = b.abs();
    if a >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if a >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if a >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
}

/// A sweep of one system in one mode.
struct Sweep<'a> {
    label: String,
    runs: Vec<&'a RunResult>,
}

impl Sweep<'_> {
    /// The largest load served with p99 within the limit, and whether a larger step went past
    /// it (otherwise the sweep ran out of steps or failed first, and capacity is a lower bound).
    fn capacity(&self) -> Option<(&RunResult, bool)> {
        let ok = self
            .runs
            .iter()
            .filter(|r| r.latency.p99_ms <= P99_LIMIT_MS && r.connected == r.clients)
            .max_by_key(|r| r.clients)?;
        let edge = self.runs.iter().any(|r| r.clients > ok.clients);
        Some((ok, edge))
    }

    fn at(&self, clients: usize) -> Option<&RunResult> {
        self.runs.iter().copied().find(|r| r.clients == clients)
    }
}

struct View<'a> {
    r: &'a Results,
    sweeps: Vec<Sweep<'a>>,
    sharded: Vec<&'a RunResult>,
}

struct Plots {
    cdf: Option<(String, usize)>,
    throughput: Option<String>,
    p99: Option<String>,
}

impl<'a> View<'a> {
    fn new(r: &'a Results) -> Self {
        let mut sweeps: Vec<Sweep> = Vec::new();
        let mut sharded = Vec::new();
        for run in &r.relay {
            if run.mode.contains("sharded") {
                sharded.push(run);
                continue;
            }
            let l = label(run);
            match sweeps.iter_mut().find(|s| s.label == l) {
                Some(s) => s.runs.push(run),
                None => sweeps.push(Sweep {
                    label: l,
                    runs: vec![run],
                }),
            }
        }
        Self { r, sweeps, sharded }
    }

    fn sweep_of(&self, system: System, cluster: bool) -> Option<&Sweep<'a>> {
        self.sweeps
            .iter()
            .find(|s| s.runs[0].system == system && (s.runs[0].nodes > 1) == cluster)
    }

    /// The pairs of sweeps compared, like with like: (what, Socket.IO, Kokuban), the
    /// two-node deployments first.
    fn pairs(&self) -> Vec<(&'static str, &Sweep<'a>, &Sweep<'a>)> {
        [("two nodes sharing Redis", true), ("one node", false)]
            .into_iter()
            .filter_map(|(what, cluster)| {
                Some((
                    what,
                    self.sweep_of(System::SocketIo, cluster)?,
                    self.sweep_of(System::Kokuban, cluster)?,
                ))
            })
            .collect()
    }

    /// The load at which two sweeps are compared: the largest client count both served
    /// within the p99 limit (else the smallest both ran).
    fn same_load_of(b: &Sweep, k: &Sweep) -> Option<usize> {
        let both = |ok: bool| {
            b.runs
                .iter()
                .filter(|r| !ok || r.latency.p99_ms <= P99_LIMIT_MS)
                .map(|r| r.clients)
                .filter(|&c| {
                    k.at(c)
                        .is_some_and(|r| !ok || r.latency.p99_ms <= P99_LIMIT_MS)
                })
                .collect::<Vec<_>>()
        };
        both(true)
            .into_iter()
            .max()
            .or_else(|| both(false).into_iter().min())
    }

    /// The load of the first (most like-for-like) pair.
    fn same_load(&self) -> Option<usize> {
        let (_, b, k) = *self.pairs().first()?;
        Self::same_load_of(b, k)
    }

    fn plots(&self, dir: &Path) -> anyhow::Result<Plots> {
        let mut plots = Plots {
            cdf: None,
            throughput: None,
            p99: None,
        };
        if let Some(n) = self.same_load() {
            let series: Vec<Series> = self
                .sweeps
                .iter()
                .filter_map(|s| {
                    let run = s.at(n)?;
                    let h = run.hists.as_ref()?;
                    Some(Series {
                        label: s.label.clone(),
                        points: h.all.cdf(),
                    })
                })
                .collect();
            let name = "latency-cdf.svg";
            plot::latency_cdf(
                &dir.join(name),
                &format!("Relay latency, {n} clients (rooms of 10, 2 editors at 60 Hz)"),
                &series,
            )?;
            plots.cdf = Some((format!("bench/{name}"), n));
        }
        if !self.sweeps.is_empty() {
            let series = |f: &dyn Fn(&RunResult) -> f64| -> Vec<Series> {
                self.sweeps
                    .iter()
                    .map(|s| Series {
                        label: s.label.clone(),
                        points: s.runs.iter().map(|r| (r.clients as f64, f(r))).collect(),
                    })
                    .collect()
            };
            let name = "relay-throughput.svg";
            plot::sweep(
                &dir.join(name),
                "Relay: delivered messages per second",
                "delivered msg/s",
                false,
                &series(&|r| r.delivered_per_s),
            )?;
            plots.throughput = Some(format!("bench/{name}"));
            let name = "relay-p99.svg";
            plot::sweep(
                &dir.join(name),
                "Relay: p99 end-to-end latency",
                "p99 latency (ms, log scale)",
                true,
                &series(&|r| r.latency.p99_ms.max(0.001)),
            )?;
            plots.p99 = Some(format!("bench/{name}"));
        }
        Ok(plots)
    }

    fn markdown(&self, plots: &Plots) -> String {
        let r = self.r;
        let mut md = String::new();
        let m = &r.machine;
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "Kokuban against the stack most teams would pick for the job — Node.js Socket.IO with \
             `@socket.io/redis-adapter` — driven by the same load generator with the same \
             scenarios, on the same machine, in the same run. Every figure below was measured \
             by that run and written by `kokuban-bench`; nothing is edited by hand.\n"
        );
        if r.quick {
            let _ = writeln!(
                md,
                "> **Quick run** (`--quick`): small loads and short windows for development. \
                 These are not the reference figures; run the full benchmark for those.\n"
            );
        }
        let _ = writeln!(md, "## Machine and versions\n");
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| CPU | {} |", m.cpu_model);
        let _ = writeln!(md, "| cores | {} |", m.cores);
        let _ = writeln!(md, "| memory | {} |", bytes(m.memory_bytes as f64));
        let _ = writeln!(md, "| kernel | {} |", m.kernel);
        let _ = writeln!(
            md,
            "| load average when the run started | {:.2} |",
            m.load_average_at_start
        );
        let _ = writeln!(md, "| open-file limit | {} |", r.open_file_limit);
        let _ = writeln!(md, "| length of the run | {:.0} s |", r.duration_s);
        for (k, v) in &r.versions {
            let _ = writeln!(md, "| {k} | {v} |");
        }
        let _ = writeln!(
            md,
            "\nThe servers, Redis and the load generator share these cores, so every CPU figure \
             is per process (from `/proc/PID/stat`), and the load generator's own CPU is shown \
             beside each run.\n"
        );
        let _ = writeln!(md, "## Reproduce\n");
        let _ = writeln!(
            md,
            "```sh\n{XTASK_COMMAND}\n# or, without the xtask:\n{DIRECT_COMMAND}\n# a short development run:\ncargo run --release -p kokuban-bench -- all --quick --out target/bench-quick\n```\n"
        );
        let _ = writeln!(
            md,
            "The command installs the baseline's pinned dependencies (`npm ci` in \
             `bench/socketio`), builds the `kokuban` server, starts its own `redis-server` \
             processes on free loopback ports, and writes this file, `bench/results.json` and \
             the plots. Needs: Node.js 20+, npm, `redis-server` 7 on the PATH.\n"
        );

        self.targets(&mut md);
        self.relay_section(&mut md, plots);
        self.fanout_section(&mut md);
        self.idle_section(&mut md);
        self.join_section(&mut md);
        self.single_vs_cluster(&mut md);
        self.limits(&mut md);
        self.method(&mut md);
        if !r.notes.is_empty() {
            let _ = writeln!(md, "## Notes from this run\n");
            for n in &r.notes {
                let _ = writeln!(md, "- {}", n.replace('\n', " "));
            }
            md.push('\n');
        }
        md
    }

    fn targets(&self, md: &mut String) {
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| target | measured | status |\n|---|---|---|");
        let status = |met: Option<bool>| match met {
            Some(true) => "**met**",
            Some(false) => "**missed**",
            None => "not measured",
        };
        // 1. CPU per delivered message, like with like.
        let pairs = self.pairs();
        if pairs.is_empty() {
            let _ = writeln!(
                md,
                "| Server CPU per delivered message ≥ 5× lower than Socket.IO (relay, same load) | no comparable run (see notes) | {} |",
                status(None)
            );
        }
        for (what, b, k) in pairs {
            let n = Self::same_load_of(b, k);
            let figures = n.and_then(|n| {
                let sb = b.at(n)?.server_cpu_us_per_msg?;
                let sk = k.at(n)?.server_cpu_us_per_msg?;
                (sk > 0.0).then_some((n, sb, sk))
            });
            let user = n.and_then(|n| {
                let ub = user_us_per_msg(b.at(n)?)?;
                let uk = user_us_per_msg(k.at(n)?)?;
                (uk > 0.0).then(|| format!("; user space alone {:.1}× lower", ub / uk))
            });
            let (text, met) = match figures {
                Some((n, sb, sk)) => (
                    format!(
                        "{:.1}× lower at {n} clients: {sk:.2} µs vs {sb:.2} µs{}",
                        sb / sk,
                        user.unwrap_or_default()
                    ),
                    Some(sb / sk >= 5.0),
                ),
                None => ("no comparable run".into(), None),
            };
            let _ = writeln!(
                md,
                "| Server CPU per delivered message ≥ 5× lower than Socket.IO (relay, same load; {what}) | {text} | {} |",
                status(met)
            );
        }
        // 2. Cross-node p99 at half capacity, and no loss anywhere.
        let cluster = self.sweep_of(System::Kokuban, true);
        let (text, met) = match cluster.and_then(|k| Some((k, k.capacity()?))) {
            Some((k, (cap, edge))) => {
                let half = k
                    .at(cap.clients / 2)
                    .or_else(|| k.runs.first().copied())
                    .expect("a sweep has runs");
                let p99 = half.latency_cross_node.p99_ms;
                let bound = if edge {
                    ""
                } else {
                    " (a lower bound: the sweep ended before p99 passed 50 ms)"
                };
                (
                    format!(
                        "cross-node p99 {p99:.2} ms at {} clients; capacity {} clients ({} msg/s){bound}",
                        half.clients,
                        cap.clients,
                        thousands(cap.delivered_per_s),
                    ),
                    Some(p99 <= 5.0),
                )
            }
            None if cluster.is_some() => {
                ("no cluster relay run within the limit".into(), Some(false))
            }
            None => (
                "cluster mode was not available, so nothing crossed nodes (see notes)".into(),
                None,
            ),
        };
        let _ = writeln!(
            md,
            "| Cross-node p99 ≤ 5 ms at half of the measured capacity | {text} | {} |",
            status(met)
        );
        let kok: Vec<&RunResult> = self
            .r
            .relay
            .iter()
            .chain(&self.r.fanout)
            .filter(|r| r.system == System::Kokuban)
            .collect();
        let (text, met) = if kok.is_empty() {
            ("no Kokuban run".into(), None)
        } else {
            let sum = |f: &dyn Fn(&RunResult) -> u64| kok.iter().map(|r| f(r)).sum::<u64>();
            let (lost, dup, reo, gaps, back) = (
                sum(&|r| r.lost),
                sum(&|r| r.duplicates),
                sum(&|r| r.reordered),
                sum(&|r| r.seq_gaps),
                sum(&|r| r.seq_backwards),
            );
            let delivered = sum(&|r| r.delivered);
            (
                format!(
                    "{lost} lost, {dup} duplicated, {reo} reordered, {gaps} seq gaps, {back} seq \
                     steps back, over {} deliveries in {} runs",
                    thousands(delivered as f64),
                    kok.len()
                ),
                Some(lost + dup + reo + gaps + back == 0),
            )
        };
        let _ = writeln!(
            md,
            "| Zero loss, duplicates or reordering (every Kokuban relay and fan-out run) | {text} | {} |",
            status(met)
        );
        // 3. Idle RSS.
        let idle = self.r.idle.iter().find(|r| r.system == System::Kokuban);
        let (text, met) = match idle.and_then(|r| Some((r, r.rss_per_connection?))) {
            Some((r, per)) => (
                format!(
                    "{} per connection with {} idle connections",
                    bytes(per),
                    thousands(r.connected as f64)
                ),
                Some(per <= 8192.0),
            ),
            None => ("no Kokuban idle run".into(), None),
        };
        let _ = writeln!(
            md,
            "| ≤ 8 KiB of server RSS per idle connection | {text} | {} |",
            status(met)
        );
        // 4. Join.
        let (text, met) = if self.r.join.is_empty() {
            ("no join run".into(), None)
        } else {
            let worst = self
                .r
                .join
                .iter()
                .map(|j| j.welcome_median_ms)
                .fold(0.0, f64::max);
            let parts: Vec<String> = self
                .r
                .join
                .iter()
                .map(|j| {
                    format!(
                        "{:.0} ms median, {:.0} ms max ({}, {} points)",
                        j.welcome_median_ms,
                        j.welcome_max_ms,
                        j.mode,
                        thousands(j.points as f64)
                    )
                })
                .collect();
            let full = self.r.join.iter().all(|j| j.points >= 1_000_000);
            (parts.join("; "), full.then_some(worst < 300.0))
        };
        let _ = writeln!(
            md,
            "| Board of 1,000,000 points: Welcome received in < 300 ms | {text} | {} |",
            status(met)
        );
        md.push('\n');
    }

    fn relay_section(&self, md: &mut String, plots: &Plots) {
        let _ = writeln!(md, "## Relay\n");
        let steps: Vec<String> = self.r.relay_steps.iter().map(|s| s.to_string()).collect();
        let _ = writeln!(
            md,
            "Rooms of 10 members spread over the nodes (members alternate between nodes, so each \
             room spans both), 2 editors per room each sending a 64–128 byte point batch at \
             60 Hz, everyone else watching. Client counts {} — each sweep stops at the first \
             step whose p99 passes {P99_LIMIT_MS} ms. \"CPU µs/msg\" is the servers' CPU time \
             (user + system, all nodes) over the measured window divided by the deliveries in \
             it; Redis is shown separately.\n",
            steps.join(", ")
        );
        let _ = writeln!(
            md,
            "| system | clients | delivered msg/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | cross-node p99 ms | server CPU | CPU µs/msg | Redis CPU µs/msg | lost / dup / reordered | generator / machine CPU |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in &self.sweeps {
            for r in &s.runs {
                relay_row(md, &s.label, r);
            }
        }
        for r in &self.sharded {
            relay_row(md, &label(r), r);
        }
        md.push('\n');
        for s in &self.sweeps {
            match s.capacity() {
                Some((c, true)) => {
                    let _ = writeln!(
                        md,
                        "- {}: capacity {} clients ({} msg/s delivered) — the next step passed p99 {P99_LIMIT_MS} ms.",
                        s.label,
                        c.clients,
                        thousands(c.delivered_per_s)
                    );
                }
                Some((c, false)) => {
                    let _ = writeln!(
                        md,
                        "- {}: served every step up to {} clients ({} msg/s delivered) within p99 {P99_LIMIT_MS} ms; its capacity is higher than this sweep reaches.",
                        s.label,
                        c.clients,
                        thousands(c.delivered_per_s)
                    );
                }
                None => {
                    let _ = writeln!(md, "- {}: no step within p99 {P99_LIMIT_MS} ms.", s.label);
                }
            }
        }
        md.push('\n');
        self.cpu_split(md);
        if let Some((path, n)) = &plots.cdf {
            let _ = writeln!(
                md,
                "Latency distribution at the same load ({n} clients):\n\n![latency CDF]({path})\n"
            );
        }
        if let Some(p) = &plots.throughput {
            let _ = writeln!(md, "![throughput against clients]({p})\n");
        }
        if let Some(p) = &plots.p99 {
            let _ = writeln!(md, "![p99 against clients]({p})\n");
        }
    }

    /// Where each compared pair's server CPU went at the load they are compared at: user
    /// space against the kernel, and how often the processes were switched out.
    fn cpu_split(&self, md: &mut String) {
        let rows: Vec<(&str, &RunResult)> = self
            .pairs()
            .into_iter()
            .filter_map(|(_, b, k)| {
                let n = Self::same_load_of(b, k)?;
                Some([(b.label.as_str(), b.at(n)?), (k.label.as_str(), k.at(n)?)])
            })
            .flatten()
            .collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "Where the server CPU goes at the load each pair is compared at: user space (the \
             server's own code and its libraries) against the kernel (system time: socket \
             sends and receives, epoll, futex wake-ups), and the context switches of the \
             server processes, all per delivered message.\n"
        );
        let _ = writeln!(
            md,
            "| system | clients | CPU µs/msg | user µs/msg | kernel µs/msg | context switches/msg |\n|---|---:|---:|---:|---:|---:|"
        );
        for (l, r) in rows {
            let _ = writeln!(
                md,
                "| {l} | {} | {} | {} | {} | {} |",
                r.clients,
                opt(r.server_cpu_us_per_msg, 2),
                opt(user_us_per_msg(r), 2),
                opt(r.server_sys_us_per_msg, 2),
                opt(r.server_switches_per_msg, 2),
            );
        }
        md.push('\n');
    }

    fn fanout_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Fan-out\n");
        let Some(first) = self.r.fanout.first() else {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        };
        let _ = writeln!(
            md,
            "One room: one editor at 60 Hz, {} viewers spread over the nodes.\n",
            first.load.room_size - 1
        );
        let _ = writeln!(
            md,
            "| system | viewers joined | delivered msg/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU | CPU µs/msg | Redis CPU µs/msg | lost / dup / reordered | generator / machine CPU |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.r.fanout {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0}% | {} | {} | {} / {} / {} | {:.0}% / {:.0}% |",
                label(r),
                r.connected.saturating_sub(1),
                thousands(r.delivered_per_s),
                r.latency.p50_ms,
                r.latency.p99_ms,
                r.latency.p999_ms,
                r.latency.max_ms,
                r.server_cpu_pct,
                opt(r.server_cpu_us_per_msg, 2),
                opt(r.redis_cpu_us_per_msg, 2),
                r.lost,
                r.duplicates,
                r.reordered,
                r.generator_cpu_pct,
                r.machine_cpu_pct
            );
        }
        md.push('\n');
    }

    fn idle_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Idle connections\n");
        if self.r.idle.is_empty() {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        }
        let _ = writeln!(
            md,
            "One node, no Redis; connections in rooms of 10, nobody drawing (heartbeats only). \
             RSS per connection = (server RSS with the connections − RSS before they \
             connected) / connections.\n"
        );
        let _ = writeln!(
            md,
            "| system | connections asked | joined | RSS before | RSS after | RSS per connection | CPU at rest |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        for r in &self.r.idle {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.1}% |",
                label(r),
                thousands(r.clients as f64),
                thousands(r.connected as f64),
                bytes(r.server_rss_before as f64),
                bytes(r.server_rss_after as f64),
                r.rss_per_connection.map_or("–".into(), bytes),
                r.server_cpu_pct
            );
            if let Some(e) = &r.connect_error {
                let _ = writeln!(
                    md,
                    "\n  First join failure ({}): `{}`\n",
                    label(r),
                    e.replace('\n', " ")
                );
            }
        }
        md.push('\n');
    }

    fn join_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Join a large board\n");
        if self.r.join.is_empty() {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        }
        let _ = writeln!(
            md,
            "A board is drawn through the API (strokes of up to 16,384 points in batches of \
             1,024), then a new viewer connects (on the other node in a cluster) and the time \
             from the start of its TCP connect to the Welcome frame is measured; \"ready\" adds \
             decoding the snapshot into a board, as the browser does.\n"
        );
        let _ = writeln!(
            md,
            "| mode | points | strokes | drawn in | Welcome size | Welcome received (median / max) | board ready (median) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        for j in &self.r.join {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2} s | {} | {:.1} / {:.1} ms | {:.1} ms |",
                j.mode,
                thousands(j.points as f64),
                j.strokes,
                j.upload_s,
                bytes(j.welcome_bytes as f64),
                j.welcome_median_ms,
                j.welcome_max_ms,
                j.ready_median_ms
            );
        }
        md.push('\n');
    }

    fn single_vs_cluster(&self, md: &mut String) {
        let _ = writeln!(md, "## Kokuban: single node against cluster\n");
        let single = self.sweep_of(System::Kokuban, false);
        let Some(single) = single else {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        };
        let Some(cluster) = self.sweep_of(System::Kokuban, true) else {
            let _ = writeln!(
                md,
                "Cluster mode was not available in this run, so only the single node was measured (see notes).\n"
            );
            return;
        };
        let _ = writeln!(
            md,
            "The same relay load on one node with its embedded store, and on two nodes sharing \
             Redis: what Redis and the second hop cost per delivered message.\n"
        );
        let _ = writeln!(
            md,
            "| clients | single: p99 ms | cluster: p99 ms | single: CPU µs/msg | cluster: nodes CPU µs/msg | cluster: Redis CPU µs/msg |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
        for s in &single.runs {
            let Some(c) = cluster.at(s.clients) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {} | {} | {} |",
                s.clients,
                s.latency.p99_ms,
                c.latency.p99_ms,
                opt(s.server_cpu_us_per_msg, 2),
                opt(c.server_cpu_us_per_msg, 2),
                opt(c.redis_cpu_us_per_msg, 2)
            );
        }
        md.push('\n');
    }

    fn limits(&self, md: &mut String) {
        let _ = writeln!(md, "## What limits each figure\n");
        let cores = self.r.machine.cores.max(1) as f64 * 100.0;
        for s in &self.sweeps {
            let Some(last) = s.runs.last() else { continue };
            let redis = last.redis_cpu_s.map_or(0.0, |c| c * 100.0 / last.window_s);
            let ours = last.server_cpu_pct + redis + last.generator_cpu_pct;
            let others = (last.machine_cpu_pct - ours).max(0.0);
            let per_node = last.server_cpu_pct / last.nodes.max(1) as f64;
            let verdict = if last.latency.p99_ms <= P99_LIMIT_MS {
                "nothing yet: this is the sweep's largest step and it was still within the p99 limit"
            } else if last.machine_cpu_pct >= 0.85 * cores {
                "the machine's CPU, which was nearly all busy: this step measures the machine as much as the server"
            } else if per_node >= 85.0 && last.system == System::SocketIo {
                "the server: each Node.js process is single-threaded and was near 100% of a core"
            } else {
                "queueing rather than CPU: the machine still had idle CPU, so the latency comes from waits inside the server or the generator, which a profile should locate"
            };
            let _ = writeln!(
                md,
                "- **Relay, {}**, last step ({} clients, p99 {:.1} ms): the machine was {:.0}% busy of {:.0}% (servers {:.0}%, Redis {:.0}%, load generator {:.0}%, other processes {:.0}%) — limited by {verdict}.",
                s.label,
                last.clients,
                last.latency.p99_ms,
                last.machine_cpu_pct,
                cores,
                last.server_cpu_pct,
                redis,
                last.generator_cpu_pct,
                others,
            );
        }
        for (what, b, k) in self.pairs() {
            let Some(n) = Self::same_load_of(b, k) else {
                continue;
            };
            let (Some(rb), Some(rk)) = (b.at(n), k.at(n)) else {
                continue;
            };
            let (Some(tb), Some(ub), Some(sb), Some(uk), Some(sk)) = (
                rb.server_cpu_us_per_msg,
                user_us_per_msg(rb),
                rb.server_sys_us_per_msg,
                user_us_per_msg(rk),
                rk.server_sys_us_per_msg,
            ) else {
                continue;
            };
            if uk <= 0.0 || sk <= 0.0 {
                continue;
            }
            let _ = writeln!(
                md,
                "- **CPU per delivered message, {what}** ({n} clients): in user space Kokuban \
                 spent {uk:.2} µs against Socket.IO's {ub:.2} µs ({:.1}× lower); in the kernel \
                 {sk:.2} µs against {sb:.2} µs. Every delivery costs at least one TCP send \
                 on loopback, and the kernel charges the sending process for the receiving \
                 side too (TCP receive, waking the reader). At this kernel time, a server with \
                 no user-space time at all would be {tb:.2} / {sk:.2} = {:.1}× below \
                 Socket.IO: that bounds what user-space work alone can win.",
                ub / uk,
                tb / sk,
            );
        }
        for r in &self.r.fanout {
            let _ = writeln!(
                md,
                "- **Fan-out, {}**: every batch becomes {} deliveries; the load generator (which decodes every one) used {:.0}% CPU and the servers {:.0}%.",
                label(r),
                r.connected.saturating_sub(1),
                r.generator_cpu_pct,
                r.server_cpu_pct
            );
        }
        for r in &self.r.idle {
            let bound = if r.clients as u64 + 1_000 >= self.r.open_file_limit {
                format!(
                    "the count is set by the open-file limit of {} descriptors per process, which \
                     could not be raised here — not by the server's memory",
                    self.r.open_file_limit
                )
            } else {
                "the count is set by what the run's time budget allows to connect, not by the \
                 server's memory"
                    .to_string()
            };
            let failure = r.connect_error.as_ref().map_or(String::new(), |e| {
                format!(" (first failure: {})", e.replace('\n', " "))
            });
            let _ = writeln!(
                md,
                "- **Idle, {}**: {} of {} connections joined{failure}; {bound}.",
                label(r),
                thousands(r.connected as f64),
                thousands(r.clients as f64),
            );
        }
        for j in &self.r.join {
            let _ = writeln!(
                md,
                "- **Join, {}**: the Welcome is {} on loopback; the time is the server producing and sending it plus the client receiving it (decoding it into a board takes {:.1} ms more).",
                j.mode,
                bytes(j.welcome_bytes as f64),
                (j.ready_median_ms - j.welcome_median_ms).max(0.0)
            );
        }
        md.push('\n');
    }

    fn method(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "## How it is measured\n\n\
             - One load-generator process (`crates/bench`, tokio) drives both systems. Kokuban \
               clients speak its binary protocol (`kokuban-protocol`); Socket.IO clients speak \
               Engine.IO v4 / Socket.IO v5 over a websocket (`451-[\"batch\",{{\"_placeholder\":true,\"num\":0}}]` + one binary attachment).\n\
             - Every batch carries its send time from the generator's monotonic clock (Kokuban: \
               in the coordinates of its first two points; Socket.IO: the first 16 bytes of the \
               attachment), so latency is end to end, receiver clock minus sender clock, in an \
               HdrHistogram with three significant digits.\n\
             - Every receiver checks that each batch of each editor of its room arrives exactly \
               once and in order; a batch not received 2 s after the last send counts as lost. \
               Kokuban receivers also check that the room's seqs arrive gapless and increasing.\n\
             - Editors draw real strokes (`StrokeBegin`, 60 batches, `StrokeEnd`); the baseline \
               sends only the batches, so Kokuban carries about 3% more frames at the same \
               batch rate. Deliveries counted are point batches only.\n\
             - Every run starts fresh server (and Redis) processes. All clients join before \
               anyone draws; then a warm-up, the measured window, and a drain. CPU (utime + \
               stime) and RSS come from /proc at the window's edges.\n\
             - Client sockets are spread over 127.0.0.2–127.0.0.17 to multiply the ephemeral \
               ports, and the open-file limit is raised for the generator and the servers.\n\
             - The baseline (`bench/socketio/server.js`): websocket transport only, \
               permessage-deflate and HTTP compression off, join by a handshake query parameter, \
               `socket.to(room).emit(\"batch\", buf)`; two Node processes sharing one Redis \
               through the classic adapter (and one run with the sharded adapter). Redis runs \
               with the append-only file on, as Kokuban's deployment uses it.\n"
        );
    }
}

/// Server CPU per delivered message spent in user space.
fn user_us_per_msg(r: &RunResult) -> Option<f64> {
    Some((r.server_cpu_us_per_msg? - r.server_sys_us_per_msg?).max(0.0))
}

fn relay_row(md: &mut String, label: &str, r: &RunResult) {
    let cross = if r.nodes > 1 {
        format!("{:.2}", r.latency_cross_node.p99_ms)
    } else {
        "–".into()
    };
    let _ = writeln!(
        md,
        "| {label} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {cross} | {:.0}% | {} | {} | {} / {} / {} | {:.0}% / {:.0}% |",
        r.connected,
        thousands(r.delivered_per_s),
        r.latency.p50_ms,
        r.latency.p90_ms,
        r.latency.p99_ms,
        r.latency.p999_ms,
        r.latency.max_ms,
        r.server_cpu_pct,
        opt(r.server_cpu_us_per_msg, 2),
        opt(r.redis_cpu_us_per_msg, 2),
        r.lost,
        r.duplicates,
        r.reordered,
        r.generator_cpu_pct,
        r.machine_cpu_pct
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-12_345.0), "-12,345");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(8192.0), "8.0 KiB");
        assert_eq!(bytes(3.5 * 1024.0 * 1024.0), "3.5 MiB");
        assert_eq!(opt(None, 2), "–");
        assert_eq!(opt(Some(1.234), 1), "1.2");
    }
}
