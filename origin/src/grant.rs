//! Signed chunk URLs: what one URL opens.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What one signed chunk URL opens: chunks of one rendition, for one account in one region,
/// until an expiry. The HMAC covers all of it, so a URL from one track (or account, or
/// market) opens nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkGrant {
    /// The rendition, 64 hex.
    pub rendition: String,
    /// The account it was granted to, 32 hex.
    pub account: String,
    /// The account's region when it was granted.
    pub region: String,
    /// Expiry, Unix seconds.
    pub expires_s: u64,
}

impl ChunkGrant {
    fn mac(&self, key: &[u8; 32]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(
            format!(
                "chorus-chunk-url/2|{}|{}|{}|{}",
                self.rendition, self.account, self.region, self.expires_s
            )
            .as_bytes(),
        );
        mac
    }

    /// The signature, hex.
    pub fn sign(&self, key: &[u8; 32]) -> String {
        hex::encode(self.mac(key).finalize().into_bytes())
    }

    /// True when `signature_hex` is this grant's signature (constant-time comparison).
    pub fn verify(&self, key: &[u8; 32], signature_hex: &str) -> bool {
        hex::decode(signature_hex)
            .is_ok_and(|signature| self.mac(key).verify_slice(&signature).is_ok())
    }

    /// The URL template clients fill `{chunk_id}` into.
    pub fn url_template(&self, public_url: &str, key: &[u8; 32]) -> String {
        format!(
            "{public_url}/v1/chunks/{{chunk_id}}?r={}&a={}&g={}&exp={}&sig={}",
            self.rendition,
            self.account,
            self.region,
            self.expires_s,
            self.sign(key)
        )
    }
}
