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

    fn replace(&self, model: Model, published: Option<Published>) {
        *self
            .model
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(model);
        *self.lock_serving() = published;
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

/// Builds a model now and serves it: the inputs are read from `store`, the model is built
/// (and encoded) on the blocking pool, then published for the other origins sharing the
/// store: its blob is stored, recorded with [`crate::store::Coordination::publish`], and the
/// blob that no reader can still be loading is removed.
pub async fn rebuild(store: &Store, recommender: &Arc<Recommender>) -> Result<(), StoreError> {
    let started = Instant::now();
    recommender.dirty.store(false, Ordering::Relaxed);
    let inputs = inputs(store, crate::now_ms()).await?;
    let (model, encoded) = tokio::task::spawn_blocking(move || {
        let model = Model::build(inputs);
        let encoded = model.encode();
        (model, encoded)
    })
    .await
    .map_err(|join| StoreError::Backend(format!("recommendation build: {join}")))?;
    let published = Published {
        blob: ChunkId::of(&encoded),
        built_ms: crate::now_ms(),
        bytes: encoded.len() as u64,
    };
    tracing::info!(
        tracks = model.len(),
        streams = model.streams,
        pairs = model.pairs,
        bytes = published.bytes,
        ms = started.elapsed().as_millis() as u64,
        "recommendation model built"
    );
    recommender.replace(model, None);
    recommender.builds.fetch_add(1, Ordering::Relaxed);
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
    if let Some(unnamed) = unnamed
        && let Err(error) = blobs.remove(&unnamed).await
    {
        tracing::warn!(%error, blob = %unnamed, "removing an old recommendation model failed");
    }
    Ok(())
}

/// Serves the newest published model if it is not served already; returns its age (by the
/// builder's clock), or `None` when none is published.
pub async fn load_published(
    store: &Store,
    recommender: &Arc<Recommender>,
) -> Result<Option<Duration>, StoreError> {
    let Some(published) = store.coordination().published(PUBLISHED_NAME).await? else {
        return Ok(None);
    };
    let age = Duration::from_millis(crate::now_ms().saturating_sub(published.built_ms));
    let serving = recommender.lock_serving().map(|serving| serving.blob);
    let refused = *recommender
        .refused
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    if serving == Some(published.blob) || refused == Some(published.blob) {
        return Ok(Some(age));
    }
    let started = Instant::now();
    let Some(bytes) = store
        .blobs()
        .backend()
        .get(&published.blob)
        .await
        .map_err(|error| StoreError::Unavailable(format!("loading the model: {error}")))?
    else {
        // Replaced twice since it was read (its blob is gone): the next look finds the newest.
        return Ok(None);
    };
    let decoded = tokio::task::spawn_blocking(move || {
        if ChunkId::of(&bytes) != published.blob {
            return Err("its bytes do not hash to its id".to_string());
        }
        Model::decode(&bytes).map_err(|error| error.to_string())
    })
    .await
    .map_err(|join| StoreError::Backend(format!("recommendation load: {join}")))?;
    let model = match decoded {
        Ok(model) => model,
        Err(error) => {
            *recommender
                .refused
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()) = Some(published.blob);
            return Err(StoreError::Corrupt(format!(
                "published recommendation model {}: {error}",
                published.blob
            )));
        }
    };
    tracing::info!(
        tracks = model.len(),
        bytes = published.bytes,
        age_s = age.as_secs(),
        ms = started.elapsed().as_millis() as u64,
        "recommendation model loaded"
    );
    recommender.replace(model, Some(published));
    recommender.loads.fetch_add(1, Ordering::Relaxed);
    Ok(Some(age))
}

/// The background job. The origin leading the once-only jobs
/// ([`crate::store::Coordination::lead`]) builds at once (or, starting, first serves a model
/// published before: its own from before a restart, or the last leader's), then every
/// `refresh` and, after a catalog change anywhere, within a minute (or `refresh`, if
/// shorter); each build is published. The others serve what it publishes, looking every
/// [`FOLLOW_EVERY`], so one build serves every origin. A zero `refresh` turns the job off
/// (the model stays empty: benchmarks that measure something else).
pub async fn refresh(store: Arc<Store>, recommender: Arc<Recommender>, refresh: Duration) {
    if refresh.is_zero() {
        return;
    }
    let refresh = refresh.max(Duration::from_millis(100));
    let after_change = refresh.min(Duration::from_secs(60));
    // When the model served was built, while leading.
    let mut built: Option<Instant> = None;
    let mut warned: Option<Instant> = None;
    let mut warn = |what: &str, error: StoreError| {
        // A database or object store outage would say this every few seconds.
        if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
            tracing::warn!(%error, "{what}");
            warned = Some(Instant::now());
        }
    };
    loop {
        let leading = match store.coordination().lead().await {
            Ok(leading) => leading,
            Err(error) => {
                warn(
                    "claiming the lead of the recommendation builds failed",
                    error,
                );
                false
            }
        };
        if !leading {
            built = None;
            if let Err(error) = load_published(&store, &recommender).await {
                warn("loading the published recommendation model failed", error);
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
            continue;
        }
        if built.is_none() {
            match load_published(&store, &recommender).await {
                Ok(Some(age)) => built = Instant::now().checked_sub(age),
                Ok(None) => {}
                Err(error) => warn("loading the published recommendation model failed", error),
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
                warn("building recommendations failed", error);
            }
            built = Some(Instant::now());
        }
        tokio::time::sleep(after_change.min(Duration::from_secs(1))).await;
    }
}
