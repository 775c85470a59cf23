//! A Redis Cluster of the test's own: three masters and three replicas, each a
//! [`RedisServer`] on loopback, joined by `redis-cli --cluster create`.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::redis::{RedisConfig, RedisServer, installed};
use crate::tls::Certs;
use crate::{free_port, wait_until};

/// Masters (each with one replica) in a test cluster: the fewest Redis Cluster accepts.
pub const MASTERS: usize = 3;

/// How long a node may be silent before the others count it as failed. Short, so that a
/// failover happens within a test; long enough that a busy machine does not cause one.
const NODE_TIMEOUT_MS: u64 = 2000;

/// The `redis-cli` run: `KOKUBAN_TEST_REDIS_CLI`, or `redis-cli` on the `PATH`.
fn cli() -> PathBuf {
    std::env::var_os("KOKUBAN_TEST_REDIS_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-cli"))
}

/// One cluster-enabled server, and its TLS port if `certs` are given (its bus and replication
/// links then speak TLS too). Its bus port is picked free like its client port, so either may
/// be taken by another process first; a few attempts make that harmless.
async fn start_node(certs: Option<&Certs>) -> (RedisServer, Option<u16>) {
    let mut failures = Vec::new();
    for _ in 0..5 {
        let mut config = RedisConfig {
            append_only: false,
            args: [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &NODE_TIMEOUT_MS.to_string(),
                // A replica's first sync starts at once, not after the default 5 s wait for
                // more replicas to share the transfer.
                "--repl-diskless-sync-delay",
                "0",
                // A shard without a master stops only its own slots, as in production setups
                // where rooms on other shards must not notice.
                "--cluster-require-full-coverage",
                "no",
                // The bus port is port + 10000 unless set, which may be out of range: set it.
                "--cluster-port",
                &free_port().to_string(),
            ]
            .map(String::from)
            .to_vec(),
        };
        let tls_port = certs.map(|certs| {
            let port = free_port();
            config.args.extend(certs.redis_args(port));
            config
                .args
                .extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
            port
        });
        match RedisServer::try_start_with(config).await {
            Ok(node) => return (node, tls_port),
            Err(e) => failures.push(e),
        }
    }
    panic!("no cluster node started:\n{}", failures.join("\n"));
}

/// A running cluster whose slots are all served (`cluster_state:ok`) when [`start`]
/// returns. Its nodes keep their index for their whole life, whatever their role becomes.
/// Dropping it kills every node.
///
/// [`start`]: RedisCluster::start
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Each node's TLS port, by index, for a cluster started with [`RedisCluster::start_tls`].
    tls_ports: Vec<u16>,
}

impl RedisCluster {
    /// Whether `redis-server` and `redis-cli` can both be found.
    pub fn available() -> bool {
        RedisServer::available() && installed(&cli())
    }

    /// Starts six nodes, makes them a cluster with one replica per master, and waits until
    /// every node reports `cluster_state:ok` and every replica is in sync with its master.
    pub async fn start() -> RedisCluster {
        Self::start_with(None).await
    }

    /// As [`start`](Self::start), each node also serving TLS with the certificate of `certs`
    /// on a port of its own ([`tls_seed_urls`](Self::tls_seed_urls)); the nodes' bus and
    /// replication links speak TLS. The test's own connections stay plain.
    pub async fn start_tls(certs: &Certs) -> RedisCluster {
        Self::start_with(Some(certs)).await
    }

    async fn start_with(certs: Option<&Certs>) -> RedisCluster {
        let mut nodes = Vec::with_capacity(MASTERS * 2);
        let mut tls_ports = Vec::new();
        for _ in 0..MASTERS * 2 {
            let (node, tls_port) = start_node(certs).await;
            nodes.push(node);
            tls_ports.extend(tls_port);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
        let out = tokio::process::Command::new(cli())
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("redis-cli runs (install redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes, tls_ports };
        cluster.wait_ok().await;
        for i in 0..cluster.nodes.len() {
            if cluster.is_master(i).await {
                // A master counts a replica (for WAIT) only once it is online on its side,
                // up to a second after the replica says its link is up.
                let node = &cluster.nodes[i];
                wait_until(
                    || format!("master {} never saw its replica online", node.addr()),
                    || async {
                        info_field(node, "replication", "slave0")
                            .await
                            .contains("state=online")
                    },
                )
                .await;
            } else {
                let node = &cluster.nodes[i];
                wait_until(
                    || format!("replica {} never synced with its master", node.addr()),
                    || async {
                        info_field(node, "replication", "master_link_status").await == "up"
                    },
                )
                .await;
            }
        }
        cluster
    }

    /// One cluster for the whole test binary, started by the first test that asks, for tests
    /// that never kill its nodes (rooms have random ids, so such tests do not see each other;
    /// moving a slot they own is fine). It dies with the test process.
    pub async fn shared() -> &'static RedisCluster {
        static SHARED: OnceCell<RedisCluster> = OnceCell::const_new();
        SHARED.get_or_init(RedisCluster::start).await
    }

    /// Every node, by index.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// `redis://` URLs of every node: the seeds a cluster client starts from.
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// `rediss://` URLs of every node's TLS port (none unless started with
    /// [`start_tls`](Self::start_tls)).
    pub fn tls_seed_urls(&self) -> Vec<String> {
        self.tls_ports
            .iter()
            .map(|port| format!("rediss://127.0.0.1:{port}/"))
            .collect()
    }

    /// Whether node `i` is running and a master now.
    pub async fn is_master(&self, i: usize) -> bool {
        match self.nodes[i].connection().await {
            Ok(mut c) => matches!(
                redis::cmd("ROLE").query_async::<redis::Value>(&mut c).await,
                Ok(redis::Value::Array(v)) if matches!(
                    v.first(),
                    Some(redis::Value::BulkString(b)) if b == b"master"
                )
            ),
            Err(_) => false,
        }
    }

    /// The indexes of the masters now, among the running nodes.
    pub async fn masters(&self) -> Vec<usize> {
        let mut masters = Vec::new();
        for i in 0..self.nodes.len() {
            if self.nodes[i].pid().is_some() && self.is_master(i).await {
                masters.push(i);
            }
        }
        masters
    }

    /// The index of the master that serves `key`'s slot now.
    pub async fn master_of(&self, key: &str) -> usize {
        self.master_of_slot(self.slot_of(key).await).await
    }

    /// Node `i`'s id in the cluster (`CLUSTER MYID`).
    pub async fn node_id(&self, i: usize) -> String {
        match self.nodes[i].command(&["CLUSTER", "MYID"]).await {
            redis::Value::BulkString(id) => String::from_utf8_lossy(&id).into_owned(),
            other => panic!("CLUSTER MYID answered {other:?}"),
        }
    }

    /// `CLUSTER KEYSLOT key`.
    pub async fn slot_of(&self, key: &str) -> u16 {
        let running = self
            .nodes
            .iter()
            .find(|n| n.pid().is_some())
            .expect("a node runs");
        match running.command(&["CLUSTER", "KEYSLOT", key]).await {
            redis::Value::Int(s) => s as u16,
            other => panic!("CLUSTER KEYSLOT answered {other:?}"),
        }
    }

    /// Moves `slot` from the master serving it to master `to`, as `redis-cli --cluster
    /// reshard` does: the slot is marked importing and migrating, its keys are `MIGRATE`d one
    /// at a time with `pause` between them (so that clients meet `ASK` and `TRYAGAIN` for a
    /// while), and then every master is told its new owner.
    pub async fn move_slot(&self, slot: u16, to: usize, pause: Duration) {
        let from = self.master_of_slot(slot).await;
        assert_ne!(from, to, "slot {slot} is already on node {to}");
        let (from_id, to_id) = (self.node_id(from).await, self.node_id(to).await);
        let slot_arg = slot.to_string();
        let ok = |what: &str, v: redis::Value| {
            assert!(
                matches!(v, redis::Value::Okay | redis::Value::SimpleString(_)),
                "{what} answered {v:?}"
            );
        };
        ok(
            "SETSLOT IMPORTING",
            self.nodes[to]
                .command(&["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &from_id])
                .await,
        );
        ok(
            "SETSLOT MIGRATING",
            self.nodes[from]
                .command(&["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &to_id])
                .await,
        );
        let target = self.nodes[to].addr();
        let (host, port) = (target.ip().to_string(), target.port().to_string());
        loop {
            let keys = self.nodes[from]
                .command(&["CLUSTER", "GETKEYSINSLOT", &slot_arg, "1"])
                .await;
            let key = match keys {
                redis::Value::Array(keys) if keys.is_empty() => break,
                redis::Value::Array(keys) => match &keys[0] {
                    redis::Value::BulkString(k) => String::from_utf8_lossy(k).into_owned(),
                    other => panic!("GETKEYSINSLOT gave {other:?}"),
                },
                other => panic!("GETKEYSINSLOT answered {other:?}"),
            };
            let moved = self.nodes[from]
                .command(&["MIGRATE", &host, &port, "", "0", "5000", "KEYS", &key])
                .await;
            assert!(
                matches!(moved, redis::Value::Okay | redis::Value::SimpleString(_)),
                "MIGRATE {key} answered {moved:?}"
            );
            tokio::time::sleep(pause).await;
        }
        // The new owner first, then the old one, then the rest, as redis-cli does.
        let mut order = vec![to, from];
        order.extend(
            self.masters()
                .await
                .into_iter()
                .filter(|m| *m != to && *m != from),
        );
        for i in order {
            ok(
                "SETSLOT NODE",
                self.nodes[i]
                    .command(&["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id])
                    .await,
            );
        }
    }

    /// The index of the master that serves `slot` now.
    pub async fn master_of_slot(&self, slot: u16) -> usize {
        for i in self.masters().await {
            if owns_slot(&self.nodes[i], i64::from(slot)).await {
                return i;
            }
        }
        panic!("no master serves slot {slot}");
    }

    /// SIGKILL node `i`, as a crashed host: the others fail it over after the node timeout.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts killed node `i` again on its port and directory: it rejoins the cluster from its
    /// `nodes.conf` (as a replica, once a replica took its place as master).
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].restart().await;
    }

    /// Waits until every running node reports `cluster_state:ok` (after a failover, say).
    pub async fn wait_ok(&self) {
        for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
            wait_until(
                || {
                    format!(
                        "cluster node {} never reported cluster_state:ok",
                        node.addr()
                    )
                },
                || async {
                    cluster_info(node).await.is_some_and(|i| {
                        i.contains("cluster_state:ok") && i.contains("cluster_slots_ok:16384")
                    })
                },
            )
            .await;
        }
    }

    /// Waits until a master per shard is running again after masters were killed: as many
    /// running masters as the cluster started with, and every node's state ok.
    pub async fn wait_failover(&self) {
        wait_until(
            || "no replica took over the killed master".to_owned(),
            || async { self.masters().await.len() == MASTERS },
        )
        .await;
        self.wait_ok().await;
    }
}

/// `CLUSTER INFO` of a node, if it answers.
async fn cluster_info(node: &RedisServer) -> Option<String> {
    let mut c = node.connection().await.ok()?;
    let info = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async::<String>(&mut c),
    )
    .await
    .ok()?
    .ok()?;
    Some(info)
}

/// One field of a section of `INFO` (empty if absent or unreachable).
async fn info_field(node: &RedisServer, section: &str, field: &str) -> String {
    let Ok(mut c) = node.connection().await else {
        return String::new();
    };
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Whether `node` owns `slot`, by its own line (`myself`) of `CLUSTER NODES`.
async fn owns_slot(node: &RedisServer, slot: i64) -> bool {
    let redis::Value::BulkString(nodes) = node.command(&["CLUSTER", "NODES"]).await else {
        return false;
    };
    let nodes = String::from_utf8_lossy(&nodes).into_owned();
    let Some(me) = nodes.lines().find(|l| l.contains("myself")) else {
        return false;
    };
    // Fields 9.. are the slots served: `N` or `A-B` (migrating ones are in brackets).
    me.split_whitespace().skip(8).any(|range| {
        let mut ends = range.splitn(2, '-').map(|n| n.parse::<i64>());
        match (ends.next(), ends.next()) {
            (Some(Ok(a)), None) => a == slot,
            (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
            _ => false,
        }
    })
}
