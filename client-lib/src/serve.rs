//! Serving peers: a client shares the chunks in its cache with licensed peers, a few upload
//! slots at a time by priority (playing before prefetch before offline sync), within an upload
//! cap, and tells the tracker which renditions it holds in full and which it is still
//! downloading (a partial holder: the chunks it holds from the first, and how fast that
//! grows), so peers starting the same track can fetch from it before it has finished.
//!
//! On by default; off with [`ServeConfig::enabled`], and off on metered networks
//! ([`ServeConfig::metered`]). Every request is checked like anywhere else: the requester's
//! license must be the origin's, bound to the requester, cover the rendition, and the track
//! must be licensed in the requester's region and in this client's own.

use std::net::SocketAddr;
use std::sync::Arc;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use protocol::wire::{
    ANNOUNCE_PARTIAL_MAX, ANNOUNCE_PROOFS_MAX, ANNOUNCE_RENDITIONS_MAX, Announce, ErrorCode,
    NodeRole, Partial, Refresh, Request, Response, announce_set,
};
use protocol::{LicenseClaims, LicenseToken, NodeId, Region, RenditionId, codec};
use tokio::task::JoinHandle;
use transport::chunks::{ChunkService, system_clock};
use transport::upload::UploadGate;
use transport::{Endpoint, TransportError};

use crate::cache::ClientCache;
use api::client::{NodeAddr, Trackers};

/// How soon a client announces again while the tracker still wants proof of renditions it
/// holds ([`Serving::catching_up`]): each announce proves up to
/// [`ANNOUNCE_PROOFS_MAX`] tracks, so a cache of 2,000 tracks is listed within about a
/// minute of a start or a tracker restart.
pub const ANNOUNCE_CATCH_UP: std::time::Duration =
    std::time::Duration::from_millis(policy::announce::CATCH_UP_MS);

/// The listener's sharing settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Share at all.
    pub enabled: bool,
    /// The network is metered (mobile data): do not upload.
    pub metered: bool,
    /// Concurrent uploads.
    pub upload_slots: usize,
    /// Upload cap in kbit/s (none: no cap).
    pub upload_kbps: Option<u64>,
    /// Announce renditions still downloading (a partial holder), not only whole ones.
    pub partial: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            metered: false,
            upload_slots: 4,
            upload_kbps: Some(2_000),
            partial: true,
        }
    }
}

impl ServeConfig {
    /// True when this configuration uploads.
    pub fn uploads(&self) -> bool {
        self.enabled && !self.metered
    }
}

/// Least time between two announces of this client: a tracker refuses announces closer
/// than a second apart, so a later one waits rather than being lost.
pub const ANNOUNCE_GAP: std::time::Duration =
    std::time::Duration::from_millis(policy::announce::GAP_MS);

/// Tracker shards whose accepted set a client remembers for refreshing.
const SETS_KEPT: usize = 64;

/// How long an announce waits for one tracker shard's answer.
pub const ANNOUNCE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// A running share of the cache.
#[derive(Debug)]
pub struct Serving {
    task: JoinHandle<()>,
    gate: Arc<UploadGate>,
    config: ServeConfig,
    region: Region,
    /// Renditions the tracker accepted in the last announce: they need no proof again.
    accepted: std::sync::Mutex<HashSet<RenditionId>>,
    /// Renditions the tracker left unproven although this client sent the license it keeps
    /// for them (or keeps none), with that license: not announced again until the cache
    /// keeps another (the track was played again).
    refused: std::sync::Mutex<HashMap<RenditionId, Option<LicenseToken>>>,
    /// The last ack left renditions unproven that a kept license not yet sent may prove.
    catching_up: AtomicBool,
    /// Renditions being downloaded: the chunks held from the first, and when, as first
    /// seen ([`Serving::downloading`] or the first announce naming it): the base of the
    /// growth rate announced, and the play rate claimed until it is measured.
    progress: std::sync::Mutex<HashMap<RenditionId, (u32, std::time::Instant, u32)>>,
    /// Per tracker shard, [`protocol::wire::announce_set`] of the last announce it accepted
    /// whole (nothing unproven): while the shard's part of the cache is that set, a
    /// [`Refresh`] keeps it alive instead of the set going over again.
    sets: std::sync::Mutex<HashMap<NodeId, [u8; 16]>>,
    /// When the last announce went out; held for the whole announce, so announces go out one
    /// at a time, [`ANNOUNCE_GAP`] apart.
    announcing: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The claims inside a license this client holds (its own, from the origin).
pub fn own_claims(license: &LicenseToken) -> Option<LicenseClaims> {
    codec::decode(&license.claims).ok()
}

impl Serving {
    /// Starts serving `cache` on `endpoint` to peers holding licenses from `issuer`, for a
    /// client in `region`. `None` when the configuration does not upload.
    pub fn start(
        endpoint: &Endpoint,
        cache: Arc<ClientCache>,
        issuer: NodeId,
        region: Region,
        config: ServeConfig,
    ) -> Option<Self> {
        if !config.uploads() {
            return None;
        }
        let gate = Arc::new(UploadGate::new(
            config.upload_slots,
            config.upload_kbps.map(|kbps| kbps * 1000 / 8),
        ));
        let service = ChunkService::new(cache, issuer, system_clock())
            .with_region(region)
            .with_upload_gate(gate.clone());
        let task = tokio::spawn(transport::serve(endpoint.clone(), Arc::new(service)));
        Some(Self {
            task,
            gate,
            config,
            region,
            accepted: std::sync::Mutex::new(HashSet::new()),
            refused: std::sync::Mutex::new(HashMap::new()),
            catching_up: AtomicBool::new(false),
            progress: std::sync::Mutex::new(HashMap::new()),
            announcing: tokio::sync::Mutex::new(None),
            sets: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// A download of `rendition` starts, with `held` chunks from the first already here,
    /// for a track that plays `play_per_min` chunks a minute: the growth announced for it is
    /// measured from now ([`policy::announce::claimed_per_min`]).
    pub fn downloading(&self, rendition: RenditionId, held: u32, play_per_min: u32) {
        let mut progress = lock(&self.progress);
        if progress.len() >= 4 * ANNOUNCE_PARTIAL_MAX {
            progress.clear();
        }
        progress.insert(rendition, (held, std::time::Instant::now(), play_per_min));
    }

    /// The announced figures of renditions held in part: each one's growth since its
    /// download started ([`policy::announce::claimed_per_min`]).
    fn partial_figures(&self, held: &[(RenditionId, u32)]) -> Vec<Partial> {
        let mut progress = lock(&self.progress);
        progress.retain(|rendition, _| held.iter().any(|(r, _)| r == rendition));
        let now = std::time::Instant::now();
        held.iter()
            .map(|&(rendition, held)| {
                // A download this client did not see start (one left from an earlier run)
                // claims no growth until it has been watched.
                let (base, since, play) = *progress.entry(rendition).or_insert((held, now, 0));
                let elapsed_ms = now.duration_since(since).as_millis() as u64;
                Partial {
                    rendition,
                    held,
                    per_min: policy::announce::claimed_per_min(base, held, elapsed_ms, play),
                }
            })
            .collect()
    }

    /// Upload capacity to spare now, in kbit/s (what the tracker ranks by).
    pub fn spare_kbps(&self) -> u32 {
        let free = self.gate.slots_free() as f64 / self.gate.slots_total() as f64;
        (self.config.upload_kbps.unwrap_or(10_000) as f64 * free) as u32
    }

    /// True when the tracker has not yet accepted renditions this client can prove (more
    /// than one announce carries, or the tracker forgot them): announce again soon, not in
    /// a refresh period.
    pub fn catching_up(&self) -> bool {
        self.catching_up.load(Ordering::Relaxed)
    }

    /// Tells the tracker shards which renditions this client holds in full, and which in
    /// part (the most recently fetched [`ANNOUNCE_PARTIAL_MAX`]), reachable at
    /// `addr`: each rendition to its own shard ([`Trackers::shard_of`]). Announces go out one
    /// at a time, at least [`ANNOUNCE_GAP`] apart. `credential` is any
    /// current license of this client. Renditions a shard has not accepted before, and the
    /// credential does not cover, go with the license kept for them in `cache` as proof (at
    /// most [`ANNOUNCE_PROOFS_MAX`] tokens per shard; the rest are proved in the next
    /// announces, which [`Serving::catching_up`] says to send soon). A rendition refused with
    /// the license kept for it is not announced again until the cache keeps another. Returns
    /// the shortest announce TTL (ms) of the shards that answered; fails when none did.
    pub async fn announce(
        &self,
        endpoint: &Endpoint,
        trackers: &Trackers,
        credential: &LicenseToken,
        cache: &ClientCache,
        addr: SocketAddr,
    ) -> anyhow::Result<u32> {
        let mut last = self.announcing.lock().await;
        if let Some(wait) = last.and_then(|at| ANNOUNCE_GAP.checked_sub(at.elapsed())) {
            tokio::time::sleep(wait).await;
        }
        let announced = self
            .announce_now(endpoint, trackers, credential, cache, addr)
            .await;
        *last = Some(std::time::Instant::now());
        announced
    }

    async fn announce_now(
        &self,
        endpoint: &Endpoint,
        trackers: &Trackers,
        credential: &LicenseToken,
        cache: &ClientCache,
        addr: SocketAddr,
    ) -> anyhow::Result<u32> {
        let partial_max = if self.config.partial {
            ANNOUNCE_PARTIAL_MAX
        } else {
            0
        };
        let holdings = cache.holdings(ANNOUNCE_RENDITIONS_MAX, partial_max);
        let mut renditions = holdings.whole;
        let mut held_in_part = holdings.partial;
        {
            // What the tracker refused with the license kept for it is not sent again until
            // the cache keeps another.
            let mut refused = lock(&self.refused);
            refused.retain(|rendition, _| {
                renditions.contains(rendition) || held_in_part.iter().any(|(r, _)| r == rendition)
            });
            let retry = |rendition: &RenditionId| match refused.get(rendition) {
                Some(tried) => cache.license(rendition) != *tried,
                None => true,
            };
            renditions.retain(|rendition| retry(rendition));
            held_in_part.retain(|(rendition, _)| retry(rendition));
        }
        let partial = self.partial_figures(&held_in_part);
        let mut groups: Vec<(NodeAddr, Vec<RenditionId>, Vec<Partial>)> = trackers
            .split(renditions.iter().copied())
            .into_iter()
            .map(|(tracker, renditions)| (tracker, renditions, Vec::new()))
            .collect();
        for held in partial {
            let Some(shard) = trackers.shard_of(&held.rendition) else {
                continue;
            };
            match groups.iter_mut().find(|(tracker, ..)| *tracker == shard) {
                Some((_, _, group)) => group.push(held),
                None => groups.push((shard, Vec::new(), vec![held])),
            }
        }
        if groups.is_empty()
            && let Some(first) = trackers.all().first()
        {
            // Nothing to announce: the first shard still hears this client is here.
            groups.push((*first, Vec::new(), Vec::new()));
        }
        let mut accepted = HashSet::new();
        let mut pending = false;
        let mut shortest: Option<u32> = None;
        let mut failure = None;
        // Shards in parallel, each with its own wait: one that is down delays nobody.
        let answers = futures_util::future::join_all(groups.into_iter().map(
            |(tracker, renditions, partial)| async move {
                let announced = tokio::time::timeout(
                    ANNOUNCE_WAIT,
                    self.announce_to(
                        endpoint,
                        tracker,
                        credential,
                        cache,
                        addr,
                        (renditions, partial),
                    ),
                )
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {ANNOUNCE_WAIT:?}")));
                (tracker, announced)
            },
        ))
        .await;
        for (tracker, announced) in answers {
            match announced {
                Ok((ttl_ms, taken, more)) => {
                    shortest = Some(shortest.map_or(ttl_ms, |known| known.min(ttl_ms)));
                    accepted.extend(taken);
                    pending |= more;
                }
                Err(error) => {
                    tracing::debug!(%error, %tracker, "a tracker shard did not take the announce");
                    failure = Some(error);
                }
            }
        }
        self.catching_up.store(pending, Ordering::Relaxed);
        *lock(&self.accepted) = accepted;
        match (shortest, failure) {
            (Some(ttl_ms), _) => Ok(ttl_ms),
            (None, Some(error)) => Err(error),
            (None, None) => anyhow::bail!("no tracker to announce to"),
        }
    }

    /// One shard's announce of `held` (renditions whole, renditions in part): (TTL,
    /// renditions it accepted, whether some left unproven may be proved by a kept license
    /// not sent yet). When the shard accepted this very set last time, a [`Refresh`] goes
    /// instead; if the shard no longer knows the set (`set_unknown`, or a tracker without
    /// refreshes), the announce in full follows.
    async fn announce_to(
        &self,
        endpoint: &Endpoint,
        tracker: NodeAddr,
        credential: &LicenseToken,
        cache: &ClientCache,
        addr: SocketAddr,
        (renditions, partial): (Vec<RenditionId>, Vec<Partial>),
    ) -> anyhow::Result<(u32, Vec<RenditionId>, bool)> {
        let mut named = renditions.clone();
        named.extend(partial.iter().map(|held| held.rendition));
        let set = announce_set(
            renditions.iter(),
            partial.iter().map(|held| &held.rendition),
        );
        let peer = endpoint.connect(tracker.node, tracker.addr).await?;
        if lock(&self.sets).get(&tracker.node) == Some(&set) {
            let refresh = Request::Refresh(Refresh {
                set,
                region: self.region,
                role: NodeRole::Client,
                addrs: vec![addr],
                partial: partial.clone(),
                upload_spare_kbps: self.spare_kbps(),
                credential: credential.clone(),
            });
            match peer.request_one(&refresh).await {
                Ok(Response::AnnounceAck { ttl_ms, .. }) => return Ok((ttl_ms, named, false)),
                Ok(other) => anyhow::bail!("unexpected tracker answer {other:?}"),
                // The shard no longer holds the set (restarted, reported, expired, ranked
                // anew) or predates refreshes: the set goes in full.
                Err(TransportError::Remote(error))
                    if matches!(error.code, ErrorCode::SetUnknown | ErrorCode::BadRequest) =>
                {
                    tracing::debug!(%error, "refresh not taken: announcing in full");
                    lock(&self.sets).remove(&tracker.node);
                }
                // Refused for the node's own standing (too soon, quarantined): so would an
                // announce be.
                Err(error) => return Err(error.into()),
            }
        }
        let (proofs, proved) = self.proofs(credential, cache, &named);
        let request = Request::Announce(Announce {
            partial,
            region: self.region,
            role: NodeRole::Client,
            addrs: vec![addr],
            renditions: renditions.clone(),
            upload_spare_kbps: self.spare_kbps(),
            credential: credential.clone(),
            proofs,
        });
        let answer = peer.request_one(&request).await.inspect_err(|_| {
            lock(&self.sets).remove(&tracker.node);
        });
        match answer.context("tracker refused the announce")? {
            Response::AnnounceAck { ttl_ms, unproven } => {
                let mut sets = lock(&self.sets);
                if unproven.is_empty() {
                    // Shards come from grants; a client that met many forgets them all.
                    if sets.len() >= SETS_KEPT && !sets.contains_key(&tracker.node) {
                        sets.clear();
                    }
                    sets.insert(tracker.node, set);
                } else {
                    sets.remove(&tracker.node);
                }
                drop(sets);
                let unproven: HashSet<RenditionId> = unproven.into_iter().collect();
                let mut pending = false;
                {
                    let mut refused = lock(&self.refused);
                    for rendition in &unproven {
                        let kept = cache.license(rendition);
                        if kept.is_none() || proved.contains(rendition) {
                            refused.insert(*rendition, kept);
                        } else {
                            pending = true;
                        }
                    }
                }
                if !unproven.is_empty() {
                    tracing::debug!(
                        unproven = unproven.len(),
                        pending,
                        "the tracker wants proof of some cached renditions"
                    );
                }
                let taken = named
                    .into_iter()
                    .filter(|rendition| !unproven.contains(rendition))
                    .collect();
                Ok((ttl_ms, taken, pending))
            }
            other => anyhow::bail!("unexpected tracker answer {other:?}"),
        }
    }

    /// The kept licenses proving the renditions of `renditions` that the tracker has not
    /// accepted yet and `credential` does not cover, deduplicated, at most
    /// [`ANNOUNCE_PROOFS_MAX`]; and the renditions they cover.
    fn proofs(
        &self,
        credential: &LicenseToken,
        cache: &ClientCache,
        renditions: &[RenditionId],
    ) -> (Vec<LicenseToken>, HashSet<RenditionId>) {
        let covered = own_claims(credential);
        let accepted = lock(&self.accepted).clone();
        let mut proofs: Vec<LicenseToken> = Vec::new();
        let mut proved = HashSet::new();
        for rendition in renditions {
            if accepted.contains(rendition)
                || proved.contains(rendition)
                || covered
                    .as_ref()
                    .is_some_and(|claims| claims.permits(rendition))
            {
                continue;
            }
            let Some(token) = cache.license(rendition) else {
                continue;
            };
            if token == *credential || proofs.contains(&token) {
                continue;
            }
            if proofs.len() >= ANNOUNCE_PROOFS_MAX {
                break;
            }
            if let Some(claims) = own_claims(&token) {
                proved.extend(renditions.iter().filter(|held| claims.permits(held)));
            }
            proofs.push(token);
        }
        (proofs, proved)
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
