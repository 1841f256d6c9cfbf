//! License tokens (DESIGN.md §4).
//!
//! The origin signs [`LicenseClaims`] — account, the node the token is bound to, region, scope
//! (which renditions may be fetched, or the super-node role), issue and expiry times — over
//! `b"chorus/license/1" || claims`. Trackers check a token before answering a peer query, and
//! peers check it before serving a chunk: the signature must be the origin's, the token must be
//! current at `now`, bound to the node id the connection authenticated, and cover the rendition.
//!
//! Time is an argument: this module never reads the clock.

use crate::codec::{self, CodecError, Validate};
use crate::identity::{self, Identity};
use crate::ids::{AccountId, NodeId, Region, RenditionId, UnixMillis};

/// The claims format version this code writes and accepts.
pub const LICENSE_VERSION: u8 = 2;
/// Most renditions one play token covers (every quality of a handful of tracks).
pub const LICENSE_RENDITIONS_MAX: usize = 64;
/// Most markets one token lists (every region code there is fits).
pub const LICENSE_MARKETS_MAX: usize = 250;
/// Longest validity of any token: offline downloads get 30 days, plus a day of grace.
pub const LICENSE_LIFETIME_MS_MAX: u64 = 31 * 24 * 3600 * 1000;
/// Clock difference tolerated between the issuer and a checker.
pub const CLOCK_SKEW_MS_MAX: u64 = 5 * 60 * 1000;
const SIGNING_DOMAIN: &[u8] = b"chorus/license/1";

/// What a token allows.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum LicenseScope {
    /// Fetch (and, for the client that holds the key, play) these renditions.
    Play {
        /// The renditions covered.
        renditions: Vec<RenditionId>,
    },
    /// The super-node role: fetch and cache ciphertext of any rendition allowed in its region.
    SuperNode,
}

/// The signed content of a license token.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct LicenseClaims {
    /// Format version, [`LICENSE_VERSION`].
    pub version: u8,
    /// The origin that issued it.
    pub issuer: NodeId,
    /// The account it was issued to.
    pub account: AccountId,
    /// The node it is bound to: only a connection authenticated as this node may use it.
    pub node: NodeId,
    /// The account's region at issue time.
    pub region: Region,
    /// What it allows.
    pub scope: LicenseScope,
    /// The regions where the covered track may be streamed, as the origin knew them at issue
    /// time; empty means everywhere. Trackers return, and peers serve, only within these.
    /// Always empty for the super-node role (its region is checked per rendition by the
    /// origin).
    pub markets: Vec<Region>,
    /// Issue time.
    pub issued_at: UnixMillis,
    /// Expiry time (exclusive).
    pub expires_at: UnixMillis,
    /// True for offline-download tokens (long-lived, counted against the device limit).
    pub offline: bool,
}

impl Validate for LicenseClaims {
    fn validate(&self) -> Result<(), CodecError> {
        if self.version != LICENSE_VERSION {
            return Err(CodecError::Invalid("unsupported license version"));
        }
        if !self.region.is_valid() {
            return Err(CodecError::Invalid("license region is not a region code"));
        }
        if self.markets.len() > LICENSE_MARKETS_MAX {
            return Err(CodecError::Invalid("license lists too many markets"));
        }
        if self.markets.iter().any(|market| !market.is_valid()) {
            return Err(CodecError::Invalid("license market is not a region code"));
        }
        if let LicenseScope::Play { renditions } = &self.scope
            && renditions.len() > LICENSE_RENDITIONS_MAX
        {
            return Err(CodecError::Invalid("license covers too many renditions"));
        }
        if self.expires_at <= self.issued_at
            || self.expires_at.0 - self.issued_at.0 > LICENSE_LIFETIME_MS_MAX
        {
            return Err(CodecError::Invalid("license lifetime out of range"));
        }
        Ok(())
    }
}

impl LicenseClaims {
    /// True when the token lets its holder fetch `rendition`.
    pub fn permits(&self, rendition: &RenditionId) -> bool {
        match &self.scope {
            LicenseScope::Play { renditions } => renditions.contains(rendition),
            LicenseScope::SuperNode => true,
        }
    }

    /// True when the track's markets include `region` (an empty market list means everywhere).
    pub fn market_includes(&self, region: &Region) -> bool {
        self.markets.is_empty() || self.markets.contains(region)
    }
}

/// Why a license token was refused. Each maps to a stable wire [`crate::wire::ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LicenseError {
    /// The claims could not be decoded or break a limit.
    #[error("license malformed: {0}")]
    Malformed(#[from] CodecError),
    /// The signature is not the trusted issuer's.
    #[error("license signature does not verify")]
    Forged,
    /// The token's lifetime is over.
    #[error("license expired at {expires_at:?} (now {now:?})")]
    Expired {
        /// When it expired.
        expires_at: UnixMillis,
        /// The time it was checked at.
        now: UnixMillis,
    },
    /// The token was issued in the future (beyond the tolerated clock skew).
    #[error("license not valid yet")]
    NotYetValid,
    /// The token is bound to another node than the one presenting it.
    #[error("license bound to node {bound}, presented by {presenter}")]
    WrongNode {
        /// The node in the token.
        bound: NodeId,
        /// The node that presented it.
        presenter: NodeId,
    },
    /// The token does not cover the rendition asked for.
    #[error("license does not cover rendition {0}")]
    NotCovered(RenditionId),
}

/// A license token as it travels: encoded claims and the issuer's signature.
#[derive(Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct LicenseToken {
    /// The encoded [`LicenseClaims`].
    pub claims: Vec<u8>,
    /// ed25519 signature over `b"chorus/license/1" || claims`.
    pub signature: [u8; 64],
}

impl core::fmt::Debug for LicenseToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "LicenseToken({} bytes)", self.claims.len())
    }
}

/// Largest encoded claims accepted (a full rendition list plus headers).
pub const LICENSE_CLAIMS_BYTES_MAX: usize =
    256 + LICENSE_RENDITIONS_MAX * 32 + LICENSE_MARKETS_MAX * 2;

impl Validate for LicenseToken {
    fn validate(&self) -> Result<(), CodecError> {
        if self.claims.len() > LICENSE_CLAIMS_BYTES_MAX {
            return Err(CodecError::Invalid("license claims too large"));
        }
        Ok(())
    }
}

fn signed_message(claims: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_DOMAIN.len() + claims.len());
    message.extend_from_slice(SIGNING_DOMAIN);
    message.extend_from_slice(claims);
    message
}

impl LicenseToken {
    /// Signs `claims` with the issuer's key. The claims' `issuer` must be that key.
    pub fn issue(issuer: &Identity, claims: &LicenseClaims) -> Result<Self, LicenseError> {
        if claims.issuer != issuer.node_id() {
            return Err(LicenseError::Forged);
        }
        let claims = codec::encode(claims)?;
        let signature = issuer.sign(&signed_message(&claims));
        Ok(Self { claims, signature })
    }

    /// Checks signature, lifetime at `now` and binding to `presenter`; returns the claims.
    pub fn verify(
        &self,
        issuer: &NodeId,
        presenter: &NodeId,
        now: UnixMillis,
    ) -> Result<LicenseClaims, LicenseError> {
        let claims = self.verify_genuine(issuer, presenter, now)?;
        if now >= claims.expires_at {
            return Err(LicenseError::Expired {
                expires_at: claims.expires_at,
                now,
            });
        }
        Ok(claims)
    }

    /// [`LicenseToken::verify`] without the expiry check: the token is the issuer's, was
    /// issued by `now` and is bound to `presenter`, current or not. Proof that the presenter
    /// was once licensed for what it covers (a tracker accepts it for announces).
    pub fn verify_genuine(
        &self,
        issuer: &NodeId,
        presenter: &NodeId,
        now: UnixMillis,
    ) -> Result<LicenseClaims, LicenseError> {
        self.validate()?;
        identity::verify_signature(issuer, &signed_message(&self.claims), &self.signature)
            .map_err(|_| LicenseError::Forged)?;
        let claims: LicenseClaims = codec::decode(&self.claims)?;
        if claims.issuer != *issuer {
            return Err(LicenseError::Forged);
        }
        if claims.issued_at.0 > now.0.saturating_add(CLOCK_SKEW_MS_MAX) {
            return Err(LicenseError::NotYetValid);
        }
        if claims.node != *presenter {
            return Err(LicenseError::WrongNode {
                bound: claims.node,
                presenter: *presenter,
            });
        }
        Ok(claims)
    }

    /// [`LicenseToken::verify`], and checks that the token covers `rendition`.
    pub fn verify_for(
        &self,
        issuer: &NodeId,
        presenter: &NodeId,
        rendition: &RenditionId,
        now: UnixMillis,
    ) -> Result<LicenseClaims, LicenseError> {
        let claims = self.verify(issuer, presenter, now)?;
        if !claims.permits(rendition) {
            return Err(LicenseError::NotCovered(*rendition));
        }
        Ok(claims)
    }

    /// The token's canonical bytes (for JSON APIs, which carry them as hex or base64).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// Parses [`LicenseToken::to_bytes`] output. Does not verify.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn claims(issuer: &Identity, node: NodeId) -> LicenseClaims {
        LicenseClaims {
            version: LICENSE_VERSION,
            issuer: issuer.node_id(),
            account: AccountId([1; 16]),
            node,
            region: "SE".parse().unwrap(),
            scope: LicenseScope::Play {
                renditions: vec![RenditionId([4; 32])],
            },
            markets: vec!["SE".parse().unwrap(), "NO".parse().unwrap()],
            issued_at: UnixMillis(1_000_000),
            expires_at: UnixMillis(1_000_000 + 3_600_000),
            offline: false,
        }
    }

    #[test]
    fn the_licensing_matrix() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let origin = Identity::generate(&mut rng);
        let client = Identity::generate(&mut rng);
        let thief = Identity::generate(&mut rng);
        let now = UnixMillis(1_000_500);
        let token = LicenseToken::issue(&origin, &claims(&origin, client.node_id())).unwrap();
        let covered = RenditionId([4; 32]);
        let (o, c) = (origin.node_id(), client.node_id());

        assert!(token.verify_for(&o, &c, &covered, now).is_ok());
        assert_eq!(
            token.verify_for(&o, &c, &RenditionId([5; 32]), now),
            Err(LicenseError::NotCovered(RenditionId([5; 32])))
        );
        assert!(matches!(
            token.verify(&o, &thief.node_id(), now),
            Err(LicenseError::WrongNode { .. })
        ));
        assert!(matches!(
            token.verify(&o, &c, UnixMillis(1_000_000 + 3_600_000)),
            Err(LicenseError::Expired { .. })
        ));
        assert_eq!(
            token.verify(&o, &c, UnixMillis(0)),
            Err(LicenseError::NotYetValid)
        );
        // Forged: signed by someone else, or claims altered after signing.
        let forged = LicenseToken::issue(&thief, &claims(&thief, c)).unwrap();
        assert_eq!(forged.verify(&o, &c, now), Err(LicenseError::Forged));
        let mut altered = token.clone();
        let last = altered.claims.len() - 1;
        altered.claims[last] ^= 1;
        assert_eq!(altered.verify(&o, &c, now), Err(LicenseError::Forged));
        // Round trip through bytes.
        assert_eq!(
            LicenseToken::from_bytes(&token.to_bytes().unwrap()).unwrap(),
            token
        );
    }

    #[test]
    fn super_node_scope_and_limits() {
        let origin = Identity::from_secret_bytes(&[1; 32]);
        let mut role = claims(&origin, NodeId([2; 32]));
        role.scope = LicenseScope::SuperNode;
        assert!(role.permits(&RenditionId([9; 32])));
        let mut long = role.clone();
        long.expires_at = UnixMillis(long.issued_at.0 + LICENSE_LIFETIME_MS_MAX + 1);
        assert!(matches!(
            LicenseToken::issue(&origin, &long),
            Err(LicenseError::Malformed(_))
        ));
        let mut many = role;
        many.scope = LicenseScope::Play {
            renditions: vec![RenditionId([0; 32]); 65],
        };
        assert!(matches!(
            LicenseToken::issue(&origin, &many),
            Err(LicenseError::Malformed(_))
        ));
    }
}
