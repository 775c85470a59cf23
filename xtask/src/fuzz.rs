//! `cargo xtask fuzz`: every cargo-fuzz target under `fuzz/`, each for a fixed time, then a
//! table of what each one did. Any crash fails the task; its input is kept under
//! `fuzz/artifacts/<target>/` and becomes a regression test in the crate it broke.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::Stdio,
};

use anyhow::{Context, Result, bail};

use crate::{display, nightly_cargo, tools};

/// What libFuzzer reported for one target.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Report {
    /// Inputs executed.
    runs: Option<u64>,
    /// Inputs per second, averaged over the run.
    execs_per_sec: Option<u64>,
    /// Coverage: code edges reached.
    edges: Option<u64>,
    /// Coverage: features (edges with hit counts, comparisons) reached.
    features: Option<u64>,
    /// Inputs in the corpus at the end.
    corpus: Option<u64>,
    /// Where libFuzzer wrote the input that crashed, if one did.
    crash: Option<String>,
}

impl Report {
    /// Takes what a line of libFuzzer's output says.
    fn read(&mut self, line: &str) {
        if let Some(status) = line.strip_prefix('#')
            && status.contains("\tDONE")
        {
            // `#123456\tDONE   cov: 532 ft: 1830 corp: 205/13Kb lim: 4096 exec/s: 2057 …`
            self.runs = number_before(status, '\t').or(self.runs);
            self.edges = field(status, "cov:");
            self.features = field(status, "ft:");
            self.corpus = field(status, "corp:");
            self.execs_per_sec = field(status, "exec/s:").or(self.execs_per_sec);
        } else if let Some(runs) = line.strip_prefix("stat::number_of_executed_units:") {
            self.runs = runs.trim().parse().ok();
        } else if let Some(rate) = line.strip_prefix("stat::average_exec_per_sec:") {
            self.execs_per_sec = rate.trim().parse().ok();
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.crash = Some(path.trim().to_owned());
        }
    }
}

/// The number that starts `text`, up to `end`.
fn number_before(text: &str, end: char) -> Option<u64> {
    text.split(end).next()?.trim().parse().ok()
}

/// The number after `name` in a libFuzzer status line (`corp: 205/13Kb` gives 205).
fn field(status: &str, name: &str) -> Option<u64> {
    let mut words = status.split_whitespace();
    words.find(|word| *word == name)?;
    let value = words.next()?;
    value.split('/').next()?.parse().ok()
}

/// libFuzzer's progress lines (one per new input or function found, hundreds a minute) and the
/// dictionary it recommends at the end: the summary says what they add up to.
fn is_progress(line: &str) -> bool {
    let progress = line.starts_with('#')
        && ["\tNEW ", "\tREDUCE ", "\tpulse "]
            .iter()
            .any(|kind| line.contains(kind));
    // Each new function reached, with its source location: one line per function.
    let function = line.starts_with("\tNEW_FUNC[");
    let dictionary = (line.starts_with('"') && line.contains("# Uses: "))
        || (line.starts_with("###### ") && line.contains("dictionary"));
    progress || function || dictionary
}

/// The targets cargo-fuzz finds in `fuzz/Cargo.toml`.
fn targets(root: &Path) -> Result<Vec<String>> {
    if !root.join("fuzz").join("Cargo.toml").is_file() {
        bail!("there are no fuzz targets: fuzz/Cargo.toml does not exist");
    }
    let listing = nightly_cargo(root)
        .args(["fuzz", "list"])
        .output()
        .context("could not list the fuzz targets")?;
    if !listing.status.success() {
        bail!(
            "`cargo +nightly fuzz list` failed ({}): {}",
            listing.status,
            String::from_utf8_lossy(&listing.stderr).trim()
        );
    }
    let targets: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("fuzz/ defines no fuzz targets");
    }
    Ok(targets)
}

/// Runs every target for `seconds`, all of them even when one crashes, then fails if any did.
pub fn run(root: &Path, seconds: u64) -> Result<()> {
    tools::ensure_fuzz_tools()?;
    let targets = targets(root)?;
    let mut reports = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let mut command = nightly_cargo(root);
        // Debug assertions on: an arithmetic overflow in a decoder is a finding, not a wrap.
        // A single input running for 10 s is a hang, which is a finding too.
        command
            .args(["fuzz", "run", "--debug-assertions", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .args(["-timeout=10", "-print_final_stats=1"])
            .stderr(Stdio::piped());
        println!(
            "==> [{}/{}] fuzz {target} for {seconds} s: {}",
            i + 1,
            targets.len(),
            display(&command)
        );
        let mut child = command
            .spawn()
            .with_context(|| format!("could not start `{}`", display(&command)))?;
        let mut report = Report::default();
        if let Some(stderr) = child.stderr.take() {
            for line in BufReader::new(stderr).lines() {
                let line = line.context("reading the fuzzer's output")?;
                report.read(&line);
                if !is_progress(&line) {
                    eprintln!("{line}");
                }
            }
        }
        let status = child.wait().context("waiting for the fuzzer")?;
        if !status.success() && report.crash.is_none() {
            // Not a finding (libFuzzer names its input when it has one): the build failed or
            // the fuzzer could not start.
            bail!("`{}` failed ({status})", display(&command));
        }
        reports.push((target.clone(), report));
    }

    let show = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    println!(
        "\n{:<18} {:>12} {:>9} {:>7} {:>8} {:>7}  result",
        "target", "executions", "exec/s", "edges", "features", "corpus"
    );
    for (target, r) in &reports {
        println!(
            "{target:<18} {:>12} {:>9} {:>7} {:>8} {:>7}  {}",
            show(r.runs),
            show(r.execs_per_sec),
            show(r.edges),
            show(r.features),
            show(r.corpus),
            if r.crash.is_some() { "CRASH" } else { "ok" }
        );
    }
    let crashes: Vec<_> = reports
        .iter()
        .filter_map(|(target, r)| Some((target, r.crash.as_ref()?)))
        .collect();
    if !crashes.is_empty() {
        for (target, input) in &crashes {
            println!(
                "\n{target} crashed on {input}\n  reproduce: cargo +nightly fuzz run \
                 --debug-assertions {target} {input}\n  then add the input as a regression \
                 test of the crate that broke"
            );
        }
        bail!(
            "{} of {} fuzz targets crashed",
            crashes.len(),
            reports.len()
        );
    }
    println!(
        "==> every fuzz target ran {seconds} s without a crash ({} targets)",
        reports.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_and_the_final_stats() {
        let mut r = Report::default();
        for line in [
            "#2\tINITED cov: 40 ft: 41 corp: 1/1b exec/s: 0 rss: 40Mb",
            "#1024\tNEW    cov: 300 ft: 900 corp: 80/2Kb lim: 4 exec/s: 0 rss: 41Mb L: 3/4 MS: 1",
            "#2891734\tDONE   cov: 532 ft: 1830 corp: 205/13Kb lim: 4096 exec/s: 47405 rss: 73Mb",
            "Done 2891734 runs in 61 second(s)",
            "stat::number_of_executed_units: 2891735",
            "stat::average_exec_per_sec:     47405",
        ] {
            r.read(line);
        }
        assert_eq!(
            r,
            Report {
                runs: Some(2_891_735),
                execs_per_sec: Some(47_405),
                edges: Some(532),
                features: Some(1830),
                corpus: Some(205),
                crash: None,
            }
        );
    }

    #[test]
    fn notes_where_a_crashing_input_was_written() {
        let mut r = Report::default();
        r.read("==12==ERROR: libFuzzer: deadly signal");
        r.read(
            "artifact_prefix='/src/fuzz/artifacts/decode_frame/'; Test unit written to \
             /src/fuzz/artifacts/decode_frame/crash-da39a3ee",
        );
        assert_eq!(
            r.crash.as_deref(),
            Some("/src/fuzz/artifacts/decode_frame/crash-da39a3ee")
        );
    }

    #[test]
    fn progress_and_the_dictionary_are_quiet() {
        assert!(is_progress(
            "#1024\tNEW    cov: 300 ft: 900 corp: 80/2Kb lim: 4 exec/s: 0 rss: 41Mb"
        ));
        assert!(is_progress("#65536\tpulse  cov: 300 ft: 900 corp: 80/2Kb"));
        assert!(!is_progress(
            "#2891734\tDONE   cov: 532 ft: 1830 corp: 205/13Kb"
        ));
        assert!(is_progress(
            "\tNEW_FUNC[1/2]: 0x55cb59b91e10 in <kokuban_protocol::point::Point>::new point.rs:30"
        ));
        assert!(is_progress("###### Recommended dictionary. ######"));
        assert!(is_progress(r#""\001\377" # Uses: 101"#));
        assert!(is_progress("###### End of recommended dictionary. ######"));
        assert!(!is_progress(
            "thread '<unnamed>' panicked at src/codec.rs:9:5"
        ));
    }
}
