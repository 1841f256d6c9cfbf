//! The store's behavioural suite on the embedded backend (sled and files), plus what only
//! the embedded backend promises: reopening finds every acknowledged write.

use origin::store::{Library, LibraryAdd, Store, suite};

async fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path()).await.unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_suite_passes_on_sled_and_files() {
    let (_dir, store) = fresh().await;
    suite::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_are_there_after_reopening() {
    let (dir, store) = fresh().await;
    assert!(
        store
            .accounts()
            .create_account(&suite::account("a1", "reopened"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .libraries()
            .library_add(Library::Tracks, "a1", "t1", 5, 10)
            .await
            .unwrap(),
        LibraryAdd::Added(5)
    );
    drop(store);
    let store = Store::open_embedded(dir.path()).await.unwrap();
    assert!(
        store
            .accounts()
            .account_by_username("reopened")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .libraries()
            .library_page(Library::Tracks, "a1", 0, 10)
            .await
            .unwrap()
            .0,
        1
    );
}

#[tokio::test]
async fn a_database_without_its_key_file_is_refused() {
    let (dir, store) = fresh().await;
    suite::catalog(&store).await;
    // The catalog check deleted its one sealed rendition; publish another to keep.
    let track = suite::track("kt", "ka", None, "kr");
    let rendition = origin::store::RenditionRecord {
        track: "kt".into(),
        quality: "normal".into(),
        manifest: String::new(),
        content_key: hex::encode([3u8; 32]),
    };
    store
        .publish_track(&track, &[("kr".into(), rendition)])
        .await
        .unwrap();
    drop(store);
    std::fs::remove_file(dir.path().join("content.kek")).unwrap();
    let refused = Store::open_embedded(dir.path()).await.unwrap_err();
    assert!(refused.to_string().contains("content.kek"), "{refused}");
    assert!(
        !dir.path().join("content.kek").exists(),
        "a refused open does not leave a new, wrong key behind"
    );
}
