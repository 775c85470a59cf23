//! A `redis-server` of the test's own, on a free loopback port, in a temporary directory: never
//! the machine's shared one, so that tests can stop, restart, freeze and reconfigure it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::OnceCell;

use crate::lifeline::Lifeline;
use crate::{TIMEOUT, free_port};

/// Fresh ports tried before giving up on starting a server.
const START_ATTEMPTS: usize = 5;

/// How a server is configured beyond the kit's defaults (loopback, its own directory, no RDB
/// snapshots, a log file in its directory).
#[derive(Debug, Clone, Default)]
pub struct RedisConfig {
    /// Append-only file on, fsynced at every write (the history survives a restart), or no
    /// persistence at all.
    pub append_only: bool,
    /// More `redis-server` arguments, as on its command line (`--cluster-enabled`, `yes`, …).
    pub args: Vec<String>,
}

/// A Redis server process, killed when dropped. Its port and directory stay the same across
/// [`stop`](Self::stop) and [`restart`](Self::restart), so what it persisted is found again.
#[derive(Debug)]
pub struct RedisServer {
    /// Its loopback port, the same for its whole life.
    pub port: u16,
    /// Append-only file on (the history survives a restart) or no persistence at all.
    pub persistent: bool,
    args: Vec<String>,
    // Declared before the directory: fields drop in order, and the process must die first.
    process: Option<Lifeline>,
    dir: tempfile::TempDir,
}

/// The program run: `KOKUBAN_TEST_REDIS_SERVER`, or `redis-server` on the `PATH`.
fn program() -> PathBuf {
    std::env::var_os("KOKUBAN_TEST_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// Whether `program` names a file: as a path, or as a name on the `PATH`.
pub(crate) fn installed(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

impl RedisServer {
    /// Whether the program the launcher runs can be found (`KOKUBAN_TEST_REDIS_SERVER`, or
    /// else `redis-server`, as a path or a name on the `PATH`).
    pub fn available() -> bool {
        installed(&program())
    }

    /// Starts a server, append-only or without persistence, and waits until it answers.
    pub async fn start(persistent: bool) -> RedisServer {
        Self::start_with(RedisConfig {
            append_only: persistent,
            ..RedisConfig::default()
        })
        .await
    }

    /// Starts a server configured by `config` and waits until it answers.
    pub async fn start_with(config: RedisConfig) -> RedisServer {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start_with(config.clone()).await {
                Ok(r) => return r,
                Err(e) => failures.push(e),
            }
        }
        panic!("redis-server did not start:\n{}", failures.join("\n"));
    }

    /// One attempt on a fresh port: `Err` (with its log) if the process exited before it
    /// answered, as it does when another process took its port first.
    pub(crate) async fn try_start_with(config: RedisConfig) -> Result<RedisServer, String> {
        let mut r = RedisServer {
            port: free_port(),
            persistent: config.append_only,
            args: config.args,
            process: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        r.launch().await?;
        Ok(r)
    }

    /// One server for the whole test binary, started by the first test that asks, for tests
    /// that only need *a* Redis and never stop, freeze or reconfigure it (rooms have random ids,
    /// so such tests do not see each other). It dies with the test process.
    pub async fn shared() -> &'static RedisServer {
        static SHARED: OnceCell<RedisServer> = OnceCell::const_new();
        SHARED.get_or_init(|| RedisServer::start(false)).await
    }

    /// Runs the server and waits until it, and not some other process on its port, answers.
    async fn launch(&mut self) -> Result<(), String> {
        let aof = if self.persistent { "yes" } else { "no" };
        let dir = self.dir.path().display().to_string();
        let log = self.dir.path().join("redis.log").display().to_string();
        let port = self.port.to_string();
        let mut args: Vec<&str> = vec!["--port", &port, "--bind", "127.0.0.1", "--dir", &dir];
        args.extend(["--save", "", "--appendonly", aof, "--appendfsync", "always"]);
        args.extend([
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--logfile",
            &log,
        ]);
        args.extend(self.args.iter().map(String::as_str));
        let process = Lifeline::spawn(program(), &args)
            .unwrap_or_else(|e| panic!("redis-server starts (install redis-server): {e}"));
        self.process = Some(process);
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        // Ports are picked free, then bound by the server: another process (a server of a
        // test beside this one, restarted on its old port) may bind it first, and answer.
        // A server reloading its append-only file answers too, but only INFO.
        while self.answering_pid().await != self.pid() {
            if let Some(status) = self.process.as_mut().and_then(Lifeline::exited) {
                self.process = None;
                return Err(format!(
                    "redis-server on port {} exited ({status}):\n{}",
                    self.port,
                    self.log()
                ));
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not come up:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The process id of whatever Redis answers on this server's port, once it has loaded
    /// its data (until then it answers INFO, but refuses other commands).
    async fn answering_pid(&self) -> Option<u32> {
        let mut c = self.connection().await.ok()?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .arg("persistence")
            .query_async(&mut c)
            .await
            .ok()?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        if field("loading") != Some("0") {
            return None;
        }
        field("process_id")?.parse().ok()
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its working directory (the append-only file, `nodes.conf` in a cluster, the log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Lifeline::pid)
    }

    /// Its log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Whether the process is running (a paused one is).
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// A new connection, or an error within two seconds. Its commands may take up to
    /// [`TIMEOUT`] to be answered (the client's default, half a second, is less than a busy
    /// machine or a blocking command such as WAIT can take).
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(TIMEOUT));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// Runs a command on a connection of its own and returns its answer. Commands about the
    /// connection's earlier ones (WAIT, EXEC) need one [`connection`](Self::connection) for all.
    pub async fn command(&self, args: &[&str]) -> redis::Value {
        let mut c = self.connection().await.expect("connect to the test Redis");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut c).await.expect("redis command")
    }

    /// Closes every pub/sub connection (the nodes' subscribers), as a network blip would.
    pub async fn kill_subscribers(&self) -> i64 {
        match self.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).await {
            redis::Value::Int(n) => n,
            other => panic!("CLIENT KILL answered {other:?}"),
        }
    }

    /// Stops the server as an operator would (`SHUTDOWN`: the append-only file is flushed
    /// first; without persistence everything is gone), and waits until it has exited.
    pub async fn stop(&mut self) {
        if let Ok(mut c) = self.connection().await {
            let mode = if self.persistent { "SAVE" } else { "NOSAVE" };
            // The connection closes without an answer.
            let _ = redis::cmd("SHUTDOWN")
                .arg(mode)
                .query_async::<redis::Value>(&mut c)
                .await;
        }
        if let Some(mut process) = self.process.take() {
            process.wait(TIMEOUT).await;
        }
    }

    /// SIGKILL, as a crash: nothing is flushed, clients see their connections reset.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGSTOP: the server stops answering but keeps every connection open, as a host that
    /// hangs (or a partition that drops packets) looks to its clients.
    pub fn pause(&self) {
        if let Some(p) = &self.process {
            p.signal(Signal::SIGSTOP);
        }
    }

    /// SIGCONT: a paused server carries on where it stopped.
    pub fn resume(&self) {
        if let Some(p) = &self.process {
            p.signal(Signal::SIGCONT);
        }
    }

    /// Starts the server again on the same port and directory, after [`stop`](Self::stop) or
    /// [`kill`](Self::kill).
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "stop it first");
        if let Err(e) = self.launch().await {
            panic!("redis-server did not restart on its port: {e}");
        }
    }
}
