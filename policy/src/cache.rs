//! The super-node's cache policy, sans-IO: which renditions to keep within a byte budget.
//!
//! A super-node caches whole renditions (a peer announces, and a client fetches, renditions,
//! so half a rendition is worth little). The policy has two segments:
//!
//! - **Pinned**: the renditions the tracker reports as most in demand, up to
//!   [`CachePolicy::pin_fraction`] of the budget. They are fetched ahead of demand and never
//!   evicted while they stay on the tracker's list; when they drop off it they become ordinary
//!   entries with their last use intact.
//! - **Recent**: everything else, evicted least-recently-used first.
//!
//! Why not plain LRU: a super-node serves a crowd, not one listener. Its requests come from
//! clients the tracker sent to it, so what it should hold is what the crowd plays, which the
//! tracker sees directly (queries per rendition, decayed). Pinning the head of that list keeps
//! the renditions that carry most of the traffic (Zipf: the top few percent of tracks carry most
//! plays) from being flushed by a burst of one-off requests, which is LRU's known weakness under
//! scans; the LRU segment still adapts to local demand the tracker has not noticed yet.
//!
//! Time is an argument (milliseconds), so the simulator replays this exact code.

use std::collections::{BTreeSet, HashMap, HashSet};

/// A fixed hasher: the map is iterated, and runs must replay.
type Fixed = foldhash::fast::FixedState;

use protocol::RenditionId;

#[derive(Debug, Clone, Copy)]
struct Entry {
    bytes: u64,
    last_used_ms: u64,
    pinned: bool,
}

/// Why a rendition was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// Larger than the whole budget.
    #[error("rendition of {0} bytes is larger than the cache")]
    TooLarge(u64),
    /// Everything that could be evicted is pinned.
    #[error("cache full of pinned renditions")]
    Full,
}

/// Keeps the byte total of cached renditions within a budget. See the module docs.
#[derive(Debug)]
pub struct CachePolicy {
    capacity_bytes: u64,
    pin_fraction: f64,
    used_bytes: u64,
    pinned_bytes: u64,
    entries: HashMap<RenditionId, Entry, Fixed>,
    /// Unpinned entries by last use: the eviction order.
    lru: BTreeSet<(u64, RenditionId)>,
    /// What the tracker says is popular, best first (bounded by what the caller passes).
    wanted: Vec<RenditionId>,
}

impl CachePolicy {
    /// A policy for `capacity_bytes`, pinning up to `pin_fraction` (0..=1) of it.
    pub fn new(capacity_bytes: u64, pin_fraction: f64) -> Self {
        Self {
            capacity_bytes,
            pin_fraction: pin_fraction.clamp(0.0, 1.0),
            used_bytes: 0,
            pinned_bytes: 0,
            entries: HashMap::default(),
            lru: BTreeSet::new(),
            wanted: Vec::new(),
        }
    }

    /// The byte budget.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Share of the budget popular renditions may pin.
    pub fn pin_fraction(&self) -> f64 {
        self.pin_fraction
    }

    /// Bytes held.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// Bytes held by pinned renditions.
    pub fn pinned_bytes(&self) -> u64 {
        self.pinned_bytes
    }

    /// Renditions held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `rendition` is held.
    pub fn contains(&self, rendition: &RenditionId) -> bool {
        self.entries.contains_key(rendition)
    }

    /// True when `rendition` is held and pinned.
    pub fn is_pinned(&self, rendition: &RenditionId) -> bool {
        self.entries
            .get(rendition)
            .is_some_and(|entry| entry.pinned)
    }

    /// Everything held, most recently used first (pinned ones first of all): the order to
    /// announce in when an announce cannot carry everything.
    pub fn held(&self) -> Vec<RenditionId> {
        let mut pinned: Vec<RenditionId> = self
            .wanted
            .iter()
            .filter(|id| self.is_pinned(id))
            .copied()
            .collect();
        pinned.extend(self.lru.iter().rev().map(|(_, id)| *id));
        pinned
    }

    fn pin_budget(&self) -> u64 {
        (self.capacity_bytes as f64 * self.pin_fraction) as u64
    }

    /// Bytes a popular rendition may still pin: the pin budget less what is pinned.
    pub fn pin_room_bytes(&self) -> u64 {
        self.pin_budget().saturating_sub(self.pinned_bytes)
    }

    /// Records a use of `rendition` at `now_ms` (a served request).
    pub fn touch(&mut self, rendition: &RenditionId, now_ms: u64) {
        if let Some(entry) = self.entries.get_mut(rendition) {
            if !entry.pinned {
                self.lru.remove(&(entry.last_used_ms, *rendition));
                self.lru.insert((now_ms, *rendition));
            }
            entry.last_used_ms = now_ms;
        }
    }

    /// Takes the tracker's popularity list (best first). Returns the renditions to fetch now,
    /// best first: popular ones not held whose sizes are unknown until fetched, so the caller
    /// fetches them (a few at once, as [`crate::fill::FillPlanner`] chooses) and calls
    /// [`CachePolicy::admit`] with `pin = true`, which checks the pin budget as each lands. Held renditions on the list are pinned (within the budget); pinned ones
    /// that left the list become ordinary LRU entries.
    pub fn set_popular(&mut self, popular: &[RenditionId], now_ms: u64) -> Vec<RenditionId> {
        self.wanted = popular.to_vec();
        let wanted: HashSet<&RenditionId, Fixed> = popular.iter().collect();
        // Unpin what left the list.
        let unpin: Vec<RenditionId> = self
            .entries
            .iter()
            .filter(|(id, entry)| entry.pinned && !wanted.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for id in unpin {
            self.set_pinned(&id, false, now_ms);
        }
        // Pin what is held and popular, best first, within the budget.
        let mut missing = Vec::new();
        for id in popular {
            match self.entries.get(id).copied() {
                Some(entry) if entry.pinned => {}
                Some(entry) => {
                    if self.pinned_bytes + entry.bytes <= self.pin_budget() {
                        self.set_pinned(id, true, now_ms);
                    }
                }
                None => missing.push(*id),
            }
        }
        missing
    }

    fn set_pinned(&mut self, rendition: &RenditionId, pinned: bool, now_ms: u64) {
        let Some(entry) = self.entries.get_mut(rendition) else {
            return;
        };
        if entry.pinned == pinned {
            return;
        }
        entry.pinned = pinned;
        if pinned {
            self.lru.remove(&(entry.last_used_ms, *rendition));
            self.pinned_bytes += entry.bytes;
        } else {
            entry.last_used_ms = entry.last_used_ms.max(now_ms.saturating_sub(1));
            self.lru.insert((entry.last_used_ms, *rendition));
            self.pinned_bytes -= entry.bytes;
        }
    }

    /// True when a popular rendition of `bytes` would fit the pin budget now.
    pub fn pin_room(&self, bytes: u64) -> bool {
        self.pinned_bytes + bytes <= self.pin_budget()
    }

    /// Admits `rendition` of `bytes`, pinned if `pin` and the pin budget allows. Returns the
    /// renditions evicted to make room (least recently used first), which the caller deletes.
    pub fn admit(
        &mut self,
        rendition: RenditionId,
        bytes: u64,
        pin: bool,
        now_ms: u64,
    ) -> Result<Vec<RenditionId>, AdmitError> {
        if bytes > self.capacity_bytes {
            return Err(AdmitError::TooLarge(bytes));
        }
        if self.entries.contains_key(&rendition) {
            self.touch(&rendition, now_ms);
            return Ok(Vec::new());
        }
        let pinned = pin && self.pin_room(bytes);
        // Evict unpinned renditions, least recently used first, until it fits.
        let unpinned_bytes = self.used_bytes - self.pinned_bytes;
        if self.used_bytes + bytes > self.capacity_bytes
            && self.used_bytes + bytes - self.capacity_bytes > unpinned_bytes
        {
            return Err(AdmitError::Full);
        }
        let mut evicted = Vec::new();
        while self.used_bytes + bytes > self.capacity_bytes {
            let Some(&(last_used, victim)) = self.lru.iter().next() else {
                return Err(AdmitError::Full);
            };
            self.lru.remove(&(last_used, victim));
            if let Some(entry) = self.entries.remove(&victim) {
                self.used_bytes -= entry.bytes;
            }
            evicted.push(victim);
        }
        self.entries.insert(
            rendition,
            Entry {
                bytes,
                last_used_ms: now_ms,
                pinned,
            },
        );
        self.used_bytes += bytes;
        if pinned {
            self.pinned_bytes += bytes;
        } else {
            self.lru.insert((now_ms, rendition));
        }
        Ok(evicted)
    }

    /// Forgets `rendition` (deleted, or found damaged).
    pub fn remove(&mut self, rendition: &RenditionId) -> bool {
        let Some(entry) = self.entries.remove(rendition) else {
            return false;
        };
        self.used_bytes -= entry.bytes;
        if entry.pinned {
            self.pinned_bytes -= entry.bytes;
        } else {
            self.lru.remove(&(entry.last_used_ms, *rendition));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> RenditionId {
        RenditionId([n; 32])
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used() {
        let mut cache = CachePolicy::new(300, 0.5);
        for n in 1..=3 {
            assert!(
                cache
                    .admit(id(n), 100, false, u64::from(n))
                    .unwrap()
                    .is_empty()
            );
        }
        cache.touch(&id(1), 10);
        let evicted = cache.admit(id(4), 150, false, 11).unwrap();
        assert_eq!(evicted, vec![id(2), id(3)]);
        assert_eq!(cache.used_bytes(), 250);
        assert!(cache.contains(&id(1)) && cache.contains(&id(4)));
        assert_eq!(
            cache.admit(id(5), 301, false, 12),
            Err(AdmitError::TooLarge(301))
        );
    }

    #[test]
    fn popular_renditions_are_pinned_within_their_budget_and_survive_scans() {
        let mut cache = CachePolicy::new(400, 0.5);
        cache.admit(id(1), 100, false, 1).unwrap();
        let missing = cache.set_popular(&[id(1), id(2), id(3)], 2);
        assert_eq!(missing, vec![id(2), id(3)]);
        assert!(cache.is_pinned(&id(1)));
        // id(2) fits the pin budget (200), id(3) no longer does: admitted unpinned.
        cache.admit(id(2), 100, true, 3).unwrap();
        cache.admit(id(3), 100, true, 4).unwrap();
        assert!(cache.is_pinned(&id(2)));
        assert!(!cache.is_pinned(&id(3)));
        assert_eq!(cache.pinned_bytes(), 200);
        // A scan of one-off renditions flushes only unpinned entries.
        for n in 10..20 {
            cache.admit(id(n), 100, false, 10 + u64::from(n)).unwrap();
        }
        assert!(cache.contains(&id(1)) && cache.contains(&id(2)));
        assert!(!cache.contains(&id(3)));
        assert_eq!(cache.used_bytes(), 400);
        // When they leave the list they become ordinary entries again.
        cache.set_popular(&[], 100);
        assert_eq!(cache.pinned_bytes(), 0);
        let evicted = cache.admit(id(30), 200, false, 101).unwrap();
        assert_eq!(evicted.len(), 2);
    }

    #[test]
    fn a_cache_full_of_pins_refuses_rather_than_overflows() {
        let mut cache = CachePolicy::new(200, 1.0);
        cache.set_popular(&[id(1), id(2)], 0);
        cache.admit(id(1), 100, true, 1).unwrap();
        cache.admit(id(2), 100, true, 2).unwrap();
        assert_eq!(cache.admit(id(3), 50, false, 3), Err(AdmitError::Full));
        assert_eq!(cache.used_bytes(), 200);
        assert!(cache.remove(&id(1)));
        assert!(cache.admit(id(3), 50, false, 3).unwrap().is_empty());
    }
}
