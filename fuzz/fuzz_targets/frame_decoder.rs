//! Stream reassembly from arbitrary byte pieces: never panics, never buffers past the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::codec::{FRAME_BYTES_MAX, FRAME_HEADER_BYTES, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new();
    // The first byte picks how the rest is cut into pieces.
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for piece in data.chunks(step) {
        if decoder.push(piece).is_err() {
            break;
        }
        assert!(decoder.buffered() <= FRAME_HEADER_BYTES + FRAME_BYTES_MAX);
    }
});
