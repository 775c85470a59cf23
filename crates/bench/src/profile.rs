//! Where the servers' CPU goes, sampled by `perf record` in a window of its own after the CPU
//! and system-call windows, under the same load.
//!
//! A profile answers what the CPU figures cannot: which thread was busy (a Tokio worker, the
//! store's writer), whose code the sampled instruction belonged to (the kernel, a crate, the C
//! library) and which functions were hottest. Sampling costs a little CPU per sample, so it
//! never overlaps the measured window. Where `perf` cannot sample here, there is no profile
//! rather than a guess.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::process::Command;

/// Samples per second per busy thread.
pub const FREQUENCY: &str = "997";
/// Functions kept in a profile.
const TOP_SYMBOLS: usize = 12;
/// Shares below this (percent of samples) are left out of the thread and owner lists.
const SMALLEST_SHARE: f64 = 0.5;

/// A part of the sampled CPU time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    /// A thread name, an owner ("kernel", a crate) or a function.
    pub name: String,
    /// Percent of all samples.
    pub pct: f64,
}

/// The servers' sampled CPU time, split three ways.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Profile {
    /// Length of the sampled window, seconds.
    pub window_s: f64,
    /// Samples taken.
    pub samples: u64,
    /// By thread name (threads of one name summed: every Tokio worker is one line).
    pub threads: Vec<Share>,
    /// By the code the sampled instruction belongs to: `kernel`, a Rust crate, the C library.
    pub owners: Vec<Share>,
    /// The hottest functions, with the owner before a `:`.
    pub symbols: Vec<Share>,
}

impl Profile {
    /// The share of an owner, 0 when it was not sampled.
    pub fn owner(&self, name: &str) -> f64 {
        self.owners
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.pct)
            .sum()
    }

    /// One line for a target's reason: the threads, then the owners, largest first.
    pub fn summary(&self, threads: usize, owners: usize) -> String {
        let list = |v: &[Share], n: usize| {
            v.iter()
                .take(n)
                .map(|s| format!("{} {:.0}%", s.name, s.pct))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "by thread: {}; by code: {}",
            list(&self.threads, threads),
            list(&self.owners, owners)
        )
    }
}

/// Samples the processes for `span` and reads the samples back; `Err` with perf's words when
/// it could not.
pub async fn record(pids: &[u32], span: Duration) -> Result<Profile, String> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let file = std::env::temp_dir().join(format!(
        "kokuban-bench-{}-{}.perf",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let result = record_into(&file, pids, span).await;
    let _ = std::fs::remove_file(&file);
    result
}

async fn record_into(file: &PathBuf, pids: &[u32], span: Duration) -> Result<Profile, String> {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let out = Command::new("perf")
        .args(["record", "-q", "-F", FREQUENCY, "-o"])
        .arg(file)
        .args(["-p", &pids.join(","), "--", "sleep"])
        .arg(format!("{:.3}", span.as_secs_f64()))
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("perf could not be started: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let report = |sort: &'static str| {
        let file = file.clone();
        async move {
            let out = Command::new("perf")
                .args(["report", "--stdio", "--no-children", "-q", "-n", "-t", "|"])
                .args(["--sort", sort, "-i"])
                .arg(&file)
                .output()
                .await
                .map_err(|e| format!("perf report could not be started: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
    };
    let threads = report("comm").await?;
    let symbols = report("dso,sym").await?;
    let profile = parse(&threads, &symbols, span);
    if profile.threads.is_empty() {
        return Err("perf sampled nothing".into());
    }
    Ok(profile)
}

/// Reads `perf report -n -t '|'` output (percent, samples, then the sort keys): threads from
/// `--sort comm`, functions from `--sort dso,sym`.
pub fn parse(threads: &str, symbols: &str, span: Duration) -> Profile {
    let rows = |text: &str| -> Vec<(f64, u64, Vec<String>)> {
        text.lines()
            .filter_map(|line| {
                // A function's name may hold the separator; it is the last field.
                let mut fields = line.splitn(4, '|');
                let pct = fields.next()?.trim().strip_suffix('%')?.parse().ok()?;
                let n = fields.next()?.trim().parse().ok()?;
                Some((pct, n, fields.map(|f| f.trim().to_string()).collect()))
            })
            .collect()
    };
    let mut thread_shares = Vec::new();
    let mut samples = 0;
    for (pct, n, f) in rows(threads) {
        samples += n;
        add(
            &mut thread_shares,
            f.first().cloned().unwrap_or_default(),
            pct,
        );
    }
    let mut owners = Vec::new();
    let mut hottest = Vec::new();
    for (pct, _, f) in rows(symbols) {
        let (dso, sym) = match f.as_slice() {
            [dso, sym] => (dso.as_str(), sym.as_str()),
            _ => continue,
        };
        let owner = owner(dso, sym);
        let name = sym
            .strip_prefix("[k] ")
            .or_else(|| sym.strip_prefix("[.] "))
            .unwrap_or(sym);
        hottest.push(Share {
            name: format!("{owner}: {name}"),
            pct,
        });
        add(&mut owners, owner, pct);
    }
    let keep = |mut v: Vec<Share>| {
        v.sort_by(|a, b| b.pct.total_cmp(&a.pct));
        v.retain(|s| s.pct >= SMALLEST_SHARE);
        v
    };
    hottest.sort_by(|a, b| b.pct.total_cmp(&a.pct));
    hottest.truncate(TOP_SYMBOLS);
    Profile {
        window_s: span.as_secs_f64(),
        samples,
        threads: keep(thread_shares),
        owners: keep(owners),
        symbols: hottest,
    }
}

fn add(shares: &mut Vec<Share>, name: String, pct: f64) {
    match shares.iter_mut().find(|s| s.name == name) {
        Some(s) => s.pct += pct,
        None => shares.push(Share { name, pct }),
    }
}

/// Whose code a sample fell in: the kernel, the C library, a Rust crate (the first path
/// segment of the function's name), JIT-compiled JavaScript, or the binary's other code.
pub fn owner(dso: &str, sym: &str) -> String {
    if sym.starts_with("[k]") || dso.starts_with("[kernel") {
        return "kernel".into();
    }
    if dso.starts_with("libc.so") || dso.starts_with("ld-linux") || dso.starts_with("libm.so") {
        return "C library".into();
    }
    if dso.starts_with("[JIT]") || dso.starts_with("perf-") {
        return "JavaScript (JIT)".into();
    }
    if dso == "[unknown]" || dso.is_empty() {
        return "unknown".into();
    }
    let name = sym.strip_prefix("[.] ").unwrap_or(sym);
    let path = name.trim_start_matches(['<', '&', '*', '(', ' ']);
    let path = path.strip_prefix("dyn ").unwrap_or(path);
    let path = path.strip_prefix("mut ").unwrap_or(path);
    match path.split_once("::") {
        Some((krate, _))
            if !krate.is_empty()
                && krate.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            krate.to_string()
        }
        // Symbols without a path: the allocator, memcpy and friends linked into the binary, or
        // a C++ function of Node.js.
        _ => format!("{dso} (other)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_shared_by_thread_owner_and_function() {
        let threads = " 60.00% | 600 |tokio-rt-worker\n 30.00% | 300 |kokuban-store  \n \
                       10.00% | 100 |kokuban\n";
        let symbols = " 40.00% | 400 |[kernel.kallsyms]|[k] tcp_sendmsg_locked\n \
                       20.00% | 200 |kokuban  |[.] <tokio::runtime::task::raw::RawTask>::poll\n \
                       15.00% | 150 |kokuban  |[.] redb::tree_store::btree::Btree::insert\n \
                       10.00% | 100 |libc.so.6|[.] __memmove_avx_unaligned_erms\n \
                        8.00% | 80  |kokuban  |[.] <kokuban_server::room::Room as core::ops::Drop>::drop\n \
                        7.00% | 70  |kokuban  |[.] malloc\n";
        let p = parse(threads, symbols, Duration::from_secs(3));
        assert_eq!((p.window_s, p.samples), (3.0, 1000));
        assert_eq!(p.threads[0].name, "tokio-rt-worker");
        assert_eq!(p.threads[1].name, "kokuban-store");
        let owners: Vec<&str> = p.owners.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            owners,
            [
                "kernel",
                "tokio",
                "redb",
                "C library",
                "kokuban_server",
                "kokuban (other)"
            ]
        );
        assert_eq!(p.owner("kernel"), 40.0);
        assert_eq!(p.owner("nothing"), 0.0);
        assert_eq!(p.symbols[0].name, "kernel: tcp_sendmsg_locked");
        assert!(
            p.summary(2, 2)
                .contains("tokio-rt-worker 60%, kokuban-store 30%")
        );
    }

    #[test]
    fn lines_that_are_not_rows_are_skipped() {
        let p = parse(
            "# comment\n\n garbage\n",
            "no|percent|here|0\n",
            Duration::ZERO,
        );
        assert!(p.threads.is_empty() && p.owners.is_empty() && p.symbols.is_empty());
    }
}
