//! License tokens as peers and trackers receive them: parse and verify must never panic and
//! must never accept a token the fixed origin key did not sign.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{Identity, LicenseToken, NodeId, UnixMillis};

fuzz_target!(|data: &[u8]| {
    let origin = Identity::from_secret_bytes(&[0x11; 32]).node_id();
    if let Ok(token) = LicenseToken::from_bytes(data) {
        let verdict = token.verify(&origin, &NodeId([0x22; 32]), UnixMillis(1_700_000_000_000));
        // Random bytes carrying a valid origin signature would be a forgery.
        assert!(verdict.is_err());
    }
});
