//! Every refusal a connection can get, in one table: the error code and text the client is
//! told, the close code when the connection ends because of it, and the metric it counts in.

use std::borrow::Cow;

use bytes::Bytes;
use kokuban_protocol::{DecodeError, ErrorCode, ErrorFrame, ServerMsg, close, encode_server};

use crate::metrics::Rejection;
use crate::sequencer::{JoinError, WriteRefused};

/// A close code with its reason.
pub(crate) type Close = (u16, &'static str);

/// Something a client sent, or asked for, that the server refuses.
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    /// A malformed id, a Hello for another room, a wrong token and a room nobody created all
    /// get this answer, so none of them tells an outsider anything.
    Forbidden,
    RoomFull,
    Overloaded,
    /// The room could not be loaded (the details are logged, not told).
    Unavailable,
    /// An op the room could not take now.
    Write(WriteRefused),
    /// An op from a view-only link.
    ViewOnly,
    RateLimited,
    /// A text frame: the protocol is binary only.
    Text,
    /// The first message was not a Hello.
    ExpectedHello,
    /// A second Hello.
    AlreadyJoined,
    /// A frame that did not decode.
    Decode(DecodeError),
}

impl From<DecodeError> for Refusal {
    fn from(e: DecodeError) -> Self {
        Refusal::Decode(e)
    }
}

impl Refusal {
    /// The refusal of a join, or `None` when the node is stopping (the client just hears
    /// 1001, like every other connection).
    pub fn of_join(e: &JoinError) -> Option<Refusal> {
        Some(match e {
            JoinError::NotFound => Refusal::Forbidden,
            JoinError::RoomFull => Refusal::RoomFull,
            JoinError::Overloaded => Refusal::Overloaded,
            JoinError::Unavailable(_) => Refusal::Unavailable,
            JoinError::ShuttingDown => return None,
        })
    }

    /// What the client is told, and the text with it.
    pub fn error(&self) -> (ErrorCode, Cow<'static, str>) {
        let text = |s: &'static str| Cow::Borrowed(s);
        match self {
            Refusal::Forbidden => (
                ErrorCode::Forbidden,
                text("this room does not exist or the link is not valid"),
            ),
            Refusal::RoomFull => (
                ErrorCode::RoomFull,
                text("this room has as many members as it may; try again later"),
            ),
            Refusal::Overloaded => (
                ErrorCode::Overloaded,
                text("the server holds as many rooms as it may; try again later"),
            ),
            Refusal::Unavailable => (ErrorCode::Internal, text("the room could not be opened")),
            Refusal::Write(WriteRefused::Invalid(why)) => {
                (ErrorCode::InvalidOp, Cow::Owned(why.to_string()))
            }
            Refusal::Write(WriteRefused::BoardFull) => (
                ErrorCode::BoardFull,
                text("this board is full: erase something to make room, or start a new board"),
            ),
            Refusal::Write(WriteRefused::Decided) => {
                (ErrorCode::Decided, text("this op was decided before"))
            }
            Refusal::Write(WriteRefused::ReadOnly | WriteRefused::Gone) => (
                ErrorCode::TemporarilyReadOnly,
                text("the board cannot be saved right now; try again shortly"),
            ),
            Refusal::ViewOnly => (
                ErrorCode::ViewOnly,
                text("this link can only view the board"),
            ),
            Refusal::RateLimited => (ErrorCode::RateLimited, text("too many frames; slow down")),
            Refusal::Text => (ErrorCode::Malformed, text("binary frames only")),
            Refusal::ExpectedHello => (
                ErrorCode::UnexpectedMessage,
                text("the first message must be Hello"),
            ),
            Refusal::AlreadyJoined => (ErrorCode::UnexpectedMessage, text("already joined")),
            Refusal::Decode(e @ DecodeError::Version { .. }) => {
                (ErrorCode::VersionMismatch, Cow::Owned(e.to_string()))
            }
            Refusal::Decode(e) => (ErrorCode::Malformed, Cow::Owned(e.to_string())),
        }
    }

    /// How the connection closes when it ends because of this refusal.
    pub fn close(&self) -> Close {
        match self {
            Refusal::Forbidden => (close::POLICY, "forbidden"),
            Refusal::ExpectedHello | Refusal::AlreadyJoined => (close::POLICY, "expected Hello"),
            Refusal::ViewOnly | Refusal::RateLimited => (close::POLICY, "policy violation"),
            Refusal::RoomFull => (close::TRY_AGAIN_LATER, "room full"),
            Refusal::Overloaded => (close::TRY_AGAIN_LATER, "server at capacity"),
            Refusal::Unavailable => (close::INTERNAL, "internal error"),
            Refusal::Write(_) => (close::TRY_AGAIN_LATER, "board read-only"),
            Refusal::Text => (close::UNSUPPORTED_DATA, "binary frames only"),
            Refusal::Decode(DecodeError::Version { .. }) => (
                close::VERSION_MISMATCH,
                "protocol version mismatch; reload the app",
            ),
            Refusal::Decode(DecodeError::TooLarge { .. }) => (close::TOO_BIG, "message too large"),
            Refusal::Decode(DecodeError::Handle(_)) => {
                (close::INVALID_PAYLOAD, "points by an unknown stroke handle")
            }
            Refusal::Decode(_) => (close::INVALID_PAYLOAD, "malformed frame"),
        }
    }

    /// Whether a live session must end on it (a client that speaks another version cannot go
    /// on); others are answered and the session continues.
    pub fn ends_session(&self) -> bool {
        matches!(
            self,
            Refusal::Decode(DecodeError::Version { .. } | DecodeError::Handle(_)) | Refusal::Text
        )
    }

    /// The metric it counts in.
    pub fn rejection(&self) -> Option<Rejection> {
        Some(match self {
            Refusal::Forbidden => Rejection::Forbidden,
            Refusal::RoomFull => Rejection::RoomFull,
            Refusal::Overloaded => Rejection::Overloaded,
            Refusal::Write(WriteRefused::Invalid(_)) => Rejection::InvalidOp,
            Refusal::Write(WriteRefused::Decided) => return None,
            Refusal::Write(WriteRefused::BoardFull) => Rejection::BoardFull,
            Refusal::Write(_) => Rejection::ReadOnly,
            Refusal::ViewOnly => Rejection::ViewOnly,
            Refusal::Text => Rejection::Text,
            Refusal::ExpectedHello | Refusal::AlreadyJoined => Rejection::Unexpected,
            Refusal::Decode(e) => Rejection::of_decode(e),
            Refusal::Unavailable | Refusal::RateLimited => return None,
        })
    }

    /// The encoded error frame.
    pub fn frame(&self) -> Bytes {
        let (code, message) = self.error();
        Bytes::from(encode_server(&ServerMsg::Error(ErrorFrame::new(
            code, message,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_refusal_never_tells_a_missing_room_from_a_wrong_link() {
        let missing = Refusal::of_join(&JoinError::NotFound).unwrap();
        assert_eq!(missing.error(), Refusal::Forbidden.error());
        assert_eq!(missing.close(), Refusal::Forbidden.close());
        assert!(Refusal::of_join(&JoinError::ShuttingDown).is_none());
        let (code, text) = Refusal::of_join(&JoinError::Unavailable("disk on fire".into()))
            .unwrap()
            .error();
        assert_eq!(code, ErrorCode::Internal);
        assert!(!text.contains("disk"), "details are logged, not told");
    }

    #[test]
    fn a_version_mismatch_names_the_version_and_ends_the_session() {
        let v = Refusal::Decode(DecodeError::Version {
            got: 99,
            supported: kokuban_protocol::PROTOCOL_VERSION,
        });
        let (code, text) = v.error();
        assert_eq!(code, ErrorCode::VersionMismatch);
        assert!(text.contains(&kokuban_protocol::PROTOCOL_VERSION.to_string()));
        assert_eq!(v.close().0, close::VERSION_MISMATCH);
        assert!(v.ends_session());
        assert!(!Refusal::Decode(DecodeError::Empty).ends_session());
    }

    #[test]
    fn a_read_only_refusal_says_try_again() {
        let r = Refusal::Write(WriteRefused::ReadOnly);
        assert_eq!(r.error().0, ErrorCode::TemporarilyReadOnly);
        assert_eq!(r.rejection(), Some(Rejection::ReadOnly));
    }
}
