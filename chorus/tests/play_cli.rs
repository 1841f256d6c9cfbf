//! `chorus login` and `chorus play` against a real origin process: a saved session, a track
//! played to a WAV file with the JSON summary, and to stdout.

use std::process::Command;

use serde_json::Value;

use api::accounts::Role;
use testkit::PASSWORD;
use testkit::chorus::{OriginProcess, RunningOrigin as Origin};
use testkit::http::{login, metadata, sign_up, upload_synth};

fn wav_ms(bytes: &[u8]) -> u64 {
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let channels = u64::from(u16::from_le_bytes([bytes[22], bytes[23]]));
    let rate = u64::from(u32::from_le_bytes(bytes[24..28].try_into().unwrap()));
    let data = (bytes.len() - 44) as u64;
    data / (2 * channels) * 1000 / rate
}

/// An origin process with a listener account and one uploaded synthetic track.
fn world(dir: &std::path::Path, seed: u64, seconds: f64) -> (Origin, String) {
    let (origin, mut tracks) = world_with(dir, None, &[(seed, seconds)]);
    (origin, tracks.remove(0))
}

/// An origin process (with `config`, TOML) with a listener account and synthetic tracks
/// of the given (seed, seconds).
fn world_with(
    dir: &std::path::Path,
    config: Option<&str>,
    tracks: &[(u64, f64)],
) -> (Origin, Vec<String>) {
    // Artists sign themselves up on this origin (closed by default).
    let origin = OriginProcess::new(env!("CARGO_BIN_EXE_chorus"), &dir.join("origin"))
        .config(&format!(
            "artist_signup = true\n{}",
            config.unwrap_or_default()
        ))
        .tls()
        .start()
        .unwrap();
    let (base, http) = (&origin.base, origin.client());
    sign_up(&http, base, "artist", Some(Role::Artist));
    sign_up(&http, base, "listener", None);
    let artist = login(&http, base, "artist");
    let mut ids = Vec::new();
    for &(seed, seconds) in tracks {
        let metadata = metadata(&format!("Track {seed}"), "A");
        let track = upload_synth(&http, base, &artist, seed, seconds, &metadata);
        ids.push(track["id"].as_str().unwrap().to_string());
    }
    (origin, ids)
}

fn summary_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn queues_prefetch_and_downloads_play_offline_until_their_license_expires() {
    let dir = tempfile::tempdir().unwrap();
    // Offline licenses of 8 s, one device per account: the rules at a testable scale.
    let (origin, tracks) = world_with(
        dir.path(),
        Some("offline_license_ttl_s = 8\noffline_devices_max = 1\n"),
        &[(21, 3.0), (22, 3.0), (23, 3.0)],
    );
    let (a, b, c) = (tracks[0].as_str(), tracks[1].as_str(), tracks[2].as_str());
    let base = origin.base.clone();
    // Kept apart from `origin`, which the test stops half-way.
    let ca = origin.ca_path().to_path_buf();
    let chorus_in = |config: &std::path::Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args(args)
            .env("CHORUS_CONFIG_DIR", config)
            .env("CHORUS_PASSWORD", PASSWORD)
            .env("CHORUS_LOG", "error")
            .env("CHORUS_CA_CERT", &ca)
            .output()
            .unwrap()
    };
    let config = dir.path().join("config");
    let chorus = |args: &[&str]| chorus_in(&config, args);
    assert!(
        chorus(&["login", "--origin", &base, "--user", "listener"])
            .status
            .success()
    );

    // A queue: A, B, A again. B's authorization and opening chunks are fetched while A plays,
    // so B starts from them; A's second play comes from the local cache.
    let wav = dir.path().join("queue.wav");
    let summary = summary_of(&chorus(&[
        "play",
        a,
        b,
        a,
        "--out",
        wav.to_str().unwrap(),
        "--json",
    ]));
    let played = summary["tracks"].as_array().unwrap();
    assert_eq!(played.len(), 3, "{summary}");
    assert_eq!(played[1]["track_id"], b, "{summary}");
    assert_eq!(played[1]["prefetched"], true, "{summary}");
    // Prefetched bytes came from the origin (ahead of time) and are counted so, once.
    assert_eq!(played[1]["bytes_cache"], 0, "{summary}");
    assert!(played[1]["bytes_origin"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(played[2]["bytes_origin"], 0, "{summary}");
    assert_eq!(
        played[2]["bytes_cache"], played[0]["bytes_origin"],
        "{summary}"
    );
    assert_eq!(summary["failed"], 0);
    let total = summary["duration_ms"].as_u64().unwrap();
    assert!((total as i64 - 9000).abs() < 150, "{summary}");
    assert!((wav_ms(&std::fs::read(&wav).unwrap()) as i64 - 9000).abs() < 150);

    // Starting 2 s into a 3 s track: only the rest is decoded (from the first page boundary
    // of the chunk under 2 s, so about a second, give or take a chunk).
    let summary = summary_of(&chorus(&[
        "play",
        a,
        "--start",
        "0:02",
        "--out",
        wav.to_str().unwrap(),
        "--json",
    ]));
    let rest = summary["duration_ms"].as_u64().unwrap();
    assert!((300..2600).contains(&rest), "{summary}");
    assert!(
        (wav_ms(&std::fs::read(&wav).unwrap()) as i64 - rest as i64).abs() < 60,
        "{summary}"
    );
    let output = chorus(&["play", a, "--start", "soon", "--out", wav.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("M:SS"));

    // Shuffle with a seed replays the same order.
    let order = |seed: &str| {
        let summary = summary_of(&chorus(&[
            "play",
            a,
            b,
            "--shuffle",
            "--seed",
            seed,
            "--out",
            wav.to_str().unwrap(),
            "--json",
        ]));
        summary["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|track| track["track_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(order("7"), order("7"));

    // Search instead of an id: typos allowed.
    let summary = summary_of(&chorus(&[
        "play",
        "--search",
        "trak 22",
        "--out",
        wav.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(summary["tracks"][0]["track_id"], b, "{summary}");
    let output = chorus(&["play", "--search", "qqqqqq", "--out", wav.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no track matches"));

    // Download B for offline play; a second device of the same account is over the limit.
    let output = chorus(&["download", b]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let downloaded_at = std::time::Instant::now();
    let listing = String::from_utf8_lossy(&chorus(&["download", "--list"]).stdout).to_string();
    assert!(listing.contains(b), "{listing}");
    let other_device = dir.path().join("other-device");
    assert!(
        chorus_in(
            &other_device,
            &["login", "--origin", &base, "--user", "listener"]
        )
        .status
        .success()
    );
    let output = chorus_in(&other_device, &["download", a]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("devices"), "{stderr}");
    // Renewal while online: the license runs out within a week, so it is renewed.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let output = chorus(&["download", "--renew"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("renewed"),
        "{stdout}"
    );
    let renewed_at = std::time::Instant::now();

    // The origin goes away. Past the first license's expiry (8 s after the download) B still
    // plays, all of it from the download: the renewal extended it.
    drop(origin);
    let first_expiry = downloaded_at + std::time::Duration::from_millis(8_500);
    std::thread::sleep(first_expiry.saturating_duration_since(std::time::Instant::now()));
    assert!(renewed_at + std::time::Duration::from_secs(8) > std::time::Instant::now());
    let summary = summary_of(&chorus(&[
        "play",
        b,
        "--out",
        wav.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(summary["bytes_origin"], 0, "{summary}");
    assert!((summary["duration_ms"].as_u64().unwrap() as i64 - 3000).abs() < 60);
    // A, played a minute ago and wholly cached, plays from the cache under its streaming
    // license; C, never played, cannot.
    let summary = summary_of(&chorus(&[
        "play",
        a,
        "--out",
        wav.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(summary["bytes_origin"], 0, "{summary}");
    assert!(summary["bytes_cache"].as_u64().unwrap() > 0, "{summary}");
    assert!((summary["duration_ms"].as_u64().unwrap() as i64 - 3000).abs() < 60);
    let output = chorus(&["play", c, "--out", wav.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not downloaded"), "{stderr}");

    // Past the renewed license (8 s from the renewal, which was after the first expiry):
    // the download refuses to play.
    assert!(renewed_at.duration_since(downloaded_at).as_secs() >= 3);
    let expiry = renewed_at + std::time::Duration::from_secs(9);
    std::thread::sleep(expiry.saturating_duration_since(std::time::Instant::now()));
    let output = chorus(&["play", b, "--out", wav.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expired"), "{stderr}");
}

#[test]
fn login_then_play_to_a_file_and_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, track_id) = world(dir.path(), 12, 4.0);
    let base = origin.base.clone();

    let config = dir.path().join("config");
    let chorus = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args(args)
            .env("CHORUS_CONFIG_DIR", &config)
            .env("CHORUS_PASSWORD", PASSWORD)
            .env("CHORUS_LOG", "error")
            .env("CHORUS_CA_CERT", origin.ca_path())
            .output()
            .unwrap()
    };
    // Without a session: a clear error.
    let output = chorus(&["play", &track_id, "--out", "x.wav"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("chorus login"));

    let output = chorus(&["login", "--origin", &base, "--user", "listener"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(config.join("session.json").exists());

    let wav = dir.path().join("four.wav");
    let output = chorus(&["play", &track_id, "--out", wav.to_str().unwrap(), "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let duration = summary["duration_ms"].as_u64().unwrap();
    assert!((duration as i64 - 4000).abs() < 60, "{summary}");
    assert!(
        summary["first_audio_ms"].as_u64().unwrap() < 2000,
        "{summary}"
    );
    assert!(summary["bytes_origin"].as_u64().unwrap() > 0);
    assert_eq!(summary["bytes_peers"], 0);
    assert_eq!(summary["stutters"], 0);
    assert!((wav_ms(&std::fs::read(&wav).unwrap()) as i64 - 4000).abs() < 60);

    // Played again: everything comes from the local cache.
    let output = chorus(&["play", &track_id, "--out", wav.to_str().unwrap(), "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let again: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(again["bytes_origin"], 0, "{again}");
    assert_eq!(again["bytes_cache"], summary["bytes_origin"], "{again}");
    // A damaged cache file is dropped and fetched again.
    let chunks = config.join("cache").join("chunks");
    let first = std::fs::read_dir(&chunks)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&first, b"rotten").unwrap();
    let output = chorus(&["play", &track_id, "--out", wav.to_str().unwrap(), "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let repaired: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(repaired["bytes_origin"].as_u64().unwrap() > 0, "{repaired}");
    assert!((repaired["duration_ms"].as_u64().unwrap() as i64 - 4000).abs() < 60);

    // The refresh token rotated and still works; stdout gets a WAV stream.
    let output = chorus(&["play", &track_id, "--out", "-"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(&output.stdout[..4], b"RIFF");
    assert!(output.stdout.len() > 44 + 4 * 44_100 * 3);

    // Bad input: unknown track, --json with stdout.
    let output = chorus(&["play", &"0".repeat(32), "--out", wav.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = chorus(&["play", &track_id, "--out", "-", "--json"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--json needs --out FILE"));
}

#[test]
fn the_gateway_serves_decrypted_tracks_with_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, track_id) = world(dir.path(), 13, 5.0);
    let base = origin.base.clone();
    let http = reqwest::blocking::Client::new();

    let mut gateway = Command::new(env!("CARGO_BIN_EXE_chorus"));
    gateway
        .args(["gateway", "--listen", "127.0.0.1:0", "--origin", &base])
        .args(["--user", "listener"])
        .env("CHORUS_CONFIG_DIR", dir.path().join("config"))
        .env("CHORUS_PASSWORD", PASSWORD)
        .env("CHORUS_LOG", "error")
        .env("CHORUS_CA_CERT", origin.ca_path());
    let gateway = testkit::process::start(gateway, testkit::chorus::READY_WAIT).unwrap();
    let gateway_base = gateway.field("http").unwrap();
    let url = format!("{gateway_base}/tracks/{track_id}");

    let full = http.get(&url).send().unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(full.headers()["content-type"], "audio/ogg");
    let full = full.bytes().unwrap();
    let (frames, rate) = origin::ingest::decoded_frames(&full).unwrap();
    assert!((frames * 1000 / u64::from(rate)) as i64 - 5000 < 60);

    let part = http
        .get(&url)
        .header("range", "bytes=20000-20099")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 20000-20099/{}", full.len()).as_str()
    );
    assert_eq!(&part.bytes().unwrap()[..], &full[20000..20100]);
    let tail = http.get(&url).header("range", "bytes=-10").send().unwrap();
    assert_eq!(&tail.bytes().unwrap()[..], &full[full.len() - 10..]);
    let beyond = http
        .get(&url)
        .header("range", format!("bytes={}-", full.len()))
        .send()
        .unwrap();
    assert_eq!(beyond.status(), 416);
    let unknown = http
        .get(format!("{}/tracks/{}", gateway_base, "0".repeat(32)))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let bad = http
        .get(format!("{gateway_base}/tracks/../../etc"))
        .send()
        .unwrap();
    assert!(bad.status().is_client_error());
    // DNS rebinding: a page on another site reaching the gateway under its own name.
    let rebound = http
        .get(&url)
        .header("host", "evil.example:8480")
        .send()
        .unwrap();
    assert_eq!(rebound.status(), 421);

    // An unmodified player reads it over HTTP (ffmpeg, when installed; CI installs it).
    let ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-i", &url, "-f", "wav", "-"])
        .output();
    match ffmpeg {
        Ok(output) => {
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!((wav_ms(&output.stdout) as i64 - 5000).abs() < 60);
        }
        Err(_) if std::env::var_os("CI").is_none() => eprintln!("ffmpeg not installed: skipped"),
        Err(error) => panic!("ffmpeg is required in CI: {error}"),
    }
}

#[test]
fn the_place_is_saved_as_it_plays_and_another_device_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, tracks) = world_with(dir.path(), None, &[(31, 3.0), (32, 3.0)]);
    let (a, b) = (tracks[0].as_str(), tracks[1].as_str());
    let (base, http) = (origin.base.clone(), origin.client());
    let config = dir.path().join("config");
    let chorus = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chorus"))
            .args(args)
            .env("CHORUS_CONFIG_DIR", &config)
            .env("CHORUS_PASSWORD", PASSWORD)
            .env("CHORUS_LOG", "error")
            .env("CHORUS_CA_CERT", origin.ca_path())
            .output()
            .unwrap()
    };
    assert!(
        chorus(&["login", "--origin", &base, "--user", "listener"])
            .status
            .success()
    );
    // Nothing saved yet: --resume says so.
    let output = chorus(&["play", "--resume", "--out", "x.wav"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no saved place"));

    // The laptop plays A then B: its place is saved as it goes.
    let wav = dir.path().join("laptop.wav");
    let summary = summary_of(&chorus(&[
        "play",
        a,
        b,
        "--device",
        "laptop",
        "--out",
        wav.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(summary["failed"], 0, "{summary}");
    let token = login(&http, &base, "listener");
    let url = format!("{base}/v1/me/player");
    let (status, saved) = testkit::http::get(&http, &url, Some(&token));
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["device"], "laptop", "{saved}");
    assert_eq!(saved["queue"], serde_json::json!([a, b]));
    assert_eq!(saved["index"], 1, "{saved}");
    assert!(saved["version"].as_u64().unwrap() >= 2, "{saved}");

    // The phone moves the place back to 2 s into A; the laptop resumes from there: A's last
    // second (give or take a chunk), then B whole.
    let (status, moved) = testkit::http::call(
        &http,
        reqwest::Method::PUT,
        &url,
        Some(&token),
        Some(serde_json::json!({
            "queue": [a, b], "index": 0, "position_ms": 2000, "device": "phone",
            "version": saved["version"],
        })),
    );
    assert_eq!(status, 200, "{moved}");
    let output = chorus(&[
        "play",
        "--resume",
        "--device",
        "laptop",
        "--out",
        wav.to_str().unwrap(),
        "--json",
    ]);
    let summary = summary_of(&output);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("saved by phone"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let played = summary["tracks"].as_array().unwrap();
    assert_eq!(played.len(), 2, "{summary}");
    assert_eq!(played[0]["track_id"], a);
    let rest = played[0]["duration_ms"].as_u64().unwrap();
    assert!((300..2600).contains(&rest), "{summary}");
    assert!(
        played[1]["duration_ms"].as_u64().unwrap() > 2900,
        "{summary}"
    );
    // And the laptop's writes went over the phone's version.
    let (_, after) = testkit::http::get(&http, &url, Some(&token));
    assert_eq!(after["device"], "laptop");
    assert_eq!(
        after["queue"],
        serde_json::json!([a, b]),
        "the queue keeps what was heard"
    );
    assert_eq!(after["index"], 1, "{after}");
    assert!(
        after["version"].as_u64() > moved["version"].as_u64(),
        "{after}"
    );
}
