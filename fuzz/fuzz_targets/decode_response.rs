//! Every response a node decodes from a peer, through both the codec and the zero-copy chunk
//! fast path: neither may panic, and they must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::codec;
use protocol::wire::{Response, split_chunk_frame};

fuzz_target!(|data: &[u8]| {
    let decoded = codec::decode::<Response>(data);
    if let Some((index, offset)) = split_chunk_frame(data) {
        let expected = Response::Chunk { index, data: data[offset..].to_vec() };
        assert_eq!(decoded.as_ref().ok(), Some(&expected));
    }
});
