//! The messages, one enum per direction.

use serde::{Deserialize, Serialize};

use crate::bounded::{Bounded, Bytes, List};
use crate::form::FormOf;
use crate::ids::{
    ClientKey, Color, Epoch, InvalidValue, MemberId, Name, RoomId, Seq, StrokeId, Text, Title,
    Token, Width,
};
use crate::items::{PlacedImage, Placement, StrokePoints, Style};
use crate::limits::{MAX_ERROR_MESSAGE_BYTES, MAX_IDS_PER_OP, MAX_ZOOM_MILLI, MIN_ZOOM_MILLI};
use crate::live::{LivePoints, MorePoints};
use crate::look::LookOf;
use crate::point::Point;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// The first message on every connection.
    Hello(Hello),
    /// A durable change to the board, numbered by its author; the server sequences it (once,
    /// however often it is sent) and relays it.
    Op(Submit),
    /// Where this member's pointer is (`None`: it left the canvas). Ephemeral.
    Cursor(Option<Cursor>),
    /// A new display name or colour.
    Profile(Profile),
    /// A point of this member's laser pointer: a trail others see fade within a second.
    /// Ephemeral like [`ClientMsg::Cursor`] (never an op, never stored) and allowed on a
    /// view-only connection; it also moves the member's cursor there.
    Laser(Cursor),
    /// What this member's screen shows, so that others may follow it. Ephemeral like
    /// [`ClientMsg::Cursor`]: coalesced, never stored, allowed on a view-only connection.
    Camera(Camera),
    /// Asks everyone else in the room to follow this member's camera (each may decline).
    /// Ephemeral and coalesced like [`ClientMsg::Camera`]; allowed on a view-only connection.
    AskToFollow,
    /// An [`Op::StrokePoints`] by handle: numbered after the last op sent on this connection,
    /// continuing a stroke it began (see [`crate::live`]).
    Points(MorePoints),
}

/// What a server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// The answer to Hello: who you are and the board as of now.
    ///
    /// A Welcome can also arrive later on the same connection: the room's history was
    /// replaced (a new epoch, e.g. its store lost it and the server restarted it from the board
    /// it held). The client then replaces its board by this one (it is always a
    /// [`RoomState::Snapshot`]) and keeps its member id and capability. Every op the client
    /// sent before the server queued this Welcome has been answered before it (an `Ack`, or
    /// an `Error` with [`ErrorCode::TemporarilyReadOnly`] for those the new history does not
    /// hold); ops sent later are answered after it, in the new epoch.
    Welcome(Welcome),
    /// A part of the board snapshot of the Welcome that follows (whose state is
    /// [`RoomState::InParts`]): a large board comes in parts, so that a server can send the
    /// same encoded parts to every joiner and never holds a whole copy per connection. The
    /// parts arrive in order, right before their Welcome; concatenated they are the snapshot.
    BoardPart(Bytes),
    /// Another member's op, in the room's order.
    Op(Sequenced),
    /// Your own op took this place in the room's order. Acks arrive in the order the ops were
    /// sent, interleaved with others' ops in the room's order.
    Ack(Ack),
    /// Someone joined, left, or changed their profile. Ephemeral.
    Presence(PresenceEvent),
    /// Someone's pointer moved. Ephemeral and coalesced: only the latest position is sent.
    Cursor(CursorUpdate),
    /// Something the client sent was refused; when it was an op, that op was not applied.
    Error(ErrorFrame),
    /// Someone's laser pointer moved. Ephemeral and coalesced with their cursor: only the
    /// latest position per window is sent, so a trail is drawn between the points received.
    Laser(LaserUpdate),
    /// Someone's camera moved. Ephemeral and coalesced: only the latest one is sent.
    Camera(CameraUpdate),
    /// This member asks everyone to follow their camera.
    AskToFollow(MemberId),
    /// Another member's [`Op::StrokePoints`], in the room's order, by handle: the op after
    /// the last one the member's board holds (see [`crate::live`]).
    Points(LivePoints),
    /// Your own op took the place after the last one your board holds (an [`Ack`] without
    /// its epoch and seq): the low byte of its seq, so that a board elsewhere is caught.
    Acked(u8),
}

/// Opens a session on a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must match the room of the WebSocket URL.
    pub room: RoomId,
    /// The capability token from the edit or view link.
    pub token: Token,
    /// Where the client was when it last saw the room, if it did.
    pub resume: Option<Position>,
    /// Display name.
    pub name: Name,
    /// Display colour (cursor, avatar).
    pub color: Color,
    /// The client's secret for its ops (the same on every connection that may resend them).
    pub client: ClientKey,
}

/// An op as its author sends it: numbered, so that a retry is recognized.
///
/// Numbers start at 1 and increase with every op of the author (the same [`ClientKey`]); gaps
/// are allowed. The server applies each number at most once: an op whose number it has seen
/// is answered with the first one's `Ack` (or told it was decided before), never applied
/// again; one numbered at or below an op it already decided is never applied at all. So an
/// op the author was told was refused is never applied later; to try again, the author sends
/// it under a new number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submit {
    /// The op's number among its author's.
    pub n: u64,
    /// The op.
    pub op: Op,
}

/// A place in a room's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The history.
    pub epoch: Epoch,
    /// The last op applied.
    pub seq: Seq,
}

/// A member's display profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Display name.
    pub name: Name,
    /// Display colour.
    pub color: Color,
}

/// What a connection may do in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Capability {
    /// Draw, erase, undo, clear.
    Edit,
    /// Watch only.
    View,
}

/// Drawing tools. Shapes are strokes whose points are their defining corners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tool {
    /// Freehand, pressure-sensitive.
    Pen,
    /// Freehand, translucent.
    Highlighter,
    /// Straight line from the first to the last point.
    Line,
    /// Line with an arrow head at the last point.
    Arrow,
    /// Rectangle spanned by the first and last points.
    Rect,
    /// Ellipse inscribed in the rectangle spanned by the first and last points.
    Ellipse,
}

/// A durable change to a board. Applying an op twice in a row is the same as applying it once;
/// but a retried op could land after others' ops, where applying it again is not harmless (a
/// Clear after someone's new stroke), which is why ops are numbered ([`Submit`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Starts a stroke.
    StrokeBegin {
        /// Fresh random id.
        id: StrokeId,
        /// Tool.
        tool: Tool,
        /// Colour.
        color: Color,
        /// Width.
        width: Width,
        /// The first point.
        first: Point,
    },
    /// More points of a stroke that is being drawn.
    StrokePoints(StrokePoints),
    /// The stroke is complete.
    StrokeEnd {
        /// The stroke.
        id: StrokeId,
    },
    /// Places a text item.
    Text {
        /// Fresh random id.
        id: StrokeId,
        /// Top-left corner.
        at: Point,
        /// Colour.
        color: Color,
        /// Font size.
        size: Width,
        /// The text.
        text: Text,
    },
    /// Removes strokes (kept as tombstones so that `Restore` can bring them back).
    Erase {
        /// Strokes to remove; unknown ids are ignored.
        ids: Bounded<StrokeId, MAX_IDS_PER_OP>,
    },
    /// Brings erased strokes back (undo of an erase, redo of a stroke).
    Restore {
        /// Strokes to restore; unknown ids are ignored.
        ids: Bounded<StrokeId, MAX_IDS_PER_OP>,
    },
    /// Sets the offsets of strokes from where they were drawn (absolute, hence idempotent).
    Move {
        /// The new offsets.
        to: Bounded<Placement, MAX_IDS_PER_OP>,
    },
    /// Removes every stroke of the board for good (its title stays).
    Clear,
    /// Names the board for everyone (an empty title removes the name). Absolute, hence
    /// idempotent; the room's order decides between two members renaming at once.
    Title {
        /// The new title.
        title: Title,
    },
    /// Sets the colour and width (a text's font size) of items (absolute, hence idempotent).
    Restyle {
        /// The new styles.
        to: Bounded<Style, MAX_IDS_PER_OP>,
    },
    /// Sets the fill, stroke style, opacity and text alignment of items (absolute, hence
    /// idempotent). A new item given a look other than the default is followed by this op.
    Look {
        /// The new looks.
        to: Bounded<LookOf, MAX_IDS_PER_OP>,
    },
    /// Places an image, uploaded beforehand to the room's blobs.
    Image(PlacedImage),
    /// Sets how items are stretched and turned (absolute, hence idempotent): what resize and
    /// rotate handles do. Only finished items take a form.
    Form {
        /// The new forms.
        to: Bounded<FormOf, MAX_IDS_PER_OP>,
    },
}

impl Op {
    /// Whether this op only continues a stroke (the hot path of live drawing).
    pub fn is_points(&self) -> bool {
        matches!(self, Op::StrokePoints(_))
    }
}

/// A pointer position in world space (no pressure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "(i32, i32)", into = "(i32, i32)")]
pub struct Cursor {
    x: i32,
    y: i32,
}

impl Cursor {
    /// Checks the bounds.
    pub fn new(x: i32, y: i32) -> Result<Self, InvalidValue> {
        Point::new(x, y, 0).map(|_| Self { x, y })
    }

    /// x in fixed-point units.
    pub fn x(self) -> i32 {
        self.x
    }

    /// y in fixed-point units.
    pub fn y(self) -> i32 {
        self.y
    }
}

impl TryFrom<(i32, i32)> for Cursor {
    type Error = InvalidValue;
    fn try_from((x, y): (i32, i32)) -> Result<Self, InvalidValue> {
        Self::new(x, y)
    }
}

impl From<Cursor> for (i32, i32) {
    fn from(c: Cursor) -> Self {
        (c.x, c.y)
    }
}

/// What a screen shows: the world point at its centre, and its zoom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "(Cursor, u16)", into = "(Cursor, u16)")]
pub struct Camera {
    center: Cursor,
    zoom_milli: u16,
}

impl Camera {
    /// Checks the zoom's bounds ([`MIN_ZOOM_MILLI`]..=[`MAX_ZOOM_MILLI`]).
    pub fn new(center: Cursor, zoom_milli: u16) -> Result<Self, InvalidValue> {
        if (MIN_ZOOM_MILLI..=MAX_ZOOM_MILLI).contains(&zoom_milli) {
            Ok(Self { center, zoom_milli })
        } else {
            Err(InvalidValue("camera zoom out of bounds"))
        }
    }

    /// The world point at the screen's centre.
    pub fn center(self) -> Cursor {
        self.center
    }

    /// Screen pixels per world pixel, in thousandths.
    pub fn zoom_milli(self) -> u16 {
        self.zoom_milli
    }
}

impl TryFrom<(Cursor, u16)> for Camera {
    type Error = InvalidValue;
    fn try_from((center, zoom): (Cursor, u16)) -> Result<Self, InvalidValue> {
        Self::new(center, zoom)
    }
}

impl From<Camera> for (Cursor, u16) {
    fn from(c: Camera) -> Self {
        (c.center, c.zoom_milli)
    }
}

/// A durable op with its place in the room's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequenced {
    /// The room's history this op belongs to.
    pub epoch: Epoch,
    /// Its place in that history.
    pub seq: Seq,
    /// Its author (set by the server, never taken from the client): the same id on every
    /// connection of the author's [`ClientKey`].
    pub author: MemberId,
    /// The op.
    pub op: Op,
}

/// Your own op was sequenced at this place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// History.
    pub epoch: Epoch,
    /// Place.
    pub seq: Seq,
}

/// The answer to Hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Your member id for this connection (presence, cursors).
    pub member: MemberId,
    /// Your author id: the author of your ops, the same on every connection of your key.
    pub author: MemberId,
    /// What you may do.
    pub capability: Capability,
    /// The room's current history.
    pub epoch: Epoch,
    /// The board as of now.
    pub state: RoomState,
    /// Everyone in the room now, you included.
    pub members: List<Member>,
    /// Every op of yours numbered up to this one has been decided: applied (and in `state`)
    /// or refused for good. Ops numbered above it were never applied: send them again, under
    /// their numbers.
    pub decided: u64,
}

/// A board's state in a Welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomState {
    /// Exactly the ops after the client's resume position, in order (possibly none).
    Replay {
        /// The missed ops.
        ops: List<Sequenced>,
    },
    /// A snapshot (replace the whole board), then the ops that followed it.
    Snapshot {
        /// The board's encoded snapshot (see the board model for its format).
        board: Bytes,
        /// The ops after the snapshot, in order.
        ops: List<Sequenced>,
    },
    /// Like [`RoomState::Snapshot`], with the snapshot in the [`ServerMsg::BoardPart`] frames
    /// that came right before this Welcome.
    InParts {
        /// The ops after the snapshot, in order.
        ops: List<Sequenced>,
    },
}

/// A [`RoomState`] borrowed from where a server keeps it: it encodes ([`encode_state`]) to
/// exactly the bytes of the state it stands for, without copying the ops or the board first.
///
/// [`encode_state`]: crate::encode_state
#[derive(Debug, Clone, Copy, Serialize)]
pub enum StateRef<'a> {
    /// As [`RoomState::Replay`].
    Replay {
        /// The missed ops.
        ops: &'a [Sequenced],
    },
    /// As [`RoomState::Snapshot`].
    Snapshot {
        /// The board's encoded snapshot.
        #[serde(serialize_with = "as_bytes")]
        board: &'a [u8],
        /// The ops after the snapshot.
        ops: &'a [Sequenced],
    },
    /// As [`RoomState::InParts`].
    InParts {
        /// The ops after the snapshot.
        ops: &'a [Sequenced],
    },
}

impl<'a> From<&'a RoomState> for StateRef<'a> {
    fn from(state: &'a RoomState) -> Self {
        match state {
            RoomState::Replay { ops } => StateRef::Replay { ops },
            RoomState::Snapshot { board, ops } => StateRef::Snapshot {
                board: &board.0,
                ops,
            },
            RoomState::InParts { ops } => StateRef::InParts { ops },
        }
    }
}

/// Serializes a borrowed board as [`Bytes`] serializes an owned one.
fn as_bytes<S: serde::Serializer>(board: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(board)
}

/// A member of a room, as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Id.
    pub id: MemberId,
    /// Display name.
    pub name: Name,
    /// Display colour.
    pub color: Color,
    /// Whether they can draw.
    pub capability: Capability,
}

/// A change in who is in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PresenceEvent {
    /// Arrived.
    Joined(Member),
    /// Changed name or colour.
    Updated(Member),
    /// Left (or timed out).
    Left(MemberId),
}

/// A member's latest pointer position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorUpdate {
    /// Whose.
    pub member: MemberId,
    /// Where (`None`: off the canvas).
    pub at: Option<Cursor>,
}

/// A member's latest laser pointer position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaserUpdate {
    /// Whose.
    pub member: MemberId,
    /// Where.
    pub at: Cursor,
}

/// A member's latest camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraUpdate {
    /// Whose.
    pub member: MemberId,
    /// What their screen shows.
    pub camera: Camera,
}

/// Why something was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The client speaks another protocol version.
    VersionMismatch,
    /// A frame could not be decoded.
    Malformed,
    /// The first message was not Hello, or Hello came twice.
    UnexpectedMessage,
    /// The room does not exist or the token does not open it (the two are not told apart).
    Forbidden,
    /// A view-only connection tried to write.
    ViewOnly,
    /// Too many frames; slow down.
    RateLimited,
    /// The op is not allowed on this board (e.g. a stroke with too many points).
    InvalidOp,
    /// The room cannot take writes right now (its store or sequencer is unreachable); it is
    /// read-only until that recovers.
    TemporarilyReadOnly,
    /// The room has as many members as it may.
    RoomFull,
    /// The server is at capacity.
    Overloaded,
    /// Something went wrong on the server.
    Internal,
    /// A retried op that was decided long ago (applied or refused); whatever it did is in what
    /// the client has received. Nothing to do but forget it.
    Decided,
    /// The board holds as much as a board may (items, points or bytes): the op that would
    /// add to it was not applied. Erasing or clearing makes room.
    BoardFull,
}

/// An error with a short, human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// For people; at most [`MAX_ERROR_MESSAGE_BYTES`] bytes.
    #[serde(deserialize_with = "bounded_message")]
    pub message: String,
}

impl ErrorFrame {
    /// Builds an error frame, cutting the message to the limit at a character boundary.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE_BYTES {
            let mut cut = MAX_ERROR_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Self { code, message }
    }
}

fn bounded_message<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() > MAX_ERROR_MESSAGE_BYTES {
        return Err(serde::de::Error::custom("error message too long"));
    }
    Ok(s)
}
