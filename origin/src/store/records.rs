//! The records every store backend keeps, and the limits the store enforces.
//!
//! Plain data: no backend type appears here, so handlers and policy code depend on these and
//! on the traits in [`crate::store`], never on sled or PostgreSQL.

use serde::{Deserialize, Serialize};

pub use crate::activity::{EventKind, PlayError, PlayState, StreamRecord};

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

/// Streams other origin processes recorded, from
/// [`crate::store::Listening::streams_recorded_elsewhere`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordedElsewhere {
    /// The store's clock when it was asked (a reader's first cursor).
    pub now_ms: u64,
    /// (when it was recorded, by the store's clock; the stream), oldest first.
    pub streams: Vec<(u64, StreamRecord)>,
}

/// What [`crate::store::Store::record_events`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsRecorded {
    /// New events.
    pub accepted: usize,
    /// Events whose id was recorded before.
    pub duplicates: usize,
    /// Plays this batch qualified as streams.
    pub streams: Vec<StreamRecord>,
    /// Tracks whose play count this batch moved into another power of two (their search
    /// popularity changes; see [`ChangeKind::Plays`]).
    pub popularity_moved: Vec<String>,
}

/// The power of two a play count is in (0 for none): search popularity is re-indexed when it
/// moves, so a track's documents are rewritten a logarithmic number of times.
pub fn popularity_bucket(plays: u64) -> u32 {
    64 - plays.leading_zeros()
}

/// What a [`Change`] is about; its id names one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A track was published, re-imported or deleted (id: the track).
    Track,
    /// A playlist was created or changed (id: the playlist).
    Playlist,
    /// An account changed: tier, role, password (id: the account).
    Account,
    /// A track's play count moved into another power of two (id: the track).
    Plays,
    /// A bulk import: a reader re-reads everything (id: empty).
    Import,
}

impl ChangeKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Track => "track",
            ChangeKind::Playlist => "playlist",
            ChangeKind::Account => "account",
            ChangeKind::Plays => "plays",
            ChangeKind::Import => "import",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "track" => ChangeKind::Track,
            "playlist" => ChangeKind::Playlist,
            "account" => ChangeKind::Account,
            "plays" => ChangeKind::Plays,
            "import" => ChangeKind::Import,
            _ => return None,
        })
    }
}

/// One entry of the change feed ([`crate::store::Coordination`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Its place in the feed: numbers grow by one, in the order the changes committed.
    pub seq: u64,
    /// What changed.
    pub kind: ChangeKind,
    /// Which one (empty for [`ChangeKind::Import`]).
    pub id: String,
}

/// Where a change feed stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedState {
    /// Names this feed (random, made with the database): a reader's cursor from another
    /// database means nothing here.
    pub id: String,
    /// The newest change's number (0: none yet).
    pub head: u64,
    /// Changes up to this number are pruned: a reader whose cursor is older has missed some
    /// and must re-read everything.
    pub pruned_through: u64,
}

/// A derived artifact (the recommendation model) that the leading origin built and stored as
/// a content-addressed blob, for the other origins to load instead of building it themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The blob: BLAKE3 of its bytes, so a reader checks what it loads.
    pub blob: protocol::ChunkId,
    /// When it was built (the builder's clock), ms since the epoch.
    pub built_ms: u64,
    /// Its size.
    pub bytes: u64,
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
    /// The app password or API key it was issued for (`POST /v1/sessions/app`), if any:
    /// revoking that credential removes the token too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// What an app credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A password for one app (Subsonic's `p`, `enc:` and token+salt): stored sealed under
    /// `content.kek`, since token authentication needs the password itself.
    AppPassword,
    /// An API key (OpenSubsonic's `apiKey`): stored only as its SHA-256.
    ApiKey,
}

/// A credential an account made for one app (`/v1/me/app-passwords`). It logs in as the
/// account with the listener's rights and never changes the account itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCredential {
    /// Hex id (16 characters), unique within the account.
    pub id: String,
    /// Hex account id.
    pub account: String,
    /// The name the listener gave it ("Symfonium on my phone").
    pub name: String,
    /// Password or API key.
    pub kind: CredentialKind,
    /// An app password sealed under `content.kek` (`kw1:` + hex); empty for an API key.
    #[serde(default)]
    pub sealed: String,
    /// Hex SHA-256 of an API key; empty for an app password.
    #[serde(default)]
    pub key_hash: String,
    /// Creation time, Unix ms.
    pub created_at_ms: u64,
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
    /// What the file's tags (or the upload's metadata) add: numbers, year, identifiers,
    /// lyrics. Absent in records written before tags were read.
    #[serde(default)]
    pub details: TrackDetails,
}

pub use api::catalog::{LyricLine, Lyrics, MusicBrainzIds};

/// A track's details beyond title, artist, album and genre.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackDetails {
    /// The album's artist, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album_artist: Option<String>,
    /// Place on its disc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_number: Option<u32>,
    /// Disc of the album.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disc_number: Option<u32>,
    /// Year of release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<u16>,
    /// ISRC, 12 upper-case letters and digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isrc: Option<String>,
    /// MusicBrainz identifiers.
    #[serde(default, skip_serializing_if = "MusicBrainzIds::is_empty")]
    pub musicbrainz: MusicBrainzIds,
    /// Cover art from the file's tags, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artwork: Option<ImageSet>,
    /// Where the lyrics are, if the track has any (kept out of the record, which every
    /// catalog read decodes and the record cache holds).
    #[serde(
        default,
        rename = "lyrics_ref",
        skip_serializing_if = "Option::is_none"
    )]
    pub lyrics: Option<LyricsRef>,
}

/// A picture in a few sizes ([`crate::artwork::EDGES`]), each a JPEG stored as a
/// content-addressed blob beside the chunks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSet {
    /// The sizes, smallest first.
    pub sizes: Vec<ImageRef>,
}

/// One size of an [`ImageSet`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Longer side, pixels.
    pub edge: u32,
    /// Hex BLAKE3 of the stored blob ([`crate::artwork::to_blob`]: a marker, then the
    /// JPEG); its URL is `/v1/images/{blob}`.
    pub blob: String,
    /// Its size.
    pub bytes: u32,
}

impl ImageSet {
    /// The smallest size at least `edge` pixels, else the largest (`None`: the largest).
    pub fn pick(&self, edge: Option<u32>) -> Option<&ImageRef> {
        match edge {
            Some(edge) => self
                .sizes
                .iter()
                .find(|size| size.edge >= edge)
                .or(self.sizes.last()),
            None => self.sizes.last(),
        }
    }
}

impl TrackRecord {
    /// The blobs this record points at besides its chunks (lyrics, artwork): what a
    /// migration copies with it.
    pub fn side_blobs(&self) -> Vec<String> {
        let mut blobs: Vec<String> = self
            .details
            .artwork
            .iter()
            .flat_map(|set| set.sizes.iter().map(|size| size.blob.clone()))
            .collect();
        blobs.extend(self.details.lyrics.iter().map(|lyrics| lyrics.blob.clone()));
        blobs
    }
}

/// A track's lyrics, stored as a content-addressed blob (their JSON, [`Lyrics`]) beside the
/// chunks: [`crate::store::Store::put_lyrics`], [`crate::store::Store::lyrics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LyricsRef {
    /// Every line is timed.
    pub synced: bool,
    /// Hex BLAKE3 of the blob.
    pub blob: String,
    /// The blob's size.
    pub bytes: u32,
}

impl TrackRecord {
    /// Where the track sits in its album: disc, then number, then id (tracks without a
    /// number after the numbered ones), as a key that sorts byte-wise.
    pub fn album_place(&self) -> String {
        format!(
            "{:03}.{:04}.{}",
            self.details.disc_number.unwrap_or(1).min(999),
            self.details.track_number.unwrap_or(9999).min(9999),
            self.id
        )
    }
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

/// A stored playlist. Every change goes through [`crate::store::Store::update_playlist`], which bumps
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

/// Most playlists one account owns.
pub const PLAYLISTS_PER_ACCOUNT_MAX: usize = 2_000;

/// Tries of an optimistic playlist update before giving up (each retry means another write
/// landed in between, so this only runs out under extreme contention).
pub const PLAYLIST_UPDATE_TRIES: usize = 64;

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

/// What [`crate::store::Libraries::library_add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibraryAdd {
    /// Added now, at this time (Unix ms).
    Added(u64),
    /// It was there already, since this time: nothing changed.
    Already(u64),
    /// The library holds [`LIBRARY_ITEMS_MAX`] items.
    Full,
}

/// A listener's player state (`/v1/me/player`): the queue, the place in it, the device that
/// wrote it, and a version every write bumps.
pub type PlayerRecord = api::library::PlayerState;

/// Most tracks in a saved play queue.
pub const PLAYER_QUEUE_MAX: usize = 1_000;
