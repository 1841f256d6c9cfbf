//! Ed25519 identities. Every process has one; its [`NodeId`] is the public key.

use core::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::ids::NodeId;

/// Why a signature check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The public key bytes are not a valid ed25519 point.
    #[error("public key is not a valid ed25519 key")]
    BadKey,
    /// The signature does not verify under the key.
    #[error("signature does not verify")]
    Invalid,
}

/// A node's ed25519 key pair. The secret never leaves the process except through
/// [`Identity::secret_bytes`], which the caller stores (the origin keeps its signing key on disk).
pub struct Identity {
    signing: SigningKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("Identity")
            .field("node_id", &self.node_id())
            .finish()
    }
}

impl Identity {
    /// A fresh identity from the given random source (seeded in tests and simulations).
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self {
            signing: SigningKey::generate(rng),
        }
    }

    /// Rebuilds an identity from its 32-byte secret.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The 32-byte secret, to persist. Zeroed on drop.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The secret key as PKCS#8 v1 DER, as TLS libraries want it. Zeroed on drop.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        // RFC 8410: a fixed 16-byte prefix followed by the 32-byte seed.
        const PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&PREFIX);
        der.extend_from_slice(&self.signing.to_bytes());
        der
    }

    /// This identity's node id (its public key).
    pub fn node_id(&self) -> NodeId {
        NodeId(self.signing.verifying_key().to_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

/// Verifies an ed25519 `signature` over `message` by `signer` (strict verification: rejects
/// small-order keys and non-canonical signatures).
pub fn verify_signature(
    signer: &NodeId,
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(signer.as_bytes()).map_err(|_| SignatureError::BadKey)?;
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| SignatureError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sign_verify_and_tamper() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let id = Identity::generate(&mut rng);
        let sig = id.sign(b"message");
        assert_eq!(verify_signature(&id.node_id(), b"message", &sig), Ok(()));
        assert_eq!(
            verify_signature(&id.node_id(), b"messagE", &sig),
            Err(SignatureError::Invalid)
        );
        let other = Identity::generate(&mut rng);
        assert_eq!(
            verify_signature(&other.node_id(), b"message", &sig),
            Err(SignatureError::Invalid)
        );
        let restored = Identity::from_secret_bytes(&id.secret_bytes());
        assert_eq!(restored.node_id(), id.node_id());
        assert_eq!(id.to_pkcs8_der().len(), 48);
    }
}
