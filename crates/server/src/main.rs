//! The `kokuban` binary: flags, logging, signals. Everything else is the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use kokuban_server::sequencer::ClusterConfig;
use kokuban_server::{Config, Server};
use tracing_subscriber::EnvFilter;

/// Kokuban, a real-time collaborative whiteboard server.
#[derive(Debug, Parser)]
#[command(name = "kokuban", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "KOKUBAN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the embedded store and the server key.
    #[arg(long, env = "KOKUBAN_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Redis URL: run as one node of a cluster (absent: a single node).
    #[arg(long, env = "KOKUBAN_REDIS_URL")]
    redis_url: Option<String>,
    /// An origin allowed to open WebSockets besides the server's own and localhost
    /// (repeatable; comma-separated in the environment variable).
    #[arg(
        long = "allowed-origin",
        env = "KOKUBAN_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// This node's name in logs and metrics.
    #[arg(long, env = "KOKUBAN_NODE_ID")]
    node_id: Option<String>,
    /// Cluster mode: the secret every node derives the link tokens from (give all nodes the
    /// same one). Absent: the first node stores a random key in Redis.
    #[arg(
        long,
        env = "KOKUBAN_SECRET",
        hide_env_values = true,
        requires = "redis_url"
    )]
    secret: Option<String>,
    /// Cluster mode: seconds after which the members of a node that stopped (or lost Redis)
    /// disappear from the other nodes' presence lists.
    #[arg(
        long,
        env = "KOKUBAN_PRESENCE_TTL",
        default_value_t = 10.0,
        value_name = "SECONDS"
    )]
    presence_ttl: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut config = Config::new(args.data_dir);
    if let Some(url) = args.redis_url {
        let mut cluster = ClusterConfig::new(url);
        if args.secret.as_deref().is_some_and(|s| s.trim().is_empty()) {
            bail!("--secret must not be empty");
        }
        cluster.secret = args.secret;
        cluster.presence_ttl = Duration::try_from_secs_f64(args.presence_ttl)
            .ok()
            .filter(|t| !t.is_zero())
            .context("--presence-ttl must be a positive number of seconds")?;
        config.cluster = Some(cluster);
    }
    config.listen = args.listen;
    config.allowed_origins = args.allowed_origins;
    if let Some(node_id) = args.node_id {
        config.node_id = node_id;
    }
    let server = Server::bind(config).await.context("starting the server")?;
    let stop = server.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: shutting down gracefully");
        stop.shutdown();
    });
    server.serve().await.context("serving")?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
