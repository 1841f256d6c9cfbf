//! What a run produces: the summary, the time series, per-play records, and the files and
//! plots written to `--out`.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::config::Scenario;
use crate::engine::START_HISTOGRAM_MS;
use crate::svg::{Chart, Series};

/// One measured play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayRecord {
    /// Listener index.
    pub peer: u32,
    /// Track index.
    pub track: u32,
    /// When play was pressed (or the previous track ended), simulated ms.
    pub pressed_ms: u64,
    /// From pressing play to audio; `None` when it never started.
    pub first_audio_ms: Option<u64>,
    /// Stalls after audio started.
    pub stutters: u32,
    /// Time stalled.
    pub stalled_ms: u64,
    /// Bytes from the origin (including the opening with the grant and prefetches).
    pub bytes_origin: u64,
    /// Bytes from super-nodes.
    pub bytes_super_nodes: u64,
    /// Bytes from other listeners.
    pub bytes_peers: u64,
    /// Bytes played from the local cache.
    pub bytes_cache: u64,
    /// Bytes received twice (an urgent re-request raced a peer).
    pub bytes_duplicate: u64,
    /// Skipped before its end.
    pub skipped: bool,
    /// The whole track was in the local cache.
    pub from_cache: bool,
    /// Its opening was prefetched during the previous track.
    pub prefetched: bool,
}

/// Sums over plays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Plays measured.
    pub plays: u64,
    /// Plays whose audio started.
    pub started: u64,
    /// Plays with at least one stall after starting.
    pub stuttered: u64,
    /// Stalls.
    pub stutters: u64,
    /// Bytes from the origin to listeners.
    pub bytes_origin: u64,
    /// Bytes from super-nodes.
    pub bytes_super_nodes: u64,
    /// Bytes from listeners.
    pub bytes_peers: u64,
    /// Bytes from local caches.
    pub bytes_cache: u64,
    /// Bytes the origin sent (to listeners and to super-nodes filling their caches); the
    /// run's totals from `measure_from_s` on, a sample's over its interval.
    pub origin_egress: u64,
    /// Skipped plays.
    pub skipped: u64,
    /// Plays from the local cache.
    pub from_cache: u64,
    /// Prefetched plays.
    pub prefetched: u64,
    /// Plays cut short by a crash (not counted as plays).
    pub crashed_plays: u64,
    /// Bytes received twice.
    pub wasted_duplicate: u64,
    /// Bytes of ready prefetches whose track was not played next.
    pub wasted_prefetch: u64,
    /// Bytes received on play transfers abandoned before they handed their range over.
    pub wasted_cancelled: u64,
}

impl Totals {
    /// Adds one play.
    pub fn add(&mut self, play: &PlayRecord) {
        self.plays += 1;
        self.started += u64::from(play.first_audio_ms.is_some());
        self.stuttered += u64::from(play.stutters > 0);
        self.stutters += u64::from(play.stutters);
        self.bytes_origin += play.bytes_origin;
        self.bytes_super_nodes += play.bytes_super_nodes;
        self.bytes_peers += play.bytes_peers;
        self.bytes_cache += play.bytes_cache;
        self.wasted_duplicate += play.bytes_duplicate;
        self.skipped += u64::from(play.skipped);
        self.from_cache += u64::from(play.from_cache);
        self.prefetched += u64::from(play.prefetched);
    }
}

/// What the checkers counted (every violation stops the run, so these are the clean counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Checks {
    /// Chunks handed to players, each verified.
    pub chunks_delivered: u64,
    /// Transfers from corrupt peers caught by verification.
    pub bad_chunks_caught: u64,
    /// Tracker answers checked against the region rule.
    pub peer_lists: u64,
    /// Serving peers that had to refuse a listener outside the markets (always 0: a run
    /// with one stops).
    pub serve_refusals: u64,
    /// Requests to peers that were gone or unreachable (each cost a connect timeout).
    pub failed_unreachable: u64,
    /// Requests to peers that no longer held the track.
    pub failed_missing: u64,
    /// Requests refused by peers whose upload slots were full.
    pub failed_busy: u64,
    /// Peers reported to the tracker by schedulers.
    pub reports: u64,
    /// Requests a partial holder (a listener still downloading the track) served.
    pub partial_served: u64,
    /// Requests a partial holder could serve only in part or not at all: it sent what it
    /// held and told its prefix (`ChunkMissing`).
    pub partial_misses: u64,
    /// Popular renditions super-nodes fetched (`policy::fill`): pinned, or kept unpinned
    /// when fills landing meanwhile had spent the pin budget.
    pub super_fills: u64,
    /// Renditions super-nodes fetched after repeated misses, unpinned (pull-through).
    pub super_pull_throughs: u64,
    /// Super-node fills that failed: refused by the origin (the node's region may not stream
    /// the track), too large for the room they were given, or not admitted.
    pub super_fills_failed: u64,
}

/// One time-series sample (the interval since the previous one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// End of the interval, simulated seconds.
    pub t_s: u64,
    /// Listeners online (listening or lingering).
    pub online: u32,
    /// Listeners in a session.
    pub listening: u32,
    /// Plays that ended in the interval.
    pub plays: u64,
    /// Of those, plays that stuttered.
    pub stuttered: u64,
    /// Bytes from the origin to listeners.
    pub bytes_origin: u64,
    /// Bytes from super-nodes.
    pub bytes_super_nodes: u64,
    /// Bytes from listeners.
    pub bytes_peers: u64,
    /// Bytes from local caches.
    pub bytes_cache: u64,
    /// Origin egress, Mbit/s (listeners and super-node fills).
    pub origin_mbps: f64,
    /// Origin transfers running at the sample.
    pub origin_transfers: u32,
    /// Peers the tracker holds.
    pub tracker_peers: u64,
}

/// A step's median and 90th percentile, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StepMs {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
}

/// `first_audio_ms` step by step, as `chorus devnet` prints them (`first_audio_steps_ms`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StartSteps {
    /// Press to authorization, the opening chunks with it (0 for a prefetched track).
    pub grant: StepMs,
    /// Authorization to the first chunk at hand.
    pub first_chunk: StepMs,
    /// The decoder's start (`client.decoder_ms`).
    pub decoder: StepMs,
}

/// Start-latency percentiles, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StartMs {
    /// Median.
    pub p50: u64,
    /// 75th percentile.
    pub p75: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
}

/// Shares of the bytes listeners played, by source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BytesShare {
    /// From the origin.
    pub origin: f64,
    /// From super-nodes and other listeners.
    pub p2p: f64,
    /// From the local cache.
    pub cache: f64,
}

/// Byte counts behind the shares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Bytes {
    /// From the origin to listeners.
    pub origin: u64,
    /// From super-nodes.
    pub super_nodes: u64,
    /// From listeners.
    pub peers: u64,
    /// From local caches.
    pub cache: u64,
    /// Everything the origin sent from `measure_from_s` on, super-node fills included.
    pub origin_egress: u64,
}

/// Bytes listeners received for nothing, as `chorus devnet` counts them (`wasted_bytes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Wasted {
    /// Prefetched openings, ready, whose track was not played next (a prefetch cut short
    /// under way, and one still ready when the run ends, are not counted).
    pub prefetch: u64,
    /// Bytes received on play transfers abandoned and not handed over (skips, stops,
    /// requests the scheduler gave up on, a source that vanished): chunks are handed over as
    /// they land, so the chunk under way; not a crashed listener's own, whose counters die
    /// with it.
    pub cancelled: u64,
    /// Chunks received twice (an urgent re-request raced a peer).
    pub duplicate: u64,
}

/// The tracker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TrackerCounts {
    /// Announces accepted.
    pub announces: u64,
    /// Refreshes accepted (an unchanged set kept alive by its digest).
    pub refreshes: u64,
    /// Refreshes answered `set_unknown`, each followed by an announce in full.
    pub refreshes_unknown: u64,
    /// Queries answered.
    pub queries: u64,
    /// Requests refused.
    pub refused: u64,
    /// Peers quarantined after reports.
    pub quarantined: u64,
    /// Delivered-rate reports taken (they rank holders).
    pub rates_reported: u64,
    /// Announced renditions left out for want of a license (0 in a run of honest peers).
    pub unproven: u64,
}

/// The run's summary. Everything in it follows from the scenario and the seed, except
/// `wall_seconds` and `events_per_second`, which the caller fills in (and leaves out of
/// `summary.json`, so that file is byte-identical between runs of one seed).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Plays measured (started after `measure_from_s`, not cut short by a crash).
    pub plays: u64,
    /// The origin's egress (super-node fills included) over the bytes listeners received
    /// from the network: what `chorus devnet` prints as `origin_share`.
    pub origin_share: f64,
    /// Share of started plays that stalled at least once.
    pub stutter_rate: f64,
    /// Time from pressing play (or the skip, or the previous track's end) to audio.
    pub first_audio_ms: StartMs,
    /// The same, step by step.
    pub first_audio_steps_ms: StartSteps,
    /// Where played bytes came from.
    pub bytes_share: BytesShare,
    /// Listeners.
    pub peers: u32,
    /// Super-nodes.
    pub super_nodes: u32,
    /// Simulated seconds.
    pub sim_seconds: u64,
    /// Events handled.
    pub events: u64,
    /// Events handled, by kind (`flow`: a transfer reaching a chunk or its end; `tick`: a
    /// scheduler's `poll_timeout`; the rest as named), every kind listed.
    pub events_by_kind: std::collections::BTreeMap<String, u64>,
    /// Byte counts.
    pub bytes: Bytes,
    /// Bytes received for nothing.
    pub wasted_bytes: Wasted,
    /// Plays that never started (skipped or cut before audio).
    pub plays_not_started: u64,
    /// Skipped plays.
    pub skipped_plays: u64,
    /// Plays from the local cache.
    pub cache_plays: u64,
    /// Plays whose opening was prefetched.
    pub prefetched_plays: u64,
    /// Plays cut short by crashes (not in `plays`).
    pub crashed_plays: u64,
    /// Checker counts.
    pub checks: Checks,
    /// Tracker counters.
    pub tracker: TrackerCounts,
    /// Wall-clock time of the run (not in `summary.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_seconds: Option<f64>,
    /// Events per wall-clock second of the event loop (not in `summary.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<f64>,
    /// Wall-clock time of the set-up (catalog, warm caches), seconds (not in `summary.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_seconds: Option<f64>,
    /// Peak resident memory of the process, MiB (not in `summary.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<u64>,
    /// The `--set` values of this run of a sweep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<std::collections::BTreeMap<String, String>>,
}

fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

/// The `p`-th percentile (0..=100, nearest rank) of a 1 ms histogram.
pub fn histogram_percentile(histogram: &[u64], p: f64) -> u64 {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (ms, count) in histogram.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return ms as u64;
        }
    }
    (histogram.len() - 1) as u64
}

impl Summary {
    /// Builds the summary from a run's totals.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        scenario: &Scenario,
        totals: &Totals,
        start_histogram: &[u64],
        steps_histograms: &[Vec<u64>; 3],
        events: u64,
        events_by_kind: std::collections::BTreeMap<String, u64>,
        super_nodes: u32,
        tracker: policy::tracker::TrackerStats,
        checks: Checks,
    ) -> Self {
        let played = totals.bytes_origin
            + totals.bytes_super_nodes
            + totals.bytes_peers
            + totals.bytes_cache;
        let share = |bytes: u64| {
            if played == 0 {
                0.0
            } else {
                round4(bytes as f64 / played as f64)
            }
        };
        Self {
            scenario: scenario.name.clone(),
            seed: scenario.seed,
            plays: totals.plays,
            stutter_rate: if totals.started == 0 {
                0.0
            } else {
                round4(totals.stuttered as f64 / totals.started as f64)
            },
            origin_share: {
                let network = totals.bytes_origin + totals.bytes_super_nodes + totals.bytes_peers;
                if network == 0 {
                    0.0
                } else {
                    round4(totals.origin_egress as f64 / network as f64)
                }
            },
            first_audio_steps_ms: {
                let step = |histogram: &[u64]| StepMs {
                    p50: histogram_percentile(histogram, 50.0),
                    p90: histogram_percentile(histogram, 90.0),
                };
                StartSteps {
                    grant: step(&steps_histograms[0]),
                    first_chunk: step(&steps_histograms[1]),
                    decoder: step(&steps_histograms[2]),
                }
            },
            first_audio_ms: StartMs {
                p50: histogram_percentile(start_histogram, 50.0),
                p75: histogram_percentile(start_histogram, 75.0),
                p90: histogram_percentile(start_histogram, 90.0),
                p99: histogram_percentile(start_histogram, 99.0),
            },
            bytes_share: BytesShare {
                origin: share(totals.bytes_origin),
                p2p: share(totals.bytes_super_nodes + totals.bytes_peers),
                cache: share(totals.bytes_cache),
            },
            peers: scenario.peers,
            super_nodes,
            sim_seconds: scenario.duration_s,
            events,
            events_by_kind,
            bytes: Bytes {
                origin: totals.bytes_origin,
                super_nodes: totals.bytes_super_nodes,
                peers: totals.bytes_peers,
                cache: totals.bytes_cache,
                origin_egress: totals.origin_egress,
            },
            wasted_bytes: Wasted {
                prefetch: totals.wasted_prefetch,
                cancelled: totals.wasted_cancelled,
                duplicate: totals.wasted_duplicate,
            },
            plays_not_started: totals.plays - totals.started,
            skipped_plays: totals.skipped,
            cache_plays: totals.from_cache,
            prefetched_plays: totals.prefetched,
            crashed_plays: totals.crashed_plays,
            checks,
            tracker: TrackerCounts {
                announces: tracker.announces,
                refreshes: tracker.refreshes,
                refreshes_unknown: tracker.refreshes_unknown,
                queries: tracker.queries,
                refused: tracker.refused,
                quarantined: tracker.quarantined,
                rates_reported: tracker.rates_reported,
                unproven: tracker.unproven,
            },
            wall_seconds: None,
            events_per_second: None,
            setup_seconds: None,
            peak_rss_mib: None,
            set: None,
        }
    }

    /// The summary as one JSON line, without the wall-clock fields: the same bytes for
    /// every run of one scenario, seed and commit.
    pub fn deterministic_json(&self) -> String {
        let mut copy = self.clone();
        copy.wall_seconds = None;
        copy.events_per_second = None;
        copy.setup_seconds = None;
        copy.peak_rss_mib = None;
        serde_json::to_string(&copy).unwrap_or_default()
    }
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The summary.
    pub summary: Summary,
    /// Time series, one sample per `output.sample_s`.
    pub series: Vec<Sample>,
    /// Per-play records (the first `output.play_records_max` measured).
    pub plays: Vec<PlayRecord>,
    /// Start latencies, 1 ms buckets (the last one holds everything longer).
    pub start_histogram: Vec<u64>,
}

impl Outcome {
    /// Writes `summary.json`, `series.csv`, `plays.csv`, `first_audio_ms.csv` and three SVG plots
    /// into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("summary.json"),
            format!("{}\n", self.summary.deterministic_json()),
        )?;
        let mut series = std::io::BufWriter::new(std::fs::File::create(dir.join("series.csv"))?);
        writeln!(
            series,
            "t_s,online,listening,plays,stuttered,bytes_origin,bytes_super_nodes,bytes_peers,bytes_cache,origin_mbps,origin_transfers,tracker_peers"
        )?;
        for s in &self.series {
            writeln!(
                series,
                "{},{},{},{},{},{},{},{},{},{:.3},{},{}",
                s.t_s,
                s.online,
                s.listening,
                s.plays,
                s.stuttered,
                s.bytes_origin,
                s.bytes_super_nodes,
                s.bytes_peers,
                s.bytes_cache,
                s.origin_mbps,
                s.origin_transfers,
                s.tracker_peers
            )?;
        }
        series.flush()?;
        let mut plays = std::io::BufWriter::new(std::fs::File::create(dir.join("plays.csv"))?);
        writeln!(
            plays,
            "peer,track,pressed_ms,first_audio_ms,stutters,stalled_ms,bytes_origin,bytes_super_nodes,bytes_peers,bytes_cache,skipped,from_cache,prefetched"
        )?;
        for p in &self.plays {
            writeln!(
                plays,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                p.peer,
                p.track,
                p.pressed_ms,
                p.first_audio_ms.map_or(String::new(), |ms| ms.to_string()),
                p.stutters,
                p.stalled_ms,
                p.bytes_origin,
                p.bytes_super_nodes,
                p.bytes_peers,
                p.bytes_cache,
                u8::from(p.skipped),
                u8::from(p.from_cache),
                u8::from(p.prefetched)
            )?;
        }
        plays.flush()?;
        let mut starts =
            std::io::BufWriter::new(std::fs::File::create(dir.join("first_audio_ms.csv"))?);
        writeln!(starts, "first_audio_ms,plays")?;
        for (ms, count) in self.start_histogram.iter().enumerate() {
            if *count > 0 {
                writeln!(starts, "{ms},{count}")?;
            }
        }
        starts.flush()?;
        std::fs::write(dir.join("sources.svg"), self.sources_chart().render())?;
        std::fs::write(dir.join("start_latency.svg"), self.start_chart().render())?;
        std::fs::write(dir.join("origin_load.svg"), self.origin_chart().render())?;
        Ok(())
    }

    fn hours(&self, sample: &Sample) -> f64 {
        sample.t_s as f64 / 3_600.0
    }

    fn sources_chart(&self) -> Chart {
        let share = |pick: fn(&Sample) -> u64| -> Vec<(f64, f64)> {
            self.series
                .iter()
                .filter_map(|s| {
                    let total =
                        s.bytes_origin + s.bytes_super_nodes + s.bytes_peers + s.bytes_cache;
                    (total > 0).then(|| (self.hours(s), 100.0 * pick(s) as f64 / total as f64))
                })
                .collect()
        };
        Chart {
            title: format!("{}: where played bytes came from", self.summary.scenario),
            x_label: "simulated hours".into(),
            y_label: "share of bytes, %".into(),
            y_max: Some(100.0),
            series: vec![
                Series::new("origin", "#d62728", share(|s| s.bytes_origin)),
                Series::new(
                    "peers + super-nodes",
                    "#2ca02c",
                    share(|s| s.bytes_peers + s.bytes_super_nodes),
                ),
                Series::new("local cache", "#1f77b4", share(|s| s.bytes_cache)),
            ],
            log_x: false,
        }
    }

    fn start_chart(&self) -> Chart {
        let total: u64 = self.start_histogram.iter().sum();
        let mut points = Vec::new();
        let mut seen = 0u64;
        for (ms, count) in self.start_histogram.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            seen += count;
            let ms = (ms as f64).max(1.0);
            points.push((ms, 100.0 * seen as f64 / total.max(1) as f64));
        }
        let _ = START_HISTOGRAM_MS;
        Chart {
            title: format!(
                "{}: time to first audio (p50 {} ms, p90 {} ms)",
                self.summary.scenario,
                self.summary.first_audio_ms.p50,
                self.summary.first_audio_ms.p90
            ),
            x_label: "ms from pressing play (log scale)".into(),
            y_label: "plays started within, %".into(),
            y_max: Some(100.0),
            series: vec![Series::new("all plays", "#1f77b4", points)],
            log_x: true,
        }
    }

    fn origin_chart(&self) -> Chart {
        Chart {
            title: format!("{}: origin load", self.summary.scenario),
            x_label: "simulated hours".into(),
            y_label: "origin egress, Mbit/s".into(),
            y_max: None,
            series: vec![Series::new(
                "origin egress",
                "#d62728",
                self.series
                    .iter()
                    .map(|s| (self.hours(s), s.origin_mbps))
                    .collect(),
            )],
            log_x: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_the_histogram() {
        let mut histogram = vec![0u64; 1_000];
        for count in &mut histogram[1..=100] {
            *count = 1;
        }
        assert_eq!(histogram_percentile(&histogram, 50.0), 50);
        assert_eq!(histogram_percentile(&histogram, 90.0), 90);
        assert_eq!(histogram_percentile(&histogram, 100.0), 100);
        assert_eq!(histogram_percentile(&[0; 10], 50.0), 0);
    }
}
