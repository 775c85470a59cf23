//! The Kokuban wire protocol.
//!
//! One WebSocket binary message is one frame: a [`PROTOCOL_VERSION`] byte followed by a
//! postcard body. Clients send [`ClientMsg`], servers send [`ServerMsg`]. Every type in this
//! crate is parsed, not validated: a value that decodes is within the limits of [`limits`].
//!
//! The crate has no runtime dependencies beyond serde and postcard, so the browser app and the
//! server share it.

#[cfg(feature = "proptest")]
pub mod arbitrary;
mod bits;
mod bounded;
pub mod close;
mod codec;
mod form;
mod ids;
mod items;
pub mod limits;
pub mod live;
mod look;
mod msg;
mod point;

pub use bounded::{Bounded, Bytes, List};
pub use codec::{
    DecodeError, OLDEST_KEPT_VERSION, board_part_head, decode_client, decode_kept_client,
    decode_kept_server, decode_server, decode_state, encode_client, encode_kept_client,
    encode_server, encode_server_into, encode_state, encode_welcome_around, kept_server_frame,
};
pub use form::{Form, FormOf, Scale};
pub use ids::{
    BlobHash, ClientKey, Color, Epoch, InvalidValue, MemberId, Name, RoomId, Seq, StrokeId, Text,
    Title, Token, Width, is_hidden,
};
pub use items::{PlacedImage, Placement, StrokePoints, Style};
pub use limits::PROTOCOL_VERSION;
pub use live::{Handles, Lead, LivePoints, MorePoints, Offsets};
pub use look::{Align, Dash, Fill, Look, LookOf, Opacity};
pub use msg::{
    Ack, Camera, CameraUpdate, Capability, ClientMsg, Cursor, CursorUpdate, ErrorCode, ErrorFrame,
    Hello, LaserUpdate, Member, Op, Position, PresenceEvent, Profile, RoomState, Sequenced,
    ServerMsg, StateRef, Submit, Tool, Welcome,
};
pub use point::{DeltaPoints, Path, Point, Points};
