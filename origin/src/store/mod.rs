//! The origin's storage, behind async seams split by domain.
//!
//! Metadata lives behind six traits, one per domain: [`Accounts`] (accounts and tokens),
//! [`Catalog`] (tracks and renditions), [`Playlists`], [`Libraries`] (liked songs and followed
//! artists), [`Listening`] (listening events, plays, streams and play counts) and
//! [`Devices`] (offline devices); a seventh, [`Coordination`], is what several origins sharing
//! a database coordinate through (the change feed, job leadership). Chunk bytes live behind
//! [`blobs::BlobStore`], with the hot-chunk memory cache ([`blobs::ChunkBlobs`]) layered over
//! it. [`Store`] holds one of each, chosen at open time from a [`StoreConfig`]:
//!
//! | backend | metadata | blobs |
//! |---|---|---|
//! | embedded (default, no set-up) | [`embedded`]: sled in `DATA/meta` | [`blobs::FileBlobs`] in `DATA/chunks` |
//! | scale-out | [`postgres`]: PostgreSQL, pooled | [`s3::S3Blobs`]: any S3-compatible store |
//!
//! Nothing above this module names a backend type: handlers, jobs and operator tools call the
//! traits through [`Store`]. Policy stays above the seam too: the 30-second rule is passed to
//! [`Listening::record_events`] as a function ([`crate::activity::apply_event`]), content keys
//! are sealed before any backend sees them ([`keys`]), and fraud rules run over the streams a
//! backend returns.
//!
//! Every backend keeps the same guarantees, checked by one behavioural suite run against each
//! ([`suite`]): every acknowledged write is durable (survives `kill -9`); a playlist update is
//! optimistic on its version and never loses a concurrent edit; a batch of listening events
//! is idempotent per event id and all-or-nothing; offline device admission holds its limit
//! under concurrency; a track is published in one transaction after all its chunks are stored,
//! so no reader ever sees a track whose chunks are missing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use protocol::ChunkId;

pub mod blobs;
pub mod cached;
pub mod embedded;
pub mod keys;
pub mod postgres;
pub mod records;
pub mod s3;
pub mod suite;

use blobs::{BlobError, ChunkBlobs};
use keys::KeyWrap;
pub use records::*;

/// Why the store failed. These are server-side failures (5xx), never the client's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database or object store cannot be reached right now (an outage, a restart): the
    /// request may succeed later (`503`).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend failed.
    #[error("database: {0}")]
    Backend(String),
    /// A local file could not be read or written.
    #[error("files: {0}")]
    Io(#[from] std::io::Error),
    /// A stored record could not be decoded (corruption or an incompatible version).
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// A transaction conflicted or aborted.
    #[error("transaction: {0}")]
    Transaction(String),
    /// The content key-encryption key is missing or does not open a stored key.
    #[error("content keys: {0}")]
    Keys(String),
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        StoreError::Corrupt(error.to_string())
    }
}

impl From<BlobError> for StoreError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::Unavailable(message) => StoreError::Unavailable(message),
            BlobError::Io(error) => StoreError::Io(error),
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// The chunk ids a stored (hex) manifest lists; none if it does not decode.
pub(crate) fn manifest_chunks(manifest_hex: &str) -> Vec<ChunkId> {
    hex::decode(manifest_hex)
        .ok()
        .and_then(|bytes| protocol::codec::decode::<protocol::SignedManifest>(&bytes).ok())
        .and_then(|signed| protocol::codec::decode::<protocol::ManifestBody>(&signed.body).ok())
        .map(|body| body.chunks)
        .unwrap_or_default()
}

/// A refusal by the change passed to [`Playlists::update_playlist`]: nothing was written.
/// ([`Store::update_playlist`] carries the caller's own error type through.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// A change to a playlist, run by the backend inside its optimistic transaction (possibly
/// more than once, each time on the newest version).
pub type PlaylistChange<'a> =
    &'a mut (dyn FnMut(&mut PlaylistRecord) -> Result<(), Refused> + Send);

/// The rule that moves a play on by one event: returns whether the event qualifies the play as
/// a stream, or refuses the event. The store runs it inside its transaction; the rule itself
/// is policy ([`crate::activity::apply_event`]).
pub type PlayRule = fn(&mut Option<PlayState>, &EventInput) -> Result<bool, PlayError>;

/// Accounts and bearer tokens.
#[async_trait]
pub trait Accounts: Send + Sync + std::fmt::Debug {
    /// Creates `account` unless its username is taken; false if taken. Durable on return.
    async fn create_account(&self, account: &Account) -> Result<bool, StoreError>;
    /// Replaces a stored account (tier or role changes). Durable on return.
    async fn update_account(&self, account: &Account) -> Result<(), StoreError>;
    /// The account with `id`.
    async fn account(&self, id: &str) -> Result<Option<Account>, StoreError>;
    /// The account named `username`.
    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError>;
    /// Stores token records under the hashes of their tokens, all at once (a log-in's access
    /// and refresh tokens: one durable write). Durable on return.
    async fn put_tokens(&self, tokens: &[([u8; 32], TokenRecord)]) -> Result<(), StoreError>;
    /// The token record for a token hash.
    async fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError>;
    /// The token record for a token hash with its account (if the account still exists), in
    /// one round trip: what authenticating a request needs.
    async fn session(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<(TokenRecord, Option<Account>)>, StoreError>;
    /// Removes and returns a token record atomically (refresh tokens are single-use: of two
    /// concurrent takes, one gets the record).
    async fn take_token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError>;
    /// Removes tokens that expired at or before `now_ms`; returns how many.
    async fn purge_expired_tokens(&self, now_ms: u64) -> Result<usize, StoreError>;
    /// Up to `limit` accounts with ids after `after`, in id order (migrations).
    async fn accounts_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Account>, StoreError>;
    /// Up to `limit` tokens with hashes after `after`, in hash order (migrations).
    async fn tokens_after(
        &self,
        after: Option<&[u8; 32]>,
        limit: usize,
    ) -> Result<Vec<([u8; 32], TokenRecord)>, StoreError>;
    /// Stores an app password or API key (an upsert by account and id). Durable on return.
    async fn put_app_credential(&self, credential: &AppCredential) -> Result<(), StoreError>;
    /// An account's app passwords and API keys, in id order.
    async fn app_credentials(&self, account: &str) -> Result<Vec<AppCredential>, StoreError>;
    /// The API key whose SHA-256 is `key_hash`.
    async fn api_key(&self, key_hash: &[u8; 32]) -> Result<Option<AppCredential>, StoreError>;
    /// Removes an account's credential and every token issued for it; false when there was
    /// none. Durable on return.
    async fn delete_app_credential(&self, account: &str, id: &str) -> Result<bool, StoreError>;
    /// Up to `limit` credentials after the `account/id` key `after`, in that order
    /// (migrations).
    async fn app_credentials_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AppCredential>, StoreError>;
}

/// Tracks and renditions. Rendition records carry content keys sealed ([`keys`]).
#[async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// Publishes a fully ingested track: its renditions, the track and its indexes in one
    /// transaction. Every chunk must already be stored. Durable on return.
    async fn publish_track(
        &self,
        track: &TrackRecord,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError>;
    /// Imports catalog metadata in bulk, each track with its play count (migrations and
    /// benchmarks that need a large catalog without ingesting audio). Replaces tracks with the
    /// same ids. Durable on return.
    async fn import_tracks(&self, tracks: &[(TrackRecord, u64)]) -> Result<(), StoreError>;
    /// Imports renditions as they are stored elsewhere (sealed keys kept as they are).
    async fn import_renditions(
        &self,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError>;
    /// Removes a track and its renditions from the catalog; returns the chunk ids its
    /// renditions listed (for the caller to remove once the records are durably gone).
    async fn delete_track(&self, track: &TrackRecord) -> Result<Vec<ChunkId>, StoreError>;
    /// The track with `id`.
    async fn track(&self, id: &str) -> Result<Option<TrackRecord>, StoreError>;
    /// True while the rendition with hex `id` is published.
    async fn has_rendition(&self, id: &str) -> Result<bool, StoreError>;
    /// The rendition with hex `id`, its content key sealed.
    async fn rendition(&self, id: &str) -> Result<Option<RenditionRecord>, StoreError>;
    /// Tracks of an artist in track-id order, up to `limit` after skipping `offset`.
    async fn artist_tracks(
        &self,
        artist_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError>;
    /// Tracks of an album in track-id order, up to `limit` after skipping `offset`.
    async fn album_tracks(
        &self,
        album_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError>;
    /// Up to `limit` tracks with ids after `after`, in id order (the search index, migrations).
    async fn tracks_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TrackRecord>, StoreError>;
    /// Up to `limit` renditions with ids after `after`, in id order, keys sealed.
    async fn renditions_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RenditionRecord)>, StoreError>;
    /// Number of published tracks.
    async fn track_count(&self) -> Result<u64, StoreError>;
    /// The picture uploaded for `key` (`album/{id}` or `artist/{id}`), if any.
    async fn image_for(&self, key: &str) -> Result<Option<ImageSet>, StoreError>;
    /// Sets the picture uploaded for `key`, or with `None` removes it.
    async fn set_image_for(&self, key: &str, image: Option<&ImageSet>) -> Result<(), StoreError>;
    /// Uploaded pictures with keys after `after`, in key order, at most `limit` (migration).
    async fn images_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ImageSet)>, StoreError>;
    /// Brings the backend's housekeeping up to date after a bulk import (a migration, a
    /// benchmark's catalog), so the next queries are planned on real statistics and no
    /// background pass over the new rows competes with them. On PostgreSQL `VACUUM (ANALYZE)`
    /// of the database; nothing to do on the embedded store.
    async fn settle_after_import(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Playlists.
#[async_trait]
pub trait Playlists: Send + Sync + std::fmt::Debug {
    /// Stores a new playlist. False when its owner owns [`PLAYLISTS_PER_ACCOUNT_MAX`] already.
    /// Durable on return.
    async fn create_playlist(&self, playlist: &PlaylistRecord) -> Result<bool, StoreError>;
    /// The playlist with `id`.
    async fn playlist(&self, id: &str) -> Result<Option<PlaylistRecord>, StoreError>;
    /// Ids of the playlists `account` owns or collaborates on.
    async fn account_playlist_ids(&self, account: &str) -> Result<Vec<String>, StoreError>;
    /// Applies `change` to the playlist `id` and stores it with its version bumped and
    /// `updated_at_ms` at least `now_ms`, as one optimistic transaction: if another write
    /// lands in between, `change` runs again on the newer playlist, so no acknowledged change
    /// is lost. `None` when there is no such playlist. Durable on return.
    async fn update_playlist(
        &self,
        id: &str,
        now_ms: u64,
        change: PlaylistChange<'_>,
    ) -> Result<Option<Result<PlaylistRecord, Refused>>, StoreError>;
    /// Removes a playlist and every account's access to it; the removed record, `None` when
    /// there was none. Durable on return.
    async fn delete_playlist(&self, id: &str) -> Result<Option<PlaylistRecord>, StoreError>;
    /// Up to `limit` playlists with ids after `after`, in id order.
    async fn playlists_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PlaylistRecord>, StoreError>;
    /// Stores playlists as they are (migrations): versions and times kept.
    async fn import_playlists(&self, playlists: &[PlaylistRecord]) -> Result<(), StoreError>;
}

/// Liked songs and followed artists.
#[async_trait]
pub trait Libraries: Send + Sync + std::fmt::Debug {
    /// Adds `item` to `account`'s library at `now_ms` unless it holds `items_max` items
    /// (idempotent: adding twice keeps the first time; of two concurrent adds, one time
    /// wins). Durable on return.
    async fn library_add(
        &self,
        which: Library,
        account: &str,
        item: &str,
        now_ms: u64,
        items_max: usize,
    ) -> Result<LibraryAdd, StoreError>;
    /// Removes `item`; false when it was not there. Durable on return.
    async fn library_remove(
        &self,
        which: Library,
        account: &str,
        item: &str,
    ) -> Result<bool, StoreError>;
    /// A page of `account`'s library, most recently added first (ties by id), and the total.
    async fn library_page(
        &self,
        which: Library,
        account: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<(String, u64)>), StoreError>;
    /// Up to `limit` entries `(account, item, added_at_ms)` after `after` in
    /// `(account, item)` order (migrations).
    async fn library_after(
        &self,
        which: Library,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>, StoreError>;
    /// `account`'s player state, if one was ever saved.
    async fn player(&self, account: &str) -> Result<Option<PlayerRecord>, StoreError>;
    /// Saves `state` if the stored version is `state.version - 1` (none stored counts as 0):
    /// true when saved, false when another write came first. Durable on return.
    async fn put_player(&self, account: &str, state: &PlayerRecord) -> Result<bool, StoreError>;
    /// Up to `limit` player states of accounts after `after`, in account order (migrations).
    async fn players_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, PlayerRecord)>, StoreError>;
    /// Stores player states as they are, versions kept (migrations).
    async fn import_players(&self, players: &[(String, PlayerRecord)]) -> Result<(), StoreError>;
}

/// Listening events, plays, qualified streams and play counts.
#[async_trait]
pub trait Listening: Send + Sync + std::fmt::Debug {
    /// Records a batch of `account`'s events as one transaction: each event id is taken once
    /// (a repeat is a duplicate, not an error), each event moves its play on by `rule`, and a
    /// play that qualifies adds a stream and bumps its track's play count. An event `rule`
    /// refuses aborts the whole batch, naming the event's index: nothing is written. Durable
    /// on return.
    async fn record_events(
        &self,
        account: &str,
        events: &[EventInput],
        rule: PlayRule,
    ) -> Result<Result<EventsRecorded, (usize, PlayError)>, StoreError>;
    /// Up to `limit` qualified streams with `from_ms <= at < to_ms` after the stream `after`,
    /// in time order (ties by account, then play id).
    async fn streams_between(
        &self,
        from_ms: u64,
        to_ms: u64,
        after: Option<&StreamRecord>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError>;
    /// Qualified streams that other origin processes recorded into this (shared) store at or
    /// after `since_ms` by the store's clock, oldest first, at most `limit`, with when each
    /// was recorded: how every instance's trending also counts the streams the others took
    /// in. A store one process opens alone (the embedded one) has none. Writes that commit
    /// late may appear behind a reader's cursor: readers ask again from a little before it
    /// and skip what they saw.
    async fn streams_recorded_elsewhere(
        &self,
        since_ms: u64,
        limit: usize,
    ) -> Result<RecordedElsewhere, StoreError>;
    /// Up to `limit` qualified streams from `from_ms` on, newest first.
    async fn streams_newest_first(
        &self,
        from_ms: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError>;
    /// The tracks `account` played most recently, newest first, each once, at most `limit`.
    async fn recent_tracks(&self, account: &str, limit: usize) -> Result<Vec<String>, StoreError>;
    /// Qualified streams of each of `tracks`, ever, in the same order.
    async fn play_counts(&self, tracks: &[String]) -> Result<Vec<u64>, StoreError>;
    /// Forgets event ids and plays last seen before `before_ms`; returns how many went.
    async fn prune_activity(&self, before_ms: u64) -> Result<usize, StoreError>;
    /// Stores what another store recorded (migrations): event ids with their times, plays
    /// (`(account, play_id, state)`), streams, and play counts (replacing the counts).
    async fn import_listening(&self, import: &ListeningImport) -> Result<(), StoreError>;
    /// Up to `limit` of everything [`Listening::import_listening`] takes, in key order after
    /// `after` (an opaque cursor the previous page returned); `None` once done.
    async fn export_listening(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(ListeningImport, Option<String>), StoreError>;
}

/// Devices holding offline licenses.
#[async_trait]
pub trait Devices: Send + Sync + std::fmt::Debug {
    /// Records that `node` holds offline licenses for `account` until `expires_at_ms`, unless
    /// that would exceed `devices_max` devices with unexpired licenses at `now_ms` (holds under
    /// concurrent admissions). Returns whether the device was admitted. Durable on return.
    async fn admit_offline_device(
        &self,
        account: &str,
        node: &str,
        now_ms: u64,
        devices_max: usize,
        expires_at_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Up to `limit` devices `(account, node, expires_at_ms)` after `after` (migrations).
    async fn devices_after(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>, StoreError>;
    /// Stores devices as they are (migrations).
    async fn import_devices(&self, devices: &[(String, String, u64)]) -> Result<(), StoreError>;
}

/// What origins sharing one database coordinate through: the change feed and the leadership
/// of once-only jobs.
///
/// The feed lists every change another origin must hear of (a track published or deleted, a
/// playlist changed, an account changed, a play count moving into another power of two, a bulk
/// import), numbered in the order the changes committed. A backend writes an entry together
/// with the change it describes, and a reader never sees an entry before its change: a reader
/// that has applied entry `n` has seen every change up to it. Each origin follows the feed to
/// keep its search index and its caches current ([`crate::follow`]).
#[async_trait]
pub trait Coordination: Send + Sync + std::fmt::Debug {
    /// Changes numbered after `after`, oldest first, at most `limit`.
    async fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError>;
    /// The feed's id, head and pruning point.
    async fn feed_state(&self) -> Result<FeedState, StoreError>;
    /// Forgets changes made before `before_ms`; returns how many.
    async fn prune_changes(&self, before_ms: u64) -> Result<usize, StoreError>;
    /// Whether this process leads the jobs that run once across the origins sharing the
    /// database, claiming the lead when nobody holds it. A leader that stops (or loses the
    /// database) loses it; another origin claims it on its next call. The embedded backend
    /// has one origin, which always leads.
    async fn lead(&self) -> Result<bool, StoreError>;
    /// The fingerprint of the signing keys this database is served with: `fingerprint` if
    /// none was recorded yet (it is recorded now), else the one recorded first. Origins sharing
    /// a database must share their keys; one whose fingerprint differs is refused at start.
    async fn service_keys(&self, fingerprint: &str) -> Result<String, StoreError>;
    /// Records `published` as the newest artifact called `name` (the leader calls this after
    /// storing its blob). The previous one stays recorded as its predecessor, for readers that
    /// are still loading it; returns the blob recorded before that, which nothing names any
    /// more and the caller removes (never `published.blob` or its predecessor).
    async fn publish(
        &self,
        name: &str,
        published: &Published,
    ) -> Result<Option<ChunkId>, StoreError>;
    /// The newest artifact called `name`, if one was published.
    async fn published(&self, name: &str) -> Result<Option<Published>, StoreError>;
}

/// A page of listening state moving between stores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListeningImport {
    /// `(account, event id, at_ms)`.
    pub event_ids: Vec<(String, String, u64)>,
    /// `(account, play id, state)`.
    pub plays: Vec<(String, String, PlayState)>,
    /// Qualified streams.
    pub streams: Vec<StreamRecord>,
    /// `(track, count)`.
    pub play_counts: Vec<(String, u64)>,
}

impl ListeningImport {
    /// Rows in this page.
    pub fn len(&self) -> usize {
        self.event_ids.len() + self.plays.len() + self.streams.len() + self.play_counts.len()
    }

    /// True when the page holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which metadata backend to open.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Database {
    /// sled in `DATA/meta` (no set-up).
    #[default]
    Embedded,
    /// PostgreSQL at this URL (`postgres://user:password@host:port/database`), through a
    /// pool of `pool_size` connections.
    Postgres {
        /// The connection URL (holds the password: never logged; see [`Database::describe`]).
        url: String,
        /// Connections in the pool.
        pool_size: usize,
    },
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Database {
    /// Parses a `--database` value: `embedded` (or `sled`), or a `postgres://` /
    /// `postgresql://` URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "embedded" | "sled" => Ok(Database::Embedded),
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres {
                    url: url.to_string(),
                    pool_size: postgres::POOL_SIZE_DEFAULT,
                })
            }
            other => Err(format!(
                "unknown database {other:?}: `embedded` or a postgres:// URL"
            )),
        }
    }

    /// What it is, without the password.
    pub fn describe(&self) -> String {
        match self {
            Database::Embedded => "embedded".to_string(),
            Database::Postgres { url, .. } => postgres::redact(url),
        }
    }
}

/// Which blob backend to open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Blobs {
    /// Files in `DATA/chunks`.
    #[default]
    Files,
    /// An S3-compatible bucket, keys under `prefix` (endpoint and credentials from the
    /// `AWS_*` variables: see [`s3`]).
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix, without slashes at its ends (may be empty).
        prefix: String,
        /// Endpoint and credentials.
        access: s3::S3Access,
    },
}

impl Blobs {
    /// Parses a `--blobs` value: `files`, or `s3://BUCKET[/PREFIX]` (endpoint and
    /// credentials from the `AWS_*` variables).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "files" => Ok(Blobs::Files),
            url => {
                let (bucket, prefix) =
                    s3::parse_url(url).map_err(|error| format!("{error} (or `files`)"))?;
                Ok(Blobs::S3 {
                    bucket,
                    prefix,
                    access: s3::S3Access::from_env(),
                })
            }
        }
    }
}

/// Where a [`Store`] lives.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The origin's data directory: keys (`content.kek`) always, and the embedded backends.
    pub data_dir: PathBuf,
    /// The metadata backend.
    pub database: Database,
    /// The blob backend.
    pub blobs: Blobs,
    /// Bytes of hot chunks kept in memory.
    pub chunk_cache_bytes: usize,
}

impl StoreConfig {
    /// The embedded default (sled and files) in `data_dir`.
    pub fn embedded(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            database: Database::Embedded,
            blobs: Blobs::Files,
            chunk_cache_bytes: blobs::CHUNK_CACHE_BYTES_DEFAULT,
        }
    }
}

/// The origin's storage: one backend per domain and the chunk blobs (see the module docs).
#[derive(Debug, Clone)]
pub struct Store {
    accounts: Arc<cached::CachedAccounts>,
    catalog: Arc<cached::CachedCatalog>,
    playlists: Arc<dyn Playlists>,
    libraries: Arc<dyn Libraries>,
    listening: Arc<dyn Listening>,
    devices: Arc<dyn Devices>,
    coordination: Arc<dyn Coordination>,
    blobs: ChunkBlobs,
    keys: Arc<KeyWrap>,
    describe: String,
    usernames: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

/// What an app password is sealed to: its account and id.
fn credential_context(credential: &AppCredential) -> String {
    format!("app-password:{}/{}", credential.account, credential.id)
}

/// Characters of an app password: lower-case letters and digits, none that look alike.
const APP_PASSWORD_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A new app password: 26 characters of [`APP_PASSWORD_ALPHABET`] (130 random bits), easy to
/// type on a phone and never worth guessing.
fn new_app_password() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 26];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|byte| char::from(APP_PASSWORD_ALPHABET[usize::from(byte % 32)]))
        .collect()
}

/// Usernames kept by [`Store::username`].
pub const USERNAMES_MAX: usize = 100_000;

/// One backend serving every metadata domain.
pub trait Metadata:
    Accounts + Catalog + Playlists + Libraries + Listening + Devices + Coordination
{
}

impl<T: Accounts + Catalog + Playlists + Libraries + Listening + Devices + Coordination> Metadata
    for T
{
}

impl Store {
    /// Opens (creating if needed) the store `config` names.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        transport::keyfile::create_private_dir(&config.data_dir)?;
        let kek_path = config.data_dir.join("content.kek");
        let kek_existed = kek_path.exists();
        let keys = Arc::new(KeyWrap::new(&transport::keyfile::load_or_create_secret(
            &kek_path,
        )?));
        let (metadata, describe_meta): (Arc<dyn MetadataObject>, String) = match &config.database {
            Database::Embedded => {
                // sled lets go of its lock file only when its background threads drop their
                // handles, a moment after the last of ours: an origin started again in the
                // same process (tests, `chorus devnet`) may find it still held for a while.
                // Another process holding it is still refused, after the wait.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                let store = loop {
                    match embedded::EmbeddedStore::open(&config.data_dir, &keys) {
                        Err(error)
                            if error.to_string().contains("could not acquire lock")
                                && std::time::Instant::now() < deadline =>
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await
                        }
                        opened => break opened?,
                    }
                };
                (
                    Arc::new(store),
                    format!("sled in {}", config.data_dir.join("meta").display()),
                )
            }
            Database::Postgres { url, pool_size } => {
                let store = postgres::PostgresStore::open(url, *pool_size).await?;
                let describe = format!("PostgreSQL at {}", store.describe());
                (Arc::new(store), describe)
            }
        };
        let blob_store: Arc<dyn blobs::BlobStore> = match &config.blobs {
            Blobs::Files => Arc::new(blobs::FileBlobs::open(&config.data_dir.join("chunks"))?),
            Blobs::S3 {
                bucket,
                prefix,
                access,
            } => Arc::new(s3::S3Blobs::open(bucket, prefix, access)?),
        };
        let describe = format!(
            "metadata: {describe_meta}; chunks: {}",
            blob_store.describe()
        );
        let store = Self::from_parts(
            metadata,
            ChunkBlobs::new(blob_store, config.chunk_cache_bytes),
            keys,
            describe,
        );
        store.check_keys(&kek_path, kek_existed).await?;
        Ok(store)
    }

    /// A store over `metadata` and `blobs`, sealing content keys with `keys`.
    fn from_parts(
        metadata: Arc<dyn MetadataObject>,
        blobs: ChunkBlobs,
        keys: Arc<KeyWrap>,
        describe: String,
    ) -> Self {
        Self {
            accounts: Arc::new(cached::CachedAccounts::new(metadata.clone().accounts())),
            catalog: Arc::new(cached::CachedCatalog::new(metadata.clone().catalog())),
            playlists: metadata.clone().playlists(),
            libraries: metadata.clone().libraries(),
            listening: metadata.clone().listening(),
            devices: metadata.clone().devices(),
            coordination: metadata.coordination(),
            blobs,
            keys,
            describe,
            usernames: Arc::default(),
        }
    }

    /// Refuses a store whose stored content keys do not open with `content.kek` (a database
    /// restored without its key file, or pointed at by another origin's data directory).
    async fn check_keys(&self, kek_path: &Path, kek_existed: bool) -> Result<(), StoreError> {
        let Some((id, sample)) = self.catalog.renditions_after(None, 1).await?.pop() else {
            return Ok(());
        };
        if !KeyWrap::is_sealed(&sample.content_key)
            || self.keys.unwrap(&id, &sample.content_key).is_ok()
        {
            return Ok(());
        }
        if !kek_existed {
            let _ = std::fs::remove_file(kek_path);
            return Err(StoreError::Keys(format!(
                "{} is missing, so the stored content keys cannot be opened: restore it from \
                 the backup taken with this database",
                kek_path.display()
            )));
        }
        Err(StoreError::Keys(format!(
            "{} does not open the stored content keys: it belongs to another database",
            kek_path.display()
        )))
    }

    /// The embedded default in `data_dir` (sled and files).
    pub async fn open_embedded(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open(&StoreConfig::embedded(data_dir)).await
    }

    /// What the store runs on, for logs (never a secret).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Accounts and tokens.
    pub fn accounts(&self) -> &dyn Accounts {
        &*self.accounts
    }

    /// Tracks and renditions (keys sealed; use [`Store::rendition`] to play).
    pub fn catalog(&self) -> &dyn Catalog {
        &*self.catalog
    }

    /// Playlists (change them through [`Store::update_playlist`]).
    pub fn playlists(&self) -> &dyn Playlists {
        &*self.playlists
    }

    /// Liked songs and followed artists.
    pub fn libraries(&self) -> &dyn Libraries {
        &*self.libraries
    }

    /// Listening state (record events through [`Store::record_events`]).
    pub fn listening(&self) -> &dyn Listening {
        &*self.listening
    }

    /// Offline devices.
    pub fn devices(&self) -> &dyn Devices {
        &*self.devices
    }

    /// The change feed and job leadership.
    pub fn coordination(&self) -> &dyn Coordination {
        &*self.coordination
    }

    /// Forgets what the caches hold of the subject of `change`, made by another origin.
    pub fn forget_changed(&self, change: &Change) {
        match change.kind {
            ChangeKind::Track => self.catalog.forget_track_id(&change.id),
            ChangeKind::Account => self.accounts.forget_sessions_of(&change.id),
            ChangeKind::Playlist | ChangeKind::Plays | ChangeKind::Import => {}
        }
    }

    /// The chunk blobs, with their memory cache.
    pub fn blobs(&self) -> &ChunkBlobs {
        &self.blobs
    }

    /// Publishes a fully ingested track whose renditions carry their content keys in the
    /// clear: the keys are sealed here, then the catalog publishes it in one transaction.
    /// Every chunk must already be stored.
    pub async fn publish_track(
        &self,
        track: &TrackRecord,
        renditions: &[(String, RenditionRecord)],
    ) -> Result<(), StoreError> {
        let mut sealed = Vec::with_capacity(renditions.len());
        for (id, record) in renditions {
            sealed.push((
                id.clone(),
                RenditionRecord {
                    content_key: self.keys.wrap(id, &record.content_key)?,
                    ..record.clone()
                },
            ));
        }
        self.catalog.publish_track(track, &sealed).await
    }

    /// Makes and stores an app password or API key named `name` for `account` (durable on
    /// return): the record and the secret, which is shown once. An app password is kept sealed
    /// under `content.kek`; an API key only as its SHA-256.
    pub async fn create_app_credential(
        &self,
        account: &str,
        name: &str,
        kind: CredentialKind,
        now_ms: u64,
    ) -> Result<(AppCredential, String), StoreError> {
        let id = hex::encode(rand::random::<[u8; 8]>());
        let mut credential = AppCredential {
            id,
            account: account.to_string(),
            name: name.to_string(),
            kind,
            sealed: String::new(),
            key_hash: String::new(),
            created_at_ms: now_ms,
        };
        let secret = match kind {
            CredentialKind::AppPassword => {
                let secret = new_app_password();
                credential.sealed = self
                    .keys
                    .seal(&credential_context(&credential), secret.as_bytes())?;
                secret
            }
            CredentialKind::ApiKey => {
                let (secret, hash) = crate::accounts::new_token();
                credential.key_hash = hex::encode(hash);
                secret
            }
        };
        self.accounts.put_app_credential(&credential).await?;
        Ok((credential, secret))
    }

    /// The access token an app credential's log-in gets during `window` (a count of periods):
    /// derived from `content.kek`, so logging in again within the window makes no new token.
    pub fn app_session_token(&self, credential: &AppCredential, window: u64) -> String {
        use base64::Engine;
        let context = format!(
            "app-session:{}/{}/{window}",
            credential.account, credential.id
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.keys.derive(&context))
    }

    /// The app password a credential holds, opened (`None` for an API key).
    pub fn app_password(&self, credential: &AppCredential) -> Result<Option<String>, StoreError> {
        if credential.kind != CredentialKind::AppPassword {
            return Ok(None);
        }
        let bytes = self
            .keys
            .open(&credential_context(credential), &credential.sealed)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| StoreError::Keys("a sealed app password is not text".into()))
    }

    /// Stores `lyrics` as a content-addressed blob (durable on return): what a track record
    /// points at.
    pub async fn put_lyrics(&self, lyrics: &Lyrics) -> Result<LyricsRef, StoreError> {
        let body = Bytes::from(serde_json::to_vec(lyrics)?);
        let id = ChunkId::of(&body);
        let bytes = body.len() as u32;
        self.blobs.put(&id, body).await?;
        Ok(LyricsRef {
            synced: lyrics.synced,
            blob: id.to_hex(),
            bytes,
        })
    }

    /// Stores each size of a picture (from [`crate::artwork::prepare`]) as a blob (durable on
    /// return).
    pub async fn put_images(
        &self,
        sizes: &[crate::artwork::Sized],
    ) -> Result<ImageSet, StoreError> {
        let mut set = ImageSet::default();
        for sized in sizes {
            let body = Bytes::from(crate::artwork::to_blob(&sized.jpeg));
            let id = ChunkId::of(&body);
            self.blobs.put(&id, body).await?;
            set.sizes.push(ImageRef {
                edge: sized.edge,
                blob: id.to_hex(),
                bytes: sized.jpeg.len() as u32,
            });
        }
        Ok(set)
    }

    /// The JPEG of the picture stored under `id`, if there is one: only blobs stored as
    /// pictures ([`crate::artwork::to_blob`]) are, never an audio chunk or lyrics.
    pub async fn image(&self, id: &ChunkId) -> Result<Option<Bytes>, StoreError> {
        let Some(blob) = self.blobs.get(id).await? else {
            return Ok(None);
        };
        let start = crate::artwork::IMAGE_MAGIC.len();
        Ok(crate::artwork::from_blob(&blob)
            .is_some()
            .then(|| blob.slice(start..)))
    }

    /// The lyrics `reference` points at (checked against its hash), `None` if the blob is
    /// gone.
    pub async fn lyrics(&self, reference: &LyricsRef) -> Result<Option<Lyrics>, StoreError> {
        let id: ChunkId = reference
            .blob
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("lyrics blob id {:?}", reference.blob)))?;
        let Some(body) = self.blobs.get(&id).await? else {
            return Ok(None);
        };
        if ChunkId::of(&body) != id {
            return Err(StoreError::Corrupt(format!(
                "lyrics blob {id} does not match"
            )));
        }
        Ok(Some(serde_json::from_slice(&body)?))
    }

    /// The rendition with hex `id`, its content key opened.
    pub async fn rendition(&self, id: &str) -> Result<Option<RenditionRecord>, StoreError> {
        let Some(mut record) = self.catalog.rendition(id).await? else {
            return Ok(None);
        };
        record.content_key = self.keys.unwrap(id, &record.content_key)?;
        Ok(Some(record))
    }

    /// Removes a track from the catalog and revokes its content: its renditions stop being
    /// playable and, once the records are durably gone, its chunks are removed (a crash in
    /// between leaves unreferenced blobs, never a record without its chunks). Chunks are never
    /// shared between renditions (each has its own content key), so nothing else loses a
    /// chunk. Peers holding copies drop them when the tracker or origin next tells them.
    pub async fn delete_track(&self, track: &TrackRecord) -> Result<(), StoreError> {
        let chunks = self.catalog.delete_track(track).await?;
        // Once the records are gone the track is revoked; a chunk that will not go is logged
        // and left (unreferenced), never a reason to report the delete as failed.
        let mut left = 0usize;
        for chunk in &chunks {
            if let Err(error) = self.blobs.remove(chunk).await {
                left += 1;
                tracing::warn!(%error, %chunk, "a deleted track's chunk could not be removed");
            }
        }
        if left > 0 {
            tracing::warn!(track = %track.id, left, "chunks left after a delete");
        }
        Ok(())
    }

    /// Records a batch of `account`'s listening events under the 30-second rule
    /// ([`crate::activity::apply_event`]); see [`Listening::record_events`].
    pub async fn record_events(
        &self,
        account: &str,
        events: &[EventInput],
    ) -> Result<Result<EventsRecorded, (usize, PlayError)>, StoreError> {
        self.listening
            .record_events(account, events, crate::activity::apply_input)
            .await
    }

    /// Applies `change` to the playlist `id` (see [`Playlists::update_playlist`]); `change`
    /// may refuse with any error, which is returned with nothing written.
    pub async fn update_playlist<E: Send>(
        &self,
        id: &str,
        now_ms: u64,
        mut change: impl FnMut(&mut PlaylistRecord) -> Result<(), E> + Send,
    ) -> Result<Option<Result<PlaylistRecord, E>>, StoreError> {
        let mut refusal: Option<E> = None;
        let mut adapted = |playlist: &mut PlaylistRecord| match change(playlist) {
            Ok(()) => Ok(()),
            Err(error) => {
                refusal = Some(error);
                Err(Refused)
            }
        };
        let result = self
            .playlists
            .update_playlist(id, now_ms, &mut adapted)
            .await?;
        Ok(match result {
            None => None,
            Some(Ok(playlist)) => Some(Ok(playlist)),
            Some(Err(Refused)) => match refusal {
                Some(error) => Some(Err(error)),
                None => {
                    return Err(StoreError::Transaction(
                        "a playlist change refused without an error".into(),
                    ));
                }
            },
        })
    }

    /// The username of account `id`. Usernames never change once taken, so they are kept in
    /// memory (at most [`USERNAMES_MAX`], emptied when full): playlist pages name their owner
    /// and collaborators on every read.
    pub async fn username(&self, id: &str) -> Result<Option<String>, StoreError> {
        let known = self
            .usernames
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(id)
            .cloned();
        if known.is_some() {
            return Ok(known);
        }
        let Some(account) = self.accounts.account(id).await? else {
            return Ok(None);
        };
        let mut usernames = self
            .usernames
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if usernames.len() >= USERNAMES_MAX {
            usernames.clear();
        }
        usernames.insert(id.to_string(), account.username.clone());
        Ok(Some(account.username))
    }

    /// Qualified streams of `track`, ever.
    pub async fn play_count(&self, track: &str) -> Result<u64, StoreError> {
        Ok(self
            .listening
            .play_counts(&[track.to_string()])
            .await?
            .pop()
            .unwrap_or(0))
    }
}

/// [`Metadata`] as trait objects, one per domain (a backend type is named only where it is
/// opened).
trait MetadataObject: Send + Sync {
    fn accounts(self: Arc<Self>) -> Arc<dyn Accounts>;
    fn catalog(self: Arc<Self>) -> Arc<dyn Catalog>;
    fn playlists(self: Arc<Self>) -> Arc<dyn Playlists>;
    fn libraries(self: Arc<Self>) -> Arc<dyn Libraries>;
    fn listening(self: Arc<Self>) -> Arc<dyn Listening>;
    fn devices(self: Arc<Self>) -> Arc<dyn Devices>;
    fn coordination(self: Arc<Self>) -> Arc<dyn Coordination>;
}

impl<T: Metadata + 'static> MetadataObject for T {
    fn accounts(self: Arc<Self>) -> Arc<dyn Accounts> {
        self
    }
    fn catalog(self: Arc<Self>) -> Arc<dyn Catalog> {
        self
    }
    fn playlists(self: Arc<Self>) -> Arc<dyn Playlists> {
        self
    }
    fn libraries(self: Arc<Self>) -> Arc<dyn Libraries> {
        self
    }
    fn listening(self: Arc<Self>) -> Arc<dyn Listening> {
        self
    }
    fn devices(self: Arc<Self>) -> Arc<dyn Devices> {
        self
    }
    fn coordination(self: Arc<Self>) -> Arc<dyn Coordination> {
        self
    }
}
