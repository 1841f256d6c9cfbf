//! The state every handler shares, and the wall clock handlers may read.

use std::net::SocketAddr;
use std::sync::Arc;

use protocol::Identity;
use tokio::sync::Semaphore;

use crate::config::OriginConfig;
use crate::metrics::Metrics;
use crate::store::Store;

/// The state every handler shares: one pointer, so handing it to a request is one reference
/// count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Shares `parts` among the handlers.
    pub fn new(parts: Shared) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// Metadata and chunks.
    pub store: Arc<Store>,
    /// The origin's signing identity (manifests, licenses).
    pub identity: Arc<Identity>,
    /// Key of the HMAC that signs chunk URLs.
    pub url_key: Arc<[u8; 32]>,
    /// Settings.
    pub config: Arc<OriginConfig>,
    /// The tracker shards, checked (from `config`).
    pub trackers: Arc<crate::config::TrackerShards>,
    /// Base URL for chunk URLs.
    pub public_url: String,
    /// Where the QUIC chunk protocol listens.
    pub quic_addr: SocketAddr,
    /// Bounds concurrent ingest jobs.
    pub ingest_slots: Arc<Semaphore>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The catalog's search index.
    pub search: Arc<crate::search::Search>,
    /// Trending and the other in-memory listening state.
    pub activity: Arc<crate::events::Activity>,
    /// Rate limits.
    pub limiter: Arc<crate::ratelimit::Limiter>,
    /// The recommendation model.
    pub recommender: Arc<crate::recommendations::Recommender>,
    /// Rendered track views for list reads.
    pub track_views: Arc<crate::publish::TrackViews>,
    /// Published renditions' manifests, shared with the QUIC chunk service.
    pub chunk_source: Arc<crate::chunk_source::StoreChunkSource>,
    /// Uploads under way per account.
    pub account_ingests: Arc<crate::publish::AccountIngests>,
    /// The bounded argon2 pool.
    pub passwords: Arc<crate::passwords::PasswordPool>,
    /// Which region a sign-up gets.
    pub region_rules: Arc<crate::config::RegionRules>,
    /// What the operator console shows of traffic and super-nodes.
    pub traffic: Arc<crate::traffic::TrafficLog>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("public_url", &self.public_url)
            .finish()
    }
}

pub use crate::now_ms;

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
