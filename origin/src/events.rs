//! Listening events (`POST /v1/events`), trending (`GET /v1/trending`) and royalties
//! (`GET /v1/royalties`): the HTTP drivers of [`crate::activity`].
//!
//! A batch of events is checked whole before anything is written, then recorded in one
//! store transaction: a bad event refuses the batch with its index (the client drops it and
//! sends the rest again), a repeated event id is counted as a duplicate and changes nothing.
//! Plays that qualify (the 30-second rule) become streams: they bump the track's play count
//! (search ranking), feed trending at once and are what royalties count.

use std::sync::Mutex;

use crate::activity::{StreamRecord, Trending, TrendingConfig};
use crate::store::{Store, StoreError};

pub use api::events::EVENTS_PER_BATCH_MAX;
/// Largest events body: a full batch of events with the longest ids fits.
pub const EVENTS_BODY_BYTES_MAX: usize = EVENTS_PER_BATCH_MAX * 512;
/// Longest event or play id.
pub const EVENT_ID_BYTES_MAX: usize = 64;
/// Longest position an event may report (a day: longer than any track).
pub const POSITION_MS_MAX: u64 = 24 * 3600 * 1000;
/// Most streams one royalty report reads (a month of a large service belongs in a batch
/// pipeline; see ARCHITECTURE.md).
pub const ROYALTY_STREAMS_MAX: usize = 20_000_000;

/// In-memory listening state: trending, rebuilt from the stored streams at start, then fed
/// the streams this origin takes in and (through [`crate::follow::trending`]) the ones other
/// origins of the service record.
#[derive(Debug)]
pub struct Activity {
    trending: Mutex<Trending>,
    /// Where [`crate::follow::trending`] starts: taken by it once.
    followed: Mutex<Option<Followed>>,
    /// Trending's window (older streams are not counted when they arrive late).
    window_ms: u64,
}

/// Where following the other origins' streams stands: the newest recording time seen (the
/// store's clock), and the streams recorded within [`crate::follow::STREAMS_OVERLAP_MS`]
/// before it that are counted already (read again behind the cursor, they are skipped).
#[derive(Debug, Default)]
pub struct Followed {
    /// The newest recording time seen.
    pub cursor_ms: u64,
    /// (account, play id) → when it was recorded.
    pub seen: std::collections::HashMap<(String, String), u64>,
}

impl Activity {
    /// Trending over the streams of the last window in `store`, as of `now_ms`.
    pub async fn load(
        store: &Store,
        config: TrendingConfig,
        now_ms: u64,
    ) -> Result<Self, StoreError> {
        const PAGE: usize = 10_000;
        let loaded_at_ms = store
            .listening()
            .streams_recorded_elsewhere(u64::MAX, 0)
            .await?
            .now_ms;
        let mut trending = Trending::new(config);
        let mut last: Option<crate::activity::StreamRecord> = None;
        loop {
            let page = store
                .listening()
                .streams_between(
                    now_ms.saturating_sub(config.window_ms),
                    u64::MAX,
                    last.as_ref(),
                    PAGE,
                )
                .await?;
            for stream in &page {
                trending.record(stream);
            }
            let done = page.len() < PAGE;
            last = page.into_iter().last();
            if done {
                break;
            }
        }
        // What the load counted of the last moments: following starts behind the load (for
        // late commits) and must not count these again. (This origin has recorded nothing
        // yet, so every stream is "elsewhere".)
        let mut followed = Followed {
            cursor_ms: loaded_at_ms,
            seen: Default::default(),
        };
        let mut since = loaded_at_ms.saturating_sub(crate::follow::STREAMS_OVERLAP_MS);
        loop {
            let read = store
                .listening()
                .streams_recorded_elsewhere(since, PAGE)
                .await?;
            let full = read.streams.len() >= PAGE;
            let last = read.streams.last().map(|(at, _)| *at);
            for (at, stream) in read.streams {
                followed.cursor_ms = followed.cursor_ms.max(at);
                followed.seen.insert((stream.account, stream.play_id), at);
            }
            match last {
                Some(last) if full && last > since => since = last,
                _ => break,
            }
        }
        Ok(Self {
            trending: Mutex::new(trending),
            followed: Mutex::new(Some(followed)),
            window_ms: config.window_ms,
        })
    }

    /// Where following the other origins' streams starts (once; later calls get a cursor at
    /// 0, which re-reads nothing older than the store keeps).
    pub fn take_followed(&self) -> Followed {
        self.followed
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// Trending's window.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    fn trending(&self) -> std::sync::MutexGuard<'_, Trending> {
        self.trending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Counts new streams.
    pub fn record(&self, streams: &[StreamRecord]) {
        let mut trending = self.trending();
        for stream in streams {
            trending.record(stream);
        }
    }

    /// Drops what fell out of the window.
    pub fn prune(&self, now_ms: u64) {
        self.trending().prune(now_ms);
    }

    /// The top of trending (see [`Trending::top`]).
    pub fn top(
        &self,
        region: Option<&str>,
        genre: Option<&str>,
        now_ms: u64,
        limit: usize,
    ) -> Vec<crate::activity::TrendingEntry> {
        self.trending().top(region, genre, now_ms, limit)
    }
}
