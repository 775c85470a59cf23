//! The database file's tables: what each holds, their creation at each start, and reading a
//! room from them.

use ::redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use bytes::Bytes;
use kokuban_protocol::{Epoch, MemberId, Seq};

use super::StoredRoom;
use super::blobs::{BLOB_BYTES, BLOBS};

/// Store-wide bookkeeping: `boot` (starts so far), `clean` (1 when the last run stopped
/// cleanly), `last_unclean_boot` (the latest start that followed an unclean stop).
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Room id → (epoch, boot in which that epoch was last confirmed, seq of the snapshot).
pub(super) const ROOMS: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("rooms");
/// Room id → encoded snapshot of its board.
pub(super) const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
/// (room id, seq) → the op's encoded `ServerMsg::Op` frame.
pub(super) const OPS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("ops");
/// (room id, author) → the author's highest op number on disk. Kept across epochs and
/// compactions: a number decided once is never applied again.
pub(super) const AUTHORS: TableDefinition<(&str, u64), u64> = TableDefinition::new("authors");

/// Room id → when it was last written (ms since the Unix epoch): creation, ops, snapshots,
/// and the sweeps that find it loaded. Rooms untouched for the configured time expire.
pub(super) const TOUCHED: TableDefinition<&str, u64> = TableDefinition::new("touched");

/// (room id, version id) → a version of its board ([`Checkpoint::encode`]).
pub(super) const CHECKPOINTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("checkpoints");

/// Room id → 1 when view links may not read the room's versions (absent: they may).
pub(super) const PRIVATE_HISTORY: TableDefinition<&str, u64> =
    TableDefinition::new("private_history");

/// Room id → its link generation (absent: 0), which a reset of the room's links advances.
pub(super) const LINKS: TableDefinition<&str, u64> = TableDefinition::new("links");

/// Counts this start and records whether the previous run stopped cleanly.
pub(super) fn start_boot(db: &Database) -> Result<(u64, u64), ::redb::Error> {
    let txn = db.begin_write()?;
    let result;
    {
        let mut meta = txn.open_table(META)?;
        let boot = meta.get("boot")?.map_or(0, |v| v.value()) + 1;
        // A new file has no marker and nothing to lose: it counts as clean.
        let clean = meta.get("clean")?.is_none_or(|v| v.value() == 1);
        let mut last_unclean = meta.get("last_unclean_boot")?.map_or(0, |v| v.value());
        if !clean {
            last_unclean = boot;
        }
        meta.insert("boot", boot)?;
        meta.insert("clean", 0)?;
        meta.insert("last_unclean_boot", last_unclean)?;
        txn.open_table(ROOMS)?;
        txn.open_table(SNAPSHOTS)?;
        txn.open_table(OPS)?;
        txn.open_table(AUTHORS)?;
        txn.open_table(LINKS)?;
        txn.open_table(CHECKPOINTS)?;
        txn.open_table(PRIVATE_HISTORY)?;
        txn.open_table(BLOBS)?;
        txn.open_table(BLOB_BYTES)?;
        result = (boot, last_unclean);
    }
    txn.commit()?;
    Ok(result)
}

pub(super) fn read_room(
    db: &Database,
    room: &str,
    last_unclean_boot: u64,
) -> Result<Option<StoredRoom>, ::redb::Error> {
    let txn = db.begin_read()?;
    let rooms = txn.open_table(ROOMS)?;
    let Some((epoch, epoch_boot, snapshot_seq)) = rooms.get(room)?.map(|g| g.value()) else {
        return Ok(None);
    };
    let snapshot = txn
        .open_table(SNAPSHOTS)?
        .get(room)?
        .map(|g| Bytes::copy_from_slice(g.value()))
        .unwrap_or_default();
    let ops_table = txn.open_table(OPS)?;
    let mut ops = Vec::new();
    for entry in ops_table.range((room, snapshot_seq.saturating_add(1))..=(room, u64::MAX))? {
        let (_, frame) = entry?;
        ops.push(Bytes::copy_from_slice(frame.value()));
    }
    let mut authors = Vec::new();
    for entry in txn
        .open_table(AUTHORS)?
        .range((room, 0u64)..=(room, u64::MAX))?
    {
        let (key, n) = entry?;
        authors.push((MemberId(key.value().1), n.value()));
    }
    Ok(Some(StoredRoom {
        epoch: Epoch(epoch),
        snapshot_seq: Seq(snapshot_seq),
        snapshot,
        ops,
        history_uncertain: epoch_boot < last_unclean_boot,
        authors,
    }))
}
