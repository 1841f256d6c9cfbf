//! The tracker as a sans-IO state machine: announces in, peer lists out, time an argument.
//!
//! The driver (the `tracker` crate's `server`) verifies each license token's signature (with a cache) and
//! hands the core the verified [`LicenseClaims`] together with the node id the QUIC handshake
//! proved. The core checks everything else: binding of the claims to that node, lifetime at
//! `now`, coverage of the rendition, region rules, rate of announces, and its own capacity.
//! The simulator drives this same code.
//!
//! # State and its bounds
//!
//! - **Peers**: a slab of at most [`TrackerConfig::peers_max`] slots, each 32 bytes hot and
//!   192 cold (three cache lines: node id, addresses, reporters, delivered-rate figures) plus
//!   32 bytes per advertised address past the first (at most [`protocol::wire::NODE_ADDRS_MAX`]), and an index
//!   from node id to slot (~48 bytes per peer). A peer's slot is freed when its announce
//!   expires (`announce_ttl_ms`), unless it is quarantined.
//! - **Renditions**: a map of at most [`TrackerConfig::renditions_max`] entries (~80 bytes
//!   each with the map's own overhead), each keeping the [`TrackerConfig::peers_per_rendition_max`]
//!   most recent holders as 24-byte pairs (slot, announce sequence, the peer's region,
//!   role and spare capacity as of that announce, and for a partial holder its held prefix,
//!   rate and the second it said so), in rank order. A holder pair is valid
//!   while its peer's latest announce carries the same sequence number, so a re-announce
//!   without a rendition, an expiry or a slot reuse invalidates old pairs in O(1), and they
//!   are pruned when next touched or by [`Tracker::expire`].
//!
//! - **Report budgets**: at most [`TrackerConfig::report_accounts_max`] accounts' hourly
//!   counts (~40 bytes each with the map's overhead).
//!
//! Worst case: `peers_max × (~270 + 7 × 32) + renditions_max × (~80 + 20 × 24) +
//! report_accounts_max × ~40` bytes; with the defaults (1 M peers, 2 M renditions, 1 M
//! reporting accounts) about 1.6 GiB, far above what a real swarm
//! reaches, and typical load is measured by `chorus bench tracker` (bytes per
//! (peer, rendition) entry).
//!
//! # What a node may announce
//!
//! A client may announce only renditions a license of its own covers: the announce's
//! credential, one of its [`Announce::proofs`] (genuine play tokens bound to it, current or
//! expired, whose markets include its region; never a super-node role token, which would
//! cover everything long after the role was withdrawn), or a proof it gave earlier: a holder
//! pair of its own made since its record was created. Renditions without any are left out and named
//! in the ack's `unproven`, so the node proves them next time. A super-node's role token
//! covers every rendition (the origin checks its region per rendition when it fetches).
//!
//! # Partial holders
//!
//! A node downloading a rendition announces it in [`Announce::partial`] with the chunks it
//! holds from the first and how fast that prefix grows (licensed like a whole rendition).
//! Its pair keeps those figures and the second of the announce; a query extrapolates them to
//! its own time ([`Holding`]). A re-announce of the same sets updates a partial pair's
//! figures in place (it does not need a new sequence), and one that moves the rendition to
//! the complete set replaces the pair. A complete holder ranks above a partial one of the
//! same role, whatever their spare capacity.
//!
//! # Ranking
//!
//! Spare upload capacity is self-declared, so it is capped
//! ([`TrackerConfig::client_spare_kbps_max`], [`TrackerConfig::super_node_spare_kbps_max`])
//! before it ranks anything: a liar ranks no higher than an honest fast peer. Peers that
//! fetched from a holder report the rate they measured ([`ReportReason::Delivered`]); once
//! [`RATES_TO_RANK`] distinct accounts have (within [`RATE_MAX_AGE_MS`]), the holder ranks by
//! the median of the last [`RATES_KEPT`] accounts' figures, when that is below what it
//! declared. A peer's own account cannot report on it. Moving the median takes a majority of
//! the kept figures (three of five; a tie between two halves goes to the higher figure), so
//! two colluding accounts can neither sink an honest peer nor, once three honest accounts
//! have reported, keep a liar at its claim. No report lifts a peer above its own capped
//! declaration, and figures age out, so a peer measured slow once is not slow forever. The
//! rate applies from the holder's next announce (the rank is part of each holder pair).
//!
//! A query returns at most `min(want, peers_returned_max)` peers out of the rendition's most
//! recent holders: never the asker, never a quarantined peer, never a peer outside the track's
//! markets (from the asker's signed claims); same region as the asker first, then super-nodes,
//! then whole holders before partial ones, then more spare upload capacity (by powers of two:
//! 3 Mbit/s and 3.5 Mbit/s rank alike), then the most recent change of the announced set.
//!
//! A query reads the rendition's pairs (one contiguous block, already in rank order but for
//! the asker's region, which is a stable partition) and then only the records of the peers
//! it returns: about 12 random memory reads, which dominate its cost (`chorus bench
//! tracker`).

use std::collections::HashMap;
use std::net::SocketAddr;

/// Keyed by [`TrackerConfig::hash_seed`], so announced ids cannot be chosen to collide.
type Hasher = foldhash::fast::FixedState;

use protocol::license::{LicenseClaims, LicenseScope};
use protocol::wire::{
    Announce, ErrorCode, Holding, NodeRole, Partial, PeerInfo, PeerList, PeerQuery, PeerReport,
    PopularEntry, PopularList, Refresh, ReportReason, WireError,
};
use protocol::{NodeId, Region, RenditionId, UnixMillis};

/// The tracker's settings.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Most peers in one answer (Spotify 2010: 10).
    pub peers_returned_max: usize,
    /// Most recent holders kept per rendition (Spotify 2010: 20).
    pub peers_per_rendition_max: usize,
    /// Most peers tracked at once; announces from new peers beyond this get `Overloaded`.
    pub peers_max: usize,
    /// Most renditions tracked at once; renditions beyond this are not recorded.
    pub renditions_max: usize,
    /// How long an announce counts; peers re-announce before it runs out.
    pub announce_ttl_ms: u64,
    /// Shortest interval between two announces of one peer (flood guard).
    pub announce_interval_min_ms: u64,
    /// Half-life of the popularity score (queries, exponentially decayed).
    pub popularity_half_life_ms: u64,
    /// Reports from this many distinct licensed reporters quarantine a peer.
    pub strikes_to_quarantine: u8,
    /// How long a quarantined peer is ignored.
    pub quarantine_ms: u64,
    /// How long a computed popularity list is reused.
    pub popular_refresh_ms: u64,
    /// Failure reports one account may file per hour; more are refused (`Overloaded`).
    pub reports_per_account_per_hour: u32,
    /// Delivered-rate reports one account may file per hour (a budget of their own, so
    /// ranking honest peers never uses up the failure reports).
    pub rate_reports_per_account_per_hour: u32,
    /// Accounts whose hourly report budgets are kept at once (~40 bytes each). When full,
    /// reports from accounts not yet kept are refused (`Overloaded`) until
    /// [`Tracker::expire`] drops the budgets whose hour is over. Every listener of a busy
    /// swarm reports the rates it got, so this is sized like `peers_max`: at a sixteenth of
    /// a million, a million-listener swarm (simulated) had a fifth of its rate reports
    /// refused.
    pub report_accounts_max: usize,
    /// The highest spare upload capacity a client may claim for ranking (kbps); more ranks
    /// as this. Self-declared figures are never taken uncapped.
    pub client_spare_kbps_max: u32,
    /// The same for super-nodes.
    pub super_node_spare_kbps_max: u32,
    /// Distinct accounts whose delivered-rate reports it takes before they rank a peer
    /// ([`RATES_TO_RANK`]); more than [`RATES_KEPT`] turns ranking by delivered rates off
    /// (the simulator's what-if).
    pub rates_to_rank: usize,
    /// Keys the tracker's maps. Node and rendition ids are chosen by peers, so with a known
    /// key they could be chosen to collide: the QUIC driver draws a fresh seed from the OS
    /// at start whatever this says; the simulator takes it from its own seed, so runs replay.
    pub hash_seed: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            peers_returned_max: 10,
            peers_per_rendition_max: 20,
            peers_max: 1_000_000,
            renditions_max: 2_000_000,
            announce_ttl_ms: 120_000,
            announce_interval_min_ms: 1_000,
            popularity_half_life_ms: 3_600_000,
            strikes_to_quarantine: 3,
            quarantine_ms: 600_000,
            popular_refresh_ms: 10_000,
            reports_per_account_per_hour: 60,
            rate_reports_per_account_per_hour: 120,
            report_accounts_max: 1_000_000,
            client_spare_kbps_max: 20_000,
            super_node_spare_kbps_max: 10_000_000,
            rates_to_rank: RATES_TO_RANK,
            hash_seed: 0,
        }
    }
}

/// Distinct reporters (accounts) remembered per peer.
const REPORTERS_KEPT: usize = 4;

/// Delivered-rate reports (distinct accounts, most recent) remembered per peer.
pub const RATES_KEPT: usize = 5;

/// How long a delivered-rate figure counts.
pub const RATE_MAX_AGE_MS: u64 = 3_600_000;

/// Distinct accounts whose delivered-rate reports it takes, by default, before they rank a
/// peer ([`TrackerConfig::rates_to_rank`]).
pub const RATES_TO_RANK: usize = 2;

/// What an accepted announce gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// How long the announce counts, ms.
    pub ttl_ms: u32,
    /// Announced renditions left out: no license of the node's covered them.
    pub unproven: Vec<RenditionId>,
}

/// Peer records a query reads up front: the default `peers_returned_max` (10), one more in
/// case the asker is among the best, and a few spares for pairs gone stale. Past this window
/// records are read one by one.
const WINDOW: usize = 11;

/// Never holds anything (sequence 0).
const EMPTY_HOT: PeerHot = PeerHot {
    seq: 0,
    expires_ms: 0,
    quarantined_until_ms: 0,
    spare_kbps: 0,
    region: Region::UNKNOWN,
    role: NodeRole::Client,
    more_addrs: false,
};

/// What every query reads about a peer, kept apart from the rest (two to a cache line) so
/// that checking and ranking 20 holders touches as little memory as possible.
#[derive(Debug, Clone, Copy)]
struct PeerHot {
    /// Sequence number of its latest announce; 0 when the slot is free.
    seq: u64,
    expires_ms: u64,
    quarantined_until_ms: u64,
    spare_kbps: u32,
    region: Region,
    role: NodeRole,
    /// Whether the cold record has addresses past the first (so a peer list reads the cold
    /// record's second cache line only then).
    more_addrs: bool,
}

impl PeerHot {
    fn holds(&self, holder: &Holder, now_ms: u64) -> bool {
        self.seq == holder.seq && self.expires_ms > now_ms && self.quarantined_until_ms <= now_ms
    }
}

/// The rest of a peer. `node` and the first address come first and together fill one cache
/// line, which is all a peer list reads for most peers.
#[derive(Debug)]
#[repr(C, align(64))]
struct PeerCold {
    node: NodeId,
    /// The first advertised address, inline; the others in `more_addrs`.
    addr: Option<SocketAddr>,
    more_addrs: Box<[SocketAddr]>,
    /// [`set_key`] of the last announce, whose pairs are current (zero once a report
    /// invalidated them): what a [`Refresh`] must name, with the rank it must keep.
    set: u64,
    last_announce_ms: u64,
    reporters: [u32; REPORTERS_KEPT],
    strikes: u8,
    /// Renditions of the last full announce left out as unproven (saturating): while any
    /// were, an announce of the same set is processed again rather than only refreshed.
    unproven: u16,
    /// The announce sequence when this record was created: holder pairs of this slot with a
    /// higher sequence are this peer's own, and prove it was licensed for their rendition.
    born_seq: u64,
    /// Delivered-rate reports: (reporter mark, kbit/s, second of the report), most recent
    /// first; mark 0 is empty.
    rates: [(u32, u32, u32); RATES_KEPT],
    /// The mark of the account its credential belongs to (its own reports do not count).
    account: u32,
}

const _: () = assert!(std::mem::size_of::<PeerCold>() == 192);

impl PeerCold {
    /// The rate reporters measured, once `to_rank` accounts have within
    /// [`RATE_MAX_AGE_MS`] of `now_ms`: the median of those figures (the upper one of an
    /// even count).
    fn delivered_kbps(&self, to_rank: usize, now_ms: u64) -> Option<u32> {
        let mut figures = [0u32; RATES_KEPT];
        let mut count = 0;
        let now_s = now_ms / 1000;
        for &(mark, kbps, at_s) in &self.rates {
            if mark != 0 && now_s.saturating_sub(u64::from(at_s)) * 1000 < RATE_MAX_AGE_MS {
                figures[count] = kbps;
                count += 1;
            }
        }
        if count < to_rank.max(1) {
            return None;
        }
        let figures = &mut figures[..count];
        figures.sort_unstable();
        Some(figures[count / 2])
    }
}

/// One (peer, rendition) entry: 24 bytes. Besides the peer's slot and the sequence number of
/// the announce that listed the rendition, it carries the peer's rank inputs as of that
/// announce (region, role, spare capacity by powers of two). These are part of the announced
/// set's identity (its digest, the region and the rank), so a change of any of them is a new announce sequence that rewrites the
/// pairs: a valid pair's snapshot is exact, and a query ranks holders without reading a
/// single peer record, then reads only the records of the few it returns.
#[derive(Debug, Clone, Copy)]
struct Holder {
    seq: u64,
    slot: u32,
    /// For a partial holder, the second (of the Unix epoch) of the announce its `held` and
    /// `per_min` come from.
    at_s: u32,
    region: Region,
    /// [`rank_bits`] of the peer's role, spare capacity and whether it holds it all.
    rank: u8,
    /// A partial holder's prefix (saturating), as of `at_s`.
    held: u16,
    /// A partial holder's growth, chunks per minute (saturating).
    per_min: u16,
}

const _: () = assert!(std::mem::size_of::<Holder>() == 24);

impl Holder {
    fn complete(&self) -> bool {
        self.rank & COMPLETE_BIT != 0
    }

    /// A partial holder's prefix at `now_ms`, grown at its rate since it said so.
    fn holding(&self, now_ms: u64) -> Option<Holding> {
        if self.complete() {
            return None;
        }
        let elapsed_s = (now_ms / 1000).saturating_sub(u64::from(self.at_s));
        let grown = u64::from(self.per_min) * elapsed_s / 60;
        Some(Holding {
            held: u32::try_from(u64::from(self.held) + grown).unwrap_or(u32::MAX),
            per_min: u32::from(self.per_min),
        })
    }

    /// Rank among a rendition's pairs, higher first: super-node, spare capacity, recency.
    fn order(&self) -> u64 {
        (u64::from(self.rank) << SEQ_BITS) | (self.seq & ((1 << SEQ_BITS) - 1))
    }
}

/// Set in a pair's rank when the peer holds the whole rendition.
const COMPLETE_BIT: u8 = 1 << 6;

/// What a peer record keeps of an announce's set: the first 56 bits of its
/// [`protocol::wire::announce_set`] digest, and above them the [`rank_bits`] its pairs were
/// written with (never zero: a whole holder's rank has [`COMPLETE_BIT`]; zero marks pairs a
/// report invalidated). A peer's next set agreeing in 56 bits by chance is a 2^-56 event; one
/// built to collide would only keep the peer's own listing.
fn set_key(set: &[u8; 16], rank: u8) -> u64 {
    let mut key = [0; 8];
    key.copy_from_slice(&set[..8]);
    (u64::from_le_bytes(key) & ((1 << 56) - 1)) | (u64::from(rank) << 56)
}

/// Bits of the rank key below the region bit: super-node first, then holding the whole
/// rendition, then spare capacity by powers of two (0 for none, 1 for 1 kbps, …, 32 for
/// ≥ 2^31 kbps).
fn rank_bits(role: NodeRole, spare_kbps: u32, complete: bool) -> u8 {
    (u8::from(role == NodeRole::SuperNode) << 7)
        | if complete { COMPLETE_BIT } else { 0 }
        | (32 - spare_kbps.leading_zeros()) as u8
}

/// Low bits of the rank key: the announce sequence (recency), which never reaches 2^54.
const SEQ_BITS: u32 = 54;

#[derive(Debug, Default)]
struct RenditionEntry {
    holders: Vec<Holder>,
    /// Decayed query count as of `score_at_s`.
    score: f32,
    score_at_s: u32,
}

/// Counters since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrackerStats {
    /// Announces accepted.
    pub announces: u64,
    /// Refreshes accepted ([`Tracker::refresh`]).
    pub refreshes: u64,
    /// Refreshes answered `set_unknown` (the node then announces in full).
    pub refreshes_unknown: u64,
    /// Queries answered.
    pub queries: u64,
    /// Requests refused (any reason).
    pub refused: u64,
    /// Reports accepted.
    pub reports: u64,
    /// Peers quarantined.
    pub quarantined: u64,
    /// Renditions not recorded because the rendition map was full.
    pub renditions_dropped: u64,
    /// Reports about a peer that was not a current holder of the rendition (no effect).
    pub reports_ignored: u64,
    /// Announced renditions left out because no license of the announcer covered them.
    pub unproven: u64,
    /// Delivered-rate reports taken.
    pub rates_reported: u64,
}

/// The tracker's state. See the module docs for bounds and ranking.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    hot: Vec<PeerHot>,
    cold: Vec<PeerCold>,
    free: Vec<u32>,
    by_node: HashMap<NodeId, u32, Hasher>,
    renditions: HashMap<RenditionId, RenditionEntry, Hasher>,
    /// Reused by queries: positions of the candidates among a rendition's pairs, best first.
    scratch: Vec<u32>,
    seq: u64,
    stats: TrackerStats,
    popular: Vec<PopularEntry>,
    popular_at_ms: Option<u64>,
    /// Per account: the start of its current hour and the reports filed in it.
    report_budgets: HashMap<protocol::AccountId, (u64, u32, u32), Hasher>,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> WireError {
    WireError::new(code, message)
}

/// Checks that verified `claims` may be used by `node` at `now`.
pub fn check_claims(
    node: &NodeId,
    claims: &LicenseClaims,
    now: UnixMillis,
) -> Result<(), WireError> {
    if claims.node != *node {
        return Err(refuse(
            ErrorCode::LicenseWrongNode,
            format!("license bound to node {}, presented by {node}", claims.node),
        ));
    }
    if now >= claims.expires_at {
        return Err(refuse(ErrorCode::LicenseExpired, "license expired"));
    }
    Ok(())
}

fn check_covers(claims: &LicenseClaims, rendition: &RenditionId) -> Result<(), WireError> {
    if claims.permits(rendition) {
        Ok(())
    } else {
        Err(refuse(
            ErrorCode::LicenseNotCovered,
            format!("license does not cover rendition {rendition}"),
        ))
    }
}

/// A reporter's mark: its account (ids are the origin's random draws, not chosen by peers).
fn fingerprint(account: &protocol::AccountId) -> u32 {
    let bytes = &account.0;
    // Never 0, which marks an empty reporter cell.
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) | 1
}

impl Tracker {
    /// An empty tracker.
    pub fn new(config: TrackerConfig) -> Self {
        let hasher = Hasher::with_seed(config.hash_seed);
        Self {
            config,
            hot: Vec::new(),
            cold: Vec::new(),
            free: Vec::new(),
            by_node: HashMap::with_hasher(hasher.clone()),
            renditions: HashMap::with_hasher(hasher.clone()),
            scratch: Vec::with_capacity(64),
            seq: 0,
            stats: TrackerStats::default(),
            popular: Vec::new(),
            popular_at_ms: None,
            report_budgets: HashMap::with_hasher(hasher),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Counters since start.
    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// Peers with a live announce (or in quarantine).
    pub fn peers(&self) -> usize {
        self.by_node.len()
    }

    /// Renditions tracked.
    pub fn renditions(&self) -> usize {
        self.renditions.len()
    }

    /// (peer, rendition) entries held, including stale ones not yet pruned.
    pub fn entries(&self) -> usize {
        self.renditions
            .values()
            .map(|entry| entry.holders.len())
            .sum()
    }

    fn holder_valid(&self, holder: &Holder, now_ms: u64) -> bool {
        self.hot
            .get(holder.slot as usize)
            .is_some_and(|peer| peer.holds(holder, now_ms))
    }

    fn refused<T>(&mut self, error: WireError) -> Result<T, WireError> {
        self.stats.refused += 1;
        Err(error)
    }

    /// The checks of [`Tracker::announce`] that need no proof: the credential's binding,
    /// role and region, quarantine and the announce rate. A driver runs them before it pays
    /// for the signatures of an announce's proofs.
    pub fn precheck_announce(
        &self,
        now: UnixMillis,
        node: &NodeId,
        claims: &LicenseClaims,
        announce: &Announce,
    ) -> Result<(), WireError> {
        self.check_announce(now, node, claims, announce)?;
        let Some(&slot) = self.by_node.get(node) else {
            return Ok(());
        };
        self.check_record(slot, now.0)
    }

    /// A known peer's own standing: not quarantined, not announcing too often.
    fn check_record(&self, slot: u32, now_ms: u64) -> Result<(), WireError> {
        let (hot, cold) = (&self.hot[slot as usize], &self.cold[slot as usize]);
        if hot.quarantined_until_ms > now_ms {
            return Err(refuse(
                ErrorCode::Overloaded,
                "quarantined after reports of failed serving",
            ));
        }
        if hot.seq != 0
            && now_ms.saturating_sub(cold.last_announce_ms) < self.config.announce_interval_min_ms
        {
            return Err(refuse(ErrorCode::Overloaded, "announcing too often"));
        }
        Ok(())
    }

    /// Records `announce` from `node`, whose verified credential is `claims` and whose
    /// genuine proofs (signature checked, current or expired: [`Announce::proofs`]) are
    /// `proofs`. Returns the TTL (announce again before it runs out) and the renditions left
    /// out for want of a license (see the module docs).
    pub fn announce(
        &mut self,
        now: UnixMillis,
        node: &NodeId,
        claims: &LicenseClaims,
        proofs: &[LicenseClaims],
        announce: &Announce,
    ) -> Result<Announced, WireError> {
        if let Err(error) = self.check_announce(now, node, claims, announce) {
            return self.refused(error);
        }
        let now_ms = now.0;
        let slot = match self.by_node.get(node) {
            Some(&slot) => slot,
            None => {
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None if self.hot.len() < self.config.peers_max => {
                        self.hot.push(PeerHot {
                            seq: 0,
                            expires_ms: 0,
                            quarantined_until_ms: 0,
                            spare_kbps: 0,
                            region: claims.region,
                            role: announce.role,
                            more_addrs: false,
                        });
                        self.cold.push(PeerCold {
                            node: *node,
                            addr: None,
                            more_addrs: Box::new([]),
                            set: 0,
                            last_announce_ms: 0,
                            reporters: [0; REPORTERS_KEPT],
                            strikes: 0,
                            unproven: 0,
                            born_seq: 0,
                            rates: [(0, 0, 0); RATES_KEPT],
                            account: 0,
                        });
                        (self.hot.len() - 1) as u32
                    }
                    None => {
                        return self.refused(refuse(
                            ErrorCode::Overloaded,
                            "tracker full: no room for another peer",
                        ));
                    }
                };
                let cold = &mut self.cold[slot as usize];
                cold.node = *node;
                cold.reporters = [0; REPORTERS_KEPT];
                cold.strikes = 0;
                cold.last_announce_ms = 0;
                cold.set = 0;
                cold.unproven = 0;
                cold.born_seq = self.seq;
                cold.rates = [(0, 0, 0); RATES_KEPT];
                self.hot[slot as usize].quarantined_until_ms = 0;
                self.by_node.insert(*node, slot);
                slot
            }
        };
        if let Err(error) = self.check_record(slot, now_ms) {
            return self.refused(error);
        }
        // A live peer re-announcing the same set only refreshes its soft state: its holder
        // pairs stay valid (their sequence number is the set's), so the maps are not touched.
        let (spare_kbps, rank) =
            self.spare_and_rank(slot, announce.role, announce.upload_spare_kbps, now_ms);
        let set = set_key(&announce.set(), rank);
        let unchanged = self.holds_set(slot, claims, set, now_ms);
        let partial_rank = rank_bits(announce.role, spare_kbps, false);
        let at_s = self.soft_state(
            slot,
            now_ms,
            claims,
            announce.role,
            spare_kbps,
            &announce.addrs,
        );
        let cold = &mut self.cold[slot as usize];
        cold.set = set;
        let mut unproven = Vec::new();
        if unchanged {
            self.partial_progress(slot, &announce.partial, at_s);
        } else {
            // Every rendition is checked before any pair is rewritten: the peer's current
            // pairs are part of what proves it.
            let born = self.cold[slot as usize].born_seq;
            let wholes = announce
                .renditions
                .iter()
                .map(|rendition| (rendition, None));
            let partials = announce
                .partial
                .iter()
                .map(|partial| (&partial.rendition, Some(partial)));
            // Partial first: a rendition named in both is held whole, and the later pair wins.
            let named: Vec<_> = partials.chain(wholes).collect();
            let licensed = Licensed::new(node, claims, proofs);
            let proven: Vec<bool> = named
                .iter()
                .map(|(rendition, _)| self.covered(slot, born, &licensed, rendition))
                .collect();
            self.seq += 1;
            let seq = self.seq;
            self.hot[slot as usize].seq = seq;
            for ((rendition, partial), proven) in named.into_iter().zip(proven) {
                if !proven {
                    unproven.push(*rendition);
                    continue;
                }
                let holder = Holder {
                    seq,
                    slot,
                    at_s,
                    region: claims.region,
                    rank: if partial.is_some() {
                        partial_rank
                    } else {
                        rank
                    },
                    held: partial.map_or(0, |p| u16::try_from(p.held).unwrap_or(u16::MAX)),
                    per_min: partial.map_or(0, |p| u16::try_from(p.per_min).unwrap_or(u16::MAX)),
                };
                self.add_holder(*rendition, holder);
            }
            unproven.sort_unstable();
            unproven.dedup();
            self.cold[slot as usize].unproven = u16::try_from(unproven.len()).unwrap_or(u16::MAX);
            self.stats.unproven += unproven.len() as u64;
        }
        self.stats.announces += 1;
        Ok(Announced {
            ttl_ms: u32::try_from(self.config.announce_ttl_ms).unwrap_or(u32::MAX),
            unproven,
        })
    }

    /// Keeps alive the set `node` announced last, as named by `refresh.set`
    /// ([`protocol::wire::Refresh`]): what an announce of the same set would do, without
    /// reading the set. `claims` are the verified credential's. Refused with
    /// [`ErrorCode::SetUnknown`] unless the node's record is live, its current pairs are of
    /// that set (no report has invalidated them), all of it was proven, and its region and
    /// rank (role and spare capacity by powers of two) are those the pairs carry: the node
    /// then announces in full.
    pub fn refresh(
        &mut self,
        now: UnixMillis,
        node: &NodeId,
        claims: &LicenseClaims,
        refresh: &Refresh,
    ) -> Result<Announced, WireError> {
        if let Err(error) = self.check_node(now, node, claims, refresh.role, refresh.region) {
            return self.refused(error);
        }
        let now_ms = now.0;
        let Some(&slot) = self.by_node.get(node) else {
            return self.set_unknown();
        };
        if let Err(error) = self.check_record(slot, now_ms) {
            return self.refused(error);
        }
        let (spare_kbps, rank) =
            self.spare_and_rank(slot, refresh.role, refresh.upload_spare_kbps, now_ms);
        if !self.holds_set(slot, claims, set_key(&refresh.set, rank), now_ms) {
            return self.set_unknown();
        }
        let at_s = self.soft_state(
            slot,
            now_ms,
            claims,
            refresh.role,
            spare_kbps,
            &refresh.addrs,
        );
        self.partial_progress(slot, &refresh.partial, at_s);
        self.stats.refreshes += 1;
        Ok(Announced {
            ttl_ms: u32::try_from(self.config.announce_ttl_ms).unwrap_or(u32::MAX),
            unproven: Vec::new(),
        })
    }

    fn set_unknown<T>(&mut self) -> Result<T, WireError> {
        self.stats.refreshes_unknown += 1;
        Err(refuse(
            ErrorCode::SetUnknown,
            "no such set held for this node: announce in full",
        ))
    }

    /// The spare capacity a peer in `slot` is ranked by (what it declares, capped, and no
    /// more than its reporters measured) and its [`rank_bits`] as a whole holder.
    fn spare_and_rank(
        &self,
        slot: u32,
        role: NodeRole,
        declared_kbps: u32,
        now_ms: u64,
    ) -> (u32, u8) {
        let declared = declared_kbps.min(match role {
            NodeRole::SuperNode => self.config.super_node_spare_kbps_max,
            _ => self.config.client_spare_kbps_max,
        });
        let spare_kbps = self.cold[slot as usize]
            .delivered_kbps(self.config.rates_to_rank, now_ms)
            .map_or(declared, |delivered| delivered.min(declared));
        (spare_kbps, rank_bits(role, spare_kbps, true))
    }

    /// Whether the pairs of the peer in `slot` are current and are those of `set` (a
    /// [`set_key`]: the set and the rank it was announced with) from the claims' region, all
    /// proven.
    fn holds_set(&self, slot: u32, claims: &LicenseClaims, set: u64, now_ms: u64) -> bool {
        let (hot, cold) = (&self.hot[slot as usize], &self.cold[slot as usize]);
        hot.seq != 0
            && hot.expires_ms > now_ms
            && cold.set == set
            && set != 0
            && hot.region == claims.region
            && cold.unproven == 0
    }

    /// Updates what every announce refreshes (expiry, spare capacity, addresses, account),
    /// returning the second partial progress is stamped with.
    fn soft_state(
        &mut self,
        slot: u32,
        now_ms: u64,
        claims: &LicenseClaims,
        role: NodeRole,
        spare_kbps: u32,
        addrs: &[SocketAddr],
    ) -> u32 {
        let (hot, cold) = (&mut self.hot[slot as usize], &mut self.cold[slot as usize]);
        cold.account = fingerprint(&claims.account);
        // The signed region, not the claimed one (they were checked equal).
        hot.region = claims.region;
        hot.role = role;
        hot.spare_kbps = spare_kbps;
        hot.expires_ms = now_ms.saturating_add(self.config.announce_ttl_ms);
        cold.addr = addrs.first().copied();
        let more = addrs.get(1..).unwrap_or_default();
        if *cold.more_addrs != *more {
            cold.more_addrs = more.into();
        }
        hot.more_addrs = !more.is_empty();
        cold.last_announce_ms = now_ms;
        u32::try_from(now_ms / 1000).unwrap_or(u32::MAX)
    }

    /// Updates in place the progress of the peer's current partial pairs named in `partial`.
    fn partial_progress(&mut self, slot: u32, partial: &[Partial], at_s: u32) {
        let seq = self.hot[slot as usize].seq;
        for partial in partial {
            if let Some(entry) = self.renditions.get_mut(&partial.rendition)
                && let Some(pair) = entry
                    .holders
                    .iter_mut()
                    .find(|held| held.slot == slot && held.seq == seq && !held.complete())
            {
                pair.held = u16::try_from(partial.held).unwrap_or(u16::MAX);
                pair.per_min = u16::try_from(partial.per_min).unwrap_or(u16::MAX);
                pair.at_s = at_s;
            }
        }
    }

    /// Whether `node` (in `slot`, created at sequence `born`) may announce `rendition`: its
    /// credential covers it, a proof does (bound to it, its markets including the node's
    /// region), or the peer proved it before (a pair of its own).
    ///
    /// `licensed` gathers the credential's and proofs' renditions in one set, so an announce
    /// of n renditions with proofs of m costs n + m look-ups, not n × m comparisons.
    fn covered(
        &self,
        slot: u32,
        born: u64,
        licensed: &Licensed<'_>,
        rendition: &RenditionId,
    ) -> bool {
        licensed.permits(rendition)
            || self.renditions.get(rendition).is_some_and(|entry| {
                entry
                    .holders
                    .iter()
                    .any(|held| held.slot == slot && held.seq > born)
            })
    }

    fn check_announce(
        &self,
        now: UnixMillis,
        node: &NodeId,
        claims: &LicenseClaims,
        announce: &Announce,
    ) -> Result<(), WireError> {
        self.check_node(now, node, claims, announce.role, announce.region)
    }

    /// The claims bind `node` and are current, the role is one they allow to announce, and
    /// the region said is the licensed one.
    fn check_node(
        &self,
        now: UnixMillis,
        node: &NodeId,
        claims: &LicenseClaims,
        role: NodeRole,
        region: Region,
    ) -> Result<(), WireError> {
        check_claims(node, claims, now)?;
        match (role, &claims.scope) {
            (NodeRole::SuperNode, LicenseScope::SuperNode) | (NodeRole::Client, _) => {}
            (NodeRole::SuperNode, _) => {
                return Err(refuse(
                    ErrorCode::LicenseNotCovered,
                    "announcing as a super-node needs a super-node role token",
                ));
            }
            (NodeRole::Origin, _) => {
                return Err(refuse(
                    ErrorCode::BadRequest,
                    "origins are not announced to trackers",
                ));
            }
        }
        if region != claims.region {
            return Err(refuse(
                ErrorCode::NotInRegion,
                format!(
                    "announced region {} differs from the licensed region {}",
                    region, claims.region
                ),
            ));
        }
        Ok(())
    }

    fn add_holder(&mut self, rendition: RenditionId, holder: Holder) {
        let renditions_full = self.renditions.len() >= self.config.renditions_max;
        let entry = match self.renditions.get_mut(&rendition) {
            Some(entry) => entry,
            None if renditions_full => {
                self.stats.renditions_dropped += 1;
                return;
            }
            None => self.renditions.entry(rendition).or_default(),
        };
        // Same peer again (a duplicate in one announce, or a refresh): its pair moves.
        if let Some(at) = entry
            .holders
            .iter()
            .position(|held| held.slot == holder.slot)
        {
            entry.holders.remove(at);
        }
        let max = self.config.peers_per_rendition_max.max(1);
        if entry.holders.len() >= max {
            // Drop a partial pair first (a burst of listeners starting the track must not push
            // its whole holders and super-nodes out), then the least recent. A stale pair (its
            // peer re-announced another set, expired, or left) carries an older sequence
            // number than its peer's current one, so it goes first without looking the peer
            // up: no random memory access per pair.
            let victim = entry
                .holders
                .iter()
                .enumerate()
                .min_by_key(|(_, held)| (held.complete(), held.seq))
                .map(|(at, _)| at);
            if let Some(at) = victim {
                entry.holders.remove(at);
            }
        }
        if entry.holders.len() == entry.holders.capacity() {
            let grow = (entry.holders.capacity() * 2).clamp(2, max) - entry.holders.len();
            entry.holders.reserve_exact(grow);
        }
        // Kept in rank order, best first, so queries never sort.
        let at = entry
            .holders
            .partition_point(|held| held.order() > holder.order());
        entry.holders.insert(at, holder);
    }

    /// Answers `query` from `asker`, whose verified license is `claims`.
    pub fn query(
        &mut self,
        now: UnixMillis,
        asker: &NodeId,
        claims: &LicenseClaims,
        query: &PeerQuery,
    ) -> Result<PeerList, WireError> {
        let mut list = PeerList {
            rendition: query.rendition,
            peers: Vec::new(),
        };
        self.query_into(now, asker, claims, query, &mut list)?;
        Ok(list)
    }

    /// [`Tracker::query`] writing into `out`, whose buffers (the peer vector and each peer's
    /// address vector) are reused: a driver answering many queries allocates nothing per
    /// query once its buffer has grown. On error `out` is left empty.
    pub fn query_into(
        &mut self,
        now: UnixMillis,
        asker: &NodeId,
        claims: &LicenseClaims,
        query: &PeerQuery,
        out: &mut PeerList,
    ) -> Result<(), WireError> {
        out.rendition = query.rendition;
        if let Err(error) = check_claims(asker, claims, now)
            .and_then(|()| check_covers(claims, &query.rendition))
            .and_then(|()| transport_free_check_region(claims))
        {
            out.peers.clear();
            return self.refused(error);
        }
        let now_ms = now.0;
        let half_life = self.config.popularity_half_life_ms;
        // Listeners' queries are demand; a super-node filling its cache is not.
        let listener = matches!(claims.scope, LicenseScope::Play { .. });
        self.stats.queries += 1;
        let Some(entry) = self.renditions.get_mut(&query.rendition) else {
            // Remember demand for renditions nobody holds yet, within the map's bound.
            if listener && self.renditions.len() < self.config.renditions_max {
                let entry = self.renditions.entry(query.rendition).or_default();
                bump(entry, now_ms, half_life);
            }
            out.peers.clear();
            return Ok(());
        };
        if listener {
            bump(entry, now_ms, half_life);
        }
        // Rank from the pairs alone (one contiguous read), never the asker's market rules
        // broken: a pair's region is exact while the pair is valid (see `Holder`).
        // Pairs are kept in rank order (super-node, spare capacity, recency), so ranking for
        // this asker is a stable partition: its own region first, then the rest.
        let scratch = &mut self.scratch;
        scratch.clear();
        scratch.extend(
            entry
                .holders
                .iter()
                .enumerate()
                .filter(|(_, held)| held.region == claims.region)
                .map(|(at, _)| at as u32),
        );
        scratch.extend(
            entry
                .holders
                .iter()
                .enumerate()
                .filter(|(_, held)| {
                    held.region != claims.region && claims.market_includes(&held.region)
                })
                .map(|(at, _)| at as u32),
        );
        // Then read the records of the best few, all loads issued before any is used (they
        // are random and mostly miss the cache, so they overlap instead of queueing): the
        // hot record says whether the pair is still valid, the first cache line of the cold
        // record holds the node id and first address.
        let want = usize::from(query.want).min(self.config.peers_returned_max);
        let (hot, cold) = (&self.hot, &self.cold);
        let mut window = [(EMPTY_HOT, NodeId([0; 32]), None); WINDOW];
        for (read, &at) in window.iter_mut().zip(scratch.iter()) {
            let slot = entry.holders[at as usize].slot as usize;
            if let (Some(peer), Some(record)) = (hot.get(slot), cold.get(slot)) {
                *read = (*peer, record.node, record.addr);
            }
        }
        let mut filled = 0;
        let mut stale = false;
        for (rank, &at) in scratch.iter().enumerate() {
            if filled == want {
                break;
            }
            let held = entry.holders[at as usize];
            let (peer, node, addr) = match window.get(rank) {
                Some(&read) => read,
                None => match (hot.get(held.slot as usize), cold.get(held.slot as usize)) {
                    (Some(peer), Some(record)) => (*peer, record.node, record.addr),
                    _ => (EMPTY_HOT, NodeId([0; 32]), None),
                },
            };
            if !peer.holds(&held, now_ms) {
                stale = true;
                continue;
            }
            if node == *asker {
                continue;
            }
            if filled == out.peers.len() {
                out.peers.push(PeerInfo {
                    node,
                    addrs: Vec::new(),
                    region: peer.region,
                    role: peer.role,
                    upload_spare_kbps: peer.spare_kbps,
                    holding: None,
                });
            }
            let info = &mut out.peers[filled];
            info.holding = held.holding(now_ms);
            info.node = node;
            info.region = peer.region;
            info.role = peer.role;
            info.upload_spare_kbps = peer.spare_kbps;
            info.addrs.clear();
            info.addrs.extend(addr);
            if peer.more_addrs {
                info.addrs
                    .extend_from_slice(&cold[held.slot as usize].more_addrs);
            }
            filled += 1;
        }
        if stale {
            entry.holders.retain(|held| {
                hot.get(held.slot as usize)
                    .is_some_and(|peer| peer.holds(held, now_ms))
            });
        }
        out.peers.truncate(filled);
        Ok(())
    }

    /// Takes `report` from `reporter` (verified license `claims`). The tracker cannot check a
    /// report, so it weighs it:
    ///
    /// - it counts only against a peer that is a current holder of the rendition (anything
    ///   else is ignored);
    /// - the reported peer loses its entry for the rendition until it announces it again with
    ///   a proof (the ack of its next announce names the rendition unproven, and a client
    ///   proves it in a catch-up announce seconds later), so an honest peer is listed again
    ///   within a refresh period;
    /// - a [`ReportReason::Delivered`] report is no failure: it records the measured rate
    ///   (see Ranking in the module docs) and the peer keeps its entry;
    /// - reporters are counted by **account**, not node id, and reports from
    ///   [`TrackerConfig::strikes_to_quarantine`] distinct accounts quarantine the peer, so one
    ///   account with many node ids cannot evict an honest peer;
    /// - each account may file [`TrackerConfig::reports_per_account_per_hour`] failure reports
    ///   and [`TrackerConfig::rate_reports_per_account_per_hour`] rate reports;
    /// - nobody's report on itself, or on a node of its own account, counts.
    pub fn report(
        &mut self,
        now: UnixMillis,
        reporter: &NodeId,
        claims: &LicenseClaims,
        report: &PeerReport,
    ) -> Result<(), WireError> {
        if let Err(error) = check_claims(reporter, claims, now)
            .and_then(|()| check_covers(claims, &report.rendition))
            .and_then(|()| {
                let delivered = matches!(report.reason, ReportReason::Delivered { .. });
                self.spend_report(now.0, &claims.account, delivered)
            })
        {
            return self.refused(error);
        }
        self.stats.reports += 1;
        let mark = fingerprint(&claims.account);
        let Some(&slot) = self.by_node.get(&report.peer) else {
            self.stats.reports_ignored += 1;
            return Ok(());
        };
        // Nobody reports on itself, nor on another node of its own account.
        if *reporter == report.peer || self.cold[slot as usize].account == mark {
            self.stats.reports_ignored += 1;
            return Ok(());
        }
        let hot = &self.hot;
        // A failure costs the peer its pair for the rendition; a delivered rate does not.
        let failure = !matches!(report.reason, ReportReason::Delivered { .. });
        let held = self
            .renditions
            .get_mut(&report.rendition)
            .and_then(|entry| {
                let at = entry.holders.iter().position(|held| {
                    held.slot == slot
                        && hot
                            .get(slot as usize)
                            .is_some_and(|peer| peer.holds(held, now.0))
                })?;
                Some(if failure {
                    entry.holders.remove(at)
                } else {
                    entry.holders[at]
                })
            });
        if held.is_none() {
            self.stats.reports_ignored += 1;
            return Ok(());
        }
        if let ReportReason::Delivered { kbps } = report.reason {
            let cold = &mut self.cold[slot as usize];
            let at = cold
                .rates
                .iter()
                .position(|&(kept, _, _)| kept == mark)
                .unwrap_or(RATES_KEPT - 1);
            cold.rates[..=at].rotate_right(1);
            let at_s = u32::try_from(now.0 / 1000).unwrap_or(u32::MAX);
            cold.rates[0] = (mark, kbps, at_s);
            self.stats.rates_reported += 1;
            return Ok(());
        }
        let (hot, cold) = (&mut self.hot[slot as usize], &mut self.cold[slot as usize]);
        // Its next announce rewrites its pairs, the reported one included.
        cold.set = 0;
        if !cold.reporters.contains(&mark) {
            cold.reporters.rotate_right(1);
            cold.reporters[0] = mark;
            cold.strikes = cold.strikes.saturating_add(1);
        }
        if cold.strikes >= self.config.strikes_to_quarantine && hot.quarantined_until_ms <= now.0 {
            hot.quarantined_until_ms = now.0.saturating_add(self.config.quarantine_ms);
            cold.strikes = 0;
            cold.reporters = [0; REPORTERS_KEPT];
            self.stats.quarantined += 1;
        }
        Ok(())
    }

    /// Takes one report from `account`'s hourly budget (failures and delivered rates have
    /// one each).
    fn spend_report(
        &mut self,
        now_ms: u64,
        account: &protocol::AccountId,
        delivered: bool,
    ) -> Result<(), WireError> {
        const HOUR_MS: u64 = 3_600_000;
        // Full: refused at once. Finished windows are dropped by `expire`, which drivers
        // run every few seconds; sweeping here would walk the whole map on every refusal.
        if !self.report_budgets.contains_key(account)
            && self.report_budgets.len() >= self.config.report_accounts_max
        {
            return Err(refuse(
                ErrorCode::Overloaded,
                "too many reporters: retry later",
            ));
        }
        let (start, failures, rates) = self
            .report_budgets
            .entry(*account)
            .or_insert((now_ms, 0, 0));
        if now_ms.saturating_sub(*start) >= HOUR_MS {
            (*start, *failures, *rates) = (now_ms, 0, 0);
        }
        let (count, max) = if delivered {
            (rates, self.config.rate_reports_per_account_per_hour)
        } else {
            (failures, self.config.reports_per_account_per_hour)
        };
        if *count >= max {
            return Err(refuse(
                ErrorCode::Overloaded,
                "this account has used its reports for the hour",
            ));
        }
        *count += 1;
        Ok(())
    }

    /// The `want` most popular renditions, for a super-node (`claims` must carry the
    /// super-node role). The list is recomputed at most every
    /// [`TrackerConfig::popular_refresh_ms`].
    pub fn popular(
        &mut self,
        now: UnixMillis,
        node: &NodeId,
        claims: &LicenseClaims,
        want: usize,
    ) -> Result<PopularList, WireError> {
        if let Err(error) = check_claims(node, claims, now) {
            return self.refused(error);
        }
        if !matches!(claims.scope, LicenseScope::SuperNode) {
            return self.refused(refuse(
                ErrorCode::LicenseNotCovered,
                "popularity lists are for super-nodes",
            ));
        }
        let stale = self
            .popular_at_ms
            .is_none_or(|at| now.0.saturating_sub(at) >= self.config.popular_refresh_ms);
        if stale {
            self.popular = self.compute_popular(now.0, protocol::wire::POPULAR_LIST_MAX);
            self.popular_at_ms = Some(now.0);
        }
        Ok(PopularList {
            renditions: self.popular.iter().take(want).copied().collect(),
        })
    }

    fn compute_popular(&self, now_ms: u64, want: usize) -> Vec<PopularEntry> {
        let half_life = self.config.popularity_half_life_ms;
        let mut scored: Vec<PopularEntry> = self
            .renditions
            .iter()
            .map(|(rendition, entry)| PopularEntry {
                rendition: *rendition,
                score: decayed(entry, now_ms, half_life).round() as u32,
            })
            .filter(|entry| entry.score > 0)
            .collect();
        if scored.len() > want {
            // Ties broken by id, so which of equal scores make the cut does not depend on
            // the map's (per-process) order.
            scored.select_nth_unstable_by(want, |a, b| {
                b.score.cmp(&a.score).then(a.rendition.cmp(&b.rendition))
            });
            scored.truncate(want);
        }
        scored.sort_unstable_by(|a, b| b.score.cmp(&a.score).then(a.rendition.cmp(&b.rendition)));
        scored
    }

    /// Frees the slots of peers whose announce has expired (and whose quarantine is over) and
    /// drops renditions with no live holder and no remaining popularity. Returns the number of
    /// peers removed. Drivers call it every few seconds; it walks the whole state.
    pub fn expire(&mut self, now: UnixMillis) -> usize {
        let now_ms = now.0;
        self.report_budgets
            .retain(|_, (start, _, _)| now_ms.saturating_sub(*start) < 3_600_000);
        let mut removed = 0;
        for (slot, (peer, cold)) in self.hot.iter_mut().zip(&mut self.cold).enumerate() {
            if peer.seq != 0 && peer.expires_ms <= now_ms && peer.quarantined_until_ms <= now_ms {
                self.by_node.remove(&cold.node);
                peer.seq = 0;
                cold.addr = None;
                cold.more_addrs = Box::new([]);
                peer.more_addrs = false;
                self.free.push(slot as u32);
                removed += 1;
            }
        }
        let hot = &self.hot;
        let half_life = self.config.popularity_half_life_ms;
        self.renditions.retain(|_, entry| {
            entry.holders.retain(|held| {
                hot.get(held.slot as usize)
                    .is_some_and(|peer| peer.holds(held, now_ms))
            });
            if entry.holders.is_empty() {
                entry.holders = Vec::new();
            }
            !entry.holders.is_empty() || decayed(entry, now_ms, half_life) >= 0.5
        });
        removed
    }

    /// True when `node` is quarantined at `now`.
    pub fn is_quarantined(&self, now: UnixMillis, node: &NodeId) -> bool {
        self.by_node
            .get(node)
            .is_some_and(|&slot| self.hot[slot as usize].quarantined_until_ms > now.0)
    }

    /// Live holders of `rendition` at `now` (for checks and tests).
    pub fn holders(&self, now: UnixMillis, rendition: &RenditionId) -> Vec<NodeId> {
        self.renditions
            .get(rendition)
            .map(|entry| {
                entry
                    .holders
                    .iter()
                    .filter(|held| self.holder_valid(held, now.0))
                    .map(|held| self.cold[held.slot as usize].node)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The asker's own region must be among the track's markets (the origin checked at issue
/// time; the tracker checks again, the claims are signed).
fn transport_free_check_region(claims: &LicenseClaims) -> Result<(), WireError> {
    if claims.market_includes(&claims.region) {
        Ok(())
    } else {
        Err(refuse(
            ErrorCode::NotInRegion,
            format!("track not licensed in {}", claims.region),
        ))
    }
}

fn decayed(entry: &RenditionEntry, now_ms: u64, half_life_ms: u64) -> f32 {
    let elapsed_s = (now_ms / 1000).saturating_sub(u64::from(entry.score_at_s)) as f32;
    let half_life_s = (half_life_ms as f32 / 1000.0).max(1.0);
    entry.score * (-elapsed_s / half_life_s * std::f32::consts::LN_2).exp()
}

fn bump(entry: &mut RenditionEntry, now_ms: u64, half_life_ms: u64) {
    entry.score = decayed(entry, now_ms, half_life_ms) + 1.0;
    entry.score_at_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
}

/// What an announce's credential and proofs license, gathered once per announce: the
/// credential's own renditions (or everything, for a super-node's), and those of every proof
/// bound to the announcing node, from the credential's issuer, in a play scope whose markets
/// include the node's region.
struct Licensed<'a> {
    everything: bool,
    renditions: std::collections::HashSet<&'a RenditionId, Hasher>,
}

impl<'a> Licensed<'a> {
    fn new(node: &NodeId, claims: &'a LicenseClaims, proofs: &'a [LicenseClaims]) -> Self {
        let mut renditions = std::collections::HashSet::with_hasher(Hasher::default());
        let everything = match &claims.scope {
            LicenseScope::SuperNode => true,
            LicenseScope::Play { renditions: own } => {
                renditions.extend(own.iter());
                false
            }
        };
        for proof in proofs {
            if let LicenseScope::Play { renditions: proved } = &proof.scope
                && proof.node == *node
                && proof.issuer == claims.issuer
                && proof.market_includes(&claims.region)
            {
                renditions.extend(proved.iter());
            }
        }
        Self {
            everything,
            renditions,
        }
    }

    /// Whether the credential or a proof covers `rendition` (as [`LicenseClaims::permits`]
    /// on each would say).
    fn permits(&self, rendition: &RenditionId) -> bool {
        self.everything || self.renditions.contains(rendition)
    }
}
