//! The chunk protocol over `chorus/4`: serving sealed chunks and manifests to licensed peers,
//! and fetching verified ranges of them.
//!
//! The serving side checks, for every request: the license token is signed by the trusted
//! origin, current, bound to the node id the connection authenticated, and covers the
//! rendition; the range lies within the rendition; each chunk still hashes to its id before
//! it is sent (a corrupt stored chunk is reported missing, never sent). The fetching side
//! checks every chunk against the manifest before handing it out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use protocol::codec;
use protocol::content::verify_chunk;
use protocol::wire::{
    self, ChunkRangeRequest, ErrorCode, ManifestRequest, Priority, RANGE_CHUNKS_MAX, Request,
    Response, WireError,
};
use protocol::{
    ChunkId, LicenseClaims, LicenseScope, LicenseToken, Manifest, NodeId, Region, RenditionId,
    SignedManifest, UnixMillis,
};

use crate::upload::UploadGate;
use crate::{Peer, Responder, Service, TransportError};

/// Where a server's sealed chunks and manifests come from (a disk store, a cache, memory).
pub trait ChunkSource: Send + Sync + 'static {
    /// The signed manifest of `rendition`, if held.
    fn manifest(
        &self,
        rendition: &RenditionId,
    ) -> impl Future<Output = Option<SignedManifest>> + Send;
    /// Number of chunks of `rendition`, if its manifest is held.
    fn chunk_count(&self, rendition: &RenditionId) -> impl Future<Output = Option<u32>> + Send;
    /// Chunk `index` of `rendition` with the id it must hash to, if held. Sources behind a
    /// network (object storage) or a disk answer asynchronously: the service never blocks a
    /// runtime thread on them.
    fn chunk(
        &self,
        rendition: &RenditionId,
        index: u32,
    ) -> impl Future<Output = Option<(ChunkId, Bytes)>> + Send;
    /// Chunks of `rendition` held from the first on without a gap, told to a requester
    /// whose chunk is missing (`ChunkMissing::held`). Sources that hold renditions only
    /// whole return 0: a miss there is not progress to wait for.
    fn held_prefix(&self, rendition: &RenditionId) -> impl Future<Output = u32> + Send {
        let _ = rendition;
        async { 0 }
    }
    /// True when every chunk this source returns was verified against its id when it was
    /// loaded and cannot have changed since (immutable memory). Sources backed by disk return
    /// false, and the service hashes each chunk again before sending it.
    fn verified_on_load(&self) -> bool {
        false
    }
    /// True when `rendition` may be cached by a super-node of `region` (the track's markets
    /// include it). Only sources that know the catalog (the origin) can tell; others allow.
    fn region_allows(
        &self,
        rendition: &RenditionId,
        region: &Region,
    ) -> impl Future<Output = bool> + Send {
        let _ = (rendition, region);
        async { true }
    }
}

/// Reads the wall clock. Drivers read time; the cores below them take it as an argument.
pub type Clock = Arc<dyn Fn() -> UnixMillis + Send + Sync>;

/// The system clock as a [`Clock`].
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        UnixMillis(since_epoch.as_millis() as u64)
    })
}

/// Verified tokens remembered per service, so a warm connection pays for one signature check
/// per token rather than per request. At most this many entries (~300 bytes each).
pub const LICENSE_CACHE_ENTRIES_MAX: usize = 4096;

/// Checks license tokens against a trusted issuer, remembering the ones that verified (at
/// most `capacity` of them; the cache is cleared when full) so a token used again costs a
/// hash rather than a signature check. Lifetime and binding are checked on every use.
#[derive(Debug)]
pub struct LicenseCache {
    issuer: NodeId,
    capacity: usize,
    verified: Mutex<HashMap<[u8; 32], LicenseClaims>>,
}

impl LicenseCache {
    /// A cache trusting tokens signed by `issuer`, holding at most `capacity` entries.
    pub fn new(issuer: NodeId, capacity: usize) -> Self {
        Self {
            issuer,
            capacity: capacity.max(1),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The trusted issuer.
    pub fn issuer(&self) -> &NodeId {
        &self.issuer
    }

    /// Verifies `license` as presented by `presenter` at `now`: signature, lifetime, binding.
    pub fn verify(
        &self,
        presenter: &NodeId,
        license: &LicenseToken,
        now: UnixMillis,
    ) -> Result<LicenseClaims, WireError> {
        let key = cache_key(presenter, license);
        let cached = self.lock().get(&key).cloned();
        match cached {
            Some(claims) if now < claims.expires_at => Ok(claims),
            _ => {
                let claims = license
                    .verify(&self.issuer, presenter, now)
                    .map_err(|error| WireError::from(&error))?;
                let mut cache = self.lock();
                if cache.len() >= self.capacity {
                    cache.clear();
                }
                cache.insert(key, claims.clone());
                Ok(claims)
            }
        }
    }

    /// Verifies `license` as a proof presented by `presenter` at `now`: signature and
    /// binding, current or expired ([`LicenseToken::verify_genuine`]). A token already in
    /// the cache costs a hash; a new one is checked but not remembered (proofs are sent once,
    /// and would crowd out the credentials that are used again and again).
    pub fn verify_genuine(
        &self,
        presenter: &NodeId,
        license: &LicenseToken,
        now: UnixMillis,
    ) -> Result<LicenseClaims, WireError> {
        let key = cache_key(presenter, license);
        if let Some(claims) = self.lock().get(&key).cloned() {
            return Ok(claims);
        }
        license
            .verify_genuine(&self.issuer, presenter, now)
            .map_err(|error| WireError::from(&error))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], LicenseClaims>> {
        self.verified
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Serves a [`ChunkSource`] to peers holding valid licenses issued by `issuer`.
pub struct ChunkService<S> {
    source: S,
    clock: Clock,
    licenses: LicenseCache,
    region: Option<Region>,
    upload: Option<Arc<UploadGate>>,
}

impl<S> std::fmt::Debug for ChunkService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkService")
            .field("issuer", self.licenses.issuer())
            .finish()
    }
}

impl<S: ChunkSource> ChunkService<S> {
    /// A service over `source` trusting licenses signed by `issuer` (the origin's node id).
    pub fn new(source: S, issuer: NodeId, clock: Clock) -> Self {
        Self {
            source,
            clock,
            licenses: LicenseCache::new(issuer, LICENSE_CACHE_ENTRIES_MAX),
            region: None,
            upload: None,
        }
    }

    /// Serves only tokens whose track is licensed in `region`, the serving node's own region
    /// (peers and super-nodes set it; the origin, which serves every market, does not).
    pub fn with_region(mut self, region: Region) -> Self {
        self.region = Some(region);
        self
    }

    /// Grants upload slots by priority and paces sends through `gate`.
    pub fn with_upload_gate(mut self, gate: Arc<UploadGate>) -> Self {
        self.upload = Some(gate);
        self
    }

    /// The source served.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Checks `license` for `presenter` and `rendition` at the current time.
    pub async fn authorize(
        &self,
        presenter: &NodeId,
        rendition: &RenditionId,
        license: &LicenseToken,
    ) -> Result<(), WireError> {
        self.authorized_account(presenter, rendition, license)
            .await
            .map(|_| ())
    }

    /// [`ChunkService::authorize`], returning the account the license belongs to (upload
    /// slots are shared per account: node ids cost nothing to make).
    pub async fn authorized_account(
        &self,
        presenter: &NodeId,
        rendition: &RenditionId,
        license: &LicenseToken,
    ) -> Result<protocol::AccountId, WireError> {
        let claims = self.licenses.verify(presenter, license, (self.clock)())?;
        if !claims.permits(rendition) {
            let error = protocol::LicenseError::NotCovered(*rendition);
            return Err(WireError::from(&error));
        }
        check_region(&claims, self.region.as_ref())?;
        if matches!(claims.scope, LicenseScope::SuperNode)
            && !self.source.region_allows(rendition, &claims.region).await
        {
            return Err(WireError::new(
                ErrorCode::NotInRegion,
                format!("rendition not licensed in {}", claims.region),
            ));
        }
        Ok(claims.account)
    }

    async fn serve_range(
        &self,
        peer: NodeId,
        request: ChunkRangeRequest,
        responder: &mut Responder,
    ) -> Result<(), TransportError> {
        let account = match self
            .authorized_account(&peer, &request.rendition, &request.license)
            .await
        {
            Ok(account) => account,
            Err(error) => return responder.send(&Response::Error(error)).await,
        };
        let Some(count) = self.source.chunk_count(&request.rendition).await else {
            return responder
                .send_error(ErrorCode::NotFound, "rendition not held here")
                .await;
        };
        // The codec guarantees first + count does not overflow.
        if request.first + request.count > count {
            return responder
                .send_error(ErrorCode::BadRequest, "range past the last chunk")
                .await;
        }
        let _slot = match &self.upload {
            Some(gate) => match gate.try_slot(&account, request.priority) {
                Some(slot) => Some(slot),
                None => {
                    return responder
                        .send_error(ErrorCode::Overloaded, "no upload slot free")
                        .await;
                }
            },
            None => None,
        };
        responder.set_priority(request.priority);
        let verified = self.source.verified_on_load();
        // The responder's prefix, told with a miss: looked up once per range.
        let mut prefix: Option<u32> = None;
        for index in request.first..request.first + request.count {
            match self.source.chunk(&request.rendition, index).await {
                Some((id, data)) if verified || verify_chunk(&id, &data).is_ok() => {
                    if let Some(gate) = &self.upload {
                        gate.pace(data.len()).await;
                    }
                    responder.send_chunk(index, data).await?;
                    continue;
                }
                Some(_) => {
                    tracing::warn!(rendition = %request.rendition, index, "stored chunk fails its hash; not sent");
                }
                None => {}
            }
            let held = match prefix {
                Some(prefix) => prefix,
                None => *prefix.insert(self.source.held_prefix(&request.rendition).await),
            }
            .min(index);
            responder
                .send(&Response::ChunkMissing { index, held })
                .await?;
        }
        Ok(())
    }

    async fn serve_manifest(
        &self,
        peer: NodeId,
        request: ManifestRequest,
        responder: &mut Responder,
    ) -> Result<(), TransportError> {
        if let Err(error) = self
            .authorize(&peer, &request.rendition, &request.license)
            .await
        {
            return responder.send(&Response::Error(error)).await;
        }
        match self.source.manifest(&request.rendition).await {
            Some(manifest) => responder.send(&Response::Manifest(manifest)).await,
            None => {
                responder
                    .send_error(ErrorCode::NotFound, "rendition not held here")
                    .await
            }
        }
    }
}

/// The region rules a serving node (or a tracker) applies to verified claims: the requester's
/// region, and the server's own when it has one, must be among the track's markets.
pub fn check_region(claims: &LicenseClaims, server: Option<&Region>) -> Result<(), WireError> {
    if !claims.market_includes(&claims.region) {
        return Err(WireError::new(
            ErrorCode::NotInRegion,
            format!("track not licensed in {}", claims.region),
        ));
    }
    if let Some(server) = server
        && !claims.market_includes(server)
    {
        return Err(WireError::new(
            ErrorCode::NotInRegion,
            format!("track not licensed in this node's region {server}"),
        ));
    }
    Ok(())
}

fn cache_key(presenter: &NodeId, license: &LicenseToken) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(presenter.as_bytes());
    hasher.update(&license.signature);
    hasher.update(&license.claims);
    *hasher.finalize().as_bytes()
}

impl<S: ChunkSource> Service for ChunkService<S> {
    async fn handle(
        &self,
        peer: NodeId,
        request: Request,
        responder: &mut Responder,
    ) -> Result<(), TransportError> {
        match request {
            Request::ChunkRange(range) => self.serve_range(peer, range, responder).await,
            Request::Manifest(manifest) => self.serve_manifest(peer, manifest, responder).await,
            Request::Ping { nonce } => responder.send(&Response::Pong { nonce }).await,
            Request::Announce(_)
            | Request::PeerQuery(_)
            | Request::Popular(_)
            | Request::Report(_)
            | Request::Refresh(_) => {
                responder
                    .send_error(ErrorCode::BadRequest, "this node is not a tracker")
                    .await
            }
        }
    }
}

/// One answer in a fetched range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeItem {
    /// A chunk that matched the manifest.
    Chunk {
        /// Its index.
        index: u32,
        /// Its ciphertext.
        data: Bytes,
    },
    /// The peer does not hold this chunk.
    Missing {
        /// Its index.
        index: u32,
        /// Chunks the peer says it holds from the first on (its progress when it is still
        /// downloading the rendition; 0 when it holds no prefix).
        held: u32,
    },
}

/// Fetches chunks `first .. first + count` of `manifest`'s rendition from `peer`, verifying
/// each against the manifest. Fails on the first chunk that does not match, on answers out of
/// order, and on remote errors.
pub async fn fetch_range(
    peer: &Peer,
    manifest: &Manifest,
    first: u32,
    count: u32,
    priority: Priority,
    license: &LicenseToken,
) -> Result<Vec<RangeItem>, TransportError> {
    let received = AtomicU64::new(0);
    fetch_range_counted(peer, manifest, first, count, priority, license, &received).await
}

/// [`fetch_range`], adding the size of each chunk to `received` as it arrives: what a
/// caller that abandons the range mid-way (a skip, a cancelled request) received for
/// nothing, since the chunks are handed over only with the whole range.
pub async fn fetch_range_counted(
    peer: &Peer,
    manifest: &Manifest,
    first: u32,
    count: u32,
    priority: Priority,
    license: &LicenseToken,
    received: &AtomicU64,
) -> Result<Vec<RangeItem>, TransportError> {
    if count == 0
        || count > RANGE_CHUNKS_MAX
        || first.saturating_add(count) > manifest.chunk_count()
    {
        return Err(TransportError::Protocol("range outside the rendition"));
    }
    let request = Request::ChunkRange(ChunkRangeRequest {
        rendition: manifest.id(),
        first,
        count,
        priority,
        license: license.clone(),
    });
    enum Answer {
        Chunk { index: u32, data: Bytes },
        Other(Response),
    }
    use Answer::{Chunk, Other};
    let mut stream = peer.request(&request).await?;
    let mut items = Vec::with_capacity(count as usize);
    // Exactly `count` answers complete the range; nothing after them is read.
    for expected in first..first + count {
        let body = stream
            .next_frame()
            .await?
            .ok_or(TransportError::Protocol("range ended early"))?;
        // Chunk frames are sliced without a copy; anything else goes through the codec.
        let response = match wire::split_chunk_frame(&body) {
            Some((index, offset)) => Chunk {
                index,
                data: body.slice(offset..),
            },
            None => Other(codec::decode::<Response>(&body)?),
        };
        match response {
            Chunk { index, data } if index == expected => {
                let id = manifest
                    .chunk_id(index)
                    .ok_or(TransportError::Protocol("chunk index"))?;
                verify_chunk(id, &data)?;
                received.fetch_add(data.len() as u64, Ordering::Relaxed);
                items.push(RangeItem::Chunk { index, data });
            }
            Other(Response::ChunkMissing { index, held }) if index == expected => {
                items.push(RangeItem::Missing { index, held });
            }
            Other(Response::Error(error)) => return Err(TransportError::Remote(error)),
            _ => return Err(TransportError::Protocol("unexpected answer in a range")),
        }
    }
    Ok(items)
}

/// Fetches and verifies the manifest of `rendition` from `peer`.
pub async fn fetch_manifest(
    peer: &Peer,
    origin: &NodeId,
    rendition: &RenditionId,
    license: &LicenseToken,
) -> Result<Manifest, TransportError> {
    let request = Request::Manifest(ManifestRequest {
        rendition: *rendition,
        license: license.clone(),
    });
    match peer.request_one(&request).await? {
        Response::Manifest(signed) => signed
            .verify_for(origin, rendition)
            .map_err(|_| TransportError::Protocol("manifest does not verify")),
        _ => Err(TransportError::Protocol("expected a manifest")),
    }
}

/// A [`ChunkSource`] held in memory: for benchmarks, tests and small caches.
#[derive(Debug, Default)]
pub struct MemoryChunkSource {
    renditions: RwLock<HashMap<RenditionId, StoredRendition>>,
}

#[derive(Debug)]
struct StoredRendition {
    manifest: SignedManifest,
    ids: Vec<ChunkId>,
    chunks: Vec<Option<Bytes>>,
}

impl MemoryChunkSource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a rendition; `chunks[i]` is chunk *i*'s ciphertext or `None` if not held.
    /// Chunks that do not match the manifest are refused.
    pub fn insert(
        &self,
        manifest: &Manifest,
        chunks: Vec<Option<Bytes>>,
    ) -> Result<(), TransportError> {
        if chunks.len() != manifest.chunk_count() as usize {
            return Err(TransportError::Protocol(
                "chunk list does not match the manifest",
            ));
        }
        for (id, chunk) in manifest.body().chunks.iter().zip(&chunks) {
            if let Some(data) = chunk {
                verify_chunk(id, data)?;
            }
        }
        let stored = StoredRendition {
            manifest: manifest.signed().clone(),
            ids: manifest.body().chunks.clone(),
            chunks,
        };
        self.renditions
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(manifest.id(), stored);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<RenditionId, StoredRendition>> {
        self.renditions
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl ChunkSource for MemoryChunkSource {
    async fn manifest(&self, rendition: &RenditionId) -> Option<SignedManifest> {
        self.read()
            .get(rendition)
            .map(|stored| stored.manifest.clone())
    }

    async fn chunk_count(&self, rendition: &RenditionId) -> Option<u32> {
        self.read()
            .get(rendition)
            .map(|stored| stored.ids.len() as u32)
    }

    async fn chunk(&self, rendition: &RenditionId, index: u32) -> Option<(ChunkId, Bytes)> {
        let renditions = self.read();
        let stored = renditions.get(rendition)?;
        let data = stored.chunks.get(index as usize)?.clone()?;
        Some((stored.ids[index as usize], data))
    }

    /// `insert` verified every chunk, and `Bytes` are immutable.
    fn verified_on_load(&self) -> bool {
        true
    }
}

impl<T: ChunkSource> ChunkSource for Arc<T> {
    async fn manifest(&self, rendition: &RenditionId) -> Option<SignedManifest> {
        (**self).manifest(rendition).await
    }
    async fn chunk_count(&self, rendition: &RenditionId) -> Option<u32> {
        (**self).chunk_count(rendition).await
    }
    async fn chunk(&self, rendition: &RenditionId, index: u32) -> Option<(ChunkId, Bytes)> {
        (**self).chunk(rendition, index).await
    }
    async fn held_prefix(&self, rendition: &RenditionId) -> u32 {
        (**self).held_prefix(rendition).await
    }
    fn verified_on_load(&self) -> bool {
        (**self).verified_on_load()
    }
    async fn region_allows(&self, rendition: &RenditionId, region: &Region) -> bool {
        (**self).region_allows(rendition, region).await
    }
}
