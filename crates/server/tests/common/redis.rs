//! A `redis-server` of the test's own, on a free loopback port, in a temporary directory:
//! never the machine's shared one, so that tests can stop, restart and reconfigure it. Killed
//! when dropped.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::TIMEOUT;

/// A Redis server process.
pub struct RedisServer {
    pub port: u16,
    /// Append-only file on (the history survives a restart) or no persistence at all.
    pub persistent: bool,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn program() -> String {
    std::env::var("KOKUBAN_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

impl RedisServer {
    /// Starts a server and waits until it answers.
    pub async fn start(persistent: bool) -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            persistent,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        r.launch().await;
        r
    }

    async fn launch(&mut self) {
        let aof = if self.persistent { "yes" } else { "no" };
        let child = Command::new(program())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(["--save", "", "--appendonly", aof, "--appendfsync", "always"])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .args([
                "--logfile",
                &self.dir.path().join("redis.log").display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (install redis-server)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if self.ping().await {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not come up",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        tokio::time::timeout(
            Duration::from_secs(2),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| redis::RedisError::from(std::io::Error::other("timeout")))?
    }

    async fn ping(&self) -> bool {
        match self.connection().await {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Runs a command and returns its answer.
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
    /// first; without persistence everything is gone).
    pub async fn stop(&mut self) {
        if let Ok(mut c) = self.connection().await {
            let mode = if self.persistent { "SAVE" } else { "NOSAVE" };
            // The connection closes without an answer.
            let _ = redis::cmd("SHUTDOWN")
                .arg(mode)
                .query_async::<redis::Value>(&mut c)
                .await;
        }
        if let Some(mut child) = self.child.take() {
            let deadline = std::time::Instant::now() + TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if std::time::Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing is answered, and what
    /// clients send waits in its socket buffers, as on a stalled host.
    pub fn freeze(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a frozen process run again (SIGCONT): it works through what waited meanwhile.
    pub fn thaw(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(child) = &self.child {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }

    /// Its data directory (an RDB saved there is loaded at the next start).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Starts the server again on the same port and directory.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.launch().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
