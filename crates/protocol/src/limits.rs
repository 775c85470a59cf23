//! Every limit of the protocol, in one place.
//!
//! The decoder enforces these at parse time, so a value of a protocol type is always within
//! them; the server adds its own per-connection limits (rate, queue depth) on top.

/// The protocol version byte that starts every frame (but a client's points by handle, which
/// start with [`crate::live::POINTS_FRAME`]). Bumped on any incompatible change: 3 packs
/// points by handle into bit codes.
pub const PROTOCOL_VERSION: u8 = 3;

/// Largest frame a client may send (one WebSocket message). Point batches are a few hundred
/// bytes; 64 KiB leaves room for the largest legitimate op (a full erase list or a long text).
pub const MAX_CLIENT_FRAME_BYTES: usize = 64 * 1024;

/// Largest frame a server may send. Only a Welcome that carries a large board gets near it.
pub const MAX_SERVER_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// World coordinates are fixed point: this many units per CSS pixel at zoom 1.
pub const SUBPIXELS: i32 = 8;

/// Largest absolute coordinate, in fixed-point units (about ±16.7 million pixels).
pub const COORD_LIMIT: i32 = 1 << 27;

/// Most points in one `StrokePoints` batch. The client sends one batch per animation frame,
/// which at a 240 Hz pen holds a handful; the bound stops a single frame from being huge.
pub const MAX_POINTS_PER_BATCH: usize = 1024;

/// Most points in one stroke. A minute of continuous drawing at 240 Hz stays under it.
pub const MAX_POINTS_PER_STROKE: u32 = 16 * 1024;

/// Longest text of a text item, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 4 * 1024;

/// Longest display name, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 48;

/// Longest board title, in UTF-8 bytes.
pub const MAX_TITLE_BYTES: usize = 120;

/// Most stroke ids in one Erase, Restore or Move.
pub const MAX_IDS_PER_OP: usize = 1024;

/// Stroke width bounds, in fixed-point units (1/8 px .. 256 px).
pub const MIN_WIDTH: u16 = 1;
/// See [`MIN_WIDTH`].
pub const MAX_WIDTH: u16 = 256 * SUBPIXELS as u16;

/// A camera's zoom bounds, in thousandths (1/100 .. 64×): wider than any client's own.
pub const MIN_ZOOM_MILLI: u16 = 10;
/// See [`MIN_ZOOM_MILLI`].
pub const MAX_ZOOM_MILLI: u16 = 64_000;

/// Room ids and capability tokens: URL-safe base64 alphabet, at most this many characters.
pub const MAX_ID_CHARS: usize = 64;

/// Longest human-readable message in an error frame, in UTF-8 bytes.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 512;

/// Collections in server frames (ops of a Welcome, members of a room) are bounded only by the
/// frame size, but the decoder never reserves more than this many elements ahead of the input
/// it has actually read, so a short frame that declares a huge length cannot make it allocate.
pub(crate) const MAX_PREALLOCATED_ELEMENTS: usize = 64;
