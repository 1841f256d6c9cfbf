//! The HTTP API (API.md): accounts, sessions, catalog, ingest, play authorization, chunks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use protocol::{Identity, NodeId, Quality};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::accounts;
use crate::config::OriginConfig;
use crate::metrics::{self, Metrics};
use crate::publish;
use crate::store::{Account, Role, Store, StoreError, Tier, TokenKind, TokenRecord};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Metadata and chunks.
    pub store: Arc<Store>,
    /// The origin's signing identity (manifests, licenses).
    pub identity: Arc<Identity>,
    /// Key of the HMAC that signs chunk URLs.
    pub url_key: Arc<[u8; 32]>,
    /// Settings.
    pub config: Arc<OriginConfig>,
    /// Base URL for chunk URLs.
    pub public_url: String,
    /// Where the QUIC chunk protocol listens.
    pub quic_addr: SocketAddr,
    /// Bounds concurrent ingest jobs.
    pub ingest_slots: Arc<Semaphore>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The catalog's search index.
    pub search: Arc<crate::search::Search>,
    /// Trending and the other in-memory listening state.
    pub activity: Arc<crate::events::Activity>,
    /// Rate limits.
    pub limiter: Arc<crate::ratelimit::Limiter>,
    /// The recommendation model.
    pub recommender: Arc<crate::recommendations::Recommender>,
    /// Rendered track views for list reads.
    pub track_views: Arc<crate::publish::TrackViews>,
    /// Published renditions' manifests, shared with the QUIC chunk service.
    pub chunk_source: Arc<crate::server::StoreChunkSource>,
    /// Uploads under way per account.
    pub account_ingests: Arc<crate::publish::AccountIngests>,
    /// The bounded argon2 pool.
    pub passwords: Arc<crate::passwords::PasswordPool>,
    /// Which region a sign-up gets.
    pub region_rules: Arc<crate::config::RegionRules>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("public_url", &self.public_url)
            .finish()
    }
}

/// The wall clock in Unix milliseconds (handlers are drivers: they may read it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// An API error: a status and a JSON body `{"error": {"code", "message"}}` with a stable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with a status, stable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_s: None,
        }
    }

    /// Names the request field the error is about (`error.field` in the body).
    pub fn with_field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// True for 4xx errors (the client's input), false for 5xx.
    pub fn is_client_error(&self) -> bool {
        self.status.is_client_error()
    }

    /// A server-side failure: logged in full, shown as a generic message.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::internal(error)
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable machine-readable code and a human message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `not_in_market`.
    pub code: String,
    /// Human-readable detail.
    pub message: String,
    /// The request field the error is about, when it is about one (`tier`, `region`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field.map(str::to_string),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_json",
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

/// JSON body extractor whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// The stored record of the request's bearer token, as the rate limiter found it.
#[derive(Debug, Clone)]
pub struct ResolvedToken(pub TokenRecord);

/// The authenticated account behind `Authorization: Bearer <access token>`.
#[derive(Debug)]
pub struct Authed(pub Account);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::unauthorized("expected a bearer token"))?;
        let resolved = parts
            .extensions
            .get::<ResolvedToken>()
            .map(|resolved| resolved.0.clone());
        let record = match resolved {
            Some(record) => Some(record),
            None => state.store.token(&accounts::token_hash(token))?,
        }
        .filter(|record| record.kind == TokenKind::Access && record.expires_at_ms > now_ms())
        .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))?;
        let account = state
            .store
            .account(&record.account)?
            .ok_or_else(|| ApiError::unauthorized("account gone"))?;
        Ok(Authed(account))
    }
}

/// Rewrites an error answered in plain text into the JSON envelope
/// `{"error": {"code", "message"}}`: axum's query, path and multipart rejections and its
/// `405` for a method a route does not have. Headers such as `Allow` are kept; the text
/// becomes the message. Every other answer passes unchanged.
async fn envelope_plain_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|kind| kind.starts_with("text/plain"));
    if !plain {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        status if status.is_server_error() => "internal",
        _ => "bad_request",
    };
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 2048)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut rewritten = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name, value.clone());
        }
    }
    rewritten
}

/// The router with every route and limit.
pub fn app(state: AppState) -> Router {
    let json_limit = state.config.json_bytes_max;
    let upload_limit = usize::try_from(state.config.upload_bytes_max)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .route("/v1/accounts", post(create_account))
        .route("/v1/sessions", post(create_session))
        .route("/v1/sessions/refresh", post(refresh_session))
        .route("/v1/me", get(me))
        .route(
            "/v1/admin/accounts/{username}",
            axum::routing::patch(crate::admin::patch_account),
        )
        .route(
            "/v1/tracks",
            post(publish::upload_track).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/v1/tracks/{id}",
            get(publish::get_track).delete(publish::delete_track),
        )
        .route("/v1/tracks/{id}/play", post(publish::play))
        .route("/v1/search", get(search_catalog))
        .route("/v1/playlists", post(crate::playlists::create))
        .route(
            "/v1/playlists/{id}",
            get(crate::playlists::read).put(crate::playlists::change),
        )
        .route(
            "/v1/playlists/{id}/tracks",
            post(crate::playlists::add_tracks)
                .delete(crate::playlists::remove_tracks)
                .put(crate::playlists::reorder),
        )
        .route("/v1/me/playlists", get(crate::playlists::mine))
        .route(
            "/v1/events",
            post(crate::events::post_events)
                .layer(DefaultBodyLimit::max(crate::events::EVENTS_BODY_BYTES_MAX)),
        )
        .route("/v1/trending", get(crate::events::trending))
        .route("/v1/royalties", get(crate::events::royalties))
        .route(
            "/v1/recommendations",
            get(crate::recommendations::recommendations),
        )
        .route("/v1/tracks/{id}/radio", get(crate::recommendations::radio))
        .route("/v1/me/tracks", get(crate::library::liked_tracks))
        .route(
            "/v1/me/tracks/{id}",
            put(crate::library::like_track).delete(crate::library::unlike_track),
        )
        .route(
            "/v1/me/following/artists",
            get(crate::library::followed_artists),
        )
        .route(
            "/v1/me/following/artists/{id}",
            put(crate::library::follow_artist).delete(crate::library::unfollow_artist),
        )
        .route("/v1/artists/{id}", get(publish::artist))
        .route("/v1/artists/{id}/tracks", get(publish::artist_tracks))
        .route("/v1/albums/{id}", get(publish::album))
        .route("/v1/chunks/{id}", get(get_chunk))
        .route("/v1/network", get(crate::nodes::network))
        .route("/v1/nodes/token", post(crate::nodes::node_token))
        .route("/v1/openapi.json", get(openapi_json))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route") })
        .layer(axum::middleware::map_response(envelope_plain_errors))
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::ratelimit::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .with_state(state)
}

#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "Ready")))]
async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    // Ready means the store answers.
    state.store.track(&"0".repeat(32))?;
    Ok(Json(json!({"status": "ok"})))
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "service", responses((status = 200, description = "This document")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}

#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render(state.store.track_count());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// A sign-up. Only the username and password are the caller's to choose: the role is a
/// listener (or an artist where the operator opened artist sign-up), the tier is free and the
/// region comes from the operator's rules. A caller may state `role`, `tier` or `region` to
/// check them, and asking for more than it may have is refused with `403 not_allowed`
/// naming the field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// 3 to 32 characters of `a-z A-Z 0-9 _ . -`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    username: String,
    /// 8 to 256 bytes.
    password: String,
    /// Must be the region the operator's rules give this address, if stated.
    region: Option<String>,
    /// `listener` (default), or `artist` where artist sign-up is open.
    role: Option<Role>,
    /// `free` (the only tier a sign-up gets), if stated.
    tier: Option<Tier>,
}

/// The client address the rate limiter resolved (behind trusted proxies, `X-Forwarded-For`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = NewAccount, responses((status = 201, description = "Created: {id, region, role, tier}"), (status = 400, body = ErrorBody, description = "invalid_username, invalid_password, invalid_region"), (status = 403, body = ErrorBody, description = "not_allowed: a role, tier or region the caller may not have (error.field names it)"), (status = 409, body = ErrorBody, description = "username_taken"), (status = 503, body = ErrorBody, description = "busy: too many log-ins at once")))]
async fn create_account(
    State(state): State<AppState>,
    client: Option<axum::Extension<ClientIp>>,
    ApiJson(new): ApiJson<NewAccount>,
) -> Result<impl IntoResponse, ApiError> {
    if !accounts::valid_username(&new.username) {
        return Err(ApiError::bad_request(
            "invalid_username",
            "3 to 32 characters of a-z, A-Z, 0-9, _ . -",
        )
        .with_field("username"));
    }
    if !accounts::PASSWORD_BYTES.contains(&new.password.len()) {
        return Err(
            ApiError::bad_request("invalid_password", "passwords are 8 to 256 bytes")
                .with_field("password"),
        );
    }
    let region = state
        .region_rules
        .region_for(client.map(|axum::Extension(ClientIp(ip))| ip));
    let role = signup_role(&state.config, new.role)?;
    if let Some(asked) = &new.region {
        let asked = protocol::Region::assigned(asked).map_err(|_| {
            ApiError::bad_request(
                "invalid_region",
                "region must be an ISO 3166-1 alpha-2 country code such as SE",
            )
            .with_field("region")
        })?;
        if asked != region {
            return Err(ApiError::forbidden(
                "not_allowed",
                format!(
                    "the region is set by the operator: sign-ups from here are in {region}, not {asked}"
                ),
            )
            .with_field("region"));
        }
    }
    if new.tier.is_some_and(|tier| tier != Tier::Free) {
        return Err(ApiError::forbidden(
            "not_allowed",
            "sign-ups are on the free tier; an operator changes tiers",
        )
        .with_field("tier"));
    }
    let account = Account {
        id: hex::encode(rand::random::<[u8; 16]>()),
        username: new.username,
        password_hash: state.passwords.hash(new.password).await?,
        region: region.to_string(),
        role,
        tier: Tier::Free,
        created_at_ms: now_ms(),
    };
    let store = state.store.clone();
    let created = tokio::task::spawn_blocking({
        let account = account.clone();
        move || store.create_account(&account)
    })
    .await
    .map_err(ApiError::internal)??;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "username_taken",
            "that username is taken",
        )
        .with_field("username"));
    }
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": account.id, "region": account.region, "role": account.role, "tier": account.tier}),
        ),
    ))
}

/// The role a sign-up gets: a listener, or an artist where the operator opened that.
fn signup_role(config: &OriginConfig, asked: Option<Role>) -> Result<Role, ApiError> {
    match asked.unwrap_or(Role::Listener) {
        Role::Listener => Ok(Role::Listener),
        Role::Artist if config.artist_signup => Ok(Role::Artist),
        Role::Artist => Err(ApiError::forbidden(
            "not_allowed",
            "artist sign-up is closed here: an operator grants the artist role",
        )
        .with_field("role")),
        Role::Admin | Role::SuperNode => Err(ApiError::forbidden(
            "not_allowed",
            "admin and super-node accounts are made by an operator (`chorus admin`)",
        )
        .with_field("role")),
    }
}

/// A new account record with a fresh id and hashed password (operator tools; handlers hash
/// in the [`crate::passwords::PasswordPool`]).
pub fn new_account(
    username: &str,
    password: &str,
    region: &str,
    role: Role,
    tier: Tier,
) -> Result<Account, ApiError> {
    Ok(Account {
        id: hex::encode(rand::random::<[u8; 16]>()),
        username: username.to_string(),
        password_hash: accounts::hash_password(password).map_err(ApiError::internal)?,
        region: region.to_string(),
        role,
        tier,
        created_at_ms: now_ms(),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
    token_type: &'static str,
}

#[utoipa::path(post, path = "/v1/sessions", tag = "accounts", request_body = Login, responses((status = 200, body = Tokens), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody, description = "busy: too many log-ins at once")))]
async fn create_session(
    State(state): State<AppState>,
    ApiJson(login): ApiJson<Login>,
) -> Result<Json<Tokens>, ApiError> {
    let account = state.store.account_by_username(&login.username)?;
    let password_hash = account
        .as_ref()
        .map(|account| account.password_hash.clone());
    // Unknown users verify against a real stand-in hash, so timing does not reveal which exist.
    let verified = state
        .passwords
        .verify(login.password, password_hash)
        .await?;
    match account {
        Some(account) if verified => issue_tokens(&state, &account.id).map(Json),
        _ => Err(ApiError::unauthorized("wrong username or password")),
    }
}

fn issue_tokens(state: &AppState, account_id: &str) -> Result<Tokens, ApiError> {
    let now = now_ms();
    let (access_token, access_hash) = accounts::new_token();
    let (refresh_token, refresh_hash) = accounts::new_token();
    let access = TokenRecord {
        account: account_id.to_string(),
        kind: TokenKind::Access,
        expires_at_ms: now + state.config.access_token_ttl_s * 1000,
    };
    let refresh = TokenRecord {
        account: account_id.to_string(),
        kind: TokenKind::Refresh,
        expires_at_ms: now + state.config.refresh_token_ttl_s * 1000,
    };
    state.store.put_token(&access_hash, &access)?;
    state.store.put_token(&refresh_hash, &refresh)?;
    Ok(Tokens {
        access_token,
        refresh_token,
        expires_in: state.config.access_token_ttl_s,
        token_type: "Bearer",
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    refresh_token: String,
}

#[utoipa::path(post, path = "/v1/sessions/refresh", tag = "accounts", request_body = Refresh, responses((status = 200, body = Tokens, description = "New tokens; the refresh token used is spent"), (status = 401, body = ErrorBody)))]
async fn refresh_session(
    State(state): State<AppState>,
    ApiJson(refresh): ApiJson<Refresh>,
) -> Result<Json<Tokens>, ApiError> {
    // Refresh tokens rotate: taking one removes it, so it works exactly once.
    let record = state
        .store
        .take_token(&accounts::token_hash(&refresh.refresh_token))?
        .filter(|record| record.kind == TokenKind::Refresh && record.expires_at_ms > now_ms())
        .ok_or_else(|| ApiError::unauthorized("invalid, used or expired refresh token"))?;
    issue_tokens(&state, &record.account).map(Json)
}

#[utoipa::path(get, path = "/v1/me", tag = "accounts", security(("bearer" = [])), responses((status = 200, description = "id, username, region, role, tier"), (status = 401, body = ErrorBody)))]
async fn me(Authed(account): Authed) -> Json<serde_json::Value> {
    Json(json!({
        "id": account.id,
        "username": account.username,
        "region": account.region,
        "role": account.role,
        "tier": account.tier,
    }))
}

/// Query of `GET /v1/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchParams {
    /// The text, typos allowed; the last word may be a prefix (type-ahead).
    q: String,
    /// Comma-separated kinds: `track`, `artist`, `album`, `playlist` (default all).
    #[serde(rename = "type")]
    kinds: Option<String>,
    /// Hits per page, 1 to 50 (default 20).
    limit: Option<usize>,
    /// Hits to skip (at most 1000).
    offset: Option<usize>,
}

#[utoipa::path(get, path = "/v1/search", tag = "catalog", params(SearchParams), responses((status = 200, description = "{total, items: [{type, id, name, artist?, score}], limit, offset}"), (status = 400, body = ErrorBody, description = "bad_query, bad_type"), (status = 503, body = ErrorBody, description = "search_warming_up: the index is being built after a start; Retry-After says when to ask again")))]
/// `GET /v1/search`: typo-tolerant search of tracks, artists, albums and public playlists,
/// ranked by relevance and popularity.
pub async fn search_catalog(
    State(state): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<SearchParams>,
) -> Result<Response, ApiError> {
    use crate::search::{Kind, SearchError};
    let mut kinds = Vec::new();
    for name in params
        .kinds
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match Kind::parse(name) {
            Some(kind) => kinds.push(kind),
            None => {
                return Err(bad_request(
                    "bad_type",
                    format!("type {name:?}: expected track, artist, album or playlist"),
                ));
            }
        }
    }
    let limit = params.limit.unwrap_or(20).clamp(1, crate::search::PAGE_MAX);
    let offset = params.offset.unwrap_or(0).min(crate::search::OFFSET_MAX);
    let search = state.search.clone();
    let result =
        tokio::task::spawn_blocking(move || search.search(&params.q, &kinds, limit, offset))
            .await
            .map_err(ApiError::internal)?;
    match result {
        Ok((total, items)) => Ok(Json(serde_json::json!({
            "total": total,
            "items": items,
            "limit": limit,
            "offset": offset,
        }))
        .into_response()),
        Err(SearchError::BadQuery(message)) => Err(bad_request("bad_query", message)),
        Err(warming @ SearchError::Warming(_)) => {
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "search_warming_up",
                warming.to_string(),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            Ok(response)
        }
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// What one signed chunk URL opens: chunks of one rendition, for one account in one region,
/// until an expiry. The HMAC covers all of it, so a URL from one track (or account, or
/// market) opens nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkGrant {
    /// The rendition, 64 hex.
    pub rendition: String,
    /// The account it was granted to, 32 hex.
    pub account: String,
    /// The account's region when it was granted.
    pub region: String,
    /// Expiry, Unix seconds.
    pub expires_s: u64,
}

impl ChunkGrant {
    fn mac(&self, key: &[u8; 32]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(
            format!(
                "chorus-chunk-url/2|{}|{}|{}|{}",
                self.rendition, self.account, self.region, self.expires_s
            )
            .as_bytes(),
        );
        mac
    }

    /// The signature, hex.
    pub fn sign(&self, key: &[u8; 32]) -> String {
        hex::encode(self.mac(key).finalize().into_bytes())
    }

    /// True when `signature_hex` is this grant's signature (constant-time comparison).
    pub fn verify(&self, key: &[u8; 32], signature_hex: &str) -> bool {
        hex::decode(signature_hex)
            .is_ok_and(|signature| self.mac(key).verify_slice(&signature).is_ok())
    }

    /// The URL template clients fill `{chunk_id}` into.
    pub fn url_template(&self, public_url: &str, key: &[u8; 32]) -> String {
        format!(
            "{public_url}/v1/chunks/{{chunk_id}}?r={}&a={}&g={}&exp={}&sig={}",
            self.rendition,
            self.account,
            self.region,
            self.expires_s,
            self.sign(key)
        )
    }
}

#[derive(Debug, Deserialize)]
struct ChunkQuery {
    r: Option<String>,
    a: Option<String>,
    g: Option<String>,
    exp: Option<u64>,
    sig: Option<String>,
}

#[utoipa::path(get, path = "/v1/chunks/{id}", tag = "playback", params(("id" = String, Path, pattern = "^[0-9a-f]{64}$", description = "Chunk id, 64 hex"), ("r" = String, Query, description = "Rendition id the URL was granted for"), ("a" = String, Query, description = "Account the URL was granted to"), ("g" = String, Query, description = "The account's region"), ("exp" = u64, Query, description = "Expiry, Unix seconds"), ("sig" = String, Query, description = "HMAC from the chunk URL template")), responses((status = 200, description = "Chunk ciphertext; immutable, cacheable", content_type = "application/octet-stream"), (status = 304, description = "Not modified"), (status = 403, body = ErrorBody, description = "missing_signature, url_expired, bad_signature, not_in_rendition, not_in_market"), (status = 404, body = ErrorBody, description = "not_found: no such chunk, or its track was deleted")))]
async fn get_chunk(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ChunkQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let chunk_id: protocol::ChunkId = id
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_id", "chunk ids are 64 hex characters"))?;
    let (Some(rendition), Some(account), Some(region), Some(expires_s), Some(signature)) =
        (query.r, query.a, query.g, query.exp, query.sig)
    else {
        return Err(ApiError::forbidden(
            "missing_signature",
            "chunk URLs need r, a, g, exp and sig from a play authorization",
        ));
    };
    if expires_s.saturating_mul(1000) <= now_ms() {
        return Err(ApiError::forbidden(
            "url_expired",
            "this chunk URL has expired",
        ));
    }
    let grant = ChunkGrant {
        rendition,
        account,
        region,
        expires_s,
    };
    if !grant.verify(&state.url_key, &signature) {
        return Err(ApiError::forbidden(
            "bad_signature",
            "chunk URL signature does not verify",
        ));
    }
    // Signed by us, so well formed; a deleted rendition is gone for every URL at once.
    let rendition: protocol::RenditionId = grant
        .rendition
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_id", "rendition ids are 64 hex"))?;
    let region: protocol::Region = grant
        .region
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_region", "not a region"))?;
    // Manifests are cached; a miss is one small database read.
    match state.chunk_source.holds(&rendition, &chunk_id) {
        None => return Err(ApiError::not_found("chunk")),
        Some(false) => {
            return Err(ApiError::forbidden(
                "not_in_rendition",
                "this URL opens chunks of another rendition",
            ));
        }
        Some(true) => {}
    }
    if !transport::chunks::ChunkSource::region_allows(&*state.chunk_source, &rendition, &region) {
        return Err(ApiError::forbidden(
            "not_in_market",
            format!("this track is not available in {region}"),
        ));
    }
    let etag = format!("\"{}\"", chunk_id.to_hex());
    let cache = [
        (
            header::CACHE_CONTROL,
            "public, max-age=31536000, immutable".to_string(),
        ),
        (header::ETAG, etag.clone()),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        == Some(etag.as_str())
    {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    // Hot chunks come from memory on this thread; others from disk off the async runtime.
    let data = match state.store.chunks().cached(&chunk_id) {
        Some(data) => data,
        None => {
            let store = state.store.clone();
            tokio::task::spawn_blocking(move || store.chunks().get(&chunk_id))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::not_found("chunk"))?
        }
    };
    state
        .metrics
        .chunk_bytes_http
        .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok((
        StatusCode::OK,
        cache,
        [(header::CONTENT_TYPE, "application/octet-stream".to_string())],
        data,
    )
        .into_response())
}

/// Parses a node id given by a client.
pub fn parse_node_id(text: &str) -> Result<NodeId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request("invalid_node_id", "node_id is 64 hex characters"))
}

/// Parses a quality name.
pub fn parse_quality(text: &str) -> Result<Quality, ApiError> {
    Quality::ALL
        .into_iter()
        .find(|quality| quality.as_str() == text)
        .ok_or_else(|| ApiError::bad_request("invalid_quality", "quality is low, normal or high"))
}

/// Builds the ApiError for a forbidden action.
pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::forbidden(code, message)
}

/// Builds a 400 ApiError.
pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

/// Builds a 404 ApiError with its own code.
pub fn not_found_code(code: &'static str, what: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, format!("{what} not found"))
}

/// Builds a 404 ApiError.
pub fn not_found(what: &str) -> ApiError {
    ApiError::not_found(what)
}
