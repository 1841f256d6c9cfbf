//! `event_ids`, `plays`, `streams` and `play_counts`. An event batch is one transaction under
//! the account's advisory lock: the batch's known event ids and plays are read in two
//! queries, the rule runs in memory, and the changes are written back in four bulk
//! statements.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use tokio_postgres::types::Json;

use super::{PostgresStore, account_lock, big, count, db_error, note_changes, unbig};
use crate::store::{
    ChangeKind, EventInput, EventsRecorded, Listening, ListeningImport, PlayError, PlayRule,
    PlayState, RecordedElsewhere, StoreError, StreamRecord, popularity_bucket,
};

fn streams_of(rows: &[tokio_postgres::Row]) -> Vec<StreamRecord> {
    rows.iter()
        .map(|row| row.get::<_, Json<StreamRecord>>(0).0)
        .collect()
}

/// Export cursors: the table, then its last key as JSON.
const EXPORT_TABLES: [&str; 4] = ["event_ids", "plays", "streams", "play_counts"];

impl PostgresStore {
    async fn write_listening(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
        import: &ListeningImport,
        add_counts: bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut moved = Vec::new();
        if !import.event_ids.is_empty() {
            let accounts: Vec<&str> = import.event_ids.iter().map(|e| e.0.as_str()).collect();
            let ids: Vec<&str> = import.event_ids.iter().map(|e| e.1.as_str()).collect();
            let times: Vec<i64> = import.event_ids.iter().map(|e| big(e.2)).collect();
            let statement = transaction
                .prepare_cached(
                    "INSERT INTO event_ids (account, id, at_ms)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
                     ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(db_error)?;
            transaction
                .execute(&statement, &[&accounts, &ids, &times])
                .await
                .map_err(db_error)?;
        }
        if !import.plays.is_empty() {
            let accounts: Vec<&str> = import.plays.iter().map(|p| p.0.as_str()).collect();
            let ids: Vec<&str> = import.plays.iter().map(|p| p.1.as_str()).collect();
            let times: Vec<i64> = import.plays.iter().map(|p| big(p.2.last_at_ms)).collect();
            let states: Vec<Json<&PlayState>> = import.plays.iter().map(|p| Json(&p.2)).collect();
            let statement = transaction
                .prepare_cached(
                    "INSERT INTO plays (account, play_id, last_at_ms, state)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::jsonb[])
                     ON CONFLICT (account, play_id) DO UPDATE
                     SET last_at_ms = EXCLUDED.last_at_ms, state = EXCLUDED.state",
                )
                .await
                .map_err(db_error)?;
            transaction
                .execute(&statement, &[&accounts, &ids, &times, &states])
                .await
                .map_err(db_error)?;
        }
        if !import.streams.is_empty() {
            let times: Vec<i64> = import.streams.iter().map(|s| big(s.at_ms)).collect();
            let accounts: Vec<&str> = import.streams.iter().map(|s| s.account.as_str()).collect();
            let plays: Vec<&str> = import.streams.iter().map(|s| s.play_id.as_str()).collect();
            let records: Vec<Json<&StreamRecord>> = import.streams.iter().map(Json).collect();
            let statement = transaction
                .prepare_cached(
                    "INSERT INTO streams (at_ms, account, play_id, record, recorded_by)
                     SELECT u.*, $5::text
                     FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::jsonb[]) AS u
                     ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(db_error)?;
            transaction
                .execute(
                    &statement,
                    &[&times, &accounts, &plays, &records, &self.instance],
                )
                .await
                .map_err(db_error)?;
        }
        if !import.play_counts.is_empty() {
            let tracks: Vec<&str> = import.play_counts.iter().map(|c| c.0.as_str()).collect();
            let counts: Vec<i64> = import.play_counts.iter().map(|c| big(c.1)).collect();
            let sql = if add_counts {
                "INSERT INTO play_counts (track, count)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[])
                 ON CONFLICT (track) DO UPDATE SET count = play_counts.count + EXCLUDED.count
                 RETURNING track, count"
            } else {
                "INSERT INTO play_counts (track, count)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[])
                 ON CONFLICT (track) DO UPDATE SET count = EXCLUDED.count"
            };
            let statement = transaction.prepare_cached(sql).await.map_err(db_error)?;
            let rows = transaction
                .query(&statement, &[&tracks, &counts])
                .await
                .map_err(db_error)?;
            if add_counts {
                let added: HashMap<&str, u64> = import
                    .play_counts
                    .iter()
                    .map(|(track, count)| (track.as_str(), *count))
                    .collect();
                for row in &rows {
                    let (track, now): (String, i64) = (row.get(0), row.get(1));
                    let now = unbig(now);
                    let before =
                        now.saturating_sub(added.get(track.as_str()).copied().unwrap_or(0));
                    if popularity_bucket(now) != popularity_bucket(before) {
                        moved.push(track);
                    }
                }
            }
        }
        Ok(moved)
    }
}

#[async_trait]
impl Listening for PostgresStore {
    async fn record_events(
        &self,
        account: &str,
        events: &[EventInput],
        rule: PlayRule,
    ) -> Result<Result<EventsRecorded, (usize, PlayError)>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        let lock = transaction
            .prepare_cached("SELECT pg_advisory_xact_lock($1)")
            .await
            .map_err(db_error)?;
        transaction
            .execute(&lock, &[&account_lock("events", account)])
            .await
            .map_err(db_error)?;
        let ids: Vec<&str> = events.iter().map(|event| event.id.as_str()).collect();
        let known = transaction
            .prepare_cached("SELECT id FROM event_ids WHERE account = $1 AND id = ANY($2)")
            .await
            .map_err(db_error)?;
        let mut seen: HashSet<String> = transaction
            .query(&known, &[&account, &ids])
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let play_ids: Vec<&str> = events.iter().map(|event| event.play_id.as_str()).collect();
        let stored_plays = transaction
            .prepare_cached(
                "SELECT play_id, state FROM plays WHERE account = $1 AND play_id = ANY($2)",
            )
            .await
            .map_err(db_error)?;
        let mut plays: HashMap<String, Option<PlayState>> = transaction
            .query(&stored_plays, &[&account, &play_ids])
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| (row.get(0), Some(row.get::<_, Json<PlayState>>(1).0)))
            .collect();
        let mut recorded = EventsRecorded::default();
        let mut write = ListeningImport::default();
        let mut touched: Vec<String> = Vec::new();
        let mut counts: HashMap<String, u64> = HashMap::new();
        for (index, event) in events.iter().enumerate() {
            if !seen.insert(event.id.clone()) {
                recorded.duplicates += 1;
                continue;
            }
            write
                .event_ids
                .push((account.to_string(), event.id.clone(), event.at_ms));
            let play = plays.entry(event.play_id.clone()).or_insert(None);
            let qualified = match rule(play, event) {
                Ok(qualified) => qualified,
                // Dropping the transaction rolls it back: nothing of the batch is written.
                Err(refused) => return Ok(Err((index, refused))),
            };
            if !touched.contains(&event.play_id) {
                touched.push(event.play_id.clone());
            }
            recorded.accepted += 1;
            if qualified {
                let stream = StreamRecord {
                    account: account.to_string(),
                    play_id: event.play_id.clone(),
                    track: event.track.clone(),
                    artist_id: event.artist_id.clone(),
                    genre: event.genre.clone(),
                    region: event.region.clone(),
                    at_ms: event.at_ms,
                };
                *counts.entry(event.track.clone()).or_default() += 1;
                write.streams.push(stream.clone());
                recorded.streams.push(stream);
            }
        }
        for play_id in touched {
            if let Some(Some(state)) = plays.remove(&play_id) {
                write.plays.push((account.to_string(), play_id, state));
            }
        }
        // Counters are shared between accounts: update them in one order (by track), so two
        // batches touching the same tracks wait for each other instead of deadlocking.
        write.play_counts = counts.into_iter().collect();
        write.play_counts.sort();
        recorded.popularity_moved = self.write_listening(&transaction, &write, true).await?;
        let moved: Vec<&str> = recorded
            .popularity_moved
            .iter()
            .map(String::as_str)
            .collect();
        note_changes(&transaction, ChangeKind::Plays, &moved).await?;
        transaction.commit().await.map_err(db_error)?;
        Ok(Ok(recorded))
    }

    async fn streams_between(
        &self,
        from_ms: u64,
        to_ms: u64,
        after: Option<&StreamRecord>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        let client = self.client().await?;
        let rows = match after {
            None => {
                client
                    .query(
                        "SELECT record FROM streams WHERE at_ms >= $1 AND at_ms < $2
                         ORDER BY at_ms, account, play_id LIMIT $3",
                        &[&big(from_ms), &big(to_ms), &count(limit)],
                    )
                    .await
            }
            Some(after) => {
                client
                    .query(
                        "SELECT record FROM streams WHERE at_ms >= $1 AND at_ms < $2
                         AND (at_ms, account, play_id) > ($3, $4, $5)
                         ORDER BY at_ms, account, play_id LIMIT $6",
                        &[
                            &big(from_ms),
                            &big(to_ms),
                            &big(after.at_ms),
                            &after.account,
                            &after.play_id,
                            &count(limit),
                        ],
                    )
                    .await
            }
        }
        .map_err(db_error)?;
        Ok(streams_of(&rows))
    }

    async fn streams_newest_first(
        &self,
        from_ms: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM streams WHERE at_ms >= $1
                 ORDER BY at_ms DESC, account DESC, play_id DESC LIMIT $2",
                &[&big(from_ms), &count(limit)],
            )
            .await
            .map_err(db_error)?;
        Ok(streams_of(&rows))
    }

    async fn streams_recorded_elsewhere(
        &self,
        since_ms: u64,
        limit: usize,
    ) -> Result<RecordedElsewhere, StoreError> {
        let client = self.client().await?;
        let now: i64 = client
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                &[],
            )
            .await
            .map_err(db_error)?
            .get(0);
        let rows = client
            .query(
                "SELECT record, recorded_ms FROM streams
                 WHERE recorded_ms >= $1 AND recorded_by <> $2
                 ORDER BY recorded_ms LIMIT $3",
                &[&big(since_ms), &self.instance, &count(limit)],
            )
            .await
            .map_err(db_error)?;
        Ok(RecordedElsewhere {
            now_ms: u64::try_from(now).unwrap_or(0),
            streams: rows
                .iter()
                .map(|row| {
                    let at: i64 = row.get(1);
                    (
                        u64::try_from(at).unwrap_or(0),
                        row.get::<_, Json<StreamRecord>>(0).0,
                    )
                })
                .collect(),
        })
    }

    async fn recent_tracks(&self, account: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let rows = self
            .rows(
                "SELECT state->>'track' AS track, max(last_at_ms) AS last FROM plays
                 WHERE account = $1 GROUP BY track ORDER BY last DESC, track DESC LIMIT $2",
                &[&account, &count(limit)],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn play_counts(&self, tracks: &[String]) -> Result<Vec<u64>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT track, count FROM play_counts WHERE track = ANY($1)")
            .await
            .map_err(db_error)?;
        let found: HashMap<String, i64> = client
            .query(&statement, &[&tracks])
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        Ok(tracks
            .iter()
            .map(|track| found.get(track).copied().map_or(0, unbig))
            .collect())
    }

    async fn prune_activity(&self, before_ms: u64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let events = client
            .execute("DELETE FROM event_ids WHERE at_ms < $1", &[&big(before_ms)])
            .await
            .map_err(db_error)?;
        let plays = client
            .execute(
                "DELETE FROM plays WHERE last_at_ms < $1",
                &[&big(before_ms)],
            )
            .await
            .map_err(db_error)?;
        Ok((events + plays) as usize)
    }

    async fn import_listening(&self, import: &ListeningImport) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        self.write_listening(&transaction, import, false).await?;
        note_changes(&transaction, ChangeKind::Import, &[""]).await?;
        transaction.commit().await.map_err(db_error)
    }

    async fn export_listening(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(ListeningImport, Option<String>), StoreError> {
        let limit = limit.max(1);
        let corrupt = |what: String| StoreError::Corrupt(format!("export cursor: {what}"));
        let (mut table, mut key): (usize, Option<serde_json::Value>) =
            match after.and_then(|cursor| cursor.split_once(':')) {
                Some((name, key)) => (
                    EXPORT_TABLES
                        .iter()
                        .position(|table| *table == name)
                        .ok_or_else(|| corrupt(name.to_string()))?,
                    Some(serde_json::from_str(key).map_err(|error| corrupt(error.to_string()))?),
                ),
                None => (0, None),
            };
        let client = self.client().await?;
        let mut page = ListeningImport::default();
        let text = |value: &serde_json::Value, at: usize| -> String {
            value[at].as_str().unwrap_or_default().to_string()
        };
        while table < EXPORT_TABLES.len() {
            let room = count(limit - page.len());
            let last: Option<serde_json::Value>;
            match table {
                0 => {
                    let (a, b) = key
                        .as_ref()
                        .map_or((None, None), |k| (Some(text(k, 0)), Some(text(k, 1))));
                    let rows = client
                        .query(
                            "SELECT account, id, at_ms FROM event_ids
                             WHERE $1::text IS NULL OR (account, id) > ($1, $2::text)
                             ORDER BY account, id LIMIT $3",
                            &[&a, &b, &room],
                        )
                        .await
                        .map_err(db_error)?;
                    for row in &rows {
                        page.event_ids
                            .push((row.get(0), row.get(1), unbig(row.get(2))));
                    }
                    last = page
                        .event_ids
                        .last()
                        .filter(|_| !rows.is_empty())
                        .map(|(a, b, _)| serde_json::json!([a, b]));
                }
                1 => {
                    let (a, b) = key
                        .as_ref()
                        .map_or((None, None), |k| (Some(text(k, 0)), Some(text(k, 1))));
                    let rows = client
                        .query(
                            "SELECT account, play_id, state FROM plays
                             WHERE $1::text IS NULL OR (account, play_id) > ($1, $2::text)
                             ORDER BY account, play_id LIMIT $3",
                            &[&a, &b, &room],
                        )
                        .await
                        .map_err(db_error)?;
                    for row in &rows {
                        page.plays.push((
                            row.get(0),
                            row.get(1),
                            row.get::<_, Json<PlayState>>(2).0,
                        ));
                    }
                    last = page
                        .plays
                        .last()
                        .filter(|_| !rows.is_empty())
                        .map(|(a, b, _)| serde_json::json!([a, b]));
                }
                2 => {
                    let at = key.as_ref().and_then(|k| k[0].as_i64());
                    let (a, b) = key
                        .as_ref()
                        .map_or((None, None), |k| (Some(text(k, 1)), Some(text(k, 2))));
                    let rows = client
                        .query(
                            "SELECT record FROM streams
                             WHERE $1::bigint IS NULL OR (at_ms, account, play_id) > ($1, $2::text, $3::text)
                             ORDER BY at_ms, account, play_id LIMIT $4",
                            &[&at, &a, &b, &room],
                        )
                        .await
                        .map_err(db_error)?;
                    page.streams.extend(streams_of(&rows));
                    last = page
                        .streams
                        .last()
                        .filter(|_| !rows.is_empty())
                        .map(|s| serde_json::json!([big(s.at_ms), s.account, s.play_id]));
                }
                _ => {
                    let a = key.as_ref().map(|k| text(k, 0));
                    let rows = client
                        .query(
                            "SELECT track, count FROM play_counts
                             WHERE $1::text IS NULL OR track > $1
                             ORDER BY track LIMIT $2",
                            &[&a, &room],
                        )
                        .await
                        .map_err(db_error)?;
                    for row in &rows {
                        page.play_counts.push((row.get(0), unbig(row.get(1))));
                    }
                    last = page
                        .play_counts
                        .last()
                        .filter(|_| !rows.is_empty())
                        .map(|(t, _)| serde_json::json!([t]));
                }
            }
            if page.len() >= limit {
                // A full page ended in this table, so `last` is its last key.
                let cursor = last.map(|last| format!("{}:{last}", EXPORT_TABLES[table]));
                return Ok((page, cursor));
            }
            table += 1;
            key = None;
        }
        Ok((page, None))
    }
}
