//! The WebSocket handshake (RFC 6455, section 4.2), done here rather than by axum so that the
//! upgraded connection is wrapped in the [`inbound`](super::inbound) meter before tungstenite
//! reads a byte of it.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocketConfig};

use super::ApiError;
use super::inbound::{Budget, Metered};

/// A session's WebSocket: tungstenite over the metered, upgraded connection.
pub(super) type Socket = WebSocketStream<Metered<TokioIo<hyper::upgrade::Upgraded>>>;

/// The connection of a handshake that checked out, handed over once its `101` has gone out.
#[derive(Debug)]
pub(super) struct Handover(OnUpgrade);

/// Checks the handshake of `request` and prepares the `101` to answer; a request that is not
/// a valid WebSocket handshake gets a `400` or `426` saying what is wrong.
pub(super) fn accept(request: &mut Request) -> Result<(Response, Handover), ApiError> {
    let key = check(request.method(), request.headers())?;
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|e| ApiError::Internal(format!("Sec-WebSocket-Accept: {e}")))?;
    let Some(upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        // The connection cannot be taken over (not served by hyper's HTTP/1.1).
        return Err(ApiError::UpgradeRequired(
            "this connection cannot be upgraded",
        ));
    };
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
        .header(header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(axum::body::Body::empty())
        .map_err(|e| ApiError::Internal(format!("101 answer: {e}")))?;
    Ok((response, Handover(upgrade)))
}

impl Handover {
    /// The WebSocket, once the `101` has gone out and hyper hands the connection over;
    /// `None` if the peer went away first.
    pub async fn socket(self, config: WebSocketConfig, budget: Budget) -> Option<Socket> {
        let upgraded = match self.0.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!("WebSocket upgrade failed: {e}");
                return None;
            }
        };
        let io = Metered::new(TokioIo::new(upgraded), budget);
        Some(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await)
    }
}

/// The handshake's key, if the request is a WebSocket handshake this server speaks.
fn check<'a>(method: &Method, headers: &'a HeaderMap) -> Result<&'a str, ApiError> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(ApiError::UpgradeRequired(
            "this address takes WebSocket connections only",
        ));
    }
    if method != Method::GET {
        return Err(ApiError::BadRequest(
            "a WebSocket handshake is a GET request",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(ApiError::UpgradeRequired(
            "only WebSocket version 13 is supported",
        ));
    }
    // The key is 16 random bytes in base64; anything else is not a browser's handshake.
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|k| k.to_str().ok())
        .filter(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k)
                .is_ok_and(|raw| raw.len() == 16)
        });
    key.ok_or(ApiError::BadRequest(
        "missing or malformed Sec-WebSocket-Key",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    const GOOD: [(&str, &str); 4] = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn status(pairs: &[(&'static str, &'static str)], method: Method) -> Option<StatusCode> {
        use axum::response::IntoResponse;
        check(&method, &headers(pairs))
            .err()
            .map(|e| e.into_response().status())
    }

    #[test]
    fn a_browser_handshake_passes_and_each_missing_part_is_named() {
        assert_eq!(status(&GOOD, Method::GET), None);
        let without = |name: &str| -> Vec<(&'static str, &'static str)> {
            GOOD.iter().copied().filter(|(n, _)| *n != name).collect()
        };
        assert_eq!(
            status(&without("sec-websocket-key"), Method::GET),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(&without("sec-websocket-version"), Method::GET),
            Some(StatusCode::UPGRADE_REQUIRED)
        );
        assert_eq!(
            status(&without("upgrade"), Method::GET),
            Some(StatusCode::UPGRADE_REQUIRED)
        );
        assert_eq!(
            status(&without("connection"), Method::GET),
            Some(StatusCode::UPGRADE_REQUIRED)
        );
        assert_eq!(status(&GOOD, Method::HEAD), Some(StatusCode::BAD_REQUEST));
        let mut short_key = without("sec-websocket-key");
        short_key.push(("sec-websocket-key", "c2hvcnQ="));
        assert_eq!(
            status(&short_key, Method::GET),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
