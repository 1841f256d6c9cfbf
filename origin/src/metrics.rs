//! Prometheus metrics of the origin, rendered as text at `GET /metrics`.
//!
//! Bounded by construction: requests are keyed by route *template* (a fixed set) and status
//! code (a fixed set), never by raw path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Latency histogram bucket bounds, seconds.
const BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

/// Counters and histograms of one origin.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Chunk bytes sent over HTTP.
    pub chunk_bytes_http: AtomicU64,
    /// Chunk bytes handed to the QUIC chunk protocol.
    pub chunk_bytes_quic: AtomicU64,
    /// Opening chunk bytes sent inline with play authorizations (before base64).
    pub chunk_bytes_opening: AtomicU64,
    /// Ingest jobs that produced a track.
    pub ingest_ok: AtomicU64,
    /// Ingest jobs refused for bad input.
    pub ingest_rejected: AtomicU64,
    /// Ingest jobs that failed on our side.
    pub ingest_failed: AtomicU64,
    /// Ingest jobs running now.
    pub ingest_running: AtomicU64,
    /// Seconds of audio ingested.
    pub ingest_audio_ms: AtomicU64,
    /// Requests refused by rate limits, by class.
    limited: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Requests refused by each rate limit so far.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.limited
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .map(|(class, count)| (*class, *count))
            .collect()
    }

    /// Chunk bytes served in all (QUIC, HTTP and with play authorizations).
    pub fn egress_total(&self) -> u64 {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        load(&self.chunk_bytes_quic)
            .saturating_add(load(&self.chunk_bytes_http))
            .saturating_add(load(&self.chunk_bytes_opening))
    }

    /// Counts a request refused by the rate limit of `class`.
    pub fn rate_limited(&self, class: &'static str) {
        *self
            .limited
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .entry(class)
            .or_default() += 1;
    }

    fn observe(&self, route: &str, status: u16, seconds: f64) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Look up by &str first: a route seen before costs no allocation.
        match requests.get_mut(route) {
            Some(statuses) => *statuses.entry(status).or_default() += 1,
            None => {
                requests.insert(route.to_string(), BTreeMap::from([(status, 1)]));
            }
        }
        drop(requests);
        let mut latency = self
            .latency
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !latency.contains_key(route) {
            latency.insert(route.to_string(), Histogram::default());
        }
        let Some(histogram) = latency.get_mut(route) else {
            return;
        };
        for (bucket, bound) in BUCKETS_S.iter().enumerate() {
            if seconds <= *bound {
                histogram.counts[bucket] += 1;
            }
        }
        histogram.count += 1;
        histogram.sum_s += seconds;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, tracks: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP chorus_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE chorus_http_requests_total counter");
        for (route, statuses) in self
            .requests
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
        {
            for (status, count) in statuses {
                let _ = writeln!(
                    out,
                    "chorus_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP chorus_http_request_duration_seconds HTTP request latency by route."
        );
        let _ = writeln!(out, "# TYPE chorus_http_request_duration_seconds histogram");
        for (route, histogram) in self
            .latency
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
        {
            for (bound, count) in BUCKETS_S.iter().zip(histogram.counts) {
                let _ = writeln!(
                    out,
                    "chorus_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "chorus_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "chorus_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                histogram.sum_s
            );
            let _ = writeln!(
                out,
                "chorus_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP chorus_rate_limited_total Requests refused with 429, by limit.\n# TYPE chorus_rate_limited_total counter"
        );
        for (class, count) in self
            .limited
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "chorus_rate_limited_total{{limit=\"{class}\"}} {count}"
            );
        }
        let counters = [
            (
                "chorus_chunk_bytes_served_total{transport=\"http\"}",
                "Chunk bytes served.",
                &self.chunk_bytes_http,
            ),
            (
                "chorus_chunk_bytes_served_total{transport=\"quic\"}",
                "",
                &self.chunk_bytes_quic,
            ),
            (
                "chorus_chunk_bytes_served_total{transport=\"play_opening\"}",
                "",
                &self.chunk_bytes_opening,
            ),
            (
                "chorus_ingest_jobs_total{result=\"ok\"}",
                "Ingest jobs by result.",
                &self.ingest_ok,
            ),
            (
                "chorus_ingest_jobs_total{result=\"rejected\"}",
                "",
                &self.ingest_rejected,
            ),
            (
                "chorus_ingest_jobs_total{result=\"failed\"}",
                "",
                &self.ingest_failed,
            ),
        ];
        for (name, help, value) in counters {
            let family = name.split('{').next().unwrap_or(name);
            if !help.is_empty() {
                let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} counter");
            }
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP chorus_ingest_audio_seconds_total Seconds of audio ingested."
        );
        let _ = writeln!(out, "# TYPE chorus_ingest_audio_seconds_total counter");
        let _ = writeln!(
            out,
            "chorus_ingest_audio_seconds_total {}",
            self.ingest_audio_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "# HELP chorus_ingest_jobs_running Ingest jobs in progress.\n# TYPE chorus_ingest_jobs_running gauge"
        );
        let _ = writeln!(
            out,
            "chorus_ingest_jobs_running {}",
            self.ingest_running.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP chorus_catalog_tracks Tracks in the catalog.\n# TYPE chorus_catalog_tracks gauge"
        );
        let _ = writeln!(out, "chorus_catalog_tracks {tracks}");
        out
    }
}

/// Middleware: counts and times every request by its route template.
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.observe(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
