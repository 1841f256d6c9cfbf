//! The catalog: `tracks`, `renditions`, and the `artist_tracks` (`artist/track` → track id)
//! and `album_places` (`album/place` → track id, the place from
//! [`TrackRecord::album_place`], so an album reads in disc and track order) indexes. Play
//! counts imported with tracks go to `play_counts`.

use async_trait::async_trait;
use protocol::ChunkId;

use super::{EmbeddedStore, get_json, json_after, pair_key};
use crate::store::manifest_chunks;
use crate::store::{Catalog, ChangeKind, ImageSet, RenditionRecord, StoreError, TrackRecord};

impl EmbeddedStore {
    fn indexed_tracks(
        &self,
        index: &sled::Tree,
        owner: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        let mut out = Vec::new();
        for entry in index
            .scan_prefix(format!("{owner}/").as_bytes())
            .skip(offset)
            .take(limit)
        {
            let (_, track_id) = entry?;
            if let Some(track) = get_json(&self.0.tracks, &track_id)? {
                out.push(track);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Catalog for EmbeddedStore {
    async fn publish_track(
        &self,
        track: &TrackRecord,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError> {
        self.changing(ChangeKind::Track, &[&track.id], async {
            use sled::Transactional;
            let track_bytes = serde_json::to_vec(track)?;
            let mut encoded = Vec::with_capacity(renditions.len());
            for (id, record) in renditions {
                encoded.push((id.clone(), serde_json::to_vec(record)?));
            }
            let artist_key = pair_key(&track.artist_id, &track.id);
            let album_key = track
                .album_id
                .as_ref()
                .map(|album| pair_key(album, &track.album_place()));
            let trees = &self.0;
            (
                &trees.tracks,
                &trees.renditions,
                &trees.artist_tracks,
                &trees.album_tracks,
            )
                .transaction(|(tracks, renditions, artist_tracks, album_tracks)| {
                    for (id, bytes) in &encoded {
                        renditions.insert(id.as_bytes(), bytes.as_slice())?;
                    }
                    artist_tracks.insert(artist_key.as_slice(), track.id.as_bytes())?;
                    if let Some(key) = &album_key {
                        album_tracks.insert(key.as_slice(), track.id.as_bytes())?;
                    }
                    tracks.insert(track.id.as_bytes(), track_bytes.as_slice())?;
                    Ok(())
                })
                .map_err(|error: sled::transaction::TransactionError<()>| {
                    StoreError::Transaction(format!("{error:?}"))
                })?;
            self.flush().await
        })
        .await
    }

    async fn import_tracks(&self, tracks: &[(TrackRecord, u64)]) -> Result<(), StoreError> {
        self.changing(ChangeKind::Import, &[""], async {
            let (mut records, mut by_artist, mut by_album, mut plays) = (
                sled::Batch::default(),
                sled::Batch::default(),
                sled::Batch::default(),
                sled::Batch::default(),
            );
            for (track, count) in tracks {
                records.insert(track.id.as_bytes(), serde_json::to_vec(track)?);
                by_artist.insert(pair_key(&track.artist_id, &track.id), track.id.as_bytes());
                if let Some(album) = &track.album_id {
                    by_album.insert(pair_key(album, &track.album_place()), track.id.as_bytes());
                }
                if *count > 0 {
                    plays.insert(track.id.as_bytes(), &count.to_be_bytes());
                }
            }
            self.0.artist_tracks.apply_batch(by_artist)?;
            self.0.album_tracks.apply_batch(by_album)?;
            self.0.play_counts.apply_batch(plays)?;
            self.0.tracks.apply_batch(records)?;
            self.flush().await
        })
        .await
    }

    async fn import_renditions(
        &self,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (id, record) in renditions {
            batch.insert(id.as_bytes(), serde_json::to_vec(record)?);
        }
        self.0.renditions.apply_batch(batch)?;
        self.flush().await
    }

    async fn delete_track(&self, track: &TrackRecord) -> Result<Vec<ChunkId>, StoreError> {
        self.changing(ChangeKind::Track, &[&track.id], async {
            let mut chunks = Vec::new();
            for rendition in &track.renditions {
                if let Some(record) = get_json::<RenditionRecord>(
                    &self.0.renditions,
                    rendition.rendition_id.as_bytes(),
                )? {
                    chunks.extend(manifest_chunks(&record.manifest));
                }
            }
            self.0.tracks.remove(track.id.as_bytes())?;
            self.0
                .artist_tracks
                .remove(pair_key(&track.artist_id, &track.id))?;
            if let Some(album) = &track.album_id {
                self.0
                    .album_tracks
                    .remove(pair_key(album, &track.album_place()))?;
            }
            for rendition in &track.renditions {
                self.0
                    .renditions
                    .remove(rendition.rendition_id.as_bytes())?;
            }
            self.flush().await?;
            Ok(chunks)
        })
        .await
    }

    async fn track(&self, id: &str) -> Result<Option<TrackRecord>, StoreError> {
        get_json(&self.0.tracks, id.as_bytes())
    }

    async fn has_rendition(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.0.renditions.contains_key(id.as_bytes())?)
    }

    async fn rendition(&self, id: &str) -> Result<Option<RenditionRecord>, StoreError> {
        get_json(&self.0.renditions, id.as_bytes())
    }

    async fn artist_tracks(
        &self,
        artist_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        self.indexed_tracks(&self.0.artist_tracks, artist_id, offset, limit)
    }

    async fn album_tracks(
        &self,
        album_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        self.indexed_tracks(&self.0.album_tracks, album_id, offset, limit)
    }

    async fn image_for(&self, key: &str) -> Result<Option<ImageSet>, StoreError> {
        get_json(&self.0.images, key.as_bytes())
    }

    async fn set_image_for(&self, key: &str, image: Option<&ImageSet>) -> Result<(), StoreError> {
        match image {
            Some(image) => {
                self.0
                    .images
                    .insert(key.as_bytes(), serde_json::to_vec(image)?)?;
            }
            None => {
                self.0.images.remove(key.as_bytes())?;
            }
        }
        self.flush().await
    }

    async fn images_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ImageSet)>, StoreError> {
        Ok(json_after(&self.0.images, after.map(str::as_bytes), limit)?
            .into_iter()
            .map(|(key, image)| (String::from_utf8_lossy(&key).into_owned(), image))
            .collect())
    }

    async fn tracks_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        Ok(json_after(&self.0.tracks, after.map(str::as_bytes), limit)?
            .into_iter()
            .map(|(_, track)| track)
            .collect())
    }

    async fn renditions_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RenditionRecord)>, StoreError> {
        Ok(
            json_after(&self.0.renditions, after.map(str::as_bytes), limit)?
                .into_iter()
                .map(|(id, record)| (String::from_utf8_lossy(&id).into_owned(), record))
                .collect(),
        )
    }

    async fn track_count(&self) -> Result<u64, StoreError> {
        Ok(self.0.tracks.len() as u64)
    }
}
