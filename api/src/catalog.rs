//! The catalog: uploads, tracks, artists and albums.

use serde::{Deserialize, Serialize};

/// Metadata sent with an upload (the `metadata` part of the form, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackMetadata {
    /// Title, 1 to 200 characters, not all spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
    )]
    pub title: String,
    /// Artist display name, 1 to 200 characters, not all spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
    )]
    pub artist: String,
    /// Album title, 1 to 200 characters, not all spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
    )]
    pub album: Option<String>,
    /// Genre, 1 to 200 characters, not all spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
    )]
    pub genre: Option<String>,
    /// Regions (two capital letters) where the track may be played, at most 250; none means
    /// everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::markets_schema)]
    pub markets: Option<Vec<String>>,
}

/// The form of `POST /v1/tracks` (`multipart/form-data`): these two parts and no others.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadForm {
    /// The audio: WAV, FLAC, MP3, Ogg Vorbis or Opus, AAC/ALAC in MP4, AIFF, CAF.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// The track's metadata, as a JSON part.
    pub metadata: TrackMetadata,
}

/// A rendition as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RenditionSummary {
    /// `low`, `normal` or `high`.
    pub quality: String,
    /// Rendition id (BLAKE3 of the manifest body).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub rendition_id: String,
    /// `vorbis`.
    pub codec: String,
    /// Target bitrate.
    pub bitrate_bps: u32,
    /// Encoded size.
    pub bytes: u64,
    /// Number of chunks.
    pub chunks: u32,
}

/// A track as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackView {
    /// Track id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    /// Title.
    pub title: String,
    /// Artist display name.
    pub artist: String,
    /// Artist id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub artist_id: String,
    /// Album title.
    pub album: Option<String>,
    /// Album id.
    pub album_id: Option<String>,
    /// Genre.
    pub genre: Option<String>,
    /// Regions where it plays; empty means everywhere.
    pub markets: Vec<String>,
    /// Duration.
    pub duration_ms: u64,
    /// EBU R128 integrated loudness (absent for silence).
    pub loudness_lufs: Option<f64>,
    /// Tempo measured at ingest (absent without a clear pulse).
    pub tempo_bpm: Option<f32>,
    /// Playback gain to -14 LUFS, limited by the peak.
    pub gain_db: f64,
    /// The rendition ladder.
    pub renditions: Vec<RenditionSummary>,
}

/// `GET /v1/artists/{id}`: an artist account and the name its latest upload shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtistView {
    /// Artist (account) id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    /// Display name.
    pub name: String,
    /// Login name.
    pub username: String,
}

/// A page of tracks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackPage {
    /// The tracks.
    pub items: Vec<TrackView>,
    /// Tracks skipped.
    pub offset: usize,
    /// Page size asked for (after clamping).
    pub limit: usize,
}

/// `GET /v1/albums/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlbumView {
    /// Album id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    /// Album title.
    pub title: Option<String>,
    /// Artist display name.
    pub artist: String,
    /// Artist id.
    pub artist_id: String,
    /// A page of its tracks.
    pub tracks: TrackPage,
}
