//! A listener's library: liked songs (`/v1/me/tracks`) and followed artists
//! (`/v1/me/following/artists`). Adding is idempotent (the first time is kept), removing
//! something absent is not an error, lists are paged most recent first, and each library
//! holds at most [`LIBRARY_ITEMS_MAX`] items.

use super::auth::Authed;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery, Page, check_artist_id, check_track_id};
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use api::library::{
    Followed, FollowedArtist, FollowedArtists, Liked, LikedTrack, LikedTracks, Removed,
};
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;

use crate::publish::track_json;
use crate::store::{LIBRARY_ITEMS_MAX, Library, LibraryAdd, Role};

fn added(result: LibraryAdd, what: &str) -> Result<u64, ApiError> {
    match result {
        LibraryAdd::Added(at) | LibraryAdd::Already(at) => Ok(at),
        LibraryAdd::Full => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "library_full",
            format!("at most {LIBRARY_ITEMS_MAX} {what}"),
        )),
    }
}

/// Checks the form of a track id (`400 invalid_id`).

#[utoipa::path(put, path = "/v1/me/tracks/{id}", tag = "library", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), responses((status = 200, body = Liked, description = "Liked (again: unchanged)"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "not_found: no such track"), (status = 409, body = ErrorBody, description = "library_full")))]
/// `PUT /v1/me/tracks/{id}`: like a song.
pub async fn like_track(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Liked>, ApiError> {
    check_track_id(&id)?;
    state
        .store
        .catalog()
        .track(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("track"))?;
    let result = state
        .store
        .libraries()
        .library_add(
            Library::Tracks,
            &account.id,
            &id,
            now_ms(),
            crate::store::LIBRARY_ITEMS_MAX,
        )
        .await?;
    let at = added(result, "liked songs")?;
    Ok(Json(Liked {
        id,
        added_at_ms: at,
    }))
}

#[utoipa::path(delete, path = "/v1/me/tracks/{id}", tag = "library", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), responses((status = 200, body = Removed), (status = 400, body = ErrorBody)))]
/// `DELETE /v1/me/tracks/{id}`: unlike a song.
pub async fn unlike_track(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Removed>, ApiError> {
    check_track_id(&id)?;
    let removed = state
        .store
        .libraries()
        .library_remove(Library::Tracks, &account.id, &id)
        .await?;
    Ok(Json(Removed { id, removed }))
}

#[utoipa::path(get, path = "/v1/me/tracks", tag = "library", security(("bearer" = [])), params(Page), responses((status = 200, body = LikedTracks, description = "Most recent first")))]
/// `GET /v1/me/tracks`: liked songs. A song deleted from the catalog since shows as
/// `track: null`.
pub async fn liked_tracks(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<LikedTracks>, ApiError> {
    let (offset, limit) = page.bounds()?;
    let (total, items) = state
        .store
        .libraries()
        .library_page(Library::Tracks, &account.id, offset, limit)
        .await?;
    let mut shown = Vec::with_capacity(items.len());
    for (id, at) in items {
        let track = state
            .store
            .catalog()
            .track(&id)
            .await?
            .map(|track| track_json(&track));
        shown.push(LikedTrack {
            id,
            added_at_ms: at,
            track,
        });
    }
    Ok(Json(LikedTracks {
        items: shown,
        total,
        limit,
        offset,
    }))
}

#[utoipa::path(put, path = "/v1/me/following/artists/{id}", tag = "library", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), responses((status = 200, body = Followed), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "not_found: no such artist"), (status = 409, body = ErrorBody, description = "library_full")))]
/// `PUT /v1/me/following/artists/{id}`: follow an artist.
pub async fn follow_artist(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Followed>, ApiError> {
    check_artist_id(&id)?;
    state
        .store
        .accounts()
        .account(&id)
        .await?
        .filter(|artist| matches!(artist.role, Role::Artist | Role::Admin))
        .ok_or_else(|| ApiError::not_found("artist"))?;
    let result = state
        .store
        .libraries()
        .library_add(
            Library::Artists,
            &account.id,
            &id,
            now_ms(),
            crate::store::LIBRARY_ITEMS_MAX,
        )
        .await?;
    let at = added(result, "followed artists")?;
    Ok(Json(Followed {
        id,
        followed_at_ms: at,
    }))
}

#[utoipa::path(delete, path = "/v1/me/following/artists/{id}", tag = "library", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), responses((status = 200, body = Removed), (status = 400, body = ErrorBody)))]
/// `DELETE /v1/me/following/artists/{id}`: stop following.
pub async fn unfollow_artist(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Removed>, ApiError> {
    check_artist_id(&id)?;
    let removed = state
        .store
        .libraries()
        .library_remove(Library::Artists, &account.id, &id)
        .await?;
    Ok(Json(Removed { id, removed }))
}

#[utoipa::path(get, path = "/v1/me/following/artists", tag = "library", security(("bearer" = [])), params(Page), responses((status = 200, body = FollowedArtists, description = "Most recent first")))]
/// `GET /v1/me/following/artists`.
pub async fn followed_artists(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<FollowedArtists>, ApiError> {
    let (offset, limit) = page.bounds()?;
    let (total, items) = state
        .store
        .libraries()
        .library_page(Library::Artists, &account.id, offset, limit)
        .await?;
    let mut shown = Vec::with_capacity(items.len());
    for (id, at) in items {
        let name = match state.store.accounts().account(&id).await? {
            // The name its latest upload shows, else the username.
            Some(artist) => Some(
                state
                    .store
                    .catalog()
                    .artist_tracks(&artist.id, 0, 1)
                    .await
                    .ok()
                    .and_then(|tracks| tracks.first().map(|track| track.artist.clone()))
                    .unwrap_or(artist.username),
            ),
            None => None,
        };
        shown.push(FollowedArtist {
            id,
            name,
            followed_at_ms: at,
        });
    }
    Ok(Json(FollowedArtists {
        items: shown,
        total,
        limit,
        offset,
    }))
}

/// The caller's likes and follows.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Ip, routes!(liked_tracks))
        .add(Limit::Ip, routes!(like_track, unlike_track))
        .add(Limit::Ip, routes!(followed_artists))
        .add(Limit::Ip, routes!(follow_artist, unfollow_artist))
        .into()
}
