//! `chorus bench ...`: benchmarks for operators sizing a machine. Each one measures Chorus
//! against a baseline of bare primitives in the same run, alternating rounds so that noise
//! from a shared machine hits both alike, and reports medians and their ratio.

use std::process::ExitCode;

use clap::{Args, Subcommand};

mod abuse;
mod decode;
mod first_audio;
mod https;
mod origin;
mod pipeline;
mod platform;
mod storage;
mod subsonic;
mod supernode;
mod tracker;
mod transport;
mod web;

pub use abuse::AbuseBenchArgs;
pub use decode::DecodeBenchArgs;
pub use first_audio::FirstAudioBenchArgs;
pub use platform::{PlaylistBenchArgs, SearchBenchArgs};
pub use supernode::SuperNodeBenchArgs;
pub use tracker::TrackerBenchArgs;

/// Which benchmark to run.
#[derive(Debug, Subcommand)]
pub enum Which {
    /// Seal + hash, then verify + open, 16 KiB chunks, against bare blake3 and ChaCha20-Poly1305.
    Pipeline(PipelineArgs),
    /// Fetch chunks over the chunk protocol on loopback, against a bare quinn stream.
    Transport(TransportArgs),
    /// Ingest speed: the three-rendition ladder on one core, against decoding alone.
    Ingest(IngestBenchArgs),
    /// Play authorization latency under concurrent clients, against GET /healthz.
    Play(PlayBenchArgs),
    /// HTTP chunk GET throughput of the origin, against nginx serving the same files.
    Chunks(ChunksBenchArgs),
    /// The tracker core: announce+query mix with 1,000,000 entries on one core, and heap bytes
    /// per (peer, rendition) entry.
    Tracker(TrackerBenchArgs),
    /// Concurrent real-time listeners one super-node core serves from its disk cache, with
    /// chunk latency percentiles.
    Supernode(SuperNodeBenchArgs),
    /// Verify + decrypt + decode of sealed chunks on one core, in multiples of real time,
    /// against decoding alone.
    Decode(DecodeBenchArgs),
    /// Time from pressing play to the first decoded audio over an emulated RTT (link
    /// emulator), warm and cold connections.
    FirstAudio(FirstAudioBenchArgs),
    /// Typo search and type-ahead over a synthetic catalog (default 1,000,000 tracks), against
    /// GET /healthz, with typo recall.
    Search(SearchBenchArgs),
    /// The OpenSubsonic API of `chorus gateway` over a synthetic catalog (default 10,000
    /// tracks): search3, getAlbumList2 and cached getCoverArt against ping, a whole-library
    /// search3 sync, and a stream's first byte through the link emulator against its RTT.
    Subsonic(subsonic::SubsonicBenchArgs),
    /// Paged playlist reads against GET /healthz, and two devices editing one playlist at
    /// once (no acknowledged add lost).
    Playlists(PlaylistBenchArgs),
    /// The cost of TLS: play authorization latency and chunk throughput over HTTPS against
    /// plain HTTP on the same origin, same run.
    Https(https::HttpsBenchArgs),
    /// The origin under abuse: log-in timing for existing against unknown users, slow-header
    /// sockets against GET /healthz, resident memory during concurrent large uploads.
    Abuse(AbuseBenchArgs),
    /// The origin on PostgreSQL and S3-compatible storage against the embedded store, same
    /// run: play authorization latency, playlist reads over a large catalog, listening events
    /// per second, cold chunk GETs.
    Storage(storage::StorageBenchArgs),
    /// The web player in Chromium (headless): first paint, search results after each
    /// keystroke, press play to audio moving, each against a floor measured in the same run.
    Web(web::WebBenchArgs),
}

/// Flags of `chorus bench ingest`.
#[derive(Debug, Args)]
pub struct IngestBenchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Seconds of synthetic stereo audio to ingest per round.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub seconds: u32,
    /// Sample rate of the input (44100 and 48000 pass through; others are resampled).
    #[arg(long, default_value_t = 44_100, value_parser = clap::value_parser!(u32).range(8000..=192_000))]
    pub sample_rate: u32,
    /// Synthesizer seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Flags of `chorus bench play`.
#[derive(Debug, Args)]
pub struct PlayBenchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent clients (each its own account and node id).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub clients: u32,
    /// Requests per client per round.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub requests: u32,
    /// Offered load for the latency measurement, requests per second over all clients.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: u32,
}

/// Flags of `chorus bench chunks`.
#[derive(Debug, Args)]
pub struct ChunksBenchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Seconds of load per side per round.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Length of the synthetic track whose chunks are served.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub track_seconds: u32,
}

/// Flags shared by every benchmark.
#[derive(Debug, Args)]
pub struct Common {
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Rounds of each side; medians are reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// MiB moved per round.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub mib: u32,
}

/// Flags of `chorus bench pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    pub common: Common,
    /// Plaintext bytes per chunk.
    #[arg(long, default_value_t = protocol::content::CHUNK_BYTES_DEFAULT)]
    pub chunk_bytes: u32,
}

/// Flags of `chorus bench transport`.
#[derive(Debug, Args)]
pub struct TransportArgs {
    #[command(flatten)]
    pub common: Common,
    /// Single-chunk requests timed for the round-trip percentiles.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    pub requests: u32,
    /// Range requests kept in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub in_flight: u32,
}

/// Runs the chosen benchmark.
pub fn run(which: Which) -> anyhow::Result<ExitCode> {
    match which {
        Which::Pipeline(args) => pipeline::run(&args),
        Which::Transport(args) => transport::run(&args),
        Which::Ingest(args) => origin::run_ingest(&args),
        Which::Play(args) => origin::run_play(&args),
        Which::Chunks(args) => origin::run_chunks(&args),
        Which::Tracker(args) => tracker::run(&args),
        Which::Supernode(args) => supernode::run(&args),
        Which::Decode(args) => decode::run(&args),
        Which::FirstAudio(args) => first_audio::run(&args),
        Which::Search(args) => platform::run_search(&args),
        Which::Subsonic(args) => subsonic::run(&args),
        Which::Playlists(args) => platform::run_playlists(&args),
        Which::Abuse(args) => abuse::run(&args),
        Which::Storage(args) => storage::run_storage(&args),
        Which::Https(args) => https::run(&args),
        Which::Web(args) => web::run(&args),
    }
}

/// The median of `values` (which must not be empty).
/// Round trips of 20 UDP echoes through a relay delaying each way by `half` (the link
/// emulator a benchmark's traffic crosses), sorted: the link's own RTT, as a same-run baseline.
pub(crate) async fn link_rtts(half: linkem::LinkConfig) -> anyhow::Result<Vec<f64>> {
    use std::time::{Duration, Instant};
    let echo = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let echo_addr = echo.local_addr()?;
    let echoing = tokio::spawn(async move {
        let mut buffer = [0u8; 64];
        while let Ok((len, from)) = echo.recv_from(&mut buffer).await {
            let _ = echo.send_to(&buffer[..len], from).await;
        }
    });
    let relay = linkem::UdpRelay::bind("127.0.0.1:0".parse()?, echo_addr, half, half, 3).await?;
    let pinger = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    pinger.connect(relay.addr()).await?;
    let mut rtts = Vec::new();
    for _ in 0..20 {
        let sent = Instant::now();
        pinger.send(b"ping").await?;
        let mut buffer = [0u8; 8];
        tokio::time::timeout(Duration::from_secs(5), pinger.recv(&mut buffer)).await??;
        rtts.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    echoing.abort();
    rtts.sort_by(f64::total_cmp);
    Ok(rtts)
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// The `p`-th percentile (0..=100) of sorted `values`, nearest rank.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Prints a two-column table of `(name, value)` rows.
pub(crate) fn print_table(title: &str, rows: &[(&str, String)]) {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    println!("{title}");
    for (name, value) in rows {
        println!("  {name:<width$}  {value}");
    }
}

/// One status line on stderr, overwritten as rounds complete.
pub(crate) fn progress(message: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "\r\x1b[2K{message}");
    let _ = stderr.flush();
}

/// Ends the progress line.
pub(crate) fn progress_done() {
    eprintln!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&sorted[..1], 99.0), 1.0);
    }
}
