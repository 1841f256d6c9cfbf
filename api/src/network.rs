//! Where the network is, and super-node role tokens.

use serde::{Deserialize, Serialize};

/// The origin's QUIC endpoint and the key it signs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OriginAddr {
    /// The origin's node id: it signs manifests and licenses.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub node_id: String,
    /// Its QUIC address, `HOST:PORT`.
    pub quic: String,
}

/// `GET /v1/network`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Network {
    /// The origin.
    pub origin: OriginAddr,
    /// The first tracker shard, `NODE_ID@HOST:PORT`, if the operator configured any (for
    /// clients from before shards; read `trackers`).
    pub tracker: Option<String>,
    /// The tracker shards, `NODE_ID@HOST:PORT` each. A rendition belongs to one of them, by
    /// rendezvous hashing over their node ids (`protocol::shards`): announce it there and ask
    /// there for its peers.
    #[serde(default)]
    pub trackers: Vec<String>,
}

/// Body of `POST /v1/nodes/token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeTokenRequest {
    /// The super-node's node id: the token is bound to it.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub node_id: String,
}

/// The answer of `POST /v1/nodes/token`: a super-node role token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeToken {
    /// The role token (codec bytes, hex), bound to the node.
    pub license: String,
    /// The account's region (the super-node's).
    pub region: String,
    /// When it expires (Unix ms).
    pub expires_at: u64,
    /// The origin.
    pub origin: OriginAddr,
    /// The first tracker shard, if any (see [`Network::trackers`]).
    pub tracker: Option<String>,
    /// The tracker shards (see [`Network::trackers`]).
    #[serde(default)]
    pub trackers: Vec<String>,
}
