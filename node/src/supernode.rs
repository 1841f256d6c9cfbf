//! The super-node driver: identity, role token, disk cache, the serving endpoint, and the
//! loops that announce, learn popularity and fill the cache.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use policy::fill::{FillConfig, FillPlanner, Outcome};
use protocol::wire::{
    ANNOUNCE_RENDITIONS_MAX, Announce, ErrorCode, NodeRole, PeerQuery, PeerReport, PopularQuery,
    Priority, Refresh, Request, Response, announce_set,
};
use protocol::{LicenseToken, NodeId, Region, RenditionId};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use transport::chunks::{ChunkService, Clock, system_clock};
use transport::upload::UploadGate;
use transport::{Endpoint, Limits};

use crate::fetch::{BanList, FetchError, FetchRequest, Source, fetch_rendition};
use crate::store::DiskCache;
use api::client::{NodeAddr, OriginApi, RoleToken, Trackers};

/// Settings of a super-node.
#[derive(Debug, Clone)]
pub struct SuperNodeConfig {
    /// Cache directory (also holds `node.key`, the node's identity).
    pub cache_dir: PathBuf,
    /// Byte budget of the cache.
    pub cache_bytes: u64,
    /// Share of the budget the most popular renditions may pin.
    pub pin_fraction: f64,
    /// Where to accept QUIC connections.
    pub listen: SocketAddr,
    /// The address to announce, when it differs from `listen` (NAT, 0.0.0.0).
    pub public_addr: Option<SocketAddr>,
    /// The origin's HTTP base URL.
    pub origin_url: String,
    /// The super-node account.
    pub username: String,
    /// Its password.
    pub password: String,
    /// The tracker shards; default (empty): the ones the origin names.
    pub trackers: Vec<NodeAddr>,
    /// Concurrent uploads.
    pub upload_slots: usize,
    /// Upload cap in bytes per second (none: unlimited).
    pub upload_bytes_per_s: Option<u64>,
    /// Popular renditions asked for each round.
    pub popular_want: u16,
    /// Interval of the popularity round.
    pub refresh: Duration,
    /// Requests for a rendition it does not hold before it fetches it (unpinned).
    pub fill_after_misses: u32,
    /// Renditions fetched at once (`policy::fill::FillConfig::at_once`; two by default).
    pub fills_at_once: usize,
    /// Tracker-independent discovery (Kademlia, mDNS, AutoNAT); `None` turns it off.
    pub discovery: Option<discovery::DiscoveryConfig>,
    /// Fill in the background: a popularity round every `refresh` (the first at start), and
    /// a pull-through fill as soon as a rendition reaches `fill_after_misses`. Off, fills run
    /// only through [`SuperNode::fill_round`] (tests, tools).
    pub background_fill: bool,
    /// Addresses dialled through others (a link emulator or relay in front of them).
    pub routes: transport::Routes,
}

impl SuperNodeConfig {
    /// Defaults for everything but where and who.
    pub fn new(cache_dir: PathBuf, origin_url: String, username: String, password: String) -> Self {
        Self {
            cache_dir,
            cache_bytes: 10 * 1024 * 1024 * 1024,
            pin_fraction: 0.5,
            listen: SocketAddr::from(([0, 0, 0, 0], 4470)),
            public_addr: None,
            origin_url,
            username,
            password,
            trackers: Vec::new(),
            upload_slots: 256,
            upload_bytes_per_s: None,
            popular_want: 200,
            refresh: Duration::from_secs(30),
            fill_after_misses: 2,
            fills_at_once: FillConfig::default().at_once,
            background_fill: true,
            discovery: Some(discovery::DiscoveryConfig::default()),
            routes: transport::Routes::new(),
        }
    }
}

/// Counters of a running super-node.
#[derive(Debug, Default)]
pub struct SuperNodeStats {
    /// Announces acknowledged by the tracker (in full or refreshed).
    pub announces: AtomicU64,
    /// Of those, refreshes: an unchanged set kept alive by its digest.
    pub refreshes: AtomicU64,
    /// Renditions fetched into the cache.
    pub fills: AtomicU64,
    /// Fetches that failed.
    pub fill_failures: AtomicU64,
    /// Bytes fetched from the origin.
    pub bytes_from_origin: AtomicU64,
    /// Bytes fetched from peers.
    pub bytes_from_peers: AtomicU64,
}

struct Shared {
    config: SuperNodeConfig,
    endpoint: Endpoint,
    cache: Arc<DiskCache>,
    api: OriginApi,
    role: Mutex<RoleToken>,
    trackers: Trackers,
    gate: Arc<UploadGate>,
    bans: BanList,
    changed: Notify,
    stats: Arc<SuperNodeStats>,
    announce_addr: SocketAddr,
    discovery: Option<discovery::Discovery>,
    fills: Arc<Fills>,
    /// Per tracker shard, [`protocol::wire::announce_set`] of the last announce it accepted:
    /// refreshed while the shard's part of the cache stays that set.
    sets: Mutex<HashMap<NodeId, [u8; 16]>>,
}

/// The fill policy and the wake-up a pull-through fill sends the fill loop. Shared with the
/// cache's miss hook, which holds no reference back to the super-node.
struct Fills {
    planner: Mutex<FillPlanner>,
    wanted: Notify,
}

impl Fills {
    fn planner(&self) -> std::sync::MutexGuard<'_, FillPlanner> {
        self.planner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Shared {
    fn role(&self) -> RoleToken {
        self.role
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }
}

/// A running super-node.
pub struct SuperNode {
    /// Its node id.
    pub node_id: NodeId,
    /// Where it accepts QUIC connections.
    pub quic_addr: SocketAddr,
    /// The address it advertises to trackers and the DHT.
    pub announce_addr: SocketAddr,
    /// Its region (from the role token).
    pub region: Region,
    /// The tracker shards it announces to (each rendition to its own).
    pub trackers: Trackers,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SuperNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuperNode")
            .field("node_id", &self.node_id)
            .field("quic_addr", &self.quic_addr)
            .finish()
    }
}

/// The file in a super-node's cache directory that keeps the origin key pinned at its first
/// log-in.
pub const ORIGIN_PIN_FILE: &str = "origin.pin";

impl SuperNode {
    /// Starts a super-node: loads or creates its identity, logs in to the origin for a role
    /// token, opens the cache, serves it, and starts announcing and filling.
    pub async fn start(config: SuperNodeConfig) -> anyhow::Result<Self> {
        let identity =
            transport::keyfile::load_or_create_identity(&config.cache_dir.join("node.key"))
                .with_context(|| format!("node key in {}", config.cache_dir.display()))?;
        let node_id = identity.node_id();
        let api = OriginApi::new(&config.origin_url)?;
        // The origin key pinned at the first log-in: a later change is a hard error.
        let pin_path = config.cache_dir.join(ORIGIN_PIN_FILE);
        api.pin_from_file(&pin_path)?;
        let access = api.login(&config.username, &config.password).await?;
        let role = api.role_token(&access, &node_id).await?;
        api.keep_pin(&pin_path)?;
        let origin = role.network.origin.node;
        let region = role.region;
        let clock: Clock = system_clock();
        let cache = Arc::new(DiskCache::open(
            &config.cache_dir,
            config.cache_bytes,
            config.pin_fraction,
            origin,
            clock.clone(),
        )?);
        cache.set_region(region);
        let endpoint = Endpoint::bind_with_routes(
            &identity,
            config.listen,
            Limits::default(),
            config.routes.clone(),
        )
        .with_context(|| format!("binding {}", config.listen))?;
        let quic_addr = endpoint.local_addr()?;
        let gate = Arc::new(UploadGate::new(
            config.upload_slots,
            config.upload_bytes_per_s,
        ));
        let fills = Arc::new(Fills {
            planner: Mutex::new(FillPlanner::new(FillConfig {
                // At least a second: a zero refresh would ask the trackers in a busy loop.
                refresh_ms: config
                    .refresh
                    .as_millis()
                    .try_into()
                    .unwrap_or(u64::MAX)
                    .max(1_000),
                at_once: config.fills_at_once,
                after_misses: config.fill_after_misses,
                ..FillConfig::default()
            })),
            wanted: Notify::new(),
        });
        {
            let fills = fills.clone();
            let clock = clock.clone();
            cache.on_miss(Box::new(move |rendition| {
                if fills.planner().miss(*rendition, clock().0) {
                    fills.wanted.notify_one();
                }
            }));
        }
        let service = ChunkService::new(cache.clone(), origin, clock)
            .with_region(region)
            .with_upload_gate(gate.clone());
        let serve = tokio::spawn(transport::serve(endpoint.clone(), Arc::new(service)));
        let trackers = if config.trackers.is_empty() {
            role.network.trackers.clone()
        } else {
            Trackers::new(config.trackers.clone())
        };
        let announce_addr = config.public_addr.unwrap_or_else(|| {
            transport::keyfile::advertised_addr(quic_addr, role.network.origin.addr)
        });
        let discovery = match &config.discovery {
            Some(settings) => Some(
                discovery::Discovery::start(&identity, settings.clone())
                    .await
                    .context("starting discovery")?,
            ),
            None => None,
        };
        let shared = Arc::new(Shared {
            config,
            endpoint,
            cache,
            api,
            role: Mutex::new(role),
            trackers: trackers.clone(),
            gate,
            bans: BanList::default(),
            changed: Notify::new(),
            stats: Arc::new(SuperNodeStats::default()),
            announce_addr,
            discovery,
            fills,
            sets: Mutex::new(HashMap::new()),
        });
        let announce_addr = shared.announce_addr;
        let mut tasks = vec![
            serve,
            tokio::spawn(renew_role(shared.clone())),
            tokio::spawn(announce_loop(shared.clone())),
        ];
        if shared.config.background_fill {
            tasks.push(tokio::spawn(fill_loop(shared.clone())));
        }
        Ok(Self {
            node_id,
            quic_addr,
            announce_addr,
            region,
            trackers,
            shared,
            tasks,
        })
    }

    /// The disk cache.
    pub fn cache(&self) -> &Arc<DiskCache> {
        &self.shared.cache
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<SuperNodeStats> {
        &self.shared.stats
    }

    /// The upload gate (slots and bandwidth).
    pub fn upload_gate(&self) -> &Arc<UploadGate> {
        &self.shared.gate
    }

    /// The discovery node, when discovery is on.
    pub fn discovery(&self) -> Option<&discovery::Discovery> {
        self.shared.discovery.as_ref()
    }

    /// Runs a popularity round now and every fill it and earlier misses queued, to the end
    /// (tests and tools; the background loop does this as things become due). Returns the
    /// number of renditions filled.
    pub async fn fill_round(&self) -> usize {
        fill_round(&self.shared).await
    }

    /// Announces now (to the tracker; and publishes to the DHT when discovery is on).
    pub async fn announce_now(&self) -> anyhow::Result<u32> {
        publish(&self.shared).await?;
        announce(&self.shared).await
    }

    /// Publishes holdings to the DHT now.
    pub async fn publish_now(&self) -> anyhow::Result<()> {
        publish(&self.shared).await
    }

    /// Stops serving and every loop.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        self.shared.endpoint.close();
        tokio::time::timeout(Duration::from_secs(2), self.shared.endpoint.wait_idle())
            .await
            .ok();
    }
}

/// How long a request waits for one tracker shard's answer.
const TRACKER_WAIT: Duration = Duration::from_secs(5);

/// One request to one tracker shard, waiting at most [`TRACKER_WAIT`] (a shard that is down
/// must not hold up the others, or a fetch).
async fn tracker_request(
    shared: &Shared,
    tracker: NodeAddr,
    request: &Request,
) -> anyhow::Result<Response> {
    let asked = async {
        let peer = shared.endpoint.connect(tracker.node, tracker.addr).await?;
        anyhow::Ok(peer.request_one(request).await?)
    };
    let response = tokio::time::timeout(TRACKER_WAIT, asked)
        .await
        .map_err(|_| {
            anyhow::anyhow!("tracker {tracker} did not answer within {TRACKER_WAIT:?}")
        })??;
    if let Response::Error(error) = &response {
        anyhow::bail!("tracker: {error}");
    }
    Ok(response)
}

fn spare_kbps(shared: &Shared) -> u32 {
    let gate = &shared.gate;
    let free = gate.slots_free() as f64 / gate.slots_total() as f64;
    let capacity_kbps = shared
        .config
        .upload_bytes_per_s
        .map(|rate| rate as f64 * 8.0 / 1000.0)
        .unwrap_or(1_000_000.0);
    (capacity_kbps * free) as u32
}

/// The addresses to advertise: none when AutoNAT found this node unreachable (it then only
/// dials out).
fn advertised_addrs(shared: &Shared) -> Vec<SocketAddr> {
    match &shared.discovery {
        Some(discovery) if discovery.reachability() == discovery::Reachability::Private => {
            Vec::new()
        }
        _ => vec![shared.announce_addr],
    }
}

async fn publish(shared: &Shared) -> anyhow::Result<()> {
    let Some(discovery) = &shared.discovery else {
        return Ok(());
    };
    let role = shared.role();
    let me = protocol::wire::PeerInfo {
        holding: None,
        node: shared.endpoint.node_id(),
        addrs: advertised_addrs(shared),
        region: role.region,
        role: NodeRole::SuperNode,
        upload_spare_kbps: spare_kbps(shared),
    };
    discovery.publish(me, shared.cache.held()).await?;
    Ok(())
}

/// Tracker shards whose accepted set a super-node remembers for refreshing.
const SETS_KEPT: usize = 64;

/// Whether a refresh failed because the shard does not hold the set (`set_unknown`) or does
/// not know refreshes (`bad_request` from a tracker that predates them).
fn set_unknown(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<transport::TransportError>(),
        Some(transport::TransportError::Remote(refused))
            if matches!(refused.code, ErrorCode::SetUnknown | ErrorCode::BadRequest)
    )
}

/// Announces the held renditions, each to its tracker shard (every shard hears of this node,
/// with an empty list when it holds none of its renditions). Returns the shortest TTL of the
/// shards that took it; fails only when none did.
async fn announce(shared: &Shared) -> anyhow::Result<u32> {
    let role = shared.role();
    let held = shared.cache.held();
    let mut groups = shared.trackers.split(held);
    for shard in shared.trackers.all() {
        if !groups.iter().any(|(known, _)| known == shard) {
            groups.push((*shard, Vec::new()));
        }
    }
    let mut shortest: Option<u32> = None;
    let mut failure = None;
    // Shards in parallel, each with its own wait: one that is down delays nobody.
    let answers =
        futures_util::future::join_all(groups.into_iter().map(|(shard, mut renditions)| {
            renditions.truncate(ANNOUNCE_RENDITIONS_MAX);
            let set = announce_set(renditions.iter(), std::iter::empty());
            let refresh = Request::Refresh(Refresh {
                set,
                region: role.region,
                role: NodeRole::SuperNode,
                addrs: advertised_addrs(shared),
                partial: Vec::new(),
                upload_spare_kbps: spare_kbps(shared),
                credential: role.license.clone(),
            });
            let request = Request::Announce(Announce {
                partial: Vec::new(),
                region: role.region,
                role: NodeRole::SuperNode,
                addrs: advertised_addrs(shared),
                renditions,
                upload_spare_kbps: spare_kbps(shared),
                credential: role.license.clone(),
                // The role token covers every rendition.
                proofs: Vec::new(),
            });
            async move {
                let sets = || {
                    shared
                        .sets
                        .lock()
                        .unwrap_or_else(|poison| poison.into_inner())
                };
                if sets().get(&shard.node) == Some(&set) {
                    // The shard took this very set last time: keep it alive by its digest.
                    match tracker_request(shared, shard, &refresh).await {
                        Ok(ack @ Response::AnnounceAck { .. }) => {
                            shared.stats.refreshes.fetch_add(1, Ordering::Relaxed);
                            return (shard, Ok(ack));
                        }
                        Ok(other) => {
                            return (
                                shard,
                                Err(anyhow::anyhow!("unexpected tracker answer {other:?}")),
                            );
                        }
                        // The shard no longer holds the set (restarted, reported, expired,
                        // ranked anew) or predates refreshes: the set goes in full.
                        Err(error) if set_unknown(&error) => {
                            tracing::debug!(%error, "refresh not taken: announcing in full");
                            sets().remove(&shard.node);
                        }
                        // Unreachable, or refused for the node's own standing: an announce
                        // would fare no better; the next one tries.
                        Err(error) => return (shard, Err(error)),
                    }
                }
                let answer = tracker_request(shared, shard, &request).await;
                if let Ok(Response::AnnounceAck { unproven, .. }) = &answer
                    && unproven.is_empty()
                {
                    let mut sets = sets();
                    if sets.len() >= SETS_KEPT && !sets.contains_key(&shard.node) {
                        sets.clear();
                    }
                    sets.insert(shard.node, set);
                }
                (shard, answer)
            }
        }))
        .await;
    for (shard, answer) in answers {
        match answer {
            Ok(Response::AnnounceAck { ttl_ms, .. }) => {
                shared.stats.announces.fetch_add(1, Ordering::Relaxed);
                shortest = Some(shortest.map_or(ttl_ms, |known| known.min(ttl_ms)));
            }
            Ok(other) => failure = Some(anyhow::anyhow!("unexpected tracker answer {other:?}")),
            Err(error) => {
                tracing::debug!(%error, %shard, "a tracker shard did not take the announce");
                failure = Some(error);
            }
        }
    }
    match (shortest, failure) {
        (Some(ttl_ms), _) => Ok(ttl_ms),
        (None, Some(error)) => Err(error),
        (None, None) => anyhow::bail!("no tracker configured"),
    }
}

async fn announce_loop(shared: Arc<Shared>) {
    if shared.trackers.is_empty() {
        tracing::warn!("no tracker configured: peers can find this node only through discovery");
    }
    loop {
        if let Err(error) = publish(&shared).await {
            tracing::debug!(%error, "DHT publish failed; retrying with the next announce");
        }
        if shared.trackers.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                _ = shared.changed.notified() => {}
            }
            continue;
        }
        let wait = match announce(&shared).await {
            // Re-announce at a third of the TTL, so one lost announce does not expire us.
            Ok(ttl_ms) => Duration::from_millis(u64::from(ttl_ms / 3).max(1_000)),
            Err(error) => {
                tracing::warn!(%error, "announce failed; retrying");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.changed.notified() => {
                // Coalesce bursts of changes; the tracker refuses announces closer than 1 s.
                tokio::time::sleep(Duration::from_millis(policy::announce::GAP_MS)).await;
            }
        }
    }
}

async fn renew_role(shared: Arc<Shared>) {
    loop {
        let role = shared.role();
        let now = transport::chunks::system_clock()().0;
        let left = role.expires_at_ms.saturating_sub(now);
        tokio::time::sleep(Duration::from_millis((left / 2).max(5_000))).await;
        let node = shared.endpoint.node_id();
        let renewed = async {
            let access = shared
                .api
                .login(&shared.config.username, &shared.config.password)
                .await?;
            shared.api.role_token(&access, &node).await
        };
        match renewed.await {
            Ok(role) => *shared.role.lock().unwrap_or_else(|p| p.into_inner()) = role,
            Err(error) => tracing::warn!(%error, "renewing the role token failed; will retry"),
        }
    }
}

/// Fills running, and which rendition each task fetches. Dropping it (the loop or a
/// [`SuperNode::fill_round`] cancelled) aborts its fills and tells the policy they were
/// cancelled, so none stays "running" for good.
struct Running {
    shared: Arc<Shared>,
    tasks: JoinSet<anyhow::Result<()>>,
    renditions: HashMap<tokio::task::Id, RenditionId>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.tasks.abort_all();
        let now = system_clock()().0;
        let mut planner = self.shared.fills.planner();
        for rendition in self.renditions.values() {
            planner.done(rendition, Outcome::Cancelled, now);
        }
    }
}

impl Running {
    fn new(shared: &Arc<Shared>) -> Self {
        Self {
            shared: shared.clone(),
            tasks: JoinSet::new(),
            renditions: HashMap::new(),
        }
    }

    /// Starts every fill the policy allows now.
    fn start(&mut self, shared: &Arc<Shared>) {
        let license = shared.role().license;
        loop {
            let now = system_clock()().0;
            let next = shared
                .cache
                .with_policy(|policy| shared.fills.planner().next(policy, now));
            let Some(fill) = next else {
                return;
            };
            let task_shared = shared.clone();
            let license = license.clone();
            let handle = self.tasks.spawn(async move {
                let shared = task_shared;
                self::fill(&shared, &fill.rendition, &license, fill.pin, fill.bytes_max).await
            });
            self.renditions.insert(handle.id(), fill.rendition);
        }
    }

    /// Waits for a fill to end and tells the policy. Returns whether it filled; none when
    /// nothing is running.
    async fn finish_one(&mut self, shared: &Shared) -> Option<bool> {
        let (id, result) = match self.tasks.join_next_with_id().await? {
            Ok((id, result)) => (id, result),
            Err(error) => (error.id(), Err(anyhow::anyhow!("fill task ended: {error}"))),
        };
        let rendition = self.renditions.remove(&id)?;
        let now = system_clock()().0;
        let outcome = match &result {
            Ok(()) => Outcome::Filled,
            Err(error) if matches!(error.downcast_ref(), Some(FetchError::TooLarge(_))) => {
                Outcome::TooLarge
            }
            Err(_) => Outcome::Failed,
        };
        shared.fills.planner().done(&rendition, outcome, now);
        match result {
            Ok(()) => {
                // Announced as soon as it lands (after the announce gap, with whatever else
                // lands meanwhile), not after the round: peers may fetch it at once.
                shared.changed.notify_one();
                Some(true)
            }
            Err(error) => {
                shared.stats.fill_failures.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%rendition, %error, "could not cache a rendition");
                Some(false)
            }
        }
    }
}

/// Drives [`FillPlanner`]: a popularity round when one is due, as many fills as it allows,
/// then sleep until the next round, a miss that queues a pull-through fill, or a fill's end.
async fn fill_loop(shared: Arc<Shared>) {
    let mut running = Running::new(&shared);
    loop {
        if shared.fills.planner().round_due(system_clock()().0) {
            popular_round(&shared).await;
        }
        running.start(&shared);
        let now = system_clock()().0;
        let wake = shared.fills.planner().poll_timeout(now);
        let wait = Duration::from_millis(wake.saturating_sub(now).max(1));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.fills.wanted.notified() => {}
            Some(_) = running.finish_one(&shared), if !running.tasks.is_empty() => {}
        }
    }
}

/// A popularity round now, then every fill the policy queues (popular and pull-through)
/// until none is left. Returns the number that filled.
async fn fill_round(shared: &Arc<Shared>) -> usize {
    popular_round(shared).await;
    let mut running = Running::new(shared);
    let mut filled = 0;
    loop {
        running.start(shared);
        match running.finish_one(shared).await {
            Some(true) => filled += 1,
            Some(false) => {}
            None if running.tasks.is_empty() => return filled,
            None => {}
        }
    }
}

/// Asks every tracker shard for its popularity list, merges them by score, pins what is held
/// and queues the rest for [`FillPlanner`].
async fn popular_round(shared: &Shared) {
    let role = shared.role();
    let mut answered = false;
    let mut entries = Vec::new();
    if !shared.trackers.is_empty() {
        let request = Request::Popular(PopularQuery {
            want: shared.config.popular_want,
            credential: role.license.clone(),
        });
        // Each shard knows its own renditions' popularity: the lists merge by score.
        for shard in shared.trackers.all() {
            match tracker_request(shared, *shard, &request).await {
                Ok(Response::Popular(list)) => {
                    answered = true;
                    entries.extend(list.renditions);
                }
                Ok(other) => tracing::warn!(?other, "unexpected popularity answer"),
                Err(error) => tracing::debug!(%error, %shard, "no popularity list this round"),
            }
        }
    }
    let now = system_clock()().0;
    if !answered {
        shared.fills.planner().round_failed(now);
        return;
    }
    entries.sort_by(|a, b| b.score.cmp(&a.score).then(a.rendition.cmp(&b.rendition)));
    entries.truncate(usize::from(shared.config.popular_want));
    let ids: Vec<RenditionId> = entries.iter().map(|entry| entry.rendition).collect();
    let missing = shared
        .cache
        .with_policy(|policy| policy.set_popular(&ids, now));
    shared.fills.planner().popular(&missing, now);
}

/// The listed peers a fill tries, in the tracker's order: whole holders only. A fill wants
/// every chunk, and a partial holder's answer past its prefix is a miss the fill would report
/// against an honest peer (three such reports quarantine it).
fn fill_sources(peers: &[protocol::wire::PeerInfo]) -> Vec<Source> {
    peers
        .iter()
        .filter(|peer| peer.holding.is_none())
        .filter_map(|peer| {
            Some(Source {
                node: peer.node,
                addr: *peer.addrs.first()?,
            })
        })
        .collect()
}

async fn fill(
    shared: &Shared,
    rendition: &RenditionId,
    license: &LicenseToken,
    pin: bool,
    bytes_max: u64,
) -> anyhow::Result<()> {
    let role = shared.role();
    let origin = role.network.origin;
    // Other super-nodes and peers first, the origin last.
    let mut sources = Vec::new();
    let shard = shared.trackers.shard_of(rendition);
    if let Some(shard) = shard {
        let query = Request::PeerQuery(PeerQuery {
            rendition: *rendition,
            want: 10,
            license: license.clone(),
        });
        if let Ok(Response::PeerList(list)) = tracker_request(shared, shard, &query).await {
            sources.extend(fill_sources(&list.peers));
        }
    }
    if sources.is_empty()
        && let Some(discovery) = &shared.discovery
    {
        // No tracker, or it knows nobody: ask the DHT.
        if let Ok(peers) = discovery.find_peers(rendition, 10).await {
            for peer in peers {
                if let Some(addr) = peer.addrs.first() {
                    sources.push(Source {
                        node: peer.node,
                        addr: *addr,
                    });
                }
            }
        }
    }
    sources.push(Source {
        node: origin.node,
        addr: origin.addr,
    });
    let request = FetchRequest {
        origin: &origin.node,
        rendition,
        license,
        priority: Priority::OfflineSync,
        bytes_max,
    };
    let fetched = fetch_rendition(&shared.endpoint, &request, &sources, &shared.bans).await?;
    for (node, reason) in &fetched.failures {
        let Some(shard) = shard.filter(|_| *node != origin.node) else {
            continue;
        };
        let report = Request::Report(PeerReport {
            peer: *node,
            rendition: *rendition,
            reason: *reason,
            license: license.clone(),
        });
        if let Err(error) = tracker_request(shared, shard, &report).await {
            tracing::debug!(%error, "report not taken");
        }
    }
    for (node, bytes) in &fetched.bytes_from {
        let counter = if *node == origin.node {
            &shared.stats.bytes_from_origin
        } else {
            &shared.stats.bytes_from_peers
        };
        counter.fetch_add(*bytes, Ordering::Relaxed);
    }
    let evicted = shared.cache.insert(
        fetched.manifest.signed(),
        &fetched.manifest,
        &fetched.chunks,
        pin,
    )?;
    if !evicted.is_empty() {
        tracing::info!(count = evicted.len(), "evicted renditions to make room");
    }
    shared.stats.fills.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::wire::{Holding, PeerInfo};

    #[test]
    fn fills_try_whole_holders_with_an_address_in_the_trackers_order() {
        let peer = |byte: u8, holding: Option<Holding>, addrs: Vec<SocketAddr>| PeerInfo {
            node: NodeId([byte; 32]),
            addrs,
            region: protocol::Region::UNKNOWN,
            role: NodeRole::Client,
            upload_spare_kbps: 1_000,
            holding,
        };
        let at = |port| vec![SocketAddr::from(([127, 0, 0, 1], port))];
        let growing = Some(Holding {
            held: 40,
            per_min: 60,
        });
        let listed = [
            peer(1, growing, at(1)),
            peer(2, None, at(2)),
            peer(3, None, Vec::new()),
            peer(4, None, at(4)),
        ];
        let tried: Vec<u8> = fill_sources(&listed)
            .iter()
            .map(|source| source.node.0[0])
            .collect();
        assert_eq!(tried, vec![2, 4]);
    }
}
