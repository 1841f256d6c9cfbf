//! The caller's library: liked songs and followed artists.

use serde::{Deserialize, Serialize};

use crate::catalog::TrackView;

/// `PUT /v1/me/tracks/{id}`: liked (again: unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Liked {
    /// The track.
    pub id: String,
    /// When it was first liked.
    pub added_at_ms: u64,
}

/// `PUT /v1/me/following/artists/{id}`: followed (again: unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Followed {
    /// The artist.
    pub id: String,
    /// When it was first followed.
    pub followed_at_ms: u64,
}

/// An unlike or unfollow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Removed {
    /// The track or artist.
    pub id: String,
    /// False when it was not in the library.
    pub removed: bool,
}

/// A liked song.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LikedTrack {
    /// The track id.
    pub id: String,
    /// When it was liked.
    pub added_at_ms: u64,
    /// The track; `null` if it was deleted from the catalog since.
    pub track: Option<TrackView>,
}

/// `GET /v1/me/tracks`: liked songs, most recent first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LikedTracks {
    /// This page.
    pub items: Vec<LikedTrack>,
    /// Liked songs in all.
    pub total: usize,
    /// Page size.
    pub limit: usize,
    /// Items skipped.
    pub offset: usize,
}

/// A followed artist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FollowedArtist {
    /// The artist id.
    pub id: String,
    /// Its display name; `null` if the account is gone.
    pub name: Option<String>,
    /// When it was followed.
    pub followed_at_ms: u64,
}

/// `GET /v1/me/following/artists`: most recent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FollowedArtists {
    /// This page.
    pub items: Vec<FollowedArtist>,
    /// Followed artists in all.
    pub total: usize,
    /// Page size.
    pub limit: usize,
    /// Items skipped.
    pub offset: usize,
}

/// `GET /v1/me/player`: where the listener is, as the device that last wrote it left it.
/// (Also the stored record: fields added later default when older records are read.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct PlayerState {
    /// Track ids, in play order.
    pub queue: Vec<String>,
    /// The current track's place in `queue` (0 for an empty queue).
    pub index: u32,
    /// How far into the current track.
    pub position_ms: u64,
    /// The device that wrote this (empty before any write).
    pub device: String,
    /// Bumped by every write; 0 before the first. A write names the version it read.
    pub version: u64,
    /// When it was written, Unix ms (0 before the first write).
    pub updated_at_ms: u64,
}

/// `PUT /v1/me/player`: the new state, written only over the version it was based on (so a
/// device that missed another's write is refused with `409 stale_version`, not obeyed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayerUpdate {
    /// Track ids, in play order, at most 1000.
    #[schema(schema_with = crate::queue_schema)]
    pub queue: Vec<String>,
    /// The current track's place in `queue`: below its length (0 for an empty queue).
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(maximum = 999)]
    pub index: u32,
    /// How far into the current track, at most 24 hours.
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(maximum = 86_400_000)]
    pub position_ms: u64,
    /// Who is writing: a device name of 1 to 100 characters, not all spaces.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
    )]
    pub device: String,
    /// The version this state was based on (what `GET` answered; 0 for the first write).
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(maximum = 9_007_199_254_740_992_u64)]
    pub version: u64,
    /// Ignored (the origin stamps the time), so that a state read by `GET` can be written
    /// back as it is.
    #[serde(default, skip_serializing, deserialize_with = "crate::int::optional")]
    pub updated_at_ms: Option<u64>,
}
