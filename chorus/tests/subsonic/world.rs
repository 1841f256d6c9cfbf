//! The world the Subsonic tests share: real origin and gateway processes, three songs (two on
//! an album, one with synced lyrics, one single), a listener with an app password and an API
//! key, and a small Subsonic client of the gateway. [`world_with_a_peer`] adds a tracker and
//! another listener's gateway that holds "First Light" whole and shares it.
#![allow(dead_code)]

use std::process::Command;

use serde_json::{Value, json};

use api::accounts::Role;
use api::catalog::TrackMetadata;
use testkit::PASSWORD;
use testkit::chorus::OriginProcess;
use testkit::http::{login, sign_up, upload_synth};

/// A Subsonic client of one gateway: `u` with token and salt (a new salt per request, as
/// py-sonic does), or an API key.
pub struct Client {
    pub http: reqwest::blocking::Client,
    pub base: String,
    pub user: String,
    pub password: String,
    pub api_key: Option<String>,
}

impl Client {
    pub fn auth(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            ("v".into(), "1.16.1".into()),
            ("c".into(), "chorus-test".into()),
            ("f".into(), "json".into()),
        ];
        match &self.api_key {
            Some(key) => pairs.push(("apiKey".into(), key.clone())),
            None => {
                use md5::Digest;
                let salt = hex::encode(rand_bytes());
                let token = hex::encode(md5::Md5::digest(format!("{}{salt}", self.password)));
                pairs.push(("u".into(), self.user.clone()));
                pairs.push(("t".into(), token));
                pairs.push(("s".into(), salt));
            }
        }
        pairs
    }

    pub fn get_raw(&self, method: &str, params: &[(&str, &str)]) -> reqwest::blocking::Response {
        let mut query = self.auth();
        query.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.http
            .get(format!("{}/rest/{method}", self.base))
            .query(&query)
            .send()
            .unwrap()
    }

    /// The `subsonic-response` of a JSON call.
    pub fn call(&self, method: &str, params: &[(&str, &str)]) -> Value {
        let response = self.get_raw(method, params);
        assert_eq!(response.status(), 200, "{method}");
        let body: Value = response.json().unwrap();
        body["subsonic-response"].clone()
    }

    /// A call that must succeed: its body.
    pub fn ok(&self, method: &str, params: &[(&str, &str)]) -> Value {
        let answer = self.call(method, params);
        assert_eq!(answer["status"], "ok", "{method} {params:?}: {answer}");
        answer
    }

    /// A call that must fail: its Subsonic error code.
    pub fn fails(&self, method: &str, params: &[(&str, &str)]) -> i64 {
        let answer = self.call(method, params);
        assert_eq!(answer["status"], "failed", "{method} {params:?}: {answer}");
        answer["error"]["code"].as_i64().unwrap()
    }
}

fn rand_bytes() -> [u8; 8] {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let counter = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (nanos as u64 ^ counter.rotate_left(32)).to_le_bytes()
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Everything a Subsonic test needs, running.
pub struct World {
    pub dir: tempfile::TempDir,
    pub origin: testkit::chorus::RunningOrigin,
    pub gateway: testkit::process::Process,
    pub gateway_base: String,
    /// The origin's HTTP client and base URL.
    pub http: reqwest::blocking::Client,
    pub base: String,
    /// The listener's account session.
    pub listener: String,
    /// `POST /v1/me/app-passwords` answers: an app password and an API key.
    pub password: Value,
    pub key: Value,
    /// Song ids: "First Light" (album track 1, synced lyrics), "Second Light" (track 2),
    /// "Loud Single" (no album).
    pub first: String,
    pub second: String,
    pub single: String,
    /// The album's id (it has a cover).
    pub album: String,
    /// With a peer: the tracker, and the gateway of the listener "sharer", which holds
    /// "First Light" whole and is listed for it.
    pub tracker: Option<testkit::process::Process>,
    pub sharer: Option<testkit::process::Process>,
}

impl World {
    /// A client logging in with the app password (token and salt).
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::blocking::Client::new(),
            base: self.gateway_base.clone(),
            user: "listener".into(),
            password: self.password["password"].as_str().unwrap().into(),
            api_key: None,
        }
    }

    /// A client logging in with the API key.
    pub fn keyed(&self) -> Client {
        Client {
            api_key: Some(self.key["api_key"].as_str().unwrap().into()),
            user: String::new(),
            password: String::new(),
            ..self.client()
        }
    }

    /// A client with this user and password.
    pub fn with(&self, user: &str, password: &str) -> Client {
        Client {
            user: user.into(),
            password: password.into(),
            ..self.client()
        }
    }
}

/// Starts the world.
pub fn world() -> World {
    build(false, "")
}

/// Starts the world with more lines in the origin's TOML config.
pub fn world_configured(extra: &str) -> World {
    build(false, extra)
}

/// Starts the world with a tracker and a second listener's gateway sharing "First Light":
/// the tracker lists it for that song before this returns.
pub fn world_with_a_peer() -> World {
    build(true, "")
}

fn build(with_peer: bool, extra: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let chorus = std::path::Path::new(env!("CARGO_BIN_EXE_chorus"));
    let mut config = format!("artist_signup = true\n{extra}");
    let tracker = with_peer.then(|| {
        // The origin's key is made first, so the tracker can trust it before the origin runs.
        let origin_id = origin::server::origin_identity(&dir.path().join("origin"))
            .unwrap()
            .node_id();
        let mut tracker = testkit::chorus::command(chorus);
        tracker
            .args([
                "tracker",
                "--listen",
                "127.0.0.1:0",
                "--status-every-s",
                "0",
            ])
            .args(["--issuer", &origin_id.to_hex(), "--data"])
            .arg(dir.path().join("tracker"));
        let tracker = testkit::process::start(tracker, testkit::chorus::READY_WAIT).unwrap();
        config.push_str(&format!(
            "tracker = \"{}\"\n",
            tracker.field("address").unwrap()
        ));
        tracker
    });
    let origin = OriginProcess::new(chorus, &dir.path().join("origin"))
        .config(&config)
        .tls()
        .admin("operator")
        .start()
        .unwrap();
    let (base, http) = (&origin.base.clone(), origin.client());
    sign_up(&http, base, "artist", Some(Role::Artist));
    sign_up(&http, base, "listener", None);
    // Logged in for each step: a world may run with access tokens of a few seconds.
    let artist = || login(&http, base, "artist");
    let upload = |seed, title: &str, album: Option<&str>, number, genre: &str, year, lyrics| {
        let metadata = TrackMetadata {
            title: Some(title.into()),
            artist: Some("The Quiet Ones".into()),
            album: album.map(str::to_string),
            genre: Some(genre.into()),
            track_number: number,
            year: Some(year),
            lyrics,
            ..TrackMetadata::default()
        };
        let track = upload_synth(&http, base, &artist(), seed, 40.0, &metadata);
        track["id"].as_str().unwrap().to_string()
    };
    // Uploaded out of order: the album lists them by number.
    let second = upload(
        1,
        "Second Light",
        Some("Night Songs"),
        Some(2),
        "Jazz",
        1999,
        None,
    );
    let first = upload(
        2,
        "First Light",
        Some("Night Songs"),
        Some(1),
        "Jazz",
        1999,
        Some("[00:01.00]hello dawn\n[00:03.50]goodbye night".into()),
    );
    let single = upload(3, "Loud Single", None, None, "Rock", 2005, None);
    // The album gets a cover (its files carry none).
    let track: Value = http
        .get(format!("{base}/v1/tracks/{first}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let album = track["album_id"].as_str().unwrap().to_string();
    let cover = http
        .put(format!("{base}/v1/albums/{album}/image"))
        .bearer_auth(artist())
        .body(testkit::picture::bmp(700, 90))
        .send()
        .unwrap();
    assert_eq!(cover.status(), 200, "{:?}", cover.text());

    let listener = login(&http, base, "listener");
    let made = |body: Value| {
        let response = http
            .post(format!("{base}/v1/me/app-passwords"))
            .bearer_auth(&listener)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().unwrap()
    };
    let password = made(json!({"name": "test app"}));
    let key = made(json!({"name": "web", "kind": "api_key"}));

    let gateway = gateway(
        base,
        "listener",
        &dir.path().join("config"),
        origin.ca_path(),
    );
    let gateway_base = gateway.field("http").unwrap();
    let sharer = with_peer.then(|| {
        let sharer = share(&dir, &http, base, origin.ca_path(), &first);
        let listed = tracker
            .as_ref()
            .map(|tracker| listed_for(&http, base, &listener, &first, tracker));
        assert!(listed.is_some());
        sharer
    });
    World {
        gateway_base: gateway_base.to_string(),
        base: base.to_string(),
        http,
        listener,
        password,
        key,
        first,
        second,
        single,
        album,
        gateway,
        origin,
        dir,
        tracker,
        sharer,
    }
}

/// `chorus gateway` for `user` of the origin at `base` (whose CA is `ca`), its configuration in
/// `config`.
fn gateway(
    base: &str,
    user: &str,
    config: &std::path::Path,
    ca: &std::path::Path,
) -> testkit::process::Process {
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_chorus"));
    gateway
        .args(["gateway", "--listen", "127.0.0.1:0", "--origin", base])
        .args(["--user", user])
        .env("CHORUS_CONFIG_DIR", config)
        .env("CHORUS_PASSWORD", PASSWORD)
        .env("CHORUS_LOG", "error")
        .env("CHORUS_CA_CERT", ca);
    testkit::process::start(gateway, testkit::chorus::READY_WAIT).unwrap()
}

/// The gateway of a new listener "sharer", after it fetched `track` whole.
fn share(
    dir: &tempfile::TempDir,
    http: &reqwest::blocking::Client,
    base: &str,
    ca: &std::path::Path,
    track: &str,
) -> testkit::process::Process {
    sign_up(http, base, "sharer", None);
    let gateway = gateway(base, "sharer", &dir.path().join("sharer"), ca);
    let song = reqwest::blocking::get(format!("{}/tracks/{track}", gateway.field("http").unwrap()))
        .unwrap();
    assert_eq!(song.status(), 200);
    assert!(!song.bytes().unwrap().is_empty());
    gateway
}

/// Waits (at most 30 s) until `tracker` lists a whole holder of `track`'s default rendition, asked
/// with a license the listener `token` was granted for a node of its own.
fn listed_for(
    http: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    track: &str,
    tracker: &testkit::process::Process,
) {
    use protocol::wire::{PeerQuery, Request, Response};
    let me = protocol::Identity::from_secret_bytes(&[0x77; 32]);
    let grant: Value = http
        .post(format!("{base}/v1/tracks/{track}/play"))
        .bearer_auth(token)
        .json(&json!({"node_id": me.node_id().to_hex()}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let license = protocol::LicenseToken::from_bytes(
        &hex::decode(grant["license"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let rendition = grant["rendition_id"].as_str().unwrap().parse().unwrap();
    let address = tracker.field("address").unwrap();
    let (id, addr) = address.split_once('@').unwrap();
    let (id, addr): (protocol::NodeId, std::net::SocketAddr) =
        (id.parse().unwrap(), addr.parse().unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let endpoint = transport::Endpoint::bind(
            &me,
            "127.0.0.1:0".parse().unwrap(),
            transport::Limits::default(),
        )
        .unwrap();
        let peer = endpoint.connect(id, addr).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let query = Request::PeerQuery(PeerQuery {
                rendition,
                want: 10,
                license: license.clone(),
            });
            match peer.request_one(&query).await.unwrap() {
                // Whole: the sharer announced it as soon as it held the last chunk.
                Response::PeerList(list) if list.peers.iter().any(|p| p.holding.is_none()) => {
                    return;
                }
                Response::PeerList(_) => {}
                other => panic!("{other:?}"),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the sharer was never listed for {track}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
}
