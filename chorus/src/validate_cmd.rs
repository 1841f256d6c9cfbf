//! `chorus validate`: the devnet (real processes over emulated links) and the simulator on
//! the same crowd and seed, side by side, with the differences and whether each is within
//! the agreed tolerance (15% relative, or 2 points for shares and rates).

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

/// Flags of `chorus validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Listeners in both runs (the devnet's crowd; the simulator's `peers`).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=512))]
    pub listeners: u32,
    /// Seed of both runs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length of both runs (e.g. 120s, 5m).
    #[arg(long, default_value = "120s", value_parser = crate::devnet::parse_duration)]
    pub duration: Duration,
    /// Churn: the share of listeners that crash at least once (links cut, no goodbye, back
    /// a few seconds later with their cache) in the run's length; 0.3 is 30%. The devnet's
    /// `--kill-peers` and the simulator's `faults.crash_per_min`, at the same rate (a
    /// listener's crashes are a Poisson process while it plays).
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// The devnet's working directory (its sample catalog is kept there between runs).
    #[arg(long, default_value = "chorus-devnet")]
    pub dir: PathBuf,
    /// Print the comparison as JSON on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// Relative difference within which a measure agrees.
pub const RELATIVE_TOLERANCE: f64 = 0.15;
/// Absolute difference (a fraction: 0.02 is 2 points) within which a share or rate agrees.
pub const POINTS_TOLERANCE: f64 = 0.02;

/// One measure of both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its name, as both summaries print it.
    pub name: &'static str,
    /// The devnet's figure.
    pub devnet: f64,
    /// The simulator's figure.
    pub sim: f64,
    /// A share or a rate (a fraction), which may also agree within 2 points.
    pub fraction: bool,
}

impl Row {
    /// Simulator minus devnet.
    pub fn difference(&self) -> f64 {
        self.sim - self.devnet
    }

    /// Whether the two agree: within 15% of the larger, or (shares and rates) 2 points.
    pub fn within(&self) -> bool {
        let gap = self.difference().abs();
        let scale = self.devnet.abs().max(self.sim.abs());
        gap <= RELATIVE_TOLERANCE * scale + 1e-12 || (self.fraction && gap <= POINTS_TOLERANCE)
    }
}

/// The simulator's side of the comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SimSide {
    /// The origin's egress over the bytes listeners received from the network.
    pub origin_share: f64,
    /// Start latency, median and 90th percentile, ms.
    pub first_audio_p50: f64,
    /// See `first_audio_p50`.
    pub first_audio_p90: f64,
    /// Share of plays with a stutter.
    pub stutter_rate: f64,
    /// Wasted bytes (`wasted_bytes`, all kinds) over the bytes listeners received from the
    /// network.
    pub wasted_share: f64,
}

impl SimSide {
    /// The figures of a simulator's summary.
    pub fn of(summary: &sim::Summary) -> Self {
        let bytes = &summary.bytes;
        let wasted = &summary.wasted_bytes;
        Self {
            origin_share: summary.origin_share,
            first_audio_p50: summary.first_audio_ms.p50 as f64,
            first_audio_p90: summary.first_audio_ms.p90 as f64,
            stutter_rate: summary.stutter_rate,
            wasted_share: share(
                wasted.prefetch + wasted.cancelled + wasted.duplicate,
                bytes.origin + bytes.super_nodes + bytes.peers,
            ),
        }
    }
}

/// Crashes per listener per minute at which the share `churn` of listeners crashes at least
/// once in `seconds` (a Poisson process: 1 - e^(-rate × minutes) = churn).
pub fn crash_rate(churn: f64, seconds: u64) -> f64 {
    // No churn is 0, not -0: it is printed as a flag value.
    if churn <= 0.0 {
        return 0.0;
    }
    -(1.0 - churn).ln() * 60.0 / seconds.max(1) as f64
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The rows compared, from the devnet's `--json` summary and the simulator's figures.
pub fn compare(devnet: &Value, sim: &SimSide) -> anyhow::Result<Vec<Row>> {
    let number = |path: &[&str]| -> anyhow::Result<f64> {
        let mut value = devnet;
        for key in path {
            value = &value[*key];
        }
        value
            .as_f64()
            .with_context(|| format!("the devnet's summary has no {}", path.join(".")))
    };
    let sum = |path: &[&str], keys: &[&str]| -> anyhow::Result<u64> {
        let mut total = 0.0;
        for key in keys {
            let mut full = path.to_vec();
            full.push(key);
            total += number(&full)?;
        }
        Ok(total as u64)
    };
    let network = sum(&["bytes"], &["origin", "super_nodes", "peers"])?;
    let wasted = sum(&["wasted_bytes"], &["prefetch", "cancelled", "duplicate"])?;
    Ok(vec![
        Row {
            name: "origin_share",
            devnet: number(&["origin_share"])?,
            sim: sim.origin_share,
            fraction: true,
        },
        Row {
            name: "first_audio_ms.p50",
            devnet: number(&["first_audio_ms", "p50"])?,
            sim: sim.first_audio_p50,
            fraction: false,
        },
        Row {
            name: "first_audio_ms.p90",
            devnet: number(&["first_audio_ms", "p90"])?,
            sim: sim.first_audio_p90,
            fraction: false,
        },
        Row {
            name: "stutter_rate",
            // None when no play started (then none stuttered either).
            devnet: devnet["stutter_rate"].as_f64().unwrap_or(0.0),
            sim: sim.stutter_rate,
            fraction: true,
        },
        Row {
            name: "wasted_share",
            devnet: share(wasted, network),
            sim: sim.wasted_share,
            fraction: true,
        },
    ])
}

/// Runs `chorus validate`.
pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let seconds = args.duration.as_secs().max(1);
    if !(args.churn.is_finite() && (0.0..=0.99).contains(&args.churn)) {
        bail!("--churn is a share of the listeners, 0 to 0.99");
    }
    let crash_per_min = crash_rate(args.churn, seconds);
    if crash_per_min > 60.0 {
        bail!(
            "--churn {} in {seconds} s needs {crash_per_min:.1} crashes per listener-minute; \
             the devnet takes at most 60: a lower churn or a longer --duration",
            args.churn
        );
    }
    eprintln!(
        "validate: the devnet and the simulator, {} listeners, seed {}, {seconds} s each, churn {:.0}%",
        args.listeners,
        args.seed,
        args.churn * 100.0
    );
    eprintln!("1/2 devnet (real processes, emulated 40 ms links)…");
    let exe = std::env::current_exe().context("finding this program")?;
    let output = Command::new(exe)
        .args([
            "devnet",
            "--super-nodes",
            "2",
            "--tracks",
            "12",
            "--rtt-ms",
            "40",
        ])
        .args(["--listeners", &args.listeners.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--duration", &format!("{seconds}s")])
        .args(["--kill-peers", &format!("{crash_per_min}")])
        .arg("--dir")
        .arg(&args.dir)
        .args(["--json", "--quiet"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("starting the devnet")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.lines().rev().find(|line| line.starts_with('{'));
    let devnet: Value = match summary {
        Some(line) => serde_json::from_str(line).context("reading the devnet's summary")?,
        None => bail!("the devnet failed ({}) without a summary", output.status),
    };
    if !output.status.success() {
        // It failed a check (a region violation, a duration mismatch, a crashed role) but
        // measured: compared all the same, and said.
        eprintln!(
            "the devnet reported a failure ({}); comparing its figures anyway",
            output.status
        );
    }

    eprintln!("2/2 simulator (scenario devnet-validation)…");
    let text = sim::config::builtin("devnet-validation")
        .context("the built-in devnet-validation scenario")?;
    let sets = sim::expand_sets(&[
        format!("peers={}", args.listeners),
        format!("seed={}", args.seed),
        format!("duration_s={seconds}"),
        format!("faults.crash_per_min={crash_per_min}"),
    ])?;
    let scenario = sim::Scenario::from_toml(text, sets.first().map_or(&[][..], Vec::as_slice))?;
    let outcome = sim::Engine::new(scenario)?
        .run(&mut |_| {})
        .map_err(|error| anyhow::anyhow!("simulation stopped: {error}"))?;

    let rows = compare(&devnet, &SimSide::of(&outcome.summary))?;
    let agreed = rows.iter().filter(|row| row.within()).count();
    println!(
        "{:<20} {:>10} {:>10} {:>11}  within 15% (or 2 points)",
        "measure", "devnet", "sim", "difference"
    );
    for row in &rows {
        let show = |value: f64| {
            if row.fraction {
                format!("{:.1}%", value * 100.0)
            } else {
                format!("{value:.1}")
            }
        };
        let difference = if row.fraction {
            format!("{:+.1} pt", row.difference() * 100.0)
        } else {
            format!("{:+.1}", row.difference())
        };
        println!(
            "{:<20} {:>10} {:>10} {:>11}  {}",
            row.name,
            show(row.devnet),
            show(row.sim),
            difference,
            if row.within() { "yes" } else { "NO" }
        );
    }
    println!(
        "plays: devnet {}, sim {}; {agreed} of {} measures agree",
        devnet["plays"],
        outcome.summary.plays,
        rows.len()
    );
    // Where first audio goes, step by step (not judged: it says why the totals differ).
    let sim_steps = &outcome.summary.first_audio_steps_ms;
    println!("first audio step by step, p50 / p90 ms (devnet | sim):");
    for (name, step) in [
        ("grant", &sim_steps.grant),
        ("first_chunk", &sim_steps.first_chunk),
        ("decoder", &sim_steps.decoder),
    ] {
        let devnet_step = |p: &str| {
            devnet["first_audio_steps_ms"][name][p]
                .as_f64()
                .map_or("-".to_string(), |ms| format!("{ms:.1}"))
        };
        println!(
            "  {name:<12} {:>7} / {:<7} | {:>5} / {}",
            devnet_step("p50"),
            devnet_step("p90"),
            step.p50,
            step.p90
        );
    }
    if args.json {
        let measures: Vec<Value> = rows
            .iter()
            .map(|row| {
                json!({"name": row.name, "devnet": row.devnet, "sim": row.sim,
                       "difference": row.difference(), "within": row.within()})
            })
            .collect();
        println!(
            "{}",
            json!({"listeners": args.listeners, "seed": args.seed, "seconds": seconds, "churn": args.churn,
                   "measures": measures, "agreed": agreed == rows.len(),
                   "first_audio_steps_ms": {"devnet": devnet["first_audio_steps_ms"], "sim": sim_steps}})
        );
    }
    // Scripts can tell agreement from the exit status.
    Ok(if agreed == rows.len() && output.status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(devnet: f64, sim: f64, fraction: bool) -> Row {
        Row {
            name: "x",
            devnet,
            sim,
            fraction,
        }
    }

    #[test]
    fn agreement_is_fifteen_percent_of_the_larger_or_two_points_for_shares() {
        assert!(row(100.0, 114.0, false).within());
        assert!(!row(100.0, 120.0, false).within());
        assert!(row(53.0, 49.6, false).within());
        assert!(!row(93.2, 53.0, false).within());
        // Shares: 2 points even where 15% is less.
        assert!(row(0.05, 0.069, true).within());
        assert!(!row(0.404, 0.213, true).within());
        assert!(row(0.0, 0.0, true).within());
        assert!(!row(0.0, 5.0, false).within());
    }

    #[test]
    fn the_devnet_summary_and_the_simulator_summary_line_up() {
        let devnet = json!({
            "plays": 42, "failed_plays": 2, "stutter_rate": 0.05, "origin_share": 0.40,
            "first_audio_ms": {"p50": 50.0, "p90": 90.0, "p99": 120.0},
            "bytes": {"origin": 300, "super_nodes": 200, "peers": 500, "cache": 50},
            "wasted_bytes": {"prefetch": 30, "cancelled": 20, "duplicate": 10},
        });
        let summary = sim::Summary {
            origin_share: 0.213,
            first_audio_ms: sim::report::StartMs {
                p50: 53,
                p90: 53,
                ..Default::default()
            },
            stutter_rate: 0.05,
            bytes: sim::report::Bytes {
                origin: 100,
                super_nodes: 100,
                peers: 800,
                origin_egress: 213,
                ..Default::default()
            },
            wasted_bytes: sim::report::Wasted {
                prefetch: 50,
                cancelled: 0,
                duplicate: 0,
            },
            ..Default::default()
        };
        let sim = SimSide::of(&summary);
        let rows = compare(&devnet, &sim).unwrap();
        let names: Vec<_> = rows.iter().map(|row| row.name).collect();
        assert_eq!(
            names,
            [
                "origin_share",
                "first_audio_ms.p50",
                "first_audio_ms.p90",
                "stutter_rate",
                "wasted_share"
            ]
        );
        assert!(
            (rows[0].sim - 0.213).abs() < 1e-9,
            "egress over network bytes"
        );
        assert!(!rows[0].within());
        assert!(rows[1].within());
        assert!(!rows[2].within());
        assert!((rows[3].devnet - 0.05).abs() < 1e-9);
        assert!(rows[3].within());
        // 60 of 1000 network bytes wasted in the devnet, 50 of 1000 in the simulator.
        assert!((rows[4].devnet - 0.06).abs() < 1e-9);
        assert!((rows[4].sim - 0.05).abs() < 1e-9);
        assert!(rows[4].within());
        // 30% of the listeners crash at least once in 120 s.
        let rate = crash_rate(0.3, 120);
        assert!((1.0 - (-rate * 2.0).exp() - 0.3).abs() < 1e-9, "{rate}");
        assert_eq!(crash_rate(0.0, 120), 0.0);
        assert_eq!(format!("{}", crash_rate(0.0, 120)), "0");
        // A summary without a measure is an error, not a zero.
        assert!(compare(&json!({"plays": 1}), &sim).is_err());
    }
}
