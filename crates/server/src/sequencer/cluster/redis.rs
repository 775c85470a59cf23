//! Everything that speaks to Redis: key names, Lua scripts, the command connection, the
//! pub/sub connection and the format of what travels on a room's channel. Nothing else in the
//! server names a Redis command.
//!
//! Keys of one room share the hash tag `{ROOM}`, so that in a Redis Cluster they live on one
//! shard and every script (which touches several of them) runs there:
//!
//! | key                      | type   | holds                                                  |
//! |--------------------------|--------|--------------------------------------------------------|
//! | `kokuban:{ROOM}:epoch`   | string | the room's history id (decimal u64); absent = lost      |
//! | `kokuban:{ROOM}:seq`     | string | the last seq given out in that history                 |
//! | `kokuban:{ROOM}:log`     | stream | one entry per op, id `<seq>-1`, fields `a` (author), `o` (op frame) |
//! | `kokuban:{ROOM}:snap`    | hash   | `epoch`, `seq`, `board`: the board as of `seq`          |
//! | `kokuban:{ROOM}:members` | hash   | member id → `<expiry ms>\|<node>\|<Joined frame>`       |
//! | `kokuban:{ROOM}:compact` | string | the compaction lock (random token, with expiry)         |
//! | channel `kokuban:{ROOM}` | pubsub | ops (`O…`), history resets (`E…`), presence/cursors (`P…`) |
//!
//! `kokuban:secret` holds the cluster's capability key when no `--secret` is given.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use kokuban_protocol::{Epoch, MemberId, RoomId, Seq};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, Script, ServerErrorKind, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The key holding the cluster's capability key.
const SECRET_KEY: &str = "kokuban:secret";
/// Log entries read per round trip when catching up: bounded replies keep Redis responsive
/// for everyone else while a node reads a long range.
pub(super) const READ_CHUNK: usize = 1000;
/// How often an idle command connection is checked, so that readiness and read-only mode
/// follow a Redis outage within about a second even when nobody writes.
const PING_EVERY: Duration = Duration::from_millis(500);
/// Bytes one round trip may carry (a pipeline of commands, or log entries read), at most. The
/// budget in force is halved after each round trip that missed the timeout and doubled back
/// after each that succeeded, so that on a slow link, which answers a big round trip only
/// after the timeout every time, round trips shrink until they fit and work still gets done.
pub(super) const MAX_ROUND_TRIP_BYTES: usize = 256 * 1024;
/// The smallest budget: one op, or one log entry, always goes.
const MIN_ROUND_TRIP_BYTES: usize = 4 * 1024;
/// First and last reconnect delay: quick for a blip, gentle on a Redis that is down.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Redis could not be reached, or did not answer in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Redis is unreachable: {0}")]
pub(super) struct Unreachable(pub String);

impl From<RedisError> for Unreachable {
    fn from(e: RedisError) -> Self {
        Unreachable(e.to_string())
    }
}

/// The names of one room's keys and channel.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    epoch: String,
    seq: String,
    log: String,
    snap: String,
    members: String,
    compact: String,
    /// The room's pub/sub channel.
    pub channel: String,
}

impl Keys {
    pub fn of(room: &RoomId) -> Keys {
        // Room ids are URL-safe base64, so they never contain the `{}` of a hash tag.
        let base = format!("kokuban:{{{room}}}");
        Keys {
            epoch: format!("{base}:epoch"),
            seq: format!("{base}:seq"),
            log: format!("{base}:log"),
            snap: format!("{base}:snap"),
            members: format!("{base}:members"),
            compact: format!("{base}:compact"),
            channel: base,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts. Each one is atomic: no other command of any node runs between its steps.

/// Gives an op its place: checks the history, increments the seq, appends to the capped log
/// and publishes, in one step, so that the order in the log, the order on the channel and the
/// seqs are the same order. Refuses (`lost`) when the history vanished or went back behind
/// what the node already delivered, and (`stale`) when the node's view is of an older history:
/// the node then re-seeds or reloads the room before anything else is sequenced.
static SEQUENCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS: epoch, seq, log. ARGV: expected epoch, node's head, author, op, log cap, channel.
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'lost'} end
if epoch ~= ARGV[1] then return {'stale'} end
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
if head < tonumber(ARGV[2]) then return {'lost'} end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], seq .. '-1', 'a', ARGV[3], 'o', ARGV[4])
redis.call('PUBLISH', ARGV[6], 'O' .. epoch .. '\n' .. seq .. '\n' .. ARGV[3] .. '\n' .. ARGV[4])
return {'ok', seq}
",
    )
});

/// Reads a room: its history id and head, optionally the snapshot and the presence hash, and
/// the log after a seq. One script, so that a compaction cannot trim the range between reading
/// the snapshot and reading the log after it.
static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS: epoch, seq, log, snap, members. ARGV: after ('' = the snapshot's seq), count, full,
-- bytes of entries at most (the first entry is returned whatever its size).
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {''} end
local seq = redis.call('GET', KEYS[2]) or '0'
local full = ARGV[3] == '1'
local snap = redis.call('HMGET', KEYS[4], 'epoch', 'seq', full and 'board' or 'seq')
local after = ARGV[1]
if after == '' then after = snap[2] or '0' end
local entries = redis.call('XRANGE', KEYS[3], '(' .. after .. '-1', '+', 'COUNT', ARGV[2])
local budget = tonumber(ARGV[4])
local size, kept = 0, {}
for i = 1, #entries do
  for _, f in ipairs(entries[i][2]) do size = size + #f end
  if i > 1 and size > budget then break end
  kept[i] = entries[i]
end
entries = kept
local members = {}
if full then members = redis.call('HGETALL', KEYS[5]) end
local t = redis.call('TIME')
return {epoch, seq, snap[1] or '', snap[2] or '', full and (snap[3] or '') or '', entries,
        members, t[1] * 1000 + math.floor(t[2] / 1000)}
",
    )
});

/// Starts a history. `init`: only if the room has none (creating a room, or opening one whose
/// history is gone). `reseed`: only if the history the node knows is still lost (absent, or
/// behind the node's head): of several nodes that notice a loss, the first one's board wins
/// and the others load it. Announces the new history on the channel.
static SEED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS: epoch, seq, log, snap. ARGV: mode, new epoch, board, known epoch, known head, channel.
local cur = redis.call('GET', KEYS[1])
if cur then
  if ARGV[1] == 'init' then return cur end
  local head = tonumber(redis.call('GET', KEYS[2]) or '0')
  if cur ~= ARGV[4] or head >= tonumber(ARGV[5]) then return cur end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], '0')
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('HSET', KEYS[4], 'epoch', ARGV[2], 'seq', '0', 'board', ARGV[3])
redis.call('PUBLISH', ARGV[6], 'E' .. ARGV[2])
return ARGV[2]
",
    )
});

/// Replaces the snapshot by a newer one and trims the log before it, keeping a margin so that
/// a node or client slightly behind can still read its gap from the log.
static COMPACT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS: epoch, snap, log. ARGV: epoch, seq, board, entries to keep before seq.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local at = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
local seq = tonumber(ARGV[2])
if at >= seq then return 0 end
redis.call('HSET', KEYS[2], 'epoch', ARGV[1], 'seq', ARGV[2], 'board', ARGV[3])
local keep_from = seq + 1 - tonumber(ARGV[4])
if keep_from > 1 then redis.call('XTRIM', KEYS[3], 'MINID', keep_from .. '-0') end
return 1
",
    )
});

/// Releases the compaction lock only if it is still ours (it may have expired and been taken).
static UNLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// Records a member (with an expiry) and tells the room, in one step, so that a node that
/// reads the hash after seeing the message finds the member there.
static ANNOUNCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS: members. ARGV: member, node, Joined frame, ttl ms, channel, message.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', KEYS[1], ARGV[1], (now + tonumber(ARGV[4])) .. '|' .. ARGV[2] .. '|' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 3)
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
",
    )
});

/// Forgets a member and tells the room.
static DEPART: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS: members. ARGV: member, channel, message.
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
",
    )
});

/// Refreshes this node's members, drops every member whose node stopped refreshing it, and
/// returns who is left. Expiry is per member (Redis 7.0 has no per-field TTL), judged by the
/// Redis clock so that the nodes' clocks do not matter.
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS: members. ARGV: ttl ms, node, then member/frame pairs of this node.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expiry = now + tonumber(ARGV[1])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], expiry .. '|' .. ARGV[2] .. '|' .. ARGV[i + 1])
end
if #ARGV > 2 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 3) end
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local until_ms = tonumber(string.match(all[i + 1], '^(%d+)|'))
  if until_ms and until_ms >= now then
    live[#live + 1] = all[i]
    live[#live + 1] = all[i + 1]
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return live
",
    )
});

fn all_scripts() -> [&'static Script; 8] {
    [
        &*SEQUENCE,
        &*READ,
        &*SEED,
        &*COMPACT,
        &*UNLOCK,
        &*ANNOUNCE,
        &*DEPART,
        &*HEARTBEAT,
    ]
}

// ---------------------------------------------------------------------------------------------
// What travels on a room's channel.

/// A message from a room's channel.
#[derive(Debug, Clone)]
pub(super) enum Inbound {
    /// A sequenced op: `op` is the author's encoded `ClientMsg::Op`.
    Op {
        epoch: Epoch,
        seq: Seq,
        author: MemberId,
        op: Bytes,
    },
    /// The room's history was replaced.
    Reset,
    /// A presence or cursor frame from another node, to forward as it is.
    Ephemeral { node: u64, frame: Bytes },
}

/// The `P` message for a presence or cursor frame from `node`.
pub(super) fn ephemeral_message(node: u64, frame: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(17 + frame.len());
    m.push(b'P');
    m.extend_from_slice(format!("{node:016x}").as_bytes());
    m.extend_from_slice(frame);
    m
}

fn parse_inbound(payload: &[u8]) -> Option<Inbound> {
    let (&kind, rest) = payload.split_first()?;
    match kind {
        b'O' => {
            let mut parts = rest.splitn(4, |&b| b == b'\n');
            let epoch = parse_u64(parts.next()?)?;
            let seq = parse_u64(parts.next()?)?;
            let author = parse_u64(parts.next()?)?;
            let op = Bytes::copy_from_slice(parts.next()?);
            Some(Inbound::Op {
                epoch: Epoch(epoch),
                seq: Seq(seq),
                author: MemberId(author),
                op,
            })
        }
        b'E' => Some(Inbound::Reset),
        b'P' if rest.len() >= 16 => {
            let node = u64::from_str_radix(std::str::from_utf8(&rest[..16]).ok()?, 16).ok()?;
            Some(Inbound::Ephemeral {
                node,
                frame: Bytes::copy_from_slice(&rest[16..]),
            })
        }
        _ => None,
    }
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Replies.

fn as_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => parse_u64(as_bytes(other)?),
    }
}

fn as_array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) => Some(a),
        _ => None,
    }
}

fn malformed(what: &str) -> Unreachable {
    Unreachable(format!("unexpected reply to {what}"))
}

/// One op from the log.
#[derive(Debug, Clone)]
pub(super) struct LogEntry {
    pub seq: Seq,
    pub author: MemberId,
    pub op: Bytes,
}

/// A member as another node announced it.
#[derive(Debug, Clone)]
pub(super) struct Announced {
    pub member: MemberId,
    pub node: u64,
    /// The `Presence(Joined)` frame its node encoded.
    pub frame: Bytes,
}

/// A room as read from Redis.
#[derive(Debug)]
pub(super) struct RoomRead {
    /// The history (`None`: the room has none, it was lost or never created).
    pub epoch: Option<Epoch>,
    /// The last seq given out.
    pub head: Seq,
    /// The snapshot's history, seq and (when asked for) board.
    pub snapshot: Option<(Epoch, Seq, Bytes)>,
    /// Log entries after the seq asked for, in order, at most a chunk.
    pub entries: Vec<LogEntry>,
    /// Members whose expiry has not passed (when asked for).
    pub members: Vec<Announced>,
}

fn parse_entries(v: &Value) -> Option<Vec<LogEntry>> {
    let mut out = Vec::new();
    for e in as_array(v)? {
        let [id, fields] = as_array(e)? else {
            return None;
        };
        let id = std::str::from_utf8(as_bytes(id)?).ok()?;
        let seq = id.split_once('-')?.0.parse().ok()?;
        let fields = as_array(fields)?;
        let (mut author, mut op) = (None, None);
        for pair in fields.chunks(2) {
            if let [k, v] = pair {
                match as_bytes(k)? {
                    b"a" => author = as_u64(v),
                    b"o" => op = as_bytes(v).map(Bytes::copy_from_slice),
                    _ => {}
                }
            }
        }
        out.push(LogEntry {
            seq: Seq(seq),
            author: MemberId(author?),
            op: op?,
        });
    }
    Some(out)
}

/// Parses `member → expiry|node|frame` pairs, keeping those alive at `now_ms` (all, if `None`).
fn parse_members(v: &Value, now_ms: Option<u64>) -> Option<Vec<Announced>> {
    let mut out = Vec::new();
    for pair in as_array(v)?.chunks(2) {
        let [field, value] = pair else { return None };
        let member = MemberId(as_u64(field)?);
        let value = as_bytes(value)?;
        let mut parts = value.splitn(3, |&b| b == b'|');
        let expiry = parse_u64(parts.next()?)?;
        let node = u64::from_str_radix(std::str::from_utf8(parts.next()?).ok()?, 16).ok()?;
        let frame = Bytes::copy_from_slice(parts.next()?);
        if now_ms.is_some_and(|now| expiry < now) {
            continue;
        }
        out.push(Announced {
            member,
            node,
            frame,
        });
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Commands the room's writer sends, in order, pipelined.

/// One command of a room's ordered writer.
#[derive(Debug)]
pub(super) enum Command {
    /// Sequence an op (`op`: the encoded `ClientMsg::Op`), if the history is still `epoch`
    /// and not behind `head`.
    Sequence {
        epoch: Epoch,
        head: Seq,
        author: MemberId,
        op: Vec<u8>,
    },
    /// A member of this node joined or changed its profile (`frame`: its `Joined` or `Updated`
    /// presence frame; `joined`: its `Joined` frame, kept in the hash).
    Announce {
        member: MemberId,
        joined: Bytes,
        frame: Bytes,
    },
    /// A member of this node left (`frame`: its `Left` presence frame).
    Depart { member: MemberId, frame: Bytes },
    /// An ephemeral frame for the other nodes (a cursor).
    Publish { frame: Bytes },
    /// Refresh this node's members (id, `Joined` frame) and list everyone's.
    Heartbeat { members: Vec<(MemberId, Bytes)> },
}

/// What became of one [`Command`].
#[derive(Debug)]
pub(super) enum Outcome {
    /// The op has this seq in the history it was sent for.
    Sequenced(Seq),
    /// The node's view of the history is outdated: not sequenced.
    Stale,
    /// The history is gone or went back: not sequenced.
    Lost,
    /// Done (announce, depart, publish).
    Done,
    /// The members of the room on every node.
    Members(Vec<Announced>),
    /// Redis refused it (e.g. out of memory): not done.
    Refused(String),
}

// ---------------------------------------------------------------------------------------------
// The command connection.

/// Jittered exponential backoff, so that nodes that lost Redis together do not reconnect in
/// lockstep.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(BACKOFF_MIN)
    }

    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        d.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

/// A multiplexed connection for commands (many in flight at once, answers in order), kept
/// open by a background task that pings it and reconnects with backoff.
pub(super) struct Db {
    client: Client,
    /// The connection and its generation (so that a failure seen on an old connection does
    /// not tear down a new one).
    conn: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    up: watch::Sender<bool>,
    /// Set once an outage has been logged, so that it is logged once.
    logged_down: AtomicBool,
    kick: tokio::sync::Notify,
    timeout: Duration,
    log_cap: usize,
    presence_ttl: Duration,
    /// The capability key read from Redis, written back (if missing) on every reconnect, so
    /// that a Redis that restarted empty hands later nodes the key the running ones use.
    key: std::sync::OnceLock<[u8; 32]>,
    metrics: Arc<Metrics>,
    /// Bytes a round trip may carry now (see [`MAX_ROUND_TRIP_BYTES`]).
    budget: std::sync::atomic::AtomicUsize,
    /// This process's id on the room channels (random per start).
    pub node: u64,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("up", &*self.up.borrow())
            .field("node", &format_args!("{:016x}", self.node))
            .finish_non_exhaustive()
    }
}

impl Db {
    pub fn new(
        url: &str,
        timeout: Duration,
        log_cap: usize,
        presence_ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Db, Unreachable> {
        let client = Client::open(url).map_err(|e| Unreachable(format!("bad Redis URL: {e}")))?;
        Ok(Db {
            client,
            conn: Mutex::new(None),
            generation: AtomicU64::new(0),
            up: watch::channel(false).0,
            logged_down: AtomicBool::new(false),
            kick: tokio::sync::Notify::new(),
            timeout,
            log_cap,
            presence_ttl,
            key: std::sync::OnceLock::new(),
            metrics,
            budget: std::sync::atomic::AtomicUsize::new(MAX_ROUND_TRIP_BYTES),
            node: rand::random(),
        })
    }

    fn slot(&self) -> MutexGuard<'_, Option<(u64, MultiplexedConnection)>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes a pipeline or a read of the log may carry now.
    pub fn budget(&self) -> usize {
        self.budget.load(Ordering::Relaxed)
    }

    /// A round trip that carried up to the budget came back in time: allow more.
    fn widen(&self) {
        let _ = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((b * 2).min(MAX_ROUND_TRIP_BYTES))
            });
    }

    /// A round trip did not come back in time: allow less.
    fn narrow(&self) {
        let _ = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((b / 2).max(MIN_ROUND_TRIP_BYTES))
            });
    }

    /// Whether the command connection is up (writes are accepted only then).
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Resolves once the command connection is up (or at once if it is).
    pub async fn wait_up(&self) {
        let mut rx = self.up.subscribe();
        let _ = rx.wait_for(|up| *up).await;
    }

    fn connection(&self) -> Result<(u64, MultiplexedConnection), Unreachable> {
        self.slot()
            .clone()
            .ok_or_else(|| Unreachable("not connected".into()))
    }

    /// Drops the connection `generation` after a failure on it; the maintenance task
    /// reconnects.
    fn fail(&self, generation: u64, why: &str) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
            *slot = None;
            drop(slot);
            self.up.send_replace(false);
            self.metrics
                .redis_disconnects
                .fetch_add(1, Ordering::Relaxed);
            if !self.logged_down.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "Redis connection lost ({why}); rooms are read-only until it is back"
                );
            }
            self.kick.notify_one();
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // Loaded on every new connection (Redis forgets scripts when it restarts), so that
        // pipelined EVALSHAs, which cannot fall back to EVAL one by one, find them.
        let mut pipe = redis::pipe();
        for s in all_scripts() {
            pipe.load_script(s);
        }
        if let Some(key) = self.key.get() {
            pipe.cmd("SET")
                .arg(SECRET_KEY)
                .arg(&key[..])
                .arg("NX")
                .ignore();
        }
        pipe.query_async::<Vec<String>>(&mut conn).await?;
        Ok(conn)
    }

    /// Keeps the command connection open until `stop`: pings it, and reconnects with backoff.
    pub async fn maintain(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Backoff::new();
        loop {
            let current = self.slot().clone();
            if let Some((generation, mut conn)) = current {
                let ping = tokio::time::timeout(
                    self.timeout,
                    redis::cmd("PING").query_async::<String>(&mut conn),
                )
                .await;
                match ping {
                    Ok(Ok(_)) => {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(PING_EVERY) => {}
                            _ = self.kick.notified() => {}
                        }
                        continue;
                    }
                    Ok(Err(e)) => self.fail(generation, &e.to_string()),
                    Err(_) => self.fail(generation, "no answer in time"),
                }
            }
            if stop.is_cancelled() {
                return;
            }
            let attempt = tokio::select! {
                _ = stop.cancelled() => return,
                c = tokio::time::timeout(self.timeout, self.connect()) => c,
            };
            match attempt {
                Ok(Ok(conn)) => {
                    let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                    *self.slot() = Some((generation, conn));
                    backoff = Backoff::new();
                    if self.logged_down.swap(false, Ordering::Relaxed) {
                        tracing::info!("Redis connection restored");
                    } else {
                        tracing::debug!("Redis command connection open");
                    }
                    self.up.send_replace(true);
                }
                failed => {
                    if !self.logged_down.swap(true, Ordering::Relaxed) {
                        let why = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "no answer in time".into(),
                        };
                        tracing::warn!("cannot reach Redis ({why}); retrying with backoff");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next()) => {}
                    }
                }
            }
        }
    }

    /// Runs `f` on the connection within the timeout; a failure of the connection (not a
    /// refusal by Redis) marks it down.
    async fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    ) -> Result<T, Unreachable> {
        let (generation, mut conn) = self.connection()?;
        match tokio::time::timeout(self.timeout, f(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                {
                    self.fail(generation, &e.to_string());
                }
                Err(e.into())
            }
            Err(_) => {
                self.fail(generation, "no answer in time");
                Err(Unreachable("no answer in time".into()))
            }
        }
    }

    /// Runs a room writer's commands as one pipeline: one round trip for all of them, executed
    /// by Redis in order. `Err` means the answers were lost: any of the commands may or may
    /// not have run.
    /// `bytes`: what the commands weigh; only a pipeline that used most of the budget shows
    /// that the link carries more.
    pub async fn execute(
        &self,
        keys: &Keys,
        commands: &[&Command],
        bytes: usize,
    ) -> Result<Vec<Outcome>, Unreachable> {
        let mut outcomes = match self.execute_once(keys, commands, false).await {
            Ok(o) => {
                if bytes * 2 >= self.budget() {
                    self.widen();
                }
                o
            }
            Err(e) => {
                self.narrow();
                return Err(e);
            }
        };
        // Only an operator's SCRIPT FLUSH gets here (every new connection loads the scripts):
        // run again, after loading them, exactly the commands that found no script.
        let missing: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)))
            .map(|(i, _)| i)
            .collect();
        if !missing.is_empty() {
            let again: Vec<&Command> = missing.iter().map(|&i| commands[i]).collect();
            let redone = self.execute_once(keys, &again, true).await?;
            for (i, o) in missing.into_iter().zip(redone) {
                outcomes[i] = o;
            }
        }
        Ok(outcomes
            .into_iter()
            .zip(commands)
            .map(|(r, c)| match r {
                Ok(v) => {
                    outcome(c, &v).unwrap_or_else(|| Outcome::Refused("unexpected reply".into()))
                }
                Err(e) => Outcome::Refused(e.to_string()),
            })
            .collect())
    }

    async fn execute_once(
        &self,
        keys: &Keys,
        commands: &[&Command],
        load_first: bool,
    ) -> Result<Vec<Result<Value, RedisError>>, Unreachable> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        if load_first {
            for s in all_scripts() {
                pipe.load_script(s).ignore();
            }
        }
        let node = format!("{:016x}", self.node);
        let ttl = self.presence_ttl.as_millis().to_string();
        for c in commands {
            match c {
                Command::Sequence {
                    epoch,
                    head,
                    author,
                    op,
                } => pipe.invoke_script(
                    SEQUENCE
                        .prepare_invoke()
                        .key(&keys.epoch)
                        .key(&keys.seq)
                        .key(&keys.log)
                        .arg(epoch.0.to_string())
                        .arg(head.0.to_string())
                        .arg(author.0.to_string())
                        .arg(&op[..])
                        .arg(self.log_cap)
                        .arg(&keys.channel),
                ),
                Command::Announce {
                    member,
                    joined,
                    frame,
                } => pipe.invoke_script(
                    ANNOUNCE
                        .prepare_invoke()
                        .key(&keys.members)
                        .arg(member.0.to_string())
                        .arg(&node)
                        .arg(&joined[..])
                        .arg(&ttl)
                        .arg(&keys.channel)
                        .arg(ephemeral_message(self.node, frame)),
                ),
                Command::Depart { member, frame } => pipe.invoke_script(
                    DEPART
                        .prepare_invoke()
                        .key(&keys.members)
                        .arg(member.0.to_string())
                        .arg(&keys.channel)
                        .arg(ephemeral_message(self.node, frame)),
                ),
                Command::Publish { frame } => pipe
                    .cmd("PUBLISH")
                    .arg(&keys.channel)
                    .arg(ephemeral_message(self.node, frame)),
                Command::Heartbeat { members } => {
                    let mut inv = HEARTBEAT.prepare_invoke();
                    inv.key(&keys.members).arg(&ttl).arg(&node);
                    for (id, frame) in members {
                        inv.arg(id.0.to_string()).arg(&frame[..]);
                    }
                    pipe.invoke_script(&inv)
                }
            };
        }
        self.run(async |conn| {
            pipe.query_async::<Vec<Result<Value, RedisError>>>(conn)
                .await
        })
        .await
    }

    /// Reads a room: after `after` (or from its snapshot when `None`, with the snapshot's
    /// board and the live members).
    pub async fn read_room(
        &self,
        keys: &Keys,
        after: Option<Seq>,
    ) -> Result<RoomRead, Unreachable> {
        let full = after.is_none();
        let reply: Value = self
            .run(async |conn| {
                READ.prepare_invoke()
                    .key(&keys.epoch)
                    .key(&keys.seq)
                    .key(&keys.log)
                    .key(&keys.snap)
                    .key(&keys.members)
                    .arg(after.map(|s| s.0.to_string()).unwrap_or_default())
                    .arg(READ_CHUNK)
                    .arg(if full { "1" } else { "0" })
                    .arg(self.budget())
                    .invoke_async(conn)
                    .await
            })
            .await
            .inspect_err(|_| self.narrow())?;
        let parts = as_array(&reply).ok_or_else(|| malformed("READ"))?;
        let epoch = parts
            .first()
            .and_then(as_bytes)
            .ok_or_else(|| malformed("READ"))?;
        if epoch.is_empty() {
            return Ok(RoomRead {
                epoch: None,
                head: Seq(0),
                snapshot: None,
                entries: Vec::new(),
                members: Vec::new(),
            });
        }
        let parse = || -> Option<RoomRead> {
            let [
                epoch,
                head,
                snap_epoch,
                snap_seq,
                board,
                entries,
                members,
                now,
            ] = parts
            else {
                return None;
            };
            let snapshot = match (as_u64(snap_epoch), as_u64(snap_seq)) {
                (Some(e), Some(s)) => {
                    Some((Epoch(e), Seq(s), Bytes::copy_from_slice(as_bytes(board)?)))
                }
                _ => None,
            };
            Some(RoomRead {
                epoch: Some(Epoch(as_u64(epoch)?)),
                head: Seq(as_u64(head)?),
                snapshot,
                entries: parse_entries(entries)?,
                members: parse_members(members, Some(as_u64(now)?))?,
            })
        };
        parse().ok_or_else(|| malformed("READ"))
    }

    /// Starts the history `epoch` with `board` (see the SEED script). `known` is the history
    /// the node holds (`None`: it holds none and the room is only to be created if missing).
    /// Returns the room's history afterwards, which is `epoch` only if this call set it.
    pub async fn seed(
        &self,
        keys: &Keys,
        epoch: Epoch,
        board: &[u8],
        known: Option<(Epoch, Seq)>,
    ) -> Result<Epoch, Unreachable> {
        let (mode, known_epoch, known_head) = match known {
            None => ("init", String::new(), String::new()),
            Some((e, s)) => ("reseed", e.0.to_string(), s.0.to_string()),
        };
        let reply: Value = self
            .run(async |conn| {
                SEED.prepare_invoke()
                    .key(&keys.epoch)
                    .key(&keys.seq)
                    .key(&keys.log)
                    .key(&keys.snap)
                    .arg(mode)
                    .arg(epoch.0.to_string())
                    .arg(board)
                    .arg(known_epoch)
                    .arg(known_head)
                    .arg(&keys.channel)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        as_u64(&reply).map(Epoch).ok_or_else(|| malformed("SEED"))
    }

    /// Takes the room's compaction lock for `ttl`, if nobody holds it.
    pub async fn lock_compaction(
        &self,
        keys: &Keys,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, Unreachable> {
        let reply: Value = self
            .run(async |conn| {
                redis::cmd("SET")
                    .arg(&keys.compact)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis() as u64)
                    .query_async(conn)
                    .await
            })
            .await?;
        Ok(matches!(reply, Value::Okay))
    }

    /// Releases the compaction lock if it is still `token`'s.
    pub async fn unlock_compaction(&self, keys: &Keys, token: &str) -> Result<(), Unreachable> {
        self.run(async |conn| {
            UNLOCK
                .prepare_invoke()
                .key(&keys.compact)
                .arg(token)
                .invoke_async::<Value>(conn)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Stores `board` as the snapshot at `(epoch, seq)` and trims the log before it but
    /// `keep` entries. False if the history changed or a newer snapshot is there.
    pub async fn compact(
        &self,
        keys: &Keys,
        epoch: Epoch,
        seq: Seq,
        board: &[u8],
        keep: usize,
    ) -> Result<bool, Unreachable> {
        let reply: Value = self
            .run(async |conn| {
                COMPACT
                    .prepare_invoke()
                    .key(&keys.epoch)
                    .key(&keys.snap)
                    .key(&keys.log)
                    .arg(epoch.0.to_string())
                    .arg(seq.0.to_string())
                    .arg(board)
                    .arg(keep)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        Ok(as_u64(&reply) == Some(1))
    }

    /// The cluster's capability key: the first node to start stores a random one, every node
    /// reads the one stored.
    pub async fn shared_key(&self) -> Result<[u8; 32], Unreachable> {
        let candidate: [u8; 32] = rand::random();
        let stored: Vec<u8> = self
            .run(async |conn| {
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(SECRET_KEY)
                    .arg(&candidate[..])
                    .arg("NX")
                    .ignore()
                    .cmd("GET")
                    .arg(SECRET_KEY);
                let (stored,): (Vec<u8>,) = pipe.query_async(conn).await?;
                Ok(stored)
            })
            .await?;
        let key: [u8; 32] = stored
            .try_into()
            .map_err(|_| Unreachable(format!("{SECRET_KEY} does not hold a 32-byte key")))?;
        let _ = self.key.set(key);
        Ok(key)
    }

    /// Whether Redis keeps an append-only file (`None`: it would not say).
    pub async fn append_only(&self) -> Option<bool> {
        let info: String = self
            .run(async |conn| {
                redis::cmd("INFO")
                    .arg("persistence")
                    .query_async(conn)
                    .await
            })
            .await
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("aof_enabled:"))
            .map(|v| v.trim() == "1")
    }

    /// Checks the connection now rather than at the next ping (another connection to the
    /// same Redis just failed).
    pub fn check_now(&self) {
        self.kick.notify_one();
    }
}

fn outcome(command: &Command, v: &Value) -> Option<Outcome> {
    Some(match command {
        Command::Sequence { .. } => {
            let parts = as_array(v)?;
            match as_bytes(parts.first()?)? {
                b"ok" => Outcome::Sequenced(Seq(as_u64(parts.get(1)?)?)),
                b"stale" => Outcome::Stale,
                b"lost" => Outcome::Lost,
                _ => return None,
            }
        }
        Command::Heartbeat { .. } => Outcome::Members(parse_members(v, None)?),
        Command::Announce { .. } | Command::Depart { .. } | Command::Publish { .. } => {
            Outcome::Done
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The pub/sub connection.

/// Where a room's channel messages go.
pub(super) struct Route {
    /// This load of the room (a room unloaded and loaded again gets a new one).
    pub serial: u64,
    /// The room's inbox. Bounded: when it is full the message is dropped and `resync` called,
    /// and the room reads what it missed from the log.
    pub inbox: mpsc::Sender<Inbound>,
    /// Tells the room that messages may have been missed (a reconnect, a full inbox).
    pub resync: Arc<dyn Fn() + Send + Sync>,
}

struct RouteSlot {
    route: Route,
    /// Fires when the subscription is confirmed for the first time.
    confirmed: Option<oneshot::Sender<()>>,
}

/// The node's one pub/sub connection: it subscribes to exactly the channels of the rooms this
/// node holds (never a pattern, so it receives only its rooms' traffic), in batches.
pub(super) struct Subscriber {
    client: Client,
    routes: Mutex<HashMap<String, RouteSlot>>,
    requests: mpsc::UnboundedSender<String>,
    up: watch::Sender<bool>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("up", &*self.up.borrow())
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// The subscriber and the receiver its task needs.
    pub fn new(
        url: &str,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<(Subscriber, mpsc::UnboundedReceiver<String>), Unreachable> {
        let client = Client::open(url).map_err(|e| Unreachable(format!("bad Redis URL: {e}")))?;
        let (requests, rx) = mpsc::unbounded_channel();
        Ok((
            Subscriber {
                client,
                routes: Mutex::new(HashMap::new()),
                requests,
                up: watch::channel(false).0,
                timeout,
                metrics,
            },
            rx,
        ))
    }

    fn routes(&self) -> MutexGuard<'_, HashMap<String, RouteSlot>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the pub/sub connection is up.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Routes `channel` to `route` and subscribes; resolves once Redis confirmed it, so that
    /// whatever is published from then on reaches the route.
    pub async fn subscribe(&self, channel: &str, route: Route) -> Result<(), Unreachable> {
        let (tx, rx) = oneshot::channel();
        self.routes().insert(
            channel.to_owned(),
            RouteSlot {
                route,
                confirmed: Some(tx),
            },
        );
        let _ = self.requests.send(channel.to_owned());
        match tokio::time::timeout(self.timeout * 2, rx).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Unreachable(
                "the subscription was not confirmed in time".into(),
            )),
        }
    }

    /// Stops routing `channel` (if it still belongs to the room load `serial`) and
    /// unsubscribes.
    pub fn unsubscribe(&self, channel: &str, serial: u64) {
        let mut routes = self.routes();
        if routes
            .get(channel)
            .is_some_and(|r| r.route.serial == serial)
        {
            routes.remove(channel);
            drop(routes);
            let _ = self.requests.send(channel.to_owned());
        }
    }

    fn deliver(&self, msg: &redis::Msg) {
        let Some(inbound) = parse_inbound(msg.get_payload_bytes()) else {
            tracing::warn!(
                channel = msg.get_channel_name(),
                "unreadable channel message ignored"
            );
            return;
        };
        let routes = self.routes();
        let Some(slot) = routes.get(msg.get_channel_name()) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = slot.route.inbox.try_send(inbound) {
            (slot.route.resync)();
        }
    }

    /// Keeps the pub/sub connection open until `stop`: reconnects with backoff, resubscribes
    /// every routed channel in one command, tells every room to catch up from its log, and
    /// batches the (un)subscriptions asked for meanwhile.
    pub async fn run(
        self: Arc<Self>,
        mut requests: mpsc::UnboundedReceiver<String>,
        db: Arc<Db>,
        stop: CancellationToken,
    ) {
        let mut backoff = Backoff::new();
        let mut logged_down = false;
        loop {
            let connected = tokio::select! {
                _ = stop.cancelled() => return,
                c = tokio::time::timeout(self.timeout, self.client.get_async_pubsub()) => c,
            };
            let pubsub = match connected {
                Ok(Ok(p)) => p,
                failed => {
                    if !logged_down {
                        logged_down = true;
                        let why = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "no answer in time".into(),
                        };
                        tracing::warn!("cannot open the Redis subscription ({why}); retrying");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next()) => {}
                    }
                    continue;
                }
            };
            let (mut sink, mut stream) = pubsub.split();
            // Requests queued while disconnected are covered by the full resubscription.
            while requests.try_recv().is_ok() {}
            let channels: Vec<String> = self.routes().keys().cloned().collect();
            if !channels.is_empty() {
                let subscribed =
                    tokio::time::timeout(self.timeout, sink.subscribe(&channels)).await;
                if !matches!(subscribed, Ok(Ok(()))) {
                    tokio::time::sleep(backoff.next()).await;
                    continue;
                }
            }
            backoff = Backoff::new();
            if std::mem::take(&mut logged_down) {
                tracing::info!(rooms = channels.len(), "Redis subscription restored");
            }
            self.up.send_replace(true);
            self.confirm(&channels, true);
            // A subscription only receives: if the path to Redis dies without a FIN (a
            // partition, a vanished host), nothing ever says so and the node would wait
            // forever for messages that go elsewhere. A ping answered in time proves it alive.
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ping.reset();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => {
                        self.up.send_replace(false);
                        return;
                    }
                    msg = stream.next() => match msg {
                        Some(m) => self.deliver(&m),
                        None => break,
                    },
                    _ = ping.tick() => {
                        let pong = tokio::time::timeout(self.timeout, sink.ping::<Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            break;
                        }
                    }
                    Some(first) = requests.recv() => {
                        let mut asked = vec![first];
                        while let Ok(c) = requests.try_recv() {
                            asked.push(c);
                        }
                        asked.sort();
                        asked.dedup();
                        let (sub, unsub): (Vec<String>, Vec<String>) = {
                            let routes = self.routes();
                            asked.into_iter().partition(|c| routes.contains_key(c))
                        };
                        if !sub.is_empty() {
                            match tokio::time::timeout(self.timeout, sink.subscribe(&sub)).await {
                                Ok(Ok(())) => self.confirm(&sub, false),
                                _ => break,
                            }
                        }
                        if !unsub.is_empty()
                            && !matches!(
                                tokio::time::timeout(self.timeout, sink.unsubscribe(&unsub)).await,
                                Ok(Ok(()))
                            )
                        {
                            break;
                        }
                    }
                }
            }
            self.up.send_replace(false);
            self.metrics
                .redis_disconnects
                .fetch_add(1, Ordering::Relaxed);
            logged_down = true;
            tracing::warn!("Redis subscription lost; resubscribing");
            // Redis may be gone altogether: writes must be refused at once, not after a ping.
            db.check_now();
        }
    }

    /// After a subscription to `channels` was confirmed: rooms waiting for their first one
    /// proceed; on a reconnect (`resubscribed`), every other room may have missed messages.
    fn confirm(&self, channels: &[String], resubscribed: bool) {
        let mut routes = self.routes();
        for c in channels {
            if let Some(slot) = routes.get_mut(c) {
                match slot.confirmed.take() {
                    Some(tx) => {
                        let _ = tx.send(());
                    }
                    None if resubscribed => (slot.route.resync)(),
                    None => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_room_share_one_hash_tag() {
        let k = Keys::of(&RoomId::new("abc_DEF-1").unwrap());
        for key in [
            &k.epoch, &k.seq, &k.log, &k.snap, &k.members, &k.compact, &k.channel,
        ] {
            assert!(key.starts_with("kokuban:{abc_DEF-1}"), "{key}");
        }
    }

    #[test]
    fn channel_messages_parse() {
        let m = parse_inbound(b"O12\n7\n99\n\x01\x02\n\x03").unwrap();
        let Inbound::Op {
            epoch,
            seq,
            author,
            op,
        } = m
        else {
            panic!()
        };
        assert_eq!((epoch, seq, author), (Epoch(12), Seq(7), MemberId(99)));
        assert_eq!(&op[..], b"\x01\x02\n\x03");
        assert!(matches!(parse_inbound(b"E5"), Some(Inbound::Reset)));
        let p = ephemeral_message(0xabc, b"frame");
        let Some(Inbound::Ephemeral { node, frame }) = parse_inbound(&p) else {
            panic!()
        };
        assert_eq!((node, &frame[..]), (0xabc, &b"frame"[..]));
        assert!(parse_inbound(b"Ox\n1\n2\n").is_none());
        assert!(parse_inbound(b"").is_none());
    }

    #[test]
    fn member_entries_parse_and_expire() {
        let v = Value::Array(vec![
            Value::BulkString(b"5".to_vec()),
            Value::BulkString(b"1000|00000000000000ff|J".to_vec()),
            Value::BulkString(b"6".to_vec()),
            Value::BulkString(b"3000|0000000000000001|K|x".to_vec()),
        ]);
        let live = parse_members(&v, Some(2000)).unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].member, MemberId(6));
        assert_eq!(live[0].node, 1);
        assert_eq!(&live[0].frame[..], b"K|x");
        assert_eq!(parse_members(&v, None).unwrap().len(), 2);
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new();
        let delays: Vec<_> = (0..12).map(|_| b.next()).collect();
        assert!(delays[0] <= BACKOFF_MIN);
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX));
        assert!(delays[11] >= BACKOFF_MAX / 2);
    }
}
