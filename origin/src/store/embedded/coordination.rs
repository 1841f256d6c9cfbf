//! The change feed (`changes`: big-endian number → entry) and its state (`feed`: `id`, `head`,
//! `pruned_through`).
//!
//! One process opens a sled database, so the feed here serves that origin's own restarts: its
//! search index persists with the number of the last change it applied and catches up from
//! there. A change and its entry are made under one lock, [`EmbeddedStore::changing`]: the
//! entry is written first, the change second, and readers take the same lock, so no reader sees
//! an entry before its change; a crash in between leaves an entry for a change that never
//! happened, which a reader re-reads harmlessly. Popularity moves are appended just after the
//! listening transaction that made them (a crash in that instant loses one re-ranking, which
//! the track's next move repairs).

use async_trait::async_trait;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{EmbeddedStore, decode_u64};
use crate::store::{Change, ChangeKind, Coordination, FeedState, Published, StoreError};
use protocol::ChunkId;

/// What the feed tree holds under `published:{name}`.
#[derive(Serialize, Deserialize)]
struct PublishedEntry {
    blob: ChunkId,
    built_ms: u64,
    bytes: u64,
    previous: Option<ChunkId>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    kind: ChangeKind,
    id: String,
    at_ms: u64,
}

impl EmbeddedStore {
    fn feed_number(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self.0.feed.get(key)?.map_or(0, |bytes| decode_u64(&bytes)))
    }

    /// The feed's id, made on first use.
    fn feed_id(&self) -> Result<String, StoreError> {
        if let Some(id) = self.0.feed.get("id")? {
            return Ok(String::from_utf8_lossy(&id).into_owned());
        }
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let made = hex::encode(bytes);
        // Another caller may have made one meanwhile: the first one written stays.
        let _ = self
            .0
            .feed
            .compare_and_swap("id", None as Option<&[u8]>, Some(made.as_bytes()))?;
        Ok(self
            .0
            .feed
            .get("id")?
            .map(|id| String::from_utf8_lossy(&id).into_owned())
            .unwrap_or(made))
    }

    /// Appends entries of `kind` for `ids`. The caller holds the feed lock.
    fn append_changes(&self, kind: ChangeKind, ids: &[&str]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let at_ms = crate::now_ms();
        let mut head = self.feed_number("head")?;
        let mut batch = sled::Batch::default();
        for id in ids {
            head += 1;
            let entry = Entry {
                kind,
                id: (*id).to_string(),
                at_ms,
            };
            batch.insert(&head.to_be_bytes(), serde_json::to_vec(&entry)?);
        }
        self.0.changes.apply_batch(batch)?;
        self.0.feed.insert("head", &head.to_be_bytes())?;
        Ok(())
    }

    /// Runs `change` with its feed entries written first, under the feed lock (see the
    /// module docs).
    pub(super) async fn changing<T>(
        &self,
        kind: ChangeKind,
        ids: &[&str],
        change: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let _feed = self.0.feed_lock.lock().await;
        self.append_changes(kind, ids)?;
        change.await
    }

    /// Appends entries for changes already made (popularity moves), under the feed lock. The
    /// caller flushes after: flushing under the lock would make every writer of listening
    /// events wait for each other's fsync in turn.
    pub(super) async fn changed(&self, kind: ChangeKind, ids: &[&str]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let _feed = self.0.feed_lock.lock().await;
        self.append_changes(kind, ids)
    }
}

#[async_trait]
impl Coordination for EmbeddedStore {
    async fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let _feed = self.0.feed_lock.lock().await;
        let mut out = Vec::new();
        let start = after.saturating_add(1).to_be_bytes();
        for entry in self.0.changes.range(start..).take(limit) {
            let (key, value) = entry?;
            let entry: Entry = serde_json::from_slice(&value)?;
            out.push(Change {
                seq: decode_u64(&key),
                kind: entry.kind,
                id: entry.id,
            });
        }
        Ok(out)
    }

    async fn feed_state(&self) -> Result<FeedState, StoreError> {
        let id = self.feed_id()?;
        let _feed = self.0.feed_lock.lock().await;
        Ok(FeedState {
            id,
            head: self.feed_number("head")?,
            pruned_through: self.feed_number("pruned_through")?,
        })
    }

    async fn prune_changes(&self, before_ms: u64) -> Result<usize, StoreError> {
        let _feed = self.0.feed_lock.lock().await;
        let mut pruned = 0usize;
        let mut through = None;
        for entry in self.0.changes.iter() {
            let (key, value) = entry?;
            let entry: Entry = serde_json::from_slice(&value)?;
            if entry.at_ms >= before_ms {
                break;
            }
            self.0.changes.remove(&key)?;
            through = Some(decode_u64(&key));
            pruned += 1;
        }
        if let Some(through) = through {
            self.0
                .feed
                .insert("pruned_through", &through.to_be_bytes())?;
            self.flush().await?;
        }
        Ok(pruned)
    }

    async fn lead(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn service_keys(&self, fingerprint: &str) -> Result<String, StoreError> {
        let _ = self.0.feed.compare_and_swap(
            "service",
            None as Option<&[u8]>,
            Some(fingerprint.as_bytes()),
        )?;
        self.flush().await?;
        Ok(self
            .0
            .feed
            .get("service")?
            .map(|recorded| String::from_utf8_lossy(&recorded).into_owned())
            .unwrap_or_else(|| fingerprint.to_string()))
    }

    async fn publish(
        &self,
        name: &str,
        published: &Published,
    ) -> Result<Option<ChunkId>, StoreError> {
        let key = format!("published:{name}");
        let before = self.published_entry(&key)?;
        let (previous, dropped) = match before {
            Some(before) if before.blob == published.blob => (before.previous, None),
            Some(before) => (Some(before.blob), before.previous),
            None => (None, None),
        };
        let entry = PublishedEntry {
            blob: published.blob,
            built_ms: published.built_ms,
            bytes: published.bytes,
            previous,
        };
        let encoded = serde_json::to_vec(&entry)
            .map_err(|error| StoreError::Corrupt(format!("published entry: {error}")))?;
        self.0.feed.insert(key.as_bytes(), encoded)?;
        self.flush().await?;
        Ok(dropped.filter(|id| *id != published.blob && Some(*id) != previous))
    }

    async fn published(&self, name: &str) -> Result<Option<Published>, StoreError> {
        Ok(self
            .published_entry(&format!("published:{name}"))?
            .map(|entry| Published {
                blob: entry.blob,
                built_ms: entry.built_ms,
                bytes: entry.bytes,
            }))
    }
}

impl EmbeddedStore {
    fn published_entry(&self, key: &str) -> Result<Option<PublishedEntry>, StoreError> {
        self.0
            .feed
            .get(key.as_bytes())?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|error| StoreError::Corrupt(format!("{key}: {error}")))
            })
            .transpose()
    }
}
