//! The tracker's QUIC driver: verifies license signatures (with a cache), reads the clock, and
//! hands each request to the sans-IO [`Tracker`] core behind a mutex.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::wire::{Announce, ErrorCode, Refresh, Request, Response};
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
    relays: Vec<ipnet::IpNet>,
    addresses_replaced: std::sync::atomic::AtomicU64,
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
    ///
    /// The core's maps are keyed by a seed drawn from the OS here, whatever
    /// [`TrackerConfig::hash_seed`] says: peers choose the ids that go in them.
    pub fn new(mut config: TrackerConfig, issuer: NodeId, clock: Clock) -> Self {
        config.hash_seed = rand::random();
        Self {
            core: Mutex::new(Tracker::new(config)),
            licenses: LicenseCache::new(issuer, TRACKER_LICENSE_CACHE_MAX),
            clock,
            relays: Vec::new(),
            addresses_replaced: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Trusts the addresses announced by nodes whose connections come from `relays`: relays
    /// or link emulators the operator runs in front of nodes, whose announced addresses
    /// cannot match what the tracker observes.
    pub fn with_relays(mut self, relays: Vec<ipnet::IpNet>) -> Self {
        self.relays = relays;
        self
    }

    /// Announces whose addresses were replaced by the observed one.
    pub fn addresses_replaced(&self) -> u64 {
        self.addresses_replaced
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The addresses of `addrs` the connection proves, or `None` when all are: an announced
    /// address must be the observed one (`remote`), unless `remote` is a trusted relay. When
    /// none is, the observed address stands in (a QUIC node answers on the socket it dials
    /// from, so behind an endpoint-independent NAT that is where peers reach it).
    pub fn checked_addresses(
        &self,
        addrs: &[SocketAddr],
        remote: SocketAddr,
    ) -> Option<Vec<SocketAddr>> {
        let observed = SocketAddr::new(remote.ip().to_canonical(), remote.port());
        if self
            .relays
            .iter()
            .any(|network| network.contains(&observed.ip()))
        {
            return None;
        }
        let same = |addr: &&SocketAddr| {
            addr.ip().to_canonical() == observed.ip() && addr.port() == observed.port()
        };
        if addrs.iter().all(|addr| same(&addr)) {
            return None;
        }
        self.addresses_replaced
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut checked: Vec<SocketAddr> = addrs.iter().filter(same).copied().collect();
        if checked.is_empty() {
            checked.push(observed);
        }
        Some(checked)
    }

    /// [`TrackerService::answer`] for a request whose connection comes from `remote`: the
    /// addresses of an announce or a refresh are checked against it first
    /// ([`TrackerService::checked_addresses`]).
    pub fn answer_from(&self, peer: NodeId, remote: SocketAddr, request: &Request) -> Response {
        match request {
            Request::Announce(announce) if !announce.addrs.is_empty() => {
                match self.checked_addresses(&announce.addrs, remote) {
                    None => self.answer(peer, request),
                    Some(addrs) => self.answer(
                        peer,
                        &Request::Announce(Announce {
                            addrs,
                            ..announce.clone()
                        }),
                    ),
                }
            }
            Request::Refresh(refresh) if !refresh.addrs.is_empty() => {
                match self.checked_addresses(&refresh.addrs, remote) {
                    None => self.answer(peer, request),
                    Some(addrs) => self.answer(
                        peer,
                        &Request::Refresh(Refresh {
                            addrs,
                            ..refresh.clone()
                        }),
                    ),
                }
            }
            _ => self.answer(peer, request),
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

    /// The claims of `announce`'s proofs worth a signature check, verified: each must decode,
    /// be a play token of the trusted issuer bound to `peer`, and cover an announced
    /// rendition the credential (`claims`) does not. The first proof whose signature fails
    /// ends the checking (an honest node sends none). What a refused proof would have
    /// covered comes back to the node as unproven.
    fn proofs(
        &self,
        peer: &NodeId,
        claims: &LicenseClaims,
        announce: &Announce,
        now: UnixMillis,
    ) -> Vec<LicenseClaims> {
        let mut verified = Vec::new();
        for proof in &announce.proofs {
            let Ok(unverified) = protocol::codec::decode::<LicenseClaims>(&proof.claims) else {
                continue;
            };
            let useful = unverified.node == *peer
                && unverified.issuer == *self.licenses.issuer()
                && matches!(
                    unverified.scope,
                    protocol::license::LicenseScope::Play { .. }
                )
                && announce
                    .renditions
                    .iter()
                    .any(|rendition| unverified.permits(rendition) && !claims.permits(rendition));
            if !useful {
                continue;
            }
            match self.licenses.verify_genuine(peer, proof, now) {
                Ok(genuine) => verified.push(genuine),
                Err(_) => break,
            }
        }
        verified
    }

    /// Answers one request (the part of [`Service::handle`] that does not write), taking
    /// announced addresses as they are: [`TrackerService::answer_from`] checks them.
    pub fn answer(&self, peer: NodeId, request: &Request) -> Response {
        let now = (self.clock)();
        let result = match request {
            Request::Announce(announce) => self
                .verify(&peer, &announce.credential, now)
                .and_then(|claims| {
                    let proofs = if announce.proofs.is_empty() {
                        Vec::new()
                    } else {
                        // What the core would refuse anyway is refused before any proof's
                        // signature is checked.
                        let precheck = self.core().precheck_announce(now, &peer, &claims, announce);
                        if precheck.is_err() {
                            return self.core().announce(now, &peer, &claims, &[], announce);
                        }
                        self.proofs(&peer, &claims, announce, now)
                    };
                    self.core().announce(now, &peer, &claims, &proofs, announce)
                })
                .map(|announced| Response::AnnounceAck {
                    ttl_ms: announced.ttl_ms,
                    unproven: announced.unproven,
                }),
            Request::Refresh(refresh) => self
                .verify(&peer, &refresh.credential, now)
                .and_then(|claims| self.core().refresh(now, &peer, &claims, refresh))
                .map(|announced| Response::AnnounceAck {
                    ttl_ms: announced.ttl_ms,
                    unproven: announced.unproven,
                }),
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
        let response = self.answer_from(peer, responder.remote_addr(), &request);
        responder.send(&response).await
    }
}
