//! The Lua scripts, each in its own file. Each runs atomically: no other command of any node
//! runs between its steps. Every key a script touches is passed in `KEYS` and shares the room's
//! hash tag, so in a Redis Cluster each script runs on the room's shard.

use std::sync::LazyLock;

use redis::Script;

/// Gives an op its place: checks the history, increments the seq, appends to the capped log
/// and publishes, in one step, so that the order in the log, the order on the channel and the
/// seqs are the same order. Refuses (`lost`) when the history vanished or went back behind
/// what the node already delivered, and (`stale`) when the node's view is of an older history:
/// the node then re-seeds or reloads the room before anything else is sequenced.
///
/// Exactly once: an op numbered at or below the last number its author applied is not applied
/// again; a retry of a recent one gets its first place (`dup`), anything older `decided`.
/// A refusal is final: each op carries a deadline on Redis's clock, and one that arrives after
/// it (a pipeline the node gave up on, delivered late) is refused (`late`); the node tells its
/// author "refused" only once Redis's clock has passed that deadline.
pub(super) static SEQUENCE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/sequence.lua")));

/// Reads a room: its history id and head, optionally the snapshot, the presence hash and the
/// authors' last op numbers, the log entry at a seq and the log after it, and Redis's clock.
/// One script, so that a compaction cannot trim the range between reading the snapshot and
/// reading the log after it.
pub(super) static READ: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/read.lua")));

/// Starts a history. `init`: only if the room has none (creating a room, or opening one whose
/// history is gone). `reseed`: only if the history the node knows is still lost (absent, or
/// behind the node's head): of several nodes that notice a loss, the first one's board wins
/// and the others load it. `fork`: only if the history is still the one the node knows, which
/// went back in time under it (Redis restarted from older data). Announces the new history on
/// the channel. The authors' op numbers are kept: an op decided once is never applied again.
pub(super) static SEED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/seed.lua")));

/// Replaces the snapshot by a newer one and trims the log before it, keeping a margin so that
/// a node or client slightly behind can still read its gap from the log.
pub(super) static COMPACT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/compact.lua")));

/// Releases the compaction lock only if it is still ours (it may have expired and been taken).
pub(super) static UNLOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/unlock.lua")));

/// Records a member (with an expiry) and tells the room, in one step, so that a node that
/// reads the hash after seeing the message finds the member there.
pub(super) static ANNOUNCE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/announce.lua")));

/// Forgets a member and tells the room.
pub(super) static DEPART: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/depart.lua")));

/// Refreshes this node's members, drops every member whose node stopped refreshing it, and
/// returns who is left. Expiry is per member (Redis 7.0 has no per-field TTL), judged by the
/// Redis clock so that the nodes' clocks do not matter.
pub(super) static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/heartbeat.lua")));

/// Advances a room's link generation and tells every node holding the room, in one step, so
/// that no node hears of a generation Redis does not hold.
pub(super) static LINKS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/links.lua")));

/// Keeps a version of a room's board once per place (every node holding the room decides
/// alike when one is due), within the room's retention.
pub(super) static CHECKPOINT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/checkpoint.lua")));

/// Lets view links read a room's versions, or not, if the room exists.
pub(super) static HISTORY_ACCESS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/history_access.lua")));

/// Keeps an image of a room once per hash, within the room's budget, and counts its bytes, in
/// one step: two nodes storing at once can neither pass the budget nor count an image twice.
pub(super) static BLOB: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/blob.lua")));

/// Every script, to load on each new connection.
pub(super) fn all() -> [&'static Script; 12] {
    [
        &*SEQUENCE,
        &*READ,
        &*SEED,
        &*COMPACT,
        &*UNLOCK,
        &*ANNOUNCE,
        &*DEPART,
        &*HEARTBEAT,
        &*LINKS,
        &*CHECKPOINT,
        &*HISTORY_ACCESS,
        &*BLOB,
    ]
}
