//! A child process that dies with the test process, however that ends.
//!
//! A test binary killed by a timeout, or a process kept in a `static` (which Rust never drops),
//! would otherwise leave its `redis-server`s running. The program is started by a small shell
//! that holds the read end of a pipe whose write end only the test process holds: when the test
//! process goes, the pipe reads end-of-file and the shell kills the program. The test keeps the
//! program's own pid for signals (stop, continue, kill).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Runs `"$@"` in the background, prints its pid, and kills it when standard input ends; exits
/// with the program's status once it has exited. Background jobs of a non-interactive shell get
/// `/dev/null` as standard input, hence the pipe is kept on descriptor 3.
const SCRIPT: &str = r#"exec 3<&0
"$@" </dev/null >/dev/null 2>&1 3<&- &
r=$!
echo "$r"
(read _ <&3; kill -9 "$r" 2>/dev/null) &
w=$!
exec 3<&-
wait "$r"
s=$?
kill "$w" 2>/dev/null
exit "$s""#;

/// A program running under its lifeline. Dropping it kills the program (SIGKILL).
#[derive(Debug)]
pub(crate) struct Lifeline {
    /// The shell: it exits exactly when the program has exited (its stdin is the pipe).
    shell: Child,
    pid: Pid,
}

impl Lifeline {
    /// Starts `program args…` with its output discarded.
    pub(crate) fn spawn<I, S>(program: impl AsRef<OsStr>, args: I) -> std::io::Result<Lifeline>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("sh")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        let stdout = shell.stdout.take().expect("piped stdout");
        BufReader::new(stdout).read_line(&mut line)?;
        let pid = line
            .trim()
            .parse()
            .map_err(|_| std::io::Error::other(format!("no pid from the lifeline: {line:?}")))?;
        Ok(Lifeline {
            shell,
            pid: Pid::from_raw(pid),
        })
    }

    /// The program's own process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Sends `signal` to the program (not to the shell).
    pub(crate) fn signal(&self, signal: Signal) {
        let _ = kill(self.pid, signal);
    }

    /// The program's exit status, if it has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.shell.try_wait().ok().flatten()
    }

    /// Waits up to `within` for the program to exit; kills it after that. True if it exited
    /// by itself.
    pub(crate) async fn wait(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.exited().is_none() {
            if tokio::time::Instant::now() >= deadline {
                self.kill();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// SIGKILL, and waits until it is gone (SIGKILL also ends a stopped process).
    pub(crate) fn kill(&mut self) {
        if self.exited().is_none() {
            self.signal(Signal::SIGKILL);
            let _ = self.shell.wait();
        }
    }
}

impl Drop for Lifeline {
    fn drop(&mut self) {
        self.kill();
    }
}
