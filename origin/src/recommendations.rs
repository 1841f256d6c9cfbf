//! `GET /v1/recommendations` and `GET /v1/tracks/{id}/radio`, served from the in-memory
//! [`Model`] that [`refresh`] rebuilds in the background.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::ChunkId;

use crate::recommend::{HISTORY_DAYS, Inputs, Model, STREAMS_MAX};
use crate::store::{Published, Store, StoreError};

/// Seeds of each kind (tracks, artists) one request may give.
pub const SEEDS_MAX: usize = 5;

/// The name the model is published under ([`crate::store::Coordination::publish`]).
pub const PUBLISHED_NAME: &str = "recommendations";

/// How often an origin that does not lead the jobs looks for a newer model.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// The current model, swapped whole by the background job.
#[derive(Debug, Default)]
pub struct Recommender {
    model: RwLock<Arc<Model>>,
    /// The catalog changed since the last build.
    dirty: AtomicBool,
    /// The published model served now (`None`: none, or one built here and not published).
    serving: Mutex<Option<Published>>,
    /// A published blob that failed to load: not fetched again until another is published.
    refused: Mutex<Option<ChunkId>>,
    /// Models built here.
    builds: AtomicU64,
    /// Models loaded from what an origin published (another, or this one before a restart).
    loads: AtomicU64,
    /// Blobs of old models whose removal failed, tried again after the next publication.
    unreferenced: Mutex<Vec<ChunkId>>,
}

/// Old model blobs kept for another removal attempt at most (beyond, they are left).
const UNREFERENCED_MAX: usize = 16;

/// What [`load_published`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// The newest published model is served (loaded now or before); its age by its
    /// builder's clock.
    Serving(Duration),
    /// Nothing this origin can serve: none published, its blob gone, or refused before.
    Nothing,
}

impl Recommender {
    /// The model requests read now.
    pub fn model(&self) -> Arc<Model> {
        self.model
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Notes a catalog change (a new track should be recommendable soon).
    pub fn catalog_changed(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Models built here, and models loaded from what the leading origin published.
    pub fn builds_and_loads(&self) -> (u64, u64) {
        (
            self.builds.load(Ordering::Relaxed),
            self.loads.load(Ordering::Relaxed),
        )
    }

    /// The Prometheus lines of the model: builds, loads, tracks and the age of what is served.
    pub fn render_metrics(&self, now_ms: u64) -> String {
        let (builds, loads) = self.builds_and_loads();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP chorus_recommendation_models_total Recommendation models built here or \
             loaded from the leading origin.\n# TYPE chorus_recommendation_models_total counter\n\
             chorus_recommendation_models_total{{how=\"built\"}} {builds}\n\
             chorus_recommendation_models_total{{how=\"loaded\"}} {loads}"
        );
        let _ = writeln!(
            out,
            "# HELP chorus_recommendation_model_tracks Tracks in the model served.\n\
             # TYPE chorus_recommendation_model_tracks gauge\n\
             chorus_recommendation_model_tracks {}",
            self.model().len()
        );
        if let Some(published) = *self.lock_serving() {
            let _ = writeln!(
                out,
                "# HELP chorus_recommendation_model_age_seconds Age of the published model \
                 served.\n# TYPE chorus_recommendation_model_age_seconds gauge\n\
                 chorus_recommendation_model_age_seconds {:.3}",
                now_ms.saturating_sub(published.built_ms) as f64 / 1000.0
            );
        }
        out
    }

    fn lock_serving(&self) -> std::sync::MutexGuard<'_, Option<Published>> {
        self.serving
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Serves `model` (from `published`, if it came from there). Call it on the blocking
    /// pool: the model it replaces may be large, and is freed here, after the lock is let go.
    fn replace(&self, model: Model, published: Option<Published>) {
        let old = std::mem::replace(
            &mut *self
                .model
                .write()
                .unwrap_or_else(|poison| poison.into_inner()),
            Arc::new(model),
        );
        *self.lock_serving() = published;
        drop(old);
    }
}

/// Reads what a build needs from `store`: the catalog with play counts, the newest streams
/// of the last [`HISTORY_DAYS`] days (at most [`STREAMS_MAX`]) and every playlist.
pub async fn inputs(store: &Store, now_ms: u64) -> Result<Inputs, StoreError> {
    const PAGE: usize = 10_000;
    let mut inputs = Inputs::default();
    let mut after: Option<String> = None;
    loop {
        let tracks = store.catalog().tracks_after(after.as_deref(), PAGE).await?;
        let Some(last) = tracks.last() else {
            break;
        };
        after = Some(last.id.clone());
        let ids: Vec<String> = tracks.iter().map(|track| track.id.clone()).collect();
        let plays = store.listening().play_counts(&ids).await?;
        let done = tracks.len() < PAGE;
        inputs.tracks.extend(tracks.into_iter().zip(plays));
        if done {
            break;
        }
    }
    let from = now_ms.saturating_sub(HISTORY_DAYS * 24 * 3600 * 1000);
    inputs.streams = store
        .listening()
        .streams_newest_first(from, STREAMS_MAX)
        .await?;
    let mut after: Option<String> = None;
    loop {
        let playlists = store
            .playlists()
            .playlists_after(after.as_deref(), PAGE)
            .await?;
        let Some(last) = playlists.last() else {
            break;
        };
        after = Some(last.id.clone());
        let done = playlists.len() < PAGE;
        inputs.playlists.extend(playlists);
        if done {
            break;
        }
    }
    Ok(inputs)
}

/// Builds a model from `store` on the blocking pool and serves it; its encoding if `encode`.
async fn build(
    store: &Store,
    recommender: &Arc<Recommender>,
    encode: bool,
) -> Result<Option<Vec<u8>>, StoreError> {
    let started = Instant::now();
    recommender.dirty.store(false, Ordering::Relaxed);
    let inputs = inputs(store, crate::now_ms()).await?;
    let serve = recommender.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let model = Model::build(inputs);
        let encoded = encode.then(|| model.encode());
        tracing::info!(
            tracks = model.len(),
            streams = model.streams,
            pairs = model.pairs,
            bytes = encoded.as_ref().map_or(0, Vec::len),
            ms = started.elapsed().as_millis() as u64,
            "recommendation model built"
        );
        serve.replace(model, None);
        encoded
    })
    .await
    .map_err(|join| StoreError::Backend(format!("recommendation build: {join}")))?;
    recommender.builds.fetch_add(1, Ordering::Relaxed);
    Ok(encoded)
}

/// Builds a model now and serves it: the inputs are read from `store`, the model is built
/// (and encoded) on the blocking pool, then, if this origin still leads the once-only jobs,
/// published for the other origins sharing the store: its blob is stored, recorded with
/// [`crate::store::Coordination::publish`], and the blob that no reader can still be loading
/// is removed.
pub async fn rebuild(store: &Store, recommender: &Arc<Recommender>) -> Result<(), StoreError> {
    let Some(encoded) = build(store, recommender, true).await? else {
        return Ok(());
    };
    // A leader that lost the lead while building (its connection broke) leaves the
    // publishing to the new one.
    if !store.coordination().lead().await? {
        return Ok(());
    }
    let published = Published {
        blob: ChunkId::of(&encoded),
        built_ms: crate::now_ms(),
        bytes: encoded.len() as u64,
    };
    let blobs = store.blobs().backend();
    blobs
        .put(&published.blob, Bytes::from(encoded))
        .await
        .map_err(|error| StoreError::Unavailable(format!("storing the model: {error}")))?;
    let unnamed = store
        .coordination()
        .publish(PUBLISHED_NAME, &published)
        .await?;
    *recommender.lock_serving() = Some(published);
    let mut pending = std::mem::take(
        &mut *recommender
            .unreferenced
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()),
    );
    pending.extend(unnamed);
    let mut failed = Vec::new();
    for blob in pending {
        if blob == published.blob {
            continue;
        }
        if let Err(error) = blobs.remove(&blob).await {
            tracing::warn!(%error, %blob, "removing an old recommendation model failed");
            failed.push(blob);
        }
    }
    failed.truncate(UNREFERENCED_MAX);
    *recommender
        .unreferenced
        .lock()
        .unwrap_or_else(|poison| poison.into_inner()) = failed;
    Ok(())
}

/// Serves the newest published model if it is not served already. A model that fails to
/// load for a reason of its own (too large, its bytes not hashing to its id, not decoding)
/// is refused: not fetched again until another is published.
pub async fn load_published(
    store: &Store,
    recommender: &Arc<Recommender>,
) -> Result<Loaded, StoreError> {
    let Some(published) = store.coordination().published(PUBLISHED_NAME).await? else {
        return Ok(Loaded::Nothing);
    };
    let age = Duration::from_millis(crate::now_ms().saturating_sub(published.built_ms));
    {
        let mut serving = recommender.lock_serving();
        if serving.is_some_and(|serving| serving.blob == published.blob) {
            // The same model published again: it is as young as its last publication.
            *serving = Some(published);
            return Ok(Loaded::Serving(age));
        }
    }
    let refuse = |why: String| {
        *recommender
            .refused
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(published.blob);
        StoreError::Corrupt(format!(
            "published recommendation model {}: {why}",
            published.blob
        ))
    };
    if *recommender
        .refused
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        == Some(published.blob)
    {
        return Ok(Loaded::Nothing);
    }
    if published.bytes > crate::recommend::ENCODED_MAX as u64 {
        return Err(refuse(format!("{} bytes", published.bytes)));
    }
    let started = Instant::now();
    let Some(bytes) = store
        .blobs()
        .backend()
        .get(&published.blob)
        .await
        .map_err(|error| StoreError::Unavailable(format!("loading the model: {error}")))?
    else {
        // Replaced twice since it was read, or lost: the caller decides what to serve.
        return Ok(Loaded::Nothing);
    };
    let serve = recommender.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        if ChunkId::of(&bytes) != published.blob {
            return Err("its bytes do not hash to its id".to_string());
        }
        let model = Model::decode(&bytes).map_err(|error| error.to_string())?;
        tracing::info!(
            tracks = model.len(),
            bytes = published.bytes,
            age_s = age.as_secs(),
            ms = started.elapsed().as_millis() as u64,
            "recommendation model loaded"
        );
        serve.replace(model, Some(published));
        Ok(())
    })
    .await
    .map_err(|join| StoreError::Backend(format!("recommendation load: {join}")))?;
    decoded.map_err(refuse)?;
    recommender.loads.fetch_add(1, Ordering::Relaxed);
    Ok(Loaded::Serving(age))
}

/// Says each kind of failure at most once a minute (an outage would say it every few
/// seconds).
#[derive(Default)]
struct Warnings(std::collections::HashMap<&'static str, Instant>);

impl Warnings {
    fn warn(&mut self, what: &'static str, error: &StoreError) {
        let last = self.0.get(what);
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            tracing::warn!(%error, "{what}");
            self.0.insert(what, Instant::now());
        }
    }
}

/// The background job. The origin leading the once-only jobs
/// ([`crate::store::Coordination::lead`]) builds at once (or, starting, first serves a model
/// published before: its own from before a restart, or the last leader's), then every
/// `refresh` and, after a catalog change anywhere, within a minute (or `refresh`, if
/// shorter); each build is published. The others serve what it publishes, looking every
/// [`FOLLOW_EVERY`] (backing off to 5 minutes while loads fail), so one build serves every
/// origin. One that finds nothing it can serve for a minute (the leader runs an older
/// version or has the job off, or the blob is gone) builds for itself, every `refresh`,
/// without publishing. A zero `refresh` turns the job off here (the model stays empty:
/// benchmarks that measure something else).
pub async fn refresh(store: Arc<Store>, recommender: Arc<Recommender>, refresh: Duration) {
    if refresh.is_zero() {
        return;
    }
    let refresh = refresh.max(Duration::from_millis(100));
    let after_change = refresh.min(Duration::from_secs(60));
    // Leading: when the model served was built.
    let mut built: Option<Instant> = None;
    // Following: since when nothing servable is published, and when this origin last built
    // for itself meanwhile.
    let mut nothing_since: Option<Instant> = None;
    let mut built_here: Option<Instant> = None;
    let mut wait = FOLLOW_EVERY;
    let mut warnings = Warnings::default();
    loop {
        let leading = match store.coordination().lead().await {
            Ok(leading) => leading,
            Err(error) => {
                warnings.warn(
                    "claiming the lead of the recommendation builds failed",
                    &error,
                );
                false
            }
        };
        if !leading {
            built = None;
            match load_published(&store, &recommender).await {
                Ok(Loaded::Serving(_)) => {
                    nothing_since = None;
                    built_here = None;
                    wait = FOLLOW_EVERY;
                }
                Ok(Loaded::Nothing) => {
                    wait = FOLLOW_EVERY;
                    let since = *nothing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= after_change
                        && built_here.is_none_or(|at| at.elapsed() >= refresh)
                    {
                        if built_here.is_none() {
                            tracing::warn!(
                                "no recommendation model this origin can load is published: \
                                 building its own"
                            );
                        }
                        if let Err(error) = build(&store, &recommender, false).await {
                            warnings.warn("building recommendations failed", &error);
                        }
                        built_here = Some(Instant::now());
                    }
                }
                Err(error) => {
                    warnings.warn("loading the published recommendation model failed", &error);
                    wait = (wait * 2).min(Duration::from_secs(300));
                }
            }
            tokio::time::sleep(wait).await;
            continue;
        }
        if built.is_none() {
            match load_published(&store, &recommender).await {
                Ok(Loaded::Serving(age)) => built = Instant::now().checked_sub(age),
                Ok(Loaded::Nothing) => {}
                Err(error) => {
                    warnings.warn("loading the published recommendation model failed", &error)
                }
            }
        }
        let due = match built {
            None => true,
            Some(at) => {
                at.elapsed() >= refresh
                    || (recommender.dirty.load(Ordering::Relaxed) && at.elapsed() >= after_change)
            }
        };
        if due {
            if let Err(error) = rebuild(&store, &recommender).await {
                warnings.warn("building recommendations failed", &error);
            }
            built = Some(Instant::now());
        }
        tokio::time::sleep(after_change.min(Duration::from_secs(1))).await;
    }
}
