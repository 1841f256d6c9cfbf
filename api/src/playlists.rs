//! Playlists: creation, reads, edits with optimistic concurrency (`snapshot_id`).

use serde::{Deserialize, Serialize};

use crate::catalog::TrackView;

/// Body of `POST /v1/playlists`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewPlaylist {
    /// 1 to 100 characters, not all spaces.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
    )]
    pub name: String,
    /// At most 300 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 300)]
    pub description: Option<String>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collaborative: Option<bool>,
}

/// Body of `PUT /v1/playlists/{id}`: what changes (the owner only).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlaylistChange {
    /// New name, 1 to 100 characters, not all spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
    )]
    pub name: Option<String>,
    /// New description, at most 300 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 300)]
    pub description: Option<String>,
    /// Visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// Whether collaborators may edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collaborative: Option<bool>,
    /// Usernames of the collaborators (replaces the list; at most 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 50)]
    pub collaborators: Option<Vec<String>>,
    /// The version edited; a stale one is `409 stale_snapshot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub snapshot_id: Option<String>,
}

/// Body of `POST /v1/playlists/{id}/tracks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddTracks {
    /// 1 to 100 track ids.
    #[schema(schema_with = crate::track_id_list_schema)]
    pub track_ids: Vec<String>,
    /// Where they go (0 = first, at most the playlist's length); default the end.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::optional"
    )]
    #[schema(minimum = 0, maximum = 10_000)]
    pub position: Option<usize>,
    /// The version edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub snapshot_id: Option<String>,
}

/// Body of `DELETE /v1/playlists/{id}/tracks`: track ids (every occurrence) or positions.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemoveTracks {
    /// Track ids, every occurrence removed (at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::optional_track_id_list_schema)]
    pub track_ids: Option<Vec<String>>,
    /// Positions removed (at most 100; each below the playlist's length).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::list"
    )]
    #[schema(schema_with = crate::position_list_schema)]
    pub positions: Option<Vec<usize>>,
    /// The version edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub snapshot_id: Option<String>,
}

/// Body of `PUT /v1/playlists/{id}/tracks`: move `range_length` tracks from `range_start`
/// to before the track now at `insert_before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reorder {
    /// First position moved.
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(minimum = 0, maximum = 10_000)]
    pub range_start: usize,
    /// The position they go before (the length: the end).
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(minimum = 0, maximum = 10_000)]
    pub insert_before: usize,
    /// Tracks moved, default 1.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::optional"
    )]
    #[schema(minimum = 1, maximum = 10_000)]
    pub range_length: Option<usize>,
    /// The version edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub snapshot_id: Option<String>,
}

/// `201` answer of `POST /v1/playlists`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlaylistCreated {
    /// The playlist id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    /// Its first version.
    pub snapshot_id: String,
}

/// The version after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// The new version.
    pub snapshot_id: String,
}

/// The answer of adding tracks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TracksAdded {
    /// The new version.
    pub snapshot_id: String,
    /// Tracks in the playlist now.
    pub total: usize,
}

/// The answer of removing tracks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TracksRemoved {
    /// The new version.
    pub snapshot_id: String,
    /// Tracks in the playlist now.
    pub total: usize,
    /// Tracks removed.
    pub removed: usize,
}

/// An account as a playlist names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserRef {
    /// Account id.
    pub id: String,
    /// Login name; `null` if the account is gone.
    pub username: Option<String>,
}

/// One place in a playlist. `T` is how the track is shown: a [`TrackView`] to clients (the
/// origin splices in pre-rendered JSON of the same shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlaylistItem<T = TrackView> {
    /// Position, from 0.
    pub position: usize,
    /// The track id.
    pub id: String,
    /// The track; `null` if it was deleted from the catalog since.
    pub track: Option<T>,
}

/// A page of a playlist's tracks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlaylistTracks<T = TrackView> {
    /// This page.
    pub items: Vec<PlaylistItem<T>>,
    /// Tracks in the playlist.
    pub total: usize,
    /// Page size.
    pub limit: usize,
    /// Tracks skipped.
    pub offset: usize,
}

/// `GET /v1/playlists/{id}`: the playlist with a page of its tracks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlaylistView<T = TrackView> {
    /// Playlist id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Visible to everyone and searchable.
    pub public: bool,
    /// Collaborators may edit its tracks.
    pub collaborative: bool,
    /// The owner.
    pub owner: UserRef,
    /// The collaborators.
    pub collaborators: Vec<UserRef>,
    /// The current version.
    pub snapshot_id: String,
    /// Created.
    pub created_at_ms: u64,
    /// Last changed.
    pub updated_at_ms: u64,
    /// A page of its tracks.
    pub tracks: PlaylistTracks<T>,
}

/// A playlist in a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlaylistSummary {
    /// Playlist id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Visible to everyone.
    pub public: bool,
    /// Collaborators may edit.
    pub collaborative: bool,
    /// The caller owns it (else collaborates on it).
    pub owned: bool,
    /// Tracks in it.
    pub tracks_total: usize,
    /// The current version.
    pub snapshot_id: String,
}

/// `GET /v1/me/playlists`: owned and collaborating, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlaylistSummaries {
    /// This page.
    pub items: Vec<PlaylistSummary>,
    /// Playlists in all.
    pub total: usize,
    /// Page size.
    pub limit: usize,
    /// Items skipped.
    pub offset: usize,
}
