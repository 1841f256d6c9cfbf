//! Origin benchmarks: ingest speed, play authorization latency, HTTP chunk throughput.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use api::catalog::TrackView;
use origin::config::OriginConfig;
use origin::ingest::{self, IngestLimits};
use origin::store::Role;
use protocol::content::{self, CHUNK_BYTES_DEFAULT, ChunkCipher, ContentKey, SealLabel};
use protocol::{Identity, TrackId};
use serde_json::json;

use super::{
    ChunksBenchArgs, IngestBenchArgs, PlayBenchArgs, median, percentile, print_table, progress,
    progress_done,
};

/// `chorus bench ingest`: the full ladder (decode, loudness, three Vorbis encodes, sealing)
/// on one core, against decoding alone, on the same synthetic recording.
pub fn run_ingest(args: &IngestBenchArgs) -> anyhow::Result<ExitCode> {
    let wav = origin::synth::wav(args.seed, f64::from(args.seconds), args.sample_rate, 2);
    let audio_s = f64::from(args.seconds);
    let (mut ladder, mut decode) = (Vec::new(), Vec::new());
    for round in 1..=args.common.rounds {
        progress(&format!("ingest: round {round}/{}", args.common.rounds));
        let started = Instant::now();
        let transcoded = ingest::transcode(wav.clone(), Some("wav"), 1, &IngestLimits::default())?;
        for rendition in &transcoded.renditions {
            let cipher = ChunkCipher::new(
                &ContentKey([1; 32]),
                SealLabel {
                    track: TrackId([1; 16]),
                    quality: rendition.quality,
                },
            );
            content::seal_rendition(&cipher, &rendition.file.to_vec()?, CHUNK_BYTES_DEFAULT)?;
        }
        ladder.push(audio_s / started.elapsed().as_secs_f64());
        let started = Instant::now();
        let frames = decode_only(&wav)?;
        ensure!(frames > 0, "decoded nothing");
        decode.push(audio_s / started.elapsed().as_secs_f64());
    }
    progress_done();
    let (ladder_x, decode_x) = (median(&mut ladder), median(&mut decode));
    print_table(
        &format!(
            "ingest on one core: {}s of {} Hz stereo, median of {} rounds",
            args.seconds, args.sample_rate, args.common.rounds
        ),
        &[
            (
                "full ladder (3 Vorbis renditions + sealing)",
                format!("{ladder_x:>8.1}x real time"),
            ),
            ("target", "      >= 20x real time".to_string()),
            (
                "decode only (baseline)",
                format!("{decode_x:>8.1}x real time"),
            ),
            (
                "ladder cost / decode cost",
                format!("{:>8.1}", decode_x / ladder_x),
            ),
        ],
    );
    if args.common.json {
        println!(
            "{}",
            json!({"realtime_factor": ladder_x, "decode_realtime_factor": decode_x, "seconds": args.seconds, "sample_rate": args.sample_rate, "rounds": args.common.rounds})
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn decode_only(file: &[u8]) -> anyhow::Result<u64> {
    Ok(ingest::decoded_frames(file)?.0)
}

pub(crate) use testkit::local::LocalOrigin;

async fn local_origin() -> anyhow::Result<LocalOrigin> {
    local_origin_with(None).await
}

/// An in-process origin on loopback telling clients `quic_public` (a relay) as its QUIC
/// address, if given. The benchmarks measure the origin, from one address, not its rate
/// limits; uploads may be as large as a real origin takes.
pub(crate) async fn local_origin_with(
    quic_public: Option<SocketAddr>,
) -> anyhow::Result<LocalOrigin> {
    LocalOrigin::start_with(|config| {
        config.quic_public_addr = quic_public;
        config.rate_limits = origin::ratelimit::RateLimits::off();
        config.upload_bytes_max = OriginConfig::default().upload_bytes_max;
    })
    .await
}

/// A premium account in SE made as the operator makes it (role and tier are not the caller's
/// to choose); its access token.
pub(crate) async fn account(
    origin: &LocalOrigin,
    username: &str,
    role: origin::store::Role,
) -> anyhow::Result<String> {
    origin
        .create_account(username, "SE", role, origin::store::Tier::Premium)
        .await
}

/// Uploads `seconds` of the synthesizer's piece for `seed` to the origin at `base` as the
/// artist whose access token is `token`; returns the created track.
pub(crate) async fn upload_synth(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    seed: u64,
    seconds: f64,
) -> anyhow::Result<TrackView> {
    let metadata = testkit::http::metadata("Bench", "Bench");
    testkit::local::upload_synth(http, base, token, seed, seconds, &metadata).await
}

/// Name of the server runtime's threads (so a benchmark can read their CPU time).
pub(crate) const SERVER_THREAD: &str = "origin-server";

/// CPU seconds the server runtime's threads have used so far (Linux /proc; 0 elsewhere).
pub(crate) fn server_cpu_s() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != SERVER_THREAD {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3; utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        for at in [11, 12] {
            ticks += fields
                .get(at)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0);
        }
    }
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// The origin runs on its own 2-thread runtime (as its own process would); the load generator
/// on a single-threaded one, so the two do not queue behind each other's tasks.
pub(crate) fn runtimes() -> anyhow::Result<(tokio::runtime::Runtime, tokio::runtime::Runtime)> {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()
        .context("starting the server runtime")?;
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    Ok((server, client))
}

/// `chorus bench play`: play authorizations from concurrent clients, against `GET /healthz`
/// (the HTTP stack alone) at the same concurrency, in the same run.
pub fn run_play(args: &PlayBenchArgs) -> anyhow::Result<ExitCode> {
    let (server, client) = runtimes()?;
    let origin = server.block_on(local_origin())?;
    client.block_on(async {
        let artist = account(&origin, "bench_artist", Role::Artist).await?;
        let track = upload_synth(&origin.http, &origin.base, &artist, 3, 5.0).await?;
        let track_id = track.id;
        progress("play: creating listener accounts");
        let mut tokens = Vec::new();
        for client in 0..args.clients {
            tokens.push(account(&origin, &format!("bench_listener_{client}"), Role::Listener).await?);
        }
        let origin = Arc::new(origin);
        let (mut play_p50, mut play_p99, mut health_p50, mut health_p99, mut rates) = (vec![], vec![], vec![], vec![], vec![]);
        let interval = Duration::from_secs_f64(f64::from(args.clients) / f64::from(args.rate));
        for round in 1..=args.common.rounds {
            progress(&format!("play: round {round}/{}", args.common.rounds));
            let (latencies, _) = load(&origin.http, &origin.base, &tokens, args.requests, Some(&track_id), Some(interval)).await?;
            play_p50.push(percentile(&latencies, 50.0));
            play_p99.push(percentile(&latencies, 99.0));
            let (latencies, _) = load(&origin.http, &origin.base, &tokens, args.requests, None, Some(interval)).await?;
            health_p50.push(percentile(&latencies, 50.0));
            health_p99.push(percentile(&latencies, 99.0));
            // Saturation: every client sends back to back.
            let (_, per_s) = load(&origin.http, &origin.base, &tokens, args.requests, Some(&track_id), None).await?;
            rates.push(per_s);
        }
        progress_done();
        let (p50, p99, h50, h99, rate) = (median(&mut play_p50), median(&mut play_p99), median(&mut health_p50), median(&mut health_p99), median(&mut rates));
        print_table(
            &format!(
                "play authorization on loopback: {} concurrent clients x {} requests at {} req/s offered, median of {} rounds",
                args.clients, args.requests, args.rate, args.common.rounds
            ),
            &[
                ("play p50", format!("{p50:>8.2} ms")),
                ("play p99 (target <= 5 ms)", format!("{p99:>8.2} ms")),
                ("play saturation throughput", format!("{rate:>8.0} /s")),
                ("GET /healthz p50 (baseline)", format!("{h50:>8.2} ms")),
                ("GET /healthz p99 (baseline)", format!("{h99:>8.2} ms")),
            ],
        );
        if args.common.json {
            println!("{}", json!({"play_ms_p50": p50, "play_ms_p99": p99, "play_saturation_per_s": rate, "healthz_ms_p50": h50, "healthz_ms_p99": h99, "clients": args.clients, "requests": args.requests, "offered_per_s": args.rate, "rounds": args.common.rounds}));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Each client sends `requests` requests; all clients at once. With `interval`, each client
/// sends on a fixed schedule (clients staggered) and latency counts from the scheduled time,
/// so a slow answer cannot hide the queue behind it; without, back to back (saturation).
/// Returns sorted latencies in ms and requests per second.
pub(crate) async fn load(
    http: &reqwest::Client,
    base: &str,
    tokens: &[String],
    requests: u32,
    track: Option<&str>,
    interval: Option<Duration>,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let clients = tokens.len() as u32;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (client, token) in tokens.iter().enumerate() {
        let (http, base, token, track) = (
            http.clone(),
            base.to_string(),
            token.clone(),
            track.map(str::to_string),
        );
        let node_id = Identity::from_secret_bytes(&[client as u8; 32])
            .node_id()
            .to_hex();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(requests as usize);
            let first = started
                + interval.map_or(Duration::ZERO, |interval| {
                    interval * client as u32 / clients
                });
            for request in 0..requests {
                if let Some(interval) = interval {
                    tokio::time::sleep_until((first + interval * request).into()).await;
                }
                // Timed from the actual send: the timer wheel's millisecond granularity is the
                // load generator's, not the origin's. At the offered rates used here the origin
                // is far from saturation, so no queue hides behind a late send.
                let sent = Instant::now();
                let response = match &track {
                    Some(track) => {
                        http.post(format!("{base}/v1/tracks/{track}/play"))
                            .bearer_auth(&token)
                            .json(&api::playback::PlayRequest {
                                quality: None,
                                offline: None,
                                node_id: node_id.clone(),
                                opening_chunks: None,
                                opening_ms: None,
                            })
                            .send()
                            .await?
                    }
                    None => http.get(format!("{base}/healthz")).send().await?,
                };
                let status = response.status();
                let _ = response.bytes().await?;
                ensure!(status.is_success(), "request failed: {status}");
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

/// `chorus bench chunks`: `GET /v1/chunks/{id}` from the origin against nginx serving the
/// same chunk files from the same disk, same clients, same run.
pub fn run_chunks(args: &ChunksBenchArgs) -> anyhow::Result<ExitCode> {
    ensure_nginx()?;
    let (server, client) = runtimes()?;
    let origin = server.block_on(local_origin())?;
    client.block_on(async {
        let artist = account(&origin, "bench_artist", Role::Artist).await?;
        progress("chunks: ingesting a track to serve");
        let track = upload_synth(&origin.http, &origin.base, &artist, 3, f64::from(args.track_seconds)).await?;
        let track_id = track.id;
        let listener = account(&origin, "bench_listener", Role::Listener).await?;
        let node_id = Identity::from_secret_bytes(&[7; 32]).node_id().to_hex();
        let request = api::playback::PlayRequest {
            quality: Some("high".into()),
            offline: None,
            node_id,
            opening_chunks: None,
            opening_ms: None,
        };
        let grant: api::playback::PlayGrant = origin.post_as(&format!("/v1/tracks/{track_id}/play"), Some(&listener), &request).await?;
        let signed: protocol::SignedManifest = protocol::codec::decode(&hex::decode(&grant.manifest)?)?;
        let body: protocol::ManifestBody = protocol::codec::decode(&signed.body)?;
        let template = grant.chunk_url_template;
        let origin_urls: Vec<String> = body.chunks.iter().map(|id| template.replace("{chunk_id}", &id.to_hex())).collect();

        let nginx = Nginx::start(&origin.data_dir().join("chunks"))?;
        let nginx_urls: Vec<String> = body.chunks.iter().map(|id| format!("http://{}/v1/chunks/{}", nginx.addr, id.to_hex())).collect();
        // The CDN edge the repository ships, in front of this origin: every request checked
        // by the origin (`/verify`, cached per URL), chunks from nginx's cache.
        let cdn = testkit::services::Cdn::start(testkit::services::free_port()?, &[origin.http_addr()])?;
        let cdn_urls: Vec<String> = origin_urls.iter().map(|url| url.replace(&origin.base, &cdn.base)).collect();
        let http = api::client::http_client_builder()?.pool_max_idle_per_host(256).build()?;
        let duration = Duration::from_secs_f64(args.seconds);
        let (mut chorus, mut baseline, mut edge) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=args.common.rounds {
            progress(&format!("chunks: round {round}/{}", args.common.rounds));
            chorus.push(fetch_for(&http, &origin_urls, args.concurrency, duration).await?);
            baseline.push(fetch_for(&http, &nginx_urls, args.concurrency, duration).await?);
            edge.push(fetch_for(&http, &cdn_urls, args.concurrency, duration).await?);
        }
        progress_done();
        let counts = cdn.counts();
        ensure!(counts.refused == 0, "the edge refused {} chunk requests: {}", counts.refused, cdn.error_log());
        let mut edge_rps: Vec<f64> = edge.iter().map(|(rps, _)| *rps).collect();
        let edge_median = median(&mut edge_rps);
        let chorus_rps: Vec<f64> = chorus.iter().map(|(rps, _)| *rps).collect();
        let nginx_rps: Vec<f64> = baseline.iter().map(|(rps, _)| *rps).collect();
        let (mut chorus_rps, mut nginx_rps) = (chorus_rps, nginx_rps);
        let (chorus_median, nginx_median) = (median(&mut chorus_rps), median(&mut nginx_rps));
        let chunk_kib = body.chunk_bytes as f64 / 1024.0;
        let ratio = chorus_median / nginx_median;
        print_table(
            &format!("HTTP chunk GET on loopback: {} chunks of ~{chunk_kib:.0} KiB, {} concurrent clients, {}s per side, median of {} rounds", origin_urls.len(), args.concurrency, args.seconds, args.common.rounds),
            &[
                ("chorus origin", format!("{chorus_median:>9.0} req/s  {:>7.1} MiB/s", chorus_median * chunk_kib / 1024.0)),
                ("nginx, same files", format!("{nginx_median:>9.0} req/s  {:>7.1} MiB/s", nginx_median * chunk_kib / 1024.0)),
                ("ratio (target >= 0.5)", format!("{ratio:>9.3}")),
                ("through the CDN edge (deploy/nginx/cdn.conf)", format!("{edge_median:>9.0} req/s  {:>7.1} MiB/s", edge_median * chunk_kib / 1024.0)),
                ("edge / origin", format!("{:>9.3}", edge_median / chorus_median)),
                ("edge cache hit ratio", format!("{:>9.4}  ({} hits, {} misses)", counts.hit_ratio(), counts.hits + counts.stale, counts.misses)),
            ],
        );
        if args.common.json {
            println!("{}", json!({"origin_rps": chorus_median, "nginx_rps": nginx_median, "ratio": ratio, "cdn_rps": edge_median, "cdn_over_origin": edge_median / chorus_median, "cdn": {"hits": counts.hits + counts.stale, "misses": counts.misses, "hit_ratio": counts.hit_ratio()}, "chunks": origin_urls.len(), "concurrency": args.concurrency, "seconds": args.seconds, "rounds": args.common.rounds}));
        }
        drop((nginx, cdn));
        Ok(ExitCode::SUCCESS)
    })
}

/// Fetches random URLs from `concurrency` clients for `duration`; returns (requests/s, bytes).
pub(crate) async fn fetch_for(
    http: &reqwest::Client,
    urls: &[String],
    concurrency: u32,
    duration: Duration,
) -> anyhow::Result<(f64, u64)> {
    let urls = Arc::new(urls.to_vec());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..concurrency {
        let (http, urls) = (http.clone(), urls.clone());
        tasks.spawn(async move {
            let (mut count, mut bytes, mut next) = (0u64, 0u64, client as usize * 7919);
            while started.elapsed() < duration {
                next = (next * 1_103_515_245 + 12_345) % (1 << 31);
                let response = http.get(&urls[next % urls.len()]).send().await?;
                ensure!(
                    response.status().is_success(),
                    "chunk GET failed: {}",
                    response.status()
                );
                bytes += response.bytes().await?.len() as u64;
                count += 1;
            }
            anyhow::Ok((count, bytes))
        });
    }
    let (mut count, mut bytes) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let (c, b) = result??;
        count += c;
        bytes += b;
    }
    Ok((count as f64 / started.elapsed().as_secs_f64(), bytes))
}

fn ensure_nginx() -> anyhow::Result<()> {
    if which("nginx") {
        return Ok(());
    }
    eprintln!("nginx not found: installing Debian's nginx-light for the baseline");
    let status = std::process::Command::new("sh")
        .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light"])
        .status()
        .context("running apt-get")?;
    if !status.success() || !which("nginx") {
        bail!(
            "could not install nginx (needs root and Debian's package archive); install nginx and retry"
        );
    }
    Ok(())
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
        || std::path::Path::new("/usr/sbin").join(program).is_file()
}

/// nginx serving `chunks/<2 hex>/<64 hex>` at `/v1/chunks/<64 hex>`, with the same cache
/// headers the origin sends, until dropped.
struct Nginx {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(chunks: &std::path::Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let conf = format!(
            "user root;\nworker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n  client_body_temp_path {dir};\n  proxy_temp_path {dir};\n  fastcgi_temp_path {dir};\n  uwsgi_temp_path {dir};\n  scgi_temp_path {dir};\n\
               server {{\n    listen {addr};\n    location ~ \"^/v1/chunks/(..)([0-9a-f]{{62}})$\" {{\n      alias {chunks}/$1/$1$2;\n      default_type application/octet-stream;\n      add_header Cache-Control \"public, max-age=31536000, immutable\";\n    }}\n  }}\n}}\n",
            dir = dir.path().display(),
            chunks = chunks.display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let nginx = if which("nginx") && std::path::Path::new("/usr/sbin/nginx").is_file() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        };
        let child = std::process::Command::new(nginx)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            ensure!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Worker processes run as the configured user: a path it cannot read gives 403s; the
        // first round's status check would report that.
        Ok(Self {
            child,
            addr,
            _dir: dir,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM makes the master stop its workers too (SIGKILL would orphan them).
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
