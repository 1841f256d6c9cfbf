//! `chorus bench supernode`: how many concurrent 160 kbps listeners one super-node core serves.
//!
//! The super-node side is the real serving path of `chorus node`: its disk cache (whole
//! renditions as files, read and hashed again for every chunk sent), the chunk service with
//! license checks, region rule, upload slots, on one thread with a single-threaded runtime
//! (one core). The load side runs on the other core: `--clients` QUIC endpoints (each its own
//! node id and license) carrying `--streams` listeners between them. Each listener plays a
//! rendition in real time: it asks for the next 16 KiB chunk every 0.82 s (16 KiB at
//! 160 kbps), so 2,000 listeners offer ~2,400 requests and ~320 Mbit/s per second. Listeners
//! start spread over the first interval. Latency is timed per chunk request, after a warm-up.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use protocol::license::{LICENSE_VERSION, LicenseScope};
use protocol::wire::Priority;
use protocol::{AccountId, Identity, LicenseClaims, LicenseToken, Manifest, NodeId};
use rand::{Rng, SeedableRng};
use transport::chunks::{ChunkService, fetch_range, system_clock};
use transport::upload::UploadGate;
use transport::{Endpoint, Limits};

use super::{percentile, print_table, progress, progress_done};

/// Flags of `chorus bench supernode`.
#[derive(Debug, Args)]
pub struct SuperNodeBenchArgs {
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Concurrent listeners.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub streams: u32,
    /// QUIC client endpoints the listeners are spread over.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub clients: u32,
    /// Bit rate of each stream, kbit/s.
    #[arg(long, default_value_t = 160, value_parser = clap::value_parser!(u32).range(8..=2000))]
    pub kbps: u32,
    /// Seconds of load (after the warm-up).
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// Distinct renditions in the cache (4-minute tracks).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub renditions: u32,
}

const CHUNK_BYTES: u32 = 16 * 1024;
const WARM_UP: Duration = Duration::from_secs(2);

/// Rendition `n`: `seconds` of seeded random bytes (incompressible, as audio is) at `kbps`.
fn rendition(
    origin: &Identity,
    n: u32,
    seconds: u32,
    kbps: u32,
) -> anyhow::Result<(Manifest, Vec<Bytes>)> {
    let bytes = (seconds as usize) * (kbps as usize) * 1000 / 8;
    let sealed = testkit::RenditionSpec::new(n as u8)
        .chunk_bytes(CHUNK_BYTES)
        .random_bytes(bytes, u64::from(n))
        .timing(kbps * 1000, 44_100, u64::from(seconds) * 1000)
        .seal(origin)?;
    Ok((sealed.manifest, sealed.chunks))
}

/// CPU time this thread has used, from the kernel's scheduler statistics.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

struct NodeThread {
    node: NodeId,
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    cpu: std::sync::mpsc::Receiver<Option<Duration>>,
    thread: std::thread::JoinHandle<()>,
}

fn start_node(
    identity: Identity,
    cache: Arc<node::store::DiskCache>,
    issuer: NodeId,
    slots: usize,
) -> anyhow::Result<NodeThread> {
    let (ready, started) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (cpu_tx, cpu) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("super-node".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => return drop(ready.send(Err(anyhow::Error::from(error)))),
            };
            runtime.block_on(async move {
                let limits = Limits {
                    streams_concurrent_max: 256,
                    ..Limits::default()
                };
                let endpoint =
                    match Endpoint::bind(&identity, "127.0.0.1:0".parse().expect("addr"), limits) {
                        Ok(endpoint) => endpoint,
                        Err(error) => return drop(ready.send(Err(error.into()))),
                    };
                let service = ChunkService::new(cache, issuer, system_clock())
                    .with_region("SE".parse().expect("region"))
                    .with_upload_gate(Arc::new(UploadGate::new(slots, None)));
                tokio::spawn(transport::serve(endpoint.clone(), Arc::new(service)));
                let addr = endpoint.local_addr().map_err(anyhow::Error::from);
                let _ = ready.send(addr.map(|addr| (identity.node_id(), addr)));
                let _ = stopped.await;
                let _ = cpu_tx.send(thread_cpu());
                endpoint.close();
            });
        })?;
    let (node, addr) = started.recv().context("super-node thread")??;
    Ok(NodeThread {
        node,
        addr,
        stop,
        cpu,
        thread,
    })
}

pub fn run(args: &SuperNodeBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.seconds > 0.0 && args.seconds <= 3600.0,
        "--seconds must be in (0, 3600]"
    );
    let origin = Identity::from_secret_bytes(&[7; 32]);
    let dir = tempfile::tempdir()?;
    let track_seconds = 240;
    let cache = Arc::new(node::store::DiskCache::open(
        dir.path(),
        u64::MAX / 2,
        0.5,
        origin.node_id(),
        system_clock(),
    )?);
    let mut manifests = Vec::new();
    for n in 0..args.renditions {
        progress(&format!(
            "supernode: caching rendition {}/{}",
            n + 1,
            args.renditions
        ));
        let (manifest, chunks) = rendition(&origin, n, track_seconds, args.kbps)?;
        cache.insert(manifest.signed(), &manifest, &chunks, false)?;
        manifests.push(manifest);
    }
    cache.set_region("SE".parse()?);
    let node_identity = Identity::from_secret_bytes(&[8; 32]);
    let node = start_node(
        node_identity,
        cache,
        origin.node_id(),
        args.streams as usize + 64,
    )?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(load(args, &origin, &manifests, node.node, node.addr));
    let _ = node.stop.send(());
    let node_cpu = node.cpu.recv().ok().flatten();
    let _ = node.thread.join();
    progress_done();
    let outcome = result?;

    let mut latencies = outcome.latencies_ms;
    latencies.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies, 50.0);
    let p99 = percentile(&latencies, 99.0);
    let max = latencies.last().copied().unwrap_or(f64::NAN);
    let interval_ms = f64::from(CHUNK_BYTES) * 8.0 / f64::from(args.kbps);
    let late = latencies.iter().filter(|ms| **ms > interval_ms).count();
    let mbps = outcome.bytes as f64 * 8.0 / outcome.seconds / 1e6;
    let node_cpu_share = node_cpu.map(|cpu| cpu.as_secs_f64() / outcome.total_seconds);
    print_table(
        &format!(
            "super-node: {} listeners at {} kbps over {} client endpoints, {} renditions on disk, one core, {:.0} s",
            args.streams, args.kbps, args.clients, args.renditions, args.seconds
        ),
        &[
            ("chunk requests timed", latencies.len().to_string()),
            ("errors", outcome.errors.to_string()),
            ("chunk p50 ms", format!("{p50:.2}")),
            ("chunk p99 ms", format!("{p99:.2}")),
            ("chunk max ms", format!("{max:.2}")),
            ("later than one chunk's play time", late.to_string()),
            ("delivered Mbit/s", format!("{mbps:.1}")),
            (
                "super-node CPU (share of one core)",
                node_cpu_share.map_or("n/a".into(), |share| format!("{:.0}%", share * 100.0)),
            ),
        ],
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "streams": args.streams,
                "requests": latencies.len(),
                "errors": outcome.errors,
                "chunk_p50_ms": (p50 * 100.0).round() / 100.0,
                "chunk_p99_ms": (p99 * 100.0).round() / 100.0,
                "chunk_max_ms": (max * 100.0).round() / 100.0,
                "late": late,
                "mbps": (mbps * 10.0).round() / 10.0,
                "node_cpu": node_cpu_share.map(|share| (share * 1000.0).round() / 1000.0),
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}

struct Outcome {
    latencies_ms: Vec<f64>,
    errors: u64,
    bytes: u64,
    seconds: f64,
    total_seconds: f64,
}

async fn load(
    args: &SuperNodeBenchArgs,
    origin: &Identity,
    manifests: &[Manifest],
    node: NodeId,
    addr: std::net::SocketAddr,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let renditions: Vec<_> = manifests.iter().map(Manifest::id).collect();
    let now = system_clock()();
    let mut peers = Vec::new();
    for n in 0..args.clients {
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(&n.to_le_bytes());
        secret[31] = 0xC1;
        let identity = Identity::from_secret_bytes(&secret);
        let license = LicenseToken::issue(
            origin,
            &LicenseClaims {
                version: LICENSE_VERSION,
                issuer: origin.node_id(),
                account: AccountId([1; 16]),
                node: identity.node_id(),
                region: "SE".parse()?,
                scope: LicenseScope::Play {
                    renditions: renditions.clone(),
                },
                markets: Vec::new(),
                issued_at: now,
                expires_at: now.plus_ms(3_600_000),
                offline: false,
            },
        )?;
        let limits = Limits {
            streams_concurrent_max: 256,
            ..Limits::default()
        };
        let endpoint = Endpoint::bind(&identity, "127.0.0.1:0".parse()?, limits)?;
        let peer = endpoint.connect(node, addr).await?;
        peers.push((endpoint, peer, license));
    }
    let interval =
        Duration::from_secs_f64(f64::from(CHUNK_BYTES) * 8.0 / (f64::from(args.kbps) * 1000.0));
    let load_started = Instant::now();
    let measure_from = load_started + WARM_UP;
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for stream in 0..args.streams {
        let (_, peer, license) = &peers[(stream % args.clients) as usize];
        let (peer, license) = (peer.clone(), license.clone());
        let manifest = manifests[(stream % args.renditions) as usize].clone();
        let offset = interval.mul_f64(rng.r#gen::<f64>());
        let mut index = rng.gen_range(0..manifest.chunk_count());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut bytes) = (0u64, 0u64);
            let mut next = tokio::time::Instant::from_std(load_started + offset);
            loop {
                tokio::time::sleep_until(next).await;
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                match fetch_range(&peer, &manifest, index, 1, Priority::Playing, &license).await {
                    Ok(items) => {
                        if sent >= measure_from {
                            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                            bytes += items
                                .iter()
                                .map(|item| match item {
                                    transport::chunks::RangeItem::Chunk { data, .. } => {
                                        data.len() as u64
                                    }
                                    transport::chunks::RangeItem::Missing { .. } => 0,
                                })
                                .sum::<u64>();
                        }
                    }
                    Err(_) => errors += 1,
                }
                index = (index + 1) % manifest.chunk_count();
                next += interval;
            }
            (latencies, errors, bytes)
        });
    }
    let mut outcome = Outcome {
        latencies_ms: Vec::new(),
        errors: 0,
        bytes: 0,
        seconds: args.seconds,
        total_seconds: 0.0,
    };
    let total = WARM_UP.as_secs_f64() + args.seconds;
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { break };
                let (latencies, errors, bytes) = joined?;
                outcome.latencies_ms.extend(latencies);
                outcome.errors += errors;
                outcome.bytes += bytes;
            }
            _ = ticker.tick() => {
                progress(&format!(
                    "supernode: {} listeners, {:.0}/{total:.0} s",
                    args.streams,
                    load_started.elapsed().as_secs_f64().min(total)
                ));
            }
        }
    }
    outcome.total_seconds = started.elapsed().as_secs_f64();
    drop(peers);
    Ok(outcome)
}
