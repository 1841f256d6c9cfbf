//! `chorus bench subsonic`: the OpenSubsonic API of `chorus gateway` over a synthetic catalog
//! (default 10,000 tracks): `search3`, `getAlbumList2` and cached `getCoverArt` latency
//! against `ping` through the same gateway, a whole-library `search3` sync in pages of 500,
//! and the time to a stream's first byte through the link emulator against the link's RTT.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use api::client::OriginApi;
use clap::Args;
use linkem::{LinkConfig, TcpRelay, UdpRelay};
use protocol::Identity;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use transport::{Endpoint, Limits};

use super::platform::{bench_config, catalog, import, search_ready};
use super::{Common, median, percentile, print_table, progress, progress_done};
use origin::store::{Role, Tier};

/// Flags of `chorus bench subsonic`.
#[derive(Debug, Args)]
pub struct SubsonicBenchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Tracks in the synthetic catalog.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1_000..=1_000_000))]
    pub tracks: u32,
    /// Requests of each kind per round.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub requests: u32,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub clients: u32,
    /// Round-trip time of the emulated link between the gateway and the origin for streams.
    #[arg(long, default_value_t = 40.0)]
    pub rtt_ms: f64,
    /// Songs streamed (each one the gateway has not played before).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub streams: u32,
    /// Catalog seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub(crate) const PASSWORD: &str = "bench password 1";

/// A gateway for `username` on `base`, served on loopback: its address.
pub(crate) async fn gateway(
    base: &str,
    origin_key: protocol::NodeId,
    username: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(String, Endpoint)> {
    let api = OriginApi::new(&format!("{}@{base}", origin_key.to_hex()))?;
    let session = api.session(username, PASSWORD).await?;
    let identity = Identity::from_secret_bytes(&rand::random());
    let endpoint = Endpoint::bind(&identity, "127.0.0.1:0".parse()?, Limits::default())?;
    let cache = Arc::new(client_lib::cache::ClientCache::open(dir, 1 << 30)?);
    let share = client_lib::serve::ServeConfig {
        enabled: false,
        ..client_lib::serve::ServeConfig::default()
    };
    let gateway = client_lib::gateway::Gateway::new(api, session, endpoint.clone(), cache, share);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = gateway.router(client_lib::gateway::Access::default());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), endpoint))
}

/// The Subsonic query string of `method` with `pairs`, logged in with a fixed salt (as
/// Symfonium does: the gateway's session for it is remembered).
fn rest(base: &str, password: &str, method: &str, pairs: &[(&str, &str)]) -> String {
    use md5::Digest;
    let salt = "benchsalt";
    let token = hex::encode(md5::Md5::digest(format!("{password}{salt}")));
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("u", "sub_listener"),
        ("t", token.as_str()),
        ("s", salt),
        ("v", "1.16.1"),
        ("c", "bench"),
        ("f", "json"),
    ]
    .iter()
    .chain(pairs)
    {
        query.append_pair(key, value);
    }
    format!("{base}/rest/{method}?{}", query.finish())
}

/// Sends every URL (split over `clients` back-to-back clients), checking each answer is a
/// Subsonic success; sorted latencies in ms.
async fn hammer(
    http: &reqwest::Client,
    urls: Arc<Vec<String>>,
    clients: u32,
    binary: bool,
) -> anyhow::Result<Vec<f64>> {
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients as usize {
        let (http, urls) = (http.clone(), urls.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            for url in urls.iter().skip(client).step_by(clients as usize) {
                let sent = Instant::now();
                let response = http.get(url).send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                ensure!(status.is_success(), "{url}: {status}");
                if !binary {
                    let answer: Value = serde_json::from_slice(&body)?;
                    ensure!(
                        answer["subsonic-response"]["status"] == "ok",
                        "{url}: {answer}"
                    );
                }
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = tasks.join_next().await {
        all.extend(latencies??);
    }
    all.sort_by(f64::total_cmp);
    Ok(all)
}

pub fn run(args: &SubsonicBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.rtt_ms.is_finite() && (0.0..=2_000.0).contains(&args.rtt_ms),
        "--rtt-ms must be between 0 and 2000"
    );
    let data = tempfile::tempdir()?;
    let import_s = import(data.path(), args.tracks, args.seed)?;
    let (server, client) = super::origin::runtimes()?;
    let half = LinkConfig::half_rtt(args.rtt_ms);
    let quic_relay_socket = server.block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))?;
    let quic_public = quic_relay_socket.local_addr()?;
    let mut config = bench_config(data.path());
    config.quic_public_addr = Some(quic_public);
    config.upload_bytes_max = origin::config::OriginConfig::default().upload_bytes_max;
    progress("starting the origin");
    let running = server.block_on(origin::server::start(config))?;
    let base = format!("http://{}", running.http_addr);
    let (_quic_relay, http_relay) = server.block_on(async {
        let quic = UdpRelay::start(quic_relay_socket, running.quic_addr, half, half, 1)?;
        let http = TcpRelay::bind("127.0.0.1:0".parse()?, running.http_addr, half, half, 2).await?;
        anyhow::Ok((quic, http))
    })?;
    let store = running.store().clone();
    let origin_key = running.node_id;
    let _server = Arc::new(server);
    let dirs = tempfile::tempdir()?;
    let result = client.block_on(async {
        search_ready(&base).await?;
        let http = api::client::http_client_builder()?
            .pool_max_idle_per_host(256)
            .build()?;
        for (name, role) in [
            ("sub_listener", Role::Listener),
            ("sub_artist", Role::Artist),
            ("sub_admin", Role::Admin),
        ] {
            let account = origin::accounts::new_account(name, PASSWORD, "SE", role, Tier::Premium)?;
            store.accounts().create_account(&account).await?;
        }
        let login = |name: &'static str| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let tokens: Value = http
                    .post(format!("{base}/v1/sessions"))
                    .json(&json!({"username": name, "password": PASSWORD}))
                    .send()
                    .await?
                    .json()
                    .await?;
                tokens["access_token"]
                    .as_str()
                    .map(str::to_string)
                    .context("no token")
            }
        };
        let (listener, artist, admin) = (
            login("sub_listener").await?,
            login("sub_artist").await?,
            login("sub_admin").await?,
        );
        let made: Value = http
            .post(format!("{base}/v1/me/app-passwords"))
            .bearer_auth(&listener)
            .json(&json!({"name": "bench"}))
            .send()
            .await?
            .json()
            .await?;
        let app_password = made["password"]
            .as_str()
            .context("no app password")?
            .to_string();

        // Covers for some albums, and real songs to stream.
        let records = catalog(args.tracks, args.seed);
        let mut albums: Vec<String> = records
            .iter()
            .filter_map(|(track, _)| track.album_id.clone())
            .collect();
        albums.sort();
        albums.dedup();
        let covered: Vec<String> = albums.iter().take(20).cloned().collect();
        for (at, album) in covered.iter().enumerate() {
            progress(&format!("album covers: {}/{}", at + 1, covered.len()));
            let response = http
                .put(format!("{base}/v1/albums/{album}/image"))
                .bearer_auth(&admin)
                .body(testkit::picture::bmp(640, at as u8 * 10))
                .send()
                .await?;
            ensure!(
                response.status().is_success(),
                "cover: {}",
                response.status()
            );
        }
        let mut songs = Vec::new();
        for seed in 0..args.streams {
            progress(&format!("songs to stream: {}/{}", seed + 1, args.streams));
            let track =
                super::origin::upload_synth(&http, &base, &artist, 500 + u64::from(seed), 6.0)
                    .await?;
            songs.push(track.id);
        }
        // As many again to seek in (`timeOffset`), each cold too.
        let mut seeks = Vec::new();
        for seed in 0..args.streams {
            progress(&format!("songs to seek in: {}/{}", seed + 1, args.streams));
            let track =
                super::origin::upload_synth(&http, &base, &artist, 700 + u64::from(seed), 6.0)
                    .await?;
            seeks.push(track.id);
        }

        // The gateway near the origin (loopback) for the API, another behind the link for
        // streams.
        let (near, _near_endpoint) =
            gateway(&base, origin_key, "sub_listener", &dirs.path().join("near")).await?;
        let far_base = format!("http://{}", http_relay.addr());
        let (far, _far_endpoint) = gateway(
            &far_base,
            origin_key,
            "sub_listener",
            &dirs.path().join("far"),
        )
        .await?;

        let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x5b5);
        let n = args.requests as usize;
        let word = |rng: &mut ChaCha8Rng| {
            let (track, _) = &records[rng.gen_range(0..records.len())];
            track.title.split(' ').next().unwrap_or("a").to_string()
        };
        let searches: Vec<String> = (0..n)
            .map(|_| {
                let query = word(&mut rng);
                rest(&near, &app_password, "search3", &[("query", &query)])
            })
            .collect();
        let kinds = ["newest", "random", "alphabeticalByName", "frequent"];
        let lists: Vec<String> = (0..n)
            .map(|at| {
                rest(
                    &near,
                    &app_password,
                    "getAlbumList2",
                    &[("type", kinds[at % kinds.len()]), ("size", "50")],
                )
            })
            .collect();
        let covers: Vec<String> = (0..n)
            .map(|at| {
                rest(
                    &near,
                    &app_password,
                    "getCoverArt",
                    &[
                        ("id", &format!("al-{}", covered[at % covered.len()])),
                        ("size", "300"),
                    ],
                )
            })
            .collect();
        let pings: Vec<String> = (0..n)
            .map(|_| rest(&near, &app_password, "ping", &[]))
            .collect();
        let (searches, lists, covers, pings) = (
            Arc::new(searches),
            Arc::new(lists),
            Arc::new(covers),
            Arc::new(pings),
        );
        // Warm: the session, the picture cache.
        hammer(&http, pings.clone(), 1, false).await?;
        hammer(&http, Arc::new(covers[..covered.len()].to_vec()), 1, true).await?;

        let (mut s99, mut s50, mut l99, mut l50, mut c99, mut c50, mut p99, mut p50, mut sync) = (
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        for round in 1..=args.common.rounds {
            progress(&format!("search3: round {round}/{}", args.common.rounds));
            let latencies = hammer(&http, searches.clone(), args.clients, false).await?;
            s50.push(percentile(&latencies, 50.0));
            s99.push(percentile(&latencies, 99.0));
            progress(&format!(
                "getAlbumList2: round {round}/{}",
                args.common.rounds
            ));
            let latencies = hammer(&http, lists.clone(), args.clients, false).await?;
            l50.push(percentile(&latencies, 50.0));
            l99.push(percentile(&latencies, 99.0));
            progress(&format!(
                "getCoverArt: round {round}/{}",
                args.common.rounds
            ));
            let latencies = hammer(&http, covers.clone(), args.clients, true).await?;
            c50.push(percentile(&latencies, 50.0));
            c99.push(percentile(&latencies, 99.0));
            progress(&format!("ping: round {round}/{}", args.common.rounds));
            let latencies = hammer(&http, pings.clone(), args.clients, false).await?;
            p50.push(percentile(&latencies, 50.0));
            p99.push(percentile(&latencies, 99.0));
            // A library sync as Symfonium makes it: search3 with an empty query, 500 songs a
            // page, until a short page.
            progress(&format!(
                "library sync: round {round}/{}",
                args.common.rounds
            ));
            let started = Instant::now();
            let mut seen = std::collections::HashSet::new();
            for page in 0.. {
                let offset = (page * 500).to_string();
                let url = rest(
                    &near,
                    &app_password,
                    "search3",
                    &[
                        ("query", "\"\""),
                        ("songCount", "500"),
                        ("songOffset", &offset),
                        ("artistCount", "0"),
                        ("albumCount", "0"),
                    ],
                );
                let answer: Value = http.get(&url).send().await?.json().await?;
                let songs = answer["subsonic-response"]["searchResult3"]["song"]
                    .as_array()
                    .context("a sync page without songs")?;
                for song in songs {
                    seen.insert(song["id"].as_str().unwrap_or_default().to_string());
                }
                if songs.len() < 500 {
                    break;
                }
            }
            sync.push(started.elapsed().as_secs_f64());
            let expected = args.tracks as usize + songs.len() + seeks.len();
            ensure!(
                seen.len() == expected,
                "the sync saw {} songs of {expected}",
                seen.len()
            );
        }

        // Streams through the link: time to the first byte of songs never played here.
        let rtts = super::link_rtts(half).await?;
        let rtt = percentile(&rtts, 50.0);
        // The far gateway's session and connections warm, as a running gateway's are.
        hammer(
            &http,
            Arc::new(vec![rest(&far, &app_password, "ping", &[])]),
            1,
            false,
        )
        .await?;
        let first = rest(&far, &app_password, "stream", &[("id", &songs[0])]);
        let _ = http.get(&first).send().await?.bytes().await?;
        let mut first_bytes = Vec::new();
        for (at, song) in songs.iter().enumerate().skip(1) {
            progress(&format!("streams: {at}/{}", songs.len() - 1));
            let url = rest(&far, &app_password, "stream", &[("id", song)]);
            let sent = Instant::now();
            let mut response = http.get(&url).send().await?;
            ensure!(
                response.status().is_success(),
                "stream: {}",
                response.status()
            );
            let chunk = response.chunk().await?.context("an empty stream")?;
            ensure!(!chunk.is_empty(), "an empty first piece");
            first_bytes.push(sent.elapsed().as_secs_f64() * 1000.0);
            while response.chunk().await?.is_some() {}
        }
        first_bytes.sort_by(f64::total_cmp);
        // Seeks by time to the middle of songs not played before: the grant with the header
        // chunk, then the chunks from the offset on.
        let mut seek_bytes = Vec::new();
        for (at, song) in seeks.iter().enumerate() {
            progress(&format!("seeks: {}/{}", at + 1, seeks.len()));
            let url = rest(
                &far,
                &app_password,
                "stream",
                &[("id", song), ("timeOffset", "3")],
            );
            let sent = Instant::now();
            let mut response = http.get(&url).send().await?;
            ensure!(
                response.status().is_success()
                    && response.headers().get("content-type").map(|v| v.as_bytes())
                        == Some(b"audio/ogg"),
                "seek: {}",
                response.status()
            );
            let chunk = response.chunk().await?.context("an empty stream")?;
            ensure!(!chunk.is_empty(), "an empty first piece");
            seek_bytes.push(sent.elapsed().as_secs_f64() * 1000.0);
            while response.chunk().await?.is_some() {}
        }
        seek_bytes.sort_by(f64::total_cmp);
        progress_done();
        anyhow::Ok(json!({
            "tracks": args.tracks,
            "search3_p50_ms": median(&mut s50),
            "search3_p99_ms": median(&mut s99),
            "album_list2_p50_ms": median(&mut l50),
            "album_list2_p99_ms": median(&mut l99),
            "cover_art_cached_p50_ms": median(&mut c50),
            "cover_art_cached_p99_ms": median(&mut c99),
            "ping_p50_ms": median(&mut p50),
            "ping_p99_ms": median(&mut p99),
            "sync_s": median(&mut sync),
            "link_rtt_ms": rtt,
            "stream_first_byte_p50_ms": percentile(&first_bytes, 50.0),
            "stream_first_byte_max_ms": first_bytes.last().copied().unwrap_or(0.0),
            "seek_first_byte_p50_ms": percentile(&seek_bytes, 50.0),
            "seek_first_byte_max_ms": seek_bytes.last().copied().unwrap_or(0.0),
            "import_s": import_s,
        }))
    })?;
    let number = |key: &str| result[key].as_f64().unwrap_or(f64::NAN);
    let rtt = number("link_rtt_ms");
    print_table(
        &format!(
            "OpenSubsonic through chorus gateway over {} tracks: {} clients back to back, {} requests of each kind, median of {} rounds",
            args.tracks, args.clients, args.requests, args.common.rounds
        ),
        &[
            (
                "search3 p50 / p99 (target p99 <= 20 ms)",
                format!(
                    "{:>8.2} / {:.2} ms",
                    number("search3_p50_ms"),
                    number("search3_p99_ms")
                ),
            ),
            (
                "getAlbumList2 p50 / p99 (target p99 <= 20 ms)",
                format!(
                    "{:>8.2} / {:.2} ms",
                    number("album_list2_p50_ms"),
                    number("album_list2_p99_ms")
                ),
            ),
            (
                "getCoverArt cached p50 / p99 (target p99 <= 5 ms)",
                format!(
                    "{:>8.2} / {:.2} ms",
                    number("cover_art_cached_p50_ms"),
                    number("cover_art_cached_p99_ms")
                ),
            ),
            (
                "ping p50 / p99 (baseline)",
                format!(
                    "{:>8.2} / {:.2} ms",
                    number("ping_p50_ms"),
                    number("ping_p99_ms")
                ),
            ),
            (
                "whole-library search3 sync, pages of 500 (target <= 2 s)",
                format!("{:>8.2} s", number("sync_s")),
            ),
            (
                "emulated link RTT (UDP echo, p50)",
                format!("{rtt:>8.2} ms"),
            ),
            (
                "stream first byte p50 (target <= 1.5 x RTT + 10 ms)",
                format!(
                    "{:>8.2} ms (target {:.1} ms; slowest {:.1} ms)",
                    number("stream_first_byte_p50_ms"),
                    1.5 * rtt + 10.0,
                    number("stream_first_byte_max_ms")
                ),
            ),
            (
                "seek (timeOffset=3 s) first byte p50",
                format!(
                    "{:>8.2} ms ({:.1} x RTT; slowest {:.1} ms)",
                    number("seek_first_byte_p50_ms"),
                    number("seek_first_byte_p50_ms") / rtt,
                    number("seek_first_byte_max_ms")
                ),
            ),
        ],
    );
    if args.common.json {
        println!("{result}");
    }
    Ok(ExitCode::SUCCESS)
}
