//! Kokuban's relay on a Redis Cluster beside the same load on one Redis, in the same run: what
//! sharding costs per message, how evenly the rooms spread over the masters, and how many
//! masters and node cores a deployment needs, from the measured CPU.
//!
//! Part of `all`, and also a command of its own (`kokuban-bench shards`) that replaces just
//! this section of BENCHMARKS.md: the full run takes over an hour.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::report::{opt, thousands};
use crate::scenario::{Load, RunResult};
use crate::sweep::{Runner, Setup};

/// Masters of the Redis Cluster measured: the fewest Redis Cluster accepts.
pub const MASTERS: usize = 3;

/// Where the section starts and ends in BENCHMARKS.md.
const BEGIN: &str = "<!-- redis-cluster: begin -->";
const END: &str = "<!-- redis-cluster: end -->";

/// Each master, and each node core, is planned to run at most this busy: headroom for bursts,
/// and for a failover's catch-up.
const PLANNED_BUSY: f64 = 0.7;

/// Deployments the capacity model is worked out for, in concurrent members.
const DEPLOYMENTS: [u64; 3] = [10_000, 100_000, 1_000_000];

/// The comparison's runs.
#[derive(Debug, Clone, Serialize)]
pub struct ShardsResult {
    /// Seconds since the Unix epoch when it started.
    pub started_unix: u64,
    /// Wall-clock length, seconds.
    pub duration_s: f64,
    /// The commit measured.
    pub commit: String,
    /// Masters of the Redis Cluster.
    pub masters: usize,
    /// Per load, the run on one Redis and then the run on the Redis Cluster.
    pub runs: Vec<RunResult>,
}

/// Runs every load in `loads` on two nodes sharing one Redis, then on two nodes sharing a
/// Redis Cluster of [`MASTERS`] masters.
pub async fn run(runner: &mut Runner, loads: &[Load]) -> ShardsResult {
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut runs = Vec::new();
    for load in loads {
        eprintln!(
            "  {} clients: one Redis, then {MASTERS} masters",
            load.clients()
        );
        let setups = [Setup::KokubanCluster, Setup::KokubanShards(MASTERS)];
        runs.extend(runner.each(&setups, load).await);
    }
    ShardsResult {
        started_unix,
        duration_s: started.elapsed().as_secs_f64(),
        commit: String::new(),
        masters: MASTERS,
        runs,
    }
}

/// CPU cores busy during a run's window: `cpu_s` seconds over its window.
fn cores(cpu_s: f64, r: &RunResult) -> f64 {
    cpu_s / r.window_s.max(f64::EPSILON)
}

/// Members one fully busy core carries, as measured by `r`: `None` without a figure.
fn members_per_core(cpu_s: Option<f64>, r: &RunResult) -> Option<f64> {
    let busy = cores(cpu_s?, r);
    (busy > 0.0 && r.connected > 0).then(|| r.connected as f64 / busy)
}

/// The section, between its markers.
pub fn section(s: &ShardsResult) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "{BEGIN}");
    let _ = writeln!(md, "## On a Redis Cluster\n");
    let _ = writeln!(
        md,
        "The relay load (rooms of 10, 2 editors each at 60 batches/s) on two Kokuban nodes \
         sharing one Redis, then on two nodes sharing a Redis Cluster of {} masters without \
         replicas (`--redis-cluster`), one after the other in the same run ({:.0} s, commit \
         {}, by `kokuban-bench redis-cluster`, which refreshes this section alone). Redis figures are summed over the masters. *CPU spread* is the \
         busiest master's CPU over the masters' mean in the window, *publish spread* the same \
         for the messages each master published (`SPUBLISH`) over the whole run: 1 means the \
         rooms' work is spread evenly.\n",
        s.masters, s.duration_s, s.commit
    );
    let _ = writeln!(
        md,
        "| clients | Redis | p99 ms | nodes CPU µs/msg | Redis CPU µs/msg | CPU spread | \
         publish spread | lost |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in &s.runs {
        let redis = if r.redis_cpu_spread.is_some() || r.redis_ops_spread.is_some() {
            format!("{} masters", s.masters)
        } else {
            "one".into()
        };
        let _ = writeln!(
            md,
            "| {} | {redis} | {:.1} | {} | {} | {} | {} | {} |",
            r.clients,
            r.latency.p99_ms,
            opt(r.server_cpu_us_per_msg, 1),
            opt(r.redis_cpu_us_per_msg, 2),
            opt(r.redis_cpu_spread, 2),
            opt(r.redis_ops_spread, 2),
            r.lost
        );
    }
    md.push('\n');
    capacity(&mut md, s);
    let _ = writeln!(md, "{END}");
    md
}

/// The capacity model from the cluster run at the largest load.
fn capacity(md: &mut String, s: &ShardsResult) {
    let Some(r) = s
        .runs
        .iter()
        .filter(|r| r.redis_ops_spread.is_some() || r.redis_cpu_spread.is_some())
        .max_by_key(|r| r.clients)
    else {
        return;
    };
    let (Some(per_master), Some(per_node_core)) = (
        members_per_core(r.redis_cpu_s, r).map(|m| m * PLANNED_BUSY),
        members_per_core(Some(r.server_cpu_s), r).map(|m| m * PLANNED_BUSY),
    ) else {
        return;
    };
    let _ = writeln!(md, "### Capacity model\n");
    let _ = writeln!(
        md,
        "From the {} masters' run at {} clients: one Redis core carried {} members of this \
         mix and one node core {}. Planning each master (one core: Redis runs commands on \
         one thread) and each node core at most {:.0} % busy, a master serves about {} \
         members and a node core about {}. Every member here is in a room being drawn in \
         at 60 batches/s; members who watch or idle cost far less (see the idle and fan-out \
         sections), and the cost per message falls as load grows (batching), so this is \
         conservative. Each master wants one replica beside it (`--redis-replicas 1` to lose \
         nothing on a failover).\n",
        s.masters,
        r.clients,
        thousands(per_master / PLANNED_BUSY),
        thousands(per_node_core / PLANNED_BUSY),
        PLANNED_BUSY * 100.0,
        thousands(per_master),
        thousands(per_node_core)
    );
    let _ = writeln!(
        md,
        "| concurrent members | Redis masters (+1 replica each) | node cores |"
    );
    let _ = writeln!(md, "|---:|---:|---:|");
    for m in DEPLOYMENTS {
        let masters = (m as f64 / per_master).ceil().max(3.0);
        let node_cores = (m as f64 / per_node_core).ceil();
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            thousands(m as f64),
            thousands(masters),
            thousands(node_cores)
        );
    }
    md.push('\n');
}

/// The heading the section goes before in a BENCHMARKS.md that has none yet (where `all`
/// puts it).
const GOES_BEFORE: &str = "## What limits each figure";

/// `doc` with its section replaced by `section`; in a doc without one, `section` goes before
/// [`GOES_BEFORE`], or at the end.
pub fn splice(doc: &str, section: &str) -> String {
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if e > b => {
            let after = doc[e + END.len()..].trim_start_matches('\n');
            let gap = if after.is_empty() { "" } else { "\n" };
            format!("{}{section}{gap}{after}", &doc[..b])
        }
        _ => match doc.find(GOES_BEFORE) {
            Some(at) => format!("{}{section}\n{}", &doc[..at], &doc[at..]),
            None => format!("{}\n\n{section}", doc.trim_end_matches('\n')),
        },
    }
}

/// Replaces the section of `out/BENCHMARKS.md` (adding it if missing) and writes the runs to
/// `out/bench/redis-cluster.json`.
pub fn write(out: &Path, s: &ShardsResult) -> anyhow::Result<()> {
    write_runs(out, s)?;
    let path = out.join("BENCHMARKS.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, splice(&doc, &section(s)))?;
    Ok(())
}

/// Writes the runs to `out/bench/redis-cluster.json`, where the full run leaves them too, so
/// that the file always holds the runs the section shows.
pub fn write_runs(out: &Path, s: &ShardsResult) -> anyhow::Result<()> {
    let bench = out.join("bench");
    std::fs::create_dir_all(&bench)?;
    std::fs::write(
        bench.join("redis-cluster.json"),
        serde_json::to_string_pretty(s)? + "\n",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_in_place_or_added_once() {
        let first = format!("{BEGIN}\nold\n{END}\n");
        let doc = format!("# B\n\nbefore\n\n{first}\n## After\n");
        let new = format!("{BEGIN}\nnew\n{END}\n");
        let spliced = splice(&doc, &new);
        assert_eq!(spliced, format!("# B\n\nbefore\n\n{new}\n## After\n"));
        assert_eq!(splice(&spliced, &new), spliced, "idempotent");
        let added = splice("# B\n", &new);
        assert_eq!(added, format!("# B\n\n{new}"));
        assert_eq!(splice(&added, &new), added);
        let doc = format!("# B\n\n{GOES_BEFORE}\n\nwhy\n");
        let placed = splice(&doc, &new);
        assert_eq!(placed, format!("# B\n\n{new}\n{GOES_BEFORE}\n\nwhy\n"));
        assert_eq!(splice(&placed, &new), placed);
    }
}
