//! `chorus tracker` and `chorus node` as real processes next to a real `chorus origin`: the
//! operator creates a super-node account, the tracker learns the origin's key by itself, the
//! node caches what listeners ask for and announces it, a stranger cannot announce what it
//! holds no license for, and every process stops cleanly on SIGTERM.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use protocol::wire::{Announce, NodeRole, PeerQuery, Request, Response};
use protocol::{Identity, LicenseClaims, LicenseToken, NodeId, codec};
use serde_json::{Value, json};
use transport::{Endpoint, Limits};

use testkit::PASSWORD;
use testkit::chorus::READY_WAIT;
use testkit::http::{metadata, post_ok, upload_synth};
use testkit::process::Process;

/// Starts `chorus ARGS EXTRA` trusting the CA certificate `ca` (`CHORUS_CA_CERT`), if any.
fn spawn(args: &[&str], extra: &[&Path], ca: Option<&Path>) -> Process {
    let mut command = testkit::chorus::command(Path::new(env!("CARGO_BIN_EXE_chorus")));
    command.args(args).args(extra);
    if let Some(ca) = ca {
        command.env("CHORUS_CA_CERT", ca);
    }
    testkit::process::start(command, READY_WAIT)
        .unwrap_or_else(|error| panic!("{args:?} did not start: {error}"))
}

/// Stops `process` with SIGTERM: it must exit cleanly within 15 s.
fn stopped_cleanly(mut process: Process) -> bool {
    process
        .terminate(Duration::from_secs(15))
        .expect("stopped on SIGTERM")
        .success()
}

/// Signs `name` up as a listener; the operator then gives it `role` through the running
/// origin (`chorus admin set-role --origin`).
fn account(
    http: &reqwest::blocking::Client,
    base: &str,
    ca: &Path,
    name: &str,
    role: &str,
) -> String {
    let created = post_ok(
        http,
        format!("{base}/v1/accounts"),
        None,
        json!({"username": name, "password": PASSWORD}),
    );
    assert_eq!(created["role"], "listener");
    let changed = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["admin", "set-role", "--origin", base, "--admin", "operator"])
        .args(["--username", name, "--role", role, "--ca-cert"])
        .arg(ca)
        .env("CHORUS_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(changed.status.success(), "{changed:?}");
    post_ok(
        http,
        format!("{base}/v1/sessions"),
        None,
        json!({"username": name, "password": PASSWORD}),
    )["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Uploads 3 s of synthetic audio (from `seed`) titled `title` as the artist `token`.
fn upload(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    seed: u64,
    title: &str,
) -> Value {
    upload_synth(http, base, token, seed, 3.0, &metadata(title, "A"))
}

#[test]
fn tracker_and_super_node_processes_serve_a_listener() {
    let dir = tempfile::tempdir().unwrap();
    let origin_data = dir.path().join("origin");
    let created = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args([
            "admin",
            "create-super-node",
            "--username",
            "isp_node",
            "--region",
            "SE",
            "--data",
        ])
        .arg(&origin_data)
        .env("CHORUS_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).contains("super-node account isp_node"));
    let created = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["admin", "create-admin", "--username", "operator", "--data"])
        .arg(&origin_data)
        .env("CHORUS_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");

    // TLS on, from a CA made for this test; every role trusts it through CHORUS_CA_CERT.
    let tls = dir.path().join("tls");
    let made = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["tls", "init", "--host", "127.0.0.1", "--dir"])
        .arg(&tls)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let ca = tls.join("ca.pem");
    let origin = spawn(
        &[
            "origin",
            "--http",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--tls-cert",
            tls.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            tls.join("key.pem").to_str().unwrap(),
            "--data",
        ],
        &[&origin_data],
        None,
    );
    let base = origin.field("http").unwrap();
    assert!(base.starts_with("https://"), "{base}");
    let origin_id: NodeId = origin.field("node id").unwrap().parse().unwrap();
    let tracker = spawn(
        &[
            "tracker",
            "--listen",
            "127.0.0.1:0",
            "--origin",
            &base,
            "--status-every-s",
            "0",
            "--data",
        ],
        &[&dir.path().join("tracker")],
        Some(&ca),
    );
    let tracker_address = tracker.field("address").unwrap();
    assert!(
        tracker
            .field("trusts")
            .unwrap()
            .starts_with(&origin_id.to_hex())
    );
    let (tracker_id, tracker_addr) = tracker_address.split_once('@').unwrap();
    let tracker_id: NodeId = tracker_id.parse().unwrap();
    let tracker_addr: std::net::SocketAddr = tracker_addr.parse().unwrap();
    // The super-node pins the origin's key from configuration; the tracker pinned it at start.
    let pinned_base = format!("{}@{base}", origin_id.to_hex());
    let node = spawn(
        &[
            "node",
            "--origin",
            &pinned_base,
            "--user",
            "isp_node",
            "--listen",
            "127.0.0.1:0",
            "--tracker",
            &tracker_address,
            "--cache-bytes",
            "64M",
            "--refresh-s",
            "1",
            "--no-p2p",
            "--cache-dir",
        ],
        &[&dir.path().join("node")],
        Some(&ca),
    );
    for pin in [
        dir.path().join("tracker").join("origin.pin"),
        dir.path().join("node").join("origin.pin"),
    ] {
        let kept = std::fs::read_to_string(&pin).unwrap();
        assert_eq!(kept.trim(), origin_id.to_hex(), "{}", pin.display());
    }
    let node_id: NodeId = node.field("node id").unwrap().parse().unwrap();
    assert_eq!(node.field("region").unwrap(), "SE");

    // A listener plays a track; its peer queries make the track popular.
    let http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let artist = account(&http, &base, &ca, "artist", "artist");
    let listener = account(&http, &base, &ca, "listener", "listener");
    let track = upload(&http, &base, &artist, 4, "Song");
    let track_id = track["id"].as_str().unwrap();
    let client = Identity::from_secret_bytes(&[0x51; 32]);
    let grant = post_ok(
        &http,
        format!("{base}/v1/tracks/{track_id}/play"),
        Some(&listener),
        json!({"node_id": client.node_id().to_hex()}),
    );
    let license =
        LicenseToken::from_bytes(&hex::decode(grant["license"].as_str().unwrap()).unwrap())
            .unwrap();
    let rendition = grant["rendition_id"].as_str().unwrap().parse().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listed = runtime.block_on(async {
        let endpoint =
            Endpoint::bind(&client, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
        let peer = endpoint.connect(tracker_id, tracker_addr).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let request = Request::PeerQuery(PeerQuery {
                rendition,
                want: 10,
                license: license.clone(),
            });
            match peer.request_one(&request).await.unwrap() {
                Response::PeerList(list) if list.peers.iter().any(|p| p.node == node_id) => {
                    return list;
                }
                Response::PeerList(_) => {}
                other => panic!("{other:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "the super-node never announced the track"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    assert_eq!(listed.peers[0].node, node_id);

    // A stranger licensed for another track announces this one, with the listener's license
    // as "proof" (bound to the listener's node): the tracker leaves it out, says so, and
    // never lists the stranger for it.
    let other = upload(&http, &base, &artist, 5, "Other");
    let stranger_token = account(&http, &base, &ca, "stranger", "listener");
    let stranger = Identity::from_secret_bytes(&[0x52; 32]);
    let stranger_grant = post_ok(
        &http,
        format!("{base}/v1/tracks/{}/play", other["id"].as_str().unwrap()),
        Some(&stranger_token),
        json!({"node_id": stranger.node_id().to_hex()}),
    );
    let stranger_license = LicenseToken::from_bytes(
        &hex::decode(stranger_grant["license"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let claims: LicenseClaims = codec::decode(&stranger_license.claims).unwrap();
    runtime.block_on(async {
        let endpoint =
            Endpoint::bind(&stranger, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
        let peer = endpoint.connect(tracker_id, tracker_addr).await.unwrap();
        let announce = Request::Announce(Announce {
            partial: Vec::new(),
            region: claims.region,
            role: NodeRole::Client,
            addrs: vec![endpoint.local_addr().unwrap()],
            renditions: vec![rendition],
            upload_spare_kbps: 20_000,
            credential: stranger_license.clone(),
            proofs: vec![license.clone()],
        });
        match peer.request_one(&announce).await.unwrap() {
            Response::AnnounceAck { unproven, .. } => assert_eq!(unproven, vec![rendition]),
            other => panic!("{other:?}"),
        }
        let endpoint =
            Endpoint::bind(&client, "127.0.0.1:0".parse().unwrap(), Limits::default()).unwrap();
        let peer = endpoint.connect(tracker_id, tracker_addr).await.unwrap();
        let query = Request::PeerQuery(PeerQuery {
            rendition,
            want: 10,
            license: license.clone(),
        });
        match peer.request_one(&query).await.unwrap() {
            Response::PeerList(list) => {
                assert!(list.peers.iter().all(|p| p.node != stranger.node_id()));
            }
            other => panic!("{other:?}"),
        }
    });
    let cached = std::fs::read_dir(dir.path().join("node").join("renditions"))
        .unwrap()
        .count();
    assert_eq!(cached, 1);

    assert!(stopped_cleanly(node));
    assert!(stopped_cleanly(tracker));
    assert!(stopped_cleanly(origin));
}

#[test]
fn network_role_flags_are_checked() {
    // The roles' default directories (./chorus-node, ...) land in a scratch directory, never
    // in the source tree.
    let scratch = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chorus"))
            .current_dir(scratch.path())
            .args(args)
            .env("CHORUS_PASSWORD", PASSWORD)
            .output()
            .unwrap()
    };
    let output = run(&[
        "tracker",
        "--peers-returned",
        "0",
        "--issuer",
        &"ab".repeat(32),
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--peers-returned"));
    let output = run(&["node", "--user", "x", "--pin-fraction", "2"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--pin-fraction"));
    let output = run(&["node", "--user", "x", "--cache-bytes", "lots"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("size"));
    let output = run(&["node", "--user", "x", "--tracker", "nonsense"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("NODE_ID@HOST:PORT"));
    // No origin to log in to: a clear error, not a hang.
    let output = run(&[
        "node",
        "--user",
        "x",
        "--origin",
        "http://127.0.0.1:9",
        "--no-p2p",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("reaching the origin"));
}
