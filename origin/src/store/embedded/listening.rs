//! Listening: `event_ids` (`account/event` → time), `plays` (`account/play` → state),
//! `streams` (big-endian time ‖ `account/play` → stream) and `play_counts` (track → count).

use async_trait::async_trait;

use super::{EmbeddedStore, decode_u64, pair_key, split_pair};
use crate::store::{
    ChangeKind, EventInput, EventsRecorded, Listening, ListeningImport, PlayError, PlayRule,
    PlayState, RecordedElsewhere, StoreError, StreamRecord, popularity_bucket,
};

/// The `streams` key of a stream: its time first, so ranges are time ranges.
fn stream_key(stream: &StreamRecord) -> Vec<u8> {
    let mut key = stream.at_ms.to_be_bytes().to_vec();
    key.extend_from_slice(&pair_key(&stream.account, &stream.play_id));
    key
}

/// Export cursors: which tree, then the key in it (hex).
const EXPORT_TREES: [&str; 4] = ["event_ids", "plays", "streams", "play_counts"];

#[async_trait]
impl Listening for EmbeddedStore {
    async fn record_events(
        &self,
        account: &str,
        events: &[EventInput],
        rule: PlayRule,
    ) -> Result<Result<EventsRecorded, (usize, PlayError)>, StoreError> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let trees = &self.0;
        let result = (
            &trees.event_ids,
            &trees.plays,
            &trees.streams,
            &trees.play_counts,
        )
            .transaction(|(event_ids, plays, streams, play_counts)| {
                let mut recorded = EventsRecorded::default();
                for (index, event) in events.iter().enumerate() {
                    let event_key = pair_key(account, &event.id);
                    if event_ids.get(&event_key)?.is_some() {
                        recorded.duplicates += 1;
                        continue;
                    }
                    event_ids.insert(event_key, &event.at_ms.to_be_bytes())?;
                    let play_key = pair_key(account, &event.play_id);
                    let mut play: Option<PlayState> = match plays.get(&play_key)? {
                        Some(bytes) => Some(
                            serde_json::from_slice(&bytes)
                                .map_err(|error| ConflictableTransactionError::Abort(Err(error)))?,
                        ),
                        None => None,
                    };
                    let qualified = rule(&mut play, event).map_err(|refused| {
                        ConflictableTransactionError::Abort(Ok((index, refused)))
                    })?;
                    let bytes = serde_json::to_vec(&play)
                        .map_err(|error| ConflictableTransactionError::Abort(Err(error)))?;
                    plays.insert(play_key, bytes)?;
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
                        let bytes = serde_json::to_vec(&stream)
                            .map_err(|error| ConflictableTransactionError::Abort(Err(error)))?;
                        streams.insert(stream_key(&stream), bytes)?;
                        let count = play_counts
                            .get(event.track.as_bytes())?
                            .map_or(0, |bytes| decode_u64(&bytes));
                        play_counts.insert(event.track.as_bytes(), &(count + 1).to_be_bytes())?;
                        if popularity_bucket(count + 1) != popularity_bucket(count)
                            && !recorded.popularity_moved.contains(&event.track)
                        {
                            recorded.popularity_moved.push(event.track.clone());
                        }
                        recorded.streams.push(stream);
                    }
                }
                Ok(recorded)
            });
        let recorded = match result {
            Ok(recorded) => recorded,
            Err(TransactionError::Abort(Ok(refused))) => return Ok(Err(refused)),
            Err(TransactionError::Abort(Err(error))) => return Err(error.into()),
            Err(TransactionError::Storage(error)) => return Err(error.into()),
        };
        let moved: Vec<&str> = recorded
            .popularity_moved
            .iter()
            .map(String::as_str)
            .collect();
        self.changed(ChangeKind::Plays, &moved).await?;
        // One flush makes the events and their feed entries durable before the answer.
        self.flush().await?;
        Ok(Ok(recorded))
    }

    async fn streams_between(
        &self,
        from_ms: u64,
        to_ms: u64,
        after: Option<&StreamRecord>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        if after.is_some_and(|after| after.at_ms >= to_ms) || from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(stream_key(after)),
            None => std::ops::Bound::Included(from_ms.to_be_bytes().to_vec()),
        };
        let end = std::ops::Bound::Excluded(to_ms.to_be_bytes().to_vec());
        let mut out = Vec::new();
        for entry in self.0.streams.range((start, end)).take(limit) {
            let stream: StreamRecord = serde_json::from_slice(&entry?.1)?;
            if stream.at_ms >= from_ms {
                out.push(stream);
            }
        }
        Ok(out)
    }

    async fn streams_recorded_elsewhere(
        &self,
        _since_ms: u64,
        _limit: usize,
    ) -> Result<RecordedElsewhere, StoreError> {
        // One process holds the embedded store: every stream in it was recorded here.
        Ok(RecordedElsewhere {
            now_ms: crate::now_ms(),
            streams: Vec::new(),
        })
    }

    async fn streams_newest_first(
        &self,
        from_ms: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        let mut out = Vec::new();
        for entry in self
            .0
            .streams
            .range(from_ms.to_be_bytes()..)
            .rev()
            .take(limit)
        {
            out.push(serde_json::from_slice(&entry?.1)?);
        }
        Ok(out)
    }

    async fn recent_tracks(&self, account: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut plays = Vec::new();
        for entry in self.0.plays.scan_prefix(format!("{account}/").as_bytes()) {
            let play: PlayState = serde_json::from_slice(&entry?.1)?;
            plays.push((play.last_at_ms, play.track));
        }
        plays.sort_by(|a, b| b.cmp(a));
        let mut tracks: Vec<String> = Vec::new();
        for (_, track) in plays {
            if tracks.len() == limit {
                break;
            }
            if !tracks.contains(&track) {
                tracks.push(track);
            }
        }
        Ok(tracks)
    }

    async fn play_counts(&self, tracks: &[String]) -> Result<Vec<u64>, StoreError> {
        let mut counts = Vec::with_capacity(tracks.len());
        for track in tracks {
            counts.push(
                self.0
                    .play_counts
                    .get(track.as_bytes())?
                    .map_or(0, |bytes| decode_u64(&bytes)),
            );
        }
        Ok(counts)
    }

    async fn prune_activity(&self, before_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.0.event_ids.iter() {
            let (key, at) = entry?;
            if decode_u64(&at) < before_ms {
                self.0.event_ids.remove(key)?;
                removed += 1;
            }
        }
        for entry in self.0.plays.iter() {
            let (key, bytes) = entry?;
            let play: PlayState = serde_json::from_slice(&bytes)?;
            if play.last_at_ms < before_ms {
                self.0.plays.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn import_listening(&self, import: &ListeningImport) -> Result<(), StoreError> {
        self.changing(ChangeKind::Import, &[""], async {
            let (mut event_ids, mut plays, mut streams, mut counts) = (
                sled::Batch::default(),
                sled::Batch::default(),
                sled::Batch::default(),
                sled::Batch::default(),
            );
            for (account, event, at_ms) in &import.event_ids {
                event_ids.insert(pair_key(account, event), &at_ms.to_be_bytes());
            }
            for (account, play_id, state) in &import.plays {
                plays.insert(pair_key(account, play_id), serde_json::to_vec(state)?);
            }
            for stream in &import.streams {
                streams.insert(stream_key(stream), serde_json::to_vec(stream)?);
            }
            for (track, count) in &import.play_counts {
                counts.insert(track.as_bytes(), &count.to_be_bytes());
            }
            self.0.event_ids.apply_batch(event_ids)?;
            self.0.plays.apply_batch(plays)?;
            self.0.streams.apply_batch(streams)?;
            self.0.play_counts.apply_batch(counts)?;
            self.flush().await
        })
        .await
    }

    async fn export_listening(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(ListeningImport, Option<String>), StoreError> {
        let (mut tree_index, mut after_key) = match after.and_then(|cursor| cursor.split_once(':'))
        {
            Some((tree, key)) => (
                EXPORT_TREES
                    .iter()
                    .position(|name| *name == tree)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown export cursor {tree}")))?,
                Some(hex::decode(key).map_err(|error| StoreError::Corrupt(error.to_string()))?),
            ),
            None => (0, None),
        };
        let mut page = ListeningImport::default();
        while tree_index < EXPORT_TREES.len() {
            let tree = match tree_index {
                0 => &self.0.event_ids,
                1 => &self.0.plays,
                2 => &self.0.streams,
                _ => &self.0.play_counts,
            };
            let range = match &after_key {
                Some(key) => tree.range((
                    std::ops::Bound::Excluded(key.clone()),
                    std::ops::Bound::Unbounded,
                )),
                None => tree.iter(),
            };
            for entry in range {
                if page.len() == limit {
                    let cursor = format!(
                        "{}:{}",
                        EXPORT_TREES[tree_index],
                        hex::encode(after_key.unwrap_or_default())
                    );
                    return Ok((page, Some(cursor)));
                }
                let (key, value) = entry?;
                match tree_index {
                    0 => {
                        let (account, event) = split_pair(&key);
                        page.event_ids.push((account, event, decode_u64(&value)));
                    }
                    1 => {
                        let (account, play) = split_pair(&key);
                        page.plays
                            .push((account, play, serde_json::from_slice(&value)?));
                    }
                    2 => page.streams.push(serde_json::from_slice(&value)?),
                    _ => page.play_counts.push((
                        String::from_utf8_lossy(&key).into_owned(),
                        decode_u64(&value),
                    )),
                }
                after_key = Some(key.to_vec());
            }
            tree_index += 1;
            after_key = None;
        }
        Ok((page, None))
    }
}
