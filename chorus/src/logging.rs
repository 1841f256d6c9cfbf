//! The process log: `CHORUS_LOG` filters (default `warn`), written to stderr, with decoder
//! noise bounded.
//!
//! Audio decoders (symphonia, through the `log` bridge) warn once per damaged packet, so one
//! hostile upload or peer could write millions of lines. Their events share a budget of
//! [`DECODER_EVENTS_PER_MINUTE`]; past it they are dropped until the next minute, and the
//! first event after a drop says how many were dropped.

use std::sync::Mutex;
use std::time::Instant;

use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Decoder log events written per minute at most.
pub const DECODER_EVENTS_PER_MINUTE: u32 = 20;

/// Targets whose events share the decoder budget.
fn is_decoder(target: &str) -> bool {
    target.starts_with("symphonia") || target.starts_with("opus") || target.starts_with("vorbis")
}

/// A per-minute event budget (sans-IO: time is an argument).
#[derive(Debug, Default)]
pub struct Budget {
    minute: u64,
    used: u32,
    dropped: u64,
}

impl Budget {
    /// Whether an event at `now_ms` may be written; the second value is how many were
    /// dropped since the last one written.
    pub fn take(&mut self, now_ms: u64) -> (bool, u64) {
        let minute = now_ms / 60_000;
        if minute != self.minute {
            self.minute = minute;
            self.used = 0;
        }
        if self.used >= DECODER_EVENTS_PER_MINUTE {
            self.dropped += 1;
            return (false, 0);
        }
        self.used += 1;
        (true, std::mem::take(&mut self.dropped))
    }
}

struct DecoderBudget {
    started: Instant,
    budget: Mutex<Budget>,
}

impl<S: Subscriber> Filter<S> for DecoderBudget {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        // Decided per event (below): `enabled` may be asked more than once per log record.
        true
    }

    fn callsite_enabled(&self, _: &'static Metadata<'static>) -> Interest {
        // Decided per event: the budget changes over time.
        Interest::sometimes()
    }

    fn event_enabled(&self, event: &tracing::Event<'_>, _: &Context<'_, S>) -> bool {
        if !is_decoder(event.metadata().target()) {
            return true;
        }
        let now_ms = self.started.elapsed().as_millis() as u64;
        let (allowed, dropped) = self
            .budget
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take(now_ms);
        if allowed && dropped > 0 {
            eprintln!(
                "({dropped} decoder log lines dropped: at most {DECODER_EVENTS_PER_MINUTE} a minute)"
            );
        }
        allowed
    }
}

/// Installs the process log.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHORUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let budget = DecoderBudget {
        started: Instant::now(),
        budget: Mutex::new(Budget::default()),
    };
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(budget);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_events_are_bounded_per_minute() {
        let mut budget = Budget::default();
        let allowed = (0..1_000).filter(|_| budget.take(5_000).0).count();
        assert_eq!(allowed, DECODER_EVENTS_PER_MINUTE as usize);
        // The next minute opens the budget again and reports what was dropped.
        assert_eq!(
            budget.take(61_000),
            (true, 1_000 - u64::from(DECODER_EVENTS_PER_MINUTE))
        );
        assert_eq!(budget.take(61_001), (true, 0));
        assert!(is_decoder("symphonia_bundle_mp3::demuxer"));
        assert!(!is_decoder("origin::http::catalog"));
    }
}
