//! A read-through cache of track and rendition records in front of any [`Catalog`]: the play
//! path reads both on every authorization, and on a networked database each read is a round
//! trip. Rendition records never change once published; a track changes only when deleted or
//! re-imported, which goes through this layer and forgets it. Entries also expire after
//! [`RECORD_TTL`], which bounds how long another origin's delete on a shared database can go
//! unseen here. Bounded: at most [`RECORDS_MAX`] of each (emptied when full).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use protocol::ChunkId;

use super::{Catalog, RenditionRecord, StoreError, TrackRecord};

/// How long a cached record is served before it is read again.
pub const RECORD_TTL: Duration = Duration::from_secs(10);

/// Records of each kind kept.
pub const RECORDS_MAX: usize = 100_000;

type Entries<T> = Mutex<HashMap<String, (Instant, T)>>;

/// [`Catalog`] with its track and rendition reads cached (see the module docs).
#[derive(Debug)]
pub struct CachedCatalog {
    inner: Arc<dyn Catalog>,
    tracks: Entries<TrackRecord>,
    renditions: Entries<RenditionRecord>,
}

fn lookup<T: Clone>(entries: &Entries<T>, id: &str) -> Option<T> {
    let entries = entries.lock().unwrap_or_else(|poison| poison.into_inner());
    entries
        .get(id)
        .filter(|(at, _)| at.elapsed() < RECORD_TTL)
        .map(|(_, record)| record.clone())
}

fn remember<T>(entries: &Entries<T>, id: &str, record: T) {
    let mut entries = entries.lock().unwrap_or_else(|poison| poison.into_inner());
    if entries.len() >= RECORDS_MAX {
        entries.clear();
    }
    entries.insert(id.to_string(), (Instant::now(), record));
}

fn forget<T>(entries: &Entries<T>, ids: impl IntoIterator<Item = impl AsRef<str>>) {
    let mut entries = entries.lock().unwrap_or_else(|poison| poison.into_inner());
    for id in ids {
        entries.remove(id.as_ref());
    }
}

impl CachedCatalog {
    /// `inner` with a cache in front.
    pub fn new(inner: Arc<dyn Catalog>) -> Self {
        Self {
            inner,
            tracks: Mutex::default(),
            renditions: Mutex::default(),
        }
    }

    fn forget_track(&self, track: &TrackRecord) {
        forget(&self.tracks, [&track.id]);
        forget(
            &self.renditions,
            track
                .renditions
                .iter()
                .map(|rendition| &rendition.rendition_id),
        );
    }
}

#[async_trait]
impl Catalog for CachedCatalog {
    async fn publish_track(
        &self,
        track: &TrackRecord,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError> {
        self.forget_track(track);
        self.inner.publish_track(track, renditions).await
    }

    async fn import_tracks(&self, tracks: &[(TrackRecord, u64)]) -> Result<(), StoreError> {
        for (track, _) in tracks {
            self.forget_track(track);
        }
        self.inner.import_tracks(tracks).await
    }

    async fn import_renditions(
        &self,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError> {
        forget(&self.renditions, renditions.iter().map(|(id, _)| id));
        self.inner.import_renditions(renditions).await
    }

    async fn delete_track(&self, track: &TrackRecord) -> Result<Vec<ChunkId>, StoreError> {
        let result = self.inner.delete_track(track).await;
        // Forgotten whatever the outcome: a failed delete may still have removed something.
        self.forget_track(track);
        result
    }

    async fn track(&self, id: &str) -> Result<Option<TrackRecord>, StoreError> {
        if let Some(track) = lookup(&self.tracks, id) {
            return Ok(Some(track));
        }
        let found = self.inner.track(id).await?;
        if let Some(track) = &found {
            remember(&self.tracks, id, track.clone());
        }
        Ok(found)
    }

    async fn has_rendition(&self, id: &str) -> Result<bool, StoreError> {
        if lookup(&self.renditions, id).is_some() {
            return Ok(true);
        }
        self.inner.has_rendition(id).await
    }

    async fn rendition(&self, id: &str) -> Result<Option<RenditionRecord>, StoreError> {
        if let Some(record) = lookup(&self.renditions, id) {
            return Ok(Some(record));
        }
        let found = self.inner.rendition(id).await?;
        if let Some(record) = &found {
            remember(&self.renditions, id, record.clone());
        }
        Ok(found)
    }

    async fn artist_tracks(
        &self,
        artist_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        self.inner.artist_tracks(artist_id, offset, limit).await
    }

    async fn album_tracks(
        &self,
        album_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        self.inner.album_tracks(album_id, offset, limit).await
    }

    async fn tracks_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        self.inner.tracks_after(after, limit).await
    }

    async fn renditions_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RenditionRecord)>, StoreError> {
        self.inner.renditions_after(after, limit).await
    }

    async fn track_count(&self) -> Result<u64, StoreError> {
        self.inner.track_count().await
    }
}
