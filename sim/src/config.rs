//! Scenarios: the TOML files in `sim/scenarios/`, their defaults, and `--set key=value`
//! overrides and sweeps.
//!
//! Every field has a default, so a scenario names only what it changes. Unknown keys are an
//! error (a typo must not silently run the default). [`Scenario::validate`] checks ranges and
//! the bounds the engine relies on.

use serde::{Deserialize, Serialize};

/// Most peers a run may have (memory: ~1.1 KiB per peer with a warm cache of 250 tracks).
pub const PEERS_MAX: u32 = 2_000_000;
/// Most tracks in a catalog (the popularity table is 8 bytes per track).
pub const TRACKS_MAX: u32 = 20_000_000;
/// Most regions.
pub const REGIONS_MAX: usize = 16;
/// Longest run, simulated seconds (a week).
pub const DURATION_S_MAX: u64 = 7 * 86_400;
/// Most runs one sweep may expand to.
pub const SWEEP_RUNS_MAX: usize = 256;
/// Largest scenario file read, bytes.
pub const SCENARIO_BYTES_MAX: u64 = 1 << 20;
/// Most per-play records kept for `plays.csv` (~80 bytes each in memory).
pub const PLAY_RECORDS_MAX: u64 = 20_000_000;
/// Most tracker outages in a scenario.
pub const OUTAGES_MAX: usize = 1_000;

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file is not valid TOML, or a value has the wrong type, or a key is unknown.
    #[error("scenario: {0}")]
    Parse(String),
    /// A value is out of range.
    #[error("scenario: {0}")]
    Invalid(String),
    /// A `--set` argument is malformed.
    #[error("--set {0}")]
    Set(String),
}

fn invalid(message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid(message.into())
}

/// A whole scenario. See `sim/scenarios/*.toml` for commented examples.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Short name, printed in summaries.
    pub name: String,
    /// What it models.
    pub description: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// Listener peers (super-nodes come on top).
    pub peers: u32,
    /// Simulated time, seconds.
    pub duration_s: u64,
    /// Plays that start before this are simulated but not counted (caches and the tracker
    /// fill up first).
    pub measure_from_s: u64,
    /// The hour of the day (UTC) at which the run starts, for the daily curve.
    pub start_utc_h: f64,
    /// The catalog.
    pub catalog: Catalog,
    /// New releases with popularity spikes.
    pub releases: Vec<Release>,
    /// How listeners listen.
    pub sessions: Sessions,
    /// Regions: where peers are, their share and time zone.
    pub regions: Vec<RegionSpec>,
    /// Latency, loss, origin and tracker placement.
    pub network: Network,
    /// Kinds of listener peers (bandwidth, NAT, cache).
    pub classes: Vec<PeerClass>,
    /// Super-nodes.
    pub super_nodes: SuperNodes,
    /// Tracker settings and outages.
    pub tracker: TrackerSpec,
    /// Client settings (the scheduler and the driver around it).
    pub client: Client,
    /// Faults.
    pub faults: Faults,
    /// What goes into `--out`.
    pub output: Output,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "default".into(),
            description: String::new(),
            seed: 1,
            peers: 10_000,
            duration_s: 3_600,
            measure_from_s: 0,
            start_utc_h: 0.0,
            catalog: Catalog::default(),
            releases: Vec::new(),
            sessions: Sessions::default(),
            regions: vec![
                RegionSpec {
                    name: "SE".into(),
                    share: 0.5,
                    utc_offset_h: 1.0,
                },
                RegionSpec {
                    name: "US".into(),
                    share: 0.5,
                    utc_offset_h: -5.0,
                },
            ],
            network: Network::default(),
            classes: vec![PeerClass::default()],
            super_nodes: SuperNodes::default(),
            tracker: TrackerSpec::default(),
            client: Client::default(),
            faults: Faults::default(),
            output: Output::default(),
        }
    }
}

/// The catalog.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Catalog {
    /// Tracks (releases come on top).
    pub tracks: u32,
    /// Zipf exponent of popularity (≈1.0: 12% of tracks get ~88% of plays).
    pub zipf_alpha: f64,
    /// Track lengths, drawn uniformly from this range, seconds.
    pub track_seconds: [u32; 2],
    /// Bitrate of the rendition everyone plays, kbit/s.
    pub bitrate_kbps: u32,
    /// Plaintext bytes per chunk (ciphertext adds a 16-byte tag).
    pub chunk_bytes: u32,
    /// How much a chunk's play time varies around the average (a coefficient of variation):
    /// Vorbis is variable-rate, so a loud stretch packs fewer milliseconds into a chunk than a
    /// quiet one. The play head spends each chunk's own time, as the client does with the
    /// manifest's timing. 0.09 is what the devnet's synthesized tracks measure (0.07-0.11
    /// over the three qualities); music with quiet and loud passages varies more.
    pub vbr_spread: f64,
    /// Bytes of stream headers at the start of each rendition: they carry no audio, so the
    /// first chunk plays for less (about half a chunk with the devnet's Vorbis files).
    pub header_bytes: u32,
    /// Share of tracks licensed only in the first region (the region rule the checker
    /// watches).
    pub restricted_share: f64,
    /// Playlists listeners play in order.
    pub playlists: u32,
    /// Tracks per playlist.
    pub playlist_tracks: u32,
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            tracks: 100_000,
            zipf_alpha: 1.0,
            track_seconds: [150, 330],
            bitrate_kbps: 160,
            chunk_bytes: 16_384,
            vbr_spread: 0.09,
            header_bytes: 7_700,
            restricted_share: 0.05,
            playlists: 10_000,
            playlist_tracks: 40,
        }
    }
}

/// A batch of new tracks whose popularity spikes, then decays.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Release {
    /// When it comes out, seconds into the run.
    pub at_s: u64,
    /// New tracks.
    pub tracks: u32,
    /// Share of all plays that go to them at the moment of release.
    pub share: f64,
    /// The share halves every this many seconds.
    pub half_life_s: u64,
}

impl Default for Release {
    fn default() -> Self {
        Self {
            at_s: 0,
            tracks: 10,
            share: 0.2,
            half_life_s: 3_600,
        }
    }
}

/// How listeners listen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Sessions {
    /// Sessions per listener per day, on average.
    pub per_day: f64,
    /// Weibull shape of the time between sessions (< 1: bursty).
    pub gap_shape: f64,
    /// Mean session length, seconds (the last track plays to its end).
    pub length_mean_s: f64,
    /// Weibull shape of session lengths.
    pub length_shape: f64,
    /// Share of sessions that play a playlist in order; the others are random access.
    pub playlist_share: f64,
    /// Share of plays that replay a track from the listener's own history (its cache).
    pub repeat_share: f64,
    /// Chance a play is skipped.
    pub skip_chance: f64,
    /// A skip happens this many seconds into the track (uniform).
    pub skip_after_s: [u32; 2],
    /// Time the app stays open (and serves peers) after a session, seconds.
    pub linger_s: u64,
    /// Diurnal swing of the session rate: 0 flat, 1 from zero at night to double at peak.
    pub diurnal_amplitude: f64,
    /// Local hour of the daily peak.
    pub peak_hour: f64,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            per_day: 2.0,
            gap_shape: 0.8,
            length_mean_s: 2_700.0,
            length_shape: 1.2,
            playlist_share: 0.5,
            repeat_share: 0.4,
            skip_chance: 0.15,
            skip_after_s: [5, 60],
            linger_s: 900,
            diurnal_amplitude: 0.6,
            peak_hour: 20.0,
        }
    }
}

/// A region.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RegionSpec {
    /// Two-letter code.
    pub name: String,
    /// Share of listeners here (shares are normalised).
    pub share: f64,
    /// Time zone, hours from UTC (for the diurnal load).
    pub utc_offset_h: f64,
}

impl Default for RegionSpec {
    fn default() -> Self {
        Self {
            name: "SE".into(),
            share: 1.0,
            utc_offset_h: 0.0,
        }
    }
}

/// The network model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Round trip within a region, ms (the diagonal when `rtt_ms` is empty).
    pub rtt_same_region_ms: f64,
    /// Round trip between regions, ms (off the diagonal when `rtt_ms` is empty).
    pub rtt_other_region_ms: f64,
    /// Full matrix of round trips, regions in order, ms (overrides the two above).
    pub rtt_ms: Vec<Vec<f64>>,
    /// Packet loss per direction within a region.
    pub loss_same_region: f64,
    /// Packet loss per direction between regions.
    pub loss_other_region: f64,
    /// Giving up on a peer that does not answer, ms.
    pub connect_timeout_ms: u64,
    /// Region of the origin (a name from `regions`).
    pub origin_region: String,
    /// The origin's upload capacity, Mbit/s, shared by its transfers.
    pub origin_mbps: f64,
    /// The origin's time to answer a play authorization, ms.
    pub origin_service_ms: u64,
    /// Region of the tracker.
    pub tracker_region: String,
    /// The tracker's time to answer, ms.
    pub tracker_service_ms: u64,
    /// How a transfer's chunks reach the scheduler: `analytic` (the default) or `chunks`.
    /// Both hand each chunk over at the moment it lands; `chunks` gives every chunk its own
    /// event and decision round, as a client sees them, while `analytic` has events only for
    /// the chunks whose arrival can change a decision (one the play head may be waiting for,
    /// the last one not held, the end of the transfer) and hands the others over when anything
    /// next looks. Same seed, same results: a test runs both and compares every play.
    pub delivery: Delivery,
}

/// How the engine hands a transfer's chunks to the scheduler ([`Network::delivery`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// An event only where a chunk's arrival can change a decision; the rest are worked out.
    #[default]
    Analytic,
    /// An event per chunk: the reference the analytic model is tested against.
    Chunks,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            rtt_same_region_ms: 30.0,
            rtt_other_region_ms: 120.0,
            rtt_ms: Vec::new(),
            loss_same_region: 0.001,
            loss_other_region: 0.005,
            connect_timeout_ms: 1_500,
            origin_region: String::new(),
            origin_mbps: 10_000.0,
            origin_service_ms: 5,
            tracker_region: String::new(),
            tracker_service_ms: 1,
            delivery: Delivery::Analytic,
        }
    }
}

/// A kind of listener peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PeerClass {
    /// Name.
    pub name: String,
    /// Share of listeners of this class (shares are normalised).
    pub share: f64,
    /// Download, Mbit/s.
    pub down_mbps: f64,
    /// Upload, Mbit/s.
    pub up_mbps: f64,
    /// Share reachable from outside (the rest sit behind NAT and only dial out).
    pub reachable: f64,
    /// Cache budget, MiB.
    pub cache_mib: u64,
    /// Tracks in the cache at the start (listening history).
    pub warm_tracks: u32,
    /// Uploads served at once.
    pub upload_slots: u32,
}

impl Default for PeerClass {
    fn default() -> Self {
        Self {
            name: "broadband".into(),
            share: 1.0,
            down_mbps: 20.0,
            up_mbps: 2.0,
            reachable: 0.7,
            cache_mib: 1_024,
            warm_tracks: 150,
            upload_slots: 4,
        }
    }
}

/// Super-nodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SuperNodes {
    /// Super-nodes in each region.
    pub per_region: u32,
    /// Upload, Mbit/s.
    pub up_mbps: f64,
    /// Download, Mbit/s.
    pub down_mbps: f64,
    /// Cache budget, GiB.
    pub cache_gib: f64,
    /// Share of the budget the tracker's popular list may pin.
    pub pin_fraction: f64,
    /// How often a super-node asks the tracker what is popular, seconds.
    pub popular_refresh_s: u64,
    /// Renditions it asks for.
    pub popular_want: u32,
    /// Fills running at once on each super-node (`policy::fill`; the node's `fills_at_once`).
    pub fills_at_once: u32,
    /// Uploads served at once.
    pub upload_slots: u32,
}

impl Default for SuperNodes {
    fn default() -> Self {
        Self {
            per_region: 2,
            up_mbps: 1_000.0,
            down_mbps: 1_000.0,
            cache_gib: 100.0,
            pin_fraction: 0.5,
            popular_refresh_s: 300,
            popular_want: 1_000,
            fills_at_once: 2,
            upload_slots: 200,
        }
    }
}

/// The tracker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerSpec {
    /// Most peers in one answer (Spotify 2010: 10).
    pub peers_returned: u32,
    /// Most recent holders kept per rendition (Spotify 2010: 20).
    pub peers_per_track: u32,
    /// Soft-state lifetime of an announce, seconds.
    pub announce_ttl_s: u64,
    /// Periods when the tracker does not answer: `[[start_s, end_s], ...]`.
    pub outages: Vec<[u64; 2]>,
    /// Rank holders by the delivered rates listeners report (as the tracker ships); `false`
    /// ranks by capped self-declared spare capacity alone (a what-if baseline).
    pub rank_by_delivered: bool,
}

impl Default for TrackerSpec {
    fn default() -> Self {
        Self {
            peers_returned: 10,
            peers_per_track: 20,
            announce_ttl_s: 120,
            outages: Vec::new(),
            rank_by_delivered: true,
        }
    }
}

/// The client: the scheduler's settings and the driver's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Client {
    /// Chunks the origin sends with the play authorization (at most 2, the origin's limit).
    pub opening_chunks: u32,
    /// And more, within the origin's limit of 2, until they reach this far into the audio,
    /// ms (`PlayRequest::opening_ms`; default `policy::scheduler::OPENING_MS`, as the
    /// client asks).
    pub opening_ms: u32,
    /// Audio prefetched for the next track, ms.
    pub prefetch_ms: u64,
    /// The decoder's start, ms: from the first decrypted audio handed to it to its first
    /// decoded samples, the last step of every start (the devnet measures it as
    /// `first_audio_steps_ms.decoder`).
    pub decoder_ms: u64,
    /// How often a listener re-announces while online, seconds (default: what `client-lib`
    /// does, `ANNOUNCE_REFRESH`).
    pub announce_every_s: u64,
    /// Most renditions in a listener's announce (its most recently played).
    pub announce_max: u32,
    /// Keep an unchanged set alive with a `Refresh` (its digest, not the set), announcing in
    /// full only when the set changed or the tracker answers `set_unknown`, as `client-lib`
    /// does (default `true`). `false` announces in full every time: the tracker then hashes
    /// every set it is sent, and the results are the same.
    pub refresh: bool,
    /// Announce the track being downloaded as a partial holder (what it holds from the
    /// first, and how fast that grows) from its first audio, as the client does
    /// (`ServeConfig::partial`, default `true`); `false` announces whole tracks only, as
    /// `chorus devnet --whole-holders-only` does.
    pub partial_holders: bool,
    /// A peer lookup that gets no answer (tracker down) is given up after this, ms.
    pub lookup_timeout_ms: u64,
    /// Prefetch the next track's opening from the holders the tracker lists first, the
    /// origin only for what they did not deliver within `policy::prefetch::PEERS_WAIT_MS`, as
    /// `client_lib::listener` does (DESIGN §6; default `true`). `false` is the what-if of an
    /// origin-only prefetch.
    pub prefetch_from_peers: bool,
    /// `SchedulerConfig::opening_chunks`: chunks the scheduler asks of the origin at once
    /// when a track starts (those the grant brought count as held).
    pub scheduler_opening_chunks: u32,
    /// `SchedulerConfig::origin_lead_ms`.
    pub origin_lead_ms: u64,
    /// `SchedulerConfig::urgent_ms`.
    pub urgent_ms: u64,
    /// `SchedulerConfig::stall_ms`.
    pub stall_ms: u64,
    /// `SchedulerConfig::range_chunks`.
    pub range_chunks: u32,
    /// `SchedulerConfig::requests_per_peer`.
    pub requests_per_peer: u32,
    /// `SchedulerConfig::prefetch_remaining_ms`.
    pub prefetch_remaining_ms: u64,
}

impl Default for Client {
    fn default() -> Self {
        let scheduler = policy::scheduler::SchedulerConfig::default();
        Self {
            opening_chunks: 1,
            opening_ms: policy::scheduler::OPENING_MS,
            prefetch_ms: policy::prefetch::PREFETCH_MS,
            decoder_ms: 10,
            announce_every_s: policy::announce::REFRESH_MS / 1_000,
            announce_max: 100,
            refresh: true,
            partial_holders: true,
            lookup_timeout_ms: 2_000,
            prefetch_from_peers: true,
            scheduler_opening_chunks: scheduler.opening_chunks,
            origin_lead_ms: scheduler.origin_lead_ms,
            urgent_ms: scheduler.urgent_ms,
            stall_ms: scheduler.stall_ms,
            range_chunks: scheduler.range_chunks,
            requests_per_peer: scheduler.requests_per_peer as u32,
            prefetch_remaining_ms: scheduler.prefetch_remaining_ms,
        }
    }
}

/// Faults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of sessions that end in a crash (links cut at a random moment, no goodbye).
    pub crash_share: f64,
    /// Crashes per listener per minute online, a Poisson process, as `chorus devnet
    /// --kill-peers` has them: the links cut, no goodbye, and the listener back
    /// `crash_down_s` later with its cache. 0 (the default): `crash_share` alone.
    pub crash_per_min: f64,
    /// How long a listener crashed by `crash_per_min` stays away, seconds (uniform between
    /// the two; the devnet's 3 to 10).
    pub crash_down_s: [u64; 2],
    /// Share of listeners that send corrupt chunks.
    pub corrupt_peers: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            crash_share: 0.0,
            crash_per_min: 0.0,
            crash_down_s: [3, 10],
            corrupt_peers: 0.0,
        }
    }
}

/// What goes into `--out`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Output {
    /// Time-series sampling interval, seconds.
    pub sample_s: u64,
    /// Most per-play records written to `plays.csv` (the first ones measured).
    pub play_records_max: u64,
}

impl Default for Output {
    fn default() -> Self {
        Self {
            sample_s: 60,
            play_records_max: 1_000_000,
        }
    }
}

impl Scenario {
    /// Parses a scenario from TOML text, applying `sets` (`key.path=value`) first.
    pub fn from_toml(text: &str, sets: &[(String, String)]) -> Result<Self, ScenarioError> {
        let mut value: toml::Value =
            toml::from_str(text).map_err(|error| ScenarioError::Parse(error.to_string()))?;
        for (key, raw) in sets {
            apply_set(&mut value, key, raw)?;
        }
        let scenario: Scenario = value
            .try_into()
            .map_err(|error: toml::de::Error| ScenarioError::Parse(error.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks ranges and bounds.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let share = |name: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(invalid(format!("{name} = {value}: must be within 0..=1")))
            }
        };
        if self.peers == 0 || self.peers > PEERS_MAX {
            return Err(invalid(format!("peers = {}: 1..={PEERS_MAX}", self.peers)));
        }
        if self.duration_s == 0 || self.duration_s > DURATION_S_MAX {
            return Err(invalid(format!(
                "duration_s = {}: 1..={DURATION_S_MAX}",
                self.duration_s
            )));
        }
        if self.measure_from_s > DURATION_S_MAX {
            return Err(invalid(format!(
                "measure_from_s = {}: at most {DURATION_S_MAX}",
                self.measure_from_s
            )));
        }
        if !(0.0..24.0).contains(&self.start_utc_h) {
            return Err(invalid("start_utc_h: 0..24"));
        }
        let catalog = &self.catalog;
        if catalog.tracks == 0 || catalog.tracks > TRACKS_MAX {
            return Err(invalid(format!("catalog.tracks: 1..={TRACKS_MAX}")));
        }
        if !(0.0..=3.0).contains(&catalog.zipf_alpha) {
            return Err(invalid("catalog.zipf_alpha: 0..=3"));
        }
        let [shortest, longest] = catalog.track_seconds;
        if shortest == 0 || shortest > longest || longest > 3_600 {
            return Err(invalid(
                "catalog.track_seconds: [shortest, longest] within 1..=3600",
            ));
        }
        if !(8..=2_000).contains(&catalog.bitrate_kbps) {
            return Err(invalid("catalog.bitrate_kbps: 8..=2000"));
        }
        if !(1_024..=1 << 20).contains(&catalog.chunk_bytes) {
            return Err(invalid("catalog.chunk_bytes: 1024..=1048576"));
        }
        if !(0.0..=1.0).contains(&catalog.vbr_spread) {
            return Err(invalid("catalog.vbr_spread: 0..=1"));
        }
        if catalog.header_bytes > 1 << 20 {
            return Err(invalid("catalog.header_bytes: at most 1048576"));
        }
        share("catalog.restricted_share", catalog.restricted_share)?;
        if catalog.playlists == 0 || catalog.playlist_tracks == 0 || catalog.playlist_tracks > 1_000
        {
            return Err(invalid(
                "catalog.playlists ≥ 1 and catalog.playlist_tracks within 1..=1000",
            ));
        }
        let release_tracks: u64 = self.releases.iter().map(|r| u64::from(r.tracks)).sum();
        if u64::from(catalog.tracks) + release_tracks > u64::from(TRACKS_MAX) {
            return Err(invalid(
                "catalog and releases together exceed the track bound",
            ));
        }
        for release in &self.releases {
            share("releases.share", release.share)?;
            if release.tracks == 0 || release.half_life_s == 0 {
                return Err(invalid("releases: tracks and half_life_s must be positive"));
            }
        }
        let sessions = &self.sessions;
        if !(sessions.per_day > 0.0 && sessions.per_day <= 100_000.0) {
            return Err(invalid("sessions.per_day: (0, 100000]"));
        }
        for (name, shape) in [
            ("sessions.gap_shape", sessions.gap_shape),
            ("sessions.length_shape", sessions.length_shape),
        ] {
            if !(0.1..=10.0).contains(&shape) {
                return Err(invalid(format!("{name}: 0.1..=10")));
            }
        }
        if !(sessions.length_mean_s >= 1.0 && sessions.length_mean_s <= 86_400.0) {
            return Err(invalid("sessions.length_mean_s: 1..=86400"));
        }
        share("sessions.playlist_share", sessions.playlist_share)?;
        share("sessions.repeat_share", sessions.repeat_share)?;
        share("sessions.skip_chance", sessions.skip_chance)?;
        share("sessions.diurnal_amplitude", sessions.diurnal_amplitude)?;
        // A skip at 0 s would start and end plays without time passing.
        if sessions.skip_after_s[0] == 0 || sessions.skip_after_s[0] > sessions.skip_after_s[1] {
            return Err(invalid(
                "sessions.skip_after_s: [earliest, latest], earliest at least 1 s",
            ));
        }
        if self.regions.is_empty() || self.regions.len() > REGIONS_MAX {
            return Err(invalid(format!("regions: 1..={REGIONS_MAX}")));
        }
        for region in &self.regions {
            let bytes = region.name.as_bytes();
            if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_uppercase) {
                return Err(invalid(format!(
                    "region {:?}: a two-letter upper-case code",
                    region.name
                )));
            }
            if !(region.share >= 0.0 && region.share.is_finite()) {
                return Err(invalid("regions.share: ≥ 0"));
            }
        }
        if self.regions.iter().map(|region| region.share).sum::<f64>() <= 0.0 {
            return Err(invalid("regions: shares sum to zero"));
        }
        let network = &self.network;
        let count = self.regions.len();
        if !network.rtt_ms.is_empty()
            && (network.rtt_ms.len() != count
                || network.rtt_ms.iter().any(|row| row.len() != count))
        {
            return Err(invalid(format!(
                "network.rtt_ms: a {count}×{count} matrix (regions in order)"
            )));
        }
        let rtts = network
            .rtt_ms
            .iter()
            .flatten()
            .chain([&network.rtt_same_region_ms, &network.rtt_other_region_ms]);
        for rtt in rtts {
            if !(*rtt > 0.0 && *rtt <= 5_000.0) {
                return Err(invalid("network round trips: (0, 5000] ms"));
            }
        }
        share("network.loss_same_region", network.loss_same_region)?;
        share("network.loss_other_region", network.loss_other_region)?;
        if network.loss_same_region >= 0.5 || network.loss_other_region >= 0.5 {
            return Err(invalid("network loss: below 0.5"));
        }
        if !(network.origin_mbps > 0.0 && network.origin_mbps.is_finite()) {
            return Err(invalid("network.origin_mbps: > 0"));
        }
        for name in [&network.origin_region, &network.tracker_region] {
            if !name.is_empty() && !self.regions.iter().any(|region| &region.name == name) {
                return Err(invalid(format!("network: unknown region {name:?}")));
            }
        }
        if self.classes.is_empty() || self.classes.len() > 16 {
            return Err(invalid("classes: 1..=16"));
        }
        for class in &self.classes {
            share("classes.reachable", class.reachable)?;
            if !(class.down_mbps > 0.0 && class.up_mbps > 0.0) {
                return Err(invalid("classes: bandwidths must be positive"));
            }
            if class.cache_mib > 1 << 20 || class.warm_tracks > 5_000 || class.upload_slots > 1_000
            {
                return Err(invalid(
                    "classes: cache_mib ≤ 1048576, warm_tracks ≤ 5000, upload_slots ≤ 1000",
                ));
            }
        }
        if self.classes.iter().map(|class| class.share).sum::<f64>() <= 0.0 {
            return Err(invalid("classes: shares sum to zero"));
        }
        let supers = &self.super_nodes;
        if supers.per_region > 1_000 {
            return Err(invalid("super_nodes.per_region ≤ 1000"));
        }
        if !(supers.up_mbps > 0.0 && supers.down_mbps > 0.0 && supers.cache_gib >= 0.0) {
            return Err(invalid("super_nodes: bandwidths positive, cache ≥ 0"));
        }
        share("super_nodes.pin_fraction", supers.pin_fraction)?;
        if supers.popular_refresh_s == 0
            || supers.popular_want == 0
            || supers.popular_want as usize > protocol::wire::POPULAR_LIST_MAX
            || supers.fills_at_once == 0
            || supers.fills_at_once > 64
            || supers.upload_slots == 0
            || supers.upload_slots > 10_000
        {
            return Err(invalid(format!(
                "super_nodes: popular_refresh_s > 0, popular_want 1..={}, fills_at_once 1..=64, upload_slots 1..=10000",
                protocol::wire::POPULAR_LIST_MAX
            )));
        }
        let tracker = &self.tracker;
        if tracker.peers_returned == 0
            || tracker.peers_returned as usize > protocol::wire::PEER_LIST_MAX
            || tracker.peers_per_track == 0
            || tracker.peers_per_track > 1_000
            || tracker.announce_ttl_s < 10
        {
            return Err(invalid(
                "tracker: peers_returned 1..=50, peers_per_track 1..=1000, announce_ttl_s ≥ 10",
            ));
        }
        if tracker.outages.iter().any(|[start, end]| start >= end) {
            return Err(invalid(
                "tracker.outages: [start_s, end_s] with start < end",
            ));
        }
        let client = &self.client;
        if client.announce_every_s == 0 || client.announce_every_s >= tracker.announce_ttl_s {
            return Err(invalid(
                "client.announce_every_s: positive and shorter than tracker.announce_ttl_s",
            ));
        }
        if client.announce_max as usize > protocol::wire::ANNOUNCE_RENDITIONS_MAX {
            return Err(invalid(format!(
                "client.announce_max ≤ {}",
                protocol::wire::ANNOUNCE_RENDITIONS_MAX
            )));
        }
        if client.range_chunks == 0
            || client.range_chunks > protocol::wire::RANGE_CHUNKS_MAX
            || client.requests_per_peer == 0
            || client.requests_per_peer > 64
            || client.opening_chunks > protocol::manifest::OPENING_CHUNKS_MAX
            || client.scheduler_opening_chunks > 64
            || client.opening_ms > 60_000
        {
            return Err(invalid(
                "client: range_chunks 1..=RANGE_CHUNKS_MAX, requests_per_peer 1..=64, opening_chunks ≤ 2, scheduler_opening_chunks ≤ 64, opening_ms ≤ 60000",
            ));
        }
        share("faults.crash_share", self.faults.crash_share)?;
        let [low, high] = self.faults.crash_down_s;
        if !(self.faults.crash_per_min.is_finite()
            && (0.0..=60.0).contains(&self.faults.crash_per_min))
            || low == 0
            || low > high
            || high > 86_400
        {
            return Err(invalid(
                "faults: crash_per_min 0..=60, crash_down_s [low, high] with 1 ≤ low ≤ high ≤ 86400",
            ));
        }
        share("faults.corrupt_peers", self.faults.corrupt_peers)?;
        if self.output.sample_s == 0 {
            return Err(invalid("output.sample_s: positive"));
        }
        if self.output.play_records_max > PLAY_RECORDS_MAX {
            return Err(invalid(format!(
                "output.play_records_max ≤ {PLAY_RECORDS_MAX}"
            )));
        }
        if self.tracker.outages.len() > OUTAGES_MAX {
            return Err(invalid(format!("tracker.outages: at most {OUTAGES_MAX}")));
        }
        Ok(())
    }

    /// Index of the region called `name`, or the first region when `name` is empty.
    pub fn region_index(&self, name: &str) -> usize {
        self.regions
            .iter()
            .position(|region| region.name == name)
            .unwrap_or(0)
    }

    /// Round trip between two regions, ms.
    pub fn rtt_ms(&self, from: usize, to: usize) -> f64 {
        let network = &self.network;
        if let Some(value) = network.rtt_ms.get(from).and_then(|row| row.get(to)) {
            return *value;
        }
        if from == to {
            network.rtt_same_region_ms
        } else {
            network.rtt_other_region_ms
        }
    }

    /// Loss per direction between two regions.
    pub fn loss(&self, from: usize, to: usize) -> f64 {
        if from == to {
            self.network.loss_same_region
        } else {
            self.network.loss_other_region
        }
    }
}

/// Keys set with a duration (`24h`, `90m`, `1h30m`, `45s`, `2d`, or plain seconds) that
/// stand for the scenario's field of the same name in seconds.
const DURATION_KEYS: [(&str, &str); 2] = [
    ("duration", "duration_s"),
    ("measure_from", "measure_from_s"),
];

/// Seconds in a duration such as `24h`, `1h30m`, `90m`, `2d`, `45s` or `3600` (seconds),
/// rounded to the second ([`parse_duration`]).
pub fn parse_duration_s(text: &str) -> Result<u64, String> {
    parse_duration(text).map(|duration| duration.as_secs_f64().round() as u64)
}

/// A duration as people write it, for every flag and key of the project that takes one:
/// `24h`, `1h30m`, `90m`, `2d`, `45s`, `500ms`, `0.5h`, or a plain number of seconds
/// (`3600`, `1.5`). Whole or decimal numbers, each with a unit (`ms`, `s`, `m` or `min`, `h`,
/// `d`), summed in any order. At most 10^12 seconds, so no product in milliseconds
/// overflows; callers bound it further (a scenario at 7 days).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty duration".into());
    }
    const SECONDS_MAX: f64 = 1e12;
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let letters = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(letters);
        if number.is_empty() {
            return Err(format!(
                "{text:?} is not a duration such as 120s, 5m, 1h30m or 500ms"
            ));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{text:?}: {number:?} is not a number"))?;
        let scale = match unit {
            "" if digits == text.len() => 1.0,
            "" => return Err(format!("{text:?}: {number} has no unit (ms, s, m, h, d)")),
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3_600.0,
            "d" => 86_400.0,
            _ => {
                return Err(format!("{text:?}: {unit:?} is not a unit (ms, s, m, h, d)"));
            }
        };
        total += value * scale;
        rest = after;
    }
    if !(total.is_finite() && total < SECONDS_MAX) {
        return Err(format!("{text:?}: too long"));
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

/// Sets `key` (a dotted path such as `sessions.skip_chance` or `classes.0.up_mbps`) to `raw`,
/// parsed as a TOML value (a bare word that is not one becomes a string). `duration` and
/// `measure_from` take a duration (`24h`) and set `duration_s` and `measure_from_s`.
fn apply_set(root: &mut toml::Value, key: &str, raw: &str) -> Result<(), ScenarioError> {
    if let Some((_, field)) = DURATION_KEYS.iter().find(|(name, _)| *name == key) {
        let seconds =
            parse_duration_s(raw).map_err(|why| ScenarioError::Set(format!("{key}: {why}")))?;
        let seconds = i64::try_from(seconds)
            .map_err(|_| ScenarioError::Set(format!("{key}: {raw:?} is too long")))?;
        return apply_set(root, field, &seconds.to_string());
    }
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|part| part.is_empty()) {
        return Err(ScenarioError::Set(format!(
            "{key:?}: an empty part in the key"
        )));
    }
    let mut node = root;
    for (depth, part) in parts.iter().enumerate() {
        let last = depth + 1 == parts.len();
        node = match node {
            toml::Value::Table(table) => {
                if last {
                    table.insert((*part).to_string(), parsed);
                    return Ok(());
                }
                // Tables and arrays of tables missing from the file take their defaults:
                // write an empty table and let serde's defaults fill it.
                table
                    .entry((*part).to_string())
                    .or_insert_with(|| default_child(&parts[..=depth]))
            }
            toml::Value::Array(items) => {
                let index: usize = part.parse().map_err(|_| {
                    ScenarioError::Set(format!("{key:?}: {part:?} is not an array index"))
                })?;
                let entries = items.len();
                let Some(item) = items.get_mut(index) else {
                    return Err(ScenarioError::Set(format!(
                        "{key:?}: index {index} beyond the {entries} entries"
                    )));
                };
                if last {
                    *item = parsed;
                    return Ok(());
                }
                item
            }
            _ => {
                return Err(ScenarioError::Set(format!(
                    "{key:?}: {part:?} is inside a value, not a table"
                )));
            }
        };
    }
    Ok(())
}

/// The default value of a table missing from the file, as TOML (so `--set classes.0.x=..`
/// works on a scenario that does not list classes).
fn default_child(path: &[&str]) -> toml::Value {
    let defaults = toml::Value::try_from(Scenario::default())
        .unwrap_or(toml::Value::Table(toml::Table::new()));
    let mut node = &defaults;
    for part in path {
        let next = match node {
            toml::Value::Table(table) => table.get(*part),
            toml::Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(value) => node = value,
            None => return toml::Value::Table(toml::Table::new()),
        }
    }
    node.clone()
}

/// Expands `--set` arguments into runs: `key=value` is one value, `key=a,b,c` a list, and
/// `key=start..end:step` (numbers, end included) a range. Several swept keys give their
/// cartesian product, first key outermost. A value that starts with `[` or a quote is one
/// TOML value, commas and all.
pub fn expand_sets(args: &[String]) -> Result<Vec<Vec<(String, String)>>, ScenarioError> {
    let mut runs: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for arg in args {
        let (key, raw) = arg
            .split_once('=')
            .ok_or_else(|| ScenarioError::Set(format!("{arg:?}: expected key=value")))?;
        let key = key.trim();
        let raw = raw.trim();
        if key.is_empty() {
            return Err(ScenarioError::Set(format!("{arg:?}: empty key")));
        }
        let values = sweep_values(raw)
            .map_err(|message| ScenarioError::Set(format!("{arg:?}: {message}")))?;
        let mut next = Vec::new();
        for run in &runs {
            for value in &values {
                let mut run = run.clone();
                run.push((key.to_string(), value.clone()));
                next.push(run);
            }
        }
        if next.len() > SWEEP_RUNS_MAX {
            return Err(ScenarioError::Set(format!(
                "the sweep expands to more than {SWEEP_RUNS_MAX} runs"
            )));
        }
        runs = next;
    }
    Ok(runs)
}

fn sweep_values(raw: &str) -> Result<Vec<String>, String> {
    if raw.starts_with('[') || raw.starts_with('"') || raw.starts_with('\'') {
        return Ok(vec![raw.to_string()]);
    }
    if let Some((range, step)) = raw.split_once(':')
        && let Some((start, end)) = range.split_once("..")
    {
        let number = |text: &str| {
            text.trim()
                .parse::<f64>()
                .map_err(|_| format!("{text:?} is not a number"))
        };
        let (start, end, step) = (number(start)?, number(end)?, number(step)?);
        if step.is_nan() || step <= 0.0 || end < start {
            return Err("a range is start..end:step with start ≤ end and step > 0".into());
        }
        let count = ((end - start) / step + 1e-9).floor() as usize + 1;
        if count > SWEEP_RUNS_MAX {
            return Err(format!("more than {SWEEP_RUNS_MAX} values"));
        }
        let integers = [start, end, step].iter().all(|v| v.fract() == 0.0);
        return Ok((0..count)
            .map(|i| {
                let value = start + step * i as f64;
                if integers {
                    format!("{}", value as i64)
                } else {
                    // Rounded so 0.1 + 0.2 prints as 0.3.
                    format!("{}", (value * 1e9).round() / 1e9)
                }
            })
            .collect());
    }
    Ok(raw.split(',').map(|part| part.trim().to_string()).collect())
}

/// The scenarios shipped in `sim/scenarios/`, by name (built into the binary).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "spotify-2010",
        include_str!("../scenarios/spotify-2010.toml"),
    ),
    ("flash-crowd", include_str!("../scenarios/flash-crowd.toml")),
    ("churn-heavy", include_str!("../scenarios/churn-heavy.toml")),
    (
        "tracker-outage",
        include_str!("../scenarios/tracker-outage.toml"),
    ),
    (
        "devnet-validation",
        include_str!("../scenarios/devnet-validation.toml"),
    ),
];

/// The text of the built-in scenario `name` (with or without `.toml`).
pub fn builtin(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".toml").unwrap_or(name);
    let name = name.rsplit('/').next().unwrap_or(name);
    BUILTIN
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        for (text, seconds) in [
            ("24h", 86_400),
            ("1h30m", 5_400),
            ("90m", 5_400),
            ("45s", 45),
            ("2d", 172_800),
            ("3600", 3_600),
            ("0.5h", 1_800),
            ("2min", 120),
            (" 1d12h ", 129_600),
            ("1500ms", 2),
        ] {
            assert_eq!(parse_duration_s(text), Ok(seconds), "{text}");
        }
        for bad in [
            "",
            "h",
            "10x",
            "1h30",
            "1e400h",
            "99999999999999d",
            "9000000000000000000",
            "3 weeks",
            "1h 30m",
            "1..5s",
            "soon",
            "-5s",
        ] {
            assert!(parse_duration_s(bad).is_err(), "{bad:?}");
        }
        let day = Scenario::from_toml(
            "",
            &[
                ("duration".into(), "24h".into()),
                ("measure_from".into(), "30m".into()),
            ],
        )
        .unwrap();
        assert_eq!((day.duration_s, day.measure_from_s), (86_400, 1_800));
        let err = Scenario::from_toml("", &[("duration".into(), "soon".into())]).unwrap_err();
        assert!(err.to_string().contains("duration"), "{err}");
        // Far past any run: refused, not multiplied into milliseconds.
        let err = Scenario::from_toml("", &[("measure_from".into(), "999999999".into())]);
        assert!(err.unwrap_err().to_string().contains("measure_from_s"));
    }

    #[test]
    fn defaults_validate_and_sets_apply() {
        let scenario = Scenario::from_toml(
            "name = \"t\"\n[sessions]\nskip_chance = 0.3\n",
            &[
                ("sessions.skip_chance".into(), "0.5".into()),
                ("peers".into(), "1234".into()),
                ("classes.0.up_mbps".into(), "7.5".into()),
                ("network.origin_region".into(), "US".into()),
                ("tracker.outages".into(), "[[10, 20]]".into()),
            ],
        )
        .unwrap();
        assert_eq!(scenario.sessions.skip_chance, 0.5);
        assert_eq!(scenario.peers, 1234);
        assert_eq!(scenario.classes[0].up_mbps, 7.5);
        assert_eq!(scenario.network.origin_region, "US");
        assert_eq!(scenario.tracker.outages, vec![[10, 20]]);
    }

    #[test]
    fn bad_scenarios_are_refused_with_the_key() {
        let error = Scenario::from_toml("sesions = 3", &[]).unwrap_err();
        assert!(error.to_string().contains("sesions"), "{error}");
        let error =
            Scenario::from_toml("", &[("sessions.skip_chance".into(), "2".into())]).unwrap_err();
        assert!(error.to_string().contains("skip_chance"), "{error}");
        let error = Scenario::from_toml("", &[("peers".into(), "0".into())]).unwrap_err();
        assert!(error.to_string().contains("peers"), "{error}");
        let error =
            Scenario::from_toml("", &[("classes.9.up_mbps".into(), "1".into())]).unwrap_err();
        assert!(error.to_string().contains("index 9"), "{error}");
        assert!(Scenario::from_toml("[network]\nrtt_ms = [[1.0]]", &[]).is_err());
        assert!(Scenario::from_toml("peers = \"many\"", &[]).is_err());
    }

    #[test]
    fn sweeps_expand_lists_and_ranges() {
        let runs = expand_sets(&[
            "sessions.skip_chance=0.1..0.3:0.1".into(),
            "peers=100,200".into(),
            "network.rtt_ms=[[1, 2], [2, 1]]".into(),
        ])
        .unwrap();
        assert_eq!(runs.len(), 6);
        assert_eq!(runs[0][0].1, "0.1");
        assert_eq!(runs[5][0].1, "0.3");
        assert_eq!(runs[1][1].1, "200");
        assert_eq!(runs[0][2].1, "[[1, 2], [2, 1]]");
        assert!(expand_sets(&["nokey".into()]).is_err());
        assert!(expand_sets(&["a=1..0:1".into()]).is_err());
        assert!(expand_sets(&["a=0..1000000:1".into()]).is_err());
    }
}
