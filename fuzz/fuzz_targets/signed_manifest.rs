//! Manifests as peers receive them: decode and verify must never panic, and no fuzzed
//! manifest verifies under the fixed origin key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{Identity, SignedManifest, codec};

fuzz_target!(|data: &[u8]| {
    let origin = Identity::from_secret_bytes(&[0x11; 32]).node_id();
    if let Ok(manifest) = codec::decode::<SignedManifest>(data) {
        assert!(manifest.verify(&origin).is_err());
    }
});
