//! `chorus bench transport`: the chunk protocol against bare quinn, on loopback.
//!
//! Both sides use the same endpoints (same TLS, same windows and stream caps) between two
//! endpoints in this process. Chorus side: `fetch_range` requests of 64 chunks — license
//! check at the server, hash check before sending, framing, hash check on receipt. Baseline:
//! a bare bidirectional stream per range that moves the same ciphertext bytes with no framing
//! and no checks. Rounds alternate; medians are reported. Round-trip times are single-chunk
//! requests on the warm connection, one at a time.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use protocol::content::CHUNK_BYTES_DEFAULT;
use protocol::license::{LICENSE_VERSION, LicenseScope};
use protocol::manifest::CHUNKS_PER_RENDITION_MAX;
use protocol::wire::Priority;
use protocol::{AccountId, Identity, LicenseClaims, LicenseToken, Manifest, NodeId, Quality};
use rand::SeedableRng;
use transport::chunks::{self, ChunkService, MemoryChunkSource, RangeItem};
use transport::{Endpoint, Limits, Peer};

use super::{TransportArgs, median, percentile, print_table, progress, progress_done};

/// Chunks per range request (1 MiB at 16 KiB chunks).
const RANGE_CHUNKS: u32 = 64;

struct Setup {
    client: Endpoint,
    chorus: Peer,
    raw: Peer,
    manifest: Manifest,
    license: LicenseToken,
    total_bytes: usize,
    _servers: Servers,
}

/// Server and client run as they would in two processes: each on its own thread with its
/// own single-threaded runtime, so neither steals the other's core.
pub fn run(args: &TransportArgs) -> anyhow::Result<ExitCode> {
    single_threaded_runtime()?.block_on(run_async(args))
}

fn single_threaded_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The two servers (chorus and bare), on their own thread until dropped.
struct Servers {
    chorus: (NodeId, SocketAddr),
    raw: (NodeId, SocketAddr),
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start_servers(
    identities: [Identity; 2],
    issuer: NodeId,
    manifest: Manifest,
    sealed: Arc<Vec<Bytes>>,
) -> anyhow::Result<Servers> {
    let (ready, started) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("bench-servers".into())
        .spawn(move || {
            let serve = async move {
                let loopback: SocketAddr = "127.0.0.1:0".parse()?;
                let [chorus_identity, raw_identity] = identities;
                let chorus = Endpoint::bind(&chorus_identity, loopback, Limits::default())?;
                let source = MemoryChunkSource::new();
                source.insert(&manifest, sealed.iter().cloned().map(Some).collect())?;
                let service = ChunkService::new(source, issuer, chunks::system_clock());
                tokio::spawn(transport::serve(chorus.clone(), Arc::new(service)));
                let raw = Endpoint::bind(&raw_identity, loopback, Limits::default())?;
                tokio::spawn(serve_raw(raw.clone(), sealed));
                anyhow::Ok((chorus, raw))
            };
            let runtime = match single_threaded_runtime() {
                Ok(runtime) => runtime,
                Err(error) => return drop(ready.send(Err(error))),
            };
            runtime.block_on(async move {
                match serve.await {
                    Ok((chorus, raw)) => {
                        let addrs = (|| {
                            anyhow::Ok((
                                (chorus.node_id(), chorus.local_addr()?),
                                (raw.node_id(), raw.local_addr()?),
                            ))
                        })();
                        let _ = ready.send(addrs);
                        let _ = stopped.await;
                        chorus.close();
                        raw.close();
                    }
                    Err(error) => drop(ready.send(Err(error))),
                }
            });
        })?;
    let (chorus, raw) = started.recv().context("server thread died")??;
    Ok(Servers {
        chorus,
        raw,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn run_async(args: &TransportArgs) -> anyhow::Result<ExitCode> {
    let setup = Arc::new(setup(args.common.mib).await?);
    let rounds = args.common.rounds;
    let (mut chorus, mut raw) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        progress(&format!("transport: throughput round {round}/{rounds}"));
        chorus.push(fetch_all(&setup, args.in_flight, false).await?);
        raw.push(fetch_all(&setup, args.in_flight, true).await?);
    }
    let mut chorus_rtt = Vec::with_capacity(args.requests as usize);
    let mut raw_rtt = Vec::with_capacity(args.requests as usize);
    let mut ping_rtt = Vec::with_capacity(args.requests as usize);
    let chunk_count = setup.manifest.chunk_count();
    for request in 0..args.requests {
        if request % 100 == 0 {
            progress(&format!(
                "transport: round trips {request}/{}",
                args.requests
            ));
        }
        let index = request % chunk_count;
        chorus_rtt.push(timed_us(chorus_fetch(&setup, index, 1)).await?);
        raw_rtt.push(timed_us(raw_fetch(&setup.raw, index, 1)).await?);
        ping_rtt.push(timed_us(ping(&setup.chorus, u64::from(request))).await?);
    }
    progress_done();
    chorus_rtt.sort_by(f64::total_cmp);
    raw_rtt.sort_by(f64::total_cmp);
    ping_rtt.sort_by(f64::total_cmp);

    let (chorus_mib_s, quinn_raw_mib_s) = (median(&mut chorus), median(&mut raw));
    let ratio = chorus_mib_s / quinn_raw_mib_s;
    let (p50, p99) = (percentile(&chorus_rtt, 50.0), percentile(&chorus_rtt, 99.0));
    print_table(
        &format!(
            "chunk transport on loopback: {} MiB per round in {}-chunk ranges, {} in flight, median of {rounds} rounds",
            args.common.mib, RANGE_CHUNKS, args.in_flight
        ),
        &[
            (
                "chorus chunk protocol",
                format!("{chorus_mib_s:>9.1} MiB/s"),
            ),
            ("bare quinn stream", format!("{quinn_raw_mib_s:>9.1} MiB/s")),
            ("ratio (target >= 0.7)", format!("{ratio:>9.3}")),
            (
                "1-chunk request p50 (target <= 200)",
                format!("{p50:>9.0} us"),
            ),
            ("1-chunk request p99", format!("{p99:>9.0} us")),
            (
                "bare quinn 1-chunk p50",
                format!("{:>9.0} us", percentile(&raw_rtt, 50.0)),
            ),
            (
                "bare quinn 1-chunk p99",
                format!("{:>9.0} us", percentile(&raw_rtt, 99.0)),
            ),
            (
                "chorus ping p50",
                format!("{:>9.0} us", percentile(&ping_rtt, 50.0)),
            ),
        ],
    );
    if args.common.json {
        println!(
            "{}",
            serde_json::json!({
                "chorus_mib_s": chorus_mib_s,
                "quinn_raw_mib_s": quinn_raw_mib_s,
                "ratio": ratio,
                "request_rtt_us_p50": p50,
                "request_rtt_us_p99": p99,
                "quinn_raw_rtt_us_p50": percentile(&raw_rtt, 50.0),
                "quinn_raw_rtt_us_p99": percentile(&raw_rtt, 99.0),
                "ping_rtt_us_p50": percentile(&ping_rtt, 50.0),
                "mib": args.common.mib,
                "rounds": rounds,
                "requests": args.requests,
                "in_flight": args.in_flight,
            })
        );
    }
    setup.client.close();
    Ok(ExitCode::SUCCESS)
}

async fn setup(mib: u32) -> anyhow::Result<Setup> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let origin = Identity::generate(&mut rng);
    let client_identity = Identity::generate(&mut rng);

    let total = mib as usize * 1024 * 1024;
    ensure!(
        total / CHUNK_BYTES_DEFAULT as usize <= CHUNKS_PER_RENDITION_MAX,
        "--mib too large for one rendition (at most {} MiB)",
        CHUNKS_PER_RENDITION_MAX * CHUNK_BYTES_DEFAULT as usize / (1024 * 1024)
    );
    let sealed = testkit::RenditionSpec::new(2)
        .chunk_bytes(CHUNK_BYTES_DEFAULT)
        .quality(Quality::High)
        .random_bytes(total, 7)
        .timing(320_000, 44_100, total as u64 * 8 / 320)
        .seal(&origin)?;
    let manifest = sealed.manifest;
    let sealed: Arc<Vec<Bytes>> = Arc::new(sealed.chunks);
    let total_bytes = sealed.iter().map(Bytes::len).sum();

    let now = chunks::system_clock()();
    let license = LicenseToken::issue(
        &origin,
        &LicenseClaims {
            version: LICENSE_VERSION,
            issuer: origin.node_id(),
            account: AccountId([1; 16]),
            node: client_identity.node_id(),
            region: "SE".parse()?,
            scope: LicenseScope::Play {
                renditions: vec![manifest.id()],
            },
            markets: Vec::new(),
            issued_at: now,
            expires_at: now.plus_ms(3_600_000),
            offline: false,
        },
    )?;

    let servers = start_servers(
        [Identity::generate(&mut rng), Identity::generate(&mut rng)],
        origin.node_id(),
        manifest.clone(),
        sealed,
    )?;
    let loopback: SocketAddr = "127.0.0.1:0".parse()?;
    let client = Endpoint::bind(&client_identity, loopback, Limits::default())?;
    let chorus = client.connect(servers.chorus.0, servers.chorus.1).await?;
    let raw = client.connect(servers.raw.0, servers.raw.1).await?;
    Ok(Setup {
        client,
        chorus,
        raw,
        manifest,
        license,
        total_bytes,
        _servers: servers,
    })
}

/// The baseline server: an 8-byte request (first, count), answered with the chunks' bytes.
async fn serve_raw(endpoint: Endpoint, chunks: Arc<Vec<Bytes>>) {
    while let Some(Ok(peer)) = endpoint.accept().await {
        let chunks = chunks.clone();
        tokio::spawn(async move {
            while let Ok((mut send, mut recv)) = peer.quinn_connection().accept_bi().await {
                let chunks = chunks.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 8];
                    if recv.read_exact(&mut request).await.is_err() {
                        return;
                    }
                    let first = u32::from_be_bytes([request[0], request[1], request[2], request[3]])
                        as usize;
                    let count = u32::from_be_bytes([request[4], request[5], request[6], request[7]])
                        as usize;
                    let Some(slice) = chunks.get(first..first.saturating_add(count)) else {
                        return;
                    };
                    let mut pieces: Vec<Bytes> = slice.to_vec();
                    if send.write_all_chunks(&mut pieces).await.is_ok() {
                        let _ = send.finish();
                    }
                });
            }
        });
    }
}

async fn chorus_fetch(setup: &Setup, first: u32, count: u32) -> anyhow::Result<usize> {
    let items = chunks::fetch_range(
        &setup.chorus,
        &setup.manifest,
        first,
        count,
        Priority::Playing,
        &setup.license,
    )
    .await?;
    let mut bytes = 0;
    for item in items {
        match item {
            RangeItem::Chunk { data, .. } => bytes += data.len(),
            RangeItem::Missing { index, .. } => bail!("server lost chunk {index}"),
        }
    }
    Ok(bytes)
}

async fn raw_fetch(peer: &Peer, first: u32, count: u32) -> anyhow::Result<usize> {
    let (mut send, mut recv) = peer.quinn_connection().open_bi().await?;
    let mut request = [0u8; 8];
    request[..4].copy_from_slice(&first.to_be_bytes());
    request[4..].copy_from_slice(&count.to_be_bytes());
    send.write_all(&request).await?;
    send.finish()?;
    let mut bytes = 0;
    while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
        bytes += chunk.bytes.len();
    }
    Ok(bytes)
}

async fn ping(peer: &Peer, nonce: u64) -> anyhow::Result<usize> {
    match peer
        .request_one(&protocol::wire::Request::Ping { nonce })
        .await?
    {
        protocol::wire::Response::Pong { nonce: echoed } if echoed == nonce => Ok(8),
        other => bail!("unexpected answer to a ping: {other:?}"),
    }
}

/// Ranges of the whole rendition, split into `lanes` sequential lanes run concurrently.
fn lanes(chunk_count: u32, lanes: u32) -> Vec<Vec<(u32, u32)>> {
    let mut out = vec![Vec::new(); lanes as usize];
    let mut first = 0;
    let mut lane = 0;
    while first < chunk_count {
        let count = RANGE_CHUNKS.min(chunk_count - first);
        out[lane % lanes as usize].push((first, count));
        first += count;
        lane += 1;
    }
    out
}

/// Fetches the whole rendition once, `in_flight` lanes of sequential range requests running
/// as concurrent tasks; returns MiB/s.
async fn fetch_all(setup: &Arc<Setup>, in_flight: u32, raw: bool) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes(setup.manifest.chunk_count(), in_flight) {
        let setup = setup.clone();
        tasks.spawn(async move {
            let mut bytes = 0;
            for (first, count) in lane {
                bytes += if raw {
                    raw_fetch(&setup.raw, first, count).await?
                } else {
                    chorus_fetch(&setup, first, count).await?
                };
            }
            anyhow::Ok(bytes)
        });
    }
    let mut moved = 0;
    while let Some(bytes) = tasks.join_next().await {
        moved += bytes??;
    }
    ensure!(
        moved == setup.total_bytes,
        "moved {moved} of {} bytes",
        setup.total_bytes
    );
    Ok(moved as f64 / (1024.0 * 1024.0) / started.elapsed().as_secs_f64())
}

async fn timed_us(
    fetch: impl std::future::Future<Output = anyhow::Result<usize>>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let bytes = fetch.await?;
    ensure!(bytes > 0, "empty answer");
    Ok(started.elapsed().as_secs_f64() * 1e6)
}
