//! The versions of a room's board (checkpoints), for the app's History panel. Anyone with a
//! link to the room, view or edit, may browse them; bringing one back is an ordinary edit
//! (a Clear, then its items drawn again), so only editors can, through the room's order.
//!
//! - `GET /api/rooms/{room}/checkpoints` → `200 {"checkpoints": [{"id", "epoch", "seq",
//!   "reason", "authors", "items", "bytes"}, …]}`, newest first (`id`: ms since the Unix
//!   epoch, when it was kept; `reason`: `"interval"` or `"clear"`).
//! - `GET /api/rooms/{room}/checkpoints/{id}` → `200` with the board as an encoded snapshot
//!   (`application/octet-stream`, the board model's format), or 404.
//!
//! Both need `Authorization: Bearer <view or edit token>`; without a valid one: 403, the same
//! answer as for a room that does not exist. A version weighs up to twice a board, so one
//! client address may make [`VERSION_READS_PER_MIN`] reads a minute (429 beyond).

use axum::Json;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, AppState, bearer};
use crate::sequencer::room::CheckpointInfo;

const REFUSED: &str = "this room does not exist or the link is not valid";

/// Reads (listings and boards) one client address may make per minute, as many at once: a
/// History panel opened and a dozen versions looked at cost 13.
pub(crate) const VERSION_READS_PER_MIN: u32 = 120;

/// Takes one read from the client's allowance.
fn admit(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    let client = state.client_ip(peer, headers);
    if state.version_reads.admit(client, Instant::now()) {
        return Ok(());
    }
    Err(ApiError::TooManyRequests(
        "too many reads of this board's versions from this address; try again shortly",
        1,
    ))
}

#[derive(Serialize)]
struct Listing {
    checkpoints: Vec<CheckpointInfo>,
}

/// `GET /api/rooms/{room}/checkpoints`.
pub(super) async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admit(&state, peer, &headers)?;
    let (room, _, _) = bearer(&state, room, &headers, REFUSED).await?;
    let checkpoints = state
        .sequencer
        .checkpoints(&room)
        .await
        .map_err(|e| ApiError::Internal(format!("listing the versions of room {room}: {e}")))?;
    let mut response = Json(Listing { checkpoints }).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /api/rooms/{room}/checkpoints/{id}`.
pub(super) async fn board(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admit(&state, peer, &headers)?;
    let (room, _, _) = bearer(&state, room, &headers, REFUSED).await?;
    let id: u64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let board = state
        .sequencer
        .checkpoint_board(&room, id)
        .await
        .map_err(|e| ApiError::Internal(format!("reading a version of room {room}: {e}")))?
        .ok_or(ApiError::NotFound)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            // A version never changes; only a link to the room may read it.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            ),
        ],
        board,
    )
        .into_response())
}
