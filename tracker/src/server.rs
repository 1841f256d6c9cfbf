//! The tracker's QUIC driver: verifies license signatures (with a cache), reads the clock, and
//! hands each request to the sans-IO [`Tracker`] core behind a mutex.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::wire::{ErrorCode, Request, Response};
use protocol::{LicenseClaims, LicenseToken, NodeId, UnixMillis};
use transport::chunks::{Clock, LicenseCache};
use transport::{Responder, Service, TransportError};

use crate::core::{Tracker, TrackerConfig, TrackerStats};

/// Tokens whose signature verified, remembered so repeated announces and queries cost a hash
/// (~300 bytes each).
pub const TRACKER_LICENSE_CACHE_MAX: usize = 65_536;

/// Serves the tracker protocol (`Announce`, `PeerQuery`, `Popular`, `Report`, `Ping`).
pub struct TrackerService {
    core: Mutex<Tracker>,
    licenses: LicenseCache,
    clock: Clock,
}

impl std::fmt::Debug for TrackerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerService")
            .field("issuer", self.licenses.issuer())
            .finish()
    }
}

impl TrackerService {
    /// A tracker trusting licenses signed by `issuer` (the origin's node id).
    pub fn new(config: TrackerConfig, issuer: NodeId, clock: Clock) -> Self {
        Self {
            core: Mutex::new(Tracker::new(config)),
            licenses: LicenseCache::new(issuer, TRACKER_LICENSE_CACHE_MAX),
            clock,
        }
    }

    fn core(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.core
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Counters, peers and renditions now.
    pub fn snapshot(&self) -> (TrackerStats, usize, usize) {
        let core = self.core();
        (core.stats(), core.peers(), core.renditions())
    }

    /// Runs [`Tracker::expire`] now.
    pub fn expire(&self) -> usize {
        let now = (self.clock)();
        self.core().expire(now)
    }

    /// Runs [`Tracker::expire`] every `every` until the returned task is aborted.
    pub fn spawn_janitor(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                let removed = service.expire();
                if removed > 0 {
                    tracing::debug!(removed, "expired peers");
                }
            }
        })
    }

    fn verify(
        &self,
        peer: &NodeId,
        token: &LicenseToken,
        now: UnixMillis,
    ) -> Result<LicenseClaims, protocol::wire::WireError> {
        self.licenses.verify(peer, token, now)
    }

    /// Answers one request (the part of [`Service::handle`] that does not write).
    pub fn answer(&self, peer: NodeId, request: &Request) -> Response {
        let now = (self.clock)();
        let result = match request {
            Request::Announce(announce) => self
                .verify(&peer, &announce.credential, now)
                .and_then(|claims| self.core().announce(now, &peer, &claims, announce))
                .map(|ttl_ms| Response::AnnounceAck { ttl_ms }),
            Request::PeerQuery(query) => self
                .verify(&peer, &query.license, now)
                .and_then(|claims| self.core().query(now, &peer, &claims, query))
                .map(Response::PeerList),
            Request::Popular(query) => self
                .verify(&peer, &query.credential, now)
                .and_then(|claims| {
                    self.core()
                        .popular(now, &peer, &claims, usize::from(query.want))
                })
                .map(Response::Popular),
            Request::Report(report) => self
                .verify(&peer, &report.license, now)
                .and_then(|claims| self.core().report(now, &peer, &claims, report))
                .map(|()| Response::Reported),
            Request::Ping { nonce } => Ok(Response::Pong { nonce: *nonce }),
            Request::ChunkRange(_) | Request::Manifest(_) => Err(protocol::wire::WireError::new(
                ErrorCode::BadRequest,
                "this node is a tracker: it serves no chunks",
            )),
        };
        result.unwrap_or_else(Response::Error)
    }
}

impl Service for TrackerService {
    async fn handle(
        &self,
        peer: NodeId,
        request: Request,
        responder: &mut Responder,
    ) -> Result<(), TransportError> {
        let response = self.answer(peer, &request);
        responder.send(&response).await
    }
}
