//! The embedded metadata backend: sled in `DATA/meta`, no set-up.
//!
//! Records are JSON values in sled trees, one file per domain here. Reads run inline (sled
//! serves them from its page cache); every write that a caller acknowledges is flushed to disk
//! first on the blocking pool ([`EmbeddedStore::flush`]), so it survives `kill -9` without
//! blocking a runtime thread. Multi-tree writes that must be atomic (publishing a
//! track, a batch of listening events) are sled transactions.
//!
//! The tree layout is the one origins have always used, so existing data directories open
//! unchanged; rendition records whose keys are still in the clear (from before keys were
//! sealed) are sealed when the store opens.

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::keys::KeyWrap;
use super::{RenditionRecord, StoreError, TrackRecord};

mod accounts;
mod catalog;
mod coordination;
mod devices;
mod libraries;
mod listening;
mod playlists;

/// sled's page cache (its default is 1 GiB; the OS page cache is behind it anyway).
pub const STORE_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// The sled trees.
#[derive(Debug)]
struct Trees {
    db: sled::Db,
    accounts: sled::Tree,
    usernames: sled::Tree,
    tokens: sled::Tree,
    /// App passwords and API keys (`account/id` → record).
    app_credentials: sled::Tree,
    /// API keys by their SHA-256 (→ `account/id`).
    api_keys: sled::Tree,
    tracks: sled::Tree,
    renditions: sled::Tree,
    artist_tracks: sled::Tree,
    album_tracks: sled::Tree,
    /// Pictures uploaded for albums and artists (`album/{id}`, `artist/{id}` → image set).
    images: sled::Tree,
    /// Player states, by account.
    players: sled::Tree,
    offline_devices: sled::Tree,
    liked_tracks: sled::Tree,
    followed_artists: sled::Tree,
    playlists: sled::Tree,
    account_playlists: sled::Tree,
    event_ids: sled::Tree,
    plays: sled::Tree,
    streams: sled::Tree,
    play_counts: sled::Tree,
    changes: sled::Tree,
    feed: sled::Tree,
    /// Held while a change and its feed entry are made, and while the feed is read.
    feed_lock: tokio::sync::Mutex<()>,
    /// Held while an offline device is counted and admitted.
    admissions: std::sync::Mutex<()>,
}

/// The embedded backend; implements every metadata domain of [`crate::store`].
#[derive(Debug, Clone)]
pub struct EmbeddedStore(Arc<Trees>);

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Io(error) => StoreError::Io(error),
            sled::Error::Corruption { .. } => StoreError::Corrupt(error.to_string()),
            other => StoreError::Backend(other.to_string()),
        }
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the trees in `data_dir/meta`, sealing with `keys` any
    /// content key stored in the clear.
    pub fn open(data_dir: &Path, keys: &KeyWrap) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(data_dir.join("meta"))
            .cache_capacity(STORE_CACHE_BYTES)
            .open()?;
        transport::keyfile::restrict_tree(&data_dir.join("meta"))?;
        let trees = Trees {
            accounts: db.open_tree("accounts")?,
            usernames: db.open_tree("usernames")?,
            tokens: db.open_tree("tokens")?,
            app_credentials: db.open_tree("app_credentials")?,
            api_keys: db.open_tree("api_keys")?,
            tracks: db.open_tree("tracks")?,
            renditions: db.open_tree("renditions")?,
            artist_tracks: db.open_tree("artist_tracks")?,
            album_tracks: db.open_tree("album_places")?,
            images: db.open_tree("images")?,
            players: db.open_tree("players")?,
            offline_devices: db.open_tree("offline_devices")?,
            liked_tracks: db.open_tree("liked_tracks")?,
            followed_artists: db.open_tree("followed_artists")?,
            playlists: db.open_tree("playlists")?,
            account_playlists: db.open_tree("account_playlists")?,
            event_ids: db.open_tree("event_ids")?,
            plays: db.open_tree("plays")?,
            streams: db.open_tree("streams")?,
            play_counts: db.open_tree("play_counts")?,
            changes: db.open_tree("changes")?,
            feed: db.open_tree("feed")?,
            feed_lock: tokio::sync::Mutex::new(()),
            admissions: std::sync::Mutex::new(()),
            db,
        };
        seal_clear_keys(&trees.renditions, keys)?;
        place_album_tracks(&trees)?;
        Ok(Self(Arc::new(trees)))
    }

    /// Makes every write so far durable, on the blocking pool (a flush is an fsync). Call
    /// before acknowledging. (sled's own `flush_async` hangs now and then under concurrent
    /// callers, so it is not used.)
    async fn flush(&self) -> Result<(), StoreError> {
        let trees = self.0.clone();
        tokio::task::spawn_blocking(move || trees.db.flush())
            .await
            .map_err(|join| StoreError::Backend(format!("flushing: {join}")))??;
        Ok(())
    }
}

/// Moves a store from before albums were ordered: its `album_tracks` index (`album/track`)
/// becomes `album_places` (`album/place`), rebuilt from the tracks.
fn place_album_tracks(trees: &Trees) -> Result<(), StoreError> {
    if !trees
        .db
        .tree_names()
        .iter()
        .any(|name| name.as_ref() == b"album_tracks")
    {
        return Ok(());
    }
    // From scratch: whatever an interrupted or older run left there is rebuilt too.
    trees.album_tracks.clear()?;
    let mut batch = sled::Batch::default();
    let mut count = 0usize;
    for entry in trees.tracks.iter() {
        let (_, bytes) = entry?;
        let track: TrackRecord = serde_json::from_slice(&bytes)?;
        if let Some(album) = &track.album_id {
            batch.insert(pair_key(album, &track.album_place()), track.id.as_bytes());
            count += 1;
        }
    }
    trees.album_tracks.apply_batch(batch)?;
    trees.album_tracks.flush()?;
    trees.db.drop_tree("album_tracks")?;
    tracing::info!(count, "album index rebuilt in disc and track order");
    Ok(())
}

/// Seals every content key still stored in the clear (a store from before wrapping).
fn seal_clear_keys(renditions: &sled::Tree, keys: &KeyWrap) -> Result<(), StoreError> {
    let mut migrated = sled::Batch::default();
    let mut count = 0usize;
    for entry in renditions.iter() {
        let (id, bytes) = entry?;
        let mut record: RenditionRecord = serde_json::from_slice(&bytes)?;
        if KeyWrap::is_sealed(&record.content_key) {
            continue;
        }
        let rendition = String::from_utf8_lossy(&id).to_string();
        record.content_key = keys.wrap(&rendition, &record.content_key)?;
        migrated.insert(id, serde_json::to_vec(&record)?);
        count += 1;
    }
    if count > 0 {
        renditions.apply_batch(migrated)?;
        renditions.flush()?;
        tracing::info!(count, "sealed content keys stored in the clear");
    }
    Ok(())
}

/// `owner/item`: the key of one entry of a per-account (or per-artist) index.
fn pair_key(owner: &str, item: &str) -> Vec<u8> {
    format!("{owner}/{item}").into_bytes()
}

/// Splits a [`pair_key`] at its first `/`.
fn split_pair(key: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(key);
    match text.split_once('/') {
        Some((owner, item)) => (owner.to_string(), item.to_string()),
        None => (text.into_owned(), String::new()),
    }
}

fn decode_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

fn get_json<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

/// Up to `limit` JSON values of `tree` with keys after `after`, in key order.
fn json_after<T: DeserializeOwned>(
    tree: &sled::Tree,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(sled::IVec, T)>, StoreError> {
    let range = match after {
        Some(after) => tree.range((
            std::ops::Bound::Excluded(after.to_vec()),
            std::ops::Bound::Unbounded,
        )),
        None => tree.iter(),
    };
    let mut out = Vec::new();
    for entry in range.take(limit) {
        let (key, value) = entry?;
        out.push((key, serde_json::from_slice(&value)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Catalog, suite};

    #[tokio::test]
    async fn an_album_index_from_before_places_is_rebuilt_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A store as the previous layout left it: `album_tracks` keyed `album/track`.
            let db = sled::open(dir.path().join("meta")).unwrap();
            let (tracks, old) = (
                db.open_tree("tracks").unwrap(),
                db.open_tree("album_tracks").unwrap(),
            );
            for (id, number) in [("a1", 2), ("a2", 1)] {
                let mut track = suite::track(id, "artist", Some("album"), "r");
                track.details.track_number = Some(number);
                tracks
                    .insert(id, serde_json::to_vec(&track).unwrap())
                    .unwrap();
                old.insert(pair_key("album", id), id).unwrap();
            }
            db.flush().unwrap();
        }
        let store = EmbeddedStore::open(dir.path(), &KeyWrap::new(&[1; 32])).unwrap();
        let album = store.album_tracks("album", 0, 10).await.unwrap();
        let ids: Vec<&str> = album.iter().map(|track| track.id.as_str()).collect();
        assert_eq!(ids, ["a2", "a1"]);
        assert!(
            !store
                .0
                .db
                .tree_names()
                .iter()
                .any(|name| name.as_ref() == b"album_tracks")
        );
    }
}
