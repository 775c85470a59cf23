//! The `kokuban` binary: flags, logging, signals. Everything else is the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kokuban_server::config::{
    ClusterConfig, DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_ROOM_IMAGE_BYTES,
};
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
    #[arg(long, env = "KOKUBAN_REDIS_URL", group = "redis")]
    redis_url: Option<String>,
    /// A Redis Cluster's seed nodes, comma-separated (`redis://h1:7000,redis://h2:7001`): run as
    /// one node of a cluster whose rooms spread over the Redis Cluster's masters.
    #[arg(
        long,
        env = "KOKUBAN_REDIS_CLUSTER",
        group = "redis",
        value_delimiter = ',',
        num_args = 1..,
        value_name = "URLS"
    )]
    redis_cluster: Vec<String>,
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
    /// Accept http://localhost and http://127.0.0.1 origins (any port) although the node does
    /// not listen on a loopback address (they always are when it does).
    #[arg(long, env = "KOKUBAN_ALLOW_DEV_ORIGINS")]
    allow_dev_origins: bool,
    /// Take a client's address from the last X-Forwarded-For entry (what the proxy in front
    /// saw) for the per-address limits. Only behind a proxy that appends to that header:
    /// otherwise clients choose their own address.
    #[arg(long, env = "KOKUBAN_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,
    /// Rooms one client address may create per minute (as many at once); more are answered
    /// 429 with Retry-After (0: no cap). Behind a proxy, with --trust-forwarded-for.
    #[arg(
        long,
        env = "KOKUBAN_ROOMS_PER_IP_PER_MIN",
        default_value_t = 60,
        value_name = "N"
    )]
    rooms_per_ip_per_min: u32,
    /// Delete rooms nobody wrote to or had open for this many days (0: keep rooms forever).
    /// Their links then answer like invalid links.
    #[arg(
        long,
        env = "KOKUBAN_ROOM_TTL_DAYS",
        default_value_t = 0,
        value_name = "DAYS"
    )]
    room_ttl_days: u32,
    /// Keep a room's board as a version (a checkpoint its History panel lists) at least this
    /// often while it is drawn in; a Clear always keeps one first.
    #[arg(
        long,
        env = "KOKUBAN_CHECKPOINT_MINUTES",
        default_value_t = 5.0,
        value_name = "MINUTES"
    )]
    checkpoint_minutes: f64,
    /// Versions kept per room (the oldest go first; their bytes are also capped at twice the
    /// board's byte budget).
    #[arg(
        long,
        env = "KOKUBAN_CHECKPOINTS_KEPT",
        default_value_t = 30,
        value_name = "N"
    )]
    checkpoints_kept: usize,
    /// On SIGTERM: seconds the node keeps serving its members after /readyz turned 503, before
    /// it closes every socket with 1001.
    #[arg(
        long,
        env = "KOKUBAN_SHUTDOWN_DRAIN",
        default_value_t = 2.0,
        value_name = "SECONDS"
    )]
    shutdown_drain: f64,
    /// On SIGTERM: seconds after which what has not closed is dropped, the store flushed and
    /// the process exits 0 (keep it below the supervisor's kill deadline).
    #[arg(
        long,
        env = "KOKUBAN_SHUTDOWN_TIMEOUT",
        default_value_t = 10.0,
        value_name = "SECONDS"
    )]
    shutdown_timeout: f64,
    /// Cluster mode: the secret every node derives the link tokens from (give all nodes the
    /// same one). Absent: the first node stores a random key in Redis.
    #[arg(
        long,
        env = "KOKUBAN_SECRET",
        hide_env_values = true,
        requires = "redis"
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
    /// Cluster mode: an op is acknowledged only once this many Redis replicas hold it (Redis
    /// `WAIT`); 0 acknowledges as soon as the primary has it. While fewer replicas answer,
    /// ops are still sequenced and seen, but their authors' acknowledgements wait.
    #[arg(
        long,
        env = "KOKUBAN_REDIS_REPLICAS",
        default_value_t = 0,
        value_name = "N",
        requires = "redis"
    )]
    redis_replicas: u32,
    /// Cluster mode: a PEM file of the CA certificates that sign the certificates of the Redis
    /// servers reached over `rediss://` (absent: the system's CAs are trusted).
    #[arg(
        long,
        env = "KOKUBAN_REDIS_CA_FILE",
        value_name = "PATH",
        requires = "redis"
    )]
    redis_ca_file: Option<PathBuf>,
    /// Open connections one client address may hold (0: no cap). Off by default: behind a
    /// proxy or load balancer every client shares the proxy's address, and a cap here would
    /// lock everyone out together; set it only when the node faces clients directly, and cap
    /// per client at the proxy otherwise.
    #[arg(
        long,
        env = "KOKUBAN_MAX_CONNECTIONS_PER_IP",
        default_value_t = 0,
        value_name = "N"
    )]
    max_connections_per_ip: usize,
    /// WebSocket upgrades per second one client address may make, sustained, after a burst
    /// of --upgrade-burst-per-ip; more are answered 429 (0: no cap). Off by default for the
    /// same reason as --max-connections-per-ip: behind a proxy everyone shares one address.
    #[arg(
        long,
        env = "KOKUBAN_UPGRADES_PER_IP_PER_SEC",
        default_value_t = 0,
        value_name = "N"
    )]
    upgrades_per_ip_per_sec: u32,
    /// Upgrades one address may make at once above --upgrades-per-ip-per-sec.
    #[arg(
        long,
        env = "KOKUBAN_UPGRADE_BURST_PER_IP",
        default_value_t = 32,
        value_name = "N"
    )]
    upgrade_burst_per_ip: u32,
    /// Rooms this node holds in memory at once; joining one more first unloads an empty
    /// room, else is refused with close 1013 while the rooms already open go on (0: no cap).
    /// Single-node mode.
    #[arg(
        long,
        env = "KOKUBAN_MAX_ROOMS",
        default_value_t = 20_000,
        value_name = "N"
    )]
    max_rooms: usize,
    /// Members of one room at once; one more is refused with "room full" and close 1013
    /// (0: no cap). Single-node mode.
    #[arg(
        long,
        env = "KOKUBAN_MAX_MEMBERS_PER_ROOM",
        default_value_t = 2_000,
        value_name = "N"
    )]
    max_members_per_room: usize,
    /// Bytes one image posted to a board may weigh; a bigger one is refused with 413.
    #[arg(
        long,
        env = "KOKUBAN_MAX_IMAGE_BYTES",
        default_value_t = DEFAULT_MAX_IMAGE_BYTES,
        value_name = "BYTES"
    )]
    max_image_bytes: usize,
    /// Bytes all the images of one board may weigh together; an image beyond is refused with
    /// 413 (the same image posted again counts once).
    #[arg(
        long,
        env = "KOKUBAN_MAX_ROOM_IMAGE_BYTES",
        default_value_t = DEFAULT_MAX_ROOM_IMAGE_BYTES,
        value_name = "BYTES"
    )]
    max_room_image_bytes: usize,
    /// WebSocket frames of any kind one connection may send per second, sustained (default
    /// 960); beyond it and --inbound-frame-burst the connection is closed with 1008.
    #[arg(long, env = "KOKUBAN_INBOUND_FRAMES_PER_SEC", value_name = "N")]
    inbound_frames_per_sec: Option<u32>,
    /// Frames one connection may send at once above the sustained rate (default 1920).
    #[arg(long, env = "KOKUBAN_INBOUND_FRAME_BURST", value_name = "N")]
    inbound_frame_burst: Option<u32>,
    /// Bytes one connection may send per second, sustained (default 1 MiB); beyond it and
    /// --inbound-byte-burst the connection is closed with 1008.
    #[arg(long, env = "KOKUBAN_INBOUND_BYTES_PER_SEC", value_name = "BYTES")]
    inbound_bytes_per_sec: Option<u32>,
    /// Bytes one connection may send at once above the sustained rate (default 8 MiB).
    #[arg(long, env = "KOKUBAN_INBOUND_BYTE_BURST", value_name = "BYTES")]
    inbound_byte_burst: Option<u32>,
    /// Seconds within which a WebSocket message begun must be complete (default 10); a
    /// connection that leaves one unfinished longer is closed with 1008.
    #[arg(long, env = "KOKUBAN_MESSAGE_DEADLINE", value_name = "SECONDS")]
    message_deadline: Option<f64>,
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
    let redis = match (args.redis_url, args.redis_cluster) {
        (Some(url), _) => Some(ClusterConfig::new(url)),
        (None, seeds) if !seeds.is_empty() => Some(ClusterConfig::sharded(seeds)),
        _ => None,
    };
    if let Some(mut cluster) = redis {
        if let Some(secret) = &args.secret {
            kokuban_server::capability::check_secret(secret)?;
        }
        cluster.secret = args.secret;
        cluster.presence_ttl = Duration::try_from_secs_f64(args.presence_ttl)
            .ok()
            .filter(|t| !t.is_zero())
            .context("--presence-ttl must be a positive number of seconds")?;
        cluster.replicas = args.redis_replicas;
        if let Some(path) = &args.redis_ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading --redis-ca-file {}", path.display()))?;
            cluster.redis_ca = Some(pem);
        }
        kokuban_server::sequencer::check_redis(&cluster)
            .await
            .map_err(anyhow::Error::msg)?;
        config.cluster = Some(cluster);
    }
    config.listen = args.listen;
    config.shutdown_drain = Duration::try_from_secs_f64(args.shutdown_drain)
        .context("--shutdown-drain must be a number of seconds, 0 or more")?;
    config.shutdown_timeout = Duration::try_from_secs_f64(args.shutdown_timeout)
        .ok()
        .filter(|t| *t > config.shutdown_drain)
        .context("--shutdown-timeout must be a number of seconds above --shutdown-drain")?;
    config.max_connections_per_ip = args.max_connections_per_ip;
    config.upgrades_per_ip_per_sec = args.upgrades_per_ip_per_sec;
    config.upgrade_burst_per_ip = args.upgrade_burst_per_ip;
    config.max_rooms = args.max_rooms;
    config.max_members_per_room = args.max_members_per_room;
    config.max_image_bytes = args.max_image_bytes;
    config.max_room_image_bytes = args.max_room_image_bytes;
    config.allowed_origins = args.allowed_origins;
    config.allow_dev_origins = args.allow_dev_origins;
    config.trust_forwarded_for = args.trust_forwarded_for;
    config.rooms_per_ip_per_min = args.rooms_per_ip_per_min;
    config.room_ttl = (args.room_ttl_days > 0)
        .then(|| Duration::from_secs(u64::from(args.room_ttl_days) * 24 * 3600));
    config.checkpoint_every = Duration::try_from_secs_f64(args.checkpoint_minutes * 60.0)
        .ok()
        .filter(|t| !t.is_zero())
        .context("--checkpoint-minutes must be a positive number of minutes")?;
    config.checkpoints_kept = args.checkpoints_kept;
    // Unset flags keep the library's defaults, which are documented (and reasoned) there.
    let c = &mut config;
    c.inbound_frames_per_sec = args
        .inbound_frames_per_sec
        .unwrap_or(c.inbound_frames_per_sec);
    c.inbound_frame_burst = args.inbound_frame_burst.unwrap_or(c.inbound_frame_burst);
    c.inbound_bytes_per_sec = args
        .inbound_bytes_per_sec
        .unwrap_or(c.inbound_bytes_per_sec);
    c.inbound_byte_burst = args.inbound_byte_burst.unwrap_or(c.inbound_byte_burst);
    if let Some(secs) = args.message_deadline {
        c.message_deadline = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|t| !t.is_zero())
            .context("--message-deadline must be a positive number of seconds")?;
    }
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
