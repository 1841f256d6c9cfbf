//! What the operator console plots: this origin's chunk egress (measured) next to the bytes
//! listeners report getting from peers, super-nodes, the origin and their caches (carried by
//! listening events), a minute at a time over the last day; and the super-nodes holding a
//! current role token from this origin (`GET /v1/admin/overview`, `GET /v1/admin/traffic`).
//!
//! In memory and per origin: a restart starts the picture over, and behind a load balancer
//! each origin shows what it served and what was reported to it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use api::admin::{SuperNodeState, TrafficMinute};
use api::events::SourceBytes;

/// Minutes kept: a day.
pub const MINUTES_KEPT: usize = 24 * 60;
const MINUTE_MS: u64 = 60_000;
/// Super-nodes remembered (those with an expired token are dropped first).
const SUPER_NODES_MAX: usize = 10_000;

/// The traffic log, the super-node roster, and the endpoint the console pings trackers from.
#[derive(Debug)]
pub struct TrafficLog {
    inner: Mutex<Inner>,
    super_nodes: Mutex<HashMap<String, SuperNodeState>>,
    started_at_ms: u64,
    endpoint: std::sync::OnceLock<transport::Endpoint>,
}

impl Default for TrafficLog {
    fn default() -> Self {
        Self::new(0)
    }
}

#[derive(Debug, Default)]
struct Inner {
    minutes: VecDeque<TrafficMinute>,
    /// The egress counter at the last sample, once sampled.
    egress_seen: Option<u64>,
}

impl Inner {
    /// The minute `now_ms` falls in, made if it is new (a clock that went back writes into
    /// the newest); older than a day is dropped. Always `Some`.
    fn minute(&mut self, now_ms: u64) -> Option<&mut TrafficMinute> {
        let start = now_ms / MINUTE_MS * MINUTE_MS;
        let fresh = self.minutes.back().is_none_or(|last| last.at_ms < start);
        if fresh {
            self.minutes.push_back(TrafficMinute {
                at_ms: start,
                origin_egress: 0,
                peers: 0,
                super_nodes: 0,
                origin_reported: 0,
                cache: 0,
            });
        }
        let oldest = start.saturating_sub(MINUTES_KEPT as u64 * MINUTE_MS);
        while self.minutes.len() > MINUTES_KEPT
            || self
                .minutes
                .front()
                .is_some_and(|first| first.at_ms <= oldest)
        {
            self.minutes.pop_front();
        }
        self.minutes.back_mut()
    }
}

impl TrafficLog {
    /// A log for an origin started at `started_at_ms`.
    pub fn new(started_at_ms: u64) -> Self {
        Self {
            inner: Mutex::default(),
            super_nodes: Mutex::default(),
            started_at_ms,
            endpoint: std::sync::OnceLock::new(),
        }
    }

    /// When the origin started, Unix ms.
    pub fn started_at_ms(&self) -> u64 {
        self.started_at_ms
    }

    /// The origin's QUIC endpoint, for pinging trackers (set once it is bound).
    pub fn set_endpoint(&self, endpoint: transport::Endpoint) {
        let _ = self.endpoint.set(endpoint);
    }

    /// The endpoint set by [`TrafficLog::set_endpoint`].
    pub fn endpoint(&self) -> Option<&transport::Endpoint> {
        self.endpoint.get()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Notes the origin's egress counter (chunk bytes served in all, since start) at
    /// `now_ms`: what it grew by since the last sample counts in this minute.
    pub fn sample_egress(&self, now_ms: u64, total: u64) {
        let mut inner = self.inner();
        let grown = inner
            .egress_seen
            .map_or(0, |seen| total.saturating_sub(seen));
        inner.egress_seen = Some(total);
        if grown > 0
            && let Some(minute) = inner.minute(now_ms)
        {
            minute.origin_egress += grown;
        }
    }

    /// Adds what a listener reported at `now_ms`.
    pub fn add_reported(&self, now_ms: u64, sources: &SourceBytes) {
        let mut inner = self.inner();
        let Some(minute) = inner.minute(now_ms) else {
            return;
        };
        minute.peers = minute.peers.saturating_add(sources.peers);
        minute.super_nodes = minute.super_nodes.saturating_add(sources.super_nodes);
        minute.origin_reported = minute.origin_reported.saturating_add(sources.origin);
        minute.cache = minute.cache.saturating_add(sources.cache);
    }

    /// The minutes kept, oldest first.
    pub fn minutes(&self) -> Vec<TrafficMinute> {
        self.inner().minutes.iter().cloned().collect()
    }

    /// Notes a role token issued to a super-node.
    pub fn super_node(&self, state: SuperNodeState, now_ms: u64) {
        let mut nodes = self
            .super_nodes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if nodes.len() >= SUPER_NODES_MAX {
            nodes.retain(|_, node| node.expires_at_ms > now_ms);
        }
        if nodes.len() < SUPER_NODES_MAX || nodes.contains_key(&state.node_id) {
            nodes.insert(state.node_id.clone(), state);
        }
    }

    /// Super-nodes whose token is current at `now_ms`, by node id.
    pub fn super_nodes(&self, now_ms: u64) -> Vec<SuperNodeState> {
        let nodes = self
            .super_nodes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut current: Vec<SuperNodeState> = nodes
            .values()
            .filter(|node| node.expires_at_ms > now_ms)
            .cloned()
            .collect();
        current.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_is_counted_by_growth_into_minutes_and_a_day_is_kept() {
        let log = TrafficLog::default();
        let t0 = 1_000 * MINUTE_MS;
        log.sample_egress(t0, 5_000);
        assert!(log.minutes().is_empty(), "the first sample is the baseline");
        log.sample_egress(t0 + 10_000, 6_000);
        log.sample_egress(t0 + 50_000, 7_500);
        log.sample_egress(t0 + MINUTE_MS, 7_500);
        let sources = SourceBytes {
            cache: 1,
            peers: 200,
            super_nodes: 30,
            origin: 4,
        };
        log.add_reported(t0 + MINUTE_MS + 1, &sources);
        let minutes = log.minutes();
        assert_eq!(minutes.len(), 2);
        assert_eq!(minutes[0].origin_egress, 2_500);
        assert_eq!(minutes[1].peers, 200);
        assert_eq!(minutes[1].origin_egress, 0);
        // A day later only the newest day is left.
        log.add_reported(t0 + (MINUTES_KEPT as u64 + 5) * MINUTE_MS, &sources);
        let minutes = log.minutes();
        assert_eq!(minutes.len(), 1);
        for minute in 0..(2 * MINUTES_KEPT as u64) {
            log.add_reported(t0 + minute * MINUTE_MS, &sources);
        }
        assert!(log.minutes().len() <= MINUTES_KEPT);
    }

    #[test]
    fn super_nodes_are_listed_while_their_token_is_current() {
        let log = TrafficLog::default();
        let node = |id: &str, expires| SuperNodeState {
            node_id: id.into(),
            username: "sn".into(),
            region: "SE".into(),
            expires_at_ms: expires,
        };
        log.super_node(node("b", 100), 0);
        log.super_node(node("a", 50), 0);
        log.super_node(node("b", 200), 0);
        let names = |at| {
            log.super_nodes(at)
                .into_iter()
                .map(|node| node.node_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(10), ["a", "b"]);
        assert_eq!(names(150), ["b"]);
        assert!(names(300).is_empty());
    }
}
