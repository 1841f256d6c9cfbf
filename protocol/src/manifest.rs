//! Signed rendition manifests (DESIGN.md §3).
//!
//! A manifest's body (codec, bitrate, duration, chunk size, length, ordered chunk ids, ...) is
//! encoded with the codec and signed by the origin's ed25519 key over
//! `b"chorus/manifest/1" || body`. The rendition id is BLAKE3 of the body bytes, so anyone can
//! check that a manifest is the one a rendition id names, and the signature says the origin
//! published it. Manifests hold no secret: peers and super-nodes keep and forward them.

use crate::codec::{self, CodecError, Validate};
use crate::content::{self, Codec, Quality, TAG_BYTES};
use crate::identity::{self, Identity};
use crate::ids::{ChunkId, NodeId, RenditionId, TrackId};

/// Most chunks in one rendition: 32,768 × 16 KiB = 512 MiB of audio (3.6 h at 320 kbps);
/// the chunk ids of such a manifest take 1 MiB.
pub const CHUNKS_PER_RENDITION_MAX: usize = 32 * 1024;
/// Most opening chunks one play authorization carries (the first-chunk path).
pub const OPENING_CHUNKS_MAX: u32 = 2;
/// The manifest format version this code writes and accepts.
pub const MANIFEST_VERSION: u8 = 2;
const SIGNING_DOMAIN: &[u8] = b"chorus/manifest/1";

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The body is not a valid encoding or breaks a limit.
    #[error("manifest body: {0}")]
    Codec(#[from] CodecError),
    /// The signature does not verify under the expected origin key.
    #[error("manifest signature: {0}")]
    Signature(#[from] identity::SignatureError),
    /// The body names a different origin than the one we trust.
    #[error("manifest signed for origin {found}, expected {expected}")]
    WrongOrigin {
        /// The origin we trust.
        expected: NodeId,
        /// The origin the body names.
        found: NodeId,
    },
    /// The manifest is not the one the rendition id names.
    #[error("manifest hashes to {actual}, expected rendition {expected}")]
    WrongRendition {
        /// The id asked for.
        expected: RenditionId,
        /// The hash of the body received.
        actual: RenditionId,
    },
}

/// What a manifest says about a rendition.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ManifestBody {
    /// Format version, [`MANIFEST_VERSION`].
    pub version: u8,
    /// The origin that signed it.
    pub origin: NodeId,
    /// The track this is a rendition of.
    pub track: TrackId,
    /// The quality tier.
    pub quality: Quality,
    /// The codec of the encoded file.
    pub codec: Codec,
    /// Nominal bitrate in bits per second.
    pub bitrate_bps: u32,
    /// Sample rate of the encoded audio.
    pub sample_rate_hz: u32,
    /// Channel count.
    pub channels: u8,
    /// Duration of the audio.
    pub duration_ms: u64,
    /// Plaintext bytes per chunk (the last chunk may be shorter).
    pub chunk_bytes: u32,
    /// Total plaintext bytes of the encoded file.
    pub plaintext_bytes: u64,
    /// Chunk ids, in playback order.
    pub chunks: Vec<ChunkId>,
    /// For each chunk, how far playback reaches (ms from the start of the audio) once it and
    /// every chunk before it are held: from the Ogg granule positions
    /// ([`crate::ogg::chunk_ends_ms`]). Non-decreasing, one per chunk. Since version 2.
    pub chunk_end_ms: Vec<u32>,
}

impl Validate for ManifestBody {
    fn validate(&self) -> Result<(), CodecError> {
        if self.version != MANIFEST_VERSION {
            return Err(CodecError::Invalid("unsupported manifest version"));
        }
        if content::check_chunk_bytes(self.chunk_bytes).is_err() {
            return Err(CodecError::Invalid("chunk size out of range"));
        }
        if self.chunks.len() > CHUNKS_PER_RENDITION_MAX {
            return Err(CodecError::Invalid("too many chunks"));
        }
        if self.channels == 0 || self.sample_rate_hz == 0 {
            return Err(CodecError::Invalid("no channels or zero sample rate"));
        }
        let expected = self.plaintext_bytes.div_ceil(u64::from(self.chunk_bytes));
        if expected != self.chunks.len() as u64 {
            return Err(CodecError::Invalid(
                "chunk count does not match plaintext length",
            ));
        }
        if self.chunk_end_ms.len() != self.chunks.len() {
            return Err(CodecError::Invalid(
                "chunk timing does not match the chunk count",
            ));
        }
        if self.chunk_end_ms.windows(2).any(|pair| pair[0] > pair[1]) {
            return Err(CodecError::Invalid("chunk timing goes backwards"));
        }
        Ok(())
    }
}

impl ManifestBody {
    /// Plaintext length of chunk `index`, or `None` past the end.
    pub fn chunk_plaintext_len(&self, index: u32) -> Option<u32> {
        let index = index as usize;
        if index >= self.chunks.len() {
            return None;
        }
        let start = index as u64 * u64::from(self.chunk_bytes);
        let len = (self.plaintext_bytes - start).min(u64::from(self.chunk_bytes));
        Some(len as u32)
    }

    /// Ciphertext length of chunk `index` (plaintext + tag), or `None` past the end.
    pub fn chunk_ciphertext_len(&self, index: u32) -> Option<u32> {
        self.chunk_plaintext_len(index)
            .map(|len| len + TAG_BYTES as u32)
    }
}

/// A manifest as it travels: encoded body and the origin's signature over it.
#[derive(Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SignedManifest {
    /// The encoded [`ManifestBody`].
    pub body: Vec<u8>,
    /// ed25519 signature over `b"chorus/manifest/1" || body`.
    pub signature: [u8; 64],
}

impl core::fmt::Debug for SignedManifest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "SignedManifest({:?}, {} bytes)",
            self.rendition_id(),
            self.body.len()
        )
    }
}

impl Validate for SignedManifest {
    fn validate(&self) -> Result<(), CodecError> {
        // The body is checked in full by `verify`; here only its size.
        if self.body.len() > codec::FRAME_BYTES_MAX - 128 {
            return Err(CodecError::Invalid("manifest body too large"));
        }
        Ok(())
    }
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_DOMAIN.len() + body.len());
    message.extend_from_slice(SIGNING_DOMAIN);
    message.extend_from_slice(body);
    message
}

impl SignedManifest {
    /// Encodes and signs `body` with the origin key. The body's `origin` must be that key.
    pub fn sign(origin: &Identity, body: &ManifestBody) -> Result<Self, ManifestError> {
        if body.origin != origin.node_id() {
            return Err(ManifestError::WrongOrigin {
                expected: origin.node_id(),
                found: body.origin,
            });
        }
        let body = codec::encode(body)?;
        let signature = origin.sign(&signed_message(&body));
        Ok(Self { body, signature })
    }

    /// The rendition id this manifest defines: BLAKE3 of the body bytes.
    pub fn rendition_id(&self) -> RenditionId {
        RenditionId(*blake3::hash(&self.body).as_bytes())
    }

    /// Checks the signature under `origin`, decodes and validates the body.
    pub fn verify(&self, origin: &NodeId) -> Result<Manifest, ManifestError> {
        identity::verify_signature(origin, &signed_message(&self.body), &self.signature)?;
        let body: ManifestBody = codec::decode(&self.body)?;
        if body.origin != *origin {
            return Err(ManifestError::WrongOrigin {
                expected: *origin,
                found: body.origin,
            });
        }
        Ok(Manifest {
            id: self.rendition_id(),
            body,
            signed: self.clone(),
        })
    }

    /// [`SignedManifest::verify`], and checks that this is the manifest of `rendition`.
    pub fn verify_for(
        &self,
        origin: &NodeId,
        rendition: &RenditionId,
    ) -> Result<Manifest, ManifestError> {
        let actual = self.rendition_id();
        if actual != *rendition {
            return Err(ManifestError::WrongRendition {
                expected: *rendition,
                actual,
            });
        }
        self.verify(origin)
    }
}

/// A verified manifest: only [`SignedManifest::verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    id: RenditionId,
    body: ManifestBody,
    signed: SignedManifest,
}

impl Manifest {
    /// The rendition id.
    pub fn id(&self) -> RenditionId {
        self.id
    }
    /// The decoded body.
    pub fn body(&self) -> &ManifestBody {
        &self.body
    }
    /// The signed form, to forward to others.
    pub fn signed(&self) -> &SignedManifest {
        &self.signed
    }
    /// The id chunk `index` must hash to.
    pub fn chunk_id(&self, index: u32) -> Option<&ChunkId> {
        self.body.chunks.get(index as usize)
    }
    /// Number of chunks.
    pub fn chunk_count(&self) -> u32 {
        // Bounded by CHUNKS_PER_RENDITION_MAX.
        self.body.chunks.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{ChunkCipher, ContentKey, SealLabel};
    use rand::SeedableRng;

    pub(crate) fn sample(origin: &Identity) -> (ManifestBody, Vec<Vec<u8>>) {
        let track = TrackId([5; 16]);
        let cipher = ChunkCipher::new(
            &ContentKey([1; 32]),
            SealLabel {
                track,
                quality: Quality::Low,
            },
        );
        let audio = vec![7u8; 40_000];
        let (chunks, sealed) = content::seal_rendition(&cipher, &audio, 16 * 1024).unwrap();
        let body = ManifestBody {
            version: MANIFEST_VERSION,
            origin: origin.node_id(),
            track,
            quality: Quality::Low,
            codec: Codec::Vorbis,
            bitrate_bps: 96_000,
            sample_rate_hz: 44_100,
            channels: 2,
            duration_ms: 3_000,
            chunk_bytes: 16 * 1024,
            plaintext_bytes: audio.len() as u64,
            chunk_end_ms: crate::ogg::even_ends_ms(3_000, chunks.len()),
            chunks,
        };
        (body, sealed)
    }

    #[test]
    fn sign_verify_and_reject() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let origin = Identity::generate(&mut rng);
        let other = Identity::generate(&mut rng);
        let (body, sealed) = sample(&origin);
        let signed = SignedManifest::sign(&origin, &body).unwrap();
        let manifest = signed
            .verify_for(&origin.node_id(), &signed.rendition_id())
            .unwrap();
        assert_eq!(manifest.body(), &body);
        assert_eq!(manifest.chunk_count(), 3);
        assert_eq!(body.chunk_ciphertext_len(2), Some(40_000 - 32_768 + 16));
        assert_eq!(sealed[2].len(), 40_000 - 32_768 + 16);
        assert_eq!(body.chunk_plaintext_len(3), None);

        assert!(matches!(
            signed.verify(&other.node_id()),
            Err(ManifestError::Signature(_))
        ));
        let mut tampered = signed.clone();
        tampered.body[40] ^= 1;
        assert!(matches!(
            tampered.verify(&origin.node_id()),
            Err(ManifestError::Signature(_))
        ));
        assert!(matches!(
            signed.verify_for(&origin.node_id(), &RenditionId([0; 32])),
            Err(ManifestError::WrongRendition { .. })
        ));
        assert!(matches!(
            SignedManifest::sign(&other, &body),
            Err(ManifestError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn inconsistent_bodies_are_refused() {
        let origin = Identity::from_secret_bytes(&[3; 32]);
        let (mut body, _) = sample(&origin);
        body.plaintext_bytes += 100_000;
        assert!(matches!(
            SignedManifest::sign(&origin, &body),
            Err(ManifestError::Codec(_))
        ));
        let (mut body, _) = sample(&origin);
        body.chunk_bytes = 3;
        assert!(matches!(
            SignedManifest::sign(&origin, &body),
            Err(ManifestError::Codec(_))
        ));
        let (mut body, _) = sample(&origin);
        body.chunk_end_ms.pop();
        assert!(matches!(
            SignedManifest::sign(&origin, &body),
            Err(ManifestError::Codec(_))
        ));
        let (mut body, _) = sample(&origin);
        body.chunk_end_ms[0] = 2_500;
        assert!(matches!(
            SignedManifest::sign(&origin, &body),
            Err(ManifestError::Codec(_))
        ));
    }
}
