//! Rate limits: token buckets per account and per IP address, by class of request, answering
//! `429 Too Many Requests` with `Retry-After` (seconds) when a bucket is empty.
//!
//! | class | key | what |
//! |---|---|---|
//! | `stream` | account | play authorizations (`POST /v1/tracks/{id}/play`) |
//! | `search` | account, else IP | `GET /v1/search` (type-ahead sends one per keystroke) |
//! | `playlist_write` | account | creating and editing playlists |
//! | `unauthenticated` | IP | sign-up, log-in and refresh (whatever bearer is sent), and any request without a token |
//! | `ip` | IP | every request but chunks: a cap over all accounts behind one address |
//!
//! IP keys are IPv4 addresses or IPv6 /64 prefixes ([`limit_key`]).
//!
//! Signed chunk URLs (`GET /v1/chunks/...`), health, metrics and the OpenAPI document are not
//! limited: chunk URLs are already scoped by their signature and are what a CDN caches.
//!
//! Each route names its class where it is routed (`crate::http::limit`); the OpenAPI
//! document shows it as `x-rate-limit` on every operation.
//!
//! [`Buckets`] is sans-IO (time is an argument). Memory is
//! bounded by [`KEYS_MAX`]: when full, buckets that have refilled (which hold no state) are
//! dropped first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Most (class, key) buckets held.
pub const KEYS_MAX: usize = 200_000;

/// One limit: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests per minute, sustained.
    pub per_minute: u32,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

/// The limits of every class (the `[rate_limits]` table of the origin's config).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Play authorizations per account.
    pub stream: Rate,
    /// Searches per account (per IP without a token).
    pub search: Rate,
    /// Playlist creations and edits per account.
    pub playlist_write: Rate,
    /// Requests without a token, per IP.
    pub unauthenticated: Rate,
    /// Every limited request, per IP.
    pub ip: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            // A listener skipping through a playlist as fast as a thumb can: one a second.
            stream: Rate {
                per_minute: 60,
                burst: 30,
            },
            // Type-ahead: a request per keystroke, in bursts.
            search: Rate {
                per_minute: 300,
                burst: 60,
            },
            playlist_write: Rate {
                per_minute: 120,
                burst: 60,
            },
            // Sign-up and log-in: slows password guessing to one a second per address.
            unauthenticated: Rate {
                per_minute: 60,
                burst: 20,
            },
            // A household or office behind one address.
            ip: Rate {
                per_minute: 6_000,
                burst: 1_000,
            },
        }
    }
}

impl RateLimits {
    /// No limits at all: for benchmarks that measure the origin itself, and tests of
    /// something else.
    pub fn off() -> Self {
        let off = Rate {
            per_minute: u32::MAX,
            burst: u32::MAX,
        };
        Self {
            stream: off,
            search: off,
            playlist_write: off,
            unauthenticated: off,
            ip: off,
        }
    }
}

/// A class of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Play authorizations.
    Stream,
    /// Searches.
    Search,
    /// Playlist writes.
    PlaylistWrite,
    /// Requests without a token.
    Unauthenticated,
    /// Everything from one IP.
    Ip,
}

impl Class {
    fn rate(self, limits: &RateLimits) -> Rate {
        match self {
            Class::Stream => limits.stream,
            Class::Search => limits.search,
            Class::PlaylistWrite => limits.playlist_write,
            Class::Unauthenticated => limits.unauthenticated,
            Class::Ip => limits.ip,
        }
    }

    /// The name in metrics and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Stream => "stream",
            Class::Search => "search",
            Class::PlaylistWrite => "playlist_write",
            Class::Unauthenticated => "unauthenticated",
            Class::Ip => "ip",
        }
    }
}

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// An account id.
    Account(String),
    /// An address.
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in thousandths.
    milli_tokens: u64,
    at_ms: u64,
}

/// Token buckets (sans-IO).
#[derive(Debug)]
pub struct Buckets {
    limits: RateLimits,
    buckets: HashMap<(Class, Key), Bucket>,
    keys_max: usize,
}

impl Buckets {
    /// Empty buckets (all full) under `limits`, holding at most `keys_max` of them.
    pub fn new(limits: RateLimits, keys_max: usize) -> Self {
        Self {
            limits,
            buckets: HashMap::new(),
            keys_max: keys_max.max(1),
        }
    }

    fn refilled(rate: Rate, bucket: Bucket, now_ms: u64) -> u64 {
        let capacity = u64::from(rate.burst.max(1)) * 1000;
        // per_minute tokens per 60,000 ms = per_minute thousandths per ms / 60.
        let gained = now_ms.saturating_sub(bucket.at_ms) * u64::from(rate.per_minute) / 60;
        bucket.milli_tokens.saturating_add(gained).min(capacity)
    }

    /// Takes one token from `key`'s bucket of `class` at `now_ms`; when it is empty, returns
    /// how many milliseconds until a token is back.
    pub fn take(&mut self, class: Class, key: Key, now_ms: u64) -> Result<(), u64> {
        let rate = class.rate(&self.limits);
        if rate.per_minute == 0 && rate.burst == 0 {
            return Err(u64::MAX);
        }
        if self.buckets.len() >= self.keys_max && !self.buckets.contains_key(&(class, key.clone()))
        {
            self.evict(now_ms);
        }
        let capacity = u64::from(rate.burst.max(1)) * 1000;
        let bucket = self.buckets.entry((class, key)).or_insert(Bucket {
            milli_tokens: capacity,
            at_ms: now_ms,
        });
        let tokens = Self::refilled(rate, *bucket, now_ms);
        bucket.at_ms = bucket.at_ms.max(now_ms);
        if tokens >= 1000 {
            bucket.milli_tokens = tokens - 1000;
            Ok(())
        } else {
            bucket.milli_tokens = tokens;
            let per_ms = u64::from(rate.per_minute).max(1);
            Err(((1000 - tokens) * 60).div_ceil(per_ms))
        }
    }

    /// Drops full buckets; if that is not enough, every bucket (fail open, logged).
    fn evict(&mut self, now_ms: u64) {
        let limits = self.limits;
        self.buckets.retain(|(class, _), bucket| {
            let rate = class.rate(&limits);
            Self::refilled(rate, *bucket, now_ms) < u64::from(rate.burst.max(1)) * 1000
        });
        if self.buckets.len() >= self.keys_max {
            tracing::warn!(
                buckets = self.buckets.len(),
                "rate-limit buckets full of active keys: resetting"
            );
            self.buckets.clear();
        }
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The origin's limiter: [`Buckets`] behind a lock, with the proxies it trusts.
#[derive(Debug)]
pub struct Limiter {
    buckets: Mutex<Buckets>,
    trusted_proxies: Vec<IpAddr>,
}

impl Limiter {
    /// A limiter with `limits`; requests from `trusted_proxies` are keyed by the last
    /// address of their `X-Forwarded-For`.
    pub fn new(limits: RateLimits, trusted_proxies: Vec<IpAddr>) -> Self {
        Self {
            buckets: Mutex::new(Buckets::new(limits, KEYS_MAX)),
            trusted_proxies,
        }
    }

    /// True when requests from `peer` are keyed by their `X-Forwarded-For`.
    pub fn trusts(&self, peer: &IpAddr) -> bool {
        self.trusted_proxies.contains(peer)
    }

    /// Takes one token of `class` from `key`'s bucket, or answers how many milliseconds
    /// until one is there.
    pub fn take(&self, class: Class, key: Key, now_ms: u64) -> Result<(), u64> {
        self.buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take(class, key, now_ms)
    }
}

/// The address a client is limited as: itself for IPv4, its /64 for IPv6 (one subscriber's
/// allocation, so rotating through it gains nothing).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_the_burst_then_the_rate() {
        let limits = RateLimits {
            stream: Rate {
                per_minute: 60,
                burst: 3,
            },
            ..RateLimits::default()
        };
        let mut buckets = Buckets::new(limits, 100);
        let alice = || Key::Account("alice".into());
        for _ in 0..3 {
            assert_eq!(buckets.take(Class::Stream, alice(), 0), Ok(()));
        }
        // Empty: one token a second comes back.
        assert_eq!(buckets.take(Class::Stream, alice(), 0), Err(1000));
        assert_eq!(buckets.take(Class::Stream, alice(), 400), Err(600));
        assert_eq!(buckets.take(Class::Stream, alice(), 1000), Ok(()));
        // Others and other classes are separate.
        assert_eq!(
            buckets.take(Class::Stream, Key::Account("bob".into()), 1000),
            Ok(())
        );
        assert_eq!(buckets.take(Class::Search, alice(), 1000), Ok(()));
        // A long rest refills to the burst, no more.
        for _ in 0..3 {
            assert_eq!(buckets.take(Class::Stream, alice(), 3_600_000), Ok(()));
        }
        assert!(buckets.take(Class::Stream, alice(), 3_600_000).is_err());
        // Time going backwards takes nothing extra.
        assert!(buckets.take(Class::Stream, alice(), 0).is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let mut buckets = Buckets::new(RateLimits::default(), 1_000);
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            assert!(buckets.take(Class::Unauthenticated, Key::Ip(ip), 0).is_ok());
            assert!(buckets.len() <= 1_000);
        }
        // Refilled buckets are evicted first, keeping a busy key's state.
        let busy = Key::Ip(IpAddr::from([10, 0, 0, 1]));
        let mut buckets = Buckets::new(RateLimits::default(), 10);
        while buckets
            .take(Class::Unauthenticated, busy.clone(), 0)
            .is_ok()
        {}
        for i in 0..9u32 {
            assert!(
                buckets
                    .take(Class::Search, Key::Account(i.to_string()), 0)
                    .is_ok()
            );
        }
        // A second on, the searchers' buckets are full again, the busy one is not.
        assert!(
            buckets
                .take(Class::Search, Key::Account("new".into()), 1_000)
                .is_ok()
        );
        assert_eq!(buckets.len(), 2);
        assert!(
            buckets
                .take(Class::Unauthenticated, busy.clone(), 1_000)
                .is_ok()
        );
        assert!(buckets.take(Class::Unauthenticated, busy, 1_000).is_err());
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let key = |text: &str| limit_key(text.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
    }
}
