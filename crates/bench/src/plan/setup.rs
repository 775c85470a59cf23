//! What a run needs before it measures: the binaries built, Kokuban probed in both modes, and
//! the versions of everything that ran, for the report.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

use super::{FLOOR_RUNTIME, Options};
use crate::scenario::{Load, Programs};
use crate::sweep::{Runner, Setup};

/// Builds the server and the floor with the same cargo that built this tool (the binaries land
/// next to ours), unless given; what does not build is skipped with a note.
pub(super) async fn build(
    opts: &Options,
    notes: &mut Vec<String>,
) -> (Option<PathBuf>, Option<PathBuf>) {
    let mut targets = Vec::new();
    if opts.kokuban_bin.is_none() {
        targets.extend(["-p", "kokuban-server", "--bin", "kokuban"]);
    }
    if opts.floor_bin.is_none() {
        targets.extend(["-p", "kokuban-bench", "--bin", "kokuban-floor"]);
    }
    let built = if targets.is_empty() {
        Ok(())
    } else {
        cargo_build(&opts.root, &targets).await
    };
    let sibling = |name: &str| -> anyhow::Result<PathBuf> {
        built.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let bin = std::env::current_exe()?.with_file_name(name);
        anyhow::ensure!(bin.exists(), "{} not found after the build", bin.display());
        Ok(bin)
    };
    let mut pick = |given: &Option<PathBuf>, name: &str, what: &str| match given {
        Some(b) => Some(b.clone()),
        None => sibling(name)
            .map_err(|e| notes.push(format!("{what} was not measured: it did not build ({e:#})")))
            .ok(),
    };
    let kokuban = pick(&opts.kokuban_bin, "kokuban", "Kokuban");
    let floor = pick(&opts.floor_bin, "kokuban-floor", "The floor");
    (kokuban, floor)
}

async fn cargo_build(root: &Path, targets: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the kokuban server and the floor (release)");
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .args(targets)
        .current_dir(root)
        .stdout(Stdio::null())
        .status()
        .await
        .context("run cargo build")?;
    anyhow::ensure!(status.success(), "cargo build failed ({status})");
    Ok(())
}

/// Checks that the server starts and relays, alone and in a cluster, and that the floor
/// does; what does not is skipped with a note rather than measured wrongly.
pub(super) async fn probe_kokuban(runner: &mut Runner) -> (bool, bool) {
    if runner.programs.floor.is_some()
        && let Err(e) = relays_cleanly(runner, Setup::Floor(FLOOR_RUNTIME)).await
    {
        runner
            .notes
            .push(format!("The floor was not measured: it did not work: {e}"));
        runner.programs.floor = None;
    }
    if runner.programs.kokuban.is_none() {
        return (false, false);
    }
    if let Err(e) = relays_cleanly(runner, Setup::KokubanSingle).await {
        runner.notes.push(format!(
            "Kokuban was not measured: a single node did not work: {e}"
        ));
        runner.programs.kokuban = None;
        return (false, false);
    }
    let cluster = relays_cleanly(runner, Setup::KokubanCluster).await;
    if let Err(e) = &cluster {
        runner.notes.push(format!(
            "Kokuban cluster mode was not measured (single node only): {e}"
        ));
    }
    (true, cluster.is_ok())
}

/// Two editors in a room of two, for a second.
async fn relays_cleanly(runner: &Runner, setup: Setup) -> Result<(), String> {
    let probe = Load {
        scenario: "probe".into(),
        rooms: 1,
        room_size: 2,
        editors_per_room: 2,
        rate_hz: 30.0,
        stroke_batches: 30,
        cursor_hz: 0.0,
        batch_bytes: (64, 128),
        warmup: Duration::from_millis(200),
        measure: Duration::from_millis(500),
        syscall_window: Duration::ZERO,
        profile_window: Duration::ZERO,
        drain: Duration::from_millis(500),
    };
    let r = runner
        .once(setup, &probe)
        .await
        .map_err(|e| format!("{e:#}"))?;
    if r.delivered == 0 || r.lost > 0 || r.errors > 0 {
        return Err(format!(
            "a two-member room did not relay cleanly (delivered {}, lost {}, errors {}: {})",
            r.delivered,
            r.lost,
            r.errors,
            r.first_error.unwrap_or_default()
        ));
    }
    Ok(())
}

async fn command_version(program: &str, arg: &str) -> String {
    match Command::new(program).arg(arg).output().await {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Err(_) => "not found".into(),
    }
}

fn npm_package_version(dir: &Path, package: &str) -> String {
    let path = dir.join("node_modules").join(package).join("package.json");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("version")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The short commit the workspace at `root` is on (empty outside git).
pub(super) async fn commit(root: &Path) -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub(super) async fn versions(root: &Path, programs: &Programs) -> Vec<(String, String)> {
    let commit = commit(root).await;
    let mut v = vec![
        (
            "kokuban".to_string(),
            format!("{} (commit {commit})", env!("CARGO_PKG_VERSION")),
        ),
        ("rustc".into(), command_version("rustc", "--version").await),
        ("node".into(), command_version("node", "--version").await),
        (
            "redis-server".into(),
            command_version("redis-server", "--version").await,
        ),
    ];
    for p in [
        "socket.io",
        "@socket.io/redis-adapter",
        "redis",
        "engine.io",
        "ws",
    ] {
        v.push((p.to_string(), npm_package_version(&programs.socketio, p)));
    }
    v
}
