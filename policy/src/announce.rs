//! When a listener tells the tracker what it holds.
//!
//! An announce lives for the tracker's TTL ([`crate::tracker::TrackerConfig::announce_ttl_ms`],
//! 120 s by default). A playing client re-announces every [`REFRESH_MS`], a third of that,
//! so one lost announce does not drop it from peer lists; while the tracker still wants proof
//! of renditions it holds (the ack named some `unproven`), it announces again after
//! [`CATCH_UP_MS`] instead.

/// How often a playing client re-announces its holdings (a third of the default TTL).
pub const REFRESH_MS: u64 = 40_000;

/// How soon a client announces again while the tracker still wants proofs.
pub const CATCH_UP_MS: u64 = 2_000;

/// How long until the next announce, from the last one.
pub fn next_in_ms(catching_up: bool) -> u64 {
    if catching_up { CATCH_UP_MS } else { REFRESH_MS }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_within_the_default_ttl_and_sooner_while_catching_up() {
        let ttl = crate::tracker::TrackerConfig::default().announce_ttl_ms;
        assert!(
            next_in_ms(false) * 3 <= ttl,
            "two announces may be lost in a TTL"
        );
        assert!(next_in_ms(true) < next_in_ms(false));
    }
}
