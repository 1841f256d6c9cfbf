//! `chorus sim SCENARIO --scaling 10000,100000,1000000`: the same scenario at several sizes,
//! each in a process of its own (so each peak resident size is its own), as a table, a CSV,
//! a plot, and the memory one more listener costs, for planning runs too large for this
//! machine on paper.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde::Serialize;

/// One size's run.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Listener peers.
    pub peers: u32,
    /// Plays in the run.
    pub plays: u64,
    /// Events the engine handled.
    pub events: u64,
    /// Events of the whole run per play counted (plays from `measure_from_s` on); none when
    /// no play was counted.
    pub events_per_play: Option<f64>,
    /// Wall seconds, set-up included.
    pub wall_seconds: f64,
    /// Wall seconds of the set-up (populating listeners, warm caches, the tracker).
    pub setup_seconds: f64,
    /// Events per wall second, set-up excluded.
    pub events_per_second: f64,
    /// Peak resident size of the run's process, MiB (none where the system does not say).
    pub peak_rss_mib: Option<u64>,
    /// Listeners the run reported it simulated.
    #[serde(skip)]
    ran_peers: u64,
    /// Origin share of the bytes listeners received.
    pub origin_share: f64,
    /// Plays that stuttered.
    pub stutter_rate: f64,
    /// Median start latency, ms.
    pub start_p50_ms: u64,
}

/// The curve and what it says about larger runs.
#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    /// The runs, smallest first.
    pub points: Vec<Point>,
    /// Memory one more listener costs: the peak resident size's growth per listener between
    /// the two largest runs, bytes (the fixed part, catalog and tracker tables, cancels out).
    pub bytes_per_listener: Option<f64>,
    /// Peak resident size a run of 10,000,000 listeners would need at that rate, MiB.
    pub projected_rss_mib_10m: Option<f64>,
}

/// Runs `scenario` at each size in `sizes` by calling this executable once per size with
/// `flags` (its other flags) plus `--peers N --json`.
pub fn run(
    sizes: &[u32],
    scenario: &str,
    flags: &[String],
    quiet: bool,
    out: Option<&Path>,
) -> anyhow::Result<Scaling> {
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        bail!("--scaling: name at least one size");
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut points = Vec::with_capacity(sizes.len());
    for (index, &peers) in sizes.iter().enumerate() {
        if !quiet {
            eprintln!("scaling {}/{}: {peers} listeners", index + 1, sizes.len());
        }
        let mut command = Command::new(&exe);
        command
            .arg("sim")
            .args(flags)
            .args(["--peers", &peers.to_string(), "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if quiet {
            command.arg("--quiet");
        }
        if let Some(dir) = out {
            command.arg("--out").arg(dir.join(format!("peers-{peers}")));
        }
        // Last, after `--`: a scenario path may start with a dash.
        command.arg("--").arg(scenario);
        let output = command
            .output()
            .with_context(|| format!("running the {peers}-listener simulation"))?;
        if !output.status.success() {
            bail!("the {peers}-listener simulation failed ({})", output.status);
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|line| line.starts_with('{'))
            .with_context(|| format!("the {peers}-listener simulation printed no summary"))?;
        let point = point(peers, line)?;
        if point.ran_peers != u64::from(peers) {
            bail!(
                "the {peers}-listener run simulated {} listeners",
                point.ran_peers
            );
        }
        points.push(point);
    }
    let bytes_per_listener = match points.as_slice() {
        [.., small, large] if large.peers > small.peers => small
            .peak_rss_mib
            .zip(large.peak_rss_mib)
            .map(|(small_rss, large_rss)| {
                (large_rss as f64 - small_rss as f64) * 1_048_576.0
                    / f64::from(large.peers - small.peers)
            }),
        _ => None,
    };
    let projected_rss_mib_10m = bytes_per_listener.and_then(|bytes| {
        let largest = points.last()?;
        Some(
            largest.peak_rss_mib? as f64
                + bytes * (10_000_000.0 - f64::from(largest.peers)) / 1_048_576.0,
        )
    });
    let scaling = Scaling {
        points,
        bytes_per_listener,
        projected_rss_mib_10m,
    };
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("scaling.csv"), csv(&scaling))
            .with_context(|| format!("writing {}", dir.join("scaling.csv").display()))?;
        std::fs::write(dir.join("scaling.svg"), svg(&scaling))
            .with_context(|| format!("writing {}", dir.join("scaling.svg").display()))?;
    }
    Ok(scaling)
}

/// Reads the fields the curve needs from a run's JSON summary.
fn point(peers: u32, line: &str) -> anyhow::Result<Point> {
    let value: serde_json::Value =
        serde_json::from_str(line).context("reading a run's JSON summary")?;
    let number = |path: &[&str]| -> anyhow::Result<f64> {
        let mut node = &value;
        for key in path {
            node = node
                .get(key)
                .with_context(|| format!("the summary has no {}", path.join(".")))?;
        }
        node.as_f64()
            .with_context(|| format!("the summary's {} is not a number", path.join(".")))
    };
    let plays = number(&["plays"])? as u64;
    let events = number(&["events"])? as u64;
    Ok(Point {
        peers,
        plays,
        events,
        events_per_play: (plays > 0).then(|| events as f64 / plays as f64),
        wall_seconds: number(&["wall_seconds"])?,
        setup_seconds: number(&["setup_seconds"])?,
        events_per_second: number(&["events_per_second"])?,
        peak_rss_mib: value["peak_rss_mib"].as_u64(),
        ran_peers: number(&["peers"])? as u64,
        origin_share: number(&["origin_share"])?,
        stutter_rate: number(&["stutter_rate"])?,
        start_p50_ms: number(&["first_audio_ms", "p50"])? as u64,
    })
}

/// Peak resident size per listener, KiB.
fn per_listener_kib(point: &Point) -> Option<f64> {
    Some(point.peak_rss_mib? as f64 * 1_024.0 / f64::from(point.peers.max(1)))
}

/// The figures a system may not give (events per play, peak RSS and RSS per listener) as
/// text, `missing` where absent.
fn optional_cells(point: &Point, missing: &str) -> [String; 3] {
    let or = |cell: Option<String>| cell.unwrap_or_else(|| missing.to_string());
    [
        or(point.events_per_play.map(|value| format!("{value:.1}"))),
        or(point.peak_rss_mib.map(|mib| mib.to_string())),
        or(per_listener_kib(point).map(|kib| format!("{kib:.2}"))),
    ]
}

/// The curve as CSV, one line per size.
pub fn csv(scaling: &Scaling) -> String {
    let mut text = String::from(
        "peers,plays,events,events_per_play,wall_s,setup_s,events_per_s,peak_rss_mib,rss_kib_per_listener,origin_share,stutter_rate,start_p50_ms\n",
    );
    for point in &scaling.points {
        let [per_play, rss, per_listener] = optional_cells(point, "");
        text.push_str(&format!(
            "{},{},{},{per_play},{:.1},{:.1},{:.0},{rss},{per_listener},{:.4},{:.4},{}\n",
            point.peers,
            point.plays,
            point.events,
            point.wall_seconds,
            point.setup_seconds,
            point.events_per_second,
            point.origin_share,
            point.stutter_rate,
            point.start_p50_ms,
        ));
    }
    text
}

/// A table for the terminal.
pub fn table(scaling: &Scaling) -> String {
    let mut text = format!(
        "{:>10} {:>10} {:>13} {:>8} {:>9} {:>11} {:>9} {:>10}\n",
        "listeners", "plays", "events", "ev/play", "wall s", "events/s", "RSS MiB", "KiB/lstnr"
    );
    for point in &scaling.points {
        let [per_play, rss, per_listener] = optional_cells(point, "-");
        text.push_str(&format!(
            "{:>10} {:>10} {:>13} {per_play:>8} {:>9.1} {:>11.0} {rss:>9} {per_listener:>10}\n",
            point.peers, point.plays, point.events, point.wall_seconds, point.events_per_second,
        ));
    }
    match (scaling.bytes_per_listener, scaling.projected_rss_mib_10m) {
        (Some(bytes), Some(projected)) => text.push_str(&format!(
            "one more listener costs {:.0} bytes (growth between the two largest runs); 10,000,000 listeners would need about {:.1} GiB\n",
            bytes,
            projected / 1_024.0
        )),
        _ => text.push_str("(two sizes or more give the memory per listener)\n"),
    }
    text
}

/// Five charts over the listener count (log scale) in one SVG, two to a row: wall time,
/// events per second, events per play, peak resident size, and that size per listener.
pub fn svg(scaling: &Scaling) -> String {
    use sim::svg::{Chart, Series};
    let along = |value: fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
        scaling
            .points
            .iter()
            .filter_map(|point| Some((f64::from(point.peers), value(point)?)))
            .collect()
    };
    let chart = |title: &str, y_label: &str, series: Vec<Series>| Chart {
        title: title.into(),
        x_label: "listeners".into(),
        y_label: y_label.into(),
        y_max: None,
        series,
        log_x: true,
    };
    let charts = [
        chart(
            "Wall time",
            "seconds",
            vec![
                Series::new("wall", "#1f77b4", along(|p| Some(p.wall_seconds))),
                Series::new("set-up", "#aec7e8", along(|p| Some(p.setup_seconds))),
            ],
        ),
        chart(
            "Engine speed",
            "thousand events per second",
            vec![Series::new(
                "events/s (set-up excluded)",
                "#2ca02c",
                along(|p| Some(p.events_per_second / 1e3)),
            )],
        ),
        chart(
            "Events per play",
            "events",
            vec![Series::new(
                "events per play",
                "#ff7f0e",
                along(|p| p.events_per_play),
            )],
        ),
        chart(
            "Peak resident size",
            "MiB",
            vec![Series::new(
                "peak RSS",
                "#9467bd",
                along(|p| Some(p.peak_rss_mib? as f64)),
            )],
        ),
        chart(
            "Peak resident size per listener",
            "KiB",
            vec![Series::new(
                "peak RSS / listeners",
                "#8c564b",
                along(per_listener_kib),
            )],
        ),
    ];
    let (width, height) = (sim::svg::WIDTH, sim::svg::HEIGHT);
    let rows = charts.len().div_ceil(2) as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}">"#,
        width * 2.0,
        height * rows,
        width * 2.0,
        height * rows
    );
    svg.push_str("\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    for (index, chart) in charts.iter().enumerate() {
        // Each chart is a document of its own; nested, it sits in its cell.
        let (x, y) = ((index % 2) as f64 * width, (index / 2) as f64 * height);
        let inner = chart
            .render()
            .replacen("<svg ", &format!(r#"<svg x="{x}" y="{y}" "#), 1);
        svg.push_str(&inner);
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(peers: u32, rss: u64) -> Point {
        Point {
            peers,
            plays: u64::from(peers),
            events: u64::from(peers) * 80,
            events_per_play: Some(80.0),
            wall_seconds: f64::from(peers) / 5_000.0,
            setup_seconds: 0.1,
            events_per_second: 500_000.0,
            peak_rss_mib: Some(rss),
            ran_peers: u64::from(peers),
            origin_share: 0.1,
            stutter_rate: 0.01,
            start_p50_ms: 250,
        }
    }

    #[test]
    fn a_summary_line_reads_into_a_point() {
        let line = r#"{"peers":20000,"plays":1000,"events":85000,"wall_seconds":3.5,"setup_seconds":0.4,"events_per_second":700000.0,"peak_rss_mib":105,"origin_share":0.091,"stutter_rate":0.012,"first_audio_ms":{"p50":240,"p75":300}}"#;
        let point = super::point(20_000, line).unwrap();
        assert_eq!(
            (point.plays, point.events, point.peak_rss_mib),
            (1_000, 85_000, Some(105))
        );
        assert_eq!(point.events_per_play, Some(85.0));
        assert_eq!(point.start_p50_ms, 240);
        // A system that does not say its peak resident size: the rest still reads.
        let no_rss = line.replace(r#""peak_rss_mib":105,"#, "");
        assert_eq!(super::point(20_000, &no_rss).unwrap().peak_rss_mib, None);
        let missing = super::point(20_000, r#"{"plays":1}"#).unwrap_err();
        assert!(missing.to_string().contains("events"), "{missing}");
        assert!(super::point(1, "not json").is_err());
    }

    #[test]
    fn the_marginal_memory_comes_from_the_two_largest_runs() {
        let scaling = Scaling {
            points: vec![
                point(10_000, 100),
                point(100_000, 340),
                point(1_000_000, 2_500),
            ],
            bytes_per_listener: Some((2_500.0 - 340.0) * 1_048_576.0 / 900_000.0),
            projected_rss_mib_10m: Some(24_100.0),
        };
        let csv = csv(&scaling);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.lines().nth(3).unwrap().starts_with("1000000,"));
        let svg = svg(&scaling);
        assert_eq!(svg.matches("<svg ").count(), 6, "one outer and five charts");
        // Three measured points in each of the six series, each marked.
        assert_eq!(svg.matches("<circle").count(), 18);
        assert!(
            svg.contains(">1M<") && svg.contains(">10k<"),
            "decade labels"
        );
        assert!(svg.contains("Peak resident size"));
        let table = table(&scaling);
        assert!(
            table.contains("one more listener costs 2517 bytes"),
            "{table}"
        );
        assert!(table.contains("about 23.5 GiB"), "{table}");
    }
}
