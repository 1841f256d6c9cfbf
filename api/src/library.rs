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
