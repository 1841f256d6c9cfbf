//! `chorus sim`: runs a scenario in the discrete-event simulator, with a progress bar, files
//! and plots in `--out`, and a JSON summary.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

/// Flags of `chorus sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// A scenario file (TOML), or the name of a built-in one: spotify-2010, flash-crowd,
    /// churn-heavy, tracker-outage, devnet-validation. `--list` shows them.
    #[arg(required_unless_present = "list")]
    pub scenario: Option<String>,
    /// Listener peers (overrides the scenario's `peers`).
    #[arg(long)]
    pub peers: Option<u32>,
    /// Seed (overrides the scenario's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated hours (overrides `duration_s`).
    #[arg(long)]
    pub hours: Option<f64>,
    /// Override a scenario key, e.g. `sessions.skip_chance=0.3`, `classes.0.up_mbps=1` or
    /// `duration=24h` (`duration` and `measure_from` take `24h`, `1h30m`, `90m`, `45s`).
    /// A list (`key=a,b,c`) or a range (`key=start..end:step`) sweeps: one run per value,
    /// the cartesian product over several swept keys. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Write summary.json, series.csv, plays.csv, first_audio_ms.csv and SVG plots here (one
    /// sub-directory per run of a sweep).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON on the last line of stdout (one line per run of a sweep).
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// List the built-in scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Threads to run on (default: two, or one on a one-core machine). With two or more the
    /// tracker runs on a thread of its own; the results are the same for any number.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Run the scenario at each of these listener counts, each in a process of its own, and
    /// print how wall time, events per second and per play, and peak memory grow with it
    /// (with `--out`: `scaling.csv`, `scaling.svg` and each run's files); with `--json` the
    /// curve on the last line. E.g. `--scaling 10000,100000,1000000`.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "PEERS,...",
        conflicts_with = "peers"
    )]
    pub scaling: Vec<u32>,
}

/// Runs `chorus sim`.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        for (name, text) in sim::config::BUILTIN {
            let description = sim::Scenario::from_toml(text, &[])
                .map(|scenario| scenario.description)
                .unwrap_or_default();
            println!("{name:<18} {description}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(name) = args.scenario.as_deref() else {
        bail!("name a scenario (a TOML file or a built-in one; --list shows them)");
    };
    let text = match sim::config::builtin(name) {
        Some(text) if !std::path::Path::new(name).exists() => text.to_string(),
        _ => {
            let size = std::fs::metadata(name)
                .with_context(|| format!("reading scenario {name} (not a built-in name either)"))?
                .len();
            if size > sim::config::SCENARIO_BYTES_MAX {
                bail!(
                    "scenario {name} is {size} bytes; scenarios are at most {} bytes",
                    sim::config::SCENARIO_BYTES_MAX
                );
            }
            std::fs::read_to_string(name).with_context(|| format!("reading scenario {name}"))?
        }
    };
    let mut fixed: Vec<String> = Vec::new();
    if let Some(peers) = args.peers {
        fixed.push(format!("peers={peers}"));
    }
    if let Some(seed) = args.seed {
        fixed.push(format!("seed={seed}"));
    }
    if let Some(hours) = args.hours {
        if !(hours > 0.0 && hours <= 168.0) {
            bail!("--hours: more than 0 and at most 168");
        }
        fixed.push(format!("duration_s={}", (hours * 3_600.0).round() as u64));
    }
    fixed.extend(args.sets.iter().cloned());
    let runs = sim::expand_sets(&fixed)?;
    if !args.scaling.is_empty() {
        return scaling(&args, name, &text, &fixed, &runs);
    }
    let sweep = runs.len() > 1;
    let mut failed = false;
    for (index, sets) in runs.iter().enumerate() {
        let scenario = sim::Scenario::from_toml(&text, sets)?;
        let label = sets
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ");
        if sweep && !args.quiet {
            eprintln!("run {}/{}: {label}", index + 1, runs.len());
        }
        let out = args.out.as_ref().map(|dir| {
            if sweep {
                dir.join(format!("run-{index:03}"))
            } else {
                dir.clone()
            }
        });
        match run_one(scenario, &args, out) {
            Ok(mut summary) => {
                if sweep {
                    summary.set = Some(sets.iter().cloned().collect());
                }
                if args.json {
                    println!("{}", serde_json::to_string(&summary)?);
                }
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `--scaling`: one process per size, each running the scenario with the same flags.
fn scaling(
    args: &SimArgs,
    name: &str,
    text: &str,
    fixed: &[String],
    runs: &[Vec<(String, String)>],
) -> anyhow::Result<ExitCode> {
    let [sets] = runs else {
        bail!("--scaling runs one scenario at several sizes: it does not combine with a sweep");
    };
    if sets.iter().any(|(key, _)| key == "peers") {
        bail!("--scaling sets the listener count of each run: drop `peers` from --set");
    }
    if let Some(&zero) = args.scaling.iter().find(|&&peers| peers == 0) {
        bail!("--scaling: {zero} listeners");
    }
    // Checked here, so that a bad key or size fails before the first (perhaps long) run.
    for &peers in &args.scaling {
        let mut sets = sets.clone();
        sets.push(("peers".into(), peers.to_string()));
        sim::Scenario::from_toml(text, &sets)?;
    }
    let mut child = Vec::new();
    if let Some(threads) = args.threads {
        child.push(format!("--threads={threads}"));
    }
    for set in fixed {
        child.push("--set".into());
        child.push(set.clone());
    }
    let curve =
        crate::sim_scaling::run(&args.scaling, name, &child, args.quiet, args.out.as_deref())?;
    print!("{}", crate::sim_scaling::table(&curve));
    if let Some(dir) = &args.out {
        println!(
            "files in {} (scaling.csv, scaling.svg, peers-N/ per run)",
            dir.display()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&curve)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_one(
    scenario: sim::Scenario,
    args: &SimArgs,
    out: Option<PathBuf>,
) -> anyhow::Result<sim::Summary> {
    let started = Instant::now();
    let name = scenario.name.clone();
    let peers = scenario.peers;
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(scenario.duration_s);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} simulated s  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("#>-"),
        );
        bar.set_prefix(format!("chorus sim {name}"));
        bar
    };
    if !args.quiet {
        eprintln!("setting up {peers} listeners (warm caches, super-nodes, tracker)…");
    }
    let engine = sim::Engine::with_threads(scenario, threads(args))?;
    let setup_s = started.elapsed().as_secs_f64();
    let mut last_status = Instant::now();
    let plain = !args.quiet && !std::io::stderr().is_terminal();
    let outcome = engine.run(&mut |progress| {
        bar.set_position(progress.sim_ms / 1_000);
        let wall = started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{} plays, {:.2} M events, {:.0} k events/s",
            progress.plays,
            progress.events as f64 / 1e6,
            progress.events as f64 / wall / 1e3
        ));
        if plain && last_status.elapsed().as_secs() >= 30 {
            last_status = Instant::now();
            eprintln!(
                "sim {:.0}/{:.0} s: {} plays, {} events",
                progress.sim_ms as f64 / 1e3,
                progress.total_ms as f64 / 1e3,
                progress.plays,
                progress.events
            );
        }
    });
    bar.finish_and_clear();
    let mut outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => bail!("simulation stopped: {error}"),
    };
    let wall = started.elapsed().as_secs_f64();
    outcome.summary.wall_seconds = Some((wall * 10.0).round() / 10.0);
    outcome.summary.events_per_second =
        Some((outcome.summary.events as f64 / (wall - setup_s).max(1e-3)).round());
    if let Some(dir) = &out {
        outcome
            .write(dir)
            .with_context(|| format!("writing results to {}", dir.display()))?;
    }
    let summary = &outcome.summary;
    if !args.quiet {
        eprintln!(
            "{}: {} plays; origin {:.1}%, p2p {:.1}%, cache {:.1}% of bytes; stutter {:.2}%; start p50 {} / p75 {} / p90 {} ms; {} events in {:.1} s ({:.0} events/s){}",
            summary.scenario,
            summary.plays,
            summary.bytes_share.origin * 100.0,
            summary.bytes_share.p2p * 100.0,
            summary.bytes_share.cache * 100.0,
            summary.stutter_rate * 100.0,
            summary.first_audio_ms.p50,
            summary.first_audio_ms.p75,
            summary.first_audio_ms.p90,
            summary.events,
            wall,
            summary.events_per_second.unwrap_or(0.0),
            out.as_ref()
                .map(|dir| format!("; files in {}", dir.display()))
                .unwrap_or_default()
        );
    }
    let mut summary = outcome.summary;
    summary.setup_seconds = Some((setup_s * 10.0).round() / 10.0);
    summary.peak_rss_mib = peak_rss_mib();
    Ok(summary)
}

/// `--threads`, or two where the machine has two cores or more.
fn threads(args: &SimArgs) -> usize {
    args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|cores| cores.get().min(2))
            .unwrap_or(1)
    })
}

/// Peak resident memory of this process (Linux), MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1_024)
}
