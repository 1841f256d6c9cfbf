//! Independent Subsonic clients against real origin and gateway processes: py-sonic (PyPI;
//! the app password as token and salt, form POST and GET) and the npm package subsonic-api
//! (an API key, GET and POST) drive every method the gateway serves; every XML answer is
//! checked element by element against the Subsonic schema's rules (`subsonic/schema.rs`);
//! a stream fetched through Subsonic decodes in ffprobe to the song's length.
//!
//! `scripts/setup` installs the clients (into `CHORUS_TOOLS`, default
//! `~/.cache/chorus-tools`) and ffmpeg; without them this test says so and passes, except
//! in CI, where they are required.

#[path = "subsonic/schema.rs"]
mod schema;
#[path = "subsonic/world.rs"]
mod world;

use std::path::PathBuf;
use std::process::Command;

fn tools() -> PathBuf {
    match std::env::var_os("CHORUS_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/chorus-tools"),
    }
}

/// Runs a client script; `None` when its tool is not installed outside CI.
fn run_client(what: &str, mut command: Command) -> Option<String> {
    let output = match command.output() {
        Ok(output) => output,
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!("{what} not installed ({error}): run scripts/setup; skipped");
            return None;
        }
        Err(error) => panic!("{what} is required in CI (scripts/setup installs it): {error}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success()
        && std::env::var_os("CI").is_none()
        && (stderr.contains("ModuleNotFoundError") || stderr.contains("Cannot find module"))
    {
        eprintln!("{what} not installed: run scripts/setup; skipped\n{stderr}");
        return None;
    }
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{stderr}"
    );
    Some(stdout)
}

/// Sample rate the seek check decodes at.
const PCM_HZ: usize = 8_000;

/// The audio at `url` decoded by ffmpeg to mono 16-bit samples at [`PCM_HZ`]; `None` without
/// ffmpeg outside CI.
fn pcm(url: &str) -> Option<Vec<i16>> {
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args([
        "-v", "error", "-i", url, "-f", "s16le", "-ac", "1", "-ar", "8000", "-",
    ]);
    let output = match ffmpeg.output() {
        Ok(output) => output,
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!("ffmpeg not installed ({error}): run scripts/setup; skipped");
            return None;
        }
        Err(error) => panic!("ffmpeg is required in CI (scripts/setup installs it): {error}"),
    };
    assert!(
        output.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(
        output
            .stdout
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
            .collect(),
    )
}

/// Where in `full` (ms) the audio of `cut` begins: half a second of `cut` (from 0.3 s, past
/// the decoder's warm-up) against every position within two seconds before `near_ms` and half
/// a second after, by normalised correlation, which must be a clear match.
fn landing_ms(full: &[i16], cut: &[i16], near_ms: usize) -> u64 {
    let (skip, len) = (PCM_HZ * 3 / 10, PCM_HZ / 2);
    let window: Vec<f64> = cut[skip..skip + len]
        .iter()
        .map(|&s| f64::from(s))
        .collect();
    let energy = window.iter().map(|s| s * s).sum::<f64>().sqrt();
    let near = near_ms * PCM_HZ / 1000;
    let (lo, hi) = (near - 2 * PCM_HZ, (near + PCM_HZ / 2).min(full.len() - len));
    let (best, score) = (lo..=hi)
        .map(|at| {
            let there = &full[at..at + len];
            let dot: f64 = there
                .iter()
                .zip(&window)
                .map(|(&a, b)| f64::from(a) * b)
                .sum();
            let norm = there
                .iter()
                .map(|&a| f64::from(a).powi(2))
                .sum::<f64>()
                .sqrt();
            (at, dot / (norm * energy).max(1.0))
        })
        .fold(
            (0, f64::MIN),
            |best, next| if next.1 > best.1 { next } else { best },
        );
    assert!(
        score > 0.8,
        "no clear match for the cut audio (best {score:.2})"
    );
    ((best - skip) * 1000 / PCM_HZ) as u64
}

fn env_for(command: &mut Command, world: &world::World) {
    let url = reqwest::Url::parse(&world.gateway_base).unwrap();
    command
        .env("CHORUS_SUBSONIC_URL", &world.gateway_base)
        .env(
            "CHORUS_SUBSONIC_HOST",
            format!("http://{}", url.host_str().unwrap()),
        )
        .env("CHORUS_SUBSONIC_PORT", url.port().unwrap().to_string())
        .env("CHORUS_SUBSONIC_USER", "listener")
        .env(
            "CHORUS_SUBSONIC_PASSWORD",
            world.password["password"].as_str().unwrap(),
        )
        .env(
            "CHORUS_SUBSONIC_API_KEY",
            world.key["api_key"].as_str().unwrap(),
        )
        .env("CHORUS_SUBSONIC_FIRST", &world.first)
        .env("CHORUS_SUBSONIC_SECOND", &world.second)
        .env("CHORUS_SUBSONIC_SINGLE", &world.single);
}

#[test]
fn independent_clients_and_the_schema_agree_with_the_gateway() {
    let world = world::world();
    let client = world.client();
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/subsonic");

    // Every answer's XML, element by element. State first, so lists are not empty.
    let first = world.first.as_str();
    client.ok("star", &[("id", first)]);
    let created = client.ok("createPlaylist", &[("name", "xml"), ("songId", first)]);
    let playlist = created["playlist"]["id"].as_str().unwrap().to_string();
    client.ok(
        "savePlayQueue",
        &[("id", first), ("current", first), ("position", "10")],
    );
    let artists = client.ok("getArtists", &[]);
    let artist = artists["artists"]["index"][0]["artist"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let calls: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("ping", vec![]),
        ("getLicense", vec![]),
        ("getOpenSubsonicExtensions", vec![]),
        ("getUser", vec![("username", "listener")]),
        ("getMusicFolders", vec![]),
        ("getArtists", vec![]),
        ("getIndexes", vec![]),
        ("getArtist", vec![("id", &artist)]),
        ("getAlbum", vec![("id", &world.album)]),
        ("getSong", vec![("id", first)]),
        ("getMusicDirectory", vec![("id", &artist)]),
        ("getMusicDirectory", vec![("id", &world.album)]),
        ("getAlbumList", vec![("type", "newest")]),
        ("getAlbumList", vec![("type", "starred")]),
        ("getAlbumList2", vec![("type", "alphabeticalByName")]),
        ("getAlbumList2", vec![("type", "starred")]),
        ("getRandomSongs", vec![]),
        ("getGenres", vec![]),
        ("search2", vec![("query", "light")]),
        ("search3", vec![("query", "light")]),
        ("search3", vec![("query", "")]),
        (
            "getLyrics",
            vec![("artist", "The Quiet Ones"), ("title", "First Light")],
        ),
        ("getLyricsBySongId", vec![("id", first)]),
        ("getPlaylists", vec![]),
        ("getPlaylist", vec![("id", &playlist)]),
        ("getStarred", vec![]),
        ("getStarred2", vec![]),
        ("getPlayQueue", vec![]),
        ("getSong", vec![("id", "nonsense")]),
        ("getAlbumList2", vec![]),
    ];
    let mut problems = Vec::new();
    for (method, params) in &calls {
        let mut query: Vec<(String, String)> = client
            .auth()
            .into_iter()
            .filter(|(key, _)| key != "f")
            .collect();
        query.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let xml = client
            .http
            .get(format!("{}/rest/{method}", world.gateway_base))
            .query(&query)
            .send()
            .unwrap()
            .text()
            .unwrap();
        for problem in schema::violations(&xml) {
            problems.push(format!("{method} {params:?}: {problem}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    client.ok("deletePlaylist", &[("id", &playlist)]);
    client.ok("unstar", &[("id", first)]);

    // A stream through Subsonic decodes in ffprobe to the song's length.
    let mut query: Vec<(String, String)> = client.auth();
    query.push(("id".into(), first.to_string()));
    let url =
        reqwest::Url::parse_with_params(&format!("{}/rest/stream", world.gateway_base), &query)
            .unwrap();
    let mut ffprobe = Command::new("ffprobe");
    ffprobe.args([
        "-v",
        "error",
        "-show_entries",
        "format=duration",
        "-of",
        "csv=p=0",
        url.as_str(),
    ]);
    if let Some(out) = run_client("ffprobe", ffprobe) {
        let seconds: f64 = out
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("ffprobe said {out:?}"));
        assert!((seconds - 40.0).abs() < 0.1, "ffprobe: {seconds} s");
    }

    // A seek by time (OpenSubsonic transcodeOffset), as ffmpeg-based players make it: the
    // stream from 25 s decodes to the song's own audio from just before 25 s, and its length
    // is what is left of the song from there.
    let mut at_25 = query.clone();
    at_25.push(("timeOffset".into(), "25".into()));
    let cut_url =
        reqwest::Url::parse_with_params(&format!("{}/rest/stream", world.gateway_base), &at_25)
            .unwrap();
    if let (Some(full), Some(cut)) = (pcm(url.as_str()), pcm(cut_url.as_str())) {
        let landed_ms = landing_ms(&full, &cut, 25_000);
        assert!(
            (24_000..=25_100).contains(&landed_ms),
            "the cut stream starts at {landed_ms} ms of the song"
        );
        let cut_ms = cut.len() as u64 * 1000 / PCM_HZ as u64;
        assert!(
            (cut_ms + landed_ms).abs_diff(40_000) < 150,
            "{cut_ms} ms decoded from {landed_ms} ms"
        );
        // Its granule positions agree: ffprobe reads the length from the last page (of a
        // file: a cut stream has a length but takes no ranges, so not over HTTP).
        let saved = world.dir.path().join("cut.ogg");
        let mut get = reqwest::blocking::get(cut_url.as_str()).unwrap();
        let announced = get.content_length();
        let mut file = std::fs::File::create(&saved).unwrap();
        let copied = std::io::copy(&mut get, &mut file).unwrap();
        assert_eq!(announced, Some(copied), "Content-Length is the length");
        let mut ffprobe = Command::new("ffprobe");
        ffprobe.args(["-v", "error", "-show_entries", "format=duration"]);
        ffprobe.args(["-of", "csv=p=0"]).arg(&saved);
        let said = run_client("ffprobe", ffprobe).unwrap_or_default();
        let seconds: f64 = said.trim().parse().unwrap_or(0.0);
        assert!(
            ((seconds * 1000.0) as u64 + landed_ms).abs_diff(40_000) < 150,
            "ffprobe says the cut stream lasts {said:?} s from {landed_ms} ms"
        );
    }

    // py-sonic: token and salt, POST then GET.
    let python = tools().join("venv/bin/python");
    let mut pysonic = Command::new(&python);
    pysonic.arg(here.join("pysonic_check.py"));
    env_for(&mut pysonic, &world);
    if let Some(out) = run_client("py-sonic", pysonic) {
        assert!(out.contains("py-sonic over POST: ok") && out.contains("py-sonic over GET: ok"));
    }

    // subsonic-api: an API key, GET then POST.
    let mut node = Command::new("node");
    node.arg(here.join("subsonic_api_check.mjs"))
        .env("NODE_PATH", tools().join("npm/node_modules"));
    env_for(&mut node, &world);
    if let Some(out) = run_client("subsonic-api (node)", node) {
        assert!(
            out.contains("subsonic-api over GET: ok") && out.contains("subsonic-api over POST: ok")
        );
    }
}
