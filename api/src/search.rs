//! `GET /v1/search`.

use serde::{Deserialize, Serialize};

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hit {
    /// `track`, `artist`, `album`, `playlist`, or `lyrics` (a track found by its lyrics; the
    /// id is the track's).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Title or name.
    pub name: String,
    /// The artist (tracks and albums) or the owner's username (playlists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artist: Option<String>,
    /// Relevance score (higher first).
    pub score: f32,
}

/// `GET /v1/search`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// Hits in all.
    pub total: usize,
    /// This page.
    pub items: Vec<Hit>,
    /// Page size.
    pub limit: usize,
    /// Hits skipped.
    pub offset: usize,
}
