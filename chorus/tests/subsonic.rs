//! OpenSubsonic on `chorus gateway`, black-box over HTTP against real origin and gateway
//! processes: credentials (app password as token and salt, API key), browsing, search and
//! the empty-query sync, albums in disc order, genres, lyrics, streams with ranges and
//! bitrate caps, stars, playlists, the play queue, scrobbles, form POST and `.view`, and
//! revocation.

use std::process::Command;

use serde_json::{Value, json};

use api::accounts::Role;
use api::catalog::TrackMetadata;
use testkit::PASSWORD;
use testkit::chorus::OriginProcess;
use testkit::http::{login, sign_up, upload_synth};

/// A Subsonic client of one gateway: `u` with token and salt (a new salt per request, as
/// py-sonic does), or an API key.
struct Client {
    http: reqwest::blocking::Client,
    base: String,
    user: String,
    password: String,
    api_key: Option<String>,
}

impl Client {
    fn auth(&self) -> Vec<(String, String)> {
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

    fn get_raw(&self, method: &str, params: &[(&str, &str)]) -> reqwest::blocking::Response {
        let mut query = self.auth();
        query.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.http
            .get(format!("{}/rest/{method}", self.base))
            .query(&query)
            .send()
            .unwrap()
    }

    /// The `subsonic-response` of a JSON call.
    fn call(&self, method: &str, params: &[(&str, &str)]) -> Value {
        let response = self.get_raw(method, params);
        assert_eq!(response.status(), 200, "{method}");
        let body: Value = response.json().unwrap();
        body["subsonic-response"].clone()
    }

    /// A call that must succeed: its body.
    fn ok(&self, method: &str, params: &[(&str, &str)]) -> Value {
        let answer = self.call(method, params);
        assert_eq!(answer["status"], "ok", "{method} {params:?}: {answer}");
        answer
    }

    /// A call that must fail: its Subsonic error code.
    fn fails(&self, method: &str, params: &[(&str, &str)]) -> i64 {
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

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn subsonic_apps_browse_search_stream_and_keep_state_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let origin = OriginProcess::new(env!("CARGO_BIN_EXE_chorus"), &dir.path().join("origin"))
        .config("artist_signup = true\n")
        .tls()
        .start()
        .unwrap();
    let (base, http) = (&origin.base, origin.client());
    sign_up(&http, base, "artist", Some(Role::Artist));
    sign_up(&http, base, "listener", None);
    let artist = login(&http, base, "artist");
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
        let track = upload_synth(&http, base, &artist, seed, 40.0, &metadata);
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

    let mut gateway = Command::new(env!("CARGO_BIN_EXE_chorus"));
    gateway
        .args(["gateway", "--listen", "127.0.0.1:0", "--origin", base])
        .args(["--user", "listener"])
        .env("CHORUS_CONFIG_DIR", dir.path().join("config"))
        .env("CHORUS_PASSWORD", PASSWORD)
        .env("CHORUS_LOG", "error")
        .env("CHORUS_CA_CERT", origin.ca_path());
    let gateway = testkit::process::start(gateway, testkit::chorus::READY_WAIT).unwrap();
    let gateway_base = gateway.field("http").unwrap();
    let client = Client {
        http: reqwest::blocking::Client::new(),
        base: gateway_base.to_string(),
        user: "listener".into(),
        password: password["password"].as_str().unwrap().into(),
        api_key: None,
    };
    let keyed = Client {
        api_key: Some(key["api_key"].as_str().unwrap().into()),
        ..Client {
            http: client.http.clone(),
            base: client.base.clone(),
            user: String::new(),
            password: String::new(),
            api_key: None,
        }
    };

    // Credentials.
    let ping = client.ok("ping", &[]);
    assert_eq!(
        (ping["version"].clone(), ping["openSubsonic"].clone()),
        (json!("1.16.1"), json!(true))
    );
    keyed.ok("ping", &[]);
    let wrong = Client {
        password: "not the password".into(),
        ..Client {
            http: client.http.clone(),
            base: client.base.clone(),
            user: "listener".into(),
            password: String::new(),
            api_key: None,
        }
    };
    assert_eq!(wrong.fails("ping", &[]), 40);
    let account_password = Client {
        password: PASSWORD.into(),
        ..Client {
            http: client.http.clone(),
            base: client.base.clone(),
            user: "listener".into(),
            password: String::new(),
            api_key: None,
        }
    };
    assert_eq!(
        account_password.fails("ping", &[]),
        40,
        "never the account password"
    );
    assert_eq!(keyed.fails("ping", &[("u", "listener")]), 43);
    let bare = client
        .http
        .get(format!("{gateway_base}/rest/ping?f=json"))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(bare["subsonic-response"]["error"]["code"], 10);
    // XML by default, `.view` and form POST.
    let xml = client
        .http
        .get(format!("{gateway_base}/rest/ping.view"))
        .query(
            &client
                .auth()
                .into_iter()
                .filter(|(k, _)| k != "f")
                .collect::<Vec<_>>(),
        )
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        xml.contains("<subsonic-response xmlns=\"http://subsonic.org/restapi\" status=\"ok\""),
        "{xml}"
    );
    let mut form = client.auth();
    form.push(("id".into(), first.clone()));
    let posted: Value = client
        .http
        .post(format!("{gateway_base}/rest/getSong.view"))
        .form(&form)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(posted["subsonic-response"]["song"]["title"], "First Light");
    let extensions = client.ok("getOpenSubsonicExtensions", &[]);
    let names: Vec<&str> = extensions["openSubsonicExtensions"]
        .as_array()
        .unwrap_or_else(|| panic!("{extensions}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"apiKeyAuthentication") && names.contains(&"songLyrics"));
    let user = client.ok("getUser", &[("username", "listener")]);
    assert_eq!(
        (
            user["user"]["username"].clone(),
            user["user"]["streamRole"].clone()
        ),
        (json!("listener"), json!(true))
    );
    assert_eq!(client.fails("getUser", &[("username", "artist")]), 50);
    assert_eq!(client.fails("getSong", &[("id", &"0".repeat(32))]), 70);
    assert_eq!(client.fails("getSong", &[]), 10);

    // Browsing.
    let artists = client.ok("getArtists", &[]);
    let index = &artists["artists"]["index"];
    assert_eq!(index[0]["name"], "Q", "\"The\" is ignored: {index}");
    let artist_id = index[0]["artist"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(index[0]["artist"][0]["albumCount"], 1);
    let indexes = client.ok("getIndexes", &[]);
    assert_eq!(
        indexes["indexes"]["index"][0]["artist"][0]["id"],
        artist_id.as_str()
    );
    let artist_view = client.ok("getArtist", &[("id", &artist_id)]);
    let album_id = artist_view["artist"]["album"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{artist_view}"))
        .to_string();
    let album = client.ok("getAlbum", &[("id", &album_id)]);
    assert_eq!(album["album"]["name"], "Night Songs");
    assert_eq!(
        ids(&album["album"]["song"]),
        [first.clone(), second.clone()],
        "by track number"
    );
    assert_eq!(album["album"]["songCount"], 2);
    assert_eq!(album["album"]["year"], 1999);
    let directory = client.ok("getMusicDirectory", &[("id", &artist_id)]);
    let children = directory["directory"]["child"].as_array().unwrap();
    assert_eq!(children.len(), 2, "one album and one single: {children:?}");
    let list = client.ok(
        "getAlbumList2",
        &[("type", "alphabeticalByName"), ("size", "10")],
    );
    assert_eq!(ids(&list["albumList2"]["album"]), [album_id.as_str()]);
    let list = client.ok("getAlbumList", &[("type", "byGenre"), ("genre", "Jazz")]);
    assert_eq!(ids(&list["albumList"]["album"]), [album_id.as_str()]);
    let list = client.ok(
        "getAlbumList2",
        &[("type", "byYear"), ("fromYear", "2000"), ("toYear", "2010")],
    );
    assert!(ids(&list["albumList2"]["album"]).is_empty());
    assert_eq!(client.fails("getAlbumList2", &[]), 10);
    let genres = client.ok("getGenres", &[]);
    assert_eq!(
        genres["genres"]["genre"],
        json!([
            {"songCount": 2, "albumCount": 1, "value": "Jazz"},
            {"songCount": 1, "albumCount": 0, "value": "Rock"},
        ])
    );
    let random = client.ok("getRandomSongs", &[("size", "10")]);
    let mut got = ids(&random["randomSongs"]["song"]);
    got.sort();
    let mut all = vec![first.clone(), second.clone(), single.clone()];
    all.sort();
    assert_eq!(got, all);

    // Search, and the empty query Symfonium syncs with: pages through everything once.
    let found = client.ok("search3", &[("query", "light")]);
    let mut hits = ids(&found["searchResult3"]["song"]);
    hits.sort();
    let mut lights = vec![first.clone(), second.clone()];
    lights.sort();
    assert_eq!(hits, lights);
    let mut synced = Vec::new();
    for offset in 0..4 {
        let page = client.ok(
            "search3",
            &[
                ("query", "\"\""),
                ("songCount", "1"),
                ("songOffset", &offset.to_string()),
                ("artistCount", "0"),
                ("albumCount", "0"),
            ],
        );
        synced.extend(ids(&page["searchResult3"]["song"]));
    }
    synced.sort();
    assert_eq!(synced, all);
    let found = client.ok("search2", &[("query", "night songs")]);
    assert_eq!(ids(&found["searchResult2"]["album"]), [album_id.as_str()]);

    // Lyrics.
    let lyrics = client.ok("getLyricsBySongId", &[("id", &first)]);
    let structured = &lyrics["lyricsList"]["structuredLyrics"][0];
    assert_eq!(structured["synced"], true);
    assert_eq!(
        structured["line"][1],
        json!({"start": 3500, "value": "goodbye night"})
    );
    let none = client.ok("getLyricsBySongId", &[("id", &second)]);
    assert_eq!(none["lyricsList"]["structuredLyrics"], json!([]));
    let plain = client.ok(
        "getLyrics",
        &[("artist", "The Quiet Ones"), ("title", "First Light")],
    );
    assert_eq!(plain["lyrics"]["value"], "hello dawn\ngoodbye night");

    // Streams: the whole file decodes to the song's length; a range is its slice; a bitrate
    // cap picks a smaller rendition.
    let song = client.ok("getSong", &[("id", &first)]);
    assert_eq!(song["song"]["duration"], 40);
    let full = client.get_raw("stream", &[("id", &first)]);
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "audio/ogg");
    let full = full.bytes().unwrap();
    let (frames, rate) = origin::ingest::decoded_frames(&full).unwrap();
    assert!((frames * 1000 / u64::from(rate)).abs_diff(40_000) < 60);
    assert_eq!(song["song"]["size"].as_u64().unwrap(), full.len() as u64);
    let mut query = client.auth();
    query.push(("id".into(), first.clone()));
    let part = client
        .http
        .get(format!("{gateway_base}/rest/stream"))
        .query(&query)
        .header("range", "bytes=1000-1999")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(&part.bytes().unwrap()[..], &full[1000..2000]);
    let capped = client.get_raw("stream", &[("id", &first), ("maxBitRate", "8")]);
    let capped = capped.bytes().unwrap();
    assert!(
        capped.len() < full.len(),
        "{} < {}",
        capped.len(),
        full.len()
    );
    origin::ingest::decoded_frames(&capped).unwrap();
    let download = client.get_raw("download", &[("id", &first)]);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("First Light.ogg")
    );

    // Stars are the library.
    client.ok("star", &[("id", &first), ("artistId", &artist_id)]);
    let starred = client.ok("getStarred2", &[]);
    assert_eq!(ids(&starred["starred2"]["song"]), [first.as_str()]);
    assert_eq!(ids(&starred["starred2"]["artist"]), [artist_id.as_str()]);
    let starred_albums = client.ok("getAlbumList2", &[("type", "starred")]);
    assert_eq!(
        ids(&starred_albums["albumList2"]["album"]),
        [album_id.as_str()]
    );
    client.ok("unstar", &[("id", &first)]);
    let starred = client.ok("getStarred", &[]);
    assert!(ids(&starred["starred"]["song"]).is_empty());

    // Playlists.
    let created = client.ok(
        "createPlaylist",
        &[("name", "Mix"), ("songId", &first), ("songId", &second)],
    );
    let playlist_id = created["playlist"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        ids(&created["playlist"]["entry"]),
        [first.clone(), second.clone()]
    );
    client.ok(
        "updatePlaylist",
        &[
            ("playlistId", &playlist_id),
            ("name", "Evening mix"),
            ("songIndexToRemove", "0"),
            ("songIdToAdd", &single),
        ],
    );
    let playlist = client.ok("getPlaylist", &[("id", &playlist_id)]);
    assert_eq!(playlist["playlist"]["name"], "Evening mix");
    assert_eq!(
        ids(&playlist["playlist"]["entry"]),
        [second.clone(), single.clone()]
    );
    assert_eq!(playlist["playlist"]["duration"], 80);
    let playlists = client.ok("getPlaylists", &[]);
    assert_eq!(
        ids(&playlists["playlists"]["playlist"]),
        [playlist_id.as_str()]
    );
    client.ok("deletePlaylist", &[("id", &playlist_id)]);
    assert_eq!(client.fails("getPlaylist", &[("id", &playlist_id)]), 70);

    // The play queue is /v1/me/player: what one app saves another reads.
    client.ok(
        "savePlayQueue",
        &[
            ("id", &first),
            ("id", &second),
            ("current", &second),
            ("position", "12345"),
        ],
    );
    let queue = keyed.ok("getPlayQueue", &[]);
    assert_eq!(queue["playQueue"]["current"], second.as_str());
    assert_eq!(queue["playQueue"]["position"], 12345);
    assert_eq!(
        ids(&queue["playQueue"]["entry"]),
        [first.clone(), second.clone()]
    );
    let player: Value = http
        .get(format!("{base}/v1/me/player"))
        .bearer_auth(&listener)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (player["index"].clone(), player["device"].clone()),
        (json!(1), json!("chorus-test"))
    );

    // Scrobbles are listening events (sent twice, counted once).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    for _ in 0..2 {
        client.ok(
            "scrobble",
            &[("id", &first), ("time", &now), ("submission", "true")],
        );
    }
    client.ok("scrobble", &[("id", &second), ("submission", "false")]);

    // Unknown methods are 404 with a Subsonic error.
    assert_eq!(client.get_raw("getPodcasts", &[]).status(), 404);

    // Revoking the app password logs its apps out at once; the API key goes on.
    let revoked = http
        .delete(format!(
            "{base}/v1/me/app-passwords/{}",
            password["id"].as_str().unwrap()
        ))
        .bearer_auth(&listener)
        .send()
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(client.fails("ping", &[]), 40);
    keyed.ok("ping", &[]);
}
