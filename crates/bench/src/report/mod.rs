//! BENCHMARKS.md, bench/results.json and the plots, from the results of one run.

mod profiles;
mod relay;
mod scenarios;

use std::fmt::Write as _;
use std::path::Path;

use crate::plan::Results;
use crate::plot::{self, Series};
use crate::scenario::{RunResult, System};
use crate::targets::{self, REFERENCE_CLIENTS, Sweep};

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

pub use crate::targets::label;

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

pub(crate) fn thousands(v: f64) -> String {
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

pub(crate) fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
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
        Self {
            r,
            sweeps: targets::sweeps(&r.relay),
            sharded: r
                .relay
                .iter()
                .filter(|run| run.mode.contains("sharded"))
                .collect(),
        }
    }

    fn sweep_of(&self, system: System, cluster: bool) -> Option<&Sweep<'a>> {
        targets::sweep_of(&self.sweeps, system, cluster)
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

    fn plots(&self, dir: &Path) -> anyhow::Result<Plots> {
        let mut plots = Plots {
            cdf: None,
            throughput: None,
            p99: None,
        };
        let n = REFERENCE_CLIENTS;
        let series: Vec<Series> = self
            .sweeps
            .iter()
            .filter_map(|s| {
                let h = s.at(n)?.hists.as_ref()?;
                Some(Series {
                    label: s.label.clone(),
                    points: h.all.cdf(),
                })
            })
            .collect();
        if !series.is_empty() {
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
            "Kokuban against two references, driven by the same load generator with the same \
             scenarios, on the same machine, in the same run: the stack most teams would pick \
             for the job — Node.js Socket.IO with `@socket.io/redis-adapter` — and **the \
             floor**, the cheapest program that does the relay's unavoidable work on this \
             machine (`crates/bench/floor`: it accepts the same WebSocket clients and writes \
             each frame, framed once, to the other members of its room — no decoding, no \
             order, no store, no Redis). The question is how close Kokuban comes to the floor. \
             Every figure below was measured by that run and written by `kokuban-bench`; \
             nothing is edited by hand.\n"
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
        let _ = writeln!(
            md,
            "| system calls counted | {} |",
            if r.syscalls_counted {
                "yes (`perf stat`, syscall tracepoints)"
            } else {
                "no (see notes)"
            }
        );
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
             `bench/socketio`), builds the `kokuban` server and the floor, starts its own \
             `redis-server` processes on free loopback ports, and writes this file, \
             `bench/results.json` and the plots. Needs: Node.js 20+, npm, `redis-server` 7 on \
             the PATH; `perf` for the system-call counts and the profiles (optional).\n"
        );

        self.targets(&mut md);
        self.relay_section(&mut md, plots);
        self.floor_section(&mut md);
        self.cpu_split(&mut md);
        self.profiles_section(&mut md);
        self.floor_runtimes(&mut md);
        self.fanout_section(&mut md);
        self.presence_section(&mut md);
        self.big_room_section(&mut md);
        self.idle_section(&mut md);
        self.join_section(&mut md);
        self.storm_section(&mut md);
        self.acks_section(&mut md);
        self.bytes_section(&mut md);
        self.single_vs_cluster(&mut md);
        if let Some(s) = &r.redis_cluster {
            md.push_str(&crate::shards::section(s));
            md.push('\n');
        }
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
        for t in &self.r.ratios.targets {
            let _ = writeln!(
                md,
                "| {} | {} | **{}** |",
                t.name,
                t.measured.replace('|', "/"),
                targets::status_word(t.met)
            );
        }
        md.push('\n');
        let why: Vec<_> = self
            .r
            .ratios
            .targets
            .iter()
            .filter(|t| t.why.is_some())
            .collect();
        if !why.is_empty() {
            let _ = writeln!(
                md,
                "Why each missed target was missed, from what its runs measured: for CPU, \
                 where it went, from the profiles (the whole profiles are in \"Where the server \
                 CPU goes, from a profile\"); for memory, what held it:\n"
            );
            for t in why {
                let _ = writeln!(
                    md,
                    "- **{}**: {}",
                    t.name,
                    t.why.as_deref().unwrap_or_default()
                );
            }
            md.push('\n');
        }
    }

    fn method(&self, md: &mut String) {
        let steps: Vec<String> = self.r.relay_steps.iter().map(|s| s.to_string()).collect();
        let _ = writeln!(
            md,
            "## How it is measured\n\n\
             - One load-generator process (`crates/bench`, tokio) drives every system. Kokuban \
               clients speak its binary protocol (`kokuban-protocol`); floor clients send the \
               very same frames and read them back as the floor relays them (other clients' \
               frames, unchanged); Socket.IO clients speak Engine.IO v4 / Socket.IO v5 over a \
               websocket (`451-[\"batch\",{{\"_placeholder\":true,\"num\":0}}]` + one binary \
               attachment).\n\
             - Every batch carries its send time from the generator's monotonic clock (Kokuban \
               and the floor: in the coordinates of its first two points; Socket.IO: the first \
               16 bytes of the attachment), so latency is end to end, receiver clock minus \
               sender clock, in an HdrHistogram with three significant digits. No system has to \
               answer the author for it; the floor answers only the Hello, so that the \
               generator knows every member is in before anyone draws.\n\
             - Every receiver checks that each batch of each editor of its room arrives exactly \
               once and in order; a batch not received 2 s after the last send counts as lost. \
               A batch the server refused to its author with an error frame (the room read-only \
               a moment while its store or Redis was behind) was never applied, so it counts as \
               refused, not lost: the author was told, and the browser client keeps such ops and \
               sends them again once the room takes writes. Kokuban receivers also check that \
               the room's seqs arrive gapless and increasing.\n\
             - Editors draw real strokes (`StrokeBegin`, 60 batches, `StrokeEnd`); the baseline \
               sends only the batches, so Kokuban and the floor carry about 3% more frames at \
               the same batch rate. Deliveries counted are point batches only.\n\
             - Relay sweeps start at {} clients and stop at the first step whose p99 passes \
               {} ms; then steps between the last one within the limit and that one are run \
               until they are at most ×{:.2} apart, so a capacity is not set by the step size. \
               Kokuban also runs at the floor's capacity, to be compared there.\n\
             - Every run starts fresh server (and Redis) processes. All clients join before \
               anyone draws; then a warm-up, the measured window, a window in which the load \
               goes on while `perf stat` counts the servers' system calls (kept apart, so that \
               counting costs nothing in the CPU figures), and a drain. CPU (utime + stime) and \
               RSS come from /proc at the window's edges; system calls per delivered message \
               are the calls per second of the second window over the deliveries per second of \
               the first.\n\
             - Client sockets are spread over 127.0.0.2–127.0.0.17 to multiply the ephemeral \
               ports, and the open-file limit is raised for the generator and the servers.\n\
             - The baseline (`bench/socketio/server.js`): websocket transport only, \
               permessage-deflate and HTTP compression off, join by a handshake query parameter, \
               `socket.to(room).emit(\"batch\", buf)` (cursors: `socket.volatile.to(room)`); \
               two Node processes sharing one Redis through the classic adapter (and one run \
               with the sharded adapter). Redis runs with the append-only file on, as \
               Kokuban's deployment uses it.\n\
             - The floor (`crates/bench/floor`, its README says what it leaves out) runs as one \
               process with {}.\n",
            steps.join(", "),
            crate::plan::P99_LIMIT_MS,
            self.r.step_ratio,
            self.r.floor_runtime.mode()
        );
    }
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
