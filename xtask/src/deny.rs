//! The supply-chain steps of `cargo xtask test`: `cargo deny` against `deny.toml`.
//!
//! Licences, duplicate versions and sources need nothing but Cargo.lock and the registry index,
//! so they are always enforced. Advisories need the RustSec database, a git repository cloned
//! from the network. When it cannot be fetched because the network is unreachable, the
//! advisories are checked against a copy fetched earlier if there is one; if there is none,
//! the step says loudly that advisories were NOT checked and lets the run go on, rather than
//! failing every offline run or, worse, passing silently as if they had been checked.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{Steps, cargo, display};

/// Both supply-chain steps.
pub fn check(root: &Path, steps: &mut Steps) -> Result<()> {
    steps.run(
        "supply chain: licences, duplicate versions, sources",
        cargo(root).args(["deny", "check", "licenses", "bans", "sources"]),
    )?;
    advisories(root, steps)
}

fn advisories(root: &Path, steps: &mut Steps) -> Result<()> {
    let mut fetch = cargo(root);
    fetch.args(["deny", "fetch", "db"]);
    steps.announce("supply chain: security advisories", &fetch);
    let fetched = fetch
        .output()
        .with_context(|| format!("could not start `{}`", display(&fetch)))?;
    if fetched.status.success() {
        return run(cargo(root).args(["deny", "check", "advisories"]));
    }
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&fetched.stdout),
        String::from_utf8_lossy(&fetched.stderr)
    );
    if !is_network_failure(&said) {
        eprintln!("{said}");
        bail!(
            "`{}` failed ({}) for a reason other than an unreachable network",
            display(&fetch),
            fetched.status
        );
    }
    let reason = network_reason(&said);
    if let Some(copy) = local_database() {
        println!(
            "==> warning: the advisory database could not be updated ({reason}); checking \
             against the copy fetched earlier into {}",
            copy.display()
        );
        // `--offline`: check with the database on disk instead of fetching it again.
        return run(cargo(root).args(["deny", "--offline", "check", "advisories"]));
    }
    println!(
        "\n==> WARNING: security advisories were NOT checked.\n    \
         The RustSec advisory database could not be fetched, and no earlier copy is on this\n    \
         machine: {reason}\n    \
         Licences, duplicate versions and sources WERE checked. With network access,\n    \
         `cargo xtask deny` (or `cargo deny check advisories`) checks the advisories too.\n"
    );
    Ok(())
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not start `{}`", display(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(command));
    }
    Ok(())
}

/// What git and cargo-deny say when the host of the database cannot be reached, lowercased.
const NETWORK_FAILURES: [&str; 10] = [
    "could not resolve host",
    "temporary failure in name resolution",
    "network is unreachable",
    "no route to host",
    "failed to connect",
    "connection refused",
    "connection timed out",
    "operation timed out",
    "dns error",
    "error sending request",
];

/// Whether the output of a failed fetch says the network was unreachable (as opposed to, say,
/// a broken configuration or a corrupt database on disk, which must fail the step).
fn is_network_failure(output: &str) -> bool {
    let output = output.to_lowercase();
    NETWORK_FAILURES
        .iter()
        .any(|pattern| output.contains(pattern))
}

/// The line of a failed fetch's output that says why, for the warning.
fn network_reason(output: &str) -> String {
    output
        .lines()
        .find(|line| {
            let line = line.to_lowercase();
            NETWORK_FAILURES.iter().any(|p| line.contains(p))
        })
        .map(|line| line.trim().trim_start_matches("fatal: ").to_owned())
        .unwrap_or_else(|| "network unreachable".to_owned())
}

/// A copy of the advisory database fetched earlier, where cargo-deny keeps it by default: a
/// git clone at `$CARGO_HOME/advisory-dbs/advisory-db-<hash of its URL>` with a `crates/`
/// folder. (A copy that is there but unusable makes the offline check fail, as it should.)
fn local_database() -> Option<PathBuf> {
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))?;
    std::fs::read_dir(cargo_home.join("advisory-dbs"))
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .find(|path| {
            let named = path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("advisory-db-"));
            named && path.join(".git").exists() && path.join("crates").is_dir()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `cargo deny fetch db` prints on a machine without a route to the database's host.
    const OFFLINE: &str = "\
[ERROR] failed to fetch database: failed to fetch advisory database https://github.com/RustSec/advisory-db with cli: failed to clone
Cloning into 'advisory-db-3157b0e258782691'...
fatal: unable to access 'https://github.com/RustSec/advisory-db/': Could not resolve host: github.com
";

    #[test]
    fn an_unreachable_network_is_told_apart_from_other_failures() {
        assert!(is_network_failure(OFFLINE));
        assert!(is_network_failure(
            "error sending request for url (https://github.com/RustSec/advisory-db/info/refs)"
        ));
        assert!(!is_network_failure(
            "[ERROR] failed to deserialize config: unknown field `db-urlz`"
        ));
        assert!(!is_network_failure(
            "[ERROR] failed to load advisory database: invalid advisory RUSTSEC-2099-0001.md"
        ));
    }

    #[test]
    fn the_warning_quotes_why_the_fetch_failed() {
        assert_eq!(
            network_reason(OFFLINE),
            "unable to access 'https://github.com/RustSec/advisory-db/': Could not resolve \
             host: github.com"
        );
    }
}
