//! The local cache: the cap holds with least recently used chunks evicted, damaged files are
//! dropped, and a reopened cache keeps what it had.

use client_lib::cache::ClientCache;
use protocol::ChunkId;

fn chunk(n: u8) -> (ChunkId, Vec<u8>) {
    let data = vec![n; 1000];
    (ChunkId::of(&data), data)
}

#[test]
fn the_cap_holds_and_least_recently_used_chunks_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ClientCache::open(dir.path(), 3000).unwrap();
    let chunks: Vec<_> = (1..=4).map(chunk).collect();
    for (id, data) in &chunks[..3] {
        cache.put(id, data).unwrap();
    }
    assert_eq!(cache.used(), 3000);
    // Chunk 1 is read, so chunk 2 is now the oldest.
    assert_eq!(cache.get(&chunks[0].0).unwrap(), chunks[0].1);
    cache.put(&chunks[3].0, &chunks[3].1).unwrap();
    assert_eq!(cache.used(), 3000);
    assert!(cache.get(&chunks[1].0).is_none());
    assert!(
        !dir.path()
            .join("chunks")
            .join(chunks[1].0.to_hex())
            .exists()
    );
    for n in [0, 2, 3] {
        assert_eq!(cache.get(&chunks[n].0).unwrap(), chunks[n].1);
    }
    // Larger than the cap: not stored, nothing evicted.
    let big = vec![9u8; 5000];
    cache.put(&ChunkId::of(&big), &big).unwrap();
    assert_eq!(cache.used(), 3000);
}

#[test]
fn damaged_files_are_dropped_and_a_reopened_cache_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (good, good_data) = chunk(1);
    let (bad, bad_data) = chunk(2);
    {
        let cache = ClientCache::open(dir.path(), 1 << 20).unwrap();
        cache.put(&good, &good_data).unwrap();
        cache.put(&bad, &bad_data).unwrap();
    }
    std::fs::write(dir.path().join("chunks").join(bad.to_hex()), b"rot").unwrap();
    std::fs::write(dir.path().join("chunks").join("stray.part"), b"half").unwrap();
    let cache = ClientCache::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(cache.get(&good).unwrap(), good_data);
    assert!(cache.get(&bad).is_none());
    assert!(!dir.path().join("chunks").join(bad.to_hex()).exists());
    assert!(!dir.path().join("chunks").join("stray.part").exists());
    assert_eq!(cache.used(), 1000);
    // A smaller cap at reopen evicts down to it.
    drop(cache);
    let cache = ClientCache::open(dir.path(), 500).unwrap();
    assert_eq!(cache.used(), 0);
}
