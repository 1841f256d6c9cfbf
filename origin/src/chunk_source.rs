//! The published renditions' manifests as the chunk paths see them (QUIC and HTTP).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protocol::{ChunkId, RenditionId, SignedManifest, codec};
use transport::chunks::ChunkSource;

use crate::metrics::Metrics;
use crate::store::Store;

/// A decoded manifest, its chunk ids and its track's markets (empty: everywhere), shared
/// between requests.
type CachedManifest = Arc<(SignedManifest, Vec<ChunkId>, Vec<String>, String)>;

/// Serves stored renditions on the QUIC chunk protocol. Manifests are decoded once and kept
/// (at most [`MANIFEST_CACHE_MAX`] of them, ~1 MiB each at worst, 32 KiB typically).
#[derive(Debug)]
pub struct StoreChunkSource {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    manifests: Mutex<HashMap<RenditionId, CachedManifest>>,
}

/// Decoded manifests kept by [`StoreChunkSource`].
pub const MANIFEST_CACHE_MAX: usize = 1024;

impl StoreChunkSource {
    /// A source over `store`.
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            manifests: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, rendition: &RenditionId) -> Option<CachedManifest> {
        self.manifests
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(rendition)
            .cloned()
    }

    async fn entry(&self, rendition: &RenditionId) -> Option<CachedManifest> {
        if let Some(entry) = self.cached(rendition) {
            return Some(entry);
        }
        let record = self.store.rendition(&rendition.to_hex()).await.ok()??;
        let signed: SignedManifest = codec::decode(&hex::decode(record.manifest).ok()?).ok()?;
        let body: protocol::ManifestBody = codec::decode(&signed.body).ok()?;
        let markets = self
            .store
            .catalog()
            .track(&record.track)
            .await
            .ok()??
            .markets;
        let entry = Arc::new((signed, body.chunks, markets, record.track));
        let mut cache = self
            .manifests
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if cache.len() >= MANIFEST_CACHE_MAX {
            cache.clear();
        }
        cache.insert(*rendition, entry.clone());
        Some(entry)
    }

    /// Whether `chunk` belongs to `rendition`: `None` when the rendition is not published
    /// (never was, or deleted).
    pub async fn holds(&self, rendition: &RenditionId, chunk: &ChunkId) -> Option<bool> {
        self.entry(rendition)
            .await
            .map(|entry| entry.1.contains(chunk))
    }

    /// Forgets a rendition (after a delete).
    pub fn forget(&self, rendition: &RenditionId) {
        self.manifests
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(rendition);
    }

    /// Forgets every rendition of track `id` (another origin deleted or replaced it).
    pub fn forget_track(&self, id: &str) {
        self.manifests
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|_, entry| entry.3 != id);
    }
}

impl ChunkSource for StoreChunkSource {
    async fn manifest(&self, rendition: &RenditionId) -> Option<SignedManifest> {
        self.entry(rendition).await.map(|entry| entry.0.clone())
    }

    async fn chunk_count(&self, rendition: &RenditionId) -> Option<u32> {
        self.entry(rendition)
            .await
            .map(|entry| entry.1.len() as u32)
    }

    async fn chunk(&self, rendition: &RenditionId, index: u32) -> Option<(ChunkId, Bytes)> {
        let entry = self.entry(rendition).await?;
        let id = *entry.1.get(index as usize)?;
        let data = match self.store.blobs().get(&id).await {
            Ok(data) => data?,
            Err(error) => {
                tracing::warn!(%error, chunk = %id, "a chunk could not be read");
                return None;
            }
        };
        self.metrics
            .chunk_bytes_quic
            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Some((id, data))
    }

    async fn region_allows(&self, rendition: &RenditionId, region: &protocol::Region) -> bool {
        self.entry(rendition).await.is_some_and(|entry| {
            entry.2.is_empty() || entry.2.iter().any(|market| market == region.as_str())
        })
    }
}
