//! Content keys at rest: each is sealed (ChaCha20-Poly1305, the rendition id as associated
//! data) under a key-encryption key kept in its own file, `DATA/content.kek` (mode 0600),
//! whatever backend holds the records. A copied database without that file leaks no playable
//! content, and a record moved to another rendition does not open.
//!
//! Sealing happens above the backends ([`crate::store::Store::publish_track`] and
//! [`crate::store::Store::rendition`]): a backend only ever sees sealed keys.

use super::StoreError;

/// Content keys at rest are `kw1:` + hex(nonce ‖ sealed key).
pub const WRAPPED_PREFIX: &str = "kw1:";

/// Seals content keys at rest under the key-encryption key (see the module docs).
pub struct KeyWrap(chacha20poly1305::ChaCha20Poly1305, [u8; 32]);

impl std::fmt::Debug for KeyWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyWrap(..)")
    }
}

impl KeyWrap {
    /// A sealer under the 32-byte key-encryption key `kek`.
    pub fn new(kek: &[u8; 32]) -> Self {
        use chacha20poly1305::KeyInit;
        // The derivation key is the KEK hashed for that purpose, never the KEK itself.
        let derive = blake3::derive_key("chorus origin key derivation v1", kek);
        Self(chacha20poly1305::ChaCha20Poly1305::new(kek.into()), derive)
    }

    /// 32 bytes derived from the key-encryption key for `context`, the same every time:
    /// secrets the origin can remake rather than store (an app session's token).
    pub fn derive(&self, context: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.1, context.as_bytes()).as_bytes()
    }

    /// Seals a hex content key for `rendition`.
    pub fn wrap(&self, rendition: &str, key_hex: &str) -> Result<String, StoreError> {
        use chacha20poly1305::aead::{Aead, Payload};
        let key = hex::decode(key_hex)
            .map_err(|_| StoreError::Keys("a content key is not hex".into()))?;
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .0
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: &key,
                    aad: rendition.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Keys("sealing a content key failed".into()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{WRAPPED_PREFIX}{}", hex::encode(bytes)))
    }

    /// Opens a stored content key of `rendition` back to hex.
    pub fn unwrap(&self, rendition: &str, stored: &str) -> Result<String, StoreError> {
        use chacha20poly1305::aead::{Aead, Payload};
        let corrupt = || {
            StoreError::Keys(format!(
                "the content key of rendition {rendition} does not open with content.kek"
            ))
        };
        let bytes = stored
            .strip_prefix(WRAPPED_PREFIX)
            .and_then(|hex_text| hex::decode(hex_text).ok())
            .filter(|bytes| bytes.len() > 12)
            .ok_or_else(corrupt)?;
        let (nonce, sealed) = bytes.split_at(12);
        let key = self
            .0
            .decrypt(
                nonce.into(),
                Payload {
                    msg: sealed,
                    aad: rendition.as_bytes(),
                },
            )
            .map_err(|_| corrupt())?;
        Ok(hex::encode(key))
    }
}

impl KeyWrap {
    /// Seals any short secret (an app password) under the key-encryption key, bound to
    /// `context` (the record it belongs to) as associated data.
    pub fn seal(&self, context: &str, secret: &[u8]) -> Result<String, StoreError> {
        self.wrap(context, &hex::encode(secret))
    }

    /// Opens what [`KeyWrap::seal`] sealed for `context`.
    pub fn open(&self, context: &str, stored: &str) -> Result<Vec<u8>, StoreError> {
        let key_hex = self.unwrap(context, stored)?;
        hex::decode(key_hex).map_err(|_| StoreError::Keys("a sealed secret is not hex".into()))
    }

    /// True when `stored` is a sealed key (else it is a legacy key in the clear).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(WRAPPED_PREFIX)
    }
}
