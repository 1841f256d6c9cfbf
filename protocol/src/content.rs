//! The content model (DESIGN.md §3): chunk sealing, chunk ids, content keys.
//!
//! A rendition's plaintext is cut into chunks of `chunk_bytes` (16 KiB by default; the last one
//! may be shorter). Chunk *i* is sealed with ChaCha20-Poly1305 under the rendition's random
//! 256-bit [`ContentKey`], with
//! - nonce: 4 zero bytes followed by *i* as a big-endian `u64` (unique per key, since a key
//!   seals exactly one rendition),
//! - associated data: the [`SealLabel`] (domain tag, track id, quality), fixed before sealing,
//!   so a chunk cannot be replayed at another index, track or quality.
//!
//! The chunk id is the BLAKE3 hash of the ciphertext (tag included); everyone on the path
//! verifies it, and only licensed clients hold the key to open it.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ids::{ChunkId, TrackId};

/// Default plaintext bytes per chunk (Spotify 2010 used 16 kB).
pub const CHUNK_BYTES_DEFAULT: u32 = 16 * 1024;
/// Smallest plaintext chunk size a manifest may declare.
pub const CHUNK_BYTES_MIN: u32 = 1024;
/// Largest plaintext chunk size a manifest may declare (bounds every chunk frame).
pub const CHUNK_BYTES_MAX: u32 = 1024 * 1024;
/// Bytes the AEAD tag adds to each chunk.
pub const TAG_BYTES: usize = 16;

/// Encoding quality of a rendition (API.md: `low` / `normal` / `high`).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Debug,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// About 96 kbps.
    Low,
    /// About 160 kbps.
    Normal,
    /// About 320 kbps.
    High,
}

impl Quality {
    /// All qualities, lowest first.
    pub const ALL: [Quality; 3] = [Quality::Low, Quality::Normal, Quality::High];

    /// The stable wire/API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Low => "low",
            Quality::Normal => "normal",
            Quality::High => "high",
        }
    }

    fn label_byte(self) -> u8 {
        match self {
            Quality::Low => 0,
            Quality::Normal => 1,
            Quality::High => 2,
        }
    }
}

/// Audio codec of a rendition. Every variant is one that stock ffmpeg decodes.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// Ogg Vorbis.
    Vorbis,
    /// Ogg Opus.
    Opus,
}

/// Errors of the chunk cipher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// The ciphertext is shorter than an AEAD tag.
    #[error("chunk ciphertext is {0} bytes, shorter than its tag")]
    Truncated(usize),
    /// The chunk failed authentication: wrong key, index, label, or tampered bytes.
    #[error("chunk failed authentication")]
    Tampered,
    /// The chunk's bytes do not hash to the expected chunk id.
    #[error("chunk does not match its id (expected {expected}, got {actual})")]
    HashMismatch {
        /// Id the manifest promised.
        expected: ChunkId,
        /// Hash of the bytes received.
        actual: ChunkId,
    },
    /// A chunk size outside [`CHUNK_BYTES_MIN`]..=[`CHUNK_BYTES_MAX`].
    #[error("chunk size {0} is outside the allowed range")]
    ChunkSize(u32),
}

/// A rendition's 256-bit content key. Zeroed on drop; never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ContentKey(pub [u8; 32]);

impl core::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

impl ContentKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self(key)
    }
}

/// What every chunk of a rendition is bound to: the associated data of its AEAD.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SealLabel {
    /// The track.
    pub track: TrackId,
    /// The rendition's quality.
    pub quality: Quality,
}

impl SealLabel {
    /// Associated-data bytes: `b"chorus/chunk/1"`, track id, quality byte.
    pub fn associated_data(&self) -> [u8; 31] {
        let mut out = [0u8; 31];
        out[..14].copy_from_slice(b"chorus/chunk/1");
        out[14..30].copy_from_slice(self.track.as_bytes());
        out[30] = self.quality.label_byte();
        out
    }
}

fn nonce_for(index: u32) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&u64::from(index).to_be_bytes());
    Nonce::from(nonce)
}

/// Seals and opens the chunks of one rendition. Cheap to clone; holds the expanded key.
#[derive(Clone)]
pub struct ChunkCipher {
    aead: ChaCha20Poly1305,
    associated_data: [u8; 31],
}

impl core::fmt::Debug for ChunkCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChunkCipher(..)")
    }
}

impl ChunkCipher {
    /// A cipher for the rendition sealed under `key` with `label`.
    pub fn new(key: &ContentKey, label: SealLabel) -> Self {
        Self {
            aead: ChaCha20Poly1305::new((&key.0).into()),
            associated_data: label.associated_data(),
        }
    }

    /// Seals chunk `index` in place: `buffer` holds the plaintext on entry and the ciphertext
    /// (plaintext length + [`TAG_BYTES`]) on return. Returns the chunk id.
    pub fn seal_in_place(&self, index: u32, buffer: &mut Vec<u8>) -> ChunkId {
        let tag = self
            .aead
            .encrypt_in_place_detached(&nonce_for(index), &self.associated_data, buffer)
            // Only fails for messages over 256 GiB; chunks are at most CHUNK_BYTES_MAX.
            .expect("chunk plaintext within ChaCha20-Poly1305 limits");
        buffer.extend_from_slice(&tag);
        ChunkId::of(buffer)
    }

    /// Seals a copy of `plaintext` as chunk `index`; returns (id, ciphertext).
    pub fn seal(&self, index: u32, plaintext: &[u8]) -> (ChunkId, Vec<u8>) {
        let mut buffer = Vec::with_capacity(plaintext.len() + TAG_BYTES);
        buffer.extend_from_slice(plaintext);
        let id = self.seal_in_place(index, &mut buffer);
        (id, buffer)
    }

    /// Verifies `ciphertext` against `expected` and opens it in place, leaving the plaintext.
    /// On error the buffer's contents are unspecified.
    pub fn verify_open_in_place(
        &self,
        index: u32,
        expected: &ChunkId,
        buffer: &mut Vec<u8>,
    ) -> Result<(), ContentError> {
        verify_chunk(expected, buffer)?;
        self.open_in_place(index, buffer)
    }

    /// Opens chunk `index` in place without checking its id (the AEAD still authenticates it).
    pub fn open_in_place(&self, index: u32, buffer: &mut Vec<u8>) -> Result<(), ContentError> {
        let len = buffer.len();
        if len < TAG_BYTES {
            return Err(ContentError::Truncated(len));
        }
        let body_len = len - TAG_BYTES;
        let tag = Tag::clone_from_slice(&buffer[body_len..]);
        buffer.truncate(body_len);
        self.aead
            .decrypt_in_place_detached(&nonce_for(index), &self.associated_data, buffer, &tag)
            .map_err(|_| ContentError::Tampered)
    }

    /// Verifies and opens a copy of `ciphertext`; returns the plaintext.
    pub fn open(
        &self,
        index: u32,
        expected: &ChunkId,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, ContentError> {
        let mut buffer = ciphertext.to_vec();
        self.verify_open_in_place(index, expected, &mut buffer)?;
        Ok(buffer)
    }
}

/// Checks that `ciphertext` hashes to `expected`. Every hop calls this on every chunk.
pub fn verify_chunk(expected: &ChunkId, ciphertext: &[u8]) -> Result<(), ContentError> {
    let actual = ChunkId::of(ciphertext);
    if actual == *expected {
        Ok(())
    } else {
        Err(ContentError::HashMismatch {
            expected: *expected,
            actual,
        })
    }
}

/// Checks a declared plaintext chunk size.
pub fn check_chunk_bytes(chunk_bytes: u32) -> Result<(), ContentError> {
    if (CHUNK_BYTES_MIN..=CHUNK_BYTES_MAX).contains(&chunk_bytes) {
        Ok(())
    } else {
        Err(ContentError::ChunkSize(chunk_bytes))
    }
}

/// Cuts `plaintext` into chunks of `chunk_bytes` and seals each; returns ids and ciphertexts in
/// order. An empty input yields no chunks.
pub fn seal_rendition(
    cipher: &ChunkCipher,
    plaintext: &[u8],
    chunk_bytes: u32,
) -> Result<(Vec<ChunkId>, Vec<Vec<u8>>), ContentError> {
    check_chunk_bytes(chunk_bytes)?;
    let mut ids = Vec::new();
    let mut chunks = Vec::new();
    for (index, piece) in plaintext.chunks(chunk_bytes as usize).enumerate() {
        let index = u32::try_from(index).map_err(|_| ContentError::ChunkSize(chunk_bytes))?;
        let (id, sealed) = cipher.seal(index, piece);
        ids.push(id);
        chunks.push(sealed);
    }
    Ok((ids, chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(track: u8, quality: Quality) -> ChunkCipher {
        ChunkCipher::new(
            &ContentKey([9; 32]),
            SealLabel {
                track: TrackId([track; 16]),
                quality,
            },
        )
    }

    #[test]
    fn seal_open_round_trip() {
        let c = cipher(1, Quality::Normal);
        let (id, sealed) = c.seal(3, b"some audio");
        assert_eq!(sealed.len(), 10 + TAG_BYTES);
        assert_eq!(id, ChunkId::of(&sealed));
        assert_eq!(c.open(3, &id, &sealed).unwrap(), b"some audio");
    }

    #[test]
    fn rejects_wrong_index_label_key_and_tampering() {
        let c = cipher(1, Quality::Normal);
        let (id, sealed) = c.seal(3, b"some audio");
        assert_eq!(c.open(4, &id, &sealed), Err(ContentError::Tampered));
        assert_eq!(
            cipher(2, Quality::Normal).open(3, &id, &sealed),
            Err(ContentError::Tampered)
        );
        assert_eq!(
            cipher(1, Quality::High).open(3, &id, &sealed),
            Err(ContentError::Tampered)
        );
        let other_key = ChunkCipher::new(
            &ContentKey([8; 32]),
            SealLabel {
                track: TrackId([1; 16]),
                quality: Quality::Normal,
            },
        );
        assert_eq!(other_key.open(3, &id, &sealed), Err(ContentError::Tampered));
        let mut bad = sealed.clone();
        bad[0] ^= 1;
        assert!(matches!(
            c.open(3, &id, &bad),
            Err(ContentError::HashMismatch { .. })
        ));
        // Tampered bytes under a matching (attacker-chosen) id still fail the AEAD.
        assert_eq!(
            c.open(3, &ChunkId::of(&bad), &bad),
            Err(ContentError::Tampered)
        );
        assert_eq!(
            c.open(3, &ChunkId::of(b"short"), b"short"),
            Err(ContentError::Truncated(5))
        );
    }

    #[test]
    fn rendition_is_cut_in_order() {
        let c = cipher(1, Quality::Low);
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let (ids, chunks) = seal_rendition(&c, &data, 2048).unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(chunks[2].len(), 5000 - 4096 + TAG_BYTES);
        let mut joined = Vec::new();
        for (i, (id, chunk)) in ids.iter().zip(&chunks).enumerate() {
            joined.extend(c.open(i as u32, id, chunk).unwrap());
        }
        assert_eq!(joined, data);
        assert_eq!(
            seal_rendition(&c, &data, 10),
            Err(ContentError::ChunkSize(10))
        );
    }
}
