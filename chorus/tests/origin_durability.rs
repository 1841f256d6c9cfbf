//! Every acknowledged write survives `kill -9`: the origin process is SIGKILLed repeatedly
//! while account creations and uploads are in flight, restarted, and checked.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::{ChunkId, SignedManifest, codec};
use serde_json::{Value, json};
use testkit::chorus::{OriginProcess, RunningOrigin as Origin};
use testkit::services::Services;

/// Where the origin under test keeps its data: the embedded store, or PostgreSQL and Garage
/// (private instances), reached the way an operator configures them (`CHORUS_DATABASE`,
/// `--blobs` in the config, the `AWS_*` variables).
enum Backend {
    Embedded,
    PostgresS3(Box<Services>),
}

impl Backend {
    fn postgres_s3() -> Self {
        let services = Services::start().unwrap();
        services.postgres.create_database("durable").unwrap();
        services.garage.create_bucket("durable").unwrap();
        Backend::PostgresS3(Box::new(services))
    }

    fn store_config(&self, data: &Path) -> origin::store::StoreConfig {
        let mut config = origin::config::OriginConfig {
            data_dir: data.to_path_buf(),
            ..Default::default()
        };
        if let Backend::PostgresS3(services) = self {
            config.database = services.postgres.url("durable");
            config.blobs = "s3://durable/origin".into();
            config.s3 = origin::config::S3Settings {
                endpoint: Some(services.garage.endpoint()),
                region: Some(testkit::services::GARAGE_REGION.into()),
                access_key_id: Some(services.garage.key_id.clone()),
                secret_access_key: Some(services.garage.secret.clone()),
                allow_http: Some(true),
            };
        }
        config.store_config().unwrap()
    }
}

fn start(data: &Path, backend: &Backend) -> Origin {
    // Many sign-ups and log-ins from one address: this test is about durability, not limits.
    let mut process = OriginProcess::new(env!("CARGO_BIN_EXE_chorus"), data);
    let mut config =
        "artist_signup = true\n[rate_limits]\nunauthenticated = { per_minute = 100000, burst = 100000 }\n"
            .to_string();
    if let Backend::PostgresS3(services) = backend {
        config.insert_str(0, "blobs = \"s3://durable/origin\"\n");
        process = process.env("CHORUS_DATABASE", &services.postgres.url("durable"));
        for (key, value) in services.garage.env() {
            process = process.env(key, &value);
        }
    }
    process.config(&config).start().unwrap()
}

fn wav(seed: u64) -> Vec<u8> {
    origin::synth::wav(seed, 0.5, 22_050, 1)
}

/// Writers: create accounts and upload tracks until told to stop; record what was acknowledged.
fn writers(
    base: &str,
    round: u64,
    stop: Arc<AtomicBool>,
    accounts: Arc<Mutex<Vec<String>>>,
    tracks: Arc<Mutex<Vec<String>>>,
    artist_token: String,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut handles = Vec::new();
    {
        let (base, stop, accounts) = (base.to_string(), stop.clone(), accounts.clone());
        handles.push(std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let username = format!("user_{round}_{n}");
                let body = json!({"username": username, "password": "durable password"});
                match http.post(format!("{base}/v1/accounts")).json(&body).send() {
                    Ok(response) if response.status().as_u16() == 201 => {
                        accounts.lock().unwrap().push(username)
                    }
                    _ => {}
                }
            }
        }));
    }
    for writer in 0..2u64 {
        let (base, stop, tracks, token) = (
            base.to_string(),
            stop.clone(),
            tracks.clone(),
            artist_token.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let form = reqwest::blocking::multipart::Form::new()
                    .part(
                        "file",
                        reqwest::blocking::multipart::Part::bytes(wav(round * 1000
                            + writer * 100
                            + n))
                        .file_name("t.wav"),
                    )
                    .text(
                        "metadata",
                        json!({"title": format!("t{round}.{writer}.{n}"), "artist": "durable"})
                            .to_string(),
                    );
                match http
                    .post(format!("{base}/v1/tracks"))
                    .bearer_auth(&token)
                    .multipart(form)
                    .send()
                {
                    Ok(response) if response.status().as_u16() == 201 => {
                        let track: Value = response.json().unwrap();
                        tracks
                            .lock()
                            .unwrap()
                            .push(track["id"].as_str().unwrap().to_string());
                    }
                    _ => {}
                }
            }
        }));
    }
    handles
}

fn login(base: &str, username: &str, password: &str) -> Option<String> {
    let http = reqwest::blocking::Client::new();
    let response = http
        .post(format!("{base}/v1/sessions"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let tokens: Value = response.json().ok()?;
    Some(tokens["access_token"].as_str()?.to_string())
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    sigkill_rounds(&Backend::Embedded);
}

#[test]
fn acknowledged_writes_survive_sigkill_on_postgres_and_s3() {
    sigkill_rounds(&Backend::postgres_s3());
}

fn sigkill_rounds(backend: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("origin");
    let accounts = Arc::new(Mutex::new(Vec::new()));
    let tracks = Arc::new(Mutex::new(Vec::new()));

    let origin = start(&data, backend);
    let http = reqwest::blocking::Client::new();
    let artist =
        json!({"username": "durable_artist", "password": "durable password", "role": "artist"});
    assert_eq!(
        http.post(format!("{}/v1/accounts", origin.base))
            .json(&artist)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        201
    );
    let mut origin = origin;

    let rounds = 4u64;
    for round in 0..rounds {
        let token = login(&origin.base, "durable_artist", "durable password")
            .expect("artist logs in after restart");
        let stop = Arc::new(AtomicBool::new(false));
        let handles = writers(
            &origin.base,
            round,
            stop.clone(),
            accounts.clone(),
            tracks.clone(),
            token,
        );
        // Kill at a different point of the write stream each round.
        std::thread::sleep(Duration::from_millis(400 + 250 * round));
        origin.process.kill(); // SIGKILL
        stop.store(true, Ordering::Relaxed);
        for handle in handles {
            handle.join().unwrap();
        }
        origin = start(&data, backend);
    }

    let accounts = accounts.lock().unwrap().clone();
    let tracks = tracks.lock().unwrap().clone();
    assert!(
        !accounts.is_empty() && !tracks.is_empty(),
        "the test wrote nothing ({} accounts, {} tracks)",
        accounts.len(),
        tracks.len()
    );
    let started = Instant::now();
    for username in &accounts {
        assert!(
            login(&origin.base, username, "durable password").is_some(),
            "acknowledged account {username} lost"
        );
    }
    for id in &tracks {
        let response = http
            .get(format!("{}/v1/tracks/{id}", origin.base))
            .send()
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            200,
            "acknowledged track {id} lost"
        );
    }
    origin.process.kill();

    // Every track in the store, acknowledged or not, is whole: each rendition's manifest
    // verifies and every chunk is on disk and matches its hash.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let chunks_checked = runtime.block_on(async {
        let store = origin::store::Store::open(&backend.store_config(&data))
            .await
            .unwrap();
        let origin_id = origin::server::origin_identity(&data).unwrap().node_id();
        let mut chunks_checked = 0;
        for id in &tracks {
            let track = store.catalog().track(id).await.unwrap().unwrap();
            assert_eq!(track.renditions.len(), 3);
            for summary in &track.renditions {
                let record = store
                    .rendition(&summary.rendition_id)
                    .await
                    .unwrap()
                    .expect("rendition of a listed track");
                let signed: SignedManifest =
                    codec::decode(&hex::decode(&record.manifest).unwrap()).unwrap();
                let manifest = signed.verify(&origin_id).unwrap();
                for chunk in &manifest.body().chunks {
                    let data = store
                        .blobs()
                        .get(chunk)
                        .await
                        .unwrap()
                        .expect("chunk of a listed track");
                    assert_eq!(ChunkId::of(&data), *chunk);
                    chunks_checked += 1;
                }
            }
        }
        chunks_checked
    });
    if matches!(backend, Backend::PostgresS3(_)) {
        // Objects are written whole or not at all by the store itself; what matters here is
        // that every listed chunk was read back above.
        eprintln!(
            "{} accounts and {} tracks ({chunks_checked} chunks) acknowledged across {rounds} SIGKILLs on PostgreSQL and S3, all present",
            accounts.len(),
            tracks.len()
        );
        return;
    }
    // Every chunk file on disk, including those of uploads killed mid-ingest (never listed),
    // is whole: written atomically under its hash.
    let mut files = 0;
    for shard in std::fs::read_dir(data.join("chunks")).unwrap() {
        let shard = shard.unwrap().path();
        if shard.file_name().unwrap() == "tmp" {
            continue;
        }
        for file in std::fs::read_dir(&shard).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            assert_eq!(
                ChunkId::of(&std::fs::read(&file).unwrap()).to_hex(),
                name,
                "torn chunk file {name}"
            );
            files += 1;
        }
    }
    assert!(files >= chunks_checked);
    eprintln!(
        "{} accounts and {} tracks ({chunks_checked} chunks) acknowledged across {rounds} SIGKILLs, all present; checked in {:?}",
        accounts.len(),
        tracks.len(),
        started.elapsed()
    );
}

#[test]
fn sigterm_stops_the_origin_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut origin = start(&dir.path().join("origin"), &Backend::Embedded);
    let http = reqwest::blocking::Client::new();
    assert!(
        http.get(format!("{}/healthz", origin.base))
            .send()
            .unwrap()
            .status()
            .is_success()
    );
    let exit = origin
        .process
        .terminate(Duration::from_secs(10))
        .expect("origin stops on SIGTERM");
    assert!(exit.success(), "origin exited with {exit}");
    // And it starts again on the same data (the database lock was released).
    let mut again = start(&dir.path().join("origin"), &Backend::Embedded);
    assert!(
        http.get(format!("{}/healthz", again.base))
            .send()
            .unwrap()
            .status()
            .is_success()
    );
    again.process.kill();
}
