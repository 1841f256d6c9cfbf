//! The catalog: uploads, track, artist and album reads, deletion.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::auth::{AccountSession, Authed};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery, Page, check_artist_id, check_track_id, is_blank};
use super::state::AppState;
use super::{Limit, Routes};
use crate::ingest::{self, IngestLimits};
use crate::publish::{
    IngestPlaces, SpooledUpload, TrackMetadata, TrackView, UPLOAD_BUFFER_BYTES, store_track,
    track_json, uploads_dir,
};
use crate::search::Popularity;
use crate::store::{Role, TrackRecord};
use crate::tags::TrackInfo;
use api::catalog::{AlbumView, ArtistView, LyricsView, TrackPage};
use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

/// Checks an upload's metadata: lengths, numbers, identifiers and markets.
fn check_metadata(metadata: &TrackMetadata) -> Result<(), ApiError> {
    // (A value that is nothing once control characters go is left for the tags to fill:
    // the published schema cannot tell such text apart, so refusing it would break it.)
    let text_ok = |text: &Option<String>| {
        text.as_deref()
            .is_none_or(|text| !is_blank(text) && text.chars().count() <= 200)
    };
    if !text_ok(&metadata.title) || !text_ok(&metadata.artist) {
        return Err(ApiError::bad_request(
            "invalid_metadata",
            "title and artist are 1 to 200 characters",
        ));
    }
    if !text_ok(&metadata.album) || !text_ok(&metadata.genre) || !text_ok(&metadata.album_artist) {
        return Err(ApiError::bad_request(
            "invalid_metadata",
            "album, album artist and genre are 1 to 200 characters",
        ));
    }
    let in_range = |value: Option<u32>, max: u32| value.is_none_or(|n| (1..=max).contains(&n));
    if !in_range(metadata.track_number, 9999)
        || !in_range(metadata.disc_number, 999)
        || !in_range(metadata.year.map(u32::from), 9999)
    {
        return Err(ApiError::bad_request(
            "invalid_metadata",
            "track_number is 1 to 9999, disc_number 1 to 999, year 1 to 9999",
        ));
    }
    if metadata
        .isrc
        .as_deref()
        .is_some_and(|code| crate::tags::isrc(code).is_none())
    {
        return Err(ApiError::bad_request(
            "invalid_metadata",
            "an ISRC is 12 characters: country, registrant, year, number (e.g. USRC17607839)",
        ));
    }
    if metadata
        .lyrics
        .as_ref()
        .is_some_and(|lyrics| lyrics.chars().count() > crate::tags::LYRICS_BYTES_MAX)
    {
        return Err(ApiError::bad_request(
            "invalid_metadata",
            format!(
                "lyrics are at most {} characters",
                crate::tags::LYRICS_BYTES_MAX
            ),
        ));
    }
    for market in metadata.markets.iter().flatten() {
        if market.parse::<protocol::Region>().is_err() {
            return Err(ApiError::bad_request(
                "invalid_market",
                format!("{market:?} is not an ISO 3166-1 alpha-2 code"),
            ));
        }
    }
    if metadata
        .markets
        .as_ref()
        .is_some_and(|markets| markets.len() > 250)
    {
        return Err(ApiError::bad_request(
            "invalid_market",
            "at most 250 markets",
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/tracks", tag = "catalog", security(("bearer" = [])), request_body(content = api::catalog::UploadForm, content_type = "multipart/form-data", description = "`file`: the audio; `metadata`: TrackMetadata as JSON"), responses((status = 201, body = TrackView, links(("GetTrack" = (operation_id = "get_track", parameters(("id" = "$response.body#/id")))), ("Play" = (operation_id = "play", parameters(("id" = "$response.body#/id")))), ("Radio" = (operation_id = "radio", parameters(("id" = "$response.body#/id")))), ("Like" = (operation_id = "like_track", parameters(("id" = "$response.body#/id")))), ("Artist" = (operation_id = "artist", parameters(("id" = "$response.body#/artist_id")))), ("ArtistTracks" = (operation_id = "artist_tracks", parameters(("id" = "$response.body#/artist_id")))), ("Follow" = (operation_id = "follow_artist", parameters(("id" = "$response.body#/artist_id")))), ("DeleteTrack" = (operation_id = "delete_track", parameters(("id" = "$response.body#/id")))))), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "not_an_artist"), (status = 413, body = ErrorBody, description = "upload_too_large"), (status = 422, body = ErrorBody, description = "not_audio, unsupported_codec, decode_failed, empty_audio, audio_too_long, unsupported_format")))]
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
            return Err(ApiError::forbidden(
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
    // The metadata part may carry lyrics (32 Ki characters, up to 6 bytes each in JSON).
    let metadata_cap = state.config.json_bytes_max + 6 * crate::tags::LYRICS_BYTES_MAX;
    let parsed = read_upload(&mut multipart, cap, metadata_cap, &state.config.data_dir).await;
    if parsed.is_err() {
        drain(&mut multipart).await;
    }
    let Upload {
        file,
        file_name,
        extension,
        metadata,
    } = parsed?;
    let file =
        file.ok_or_else(|| ApiError::bad_request("missing_file", "a `file` field is required"))?;
    if let Some(metadata) = &metadata {
        check_metadata(metadata)?;
    }
    let upload = Ingest {
        file,
        file_name,
        extension,
        owner: account.id,
        owner_name: account.username,
        metadata,
    };

    let slot = state
        .ingest_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    // The places travel with the ingest work: a client that hangs up mid-transcode does not
    // free them while the work still runs.
    let places = IngestPlaces::new(slot, account_slot);
    let metrics = state.metrics.clone();
    metrics.ingest_running.fetch_add(1, Ordering::Relaxed);
    let result = ingest_and_store(&state, upload, places).await;
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

/// The parts of an upload, as read.
struct Upload {
    file: Option<SpooledUpload>,
    file_name: Option<String>,
    extension: Option<String>,
    metadata: Option<TrackMetadata>,
}

/// An upload ready to ingest.
struct Ingest {
    file: SpooledUpload,
    file_name: Option<String>,
    extension: Option<String>,
    owner: String,
    owner_name: String,
    metadata: Option<TrackMetadata>,
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
    let (mut file, mut file_name, mut extension, mut metadata) = (None, None, None, None);
    let mut metadata_seen = false;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|error| ApiError::bad_request("invalid_multipart", error.body_text()))?
    {
        match field.name() {
            Some("file") if file.is_none() => {
                file_name = field.file_name().map(str::to_string);
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
                if written == 0 {
                    // Present but empty: not audio (a missing part is `missing_file`).
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "not_audio",
                        "the file is empty",
                    ));
                }
                file = Some(SpooledUpload { file: spooled });
            }
            Some("metadata") if !metadata_seen => {
                metadata_seen = true;
                let mut text = Vec::new();
                while let Some(piece) = field.chunk().await.map_err(|error| {
                    ApiError::bad_request("invalid_multipart", error.body_text())
                })? {
                    if text.len() + piece.len() > metadata_cap {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "body_too_large",
                            format!("`metadata` is at most {metadata_cap} bytes"),
                        ));
                    }
                    text.extend_from_slice(&piece);
                }
                // `null` is no metadata, as leaving the part out is.
                let parsed: Option<TrackMetadata> =
                    serde_json::from_slice(&text).map_err(|error| {
                        ApiError::bad_request("invalid_metadata", error.to_string())
                    })?;
                metadata = parsed;
            }
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_multipart",
                    "fields are one `file` and one `metadata`",
                ));
            }
        }
    }
    Ok(Upload {
        file,
        file_name,
        extension,
        metadata,
    })
}

/// Reads and discards the rest of a multipart body (bounded by the route's body limit).
async fn drain(multipart: &mut Multipart) {
    while let Ok(Some(mut field)) = multipart.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

async fn ingest_and_store(
    state: &AppState,
    upload: Ingest,
    places: IngestPlaces,
) -> Result<TrackRecord, ApiError> {
    let Ingest {
        file,
        file_name,
        extension,
        owner,
        owner_name,
        metadata,
    } = upload;
    let limits = IngestLimits {
        duration_ms_max: state.config.audio_ms_max,
        spool_dir: state
            .config
            .ingest_spool
            .then(|| uploads_dir(&state.config.data_dir)),
    };
    let (transcoded, info, places) = tokio::task::spawn_blocking(move || {
        let spooled = &file.file;
        let tags = crate::tags::read(spooled.path());
        let mut info =
            TrackInfo::resolve(tags, metadata.as_ref(), file_name.as_deref(), &owner_name);
        info.prepare_artwork();
        let result = ingest::transcode_from(
            &mut || {
                let reader = spooled.reopen()?;
                Ok(Box::new(reader))
            },
            extension.as_deref(),
            rand::random::<i32>(),
            &limits,
        );
        drop(file);
        result.map(|transcoded| (transcoded, info, places))
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
    let record = store_track(
        &state.store,
        &state.identity,
        &owner,
        &info,
        Arc::new(transcoded),
    )
    .await;
    drop(places);
    let record = record?;
    // Searchable once the upload is answered. A failing index does not fail the upload (the
    // track is published); it is rebuilt from the store at the next start.
    let indexed = match Popularity::of(&state.store, &record).await {
        Ok(popularity) => {
            let (search, track, lyrics) = (state.search.clone(), record.clone(), info.lyrics);
            tokio::task::spawn_blocking(move || {
                search.track_published(&track, lyrics.as_ref(), &popularity)
            })
            .await
            .map_err(|join| join.to_string())
            .and_then(|indexed| indexed.map_err(|error| error.to_string()))
        }
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = indexed {
        tracing::warn!(%error, "search index not updated");
    }
    state.recommender.catalog_changed();
    Ok(record)
}

#[utoipa::path(get, path = "/v1/tracks/{id}", tag = "catalog", params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), responses((status = 200, body = TrackView, links(("Play" = (operation_id = "play", parameters(("id" = "$response.body#/id")))), ("Radio" = (operation_id = "radio", parameters(("id" = "$response.body#/id")))), ("Like" = (operation_id = "like_track", parameters(("id" = "$response.body#/id")))), ("Artist" = (operation_id = "artist", parameters(("id" = "$response.body#/artist_id")))), ("ArtistTracks" = (operation_id = "artist_tracks", parameters(("id" = "$response.body#/artist_id")))), ("Follow" = (operation_id = "follow_artist", parameters(("id" = "$response.body#/artist_id")))))), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
/// `GET /v1/tracks/{id}`.
pub async fn get_track(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TrackView>, ApiError> {
    check_track_id(&id)?;
    let track = state
        .store
        .catalog()
        .track(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("track"))?;
    Ok(Json(track_json(&track)))
}

#[utoipa::path(get, path = "/v1/tracks/{id}/lyrics", tag = "catalog", params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), responses((status = 200, body = LyricsView, description = "Synced lines carry `start_ms`"), (status = 400, body = ErrorBody, description = "invalid_id"), (status = 404, body = ErrorBody, description = "not_found: no such track, or it has no lyrics")))]
/// `GET /v1/tracks/{id}/lyrics`: the lines, timed when the lyrics are synced.
pub async fn track_lyrics(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<LyricsView>, ApiError> {
    check_track_id(&id)?;
    let track = state
        .store
        .catalog()
        .track(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("track"))?;
    let reference = track
        .details
        .lyrics
        .as_ref()
        .ok_or_else(|| ApiError::not_found("lyrics"))?;
    let lyrics = state
        .store
        .lyrics(reference)
        .await?
        .ok_or_else(|| ApiError::not_found("lyrics"))?;
    Ok(Json(LyricsView {
        track_id: track.id,
        title: track.title,
        artist: track.artist,
        synced: lyrics.synced,
        lines: lyrics.lines,
    }))
}

#[utoipa::path(delete, path = "/v1/tracks/{id}", tag = "catalog", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), responses((status = 204), (status = 403, body = ErrorBody, description = "not_owner; not_allowed: an app's token (app password or API key) deletes nothing"), (status = 404, body = ErrorBody)))]
/// `DELETE /v1/tracks/{id}`: the owning artist or an admin, with the account password's
/// session (an app's token only listens).
pub async fn delete_track(
    State(state): State<AppState>,
    AccountSession(account): AccountSession,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    check_track_id(&id)?;
    let track = state
        .store
        .catalog()
        .track(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("track"))?;
    if track.owner != account.id && account.role != Role::Admin {
        return Err(ApiError::forbidden(
            "not_owner",
            "only the owning artist or an admin may delete a track",
        ));
    }
    state.store.delete_track(&track).await?;
    // Revoked on both chunk paths at once: no cached manifest serves it any more.
    for rendition in &track.renditions {
        if let Ok(id) = rendition.rendition_id.parse() {
            state.chunk_source.forget(&id);
        }
    }
    state.track_views.forget(&track.id);
    state.recommender.catalog_changed();
    // Gone from search by the time the delete is answered.
    let catalog = state.store.catalog();
    let artist_gone = catalog
        .artist_tracks(&track.artist_id, 0, 1)
        .await?
        .is_empty();
    let album_gone = match &track.album_id {
        Some(album) => catalog.album_tracks(album, 0, 1).await?.is_empty(),
        None => false,
    };
    // What is left of its album and artist is recounted.
    let mut survivors = Vec::new();
    for survivor in
        crate::search::survivors(&state.store, &track.artist_id, track.album_id.as_deref()).await?
    {
        let popularity = Popularity::of(&state.store, &survivor).await?;
        survivors.push((survivor, popularity));
    }
    let search = state.search.clone();
    let indexed = tokio::task::spawn_blocking(move || {
        search.track_deleted(&track, artist_gone, album_gone)?;
        search.regroup(&survivors)
    })
    .await;
    if let Ok(Err(error)) = indexed {
        tracing::warn!(%error, "search index not updated");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/artists/{id}", tag = "catalog", params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "Artist (account) id")), responses((status = 200, body = ArtistView), (status = 400, body = ErrorBody, description = "invalid_id"), (status = 404, body = ErrorBody, description = "not_found")))]
/// `GET /v1/artists/{id}`: an artist account and the name its latest upload shows.
pub async fn artist(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ArtistView>, ApiError> {
    check_artist_id(&id)?;
    let account = state
        .store
        .accounts()
        .account(&id)
        .await?
        .filter(|account| matches!(account.role, Role::Artist | Role::Admin))
        .ok_or_else(|| ApiError::not_found("artist"))?;
    let latest = state.store.catalog().artist_tracks(&id, 0, 1).await?;
    let name = latest
        .first()
        .map_or(account.username.clone(), |track| track.artist.clone());
    let image = state
        .store
        .catalog()
        .image_for(&format!("artist/{id}"))
        .await?
        .map(|set| crate::publish::artwork_view(&set));
    Ok(Json(ArtistView {
        id: account.id,
        name,
        username: account.username,
        image,
    }))
}

#[utoipa::path(get, path = "/v1/artists/{id}/tracks", tag = "catalog", params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "Artist (account) id"), Page), responses((status = 200, body = TrackPage, description = "Newest first; an artist without tracks has an empty page", links(("GetTrack" = (operation_id = "get_track", parameters(("id" = "$response.body#/items/0/id")))), ("Play" = (operation_id = "play", parameters(("id" = "$response.body#/items/0/id")))))), (status = 400, body = ErrorBody, description = "invalid_id")))]
/// `GET /v1/artists/{id}/tracks`.
pub async fn artist_tracks(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<TrackPage>, ApiError> {
    check_artist_id(&id)?;
    let (offset, limit) = page.bounds()?;
    let tracks = state
        .store
        .catalog()
        .artist_tracks(&id, offset, limit)
        .await?;
    Ok(Json(TrackPage {
        items: tracks.iter().map(track_json).collect(),
        offset,
        limit,
    }))
}

#[utoipa::path(get, path = "/v1/albums/{id}", tag = "catalog", params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "Album id"), Page), responses((status = 200, body = AlbumView), (status = 400, body = ErrorBody, description = "invalid_id"), (status = 404, body = ErrorBody, description = "not_found")))]
/// `GET /v1/albums/{id}`.
pub async fn album(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<AlbumView>, ApiError> {
    check_track_id(&id)
        .map_err(|_| ApiError::bad_request("invalid_id", "album ids are 32 hex characters"))?;
    let (offset, limit) = page.bounds()?;
    let tracks = state
        .store
        .catalog()
        .album_tracks(&id, offset, limit)
        .await?;
    let first = tracks.first().ok_or_else(|| ApiError::not_found("album"))?;
    Ok(Json(AlbumView {
        title: first.album.clone(),
        artist: first
            .details
            .album_artist
            .clone()
            .unwrap_or_else(|| first.artist.clone()),
        artist_id: first.artist_id.clone(),
        year: first.details.year,
        artwork: album_artwork(&state, &id, &tracks, offset).await?,
        id,
        tracks: TrackPage {
            items: tracks.iter().map(track_json).collect(),
            offset,
            limit,
        },
    }))
}

/// An album's cover: the one its artist uploaded, else the first of its tracks (by disc and
/// number) with artwork, looked for in the page at hand when it is the first, then in the
/// album's first 50 tracks.
async fn album_artwork(
    state: &AppState,
    id: &str,
    page: &[TrackRecord],
    offset: usize,
) -> Result<Option<api::catalog::Artwork>, ApiError> {
    if let Some(uploaded) = state
        .store
        .catalog()
        .image_for(&format!("album/{id}"))
        .await?
    {
        return Ok(Some(crate::publish::artwork_view(&uploaded)));
    }
    if offset == 0
        && let Some(artwork) = page.iter().find_map(|track| track.details.artwork.as_ref())
    {
        return Ok(Some(crate::publish::artwork_view(artwork)));
    }
    let first_tracks = state.store.catalog().album_tracks(id, 0, 50).await?;
    Ok(first_tracks
        .iter()
        .find_map(|track| track.details.artwork.as_ref())
        .map(crate::publish::artwork_view))
}

#[utoipa::path(get, path = "/v1/images/{id}", tag = "catalog", params(("id" = String, Path, pattern = "^[0-9a-f]{64}$", description = "BLAKE3 of the stored picture")), responses((status = 200, content_type = "image/jpeg", description = "The JPEG; `Cache-Control: public, max-age=31536000, immutable`, `ETag` the id"), (status = 304, description = "`If-None-Match` named it"), (status = 400, body = ErrorBody, description = "invalid_id"), (status = 404, body = ErrorBody, description = "not_found")))]
/// `GET /v1/images/{id}`: a picture, named by its content, so cacheable forever.
pub async fn image(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::header;
    let blob: protocol::ChunkId = id
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_id", "image ids are 64 hex characters"))?;
    let etag = format!("\"{}\"", blob.to_hex());
    let cache = "public, max-age=31536000, immutable";
    // Weak comparison, as `If-None-Match` asks.
    let named = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.split(',').any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
            })
        });
    let bytes = state
        .store
        .image(&blob)
        .await?
        .ok_or_else(|| ApiError::not_found("image"))?;
    if named {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache.into())],
        )
            .into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache.into()),
        ],
        bytes,
    )
        .into_response())
}

/// Who may change `key`'s picture: for `album/{id}`, the artist whose tracks make the album;
/// for `artist/{id}`, that artist; admins for both. `404` when there is no such album or
/// artist.
async fn may_picture(
    state: &AppState,
    account: &crate::store::Account,
    kind: &str,
    id: &str,
) -> Result<(), ApiError> {
    let owner = match kind {
        "album" => {
            check_track_id(id).map_err(|_| {
                ApiError::bad_request("invalid_id", "album ids are 32 hex characters")
            })?;
            let first = state.store.catalog().album_tracks(id, 0, 1).await?;
            first
                .first()
                .ok_or_else(|| ApiError::not_found("album"))?
                .owner
                .clone()
        }
        _ => {
            check_artist_id(id)?;
            state
                .store
                .accounts()
                .account(id)
                .await?
                .filter(|artist| matches!(artist.role, Role::Artist | Role::Admin))
                .ok_or_else(|| ApiError::not_found("artist"))?
                .id
        }
    };
    let artist_or_admin = matches!(account.role, Role::Artist | Role::Admin);
    if !artist_or_admin || (owner != account.id && account.role != Role::Admin) {
        return Err(ApiError::forbidden(
            "not_owner",
            format!("only the artist (or an admin) changes this {kind}'s picture"),
        ));
    }
    Ok(())
}

/// Decodes and stores an uploaded picture for `kind`/`id` (one ingest slot while it decodes).
async fn put_picture(
    state: &AppState,
    account: &crate::store::Account,
    kind: &'static str,
    id: &str,
    body: axum::body::Bytes,
) -> Result<Json<api::catalog::Artwork>, ApiError> {
    may_picture(state, account, kind, id).await?;
    // Decoding is ingest work: it takes the account's place and a slot, both held by the
    // decoding itself, so a client that hangs up does not free them early.
    let Some(place) = state.account_ingests.enter(&account.id) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_ingests",
            "this account's uploads are being ingested: retry when one finishes",
        )
        .with_retry_after(10));
    };
    let slot = state
        .ingest_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    let places = IngestPlaces::new(slot, place);
    let sizes = tokio::task::spawn_blocking(move || {
        let sizes = crate::artwork::prepare(&body);
        drop(places);
        sizes
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_picture",
            error.to_string(),
        )
    })?;
    let set = state.store.put_images(&sizes).await?;
    state
        .store
        .catalog()
        .set_image_for(&format!("{kind}/{id}"), Some(&set))
        .await?;
    Ok(Json(crate::publish::artwork_view(&set)))
}

async fn delete_picture(
    state: &AppState,
    account: &crate::store::Account,
    kind: &'static str,
    id: &str,
) -> Result<StatusCode, ApiError> {
    may_picture(state, account, kind, id).await?;
    state
        .store
        .catalog()
        .set_image_for(&format!("{kind}/{id}"), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/v1/albums/{id}/image", tag = "catalog", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "Album id")), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A JPEG, PNG, WebP, GIF or BMP (told by its content, whatever the Content-Type) of at most 16 MiB, 8192 pixels a side and 4096 x 4096 pixels in all"), responses((status = 200, body = api::catalog::Artwork, description = "The sizes made; the album shows them from now on"), (status = 429, body = ErrorBody, description = "too_many_ingests"), (status = 403, body = ErrorBody, description = "not_owner"), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody, description = "body_too_large"), (status = 422, body = ErrorBody, description = "not_a_picture")))]
/// `PUT /v1/albums/{id}/image`: the album's artist sets its cover (over the files' own).
pub async fn put_album_image(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<api::catalog::Artwork>, ApiError> {
    put_picture(&state, &account, "album", &id, body).await
}

#[utoipa::path(delete, path = "/v1/albums/{id}/image", tag = "catalog", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "Album id")), responses((status = 204, description = "The album shows its files' cover again"), (status = 403, body = ErrorBody, description = "not_owner"), (status = 404, body = ErrorBody)))]
/// `DELETE /v1/albums/{id}/image`.
pub async fn delete_album_image(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    delete_picture(&state, &account, "album", &id).await
}

#[utoipa::path(put, path = "/v1/artists/{id}/image", tag = "catalog", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "Artist (account) id")), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A JPEG, PNG, WebP, GIF or BMP (told by its content, whatever the Content-Type) of at most 16 MiB, 8192 pixels a side and 4096 x 4096 pixels in all"), responses((status = 200, body = api::catalog::Artwork), (status = 429, body = ErrorBody, description = "too_many_ingests"), (status = 403, body = ErrorBody, description = "not_owner"), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody, description = "body_too_large"), (status = 422, body = ErrorBody, description = "not_a_picture")))]
/// `PUT /v1/artists/{id}/image`: the artist sets their picture.
pub async fn put_artist_image(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<api::catalog::Artwork>, ApiError> {
    put_picture(&state, &account, "artist", &id, body).await
}

#[utoipa::path(delete, path = "/v1/artists/{id}/image", tag = "catalog", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "Artist (account) id")), responses((status = 204), (status = 403, body = ErrorBody, description = "not_owner"), (status = 404, body = ErrorBody)))]
/// `DELETE /v1/artists/{id}/image`.
pub async fn delete_artist_image(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    delete_picture(&state, &account, "artist", &id).await
}

/// Uploads and catalog reads.
pub fn router(limits: super::RouteLimits) -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(
            Limit::Ip,
            routes!(upload_track).layer(DefaultBodyLimit::max(limits.upload_body_bytes)),
        )
        .add(Limit::Ip, routes!(get_track, delete_track))
        .add(Limit::Ip, routes!(track_lyrics))
        .add(Limit::Exempt, routes!(image))
        .add(
            Limit::Ip,
            routes!(put_album_image, delete_album_image)
                .layer(DefaultBodyLimit::max(crate::artwork::SOURCE_BYTES_MAX)),
        )
        .add(
            Limit::Ip,
            routes!(put_artist_image, delete_artist_image)
                .layer(DefaultBodyLimit::max(crate::artwork::SOURCE_BYTES_MAX)),
        )
        .add(Limit::Ip, routes!(artist))
        .add(Limit::Ip, routes!(artist_tracks))
        .add(Limit::Ip, routes!(album))
        .into()
}
