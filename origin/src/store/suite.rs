//! The behavioural contract of a store backend: one suite, run against every backend (the
//! embedded one in `origin/tests/store_embedded.rs`, PostgreSQL and S3 in
//! `origin/tests/store_postgres.rs`). A new backend passes all of it before it ships.
//!
//! Each function takes a freshly opened, empty [`Store`] and panics on the first guarantee
//! the backend breaks, naming it. [`run`] runs them all in order on one store (each uses its
//! own ids, so they do not interfere).

use bytes::Bytes;
use protocol::ChunkId;

use super::{
    Account, Change, ChangeKind, EventInput, EventKind, Library, LibraryAdd, PlayerRecord,
    PlaylistRecord, Published, RenditionRecord, RenditionSummary, Role, Store, StreamRecord, Tier,
    TokenKind, TokenRecord, TrackRecord,
};

/// Runs every check of the suite on `store`.
pub async fn run(store: &Store) {
    accounts(store).await;
    tokens(store).await;
    app_credentials(store).await;
    catalog(store).await;
    playlists(store).await;
    concurrent_playlist_edits(store).await;
    libraries(store).await;
    listening(store).await;
    devices(store).await;
    blobs(store).await;
    changes(store).await;
    concurrent_changes(store).await;
    published(store).await;
}

/// An account record for tests.
pub fn account(id: &str, username: &str) -> Account {
    Account {
        id: id.into(),
        username: username.into(),
        password_hash: "$argon2id$test".into(),
        region: "SE".into(),
        role: Role::Listener,
        tier: Tier::Free,
        created_at_ms: 1,
    }
}

/// A track record for tests, by `artist_id`, on `album_id`, with one rendition `rendition`.
pub fn track(id: &str, artist_id: &str, album_id: Option<&str>, rendition: &str) -> TrackRecord {
    TrackRecord {
        id: id.into(),
        title: format!("Title {id}"),
        artist: format!("Artist {artist_id}"),
        artist_id: artist_id.into(),
        album: album_id.map(|album| format!("Album {album}")),
        album_id: album_id.map(str::to_string),
        genre: Some("rock".into()),
        markets: vec![],
        duration_ms: 180_000,
        loudness_lufs: -14.0,
        tempo_bpm: Some(120.0),
        gain_db: 0.0,
        owner: artist_id.into(),
        created_at_ms: 1,
        renditions: vec![RenditionSummary {
            quality: "normal".into(),
            rendition_id: rendition.into(),
            codec: "vorbis".into(),
            bitrate_bps: 96_000,
            bytes: 1000,
            chunks: 0,
        }],
        details: Default::default(),
    }
}

/// Player states: a write lands only over the version it was based on; of two writes based
/// on the same version, one lands; migrations page and import them as they are.
pub async fn players(store: &Store) {
    let libraries = store.libraries();
    let state = |version: u64, device: &str| PlayerRecord {
        queue: vec!["a".repeat(32), "b".repeat(32)],
        index: 1,
        position_ms: 42_000,
        device: device.into(),
        version,
        updated_at_ms: 7,
    };
    assert_eq!(libraries.player("p1").await.unwrap(), None);
    assert!(
        !libraries
            .put_player("p1", &state(2, "phone"))
            .await
            .unwrap()
    );
    assert!(
        libraries
            .put_player("p1", &state(1, "phone"))
            .await
            .unwrap()
    );
    assert!(
        !libraries
            .put_player("p1", &state(1, "laptop"))
            .await
            .unwrap()
    );
    assert_eq!(
        libraries.player("p1").await.unwrap(),
        Some(state(1, "phone"))
    );
    let (phone, laptop) = (state(2, "phone"), state(2, "laptop"));
    let (first, second) = tokio::join!(
        libraries.put_player("p1", &phone),
        libraries.put_player("p1", &laptop),
    );
    assert!(
        first.unwrap() ^ second.unwrap(),
        "exactly one of two writes over version 1 lands"
    );
    assert_eq!(libraries.player("p1").await.unwrap().unwrap().version, 2);
    libraries
        .import_players(&[("p0".into(), state(9, "tv"))])
        .await
        .unwrap();
    let all = libraries.players_after(None, 10).await.unwrap();
    let accounts: Vec<&str> = all.iter().map(|(account, _)| account.as_str()).collect();
    assert_eq!(accounts, ["p0", "p1"]);
    assert_eq!(
        libraries.players_after(Some("p0"), 10).await.unwrap().len(),
        1
    );
}

/// Accounts: usernames are unique (of concurrent sign-ups with one name, one wins), reads by
/// id and by name, updates, paging.
pub async fn accounts(store: &Store) {
    let accounts = store.accounts();
    assert!(
        accounts
            .create_account(&account("acc1", "ada"))
            .await
            .unwrap()
    );
    assert!(
        !accounts
            .create_account(&account("acc2", "ada"))
            .await
            .unwrap(),
        "a taken username must be refused"
    );
    let racers = (0..8).map(|n| {
        let store = store.clone();
        async move {
            store
                .accounts()
                .create_account(&account(&format!("race{n}"), "grace"))
                .await
                .unwrap()
        }
    });
    let won = futures_util::future::join_all(racers).await;
    assert_eq!(
        won.iter().filter(|won| **won).count(),
        1,
        "exactly one concurrent sign-up takes a username"
    );
    let mut updated = accounts.account_by_username("ada").await.unwrap().unwrap();
    assert_eq!(updated.id, "acc1");
    updated.tier = Tier::Premium;
    accounts.update_account(&updated).await.unwrap();
    assert_eq!(
        accounts.account("acc1").await.unwrap().unwrap().tier,
        Tier::Premium
    );
    assert!(accounts.account("nobody").await.unwrap().is_none());
    assert_eq!(
        store.username("acc1").await.unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!(
        store.username("acc1").await.unwrap().as_deref(),
        Some("ada")
    );
    assert!(store.username("nobody").await.unwrap().is_none());
    assert!(
        accounts
            .account_by_username("nobody")
            .await
            .unwrap()
            .is_none()
    );
    let first = accounts.accounts_after(None, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    let rest = accounts
        .accounts_after(Some(&first[0].id), 100)
        .await
        .unwrap();
    assert!(rest.iter().all(|account| account.id > first[0].id));
    assert_eq!(
        rest.len() + 1,
        2,
        "two accounts exist: ada and the race winner"
    );
}

/// App passwords and API keys: made, listed per account, found by key hash, opened, revoked
/// with the tokens issued for them.
pub async fn app_credentials(store: &Store) {
    use crate::store::CredentialKind;
    let accounts = store.accounts();
    let (password, secret) = store
        .create_app_credential("appacc", "phone", CredentialKind::AppPassword, 5)
        .await
        .unwrap();
    assert_eq!(secret.len(), 26);
    assert!(
        password.sealed.starts_with("kw1:") && password.sealed.len() == 4 + 2 * (12 + 16 + 26),
        "sealed (nonce, tag, password), not in the clear: {}",
        password.sealed
    );
    assert_eq!(store.app_password(&password).unwrap(), Some(secret.clone()));
    let (key, key_secret) = store
        .create_app_credential("appacc", "web", CredentialKind::ApiKey, 6)
        .await
        .unwrap();
    assert!(key.sealed.is_empty());
    assert_eq!(store.app_password(&key).unwrap(), None);
    store
        .create_app_credential("otheracc", "tv", CredentialKind::AppPassword, 7)
        .await
        .unwrap();
    let mut mine = accounts.app_credentials("appacc").await.unwrap();
    mine.sort_by_key(|credential| credential.created_at_ms);
    assert_eq!(mine, vec![password.clone(), key.clone()]);
    let hash = crate::accounts::token_hash(&key_secret);
    assert_eq!(accounts.api_key(&hash).await.unwrap(), Some(key.clone()));
    assert_eq!(accounts.api_key(&[9; 32]).await.unwrap(), None);
    // Moved to another record, the sealed password does not open.
    let mut moved = password.clone();
    moved.id = key.id.clone();
    assert!(store.app_password(&moved).is_err());
    // A token issued for the password goes with it; others stay.
    let token = |credential: Option<&str>| TokenRecord {
        account: "appacc".into(),
        kind: TokenKind::Access,
        expires_at_ms: u64::MAX,
        credential: credential.map(str::to_string),
    };
    accounts
        .put_tokens(&[
            ([31; 32], token(Some(&password.id))),
            ([32; 32], token(None)),
            ([33; 32], token(Some(&key.id))),
        ])
        .await
        .unwrap();
    assert!(accounts.session(&[31; 32]).await.unwrap().is_some());
    assert!(
        accounts
            .delete_app_credential("appacc", &password.id)
            .await
            .unwrap()
    );
    assert!(
        !accounts
            .delete_app_credential("appacc", &password.id)
            .await
            .unwrap()
    );
    assert!(
        !accounts
            .delete_app_credential("otheracc", &key.id)
            .await
            .unwrap(),
        "only the owner's own credential is removed"
    );
    assert!(accounts.session(&[31; 32]).await.unwrap().is_none());
    assert!(accounts.token(&[32; 32]).await.unwrap().is_some());
    assert!(accounts.token(&[33; 32]).await.unwrap().is_some());
    assert!(
        accounts
            .delete_app_credential("appacc", &key.id)
            .await
            .unwrap()
    );
    assert_eq!(accounts.api_key(&hash).await.unwrap(), None);
    assert!(accounts.token(&[33; 32]).await.unwrap().is_none());
    // Paging for migrations, in account/id order.
    let all = accounts.app_credentials_after(None, 10).await.unwrap();
    assert_eq!(all.len(), 1);
    let after = format!("{}/{}", all[0].account, all[0].id);
    assert!(
        accounts
            .app_credentials_after(Some(&after), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Tokens: stored together, purged when expired, single-use under concurrency.
pub async fn tokens(store: &Store) {
    let accounts = store.accounts();
    let record = |expires_at_ms| TokenRecord {
        account: "acc1".into(),
        kind: TokenKind::Refresh,
        expires_at_ms,
        credential: None,
    };
    accounts
        .put_tokens(&[([1; 32], record(10)), ([2; 32], record(1_000))])
        .await
        .unwrap();
    assert_eq!(accounts.purge_expired_tokens(500).await.unwrap(), 1);
    assert!(accounts.token(&[1; 32]).await.unwrap().is_none());
    assert_eq!(
        accounts
            .token(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .expires_at_ms,
        1_000
    );
    let takers = (0..8).map(|_| {
        let store = store.clone();
        async move { store.accounts().take_token(&[2; 32]).await.unwrap() }
    });
    let taken = futures_util::future::join_all(takers).await;
    assert_eq!(
        taken.iter().filter(|taken| taken.is_some()).count(),
        1,
        "a refresh token is taken exactly once"
    );
    accounts
        .put_tokens(&[([3; 32], record(2_000))])
        .await
        .unwrap();
    let page = accounts.tokens_after(None, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].0, [3; 32]);
    assert!(
        accounts
            .tokens_after(Some(&[3; 32]), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A manifest listing `chunks` (signed by a fixed test key), hex-encoded as the catalog
/// stores it.
pub fn manifest_hex(chunks: &[ChunkId]) -> String {
    let identity = protocol::Identity::from_secret_bytes(&[9; 32]);
    let body = protocol::ManifestBody {
        version: protocol::manifest::MANIFEST_VERSION,
        origin: identity.node_id(),
        track: protocol::TrackId([1; 16]),
        quality: protocol::Quality::Normal,
        codec: protocol::Codec::Vorbis,
        bitrate_bps: 96_000,
        sample_rate_hz: 44_100,
        channels: 2,
        duration_ms: 1_000,
        chunk_bytes: protocol::content::CHUNK_BYTES_DEFAULT,
        // Every chunk full but the last, which holds 10 bytes.
        plaintext_bytes: (chunks.len().max(1) as u64 - 1)
            * u64::from(protocol::content::CHUNK_BYTES_DEFAULT)
            + 10,
        chunk_end_ms: protocol::ogg::even_ends_ms(1_000, chunks.len()),
        chunks: chunks.to_vec(),
    };
    let signed = protocol::SignedManifest::sign(&identity, &body).unwrap();
    hex::encode(protocol::codec::encode(&signed).unwrap())
}

/// The catalog: a published track is whole (track, rendition, indexes), its key is sealed at
/// rest and opens through [`Store::rendition`], indexes page, deleting removes the records
/// and the chunks.
pub async fn catalog(store: &Store) {
    let chunk = Bytes::from_static(b"sealed chunk of the catalog check");
    let chunk_id = ChunkId::of(&chunk);
    store.blobs().put(&chunk_id, chunk.clone()).await.unwrap();
    let key = hex::encode([7u8; 32]);
    let first = track("t01", "artist1", Some("album1"), "r01");
    let rendition = RenditionRecord {
        track: "t01".into(),
        quality: "normal".into(),
        manifest: manifest_hex(&[chunk_id]),
        content_key: key.clone(),
    };
    store
        .publish_track(&first, &[("r01".into(), rendition)])
        .await
        .unwrap();
    let catalog = store.catalog();
    assert_eq!(
        catalog.track("t01").await.unwrap().unwrap().title,
        "Title t01"
    );
    assert!(catalog.has_rendition("r01").await.unwrap());
    let sealed = catalog.rendition("r01").await.unwrap().unwrap();
    assert_ne!(sealed.content_key, key, "content keys rest sealed");
    assert_eq!(
        store.rendition("r01").await.unwrap().unwrap().content_key,
        key
    );
    let more: Vec<(TrackRecord, u64)> = (2..=5)
        .map(|n| {
            (
                track(&format!("t0{n}"), "artist1", None, &format!("r0{n}")),
                n,
            )
        })
        .collect();
    catalog.import_tracks(&more).await.unwrap();
    assert_eq!(catalog.track_count().await.unwrap(), 5);
    let page = catalog.artist_tracks("artist1", 1, 2).await.unwrap();
    let ids: Vec<&str> = page.iter().map(|track| track.id.as_str()).collect();
    assert_eq!(ids, ["t02", "t03"], "artist tracks page in id order");
    assert_eq!(
        catalog.album_tracks("album1", 0, 10).await.unwrap().len(),
        1
    );
    // An album reads by disc, then number (unnumbered last), whatever the ids' order.
    let placed: Vec<(TrackRecord, u64)> = [("t09", 1, 2), ("t08", 2, 1), ("t07", 1, 10)]
        .into_iter()
        .map(|(id, disc, number)| {
            let mut track = track(id, "artist1", Some("album2"), &format!("r{id}"));
            track.details.disc_number = Some(disc);
            track.details.track_number = Some(number);
            (track, 0)
        })
        .chain([(track("t06", "artist1", Some("album2"), "rt06"), 0)])
        .collect();
    catalog.import_tracks(&placed).await.unwrap();
    let album = catalog.album_tracks("album2", 0, 10).await.unwrap();
    let ids: Vec<&str> = album.iter().map(|track| track.id.as_str()).collect();
    assert_eq!(
        ids,
        ["t09", "t07", "t06", "t08"],
        "album in disc and track order"
    );
    let page = catalog.album_tracks("album2", 1, 2).await.unwrap();
    let ids: Vec<&str> = page.iter().map(|track| track.id.as_str()).collect();
    assert_eq!(ids, ["t07", "t06"]);
    for (track, _) in &placed {
        store.delete_track(track).await.unwrap();
    }
    assert!(
        catalog
            .album_tracks("album2", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Uploaded pictures: set, replaced, listed in key order, removed.
    let picture = |blob: &str| crate::store::ImageSet {
        sizes: vec![crate::store::ImageRef {
            edge: 128,
            blob: blob.into(),
            bytes: 10,
        }],
    };
    assert_eq!(catalog.image_for("album/a").await.unwrap(), None);
    catalog
        .set_image_for("artist/z", Some(&picture("1")))
        .await
        .unwrap();
    catalog
        .set_image_for("album/a", Some(&picture("2")))
        .await
        .unwrap();
    catalog
        .set_image_for("album/a", Some(&picture("3")))
        .await
        .unwrap();
    assert_eq!(
        catalog.image_for("album/a").await.unwrap(),
        Some(picture("3"))
    );
    let keys: Vec<String> = catalog
        .images_after(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(keys, ["album/a", "artist/z"]);
    assert_eq!(
        catalog
            .images_after(Some("album/a"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    catalog.set_image_for("album/a", None).await.unwrap();
    catalog.set_image_for("artist/z", None).await.unwrap();
    assert!(catalog.images_after(None, 10).await.unwrap().is_empty());
    assert_eq!(store.play_count("t04").await.unwrap(), 4);
    let after = catalog.tracks_after(Some("t02"), 2).await.unwrap();
    let ids: Vec<&str> = after.iter().map(|track| track.id.as_str()).collect();
    assert_eq!(ids, ["t03", "t04"]);
    assert_eq!(catalog.renditions_after(None, 10).await.unwrap().len(), 1);
    store.delete_track(&first).await.unwrap();
    assert!(catalog.track("t01").await.unwrap().is_none());
    assert!(!catalog.has_rendition("r01").await.unwrap());
    assert!(
        catalog
            .album_tracks("album1", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store.blobs().contains(&chunk_id).await.unwrap(),
        "a deleted track's chunks go"
    );
    assert_eq!(catalog.track_count().await.unwrap(), 4);
}

fn playlist(id: &str, owner: &str) -> PlaylistRecord {
    PlaylistRecord {
        id: id.into(),
        owner: owner.into(),
        name: format!("Playlist {id}"),
        description: String::new(),
        public: true,
        collaborative: false,
        collaborators: vec![],
        tracks: vec![],
        version: 1,
        created_at_ms: 5,
        updated_at_ms: 5,
    }
}

/// Playlists: created, read, changed with the version bumped, refused changes write nothing,
/// collaborators see it, paging.
pub async fn playlists(store: &Store) {
    let playlists = store.playlists();
    assert!(
        playlists
            .create_playlist(&playlist("p1", "owner1"))
            .await
            .unwrap()
    );
    let changed = store
        .update_playlist("p1", 10, |playlist| {
            playlist.tracks.push("t02".into());
            playlist.collaborators.push("friend".into());
            Ok::<(), ()>(())
        })
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(changed.version, 2);
    assert_eq!(changed.updated_at_ms, 10);
    let refused = store
        .update_playlist("p1", 11, |playlist| {
            playlist.name = "never stored".into();
            Err::<(), &str>("refused")
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refused, Err("refused"));
    let stored = playlists.playlist("p1").await.unwrap().unwrap();
    assert_eq!(stored.version, 2, "a refused change writes nothing");
    assert_eq!(stored.name, "Playlist p1");
    assert_eq!(
        playlists.account_playlist_ids("friend").await.unwrap(),
        ["p1"]
    );
    assert!(
        store
            .update_playlist("missing", 1, |_| Ok::<(), ()>(()))
            .await
            .unwrap()
            .is_none()
    );
    store
        .update_playlist("p1", 12, |playlist| {
            playlist.collaborators.clear();
            Ok::<(), ()>(())
        })
        .await
        .unwrap();
    assert!(
        playlists
            .account_playlist_ids("friend")
            .await
            .unwrap()
            .is_empty(),
        "a removed collaborator loses the playlist"
    );
    assert_eq!(playlists.playlists_after(None, 10).await.unwrap().len(), 1);
    // Deleting takes it from everyone who had it.
    assert!(
        playlists
            .create_playlist(&playlist("p2", "owner1"))
            .await
            .unwrap()
    );
    store
        .update_playlist("p2", 20, |playlist| {
            playlist.collaborators.push("friend".into());
            Ok::<(), ()>(())
        })
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let removed = playlists.delete_playlist("p2").await.unwrap().unwrap();
    assert_eq!(removed.id, "p2");
    assert!(playlists.playlist("p2").await.unwrap().is_none());
    assert!(playlists.delete_playlist("p2").await.unwrap().is_none());
    for account in ["owner1", "friend"] {
        assert!(
            !playlists
                .account_playlist_ids(account)
                .await
                .unwrap()
                .contains(&"p2".to_string()),
            "{account} keeps no access to a deleted playlist"
        );
    }
    assert_eq!(playlists.playlists_after(None, 10).await.unwrap().len(), 1);
}

/// Concurrent edits of one playlist: every acknowledged append is in the final playlist and
/// the version counts every change.
pub async fn concurrent_playlist_edits(store: &Store) {
    assert!(
        store
            .playlists()
            .create_playlist(&playlist("p-race", "owner2"))
            .await
            .unwrap()
    );
    let editors = (0..16).map(|n| {
        let store = store.clone();
        async move {
            store
                .update_playlist("p-race", 20, move |playlist| {
                    playlist.tracks.push(format!("track{n}"));
                    Ok::<(), ()>(())
                })
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        }
    });
    let handles: Vec<_> = editors.map(tokio::spawn).collect();
    for handle in handles {
        handle.await.unwrap();
    }
    let stored = store.playlists().playlist("p-race").await.unwrap().unwrap();
    assert_eq!(stored.tracks.len(), 16, "no concurrent edit is lost");
    assert_eq!(stored.version, 17);
}

/// Libraries: per account, most recent first, idempotent, capped, removable.
pub async fn libraries(store: &Store) {
    players(store).await;
    let libraries = store.libraries();
    let add = |account: &'static str, item: &'static str, at: u64| async move {
        libraries
            .library_add(Library::Tracks, account, item, at, 3)
            .await
            .unwrap()
    };
    assert_eq!(add("la", "t1", 10).await, LibraryAdd::Added(10));
    assert_eq!(add("la", "t2", 20).await, LibraryAdd::Added(20));
    assert_eq!(add("la", "t1", 30).await, LibraryAdd::Already(10));
    assert_eq!(add("la", "t3", 30).await, LibraryAdd::Added(30));
    assert_eq!(add("la", "t4", 40).await, LibraryAdd::Full);
    assert_eq!(add("lb", "t4", 40).await, LibraryAdd::Added(40));
    assert_eq!(
        libraries
            .library_page(Library::Artists, "la", 0, 10)
            .await
            .unwrap()
            .0,
        0
    );
    let (total, page) = libraries
        .library_page(Library::Tracks, "la", 1, 10)
        .await
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(page, vec![("t2".to_string(), 20), ("t1".to_string(), 10)]);
    assert!(
        libraries
            .library_remove(Library::Tracks, "la", "t2")
            .await
            .unwrap()
    );
    assert!(
        !libraries
            .library_remove(Library::Tracks, "la", "t2")
            .await
            .unwrap()
    );
    assert_eq!(add("la", "t4", 50).await, LibraryAdd::Added(50));
    let all = libraries
        .library_after(Library::Tracks, None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let rest = libraries
        .library_after(Library::Tracks, Some(("la", "t3")), 100)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2, "after la/t3: la/t4 and lb/t4");
}

fn event(
    id: &str,
    play: &str,
    kind: EventKind,
    track: &str,
    position_ms: u64,
    at_ms: u64,
) -> EventInput {
    EventInput {
        id: id.into(),
        play_id: play.into(),
        kind,
        track: track.into(),
        artist_id: "artist1".into(),
        genre: None,
        region: "SE".into(),
        position_ms,
        at_ms,
    }
}

/// Listening: the rule qualifies a play once, repeats are duplicates, a refused event aborts
/// the whole batch, streams read back by time, counts, recent tracks, pruning, export.
pub async fn listening(store: &Store) {
    let start = 1_000_000;
    let batch = [
        event("e1", "play1", EventKind::PlayStart, "t02", 0, start),
        event(
            "e2",
            "play1",
            EventKind::Progress,
            "t02",
            31_000,
            start + 31_000,
        ),
    ];
    let recorded = store.record_events("lis", &batch).await.unwrap().unwrap();
    assert_eq!((recorded.accepted, recorded.duplicates), (2, 0));
    assert_eq!(recorded.streams.len(), 1, "31 s of listening is a stream");
    let again = store.record_events("lis", &batch).await.unwrap().unwrap();
    assert_eq!(
        (again.accepted, again.duplicates),
        (0, 2),
        "event ids are idempotent"
    );
    let before = store.play_count("t02").await.unwrap();
    let mixed = [
        event(
            "e3",
            "play2",
            EventKind::PlayStart,
            "t03",
            0,
            start + 40_000,
        ),
        event(
            "e4",
            "play1",
            EventKind::Progress,
            "t03",
            40_000,
            start + 41_000,
        ),
    ];
    let refused = store.record_events("lis", &mixed).await.unwrap();
    assert_eq!(refused.unwrap_err().0, 1, "the refused event's index");
    let retried = store
        .record_events("lis", &mixed[..1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        retried.accepted, 1,
        "a refused batch wrote nothing: its first event is new"
    );
    assert_eq!(store.play_count("t02").await.unwrap(), before);
    let listening = store.listening();
    let streams = listening
        .streams_between(start, start + 100_000, None, 10)
        .await
        .unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].track, "t02");
    let after: &StreamRecord = &streams[0];
    assert!(
        listening
            .streams_between(start, start + 100_000, Some(after), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        listening.streams_newest_first(0, 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        listening.recent_tracks("lis", 5).await.unwrap(),
        ["t03", "t02"]
    );
    let (page, next) = listening.export_listening(None, 1000).await.unwrap();
    assert!(next.is_none());
    assert_eq!(page.event_ids.len(), 3);
    assert_eq!(page.plays.len(), 2);
    assert_eq!(page.streams.len(), 1);
    let (first, cursor) = listening.export_listening(None, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let (second, _) = listening
        .export_listening(cursor.as_deref(), 1000)
        .await
        .unwrap();
    assert_eq!(
        first.len() + second.len(),
        page.len(),
        "pages cover it all once"
    );
    assert_eq!(listening.prune_activity(start + 35_000).await.unwrap(), 3);
    concurrent_event_batches(store, start).await;
}

/// Batches of many accounts at once, qualifying plays of the same tracks in different
/// orders: every batch is recorded (shared counters do not deadlock) and the counts add up.
async fn concurrent_event_batches(store: &Store, start: u64) {
    let tracks = ["t02", "t03", "t04", "t05"];
    let before: u64 = {
        let ids: Vec<String> = tracks.iter().map(|track| track.to_string()).collect();
        store
            .listening()
            .play_counts(&ids)
            .await
            .unwrap()
            .iter()
            .sum()
    };
    let batches = (0..8usize).map(|account| {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..4usize {
                let mut events = Vec::new();
                for n in 0..tracks.len() {
                    // Each account walks the tracks in its own order.
                    let track = tracks[(n + account) % tracks.len()];
                    let play = format!("c{account}r{round}p{n}");
                    events.push(event(
                        &format!("{play}a"),
                        &play,
                        EventKind::PlayStart,
                        track,
                        0,
                        start,
                    ));
                    events.push(event(
                        &format!("{play}b"),
                        &play,
                        EventKind::Progress,
                        track,
                        31_000,
                        start + 31_000,
                    ));
                }
                let recorded = store
                    .record_events(&format!("concurrent{account}"), &events)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(recorded.streams.len(), tracks.len());
            }
        })
    });
    for batch in batches.collect::<Vec<_>>() {
        batch.await.unwrap();
    }
    let ids: Vec<String> = tracks.iter().map(|track| track.to_string()).collect();
    let after: u64 = store
        .listening()
        .play_counts(&ids)
        .await
        .unwrap()
        .iter()
        .sum();
    assert_eq!(
        after - before,
        8 * 4 * 4,
        "every qualified play counted once"
    );
}

/// Offline devices: at most the limit with unexpired licenses, also under concurrency; a known
/// device renews; expired ones make room.
pub async fn devices(store: &Store) {
    let devices = store.devices();
    assert!(
        devices
            .admit_offline_device("da", "n1", 0, 2, 100)
            .await
            .unwrap()
    );
    assert!(
        devices
            .admit_offline_device("da", "n2", 0, 2, 100)
            .await
            .unwrap()
    );
    assert!(
        !devices
            .admit_offline_device("da", "n3", 0, 2, 100)
            .await
            .unwrap()
    );
    assert!(
        devices
            .admit_offline_device("da", "n1", 50, 2, 200)
            .await
            .unwrap()
    );
    assert!(
        devices
            .admit_offline_device("db", "n3", 0, 2, 100)
            .await
            .unwrap()
    );
    assert!(
        devices
            .admit_offline_device("da", "n3", 150, 2, 300)
            .await
            .unwrap()
    );
    let racers = (0..8).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .devices()
                .admit_offline_device("dc", &format!("node{n}"), 0, 3, 100)
                .await
                .unwrap()
        })
    });
    let mut admitted = 0;
    for racer in racers.collect::<Vec<_>>() {
        admitted += usize::from(racer.await.unwrap());
    }
    assert_eq!(admitted, 3, "concurrent admissions hold the limit");
    assert!(!devices.devices_after(None, 100).await.unwrap().is_empty());
}

/// Blobs: content-addressed, idempotent, verified on write, removable.
pub async fn blobs(store: &Store) {
    let data = Bytes::from(vec![42u8; 70_000]);
    let id = ChunkId::of(&data);
    store.blobs().put(&id, data.clone()).await.unwrap();
    store.blobs().put(&id, data.clone()).await.unwrap();
    assert!(store.blobs().contains(&id).await.unwrap());
    assert_eq!(
        store.blobs().backend().get(&id).await.unwrap().unwrap(),
        data
    );
    // A chunk is not an image: the image route never serves it.
    assert!(store.image(&id).await.unwrap().is_none());
    let images = store
        .put_images(&[crate::artwork::Sized {
            edge: 1,
            jpeg: vec![0xFF, 0xD8, 0xFF, 0xDB, 0],
        }])
        .await
        .unwrap();
    let image: ChunkId = images.sizes[0].blob.parse().unwrap();
    assert!(store.image(&image).await.unwrap().is_some());
    assert!(
        store
            .blobs()
            .put(&id, Bytes::from_static(b"not it"))
            .await
            .is_err(),
        "bytes that do not hash to the id are refused"
    );
    store.blobs().remove(&id).await.unwrap();
    assert!(store.blobs().get(&id).await.unwrap().is_none());
    store.blobs().remove(&id).await.unwrap();
}

/// A stream of `track` for `account`: a start and 31 s of progress, as play `play`.
fn stream(account_play: &str, track: &str, at_ms: u64) -> [EventInput; 2] {
    [
        event(
            &format!("{account_play}-start"),
            account_play,
            EventKind::PlayStart,
            track,
            0,
            at_ms,
        ),
        event(
            &format!("{account_play}-progress"),
            account_play,
            EventKind::Progress,
            track,
            31_000,
            at_ms + 31_000,
        ),
    ]
}

/// The change feed: every change another origin must hear of gets the next number, in the
/// order the changes were made; a play count moving into another power of two is one; the
/// feed pages, prunes from its start, and keeps its head when pruned empty.
pub async fn changes(store: &Store) {
    let feed = store.coordination();
    let start = feed.feed_state().await.unwrap();
    assert!(!start.id.is_empty(), "the feed has an id");
    let chunk = Bytes::from_static(b"a chunk of the change feed check");
    let chunk_id = ChunkId::of(&chunk);
    store.blobs().put(&chunk_id, chunk).await.unwrap();
    let changed = track("ft", "fartist", Some("falbum"), "fr");
    let rendition = RenditionRecord {
        track: "ft".into(),
        quality: "normal".into(),
        manifest: manifest_hex(&[chunk_id]),
        content_key: hex::encode([9u8; 32]),
    };
    store
        .publish_track(&changed, &[("fr".into(), rendition)])
        .await
        .unwrap();
    assert!(
        store
            .playlists()
            .create_playlist(&playlist("fp", "fowner"))
            .await
            .unwrap()
    );
    store
        .update_playlist("fp", 5, |playlist| {
            playlist.public = true;
            Ok::<(), ()>(())
        })
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        store
            .accounts()
            .create_account(&account("fa", "feeder"))
            .await
            .unwrap()
    );
    let mut upgraded = account("fa", "feeder");
    upgraded.tier = Tier::Premium;
    store.accounts().update_account(&upgraded).await.unwrap();
    // Plays 1 and 2 move the count into a new power of two; play 3 does not; play 4 does.
    let mut moved = Vec::new();
    for play in 1..=4u64 {
        let events = stream(&format!("fplay{play}"), "ft", 5_000_000 + play * 100_000);
        let recorded = store.record_events("flis", &events).await.unwrap().unwrap();
        assert_eq!(recorded.streams.len(), 1);
        moved.push(!recorded.popularity_moved.is_empty());
    }
    assert_eq!(
        moved,
        [true, true, false, true],
        "popularity moves at 1, 2 and 4"
    );
    store.delete_track(&changed).await.unwrap();
    let expected = [
        (ChangeKind::Track, "ft"),
        (ChangeKind::Playlist, "fp"),
        (ChangeKind::Playlist, "fp"),
        (ChangeKind::Account, "fa"),
        (ChangeKind::Plays, "ft"),
        (ChangeKind::Plays, "ft"),
        (ChangeKind::Plays, "ft"),
        (ChangeKind::Track, "ft"),
    ];
    let seen = feed.changes_after(start.head, 100).await.unwrap();
    let kinds: Vec<(ChangeKind, &str)> = seen
        .iter()
        .map(|change| (change.kind, change.id.as_str()))
        .collect();
    assert_eq!(kinds, expected, "every change, in order");
    let numbers: Vec<u64> = seen.iter().map(|change| change.seq).collect();
    let consecutive: Vec<u64> = (1..=expected.len() as u64)
        .map(|n| start.head + n)
        .collect();
    assert_eq!(numbers, consecutive, "numbered one by one");
    let head = feed.feed_state().await.unwrap().head;
    assert_eq!(head, start.head + expected.len() as u64);
    let page = feed.changes_after(start.head + 2, 2).await.unwrap();
    assert_eq!(page, seen[2..4].to_vec(), "pages by number");
    // Pruning everything made before now keeps the head; the next change follows it.
    let pruned = feed.prune_changes(crate::now_ms() + 1).await.unwrap();
    assert!(pruned >= expected.len(), "pruned {pruned}");
    let state = feed.feed_state().await.unwrap();
    assert_eq!((state.head, state.pruned_through), (head, head));
    assert_eq!(state.id, start.id, "the feed keeps its id");
    assert!(feed.changes_after(0, 100).await.unwrap().is_empty());
    store
        .update_playlist("fp", 6, |playlist| {
            playlist.name = "after the prune".into();
            Ok::<(), ()>(())
        })
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let next: Vec<Change> = feed.changes_after(head, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].seq, head + 1, "numbers go on after a prune");
    assert!(feed.lead().await.unwrap(), "a lone origin leads");
}

/// Changes made concurrently are read in order without gaps by a reader polling meanwhile: a
/// reader at entry `n` never later finds an entry numbered below `n` (one that committed
/// late), which would make it miss a change.
pub async fn concurrent_changes(store: &Store) {
    let feed = store.coordination();
    let start = feed.feed_state().await.unwrap().head;
    for writer in 0..4 {
        assert!(
            store
                .playlists()
                .create_playlist(&playlist(&format!("cp{writer}"), &format!("co{writer}")))
                .await
                .unwrap()
        );
    }
    let after_creates = start + 4;
    let writers = (0..4).map(|writer| async move {
        for edit in 0..10 {
            store
                .update_playlist(&format!("cp{writer}"), 100 + edit, |playlist| {
                    playlist.name = format!("edit {edit}");
                    Ok::<(), ()>(())
                })
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
    });
    let reader = async {
        let mut cursor = after_creates;
        let mut read = 0usize;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while read < 40 && std::time::Instant::now() < deadline {
            for change in feed.changes_after(cursor, 7).await.unwrap() {
                assert_eq!(change.seq, cursor + 1, "no gap, no reordering");
                cursor = change.seq;
                read += 1;
            }
            tokio::task::yield_now().await;
        }
        read
    };
    let (_, read) = tokio::join!(futures_util::future::join_all(writers), reader);
    assert_eq!(read, 40, "every edit was read");
}

/// Published artifacts: the newest is read back, its predecessor stays named, and the blob
/// before that is handed back for removal exactly once; publishing the same blob again drops
/// nothing.
pub async fn published(store: &Store) {
    let feed = store.coordination();
    let at = |n: u8, built_ms: u64| Published {
        blob: ChunkId([n; 32]),
        built_ms,
        bytes: u64::from(n) * 100,
    };
    assert_eq!(feed.published("model").await.unwrap(), None);
    assert_eq!(feed.publish("model", &at(1, 10)).await.unwrap(), None);
    assert_eq!(feed.published("model").await.unwrap(), Some(at(1, 10)));
    assert_eq!(
        feed.publish("model", &at(2, 20)).await.unwrap(),
        None,
        "the first one is the predecessor now"
    );
    assert_eq!(
        feed.publish("model", &at(2, 25)).await.unwrap(),
        None,
        "the same blob again drops nothing"
    );
    assert_eq!(feed.published("model").await.unwrap(), Some(at(2, 25)));
    assert_eq!(
        feed.publish("model", &at(3, 30)).await.unwrap(),
        Some(ChunkId([1; 32])),
        "the blob before the predecessor is handed back"
    );
    assert_eq!(
        feed.publish("model", &at(2, 40)).await.unwrap(),
        None,
        "a blob published again is not handed back"
    );
    assert_eq!(feed.published("model").await.unwrap(), Some(at(2, 40)));
    assert_eq!(
        feed.publish("model", &at(4, 50)).await.unwrap(),
        Some(ChunkId([3; 32]))
    );
    assert_eq!(feed.published("other").await.unwrap(), None, "names apart");
}
