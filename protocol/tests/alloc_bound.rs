//! No decode allocates beyond the frame cap, whatever lengths the bytes claim.
//!
//! This test binary installs a global allocator that records the largest single allocation,
//! then feeds the decoders frames whose length fields claim gigabytes. The allocator is the
//! only unsafe code in the workspace, and it is test-only.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use protocol::codec::{self, FRAME_BYTES_MAX, FrameDecoder};
use protocol::{Request, Response, SignedManifest};

struct Recording;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// Bodies that declare huge collections in a few bytes.
fn liars() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for marker_and_len in [
        vec![252u8, 0xFF, 0xFF, 0xFF, 0x7F], // u32 length ~2^31
        vec![253u8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], // u64 length ~2^60
    ] {
        // Response::Chunk { index: 0, data: <huge> }
        let mut chunk = vec![0u8, 0u8];
        chunk.extend_from_slice(&marker_and_len);
        out.push(chunk);
        // Response::PeerList { rendition, peers: <huge> }
        let mut list = vec![4u8];
        list.extend_from_slice(&[0; 32]);
        list.extend_from_slice(&marker_and_len);
        out.push(list);
        // Request::Announce with a huge address list.
        let mut announce = vec![2u8, b'S', b'E', 0];
        announce.extend_from_slice(&marker_and_len);
        out.push(announce);
        // A bare manifest with a huge body.
        out.push(marker_and_len.clone());
    }
    out
}

#[test]
fn lying_lengths_allocate_at_most_the_frame_cap() {
    for body in liars() {
        LARGEST.store(0, Ordering::Relaxed);
        assert!(codec::decode::<Request>(&body).is_err());
        assert!(codec::decode::<Response>(&body).is_err());
        assert!(codec::decode::<SignedManifest>(&body).is_err());
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            largest <= FRAME_BYTES_MAX,
            "a {}-byte body allocated {largest} bytes",
            body.len()
        );
    }
    // A frame header claiming 4 GiB is refused before any body is buffered.
    LARGEST.store(0, Ordering::Relaxed);
    assert!(
        FrameDecoder::new()
            .push(&[0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3])
            .is_err()
    );
    assert!(LARGEST.load(Ordering::Relaxed) <= 64);
}
