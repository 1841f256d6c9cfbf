//! Following the store's change feed ([`crate::store::Coordination`]): what keeps each of
//! several origins sharing one database current with changes made through any of them.
//!
//! Two loops poll the feed every [`FOLLOW_INTERVAL`]:
//! - [`caches`] forgets what this origin's caches hold of changed tracks and accounts (record
//!   and session caches, cached manifests, track views), from the feed's head at start (the
//!   caches start empty);
//! - [`search`] keeps the search index current: it builds the index when it could not resume
//!   from disk, then applies each change and commits the position with it, so a restart
//!   resumes there. A gap in the numbers (the feed was pruned past this index) or a bulk
//!   import makes it re-read the catalog (once for all the import's pages that the re-read
//!   started after).
//!
//! A third, [`trending`], reads the streams the other origins recorded (not a feed of
//! changes: streams are far more numerous than catalog changes) and counts them in this
//! origin's trending.
//!
//! Applying a change re-reads its subject from the store as it is now, so applying one twice,
//! or out of a batch, does no harm; a change this origin made was applied already when it was
//! answered, and is applied again here.

use std::sync::Arc;
use std::time::Duration;

use crate::http::AppState;
use crate::search::{CHANGES_PER_COMMIT, Search};
use crate::store::{ChangeKind, Store};

/// How often the feed is read.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// How long a failed read of the feed waits before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Streams read at once by [`trending`].
const STREAMS_PER_READ: usize = 10_000;

/// How far behind its cursor [`trending`] reads again (every [`OVERLAP_EVERY`] reads): a
/// batch of streams that committed up to this much later than it was written is still
/// counted, and none twice.
pub const STREAMS_OVERLAP_MS: u64 = 10_000;

/// Every this many reads, [`trending`] reads again from [`STREAMS_OVERLAP_MS`] behind its
/// cursor (every 5 s), not from the cursor.
pub const OVERLAP_EVERY: u64 = 10;

/// Changes read at once by [`caches`].
const CACHE_CHANGES_MAX: usize = 10_000;

/// Keeps this origin's caches current with changes made anywhere (see the module docs).
pub async fn caches(state: AppState) {
    let mut cursor = loop {
        match state.store.coordination().feed_state().await {
            Ok(feed) => break feed.head,
            Err(error) => {
                tracing::warn!(%error, "reading the change feed failed");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    };
    loop {
        tokio::time::sleep(FOLLOW_INTERVAL).await;
        let changes = match state
            .store
            .coordination()
            .changes_after(cursor, CACHE_CHANGES_MAX)
            .await
        {
            Ok(changes) => changes,
            Err(error) => {
                tracing::warn!(%error, "reading the change feed failed");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        for change in &changes {
            state.store.forget_changed(change);
            if change.kind == ChangeKind::Track {
                state.chunk_source.forget_track(&change.id);
                state.track_views.forget(&change.id);
                state.recommender.catalog_changed();
            }
        }
        if let Some(last) = changes.last() {
            cursor = last.seq;
        }
    }
}

/// Keeps `search` current with the catalog in `store` (see the module docs). Returns only
/// when the runtime stops.
pub async fn search(search: Arc<Search>, store: Arc<Store>) {
    // The feed head the last finished fill started from: imports up to it are in the index.
    let mut filled_through = 0;
    loop {
        let cursor = match search.cursor() {
            Some(cursor) => cursor,
            None => {
                let started = std::time::Instant::now();
                match search.fill(&store).await {
                    Ok(head) => {
                        filled_through = head;
                        tracing::info!(
                            tracks = search.progress().0,
                            seconds = started.elapsed().as_secs_f64(),
                            feed = head,
                            "search index built"
                        );
                        continue;
                    }
                    Err(error) => {
                        tracing::error!(%error, "building the search index failed");
                        tokio::time::sleep(RETRY_AFTER).await;
                        continue;
                    }
                }
            }
        };
        let changes = match store
            .coordination()
            .changes_after(cursor, CHANGES_PER_COMMIT)
            .await
        {
            Ok(changes) => changes,
            Err(error) => {
                tracing::warn!(%error, "reading the change feed failed");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        let Some(first) = changes.first() else {
            tokio::time::sleep(FOLLOW_INTERVAL).await;
            continue;
        };
        if first.seq != cursor + 1 {
            tracing::warn!(
                cursor,
                next = first.seq,
                "the change feed was pruned past the search index: rebuilding it"
            );
            if let Err(error) = search.clear() {
                tracing::error!(%error, "clearing the search index failed");
                tokio::time::sleep(RETRY_AFTER).await;
            }
            continue;
        }
        match search.apply(&store, &changes, filled_through).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!("a bulk import: indexing the catalog again");
                match search.fill(&store).await {
                    Ok(head) => filled_through = head,
                    Err(error) => tracing::error!(%error, "re-indexing after an import failed"),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "applying changes to the search index failed");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Counts in this origin's trending the streams other origins of the service recorded
/// (this origin counts its own as it takes them in), from where the load of trending stopped.
/// Each read starts at the newest stream seen; every [`OVERLAP_EVERY`] reads start
/// [`STREAMS_OVERLAP_MS`] behind it instead, and streams seen within that window are skipped,
/// so a batch that committed late is counted once. Streams older than trending's window (a
/// bulk import of listening history) are not counted.
pub async fn trending(state: AppState) {
    let crate::events::Followed {
        cursor_ms: mut cursor,
        mut seen,
    } = state.activity.take_followed();
    let window_ms = state.activity.window_ms();
    let mut reads: u64 = 0;
    loop {
        tokio::time::sleep(FOLLOW_INTERVAL).await;
        reads += 1;
        let mut since = if reads.is_multiple_of(OVERLAP_EVERY) {
            cursor.saturating_sub(STREAMS_OVERLAP_MS)
        } else {
            cursor
        };
        loop {
            let read = match state
                .store
                .listening()
                .streams_recorded_elsewhere(since, STREAMS_PER_READ)
                .await
            {
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(%error, "reading other origins' streams failed");
                    tokio::time::sleep(RETRY_AFTER).await;
                    break;
                }
            };
            let full = read.streams.len() >= STREAMS_PER_READ;
            let last = read.streams.last().map(|(at, _)| *at);
            let oldest = read.now_ms.saturating_sub(window_ms);
            let mut fresh = Vec::new();
            for (at, stream) in read.streams {
                cursor = cursor.max(at);
                let key = (stream.account.clone(), stream.play_id.clone());
                if seen.insert(key, at).is_none() && stream.at_ms >= oldest {
                    fresh.push(stream);
                }
            }
            if !fresh.is_empty() {
                state.activity.record(&fresh);
            }
            seen.retain(|_, at| at.saturating_add(STREAMS_OVERLAP_MS) >= cursor);
            match last {
                // A full page: read on from its last (ties are in `seen`).
                Some(last) if full && last > since => since = last,
                _ => break,
            }
        }
    }
}
