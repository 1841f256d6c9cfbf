//! `chorus bench pipeline`: what the chunk pipeline costs over its primitives.
//!
//! Chorus side: the real API: `ChunkCipher::seal` (copy, ChaCha20-Poly1305, tag, BLAKE3 id)
//! on every 16 KiB chunk, then `ChunkCipher::open` (BLAKE3 check against the id, copy,
//! decrypt). Baseline: the same bare `blake3::hash` and `ChaCha20Poly1305` in-place calls on
//! the same bytes, with one reused buffer. Throughput counts plaintext bytes per full
//! seal-and-open cycle.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, ensure};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use protocol::content::{self, ChunkCipher, ContentKey, SealLabel};
use protocol::{ChunkId, Quality, TrackId};
use rand::{RngCore, SeedableRng};

use super::{PipelineArgs, median, print_table, progress, progress_done};

pub fn run(args: &PipelineArgs) -> anyhow::Result<ExitCode> {
    content::check_chunk_bytes(args.chunk_bytes).context("--chunk-bytes")?;
    let total = args.common.mib as usize * 1024 * 1024;
    let mut plaintext = vec![0u8; total];
    rand_chacha::ChaCha8Rng::seed_from_u64(1).fill_bytes(&mut plaintext);
    let chunk_bytes = args.chunk_bytes as usize;
    let key = ContentKey([7; 32]);
    let label = SealLabel {
        track: TrackId([1; 16]),
        quality: Quality::Normal,
    };
    let cipher = ChunkCipher::new(&key, label);
    let primitives = Primitives {
        aead: ChaCha20Poly1305::new((&key.0).into()),
        ad: label.associated_data(),
    };

    let (mut chorus, mut bare) = (Vec::new(), Vec::new());
    for round in 1..=args.common.rounds {
        progress(&format!("pipeline: round {round}/{}", args.common.rounds));
        chorus.push(mib_per_s(total, || {
            pipeline_round(&cipher, &plaintext, chunk_bytes)
        })?);
        bare.push(mib_per_s(total, || {
            primitives.round(&plaintext, chunk_bytes)
        })?);
    }
    progress_done();
    let (pipeline_mib_s, primitives_mib_s) = (median(&mut chorus), median(&mut bare));
    let ratio = pipeline_mib_s / primitives_mib_s;
    print_table(
        &format!(
            "chunk pipeline: {} MiB in {} KiB chunks, median of {} rounds",
            args.common.mib,
            chunk_bytes / 1024,
            args.common.rounds
        ),
        &[
            (
                "chorus seal+hash, verify+open",
                format!("{pipeline_mib_s:>9.1} MiB/s"),
            ),
            (
                "bare chacha20poly1305 + blake3",
                format!("{primitives_mib_s:>9.1} MiB/s"),
            ),
            ("ratio (target >= 0.85)", format!("{ratio:>9.3}")),
        ],
    );
    if args.common.json {
        println!(
            "{}",
            serde_json::json!({
                "pipeline_mib_s": pipeline_mib_s,
                "primitives_mib_s": primitives_mib_s,
                "ratio": ratio,
                "chunk_bytes": chunk_bytes,
                "mib": args.common.mib,
                "rounds": args.common.rounds,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn mib_per_s(bytes: usize, round: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let started = Instant::now();
    round()?;
    Ok(bytes as f64 / (1024.0 * 1024.0) / started.elapsed().as_secs_f64())
}

/// Seals every chunk, then verifies and opens every chunk, through the public API.
fn pipeline_round(
    cipher: &ChunkCipher,
    plaintext: &[u8],
    chunk_bytes: usize,
) -> anyhow::Result<()> {
    let mut sealed: Vec<(ChunkId, Vec<u8>)> = Vec::with_capacity(plaintext.len() / chunk_bytes + 1);
    for (index, piece) in plaintext.chunks(chunk_bytes).enumerate() {
        sealed.push(cipher.seal(index as u32, piece));
    }
    for (index, (id, ciphertext)) in sealed.iter().enumerate() {
        let opened = cipher.open(index as u32, id, ciphertext)?;
        ensure!(
            opened.len() + content::TAG_BYTES == ciphertext.len(),
            "chunk {index} length"
        );
        black_box(opened);
    }
    Ok(())
}

struct Primitives {
    aead: ChaCha20Poly1305,
    ad: [u8; 31],
}

impl Primitives {
    /// The same work with bare calls: encrypt in place + hash; hash + decrypt in place.
    fn round(&self, plaintext: &[u8], chunk_bytes: usize) -> anyhow::Result<()> {
        let mut sealed: Vec<(blake3::Hash, Vec<u8>, Tag)> =
            Vec::with_capacity(plaintext.len() / chunk_bytes + 1);
        for (index, piece) in plaintext.chunks(chunk_bytes).enumerate() {
            let mut buffer = piece.to_vec();
            let tag = self
                .aead
                .encrypt_in_place_detached(&nonce(index), &self.ad, &mut buffer)
                .map_err(|_| anyhow::anyhow!("encrypt"))?;
            let hash = blake3::hash(&buffer);
            sealed.push((hash, buffer, tag));
        }
        for (index, (hash, buffer, tag)) in sealed.iter_mut().enumerate() {
            ensure!(blake3::hash(buffer) == *hash, "hash");
            self.aead
                .decrypt_in_place_detached(&nonce(index), &self.ad, buffer, tag)
                .map_err(|_| anyhow::anyhow!("decrypt"))?;
            black_box(&buffer);
        }
        Ok(())
    }
}

fn nonce(index: usize) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&(index as u64).to_be_bytes());
    Nonce::from(nonce)
}
