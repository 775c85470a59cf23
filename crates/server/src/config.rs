//! Everything a node can be told, with the defaults a single-node deployment wants.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Bytes one image of a board may weigh ([`Config::max_image_bytes`]): a photo from a phone
/// or a large screenshot fits; a whole album does not.
pub const DEFAULT_MAX_IMAGE_BYTES: usize = 10 << 20;
/// Bytes all the images of one room may weigh together ([`Config::max_room_image_bytes`]):
/// ten images at the cap, kept in the store (or Redis) for as long as the room.
pub const DEFAULT_MAX_ROOM_IMAGE_BYTES: usize = 100 << 20;

/// Configuration of one node. `Config::new` gives production defaults; tests shorten the
/// timers and queues through the public fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Directory of the embedded store and the server key.
    pub data_dir: PathBuf,
    /// Origins allowed to open WebSockets besides the server's own and local development
    /// origins, e.g. `https://board.example.com`.
    pub allowed_origins: Vec<String>,
    /// This node's name in logs and metrics.
    pub node_id: String,
    /// Whether `http://localhost:*`-style development origins may open WebSockets and create
    /// rooms. Always on when the node listens on a loopback address (development); otherwise
    /// only when set, since on a public node any page a visitor runs on their own machine could
    /// use it in their name.
    pub allow_dev_origins: bool,
    /// Whether the client address of a request is taken from the last `X-Forwarded-For` entry
    /// (the address the proxy in front saw) instead of the socket's peer. Set it only behind a
    /// proxy that appends to that header (nginx: `$proxy_add_x_forwarded_for`): otherwise any
    /// client could name any address. It applies to the per-address limits on room creation
    /// and upgrades.
    pub trust_forwarded_for: bool,
    /// Rooms one client address may create per minute, sustained, with as many at once
    /// (`POST /api/rooms` beyond it is answered `429` with `Retry-After`); 0: no cap.
    pub rooms_per_ip_per_min: u32,

    /// How often the server pings an idle connection.
    pub ping_interval: Duration,
    /// A connection that sent no data message and did not answer the server's latest ping
    /// for this long is closed (4003). Its own pings, unsolicited pongs and empty fragments do
    /// not count: they would keep a connection open at no cost.
    pub idle_timeout: Duration,
    /// Time a new connection has to send its Hello.
    pub hello_timeout: Duration,
    /// Time given to the closing handshake before the socket is dropped.
    pub close_timeout: Duration,
    /// How long an image may take to arrive once its request's headers have (408 beyond): a
    /// body trickled in slower holds one of the node's few places for uploads for nothing.
    pub upload_deadline: Duration,
    /// On shutdown, how long the node goes on serving its members after `/readyz` turned 503
    /// (new rooms and connections are refused), so that a load balancer stops sending it
    /// anyone before its sockets close.
    pub shutdown_drain: Duration,
    /// On shutdown, the time from the signal after which whatever has not closed (a peer that
    /// reads nothing, a large Welcome on a slow link) is dropped, the store is flushed and the
    /// process exits: below a supervisor's kill deadline (30 s for Kubernetes and systemd's
    /// default is 90 s), so that a stop stays clean.
    pub shutdown_timeout: Duration,
    /// A member's name and colour changes reach the room at most this often (the last change
    /// within an interval wins), whatever the member sends.
    pub profile_interval: Duration,

    /// Frames a member's send queue holds before the member is disconnected as a slow
    /// consumer (close 4001).
    pub member_queue_frames: usize,
    /// Sustained frames per second a connection may send.
    pub rate_per_sec: u32,
    /// Frames a connection may send in a burst above the sustained rate.
    pub rate_burst: u32,
    /// Frames dropped by the rate limit within [`Config::abuse_window`] after which the
    /// connection is closed with 1008.
    pub abuse_limit: u32,
    /// See [`Config::abuse_limit`].
    pub abuse_window: Duration,
    /// WebSocket frames of every kind (data, fragments, pings, pongs) a connection may send
    /// per second, sustained; beyond it and [`Config::inbound_frame_burst`] it is closed with
    /// 1008. Counted as the bytes arrive, before any message is assembled.
    pub inbound_frames_per_sec: u32,
    /// Frames a connection may send at once above the sustained rate.
    pub inbound_frame_burst: u32,
    /// Bytes a connection may send per second, sustained; beyond it and
    /// [`Config::inbound_byte_burst`] it is closed with 1008.
    pub inbound_bytes_per_sec: u32,
    /// Bytes a connection may send at once above the sustained rate.
    pub inbound_byte_burst: u32,
    /// A data message whose first byte arrived must be complete (its final frame in) within
    /// this, or the connection is closed with 1008: an unfinished message holds memory, and
    /// a peer could otherwise keep it unfinished for ever.
    pub message_deadline: Duration,

    /// Cursor moves are coalesced and sent to the room at most this often.
    pub cursor_interval: Duration,
    /// A room without members stays in memory this long before it is unloaded.
    pub room_grace: Duration,
    /// The log is compacted into a snapshot once this many ops follow the last snapshot...
    pub compact_after_ops: usize,
    /// ...or once they weigh this many bytes (and, on a large board, at least an eighth of its
    /// snapshot, so that re-encoding the board costs in proportion to what changed).
    pub compact_after_bytes: usize,
    /// Items (strokes, text, tombstones kept for undo) a board may hold; an op that would add
    /// one more is refused ("this board is full"). 0: no cap.
    pub max_board_items: usize,
    /// Points a board may hold (tombstones included). 0: no cap.
    pub max_board_points: usize,
    /// Bytes a board's encoded state (snapshot and the ops after it) may reach before ops that
    /// add to it are refused: it bounds a room's memory, its store and every Welcome. 0: no cap.
    pub max_board_bytes: usize,
    /// Bytes one image posted to a room may weigh; a bigger one is refused (413) before it is
    /// read whole.
    pub max_image_bytes: usize,
    /// Bytes a room's images may weigh together; an image that would take them past it is
    /// refused (413). The same bytes posted again are kept once and counted once.
    pub max_room_image_bytes: usize,
    /// Ops queued for the store beyond which new writes are refused (the room turns
    /// temporarily read-only) rather than letting memory grow while the disk stalls.
    pub store_backlog_ops: usize,
    /// A commit running longer than this (a stalled disk) also turns rooms read-only, which
    /// bounds what a crash during the stall can lose.
    pub store_max_lag: Duration,

    /// A connection must deliver a request's complete header within this time, or it is
    /// closed (slowloris: otherwise a socket trickling one byte at a time is held forever).
    /// It also bounds a connection that sends nothing and a keep-alive one idle between
    /// requests.
    pub header_read_timeout: Duration,
    /// Open connections (HTTP and WebSocket) beyond which new ones are answered `429` at
    /// once; 0: no cap. Existing connections are never touched.
    pub max_connections: usize,
    /// Open connections from one peer address beyond which its new ones are answered `429`;
    /// 0: no cap. Behind a proxy every client shares the proxy's address: leave it off there
    /// and cap per client at the proxy.
    pub max_connections_per_ip: usize,
    /// WebSocket upgrades one peer address may make per second, sustained; beyond it (and
    /// [`Config::upgrade_burst_per_ip`]) an upgrade is answered `429`. 0: no cap. Reconnect
    /// storms are what it stops: a socket that is refused costs the node no session, no Hello
    /// and no room load. Open sessions are never touched. Off by default for the same reason
    /// as [`Config::max_connections_per_ip`]: behind a proxy every client shares one address.
    pub upgrades_per_ip_per_sec: u32,
    /// Upgrades one address may make at once above the sustained rate (a tab restoring its
    /// boards, a classroom behind one NAT joining together).
    pub upgrade_burst_per_ip: u32,
    /// Rooms this node holds in memory at once. At the cap, a Hello for a room not held first
    /// unloads an empty room (one waiting out [`Config::room_grace`]); if every room held has
    /// members it is refused (error `Overloaded`, close 1013) while those rooms go on. 0: no
    /// cap. A cluster node, whose rooms cost a subscription and a reload from Redis, refuses
    /// joins of new rooms at the cap rather than unload an empty one early.
    pub max_rooms: usize,
    /// Members of one room at once; a Hello beyond it is refused (error `RoomFull`, close
    /// 1013). Every op is pushed to every member, so this bounds the work of one op. 0: no
    /// cap. In a cluster the members of every node count, the others' as last announced.
    pub max_members_per_room: usize,

    /// Rooms nobody wrote to or had open for this long are deleted, board and all (their
    /// links then get the answer of an invalid link); `None`: rooms are kept forever. In a
    /// cluster Redis expires the room's keys; a single node sweeps its store.
    pub room_ttl: Option<Duration>,
    /// How often a single node sweeps its store for expired rooms.
    pub room_sweep_interval: Duration,
    /// A room being drawn in keeps its board as a checkpoint at least this often (and always
    /// before a Clear), so that it can be brought back to an earlier version.
    pub checkpoint_every: Duration,
    /// Checkpoints kept per room; the oldest go first. Their bytes are also capped, at twice
    /// the board's byte budget (`max_board_bytes`).
    pub checkpoints_kept: usize,

    /// Cluster mode (`--redis-url`): rooms are ordered and stored in Redis and shared with the
    /// other nodes. `None`: a single node with its embedded store.
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Production defaults, storing under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            allowed_origins: Vec::new(),
            node_id: format!("node-{:08x}", rand::random::<u32>()),
            allow_dev_origins: false,
            trust_forwarded_for: false,
            // A classroom behind one NAT address each opening a board at the start of a
            // lesson fits in the burst; a script creating rooms in a loop gets one a second.
            rooms_per_ip_per_min: 60,
            ping_interval: Duration::from_secs(15),
            // Three missed pings: long enough for a phone switching networks, short enough
            // that a vanished peer leaves the presence list within a minute.
            idle_timeout: Duration::from_secs(45),
            hello_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(3),
            // Ten megabytes at well under 2 Mbit/s still arrive.
            upload_deadline: Duration::from_secs(60),
            // Two readiness probes of a typical load balancer at 1 s intervals.
            shutdown_drain: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(10),
            // Typing a name changes it on every key: four updates a second read as live.
            profile_interval: Duration::from_millis(250),
            // About a second of a very busy room (ten members drawing at 120 Hz, plus
            // cursors); a client that is further behind than that resumes from its seq.
            member_queue_frames: 4096,
            // One point batch and one cursor per animation frame on a 120 Hz display fits
            // under the sustained rate (a dropped batch would tear a stroke, so leave room);
            // the burst absorbs a tab that was in the background and flushes what it held.
            rate_per_sec: 240,
            rate_burst: 480,
            abuse_limit: 480,
            abuse_window: Duration::from_secs(10),
            // Four times the message rate (frames include fragments and a browser's answers to
            // pings); only a client that floods reaches it, the rate limit above speaks first.
            inbound_frames_per_sec: 960,
            inbound_frame_burst: 1920,
            // A point batch is a few hundred bytes; a megabyte a second is a pasted image's
            // worth of text. The burst admits a tab flushing what it drew while offline.
            inbound_bytes_per_sec: 1 << 20,
            inbound_byte_burst: 8 << 20,
            // A whole client message is at most 64 KiB: ten seconds is a slow mobile link.
            message_deadline: Duration::from_secs(10),
            // 25 Hz is smooth for a pointer and keeps cursor traffic a fraction of ink traffic.
            cursor_interval: Duration::from_millis(40),
            room_grace: Duration::from_secs(30),
            compact_after_ops: 2000,
            compact_after_bytes: 1 << 20,
            // Far beyond a busy real board (a dense classroom board after a term is tens of
            // thousands of strokes and a few million points, a few MiB encoded), well below
            // what would strain a node: 16 MiB of snapshot, served to every joiner.
            max_board_items: 200_000,
            max_board_points: 8_000_000,
            max_board_bytes: 16 << 20,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
            max_room_image_bytes: DEFAULT_MAX_ROOM_IMAGE_BYTES,
            store_backlog_ops: 200_000,
            store_max_lag: Duration::from_millis(500),
            // Browsers send a whole request head in one packet; ten seconds leaves room for a
            // very slow mobile link and still frees a trickling socket quickly.
            header_read_timeout: Duration::from_secs(10),
            // Far above what a node serves in practice (the benchmarks hold 50,000 idle
            // sockets), below where file descriptors run out on a tuned host.
            max_connections: 100_000,
            // Off: the default deployments put nginx (one address) in front of the nodes, and
            // the benchmarks connect from a handful of loopback addresses. Set it when the
            // node faces clients directly.
            max_connections_per_ip: 0,
            upgrades_per_ip_per_sec: 0,
            // When the rate is set: a few dozen tabs, or a classroom behind one NAT, at once.
            upgrade_burst_per_ip: 32,
            // Well above what one node serves (the idle benchmark holds 5,000 rooms), low
            // enough that a flood of joins to distinct rooms cannot load the whole store.
            max_rooms: 20_000,
            // A lecture hall watching one board (the fan-out benchmark has 1,001 members); a
            // single op then costs 2,000 queue pushes, still well under a millisecond.
            max_members_per_room: 2_000,
            room_ttl: None,
            room_sweep_interval: Duration::from_secs(3600),
            // A version every five minutes of drawing: a morning's workshop is a few dozen
            // versions, and thirty of them reach back over two hours of activity.
            checkpoint_every: Duration::from_secs(300),
            checkpoints_kept: 30,
            cluster: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new("./data")
    }
}

/// The Redis a cluster's nodes share.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisAt {
    /// One Redis (it may have replicas), e.g. `redis://redis:6379`.
    One(String),
    /// A Redis Cluster, found from these seed nodes (any of its nodes will do): rooms spread
    /// over its masters by slot.
    Cluster(Vec<String>),
}

impl RedisAt {
    /// The URLs given, for display: without their passwords.
    fn redacted(&self) -> Vec<String> {
        let hide = |url: &String| match url.rsplit_once('@') {
            Some((scheme_user, host)) => {
                let scheme = scheme_user.split("://").next().unwrap_or("redis");
                format!("{scheme}://…@{host}")
            }
            None => url.clone(),
        };
        match self {
            RedisAt::One(url) => vec![hide(url)],
            RedisAt::Cluster(seeds) => seeds.iter().map(hide).collect(),
        }
    }
}

/// What a node of a cluster needs besides the single-node settings.
#[derive(Clone)]
pub struct ClusterConfig {
    /// The Redis every node of the cluster uses.
    pub redis: RedisAt,
    /// The secret every node derives the capability key from. Without it, the first node
    /// stores a random key in Redis and the others read it.
    pub secret: Option<String>,
    /// A member whose node stops refreshing it disappears from the other nodes' presence
    /// lists this long after the last refresh (nodes refresh three times per period).
    pub presence_ttl: Duration,
    /// A Redis command not answered within this is taken as Redis being unreachable.
    pub redis_timeout: Duration,
    /// Redis replicas that must hold an op before its author is acknowledged (0: the primary
    /// alone).
    pub replicas: u32,
    /// The CA certificates (PEM) that `rediss://` servers' certificates must be signed by;
    /// `None`: the system's CAs.
    pub redis_ca: Option<Vec<u8>>,
}

impl ClusterConfig {
    /// Production defaults for a cluster on the Redis at `redis_url`.
    pub fn new(redis_url: impl Into<String>) -> Self {
        Self::on(RedisAt::One(redis_url.into()))
    }

    /// Production defaults for a cluster on the Redis Cluster found from `seeds`.
    pub fn sharded(seeds: Vec<String>) -> Self {
        Self::on(RedisAt::Cluster(seeds))
    }

    fn on(redis: RedisAt) -> Self {
        Self {
            redis,
            secret: None,
            // Refreshed every ~3 s: a dead node's members are gone within about ten seconds,
            // while a few lost heartbeats do not make anyone flicker.
            presence_ttl: Duration::from_secs(10),
            // Redis answers in well under a millisecond on a healthy network; two seconds of
            // silence means it is gone or stuck, and writes should be refused, not queued.
            redis_timeout: Duration::from_secs(2),
            replicas: 0,
            redis_ca: None,
        }
    }
}

impl std::fmt::Debug for RedisAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisAt::One(_) => f.debug_tuple("One").field(&self.redacted()[0]).finish(),
            RedisAt::Cluster(_) => f.debug_tuple("Cluster").field(&self.redacted()).finish(),
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password and the secret mints links: neither goes to logs.
        f.debug_struct("ClusterConfig")
            .field("redis", &self.redis)
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("presence_ttl", &self.presence_ttl)
            .field("redis_timeout", &self.redis_timeout)
            .field("replicas", &self.replicas)
            .field("redis_ca", &self.redis_ca.as_ref().map(|_| "<given>"))
            .finish()
    }
}
