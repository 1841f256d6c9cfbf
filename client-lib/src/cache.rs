//! The listener's local cache: chunk ciphertext on disk, content-addressed, within a size cap,
//! least recently used evicted first; and the signed manifests of cached renditions, so cached
//! chunks can be played and served to peers.
//!
//! Layout: `chunks/<chunk id hex>`, `manifests/<rendition id hex>` and
//! `licenses/<rendition id hex>` (the token each rendition was fetched under, which proves to a
//! tracker that this client may announce it). A chunk file is written
//! to a temporary name and renamed, so a crash never leaves half a chunk under its id; every
//! read hashes the file against its id, and a file that no longer matches (disk rot, a stray
//! write) is deleted and reported missing, so it is fetched again. The index is rebuilt from
//! the directory at open, oldest file first.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use protocol::{ChunkId, NodeId, RenditionId, SignedManifest, codec};

/// Smallest default cap, whatever the free space.
pub const CACHE_BYTES_DEFAULT_MIN: u64 = 256 << 20;
/// Largest default cap, whatever the free space.
pub const CACHE_BYTES_DEFAULT_MAX: u64 = 10 << 30;
/// Most manifests kept (each ≤ ~1 MiB, typically ~10 KiB).
pub const MANIFESTS_MAX: usize = 10_000;

/// The default cap for a cache in `dir`: 10% of the free space there, within
/// [`CACHE_BYTES_DEFAULT_MIN`, `CACHE_BYTES_DEFAULT_MAX`].
pub fn default_cap(dir: &Path) -> u64 {
    let probe = dir
        .ancestors()
        .find(|path| path.exists())
        .unwrap_or(Path::new("."));
    fs2::available_space(probe)
        .map(|free| free / 10)
        .unwrap_or(CACHE_BYTES_DEFAULT_MIN)
        .clamp(CACHE_BYTES_DEFAULT_MIN, CACHE_BYTES_DEFAULT_MAX)
}

#[derive(Debug, Default)]
struct Index {
    /// Chunk → (bytes, last use tick).
    chunks: HashMap<ChunkId, (u64, u64)>,
    lru: BTreeSet<(u64, ChunkId)>,
    used: u64,
    tick: u64,
}

impl Index {
    fn touch(&mut self, id: &ChunkId) {
        self.tick += 1;
        let tick = self.tick;
        if let Some((_, last)) = self.chunks.get_mut(id) {
            self.lru.remove(&(*last, *id));
            *last = tick;
            self.lru.insert((tick, *id));
        }
    }

    fn remove(&mut self, id: &ChunkId) {
        if let Some((bytes, last)) = self.chunks.remove(id) {
            self.lru.remove(&(last, *id));
            self.used -= bytes;
        }
    }
}

/// Decoded manifests kept in memory for serving peers.
const MANIFESTS_IN_MEMORY: usize = 64;

type Decoded = std::sync::Arc<(SignedManifest, Vec<ChunkId>)>;

/// The disk cache. Thread-safe.
#[derive(Debug)]
pub struct ClientCache {
    dir: PathBuf,
    cap: u64,
    index: Mutex<Index>,
    decoded: Mutex<HashMap<RenditionId, Decoded>>,
}

fn io_context(path: &Path, error: std::io::Error) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

impl ClientCache {
    /// Opens (or creates) the cache in `dir` with a cap of `cap` bytes.
    pub fn open(dir: &Path, cap: u64) -> std::io::Result<Self> {
        let chunks = dir.join("chunks");
        std::fs::create_dir_all(&chunks).map_err(|error| io_context(&chunks, error))?;
        std::fs::create_dir_all(dir.join("manifests"))?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&chunks)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|name| name.parse::<ChunkId>().ok()) else {
                // Temporary files of an interrupted write, or strays.
                let _ = std::fs::remove_file(entry.path());
                continue;
            };
            let meta = entry.metadata()?;
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            found.push((modified, id, meta.len()));
        }
        found.sort();
        let cache = Self {
            dir: dir.to_path_buf(),
            cap,
            index: Mutex::new(Index::default()),
            decoded: Mutex::new(HashMap::new()),
        };
        {
            let mut index = cache.lock();
            for (_, id, bytes) in found {
                index.tick += 1;
                let tick = index.tick;
                index.chunks.insert(id, (bytes, tick));
                index.lru.insert((tick, id));
                index.used += bytes;
            }
        }
        cache.evict_to(cap);
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        self.dir.join("chunks").join(id.to_hex())
    }

    /// The cap in bytes.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    /// True when the chunk is indexed (its file may still turn out damaged on read).
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.lock().chunks.contains_key(id)
    }

    fn evict_to(&self, cap: u64) {
        let mut victims = Vec::new();
        {
            let mut index = self.lock();
            while index.used > cap {
                let Some(&(last, id)) = index.lru.iter().next() else {
                    break;
                };
                index.lru.remove(&(last, id));
                if let Some((bytes, _)) = index.chunks.remove(&id) {
                    index.used -= bytes;
                }
                victims.push(id);
            }
        }
        for id in victims {
            let _ = std::fs::remove_file(self.chunk_path(&id));
        }
    }

    /// The chunk `id`, if held and intact. A damaged file is deleted.
    pub fn get(&self, id: &ChunkId) -> Option<Bytes> {
        if !self.contains(id) {
            return None;
        }
        let path = self.chunk_path(id);
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(_) => {
                self.lock().remove(id);
                return None;
            }
        };
        if protocol::content::verify_chunk(id, &data).is_err() {
            tracing::warn!(chunk = %id, "cached chunk is damaged; dropping it");
            self.lock().remove(id);
            let _ = std::fs::remove_file(&path);
            return None;
        }
        self.lock().touch(id);
        Some(Bytes::from(data))
    }

    /// Stores a chunk that was verified against `id`, evicting least recently used chunks to
    /// stay within the cap. A chunk larger than the cap is not stored.
    pub fn put(&self, id: &ChunkId, data: &[u8]) -> std::io::Result<()> {
        let bytes = data.len() as u64;
        if bytes > self.cap || self.contains(id) {
            return Ok(());
        }
        self.evict_to(self.cap.saturating_sub(bytes));
        let path = self.chunk_path(id);
        let temp = path.with_extension("part");
        {
            let mut file =
                std::fs::File::create(&temp).map_err(|error| io_context(&temp, error))?;
            file.write_all(data)?;
        }
        std::fs::rename(&temp, &path)?;
        let mut index = self.lock();
        index.tick += 1;
        let tick = index.tick;
        index.chunks.insert(*id, (bytes, tick));
        index.lru.insert((tick, *id));
        index.used += bytes;
        Ok(())
    }

    /// Keeps a rendition's signed manifest (for offline play and for serving peers).
    pub fn put_manifest(&self, signed: &SignedManifest) -> std::io::Result<()> {
        let dir = self.dir.join("manifests");
        let path = dir.join(signed.rendition_id().to_hex());
        if path.exists() {
            return Ok(());
        }
        if std::fs::read_dir(&dir)?.count() >= MANIFESTS_MAX {
            return Ok(());
        }
        let bytes = codec::encode(signed).map_err(|error| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
        })?;
        let temp = path.with_extension("part");
        std::fs::write(&temp, bytes)?;
        std::fs::rename(&temp, &path)?;
        // Which renditions of the track are here, so a player can tell before asking the
        // origin whether the track's opening is cached.
        if let Ok(body) = codec::decode::<protocol::ManifestBody>(&signed.body) {
            let tracks = self.dir.join("tracks");
            std::fs::create_dir_all(&tracks)?;
            let index = tracks.join(body.track.to_hex());
            let mut known = std::fs::read_to_string(&index).unwrap_or_default();
            let line = signed.rendition_id().to_hex();
            if !known.lines().any(|held| held == line) && known.lines().count() < 8 {
                known.push_str(&line);
                known.push('\n');
                let temp = index.with_extension("part");
                std::fs::write(&temp, known)?;
                std::fs::rename(&temp, &index)?;
            }
        }
        Ok(())
    }

    /// Keeps `license`, this client's token for `rendition`, next to its manifest: what
    /// proves to a tracker that this client may announce the rendition (expired tokens
    /// count). It replaces whatever token was kept for the rendition before.
    pub fn put_license(
        &self,
        rendition: &RenditionId,
        license: &protocol::LicenseToken,
    ) -> std::io::Result<()> {
        let dir = self.dir.join("licenses");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(rendition.to_hex());
        if !path.exists() && std::fs::read_dir(&dir)?.count() >= MANIFESTS_MAX {
            return Ok(());
        }
        let bytes = codec::encode(license).map_err(|error| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
        })?;
        let temp = path.with_extension("part");
        std::fs::write(&temp, bytes)?;
        std::fs::rename(&temp, &path)
    }

    /// The license kept for `rendition` ([`ClientCache::put_license`]), if any.
    pub fn license(&self, rendition: &RenditionId) -> Option<protocol::LicenseToken> {
        let bytes = std::fs::read(self.dir.join("licenses").join(rendition.to_hex())).ok()?;
        codec::decode(&bytes).ok()
    }

    /// Whether the first chunk of some cached rendition of `track` (hex id) is here: a play
    /// of it needs no opening chunk from the origin.
    pub fn has_opening(&self, track: &str) -> bool {
        if track.len() != 32 || !track.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        let index = self.dir.join("tracks").join(track.to_ascii_lowercase());
        let Ok(known) = std::fs::read_to_string(index) else {
            return false;
        };
        known
            .lines()
            .filter_map(|line| line.parse::<RenditionId>().ok())
            .any(|rendition| {
                self.decoded(&rendition)
                    .and_then(|decoded| decoded.1.first().copied())
                    .is_some_and(|first| self.contains(&first))
            })
    }

    /// A cached manifest, verified against `origin`.
    pub fn manifest(&self, rendition: &RenditionId, origin: &NodeId) -> Option<protocol::Manifest> {
        let bytes = std::fs::read(self.dir.join("manifests").join(rendition.to_hex())).ok()?;
        let signed: SignedManifest = codec::decode(&bytes).ok()?;
        signed.verify_for(origin, rendition).ok()
    }

    /// The chunks of `manifest` held here, by index (each verified).
    pub fn chunks_of(&self, manifest: &protocol::Manifest) -> HashMap<u32, Bytes> {
        (0..manifest.chunk_count())
            .filter_map(|index| {
                let id = manifest.chunk_id(index)?;
                self.get(id).map(|data| (index, data))
            })
            .collect()
    }
}

impl ClientCache {
    fn decoded(&self, rendition: &RenditionId) -> Option<Decoded> {
        let mut decoded = self
            .decoded
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(found) = decoded.get(rendition) {
            return Some(found.clone());
        }
        let bytes = std::fs::read(self.dir.join("manifests").join(rendition.to_hex())).ok()?;
        let signed: SignedManifest = codec::decode(&bytes).ok()?;
        if signed.rendition_id() != *rendition {
            return None;
        }
        let body: protocol::ManifestBody = codec::decode(&signed.body).ok()?;
        if decoded.len() >= MANIFESTS_IN_MEMORY {
            decoded.clear();
        }
        let entry = std::sync::Arc::new((signed, body.chunks));
        decoded.insert(*rendition, entry.clone());
        Some(entry)
    }

    /// Renditions whose every chunk is here (what a client announces), at most `max`.
    pub fn complete_renditions(&self, max: usize) -> Vec<RenditionId> {
        self.holdings(max, 0).whole
    }

    /// What this cache holds, for an announce: renditions whole (at most `whole_max`) and
    /// renditions held in part, with the chunks held from the first, most recently stored
    /// first (at most `partial_max`; none whose first chunk is missing).
    pub fn holdings(&self, whole_max: usize, partial_max: usize) -> Holdings {
        let mut holdings = Holdings::default();
        let Ok(entries) = std::fs::read_dir(self.dir.join("manifests")) else {
            return holdings;
        };
        let mut partial = Vec::new();
        for entry in entries.flatten() {
            let Some(rendition) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<RenditionId>().ok())
            else {
                continue;
            };
            let Some(decoded) = self.decoded(&rendition) else {
                continue;
            };
            let held = decoded.1.iter().take_while(|id| self.contains(id)).count();
            if held == decoded.1.len() {
                if holdings.whole.len() < whole_max {
                    holdings.whole.push(rendition);
                }
            } else if held > 0 && partial_max > 0 {
                // The newest chunk stored says how recently the rendition was being fetched.
                let stored = self.last_use(&decoded.1[held - 1]);
                partial.push((stored, rendition, held as u32));
            }
        }
        partial.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        holdings.partial = partial
            .into_iter()
            .take(partial_max)
            .map(|(_, rendition, held)| (rendition, held))
            .collect();
        holdings
    }

    /// Chunks of `rendition` held from the first on, without a gap (0 without its manifest).
    pub fn held_prefix(&self, rendition: &RenditionId) -> u32 {
        self.decoded(rendition).map_or(0, |decoded| {
            decoded.1.iter().take_while(|id| self.contains(id)).count() as u32
        })
    }

    /// The LRU tick of a chunk's last use (0 when not held).
    fn last_use(&self, id: &ChunkId) -> u64 {
        self.lock().chunks.get(id).map_or(0, |(_, last)| *last)
    }
}

/// What a cache holds, for an announce ([`ClientCache::holdings`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Holdings {
    /// Renditions held whole.
    pub whole: Vec<RenditionId>,
    /// Renditions held in part: (rendition, chunks held from the first).
    pub partial: Vec<(RenditionId, u32)>,
}

impl transport::chunks::ChunkSource for ClientCache {
    async fn manifest(&self, rendition: &RenditionId) -> Option<SignedManifest> {
        self.decoded(rendition).map(|decoded| decoded.0.clone())
    }

    async fn chunk_count(&self, rendition: &RenditionId) -> Option<u32> {
        self.decoded(rendition)
            .map(|decoded| decoded.1.len() as u32)
    }

    async fn chunk(&self, rendition: &RenditionId, index: u32) -> Option<(ChunkId, Bytes)> {
        let id = *self.decoded(rendition)?.1.get(index as usize)?;
        self.get(&id).map(|data| (id, data))
    }

    async fn held_prefix(&self, rendition: &RenditionId) -> u32 {
        ClientCache::held_prefix(self, rendition)
    }

    /// `get` hashes every chunk it reads, so the service need not hash it again.
    fn verified_on_load(&self) -> bool {
        true
    }
}
