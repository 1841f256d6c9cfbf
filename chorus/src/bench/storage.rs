//! `chorus bench storage`: the origin on its embedded store (sled and files) against the
//! origin on PostgreSQL and S3-compatible object storage (a private PostgreSQL cluster and a
//! private Garage store behind nginx, started here), same workloads, same run, rounds
//! alternating between the two so the machine's noise falls on both:
//!
//! - play authorization latency under concurrent clients at an offered rate;
//! - paged playlist reads over a large catalog, back to back;
//! - listening events accepted per second, in batches of 100;
//! - cold chunk GETs (no memory cache: every chunk from the files or the bucket);
//!
//! then, on PostgreSQL and S3 only: a second origin's start to search answering (new and
//! restarted), how soon its search follows an upload made through the first, and the
//! recommendation model built once by the leader against loading it on another origin.
//!
//! Both origins run in this process on one 2-thread runtime (as an origin process would),
//! with the database and the object store on the same two cores.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use protocol::{Identity, SignedManifest, codec};
use serde_json::json;
use testkit::local::{Backend, LocalOrigin};

use super::origin::{account, load, runtimes, upload_synth};
use super::platform::{catalog, hammer};
use super::{Common, median, percentile, print_table, progress, progress_done};
use origin::store::Role;

/// Flags of `chorus bench storage`.
#[derive(Debug, Args)]
pub struct StorageBenchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Tracks in the synthetic catalog (imported into both stores).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1_000..=10_000_000))]
    pub tracks: u32,
    /// Concurrent clients for play authorization and events.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub clients: u32,
    /// Concurrent readers of the playlist, each reading page after page (a closed loop: with
    /// few readers the figure is the round trip's latency, not what the origin can serve).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub readers: u32,
    /// Play authorizations per client per round.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub requests: u32,
    /// Offered play authorizations per second over all clients.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: u32,
    /// Playlist page reads per round (`--readers` clients back to back, 20 tracks a page).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    pub reads: u32,
    /// Event batches (100 events each) per client per round.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batches: u32,
    /// Seconds of the track whose chunks are fetched cold.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub track_seconds: u32,
    /// Catalog seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// One origin under test and what the workloads need of it.
struct Subject {
    name: &'static str,
    origin: Arc<LocalOrigin>,
    tokens: Vec<String>,
    track: String,
    playlist: String,
    owner: String,
    chunk_urls: Vec<String>,
    artist: String,
}

/// Medians over rounds of one subject.
#[derive(Default)]
struct Figures {
    play_p50: Vec<f64>,
    play_p99: Vec<f64>,
    reads_per_s: Vec<f64>,
    reads_p99: Vec<f64>,
    events_per_s: Vec<f64>,
    events_p99: Vec<f64>,
    chunk_mib_s: Vec<f64>,
    chunk_p99: Vec<f64>,
}

const PLAYLIST_TRACKS: usize = 100;
const PAGE: usize = 20;
const CHUNK_CLIENTS: u32 = 16;

/// Starts an origin on `backend`, imports the catalog into its store, and prepares accounts,
/// a track, a playlist and signed chunk URLs.
async fn prepare(
    name: &'static str,
    backend: Backend,
    args: &StorageBenchArgs,
    catalog: &[(origin::store::TrackRecord, u64)],
) -> anyhow::Result<Subject> {
    progress(&format!("{name}: starting"));
    let origin = LocalOrigin::start_on(backend, |config| {
        config.rate_limits = origin::ratelimit::RateLimits::off();
        config.recommendations_refresh_s = 0;
        config.upload_bytes_max = origin::config::OriginConfig::default().upload_bytes_max;
        // Cold: every chunk read goes to the files or the bucket.
        config.chunk_cache_bytes = 0;
    })
    .await?;
    let started = Instant::now();
    for (done, part) in catalog.chunks(10_000).enumerate() {
        progress(&format!(
            "{name}: importing the catalog {}/{}",
            done * 10_000 + part.len(),
            catalog.len()
        ));
        origin.running.store().catalog().import_tracks(part).await?;
    }
    origin
        .running
        .store()
        .catalog()
        .settle_after_import()
        .await?;
    eprintln!(
        "\r{name}: {} tracks imported and settled in {:.1} s",
        catalog.len(),
        started.elapsed().as_secs_f64()
    );
    // The import reaches the origin's search index through the change feed, which indexes
    // the catalog again: the rounds start once it is done, with the origin at rest.
    let started = Instant::now();
    loop {
        let ready = origin.metric("chorus_search_ready").await == Some(1.0);
        let building = origin.metric("chorus_search_building").await;
        let lag = origin.metric("chorus_search_feed_lag").await;
        if ready && building == Some(0.0) && lag == Some(0.0) {
            break;
        }
        progress(&format!(
            "{name}: search indexing the import, {:.0} documents so far",
            origin
                .metric("chorus_search_documents")
                .await
                .unwrap_or(0.0)
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "\r{name}: search caught up with the import in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let artist = account(&origin, "store_artist", Role::Artist).await?;
    let track = upload_synth(
        &origin.http,
        &origin.base,
        &artist,
        7,
        f64::from(args.track_seconds),
    )
    .await?;
    let mut tokens = Vec::new();
    for client in 0..args.clients {
        progress(&format!("{name}: listener {client}"));
        tokens.push(account(&origin, &format!("store_listener_{client}"), Role::Listener).await?);
    }
    // A playlist of catalog tracks, read a page at a time.
    let owner = tokens[0].clone();
    let (status, created) = origin
        .post(
            "/v1/playlists",
            Some(&owner),
            json!({"name": "Storage bench"}),
        )
        .await;
    anyhow::ensure!(status.is_success(), "creating the playlist: {created}");
    let playlist = created["id"].as_str().context("a playlist id")?.to_string();
    let ids: Vec<String> = catalog
        .iter()
        .step_by((catalog.len() / PLAYLIST_TRACKS).max(1))
        .take(PLAYLIST_TRACKS)
        .map(|(track, _)| track.id.clone())
        .collect();
    let (status, added) = origin
        .post(
            &format!("/v1/playlists/{playlist}/tracks"),
            Some(&owner),
            json!({"track_ids": ids}),
        )
        .await;
    anyhow::ensure!(status.is_success(), "filling the playlist: {added}");
    // Signed URLs of every chunk of the uploaded track's normal rendition.
    let node_id = Identity::from_secret_bytes(&[9; 32]).node_id().to_hex();
    let (status, grant) = origin
        .post(
            &format!("/v1/tracks/{}/play", track.id),
            Some(&owner),
            json!({"node_id": node_id}),
        )
        .await;
    anyhow::ensure!(status.is_success(), "authorizing a play: {grant}");
    let manifest_hex = grant["manifest"].as_str().context("a manifest")?;
    let signed: SignedManifest = codec::decode(&hex::decode(manifest_hex)?)?;
    let manifest = signed.verify(&origin.running.node_id)?;
    let template = grant["chunk_url_template"]
        .as_str()
        .context("a chunk URL template")?;
    let chunk_urls = manifest
        .body()
        .chunks
        .iter()
        .map(|id| template.replace("{chunk_id}", &id.to_hex()))
        .collect();
    Ok(Subject {
        name,
        origin: Arc::new(origin),
        tokens,
        track: track.id,
        playlist,
        owner,
        chunk_urls,
        artist,
    })
}

/// Uploads found by another origin's search.
const FOLLOW_UPLOADS: u64 = 10;

/// Starts a second origin of `subject`'s service (same PostgreSQL and bucket), waits for its
/// search, restarts it and waits again: the second origin, and the seconds from each start to
/// its search answering (new: it builds its index from the catalog; restarted: it resumes
/// it). Runs on the server runtime, as the origins do.
async fn second_origin(subject: &Subject) -> anyhow::Result<(LocalOrigin, f64, f64)> {
    progress("postgres+s3: starting a second origin on the same database and bucket");
    let started = Instant::now();
    let peer = subject
        .origin
        .start_peer(|config| config.recommendations_refresh_s = 0)
        .await?;
    search_caught_up(&peer).await;
    let fresh_s = started.elapsed().as_secs_f64();
    progress("postgres+s3: restarting the second origin");
    let mut restarted_at = Instant::now();
    let peer = peer
        .restart_after(async {
            restarted_at = Instant::now();
        })
        .await?;
    search_caught_up(&peer).await;
    Ok((peer, fresh_s, restarted_at.elapsed().as_secs_f64()))
}

/// The recommendation model at this catalog's size: one build by the leader (read the
/// store, build, encode, store the blob, publish), against one load by another origin (fetch
/// the blob, check its hash, decode). Seconds, seconds, and the blob's bytes.
async fn recommendation_model(subject: &Subject) -> anyhow::Result<(f64, f64, u64)> {
    use origin::recommendations::{PUBLISHED_NAME, Recommender, load_published, rebuild};
    progress("recommendation model: build and publish");
    let store = subject.origin.running.store();
    let leader = Arc::new(Recommender::default());
    let started = Instant::now();
    rebuild(store, &leader).await?;
    let build_s = started.elapsed().as_secs_f64();
    let published = store
        .coordination()
        .published(PUBLISHED_NAME)
        .await?
        .context("the build published no model")?;
    progress("recommendation model: load on another origin");
    let follower = Arc::new(Recommender::default());
    let started = Instant::now();
    anyhow::ensure!(
        matches!(
            load_published(store, &follower).await?,
            origin::recommendations::Loaded::Serving(_)
        ),
        "no model to load"
    );
    let load_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        follower.model().len() == leader.model().len(),
        "the loaded model has {} tracks, the built one {}",
        follower.model().len(),
        leader.model().len()
    );
    Ok((build_s, load_s, published.bytes))
}

/// How long a change made on `subject`'s origin takes to reach the search index of the
/// second origin `peer` (following the change feed): a short track is uploaded through the
/// first, then the second's search is asked for its title every 10 ms. Milliseconds from the
/// upload's answer to the first hit, per upload. Runs on the client runtime, as the other
/// workloads do.
async fn feed_follow(subject: &Subject, peer: &LocalOrigin) -> anyhow::Result<Vec<f64>> {
    let mut follow_ms = Vec::new();
    for upload in 0..FOLLOW_UPLOADS {
        progress(&format!(
            "postgres+s3: feed follow, upload {}/{FOLLOW_UPLOADS}",
            upload + 1
        ));
        let title = format!(
            "Feedfollow{upload}z{}",
            subject.track.get(..8).unwrap_or("")
        );
        let track = subject
            .origin
            .upload_synth(
                &subject.artist,
                1_000 + upload,
                2.0,
                &api::catalog::TrackMetadata {
                    title: Some(title.clone()),
                    artist: Some("Feed Follow".into()),
                    ..Default::default()
                },
            )
            .await?;
        let uploaded = Instant::now();
        let query = format!("/v1/search?q={title}&type=track");
        loop {
            let (status, found) = peer.get(&query, None).await;
            let hit = status.is_success()
                && found["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|item| item["id"] == track.id));
            if hit {
                break;
            }
            anyhow::ensure!(
                uploaded.elapsed() < Duration::from_secs(60),
                "the second origin's search did not find {title} within a minute"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        follow_ms.push(uploaded.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(follow_ms)
}

/// Waits until `origin`'s search answers and has applied the whole feed.
async fn search_caught_up(origin: &LocalOrigin) {
    loop {
        let ready = origin.metric("chorus_search_ready").await == Some(1.0);
        let lag = origin.metric("chorus_search_feed_lag").await;
        if ready && lag == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts `batches` batches of 100 events per client, back to back; events per second and
/// the batch latency p99.
async fn events(
    subject: &Subject,
    round: u32,
    batches: u32,
    catalog_ids: &Arc<Vec<String>>,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let now = origin::now_ms();
    let mut tasks = tokio::task::JoinSet::new();
    for (client, token) in subject.tokens.iter().enumerate() {
        let (http, base, token, ids) = (
            subject.origin.http.clone(),
            subject.origin.base.clone(),
            token.clone(),
            catalog_ids.clone(),
        );
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(batches as usize);
            for batch in 0..batches {
                // 25 plays of 4 events each: start, two progress reports, a qualifying one.
                let mut events = Vec::with_capacity(100);
                for play in 0..25u32 {
                    let play_id = format!("r{round}c{client}b{batch}p{play}");
                    let track = &ids
                        [(client * 7919 + play as usize * 104_729 + batch as usize) % ids.len()];
                    let start = now - 60_000;
                    for (step, position) in [0u64, 10_000, 20_000, 31_000].into_iter().enumerate() {
                        events.push(json!({
                            "id": format!("{play_id}e{step}"),
                            "play_id": play_id,
                            "type": if step == 0 { "play_start" } else { "progress" },
                            "track_id": track,
                            "position_ms": position,
                            "at": start + position,
                        }));
                    }
                }
                let sent = Instant::now();
                let response = http
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&token)
                    .json(&events)
                    .send()
                    .await?;
                let status = response.status();
                let body = response.text().await?;
                anyhow::ensure!(status.is_success(), "events: {status} {body}");
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(latencies) = tasks.join_next().await {
        all.extend(latencies??);
    }
    let per_s = (all.len() * 100) as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Ok((per_s, percentile(&all, 99.0)))
}

/// Fetches every chunk URL from [`CHUNK_CLIENTS`] clients back to back, `passes` times over;
/// MiB per second and the p99.
async fn chunks(subject: &Subject, passes: usize) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let urls = Arc::new(subject.chunk_urls.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..CHUNK_CLIENTS as usize {
        let (http, urls) = (subject.origin.http.clone(), urls.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut bytes = 0usize;
            for n in (client..urls.len() * passes).step_by(CHUNK_CLIENTS as usize) {
                let sent = Instant::now();
                let response = http.get(&urls[n % urls.len()]).send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                anyhow::ensure!(status.is_success(), "chunk: {status}");
                bytes += body.len();
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok((latencies, bytes))
        });
    }
    let (mut all, mut bytes) = (Vec::new(), 0usize);
    while let Some(done) = tasks.join_next().await {
        let (latencies, got) = done??;
        all.extend(latencies);
        bytes += got;
    }
    let mib_s = bytes as f64 / (1024.0 * 1024.0) / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Ok((mib_s, percentile(&all, 99.0)))
}

async fn round(
    subject: &Subject,
    round_number: u32,
    args: &StorageBenchArgs,
    catalog_ids: &Arc<Vec<String>>,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    progress(&format!("{}: round {round_number}: play", subject.name));
    let interval = Duration::from_secs_f64(f64::from(args.clients) / f64::from(args.rate));
    let (latencies, _) = load(
        &subject.origin.http,
        &subject.origin.base,
        &subject.tokens,
        args.requests,
        Some(&subject.track),
        Some(interval),
    )
    .await?;
    figures.play_p50.push(percentile(&latencies, 50.0));
    figures.play_p99.push(percentile(&latencies, 99.0));
    progress(&format!(
        "{}: round {round_number}: playlists",
        subject.name
    ));
    let reads: Vec<String> = (0..args.reads as usize)
        .map(|n| {
            format!(
                "/v1/playlists/{}?limit={PAGE}&offset={}",
                subject.playlist,
                (n * PAGE) % PLAYLIST_TRACKS
            )
        })
        .collect();
    let (latencies, per_s) = hammer(
        &subject.origin.http,
        &subject.origin.base,
        Some(&subject.owner),
        Arc::new(reads),
        args.readers,
    )
    .await?;
    figures.reads_per_s.push(per_s);
    figures.reads_p99.push(percentile(&latencies, 99.0));
    progress(&format!("{}: round {round_number}: events", subject.name));
    let (per_s, p99) = events(subject, round_number, args.batches, catalog_ids).await?;
    figures.events_per_s.push(per_s);
    figures.events_p99.push(p99);
    progress(&format!(
        "{}: round {round_number}: cold chunks",
        subject.name
    ));
    let (mib_s, p99) = chunks(subject, 4).await?;
    figures.chunk_mib_s.push(mib_s);
    figures.chunk_p99.push(p99);
    Ok(())
}

/// Runs `chorus bench storage`.
pub fn run_storage(args: &StorageBenchArgs) -> anyhow::Result<ExitCode> {
    let (server, client) = runtimes()?;
    progress(&format!("generating {} tracks", args.tracks));
    let catalog = catalog(args.tracks, args.seed);
    let catalog_ids: Arc<Vec<String>> = Arc::new(
        catalog
            .iter()
            .step_by((catalog.len() / 10_000).max(1))
            .map(|(track, _)| track.id.clone())
            .collect(),
    );
    let embedded = server.block_on(prepare("embedded", Backend::Embedded, args, &catalog))?;
    let scaled = server.block_on(prepare("postgres+s3", Backend::PostgresS3, args, &catalog))?;
    drop(catalog);
    let (mut on_embedded, mut on_scaled) = (Figures::default(), Figures::default());
    client.block_on(async {
        for number in 1..=args.common.rounds {
            // Alternate which goes first, so a trend in the machine's load falls on both.
            if number % 2 == 1 {
                round(&embedded, number, args, &catalog_ids, &mut on_embedded).await?;
                round(&scaled, number, args, &catalog_ids, &mut on_scaled).await?;
            } else {
                round(&scaled, number, args, &catalog_ids, &mut on_scaled).await?;
                round(&embedded, number, args, &catalog_ids, &mut on_embedded).await?;
            }
        }
        anyhow::Ok(())
    })?;
    let (peer, fresh_s, restart_s) = server.block_on(second_origin(&scaled))?;
    let mut follow_ms = client.block_on(feed_follow(&scaled, &peer))?;
    server.block_on(async move { drop(peer) });
    let (model_build_s, model_load_s, model_bytes) =
        server.block_on(recommendation_model(&scaled))?;
    progress_done();
    follow_ms.sort_by(f64::total_cmp);
    let (follow_p50, follow_max) = (
        percentile(&follow_ms, 50.0),
        follow_ms.last().copied().unwrap_or(0.0),
    );
    let mut e = on_embedded;
    let mut s = on_scaled;
    let (e_p50, s_p50) = (median(&mut e.play_p50), median(&mut s.play_p50));
    let (e_p99, s_p99) = (median(&mut e.play_p99), median(&mut s.play_p99));
    let (e_reads, s_reads) = (median(&mut e.reads_per_s), median(&mut s.reads_per_s));
    let (e_rp99, s_rp99) = (median(&mut e.reads_p99), median(&mut s.reads_p99));
    let (e_events, s_events) = (median(&mut e.events_per_s), median(&mut s.events_per_s));
    let (e_ep99, s_ep99) = (median(&mut e.events_p99), median(&mut s.events_p99));
    let (e_chunks, s_chunks) = (median(&mut e.chunk_mib_s), median(&mut s.chunk_mib_s));
    let (e_cp99, s_cp99) = (median(&mut e.chunk_p99), median(&mut s.chunk_p99));
    let row = |name: &str, embedded: f64, scaled: f64, unit: &str| {
        (
            name.to_string(),
            format!(
                "{embedded:>9.2} {unit:<5} {scaled:>9.2} {unit:<5} x{:.2}",
                scaled / embedded.max(f64::MIN_POSITIVE)
            ),
        )
    };
    let rows = [
        row("play p50", e_p50, s_p50, "ms"),
        row("play p99 (target: <= 2x embedded)", e_p99, s_p99, "ms"),
        row("playlist reads (target >= 5000/s)", e_reads, s_reads, "/s"),
        row("playlist read p99", e_rp99, s_rp99, "ms"),
        row(
            "events accepted (target >= 10000/s)",
            e_events,
            s_events,
            "/s",
        ),
        row("event batch p99", e_ep99, s_ep99, "ms"),
        row("cold chunk GETs", e_chunks, s_chunks, "MiB/s"),
        row("cold chunk GET p99", e_cp99, s_cp99, "ms"),
    ];
    let mut rows = rows.to_vec();
    rows.push((
        "2nd origin: start to search answering, new / restarted".to_string(),
        format!("{fresh_s:.1} s (builds its index) / {restart_s:.1} s (resumes it)"),
    ));
    rows.push((
        "search on a 2nd origin follows an upload (target <= 2000 ms)".to_string(),
        format!(
            "p50 {follow_p50:.0} ms, max {follow_max:.0} ms over {} uploads (PostgreSQL + S3)",
            follow_ms.len()
        ),
    ));
    rows.push((
        "recommendation model: built once / loaded by another origin".to_string(),
        format!(
            "{model_build_s:.2} s / {model_load_s:.2} s ({:.1} MB, x{:.1})",
            model_bytes as f64 / 1e6,
            model_build_s / model_load_s.max(f64::MIN_POSITIVE)
        ),
    ));
    let rows: Vec<(&str, String)> = rows
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    print_table(
        &format!(
            "storage backends: embedded (sled + files) | PostgreSQL + S3 (Garage) | ratio; {} tracks, {} clients, {} readers, median of {} rounds",
            args.tracks, args.clients, args.readers, args.common.rounds
        ),
        &rows,
    );
    if args.common.json {
        println!(
            "{}",
            json!({
                "tracks": args.tracks, "clients": args.clients, "readers": args.readers, "rounds": args.common.rounds,
                "embedded": {"play_ms_p50": e_p50, "play_ms_p99": e_p99, "playlist_reads_per_s": e_reads,
                    "playlist_read_ms_p99": e_rp99, "events_per_s": e_events, "event_batch_ms_p99": e_ep99,
                    "cold_chunk_mib_s": e_chunks, "cold_chunk_ms_p99": e_cp99},
                "postgres_s3": {"play_ms_p50": s_p50, "play_ms_p99": s_p99, "playlist_reads_per_s": s_reads,
                    "playlist_read_ms_p99": s_rp99, "events_per_s": s_events, "event_batch_ms_p99": s_ep99,
                    "cold_chunk_mib_s": s_chunks, "cold_chunk_ms_p99": s_cp99,
                    "feed_follow_ms": {"p50": follow_p50, "max": follow_max, "uploads": follow_ms.len()},
                    "second_origin_search_ready_s": {"new": fresh_s, "restarted": restart_s},
                    "recommendation_model": {"build_s": model_build_s, "load_s": model_load_s, "bytes": model_bytes}},
            })
        );
    }
    // Stop the origins' tasks before their database and object store go away.
    drop(server);
    drop((embedded, scaled));
    Ok(ExitCode::SUCCESS)
}
