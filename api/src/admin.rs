//! What an admin reads and changes: accounts' entitlements (`PATCH
//! /v1/admin/accounts/{username}`, `GET /v1/admin/accounts`), the origin's overview
//! (`GET /v1/admin/overview`) and its traffic over time (`GET /v1/admin/traffic`).

use serde::{Deserialize, Serialize};

use crate::accounts::{Role, Tier};

/// The fields an admin may change; those left out stay as they are.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountChange {
    /// New role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// New tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// New region, an assigned ISO 3166-1 alpha-2 code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::assigned_region_schema)]
    pub region: Option<String>,
}

/// An account as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountView {
    /// Account id.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Tier.
    pub tier: Tier,
    /// Region.
    pub region: String,
}

/// `GET /v1/admin/accounts`: accounts whose username contains the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountList {
    /// Matching accounts, by username.
    pub items: Vec<AccountView>,
    /// Whether the search stopped before looking at every account (refine the query).
    pub truncated: bool,
}

/// The catalog's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CatalogSize {
    /// Tracks.
    pub tracks: u64,
    /// Albums (`null` while the search index is being built).
    pub albums: Option<u64>,
    /// Artists with at least one track (`null` while the search index is being built).
    pub artists: Option<u64>,
}

/// Ingest jobs since the origin started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestJobs {
    /// Transcoding now.
    pub running: u64,
    /// Finished with a track.
    pub done: u64,
    /// Refused for bad input.
    pub rejected: u64,
    /// Failed on the origin's side.
    pub failed: u64,
    /// Audio ingested, seconds.
    pub audio_s: u64,
}

/// Chunk bytes the origin served since it started, by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Egress {
    /// Over QUIC (the chunk protocol).
    pub quic: u64,
    /// Over HTTP (signed chunk URLs, a CDN's misses).
    pub http: u64,
    /// Inline with play authorizations (the first-chunk path).
    pub opening: u64,
}

/// A tracker shard as the origin sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackerState {
    /// Its QUIC address.
    pub addr: String,
    /// Its node id.
    pub node_id: String,
    /// Whether it answered a ping just now.
    pub online: bool,
    /// The ping's round trip, ms, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

/// A super-node holding a current role token from this origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuperNodeState {
    /// Its node id.
    pub node_id: String,
    /// The super-node account.
    pub username: String,
    /// Its region.
    pub region: String,
    /// When its token runs out, Unix ms (it renews before).
    pub expires_at_ms: u64,
}

/// Requests refused by one rate-limit bucket since the origin started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Refusals {
    /// The bucket (`ip`, `login`, `search`, ...).
    pub bucket: String,
    /// Requests refused.
    pub refused: u64,
}

/// `GET /v1/admin/overview`: what an operator looks at first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Overview {
    /// When this was read, Unix ms.
    pub at_ms: u64,
    /// Since when the origin runs, Unix ms.
    pub started_at_ms: u64,
    /// The catalog.
    pub catalog: CatalogSize,
    /// Ingest jobs.
    pub ingest: IngestJobs,
    /// Chunk bytes served.
    pub egress: Egress,
    /// Tracker shards, pinged.
    pub trackers: Vec<TrackerState>,
    /// Super-nodes with a current role token.
    pub super_nodes: Vec<SuperNodeState>,
    /// Rate-limit refusals by bucket.
    pub refusals: Vec<Refusals>,
}

/// One minute of traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrafficMinute {
    /// The minute's start, Unix ms.
    pub at_ms: u64,
    /// Chunk bytes this origin served (measured).
    pub origin_egress: u64,
    /// Bytes listeners reported getting from other listeners.
    pub peers: u64,
    /// Bytes listeners reported getting from super-nodes.
    pub super_nodes: u64,
    /// Bytes listeners reported getting from the origin.
    pub origin_reported: u64,
    /// Bytes listeners reported from their cache.
    pub cache: u64,
}

/// `GET /v1/admin/traffic`: the last day, a minute at a time (minutes with nothing are
/// left out), as this origin saw it since it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Traffic {
    /// Oldest first.
    pub minutes: Vec<TrafficMinute>,
}
