//! The playback scheduler: which chunk to ask from whom, and when. Sans-IO: the driver feeds it
//! events with the time, polls it for actions, and carries them out; the simulator does the
//! same with simulated time. It never reads a clock or draws randomness.
//!
//! The policy (DESIGN.md §6, after Spotify 2010):
//! 1. Chunks in the local cache count as held from the start.
//! 2. The opening chunks come from the origin at once, on the warm connection, while the driver
//!    looks for peers ([`Action::FindPeers`]). Audio starts when the chunk at the play
//!    position is in ([`Scheduler::playable`]: with any chunks that span no time before the
//!    audio after them).
//! 3. The rest comes from peers, ranked by expected completion time (bytes outstanding on the
//!    source plus the new range, divided by its measured rate, plus its round trip), pipelined
//!    (several ranges in flight per peer). A peer still downloading the rendition (a partial
//!    holder, [`Scheduler::add_holders`]) is asked only for ranges it holds by its own
//!    account grown at its own rate; when it answers that a chunk is missing
//!    ([`Scheduler::on_missing`]) its figures are corrected and its rate estimate halved, and
//!    it is neither scored down nor reported: it was early, not faulty.
//! 4. While peers exist, the origin is asked only for chunks within `origin_lead_ms` of the play
//!    position, and only when it would deliver sooner than the best peer and the peer would be
//!    late; without peers it fetches the whole track (there is nothing to save).
//! 5. A chunk that turns urgent (it plays within `urgent_ms`) and is still out with a peer is
//!    asked again from the origin. A request that makes no progress for `stall_ms` is given up
//!    and its chunks go back to the pool; its source is scored down.
//! 6. Everything is cancelled on a track change ([`Scheduler::play`] again or
//!    [`Scheduler::stop`]).
//! 7. When `prefetch_remaining_ms` of the track remain, [`Action::PrefetchNext`] tells the
//!    driver to start the next track's opening chunks.
//!
//! The play head is modelled here too, a playout buffer fed with each chunk's arrival: it
//! advances in real time while the chunk under it is playable, spending each chunk's own play
//! time ([`TrackPlan::chunk_end_ms`], from the Ogg granule positions), and stops (a stutter)
//! when it is not, until that chunk arrives.

use crate::small_map::SmallMap;

use protocol::NodeId;
use protocol::wire::Holding;

use protocol::wire::Priority;

/// Audio the opening a play authorization carries should hold, ms: playback starts on it and
/// must last while the next chunk is fetched (a round trip and a chunk's transfer; one second
/// covers a 300 ms round trip and a 16 KiB chunk at 200 kbit/s). Chunks are cut by bytes and
/// the first holds the stream headers: at 160 kbit/s it plays for about 0.4 s, so the
/// opening takes two. The client asks for it (`PlayRequest::opening_ms`); the simulator
/// grants what the origin would.
pub const OPENING_MS: u32 = 1_000;

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Chunks asked from the origin as soon as a track starts.
    pub opening_chunks: u32,
    /// How far ahead of the play position the origin may be used while peers exist.
    pub origin_lead_ms: u64,
    /// How far ahead the origin may fetch while the first peer lookup is still out.
    pub search_lead_ms: u64,
    /// A chunk playing within this is urgent: asked from the origin if a peer still has it.
    pub urgent_ms: u64,
    /// Safety margin when judging whether a peer would deliver a range in time.
    pub peer_margin_ms: u64,
    /// Chunks per range asked from a peer.
    pub range_chunks: u32,
    /// Ranges in flight per peer.
    pub requests_per_peer: usize,
    /// Ranges in flight to the origin.
    pub requests_origin: usize,
    /// A request with no chunk for this long is given up.
    pub stall_ms: u64,
    /// Remaining play time at which the next track is prefetched.
    pub prefetch_remaining_ms: u64,
    /// Rate assumed for a source before it delivered anything, bytes per millisecond.
    pub rate_prior: f64,
    /// Failures after which a peer is dropped for this track.
    pub failures_max: u32,
    /// Most sources considered at once.
    pub sources_max: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            opening_chunks: 2,
            origin_lead_ms: 15_000,
            search_lead_ms: 6_000,
            urgent_ms: 3_000,
            peer_margin_ms: 1_000,
            range_chunks: 8,
            requests_per_peer: 2,
            requests_origin: 4,
            stall_ms: 2_000,
            prefetch_remaining_ms: 30_000,
            // 2 Mbit/s: a cautious guess for a residential peer.
            rate_prior: 250.0,
            failures_max: 2,
            sources_max: 60,
        }
    }
}

/// What kind of source a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// The origin (always there, costs money).
    Origin,
    /// A super-node.
    SuperNode,
    /// Another listener.
    Peer,
}

/// What the scheduler needs to know about a track's rendition.
#[derive(Debug, Clone)]
pub struct TrackPlan {
    /// Chunk count.
    pub chunks: u32,
    /// Ciphertext bytes of each chunk.
    pub chunk_bytes: Vec<u32>,
    /// Play time of the whole rendition.
    pub duration_ms: u64,
    /// For each chunk, how far playback reaches once it and every chunk before it are held
    /// (the manifest's [`protocol::ManifestBody::chunk_end_ms`], from the Ogg granule
    /// positions): the play head model spends each chunk's true duration. Empty (or of the
    /// wrong length): `duration_ms` spread evenly over the chunks.
    pub chunk_end_ms: Vec<u32>,
    /// Chunks already in the local cache.
    pub cached: Vec<bool>,
    /// Where to start playing.
    pub start_ms: u64,
}

/// A request the driver should send, identified so answers can be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Why a request or source failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Could not connect, or the connection dropped.
    Unreachable,
    /// Answered that it does not hold the chunks (or not found).
    Missing,
    /// Sent a chunk that failed its hash: banned.
    BadChunk,
    /// Refused (busy, license, region).
    Refused,
}

/// What the driver should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask `source` for chunks `first .. first + count`.
    Fetch {
        /// Matches later events to this request.
        id: RequestId,
        /// Whom to ask.
        source: NodeId,
        /// First chunk.
        first: u32,
        /// Chunk count.
        count: u32,
        /// Urgency to send along.
        priority: Priority,
    },
    /// Stop a request (its answers are no longer wanted).
    Cancel {
        /// Which.
        id: RequestId,
    },
    /// Look for peers (tracker, DHT, LAN).
    FindPeers,
    /// Tell the tracker this peer failed.
    Report {
        /// The peer.
        peer: NodeId,
        /// How.
        failure: Failure,
    },
    /// Tell the tracker the rate this peer delivered the track at (sent once the whole
    /// track is here, for at most [`DELIVERED_REPORTS_MAX`] peers that each delivered at
    /// least [`DELIVERED_REPORT_BYTES_MIN`]): trackers rank holders by such reports.
    Delivered {
        /// The peer (or super-node).
        peer: NodeId,
        /// Its measured rate, kbit/s.
        kbps: u32,
    },
    /// Start fetching the next track's opening.
    PrefetchNext,
}

/// What the listener experiences, for the app and the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerEvent {
    /// Audio started, `first_audio_ms` after [`Scheduler::play`].
    Started {
        /// Time to first audio.
        first_audio_ms: u64,
    },
    /// The play head reached a chunk that is not here: playback stalls.
    Stalled {
        /// Play position.
        position_ms: u64,
    },
    /// Playback resumed after a stall.
    Resumed {
        /// How long it stalled.
        stalled_ms: u64,
    },
    /// The track played to its end.
    Finished,
}

/// Counters of one track's playback.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlayStats {
    /// Time from `play` to first audio, once started.
    pub first_audio_ms: Option<u64>,
    /// Stalls after audio started.
    pub stutters: u32,
    /// Time spent stalled after audio started.
    pub stalled_ms: u64,
    /// Bytes received from the origin (including duplicates of urgent chunks).
    pub bytes_origin: u64,
    /// Bytes received from super-nodes.
    pub bytes_super_nodes: u64,
    /// Bytes received from other peers.
    pub bytes_peers: u64,
    /// Bytes that were already in the local cache.
    pub bytes_cache: u64,
    /// Bytes received twice (an urgent re-request raced a peer).
    pub bytes_duplicate: u64,
    /// Bytes received on transfers cancelled or cut off before they were handed over
    /// (a range the scheduler gave up on, or one in flight at a skip or stop): received
    /// and thrown away. The scheduler never sees them; its driver fills this in.
    pub bytes_cancelled: u64,
    /// Download rate measured over the track's fetches (running average of per-chunk
    /// samples across sources), kbit/s; 0 when nothing was fetched. Feeds [`crate::abr`].
    pub rate_kbps: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Missing,
    Requested { request: RequestId },
    Held,
}

/// What a partial holder holds: a prefix that grows at a rate, as of a moment.
#[derive(Debug, Clone, Copy)]
struct Prefix {
    held: u32,
    per_min: u32,
    at_ms: u64,
}

impl Prefix {
    fn held_at(&self, now: u64) -> u64 {
        u64::from(self.held) + u64::from(self.per_min) * now.saturating_sub(self.at_ms) / 60_000
    }
}

#[derive(Debug)]
struct Source {
    kind: SourceKind,
    /// `Some` while it is still downloading the rendition.
    partial: Option<Prefix>,
    /// Chunks it said it lacked although its figures said it held them.
    misses: u32,
    /// Measured rate, bytes per ms (EWMA).
    rate: f64,
    /// Bytes asked for and not yet received.
    outstanding: u64,
    in_flight: usize,
    failures: u32,
    banned: bool,
    /// Bytes it delivered for the current track.
    received: u64,
}

impl Source {
    /// How many chunks from the first it holds at `now`, by its own account (all of them
    /// unless it is a partial holder).
    fn held_at(&self, now: u64) -> u64 {
        self.partial.map_or(u64::MAX, |prefix| prefix.held_at(now))
    }

    /// Expected time until `bytes` more would arrive from it.
    fn expected_ms(&self, bytes: u64) -> f64 {
        (self.outstanding + bytes) as f64 / self.rate.max(1e-3)
    }
}

#[derive(Debug)]
struct Request {
    source: NodeId,
    /// The source's place in [`Scheduler::sources`].
    slot: usize,
    first: u32,
    count: u32,
    received: u32,
    last_progress_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    Idle,
    Buffering,
    Playing,
    Paused,
    Finished,
}

/// Least a peer must have delivered of a track for its rate to be reported (16 chunks of
/// 16 KiB: fewer samples say little about a rate).
pub const DELIVERED_REPORT_BYTES_MIN: u64 = 256 * 1024;

/// Most peers whose delivered rate is reported per track (those that delivered the most), so
/// an honest listener stays well within a tracker's hourly report budget.
pub const DELIVERED_REPORTS_MAX: usize = 2;

/// The scheduler for one listener. See the module docs.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    origin: NodeId,
    sources: SmallMap<NodeId, Source>,
    /// The sources that are peers or super-nodes and not banned, as their places in
    /// `sources` (which never loses an entry), in node id order: what a poll weighs, kept
    /// sorted as sources come and are banned rather than gathered per poll, and read without
    /// searching `sources` for each.
    peers: Vec<usize>,
    plan: Option<TrackPlan>,
    chunks: Vec<Chunk>,
    /// Chunks held (of `chunks`): "all held" without a walk.
    held: u32,
    /// Chunks held from the first without a gap (held chunks never go back to missing
    /// within a track, so this only grows).
    prefix: u32,
    /// No chunk in `missing_from .. missing_at` is missing: where the search for the first
    /// missing chunk resumes (lowered when a chunk goes back to the pool).
    missing_from: std::cell::Cell<u32>,
    missing_at: std::cell::Cell<u32>,
    /// Where each chunk starts playing (ms): the end of the one before. Chunks inside one
    /// long Ogg page span no time and share their start with the chunk after them.
    starts: Vec<u32>,
    /// A second request for an urgent chunk, to the origin.
    urgent: Vec<Option<RequestId>>,
    requests: SmallMap<RequestId, Request>,
    next_request: u64,
    head: Head,
    position_ms: u64,
    head_at_ms: u64,
    play_started_ms: u64,
    stall_started_ms: u64,
    prefetch_sent: bool,
    /// The next start of playback follows a seek or a pause, not a stall.
    quiet_resume: bool,
    peers_asked: bool,
    /// A peer lookup has answered (possibly with nobody).
    search_done: bool,
    /// The delivered rates of this track's peers have been told ([`Action::Delivered`]).
    delivered_told: bool,
    stats: PlayStats,
    events: Vec<PlayerEvent>,
}

impl Scheduler {
    /// A scheduler whose origin is `origin`.
    pub fn new(config: SchedulerConfig, origin: NodeId) -> Self {
        let mut sources = SmallMap::default();
        sources.insert(
            origin,
            Source {
                kind: SourceKind::Origin,
                partial: None,
                misses: 0,
                rate: config.rate_prior * 4.0,
                outstanding: 0,
                in_flight: 0,
                failures: 0,
                banned: false,
                received: 0,
            },
        );
        Self {
            config,
            origin,
            sources,
            peers: Vec::new(),
            plan: None,
            chunks: Vec::new(),
            held: 0,
            prefix: 0,
            missing_from: std::cell::Cell::new(0),
            missing_at: std::cell::Cell::new(0),
            starts: Vec::new(),
            urgent: Vec::new(),
            requests: SmallMap::default(),
            next_request: 1,
            head: Head::Idle,
            position_ms: 0,
            head_at_ms: 0,
            play_started_ms: 0,
            stall_started_ms: 0,
            prefetch_sent: false,
            quiet_resume: false,
            peers_asked: false,
            search_done: false,
            delivered_told: false,
            stats: PlayStats::default(),
            events: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Counters of the current track.
    pub fn stats(&self) -> PlayStats {
        self.stats
    }

    /// Who delivered the current track's bytes: each source that sent any, with its kind
    /// and byte count, most bytes first (ties by node id, so the order replays).
    pub fn bytes_by_source(&self) -> Vec<(NodeId, SourceKind, u64)> {
        let mut list: Vec<_> = self
            .sources
            .iter()
            .filter(|(_, source)| source.received > 0)
            .map(|(node, source)| (*node, source.kind, source.received))
            .collect();
        list.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        list
    }

    /// Play position at `now` (advancing the model).
    pub fn position_ms(&mut self, now: u64) -> u64 {
        self.advance(now);
        self.position_ms
    }

    /// True once the track played to its end.
    pub fn finished(&self) -> bool {
        self.head == Head::Finished
    }

    /// True when chunk `index` is held.
    pub fn holds(&self, index: u32) -> bool {
        self.chunks.get(index as usize) == Some(&Chunk::Held)
    }

    /// [`Action::Delivered`] for the peers and super-nodes that delivered the most of this
    /// track (each at least [`DELIVERED_REPORT_BYTES_MIN`]), at most
    /// [`DELIVERED_REPORTS_MAX`], at their measured rates; ties broken by node id.
    fn delivered(&self) -> Vec<Action> {
        let mut served: Vec<(u64, NodeId, f64)> = self
            .sources
            .iter()
            .filter(|(_, source)| {
                source.kind != SourceKind::Origin
                    && !source.banned
                    && source.received >= DELIVERED_REPORT_BYTES_MIN
            })
            .map(|(node, source)| (source.received, *node, source.rate))
            .collect();
        served.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        served
            .into_iter()
            .take(DELIVERED_REPORTS_MAX)
            .map(|(_, peer, rate)| Action::Delivered {
                peer,
                // Bytes per ms × 8 = kbit/s.
                kbps: (rate * 8.0).clamp(0.0, f64::from(u32::MAX)) as u32,
            })
            .collect()
    }

    /// Chunks held from the first without a gap: what a partial holder of this track
    /// announces and tells a peer whose chunk it lacks.
    pub fn held_prefix(&self) -> u32 {
        self.prefix
    }

    /// True when every chunk of the track is held (nothing left to fetch).
    pub fn all_held(&self) -> bool {
        !self.chunks.is_empty() && self.held as usize == self.chunks.len()
    }

    /// Marks chunk `index` held; true when it already was (a duplicate).
    fn mark_held(&mut self, index: u32) -> bool {
        let Some(chunk) = self.chunks.get_mut(index as usize) else {
            return false;
        };
        if *chunk == Chunk::Held {
            return true;
        }
        *chunk = Chunk::Held;
        self.held += 1;
        while self.chunks.get(self.prefix as usize) == Some(&Chunk::Held) {
            self.prefix += 1;
        }
        false
    }

    /// Puts chunk `index` back in the pool (it was requested and did not come).
    fn mark_missing(&mut self, index: u32) {
        if let Some(chunk) = self.chunks.get_mut(index as usize) {
            *chunk = Chunk::Missing;
            if (self.missing_from.get()..self.missing_at.get()).contains(&index) {
                self.missing_at.set(index);
            }
        }
    }

    /// The first missing chunk at or after `from`, resuming the last search when it covers
    /// `from` (the play head only moves on, and chunks rarely go back to the pool).
    fn first_missing(&self, from: u32) -> Option<u32> {
        let chunks = self.chunks.len() as u32;
        let (base, at) = (self.missing_from.get(), self.missing_at.get());
        let (base, start) = if base <= from && from <= at {
            (base, at)
        } else {
            (from, from)
        };
        let found = (start..chunks).find(|&i| self.chunks[i as usize] == Chunk::Missing);
        self.missing_from.set(base);
        self.missing_at.set(found.unwrap_or(chunks));
        found
    }

    /// The first chunk not held at or after `from` (chunks past the end count as not held).
    fn first_unheld(&self, from: u32) -> u32 {
        if from <= self.prefix {
            self.prefix
        } else {
            (from..self.chunks.len() as u32)
                .find(|&i| !self.holds(i))
                .unwrap_or(self.chunks.len() as u32)
        }
    }

    /// Player events since the last call.
    pub fn take_events(&mut self) -> Vec<PlayerEvent> {
        std::mem::take(&mut self.events)
    }

    /// Starts a track (cancelling everything of the previous one). Returns the cancels.
    pub fn play(&mut self, now: u64, mut plan: TrackPlan) -> Vec<Action> {
        let mut actions = self.stop();
        let chunks = plan.chunks as usize;
        self.chunks = (0..chunks)
            .map(|index| {
                if plan.cached.get(index).copied().unwrap_or(false) {
                    Chunk::Held
                } else {
                    Chunk::Missing
                }
            })
            .collect();
        self.held = self.chunks.iter().filter(|c| **c == Chunk::Held).count() as u32;
        self.prefix = self
            .chunks
            .iter()
            .position(|chunk| *chunk != Chunk::Held)
            .unwrap_or(chunks) as u32;
        self.missing_from.set(0);
        self.missing_at.set(0);
        self.urgent = vec![None; chunks];
        self.starts = chunk_starts(&plan);
        // Held once, as the starts.
        plan.chunk_end_ms = Vec::new();
        for source in self.sources.values_mut() {
            source.received = 0;
        }
        self.stats = PlayStats {
            bytes_cache: (0..chunks)
                .filter(|&index| self.chunks[index] == Chunk::Held)
                .map(|index| u64::from(plan.chunk_bytes.get(index).copied().unwrap_or(0)))
                .sum(),
            ..PlayStats::default()
        };
        self.position_ms = plan.start_ms.min(plan.duration_ms);
        self.head = Head::Buffering;
        self.head_at_ms = now;
        self.play_started_ms = now;
        self.prefetch_sent = false;
        self.peers_asked = false;
        self.search_done = false;
        self.delivered_told = false;
        for source in self.sources.values_mut() {
            source.failures = 0;
        }
        self.plan = Some(plan);
        actions.extend(self.poll(now));
        actions
    }

    /// Stops the current track: cancels every request.
    pub fn stop(&mut self) -> Vec<Action> {
        let mut ids: Vec<RequestId> = self.requests.keys().copied().collect();
        ids.sort();
        self.requests.clear();
        for source in self.sources.values_mut() {
            source.outstanding = 0;
            source.in_flight = 0;
        }
        self.plan = None;
        self.head = Head::Idle;
        ids.into_iter().map(|id| Action::Cancel { id }).collect()
    }

    /// Moves the play head to `position_ms` (seek); outstanding requests stay useful.
    pub fn seek(&mut self, now: u64, position_ms: u64) -> Vec<Action> {
        let Some(duration) = self.plan.as_ref().map(|plan| plan.duration_ms) else {
            return Vec::new();
        };
        self.advance(now);
        self.position_ms = position_ms.min(duration);
        self.head_at_ms = now;
        if self.head != Head::Paused && self.head != Head::Idle {
            // Waiting for the chunk under the new position is not a stutter.
            self.head = Head::Buffering;
            self.quiet_resume = self.stats.first_audio_ms.is_some();
        }
        self.poll(now)
    }

    /// Pauses the play head (fetching goes on within the usual limits).
    pub fn pause(&mut self, now: u64) {
        self.advance(now);
        if matches!(self.head, Head::Playing | Head::Buffering) {
            self.head = Head::Paused;
        }
    }

    /// Resumes after [`Scheduler::pause`].
    pub fn resume(&mut self, now: u64) -> Vec<Action> {
        if self.head == Head::Paused {
            self.head = Head::Buffering;
            self.head_at_ms = now;
            self.quiet_resume = self.stats.first_audio_ms.is_some();
        }
        self.poll(now)
    }

    /// True while paused.
    pub fn paused(&self) -> bool {
        self.head == Head::Paused
    }

    /// Adds sources the driver found (tracker, DHT, LAN); call it when a lookup answers, even
    /// with nobody. Until the first answer, the origin stays within `search_lead_ms` of the
    /// play position; after an answer with no peers it fetches the whole track. Sources beyond
    /// [`SchedulerConfig::sources_max`] are ignored.
    pub fn add_sources(&mut self, now: u64, found: &[(NodeId, SourceKind)]) -> Vec<Action> {
        let found: Vec<_> = found
            .iter()
            .map(|&(node, kind)| (node, kind, None))
            .collect();
        self.add_holders(now, &found)
    }

    /// [`Scheduler::add_sources`] with what each source holds: `None` for the whole
    /// rendition, a [`Holding`] (as of `now`) for a peer still downloading it. A source
    /// already known takes the new figures.
    pub fn add_holders(
        &mut self,
        now: u64,
        found: &[(NodeId, SourceKind, Option<Holding>)],
    ) -> Vec<Action> {
        self.search_done = true;
        for &(node, kind, holding) in found {
            if node == self.origin {
                continue;
            }
            let prior = match kind {
                SourceKind::Origin => continue,
                SourceKind::SuperNode => self.config.rate_prior * 4.0,
                SourceKind::Peer => self.config.rate_prior,
            };
            let partial = holding.map(|holding| Prefix {
                held: holding.held,
                per_min: holding.per_min,
                at_ms: now,
            });
            if let Some(known) = self.sources.get_mut(&node) {
                known.partial = partial;
                continue;
            }
            if self.sources.len() >= self.config.sources_max {
                continue;
            }
            self.sources.insert(
                node,
                Source {
                    kind,
                    partial,
                    misses: 0,
                    rate: prior,
                    outstanding: 0,
                    in_flight: 0,
                    failures: 0,
                    banned: false,
                    received: 0,
                },
            );
            let slot = self.sources.len() - 1;
            if let Err(at) = self.peer_place(&node) {
                self.peers.insert(at, slot);
            }
        }
        self.poll(now)
    }

    fn chunk_bytes(&self, index: u32) -> u64 {
        self.plan
            .as_ref()
            .and_then(|plan| plan.chunk_bytes.get(index as usize))
            .map_or(0, |bytes| u64::from(*bytes))
    }

    /// The chunk that plays at `position_ms`: the last one starting at or before it, or,
    /// when chunks before it span no time (the rest of an Ogg page it completes), the first
    /// of those, which must be in before it plays.
    pub fn chunk_at(&self, position_ms: u64) -> u32 {
        let chunks = self.starts.len() as u32;
        let last = (self
            .starts
            .partition_point(|&start| u64::from(start) <= position_ms) as u32)
            .saturating_sub(1)
            .min(chunks.saturating_sub(1));
        let start = self.chunk_start(last);
        (self.starts.partition_point(|&s| u64::from(s) < start) as u32).min(last)
    }

    /// One past the last chunk starting where chunk `index` does (the chunks that play
    /// together from there).
    fn group_end(&self, index: u32) -> u32 {
        let start = self.chunk_start(index);
        (self.starts.partition_point(|&s| u64::from(s) <= start) as u32).max(index + 1)
    }

    /// Where chunk `index` starts playing; the track's duration past the last chunk.
    fn chunk_start(&self, index: u32) -> u64 {
        self.starts
            .get(index as usize)
            .map(|&start| u64::from(start))
            .unwrap_or_else(|| self.plan.as_ref().map_or(0, |plan| plan.duration_ms))
    }

    /// True when chunk `index` can play: it is held, and so are the chunks after it that
    /// start where it does (they span no time: the rest of the Ogg page the last of them
    /// completes).
    pub fn playable(&self, index: u32) -> bool {
        (index..self.group_end(index)).all(|i| self.holds(i))
    }

    /// How many chunks from `from` on start within `ms` of chunk `from`'s start.
    fn chunks_within(&self, from: u32, ms: u64) -> u32 {
        let limit = self.chunk_start(from).saturating_add(ms);
        (self
            .starts
            .partition_point(|&start| u64::from(start) < limit) as u32)
            .saturating_sub(from)
    }

    /// The first chunk whose window of `ms` reaches chunk `index` (chunks_within counts it).
    fn enters_window(&self, index: u32, ms: u64) -> u32 {
        let start = self.chunk_start(index);
        self.starts
            .partition_point(|&s| u64::from(s).saturating_add(ms) <= start) as u32
    }

    /// When chunk `index` plays, relative to now (may be negative: already due).
    fn due_in_ms(&self, index: u32) -> f64 {
        self.chunk_start(index) as f64 - self.position_ms as f64
    }

    /// The node request `id` went to, while it is outstanding.
    pub fn request_source(&self, id: RequestId) -> Option<NodeId> {
        self.requests.get(&id).map(|request| request.source)
    }

    /// A chunk arrived from `source` for `id`, verified by the driver.
    pub fn on_chunk(&mut self, now: u64, id: RequestId, index: u32) -> Vec<Action> {
        self.arrived(now, id, index);
        self.poll(now)
    }

    /// Chunk `index` of `id` arrived at `at`, verified: [`Scheduler::on_chunk`] without its
    /// decision round. A driver that learns of arrivals after the fact (the simulator, which
    /// works out when each chunk of a transfer lands) hands them over in order, each with its
    /// own time, so the rate estimate and stall clock are those of chunk-by-chunk delivery;
    /// it must [`Scheduler::poll`] before anything else reads a decision, and at the arrival
    /// itself whenever the play head may be waiting for the chunk
    /// ([`Scheduler::earliest_reach_ms`]) or it is the last one not held.
    pub fn arrived(&mut self, at: u64, id: RequestId, index: u32) {
        let now = at;
        let bytes = self.chunk_bytes(index);
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let slot = request.slot;
        request.received += 1;
        let elapsed = now.saturating_sub(request.last_progress_ms).max(1);
        request.last_progress_ms = now;
        let done = request.received >= request.count;
        if let Some(source) = self.sources.get_at_mut(slot) {
            source.outstanding = source.outstanding.saturating_sub(bytes);
            let sample = bytes as f64 / elapsed as f64;
            source.rate = 0.7 * source.rate + 0.3 * sample;
            // bytes per ms × 8 = kbit/s.
            let kbps = sample * 8.0;
            self.stats.rate_kbps = if self.stats.rate_kbps == 0 {
                kbps as u32
            } else {
                (f64::from(self.stats.rate_kbps) * 0.8 + kbps * 0.2) as u32
            }
            .max(1);
            source.failures = 0;
            source.received += bytes;
            let counter = match source.kind {
                SourceKind::Origin => &mut self.stats.bytes_origin,
                SourceKind::SuperNode => &mut self.stats.bytes_super_nodes,
                SourceKind::Peer => &mut self.stats.bytes_peers,
            };
            *counter += bytes;
        }
        if self.mark_held(index) {
            self.stats.bytes_duplicate += bytes;
        }
        if done {
            self.finish_request(id);
        }
    }

    /// Requests out to `node` (none for a node that is not a source).
    fn in_flight(&self, node: &NodeId) -> usize {
        self.sources.get(node).map_or(0, |source| source.in_flight)
    }

    /// The earliest moment the play head can be at chunk `index`: it moves no faster than
    /// real time from where the last poll left it. `u64::MAX` when no track plays or it has
    /// finished. A chunk that lands before this can end no stall, so a driver may hand it over
    /// with [`Scheduler::arrived`] after the fact.
    pub fn earliest_reach_ms(&self, index: u32) -> u64 {
        if self.plan.is_none() || matches!(self.head, Head::Idle | Head::Finished) {
            return u64::MAX;
        }
        let start = self.chunk_start(index);
        self.head_at_ms
            .saturating_add(start.saturating_sub(self.position_ms))
    }

    /// The requests still out, with their sources and chunk ranges, in id order.
    pub fn requests(&self) -> Vec<(RequestId, NodeId, u32, u32)> {
        let mut list: Vec<_> = self
            .requests
            .iter()
            .map(|(id, request)| (*id, request.source, request.first, request.count))
            .collect();
        list.sort_by_key(|entry| entry.0);
        list
    }

    fn finish_request(&mut self, id: RequestId) {
        if let Some(request) = self.requests.remove(&id) {
            if let Some(source) = self.sources.get_at_mut(request.slot) {
                source.in_flight = source.in_flight.saturating_sub(1);
            }
            // Whatever this request was carrying and did not bring goes back to the pool.
            for index in request.first..request.first + request.count {
                if self.chunks.get(index as usize) == Some(&Chunk::Requested { request: id }) {
                    self.mark_missing(index);
                }
                if let Some(urgent) = self.urgent.get_mut(index as usize)
                    && *urgent == Some(id)
                {
                    *urgent = None;
                }
            }
            self.recount_outstanding(request.source);
        }
    }

    fn recount_outstanding(&mut self, node: NodeId) {
        let outstanding: u64 = self
            .requests
            .values()
            .filter(|request| request.source == node)
            .map(|request| {
                (request.first + request.received..request.first + request.count)
                    .map(|index| self.chunk_bytes(index))
                    .sum::<u64>()
            })
            .sum();
        if let Some(source) = self.sources.get_mut(&node) {
            source.outstanding = outstanding;
        }
    }

    /// `id`'s source answered that it does not hold chunk `index`, and holds `held` chunks
    /// from the first. From a partial holder this corrects its figures (its prefix is then at
    /// most `index`, and its rate estimate is halved, so a peer that keeps answering so is
    /// asked ever less often, and after more than twice `failures_max` such misses not at
    /// all for this track); it is not a failure and is never reported. From anyone else it is
    /// [`Failure::Missing`]. Either way the request's chunks go back to the pool.
    pub fn on_missing(&mut self, now: u64, id: RequestId, index: u32, held: u32) -> Vec<Action> {
        let Some(node) = self.requests.get(&id).map(|request| request.source) else {
            return Vec::new();
        };
        let Some(prefix) = self.sources.get(&node).and_then(|source| source.partial) else {
            return self.on_failure(now, id, Failure::Missing);
        };
        self.finish_request(id);
        let mut actions = Vec::new();
        if let Some(source) = self.sources.get_mut(&node) {
            source.partial = Some(Prefix {
                held: held.min(index),
                per_min: prefix.per_min / 2,
                at_ms: now,
            });
            source.misses += 1;
            // Early once or twice is growth misjudged; more is a peer that overstates what
            // it holds: dropped for this track, still not reported.
            if source.misses > 2 * self.config.failures_max && !source.banned {
                source.banned = true;
                self.drop_peer(&node);
                actions = self.cancel_requests_of(node);
            }
        }
        actions.extend(self.poll(now));
        actions
    }

    /// `id`'s source failed it (the remaining chunks of the request go back to the pool).
    pub fn on_failure(&mut self, now: u64, id: RequestId, failure: Failure) -> Vec<Action> {
        let Some(source_node) = self.requests.get(&id).map(|request| request.source) else {
            return Vec::new();
        };
        self.finish_request(id);
        let mut actions = self.fail_source(source_node, failure);
        actions.extend(self.poll(now));
        actions
    }

    fn fail_source(&mut self, node: NodeId, failure: Failure) -> Vec<Action> {
        let failures_max = self.config.failures_max;
        let Some(source) = self.sources.get_mut(&node) else {
            return Vec::new();
        };
        source.failures += 1;
        source.rate *= 0.5;
        let mut actions = Vec::new();
        if source.kind != SourceKind::Origin
            && (failure == Failure::BadChunk || source.failures >= failures_max)
            && !source.banned
        {
            source.banned = true;
            self.drop_peer(&node);
            // A refusal is a busy (or rule-abiding) peer, not a faulty one: it is dropped for
            // this track but not reported, or busy honest peers would be quarantined by the
            // crowd they serve (the simulator showed a third of a swarm quarantined that way).
            if failure != Failure::Refused {
                actions.push(Action::Report {
                    peer: node,
                    failure,
                });
            }
            actions.extend(self.cancel_requests_of(node));
        }
        actions
    }

    /// Takes a banned source out of the peers a poll weighs.
    fn drop_peer(&mut self, node: &NodeId) {
        if let Ok(at) = self.peer_place(node) {
            self.peers.remove(at);
        }
    }

    /// Where `node` is in `peers` (`Err`: where it would go), as `binary_search` answers.
    fn peer_place(&self, node: &NodeId) -> Result<usize, usize> {
        let sources = &self.sources;
        self.peers
            .binary_search_by(|&slot| sources.get_at(slot).map(|(key, _)| key).cmp(&Some(node)))
    }

    /// Cancels what is still out with `node`.
    fn cancel_requests_of(&mut self, node: NodeId) -> Vec<Action> {
        let mut ids: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, request)| request.source == node)
            .map(|(id, _)| *id)
            .collect();
        // In id order, whatever order the requests were made in.
        ids.sort();
        ids.into_iter()
            .map(|id| {
                self.finish_request(id);
                Action::Cancel { id }
            })
            .collect()
    }

    /// Moves the play head model to `now`, emitting player events.
    fn advance(&mut self, now: u64) {
        let Some(duration) = self.plan.as_ref().map(|plan| plan.duration_ms) else {
            return;
        };
        let elapsed = now.saturating_sub(self.head_at_ms);
        self.head_at_ms = now;
        match self.head {
            Head::Idle | Head::Finished | Head::Paused => {}
            Head::Buffering => {
                let index = self.chunk_at(self.position_ms);
                if self.playable(index) {
                    self.head = Head::Playing;
                    if self.stats.first_audio_ms.is_none() {
                        let first = now.saturating_sub(self.play_started_ms);
                        self.stats.first_audio_ms = Some(first);
                        self.events.push(PlayerEvent::Started {
                            first_audio_ms: first,
                        });
                    } else if std::mem::take(&mut self.quiet_resume) {
                        self.events.push(PlayerEvent::Resumed { stalled_ms: 0 });
                    } else {
                        let stalled = now.saturating_sub(self.stall_started_ms);
                        self.stats.stalled_ms += stalled;
                        self.events.push(PlayerEvent::Resumed {
                            stalled_ms: stalled,
                        });
                    }
                }
            }
            Head::Playing if !self.chunks.is_empty() => {
                // The head moves on until the first chunk group that cannot play (the one
                // holding the first chunk not held), or the end. Exactly what walking it
                // chunk by chunk does (`walk`, which a test compares against).
                let from = self.chunk_at(self.position_ms);
                let unheld = self.first_unheld(from);
                let stop = (unheld < self.chunks.len() as u32).then(|| {
                    let start = self.chunk_start(unheld);
                    // The first chunk of its group (a group starts where its first does).
                    start.max(self.position_ms)
                });
                let target = self.position_ms + elapsed;
                match stop {
                    Some(stop) if stop < duration && target > stop && elapsed > 0 => {
                        self.position_ms = stop;
                        self.head = Head::Buffering;
                        self.stall_started_ms = now - (target - stop);
                        self.stats.stutters += 1;
                        self.events.push(PlayerEvent::Stalled {
                            position_ms: self.position_ms,
                        });
                    }
                    _ => self.position_ms = target.min(duration),
                }
                if self.position_ms >= duration {
                    self.position_ms = duration;
                    self.head = Head::Finished;
                    self.events.push(PlayerEvent::Finished);
                }
            }
            Head::Playing => self.walk(now, elapsed, duration),
        }
    }

    /// The play head walked forward chunk by chunk for `elapsed` ms, stopping at the first
    /// chunk that cannot play: the model [`Scheduler::advance`] computes in one step.
    fn walk(&mut self, now: u64, elapsed: u64, duration: u64) {
        {
            {
                let mut left = elapsed;
                while left > 0 {
                    if self.position_ms >= duration {
                        break;
                    }
                    let index = self.chunk_at(self.position_ms);
                    if !self.playable(index) {
                        self.head = Head::Buffering;
                        self.stall_started_ms = now.saturating_sub(left);
                        self.stats.stutters += 1;
                        self.events.push(PlayerEvent::Stalled {
                            position_ms: self.position_ms,
                        });
                        break;
                    }
                    let chunk_end = self.chunk_start(self.group_end(index));
                    let step = left.min(chunk_end.saturating_sub(self.position_ms).max(1));
                    self.position_ms += step;
                    left -= step;
                }
                if self.position_ms >= duration {
                    self.position_ms = duration;
                    self.head = Head::Finished;
                    self.events.push(PlayerEvent::Finished);
                }
            }
        }
    }

    fn new_request(&mut self, now: u64, source: NodeId, first: u32, count: u32) -> Action {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let bytes: u64 = (first..first + count)
            .map(|index| self.chunk_bytes(index))
            .sum();
        // Every request goes to a source; `usize::MAX` (no place) would only count nothing.
        let slot = self.sources.position(&source).unwrap_or(usize::MAX);
        if let Some(state) = self.sources.get_at_mut(slot) {
            state.in_flight += 1;
            state.outstanding += bytes;
        }
        self.requests.insert(
            id,
            Request {
                source,
                slot,
                first,
                count,
                received: 0,
                last_progress_ms: now,
            },
        );
        let urgent = self.due_in_ms(first) <= self.config.urgent_ms as f64;
        Action::Fetch {
            id,
            source,
            first,
            count,
            priority: if urgent || self.head == Head::Buffering {
                Priority::Playing
            } else {
                Priority::Prefetch
            },
        }
    }

    /// Expected time until `bytes` more would arrive from `node`.
    fn expected_ms(&self, node: &NodeId, bytes: u64) -> f64 {
        self.sources
            .get(node)
            .map_or(f64::INFINITY, |source| source.expected_ms(bytes))
    }

    /// Decides what to ask for now. Call after every event and when
    /// [`Scheduler::poll_timeout`] comes.
    pub fn poll(&mut self, now: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.plan.is_none() {
            return actions;
        }
        self.advance(now);
        if !self.delivered_told && self.all_held() {
            self.delivered_told = true;
            actions.extend(self.delivered());
        }
        if self.head == Head::Finished {
            return actions;
        }
        if !self.peers_asked {
            self.peers_asked = true;
            actions.push(Action::FindPeers);
        }
        // Stalled requests are given up.
        let mut stalled: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, request)| {
                now.saturating_sub(request.last_progress_ms) >= self.config.stall_ms
            })
            .map(|(id, _)| *id)
            .collect();
        stalled.sort();
        for id in stalled {
            if let Some(source) = self.requests.get(&id).map(|request| request.source) {
                self.finish_request(id);
                actions.push(Action::Cancel { id });
                actions.extend(self.fail_source(source, Failure::Unreachable));
            }
        }

        let chunks = self.chunks.len() as u32;
        let from = self.chunk_at(self.position_ms);
        let lead_chunks = self.chunks_within(from, self.config.origin_lead_ms);
        let search_chunks = self.chunks_within(from, self.config.search_lead_ms);
        // Lent out for the assignment below, which bans nobody; back before the end.
        let peers = std::mem::take(&mut self.peers);

        // 1. The opening chunks, from the origin, at once.
        let opening_end = (from + self.config.opening_chunks).min(chunks);
        self.assign_origin(now, from, opening_end, &mut actions);

        // 2. Urgent chunks still out with a peer: ask the origin too.
        let urgent_end = (from + self.chunks_within(from, self.config.urgent_ms)).min(chunks);
        for index in from..urgent_end {
            let out_with_peer = match self.chunks[index as usize] {
                Chunk::Requested { request } => self
                    .requests
                    .get(&request)
                    .is_some_and(|request| request.source != self.origin),
                _ => false,
            };
            if out_with_peer && self.urgent[index as usize].is_none() {
                if self.in_flight(&self.origin) >= self.config.requests_origin + 2 {
                    break;
                }
                let action = self.new_request(now, self.origin, index, 1);
                if let Action::Fetch { id, .. } = action {
                    self.urgent[index as usize] = Some(id);
                }
                actions.push(action);
            }
        }

        // 3. Everything else: peers by expected completion; the origin within its lead when
        //    it would be sooner, or for everything when there are no peers.
        let mut index = self.first_missing(from).unwrap_or(chunks);
        while index < chunks {
            if self.chunks[index as usize] != Chunk::Missing {
                index += 1;
                continue;
            }
            let mut end = index + 1;
            while end < chunks
                && end - index < self.config.range_chunks
                && self.chunks[end as usize] == Chunk::Missing
            {
                end += 1;
            }
            let bytes: u64 = (index..end).map(|i| self.chunk_bytes(i)).sum();
            // The first of the least expected completion, in node id order.
            let best = peers
                .iter()
                .filter_map(|&slot| self.sources.get_at(slot))
                .filter(|(_, source)| source.in_flight < self.config.requests_per_peer)
                .filter(|(_, source)| source.held_at(now) > u64::from(index))
                .min_by(|(_, a), (_, b)| a.expected_ms(bytes).total_cmp(&b.expected_ms(bytes)));
            let best_peer = best.map(|(node, _)| *node);
            let best_held = best.map_or(0, |(_, source)| source.held_at(now));
            let best_ms = best.map(|(_, source)| source.expected_ms(bytes));
            let within_lead = index < from + lead_chunks;
            let origin_free = self.in_flight(&self.origin) < self.config.requests_origin;
            // The origin only when the best peer would be late: its expected completion, plus
            // a safety margin, past the moment the range starts playing.
            let origin_sooner = best_ms.is_none_or(|peer_ms| {
                self.expected_ms(&self.origin, bytes) < peer_ms
                    && self.due_in_ms(index) < peer_ms + self.config.peer_margin_ms as f64
            });
            let choice = if peers.is_empty() {
                if !self.search_done && index >= from + search_chunks {
                    // Peers may still turn up: do not spend the origin far ahead yet.
                    break;
                }
                origin_free.then_some(self.origin)
            } else if within_lead && origin_free && origin_sooner {
                Some(self.origin)
            } else {
                best_peer
            };
            // The origin never fetches past the limit that let it be chosen.
            if choice == Some(self.origin) && !(peers.is_empty() && self.search_done) {
                let limit = if peers.is_empty() {
                    from + search_chunks
                } else {
                    from + lead_chunks
                };
                end = end.min(limit.max(index + 1));
            }
            // A partial holder is asked for no more than it holds (the choice, when not the
            // origin, is the best peer).
            if choice.is_some_and(|source| source != self.origin) {
                end = end.min(u32::try_from(best_held).unwrap_or(u32::MAX));
            }
            // Past the origin's lead with no peer free that holds this range, no later range
            // finds one either (a partial holder holds less of later chunks): done.
            if choice.is_none() && best_peer.is_none() && !within_lead && !peers.is_empty() {
                break;
            }
            match choice {
                Some(source) => {
                    let action = self.new_request(now, source, index, end - index);
                    if let Action::Fetch { id, .. } = action {
                        for i in index..end {
                            self.chunks[i as usize] = Chunk::Requested { request: id };
                        }
                    }
                    actions.push(action);
                    index = end;
                }
                None => {
                    // Nobody free now: the rest waits for the next poll.
                    if peers.is_empty() || !origin_free {
                        break;
                    }
                    index = end;
                }
            }
        }
        let no_peers = peers.is_empty();
        self.peers = peers;
        // Peers ran out (all banned or none found) with chunks still to come: look again.
        // (Only once the previous lookup has answered: one lookup in flight at a time.
        // Chunks behind the play head, skipped by a seek or a later start, are no reason.)
        if no_peers
            && self.search_done
            && self.requests.is_empty()
            && self.first_missing(from).is_some()
        {
            self.peers_asked = false;
        }

        // 4. Prefetch the next track near the end.
        if !self.prefetch_sent
            && let Some(plan) = &self.plan
            && plan.duration_ms.saturating_sub(self.position_ms)
                <= self.config.prefetch_remaining_ms
            && self.head == Head::Playing
        {
            self.prefetch_sent = true;
            actions.push(Action::PrefetchNext);
        }
        actions
    }

    /// When to call [`Scheduler::poll`] next if no event comes first: the earliest moment
    /// at which a poll would act or emit a player event without anything new happening,
    /// or `None` when nothing will until an event (paused with nothing in flight, finished,
    /// no track). Call it after every poll or event; it may be `now` (poll again at once).
    ///
    /// What moves without an event: a request's stall deadline; the play head (it stalls at
    /// the first chunk not held, finishes at the end, passes the prefetch mark, and carries
    /// the opening, urgent, lead and search windows onto chunks still to be asked for); and
    /// a partial holder's prefix growing over the first chunk nobody has been asked for.
    /// Polling at these moments does exactly what polling every millisecond would (a test
    /// drives both and compares every action and event), so drivers need no timer of
    /// their own.
    pub fn poll_timeout(&self, now: u64) -> Option<u64> {
        let plan = self.plan.as_ref()?;
        if self.head == Head::Finished {
            return None;
        }
        if !self.peers_asked || (!self.delivered_told && self.all_held()) {
            return Some(now);
        }
        let mut wake = self
            .requests
            .values()
            .map(|request| request.last_progress_ms + self.config.stall_ms)
            .min()
            .unwrap_or(u64::MAX);
        let chunks = self.chunks.len() as u32;
        let from = self.chunk_at(self.position_ms);
        if self.urgent_due(from) {
            return Some(now);
        }
        let first_missing = self.first_missing(from);
        match self.head {
            Head::Buffering if self.playable(from) => return Some(now),
            Head::Playing => {
                // The moment the head enters chunk `index` if every chunk before it is held.
                let reach = |index: u32| -> u64 {
                    self.head_at_ms + self.chunk_start(index).saturating_sub(self.position_ms)
                };
                // It stops one millisecond into the first chunk not held, or at the end.
                let unheld = Some(self.first_unheld(from)).filter(|&index| index < chunks);
                wake = wake.min(match unheld {
                    Some(index) if index < self.group_end(from) => self.head_at_ms + 1,
                    Some(index) => reach(index) + 1,
                    None => self.head_at_ms + plan.duration_ms.saturating_sub(self.position_ms),
                });
                // Chunks that start at the very end play for no time: the head finishes
                // there rather than stalling.
                wake =
                    wake.min(self.head_at_ms + plan.duration_ms.saturating_sub(self.position_ms));
                if !self.prefetch_sent {
                    let mark = plan
                        .duration_ms
                        .saturating_sub(self.config.prefetch_remaining_ms);
                    wake = wake.min(self.head_at_ms + mark.saturating_sub(self.position_ms));
                }
                // A window reaching a chunk still to be asked for, or one out with a peer.
                // Each is the chunk whose entry brings it into the window.
                let mut enters = [None; 4];
                if let Some(index) = first_missing {
                    // Counted in chunks from `from`, which is always the first of the chunks
                    // sharing a start: the window reaches `index` when the head enters the
                    // first such chunk at or past this one.
                    let mut opening = (index + 1).saturating_sub(self.config.opening_chunks);
                    if opening > 0
                        && opening < chunks
                        && self.chunk_start(opening - 1) == self.chunk_start(opening)
                    {
                        opening = self.group_end(opening);
                    }
                    enters[0] = Some(opening);
                    enters[1] = Some(self.enters_window(index, self.config.origin_lead_ms));
                    enters[2] = Some(self.enters_window(index, self.config.search_lead_ms));
                }
                // Only chunks inside a request to a peer can be out with one, and none that
                // is held.
                let peer_end = self
                    .requests
                    .values()
                    .filter(|request| request.source != self.origin)
                    .map(|request| request.first + request.count)
                    .max()
                    .unwrap_or(0)
                    .min(chunks);
                let out_with_peer = (self.first_unheld(from)..peer_end).find(|&i| {
                    self.urgent[i as usize].is_none()
                        && matches!(self.chunks[i as usize], Chunk::Requested { request }
                            if self.requests.get(&request).is_some_and(|r| r.source != self.origin))
                });
                if let Some(index) = out_with_peer {
                    enters[3] = Some(self.enters_window(index, self.config.urgent_ms));
                }
                for enter in enters.into_iter().flatten() {
                    if enter > from {
                        wake = wake.min(reach(enter));
                    }
                }
            }
            _ => {}
        }
        // A partial holder's prefix growing over the first chunk nobody was asked for.
        if let Some(index) = first_missing {
            for source in self.sources.values() {
                let Some(prefix) = source.partial else {
                    continue;
                };
                if source.banned || source.in_flight >= self.config.requests_per_peer {
                    continue;
                }
                if prefix.held_at(now) > u64::from(index) {
                    // Grown over it already: a poll now asks it.
                    return Some(now);
                }
                if prefix.per_min == 0 {
                    continue;
                }
                let need = u64::from(index) + 1 - u64::from(prefix.held);
                let per_min = u64::from(prefix.per_min);
                wake = wake.min(prefix.at_ms + (need * 60_000).div_ceil(per_min));
            }
        }
        (wake != u64::MAX).then_some(wake.max(now))
    }

    /// True when a poll now would ask the origin too for an urgent chunk (step 2 of
    /// [`Scheduler::poll`]): one within `urgent_ms` of the play head is out with a peer, not
    /// yet asked of the origin, and the origin takes another request. A poll that hands such
    /// a chunk to a peer (step 3 comes after step 2) leaves this true, whatever the head
    /// does, buffering included.
    fn urgent_due(&self, from: u32) -> bool {
        let Some(origin) = self.sources.get(&self.origin) else {
            return false;
        };
        if origin.in_flight >= self.config.requests_origin + 2 {
            return false;
        }
        let chunks = self.chunks.len() as u32;
        let urgent_end = (from + self.chunks_within(from, self.config.urgent_ms)).min(chunks);
        (from..urgent_end).any(|index| {
            self.urgent[index as usize].is_none()
                && matches!(self.chunks[index as usize], Chunk::Requested { request }
                    if self.requests.get(&request).is_some_and(|r| r.source != self.origin))
        })
    }

    fn assign_origin(&mut self, now: u64, from: u32, end: u32, actions: &mut Vec<Action>) {
        let mut index = from;
        while index < end {
            if self.chunks[index as usize] != Chunk::Missing {
                index += 1;
                continue;
            }
            let mut stop = index + 1;
            while stop < end && self.chunks[stop as usize] == Chunk::Missing {
                stop += 1;
            }
            let action = self.new_request(now, self.origin, index, stop - index);
            if let Action::Fetch { id, .. } = action {
                for i in index..stop {
                    self.chunks[i as usize] = Chunk::Requested { request: id };
                }
            }
            actions.push(action);
            index = stop;
        }
    }
}

/// Where each chunk of `plan` starts playing: the end of the chunk before it, from
/// [`TrackPlan::chunk_end_ms`], or the duration spread evenly when the plan carries no timing.
/// Milliseconds as `u32` (49 days): one is held per chunk of every track playing, a million
/// of them in the simulator.
fn chunk_starts(plan: &TrackPlan) -> Vec<u32> {
    let chunks = plan.chunks as usize;
    let duration = u32::try_from(plan.duration_ms).unwrap_or(u32::MAX);
    if plan.chunk_end_ms.len() == chunks {
        let mut reached = 0u32;
        plan.chunk_end_ms
            .iter()
            .map(|&end| {
                let start = reached.min(duration);
                // A manifest's timing never goes back; a plan's is not trusted to.
                reached = reached.max(end);
                start
            })
            .collect()
    } else {
        let chunk_ms = f64::from(duration) / chunks.max(1) as f64;
        (0..chunks)
            .map(|index| ((index as f64 * chunk_ms).ceil() as u32).min(duration))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no dependency): xorshift64*.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// A scheduler playing a random plan (chunks that span no time among them), some
    /// chunks held, the head playing somewhere in it.
    fn random_playing(seed: u64) -> (Scheduler, u64) {
        let mut g = Gen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let chunks = 1 + g.below(40) as u32;
        let mut ends = Vec::new();
        let mut reached = 0u32;
        for _ in 0..chunks {
            // A third of the chunks span no time.
            if g.below(3) != 0 {
                reached += 1 + g.below(900) as u32;
            }
            ends.push(reached);
        }
        let duration_ms = u64::from(reached) + g.below(3) * g.below(500);
        let held: Vec<bool> = (0..chunks).map(|_| g.below(4) != 0).collect();
        let plan = TrackPlan {
            chunks,
            chunk_bytes: vec![16_384; chunks as usize],
            duration_ms,
            chunk_end_ms: ends,
            cached: held,
            start_ms: 0,
        };
        let mut scheduler = Scheduler::new(SchedulerConfig::default(), NodeId([0; 32]));
        let _ = scheduler.play(0, plan);
        scheduler.position_ms = g.below(duration_ms + 1);
        scheduler.head = Head::Playing;
        scheduler.head_at_ms = 1_000;
        // Playing inside a chunk means that chunk could play: only its start otherwise.
        let from = scheduler.chunk_at(scheduler.position_ms);
        if !scheduler.playable(from) {
            scheduler.position_ms = scheduler.chunk_start(from).min(duration_ms);
        }
        let elapsed = match g.below(4) {
            0 => 0,
            1 => g.below(5),
            _ => g.below(duration_ms + 2_000),
        };
        (scheduler, 1_000 + elapsed)
    }

    #[test]
    fn the_head_moved_in_one_step_lands_where_walking_it_chunk_by_chunk_does() {
        let mut stalls = 0;
        let mut finishes = 0;
        for seed in 0..20_000 {
            let (mut stepped, now) = random_playing(seed);
            let (mut walked, _) = random_playing(seed);
            stepped.advance(now);
            let duration = walked.plan.as_ref().map_or(0, |plan| plan.duration_ms);
            let elapsed = now - walked.head_at_ms;
            walked.head_at_ms = now;
            walked.walk(now, elapsed, duration);
            assert_eq!(stepped.position_ms, walked.position_ms, "seed {seed}");
            assert_eq!(stepped.head, walked.head, "seed {seed}");
            assert_eq!(stepped.stats.stutters, walked.stats.stutters, "seed {seed}");
            assert_eq!(
                stepped.stall_started_ms, walked.stall_started_ms,
                "seed {seed}"
            );
            assert_eq!(stepped.events, walked.events, "seed {seed}");
            stalls += usize::from(walked.head == Head::Buffering);
            finishes += usize::from(walked.head == Head::Finished);
        }
        // Both outcomes are common among the cases.
        assert!(stalls > 1_000 && finishes > 1_000, "{stalls} {finishes}");
    }
}
