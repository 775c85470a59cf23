//! The relay sections: the sweeps, Kokuban against the floor step by step, where the CPU
//! goes, the floor's runtimes, single node against cluster, and what limits each figure.

use std::fmt::Write as _;

use super::{Plots, View, label, opt, thousands};
use crate::plan::P99_LIMIT_MS;
use crate::scenario::{RunResult, System};
use crate::targets::{REFERENCE_CLIENTS, same_load, user_us_per_msg};

fn relay_row(md: &mut String, label: &str, r: &RunResult) {
    let cross = if r.nodes > 1 {
        format!("{:.2}", r.latency_cross_node.p99_ms)
    } else {
        "–".into()
    };
    let refused = if r.refused > 0 {
        format!(" ({} refused)", r.refused)
    } else {
        String::new()
    };
    let _ = writeln!(
        md,
        "| {label} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {cross} | {:.0}% | {} | {} | {} | {} / {} / {}{refused} | {:.0}% / {:.0}% |",
        r.connected,
        thousands(r.delivered_per_s),
        r.latency.p50_ms,
        r.latency.p90_ms,
        r.latency.p99_ms,
        r.latency.p999_ms,
        r.latency.max_ms,
        r.server_cpu_pct,
        opt(r.server_cpu_us_per_msg, 2),
        opt(r.server_syscalls_per_msg.map(|c| c.total), 2),
        opt(r.redis_cpu_us_per_msg, 2),
        r.lost,
        r.duplicates,
        r.reordered,
        r.generator_cpu_pct,
        r.machine_cpu_pct
    );
}

/// The header of a table of [`relay_row`]s.
pub(super) const RELAY_HEADER: &str = "| system | clients | delivered msg/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | cross-node p99 ms | server CPU | CPU µs/msg | syscalls/msg | Redis CPU µs/msg | lost / dup / reordered | generator / machine CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// Rows of runs under [`RELAY_HEADER`].
pub(super) fn relay_rows(md: &mut String, runs: &[RunResult]) {
    let _ = writeln!(md, "{RELAY_HEADER}");
    for r in runs {
        relay_row(md, &label(r), r);
    }
    md.push('\n');
}

impl View<'_> {
    pub(super) fn relay_section(&self, md: &mut String, plots: &Plots) {
        let _ = writeln!(md, "## Relay\n");
        let _ = writeln!(
            md,
            "Rooms of 10 members spread over the nodes (members alternate between nodes, so each \
             room spans both), 2 editors per room each sending a 64–128 byte point batch at \
             60 Hz, everyone else watching. Each sweep doubles the clients until the p99 passes \
             {P99_LIMIT_MS} ms, then refines between the last two steps until they are at most \
             ×{:.2} apart. \"CPU µs/msg\" is the servers' CPU time (user + system, all nodes) \
             over the measured window divided by the deliveries in it; \"syscalls/msg\" the \
             servers' system calls per delivered message; Redis is shown separately.\n",
            self.r.step_ratio
        );
        let _ = writeln!(md, "{}", RELAY_HEADER);
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
                Some((c, Some(step))) => {
                    let _ = writeln!(
                        md,
                        "- {}: capacity {} clients ({} msg/s delivered) — the next step, ×{step:.2} larger, passed p99 {P99_LIMIT_MS} ms.",
                        s.label,
                        c.clients,
                        thousands(c.delivered_per_s)
                    );
                }
                Some((c, None)) => {
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

    /// Kokuban ÷ floor at every load both ran.
    pub(super) fn floor_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Kokuban against the floor\n");
        let rows = &self.r.ratios.cpu_vs_floor_by_step;
        if rows.is_empty() {
            let _ = writeln!(md, "Not measured (see notes).\n");
            return;
        }
        let _ = writeln!(
            md,
            "The same relay load on Kokuban and on the floor, step by step: Kokuban's CPU per \
             delivered message as a multiple of the floor's, whole and split into user space \
             and kernel, its system calls per message as a multiple of the floor's, and the \
             same for p99. Where both of the floor's runtimes ran a load, the floor is the \
             better of them: the CPU figures are the cheaper one's (named in the table), the \
             p99 the faster one's. The floor is one process; against it, Kokuban on two nodes \
             also pays for the hop through Redis.\n"
        );
        let _ = writeln!(
            md,
            "| Kokuban | clients | floor | Kokuban CPU µs/msg | floor CPU µs/msg | CPU × | user × | kernel × | syscalls × | Kokuban p99 ms | floor p99 ms | p99 × |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for x in rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
                x.deployment,
                x.clients,
                x.floor_runtime,
                opt(x.kokuban_us, 2),
                opt(x.floor_us, 2),
                opt(x.cpu, 2),
                opt(x.user, 2),
                opt(x.kernel, 2),
                opt(x.syscalls, 2),
                x.kokuban_p99_ms,
                x.floor_p99_ms,
                opt(x.p99, 2),
            );
        }
        md.push('\n');
    }

    /// Where the server CPU goes at the loads the systems are compared at.
    pub(super) fn cpu_split(&self, md: &mut String) {
        let mut loads = vec![REFERENCE_CLIENTS];
        for (_, b, k) in self.pairs() {
            loads.extend(same_load(b, k));
        }
        if let Some((c, _)) = self
            .sweep_of(System::Floor, false)
            .and_then(|f| f.capacity())
        {
            loads.push(c.clients);
        }
        loads.sort_unstable();
        loads.dedup();
        let rows: Vec<(&str, &RunResult)> = loads
            .iter()
            .flat_map(|&n| {
                self.sweeps
                    .iter()
                    .filter_map(move |s| Some((s.label.as_str(), s.at(n)?)))
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Where the server CPU goes\n");
        let _ = writeln!(
            md,
            "At the loads the systems are compared at: user space (the server's own code and \
             its libraries) against the kernel (system time: socket sends and receives, epoll, \
             futex wake-ups), the context switches of the server processes, and their system \
             calls — all per delivered message, the servers' summed over the nodes, Redis's \
             apart. Writes are `write`/`writev`/`sendto`/`sendmsg`, reads \
             `read`/`recvfrom`/`recvmsg`, waits `epoll_wait` and its variants.\n"
        );
        let _ = writeln!(
            md,
            "| system | clients | CPU µs/msg | user µs/msg | kernel µs/msg | context switches/msg | syscalls/msg | writes | reads | waits | futex | Redis syscalls/msg |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (l, r) in rows {
            let c = r.server_syscalls_per_msg;
            let _ = writeln!(
                md,
                "| {l} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.clients,
                opt(r.server_cpu_us_per_msg, 2),
                opt(user_us_per_msg(r), 2),
                opt(r.server_sys_us_per_msg, 2),
                opt(r.server_switches_per_msg, 2),
                opt(c.map(|c| c.total), 2),
                opt(c.and_then(|c| c.writes), 2),
                opt(c.and_then(|c| c.reads), 2),
                opt(c.and_then(|c| c.waits), 2),
                opt(c.and_then(|c| c.futex), 2),
                opt(r.redis_syscalls_per_msg, 2),
            );
        }
        md.push('\n');
    }

    /// The floor's two runtimes at the same loads.
    pub(super) fn floor_runtimes(&self, md: &mut String) {
        let variants = &self.r.floor_variants;
        let Some(sweep) = self.sweep_of(System::Floor, false) else {
            return;
        };
        if variants.is_empty() {
            return;
        }
        let _ = writeln!(md, "## The floor's runtime\n");
        let _ = writeln!(
            md,
            "The floor runs with {} in the sweeps and scenarios (each thread accepts on its own \
             `SO_REUSEPORT` listener and writes each member once per scheduler tick). Its other \
             runtime — one multi-thread runtime writing each read's frames at once — ran the \
             loads Kokuban is compared with the floor at, and the comparison takes the better \
             of the two there (CPU from the cheaper, p99 from the faster):\n",
            self.r.floor_runtime.mode()
        );
        let _ = writeln!(
            md,
            "| floor | clients | CPU µs/msg | user µs/msg | kernel µs/msg | syscalls/msg | context switches/msg | p99 ms |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for v in variants {
            for r in sweep.at(v.clients).into_iter().chain([v]) {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {:.2} |",
                    r.mode,
                    r.clients,
                    opt(r.server_cpu_us_per_msg, 2),
                    opt(user_us_per_msg(r), 2),
                    opt(r.server_sys_us_per_msg, 2),
                    opt(r.server_syscalls_per_msg.map(|c| c.total), 2),
                    opt(r.server_switches_per_msg, 2),
                    r.latency.p99_ms
                );
            }
        }
        md.push('\n');
    }

    pub(super) fn single_vs_cluster(&self, md: &mut String) {
        let _ = writeln!(md, "## Kokuban: single node against cluster\n");
        let Some(single) = self.sweep_of(System::Kokuban, false) else {
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
             Redis: what Redis and the second hop cost per delivered message, and in latency \
             (the hop: cluster p99 − single-node p99).\n"
        );
        let _ = writeln!(
            md,
            "| clients | single: p99 ms | cluster: p99 ms | hop ms | single: CPU µs/msg | cluster: nodes CPU µs/msg | cluster: Redis CPU µs/msg |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|");
        for s in &single.runs {
            let Some(c) = cluster.at(s.clients) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                s.clients,
                s.latency.p99_ms,
                c.latency.p99_ms,
                c.latency.p99_ms - s.latency.p99_ms,
                opt(s.server_cpu_us_per_msg, 2),
                opt(c.server_cpu_us_per_msg, 2),
                opt(c.redis_cpu_us_per_msg, 2)
            );
        }
        md.push('\n');
    }

    pub(super) fn limits(&self, md: &mut String) {
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
        let floor = self.sweep_of(System::Floor, false);
        for (what, cluster) in [("one node", false), ("two nodes sharing Redis", true)] {
            let (Some(f), Some(k)) = (floor, self.sweep_of(System::Kokuban, cluster)) else {
                continue;
            };
            let (Some(rf), Some(rk)) = (f.at(REFERENCE_CLIENTS), k.at(REFERENCE_CLIENTS)) else {
                continue;
            };
            let (Some(uk), Some(uf), Some(sk), Some(sf)) = (
                user_us_per_msg(rk),
                user_us_per_msg(rf),
                rk.server_sys_us_per_msg,
                rf.server_sys_us_per_msg,
            ) else {
                continue;
            };
            let _ = writeln!(
                md,
                "- **CPU per delivered message against the floor, {what}** ({REFERENCE_CLIENTS} \
                 clients): Kokuban spent {uk:.2} µs in user space where the floor spent \
                 {uf:.2} µs, and {sk:.2} µs in the kernel where the floor spent {sf:.2} µs \
                 ({} system calls per message against {}). The floor's kernel time is what any \
                 relay pays for TCP on loopback (the sender is charged for the receiver's side \
                 too); Kokuban's excess over it, {:.2} µs, is what decoding, ordering, storing, \
                 queueing and waking tasks cost it{}.",
                opt(rk.server_syscalls_per_msg.map(|c| c.total), 2),
                opt(rf.server_syscalls_per_msg.map(|c| c.total), 2),
                (uk + sk) - (uf + sf),
                if cluster {
                    ", plus the hop through Redis"
                } else {
                    ""
                }
            );
        }
        self.scenario_limits(md);
        md.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_header_and_rows_have_as_many_columns() {
        let columns = |line: &str| line.matches('|').count();
        let mut lines = RELAY_HEADER.lines();
        let (head, rule) = (lines.next().expect("header"), lines.next().expect("rule"));
        assert_eq!(columns(head), columns(rule));
        let mut md = String::new();
        relay_rows(
            &mut md,
            &[RunResult::fixture(System::Floor, 1, 200, 1.5, 10.0, 6.0)],
        );
        let row = md.lines().nth(2).expect("a row");
        assert_eq!(columns(row), columns(head), "{row}");
        assert!(row.starts_with("| Floor (test) | 200 |"), "{row}");
    }
}
