//! Playlists: create, read (paged), rename and describe, public or private, collaborative
//! (listed collaborators may edit its tracks), add at a position, remove by id or position,
//! reorder a range.
//!
//! Every change is one optimistic transaction on the stored playlist
//! ([`Store::update_playlist`](crate::store::Store::update_playlist)): two devices editing
//! at once never lose an acknowledged change, and each answer carries the new `snapshot_id`.
//! An edit that names a `snapshot_id` applies only to that version (`409 stale_snapshot`
//! otherwise), so positions a client computed on an old copy never hit the wrong tracks.
//! Reads go to the same store the writes went to, so an account reads its own writes.

use super::auth::Authed;
use super::error::{ApiError, ErrorBody};
use super::extract::{
    ApiJson, ApiPath, ApiQuery, Page, bounded, check_track_id, is_blank, trim_blank,
};
use super::state::{AppState, now_ms};
use super::{Limit, Routes};
use crate::ratelimit::Class;
use api::playlists::{
    AddTracks, NewPlaylist, PlaylistChange, PlaylistCreated, PlaylistItem, PlaylistSummaries,
    PlaylistSummary, PlaylistTracks, PlaylistView, RemoveTracks, Reorder, Snapshot, TracksAdded,
    TracksRemoved, UserRef,
};
use utoipa_axum::routes;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use protocol::TrackId;
use serde::Deserialize;

use crate::store::{Account, PlaylistRecord};

/// Most tracks in one playlist.
pub const PLAYLIST_TRACKS_MAX: usize = 10_000;
/// Most tracks added or removed by one request.
pub const TRACKS_PER_REQUEST_MAX: usize = 100;
/// Longest name, characters.
pub const NAME_CHARS_MAX: usize = 100;
/// Longest description, characters.
pub const DESCRIPTION_CHARS_MAX: usize = 300;
/// Most collaborators of one playlist.
pub const COLLABORATORS_MAX: usize = 50;
/// Most tracks in one page of a playlist.
const TRACKS_PAGE_MAX: usize = 100;

fn snapshot_id(playlist: &PlaylistRecord) -> String {
    format!("{:016x}", playlist.version)
}

/// Refuses when `given` names another version than the stored one.
fn check_snapshot(given: Option<&str>, playlist: &PlaylistRecord) -> Result<(), ApiError> {
    let Some(text) = given else { return Ok(()) };
    let version = (text.len() == 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
        .filter(|_| text.bytes().all(|byte| !byte.is_ascii_uppercase()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_snapshot",
                "snapshot_id is the 16 hex characters a playlist answer gave",
            )
        })?;
    if version != playlist.version {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale_snapshot",
            format!(
                "the playlist changed since snapshot {text} (now {}): read it again",
                snapshot_id(playlist)
            ),
        ));
    }
    Ok(())
}

/// A change the playlist as it is now cannot take (`409`): positions past its end, a full
/// playlist. Read it again and retry.
fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

fn can_read(playlist: &PlaylistRecord, account: &Account) -> bool {
    playlist.public || playlist.owner == account.id || playlist.collaborators.contains(&account.id)
}

fn can_edit(playlist: &PlaylistRecord, account: &Account) -> bool {
    playlist.owner == account.id
        || (playlist.collaborative && playlist.collaborators.contains(&account.id))
}

/// Refuses an edit: 404 when the account may not even see the playlist (its existence is
/// not revealed), 403 otherwise.
fn edit_refused(playlist: &PlaylistRecord, account: &Account) -> ApiError {
    if can_read(playlist, account) {
        ApiError::forbidden(
            "not_editor",
            "only the owner, and collaborators of a collaborative playlist, may edit it",
        )
    } else {
        ApiError::not_found("playlist")
    }
}

/// Applies `change` to the tracks of playlist `id` for an editor, at `snapshot` when
/// given (see [`Store::update_playlist`](crate::store::Store::update_playlist)).
async fn edit_tracks(
    state: &AppState,
    id: &str,
    account: &Account,
    snapshot: Option<&str>,
    mut change: impl FnMut(&mut PlaylistRecord) -> Result<(), ApiError> + Send,
) -> Result<PlaylistRecord, ApiError> {
    state
        .store
        .update_playlist(id, now_ms(), |playlist| {
            if !can_edit(playlist, account) {
                return Err(edit_refused(playlist, account));
            }
            check_snapshot(snapshot, playlist)?;
            change(playlist)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("playlist"))?
}

fn valid_name(name: &str) -> Result<String, ApiError> {
    if is_blank(name) || name.chars().count() > NAME_CHARS_MAX {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("a playlist name is 1 to {NAME_CHARS_MAX} characters"),
        ));
    }
    Ok(trim_blank(name).to_string())
}

fn valid_description(text: &str) -> Result<String, ApiError> {
    if text.chars().count() > DESCRIPTION_CHARS_MAX {
        return Err(ApiError::bad_request(
            "invalid_description",
            format!("a description is at most {DESCRIPTION_CHARS_MAX} characters"),
        ));
    }
    Ok(trim_blank(text).to_string())
}

#[utoipa::path(post, path = "/v1/playlists", tag = "playlists", security(("bearer" = [])), request_body = NewPlaylist, responses((status = 201, body = PlaylistCreated, links(("ReadPlaylist" = (operation_id = "read", parameters(("id" = "$response.body#/id")))), ("ChangePlaylist" = (operation_id = "change", parameters(("id" = "$response.body#/id")))), ("AddTracks" = (operation_id = "add_tracks", parameters(("id" = "$response.body#/id")))), ("ReorderTracks" = (operation_id = "reorder", parameters(("id" = "$response.body#/id")))), ("RemoveTracks" = (operation_id = "remove_tracks", parameters(("id" = "$response.body#/id")))))), (status = 400, body = ErrorBody)))]
/// `POST /v1/playlists`.
pub async fn create(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiJson(body): ApiJson<NewPlaylist>,
) -> Result<impl IntoResponse, ApiError> {
    let now = now_ms();
    let playlist = PlaylistRecord {
        id: hex::encode(rand::random::<[u8; 16]>()),
        owner: account.id.clone(),
        name: valid_name(&body.name)?,
        description: valid_description(body.description.as_deref().unwrap_or(""))?,
        public: body.public.unwrap_or(true),
        collaborative: body.collaborative.unwrap_or(false),
        collaborators: Vec::new(),
        tracks: Vec::new(),
        version: 1,
        created_at_ms: now,
        updated_at_ms: now,
    };
    if !state.store.playlists().create_playlist(&playlist).await? {
        return Err(ApiError::bad_request(
            "too_many_playlists",
            format!(
                "an account owns at most {} playlists",
                crate::store::PLAYLISTS_PER_ACCOUNT_MAX
            ),
        ));
    }
    index(&state, &playlist, &account.username).await;
    Ok((
        StatusCode::CREATED,
        Json(PlaylistCreated {
            snapshot_id: snapshot_id(&playlist),
            id: playlist.id,
        }),
    ))
}

/// Paging of a playlist's tracks.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TracksPage {
    /// Tracks per page, 1 to 100 (default 100).
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<usize>,
    /// Tracks to skip, at most 10,000.
    #[param(minimum = 0, maximum = 10_000, nullable = false)]
    offset: Option<usize>,
}

async fn user_view(state: &AppState, id: &str) -> UserRef {
    let username = state.store.username(id).await.ok().flatten();
    UserRef {
        id: id.to_string(),
        username,
    }
}

#[utoipa::path(get, path = "/v1/playlists/{id}", tag = "playlists", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$"), TracksPage), responses((status = 200, body = PlaylistView, description = "The playlist with a page of its tracks"), (status = 404, body = ErrorBody)))]
/// `GET /v1/playlists/{id}`: a public playlist, or a private one of the owner or a
/// collaborator, with a page of its tracks (a track deleted from the catalog since shows as
/// `track: null`).
pub async fn read(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<TracksPage>,
) -> Result<Json<PlaylistView<Box<serde_json::value::RawValue>>>, ApiError> {
    let playlist = state
        .store
        .playlists()
        .playlist(&id)
        .await?
        .filter(|playlist| can_read(playlist, &account))
        .ok_or_else(|| ApiError::not_found("playlist"))?;
    let offset = bounded("offset", page.offset, 0, 0..=PLAYLIST_TRACKS_MAX)?;
    let limit = bounded("limit", page.limit, TRACKS_PAGE_MAX, 1..=TRACKS_PAGE_MAX)?;
    let mut items = Vec::with_capacity(limit);
    for (position, track_id) in playlist.tracks.iter().enumerate().skip(offset).take(limit) {
        let track = match state.track_views.get(&state.store, track_id).await? {
            Some(view) => Some(
                serde_json::value::RawValue::from_string(view.to_string())
                    .map_err(ApiError::internal)?,
            ),
            None => None,
        };
        items.push(PlaylistItem {
            position,
            id: track_id.clone(),
            track,
        });
    }
    let mut collaborators = Vec::with_capacity(playlist.collaborators.len());
    for id in &playlist.collaborators {
        collaborators.push(user_view(&state, id).await);
    }
    let view = PlaylistView {
        id: playlist.id.clone(),
        name: playlist.name.clone(),
        description: playlist.description.clone(),
        public: playlist.public,
        collaborative: playlist.collaborative,
        owner: user_view(&state, &playlist.owner).await,
        collaborators,
        snapshot_id: snapshot_id(&playlist),
        created_at_ms: playlist.created_at_ms,
        updated_at_ms: playlist.updated_at_ms,
        tracks: PlaylistTracks {
            items,
            total: playlist.tracks.len(),
            limit,
            offset,
        },
    };
    Ok(Json(view))
}

#[utoipa::path(put, path = "/v1/playlists/{id}", tag = "playlists", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), request_body = PlaylistChange, responses((status = 200, body = Snapshot), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
/// `PUT /v1/playlists/{id}`: rename, describe, visibility, collaboration (the owner only).
pub async fn change(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PlaylistChange>,
) -> Result<Json<Snapshot>, ApiError> {
    let name = body.name.as_deref().map(valid_name).transpose()?;
    let description = body
        .description
        .as_deref()
        .map(valid_description)
        .transpose()?;
    let collaborators = match &body.collaborators {
        None => None,
        Some(names) if names.len() > COLLABORATORS_MAX => {
            return Err(ApiError::bad_request(
                "too_many_collaborators",
                format!("at most {COLLABORATORS_MAX} collaborators"),
            ));
        }
        Some(names) => {
            let mut ids = Vec::with_capacity(names.len());
            for name in names {
                let found = state
                    .store
                    .accounts()
                    .account_by_username(name)
                    .await?
                    .ok_or_else(|| {
                        conflict("unknown_user", format!("no account is named {name:?}"))
                    })?;
                if found.id != account.id && !ids.contains(&found.id) {
                    ids.push(found.id);
                }
            }
            Some(ids)
        }
    };
    let updated = state
        .store
        .update_playlist(&id, now_ms(), |playlist| {
            if playlist.owner != account.id {
                return Err(if can_read(playlist, &account) {
                    ApiError::forbidden("not_owner", "only the owner changes a playlist's details")
                } else {
                    ApiError::not_found("playlist")
                });
            }
            check_snapshot(body.snapshot_id.as_deref(), playlist)?;
            if let Some(name) = &name {
                playlist.name = name.clone();
            }
            if let Some(description) = &description {
                playlist.description = description.clone();
            }
            if let Some(public) = body.public {
                playlist.public = public;
            }
            if let Some(collaborative) = body.collaborative {
                playlist.collaborative = collaborative;
            }
            if let Some(collaborators) = &collaborators {
                playlist.collaborators = collaborators.clone();
            }
            Ok(())
        })
        .await?
        .ok_or_else(|| ApiError::not_found("playlist"))??;
    index(&state, &updated, &account.username).await;
    Ok(Json(Snapshot {
        snapshot_id: snapshot_id(&updated),
    }))
}

#[utoipa::path(delete, path = "/v1/playlists/{id}", tag = "playlists", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), responses((status = 204, description = "Deleted, for its owner and every collaborator"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not_owner: a collaborator cannot delete it"), (status = 404, body = ErrorBody)))]
/// `DELETE /v1/playlists/{id}`: deletes a playlist (the owner only).
pub async fn delete_playlist(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let playlist = state
        .store
        .playlists()
        .playlist(&id)
        .await?
        .filter(|playlist| can_read(playlist, &account))
        .ok_or_else(|| ApiError::not_found("playlist"))?;
    if playlist.owner != account.id {
        return Err(ApiError::forbidden(
            "not_owner",
            "only the owner deletes a playlist",
        ));
    }
    // The owner of a playlist never changes, so the check above still holds.
    let mut removed = state
        .store
        .playlists()
        .delete_playlist(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("playlist"))?;
    // Out of search: indexed as private, it is removed.
    removed.public = false;
    index(&state, &removed, &account.username).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Brings search up to date with a playlist's name, description and visibility. A failing
/// index does not fail the change (it is rebuilt from the store at the next start).
async fn index(state: &AppState, playlist: &PlaylistRecord, owner: &str) {
    let (search, playlist, owner) = (state.search.clone(), playlist.clone(), owner.to_string());
    let indexed =
        tokio::task::spawn_blocking(move || search.playlist_changed(&playlist, Some(&owner))).await;
    if let Ok(Err(error)) = indexed {
        tracing::warn!(%error, "search index not updated");
    }
}

async fn valid_track_ids(state: &AppState, ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() || ids.len() > TRACKS_PER_REQUEST_MAX {
        return Err(ApiError::bad_request(
            "bad_track_ids",
            format!("1 to {TRACKS_PER_REQUEST_MAX} track ids per request"),
        ));
    }
    for (index, id) in ids.iter().enumerate() {
        id.parse::<TrackId>().map_err(|_| {
            ApiError::bad_request("invalid_id", "track ids are 32 hex characters")
                .with_field("track_ids")
                .with_index(index)
        })?;
        // 409, not 404: the playlist in the path exists; a track the body names does not.
        if state.store.catalog().track(id).await?.is_none() {
            return Err(
                conflict("unknown_track", format!("no track {id} in the catalog"))
                    .with_field("track_ids")
                    .with_index(index),
            );
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/playlists/{id}/tracks", tag = "playlists", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), request_body = AddTracks, responses((status = 201, body = TracksAdded, links(("ReadPlaylist" = (operation_id = "read", parameters(("id" = "$request.path.id")))), ("ReorderTracks" = (operation_id = "reorder", parameters(("id" = "$request.path.id")))), ("RemoveTracks" = (operation_id = "remove_tracks", parameters(("id" = "$request.path.id")))))), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "The playlist is not there (or not yours to see)"), (status = 409, body = ErrorBody, description = "stale_snapshot, bad_position, playlist_full, unknown_track (error.index names it)")))]
/// `POST /v1/playlists/{id}/tracks`: add tracks at a position.
pub async fn add_tracks(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AddTracks>,
) -> Result<impl IntoResponse, ApiError> {
    valid_track_ids(&state, &body.track_ids).await?;
    let updated = edit_tracks(
        &state,
        &id,
        &account,
        body.snapshot_id.as_deref(),
        |playlist| {
            let at = body.position.unwrap_or(playlist.tracks.len());
            if at > playlist.tracks.len() {
                return Err(conflict(
                    "bad_position",
                    format!(
                        "position {at} is past the end ({} tracks)",
                        playlist.tracks.len()
                    ),
                ));
            }
            if playlist.tracks.len() + body.track_ids.len() > PLAYLIST_TRACKS_MAX {
                return Err(conflict(
                    "playlist_full",
                    format!("a playlist holds at most {PLAYLIST_TRACKS_MAX} tracks"),
                ));
            }
            playlist
                .tracks
                .splice(at..at, body.track_ids.iter().cloned());
            Ok(())
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(TracksAdded {
            snapshot_id: snapshot_id(&updated),
            total: updated.tracks.len(),
        }),
    ))
}

#[utoipa::path(delete, path = "/v1/playlists/{id}/tracks", tag = "playlists", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), request_body = RemoveTracks, responses((status = 200, body = TracksRemoved), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
/// `DELETE /v1/playlists/{id}/tracks`.
pub async fn remove_tracks(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RemoveTracks>,
) -> Result<Json<TracksRemoved>, ApiError> {
    let ids = body.track_ids.as_deref().unwrap_or_default();
    let positions = body.positions.as_deref().unwrap_or_default();
    if ids.len() > TRACKS_PER_REQUEST_MAX || positions.len() > TRACKS_PER_REQUEST_MAX {
        return Err(ApiError::bad_request(
            "too_many_tracks",
            format!(
                "at most {TRACKS_PER_REQUEST_MAX} track ids and {TRACKS_PER_REQUEST_MAX} positions per request"
            ),
        ));
    }
    for id in ids {
        check_track_id(id)?;
    }
    let mut removed = 0usize;
    let updated = edit_tracks(
        &state,
        &id,
        &account,
        body.snapshot_id.as_deref(),
        |playlist| {
            // Positions name the playlist as it was before this request; ids, every
            // occurrence. Neither given: nothing changes.
            let before = playlist.tracks.len();
            if let Some(bad) = positions.iter().find(|&&at| at >= before) {
                return Err(conflict(
                    "bad_position",
                    format!("position {bad} is past the end ({before} tracks)"),
                ));
            }
            let mut index = 0;
            playlist.tracks.retain(|track| {
                let keep = !positions.contains(&index) && !ids.contains(track);
                index += 1;
                keep
            });
            removed = before - playlist.tracks.len();
            Ok(())
        },
    )
    .await?;
    Ok(Json(TracksRemoved {
        snapshot_id: snapshot_id(&updated),
        total: updated.tracks.len(),
        removed,
    }))
}

/// Moves `length` items from `start` to before the item now at `before` (Spotify's
/// semantics). The caller has checked the bounds.
pub fn move_range<T>(items: &mut Vec<T>, start: usize, length: usize, before: usize) {
    if before >= start && before <= start + length {
        return;
    }
    let moved: Vec<T> = items.drain(start..start + length).collect();
    let at = if before > start {
        before - length
    } else {
        before
    };
    items.splice(at..at, moved);
}

#[utoipa::path(put, path = "/v1/playlists/{id}/tracks", tag = "playlists", security(("bearer" = [])), params(("id" = String, Path, pattern = "^[0-9a-f]{32}$")), request_body = Reorder, responses((status = 200, body = Snapshot), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
/// `PUT /v1/playlists/{id}/tracks`: reorder a range.
pub async fn reorder(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Reorder>,
) -> Result<Json<Snapshot>, ApiError> {
    let length = body.range_length.unwrap_or(1);
    let updated = edit_tracks(
        &state,
        &id,
        &account,
        body.snapshot_id.as_deref(),
        |playlist| {
            let total = playlist.tracks.len();
            let in_bounds = length >= 1
                && body
                    .range_start
                    .checked_add(length)
                    .is_some_and(|end| end <= total)
                && body.insert_before <= total;
            if !in_bounds {
                return Err(conflict(
                    "bad_range",
                    format!(
                        "range {}+{length} or insert_before {} is outside the playlist ({total} tracks)",
                        body.range_start, body.insert_before
                    ),
                ));
            }
            move_range(
                &mut playlist.tracks,
                body.range_start,
                length,
                body.insert_before,
            );
            Ok(())
        },
    )
    .await?;
    Ok(Json(Snapshot {
        snapshot_id: snapshot_id(&updated),
    }))
}

#[utoipa::path(get, path = "/v1/me/playlists", tag = "playlists", security(("bearer" = [])), params(Page), responses((status = 200, body = PlaylistSummaries, description = "Owned and collaborating, newest first")))]
/// `GET /v1/me/playlists`: the playlists the account owns or collaborates on.
pub async fn mine(
    State(state): State<AppState>,
    Authed(account): Authed,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<PlaylistSummaries>, ApiError> {
    let (offset, limit) = page.bounds()?;
    let mut found = Vec::new();
    for id in state
        .store
        .playlists()
        .account_playlist_ids(&account.id)
        .await?
    {
        if let Some(playlist) = state.store.playlists().playlist(&id).await?
            && (playlist.owner == account.id || playlist.collaborators.contains(&account.id))
        {
            found.push(playlist);
        }
    }
    found.sort_by(|a, b| {
        b.created_at_ms
            .cmp(&a.created_at_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    let total = found.len();
    let items: Vec<PlaylistSummary> = found
        .iter()
        .skip(offset)
        .take(limit)
        .map(|playlist| PlaylistSummary {
            id: playlist.id.clone(),
            name: playlist.name.clone(),
            public: playlist.public,
            collaborative: playlist.collaborative,
            owned: playlist.owner == account.id,
            tracks_total: playlist.tracks.len(),
            snapshot_id: snapshot_id(playlist),
        })
        .collect();
    Ok(Json(PlaylistSummaries {
        items,
        total,
        limit,
        offset,
    }))
}

/// Playlist writes take the `playlist_write` bucket.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    Routes::new()
        .add(Limit::Class(Class::PlaylistWrite), routes!(create))
        .add(Limit::Ip, routes!(read))
        .add(
            Limit::Class(Class::PlaylistWrite),
            routes!(change, delete_playlist),
        )
        .add(
            Limit::Class(Class::PlaylistWrite),
            routes!(add_tracks, remove_tracks, reorder),
        )
        .add(Limit::Ip, routes!(mine))
        .into()
}

#[cfg(test)]
mod tests {
    use super::move_range;

    fn moved(start: usize, length: usize, before: usize) -> Vec<u8> {
        let mut items: Vec<u8> = (0..6).collect();
        move_range(&mut items, start, length, before);
        items
    }

    #[test]
    fn ranges_move_like_spotify_reorders() {
        assert_eq!(moved(0, 1, 3), vec![1, 2, 0, 3, 4, 5]);
        assert_eq!(moved(4, 2, 0), vec![4, 5, 0, 1, 2, 3]);
        assert_eq!(moved(1, 2, 6), vec![0, 3, 4, 5, 1, 2]);
        // Before its own start or end: nothing moves.
        assert_eq!(moved(2, 2, 2), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(moved(2, 2, 4), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(moved(2, 2, 3), vec![0, 1, 2, 3, 4, 5]);
    }
}
