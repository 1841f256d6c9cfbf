//! `chorus bench decode`: how many times faster than real time one core turns sealed chunks
//! into PCM: verify each chunk against its id (BLAKE3), decrypt it (ChaCha20-Poly1305) and
//! decode the Ogg Vorbis stream (symphonia) with the loudness gain, all on one thread.
//!
//! Input: a synthetic track ingested through the real ingest pipeline (each rendition of the
//! ladder), sealed into 16 KiB chunks. Baseline in the same run: decoding the same plaintext
//! file from memory with no verification or decryption.

use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use client_lib::decode::{PcmSink, decode_reader};
use protocol::content::{ChunkCipher, SealLabel, seal_rendition};
use protocol::{ChunkId, ContentKey, TrackId};

use super::{median, print_table, progress, progress_done};

/// Flags of `chorus bench decode`.
#[derive(Debug, Args)]
pub struct DecodeBenchArgs {
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Rounds of each side; medians are reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Seconds of synthetic stereo music.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1800))]
    pub seconds: u32,
}

/// Counts samples; keeps nothing.
struct Discard(u64);

impl PcmSink for Discard {
    fn format(&mut self, _: u32, _: u16) -> std::io::Result<()> {
        Ok(())
    }
    fn samples(&mut self, samples: &[i16]) -> std::io::Result<()> {
        self.0 += samples.len() as u64;
        std::hint::black_box(samples);
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A reader that verifies and opens each sealed chunk as the decoder reaches it.
struct OpeningReader {
    cipher: ChunkCipher,
    chunks: std::sync::Arc<Vec<(ChunkId, Vec<u8>)>>,
    next: usize,
    current: Vec<u8>,
    at: usize,
}

impl Read for OpeningReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let Some((id, sealed)) = self.chunks.get(self.next) else {
                return Ok(0);
            };
            self.current = self
                .cipher
                .open(self.next as u32, id, sealed)
                .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
            self.at = 0;
            self.next += 1;
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

pub fn run(args: &DecodeBenchArgs) -> anyhow::Result<ExitCode> {
    progress("decode: synthesizing and ingesting the track");
    let wav = origin::synth::wav(5, f64::from(args.seconds), 44_100, 2);
    let transcoded = origin::ingest::transcode(
        wav,
        Some("wav"),
        5,
        &origin::ingest::IngestLimits::default(),
    )?;
    let key = ContentKey([3; 32]);
    let mut rows = Vec::new();
    let mut json = serde_json::Map::new();
    let mut worst: Option<f64> = None;
    for rendition in &transcoded.renditions {
        let cipher = ChunkCipher::new(
            &key,
            SealLabel {
                track: TrackId([5; 16]),
                quality: rendition.quality,
            },
        );
        let file = rendition.file.to_vec()?;
        let (ids, sealed) = seal_rendition(&cipher, &file, protocol::content::CHUNK_BYTES_DEFAULT)?;
        let chunks = std::sync::Arc::new(ids.into_iter().zip(sealed).collect::<Vec<_>>());
        let (mut full, mut bare) = (Vec::new(), Vec::new());
        let mut audio_s = 0.0;
        for round in 1..=args.rounds {
            progress(&format!(
                "decode: {} round {round}/{}",
                rendition.quality.as_str(),
                args.rounds
            ));
            let reader = OpeningReader {
                cipher: ChunkCipher::new(
                    &key,
                    SealLabel {
                        track: TrackId([5; 16]),
                        quality: rendition.quality,
                    },
                ),
                chunks: chunks.clone(),
                next: 0,
                current: Vec::new(),
                at: 0,
            };
            let started = Instant::now();
            let summary =
                decode_reader(reader, Discard(0), -3.0).map_err(|error| anyhow::anyhow!(error))?;
            let wall = started.elapsed().as_secs_f64();
            audio_s = summary.duration_ms() as f64 / 1000.0;
            anyhow::ensure!(
                (audio_s - f64::from(args.seconds)).abs() < 1.0,
                "decoded {audio_s} s of a {} s track",
                args.seconds
            );
            full.push(audio_s / wall);

            let started = Instant::now();
            let plain = std::io::Cursor::new(file.clone());
            decode_reader(plain, Discard(0), -3.0).map_err(|error| anyhow::anyhow!(error))?;
            bare.push(audio_s / started.elapsed().as_secs_f64());
        }
        let (full, bare) = (median(&mut full), median(&mut bare));
        worst = Some(worst.map_or(full, |w: f64| w.min(full)));
        rows.push((
            format!("{} verify+decrypt+decode", rendition.quality.as_str()),
            format!("{full:>8.0}x real time"),
        ));
        rows.push((
            format!("{} decode alone (baseline)", rendition.quality.as_str()),
            format!("{bare:>8.0}x real time   ratio {:.2}", full / bare),
        ));
        json.insert(
            rendition.quality.as_str().to_string(),
            serde_json::json!({"realtime_x": full, "baseline_realtime_x": bare, "ratio": full / bare, "audio_s": audio_s}),
        );
    }
    progress_done();
    let rows: Vec<(&str, String)> = rows
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect();
    print_table(
        &format!(
            "verify + decrypt + decode on one thread, {} s synthetic stereo track, median of {} rounds (target >= 100x)",
            args.seconds, args.rounds
        ),
        &rows,
    );
    if args.json {
        json.insert("min_realtime_x".into(), serde_json::json!(worst));
        json.insert("seconds".into(), serde_json::json!(args.seconds));
        println!("{}", serde_json::Value::Object(json));
    }
    Ok(ExitCode::SUCCESS)
}
