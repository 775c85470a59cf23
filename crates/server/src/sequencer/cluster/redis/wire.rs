//! What travels to and from Redis besides the commands themselves: the messages on a room's
//! channel, the replies of the scripts, and the commands a room's writer sends, with what
//! became of each.

use bytes::Bytes;
use kokuban_protocol::{Epoch, MemberId, Seq};
use redis::Value;

use super::Unreachable;

// What travels on a room's channel.

/// A message from a room's channel.
#[derive(Debug, Clone)]
pub(crate) enum Inbound {
    /// A sequenced op of history `epoch`.
    Op { epoch: Epoch, entry: LogEntry },
    /// The room's history was replaced.
    Reset,
    /// A presence or cursor frame from another node, to forward as it is.
    Ephemeral { node: u64, frame: Bytes },
    /// The room's links were reset: tokens of older generations no longer open it.
    Links { generation: u64 },
}

/// The `P` message for a presence or cursor frame from `node`.
pub(crate) fn ephemeral_message(node: u64, frame: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(17 + frame.len());
    m.push(b'P');
    m.extend_from_slice(format!("{node:016x}").as_bytes());
    m.extend_from_slice(frame);
    m
}

pub(super) fn parse_inbound(payload: &[u8]) -> Option<Inbound> {
    let (&kind, rest) = payload.split_first()?;
    match kind {
        b'O' => {
            let mut parts = rest.splitn(5, |&b| b == b'\n');
            let epoch = parse_u64(parts.next()?)?;
            let seq = parse_u64(parts.next()?)?;
            let author = parse_u64(parts.next()?)?;
            let n = parse_u64(parts.next()?)?;
            let op = Bytes::copy_from_slice(parts.next()?);
            Some(Inbound::Op {
                epoch: Epoch(epoch),
                entry: LogEntry {
                    seq: Seq(seq),
                    author: MemberId(author),
                    n,
                    op,
                },
            })
        }
        b'E' => Some(Inbound::Reset),
        b'L' => Some(Inbound::Links {
            generation: parse_u64(rest)?,
        }),
        b'P' if rest.len() >= 16 => {
            let node = u64::from_str_radix(std::str::from_utf8(&rest[..16]).ok()?, 16).ok()?;
            Some(Inbound::Ephemeral {
                node,
                frame: Bytes::copy_from_slice(&rest[16..]),
            })
        }
        _ => None,
    }
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

// Replies.

pub(super) fn as_bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

pub(super) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => parse_u64(as_bytes(other)?),
    }
}

pub(super) fn as_array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) => Some(a),
        _ => None,
    }
}

pub(super) fn malformed(what: &str) -> Unreachable {
    Unreachable(format!("unexpected reply to {what}"))
}

/// One op from the log (or the channel).
#[derive(Debug, Clone)]
pub(crate) struct LogEntry {
    pub seq: Seq,
    pub author: MemberId,
    /// Its number among its author's ops.
    pub n: u64,
    /// The author's encoded `ClientMsg::Op`.
    pub op: Bytes,
}

/// A member as another node announced it.
#[derive(Debug, Clone)]
pub(crate) struct Announced {
    pub member: MemberId,
    pub node: u64,
    /// The `Presence(Joined)` frame its node encoded.
    pub frame: Bytes,
}

/// A room as read from Redis.
#[derive(Debug)]
pub(crate) struct RoomRead {
    /// The history (`None`: the room has none, it was lost or never created).
    pub epoch: Option<Epoch>,
    /// The last seq given out.
    pub head: Seq,
    /// The snapshot's history, seq and (when asked for) board.
    pub snapshot: Option<(Epoch, Seq, Bytes)>,
    /// Log entries after the seq asked for, in order, at most a chunk.
    pub entries: Vec<LogEntry>,
    /// Members whose expiry has not passed (when asked for).
    pub members: Vec<Announced>,
    /// Each author's last op number applied (when asked for).
    pub authors: Vec<(MemberId, u64)>,
    /// The author and number of the op at the seq asked for, if the log still holds it.
    pub at: Option<(MemberId, u64)>,
    /// Redis's clock when it read, in ms.
    pub now_ms: u64,
}

pub(super) fn parse_entries(v: &Value) -> Option<Vec<LogEntry>> {
    let mut out = Vec::new();
    for e in as_array(v)? {
        let [id, fields] = as_array(e)? else {
            return None;
        };
        let id = std::str::from_utf8(as_bytes(id)?).ok()?;
        let seq = id.split_once('-')?.0.parse().ok()?;
        let fields = as_array(fields)?;
        let (mut author, mut n, mut op) = (None, 0, None);
        for pair in fields.chunks(2) {
            if let [k, v] = pair {
                match as_bytes(k)? {
                    b"a" => author = as_u64(v),
                    b"n" => n = as_u64(v)?,
                    b"o" => op = as_bytes(v).map(Bytes::copy_from_slice),
                    _ => {}
                }
            }
        }
        out.push(LogEntry {
            seq: Seq(seq),
            author: MemberId(author?),
            n,
            op: op?,
        });
    }
    Some(out)
}

/// Parses `author → last op number` pairs.
pub(crate) fn parse_authors(v: &Value) -> Option<Vec<(MemberId, u64)>> {
    as_array(v)?
        .chunks(2)
        .map(|pair| match pair {
            [a, n] => Some((MemberId(as_u64(a)?), as_u64(n)?)),
            _ => None,
        })
        .collect()
}

/// Parses `member → expiry|node|frame` pairs, keeping those alive at `now_ms` (all, if `None`).
pub(super) fn parse_members(v: &Value, now_ms: Option<u64>) -> Option<Vec<Announced>> {
    let mut out = Vec::new();
    for pair in as_array(v)?.chunks(2) {
        let [field, value] = pair else { return None };
        let member = MemberId(as_u64(field)?);
        let value = as_bytes(value)?;
        let mut parts = value.splitn(3, |&b| b == b'|');
        let expiry = parse_u64(parts.next()?)?;
        let node = u64::from_str_radix(std::str::from_utf8(parts.next()?).ok()?, 16).ok()?;
        let frame = Bytes::copy_from_slice(parts.next()?);
        if now_ms.is_some_and(|now| expiry < now) {
            continue;
        }
        out.push(Announced {
            member,
            node,
            frame,
        });
    }
    Some(out)
}

// Commands the room's writer sends, in order, pipelined.

/// One command of a room's ordered writer.
#[derive(Debug)]
pub(crate) enum Command {
    /// Sequence op `n` of `author` (`op`: the encoded `ClientMsg::Op`), if the history is
    /// still `epoch` and not behind `head`, and Redis's clock is not past `deadline_ms`.
    Sequence {
        epoch: Epoch,
        head: Seq,
        author: MemberId,
        n: u64,
        op: Vec<u8>,
        deadline_ms: u64,
    },
    /// A member of this node joined or changed its profile (`frame`: its `Joined` or `Updated`
    /// presence frame; `joined`: its `Joined` frame, kept in the hash).
    Announce {
        member: MemberId,
        joined: Bytes,
        frame: Bytes,
    },
    /// A member of this node left (`frame`: its `Left` presence frame).
    Depart { member: MemberId, frame: Bytes },
    /// An ephemeral frame for the other nodes (a cursor).
    Publish { frame: Bytes },
    /// Refresh this node's members (id, `Joined` frame) and list everyone's.
    Heartbeat { members: Vec<(MemberId, Bytes)> },
}

/// What became of one [`Command`].
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The op has this seq in the history it was sent for.
    Sequenced(Seq),
    /// The node's view of the history is outdated: not sequenced.
    Stale,
    /// The history is gone or went back: not sequenced.
    Lost,
    /// A retry of an op applied at this seq.
    Duplicate(Seq),
    /// At or below its author's last number, too old to know where: never applied now.
    Decided,
    /// Past its deadline: never applied.
    Late,
    /// Done (announce, depart, publish).
    Done,
    /// The members of the room on every node.
    Members(Vec<Announced>),
    /// Redis refused it (e.g. out of memory): not done.
    Refused(String),
    /// The room's slot is served by another master, or is moving (`MOVED`, `ASK`, `TRYAGAIN`,
    /// `CLUSTERDOWN`): not done, and to be sent again where the slot is served.
    Moved,
}

/// What became of `command`, from its reply (`None`: a reply it cannot have).
pub(super) fn outcome(command: &Command, v: &Value) -> Option<Outcome> {
    Some(match command {
        Command::Sequence { .. } => {
            let parts = as_array(v)?;
            match as_bytes(parts.first()?)? {
                b"ok" => Outcome::Sequenced(Seq(as_u64(parts.get(1)?)?)),
                b"stale" => Outcome::Stale,
                b"lost" => Outcome::Lost,
                b"dup" => Outcome::Duplicate(Seq(as_u64(parts.get(1)?)?)),
                b"decided" => Outcome::Decided,
                b"late" => Outcome::Late,
                _ => return None,
            }
        }
        Command::Heartbeat { .. } => Outcome::Members(parse_members(v, None)?),
        Command::Announce { .. } | Command::Depart { .. } | Command::Publish { .. } => {
            Outcome::Done
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_messages_parse() {
        let m = parse_inbound(b"O12\n7\n99\n4\n\x01\x02\n\x03").unwrap();
        let Inbound::Op { epoch, entry } = m else {
            panic!()
        };
        assert_eq!(
            (epoch, entry.seq, entry.author, entry.n),
            (Epoch(12), Seq(7), MemberId(99), 4)
        );
        assert_eq!(&entry.op[..], b"\x01\x02\n\x03");
        assert!(matches!(parse_inbound(b"E5"), Some(Inbound::Reset)));
        let p = ephemeral_message(0xabc, b"frame");
        let Some(Inbound::Ephemeral { node, frame }) = parse_inbound(&p) else {
            panic!()
        };
        assert_eq!((node, &frame[..]), (0xabc, &b"frame"[..]));
        assert!(parse_inbound(b"Ox\n1\n2\n").is_none());
        assert!(parse_inbound(b"").is_none());
    }

    #[test]
    fn member_entries_parse_and_expire() {
        let v = Value::Array(vec![
            Value::BulkString(b"5".to_vec()),
            Value::BulkString(b"1000|00000000000000ff|J".to_vec()),
            Value::BulkString(b"6".to_vec()),
            Value::BulkString(b"3000|0000000000000001|K|x".to_vec()),
        ]);
        let live = parse_members(&v, Some(2000)).unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].member, MemberId(6));
        assert_eq!(live[0].node, 1);
        assert_eq!(&live[0].frame[..], b"K|x");
        assert_eq!(parse_members(&v, None).unwrap().len(), 2);
    }
}
