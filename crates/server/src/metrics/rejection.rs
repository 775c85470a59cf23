//! Why an incoming frame was refused: the `reason` label of `kokuban_rejected_frames_total`.

/// Why an incoming frame was refused (the `reason` label of `kokuban_rejected_frames_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// An empty binary frame.
    Empty,
    /// Over the size limit.
    TooLarge,
    /// Another protocol version.
    Version,
    /// Did not decode.
    Malformed,
    /// Bytes after the message.
    Trailing,
    /// A text frame.
    Text,
    /// A write from a view-only connection.
    ViewOnly,
    /// A message out of place (no Hello first, a second Hello).
    Unexpected,
    /// Hello for a room the token does not open.
    Forbidden,
    /// A write while the room could not take writes.
    ReadOnly,
    /// An op the board would ignore or that is not the member's to make (a stroke id in use,
    /// another member's stroke, targets that do not exist): refused before it is sequenced.
    InvalidOp,
    /// A WebSocket frame that breaks RFC 6455 (unmasked, reserved bits or opcodes, a stray
    /// continuation): the connection is closed with 1002.
    Protocol,
    /// Control frames (pings, pongs) beyond the connection's rate limit: closed with 1008.
    PingFlood,
    /// An op that would grow a board past its budget.
    BoardFull,
    /// A Hello for a room that has as many members as it may.
    RoomFull,
    /// A Hello that would load one room more than the node may hold.
    Overloaded,
    /// Frames or bytes beyond the connection's inbound budget: closed with 1008.
    OverBudget,
    /// A message begun and not finished within the message deadline: closed with 1008.
    Late,
}

impl Rejection {
    pub(super) const ALL: [Rejection; 18] = [
        Rejection::Empty,
        Rejection::TooLarge,
        Rejection::Version,
        Rejection::Malformed,
        Rejection::Trailing,
        Rejection::Text,
        Rejection::ViewOnly,
        Rejection::Unexpected,
        Rejection::Forbidden,
        Rejection::ReadOnly,
        Rejection::InvalidOp,
        Rejection::Protocol,
        Rejection::PingFlood,
        Rejection::RoomFull,
        Rejection::Overloaded,
        Rejection::BoardFull,
        Rejection::OverBudget,
        Rejection::Late,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Empty => "empty",
            Rejection::TooLarge => "too_large",
            Rejection::Version => "version",
            Rejection::Malformed => "malformed",
            Rejection::Trailing => "trailing",
            Rejection::Text => "text",
            Rejection::ViewOnly => "view_only",
            Rejection::Unexpected => "unexpected",
            Rejection::Forbidden => "forbidden",
            Rejection::ReadOnly => "read_only",
            Rejection::InvalidOp => "invalid_op",
            Rejection::Protocol => "protocol",
            Rejection::PingFlood => "ping_flood",
            Rejection::RoomFull => "room_full",
            Rejection::Overloaded => "overloaded",
            Rejection::BoardFull => "board_full",
            Rejection::OverBudget => "over_budget",
            Rejection::Late => "unfinished_message",
        }
    }

    /// The rejection for a frame the codec refused.
    pub fn of_decode(e: &kokuban_protocol::DecodeError) -> Self {
        use kokuban_protocol::DecodeError as D;
        match e {
            D::Empty => Rejection::Empty,
            D::TooLarge { .. } => Rejection::TooLarge,
            D::Version { .. } => Rejection::Version,
            D::Malformed(_) => Rejection::Malformed,
            D::Trailing(_) => Rejection::Trailing,
            D::Handle(_) => Rejection::Malformed,
        }
    }
}
