//! Play one track through the Chorus engine and write it as WAV: the smallest player app.
//!
//! ```sh
//! CHORUS_PASSWORD=... cargo run -p client-lib --example play_to_wav -- \
//!     http://127.0.0.1:8470 USER TRACK_ID out.wav
//! ```
//!
//! It logs in, asks the origin for the track (a grant: manifest, content key, license bound to
//! this node), plays it with the scheduler (origin opening, peers from the tracker, local cache
//! in `./example-cache`), decodes the stream as it arrives with the loudness gain applied, and
//! prints the player events and where the bytes came from.

use std::sync::Arc;

use api::client::OriginApi;
use client_lib::cache::ClientCache;
use client_lib::decode::{StreamDecoder, WavSink};
use client_lib::player::{self, Output, PlayOptions};
use transport::{Endpoint, Limits};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, origin, user, track, out] = args.as_slice() else {
        anyhow::bail!(
            "usage: play_to_wav ORIGIN_URL USER TRACK_ID OUT.wav (password in CHORUS_PASSWORD)"
        );
    };
    let password = std::env::var("CHORUS_PASSWORD")?;

    // The node identity licenses are bound to; keep it between runs.
    let identity = transport::keyfile::load_or_create_identity("example-cache/node.key".as_ref())?;
    let api = OriginApi::new(origin)?;
    let session = api.session(user, &password).await?;
    let grant = api
        .play(
            &session.access_token,
            track,
            &identity.node_id(),
            None,
            false,
        )
        .await?;
    println!(
        "playing {} ({} ms)",
        grant.track_id,
        grant.manifest.body().duration_ms
    );

    let endpoint = Endpoint::bind(&identity, "0.0.0.0:0".parse()?, Limits::default())?;
    let options = PlayOptions {
        cache: Some(Arc::new(ClientCache::open(
            "example-cache".as_ref(),
            512 << 20,
        )?)),
        ..PlayOptions::default()
    };
    let decoder = StreamDecoder::start(WavSink::file(out.as_ref())?, grant.gain_db)?;
    let (sender, mut outputs) = tokio::sync::mpsc::channel(64);
    let playback = {
        let (endpoint, grant) = (endpoint.clone(), grant.clone());
        tokio::spawn(async move {
            player::play(&endpoint, &grant, Default::default(), options, sender).await
        })
    };
    while let Some(output) = outputs.recv().await {
        match output {
            Output::Audio(piece) => {
                tokio::task::block_in_place(|| decoder.push(piece));
            }
            Output::Event(event) => println!("event: {event:?}"),
            Output::Stats(stats) => println!("stats: {stats:?}"),
            Output::Sources(sources) => {
                for (node, kind, bytes) in sources {
                    println!("{bytes:>9} bytes from {kind:?} {node}");
                }
            }
            Output::Downloaded => println!("every chunk is here"),
            Output::PrefetchNext => println!("the track ends soon: time to prefetch the next"),
            // Only after a seek (this example does not seek; see the queue example).
            Output::Seeked { .. } => {}
        }
    }
    playback.await??;
    let summary = decoder.finish().map_err(anyhow::Error::msg)?;
    println!("wrote {out}: {} ms of audio", summary.duration_ms());
    Ok(())
}
