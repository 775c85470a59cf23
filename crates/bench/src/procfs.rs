//! What the benchmark reads from /proc: CPU time and resident memory of the server processes,
//! and a description of the machine.

use std::time::Duration;

use serde::Serialize;

/// CPU time and memory of one process at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProcSample {
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// The system (kernel) part of `cpu_ticks`.
    pub sys_ticks: u64,
    /// Context switches of all its threads, voluntary (it waited: for epoll, a futex) and
    /// involuntary (preempted).
    pub context_switches: u64,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
}

/// User and system time (clock ticks) from the text of `/proc/PID/stat`.
///
/// The command name (field 2) is in parentheses and may itself hold spaces and parentheses,
/// so fields are counted from the LAST `)`: after it come `state` (field 3) … `utime` (14)
/// and `stime` (15).
pub fn parse_stat_cpu(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime = fields.next()?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// A `key: value kB` line of `/proc/PID/status` or `/proc/meminfo`, in bytes.
pub fn parse_kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Samples a live process; `None` once it has exited.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let (utime, stime) = parse_stat_cpu(&stat)?;
    Some(ProcSample {
        cpu_ticks: utime + stime,
        sys_ticks: stime,
        context_switches: context_switches(pid),
        rss_bytes: parse_kb_field(&status, "VmRSS").unwrap_or(0),
    })
}

/// Resets a process's peak resident set size (`VmHWM`) to its current RSS, so that
/// [`peak_rss`] reports the peak from now on; false where the kernel does not allow it.
pub fn reset_peak_rss(pid: u32) -> bool {
    // "5" is the clear_refs command that resets the high-water mark (Linux 4.0 and later).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The peak resident set size of a live process (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kb_field(&status, "VmHWM")
}

/// The `voluntary_ctxt_switches` plus `nonvoluntary_ctxt_switches` of the text of a
/// `/proc/PID/task/TID/status`.
pub fn parse_context_switches(status: &str) -> u64 {
    ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
        .iter()
        .filter_map(|key| {
            status.lines().find_map(|line| {
                line.strip_prefix(key)?
                    .strip_prefix(':')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        })
        .sum()
}

/// Context switches summed over the live threads of a process (`/proc/PID/status` counts the
/// main thread only).
fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|s| parse_context_switches(&s))
        .sum()
}

/// Clock ticks per second (the unit of `utime` and `stime`).
pub fn ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        // Linux has reported 100 on every architecture for decades.
        _ => 100,
    }
}

/// CPU time between two samples.
pub fn cpu_between(a: ProcSample, b: ProcSample) -> Duration {
    ticks(b.cpu_ticks.saturating_sub(a.cpu_ticks))
}

/// System (kernel) CPU time between two samples.
pub fn sys_between(a: ProcSample, b: ProcSample) -> Duration {
    ticks(b.sys_ticks.saturating_sub(a.sys_ticks))
}

fn ticks(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / ticks_per_second() as f64)
}

/// Busy and total CPU time of the whole machine, in clock ticks summed over all CPUs, from
/// the first line of `/proc/stat` (`cpu user nice system idle iowait irq softirq steal …`).
/// Idle and I/O wait count as not busy.
pub fn parse_machine_cpu(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // guest and guest_nice are already included in user and nice.
    let values: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if values.len() < 5 {
        return None;
    }
    let total: u64 = values.iter().sum();
    let idle = values[3] + values[4];
    Some((total - idle, total))
}

/// Busy and total ticks of the whole machine now.
pub fn machine_cpu() -> Option<(u64, u64)> {
    parse_machine_cpu(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The machine's CPU use between two readings, as a percentage of one core (so a busy
/// two-core machine reads 200%, like the per-process figures).
pub fn machine_cpu_pct(a: (u64, u64), b: (u64, u64), cores: usize) -> f64 {
    let busy = b.0.saturating_sub(a.0) as f64;
    let total = b.1.saturating_sub(a.1) as f64;
    if total == 0.0 {
        return 0.0;
    }
    busy / total * cores as f64 * 100.0
}

/// The machine the figures were measured on.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// Model name of the first CPU.
    pub cpu_model: String,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Kernel release.
    pub kernel: String,
    /// Load average over one minute when the run started.
    pub load_average_at_start: f64,
}

/// The model name from the text of `/proc/cpuinfo`, and the number of processors listed.
pub fn parse_cpuinfo(text: &str) -> (String, usize) {
    let model = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let count = text
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(k, _)| k.trim() == "processor")
        })
        .count();
    (model, count)
}

/// Reads the machine's description.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let (cpu_model, listed) = parse_cpuinfo(&cpuinfo);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(listed);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    Machine {
        cores,
        cpu_model,
        memory_bytes: parse_kb_field(&meminfo, "MemTotal").unwrap_or(0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        load_average_at_start: load
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "4242 (node (worker) x) S 1 4242 4242 0 -1 4194560 9597 0 0 0 1234 567 0 0 \
                    20 0 7 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat), Some((1234, 567)));
        assert_eq!(parse_stat_cpu("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn kb_fields_of_status_and_meminfo() {
        let status = "Name:\tkokuban\nVmPeak:\t  300000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_kb_field(status, "VmRSS"), Some(12345 * 1024));
        assert_eq!(parse_kb_field(status, "VmSwap"), None);
        assert_eq!(parse_kb_field(status, "Threads"), None);
        let meminfo = "MemTotal:       24589560 kB\nMemFree:        1 kB\n";
        assert_eq!(parse_kb_field(meminfo, "MemTotal"), Some(24_589_560 * 1024));
    }

    #[test]
    fn context_switches_add_voluntary_and_involuntary() {
        let status = "Name:\ttokio-rt-worker\nvoluntary_ctxt_switches:\t1200\n\
                      nonvoluntary_ctxt_switches:\t34\n";
        assert_eq!(parse_context_switches(status), 1234);
        assert_eq!(parse_context_switches("Name:\tx\n"), 0);
    }

    #[test]
    fn machine_cpu_counts_idle_and_iowait_as_not_busy() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        assert_eq!(parse_machine_cpu(stat), Some((160, 1000)));
        assert_eq!(parse_machine_cpu("intr 1 2 3"), None);
        let pct = machine_cpu_pct((160, 1000), (460, 1600), 2);
        assert!((pct - 100.0).abs() < 1e-9, "{pct}");
    }

    #[test]
    fn cpuinfo_model_and_processor_count() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\n\
                    processor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            parse_cpuinfo(text),
            ("Intel(R) Xeon(R) CPU @ 2.20GHz".to_string(), 2)
        );
        assert_eq!(parse_cpuinfo(""), ("unknown".to_string(), 0));
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
        assert!(ticks_per_second() > 0);
        let peak = peak_rss(std::process::id()).expect("VmHWM");
        assert!(
            peak >= s.rss_bytes / 2,
            "peak {peak} against rss {}",
            s.rss_bytes
        );
    }
}
