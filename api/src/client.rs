//! The origin's HTTP client, as players, super-nodes, trackers, the devnet and the benches
//! use it: where the network's services are, sessions, play authorization, search, listening
//! events and the super-node role token. Bodies are this crate's types; what the origin
//! signs is verified against the pinned origin key before a caller sees it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use protocol::{ContentKey, LicenseToken, Manifest, NodeId, Region, SignedManifest, codec};
use serde::de::DeserializeOwned;

use crate::accounts::{Login, Refresh, Tokens};
use crate::error::ErrorBody;
use crate::events::{Event, EventsAccepted};
use crate::network::{Network, NodeToken, NodeTokenRequest};
use crate::playback::{OPENING_CHUNKS_MAX, PlayGrant, PlayRequest};
use crate::search::SearchResults;

/// A node reachable over `chorus/4`: its id and address, written `NODE_ID@HOST:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAddr {
    /// The node id the handshake must prove.
    pub node: NodeId,
    /// Its QUIC address.
    pub addr: SocketAddr,
}

impl std::str::FromStr for NodeAddr {
    type Err = anyhow::Error;
    fn from_str(text: &str) -> anyhow::Result<Self> {
        let (node, addr) = text.split_once('@').context("expected NODE_ID@HOST:PORT")?;
        Ok(Self {
            node: node.parse().context("node id: 64 hex characters")?,
            addr: addr.parse().context("address: HOST:PORT")?,
        })
    }
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.node, self.addr)
    }
}

/// The tracker shards of a network. Each rendition belongs to one shard, chosen by
/// rendezvous hashing over their node ids ([`protocol::shards`]): every party finds the same
/// shard without asking, and a shard that stops takes only its own renditions to the DHT and
/// origin fallback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trackers(Vec<NodeAddr>);

impl Trackers {
    /// The shards, in any order.
    pub fn new(shards: Vec<NodeAddr>) -> Self {
        Self(shards)
    }

    /// Parses `NODE_ID@HOST:PORT` entries.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> anyhow::Result<Self> {
        entries
            .iter()
            .map(|entry| {
                entry
                    .as_ref()
                    .parse()
                    .with_context(|| format!("tracker {:?}", entry.as_ref()))
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(Self)
    }

    /// Every shard.
    pub fn all(&self) -> &[NodeAddr] {
        &self.0
    }

    /// True without trackers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The shard that holds `rendition`.
    pub fn shard_of(&self, rendition: &protocol::RenditionId) -> Option<NodeAddr> {
        protocol::shards::shard_of(rendition, self.0.iter().map(|shard| &shard.node))
            .map(|index| self.0[index])
    }

    /// `renditions` grouped by their shard (shards holding none are left out), each group in
    /// the order given.
    pub fn split(
        &self,
        renditions: impl IntoIterator<Item = protocol::RenditionId>,
    ) -> Vec<(NodeAddr, Vec<protocol::RenditionId>)> {
        let mut groups: Vec<(NodeAddr, Vec<protocol::RenditionId>)> = Vec::new();
        for rendition in renditions {
            let Some(shard) = self.shard_of(&rendition) else {
                continue;
            };
            match groups.iter_mut().find(|(held, _)| *held == shard) {
                Some((_, group)) => group.push(rendition),
                None => groups.push((shard, vec![rendition])),
            }
        }
        groups
    }
}

/// What `GET /v1/network` says.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    /// The origin: its node id signs manifests and licenses.
    pub origin: NodeAddr,
    /// The tracker shards, if the origin's operator configured any.
    pub trackers: Trackers,
}

/// A super-node role token and what came with it.
#[derive(Debug, Clone)]
pub struct RoleToken {
    /// The token, bound to the node.
    pub license: LicenseToken,
    /// The account's region (the super-node's).
    pub region: Region,
    /// When it expires (Unix milliseconds).
    pub expires_at_ms: u64,
    /// The network info that came with it.
    pub network: NetworkInfo,
}

/// Tokens of a logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Token that renews the session (`POST /v1/sessions/refresh`).
    pub refresh_token: String,
}

/// A play authorization: everything needed to fetch, verify, decrypt and play one rendition.
#[derive(Clone)]
pub struct Grant {
    /// The track.
    pub track_id: String,
    /// The verified manifest.
    pub manifest: Manifest,
    /// The content key (never leaves this process).
    pub content_key: ContentKey,
    /// The license, bound to this client's node id.
    pub license: LicenseToken,
    /// The origin's QUIC endpoint.
    pub origin: NodeAddr,
    /// The tracker shard of this grant's rendition, if trackers are configured.
    pub tracker: Option<NodeAddr>,
    /// Every tracker shard (announces go to each rendition's own).
    pub trackers: Trackers,
    /// Playback gain to -14 LUFS, in dB.
    pub gain_db: f64,
    /// When the license expires (Unix ms).
    pub expires_at_ms: u64,
    /// Opening chunks that came with the grant (the first-chunk path), in order from chunk
    /// 0, each checked against the manifest; empty unless asked for.
    pub opening: Vec<Bytes>,
    /// The signed chunk URL template (`{chunk_id}` to fill in) at the origin's public URL,
    /// usually a CDN edge; empty when unknown (a grant read back for offline play).
    pub chunk_url_template: String,
}

/// What a play authorization asks for besides the track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayParams<'a> {
    /// `low`, `normal` or `high`; `None`: the best the tier allows.
    pub quality: Option<&'a str>,
    /// A 30-day offline license (counts against the account's device limit).
    pub offline: bool,
    /// Chunks from the start to carry in the answer (at most 2).
    pub opening_chunks: u32,
    /// And more, within the same limit, until they reach this far into the audio (ms; 0:
    /// `opening_chunks` alone).
    pub opening_ms: u32,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("track_id", &self.track_id)
            .field("rendition", &self.manifest.id())
            .finish_non_exhaustive()
    }
}

/// An HTTP client of one origin, and the origin key it trusts.
///
/// The origin's node id signs manifests and licenses, so it must never come from the answer
/// it verifies. It is pinned either by configuration (`NODE_ID@https://host`, see
/// [`OriginApi::new`]) or at first contact ([`OriginApi::session`] and
/// [`OriginApi::network`] pin it; callers keep it with the login and pass it back with
/// [`OriginApi::pin`]). An answer naming any other key is refused with [`KeyChanged`].
#[derive(Debug, Clone)]
pub struct OriginApi {
    base: String,
    http: reqwest::Client,
    pinned: Arc<OnceLock<NodeId>>,
}

/// The origin answered with a key other than the pinned one: a hard error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the origin's key changed: pinned {pinned}, but the origin now answers as {seen}; if its operator really replaced the key, log in again (or update NODE_ID@URL)"
)]
pub struct KeyChanged {
    /// The key this client trusts.
    pub pinned: NodeId,
    /// The key the answer named.
    pub seen: NodeId,
}

/// Splits `NODE_ID@URL` into its pinned id and URL; a plain URL has no pin.
pub fn split_pinned(spec: &str) -> anyhow::Result<(Option<NodeId>, &str)> {
    let spec = spec.trim();
    match spec.split_once('@') {
        Some((node, url)) if !node.contains('/') && !node.contains(':') => {
            let node = node
                .parse()
                .with_context(|| format!("`{node}` before @ is not a node id (64 hex)"))?;
            Ok((Some(node), url))
        }
        _ => Ok((None, spec)),
    }
}

/// A `reqwest` client builder that speaks HTTPS with rustls, trusting the system roots plus
/// the bundle from `--ca-cert` / `CHORUS_CA_CERT` ([`transport::https::client_config`]).
pub fn http_client_builder() -> anyhow::Result<reqwest::ClientBuilder> {
    let tls = transport::https::client_config().context("loading trusted certificates")?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .http2_adaptive_window(true))
}

fn network_of(network: &Network) -> anyhow::Result<NetworkInfo> {
    let origin = NodeAddr {
        node: network
            .origin
            .node_id
            .parse()
            .context("the origin's node id")?,
        addr: network
            .origin
            .quic
            .parse()
            .context("the origin's QUIC address")?,
    };
    // An origin from before shards names one tracker and no list.
    let trackers = match (&network.tracker, network.trackers.is_empty()) {
        (Some(one), true) => Trackers::parse(std::slice::from_ref(one)),
        _ => Trackers::parse(&network.trackers),
    }
    .context("the origin's tracker setting")?;
    Ok(NetworkInfo { origin, trackers })
}

fn session_of(tokens: Tokens) -> Session {
    Session {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
    }
}

/// Times a rate-limited request is sent again.
pub const RATE_LIMIT_RETRIES: u32 = 2;
/// Longest `Retry-After` waited out, seconds.
pub const RETRY_AFTER_MAX_S: u64 = 5;

/// A refusal from the origin: its HTTP status and the [`ErrorBody`] it came with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The status's reason phrase.
    pub reason: String,
    /// The stable error code (`not_in_market`, `tier_quality`, `device_limit`, …), or empty.
    pub code: String,
    /// The origin's explanation.
    pub message: String,
    /// The request field it is about, if any.
    pub field: Option<String>,
    /// In a batch, the index of the item refused.
    pub index: Option<usize>,
}

impl ApiError {
    /// The refusal inside `error`, if it is (or wraps) one from the origin.
    pub fn of(error: &anyhow::Error) -> Option<&ApiError> {
        error
            .chain()
            .find_map(|cause| cause.downcast_ref::<ApiError>())
    }

    /// The API error code of `error`, if it is (or wraps) a refusal from the origin.
    pub fn code_of(error: &anyhow::Error) -> Option<&str> {
        Self::of(error).map(|api| api.code.as_str())
    }
}

/// The body of a 2xx answer as `T`; an [`ApiError`] from the error envelope otherwise.
async fn answer<T: DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("reading the origin's answer")?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|body| body.error)
            .ok();
        return Err(ApiError {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
            code: detail
                .as_ref()
                .map(|detail| detail.code.clone())
                .unwrap_or_default(),
            message: detail
                .as_ref()
                .map_or_else(|| "no detail".to_string(), |detail| detail.message.clone()),
            field: detail.as_ref().and_then(|detail| detail.field.clone()),
            index: detail.and_then(|detail| detail.index),
        }
        .into());
    }
    // An empty answer (204) reads as JSON null.
    let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
    serde_json::from_slice(body).context("the origin's answer is not what the API says")
}

impl OriginApi {
    /// A client of the origin at `spec`: `https://music.example`, or `NODE_ID@https://…` to
    /// pin the origin's key from configuration. Plain `http://` only to loopback (or with
    /// `CHORUS_PLAIN_HTTP=1`): see [`transport::https::check_origin_url`].
    pub fn new(spec: &str) -> anyhow::Result<Self> {
        let (pinned, base) = split_pinned(spec)?;
        transport::https::check_origin_url(base)?;
        let api = Self {
            base: base.trim_end_matches('/').to_string(),
            http: http_client_builder()?
                .timeout(Duration::from_secs(10))
                .build()?,
            pinned: Arc::new(OnceLock::new()),
        };
        if let Some(node) = pinned {
            api.pin(node)?;
        }
        Ok(api)
    }

    /// Trusts `node` as the origin's key; an error if another one is already pinned.
    pub fn pin(&self, node: NodeId) -> Result<(), KeyChanged> {
        let pinned = *self.pinned.get_or_init(|| node);
        if pinned == node {
            Ok(())
        } else {
            Err(KeyChanged { pinned, seen: node })
        }
    }

    /// Pins the key kept in `path` by [`OriginApi::keep_pin`], if the file exists.
    pub fn pin_from_file(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let node: NodeId = text
            .trim()
            .parse()
            .with_context(|| format!("{} is damaged (not a node id)", path.display()))?;
        self.pin(node)
            .with_context(|| format!("the origin key kept in {}", path.display()))?;
        Ok(())
    }

    /// Keeps the pinned key in `path` (0600) so later runs trust the same origin.
    pub fn keep_pin(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let node = self.pinned().context("no origin key pinned yet")?;
        transport::keyfile::write_private(path, format!("{node}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The pinned origin key, if any yet.
    pub fn pinned(&self) -> Option<NodeId> {
        self.pinned.get().copied()
    }

    /// The origin key to verify with: the pinned one, else the one `GET /v1/network` names
    /// (pinned from then on). Never taken from the answer being verified.
    pub async fn origin_key(&self) -> anyhow::Result<NodeId> {
        if let Some(node) = self.pinned() {
            return Ok(node);
        }
        Ok(self.network().await?.origin.node)
    }

    /// `network` as the origin states it, refused if it names a key other than the pinned one.
    fn checked(&self, network: NetworkInfo) -> anyhow::Result<NetworkInfo> {
        match self.pinned() {
            Some(pinned) if pinned != network.origin.node => Err(KeyChanged {
                pinned,
                seen: network.origin.node,
            }
            .into()),
            _ => Ok(network),
        }
    }

    /// Sends `request` and returns the JSON body of a 2xx answer; a clear error otherwise.
    /// A `429` whose `Retry-After` is at most [`RETRY_AFTER_MAX_S`] is waited out and sent
    /// again, up to [`RATE_LIMIT_RETRIES`] times; a longer wait is the caller's error to show.
    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let mut retries = 0;
        loop {
            let Some(attempt) = request.try_clone() else {
                // A streamed body cannot be sent twice: one try.
                let response = request
                    .send()
                    .await
                    .with_context(|| format!("reaching the origin at {}", self.base))?;
                return answer(response).await;
            };
            let response = attempt
                .send()
                .await
                .with_context(|| format!("reaching the origin at {}", self.base))?;
            let wait_s = (response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS)
                .then(|| response.headers().get(reqwest::header::RETRY_AFTER))
                .flatten()
                .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok())
                .filter(|wait| *wait <= RETRY_AFTER_MAX_S);
            match wait_s {
                Some(wait) if retries < RATE_LIMIT_RETRIES => {
                    retries += 1;
                    tracing::debug!(wait, "rate limited by the origin; waiting");
                    tokio::time::sleep(Duration::from_secs(wait.max(1))).await;
                }
                _ => return answer(response).await,
            }
        }
    }

    /// The origin's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /v1/events`: a batch of listening events (see [`crate::events`]).
    pub async fn post_events(
        &self,
        access: &str,
        events: &[Event],
    ) -> anyhow::Result<EventsAccepted> {
        self.call(
            self.http
                .post(format!("{}/v1/events", self.base))
                .bearer_auth(access)
                .json(events),
        )
        .await
        .context("sending listening events")
    }

    /// `POST /v1/sessions/app`: logs an app in with an app password or API key (what a
    /// Subsonic client sent); a 401 [`ApiError`] when they are wrong.
    pub async fn app_session(
        &self,
        login: &crate::accounts::AppLogin,
    ) -> anyhow::Result<crate::accounts::AppSession> {
        self.call(
            self.http
                .post(format!("{}/v1/sessions/app", self.base))
                .json(login),
        )
        .await
        .context("logging an app in")
    }

    /// `GET` of any JSON resource at `path_and_query` (which starts with `/v1/`), as
    /// `access`: for callers that map the API onto another (the Subsonic gateway).
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        access: &str,
        path_and_query: &str,
    ) -> anyhow::Result<T> {
        self.call(
            self.http
                .get(format!("{}{path_and_query}", self.base))
                .bearer_auth(access),
        )
        .await
    }

    /// A request with a JSON body (`POST`, `PUT`, `DELETE`) to `path`, as `access`; the JSON
    /// answer (use `serde_json::Value` for bodies not needed, `()` is not JSON).
    pub async fn send_as<T: DeserializeOwned, B: serde::Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        access: &str,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(access);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.call(request).await
    }

    /// `method` to `path_and_query` (which starts with `/v1/`) as `access`, with `body` and
    /// its media type, passed through as it is: the origin's answer whatever its status (a
    /// first-party web app's same-origin proxy). Errors only when the origin cannot be
    /// reached.
    pub async fn forward(
        &self,
        method: reqwest::Method,
        access: &str,
        path_and_query: &str,
        body: Option<(bytes::Bytes, String)>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self
            .http
            .request(method, format!("{}{path_and_query}", self.base))
            .bearer_auth(access);
        if let Some((body, kind)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, kind)
                .body(body);
        }
        request
            .send()
            .await
            .with_context(|| format!("reaching the origin at {}", self.base))
    }

    /// The bytes of a picture (`GET /v1/images/{id}`, which needs no token) and its media
    /// type.
    pub async fn image(&self, path: &str) -> anyhow::Result<(bytes::Bytes, String)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("reaching the origin at {}", self.base))?;
        if !response.status().is_success() {
            answer::<serde_json::Value>(response).await?;
            anyhow::bail!("the origin answered without a picture");
        }
        let kind = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("image/jpeg")
            .to_string();
        Ok((response.bytes().await?, kind))
    }

    /// `GET /v1/me/player`: the listener's saved queue and place.
    pub async fn player(&self, access: &str) -> anyhow::Result<crate::library::PlayerState> {
        self.call(
            self.http
                .get(format!("{}/v1/me/player", self.base))
                .bearer_auth(access),
        )
        .await
        .context("reading the saved player state")
    }

    /// `PUT /v1/me/player`: saves the queue and place over `update.version`; a
    /// `409 stale_version` [`ApiError`] when another device wrote since.
    pub async fn put_player(
        &self,
        access: &str,
        update: &crate::library::PlayerUpdate,
    ) -> anyhow::Result<crate::library::PlayerState> {
        self.call(
            self.http
                .put(format!("{}/v1/me/player", self.base))
                .bearer_auth(access)
                .json(update),
        )
        .await
        .context("saving the player state")
    }

    /// `GET /v1/network`. Pins the origin's key if none is pinned yet; refuses a changed one.
    pub async fn network(&self) -> anyhow::Result<NetworkInfo> {
        let network = network_of(
            &self
                .call::<Network>(self.http.get(format!("{}/v1/network", self.base)))
                .await?,
        )?;
        self.pin(network.origin.node)?;
        Ok(network)
    }

    /// Logs in; returns both tokens. Pins the origin's key (`GET /v1/network`) or checks it
    /// against the pinned one.
    pub async fn session(&self, username: &str, password: &str) -> anyhow::Result<Session> {
        // Pins the origin's key at log-in, or checks it against the pinned one, before any
        // secret is sent.
        self.network().await?;
        let login = Login {
            username: username.to_string(),
            password: password.to_string(),
        };
        let tokens = self
            .call(
                self.http
                    .post(format!("{}/v1/sessions", self.base))
                    .json(&login),
            )
            .await
            .context("logging in")?;
        Ok(session_of(tokens))
    }

    /// Renews a session with its refresh token (which rotates); checks or pins the origin's
    /// key as [`OriginApi::session`] does.
    pub async fn refresh(&self, refresh_token: &str) -> anyhow::Result<Session> {
        self.network().await?;
        let refresh = Refresh {
            refresh_token: refresh_token.to_string(),
        };
        let tokens = self
            .call(
                self.http
                    .post(format!("{}/v1/sessions/refresh", self.base))
                    .json(&refresh),
            )
            .await
            .context("renewing the session")?;
        Ok(session_of(tokens))
    }

    /// `POST /v1/tracks/{id}/play`: authorizes playing `track_id` on node `node`.
    pub async fn play(
        &self,
        access: &str,
        track_id: &str,
        node: &NodeId,
        quality: Option<&str>,
        offline: bool,
    ) -> anyhow::Result<Grant> {
        let params = PlayParams {
            quality,
            offline,
            opening_chunks: 0,
            opening_ms: 0,
        };
        self.play_with(access, track_id, node, params).await
    }

    /// [`OriginApi::play`] with every option, including the opening chunks.
    pub async fn play_with(
        &self,
        access: &str,
        track_id: &str,
        node: &NodeId,
        params: PlayParams<'_>,
    ) -> anyhow::Result<Grant> {
        let origin_key = self.origin_key().await?;
        let request = PlayRequest {
            quality: params.quality.map(str::to_string),
            offline: Some(params.offline),
            node_id: node.to_hex(),
            opening_chunks: (params.opening_chunks > 0).then_some(params.opening_chunks),
            opening_ms: (params.opening_ms > 0).then_some(params.opening_ms),
        };
        let body: PlayGrant = self
            .call(
                self.http
                    .post(format!("{}/v1/tracks/{track_id}/play", self.base))
                    .bearer_auth(access)
                    .json(&request),
            )
            .await
            .context("authorizing playback")?;
        let network = self.checked(network_of(&Network {
            origin: body.origin.clone(),
            tracker: body.tracker.clone(),
            trackers: body.trackers.clone(),
        })?)?;
        let tracker = match &body.tracker {
            Some(text) => Some(text.parse().context("the grant's tracker")?),
            None => None,
        };
        let signed: SignedManifest =
            codec::decode(&hex::decode(&body.manifest).context("the manifest is not hex")?)?;
        let manifest = signed
            .verify(&origin_key)
            .map_err(|error| anyhow::anyhow!("manifest does not verify: {error}"))?;
        let key: [u8; 32] = hex::decode(&body.content_key)
            .context("the content key is not hex")?
            .try_into()
            .map_err(|_| anyhow::anyhow!("content key is not 32 bytes"))?;
        let license = LicenseToken::from_bytes(
            &hex::decode(&body.license).context("the license is not hex")?,
        )?;
        // The opening chunks, each checked against the manifest; the first that fails ends
        // the list (the scheduler fetches the rest).
        let mut opening = Vec::new();
        for (index, text) in body
            .opening_chunks
            .iter()
            .take(OPENING_CHUNKS_MAX as usize)
            .enumerate()
        {
            use base64::Engine;
            let Ok(chunk) = base64::engine::general_purpose::STANDARD.decode(text) else {
                break;
            };
            let fits = manifest
                .chunk_id(index as u32)
                .is_some_and(|id| protocol::content::verify_chunk(id, &chunk).is_ok());
            if !fits {
                tracing::warn!(
                    index,
                    "an opening chunk failed its hash; fetching it instead"
                );
                break;
            }
            opening.push(Bytes::from(chunk));
        }
        Ok(Grant {
            opening,
            track_id: track_id.to_string(),
            manifest,
            content_key: ContentKey(key),
            license,
            origin: network.origin,
            tracker,
            trackers: network.trackers,
            gain_db: body.gain_db,
            expires_at_ms: body.expires_at,
            chunk_url_template: body.chunk_url_template,
        })
    }

    /// `GET /v1/search`: the best matches for `query` among tracks (typos allowed), as
    /// (track id, title, artist), at most `limit`.
    pub async fn search_tracks(
        &self,
        query: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<(String, String, String)>> {
        let body: SearchResults = self
            .call(self.http.get(format!("{}/v1/search", self.base)).query(&[
                ("q", query),
                ("type", "track"),
                ("limit", &limit.to_string()),
            ]))
            .await
            .context("searching the catalog")?;
        Ok(body
            .items
            .into_iter()
            .map(|hit| (hit.id, hit.name, hit.artist.unwrap_or_default()))
            .collect())
    }

    /// Logs in; returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        Ok(self.session(username, password).await?.access_token)
    }

    /// `POST /v1/nodes/token`: a super-node role token bound to `node`.
    pub async fn role_token(&self, access: &str, node: &NodeId) -> anyhow::Result<RoleToken> {
        self.origin_key().await?;
        let request = NodeTokenRequest {
            node_id: node.to_hex(),
        };
        let body: NodeToken = self
            .call(
                self.http
                    .post(format!("{}/v1/nodes/token", self.base))
                    .bearer_auth(access)
                    .json(&request),
            )
            .await
            .context("asking for a role token")?;
        let bytes = hex::decode(&body.license).context("the role token is not hex")?;
        Ok(RoleToken {
            license: LicenseToken::from_bytes(&bytes)?,
            region: body.region.parse()?,
            expires_at_ms: body.expires_at,
            network: self.checked(network_of(&Network {
                origin: body.origin,
                tracker: body.tracker,
                trackers: body.trackers,
            })?)?,
        })
    }
}
