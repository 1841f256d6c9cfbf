//! Recommendations, each with a reason: item-to-item collaborative filtering from
//! co-listening and co-playlisting, content similarity (artist, genre, tempo and loudness
//! measured at ingest) for new users and new tracks, and radio from a track.
//!
//! A background job ([`Model::build`], every `recommendations_refresh_s`) reads the catalog,
//! the qualified streams of the last [`HISTORY_DAYS`] days and every playlist, and builds a
//! [`Model`]; requests are served from it in memory ([`Model::recommend`]), never from the
//! store. Everything is bounded: neighbours per track, pairs counted, streams read.
//!
//! - **Co-listening**: each account's streams in time order, split into sessions at 30 min of
//!   silence; tracks within [`WINDOW`] plays of each other in a session are a pair.
//! - **Co-playlisting**: tracks within [`WINDOW`] positions of each other in a playlist.
//! - Pair weights are normalised like a cosine (`pairs / sqrt(n_a n_b)`), and each track keeps
//!   its [`NEIGHBOURS_MAX`] strongest neighbours, remembering which signal dominated.
//! - **Content**: tracks of the seed's genre nearest in tempo and loudness, and the artist's
//!   most played tracks.

use std::collections::HashMap;

use serde::Serialize;

use crate::activity::StreamRecord;
use crate::store::{PlaylistRecord, TrackRecord};

/// Days of streams the model learns from.
pub const HISTORY_DAYS: u64 = 90;
/// Streams read per build at most (the newest are kept).
pub const STREAMS_MAX: usize = 5_000_000;
/// Distinct pairs counted per build at most (later new pairs are ignored).
pub const PAIRS_MAX: usize = 10_000_000;
/// Neighbours kept per track.
pub const NEIGHBOURS_MAX: usize = 30;
/// Plays (or playlist positions) apart that still make a pair.
pub const WINDOW: usize = 5;
/// Tracks one answer holds at most.
pub const LIMIT_MAX: usize = 100;
/// Tracks of one artist in one answer at most (variety).
pub const PER_ARTIST_MAX: usize = 3;
const SESSION_GAP_MS: u64 = 30 * 60 * 1000;

pub use api::recommendations::Reason;

/// One recommended track.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    /// Track id.
    pub track_id: String,
    /// Relative strength (higher first).
    pub score: f32,
    /// Why.
    pub reason: Reason,
}

#[derive(Debug, Clone, bincode::Encode, bincode::Decode)]
struct Features {
    artist: u32,
    genre: Option<u32>,
    tempo: Option<f32>,
    loudness: f32,
    plays: u64,
    /// Empty: everywhere.
    markets: Vec<[u8; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, bincode::Encode, bincode::Decode)]
struct Neighbour {
    track: u32,
    score: f32,
    /// True when co-playlisting weighed more than co-listening.
    playlists: bool,
}

/// What the background job builds and requests read.
#[derive(Debug, Default)]
pub struct Model {
    ids: Vec<String>,
    titles: Vec<String>,
    index: HashMap<String, u32>,
    features: Vec<Features>,
    artists: Vec<String>,
    artist_names: Vec<String>,
    artist_index: HashMap<String, u32>,
    genres: Vec<String>,
    /// Per genre: tracks sorted by tempo (tracks without a tempo are left out).
    by_genre: Vec<Vec<(f32, u32)>>,
    /// Per artist: tracks, most played first.
    by_artist: Vec<Vec<u32>>,
    neighbours: Vec<Vec<Neighbour>>,
    /// Most played tracks overall.
    popular: Vec<u32>,
    /// Pairs counted (for the log and the benchmark).
    pub pairs: usize,
    /// Streams learned from.
    pub streams: usize,
}

/// Bytes of an encoded model at most (one of 1,000,000 tracks encodes to about 100 MB).
pub const ENCODED_MAX: usize = 1 << 31;

/// The first bytes of an encoded model: a name and the format's version.
const ENCODED_MAGIC: &[u8; 8] = b"CHRMDL\x00\x01";

/// The model as stored: [`Model`] without the maps, which [`Model::decode`] rebuilds.
#[derive(bincode::Encode)]
struct EncodedRef<'a> {
    ids: &'a [String],
    titles: &'a [String],
    features: &'a [Features],
    artists: &'a [String],
    artist_names: &'a [String],
    genres: &'a [String],
    by_genre: &'a [Vec<(f32, u32)>],
    by_artist: &'a [Vec<u32>],
    neighbours: &'a [Vec<Neighbour>],
    popular: &'a [u32],
    pairs: u64,
    streams: u64,
}

/// What [`EncodedRef`] decodes to.
#[derive(bincode::Decode)]
struct Encoded {
    ids: Vec<String>,
    titles: Vec<String>,
    features: Vec<Features>,
    artists: Vec<String>,
    artist_names: Vec<String>,
    genres: Vec<String>,
    by_genre: Vec<Vec<(f32, u32)>>,
    by_artist: Vec<Vec<u32>>,
    neighbours: Vec<Vec<Neighbour>>,
    popular: Vec<u32>,
    pairs: u64,
    streams: u64,
}

/// Why bytes are not a model [`Model::decode`] can serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Not an encoded model of this format.
    #[error("not a recommendation model of this version: {0}")]
    Format(String),
    /// Decoded, but its parts do not fit together (an index out of range).
    #[error("recommendation model is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// Inputs of [`Model::build`].
#[derive(Debug, Default)]
pub struct Inputs {
    /// The catalog with each track's play count.
    pub tracks: Vec<(TrackRecord, u64)>,
    /// Qualified streams, any order.
    pub streams: Vec<StreamRecord>,
    /// Playlists.
    pub playlists: Vec<PlaylistRecord>,
}

fn region_code(text: &str) -> Option<[u8; 2]> {
    let bytes = text.as_bytes();
    (bytes.len() == 2).then(|| [bytes[0], bytes[1]])
}

impl Model {
    /// Builds a model (CPU-bound: run it off the async runtime).
    pub fn build(inputs: Inputs) -> Self {
        let mut model = Model::default();
        let mut genre_index: HashMap<String, u32> = HashMap::new();
        for (track, plays) in &inputs.tracks {
            let at = model.ids.len() as u32;
            let artist = *model
                .artist_index
                .entry(track.artist_id.clone())
                .or_insert_with(|| {
                    model.artists.push(track.artist_id.clone());
                    model.artist_names.push(track.artist.clone());
                    model.by_artist.push(Vec::new());
                    (model.artists.len() - 1) as u32
                });
            let genre = track.genre.as_ref().map(|genre| {
                *genre_index.entry(genre.to_lowercase()).or_insert_with(|| {
                    model.genres.push(genre.to_lowercase());
                    model.by_genre.push(Vec::new());
                    (model.genres.len() - 1) as u32
                })
            });
            model.index.insert(track.id.clone(), at);
            model.ids.push(track.id.clone());
            model.titles.push(track.title.clone());
            model.by_artist[artist as usize].push(at);
            if let (Some(genre), Some(tempo)) = (genre, track.tempo_bpm) {
                model.by_genre[genre as usize].push((tempo, at));
            }
            model.features.push(Features {
                artist,
                genre,
                tempo: track.tempo_bpm,
                loudness: if track.loudness_lufs.is_finite() {
                    track.loudness_lufs as f32
                } else {
                    -70.0
                },
                plays: *plays,
                markets: track
                    .markets
                    .iter()
                    .filter_map(|m| region_code(m))
                    .collect(),
            });
        }
        for tracks in &mut model.by_genre {
            tracks.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        let features = &model.features;
        for tracks in &mut model.by_artist {
            tracks.sort_by(|a, b| {
                features[*b as usize]
                    .plays
                    .cmp(&features[*a as usize].plays)
                    .then(a.cmp(b))
            });
        }
        let mut popular: Vec<u32> = (0..model.ids.len() as u32)
            .filter(|&t| model.features[t as usize].plays > 0)
            .collect();
        popular.sort_by(|a, b| {
            model.features[*b as usize]
                .plays
                .cmp(&model.features[*a as usize].plays)
                .then(a.cmp(b))
        });
        popular.truncate(1000);
        model.popular = popular;
        model.learn_pairs(&inputs);
        model
    }

    /// Counts co-listening and co-playlisting pairs and keeps each track's best neighbours.
    fn learn_pairs(&mut self, inputs: &Inputs) {
        // (a, b) with a < b -> (listening weight, playlist weight).
        let mut pairs: HashMap<(u32, u32), (f32, f32)> = HashMap::new();
        let mut occurrences = vec![0f32; self.ids.len()];
        let mut add =
            |sequence: &[u32], playlist: bool, pairs: &mut HashMap<(u32, u32), (f32, f32)>| {
                for (at, &a) in sequence.iter().enumerate() {
                    occurrences[a as usize] += 1.0;
                    for &b in sequence.iter().skip(at + 1).take(WINDOW) {
                        if a == b {
                            continue;
                        }
                        let key = (a.min(b), a.max(b));
                        if pairs.len() >= PAIRS_MAX && !pairs.contains_key(&key) {
                            continue;
                        }
                        let entry = pairs.entry(key).or_default();
                        if playlist {
                            entry.1 += 1.0;
                        } else {
                            entry.0 += 1.0;
                        }
                    }
                }
            };
        let mut by_account: HashMap<&str, Vec<(u64, u32)>> = HashMap::new();
        for stream in inputs.streams.iter().take(STREAMS_MAX) {
            if let Some(&track) = self.index.get(&stream.track) {
                by_account
                    .entry(&stream.account)
                    .or_default()
                    .push((stream.at_ms, track));
                self.streams += 1;
            }
        }
        for (_, mut listened) in by_account {
            listened.sort_unstable();
            let mut session: Vec<u32> = Vec::new();
            let mut last = 0;
            for (at, track) in listened {
                if !session.is_empty() && at.saturating_sub(last) > SESSION_GAP_MS {
                    add(&session, false, &mut pairs);
                    session.clear();
                }
                session.push(track);
                last = at;
            }
            add(&session, false, &mut pairs);
        }
        for playlist in &inputs.playlists {
            let sequence: Vec<u32> = playlist
                .tracks
                .iter()
                .filter_map(|id| self.index.get(id).copied())
                .collect();
            add(&sequence, true, &mut pairs);
        }
        self.pairs = pairs.len();
        let mut neighbours: Vec<Vec<Neighbour>> = vec![Vec::new(); self.ids.len()];
        for ((a, b), (listening, playlist)) in pairs {
            let norm = (occurrences[a as usize] * occurrences[b as usize])
                .sqrt()
                .max(1.0);
            let score = (listening + playlist) / norm;
            let playlists = playlist > listening;
            for (from, to) in [(a, b), (b, a)] {
                neighbours[from as usize].push(Neighbour {
                    track: to,
                    score,
                    playlists,
                });
            }
        }
        for list in &mut neighbours {
            list.sort_by(|x, y| y.score.total_cmp(&x.score).then(x.track.cmp(&y.track)));
            list.truncate(NEIGHBOURS_MAX);
            list.shrink_to_fit();
        }
        self.neighbours = neighbours;
    }

    /// The model as bytes for [`Model::decode`] (the leading origin stores them for the others).
    pub fn encode(&self) -> Vec<u8> {
        let stored = EncodedRef {
            ids: &self.ids,
            titles: &self.titles,
            features: &self.features,
            artists: &self.artists,
            artist_names: &self.artist_names,
            genres: &self.genres,
            by_genre: &self.by_genre,
            by_artist: &self.by_artist,
            neighbours: &self.neighbours,
            popular: &self.popular,
            pairs: self.pairs as u64,
            streams: self.streams as u64,
        };
        let mut out = ENCODED_MAGIC.to_vec();
        // Encoding into a Vec cannot fail: no type here refuses to encode.
        let _ = bincode::encode_into_std_write(&stored, &mut out, bincode::config::standard());
        out
    }

    /// A model from [`Model::encode`]'s bytes. Every index is checked, so a model that decodes
    /// serves requests without panicking whatever the bytes were; sizes are bounded by
    /// [`ENCODED_MAX`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ModelError> {
        let Some(body) = bytes.strip_prefix(ENCODED_MAGIC.as_slice()) else {
            return Err(ModelError::Format("unknown header".into()));
        };
        if bytes.len() > ENCODED_MAX {
            return Err(ModelError::Format(format!("{} bytes", bytes.len())));
        }
        let config = bincode::config::standard().with_limit::<ENCODED_MAX>();
        let (stored, used): (Encoded, usize) = bincode::decode_from_slice(body, config)
            .map_err(|error| ModelError::Format(error.to_string()))?;
        if used != body.len() {
            return Err(ModelError::Format("trailing bytes".into()));
        }
        let tracks = stored.ids.len();
        let artists = stored.artists.len();
        let genres = stored.genres.len();
        let track_ok = |track: &u32| (*track as usize) < tracks;
        if stored.titles.len() != tracks
            || stored.features.len() != tracks
            || stored.neighbours.len() != tracks
        {
            return Err(ModelError::Inconsistent("per-track lists differ in length"));
        }
        if stored.artist_names.len() != artists || stored.by_artist.len() != artists {
            return Err(ModelError::Inconsistent(
                "per-artist lists differ in length",
            ));
        }
        if stored.by_genre.len() != genres {
            return Err(ModelError::Inconsistent("per-genre lists differ in length"));
        }
        if !stored.features.iter().all(|features| {
            (features.artist as usize) < artists
                && features.genre.is_none_or(|genre| (genre as usize) < genres)
        }) {
            return Err(ModelError::Inconsistent("a track's artist or genre"));
        }
        if !stored
            .by_genre
            .iter()
            .flatten()
            .all(|(_, track)| track_ok(track))
            || !stored.by_artist.iter().flatten().all(track_ok)
            || !stored.popular.iter().all(track_ok)
            || !stored
                .neighbours
                .iter()
                .flatten()
                .all(|neighbour| track_ok(&neighbour.track))
        {
            return Err(ModelError::Inconsistent("a track index"));
        }
        let index: HashMap<String, u32> = stored
            .ids
            .iter()
            .enumerate()
            .map(|(at, id)| (id.clone(), at as u32))
            .collect();
        let artist_index: HashMap<String, u32> = stored
            .artists
            .iter()
            .enumerate()
            .map(|(at, id)| (id.clone(), at as u32))
            .collect();
        if index.len() != tracks || artist_index.len() != artists || tracks > u32::MAX as usize {
            return Err(ModelError::Inconsistent("an id twice"));
        }
        Ok(Self {
            ids: stored.ids,
            titles: stored.titles,
            index,
            features: stored.features,
            artists: stored.artists,
            artist_names: stored.artist_names,
            artist_index,
            genres: stored.genres,
            by_genre: stored.by_genre,
            by_artist: stored.by_artist,
            neighbours: stored.neighbours,
            popular: stored.popular,
            pairs: stored.pairs as usize,
            streams: stored.streams as usize,
        })
    }

    /// Tracks in the model.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True for an empty model.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn playable(&self, track: u32, region: Option<[u8; 2]>) -> bool {
        let markets = &self.features[track as usize].markets;
        markets.is_empty() || region.is_some_and(|region| markets.contains(&region))
    }

    /// Content neighbours of `seed`: its genre's tracks nearest in tempo and loudness.
    fn similar_sound(&self, seed: u32, take: usize) -> Vec<(u32, f32)> {
        let features = &self.features[seed as usize];
        let (Some(genre), Some(tempo)) = (features.genre, features.tempo) else {
            return Vec::new();
        };
        let tracks = &self.by_genre[genre as usize];
        let centre = tracks.partition_point(|(t, _)| *t < tempo);
        let from = centre.saturating_sub(take * 2);
        let to = (centre + take * 2).min(tracks.len());
        let mut near: Vec<(u32, f32)> = tracks[from..to]
            .iter()
            .filter(|(_, track)| *track != seed)
            .map(|(other_tempo, track)| {
                let loudness = self.features[*track as usize].loudness;
                let distance =
                    (other_tempo - tempo).abs() / 8.0 + (loudness - features.loudness).abs() / 4.0;
                (*track, 1.0 / (1.0 + distance))
            })
            .collect();
        near.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        near.truncate(take);
        near
    }

    /// Recommendations from `seed_tracks` and `seed_artists` for a listener in `region`, at
    /// most `limit`. With no seeds (a new listener), `trending` (popular where they are) and
    /// the most played tracks fill in. Seeds themselves are left out, as are tracks not
    /// licensed in `region`, and no artist appears more than [`PER_ARTIST_MAX`] times.
    pub fn recommend(
        &self,
        seed_tracks: &[String],
        seed_artists: &[String],
        region: Option<&str>,
        trending: &[String],
        limit: usize,
    ) -> Vec<Pick> {
        let region_code = region.and_then(region_code);
        let limit = limit.clamp(1, LIMIT_MAX);
        let seeds: Vec<u32> = seed_tracks
            .iter()
            .filter_map(|id| self.index.get(id).copied())
            .collect();
        let mut best: HashMap<u32, (f32, Reason)> = HashMap::new();
        let offer =
            |best: &mut HashMap<u32, (f32, Reason)>, track: u32, score: f32, reason: Reason| {
                if seeds.contains(&track) || !self.playable(track, region_code) {
                    return;
                }
                match best.get(&track) {
                    Some((current, _)) if *current >= score => {}
                    _ => {
                        best.insert(track, (score, reason));
                    }
                }
            };
        for &seed in &seeds {
            let seed_id = &self.ids[seed as usize];
            let seed_title = &self.titles[seed as usize];
            for neighbour in &self.neighbours[seed as usize] {
                let (kind, text) = if neighbour.playlists {
                    (
                        "co_playlisting",
                        format!("Often in playlists with {seed_title}"),
                    )
                } else {
                    (
                        "co_listening",
                        format!("Listeners of {seed_title} also play this"),
                    )
                };
                // Collaborative signals lead: they are what people actually do.
                offer(
                    &mut best,
                    neighbour.track,
                    2.0 + neighbour.score,
                    Reason {
                        kind: kind.into(),
                        seed_track: Some(seed_id.clone()),
                        seed_artist: None,
                        text,
                    },
                );
            }
            for (track, score) in self.similar_sound(seed, 20) {
                let tempo = self.features[track as usize].tempo.unwrap_or_default();
                let genre = self.features[seed as usize]
                    .genre
                    .map(|genre| self.genres[genre as usize].as_str())
                    .unwrap_or_default();
                offer(
                    &mut best,
                    track,
                    score,
                    Reason {
                        kind: "similar_sound".into(),
                        seed_track: Some(seed_id.clone()),
                        seed_artist: None,
                        text: format!("Sounds like {seed_title}: {genre}, {tempo:.0} BPM"),
                    },
                );
            }
            let artist = self.features[seed as usize].artist;
            for &track in self.by_artist[artist as usize].iter().take(10) {
                offer(
                    &mut best,
                    track,
                    0.5,
                    Reason {
                        kind: "same_artist".into(),
                        seed_track: Some(seed_id.clone()),
                        seed_artist: None,
                        text: format!("More by {}", self.artist_names[artist as usize]),
                    },
                );
            }
        }
        for artist_id in seed_artists {
            let Some(&artist) = self.artist_index.get(artist_id) else {
                continue;
            };
            for (rank, &track) in self.by_artist[artist as usize].iter().take(20).enumerate() {
                offer(
                    &mut best,
                    track,
                    1.5 - rank as f32 * 0.01,
                    Reason {
                        kind: "by_artist".into(),
                        seed_track: None,
                        seed_artist: Some(artist_id.clone()),
                        text: format!("Because you like {}", self.artist_names[artist as usize]),
                    },
                );
            }
        }
        if best.len() < limit {
            for (rank, id) in trending.iter().enumerate() {
                if let Some(&track) = self.index.get(id) {
                    offer(
                        &mut best,
                        track,
                        0.3 - rank as f32 * 1e-4,
                        Reason {
                            kind: "popular_in_region".into(),
                            seed_track: None,
                            seed_artist: None,
                            text: format!("Trending in {}", region.unwrap_or("the world")),
                        },
                    );
                }
            }
        }
        if best.len() < limit {
            for (rank, &track) in self.popular.iter().enumerate() {
                offer(
                    &mut best,
                    track,
                    0.2 - rank as f32 * 1e-5,
                    Reason {
                        kind: "popular".into(),
                        seed_track: None,
                        seed_artist: None,
                        text: "Popular on Chorus".into(),
                    },
                );
            }
        }
        let mut ranked: Vec<(u32, f32, Reason)> = best
            .into_iter()
            .map(|(track, (score, reason))| (track, score, reason))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut per_artist: HashMap<u32, usize> = HashMap::new();
        let mut picks = Vec::with_capacity(limit);
        for (track, score, reason) in ranked {
            let count = per_artist
                .entry(self.features[track as usize].artist)
                .or_default();
            if *count >= PER_ARTIST_MAX {
                continue;
            }
            *count += 1;
            picks.push(Pick {
                track_id: self.ids[track as usize].clone(),
                score,
                reason,
            });
            if picks.len() == limit {
                break;
            }
        }
        picks
    }

    /// A radio station from `seed`: recommendations from it alone, reordered so the same
    /// artist never plays twice in a row when anything else is left.
    pub fn radio(&self, seed: &str, region: Option<&str>, limit: usize) -> Vec<Pick> {
        let mut picks = self.recommend(&[seed.to_string()], &[], region, &[], limit);
        let artist_of = |pick: &Pick| {
            self.index
                .get(&pick.track_id)
                .map(|&track| self.features[track as usize].artist)
        };
        let mut station: Vec<Pick> = Vec::with_capacity(picks.len());
        let mut last = self
            .index
            .get(seed)
            .map(|&t| self.features[t as usize].artist);
        while !picks.is_empty() {
            // If one artist holds more than half of what is left, it must go now (or the
            // end of the station repeats it); else the best pick by someone else.
            let mut counts: HashMap<Option<u32>, usize> = HashMap::new();
            for pick in &picks {
                *counts.entry(artist_of(pick)).or_default() += 1;
            }
            let crowded = counts
                .iter()
                .find(|(artist, count)| **count * 2 > picks.len() && **artist != last)
                .map(|(artist, _)| *artist);
            let next = match crowded {
                Some(artist) => picks.iter().position(|pick| artist_of(pick) == artist),
                None => picks.iter().position(|pick| artist_of(pick) != last),
            }
            .unwrap_or(0);
            let pick = picks.remove(next);
            last = artist_of(&pick);
            station.push(pick);
        }
        station
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(
        id: u32,
        artist: u32,
        genre: &str,
        tempo: Option<f32>,
        plays: u64,
    ) -> (TrackRecord, u64) {
        (
            TrackRecord {
                id: format!("{id:032x}"),
                title: format!("Song {id}"),
                artist: format!("Artist {artist}"),
                artist_id: format!("a{artist}"),
                album: None,
                album_id: None,
                genre: Some(genre.into()),
                markets: if id == 99 {
                    vec!["US".into()]
                } else {
                    Vec::new()
                },
                duration_ms: 180_000,
                loudness_lufs: -10.0,
                tempo_bpm: tempo,
                gain_db: 0.0,
                owner: String::new(),
                created_at_ms: 0,
                renditions: Vec::new(),
                details: Default::default(),
            },
            plays,
        )
    }

    fn id(n: u32) -> String {
        format!("{n:032x}")
    }

    fn stream(account: &str, track: u32, at_ms: u64) -> StreamRecord {
        StreamRecord {
            account: account.into(),
            play_id: format!("{account}{at_ms}"),
            track: id(track),
            artist_id: String::new(),
            genre: None,
            region: "SE".into(),
            at_ms,
        }
    }

    fn inputs() -> Inputs {
        let mut tracks = vec![
            track(1, 1, "rock", Some(120.0), 50),
            track(2, 2, "rock", Some(122.0), 10),
            track(3, 3, "jazz", Some(90.0), 5),
            track(4, 4, "jazz", Some(92.0), 0),
            track(5, 1, "rock", Some(170.0), 20),
            // New: no plays, but rock at 121 BPM.
            track(6, 6, "rock", Some(121.0), 0),
            track(99, 9, "rock", Some(120.0), 0),
        ];
        tracks.push(track(7, 7, "pop", None, 1));
        let mut streams = Vec::new();
        // Ten listeners play 1 then 3 (rock then jazz: only co-listening links them).
        for listener in 0..10 {
            let name = format!("l{listener}");
            streams.push(stream(&name, 1, 1_000));
            streams.push(stream(&name, 3, 200_000));
            // A day later, in another session: 4. Not a pair with 1.
            streams.push(stream(&name, 4, 100_000_000));
        }
        let playlist = PlaylistRecord {
            id: "p".into(),
            owner: "o".into(),
            name: "mix".into(),
            description: String::new(),
            public: true,
            collaborative: false,
            collaborators: Vec::new(),
            tracks: vec![id(2), id(7)],
            version: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        Inputs {
            tracks,
            streams,
            playlists: vec![playlist],
        }
    }

    #[test]
    fn every_signal_gives_its_reason() {
        let model = Model::build(inputs());
        assert_eq!(model.len(), 8);
        let picks = model.recommend(&[id(1)], &[], Some("SE"), &[], 10);
        let first = &picks[0];
        assert_eq!(first.track_id, id(3), "{picks:#?}");
        assert_eq!(first.reason.kind, "co_listening");
        assert_eq!(first.reason.seed_track.as_deref(), Some(id(1).as_str()));
        // Not paired across sessions.
        assert!(
            !picks
                .iter()
                .any(|p| p.track_id == id(4) && p.reason.kind == "co_listening")
        );
        // The new track is found by its sound.
        let new = picks
            .iter()
            .find(|p| p.track_id == id(6))
            .expect("new track");
        assert_eq!(new.reason.kind, "similar_sound");
        // Its artist's other track.
        assert!(
            picks
                .iter()
                .any(|p| p.track_id == id(5) && p.reason.kind == "same_artist")
        );
        // Not the seed; not a track unlicensed in SE.
        assert!(
            !picks
                .iter()
                .any(|p| p.track_id == id(1) || p.track_id == id(99))
        );
        // In the US it may come.
        let us = model.recommend(&[id(1)], &[], Some("US"), &[], 10);
        assert!(us.iter().any(|p| p.track_id == id(99)));
        // Co-playlisting.
        let picks = model.recommend(&[id(2)], &[], Some("SE"), &[], 10);
        assert_eq!(picks[0].track_id, id(7));
        assert_eq!(picks[0].reason.kind, "co_playlisting");
        // Artist seeds.
        let picks = model.recommend(&[], &["a1".into()], Some("SE"), &[], 2);
        assert_eq!(picks.len(), 2);
        assert!(picks.iter().all(|p| p.reason.kind == "by_artist"));
        // A new listener: trending, then popular.
        let picks = model.recommend(&[], &[], Some("SE"), &[id(4)], 3);
        assert_eq!(picks[0].reason.kind, "popular_in_region");
        assert_eq!(picks[1].track_id, id(1));
        assert_eq!(picks[1].reason.kind, "popular");
    }

    #[test]
    fn an_encoded_model_decodes_to_the_same_answers() {
        let model = Model::build(inputs());
        let bytes = model.encode();
        let decoded = Model::decode(&bytes).unwrap();
        assert_eq!(decoded.encode(), bytes);
        assert_eq!(
            (decoded.pairs, decoded.streams),
            (model.pairs, model.streams)
        );
        for seeds in [vec![id(1)], vec![id(2)], vec![]] {
            assert_eq!(
                decoded.recommend(&seeds, &["a1".into()], Some("SE"), &[id(4)], 10),
                model.recommend(&seeds, &["a1".into()], Some("SE"), &[id(4)], 10)
            );
        }
        assert_eq!(
            decoded.radio(&id(1), Some("SE"), 10),
            model.radio(&id(1), Some("SE"), 10)
        );
        let empty = Model::default().encode();
        assert!(Model::decode(&empty).unwrap().is_empty());
    }

    #[test]
    fn damaged_models_are_refused_not_served() {
        let bytes = Model::build(inputs()).encode();
        // Every truncation, and every single-byte change: refused, or decoded into a model
        // whose answers do not panic.
        for cut in 0..bytes.len() {
            assert!(Model::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                if let Ok(model) = Model::decode(&damaged) {
                    for seed in 0..model.len() {
                        let seed = model.ids[seed].clone();
                        let _ = model.recommend(
                            std::slice::from_ref(&seed),
                            &model.artists,
                            Some("SE"),
                            &model.ids,
                            10,
                        );
                        let _ = model.radio(&seed, None, 10);
                    }
                }
            }
        }
        // An index past the end is caught.
        let mut model = Model::build(inputs());
        model.popular.push(model.ids.len() as u32);
        assert!(matches!(
            Model::decode(&model.encode()),
            Err(ModelError::Inconsistent(_))
        ));
        let mut model = Model::build(inputs());
        model.neighbours[0].push(Neighbour {
            track: 1_000,
            score: 1.0,
            playlists: false,
        });
        assert!(Model::decode(&model.encode()).is_err());
        assert!(Model::decode(b"CHRMDL\x00\x02").is_err(), "another version");
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Model::decode(&trailing).is_err());
    }

    #[test]
    fn radio_alternates_artists_and_answers_are_bounded() {
        let mut inputs = inputs();
        // One prolific artist in the seed's genre, and a few others.
        for n in 10..40 {
            let artist = if n < 25 { 1 } else { 10 + n % 3 };
            inputs
                .tracks
                .push(track(n, artist, "rock", Some(119.0 + n as f32 / 100.0), 1));
        }
        let model = Model::build(inputs);
        let station = model.radio(&id(2), Some("SE"), 20);
        let artists: Vec<&str> = station
            .iter()
            .map(|pick| model.features[model.index[&pick.track_id] as usize].artist)
            .map(|artist| model.artists[artist as usize].as_str())
            .collect();
        assert!(artists.iter().filter(|a| **a == "a1").count() <= PER_ARTIST_MAX);
        assert!(
            artists.windows(2).all(|w| w[0] != w[1]) || artists.len() < 3,
            "{artists:?}"
        );
        assert!(model.recommend(&[id(1)], &[], None, &[], 10_000).len() <= LIMIT_MAX);
        // Unknown seeds: the popular fallback, never an error.
        assert!(
            !model
                .recommend(&["nope".into()], &[], None, &[], 5)
                .is_empty()
        );
        assert!(
            Model::build(Inputs::default())
                .recommend(&[], &[], None, &[], 5)
                .is_empty()
        );
    }
}
