//! Cutting an Ogg stream part-way (Subsonic's `timeOffset`): whatever the bytes, the offset
//! and the pieces they arrive in, reading the headers, scanning for the cut and rewriting the
//! pages never panic, and every page the cutter writes is one a reader accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::Codec;
use protocol::ogg::seek::{Cutter, Found, Headers, Scan};

fuzz_target!(|data: &[u8]| {
    let Some((&control, file)) = data.split_first() else {
        return;
    };
    let codec = if control & 1 == 0 {
        Codec::Vorbis
    } else {
        Codec::Opus
    };
    let piece = usize::from(control >> 3) + 1;
    let mut headers = Headers::new(codec);
    let mut whole = false;
    for bytes in file.chunks(piece) {
        match headers.push(bytes) {
            Ok(true) => {
                whole = true;
                break;
            }
            Ok(false) => {}
            Err(_) => return,
        }
    }
    if !whole {
        return;
    }
    let ms = u64::from(control) * 37;
    let from = (usize::from(control) * 11).min(file.len());
    let mut scan = Scan::new(&headers, headers.granule_at(ms), from as u64);
    let Some(found) = file[from..].chunks(piece).find_map(|bytes| scan.push(bytes)) else {
        return;
    };
    let at = match found {
        Found::Cut { at, .. } => at as usize,
        Found::Earlier => return,
    };
    assert!(at <= file.len());
    let mut out = Vec::new();
    let mut cutter = Cutter::new(&headers, found);
    for bytes in file[at..].chunks(piece) {
        if cutter.push(bytes, &mut out).is_err() {
            return;
        }
    }
    // What was written reads back as pages of one stream, in sequence.
    let mut check = Cutter::new(&headers, Found::Cut { at: 0, base: None });
    let mut again = Vec::new();
    check.push(&out, &mut again).expect("written pages read back");
    check.finish().expect("written pages end on a boundary");
    assert_eq!(again, out, "rewriting the rewritten pages changes nothing");
});
