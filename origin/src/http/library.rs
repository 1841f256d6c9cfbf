//! A listener's library: liked songs (`/v1/me/tracks`) and followed artists
//! (`/v1/me/following/artists`). Adding is idempotent (the first time is kept), removing
//! something absent is not an error, lists are paged most recent first, and each library
//! holds at most [`LIBRARY_ITEMS_MAX`] items.

use super::auth::Authed;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Page, check_artist_id, check_track_id};
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use api::library::{
    Followed, FollowedArtist, FollowedArtists, Liked, LikedTrack, LikedTracks, PlayerState,
    PlayerUpdate, Removed,
};
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;

use crate::publish::track_json;
use crate::store::{LIBRARY_ITEMS_MAX, Library, LibraryAdd, PLAYER_QUEUE_MAX, Role};

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

#[utoipa::path(get, path = "/v1/me/player", tag = "library", security(("bearer" = [])), responses((status = 200, body = PlayerState, description = "The saved state (version 0 and an empty queue before any write)")))]
/// `GET /v1/me/player`: where the listener was, on whichever device wrote last.
pub async fn get_player(
    State(state): State<AppState>,
    Authed(account): Authed,
) -> Result<Json<PlayerState>, ApiError> {
    let saved = state.store.libraries().player(&account.id).await?;
    Ok(Json(saved.unwrap_or_default()))
}

#[utoipa::path(put, path = "/v1/me/player", tag = "library", security(("bearer" = [])), request_body = PlayerUpdate, responses((status = 200, body = PlayerState, description = "Saved, as version `version + 1`"), (status = 400, body = ErrorBody, description = "invalid_player: the queue, index, position or device is out of bounds"), (status = 409, body = ErrorBody, description = "stale_version: another device wrote since `version`; GET, merge, write again")))]
/// `PUT /v1/me/player`: save the queue and place, over the version the writer last read.
pub async fn put_player(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiJson(update): ApiJson<PlayerUpdate>,
) -> Result<Json<PlayerState>, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_player", message);
    if update.queue.len() > PLAYER_QUEUE_MAX {
        return Err(invalid(format!(
            "a queue holds at most {PLAYER_QUEUE_MAX} tracks"
        )));
    }
    if let Some(at) = update
        .queue
        .iter()
        .position(|id| check_track_id(id).is_err())
    {
        return Err(invalid(format!("queue[{at}] is not a track id")));
    }
    let index_ok = if update.queue.is_empty() {
        update.index == 0
    } else {
        (update.index as usize) < update.queue.len()
    };
    if !index_ok {
        return Err(invalid("index is outside the queue".into()));
    }
    if update.position_ms > 24 * 3_600_000 {
        return Err(invalid("position_ms is at most 24 hours".into()));
    }
    let device = crate::tags::clean_text(&update.device)
        .filter(|device| device.chars().count() <= 100 && update.device.chars().count() <= 100)
        .ok_or_else(|| invalid("device is 1 to 100 characters".into()))?;
    let next = PlayerState {
        queue: update.queue,
        index: update.index,
        position_ms: update.position_ms,
        device,
        version: update.version.saturating_add(1),
        updated_at_ms: now_ms(),
    };
    if !state
        .store
        .libraries()
        .put_player(&account.id, &next)
        .await?
    {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "stale_version",
            format!(
                "the player changed since version {}: read it again, then write",
                update.version
            ),
        ));
    }
    Ok(Json(next))
}

/// Largest `PUT /v1/me/player` body: a full queue with room to spare, so an oversized
/// queue is told so (`400`) rather than cut off.
const PLAYER_BODY_BYTES_MAX: usize = 1024 * 1024;

/// The caller's likes, follows and player state.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Ip, routes!(liked_tracks))
        .add(Limit::Ip, routes!(like_track, unlike_track))
        .add(Limit::Ip, routes!(followed_artists))
        .add(Limit::Ip, routes!(follow_artist, unfollow_artist))
        .add(
            Limit::Ip,
            routes!(get_player, put_player)
                .layer(axum::extract::DefaultBodyLimit::max(PLAYER_BODY_BYTES_MAX)),
        )
        .into()
}
