//! The web player: a page at the gateway's `/` that plays through the browser's `<audio>`
//! on the gateway's P2P-assisted stream.
//!
//! The page and its script and style are embedded in the binary (`client-lib/web/`), so it
//! works with no network but the gateway's. What it talks to, all on the gateway's own origin:
//!
//! - `POST /web/session` signs a listener in with their Chorus username and password (at the
//!   origin); the gateway keeps the session and gives the browser an opaque `HttpOnly`,
//!   `SameSite=Strict` cookie naming it. `GET` tells who is signed in, `DELETE` signs out.
//! - `/web/api/v1/...` passes the listener's requests to the origin's API (catalog, search,
//!   library, playlists, pictures) with their token, renewing it when it runs out.
//! - `GET /web/cover/{id}` is an album's, artist's or track's picture (as Subsonic's
//!   `getCoverArt`, kept in memory).
//! - `GET /web/stream/{id}` is the track as an Ogg stream with byte ranges (what `<audio>`
//!   seeks with), from a download if there is one, else through the gateway's cache, peers,
//!   super-nodes and the origin; `GET /web/traffic/{id}` says how many of its bytes came
//!   from each since this browser first streamed it (only for tracks it streamed).
//! - `/web/downloads` lists, makes and removes offline downloads (30-day licenses), which
//!   list and play with the origin down.
//!
//! Every request that changes something must carry `X-Chorus-Web: 1`, which a cross-site form
//! cannot send; the cookie is never sent cross-site anyway.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::gateway::Gateway;
use api::client::{ApiError, Session};

/// The page, its script and its style.
const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const ICON_SVG: &str = include_str!("../../web/icon.svg");

/// The cookie naming a web session.
const COOKIE: &str = "chorus_web";
/// Web sessions kept (least recently used go first).
const SESSIONS_MAX: usize = 256;
/// Largest request body passed to the origin.
const BODY_MAX: usize = 1 << 20;
/// The origin API the page may use, by method and route (`*` is one id segment): the
/// listener's own catalog, library, playlists and listening, nothing else (no credentials,
/// uploads, pictures to change or admin).
const API_ALLOWED: &[(&str, &str)] = &[
    ("GET", "me"),
    ("GET", "me/tracks"),
    ("PUT", "me/tracks/*"),
    ("DELETE", "me/tracks/*"),
    ("GET", "me/following/artists"),
    ("PUT", "me/following/artists/*"),
    ("DELETE", "me/following/artists/*"),
    ("GET", "me/playlists"),
    ("GET", "me/player"),
    ("PUT", "me/player"),
    ("GET", "search"),
    ("GET", "browse/tracks"),
    ("GET", "browse/albums"),
    ("GET", "browse/artists"),
    ("GET", "browse/genres"),
    ("GET", "albums/*"),
    ("GET", "artists/*"),
    ("GET", "artists/*/tracks"),
    ("GET", "tracks/*"),
    ("GET", "tracks/*/lyrics"),
    ("GET", "tracks/*/radio"),
    ("GET", "images/*"),
    ("POST", "playlists"),
    ("GET", "playlists/*"),
    ("PUT", "playlists/*"),
    ("DELETE", "playlists/*"),
    ("POST", "playlists/*/tracks"),
    ("PUT", "playlists/*/tracks"),
    ("DELETE", "playlists/*/tracks"),
    ("GET", "recommendations"),
    ("GET", "trending"),
    ("POST", "events"),
];

/// Whether the page may send `method` to `/v1/{path}`. Every segment must be plain (letters,
/// digits, `_`, `-`: no dots, escapes or separators a URL parser would read again).
fn api_allowed(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    let plain = |segment: &str| {
        !segment.is_empty()
            && segment.len() <= 128
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !segments.iter().all(|segment| plain(segment)) {
        return false;
    }
    API_ALLOWED.iter().any(|(allowed, route)| {
        *allowed == method.as_str()
            && route.split('/').count() == segments.len()
            && route
                .split('/')
                .zip(&segments)
                .all(|(part, segment)| part == "*" || part == *segment)
    })
}

/// Tracks a session remembers having streamed (whose traffic it may read).
const STREAMED_MAX: usize = 1_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
struct WebSession {
    username: String,
    /// The account's id (names its downloads' directory).
    account_id: String,
    session: Session,
    used: std::time::Instant,
    /// Held while the session is renewed: refresh tokens work once, so one request renews
    /// and the others wait for its tokens.
    renewing: Arc<tokio::sync::Mutex<()>>,
    /// Tracks this session streamed, with the gateway's counts for each when it first did:
    /// it is told only of these, and only what came after.
    streamed: Arc<std::sync::Mutex<HashMap<String, crate::gateway::SourceBytes>>>,
}

/// The web player's state inside a gateway: its sessions and where downloads go.
#[derive(Debug, Default)]
pub struct WebState {
    sessions: std::sync::Mutex<HashMap<String, WebSession>>,
    downloads: std::sync::OnceLock<PathBuf>,
}

impl WebState {
    /// Keeps each web user's offline downloads under `dir/<account id>/` (set once, at
    /// start; without it the page offers no downloads).
    pub fn keep_downloads_in(&self, dir: PathBuf) {
        let _ = self.downloads.set(dir);
    }

    fn lookup(&self, headers: &HeaderMap) -> Option<(String, WebSession)> {
        let id = cookie(headers)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let found = sessions.get_mut(&id)?;
        found.used = std::time::Instant::now();
        Some((id, found.clone()))
    }

    fn insert(&self, username: String, account_id: String, session: Session) -> String {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= SESSIONS_MAX
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, session)| session.used)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            WebSession {
                username,
                account_id,
                session,
                used: std::time::Instant::now(),
                renewing: Arc::default(),
                streamed: Arc::default(),
            },
        );
        id
    }

    fn renewed(&self, id: &str, session: Session) {
        if let Some(found) = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
        {
            found.session = session;
        }
    }

    fn remove(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// The directory of the account's downloads (named by its id, 32 hex characters:
    /// usernames differ in case only on file systems that tell case apart).
    fn downloads_dir(&self, account_id: &str) -> Option<PathBuf> {
        let root = self.downloads.get()?;
        (account_id.len() == 32 && account_id.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| root.join(account_id.to_ascii_lowercase()))
    }

    fn store(&self, account_id: &str) -> Option<crate::offline::OfflineStore> {
        self.downloads_dir(account_id)
            .map(|dir| crate::offline::OfflineStore::new(&dir))
    }
}

/// The session id in the request's cookies, if well formed.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A refusal in the origin's envelope (`api::ErrorBody`), as the gateway's other routes
/// answer.
fn refuse(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    crate::gateway::error(status, code, message)
}

fn signed_out() -> Response {
    refuse(StatusCode::UNAUTHORIZED, "signed_out", "sign in first")
}

/// An error from the origin (or reaching it) as an answer.
fn origin_error(error: &anyhow::Error) -> Response {
    match ApiError::of(error) {
        Some(api) => refuse(
            StatusCode::from_u16(api.status).unwrap_or(StatusCode::BAD_GATEWAY),
            if api.code.is_empty() {
                "refused"
            } else {
                &api.code
            },
            &api.message,
        ),
        None => refuse(
            StatusCode::BAD_GATEWAY,
            "origin_unavailable",
            format!("{error:#}"),
        ),
    }
}

/// Whether a request that changes something came from the page (see the module docs).
fn from_page(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        || method == Method::HEAD
        || headers
            .get("x-chorus-web")
            .is_some_and(|value| value.as_bytes() == b"1")
}

/// The web player's routes (the gateway puts them behind its host check).
pub(crate) fn router() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/", get(page))
        .route("/web/{asset}", get(asset))
        .route("/web/session", post(sign_in).get(whoami).delete(sign_out))
        .route(
            "/web/api/v1/{*path}",
            get(proxy).post(proxy).put(proxy).delete(proxy),
        )
        .route("/web/stream/{id}", get(stream))
        .route("/web/traffic/{id}", get(traffic))
        .route("/web/cover/{id}", get(cover))
        .route("/web/downloads", get(downloads))
        .route(
            "/web/downloads/{id}",
            post(download).delete(remove_download),
        )
        .layer(axum::extract::DefaultBodyLimit::max(BODY_MAX))
}

/// Headers every page asset carries: no framing, no sniffing, scripts only from here.
fn secured(mut response: Response, kind: &'static str, cache: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn page() -> Response {
    secured(
        INDEX_HTML.into_response(),
        "text/html; charset=utf-8",
        "no-cache",
    )
}

async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "icon.svg" => (ICON_SVG, "image/svg+xml"),
        _ => return refuse(StatusCode::NOT_FOUND, "not_found", "no such file"),
    };
    secured(body.into_response(), kind, "no-cache")
}

/// `POST /web/session`'s body.
#[derive(Debug, Deserialize)]
struct SignIn {
    username: String,
    password: String,
}

/// Who is signed in.
#[derive(Debug, Serialize)]
struct SignedIn {
    username: String,
    /// Whether downloads are offered.
    downloads: bool,
}

async fn sign_in(State(gateway): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    if !from_page(&Method::POST, &headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "not_from_page",
            "missing X-Chorus-Web",
        );
    }
    let Ok(form) = serde_json::from_slice::<SignIn>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "expected {\"username\", \"password\"}",
        );
    };
    let session = match gateway
        .api()
        .session(form.username.trim(), &form.password)
        .await
    {
        Ok(session) => session,
        Err(error) => return origin_error(&error),
    };
    let me: api::accounts::Me = match gateway.api().get_as(&session.access_token, "/v1/me").await {
        Ok(me) => me,
        Err(error) => return origin_error(&error),
    };
    let username = me.username.clone();
    let downloads = gateway.web().store(&me.id).is_some();
    let id = gateway.web().insert(username.clone(), me.id, session);
    let mut response = axum::Json(SignedIn {
        username,
        downloads,
    })
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn whoami(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    match gateway.web().lookup(&headers) {
        Some((_, found)) => {
            let downloads = gateway.web().store(&found.account_id).is_some();
            axum::Json(SignedIn {
                username: found.username,
                downloads,
            })
            .into_response()
        }
        None => signed_out(),
    }
}

async fn sign_out(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if !from_page(&Method::DELETE, &headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "not_from_page",
            "missing X-Chorus-Web",
        );
    }
    if let Some((id, _)) = gateway.web().lookup(&headers) {
        gateway.web().remove(&id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("chorus_web=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// Renews the session `id` after its access token `failed` was refused: once, however many
/// requests were refused at the same time (refresh tokens work once). The new tokens, or the
/// answer to give: signed out (the origin refused the refresh token) or the origin out of
/// reach.
async fn renew(
    gateway: &Gateway,
    id: &str,
    found: &WebSession,
    failed: &str,
) -> Result<Session, Response> {
    let _renewing = found.renewing.lock().await;
    let current = gateway
        .web()
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(id)
        .map(|current| current.session.clone());
    let Some(current) = current else {
        return Err(signed_out());
    };
    if current.access_token != failed {
        // Another request renewed it while this one waited.
        return Ok(current);
    }
    match gateway.api().refresh(&current.refresh_token).await {
        Ok(session) => {
            gateway.web().renewed(id, session.clone());
            Ok(session)
        }
        Err(error) if ApiError::of(&error).is_some_and(|api| api.status == 401) => {
            tracing::debug!(%error, "web session ended at the origin");
            gateway.web().remove(id);
            Err(signed_out())
        }
        Err(error) => Err(origin_error(&error)),
    }
}

async fn proxy(
    State(gateway): State<Arc<Gateway>>,
    method: Method,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !from_page(&method, &headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "not_from_page",
            "missing X-Chorus-Web",
        );
    }
    if !api_allowed(&method, &path) {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "not part of the web player's API",
        );
    }
    let Some((id, found)) = gateway.web().lookup(&headers) else {
        return signed_out();
    };
    let target = match query {
        Some(query) => format!("/v1/{path}?{query}"),
        None => format!("/v1/{path}"),
    };
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = (!body.is_empty() || method == Method::POST || method == Method::PUT)
        .then(|| (body.clone(), kind));
    let mut access = found.session.access_token.clone();
    let mut answer = gateway
        .api()
        .forward(method.clone(), &access, &target, body.clone())
        .await;
    if matches!(&answer, Ok(response) if response.status() == reqwest::StatusCode::UNAUTHORIZED) {
        match renew(&gateway, &id, &found, &access).await {
            Ok(session) => {
                access = session.access_token;
                answer = gateway.api().forward(method, &access, &target, body).await;
            }
            Err(answer) => return answer,
        }
    }
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return origin_error(&error),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL, header::ETAG] {
        if let Some(value) = answer.headers().get(name.as_str())
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            out.insert(name, value);
        }
    }
    match answer.bytes().await {
        Ok(bytes) => (status, out, bytes).into_response(),
        Err(error) => refuse(StatusCode::BAD_GATEWAY, "origin_unavailable", error),
    }
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn stream(
    State(gateway): State<Arc<Gateway>>,
    Path(track): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !valid_id(&track) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "track ids are 32 hex characters",
        );
    }
    let Some((id, found)) = gateway.web().lookup(&headers) else {
        return signed_out();
    };
    {
        let mut streamed = found.streamed.lock().unwrap_or_else(|p| p.into_inner());
        if streamed.len() >= STREAMED_MAX {
            streamed.clear();
        }
        streamed
            .entry(track.clone())
            .or_insert_with(|| gateway.traffic_of(&track));
    }
    // A download plays from disk, with or without the origin.
    if let Some(store) = gateway.web().store(&found.account_id) {
        let now = crate::player::unix_now().0;
        let loaded = {
            let track = track.clone();
            tokio::task::spawn_blocking(move || store.load(&track, now)).await
        };
        if let Ok(Ok(Some((grant, chunks)))) = loaded {
            let cache = gateway.cache().clone();
            let manifest = grant.manifest.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for (index, data) in &chunks {
                    if let Some(chunk) = manifest.chunk_id(*index) {
                        let _ = cache.put(chunk, data);
                    }
                }
            })
            .await;
            gateway.note_held(&grant.manifest);
            return gateway.stream_grant(grant, &headers);
        }
    }
    let mut access = found.session.access_token.clone();
    for attempt in 0..2 {
        match gateway.stream_as(&access, &track, None, &headers).await {
            Ok(response) => return response,
            Err(error)
                if attempt == 0 && ApiError::of(&error).is_some_and(|api| api.status == 401) =>
            {
                match renew(&gateway, &id, &found, &access).await {
                    Ok(session) => access = session.access_token,
                    Err(answer) => return answer,
                }
            }
            Err(error) => return origin_error(&error),
        }
    }
    signed_out()
}

/// `?size=` of a cover.
#[derive(Debug, Deserialize)]
struct CoverSize {
    size: Option<u32>,
}

/// `GET /web/cover/{al-|ar-|tr-}{id}?size=N`: the picture of an album, artist or track, kept
/// in the gateway's memory as Subsonic's `getCoverArt` keeps it.
async fn cover(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    axum::extract::Query(size): axum::extract::Query<CoverSize>,
    headers: HeaderMap,
) -> Response {
    let Some((_, found)) = gateway.web().lookup(&headers) else {
        return signed_out();
    };
    let size = size.size.unwrap_or(0).min(8192);
    match crate::subsonic::cover(&gateway, &found.session.access_token, &id, size).await {
        Ok((bytes, kind)) => {
            let mut response = bytes.into_response();
            if let Ok(value) = HeaderValue::from_str(&kind) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=86400"),
            );
            response
        }
        Err(_) => refuse(StatusCode::NOT_FOUND, "no_picture", "no picture"),
    }
}

async fn traffic(
    State(gateway): State<Arc<Gateway>>,
    Path(track): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((_, found)) = gateway.web().lookup(&headers) else {
        return signed_out();
    };
    // Only for tracks this browser streamed, and only since it first did: the counts are
    // the gateway's, and what others on it play is theirs.
    let since = found
        .streamed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&track)
        .copied();
    let Some(since) = since else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_streamed",
            "this browser did not stream that track",
        );
    };
    axum::Json(gateway.traffic_of(&track).since(&since)).into_response()
}

/// A download as the page lists it: the track as the origin described it when it was made,
/// so the list needs no origin.
#[derive(Debug, Serialize, Deserialize)]
struct DownloadEntry {
    track_id: String,
    bytes: u64,
    duration_ms: u64,
    expires_at_ms: u64,
    /// The track's `TrackView` when downloaded.
    track: serde_json::Value,
}

/// Where a download's description is kept next to the offline store.
fn described(root: &std::path::Path, track: &str) -> PathBuf {
    root.join(format!("{track}.json"))
}

async fn downloads(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let Some((_, found)) = gateway.web().lookup(&headers) else {
        return signed_out();
    };
    let Some(store) = gateway.web().store(&found.account_id) else {
        return axum::Json(Vec::<DownloadEntry>::new()).into_response();
    };
    let Some(root) = gateway.web().downloads_dir(&found.account_id) else {
        return axum::Json(Vec::<DownloadEntry>::new()).into_response();
    };
    let listed = tokio::task::spawn_blocking(move || {
        let list = store.list()?;
        Ok::<_, crate::offline::OfflineError>(
            list.into_iter()
                .map(|info| {
                    let track = std::fs::read(described(&root, &info.track_id))
                        .ok()
                        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                        .unwrap_or(serde_json::Value::Null);
                    DownloadEntry {
                        track_id: info.track_id,
                        bytes: info.bytes,
                        duration_ms: info.duration_ms,
                        expires_at_ms: info.expires_at_ms,
                        track,
                    }
                })
                .collect::<Vec<_>>(),
        )
    })
    .await;
    match listed {
        Ok(Ok(list)) => axum::Json(list).into_response(),
        Ok(Err(error)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "offline_store", error),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "offline_store", error),
    }
}

/// What a download route needs: the page's header (for a change), a well-formed track id,
/// the session, and the account's store and directory; or the answer.
fn download_place(
    gateway: &Gateway,
    method: &Method,
    track: &str,
    headers: &HeaderMap,
) -> Result<(String, WebSession, crate::offline::OfflineStore, PathBuf), Box<Response>> {
    if !from_page(method, headers) {
        return Err(Box::new(refuse(
            StatusCode::FORBIDDEN,
            "not_from_page",
            "missing X-Chorus-Web",
        )));
    }
    if !valid_id(track) {
        return Err(Box::new(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "track ids are 32 hex characters",
        )));
    }
    let Some((id, found)) = gateway.web().lookup(headers) else {
        return Err(Box::new(signed_out()));
    };
    match (
        gateway.web().store(&found.account_id),
        gateway.web().downloads_dir(&found.account_id),
    ) {
        (Some(store), Some(root)) => Ok((id, found, store, root)),
        _ => Err(Box::new(refuse(
            StatusCode::NOT_FOUND,
            "no_downloads",
            "this gateway keeps no downloads",
        ))),
    }
}

async fn download(
    State(gateway): State<Arc<Gateway>>,
    Path(track): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (id, found, store, root) = match download_place(&gateway, &Method::POST, &track, &headers) {
        Ok(place) => place,
        Err(answer) => return *answer,
    };
    let mut access = found.session.access_token.clone();
    let view: serde_json::Value = match gateway
        .api()
        .get_as(&access, &format!("/v1/tracks/{track}"))
        .await
    {
        Ok(view) => view,
        Err(error) if ApiError::of(&error).is_some_and(|api| api.status == 401) => {
            match renew(&gateway, &id, &found, &access).await {
                Ok(session) => {
                    access = session.access_token;
                    match gateway
                        .api()
                        .get_as(&access, &format!("/v1/tracks/{track}"))
                        .await
                    {
                        Ok(view) => view,
                        Err(error) => return origin_error(&error),
                    }
                }
                Err(answer) => return answer,
            }
        }
        Err(error) => return origin_error(&error),
    };
    let made = crate::offline::download(
        gateway.endpoint(),
        gateway.api(),
        &access,
        &track,
        None,
        &store,
        Some(gateway.cache().clone()),
    )
    .await;
    let info = match made {
        Ok(info) => info,
        Err(error) => return origin_error(&error),
    };
    let entry = DownloadEntry {
        track_id: info.track_id,
        bytes: info.bytes,
        duration_ms: info.duration_ms,
        expires_at_ms: info.expires_at_ms,
        track: view,
    };
    if let Ok(json) = serde_json::to_vec(&entry.track) {
        let path = described(&root, &track);
        let _ = tokio::task::spawn_blocking(move || std::fs::write(path, json)).await;
    }
    (StatusCode::CREATED, axum::Json(entry)).into_response()
}

async fn remove_download(
    State(gateway): State<Arc<Gateway>>,
    Path(track): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (_, _, store, root) = match download_place(&gateway, &Method::DELETE, &track, &headers) {
        Ok(place) => place,
        Err(answer) => return *answer,
    };
    let removed = tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_file(described(&root, &track));
        store.remove(&track)
    })
    .await;
    match removed {
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(error)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "offline_store", error),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "offline_store", error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others_and_must_be_well_formed() {
        let mut headers = HeaderMap::new();
        let id = "ab".repeat(32);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; chorus_web={id}; x=1")).unwrap(),
        );
        assert_eq!(cookie(&headers), Some(id));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("chorus_web=../../etc/passwd"),
        );
        assert_eq!(cookie(&headers), None);
    }

    #[test]
    fn changes_need_the_page_header_and_downloads_are_named_by_account_id() {
        let mut headers = HeaderMap::new();
        assert!(from_page(&Method::GET, &headers));
        assert!(!from_page(&Method::POST, &headers));
        headers.insert("x-chorus-web", HeaderValue::from_static("1"));
        assert!(from_page(&Method::DELETE, &headers));
        let state = WebState::default();
        let id = "0123456789abcdef0123456789ABCDEF";
        assert!(state.store(id).is_none(), "no directory set");
        let root = std::env::temp_dir().join("chorus-web-test");
        state.keep_downloads_in(root.clone());
        assert_eq!(
            state.downloads_dir(id),
            Some(root.join(id.to_ascii_lowercase()))
        );
        for bad in [
            "",
            "ada",
            "..",
            "../../etc/passwd",
            &"a".repeat(33),
            "0123456789abcdef0123456789abcdeg",
        ] {
            assert!(state.store(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_proxy_takes_only_the_listed_routes_with_plain_segments() {
        let id = "0123456789abcdef0123456789abcdef";
        assert!(api_allowed(&Method::GET, "search"));
        assert!(api_allowed(&Method::GET, &format!("albums/{id}")));
        assert!(api_allowed(&Method::PUT, &format!("playlists/{id}/tracks")));
        assert!(api_allowed(&Method::POST, "events"));
        // Other methods on listed routes, and routes not listed at all.
        assert!(!api_allowed(&Method::DELETE, &format!("tracks/{id}")));
        assert!(!api_allowed(&Method::POST, "tracks"));
        assert!(!api_allowed(&Method::POST, "me/app-passwords"));
        assert!(!api_allowed(&Method::PUT, &format!("albums/{id}/image")));
        assert!(!api_allowed(&Method::POST, "sessions"));
        assert!(!api_allowed(&Method::PATCH, "admin/accounts/ada"));
        // What a URL parser would read again: dots, backslashes, escapes (as axum hands
        // them over, decoded once), empty segments.
        for sneaky in [
            "search/x\\..\\..\\sessions",
            "search/%2e%2e/sessions",
            "search/../sessions",
            "search/./x",
            "search//x",
            "search/a?b",
            "search/a#b",
            "",
        ] {
            assert!(!api_allowed(&Method::GET, sneaky), "{sneaky:?}");
        }
    }
}
