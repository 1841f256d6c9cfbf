//! The operator's path to the scale-out store, through the binary: an embedded origin with
//! accounts and a track is stopped, `chorus admin migrate` copies it into PostgreSQL and a
//! Garage object store, and `chorus origin --database … --blobs …` serves it from there —
//! log-in, the track, a play and its chunks — while `chorus admin --database` changes an
//! account with the origin running.

use api::accounts::Role;
use serde_json::json;
use testkit::chorus::{OriginProcess, command};
use testkit::http::{get, login, metadata, post, sign_up, upload_synth};
use testkit::services::Services;

const CHORUS: &str = env!("CARGO_BIN_EXE_chorus");

#[test]
fn an_embedded_origin_moves_to_postgres_and_s3_with_admin_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("origin");
    let http = reqwest::blocking::Client::new();

    // An embedded origin with an artist, a listener and a track.
    let mut embedded = OriginProcess::new(CHORUS, &data)
        .config("artist_signup = true\n")
        .admin("root")
        .start()
        .unwrap();
    sign_up(&http, &embedded.base, "moving_artist", Some(Role::Artist));
    sign_up(&http, &embedded.base, "moving_listener", None);
    let artist = login(&http, &embedded.base, "moving_artist");
    let track = upload_synth(
        &http,
        &embedded.base,
        &artist,
        5,
        2.0,
        &metadata("Moving Day", "The Movers"),
    );
    let track_id = track["id"].as_str().unwrap().to_string();
    embedded
        .process
        .terminate(std::time::Duration::from_secs(20))
        .expect("the origin stops on SIGTERM");

    // Copy it.
    let services = Services::start().unwrap();
    let url = services.postgres.create_database("moved").unwrap();
    services.garage.create_bucket("moved").unwrap();
    let migrated = command(std::path::Path::new(CHORUS))
        .args(["admin", "migrate", "--data"])
        .arg(&data)
        .args(["--to-database", &url, "--to-blobs", "s3://moved/origin"])
        .envs(services.garage.env())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&migrated.stdout);
    assert!(migrated.status.success(), "{migrated:?}");
    assert!(
        printed.contains("(read back, hashes match)"),
        "the report names the verified chunks: {printed}"
    );

    // Serve it from PostgreSQL and S3: the flags an operator gives.
    let mut moved = OriginProcess::new(CHORUS, &data)
        .config("blobs = \"s3://moved/origin\"\n")
        .env("CHORUS_DATABASE", &url);
    for (key, value) in services.garage.env() {
        moved = moved.env(key, &value);
    }
    let moved = moved.start().unwrap();
    let (status, fetched) = get(&http, format!("{}/v1/tracks/{track_id}", moved.base), None);
    assert_eq!(
        (status, fetched["title"].as_str()),
        (200, Some("Moving Day"))
    );
    let listener = login(&http, &moved.base, "moving_listener");
    let node_id = protocol::Identity::from_secret_bytes(&[3; 32])
        .node_id()
        .to_hex();
    let (status, grant) = post(
        &http,
        format!("{}/v1/tracks/{track_id}/play", moved.base),
        Some(&listener),
        json!({"node_id": node_id, "opening_chunks": 1}),
    );
    assert_eq!(status, 200, "{grant}");
    assert_eq!(
        grant["opening_chunks"].as_array().map(Vec::len),
        Some(1),
        "the opening chunk comes from the object store: {grant}"
    );

    // An admin command on the same database, with the origin running.
    let changed = command(std::path::Path::new(CHORUS))
        .args([
            "admin",
            "set-tier",
            "--username",
            "moving_listener",
            "--tier",
            "premium",
        ])
        .arg("--data")
        .arg(&data)
        .args(["--database", &url])
        .output()
        .unwrap();
    assert!(changed.status.success(), "{changed:?}");
    // The running origin sees it once its session cache lets go of the old record (5 s).
    let asked = std::time::Instant::now();
    loop {
        let (status, me) = get(&http, format!("{}/v1/me", moved.base), Some(&listener));
        assert_eq!(status, 200, "{me}");
        if me["tier"].as_str() == Some("premium") {
            break;
        }
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(15),
            "the tier change never reached the running origin: {me}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
