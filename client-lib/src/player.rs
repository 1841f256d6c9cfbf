//! The playback driver: runs the [`Scheduler`] against the real network. It carries out the
//! scheduler's actions over QUIC (origin connection, peers from the tracker), verifies every
//! chunk against the manifest, decrypts chunks in play order and hands the plaintext to the
//! caller as it becomes playable.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use protocol::content::{ChunkCipher, SealLabel};
use protocol::wire::{Holding, PeerQuery, PeerReport, Priority, ReportReason, Request, Response};
use protocol::{NodeId, UnixMillis};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use transport::chunks::{RangeItem, fetch_range, fetch_range_counted};
use transport::{Endpoint, TransportError};

use crate::scheduler::{
    Action, Failure, PlayStats, PlayerEvent, RequestId, Scheduler, SchedulerConfig, SourceKind,
    TrackPlan,
};
use api::client::{Grant, NodeAddr};

/// Longest the playback loop sleeps when the scheduler has nothing due
/// ([`Scheduler::poll_timeout`]): its own checks (the starvation limit, a header fetch to
/// try again) need no finer clock.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// What a playback produces, in order.
#[derive(Debug, Clone)]
pub enum Output {
    /// The next decrypted piece of the encoded file (Ogg Vorbis), in play order.
    Audio(Bytes),
    /// Something the listener would notice.
    Event(PlayerEvent),
    /// Where the bytes came from so far, and the stall counters.
    Stats(PlayStats),
    /// Who delivered the track's bytes (sent once, just before the final [`Output::Stats`]):
    /// each source's node id, kind and byte count, most bytes first. Chunks handed in as
    /// already held (cache, opening chunks, prefetch) are not in it.
    Sources(Vec<(protocol::NodeId, SourceKind, u64)>),
    /// Every chunk of the track is now held and written to the local cache (sent once; it
    /// may come after the track's last audio): the client may tell the tracker it holds the
    /// rendition, long before the track has played out.
    Downloaded,
    /// Little of the track remains: now is the time to prefetch the next one (sent once).
    PrefetchNext,
    /// The play head moved (a seek, or a start past 0): the audio that follows starts at a
    /// page boundary near `position_ms`. A decoder starts over, fed `header` (the stream
    /// headers) and then the audio that follows.
    Seeked {
        /// Where playback goes on.
        position_ms: u64,
        /// The Ogg stream headers.
        header: Bytes,
    },
}

/// Settings of one playback.
#[derive(Debug, Clone, Default)]
pub struct PlayOptions {
    /// Scheduler settings.
    pub scheduler: SchedulerConfig,
    /// The local cache: chunks found there are not fetched, fetched chunks are kept there.
    pub cache: Option<std::sync::Arc<crate::cache::ClientCache>>,
    /// Tracker-independent discovery (DHT, LAN), asked when the tracker names nobody.
    pub discovery: Option<discovery::Discovery>,
    /// Where to start, milliseconds into the track (0: the beginning).
    pub start_ms: u64,
    /// Fetch what the scheduler asks of the origin over HTTP(S) through the grant's signed
    /// chunk URLs (a CDN edge) instead of the origin's QUIC endpoint. Unused when the grant
    /// holds no chunk URL template.
    pub edge: Option<crate::edge::ChunkEdge>,
    /// A running tally of the chunk bytes received over the network and handed to playback,
    /// by source, updated as each chunk arrives (for a live view; the track's [`PlayStats`]
    /// come at its end, and only they count wasted bytes). Share one among many playbacks to
    /// sum them.
    pub received: Option<std::sync::Arc<Received>>,
}

/// Chunk bytes received over the network, by source: see [`PlayOptions::received`].
#[derive(Debug, Default)]
pub struct Received {
    /// From the origin (or the edge in front of it).
    pub origin: AtomicU64,
    /// From super-nodes.
    pub super_nodes: AtomicU64,
    /// From other listeners.
    pub peers: AtomicU64,
    /// Bytes by (receiver, sender) node: who got chunks from whom.
    edges: std::sync::Mutex<HashMap<(NodeId, NodeId), u64>>,
}

/// Receiver–sender pairs a [`Received`] keeps (a devnet's worth; pairs past it are not
/// counted by pair, only by source).
const EDGES_MAX: usize = 100_000;

impl Received {
    /// Counts `bytes` that `receiver` got from `sender`.
    pub fn edge(&self, receiver: NodeId, sender: NodeId, bytes: u64) {
        let mut edges = self
            .edges
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let full = edges.len() >= EDGES_MAX;
        match edges.get_mut(&(receiver, sender)) {
            Some(total) => *total += bytes,
            None if !full => {
                edges.insert((receiver, sender), bytes);
            }
            None => {}
        }
    }

    /// Bytes by (receiver, sender) so far.
    pub fn edges(&self) -> Vec<(NodeId, NodeId, u64)> {
        self.edges
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .map(|(&(receiver, sender), &bytes)| (receiver, sender, bytes))
            .collect()
    }

    /// Adds what `after` counts over `before` (two readings of a scheduler's stats).
    fn add(&self, before: &PlayStats, after: &PlayStats) {
        let more = |a: u64, b: u64| b.saturating_sub(a);
        self.origin.fetch_add(
            more(before.bytes_origin, after.bytes_origin),
            Ordering::Relaxed,
        );
        self.super_nodes.fetch_add(
            more(before.bytes_super_nodes, after.bytes_super_nodes),
            Ordering::Relaxed,
        );
        self.peers.fetch_add(
            more(before.bytes_peers, after.bytes_peers),
            Ordering::Relaxed,
        );
    }
}

/// Failure of a playback as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    /// The same chunk could not be fetched from any source for too long.
    #[error("playback stalled for {0:?} with no source able to deliver")]
    Starved(Duration),
    /// A chunk that passed its hash failed to decrypt (wrong key for this manifest).
    #[error("chunk {0} does not decrypt with the granted key")]
    Decrypt(u32),
    /// Seeking needs the stream headers, and the first chunk holds none (not Ogg, or headers
    /// longer than a chunk).
    #[error("cannot seek: the first chunk holds no complete stream header")]
    NoHeader,
}

enum Event {
    Chunk {
        id: RequestId,
        index: u32,
        data: Bytes,
    },
    Failed {
        id: RequestId,
        failure: Failure,
    },
    Done {
        id: RequestId,
    },
    /// A lookup's answer: each source, where to reach it and, for a peer still downloading
    /// the rendition, what it holds.
    Peers(Vec<(NodeId, SourceKind, std::net::SocketAddr, Option<Holding>)>),
    /// A source answered that it lacks chunk `index` and holds `held` from the first.
    Missing {
        id: RequestId,
        index: u32,
        held: u32,
    },
    /// Chunk 0, fetched for the stream headers a seek needs.
    FirstChunk(Bytes),
}

/// The Ogg stream headers from chunk 0's ciphertext.
fn stream_header(
    cipher: &ChunkCipher,
    manifest: &protocol::Manifest,
    first: &Bytes,
) -> Result<Bytes, PlayError> {
    let id = manifest
        .chunk_id(0)
        .copied()
        .unwrap_or(protocol::ChunkId([0; 32]));
    let plain = cipher
        .open(0, &id, first)
        .map_err(|_| PlayError::Decrypt(0))?;
    let len = crate::decode::ogg_header_len(&plain).ok_or(PlayError::NoHeader)?;
    Ok(Bytes::from(plain).slice(..len))
}

fn failure_of(error: &TransportError) -> Failure {
    match error {
        TransportError::Content(_) | TransportError::Protocol(_) | TransportError::Codec(_) => {
            Failure::BadChunk
        }
        TransportError::Remote(remote) => match remote.code {
            protocol::wire::ErrorCode::NotFound => Failure::Missing,
            _ => Failure::Refused,
        },
        _ => Failure::Unreachable,
    }
}

fn edge_failure(error: &crate::edge::EdgeError) -> Failure {
    match error {
        crate::edge::EdgeError::BadChunk(_) => Failure::BadChunk,
        crate::edge::EdgeError::Unreachable(_) => Failure::Unreachable,
        crate::edge::EdgeError::Refused { status: 404, .. } => Failure::Missing,
        crate::edge::EdgeError::Refused { .. } | crate::edge::EdgeError::NoUrl(_) => {
            Failure::Refused
        }
    }
}

fn report_reason(failure: Failure) -> ReportReason {
    match failure {
        Failure::BadChunk => ReportReason::BadChunk,
        Failure::Missing => ReportReason::Missing,
        Failure::Unreachable | Failure::Refused => ReportReason::Unreachable,
    }
}

/// Plays `grant` from the network: chunks come from the origin and from peers the tracker
/// names, as the scheduler decides; chunks in `cached_data` (by index) or in the options'
/// cache are not fetched. Sends [`Output`]s to `out` until the track has been delivered;
/// returns the final statistics.
pub async fn play(
    endpoint: &Endpoint,
    grant: &Grant,
    cached_data: HashMap<u32, Bytes>,
    options: PlayOptions,
    out: mpsc::Sender<Output>,
) -> Result<PlayStats, PlayError> {
    // Nobody sends controls; the channel stays open until the playback ends.
    let (_keep, controls) = mpsc::channel(1);
    play_with_controls(endpoint, grant, cached_data, options, out, controls).await
}

/// What an app can tell a playback while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop the play head (fetching goes on within the scheduler's limits).
    Pause,
    /// Go on after a pause.
    Resume,
    /// End the playback now: every request is cancelled.
    Stop,
    /// Move the play head to this position (milliseconds).
    Seek(u64),
}

/// [`play`], steered by `controls` (pause, resume, stop). A closed control channel changes
/// nothing.
pub async fn play_with_controls(
    endpoint: &Endpoint,
    grant: &Grant,
    cached_data: HashMap<u32, Bytes>,
    options: PlayOptions,
    out: mpsc::Sender<Output>,
    mut controls: mpsc::Receiver<Control>,
) -> Result<PlayStats, PlayError> {
    let mut controls_open = true;
    let started = Instant::now();
    let now_ms = || started.elapsed().as_millis() as u64 + 1;
    let manifest = &grant.manifest;
    let chunks = manifest.chunk_count();
    let cipher = ChunkCipher::new(
        &grant.content_key,
        SealLabel {
            track: manifest.body().track,
            quality: manifest.body().quality,
        },
    );
    let mut cached_data = cached_data;
    if let Some(cache) = &options.cache {
        if let Err(error) = cache.put_manifest(manifest.signed()) {
            tracing::warn!(%error, "could not cache the manifest");
        }
        if let Err(error) = cache.put_license(&manifest.id(), &grant.license) {
            tracing::warn!(%error, "could not keep the license");
        }
        for (index, data) in cache.chunks_of(manifest) {
            cached_data.entry(index).or_insert(data);
        }
    }
    let cache = options.cache.clone();
    // The edge, when the grant gives chunk URLs to use it with.
    let edge = options
        .edge
        .clone()
        .filter(|_| grant.chunk_url_template.contains("{chunk_id}"));
    let options_discovery = options.discovery.clone();
    let options_received = options.received.clone();
    let plan = TrackPlan {
        chunks,
        chunk_bytes: (0..chunks)
            .map(|index| manifest.body().chunk_ciphertext_len(index).unwrap_or(0))
            .collect(),
        duration_ms: manifest.body().duration_ms,
        chunk_end_ms: manifest.body().chunk_end_ms.clone(),
        cached: (0..chunks)
            .map(|index| cached_data.contains_key(&index))
            .collect(),
        start_ms: options.start_ms.min(manifest.body().duration_ms),
    };
    let mut scheduler = Scheduler::new(options.scheduler, grant.origin.node);
    let mut addrs: HashMap<NodeId, std::net::SocketAddr> = HashMap::new();
    addrs.insert(grant.origin.node, grant.origin.addr);
    let mut data: HashMap<u32, Bytes> = cached_data;
    let mut tasks = Transfers::default();
    let (events_tx, mut events) = mpsc::channel::<Event>(1024);
    let start_ms = plan.start_ms;
    let mut actions = scheduler.play(now_ms(), plan);
    let mut next_out = scheduler.chunk_at(start_ms);
    // Seeking: the stream headers (from chunk 0), a seek waiting for them, and whether the
    // next piece handed out must be cut to its first page boundary.
    let mut header: Option<Bytes> = None;
    let mut pending_seek: Option<u64> = (start_ms > 0).then_some(start_ms);
    let mut downloaded_sent = false;
    // Cache writes under way (one per chunk at most), so `Downloaded` is sent only once
    // the chunks are in the cache.
    let mut cache_writes: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut header_fetch: Option<JoinHandle<()>> = None;
    let mut trim_next = false;
    let mut starving_since: Option<Instant> = None;
    loop {
        for action in actions.drain(..) {
            match action {
                Action::Fetch {
                    id,
                    source,
                    first,
                    count,
                    priority,
                } => {
                    if source == grant.origin.node
                        && let Some(edge) = edge.clone()
                    {
                        let (manifest, events) = (manifest.clone(), events_tx.clone());
                        let template = grant.chunk_url_template.clone();
                        tasks.insert(
                            id,
                            Arc::default(),
                            tokio::spawn(async move {
                                let mut chunks =
                                    std::pin::pin!(edge.range(&template, &manifest, first, count));
                                let mut event = Event::Done { id };
                                while let Some(chunk) = chunks.next().await {
                                    match chunk {
                                        Ok((index, data)) => {
                                            let _ =
                                                events.send(Event::Chunk { id, index, data }).await;
                                        }
                                        Err(error) => {
                                            event = Event::Failed {
                                                id,
                                                failure: edge_failure(&error),
                                            };
                                            break;
                                        }
                                    }
                                }
                                let _ = events.send(event).await;
                            }),
                        );
                        continue;
                    }
                    let Some(addr) = addrs.get(&source).copied() else {
                        continue;
                    };
                    let (endpoint, manifest, license, events) = (
                        endpoint.clone(),
                        manifest.clone(),
                        grant.license.clone(),
                        events_tx.clone(),
                    );
                    let received = Arc::new(AtomicU64::new(0));
                    let counter = received.clone();
                    tasks.insert(
                        id,
                        received,
                        tokio::spawn(async move {
                            let result = async {
                                let peer = endpoint.connect(source, addr).await?;
                                fetch_range_counted(
                                    &peer, &manifest, first, count, priority, &license, &counter,
                                )
                                .await
                            }
                            .await;
                            let event = match result {
                                Ok(items) => {
                                    let mut missing = None;
                                    for item in items {
                                        match item {
                                            RangeItem::Chunk { index, data } => {
                                                // Handed over: no longer this fetch's to
                                                // lose.
                                                counter.fetch_sub(
                                                    data.len() as u64,
                                                    Ordering::Relaxed,
                                                );
                                                let _ = events
                                                    .send(Event::Chunk { id, index, data })
                                                    .await;
                                            }
                                            RangeItem::Missing { index, held } => {
                                                missing = missing.or(Some((index, held)));
                                            }
                                        }
                                    }
                                    match missing {
                                        Some((index, held)) => Event::Missing { id, index, held },
                                        None => Event::Done { id },
                                    }
                                }
                                Err(error) => Event::Failed {
                                    id,
                                    failure: failure_of(&error),
                                },
                            };
                            let _ = events.send(event).await;
                        }),
                    );
                }
                Action::Cancel { id } => {
                    tasks.cancel(id);
                }
                Action::FindPeers => {
                    let (endpoint, tracker, events) =
                        (endpoint.clone(), grant.tracker, events_tx.clone());
                    let query = Request::PeerQuery(PeerQuery {
                        rendition: manifest.id(),
                        want: 10,
                        license: grant.license.clone(),
                    });
                    let discovery = options_discovery.clone();
                    let rendition = manifest.id();
                    let claims = crate::serve::own_claims(&grant.license);
                    tokio::spawn(async move {
                        let mut found = match tracker {
                            Some(tracker) => ask_tracker(&endpoint, tracker, &query).await,
                            None => Vec::new(),
                        };
                        // No tracker, or it knows nobody: the DHT and the LAN. The DHT applies
                        // no rules, so the track's markets are checked here (and again by the
                        // serving peer).
                        if found.is_empty()
                            && let Some(discovery) = discovery
                            && let Ok(peers) = discovery.find_peers(&rendition, 10).await
                        {
                            found = peers
                                .into_iter()
                                .filter(|peer| {
                                    claims
                                        .as_ref()
                                        .is_some_and(|claims| claims.market_includes(&peer.region))
                                })
                                .filter_map(|peer| {
                                    let kind = match peer.role {
                                        protocol::wire::NodeRole::SuperNode => {
                                            SourceKind::SuperNode
                                        }
                                        _ => SourceKind::Peer,
                                    };
                                    peer.addrs
                                        .first()
                                        .map(|addr| (peer.node, kind, *addr, None))
                                })
                                .collect();
                        }
                        let _ = events.send(Event::Peers(found)).await;
                    });
                }
                Action::Report { .. } | Action::Delivered { .. } => {
                    let (peer, reason) = match action {
                        Action::Report { peer, failure } => (peer, report_reason(failure)),
                        Action::Delivered { peer, kbps } => {
                            (peer, ReportReason::Delivered { kbps })
                        }
                        _ => continue,
                    };
                    if let Some(tracker) = grant.tracker {
                        let endpoint = endpoint.clone();
                        let report = Request::Report(PeerReport {
                            peer,
                            rendition: manifest.id(),
                            reason,
                            license: grant.license.clone(),
                        });
                        tokio::spawn(async move {
                            if let Ok(peer) = endpoint.connect(tracker.node, tracker.addr).await {
                                let _ = peer.request_one(&report).await;
                            }
                        });
                    }
                }
                Action::PrefetchNext => {
                    let _ = out.send(Output::PrefetchNext).await;
                }
            }
        }
        for event in scheduler.take_events() {
            let _ = out.send(Output::Event(event)).await;
        }
        // A seek waits for the stream headers: from chunk 0 if it is here, else fetched.
        if let Some(position_ms) = pending_seek {
            if header.is_none()
                && let Some(first) = data.get(&0)
            {
                header = Some(stream_header(&cipher, manifest, first)?);
            }
            match &header {
                Some(found) => {
                    let seeked = Output::Seeked {
                        position_ms,
                        header: found.clone(),
                    };
                    if out.send(seeked).await.is_err() {
                        tasks.abort_all();
                        return Ok(tasks.stats(&scheduler));
                    }
                    pending_seek = None;
                    trim_next = true;
                }
                // (Again if an earlier fetch ended without it.)
                None if header_fetch.as_ref().is_none_or(JoinHandle::is_finished) => {
                    let (endpoint, manifest, license, events, origin) = (
                        endpoint.clone(),
                        manifest.clone(),
                        grant.license.clone(),
                        events_tx.clone(),
                        grant.origin,
                    );
                    let (edge, template) = (edge.clone(), grant.chunk_url_template.clone());
                    header_fetch = Some(tokio::spawn(async move {
                        if let Some(edge) = edge {
                            match edge.fetch_one(&template, &manifest, 0).await {
                                Ok(data) => {
                                    let _ = events.send(Event::FirstChunk(data)).await;
                                }
                                // Not again at once: the loop starts the next try when
                                // this one has ended.
                                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                            }
                            return;
                        }
                        let result = async {
                            let peer = endpoint.connect(origin.node, origin.addr).await?;
                            fetch_range(&peer, &manifest, 0, 1, Priority::Playing, &license).await
                        }
                        .await;
                        if let Ok(items) = result {
                            for item in items {
                                if let RangeItem::Chunk { index: 0, data } = item {
                                    let _ = events.send(Event::FirstChunk(data)).await;
                                }
                            }
                        }
                    }));
                }
                None => {}
            }
        }
        // Hand out what is playable, in order (kept: a seek back hands it out again).
        while pending_seek.is_none() && next_out < chunks && scheduler.holds(next_out) {
            let Some(ciphertext) = data.get(&next_out).cloned() else {
                break;
            };
            let id = manifest
                .chunk_id(next_out)
                .copied()
                .unwrap_or(protocol::ChunkId([0; 32]));
            let mut plain = Bytes::from(
                cipher
                    .open(next_out, &id, &ciphertext)
                    .map_err(|_| PlayError::Decrypt(next_out))?,
            );
            if next_out == 0 && header.is_none() {
                header = crate::decode::ogg_header_len(&plain).map(|len| plain.slice(..len));
            }
            if trim_next {
                match crate::decode::ogg_page_start(&plain) {
                    Some(at) => {
                        plain = plain.slice(at..);
                        trim_next = false;
                    }
                    None => {
                        // All inside one page: nothing here starts a page.
                        next_out += 1;
                        continue;
                    }
                }
            }
            if out.send(Output::Audio(plain)).await.is_err() {
                // The listener went away: stop everything.
                tasks.abort_all();
                return Ok(tasks.stats(&scheduler));
            }
            next_out += 1;
        }
        if scheduler.finished() && next_out >= chunks {
            break;
        }
        // Starving: the play head (the scheduler's model of the sink) is at a chunk not held,
        // or a seek waits for its chunk. Audio handed on ahead of the head is buffered, so a
        // chunk that is not held yet past it is no stall: the scheduler may wait for it to
        // come within its origin lead while a partial holder grows.
        let position_ms = scheduler.position_ms(now_ms());
        let head = scheduler.chunk_at(position_ms);
        let stalled = next_out < chunks
            && if next_out < head {
                !scheduler.holds(next_out)
            } else {
                !scheduler.playable(head)
            };
        if pending_seek.is_some() || stalled {
            let since = *starving_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(30) {
                let position_ms = scheduler.position_ms(now_ms());
                tracing::warn!(
                    next_out,
                    position_ms,
                    head_chunk = scheduler.chunk_at(position_ms),
                    finished = scheduler.finished(),
                    paused = scheduler.paused(),
                    seek = pending_seek.is_some(),
                    held = ?(next_out..chunks.min(next_out + 20)).map(|i| scheduler.holds(i)).collect::<Vec<_>>(),
                    stats = ?scheduler.stats(),
                    requests = ?scheduler.requests(),
                    sources = ?scheduler.bytes_by_source(),
                    tasks = tasks.len(),
                    "playback starved"
                );
                tasks.abort_all();
                return Err(PlayError::Starved(since.elapsed()));
            }
        } else {
            starving_since = None;
        }
        // The checks above moved the play head model: act on what that changed (a window
        // reached, a stall) before sleeping.
        let now = now_ms();
        let due = scheduler.poll(now);
        if !due.is_empty() {
            actions = due;
            continue;
        }
        for event in scheduler.take_events() {
            let _ = out.send(Output::Event(event)).await;
        }
        // The scheduler says when it next has something to do; the loop's own checks run
        // at least every second.
        let wait = scheduler
            .poll_timeout(now)
            .map_or(HOUSEKEEPING, |at| {
                Duration::from_millis(at.saturating_sub(now))
            })
            .min(HOUSEKEEPING);
        tokio::select! {
            control = controls.recv(), if controls_open => {
                let now = now_ms();
                actions = match control {
                    Some(Control::Pause) => {
                        scheduler.pause(now);
                        Vec::new()
                    }
                    Some(Control::Resume) => scheduler.resume(now),
                    Some(Control::Seek(position_ms)) => {
                        let position_ms = position_ms.min(manifest.body().duration_ms);
                        let seek = scheduler.seek(now, position_ms);
                        next_out = scheduler.chunk_at(position_ms);
                        pending_seek = Some(position_ms);
                        seek
                    }
                    Some(Control::Stop) => {
                        tasks.abort_all();
                        scheduler.stop();
                        let stats = tasks.stats(&scheduler);
                        let _ = out.send(Output::Sources(scheduler.bytes_by_source())).await;
                        let _ = out.send(Output::Stats(stats)).await;
                        return Ok(stats);
                    }
                    None => {
                        controls_open = false;
                        Vec::new()
                    }
                };
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                let now = now_ms();
                actions = match event {
                    // A fetch abandoned after it handed this over: the scheduler no
                    // longer expects it.
                    Event::Chunk { id, data: bytes, .. } if !tasks.contains(id) => {
                        tasks.discarded(bytes.len() as u64);
                        Vec::new()
                    }
                    Event::Chunk { id, index, data: bytes } => {
                        if let Some(cache) = &cache
                            && !scheduler.holds(index)
                            && let Some(chunk_id) = manifest.chunk_id(index).copied()
                        {
                            // File writes stay off the event loop.
                            let (cache, bytes) = (cache.clone(), bytes.clone());
                            cache_writes.retain(|write| !write.is_finished());
                            cache_writes.push(tokio::task::spawn_blocking(move || {
                                if let Err(error) = cache.put(&chunk_id, &bytes) {
                                    tracing::warn!(%error, "could not cache a chunk");
                                }
                            }));
                        }
                        let sender = scheduler.request_source(id);
                        let length = bytes.len() as u64;
                        data.entry(index).or_insert(bytes);
                        let before = scheduler.stats();
                        let actions = scheduler.on_chunk(now, id, index);
                        if let Some(received) = &options_received {
                            received.add(&before, &scheduler.stats());
                            if let Some(sender) = sender {
                                received.edge(endpoint.node_id(), sender, length);
                            }
                        }
                        if !downloaded_sent && scheduler.all_held() {
                            downloaded_sent = true;
                            // Told once the last writes have landed, off the event loop.
                            let (writes, out) = (std::mem::take(&mut cache_writes), out.clone());
                            tokio::spawn(async move {
                                for write in writes {
                                    let _ = write.await;
                                }
                                let _ = out.send(Output::Downloaded).await;
                            });
                        }
                        actions
                    }
                    Event::FirstChunk(bytes) => {
                        data.entry(0).or_insert(bytes);
                        Vec::new()
                    }
                    Event::Failed { id, failure } => {
                        tasks.failed(id);
                        scheduler.on_failure(now, id, failure)
                    }
                    Event::Done { id } => {
                        tasks.finished(id);
                        scheduler.poll(now)
                    }
                    Event::Missing { id, index, held } => {
                        tasks.finished(id);
                        scheduler.on_missing(now, id, index, held)
                    }
                    Event::Peers(found) => {
                        let mut sources = Vec::new();
                        for (node, kind, addr, holding) in found {
                            if node != endpoint.node_id() {
                                addrs.insert(node, addr);
                                sources.push((node, kind, holding));
                            }
                        }
                        scheduler.add_holders(now, &sources)
                    }
                };
            }
            () = tokio::time::sleep(wait) => {
                actions = scheduler.poll(now_ms());
            }
        }
    }
    tasks.abort_all();
    let stats = tasks.stats(&scheduler);
    let _ = out.send(Output::Sources(scheduler.bytes_by_source())).await;
    let _ = out.send(Output::Stats(stats)).await;
    Ok(stats)
}

/// The fetches under way, each with what it has received and not yet handed over.
#[derive(Default)]
struct Transfers {
    tasks: HashMap<RequestId, (JoinHandle<()>, Arc<AtomicU64>)>,
    /// Bytes received by fetches and thrown away: abandoned or failed before they handed
    /// their range over, or handed over after they were abandoned.
    cancelled: u64,
}

impl Transfers {
    fn insert(&mut self, id: RequestId, received: Arc<AtomicU64>, task: JoinHandle<()>) {
        if let Some((old, received)) = self.tasks.insert(id, (task, received)) {
            old.abort();
            self.cancelled += received.load(Ordering::Relaxed);
        }
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn contains(&self, id: RequestId) -> bool {
        self.tasks.contains_key(&id)
    }

    /// A fetch that ended and said so: it handed over what it received.
    fn finished(&mut self, id: RequestId) {
        self.tasks.remove(&id);
    }

    /// A fetch that failed: what it had received is lost with it.
    fn failed(&mut self, id: RequestId) {
        if let Some((_, received)) = self.tasks.remove(&id) {
            self.cancelled += received.load(Ordering::Relaxed);
        }
    }

    /// Abandons a fetch: what it received and had not handed over is thrown away.
    fn cancel(&mut self, id: RequestId) {
        if let Some((task, received)) = self.tasks.remove(&id) {
            task.abort();
            self.cancelled += received.load(Ordering::Relaxed);
        }
    }

    /// Chunks that arrived for a fetch already abandoned.
    fn discarded(&mut self, bytes: u64) {
        self.cancelled += bytes;
    }

    fn abort_all(&mut self) {
        let ids: Vec<RequestId> = self.tasks.keys().copied().collect();
        for id in ids {
            self.cancel(id);
        }
    }

    /// The scheduler's counters with the bytes thrown away with abandoned fetches.
    fn stats(&self, scheduler: &Scheduler) -> PlayStats {
        PlayStats {
            bytes_cancelled: self.cancelled,
            ..scheduler.stats()
        }
    }
}

/// The tracker's holders of `grant`'s rendition that hold its first `chunks` chunks
/// (whole holders, and partial ones that say they do), best first, at most
/// [`policy::prefetch::HOLDERS_TRIED`]: where a prefetch looks before the origin
/// ([`policy::prefetch::holders`]).
pub(crate) async fn holders(
    endpoint: &Endpoint,
    tracker: NodeAddr,
    grant: &Grant,
    chunks: u32,
) -> Vec<(crate::fetch::Source, SourceKind)> {
    let query = Request::PeerQuery(PeerQuery {
        rendition: grant.manifest.id(),
        want: 10,
        license: grant.license.clone(),
    });
    let mut list = peer_list(endpoint, tracker, &query).await;
    // A peer with no address cannot be tried: it takes none of the tries.
    list.retain(|peer| !peer.addrs.is_empty());
    let me = endpoint.node_id();
    policy::prefetch::holders(&list, &me, chunks)
        .filter_map(|peer| {
            let addr = *peer.addrs.first()?;
            Some((
                crate::fetch::Source {
                    node: peer.node,
                    addr,
                },
                kind_of(peer),
            ))
        })
        .collect()
}

async fn ask_tracker(
    endpoint: &Endpoint,
    tracker: NodeAddr,
    query: &Request,
) -> Vec<(NodeId, SourceKind, std::net::SocketAddr, Option<Holding>)> {
    peer_list(endpoint, tracker, query)
        .await
        .into_iter()
        .filter_map(|peer| {
            let kind = kind_of(&peer);
            peer.addrs
                .first()
                .map(|addr| (peer.node, kind, *addr, peer.holding))
        })
        .collect()
}

fn kind_of(peer: &protocol::wire::PeerInfo) -> SourceKind {
    match peer.role {
        protocol::wire::NodeRole::SuperNode => SourceKind::SuperNode,
        _ => SourceKind::Peer,
    }
}

/// The tracker's answer to `query`, or nothing when it refuses or does not answer in 3 s.
async fn peer_list(
    endpoint: &Endpoint,
    tracker: NodeAddr,
    query: &Request,
) -> Vec<protocol::wire::PeerInfo> {
    let answer = async {
        let peer = endpoint.connect(tracker.node, tracker.addr).await?;
        peer.request_one(query).await
    };
    match tokio::time::timeout(Duration::from_secs(3), answer).await {
        Ok(Ok(Response::PeerList(list))) => list.peers,
        Ok(Ok(other)) => {
            tracing::debug!(?other, "tracker refused the peer query");
            Vec::new()
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, "tracker unreachable");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

/// The current time as the protocol counts it.
pub fn unix_now() -> UnixMillis {
    transport::chunks::system_clock()()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(transfers: &mut Transfers, id: u64, received: u64) -> Arc<AtomicU64> {
        let counter = Arc::new(AtomicU64::new(received));
        let task = tokio::spawn(std::future::pending::<()>());
        transfers.insert(RequestId(id), counter.clone(), task);
        counter
    }

    #[tokio::test]
    async fn bytes_a_fetch_received_and_did_not_hand_over_are_counted_once() {
        let mut transfers = Transfers::default();
        // Ended and said so: what it received was handed over (its counter went to 0).
        let counter = pending(&mut transfers, 1, 0);
        transfers.finished(RequestId(1));
        assert_eq!(counter.load(Ordering::Relaxed), 0);
        // Cancelled with 300 bytes received and not handed over.
        pending(&mut transfers, 2, 300);
        transfers.cancel(RequestId(2));
        // Failed with 50.
        pending(&mut transfers, 3, 50);
        transfers.failed(RequestId(3));
        // A chunk of 7 bytes arriving for the cancelled fetch.
        assert!(!transfers.contains(RequestId(2)));
        transfers.discarded(7);
        // Twice cancelled, failed after a cancel: counted once.
        transfers.cancel(RequestId(2));
        transfers.failed(RequestId(2));
        // Still under way at the end of the track: abandoned.
        pending(&mut transfers, 4, 11);
        assert_eq!(transfers.len(), 1);
        transfers.abort_all();
        assert_eq!(transfers.len(), 0);
        let scheduler = Scheduler::new(SchedulerConfig::default(), NodeId([0; 32]));
        assert_eq!(
            transfers.stats(&scheduler).bytes_cancelled,
            300 + 50 + 7 + 11
        );
    }
}
