//! `chorus bench web`: the web player's targets, measured in Chromium (headless, driven by
//! playwright-core, both installed by `scripts/setup`) against this build's origin and gateway
//! on loopback over a synthetic catalog:
//!
//! - first paint of the player, cold, against the first paint of a page of the same size from
//!   a data URL (no server: the browser's own floor);
//! - search results on screen after each keystroke, against a round trip from the page to the
//!   origin through the gateway (`/v1/me`);
//! - from pressing play on a song never played here to `audio.currentTime > 0`, against the
//!   first byte of another fresh song's stream fetched by the page.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;

use anyhow::{Context, ensure};
use clap::Args;
use serde_json::{Value, json};

use super::platform::{bench_config, catalog, import, search_ready};
use super::{percentile, print_table, progress, progress_done};
use origin::store::{Role, Tier};

/// The script the browser runs, and what it puts in the page (shared with the browser test).
const SCRIPT: &str = include_str!("web.mjs");
const INSTRUMENT: &str = include_str!("web_instrument.mjs");
/// The accounts' password: the one `super::subsonic::gateway` logs in with.
const PASSWORD: &str = super::subsonic::PASSWORD;

/// Flags of `chorus bench web`.
#[derive(Debug, Args)]
pub struct WebBenchArgs {
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Tracks in the synthetic catalog searched.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1_000..=1_000_000))]
    pub tracks: u32,
    /// Cold page loads timed (and as many of the floor page).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(3..=500))]
    pub loads: u32,
    /// Words typed into the search box, a key at a time.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub words: u32,
    /// Songs played, each one the gateway has not played before.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub songs: u32,
    /// The browser (Chromium or Chrome).
    #[arg(long, default_value = "/usr/bin/chromium")]
    pub chromium: PathBuf,
    /// Catalog seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Where `scripts/setup` installs playwright-core.
fn node_modules() -> PathBuf {
    let tools = std::env::var_os("CHORUS_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/chorus-tools")
        });
    tools.join("npm/node_modules")
}

/// Runs `chorus bench web`.
pub fn run(args: &WebBenchArgs) -> anyhow::Result<ExitCode> {
    let modules = node_modules();
    ensure!(
        modules.join("playwright-core/package.json").exists() && args.chromium.exists(),
        "this benchmark needs Chromium ({}) and playwright-core ({}): run scripts/setup",
        args.chromium.display(),
        modules.display()
    );
    let data = tempfile::tempdir()?;
    let import_s = import(data.path(), args.tracks, args.seed)?;
    let records = catalog(args.tracks, args.seed);
    let (server, client) = super::origin::runtimes()?;
    progress("starting the origin");
    let running = server.block_on(origin::server::start(bench_config(data.path())))?;
    let base = format!("http://{}", running.http_addr);
    let store = running.store().clone();
    let origin_key = running.node_id;
    let _server = Arc::new(server);
    let dirs = tempfile::tempdir()?;
    let setup = client.block_on(async {
        search_ready(&base).await?;
        let http = api::client::http_client_builder()?.build()?;
        for (name, role) in [
            ("web_listener", Role::Listener),
            ("web_artist", Role::Artist),
        ] {
            let account = origin::accounts::new_account(name, PASSWORD, "SE", role, Tier::Premium)?;
            store.accounts().create_account(&account).await?;
        }
        let tokens: Value = http
            .post(format!("{base}/v1/sessions"))
            .json(&json!({"username": "web_artist", "password": PASSWORD}))
            .send()
            .await?
            .json()
            .await?;
        let artist = tokens["access_token"]
            .as_str()
            .context("no token")?
            .to_string();
        // Songs to play, and as many for the floor, each with a title of its own.
        let mut songs = Vec::new();
        let mut floor = Vec::new();
        for n in 0..args.songs * 2 {
            progress(&format!("songs: {}/{}", n + 1, args.songs * 2));
            let title = format!("Webbench song {n:03}");
            let metadata = testkit::http::metadata(&title, "Webbench");
            let track = testkit::local::upload_synth(
                &http,
                &base,
                &artist,
                900 + u64::from(n),
                20.0,
                &metadata,
            )
            .await?;
            if n % 2 == 0 {
                songs.push(json!({"id": track.id, "title": title}));
            } else {
                floor.push(json!(track.id));
            }
        }
        let (gateway, _endpoint) =
            super::subsonic::gateway(&base, origin_key, "web_listener", dirs.path()).await?;
        anyhow::Ok((gateway, songs, floor, _endpoint))
    })?;
    let (gateway, songs, floor, _endpoint) = setup;
    // Words typed: the first word of titles in the catalog, up to 8 letters.
    let words: Vec<String> = records
        .iter()
        .step_by((records.len() / args.words as usize).max(1))
        .filter_map(|(track, _)| {
            let word: String = track
                .title
                .split_whitespace()
                .next()?
                .chars()
                .take(8)
                .collect();
            (word.chars().count() >= 3).then_some(word.to_lowercase())
        })
        .take(args.words as usize)
        .collect();
    let script = dirs.path().join("web-bench.mjs");
    std::fs::write(&script, SCRIPT)?;
    std::fs::write(dirs.path().join("web_instrument.mjs"), INSTRUMENT)?;
    // The browser runs while the gateway and origin serve on this process's runtimes.
    let (chromium, loads) = (args.chromium.clone(), args.loads);
    let (words, songs, floor) = (json!(words), json!(songs), json!(floor));
    let output = client.block_on(async move {
        tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg(&script)
                .env("NODE_PATH", &modules)
                .env("CHORUS_CHROMIUM", chromium)
                .env("CHORUS_BENCH_URL", &gateway)
                .env("CHORUS_BENCH_USER", "web_listener")
                .env("CHORUS_BENCH_PASSWORD", PASSWORD)
                .env("CHORUS_BENCH_LOADS", loads.to_string())
                .env("CHORUS_BENCH_WORDS", words.to_string())
                .env("CHORUS_BENCH_SONGS", songs.to_string())
                .env("CHORUS_BENCH_FLOOR_SONGS", floor.to_string())
                .stderr(std::process::Stdio::inherit())
                .output()
        })
        .await
    })??;
    progress_done();
    ensure!(
        output.status.success(),
        "the browser run failed (see above)"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let raw: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .context("the browser's figures")?;
    let sorted = |key: &str| {
        let mut values: Vec<f64> = raw[key]
            .as_array()
            .map(|all| all.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        values.sort_by(f64::total_cmp);
        values
    };
    let at = |key: &str, p: f64| {
        let values = sorted(key);
        if values.is_empty() {
            f64::NAN
        } else {
            percentile(&values, p)
        }
    };
    let result = json!({
        "tracks": args.tracks,
        "import_s": import_s,
        "first_paint_p50_ms": at("first_paint", 50.0),
        "first_paint_p95_ms": at("first_paint", 95.0),
        "first_paint_floor_p50_ms": at("first_paint_floor", 50.0),
        "search_keystrokes": sorted("keystroke").len(),
        "search_p50_ms": at("keystroke", 50.0),
        "search_p95_ms": at("keystroke", 95.0),
        "round_trip_p50_ms": at("round_trip", 50.0),
        "round_trip_p95_ms": at("round_trip", 95.0),
        "play_p50_ms": at("play", 50.0),
        "play_max_ms": at("play", 100.0),
        "stream_first_byte_p50_ms": at("stream_first_byte", 50.0),
    });
    let number = |key: &str| result[key].as_f64().unwrap_or(f64::NAN);
    print_table(
        &format!(
            "The web player in Chromium (headless) over {} tracks, loopback: {} loads, {} keystrokes, {} songs",
            args.tracks,
            args.loads,
            number("search_keystrokes"),
            args.songs
        ),
        &[
            (
                "first paint p50 / p95 (target <= 300 ms)",
                format!(
                    "{:>8.1} / {:.1} ms",
                    number("first_paint_p50_ms"),
                    number("first_paint_p95_ms")
                ),
            ),
            (
                "  floor: same-size page from a data URL, p50",
                format!("{:>8.1} ms", number("first_paint_floor_p50_ms")),
            ),
            (
                "search results after a keystroke p50 / p95 (target p95 <= 100 ms)",
                format!(
                    "{:>8.1} / {:.1} ms",
                    number("search_p50_ms"),
                    number("search_p95_ms")
                ),
            ),
            (
                "  floor: page -> gateway -> origin round trip p50 / p95",
                format!(
                    "{:>8.1} / {:.1} ms",
                    number("round_trip_p50_ms"),
                    number("round_trip_p95_ms")
                ),
            ),
            (
                "press play -> currentTime > 0, p50 / slowest (target <= 300 ms)",
                format!(
                    "{:>8.1} / {:.1} ms",
                    number("play_p50_ms"),
                    number("play_max_ms")
                ),
            ),
            (
                "  floor: first byte of a fresh song's stream, p50",
                format!("{:>8.1} ms", number("stream_first_byte_p50_ms")),
            ),
        ],
    );
    if args.json {
        println!("{result}");
    }
    Ok(ExitCode::SUCCESS)
}
