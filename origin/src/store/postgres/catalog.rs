//! `tracks` (indexed by artist and by album) and `renditions`; play counts imported with
//! tracks go to `play_counts`.

use async_trait::async_trait;
use protocol::ChunkId;
use tokio_postgres::types::Json;

use super::{PostgresStore, big, count, db_error, note_changes, unbig};
use crate::store::manifest_chunks;
use crate::store::{Catalog, ChangeKind, ImageSet, RenditionRecord, StoreError, TrackRecord};

fn tracks_of(rows: &[tokio_postgres::Row]) -> Vec<TrackRecord> {
    rows.iter()
        .map(|row| row.get::<_, Json<TrackRecord>>(0).0)
        .collect()
}

#[async_trait]
impl Catalog for PostgresStore {
    async fn publish_track(
        &self,
        track: &TrackRecord,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        let insert_rendition = transaction
            .prepare_cached(
                "INSERT INTO renditions (id, track, record) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET track = EXCLUDED.track, record = EXCLUDED.record",
            )
            .await
            .map_err(db_error)?;
        for (id, record) in renditions {
            transaction
                .execute(&insert_rendition, &[id, &record.track, &Json(record)])
                .await
                .map_err(db_error)?;
        }
        transaction
            .execute(
                "INSERT INTO tracks (id, artist_id, album_id, album_place, record)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET artist_id = EXCLUDED.artist_id,
                     album_id = EXCLUDED.album_id, album_place = EXCLUDED.album_place,
                     record = EXCLUDED.record",
                &[
                    &track.id,
                    &track.artist_id,
                    &track.album_id,
                    &track.album_place(),
                    &Json(track),
                ],
            )
            .await
            .map_err(db_error)?;
        note_changes(&transaction, ChangeKind::Track, &[&track.id]).await?;
        transaction.commit().await.map_err(db_error)
    }

    async fn import_tracks(&self, tracks: &[(TrackRecord, u64)]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        for part in tracks.chunks(5_000) {
            let ids: Vec<&str> = part.iter().map(|(track, _)| track.id.as_str()).collect();
            let artists: Vec<&str> = part
                .iter()
                .map(|(track, _)| track.artist_id.as_str())
                .collect();
            let albums: Vec<Option<&str>> = part
                .iter()
                .map(|(track, _)| track.album_id.as_deref())
                .collect();
            let places: Vec<String> = part.iter().map(|(track, _)| track.album_place()).collect();
            let records: Vec<Json<&TrackRecord>> =
                part.iter().map(|(track, _)| Json(track)).collect();
            transaction
                .execute(
                    "INSERT INTO tracks (id, artist_id, album_id, album_place, record)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                         $5::jsonb[])
                     ON CONFLICT (id) DO UPDATE SET artist_id = EXCLUDED.artist_id,
                         album_id = EXCLUDED.album_id, album_place = EXCLUDED.album_place,
                         record = EXCLUDED.record",
                    &[&ids, &artists, &albums, &places, &records],
                )
                .await
                .map_err(db_error)?;
            let (played, counts): (Vec<&str>, Vec<i64>) = part
                .iter()
                .filter(|(_, plays)| *plays > 0)
                .map(|(track, plays)| (track.id.as_str(), big(*plays)))
                .unzip();
            transaction
                .execute(
                    "INSERT INTO play_counts (track, count)
                     SELECT * FROM UNNEST($1::text[], $2::bigint[])
                     ON CONFLICT (track) DO UPDATE SET count = EXCLUDED.count",
                    &[&played, &counts],
                )
                .await
                .map_err(db_error)?;
        }
        note_changes(&transaction, ChangeKind::Import, &[""]).await?;
        transaction.commit().await.map_err(db_error)
    }

    async fn import_renditions(
        &self,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError> {
        let ids: Vec<&str> = renditions.iter().map(|(id, _)| id.as_str()).collect();
        let tracks: Vec<&str> = renditions
            .iter()
            .map(|(_, record)| record.track.as_str())
            .collect();
        let records: Vec<Json<&RenditionRecord>> =
            renditions.iter().map(|(_, record)| Json(record)).collect();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO renditions (id, track, record)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::jsonb[])
                 ON CONFLICT (id) DO UPDATE SET track = EXCLUDED.track, record = EXCLUDED.record",
                &[&ids, &tracks, &records],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn delete_track(&self, track: &TrackRecord) -> Result<Vec<ChunkId>, StoreError> {
        let ids: Vec<&str> = track
            .renditions
            .iter()
            .map(|rendition| rendition.rendition_id.as_str())
            .collect();
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        let removed = transaction
            .query(
                "DELETE FROM renditions WHERE id = ANY($1) RETURNING record",
                &[&ids],
            )
            .await
            .map_err(db_error)?;
        transaction
            .execute("DELETE FROM tracks WHERE id = $1", &[&track.id])
            .await
            .map_err(db_error)?;
        note_changes(&transaction, ChangeKind::Track, &[&track.id]).await?;
        transaction.commit().await.map_err(db_error)?;
        Ok(removed
            .iter()
            .flat_map(|row| manifest_chunks(&row.get::<_, Json<RenditionRecord>>(0).0.manifest))
            .collect())
    }

    async fn track(&self, id: &str) -> Result<Option<TrackRecord>, StoreError> {
        let row = self
            .row("SELECT record FROM tracks WHERE id = $1", &[&id])
            .await?;
        Ok(row.map(|row| row.get::<_, Json<TrackRecord>>(0).0))
    }

    async fn has_rendition(&self, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT 1 FROM renditions WHERE id = $1")
            .await
            .map_err(db_error)?;
        Ok(client
            .query_opt(&statement, &[&id])
            .await
            .map_err(db_error)?
            .is_some())
    }

    async fn rendition(&self, id: &str) -> Result<Option<RenditionRecord>, StoreError> {
        let row = self
            .row("SELECT record FROM renditions WHERE id = $1", &[&id])
            .await?;
        Ok(row.map(|row| row.get::<_, Json<RenditionRecord>>(0).0))
    }

    async fn artist_tracks(
        &self,
        artist_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        let rows = self
            .rows(
                "SELECT record FROM tracks WHERE artist_id = $1 ORDER BY id OFFSET $2 LIMIT $3",
                &[&artist_id, &count(offset), &count(limit)],
            )
            .await?;
        Ok(tracks_of(&rows))
    }

    async fn album_tracks(
        &self,
        album_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        let rows = self
            .rows(
                "SELECT record FROM tracks WHERE album_id = $1 ORDER BY album_place
                 OFFSET $2 LIMIT $3",
                &[&album_id, &count(offset), &count(limit)],
            )
            .await?;
        Ok(tracks_of(&rows))
    }

    async fn image_for(&self, key: &str) -> Result<Option<ImageSet>, StoreError> {
        let row = self
            .row("SELECT record FROM images WHERE key = $1", &[&key])
            .await?;
        Ok(row.map(|row| row.get::<_, Json<ImageSet>>(0).0))
    }

    async fn set_image_for(&self, key: &str, image: Option<&ImageSet>) -> Result<(), StoreError> {
        match image {
            Some(image) => {
                self.run(
                    "INSERT INTO images (key, record) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record",
                    &[&key, &Json(image)],
                )
                .await?
            }
            None => {
                self.run("DELETE FROM images WHERE key = $1", &[&key])
                    .await?
            }
        };
        Ok(())
    }

    async fn images_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ImageSet)>, StoreError> {
        let rows = self
            .rows(
                "SELECT key, record FROM images WHERE $1::text IS NULL OR key > $1
                 ORDER BY key LIMIT $2",
                &[&after, &count(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, Json<ImageSet>>(1).0))
            .collect())
    }

    async fn tracks_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM tracks WHERE $1::text IS NULL OR id > $1
                 ORDER BY id LIMIT $2",
                &[&after, &count(limit)],
            )
            .await
            .map_err(db_error)?;
        Ok(tracks_of(&rows))
    }

    async fn renditions_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RenditionRecord)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, record FROM renditions WHERE $1::text IS NULL OR id > $1
                 ORDER BY id LIMIT $2",
                &[&after, &count(limit)],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, Json<RenditionRecord>>(1).0))
            .collect())
    }

    async fn track_count(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT count(*) FROM tracks", &[])
            .await
            .map_err(db_error)?;
        Ok(unbig(row.get(0)))
    }

    async fn settle_after_import(&self) -> Result<(), StoreError> {
        // Outside any transaction (VACUUM refuses one); the whole database, as a restore
        // would be followed by.
        let client = self.client().await?;
        client
            .batch_execute("VACUUM (ANALYZE)")
            .await
            .map_err(db_error)
    }
}
