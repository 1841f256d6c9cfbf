//! Content-addressed chunk files: `chunks/<first 2 hex>/<id hex>`, written durably
//! (temporary file, fsync, rename, fsync of the directory) so an acknowledged chunk survives
//! `kill -9` and a crash never leaves a partial file under a chunk's name.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use protocol::ChunkId;

/// Chunk storage on a local filesystem.
#[derive(Debug)]
pub struct ChunkFiles {
    root: PathBuf,
    temp_counter: AtomicU64,
}

impl ChunkFiles {
    /// Opens (creating if needed) the store under `root`. Leftover temporary files from a
    /// crash are removed.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("tmp"))?;
        for entry in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(Self {
            root: root.to_path_buf(),
            temp_counter: AtomicU64::new(0),
        })
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
        fs::create_dir_all(directory)?;
        let temp = self.root.join("tmp").join(format!(
            "{}.{}.{}",
            id.to_hex(),
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = File::create(&temp)?;
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
        match fs::read(self.path(id)) {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
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
}
