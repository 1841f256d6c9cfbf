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

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use reqwest::blocking::Client;
use serde_json::{Value, json};

const PASSWORD: &str = "contract password";

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

/// An origin process, killed on drop.
struct Origin {
    child: Child,
    base: String,
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let data = dir.join("origin");
    let config = dir.join("origin.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let admin = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["admin", "create-admin", "--username", "operator", "--data"])
        .arg(&data)
        .env("CHORUS_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(admin.status.success(), "{admin:?}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .arg("origin")
        .arg("--config")
        .arg(&config)
        .args(["--http", "127.0.0.1:0", "--quic", "127.0.0.1:0", "--data"])
        .arg(&data)
        // The generator sends thousands of undecodable uploads; their decoder errors are
        // expected. Panics still reach stderr.
        .env("CHORUS_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start chorus origin");
    let mut base = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("http") {
            base = Some(url.trim().to_string());
        }
        if line.starts_with("ready") {
            break;
        }
    }
    Origin {
        base: base.expect("the origin printed its address"),
        child,
    }
}

fn post(http: &Client, url: String, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn login(http: &Client, base: &str, username: &str) -> String {
    let (status, tokens) = post(
        http,
        format!("{base}/v1/sessions"),
        None,
        json!({"username": username, "password": PASSWORD}),
    );
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_string()
}

fn sign_up(http: &Client, base: &str, username: &str, role: &str) -> String {
    let (status, answer) = post(
        http,
        format!("{base}/v1/accounts"),
        None,
        json!({"username": username, "password": PASSWORD, "role": role}),
    );
    assert_eq!(status, 201, "{answer}");
    login(http, base, username)
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
    let listener = sign_up(&http, &origin.base, "listener1", "listener");
    let artist = sign_up(&http, &origin.base, "artist1", "artist");
    let admin = login(&http, &origin.base, "operator");
    // A track, so catalog reads, plays and events have something to find.
    let form = reqwest::blocking::multipart::Form::new()
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(origin::synth::wav(3, 2.0, 44_100, 2))
                .file_name("track.wav"),
        )
        .text(
            "metadata",
            json!({"title": "Contract", "artist": "Artist One", "album": "Tests", "genre": "test"})
                .to_string(),
        );
    let uploaded = http
        .post(format!("{}/v1/tracks", origin.base))
        .bearer_auth(&artist)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(uploaded.status().as_u16(), 201);
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
