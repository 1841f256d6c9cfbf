//! Listening activity, sans-IO: the 30-second rule that turns listening events into
//! qualified streams, trending with decay, the fraud rules and the royalty report.
//!
//! Nothing here reads a clock or does I/O: every function takes the time it needs, so tests
//! and replays are exact. [`crate::events`] drives it from the HTTP API and the store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Listening needed before a play counts as a stream (the industry's 30-second rule).
pub const QUALIFY_MS: u64 = 30_000;
/// Slack between the wall time since `play_start` and the position reached, for clocks that
/// tick unevenly.
pub const QUALIFY_SLACK_MS: u64 = 2_000;
/// Oldest event accepted: offline licenses last 30 days, so an older event cannot come from a
/// licensed play.
pub const EVENT_AGE_MAX_MS: u64 = 30 * 24 * 3600 * 1000;
/// How far in the future an event's time may be (clock skew).
pub const EVENT_FUTURE_MAX_MS: u64 = 5 * 60 * 1000;

pub use api::events::EventKind;

/// What the origin remembers of one play (one `play_id` of one account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayState {
    /// The track played.
    pub track: String,
    /// When `play_start` said it started, if that event arrived.
    pub started_at_ms: Option<u64>,
    /// Time of the latest event.
    pub last_at_ms: u64,
    /// Furthest position reported.
    pub position_ms: u64,
    /// Whether it has counted as a stream (it counts once).
    pub qualified: bool,
}

/// Why an event does not fit its play.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayError {
    /// The play was started for another track.
    #[error("play {play_id} is of track {expected}, not {got}")]
    TrackMismatch {
        /// The play.
        play_id: String,
        /// Its track.
        expected: String,
        /// The event's track.
        got: String,
    },
}

/// Applies one event to its play (created if `play` is `None`). Returns true when this event
/// qualifies the play as a stream: the position reached is at least [`QUALIFY_MS`] and, when
/// the start is known, as much wall time has passed since it (a seek is not listening).
pub fn apply_event(
    play: &mut Option<PlayState>,
    play_id: &str,
    kind: EventKind,
    track: &str,
    position_ms: u64,
    at_ms: u64,
) -> Result<bool, PlayError> {
    let state = play.get_or_insert_with(|| PlayState {
        track: track.to_string(),
        started_at_ms: None,
        last_at_ms: at_ms,
        position_ms: 0,
        qualified: false,
    });
    if state.track != track {
        return Err(PlayError::TrackMismatch {
            play_id: play_id.to_string(),
            expected: state.track.clone(),
            got: track.to_string(),
        });
    }
    state.last_at_ms = state.last_at_ms.max(at_ms);
    if kind == EventKind::PlayStart {
        state.started_at_ms = Some(state.started_at_ms.map_or(at_ms, |s| s.min(at_ms)));
        return Ok(false);
    }
    state.position_ms = state.position_ms.max(position_ms);
    if state.qualified || position_ms < QUALIFY_MS {
        return Ok(false);
    }
    // Listened time cannot exceed elapsed time: a jump to 0:45 two seconds in is a seek.
    let listened_enough = state
        .started_at_ms
        .is_none_or(|started| at_ms.saturating_sub(started) + QUALIFY_SLACK_MS >= QUALIFY_MS);
    if listened_enough {
        state.qualified = true;
    }
    Ok(listened_enough)
}

/// [`apply_event`] for a checked event: the rule the store runs inside its transaction
/// ([`crate::store::PlayRule`]).
pub fn apply_input(
    play: &mut Option<PlayState>,
    event: &crate::store::EventInput,
) -> Result<bool, PlayError> {
    apply_event(
        play,
        &event.play_id,
        event.kind,
        &event.track,
        event.position_ms,
        event.at_ms,
    )
}

/// One qualified stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// The listening account.
    pub account: String,
    /// The client's play id.
    pub play_id: String,
    /// The track.
    pub track: String,
    /// Its artist.
    pub artist_id: String,
    /// Its genre, if any.
    pub genre: Option<String>,
    /// Where the listener was (ISO 3166-1 alpha-2).
    pub region: String,
    /// When the play qualified, Unix ms.
    pub at_ms: u64,
}

/// Decay and window of [`Trending`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendingConfig {
    /// A stream's weight halves every this long.
    pub half_life_ms: u64,
    /// A track leaves a region's list when it had no stream there for this long.
    pub window_ms: u64,
    /// Most (region, track) entries kept; the weakest go first.
    pub entries_max: usize,
}

impl Default for TrendingConfig {
    fn default() -> Self {
        Self {
            half_life_ms: 24 * 3600 * 1000,
            window_ms: 7 * 24 * 3600 * 1000,
            entries_max: 500_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Counter {
    /// Decayed weight as of `at_ms`.
    score: f64,
    at_ms: u64,
    last_stream_ms: u64,
    streams: u32,
    genre: Option<std::sync::Arc<str>>,
}

/// One trending track.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TrendingEntry {
    /// Track id.
    pub track_id: String,
    /// Decayed stream count (a stream now weighs 1, one half-life ago 0.5).
    pub score: f64,
    /// Qualified streams counted since the track entered the window.
    pub streams: u32,
}

/// Trending tracks per region (and the whole world under `""`) over a sliding window, each
/// stream's weight decaying exponentially. Memory is bounded by [`TrendingConfig::entries_max`].
#[derive(Debug, Clone)]
pub struct Trending {
    config: TrendingConfig,
    regions: HashMap<String, HashMap<String, Counter>>,
    entries: usize,
    genres: HashMap<String, std::sync::Arc<str>>,
}

/// `score` as of `from_ms`, decayed to `to_ms` (exponential, `half_life_ms`).
fn decayed(score: f64, from_ms: u64, to_ms: u64, half_life_ms: u64) -> f64 {
    let elapsed = to_ms.saturating_sub(from_ms) as f64;
    score * (-elapsed / half_life_ms.max(1) as f64 * std::f64::consts::LN_2).exp()
}

/// Region key of the whole world.
const WORLD: &str = "";

impl Trending {
    /// Empty.
    pub fn new(config: TrendingConfig) -> Self {
        Self {
            config,
            regions: HashMap::new(),
            entries: 0,
            genres: HashMap::new(),
        }
    }

    fn decay(&self, score: f64, from_ms: u64, to_ms: u64) -> f64 {
        decayed(score, from_ms, to_ms, self.config.half_life_ms)
    }

    /// Counts a stream (in its region and in the world). Streams may arrive out of order
    /// (offline listening): an older one weighs less.
    pub fn record(&mut self, stream: &StreamRecord) {
        let genre = stream.genre.as_ref().map(|genre| {
            self.genres
                .entry(genre.to_lowercase())
                .or_insert_with_key(|key| key.as_str().into())
                .clone()
        });
        for region in [stream.region.as_str(), WORLD] {
            let half_life = self.config.half_life_ms;
            let counters = self.regions.entry(region.to_string()).or_default();
            let counter = counters.entry(stream.track.clone()).or_insert_with(|| {
                self.entries += 1;
                Counter {
                    score: 0.0,
                    at_ms: stream.at_ms,
                    last_stream_ms: stream.at_ms,
                    streams: 0,
                    genre: genre.clone(),
                }
            });
            let (score, at) = (counter.score, counter.at_ms);
            if stream.at_ms >= at {
                counter.score = decayed(score, at, stream.at_ms, half_life) + 1.0;
                counter.at_ms = stream.at_ms;
            } else {
                counter.score = score + decayed(1.0, stream.at_ms, at, half_life);
            }
            counter.last_stream_ms = counter.last_stream_ms.max(stream.at_ms);
            counter.streams = counter.streams.saturating_add(1);
        }
        if self.entries > self.config.entries_max {
            self.prune(stream.at_ms);
        }
    }

    /// Drops entries out of the window, then the weakest while over the bound.
    pub fn prune(&mut self, now_ms: u64) {
        let window = self.config.window_ms;
        for counters in self.regions.values_mut() {
            counters.retain(|_, counter| now_ms.saturating_sub(counter.last_stream_ms) < window);
        }
        self.regions.retain(|_, counters| !counters.is_empty());
        self.entries = self.regions.values().map(HashMap::len).sum();
        if self.entries > self.config.entries_max {
            // Keep the strongest ~90% of the bound so pruning is not run on every stream.
            let keep = self.config.entries_max * 9 / 10;
            let mut scores: Vec<f64> = self
                .regions
                .values()
                .flat_map(|counters| counters.values())
                .map(|counter| self.decay(counter.score, counter.at_ms, now_ms))
                .collect();
            scores.sort_by(|a, b| b.total_cmp(a));
            let threshold = scores.get(keep).copied().unwrap_or(0.0);
            let half_life = self.config.half_life_ms;
            for counters in self.regions.values_mut() {
                counters.retain(|_, counter| {
                    decayed(counter.score, counter.at_ms, now_ms, half_life) > threshold
                });
            }
            self.regions.retain(|_, counters| !counters.is_empty());
            self.entries = self.regions.values().map(HashMap::len).sum();
        }
    }

    /// The `limit` highest-scoring tracks at `now_ms` in `region` (`None`: the world),
    /// optionally of one `genre` (case-insensitive), highest first, ties by track id.
    pub fn top(
        &self,
        region: Option<&str>,
        genre: Option<&str>,
        now_ms: u64,
        limit: usize,
    ) -> Vec<TrendingEntry> {
        let Some(counters) = self.regions.get(region.unwrap_or(WORLD)) else {
            return Vec::new();
        };
        let genre = genre.map(str::to_lowercase);
        let mut entries: Vec<TrendingEntry> = counters
            .iter()
            .filter(|(_, counter)| {
                now_ms.saturating_sub(counter.last_stream_ms) < self.config.window_ms
            })
            .filter(|(_, counter)| match (&genre, &counter.genre) {
                (None, _) => true,
                (Some(wanted), Some(genre)) => wanted.as_str() == &**genre,
                (Some(_), None) => false,
            })
            .map(|(track, counter)| TrendingEntry {
                track_id: track.clone(),
                score: self.decay(counter.score, counter.at_ms, now_ms),
                streams: counter.streams,
            })
            .collect();
        entries.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.track_id.cmp(&b.track_id))
        });
        entries.truncate(limit);
        entries
    }

    /// (region, track) entries held.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

/// A fraud rule that excludes a stream from royalties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FraudRule {
    /// One account playing one track over and over.
    Looping,
    /// The account streamed from two regions too close in time to travel between them.
    ImpossibleTravel,
    /// More qualified streams in an hour than one listener can play.
    Burst,
}

/// Thresholds of the fraud rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FraudLimits {
    /// Streams of one track by one account counted per trailing 24 h; more are looping.
    pub same_track_per_day: usize,
    /// Streams from a different region sooner than this after the previous one are
    /// impossible travel.
    pub travel_min_ms: u64,
    /// Streams per trailing hour one account can produce: one listener, 30 s each, is 120.
    pub per_hour: usize,
}

impl Default for FraudLimits {
    fn default() -> Self {
        Self {
            same_track_per_day: 10,
            travel_min_ms: 2 * 3600 * 1000,
            per_hour: (3600 * 1000 / QUALIFY_MS) as usize,
        }
    }
}

/// One account's stream, as the fraud rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountStream<'a> {
    /// When it qualified.
    pub at_ms: u64,
    /// The track.
    pub track: &'a str,
    /// Where the listener was.
    pub region: &'a str,
}

/// The rule, if any, that flags each of one account's streams (sorted by time). The first
/// rule that applies wins, in the order burst, impossible travel, looping. Flagged streams
/// still count against the windows: a bot cannot launder its excess.
pub fn flag_account(streams: &[AccountStream<'_>], limits: &FraudLimits) -> Vec<Option<FraudRule>> {
    const DAY_MS: u64 = 24 * 3600 * 1000;
    const HOUR_MS: u64 = 3600 * 1000;
    let mut flags = Vec::with_capacity(streams.len());
    let mut hour_start = 0;
    let mut per_track: HashMap<&str, std::collections::VecDeque<u64>> = HashMap::new();
    for (at, stream) in streams.iter().enumerate() {
        while streams[hour_start].at_ms + HOUR_MS <= stream.at_ms {
            hour_start += 1;
        }
        let in_hour = at - hour_start + 1;
        let recent = per_track.entry(stream.track).or_default();
        while recent
            .front()
            .is_some_and(|&time| time + DAY_MS <= stream.at_ms)
        {
            recent.pop_front();
        }
        recent.push_back(stream.at_ms);
        let travelled = at > 0
            && streams[at - 1].region != stream.region
            && stream.at_ms - streams[at - 1].at_ms < limits.travel_min_ms;
        flags.push(if in_hour > limits.per_hour {
            Some(FraudRule::Burst)
        } else if travelled {
            Some(FraudRule::ImpossibleTravel)
        } else if recent.len() > limits.same_track_per_day {
            Some(FraudRule::Looping)
        } else {
            None
        });
    }
    flags
}

/// Streams per track after the fraud rules, for a royalty period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoyaltyCount {
    /// Qualified streams in the period.
    pub streams: u64,
    /// Of those, counted (not flagged).
    pub counted: u64,
    /// Flagged, by rule.
    pub flagged: HashMap<FraudRule, u64>,
    /// Counted streams per track.
    pub tracks: HashMap<String, u64>,
}

/// Applies the fraud rules to `streams` (any order) and counts those inside
/// `[from_ms, to_ms)`. Streams before `from_ms` are context for the rules' windows only.
pub fn count_royalties(
    streams: &[StreamRecord],
    from_ms: u64,
    to_ms: u64,
    limits: &FraudLimits,
) -> RoyaltyCount {
    let mut by_account: HashMap<&str, Vec<&StreamRecord>> = HashMap::new();
    for stream in streams {
        by_account.entry(&stream.account).or_default().push(stream);
    }
    let mut count = RoyaltyCount::default();
    for (_, mut own) in by_account {
        own.sort_by(|a, b| {
            a.at_ms
                .cmp(&b.at_ms)
                .then_with(|| a.play_id.cmp(&b.play_id))
        });
        let view: Vec<AccountStream<'_>> = own
            .iter()
            .map(|stream| AccountStream {
                at_ms: stream.at_ms,
                track: &stream.track,
                region: &stream.region,
            })
            .collect();
        for (stream, flag) in own.iter().zip(flag_account(&view, limits)) {
            if !(from_ms..to_ms).contains(&stream.at_ms) {
                continue;
            }
            count.streams += 1;
            match flag {
                Some(rule) => *count.flagged.entry(rule).or_default() += 1,
                None => {
                    count.counted += 1;
                    *count.tracks.entry(stream.track.clone()).or_default() += 1;
                }
            }
        }
    }
    count
}

/// Parses `YYYY-MM` into the month's `[start, end)` in Unix ms (UTC).
pub fn month_range(text: &str) -> Option<(u64, u64)> {
    let (year, month) = text.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    let year: i64 = year.parse().ok()?;
    let month: u32 = month.parse().ok()?;
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
        return None;
    }
    let start = days_from_civil(year, month) * 86_400_000;
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let end = days_from_civil(next_year, next_month) * 86_400_000;
    Some((u64::try_from(start).ok()?, u64::try_from(end).ok()?))
}

/// Days from 1970-01-01 to the first of `month` in `year` (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32) -> i64 {
    // Howard Hinnant's algorithm, day 1.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_seconds_of_listening_make_one_stream() {
        let mut play = None;
        let t0 = 1_000_000;
        assert!(!apply_event(&mut play, "p", EventKind::PlayStart, "t", 0, t0).unwrap());
        assert!(
            !apply_event(
                &mut play,
                "p",
                EventKind::Progress,
                "t",
                29_000,
                t0 + 29_000
            )
            .unwrap()
        );
        // 29 s then a skip: no stream.
        let mut skipped = play.clone();
        assert!(
            !apply_event(&mut skipped, "p", EventKind::Skip, "t", 29_999, t0 + 29_999).unwrap()
        );
        // 30 s: a stream, once.
        assert!(
            apply_event(
                &mut play,
                "p",
                EventKind::Progress,
                "t",
                30_000,
                t0 + 30_000
            )
            .unwrap()
        );
        assert!(
            !apply_event(
                &mut play,
                "p",
                EventKind::Complete,
                "t",
                180_000,
                t0 + 180_000
            )
            .unwrap()
        );
        // A seek to 0:45 two seconds in is not listening; 30 s later it is.
        let mut seek = None;
        apply_event(&mut seek, "s", EventKind::PlayStart, "t", 0, t0).unwrap();
        assert!(
            !apply_event(&mut seek, "s", EventKind::Progress, "t", 45_000, t0 + 2_000).unwrap()
        );
        assert!(apply_event(&mut seek, "s", EventKind::Skip, "t", 75_000, t0 + 30_000).unwrap());
        // Without its start (lost), the position decides.
        let mut lost = None;
        assert!(apply_event(&mut lost, "l", EventKind::Complete, "t", 200_000, t0).unwrap());
        // One play is one track.
        assert!(matches!(
            apply_event(&mut lost, "l", EventKind::Progress, "other", 1, t0),
            Err(PlayError::TrackMismatch { .. })
        ));
    }

    fn stream(account: &str, track: &str, region: &str, at_ms: u64) -> StreamRecord {
        StreamRecord {
            account: account.into(),
            play_id: format!("{account}-{at_ms}"),
            track: track.into(),
            artist_id: format!("artist-of-{track}"),
            genre: Some(
                if track.starts_with('r') {
                    "Rock"
                } else {
                    "Jazz"
                }
                .into(),
            ),
            region: region.into(),
            at_ms,
        }
    }

    #[test]
    fn trending_decays_and_filters() {
        const HOUR: u64 = 3600 * 1000;
        let mut trending = Trending::new(TrendingConfig {
            half_life_ms: HOUR,
            window_ms: 24 * HOUR,
            entries_max: 1000,
        });
        let start = 100 * HOUR;
        // An old hit: 8 streams 4 hours ago (worth 0.5 now).
        for i in 0..8 {
            trending.record(&stream("a", "rock-old", "SE", start + i));
        }
        // A new one: 2 streams now.
        for i in 0..2 {
            trending.record(&stream("b", "jazz-new", "SE", start + 4 * HOUR + i));
        }
        trending.record(&stream("c", "rock-us", "US", start + 4 * HOUR));
        let now = start + 4 * HOUR;
        let top = trending.top(Some("SE"), None, now, 10);
        assert_eq!(top[0].track_id, "jazz-new", "{top:?}");
        assert!((top[1].score - 0.5).abs() < 0.01, "{top:?}");
        assert_eq!(top[1].streams, 8);
        // Genres and the world.
        let rock = trending.top(None, Some("rock"), now, 10);
        let ids: Vec<_> = rock.iter().map(|entry| entry.track_id.as_str()).collect();
        assert_eq!(ids, ["rock-us", "rock-old"]);
        assert!(trending.top(Some("BR"), None, now, 10).is_empty());
        // Late (offline) streams weigh what they weighed then.
        trending.record(&stream("d", "jazz-new", "SE", start));
        let late = trending.top(Some("SE"), Some("jazz"), now, 1);
        assert!(
            (late[0].score - (2.0 + 1.0 / 16.0)).abs() < 0.01,
            "{late:?}"
        );
        // Out of the window: gone.
        assert!(
            trending
                .top(Some("SE"), None, now + 25 * HOUR, 10)
                .is_empty()
        );
        trending.prune(now + 25 * HOUR);
        assert!(trending.is_empty());
    }

    #[test]
    fn trending_memory_is_bounded() {
        let mut trending = Trending::new(TrendingConfig {
            entries_max: 100,
            ..TrendingConfig::default()
        });
        for i in 0..1_000u64 {
            trending.record(&stream("a", &format!("t{i}"), "SE", 1_000_000 + i));
        }
        assert!(trending.len() <= 100, "{}", trending.len());
        // The newest (strongest) survived.
        let top = trending.top(Some("SE"), None, 1_001_000, 1);
        assert_eq!(top[0].track_id, "t999");
    }

    #[test]
    fn fraud_rules_flag_the_excess() {
        const MIN: u64 = 60 * 1000;
        let limits = FraudLimits::default();
        // A looping account: 14 plays of one track, 3 min apart.
        let looping: Vec<AccountStream<'_>> = (0..14)
            .map(|i| AccountStream {
                at_ms: i * 3 * MIN,
                track: "t",
                region: "SE",
            })
            .collect();
        let flags = flag_account(&looping, &limits);
        assert_eq!(flags.iter().filter(|flag| flag.is_none()).count(), 10);
        assert_eq!(flags[10], Some(FraudRule::Looping));
        // A bot: 300 streams in 30 minutes, all different tracks.
        let names: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
        let bot: Vec<AccountStream<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| AccountStream {
                at_ms: i as u64 * 6_000,
                track: name,
                region: "SE",
            })
            .collect();
        let flags = flag_account(&bot, &limits);
        assert_eq!(flags.iter().filter(|flag| flag.is_none()).count(), 120);
        assert!(flags[120..].iter().all(|f| *f == Some(FraudRule::Burst)));
        // Stockholm, then São Paulo ten minutes later; back a day later is fine.
        let travel = [
            AccountStream {
                at_ms: 0,
                track: "a",
                region: "SE",
            },
            AccountStream {
                at_ms: 10 * MIN,
                track: "b",
                region: "BR",
            },
            AccountStream {
                at_ms: 24 * 60 * MIN,
                track: "c",
                region: "SE",
            },
        ];
        assert_eq!(
            flag_account(&travel, &limits),
            [None, Some(FraudRule::ImpossibleTravel), None]
        );
    }

    #[test]
    fn royalties_count_the_month_and_exclude_fraud() {
        let (from, to) = month_range("2026-02").unwrap();
        assert_eq!(to - from, 28 * 86_400_000);
        assert_eq!(from, 1_769_904_000_000); // 2026-02-01T00:00:00Z
        assert_eq!(
            month_range("2024-12").map(|(a, b)| (b - a) / 86_400_000),
            Some(31)
        );
        for bad in ["2026-13", "2026-1", "26-01", "", "2026/01", "abcd-ef"] {
            assert_eq!(month_range(bad), None, "{bad}");
        }
        let mut streams = vec![
            stream("a", "x", "SE", from + 1000),
            stream("b", "x", "SE", from + 2000),
            stream("b", "y", "SE", from + 3000),
            // Outside the month.
            stream("a", "y", "SE", to),
            // Before it: context only, yet it makes the next one impossible travel.
            stream("c", "y", "US", from - 60_000),
            stream("c", "y", "SE", from + 60_000),
        ];
        streams.reverse();
        let count = count_royalties(&streams, from, to, &FraudLimits::default());
        assert_eq!(count.streams, 4);
        assert_eq!(count.counted, 3);
        assert_eq!(count.flagged[&FraudRule::ImpossibleTravel], 1);
        assert_eq!(count.tracks["x"], 2);
        assert_eq!(count.tracks["y"], 1);
    }
}
