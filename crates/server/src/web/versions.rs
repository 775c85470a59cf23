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
//! - `PUT /api/rooms/{room}/history` with `{"viewers": false}` (or `true`) and an edit token:
//!   whether view links may read the versions (yes until an editor says no) → `200
//!   {"viewers": …}`.
//!
//! Both reads need `Authorization: Bearer <view or edit token>`; without a valid one: 403, the
//! same answer as for a room that does not exist. A view token of a room whose editors keep
//! its history to themselves gets 403 too, saying so. A version weighs up to twice a board, so one
//! client address may make [`VERSION_READS_PER_MIN`] reads a minute (429 beyond).

use axum::Json;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kokuban_protocol::{Capability, RoomId};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, bearer, check_origin};
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

const PRIVATE: &str = "the editors of this board keep its history to themselves";

#[derive(Serialize)]
struct Listing {
    checkpoints: Vec<CheckpointInfo>,
    /// Whether view links may read them.
    viewers: bool,
}

#[derive(Serialize, Deserialize)]
struct Access {
    viewers: bool,
}

/// The room a read names, if the request's token may read its versions; and whether view
/// links may.
async fn readable(
    state: &AppState,
    room: String,
    headers: &HeaderMap,
) -> Result<(RoomId, bool), ApiError> {
    let (room, capability, _) = bearer(state, room, headers, REFUSED).await?;
    let viewers = state
        .sequencer
        .history_for_viewers(&room)
        .await
        .map_err(|e| ApiError::Internal(format!("reading the settings of room {room}: {e}")))?;
    if capability == Capability::View && !viewers {
        return Err(ApiError::Forbidden(PRIVATE));
    }
    Ok((room, viewers))
}

/// `GET /api/rooms/{room}/checkpoints`.
pub(super) async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admit(&state, peer, &headers)?;
    let (room, viewers) = readable(&state, room, &headers).await?;
    let checkpoints = state
        .sequencer
        .checkpoints(&room)
        .await
        .map_err(|e| ApiError::Internal(format!("listing the versions of room {room}: {e}")))?;
    let mut response = Json(Listing {
        checkpoints,
        viewers,
    })
    .into_response();
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
    let (room, _) = readable(&state, room, &headers).await?;
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

/// `PUT /api/rooms/{room}/history`.
pub(super) async fn set_access(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers, "history access")?;
    let (room, capability, _) = bearer(&state, room, &headers, REFUSED).await?;
    if capability != Capability::Edit {
        return Err(ApiError::Forbidden(REFUSED));
    }
    let access: Access = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadRequest("the body must be {\"viewers\": true} or {\"viewers\": false}")
    })?;
    let found = state
        .sequencer
        .set_history_for_viewers(&room, access.viewers)
        .await
        .map_err(|e| ApiError::Internal(format!("setting the history of room {room}: {e}")))?;
    if !found {
        return Err(ApiError::Forbidden(REFUSED));
    }
    tracing::info!(%room, viewers = access.viewers, "history access set");
    Ok(Json(access).into_response())
}
