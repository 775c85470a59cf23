//! Test suites run side by side, once everything is built. The browser tests wait on Chromium
//! most of the time and the server tests on sockets and timers, so on two cores they overlap
//! well. Each suite writes to a log file of its own, printed whole as soon as the suite
//! finishes, so that the output of one suite is never interleaved with another's.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::display;

/// One suite: a name for the summary and the command that runs it.
pub struct Suite {
    pub name: &'static str,
    pub command: Command,
}

/// What a suite did, read from libtest's `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Counts {
    /// Adds up every `test result: ok. 3 passed; 0 failed; 1 ignored; …` line of `log`.
    pub fn parse(log: &str) -> Counts {
        let mut total = Counts::default();
        for line in log.lines() {
            let Some(rest) = line.strip_prefix("test result: ") else {
                continue;
            };
            for part in rest.split(['.', ';']) {
                let mut words = part.split_whitespace();
                let (Some(n), Some(what)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => total.passed += n,
                    "failed" => total.failed += n,
                    "ignored" => total.ignored += n,
                    _ => {}
                }
            }
        }
        total
    }

    fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

struct Running {
    name: &'static str,
    command: String,
    log: PathBuf,
    child: Child,
    started: Instant,
}

struct Finished {
    name: &'static str,
    status: ExitStatus,
    took: Duration,
    counts: Counts,
}

/// Starts every suite at once, prints each one's output whole when it ends, then a summary;
/// fails if any suite failed. Logs are kept in `log_dir`.
pub fn run(suites: Vec<Suite>, log_dir: &Path) -> Result<()> {
    fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let mut running = Vec::new();
    for Suite { name, mut command } in suites {
        let log = log_dir.join(format!("{name}.log"));
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let command_line = display(&command);
        println!("==>     started suite `{name}`: {command_line}");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("suite `{name}` could not start `{command_line}`"))?;
        running.push(Running {
            name,
            command: command_line,
            log,
            child,
            started: Instant::now(),
        });
    }
    let mut finished = Vec::new();
    while !running.is_empty() {
        let mut i = 0;
        while i < running.len() {
            match running[i].child.try_wait()? {
                Some(status) => finished.push(report(running.swap_remove(i), status)?),
                None => i += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    summarize(&finished)
}

/// Prints a finished suite's log, whole, under a header naming it.
fn report(suite: Running, status: ExitStatus) -> Result<Finished> {
    let took = suite.started.elapsed();
    let log = fs::read_to_string(&suite.log)
        .with_context(|| format!("reading {}", suite.log.display()))?;
    println!(
        "==> ----- suite `{}` ({}, {:.0} s): {} -----",
        suite.name,
        if status.success() { "ok" } else { "FAILED" },
        took.as_secs_f64(),
        suite.command
    );
    print!("{log}");
    println!("==> ----- end of suite `{}` -----", suite.name);
    Ok(Finished {
        name: suite.name,
        status,
        took,
        counts: Counts::parse(&log),
    })
}

fn summarize(finished: &[Finished]) -> Result<()> {
    println!("==> test suites:");
    let mut total = Counts::default();
    for f in finished {
        println!(
            "      {:<10} {:<6} {:>4.0} s  {} passed, {} failed, {} ignored",
            f.name,
            if f.status.success() { "ok" } else { "FAILED" },
            f.took.as_secs_f64(),
            f.counts.passed,
            f.counts.failed,
            f.counts.ignored
        );
        total.add(f.counts);
    }
    println!(
        "tests: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.ignored
    );
    let failed: Vec<&str> = finished
        .iter()
        .filter(|f| !f.status.success())
        .map(|f| f.name)
        .collect();
    if !failed.is_empty() {
        bail!("test suites failed: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_every_result_line_and_nothing_else() {
        let log = "\
running 2 tests
test a ... ok
test result: ok. 35 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.51s
test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s
test 7 passed ... ok
";
        assert_eq!(
            Counts::parse(log),
            Counts {
                passed: 38,
                failed: 2,
                ignored: 1
            }
        );
    }
}
