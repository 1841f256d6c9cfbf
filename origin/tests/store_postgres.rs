//! The store's behavioural suite on PostgreSQL and S3-compatible object storage: a private
//! PostgreSQL cluster and a Garage object store, each its own process on loopback (see
//! `testkit::services`; `scripts/setup` installs both). Also what only a networked backend
//! can do: survive a database restart, and answer an object-store outage with "unavailable".

use std::time::Duration;

use bytes::Bytes;
use origin::store::{Blobs, Database, Store, StoreConfig, StoreError, suite};
use protocol::ChunkId;
use testkit::services::{Garage, Postgres};

fn config(
    data: &std::path::Path,
    postgres: &Postgres,
    database: &str,
    garage: &Garage,
    bucket: &str,
) -> StoreConfig {
    let url = postgres.create_database(database).unwrap();
    garage.create_bucket(bucket).unwrap();
    StoreConfig {
        data_dir: data.to_path_buf(),
        database: Database::Postgres { url, pool_size: 8 },
        blobs: Blobs::S3 {
            bucket: bucket.into(),
            prefix: "origin-a".into(),
            access: garage.access(),
        },
        chunk_cache_bytes: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_suite_passes_on_postgres_and_s3() {
    let (postgres, garage) = (Postgres::start().unwrap(), Garage::start().unwrap());
    let data = tempfile::tempdir().unwrap();
    let config = config(data.path(), &postgres, "suite", &garage, "suite");
    let store = Store::open(&config).await.unwrap();
    suite::run(&store).await;
    // Migrations are idempotent: opening again applies nothing and finds the data.
    drop(store);
    let store = Store::open(&config).await.unwrap();
    assert!(
        store
            .accounts()
            .account_by_username("ada")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_survives_a_database_restart() {
    let (postgres, garage) = (Postgres::start().unwrap(), Garage::start().unwrap());
    let data = tempfile::tempdir().unwrap();
    let config = config(data.path(), &postgres, "restart", &garage, "restart");
    let store = Store::open(&config).await.unwrap();
    assert!(
        store
            .accounts()
            .create_account(&suite::account("a1", "before"))
            .await
            .unwrap()
    );
    postgres.stop().unwrap();
    let down = store.accounts().account_by_username("before").await;
    assert!(
        matches!(down, Err(StoreError::Unavailable(_))),
        "a stopped database is unavailable, not an error of the request: {down:?}"
    );
    postgres.restart().unwrap();
    // The pool drops the dead connections and opens new ones: no restart of the origin.
    let mut found = None;
    for _ in 0..50 {
        match store.accounts().account_by_username("before").await {
            Ok(account) => {
                found = account;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        found.is_some(),
        "the acknowledged account is there after the restart"
    );
    assert!(
        store
            .accounts()
            .create_account(&suite::account("a2", "after"))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_store_outage_is_unavailable_and_passes() {
    let (postgres, garage) = (Postgres::start().unwrap(), Garage::start().unwrap());
    let data = tempfile::tempdir().unwrap();
    let config = config(data.path(), &postgres, "outage", &garage, "outage");
    let store = Store::open(&config).await.unwrap();
    let chunk = Bytes::from_static(b"a sealed chunk stored before the outage");
    let id = ChunkId::of(&chunk);
    store.blobs().put(&id, chunk.clone()).await.unwrap();
    garage.stop();
    let other = Bytes::from_static(b"a sealed chunk offered during the outage");
    let put = store.blobs().put(&ChunkId::of(&other), other.clone()).await;
    assert!(
        matches!(
            put.map_err(StoreError::from),
            Err(StoreError::Unavailable(_))
        ),
        "a write during an outage is unavailable"
    );
    let get = store.blobs().get(&id).await;
    assert!(matches!(
        get.map_err(StoreError::from),
        Err(StoreError::Unavailable(_))
    ));
    garage.restart().unwrap();
    assert_eq!(store.blobs().get(&id).await.unwrap().unwrap(), chunk);
    store
        .blobs()
        .put(&ChunkId::of(&other), other)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_origin_migrates_and_an_interrupted_migration_resumes() {
    let (postgres, garage) = (Postgres::start().unwrap(), Garage::start().unwrap());
    let data = tempfile::tempdir().unwrap();
    // The source: the suite's data plus a published track with real chunks.
    let source = Store::open_embedded(data.path()).await.unwrap();
    suite::run(&source).await;
    let chunks: Vec<Bytes> = (0..30u8)
        .map(|n| Bytes::from(vec![n; 4096 + usize::from(n)]))
        .collect();
    let ids: Vec<ChunkId> = chunks.iter().map(|chunk| ChunkId::of(chunk)).collect();
    for (id, chunk) in ids.iter().zip(&chunks) {
        source.blobs().put(id, chunk.clone()).await.unwrap();
    }
    let mut track = suite::track("mt", "martist", Some("malbum"), "mr");
    // Lyrics and cover art ride along in blobs the record points at.
    let lyrics = origin::tags::parse_lyrics("[00:01.00]migrated words").unwrap();
    track.details.lyrics = Some(source.put_lyrics(&lyrics).await.unwrap());
    let cover = origin::artwork::Sized {
        edge: 128,
        jpeg: vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3],
    };
    track.details.artwork = Some(
        source
            .put_images(std::slice::from_ref(&cover))
            .await
            .unwrap(),
    );
    let rendition = origin::store::RenditionRecord {
        track: "mt".into(),
        quality: "normal".into(),
        manifest: suite::manifest_hex(&ids),
        content_key: hex::encode([5u8; 32]),
    };
    source
        .publish_track(&track, &[("mr".into(), rendition)])
        .await
        .unwrap();
    let target_config = config(data.path(), &postgres, "migrated", &garage, "migrated");
    let target = Store::open(&target_config).await.unwrap();
    let checkpoint = origin::migrate::checkpoint_path(data.path());

    // The object store goes away in the middle: the migration stops with an error and keeps
    // its checkpoint.
    let garage = std::sync::Mutex::new(garage);
    let interrupt = |phase: origin::migrate::Phase, _: u64, _: Option<u64>| {
        if phase == origin::migrate::Phase::Renditions {
            garage.lock().unwrap().stop();
        }
    };
    let interrupted = origin::migrate::migrate(&source, &target, &checkpoint, &interrupt).await;
    assert!(interrupted.is_err(), "{interrupted:?}");
    let saved = origin::migrate::Checkpoint::load(&checkpoint).unwrap();
    assert!(
        saved.done.contains(&origin::migrate::Phase::Accounts),
        "{saved:?}"
    );
    garage.lock().unwrap().restart().unwrap();

    // Run again: it resumes and verifies.
    let quiet = |_: origin::migrate::Phase, _: u64, _: Option<u64>| {};
    let report = origin::migrate::migrate(&source, &target, &checkpoint, &quiet)
        .await
        .unwrap();
    assert_eq!(report.chunks_verified, 30);
    assert!(
        !checkpoint.exists(),
        "a finished migration leaves no checkpoint"
    );
    // The target serves what the source held: the track, its key (same content.kek), its
    // chunks, the accounts and the listening history.
    assert_eq!(
        target.catalog().track("mt").await.unwrap().unwrap().title,
        "Title mt"
    );
    assert_eq!(
        target.rendition("mr").await.unwrap().unwrap().content_key,
        hex::encode([5u8; 32])
    );
    assert_eq!(
        target.blobs().get(&ids[7]).await.unwrap().unwrap(),
        chunks[7]
    );
    let migrated = target.catalog().track("mt").await.unwrap().unwrap();
    assert_eq!(
        target
            .lyrics(migrated.details.lyrics.as_ref().unwrap())
            .await
            .unwrap(),
        Some(lyrics)
    );
    let cover_id: ChunkId = migrated.details.artwork.as_ref().unwrap().sizes[0]
        .blob
        .parse()
        .unwrap();
    assert_eq!(
        target.image(&cover_id).await.unwrap().unwrap().as_ref(),
        cover.jpeg.as_slice()
    );
    assert!(
        target
            .accounts()
            .account_by_username("ada")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        target.play_count("t02").await.unwrap(),
        source.play_count("t02").await.unwrap()
    );
    let counts = |report: &origin::migrate::Report, name: &str| {
        report
            .counts
            .iter()
            .find(|(counted, _)| counted == name)
            .map(|(_, n)| *n)
    };
    assert_eq!(counts(&report, "tracks"), Some(5));
    assert!(counts(&report, "listening rows").unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_origin_leads_and_another_takes_over_when_it_stops() {
    let (postgres, garage) = (Postgres::start().unwrap(), Garage::start().unwrap());
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config_one = config(one.path(), &postgres, "lead", &garage, "lead");
    let mut config_two = config_one.clone();
    config_two.data_dir = two.path().to_path_buf();
    let first = Store::open(&config_one).await.unwrap();
    let second = Store::open(&config_two).await.unwrap();
    assert!(
        first.coordination().lead().await.unwrap(),
        "the first to ask leads"
    );
    assert!(
        first.coordination().lead().await.unwrap(),
        "and keeps leading"
    );
    assert!(
        !second.coordination().lead().await.unwrap(),
        "one leader at a time"
    );
    drop(first);
    // The server releases the lock when the leader's session ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !second.coordination().lead().await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "nobody took over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
