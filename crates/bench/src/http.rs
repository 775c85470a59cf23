//! The HTTP requests the benchmark makes (create a room, check readiness, read metrics), through
//! the workspace's HTTP client (hyper's, from the test kit): one request per connection to a
//! loopback node, bounded in time.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use kokuban_protocol::{RoomId, Token};
pub use kokuban_testkit::http::Response;
use serde::Deserialize;

/// How long one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one request with `Connection: close` and reads the whole response.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<Response> {
    Ok(kokuban_testkit::http::Request::new(method, addr, path)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await?)
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
    fn room_links_carry_tokens_in_the_fragment() {
        let json = br#"{"room":"abc_123","edit_url":"/r/abc_123#edit=EDIT-tok","view_url":"/r/abc_123#view=view_tok"}"#;
        let links = parse_room_links(json).unwrap();
        assert_eq!(links.room.as_str(), "abc_123");
        assert_eq!(links.edit.as_str(), "EDIT-tok");
        assert_eq!(links.view.as_str(), "view_tok");
        assert!(parse_room_links(br#"{"room":"a","edit_url":"/r/a","view_url":"/r/a"}"#).is_err());
    }
}
