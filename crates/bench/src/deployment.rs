//! The processes a run measures: Kokuban nodes (alone, on one Redis, or on a Redis Cluster),
//! the Socket.IO baseline, or the floor, each started on free loopback ports in a directory of
//! its own, and their CPU and memory as `/proc` shows them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::procfs::{self, ProcSample};
use crate::procs::{self, Adapter, FloorRuntime, Proc};
use crate::scenario::System;

/// Where the programs under test are.
#[derive(Debug, Clone)]
pub struct Programs {
    /// The `kokuban` binary (absent: Kokuban scenarios are skipped).
    pub kokuban: Option<PathBuf>,
    /// The directory of the Socket.IO baseline (with its installed dependencies).
    pub socketio: PathBuf,
    /// The `kokuban-floor` binary (absent: the floor is skipped).
    pub floor: Option<PathBuf>,
}

/// Running server processes of one system.
#[derive(Debug)]
pub struct Deployment {
    /// The system.
    pub system: System,
    /// Short description, e.g. "2 nodes + Redis".
    pub mode: String,
    /// Node addresses, in client-assignment order.
    pub nodes: Vec<SocketAddr>,
    servers: Vec<Proc>,
    redis: Option<Proc>,
    /// The other masters, when Redis is a Redis Cluster (`redis` is its first).
    shards: Vec<Proc>,
    /// Every master's port, when Redis is a Redis Cluster.
    master_ports: Vec<u16>,
    /// Redis replicas, when the deployment has any.
    replicas: Vec<Proc>,
    _dir: tempfile::TempDir,
}

impl Deployment {
    /// Starts `nodes` Kokuban nodes; with `cluster`, they share a Redis of their own.
    pub async fn kokuban(bin: &Path, nodes: usize, cluster: bool) -> anyhow::Result<Self> {
        Self::kokuban_with(bin, nodes, cluster, 0).await
    }

    /// Starts `nodes` Kokuban nodes; with `cluster`, they share a Redis of their own, which has
    /// `replicas` replicas that must hold every op before it is shown (`--redis-replicas`).
    pub async fn kokuban_with(
        bin: &Path,
        nodes: usize,
        cluster: bool,
        replicas: u32,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (redis, redis_port) = if cluster {
            let (p, port) = procs::start_redis(dir.path()).await?;
            (Some(p), Some(port))
        } else {
            (None, None)
        };
        let mut replica_procs = Vec::new();
        if let Some(port) = redis_port {
            let of = [
                "--replicaof".to_owned(),
                "127.0.0.1".into(),
                port.to_string(),
            ];
            for _ in 0..replicas {
                replica_procs.push(procs::start_redis_with(dir.path(), &of).await?.0);
            }
        }
        let extra = if replicas > 0 {
            vec!["--redis-replicas".to_owned(), replicas.to_string()]
        } else {
            Vec::new()
        };
        let (servers, addrs) = start_nodes(bin, nodes, dir.path(), redis_port, &extra).await?;
        let mode = if replicas > 0 {
            format!("{nodes} node(s) + Redis, {replicas} replica(s) waited for")
        } else if cluster {
            format!("{nodes} node(s) + Redis")
        } else {
            "single node".to_string()
        };
        Ok(Self {
            system: System::Kokuban,
            mode,
            nodes: addrs,
            servers,
            redis,
            shards: Vec::new(),
            master_ports: Vec::new(),
            replicas: replica_procs,
            _dir: dir,
        })
    }

    /// Starts `nodes` Kokuban nodes on a Redis Cluster of their own with `masters` masters
    /// (`--redis-cluster`); Redis's figures are those of all its masters together.
    pub async fn kokuban_on_redis_cluster(
        bin: &Path,
        nodes: usize,
        masters: usize,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut shards: Vec<Proc> = Vec::new();
        let mut seeds = Vec::new();
        let mut master_ports = Vec::new();
        for (proc, port) in procs::start_redis_cluster(dir.path(), masters).await? {
            shards.push(proc);
            seeds.push(format!("redis://127.0.0.1:{port}"));
            master_ports.push(port);
        }
        let extra = vec!["--redis-cluster".to_owned(), seeds.join(",")];
        let (servers, addrs) = start_nodes(bin, nodes, dir.path(), None, &extra).await?;
        let first = shards.remove(0);
        Ok(Self {
            system: System::Kokuban,
            mode: format!("{nodes} node(s) + Redis Cluster of {masters} masters"),
            nodes: addrs,
            servers,
            redis: Some(first),
            shards,
            master_ports,
            replicas: Vec::new(),
            _dir: dir,
        })
    }

    /// Starts the floor: one process, no Redis.
    pub async fn floor(bin: &Path, runtime: FloorRuntime) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
        let server = procs::start_floor(bin, addr, runtime, dir.path()).await?;
        Ok(Self {
            system: System::Floor,
            mode: runtime.mode().to_string(),
            nodes: vec![addr],
            servers: vec![server],
            redis: None,
            shards: Vec::new(),
            master_ports: Vec::new(),
            replicas: Vec::new(),
            _dir: dir,
        })
    }

    /// Process ids of the servers, then of Redis (every master of a Redis Cluster).
    pub fn pids(&self) -> (Vec<u32>, Vec<u32>) {
        (
            self.servers.iter().map(|p| p.pid).collect(),
            self.redis
                .iter()
                .chain(&self.shards)
                .map(|r| r.pid)
                .collect(),
        )
    }

    /// Starts `nodes` Socket.IO nodes; with an adapter, they share a Redis of their own.
    pub async fn socketio(
        dir: &Path,
        nodes: usize,
        adapter: Option<Adapter>,
    ) -> anyhow::Result<Self> {
        let tmp = tempfile::tempdir()?;
        let (redis, redis_port) = if adapter.is_some() {
            let (p, port) = procs::start_redis(tmp.path()).await?;
            (Some(p), Some(port))
        } else {
            (None, None)
        };
        let mut servers = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..nodes {
            let addr = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
            servers.push(
                procs::start_socketio(
                    dir,
                    addr,
                    redis_port,
                    adapter.unwrap_or(Adapter::Classic),
                    tmp.path(),
                )
                .await?,
            );
            addrs.push(addr);
        }
        let mode = match adapter {
            Some(Adapter::Classic) => format!("{nodes} node(s) + Redis adapter"),
            Some(Adapter::Sharded) => format!("{nodes} node(s) + sharded Redis adapter"),
            None => "single node".to_string(),
        };
        Ok(Self {
            system: System::SocketIo,
            mode,
            nodes: addrs,
            servers,
            redis,
            shards: Vec::new(),
            master_ports: Vec::new(),
            replicas: Vec::new(),
            _dir: tmp,
        })
    }

    /// CPU and memory of the servers and of Redis now.
    pub fn sample(&self) -> (Vec<ProcSample>, Option<ProcSample>) {
        let servers = self
            .servers
            .iter()
            .map(|p| procfs::sample(p.pid).unwrap_or_default())
            .collect();
        // A Redis Cluster's masters count as one Redis: their sum.
        let redis = self.redis.as_ref().and_then(|r| procfs::sample(r.pid));
        let redis = redis.map(|first| {
            self.shards
                .iter()
                .filter_map(|p| procfs::sample(p.pid))
                .fold(first, |sum, s| ProcSample {
                    cpu_ticks: sum.cpu_ticks + s.cpu_ticks,
                    sys_ticks: sum.sys_ticks + s.sys_ticks,
                    context_switches: sum.context_switches + s.context_switches,
                    rss_bytes: sum.rss_bytes + s.rss_bytes,
                })
        });
        (servers, redis)
    }

    /// CPU and memory of each Redis master now (one, unless Redis is a Redis Cluster).
    pub fn redis_masters(&self) -> Vec<ProcSample> {
        self.redis
            .iter()
            .chain(&self.shards)
            .map(|p| procfs::sample(p.pid).unwrap_or_default())
            .collect()
    }

    /// On a Redis Cluster, the messages the busiest master published so far over the masters'
    /// mean.
    pub async fn published_spread(&self) -> Option<f64> {
        if self.master_ports.len() < 2 {
            return None;
        }
        let mut each = Vec::new();
        for &port in &self.master_ports {
            each.push(procs::command_calls(port, "spublish").await? as f64);
        }
        let mean = each.iter().sum::<f64>() / each.len() as f64;
        (mean > 0.0).then(|| each.iter().copied().fold(0.0, f64::max) / mean)
    }

    /// Fails if a server or Redis has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for p in self
            .servers
            .iter_mut()
            .chain(self.redis.as_mut())
            .chain(self.shards.iter_mut())
            .chain(self.replicas.iter_mut())
        {
            p.check_alive()?;
        }
        Ok(())
    }

    /// Stops every process.
    pub async fn stop(self) {
        for p in self.servers {
            p.stop().await;
        }
        if let Some(r) = self.redis {
            r.stop().await;
        }
        for r in self.shards.into_iter().chain(self.replicas) {
            r.stop().await;
        }
    }
}

/// Starts `nodes` Kokuban nodes, each with a data directory under `dir`, on the Redis at
/// `redis_port` if any, with `extra` arguments; returns them and their addresses.
async fn start_nodes(
    bin: &Path,
    nodes: usize,
    dir: &Path,
    redis_port: Option<u16>,
    extra: &[String],
) -> anyhow::Result<(Vec<Proc>, Vec<SocketAddr>)> {
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..nodes {
        let addr = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
        let data = dir.join(format!("data-{i}"));
        std::fs::create_dir_all(&data)?;
        let node_id = format!("bench-{i}");
        servers
            .push(procs::start_kokuban(bin, addr, &data, redis_port, &node_id, dir, extra).await?);
        addrs.push(addr);
    }
    Ok((servers, addrs))
}
