//! A local HTTP gateway: unmodified players (ffmpeg, mpv, VLC, a browser `<audio>`) play
//! P2P-assisted audio from `http://ADDR/tracks/{id}`.
//!
//! Each request is authorized with the origin once per track (the grant is reused until it
//! expires), then served as the decrypted Ogg stream with byte ranges: the plaintext offset
//! maps straight to chunk indices (every chunk but the last holds `chunk_bytes` of plaintext),
//! so a range needs only the chunks under it. Chunks come from the local cache first, then from
//! peers the tracker names, then from the origin; every chunk is verified before it is
//! decrypted, and kept in the cache.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use protocol::content::{ChunkCipher, SealLabel};
use protocol::wire::{PeerQuery, Priority, Request};
use tokio::sync::Mutex;
use transport::Endpoint;

mod offset;

use crate::cache::ClientCache;
use crate::fetch::{BanList, FetchReport, Source, fetch_chunks};
use api::client::ApiError;
use api::client::{Grant, OriginApi, Session};

/// Who may use a gateway. It decrypts with its user's licenses, so it is as private as the
/// user's session:
///
/// - **Host check** (DNS rebinding): a web page on another site can make the browser send
///   requests to `127.0.0.1` under the page's own host name. A request is answered only when
///   its `Host` is an IP literal, `localhost`, or a name in `host_names`; any other gets
///   `421 bad_host`.
/// - **Credentials**: with `basic` set, every request needs HTTP Basic authentication with
///   that user and password (players take `http://user:password@host/tracks/ID`). `chorus
///   gateway` requires them for `/tracks` on a listen address other than loopback.
/// - **`/tracks` closed** (`tracks_open` false): only the Subsonic API (`/rest`) is served,
///   whose apps log in with their own app passwords: a household gateway without `--auth`.
///
/// `/rest` takes the host check only: its requests carry Subsonic credentials instead.
#[derive(Clone)]
pub struct Access {
    /// Host names accepted besides IP literals and `localhost` (lower case, no port).
    pub host_names: Vec<String>,
    /// The user and password every `/tracks` request must present, if any.
    pub basic: Option<(String, String)>,
    /// Whether `/tracks` (playing as the gateway's own user) is served at all.
    pub tracks_open: bool,
}

impl Default for Access {
    fn default() -> Self {
        Self {
            host_names: Vec::new(),
            basic: None,
            tracks_open: true,
        }
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("host_names", &self.host_names)
            .field("basic", &self.basic.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl Access {
    /// True when `host` (a `Host` header value) names this gateway.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            // [v6]:port or [v6]
            Some(rest) => match rest.split_once(']') {
                Some((v6, _)) => return v6.parse::<std::net::Ipv6Addr>().is_ok(),
                None => return false,
            },
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name.parse::<std::net::Ipv4Addr>().is_ok()
            || name == "localhost"
            || self.host_names.contains(&name)
    }

    /// True when the `Authorization` header satisfies `basic` (or none is required).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        use base64::Engine;
        let Some((user, password)) = &self.basic else {
            return true;
        };
        let Some(presented) = authorization
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
            })
        else {
            return false;
        };
        let expected = format!("{user}:{password}");
        // Digests of equal length compared without an early exit: timing tells neither how
        // much of a guess was right nor how long the secret is.
        constant_time_eq(
            blake3::hash(&presented).as_bytes(),
            blake3::hash(expected.as_bytes()).as_bytes(),
        )
    }
}

/// Compares without an early exit, so timing does not tell how much of a guess was right.
fn constant_time_eq(left: &[u8; 32], right: &[u8; 32]) -> bool {
    left.iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

async fn check_access(
    State(access): State<Arc<Access>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        });
    if !host.is_some_and(|host| access.host_allowed(host)) {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "bad_host",
            "this gateway answers only to its own address (Host is not an IP, localhost or a --host name)",
        );
    }
    if !access.tracks_open {
        return error(
            StatusCode::FORBIDDEN,
            "tracks_closed",
            "this gateway serves /tracks only with --auth on a shared address: use a Subsonic \
             app at /rest",
        );
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !access.authorized(authorization) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this gateway needs its user and password",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"chorus gateway\""),
        );
        return response;
    }
    next.run(request).await
}

/// Chunks fetched and decrypted per step of a response body (the first step is one chunk,
/// so the first bytes leave as soon as the opening chunk is here).
const STEP_CHUNKS: u32 = 16;

/// Chunks asked for with each grant (the origin's first-chunk path): a stream's first bytes
/// need no second round trip.
const OPENING_CHUNKS: u32 = 2;

/// How long a response's second step waits for the tracker's answer before fetching from
/// the sources known then. The first step and the grant's opening chunks cover that time, so
/// the wait costs playback nothing and the body comes from peers first.
const TRACKER_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// Where a grant's chunks come from: the origin at first, peers first once the tracker has
/// answered (asked in the background, so a stream's first bytes do not wait for it).
pub(crate) type Sources = Arc<SourceList>;

/// The sources of one grant, and whether the tracker's answer is in.
#[derive(Debug)]
pub(crate) struct SourceList {
    list: std::sync::Mutex<Vec<Source>>,
    answered: tokio::sync::watch::Sender<bool>,
    /// Past this, nothing waits for the tracker any more.
    patience: tokio::time::Instant,
}

/// Settles a [`SourceList`] when dropped.
struct Settle(Sources);

impl Drop for Settle {
    fn drop(&mut self) {
        self.0.settle();
    }
}

impl SourceList {
    /// The origin alone; `answered` when no tracker will be asked.
    fn origin(grant: &Grant, answered: bool) -> Sources {
        Arc::new(Self {
            list: std::sync::Mutex::new(vec![Source {
                node: grant.origin.node,
                addr: grant.origin.addr,
            }]),
            answered: tokio::sync::watch::Sender::new(answered),
            patience: tokio::time::Instant::now() + TRACKER_WAIT,
        })
    }

    /// The sources now, best first.
    fn current(&self) -> Vec<Source> {
        self.list
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// `peers` ahead of the sources known.
    fn put_first(&self, peers: impl Iterator<Item = Source>) {
        let mut list = self
            .list
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let known = std::mem::take(&mut *list);
        *list = peers.chain(known).collect();
    }

    /// The tracker answered, or will not.
    fn settle(&self) {
        self.answered.send_replace(true);
    }

    /// The sources once the tracker has answered, or [`TRACKER_WAIT`] after the grant
    /// (once that has passed, at once).
    async fn settled(&self) -> Vec<Source> {
        let mut answered = self.answered.subscribe();
        if !*answered.borrow() {
            let _ = tokio::time::timeout_at(self.patience, answered.wait_for(|done| *done)).await;
        }
        self.current()
    }
}

/// Grants kept (one per track played recently).
const GRANTS_MAX: usize = 256;

/// Shared state of the gateway.
pub struct Gateway {
    api: OriginApi,
    session: Mutex<Session>,
    endpoint: Endpoint,
    cache: Arc<ClientCache>,
    grants: Mutex<HashMap<String, (Grant, Sources)>>,
    bans: BanList,
    share: crate::serve::ServeConfig,
    serving: Mutex<Option<crate::serve::Serving>>,
    subsonic: crate::subsonic::Subsonic,
    traffic: std::sync::Mutex<Traffic>,
    web: crate::web::WebState,
    /// Woken when a rendition becomes whole in the cache: peers learn of it from the next
    /// announce at once, not a third of the tracker's TTL later.
    held_changed: Arc<tokio::sync::Notify>,
}

/// Bytes a gateway served for one track, by where it got them (the type listening events
/// report them in).
pub use api::events::SourceBytes;

/// Tracks whose [`SourceBytes`] are kept (the most recently played).
const TRAFFIC_TRACKS_MAX: usize = 256;
/// Node roles remembered from the tracker's answers.
const ROLES_MAX: usize = 4096;

/// Where each track's bytes came from, and what the gateway knows to tell them apart.
#[derive(Debug, Default)]
struct Traffic {
    by_track: HashMap<String, SourceBytes>,
    /// Roles of the peers trackers named.
    roles: HashMap<protocol::NodeId, protocol::wire::NodeRole>,
    /// Chunks that came with a grant (from the origin) and were not read since, per track.
    from_grant: HashMap<String, Vec<u32>>,
    /// What listening events already reported, per track.
    reported: HashMap<String, SourceBytes>,
}

impl Traffic {
    fn entry(&mut self, track: &str) -> &mut SourceBytes {
        if self.by_track.len() >= TRAFFIC_TRACKS_MAX && !self.by_track.contains_key(track) {
            self.by_track.clear();
            self.from_grant.clear();
            self.reported.clear();
        }
        self.by_track.entry(track.to_string()).or_default()
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("origin", &self.api.base())
            .finish()
    }
}

/// A refusal in the origin's envelope (`api::ErrorBody`), so one client reads both.
pub(crate) fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    let body = api::ErrorBody {
        error: api::ErrorDetail {
            code: code.to_string(),
            message: message.to_string(),
            field: None,
            index: None,
        },
    };
    (status, axum::Json(body)).into_response()
}

/// Parses a single `bytes=` range against a length; `Err(())` when unsatisfiable.
#[allow(clippy::result_unit_err)]
pub fn parse_range(header: &str, length: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Multiple ranges: serve the whole body (allowed by RFC 9110).
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (length.saturating_sub(n), length.saturating_sub(1))
        }
        (start, "") => (start.parse().map_err(|_| ())?, length.saturating_sub(1)),
        (start, end) => {
            let (start, end): (u64, u64) =
                (start.parse().map_err(|_| ())?, end.parse().map_err(|_| ())?);
            (start, end.min(length.saturating_sub(1)))
        }
    };
    if length == 0 || start >= length || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

impl Gateway {
    /// A gateway for the logged-in `session` on `api`, fetching over `endpoint`.
    pub fn new(
        api: OriginApi,
        session: Session,
        endpoint: Endpoint,
        cache: Arc<ClientCache>,
        share: crate::serve::ServeConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            api,
            session: Mutex::new(session),
            endpoint,
            cache,
            grants: Mutex::new(HashMap::new()),
            bans: BanList::default(),
            share,
            serving: Mutex::new(None),
            subsonic: crate::subsonic::Subsonic::default(),
            traffic: std::sync::Mutex::new(Traffic::default()),
            web: crate::web::WebState::default(),
            held_changed: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// The origin this gateway works for.
    pub fn api(&self) -> &OriginApi {
        &self.api
    }

    /// Where the bytes served for `track` came from, since the gateway started (or since it
    /// last forgot the track: it keeps the 256 most recent).
    pub fn traffic_of(&self, track: &str) -> SourceBytes {
        self.traffic
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .by_track
            .get(track)
            .copied()
            .unwrap_or_default()
    }

    /// What the gateway served for `track` since this was last asked for it: what a
    /// listening event reports (`sources`) when an app says the play ended.
    pub fn unreported_traffic(&self, track: &str) -> SourceBytes {
        let mut traffic = self
            .traffic
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Only tracks the gateway keeps counts of (bounded with them).
        let Some(now) = traffic.by_track.get(track).copied() else {
            return SourceBytes::default();
        };
        let before = traffic
            .reported
            .insert(track.to_string(), now)
            .unwrap_or_default();
        now.since(&before).clamped()
    }

    /// Keeps the web player's offline downloads under `dir` (one directory per user);
    /// without it the page offers none.
    pub fn keep_web_downloads_in(&self, dir: std::path::PathBuf) {
        self.web.keep_downloads_in(dir);
    }

    /// The web player's sessions and downloads.
    pub(crate) fn web(&self) -> &crate::web::WebState {
        &self.web
    }

    /// The QUIC endpoint chunks are fetched over.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The chunk cache.
    pub(crate) fn cache(&self) -> &Arc<ClientCache> {
        &self.cache
    }

    /// Chunks of `manifest`'s rendition went into the cache: when it is whole now, the
    /// announce loop tells the tracker at once.
    pub(crate) fn note_held(&self, manifest: &protocol::Manifest) {
        let count = manifest.chunk_count();
        if count > 0 && self.cache.held_prefix(&manifest.id()) == count {
            self.held_changed.notify_one();
        }
    }

    /// Serves `grant` (a download's, say) as [`Gateway::stream_as`] would, its chunks from
    /// the cache first.
    pub(crate) fn stream_grant(self: &Arc<Self>, grant: Grant, headers: &HeaderMap) -> Response {
        let sources = SourceList::origin(&grant, true);
        stream_response(self.clone(), grant, sources, headers)
    }

    /// The Subsonic side's sessions and picture cache.
    pub fn subsonic(&self) -> &crate::subsonic::Subsonic {
        &self.subsonic
    }

    /// The decrypted stream of `track` (at `quality`, else the origin's default) for the
    /// listener whose token is `access`, honouring a `Range` in `headers`: what Subsonic's
    /// `stream` answers. Errors are the origin's refusals (an [`ApiError`] inside).
    pub async fn stream_as(
        self: &Arc<Self>,
        access: &str,
        track: &str,
        quality: Option<&str>,
        headers: &HeaderMap,
    ) -> anyhow::Result<Response> {
        let (grant, sources) = self.grant_as(Some(access), track, quality).await?;
        Ok(stream_response(self.clone(), grant, sources, headers))
    }

    /// The stream of `track` from `offset_ms` into it (Subsonic's `timeOffset`): a whole Ogg
    /// stream whose time 0 is the end of the last page before the offset, without the bytes
    /// before it. Errors are the origin's refusals, an offset past the end, or a file that
    /// cannot be cut.
    pub async fn stream_from(
        self: &Arc<Self>,
        access: &str,
        track: &str,
        quality: Option<&str>,
        offset_ms: u64,
    ) -> anyhow::Result<Response> {
        let (grant, sources) = self.grant_as(Some(access), track, quality).await?;
        if offset_ms == 0 {
            return Ok(stream_response(
                self.clone(),
                grant,
                sources,
                &HeaderMap::new(),
            ));
        }
        offset::offset_response(self.clone(), grant, sources, offset_ms).await
    }

    /// Starts sharing the cache with peers (once, after the first grant tells the origin's
    /// key, this client's region and the tracker), and announces it every third of the
    /// tracker's TTL with the newest license as credential.
    async fn ensure_serving(self: &Arc<Self>, grant: &Grant) {
        let mut serving = self.serving.lock().await;
        if serving.is_some() || !self.share.uploads() {
            return;
        }
        let Some(claims) = crate::serve::own_claims(&grant.license) else {
            return;
        };
        *serving = crate::serve::Serving::start(
            &self.endpoint,
            self.cache.clone(),
            grant.origin.node,
            claims.region,
            self.share.clone(),
        );
        let trackers = grant.trackers.clone();
        let Some(first) = trackers.all().first().copied() else {
            return;
        };
        let gateway = Arc::downgrade(self);
        let held_changed = self.held_changed.clone();
        tokio::spawn(async move {
            loop {
                let Some(gateway) = gateway.upgrade() else {
                    return;
                };
                let newest = gateway
                    .grants
                    .lock()
                    .await
                    .values()
                    .max_by_key(|(grant, _)| grant.expires_at_ms)
                    .map(|(grant, _)| grant.license.clone());
                let mut wait = std::time::Duration::from_secs(30);
                if let (Some(license), Ok(local)) = (newest, gateway.endpoint.local_addr()) {
                    let addr = transport::keyfile::advertised_addr(local, first.addr);
                    let serving = gateway.serving.lock().await;
                    if let Some(serving) = serving.as_ref() {
                        match serving
                            .announce(&gateway.endpoint, &trackers, &license, &gateway.cache, addr)
                            .await
                        {
                            Ok(_) if serving.catching_up() => {
                                wait = crate::serve::ANNOUNCE_CATCH_UP;
                            }
                            Ok(ttl_ms) => {
                                wait = std::time::Duration::from_millis(
                                    u64::from(ttl_ms / 3).max(1_000),
                                );
                            }
                            Err(error) => tracing::debug!(%error, "announce failed"),
                        }
                    }
                }
                drop(gateway);
                // Until the wait ends or a rendition becomes whole.
                let _ = tokio::time::timeout(wait, held_changed.notified()).await;
            }
        });
    }

    /// The HTTP routes: `GET`/`HEAD /tracks/{id}` behind all of `access`'s checks; the
    /// OpenSubsonic API at `/rest/{method}` (GET or form POST) and the web player at `/`
    /// (with its `/web/...` endpoints, [`crate::web`]) behind the host check, their own
    /// credentials standing in for the gateway's password.
    pub fn router(self: &Arc<Self>, access: Access) -> Router {
        let access = Arc::new(access);
        let subsonic_access = Arc::new(Access {
            basic: None,
            tracks_open: true,
            ..(*access).clone()
        });
        let tracks = Router::new()
            .route("/tracks/{id}", get(serve_track))
            .layer(axum::middleware::from_fn_with_state(access, check_access));
        let web = crate::web::router().layer(axum::middleware::from_fn_with_state(
            subsonic_access.clone(),
            check_access,
        ));
        let rest = Router::new()
            .route("/rest/{method}", get(serve_rest).post(serve_rest))
            .layer(axum::extract::DefaultBodyLimit::max(
                crate::subsonic::params::FORM_BYTES_MAX,
            ))
            .layer(axum::middleware::from_fn_with_state(
                subsonic_access,
                check_access,
            ));
        tracks.merge(rest).merge(web).with_state(self.clone())
    }

    /// A grant for `track` as the gateway's own user (`access` `None`) or as the listener
    /// whose token `access` is, at `quality` or the origin's default; reused until near its
    /// end.
    async fn grant_as(
        self: &Arc<Self>,
        access: Option<&str>,
        track: &str,
        quality: Option<&str>,
    ) -> anyhow::Result<(Grant, Sources)> {
        let now = crate::player::unix_now().0;
        let key = match access {
            None => track.to_string(),
            // Grants are the listener's own (licenses name the account): keyed by token.
            Some(access) => format!(
                "{}/{track}/{}",
                blake3::hash(access.as_bytes()).to_hex(),
                quality.unwrap_or("")
            ),
        };
        if let Some((grant, sources)) = self.grants.lock().await.get(&key)
            && grant.expires_at_ms > now + 60_000
        {
            return Ok((grant.clone(), sources.clone()));
        }
        let node = self.endpoint.node_id();
        let params = |quality| api::client::PlayParams {
            quality,
            offline: false,
            opening_chunks: OPENING_CHUNKS,
            opening_ms: 0,
        };
        let grant = match access {
            Some(access) => {
                self.api
                    .play_with(access, track, &node, params(quality))
                    .await?
            }
            None => {
                let access = self.session.lock().await.access_token.clone();
                match self
                    .api
                    .play_with(&access, track, &node, params(quality))
                    .await
                {
                    Ok(grant) => grant,
                    Err(first) if ApiError::of(&first).is_some_and(|api| api.status == 401) => {
                        // The access token expired: renew the session once.
                        let refresh = self.session.lock().await.refresh_token.clone();
                        let renewed = self.api.refresh(&refresh).await?;
                        let access = renewed.access_token.clone();
                        *self.session.lock().await = renewed;
                        self.api
                            .play_with(&access, track, &node, params(quality))
                            .await?
                    }
                    Err(error) => return Err(error),
                }
            }
        };
        let _ = self.cache.put_manifest(grant.manifest.signed());
        let _ = self.cache.put_license(&grant.manifest.id(), &grant.license);
        // The opening chunks came with the grant, checked against the manifest.
        for (index, data) in grant.opening.iter().enumerate() {
            if let Some(id) = grant.manifest.chunk_id(index as u32) {
                let _ = self.cache.put(id, data);
            }
        }
        {
            let mut traffic = self
                .traffic
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            traffic.entry(track);
            traffic
                .from_grant
                .insert(track.to_string(), (0..grant.opening.len() as u32).collect());
        }
        let sources = SourceList::origin(&grant, grant.tracker.is_none());
        if let Some(tracker) = grant.tracker {
            let query = Request::PeerQuery(PeerQuery {
                rendition: grant.manifest.id(),
                want: 10,
                license: grant.license.clone(),
            });
            let (endpoint, filled) = (self.endpoint.clone(), sources.clone());
            let gateway = Arc::downgrade(self);
            tokio::spawn(async move {
                // Settled however the task ends (answer, error, timeout, or dropped).
                let _settle = Settle(filled.clone());
                let asked = async {
                    let peer = endpoint.connect(tracker.node, tracker.addr).await?;
                    peer.request_one(&query).await
                };
                if let Ok(Ok(protocol::wire::Response::PeerList(list))) =
                    tokio::time::timeout(std::time::Duration::from_secs(2), asked).await
                {
                    if let Some(gateway) = gateway.upgrade() {
                        let mut traffic = gateway
                            .traffic
                            .lock()
                            .unwrap_or_else(|poison| poison.into_inner());
                        if traffic.roles.len() + list.peers.len() > ROLES_MAX {
                            traffic.roles.clear();
                        }
                        for peer in &list.peers {
                            traffic.roles.insert(peer.node, peer.role);
                        }
                    }
                    let peers = list.peers.iter().filter_map(|peer| {
                        peer.addrs.first().map(|addr| Source {
                            node: peer.node,
                            addr: *addr,
                        })
                    });
                    filled.put_first(peers);
                }
            });
        }
        let mut grants = self.grants.lock().await;
        if grants.len() >= GRANTS_MAX {
            grants.clear();
        }
        grants.insert(key, (grant.clone(), sources.clone()));
        drop(grants);
        self.ensure_serving(&grant).await;
        Ok((grant, sources))
    }

    /// Plaintext of chunks `first .. end`: cache first, then the sources.
    async fn plaintext(
        &self,
        grant: &Grant,
        sources: &SourceList,
        first: u32,
        end: u32,
        wait_for_peers: bool,
    ) -> anyhow::Result<Vec<Bytes>> {
        let manifest = &grant.manifest;
        // Cache reads (files, hashed) stay off the async workers.
        let ids: Vec<Option<protocol::ChunkId>> = (first..end)
            .map(|index| manifest.chunk_id(index).copied())
            .collect();
        let cache = self.cache.clone();
        let mut ciphertext: Vec<Option<Bytes>> = tokio::task::spawn_blocking(move || {
            ids.iter()
                .map(|id| id.as_ref().and_then(|id| cache.get(id)))
                .collect()
        })
        .await?;
        let track = grant.track_id.as_str();
        {
            let mut traffic = self
                .traffic
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let mut opening = traffic.from_grant.remove(track).unwrap_or_default();
            let (mut cached, mut origin) = (0, 0);
            for (offset, data) in ciphertext.iter().enumerate() {
                let Some(data) = data else { continue };
                let index = first + offset as u32;
                match opening.iter().position(|&held| held == index) {
                    Some(at) => {
                        opening.swap_remove(at);
                        origin += data.len() as u64;
                    }
                    None => cached += data.len() as u64,
                }
            }
            if !opening.is_empty() {
                traffic.from_grant.insert(track.to_string(), opening);
            }
            let entry = traffic.entry(track);
            entry.cache += cached;
            entry.origin += origin;
        }
        // Each run of missing chunks is fetched by itself: chunks already held are neither
        // fetched again nor counted twice. Only a fetch waits for the tracker's peers.
        let missing = ciphertext.iter().any(Option::is_none);
        let sources = match (missing, wait_for_peers) {
            (false, _) => Vec::new(),
            (true, true) => sources.settled().await,
            (true, false) => sources.current(),
        };
        let sources = &sources[..];
        let mut at = 0;
        while let Some(start) = (at..ciphertext.len()).find(|&i| ciphertext[i].is_none()) {
            let end = (start..ciphertext.len())
                .find(|&i| ciphertext[i].is_some())
                .unwrap_or(ciphertext.len());
            at = end;
            let (lo, hi) = (first + start as u32, first + end as u32);
            let mut report = FetchReport::default();
            let fetched = fetch_chunks(
                &self.endpoint,
                manifest,
                &grant.license,
                Priority::Playing,
                sources,
                &self.bans,
                (lo, hi),
                &mut report,
            )
            .await?;
            for (offset, data) in fetched.into_iter().enumerate() {
                let index = lo + offset as u32;
                if let Some(id) = manifest.chunk_id(index) {
                    let _ = self.cache.put(id, &data);
                }
                if let Some(slot) = ciphertext.get_mut((index - first) as usize) {
                    *slot = Some(data);
                }
            }

            let mut traffic = self
                .traffic
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let mut by_role = SourceBytes::default();
            for (node, bytes) in &report.bytes_from {
                use protocol::wire::NodeRole;
                let role = if *node == grant.origin.node {
                    NodeRole::Origin
                } else {
                    traffic.roles.get(node).copied().unwrap_or(NodeRole::Client)
                };
                match role {
                    NodeRole::Origin => by_role.origin += bytes,
                    NodeRole::SuperNode => by_role.super_nodes += bytes,
                    NodeRole::Client => by_role.peers += bytes,
                }
            }
            let entry = traffic.entry(track);
            entry.origin += by_role.origin;
            entry.super_nodes += by_role.super_nodes;
            entry.peers += by_role.peers;
        }
        if missing {
            self.note_held(manifest);
        }
        let cipher = ChunkCipher::new(
            &grant.content_key,
            SealLabel {
                track: manifest.body().track,
                quality: manifest.body().quality,
            },
        );
        ciphertext
            .into_iter()
            .enumerate()
            .map(|(offset, data)| {
                let index = first + offset as u32;
                let id = manifest
                    .chunk_id(index)
                    .ok_or_else(|| anyhow::anyhow!("chunk {index} outside the manifest"))?;
                let data = data.ok_or_else(|| anyhow::anyhow!("chunk {index} missing"))?;
                Ok(Bytes::from(cipher.open(index, id, &data)?))
            })
            .collect()
    }
}

async fn serve_track(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "track ids are 32 hex characters",
        );
    }
    let (grant, sources) = match gateway.grant_as(None, &id, None).await {
        Ok(found) => found,
        Err(failure) => {
            let text = format!("{failure:#}");
            // The origin's own refusal passes through with its status and code.
            let (status, code) = match ApiError::of(&failure) {
                Some(api) if api.status == 404 || api.status == 403 => (
                    StatusCode::from_u16(api.status).unwrap_or(StatusCode::BAD_GATEWAY),
                    if api.code.is_empty() {
                        "forbidden".to_string()
                    } else {
                        api.code.clone()
                    },
                ),
                _ => (StatusCode::BAD_GATEWAY, "origin_unavailable".to_string()),
            };
            return error(status, &code, text);
        }
    };
    stream_response(gateway, grant, sources, &headers)
}

async fn serve_rest(
    State(gateway): State<Arc<Gateway>>,
    Path(method): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    form: Bytes,
) -> Response {
    crate::subsonic::serve(gateway, method, query, headers, form).await
}

/// The decrypted stream of a granted rendition, or the part a `Range` in `headers` asks for.
fn stream_response(
    gateway: Arc<Gateway>,
    grant: Grant,
    sources: Sources,
    headers: &HeaderMap,
) -> Response {
    let body = grant.manifest.body();
    let length = body.plaintext_bytes;
    let chunk_bytes = u64::from(body.chunk_bytes);
    let range = match headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
    {
        Some(text) => match parse_range(text, length) {
            Ok(range) => range,
            Err(()) => {
                let mut response = error(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "bad_range",
                    "range not satisfiable",
                );
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{length}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return response;
            }
        },
        None => None,
    };
    let (start, end) = range.unwrap_or((0, length.saturating_sub(1)));
    let first_chunk = (start / chunk_bytes) as u32;
    let last_chunk = (end / chunk_bytes) as u32;
    let state = (gateway.clone(), grant, sources, first_chunk, start, end);
    let stream = futures_util::stream::unfold(
        state,
        move |(gateway, grant, sources, next, start, end)| async move {
            if next > last_chunk {
                return None;
            }
            // The first step leaves at once; the rest come from the peers the tracker names.
            let later = next != first_chunk;
            let step = if later { STEP_CHUNKS } else { 1 };
            let stop = (next + step).min(last_chunk + 1);
            let item = match gateway.plaintext(&grant, &sources, next, stop, later).await {
                Ok(pieces) => {
                    let mut out = Vec::new();
                    for (offset, piece) in pieces.iter().enumerate() {
                        let chunk_start = u64::from(next + offset as u32) * chunk_bytes;
                        let from =
                            start.saturating_sub(chunk_start).min(piece.len() as u64) as usize;
                        let to = (end + 1)
                            .saturating_sub(chunk_start)
                            .min(piece.len() as u64) as usize;
                        if from < to {
                            out.extend_from_slice(&piece[from..to]);
                        }
                    }
                    Ok(Bytes::from(out))
                }
                Err(failure) => {
                    tracing::warn!(error = %failure, "gateway could not fetch chunks");
                    Err(std::io::Error::other(failure.to_string()))
                }
            };
            let failed = item.is_err();
            let next = if failed { last_chunk + 1 } else { stop };
            Some((item, (gateway, grant, sources, next, start, end)))
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/ogg"));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(&(end + 1 - start).to_string()) {
        headers.insert(header::CONTENT_LENGTH, value);
    }
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{length}")) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::{Access, parse_range};

    #[test]
    fn hosts_and_credentials() {
        let open = Access::default();
        for host in [
            "127.0.0.1:8480",
            "localhost:8480",
            "LOCALHOST",
            "[::1]:8480",
            "192.0.2.4:80",
            "localhost.",
        ] {
            assert!(open.host_allowed(host), "{host}");
        }
        for host in [
            "evil.example:8480",
            "127.0.0.1.evil.example",
            "[::1",
            "",
            "localhost.evil.example:8480",
        ] {
            assert!(!open.host_allowed(host), "{host}");
        }
        let named = Access {
            host_names: vec!["music.lan".into()],
            basic: Some(("me".into(), "secret word".into())),
            tracks_open: true,
        };
        assert!(named.host_allowed("music.lan:8480"));
        use base64::Engine;
        let basic = |text: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(text)
            )
        };
        assert!(named.authorized(Some(&basic("me:secret word"))));
        assert!(!named.authorized(Some(&basic("me:secret wore"))));
        assert!(!named.authorized(Some(&basic("me:secret word "))));
        assert!(!named.authorized(Some("Bearer x")));
        assert!(!named.authorized(None));
        assert!(open.authorized(None));
    }

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=990-5000", 1000), Ok(Some((990, 999))));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(()));
        assert_eq!(parse_range("bytes=5-1", 1000), Err(()));
        assert_eq!(parse_range("bytes=-0", 1000), Err(()));
        assert_eq!(parse_range("bytes=x-1", 1000), Err(()));
    }
}
