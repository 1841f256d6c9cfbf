//! `library`: liked songs (kind 0) and followed artists (kind 1), one row per item with the
//! time it was added.

use async_trait::async_trait;

use super::{PostgresStore, account_lock, big, count, db_error, unbig};
use crate::store::{Libraries, Library, LibraryAdd, PlayerRecord, StoreError};
use tokio_postgres::types::Json;

fn kind(which: Library) -> i16 {
    match which {
        Library::Tracks => 0,
        Library::Artists => 1,
    }
}

#[async_trait]
impl Libraries for PostgresStore {
    async fn library_add(
        &self,
        which: Library,
        account: &str,
        item: &str,
        now_ms: u64,
        items_max: usize,
    ) -> Result<LibraryAdd, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        // The count and the insert under the account's lock: the cap holds under concurrency,
        // and of two adds of one item the first time stays.
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&account_lock("library", account)],
            )
            .await
            .map_err(db_error)?;
        if let Some(row) = transaction
            .query_opt(
                "SELECT added_at_ms FROM library WHERE kind = $1 AND account = $2 AND item = $3",
                &[&kind(which), &account, &item],
            )
            .await
            .map_err(db_error)?
        {
            return Ok(LibraryAdd::Already(unbig(row.get(0))));
        }
        let held: i64 = transaction
            .query_one(
                "SELECT count(*) FROM library WHERE kind = $1 AND account = $2",
                &[&kind(which), &account],
            )
            .await
            .map_err(db_error)?
            .get(0);
        if unbig(held) as usize >= items_max {
            return Ok(LibraryAdd::Full);
        }
        transaction
            .execute(
                "INSERT INTO library (kind, account, item, added_at_ms) VALUES ($1, $2, $3, $4)",
                &[&kind(which), &account, &item, &big(now_ms)],
            )
            .await
            .map_err(db_error)?;
        transaction.commit().await.map_err(db_error)?;
        Ok(LibraryAdd::Added(now_ms))
    }

    async fn library_remove(
        &self,
        which: Library,
        account: &str,
        item: &str,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM library WHERE kind = $1 AND account = $2 AND item = $3",
                &[&kind(which), &account, &item],
            )
            .await
            .map_err(db_error)?;
        Ok(removed == 1)
    }

    async fn library_page(
        &self,
        which: Library,
        account: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<(String, u64)>), StoreError> {
        let rows = self
            .rows(
                "SELECT item, added_at_ms, count(*) OVER () FROM library
                 WHERE kind = $1 AND account = $2
                 ORDER BY added_at_ms DESC, item OFFSET $3 LIMIT $4",
                &[&kind(which), &account, &count(offset), &count(limit)],
            )
            .await?;
        let total = match rows.first() {
            Some(row) => unbig(row.get(2)) as usize,
            // Past the end the window count is not there: count separately.
            None => self
                .row(
                    "SELECT count(*) FROM library WHERE kind = $1 AND account = $2",
                    &[&kind(which), &account],
                )
                .await?
                .map_or(0, |row| unbig(row.get(0)) as usize),
        };
        Ok((
            total,
            rows.iter()
                .map(|row| (row.get(0), unbig(row.get(1))))
                .collect(),
        ))
    }

    async fn library_after(
        &self,
        which: Library,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let (after_account, after_item) = after.unzip();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT account, item, added_at_ms FROM library
                 WHERE kind = $1 AND ($2::text IS NULL OR (account, item) > ($2, $3::text))
                 ORDER BY account, item LIMIT $4",
                &[&kind(which), &after_account, &after_item, &count(limit)],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), unbig(row.get(2))))
            .collect())
    }

    async fn player(&self, account: &str) -> Result<Option<PlayerRecord>, StoreError> {
        let row = self
            .row("SELECT record FROM players WHERE account = $1", &[&account])
            .await?;
        Ok(row.map(|row| row.get::<_, Json<PlayerRecord>>(0).0))
    }

    async fn put_player(&self, account: &str, state: &PlayerRecord) -> Result<bool, StoreError> {
        let version = big(state.version);
        let written = if state.version == 1 {
            self.run(
                "INSERT INTO players (account, version, record) VALUES ($1, $2, $3)
                 ON CONFLICT (account) DO NOTHING",
                &[&account, &version, &Json(state)],
            )
            .await?
        } else {
            self.run(
                "UPDATE players SET version = $2::bigint, record = $3
                 WHERE account = $1 AND version = $2::bigint - 1",
                &[&account, &version, &Json(state)],
            )
            .await?
        };
        Ok(written == 1)
    }

    async fn players_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, PlayerRecord)>, StoreError> {
        let rows = self
            .rows(
                "SELECT account, record FROM players WHERE $1::text IS NULL OR account > $1
                 ORDER BY account LIMIT $2",
                &[&after, &count(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, Json<PlayerRecord>>(1).0))
            .collect())
    }

    async fn import_players(&self, players: &[(String, PlayerRecord)]) -> Result<(), StoreError> {
        for (account, state) in players {
            self.run(
                "INSERT INTO players (account, version, record) VALUES ($1, $2, $3)
                 ON CONFLICT (account) DO UPDATE SET version = EXCLUDED.version,
                     record = EXCLUDED.record",
                &[account, &big(state.version), &Json(state)],
            )
            .await?;
        }
        Ok(())
    }
}
