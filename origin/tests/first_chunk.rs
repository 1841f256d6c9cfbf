//! The first-chunk path's promise: a player that holds only a rendition's first chunk can
//! already produce sound, so first audio is one round trip (the play authorization carries
//! that chunk) plus decoding, not a wait for the next chunk.

use origin::ingest::{self, IngestLimits};
use protocol::content::CHUNK_BYTES_DEFAULT;

#[test]
fn the_first_chunk_of_every_rendition_decodes_to_audio_on_its_own() {
    // The first tracks of the devnet's sample catalog (seed 1: 1000 + index).
    for seed in 1000..1004u64 {
        let wav = origin::synth::wav(seed, 8.0, 44_100, 2);
        let transcoded = ingest::transcode(wav, Some("wav"), seed as i32, &IngestLimits::default())
            .expect("the synth's WAV ingests");
        for rendition in &transcoded.renditions {
            let file = rendition.file.to_vec().expect("the rendition reads back");
            let first = &file[..file.len().min(CHUNK_BYTES_DEFAULT as usize)];
            let (frames, _) = ingest::decoded_frames(first).expect("the first chunk decodes");
            assert!(
                frames > 0,
                "seed {seed}, {:?}: the first {} bytes hold no decodable audio",
                rendition.quality,
                first.len()
            );
        }
    }
}
