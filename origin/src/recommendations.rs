//! `GET /v1/recommendations` and `GET /v1/tracks/{id}/radio`, served from the in-memory
//! [`Model`] that [`refresh`] rebuilds in the background.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::recommend::{HISTORY_DAYS, Inputs, Model, STREAMS_MAX};
use crate::store::{Store, StoreError};

/// Seeds of each kind (tracks, artists) one request may give.
pub const SEEDS_MAX: usize = 5;

/// The current model, swapped whole by the background job.
#[derive(Debug, Default)]
pub struct Recommender {
    model: RwLock<Arc<Model>>,
    /// The catalog changed since the last build.
    dirty: AtomicBool,
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

    fn replace(&self, model: Model) {
        *self
            .model
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(model);
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

/// Builds a model now and serves it: the inputs are read from `store`, the model is built on
/// the blocking pool.
pub async fn rebuild(store: &Store, recommender: &Arc<Recommender>) -> Result<(), StoreError> {
    let started = Instant::now();
    recommender.dirty.store(false, Ordering::Relaxed);
    let inputs = inputs(store, crate::now_ms()).await?;
    let recommender = recommender.clone();
    tokio::task::spawn_blocking(move || {
        let model = Model::build(inputs);
        tracing::info!(
            tracks = model.len(),
            streams = model.streams,
            pairs = model.pairs,
            ms = started.elapsed().as_millis() as u64,
            "recommendation model built"
        );
        recommender.replace(model);
    })
    .await
    .map_err(|join| StoreError::Backend(format!("recommendation build: {join}")))
}

/// The background job: builds at once, then every `refresh` and, after a catalog change,
/// within a minute (or `refresh`, if shorter). A zero `refresh` turns the job off (the
/// model stays empty: benchmarks that measure something else, or an origin whose
/// recommendations are served by another machine).
pub async fn refresh(store: Arc<Store>, recommender: Arc<Recommender>, refresh: Duration) {
    if refresh.is_zero() {
        return;
    }
    let refresh = refresh.max(Duration::from_millis(100));
    let after_change = refresh.min(Duration::from_secs(60));
    let mut built: Option<Instant> = None;
    loop {
        let due = match built {
            None => true,
            Some(at) => {
                at.elapsed() >= refresh
                    || (recommender.dirty.load(Ordering::Relaxed) && at.elapsed() >= after_change)
            }
        };
        if due {
            if let Err(error) = rebuild(&store, &recommender).await {
                tracing::warn!(%error, "building recommendations failed");
            }
            built = Some(Instant::now());
        }
        tokio::time::sleep(after_change.min(Duration::from_secs(1))).await;
    }
}
