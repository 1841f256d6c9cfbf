//! Platform benchmarks on a large synthetic catalog: search and type-ahead latency, and
//! playlist reads, each against `GET /healthz` (the HTTP stack alone) in the same run.
//!
//! The catalog is metadata only (titles, artists, albums, genres, Zipf play counts),
//! imported in bulk: a million tracks of audio would take days to ingest and says nothing
//! about search.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::ensure;
use clap::Args;
use origin::config::OriginConfig;
use origin::store::{Store, TrackRecord};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::origin::runtimes;
use super::{Common, median, percentile, print_table, progress, progress_done};

/// Flags of `chorus bench search`.
#[derive(Debug, Args)]
pub struct SearchBenchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Tracks in the synthetic catalog.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1_000..=10_000_000))]
    pub tracks: u32,
    /// Queries of each kind per round.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    pub queries: u32,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,
    /// Catalog seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Flags of `chorus bench playlists`.
#[derive(Debug, Args)]
pub struct PlaylistBenchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Tracks in the synthetic catalog.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1_000..=10_000_000))]
    pub tracks: u32,
    /// Tracks in the playlist read.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub playlist_tracks: u32,
    /// Tracks per page read.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub page: u32,
    /// Reads per client per round.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    pub requests: u32,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,
    /// Adds each of two devices makes at once in the lost-update check.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub edits: u32,
    /// Catalog seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Pronounceable made-up words: the vocabulary titles and names are drawn from.
fn vocabulary(rng: &mut ChaCha8Rng, size: usize) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "pr",
        "r", "s", "sh", "st", "t", "tr", "v", "w", "z",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "oo", "y"];
    const CODAS: &[&str] = &["", "", "n", "r", "s", "l", "m", "t", "nd", "ng"];
    let mut words = std::collections::BTreeSet::new();
    while words.len() < size {
        let syllables = rng.gen_range(1..=3);
        let mut word = String::new();
        for _ in 0..syllables {
            word.push_str(ONSETS[rng.gen_range(0..ONSETS.len())]);
            word.push_str(VOWELS[rng.gen_range(0..VOWELS.len())]);
        }
        word.push_str(CODAS[rng.gen_range(0..CODAS.len())]);
        if word.len() >= 3 {
            words.insert(word);
        }
    }
    let mut words: Vec<String> = words.into_iter().collect();
    // Deterministic order independent of the set's.
    for at in (1..words.len()).rev() {
        words.swap(at, rng.gen_range(0..=at));
    }
    words
}

fn phrase(rng: &mut ChaCha8Rng, words: &[String], from: usize, to: usize) -> String {
    let count = rng.gen_range(from..=to);
    let mut out: Vec<String> = Vec::with_capacity(count);
    for _ in 0..count {
        // Zipf-ish word choice: common words are common.
        let rank = (words.len() as f64).powf(rng.r#gen::<f64>()) as usize - 1;
        let word = &words[rank.min(words.len() - 1)];
        let mut chars = word.chars();
        let capital: String = chars
            .next()
            .map(|c| c.to_ascii_uppercase())
            .into_iter()
            .chain(chars)
            .collect();
        out.push(capital);
    }
    out.join(" ")
}

/// A synthetic catalog: `tracks` tracks over tracks/20 artists and tracks/8 albums, 24
/// genres, Zipf(1) play counts. Deterministic in `seed`.
pub(crate) fn catalog(tracks: u32, seed: u64) -> Vec<(TrackRecord, u64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let words = vocabulary(&mut rng, 30_000);
    let artists: Vec<String> = (0..(tracks / 20).max(1))
        .map(|_| phrase(&mut rng, &words, 1, 2))
        .collect();
    let albums: Vec<String> = (0..(tracks / 8).max(1))
        .map(|_| phrase(&mut rng, &words, 1, 3))
        .collect();
    const GENRES: [&str; 24] = [
        "Rock",
        "Pop",
        "Jazz",
        "Blues",
        "Folk",
        "Metal",
        "Punk",
        "Soul",
        "Funk",
        "Disco",
        "House",
        "Techno",
        "Ambient",
        "Classical",
        "Opera",
        "Reggae",
        "Ska",
        "Country",
        "Gospel",
        "Latin",
        "Salsa",
        "Tango",
        "Hip Hop",
        "Grime",
    ];
    let mut out = Vec::with_capacity(tracks as usize);
    for n in 0..tracks {
        let album = rng.gen_range(0..albums.len());
        let artist = album % artists.len();
        let rank = n as f64 + 1.0;
        let plays = (1_000_000.0 / rank) as u64;
        out.push((
            TrackRecord {
                id: format!("{:032x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15 + 1),
                title: phrase(&mut rng, &words, 1, 4),
                artist: artists[artist].clone(),
                artist_id: format!("{:032x}", artist as u128 + (1 << 100)),
                album: Some(albums[album].clone()),
                album_id: Some(format!("{:032x}", album as u128 + (2 << 100))),
                genre: Some(GENRES[rng.gen_range(0..GENRES.len())].to_string()),
                markets: Vec::new(),
                duration_ms: rng.gen_range(90_000..400_000),
                loudness_lufs: rng.gen_range(-20.0..-6.0),
                tempo_bpm: Some(rng.gen_range(60.0..200.0)),
                gain_db: 0.0,
                owner: String::new(),
                created_at_ms: 0,
                renditions: Vec::new(),
                details: Default::default(),
            },
            plays,
        ));
    }
    out
}

/// Tracks imported into the embedded store before it is closed and reopened.
const IMPORT_SESSION_TRACKS: usize = 100_000;
/// Tracks per import call.
const IMPORT_BATCH_TRACKS: usize = 25_000;

/// Opens a store in `dir` and imports the catalog, with progress.
pub(crate) fn import(dir: &std::path::Path, tracks: u32, seed: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    progress(&format!("generating {tracks} tracks"));
    let catalog = catalog(tracks, seed);
    // The origin's key first, as `chorus origin` makes it: an origin refuses a database
    // without its key.
    origin::server::origin_identity(dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // The embedded store (sled) keeps what it writes in memory until it is closed, about
        // 10 KB a track here (10.6 GB for a million in one go), so the import closes and
        // reopens it every IMPORT_SESSION_TRACKS.
        let mut done = 0;
        for session in catalog.chunks(IMPORT_SESSION_TRACKS) {
            let store = Store::open_embedded(dir).await?;
            for part in session.chunks(IMPORT_BATCH_TRACKS) {
                store.catalog().import_tracks(part).await?;
                done += part.len();
                progress(&format!("importing the catalog: {done}/{tracks}"));
            }
        }
        anyhow::Ok(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

/// Sends every request in `paths` (split over `clients` back-to-back clients); returns
/// sorted latencies in ms and requests per second.
pub(crate) async fn hammer(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    paths: Arc<Vec<String>>,
    clients: u32,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients as usize {
        let (http, base, token, paths) = (
            http.clone(),
            base.to_string(),
            token.map(str::to_string),
            paths.clone(),
        );
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            for path in paths.iter().skip(client).step_by(clients as usize) {
                let sent = Instant::now();
                let mut request = http.get(format!("{base}{path}"));
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await?;
                let status = response.status();
                let _ = response.bytes().await?;
                ensure!(status.is_success(), "{path}: {status}");
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = tasks.join_next().await {
        all.extend(latencies??);
    }
    let per_s = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Ok((all, per_s))
}

fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One typo in the longest word of `title` (a swap of two letters inside it, or a letter
/// dropped from a long word).
fn typo(rng: &mut ChaCha8Rng, title: &str) -> String {
    let mut words: Vec<String> = title.split(' ').map(str::to_string).collect();
    let Some((longest, _)) = words.iter().enumerate().max_by_key(|(_, word)| word.len()) else {
        return title.to_string();
    };
    let mut chars: Vec<char> = words[longest].chars().collect();
    if chars.len() >= 8 && rng.gen_bool(0.5) {
        chars.remove(rng.gen_range(1..chars.len()));
    } else if chars.len() >= 4 {
        let at = rng.gen_range(1..chars.len() - 1);
        chars.swap(at, at + 1);
    }
    words[longest] = chars.into_iter().collect();
    words.join(" ")
}

/// `chorus bench search`: typo-tolerant search and type-ahead over a synthetic catalog on
/// loopback, against `GET /healthz`, with the share of typo queries that still find their
/// track in the first ten.
pub fn run_search(args: &SearchBenchArgs) -> anyhow::Result<ExitCode> {
    let data = tempfile::tempdir()?;
    let import_s = import(data.path(), args.tracks, args.seed)?;
    let (server, client) = runtimes()?;
    progress("building the search index");
    let started = Instant::now();
    let running = server.block_on(origin::server::start(bench_config(data.path())))?;
    let base = format!("http://{}", running.http_addr);
    let search = running.search().clone();
    client.block_on(search_ready(&base))?;
    let index_s = started.elapsed().as_secs_f64();
    let catalog = catalog(args.tracks, args.seed);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x5eed);
    let (mut searches, mut prefixes, mut wanted) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.queries {
        let (track, _) = &catalog[rng.gen_range(0..catalog.len())];
        let query = typo(&mut rng, &format!("{} {}", track.title, track.artist));
        searches.push(format!(
            "/v1/search?type=track&limit=10&q={}",
            encode(&query)
        ));
        wanted.push(track.id.clone());
        // Type-ahead: the title as typed so far, cut inside a word.
        let cut = rng.gen_range(3..=track.title.len().max(3));
        let typed: String = track.title.chars().take(cut).collect();
        prefixes.push(format!("/v1/search?limit=5&q={}", encode(&typed)));
    }
    drop(catalog);
    let health: Vec<String> = (0..args.queries).map(|_| "/healthz".to_string()).collect();
    let (searches, prefixes, health) = (Arc::new(searches), Arc::new(prefixes), Arc::new(health));
    let http = api::client::http_client_builder()?
        .pool_max_idle_per_host(256)
        .build()?;
    let result = client.block_on(async {
        // Found: is the intended track in the first ten despite the typo?
        progress("checking typo recall");
        let mut found = 0;
        for (path, id) in searches.iter().zip(&wanted).take(500) {
            let answer: api::search::SearchResults = http
                .get(format!("{base}{path}"))
                .send()
                .await?
                .json()
                .await?;
            let hit = answer.items.iter().any(|item| item.id == *id);
            found += usize::from(hit);
        }
        let recall = found as f64 / wanted.len().min(500) as f64;
        let (mut s50, mut s99, mut p50, mut p99, mut h50, mut h99, mut rate) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        // The same queries with every match scored (no early stop): the baseline.
        let (mut es50, mut es99, mut ep50, mut ep99) = (vec![], vec![], vec![], vec![]);
        for round in 1..=args.common.rounds {
            progress(&format!("search: round {round}/{}", args.common.rounds));
            let (latencies, per_s) =
                hammer(&http, &base, None, searches.clone(), args.clients).await?;
            s50.push(percentile(&latencies, 50.0));
            s99.push(percentile(&latencies, 99.0));
            rate.push(per_s);
            let (latencies, _) = hammer(&http, &base, None, prefixes.clone(), args.clients).await?;
            p50.push(percentile(&latencies, 50.0));
            p99.push(percentile(&latencies, 99.0));
            let (latencies, _) = hammer(&http, &base, None, health.clone(), args.clients).await?;
            h50.push(percentile(&latencies, 50.0));
            h99.push(percentile(&latencies, 99.0));
            progress(&format!(
                "search, every match scored: round {round}/{}",
                args.common.rounds
            ));
            search.set_pruning(false);
            let (latencies, _) = hammer(&http, &base, None, searches.clone(), args.clients).await?;
            es50.push(percentile(&latencies, 50.0));
            es99.push(percentile(&latencies, 99.0));
            let (latencies, _) = hammer(&http, &base, None, prefixes.clone(), args.clients).await?;
            ep50.push(percentile(&latencies, 50.0));
            ep99.push(percentile(&latencies, 99.0));
            search.set_pruning(true);
        }
        progress_done();
        anyhow::Ok((
            recall,
            median(&mut s50),
            median(&mut s99),
            median(&mut p50),
            median(&mut p99),
            median(&mut h50),
            median(&mut h99),
            median(&mut rate),
            [
                median(&mut es50),
                median(&mut es99),
                median(&mut ep50),
                median(&mut ep99),
            ],
        ))
    })?;
    let (recall, s50, s99, p50, p99, h50, h99, rate, [es50, es99, ep50, ep99]) = result;
    print_table(
        &format!(
            "search over {} tracks on loopback: {} clients back to back, {} queries of each kind, median of {} rounds",
            args.tracks, args.clients, args.queries, args.common.rounds
        ),
        &[
            ("catalog import", format!("{import_s:>8.1} s")),
            ("index build at start", format!("{index_s:>8.1} s")),
            ("typo search p50", format!("{s50:>8.2} ms")),
            (
                "typo search p99 (target <= 20 ms)",
                format!("{s99:>8.2} ms"),
            ),
            ("typo search throughput", format!("{rate:>8.0} /s")),
            (
                "typo queries finding their track in the top 10",
                format!("{:>8.1} %", recall * 100.0),
            ),
            ("type-ahead p50", format!("{p50:>8.2} ms")),
            ("type-ahead p99 (target <= 10 ms)", format!("{p99:>8.2} ms")),
            (
                "every match scored: typo p50 / p99",
                format!("{es50:>8.2} / {es99:.2} ms"),
            ),
            (
                "every match scored: type-ahead p50 / p99",
                format!("{ep50:>8.2} / {ep99:.2} ms"),
            ),
            ("GET /healthz p50 (baseline)", format!("{h50:>8.2} ms")),
            ("GET /healthz p99 (baseline)", format!("{h99:>8.2} ms")),
        ],
    );
    if args.common.json {
        println!(
            "{}",
            json!({"tracks": args.tracks, "clients": args.clients, "queries": args.queries, "rounds": args.common.rounds,
                "import_s": import_s, "index_build_s": index_s, "search_ms_p50": s50, "search_ms_p99": s99, "search_per_s": rate,
                "typo_recall_top10": recall, "typeahead_ms_p50": p50, "typeahead_ms_p99": p99, "healthz_ms_p50": h50, "healthz_ms_p99": h99,
                "exhaustive": {"search_ms_p50": es50, "search_ms_p99": es99, "typeahead_ms_p50": ep50, "typeahead_ms_p99": ep99}})
        );
    }
    server.block_on(running.shutdown())?;
    Ok(ExitCode::SUCCESS)
}

/// Waits until the origin's search index is built (search stops answering 503).
pub(crate) async fn search_ready(base: &str) -> anyhow::Result<()> {
    let http = api::client::http_client_builder()?.build()?;
    for _ in 0..3_600 {
        let response = http.get(format!("{base}/v1/search?q=ready")).send().await?;
        if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            ensure!(
                response.status().is_success(),
                "search: {}",
                response.status()
            );
            return Ok(());
        }
        let body: Value = response.json().await.unwrap_or_default();
        progress(&format!(
            "building the search index: {}",
            body["error"]["message"].as_str().unwrap_or("")
        ));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    anyhow::bail!("the search index was not built within 30 minutes")
}

pub(crate) fn bench_config(data: &std::path::Path) -> OriginConfig {
    OriginConfig {
        data_dir: data.to_path_buf(),
        http_addr: "127.0.0.1:0".parse().expect("literal address"),
        quic_addr: "127.0.0.1:0".parse().expect("literal address"),
        // The benchmarks measure the origin, from one address, not its rate limits.
        rate_limits: origin::ratelimit::RateLimits::off(),
        // Recommendations are not measured here; their background job would compete with
        // the load.
        recommendations_refresh_s: 0,
        ..OriginConfig::default()
    }
}

async fn call<T: serde::de::DeserializeOwned, B: serde::Serialize + Sync>(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<&B>,
) -> anyhow::Result<T> {
    testkit::local::call_as(http, method, &url, token, body).await
}

async fn login(http: &reqwest::Client, base: &str, username: &str) -> anyhow::Result<String> {
    let password = "correct horse battery";
    let sign_up = api::accounts::NewAccount {
        username: username.to_string(),
        password: password.to_string(),
        region: None,
        role: None,
        tier: None,
    };
    call::<api::accounts::AccountCreated, _>(
        http,
        reqwest::Method::POST,
        format!("{base}/v1/accounts"),
        None,
        Some(&sign_up),
    )
    .await
    .ok();
    let login = api::accounts::Login {
        username: username.to_string(),
        password: password.to_string(),
    };
    let tokens: api::accounts::Tokens = call(
        http,
        reqwest::Method::POST,
        format!("{base}/v1/sessions"),
        None,
        Some(&login),
    )
    .await?;
    Ok(tokens.access_token)
}

/// `chorus bench playlists`: paged playlist reads on loopback against `GET /healthz`, then
/// two devices adding tracks to one playlist at once, checking no acknowledged add is lost.
pub fn run_playlists(args: &PlaylistBenchArgs) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    let data = tempfile::tempdir()?;
    import(data.path(), args.tracks, args.seed)?;
    let (server, client) = runtimes()?;
    progress("starting the origin");
    let running = server.block_on(origin::server::start(bench_config(data.path())))?;
    let base = format!("http://{}", running.http_addr);
    // The search index builds in the background after a start: wait, so it does not compete.
    client.block_on(search_ready(&base))?;
    let ids: Vec<String> = catalog(args.tracks.min(20_000), args.seed)
        .into_iter()
        .map(|(track, _)| track.id)
        .collect();
    let http = api::client::http_client_builder()?
        .pool_max_idle_per_host(256)
        .build()?;
    let result = client.block_on(async {
        let token = login(&http, &base, "bench_owner").await?;
        let device_two = login(&http, &base, "bench_owner").await?;
        let new = api::playlists::NewPlaylist {
            name: "Bench mix".into(),
            description: None,
            public: None,
            collaborative: None,
        };
        let playlist: api::playlists::PlaylistCreated = call(
            &http,
            Method::POST,
            format!("{base}/v1/playlists"),
            Some(&token),
            Some(&new),
        )
        .await?;
        let id = playlist.id;
        for part in ids
            .iter()
            .cycle()
            .take(args.playlist_tracks as usize)
            .collect::<Vec<_>>()
            .chunks(100)
        {
            let add = api::playlists::AddTracks {
                track_ids: part.iter().map(|id| id.to_string()).collect(),
                position: None,
                snapshot_id: None,
            };
            call::<api::playlists::TracksAdded, _>(
                &http,
                Method::POST,
                format!("{base}/v1/playlists/{id}/tracks"),
                Some(&token),
                Some(&add),
            )
            .await?;
        }
        let total = u64::from(args.playlist_tracks);
        let reads: Vec<String> = (0..u64::from(args.requests) * u64::from(args.clients))
            .map(|n| {
                format!(
                    "/v1/playlists/{id}?limit={}&offset={}",
                    args.page,
                    (n * u64::from(args.page)) % total.max(1)
                )
            })
            .collect();
        let health: Vec<String> = (0..reads.len()).map(|_| "/healthz".to_string()).collect();
        let (reads, health) = (Arc::new(reads), Arc::new(health));
        let (mut r50, mut r99, mut rate, mut h50, mut h99, mut hrate) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for round in 1..=args.common.rounds {
            progress(&format!("playlists: round {round}/{}", args.common.rounds));
            let (latencies, per_s) =
                hammer(&http, &base, Some(&token), reads.clone(), args.clients).await?;
            r50.push(percentile(&latencies, 50.0));
            r99.push(percentile(&latencies, 99.0));
            rate.push(per_s);
            let (latencies, per_s) =
                hammer(&http, &base, None, health.clone(), args.clients).await?;
            h50.push(percentile(&latencies, 50.0));
            h99.push(percentile(&latencies, 99.0));
            hrate.push(per_s);
        }
        // Two devices, one account, adding at once, no snapshot: every acknowledged add
        // must be there.
        progress("playlists: two devices editing at once");
        let mut tasks = tokio::task::JoinSet::new();
        for (device, token) in [token.clone(), device_two].into_iter().enumerate() {
            let (http, base, id, ids) = (http.clone(), base.clone(), id.clone(), ids.clone());
            let edits = args.edits as usize;
            tasks.spawn(async move {
                let mut acknowledged = 0u64;
                for n in 0..edits {
                    let track = &ids[(device * edits + n) % ids.len()];
                    let add = api::playlists::AddTracks {
                        track_ids: vec![track.to_string()],
                        position: None,
                        snapshot_id: None,
                    };
                    if call::<api::playlists::TracksAdded, _>(
                        &http,
                        Method::POST,
                        format!("{base}/v1/playlists/{id}/tracks"),
                        Some(&token),
                        Some(&add),
                    )
                    .await
                    .is_ok()
                    {
                        acknowledged += 1;
                    }
                }
                acknowledged
            });
        }
        let mut acknowledged = 0;
        while let Some(count) = tasks.join_next().await {
            acknowledged += count?;
        }
        let after: api::playlists::PlaylistView = call(
            &http,
            Method::GET,
            format!("{base}/v1/playlists/{id}?limit=1"),
            Some(&token),
            None::<&()>,
        )
        .await?;
        let length = after.tracks.total as u64;
        let lost = (total + acknowledged).saturating_sub(length);
        progress_done();
        anyhow::Ok((
            median(&mut r50),
            median(&mut r99),
            median(&mut rate),
            median(&mut h50),
            median(&mut h99),
            median(&mut hrate),
            acknowledged,
            lost,
        ))
    })?;
    let (r50, r99, rate, h50, h99, hrate, acknowledged, lost) = result;
    print_table(
        &format!(
            "playlist reads over a {}-track catalog on loopback: {} clients back to back, pages of {} from a {}-track playlist, median of {} rounds",
            args.tracks, args.clients, args.page, args.playlist_tracks, args.common.rounds
        ),
        &[
            (
                "playlist read throughput (target >= 10,000 /s)",
                format!("{rate:>8.0} /s"),
            ),
            ("playlist read p50", format!("{r50:>8.2} ms")),
            (
                "playlist read p99 (target <= 5 ms)",
                format!("{r99:>8.2} ms"),
            ),
            (
                "GET /healthz throughput (baseline)",
                format!("{hrate:>8.0} /s"),
            ),
            ("GET /healthz p50 (baseline)", format!("{h50:>8.2} ms")),
            ("GET /healthz p99 (baseline)", format!("{h99:>8.2} ms")),
            (
                "two devices: adds acknowledged",
                format!("{acknowledged:>8}"),
            ),
            ("two devices: acknowledged adds lost", format!("{lost:>8}")),
        ],
    );
    if args.common.json {
        println!(
            "{}",
            json!({"tracks": args.tracks, "clients": args.clients, "page": args.page, "playlist_tracks": args.playlist_tracks, "rounds": args.common.rounds,
                "read_per_s": rate, "read_ms_p50": r50, "read_ms_p99": r99, "healthz_per_s": hrate, "healthz_ms_p50": h50, "healthz_ms_p99": h99,
                "edits_acknowledged": acknowledged, "edits_lost": lost})
        );
    }
    server.block_on(running.shutdown())?;
    Ok(if lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
