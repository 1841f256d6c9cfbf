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

/// Least time between two announces of one node: the tracker refuses announces closer than
/// [`crate::tracker::TrackerConfig::announce_interval_min_ms`] (1 s), so a node that has news
/// sooner waits this long, gathering what else changes (a super-node's fills landing one
/// after another go out together).
pub const GAP_MS: u64 = 1_100;

/// How long a download is watched before its own growth is what a partial holding claims.
pub const GROWTH_WATCH_MS: u64 = 5_000;

/// The growth a listener claims for a rendition it is downloading, chunks a minute: it held
/// `held_then` chunks from the first `elapsed_ms` ago and holds `held_now`. A download is
/// being played, so until [`GROWTH_WATCH_MS`] have shown how fast it really grows it claims
/// at least the play rate, `play_per_min` (chunks a minute of audio): a listener that did not
/// keep up would be stalling. Past that, only what it measured, averaged since the start: a
/// download that stopped (a skip, a pause) claims less as time passes, and a peer that
/// relied on a claim too high learns the true prefix from its next miss.
pub fn claimed_per_min(held_then: u32, held_now: u32, elapsed_ms: u64, play_per_min: u32) -> u32 {
    let measured = if elapsed_ms >= 500 {
        u64::from(held_now.saturating_sub(held_then)) * 60_000 / elapsed_ms
    } else {
        0
    };
    let measured = u32::try_from(measured).unwrap_or(u32::MAX);
    if elapsed_ms < GROWTH_WATCH_MS {
        measured.max(play_per_min)
    } else {
        measured
    }
}

/// Chunks a minute of audio: `chunks` over `duration_ms`.
pub fn play_per_min(chunks: u32, duration_ms: u64) -> u32 {
    let per_min = u64::from(chunks) * 60_000 / duration_ms.max(1);
    u32::try_from(per_min).unwrap_or(u32::MAX)
}

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
        let config = crate::tracker::TrackerConfig::default();
        assert!(GAP_MS > config.announce_interval_min_ms);
    }

    #[test]
    fn a_new_download_claims_the_play_rate_then_what_it_measured() {
        // 300 chunks over 5 minutes: 60 a minute.
        let play = play_per_min(300, 300_000);
        assert_eq!(play, 60);
        assert_eq!(claimed_per_min(2, 2, 40, play), 60, "at first audio");
        assert_eq!(
            claimed_per_min(2, 42, 2_000, play),
            1_200,
            "faster than play"
        );
        assert_eq!(claimed_per_min(2, 42, 6_000, play), 400);
        assert_eq!(
            claimed_per_min(2, 5, 10_000, play),
            18,
            "slower than play, measured"
        );
        assert_eq!(claimed_per_min(9, 9, 60_000, play), 0, "stopped");
        assert_eq!(claimed_per_min(5, 2, 60_000, play), 0, "evicted chunks");
        assert_eq!(play_per_min(10, 0), 600_000);
        assert_eq!(play_per_min(u32::MAX, 1), u32::MAX);
    }
}
