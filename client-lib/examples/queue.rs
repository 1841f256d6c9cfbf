//! Play a queue with the listener API: shuffle, repeat, skip, seek, the next track
//! prefetched, adaptive bitrate, downloads played offline; decoded into one WAV file.
//!
//! ```sh
//! CHORUS_PASSWORD=... cargo run -p client-lib --example queue -- \
//!     http://127.0.0.1:8470 USER out.wav TRACK_ID TRACK_ID...
//! ```
//!
//! After 2 seconds of the first track it seeks to 0:30 of it, and it skips the second track
//! after its first second: the controls an app's buttons would send. It prints what the
//! listener reports: each track's start (quality, whether it was prefetched), prefetches,
//! seeks and where each track's bytes came from.

use std::sync::Arc;
use std::time::Duration;

use api::client::OriginApi;
use client_lib::cache::ClientCache;
use client_lib::decode::{Continuous, PcmSink, StreamDecoder, WavSink};
use client_lib::listener::{Listener, ListenerConfig, QueueControl, QueueOutput};
use client_lib::offline::OfflineStore;
use client_lib::player::PlayOptions;
use client_lib::queue::{Queue, Repeat};
use transport::{Endpoint, Limits};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, origin, user, out, tracks @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: queue ORIGIN_URL USER OUT.wav TRACK_ID... (password in CHORUS_PASSWORD)"
        );
    };
    let password = std::env::var("CHORUS_PASSWORD")?;
    let identity = transport::keyfile::load_or_create_identity("example-cache/node.key".as_ref())?;
    let api = OriginApi::new(origin)?;
    let session = api.session(user, &password).await?;
    let endpoint = Endpoint::bind(&identity, "0.0.0.0:0".parse()?, Limits::default())?;
    let listener = Listener::new(
        api,
        session.access_token,
        endpoint,
        PlayOptions {
            cache: Some(Arc::new(ClientCache::open(
                "example-cache".as_ref(),
                512 << 20,
            )?)),
            ..PlayOptions::default()
        },
        ListenerConfig {
            offline: Some(OfflineStore::new("example-cache/offline".as_ref())),
            ..ListenerConfig::default()
        },
    );

    // Playlist order, shuffled from a seed (the same seed, the same order), no repeat.
    let mut queue = Queue::new(tracks.to_vec(), 2026)?;
    queue.set_shuffle(true);
    queue.set_repeat(Repeat::Off);
    println!("order: {:?}", queue.order());

    let (outputs_tx, mut outputs) = tokio::sync::mpsc::channel(64);
    let (controls, controls_rx) = tokio::sync::mpsc::channel(8);
    let playing = tokio::spawn(async move {
        listener
            .play_queue(&mut queue, outputs_tx, controls_rx)
            .await
    });

    // One WAV for the whole queue; a decoder per track (and per seek).
    let sink: Continuous<Box<dyn PcmSink>> =
        Continuous::new(Box::new(WavSink::file(out.as_ref())?));
    let mut decoder: Option<StreamDecoder> = None;
    let mut gain = 0.0;
    let mut track_number = 0;
    while let Some(output) = outputs.recv().await {
        match output {
            QueueOutput::TrackStarted {
                track_id,
                gain_db,
                quality,
                prefetched,
            } => {
                track_number += 1;
                gain = gain_db;
                if let Some(done) = decoder.take() {
                    let _ = done.finish();
                }
                println!(
                    "track {track_number}: {track_id} ({quality:?}, prefetched: {prefetched})"
                );
                // The app's buttons: seek in the first track, skip the second.
                let controls = controls.clone();
                let control = match track_number {
                    1 => Some((2, QueueControl::Seek(30_000))),
                    2 => Some((1, QueueControl::Skip)),
                    _ => None,
                };
                if let Some((after_s, control)) = control {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(after_s)).await;
                        let _ = controls.send(control).await;
                    });
                }
            }
            QueueOutput::Audio(bytes) => {
                if decoder.is_none() {
                    decoder = Some(StreamDecoder::start(sink.clone(), gain)?);
                }
                if let Some(decoder) = &decoder {
                    tokio::task::block_in_place(|| decoder.push(bytes));
                }
            }
            QueueOutput::Seeked {
                position_ms,
                header,
            } => {
                println!("  seeked to {position_ms} ms");
                if let Some(done) = decoder.take() {
                    let _ = done.finish();
                }
                let fresh = StreamDecoder::start(sink.clone(), gain)?;
                fresh.push(header);
                decoder = Some(fresh);
            }
            QueueOutput::Prefetched { track_id, chunks } => {
                println!("  prefetched {chunks} chunks of {track_id}");
            }
            QueueOutput::PrefetchUnused { track_id, bytes } => {
                println!("  the prefetch of {track_id} went unused ({bytes} B wasted)");
            }
            QueueOutput::Event(event) => println!("  {event:?}"),
            QueueOutput::TrackEnded { stats, skipped, .. } => println!(
                "  ended{}: {} B origin, {} B peers, {} B cache, {} kbit/s measured",
                if skipped { " (skipped)" } else { "" },
                stats.bytes_origin,
                stats.bytes_peers + stats.bytes_super_nodes,
                stats.bytes_cache,
                stats.rate_kbps
            ),
            QueueOutput::TrackFailed { track_id, error } => {
                println!("  {track_id} failed: {error}")
            }
        }
    }
    if let Some(done) = decoder.take() {
        let _ = done.finish();
    }
    sink.close()?;
    playing.await??;
    println!("wrote {out}");
    Ok(())
}
