//! A sealed rendition without an encoder: deterministic bytes standing in for audio, cut into
//! chunks, encrypted and described by a manifest the origin identity signs. What chunk
//! services, caches and benchmarks move around is exactly this, whatever the audio.

use bytes::Bytes;
use protocol::content::{self, ChunkCipher, ContentError, ContentKey, SealLabel};
use protocol::manifest::{MANIFEST_VERSION, ManifestBody, ManifestError};
use protocol::{Codec, Identity, Manifest, Quality, TrackId};
use rand::{RngCore, SeedableRng};

/// What to seal. [`RenditionSpec::new`] gives every field a default from one number, so that
/// renditions `1`, `2`, `3` differ in track, key and content.
#[derive(Debug, Clone)]
pub struct RenditionSpec {
    /// The track.
    pub track: TrackId,
    /// The quality (part of the seal's label).
    pub quality: Quality,
    /// The content key.
    pub key: [u8; 32],
    /// The plaintext ("audio") to seal.
    pub plaintext: Vec<u8>,
    /// Plaintext bytes per chunk.
    pub chunk_bytes: u32,
    /// The manifest's codec.
    pub codec: Codec,
    /// The manifest's bitrate.
    pub bitrate_bps: u32,
    /// The manifest's sample rate.
    pub sample_rate_hz: u32,
    /// The manifest's channel count.
    pub channels: u8,
    /// The manifest's duration.
    pub duration_ms: u64,
}

/// A sealed rendition: the verified manifest, the sealed chunks in order, and what sealed them.
#[derive(Clone)]
pub struct Rendition {
    /// The manifest, verified against the origin that signed it (`manifest.signed()` is the
    /// wire form).
    pub manifest: Manifest,
    /// The sealed chunks, in order.
    pub chunks: Vec<Bytes>,
    /// The plaintext they decrypt to.
    pub plaintext: Vec<u8>,
    /// The cipher that sealed them (and opens them).
    pub cipher: ChunkCipher,
}

/// Why a spec did not seal.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The chunking or encryption refused the spec.
    #[error("sealing: {0}")]
    Content(ContentError),
    /// The manifest did not sign or verify.
    #[error("the manifest: {0}")]
    Manifest(ManifestError),
}

impl std::fmt::Debug for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendition")
            .field("id", &self.manifest.id())
            .field("chunks", &self.chunks.len())
            .field("plaintext_bytes", &self.plaintext.len())
            .finish_non_exhaustive()
    }
}

impl RenditionSpec {
    /// Rendition `n`: track `[n; 16]`, key `[n; 32]`, normal quality, Vorbis at 160 kbit/s,
    /// 44.1 kHz stereo, 1 s; ten 4 KiB chunks of a pattern that depends on `n`.
    pub fn new(n: u8) -> Self {
        Self {
            track: TrackId([n; 16]),
            quality: Quality::Normal,
            key: [n; 32],
            plaintext: pattern(n, 10 * 4096),
            chunk_bytes: 4096,
            codec: Codec::Vorbis,
            bitrate_bps: 160_000,
            sample_rate_hz: 44_100,
            channels: 2,
            duration_ms: 1_000,
        }
    }

    /// `count` whole chunks of the pattern of `n` (replacing the plaintext).
    pub fn chunks(mut self, count: usize) -> Self {
        let n = self.track.0[0];
        self.plaintext = pattern(n, count * self.chunk_bytes as usize);
        self
    }

    /// `bytes` of seeded random plaintext (incompressible, as encoded audio is).
    pub fn random_bytes(mut self, bytes: usize, seed: u64) -> Self {
        let mut plaintext = vec![0u8; bytes];
        rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut plaintext);
        self.plaintext = plaintext;
        self
    }

    /// Exactly this plaintext.
    pub fn plaintext(mut self, plaintext: Vec<u8>) -> Self {
        self.plaintext = plaintext;
        self
    }

    /// Plaintext bytes per chunk (set before [`chunks`](Self::chunks) to size by chunks).
    pub fn chunk_bytes(mut self, chunk_bytes: u32) -> Self {
        self.chunk_bytes = chunk_bytes;
        self
    }

    /// The track.
    pub fn track(mut self, track: TrackId) -> Self {
        self.track = track;
        self
    }

    /// The content key.
    pub fn key(mut self, key: [u8; 32]) -> Self {
        self.key = key;
        self
    }

    /// The quality.
    pub fn quality(mut self, quality: Quality) -> Self {
        self.quality = quality;
        self
    }

    /// The manifest's bitrate, sample rate and duration.
    pub fn timing(mut self, bitrate_bps: u32, sample_rate_hz: u32, duration_ms: u64) -> Self {
        self.bitrate_bps = bitrate_bps;
        self.sample_rate_hz = sample_rate_hz;
        self.duration_ms = duration_ms;
        self
    }

    /// Seals the plaintext and signs the manifest as `origin`.
    pub fn seal(self, origin: &Identity) -> Result<Rendition, SealError> {
        let cipher = ChunkCipher::new(
            &ContentKey(self.key),
            SealLabel {
                track: self.track,
                quality: self.quality,
            },
        );
        let (ids, sealed) = content::seal_rendition(&cipher, &self.plaintext, self.chunk_bytes)
            .map_err(SealError::Content)?;
        let body = ManifestBody {
            version: MANIFEST_VERSION,
            origin: origin.node_id(),
            track: self.track,
            quality: self.quality,
            codec: self.codec,
            bitrate_bps: self.bitrate_bps,
            sample_rate_hz: self.sample_rate_hz,
            channels: self.channels,
            duration_ms: self.duration_ms,
            chunk_bytes: self.chunk_bytes,
            plaintext_bytes: self.plaintext.len() as u64,
            // Real Ogg plaintext gets its true timing; synthetic bytes an even spread.
            chunk_end_ms: protocol::ogg::chunk_ends_ms(
                &self.plaintext,
                self.chunk_bytes,
                self.codec,
            )
            .unwrap_or_else(|_| protocol::ogg::even_ends_ms(self.duration_ms, ids.len())),
            chunks: ids,
        };
        let manifest = protocol::SignedManifest::sign(origin, &body)
            .and_then(|signed| signed.verify(&origin.node_id()))
            .map_err(SealError::Manifest)?;
        Ok(Rendition {
            manifest,
            chunks: sealed.into_iter().map(Bytes::from).collect(),
            plaintext: self.plaintext,
            cipher,
        })
    }
}

/// `bytes` of a pattern that differs with `n`.
fn pattern(n: u8, bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| (i % 251) as u8 ^ n).collect()
}
