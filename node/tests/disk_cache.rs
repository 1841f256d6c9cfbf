//! The super-node's disk cache under a full budget: eviction order, pins, files deleted,
//! crash leftovers and damaged renditions dropped on reopen.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use node::store::{DiskCache, StoreError};
use protocol::{Identity, Manifest, RenditionId, UnixMillis};
use transport::chunks::{ChunkSource, Clock};

/// A rendition of `chunks` 4 KiB chunks (4,096 + 16 bytes of ciphertext each) of track `n`.
fn rendition(origin: &Identity, n: u8, chunks: usize) -> (Manifest, Vec<Bytes>) {
    let sealed = testkit::RenditionSpec::new(n)
        .chunks(chunks)
        .seal(origin)
        .unwrap();
    (sealed.manifest, sealed.chunks)
}

const RENDITION_BYTES: u64 = 10 * (4096 + 16);

fn clock() -> (Clock, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(1_000));
    let read = now.clone();
    (
        Arc::new(move || UnixMillis(read.load(Ordering::Relaxed))),
        now,
    )
}

fn files_of(dir: &std::path::Path, id: &RenditionId) -> bool {
    dir.join("renditions").join(id.to_hex()).exists()
}

#[tokio::test]
async fn a_full_cache_evicts_least_recently_used_unpinned_renditions_and_their_files() {
    let origin = Identity::from_secret_bytes(&[1; 32]);
    let dir = tempfile::tempdir().unwrap();
    let (clock, now) = clock();
    // Room for three renditions; up to half of it pinned.
    let cache = DiskCache::open(
        dir.path(),
        3 * RENDITION_BYTES,
        0.5,
        origin.node_id(),
        clock.clone(),
    )
    .unwrap();
    let renditions: Vec<(Manifest, Vec<Bytes>)> =
        (1..=5).map(|n| rendition(&origin, n, 10)).collect();
    let id = |n: usize| renditions[n].0.id();

    // 0 is popular and pinned; 1 and 2 are ordinary.
    cache.with_policy(|policy| policy.set_popular(&[id(0)], 0));
    for (n, pin) in [(0, true), (1, false), (2, false)] {
        now.fetch_add(10, Ordering::Relaxed);
        let (manifest, chunks) = &renditions[n];
        assert!(
            cache
                .insert(manifest.signed(), manifest, chunks, pin)
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(cache.usage(), (3 * RENDITION_BYTES, 3 * RENDITION_BYTES));
    // 1 is played (its first chunk served), so 2 is now the least recently used.
    now.fetch_add(10, Ordering::Relaxed);
    assert!(cache.chunk(&id(1), 0).await.is_some());

    now.fetch_add(10, Ordering::Relaxed);
    let (manifest, chunks) = &renditions[3];
    let evicted = cache
        .insert(manifest.signed(), manifest, chunks, false)
        .unwrap();
    assert_eq!(evicted, vec![id(2)]);
    assert!(!files_of(dir.path(), &id(2)), "evicted files are deleted");
    assert!(cache.chunk(&id(2), 0).await.is_none());
    now.fetch_add(10, Ordering::Relaxed);
    let (manifest, chunks) = &renditions[4];
    let evicted = cache
        .insert(manifest.signed(), manifest, chunks, false)
        .unwrap();
    assert_eq!(evicted, vec![id(1)]);
    // The pinned one survived both.
    assert!(cache.holds(&id(0)) && files_of(dir.path(), &id(0)));
    assert_eq!(cache.usage().0, 3 * RENDITION_BYTES);

    // A rendition larger than the budget is refused and nothing is lost.
    let (big, big_chunks) = rendition(&origin, 9, 40);
    assert!(matches!(
        cache.insert(big.signed(), &big, &big_chunks, false),
        Err(StoreError::Admit(_))
    ));
    assert_eq!(cache.held().len(), 3);

    // Chunks that do not match the manifest are refused.
    let (manifest, mut chunks) = rendition(&origin, 7, 10);
    chunks[3] = Bytes::from(vec![0u8; 4112]);
    assert!(matches!(
        cache.insert(manifest.signed(), &manifest, &chunks, false),
        Err(StoreError::BadChunk { index: 3 })
    ));
    assert!(!cache.holds(&manifest.id()));
}

#[tokio::test]
async fn reopening_keeps_complete_renditions_and_drops_damage() {
    let origin = Identity::from_secret_bytes(&[1; 32]);
    let dir = tempfile::tempdir().unwrap();
    let (clock, _) = clock();
    let (kept, kept_chunks) = rendition(&origin, 1, 10);
    let (damaged, damaged_chunks) = rendition(&origin, 2, 10);
    {
        let cache =
            DiskCache::open(dir.path(), 1 << 20, 0.5, origin.node_id(), clock.clone()).unwrap();
        cache
            .insert(kept.signed(), &kept, &kept_chunks, false)
            .unwrap();
        cache
            .insert(damaged.signed(), &damaged, &damaged_chunks, false)
            .unwrap();
    }
    // A chunk file lost, and a fetch interrupted mid-way (left in incoming/).
    std::fs::remove_file(
        dir.path()
            .join("renditions")
            .join(damaged.id().to_hex())
            .join("4"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("incoming").join("partial")).unwrap();
    // A rendition directory whose manifest another origin signed.
    let stranger = Identity::from_secret_bytes(&[2; 32]);
    let (foreign, foreign_chunks) = rendition(&stranger, 3, 2);
    let foreign_dir = dir.path().join("renditions").join(foreign.id().to_hex());
    std::fs::create_dir_all(&foreign_dir).unwrap();
    std::fs::write(
        foreign_dir.join("manifest"),
        protocol::codec::encode(foreign.signed()).unwrap(),
    )
    .unwrap();
    for (index, chunk) in foreign_chunks.iter().enumerate() {
        std::fs::write(foreign_dir.join(index.to_string()), chunk).unwrap();
    }

    let cache = DiskCache::open(dir.path(), 1 << 20, 0.5, origin.node_id(), clock).unwrap();
    assert!(cache.holds(&kept.id()));
    assert!(!cache.holds(&damaged.id()));
    assert!(!cache.holds(&foreign.id()));
    assert!(!foreign_dir.exists());
    assert!(!dir.path().join("incoming").join("partial").exists());
    assert_eq!(cache.usage().0, RENDITION_BYTES);
    // What was kept serves byte-for-byte what was stored.
    let (id, data) = cache.chunk(&kept.id(), 9).await.unwrap();
    assert_eq!(id, kept.body().chunks[9]);
    assert_eq!(data, kept_chunks[9]);
}
