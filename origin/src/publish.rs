//! Tracks: upload and ingest, catalog reads, deletion, and play authorization.

use protocol::content::{CHUNK_BYTES_DEFAULT, ChunkCipher, ContentKey, SealLabel};
use protocol::manifest::{MANIFEST_VERSION, ManifestBody, SignedManifest};
use protocol::{ChunkId, Identity, TrackId, codec};
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::ingest::Transcoded;
use crate::store::{RenditionRecord, RenditionSummary, Store, StoreError, TrackRecord};

pub use api::catalog::{TrackMetadata, TrackView};

use crate::tags::TrackInfo;

/// Sealed chunks in flight between the sealing thread and the blob store: at most this many
/// wait, so an ingest holds a few chunks in memory however long the track.
const SEALED_IN_FLIGHT: usize = 4;

/// Seals every rendition of `transcoded`, stores its chunks durably, then publishes the track
/// atomically. Sealing runs on the blocking pool (it reads the spooled rendition) and hands
/// each sealed chunk to the blob store as it goes, so a slow object store slows the ingest but
/// never grows its memory.
pub async fn store_track(
    store: &Store,
    origin: &Identity,
    owner: &str,
    info: &TrackInfo,
    transcoded: Arc<Transcoded>,
) -> Result<TrackRecord, StoreError> {
    let track = TrackId(rand::random());
    let mut summaries = Vec::new();
    let mut records = Vec::new();
    for (rendition_index, rendition) in transcoded.renditions.iter().enumerate() {
        let key = ContentKey::generate(&mut rand::rngs::OsRng);
        let cipher = ChunkCipher::new(
            &key,
            SealLabel {
                track,
                quality: rendition.quality,
            },
        );
        let (sender, mut sealed_chunks) =
            tokio::sync::mpsc::channel::<Result<(ChunkId, Bytes), StoreError>>(SEALED_IN_FLIGHT);
        let source = transcoded.clone();
        let sealer = tokio::task::spawn_blocking(move || {
            let rendition = &source.renditions[rendition_index];
            let file = &rendition.file;
            let stopped = || StoreError::Transaction("sealing a rendition stopped".into());
            // How far each chunk lets playback reach, from the Ogg pages as they pass.
            let mut timer = protocol::ogg::ChunkTimer::new(rendition.codec, CHUNK_BYTES_DEFAULT)
                .map_err(|error| StoreError::Transaction(format!("timing a rendition: {error}")))?;
            let mut index = 0u32;
            loop {
                let mut sealed = Vec::with_capacity(CHUNK_BYTES_DEFAULT as usize + 16);
                let more = file
                    .read_piece(u64::from(index), CHUNK_BYTES_DEFAULT as usize, &mut sealed)
                    .map_err(|error| {
                        StoreError::Transaction(format!("reading a rendition: {error}"))
                    });
                let item = match more {
                    Ok(false) => {
                        return timer.finish().map_err(|error| {
                            StoreError::Transaction(format!("timing a rendition: {error}"))
                        });
                    }
                    Ok(true) => match timer.push(&sealed) {
                        Err(error) => Err(StoreError::Transaction(format!(
                            "timing a rendition: {error}"
                        ))),
                        Ok(()) => {
                            let id = cipher.seal_in_place(index, &mut sealed);
                            Ok((id, Bytes::from(sealed)))
                        }
                    },
                    Err(error) => Err(error),
                };
                let failed = item.is_err();
                if sender.blocking_send(item).is_err() || failed {
                    return Err(stopped());
                }
                let Some(next) = index.checked_add(1) else {
                    let _ = sender.blocking_send(Err(StoreError::Transaction(
                        "rendition has too many chunks".into(),
                    )));
                    return Err(stopped());
                };
                index = next;
            }
        });
        let mut ids = Vec::with_capacity(
            (rendition.file.len() / u64::from(CHUNK_BYTES_DEFAULT)) as usize + 1,
        );
        while let Some(item) = sealed_chunks.recv().await {
            let (id, sealed) = item?;
            store.blobs().put(&id, sealed).await?;
            ids.push(id);
        }
        let chunk_end_ms = sealer
            .await
            .map_err(|join| StoreError::Transaction(format!("sealing a rendition: {join}")))??;
        let body = ManifestBody {
            version: MANIFEST_VERSION,
            origin: origin.node_id(),
            track,
            quality: rendition.quality,
            codec: rendition.codec,
            bitrate_bps: rendition.bitrate_bps,
            sample_rate_hz: transcoded.sample_rate_hz,
            channels: transcoded.channels,
            duration_ms: transcoded.duration_ms,
            chunk_bytes: CHUNK_BYTES_DEFAULT,
            plaintext_bytes: rendition.file.len(),
            chunk_end_ms,
            chunks: ids.clone(),
        };
        let signed = SignedManifest::sign(origin, &body)
            .map_err(|error| StoreError::Transaction(error.to_string()))?;
        let encoded =
            codec::encode(&signed).map_err(|error| StoreError::Transaction(error.to_string()))?;
        let rendition_id = signed.rendition_id().to_hex();
        summaries.push(RenditionSummary {
            quality: rendition.quality.as_str().to_string(),
            rendition_id: rendition_id.clone(),
            codec: "vorbis".into(),
            bitrate_bps: rendition.bitrate_bps,
            bytes: rendition.file.len(),
            chunks: ids.len() as u32,
        });
        records.push((
            rendition_id,
            RenditionRecord {
                track: track.to_hex(),
                quality: rendition.quality.as_str().to_string(),
                manifest: hex::encode(encoded),
                content_key: hex::encode(key.0),
            },
        ));
    }
    let mut details = info.details.clone();
    if let Some(lyrics) = &info.lyrics {
        details.lyrics = Some(store.put_lyrics(lyrics).await?);
    }
    if !info.artwork.is_empty() {
        details.artwork = Some(store.put_images(&info.artwork).await?);
    }
    let record = TrackRecord {
        id: track.to_hex(),
        title: info.title.clone(),
        artist: info.artist.clone(),
        artist_id: owner.to_string(),
        album: info.album.clone(),
        album_id: info.album_id(owner),
        genre: info.genre.clone(),
        markets: info.markets.clone(),
        duration_ms: transcoded.duration_ms,
        loudness_lufs: transcoded.loudness_lufs,
        tempo_bpm: transcoded.tempo_bpm,
        gain_db: transcoded.gain_db,
        owner: owner.to_string(),
        created_at_ms: crate::now_ms(),
        renditions: summaries,
        details,
    };
    store.publish_track(&record, &records).await?;
    Ok(record)
}

/// Rendered track views (`track_json` as JSON text), for reads that list many tracks
/// (playlist pages): decoding the record and encoding the view is most of such a read's cost.
/// Holds at most [`TRACK_VIEWS_MAX`] (emptied when full); a deleted track is forgotten.
#[derive(Debug, Default)]
pub struct TrackViews {
    views: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<str>>>,
}

/// Most rendered track views kept.
pub const TRACK_VIEWS_MAX: usize = 100_000;

impl TrackViews {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, std::sync::Arc<str>>> {
        self.views
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The view of track `id` as JSON text, `None` if there is no such track.
    pub async fn get(
        &self,
        store: &crate::store::Store,
        id: &str,
    ) -> Result<Option<std::sync::Arc<str>>, StoreError> {
        if let Some(view) = self.lock().get(id) {
            return Ok(Some(view.clone()));
        }
        let Some(track) = store.catalog().track(id).await? else {
            return Ok(None);
        };
        let view: std::sync::Arc<str> = serde_json::to_string(&track_json(&track))?.into();
        let mut views = self.lock();
        if views.len() >= TRACK_VIEWS_MAX {
            views.clear();
        }
        views.insert(id.to_string(), view.clone());
        Ok(Some(view))
    }

    /// Forgets track `id` (deleted or replaced).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// How the API shows a stored picture.
pub fn artwork_view(set: &crate::store::ImageSet) -> api::catalog::Artwork {
    api::catalog::Artwork {
        sizes: set
            .sizes
            .iter()
            .map(|size| api::catalog::ArtworkSize {
                size: size.edge,
                url: format!("/v1/images/{}", size.blob),
            })
            .collect(),
    }
}

pub(crate) fn track_json(track: &TrackRecord) -> TrackView {
    TrackView {
        id: track.id.clone(),
        title: track.title.clone(),
        artist: track.artist.clone(),
        artist_id: track.artist_id.clone(),
        album: track.album.clone(),
        album_id: track.album_id.clone(),
        genre: track.genre.clone(),
        album_artist: track.details.album_artist.clone(),
        track_number: track.details.track_number,
        disc_number: track.details.disc_number,
        year: track.details.year,
        isrc: track.details.isrc.clone(),
        musicbrainz: track.details.musicbrainz.clone(),
        lyrics: track
            .details
            .lyrics
            .as_ref()
            .map_or(api::catalog::LyricsKind::None, |lyrics| {
                if lyrics.synced {
                    api::catalog::LyricsKind::Synced
                } else {
                    api::catalog::LyricsKind::Plain
                }
            }),
        artwork: track.details.artwork.as_ref().map(artwork_view),
        markets: track.markets.clone(),
        duration_ms: track.duration_ms,
        loudness_lufs: track
            .loudness_lufs
            .is_finite()
            .then_some(track.loudness_lufs),
        tempo_bpm: track.tempo_bpm,
        gain_db: track.gain_db,
        renditions: track.renditions.clone(),
        created_at_ms: track.created_at_ms,
    }
}

/// An uploaded file spooled to `DATA/uploads` (mode 0600); removed when dropped.
#[derive(Debug)]
pub struct SpooledUpload {
    /// The spooled file.
    pub file: tempfile::NamedTempFile,
}

/// Bytes of an upload held in memory at once while it is spooled to disk.
pub const UPLOAD_BUFFER_BYTES: usize = 256 * 1024;

/// The directory uploads are spooled to (emptied at start: what is there is from a crash).
pub fn uploads_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("uploads")
}

/// Concurrent ingests per account (uploads being read, waiting for a slot or transcoding).
#[derive(Debug)]
pub struct AccountIngests {
    running: std::sync::Mutex<HashMap<String, usize>>,
    per_account_max: usize,
}

/// One account's place among the concurrent ingests; released on drop.
#[derive(Debug)]
pub struct AccountIngest {
    ingests: std::sync::Arc<AccountIngests>,
    account: String,
}

/// The ingest slot and the account's place, held by the ingest work until it ends.
#[derive(Debug)]
pub struct IngestPlaces {
    _slot: tokio::sync::OwnedSemaphorePermit,
    _account: AccountIngest,
}

impl IngestPlaces {
    /// Holds `slot` and `account` until dropped.
    pub fn new(slot: tokio::sync::OwnedSemaphorePermit, account: AccountIngest) -> Self {
        Self {
            _slot: slot,
            _account: account,
        }
    }
}

impl AccountIngests {
    /// At most `per_account_max` (at least 1) ingests per account at once. Memory: one entry
    /// per account with an ingest under way.
    pub fn new(per_account_max: usize) -> Self {
        Self {
            running: std::sync::Mutex::new(HashMap::new()),
            per_account_max: per_account_max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.running
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// A place for `account`, or `None` when it has `per_account_max` already.
    pub fn enter(self: &std::sync::Arc<Self>, account: &str) -> Option<AccountIngest> {
        let mut running = self.lock();
        let count = running.entry(account.to_string()).or_insert(0);
        if *count >= self.per_account_max {
            return None;
        }
        *count += 1;
        Some(AccountIngest {
            ingests: self.clone(),
            account: account.to_string(),
        })
    }
}

impl Drop for AccountIngest {
    fn drop(&mut self) {
        let mut running = self.ingests.lock();
        if let Some(count) = running.get_mut(&self.account) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.account);
            }
        }
    }
}
