//! `chorus devnet` end to end: real origin, tracker and super-node processes, listeners
//! streaming real encoded audio to each other over QUIC through the link emulator.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn devnet(args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .arg("devnet")
        .args(args)
        .env("CHORUS_LOG", "error")
        .output()
        .expect("run chorus devnet");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let summary = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    (output.status.success(), summary, stderr)
}

/// A small devnet whose origin dies two thirds of the way through: every play completes and
/// decodes to the ingested length, peers carry bytes, no chunk crosses a forbidden region,
/// and plays started after the origin died still play (cached and peer-held tracks), as do
/// plays started after one of the two tracker shards died.
/// The number at `path` in the summary (a test failure if there is none).
fn count_at(summary: &Value, path: &[&str]) -> u64 {
    let mut value = summary;
    for key in path {
        value = &value[*key];
    }
    value
        .as_u64()
        .unwrap_or_else(|| panic!("no {path:?} in {summary}"))
}

#[test]
fn a_small_devnet_plays_everything_and_survives_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, summary, stderr) = devnet(&[
        "--listeners",
        "6",
        "--super-nodes",
        "1",
        "--tracks",
        "4",
        "--track-seconds",
        "12",
        "--duration",
        "54s",
        "--kill-origin-at",
        "36s",
        "--trackers",
        "2",
        "--kill-tracker-at",
        "18s",
        "--rtt-ms",
        "30",
        "--jitter-ms",
        "2",
        "--json",
        "--quiet",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "devnet failed: {summary}\n{stderr}");
    let count = |path: &[&str]| count_at(&summary, path);
    assert!(count(&["plays"]) >= 10, "{summary}");
    assert_eq!(count(&["failed_plays"]), 0, "{summary}\n{stderr}");
    assert_eq!(count(&["checks", "region_violations"]), 0, "{summary}");
    assert_eq!(count(&["checks", "duration_mismatches"]), 0, "{summary}");
    assert!(count(&["checks", "durations_checked"]) >= 4, "{summary}");
    assert!(
        count(&["bytes", "peers"]) > 0,
        "peers carried nothing: {summary}"
    );
    assert!(count(&["bytes", "origin"]) > 0, "{summary}");
    assert!(count(&["plays_without_origin"]) >= 2, "{summary}");
    assert_eq!(count(&["failed_without_origin"]), 0, "{summary}");
    // Two tracker shards, one killed: its renditions fall back, no play fails.
    assert_eq!(count(&["trackers"]), 2, "{summary}");
    assert!(count(&["plays_after_tracker_loss"]) >= 2, "{summary}");
    assert_eq!(count(&["failed_after_tracker_loss"]), 0, "{summary}");
    assert_eq!(summary["crashed"], serde_json::json!([]), "{summary}");
    assert!(
        summary["origin_killed_at_s"].as_f64().is_some(),
        "{summary}"
    );
    assert!(
        summary["first_audio_ms"]["p50"].as_f64().is_some(),
        "{summary}"
    );
    assert!(summary["origin_share"].as_f64().is_some(), "{summary}");
    assert!(summary["stutter_rate"].as_f64().is_some(), "{summary}");
    // The simulator's names for the same measures.
    for kind in ["prefetch", "cancelled", "duplicate"] {
        assert!(
            summary["wasted_bytes"][kind].as_u64().is_some(),
            "wasted_bytes.{kind}: {summary}"
        );
    }
    assert_eq!(summary["rtt_ms"].as_f64(), Some(30.0));
}

/// Ctrl-C ends the run: a summary, exit code 130, and every role process gone.
/// `--origins 2 --cdn nginx`: the service on a private PostgreSQL and Garage behind the
/// repository's nginx edge; one origin is killed with SIGKILL mid-run and no play fails.
#[test]
fn two_origins_behind_the_edge_lose_one_and_no_play_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, summary, stderr) = devnet(&[
        "--origins",
        "2",
        "--cdn",
        "nginx",
        "--trackers",
        "2",
        "--listeners",
        "6",
        "--super-nodes",
        "1",
        "--tracks",
        "4",
        "--track-seconds",
        "12",
        "--duration",
        "45s",
        "--kill-origin-at",
        "20s",
        "--rtt-ms",
        "30",
        "--json",
        "--quiet",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "devnet failed: {summary}\n{stderr}");
    let count = |path: &[&str]| count_at(&summary, path);
    assert!(count(&["plays"]) >= 8, "{summary}");
    assert_eq!(count(&["failed_plays"]), 0, "{summary}\n{stderr}");
    assert!(count(&["plays_without_origin"]) >= 2, "{summary}");
    assert_eq!(count(&["origins"]), 2, "{summary}");
    // The edge served chunks, some of them from its cache, and refused none.
    assert!(count(&["cdn", "misses"]) > 0, "{summary}");
    assert!(count(&["cdn", "hits"]) > 0, "{summary}");
    assert_eq!(count(&["cdn", "refused"]), 0, "{summary}");
    assert!(count(&["cdn", "chunk_bytes"]) > 0, "{summary}");
    // Both origins answered requests through it.
    let origins = summary["origin_requests"]
        .as_array()
        .expect("origin_requests");
    assert_eq!(origins.len(), 2, "{summary}");
    for origin in origins {
        assert!(origin["requests"].as_u64().unwrap_or(0) > 0, "{summary}");
    }
    assert_eq!(summary["crashed"], serde_json::json!([]), "{summary}");
    assert!(summary["origin_share"].as_f64().is_some(), "{summary}");
}

#[test]
fn ctrl_c_stops_every_process_and_the_live_page_draws_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args([
            "devnet",
            "--listeners",
            "2",
            "--super-nodes",
            "1",
            "--tracks",
            "2",
            "--track-seconds",
            "8",
            "--quiet",
            "--web",
            "127.0.0.1:0",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .env("CHORUS_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pids: Vec<u32> = Vec::new();
    let mut seen = Vec::new();
    let mut page = None;
    // Wait for the processes, then for the first status line (the crowd is playing).
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("devnet did not get going: {seen:?}"));
        if let Some(list) = line.strip_prefix("devnet: processes (pid): ") {
            pids = list
                .split(", ")
                .filter_map(|entry| entry.rsplit(' ').next()?.parse().ok())
                .collect();
        }
        if let Some(url) = line.strip_prefix("devnet: watch it live at ") {
            page = Some(url.trim_end_matches('/').to_string());
        }
        let status = line.starts_with('[');
        seen.push(line);
        if status && !pids.is_empty() {
            break;
        }
    }
    // The live page: every node, and what listeners received second by second.
    let page = page.unwrap_or_else(|| panic!("no live page announced: {seen:?}"));
    let html = reqwest::blocking::get(format!("{page}/"))
        .unwrap()
        .text()
        .unwrap();
    assert!(html.contains("Chorus devnet"), "{html}");
    let state: serde_json::Value = reqwest::blocking::get(format!("{page}/state.json"))
        .unwrap()
        .json()
        .unwrap();
    let kinds: Vec<&str> = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|node| node["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|kind| **kind == "origin").count(),
        1,
        "{state}"
    );
    assert_eq!(
        kinds.iter().filter(|kind| **kind == "super_node").count(),
        1,
        "{state}"
    );
    assert_eq!(
        kinds.iter().filter(|kind| **kind == "listener").count(),
        2,
        "{state}"
    );
    let received: u64 = state["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|second| {
            ["origin", "super_nodes", "peers"]
                .iter()
                .filter_map(|key| second[key].as_u64())
                .sum::<u64>()
        })
        .sum();
    assert!(
        received > 0,
        "listeners received bytes while playing: {state}"
    );
    // And in a browser, where there is one (scripts/setup installs it; CI requires it).
    let tools = std::env::var_os("CHORUS_TOOLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/chorus-tools")
        });
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if chromium.exists() && tools.join("npm/node_modules/playwright-core").exists() {
        let shots = std::env::var_os("CHORUS_ARTIFACTS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
            .join("web-player");
        let drawn = Command::new("node")
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/devnet.mjs"))
            .env("NODE_PATH", tools.join("npm/node_modules"))
            .env("CHORUS_CHROMIUM", chromium)
            .env("CHORUS_DEVNET_URL", &page)
            .env("CHORUS_WEB_SHOTS", &shots)
            .output()
            .unwrap();
        assert!(
            drawn.status.success(),
            "the live page in Chromium: {}{}",
            String::from_utf8_lossy(&drawn.stdout),
            String::from_utf8_lossy(&drawn.stderr)
        );
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Chromium and playwright-core are required in CI (scripts/setup installs them)"
        );
        eprintln!(
            "Chromium or playwright-core not installed: run scripts/setup; browser check skipped"
        );
    }
    assert_eq!(pids.len(), 3, "origin, tracker, super-node: {seen:?}");
    for pid in &pids {
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let (exited_tx, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = exited_tx.send(child.wait());
    });
    let status = exited
        .recv_timeout(Duration::from_secs(60))
        .expect("devnet did not stop on Ctrl-C")
        .unwrap();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        seen.push(line);
    }
    assert_eq!(status.code(), Some(130), "{seen:?}");
    assert!(
        seen.iter().any(|line| line.starts_with("devnet summary")),
        "{seen:?}"
    );
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "role process {pid} outlived the devnet"
        );
    }
}

#[test]
fn bad_flags_get_clear_messages() {
    for (args, expected) in [
        (vec!["--loss", "2"], "--loss"),
        (
            vec!["--duration", "30s", "--kill-origin-at", "60s"],
            "--kill-origin-at",
        ),
        (vec!["--link", "SE-JP:rtt=50"], "JP is not one of"),
        (vec!["--link", "SE-US:speed=5"], "unknown link setting"),
        (vec!["--quality", "best"], "--quality"),
        (vec!["--duration", "soon"], "not a duration"),
        (vec!["--listeners", "0"], "--listeners"),
        (vec!["--kill-peers=-1"], "--kill-peers"),
        (vec!["--trackers", "0"], "--trackers"),
        (
            vec!["--duration", "30s", "--kill-tracker-at", "60s"],
            "--kill-tracker-at",
        ),
        (vec!["--origins", "2"], "--cdn nginx"),
        (vec!["--cdn", "varnish"], "--cdn"),
        (vec!["--database", "postgres://x@localhost/x"], "--blobs"),
        (
            vec!["--database", "postgres://x@localhost/x", "--blobs", "files"],
            "s3://BUCKET",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_chorus"))
            .arg("devnet")
            .args(&args)
            .args(["--dir", dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
        // Refused before anything started: no origin data written.
        assert!(!dir.path().join("origin").exists(), "{args:?}");
    }
}

/// A role that dies on its own is reported (in the view and the summary) and fails the run.
#[test]
fn a_crashed_role_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args([
            "devnet",
            "--listeners",
            "2",
            "--super-nodes",
            "1",
            "--tracks",
            "2",
            "--track-seconds",
            "8",
            "--duration",
            "20s",
            "--json",
            "--quiet",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .env("CHORUS_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    let super_node = loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("devnet did not get going: {seen:?}"));
        let found = line
            .strip_prefix("devnet: processes (pid): ")
            .and_then(|list| {
                list.split(", ")
                    .find_map(|entry| entry.strip_prefix("super-node 0 "))
                    .and_then(|pid| pid.parse::<u32>().ok())
            });
        seen.push(line);
        if let Some(pid) = found {
            break pid;
        }
    };
    Command::new("kill")
        .args(["-KILL", &super_node.to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        seen.push(line);
    }
    assert!(!output.status.success(), "a crash must fail the run");
    let summary: Value = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no summary: {seen:?}"));
    assert_eq!(summary["crashed"][0]["role"], "super-node 0", "{summary}");
    assert!(
        seen.iter()
            .any(|line| line.contains("the super-node 0 exited unexpectedly")),
        "{seen:?}"
    );
    // The listeners went on without it.
    assert_eq!(summary["failed_plays"], 0, "{summary}");
}
