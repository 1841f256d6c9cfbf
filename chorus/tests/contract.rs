//! The HTTP contract, checked as an API client would check it: schemathesis (installed by
//! `scripts/setup`) generates requests from the live origin's own OpenAPI document, with a
//! listener's, an artist's and an admin's token in turn, through every phase (examples,
//! coverage, fuzzing, and the stateful phase that follows the document's links), and checks
//! every answer: no server error, no status the document does not declare, every body and
//! content type as declared, every schema-valid request accepted and every schema-violating
//! one refused. `tests/contract/schemathesis.toml` names the one rule no schema can express.
//!
//! Bounded: each role's run stops after `CHORUS_CONTRACT_SECONDS` (default 40) seconds; the
//! seed is fixed (`CHORUS_CONTRACT_SEED` to try another), so a failure replays.

use std::path::{Path, PathBuf};
use std::process::Command;

use api::accounts::Role;
use reqwest::blocking::Client;
use testkit::chorus::{OriginProcess, RunningOrigin as Origin};
use testkit::http::{login, metadata, sign_up, upload_synth};

/// Where `scripts/setup` installs schemathesis, or `st` on the PATH. Missing: a skip on a
/// developer's machine, a failure in CI (where `scripts/setup` installs it), as with ffmpeg.
fn schemathesis() -> Option<PathBuf> {
    let tools = std::env::var_os("CHORUS_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/chorus-tools"))
        });
    if let Some(st) = tools.map(|tools| tools.join("venv/bin/st"))
        && st.exists()
    {
        return Some(st);
    }
    let on_path = Command::new("st")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        on_path || std::env::var_os("CI").is_none(),
        "schemathesis is required in CI: scripts/setup installs it into \
         ~/.cache/chorus-tools/venv (or $CHORUS_TOOLS/venv)"
    );
    on_path.then(|| PathBuf::from("st"))
}

/// The origin as the contract sees it: artist sign-up open (so the stateful phase can make
/// artists) and rate limits out of the way (the generator sends thousands of requests from
/// one address; limits have their own tests).
const CONFIG: &str = r#"
artist_signup = true
[rate_limits]
stream = { per_minute = 4294967295, burst = 4294967295 }
search = { per_minute = 4294967295, burst = 4294967295 }
playlist_write = { per_minute = 4294967295, burst = 4294967295 }
unauthenticated = { per_minute = 4294967295, burst = 4294967295 }
ip = { per_minute = 4294967295, burst = 4294967295 }
"#;

fn start(dir: &Path) -> Origin {
    OriginProcess::new(env!("CARGO_BIN_EXE_chorus"), &dir.join("origin"))
        .config(CONFIG)
        .admin("operator")
        // The generator sends thousands of undecodable uploads; their decoder errors are
        // expected. A panic still shows: the kit prints the stderr of a process that panicked.
        .log("off")
        .start()
        .unwrap()
}

/// The two runs for each role: the single-request phases, then the stateful phase on its own
/// time budget (it comes last and would otherwise get what the others leave).
fn check(st: &Path, dir: &Path, base: &str, role: &str, token: &str) -> Result<(), String> {
    let seconds: u64 = std::env::var("CHORUS_CONTRACT_SECONDS")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(40);
    run(
        st,
        dir,
        base,
        role,
        token,
        "examples,coverage,fuzzing",
        seconds,
    )?;
    run(st, dir, base, role, token, "stateful", seconds.div_ceil(2))
}

/// One schemathesis run of `phases` with `token`, working in `dir` (it keeps a cache where it
/// runs); the report on failure.
fn run(
    st: &Path,
    dir: &Path,
    base: &str,
    role: &str,
    token: &str,
    phases: &str,
    seconds: u64,
) -> Result<(), String> {
    let seconds = seconds.to_string();
    let seed = std::env::var("CHORUS_CONTRACT_SEED").unwrap_or_else(|_| "7".into());
    let output = Command::new(st)
        .current_dir(dir)
        .arg("--config-file")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/contract/schemathesis.toml"
        ))
        .args(["--no-color", "run"])
        .arg(format!("{base}/v1/openapi.json"))
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .args([
            "--checks",
            "all",
            "--phases",
            phases,
            "--workers",
            "1",
            "--max-examples",
            "10",
            "--request-timeout",
            "10",
            "--max-time",
            &seconds,
            "--seed",
            &seed,
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        // The phases' summaries (operations and links covered) and the verdict.
        let summary: Vec<&str> = report
            .lines()
            .filter(|line| {
                let line = line.trim_start();
                line.starts_with("API Links:")
            })
            .chain(report.lines().last())
            .map(str::trim)
            .collect();
        eprintln!("{role}, {phases}: {}", summary.join("; "));
        Ok(())
    } else {
        Err(format!(
            "as {role} ({phases}):\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn the_origin_keeps_its_documented_contract() {
    let Some(st) = schemathesis() else {
        eprintln!("skipped: schemathesis is not installed (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let origin = start(dir.path());
    let http = Client::new();
    sign_up(&http, &origin.base, "listener1", None);
    sign_up(&http, &origin.base, "artist1", Some(Role::Artist));
    let listener = login(&http, &origin.base, "listener1");
    let artist = login(&http, &origin.base, "artist1");
    let admin = login(&http, &origin.base, "operator");
    // A track, so catalog reads, plays and events have something to find.
    let mut metadata = metadata("Contract", "Artist One");
    metadata.album = Some("Tests".into());
    metadata.genre = Some("test".into());
    upload_synth(&http, &origin.base, &artist, 3, 2.0, &metadata);
    let failures: Vec<String> = [
        ("a listener", &listener),
        ("an artist", &artist),
        ("an admin", &admin),
    ]
    .into_iter()
    .filter_map(|(role, token)| check(&st, dir.path(), &origin.base, role, token).err())
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
