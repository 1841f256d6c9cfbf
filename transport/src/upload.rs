//! Upload slots and an upload bandwidth cap for nodes that serve chunks to peers.
//!
//! Which requests get a slot is [`policy::upload`]'s decision (slots by priority, at most
//! half of them per account; the simulator runs the same code): this gate holds its state
//! for the connections of a real node and hands out a slot that gives itself back when
//! dropped. A request that finds no slot gets `Overloaded` at once, and the requester's
//! scheduler goes to another source.
//!
//! The bandwidth cap is a token bucket (burst: one second of the rate, at least 256 KiB)
//! that every chunk sent passes through before its bytes are written.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use policy::upload::Admission;
use protocol::AccountId;
use protocol::wire::Priority;

/// Slots and bandwidth shared by every request a node serves.
#[derive(Debug)]
pub struct UploadGate {
    admission: Arc<Mutex<Admission<AccountId>>>,
    bucket: Option<Mutex<Bucket>>,
}

/// An upload slot, released when dropped.
#[derive(Debug)]
pub struct UploadSlot {
    account: AccountId,
    admission: Arc<Mutex<Admission<AccountId>>>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        self.admission
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .release(&self.account);
    }
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

/// Smallest burst of the bandwidth cap, in bytes (one 256 KiB range, roughly).
pub const BURST_BYTES_MIN: f64 = 256.0 * 1024.0;

impl UploadGate {
    /// A gate with `slots` concurrent uploads (at least 1) and, if set, at most
    /// `bytes_per_s` bytes per second across all of them.
    pub fn new(slots: usize, bytes_per_s: Option<u64>) -> Self {
        Self {
            admission: Arc::new(Mutex::new(Admission::new(slots))),
            bucket: bytes_per_s.filter(|rate| *rate > 0).map(|rate| {
                let rate = rate as f64;
                let burst = rate.max(BURST_BYTES_MIN);
                Mutex::new(Bucket {
                    rate,
                    burst,
                    tokens: burst,
                    at: Instant::now(),
                })
            }),
        }
    }

    fn admission(&self) -> std::sync::MutexGuard<'_, Admission<AccountId>> {
        self.admission
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Slots in all.
    pub fn slots_total(&self) -> usize {
        self.admission().slots_total()
    }

    /// Slots free now.
    pub fn slots_free(&self) -> usize {
        self.admission().slots_free()
    }

    /// Takes a slot for a request of `priority` licensed to `account`, or `None` when the
    /// slots left are reserved for more urgent requests, none are left, or the account holds
    /// its share already (per account, not node id: node ids cost nothing to make).
    pub fn try_slot(&self, account: &AccountId, priority: Priority) -> Option<UploadSlot> {
        self.admission().admit(*account, priority).ok()?;
        Some(UploadSlot {
            account: *account,
            admission: self.admission.clone(),
        })
    }

    /// Waits until `bytes` may be sent under the bandwidth cap, and charges them.
    pub async fn pace(&self, bytes: usize) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        let wait = {
            let mut bucket = bucket.lock().unwrap_or_else(|poison| poison.into_inner());
            let now = Instant::now();
            let elapsed = now.duration_since(bucket.at).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * bucket.rate).min(bucket.burst);
            bucket.at = now;
            // Charge now (the balance may go negative); the debt is the wait.
            bucket.tokens -= bytes as f64;
            if bucket.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-bucket.tokens / bucket.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_account_holds_at_most_half_the_slots() {
        let gate = UploadGate::new(4, None);
        let (greedy, other) = (AccountId([1; 16]), AccountId([2; 16]));
        let first = gate
            .try_slot(&greedy, Priority::Playing)
            .expect("a free slot");
        let second = gate
            .try_slot(&greedy, Priority::Playing)
            .expect("its share is 2");
        assert!(
            gate.try_slot(&greedy, Priority::Playing).is_none(),
            "over its share"
        );
        let theirs = gate
            .try_slot(&other, Priority::Playing)
            .expect("others still get one");
        drop(first);
        assert!(gate.try_slot(&greedy, Priority::Playing).is_some());
        drop((second, theirs));
        assert_eq!(gate.slots_free(), 4);
        assert_eq!(gate.admission().held_by(&greedy), 0);
    }

    #[test]
    fn slots_are_reserved_for_more_urgent_requests() {
        let gate = UploadGate::new(4, None);
        let peer = |n: u8| AccountId([n; 16]);
        let offline = gate
            .try_slot(&peer(1), Priority::OfflineSync)
            .expect("4 free, 2 reserved");
        let offline2 = gate
            .try_slot(&peer(2), Priority::OfflineSync)
            .expect("3 free, 2 reserved");
        assert!(
            gate.try_slot(&peer(3), Priority::OfflineSync).is_none(),
            "2 free, 2 reserved"
        );
        let prefetch = gate
            .try_slot(&peer(3), Priority::Prefetch)
            .expect("2 free, 1 reserved");
        assert!(
            gate.try_slot(&peer(4), Priority::Prefetch).is_none(),
            "1 free, 1 reserved"
        );
        let playing = gate
            .try_slot(&peer(4), Priority::Playing)
            .expect("the last slot");
        assert!(
            gate.try_slot(&peer(5), Priority::Playing).is_none(),
            "all taken"
        );
        drop(offline);
        assert!(gate.try_slot(&peer(5), Priority::Playing).is_some());
        drop((offline2, prefetch, playing));
        assert_eq!(gate.slots_free(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bandwidth_cap_paces_sends() {
        let gate = UploadGate::new(1, Some(1_000_000));
        let start = tokio::time::Instant::now();
        // The first second's worth goes out at once (the burst), the next second's waits.
        gate.pace(1_000_000).await;
        assert!(start.elapsed() < Duration::from_millis(10));
        gate.pace(1_000_000).await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(900), "waited {waited:?}");
    }
}
