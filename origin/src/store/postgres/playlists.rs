//! `playlists` (a record with its `version`) and `playlist_access` (owner and collaborators).

use async_trait::async_trait;
use tokio_postgres::types::Json;

use super::{PostgresStore, account_lock, big, count, db_error, note_changes, unbig};
use crate::store::{
    ChangeKind, PLAYLIST_UPDATE_TRIES, PLAYLISTS_PER_ACCOUNT_MAX, PlaylistChange, PlaylistRecord,
    Playlists, Refused, StoreError,
};

#[async_trait]
impl Playlists for PostgresStore {
    async fn create_playlist(&self, playlist: &PlaylistRecord) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        // The count and the insert under the owner's lock: the limit holds under concurrency.
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&account_lock("playlists", &playlist.owner)],
            )
            .await
            .map_err(db_error)?;
        let owned: i64 = transaction
            .query_one(
                "SELECT count(*) FROM playlists WHERE owner = $1",
                &[&playlist.owner],
            )
            .await
            .map_err(db_error)?
            .get(0);
        if unbig(owned) as usize >= PLAYLISTS_PER_ACCOUNT_MAX {
            return Ok(false);
        }
        transaction
            .execute(
                "INSERT INTO playlists (id, owner, version, record) VALUES ($1, $2, $3, $4)",
                &[
                    &playlist.id,
                    &playlist.owner,
                    &big(playlist.version),
                    &Json(playlist),
                ],
            )
            .await
            .map_err(db_error)?;
        transaction
            .execute(
                "INSERT INTO playlist_access (account, playlist) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&playlist.owner, &playlist.id],
            )
            .await
            .map_err(db_error)?;
        note_changes(&transaction, ChangeKind::Playlist, &[&playlist.id]).await?;
        transaction.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn playlist(&self, id: &str) -> Result<Option<PlaylistRecord>, StoreError> {
        let row = self
            .row("SELECT record FROM playlists WHERE id = $1", &[&id])
            .await?;
        Ok(row.map(|row| row.get::<_, Json<PlaylistRecord>>(0).0))
    }

    async fn account_playlist_ids(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .rows(
                "SELECT playlist FROM playlist_access WHERE account = $1 ORDER BY playlist",
                &[&account],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn update_playlist(
        &self,
        id: &str,
        now_ms: u64,
        change: PlaylistChange<'_>,
    ) -> Result<Option<Result<PlaylistRecord, Refused>>, StoreError> {
        for _ in 0..PLAYLIST_UPDATE_TRIES {
            let mut client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT version, record FROM playlists WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(db_error)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let seen: i64 = row.get(0);
            let mut playlist = row.get::<_, Json<PlaylistRecord>>(1).0;
            let collaborators_before = playlist.collaborators.clone();
            if let Err(refused) = change(&mut playlist) {
                return Ok(Some(Err(refused)));
            }
            playlist.version += 1;
            playlist.updated_at_ms = now_ms.max(playlist.updated_at_ms);
            let transaction = client.transaction().await.map_err(db_error)?;
            let updated = transaction
                .execute(
                    "UPDATE playlists SET version = $2, record = $3
                     WHERE id = $1 AND version = $4",
                    &[&id, &big(playlist.version), &Json(&playlist), &seen],
                )
                .await
                .map_err(db_error)?;
            if updated == 0 {
                // Another write got there first: run the change again on the newer record.
                continue;
            }
            let added: Vec<&str> = playlist
                .collaborators
                .iter()
                .filter(|account| !collaborators_before.contains(account))
                .map(String::as_str)
                .collect();
            let removed: Vec<&str> = collaborators_before
                .iter()
                .filter(|account| !playlist.collaborators.contains(account))
                .map(String::as_str)
                .collect();
            if !added.is_empty() {
                transaction
                    .execute(
                        "INSERT INTO playlist_access (account, playlist)
                         SELECT account, $2 FROM UNNEST($1::text[]) AS account
                         ON CONFLICT DO NOTHING",
                        &[&added, &id],
                    )
                    .await
                    .map_err(db_error)?;
            }
            if !removed.is_empty() {
                transaction
                    .execute(
                        "DELETE FROM playlist_access WHERE playlist = $2 AND account = ANY($1)
                         AND account <> $3",
                        &[&removed, &id, &playlist.owner],
                    )
                    .await
                    .map_err(db_error)?;
            }
            note_changes(&transaction, ChangeKind::Playlist, &[id]).await?;
            transaction.commit().await.map_err(db_error)?;
            return Ok(Some(Ok(playlist)));
        }
        Err(StoreError::Transaction(format!(
            "playlist {id}: {PLAYLIST_UPDATE_TRIES} concurrent writes in a row"
        )))
    }

    async fn delete_playlist(&self, id: &str) -> Result<Option<PlaylistRecord>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        let row = transaction
            .query_opt(
                "DELETE FROM playlists WHERE id = $1 RETURNING record",
                &[&id],
            )
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        transaction
            .execute("DELETE FROM playlist_access WHERE playlist = $1", &[&id])
            .await
            .map_err(db_error)?;
        note_changes(&transaction, ChangeKind::Playlist, &[id]).await?;
        transaction.commit().await.map_err(db_error)?;
        Ok(Some(row.get::<_, Json<PlaylistRecord>>(0).0))
    }

    async fn playlists_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PlaylistRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM playlists WHERE $1::text IS NULL OR id > $1
                 ORDER BY id LIMIT $2",
                &[&after, &count(limit)],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| row.get::<_, Json<PlaylistRecord>>(0).0)
            .collect())
    }

    async fn import_playlists(&self, playlists: &[PlaylistRecord]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        for playlist in playlists {
            transaction
                .execute(
                    "INSERT INTO playlists (id, owner, version, record) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET owner = EXCLUDED.owner,
                         version = EXCLUDED.version, record = EXCLUDED.record",
                    &[
                        &playlist.id,
                        &playlist.owner,
                        &big(playlist.version),
                        &Json(playlist),
                    ],
                )
                .await
                .map_err(db_error)?;
            let accounts: Vec<&str> = std::iter::once(&playlist.owner)
                .chain(&playlist.collaborators)
                .map(String::as_str)
                .collect();
            transaction
                .execute(
                    "INSERT INTO playlist_access (account, playlist)
                     SELECT account, $2 FROM UNNEST($1::text[]) AS account
                     ON CONFLICT DO NOTHING",
                    &[&accounts, &playlist.id],
                )
                .await
                .map_err(db_error)?;
        }
        note_changes(&transaction, ChangeKind::Import, &[""]).await?;
        transaction.commit().await.map_err(db_error)
    }
}
