//! The event queue: events in order of (time, key, push order), as a binary heap of
//! `(time, key, sequence)` would give them, for less.
//!
//! Events due at the same millisecond come out in the order of a key the caller gives each
//! (what the event is and whom it concerns), and only events with equal keys in the order
//! they were pushed. So the order within a millisecond does not depend on when each event
//! was queued: two runs that queue the same events at different moments (one that moves an
//! event more often than the other, say) handle them in the same order.
//!
//! A timing wheel of one-millisecond buckets covers the next [`WHEEL_MS`]; a bucket takes
//! its events in push order and is sorted by key (a stable sort: equal keys stay in push
//! order) when its millisecond comes, after which events pushed into it are put in their
//! place. A bitmap of non-empty buckets finds the next one without walking empty ones. Events further off wait in a heap keyed by `(time, key,
//! sequence)` and move into their bucket when the wheel first covers their millisecond,
//! before anything can be pushed there directly, so equal keys keep their push order. Buckets
//! keep their allocations. An event the wheel holds can be taken back
//! ([`EventQueue::cancel`]), so a rescheduled one need not come out only to be ignored.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Milliseconds the wheel covers (a power of two).
pub const WHEEL_MS: u64 = 1 << 16;
const MASK: u64 = WHEEL_MS - 1;
const WORDS: usize = (WHEEL_MS / 64) as usize;

/// Events of type `T`, each due at a millisecond.
#[derive(Debug)]
pub struct EventQueue<T> {
    /// The wheel's buckets, indexed by time modulo [`WHEEL_MS`], in push order until their
    /// millisecond comes, then sorted by key.
    buckets: Vec<VecDeque<(u64, T)>>,
    /// The millisecond whose bucket is sorted (the one being taken from), if any.
    sorted: Option<u64>,
    /// Bit `t & MASK` set when bucket `t` holds events.
    occupied: Vec<u64>,
    /// The earliest time the wheel holds (every event in the wheel is at or after it, and
    /// before `now + WHEEL_MS`).
    now: u64,
    /// Events at or after `now + WHEEL_MS`.
    far: BinaryHeap<Reverse<Far<T>>>,
    sequence: u64,
    len: usize,
}

/// An event in the far heap: `(time, key, sequence, event)`, ordered by the first three.
type Far<T> = (u64, u64, u64, Slot<T>);

/// An event in the far heap, ordered only by the key beside it.
#[derive(Debug)]
struct Slot<T>(T);

impl<T> PartialEq for Slot<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Slot<T> {}
impl<T> PartialOrd for Slot<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Slot<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> EventQueue<T> {
    /// An empty queue at time 0.
    pub fn new() -> Self {
        Self {
            buckets: (0..WHEEL_MS).map(|_| VecDeque::new()).collect(),
            occupied: vec![0; WORDS],
            now: 0,
            far: BinaryHeap::new(),
            sorted: None,
            sequence: 0,
            len: 0,
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when none wait.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `event` at `at` (a time before the last one popped counts as that time), to
    /// come out among the events of its millisecond in the order of `key`.
    pub fn push(&mut self, at: u64, key: u64, event: T) {
        let at = at.max(self.now);
        self.len += 1;
        if at.saturating_sub(self.now) < WHEEL_MS {
            self.put(at, key, event);
        } else {
            self.sequence += 1;
            self.far
                .push(Reverse((at, key, self.sequence, Slot(event))));
        }
    }

    /// The time of the next event [`EventQueue::pop`] would give, if any.
    pub fn peek_time(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        // Everything in the far heap is later than everything in the wheel.
        self.next_occupied()
            .or_else(|| self.far.peek().map(|Reverse((at, ..))| *at))
    }

    /// Takes back the first event queued at `at` that `matches`, when the wheel holds it,
    /// and says whether it did. An event further off than the wheel reaches stays queued
    /// (its handler must know it for stale: a version number, say); so does one not found.
    pub fn cancel(&mut self, at: u64, matches: impl Fn(&T) -> bool) -> bool {
        if at < self.now || at - self.now >= WHEEL_MS {
            return false;
        }
        let index = (at & MASK) as usize;
        let bucket = &mut self.buckets[index];
        let Some(position) = bucket.iter().position(|(_, event)| matches(event)) else {
            return false;
        };
        // `remove` keeps the others in their order.
        bucket.remove(position);
        if bucket.is_empty() {
            self.occupied[index / 64] &= !(1 << (index % 64));
        }
        self.len -= 1;
        true
    }

    fn put(&mut self, at: u64, key: u64, event: T) {
        let index = (at & MASK) as usize;
        let bucket = &mut self.buckets[index];
        if self.sorted == Some(at) && bucket.back().is_some_and(|(last, _)| *last > key) {
            // Into the bucket being taken from: after every event with a key up to this
            // one, so equal keys stay in push order.
            let position = bucket.partition_point(|(other, _)| *other <= key);
            bucket.insert(position, (key, event));
        } else {
            bucket.push_back((key, event));
        }
        self.occupied[index / 64] |= 1 << (index % 64);
    }

    /// The next event and its time: the earliest, of those the one with the least key, and
    /// of those the first pushed.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        if self.len == 0 {
            return None;
        }
        loop {
            if let Some(at) = self.next_occupied() {
                // Far events whose millisecond the wheel now reaches join their buckets
                // first: they were pushed before anything that went there directly. (All
                // are later than `at`: a far event is at least `WHEEL_MS` after the time
                // the wheel had when it was pushed, and the wheel held everything before.)
                self.advance_to(at);
                let index = (at & MASK) as usize;
                let bucket = &mut self.buckets[index];
                if self.sorted != Some(at) {
                    // Its millisecond has come: nothing more is pushed before it, so sort
                    // it once (stable: equal keys keep their push order).
                    bucket.make_contiguous().sort_by_key(|(key, _)| *key);
                    self.sorted = Some(at);
                }
                let event = bucket.pop_front();
                if bucket.is_empty() {
                    self.occupied[index / 64] &= !(1 << (index % 64));
                }
                if let Some((_, event)) = event {
                    self.len -= 1;
                    return Some((at, event));
                }
                continue;
            }
            // The wheel is empty: jump to the earliest far event.
            let Reverse((at, ..)) = self.far.peek()?;
            let at = *at;
            self.advance_to(at);
        }
    }

    /// Moves the wheel's start to `at`, bringing in far events it now covers.
    fn advance_to(&mut self, at: u64) {
        self.now = at;
        while let Some(Reverse((time, ..))) = self.far.peek() {
            if time.saturating_sub(self.now) >= WHEEL_MS {
                break;
            }
            let Some(Reverse((time, key, _, Slot(event)))) = self.far.pop() else {
                break;
            };
            self.put(time, key, event);
        }
    }

    /// The time of the earliest event in the wheel, if any.
    fn next_occupied(&self) -> Option<u64> {
        let start = (self.now & MASK) as usize;
        let (word, bit) = (start / 64, start % 64);
        // From `now` to the end of the ring, then from its start back to `now`.
        let first = self.occupied[word] & (!0u64 << bit);
        let found = if first != 0 {
            Some(word * 64 + first.trailing_zeros() as usize)
        } else {
            (1..=WORDS).find_map(|step| {
                let w = (word + step) % WORDS;
                let bits = if w == word {
                    self.occupied[w] & !(!0u64 << bit)
                } else {
                    self.occupied[w]
                };
                (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize)
            })
        }?;
        let offset = (found as u64).wrapping_sub(start as u64) & MASK;
        Some(self.now + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: a heap of (time, key, sequence).
    #[derive(Default)]
    struct Reference {
        heap: BinaryHeap<Reverse<(u64, u64, u64, u32)>>,
        sequence: u64,
        now: u64,
    }

    impl Reference {
        fn push(&mut self, at: u64, key: u64, event: u32) {
            self.sequence += 1;
            self.heap
                .push(Reverse((at.max(self.now), key, self.sequence, event)));
        }

        fn pop(&mut self) -> Option<(u64, u32)> {
            let Reverse((at, _, _, event)) = self.heap.pop()?;
            self.now = at;
            Some((at, event))
        }
    }

    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn events_come_out_and_peek_as_from_a_heap_of_time_key_and_push_order() {
        for seed in 1..40u64 {
            let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut queue = EventQueue::new();
            let mut reference = Reference::default();
            let mut now = 0u64;
            let mut event = 0u32;
            for step in 0..20_000 {
                // Mostly pushes near now (often at now exactly), some far off, some in the
                // past; pops in between.
                let pushes = next(&mut state) % 4;
                for _ in 0..pushes {
                    let r = next(&mut state);
                    let at = match r % 10 {
                        0 => now,
                        1 => now.saturating_sub(r % 50),
                        2 => now + WHEEL_MS - 1 + r % 3,
                        3 => now + (r >> 8) % (8 * WHEEL_MS),
                        4 if seed % 3 == 0 => now + 3 * WHEEL_MS + (r >> 8) % 5,
                        _ => now + (r >> 8) % 2_000,
                    };
                    event += 1;
                    // Few keys, so that many are equal and push order decides those.
                    let key = next(&mut state) % 4;
                    queue.push(at, key, event);
                    reference.push(at, key, event);
                }
                // Now and then, take back an event still waiting: found exactly when the
                // wheel holds it (not beyond its reach).
                if step % 7 == 0
                    && let Some(&Reverse((at, _, sequence, victim))) =
                        reference.heap.iter().nth((next(&mut state) % 16) as usize)
                {
                    let taken = queue.cancel(at, |event| *event == victim);
                    assert_eq!(
                        taken,
                        at < now.max(queue.now) + WHEEL_MS,
                        "seed {seed} step {step}"
                    );
                    if taken {
                        reference.heap.retain(|Reverse(entry)| entry.2 != sequence);
                    }
                }
                if step % 3 != 0 || pushes == 0 {
                    let peeked = queue.peek_time();
                    assert_eq!(
                        peeked,
                        reference.heap.peek().map(|Reverse(entry)| entry.0),
                        "seed {seed} step {step}"
                    );
                    let got = queue.pop();
                    assert_eq!(got.map(|(at, _)| at), peeked);
                    assert_eq!(got, reference.pop(), "seed {seed} step {step}");
                    if let Some((at, _)) = got {
                        now = at;
                    }
                }
                assert_eq!(queue.len(), reference.heap.len());
            }
            while let Some(expected) = reference.pop() {
                assert_eq!(queue.pop(), Some(expected), "seed {seed} draining");
            }
            assert_eq!(queue.pop(), None);
        }
    }
}
