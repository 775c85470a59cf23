//! The HTTP surface: the app, the room API, health, metrics and the WebSocket upgrade.
//!
//! - [`assets`]: the web app's files;
//! - [`blobs`]: the images of a room's board;
//! - [`socket`]: a WebSocket connection, and its session's `select!` loop, where a member's
//!   bytes are written;
//! - [`hello`]: the Hello, the capability check, the join and the Welcome;
//! - [`refusal`]: every refusal (error code, text, close code, metric) in one table;
//! - [`upgrade`]: the WebSocket handshake, which hands the connection to [`inbound`]'s meter;
//! - [`versions`]: the versions of a room's board, for its History panel.

mod assets;
mod blobs;
mod conn;
mod hello;
mod inbound;
mod refusal;
mod socket;
mod upgrade;
mod versions;

pub(crate) use blobs::{BLOB_READS_PER_MIN, BLOB_UPLOADS_PER_MIN, UPLOADS_IN_FLIGHT};
pub(crate) use versions::VERSION_READS_PER_MIN;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use kokuban_protocol::{Capability, RoomId, Token};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::capability::{Capabilities, new_room_id};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::origin::OriginPolicy;
use crate::sequencer::Sequencer;

/// What every handler and session shares.
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<App>);

#[derive(Debug)]
pub(crate) struct App {
    pub config: Config,
    pub sequencer: Arc<dyn Sequencer>,
    pub capabilities: Capabilities,
    pub origins: OriginPolicy,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the node starts shutting down: not ready, no new rooms or sessions.
    pub shutdown: CancellationToken,
    /// Cancelled when the drain window after it ends: every session closes (1001).
    pub closing: CancellationToken,
    /// Every WebSocket session, so that shutdown can wait for them (axum's graceful
    /// shutdown does not cover upgraded connections).
    pub sessions: TaskTracker,
    /// Upgrades per client address ([`Config::upgrades_per_ip_per_sec`]).
    pub upgrades: crate::rate::PerAddress,
    /// Room creations per client address ([`Config::rooms_per_ip_per_min`]).
    pub room_creations: crate::rate::PerAddress,
    /// Reads of a room's versions per client address ([`VERSION_READS_PER_MIN`]).
    pub version_reads: crate::rate::PerAddress,
    /// Images posted per client address ([`BLOB_UPLOADS_PER_MIN`]).
    pub blob_uploads: crate::rate::PerAddress,
    /// Images read per client address ([`BLOB_READS_PER_MIN`]).
    pub blob_reads: crate::rate::PerAddress,
    /// Images being received at once, node-wide ([`UPLOADS_IN_FLIGHT`]): what bounds the
    /// memory uploads hold.
    pub uploads_in_flight: Arc<tokio::sync::Semaphore>,
}

impl App {
    /// The address a request counts against: the peer, or behind a trusted proxy the last
    /// `X-Forwarded-For` entry (what the proxy saw; earlier entries are the client's to forge).
    pub(crate) fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if !self.config.trust_forwarded_for {
            return peer.ip();
        }
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|last| last.trim().parse().ok())
            .unwrap_or(peer.ip())
    }
}

impl AppState {
    pub(crate) fn new(app: App) -> Self {
        Self(Arc::new(app))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The node's routes.
pub(crate) fn router(state: AppState) -> Router {
    // Compression is for the app's files only: API answers are tiny and the WebSocket carries
    // its own (already compact) binary encoding.
    let app = Router::new()
        .route("/", get(assets::index))
        .route("/r/{room}", get(assets::index))
        .fallback(assets::file)
        // Level 4: brotli's default (11) spends seconds of CPU on a megabyte of wasm for every
        // new visitor; 4 compresses nearly as well at a small fraction of the cost.
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .br(true)
                .quality(tower_http::CompressionLevel::Precise(4)),
        );
    let router = Router::new()
        .route("/api/rooms", post(create_room))
        .route("/api/rooms/{room}/links", post(reset_links))
        .route("/api/rooms/{room}/checkpoints", get(versions::list))
        .route("/api/rooms/{room}/checkpoints/{id}", get(versions::board))
        .route("/api/rooms/{room}/history", put(versions::set_access))
        .route("/api/rooms/{room}/blobs", post(blobs::upload))
        .route("/api/rooms/{room}/blobs/{hash}", get(blobs::read))
        .route("/ws/{room}", get(socket::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(app);
    // A 5xx is not an error of the node by itself: `/readyz` answers 503 whenever the node is
    // not ready (Redis unreachable, shutting down), which a load balancer asks every few
    // seconds. Internal errors are logged where they happen, with what went wrong, so the
    // trace layer reports failed requests at debug level only.
    let trace = TraceLayer::new_for_http()
        .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG));
    with_security_headers(router).layer(trace).with_state(state)
}

/// Headers on every answer. A response that sets its own Content-Security-Policy (the app's
/// page, which must admit its loader script) keeps it; everything else (API, metrics, files)
/// gets a policy that allows nothing, so a file served by mistake as HTML runs nothing.
fn with_security_headers(router: Router<AppState>) -> Router<AppState> {
    let set = |name, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    router
        .layer(set(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // The capability tokens live in the URL fragment, which is never sent in a Referer
        // anyway; no-referrer also keeps room ids from linked sites.
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        // For browsers that predate CSP's frame-ancestors: no clickjacking.
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ))
}

/// An error answer: a status and `{"error": "..."}`. Server-side failures are logged with
/// their details and answered with a generic message.
#[derive(Debug)]
pub(crate) enum ApiError {
    BadRequest(&'static str),
    /// 426: this address speaks WebSocket (version 13) only.
    UpgradeRequired(&'static str),
    Forbidden(&'static str),
    /// 404 saying what is missing.
    Missing(&'static str),
    /// 413: the body is over a cap (which the text names).
    TooLarge(String),
    /// 415: a body of a type the endpoint does not take.
    UnsupportedType(&'static str),
    Unavailable(&'static str),
    /// 408: the body did not arrive in time.
    Timeout(&'static str),
    /// 429 with a `Retry-After` of this many seconds.
    TooManyRequests(&'static str, u32),
    NotFound,
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::UpgradeRequired(m) => {
                let body = Json(serde_json::json!({ "error": m }));
                return (
                    StatusCode::UPGRADE_REQUIRED,
                    [
                        (header::UPGRADE, HeaderValue::from_static("websocket")),
                        (
                            header::SEC_WEBSOCKET_VERSION,
                            HeaderValue::from_static("13"),
                        ),
                    ],
                    body,
                )
                    .into_response();
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::Missing(m) => (StatusCode::NOT_FOUND, m),
            ApiError::TooLarge(m) => {
                let body = Json(serde_json::json!({ "error": m }));
                return (StatusCode::PAYLOAD_TOO_LARGE, body).into_response();
            }
            ApiError::UnsupportedType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Timeout(m) => (StatusCode::REQUEST_TIMEOUT, m),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not found"),
            ApiError::TooManyRequests(m, retry_after) => {
                let body = Json(serde_json::json!({ "error": m }));
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, HeaderValue::from(retry_after))],
                    body,
                )
                    .into_response();
            }
            ApiError::Internal(detail) => {
                tracing::error!("internal error: {detail}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// Checks the Origin of a browser request against the policy, counting and logging refusals.
pub(crate) fn check_origin(state: &App, headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if state.origins.allows(origin, host) {
        return Ok(());
    }
    state.metrics.origin_rejections.fetch_add(1, Relaxed);
    tracing::warn!(
        origin = origin.unwrap_or_default(),
        host = host.unwrap_or_default(),
        "{what} refused: origin not allowed"
    );
    Err(ApiError::Forbidden("origin not allowed"))
}

#[derive(Debug, serde::Serialize)]
struct CreatedRoom {
    room: String,
    edit_url: String,
    view_url: String,
}

/// `POST /api/rooms`: a new room and its two links. The tokens travel in the URL fragment,
/// which browsers never send to a server (so never to logs or in a Referer).
async fn create_room(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_origin(&state, &headers, "room creation")?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable("the server is shutting down"));
    }
    let client = state.client_ip(peer, &headers);
    if !state.room_creations.admit(client, Instant::now()) {
        state.metrics.rooms_refused.fetch_add(1, Relaxed);
        tracing::debug!(%client, "room creation refused: over the per-address rate");
        // One more room is a second away at the sustained rate of the default (60 a minute).
        let retry = (60 / state.config.rooms_per_ip_per_min.max(1)).max(1);
        return Err(ApiError::TooManyRequests(
            "too many new rooms from this address; try again shortly",
            retry,
        ));
    }
    let room = new_room_id();
    state.sequencer.create_room(&room).await.map_err(|e| {
        // The store's own words are for the log; the client learns it may try again.
        tracing::error!(%room, "creating the room failed: {e}");
        ApiError::Unavailable("the board store is unreachable; try again shortly")
    })?;
    let edit = state.capabilities.token(&room, Capability::Edit);
    let view = state.capabilities.token(&room, Capability::View);
    let body = CreatedRoom {
        edit_url: format!("/r/{room}#edit={edit}"),
        view_url: format!("/r/{room}#view={view}"),
        room: room.to_string(),
    };
    let location = HeaderValue::from_str(&format!("/r/{room}"))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(%room, "room created");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

#[derive(Debug, serde::Serialize)]
struct Links {
    edit_url: String,
    view_url: String,
}

impl Links {
    fn of(capabilities: &Capabilities, room: &RoomId, generation: u64) -> Self {
        let edit = capabilities.token_at(room, Capability::Edit, generation);
        let view = capabilities.token_at(room, Capability::View, generation);
        Links {
            edit_url: format!("/r/{room}#edit={edit}"),
            view_url: format!("/r/{room}#view={view}"),
        }
    }
}

/// `POST /api/rooms/{room}/links` with `Authorization: Bearer <edit token>`: new links for
/// the room. Every older link, edit and view alike, stops opening it, and members connected
/// with one are closed with [`close::LINKS_RESET`](kokuban_protocol::close::LINKS_RESET), on
/// every node. A wrong room, a view token or a stale one all get the same 403.
async fn reset_links(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    const REFUSED: &str = "this room does not exist or the link is not valid";
    check_origin(&state, &headers, "link reset")?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable("the server is shutting down"));
    }
    let (room, capability, generation) = bearer(&state, room, &headers, REFUSED).await?;
    if capability != Capability::Edit {
        return Err(ApiError::Forbidden(REFUSED));
    }
    let generation = state
        .sequencer
        .reset_links(&room, generation)
        .await
        .map_err(|e| ApiError::Internal(format!("resetting the links of room {room}: {e}")))?
        .ok_or(ApiError::Forbidden(REFUSED))?;
    // This node's sessions on older links go at once, on either backend.
    state
        .sequencer
        .link_generations()
        .advance(&room, generation);
    tracing::info!(%room, generation, "room links reset");
    Ok(Json(Links::of(&state.capabilities, &room, generation)).into_response())
}

/// The room a request names and what its `Authorization: Bearer <token>` may do there, with
/// the room's link generation; `refused` (403) for a malformed room, a missing or invalid
/// token, a stale one and a room that does not exist alike.
async fn bearer(
    state: &AppState,
    room: String,
    headers: &HeaderMap,
    refused: &'static str,
) -> Result<(RoomId, Capability, u64), ApiError> {
    let room = RoomId::new(room).map_err(|_| ApiError::Forbidden(refused))?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| Token::new(t.trim()).ok())
        .ok_or(ApiError::Forbidden(refused))?;
    let generation = state
        .sequencer
        .link_generation(&room)
        .await
        .map_err(|e| ApiError::Internal(format!("reading the links of room {room}: {e}")))?;
    let capability = state
        .capabilities
        .check(&room, &token, generation)
        .ok_or(ApiError::Forbidden(refused))?;
    Ok((room, capability, generation))
}

/// `GET /healthz`: the process is alive and can work (503 once its store has been failing
/// for long: a supervisor should restart it).
async fn healthz(State(state): State<AppState>) -> Response {
    if state.sequencer.is_alive() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "store failing\n").into_response()
    }
}

/// `GET /readyz`: the node takes new members (503 from the first moment of shutdown on).
async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if !state.sequencer.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state.config.node_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequencer::LocalSequencer;
    use crate::store::RedbStore;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn state(dir: &std::path::Path) -> AppState {
        let config = Config::new(dir);
        let metrics = Arc::new(Metrics::default());
        let store = RedbStore::open(
            dir,
            1000,
            std::time::Duration::from_secs(1),
            metrics.clone(),
        )
        .unwrap();
        AppState::new(App {
            sequencer: Arc::new(LocalSequencer::new(
                Arc::new(store),
                (&config).into(),
                metrics.clone(),
            )),
            capabilities: Capabilities::new([3; 32]),
            origins: OriginPolicy::default(),
            metrics,
            shutdown: CancellationToken::new(),
            closing: CancellationToken::new(),
            sessions: TaskTracker::new(),
            upgrades: crate::rate::PerAddress::new(0, 1),
            room_creations: crate::rate::PerAddress::per_minute(0),
            version_reads: crate::rate::PerAddress::per_minute(0),
            blob_uploads: crate::rate::PerAddress::per_minute(0),
            blob_reads: crate::rate::PerAddress::per_minute(0),
            uploads_in_flight: Arc::new(tokio::sync::Semaphore::new(UPLOADS_IN_FLIGHT)),
            config,
        })
    }

    async fn get(state: &AppState, uri: &str) -> StatusCode {
        router(state.clone())
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn readiness_turns_503_at_once_when_shutdown_begins_while_health_stays_200() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path());
        assert_eq!(get(&state, "/readyz").await, StatusCode::OK);
        state.shutdown.cancel();
        assert_eq!(
            get(&state, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get(&state, "/healthz").await, StatusCode::OK);
        let created = router(state.clone())
            .oneshot(
                Request::post("/api/rooms")
                    .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::SERVICE_UNAVAILABLE);
        state.sequencer.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn internal_errors_are_logged_not_returned() {
        let response = ApiError::Internal("disk on fire at /secret/path".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"error":"internal error"}"#);
    }
}
