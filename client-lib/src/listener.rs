//! The listener: what a player app drives. It plays a [`Queue`] track after track through
//! [`crate::player`], takes pause/resume/skip/previous/stop while it plays, prefetches the next
//! track (its play authorization and opening chunks) when the scheduler says the current one
//! is nearly done, and picks each track's quality with [`Abr`] from the rate it measured.
//!
//! ```no_run
//! # async fn run(listener: client_lib::listener::Listener) -> anyhow::Result<()> {
//! use client_lib::listener::{QueueControl, QueueOutput};
//! use client_lib::queue::{Queue, Repeat};
//! let mut queue = Queue::new(vec!["TRACK_A".into(), "TRACK_B".into()], 42)?;
//! queue.set_repeat(Repeat::Off);
//! let (out, mut outputs) = tokio::sync::mpsc::channel(64);
//! let (controls, control_rx) = tokio::sync::mpsc::channel(8);
//! tokio::spawn(async move { listener.play_queue(&mut queue, out, control_rx).await });
//! while let Some(output) = outputs.recv().await {
//!     match output {
//!         QueueOutput::TrackStarted { track_id, .. } => println!("now playing {track_id}"),
//!         QueueOutput::Audio(bytes) => { /* hand to a decoder */ }
//!         _ => {}
//!     }
//! }
//! # drop(controls); Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use protocol::Quality;
use protocol::wire::Priority;
use tokio::sync::mpsc;
use transport::Endpoint;

use crate::abr::Abr;
use crate::cache::ClientCache;
use crate::events::EventKind;
use crate::fetch::{BanList, FetchReport, Source, fetch_chunks};
use crate::offline::{OfflineError, OfflineStore};
use crate::player::{self, Control, Output, PlayOptions};
use crate::queue::Queue;
use crate::scheduler::{PlayStats, PlayerEvent};
use api::client::{Grant, OriginApi, PlayParams};

/// What the app can tell a queue playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueControl {
    /// Stop the play head.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Next track now (also under repeat-one).
    Skip,
    /// The previous track.
    Previous,
    /// Move within the current track (milliseconds from its start).
    Seek(u64),
    /// End the whole queue now.
    Stop,
}

/// What a queue playback produces, in order.
#[derive(Debug, Clone)]
pub enum QueueOutput {
    /// A track starts; the audio that follows is its, until [`QueueOutput::TrackEnded`].
    TrackStarted {
        /// The track.
        track_id: String,
        /// Its loudness gain, dB (for the decoder).
        gain_db: f64,
        /// The rendition's quality.
        quality: Quality,
        /// Whether its authorization and opening chunks were prefetched.
        prefetched: bool,
    },
    /// Decrypted encoded audio of the current track, in order.
    Audio(Bytes),
    /// The play head moved within the current track: a decoder starts over, fed `header`,
    /// then the audio that follows (see [`Output::Seeked`]).
    Seeked {
        /// Where playback goes on.
        position_ms: u64,
        /// The stream headers.
        header: Bytes,
    },
    /// Something the listener would notice.
    Event(PlayerEvent),
    /// The next track's opening chunks are ready.
    Prefetched {
        /// The track.
        track_id: String,
        /// Chunks fetched ahead.
        chunks: u32,
    },
    /// A prefetched opening went unused (the listener went elsewhere, or stopped): the
    /// bytes it had fetched over the network were wasted.
    PrefetchUnused {
        /// The track it was for.
        track_id: String,
        /// Bytes it had from the origin, super-nodes and peers.
        bytes: u64,
    },
    /// A track is over (played out, skipped or stopped).
    TrackEnded {
        /// The track.
        track_id: String,
        /// Its counters.
        stats: PlayStats,
        /// Whether the listener left it before its end.
        skipped: bool,
        /// Who delivered its bytes over the network: node id, kind, bytes (see
        /// [`Output::Sources`]).
        sources: Vec<(protocol::NodeId, crate::scheduler::SourceKind, u64)>,
    },
    /// A track could not be played (not authorized, starved, …); the queue moves on.
    TrackFailed {
        /// The track.
        track_id: String,
        /// Why.
        error: String,
    },
}

/// Settings of a [`Listener`].
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Seconds of the next track fetched ahead when the current one is nearly done.
    pub prefetch_ms: u64,
    /// A fixed quality instead of adaptive bitrate.
    pub quality: Option<Quality>,
    /// Where the first track starts, milliseconds (the others start at 0).
    pub start_ms: u64,
    /// Opening chunks asked for with each play authorization (the first-chunk path: first
    /// audio one round trip after pressing play). 0 to 2; default 1.
    pub opening_chunks: u32,
    /// And more opening chunks, within the origin's limit of 2, until they reach this far
    /// into the audio (ms; 0: `opening_chunks` alone). Default
    /// [`policy::scheduler::OPENING_MS`].
    pub opening_ms: u32,
    /// Sharing the local cache with licensed peers while playing (needs the options' cache):
    /// upload slots by priority, an upload cap, off and metered switches. Default on.
    pub share: crate::serve::ServeConfig,
    /// Offline downloads: a downloaded track plays from here, with no origin contact, while
    /// its offline license lasts (and refuses to once it has run out).
    pub offline: Option<OfflineStore>,
    /// Where listening events go before they are sent to the origin (after each track; kept
    /// while offline). `None` reports nothing. Default: a log in memory.
    pub events: Option<crate::events::EventLog>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            prefetch_ms: policy::prefetch::PREFETCH_MS,
            quality: None,
            start_ms: 0,
            opening_chunks: 1,
            opening_ms: policy::scheduler::OPENING_MS,
            share: crate::serve::ServeConfig::default(),
            offline: None,
            events: Some(crate::events::EventLog::in_memory()),
        }
    }
}

/// How often a playing client re-announces its holdings: a third of the tracker's default
/// announce TTL (120 s), so one lost announce does not drop it from peer lists
/// ([`policy::announce`]).
pub const ANNOUNCE_REFRESH: std::time::Duration =
    std::time::Duration::from_millis(policy::announce::REFRESH_MS);

/// How long a prefetch waits for peers before it asks the origin for the opening.
pub const PREFETCH_PEERS_WAIT: std::time::Duration =
    std::time::Duration::from_millis(policy::prefetch::PEERS_WAIT_MS);

/// A logged-in listener on one origin.
#[derive(Debug, Clone)]
pub struct Listener {
    api: OriginApi,
    access_token: String,
    endpoint: Endpoint,
    options: PlayOptions,
    config: ListenerConfig,
}

/// A track ready to play: its grant and the chunks already at hand.
#[derive(Debug)]
pub struct Ready {
    /// The play authorization (or the offline one).
    pub grant: Grant,
    /// Chunks at hand, by index (from the grant, a prefetch or the offline store).
    pub chunks: HashMap<u32, Bytes>,
    /// Whether it plays from the offline store.
    pub offline: bool,
    /// Bytes of `chunks` that came from the origin ahead of playback (opening chunks in the
    /// grant, prefetch): they count as origin bytes, not cache bytes, in the track's stats.
    pub origin_bytes: u64,
    /// Bytes of `chunks` a prefetch had from super-nodes and from peers, counted as theirs.
    pub ahead_from: (u64, u64),
}

/// Where the play head is, from the wall clock, seeks and pauses: what the listener heard,
/// for the listening events.
#[derive(Debug)]
struct Heard {
    anchor_ms: u64,
    since: std::time::Instant,
    paused_at: Option<std::time::Instant>,
    paused: std::time::Duration,
}

impl Heard {
    fn new(start_ms: u64) -> Self {
        Self {
            anchor_ms: start_ms,
            since: std::time::Instant::now(),
            paused_at: None,
            paused: std::time::Duration::ZERO,
        }
    }

    fn seeked(&mut self, position_ms: u64) {
        let now = std::time::Instant::now();
        self.anchor_ms = position_ms;
        self.since = now;
        self.paused = std::time::Duration::ZERO;
        if self.paused_at.is_some() {
            self.paused_at = Some(now);
        }
    }

    fn pause(&mut self) {
        self.paused_at.get_or_insert_with(std::time::Instant::now);
    }

    fn resume(&mut self) {
        if let Some(at) = self.paused_at.take() {
            self.paused += at.elapsed();
        }
    }

    fn position_ms(&self) -> u64 {
        let paused = self.paused
            + self
                .paused_at
                .map_or(std::time::Duration::ZERO, |at| at.elapsed());
        let playing = self.since.elapsed().saturating_sub(paused);
        self.anchor_ms + playing.as_millis() as u64
    }
}

/// A prefetched track.
struct Prefetch {
    track_id: String,
    ready: Ready,
}

impl Prefetch {
    /// What is said of it when it goes unused.
    fn unused(self) -> QueueOutput {
        let ready = self.ready;
        QueueOutput::PrefetchUnused {
            track_id: self.track_id,
            bytes: ready.origin_bytes + ready.ahead_from.0 + ready.ahead_from.1,
        }
    }
}

impl Listener {
    /// A listener authorized by `access_token` on `api`, fetching over `endpoint`. An empty
    /// `access_token` means offline: only downloaded tracks play.
    pub fn new(
        api: OriginApi,
        access_token: String,
        endpoint: Endpoint,
        options: PlayOptions,
        config: ListenerConfig,
    ) -> Self {
        Self {
            api,
            access_token,
            endpoint,
            options,
            config,
        }
    }

    /// The grant for `track_id` and the chunks already at hand: from the offline store when
    /// the track is downloaded (all of them), else authorized by the origin (none). The
    /// flag says which.
    pub async fn grant_for(&self, track_id: &str, abr: &mut Abr) -> anyhow::Result<Ready> {
        if let Some(store) = &self.config.offline {
            let (store, id) = (store.clone(), track_id.to_string());
            let now = crate::player::unix_now().0;
            match tokio::task::spawn_blocking(move || store.load(&id, now)).await? {
                Ok(Some((grant, chunks))) => {
                    return Ok(Ready {
                        grant,
                        chunks,
                        offline: true,
                        origin_bytes: 0,
                        ahead_from: (0, 0),
                    });
                }
                Ok(None) => {}
                Err(expired @ OfflineError::Expired { .. }) => return Err(expired.into()),
                Err(error) => tracing::warn!(%error, "offline copy unusable; streaming instead"),
            }
        }
        let grant = if self.access_token.is_empty() {
            Err(anyhow::anyhow!(
                "{track_id} is not downloaded, and the origin is unreachable"
            ))
        } else {
            self.authorize(track_id, abr).await
        };
        let grant = match grant {
            Ok(grant) => grant,
            // No origin: a track played recently whose chunks are all in the cache still
            // plays while its license lasts.
            Err(error) if self.access_token.is_empty() || unreachable(&error) => {
                return match self.cached_play(track_id).await? {
                    Some(ready) => Ok(ready),
                    None => Err(error),
                };
            }
            Err(error) => return Err(error),
        };
        if let Some(store) = &self.config.offline {
            let (store, remembered) = (store.clone(), grant.clone());
            tokio::task::spawn_blocking(move || {
                if let Err(error) = store.remember(&remembered) {
                    tracing::debug!(%error, "could not remember the grant");
                }
            });
        }
        // The opening chunks came from the origin with the grant.
        let chunks: HashMap<u32, Bytes> = grant
            .opening
            .iter()
            .enumerate()
            .map(|(index, chunk)| (index as u32, chunk.clone()))
            .collect();
        let origin_bytes = chunks.values().map(|chunk| chunk.len() as u64).sum();
        // Kept like any fetched chunk, so the next play of the track needs no opening.
        if let Some(cache) = &self.options.cache {
            let cache = cache.clone();
            let opening: Vec<(protocol::ChunkId, Bytes)> = grant
                .opening
                .iter()
                .enumerate()
                .filter_map(|(index, chunk)| {
                    let id = grant.manifest.chunk_id(index as u32)?;
                    Some((*id, chunk.clone()))
                })
                .collect();
            tokio::task::spawn_blocking(move || {
                for (id, chunk) in opening {
                    if let Err(error) = cache.put(&id, &chunk) {
                        tracing::warn!(%error, "could not cache an opening chunk");
                    }
                }
            });
        }
        Ok(Ready {
            grant,
            chunks,
            offline: false,
            origin_bytes,
            ahead_from: (0, 0),
        })
    }

    /// A recently played track whose license still runs, for when the origin cannot be
    /// reached: ready to play with no network when every chunk is in the local cache, or
    /// (when the listener is online, only the origin is gone) with the rest from peers.
    async fn cached_play(&self, track_id: &str) -> anyhow::Result<Option<Ready>> {
        let (Some(store), Some(cache)) = (&self.config.offline, &self.options.cache) else {
            return Ok(None);
        };
        let online = !self.access_token.is_empty();
        let (store, cache, id) = (store.clone(), cache.clone(), track_id.to_string());
        let now = crate::player::unix_now().0;
        tokio::task::spawn_blocking(move || {
            let Some(grant) = store.recent(&id, now)? else {
                return Ok(None);
            };
            let chunks = cache.chunks_of(&grant.manifest);
            let whole = chunks.len() >= grant.manifest.chunk_count() as usize;
            // Partly cached: peers the tracker names hold the rest (the license still
            // lets them serve it to this client).
            if !whole && (grant.tracker.is_none() || !online) {
                return Ok(None);
            }
            Ok(Some(Ready {
                grant,
                chunks,
                offline: whole,
                origin_bytes: 0,
                ahead_from: (0, 0),
            }))
        })
        .await?
    }

    /// Authorizes `track_id` at the quality `abr` picks, stepping down when the tier refuses.
    pub async fn authorize(&self, track_id: &str, abr: &mut Abr) -> anyhow::Result<Grant> {
        // No opening chunks for a track whose opening is in the local cache already.
        let opening_chunks = match &self.options.cache {
            Some(cache) if self.config.opening_chunks > 0 => {
                let (cache, track) = (cache.clone(), track_id.to_string());
                let cached = tokio::task::spawn_blocking(move || cache.has_opening(&track))
                    .await
                    .unwrap_or(false);
                if cached {
                    0
                } else {
                    self.config.opening_chunks
                }
            }
            _ => self.config.opening_chunks,
        };
        // The first-chunk path on: the opening should last while the next chunk comes.
        let opening_ms = if opening_chunks > 0 {
            self.config.opening_ms
        } else {
            0
        };
        loop {
            let quality = abr.choose();
            let node = self.endpoint.node_id();
            let params = PlayParams {
                quality: quality.map(Quality::as_str),
                offline: false,
                opening_chunks,
                opening_ms,
            };
            match self
                .api
                .play_with(&self.access_token, track_id, &node, params)
                .await
            {
                Err(error) if is_tier_refusal(&error) => match quality {
                    Some(asked) if asked > Quality::Low => abr.refused_for_tier(asked),
                    _ => return Err(error),
                },
                other => return other,
            }
        }
    }

    /// Plays `queue` to its end (or until [`QueueControl::Stop`] or `out` closes), sending
    /// [`QueueOutput`]s. A track that cannot be played is reported and skipped; the queue
    /// gives up when every track in a row has failed.
    pub async fn play_queue(
        &self,
        queue: &mut Queue,
        out: mpsc::Sender<QueueOutput>,
        mut controls: mpsc::Receiver<QueueControl>,
    ) -> anyhow::Result<()> {
        let mut abr = Abr::new(self.config.quality);
        let mut prefetched: Option<Prefetch> = None;
        let mut failures_in_a_row = 0usize;
        let mut controls_open = true;
        let mut first_track = true;
        // Started with the first online grant: the origin's key and this client's region
        // come from it.
        let mut serving: Option<Arc<crate::serve::Serving>> = None;
        // The newest online grant, whose license the keep-alive announces present.
        let latest_grant: Arc<std::sync::Mutex<Option<Grant>>> = Arc::default();
        let mut _keep_alive: Option<AbortOnDrop<()>> = None;
        while let Some(track_id) = queue.current().map(str::to_string) {
            let found = match prefetched.take() {
                Some(ahead) if ahead.track_id == track_id => Ok((ahead.ready, true)),
                other => {
                    if let Some(unused) = other {
                        let _ = out.send(unused.unused()).await;
                    }
                    self.grant_for(&track_id, &mut abr)
                        .await
                        .map(|ready| (ready, false))
                }
            };
            let (grant, cached, origin_ahead, was_prefetched, offline, ahead_from) = match found {
                Ok((ready, prefetched)) => (
                    ready.grant,
                    ready.chunks,
                    ready.origin_bytes,
                    prefetched,
                    ready.offline,
                    ready.ahead_from,
                ),
                Err(error) => {
                    let _ = out
                        .send(QueueOutput::TrackFailed {
                            track_id,
                            error: format!("{error:#}"),
                        })
                        .await;
                    failures_in_a_row += 1;
                    if failures_in_a_row >= queue.order().len() {
                        anyhow::bail!("no track of the queue could be played");
                    }
                    queue.skip();
                    continue;
                }
            };
            if serving.is_none()
                && let Some(cache) = &self.options.cache
                && let Some(claims) = crate::serve::own_claims(&grant.license)
            {
                serving = crate::serve::Serving::start(
                    &self.endpoint,
                    cache.clone(),
                    grant.origin.node,
                    claims.region,
                    self.config.share.clone(),
                )
                .map(Arc::new);
                if let Some(serving) = &serving {
                    _keep_alive = Some(self.keep_announcing(serving.clone(), latest_grant.clone()));
                }
            }
            if !offline {
                *latest_grant
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner()) = Some(grant.clone());
            }
            // What came ahead of playback (the grant's opening chunks, a prefetch) was
            // received over the network too.
            if let Some(received) = &self.options.received {
                use std::sync::atomic::Ordering::Relaxed;
                received.origin.fetch_add(origin_ahead, Relaxed);
                received.super_nodes.fetch_add(ahead_from.0, Relaxed);
                received.peers.fetch_add(ahead_from.1, Relaxed);
            }
            let started = QueueOutput::TrackStarted {
                track_id: track_id.clone(),
                gain_db: grant.gain_db,
                quality: grant.manifest.body().quality,
                prefetched: was_prefetched,
            };
            if out.send(started).await.is_err() {
                return Ok(());
            }
            // A download starts (unless the cache has it all): from the first audio on, this
            // client is a partial holder that peers starting the same track can fetch from.
            let mut announce_on_start = false;
            if let (false, Some(serving), Some(cache)) = (offline, &serving, &self.options.cache) {
                let rendition = grant.manifest.id();
                let held = cache.held_prefix(&rendition);
                if held < grant.manifest.chunk_count() && self.config.share.partial {
                    let body = grant.manifest.body();
                    let play = policy::announce::play_per_min(
                        grant.manifest.chunk_count(),
                        body.duration_ms,
                    );
                    serving.downloading(rendition, held, play);
                    announce_on_start = true;
                }
            }
            let start_ms = if first_track { self.config.start_ms } else { 0 };
            let mut heard = Heard::new(start_ms);
            let play_id = crate::events::new_id();
            self.report(&play_id, EventKind::PlayStart, &track_id, start_ms);
            let (track_out, mut track_outputs) = mpsc::channel(64);
            let (track_controls, track_control_rx) = mpsc::channel(8);
            let mut playback = {
                let (endpoint, grant, mut options) =
                    (self.endpoint.clone(), grant.clone(), self.options.clone());
                options.start_ms = if first_track { self.config.start_ms } else { 0 };
                first_track = false;
                AbortOnDrop(tokio::spawn(async move {
                    player::play_with_controls(
                        &endpoint,
                        &grant,
                        cached,
                        options,
                        track_out,
                        track_control_rx,
                    )
                    .await
                }))
            };
            let (prefetch_tx, mut prefetch_rx) = mpsc::channel::<Prefetch>(1);
            let mut prefetch_task: Option<AbortOnDrop<()>> = None;
            // What the listener did to this track: None (it played out), or a move.
            let mut moved: Option<QueueControl> = None;
            let mut sources = Vec::new();
            loop {
                tokio::select! {
                    output = track_outputs.recv() => match output {
                        Some(Output::Audio(bytes)) => {
                            if out.send(QueueOutput::Audio(bytes)).await.is_err() {
                                let _ = track_controls.send(Control::Stop).await;
                                moved = Some(QueueControl::Stop);
                            }
                        }
                        Some(Output::Event(event)) => {
                            if matches!(event, PlayerEvent::Started { .. })
                                && std::mem::take(&mut announce_on_start)
                                && let Some(serving) = &serving
                            {
                                let (this, serving, grant) =
                                    (self.clone(), serving.clone(), grant.clone());
                                tokio::spawn(async move { this.announce(&serving, &grant).await });
                            }
                            let _ = out.send(QueueOutput::Event(event)).await;
                        }
                        Some(Output::PrefetchNext) => {
                            if let Some(next) = queue.peek_next().map(str::to_string)
                                && prefetch_task.is_none()
                            {
                                let this = self.clone();
                                let mut abr = abr.clone();
                                let sender = prefetch_tx.clone();
                                prefetch_task = Some(AbortOnDrop(tokio::spawn(async move {
                                    match this.prefetch(&next, &mut abr).await {
                                        Ok(ahead) => {
                                            let _ = sender.send(ahead).await;
                                        }
                                        Err(error) => {
                                            tracing::debug!(%error, next, "prefetch failed");
                                        }
                                    }
                                })));
                            }
                        }
                        Some(Output::Seeked { position_ms, header }) => {
                            heard.seeked(position_ms);
                            let _ = out.send(QueueOutput::Seeked { position_ms, header }).await;
                        }
                        Some(Output::Stats(_)) => {}
                        Some(Output::Sources(list)) => sources = list,
                        Some(Output::Downloaded) => {
                            // Peers may fetch it from here as soon as it is whole, not only
                            // once it has played out.
                            if let (false, Some(serving)) = (offline, &serving) {
                                let (this, serving, grant) =
                                    (self.clone(), serving.clone(), grant.clone());
                                tokio::spawn(async move { this.announce(&serving, &grant).await });
                            }
                        }
                        None => break,
                    },
                    Some(ahead) = prefetch_rx.recv() => {
                        let _ = out
                            .send(QueueOutput::Prefetched {
                                track_id: ahead.track_id.clone(),
                                chunks: ahead.ready.chunks.len() as u32,
                            })
                            .await;
                        prefetched = Some(ahead);
                    }
                    control = controls.recv(), if controls_open => match control {
                        Some(QueueControl::Pause) => {
                            heard.pause();
                            let _ = track_controls.send(Control::Pause).await;
                        }
                        Some(QueueControl::Resume) => {
                            heard.resume();
                            let _ = track_controls.send(Control::Resume).await;
                        }
                        Some(QueueControl::Seek(position_ms)) => {
                            let _ = track_controls.send(Control::Seek(position_ms)).await;
                        }
                        Some(moving) => {
                            let _ = track_controls.send(Control::Stop).await;
                            moved = Some(moving);
                        }
                        None => controls_open = false,
                    },
                }
            }
            if let Some(mut task) = prefetch_task {
                // A prefetch still under way when the track ends is worth finishing: it is
                // what makes the next start instant.
                if moved.is_none() {
                    let _ = (&mut task.0).await;
                    if let Ok(ahead) = prefetch_rx.try_recv() {
                        prefetched = Some(ahead);
                    }
                } else {
                    task.0.abort();
                }
            }
            let result = (&mut playback.0).await?;
            match result {
                Ok(mut stats) => {
                    failures_in_a_row = 0;
                    abr.observe(stats.rate_kbps);
                    // Chunks fetched from the origin ahead of playback were counted as cached
                    // by the scheduler; they are origin bytes.
                    let ahead = origin_ahead.min(stats.bytes_cache);
                    stats.bytes_cache -= ahead;
                    stats.bytes_origin += ahead;
                    // And those a prefetch had from super-nodes and peers are theirs.
                    let ahead = ahead_from.0.min(stats.bytes_cache);
                    stats.bytes_cache -= ahead;
                    stats.bytes_super_nodes += ahead;
                    let ahead = ahead_from.1.min(stats.bytes_cache);
                    stats.bytes_cache -= ahead;
                    stats.bytes_peers += ahead;
                    let duration = grant.manifest.body().duration_ms;
                    let reported = api::events::SourceBytes {
                        cache: stats.bytes_cache,
                        peers: stats.bytes_peers,
                        super_nodes: stats.bytes_super_nodes,
                        origin: stats.bytes_origin,
                    }
                    .clamped();
                    match moved {
                        None => self.report_with(
                            &play_id,
                            EventKind::Complete,
                            &track_id,
                            duration,
                            Some(reported),
                        ),
                        Some(_) => {
                            let position = heard.position_ms().min(duration);
                            self.report_with(
                                &play_id,
                                EventKind::Skip,
                                &track_id,
                                position,
                                Some(reported),
                            );
                        }
                    }
                    self.send_events();
                    let _ = out
                        .send(QueueOutput::TrackEnded {
                            track_id: track_id.clone(),
                            stats,
                            skipped: moved.is_some(),
                            sources,
                        })
                        .await;
                }
                Err(error) => {
                    failures_in_a_row += 1;
                    let _ = out
                        .send(QueueOutput::TrackFailed {
                            track_id: track_id.clone(),
                            error: error.to_string(),
                        })
                        .await;
                    if failures_in_a_row >= queue.order().len() {
                        anyhow::bail!("no track of the queue could be played");
                    }
                }
            }
            // Tell the tracker what this client now holds in full (peers may fetch it); not
            // when playing offline (the network is likely gone).
            // In the background: the next track does not wait on a tracker.
            if let (false, Some(serving)) = (offline, &serving) {
                let (this, serving, grant) = (self.clone(), serving.clone(), grant.clone());
                tokio::spawn(async move { this.announce(&serving, &grant).await });
            }
            match moved {
                None => {
                    queue.track_ended();
                }
                Some(QueueControl::Skip) => {
                    queue.skip();
                }
                Some(QueueControl::Previous) => {
                    queue.previous();
                }
                Some(_) => {
                    if let Some(unused) = prefetched.take() {
                        let _ = out.send(unused.unused()).await;
                    }
                    return Ok(());
                }
            }
        }
        if let Some(unused) = prefetched.take() {
            let _ = out.send(unused.unused()).await;
        }
        Ok(())
    }

    /// Queues a listening event of this play.
    fn report(&self, play_id: &str, kind: EventKind, track_id: &str, position_ms: u64) {
        self.report_with(play_id, kind, track_id, position_ms, None);
    }

    /// Queues a listening event of this play carrying where its bytes came from.
    fn report_with(
        &self,
        play_id: &str,
        kind: EventKind,
        track_id: &str,
        position_ms: u64,
        sources: Option<api::events::SourceBytes>,
    ) {
        if let Some(events) = &self.config.events {
            events.push(crate::events::Event {
                id: crate::events::new_id(),
                play_id: play_id.to_string(),
                kind,
                region: None,
                track_id: track_id.to_string(),
                position_ms,
                at: crate::events::now_ms(),
                sources,
            });
        }
    }

    /// Sends queued listening events in the background (offline: they wait).
    fn send_events(&self) {
        let Some(events) = self.config.events.clone() else {
            return;
        };
        if self.access_token.is_empty() {
            return;
        }
        let (api, token) = (self.api.clone(), self.access_token.clone());
        tokio::spawn(async move {
            if let Err(error) = events.flush(&api, &token).await {
                tracing::debug!(%error, queued = events.len(), "listening events wait for the next send");
            }
        });
    }

    /// Re-announces what the cache holds every [`ANNOUNCE_REFRESH`], with the newest
    /// grant's license, so the tracker keeps listing this client between tracks (an announce
    /// lives for the tracker's TTL, 120 s by default). Ends when the returned guard is dropped.
    fn keep_announcing(
        &self,
        serving: Arc<crate::serve::Serving>,
        latest: Arc<std::sync::Mutex<Option<Grant>>>,
    ) -> AbortOnDrop<()> {
        let this = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                // Sooner while the tracker still wants proof of renditions held here.
                let wait = policy::announce::next_in_ms(serving.catching_up());
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                let grant = latest
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .clone();
                if let Some(grant) = grant {
                    this.announce(&serving, &grant).await;
                }
            }
        }))
    }

    /// Tells the grant's tracker shards which renditions the cache holds in full, each to
    /// its own (at most 3 s per shard, in parallel; a failure is logged, the next announce
    /// makes up for it).
    async fn announce(&self, serving: &crate::serve::Serving, grant: &Grant) {
        let (Some(first), Some(cache)) = (grant.trackers.all().first(), &self.options.cache) else {
            return;
        };
        let Ok(local) = self.endpoint.local_addr() else {
            return;
        };
        let addr = transport::keyfile::advertised_addr(local, first.addr);
        // Each shard is waited for at most `serve::ANNOUNCE_WAIT`.
        if let Err(error) = serving
            .announce(&self.endpoint, &grant.trackers, &grant.license, cache, addr)
            .await
        {
            tracing::debug!(%error, "announce failed");
        }
    }

    /// Authorizes `track_id` and fetches its opening chunks (the first
    /// [`ListenerConfig::prefetch_ms`] of audio) from the local cache or the origin, at
    /// prefetch priority; they also go into the local cache.
    async fn prefetch(&self, track_id: &str, abr: &mut Abr) -> anyhow::Result<Prefetch> {
        let Ready {
            grant,
            mut chunks,
            offline,
            mut origin_bytes,
            ..
        } = self.grant_for(track_id, abr).await?;
        let manifest = &grant.manifest;
        let total = manifest.chunk_count();
        let duration = manifest.body().duration_ms.max(1);
        let wanted = policy::prefetch::chunks_wanted(total, duration, self.config.prefetch_ms);
        let cache: Option<Arc<ClientCache>> = self.options.cache.clone();
        if chunks.len() < wanted as usize
            && let Some(cache) = &cache
        {
            let (cache, manifest) = (cache.clone(), manifest.clone());
            let held = tokio::task::spawn_blocking(move || cache.chunks_of(&manifest)).await?;
            chunks.extend(held.into_iter().filter(|(index, _)| *index < wanted));
        }
        // Peers first (DESIGN §6): holders the tracker lists with the whole opening, at most
        // a few seconds; what they do not deliver comes from the origin (or its edge).
        let mut ahead_from = (0, 0);
        if let Some(first) = (0..wanted).find(|index| !chunks.contains_key(index))
            && !offline
            && let Some(tracker) = grant.tracker
        {
            let holders = player::holders(&self.endpoint, tracker, &grant, wanted).await;
            if !holders.is_empty() {
                let sources: Vec<Source> = holders.iter().map(|(source, _)| *source).collect();
                let mut report = FetchReport::default();
                let fetched = tokio::time::timeout(
                    PREFETCH_PEERS_WAIT,
                    self.fetch_ahead(&grant, &sources, (first, wanted), &mut report),
                )
                .await;
                if let Ok(Ok(list)) = fetched {
                    for (index, data) in list {
                        keep(&cache, manifest, index, &data);
                        chunks.entry(index).or_insert(data);
                    }
                    for (node, kind) in &holders {
                        let bytes = report.bytes_from.get(&node.node).copied().unwrap_or(0);
                        match kind {
                            crate::scheduler::SourceKind::SuperNode => ahead_from.0 += bytes,
                            _ => ahead_from.1 += bytes,
                        }
                    }
                }
            }
        }
        let first_missing = (0..wanted).find(|index| !chunks.contains_key(index));
        if let Some(first) = first_missing {
            // Over the edge when the options give one, else from the origin over QUIC.
            let edge = self
                .options
                .edge
                .as_ref()
                .filter(|_| grant.chunk_url_template.contains("{chunk_id}"));
            let fetched: Vec<(u32, Bytes)> = match edge {
                Some(edge) => {
                    edge.fetch_range(&grant.chunk_url_template, manifest, first, wanted - first)
                        .await?
                }
                None => {
                    let sources = [Source {
                        node: grant.origin.node,
                        addr: grant.origin.addr,
                    }];
                    self.fetch_ahead(
                        &grant,
                        &sources,
                        (first, wanted),
                        &mut FetchReport::default(),
                    )
                    .await?
                }
            };
            for (index, data) in fetched {
                if !chunks.contains_key(&index) {
                    origin_bytes += data.len() as u64;
                }
                keep(&cache, manifest, index, &data);
                chunks.entry(index).or_insert(data);
            }
        }
        Ok(Prefetch {
            track_id: track_id.to_string(),
            ready: Ready {
                grant,
                chunks,
                offline,
                origin_bytes,
                ahead_from,
            },
        })
    }

    /// Chunks `range` of `grant`'s rendition, at prefetch priority, from `sources` in order
    /// of preference, by index.
    async fn fetch_ahead(
        &self,
        grant: &Grant,
        sources: &[Source],
        range: (u32, u32),
        report: &mut FetchReport,
    ) -> anyhow::Result<Vec<(u32, Bytes)>> {
        let fetched = fetch_chunks(
            &self.endpoint,
            &grant.manifest,
            &grant.license,
            Priority::Prefetch,
            sources,
            &BanList::default(),
            range,
            report,
        )
        .await?;
        Ok((range.0..).zip(fetched).collect())
    }
}

/// Writes a fetched chunk to the cache, if there is one, off the runtime's threads.
fn keep(cache: &Option<Arc<ClientCache>>, manifest: &protocol::Manifest, index: u32, data: &Bytes) {
    if let (Some(cache), Some(id)) = (cache, manifest.chunk_id(index).copied()) {
        let (cache, data) = (cache.clone(), data.clone());
        tokio::task::spawn_blocking(move || cache.put(&id, &data));
    }
}

/// A task that stops when its handle is dropped: when the app drops a `play_queue` future
/// (or its task is aborted, as when the app dies), the track's playback and prefetch stop
/// with it instead of downloading on unseen.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether `error` means the origin could not be reached (as opposed to a refusal).
///
/// Unreachable: no connection, a timeout, a request that got no answer at all (a proxy or
/// load balancer in front of a dead origin accepts the connection, then drops it), or a
/// gateway's 502/503/504.
pub fn unreachable(error: &anyhow::Error) -> bool {
    if api::client::ApiError::of(error).is_some_and(|refusal| matches!(refusal.status, 502..=504)) {
        return true;
    }
    error.chain().any(|cause| {
        cause.downcast_ref::<reqwest::Error>().is_some_and(|error| {
            error.is_connect()
                || error.is_timeout()
                || (error.is_request() && error.status().is_none())
        })
    })
}

fn is_tier_refusal(error: &anyhow::Error) -> bool {
    api::client::ApiError::code_of(error) == Some("tier_quality")
}

#[cfg(test)]
mod tests {
    use super::unreachable;
    use api::client::ApiError;

    fn refusal(status: u16) -> anyhow::Error {
        anyhow::Error::new(ApiError {
            status,
            reason: String::new(),
            code: String::new(),
            message: String::new(),
            field: None,
            index: None,
        })
        .context("authorizing playback")
    }

    #[tokio::test]
    async fn unreachable_means_no_answer_or_a_gateway_in_front_of_none() {
        assert!(unreachable(&refusal(503)));
        assert!(unreachable(&refusal(502)));
        assert!(!unreachable(&refusal(403)), "a refusal is an answer");
        assert!(!unreachable(&refusal(500)));
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let error = reqwest::get(format!("http://{addr}/")).await.unwrap_err();
        assert!(unreachable(&anyhow::Error::new(error)));
        // A proxy that accepts and hangs up without answering.
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = proxy.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = proxy.accept().await {
                drop(socket);
            }
        });
        let error = reqwest::get(format!("http://{addr}/")).await.unwrap_err();
        assert!(unreachable(
            &anyhow::Error::new(error).context("reaching the origin")
        ));
    }
}
