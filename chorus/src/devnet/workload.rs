//! What the devnet's listeners do, decided ahead from a seed (sans-IO: no clock, no I/O, so
//! a seed replays the same choices): which tracks each session plays (Zipf popularity over
//! the tracks licensed in the listener's region), when a track is skipped, how long a
//! listener stays away between sessions, and when a crash kills it.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The knobs of the workload.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Zipf exponent of track popularity (1.0: a few tracks get most plays).
    pub zipf_alpha: f64,
    /// Tracks per session, inclusive range.
    pub session_tracks: (usize, usize),
    /// Chance a track is skipped before its end.
    pub skip_chance: f64,
    /// A skip happens this many seconds into the track, inclusive range.
    pub skip_after_s: (u64, u64),
    /// Chance a listener leaves (closes the app) after a session, instead of going on.
    pub leave_chance: f64,
    /// Seconds away after leaving, inclusive range.
    pub away_s: (u64, u64),
    /// Crashes per listener per minute online (`--kill-peers`).
    pub kills_per_minute: f64,
    /// Seconds a crashed listener stays down, inclusive range.
    pub down_s: (u64, u64),
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            zipf_alpha: 1.0,
            session_tracks: (3, 8),
            skip_chance: 0.2,
            skip_after_s: (5, 40),
            leave_chance: 0.3,
            away_s: (5, 20),
            kills_per_minute: 0.0,
            down_s: (3, 10),
        }
    }
}

/// A Zipf distribution over ranks `0..n` (rank 0 the most popular), sampled by inverting
/// its cumulative weights.
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// `n` ranks (at least 1) with exponent `alpha` (≥ 0; 0 is uniform).
    pub fn new(n: usize, alpha: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n.max(1))
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(alpha.max(0.0));
                total
            })
            .collect();
        Self { cumulative }
    }

    /// A rank.
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let draw = rng.r#gen::<f64>() * total;
        self.cumulative
            .partition_point(|&upto| upto <= draw)
            .min(self.cumulative.len() - 1)
    }
}

/// One track of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Index into the listener's playable tracks.
    pub track: usize,
    /// Skip this many seconds in, or play it out.
    pub skip_after_s: Option<u64>,
}

/// One listener's choices, drawn as it needs them.
#[derive(Debug)]
pub struct ListenerPlan {
    rng: ChaCha8Rng,
    zipf: Zipf,
    config: WorkloadConfig,
}

impl ListenerPlan {
    /// The plan of listener `index` in a run seeded `seed`, choosing among `playable` tracks
    /// (ordered by popularity rank).
    pub fn new(seed: u64, index: u64, playable: usize, config: WorkloadConfig) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(seed ^ (index + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Self {
            rng,
            zipf: Zipf::new(playable, config.zipf_alpha),
            config,
        }
    }

    /// Seconds before the listener first opens the app, within `window_s`.
    pub fn arrival_s(&mut self, window_s: u64) -> u64 {
        self.rng.gen_range(0..=window_s)
    }

    /// The next session: distinct tracks when there are enough, each played out or skipped.
    pub fn session(&mut self) -> Vec<Step> {
        let (low, high) = self.config.session_tracks;
        let length = self.rng.gen_range(low.max(1)..=high.max(low.max(1)));
        let playable = self.zipf.cumulative.len();
        let mut steps: Vec<Step> = Vec::with_capacity(length);
        let mut tries = 0;
        while steps.len() < length && tries < length * 20 {
            tries += 1;
            let track = self.zipf.sample(&mut self.rng);
            if steps.iter().any(|step| step.track == track) && playable > steps.len() {
                continue;
            }
            let skip_after_s = self
                .rng
                .gen_bool(self.config.skip_chance.clamp(0.0, 1.0))
                .then(|| {
                    let (low, high) = self.config.skip_after_s;
                    self.rng.gen_range(low..=high.max(low))
                });
            steps.push(Step {
                track,
                skip_after_s,
            });
        }
        steps
    }

    /// After a session: `Some(seconds away)` when the listener leaves, `None` to go on.
    pub fn after_session(&mut self) -> Option<u64> {
        self.rng
            .gen_bool(self.config.leave_chance.clamp(0.0, 1.0))
            .then(|| {
                let (low, high) = self.config.away_s;
                self.rng.gen_range(low..=high.max(low))
            })
    }

    /// Seconds online until the next crash (exponential at `kills_per_minute`), or `None`
    /// when nothing crashes.
    pub fn next_crash_s(&mut self) -> Option<f64> {
        let rate = self.config.kills_per_minute;
        (rate > 0.0).then(|| {
            let uniform: f64 = self.rng.gen_range(f64::MIN_POSITIVE..1.0);
            -uniform.ln() * 60.0 / rate
        })
    }

    /// Seconds a crashed listener stays down.
    pub fn down_s(&mut self) -> u64 {
        let (low, high) = self.config.down_s;
        self.rng.gen_range(low..=high.max(low))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_one_favours_the_head() {
        let zipf = Zipf::new(100, 1.0);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        // Rank 1 is drawn about twice as often as rank 2, ten times as often as rank 10.
        let ratio = f64::from(counts[0]) / f64::from(counts[1]);
        assert!((1.8..2.2).contains(&ratio), "{ratio}");
        let ratio = f64::from(counts[0]) / f64::from(counts[9]);
        assert!((8.5..11.5).contains(&ratio), "{ratio}");
        // The top 12% of tracks get well over half the plays.
        let head: u32 = counts[..12].iter().sum();
        assert!(head > 55_000, "{head}");
    }

    #[test]
    fn zipf_zero_is_uniform_and_one_rank_works() {
        let zipf = Zipf::new(4, 0.0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[zipf.sample(&mut rng)] += 1;
        }
        assert!(counts.iter().all(|&count| (9_000..11_000).contains(&count)));
        assert_eq!(Zipf::new(1, 1.0).sample(&mut rng), 0);
    }

    #[test]
    fn a_seed_replays_and_sessions_hold_distinct_tracks() {
        let config = WorkloadConfig {
            kills_per_minute: 0.5,
            ..WorkloadConfig::default()
        };
        let draw = |seed| {
            let mut plan = ListenerPlan::new(seed, 3, 12, config.clone());
            (
                plan.arrival_s(30),
                plan.session(),
                plan.after_session(),
                plan.next_crash_s().map(|s| s.to_bits()),
            )
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
        let mut plan = ListenerPlan::new(1, 0, 12, config.clone());
        for _ in 0..50 {
            let session = plan.session();
            assert!((3..=8).contains(&session.len()));
            let mut tracks: Vec<usize> = session.iter().map(|step| step.track).collect();
            tracks.sort_unstable();
            tracks.dedup();
            assert_eq!(tracks.len(), session.len());
            assert!(tracks.iter().all(|&track| track < 12));
        }
        // Fewer tracks than a session wants: repeats are allowed, the session still ends.
        let mut plan = ListenerPlan::new(1, 0, 2, config);
        assert!(plan.session().len() >= 3);
    }
}
