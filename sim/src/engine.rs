//! The discrete-event engine: one seeded run of a [`Scenario`].
//!
//! # What runs, and what is modelled
//!
//! - **Real code.** Every listening client drives a real [`Scheduler`] (client-lib), the
//!   network has one real [`Tracker`] (tracker core), and every super-node keeps its cache with
//!   a real [`CachePolicy`] and chooses its fills with a real [`FillPlanner`] (popular rounds,
//!   pull-through after misses, hold-offs). The engine is their driver: it feeds them events with the
//!   virtual time and carries out the actions they return, as the production drivers do with
//!   sockets.
//! - **The driver around the scheduler** mirrors `client_lib::listener`: every play is
//!   authorized by the origin (one round trip), which sends the opening chunks with the grant;
//!   a track whose chunks are all in the local cache plays from it; when the scheduler asks
//!   for [`Action::PrefetchNext`], the next track's grant and first `prefetch_ms` of audio are
//!   fetched ahead: from the holders the tracker lists, tried in order as the client tries
//!   them ([`policy::prefetch`]), and from the origin when none delivers in time. A super-node
//!   fills the same way, trying every holder listed before the origin, and announces a
//!   fill the announce gap after it lands. From its first audio a listener downloading a
//!   track announces it as a partial holder (its scheduler's held prefix and the growth
//!   `policy::announce::claimed_per_min` claims), and serves that prefix, answering the
//!   rest of a range with what it holds (the prefix as at the request; the client also
//!   announces the prefixes of skipped tracks and prefetched openings, which the simulator's
//!   whole-track cache does not keep). A listener announces the renditions it holds in full (its
//!   `announce_max` most recently played) every `announce_every_s` while online; one that
//!   others cannot dial (`classes.reachable`) announces nothing, as it can serve no one.
//! - **Flow-level network.** A request for a range of chunks is one transfer. Its first
//!   byte arrives a round trip after the request (two for the first request on a new peer
//!   connection, plus a retransmission timeout with the path's loss chance); its rate is the
//!   smaller of the source's upload and the destination's download, each shared equally among
//!   their transfers, and of the path's loss-limited throughput (Mathis: 1.22·MSS/(RTT·√p)).
//!   When a transfer starts or ends, the other transfers of both ends are re-rated, once
//!   per node when the millisecond's events are done (no time passes within it, so a
//!   transfer that ends and one that starts in its place move the others' rates once). The
//!   origin's capacity is shared likewise, except that origin transfers are re-rated only
//!   through their destination. Each chunk is handed to the scheduler at the millisecond it
//!   lands, with its own rate sample and stall clock ([`Scheduler::arrived`]). With
//!   `network.delivery = "analytic"` (the default) only the chunks whose arrival can change a
//!   decision have an event of their own (one the play head may be waiting for, the last one
//!   not held, a transfer's end); the others are handed over, at their own times, when
//!   anything next looks at the listener. Same seed, same results as an event per chunk
//!   (`"chunks"`), play for play: a test compares them. (The client hands a range over when
//!   it completes; on the access links of the shipped scenarios a range of 8 chunks takes a
//!   fraction of a second.)
//! - **Not modelled**: priorities between transfers of one node, TCP/QUIC slow start,
//!   partial caching of skipped tracks (a local cache holds whole tracks), and signatures
//!   (the tracker core takes verified claims; the engine builds them directly).
//!
//! # Determinism
//!
//! One ChaCha8 RNG seeded from the scenario, drawn in event order; events ordered by (time,
//! the event's node, kind and round, epoch or transfer (`Ev::order_key`), insertion
//! sequence), so a millisecond's order is that of what its events are, not of when each was
//! queued; no iteration over hash maps whose order could leak into results. A seed and a
//! commit replay a run exactly.
//!
//! # Checkers
//!
//! They run during every simulation and stop it with [`SimError::Check`]: a chunk that fails
//! verification reaching a player, a tracker answer listing the asker or a peer outside the
//! track's markets, a serving peer asked for a track outside the asker's markets, and every
//! bound (event queue, transfers per node, requests per play, cache budgets, tracker size).

use policy::cache::CachePolicy;
use policy::fill::{self, FillConfig, FillPlanner};
use policy::scheduler::{
    Action, Failure, PlayStats, PlayerEvent, RequestId, Scheduler, SchedulerConfig, SourceKind,
    TrackPlan,
};
use policy::tracker::{Tracker, TrackerConfig};

use crate::tracker_link::{Announcement, FullAnnounce, Ticket, TrackerLink};
use policy::upload::Admission;
use protocol::license::{LICENSE_VERSION, LicenseClaims, LicenseScope, LicenseToken};
use protocol::wire::{
    Announce, Holding, NodeRole, Partial, PeerInfo, PeerList, PeerQuery, PeerReport, Priority,
    Refresh, ReportReason,
};
use protocol::{AccountId, NodeId, Region, RenditionId, UnixMillis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Scenario;
use crate::queue::EventQueue;
use crate::report::{Checks, Outcome, PlayRecord, Sample, Summary, Totals};
use crate::workload::{Zipf, diurnal, weibull};

/// The origin's node index.
const ORIGIN: u32 = u32::MAX;
/// Ciphertext overhead per chunk (the AEAD tag).
const TAG_BYTES: u32 = 16;
/// Start-latency histogram resolution: 1 ms buckets up to this (the last one holds the rest).
pub const START_HISTOGRAM_MS: usize = 60_000;
/// Requests one play may have out at once (the scheduler's own limits are far below).
const REQUESTS_PER_PLAY_MAX: usize = 512;
/// Peer connections a listener keeps (the scheduler's `sources_max`).
const CONNECTIONS_MAX: usize = 64;
/// Events pending per node, on average, before the queue counts as runaway.
const EVENTS_PER_NODE_MAX: usize = 64;
/// Bytes of one QUIC packet's payload, for the loss-limited rate.
const MSS_BYTES: f64 = 1_200.0;
/// How often the tracker's expiry walk runs.
const EXPIRE_EVERY_MS: u64 = 300_000;
/// Fewest and most slots of the memo of chunk ends (powers of two): one per 16 listeners
/// between the two, so the popular tracks of a large run stay in it (at most ~80 MB).
const ENDS_MEMO_MIN: usize = 4_096;
const ENDS_MEMO_MAX: usize = 65_536;

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A checker saw something that must never happen.
    #[error("check failed at {at_ms} ms: {what}")]
    Check {
        /// Simulated time.
        at_ms: u64,
        /// What.
        what: String,
    },
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] crate::config::ScenarioError),
}

/// Progress of a run, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Simulated time reached, ms.
    pub sim_ms: u64,
    /// Simulated time of the whole run, ms.
    pub total_ms: u64,
    /// Events handled.
    pub events: u64,
    /// Plays started so far.
    pub plays: u64,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    SessionStart {
        peer: u32,
    },
    Grant {
        peer: u32,
        round: u32,
    },
    PrefetchGrant {
        peer: u32,
        round: u32,
    },
    /// The tracker's answer to a prefetch's lookup arrives; `None`: the lookup timed out.
    PrefetchPeers {
        peer: u32,
        round: u32,
        lookup: Option<Ticket>,
    },
    /// The tracker's answer to a lookup reaches the listener; `None`: no lookup was sent (the
    /// tracker is down: it timed out).
    Peers {
        peer: u32,
        round: u32,
        lookup: Option<Ticket>,
    },
    Failure {
        peer: u32,
        round: u32,
        request: u64,
        failure: u8,
    },
    /// A transfer's next chunks are in (`end`: all of them); `dst` its destination.
    Flow {
        flow: u32,
        version: u32,
        dst: u32,
        end: bool,
    },
    Tick {
        peer: u32,
        round: u32,
    },
    Skip {
        peer: u32,
        round: u32,
    },
    Next {
        peer: u32,
        round: u32,
    },
    Offline {
        peer: u32,
        epoch: u32,
    },
    Crash {
        peer: u32,
        epoch: u32,
    },
    /// A crash drawn from `faults.crash_per_min`: only within a session (the devnet's
    /// crash timer runs while its listener plays), back a few seconds later.
    Kill {
        peer: u32,
        epoch: u32,
    },
    Announce {
        node: u32,
        epoch: u32,
    },
    SuperRefresh {
        node: u32,
    },
    /// A miss queued a pull-through fill: the super-node starts what its policy allows.
    SuperFill {
        node: u32,
    },
    /// A listener announces, the announce gap after its last one.
    AnnounceSoon {
        peer: u32,
        epoch: u32,
    },
    /// A super-node's fill landed: it announces (once for fills landing together).
    SuperAnnounce {
        node: u32,
    },
    Sample,
    Expire,
}

impl Ev {
    /// The kinds' names, as the summary's `events_by_kind` lists them, in [`Ev::kind`] order.
    const KINDS: [&'static str; 20] = [
        "session_start",
        "grant",
        "prefetch_grant",
        "peers",
        "failure",
        "flow",
        "tick",
        "skip",
        "next",
        "offline",
        "crash",
        "kill",
        "announce",
        "super_refresh",
        "super_fill",
        "announce_soon",
        "super_announce",
        "sample",
        "expire",
        "prefetch_peers",
    ];

    /// Where the event comes among those of its millisecond: by the node it concerns (a
    /// transfer's by its destination), then by kind (a transfer's end first), then which of
    /// the node's (a transfer, a round, an epoch, a request); never by when it was queued.
    /// So a node's events at a millisecond come together, and what it does then happens at
    /// the same point of the millisecond however its work is split among them: the
    /// chunk-by-chunk and analytic deliveries, which give a transfer different events, handle
    /// the rest in the same order and draw the same randomness.
    fn order_key(&self) -> u64 {
        let kind = self.kind() as u64 + 1;
        let (who, class, which) = match *self {
            Ev::SessionStart { peer } => (peer, kind, 0),
            Ev::Grant { peer, round }
            | Ev::PrefetchGrant { peer, round }
            | Ev::PrefetchPeers { peer, round, .. }
            | Ev::Peers { peer, round, .. }
            | Ev::Tick { peer, round }
            | Ev::Skip { peer, round }
            | Ev::Next { peer, round } => (peer, kind, u64::from(round)),
            Ev::Failure { peer, request, .. } => (peer, kind, request),
            // A transfer's end comes before its destination's other events: no decision of
            // the node sees the last chunk without the end, or the end's effects (a freed
            // upload slot, a larger share) without the chunk.
            Ev::Flow {
                flow,
                dst,
                end: true,
                ..
            } => (dst, 0, u64::from(flow)),
            Ev::Flow { flow, dst, .. } => (dst, kind, u64::from(flow)),
            Ev::Offline { peer, epoch }
            | Ev::Crash { peer, epoch }
            | Ev::Kill { peer, epoch }
            | Ev::AnnounceSoon { peer, epoch } => (peer, kind, u64::from(epoch)),
            Ev::Announce { node, epoch } => (node, kind, u64::from(epoch)),
            Ev::SuperRefresh { node } | Ev::SuperFill { node } | Ev::SuperAnnounce { node } => {
                (node, kind, 0)
            }
            // The run's own: after every node's.
            Ev::Sample | Ev::Expire => (u32::MAX, kind, 0),
        };
        u64::from(who) << 32 | class << 27 | (which & ((1 << 27) - 1))
    }

    /// This event's index in [`Ev::KINDS`].
    fn kind(&self) -> usize {
        match self {
            Ev::SessionStart { .. } => 0,
            Ev::Grant { .. } => 1,
            Ev::PrefetchGrant { .. } => 2,
            Ev::Peers { .. } => 3,
            Ev::Failure { .. } => 4,
            Ev::Flow { .. } => 5,
            Ev::Tick { .. } => 6,
            Ev::Skip { .. } => 7,
            Ev::Next { .. } => 8,
            Ev::Offline { .. } => 9,
            Ev::Crash { .. } => 10,
            Ev::Kill { .. } => 11,
            Ev::Announce { .. } => 12,
            Ev::SuperRefresh { .. } => 13,
            Ev::SuperFill { .. } => 14,
            Ev::AnnounceSoon { .. } => 15,
            Ev::SuperAnnounce { .. } => 16,
            Ev::Sample => 17,
            Ev::Expire => 18,
            Ev::PrefetchPeers { .. } => 19,
        }
    }
}

impl FlowKind {
    /// The priority its request carries on the wire.
    fn priority(self) -> Priority {
        match self {
            FlowKind::Play { priority, .. } => priority,
            FlowKind::Prefetch { .. } => Priority::Prefetch,
            // As `node::supernode` fills.
            FlowKind::Fill { .. } => Priority::OfflineSync,
        }
    }
}

/// How a listener went offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// It closed the app after lingering.
    Left,
    /// A crash from `faults.crash_share`: back after the usual gap between sessions.
    Crashed,
    /// A crash from `faults.crash_per_min`: back a few seconds later.
    Killed,
}

/// What wasted bytes were for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waste {
    /// A prefetched opening whose track was not played next.
    Prefetch,
    /// A play's transfer abandoned before it handed its range over.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowKind {
    /// A scheduler request of a listener's current play.
    Play {
        round: u32,
        request: u64,
        priority: Priority,
    },
    /// The next track's opening, for a listener.
    Prefetch { round: u32 },
    /// A super-node filling a popular rendition.
    Fill { track: u32 },
}

#[derive(Debug, Clone)]
struct Flow {
    src: u32,
    dst: u32,
    kind: FlowKind,
    first: u32,
    count: u32,
    bytes_total: f64,
    done: f64,
    /// Bytes per ms.
    rate: f64,
    /// Progress is `done` at this time; before the first byte, the first byte's time.
    at_ms: u64,
    loss_cap: f64,
    /// What its source lets it take (its upload share, capped by `loss_cap`), for a source
    /// other than the origin: kept with the source's upload count by
    /// [`Engine::rerate_around`], so dividing a download does not visit every source.
    limit: f64,
    /// Chunks handed over so far.
    delivered: u32,
    /// Chunks in by the next event: `count` for the end of the transfer, fewer for a chunk
    /// whose arrival may change a decision ([`Engine::next_until`]).
    until: u32,
    track: u32,
    version: u32,
    /// Time of the queued event that carries `version`.
    scheduled_at: u64,
    /// The event carrying `version` is in the queue.
    queued: bool,
    /// When the next chunk to hand over lands (`arrival(delivered + 1)`, for a play's
    /// transfer with more than that chunk to come; else `u64::MAX`): kept with the rate.
    next_at: u64,
    corrupt: bool,
    live: bool,
    /// Holds one of its source's upload slots.
    admitted: bool,
}

/// Network attachment of a node: the transfers it sends and receives.
#[derive(Debug, Default)]
struct Attach {
    /// The transfers it sends, in the order they started.
    ups: Vec<u32>,
    /// The transfers it receives, in the order they started.
    downs: Vec<u32>,
    /// Listed in [`Engine::unsettled`]: its download is divided again when the millisecond's
    /// events are done.
    unsettled: bool,
    /// Who holds its upload slots (`policy::upload`), while any is held.
    admission: Option<Box<Admission<u32>>>,
}

impl Attach {
    /// Transfers it sends.
    fn uploads(&self) -> u32 {
        self.ups.len() as u32
    }

    /// Transfers it receives.
    fn downloads(&self) -> u32 {
        self.downs.len() as u32
    }
}

#[derive(Debug)]
struct Listener {
    region: u8,
    class: u8,
    reachable: bool,
    corrupt: bool,
    online: bool,
    epoch: u32,
    /// Whole tracks held, least recently played first.
    cache: Vec<u32>,
    cache_bytes: u64,
    net: Attach,
    active: Option<Box<Active>>,
    /// When it last announced (the tracker refuses announces closer than 1 s).
    announced_ms: Option<u64>,
    /// An [`Ev::AnnounceSoon`] is queued.
    announce_due: bool,
    /// The [`Holdings::key`] of the last announce sent in full: while the key is the same,
    /// a refresh names that set.
    announced_set: Option<u64>,
}

/// What a listener announces, gathered on the engine's thread; the announce in full or the
/// refresh (and its set's digest) is built from it where the tracker runs
/// ([`TrackerLink::announce_built`]).
struct Holdings {
    /// Whole tracks, most recently played first.
    tracks: Vec<u32>,
    /// The track downloading, as a partial holder.
    partial: Option<(u32, Holding)>,
    region: Region,
    spare_kbps: u32,
    credential: LicenseToken,
    /// The listener's play claims (their scope is replaced).
    claims: LicenseClaims,
}

impl Holdings {
    /// Identifies the set announced (the tracks, in order, and the partial track; not the
    /// partial's progress), so an unchanged set is refreshed rather than sent again.
    fn key(&self) -> u64 {
        let mut key = 0xcbf2_9ce4_8422_2325_u64;
        let partial = self.partial.map_or(u32::MAX, |(track, _)| track);
        for value in self.tracks.iter().chain(std::iter::once(&partial)) {
            key = (key ^ u64::from(*value)).wrapping_mul(0x0000_0100_0000_01b3);
            key ^= key >> 29;
        }
        key ^ self.tracks.len() as u64
    }

    /// The whole tracks' renditions, most recently played first.
    fn renditions(&self) -> Vec<RenditionId> {
        self.tracks
            .iter()
            .map(|&track| rendition_id(track))
            .collect()
    }

    fn partial(&self) -> Vec<Partial> {
        self.partial
            .map(|(track, holding)| Partial {
                rendition: rendition_id(track),
                held: holding.held,
                per_min: holding.per_min,
            })
            .into_iter()
            .collect()
    }

    /// The credential's claims, covering nothing by themselves.
    fn credential_claims(&self) -> LicenseClaims {
        let mut claims = self.claims.clone();
        claims.scope = LicenseScope::Play {
            renditions: Vec::new(),
        };
        claims
    }
}

impl Announcement for Holdings {
    /// The announce in full: claims, proofs and the announce.
    fn full(self: Box<Self>) -> FullAnnounce {
        let renditions = self.renditions();
        // The licenses the listener played these under, as one proof (the tracker checks
        // coverage, not how many tokens carry it; signatures are the driver's business).
        let mut proof = self.claims.clone();
        let mut covered = renditions.clone();
        covered.extend(self.partial.map(|(track, _)| rendition_id(track)));
        proof.scope = LicenseScope::Play {
            renditions: covered,
        };
        proof.markets = Vec::new();
        let announce = Announce {
            partial: self.partial(),
            region: self.region,
            role: NodeRole::Client,
            addrs: vec![LISTENER_ADDR],
            renditions,
            upload_spare_kbps: self.spare_kbps,
            credential: self.credential.clone(),
            proofs: Vec::new(),
        };
        (self.credential_claims(), vec![proof], announce)
    }

    /// The refresh: the set named by the digest the announce in full would carry.
    fn refresh(&self) -> (LicenseClaims, Refresh) {
        let renditions = self.renditions();
        let partial = self.partial();
        let set = protocol::wire::announce_set(
            renditions.iter(),
            partial.iter().map(|partial| &partial.rendition),
        );
        let refresh = Refresh {
            set,
            region: self.region,
            role: NodeRole::Client,
            addrs: vec![LISTENER_ADDR],
            partial,
            upload_spare_kbps: self.spare_kbps,
            credential: self.credential.clone(),
        };
        (self.credential_claims(), refresh)
    }
}

/// The address listeners announce (the simulator's network model has no addresses).
const LISTENER_ADDR: std::net::SocketAddr = std::net::SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    4433,
);

#[derive(Debug)]
struct SuperNode {
    region: u8,
    cache: CachePolicy,
    net: Attach,
    /// Its fill choice (`policy::fill`, as `node::supernode` drives it).
    fills: FillPlanner,
    /// A [`Ev::SuperAnnounce`] is queued.
    announce_due: bool,
    /// When it last announced.
    announced_ms: Option<u64>,
}

#[derive(Debug)]
struct PlayState {
    track: u32,
    pressed_ms: u64,
    granted: bool,
    granted_ms: u64,
    /// Every chunk arrived (the track went into the cache).
    downloaded: bool,
    /// Bytes the driver got from the origin outside the scheduler (opening, prefetch).
    origin_ahead: u64,
    /// Prefetched bytes from a listener (the `prefetch_from_peers` what-if).
    peers_ahead: u64,
    /// Prefetched bytes from a super-node (the same).
    super_ahead: u64,
    from_cache: bool,
    prefetched: bool,
    first_audio_ms: Option<u64>,
    /// `first_audio_ms` step by step: grant, first chunk, decoder.
    first_audio_steps_ms: [u64; 3],
    measured: bool,
    /// Chunks held from the first when the download started (at the grant), the base of the
    /// growth a partial holder announces ([`policy::announce::claimed_per_min`]).
    held_at_grant: u32,
}

#[derive(Debug)]
struct Prefetch {
    track: u32,
    /// Where its chunks come from.
    source: u32,
    ready: bool,
    chunks: u32,
    bytes: u64,
    flow: Option<u32>,
}

#[derive(Debug)]
struct Active {
    sched: Scheduler,
    /// The play's number: an event carries it and is void once another play started.
    round: u32,
    session_end_ms: u64,
    playlist: Option<(u32, u32)>,
    next_track: Option<u32>,
    play: Option<PlayState>,
    prefetch: Option<Prefetch>,
    requests: Vec<(RequestId, u32)>,
    /// Requests to a partial holder that lacks some of their chunks: the first it lacks and
    /// the prefix it holds, told once what it holds has arrived (`ChunkMissing`).
    misses: Vec<(RequestId, u32, u32)>,
    connected: Vec<u32>,
    tick_at: u64,
    /// No chunk of the play's transfers lands before this ([`Engine::catch_up_listener`]
    /// has nothing to do until then): at most the least of their `next_at`.
    catch_up_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Finished,
    Skipped,
    Crashed,
    /// The run ended during the play.
    RunOver,
}

/// The engine. Build with [`Engine::new`], run with [`Engine::run`].
#[derive(Debug)]
pub struct Engine {
    scenario: Scenario,
    rng: ChaCha8Rng,
    now: u64,
    end_ms: u64,
    measure_from_ms: u64,
    queue: EventQueue<Ev>,
    /// Nodes whose transfers' shares changed this millisecond, in the order they changed:
    /// each divides its download once, when the millisecond's events are done
    /// ([`Engine::divide_downloads`]).
    unsettled: Vec<u32>,
    /// A reused list for dividing a download ([`Engine::refill`]).
    scratch_limits: Vec<(f64, u32)>,
    /// A reused list of a listener's transfers, for handing over what has arrived.
    scratch_flows: Vec<u32>,
    /// Every chunk of a play's transfer has its own event (`network.delivery = "chunks"`).
    chunk_events: bool,
    /// The chunk ends of tracks computed lately, by track modulo its length (a power of two
    /// from [`ENDS_MEMO_MIN`] to [`ENDS_MEMO_MAX`], by the listeners): a play needs
    /// them up to three times (its grant's delay, the grant, the plan), and popular tracks
    /// come back often.
    ends_memo: std::cell::RefCell<Vec<(u32, std::sync::Arc<[u32]>)>>,
    ends_memo_slots: usize,
    events: u64,
    /// Events handled, by kind ([`Ev::KINDS`]).
    events_by_kind: [u64; Ev::KINDS.len()],
    listeners: Vec<Listener>,
    supers: Vec<SuperNode>,
    flows: Vec<Flow>,
    free_flows: Vec<u32>,
    origin_uploads: u32,
    tracker: TrackerLink,
    popularity: Zipf,
    playlist_popularity: Zipf,
    catalog_tracks: u32,
    release_first: Vec<u32>,
    regions: Vec<Region>,
    rtt: Vec<Vec<f64>>,
    loss: Vec<Vec<f64>>,
    origin_region: usize,
    tracker_region: usize,
    region_weights: Vec<f64>,
    class_weights: Vec<f64>,
    sched_config: SchedulerConfig,
    token: LicenseToken,
    // Statistics.
    totals: Totals,
    interval: Totals,
    series: Vec<Sample>,
    plays: Vec<PlayRecord>,
    start_histogram: Vec<u64>,
    /// The same for each step of the start (grant, first chunk, decoder).
    steps_histograms: [Vec<u64>; 3],
    /// Off while a crashed listener's transfers are torn down (the devnet loses its counts).
    waste_counted: bool,
    checks: Checks,
    plays_started: u64,
    listening: u32,
    online: u32,
}

fn node_id(node: u32) -> NodeId {
    let mut bytes = [0u8; 32];
    if node == ORIGIN {
        bytes = [0xff; 32];
    } else {
        bytes[..4].copy_from_slice(&(node + 1).to_le_bytes());
        bytes[4] = 0xc1;
    }
    NodeId(bytes)
}

fn node_of(id: &NodeId) -> Option<u32> {
    let bytes = id.as_bytes();
    if bytes == &[0xff; 32] {
        return Some(ORIGIN);
    }
    if bytes[4] != 0xc1 {
        return None;
    }
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]).checked_sub(1)
}

fn rendition_id(track: u32) -> RenditionId {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&track.to_le_bytes());
    bytes[4] = 0xa5;
    RenditionId(bytes)
}

fn track_of(rendition: &RenditionId) -> u32 {
    let bytes = rendition.as_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// splitmix64: a per-track draw that needs no table.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn pick_weighted(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.r#gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

impl Engine {
    /// Sets up a run: the catalog, listeners with warm caches, super-nodes, the tracker.
    pub fn new(scenario: Scenario) -> Result<Self, SimError> {
        Self::with_threads(scenario, 1)
    }

    /// [`Engine::new`], on `threads` threads: with two or more, the tracker runs on a thread
    /// of its own (`sim::tracker_link`). The results are the same for any number.
    pub fn with_threads(scenario: Scenario, threads: usize) -> Result<Self, SimError> {
        scenario.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let regions: Vec<Region> = scenario
            .regions
            .iter()
            .map(|region| {
                let bytes = region.name.as_bytes();
                Region::new([bytes[0], bytes[1]]).unwrap_or(Region::UNKNOWN)
            })
            .collect();
        let count = regions.len();
        let rtt = (0..count)
            .map(|a| (0..count).map(|b| scenario.rtt_ms(a, b)).collect())
            .collect();
        let loss = (0..count)
            .map(|a| (0..count).map(|b| scenario.loss(a, b)).collect())
            .collect();
        let client = &scenario.client;
        let sched_config = SchedulerConfig {
            opening_chunks: client.scheduler_opening_chunks,
            origin_lead_ms: client.origin_lead_ms,
            urgent_ms: client.urgent_ms,
            stall_ms: client.stall_ms,
            range_chunks: client.range_chunks,
            requests_per_peer: client.requests_per_peer as usize,
            prefetch_remaining_ms: client.prefetch_remaining_ms,
            sources_max: CONNECTIONS_MAX,
            ..SchedulerConfig::default()
        };
        let release_tracks: u32 = scenario.releases.iter().map(|r| r.tracks).sum();
        let mut release_first = Vec::new();
        let mut next = scenario.catalog.tracks;
        for release in &scenario.releases {
            release_first.push(next);
            next += release.tracks;
        }
        let supers_total = scenario.super_nodes.per_region as usize * count;
        let tracker = Tracker::new(TrackerConfig {
            peers_returned_max: scenario.tracker.peers_returned as usize,
            peers_per_rendition_max: scenario.tracker.peers_per_track as usize,
            peers_max: scenario.peers as usize + supers_total + 16,
            report_accounts_max: scenario.peers as usize + supers_total + 16,
            renditions_max: (scenario.catalog.tracks + release_tracks) as usize + 16,
            announce_ttl_ms: scenario.tracker.announce_ttl_s * 1_000,
            rates_to_rank: if scenario.tracker.rank_by_delivered {
                policy::tracker::RATES_TO_RANK
            } else {
                usize::MAX
            },
            hash_seed: scenario.seed,
            ..TrackerConfig::default()
        });
        let tracker = TrackerLink::new(tracker, threads >= 2).map_err(|error| SimError::Check {
            at_ms: 0,
            what: format!("no thread for the tracker: {error}"),
        })?;
        let end_ms = scenario.duration_s * 1_000;
        let mut engine = Self {
            popularity: Zipf::new(scenario.catalog.tracks, scenario.catalog.zipf_alpha),
            playlist_popularity: Zipf::new(scenario.catalog.playlists, 1.0),
            catalog_tracks: scenario.catalog.tracks,
            release_first,
            origin_region: scenario.region_index(&scenario.network.origin_region),
            tracker_region: scenario.region_index(&scenario.network.tracker_region),
            region_weights: scenario.regions.iter().map(|r| r.share).collect(),
            class_weights: scenario.classes.iter().map(|c| c.share).collect(),
            regions,
            rtt,
            loss,
            sched_config,
            token: LicenseToken {
                claims: Vec::new(),
                signature: [0; 64],
            },
            now: 0,
            end_ms,
            measure_from_ms: scenario.measure_from_s * 1_000,
            queue: EventQueue::new(),
            unsettled: Vec::new(),
            scratch_limits: Vec::new(),
            scratch_flows: Vec::new(),
            chunk_events: scenario.network.delivery == crate::config::Delivery::Chunks,
            ends_memo: std::cell::RefCell::new(Vec::new()),
            ends_memo_slots: (scenario.peers as usize / 16)
                .next_power_of_two()
                .clamp(ENDS_MEMO_MIN, ENDS_MEMO_MAX),
            events: 0,
            events_by_kind: [0; Ev::KINDS.len()],
            listeners: Vec::new(),
            supers: Vec::new(),
            flows: Vec::new(),
            free_flows: Vec::new(),
            origin_uploads: 0,
            tracker,
            totals: Totals::default(),
            interval: Totals::default(),
            series: Vec::new(),
            plays: Vec::new(),
            start_histogram: vec![0; START_HISTOGRAM_MS + 1],
            steps_histograms: std::array::from_fn(|_| vec![0; START_HISTOGRAM_MS + 1]),
            waste_counted: true,
            checks: Checks::default(),
            plays_started: 0,
            listening: 0,
            online: 0,
            rng: ChaCha8Rng::seed_from_u64(0),
            scenario,
        };
        engine.populate(&mut rng);
        engine.rng = rng;
        Ok(engine)
    }

    fn populate(&mut self, rng: &mut ChaCha8Rng) {
        let scenario = self.scenario.clone();
        let mut warm = Vec::new();
        for _ in 0..scenario.peers {
            let region = pick_weighted(rng, &self.region_weights) as u8;
            let class = pick_weighted(rng, &self.class_weights) as u8;
            let spec = &scenario.classes[class as usize];
            let reachable = rng.r#gen::<f64>() < spec.reachable;
            let corrupt = rng.r#gen::<f64>() < scenario.faults.corrupt_peers;
            let mut listener = Listener {
                region,
                class,
                reachable,
                corrupt,
                online: false,
                epoch: 0,
                cache: Vec::new(),
                cache_bytes: 0,
                net: Attach::default(),
                active: None,
                announced_ms: None,
                announce_due: false,
                announced_set: None,
            };
            warm.clear();
            for _ in 0..spec.warm_tracks {
                let track = self.popular_track(rng, region);
                warm.push(track);
            }
            // History: distinct tracks, within the budget (order within it is arbitrary).
            warm.sort_unstable();
            warm.dedup();
            let budget = spec.cache_mib << 20;
            for &track in &warm {
                let bytes = self.track_bytes(track);
                if listener.cache_bytes + bytes <= budget {
                    listener.cache.push(track);
                    listener.cache_bytes += bytes;
                }
            }
            // Recency order of a real history: shuffled, seeded.
            for i in (1..listener.cache.len()).rev() {
                let j = rng.gen_range(0..=i);
                listener.cache.swap(i, j);
            }
            self.listeners.push(listener);
        }
        let per_region = scenario.super_nodes.per_region;
        let capacity = (scenario.super_nodes.cache_gib * (1u64 << 30) as f64) as u64;
        for region in 0..scenario.regions.len() {
            for _ in 0..per_region {
                self.supers.push(SuperNode {
                    region: region as u8,
                    cache: CachePolicy::new(capacity, scenario.super_nodes.pin_fraction),
                    net: Attach::default(),
                    fills: FillPlanner::new(FillConfig {
                        refresh_ms: scenario.super_nodes.popular_refresh_s * 1_000,
                        at_once: scenario.super_nodes.fills_at_once as usize,
                        ..FillConfig::default()
                    }),
                    announce_due: false,
                    announced_ms: None,
                });
            }
        }
        // First sessions: spread over one cycle, thinned by the diurnal curve.
        for peer in 0..scenario.peers {
            let cycle = self.cycle_ms();
            let start = (rng.r#gen::<f64>() * cycle) as u64;
            let start = self.thin(rng, peer, start);
            self.push_at(start, Ev::SessionStart { peer });
        }
        let first_super = scenario.peers;
        let refresh_ms = scenario.super_nodes.popular_refresh_s * 1_000;
        for index in 0..self.supers.len() as u32 {
            let node = first_super + index;
            self.push_at(0, Ev::Announce { node, epoch: 0 });
            // Spread over the first interval, as super-nodes start at different times.
            let offset = rng.gen_range(0..refresh_ms.max(1));
            self.push_at(offset, Ev::SuperRefresh { node });
        }
        self.push_at(scenario.output.sample_s * 1_000, Ev::Sample);
        self.push_at(EXPIRE_EVERY_MS, Ev::Expire);
    }

    /// Mean time between session starts of one listener, ms.
    fn cycle_ms(&self) -> f64 {
        86_400_000.0 / self.scenario.sessions.per_day
    }

    /// Moves a candidate session start later until the diurnal curve accepts it.
    fn thin(&self, rng: &mut ChaCha8Rng, peer: u32, mut at: u64) -> u64 {
        let sessions = &self.scenario.sessions;
        let region = &self.scenario.regions[self.listeners[peer as usize].region as usize];
        let top = 1.0 + sessions.diurnal_amplitude;
        for _ in 0..64 {
            let weight = diurnal(
                at,
                region.utc_offset_h + self.scenario.start_utc_h,
                sessions.diurnal_amplitude,
                sessions.peak_hour,
            );
            if rng.r#gen::<f64>() * top <= weight {
                return at;
            }
            at += rng.gen_range(60_000..1_800_000);
        }
        at
    }

    // ---- catalog -------------------------------------------------------------------------

    fn track_seconds(&self, track: u32) -> u64 {
        let [low, high] = self.scenario.catalog.track_seconds;
        let span = u64::from(high - low) + 1;
        u64::from(low) + mix(u64::from(track) ^ 0x7472_6163_6b00) % span
    }

    fn chunk_plain(&self) -> u64 {
        u64::from(self.scenario.catalog.chunk_bytes)
    }

    fn track_plain_bytes(&self, track: u32) -> u64 {
        self.track_seconds(track) * u64::from(self.scenario.catalog.bitrate_kbps) * 125
    }

    fn track_chunks(&self, track: u32) -> u32 {
        self.track_plain_bytes(track).div_ceil(self.chunk_plain()) as u32
    }

    /// How far playback reaches once chunks `0..=i` of `track` are held (what a manifest's
    /// `chunk_end_ms` says of a real file): each chunk's audio bytes (the first loses the
    /// stream headers) at a rate that varies by stretches of 8 chunks and a little chunk by
    /// chunk (`catalog.vbr_spread`), scaled so the whole plays for the track's duration.
    fn chunk_ends(&self, track: u32, chunks: u32) -> Vec<u32> {
        self.chunk_ends_shared(track, chunks).to_vec()
    }

    /// [`Engine::chunk_ends`], from the memo when the track's slot holds it.
    fn chunk_ends_shared(&self, track: u32, chunks: u32) -> std::sync::Arc<[u32]> {
        let slot = track as usize & (self.ends_memo_slots - 1);
        if let Some((held, ends)) = self.ends_memo.borrow().get(slot)
            && *held == track
            && ends.len() == chunks as usize
        {
            return ends.clone();
        }
        let ends: std::sync::Arc<[u32]> = self.compute_chunk_ends(track, chunks).into();
        let mut memo = self.ends_memo.borrow_mut();
        if memo.is_empty() {
            memo.resize(
                self.ends_memo_slots,
                (u32::MAX, std::sync::Arc::from(Vec::new())),
            );
        }
        memo[slot] = (track, ends.clone());
        ends
    }

    fn compute_chunk_ends(&self, track: u32, chunks: u32) -> Vec<u32> {
        let catalog = &self.scenario.catalog;
        let duration = self.track_seconds(track) * 1_000;
        let chunk = self.chunk_plain();
        let header = u64::from(catalog.header_bytes);
        let plain = self.track_plain_bytes(track);
        let spread = catalog.vbr_spread;
        // A draw of mean 0 and deviation 1.
        let normalish = |x: u64| (unit(mix(x)) - 0.5) * 12f64.sqrt();
        let salt = u64::from(track) << 32;
        let weights: Vec<f64> = (0..u64::from(chunks))
            .map(|i| {
                let start = i * chunk;
                let end = (start + chunk).min(plain);
                let audio = end.saturating_sub(start.max(header)) as f64;
                let stretch = normalish(salt ^ (i / 8) ^ 0x5654_5200_0000_0000);
                let own = normalish(salt ^ i ^ 0x4348_554e_4b00_0000);
                audio * (spread * (0.8 * stretch + 0.6 * own)).exp()
            })
            .collect();
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            // Headers as long as the track: nothing to weigh by.
            return protocol::ogg::even_ends_ms(duration, chunks as usize);
        }
        let mut reached = 0.0;
        weights
            .iter()
            .map(|weight| {
                reached += weight;
                ((duration as f64 * reached / total).round() as u64).min(duration) as u32
            })
            .collect()
    }

    fn chunk_size(&self, track: u32, index: u32) -> u32 {
        let plain = self.track_plain_bytes(track);
        let chunk = self.chunk_plain();
        let start = u64::from(index) * chunk;
        (plain.saturating_sub(start).min(chunk)) as u32 + TAG_BYTES
    }

    fn track_bytes(&self, track: u32) -> u64 {
        self.track_plain_bytes(track) + u64::from(self.track_chunks(track)) * u64::from(TAG_BYTES)
    }

    /// Bytes of chunks `first .. first + count` (those that exist): every chunk but the last
    /// is `chunk_bytes` of audio, and each carries its tag. The sum of `chunk_size` over the
    /// range, in closed form (a test compares them).
    fn range_bytes(&self, track: u32, first: u32, count: u32) -> u64 {
        let chunks = self.track_chunks(track);
        let end = first.saturating_add(count).min(chunks);
        if first >= end {
            return 0;
        }
        let (plain, chunk) = (self.track_plain_bytes(track), self.chunk_plain());
        let audio = (u64::from(end) * chunk).min(plain) - u64::from(first) * chunk;
        audio + u64::from(end - first) * u64::from(TAG_BYTES)
    }

    /// Licensed only in the first region. Track 0 (the most popular) never is.
    fn restricted(&self, track: u32) -> bool {
        track != 0
            && unit(mix(u64::from(track) ^ 0x7265_6769_6f6e))
                < self.scenario.catalog.restricted_share
    }

    fn playable(&self, track: u32, region: u8) -> bool {
        region == 0 || !self.restricted(track)
    }

    fn markets(&self, track: u32) -> Vec<Region> {
        if self.restricted(track) {
            vec![self.regions[0]]
        } else {
            Vec::new()
        }
    }

    fn popular_track(&self, rng: &mut ChaCha8Rng, region: u8) -> u32 {
        for _ in 0..16 {
            let rank = self.popularity.sample(rng);
            // Ranks are scattered over track ids, so restriction does not follow rank.
            let track =
                (mix(u64::from(rank) ^ 0x7261_6e6b) % u64::from(self.catalog_tracks)) as u32;
            let track = if rank == 0 { 0 } else { track };
            if self.playable(track, region) {
                return track;
            }
        }
        0
    }

    fn playlist_track(&self, region: u8, playlist: u32, position: u32) -> u32 {
        // A playlist's content is a pure function of its number: no table.
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.scenario.seed
            ^ (u64::from(playlist) << 20)
            ^ u64::from(position)));
        self.popular_track(&mut rng, region)
    }

    /// The next track a listener plays.
    fn choose_track(&mut self, peer: u32) -> u32 {
        let now = self.now;
        let region = self.listeners[peer as usize].region;
        for (index, release) in self.scenario.releases.iter().enumerate() {
            let at = release.at_s * 1_000;
            if now < at {
                continue;
            }
            let halvings = (now - at) as f64 / (release.half_life_s * 1_000) as f64;
            let share = release.share * 0.5f64.powf(halvings);
            if self.rng.r#gen::<f64>() < share {
                return self.release_first[index] + self.rng.gen_range(0..release.tracks);
            }
        }
        let repeat = self.rng.r#gen::<f64>() < self.scenario.sessions.repeat_share;
        let listener = &self.listeners[peer as usize];
        if repeat && !listener.cache.is_empty() {
            let at = self.rng.gen_range(0..listener.cache.len());
            return listener.cache[at];
        }
        let playlist = listener.active.as_ref().and_then(|active| active.playlist);
        if let Some((list, position)) = playlist {
            if let Some(active) = self.listeners[peer as usize].active.as_mut() {
                active.playlist = Some((list, position + 1));
            }
            let position = position % self.scenario.catalog.playlist_tracks;
            return self.playlist_track(region, list, position);
        }
        let mut rng = std::mem::replace(&mut self.rng, ChaCha8Rng::seed_from_u64(0));
        let track = self.popular_track(&mut rng, region);
        self.rng = rng;
        track
    }

    // ---- events --------------------------------------------------------------------------

    fn push_at(&mut self, at: u64, event: Ev) {
        self.queue.push(at.max(self.now), event.order_key(), event);
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) -> Result<(), SimError> {
        if ok {
            Ok(())
        } else {
            Err(SimError::Check {
                at_ms: self.now,
                what: what(),
            })
        }
    }

    /// Runs to the end, calling `progress` every few thousand events.
    pub fn run(mut self, progress: &mut dyn FnMut(Progress)) -> Result<Outcome, SimError> {
        let nodes = self.listeners.len() + self.supers.len();
        let events_max = EVENTS_PER_NODE_MAX * nodes + 1_000_000;
        loop {
            if !self.unsettled.is_empty() && self.queue.peek_time() != Some(self.now) {
                // The millisecond's events are done: the downloads they changed are divided.
                self.divide_downloads();
            }
            let Some((at, event)) = self.queue.pop() else {
                break;
            };
            if at > self.end_ms {
                break;
            }
            self.now = at;
            self.events += 1;
            self.events_by_kind[event.kind()] += 1;
            self.handle(event)?;
            if self.events.is_multiple_of(8_192) {
                let pending = self.queue.len();
                self.check(pending <= events_max, || {
                    format!("event queue holds {pending} events, over its bound {events_max}")
                })?;
                progress(Progress {
                    sim_ms: self.now,
                    total_ms: self.end_ms,
                    events: self.events,
                    plays: self.plays_started,
                });
            }
        }
        self.now = self.end_ms;
        // Plays still going count with what they had so far (as a devnet summary does).
        for peer in 0..self.listeners.len() as u32 {
            self.end_play(peer, End::RunOver)?;
        }
        // The last, partial interval (and the plays just counted) into the series.
        self.sample()?;
        progress(Progress {
            sim_ms: self.end_ms,
            total_ms: self.end_ms,
            events: self.events,
            plays: self.plays_started,
        });
        Ok(self.finish())
    }

    fn handle(&mut self, event: Ev) -> Result<(), SimError> {
        match event {
            Ev::SessionStart { peer } => self.session_start(peer),
            Ev::Grant { peer, round } => self.granted(peer, round),
            Ev::PrefetchGrant { peer, round } => self.prefetch_granted(peer, round),
            Ev::PrefetchPeers {
                peer,
                round,
                lookup,
            } => self.prefetch_peers(peer, round, lookup),
            Ev::Peers {
                peer,
                round,
                lookup,
            } => self.peers_found(peer, round, lookup),
            Ev::Failure {
                peer,
                round,
                request,
                failure,
            } => self.request_failed(peer, round, request, failure),
            Ev::Flow { flow, version, .. } => self.flow_event(flow, version),
            Ev::Tick { peer, round } => self.tick(peer, round),
            Ev::Skip { peer, round } => {
                if self.current_gen(peer) == Some(round) {
                    self.end_play(peer, End::Skipped)?;
                    self.push_at(self.now, Ev::Next { peer, round });
                }
                Ok(())
            }
            Ev::Next { peer, round } => {
                if self.current_gen(peer) == Some(round) {
                    self.next_play(peer)?;
                }
                Ok(())
            }
            Ev::Offline { peer, epoch } => {
                if self.listeners[peer as usize].epoch == epoch {
                    self.go_offline(peer, Gone::Left)?;
                }
                Ok(())
            }
            Ev::Crash { peer, epoch } => {
                if self.listeners[peer as usize].epoch == epoch {
                    self.go_offline(peer, Gone::Crashed)?;
                }
                Ok(())
            }
            Ev::Kill { peer, epoch } => {
                let listener = &self.listeners[peer as usize];
                if listener.epoch == epoch && listener.active.is_some() {
                    self.go_offline(peer, Gone::Killed)?;
                }
                Ok(())
            }
            Ev::Announce { node, epoch } => self.announce(node, epoch),
            Ev::SuperRefresh { node } => self.super_refresh(node),
            Ev::SuperFill { node } => {
                self.start_fills(node);
                Ok(())
            }
            Ev::AnnounceSoon { peer, epoch } => {
                let listener = &mut self.listeners[peer as usize];
                if listener.epoch == epoch {
                    listener.announce_due = false;
                    self.announce_listener(peer);
                }
                Ok(())
            }
            Ev::SuperAnnounce { node } => {
                let index = (node - self.listeners.len() as u32) as usize;
                self.supers[index].announce_due = false;
                self.announce_super(node)
            }
            Ev::Sample => {
                // The sample at the very end is taken after the plays still going are counted.
                if self.now >= self.end_ms {
                    return Ok(());
                }
                self.sample()?;
                self.push_at(self.now + self.scenario.output.sample_s * 1_000, Ev::Sample);
                Ok(())
            }
            Ev::Expire => {
                self.tracker.expire(UnixMillis(self.now));
                self.push_at(self.now + EXPIRE_EVERY_MS, Ev::Expire);
                Ok(())
            }
        }
    }

    fn current_gen(&self, peer: u32) -> Option<u32> {
        self.listeners[peer as usize]
            .active
            .as_ref()
            .map(|active| active.round)
    }

    fn tracker_up(&self) -> bool {
        let now_s = self.now / 1_000;
        !self
            .scenario
            .tracker
            .outages
            .iter()
            .any(|[start, end]| (*start..*end).contains(&now_s))
    }

    // ---- sessions ------------------------------------------------------------------------

    fn session_start(&mut self, peer: u32) -> Result<(), SimError> {
        let sessions = self.scenario.sessions.clone();
        let length = weibull(&mut self.rng, sessions.length_shape, sessions.length_mean_s);
        let playlist = (self.rng.r#gen::<f64>() < sessions.playlist_share).then(|| {
            let list = self.playlist_popularity.sample(&mut self.rng);
            let start = self.rng.gen_range(0..self.scenario.catalog.playlist_tracks);
            (list, start)
        });
        let crash = self.rng.r#gen::<f64>() < self.scenario.faults.crash_share;
        let crash_after = self.rng.r#gen::<f64>() * length;
        // Crashes as a rate (the devnet's `--kill-peers`): the first one of this online
        // period, drawn only when asked for (other scenarios keep their draws).
        let rate = self.scenario.faults.crash_per_min;
        let crash_in_s = (rate > 0.0).then(|| {
            let uniform: f64 = self.rng.gen_range(f64::MIN_POSITIVE..1.0);
            -uniform.ln() * 60.0 / rate
        });
        let now = self.now;
        let listener = &mut self.listeners[peer as usize];
        if listener.online || listener.active.is_some() {
            return Ok(());
        }
        listener.online = true;
        listener.epoch += 1;
        // An announce queued in the last session is void (its epoch is past).
        listener.announce_due = false;
        let epoch = listener.epoch;
        let reachable = listener.reachable;
        listener.active = Some(Box::new(Active {
            sched: Scheduler::new(self.sched_config.clone(), node_id(ORIGIN)),
            // Rounds are numbered on from the session's epoch, so an event of the last
            // session's play (a lookup's answer, a grant) never matches a play of this one.
            round: epoch.wrapping_shl(16),
            session_end_ms: now + (length * 1_000.0) as u64,
            playlist,
            next_track: None,
            play: None,
            prefetch: None,
            requests: Vec::new(),
            misses: Vec::new(),
            connected: Vec::new(),
            tick_at: u64::MAX,
            catch_up_at: u64::MAX,
        }));
        self.online += 1;
        self.listening += 1;
        if crash {
            self.push_at(
                now + (crash_after * 1_000.0) as u64,
                Ev::Crash { peer, epoch },
            );
        }
        if let Some(seconds) = crash_in_s {
            let at = now.saturating_add((seconds * 1_000.0) as u64);
            self.push_at(at, Ev::Kill { peer, epoch });
        }
        // The client announces when a track is whole and after each track; this refresh
        // keeps a listener that lingers (or plays a long track) on the tracker's lists. A
        // listener no one can dial never announces, so it has no refresh to wait for.
        if reachable {
            let every = self.scenario.client.announce_every_s * 1_000;
            self.push_at(now + every, Ev::Announce { node: peer, epoch });
        }
        self.next_play(peer)
    }

    /// Starts the next play of the session, or ends the session.
    fn next_play(&mut self, peer: u32) -> Result<(), SimError> {
        let now = self.now;
        let Some(active) = self.listeners[peer as usize].active.as_ref() else {
            return Ok(());
        };
        if now >= active.session_end_ms {
            return self.end_session(peer);
        }
        let track = match self.listeners[peer as usize]
            .active
            .as_mut()
            .and_then(|active| active.next_track.take())
        {
            Some(track) => track,
            None => self.choose_track(peer),
        };
        let skip = self.rng.r#gen::<f64>() < self.scenario.sessions.skip_chance;
        let [low, high] = self.scenario.sessions.skip_after_s;
        let skip_after_ms = u64::from(self.rng.gen_range(low..=high)) * 1_000;
        let measured = now >= self.measure_from_ms;
        let grant_ms = self.grant_delay(peer, track);
        let listener = &mut self.listeners[peer as usize];
        let from_cache = listener.cache.contains(&track);
        if from_cache {
            // Played again: most recently used now.
            listener.cache.retain(|&held| held != track);
            listener.cache.push(track);
        }
        let Some(active) = listener.active.as_mut() else {
            return Ok(());
        };
        active.round += 1;
        let round = active.round;
        let prefetched = active
            .prefetch
            .as_ref()
            .is_some_and(|prefetch| prefetch.track == track && prefetch.ready);
        if !prefetched {
            let unused = active.prefetch.take();
            self.drop_prefetch(unused);
        }
        let Some(active) = self.listeners[peer as usize].active.as_mut() else {
            return Ok(());
        };
        active.play = Some(PlayState {
            track,
            pressed_ms: now,
            granted: false,
            granted_ms: 0,
            peers_ahead: 0,
            super_ahead: 0,
            downloaded: false,
            origin_ahead: 0,
            from_cache,
            prefetched,
            first_audio_ms: None,
            first_audio_steps_ms: [0; 3],
            measured,
            held_at_grant: 0,
        });
        self.plays_started += 1;
        if skip {
            self.push_at(now + skip_after_ms, Ev::Skip { peer, round });
        }
        // A prefetched track's grant is at hand; others wait a round trip to the origin.
        let delay = if prefetched { 0 } else { grant_ms };
        self.push_at(now + delay, Ev::Grant { peer, round });
        Ok(())
    }

    /// Opening chunks a play authorization of `track` carries: what the client asks
    /// (`opening_chunks`, and more until they hold `opening_ms` of audio), within the
    /// origin's limit, as the origin's handler counts them.
    fn grant_opening(&self, track: u32) -> u32 {
        let client = &self.scenario.client;
        if client.opening_chunks == 0 {
            return 0;
        }
        let chunks = self.track_chunks(track);
        let reaching = protocol::ogg::chunks_reaching(
            &self.chunk_ends_shared(track, chunks),
            client.opening_ms,
        );
        client
            .opening_chunks
            .max(reaching)
            .min(protocol::manifest::OPENING_CHUNKS_MAX)
            .min(chunks)
    }

    /// Round trip to the origin for a play authorization (with the opening chunks unless
    /// the track is cached).
    fn grant_delay(&mut self, peer: u32, track: u32) -> u64 {
        let region = self.listeners[peer as usize].region as usize;
        let rtt = self.rtt[region][self.origin_region];
        let loss = self.loss[region][self.origin_region];
        let cached = self.listeners[peer as usize].cache.contains(&track);
        let opening = if cached {
            0.0
        } else {
            self.range_bytes(track, 0, self.grant_opening(track)) as f64
        };
        let down = self.down_rate(peer);
        let retransmit = if self.rng.r#gen::<f64>() < 2.0 * loss {
            2.0 * rtt + 25.0
        } else {
            0.0
        };
        (rtt + self.scenario.network.origin_service_ms as f64 + opening / down + retransmit).ceil()
            as u64
    }

    fn granted(&mut self, peer: u32, round: u32) -> Result<(), SimError> {
        if self.current_gen(peer) != Some(round) {
            return Ok(());
        }
        let now = self.now;
        let (track, from_cache, prefetched_chunks, prefetch_source) = {
            let active = self.listeners[peer as usize]
                .active
                .as_ref()
                .expect("checked");
            // A skip at 0 s (`skip_after_s = [0, 0]`) can end the play before its grant.
            let Some(play) = active.play.as_ref() else {
                return Ok(());
            };
            let prefetched = active
                .prefetch
                .as_ref()
                .filter(|prefetch| play.prefetched && prefetch.track == play.track)
                .map_or(0, |prefetch| prefetch.chunks);
            let source = active.prefetch.as_ref().map_or(ORIGIN, |p| p.source);
            (play.track, play.from_cache, prefetched, source)
        };
        let chunks = self.track_chunks(track);
        let chunk_bytes: Vec<u32> = (0..chunks).map(|i| self.chunk_size(track, i)).collect();
        let opening = self.grant_opening(track);
        let ahead_chunks = if from_cache {
            chunks
        } else {
            prefetched_chunks.max(opening).min(chunks)
        };
        let cached: Vec<bool> = (0..chunks).map(|i| i < ahead_chunks).collect();
        let ahead = if from_cache {
            0
        } else {
            self.range_bytes(track, 0, ahead_chunks)
        };
        // Who sent the chunks at hand: the prefetch's source (already counted as its
        // transfer), else the origin with the grant (counted here).
        let ahead_kind = if prefetched_chunks == 0 || prefetch_source == ORIGIN {
            SourceKind::Origin
        } else if prefetch_source < self.listeners.len() as u32 {
            SourceKind::Peer
        } else {
            SourceKind::SuperNode
        };
        let origin_ahead = if ahead_kind == SourceKind::Origin {
            ahead
        } else {
            0
        };
        let peers_ahead = if ahead_kind == SourceKind::Peer {
            ahead
        } else {
            0
        };
        let super_ahead = if ahead_kind == SourceKind::SuperNode {
            ahead
        } else {
            0
        };
        let granted_egress = if prefetched_chunks == 0 {
            origin_ahead
        } else {
            0
        };
        let plan = TrackPlan {
            chunks,
            chunk_bytes,
            duration_ms: self.track_seconds(track) * 1_000,
            chunk_end_ms: self.chunk_ends(track, chunks),
            cached,
            start_ms: 0,
        };
        // The opening came with the grant, from the origin.
        self.egress(granted_egress);
        let active = self.listeners[peer as usize]
            .active
            .as_mut()
            .expect("checked");
        if let Some(play) = active.play.as_mut() {
            play.granted = true;
            play.granted_ms = now;
            play.origin_ahead = origin_ahead;
            play.peers_ahead = peers_ahead;
            play.super_ahead = super_ahead;
            play.held_at_grant = ahead_chunks;
        }
        active.prefetch = None;
        // A scheduler per track, as `client_lib::player::play` makes one per grant.
        active.sched = Scheduler::new(self.sched_config.clone(), node_id(ORIGIN));
        let actions = active.sched.play(now, plan);
        self.after(peer, actions)
    }

    fn end_session(&mut self, peer: u32) -> Result<(), SimError> {
        let now = self.now;
        let linger = self.scenario.sessions.linger_s * 1_000;
        self.catch_up_listener(peer);
        let listener = &mut self.listeners[peer as usize];
        let epoch = listener.epoch;
        if let Some(mut active) = listener.active.take() {
            let _ = active.sched.stop();
            let flows: Vec<u32> = active.requests.iter().map(|(_, flow)| *flow).collect();
            let prefetch = active.prefetch.take();
            for flow in flows {
                self.remove_flow(flow);
            }
            self.drop_prefetch(prefetch);
            self.listening -= 1;
        }
        self.push_at(now + linger, Ev::Offline { peer, epoch });
        Ok(())
    }

    /// Tears down `peer`'s session (a crash ends its play first); false when it was not
    /// online.
    fn leave(&mut self, peer: u32, crashed: bool) -> Result<bool, SimError> {
        if crashed && self.listeners[peer as usize].active.is_some() {
            self.end_play(peer, End::Crashed)?;
        }
        self.catch_up_listener(peer);
        let listener = &mut self.listeners[peer as usize];
        if !listener.online {
            return Ok(false);
        }
        listener.online = false;
        listener.epoch += 1;
        listener.announce_due = false;
        if let Some(mut active) = listener.active.take() {
            let _ = active.sched.stop();
            let flows: Vec<u32> = active.requests.iter().map(|(_, flow)| *flow).collect();
            let prefetch = active.prefetch.take();
            for flow in flows {
                self.remove_flow(flow);
            }
            self.drop_prefetch(prefetch);
            self.listening -= 1;
        }
        Ok(true)
    }

    fn go_offline(&mut self, peer: u32, how: Gone) -> Result<(), SimError> {
        let crashed = how != Gone::Left;
        // A crashed listener's counters die with it, as in the devnet: what it had under
        // way is not counted as waste (its downloaders' losses are, below).
        self.waste_counted = !crashed;
        let result = self.leave(peer, crashed);
        self.waste_counted = true;
        if !result? {
            return Ok(());
        }
        self.online -= 1;
        // Its uploads break: each downloader learns it when the connection drops.
        let uploads = self.listeners[peer as usize].net.ups.clone();
        for flow in uploads {
            self.break_flow(flow, Failure::Unreachable);
        }
        if how == Gone::Killed {
            // Back a few seconds later with its cache, as the devnet's killed listeners are.
            let [low, high] = self.scenario.faults.crash_down_s;
            let down = self.rng.gen_range(low..=high) * 1_000;
            self.push_at(self.now + down, Ev::SessionStart { peer });
            return Ok(());
        }
        let mut rng = std::mem::replace(&mut self.rng, ChaCha8Rng::seed_from_u64(0));
        let cycle = self.cycle_ms();
        let sessions = &self.scenario.sessions;
        let online_ms = sessions.length_mean_s * 1_000.0 + (sessions.linger_s * 1_000) as f64;
        let gap_mean = (cycle - online_ms).max(600_000.0);
        let gap = weibull(&mut rng, sessions.gap_shape, gap_mean) as u64;
        let at = self.thin(&mut rng, peer, self.now + gap.max(1_000));
        self.rng = rng;
        self.push_at(at, Ev::SessionStart { peer });
        Ok(())
    }

    // ---- the scheduler's driver ------------------------------------------------------------

    /// Carries out `actions` of `peer`'s scheduler, handles its player events, and sets its
    /// next timer.
    fn after(&mut self, peer: u32, actions: Vec<Action>) -> Result<(), SimError> {
        let mut pending = actions;
        loop {
            for action in std::mem::take(&mut pending) {
                self.carry_out(peer, action)?;
            }
            let Some(active) = self.listeners[peer as usize].active.as_mut() else {
                return Ok(());
            };
            let events = active.sched.take_events();
            let mut finished = false;
            let mut announce = false;
            for event in events {
                match event {
                    PlayerEvent::Started { .. } => {
                        // From its first audio a listener downloading the track is a partial
                        // holder, and says so, as the client does.
                        if let Some(play) = active.play.as_ref()
                            && play.granted
                            && !play.from_cache
                            && !active.sched.all_held()
                        {
                            announce = true;
                        }
                        if let Some(play) = active.play.as_mut()
                            && play.first_audio_ms.is_none()
                        {
                            // The modelled steps: the grant's round trip (none for a
                            // prefetched track, whose grant is at hand), the first chunk
                            // (held with the grant, or fetched by the scheduler), the
                            // decoder's start.
                            let grant = play.granted_ms.saturating_sub(play.pressed_ms);
                            let first_chunk = self.now.saturating_sub(play.granted_ms);
                            let decoder = self.scenario.client.decoder_ms;
                            play.first_audio_steps_ms = [grant, first_chunk, decoder];
                            play.first_audio_ms = Some(grant + first_chunk + decoder);
                        }
                    }
                    PlayerEvent::Finished => finished = true,
                    PlayerEvent::Stalled { .. } | PlayerEvent::Resumed { .. } => {}
                }
            }
            if finished {
                let round = active.round;
                self.end_play(peer, End::Finished)?;
                self.announce_soon(peer);
                self.push_at(self.now, Ev::Next { peer, round });
                return Ok(());
            }
            // Whole: into the cache and announced at once, as the client does on
            // `Output::Downloaded`, so peers may fetch it before it has played out.
            let downloaded = active.play.as_mut().and_then(|play| {
                (play.granted && !play.from_cache && !play.downloaded && active.sched.all_held())
                    .then(|| {
                        play.downloaded = true;
                        play.track
                    })
            });
            let requests = active.requests.len();
            self.check(requests <= REQUESTS_PER_PLAY_MAX, || {
                format!("listener {peer} has {requests} requests out, over {REQUESTS_PER_PLAY_MAX}")
            })?;
            if let Some(track) = downloaded {
                self.cache_insert(peer, track);
                self.announce_soon(peer);
            } else if announce && self.scenario.client.partial_holders {
                self.announce_soon(peer);
            }
            if pending.is_empty() {
                break;
            }
        }
        self.schedule_tick(peer);
        Ok(())
    }

    /// Arms `peer`'s timer for its scheduler's [`Scheduler::poll_timeout`]: the driver
    /// wakes when the policy says, as the client's playback loop does.
    fn schedule_tick(&mut self, peer: u32) {
        let now = self.now;
        let Some(active) = self.listeners[peer as usize].active.as_mut() else {
            return;
        };
        let Some(play) = active.play.as_ref() else {
            return;
        };
        if !play.granted {
            return;
        }
        let Some(at) = active.sched.poll_timeout(now) else {
            return;
        };
        // Called after the scheduler was polled at `now`: nothing more is due at `now`.
        let at = at.max(now + 1);
        if active.tick_at <= now || at < active.tick_at {
            // The later wake is taken back: it would come only to be ignored.
            self.cancel_tick(peer);
            let Some(active) = self.listeners[peer as usize].active.as_mut() else {
                return;
            };
            active.tick_at = at;
            let round = active.round;
            self.push_at(at, Ev::Tick { peer, round });
        }
    }

    /// Takes back `peer`'s queued wake, if the queue holds it, and clears `tick_at`.
    fn cancel_tick(&mut self, peer: u32) {
        let now = self.now;
        let Some(active) = self.listeners[peer as usize].active.as_mut() else {
            return;
        };
        let (at, round) = (active.tick_at, active.round);
        active.tick_at = u64::MAX;
        if at != u64::MAX && at > now {
            self.queue.cancel(at, |event| {
                matches!(event, Ev::Tick { peer: p, round: r } if *p == peer && *r == round)
            });
        }
    }

    fn tick(&mut self, peer: u32, round: u32) -> Result<(), SimError> {
        if self.current_gen(peer) != Some(round) {
            return Ok(());
        }
        let now = self.now;
        let Some(active) = self.listeners[peer as usize].active.as_mut() else {
            return Ok(());
        };
        if active.tick_at != now {
            return Ok(());
        }
        active.tick_at = u64::MAX;
        self.catch_up_listener(peer);
        let Some(active) = self.listeners[peer as usize].active.as_mut() else {
            return Ok(());
        };
        let actions = active.sched.poll(now);
        self.after(peer, actions)
    }

    fn carry_out(&mut self, peer: u32, action: Action) -> Result<(), SimError> {
        match action {
            Action::Fetch {
                id,
                source,
                first,
                count,
                priority,
            } => self.fetch(peer, id, source, first, count, priority),
            Action::Cancel { id } => {
                let active = self.listeners[peer as usize]
                    .active
                    .as_mut()
                    .expect("active");
                active.misses.retain(|(req, ..)| *req != id);
                if let Some(at) = active.requests.iter().position(|(req, _)| *req == id) {
                    let (_, flow) = active.requests.swap_remove(at);
                    self.remove_flow(flow);
                }
                Ok(())
            }
            Action::FindPeers => {
                let region = self.listeners[peer as usize].region as usize;
                let round = self.current_gen(peer).unwrap_or(0);
                let track = self.current_track(peer);
                if let (true, Some(track)) = (self.tracker_up(), track) {
                    // The tracker takes the lookup now and its answer arrives a round trip
                    // (and the tracker's service time) later; the tracker's thread works on
                    // it meanwhile.
                    let rtt = self.rtt[region][self.tracker_region];
                    let at = self.now
                        + (rtt + self.scenario.network.tracker_service_ms as f64).ceil() as u64;
                    let want = self.scenario.tracker.peers_returned as u16;
                    let ticket = self.send_lookup(peer, track, want);
                    self.push_at(
                        at,
                        Ev::Peers {
                            peer,
                            round,
                            lookup: Some(ticket),
                        },
                    );
                } else {
                    let at = self.now + self.scenario.client.lookup_timeout_ms;
                    self.push_at(
                        at,
                        Ev::Peers {
                            peer,
                            round,
                            lookup: None,
                        },
                    );
                }
                Ok(())
            }
            Action::Report { .. } | Action::Delivered { .. } => {
                let (bad, reason) = match action {
                    Action::Report { peer: bad, failure } => {
                        self.checks.reports += 1;
                        let reason = match failure {
                            Failure::BadChunk => ReportReason::BadChunk,
                            Failure::Missing => ReportReason::Missing,
                            Failure::Unreachable | Failure::Refused => ReportReason::Unreachable,
                        };
                        (bad, reason)
                    }
                    Action::Delivered { peer: served, kbps } => {
                        (served, ReportReason::Delivered { kbps })
                    }
                    _ => return Ok(()),
                };
                let track = self.current_track(peer);
                if let (Some(track), true) = (track, self.tracker_up()) {
                    let claims = self.play_claims(peer, track);
                    let report = PeerReport {
                        peer: bad,
                        rendition: rendition_id(track),
                        reason,
                        license: self.token.clone(),
                    };
                    self.tracker
                        .report(UnixMillis(self.now), node_id(peer), claims, report);
                }
                Ok(())
            }
            Action::PrefetchNext => self.start_prefetch(peer),
        }
    }

    fn current_track(&self, peer: u32) -> Option<u32> {
        self.listeners[peer as usize]
            .active
            .as_ref()
            .and_then(|active| active.play.as_ref())
            .map(|play| play.track)
    }

    fn play_claims(&self, peer: u32, track: u32) -> LicenseClaims {
        let region = self.regions[self.listeners[peer as usize].region as usize];
        let mut account = [0u8; 16];
        account[..4].copy_from_slice(&peer.to_le_bytes());
        LicenseClaims {
            version: LICENSE_VERSION,
            issuer: node_id(ORIGIN),
            account: AccountId(account),
            node: node_id(peer),
            region,
            scope: LicenseScope::Play {
                renditions: vec![rendition_id(track)],
            },
            markets: self.markets(track),
            issued_at: UnixMillis(self.now),
            expires_at: UnixMillis(self.now + 3_600_000),
            offline: false,
        }
    }

    /// Sends listener `peer`'s lookup of `track`'s holders (at most `want`) to the tracker,
    /// which takes it now; its answer is taken by the ticket when it arrives.
    fn send_lookup(&mut self, peer: u32, track: u32, want: u16) -> Ticket {
        let query = PeerQuery {
            rendition: rendition_id(track),
            want,
            license: self.token.clone(),
        };
        let claims = self.play_claims(peer, track);
        self.tracker
            .query_send(UnixMillis(self.now), node_id(peer), claims, query)
    }

    /// A lookup's answer reaches listener `peer`: `None` when its play `round` is over (the
    /// answer is taken all the same, so none waits for ever); else the list, if there is one.
    /// An answer is lost when the tracker went down while it was on its way.
    fn lookup_arrived(
        &mut self,
        peer: u32,
        round: u32,
        lookup: Option<Ticket>,
    ) -> Option<Option<PeerList>> {
        let answer = lookup.map(|ticket| self.tracker.query_take(ticket));
        if self.current_gen(peer) != Some(round) {
            return None;
        }
        let up = self.tracker_up();
        Some(answer.and_then(Result::ok).filter(|_| up))
    }

    fn peers_found(
        &mut self,
        peer: u32,
        round: u32,
        lookup: Option<Ticket>,
    ) -> Result<(), SimError> {
        let Some(answer) = self.lookup_arrived(peer, round, lookup) else {
            return Ok(());
        };
        let Some(track) = self.current_track(peer) else {
            return Ok(());
        };
        let mut found: Vec<(NodeId, SourceKind, Option<Holding>)> = Vec::new();
        if let Some(list) = answer {
            let claims = self.play_claims(peer, track);
            self.checks.peer_lists += 1;
            for info in &list.peers {
                let node = node_of(&info.node);
                let region = node.and_then(|node| self.region_of(node));
                let allowed = region
                    .is_some_and(|region| claims.market_includes(&self.regions[region as usize]));
                self.check(node.is_some() && node != Some(peer) && allowed, || {
                    format!(
                        "the tracker listed {} for track {track} (markets {:?}) to listener {peer}",
                        info.node, claims.markets
                    )
                })?;
                let kind = match info.role {
                    NodeRole::SuperNode => SourceKind::SuperNode,
                    _ => SourceKind::Peer,
                };
                found.push((info.node, kind, info.holding));
            }
        }
        self.catch_up_listener(peer);
        let active = self.listeners[peer as usize]
            .active
            .as_mut()
            .expect("checked");
        let actions = active.sched.add_holders(self.now, &found);
        self.after(peer, actions)
    }

    fn region_of(&self, node: u32) -> Option<u8> {
        if node == ORIGIN {
            return Some(self.origin_region as u8);
        }
        let peers = self.listeners.len() as u32;
        if node < peers {
            Some(self.listeners[node as usize].region)
        } else {
            self.supers
                .get((node - peers) as usize)
                .map(|node| node.region)
        }
    }

    fn request_failed(
        &mut self,
        peer: u32,
        round: u32,
        request: u64,
        failure: u8,
    ) -> Result<(), SimError> {
        if self.current_gen(peer) != Some(round) {
            return Ok(());
        }
        let failure = match failure {
            0 => Failure::Unreachable,
            1 => Failure::Missing,
            2 => Failure::BadChunk,
            _ => Failure::Refused,
        };
        let id = RequestId(request);
        self.catch_up_listener(peer);
        let active = self.listeners[peer as usize]
            .active
            .as_mut()
            .expect("checked");
        if let Some(at) = active.requests.iter().position(|(req, _)| *req == id) {
            let (_, flow) = active.requests.swap_remove(at);
            self.remove_flow(flow);
        }
        let active = self.listeners[peer as usize]
            .active
            .as_mut()
            .expect("checked");
        let actions = match active.misses.iter().position(|(req, ..)| *req == id) {
            Some(at) if failure == Failure::Missing => {
                let (_, index, held) = active.misses.swap_remove(at);
                active.sched.on_missing(self.now, id, index, held)
            }
            _ => {
                active.misses.retain(|(req, ..)| *req != id);
                active.sched.on_failure(self.now, id, failure)
            }
        };
        self.after(peer, actions)
    }

    fn fail_later(&mut self, peer: u32, id: RequestId, failure: Failure, after_ms: f64) {
        match failure {
            Failure::Unreachable => self.checks.failed_unreachable += 1,
            Failure::Missing => self.checks.failed_missing += 1,
            Failure::BadChunk => {}
            Failure::Refused => self.checks.failed_busy += 1,
        }
        self.push_failure(peer, id, failure, after_ms);
    }

    /// Tells `peer`'s scheduler of `failure` of `id` after `after_ms`, uncounted.
    fn push_failure(&mut self, peer: u32, id: RequestId, failure: Failure, after_ms: f64) {
        let round = self.current_gen(peer).unwrap_or(0);
        let code = match failure {
            Failure::Unreachable => 0,
            Failure::Missing => 1,
            Failure::BadChunk => 2,
            Failure::Refused => 3,
        };
        self.push_at(
            self.now + after_ms.ceil() as u64,
            Ev::Failure {
                peer,
                round,
                request: id.0,
                failure: code,
            },
        );
    }

    fn fetch(
        &mut self,
        peer: u32,
        id: RequestId,
        source: NodeId,
        first: u32,
        count: u32,
        priority: Priority,
    ) -> Result<(), SimError> {
        let Some(track) = self.current_track(peer) else {
            return Ok(());
        };
        let round = self.current_gen(peer).unwrap_or(0);
        let region = self.listeners[peer as usize].region as usize;
        let Some(src) = node_of(&source) else {
            self.fail_later(peer, id, Failure::Unreachable, 1.0);
            return Ok(());
        };
        let src_region = self.region_of(src).unwrap_or(0) as usize;
        let rtt = self.rtt[region][src_region];
        let kind = FlowKind::Play {
            round,
            request: id.0,
            priority,
        };
        if src == ORIGIN {
            let flow = self.start_flow(ORIGIN, peer, kind, track, first, count, rtt, false);
            self.listeners[peer as usize]
                .active
                .as_mut()
                .expect("active")
                .requests
                .push((id, flow));
            return Ok(());
        }
        let active = self.listeners[peer as usize]
            .active
            .as_mut()
            .expect("active");
        let connected = active.connected.contains(&src);
        if !connected && active.connected.len() < CONNECTIONS_MAX {
            active.connected.push(src);
        }
        // A new connection costs a handshake round trip first.
        let first_byte = if connected { rtt } else { 2.0 * rtt };
        let peers = self.listeners.len() as u32;
        let timeout = self.scenario.network.connect_timeout_ms as f64;
        let asker_region = self.regions[region];
        self.catch_up_listener(src);
        let (online, held, busy, corrupt) = if src < peers {
            let other = &self.listeners[src as usize];
            (
                other.online && other.reachable,
                self.held_prefix(src, track),
                !self.admits(src, peer, priority),
                other.corrupt,
            )
        } else {
            let busy = !self.admits(src, peer, priority);
            let node = &mut self.supers[(src - peers) as usize];
            let rendition = rendition_id(track);
            let holds = node.cache.contains(&rendition);
            if holds {
                node.cache.touch(&rendition, self.now);
            } else {
                self.super_miss(src, track);
            }
            let held = if holds { u32::MAX } else { 0 };
            (true, held, busy, false)
        };
        if !online {
            self.fail_later(peer, id, Failure::Unreachable, timeout);
            return Ok(());
        }
        // The serving peer checks the asker's license against the track's markets.
        let markets = self.markets(track);
        if !(markets.is_empty() || markets.contains(&asker_region)) {
            self.checks.serve_refusals += 1;
            self.check(false, || {
                format!("listener {peer} asked {src} for track {track}, outside its markets")
            })?;
        }
        if busy {
            self.fail_later(peer, id, Failure::Refused, first_byte);
            return Ok(());
        }
        // A holder sends the chunks of the range it holds, then says which it lacks and how
        // many it holds from the first (`ChunkMissing`, as `transport::chunks` serves): the
        // scheduler corrects a partial holder's figures, and takes a whole holder's miss as
        // a failure. The prefix is the one at the request (the holder's download goes on
        // meanwhile, so it may in truth send a little more).
        let sent = held.saturating_sub(first).min(count);
        if src < peers && held < self.track_chunks(track) && held > 0 {
            if sent > 0 {
                self.checks.partial_served += 1;
            }
            if sent < count {
                self.checks.partial_misses += 1;
            }
        }
        if sent < count {
            let active = self.listeners[peer as usize]
                .active
                .as_mut()
                .expect("active");
            active
                .misses
                .push((id, first + sent, held.min(first + sent)));
        }
        if sent == 0 {
            if held > 0 {
                // A partial holder's "not yet": no failure, not counted as one.
                self.push_failure(peer, id, Failure::Missing, first_byte);
            } else {
                self.fail_later(peer, id, Failure::Missing, first_byte);
            }
            return Ok(());
        }
        let flow = self.start_flow(src, peer, kind, track, first, sent, first_byte, corrupt);
        self.listeners[peer as usize]
            .active
            .as_mut()
            .expect("active")
            .requests
            .push((id, flow));
        Ok(())
    }

    /// The time of `flow`'s next chunk counts for [`Engine::catch_up_listener`] of `peer`,
    /// its destination, whenever it changes. (A new transfer has none until it is rated, when
    /// the millisecond's events are done, [`Engine::divide_downloads`]: by then it is listed
    /// among its play's requests.)
    fn watch_transfer(&mut self, peer: u32, flow: u32) {
        let next_at = self.flows[flow as usize].next_at;
        if let Some(active) = self
            .listeners
            .get_mut(peer as usize)
            .and_then(|listener| listener.active.as_mut())
        {
            active.catch_up_at = active.catch_up_at.min(next_at);
        }
    }

    fn start_prefetch(&mut self, peer: u32) -> Result<(), SimError> {
        let track = self.choose_track(peer);
        let Some(active) = self.listeners[peer as usize].active.as_mut() else {
            return Ok(());
        };
        active.next_track = Some(track);
        let round = active.round;
        if active.prefetch.is_some() {
            return Ok(());
        }
        let chunks_total = self.track_chunks(track);
        let duration = self.track_seconds(track) * 1_000;
        let chunks = policy::prefetch::chunks_wanted(
            chunks_total,
            duration,
            self.scenario.client.prefetch_ms,
        );
        let cached = self.listeners[peer as usize].cache.contains(&track);
        let active = self.listeners[peer as usize]
            .active
            .as_mut()
            .expect("active");
        active.prefetch = Some(Prefetch {
            track,
            source: ORIGIN,
            ready: false,
            chunks: if cached { 0 } else { chunks },
            bytes: 0,
            flow: None,
        });
        let delay = self.grant_delay(peer, track);
        self.push_at(self.now + delay, Ev::PrefetchGrant { peer, round });
        Ok(())
    }

    fn prefetch_granted(&mut self, peer: u32, round: u32) -> Result<(), SimError> {
        if self.current_gen(peer) != Some(round) {
            return Ok(());
        }
        let region = self.listeners[peer as usize].region as usize;
        let rtt = self.rtt[region][self.origin_region];
        let active = self.listeners[peer as usize]
            .active
            .as_mut()
            .expect("checked");
        let Some(prefetch) = active.prefetch.as_mut() else {
            return Ok(());
        };
        if prefetch.chunks == 0 {
            prefetch.ready = true;
            return Ok(());
        }
        let track = prefetch.track;
        // What `client_lib::listener` does (DESIGN §6, peers first): the holders the tracker
        // lists with the whole opening, for at most `PEERS_WAIT_MS`, then the origin. The
        // what-if `prefetch_from_peers = false` goes to the origin at once.
        if !self.scenario.client.prefetch_from_peers {
            return self.start_prefetch_flow(peer, round, ORIGIN, rtt);
        }
        // The lookup first: the tracker takes it now and its answer arrives a round trip
        // later; while the tracker is down, the lookup times out.
        if self.tracker_up() {
            let lookup = self.rtt[region][self.tracker_region]
                + self.scenario.network.tracker_service_ms as f64;
            let ticket = self.send_lookup(peer, track, 10);
            let event = Ev::PrefetchPeers {
                peer,
                round,
                lookup: Some(ticket),
            };
            self.push_at(self.now + lookup.ceil() as u64, event);
        } else {
            let event = Ev::PrefetchPeers {
                peer,
                round,
                lookup: None,
            };
            self.push_at(self.now + self.scenario.client.lookup_timeout_ms, event);
        }
        Ok(())
    }

    /// The tracker's answer to a prefetch's lookup arrived (`None`: the lookup timed out): the
    /// listed holders of the whole opening are tried for what is left of `PEERS_WAIT_MS`,
    /// then the origin.
    fn prefetch_peers(
        &mut self,
        peer: u32,
        round: u32,
        lookup: Option<Ticket>,
    ) -> Result<(), SimError> {
        let Some(answer) = self.lookup_arrived(peer, round, lookup) else {
            return Ok(());
        };
        let Some((track, chunks)) = self.listeners[peer as usize]
            .active
            .as_ref()
            .and_then(|active| active.prefetch.as_ref())
            .map(|prefetch| (prefetch.track, prefetch.chunks))
        else {
            return Ok(());
        };
        let region = self.listeners[peer as usize].region as usize;
        let rtt = self.rtt[region][self.origin_region];
        let lookup = if lookup.is_some() {
            self.rtt[region][self.tracker_region] + self.scenario.network.tracker_service_ms as f64
        } else {
            self.scenario.client.lookup_timeout_ms as f64
        };
        let listed = answer.map(|list| list.peers).unwrap_or_default();
        let me = node_id(peer);
        let candidates: Vec<NodeId> = policy::prefetch::holders(&listed, &me, chunks)
            .map(|holder| holder.node)
            .collect();
        let wait = policy::prefetch::PEERS_WAIT_MS as f64 - lookup;
        let (source, first_byte) = match self.try_holders(
            peer,
            track,
            chunks,
            &candidates,
            wait.max(0.0),
            Priority::Prefetch,
        ) {
            Ok((holder, first_byte)) => (holder, first_byte),
            Err(spent) => (ORIGIN, spent + rtt),
        };
        self.start_prefetch_flow(peer, round, source, first_byte)
    }

    /// The prefetch's transfer from `source`, its first byte `first_byte` ms from now.
    fn start_prefetch_flow(
        &mut self,
        peer: u32,
        round: u32,
        source: u32,
        first_byte: f64,
    ) -> Result<(), SimError> {
        let Some((track, chunks)) = self.listeners[peer as usize]
            .active
            .as_ref()
            .and_then(|active| active.prefetch.as_ref())
            .map(|prefetch| (prefetch.track, prefetch.chunks))
        else {
            return Ok(());
        };
        let flow = self.start_flow(
            source,
            peer,
            FlowKind::Prefetch { round },
            track,
            0,
            chunks,
            first_byte,
            false,
        );
        if let Some(prefetch) = self.listeners[peer as usize]
            .active
            .as_mut()
            .and_then(|active| active.prefetch.as_mut())
        {
            prefetch.source = source;
        }
        let active = self.listeners[peer as usize]
            .active
            .as_mut()
            .expect("checked");
        if let Some(prefetch) = active.prefetch.as_mut() {
            prefetch.flow = Some(flow);
        }
        Ok(())
    }

    fn end_play(&mut self, peer: u32, how: End) -> Result<(), SimError> {
        let now = self.now;
        self.catch_up_listener(peer);
        let Some(active) = self.listeners[peer as usize].active.as_mut() else {
            return Ok(());
        };
        let Some(play) = active.play.take() else {
            return Ok(());
        };
        let all_held = active.sched.all_held();
        let position = if play.granted {
            active.sched.position_ms(now)
        } else {
            0
        };
        let stats: PlayStats = if play.granted {
            active.sched.stats()
        } else {
            PlayStats::default()
        };
        let _ = active.sched.take_events();
        let _ = active.sched.stop();
        let flows: Vec<u32> = active.requests.drain(..).map(|(_, flow)| flow).collect();
        active.misses.clear();
        self.cancel_tick(peer);
        for flow in flows {
            self.remove_flow(flow);
        }
        if all_held && play.granted && !play.from_cache && !play.downloaded {
            self.cache_insert(peer, play.track);
        }
        if how == End::RunOver && play.first_audio_ms.is_none() {
            return Ok(());
        }
        if !play.measured || how == End::Crashed {
            if how == End::Crashed && play.measured {
                self.totals.crashed_plays += 1;
            }
            return Ok(());
        }
        let duration = self.track_seconds(play.track) * 1_000;
        // Cache bytes count what was played from the cache, not the whole cached track.
        let played = if how == End::Finished {
            1.0
        } else {
            (position as f64 / duration.max(1) as f64).clamp(0.0, 1.0)
        };
        let cache_bytes = if play.from_cache {
            (self.track_bytes(play.track) as f64 * played) as u64
        } else {
            stats
                .bytes_cache
                .saturating_sub(play.origin_ahead + play.peers_ahead + play.super_ahead)
        };
        let origin = stats.bytes_origin + play.origin_ahead;
        let record = PlayRecord {
            peer,
            track: play.track,
            pressed_ms: play.pressed_ms,
            first_audio_ms: play.first_audio_ms,
            stutters: stats.stutters,
            stalled_ms: stats.stalled_ms,
            bytes_origin: origin,
            bytes_super_nodes: stats.bytes_super_nodes + play.super_ahead,
            bytes_peers: stats.bytes_peers + play.peers_ahead,
            bytes_cache: cache_bytes,
            bytes_duplicate: stats.bytes_duplicate,
            skipped: how == End::Skipped,
            from_cache: play.from_cache,
            prefetched: play.prefetched,
        };
        for totals in [&mut self.totals, &mut self.interval] {
            totals.add(&record);
        }
        if let Some(ms) = record.first_audio_ms {
            self.start_histogram[(ms as usize).min(START_HISTOGRAM_MS)] += 1;
            for (histogram, ms) in self
                .steps_histograms
                .iter_mut()
                .zip(play.first_audio_steps_ms)
            {
                histogram[(ms as usize).min(START_HISTOGRAM_MS)] += 1;
            }
        }
        if (self.plays.len() as u64) < self.scenario.output.play_records_max {
            self.plays.push(record);
        }
        Ok(())
    }

    // ---- caches and announces ------------------------------------------------------------

    fn cache_insert(&mut self, peer: u32, track: u32) {
        let mut listener = std::mem::replace(
            &mut self.listeners[peer as usize],
            Listener {
                region: 0,
                class: 0,
                reachable: false,
                corrupt: false,
                online: false,
                epoch: 0,
                cache: Vec::new(),
                cache_bytes: 0,
                net: Attach::default(),
                active: None,
                announced_ms: None,
                announce_due: false,
                announced_set: None,
            },
        );
        self.cache_insert_into(&mut listener, track);
        self.listeners[peer as usize] = listener;
    }

    fn cache_insert_into(&self, listener: &mut Listener, track: u32) {
        let budget = self.scenario.classes[listener.class as usize].cache_mib << 20;
        let bytes = self.track_bytes(track);
        if bytes > budget {
            return;
        }
        if let Some(at) = listener.cache.iter().position(|&held| held == track) {
            listener.cache.remove(at);
            listener.cache.push(track);
            return;
        }
        while listener.cache_bytes + bytes > budget && !listener.cache.is_empty() {
            let evicted = listener.cache.remove(0);
            listener.cache_bytes -= self.track_bytes(evicted);
        }
        listener.cache.push(track);
        listener.cache_bytes += bytes;
    }

    fn announce(&mut self, node: u32, epoch: u32) -> Result<(), SimError> {
        let peers = self.listeners.len() as u32;
        let every = self.scenario.client.announce_every_s * 1_000;
        if node < peers {
            let listener = &self.listeners[node as usize];
            if listener.epoch != epoch || !listener.online {
                return Ok(());
            }
            self.push_at(self.now + every, Ev::Announce { node, epoch });
            self.announce_soon(node);
        } else {
            self.push_at(self.now + every, Ev::Announce { node, epoch });
            let index = (node - peers) as usize;
            // One announce at a time, the gap apart, as `node::supernode`'s announce loop.
            if let Some(last) = self.supers[index].announced_ms
                && self.now < last + policy::announce::GAP_MS
            {
                if !self.supers[index].announce_due {
                    self.supers[index].announce_due = true;
                    self.push_at(last + policy::announce::GAP_MS, Ev::SuperAnnounce { node });
                }
                return Ok(());
            }
            return self.announce_super(node);
        }
        Ok(())
    }

    /// Announces what super-node `node` holds, as `node::supernode` does.
    fn announce_super(&mut self, node: u32) -> Result<(), SimError> {
        if !self.tracker_up() {
            return Ok(());
        }
        let now = UnixMillis(self.now);
        let index = (node - self.listeners.len() as u32) as usize;
        let mut held = self.supers[index].cache.held();
        held.truncate(protocol::wire::ANNOUNCE_RENDITIONS_MAX);
        let announce = Announce {
            partial: Vec::new(),
            region: self.regions[self.supers[index].region as usize],
            role: NodeRole::SuperNode,
            addrs: vec![std::net::SocketAddr::from(([10, 0, 0, 2], 4433))],
            renditions: held,
            upload_spare_kbps: (self.scenario.super_nodes.up_mbps * 1_000.0) as u32,
            credential: self.token.clone(),
            proofs: Vec::new(),
        };
        let claims = self.super_claims(node);
        self.tracker
            .announce(now, node_id(node), claims, Vec::new(), announce);
        self.supers[index].announced_ms = Some(self.now);
        Ok(())
    }

    /// Announces for listener `node` now, or the announce gap after its last announce (as
    /// the client's announces go out one at a time, `policy::announce::GAP_MS` apart).
    fn announce_soon(&mut self, node: u32) {
        let now = self.now;
        let listener = &mut self.listeners[node as usize];
        if !listener.reachable {
            // It would not announce ([`Engine::announce_listener`]): no wake for it.
            return;
        }
        let next = listener
            .announced_ms
            .map_or(now, |last| last + policy::announce::GAP_MS);
        if next <= now {
            self.announce_listener(node);
        } else if !listener.announce_due {
            listener.announce_due = true;
            let epoch = listener.epoch;
            self.push_at(next, Ev::AnnounceSoon { peer: node, epoch });
        }
    }

    /// Announces what listener `node` holds in full (its most recently played first), and
    /// the track it is downloading as a partial holder; or, when that set is the one it last
    /// announced in full, refreshes it (as `client-lib` does, unless `client.refresh` is off).
    fn announce_listener(&mut self, node: u32) {
        let now = UnixMillis(self.now);
        self.catch_up_listener(node);
        let listener = &self.listeners[node as usize];
        if !listener.reachable || !listener.online || !self.tracker_up() {
            return;
        }
        let max = self.scenario.client.announce_max as usize;
        let class = &self.scenario.classes[listener.class as usize];
        let free = class.upload_slots.saturating_sub(listener.net.uploads()) as f64
            / class.upload_slots.max(1) as f64;
        let holdings = Holdings {
            tracks: listener.cache.iter().rev().take(max).copied().collect(),
            partial: self.partial_holding(node),
            region: self.regions[listener.region as usize],
            spare_kbps: (class.up_mbps * 1_000.0 * free) as u32,
            credential: self.token.clone(),
            claims: self.play_claims(node, 0),
        };
        let key = holdings.key();
        let listener = &mut self.listeners[node as usize];
        listener.announced_ms = Some(self.now);
        let refresh = listener.announced_set == Some(key) && self.scenario.client.refresh;
        if !refresh {
            listener.announced_set = Some(key);
        }
        self.tracker
            .announce_built(now, node_id(node), Box::new(holdings), refresh);
    }

    fn super_claims(&self, node: u32) -> LicenseClaims {
        let index = (node - self.listeners.len() as u32) as usize;
        LicenseClaims {
            version: LICENSE_VERSION,
            issuer: node_id(ORIGIN),
            account: AccountId([0xee; 16]),
            node: node_id(node),
            region: self.regions[self.supers[index].region as usize],
            scope: LicenseScope::SuperNode,
            markets: Vec::new(),
            issued_at: UnixMillis(self.now),
            expires_at: UnixMillis(self.now + 3_600_000),
            offline: false,
        }
    }

    fn super_refresh(&mut self, node: u32) -> Result<(), SimError> {
        let index = (node - self.listeners.len() as u32) as usize;
        let now = self.now;
        let list = if self.tracker_up() {
            let claims = self.super_claims(node);
            let want = self.scenario.super_nodes.popular_want as usize;
            self.tracker
                .popular(UnixMillis(now), node_id(node), &claims, want)
                .ok()
        } else {
            None
        };
        match list {
            Some(list) => {
                // The whole list, as `node::supernode` takes it: what its region may not
                // stream, the origin refuses when the fill starts.
                let ids: Vec<RenditionId> = list
                    .renditions
                    .iter()
                    .map(|entry| entry.rendition)
                    .collect();
                let node_state = &mut self.supers[index];
                let missing = node_state.cache.set_popular(&ids, now);
                node_state.fills.popular(&missing, now);
            }
            None => self.supers[index].fills.round_failed(now),
        }
        let next = self.supers[index].fills.next_round_ms();
        self.push_at(next, Ev::SuperRefresh { node });
        self.start_fills(node);
        Ok(())
    }

    /// A request reached super-node `node` for `track`, which it does not hold: its fill
    /// policy counts the miss, and a pull-through fill starts at once when it is due.
    fn super_miss(&mut self, node: u32, track: u32) {
        let index = (node - self.listeners.len() as u32) as usize;
        if self.supers[index].fills.miss(rendition_id(track), self.now) {
            self.push_at(self.now, Ev::SuperFill { node });
        }
    }

    /// The holders of `track` the tracker lists to `node` (with `claims`), best first; none
    /// while the tracker is down or refuses. Asked and answered at once (a super-node's fill
    /// lookup; a listener's lookups are sent and taken a round trip apart).
    fn listed(&mut self, node: u32, track: u32, claims: &LicenseClaims) -> Vec<PeerInfo> {
        if !self.tracker_up() {
            return Vec::new();
        }
        let query = PeerQuery {
            rendition: rendition_id(track),
            want: 10,
            license: self.token.clone(),
        };
        let mut list = PeerList {
            rendition: query.rendition,
            peers: Vec::new(),
        };
        match self.tracker.query_into(
            UnixMillis(self.now),
            node_id(node),
            claims,
            query,
            &mut list,
        ) {
            Ok(()) => list.peers,
            Err(_) => Vec::new(),
        }
    }

    /// Where a fetch of `track`'s first `chunks` chunks by `node` ends up when it tries
    /// `candidates` in order, as `client_lib::fetch` does, each until one delivers: a holder
    /// that is down costs the connect timeout; one that lacks the chunks, has no upload slot
    /// free or sends a corrupt chunk costs a handshake and a round trip. The driver knows
    /// nothing the real one would not: it learns each of these by trying. `Ok`: the holder
    /// and the time to its first byte, the failed tries included; `Err`: the time the tries
    /// took when none delivered, cut at `wait_ms` (the prefetch's wait for peers). Simpler
    /// than the client in two ways: the wait covers the time to the first byte, where the
    /// client's covers the whole transfer, and a corrupt holder is found out at its first
    /// byte, where the client needs a whole chunk.
    fn try_holders(
        &mut self,
        node: u32,
        track: u32,
        chunks: u32,
        candidates: &[NodeId],
        wait_ms: f64,
        priority: Priority,
    ) -> Result<(u32, f64), f64> {
        let region = self.region_of(node).unwrap_or(0) as usize;
        let peers = self.listeners.len() as u32;
        let timeout = self.scenario.network.connect_timeout_ms as f64;
        let mut spent = 0.0;
        for candidate in candidates {
            if spent >= wait_ms {
                return Err(wait_ms);
            }
            let Some(source) = node_of(candidate).filter(|&source| source != node) else {
                continue;
            };
            let source_region = self.region_of(source).unwrap_or(0) as usize;
            let handshake = 2.0 * self.rtt[region][source_region];
            self.catch_up_listener(source);
            let (up, holds, free, corrupt) = if source < peers {
                let other = &self.listeners[source as usize];
                (
                    other.online && other.reachable,
                    self.held_prefix(source, track) >= chunks,
                    self.admits(source, node, priority),
                    other.corrupt,
                )
            } else {
                let holds = self.supers[(source - peers) as usize]
                    .cache
                    .contains(&rendition_id(track));
                // A listener's request for what a super-node lacks is a miss; another
                // super-node's fill is refused before the store is asked (production's
                // region check needs the rendition held), so it is not.
                if !holds && node < peers {
                    self.super_miss(source, track);
                }
                (true, holds, self.admits(source, node, priority), false)
            };
            if !up {
                spent += timeout;
            } else if !holds || !free || corrupt {
                spent += handshake;
            } else if spent + handshake <= wait_ms {
                return Ok((source, spent + handshake));
            } else {
                spent += handshake;
            }
        }
        Err(spent.min(wait_ms))
    }

    /// Chunks of `track` listener `source` holds from the first: all of a track in its cache;
    /// of the track it is downloading, what its scheduler holds; none otherwise. The client's
    /// cache also keeps, and announces, the prefixes of skipped tracks and prefetched
    /// openings (up to 8): the simulator's cache holds whole tracks, so it has fewer partial
    /// holders than the client.
    fn held_prefix(&self, source: u32, track: u32) -> u32 {
        let listener = &self.listeners[source as usize];
        if listener.cache.contains(&track) {
            return self.track_chunks(track);
        }
        match listener.active.as_ref() {
            Some(active)
                if active.play.as_ref().is_some_and(|play| {
                    play.track == track && play.granted && !play.from_cache
                }) =>
            {
                active.sched.held_prefix()
            }
            _ => 0,
        }
    }

    /// The track `listener` is downloading and announces as a partial holder, with what it
    /// holds and the growth it claims: none when it shares whole tracks only, or plays from
    /// its cache, or holds the whole track.
    fn partial_holding(&self, listener: u32) -> Option<(u32, Holding)> {
        if !self.scenario.client.partial_holders {
            return None;
        }
        let active = self.listeners[listener as usize].active.as_ref()?;
        let play = active.play.as_ref()?;
        if !play.granted || play.from_cache || play.downloaded {
            return None;
        }
        let chunks = self.track_chunks(play.track);
        let held = active.sched.held_prefix();
        if held >= chunks {
            return None;
        }
        let play_per_min =
            policy::announce::play_per_min(chunks, self.track_seconds(play.track) * 1_000);
        let per_min = policy::announce::claimed_per_min(
            play.held_at_grant,
            held,
            self.now.saturating_sub(play.granted_ms),
            play_per_min,
        );
        Some((play.track, Holding { held, per_min }))
    }

    /// Starts every fill super-node `node`'s policy allows now.
    fn start_fills(&mut self, node: u32) {
        let index = (node - self.listeners.len() as u32) as usize;
        let now = self.now;
        loop {
            let SuperNode { fills, cache, .. } = &mut self.supers[index];
            let Some(fill) = fills.next(cache, now) else {
                break;
            };
            let track = track_of(&fill.rendition);
            let region = self.supers[index].region;
            // The origin refuses the manifest of a track the node's region may not stream.
            let refused = !self.playable(track, region);
            // `node::supernode`'s fetch stops at `bytes_max` once the manifest tells the size.
            let too_large = self.track_bytes(track) > fill.bytes_max;
            if refused || too_large {
                let outcome = if refused {
                    fill::Outcome::Failed
                } else {
                    fill::Outcome::TooLarge
                };
                self.supers[index].fills.done(&fill.rendition, outcome, now);
                self.checks.super_fills_failed += 1;
                continue;
            }
            self.launch_fill(node, track);
        }
    }

    /// Fetches `track` into super-node `node`: as `node::supernode` fills, from every whole
    /// holder the tracker lists, in its order, then the origin.
    fn launch_fill(&mut self, node: u32, track: u32) {
        let index = (node - self.listeners.len() as u32) as usize;
        let region = self.supers[index].region as usize;
        let rtt = self.rtt[region][self.origin_region];
        let chunks = self.track_chunks(track);
        let claims = self.super_claims(node);
        let listed: Vec<NodeId> = self
            .listed(node, track, &claims)
            .into_iter()
            .filter(|peer| peer.holding.is_none())
            .map(|peer| peer.node)
            .collect();
        let (source, first_byte) = self
            .try_holders(
                node,
                track,
                chunks,
                &listed,
                f64::INFINITY,
                Priority::OfflineSync,
            )
            .unwrap_or_else(|spent| (ORIGIN, spent + rtt));
        self.start_flow(
            source,
            node,
            FlowKind::Fill { track },
            track,
            0,
            chunks,
            first_byte,
            false,
        );
    }

    // ---- flows ---------------------------------------------------------------------------

    fn up_rate(&self, node: u32) -> f64 {
        let peers = self.listeners.len() as u32;
        if node == ORIGIN {
            self.scenario.network.origin_mbps * 125.0 / f64::from(self.origin_uploads.max(1))
        } else if node < peers {
            let listener = &self.listeners[node as usize];
            self.scenario.classes[listener.class as usize].up_mbps * 125.0
                / f64::from(listener.net.uploads().max(1))
        } else {
            let node = &self.supers[(node - peers) as usize];
            self.scenario.super_nodes.up_mbps * 125.0 / f64::from(node.net.uploads().max(1))
        }
    }

    fn down_rate(&self, node: u32) -> f64 {
        let peers = self.listeners.len() as u32;
        if node < peers {
            let listener = &self.listeners[node as usize];
            self.scenario.classes[listener.class as usize].down_mbps * 125.0
                / f64::from(listener.net.downloads().max(1))
        } else {
            let node = &self.supers[(node - peers) as usize];
            self.scenario.super_nodes.down_mbps * 125.0 / f64::from(node.net.downloads().max(1))
        }
    }

    /// Upload slots of a serving node (the origin's are not counted).
    fn upload_slots(&self, node: u32) -> usize {
        let peers = self.listeners.len() as u32;
        if node == ORIGIN {
            usize::MAX
        } else if node < peers {
            let class = self.listeners[node as usize].class as usize;
            self.scenario.classes[class].upload_slots as usize
        } else {
            self.scenario.super_nodes.upload_slots as usize
        }
    }

    /// Whether `src` would admit a transfer of `priority` to `dst` now
    /// ([`Admission::check`]; the origin admits everything).
    fn admits(&self, src: u32, dst: u32, priority: Priority) -> bool {
        let Some(net) = self.attach_ref(src) else {
            return true;
        };
        // A class with no upload slots shares nothing (`Admission` keeps at least one).
        if self.upload_slots(src) == 0 {
            return false;
        }
        match &net.admission {
            Some(admission) => admission.check(&dst, priority).is_ok(),
            None => Admission::<u32>::new(self.upload_slots(src))
                .check(&dst, priority)
                .is_ok(),
        }
    }

    fn attach(&mut self, node: u32) -> Option<&mut Attach> {
        let peers = self.listeners.len() as u32;
        if node == ORIGIN {
            None
        } else if node < peers {
            Some(&mut self.listeners[node as usize].net)
        } else {
            Some(&mut self.supers[(node - peers) as usize].net)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_flow(
        &mut self,
        src: u32,
        dst: u32,
        kind: FlowKind,
        track: u32,
        first: u32,
        count: u32,
        first_byte_ms: f64,
        corrupt: bool,
    ) -> u32 {
        let src_region = self.region_of(src).unwrap_or(0) as usize;
        let dst_region = self.region_of(dst).unwrap_or(0) as usize;
        let rtt = self.rtt[src_region][dst_region];
        let loss = self.loss[src_region][dst_region];
        let loss_cap = if loss > 0.0 {
            1.22 * MSS_BYTES / (rtt * loss.sqrt())
        } else {
            f64::INFINITY
        };
        let retransmit = if self.rng.r#gen::<f64>() < 2.0 * loss {
            2.0 * rtt + 25.0
        } else {
            0.0
        };
        let flow = Flow {
            src,
            dst,
            kind,
            first,
            count,
            bytes_total: self.range_bytes(track, first, count) as f64,
            done: 0.0,
            rate: 0.0,
            at_ms: self.now + (first_byte_ms + retransmit).ceil() as u64,
            loss_cap,
            limit: loss_cap,
            delivered: 0,
            until: count,
            track,
            version: 0,
            scheduled_at: 0,
            queued: false,
            next_at: u64::MAX,
            corrupt,
            live: true,
            admitted: false,
        };
        let id = match self.free_flows.pop() {
            Some(id) => {
                self.flows[id as usize] = flow;
                id
            }
            None => {
                self.flows.push(flow);
                (self.flows.len() - 1) as u32
            }
        };
        if src == ORIGIN {
            self.origin_uploads += 1;
        }
        let slots = self.upload_slots(src);
        if let Some(net) = self.attach(src) {
            net.ups.push(id);
            // A serving node admits the transfer as `transport::upload::UploadGate` does;
            // its driver asked `admits` first.
            let admitted = net
                .admission
                .get_or_insert_with(|| Box::new(Admission::new(slots)))
                .admit(dst, kind.priority());
            self.flows[id as usize].admitted = admitted.is_ok();
        }
        if let Some(net) = self.attach(dst) {
            net.downs.push(id);
        }
        self.rerate_around(src, dst);
        id
    }

    /// Brings the transfer's progress to now (where its rate is about to change, or it is
    /// dropped): first the chunks that landed on the way are handed over.
    fn settle(&mut self, id: u32) {
        let flow = &self.flows[id as usize];
        if let FlowKind::Play { .. } = flow.kind {
            self.catch_up_listener(flow.dst);
        }
        let now = self.now;
        let flow = &mut self.flows[id as usize];
        if now > flow.at_ms {
            flow.done += flow.rate * (now - flow.at_ms) as f64;
            flow.at_ms = now;
        }
    }

    /// When the first `n` chunks of the transfer's range are in at its current rate: the
    /// first whole millisecond its bytes reach theirs. Computed from the point its rate last
    /// changed, never from a later one, so it is the same however often it is asked.
    fn arrival(&self, flow: &Flow, n: u32) -> u64 {
        // Every chunk before a range's last is a whole one (only a track's last chunk is
        // short): `range_bytes` without its look-ups.
        let bytes = if n >= flow.count {
            flow.bytes_total
        } else {
            (u64::from(n) * (self.chunk_plain() + u64::from(TAG_BYTES))) as f64
        };
        let remaining = (bytes - flow.done).max(0.0);
        flow.at_ms
            .saturating_add((remaining / flow.rate).ceil() as u64)
    }

    /// Hands `peer`'s scheduler the chunks of its play's transfers that have landed by now,
    /// in the order they landed (ties in the order of the play's requests), each at its own
    /// time, as their own events would have: all but each transfer's last, and none of a
    /// corrupt source's (the first one's event fails it). State only: the next event decides.
    /// Every event that asks the scheduler anything, or reads what `peer` holds, or changes a
    /// transfer's rate, calls this first, so the scheduler never sees a moment with a landed
    /// chunk missing. (A transfer's last chunk is never pending here: a transfer's end comes
    /// before its destination's other events of the millisecond, [`Ev::order_key`].)
    fn catch_up_listener(&mut self, peer: u32) {
        let now = self.now;
        let Some(active) = self
            .listeners
            .get(peer as usize)
            .and_then(|listener| listener.active.as_ref())
        else {
            return;
        };
        if active.catch_up_at > now || active.requests.is_empty() {
            return;
        }
        let round = active.round;
        let mut ids = std::mem::take(&mut self.scratch_flows);
        ids.clear();
        ids.extend(active.requests.iter().map(|(_, flow)| *flow).filter(|&id| {
            let flow = &self.flows[id as usize];
            flow.live
                && !flow.corrupt
                && matches!(flow.kind, FlowKind::Play { round: r, .. } if r == round)
        }));
        loop {
            let mut next: Option<(u64, u32)> = None;
            for &id in &ids {
                let at = self.flows[id as usize].next_at;
                if at <= now && next.is_none_or(|(first, _)| at < first) {
                    next = Some((at, id));
                }
            }
            let Some((at, id)) = next else {
                break;
            };
            let flow = &mut self.flows[id as usize];
            let index = flow.first + flow.delivered;
            flow.delivered += 1;
            let FlowKind::Play { request, .. } = flow.kind else {
                break;
            };
            self.flows[id as usize].next_at = self.next_arrival(&self.flows[id as usize]);
            if let Some(active) = self.listeners[peer as usize].active.as_mut() {
                active.sched.arrived(at, RequestId(request), index);
            }
            self.checks.chunks_delivered += 1;
        }
        let due = ids
            .iter()
            .map(|&id| self.flows[id as usize].next_at)
            .min()
            .unwrap_or(u64::MAX);
        if let Some(active) = self.listeners[peer as usize].active.as_mut() {
            active.catch_up_at = due;
        }
        self.scratch_flows = ids;
    }

    /// When the next chunk [`Engine::catch_up_listener`] would hand over lands: `u64::MAX`
    /// for a transfer that has none (not a play's, a corrupt source's, not yet rated, or only
    /// its last chunk to come).
    fn next_arrival(&self, flow: &Flow) -> u64 {
        let eligible = matches!(flow.kind, FlowKind::Play { .. })
            && flow.live
            && !flow.corrupt
            && flow.rate > 0.0
            && flow.delivered + 1 < flow.count;
        if eligible {
            self.arrival(flow, flow.delivered + 1)
        } else {
            u64::MAX
        }
    }

    /// Chunks of the transfer that must be in by its next event. Every chunk with
    /// `network.delivery = "chunks"`; otherwise the first chunk whose arrival can change a
    /// decision, else the end of the range. A chunk not yet held can, when the play head may
    /// be waiting for it as it lands (the head moves no faster than real time, so it cannot be
    /// before [`Scheduler::earliest_reach_ms`]), or when it is the last not held (the track
    /// may then be whole). Any other chunk only updates the scheduler's estimates and its
    /// stall clock, which [`Engine::catch_up_listener`] sets as chunk-by-chunk delivery would,
    /// and the decision round its own event gives it in `"chunks"` does only what the
    /// node's next event would do at the same point of the millisecond (a node's events of
    /// a millisecond come together, [`Ev::order_key`]); a
    /// test runs both models and compares every play. A chunk landing in the same
    /// millisecond as the range's last is left to the end's event ([`Engine::reschedule`]).
    fn next_until(&self, id: u32) -> u32 {
        let flow = &self.flows[id as usize];
        let FlowKind::Play { round, .. } = flow.kind else {
            return flow.count;
        };
        if flow.corrupt || self.chunk_events {
            return (flow.delivered + 1).min(flow.count);
        }
        let Some(active) = self.listeners[flow.dst as usize]
            .active
            .as_ref()
            .filter(|active| active.round == round)
        else {
            return flow.count;
        };
        let sched = &active.sched;
        let last = flow.count.saturating_sub(1);
        if flow.delivered >= last {
            return flow.count;
        }
        // When the range ends with chunks held already (sent twice), the last one it still
        // brings may complete the track.
        let last_unheld = if sched.holds(flow.first + last) {
            (flow.delivered..last)
                .rev()
                .find(|&k| !sched.holds(flow.first + k))
        } else {
            None
        };
        // The usual case, in two look-ups: the head cannot reach even the first chunk to
        // come before the whole range is in (later chunks play later, and are in by then).
        if last_unheld.is_none()
            && sched.earliest_reach_ms(flow.first + flow.delivered) > self.arrival(flow, flow.count)
        {
            return flow.count;
        }
        (flow.delivered..last)
            .find(|&k| {
                !sched.holds(flow.first + k)
                    && (Some(k) == last_unheld
                        || sched.earliest_reach_ms(flow.first + k) <= self.arrival(flow, k + 1))
            })
            .map_or(flow.count, |k| k + 1)
    }

    /// Moves the flow's event to the moment its next chunks ([`Engine::next_until`]) are in
    /// at its current rate. The event queued before is taken back (one beyond the wheel's
    /// reach stays and is ignored for its old version), so a flow whose rate keeps changing
    /// has one event, at the right time, rather than a trail of early and stale ones.
    fn reschedule(&mut self, id: u32) {
        if self.flows[id as usize].rate == 0.0 {
            // Not rated yet: the millisecond's division rates it and queues its event.
            return;
        }
        // Its rate or progress point may have changed: so may its next chunk's time.
        self.flows[id as usize].next_at = self.next_arrival(&self.flows[id as usize]);
        self.watch_transfer(self.flows[id as usize].dst, id);
        let flow = &self.flows[id as usize];
        if flow.queued && flow.delivered >= flow.until {
            // The chunk its event waits for was handed over early (a rate change at the
            // moment it landed): the event still comes, now, for the decision it is owed.
            return;
        }
        let was_end = flow.until == flow.count;
        let mut until = self.next_until(id);
        if until < flow.count && self.arrival(flow, until) == self.arrival(flow, flow.count) {
            // In with the last chunk, in the same millisecond: the end's event is theirs
            // (one transfer, one event at a millisecond, in either delivery).
            until = flow.count;
        }
        self.flows[id as usize].until = until;
        let flow = &self.flows[id as usize];
        let at = self.arrival(flow, until).max(self.now);
        if flow.queued {
            // Kept only if it is the same event: an end is ordered apart from a chunk.
            if flow.scheduled_at == at && was_end == (until == flow.count) {
                return;
            }
            self.cancel_flow_event(id);
        }
        let flow = &mut self.flows[id as usize];
        flow.version = flow.version.wrapping_add(1);
        flow.scheduled_at = at;
        flow.queued = true;
        let version = flow.version;
        let (end, dst) = (flow.until == flow.count, flow.dst);
        self.push_at(
            at,
            Ev::Flow {
                flow: id,
                version,
                dst,
                end,
            },
        );
    }

    /// Takes the flow's queued event back, if the queue still holds it.
    fn cancel_flow_event(&mut self, id: u32) {
        let flow = &self.flows[id as usize];
        if !flow.queued {
            return;
        }
        let (at, version) = (flow.scheduled_at, flow.version);
        self.queue.cancel(
            at,
            |event| matches!(event, Ev::Flow { flow, version: v, .. } if *flow == id && *v == version),
        );
        self.flows[id as usize].queued = false;
    }

    fn attach_ref(&self, node: u32) -> Option<&Attach> {
        let peers = self.listeners.len() as u32;
        if node == ORIGIN {
            None
        } else if node < peers {
            Some(&self.listeners[node as usize].net)
        } else {
            Some(&self.supers[(node - peers) as usize].net)
        }
    }

    /// Download capacity of a node, bytes per ms.
    fn down_capacity(&self, node: u32) -> f64 {
        let peers = self.listeners.len() as u32;
        if node < peers {
            let listener = &self.listeners[node as usize];
            self.scenario.classes[listener.class as usize].down_mbps * 125.0
        } else {
            self.scenario.super_nodes.down_mbps * 125.0
        }
    }

    /// Re-rates around a transfer that started or ended between `src` and `dst`: the
    /// source's upload share changed, so every destination it sends to divides its download
    /// again, and so does `dst`, when the millisecond's events are done
    /// ([`Engine::divide_downloads`]).
    fn rerate_around(&mut self, src: u32, dst: u32) {
        self.unsettle(dst);
        if src == ORIGIN {
            return;
        }
        // Its upload share changed: so did what each of its transfers may take.
        let share = self.up_rate(src);
        let ups = self
            .attach(src)
            .map(|net| std::mem::take(&mut net.ups))
            .unwrap_or_default();
        for &id in &ups {
            let flow = &mut self.flows[id as usize];
            flow.limit = share.min(flow.loss_cap);
            let dst = flow.dst;
            self.unsettle(dst);
        }
        if let Some(net) = self.attach(src) {
            net.ups = ups;
        }
    }

    /// Lists `node` for [`Engine::divide_downloads`], once.
    fn unsettle(&mut self, node: u32) {
        if let Some(net) = self.attach(node)
            && !net.unsettled
        {
            net.unsettled = true;
            self.unsettled.push(node);
        }
    }

    /// Divides the download of every node whose transfers' shares changed this millisecond
    /// ([`Engine::refill`]), once each, after the millisecond's events. Nothing moves in
    /// between (time does not pass within a millisecond), so a transfer that ends and one
    /// that starts to the same node in its place change the other transfers' rates once,
    /// or not at all, rather than up and back down.
    fn divide_downloads(&mut self) {
        // A division starts and ends no transfer, so nothing is listed meanwhile; were
        // anything listed, it would be divided too, by index, before the list is cleared.
        let mut index = 0;
        while let Some(&node) = self.unsettled.get(index) {
            if let Some(net) = self.attach(node) {
                net.unsettled = false;
            }
            self.refill(node);
            index += 1;
        }
        self.unsettled.clear();
    }

    /// Divides `node`'s download among its transfers max-min fairly: a transfer held back
    /// by its source (or its path's loss) gets what it can take, the rest share the
    /// remainder equally.
    fn refill(&mut self, node: u32) {
        let mut limits = std::mem::take(&mut self.scratch_limits);
        limits.clear();
        let Some(net) = self.attach_ref(node) else {
            self.scratch_limits = limits;
            return;
        };
        let origin = self.up_rate(ORIGIN);
        limits.extend(net.downs.iter().map(|&id| {
            let flow = &self.flows[id as usize];
            // The origin's share is read as it stands: its transfers are not re-rated when
            // its upload count changes.
            let limit = if flow.src == ORIGIN {
                origin.min(flow.loss_cap)
            } else {
                flow.limit
            };
            (limit, id)
        }));
        limits.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut remaining = self.down_capacity(node);
        let count = limits.len();
        for (index, &(limit, id)) in limits.iter().enumerate() {
            let fair = remaining / (count - index) as f64;
            let rate = limit.min(fair).max(1e-6);
            remaining = (remaining - rate).max(0.0);
            // A change within rounding is none: the transfer keeps its rate and the point its
            // progress is counted from, so its chunks' times do not move by a rounding.
            let flow = &self.flows[id as usize];
            let changed = (rate - flow.rate).abs() > flow.rate * 1e-9;
            if changed {
                self.settle(id);
                self.flows[id as usize].rate = rate;
            }
            if changed || !self.flows[id as usize].queued {
                self.reschedule(id);
            }
        }
        self.scratch_limits = limits;
    }

    fn detach(&mut self, id: u32) {
        if !self.flows[id as usize].live {
            return;
        }
        self.cancel_flow_event(id);
        let (src, dst) = {
            let flow = &mut self.flows[id as usize];
            flow.live = false;
            flow.version = flow.version.wrapping_add(1);
            (flow.src, flow.dst)
        };
        if src == ORIGIN {
            self.origin_uploads -= 1;
        }
        let admitted = std::mem::take(&mut self.flows[id as usize].admitted);
        if let Some(net) = self.attach(src) {
            net.ups.retain(|&flow| flow != id);
            if admitted && let Some(admission) = net.admission.as_mut() {
                admission.release(&dst);
                if admission.slots_free() == admission.slots_total() {
                    net.admission = None;
                }
            }
        }
        if let Some(net) = self.attach(dst) {
            net.downs.retain(|&flow| flow != id);
        }
        self.free_flows.push(id);
        self.rerate_around(src, dst);
    }

    /// Drops a transfer nobody wants any more.
    fn remove_flow(&mut self, id: u32) {
        self.settle(id);
        let flow = &self.flows[id as usize];
        if !flow.live {
            return;
        }
        let (src, kind, done) = (flow.src, flow.kind, flow.done as u64);
        let (track, first, delivered) = (flow.track, flow.first, flow.delivered);
        if src == ORIGIN {
            self.egress(done);
        }
        // What the downloader received and throws away: the bytes of a play's range that
        // had arrived and not been handed over. Chunks are handed over as they land, so that
        // is the chunk under way (the client, which hands a range over when it completes,
        // counts the whole chunks it holds back). A prefetch cut short is not counted, as the
        // client cannot count its own.
        if let FlowKind::Play { .. } = kind {
            let handed = self.range_bytes(track, first, delivered);
            self.waste(Waste::Cancelled, done.saturating_sub(handed));
        }
        self.detach(id);
    }

    /// A prefetch that will not be played: cut short if under way; wasted if it was ready.
    fn drop_prefetch(&mut self, prefetch: Option<Prefetch>) {
        match prefetch {
            Some(Prefetch {
                flow: Some(flow), ..
            }) => self.remove_flow(flow),
            Some(Prefetch {
                ready: true, bytes, ..
            }) => self.waste(Waste::Prefetch, bytes),
            _ => {}
        }
    }

    /// Origin egress, counted from `measure_from_s` on (the series counts all of it).
    fn egress(&mut self, bytes: u64) {
        if self.now >= self.measure_from_ms {
            self.totals.origin_egress += bytes;
        }
        self.interval.origin_egress += bytes;
    }

    /// Bytes a listener received for nothing, counted from `measure_from_s` on.
    fn waste(&mut self, kind: Waste, bytes: u64) {
        if bytes == 0 || self.now < self.measure_from_ms || !self.waste_counted {
            return;
        }
        match kind {
            Waste::Prefetch => self.totals.wasted_prefetch += bytes,
            Waste::Cancelled => self.totals.wasted_cancelled += bytes,
        }
    }

    /// A transfer whose source vanished: the downloader hears of it a one-way delay later.
    fn break_flow(&mut self, id: u32, failure: Failure) {
        let flow = self.flows[id as usize].clone();
        self.remove_flow(id);
        // The request no longer has a transfer (its id may be reused at once).
        if let Some(active) = self
            .listeners
            .get_mut(flow.dst as usize)
            .and_then(|listener| listener.active.as_mut())
        {
            active.requests.retain(|(_, transfer)| *transfer != id);
        }
        let region = self.region_of(flow.dst).unwrap_or(0) as usize;
        let src_region = self.region_of(flow.src).unwrap_or(0) as usize;
        let one_way = self.rtt[region][src_region] / 2.0;
        match flow.kind {
            FlowKind::Play { round, request, .. } if self.current_gen(flow.dst) == Some(round) => {
                self.fail_later(flow.dst, RequestId(request), failure, one_way);
            }
            FlowKind::Prefetch { round } if self.current_gen(flow.dst) == Some(round) => {
                // The prefetch's peer is gone: what it asked for comes from the origin, as
                // the client's does when its peers fail.
                let ours = self.listeners[flow.dst as usize]
                    .active
                    .as_ref()
                    .and_then(|active| active.prefetch.as_ref())
                    .is_some_and(|prefetch| prefetch.flow == Some(id));
                if ours {
                    let rtt = self.rtt[region][self.origin_region];
                    let again = self.start_flow(
                        ORIGIN,
                        flow.dst,
                        flow.kind,
                        flow.track,
                        flow.first,
                        flow.count,
                        one_way + rtt,
                        false,
                    );
                    if let Some(prefetch) = self.listeners[flow.dst as usize]
                        .active
                        .as_mut()
                        .and_then(|active| active.prefetch.as_mut())
                    {
                        prefetch.flow = Some(again);
                        prefetch.source = ORIGIN;
                    }
                }
            }
            FlowKind::Fill { track } => {
                // The fill's source is gone: the same fill goes on from the next source
                // (other holders, then the origin), as `fetch_rendition` does.
                self.launch_fill(flow.dst, track);
            }
            _ => {}
        }
    }

    fn flow_event(&mut self, id: u32, version: u32) -> Result<(), SimError> {
        let flow = &self.flows[id as usize];
        if !flow.live || flow.version != version {
            return Ok(());
        }
        self.flows[id as usize].queued = false;
        let flow = &self.flows[id as usize];
        // Not there yet (the rate fell since this event was queued): wait for it.
        if flow.delivered < flow.until && self.arrival(flow, flow.until) > self.now {
            self.reschedule(id);
            return Ok(());
        }
        if flow.until < flow.count {
            // A chunk whose arrival may change a decision: it and everything else landed by
            // now are handed over, then the scheduler decides.
            let (peer, corrupt) = (flow.dst, flow.corrupt);
            if corrupt {
                let flow = flow.clone();
                return self.deliver(&flow, false);
            }
            self.catch_up_listener(peer);
            if let Some(active) = self.listeners[peer as usize].active.as_mut() {
                let actions = active.sched.poll(self.now);
                self.after(peer, actions)?;
            }
            if self.flows[id as usize].live && !self.flows[id as usize].queued {
                self.reschedule(id);
            }
            return Ok(());
        }
        if let FlowKind::Play { .. } = self.flows[id as usize].kind {
            self.catch_up_listener(self.flows[id as usize].dst);
        }
        let flow = self.flows[id as usize].clone();
        // Complete.
        if flow.src == ORIGIN {
            self.egress(flow.bytes_total as u64);
            self.flows[id as usize].done = 0.0;
        }
        self.detach(id);
        match flow.kind {
            FlowKind::Play { .. } => self.deliver(&flow, true),
            FlowKind::Prefetch { round } => {
                if self.current_gen(flow.dst) == Some(round)
                    && let Some(prefetch) = self.listeners[flow.dst as usize]
                        .active
                        .as_mut()
                        .and_then(|active| active.prefetch.as_mut())
                {
                    prefetch.ready = true;
                    prefetch.flow = None;
                    prefetch.bytes = flow.bytes_total as u64;
                }
                Ok(())
            }
            FlowKind::Fill { track } => {
                let index = (flow.dst - self.listeners.len() as u32) as usize;
                let now = self.now;
                let rendition = rendition_id(track);
                let node = &mut self.supers[index];
                let pin = node
                    .fills
                    .running_fill(&rendition)
                    .is_none_or(|fill| fill.pin);
                let admitted = node
                    .cache
                    .admit(rendition, flow.bytes_total as u64, pin, now)
                    .is_ok();
                let outcome = if admitted {
                    fill::Outcome::Filled
                } else {
                    fill::Outcome::Failed
                };
                let fill = node.fills.done(&rendition, outcome, now);
                match (admitted, fill.is_some_and(|fill| fill.pin)) {
                    (true, true) => self.checks.super_fills += 1,
                    (true, false) => self.checks.super_pull_throughs += 1,
                    (false, _) => self.checks.super_fills_failed += 1,
                }
                let node = &mut self.supers[index];
                let (used, capacity) = (node.cache.used_bytes(), node.cache.capacity_bytes());
                // Announced as soon as it lands, after the gap that gathers fills landing
                // together, as `node::supernode` does.
                if !node.announce_due {
                    node.announce_due = true;
                    self.push_at(
                        now + policy::announce::GAP_MS,
                        Ev::SuperAnnounce { node: flow.dst },
                    );
                }
                self.check(used <= capacity, || {
                    format!("super-node {index} cache holds {used} bytes, over {capacity}")
                })?;
                self.start_fills(flow.dst);
                Ok(())
            }
        }
    }

    /// A chunk of a play transfer whose arrival may change a decision: the first of a
    /// corrupt source's, which fails verification, or the transfer's last (`last`), which
    /// ends it. Then the scheduler decides.
    fn deliver(&mut self, flow: &Flow, last: bool) -> Result<(), SimError> {
        let FlowKind::Play { round, request, .. } = flow.kind else {
            return Ok(());
        };
        let peer = flow.dst;
        if self.current_gen(peer) != Some(round) {
            return Ok(());
        }
        let id = RequestId(request);
        let track = self.current_track(peer).unwrap_or(u32::MAX);
        self.catch_up_listener(peer);
        // Verification: each chunk's hash against the manifest. A corrupt peer's chunks fail;
        // the request fails with BadChunk and nothing reaches the player.
        if flow.corrupt {
            self.checks.bad_chunks_caught += 1;
            let Some(active) = self.listeners[peer as usize].active.as_mut() else {
                return Ok(());
            };
            if let Some(at) = active.requests.iter().position(|(req, _)| *req == id) {
                let (_, flow_id) = active.requests.swap_remove(at);
                self.remove_flow(flow_id);
            }
            let Some(active) = self.listeners[peer as usize].active.as_mut() else {
                return Ok(());
            };
            let actions = active.sched.on_failure(self.now, id, Failure::BadChunk);
            return self.after(peer, actions);
        }
        // The checker: what reaches the player is what the manifest lists.
        let source_corrupt = flow.src != ORIGIN
            && flow.src < self.listeners.len() as u32
            && self.listeners[flow.src as usize].corrupt;
        self.check(!source_corrupt, || {
            format!(
                "a chunk of track {track} from corrupt peer {} reached listener {peer}",
                flow.src
            )
        })?;
        let now = self.now;
        // The others were handed over as they landed (the event's own catch-up at the
        // latest): the last one ends the transfer.
        debug_assert_eq!(flow.delivered + 1, if last { flow.count } else { 1 });
        let Some(active) = self.listeners[peer as usize].active.as_mut() else {
            return Ok(());
        };
        if last {
            active.requests.retain(|(req, _)| *req != id);
            active.sched.arrived(now, id, flow.first + flow.count - 1);
            self.checks.chunks_delivered += 1;
        }
        let mut actions = active.sched.poll(now);
        // What it held has arrived: then the holder's word on the rest.
        if last && let Some(at) = active.misses.iter().position(|(req, ..)| *req == id) {
            let (_, index, held) = active.misses.swap_remove(at);
            actions.extend(active.sched.on_missing(now, id, index, held));
        }
        self.after(peer, actions)?;
        if last {
            self.rearm_held_tails(peer);
        }
        Ok(())
    }

    /// A transfer ended, and the chunk it brought may have been one another transfer also
    /// carries (an urgent chunk asked of the origin too): a transfer whose range now ends
    /// with held chunks has its last one not held as a chunk that matters
    /// ([`Engine::next_until`]).
    fn rearm_held_tails(&mut self, peer: u32) {
        let Some(active) = self.listeners[peer as usize].active.as_ref() else {
            return;
        };
        let mut ids = std::mem::take(&mut self.scratch_flows);
        ids.clear();
        ids.extend(active.requests.iter().map(|(_, flow)| *flow).filter(|&id| {
            let flow = &self.flows[id as usize];
            flow.live && flow.count > 1 && active.sched.holds(flow.first + flow.count - 1)
        }));
        for &id in &ids {
            self.reschedule(id);
        }
        self.scratch_flows = ids;
    }

    // ---- statistics ----------------------------------------------------------------------

    fn sample(&mut self) -> Result<(), SimError> {
        let sizes = self.tracker.sizes();
        let interval = std::mem::take(&mut self.interval);
        let seconds = self.scenario.output.sample_s as f64;
        self.series.push(Sample {
            t_s: self.now / 1_000,
            online: self.online,
            listening: self.listening,
            plays: interval.plays,
            stuttered: interval.stuttered,
            bytes_origin: interval.bytes_origin,
            bytes_super_nodes: interval.bytes_super_nodes,
            bytes_peers: interval.bytes_peers,
            bytes_cache: interval.bytes_cache,
            origin_mbps: interval.origin_egress as f64 * 8.0 / seconds / 1e6,
            origin_transfers: self.origin_uploads,
            tracker_peers: sizes.peers as u64,
        });
        // Bounds that are cheap to check once a sample (the tracker's on its own thread
        // would otherwise have to answer after every announce).
        let (tracked, bound) = (sizes.peers, self.tracker.config().peers_max);
        self.check(tracked <= bound, || {
            format!("tracker holds {tracked} peers, over {bound}")
        })?;
        let entries = sizes.entries;
        let bound = sizes.renditions * self.scenario.tracker.peers_per_track as usize;
        self.check(entries <= bound, || {
            format!("tracker holds {entries} holder pairs, over {bound}")
        })?;
        for (index, listener) in self.listeners.iter().enumerate() {
            let class = &self.scenario.classes[listener.class as usize];
            if listener.cache_bytes > class.cache_mib << 20
                || listener.net.uploads() > class.upload_slots
            {
                return Err(SimError::Check {
                    at_ms: self.now,
                    what: format!(
                        "listener {index}: cache {} bytes (budget {} MiB), {} uploads (slots {})",
                        listener.cache_bytes,
                        class.cache_mib,
                        listener.net.uploads(),
                        class.upload_slots
                    ),
                });
            }
        }
        Ok(())
    }

    fn finish(self) -> Outcome {
        let stats = self.tracker.finish().stats();
        let summary = Summary::new(
            &self.scenario,
            &self.totals,
            &self.start_histogram,
            &self.steps_histograms,
            self.events,
            Ev::KINDS
                .iter()
                .zip(self.events_by_kind)
                .map(|(kind, count)| (kind.to_string(), count))
                .collect(),
            self.supers.len() as u32,
            stats,
            self.checks,
        );
        Outcome {
            summary,
            series: self.series,
            plays: self.plays,
            start_histogram: self.start_histogram,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_bytes_is_the_sum_of_its_chunks() {
        let engine = tiny();
        for track in [0, 1, 7, 99] {
            let chunks = engine.track_chunks(track);
            for first in [
                0,
                1,
                chunks / 2,
                chunks.saturating_sub(1),
                chunks,
                chunks + 3,
            ] {
                for count in [0, 1, 2, 5, chunks, u32::MAX] {
                    let end = first.saturating_add(count).min(chunks);
                    let summed: u64 = (first..end)
                        .map(|index| u64::from(engine.chunk_size(track, index)))
                        .sum();
                    assert_eq!(
                        engine.range_bytes(track, first, count),
                        summed,
                        "track {track} first {first} count {count}"
                    );
                }
            }
        }
    }

    #[test]
    fn ids_round_trip() {
        for node in [0, 1, 999_999, ORIGIN] {
            assert_eq!(node_of(&node_id(node)), Some(node));
        }
        assert_eq!(track_of(&rendition_id(123_456)), 123_456);
        assert_eq!(node_of(&NodeId([7; 32])), None);
    }

    fn tiny() -> Engine {
        let scenario = Scenario::from_toml(
            "peers = 40\nduration_s = 600\n[catalog]\ntracks = 200\nrestricted_share = 0.5\n\
             [sessions]\nper_day = 500.0\n",
            &[],
        )
        .unwrap();
        Engine::new(scenario).unwrap()
    }

    #[test]
    fn a_peer_asked_for_a_track_outside_the_markets_stops_the_run() {
        let mut engine = tiny();
        let asker = (0..40)
            .find(|&p| engine.listeners[p as usize].region != 0)
            .unwrap();
        let server = (0..40).find(|&p| p != asker).unwrap();
        let track = (1..200).find(|&t| engine.restricted(t)).unwrap();
        engine.session_start(asker).unwrap();
        let active = engine.listeners[asker as usize].active.as_mut().unwrap();
        active.play.as_mut().unwrap().track = track;
        let other = &mut engine.listeners[server as usize];
        other.online = true;
        other.reachable = true;
        let error = engine
            .fetch(
                asker,
                RequestId(1),
                node_id(server),
                0,
                1,
                Priority::Playing,
            )
            .unwrap_err();
        assert!(error.to_string().contains("outside its markets"), "{error}");
    }

    #[test]
    fn serving_nodes_admit_as_the_upload_gate_does() {
        let mut engine = tiny();
        let server = 0;
        let slots = engine.upload_slots(server) as u32;
        assert!(slots >= 4, "{slots}");
        let play = FlowKind::Play {
            round: 0,
            request: 0,
            priority: Priority::Playing,
        };
        let mut flows = Vec::new();
        // One downloader takes half the slots, no more.
        for _ in 0..slots.div_ceil(2) {
            assert!(engine.admits(server, 1, Priority::Playing));
            flows.push(engine.start_flow(server, 1, play, 0, 0, 1, 1.0, false));
        }
        assert!(!engine.admits(server, 1, Priority::Playing));
        // Others fill it up to the quarter a prefetch must leave free.
        let mut downloader = 2;
        while engine.admits(server, downloader, Priority::Prefetch) {
            let kind = FlowKind::Prefetch { round: 0 };
            flows.push(engine.start_flow(server, downloader, kind, 0, 0, 1, 1.0, false));
            downloader += 1;
        }
        let held = flows.len() as u32;
        assert_eq!(held, slots - slots / 4);
        // A playing request still gets one of the reserved slots.
        assert!(engine.admits(server, downloader, Priority::Playing));
        for flow in flows {
            engine.detach(flow);
        }
        assert!(
            engine.listeners[0].net.admission.is_none(),
            "freed when idle"
        );
        assert!(engine.admits(server, 1, Priority::OfflineSync));
    }

    #[test]
    fn chunks_play_for_their_own_variable_time() {
        let mut engine = tiny();
        for track in 0..10 {
            let chunks = engine.track_chunks(track);
            let ends = engine.chunk_ends(track, chunks);
            assert_eq!(ends.len(), chunks as usize);
            assert!(ends.windows(2).all(|pair| pair[0] <= pair[1]));
            assert_eq!(
                u64::from(*ends.last().unwrap()),
                engine.track_seconds(track) * 1_000
            );
            // The first chunk carries the stream headers: it plays for less than the next.
            assert!(ends[0] < ends[1] - ends[0], "{:?}", &ends[..3]);
            // The middle chunks vary about as much as asked.
            let spans: Vec<f64> = ends[1..ends.len() - 1]
                .windows(2)
                .map(|pair| f64::from(pair[1] - pair[0]))
                .collect();
            let mean = spans.iter().sum::<f64>() / spans.len() as f64;
            let deviation =
                (spans.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / spans.len() as f64).sqrt();
            let spread = engine.scenario.catalog.vbr_spread;
            assert!(
                (0.5 * spread..1.6 * spread).contains(&(deviation / mean)),
                "track {track}: spread {} against {spread}",
                deviation / mean
            );
        }
        engine.scenario.catalog.vbr_spread = 0.0;
        engine.scenario.catalog.header_bytes = 0;
        // The memo holds ends of the catalog as it was (a running engine's never changes).
        engine.ends_memo.borrow_mut().clear();
        let chunks = engine.track_chunks(3);
        let ends = engine.chunk_ends(3, chunks);
        let even = f64::from(ends[0]);
        assert!(
            ends.windows(2)
                .take(chunks as usize - 2)
                .all(|pair| (f64::from(pair[1] - pair[0]) - even).abs() <= 1.0),
            "no spread and no headers: even chunks"
        );
    }

    #[test]
    fn a_class_without_upload_slots_shares_nothing() {
        let mut engine = tiny();
        let class = engine.listeners[0].class as usize;
        engine.scenario.classes[class].upload_slots = 0;
        assert!(!engine.admits(0, 1, Priority::Playing));
    }

    #[test]
    fn a_bound_exceeded_stops_the_run() {
        let mut engine = tiny();
        engine.listeners[3].cache_bytes = u64::MAX / 2;
        let error = engine.sample().unwrap_err();
        assert!(error.to_string().contains("listener 3: cache"), "{error}");
    }

    #[test]
    fn a_tracker_answer_is_checked_against_the_region_rule() {
        // Drive a whole small run with half the catalog restricted: every answer is checked
        // and none breaks the rule (the real tracker filters by markets).
        let outcome = tiny().run(&mut |_| {}).unwrap();
        assert!(outcome.summary.checks.peer_lists > 0);
    }
}
