//! Identifiers: nodes, tracks, renditions, chunks, accounts, regions.
//!
//! Every id is a fixed-size byte array. Ids print as lowercase hex and parse back from it, so
//! they can travel in URLs, logs and JSON unchanged.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a textual id could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// The text was not hex of the expected length.
    #[error("expected {expected} hex characters, got {got}")]
    Length {
        /// Hex characters expected.
        expected: usize,
        /// Characters received.
        got: usize,
    },
    /// The text had a character outside `0-9a-fA-F`.
    #[error("id is not hexadecimal")]
    NotHex,
    /// A region code was not two ASCII capital letters.
    #[error("region must be two ASCII capital letters (ISO 3166-1 alpha-2)")]
    Region,
}

fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], IdParseError> {
    if text.len() != N * 2 {
        return Err(IdParseError::Length {
            expected: N * 2,
            got: text.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| IdParseError::NotHex)?;
    Ok(out)
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize, bincode::Encode, bincode::Decode,
        )]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length of the id in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex, as used in URLs and logs.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Eight hex digits are enough to tell ids apart in logs.
                write!(f, "{}({})", stringify!($name), &hex::encode(&self.0[..4]))
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                parse_hex::<$len>(text).map(Self)
            }
        }
    };
}

byte_id!(
    /// A node's id: its ed25519 public key. QUIC/TLS proves possession of the matching secret.
    NodeId,
    32
);
byte_id!(
    /// A track, assigned by the origin at ingest (128 random bits).
    TrackId,
    16
);
byte_id!(
    /// A rendition (one encoding of a track): BLAKE3 of its signed manifest's body.
    RenditionId,
    32
);
byte_id!(
    /// A chunk: BLAKE3 of its ciphertext.
    ChunkId,
    32
);
byte_id!(
    /// An account at the origin (128 random bits).
    AccountId,
    16
);

impl ChunkId {
    /// The id of a sealed chunk: BLAKE3 of the ciphertext.
    pub fn of(ciphertext: &[u8]) -> Self {
        Self(*blake3::hash(ciphertext).as_bytes())
    }
}

/// An ISO 3166-1 alpha-2 region code such as `SE` or `US`.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
pub struct Region([u8; 2]);

impl Region {
    /// `ZZ`, the ISO 3166 user-assigned code for an unknown or unspecified region.
    pub const UNKNOWN: Region = Region(*b"ZZ");

    /// Builds a region from two ASCII capital letters.
    pub fn new(code: [u8; 2]) -> Result<Self, IdParseError> {
        if code.iter().all(u8::is_ascii_uppercase) {
            Ok(Self(code))
        } else {
            Err(IdParseError::Region)
        }
    }

    /// True when the code is two ASCII capitals (decoded values are checked with this).
    pub fn is_valid(&self) -> bool {
        self.0.iter().all(u8::is_ascii_uppercase)
    }

    /// Parses a region an operator or a user names: an ISO 3166-1 alpha-2 code that is
    /// assigned to a country or territory (`SE`, `US`), never a user-assigned or reserved one
    /// (`XX`, `ZZ`, `AA`). Wire values only need [`Region::is_valid`], since `ZZ` stands for
    /// an unknown region there.
    pub fn assigned(text: &str) -> Result<Self, IdParseError> {
        let region: Region = text.parse()?;
        if region.is_assigned() {
            Ok(region)
        } else {
            Err(IdParseError::Region)
        }
    }

    /// True when the code is assigned by ISO 3166-1 (see [`ISO_3166_ALPHA2`]).
    pub fn is_assigned(&self) -> bool {
        ISO_3166_ALPHA2.binary_search(&self.0).is_ok()
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Valid regions are ASCII; an invalid decoded one is reported as "??".
        core::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted.
pub const ISO_3166_ALPHA2: [[u8; 2]; 249] = [
    *b"AD", *b"AE", *b"AF", *b"AG", *b"AI", *b"AL", *b"AM", *b"AO", *b"AQ", *b"AR", *b"AS", *b"AT",
    *b"AU", *b"AW", *b"AX", *b"AZ", *b"BA", *b"BB", *b"BD", *b"BE", *b"BF", *b"BG", *b"BH", *b"BI",
    *b"BJ", *b"BL", *b"BM", *b"BN", *b"BO", *b"BQ", *b"BR", *b"BS", *b"BT", *b"BV", *b"BW", *b"BY",
    *b"BZ", *b"CA", *b"CC", *b"CD", *b"CF", *b"CG", *b"CH", *b"CI", *b"CK", *b"CL", *b"CM", *b"CN",
    *b"CO", *b"CR", *b"CU", *b"CV", *b"CW", *b"CX", *b"CY", *b"CZ", *b"DE", *b"DJ", *b"DK", *b"DM",
    *b"DO", *b"DZ", *b"EC", *b"EE", *b"EG", *b"EH", *b"ER", *b"ES", *b"ET", *b"FI", *b"FJ", *b"FK",
    *b"FM", *b"FO", *b"FR", *b"GA", *b"GB", *b"GD", *b"GE", *b"GF", *b"GG", *b"GH", *b"GI", *b"GL",
    *b"GM", *b"GN", *b"GP", *b"GQ", *b"GR", *b"GS", *b"GT", *b"GU", *b"GW", *b"GY", *b"HK", *b"HM",
    *b"HN", *b"HR", *b"HT", *b"HU", *b"ID", *b"IE", *b"IL", *b"IM", *b"IN", *b"IO", *b"IQ", *b"IR",
    *b"IS", *b"IT", *b"JE", *b"JM", *b"JO", *b"JP", *b"KE", *b"KG", *b"KH", *b"KI", *b"KM", *b"KN",
    *b"KP", *b"KR", *b"KW", *b"KY", *b"KZ", *b"LA", *b"LB", *b"LC", *b"LI", *b"LK", *b"LR", *b"LS",
    *b"LT", *b"LU", *b"LV", *b"LY", *b"MA", *b"MC", *b"MD", *b"ME", *b"MF", *b"MG", *b"MH", *b"MK",
    *b"ML", *b"MM", *b"MN", *b"MO", *b"MP", *b"MQ", *b"MR", *b"MS", *b"MT", *b"MU", *b"MV", *b"MW",
    *b"MX", *b"MY", *b"MZ", *b"NA", *b"NC", *b"NE", *b"NF", *b"NG", *b"NI", *b"NL", *b"NO", *b"NP",
    *b"NR", *b"NU", *b"NZ", *b"OM", *b"PA", *b"PE", *b"PF", *b"PG", *b"PH", *b"PK", *b"PL", *b"PM",
    *b"PN", *b"PR", *b"PS", *b"PT", *b"PW", *b"PY", *b"QA", *b"RE", *b"RO", *b"RS", *b"RU", *b"RW",
    *b"SA", *b"SB", *b"SC", *b"SD", *b"SE", *b"SG", *b"SH", *b"SI", *b"SJ", *b"SK", *b"SL", *b"SM",
    *b"SN", *b"SO", *b"SR", *b"SS", *b"ST", *b"SV", *b"SX", *b"SY", *b"SZ", *b"TC", *b"TD", *b"TF",
    *b"TG", *b"TH", *b"TJ", *b"TK", *b"TL", *b"TM", *b"TN", *b"TO", *b"TR", *b"TT", *b"TV", *b"TW",
    *b"TZ", *b"UA", *b"UG", *b"UM", *b"US", *b"UY", *b"UZ", *b"VA", *b"VC", *b"VE", *b"VG", *b"VI",
    *b"VN", *b"VU", *b"WF", *b"WS", *b"YE", *b"YT", *b"ZA", *b"ZM", *b"ZW",
];

impl FromStr for Region {
    type Err = IdParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes: [u8; 2] = text
            .as_bytes()
            .try_into()
            .map_err(|_| IdParseError::Region)?;
        Self::new(bytes)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

/// Milliseconds since the Unix epoch. Policy code takes this as an argument; only drivers read
/// the clock.
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
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// `self + ms`, saturating.
    pub fn plus_ms(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = ChunkId::of(b"hello");
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<ChunkId>().unwrap(), id);
        assert_eq!(
            "abc".parse::<ChunkId>(),
            Err(IdParseError::Length {
                expected: 64,
                got: 3
            })
        );
        assert_eq!(
            "zz".repeat(16).parse::<TrackId>(),
            Err(IdParseError::NotHex)
        );
    }

    #[test]
    fn regions() {
        assert_eq!("SE".parse::<Region>().unwrap().to_string(), "SE");
        assert!("se".parse::<Region>().is_err());
        assert!("SWE".parse::<Region>().is_err());
        assert!("".parse::<Region>().is_err());
        assert!(!Region([0xff, b'A']).is_valid());
        assert!(Region::assigned("SE").is_ok());
        assert!(Region::assigned("US").is_ok());
        for unassigned in ["XX", "ZZ", "AA", "QM", "EU", "UK", "se", "S"] {
            assert!(Region::assigned(unassigned).is_err(), "{unassigned}");
        }
        assert!(ISO_3166_ALPHA2.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(Region([0xff, b'A']).as_str(), "??");
    }
}
