//! The super-node's disk cache: whole renditions of ciphertext chunks and their signed
//! manifests, within a byte budget enforced by [`CachePolicy`].
//!
//! Layout under the cache directory:
//! - `renditions/<rendition id hex>/manifest` — the signed manifest, as received;
//! - `renditions/<rendition id hex>/<index>` — chunk ciphertext, one file per chunk;
//! - `incoming/<rendition id hex>/` — a rendition being fetched. It is renamed into
//!   `renditions/` only once every chunk has been verified and written (and synced), so a
//!   crash leaves either a complete rendition or an `incoming/` directory that the next start
//!   deletes.
//!
//! On start, every rendition's manifest is checked against the origin's key and its chunk
//! files counted; incomplete or foreign ones are deleted. Chunks are hashed again before they
//! are served (the service does it: [`ChunkSource::verified_on_load`] is false), so a chunk
//! that rots on disk is never sent. The store never holds a content key.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use protocol::{ChunkId, Manifest, NodeId, Region, RenditionId, SignedManifest, codec};
use transport::chunks::ChunkSource;

use crate::cache::{AdmitError, CachePolicy};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Disk I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The policy refused the rendition.
    #[error(transparent)]
    Admit(#[from] AdmitError),
    /// A chunk handed in does not belong to the manifest or does not match its hash.
    #[error("chunk {index} does not match the manifest")]
    BadChunk {
        /// The chunk index.
        index: u32,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug)]
struct Held {
    signed: SignedManifest,
    chunks: Vec<ChunkId>,
}

/// The disk cache. Thread-safe; shared by the serving side and the fetcher.
pub struct DiskCache {
    dir: PathBuf,
    origin: NodeId,
    held: RwLock<HashMap<RenditionId, Arc<Held>>>,
    policy: Mutex<CachePolicy>,
    clock: transport::chunks::Clock,
    region: RwLock<Option<Region>>,
    /// Told of each request for a rendition not held (the super-node's fill policy).
    on_miss: OnceLock<MissHook>,
}

/// What [`DiskCache::on_miss`] calls.
pub type MissHook = Box<dyn Fn(&RenditionId) + Send + Sync>;

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache").field("dir", &self.dir).finish()
    }
}

fn body_bytes(body: &protocol::ManifestBody) -> u64 {
    body.plaintext_bytes + body.chunks.len() as u64 * protocol::content::TAG_BYTES as u64
}

impl DiskCache {
    /// Opens (or creates) the cache in `dir` with a budget of `capacity_bytes`, trusting
    /// manifests signed by `origin`. Loads what a previous run left, oldest first.
    pub fn open(
        dir: &Path,
        capacity_bytes: u64,
        pin_fraction: f64,
        origin: NodeId,
        clock: transport::chunks::Clock,
    ) -> Result<Self, StoreError> {
        let renditions = dir.join("renditions");
        let incoming = dir.join("incoming");
        if incoming.exists() {
            std::fs::remove_dir_all(&incoming).map_err(io(&incoming))?;
        }
        std::fs::create_dir_all(&renditions).map_err(io(&renditions))?;
        std::fs::create_dir_all(&incoming).map_err(io(&incoming))?;
        let cache = Self {
            dir: dir.to_path_buf(),
            origin,
            held: RwLock::new(HashMap::new()),
            policy: Mutex::new(CachePolicy::new(capacity_bytes, pin_fraction)),
            clock,
            region: RwLock::new(None),
            on_miss: OnceLock::new(),
        };
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&renditions).map_err(io(&renditions))? {
            let entry = entry.map_err(io(&renditions))?;
            let path = entry.path();
            let modified = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            match cache.load(&path) {
                Some((id, held)) => found.push((modified, id, held)),
                None => {
                    tracing::warn!(path = %path.display(), "dropping an unusable cached rendition");
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
        found.sort_by_key(|(modified, _, _)| *modified);
        let now = (cache.clock)().0;
        for (_, id, held) in found {
            let bytes = cache_bytes(&held);
            let admitted = cache.lock_policy().admit(id, bytes, false, now);
            match admitted {
                Ok(evicted) => {
                    for victim in evicted {
                        cache.delete(&victim);
                    }
                    cache.write_held().insert(id, Arc::new(held));
                }
                Err(_) => {
                    let _ = std::fs::remove_dir_all(cache.rendition_dir(&id));
                }
            }
        }
        Ok(cache)
    }

    fn load(&self, path: &Path) -> Option<(RenditionId, Held)> {
        let id: RenditionId = path.file_name()?.to_str()?.parse().ok()?;
        let bytes = std::fs::read(path.join("manifest")).ok()?;
        let signed: SignedManifest = codec::decode(&bytes).ok()?;
        let manifest = signed.verify_for(&self.origin, &id).ok()?;
        let count = manifest.chunk_count();
        for index in 0..count {
            if !path.join(index.to_string()).is_file() {
                return None;
            }
        }
        Some((
            id,
            Held {
                signed,
                chunks: manifest.body().chunks.clone(),
            },
        ))
    }

    fn lock_policy(&self) -> std::sync::MutexGuard<'_, CachePolicy> {
        self.policy
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write_held(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<RenditionId, Arc<Held>>> {
        self.held
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn read_held(&self) -> std::sync::RwLockReadGuard<'_, HashMap<RenditionId, Arc<Held>>> {
        self.held
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn rendition_dir(&self, id: &RenditionId) -> PathBuf {
        self.dir.join("renditions").join(id.to_hex())
    }

    /// Sets the region this node serves (from its role token).
    pub fn set_region(&self, region: Region) {
        *self
            .region
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(region);
    }

    /// Calls `hook` for every request for a rendition this cache does not hold (set once;
    /// later calls are ignored).
    pub fn on_miss(&self, hook: MissHook) {
        let _ = self.on_miss.set(hook);
    }

    fn record_miss(&self, rendition: &RenditionId) {
        if let Some(hook) = self.on_miss.get() {
            hook(rendition);
        }
    }

    /// Runs `f` on the policy (pinning decisions, stats).
    pub fn with_policy<T>(&self, f: impl FnOnce(&mut CachePolicy) -> T) -> T {
        f(&mut self.lock_policy())
    }

    /// True when `rendition` is held in full.
    pub fn holds(&self, rendition: &RenditionId) -> bool {
        self.read_held().contains_key(rendition)
    }

    /// Renditions held, in announce order (pinned first, then most recently used).
    pub fn held(&self) -> Vec<RenditionId> {
        self.lock_policy().held()
    }

    /// Bytes held, and the budget.
    pub fn usage(&self) -> (u64, u64) {
        let policy = self.lock_policy();
        (policy.used_bytes(), policy.capacity_bytes())
    }

    /// Stores a complete, verified rendition: `chunks[i]` must hash to the manifest's id `i`.
    /// Writes it under `incoming/`, syncs, renames it into place, then admits it to the
    /// policy (deleting what the policy evicts). `pin` asks for the popular segment.
    pub fn insert(
        &self,
        signed: &SignedManifest,
        manifest: &Manifest,
        chunks: &[Bytes],
        pin: bool,
    ) -> Result<Vec<RenditionId>, StoreError> {
        let id = manifest.id();
        if self.holds(&id) {
            return Ok(Vec::new());
        }
        let bytes: u64 = chunks.iter().map(|chunk| chunk.len() as u64).sum();
        if chunks.len() != manifest.body().chunks.len() {
            return Err(StoreError::BadChunk {
                index: chunks.len() as u32,
            });
        }
        for (index, (chunk, expected)) in chunks.iter().zip(&manifest.body().chunks).enumerate() {
            if protocol::content::verify_chunk(expected, chunk).is_err() {
                return Err(StoreError::BadChunk {
                    index: index as u32,
                });
            }
        }
        let now = (self.clock)().0;
        // Make room first, so the disk never holds more than the budget plus one rendition.
        let evicted = self.lock_policy().admit(id, bytes, pin, now)?;
        for victim in &evicted {
            self.delete(victim);
        }
        if let Err(error) = self.write_rendition(&id, signed, chunks) {
            self.lock_policy().remove(&id);
            return Err(error);
        }
        self.write_held().insert(
            id,
            Arc::new(Held {
                signed: signed.clone(),
                chunks: manifest.body().chunks.clone(),
            }),
        );
        Ok(evicted)
    }

    fn write_rendition(
        &self,
        id: &RenditionId,
        signed: &SignedManifest,
        chunks: &[Bytes],
    ) -> Result<(), StoreError> {
        let temp = self.dir.join("incoming").join(id.to_hex());
        if temp.exists() {
            std::fs::remove_dir_all(&temp).map_err(io(&temp))?;
        }
        std::fs::create_dir_all(&temp).map_err(io(&temp))?;
        let write = |name: &str, data: &[u8]| -> Result<(), StoreError> {
            let path = temp.join(name);
            let mut file = std::fs::File::create(&path).map_err(io(&path))?;
            file.write_all(data).map_err(io(&path))?;
            file.sync_data().map_err(io(&path))
        };
        write(
            "manifest",
            &codec::encode(signed).map_err(|_| StoreError::BadChunk { index: 0 })?,
        )?;
        for (index, chunk) in chunks.iter().enumerate() {
            write(&index.to_string(), chunk)?;
        }
        let target = self.rendition_dir(id);
        std::fs::rename(&temp, &target).map_err(io(&target))?;
        Ok(())
    }

    fn delete(&self, id: &RenditionId) {
        self.write_held().remove(id);
        let path = self.rendition_dir(id);
        if let Err(error) = std::fs::remove_dir_all(&path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "could not delete an evicted rendition");
        }
    }

    /// Deletes `rendition` (damaged on disk, or withdrawn).
    pub fn remove(&self, rendition: &RenditionId) {
        self.lock_policy().remove(rendition);
        self.delete(rendition);
    }
}

fn cache_bytes(held: &Held) -> u64 {
    // Sizes are known from the manifest without reading every file.
    codec::decode::<protocol::ManifestBody>(&held.signed.body)
        .map(|body| body_bytes(&body))
        .unwrap_or(0)
}

impl ChunkSource for DiskCache {
    async fn manifest(&self, rendition: &RenditionId) -> Option<SignedManifest> {
        self.read_held()
            .get(rendition)
            .map(|held| held.signed.clone())
    }

    async fn chunk_count(&self, rendition: &RenditionId) -> Option<u32> {
        let count = self
            .read_held()
            .get(rendition)
            .map(|held| held.chunks.len() as u32);
        if count.is_none() {
            self.record_miss(rendition);
        }
        count
    }

    async fn chunk(&self, rendition: &RenditionId, index: u32) -> Option<(ChunkId, Bytes)> {
        let id = *self
            .read_held()
            .get(rendition)?
            .chunks
            .get(index as usize)?;
        let path = self.rendition_dir(rendition).join(index.to_string());
        let data = std::fs::read(&path).ok()?;
        if index == 0 {
            self.lock_policy().touch(rendition, (self.clock)().0);
        }
        Some((id, Bytes::from(data)))
    }

    async fn region_allows(&self, rendition: &RenditionId, region: &Region) -> bool {
        // Another super-node may copy what this one holds only within this node's region:
        // the origin let this node cache it here, so it is licensed here; elsewhere this node
        // cannot tell, and the other node must ask the origin.
        let own = *self
            .region
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        own == Some(*region) && self.holds(rendition)
    }
}
