//! The two HTTP requests the benchmark makes (create a room, check readiness), over a plain
//! HTTP/1.1 connection: a full HTTP client would be the largest dependency of the harness for
//! two requests to a loopback server.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use kokuban_protocol::{RoomId, Token};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A response's status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body (chunked encoding removed).
    pub body: Vec<u8>,
}

/// Sends one request with `Connection: close` and reads the whole response.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<Response> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE_BYTES as u64)
            .read_to_end(&mut raw)
            .await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .with_context(|| format!("{method} {path}: timed out"))??;
    parse_response(&raw).with_context(|| format!("{method} {path}: bad response"))
}

/// Parses a complete HTTP/1.1 response (read until the server closed the connection).
pub fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).context("headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("no status line")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status code")?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad content-length")?);
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(n) = length {
        if body.len() < n {
            bail!("body shorter than its content-length");
        }
        body[..n].to_vec()
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("unterminated chunk size")?;
        let size_text = std::str::from_utf8(&data[..eol])?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A room created through the API, with both capability tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLinks {
    /// The room.
    pub room: RoomId,
    /// Token of the edit link.
    pub edit: Token,
    /// Token of the view link.
    pub view: Token,
}

#[derive(Deserialize)]
struct CreatedRoom {
    room: String,
    edit_url: String,
    view_url: String,
}

/// Parses the JSON answer of `POST /api/rooms`: the tokens are in the links' fragments,
/// `/r/{room}#edit={token}` and `/r/{room}#view={token}`.
pub fn parse_room_links(json: &[u8]) -> anyhow::Result<RoomLinks> {
    let created: CreatedRoom = serde_json::from_slice(json).context("room JSON")?;
    let token = |url: &str, key: &str| -> anyhow::Result<Token> {
        let fragment = url.split_once('#').context("link without fragment")?.1;
        let value = fragment
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("link without {key} token"))?;
        Ok(Token::new(value)?)
    };
    Ok(RoomLinks {
        room: RoomId::new(created.room)?,
        edit: token(&created.edit_url, "edit")?,
        view: token(&created.view_url, "view")?,
    })
}

/// Creates a room on a Kokuban node.
pub async fn create_room(addr: SocketAddr) -> anyhow::Result<RoomLinks> {
    let response = request(addr, "POST", "/api/rooms").await?;
    if response.status != 201 {
        bail!("POST /api/rooms answered {}", response.status);
    }
    parse_room_links(&response.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_chunks_or_neither() {
        let r =
            parse_response(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}extra").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, b"{}".as_slice()));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (503, b"not ready".as_slice())
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab").is_err());
    }

    #[test]
    fn room_links_carry_tokens_in_the_fragment() {
        let json = br#"{"room":"abc_123","edit_url":"/r/abc_123#edit=EDIT-tok","view_url":"/r/abc_123#view=view_tok"}"#;
        let links = parse_room_links(json).unwrap();
        assert_eq!(links.room.as_str(), "abc_123");
        assert_eq!(links.edit.as_str(), "EDIT-tok");
        assert_eq!(links.view.as_str(), "view_tok");
        assert!(parse_room_links(br#"{"room":"a","edit_url":"/r/a","view_url":"/r/a"}"#).is_err());
    }
}
