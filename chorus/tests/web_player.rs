//! The web player that `chorus gateway` serves at `/`, and the operator console `chorus
//! origin` serves at `/console`, in a real browser: Debian's Chromium, headless, driven by the
//! npm package playwright-core (`web/player.mjs` says what it does), against a real origin,
//! tracker and gateway, with another listener's gateway sharing the song played first (its
//! bytes come from that peer). The test stops the origin half-way, when the script asks,
//! so the script can play a download with the origin gone.
//!
//! Screenshots of each step are kept in `$CHORUS_ARTIFACTS/web-player` (default: cargo's
//! target temporary directory), for CI to keep. `scripts/setup` installs Chromium and
//! playwright-core; without them this test says so and passes, except in CI.

#[path = "subsonic/world.rs"]
mod world;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tools() -> PathBuf {
    match std::env::var_os("CHORUS_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/chorus-tools"),
    }
}

/// Where screenshots go.
fn artifacts() -> PathBuf {
    let root = std::env::var_os("CHORUS_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    root.join("web-player")
}

#[test]
fn the_web_player_signs_in_browses_searches_plays_edits_and_plays_offline_in_chromium() {
    let chromium = std::env::var_os("CHORUS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let playwright = tools().join("npm/node_modules/playwright-core/package.json");
    if !chromium.exists() || !playwright.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "Chromium and playwright-core are required in CI (scripts/setup installs them)"
        );
        eprintln!("Chromium or playwright-core not installed: run scripts/setup; skipped");
        return;
    }
    let mut world = world::world_with_a_peer();
    let shots = artifacts();
    let _ = std::fs::remove_dir_all(&shots);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/web/player.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .env("NODE_PATH", tools().join("npm/node_modules"))
        .env("CHORUS_CHROMIUM", &chromium)
        .env("CHORUS_WEB_URL", &world.gateway_base)
        .env("CHORUS_WEB_USER", "listener")
        .env("CHORUS_WEB_PASSWORD", testkit::PASSWORD)
        .env("CHORUS_WEB_ALBUM", &world.album)
        .env("CHORUS_WEB_SINGLE", &world.single)
        .env("CHORUS_WEB_SHOTS", &shots)
        .env("CHORUS_CONSOLE_URL", &world.base)
        .env("CHORUS_ADMIN_USER", "operator")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    // The script's lines, read on a thread so the whole run is bounded in time.
    let (lines_in, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines_in.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut out = Vec::new();
    let mut origin_stopped = false;
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line == "origin-down?" {
            world
                .origin
                .process
                .terminate(Duration::from_secs(15))
                .expect("the origin stops");
            origin_stopped = true;
            writeln!(stdin, "down").expect("the script reads");
        }
        out.push(line);
    }
    if Instant::now() >= deadline {
        let _ = child.kill();
    }
    let status = child.wait().expect("node exits");
    let errors = errors.join().unwrap_or_default();
    assert!(
        status.success(),
        "the browser run failed (screenshots in {}):\n{}\n{errors}",
        shots.display(),
        out.join("\n")
    );
    assert!(origin_stopped, "the script reached the offline part");
    let measured: serde_json::Value =
        serde_json::from_str(out.last().expect("a last line")).expect("JSON figures");
    eprintln!(
        "measured in the browser: {measured}\nscreenshots: {}",
        shots.display()
    );
    for key in ["first_paint_ms", "search_p95_ms", "play_to_audible_ms"] {
        assert!(measured[key].is_number(), "{key} measured: {measured}");
    }
    assert!(measured["search_samples"].as_u64().unwrap_or(0) >= 20);
    assert!(
        measured["peer_bytes"].as_u64().unwrap_or(0) > 0,
        "bytes from the peer: {measured}"
    );
    let count = std::fs::read_dir(&shots).map_or(0, |dir| dir.count());
    assert!(count >= 7, "screenshots kept: {count}");
}
