//! The built `chorus` binary, run as a user would.

use std::process::Command;

fn chorus(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(args)
        .env("CHORUS_LOG", "error")
        .output()
        .expect("run chorus")
}

fn last_json_line(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last)
        .unwrap_or_else(|error| panic!("last line is not JSON ({error}): {last}"))
}

fn positive(value: &serde_json::Value, key: &str) -> f64 {
    let number = value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {value}"));
    assert!(number.is_finite() && number > 0.0, "{key} = {number}");
    number
}

#[test]
fn bench_pipeline_prints_a_table_and_json() {
    let output = chorus(&["bench", "pipeline", "--json", "--mib", "2", "--rounds", "1"]);
    let json = last_json_line(&output);
    let pipeline = positive(&json, "pipeline_mib_s");
    let primitives = positive(&json, "primitives_mib_s");
    let ratio = positive(&json, "ratio");
    assert!((ratio - pipeline / primitives).abs() < 1e-9);
    assert!(String::from_utf8_lossy(&output.stdout).contains("ratio"));
}

#[test]
fn bench_transport_prints_a_table_and_json() {
    let output = chorus(&[
        "bench",
        "transport",
        "--json",
        "--mib",
        "2",
        "--rounds",
        "1",
        "--requests",
        "20",
    ]);
    let json = last_json_line(&output);
    for key in [
        "chorus_mib_s",
        "quinn_raw_mib_s",
        "ratio",
        "request_rtt_us_p50",
        "request_rtt_us_p99",
    ] {
        positive(&json, key);
    }
    assert!(json["request_rtt_us_p99"].as_f64() >= json["request_rtt_us_p50"].as_f64());
}

#[test]
fn bad_flags_get_a_clear_error_and_a_failing_exit() {
    let output = chorus(&["bench", "pipeline", "--mib", "0"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--mib"));
    let output = chorus(&["bench", "pipeline", "--chunk-bytes", "7"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("chunk size"));
    let output = chorus(&["bench", "transport", "--mib", "4096"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("too large"));
}

#[test]
fn bench_ingest_play_and_chunks_report_json() {
    let json = last_json_line(&chorus(&[
        "bench",
        "ingest",
        "--json",
        "--seconds",
        "2",
        "--rounds",
        "1",
    ]));
    positive(&json, "realtime_factor");
    positive(&json, "decode_realtime_factor");

    let json = last_json_line(&chorus(&[
        "bench",
        "play",
        "--json",
        "--clients",
        "4",
        "--requests",
        "5",
        "--rounds",
        "1",
        "--rate",
        "200",
    ]));
    for key in [
        "play_ms_p50",
        "play_ms_p99",
        "play_saturation_per_s",
        "healthz_ms_p50",
        "healthz_ms_p99",
    ] {
        positive(&json, key);
    }

    // Installs nginx from Debian's packages when missing, as the README says.
    let json = last_json_line(&chorus(&[
        "bench",
        "chunks",
        "--json",
        "--concurrency",
        "4",
        "--seconds",
        "0.5",
        "--track-seconds",
        "5",
        "--rounds",
        "1",
    ]));
    for key in ["origin_rps", "nginx_rps", "ratio"] {
        positive(&json, key);
    }
}

#[test]
fn bench_tracker_and_supernode_report_json() {
    let json = last_json_line(&chorus(&[
        "bench",
        "tracker",
        "--json",
        "--entries",
        "20000",
        "--ops",
        "20000",
        "--rounds",
        "1",
    ]));
    for key in [
        "ops_per_s",
        "bytes_per_entry",
        "entries",
        "baseline_ops_per_s",
    ] {
        positive(&json, key);
    }
    assert_eq!(json["entries"], 20000);
    assert_eq!(json["refused"], 0);

    let json = last_json_line(&chorus(&[
        "bench",
        "supernode",
        "--json",
        "--streams",
        "20",
        "--clients",
        "2",
        "--seconds",
        "1",
        "--renditions",
        "2",
    ]));
    for key in ["requests", "chunk_p50_ms", "chunk_p99_ms", "mbps"] {
        positive(&json, key);
    }
    assert_eq!(json["errors"], 0);
    assert!(json["chunk_p99_ms"].as_f64() >= json["chunk_p50_ms"].as_f64());
}

#[test]
fn bench_decode_and_first_audio_report_json() {
    let json = last_json_line(&chorus(&[
        "bench",
        "decode",
        "--json",
        "--rounds",
        "1",
        "--seconds",
        "3",
    ]));
    for quality in ["low", "normal", "high"] {
        positive(&json[quality], "realtime_x");
        positive(&json[quality], "baseline_realtime_x");
    }
    positive(&json, "min_realtime_x");

    let json = last_json_line(&chorus(&[
        "bench",
        "first-audio",
        "--json",
        "--rtt-ms",
        "20",
        "--plays",
        "3",
        "--tracks",
        "1",
    ]));
    // Through the emulated link, nothing arrives before one round trip.
    assert!(json["link_rtt_ms_p50"].as_f64().unwrap() >= 20.0, "{json}");
    assert!(json["warm_ms"]["p50"].as_f64().unwrap() >= 20.0, "{json}");
    assert!(json["cold_ms"]["p50"].as_f64().unwrap() >= 40.0, "{json}");
    assert_eq!(json["plays"], 3);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["bench", "first-audio", "--rtt-ms=-5"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--rtt-ms"));
}

#[test]
fn sim_runs_a_scenario_writes_files_and_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_text = out.to_str().unwrap();
    let output = chorus(&["sim", "devnet-validation", "--json", "--out", out_text]);
    let json = last_json_line(&output);
    for key in [
        "plays",
        "stutter_rate",
        "peers",
        "sim_seconds",
        "wall_seconds",
        "events",
    ] {
        assert!(json.get(key).is_some(), "{key} missing in {json}");
    }
    for key in ["p50", "p75", "p90"] {
        assert!(
            json["first_audio_ms"][key].as_u64().is_some(),
            "first_audio_ms.{key} in {json}"
        );
    }
    let shares = &json["bytes_share"];
    let sum: f64 = ["origin", "p2p", "cache"]
        .iter()
        .map(|key| shares[key].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-3, "{shares}");
    positive(&json, "plays");
    for file in [
        "summary.json",
        "series.csv",
        "plays.csv",
        "sources.svg",
        "start_latency.svg",
        "origin_load.svg",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    // The same seed again: the same summary file, byte for byte.
    let first = std::fs::read(out.join("summary.json")).unwrap();
    let output = chorus(&["sim", "devnet-validation", "--quiet", "--out", out_text]);
    assert!(output.status.success());
    assert_eq!(first, std::fs::read(out.join("summary.json")).unwrap());
    // On one thread and on two (the tracker on its own): the same again.
    for threads in ["--threads=1", "--threads=2"] {
        let output = chorus(&[
            "sim",
            "devnet-validation",
            "--quiet",
            threads,
            "--out",
            out_text,
        ]);
        assert!(output.status.success());
        assert_eq!(
            first,
            std::fs::read(out.join("summary.json")).unwrap(),
            "{threads}"
        );
    }

    // A sweep: one summary line per value, each naming its setting.
    let output = chorus(&[
        "sim",
        "devnet-validation",
        "--json",
        "--quiet",
        "--set",
        "sessions.skip_chance=0,0.5",
    ]);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["set"]["sessions.skip_chance"], "0.5");
    assert_eq!(lines[0]["skipped_plays"], 0);

    // Bad input: a clear error, non-zero exit.
    let output = chorus(&["sim", "devnet-validation", "--set", "sesions.skip=1"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("sesions"));
    let output = chorus(&["sim", "no-such-scenario"]);
    assert!(!output.status.success());
}

#[test]
fn sim_scaling_runs_each_size_in_its_own_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("curve");
    let output = chorus(&[
        "sim",
        "devnet-validation",
        "--scaling",
        "24,12",
        "--set",
        "duration=90s",
        "--quiet",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let json = last_json_line(&output);
    let points = json["points"].as_array().unwrap();
    // Smallest first, whatever the order asked.
    let peers: Vec<u64> = points
        .iter()
        .map(|p| p["peers"].as_u64().unwrap())
        .collect();
    assert_eq!(peers, [12, 24]);
    for point in points {
        assert!(point["events"].as_u64().unwrap() > 0, "{point}");
        assert!(point["peak_rss_mib"].as_u64().unwrap() > 0, "{point}");
    }
    assert!(json["bytes_per_listener"].is_number(), "{json}");
    for file in [
        "scaling.csv",
        "scaling.svg",
        "peers-12/summary.json",
        "peers-24/summary.json",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    // `duration=90s` reached each run.
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("peers-12/summary.json")).unwrap()).unwrap();
    assert_eq!(run["sim_seconds"], 90, "{run}");
    let csv = std::fs::read_to_string(out.join("scaling.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // With a sweep, or with --peers: a clear error.
    let output = chorus(&[
        "sim",
        "devnet-validation",
        "--scaling",
        "12,24",
        "--set",
        "seed=1,2",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("sweep"));
    let output = chorus(&[
        "sim",
        "devnet-validation",
        "--scaling",
        "12",
        "--peers",
        "5",
    ]);
    assert!(!output.status.success());
    let output = chorus(&["sim", "devnet-validation", "--scaling", "0,12"]);
    assert!(!output.status.success());
    // `peers` is what --scaling sets: a `--set peers=` would quietly override every run.
    let output = chorus(&[
        "sim",
        "devnet-validation",
        "--scaling",
        "12,24",
        "--set",
        "peers=5",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("peers"));
}
