//! The board model: a deterministic state machine over [`Op`]s.
//!
//! The server and the browser run this same code: the server to keep snapshots for late
//! joiners and compaction, the browser to render. Given the same ops in the same order, every
//! copy of a board is identical, down to its snapshot bytes.

mod board;
mod live;
mod snapshot;

pub use board::{
    Board, Change, IMAGE_COLOR, IMAGE_WIDTH, MAX_TOMBSTONES, Refusal, SequenceError, Shape, Stroke,
};
pub use snapshot::{SNAPSHOT_VERSION, SnapshotError};
