//! The play queue as a sans-IO state machine: a list of tracks, the order they play in
//! (playlist order or shuffled from a seed), repeat modes, skip and previous.
//!
//! It decides nothing about the network; the driver (`client_lib::listener`) asks it which track
//! plays now and which comes next (to prefetch when the scheduler says the current one is
//! nearly done). Shuffle is a seeded Fisher–Yates permutation, so a seed replays a session.

/// What happens at the end of the queue, or of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Repeat {
    /// Stop after the last track.
    #[default]
    Off,
    /// Start over after the last track (reshuffled when shuffling).
    All,
    /// Play the current track again when it ends (skip still moves on).
    One,
}

impl std::str::FromStr for Repeat {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "off" => Ok(Self::Off),
            "all" => Ok(Self::All),
            "one" => Ok(Self::One),
            other => Err(format!("repeat mode {other:?}: expected off, all or one")),
        }
    }
}

/// Most tracks in one queue (a playlist holds at most 10,000).
pub const QUEUE_TRACKS_MAX: usize = 10_000;

/// Why a queue could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// No tracks.
    #[error("the queue is empty")]
    Empty,
    /// More than [`QUEUE_TRACKS_MAX`] tracks.
    #[error("a queue holds at most {QUEUE_TRACKS_MAX} tracks, got {0}")]
    TooLong(usize),
}

/// The queue. Positions index [`Queue::order`], which indexes the track list.
#[derive(Debug, Clone)]
pub struct Queue {
    tracks: Vec<String>,
    order: Vec<usize>,
    position: usize,
    shuffle: bool,
    repeat: Repeat,
    rng: u64,
    finished: bool,
}

impl Queue {
    /// A queue of `tracks` in playlist order; `seed` drives shuffling.
    pub fn new(tracks: Vec<String>, seed: u64) -> Result<Self, QueueError> {
        if tracks.is_empty() {
            return Err(QueueError::Empty);
        }
        if tracks.len() > QUEUE_TRACKS_MAX {
            return Err(QueueError::TooLong(tracks.len()));
        }
        Ok(Self {
            order: (0..tracks.len()).collect(),
            tracks,
            position: 0,
            shuffle: false,
            repeat: Repeat::Off,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            finished: false,
        })
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: small, seeded, good enough to shuffle a playlist.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Shuffles `order[from..]` in place.
    fn shuffle_from(&mut self, from: usize) {
        let len = self.order.len();
        for i in (from + 1..len).rev() {
            let span = (i - from + 1) as u64;
            let j = from + (self.next_random() % span) as usize;
            self.order.swap(i, j);
        }
    }

    /// Turns shuffling on or off. On: the tracks after the current one are shuffled (the
    /// current one keeps playing). Off: playlist order again, from the current track.
    pub fn set_shuffle(&mut self, on: bool) {
        if on == self.shuffle {
            return;
        }
        self.shuffle = on;
        let current = self.order[self.position];
        if on {
            // The current track first, the rest shuffled after it.
            self.order.retain(|&track| track != current);
            self.order.insert(0, current);
            self.position = 0;
            self.shuffle_from(1);
        } else {
            self.order = (0..self.tracks.len()).collect();
            self.position = current;
        }
    }

    /// Sets the repeat mode.
    pub fn set_repeat(&mut self, repeat: Repeat) {
        self.repeat = repeat;
    }

    /// Whether shuffling is on.
    pub fn shuffled(&self) -> bool {
        self.shuffle
    }

    /// The repeat mode.
    pub fn repeat(&self) -> Repeat {
        self.repeat
    }

    /// The tracks in the order they play (this pass).
    pub fn order(&self) -> Vec<&str> {
        self.order
            .iter()
            .map(|&track| self.tracks[track].as_str())
            .collect()
    }

    /// The track playing now; `None` once the queue has run out.
    pub fn current(&self) -> Option<&str> {
        if self.finished {
            None
        } else {
            Some(&self.tracks[self.order[self.position]])
        }
    }

    /// The track that will play when the current one ends (what to prefetch).
    pub fn peek_next(&self) -> Option<&str> {
        if self.finished {
            return None;
        }
        match self.repeat {
            Repeat::One => self.current(),
            _ if self.position + 1 < self.order.len() => {
                Some(&self.tracks[self.order[self.position + 1]])
            }
            // A reshuffle may change what comes first; playlist order starts over.
            Repeat::All if !self.shuffle => Some(&self.tracks[self.order[0]]),
            _ => None,
        }
    }

    /// The current track ended on its own: moves to the next one by the repeat rules.
    pub fn track_ended(&mut self) -> Option<&str> {
        if self.repeat == Repeat::One {
            return self.current();
        }
        self.advance()
    }

    /// The listener skipped: moves on even under [`Repeat::One`].
    pub fn skip(&mut self) -> Option<&str> {
        self.advance()
    }

    fn advance(&mut self) -> Option<&str> {
        if self.finished {
            return None;
        }
        if self.position + 1 < self.order.len() {
            self.position += 1;
        } else if self.repeat == Repeat::Off {
            self.finished = true;
            return None;
        } else {
            self.position = 0;
            if self.shuffle {
                self.shuffle_from(0);
            }
        }
        self.current()
    }

    /// Back to the previous track (the first one stays first; after the end, the last one).
    pub fn previous(&mut self) -> Option<&str> {
        if self.finished {
            self.finished = false;
        } else {
            self.position = self.position.saturating_sub(1);
        }
        self.current()
    }

    /// Jumps to the `index`-th track of the playlist (not of the shuffled order).
    pub fn jump(&mut self, index: usize) -> Option<&str> {
        let at = self.order.iter().position(|&track| track == index)?;
        self.position = at;
        self.finished = false;
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(n: usize, seed: u64) -> Queue {
        Queue::new((0..n).map(|i| format!("t{i}")).collect(), seed).unwrap()
    }

    fn drain(queue: &mut Queue, max: usize) -> Vec<String> {
        let mut played = Vec::new();
        while let Some(track) = queue.current().map(str::to_string) {
            played.push(track);
            if played.len() == max {
                break;
            }
            queue.track_ended();
        }
        played
    }

    #[test]
    fn plays_in_playlist_order_and_stops_at_the_end() {
        let mut q = queue(3, 1);
        assert_eq!(q.peek_next(), Some("t1"));
        assert_eq!(drain(&mut q, 10), ["t0", "t1", "t2"]);
        assert_eq!(q.current(), None);
        assert_eq!(q.skip(), None);
        assert_eq!(q.previous(), Some("t2"));
    }

    #[test]
    fn shuffle_is_a_seeded_permutation_that_keeps_the_current_track() {
        let mut a = queue(50, 7);
        a.skip();
        a.set_shuffle(true);
        assert_eq!(a.current(), Some("t1"));
        let mut order: Vec<String> = a.order().iter().map(|s| s.to_string()).collect();
        let mut b = queue(50, 7);
        b.skip();
        b.set_shuffle(true);
        assert_eq!(a.order(), b.order(), "same seed, same order");
        let mut c = queue(50, 8);
        c.skip();
        c.set_shuffle(true);
        assert_ne!(a.order(), c.order(), "another seed, another order");
        assert_ne!(
            order[1..],
            (0..50)
                .filter(|&i| i != 1)
                .map(|i| format!("t{i}"))
                .collect::<Vec<_>>()[..]
        );
        order.sort();
        let mut all: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
        all.sort();
        assert_eq!(order, all, "every track exactly once");
        // Off again: playlist order resumes from the current track.
        a.set_shuffle(false);
        assert_eq!(a.current(), Some("t1"));
        assert_eq!(a.peek_next(), Some("t2"));
    }

    #[test]
    fn repeat_all_wraps_repeat_one_holds_until_skipped() {
        let mut q = queue(2, 3);
        q.set_repeat(Repeat::All);
        assert_eq!(drain(&mut q, 5), ["t0", "t1", "t0", "t1", "t0"]);
        q.set_repeat(Repeat::One);
        assert_eq!(q.peek_next(), q.current());
        assert_eq!(q.track_ended(), Some("t0"));
        assert_eq!(q.skip(), Some("t1"));
        q.set_shuffle(true);
        q.set_repeat(Repeat::All);
        assert_eq!(
            drain(&mut q, 6).len(),
            6,
            "a shuffled repeat never runs out"
        );
    }

    #[test]
    fn bad_queues_are_refused() {
        assert_eq!(Queue::new(Vec::new(), 0).unwrap_err(), QueueError::Empty);
        assert_eq!(
            Queue::new(vec![String::new(); QUEUE_TRACKS_MAX + 1], 0).unwrap_err(),
            QueueError::TooLong(QUEUE_TRACKS_MAX + 1)
        );
        let mut q = queue(3, 0);
        assert_eq!(q.jump(2), Some("t2"));
        assert_eq!(q.jump(9), None);
        assert_eq!(q.current(), Some("t2"), "a bad jump changes nothing");
    }
}
