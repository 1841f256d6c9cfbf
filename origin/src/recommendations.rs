//! `GET /v1/recommendations` and `GET /v1/tracks/{id}/radio`, served from the in-memory
//! [`Model`] that [`refresh`] rebuilds in the background.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::json;

use crate::api::{self, ApiError, AppState, Authed, ErrorBody, now_ms};
use crate::recommend::{HISTORY_DAYS, Inputs, LIMIT_MAX, Model, Pick, STREAMS_MAX};
use crate::store::{Library, Store, StoreError};

/// Seeds (tracks and artists together) one request may give.
pub const SEEDS_MAX: usize = 5;

/// The current model, swapped whole by the background job.
#[derive(Debug, Default)]
pub struct Recommender {
    model: RwLock<Arc<Model>>,
    /// The catalog changed since the last build.
    dirty: AtomicBool,
}

impl Recommender {
    /// The model requests read now.
    pub fn model(&self) -> Arc<Model> {
        self.model
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Notes a catalog change (a new track should be recommendable soon).
    pub fn catalog_changed(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    fn replace(&self, model: Model) {
        *self
            .model
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(model);
    }
}

/// Reads what a build needs from `store`: the catalog with play counts, the newest streams
/// of the last [`HISTORY_DAYS`] days (at most [`STREAMS_MAX`]) and every playlist.
pub fn inputs(store: &Store, now_ms: u64) -> Result<Inputs, StoreError> {
    let mut inputs = Inputs::default();
    for track in store.all_tracks() {
        let track = track?;
        let plays = store.play_count(&track.id)?;
        inputs.tracks.push((track, plays));
    }
    let from = now_ms.saturating_sub(HISTORY_DAYS * 24 * 3600 * 1000);
    for stream in store.streams_newest_first(from).take(STREAMS_MAX) {
        inputs.streams.push(stream?);
    }
    for playlist in store.all_playlists() {
        inputs.playlists.push(playlist?);
    }
    Ok(inputs)
}

/// Builds a model now and serves it.
pub fn rebuild(store: &Store, recommender: &Recommender) -> Result<(), StoreError> {
    let started = Instant::now();
    recommender.dirty.store(false, Ordering::Relaxed);
    let model = Model::build(inputs(store, now_ms())?);
    tracing::info!(
        tracks = model.len(),
        streams = model.streams,
        pairs = model.pairs,
        ms = started.elapsed().as_millis() as u64,
        "recommendation model built"
    );
    recommender.replace(model);
    Ok(())
}

/// The background job: builds at once, then every `refresh` and, after a catalog change,
/// within a minute (or `refresh`, if shorter). A zero `refresh` turns the job off (the
/// model stays empty: benchmarks that measure something else, or an origin whose
/// recommendations are served by another machine).
pub async fn refresh(store: Arc<Store>, recommender: Arc<Recommender>, refresh: Duration) {
    if refresh.is_zero() {
        return;
    }
    let refresh = refresh.max(Duration::from_millis(100));
    let after_change = refresh.min(Duration::from_secs(60));
    let mut built: Option<Instant> = None;
    loop {
        let due = match built {
            None => true,
            Some(at) => {
                at.elapsed() >= refresh
                    || (recommender.dirty.load(Ordering::Relaxed) && at.elapsed() >= after_change)
            }
        };
        if due {
            let (store, recommender) = (store.clone(), recommender.clone());
            match tokio::task::spawn_blocking(move || rebuild(&store, &recommender)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "building recommendations failed"),
                Err(error) => tracing::warn!(%error, "recommendation job panicked"),
            }
            built = Some(Instant::now());
        }
        tokio::time::sleep(after_change.min(Duration::from_secs(1))).await;
    }
}

/// Query of `GET /v1/recommendations`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RecommendationParams {
    /// Comma-separated track ids.
    seed_tracks: Option<String>,
    /// Comma-separated artist ids.
    seed_artists: Option<String>,
    /// At most this many, 1 to 100 (default 20).
    limit: Option<usize>,
}

fn split_ids(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

fn answer(state: &AppState, picks: Vec<Pick>) -> Result<Vec<serde_json::Value>, ApiError> {
    let mut items = Vec::with_capacity(picks.len());
    for pick in picks {
        if let Some(track) = state.store.track(&pick.track_id)? {
            items.push(json!({
                "track": crate::publish::track_json(&track),
                "score": pick.score,
                "reason": pick.reason,
            }));
        }
    }
    Ok(items)
}

#[utoipa::path(get, path = "/v1/recommendations", tag = "activity", security(("bearer" = [])), params(RecommendationParams), responses(
    (status = 200, description = "{seeds: {tracks, artists}, items: [{track, score, reason: {type, seed_track?, seed_artist?, text}}]}. Without seeds, the listener's recent plays, liked songs and followed artists are the seeds; a new listener gets what is trending in their region."),
    (status = 400, body = ErrorBody, description = "invalid_id, too_many_seeds"),
    (status = 404, body = ErrorBody, description = "unknown_seed")))]
/// `GET /v1/recommendations`: personalised tracks, each with its reason.
pub async fn recommendations(
    State(state): State<AppState>,
    Authed(account): Authed,
    Query(params): Query<RecommendationParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut seed_tracks = split_ids(params.seed_tracks.as_deref());
    let mut seed_artists = split_ids(params.seed_artists.as_deref());
    if seed_tracks.len() + seed_artists.len() > SEEDS_MAX {
        return Err(api::bad_request(
            "too_many_seeds",
            format!("at most {SEEDS_MAX} seeds, tracks and artists together"),
        ));
    }
    for id in &seed_tracks {
        crate::library::track_id(id)?;
        if state.store.track(id)?.is_none() {
            return Err(api::not_found_code("unknown_seed", &format!("track {id}")));
        }
    }
    for id in &seed_artists {
        if id.parse::<protocol::AccountId>().is_err() {
            return Err(api::bad_request(
                "invalid_id",
                "artist ids are 32 hex characters",
            ));
        }
        if state.store.artist_tracks(id, 0, 1)?.is_empty() {
            return Err(api::not_found_code("unknown_seed", &format!("artist {id}")));
        }
    }
    if seed_tracks.is_empty() && seed_artists.is_empty() {
        // Personal seeds: what they played lately, then what they liked and follow.
        seed_tracks = state.store.recent_tracks(&account.id, 3)?;
        let (_, liked) = state
            .store
            .library_page(Library::Tracks, &account.id, 0, 2)?;
        for (id, _) in liked {
            if seed_tracks.len() < 4 && !seed_tracks.contains(&id) {
                seed_tracks.push(id);
            }
        }
        let (_, followed) = state
            .store
            .library_page(Library::Artists, &account.id, 0, 1)?;
        seed_artists = followed.into_iter().map(|(id, _)| id).collect();
    }
    let limit = params.limit.unwrap_or(20).clamp(1, LIMIT_MAX);
    let trending: Vec<String> = state
        .activity
        .top(Some(&account.region), None, now_ms(), 50)
        .into_iter()
        .map(|entry| entry.track_id)
        .collect();
    let picks = state.recommender.model().recommend(
        &seed_tracks,
        &seed_artists,
        Some(&account.region),
        &trending,
        limit,
    );
    let items = answer(&state, picks)?;
    Ok(Json(json!({
        "seeds": {"tracks": seed_tracks, "artists": seed_artists},
        "items": items,
    })))
}

/// Query of `GET /v1/tracks/{id}/radio`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RadioParams {
    /// At most this many, 1 to 100 (default 50).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/tracks/{id}/radio", tag = "activity", security(("bearer" = [])), params(("id" = String, Path), RadioParams), responses(
    (status = 200, description = "{seed, items: [{track, score, reason}]}: a station from one track; the same artist never twice in a row while others are left"),
    (status = 400, body = ErrorBody, description = "invalid_id"),
    (status = 404, body = ErrorBody, description = "not_found")))]
/// `GET /v1/tracks/{id}/radio`: a station that starts from a track.
pub async fn radio(
    State(state): State<AppState>,
    Authed(account): Authed,
    Path(id): Path<String>,
    Query(params): Query<RadioParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    crate::library::track_id(&id)?;
    if state.store.track(&id)?.is_none() {
        return Err(api::not_found("track"));
    }
    let limit = params.limit.unwrap_or(50).clamp(1, LIMIT_MAX);
    let picks = state
        .recommender
        .model()
        .radio(&id, Some(&account.region), limit);
    let items = answer(&state, picks)?;
    Ok(Json(json!({"seed": id, "items": items})))
}
