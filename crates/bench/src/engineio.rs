//! Just enough of Engine.IO v4 and Socket.IO v5 to drive the baseline over a websocket.
//!
//! Over the websocket transport an Engine.IO packet is one WebSocket message: a text message
//! starts with the packet type digit, a binary message is a raw `message` packet (v4 dropped
//! the `b` prefix and type byte). A Socket.IO event with binary arguments is a text
//! `message` packet `45N-["name",{"_placeholder":true,"num":0},…]` followed by its N
//! attachments, each a binary message — what the baseline server emits was checked against
//! socket.io 4.8 by experiment, and the tests below pin those exact bytes.

use serde::Deserialize;

/// Why a packet could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParseError {}

/// An Engine.IO v4 text packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `0{json}`: the handshake.
    Open(&'a str),
    /// `1`: the server closes the session.
    Close,
    /// `2`: heartbeat from the server; answer with a pong carrying the same data.
    Ping(&'a str),
    /// `3`: heartbeat answer.
    Pong(&'a str),
    /// `4…`: a Socket.IO packet.
    Message(&'a str),
    /// `5`: transport upgrade (unused over a websocket-only session).
    Upgrade,
    /// `6`: nothing.
    Noop,
}

/// Parses one Engine.IO text message.
pub fn parse_engine(text: &str) -> Result<EnginePacket<'_>, ParseError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(ParseError("empty engine.io packet"))?;
    let rest = chars.as_str();
    Ok(match kind {
        '0' => EnginePacket::Open(rest),
        '1' => EnginePacket::Close,
        '2' => EnginePacket::Ping(rest),
        '3' => EnginePacket::Pong(rest),
        '4' => EnginePacket::Message(rest),
        '5' => EnginePacket::Upgrade,
        '6' => EnginePacket::Noop,
        _ => return Err(ParseError("unknown engine.io packet type")),
    })
}

/// The JSON of the Engine.IO open packet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInfo {
    /// Session id.
    pub sid: String,
    /// How often the server pings, in milliseconds.
    pub ping_interval: u64,
    /// How long the server waits for a pong, in milliseconds.
    pub ping_timeout: u64,
    /// Largest message the server accepts.
    #[serde(default)]
    pub max_payload: u64,
}

/// Parses the JSON of an open packet.
pub fn parse_open(json: &str) -> Result<OpenInfo, ParseError> {
    serde_json::from_str(json).map_err(|_| ParseError("malformed engine.io open packet"))
}

/// A Socket.IO v5 packet (the payload of an Engine.IO message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPacket<'a> {
    /// What it is.
    pub kind: SocketKind,
    /// Number of binary attachments that follow (binary kinds only).
    pub attachments: usize,
    /// Namespace (`/` when absent).
    pub namespace: &'a str,
    /// Acknowledgement id, if the sender wants one.
    pub ack: Option<u64>,
    /// The JSON payload (may be empty).
    pub data: &'a str,
}

/// Socket.IO packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// `0`
    Connect,
    /// `1`
    Disconnect,
    /// `2`
    Event,
    /// `3`
    Ack,
    /// `4`
    ConnectError,
    /// `5`
    BinaryEvent,
    /// `6`
    BinaryAck,
}

/// Parses a Socket.IO packet: `<type>[<attachments>-][<namespace>,][<ack id>][<json>]`.
pub fn parse_socket(text: &str) -> Result<SocketPacket<'_>, ParseError> {
    let bytes = text.as_bytes();
    let kind = match bytes.first() {
        Some(b'0') => SocketKind::Connect,
        Some(b'1') => SocketKind::Disconnect,
        Some(b'2') => SocketKind::Event,
        Some(b'3') => SocketKind::Ack,
        Some(b'4') => SocketKind::ConnectError,
        Some(b'5') => SocketKind::BinaryEvent,
        Some(b'6') => SocketKind::BinaryAck,
        _ => return Err(ParseError("unknown socket.io packet type")),
    };
    let mut i = 1;
    let mut attachments = 0;
    if matches!(kind, SocketKind::BinaryEvent | SocketKind::BinaryAck) {
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || bytes.get(i + digits) != Some(&b'-') {
            return Err(ParseError("binary packet without attachment count"));
        }
        attachments = text[i..i + digits]
            .parse()
            .map_err(|_| ParseError("attachment count out of range"))?;
        i += digits + 1;
    }
    let mut namespace = "/";
    if bytes.get(i) == Some(&b'/') {
        let end = text[i..].find(',').map_or(text.len(), |c| i + c);
        namespace = &text[i..end];
        i = (end + 1).min(text.len());
    }
    let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let ack = if digits > 0 {
        let id = text[i..i + digits]
            .parse()
            .map_err(|_| ParseError("ack id out of range"))?;
        i += digits;
        Some(id)
    } else {
        None
    };
    Ok(SocketPacket {
        kind,
        attachments,
        namespace,
        ack,
        data: &text[i..],
    })
}

/// The name of an event from its JSON payload `["name", …]`. Event names with escapes are not
/// supported (the baseline uses plain ASCII names); this avoids a JSON parse per message on the
/// load generator's hot path.
pub fn event_name(data: &str) -> Option<&str> {
    let rest = data.strip_prefix("[\"")?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    (!name.contains('\\')).then_some(name)
}

/// The Engine.IO message that announces a Socket.IO event on the default namespace with one
/// binary attachment; the attachment follows as a binary WebSocket message.
pub fn binary_event_header(name: &str) -> String {
    format!("451-[\"{name}\",{{\"_placeholder\":true,\"num\":0}}]")
}

/// The Engine.IO message of a Socket.IO event with one JSON argument, on the default namespace.
pub fn json_event(name: &str, arg: &serde_json::Value) -> String {
    format!("42[\"{name}\",{arg}]")
}

/// The Engine.IO message that connects to the default namespace.
pub const CONNECT_DEFAULT_NAMESPACE: &str = "40";

/// The Engine.IO pong that answers a ping without data.
pub const PONG: &str = "3";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_packets_parse_by_their_type_digit() {
        assert_eq!(parse_engine("2").unwrap(), EnginePacket::Ping(""));
        assert_eq!(parse_engine("3probe").unwrap(), EnginePacket::Pong("probe"));
        assert_eq!(parse_engine("40").unwrap(), EnginePacket::Message("0"));
        assert_eq!(parse_engine("1").unwrap(), EnginePacket::Close);
        assert_eq!(parse_engine("6").unwrap(), EnginePacket::Noop);
        assert!(parse_engine("").is_err());
        assert!(parse_engine("9").is_err());
    }

    #[test]
    fn open_packet_as_sent_by_socket_io_4_8() {
        let text = r#"0{"sid":"iEmSOo_ZUfo1XrzsAAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let EnginePacket::Open(json) = parse_engine(text).unwrap() else {
            panic!("not an open packet")
        };
        let open = parse_open(json).unwrap();
        assert_eq!(open.sid, "iEmSOo_ZUfo1XrzsAAAA");
        assert_eq!(
            (open.ping_interval, open.ping_timeout, open.max_payload),
            (25000, 20000, 1_000_000)
        );
        assert!(parse_open("{").is_err());
    }

    #[test]
    fn binary_event_as_emitted_by_socket_io_4_8() {
        let text = r#"451-["batch",{"_placeholder":true,"num":0}]"#;
        let EnginePacket::Message(sio) = parse_engine(text).unwrap() else {
            panic!("not a message")
        };
        let p = parse_socket(sio).unwrap();
        assert_eq!(p.kind, SocketKind::BinaryEvent);
        assert_eq!((p.attachments, p.namespace, p.ack), (1, "/", None));
        assert_eq!(event_name(p.data), Some("batch"));
        // What we send is exactly what the server emits.
        assert_eq!(binary_event_header("batch"), text);
    }

    #[test]
    fn json_event_as_emitted_by_socket_io_4_8() {
        let text = json_event("cursor", &serde_json::json!({ "x": 5, "y": -7 }));
        assert_eq!(text, r#"42["cursor",{"x":5,"y":-7}]"#);
        let EnginePacket::Message(sio) = parse_engine(&text).unwrap() else {
            panic!("not a message")
        };
        let p = parse_socket(sio).unwrap();
        assert_eq!((p.kind, p.attachments), (SocketKind::Event, 0));
        assert_eq!(event_name(p.data), Some("cursor"));
    }

    #[test]
    fn socket_packets_with_namespace_ack_and_connect_data() {
        let p = parse_socket(r#"0{"sid":"BYeUfWu77XsrUNJSAAAA"}"#).unwrap();
        assert_eq!(p.kind, SocketKind::Connect);
        assert_eq!(p.data, r#"{"sid":"BYeUfWu77XsrUNJSAAAA"}"#);
        let p = parse_socket(r#"2/admin,12["hi",1]"#).unwrap();
        assert_eq!(
            (p.kind, p.namespace, p.ack),
            (SocketKind::Event, "/admin", Some(12))
        );
        assert_eq!(event_name(p.data), Some("hi"));
        let p = parse_socket("1/admin,").unwrap();
        assert_eq!(
            (p.kind, p.namespace, p.data),
            (SocketKind::Disconnect, "/admin", "")
        );
        let p =
            parse_socket(r#"62-/x,7[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
                .unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.ack),
            (SocketKind::BinaryAck, 2, Some(7))
        );
        assert!(parse_socket("5[]").is_err());
        assert!(parse_socket("x").is_err());
        assert_eq!(event_name(r#"["a\"b"]"#), None);
        assert_eq!(event_name("{}"), None);
    }
}
