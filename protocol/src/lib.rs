//! The Chorus protocol: identifiers, identities, the content model (chunk sealing, manifests),
//! license tokens, wire messages and their one codec.
//!
//! This crate is pure. It never does I/O, never reads the clock (time is a [`ids::UnixMillis`]
//! argument) and never draws OS randomness (callers pass an RNG). That is what lets the
//! simulator and the tests replay anything.
//!
//! - [`ids`]: node, track, rendition, chunk, account ids; regions; time.
//! - [`identity`]: ed25519 identities and signatures.
//! - [`content`]: chunk seal/open with ChaCha20-Poly1305, BLAKE3 chunk ids.
//! - [`manifest`]: signed rendition manifests; rendition id = BLAKE3 of the manifest body.
//! - [`ogg`]: chunk timing from Ogg granule positions.
//! - [`license`]: license tokens: sign, verify, expiry, binding to a node, coverage.
//! - [`wire`]: the `chorus/4` messages; its module docs are the protocol spec.
//! - [`codec`]: bincode 2 behind size limits, framing.

pub mod codec;
pub mod content;
pub mod identity;
pub mod ids;
pub mod license;
pub mod manifest;
pub mod ogg;
pub mod shards;
pub mod wire;

pub use codec::{CodecError, FRAME_BYTES_MAX};
pub use content::{ChunkCipher, Codec, ContentError, ContentKey, Quality, SealLabel};
pub use identity::Identity;
pub use ids::{AccountId, ChunkId, NodeId, Region, RenditionId, TrackId, UnixMillis};
pub use license::{LicenseClaims, LicenseError, LicenseScope, LicenseToken};
pub use manifest::{Manifest, ManifestBody, ManifestError, SignedManifest};
pub use wire::{ErrorCode, Request, Response, WireError};
