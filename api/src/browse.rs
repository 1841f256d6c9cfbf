//! Browsing the whole catalog (`GET /v1/browse/*`): every track, album or artist, filtered by
//! genre and years and ordered by name, artist, newest, popularity, year, a seeded shuffle or
//! a fixed order for syncing a library page by page; or, with `q`, what a search finds.

use serde::{Deserialize, Serialize};

use crate::catalog::TrackView;

/// How a listing is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BrowseSort {
    /// By name, ignoring case and a leading "The".
    Name,
    /// By artist.
    Artist,
    /// Newest first (an album or artist by its newest track).
    Added,
    /// Most played first (the default).
    Popular,
    /// By year, oldest first.
    Year,
    /// By year, newest first.
    YearDesc,
    /// Shuffled by `seed`: the same seed pages through one order.
    Random,
    /// A fixed order (by id) that holds while the catalog changes: for syncing everything
    /// page by page.
    Stable,
}

/// An album as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlbumSummary {
    /// Album id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    /// Title.
    pub title: String,
    /// Its artist (the album artist where tags name one).
    pub artist: String,
    /// The artist's (account) id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub artist_id: String,
    /// Year of release, if known.
    pub year: Option<u16>,
    /// Genre of its tracks, if tagged.
    pub genre: Option<String>,
    /// Tracks.
    pub track_count: u64,
    /// Duration of all its tracks.
    pub duration_ms: u64,
    /// When its newest track was published, Unix ms.
    pub added_at_ms: u64,
    /// Qualified streams of its tracks.
    pub plays: u64,
}

/// An artist as a listing shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtistSummary {
    /// Artist (account) id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    /// Display name.
    pub name: String,
    /// Albums.
    pub album_count: u64,
    /// Tracks.
    pub track_count: u64,
    /// When their newest track was published, Unix ms.
    pub added_at_ms: u64,
    /// Qualified streams of their tracks.
    pub plays: u64,
}

/// `GET /v1/browse/tracks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackList {
    /// Tracks that match in all.
    pub total: usize,
    /// This page.
    pub items: Vec<TrackView>,
    /// Page size.
    pub limit: usize,
    /// Items skipped.
    pub offset: usize,
}

/// `GET /v1/browse/albums`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlbumList {
    /// Albums that match in all.
    pub total: usize,
    /// This page.
    pub items: Vec<AlbumSummary>,
    /// Page size.
    pub limit: usize,
    /// Items skipped.
    pub offset: usize,
}

/// `GET /v1/browse/artists`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtistList {
    /// Artists that match in all.
    pub total: usize,
    /// This page.
    pub items: Vec<ArtistSummary>,
    /// Page size.
    pub limit: usize,
    /// Items skipped.
    pub offset: usize,
}

/// A genre and how much of the catalog has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GenreCount {
    /// The genre, as tagged.
    pub name: String,
    /// Tracks.
    pub track_count: u64,
    /// Albums.
    pub album_count: u64,
}

/// `GET /v1/browse/genres`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GenreList {
    /// By name.
    pub items: Vec<GenreCount>,
}
