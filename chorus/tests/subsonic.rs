//! OpenSubsonic on `chorus gateway`, black-box over HTTP against real origin and gateway
//! processes: credentials (app password as token and salt, API key), browsing, search and
//! the empty-query sync, albums in disc order, genres, lyrics, streams with ranges and
//! bitrate caps, stars, playlists, the play queue, scrobbles, form POST and `.view`, and
//! revocation.

#[path = "subsonic/world.rs"]
mod world;

use serde_json::{Value, json};
use testkit::PASSWORD;
use world::ids;

#[test]
fn subsonic_apps_browse_search_stream_and_keep_state_through_the_gateway() {
    let world = world::world();
    let (base, http, listener) = (&world.base, &world.http, &world.listener);
    let (first, second, single) = (&world.first, &world.second, &world.single);
    let (password, gateway_base) = (&world.password, &world.gateway_base);
    let client = world.client();
    let keyed = world.keyed();

    // Credentials.
    let ping = client.ok("ping", &[]);
    assert_eq!(
        (ping["version"].clone(), ping["openSubsonic"].clone()),
        (json!("1.16.1"), json!(true))
    );
    keyed.ok("ping", &[]);
    let wrong = world.with("listener", "not the password");
    assert_eq!(wrong.fails("ping", &[]), 40);
    let account_password = world.with("listener", PASSWORD);
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
    assert!(names.contains(&"transcodeOffset"));
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
    assert_eq!(
        list["albumList2"]["album"][0]["artistId"],
        artist_id.as_str()
    );
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
    let lyrics = client.ok("getLyricsBySongId", &[("id", first)]);
    let structured = &lyrics["lyricsList"]["structuredLyrics"][0];
    assert_eq!(structured["synced"], true);
    assert_eq!(
        structured["line"][1],
        json!({"start": 3500, "value": "goodbye night"})
    );
    let none = client.ok("getLyricsBySongId", &[("id", second)]);
    assert_eq!(none["lyricsList"]["structuredLyrics"], json!([]));
    let plain = client.ok(
        "getLyrics",
        &[("artist", "The Quiet Ones"), ("title", "First Light")],
    );
    assert_eq!(plain["lyrics"]["value"], "hello dawn\ngoodbye night");

    // Streams: the whole file decodes to the song's length; a range is its slice; a bitrate
    // cap picks a smaller rendition.
    let song = client.ok("getSong", &[("id", first)]);
    assert_eq!(song["song"]["duration"], 40);
    let full = client.get_raw("stream", &[("id", first)]);
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
    // A seek by time: a whole Ogg stream of what is left from about 30 s (its landing is
    // checked against the song's audio in subsonic_clients.rs, with ffmpeg); no seek past
    // the end.
    let cut = client.get_raw("stream", &[("id", first), ("timeOffset", "30")]);
    assert_eq!(cut.status(), 200);
    assert_eq!(cut.headers()["content-type"], "audio/ogg");
    let cut = cut.bytes().unwrap();
    assert_eq!(&cut[..4], b"OggS");
    assert!(
        cut.len() < full.len() / 3,
        "{} of {}",
        cut.len(),
        full.len()
    );
    let (frames, rate) = origin::ingest::decoded_frames(&cut).unwrap();
    let left_ms = frames * 1000 / u64::from(rate);
    assert!((10_000..=11_000).contains(&left_ms), "{left_ms} ms left");
    let whole = client.get_raw("stream", &[("id", first), ("timeOffset", "0")]);
    assert_eq!(&whole.bytes().unwrap()[..], &full[..]);
    assert_eq!(
        client.fails("stream", &[("id", first), ("timeOffset", "41")]),
        0
    );
    assert_eq!(
        client.fails("stream", &[("id", first), ("timeOffset", "-3")]),
        0
    );
    let capped = client.get_raw("stream", &[("id", first), ("maxBitRate", "8")]);
    let capped = capped.bytes().unwrap();
    assert!(
        capped.len() < full.len(),
        "{} < {}",
        capped.len(),
        full.len()
    );
    origin::ingest::decoded_frames(&capped).unwrap();
    let download = client.get_raw("download", &[("id", first)]);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("First Light.ogg")
    );

    // Cover art: the size asked for picks the nearest made, kept in memory after.
    let cover_id = format!("al-{}", world.album);
    for size in ["128", "300", "5000"] {
        let cover = client.get_raw("getCoverArt", &[("id", &cover_id), ("size", size)]);
        assert_eq!(cover.headers()["content-type"], "image/jpeg");
        let bytes = cover.bytes().unwrap();
        assert_eq!(&bytes[..2], &[0xff, 0xd8], "a JPEG");
    }
    let small = client
        .get_raw("getCoverArt", &[("id", &cover_id), ("size", "100")])
        .bytes()
        .unwrap();
    let large = client
        .get_raw("getCoverArt", &[("id", &cover_id)])
        .bytes()
        .unwrap();
    assert!(
        small.len() < large.len(),
        "{} < {}",
        small.len(),
        large.len()
    );
    let song_cover = client.get_raw("getCoverArt", &[("id", &format!("tr-{first}"))]);
    assert_eq!(
        song_cover.headers()["content-type"],
        "image/jpeg",
        "a song shows its album's"
    );
    assert_eq!(
        client.fails("getCoverArt", &[("id", &format!("tr-{single}"))]),
        70
    );
    assert_eq!(client.fails("getCoverArt", &[("id", "nonsense")]), 70);

    // Stars are the library.
    client.ok("star", &[("id", first), ("artistId", &artist_id)]);
    let starred = client.ok("getStarred2", &[]);
    assert_eq!(ids(&starred["starred2"]["song"]), [first.as_str()]);
    assert_eq!(ids(&starred["starred2"]["artist"]), [artist_id.as_str()]);
    let starred_albums = client.ok("getAlbumList2", &[("type", "starred")]);
    assert_eq!(
        ids(&starred_albums["albumList2"]["album"]),
        [album_id.as_str()]
    );
    client.ok("unstar", &[("id", first)]);
    let starred = client.ok("getStarred", &[]);
    assert!(ids(&starred["starred"]["song"]).is_empty());

    // Playlists.
    let created = client.ok(
        "createPlaylist",
        &[("name", "Mix"), ("songId", first), ("songId", second)],
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
            ("songIdToAdd", single),
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
            ("id", first),
            ("id", second),
            ("current", second),
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
        .bearer_auth(listener)
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
            &[("id", first), ("time", &now), ("submission", "true")],
        );
    }
    client.ok("scrobble", &[("id", second), ("submission", "false")]);

    // Unknown methods are 404 with a Subsonic error.
    assert_eq!(client.get_raw("getPodcasts", &[]).status(), 404);

    // Revoking the app password logs its apps out at once; the API key goes on.
    let revoked = http
        .delete(format!(
            "{base}/v1/me/app-passwords/{}",
            password["id"].as_str().unwrap()
        ))
        .bearer_auth(listener)
        .send()
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(client.fails("ping", &[]), 40);
    keyed.ok("ping", &[]);
}
