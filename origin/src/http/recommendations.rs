//! `GET /v1/recommendations` and `GET /v1/tracks/{id}/radio`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::auth::Authed;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery, bounded, check_track_id};
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use crate::recommend::{LIMIT_MAX, Pick};
use crate::recommendations::SEEDS_MAX;
use crate::store::Library;
use api::recommendations::{Radio, Recommendation, Recommendations, Seeds};
use utoipa_axum::routes;

/// Query of `GET /v1/recommendations`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecommendationParams {
    /// Comma-separated track ids.
    #[param(pattern = "^[0-9a-f]{32}(,[0-9a-f]{32}){0,4}$", nullable = false)]
    seed_tracks: Option<String>,
    /// Comma-separated artist ids.
    #[param(pattern = "^[0-9a-f]{32}(,[0-9a-f]{32}){0,4}$", nullable = false)]
    seed_artists: Option<String>,
    /// At most this many, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<usize>,
}

/// The ids of a comma-separated list as given (an empty item is an invalid id).
fn split_ids(text: Option<&str>) -> Vec<String> {
    text.into_iter()
        .flat_map(|text| text.split(','))
        .map(str::to_string)
        .collect()
}

async fn answer(state: &AppState, picks: Vec<Pick>) -> Result<Vec<Recommendation>, ApiError> {
    let mut items = Vec::with_capacity(picks.len());
    for pick in picks {
        if let Some(track) = state.store.catalog().track(&pick.track_id).await? {
            items.push(Recommendation {
                track: crate::publish::track_json(&track),
                score: pick.score,
                reason: pick.reason,
            });
        }
    }
    Ok(items)
}

#[utoipa::path(get, path = "/v1/recommendations", tag = "activity", security(("bearer" = [])), params(RecommendationParams), responses(
    (status = 200, body = Recommendations, description = "Without seeds, the listener's recent plays, liked songs and followed artists are the seeds; a new listener gets what is trending in their region."),
    (status = 400, body = ErrorBody, description = "invalid_id, too_many_seeds"),
    (status = 404, body = ErrorBody, description = "unknown_seed")))]
/// `GET /v1/recommendations`: personalised tracks, each with its reason.
pub async fn recommendations(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiQuery(params): ApiQuery<RecommendationParams>,
) -> Result<Json<Recommendations>, ApiError> {
    let mut seed_tracks = split_ids(params.seed_tracks.as_deref());
    let mut seed_artists = split_ids(params.seed_artists.as_deref());
    if seed_tracks.len() > SEEDS_MAX || seed_artists.len() > SEEDS_MAX {
        return Err(ApiError::bad_request(
            "too_many_seeds",
            format!("at most {SEEDS_MAX} track seeds and {SEEDS_MAX} artist seeds"),
        ));
    }
    for id in &seed_tracks {
        check_track_id(id)?;
        if state.store.catalog().track(id).await?.is_none() {
            return Err(super::error::not_found_code(
                "unknown_seed",
                &format!("track {id}"),
            ));
        }
    }
    for id in &seed_artists {
        if id.parse::<protocol::AccountId>().is_err() {
            return Err(ApiError::bad_request(
                "invalid_id",
                "artist ids are 32 hex characters",
            ));
        }
        if state
            .store
            .catalog()
            .artist_tracks(id, 0, 1)
            .await?
            .is_empty()
        {
            return Err(super::error::not_found_code(
                "unknown_seed",
                &format!("artist {id}"),
            ));
        }
    }
    if seed_tracks.is_empty() && seed_artists.is_empty() {
        // Personal seeds: what they played lately, then what they liked and follow.
        seed_tracks = state
            .store
            .listening()
            .recent_tracks(&account.id, 3)
            .await?;
        let (_, liked) = state
            .store
            .libraries()
            .library_page(Library::Tracks, &account.id, 0, 2)
            .await?;
        for (id, _) in liked {
            if seed_tracks.len() < 4 && !seed_tracks.contains(&id) {
                seed_tracks.push(id);
            }
        }
        let (_, followed) = state
            .store
            .libraries()
            .library_page(Library::Artists, &account.id, 0, 1)
            .await?;
        seed_artists = followed.into_iter().map(|(id, _)| id).collect();
    }
    let limit = bounded("limit", params.limit, 20, 1..=LIMIT_MAX)?;
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
    let items = answer(&state, picks).await?;
    Ok(Json(Recommendations {
        seeds: Seeds {
            tracks: seed_tracks,
            artists: seed_artists,
        },
        items,
    }))
}

/// Query of `GET /v1/tracks/{id}/radio`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RadioParams {
    /// At most this many, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/tracks/{id}/radio", tag = "activity", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$"), RadioParams), responses(
    (status = 200, body = Radio, description = "A station from one track; the same artist never twice in a row while others are left"),
    (status = 400, body = ErrorBody, description = "invalid_id"),
    (status = 404, body = ErrorBody, description = "not_found")))]
/// `GET /v1/tracks/{id}/radio`: a station that starts from a track.
pub async fn radio(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<RadioParams>,
) -> Result<Json<Radio>, ApiError> {
    check_track_id(&id)?;
    if state.store.catalog().track(&id).await?.is_none() {
        return Err(ApiError::not_found("track"));
    }
    let limit = bounded("limit", params.limit, 50, 1..=LIMIT_MAX)?;
    let picks = state
        .recommender
        .model()
        .radio(&id, Some(&account.region), limit);
    let items = answer(&state, picks).await?;
    Ok(Json(Radio { seed: id, items }))
}

/// Recommendations and radio.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Ip, routes!(recommendations))
        .add(Limit::Ip, routes!(radio))
        .into()
}
