//! The images of a room's board, kept by the SHA-256 of their bytes (see [`crate::blob`]).
//!
//! - `POST /api/rooms/{room}/blobs` with the image as the body, its `Content-Type` and an edit
//!   token → `201 {"hash": "<sha-256, lowercase hex>"}`. Posting the same bytes again answers
//!   the same hash and keeps them once. `?hash=<hex>` says which hash the client computed: a
//!   body that does not have it (cut or damaged on the way) is refused with 400.
//! - `GET /api/rooms/{room}/blobs/{hash}` with a view or edit token → the image, its type, and
//!   headers that keep a browser from reading it as anything else.
//!
//! Refusals: 403 without a valid token (a view token for a POST too), the same answer as for a
//! room that does not exist; 415 for a type outside PNG, JPEG, WebP and GIF, or bytes that do
//! not begin as the declared type does; 413 over [`Config::max_image_bytes`] or over the room's
//! [`Config::max_room_image_bytes`]; 400 for an empty body or a malformed or mismatching hash;
//! 404 for a hash the room does not hold (an image of another room included). One client
//! address may post [`BLOB_UPLOADS_PER_MIN`] images a minute and read [`BLOB_READS_PER_MIN`]
//! (429 beyond); the node receives [`UPLOADS_IN_FLIGHT`] at once (503 beyond), each within
//! [`Config::upload_deadline`] (408 beyond).
//!
//! [`Config::upload_deadline`]: crate::Config::upload_deadline
//!
//! [`Config::max_image_bytes`]: crate::Config::max_image_bytes
//! [`Config::max_room_image_bytes`]: crate::Config::max_room_image_bytes

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use kokuban_protocol::Capability;

use super::{ApiError, AppState, bearer, check_origin};
use crate::blob::{Blob, BlobHash, BlobStored, ImageType, hash_of};

const REFUSED: &str = "this room does not exist or the link is not valid";

/// Images one client address may post per minute, as many at once: a handful dropped on a
/// board together goes through, a script filling boards gets one a second.
pub(crate) const BLOB_UPLOADS_PER_MIN: u32 = 60;

/// Images one client address may read per minute: a tab reads each image of a board once, so
/// this is a board of hundreds opened a few times, while a loop re-reading large images (each
/// up to `--max-image-bytes` out of the store) is slowed to ten a second.
pub(crate) const BLOB_READS_PER_MIN: u32 = 600;

/// The widest or tallest image a board takes, in pixels: what browsers draw on a canvas
/// without trouble.
pub(crate) const MAX_IMAGE_SIDE: u32 = 16_384;

/// The most pixels an image a board takes may have: decoded, 200 MB in every tab that shows
/// it, however few bytes it was sent as.
pub(crate) const MAX_IMAGE_PIXELS: u64 = 50_000_000;

/// Images a node receives at once, from everyone: each is held whole in memory until it is
/// checked and stored, so this times `--max-image-bytes` bounds what uploads can make the node
/// hold (80 MiB by default), however many are sent at once. Past it: 503, try again.
pub(crate) const UPLOADS_IN_FLIGHT: usize = 8;

/// `POST /api/rooms/{room}/blobs`.
pub(super) async fn upload(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers, "image upload")?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable("the server is shutting down"));
    }
    let client = state.client_ip(peer, &headers);
    if !state.blob_uploads.admit(client, Instant::now()) {
        return Err(ApiError::TooManyRequests(
            "too many images from this address; try again shortly",
            1,
        ));
    }
    let (room, capability, _) = bearer(&state, room, &headers, REFUSED).await?;
    if capability != Capability::Edit {
        return Err(ApiError::Forbidden(REFUSED));
    }
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(ImageType::from_content_type)
        .ok_or(ApiError::UnsupportedType(
            "a board takes PNG, JPEG, WebP and GIF images only (Content-Type image/png, \
             image/jpeg, image/webp or image/gif)",
        ))?;
    let claimed = claimed_hash(query.as_deref())?;
    let Ok(_receiving) = state.uploads_in_flight.clone().try_acquire_owned() else {
        return Err(ApiError::Unavailable(
            "the server is receiving as many images as it may at once; try again shortly",
        ));
    };
    let bytes = tokio::time::timeout(
        state.config.upload_deadline,
        read_capped(body, &headers, state.config.max_image_bytes),
    )
    .await
    .map_err(|_| ApiError::Timeout("the image took too long to arrive"))??;
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("the image is empty"));
    }
    if !kind.begins(&bytes) {
        return Err(ApiError::UnsupportedType(kind.not_this()));
    }
    // Small bytes can decode to a huge picture in every tab that shows it.
    match kind.size(&bytes) {
        None => return Err(ApiError::UnsupportedType(kind.not_this())),
        Some((w, h))
            if w == 0
                || h == 0
                || w > MAX_IMAGE_SIDE
                || h > MAX_IMAGE_SIDE
                || u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS =>
        {
            return Err(ApiError::TooLarge(format!(
                "an image may be up to {MAX_IMAGE_SIDE} pixels a side and {} megapixels;                  this one is {w}×{h}",
                MAX_IMAGE_PIXELS / 1_000_000
            )));
        }
        Some(_) => {}
    }
    let hash = hash_of(&bytes);
    if claimed.is_some_and(|c| c != hash) {
        return Err(ApiError::BadRequest(
            "hash mismatch: the bytes received do not have the SHA-256 given in ?hash=",
        ));
    }
    let size = bytes.len() as u64;
    let budget = state.config.max_room_image_bytes as u64;
    let blob = Blob { hash, kind, bytes };
    let stored = state
        .sequencer
        .store_blob(&room, blob, budget)
        .await
        .map_err(|e| {
            // The store's own words are for the log; the client learns it may try again.
            tracing::error!(%room, "storing an image failed: {e}");
            ApiError::Unavailable("the board store is unreachable; try again shortly")
        })?;
    match stored {
        BlobStored::Stored => {
            state.metrics.blobs_stored.fetch_add(1, Relaxed);
            state.metrics.blob_bytes_stored.fetch_add(size, Relaxed);
            tracing::debug!(%room, %hash, bytes = size, "image stored");
        }
        BlobStored::Known => {}
        BlobStored::OverBudget => {
            return Err(ApiError::TooLarge(format!(
                "this board's images are at their budget ({} together); start a new board \
                 for more images",
                in_units(state.config.max_room_image_bytes)
            )));
        }
        BlobStored::NoRoom => return Err(ApiError::Forbidden(REFUSED)),
    }
    let body = Json(serde_json::json!({ "hash": hash.to_string() }));
    Ok((StatusCode::CREATED, body).into_response())
}

/// `GET /api/rooms/{room}/blobs/{hash}`.
pub(super) async fn read(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((room, hash)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = state.client_ip(peer, &headers);
    if !state.blob_reads.admit(client, Instant::now()) {
        return Err(ApiError::TooManyRequests(
            "too many image reads from this address; try again shortly",
            1,
        ));
    }
    let (room, _, _) = bearer(&state, room, &headers, REFUSED).await?;
    let hash = BlobHash::parse(&hash).ok().ok_or(ApiError::BadRequest(
        "an image is named by its SHA-256: 64 hexadecimal digits",
    ))?;
    let blob = state
        .sequencer
        .blob(&room, hash)
        .await
        .map_err(|e| ApiError::Internal(format!("reading an image of room {room}: {e}")))?
        .ok_or(ApiError::Missing("this board has no image with this hash"))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(blob.kind.mime()),
            ),
            // The type is the one its bytes were checked against: no browser guesses another.
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // An image never changes under its hash; only a link to the room may read it.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            ),
            // Opened on its own, a damaged or hostile file still runs and loads nothing.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'"),
            ),
        ],
        blob.bytes,
    )
        .into_response())
}

/// The hash a `?hash=` query gives, if it gives one.
fn claimed_hash(query: Option<&str>) -> Result<Option<BlobHash>, ApiError> {
    let given = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("hash="));
    match given {
        None => Ok(None),
        Some(hex) => BlobHash::parse(hex)
            .ok()
            .map(Some)
            .ok_or(ApiError::BadRequest(
                "?hash= must be the image's SHA-256 as 64 hexadecimal digits",
            )),
    }
}

/// The body, refused with 413 once it passes `max` bytes: by its declared length before a
/// byte of it is read, or as it arrives. (Taking the body as a stream, not as `Bytes`, keeps
/// axum's own default limit, and its plain-text answer, out of the way.)
async fn read_capped(body: Body, headers: &HeaderMap, max: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::TooLarge(format!("an image may weigh up to {}", in_units(max)));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    // What is declared is not yet sent: room for the first megabyte at most, until it comes.
    let mut bytes = BytesMut::with_capacity(declared.map_or(0, |n| n.min(1 << 20) as usize));
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest("the image did not arrive whole"))?;
        if bytes.len() + chunk.len() > max {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// `bytes` as a person reads them: `10 MiB`, `512 KiB`, `100 bytes`.
fn in_units(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_names_its_hash_or_nothing_and_a_malformed_one_is_refused() {
        let hex = hash_of(b"x").to_string();
        assert!(matches!(claimed_hash(None), Ok(None)));
        assert!(matches!(claimed_hash(Some("other=1")), Ok(None)));
        let given = claimed_hash(Some(&format!("a=b&hash={hex}"))).unwrap();
        assert_eq!(given, Some(hash_of(b"x")));
        assert!(claimed_hash(Some("hash=abc")).is_err());
        assert!(claimed_hash(Some("hash=")).is_err());
    }

    #[test]
    fn sizes_read_in_the_largest_whole_unit() {
        assert_eq!(in_units(10 << 20), "10 MiB");
        assert_eq!(in_units(3 << 19), "1.5 MiB");
        assert_eq!(in_units(4096), "4 KiB");
        assert_eq!(in_units(1000), "1000 bytes");
    }
}
