//! The change feed (`changes`, with `change_feed` holding its id, head and pruning point) and
//! the leadership of once-only jobs (a session-level advisory lock held on a connection of its
//! own).
//!
//! Entries are written by [`note_changes`] inside the transaction of the change they describe.
//! It advances `change_feed.head`, whose row lock is then held to the commit: a second writer
//! waits for the first to commit before it numbers its entries, so numbers follow commit order
//! and a reader paging by number never skips an entry that commits late.

use async_trait::async_trait;
use tokio_postgres::NoTls;

use super::{PostgresStore, big, count, db_error, unbig};
use crate::store::{Change, ChangeKind, Coordination, FeedState, Published, StoreError};
use protocol::ChunkId;

/// The advisory lock the leading origin holds (any constant unique to Chorus).
const LEADER_LOCK: i64 = 0x43_48_4f_52_55_53_4c; // "CHORUSL"

/// Writes entries of `kind` for `ids` in `transaction` (see the module docs).
pub(super) async fn note_changes(
    transaction: &deadpool_postgres::Transaction<'_>,
    kind: ChangeKind,
    ids: &[&str],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let statement = transaction
        .prepare_cached(
            "WITH feed AS (
                 UPDATE change_feed SET head = head + cardinality($3::text[]) RETURNING head
             )
             INSERT INTO changes (seq, at_ms, kind, id)
             SELECT feed.head - cardinality($3::text[]) + item.n, $1, $2, item.id
             FROM feed, UNNEST($3::text[]) WITH ORDINALITY AS item(id, n)",
        )
        .await
        .map_err(db_error)?;
    transaction
        .execute(&statement, &[&big(crate::now_ms()), &kind.as_str(), &ids])
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The connection the leadership lock lives on, and whether it holds the lock.
pub(super) struct Leader {
    client: tokio_postgres::Client,
    leading: bool,
}

#[async_trait]
impl Coordination for PostgresStore {
    async fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let rows = self
            .rows(
                "SELECT seq, kind, id FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&big(after), &count(limit)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: &str = row.get(1);
            let kind = ChangeKind::parse(kind)
                .ok_or_else(|| StoreError::Corrupt(format!("change kind {kind:?}")))?;
            out.push(Change {
                seq: unbig(row.get(0)),
                kind,
                id: row.get(2),
            });
        }
        Ok(out)
    }

    async fn feed_state(&self) -> Result<FeedState, StoreError> {
        let row = self
            .row("SELECT id, head, pruned_through FROM change_feed", &[])
            .await?
            .ok_or_else(|| StoreError::Corrupt("change_feed has no row".into()))?;
        Ok(FeedState {
            id: row.get(0),
            head: unbig(row.get(1)),
            pruned_through: unbig(row.get(2)),
        })
    }

    async fn prune_changes(&self, before_ms: u64) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        let row = transaction
            .query_one(
                "WITH gone AS (DELETE FROM changes WHERE at_ms < $1 RETURNING seq)
                 SELECT count(*), max(seq) FROM gone",
                &[&big(before_ms)],
            )
            .await
            .map_err(db_error)?;
        let (pruned, through): (i64, Option<i64>) = (row.get(0), row.get(1));
        let Some(through) = through else {
            return Ok(0);
        };
        transaction
            .execute(
                "UPDATE change_feed SET pruned_through = GREATEST(pruned_through, $1)",
                &[&through],
            )
            .await
            .map_err(db_error)?;
        transaction.commit().await.map_err(db_error)?;
        Ok(unbig(pruned) as usize)
    }

    async fn lead(&self) -> Result<bool, StoreError> {
        let mut leader = self.leader.lock().await;
        if let Some(held) = leader.as_ref() {
            // A broken connection has lost the lock (the server released it with the
            // session): start again on a new one.
            if held.client.is_closed() || held.client.simple_query("").await.is_err() {
                *leader = None;
            }
        }
        if leader.is_none() {
            let (client, connection) = self.config.connect(NoTls).await.map_err(db_error)?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "the leadership connection closed");
                }
            });
            *leader = Some(Leader {
                client,
                leading: false,
            });
        }
        let Some(held) = leader.as_mut() else {
            return Ok(false);
        };
        if !held.leading {
            held.leading = held
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
                .await
                .map_err(db_error)?
                .get(0);
            if held.leading {
                tracing::info!("leading the once-only jobs");
            }
        }
        Ok(held.leading)
    }

    async fn service_keys(&self, fingerprint: &str) -> Result<String, StoreError> {
        let row = self
            .row(
                "UPDATE change_feed SET service = COALESCE(service, $1) RETURNING service",
                &[&fingerprint],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("change_feed has no row".into()))?;
        Ok(row.get(0))
    }

    async fn publish(
        &self,
        name: &str,
        published: &Published,
    ) -> Result<Option<ChunkId>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        let before = transaction
            .query_opt(
                "SELECT blob, previous FROM published WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await
            .map_err(db_error)?;
        let (current, previous) = match &before {
            Some(row) => (
                Some(chunk_id(row.get::<_, &[u8]>(0))?),
                row.get::<_, Option<&[u8]>>(1).map(chunk_id).transpose()?,
            ),
            None => (None, None),
        };
        let blob = published.blob.as_bytes().as_slice();
        // The same blob again (an unchanged model) keeps its predecessor.
        let (kept, dropped) = if current == Some(published.blob) {
            (previous, None)
        } else {
            (current, previous)
        };
        let kept = kept.map(|id| id.as_bytes().to_vec());
        transaction
            .execute(
                "INSERT INTO published (name, blob, built_ms, bytes, previous)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET blob = EXCLUDED.blob,
                     built_ms = EXCLUDED.built_ms, bytes = EXCLUDED.bytes,
                     previous = EXCLUDED.previous",
                &[
                    &name,
                    &blob,
                    &big(published.built_ms),
                    &big(published.bytes),
                    &kept,
                ],
            )
            .await
            .map_err(db_error)?;
        transaction.commit().await.map_err(db_error)?;
        Ok(dropped.filter(|id| *id != published.blob && Some(id.as_bytes().to_vec()) != kept))
    }

    async fn published(&self, name: &str) -> Result<Option<Published>, StoreError> {
        let Some(row) = self
            .row(
                "SELECT blob, built_ms, bytes FROM published WHERE name = $1",
                &[&name],
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Published {
            blob: chunk_id(row.get::<_, &[u8]>(0))?,
            built_ms: unbig(row.get(1)),
            bytes: unbig(row.get(2)),
        }))
    }
}

/// A stored 32-byte blob id.
fn chunk_id(bytes: &[u8]) -> Result<ChunkId, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(ChunkId)
        .map_err(|_| StoreError::Corrupt(format!("a blob id of {} bytes", bytes.len())))
}
