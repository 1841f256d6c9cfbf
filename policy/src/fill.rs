//! The super-node's fill choice, sans-IO: which renditions to fetch into its cache, in what
//! order, how many at once, and when to ask the tracker again.
//!
//! A super-node fills for two reasons:
//!
//! - **Popular.** Every [`FillConfig::refresh_ms`] it asks the tracker for its popularity
//!   list; [`CachePolicy::set_popular`](crate::cache::CachePolicy::set_popular) says which
//!   of those it does not hold, best first, and [`FillPlanner::popular`] queues them. They
//!   are fetched to be pinned, each within the pin budget left when it starts.
//! - **Pull-through.** A request for a rendition it does not hold is a miss
//!   ([`FillPlanner::miss`]). After [`FillConfig::after_misses`] misses within
//!   [`FillConfig::miss_window_ms`] the rendition is queued, unpinned (it joins the LRU
//!   segment): demand the crowd shows this node before the tracker's ranking does. The
//!   driver is told to call [`FillPlanner::next`] now, not at the next round.
//!
//! Pull-through renditions go first (listeners are asking this node for them now), popular
//! ones after them, best first; a new round replaces the popular queue, so a slow node never
//! falls behind on a list the tracker no longer holds. At most [`FillConfig::at_once`] fills
//! run together, two by default. A fill draws on its sources' upload at offline-sync
//! priority, and its sources are mostly listeners: on the 32-listener devnet four fills at
//! once per super-node took the upload of listeners who would otherwise have served each
//! other, and the origin's share rose to 0.55 (0.40–0.47 with two, 0.42 with one); with
//! one, a crowd with small caches and much churn (the simulator's `churn-heavy`) leans on
//! the origin a point more than with two, as the super-nodes fall behind its demand
//! (BENCHMARKS.md). A fill that fails (no source had it, the origin refused) is not
//! tried again for [`FillConfig::retry_after_ms`]; one that was too large for the pin budget
//! it was given is held off as a popular fill only, so it can still be pulled through into
//! the LRU segment.
//!
//! Memory is bounded whatever requests arrive: misses and refusals are tracked for at most
//! [`FillConfig::tracked_max`] renditions (the counts are dropped when that fills, so a flood
//! of requests for random ids costs counts, never memory), the queues hold at most
//! [`FillConfig::queue_max`] each.
//!
//! `node::supernode` drives this over QUIC; the simulator drives it for every simulated
//! super-node. Time is an argument (milliseconds).

use std::collections::{BTreeMap, HashMap, VecDeque};

use protocol::RenditionId;

use crate::cache::CachePolicy;

/// A fixed hasher: runs must replay.
type Fixed = foldhash::fast::FixedState;

/// The fill policy's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillConfig {
    /// Milliseconds between popularity rounds.
    pub refresh_ms: u64,
    /// Fills running at once (at least 1; 2 by default).
    pub at_once: usize,
    /// Misses of a rendition before it is fetched (at least 1).
    pub after_misses: u32,
    /// Misses further apart than this, milliseconds, start the count again: a rendition
    /// asked for once a day is not demand.
    pub miss_window_ms: u64,
    /// How long a rendition whose fill failed is not tried again, milliseconds.
    pub retry_after_ms: u64,
    /// Renditions each queue holds at most (at least 1).
    pub queue_max: usize,
    /// Renditions whose misses, and whose failed fills, are tracked at once (at least 1).
    pub tracked_max: usize,
}

impl Default for FillConfig {
    fn default() -> Self {
        Self {
            refresh_ms: 30_000,
            at_once: 2,
            after_misses: 2,
            miss_window_ms: 10 * 60 * 1_000,
            retry_after_ms: 10 * 60 * 1_000,
            queue_max: 1_024,
            tracked_max: 4_096,
        }
    }
}

/// A fill to start: fetch `rendition` (at most `bytes_max` bytes of it) and admit it, pinned
/// if `pin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// What to fetch.
    pub rendition: RenditionId,
    /// Popular (pinned when admitted) or pull-through (unpinned).
    pub pin: bool,
    /// The most it may take: a pinned fill the pin budget left, any other the whole cache.
    pub bytes_max: u64,
}

/// How a fill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It is in the cache.
    Filled,
    /// No source had it, or it could not be admitted.
    Failed,
    /// It was larger than the fill's `bytes_max`. For a pinned fill, only popular fills of it
    /// are held off; for any other it counts as [`Outcome::Failed`].
    TooLarge,
    /// The driver gave it up (shutting down, its task dropped): not held against it.
    Cancelled,
}

/// A failed fill's hold-off.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    until_ms: u64,
    pinned_only: bool,
}

/// The fill choice of one super-node. See the module docs.
#[derive(Debug)]
pub struct FillPlanner {
    config: FillConfig,
    /// The last popularity round's renditions not held, best first, not yet started.
    popular: VecDeque<RenditionId>,
    /// Renditions that reached the miss threshold, oldest first, not yet started.
    pulled: VecDeque<RenditionId>,
    /// Fills started and not yet done.
    running: BTreeMap<RenditionId, Fill>,
    /// Misses per rendition not held: how many, and when the count began.
    misses: HashMap<RenditionId, (u32, u64), Fixed>,
    /// Renditions whose fill failed: until when not to try them, and whether only as a
    /// popular (pinned) fill.
    refused: HashMap<RenditionId, Refusal, Fixed>,
    /// When the next popularity round is due (0: at once).
    next_round_ms: u64,
}

impl FillPlanner {
    /// A planner with `config` (zero counts raised to 1); the first round is due at once.
    pub fn new(mut config: FillConfig) -> Self {
        config.at_once = config.at_once.max(1);
        config.after_misses = config.after_misses.max(1);
        config.queue_max = config.queue_max.max(1);
        config.tracked_max = config.tracked_max.max(1);
        Self {
            config,
            popular: VecDeque::new(),
            pulled: VecDeque::new(),
            running: BTreeMap::new(),
            misses: HashMap::default(),
            refused: HashMap::default(),
            next_round_ms: 0,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &FillConfig {
        &self.config
    }

    /// True when the driver should ask the tracker for its popularity list, then call
    /// [`FillPlanner::popular`] (or [`FillPlanner::round_failed`] when no tracker answered).
    pub fn round_due(&self, now_ms: u64) -> bool {
        now_ms >= self.next_round_ms
    }

    /// Takes a round's answer: the popular renditions not held, best first (what
    /// `CachePolicy::set_popular` returned). Replaces the previous round's queue.
    pub fn popular(&mut self, missing: &[RenditionId], now_ms: u64) {
        self.popular = missing
            .iter()
            .filter(|id| !self.running.contains_key(id))
            .take(self.config.queue_max)
            .copied()
            .collect();
        self.next_round_ms = now_ms.saturating_add(self.config.refresh_ms);
    }

    /// No tracker answered this round: the previous list stands until the next one.
    pub fn round_failed(&mut self, now_ms: u64) {
        self.next_round_ms = now_ms.saturating_add(self.config.refresh_ms);
    }

    /// A request for `rendition`, which this node does not hold. Returns true when it has
    /// just been queued (the driver should call [`FillPlanner::next`] now).
    pub fn miss(&mut self, rendition: RenditionId, now_ms: u64) -> bool {
        if self.running.contains_key(&rendition)
            || self.refused_at(&rendition, false, now_ms)
            || self.pulled.contains(&rendition)
            || self.popular.contains(&rendition)
        {
            return false;
        }
        if self.misses.len() >= self.config.tracked_max && !self.misses.contains_key(&rendition) {
            let window = self.config.miss_window_ms;
            self.misses
                .retain(|_, (_, since)| now_ms.saturating_sub(*since) < window);
            if self.misses.len() >= self.config.tracked_max {
                self.misses.clear();
            }
        }
        let (count, since) = self.misses.entry(rendition).or_insert((0, now_ms));
        if now_ms.saturating_sub(*since) >= self.config.miss_window_ms {
            (*count, *since) = (0, now_ms);
        }
        *count += 1;
        if *count < self.config.after_misses {
            return false;
        }
        self.misses.remove(&rendition);
        if self.pulled.len() >= self.config.queue_max {
            // The oldest want is the stalest.
            self.pulled.pop_front();
        }
        self.pulled.push_back(rendition);
        true
    }

    /// The next fill to start, if one may start now: pull-through renditions first, oldest
    /// first, then popular ones, best first. Skips what `cache` holds, what is running, what
    /// failed lately, and popular renditions once the pin budget is spent. The driver starts
    /// it and calls [`FillPlanner::done`] when it ends.
    pub fn next(&mut self, cache: &CachePolicy, now_ms: u64) -> Option<Fill> {
        if self.running.len() >= self.config.at_once {
            return None;
        }
        loop {
            let (rendition, pin) = match self.pulled.pop_front() {
                Some(rendition) => (rendition, false),
                None => (self.popular.pop_front()?, true),
            };
            if cache.contains(&rendition)
                || self.running.contains_key(&rendition)
                || self.refused_at(&rendition, pin, now_ms)
            {
                continue;
            }
            let bytes_max = if pin {
                // Pins that are running count against the budget only once admitted, so a
                // fill may find the room taken when it lands: `CachePolicy::admit` then keeps
                // it unpinned.
                cache.pin_room_bytes()
            } else {
                cache.capacity_bytes()
            };
            if bytes_max == 0 {
                continue;
            }
            let fill = Fill {
                rendition,
                pin,
                bytes_max,
            };
            self.running.insert(rendition, fill);
            return Some(fill);
        }
    }

    /// A fill ended. A failed one is not tried again for [`FillConfig::retry_after_ms`]
    /// (one too large for its pin budget: not as a popular fill). Returns the fill (none if
    /// it was not running).
    pub fn done(&mut self, rendition: &RenditionId, outcome: Outcome, now_ms: u64) -> Option<Fill> {
        let fill = self.running.remove(rendition)?;
        let pinned_only = match outcome {
            Outcome::Filled => {
                self.misses.remove(rendition);
                return Some(fill);
            }
            Outcome::Cancelled => return Some(fill),
            Outcome::TooLarge => fill.pin,
            Outcome::Failed => false,
        };
        self.refused.retain(|_, refusal| refusal.until_ms > now_ms);
        if self.refused.len() >= self.config.tracked_max {
            self.refused.clear();
        }
        self.refused.insert(
            *rendition,
            Refusal {
                until_ms: now_ms.saturating_add(self.config.retry_after_ms),
                pinned_only,
            },
        );
        Some(fill)
    }

    /// When the planner wants to be called again: `now_ms` if a fill may start now, else
    /// when the next round is due (a miss or a fill's end may bring it sooner).
    pub fn poll_timeout(&self, now_ms: u64) -> u64 {
        let can_start = self.running.len() < self.config.at_once
            && !(self.popular.is_empty() && self.pulled.is_empty());
        if can_start {
            now_ms
        } else {
            self.next_round_ms.max(now_ms)
        }
    }

    /// The fill of `rendition`, while it runs.
    pub fn running_fill(&self, rendition: &RenditionId) -> Option<&Fill> {
        self.running.get(rendition)
    }

    /// When the next popularity round is due.
    pub fn next_round_ms(&self) -> u64 {
        self.next_round_ms
    }

    /// Fills running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Renditions queued and not started.
    pub fn queued(&self) -> usize {
        self.popular.len() + self.pulled.len()
    }

    /// True while a failed fill of `rendition` is recent (as a pull-through fill when not
    /// `pin`, as a popular one when `pin`).
    pub fn is_refused(&self, rendition: &RenditionId, pin: bool, now_ms: u64) -> bool {
        self.refused_at(rendition, pin, now_ms)
    }

    fn refused_at(&self, rendition: &RenditionId, pin: bool, now_ms: u64) -> bool {
        self.refused
            .get(rendition)
            .is_some_and(|refusal| refusal.until_ms > now_ms && (pin || !refusal.pinned_only))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u16) -> RenditionId {
        let mut bytes = [0u8; 32];
        bytes[..2].copy_from_slice(&n.to_be_bytes());
        RenditionId(bytes)
    }

    fn planner(at_once: usize) -> FillPlanner {
        FillPlanner::new(FillConfig {
            at_once,
            ..FillConfig::default()
        })
    }

    #[test]
    fn popular_renditions_fill_best_first_a_few_at_a_time() {
        let cache = CachePolicy::new(1_000, 0.5);
        let mut fills = planner(2);
        assert!(fills.round_due(0));
        fills.popular(&[id(1), id(2), id(3)], 0);
        assert!(!fills.round_due(29_999) && fills.round_due(30_000));
        assert_eq!(fills.poll_timeout(5), 5);
        let first = fills.next(&cache, 5).unwrap();
        let second = fills.next(&cache, 5).unwrap();
        assert_eq!((first.rendition, second.rendition), (id(1), id(2)));
        assert!(first.pin && first.bytes_max == 500);
        assert_eq!(fills.next(&cache, 5), None, "two at once");
        assert_eq!(fills.poll_timeout(5), 30_000);
        assert_eq!(fills.done(&id(1), Outcome::Filled, 9), Some(first));
        assert_eq!(fills.next(&cache, 9).unwrap().rendition, id(3));
        assert_eq!(fills.next(&cache, 9), None);
    }

    #[test]
    fn a_rendition_missed_twice_is_pulled_through_unpinned() {
        let mut cache = CachePolicy::new(1_000, 0.5);
        let mut fills = planner(4);
        fills.popular(&[], 0);
        assert!(!fills.miss(id(7), 1));
        assert_eq!(fills.next(&cache, 1), None);
        assert!(fills.miss(id(7), 2), "the second miss queues it");
        assert!(!fills.miss(id(7), 3), "queued already");
        assert_eq!(fills.poll_timeout(3), 3);
        let fill = fills.next(&cache, 3).unwrap();
        assert_eq!(
            fill,
            Fill {
                rendition: id(7),
                pin: false,
                bytes_max: 1_000
            }
        );
        assert!(!fills.miss(id(7), 4), "running");
        fills.done(&id(7), Outcome::Filled, 5);
        cache.admit(id(7), 100, false, 5).unwrap();
        // Pulled ones go first: listeners are asking for them now.
        fills.popular(&[id(9)], 6);
        assert!(!fills.miss(id(8), 6) && fills.miss(id(8), 6));
        assert_eq!(fills.next(&cache, 6).unwrap().rendition, id(8));
        assert_eq!(fills.next(&cache, 6).unwrap().rendition, id(9));
    }

    #[test]
    fn held_and_running_renditions_are_not_fetched_twice() {
        let mut cache = CachePolicy::new(1_000, 0.5);
        cache.admit(id(1), 100, true, 0).unwrap();
        let mut fills = planner(4);
        fills.popular(&[id(1), id(2)], 0);
        assert_eq!(fills.next(&cache, 0).unwrap().rendition, id(2));
        fills.popular(&[id(2), id(3)], 1);
        assert_eq!(fills.next(&cache, 1).unwrap().rendition, id(3));
        assert_eq!(fills.next(&cache, 1), None);
        assert_eq!(fills.running(), 2);
    }

    #[test]
    fn a_failed_fill_waits_before_it_is_tried_again() {
        let cache = CachePolicy::new(1_000, 0.5);
        let mut fills = planner(4);
        fills.popular(&[id(1)], 0);
        fills.next(&cache, 0).unwrap();
        fills.done(&id(1), Outcome::Failed, 100);
        assert!(fills.is_refused(&id(1), true, 100) && fills.is_refused(&id(1), false, 100));
        fills.popular(&[id(1)], 200);
        assert_eq!(fills.next(&cache, 200), None);
        assert!(!fills.miss(id(1), 200) && !fills.miss(id(1), 201));
        let later = 100 + FillConfig::default().retry_after_ms;
        assert!(!fills.is_refused(&id(1), true, later));
        fills.popular(&[id(1)], later);
        assert_eq!(fills.next(&cache, later).unwrap().rendition, id(1));
        assert_eq!(fills.done(&id(9), Outcome::Failed, later), None);
    }

    #[test]
    fn too_large_for_the_pin_budget_may_still_be_pulled_through() {
        let cache = CachePolicy::new(1_000, 0.5);
        let mut fills = planner(4);
        fills.popular(&[id(1)], 0);
        assert!(fills.next(&cache, 0).unwrap().pin);
        fills.done(&id(1), Outcome::TooLarge, 10);
        assert!(fills.is_refused(&id(1), true, 10) && !fills.is_refused(&id(1), false, 10));
        fills.popular(&[id(1)], 20);
        assert_eq!(fills.next(&cache, 20), None, "not again as a popular fill");
        assert!(!fills.miss(id(1), 21) && fills.miss(id(1), 22));
        let fill = fills.next(&cache, 22).unwrap();
        assert_eq!(
            (fill.rendition, fill.pin, fill.bytes_max),
            (id(1), false, 1_000)
        );
        // Too large for the whole cache is a plain failure.
        fills.done(&id(1), Outcome::TooLarge, 30);
        assert!(fills.is_refused(&id(1), false, 30));
    }

    #[test]
    fn cancelled_fills_are_not_held_against_and_misses_expire() {
        let cache = CachePolicy::new(1_000, 0.5);
        let mut fills = planner(1);
        fills.popular(&[id(1)], 0);
        fills.next(&cache, 0).unwrap();
        assert_eq!(fills.next(&cache, 0), None);
        fills.done(&id(1), Outcome::Cancelled, 5);
        assert!(!fills.is_refused(&id(1), true, 5));
        assert_eq!(fills.running(), 0);
        let window = FillConfig::default().miss_window_ms;
        assert!(!fills.miss(id(2), 0));
        assert!(
            !fills.miss(id(2), window),
            "the first miss is too old to count"
        );
        assert!(fills.miss(id(2), window + 1));
    }

    #[test]
    fn a_spent_pin_budget_skips_popular_fills_but_not_pulled_ones() {
        let mut cache = CachePolicy::new(1_000, 0.5);
        cache.admit(id(1), 500, true, 0).unwrap();
        assert_eq!(cache.pin_room_bytes(), 0);
        let mut fills = planner(4);
        fills.popular(&[id(2)], 0);
        fills.miss(id(3), 0);
        fills.miss(id(3), 0);
        let fill = fills.next(&cache, 0).unwrap();
        assert_eq!((fill.rendition, fill.pin), (id(3), false));
        assert_eq!(fills.next(&cache, 0), None);
    }

    #[test]
    fn a_flood_of_misses_keeps_memory_bounded() {
        let cache = CachePolicy::new(1_000, 0.5);
        let mut fills = FillPlanner::new(FillConfig {
            tracked_max: 64,
            queue_max: 8,
            at_once: 1,
            ..FillConfig::default()
        });
        for n in 0..10_000u16 {
            fills.miss(id(n), u64::from(n));
            assert!(fills.misses.len() <= 64);
        }
        // Each id twice in a row: every one reaches the threshold, the queue keeps the newest.
        for n in 0..1_000u16 {
            fills.miss(id(n), 0);
            fills.miss(id(n), 0);
        }
        assert_eq!(fills.queued(), 8);
        assert_eq!(fills.next(&cache, 0).unwrap().rendition, id(992));
        fills.done(&id(992), Outcome::Filled, 0);
        // Failures: each remembered until its retry, never more than the bound at once.
        for n in 0..10_000u16 {
            fills.popular(&[id(n)], 0);
            let fill = fills.next(&cache, 0).unwrap();
            fills.done(&fill.rendition, Outcome::Failed, 0);
            assert!(fills.refused.len() <= 64);
        }
    }

    #[test]
    fn zero_settings_are_raised_to_one() {
        let fills = FillPlanner::new(FillConfig {
            at_once: 0,
            after_misses: 0,
            queue_max: 0,
            tracked_max: 0,
            ..FillConfig::default()
        });
        assert_eq!(fills.config().at_once, 1);
        assert_eq!(fills.config().after_misses, 1);
    }
}
