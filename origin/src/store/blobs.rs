//! Blob storage for sealed chunks: the [`BlobStore`] seam, its two backends ([`FileBlobs`],
//! local files, the default; [`S3Blobs`](super::s3::S3Blobs), any S3-compatible object store)
//! and [`ChunkBlobs`], the hot-chunk memory cache layered over whichever backend is in use.
//!
//! Blobs are content-addressed by their [`ChunkId`] (the BLAKE3 hash of the sealed bytes), so
//! a stored blob never changes: the cache can never be stale, a repeated upload is a no-op,
//! and [`ChunkBlobs::put`] refuses bytes that do not hash to their id.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use protocol::ChunkId;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The bytes do not hash to the id they were stored under.
    #[error("chunk does not match its id")]
    Mismatch,
    /// The object store could not be reached or refused the request for now (outage,
    /// throttling, timeout): the operation may succeed later.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// A local file operation failed.
    #[error("chunk files: {0}")]
    Io(#[from] io::Error),
    /// The object store answered with an error that is not transient (credentials, bucket).
    #[error("object store: {0}")]
    Backend(String),
}

/// Where sealed chunks rest. Implementations are durable on return from [`BlobStore::put`]
/// and idempotent (a blob is immutable: storing it twice stores it once).
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `data` under `id`. The caller has checked that `data` hashes to `id`.
    async fn put(&self, id: &ChunkId, data: Bytes) -> Result<(), BlobError>;
    /// The blob stored under `id`, if any. Not verified here: callers that serve it check the
    /// hash (the transport does, for every chunk it sends).
    async fn get(&self, id: &ChunkId) -> Result<Option<Bytes>, BlobError>;
    /// Removes the blob under `id`; removing one that is not there is a no-op.
    async fn remove(&self, id: &ChunkId) -> Result<(), BlobError>;
    /// Whether a blob is stored under `id`.
    async fn contains(&self, id: &ChunkId) -> Result<bool, BlobError>;
    /// Where the blobs live, for logs and `chorus admin` output (never a secret).
    fn describe(&self) -> String;
}

/// Default bytes of chunks kept in memory.
pub const CHUNK_CACHE_BYTES_DEFAULT: usize = 64 * 1024 * 1024;

/// A CLOCK (second-chance) cache of chunk bytes, bounded by total bytes. Chunks are
/// immutable and content-addressed, so a cached chunk can never be stale.
#[derive(Debug, Default)]
struct ChunkCache {
    entries: HashMap<ChunkId, (Bytes, bool)>,
    clock: VecDeque<ChunkId>,
    bytes: usize,
    bytes_max: usize,
}

impl ChunkCache {
    fn get(&mut self, id: &ChunkId) -> Option<Bytes> {
        let (data, referenced) = self.entries.get_mut(id)?;
        *referenced = true;
        Some(data.clone())
    }

    fn insert(&mut self, id: ChunkId, data: Bytes) {
        if data.len() > self.bytes_max || self.entries.contains_key(&id) {
            return;
        }
        while self.bytes + data.len() > self.bytes_max {
            let Some(victim) = self.clock.pop_front() else {
                break;
            };
            match self.entries.get_mut(&victim) {
                Some((_, referenced)) if *referenced => {
                    *referenced = false;
                    self.clock.push_back(victim);
                }
                Some(_) => {
                    if let Some((evicted, _)) = self.entries.remove(&victim) {
                        self.bytes -= evicted.len();
                    }
                }
                None => {}
            }
        }
        self.bytes += data.len();
        self.entries.insert(id, (data, false));
        self.clock.push_back(id);
    }

    fn remove(&mut self, id: &ChunkId) {
        if let Some((data, _)) = self.entries.remove(id) {
            self.bytes -= data.len();
        }
    }
}

/// The chunk store the origin uses: any [`BlobStore`] with a memory cache of recently read
/// chunks in front of it, and the content-address check on every write.
#[derive(Debug, Clone)]
pub struct ChunkBlobs {
    inner: Arc<dyn BlobStore>,
    cache: Arc<Mutex<ChunkCache>>,
}

impl ChunkBlobs {
    /// `inner` behind a cache of `cache_bytes` (0 disables it).
    pub fn new(inner: Arc<dyn BlobStore>, cache_bytes: usize) -> Self {
        let cache = ChunkCache {
            bytes_max: cache_bytes,
            ..ChunkCache::default()
        };
        Self {
            inner,
            cache: Arc::new(Mutex::new(cache)),
        }
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ChunkCache> {
        self.cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The chunk if it is in the memory cache: no I/O.
    pub fn cached(&self, id: &ChunkId) -> Option<Bytes> {
        self.lock_cache().get(id)
    }

    /// Stores `data` under `id` after checking that it hashes to `id`. Durable on return.
    pub async fn put(&self, id: &ChunkId, data: Bytes) -> Result<(), BlobError> {
        if ChunkId::of(&data) != *id {
            return Err(BlobError::Mismatch);
        }
        self.inner.put(id, data).await
    }

    /// The chunk stored under `id`, from memory or the backend (and then cached).
    pub async fn get(&self, id: &ChunkId) -> Result<Option<Bytes>, BlobError> {
        if let Some(data) = self.cached(id) {
            return Ok(Some(data));
        }
        let data = self.inner.get(id).await?;
        if let Some(data) = &data {
            self.lock_cache().insert(*id, data.clone());
        }
        Ok(data)
    }

    /// Removes the chunk from the backend and from memory (a deleted track's chunks).
    pub async fn remove(&self, id: &ChunkId) -> Result<(), BlobError> {
        self.lock_cache().remove(id);
        self.inner.remove(id).await
    }

    /// Whether the backend holds `id` (the cache is not asked: this checks durability).
    pub async fn contains(&self, id: &ChunkId) -> Result<bool, BlobError> {
        self.inner.contains(id).await
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn BlobStore> {
        &self.inner
    }

    /// Bytes held in the memory cache.
    pub fn cached_bytes(&self) -> usize {
        self.lock_cache().bytes
    }
}

/// Content-addressed chunk files: `chunks/<first 2 hex>/<id hex>`, written durably
/// (temporary file, fsync, rename, fsync of the directory) so an acknowledged chunk survives
/// `kill -9` and a crash never leaves a partial file under a chunk's name.
#[derive(Debug, Clone)]
pub struct FileBlobs {
    root: Arc<Path>,
    temp_counter: Arc<AtomicU64>,
}

impl FileBlobs {
    /// Opens (creating if needed) the files under `root`. Leftover temporary files from a
    /// crash are removed.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("tmp"))?;
        #[cfg(unix)]
        for directory in [root.to_path_buf(), root.join("tmp")] {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(directory, fs::Permissions::from_mode(0o700))?;
        }
        for entry in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(Self {
            root: root.into(),
            temp_counter: Arc::new(AtomicU64::new(0)),
        })
    }

    fn path(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Stores `data` under `id`, blocking (see [`BlobStore::put`]).
    pub fn put_blocking(&self, id: &ChunkId, data: &[u8]) -> io::Result<()> {
        let path = self.path(id);
        if path.exists() {
            return Ok(());
        }
        let directory = path.parent().expect("chunk paths have a parent");
        if !directory.exists() {
            fs::create_dir_all(directory)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(directory, fs::Permissions::from_mode(0o700))?;
            }
        }
        let temp = self.root.join("tmp").join(format!(
            "{}.{}.{}",
            id.to_hex(),
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &path)?;
        File::open(directory)?.sync_all()?;
        Ok(())
    }

    /// The blob under `id`, blocking.
    pub fn get_blocking(&self, id: &ChunkId) -> io::Result<Option<Bytes>> {
        match fs::read(self.path(id)) {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Path of the file holding `id`, if stored (tests that damage a chunk on disk).
    pub fn file_path(&self, id: &ChunkId) -> Option<PathBuf> {
        let path = self.path(id);
        path.exists().then_some(path)
    }
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| BlobError::Io(io::Error::other(join.to_string())))?
        .map_err(BlobError::Io)
}

#[async_trait]
impl BlobStore for FileBlobs {
    async fn put(&self, id: &ChunkId, data: Bytes) -> Result<(), BlobError> {
        let (files, id) = (self.clone(), *id);
        blocking(move || files.put_blocking(&id, &data)).await
    }

    async fn get(&self, id: &ChunkId) -> Result<Option<Bytes>, BlobError> {
        let (files, id) = (self.clone(), *id);
        blocking(move || files.get_blocking(&id)).await
    }

    async fn remove(&self, id: &ChunkId) -> Result<(), BlobError> {
        let path = self.path(id);
        blocking(move || match fs::remove_file(path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        })
        .await
    }

    async fn contains(&self, id: &ChunkId) -> Result<bool, BlobError> {
        let path = self.path(id);
        blocking(move || path.try_exists()).await
    }

    fn describe(&self) -> String {
        format!("files in {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, cache_bytes: usize) -> ChunkBlobs {
        let files = FileBlobs::open(dir).unwrap();
        ChunkBlobs::new(Arc::new(files), cache_bytes)
    }

    #[tokio::test]
    async fn put_get_and_refuse_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path(), CHUNK_CACHE_BYTES_DEFAULT);
        let id = ChunkId::of(b"sealed bytes");
        let data = Bytes::from_static(b"sealed bytes");
        store.put(&id, data.clone()).await.unwrap();
        store.put(&id, data.clone()).await.unwrap();
        assert_eq!(store.get(&id).await.unwrap().unwrap(), data);
        assert!(matches!(
            store.put(&id, Bytes::from_static(b"other bytes")).await,
            Err(BlobError::Mismatch)
        ));
        assert!(store.get(&ChunkId::of(b"missing")).await.unwrap().is_none());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        store.remove(&id).await.unwrap();
        store.remove(&id).await.unwrap();
        assert!(!store.contains(&id).await.unwrap());
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = files(dir.path(), 250);
        let chunks: Vec<Bytes> = (0..10u8).map(|n| Bytes::from(vec![n; 100])).collect();
        for chunk in &chunks {
            let id = ChunkId::of(chunk);
            store.put(&id, chunk.clone()).await.unwrap();
            assert_eq!(store.get(&id).await.unwrap().unwrap(), chunk.clone());
            assert!(store.cached_bytes() <= 250);
        }
        // The most recent chunk is cached; the first was evicted but still reads from disk.
        assert!(store.cached(&ChunkId::of(&chunks[9])).is_some());
        assert!(store.cached(&ChunkId::of(&chunks[0])).is_none());
        assert_eq!(
            store
                .get(&ChunkId::of(&chunks[0]))
                .await
                .unwrap()
                .unwrap()
                .len(),
            100
        );
    }
}
