//! `chorus bench https`: the cost of TLS on the origin's HTTP API. One origin serves HTTPS
//! (`tls_cert`, `tls_key`, from a private CA made for the run) and the same app over plain
//! HTTP on a second loopback listener (`http_plain_addr`); each round measures both sides with
//! the same clients, accounts and chunks.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use origin::config::OriginConfig;
use protocol::Identity;
use serde_json::json;

use super::origin::{fetch_for, load, runtimes, server_cpu_s, upload_synth};
use super::{Common, median, percentile, print_table, progress, progress_done};
use origin::store::{Role, Tier};

/// Flags of `chorus bench https`.
#[derive(Debug, clap::Args)]
pub struct HttpsBenchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent clients asking for play authorizations (each its own account).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub clients: u32,
    /// Play authorizations per client per round and side.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub requests: u32,
    /// Offered play-authorization load, requests per second over all clients.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: u32,
    /// Concurrent chunk fetchers.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Seconds of chunk fetching per side per round.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Speak HTTP/1.1 on both sides (by default HTTPS negotiates h2 by ALPN, as browsers and
    /// Chorus clients do, while plain HTTP stays HTTP/1.1).
    #[arg(long)]
    pub http1: bool,
}

/// One side's figures in one round.
#[derive(Debug, Default, Clone, Copy)]
struct Side {
    play_p50_ms: f64,
    play_p99_ms: f64,
    chunk_mib_s: f64,
    /// MiB of chunks served per CPU second of the origin's threads.
    chunk_mib_per_cpu_s: f64,
}

/// Runs `chorus bench https`.
pub fn run(args: &HttpsBenchArgs) -> anyhow::Result<ExitCode> {
    let (server, client) = runtimes()?;
    let data = tempfile::tempdir()?;
    let tls = data.path().join("tls");
    transport::https::TestAuthority::generate(&["127.0.0.1".into()])?.write(&tls)?;
    transport::https::trust_also(&tls.join(transport::https::CA_FILE));
    let config = OriginConfig {
        data_dir: data.path().join("origin"),
        http_addr: "127.0.0.1:0".parse()?,
        http_plain_addr: Some("127.0.0.1:0".parse()?),
        quic_addr: "127.0.0.1:0".parse()?,
        tls_cert: Some(tls.join(transport::https::CERT_FILE)),
        tls_key: Some(tls.join(transport::https::KEY_FILE)),
        rate_limits: origin::ratelimit::RateLimits::off(),
        ..OriginConfig::default()
    };
    let running = server.block_on(origin::server::start(config))?;
    let https_base = running.base_url.clone();
    let http_base = format!(
        "http://{}",
        running.http_plain_addr.context("no plain listener")?
    );
    let store = running.store().clone();
    let result = client.block_on(async {
        let http = api::client::http_client_builder()?.build()?;
        let account = |username: String, role| {
            let (store, http, base) = (&store, &http, &https_base);
            async move {
                testkit::local::create_account(
                    store,
                    http,
                    base,
                    &username,
                    "SE",
                    role,
                    Tier::Premium,
                )
                .await
            }
        };
        progress("https: accounts and a track");
        let artist = account("bench_artist".into(), Role::Artist).await?;
        let track = upload_synth(&http, &https_base, &artist, 5, 60.0).await?;
        let track_id = track.id;
        let mut tokens = Vec::new();
        for index in 0..args.clients {
            let username = format!("bench_listener_{index}");
            tokens.push(account(username, Role::Listener).await?);
        }
        let mut https_rounds = Vec::new();
        let mut http_rounds = Vec::new();
        for round in 1..=args.common.rounds {
            // Alternate which side goes first, so drift in the machine's load is shared.
            let order = if round % 2 == 1 {
                [true, false]
            } else {
                [false, true]
            };
            for tls_on in order {
                let base = if tls_on { &https_base } else { &http_base };
                progress(&format!(
                    "https: round {round}/{} over {}",
                    args.common.rounds,
                    if tls_on { "HTTPS" } else { "HTTP" }
                ));
                let side = measure(args, base, &tokens, &track_id).await?;
                if tls_on {
                    https_rounds.push(side);
                } else {
                    http_rounds.push(side);
                }
            }
        }
        progress_done();
        anyhow::Ok((https_rounds, http_rounds))
    });
    server.block_on(running.shutdown())?;
    let (https_rounds, http_rounds) = result?;
    let med = |rounds: &[Side], pick: fn(&Side) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(pick).collect();
        median(&mut values)
    };
    let (s50, s99, smib, scpu) = (
        med(&https_rounds, |side| side.play_p50_ms),
        med(&https_rounds, |side| side.play_p99_ms),
        med(&https_rounds, |side| side.chunk_mib_s),
        med(&https_rounds, |side| side.chunk_mib_per_cpu_s),
    );
    let (p50, p99, pmib, pcpu) = (
        med(&http_rounds, |side| side.play_p50_ms),
        med(&http_rounds, |side| side.play_p99_ms),
        med(&http_rounds, |side| side.chunk_mib_s),
        med(&http_rounds, |side| side.chunk_mib_per_cpu_s),
    );
    let ratio_cpu = scpu / pcpu;
    // Ratios as "HTTPS performance over HTTP performance": for latency, HTTP over HTTPS.
    let (ratio_p50, ratio_p99, ratio_chunks) = (p50 / s50, p99 / s99, smib / pmib);
    print_table(
        &format!(
            "HTTPS ({}) vs HTTP/1.1 on one origin (loopback, keep-alive): {} clients at {} play/s offered, {} chunk fetchers, median of {} rounds",
            if args.http1 { "HTTP/1.1" } else { "h2" },
            args.clients,
            args.rate,
            args.concurrency,
            args.common.rounds
        ),
        &[
            ("play p50 HTTPS / HTTP", format!("{s50:>8.2} / {p50:.2} ms")),
            ("play p99 HTTPS / HTTP", format!("{s99:>8.2} / {p99:.2} ms")),
            (
                "chunks HTTPS / HTTP",
                format!("{smib:>8.1} / {pmib:.1} MiB/s"),
            ),
            (
                "chunks per origin CPU second HTTPS / HTTP",
                format!("{scpu:>8.1} / {pcpu:.1} MiB"),
            ),
            (
                "ratio of chunks per origin CPU second",
                format!("{ratio_cpu:>8.3}"),
            ),
            (
                "ratio p50, p99, chunks (target >= 0.8)",
                format!("{ratio_p50:>8.3}, {ratio_p99:.3}, {ratio_chunks:.3}"),
            ),
        ],
    );
    if args.common.json {
        println!(
            "{}",
            json!({
                "https": {"play_ms_p50": s50, "play_ms_p99": s99, "chunk_mib_s": smib, "chunk_mib_per_origin_cpu_s": scpu},
                "http": {"play_ms_p50": p50, "play_ms_p99": p99, "chunk_mib_s": pmib, "chunk_mib_per_origin_cpu_s": pcpu},
                "ratio_chunks_per_origin_cpu": ratio_cpu,
                "ratio_play_p50": ratio_p50, "ratio_play_p99": ratio_p99, "ratio_chunks": ratio_chunks,
                "clients": args.clients, "offered_per_s": args.rate, "concurrency": args.concurrency,
                "rounds": args.common.rounds,
                "https_protocol": if args.http1 { "http/1.1" } else { "h2" },
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One side of one round, with a new client (new connections, handshakes included, then
/// kept alive as a player's would be).
async fn measure(
    args: &HttpsBenchArgs,
    base: &str,
    tokens: &[String],
    track_id: &str,
) -> anyhow::Result<Side> {
    let mut builder = api::client::http_client_builder()?.pool_max_idle_per_host(1024);
    if args.http1 {
        builder = builder.http1_only();
    }
    let http = builder.build()?;
    let interval = Duration::from_secs_f64(tokens.len() as f64 / f64::from(args.rate));
    let (latencies, _) = load(
        &http,
        base,
        tokens,
        args.requests,
        Some(track_id),
        Some(interval),
    )
    .await?;
    // Chunk URLs granted through this side, so their base is this side's.
    let node_id = Identity::from_secret_bytes(&[1; 32]).node_id().to_hex();
    let response = http
        .post(format!("{base}/v1/tracks/{track_id}/play"))
        .bearer_auth(&tokens[0])
        .json(&api::playback::PlayRequest {
            quality: Some("high".into()),
            offline: None,
            node_id,
            opening_chunks: None,
            opening_ms: None,
        })
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "play: {}",
        response.status()
    );
    let grant: api::playback::PlayGrant = response.json().await?;
    let signed: protocol::SignedManifest = protocol::codec::decode(&hex::decode(&grant.manifest)?)?;
    let body: protocol::ManifestBody = protocol::codec::decode(&signed.body)?;
    let template = grant.chunk_url_template;
    // The template names the origin's public URL (HTTPS); the plain side swaps its base in.
    let path = template
        .find("/v1/chunks/")
        .map(|at| template[at..].to_string())
        .context("chunk URL template without /v1/chunks/")?;
    let urls: Vec<String> = body
        .chunks
        .iter()
        .map(|id| format!("{base}{}", path.replace("{chunk_id}", &id.to_hex())))
        .collect();
    let duration = Duration::from_secs_f64(args.seconds);
    let cpu_before = server_cpu_s();
    let started = Instant::now();
    let (_, bytes) = fetch_for(&http, &urls, args.concurrency, duration).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_s = server_cpu_s() - cpu_before;
    let mib = bytes as f64 / (1024.0 * 1024.0);
    Ok(Side {
        play_p50_ms: percentile(&latencies, 50.0),
        play_p99_ms: percentile(&latencies, 99.0),
        chunk_mib_s: mib / seconds,
        chunk_mib_per_cpu_s: if cpu_s > 0.0 { mib / cpu_s } else { f64::NAN },
    })
}
