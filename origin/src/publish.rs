//! Tracks: upload and ingest, catalog reads, deletion, and play authorization.

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use protocol::content::{CHUNK_BYTES_DEFAULT, ChunkCipher, ContentKey, SealLabel};
use protocol::license::{LICENSE_VERSION, LicenseClaims, LicenseScope, LicenseToken};
use protocol::manifest::{MANIFEST_VERSION, ManifestBody, SignedManifest};
use protocol::{AccountId, Identity, TrackId, UnixMillis, codec};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::api::{self, ApiError, ApiJson, AppState, Authed, ErrorBody, now_ms};
use crate::ingest::{self, IngestLimits, Transcoded};
use crate::store::{RenditionRecord, RenditionSummary, Role, Store, StoreError, Tier, TrackRecord};

/// Metadata sent with an upload (the `metadata` multipart field).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackMetadata {
    /// Title, 1 to 200 characters.
    pub title: String,
    /// Artist display name, 1 to 200 characters.
    pub artist: String,
    /// Album title.
    pub album: Option<String>,
    /// Genre.
    pub genre: Option<String>,
    /// ISO regions where the track may be played; none means everywhere.
    pub markets: Option<Vec<String>>,
}

impl TrackMetadata {
    fn check(&self) -> Result<(), ApiError> {
        let text_ok = |text: &str| !text.trim().is_empty() && text.chars().count() <= 200;
        if !text_ok(&self.title) || !text_ok(&self.artist) {
            return Err(api::bad_request(
                "invalid_metadata",
                "title and artist are 1 to 200 characters",
            ));
        }
        if self.album.as_deref().is_some_and(|album| !text_ok(album))
            || self.genre.as_deref().is_some_and(|genre| !text_ok(genre))
        {
            return Err(api::bad_request(
                "invalid_metadata",
                "album and genre are 1 to 200 characters",
            ));
        }
        for market in self.markets.iter().flatten() {
            if market.parse::<protocol::Region>().is_err() {
                return Err(api::bad_request(
                    "invalid_market",
                    format!("{market:?} is not an ISO 3166-1 alpha-2 code"),
                ));
            }
        }
        if self
            .markets
            .as_ref()
            .is_some_and(|markets| markets.len() > 250)
        {
            return Err(api::bad_request("invalid_market", "at most 250 markets"));
        }
        Ok(())
    }
}

/// Seals every rendition of `transcoded`, stores its chunks durably, then publishes the track
/// atomically. Blocking (file I/O): run it off the async runtime.
pub fn store_track(
    store: &Store,
    origin: &Identity,
    owner: &str,
    metadata: &TrackMetadata,
    transcoded: &Transcoded,
) -> Result<TrackRecord, StoreError> {
    let track = TrackId(rand::random());
    let mut summaries = Vec::new();
    let mut records = Vec::new();
    for rendition in &transcoded.renditions {
        let key = ContentKey::generate(&mut rand::rngs::OsRng);
        let cipher = ChunkCipher::new(
            &key,
            SealLabel {
                track,
                quality: rendition.quality,
            },
        );
        // Sealed and written a chunk at a time: an ingest never holds a second, sealed copy
        // of a rendition in memory (two ingests of an hour-long track would hold ~280 MB).
        let mut ids = Vec::with_capacity(
            (rendition.file.len() / u64::from(CHUNK_BYTES_DEFAULT)) as usize + 1,
        );
        let mut sealed = Vec::with_capacity(CHUNK_BYTES_DEFAULT as usize + 16);
        let mut index = 0u32;
        while rendition
            .file
            .read_piece(u64::from(index), CHUNK_BYTES_DEFAULT as usize, &mut sealed)
            .map_err(|error| StoreError::Transaction(format!("reading a rendition: {error}")))?
        {
            let id = cipher.seal_in_place(index, &mut sealed);
            index = index
                .checked_add(1)
                .ok_or_else(|| StoreError::Transaction("rendition has too many chunks".into()))?;
            store.chunks().put(&id, &sealed)?;
            ids.push(id);
        }
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
    let album_id = metadata.album.as_ref().map(|album| {
        hex::encode(&blake3::hash(format!("{owner}\0{album}").as_bytes()).as_bytes()[..16])
    });
    let record = TrackRecord {
        id: track.to_hex(),
        title: metadata.title.trim().to_string(),
        artist: metadata.artist.trim().to_string(),
        artist_id: owner.to_string(),
        album: metadata.album.clone(),
        album_id,
        genre: metadata.genre.clone(),
        markets: metadata.markets.clone().unwrap_or_default(),
        duration_ms: transcoded.duration_ms,
        loudness_lufs: transcoded.loudness_lufs,
        tempo_bpm: transcoded.tempo_bpm,
        gain_db: transcoded.gain_db,
        owner: owner.to_string(),
        created_at_ms: now_ms(),
        renditions: summaries,
    };
    store.publish_track(&record, &records)?;
    Ok(record)
}

/// A track as the API shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TrackView {
    /// Track id, 32 hex.
    pub id: String,
    /// Title.
    pub title: String,
    /// Artist display name.
    pub artist: String,
    /// Artist id, 32 hex.
    pub artist_id: String,
    /// Album title.
    pub album: Option<String>,
    /// Album id, 32 hex.
    pub album_id: Option<String>,
    /// Genre.
    pub genre: Option<String>,
    /// Regions where it plays; empty means everywhere.
    pub markets: Vec<String>,
    /// Duration.
    pub duration_ms: u64,
    /// EBU R128 integrated loudness (absent for silence).
    pub loudness_lufs: Option<f64>,
    /// Tempo measured at ingest (absent without a clear pulse).
    pub tempo_bpm: Option<f32>,
    /// Playback gain to -14 LUFS, limited by the peak.
    pub gain_db: f64,
    /// The rendition ladder.
    pub renditions: Vec<RenditionSummary>,
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
    pub fn get(
        &self,
        store: &crate::store::Store,
        id: &str,
    ) -> Result<Option<std::sync::Arc<str>>, StoreError> {
        if let Some(view) = self.lock().get(id) {
            return Ok(Some(view.clone()));
        }
        let Some(track) = store.track(id)? else {
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

pub(crate) fn track_json(track: &TrackRecord) -> TrackView {
    TrackView {
        id: track.id.clone(),
        title: track.title.clone(),
        artist: track.artist.clone(),
        artist_id: track.artist_id.clone(),
        album: track.album.clone(),
        album_id: track.album_id.clone(),
        genre: track.genre.clone(),
        markets: track.markets.clone(),
        duration_ms: track.duration_ms,
        loudness_lufs: track
            .loudness_lufs
            .is_finite()
            .then_some(track.loudness_lufs),
        tempo_bpm: track.tempo_bpm,
        gain_db: track.gain_db,
        renditions: track.renditions.clone(),
    }
}

#[utoipa::path(post, path = "/v1/tracks", tag = "catalog", security(("bearer" = [])), request_body(content_type = "multipart/form-data", description = "`file`: the audio; `metadata`: TrackMetadata as JSON"), responses((status = 201, body = TrackView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "not_an_artist"), (status = 413, body = ErrorBody, description = "upload_too_large"), (status = 422, body = ErrorBody, description = "not_audio, unsupported_codec, decode_failed, empty_audio, audio_too_long, unsupported_format")))]
/// `POST /v1/tracks` (multipart `file` + `metadata`): ingest, then `201` with the track.
pub async fn upload_track(
    State(state): State<AppState>,
    authed: Result<Authed, ApiError>,
    mut multipart: Multipart,
) -> Result<impl IntoResponse, ApiError> {
    // A refused upload still reads (and drops) the body it was sent, up to the body limit, so
    // the client reads a clean error instead of a reset connection mid-send.
    let account = match authed {
        Ok(Authed(account)) if matches!(account.role, Role::Artist | Role::Admin) => account,
        Ok(_) => {
            drain(&mut multipart).await;
            return Err(api::forbidden(
                "not_an_artist",
                "only artist accounts upload tracks",
            ));
        }
        Err(error) => {
            drain(&mut multipart).await;
            return Err(error);
        }
    };
    // One account's uploads take at most `ingest_per_account_max` ingest slots' worth of
    // queue, so one artist cannot hold every slot.
    let Some(account_slot) = state.account_ingests.enter(&account.id) else {
        drain(&mut multipart).await;
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_ingests",
            format!(
                "at most {} uploads per account are ingested at once: retry when one finishes",
                state.config.ingest_per_account_max.max(1)
            ),
        )
        .with_retry_after(10));
    };
    let cap = state.config.upload_bytes_max;
    let parsed = read_upload(
        &mut multipart,
        cap,
        state.config.json_bytes_max,
        &state.config.data_dir,
    )
    .await;
    if parsed.is_err() {
        drain(&mut multipart).await;
    }
    let (file, extension, metadata) = parsed?;
    let file = file
        .ok_or_else(|| api::bad_request("missing_file", "a non-empty `file` field is required"))?;
    let metadata = metadata.ok_or_else(|| {
        api::bad_request("missing_metadata", "a `metadata` JSON field is required")
    })?;
    metadata.check()?;

    let slot = state
        .ingest_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    // The places travel with the ingest work: a client that hangs up mid-transcode does not
    // free them while the work still runs.
    let places = IngestPlaces {
        _slot: slot,
        _account: account_slot,
    };
    let metrics = state.metrics.clone();
    metrics.ingest_running.fetch_add(1, Ordering::Relaxed);
    let result = ingest_and_store(&state, file, extension, account.id, metadata, places).await;
    metrics.ingest_running.fetch_sub(1, Ordering::Relaxed);
    match &result {
        Ok(record) => {
            metrics.ingest_ok.fetch_add(1, Ordering::Relaxed);
            metrics
                .ingest_audio_ms
                .fetch_add(record.duration_ms, Ordering::Relaxed);
        }
        Err(error) if error.is_client_error() => {
            metrics.ingest_rejected.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            metrics.ingest_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok((StatusCode::CREATED, Json(track_json(&result?))))
}

type Upload = (Option<SpooledUpload>, Option<String>, Option<TrackMetadata>);

/// An uploaded file spooled to `DATA/uploads` (mode 0600); removed when dropped.
#[derive(Debug)]
pub struct SpooledUpload {
    file: tempfile::NamedTempFile,
}

/// Bytes of an upload held in memory at once while it is spooled to disk.
pub const UPLOAD_BUFFER_BYTES: usize = 256 * 1024;

/// The directory uploads are spooled to (emptied at start: what is there is from a crash).
pub fn uploads_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("uploads")
}

/// Reads the `file` (at most `cap` bytes, spooled to disk through a buffer of
/// [`UPLOAD_BUFFER_BYTES`]) and `metadata` fields of an upload.
async fn read_upload(
    multipart: &mut Multipart,
    cap: u64,
    metadata_cap: usize,
    data_dir: &std::path::Path,
) -> Result<Upload, ApiError> {
    use tokio::io::AsyncWriteExt;
    let (mut file, mut extension, mut metadata) = (None, None, None);
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|error| api::bad_request("invalid_multipart", error.body_text()))?
    {
        match field.name() {
            Some("file") if file.is_none() => {
                extension = field
                    .file_name()
                    .and_then(|name| std::path::Path::new(name).extension())
                    .map(|extension| extension.to_string_lossy().to_ascii_lowercase());
                let spooled = tempfile::Builder::new()
                    .prefix("upload-")
                    .tempfile_in(uploads_dir(data_dir))
                    .map_err(ApiError::internal)?;
                let handle = spooled.reopen().map_err(ApiError::internal)?;
                let mut writer = tokio::io::BufWriter::with_capacity(
                    UPLOAD_BUFFER_BYTES,
                    tokio::fs::File::from_std(handle),
                );
                let mut written = 0u64;
                while let Some(piece) = field.chunk().await.map_err(|error| {
                    ApiError::new(error.status(), "upload_failed", error.body_text())
                })? {
                    written += piece.len() as u64;
                    if written > cap {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "upload_too_large",
                            format!("uploads are at most {cap} bytes"),
                        ));
                    }
                    writer.write_all(&piece).await.map_err(ApiError::internal)?;
                }
                writer.flush().await.map_err(ApiError::internal)?;
                if written > 0 {
                    file = Some(SpooledUpload { file: spooled });
                }
            }
            Some("metadata") if metadata.is_none() => {
                let mut text = Vec::new();
                while let Some(piece) = field
                    .chunk()
                    .await
                    .map_err(|error| api::bad_request("invalid_multipart", error.body_text()))?
                {
                    if text.len() + piece.len() > metadata_cap {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "body_too_large",
                            format!("`metadata` is at most {metadata_cap} bytes"),
                        ));
                    }
                    text.extend_from_slice(&piece);
                }
                let parsed: TrackMetadata = serde_json::from_slice(&text)
                    .map_err(|error| api::bad_request("invalid_metadata", error.to_string()))?;
                metadata = Some(parsed);
            }
            _ => {
                return Err(api::bad_request(
                    "invalid_multipart",
                    "fields are one `file` and one `metadata`",
                ));
            }
        }
    }
    Ok((file, extension, metadata))
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

/// Reads and discards the rest of a multipart body (bounded by the route's body limit).
async fn drain(multipart: &mut Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

async fn ingest_and_store(
    state: &AppState,
    file: SpooledUpload,
    extension: Option<String>,
    owner: String,
    metadata: TrackMetadata,
    places: IngestPlaces,
) -> Result<TrackRecord, ApiError> {
    let limits = IngestLimits {
        duration_ms_max: state.config.audio_ms_max,
        spool_dir: state
            .config
            .ingest_spool
            .then(|| uploads_dir(&state.config.data_dir)),
    };
    let (transcoded, places) = tokio::task::spawn_blocking(move || {
        let reader = file.file.reopen().map_err(|error| {
            ingest::IngestError::Encode(format!("reading the spooled upload: {error}"))
        })?;
        let result = ingest::transcode_from(
            Box::new(reader),
            extension.as_deref(),
            rand::random::<i32>(),
            &limits,
        );
        drop(file);
        result.map(|transcoded| (transcoded, places))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|error| {
        if error.is_input_error() {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                error.code(),
                error.to_string(),
            )
        } else {
            ApiError::internal(error)
        }
    })?;
    let (store, identity, search) = (
        state.store.clone(),
        state.identity.clone(),
        state.search.clone(),
    );
    let record = tokio::task::spawn_blocking(move || {
        let record = store_track(&store, &identity, &owner, &metadata, &transcoded);
        drop(places);
        let record = record?;
        // Searchable once the upload is answered. A failing index does not fail the upload
        // (the track is published); it is rebuilt from the store at the next start.
        if let Err(error) = search.track_published(&store, &record) {
            tracing::warn!(%error, "search index not updated");
        }
        Ok::<_, StoreError>(record)
    })
    .await
    .map_err(ApiError::internal)??;
    state.recommender.catalog_changed();
    Ok(record)
}

fn check_id(id: &str) -> Result<(), ApiError> {
    id.parse::<TrackId>()
        .map(|_| ())
        .map_err(|_| api::bad_request("invalid_id", "track ids are 32 hex characters"))
}

#[utoipa::path(get, path = "/v1/tracks/{id}", tag = "catalog", params(("id" = String, Path)), responses((status = 200, body = TrackView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
/// `GET /v1/tracks/{id}`.
pub async fn get_track(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TrackView>, ApiError> {
    check_id(&id)?;
    let track = state
        .store
        .track(&id)?
        .ok_or_else(|| api::not_found("track"))?;
    Ok(Json(track_json(&track)))
}

#[utoipa::path(delete, path = "/v1/tracks/{id}", tag = "catalog", security(("bearer" = [])), params(("id" = String, Path)), responses((status = 204), (status = 403, body = ErrorBody, description = "not_owner"), (status = 404, body = ErrorBody)))]
/// `DELETE /v1/tracks/{id}`: the owning artist or an admin.
pub async fn delete_track(
    State(state): State<AppState>,
    Authed(account): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    let track = state
        .store
        .track(&id)?
        .ok_or_else(|| api::not_found("track"))?;
    if track.owner != account.id && account.role != Role::Admin {
        return Err(api::forbidden(
            "not_owner",
            "only the owning artist or an admin may delete a track",
        ));
    }
    let store = state.store.clone();
    let deleted = track.clone();
    tokio::task::spawn_blocking(move || store.delete_track(&deleted))
        .await
        .map_err(ApiError::internal)??;
    // Revoked on both chunk paths at once: no cached manifest serves it any more.
    for rendition in &track.renditions {
        if let Ok(id) = rendition.rendition_id.parse() {
            state.chunk_source.forget(&id);
        }
    }
    state.track_views.forget(&track.id);
    state.recommender.catalog_changed();
    // Gone from search by the time the delete is answered.
    let (store, search) = (state.store.clone(), state.search.clone());
    let indexed = tokio::task::spawn_blocking(move || search.track_deleted(&store, &track)).await;
    if let Ok(Err(error)) = indexed {
        tracing::warn!(%error, "search index not updated");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Paging parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    /// Items per page, 1 to 50 (default 20).
    limit: Option<usize>,
    /// Items to skip.
    offset: Option<usize>,
}

impl Page {
    /// (offset, limit), the limit clamped to 1..=50.
    pub(crate) fn bounds(&self) -> (usize, usize) {
        (
            self.offset.unwrap_or(0),
            self.limit.unwrap_or(20).clamp(1, 50),
        )
    }
}

#[utoipa::path(get, path = "/v1/artists/{id}", tag = "catalog", params(("id" = String, Path)), responses((status = 200, description = "{id, name, username}"), (status = 404, body = ErrorBody)))]
/// `GET /v1/artists/{id}`: an artist account and the name its latest upload shows.
pub async fn artist(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    id.parse::<AccountId>()
        .map_err(|_| api::bad_request("invalid_id", "artist ids are 32 hex characters"))?;
    let account = state
        .store
        .account(&id)?
        .filter(|account| matches!(account.role, Role::Artist | Role::Admin))
        .ok_or_else(|| api::not_found("artist"))?;
    let latest = state.store.artist_tracks(&id, 0, 1)?;
    let name = latest
        .first()
        .map_or(account.username.clone(), |track| track.artist.clone());
    Ok(Json(
        json!({"id": account.id, "name": name, "username": account.username}),
    ))
}

#[utoipa::path(get, path = "/v1/artists/{id}/tracks", tag = "catalog", params(("id" = String, Path), Page), responses((status = 200, description = "{items: [TrackView], offset, limit}")))]
/// `GET /v1/artists/{id}/tracks`.
pub async fn artist_tracks(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<serde_json::Value>, ApiError> {
    id.parse::<AccountId>()
        .map_err(|_| api::bad_request("invalid_id", "artist ids are 32 hex characters"))?;
    let (offset, limit) = page.bounds();
    let tracks = state.store.artist_tracks(&id, offset, limit)?;
    Ok(Json(
        json!({"items": tracks.iter().map(track_json).collect::<Vec<_>>(), "offset": offset, "limit": limit}),
    ))
}

#[utoipa::path(get, path = "/v1/albums/{id}", tag = "catalog", params(("id" = String, Path), Page), responses((status = 200, description = "{id, title, artist, artist_id, tracks: {items, offset, limit}}"), (status = 404, body = ErrorBody)))]
/// `GET /v1/albums/{id}`.
pub async fn album(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<serde_json::Value>, ApiError> {
    id.parse::<TrackId>()
        .map_err(|_| api::bad_request("invalid_id", "album ids are 32 hex characters"))?;
    let (offset, limit) = page.bounds();
    let tracks = state.store.album_tracks(&id, offset, limit)?;
    let first = tracks.first().ok_or_else(|| api::not_found("album"))?;
    Ok(Json(json!({
        "id": id,
        "title": first.album,
        "artist": first.artist,
        "artist_id": first.artist_id,
        "tracks": {"items": tracks.iter().map(track_json).collect::<Vec<_>>(), "offset": offset, "limit": limit},
    })))
}

/// Body of `POST /v1/tracks/{id}/play`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayRequest {
    /// `low`, `normal` or `high`; default normal (free) or high (premium).
    quality: Option<String>,
    /// Ask for a 30-day offline license (counts against the device limit).
    offline: Option<bool>,
    /// The client's node id (hex): the license is bound to it.
    node_id: String,
    /// Chunks from the start of the rendition to include in the answer (0 to
    /// [`OPENING_CHUNKS_MAX`], default 0): the first-chunk path. A client that asks starts
    /// decoding one round trip after pressing play instead of two (authorize, then fetch).
    opening_chunks: Option<u32>,
}

/// Most opening chunks one play authorization carries.
pub const OPENING_CHUNKS_MAX: u32 = 2;

#[utoipa::path(post, path = "/v1/tracks/{id}/play", tag = "playback", security(("bearer" = [])), params(("id" = String, Path)), request_body = PlayRequest, responses((status = 200, description = "{manifest, content_key, license, chunk_url_template, origin, tracker, expires_at, ...}"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not_in_market, tier_quality, device_limit"), (status = 404, body = ErrorBody)))]
/// `POST /v1/tracks/{id}/play`: checks market and tier, answers with the signed manifest, the
/// content key, a license bound to the client's node id, and where to fetch chunks.
pub async fn play(
    State(state): State<AppState>,
    Authed(account): Authed,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<PlayRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_id(&id)?;
    let node = api::parse_node_id(&request.node_id)?;
    let track = state
        .store
        .track(&id)?
        .ok_or_else(|| api::not_found("track"))?;
    if !track.markets.is_empty() && !track.markets.contains(&account.region) {
        return Err(api::forbidden(
            "not_in_market",
            format!("this track is not available in {}", account.region),
        ));
    }
    let default_quality = if account.tier == Tier::Premium {
        "high"
    } else {
        "normal"
    };
    let quality = api::parse_quality(request.quality.as_deref().unwrap_or(default_quality))?;
    if account.tier == Tier::Free && quality == protocol::Quality::High {
        return Err(api::forbidden(
            "tier_quality",
            "high quality needs a premium account",
        ));
    }
    let summary = track
        .renditions
        .iter()
        .find(|rendition| rendition.quality == quality.as_str())
        .ok_or_else(|| api::not_found("rendition"))?;
    let rendition = state
        .store
        .rendition(&summary.rendition_id)?
        .ok_or_else(|| api::not_found("rendition"))?;
    let offline = request.offline.unwrap_or(false);
    let now = now_ms();
    if offline {
        let admitted = state.store.admit_offline_device(
            &account.id,
            &request.node_id,
            now,
            state.config.offline_devices_max,
            now + state.config.offline_license_ttl_s * 1000,
        )?;
        if !admitted {
            return Err(api::forbidden(
                "device_limit",
                format!(
                    "offline downloads are limited to {} devices",
                    state.config.offline_devices_max
                ),
            ));
        }
    }
    let ttl_s = if offline {
        state.config.offline_license_ttl_s
    } else {
        state.config.license_ttl_s
    };
    let expires_at = now + ttl_s * 1000;
    let claims = LicenseClaims {
        version: LICENSE_VERSION,
        issuer: state.identity.node_id(),
        account: account.id.parse().map_err(ApiError::internal)?,
        node,
        region: account.region.parse().map_err(ApiError::internal)?,
        scope: LicenseScope::Play {
            renditions: vec![summary.rendition_id.parse().map_err(ApiError::internal)?],
        },
        markets: track
            .markets
            .iter()
            .map(|market| market.parse())
            .collect::<Result<_, _>>()
            .map_err(ApiError::internal)?,
        issued_at: UnixMillis(now),
        expires_at: UnixMillis(expires_at),
        offline,
    };
    let opening = request.opening_chunks.unwrap_or(0);
    if opening > OPENING_CHUNKS_MAX {
        return Err(api::bad_request(
            "bad_opening_chunks",
            format!("opening_chunks is at most {OPENING_CHUNKS_MAX}"),
        ));
    }
    let opening_chunks = if opening == 0 {
        Vec::new()
    } else {
        let signed: SignedManifest = hex::decode(&rendition.manifest)
            .map_err(ApiError::internal)
            .and_then(|bytes| codec::decode(&bytes).map_err(ApiError::internal))?;
        let manifest = signed
            .verify(&state.identity.node_id())
            .map_err(ApiError::internal)?;
        let mut chunks = Vec::new();
        for index in 0..opening.min(manifest.chunk_count()) {
            let Some(id) = manifest.chunk_id(index) else {
                break;
            };
            let chunk_store = state.store.clone();
            let id = *id;
            // The chunk cache answers hot openings from memory; files are read off the
            // async workers.
            let data = match chunk_store.chunks().cached(&id) {
                Some(data) => Some(data),
                None => tokio::task::spawn_blocking(move || chunk_store.chunks().get(&id))
                    .await
                    .map_err(ApiError::internal)?
                    .map_err(ApiError::internal)?,
            };
            match data {
                Some(data) => {
                    state
                        .metrics
                        .chunk_bytes_opening
                        .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    chunks.push(base64::engine::general_purpose::STANDARD.encode(data));
                }
                None => break,
            }
        }
        chunks
    };
    let license = LicenseToken::issue(&state.identity, &claims).map_err(ApiError::internal)?;
    let license_bytes = license.to_bytes().map_err(ApiError::internal)?;
    let url_expires_s = now / 1000 + state.config.chunk_url_ttl_s;
    let chunk_grant = api::ChunkGrant {
        rendition: summary.rendition_id.clone(),
        account: account.id.clone(),
        region: account.region.clone(),
        expires_s: url_expires_s,
    };
    Ok(Json(json!({
        "track_id": track.id,
        "quality": quality.as_str(),
        "rendition_id": summary.rendition_id,
        "manifest": rendition.manifest,
        "content_key": rendition.content_key,
        "license": hex::encode(license_bytes),
        "chunk_url_template": chunk_grant.url_template(&state.public_url, &state.url_key),
        "origin": {"node_id": state.identity.node_id().to_hex(), "quic": state.quic_addr.to_string()},
        "tracker": state.config.tracker,
        "gain_db": track.gain_db,
        "duration_ms": track.duration_ms,
        "expires_at": expires_at,
        "opening_chunks": opening_chunks,
    })))
}
