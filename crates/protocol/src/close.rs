//! WebSocket close codes the server uses, so that clients can tell the reasons apart.

/// The server is shutting down or restarting; reconnect (to another node) and resume.
pub const GOING_AWAY: u16 = 1001;
/// The client spoke something that is not the protocol (bad frame, text frame).
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text frame: the protocol is binary only.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// A frame could not be decoded or failed validation.
pub const INVALID_PAYLOAD: u16 = 1007;
/// Policy violation: forbidden room, sustained rate-limit abuse, writes from a viewer.
pub const POLICY: u16 = 1008;
/// A message larger than the limit.
pub const TOO_BIG: u16 = 1009;
/// Unexpected server error.
pub const INTERNAL: u16 = 1011;
/// The server is at a capacity limit; try again later (with backoff).
pub const TRY_AGAIN_LATER: u16 = 1013;
/// The client did not read fast enough and its send queue filled up. It should reconnect and
/// resume from its last position; nothing is lost.
pub const SLOW_CONSUMER: u16 = 4001;
/// The client speaks another protocol version; it should reload the app.
pub const VERSION_MISMATCH: u16 = 4002;
/// The heartbeat found no sign of life from the peer within the idle timeout.
pub const IDLE_TIMEOUT: u16 = 4003;
/// The node could not tell in time what became of the client's ops (its link to the cluster's
/// Redis failed with them in flight), or fell behind the room's log. The client should
/// reconnect at once and resume from its last position, resending what was not acknowledged.
pub const RESUME: u16 = 4004;
/// The room's links were reset by an editor: the link this client joined with no longer opens
/// the room. It should not reconnect with it, and should ask for the new link.
pub const LINKS_RESET: u16 = 4005;
