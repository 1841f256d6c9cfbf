//! The adversarial suite: a real `chorus origin` process on loopback, attacked as a stranger
//! would (SECURITY.md names each case). Entitlements come from the operator, never the caller;
//! a deleted track is revoked on every path; signed chunk URLs open one rendition only; the
//! data directory is private and a copied database holds no playable key; log-in limits hold
//! whatever bearer is sent.

use std::path::Path;
use std::process::Command;

use reqwest::blocking::Client;
use serde_json::{Value, json};

use testkit::PASSWORD;
use testkit::chorus::{OriginProcess, RunningOrigin as Origin};
use testkit::http::{call, get, login, post, upload_synth};

/// `chorus origin` on `data` with the TOML `config`, serving HTTPS with a certificate from
/// its own test CA; `Err` holds its error output when it refuses to start.
fn try_start(data: &Path, config: &str) -> Result<Origin, String> {
    OriginProcess::new(env!("CARGO_BIN_EXE_chorus"), data)
        .config(config)
        .tls()
        .start()
}

fn start(data: &Path, config: &str) -> Origin {
    try_start(data, config).unwrap_or_else(|error| panic!("origin did not start: {error}"))
}

fn code(answer: &Value) -> (&str, Option<&str>) {
    (
        answer["error"]["code"].as_str().unwrap_or(""),
        answer["error"]["field"].as_str(),
    )
}

/// `chorus admin ARGS` with the shared password; panics with its stderr on failure.
fn admin(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .arg("admin")
        .args(args)
        .env("CHORUS_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chorus admin {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn create_operator(data: &Path) {
    admin(&[
        "create-admin",
        "--username",
        "operator",
        "--data",
        data.to_str().unwrap(),
    ]);
}

/// Signs `username` up, then has the operator set its entitlements through the running origin.
fn account(http: &Client, origin: &Origin, username: &str, changes: &[(&str, &str)]) -> String {
    let (status, answer) = post(
        http,
        format!("{}/v1/accounts", origin.base),
        None,
        json!({"username": username, "password": PASSWORD}),
    );
    assert_eq!(status, 201, "{answer}");
    for (what, value) in changes {
        admin(&[
            &format!("set-{what}"),
            "--ca-cert",
            origin.ca_path().to_str().unwrap(),
            "--origin",
            &origin.base,
            "--admin",
            "operator",
            "--username",
            username,
            &format!("--{what}"),
            value,
        ]);
    }
    login(http, &origin.base, username)
}

fn upload(http: &Client, base: &str, token: &str, seed: u64, markets: Option<&[&str]>) -> Value {
    let mut metadata = testkit::http::metadata(&format!("Track {seed}"), "A");
    metadata.markets = markets.map(|markets| markets.iter().map(|m| m.to_string()).collect());
    upload_synth(http, base, token, seed, 2.0, &metadata)
}

fn play(http: &Client, base: &str, token: &str, track: &str) -> (u16, Value) {
    post(
        http,
        format!("{base}/v1/tracks/{track}/play"),
        Some(token),
        json!({"node_id": protocol::Identity::from_secret_bytes(&[7; 32]).node_id().to_hex(), "quality": "low"}),
    )
}

/// The chunk ids of a play authorization's manifest.
fn chunk_ids(grant: &Value) -> Vec<String> {
    let bytes = hex::decode(grant["manifest"].as_str().unwrap()).unwrap();
    let signed: protocol::SignedManifest = protocol::codec::decode(&bytes).unwrap();
    let body: protocol::ManifestBody = protocol::codec::decode(&signed.body).unwrap();
    body.chunks.iter().map(|id| id.to_hex()).collect()
}

#[test]
fn sign_up_takes_no_entitlement_from_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("origin");
    create_operator(&data);
    // Sign-ups from loopback are in NO by the operator's rules; everything else in SE.
    let config =
        "default_region = \"SE\"\n[[region_networks]]\ncidr = \"127.0.0.0/8\"\nregion = \"NO\"\n";
    let origin = start(&data, config);
    let http = origin.client();
    let signup = |body: Value| post(&http, format!("{}/v1/accounts", origin.base), None, body);

    for (body, status, expected) in [
        (
            json!({"tier": "premium"}),
            403,
            ("not_allowed", Some("tier")),
        ),
        (
            json!({"region": "US"}),
            403,
            ("not_allowed", Some("region")),
        ),
        (
            json!({"region": "XX"}),
            400,
            ("invalid_region", Some("region")),
        ),
        (
            json!({"region": "ZZ"}),
            400,
            ("invalid_region", Some("region")),
        ),
        (json!({"role": "admin"}), 403, ("not_allowed", Some("role"))),
        (
            json!({"role": "super_node"}),
            403,
            ("not_allowed", Some("role")),
        ),
        (
            json!({"role": "artist"}),
            403,
            ("not_allowed", Some("role")),
        ),
    ] {
        let mut request = json!({"username": "mallory", "password": PASSWORD});
        for (key, value) in body.as_object().unwrap() {
            request[key] = value.clone();
        }
        let (got, answer) = signup(request.clone());
        assert_eq!((got, code(&answer)), (status, expected), "{request}");
    }
    // Nothing was created by the refused attempts; a plain sign-up gets the operator's terms.
    let (status, created) = signup(
        json!({"username": "mallory", "password": PASSWORD, "region": "NO", "tier": "free"}),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (&created["role"], &created["tier"], &created["region"]),
        (&json!("listener"), &json!("free"), &json!("NO"))
    );
    let mallory = login(&http, &origin.base, "mallory");

    // Only an admin changes entitlements.
    let patch = |token: &str, user: &str, body: Value| {
        call(
            &http,
            reqwest::Method::PATCH,
            format!("{}/v1/admin/accounts/{user}", origin.base),
            Some(token),
            Some(body),
        )
    };
    let (status, answer) = patch(&mallory, "mallory", json!({"tier": "premium"}));
    assert_eq!((status, code(&answer).0), (403, "admin_only"));
    let operator = login(&http, &origin.base, "operator");
    let (status, answer) = patch(&operator, "mallory", json!({"region": "XX"}));
    assert_eq!(
        (status, code(&answer)),
        (400, ("invalid_region", Some("region")))
    );
    let (status, _) = patch(&operator, "nobody", json!({"tier": "premium"}));
    assert_eq!(status, 404);
    let (status, answer) = patch(&operator, "mallory", json!({"is_admin": true}));
    assert_eq!((status, code(&answer).0), (422, "invalid_json"));

    // `chorus admin` through the running origin, then on the stopped origin's data.
    let printed = admin(&[
        "set-tier",
        "--ca-cert",
        origin.ca_path().to_str().unwrap(),
        "--origin",
        &origin.base,
        "--admin",
        "operator",
        "--username",
        "mallory",
        "--tier",
        "premium",
    ]);
    assert!(printed.contains("Premium"), "{printed}");
    admin(&[
        "set-region",
        "--ca-cert",
        origin.ca_path().to_str().unwrap(),
        "--origin",
        &origin.base,
        "--admin",
        "operator",
        "--username",
        "mallory",
        "--region",
        "US",
    ]);
    let me = |token: &str, base: &str| {
        call(
            &http,
            reqwest::Method::GET,
            format!("{base}/v1/me"),
            Some(token),
            None,
        )
        .1
    };
    let now = me(&mallory, &origin.base);
    assert_eq!(
        (&now["tier"], &now["region"]),
        (&json!("premium"), &json!("US"))
    );
    drop(origin);
    admin(&[
        "set-role",
        "--data",
        data.to_str().unwrap(),
        "--username",
        "mallory",
        "--role",
        "artist",
    ]);
    let refused = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["admin", "set-region", "--data", data.to_str().unwrap()])
        .args(["--username", "mallory", "--region", "XX"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let origin = start(&data, config);
    let mallory = login(&http, &origin.base, "mallory");
    let now = me(&mallory, &origin.base);
    assert_eq!(
        (&now["role"], &now["region"]),
        (&json!("artist"), &json!("US"))
    );

    // An origin configured with an unassigned region does not start.
    let bad = try_start(&dir.path().join("other"), "default_region = \"XX\"\n")
        .err()
        .unwrap();
    assert!(bad.contains("XX"), "{bad}");
}

#[test]
fn deleted_tracks_and_foreign_chunk_urls_open_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("origin");
    create_operator(&data);
    let origin = start(&data, "");
    let base = origin.base.clone();
    let http = origin.client();
    let artist = account(&http, &origin, "artist", &[("role", "artist")]);
    let swede = account(&http, &origin, "swede", &[]);
    let american = account(&http, &origin, "american", &[("region", "US")]);
    let sweden_only = upload(&http, &base, &artist, 1, Some(&["SE"]));
    let everywhere = upload(&http, &base, &artist, 2, None);
    let (sweden_only, everywhere) = (
        sweden_only["id"].as_str().unwrap().to_string(),
        everywhere["id"].as_str().unwrap().to_string(),
    );

    // Market rules: no grant, and no URL of another account's grant opens it.
    let (status, answer) = play(&http, &base, &american, &sweden_only);
    assert_eq!((status, code(&answer).0), (403, "not_in_market"));
    let (status, swedish_grant) = play(&http, &base, &swede, &sweden_only);
    assert_eq!(status, 200, "{swedish_grant}");
    let (_, american_grant) = play(&http, &base, &american, &everywhere);
    let swedish_template = swedish_grant["chunk_url_template"].as_str().unwrap();
    let american_template = american_grant["chunk_url_template"].as_str().unwrap();
    let swedish_chunks = chunk_ids(&swedish_grant);
    let american_chunks = chunk_ids(&american_grant);
    let url = |template: &str, chunk: &str| template.replace("{chunk_id}", chunk);
    assert_eq!(
        get(&http, url(swedish_template, &swedish_chunks[0]), None).0,
        200
    );
    assert_eq!(
        get(&http, url(american_template, &american_chunks[0]), None).0,
        200
    );
    // One track's URL does not open another track's chunks.
    let (status, answer) = get(&http, url(american_template, &swedish_chunks[0]), None);
    assert_eq!((status, code(&answer).0), (403, "not_in_rendition"));
    // Rewriting what a URL grants breaks its signature: rendition, account, region.
    let swedish_rendition = swedish_grant["rendition_id"].as_str().unwrap();
    let american_rendition = american_grant["rendition_id"].as_str().unwrap();
    let moved =
        url(american_template, &swedish_chunks[0]).replace(american_rendition, swedish_rendition);
    assert_eq!(code(&get(&http, &moved, None).1).0, "bad_signature");
    let relocated = url(swedish_template, &swedish_chunks[0]).replace("g=SE", "g=US");
    assert_eq!(code(&get(&http, &relocated, None).1).0, "bad_signature");
    let unsigned = format!("{base}/v1/chunks/{}", swedish_chunks[0]);
    assert_eq!(code(&get(&http, &unsigned, None).1).0, "missing_signature");

    // Deleting the track revokes it at once: URLs, grants and the chunk files themselves.
    let (status, _) = call(
        &http,
        reqwest::Method::DELETE,
        format!("{base}/v1/tracks/{sweden_only}"),
        Some(&artist),
        None,
    );
    assert_eq!(status, 204);
    for chunk in &swedish_chunks {
        assert_eq!(get(&http, url(swedish_template, chunk), None).0, 404);
        let file = origin.data.join("chunks").join(&chunk[..2]).join(chunk);
        assert!(!file.exists(), "{} survived the delete", file.display());
    }
    assert_eq!(play(&http, &base, &swede, &sweden_only).0, 404);
    // The other track is untouched (a 2 s rendition may be a single chunk).
    assert_eq!(
        get(
            &http,
            url(american_template, american_chunks.last().unwrap()),
            None
        )
        .0,
        200
    );

    // Publishing the same recording again gives new content keys.
    let again = upload(&http, &base, &artist, 1, Some(&["SE"]));
    let (_, again_grant) = play(&http, &base, &swede, again["id"].as_str().unwrap());
    assert_ne!(again_grant["content_key"], swedish_grant["content_key"]);
    assert_ne!(chunk_ids(&again_grant)[0], swedish_chunks[0]);
}

#[cfg(unix)]
#[test]
fn data_at_rest_is_private_and_holds_no_playable_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("origin");
    create_operator(&data);
    let origin = start(&data, "");
    let http = origin.client();
    let artist = account(&http, &origin, "artist", &[("role", "artist")]);
    let track = upload(&http, &origin.base, &artist, 3, None);
    let (status, grant) = play(&http, &origin.base, &artist, track["id"].as_str().unwrap());
    assert_eq!(status, 200);
    let content_key = grant["content_key"].as_str().unwrap().to_string();
    drop(origin);

    // Nothing under the data directory is open to other users.
    let mut pending = vec![data.clone()];
    let mut files = 0;
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let mode = metadata.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        if metadata.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
        } else {
            files += 1;
        }
    }
    assert!(files > 10);
    let mode = |name: &str| {
        std::fs::metadata(data.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700);
    for key in ["origin.key", "url.key", "content.kek", "meta/db"] {
        assert_eq!(mode(key), 0o600, "{key}");
    }

    // A copy of the database holds no content key in the clear, as text or as bytes.
    let key_bytes = hex::decode(&content_key).unwrap();
    let mut pending = vec![data.join("meta")];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let found = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
        assert!(
            !found(content_key.as_bytes()),
            "hex key in {}",
            path.display()
        );
        assert!(!found(&key_bytes), "raw key in {}", path.display());
    }

    // Missing secrets stop the origin instead of being silently replaced.
    let kek = std::fs::read(data.join("content.kek")).unwrap();
    std::fs::remove_file(data.join("content.kek")).unwrap();
    let refused = try_start(&data, "").expect_err("started without content.kek");
    assert!(refused.contains("content.kek"), "{refused}");
    std::fs::write(data.join("content.kek"), kek).unwrap();
    let key = std::fs::read(data.join("origin.key")).unwrap();
    std::fs::remove_file(data.join("origin.key")).unwrap();
    let refused = try_start(&data, "").expect_err("started without origin.key");
    assert!(refused.contains("origin.key is missing"), "{refused}");
    std::fs::write(data.join("origin.key"), key).unwrap();
    // With both back, the same key opens the same content.
    let origin = start(&data, "");
    let artist = login(&http, &origin.base, "artist");
    let (_, grant) = play(&http, &origin.base, &artist, track["id"].as_str().unwrap());
    assert_eq!(grant["content_key"].as_str().unwrap(), content_key);
}

#[test]
fn log_in_limits_hold_whatever_bearer_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("origin");
    let origin = start(
        &data,
        "[rate_limits]\nunauthenticated = { per_minute = 1, burst = 6 }\n",
    );
    let http = origin.client();
    let base = &origin.base;
    let (status, _) = post(
        &http,
        format!("{base}/v1/accounts"),
        None,
        json!({"username": "guesser", "password": PASSWORD}),
    );
    assert_eq!(status, 201);
    let token = login(&http, base, "guesser");
    // A valid bearer token does not lift the log-in limit: guesses run out all the same.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (status, answer) = post(
            &http,
            format!("{base}/v1/sessions"),
            Some(&token),
            json!({"username": "guesser", "password": "a wrong guess"}),
        );
        statuses.push((status, code(&answer).0.to_string()));
    }
    assert!(
        statuses[..4].iter().all(|(status, _)| *status == 401),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .any(|(status, code)| *status == 429 && code == "rate_limited"),
        "{statuses:?}"
    );
    // Unknown users are refused like wrong passwords (the timing is in BENCHMARKS.md).
    let (status, answer) = post(
        &http,
        format!("{base}/v1/sessions"),
        Some(&token),
        json!({"username": "nobody_here", "password": "a wrong guess"}),
    );
    assert!(status == 401 || status == 429, "{status} {answer}");
}

/// `chorus ARGS` with the shared password and its own config directory; (success, stdout,
/// stderr).
fn chorus(config_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(args)
        .env("CHORUS_PASSWORD", PASSWORD)
        .env("CHORUS_CONFIG_DIR", config_dir)
        .env_remove("CHORUS_CA_CERT")
        .env_remove("CHORUS_PLAIN_HTTP")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn tls_is_verified_and_the_origin_key_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("origin");
    let origin = start(&data, "");
    let http = origin.client();
    let (status, answer) = post(
        &http,
        format!("{}/v1/accounts", origin.base),
        None,
        json!({"username": "listener", "password": PASSWORD}),
    );
    assert_eq!(status, 201, "{answer}");
    assert!(origin.base.starts_with("https://"), "{}", origin.base);
    let (_, network) = get(&http, format!("{}/v1/network", origin.base), None);
    let origin_id = network["origin"]["node_id"].as_str().unwrap().to_string();
    let config = dir.path().join("config");
    let ca = origin.ca_path().to_str().unwrap();
    let login = |extra: &[&str], url: &str| {
        let mut args = vec!["login", "--user", "listener", "--origin", url];
        args.extend_from_slice(extra);
        chorus(&config, &args)
    };

    // Plain HTTP to the HTTPS port gets no API answer.
    let plain = origin.base.replace("https://", "http://");
    let refused = reqwest::blocking::get(format!("{plain}/v1/network"));
    assert!(
        refused.is_err() || !refused.unwrap().status().is_success(),
        "the HTTPS port answered plain HTTP"
    );
    // A certificate from an authority the client does not trust is refused.
    let (ok, _, stderr) = login(&[], &origin.base);
    assert!(!ok);
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    // Plain http:// off loopback is refused before anything is sent.
    let (ok, _, stderr) = login(&[], "http://192.0.2.1:8470");
    assert!(!ok);
    assert!(stderr.contains("plain http://"), "{stderr}");
    // A pinned id that is not the origin's: a hard error naming both.
    let wrong = protocol::Identity::from_secret_bytes(&[9; 32])
        .node_id()
        .to_hex();
    let (ok, _, stderr) = login(&["--ca-cert", ca], &format!("{wrong}@{}", origin.base));
    assert!(!ok);
    assert!(stderr.contains("key changed"), "{stderr}");
    assert!(
        stderr.contains(&wrong) && stderr.contains(&origin_id),
        "{stderr}"
    );
    // The right one (or none) logs in, and the key is kept with the session.
    let (ok, stdout, stderr) = login(&["--ca-cert", ca], &format!("{origin_id}@{}", origin.base));
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&origin_id), "{stdout}");
    let (ok, _, stderr) = login(&["--ca-cert", ca], &origin.base);
    assert!(ok, "{stderr}");
    let session: Value =
        serde_json::from_slice(&std::fs::read(config.join("session.json")).unwrap()).unwrap();
    assert_eq!(session["origin_id"], json!(origin_id));
    // The saved session renews against the pinned key...
    let (ok, _, stderr) = chorus(&config, &["download", "--renew", "--ca-cert", ca]);
    assert!(ok, "{stderr}");
    // ...and refuses an origin that now answers with another key, before spending the token.
    let mut session: Value =
        serde_json::from_slice(&std::fs::read(config.join("session.json")).unwrap()).unwrap();
    session["origin_id"] = json!(wrong);
    std::fs::write(config.join("session.json"), session.to_string()).unwrap();
    let (ok, _, stderr) = chorus(&config, &["download", "--renew", "--ca-cert", ca]);
    assert!(!ok);
    assert!(
        stderr.contains("key changed") && stderr.contains(&wrong) && stderr.contains(&origin_id),
        "{stderr}"
    );
    session["origin_id"] = json!(origin_id);
    std::fs::write(config.join("session.json"), session.to_string()).unwrap();
    let (ok, _, stderr) = chorus(&config, &["download", "--renew", "--ca-cert", ca]);
    assert!(ok, "the refused renewal spent the refresh token: {stderr}");
}
