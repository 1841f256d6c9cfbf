//! Adaptive bitrate, sans-IO: which quality to ask the origin for, from the download rate
//! measured while playing and the ceiling the account's tier sets.
//!
//! The choice is made per track (the current one keeps its rendition; the next one, and the
//! prefetch of it, get the new choice). Renditions of one track are separate encodes cut
//! into byte-sized chunks, so a chunk boundary of one is not a sample boundary of another:
//! a switch inside a track would splice two encodes mid-packet, which is audible. Switching
//! between tracks has no gap to hide.

use protocol::Quality;

/// Nominal bitrate of `quality` in kbit/s (the ingest ladder).
pub fn nominal_kbps(quality: Quality) -> u32 {
    match quality {
        Quality::Low => 96,
        Quality::Normal => 160,
        Quality::High => 320,
    }
}

/// A quality is chosen only when the measured rate is at least this many times its bitrate,
/// so that a pass of bad luck does not drain the buffer.
pub const HEADROOM: f64 = 2.0;

/// Weight of a new measurement in the running estimate.
const NEW_WEIGHT: f64 = 0.5;

/// The bitrate controller.
#[derive(Debug, Clone, Default)]
pub struct Abr {
    estimate_kbps: Option<f64>,
    ceiling: Option<Quality>,
    fixed: Option<Quality>,
}

impl Abr {
    /// A controller that adapts; with `fixed`, always that quality (the user chose).
    pub fn new(fixed: Option<Quality>) -> Self {
        Self {
            fixed,
            ..Self::default()
        }
    }

    /// Takes a download rate measured over a track, kbit/s (0: nothing was fetched, e.g. all
    /// from the cache; ignored).
    pub fn observe(&mut self, kbps: u32) {
        if kbps == 0 {
            return;
        }
        let kbps = f64::from(kbps);
        self.estimate_kbps = Some(match self.estimate_kbps {
            Some(old) => old * (1.0 - NEW_WEIGHT) + kbps * NEW_WEIGHT,
            None => kbps,
        });
    }

    /// The origin refused `asked` for the account's tier: never ask above the next lower
    /// quality again.
    pub fn refused_for_tier(&mut self, asked: Quality) {
        self.ceiling = Quality::ALL
            .iter()
            .rev()
            .copied()
            .find(|quality| *quality < asked);
    }

    /// The running estimate, kbit/s.
    pub fn estimate_kbps(&self) -> Option<u32> {
        self.estimate_kbps.map(|kbps| kbps as u32)
    }

    /// The quality to ask for. `None` before any measurement: the origin then picks the
    /// best the tier allows (start high, measure, step down if the link is slow).
    pub fn choose(&self) -> Option<Quality> {
        let capped = |quality: Quality| match self.ceiling {
            Some(ceiling) if quality > ceiling => ceiling,
            _ => quality,
        };
        if let Some(fixed) = self.fixed {
            return Some(capped(fixed));
        }
        let estimate = self.estimate_kbps?;
        let fitting = Quality::ALL
            .iter()
            .rev()
            .copied()
            .find(|quality| f64::from(nominal_kbps(*quality)) * HEADROOM <= estimate)
            .unwrap_or(Quality::Low);
        Some(capped(fitting))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_measured_rate_with_headroom() {
        let mut abr = Abr::new(None);
        assert_eq!(abr.choose(), None, "no measurement: the tier's best");
        abr.observe(10_000);
        assert_eq!(abr.choose(), Some(Quality::High));
        abr.observe(200);
        abr.observe(200);
        abr.observe(200);
        // 10000 → 5100 → 2650 → 1425: still high.
        assert_eq!(abr.choose(), Some(Quality::High));
        for _ in 0..8 {
            abr.observe(250);
        }
        assert_eq!(
            abr.choose(),
            Some(Quality::Low),
            "{:?}",
            abr.estimate_kbps()
        );
        for _ in 0..6 {
            abr.observe(400);
        }
        assert_eq!(abr.choose(), Some(Quality::Normal));
        abr.observe(0);
        assert_eq!(
            abr.choose(),
            Some(Quality::Normal),
            "cache plays measure nothing"
        );
    }

    #[test]
    fn the_tier_caps_and_a_fixed_choice_holds() {
        let mut abr = Abr::new(None);
        abr.observe(50_000);
        abr.refused_for_tier(Quality::High);
        assert_eq!(abr.choose(), Some(Quality::Normal));
        let mut fixed = Abr::new(Some(Quality::High));
        fixed.observe(10);
        assert_eq!(fixed.choose(), Some(Quality::High));
        fixed.refused_for_tier(Quality::High);
        assert_eq!(fixed.choose(), Some(Quality::Normal));
    }
}
