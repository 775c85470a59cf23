//! A pub/sub connection spoken in RESP2 directly: the `redis` crate's subscriber has no
//! sharded pub/sub (`SSUBSCRIBE`), and does not surface the `sunsubscribe` Redis pushes
//! unasked when a slot moves away, which is exactly what a node must act on.
//!
//! Only what a subscriber needs: connecting (over TLS for `rediss://`, with `AUTH` from the
//! URL), writing commands as arrays of bulk strings, and reading replies.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use redis::{ConnectionAddr, IntoConnectionInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Unreachable;
use super::tls::Tls;

/// A reply, as far as a subscriber needs to tell them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    /// The bytes of a bulk or simple string.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(Some(b)) => Some(b),
            Reply::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

/// Replies larger than this are refused as a broken stream (channel messages are op frames,
/// far smaller).
const MAX_BULK: usize = 64 * 1024 * 1024;

/// Parses one reply from the front of `buf`, consuming it; `Ok(None)` if more bytes are needed.
pub(super) fn parse(buf: &mut BytesMut) -> Result<Option<Reply>, String> {
    let mut at = 0;
    match parse_at(buf, &mut at, 0)? {
        Some(r) => {
            buf.advance(at);
            Ok(Some(r))
        }
        None => Ok(None),
    }
}

fn line(buf: &[u8], at: &mut usize) -> Option<Vec<u8>> {
    let rest = buf.get(*at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let l = rest[..end].to_vec();
    *at += end + 2;
    Some(l)
}

fn number(l: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(l)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad number in a reply: {:?}", String::from_utf8_lossy(l)))
}

fn parse_at(buf: &[u8], at: &mut usize, depth: usize) -> Result<Option<Reply>, String> {
    if depth > 8 {
        return Err("replies nested too deep".into());
    }
    let Some(&kind) = buf.get(*at) else {
        return Ok(None);
    };
    *at += 1;
    let Some(l) = line(buf, at) else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(&l).into_owned();
    Ok(Some(match kind {
        b'+' => Reply::Simple(text()),
        b'-' => Reply::Error(text()),
        b':' => Reply::Int(number(&l)?),
        b'$' => {
            let n = number(&l)?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let n = usize::try_from(n).map_err(|e| e.to_string())?;
                if n > MAX_BULK {
                    return Err(format!("a reply of {n} bytes"));
                }
                let Some(data) = buf.get(*at..*at + n) else {
                    return Ok(None);
                };
                match buf.get(*at + n..*at + n + 2) {
                    None => return Ok(None),
                    Some(b"\r\n") => {}
                    Some(_) => return Err("a bulk reply longer than it said".into()),
                }
                let data = data.to_vec();
                *at += n + 2;
                Reply::Bulk(Some(data))
            }
        }
        b'*' => {
            let n = number(&l)?;
            let mut items = Vec::with_capacity(n.clamp(0, 16) as usize);
            for _ in 0..n.max(0) {
                match parse_at(buf, at, depth + 1)? {
                    Some(r) => items.push(r),
                    None => return Ok(None),
                }
            }
            Reply::Array(items)
        }
        other => return Err(format!("unknown reply type {:?}", other as char)),
    }))
}

/// Appends `args` to `out` as one command.
pub(super) fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// What reads replies from a connection.
pub(super) struct Reader {
    half: Box<dyn AsyncRead + Send + Unpin>,
    buf: BytesMut,
    /// Whether any reply was read yet: a Redis that closes before its first one is told apart.
    answered: bool,
}

/// What writes commands to a connection.
pub(super) struct Writer(Box<dyn AsyncWrite + Send + Unpin>);

/// How the error of a connection closed before its first reply starts: what a TLS-only Redis
/// does to a client speaking plain text.
pub(super) const CLOSED_UNANSWERED: &str = "Redis closed the connection without answering";

/// The host and port of a Redis URL, and whether it asks for TLS.
fn address(info: &redis::ConnectionInfo) -> Result<(String, u16, bool), Unreachable> {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => Ok((host.clone(), *port, false)),
        ConnectionAddr::TcpTls { host, port, .. } => Ok((host.clone(), *port, true)),
        other => Err(Unreachable(format!(
            "unsupported Redis address for pub/sub: {other}"
        ))),
    }
}

/// Whether whatever listens at `url`'s host and port speaks TLS, or plain RESP, the other way
/// round from what the URL asks for: `Some(true)` when a `redis://` URL names a TLS-only
/// Redis, `Some(false)` when a `rediss://` URL names a plain one; `None` when it cannot tell.
pub(super) async fn speaks_the_other_way(url: &str, tls: &Tls, timeout: Duration) -> Option<bool> {
    let info = url.into_connection_info().ok()?;
    let (host, port, secure) = address(&info).ok()?;
    let probe = async {
        let stream = TcpStream::connect((host.as_str(), port)).await.ok()?;
        if secure {
            // A plain Redis answers an inline PING with a reply; a TLS one waits for a handshake
            // (or closes).
            let (r, mut w) = stream.into_split();
            w.write_all(b"PING\r\n").await.ok()?;
            let mut reader = Reader {
                half: Box::new(r),
                buf: BytesMut::new(),
                answered: false,
            };
            reader.read().await.ok().map(|_| false)
        } else {
            // A handshake that gets as far as the certificate (trusted or not) is a TLS server's.
            match tls.connect(stream, &host).await {
                Ok(_) => Some(true),
                Err(e) if e.0.starts_with(super::tls::CERTIFICATE_REFUSED) => Some(true),
                Err(_) => None,
            }
        }
    };
    tokio::time::timeout(timeout, probe).await.ok().flatten()
}

/// Connects to the Redis at `url` (over TLS, trusting `tls`, for `rediss://`), authenticates
/// as the URL says and names the connection `name`, within `timeout`.
pub(super) async fn open(
    url: &str,
    tls: &Tls,
    name: &str,
    timeout: Duration,
) -> Result<(Reader, Writer), Unreachable> {
    let info = url
        .into_connection_info()
        .map_err(|e| Unreachable(format!("bad Redis URL: {e}")))?;
    let (host, port, secure) = address(&info)?;
    let settings = info.redis_settings();
    let open = async {
        let stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| Unreachable(format!("{host}:{port}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (half, write): (
            Box<dyn AsyncRead + Send + Unpin>,
            Box<dyn AsyncWrite + Send + Unpin>,
        ) = if secure {
            let stream = tls
                .connect(stream, &host)
                .await
                .map_err(|e| Unreachable(format!("{host}:{port}: {}", e.0)))?;
            let (r, w) = tokio::io::split(stream);
            (Box::new(r), Box::new(w))
        } else {
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        };
        let mut reader = Reader {
            half,
            buf: BytesMut::with_capacity(64 * 1024),
            answered: false,
        };
        let mut writer = Writer(write);
        let mut out = Vec::new();
        if let Some(password) = settings.password() {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = settings.username() {
                auth.push(user.as_bytes());
            }
            auth.push(password.as_bytes());
            encode(&mut out, &auth);
        }
        encode(&mut out, &[b"CLIENT", b"SETNAME", name.as_bytes()]);
        writer.write(&out).await?;
        if settings.password().is_some() {
            match reader.read().await? {
                Reply::Simple(_) => {}
                Reply::Error(e) => return Err(Unreachable(format!("AUTH refused: {e}"))),
                other => return Err(Unreachable(format!("AUTH answered {other:?}"))),
            }
        }
        match reader.read().await? {
            Reply::Simple(_) => {}
            other => return Err(Unreachable(format!("CLIENT SETNAME answered {other:?}"))),
        }
        Ok((reader, writer))
    };
    tokio::time::timeout(timeout, open)
        .await
        .unwrap_or_else(|_| Err(Unreachable(format!("{host}:{port}: no answer in time"))))
}

impl Writer {
    /// Writes commands already encoded.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), Unreachable> {
        // A TLS stream holds records until flushed; a TCP stream's flush does nothing.
        let written = async {
            self.0.write_all(bytes).await?;
            self.0.flush().await
        };
        written.await.map_err(|e| Unreachable(e.to_string()))
    }
}

impl Reader {
    /// Reads the next reply (cancel-safe: bytes read stay buffered).
    pub async fn read(&mut self) -> Result<Reply, Unreachable> {
        loop {
            if let Some(r) = parse(&mut self.buf).map_err(Unreachable)? {
                self.answered = true;
                return Ok(r);
            }
            let unanswered = !self.answered && self.buf.is_empty();
            let n = match self.half.read_buf(&mut self.buf).await {
                Ok(0) if unanswered => return Err(Unreachable(CLOSED_UNANSWERED.into())),
                Ok(n) => n,
                Err(e) => {
                    // A TLS refusal says why; a reset before any reply is what a TLS-only
                    // Redis does to plain text.
                    let why = super::tls::failure(&e).unwrap_or_else(|| match unanswered {
                        true => CLOSED_UNANSWERED.into(),
                        false => e.to_string(),
                    });
                    return Err(Unreachable(why));
                }
            };
            if n == 0 {
                return Err(Unreachable("Redis closed the connection".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_whole_or_wait_for_more() {
        let first = b"*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n";
        let whole = [&first[..], b":5\r\n-MOVED 1 h:2\r\n"].concat();
        for cut in 0..first.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            assert_eq!(parse(&mut buf).unwrap(), None, "cut at {cut}");
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
        let mut buf = BytesMut::from(&whole[..]);
        assert_eq!(
            parse(&mut buf).unwrap(),
            Some(Reply::Array(vec![
                Reply::Bulk(Some(b"smessage".to_vec())),
                Reply::Bulk(Some(b"ch".to_vec())),
                Reply::Bulk(Some(b"a\r\nb".to_vec())),
            ]))
        );
        assert_eq!(parse(&mut buf).unwrap(), Some(Reply::Int(5)));
        assert_eq!(
            parse(&mut buf).unwrap(),
            Some(Reply::Error("MOVED 1 h:2".into()))
        );
        assert_eq!(parse(&mut buf).unwrap(), None);
    }

    #[test]
    fn a_broken_stream_is_an_error_not_a_panic() {
        for bad in [&b"?x\r\n"[..], b"$abc\r\n", b"*-x\r\n", b"$99999999999\r\n"] {
            assert!(parse(&mut BytesMut::from(bad)).is_err(), "{bad:?}");
        }
    }
}
