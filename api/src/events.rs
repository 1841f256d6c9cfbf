//! Listening events, trending and royalties.

use serde::{Deserialize, Serialize};

use crate::catalog::TrackView;

/// What a listening event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Playback of a track started.
    PlayStart,
    /// Playback is at `position_ms` (sent periodically).
    Progress,
    /// The listener skipped at `position_ms`.
    Skip,
    /// The track played to its end.
    Complete,
}

/// One listening event as a client sends it (`POST /v1/events` takes a batch of 1 to 500).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Client-chosen unique id; sending it again is harmless.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    /// Id shared by the events of one play (same alphabet).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub play_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The track.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub track_id: String,
    /// Playback position, ms (at most 24 hours).
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(minimum = 0, maximum = 86_400_000)]
    pub position_ms: u64,
    /// When it happened, Unix ms. Events more than 30 days old or 5 minutes ahead of the
    /// origin's clock are skipped (counted in `skipped`), not recorded.
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(minimum = 0, maximum = 9_007_199_254_740_992_u64)]
    pub at: u64,
    /// Where the listener was (ISO 3166-1 alpha-2); default the account's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z]{2}$")]
    pub region: Option<String>,
    /// The play's audio bytes by where the player got them, since the play's previous event
    /// that carried them (players send them with a play's last event). Reported by the
    /// listener's device, not verified: the origin adds them to its traffic view
    /// (`GET /v1/admin/traffic`) next to the egress it measures itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<SourceBytes>,
}

/// Most bytes of one source an event may report (4 GiB: far more than any one play).
pub const SOURCE_BYTES_MAX: u64 = 1 << 32;

/// Audio bytes by where a player got them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceBytes {
    /// Already in the device's cache (fetched for an earlier play, or a download).
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(minimum = 0, maximum = 4_294_967_296_u64)]
    pub cache: u64,
    /// From other listeners' devices.
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(minimum = 0, maximum = 4_294_967_296_u64)]
    pub peers: u64,
    /// From super-nodes.
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(minimum = 0, maximum = 4_294_967_296_u64)]
    pub super_nodes: u64,
    /// From the origin (or its CDN).
    #[serde(deserialize_with = "crate::int::exact")]
    #[schema(minimum = 0, maximum = 4_294_967_296_u64)]
    pub origin: u64,
}

impl SourceBytes {
    /// Whether every figure is within [`SOURCE_BYTES_MAX`].
    pub fn in_bounds(&self) -> bool {
        [self.cache, self.peers, self.super_nodes, self.origin]
            .iter()
            .all(|&bytes| bytes <= SOURCE_BYTES_MAX)
    }

    /// Each figure at most [`SOURCE_BYTES_MAX`] (what an event may carry).
    pub fn clamped(&self) -> SourceBytes {
        SourceBytes {
            cache: self.cache.min(SOURCE_BYTES_MAX),
            peers: self.peers.min(SOURCE_BYTES_MAX),
            super_nodes: self.super_nodes.min(SOURCE_BYTES_MAX),
            origin: self.origin.min(SOURCE_BYTES_MAX),
        }
    }

    /// `self - earlier`, figure by figure (never below zero).
    pub fn since(&self, earlier: &SourceBytes) -> SourceBytes {
        SourceBytes {
            cache: self.cache.saturating_sub(earlier.cache),
            peers: self.peers.saturating_sub(earlier.peers),
            super_nodes: self.super_nodes.saturating_sub(earlier.super_nodes),
            origin: self.origin.saturating_sub(earlier.origin),
        }
    }
}

/// Most events in one batch.
pub const EVENTS_PER_BATCH_MAX: usize = 500;

/// The body of `POST /v1/events`: 1 to [`EVENTS_PER_BATCH_MAX`] events, recorded all or
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventBatch(pub Vec<Event>);

impl utoipa::PartialSchema for EventBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("Event"))
            .min_items(Some(1))
            .max_items(Some(EVENTS_PER_BATCH_MAX))
            .description(Some("1 to 500 listening events, recorded all or nothing."))
            .into()
    }
}

impl utoipa::ToSchema for EventBatch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "Event".to_string(),
            <Event as utoipa::PartialSchema>::schema(),
        ));
        <Event as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The answer of `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventsAccepted {
    /// Events recorded.
    pub accepted: usize,
    /// Events already recorded before (same id).
    pub duplicates: usize,
    /// Events outside the accepted time window (more than 30 days old, or more than 5
    /// minutes ahead of the origin's clock): not recorded.
    #[serde(default)]
    pub skipped: usize,
    /// Plays this batch qualified as streams (the 30-second rule).
    pub streams: usize,
}

/// One trending track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrendingItem {
    /// The track.
    pub track: TrackView,
    /// Decayed stream count (half-life 24 h).
    pub score: f64,
    /// Streams in the window (7 days).
    pub streams: u64,
}

/// `GET /v1/trending`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trending {
    /// The region asked for; `null`: the world.
    pub region: Option<String>,
    /// The genre asked for; `null`: all.
    pub genre: Option<String>,
    /// Most streamed first.
    pub items: Vec<TrendingItem>,
}

/// Streams the fraud rules excluded, per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Flagged {
    /// The same track over and over.
    pub looping: u64,
    /// Streams from places too far apart for the time between them.
    pub impossible_travel: u64,
    /// More streams in a window than anyone listens to.
    pub burst: u64,
}

/// A track's line in a royalty report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackRoyalty {
    /// The track.
    pub track_id: String,
    /// Its title; `null` if it was deleted since.
    pub title: Option<String>,
    /// Its artist.
    pub artist_id: String,
    /// Counted streams.
    pub streams: u64,
    /// Its share of the counted streams, 0 to 1.
    pub share: f64,
}

/// An artist's line in a royalty report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtistRoyalty {
    /// The artist.
    pub artist_id: String,
    /// Its display name.
    pub name: Option<String>,
    /// Counted streams.
    pub streams: u64,
    /// Its share of the counted streams, 0 to 1.
    pub share: f64,
}

/// `GET /v1/royalties`: a month's qualified streams per track and artist, fraud excluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Royalties {
    /// `YYYY-MM`.
    pub month: String,
    /// Qualified streams in the month.
    pub streams: u64,
    /// Streams counted (not flagged).
    pub counted: u64,
    /// Streams flagged, per rule.
    pub flagged: Flagged,
    /// Tracks with counted streams.
    pub tracks_total: usize,
    /// Artists with counted streams.
    pub artists_total: usize,
    /// The top tracks (at most `limit`).
    pub tracks: Vec<TrackRoyalty>,
    /// The top artists (at most `limit`).
    pub artists: Vec<ArtistRoyalty>,
}
