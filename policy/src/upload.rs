//! Upload admission: which requests a serving node takes, as a state machine without I/O.
//!
//! A serving node (a listener sharing its cache, a super-node) grants a few upload slots at a
//! time, by priority: a request for the track a listener is playing may take any free slot, a
//! prefetch leaves a quarter of the slots free for playing requests, an offline sync leaves
//! half. A request that finds no slot is refused at once (`Overloaded` on the wire), and the
//! requester's scheduler goes to another source: waiting here would only hide the queue from
//! the one party that can route around it.
//!
//! No account holds more than half the slots (rounded up) at once, whatever its priority: one
//! listener asking for many ranges marked `Playing`, from as many node ids as it likes, cannot
//! take every slot from the others.
//!
//! `transport::upload::UploadGate` drives this for real connections; the simulator drives
//! it for every simulated serving node.

use std::collections::BTreeMap;

use protocol::wire::Priority;

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot its priority may take is in use.
    Busy,
    /// Its account holds its share of the slots already.
    AccountShare,
}

/// The slots of one serving node and who holds them. `A` identifies an account (the
/// license's account in production; a listener's index in the simulator).
#[derive(Debug, Clone)]
pub struct Admission<A> {
    total: usize,
    in_use: usize,
    per_account_max: usize,
    held: BTreeMap<A, usize>,
}

impl<A: Ord + Copy> Admission<A> {
    /// `slots` concurrent uploads (at least 1).
    pub fn new(slots: usize) -> Self {
        let total = slots.max(1);
        Self {
            total,
            in_use: 0,
            per_account_max: total.div_ceil(2),
            held: BTreeMap::new(),
        }
    }

    /// Slots in all.
    pub fn slots_total(&self) -> usize {
        self.total
    }

    /// Slots free now.
    pub fn slots_free(&self) -> usize {
        self.total - self.in_use
    }

    /// Slots held by `account` now.
    pub fn held_by(&self, account: &A) -> usize {
        self.held.get(account).copied().unwrap_or(0)
    }

    /// Slots a request of `priority` leaves free for more urgent ones.
    pub fn reserve(&self, priority: Priority) -> usize {
        match priority {
            Priority::Playing => 0,
            Priority::Prefetch => self.total / 4,
            Priority::OfflineSync => self.total / 2,
        }
    }

    /// Whether a request of `priority` from `account` would be admitted now (nothing taken).
    pub fn check(&self, account: &A, priority: Priority) -> Result<(), Refusal> {
        if self.slots_free() <= self.reserve(priority) {
            return Err(Refusal::Busy);
        }
        if self.held_by(account) >= self.per_account_max {
            return Err(Refusal::AccountShare);
        }
        Ok(())
    }

    /// Admits a request of `priority` from `account`, taking a slot, or says why not. Every
    /// admission is ended by one [`Admission::release`] of the same account.
    pub fn admit(&mut self, account: A, priority: Priority) -> Result<(), Refusal> {
        self.check(&account, priority)?;
        self.in_use += 1;
        *self.held.entry(account).or_insert(0) += 1;
        Ok(())
    }

    /// Gives back a slot `account` was admitted to. A release without an admission is
    /// ignored (the counts never go below zero).
    pub fn release(&mut self, account: &A) {
        if let Some(count) = self.held.get_mut(account) {
            *count -= 1;
            if *count == 0 {
                self.held.remove(account);
            }
            self.in_use = self.in_use.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_account_holds_at_most_half_the_slots() {
        let mut gate = Admission::new(4);
        assert_eq!(gate.admit(1u32, Priority::Playing), Ok(()));
        assert_eq!(gate.admit(1, Priority::Playing), Ok(()));
        assert_eq!(gate.admit(1, Priority::Playing), Err(Refusal::AccountShare));
        assert_eq!(gate.admit(2, Priority::Playing), Ok(()));
        assert_eq!(gate.admit(3, Priority::Playing), Ok(()));
        assert_eq!(gate.admit(4, Priority::Playing), Err(Refusal::Busy));
        gate.release(&1);
        assert_eq!(gate.held_by(&1), 1);
        assert_eq!(gate.admit(4, Priority::Playing), Ok(()));
        // Odd counts round up: 3 of 5.
        let mut odd = Admission::new(5);
        for _ in 0..3 {
            assert_eq!(odd.admit(9u32, Priority::Playing), Ok(()));
        }
        assert_eq!(odd.admit(9, Priority::Playing), Err(Refusal::AccountShare));
    }

    #[test]
    fn slots_are_reserved_for_more_urgent_requests() {
        let mut gate = Admission::new(4);
        assert_eq!(gate.admit(1u32, Priority::OfflineSync), Ok(()));
        assert_eq!(gate.admit(2, Priority::OfflineSync), Ok(()));
        // Two free: an offline sync must leave two.
        assert_eq!(gate.admit(3, Priority::OfflineSync), Err(Refusal::Busy));
        assert_eq!(gate.admit(3, Priority::Prefetch), Ok(()));
        // One free: a prefetch must leave one.
        assert_eq!(gate.admit(4, Priority::Prefetch), Err(Refusal::Busy));
        assert_eq!(gate.admit(4, Priority::Playing), Ok(()));
        assert_eq!(gate.slots_free(), 0);
        for account in 1..=4 {
            gate.release(&account);
        }
        assert_eq!(gate.slots_free(), 4);
    }

    #[test]
    fn a_release_without_an_admission_changes_nothing() {
        let mut gate = Admission::new(2);
        gate.release(&7u32);
        assert_eq!(gate.slots_free(), 2);
        assert_eq!(gate.admit(7, Priority::Playing), Ok(()));
        gate.release(&7);
        gate.release(&7);
        assert_eq!(gate.slots_free(), 2);
        assert_eq!(gate.held_by(&7), 0);
    }
}
