//! `kokuban-bench`: the command line of the benchmark harness (see the library docs).

mod soak;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kokuban_bench::plan::{self, Options};
use kokuban_bench::procs::{Adapter, FloorRuntime};
use kokuban_bench::scenario::{self, Deployment, Load, System};
use kokuban_bench::syscalls::Perf;

#[derive(Parser)]
#[command(version, about = "Kokuban's load generator and benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a report goes and what it measures.
#[derive(clap::Args)]
struct ReportArgs {
    /// Directory that receives BENCHMARKS.md (and bench/ beneath it).
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// The workspace root (holds bench/socketio); defaults to the one this tool was built in.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Small loads and short windows, for development.
    #[arg(long)]
    quick: bool,
    /// A `kokuban` binary to measure instead of building one.
    #[arg(long)]
    kokuban_bin: Option<PathBuf>,
}

impl ReportArgs {
    fn options(self, floor_bin: Option<PathBuf>) -> Options {
        Options {
            out: self.out,
            root: self.root.unwrap_or_else(default_root),
            quick: self.quick,
            kokuban_bin: self.kokuban_bin,
            floor_bin,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Every scenario on Kokuban, the floor and the Socket.IO baseline; writes BENCHMARKS.md,
    /// bench/results.json and the plots under --out.
    All {
        #[command(flatten)]
        report: ReportArgs,
        /// A `kokuban-floor` binary to measure instead of building one.
        #[arg(long)]
        floor_bin: Option<PathBuf>,
    },
    /// Only the relay on a Redis Cluster beside one Redis: replaces that section of
    /// BENCHMARKS.md (the full run takes over an hour) and writes bench/redis-cluster.json.
    RedisCluster {
        #[command(flatten)]
        report: ReportArgs,
    },
    /// One relay run, printed as JSON (for development).
    Relay {
        /// `kokuban`, `floor` or `socketio` (the binaries default to the ones built beside this
        /// tool).
        #[arg(long, default_value = "socketio")]
        system: String,
        /// The workspace root.
        #[arg(long)]
        root: Option<PathBuf>,
        /// The `kokuban` binary.
        #[arg(long)]
        kokuban_bin: Option<PathBuf>,
        /// The `kokuban-floor` binary.
        #[arg(long)]
        floor_bin: Option<PathBuf>,
        /// The floor's runtime: `per-core` or `multi`.
        #[arg(long, default_value = "per-core")]
        floor_runtime: String,
        /// Nodes (more than one: a cluster sharing a Redis of its own).
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// Kokuban's Redis as a Redis Cluster of this many masters (`--redis-cluster`)
        /// instead of one Redis.
        #[arg(long)]
        redis_masters: Option<usize>,
        /// Rooms.
        #[arg(long, default_value_t = 10)]
        rooms: usize,
        /// Members per room.
        #[arg(long, default_value_t = 10)]
        room_size: usize,
        /// Editors per room.
        #[arg(long, default_value_t = 2)]
        editors: usize,
        /// Batches per second per editor.
        #[arg(long, default_value_t = 60.0)]
        rate: f64,
        /// Cursor moves per second of every member.
        #[arg(long, default_value_t = 0.0)]
        cursor_rate: f64,
        /// Length of the measured window, seconds.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// What an Ack costs beyond delivery: one author adds items one at a time, watched from
    /// another node; on a single node, two nodes + Redis, and two nodes + Redis waiting for a
    /// replica (`--redis-replicas 1`). Printed as JSON.
    Acks {
        /// The `kokuban` binary.
        #[arg(long)]
        kokuban_bin: Option<PathBuf>,
        /// Ops measured per deployment.
        #[arg(long, default_value_t = 500)]
        ops: usize,
    },
    /// Memory under holding attacks on one node: viewers of a large board that never read,
    /// and connections holding an unfinished message, each against its budget. Printed as
    /// JSON; exits non-zero if a budget is broken.
    Holds {
        /// The `kokuban` binary.
        #[arg(long)]
        kokuban_bin: Option<PathBuf>,
        /// Size of the board's Welcome, bytes.
        #[arg(long, default_value_t = 16_000_000)]
        board_bytes: usize,
        /// Viewers that never read.
        #[arg(long, default_value_t = 20)]
        joiners: usize,
        /// Connections holding an unfinished message.
        #[arg(long, default_value_t = 1000)]
        holders: usize,
        /// The first fragment each holder sends, bytes.
        #[arg(long, default_value_t = 64 * 1024)]
        fragment_bytes: usize,
    },
    /// What a point of a handwritten pen trace costs on the wire, both ways, and at rest,
    /// printed as JSON (the full run's bytes per point alone).
    Pen {
        /// The `kokuban` binary.
        #[arg(long)]
        kokuban_bin: Option<PathBuf>,
        /// Nodes (more than one: a cluster sharing a Redis of its own; drawn on the first).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Strokes drawn.
        #[arg(long, default_value_t = 40)]
        strokes: usize,
    },
    /// Many viewers joining a large board at the same moment, printed as JSON (for
    /// development).
    JoinStorm {
        /// The `kokuban` binary.
        #[arg(long)]
        kokuban_bin: Option<PathBuf>,
        /// Nodes (more than one: a cluster sharing a Redis of its own).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// Size of the board's Welcome, bytes.
        #[arg(long, default_value_t = 4_000_000)]
        board_bytes: usize,
        /// Viewers joining at once.
        #[arg(long, default_value_t = 150)]
        joiners: usize,
    },
    /// Connections opening and closing against one node for minutes, then a check that the
    /// node leaked no connection, room, file descriptor, task or memory; exits non-zero on a
    /// leak.
    Soak {
        /// The `kokuban` binary; defaults to the one built beside this tool.
        #[arg(long)]
        kokuban_bin: Option<PathBuf>,
        /// Minutes of churn.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Clients connected at once, each opening one session after another.
        #[arg(long, default_value_t = 48)]
        clients: usize,
        /// Rooms the clients move over.
        #[arg(long, default_value_t = 32)]
        rooms: usize,
        /// Longest wait for the node to settle after the churn, seconds (an emptied room is
        /// unloaded after 30 s, a silent connection closed after 45 s).
        #[arg(long, default_value_t = 120)]
        settle_seconds: u64,
        /// Allowed resident-memory growth from the first minute to the end, percent...
        #[arg(long, default_value_t = 10.0)]
        rss_growth_pct: f64,
        /// ...or MiB, whichever is larger.
        #[arg(long, default_value_t = 8.0)]
        rss_slack_mib: f64,
    },
}

fn default_root() -> PathBuf {
    // This crate lives at crates/bench in the workspace.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A binary cargo built into the same directory as this tool.
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .unwrap_or_default()
        .with_file_name(name)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    kokuban_bench::net::raise_open_file_limit();
    match cli.command {
        Command::All { report, floor_bin } => {
            let opts = report.options(floor_bin);
            let results = plan::all(&opts).await?;
            eprintln!(
                "wrote {} and {} in {:.0} s",
                opts.out.join("BENCHMARKS.md").display(),
                opts.out.join("bench").join("results.json").display(),
                results.duration_s
            );
        }
        Command::RedisCluster { report } => {
            let opts = report.options(None);
            let result = plan::redis_cluster_only(&opts).await?;
            eprintln!(
                "wrote {} runs into {} in {:.0} s",
                result.runs.len(),
                opts.out.join("BENCHMARKS.md").display(),
                result.duration_s
            );
        }
        Command::Relay {
            system,
            root,
            kokuban_bin,
            floor_bin,
            floor_runtime,
            nodes,
            redis_masters,
            rooms,
            room_size,
            editors,
            rate,
            cursor_rate,
            seconds,
        } => {
            let root = root.unwrap_or_else(default_root);
            let mut dep = match system.as_str() {
                "socketio" => {
                    let adapter = (nodes > 1).then_some(Adapter::Classic);
                    Deployment::socketio(&root.join("bench/socketio"), nodes, adapter).await?
                }
                "kokuban" => {
                    let bin = kokuban_bin.unwrap_or_else(|| sibling("kokuban"));
                    match redis_masters {
                        Some(masters) => {
                            Deployment::kokuban_on_redis_cluster(&bin, nodes, masters).await?
                        }
                        None => Deployment::kokuban(&bin, nodes, nodes > 1).await?,
                    }
                }
                "floor" => {
                    let bin = floor_bin.unwrap_or_else(|| sibling("kokuban-floor"));
                    let runtime = match floor_runtime.as_str() {
                        "per-core" => FloorRuntime::PerCore,
                        "multi" => FloorRuntime::Multi,
                        other => anyhow::bail!("unknown floor runtime {other}"),
                    };
                    Deployment::floor(&bin, runtime).await?
                }
                other => anyhow::bail!("unknown system {other}"),
            };
            let load = Load {
                scenario: "relay".into(),
                rooms,
                room_size,
                editors_per_room: editors,
                rate_hz: rate,
                stroke_batches: 60,
                cursor_hz: cursor_rate,
                batch_bytes: (64, 128),
                warmup: Duration::from_secs(2),
                measure: Duration::from_secs(seconds),
                syscall_window: Duration::from_secs(2),
                profile_window: Duration::ZERO,
                drain: Duration::from_secs(2),
            };
            let perf = Perf::probe()
                .await
                .map_err(|e| eprintln!("system calls not counted: {e}"))
                .ok();
            let coalescing = (dep.system == System::Kokuban)
                .then(|| kokuban_server::Config::default().cursor_interval);
            let result = scenario::run(&mut dep, &load, perf.as_ref(), coalescing).await;
            dep.stop().await;
            println!("{}", serde_json::to_string_pretty(&result?)?);
        }
        Command::Acks { kokuban_bin, ops } => {
            let bin = kokuban_bin.unwrap_or_else(|| sibling("kokuban"));
            let mut results = Vec::new();
            // The same ops, each deployment in turn, in one run.
            for (nodes, cluster, replicas) in [(1, false, 0), (2, true, 0), (2, true, 1)] {
                let dep = Deployment::kokuban_with(&bin, nodes, cluster, replicas).await?;
                let result = kokuban_bench::acks::run(&dep, ops).await;
                dep.stop().await;
                let result = result?;
                eprintln!(
                    "{:<45} Ack p50 {:6.2} ms p99 {:6.2} ms | seen p50 {:6.2} ms p99 {:6.2} ms",
                    result.mode,
                    result.ack_ms.p50,
                    result.ack_ms.p99,
                    result.seen_ms.p50,
                    result.seen_ms.p99
                );
                results.push(result);
            }
            println!("{}", serde_json::to_string_pretty(&results)?);
        }
        Command::Holds {
            kokuban_bin,
            board_bytes,
            joiners,
            holders,
            fragment_bytes,
        } => {
            let bin = kokuban_bin.unwrap_or_else(|| sibling("kokuban"));
            let dep = Deployment::kokuban(&bin, 1, false).await?;
            let result =
                kokuban_bench::holds::run(&dep, board_bytes, joiners, holders, fragment_bytes)
                    .await;
            dep.stop().await;
            let result = result?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            anyhow::ensure!(result.within_budgets(), "a memory budget was broken");
        }
        Command::Pen {
            kokuban_bin,
            nodes,
            strokes,
        } => {
            let bin = kokuban_bin.unwrap_or_else(|| sibling("kokuban"));
            let dep = Deployment::kokuban(&bin, nodes, nodes > 1).await?;
            let result = kokuban_bench::pentrace::run(&dep, strokes).await;
            dep.stop().await;
            println!("{}", serde_json::to_string_pretty(&result?)?);
        }
        Command::JoinStorm {
            kokuban_bin,
            nodes,
            board_bytes,
            joiners,
        } => {
            let bin = kokuban_bin.unwrap_or_else(|| sibling("kokuban"));
            let dep = Deployment::kokuban(&bin, nodes, nodes > 1).await?;
            let result = kokuban_bench::joinstorm::run(&dep, board_bytes, joiners).await;
            dep.stop().await;
            println!("{}", serde_json::to_string_pretty(&result?)?);
        }
        Command::Soak {
            kokuban_bin,
            minutes,
            clients,
            rooms,
            settle_seconds,
            rss_growth_pct,
            rss_slack_mib,
        } => {
            let churn = Duration::try_from_secs_f64(minutes * 60.0)
                .ok()
                .filter(|d| !d.is_zero())
                .context("--minutes must be a positive number")?;
            let opts = soak::Options {
                kokuban_bin: kokuban_bin.unwrap_or_else(|| sibling("kokuban")),
                churn,
                rooms,
                clients: clients.max(1),
                settle: Duration::from_secs(settle_seconds),
                rss_growth_pct,
                rss_slack_mib,
            };
            if !soak::run(&opts).await? {
                anyhow::bail!("the soak found a leak (see the table above)");
            }
        }
    }
    Ok(())
}
