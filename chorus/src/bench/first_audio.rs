//! `chorus bench first-audio`: time from pressing play to the first decoded PCM, over an
//! emulated round trip, warm and cold.
//!
//! An in-process origin sits behind the link emulator: a TCP relay in front of its HTTP API
//! and a UDP relay in front of its QUIC endpoint (the origin tells clients the relay's
//! address), each adding half of `--rtt-ms` per direction. A listener built on `client-lib`
//! presses play on tracks it has never played (no local cache): the play authorization (with
//! the opening chunk, the first-chunk path), the scheduler fetching over QUIC, verification,
//! decryption and decoding until the first PCM sample. Playback stops there.
//!
//! - warm: the HTTP connection and the QUIC connection to the origin are already open (the
//!   listener played something before);
//! - cold: a new HTTP client and a new QUIC endpoint for each play (TCP and QUIC handshakes
//!   included; the session token is already there, as in an app that was just opened).
//!
//! Baseline in the same run: the emulated RTT itself (a UDP echo through the same relays).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use api::client::{OriginApi, PlayParams};
use clap::Args;
use client_lib::decode::{PcmSink, StreamDecoder};
use client_lib::player::{self, Control, Output, PlayOptions};
use linkem::{LinkConfig, TcpRelay, UdpRelay};
use protocol::Identity;
use serde_json::json;
use transport::{Endpoint, Limits};

use super::{percentile, print_table, progress, progress_done};

/// Flags of `chorus bench first-audio`.
#[derive(Debug, Args)]
pub struct FirstAudioBenchArgs {
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Emulated round trip between listener and origin, milliseconds.
    #[arg(long, default_value_t = 40.0)]
    pub rtt_ms: f64,
    /// Plays measured for each of warm and cold.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(3..=10_000))]
    pub plays: u32,
    /// Distinct tracks in the catalog (each play takes the next one).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub tracks: u32,
}

/// Reports when the first samples come out.
struct FirstPcm(Option<tokio::sync::oneshot::Sender<Instant>>);

impl PcmSink for FirstPcm {
    fn format(&mut self, _: u32, _: u16) -> std::io::Result<()> {
        Ok(())
    }
    fn samples(&mut self, samples: &[i16]) -> std::io::Result<()> {
        if !samples.is_empty()
            && let Some(first) = self.0.take()
        {
            let _ = first.send(Instant::now());
        }
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One press of play: authorize (with the opening chunk), play until the first PCM, stop.
async fn press(
    api: &OriginApi,
    access: &str,
    endpoint: &Endpoint,
    track: &str,
) -> anyhow::Result<f64> {
    let pressed = Instant::now();
    let params = PlayParams {
        quality: Some("normal"),
        offline: false,
        opening_chunks: 1,
        opening_ms: client_lib::scheduler::OPENING_MS,
    };
    let grant = api
        .play_with(access, track, &endpoint.node_id(), params)
        .await?;
    let cached = grant
        .opening
        .iter()
        .enumerate()
        .map(|(index, chunk)| (index as u32, chunk.clone()))
        .collect();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let decoder = StreamDecoder::start(FirstPcm(Some(first_tx)), grant.gain_db)?;
    let (out, mut outputs) = tokio::sync::mpsc::channel(64);
    let (controls, control_rx) = tokio::sync::mpsc::channel(1);
    let playback = {
        let (endpoint, grant) = (endpoint.clone(), grant.clone());
        tokio::spawn(async move {
            player::play_with_controls(
                &endpoint,
                &grant,
                cached,
                PlayOptions::default(),
                out,
                control_rx,
            )
            .await
        })
    };
    let mut first_rx = first_rx;
    let first = loop {
        tokio::select! {
            output = outputs.recv() => match output {
                Some(Output::Audio(piece)) => {
                    // Blocks only with 256 pieces queued; playback stops long before that.
                    decoder.push(piece);
                }
                Some(_) => {}
                None => break None,
            },
            at = &mut first_rx => break at.ok(),
        }
    };
    let _ = controls.send(Control::Stop).await;
    while outputs.recv().await.is_some() {}
    let _ = playback.await;
    let _ = tokio::task::spawn_blocking(move || decoder.finish()).await;
    let first = first.context("the track ended with no audio")?;
    Ok(first.duration_since(pressed).as_secs_f64() * 1000.0)
}

pub fn run(args: &FirstAudioBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.rtt_ms.is_finite() && (0.0..=10_000.0).contains(&args.rtt_ms),
        "--rtt-ms must be between 0 and 10000"
    );
    let (server, client) = super::origin::runtimes()?;
    let half = LinkConfig::half_rtt(args.rtt_ms);
    // The relay's socket first: the origin must tell clients its address.
    let quic_relay_socket = server.block_on(tokio::net::UdpSocket::bind("127.0.0.1:0"))?;
    let quic_public = quic_relay_socket.local_addr()?;
    let origin = server.block_on(super::origin::local_origin_with(Some(quic_public)))?;
    let (_quic_relay, http_relay) = server.block_on(async {
        let quic = UdpRelay::start(quic_relay_socket, origin.quic_addr(), half, half, 1)?;
        let http =
            TcpRelay::bind("127.0.0.1:0".parse()?, origin.http_addr(), half, half, 2).await?;
        anyhow::Ok((quic, http))
    })?;
    // Keep the server runtime's threads for the origin and the relays.
    let _server = Arc::new(server);
    let base = format!("http://{}", http_relay.addr());
    let result = client.block_on(async {
        progress("first-audio: ingesting the catalog");
        let artist =
            super::origin::account(&origin, "fa_artist", origin::store::Role::Artist).await?;
        let mut tracks = Vec::new();
        for seed in 0..args.tracks {
            let seed = 40 + u64::from(seed);
            let track =
                super::origin::upload_synth(&origin.http, &origin.base, &artist, seed, 8.0).await?;
            tracks.push(track.id);
        }
        let access =
            super::origin::account(&origin, "fa_listener", origin::store::Role::Listener).await?;
        let identity = Identity::from_secret_bytes(&[0x5a; 32]);

        // The link itself, for scale: UDP echoes through a relay with the same setting.
        let link_rtts = super::link_rtts(half).await?;

        // Warm: one client, one endpoint, connections open.
        let api = OriginApi::new(&base)?;
        let endpoint = Endpoint::bind(&identity, "127.0.0.1:0".parse()?, Limits::default())?;
        press(&api, &access, &endpoint, &tracks[0]).await?;
        let mut warm = Vec::new();
        for play in 0..args.plays {
            progress(&format!("first-audio: warm {}/{}", play + 1, args.plays));
            let track = &tracks[(play as usize + 1) % tracks.len()];
            warm.push(press(&api, &access, &endpoint, track).await?);
        }
        endpoint.close();

        // Cold: a new HTTP client and QUIC endpoint per play.
        let mut cold = Vec::new();
        for play in 0..args.plays {
            progress(&format!("first-audio: cold {}/{}", play + 1, args.plays));
            let api = OriginApi::new(&base)?;
            let endpoint = Endpoint::bind(&identity, "127.0.0.1:0".parse()?, Limits::default())?;
            let track = &tracks[play as usize % tracks.len()];
            cold.push(press(&api, &access, &endpoint, track).await?);
            endpoint.close();
        }
        progress_done();
        warm.sort_by(f64::total_cmp);
        cold.sort_by(f64::total_cmp);
        anyhow::Ok((link_rtts, warm, cold))
    })?;
    let (link_rtts, warm, cold) = result;
    let rtt = args.rtt_ms;
    let (warm50, warm99) = (percentile(&warm, 50.0), percentile(&warm, 99.0));
    let (cold50, cold99) = (percentile(&cold, 50.0), percentile(&cold, 99.0));
    let link50 = percentile(&link_rtts, 50.0);
    print_table(
        &format!(
            "first audio over an emulated {rtt} ms RTT (user-space relays), {} plays each, uncached tracks",
            args.plays
        ),
        &[
            ("link RTT p50 (baseline)", format!("{link50:>8.1} ms")),
            (
                "warm p50",
                format!("{warm50:>8.1} ms   target <= {:.1}", 1.2 * rtt + 5.0),
            ),
            (
                "warm p99",
                format!("{warm99:>8.1} ms   target <= {:.1}", 2.0 * rtt + 10.0),
            ),
            (
                "cold p50",
                format!("{cold50:>8.1} ms   target <= {:.1}", 2.0 * rtt + 15.0),
            ),
            ("cold p99", format!("{cold99:>8.1} ms")),
            (
                "warm p50 / link RTT",
                format!("{:>8.2}", warm50 / link50.max(1e-3)),
            ),
        ],
    );
    if args.json {
        println!(
            "{}",
            json!({
                "rtt_ms": rtt,
                "link_rtt_ms_p50": link50,
                "warm_ms": {"p50": warm50, "p90": percentile(&warm, 90.0), "p99": warm99},
                "cold_ms": {"p50": cold50, "p90": percentile(&cold, 90.0), "p99": cold99},
                "plays": args.plays,
                "targets_ms": {"warm_p50": 1.2 * rtt + 5.0, "warm_p99": 2.0 * rtt + 10.0, "cold_p50": 2.0 * rtt + 15.0},
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
