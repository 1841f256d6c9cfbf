//! Chunk timing from an encoded file's Ogg pages: whatever the bytes and however they are cut
//! into pieces, the timer never panics, and when it answers, the answer is the same for every
//! cut, one entry per chunk, never going back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::Codec;
use protocol::ogg::{ChunkTimer, chunk_ends_ms};

fuzz_target!(|data: &[u8]| {
    let Some((&control, file)) = data.split_first() else {
        return;
    };
    let codec = if control & 1 == 0 {
        Codec::Vorbis
    } else {
        Codec::Opus
    };
    let chunk_bytes = u32::from(control >> 1) * 13 + 1;
    let whole = chunk_ends_ms(file, chunk_bytes, codec);
    let mut timer = ChunkTimer::new(codec, chunk_bytes).expect("chunk size is not 0");
    let piece = usize::from(control % 29) + 1;
    let pieces = file
        .chunks(piece)
        .try_for_each(|bytes| timer.push(bytes))
        .and_then(|()| timer.finish());
    assert_eq!(whole, pieces);
    if let Ok(ends) = whole {
        assert_eq!(ends.len(), file.len().div_ceil(chunk_bytes as usize));
        assert!(ends.windows(2).all(|pair| pair[0] <= pair[1]));
    }
});
