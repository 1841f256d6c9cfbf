//! `POST /v1/tracks/{id}/play`: play authorization.

use serde::{Deserialize, Serialize};

use crate::network::OriginAddr;

/// Most opening chunks one play authorization carries.
pub use protocol::manifest::OPENING_CHUNKS_MAX;
/// Most audio `opening_ms` may ask the opening to reach.
pub const OPENING_MS_MAX: u32 = 60_000;

/// Body of `POST /v1/tracks/{id}/play`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayRequest {
    /// `low`, `normal` or `high`; default normal (free) or high (premium).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(low|normal|high)$")]
    pub quality: Option<String>,
    /// Ask for a 30-day offline license (counts against the device limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<bool>,
    /// The client's node id: the license is bound to it.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub node_id: String,
    /// Chunks from the start of the rendition to include in the answer (0 to
    /// [`OPENING_CHUNKS_MAX`], default 0): the first-chunk path. A client that asks starts
    /// decoding one round trip after pressing play instead of two.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::optional"
    )]
    #[schema(minimum = 0, maximum = 2)]
    pub opening_chunks: Option<u32>,
    /// Carry more opening chunks, within [`OPENING_CHUNKS_MAX`], until they reach this far
    /// into the audio (milliseconds, 0 to [`OPENING_MS_MAX`]; by the manifest's chunk timing).
    /// Chunks are cut by bytes and the first one holds the stream headers, so one chunk may
    /// play for a fraction of a second: a player that starts on it waits for the next. Default
    /// 0: `opening_chunks` alone. Counted from the first chunk whatever `opening_chunks` says
    /// (with `opening_chunks` 0 it alone decides the opening).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::int::optional"
    )]
    #[schema(minimum = 0, maximum = 60000)]
    pub opening_ms: Option<u32>,
}

/// The answer of `POST /v1/tracks/{id}/play`: everything needed to fetch, verify, decrypt
/// and play one rendition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlayGrant {
    /// The track.
    pub track_id: String,
    /// The quality granted.
    pub quality: String,
    /// The rendition.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub rendition_id: String,
    /// The signed manifest (codec bytes, hex). Verify it with the pinned origin key.
    pub manifest: String,
    /// The content key, hex (32 bytes).
    pub content_key: String,
    /// The license (codec bytes, hex), bound to the node id asked with.
    pub license: String,
    /// Chunk URLs: `{chunk_id}` filled in, signed for this rendition, account and region.
    pub chunk_url_template: String,
    /// The origin's QUIC endpoint.
    pub origin: OriginAddr,
    /// The tracker shard of this rendition, `NODE_ID@HOST:PORT`, if the operator configured
    /// trackers: where to ask for its peers.
    pub tracker: Option<String>,
    /// Every tracker shard (as `GET /v1/network` lists them): where to announce what the
    /// client holds, each rendition to its own shard.
    #[serde(default)]
    pub trackers: Vec<String>,
    /// Playback gain to -14 LUFS, in dB.
    pub gain_db: f64,
    /// Duration.
    pub duration_ms: u64,
    /// When the license expires (Unix ms).
    pub expires_at: u64,
    /// Opening chunks (base64 ciphertext, from chunk 0), as asked for.
    pub opening_chunks: Vec<String>,
}
