//! The profiles section: where each profiled run's server CPU went, by thread, by whose code
//! ran, and in which functions.

use std::fmt::Write as _;

use super::View;
use crate::profile::Share;
use crate::scenario::RunResult;

fn shares(v: &[Share]) -> String {
    v.iter()
        .map(|s| format!("{} {:.1}%", s.name.replace('|', "/"), s.pct))
        .collect::<Vec<_>>()
        .join(", ")
}

impl View<'_> {
    /// Every run that carries a profile: the relay at the reference load, the floor's other
    /// runtime there, and the scenarios.
    fn profiled(&self) -> Vec<&RunResult> {
        let r = self.r;
        r.relay
            .iter()
            .chain(&r.floor_variants)
            .chain(&r.fanout)
            .chain(&r.presence)
            .chain(&r.big_room)
            .filter(|run| run.profile.is_some())
            .collect()
    }

    pub(super) fn profiles_section(&self, md: &mut String) {
        let runs = self.profiled();
        if runs.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Where the server CPU goes, from a profile\n");
        let _ = writeln!(
            md,
            "`perf record` sampled the server processes ({} Hz per busy thread) in a window of \
             its own after the CPU and system-call windows, under the same load. Shares are of \
             the samples: by thread name (every Tokio worker is one `tokio-rt-worker` line, \
             `kokuban-store` is the embedded store's writer), by whose code ran (`kernel` is \
             system time: sockets, waits, wake-ups, the store's `fsync`; a Rust crate by the \
             first segment of the function's path; `C library` is `memcpy`, `malloc` and the \
             like), and the hottest functions. Node.js compiles JavaScript at run time, so most \
             of Socket.IO's user time shows as `JavaScript (JIT)` or `node (other)`.\n",
            crate::profile::FREQUENCY
        );
        for run in runs {
            let Some(p) = &run.profile else { continue };
            let _ = writeln!(
                md,
                "**{}, {}, {} clients** ({:.2} µs/msg; {} samples in {:.0} s)\n",
                super::label(run),
                run.load.scenario,
                run.clients,
                run.server_cpu_us_per_msg.unwrap_or(f64::NAN),
                p.samples,
                p.window_s
            );
            let _ = writeln!(md, "- threads: {}", shares(&p.threads));
            let _ = writeln!(md, "- code: {}", shares(&p.owners));
            let _ = writeln!(md, "- functions: {}\n", shares(&p.symbols));
        }
    }
}
