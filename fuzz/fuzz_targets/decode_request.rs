//! Every request a node decodes from a peer: must never panic, and a decoded request must
//! re-encode to bytes that decode to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::codec;
use protocol::wire::Request;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = codec::decode::<Request>(data) {
        let again = codec::encode(&request).expect("a decoded request re-encodes");
        let round = codec::decode::<Request>(&again).expect("re-encoded request decodes");
        assert_eq!(round, request);
    }
});
