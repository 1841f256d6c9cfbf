//! Two `chorus origin` processes serving one service over one PostgreSQL database and one
//! Garage bucket, behind the CDN edge the repository ships (`deploy/nginx/cdn.conf`): one is
//! killed with SIGKILL under a steady load of reads and writes through the edge. The API keeps
//! answering (at most 1% of requests fail while the edge notices, none after) and no write it
//! acknowledged is lost.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::chorus::OriginProcess;
use testkit::http::{login, sign_up};
use testkit::services::{Cdn, Services, free_port};

const CHORUS: &str = env!("CARGO_BIN_EXE_chorus");

/// Concurrent clients.
const CLIENTS: usize = 4;
/// Rounds per client: a read and a write each.
const ROUNDS: usize = 150;

fn addr_of(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

#[test]
fn killing_one_of_two_origins_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let services = Services::start().unwrap();
    let database = services.postgres.create_database("many").unwrap();
    services.garage.create_bucket("many").unwrap();
    let port = free_port().unwrap();
    // The edge's address is trusted for X-Forwarded-For; the load comes from one client, so
    // its playlist writes are allowed more than a listener's.
    let config = format!(
        "blobs = \"s3://many/origin\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         trusted_proxies = [\"127.0.0.1\"]\n\
         [rate_limits]\nplaylist_write = {{ per_minute = 100000, burst = 100000 }}\n"
    );
    let origin = |name: &str, admin: bool| {
        let mut process = OriginProcess::new(CHORUS, &dir.path().join(name))
            .config(&config)
            .env("CHORUS_DATABASE", &database);
        for (key, value) in services.garage.env() {
            process = process.env(key, &value);
        }
        if admin {
            process = process.admin("root");
        }
        process.start().unwrap()
    };
    let mut first = origin("a", true);
    origin::server::copy_service_keys(&dir.path().join("a"), &dir.path().join("b")).unwrap();
    let second = origin("b", false);
    let cdn = Cdn::start(port, &[addr_of(&first.base), addr_of(&second.base)]).unwrap();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    sign_up(&http, &cdn.base, "many_listener", None);
    let token = login(&http, &cdn.base, "many_listener");

    // CLIENTS clients, each a read and a write per round, while the first origin is killed
    // once a third of the rounds are done.
    let done = std::sync::atomic::AtomicUsize::new(0);
    let mut killed_at = None;
    let (acknowledged, failures) = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (http, token, base, done) = (&http, &token, &cdn.base, &done);
                scope.spawn(move || {
                    let mut acknowledged: Vec<String> = Vec::new();
                    // (round, what failed) for every request that did not succeed.
                    let mut failures: Vec<(usize, String)> = Vec::new();
                    for round in 0..ROUNDS {
                        match http.get(format!("{base}/v1/me")).bearer_auth(token).send() {
                            Ok(answer) if answer.status().is_success() => {}
                            Ok(answer) => {
                                failures.push((round, format!("read: {}", answer.status())))
                            }
                            Err(error) => failures.push((round, format!("read: {error}"))),
                        }
                        match http
                            .post(format!("{base}/v1/playlists"))
                            .bearer_auth(token)
                            .json(&json!({"name": format!("client {client} round {round}")}))
                            .send()
                        {
                            Ok(answer) if answer.status().as_u16() == 201 => {
                                let created: Value = answer.json().unwrap();
                                acknowledged.push(created["id"].as_str().unwrap().to_string());
                            }
                            Ok(answer) => {
                                failures.push((round, format!("write: {}", answer.status())))
                            }
                            Err(error) => failures.push((round, format!("write: {error}"))),
                        }
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    (acknowledged, failures)
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        while done.load(std::sync::atomic::Ordering::Relaxed) < CLIENTS * ROUNDS / 3 {
            assert!(Instant::now() < deadline, "the load did not get going");
            std::thread::sleep(Duration::from_millis(5));
        }
        first.process.kill();
        killed_at = Some((
            Instant::now(),
            done.load(std::sync::atomic::Ordering::Relaxed),
        ));
        let mut acknowledged = Vec::new();
        let mut failures = Vec::new();
        for client in clients {
            let (mine, failed) = client.join().unwrap();
            acknowledged.extend(mine);
            failures.extend(failed);
        }
        (acknowledged, failures)
    });
    let requests = 2 * ROUNDS * CLIENTS;
    let (killed, rounds_before) = killed_at.unwrap();
    eprintln!(
        "{} of {requests} requests failed (the kill came after {rounds_before} rounds, {:?} \
         before the end): {failures:?}",
        failures.len(),
        killed.elapsed()
    );
    assert!(
        failures.len() * 100 <= requests,
        "more than 1% failed: {failures:?}"
    );
    // Each client was within a few rounds of a third of its run when the kill came.
    assert!(
        failures.iter().all(|(round, _)| *round < ROUNDS / 3 + 10),
        "failures long after the fail-over: {failures:?}"
    );
    // Every acknowledged write is there, read through the surviving origin.
    let mut stored = std::collections::HashSet::new();
    for page in 0.. {
        let (status, listed) = testkit::http::get(
            &http,
            format!("{}/v1/me/playlists?limit=50&offset={}", cdn.base, page * 50),
            Some(&token),
        );
        assert_eq!(status, 200, "{listed}");
        let items = listed["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        stored.extend(
            items
                .iter()
                .filter_map(|item| item["id"].as_str().map(str::to_string)),
        );
    }
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(acknowledged.len() + failures.len() >= ROUNDS * CLIENTS);
}
