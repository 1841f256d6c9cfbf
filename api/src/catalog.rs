//! The catalog: uploads, tracks, artists and albums.

use serde::{Deserialize, Serialize};

/// Metadata sent with an upload (the `metadata` part of the form, as JSON). Every field
/// overrides what the file's tags say; the part may be left out when the tags suffice (a
/// title, or failing that the file name; the artist, or failing that the account's name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackMetadata {
    /// Title, 1 to 200 characters, not all spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
    )]
    pub title: Option<String>,
    /// Artist display name, 1 to 200 characters, not all spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
    )]
    pub artist: Option<String>,
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
    /// The album's artist (a compilation's "Various Artists"), 1 to 200 characters; albums
    /// are told apart by album artist, title and year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]"
    )]
    pub album_artist: Option<String>,
    /// Place on its disc, 1 to 9999.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 9999)]
    pub track_number: Option<u32>,
    /// Disc of the album, 1 to 999.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 999)]
    pub disc_number: Option<u32>,
    /// Year of release, 1 to 9999.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 9999)]
    pub year: Option<u16>,
    /// International Standard Recording Code: 12 letters and digits (hyphens are dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z]{2}-?[A-Za-z0-9]{3}-?[0-9]{2}-?[0-9]{5}$")]
    pub isrc: Option<String>,
    /// Lyrics: plain text, or LRC (`[mm:ss.xx]` before each line) for synced lyrics; at most
    /// 32 KiB. An empty string removes lyrics the tags carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 32768)]
    pub lyrics: Option<String>,
    /// Regions (two capital letters) where the track may be played, at most 250; none means
    /// everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::markets_schema)]
    pub markets: Option<Vec<String>>,
}

/// The form of `POST /v1/tracks` (`multipart/form-data`): these parts and no others.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadForm {
    /// The audio: WAV, FLAC, MP3, Ogg Vorbis or Opus, AAC/ALAC in MP4, AIFF, CAF.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// The track's metadata, as a JSON part; optional when the file's tags suffice.
    pub metadata: Option<TrackMetadata>,
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
    /// The album's artist, where it differs from the track's or the tags name one.
    pub album_artist: Option<String>,
    /// Place on its disc.
    pub track_number: Option<u32>,
    /// Disc of the album.
    pub disc_number: Option<u32>,
    /// Year of release.
    pub year: Option<u16>,
    /// International Standard Recording Code.
    pub isrc: Option<String>,
    /// MusicBrainz identifiers from the file's tags.
    pub musicbrainz: MusicBrainzIds,
    /// Whether lyrics are there, and synced (`GET /v1/tracks/{id}/lyrics`).
    pub lyrics: LyricsKind,
    /// Cover art from the file, if it carries one.
    pub artwork: Option<Artwork>,
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
    /// When it was published, Unix ms (0 from an origin that did not say).
    #[serde(default)]
    pub created_at_ms: u64,
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
    /// The picture the artist uploaded (`PUT /v1/artists/{id}/image`).
    pub image: Option<Artwork>,
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
    /// Artist display name (the album artist's, where the tags name one).
    pub artist: String,
    /// Artist (account) id.
    pub artist_id: String,
    /// Year of release.
    pub year: Option<u16>,
    /// Cover art: the one uploaded for it (`PUT /v1/albums/{id}/image`), else the first of
    /// its tracks (by disc and number) that carries one.
    pub artwork: Option<Artwork>,
    /// A page of its tracks, by disc and track number.
    pub tracks: TrackPage,
}

/// MusicBrainz identifiers (lower-case UUIDs), as the file's tags give them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MusicBrainzIds {
    /// The recording (`MUSICBRAINZ_TRACKID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
    /// The release (`MUSICBRAINZ_ALBUMID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_id: Option<String>,
    /// The track's artist (`MUSICBRAINZ_ARTISTID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artist_id: Option<String>,
    /// The release's artist (`MUSICBRAINZ_ALBUMARTISTID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_artist_id: Option<String>,
}

impl MusicBrainzIds {
    /// Whether no identifier is known.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// What lyrics a track has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LyricsKind {
    /// None.
    #[default]
    None,
    /// Text without timing.
    Plain,
    /// Each line with the time it is sung.
    Synced,
}

/// One line of lyrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LyricLine {
    /// When the line starts, for synced lyrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// The line (may be empty: a pause).
    pub text: String,
}

/// A track's lyrics, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lyrics {
    /// Every line carries `start_ms`, in order.
    pub synced: bool,
    /// The lines.
    pub lines: Vec<LyricLine>,
}

impl Lyrics {
    /// Plain or synced.
    pub fn kind(&self) -> LyricsKind {
        if self.synced {
            LyricsKind::Synced
        } else {
            LyricsKind::Plain
        }
    }

    /// The words, one line per line, without timing (what search indexes).
    pub fn text(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(&line.text);
            text.push('\n');
        }
        text
    }
}

/// `GET /v1/tracks/{id}/lyrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LyricsView {
    /// The track.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub track_id: String,
    /// Its title.
    pub title: String,
    /// Its artist.
    pub artist: String,
    /// Every line carries `start_ms`.
    pub synced: bool,
    /// The lines, in order.
    pub lines: Vec<LyricLine>,
}

/// A picture in a few sizes, each an immutable JPEG at its own URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Artwork {
    /// The sizes, smallest first.
    pub sizes: Vec<ArtworkSize>,
}

/// One size of an [`Artwork`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtworkSize {
    /// The longer side, pixels.
    pub size: u32,
    /// `/v1/images/{id}`, relative to the origin: a JPEG named by the BLAKE3 of what is
    /// stored, so it never changes and is cacheable forever.
    pub url: String,
}
