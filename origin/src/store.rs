//! The origin's metadata store: accounts, tokens, artists, albums, tracks and renditions in
//! sled (embedded, no setup), with chunk bytes in [`ChunkFiles`].
//!
//! Records are JSON values in sled trees. Every write that a caller acknowledges is flushed
//! to disk first ([`Store::flush`]), so it survives `kill -9`. A track becomes visible in
//! one atomic sled batch, written only after every chunk of every rendition is durable: no
//! reader ever sees a half-ingested track.
//!
//! Content keys never rest in the clear: each is sealed (ChaCha20-Poly1305, the rendition id
//! as associated data) under a key-encryption key kept in its own file, `DATA/content.kek`
//! (mode 0600). A copied database without that file leaks no playable content, and a record
//! moved to another rendition does not open. Stores from before wrapping are migrated when
//! opened; a store whose keys are wrapped but whose `content.kek` is gone refuses to open.
//!
//! Everything above this module talks to [`Store`] through typed methods, so moving
//! metadata to PostgreSQL and chunks to object storage means reimplementing this module only.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::activity::{EventKind, PlayError, PlayState, StreamRecord};
use crate::chunks::ChunkFiles;

/// One listening event, checked and resolved against the catalog, ready to record.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInput {
    /// The client's event id (idempotency).
    pub id: String,
    /// The client's play id (events of one play share it).
    pub play_id: String,
    /// What happened.
    pub kind: EventKind,
    /// The track.
    pub track: String,
    /// The track's artist.
    pub artist_id: String,
    /// The track's genre.
    pub genre: Option<String>,
    /// Where the listener was.
    pub region: String,
    /// Playback position.
    pub position_ms: u64,
    /// When it happened, Unix ms.
    pub at_ms: u64,
}

/// What [`Store::record_events`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsRecorded {
    /// New events.
    pub accepted: usize,
    /// Events whose id was recorded before.
    pub duplicates: usize,
    /// Plays this batch qualified as streams.
    pub streams: Vec<StreamRecord>,
}

/// Why the store failed. These are server-side failures (5xx), never the client's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed.
    #[error("database: {0}")]
    Database(#[from] sled::Error),
    /// A chunk file could not be read or written.
    #[error("chunk files: {0}")]
    Io(#[from] std::io::Error),
    /// A stored record could not be decoded (corruption or an incompatible version).
    #[error("stored record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A transaction conflicted or aborted.
    #[error("transaction: {0}")]
    Transaction(String),
    /// The content key-encryption key is missing or does not open a stored key.
    #[error("content keys: {0}")]
    Keys(String),
}

/// Content keys at rest are `kw1:` + hex(nonce ‖ sealed key).
const WRAPPED_PREFIX: &str = "kw1:";

/// Seals content keys at rest under the key-encryption key (see the module docs).
struct KeyWrap(chacha20poly1305::ChaCha20Poly1305);

impl std::fmt::Debug for KeyWrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyWrap(..)")
    }
}

impl KeyWrap {
    fn new(kek: &[u8; 32]) -> Self {
        use chacha20poly1305::KeyInit;
        Self(chacha20poly1305::ChaCha20Poly1305::new(kek.into()))
    }

    /// Seals a hex content key for `rendition`.
    fn wrap(&self, rendition: &str, key_hex: &str) -> Result<String, StoreError> {
        use chacha20poly1305::aead::{Aead, Payload};
        let key = hex::decode(key_hex)
            .map_err(|_| StoreError::Keys("a content key is not hex".into()))?;
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .0
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: &key,
                    aad: rendition.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Keys("sealing a content key failed".into()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{WRAPPED_PREFIX}{}", hex::encode(bytes)))
    }

    /// Opens a stored content key of `rendition` back to hex.
    fn unwrap(&self, rendition: &str, stored: &str) -> Result<String, StoreError> {
        use chacha20poly1305::aead::{Aead, Payload};
        let corrupt = || {
            StoreError::Keys(format!(
                "the content key of rendition {rendition} does not open with content.kek"
            ))
        };
        let bytes = stored
            .strip_prefix(WRAPPED_PREFIX)
            .and_then(|hex_text| hex::decode(hex_text).ok())
            .filter(|bytes| bytes.len() > 12)
            .ok_or_else(corrupt)?;
        let (nonce, sealed) = bytes.split_at(12);
        let key = self
            .0
            .decrypt(
                nonce.into(),
                Payload {
                    msg: sealed,
                    aad: rendition.as_bytes(),
                },
            )
            .map_err(|_| corrupt())?;
        Ok(hex::encode(key))
    }
}

pub use api::catalog::RenditionSummary;
pub use api::{Role, Tier};

/// A stored account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// Hex account id.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// ISO 3166-1 alpha-2 region.
    pub region: String,
    /// Role.
    pub role: Role,
    /// Tier.
    pub tier: Tier,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
}

/// What a bearer token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Authenticates API calls.
    Access,
    /// Obtains a new access token, once.
    Refresh,
}

/// A stored token, keyed by the SHA-256 of the token (the token itself is never stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Hex account id.
    pub account: String,
    /// Access or refresh.
    pub kind: TokenKind,
    /// Expiry, Unix ms.
    pub expires_at_ms: u64,
}

/// A stored track.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackRecord {
    /// Hex track id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Artist display name.
    pub artist: String,
    /// Hex artist id (the uploading artist account).
    pub artist_id: String,
    /// Album title, if any.
    pub album: Option<String>,
    /// Hex album id, if any.
    pub album_id: Option<String>,
    /// Genre, if given.
    pub genre: Option<String>,
    /// ISO regions where it may be played; empty means everywhere.
    pub markets: Vec<String>,
    /// Duration of the audio.
    pub duration_ms: u64,
    /// EBU R128 integrated loudness.
    pub loudness_lufs: f64,
    /// Tempo measured at ingest, if the audio has a clear pulse.
    #[serde(default)]
    pub tempo_bpm: Option<f32>,
    /// Playback gain to the target loudness.
    pub gain_db: f64,
    /// Hex id of the uploading account.
    pub owner: String,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
    /// Renditions, lowest quality first.
    pub renditions: Vec<RenditionSummary>,
}

/// A stored rendition: its manifest and the key that opens its chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenditionRecord {
    /// Hex track id.
    pub track: String,
    /// Quality name.
    pub quality: String,
    /// Hex of the encoded `SignedManifest`.
    pub manifest: String,
    /// Hex content key (sealed at rest: see the module docs). Leaves the origin only inside
    /// a play authorization over HTTPS.
    pub content_key: String,
}

/// The metadata store and the chunk files.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    accounts: sled::Tree,
    usernames: sled::Tree,
    tokens: sled::Tree,
    tracks: sled::Tree,
    renditions: sled::Tree,
    artist_tracks: sled::Tree,
    album_tracks: sled::Tree,
    offline_devices: sled::Tree,
    liked_tracks: sled::Tree,
    followed_artists: sled::Tree,
    playlists: sled::Tree,
    account_playlists: sled::Tree,
    event_ids: sled::Tree,
    plays: sled::Tree,
    streams: sled::Tree,
    play_counts: sled::Tree,
    keys: KeyWrap,
    chunks: ChunkFiles,
}

/// A stored playlist. Every change goes through [`Store::update_playlist`], which bumps
/// `version` (the `snapshot_id` clients see).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaylistRecord {
    /// Hex id.
    pub id: String,
    /// The owning account's id.
    pub owner: String,
    /// Name.
    pub name: String,
    /// Description (may be empty).
    pub description: String,
    /// Visible to every account (else to the owner and collaborators only).
    pub public: bool,
    /// Collaborators may edit its tracks.
    pub collaborative: bool,
    /// Account ids of the collaborators.
    pub collaborators: Vec<String>,
    /// Track ids in order (repeats allowed).
    pub tracks: Vec<String>,
    /// Bumped by every change.
    pub version: u64,
    /// Unix ms.
    pub created_at_ms: u64,
    /// Unix ms of the last change.
    pub updated_at_ms: u64,
}

/// sled's page cache (its default is 1 GiB; the OS page cache is behind it anyway).
pub const STORE_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Most playlists one account owns.
pub const PLAYLISTS_PER_ACCOUNT_MAX: usize = 2_000;

/// Tries of an optimistic playlist update before giving up (each retry means another write
/// landed in between, so this only runs out under extreme contention).
const PLAYLIST_UPDATE_TRIES: usize = 64;

/// A listener's library: liked songs or followed artists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    /// Liked songs (track ids).
    Tracks,
    /// Followed artists (artist account ids).
    Artists,
}

/// Most items in one account's liked songs, and in its followed artists.
pub const LIBRARY_ITEMS_MAX: usize = 10_000;

/// What [`Store::library_add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibraryAdd {
    /// Added now, at this time (Unix ms).
    Added(u64),
    /// It was there already, since this time: nothing changed.
    Already(u64),
    /// The library holds [`LIBRARY_ITEMS_MAX`] items.
    Full,
}

fn library_key(account: &str, item: &str) -> Vec<u8> {
    format!("{account}/{item}").into_bytes()
}

fn decode_ms(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

/// The chunk ids a stored (hex) manifest lists; none if it does not decode.
fn manifest_chunks(manifest_hex: &str) -> Vec<protocol::ChunkId> {
    hex::decode(manifest_hex)
        .ok()
        .and_then(|bytes| protocol::codec::decode::<protocol::SignedManifest>(&bytes).ok())
        .and_then(|signed| protocol::codec::decode::<protocol::ManifestBody>(&signed.body).ok())
        .map(|body| body.chunks)
        .unwrap_or_default()
}

fn get_json<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
    match tree.get(key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        transport::keyfile::create_private_dir(data_dir)?;
        let db = sled::Config::new()
            .path(data_dir.join("meta"))
            .cache_capacity(STORE_CACHE_BYTES)
            .open()?;
        transport::keyfile::restrict_tree(&data_dir.join("meta"))?;
        let renditions = db.open_tree("renditions")?;
        let keys = Self::open_keys(data_dir, &renditions)?;
        Ok(Self {
            keys,
            accounts: db.open_tree("accounts")?,
            usernames: db.open_tree("usernames")?,
            tokens: db.open_tree("tokens")?,
            tracks: db.open_tree("tracks")?,
            renditions,
            artist_tracks: db.open_tree("artist_tracks")?,
            album_tracks: db.open_tree("album_tracks")?,
            offline_devices: db.open_tree("offline_devices")?,
            liked_tracks: db.open_tree("liked_tracks")?,
            followed_artists: db.open_tree("followed_artists")?,
            playlists: db.open_tree("playlists")?,
            account_playlists: db.open_tree("account_playlists")?,
            event_ids: db.open_tree("event_ids")?,
            plays: db.open_tree("plays")?,
            streams: db.open_tree("streams")?,
            play_counts: db.open_tree("play_counts")?,
            chunks: ChunkFiles::open(&data_dir.join("chunks"))?,
            db,
        })
    }

    /// Loads the content key-encryption key, creating it for a new store, and seals any key
    /// still stored in the clear (a store from before wrapping).
    fn open_keys(data_dir: &Path, renditions: &sled::Tree) -> Result<KeyWrap, StoreError> {
        let kek_path = data_dir.join("content.kek");
        let any_wrapped = renditions.iter().values().any(|value| {
            value.ok().is_some_and(|bytes| {
                serde_json::from_slice::<RenditionRecord>(&bytes)
                    .is_ok_and(|record| record.content_key.starts_with(WRAPPED_PREFIX))
            })
        });
        if any_wrapped && !kek_path.exists() {
            return Err(StoreError::Keys(format!(
                "{} is missing, so the stored content keys cannot be opened: restore it from \
                 the backup taken with this database",
                kek_path.display()
            )));
        }
        let keys = KeyWrap::new(&transport::keyfile::load_or_create_secret(&kek_path)?);
        let mut migrated = sled::Batch::default();
        let mut count = 0usize;
        for entry in renditions.iter() {
            let (id, bytes) = entry?;
            let mut record: RenditionRecord = serde_json::from_slice(&bytes)?;
            if record.content_key.starts_with(WRAPPED_PREFIX) {
                continue;
            }
            let rendition = String::from_utf8_lossy(&id).to_string();
            record.content_key = keys.wrap(&rendition, &record.content_key)?;
            migrated.insert(id, serde_json::to_vec(&record)?);
            count += 1;
        }
        if count > 0 {
            renditions.apply_batch(migrated)?;
            renditions.flush()?;
            tracing::info!(count, "sealed content keys stored in the clear");
        }
        Ok(keys)
    }

    /// Makes every write so far durable. Call before acknowledging a write.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The chunk files.
    pub fn chunks(&self) -> &ChunkFiles {
        &self.chunks
    }

    fn library_tree(&self, which: Library) -> &sled::Tree {
        match which {
            Library::Tracks => &self.liked_tracks,
            Library::Artists => &self.followed_artists,
        }
    }

    /// Adds `item` to `account`'s library at `now_ms` (idempotent: adding twice keeps the
    /// first time). Durable on return.
    pub fn library_add(
        &self,
        which: Library,
        account: &str,
        item: &str,
        now_ms: u64,
    ) -> Result<LibraryAdd, StoreError> {
        self.library_add_within(which, account, item, now_ms, LIBRARY_ITEMS_MAX)
    }

    fn library_add_within(
        &self,
        which: Library,
        account: &str,
        item: &str,
        now_ms: u64,
        items_max: usize,
    ) -> Result<LibraryAdd, StoreError> {
        let tree = self.library_tree(which);
        let key = library_key(account, item);
        if let Some(since) = tree.get(&key)? {
            return Ok(LibraryAdd::Already(decode_ms(&since)));
        }
        let prefix = format!("{account}/");
        if tree.scan_prefix(prefix.as_bytes()).count() >= items_max {
            return Ok(LibraryAdd::Full);
        }
        // A concurrent add of the same item keeps whichever time landed first.
        match tree.compare_and_swap(&key, None as Option<&[u8]>, Some(&now_ms.to_be_bytes()[..]))? {
            Ok(()) => {
                self.flush()?;
                Ok(LibraryAdd::Added(now_ms))
            }
            Err(conflict) => Ok(LibraryAdd::Already(
                conflict.current.as_deref().map_or(now_ms, decode_ms),
            )),
        }
    }

    /// Removes `item`; false when it was not there. Durable on return.
    pub fn library_remove(
        &self,
        which: Library,
        account: &str,
        item: &str,
    ) -> Result<bool, StoreError> {
        let removed = self
            .library_tree(which)
            .remove(library_key(account, item))?
            .is_some();
        if removed {
            self.flush()?;
        }
        Ok(removed)
    }

    /// Stores a new playlist (version 1). False when its owner has
    /// [`PLAYLISTS_PER_ACCOUNT_MAX`] already. Durable on return.
    pub fn create_playlist(&self, playlist: &PlaylistRecord) -> Result<bool, StoreError> {
        let owned = self
            .account_playlist_ids(&playlist.owner)?
            .into_iter()
            .filter_map(|id| self.playlist(&id).ok().flatten())
            .filter(|found| found.owner == playlist.owner)
            .count();
        if owned >= PLAYLISTS_PER_ACCOUNT_MAX {
            return Ok(false);
        }
        self.playlists
            .insert(playlist.id.as_bytes(), serde_json::to_vec(playlist)?)?;
        self.account_playlists
            .insert(library_key(&playlist.owner, &playlist.id), &[])?;
        self.flush()?;
        Ok(true)
    }

    /// The playlist with `id`.
    pub fn playlist(&self, id: &str) -> Result<Option<PlaylistRecord>, StoreError> {
        get_json(&self.playlists, id.as_bytes())
    }

    /// Ids of the playlists `account` owns or collaborates on (may include some it has
    /// since been removed from: check the playlist).
    pub fn account_playlist_ids(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{account}/");
        let mut ids = Vec::new();
        for entry in self.account_playlists.scan_prefix(prefix.as_bytes()) {
            let (key, _) = entry?;
            ids.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(ids)
    }

    /// Applies `change` to the playlist `id` and stores it with its version bumped, as one
    /// optimistic transaction: if another write lands in between, `change` runs again on the
    /// newer playlist, so no acknowledged change is ever lost. `change` may refuse (its
    /// error is returned, nothing is written). `None` when there is no such playlist.
    /// Durable on return.
    pub fn update_playlist<E>(
        &self,
        id: &str,
        now_ms: u64,
        mut change: impl FnMut(&mut PlaylistRecord) -> Result<(), E>,
    ) -> Result<Option<Result<PlaylistRecord, E>>, StoreError> {
        for _ in 0..PLAYLIST_UPDATE_TRIES {
            let Some(current) = self.playlists.get(id.as_bytes())? else {
                return Ok(None);
            };
            let mut playlist: PlaylistRecord = serde_json::from_slice(&current)?;
            let collaborators_before = playlist.collaborators.clone();
            if let Err(refused) = change(&mut playlist) {
                return Ok(Some(Err(refused)));
            }
            playlist.version += 1;
            playlist.updated_at_ms = now_ms.max(playlist.updated_at_ms);
            let next = serde_json::to_vec(&playlist)?;
            let swapped =
                self.playlists
                    .compare_and_swap(id.as_bytes(), Some(&current[..]), Some(next))?;
            if swapped.is_err() {
                continue;
            }
            for added in playlist
                .collaborators
                .iter()
                .filter(|account| !collaborators_before.contains(account))
            {
                self.account_playlists.insert(library_key(added, id), &[])?;
            }
            for removed in collaborators_before
                .iter()
                .filter(|account| !playlist.collaborators.contains(account))
            {
                self.account_playlists.remove(library_key(removed, id))?;
            }
            self.flush()?;
            return Ok(Some(Ok(playlist)));
        }
        Err(StoreError::Transaction(format!(
            "playlist {id}: {PLAYLIST_UPDATE_TRIES} concurrent writes in a row"
        )))
    }

    /// A page of `account`'s library, most recently added first (ties by id), and the total.
    pub fn library_page(
        &self,
        which: Library,
        account: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<(String, u64)>), StoreError> {
        let prefix = format!("{account}/");
        let mut items = Vec::new();
        for entry in self.library_tree(which).scan_prefix(prefix.as_bytes()) {
            let (key, value) = entry?;
            let item = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            items.push((item, decode_ms(&value)));
        }
        items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let total = items.len();
        Ok((total, items.into_iter().skip(offset).take(limit).collect()))
    }

    /// Creates `account` unless its username is taken; returns false if taken. Durable on
    /// return.
    pub fn create_account(&self, account: &Account) -> Result<bool, StoreError> {
        let claimed = self.usernames.compare_and_swap(
            account.username.as_bytes(),
            None as Option<&[u8]>,
            Some(account.id.as_bytes()),
        )?;
        if claimed.is_err() {
            return Ok(false);
        }
        self.accounts
            .insert(account.id.as_bytes(), serde_json::to_vec(account)?)?;
        self.flush()?;
        Ok(true)
    }

    /// Replaces a stored account (tier or role changes). Durable on return.
    pub fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        self.accounts
            .insert(account.id.as_bytes(), serde_json::to_vec(account)?)?;
        self.flush()
    }

    /// The account with `id`.
    pub fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        get_json(&self.accounts, id.as_bytes())
    }

    /// The account named `username`.
    pub fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        match self.usernames.get(username.as_bytes())? {
            Some(id) => self.account(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Stores a token record under the hash of its token. Durable on return.
    pub fn put_token(&self, token_hash: &[u8; 32], record: &TokenRecord) -> Result<(), StoreError> {
        self.tokens
            .insert(token_hash, serde_json::to_vec(record)?)?;
        self.flush()
    }

    /// The token record for a token hash.
    pub fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        get_json(&self.tokens, token_hash)
    }

    /// Removes and returns a token record atomically (refresh tokens are single-use).
    pub fn take_token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        match self.tokens.remove(token_hash)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Removes tokens that expired before `now_ms`; returns how many.
    pub fn purge_expired_tokens(&self, now_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.tokens.iter() {
            let (key, value) = entry?;
            let record: TokenRecord = serde_json::from_slice(&value)?;
            if record.expires_at_ms <= now_ms {
                self.tokens.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Publishes a fully ingested track: its renditions, the track and its indexes in one
    /// atomic batch, then flushes. Every chunk must already be stored.
    pub fn publish_track(
        &self,
        track: &TrackRecord,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError> {
        use sled::Transactional;
        let track_bytes = serde_json::to_vec(track)?;
        let mut encoded = Vec::with_capacity(renditions.len());
        for (id, record) in renditions {
            let sealed = RenditionRecord {
                content_key: self.keys.wrap(id, &record.content_key)?,
                ..record.clone()
            };
            encoded.push((id.clone(), serde_json::to_vec(&sealed)?));
        }
        let artist_key = format!("{}/{}", track.artist_id, track.id);
        let album_key = track
            .album_id
            .as_ref()
            .map(|album| format!("{album}/{}", track.id));
        (
            &self.tracks,
            &self.renditions,
            &self.artist_tracks,
            &self.album_tracks,
        )
            .transaction(|(tracks, renditions, artist_tracks, album_tracks)| {
                for (id, bytes) in &encoded {
                    renditions.insert(id.as_bytes(), bytes.as_slice())?;
                }
                artist_tracks.insert(artist_key.as_bytes(), track.id.as_bytes())?;
                if let Some(key) = &album_key {
                    album_tracks.insert(key.as_bytes(), track.id.as_bytes())?;
                }
                tracks.insert(track.id.as_bytes(), track_bytes.as_slice())?;
                Ok(())
            })
            .map_err(|error: sled::transaction::TransactionError<()>| {
                StoreError::Transaction(format!("{error:?}"))
            })?;
        self.flush()
    }

    /// Imports catalog metadata in bulk, each track with its play count: one batch per tree
    /// and one flush, for migrations and for benchmarks that need a large catalog without
    /// ingesting audio. The renditions the tracks name must be stored already (or the tracks
    /// stay unplayable). Replaces tracks with the same ids.
    pub fn import_tracks(&self, tracks: &[(TrackRecord, u64)]) -> Result<(), StoreError> {
        let (mut records, mut by_artist, mut by_album, mut plays) = (
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        );
        for (track, count) in tracks {
            records.insert(track.id.as_bytes(), serde_json::to_vec(track)?);
            by_artist.insert(
                format!("{}/{}", track.artist_id, track.id).as_bytes(),
                track.id.as_bytes(),
            );
            if let Some(album) = &track.album_id {
                by_album.insert(
                    format!("{album}/{}", track.id).as_bytes(),
                    track.id.as_bytes(),
                );
            }
            if *count > 0 {
                plays.insert(track.id.as_bytes(), &count.to_be_bytes());
            }
        }
        self.artist_tracks.apply_batch(by_artist)?;
        self.album_tracks.apply_batch(by_album)?;
        self.play_counts.apply_batch(plays)?;
        self.tracks.apply_batch(records)?;
        self.flush()
    }

    /// Removes a track from the catalog and revokes its content: its renditions stop being
    /// playable and, once the records are durably gone, its chunk files are removed (a crash
    /// in between leaves unreferenced files, never a record without its chunks). Chunks are
    /// never shared between renditions (each has its own content key), so nothing else loses
    /// a chunk. Peers holding copies drop them when the tracker or origin next tells them.
    pub fn delete_track(&self, track: &TrackRecord) -> Result<(), StoreError> {
        let mut chunks = Vec::new();
        for rendition in &track.renditions {
            if let Some(bytes) = self.renditions.get(rendition.rendition_id.as_bytes())? {
                let record: RenditionRecord = serde_json::from_slice(&bytes)?;
                chunks.extend(manifest_chunks(&record.manifest));
            }
        }
        self.delete_track_records(track)?;
        // Once the records are gone the track is revoked; a chunk file that will not go is
        // logged and left (unreferenced), never a reason to report the delete as failed.
        let mut left = 0usize;
        for chunk in &chunks {
            if let Err(error) = self.chunks.remove(chunk) {
                left += 1;
                tracing::warn!(%error, %chunk, "a deleted track's chunk file could not be removed");
            }
        }
        if left > 0 {
            tracing::warn!(track = %track.id, left, "chunk files left after a delete");
        }
        Ok(())
    }

    fn delete_track_records(&self, track: &TrackRecord) -> Result<(), StoreError> {
        self.tracks.remove(track.id.as_bytes())?;
        self.artist_tracks
            .remove(format!("{}/{}", track.artist_id, track.id).as_bytes())?;
        if let Some(album) = &track.album_id {
            self.album_tracks
                .remove(format!("{album}/{}", track.id).as_bytes())?;
        }
        for rendition in &track.renditions {
            self.renditions.remove(rendition.rendition_id.as_bytes())?;
        }
        self.flush()
    }

    /// The track with `id`.
    pub fn track(&self, id: &str) -> Result<Option<TrackRecord>, StoreError> {
        get_json(&self.tracks, id.as_bytes())
    }

    /// True while the rendition with hex `id` is published.
    pub fn has_rendition(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.renditions.contains_key(id.as_bytes())?)
    }

    /// The rendition with hex `id`.
    pub fn rendition(&self, id: &str) -> Result<Option<RenditionRecord>, StoreError> {
        let Some(mut record) = get_json::<RenditionRecord>(&self.renditions, id.as_bytes())? else {
            return Ok(None);
        };
        record.content_key = self.keys.unwrap(id, &record.content_key)?;
        Ok(Some(record))
    }

    /// Tracks of an artist, up to `limit` after skipping `offset`.
    pub fn artist_tracks(
        &self,
        artist_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        self.indexed_tracks(&self.artist_tracks, artist_id, offset, limit)
    }

    /// Tracks of an album, up to `limit` after skipping `offset`.
    pub fn album_tracks(
        &self,
        album_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        self.indexed_tracks(&self.album_tracks, album_id, offset, limit)
    }

    fn indexed_tracks(
        &self,
        index: &sled::Tree,
        owner: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError> {
        let mut out = Vec::new();
        for entry in index
            .scan_prefix(format!("{owner}/").as_bytes())
            .skip(offset)
            .take(limit)
        {
            let (_, track_id) = entry?;
            if let Some(track) = self.track(&String::from_utf8_lossy(&track_id))? {
                out.push(track);
            }
        }
        Ok(out)
    }

    /// Records that `node` holds offline licenses for `account` until `expires_at_ms`, unless
    /// that would exceed `devices_max` devices with unexpired offline licenses. Returns whether
    /// the device was admitted. Durable on return.
    pub fn admit_offline_device(
        &self,
        account: &str,
        node: &str,
        now_ms: u64,
        devices_max: usize,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError> {
        let prefix = format!("{account}/");
        let mut active = 0;
        let mut known = false;
        for entry in self.offline_devices.scan_prefix(prefix.as_bytes()) {
            let (key, value) = entry?;
            let expires: u64 = serde_json::from_slice(&value)?;
            if expires <= now_ms {
                self.offline_devices.remove(key)?;
                continue;
            }
            active += 1;
            known |= key.as_ref() == format!("{prefix}{node}").as_bytes();
        }
        if !known && active >= devices_max {
            return Ok(false);
        }
        self.offline_devices.insert(
            format!("{prefix}{node}").as_bytes(),
            serde_json::to_vec(&expires_at_ms)?,
        )?;
        self.flush()?;
        Ok(true)
    }

    /// Every published track, in id order (what the search index is built from).
    pub fn all_tracks(&self) -> impl Iterator<Item = Result<TrackRecord, StoreError>> + '_ {
        self.tracks
            .iter()
            .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
    }

    /// Every playlist, in id order (what the search index is built from).
    pub fn all_playlists(&self) -> impl Iterator<Item = Result<PlaylistRecord, StoreError>> + '_ {
        self.playlists
            .iter()
            .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
    }

    /// Number of published tracks.
    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    /// Records a batch of `account`'s listening events as one transaction: each event id is
    /// taken once (a repeat is a duplicate, not an error), each event moves its play on
    /// ([`crate::activity::apply_event`]), and a play that qualifies adds a stream and bumps
    /// its track's play count. A play that refuses an event aborts the whole batch, naming
    /// the event's index: nothing is written. Durable on return.
    pub fn record_events(
        &self,
        account: &str,
        events: &[EventInput],
    ) -> Result<Result<EventsRecorded, (usize, PlayError)>, StoreError> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let result = (
            &self.event_ids,
            &self.plays,
            &self.streams,
            &self.play_counts,
        )
            .transaction(|(event_ids, plays, streams, play_counts)| {
                let mut recorded = EventsRecorded::default();
                for (index, event) in events.iter().enumerate() {
                    let event_key = library_key(account, &event.id);
                    if event_ids.get(&event_key)?.is_some() {
                        recorded.duplicates += 1;
                        continue;
                    }
                    event_ids.insert(event_key, &event.at_ms.to_be_bytes())?;
                    let play_key = library_key(account, &event.play_id);
                    let mut play: Option<PlayState> = match plays.get(&play_key)? {
                        Some(bytes) => Some(
                            serde_json::from_slice(&bytes)
                                .map_err(|error| ConflictableTransactionError::Abort(Err(error)))?,
                        ),
                        None => None,
                    };
                    let qualified = crate::activity::apply_event(
                        &mut play,
                        &event.play_id,
                        event.kind,
                        &event.track,
                        event.position_ms,
                        event.at_ms,
                    )
                    .map_err(|refused| ConflictableTransactionError::Abort(Ok((index, refused))))?;
                    let bytes = serde_json::to_vec(&play)
                        .map_err(|error| ConflictableTransactionError::Abort(Err(error)))?;
                    plays.insert(play_key, bytes)?;
                    recorded.accepted += 1;
                    if qualified {
                        let stream = StreamRecord {
                            account: account.to_string(),
                            play_id: event.play_id.clone(),
                            track: event.track.clone(),
                            artist_id: event.artist_id.clone(),
                            genre: event.genre.clone(),
                            region: event.region.clone(),
                            at_ms: event.at_ms,
                        };
                        let bytes = serde_json::to_vec(&stream)
                            .map_err(|error| ConflictableTransactionError::Abort(Err(error)))?;
                        let mut key = event.at_ms.to_be_bytes().to_vec();
                        key.extend_from_slice(&library_key(account, &event.play_id));
                        streams.insert(key, bytes)?;
                        let count = play_counts
                            .get(event.track.as_bytes())?
                            .map_or(0, |bytes| decode_ms(&bytes));
                        play_counts.insert(event.track.as_bytes(), &(count + 1).to_be_bytes())?;
                        recorded.streams.push(stream);
                    }
                }
                Ok(recorded)
            });
        let recorded = match result {
            Ok(recorded) => recorded,
            Err(TransactionError::Abort(Ok(refused))) => return Ok(Err(refused)),
            Err(TransactionError::Abort(Err(error))) => return Err(error.into()),
            Err(TransactionError::Storage(error)) => return Err(error.into()),
        };
        self.flush()?;
        Ok(Ok(recorded))
    }

    /// Qualified streams with `from_ms <= at < to_ms`, in time order.
    pub fn streams_between(
        &self,
        from_ms: u64,
        to_ms: u64,
    ) -> impl Iterator<Item = Result<StreamRecord, StoreError>> + '_ {
        self.streams
            .range(from_ms.to_be_bytes()..to_ms.to_be_bytes())
            .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
    }

    /// The tracks `account` played most recently (within the month plays are kept), newest
    /// first, each once, at most `limit`.
    pub fn recent_tracks(&self, account: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut plays = Vec::new();
        for entry in self.plays.scan_prefix(format!("{account}/").as_bytes()) {
            let play: PlayState = serde_json::from_slice(&entry?.1)?;
            plays.push((play.last_at_ms, play.track));
        }
        plays.sort_by(|a, b| b.cmp(a));
        let mut tracks: Vec<String> = Vec::new();
        for (_, track) in plays {
            if tracks.len() == limit {
                break;
            }
            if !tracks.contains(&track) {
                tracks.push(track);
            }
        }
        Ok(tracks)
    }

    /// Qualified streams from `from_ms` on, newest first.
    pub fn streams_newest_first(
        &self,
        from_ms: u64,
    ) -> impl Iterator<Item = Result<StreamRecord, StoreError>> + '_ {
        self.streams
            .range(from_ms.to_be_bytes()..)
            .rev()
            .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
    }

    /// Qualified streams of `track`, ever.
    pub fn play_count(&self, track: &str) -> Result<u64, StoreError> {
        Ok(self
            .play_counts
            .get(track.as_bytes())?
            .map_or(0, |bytes| decode_ms(&bytes)))
    }

    /// Forgets event ids and plays last seen before `before_ms`. Events older than
    /// [`crate::activity::EVENT_AGE_MAX_MS`] are refused anyway, so pruning at that age keeps
    /// idempotency and bounds both trees by a month of listening. Returns what went.
    pub fn prune_activity(&self, before_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.event_ids.iter() {
            let (key, at) = entry?;
            if decode_ms(&at) < before_ms {
                self.event_ids.remove(key)?;
                removed += 1;
            }
        }
        for entry in self.plays.iter() {
            let (key, bytes) = entry?;
            let play: PlayState = serde_json::from_slice(&bytes)?;
            if play.last_at_ms < before_ms {
                self.plays.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_at_ms: u64) -> TokenRecord {
        TokenRecord {
            account: "a".into(),
            kind: TokenKind::Access,
            expires_at_ms,
        }
    }

    #[test]
    fn expired_tokens_are_purged_and_refresh_tokens_are_single_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_token(&[1; 32], &token(10)).unwrap();
        store.put_token(&[2; 32], &token(1_000)).unwrap();
        assert_eq!(store.purge_expired_tokens(500).unwrap(), 1);
        assert!(store.token(&[1; 32]).unwrap().is_none());
        assert!(store.take_token(&[2; 32]).unwrap().is_some());
        assert!(store.take_token(&[2; 32]).unwrap().is_none());
    }

    #[test]
    fn offline_devices_are_limited_per_account_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.admit_offline_device("acct", "n1", 0, 2, 100).unwrap());
        assert!(store.admit_offline_device("acct", "n2", 0, 2, 100).unwrap());
        assert!(!store.admit_offline_device("acct", "n3", 0, 2, 100).unwrap());
        // A known device renews; another account is unaffected.
        assert!(
            store
                .admit_offline_device("acct", "n1", 50, 2, 200)
                .unwrap()
        );
        assert!(
            store
                .admit_offline_device("other", "n3", 0, 2, 100)
                .unwrap()
        );
        // Once n2's licenses expire, n3 fits.
        assert!(
            store
                .admit_offline_device("acct", "n3", 150, 2, 300)
                .unwrap()
        );
    }
}

#[cfg(test)]
mod library_tests {
    use super::{Library, LibraryAdd, Store};

    #[test]
    fn libraries_are_per_account_ordered_idempotent_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let add = |account: &str, item: &str, at: u64| {
            store
                .library_add_within(Library::Tracks, account, item, at, 3)
                .unwrap()
        };
        assert_eq!(add("a", "t1", 10), LibraryAdd::Added(10));
        assert_eq!(add("a", "t2", 20), LibraryAdd::Added(20));
        assert_eq!(add("a", "t1", 30), LibraryAdd::Already(10));
        assert_eq!(add("a", "t3", 30), LibraryAdd::Added(30));
        assert_eq!(add("a", "t4", 40), LibraryAdd::Full);
        // Another account, and the other library, are separate.
        assert_eq!(add("b", "t4", 40), LibraryAdd::Added(40));
        assert_eq!(
            store.library_page(Library::Artists, "a", 0, 10).unwrap().0,
            0
        );
        let (total, page) = store.library_page(Library::Tracks, "a", 1, 10).unwrap();
        assert_eq!(total, 3);
        assert_eq!(page, vec![("t2".to_string(), 20), ("t1".to_string(), 10)]);
        assert!(store.library_remove(Library::Tracks, "a", "t2").unwrap());
        assert!(!store.library_remove(Library::Tracks, "a", "t2").unwrap());
        assert_eq!(add("a", "t4", 50), LibraryAdd::Added(50));
        // Durable: reopened, it is all there.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let (total, _) = store.library_page(Library::Tracks, "a", 0, 10).unwrap();
        assert_eq!(total, 3);
    }
}
