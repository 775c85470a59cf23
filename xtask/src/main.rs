//! `cargo xtask`: Kokuban's own scripts, in plain Rust so that they behave the same on every
//! machine that has cargo (the `xtask` alias lives in `.cargo/config.toml`).
//!
//! - `cargo xtask run [-- ARGS]` builds the web app into `dist/` and runs the `kokuban` server,
//!   which serves it.
//! - `cargo xtask test` is the whole check, the one CI runs: formatting, the supply-chain
//!   policy (`deny.toml`), lints, the wasm builds, the web app, then every test.
//! - `cargo xtask deny` runs only the supply-chain steps of `test`.
//! - `cargo xtask fuzz [--seconds N]` runs each fuzz target for N seconds.
//! - `cargo xtask soak [--minutes N]` churns connections against one release-built node for N
//!   minutes and fails if it leaked anything (not part of `test`: it takes minutes).
//!
//! Each task first installs the tools it needs, at the versions the project pins (`tools`).

mod bundle;
mod deny;
mod fuzz;
mod suites;
mod tools;

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, Result, bail};

use crate::tools::WASM_TARGET;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  run [-- ARGS]       build the web app, then run the kokuban server (ARGS go to the server)
  test                the whole check CI runs: fmt, supply chain (cargo deny), clippy,
                      wasm builds, web app, tests
  deny                only the supply-chain steps of `test` (cargo deny, deny.toml)
  bench [--quick]     build everything in release, measure Kokuban and the Socket.IO
                      baseline in one run, write BENCHMARKS.md and bench/results.json
  fuzz [--seconds N]  run every fuzz target for N seconds each (default 60; needs nightly
                      Rust, installs cargo-fuzz); fails on any crash
  soak [--minutes N]  open and close connections against one release-built node for N
                      minutes (default 10), then fail if it leaked connections, rooms,
                      file descriptors, tasks or memory
  help                print this message";

const DEFAULT_FUZZ_SECONDS: u64 = 60;

/// Long enough for slow leaks to add up beyond the noise, short enough to run before a release.
const DEFAULT_SOAK_MINUTES: u64 = 10;

/// What was asked for on the command line.
#[derive(Debug, PartialEq, Eq)]
enum Task {
    Run { server_args: Vec<String> },
    Test,
    Deny,
    Bench { quick: bool },
    Fuzz { seconds: u64 },
    Soak { seconds: u64 },
    Help,
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = parse(&args).and_then(|task| {
        let root = workspace_root();
        match task {
            Task::Run { server_args } => run(&root, &server_args),
            Task::Test => test(&root),
            Task::Deny => {
                tools::ensure_cargo_deny()?;
                let mut steps = Steps::new(2);
                deny::check(&root, &mut steps)?;
                println!("==> supply-chain steps passed");
                Ok(())
            }
            Task::Bench { quick } => bench(&root, quick),
            Task::Fuzz { seconds } => fuzz::run(&root, seconds),
            Task::Soak { seconds } => soak(&root, seconds),
            Task::Help => {
                println!("{USAGE}");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<Task> {
    let Some((task, rest)) = args.split_first() else {
        bail!("no task given\n\n{USAGE}");
    };
    match task.as_str() {
        "run" => {
            // Both `cargo xtask run -- --listen …` and `cargo xtask run --listen …` work.
            let server_args = match rest {
                [separator, tail @ ..] if separator == "--" => tail,
                _ => rest,
            };
            Ok(Task::Run {
                server_args: server_args.to_vec(),
            })
        }
        "test" => match rest.first() {
            None => Ok(Task::Test),
            Some(extra) => bail!("`test` takes no arguments, got `{extra}`"),
        },
        "deny" => match rest.first() {
            None => Ok(Task::Deny),
            Some(extra) => bail!("`deny` takes no arguments, got `{extra}`"),
        },
        "bench" => match rest {
            [] => Ok(Task::Bench { quick: false }),
            [flag] if flag == "--quick" => Ok(Task::Bench { quick: true }),
            _ => bail!("usage: cargo xtask bench [--quick]"),
        },
        "fuzz" => Ok(Task::Fuzz {
            seconds: parse_duration(rest, "--seconds", 1, DEFAULT_FUZZ_SECONDS)
                .context("usage: cargo xtask fuzz [--seconds N]")?,
        }),
        "soak" => Ok(Task::Soak {
            seconds: parse_duration(rest, "--minutes", 60, DEFAULT_SOAK_MINUTES * 60)
                .context("usage: cargo xtask soak [--minutes N]")?,
        }),
        "help" | "-h" | "--help" => Ok(Task::Help),
        other => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

/// A duration given as `FLAG N` or `FLAG=N` in units of `unit` seconds (N may be a fraction of
/// a unit, e.g. `--minutes 0.5`), in whole seconds; `default` seconds when absent.
fn parse_duration(args: &[String], flag: &str, unit: u64, default: u64) -> Result<u64> {
    let value = match args {
        [] => return Ok(default),
        [name, value] if name == flag => value.as_str(),
        [name] => match name.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
            Some(value) => value,
            None => bail!("unexpected argument `{name}`"),
        },
        _ => bail!("unexpected arguments `{}`", args.join(" ")),
    };
    let amount: f64 = value
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .with_context(|| format!("{flag} takes a positive number, got `{value}`"))?;
    let seconds = (amount * unit as f64).round() as u64;
    if seconds == 0 {
        bail!("{flag} {value} is less than a second");
    }
    Ok(seconds)
}

/// The workspace root. Every command runs from there, so that `dist/`, `Trunk.toml` and
/// `Cargo.lock` name the same files wherever `cargo xtask` was typed.
fn workspace_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
}

/// `cargo xtask run`: the web app, then the server, which serves `dist/`.
fn run(root: &Path, server_args: &[String]) -> Result<()> {
    tools::ensure_web_tools(root)?;
    let mut steps = Steps::new(2);
    steps.run("web app", &mut trunk_build(root))?;
    let mut server = cargo(root);
    server
        .args([
            "run",
            "--release",
            "-p",
            "kokuban-server",
            "--bin",
            "kokuban",
            "--",
        ])
        .args(server_args);
    steps.announce("server", &server);
    exec(server)
}

/// `cargo xtask bench`: the load generator drives both systems on this machine (it builds
/// the server, installs the baseline with `npm ci`, and starts its own Redis and nodes).
fn bench(root: &Path, quick: bool) -> Result<()> {
    tools::ensure_web_tools(root)?;
    let mut steps = Steps::new(2);
    steps.run("web app", &mut trunk_build(root))?;
    let mut bench = cargo(root);
    bench.args([
        "run",
        "--release",
        "-p",
        "kokuban-bench",
        "--",
        "all",
        "--out",
        ".",
    ]);
    if quick {
        bench.arg("--quick");
    }
    steps.run("benchmark", &mut bench)
}

/// `cargo xtask test`: the whole check, failing at the first step that fails.
fn test(root: &Path) -> Result<()> {
    tools::ensure_test_tools(root)?;
    let mut steps = Steps::new(10);
    steps.run(
        "format",
        cargo(root).args(["fmt", "--all", "--", "--check"]),
    )?;
    deny::check(root, &mut steps)?;
    steps.run(
        "lints (native)",
        cargo(root).args([
            "clippy",
            "--workspace",
            "--exclude",
            "kokuban-web",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    steps.run(
        "lints (web app, wasm32)",
        cargo(root).args([
            "clippy",
            "-p",
            "kokuban-web",
            "--target",
            WASM_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The crates the web app is made of must keep building for wasm32; the native steps
    // would not notice if one stopped.
    steps.run(
        "browser crates (wasm32)",
        cargo(root).args([
            "build",
            "-p",
            "kokuban-protocol",
            "-p",
            "kokuban-board",
            "-p",
            "kokuban-client",
            "--target",
            WASM_TARGET,
        ]),
    )?;
    // The fuzz targets are their own workspace (they run on nightly, under the fuzzer's
    // instrumentation), so nothing above builds them: checked here on stable, they follow
    // every change of the protocol and the board instead of breaking unnoticed.
    steps.run(
        "fuzz targets (check)",
        cargo(root).args(["check", "--manifest-path", "fuzz/Cargo.toml", "--bins"]),
    )?;
    // Before the tests: the browser tests load the app from `dist/`.
    steps.run("web app", &mut trunk_build(root))?;
    bundle::report(&root.join("dist"))?;
    // Built once, then the browser tests run beside all the others (see `suites`).
    steps.run(
        "tests: build",
        cargo(root).args([
            "test",
            "--workspace",
            "--exclude",
            "kokuban-web",
            "--no-run",
        ]),
    )?;
    steps.begin(
        "tests",
        "the browser suite beside the rest, each suite's output whole",
    );
    let mut browser = cargo(root);
    browser.args(["test", "-p", "kokuban-e2e"]);
    let mut rest = cargo(root);
    rest.args([
        "test",
        "--workspace",
        "--exclude",
        "kokuban-web",
        "--exclude",
        "kokuban-e2e",
    ]);
    let suites = vec![
        suites::Suite {
            name: "browser",
            command: browser,
        },
        suites::Suite {
            name: "workspace",
            command: rest,
        },
    ];
    suites::run(suites, &root.join("target").join("xtask-tests"))?;
    println!("==> all {} steps passed", steps.total);
    Ok(())
}

/// `cargo xtask soak`: the release server and load generator, then the load generator's soak
/// (it starts the node on a free loopback port with a temporary data directory, churns
/// connections, and exits non-zero on a leak).
fn soak(root: &Path, seconds: u64) -> Result<()> {
    let mut steps = Steps::new(2);
    steps.run(
        "release build",
        cargo(root).args([
            "build",
            "--release",
            "-p",
            "kokuban-server",
            "--bin",
            "kokuban",
            "-p",
            "kokuban-bench",
            "--bin",
            "kokuban-bench",
        ]),
    )?;
    let minutes = format!("{}", seconds as f64 / 60.0);
    steps.run(
        "soak",
        cargo(root).args([
            "run",
            "--release",
            "-p",
            "kokuban-bench",
            "--bin",
            "kokuban-bench",
            "--",
            "soak",
            "--minutes",
            &minutes,
        ]),
    )
}

/// The numbered steps of a task: each is announced as it starts, and a failure names its step.
struct Steps {
    started: usize,
    total: usize,
}

impl Steps {
    fn new(total: usize) -> Self {
        Self { started: 0, total }
    }

    fn announce(&mut self, name: &str, command: &Command) {
        self.begin(name, &display(command));
    }

    /// Announces a step that is not one command.
    fn begin(&mut self, name: &str, what: &str) {
        self.started += 1;
        println!("==> [{}/{}] {name}: {what}", self.started, self.total);
    }

    fn run(&mut self, name: &str, command: &mut Command) -> Result<()> {
        self.announce(name, command);
        let status = command
            .status()
            .with_context(|| format!("step `{name}` could not start `{}`", display(command)))?;
        if !status.success() {
            bail!(
                "step {}/{} `{name}` failed ({status}): {}",
                self.started,
                self.total,
                display(command)
            );
        }
        Ok(())
    }
}

/// A command line as a person would type it (the program by its file name).
fn display(command: &Command) -> String {
    let program = Path::new(command.get_program());
    let program = program.file_name().unwrap_or(program.as_os_str());
    std::iter::once(program)
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cargo`, run from the workspace root. It is the cargo that started xtask (cargo sets
/// `CARGO`), so nested builds use the same toolchain.
fn cargo(root: &Path) -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(root);
    command
}

/// `cargo` on the nightly toolchain, for cargo-fuzz. `rustup run` (unlike `cargo +nightly`)
/// never installs a missing toolchain on its own: a toolchain download is the user's choice.
fn nightly_cargo(root: &Path) -> Command {
    let mut command = Command::new("rustup");
    command.args(["run", "nightly", "cargo"]).current_dir(root);
    command
}

/// `trunk build --release --offline`: the web app into `dist/`, with the tools on PATH only.
fn trunk_build(root: &Path) -> Command {
    let mut command = Command::new("trunk");
    command
        .args(["build", "--release", "--offline"])
        .current_dir(root);
    command
}

/// Becomes `command`, so that Ctrl-C and SIGTERM reach it directly (the server shuts down
/// gracefully on them) and its exit status is the task's.
#[cfg(unix)]
fn exec(mut command: Command) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let error = command.exec();
    Err(error).with_context(|| format!("could not start `{}`", display(&command)))
}

#[cfg(not(unix))]
fn exec(mut command: Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not start `{}`", display(&command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(&command));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn run_passes_everything_after_the_separator_to_the_server() {
        let expected = Task::Run {
            server_args: args("--listen 127.0.0.1:9000 --data-dir x"),
        };
        assert_eq!(
            parse(&args("run -- --listen 127.0.0.1:9000 --data-dir x")).unwrap(),
            expected
        );
        assert_eq!(
            parse(&args("run --listen 127.0.0.1:9000 --data-dir x")).unwrap(),
            expected
        );
        assert_eq!(
            parse(&args("run")).unwrap(),
            Task::Run {
                server_args: Vec::new()
            }
        );
    }

    #[test]
    fn soak_minutes_default_fractional_and_explicit() {
        assert_eq!(
            parse(&args("soak")).unwrap(),
            Task::Soak {
                seconds: DEFAULT_SOAK_MINUTES * 60
            }
        );
        assert_eq!(
            parse(&args("soak --minutes 2")).unwrap(),
            Task::Soak { seconds: 120 }
        );
        assert_eq!(
            parse(&args("soak --minutes=0.5")).unwrap(),
            Task::Soak { seconds: 30 }
        );
        assert!(parse(&args("soak --minutes 0")).is_err());
        assert!(parse(&args("soak --minutes -1")).is_err());
        assert!(parse(&args("soak --seconds 60")).is_err());
    }

    #[test]
    fn fuzz_seconds_default_and_explicit() {
        assert_eq!(
            parse(&args("fuzz")).unwrap(),
            Task::Fuzz {
                seconds: DEFAULT_FUZZ_SECONDS
            }
        );
        assert_eq!(
            parse(&args("fuzz --seconds 5")).unwrap(),
            Task::Fuzz { seconds: 5 }
        );
        assert_eq!(
            parse(&args("fuzz --seconds=7")).unwrap(),
            Task::Fuzz { seconds: 7 }
        );
        assert!(parse(&args("fuzz --seconds 0")).is_err());
        assert!(parse(&args("fuzz --seconds soon")).is_err());
        assert!(parse(&args("fuzz --minutes 1")).is_err());
    }

    #[test]
    fn unknown_or_malformed_tasks_are_errors() {
        assert!(parse(&[]).is_err());
        assert!(parse(&args("deploy")).is_err());
        assert!(parse(&args("test --quick")).is_err());
        assert!(parse(&args("deny advisories")).is_err());
        assert_eq!(parse(&args("deny")).unwrap(), Task::Deny);
        assert_eq!(parse(&args("--help")).unwrap(), Task::Help);
    }

    #[test]
    fn commands_display_as_typed() {
        let mut command = Command::new("/some/toolchain/bin/cargo");
        command.args(["fmt", "--all", "--", "--check"]);
        assert_eq!(display(&command), "cargo fmt --all -- --check");
    }
}
