//! The tools the tasks need, at the versions the project pins, installed when missing.
//!
//! Rust-side tools come from rustup, cargo and npm, so that every developer and CI get the same
//! ones. System packages (Redis, Chromium, nginx) are installed only where that is safe to do
//! unasked: as root on Debian, which is what CI is. Everywhere else a missing one is an error
//! that says what to install.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::display;

/// The browser's compilation target.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Trunk 0.22 needs a newer Rust than the project's 1.95.
const TRUNK_VERSION: &str = "0.21.14";

/// The supply-chain checker (`deny.toml`). 0.20 builds with Rust 1.88 and later.
const CARGO_DENY_VERSION: &str = "0.20.2";

/// The libFuzzer driver; the targets themselves build with nightly Rust.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// A program the tests run that comes from the system's package manager.
struct SystemTool {
    binary: &'static str,
    /// The Debian package that provides it.
    package: &'static str,
    /// Where it lives when not on a non-root user's PATH.
    also_in: &'static [&'static str],
}

const SYSTEM_TOOLS: [SystemTool; 5] = [
    // The tests start their own Redis servers on free ports; nothing here starts one.
    SystemTool {
        binary: "redis-server",
        package: "redis-server",
        also_in: &[],
    },
    SystemTool {
        binary: "chromium",
        package: "chromium",
        also_in: &[],
    },
    SystemTool {
        binary: "chromedriver",
        package: "chromium-driver",
        also_in: &[],
    },
    SystemTool {
        binary: "nginx",
        package: "nginx-light",
        also_in: &["/usr/sbin"],
    },
    // The `rediss://` tests make a throwaway CA and sign their Redis's certificate with it.
    SystemTool {
        binary: "openssl",
        package: "openssl",
        also_in: &[],
    },
];

const APT_GET: &str = "/usr/bin/apt-get";

/// Everything `cargo xtask test` runs: the web tools, rustfmt and clippy, cargo-deny, and the
/// programs the integration and browser tests start (and `openssl`, which makes their certificates).
pub fn ensure_test_tools(root: &Path) -> Result<()> {
    ensure_system_tools()?;
    ensure_rust_components()?;
    ensure_cargo_deny()?;
    ensure_web_tools(root)
}

/// cargo-deny at the pinned version. `--locked`: its own Cargo.lock, as its authors tested it.
pub fn ensure_cargo_deny() -> Result<()> {
    ensure_version(
        "cargo-deny",
        CARGO_DENY_VERSION,
        || second_word(&probe("cargo-deny", &["--version"])?),
        cargo_install(&["--locked", "cargo-deny", "--version", CARGO_DENY_VERSION]),
    )
}

/// The tools that build the web app: the wasm32 target, Trunk, wasm-bindgen and wasm-opt.
pub fn ensure_web_tools(root: &Path) -> Result<()> {
    ensure_wasm_target()?;
    ensure_version(
        "trunk",
        TRUNK_VERSION,
        || second_word(&probe("trunk", &["--version"])?),
        cargo_install(&["trunk", "--version", TRUNK_VERSION, "--locked"]),
    )?;

    let trunk_toml = fs::read_to_string(root.join("Trunk.toml")).context("reading Trunk.toml")?;

    // The CLI and the library it post-processes share a private ABI, so the CLI's version is
    // whatever Cargo.lock resolved for the library; Trunk.toml must say the same.
    let wasm_bindgen = locked_wasm_bindgen_version(root)?;
    match tools_pin(&trunk_toml, "wasm_bindgen") {
        Some(pinned) if pinned == wasm_bindgen => {}
        pinned => bail!(
            "Trunk.toml pins wasm_bindgen = {:?} but Cargo.lock has wasm-bindgen {wasm_bindgen}: \
             set [tools] wasm_bindgen = \"{wasm_bindgen}\" in Trunk.toml",
            pinned.unwrap_or_default()
        ),
    }
    // Without --locked: one of the CLI's pinned transitive dependencies is no longer available
    // from the registry, so a locked install fails.
    ensure_version(
        "wasm-bindgen",
        &wasm_bindgen,
        || second_word(&probe("wasm-bindgen", &["--version"])?),
        cargo_install(&["wasm-bindgen-cli", "--version", &wasm_bindgen]),
    )?;

    // Trunk.toml names binaryen releases as `version_N`; `wasm-opt --version` prints
    // `wasm-opt version N (version_N)`.
    let wasm_opt = tools_pin(&trunk_toml, "wasm_opt")
        .and_then(|pin| pin.strip_prefix("version_").map(str::to_owned))
        .context("Trunk.toml must pin [tools] wasm_opt = \"version_N\"")?;
    let mut npm_install = Command::new("npm");
    npm_install.args(["install", "--global", &format!("binaryen@{wasm_opt}")]);
    ensure_version(
        "wasm-opt",
        &wasm_opt,
        || wasm_opt_version(&probe("wasm-opt", &["--version"])?),
        npm_install,
    )?;

    println!(
        "==> tools: {WASM_TARGET} target, trunk {TRUNK_VERSION}, wasm-bindgen {wasm_bindgen}, \
         wasm-opt {wasm_opt}"
    );
    Ok(())
}

/// A nightly toolchain (its sanitizer flags need it) and cargo-fuzz at the pinned version.
/// The toolchain is not installed here: a toolchain download is the user's choice.
pub fn ensure_fuzz_tools() -> Result<()> {
    if probe("rustup", &["run", "nightly", "cargo", "--version"]).is_none() {
        bail!(
            "fuzzing needs a nightly Rust toolchain (libFuzzer's instrumentation flags are \
             nightly-only). Install it, then run this task again:\n    \
             rustup toolchain install nightly"
        );
    }
    ensure_version(
        "cargo-fuzz",
        CARGO_FUZZ_VERSION,
        || {
            second_word(&probe(
                "rustup",
                &["run", "nightly", "cargo", "fuzz", "--version"],
            )?)
        },
        cargo_install(&["--locked", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION]),
    )
}

fn ensure_wasm_target() -> Result<()> {
    let installed = probe("rustup", &["target", "list", "--installed"]).with_context(|| {
        format!(
            "`rustup target list --installed` failed: the web app needs rustup and its \
             {WASM_TARGET} target"
        )
    })?;
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        return Ok(());
    }
    run_install(
        &format!("the {WASM_TARGET} target"),
        Command::new("rustup").args(["target", "add", WASM_TARGET]),
    )
}

fn ensure_rust_components() -> Result<()> {
    let installed = probe("rustup", &["component", "list", "--installed"])
        .context("`rustup component list --installed` failed: the checks need rustup")?;
    // Installed components are listed with their host triple: `clippy-x86_64-unknown-linux-gnu`.
    let missing: Vec<&str> = ["rustfmt", "clippy"]
        .into_iter()
        .filter(|component| {
            !installed
                .lines()
                .any(|line| line.starts_with(&format!("{component}-")))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run_install(
        &missing.join(" and "),
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
    )
}

fn ensure_system_tools() -> Result<()> {
    let missing = || -> Vec<&SystemTool> {
        SYSTEM_TOOLS
            .iter()
            .filter(|tool| find_binary(tool.binary, tool.also_in).is_none())
            .collect()
    };
    let first_check = missing();
    if first_check.is_empty() {
        return Ok(());
    }
    let binaries = names(first_check.iter().map(|tool| tool.binary));
    let packages = names(first_check.iter().map(|tool| tool.package));
    if !(is_root() && Path::new(APT_GET).is_file()) {
        bail!(
            "the tests need {binaries}, which are not installed. On Debian or Ubuntu: \
             `sudo apt-get install -y {packages}`; elsewhere install Redis, Chromium with its \
             chromedriver, and nginx from the system's package manager"
        );
    }
    println!("==> {binaries} missing: installing {packages} with apt-get");
    run_install(
        "the package lists",
        Command::new(APT_GET)
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    run_install(
        &packages,
        Command::new(APT_GET)
            .args(["install", "-y"])
            .args(first_check.iter().map(|tool| tool.package))
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still_missing = missing();
    if !still_missing.is_empty() {
        bail!(
            "apt-get installed {packages}, but {} still cannot be found",
            names(still_missing.iter().map(|tool| tool.binary))
        );
    }
    Ok(())
}

/// Makes `found()` report `wanted`, running `install` once when it does not.
fn ensure_version(
    tool: &str,
    wanted: &str,
    found: impl Fn() -> Option<String>,
    mut install: Command,
) -> Result<()> {
    match found() {
        Some(version) if version == wanted => return Ok(()),
        Some(version) => println!("==> {tool} {version} found, {wanted} needed"),
        None => println!("==> {tool} not found, {wanted} needed"),
    }
    run_install(&format!("{tool} {wanted}"), &mut install)?;
    match found() {
        Some(version) if version == wanted => Ok(()),
        found => bail!(
            "installed {tool} {wanted}, but `{tool} --version` now reports {}: put the \
             directory it was installed into (cargo's or npm's bin directory) first on PATH",
            found.as_deref().unwrap_or("nothing")
        ),
    }
}

fn cargo_install(args: &[&str]) -> Command {
    let mut command = Command::new("cargo");
    command.arg("install").args(args);
    command
}

fn run_install(what: &str, command: &mut Command) -> Result<()> {
    println!("==> installing {what}: {}", display(command));
    let status = command
        .status()
        .with_context(|| format!("could not start `{}` to install {what}", display(command)))?;
    if !status.success() {
        bail!("installing {what} failed ({status}): {}", display(command));
    }
    Ok(())
}

/// The single `wasm-bindgen` version in Cargo.lock, resolving the workspace first if
/// Cargo.lock does not have one yet.
fn locked_wasm_bindgen_version(root: &Path) -> Result<String> {
    let lock_path = root.join("Cargo.lock");
    let read = || -> Vec<String> {
        fs::read_to_string(&lock_path)
            .map(|lock| locked_versions(&lock, "wasm-bindgen"))
            .unwrap_or_default()
    };
    let mut versions = read();
    if versions.is_empty() {
        // `cargo metadata` writes Cargo.lock, keeping every version already locked in it.
        let status = crate::cargo(root)
            .args(["metadata", "--format-version", "1"])
            .stdout(Stdio::null())
            .status()
            .context("could not run `cargo metadata` to write Cargo.lock")?;
        if !status.success() {
            bail!("`cargo metadata` failed ({status}): the workspace does not resolve");
        }
        versions = read();
    }
    match versions.as_slice() {
        [version] => Ok(version.clone()),
        [] => bail!("Cargo.lock has no wasm-bindgen package, but the web app is built with it"),
        several => bail!(
            "Cargo.lock has several wasm-bindgen versions ({}); the web app must link exactly \
             one, the one the wasm-bindgen CLI matches",
            several.join(", ")
        ),
    }
}

/// Every version of `package` that a Cargo.lock resolves.
fn locked_versions(lock: &str, package: &str) -> Vec<String> {
    let name_line = format!("name = \"{package}\"");
    let mut versions = Vec::new();
    let mut in_package = false;
    for line in lock.lines().map(str::trim) {
        if line == "[[package]]" {
            in_package = false;
        } else if line == name_line {
            in_package = true;
        } else if in_package
            && let Some(version) = line
                .strip_prefix("version = \"")
                .and_then(|rest| rest.strip_suffix('"'))
        {
            versions.push(version.to_owned());
            in_package = false;
        }
    }
    versions
}

/// The value of `key` in Trunk.toml's `[tools]` table.
fn tools_pin(trunk_toml: &str, key: &str) -> Option<String> {
    let mut in_tools = false;
    for line in trunk_toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_tools = line == "[tools]";
        } else if in_tools
            && let Some((name, value)) = line.split_once('=')
            && name.trim() == key
        {
            let value = value.split('#').next().unwrap_or_default();
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// `N` from `wasm-opt version N (version_N)`.
fn wasm_opt_version(output: &str) -> Option<String> {
    let mut words = output.split_whitespace();
    words.find(|word| *word == "version")?;
    words.next().map(str::to_owned)
}

/// The version in `<program> <version>`, the shape of `trunk --version` and
/// `wasm-bindgen --version`.
fn second_word(output: &str) -> Option<String> {
    output.split_whitespace().nth(1).map(str::to_owned)
}

/// What `program args` prints, or `None` when it is missing or fails.
fn probe(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    Some(String::from_utf8_lossy(&text).trim().to_owned())
}

fn find_binary(name: &str, also_in: &[&str]) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(also_in.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn is_root() -> bool {
    probe("id", &["-u"]).as_deref() == Some("0")
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = [
 "wasm-bindgen-macro",
]

[[package]]
name = "wasm-bindgen-macro"
version = "0.2.130"

[[package]]
name = "xtask"
version = "0.1.0"
"#;

    #[test]
    fn finds_exactly_the_named_package_in_cargo_lock() {
        assert_eq!(locked_versions(LOCK, "wasm-bindgen"), ["0.2.130"]);
        assert_eq!(locked_versions(LOCK, "xtask"), ["0.1.0"]);
        assert!(locked_versions(LOCK, "wasm").is_empty());
        let two = format!("{LOCK}\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.99\"\n");
        assert_eq!(locked_versions(&two, "wasm-bindgen"), ["0.2.130", "0.2.99"]);
    }

    #[test]
    fn reads_pins_from_the_tools_table_only() {
        let trunk_toml = "\
[build]
wasm_opt = \"elsewhere\"

[tools]
wasm_bindgen = \"0.2.130\"  # matches Cargo.lock
wasm_opt = \"version_132\"

[[proxy]]
backend = \"http://127.0.0.1:8080/api\"
";
        assert_eq!(
            tools_pin(trunk_toml, "wasm_bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(
            tools_pin(trunk_toml, "wasm_opt").as_deref(),
            Some("version_132")
        );
        assert_eq!(tools_pin(trunk_toml, "backend"), None);
    }

    #[test]
    fn parses_tool_version_output() {
        assert_eq!(
            wasm_opt_version("wasm-opt version 132 (version_132)").as_deref(),
            Some("132")
        );
        assert_eq!(wasm_opt_version("wasm-opt 108"), None);
        assert_eq!(second_word("trunk 0.21.14").as_deref(), Some("0.21.14"));
        assert_eq!(
            second_word("wasm-bindgen 0.2.130").as_deref(),
            Some("0.2.130")
        );
    }

    #[test]
    fn reads_the_checked_in_trunk_toml() {
        let trunk_toml = fs::read_to_string(crate::workspace_root().join("Trunk.toml")).unwrap();
        assert!(tools_pin(&trunk_toml, "wasm_bindgen").is_some());
        assert!(
            tools_pin(&trunk_toml, "wasm_opt")
                .unwrap()
                .starts_with("version_")
        );
    }
}
