//! The devnet's listeners: each a [`Listener`] with its own QUIC endpoint (behind a relay
//! per region), cache and identity, playing sessions its [`ListenerPlan`] draws, decoding
//! what it plays, and recording every play with the checks on it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::client::OriginApi;
use client_lib::cache::ClientCache;
use client_lib::decode::{PcmSink, StreamDecoder};
use client_lib::listener::{Listener, ListenerConfig, QueueControl, QueueOutput};
use client_lib::offline::OfflineStore;
use client_lib::player::PlayOptions;
use client_lib::queue::Queue;
use client_lib::scheduler::{PlayerEvent, SourceKind};
use protocol::{Identity, NodeId, Quality, Region};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use transport::{Endpoint, Limits, Routes};

use super::workload::{ListenerPlan, Step, WorkloadConfig};
use super::{LinkMatrix, front};

/// A catalog track as the crowd sees it.
#[derive(Debug, Clone)]
pub struct Track {
    /// Its id.
    pub id: String,
    /// Region codes it is licensed in (empty: everywhere).
    pub markets: Vec<String>,
    /// Length of the ingested audio.
    pub duration_ms: u64,
}

/// What the crowd needs.
#[derive(Debug, Clone)]
pub struct CrowdConfig {
    pub seed: u64,
    pub regions: Vec<Region>,
    pub links: LinkMatrix,
    pub routes: Vec<Routes>,
    /// The origin's HTTP URL as seen from each region (its relay).
    pub region_base: Vec<String>,
    /// With a CDN edge: where each region's listeners fetch the origin's chunks (their
    /// relay to the edge).
    pub region_edge: Option<Vec<String>>,
    pub tracks: Vec<Track>,
    pub quality: Option<Quality>,
    pub workload: WorkloadConfig,
    pub arrival_window_s: u64,
    pub cache_root: PathBuf,
    /// Region index of every known node (listeners, super-nodes).
    pub node_regions: HashMap<NodeId, usize>,
    /// Listeners announce renditions they are still downloading (`--whole-holders-only`
    /// turns it off, to compare).
    pub partial_holders: bool,
}

/// Decoded audio ends up nowhere (its length is what counts), but the moment the first
/// samples of play `play` reach it is told: that is when the listener hears the track.
struct Discard {
    play: u64,
    first: Option<mpsc::UnboundedSender<(u64, Instant)>>,
}

impl PcmSink for Discard {
    fn format(&mut self, _: u32, _: u16) -> std::io::Result<()> {
        Ok(())
    }
    fn samples(&mut self, samples: &[i16]) -> std::io::Result<()> {
        if !samples.is_empty()
            && let Some(first) = self.first.take()
        {
            let _ = first.send((self.play, Instant::now()));
        }
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One play, as the summary counts it.
#[derive(Debug, Clone)]
pub struct PlayRecord {
    /// When the listener pressed play (or the queue moved on to it).
    pub started: Instant,
    pub listener: usize,
    pub track: usize,
    /// From pressing play (or the previous track's end) to the first audio.
    pub first_audio_ms: Option<f64>,
    /// `first_audio_ms` step by step, ms: the grant (press to authorization, with the
    /// opening chunks unless prefetched), the first chunk (authorization to the first
    /// decrypted audio handed on), the decoder (that audio to the first decoded samples).
    pub first_audio_steps_ms: Option<[f64; 3]>,
    /// Neither prefetched nor in the local cache: the opening came over the network.
    pub uncached: bool,
    pub stutters: u32,
    pub bytes_origin: u64,
    pub bytes_super_nodes: u64,
    pub bytes_peers: u64,
    pub bytes_cache: u64,
    /// Received twice (an urgent re-request raced a peer): wasted.
    pub bytes_duplicate: u64,
    /// Received on fetches abandoned before they handed their range over: wasted.
    pub bytes_cancelled: u64,
    pub skipped: bool,
    /// Why it could not be played.
    pub failed: Option<String>,
    /// Its listener crashed during it (not the network's fault; not counted as a play).
    pub killed: bool,
    /// Failed with the origin gone and no license for the track at hand (nothing could
    /// authorize it; not counted as a play).
    pub unlicensed: bool,
    /// Chunks' sources outside the track's markets (each counts once).
    pub region_violations: u64,
    /// Played out, and decoded audio's length differs from the ingested audio's.
    pub duration_mismatch: bool,
    pub duration_checked: bool,
}

impl PlayRecord {
    pub(crate) fn new(listener: usize, track: usize, started: Instant) -> Self {
        Self {
            started,
            listener,
            track,
            first_audio_ms: None,
            first_audio_steps_ms: None,
            uncached: false,
            stutters: 0,
            bytes_origin: 0,
            bytes_super_nodes: 0,
            bytes_peers: 0,
            bytes_cache: 0,
            bytes_duplicate: 0,
            bytes_cancelled: 0,
            skipped: false,
            failed: None,
            killed: false,
            unlicensed: false,
            region_violations: 0,
            duration_mismatch: false,
            duration_checked: false,
        }
    }
}

/// The running crowd.
pub struct Crowd {
    full: Arc<AtomicBool>,
    live: Arc<Live>,
    origin_down: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<PlayRecord>>>,
    online: Arc<AtomicUsize>,
    cancel: CancellationToken,
    finished: watch::Receiver<bool>,
    supervisor: tokio::task::JoinHandle<()>,
}

/// Counters for the live view, updated as plays start (records come when they end).
#[derive(Debug, Default)]
pub struct Live {
    /// Plays that reached their first audio.
    pub started: AtomicUsize,
    /// Plays between first audio and their end now.
    pub playing: AtomicUsize,
    /// First-audio times of every start so far, ms.
    pub first_audio_ms: Mutex<Vec<f64>>,
    /// Bytes of prefetched openings that went unused (wasted).
    pub prefetch_unused_bytes: AtomicU64,
    /// Chunk bytes every listener has received so far, by source, as they arrive.
    pub received: Arc<client_lib::player::Received>,
}

struct Shared {
    /// Set when [`RECORDS_MAX`] plays are recorded.
    full: Arc<AtomicBool>,
    live: Arc<Live>,
    origin_down: Arc<AtomicBool>,
    config: CrowdConfig,
    records: Arc<Mutex<Vec<PlayRecord>>>,
    online: Arc<AtomicUsize>,
    deadline: Option<Instant>,
    cancel: CancellationToken,
}

impl Crowd {
    /// Starts one task per listener.
    pub fn start(
        config: CrowdConfig,
        identities: Vec<Identity>,
        tokens: Vec<String>,
        deadline: Option<Instant>,
    ) -> Self {
        let records = Arc::new(Mutex::new(Vec::new()));
        let online = Arc::new(AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let origin_down = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::default());
        let full = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            full: full.clone(),
            live: live.clone(),
            origin_down: origin_down.clone(),
            config,
            records: records.clone(),
            online: online.clone(),
            deadline,
            cancel: cancel.clone(),
        });
        let (done_tx, finished) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for (index, (identity, token)) in identities.into_iter().zip(tokens).enumerate() {
            let shared = shared.clone();
            tasks.spawn(async move {
                if let Err(error) = life(&shared, index, identity, token).await {
                    eprintln!("listener {index} stopped: {error:#}");
                }
            });
        }
        let supervisor = tokio::spawn(async move {
            while tasks.join_next().await.is_some() {}
            let _ = done_tx.send(true);
        });
        Self {
            full,
            live,
            origin_down,
            records,
            online,
            cancel,
            finished,
            supervisor,
        }
    }

    /// Every play so far.
    pub fn snapshot(&self) -> Vec<PlayRecord> {
        self.records
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// The origin is gone (killed on purpose): failures to authorize a track the listener
    /// holds no license for are told apart from real failures from now on.
    pub fn origin_killed(&self) {
        self.origin_down.store(true, Ordering::Relaxed);
    }

    /// True once [`RECORDS_MAX`] plays are recorded (the crowd then stops).
    pub fn full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// The live counters.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// The live counters, to read after [`Crowd::stop`].
    pub fn live_shared(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// Listeners online now.
    pub fn online(&self) -> usize {
        self.online.load(Ordering::Relaxed)
    }

    /// Resolves when every listener is done (the run's end).
    pub async fn finished(&self) {
        let mut finished = self.finished.clone();
        let _ = finished.wait_for(|done| *done).await;
    }

    /// Ends every session now (plays in progress end as stopped), waits for them, and
    /// returns every play.
    pub async fn stop(self) -> Vec<PlayRecord> {
        self.cancel.cancel();
        if tokio::time::timeout(Duration::from_secs(15), self.finished())
            .await
            .is_err()
        {
            self.supervisor.abort();
        }
        self.snapshot()
    }
}

/// How an online period ended.
enum Ended {
    /// The session played out.
    Session,
    /// A crash (on purpose).
    Crashed,
    /// The run is over.
    Over,
}

async fn sleep_or_end(shared: &Shared, duration: Duration) -> bool {
    let until = Instant::now() + duration;
    let until = shared
        .deadline
        .map_or(until, |deadline| deadline.min(until));
    tokio::select! {
        () = tokio::time::sleep_until(until.into()) => {}
        () = shared.cancel.cancelled() => return false,
    }
    shared
        .deadline
        .is_none_or(|deadline| Instant::now() < deadline)
}

/// One listener from arrival to the run's end: online periods separated by leaving or
/// crashing.
async fn life(
    shared: &Shared,
    index: usize,
    identity: Identity,
    token: String,
) -> anyhow::Result<()> {
    let config = &shared.config;
    let region = index % config.regions.len();
    let code = config.regions[region].as_str().to_string();
    let playable: Vec<usize> = (0..config.tracks.len())
        .filter(|&track| {
            let markets = &config.tracks[track].markets;
            markets.is_empty() || markets.contains(&code)
        })
        .collect();
    anyhow::ensure!(!playable.is_empty(), "no track is licensed in {code}");
    let mut plan = ListenerPlan::new(
        config.seed,
        index as u64,
        playable.len(),
        config.workload.clone(),
    );
    if !sleep_or_end(
        shared,
        Duration::from_secs(plan.arrival_s(config.arrival_window_s)),
    )
    .await
    {
        return Ok(());
    }
    let home = config.cache_root.join(format!("listener-{index}"));
    let cache = Arc::new(ClientCache::open(&home.join("cache"), 1 << 30)?);
    let offline = OfflineStore::new(&home.join("offline"));
    let mut period = 0u64;
    loop {
        period += 1;
        let endpoint = Endpoint::bind_with_routes(
            &identity,
            SocketAddr::from((listener_ip(index), 0)),
            Limits::default(),
            config.routes[region].clone(),
        )?;
        let addr = endpoint.local_addr()?;
        let fronted = front(
            addr,
            region,
            &config.links,
            &config.routes,
            config.seed ^ ((index as u64) << 20) ^ period,
        )
        .await?;
        // Opening the app: it talks to the origin (home screen, network info) before the
        // listener presses play, so its HTTP and QUIC connections are warm, as in any player.
        let api = OriginApi::new(&config.region_base[region])?;
        if let Ok(Ok(network)) = tokio::time::timeout(Duration::from_secs(5), api.network()).await {
            let origin = network.origin;
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                endpoint.connect(origin.node, origin.addr),
            )
            .await;
        }
        // Behind an edge, the origin's chunks come over HTTPS through it (the connection
        // warmed the same way).
        let edge = match &config.region_edge {
            Some(bases) => {
                let http = api::client::http_client_builder()?.build()?;
                let _ = http
                    .get(format!("{}/healthz", bases[region]))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                Some(client_lib::edge::ChunkEdge::new(http).via(bases[region].clone()))
            }
            None => None,
        };
        let listener = Listener::new(
            api,
            token.clone(),
            endpoint.clone(),
            PlayOptions {
                cache: Some(cache.clone()),
                edge,
                received: Some(shared.live.received.clone()),
                ..PlayOptions::default()
            },
            ListenerConfig {
                quality: config.quality,
                offline: Some(offline.clone()),
                share: client_lib::serve::ServeConfig {
                    partial: config.partial_holders,
                    ..client_lib::serve::ServeConfig::default()
                },
                ..ListenerConfig::default()
            },
        );
        shared.online.fetch_add(1, Ordering::Relaxed);
        let crash_at = plan
            .next_crash_s()
            .map(|seconds| Instant::now() + Duration::from_secs_f64(seconds));
        let mut away = None;
        let ended = loop {
            let steps = plan.session();
            let before = shared.records.lock().map_or(0, |records| {
                records
                    .iter()
                    .filter(|play| play.listener == index && play.failed.is_none())
                    .count()
            });
            match session(
                shared, index, &listener, &offline, &playable, &steps, crash_at,
            )
            .await
            {
                Ended::Session => {
                    let played = shared.records.lock().map_or(0, |records| {
                        records
                            .iter()
                            .filter(|play| play.listener == index && play.failed.is_none())
                            .count()
                    });
                    // Nothing would play: a person waits a little before trying again.
                    if played == before
                        && !sleep_or_end(shared, Duration::from_secs(plan.down_s())).await
                    {
                        break Ended::Over;
                    }
                    if let Some(seconds) = plan.after_session() {
                        away = Some(seconds);
                        break Ended::Session;
                    }
                }
                other => break other,
            }
        };
        shared.online.fetch_sub(1, Ordering::Relaxed);
        for table in &config.routes {
            table.remove(&addr);
        }
        match ended {
            Ended::Crashed => {
                // No goodbye: its links go silent, its sockets vanish.
                for relay in &fronted.relays {
                    relay.cut();
                }
                drop(listener);
                drop(endpoint);
                drop(fronted);
                if !sleep_or_end(shared, Duration::from_secs(plan.down_s())).await {
                    return Ok(());
                }
            }
            Ended::Session => {
                endpoint.close();
                drop(fronted);
                let seconds = away.unwrap_or(1);
                if !sleep_or_end(shared, Duration::from_secs(seconds)).await {
                    return Ok(());
                }
            }
            Ended::Over => {
                endpoint.close();
                return Ok(());
            }
        }
    }
}

/// The play in progress.
struct Current {
    /// Counts the session's plays: matches the decoder's first-samples message to its play.
    play: u64,
    step: usize,
    decoder: Option<StreamDecoder>,
    pressed_at: Instant,
    /// When its authorization was at hand (the queue said it starts).
    granted_at: Instant,
    /// When its first decrypted audio was handed on.
    audio_at: Option<Instant>,
    first_audio_ms: Option<f64>,
    first_audio_steps_ms: Option<[f64; 3]>,
    prefetched: bool,
    skip_at: Option<Instant>,
}

async fn session(
    shared: &Shared,
    index: usize,
    listener: &Listener,
    offline: &OfflineStore,
    playable: &[usize],
    steps: &[Step],
    crash_at: Option<Instant>,
) -> Ended {
    let config = &shared.config;
    let ids: Vec<String> = steps
        .iter()
        .map(|step| config.tracks[playable[step.track]].id.clone())
        .collect();
    let Ok(mut queue) = Queue::new(ids, config.seed) else {
        return Ended::Session;
    };
    let (out_tx, mut outputs) = mpsc::channel(64);
    let (controls, control_rx) = mpsc::channel(8);
    let player = listener.clone();
    let task = tokio::spawn(async move { player.play_queue(&mut queue, out_tx, control_rx).await });
    let mut current: Option<Current> = None;
    let mut next_step = 0usize;
    let mut pressed_at = Instant::now();
    let mut stopping = false;
    let (first_pcm_tx, mut first_pcm) = mpsc::unbounded_channel::<(u64, Instant)>();
    let mut plays = 0u64;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    loop {
        let skip_at = current
            .as_ref()
            .and_then(|play| play.skip_at)
            .unwrap_or(far);
        let end_at = shared.deadline.unwrap_or(far);
        let crash = crash_at.unwrap_or(far);
        tokio::select! {
            // In order: a play's first samples are counted before its end is.
            biased;
            Some((play, at)) = first_pcm.recv() => {
                if let Some(current) = current.as_mut().filter(|current| current.play == play) {
                    heard(shared, steps, current, at);
                }
            }
            output = outputs.recv() => {
                let Some(output) = output else { break };
                match output {
                    QueueOutput::TrackStarted { gain_db, prefetched, .. } => {
                        plays += 1;
                        let sink = Discard { play: plays, first: Some(first_pcm_tx.clone()) };
                        let decoder = StreamDecoder::start(sink, gain_db).ok();
                        current = Some(Current {
                            play: plays,
                            step: next_step.min(steps.len().saturating_sub(1)),
                            decoder,
                            pressed_at,
                            granted_at: Instant::now(),
                            audio_at: None,
                            first_audio_ms: None,
                            first_audio_steps_ms: None,
                            prefetched,
                            skip_at: None,
                        });
                        next_step += 1;
                    }
                    QueueOutput::Audio(bytes) => {
                        if let Some(play) = current.as_mut() {
                            play.audio_at.get_or_insert_with(Instant::now);
                        }
                        if let Some(decoder) = current.as_ref().and_then(|play| play.decoder.as_ref()) {
                            tokio::task::block_in_place(|| decoder.push(bytes));
                        }
                    }
                    // Without a decoder (its thread could not start), the scheduler's start.
                    QueueOutput::Event(PlayerEvent::Started { .. }) => {
                        if let Some(play) = current.as_mut().filter(|play| play.decoder.is_none()) {
                            heard(shared, steps, play, Instant::now());
                        }
                    }
                    QueueOutput::TrackEnded { stats, skipped, sources, .. } => {
                        // The next track's start counts from this end, or from the skip
                        // that caused it.
                        if !skipped {
                            pressed_at = Instant::now();
                        }
                        if let Some(play) = current.take() {
                            ended_playing(shared, &play);
                            let track = playable[steps[play.step].track];
                            let decoded = match play.decoder {
                                Some(decoder) => tokio::task::spawn_blocking(move || decoder.finish())
                                    .await
                                    .ok()
                                    .and_then(Result::ok),
                                None => None,
                            };
                            let played_out = !skipped && !stopping;
                            let expected = config.tracks[track].duration_ms;
                            let (checked, mismatch) = match (played_out, decoded) {
                                (true, Some(summary)) => (true, summary.duration_ms().abs_diff(expected) > 60),
                                (true, None) => (true, true),
                                _ => (false, false),
                            };
                            let record = PlayRecord {
                                first_audio_ms: play.first_audio_ms,
                                first_audio_steps_ms: play.first_audio_steps_ms,
                                uncached: !play.prefetched && stats.bytes_cache == 0,
                                stutters: stats.stutters,
                                bytes_origin: stats.bytes_origin,
                                bytes_super_nodes: stats.bytes_super_nodes,
                                bytes_peers: stats.bytes_peers,
                                bytes_cache: stats.bytes_cache,
                                bytes_duplicate: stats.bytes_duplicate,
                                bytes_cancelled: stats.bytes_cancelled,
                                skipped: skipped && !stopping,
                                region_violations: violations(config, index, track, &sources),
                                duration_mismatch: mismatch,
                                duration_checked: checked,
                                ..PlayRecord::new(index, track, play.pressed_at)
                            };
                            push(shared, record);
                        }
                    }
                    QueueOutput::TrackFailed { error, .. } => {
                        let (step, failed_pressed) = match current.take() {
                            Some(play) => {
                                ended_playing(shared, &play);
                                (play.step, play.pressed_at)
                            }
                            None => {
                                next_step += 1;
                                (next_step - 1, pressed_at)
                            }
                        };
                        pressed_at = Instant::now();
                        if !stopping {
                            let track = playable[steps[step.min(steps.len() - 1)].track];
                            let unlicensed = shared.origin_down.load(Ordering::Relaxed)
                                && !licensed(offline, &config.tracks[track].id);
                            push(shared, PlayRecord {
                                failed: Some(error),
                                unlicensed,
                                ..PlayRecord::new(index, track, failed_pressed)
                            });
                        }
                    }
                    // One still ready when the run stops is not counted (nor is it in the
                    // simulator).
                    QueueOutput::PrefetchUnused { bytes, .. } if !stopping => {
                        shared.live.prefetch_unused_bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    QueueOutput::PrefetchUnused { .. } => {}
                    QueueOutput::Prefetched { .. } | QueueOutput::Seeked { .. } | QueueOutput::Event(_) => {}
                }
            }
            () = tokio::time::sleep_until(skip_at.into()), if !stopping => {
                if let Some(play) = current.as_mut() {
                    play.skip_at = None;
                }
                pressed_at = Instant::now();
                let _ = controls.send(QueueControl::Skip).await;
            }
            () = tokio::time::sleep_until(crash.into()), if !stopping => {
                task.abort();
                if let Some(play) = current.take() {
                    ended_playing(shared, &play);
                    push(shared, PlayRecord {
                        killed: true,
                        ..PlayRecord::new(index, playable[steps[play.step].track], play.pressed_at)
                    });
                }
                return Ended::Crashed;
            }
            () = tokio::time::sleep_until(end_at.into()), if !stopping => {
                stopping = true;
                let _ = controls.send(QueueControl::Stop).await;
            }
            () = shared.cancel.cancelled(), if !stopping => {
                stopping = true;
                let _ = controls.send(QueueControl::Stop).await;
            }
        }
    }
    let _ = task.await;
    if stopping {
        Ended::Over
    } else {
        Ended::Session
    }
}

/// The first samples of `play` reached the sink at `at`: its first audio, counted from
/// the press (or the skip, or the previous track's end) once.
fn heard(shared: &Shared, steps: &[Step], play: &mut Current, at: Instant) {
    if play.first_audio_ms.is_some() {
        return;
    }
    let ms = at.saturating_duration_since(play.pressed_at).as_secs_f64() * 1000.0;
    play.first_audio_ms = Some(ms);
    let between =
        |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1000.0;
    play.first_audio_steps_ms = play.audio_at.map(|audio| {
        [
            between(play.pressed_at, play.granted_at),
            between(play.granted_at, audio),
            between(audio, at),
        ]
    });
    shared.live.started.fetch_add(1, Ordering::Relaxed);
    shared.live.playing.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut all) = shared.live.first_audio_ms.lock()
        && all.len() < RECORDS_MAX
    {
        all.push(ms);
    }
    play.skip_at = steps
        .get(play.step)
        .and_then(|step| step.skip_after_s)
        .map(|seconds| Instant::now() + Duration::from_secs(seconds));
}

/// A play that had started is over.
fn ended_playing(shared: &Shared, play: &Current) {
    if play.first_audio_ms.is_some() {
        shared.live.playing.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether the listener holds a running license for `track_id` (a grant it remembers).
fn licensed(offline: &OfflineStore, track_id: &str) -> bool {
    let now = client_lib::player::unix_now().0;
    matches!(offline.recent(track_id, now), Ok(Some(_)))
}

/// Most plays one run records (about 150 MB). A run that gets there (days of a large
/// crowd) ends as if its duration were up.
pub const RECORDS_MAX: usize = 1_000_000;

fn push(shared: &Shared, record: PlayRecord) {
    let mut records = shared
        .records
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    if records.len() < RECORDS_MAX {
        records.push(record);
    }
    if records.len() >= RECORDS_MAX {
        shared.full.store(true, Ordering::Relaxed);
        shared.cancel.cancel();
    }
}

/// Sources of a play that break the track's region rule: a peer or super-node outside its
/// markets (or unknown), or the listener itself outside them.
fn violations(
    config: &CrowdConfig,
    listener: usize,
    track: usize,
    sources: &[(NodeId, SourceKind, u64)],
) -> u64 {
    let markets = &config.tracks[track].markets;
    if markets.is_empty() {
        return 0;
    }
    let allowed = |region: usize| {
        markets
            .iter()
            .any(|code| code == config.regions[region].as_str())
    };
    let mut found = u64::from(!allowed(listener % config.regions.len()));
    for (node, kind, bytes) in sources {
        if *kind == SourceKind::Origin || *bytes == 0 {
            continue;
        }
        match config.node_regions.get(node) {
            Some(&region) if allowed(region) => {}
            _ => found += 1,
        }
    }
    found
}

/// Listener `index`'s own loopback address (127.1.0.1, 127.1.0.2, ...): each listener is
/// its own host to the servers' per-address limits, as on a real network.
fn listener_ip(index: usize) -> [u8; 4] {
    [127, 1, (index / 250) as u8, (index % 250) as u8 + 1]
}
