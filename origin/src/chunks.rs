//! Content-addressed chunk files: `chunks/<first 2 hex>/<id hex>`, written durably
//! (temporary file, fsync, rename, fsync of the directory) so an acknowledged chunk survives
//! `kill -9` and a crash never leaves a partial file under a chunk's name.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use protocol::ChunkId;

/// Chunk storage on a local filesystem, with an in-memory cache of recently read chunks.
#[derive(Debug)]
pub struct ChunkFiles {
    root: PathBuf,
    temp_counter: AtomicU64,
    cache: Mutex<ChunkCache>,
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
}

impl ChunkFiles {
    /// Opens (creating if needed) the store under `root`. Leftover temporary files from a
    /// crash are removed.
    pub fn open(root: &Path) -> io::Result<Self> {
        Self::open_with_cache(root, CHUNK_CACHE_BYTES_DEFAULT)
    }

    /// [`ChunkFiles::open`] with a chunk cache of `cache_bytes` (0 disables it).
    pub fn open_with_cache(root: &Path, cache_bytes: usize) -> io::Result<Self> {
        fs::create_dir_all(root.join("tmp"))?;
        #[cfg(unix)]
        for directory in [root.to_path_buf(), root.join("tmp")] {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(directory, fs::Permissions::from_mode(0o700))?;
        }
        for entry in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        let cache = ChunkCache {
            bytes_max: cache_bytes,
            ..ChunkCache::default()
        };
        Ok(Self {
            root: root.to_path_buf(),
            temp_counter: AtomicU64::new(0),
            cache: Mutex::new(cache),
        })
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ChunkCache> {
        self.cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The chunk if it is in the memory cache: no I/O, safe to call from async code.
    pub fn cached(&self, id: &ChunkId) -> Option<Bytes> {
        self.lock_cache().get(id)
    }

    fn path(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Stores `data` under `id` after checking that it hashes to `id`. Storing a chunk that is
    /// already there is a no-op.
    pub fn put(&self, id: &ChunkId, data: &[u8]) -> io::Result<()> {
        if ChunkId::of(data) != *id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "chunk does not match its id",
            ));
        }
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

    /// The chunk stored under `id`, if any. Not verified: callers that serve it check the hash
    /// (the transport does, for every chunk it sends from here).
    pub fn get(&self, id: &ChunkId) -> io::Result<Option<Bytes>> {
        if let Some(data) = self.cached(id) {
            return Ok(Some(data));
        }
        match fs::read(self.path(id)) {
            Ok(data) => {
                let data = Bytes::from(data);
                self.lock_cache().insert(*id, data.clone());
                Ok(Some(data))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Removes the chunk stored under `id` from disk and from memory (a deleted track's
    /// chunks: revocation). Removing a chunk that is not there is a no-op.
    pub fn remove(&self, id: &ChunkId) -> io::Result<()> {
        {
            let mut cache = self.lock_cache();
            if let Some((data, _)) = cache.entries.remove(id) {
                cache.bytes -= data.len();
            }
        }
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Path of the file holding `id`, if stored (for sendfile-style serving and benchmarks).
    pub fn file_path(&self, id: &ChunkId) -> Option<PathBuf> {
        let path = self.path(id);
        path.exists().then_some(path)
    }

    /// The directory chunks live under.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_refuse_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkFiles::open(dir.path()).unwrap();
        let id = ChunkId::of(b"sealed bytes");
        store.put(&id, b"sealed bytes").unwrap();
        store.put(&id, b"sealed bytes").unwrap();
        assert_eq!(
            store.get(&id).unwrap().unwrap(),
            Bytes::from_static(b"sealed bytes")
        );
        assert!(store.put(&id, b"other bytes").is_err());
        assert!(store.get(&ChunkId::of(b"missing")).unwrap().is_none());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkFiles::open_with_cache(dir.path(), 250).unwrap();
        let chunks: Vec<Vec<u8>> = (0..10u8).map(|n| vec![n; 100]).collect();
        for chunk in &chunks {
            let id = ChunkId::of(chunk);
            store.put(&id, chunk).unwrap();
            assert_eq!(store.get(&id).unwrap().unwrap(), Bytes::from(chunk.clone()));
            assert!(store.lock_cache().bytes <= 250);
        }
        // The most recent chunk is cached; the first was evicted but still reads from disk.
        assert!(store.cached(&ChunkId::of(&chunks[9])).is_some());
        assert!(store.cached(&ChunkId::of(&chunks[0])).is_none());
        assert_eq!(
            store.get(&ChunkId::of(&chunks[0])).unwrap().unwrap().len(),
            100
        );
    }
}
