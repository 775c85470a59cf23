//! The frame codec: a version byte, then a postcard body, nothing after it; or, for a
//! client's points by handle, [`POINTS_FRAME`] with the handle, then the points.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bounded::Bytes;
use crate::limits::{MAX_CLIENT_FRAME_BYTES, MAX_SERVER_FRAME_BYTES, PROTOCOL_VERSION};
use crate::live::{MAX_OPEN_HANDLES, MorePoints, POINTS_FRAME};
use crate::msg::{ClientMsg, RoomState, ServerMsg, StateRef, Welcome};

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A frame must hold at least the version byte.
    #[error("empty frame")]
    Empty,
    /// Over the size limit for its direction.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer speaks another protocol version.
    #[error("protocol version {got} is not supported; this side speaks version {supported}")]
    Version {
        /// The version byte received.
        got: u8,
        /// The version this build speaks.
        supported: u8,
    },
    /// The body is not a valid message (bad encoding or a value outside the limits).
    #[error("malformed frame: {0}")]
    Malformed(postcard::Error),
    /// Bytes left over after a complete message.
    #[error("{0} unexpected bytes after the message")]
    Trailing(usize),
    /// Points by a handle this connection does not know (see [`crate::live`]): the two ends
    /// no longer agree on what the connection carried, so it cannot go on.
    #[error("points by handle: {0}")]
    Handle(&'static str),
}

fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) {
    out.push(PROTOCOL_VERSION);
    // Serializing into a growable Vec fails only for types postcard cannot represent; every
    // protocol type is representable, which the round-trip tests check for every variant.
    let buf = core::mem::take(out);
    *out = postcard::to_extend(msg, buf).expect("protocol types always serialize");
}

fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::Version {
            got: version,
            supported: PROTOCOL_VERSION,
        });
    }
    decode_body(body)
}

/// A whole body: one value and nothing after it.
fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let (msg, rest) = postcard::take_from_bytes(body).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    Ok(msg)
}

/// Encodes a client message as one frame; points by a handle below [`MAX_OPEN_HANDLES`] in
/// their own short frame ([`POINTS_FRAME`]).
pub fn encode_client(msg: &ClientMsg) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    match msg {
        ClientMsg::Points(more) if (more.stroke as usize) < MAX_OPEN_HANDLES => {
            out.push(POINTS_FRAME | more.stroke as u8);
            postcard::to_extend(&more.points, out).expect("protocol types always serialize")
        }
        _ => {
            encode_into(msg, &mut out);
            out
        }
    }
}

/// Encodes a server message as one frame.
pub fn encode_server(msg: &ServerMsg) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(msg, &mut out);
    out
}

/// Encodes a server message as one frame, appending to `out` (to reuse a buffer).
pub fn encode_server_into(msg: &ServerMsg, out: &mut Vec<u8>) {
    encode_into(msg, out);
}

/// Encodes a Welcome's state apart from its Welcome, to go between the pieces that
/// [`encode_welcome_around`] makes. A server encodes a large board once and sends the same
/// bytes to every member that joins at that point, instead of a copy of the board per member.
pub fn encode_state(state: StateRef<'_>) -> Vec<u8> {
    postcard::to_allocvec(&state).expect("protocol types always serialize")
}

/// Decodes a state encoded by [`encode_state`] (a server's tests look into what it sends).
pub fn decode_state(bytes: &[u8]) -> Result<RoomState, DecodeError> {
    let (state, rest) = postcard::take_from_bytes(bytes).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    Ok(state)
}

/// The frame of `welcome` without its state: the bytes before the state and the bytes after
/// it, so that `before + encode_state(s) + after` is exactly the frame [`encode_server`] makes
/// of the same Welcome with state `s` (whatever state `welcome` itself holds is left out; an
/// empty one costs nothing).
pub fn encode_welcome_around(welcome: Welcome) -> (Vec<u8>, Vec<u8>) {
    let state = encode_state(StateRef::from(&welcome.state));
    let after = postcard::to_allocvec(&(&welcome.members, welcome.decided))
        .expect("protocol types always serialize");
    let mut before = encode_server(&ServerMsg::Welcome(welcome));
    // A Welcome encodes its fields in order, the state second to last: the frame ends with
    // the state, then the members and `decided`.
    let start = before.len() - after.len() - state.len();
    debug_assert_eq!(&before[start..start + state.len()], &state[..]);
    debug_assert_eq!(&before[start + state.len()..], &after[..]);
    before.truncate(start);
    (before, after)
}

/// The start of a [`ServerMsg::BoardPart`] frame carrying `len` bytes: followed by those bytes,
/// it is exactly the frame [`encode_server`] makes of the part. A server sends a large
/// snapshot in parts sliced from the snapshot it keeps, with no copy of it per part.
pub fn board_part_head(len: usize) -> Vec<u8> {
    let mut head = encode_server(&ServerMsg::BoardPart(Bytes(Vec::new())));
    // The frame of an empty part ends with its length, 0, one byte.
    head.pop();
    postcard::to_extend(&len, head).expect("a length always serializes")
}

/// The oldest protocol version whose frames this one still reads where they were kept: a
/// room's log (the ops in a store or in Redis), a tab's outbox, and what nodes of the previous
/// version send each other during an upgrade. Version 3 changed only points by handle, which
/// are never kept and never pass between nodes; every other message reads as it did.
pub const OLDEST_KEPT_VERSION: u8 = 2;

fn decode_kept<T: DeserializeOwned>(
    bytes: &[u8],
    max: usize,
    by_handle: impl Fn(&T) -> bool,
    current: impl Fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    match bytes.first() {
        Some(&v) if (OLDEST_KEPT_VERSION..PROTOCOL_VERSION).contains(&v) => {
            if bytes.len() > max {
                return Err(DecodeError::TooLarge {
                    len: bytes.len(),
                    max,
                });
            }
            let msg = decode_body(&bytes[1..])?;
            if by_handle(&msg) {
                // Coded otherwise before version 3.
                return Err(DecodeError::Version {
                    got: v,
                    supported: PROTOCOL_VERSION,
                });
            }
            Ok(msg)
        }
        _ => current(bytes),
    }
}

/// Encodes a client's message to keep (the ops of a room's log): in the oldest version that
/// reads it alike ([`OLDEST_KEPT_VERSION`]), so that a node of that version reads it too, in
/// the middle of an upgrade or after a rollback. Points by handle, never kept, go in this
/// version's frame.
pub fn encode_kept_client(msg: &ClientMsg) -> Vec<u8> {
    let mut frame = encode_client(msg);
    if !matches!(msg, ClientMsg::Points(_)) {
        frame[0] = OLDEST_KEPT_VERSION;
    }
    frame
}

/// A server's frame of this version as it is kept (see [`OLDEST_KEPT_VERSION`]): the same
/// bytes under the oldest version's byte, so that a node of that version reads it too. For the
/// frames of ops ([`ServerMsg::Op`]), which read alike in both; any other frame, or one not of
/// this version, is copied as it is.
pub fn kept_server_frame(frame: &[u8], kept: &mut Vec<u8>) {
    kept.clear();
    kept.extend_from_slice(frame);
    if kept.first() == Some(&PROTOCOL_VERSION) {
        kept[0] = OLDEST_KEPT_VERSION;
    }
}

/// Decodes a client's frame that was kept (see [`OLDEST_KEPT_VERSION`]): of this version, or
/// of an older one that reads alike.
pub fn decode_kept_client(bytes: &[u8]) -> Result<ClientMsg, DecodeError> {
    decode_kept(
        bytes,
        MAX_CLIENT_FRAME_BYTES,
        |m| matches!(m, ClientMsg::Points(_)),
        decode_client,
    )
}

/// Decodes a server's frame that was kept, or that a node of an older version sent (see
/// [`OLDEST_KEPT_VERSION`]).
pub fn decode_kept_server(bytes: &[u8]) -> Result<ServerMsg, DecodeError> {
    decode_kept(
        bytes,
        MAX_SERVER_FRAME_BYTES,
        |m| matches!(m, ServerMsg::Points(_)),
        decode_server,
    )
}

/// Decodes and validates a frame from a client.
pub fn decode_client(bytes: &[u8]) -> Result<ClientMsg, DecodeError> {
    match bytes.split_first() {
        Some((&first, body))
            if first & POINTS_FRAME == POINTS_FRAME && bytes.len() <= MAX_CLIENT_FRAME_BYTES =>
        {
            Ok(ClientMsg::Points(MorePoints {
                stroke: u32::from(first & !POINTS_FRAME),
                points: decode_body(body)?,
            }))
        }
        _ => decode(bytes, MAX_CLIENT_FRAME_BYTES),
    }
}

/// Decodes and validates a frame from a server.
pub fn decode_server(bytes: &[u8]) -> Result<ServerMsg, DecodeError> {
    decode(bytes, MAX_SERVER_FRAME_BYTES)
}
