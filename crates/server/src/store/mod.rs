//! Durable boards of a single node: the seam between a room and the disk. (In a cluster, Redis
//! holds the boards; it is spoken in `sequencer/cluster/redis`.)
//!
//! A room hands its writes to the store without waiting ([`Store::append`],
//! [`Store::compact`]); the store applies them in the order given and makes them durable in
//! groups. Reads ([`Store::load_room`]) see every write handed over before them.

mod redb;

use std::fmt;

use std::sync::Arc;

use bytes::Bytes;
use kokuban_protocol::{Epoch, MemberId, RoomId, Seq};

use crate::BoxFuture;
use crate::blob::{Blob, BlobHash, BlobStored};
use crate::sequencer::room::{Checkpoint, CheckpointInfo, Retention};

pub use self::redb::RedbStore;

/// A room as the store holds it: the snapshot at the last compaction and the ops after it.
#[derive(Debug, Clone)]
pub struct StoredRoom {
    /// The room's history.
    pub epoch: Epoch,
    /// The seq the snapshot was taken at.
    pub snapshot_seq: Seq,
    /// The board's encoded snapshot (board model format).
    pub snapshot: Bytes,
    /// The ops after the snapshot, in seq order, each an encoded `ServerMsg::Op` frame.
    pub ops: Vec<Bytes>,
    /// The node stopped uncleanly since this history began, so ops that were sequenced (never
    /// acknowledged: an Ack waits for durability) may be missing from it: the room must start
    /// a new epoch before anyone resumes.
    pub history_uncertain: bool,
    /// Each author's highest op number that reached the disk (in any epoch).
    pub authors: Vec<(MemberId, u64)>,
}

/// A sequenced op handed to the store.
#[derive(Debug, Clone)]
pub struct StoredOp {
    /// Its place.
    pub seq: Seq,
    /// Its encoded `ServerMsg::Op` frame.
    pub frame: Bytes,
    /// Its author...
    pub author: MemberId,
    /// ...and its number among the author's ops.
    pub n: u64,
}

/// A room's ear for what became of the ops it handed to the store.
pub trait Durability: Send + Sync + fmt::Debug {
    /// Every op of `epoch` up to `seq` that the room handed over is on disk.
    fn durable(&self, epoch: Epoch, seq: Seq);
    /// A commit that held ops of the room failed: they are not on disk, and never will be.
    fn lost(&self);
}

/// A failure of the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The underlying database failed.
    #[error("store: {0}")]
    Backend(String),
    /// A room with this id exists already.
    #[error("room exists already")]
    Exists,
    /// The store was closed.
    #[error("store is closed")]
    Closed,
}

/// Where boards live. See the module documentation for the ordering rule.
pub trait Store: Send + Sync + fmt::Debug {
    /// Creates a room with an empty board; resolves once that is durable.
    fn create_room<'a>(
        &'a self,
        room: &'a RoomId,
        epoch: Epoch,
        snapshot: Bytes,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Reads a room, after every write handed over before this call is durable.
    fn load_room<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<Option<StoredRoom>, StoreError>>;

    /// Whether new ops should be accepted: false while the store is failing or so far behind
    /// that queuing more would only grow memory.
    fn accepting_writes(&self) -> bool;

    /// Whether the store has been failing for so long that the node should be restarted.
    fn is_broken(&self) -> bool {
        false
    }

    /// Hands over a sequenced op of `epoch`; `ear` hears when it is durable (or lost), once per
    /// commit for all the room's ops in it. Never waits.
    fn append(&self, room: &RoomId, epoch: Epoch, op: StoredOp, ear: Arc<dyn Durability>);

    /// Replaces the room's snapshot by one taken at `(epoch, seq)` and forgets every op up to
    /// it (with a new epoch: every op of the old one). Never waits.
    fn compact(&self, room: &RoomId, epoch: Epoch, seq: Seq, snapshot: Bytes);

    /// Keeps a version of the room's board, unless one at the same place is kept already,
    /// then drops the oldest versions while more than `keep.kept` are kept or they weigh more
    /// than `keep.bytes`. Its id is its time, made one later while another version has it.
    /// Never waits; in order with the room's other writes.
    fn checkpoint(&self, room: &RoomId, checkpoint: Checkpoint, keep: Retention);

    /// The room's versions, newest first, after every write handed over before this call.
    fn checkpoints<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<Vec<CheckpointInfo>, StoreError>>;

    /// The board of the room's version `id` (`None`: no such version).
    fn checkpoint_board<'a>(
        &'a self,
        room: &'a RoomId,
        id: u64,
    ) -> BoxFuture<'a, Result<Option<Bytes>, StoreError>>;

    /// Deletes every room last written before `before_ms` (ms since the Unix epoch), except
    /// those in `keep` (held now), which count as written now; resolves to the rooms deleted.
    /// Handed over at once, in order with the writes before it: a load handed over after it
    /// does not find what it deleted.
    fn expire(
        &self,
        before_ms: u64,
        keep: Vec<RoomId>,
    ) -> BoxFuture<'static, Result<Vec<RoomId>, StoreError>>;

    /// The room's link generation (0 until its links are first reset).
    fn link_generation<'a>(&'a self, room: &'a RoomId) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Advances the room's link generation from `from`; resolves, once that is durable, to
    /// the new one (`None`: no such room, or its generation is no longer `from`).
    fn reset_links<'a>(
        &'a self,
        room: &'a RoomId,
        from: u64,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>>;

    /// Whether view links may read the room's versions (yes, unless an editor said no).
    fn history_for_viewers<'a>(
        &'a self,
        room: &'a RoomId,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Lets view links read the room's versions, or not; resolves, once that is durable, to
    /// whether the room exists.
    fn set_history_for_viewers<'a>(
        &'a self,
        room: &'a RoomId,
        allowed: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Keeps `blob` as an image of the room, unless the room holds its bytes already, while
    /// the room's images weigh at most `budget` bytes with it; resolves, once that is
    /// durable, to what became of it. Deleted with the room.
    fn store_blob<'a>(
        &'a self,
        room: &'a RoomId,
        blob: Blob,
        budget: u64,
    ) -> BoxFuture<'a, Result<BlobStored, StoreError>>;

    /// The room's image named `hash` (`None`: the room holds no such image).
    fn blob<'a>(
        &'a self,
        room: &'a RoomId,
        hash: BlobHash,
    ) -> BoxFuture<'a, Result<Option<Blob>, StoreError>>;

    /// Writes everything handed over, records a clean stop and closes.
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}
