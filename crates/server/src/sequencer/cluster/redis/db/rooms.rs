//! What a node asks of a room's keys beyond sequencing ops: reading the room (from its
//! snapshot or after a seq), seeding a new room, its links' generation, and compaction, each
//! one script run through the command connection.

use std::time::Duration;

use bytes::Bytes;
use kokuban_protocol::{Epoch, Seq};
use redis::Value;

use super::super::keys::Keys;
use super::super::scripts::{CHECKPOINT, COMPACT, HISTORY_ACCESS, LINKS, READ, SEED, UNLOCK};
use super::super::wire::{
    RoomRead, as_array, as_bytes, as_u64, malformed, parse_authors, parse_entries, parse_members,
};
use super::super::{READ_CHUNK, Unreachable};
use super::{Db, Seed};
use crate::sequencer::room::{Checkpoint, CheckpointInfo, Reason, Retention};

impl Db {
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
                    .key(&keys.authors)
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
            let now_ms = parts.get(1).and_then(as_u64).unwrap_or(0);
            self.observe_clock(now_ms);
            return Ok(RoomRead {
                epoch: None,
                head: Seq(0),
                snapshot: None,
                entries: Vec::new(),
                members: Vec::new(),
                authors: Vec::new(),
                at: None,
                now_ms,
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
                at,
                authors,
            ] = parts
            else {
                return None;
            };
            let now_ms = as_u64(now)?;
            self.observe_clock(now_ms);
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
                members: parse_members(members, Some(now_ms))?,
                authors: parse_authors(authors)?,
                at: parse_entries(at)?.first().map(|e| (e.author, e.n)),
                now_ms,
            })
        };
        parse().ok_or_else(|| malformed("READ"))
    }

    /// Starts the history `epoch` with `board` when `when` says so (see the SEED script).
    /// Returns the room's history afterwards, which is `epoch` only if this call set it.
    pub async fn seed(
        &self,
        keys: &Keys,
        epoch: Epoch,
        board: &[u8],
        when: Seed,
    ) -> Result<Epoch, Unreachable> {
        let (mode, known_epoch, known_head) = match when {
            Seed::Init => ("init", String::new(), String::new()),
            Seed::Reseed(e, s) => ("reseed", e.0.to_string(), s.0.to_string()),
            Seed::Fork(e) => ("fork", e.0.to_string(), String::new()),
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
                    .arg(self.room_ttl_ms)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        as_u64(&reply).map(Epoch).ok_or_else(|| malformed("SEED"))
    }

    /// The room's link generation (0 until its links are first reset).
    pub async fn link_generation(&self, keys: &Keys) -> Result<u64, Unreachable> {
        let reply: Value = self
            .run(async |conn| redis::cmd("GET").arg(&keys.links).query_async(conn).await)
            .await?;
        match reply {
            Value::Nil => Ok(0),
            other => as_u64(&other).ok_or_else(|| malformed("GET links")),
        }
    }

    /// Advances the room's link generation from `from` and announces it on the room's
    /// channel; the new generation, or `None` for a room without a history or whose
    /// generation is no longer `from`.
    pub async fn reset_links(&self, keys: &Keys, from: u64) -> Result<Option<u64>, Unreachable> {
        let reply: Value = self
            .run(async |conn| {
                LINKS
                    .prepare_invoke()
                    .key(&keys.links)
                    .key(&keys.epoch)
                    .arg(&keys.channel)
                    .arg(from)
                    .invoke_async(conn)
                    .await
            })
            .await?;
        match reply {
            Value::Nil => Ok(None),
            other => as_u64(&other).map(Some).ok_or_else(|| malformed("LINKS")),
        }
    }

    /// Keeps a version of the room's board (see the script); true if this call kept it.
    pub async fn checkpoint(
        &self,
        keys: &Keys,
        version: &Checkpoint,
        keep: Retention,
    ) -> Result<bool, Unreachable> {
        let info = &version.info;
        let listing = serde_json::to_string(info).unwrap_or_default();
        let reply: Value = self
            .run(async |conn| {
                CHECKPOINT
                    .prepare_invoke()
                    .key(&keys.versions)
                    .key(&keys.version_info)
                    .key(&keys.version_board)
                    .key(&keys.epoch)
                    .arg(format!("{}:{}", info.epoch, info.seq))
                    .arg(info.id)
                    .arg(&listing)
                    .arg(&version.board[..])
                    .arg(keep.kept)
                    .arg(keep.bytes)
                    .arg(keep.every.as_millis() as u64)
                    .arg(u8::from(info.reason == Reason::Clear))
                    .invoke_async(conn)
                    .await
            })
            .await?;
        Ok(as_u64(&reply).is_some())
    }

    /// The room's versions, newest first.
    pub async fn checkpoints(&self, keys: &Keys) -> Result<Vec<CheckpointInfo>, Unreachable> {
        let reply: Value = self
            .run(async |conn| {
                redis::cmd("HVALS")
                    .arg(&keys.version_info)
                    .query_async(conn)
                    .await
            })
            .await?;
        let mut listed: Vec<CheckpointInfo> = as_array(&reply)
            .ok_or_else(|| malformed("HVALS versions"))?
            .iter()
            .filter_map(|v| serde_json::from_slice(as_bytes(v)?).ok())
            .collect();
        listed.sort_unstable_by_key(|v| std::cmp::Reverse(v.id));
        Ok(listed)
    }

    /// The board of the room's version `id`.
    pub async fn checkpoint_board(
        &self,
        keys: &Keys,
        id: u64,
    ) -> Result<Option<Bytes>, Unreachable> {
        let reply: Value = self
            .run(async |conn| {
                redis::cmd("HGET")
                    .arg(&keys.version_board)
                    .arg(id)
                    .query_async(conn)
                    .await
            })
            .await?;
        Ok(as_bytes(&reply).map(Bytes::copy_from_slice))
    }

    /// Whether view links may read the room's versions.
    pub async fn history_for_viewers(&self, keys: &Keys) -> Result<bool, Unreachable> {
        let reply: Value = self
            .run(async |conn| {
                redis::cmd("EXISTS")
                    .arg(&keys.private_history)
                    .query_async(conn)
                    .await
            })
            .await?;
        Ok(as_u64(&reply) == Some(0))
    }

    /// Lets view links read the room's versions, or not; false for a room without a history.
    pub async fn set_history_for_viewers(
        &self,
        keys: &Keys,
        allowed: bool,
    ) -> Result<bool, Unreachable> {
        let reply: Value = self
            .run(async |conn| {
                HISTORY_ACCESS
                    .prepare_invoke()
                    .key(&keys.private_history)
                    .key(&keys.epoch)
                    .arg(u8::from(allowed))
                    .invoke_async(conn)
                    .await
            })
            .await?;
        Ok(as_u64(&reply) == Some(1))
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
}
