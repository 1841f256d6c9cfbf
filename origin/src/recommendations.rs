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
pub fn inputs(store: &Store, now_ms: u64) -> Result<Inputs, StoreError> {
    let mut inputs = Inputs::default();
    for track in store.all_tracks() {
        let track = track?;
        let plays = store.play_count(&track.id)?;
        inputs.tracks.push((track, plays));
    }
    let from = now_ms.saturating_sub(HISTORY_DAYS * 24 * 3600 * 1000);
    for stream in store.streams_newest_first(from).take(STREAMS_MAX) {
        inputs.streams.push(stream?);
    }
    for playlist in store.all_playlists() {
        inputs.playlists.push(playlist?);
    }
    Ok(inputs)
}

/// Builds a model now and serves it.
pub fn rebuild(store: &Store, recommender: &Recommender) -> Result<(), StoreError> {
    let started = Instant::now();
    recommender.dirty.store(false, Ordering::Relaxed);
    let model = Model::build(inputs(store, crate::now_ms())?);
    tracing::info!(
        tracks = model.len(),
        streams = model.streams,
        pairs = model.pairs,
        ms = started.elapsed().as_millis() as u64,
        "recommendation model built"
    );
    recommender.replace(model);
    Ok(())
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
            let (store, recommender) = (store.clone(), recommender.clone());
            match tokio::task::spawn_blocking(move || rebuild(&store, &recommender)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "building recommendations failed"),
                Err(error) => tracing::warn!(%error, "recommendation job panicked"),
            }
            built = Some(Instant::now());
        }
        tokio::time::sleep(after_change.min(Duration::from_secs(1))).await;
    }
}
