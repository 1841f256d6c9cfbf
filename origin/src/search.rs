//! Catalog search (tantivy): tracks, artists, albums and public playlists, typo-tolerant,
//! with prefix completion of the last word for type-ahead, ranked by text relevance times a
//! popularity boost (`1 + 0.1 ln(1 + qualified streams)`: relevance decides, popularity orders
//! the near-ties).
//!
//! Name, artist and album words are one `text` field; the 2–12 character prefixes of name and
//! artist words are a `prefixes` field, so the word being typed is one term lookup. Every
//! query word must match: exactly, as the typed prefix (the last word), or, when the exact
//! query does not fill the page and the word is not in the index, within an edit distance that
//! grows with its length (1 for 4–7 letters, 2 from 8). Words in the name add to the score.
//!
//! The index lives in memory-mapped files in the origin's data directory and follows the
//! store's change feed ([`crate::store::Coordination`]): every commit records the number of
//! the last change applied, so a restarted origin opens its index and catches up from there
//! ([`Search::resume`], [`Search::apply`]) instead of re-reading the catalog. It is rebuilt
//! from the store ([`Search::fill`]) only when it is missing, from another database or layout,
//! interrupted mid-build, or older than the feed's pruning point. The origin that makes a
//! change also indexes it before answering (a track is searchable once its upload is
//! answered); every other origin sharing the database does within a second or two.
//!
//! Ranking stops early. Every segment keeps its documents in falling popularity (the
//! index's sort order), and a document scores its text relevance times its popularity boost.
//! Once a page is full, a segment is left as soon as the most any later document could
//! score (each common term's best score from there on, read from its postings, plus the
//! constant parts, times the boost of the document at hand) cannot beat the page's last hit.
//! Rare terms' documents are scored first, one by one, so that a whole word found in a few
//! documents far down the order does not hold the bound up. The ranking is the one scoring
//! every match would give (a test compares the two); a two-letter prefix that matches a
//! third of a million-track catalog scores a few of its documents, and the total is counted
//! without scoring.
//!
//! Popularity follows the play counts: the store notes in the feed when a track's count
//! moves into another power of two, and applying that re-indexes the track with its artist
//! and album, so a document is rewritten a logarithmic number of times.
//!
//! Bounds: empty queries and queries longer than [`QUERY_CHARS_MAX`] are refused; words past
//! the first [`QUERY_WORDS_MAX`] are ignored; a page holds at most [`PAGE_MAX`] hits and
//! offsets stop at [`OFFSET_MAX`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, FuzzyTermQuery, Occur, Query,
    TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, TantivyDocument,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::TokenStream;
use tantivy::{
    DocAddress, DocId, DocSet, Index, IndexReader, IndexSettings, IndexSortByField, IndexWriter,
    Order, ReloadPolicy, Score, Searcher, SegmentReader, TERMINATED, Term, doc,
};

use crate::store::{
    Change, ChangeKind, FeedState, Lyrics, PlaylistRecord, Store, StoreError, TrackRecord,
};

/// Longest query accepted, characters.
pub const QUERY_CHARS_MAX: usize = 256;
/// Words of a query used (the rest are ignored).
pub const QUERY_WORDS_MAX: usize = 8;
/// Most hits in one page.
pub const PAGE_MAX: usize = 50;
/// Deepest offset served.
pub const OFFSET_MAX: usize = 1_000;
/// Tracks of one artist or album summed into its popularity.
pub const POPULARITY_TRACKS_MAX: usize = 1_000;

/// What a hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A track.
    Track,
    /// An artist.
    Artist,
    /// An album.
    Album,
    /// A public playlist.
    Playlist,
    /// A track found by the words of its lyrics (asked for by name only).
    Lyrics,
}

impl Kind {
    /// What a search without a `type` looks among: everything but lyrics, which a listener
    /// asks for when they remember a line.
    pub const DEFAULT: [Kind; 4] = [Kind::Track, Kind::Artist, Kind::Album, Kind::Playlist];

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Track => "track",
            Kind::Artist => "artist",
            Kind::Album => "album",
            Kind::Playlist => "playlist",
            Kind::Lyrics => "lyrics",
        }
    }

    /// Parses an API name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "track" => Some(Kind::Track),
            "artist" => Some(Kind::Artist),
            "album" => Some(Kind::Album),
            "playlist" => Some(Kind::Playlist),
            "lyrics" => Some(Kind::Lyrics),
            _ => None,
        }
    }
}

pub use api::search::Hit;

/// Why a search was refused.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query is empty, too long or has too many words.
    #[error("{0}")]
    BadQuery(String),
    /// The index failed.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The store failed while building the index.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The index is still being built (tracks indexed so far).
    #[error("the search index is being built: {0} tracks so far")]
    Warming(u64),
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    key: Field,
    kind: Field,
    id: Field,
    name: Field,
    artist: Field,
    album: Field,
    /// Every word of name, artist and album: what words match.
    text: Field,
    /// Prefixes (2 to [`PREFIX_CHARS_MAX`] characters) of the name's and artist's words: a
    /// word being typed is one term lookup, not a scan of the term dictionary.
    prefixes: Field,
    /// Of a track: its artist's and album's ids (a deleted track's artist and album documents
    /// go when it was their last).
    artist_id: Field,
    album_id: Field,
    popularity: Field,
    /// Browsing: the name and the artist folded for sorting (lower case), when it was added
    /// (Unix ms), its year (0: none), its genre, a stable order (from the id), and counts
    /// (an album's tracks and duration; an artist's albums and tracks).
    sort_name: Field,
    sort_artist: Field,
    added: Field,
    year: Field,
    genre: Field,
    order: Field,
    count: Field,
    extra: Field,
}

/// One document change [`Search::apply`] makes.
enum Update {
    /// A surviving track's artist and album documents, recounted.
    Regroup(Box<TrackRecord>, Popularity),
    Track(Box<TrackRecord>, Option<Lyrics>, Popularity),
    TrackGone {
        id: String,
        artist_id: Option<String>,
        album_id: Option<String>,
    },
    Playlist(PlaylistRecord, Option<String>),
    PlaylistGone(String),
}

/// Longest word prefix indexed for type-ahead.
pub const PREFIX_CHARS_MAX: usize = 12;

/// The search index.
pub struct Search {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// What the index held when it was opened (persisted indexes only).
    opened: Option<Payload>,
    /// The change feed and the number of its last change applied here, once the catalog is
    /// indexed; written into every commit.
    applied: Mutex<Option<(String, u64)>>,
    /// Tracks indexed by [`Search::fill`] so far.
    indexed: std::sync::atomic::AtomicU64,
    /// Searches are served (the catalog is indexed).
    ready: std::sync::atomic::AtomicBool,
    /// Times [`Search::fill`] started in this process.
    builds: std::sync::atomic::AtomicU64,
    /// Fills running now.
    building: std::sync::atomic::AtomicU64,
    /// Whether rankings stop early ([`Search::set_pruning`]).
    pruning: std::sync::atomic::AtomicBool,
    /// Queries run, the documents they matched and the documents scored to rank them.
    queries: std::sync::atomic::AtomicU64,
    matched: std::sync::atomic::AtomicU64,
    scored: std::sync::atomic::AtomicU64,
}

/// An album as a fill meets it: its title, its artist's name and id, the first genre of its
/// tracks, and their counts.
type AlbumSeen = (String, (String, String), Option<String>, AlbumSums);

/// Lyrics blobs a fill reads at once.
const LYRICS_READS_AT_ONCE: usize = 16;

/// The lyrics `track` points at, if any (a blob gone missing or damaged is logged and read as
/// none).
async fn lyrics_of(store: &Store, track: &TrackRecord) -> Result<Option<Lyrics>, StoreError> {
    let Some(reference) = &track.details.lyrics else {
        return Ok(None);
    };
    // A missing or damaged blob costs that track's lyrics in search, never the index (an
    // error here would stop every fill and every update); an outage is passed on, to retry.
    match store.lyrics(reference).await {
        Ok(Some(lyrics)) => Ok(Some(lyrics)),
        Ok(None) => {
            tracing::warn!(track = %track.id, "the lyrics blob is missing");
            Ok(None)
        }
        Err(StoreError::Corrupt(error)) => {
            tracing::warn!(track = %track.id, %error, "the lyrics blob does not read");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// The artist an album document shows: the album artist where the tags name one.
fn album_artist(track: &TrackRecord) -> &str {
    track
        .details
        .album_artist
        .as_deref()
        .unwrap_or(&track.artist)
}

/// The index's layout version: an index on disk written with another one is rebuilt.
pub const INDEX_SCHEMA: u32 = 6;

/// What a commit records beside the documents (tantivy's commit payload).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Payload {
    schema: u32,
    /// The change feed followed and the last change applied; absent until the catalog is
    /// fully indexed (an index from an interrupted fill is rebuilt).
    feed: Option<String>,
    cursor: Option<u64>,
}

/// Changes applied per commit while following the feed.
pub const CHANGES_PER_COMMIT: usize = 1_000;

/// The multiplier popularity gives a relevance score.
fn boost(plays: u64) -> Score {
    1.0 + 0.1 * (1.0 + plays as f32).ln()
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search").finish_non_exhaustive()
    }
}

/// Edit distance allowed for a word of `len` characters.
fn distance(len: usize) -> u8 {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Indexed text without positions (no phrase queries here, so no need to pay for them).
fn unpositioned(record: IndexRecordOption) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_index_option(record),
    )
}

fn io_error(error: std::io::Error) -> SearchError {
    SearchError::Store(StoreError::Io(error))
}

/// The index's schema and its fields.
fn schema() -> (Schema, Fields) {
    let mut schema = Schema::builder();
    let fields = Fields {
        key: schema.add_text_field("key", STRING),
        kind: schema.add_text_field("kind", STRING | STORED),
        id: schema.add_text_field("id", STRING | STORED),
        name: schema.add_text_field("name", TEXT | STORED),
        artist: schema.add_text_field("artist", STORED),
        album: schema.add_text_field("album", STORED),
        artist_id: schema.add_text_field("artist_id", STORED),
        album_id: schema.add_text_field("album_id", STORED),
        text: schema.add_text_field("text", unpositioned(IndexRecordOption::WithFreqs)),
        prefixes: schema.add_text_field("prefixes", unpositioned(IndexRecordOption::Basic)),
        popularity: schema.add_u64_field("popularity", FAST | STORED),
        sort_name: schema.add_text_field("sort_name", STRING | FAST),
        sort_artist: schema.add_text_field("sort_artist", STRING | FAST),
        added: schema.add_u64_field("added", FAST | STORED),
        year: schema.add_u64_field("year", INDEXED | FAST | STORED),
        genre: schema.add_text_field("genre", STRING | STORED),
        order: schema.add_u64_field("order", FAST),
        count: schema.add_u64_field("count", STORED),
        extra: schema.add_u64_field("extra", STORED),
    };
    (schema.build(), fields)
}

/// Opens the index in `dir` if it was written by this layout, with what its last commit
/// recorded.
fn open_existing(dir: &std::path::Path, schema: &Schema) -> Option<(Index, Payload)> {
    if !dir.join("meta.json").exists() {
        return None;
    }
    let index = Index::open_in_dir(dir)
        .map_err(|error| tracing::warn!(%error, "the search index on disk does not open"))
        .ok()?;
    let payload: Payload = index
        .load_metas()
        .ok()?
        .payload
        .and_then(|payload| serde_json::from_str(&payload).ok())
        .unwrap_or_default();
    (payload.schema == INDEX_SCHEMA
        && index.schema() == *schema
        && index.settings().sort_by_field == settings().sort_by_field)
        .then_some((index, payload))
}

/// Every segment keeps its documents in falling popularity, so a search can stop once the
/// documents left could not beat its page (see [`Search::run`]).
fn settings() -> IndexSettings {
    IndexSettings {
        sort_by_field: Some(IndexSortByField {
            field: "popularity".to_string(),
            order: Order::Desc,
        }),
        ..IndexSettings::default()
    }
}

impl Search {
    /// An empty index in memory.
    pub fn new() -> Result<Self, SearchError> {
        Self::open(None)
    }

    /// The index in memory, or in files under `dir`. An index already in `dir` (written by
    /// this layout) is kept: [`Search::resume`] tells whether it can follow the store's feed
    /// from where it stopped, or must be rebuilt ([`Search::clear`], [`Search::fill`]).
    /// Files are memory-mapped, so a large catalog's index lives in the page cache, which the
    /// kernel may reclaim, not in the heap.
    pub fn open(dir: Option<&std::path::Path>) -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        let (index, opened) = match dir {
            None => (
                Index::builder()
                    .schema(schema)
                    .settings(settings())
                    .create_in_ram()?,
                None,
            ),
            Some(dir) => match open_existing(dir, &schema) {
                Some((index, payload)) => (index, Some(payload)),
                None => {
                    match std::fs::remove_dir_all(dir) {
                        Ok(()) => {}
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                        Err(error) => return Err(io_error(error)),
                    }
                    std::fs::create_dir_all(dir).map_err(io_error)?;
                    let index = Index::builder()
                        .schema(schema)
                        .settings(settings())
                        .create_in_dir(dir)?;
                    (index, None)
                }
            },
        };
        let writer = index.writer(32 * 1024 * 1024)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            opened,
            applied: Mutex::new(None),
            indexed: std::sync::atomic::AtomicU64::new(0),
            ready: std::sync::atomic::AtomicBool::new(false),
            builds: std::sync::atomic::AtomicU64::new(0),
            building: std::sync::atomic::AtomicU64::new(0),
            pruning: std::sync::atomic::AtomicBool::new(true),
            queries: std::sync::atomic::AtomicU64::new(0),
            matched: std::sync::atomic::AtomicU64::new(0),
            scored: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// If the index opened from disk is complete and `feed` still holds every change since it
    /// was written, marks it ready and returns the number of the last change it applied:
    /// follow the feed from there ([`Search::apply`]). `None`: rebuild it.
    pub fn resume(&self, feed: &FeedState) -> Option<u64> {
        let opened = self.opened.as_ref()?;
        let cursor = opened.cursor?;
        if opened.feed.as_deref() != Some(feed.id.as_str())
            || cursor < feed.pruned_through
            || cursor > feed.head
        {
            return None;
        }
        *self.applied_lock() = Some((feed.id.clone(), cursor));
        self.indexed.store(
            self.reader.searcher().num_docs(),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        Some(cursor)
    }

    /// Removes every document (before a rebuild); searches wait for the next fill.
    pub fn clear(&self) -> Result<(), SearchError> {
        self.ready
            .store(false, std::sync::atomic::Ordering::Release);
        *self.applied_lock() = None;
        self.lock().delete_all_documents()?;
        self.commit()
    }

    /// An index of everything in `store` (see [`Search::fill`]).
    pub async fn build(store: &Store) -> Result<Arc<Self>, SearchError> {
        let search = Arc::new(Self::new()?);
        search.fill(store).await?;
        Ok(search)
    }

    /// Indexes everything in `store`: tracks with their play counts, each artist and album
    /// once with the sum of theirs, and the public playlists; then searches are served, and
    /// the index records the change feed's head as it was when the fill began (changes made
    /// meanwhile are applied again by the follower: applying one twice does no harm). The
    /// catalog is read a page at a time and each page is indexed on the blocking pool with the
    /// writer taken for that page only, so uploads indexed meanwhile do not wait for the whole
    /// catalog. Until the first fill is done, [`Search::search`] answers
    /// [`SearchError::Warming`]. Returns the feed position recorded.
    pub async fn fill(self: &Arc<Self>, store: &Store) -> Result<u64, SearchError> {
        self.builds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.building
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let filled = self.fill_now(store).await;
        self.building
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        filled
    }

    async fn fill_now(self: &Arc<Self>, store: &Store) -> Result<u64, SearchError> {
        const PAGE: usize = 10_000;
        let feed = store.coordination().feed_state().await?;
        let mut artists: HashMap<String, (String, ArtistSums, HashSet<String>)> = HashMap::new();
        let mut albums: HashMap<String, AlbumSeen> = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let tracks = store.catalog().tracks_after(after.as_deref(), PAGE).await?;
            let Some(last) = tracks.last() else {
                break;
            };
            after = Some(last.id.clone());
            let ids: Vec<String> = tracks.iter().map(|track| track.id.clone()).collect();
            let plays = store.listening().play_counts(&ids).await?;
            // Lyrics blobs are read a few at a time (an object store answers each in a round
            // trip), in track order.
            let with_lyrics: Vec<&TrackRecord> = tracks
                .iter()
                .filter(|track| track.details.lyrics.is_some())
                .collect();
            let mut lyrics = Vec::new();
            for group in with_lyrics.chunks(LYRICS_READS_AT_ONCE) {
                let read = futures_util::future::try_join_all(
                    group.iter().map(|track| lyrics_of(store, track)),
                )
                .await?;
                for (track, words) in group.iter().zip(read) {
                    if let Some(words) = words {
                        lyrics.push((track.id.clone(), words));
                    }
                }
            }
            for (track, &plays) in tracks.iter().zip(&plays) {
                let artist = artists.entry(track.artist_id.clone()).or_insert_with(|| {
                    (track.artist.clone(), ArtistSums::default(), HashSet::new())
                });
                artist.1.add(track, plays);
                if let Some(album) = &track.album_id {
                    artist.2.insert(album.clone());
                }
                if let (Some(album), Some(album_id)) = (&track.album, &track.album_id) {
                    let entry = albums.entry(album_id.clone()).or_insert_with(|| {
                        (
                            album.clone(),
                            (album_artist(track).to_string(), track.artist_id.clone()),
                            track.genre.clone(),
                            AlbumSums::default(),
                        )
                    });
                    entry.3.add(track, plays);
                    if entry.2.is_none() {
                        entry.2 = track.genre.clone();
                    }
                }
            }
            let done = tracks.len();
            let search = self.clone();
            blocking(move || {
                let writer = search.lock();
                let mut lyrics = lyrics.into_iter().peekable();
                for (track, plays) in tracks.iter().zip(plays) {
                    search.put(
                        &writer,
                        search.track_doc(track, plays),
                        &format!("track/{}", track.id),
                    )?;
                    if let Some((_, words)) = lyrics.next_if(|(with, _)| *with == track.id) {
                        search.put_lyrics(&writer, track, Some(&words), plays)?;
                    }
                }
                Ok(())
            })
            .await?;
            self.indexed
                .fetch_add(done as u64, std::sync::atomic::Ordering::Relaxed);
            if done < PAGE {
                break;
            }
        }
        let mut playlists = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .playlists()
                .playlists_after(after.as_deref(), PAGE)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id.clone());
            let full = page.len() == PAGE;
            for playlist in page.into_iter().filter(|playlist| playlist.public) {
                let owner = store.username(&playlist.owner).await?;
                playlists.push((playlist, owner));
            }
            if !full {
                break;
            }
        }
        let search = self.clone();
        blocking(move || {
            {
                let writer = search.lock();
                for (id, (name, mut sums, albums)) in artists {
                    sums.albums = albums.len() as u64;
                    let document = search.artist_doc(&id, &name, &sums);
                    search.put(&writer, document, &format!("artist/{id}"))?;
                }
                for (id, (name, artist, genre, sums)) in albums {
                    let document = search.album_doc(
                        &id,
                        &name,
                        (&artist.0, &artist.1),
                        genre.as_deref(),
                        &sums,
                    );
                    search.put(&writer, document, &format!("album/{id}"))?;
                }
                for (playlist, owner) in &playlists {
                    search.put(
                        &writer,
                        search.playlist_doc(playlist, owner.as_deref()),
                        &format!("playlist/{}", playlist.id),
                    )?;
                }
            }
            {
                let mut applied = search.applied_lock();
                // A fill over a ready index (after an import) keeps the position it follows.
                if applied.is_none() {
                    *applied = Some((feed.id.clone(), feed.head));
                }
            }
            search.commit()?;
            search
                .ready
                .store(true, std::sync::atomic::Ordering::Release);
            Ok(())
        })
        .await?;
        Ok(feed.head)
    }

    /// The index's lines of the Prometheus text exposition, with the feed's `head` when the
    /// store answered: whether it serves, how often it was built since start (0 after a
    /// resume) and how far behind the feed it is.
    pub fn render_metrics(&self, head: Option<u64>) -> String {
        let (documents, ready) = self.progress();
        let mut out = format!(
            "# HELP chorus_search_ready Whether the search index serves (1) or is being built.\n\
             # TYPE chorus_search_ready gauge\nchorus_search_ready {}\n\
             # HELP chorus_search_documents Tracks indexed (by the last build or the index opened).\n\
             # TYPE chorus_search_documents gauge\nchorus_search_documents {documents}\n\
             # HELP chorus_search_builds_total Full builds of the search index since this origin started.\n\
             # TYPE chorus_search_builds_total counter\nchorus_search_builds_total {}\n\
             # HELP chorus_search_building Whether a full build of the search index runs now.\n\
             # TYPE chorus_search_building gauge\nchorus_search_building {}\n\
             # HELP chorus_search_queries_total Index queries run (a search runs one, or two when it tries typos).\n\
             # TYPE chorus_search_queries_total counter\nchorus_search_queries_total {}\n\
             # HELP chorus_search_matched_documents_total Documents those queries matched.\n\
             # TYPE chorus_search_matched_documents_total counter\nchorus_search_matched_documents_total {}\n\
             # HELP chorus_search_scored_documents_total Documents scored to rank them (the rest could not reach the page).\n\
             # TYPE chorus_search_scored_documents_total counter\nchorus_search_scored_documents_total {}\n",
            u8::from(ready),
            self.builds.load(std::sync::atomic::Ordering::Relaxed),
            u8::from(self.building.load(std::sync::atomic::Ordering::Relaxed) > 0),
            self.queries.load(std::sync::atomic::Ordering::Relaxed),
            self.matched.load(std::sync::atomic::Ordering::Relaxed),
            self.scored.load(std::sync::atomic::Ordering::Relaxed),
        );
        if let (Some(head), Some(cursor)) = (head, self.cursor()) {
            out.push_str(&format!(
                "# HELP chorus_search_feed_lag Changes of the feed not yet applied to the index.\n\
                 # TYPE chorus_search_feed_lag gauge\nchorus_search_feed_lag {}\n",
                head.saturating_sub(cursor)
            ));
        }
        out
    }

    /// Turns early stopping off (every match scored by tantivy's collectors, as before the
    /// index was kept in popularity order) or back on. The pages score the same either way
    /// (documents tied with a page's last hit may differ); `chorus bench search` measures
    /// both in one run.
    pub fn set_pruning(&self, on: bool) {
        self.pruning.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The number of the last change of the feed applied here (once indexed).
    pub fn cursor(&self) -> Option<u64> {
        self.applied_lock().as_ref().map(|(_, cursor)| *cursor)
    }

    /// Applies `changes` (in feed order, after [`Search::cursor`]): each track, playlist or
    /// play count named is read from `store` as it is now and its documents replaced (or
    /// removed when it is gone), then the index commits with the last change's number. Returns
    /// whether one of them was an import not covered by a fill already (numbered after
    /// `filled_through`, the feed head a finished [`Search::fill`] started from), after which
    /// the caller fills the index again: a bulk import of many pages costs one or two fills,
    /// not one per page.
    pub async fn apply(
        self: &Arc<Self>,
        store: &Store,
        changes: &[Change],
        filled_through: u64,
    ) -> Result<bool, SearchError> {
        let Some(last) = changes.last() else {
            return Ok(false);
        };
        let mut import = false;
        let mut seen = HashSet::new();
        let mut updates = Vec::new();
        for change in changes {
            // A track's change and its play-count move re-index the same documents: once.
            let kind = match change.kind {
                ChangeKind::Plays => ChangeKind::Track,
                kind => kind,
            };
            if !seen.insert((kind, change.id.as_str())) {
                continue;
            }
            match change.kind {
                ChangeKind::Import => import |= change.seq > filled_through,
                ChangeKind::Account => {}
                ChangeKind::Track | ChangeKind::Plays => {
                    match store.catalog().track(&change.id).await? {
                        Some(track) => {
                            let popularity = Popularity::of(store, &track).await?;
                            let lyrics = lyrics_of(store, &track).await?;
                            updates.push(Update::Track(Box::new(track), lyrics, popularity));
                        }
                        None => {
                            let Some((artist_id, album_id)) = self.track_owners(&change.id)? else {
                                continue;
                            };
                            let catalog = store.catalog();
                            let artist_gone =
                                catalog.artist_tracks(&artist_id, 0, 1).await?.is_empty();
                            let album_gone = match &album_id {
                                Some(album) => catalog.album_tracks(album, 0, 1).await?.is_empty(),
                                None => false,
                            };
                            for survivor in
                                survivors(store, &artist_id, album_id.as_deref()).await?
                            {
                                let popularity = Popularity::of(store, &survivor).await?;
                                updates.push(Update::Regroup(Box::new(survivor), popularity));
                            }
                            updates.push(Update::TrackGone {
                                id: change.id.clone(),
                                artist_id: artist_gone.then_some(artist_id),
                                album_id: album_id.filter(|_| album_gone),
                            });
                        }
                    }
                }
                ChangeKind::Playlist => match store.playlists().playlist(&change.id).await? {
                    Some(playlist) if playlist.public => {
                        let owner = store.username(&playlist.owner).await?;
                        updates.push(Update::Playlist(playlist, owner));
                    }
                    _ => updates.push(Update::PlaylistGone(change.id.clone())),
                },
            }
        }
        let search = self.clone();
        let cursor = last.seq;
        blocking(move || {
            {
                let writer = search.lock();
                let f = search.fields;
                for update in &updates {
                    match update {
                        Update::Track(track, lyrics, popularity) => {
                            search.add(&writer, track, lyrics.as_ref(), popularity)?
                        }
                        Update::Regroup(track, popularity) => {
                            search.put_groups(&writer, track, popularity)?
                        }
                        Update::TrackGone {
                            id,
                            artist_id,
                            album_id,
                        } => {
                            writer
                                .delete_term(Term::from_field_text(f.key, &format!("track/{id}")));
                            writer
                                .delete_term(Term::from_field_text(f.key, &format!("lyrics/{id}")));
                            if let Some(artist) = artist_id {
                                writer.delete_term(Term::from_field_text(
                                    f.key,
                                    &format!("artist/{artist}"),
                                ));
                            }
                            if let Some(album) = album_id {
                                writer.delete_term(Term::from_field_text(
                                    f.key,
                                    &format!("album/{album}"),
                                ));
                            }
                        }
                        Update::Playlist(playlist, owner) => search.put(
                            &writer,
                            search.playlist_doc(playlist, owner.as_deref()),
                            &format!("playlist/{}", playlist.id),
                        )?,
                        Update::PlaylistGone(id) => {
                            writer.delete_term(Term::from_field_text(
                                f.key,
                                &format!("playlist/{id}"),
                            ));
                        }
                    }
                }
                if let Some((_, applied)) = search.applied_lock().as_mut() {
                    *applied = (*applied).max(cursor);
                }
            }
            search.commit()
        })
        .await?;
        Ok(import)
    }

    /// The artist and album ids stored with track `id`'s document, if it is indexed.
    fn track_owners(&self, id: &str) -> Result<Option<(String, Option<String>)>, SearchError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(f.key, &format!("track/{id}")),
            IndexRecordOption::Basic,
        );
        let Some((_, address)) = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())?
            .pop()
        else {
            return Ok(None);
        };
        let document: TantivyDocument = searcher.doc(address)?;
        let text = |field: Field| {
            document
                .get_first(field)
                .and_then(|value| value.as_str().map(str::to_string))
                .filter(|text| !text.is_empty())
        };
        Ok(text(f.artist_id).map(|artist| (artist, text(f.album_id))))
    }

    /// Tracks indexed so far by [`Search::fill`], and whether searches are served.
    pub fn progress(&self) -> (u64, bool) {
        (
            self.indexed.load(std::sync::atomic::Ordering::Relaxed),
            self.ready.load(std::sync::atomic::Ordering::Acquire),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IndexWriter> {
        self.writer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn applied_lock(&self) -> std::sync::MutexGuard<'_, Option<(String, u64)>> {
        self.applied
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Commits, recording the feed position applied (none until the catalog is indexed).
    fn commit(&self) -> Result<(), SearchError> {
        let payload = {
            let applied = self.applied_lock();
            serde_json::to_string(&Payload {
                schema: INDEX_SCHEMA,
                feed: applied.as_ref().map(|(feed, _)| feed.clone()),
                cursor: applied.as_ref().map(|(_, cursor)| *cursor),
            })
            .unwrap_or_default()
        };
        let mut writer = self.lock();
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        drop(writer);
        // Searches right after see it (the reload policy would within a second anyway).
        self.reader.reload()?;
        Ok(())
    }

    fn track_doc(&self, track: &TrackRecord, plays: u64) -> TantivyDocument {
        let f = self.fields;
        let mut document = doc!(
            f.kind => "track",
            f.id => track.id.as_str(),
            f.name => track.title.as_str(),
            f.artist => track.artist.as_str(),
            f.album => track.album.clone().unwrap_or_default(),
            f.artist_id => track.artist_id.as_str(),
            f.album_id => track.album_id.clone().unwrap_or_default(),
            f.popularity => plays,
            f.sort_name => sort_key(&track.title),
            f.sort_artist => sort_key(&track.artist),
            f.added => track.created_at_ms,
            f.year => u64::from(track.details.year.unwrap_or(0)),
            f.order => stable_order(&track.id),
            f.count => 0u64,
            f.extra => track.duration_ms,
        );
        if let Some(genre) = &track.genre {
            document.add_text(f.genre, genre);
        }
        document
    }

    /// An album's document: `sums` from its tracks.
    fn album_doc(
        &self,
        id: &str,
        name: &str,
        (artist, artist_id): (&str, &str),
        genre: Option<&str>,
        sums: &AlbumSums,
    ) -> TantivyDocument {
        let f = self.fields;
        let mut document = doc!(
            f.kind => "album",
            f.id => id,
            f.name => name,
            f.artist => artist,
            f.artist_id => artist_id,
            f.popularity => sums.plays,
            f.sort_name => sort_key(name),
            f.sort_artist => sort_key(artist),
            f.added => sums.added_ms,
            f.year => u64::from(sums.year),
            f.order => stable_order(id),
            f.count => sums.tracks,
            f.extra => sums.duration_ms,
        );
        if let Some(genre) = genre {
            document.add_text(f.genre, genre);
        }
        document
    }

    /// An artist's document: `sums` from their tracks.
    fn artist_doc(&self, id: &str, name: &str, sums: &ArtistSums) -> TantivyDocument {
        let f = self.fields;
        doc!(
            f.kind => "artist",
            f.id => id,
            f.name => name,
            f.popularity => sums.plays,
            f.sort_name => sort_key(name),
            f.sort_artist => sort_key(name),
            f.added => sums.added_ms,
            f.year => 0u64,
            f.order => stable_order(id),
            f.count => sums.albums,
            f.extra => sums.tracks,
        )
    }

    /// Indexes `track`'s lyrics as a `lyrics` document (its title and artist, matched by the
    /// words sung), or removes that document when the track has none.
    fn put_lyrics(
        &self,
        writer: &IndexWriter,
        track: &TrackRecord,
        lyrics: Option<&Lyrics>,
        plays: u64,
    ) -> Result<(), SearchError> {
        let f = self.fields;
        let key = format!("lyrics/{}", track.id);
        let Some(lyrics) = lyrics else {
            writer.delete_term(Term::from_field_text(f.key, &key));
            return Ok(());
        };
        let document = doc!(
            f.kind => "lyrics",
            f.id => track.id.as_str(),
            f.name => track.title.as_str(),
            f.artist => track.artist.as_str(),
            f.artist_id => track.artist_id.as_str(),
            f.album_id => track.album_id.clone().unwrap_or_default(),
            f.popularity => plays,
        );
        let words = lyrics.text();
        self.put_words(
            writer,
            document,
            &key,
            format!("{} {} {words}", track.title, track.artist),
            &format!("{} {words}", track.title),
        )
    }

    fn playlist_doc(&self, playlist: &PlaylistRecord, owner: Option<&str>) -> TantivyDocument {
        let f = self.fields;
        doc!(
            f.kind => "playlist",
            f.id => playlist.id.as_str(),
            f.name => playlist.name.as_str(),
            f.artist => owner.unwrap_or_default(),
            f.album => playlist.description.as_str(),
            f.popularity => 0u64,
        )
    }

    /// Replaces the document under `key`: its words are its name, artist and album, its
    /// prefixes those of its name and artist.
    fn put(
        &self,
        writer: &IndexWriter,
        document: TantivyDocument,
        key: &str,
    ) -> Result<(), SearchError> {
        let f = self.fields;
        let text_of = |field: Field| -> String {
            document
                .get_first(field)
                .and_then(|value| value.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let (name, artist, album) = (text_of(f.name), text_of(f.artist), text_of(f.album));
        self.put_words(
            writer,
            document,
            key,
            format!("{name} {artist} {album}"),
            &format!("{name} {artist}"),
        )
    }

    /// Replaces the document under `key`, matched by the words of `text` and the prefixes
    /// of the (distinct) words of `prefixed`.
    fn put_words(
        &self,
        writer: &IndexWriter,
        mut document: TantivyDocument,
        key: &str,
        text: String,
        prefixed: &str,
    ) -> Result<(), SearchError> {
        let f = self.fields;
        let mut prefixes = String::new();
        let mut seen = HashSet::new();
        for word in self.words(prefixed)? {
            if !seen.insert(word.clone()) {
                continue;
            }
            let chars: Vec<char> = word.chars().collect();
            for end in 2..=chars.len().min(PREFIX_CHARS_MAX) {
                prefixes.extend(&chars[..end]);
                prefixes.push(' ');
            }
        }
        document.add_text(f.text, text);
        document.add_text(f.prefixes, prefixes);
        writer.delete_term(Term::from_field_text(f.key, key));
        document.add_text(f.key, key);
        writer.add_document(document)?;
        Ok(())
    }

    /// Adds (or replaces) the documents of `track`: the track, its artist, its album, with
    /// their play counts.
    fn add(
        &self,
        writer: &IndexWriter,
        track: &TrackRecord,
        lyrics: Option<&Lyrics>,
        popularity: &Popularity,
    ) -> Result<(), SearchError> {
        self.put(
            writer,
            self.track_doc(track, popularity.track),
            &format!("track/{}", track.id),
        )?;
        self.put_lyrics(writer, track, lyrics, popularity.track)?;
        self.put_groups(writer, track, popularity)
    }

    /// Replaces the documents of `track`'s artist and album, with `popularity`'s counts.
    fn put_groups(
        &self,
        writer: &IndexWriter,
        track: &TrackRecord,
        popularity: &Popularity,
    ) -> Result<(), SearchError> {
        let mut artist_sums = popularity.artist_sums;
        artist_sums.plays = popularity.artist;
        let artist = self.artist_doc(&track.artist_id, &track.artist, &artist_sums);
        self.put(writer, artist, &format!("artist/{}", track.artist_id))?;
        if let (Some(album), Some(album_id)) = (&track.album, &track.album_id) {
            let mut album_sums = popularity.album_sums;
            album_sums.plays = popularity.album;
            let album = self.album_doc(
                album_id,
                album,
                (album_artist(track), &track.artist_id),
                track.genre.as_deref(),
                &album_sums,
            );
            self.put(writer, album, &format!("album/{album_id}"))?;
        }
        Ok(())
    }

    /// Indexes a playlist if it is public, removes it if not (after create, change, or
    /// the owner's rename).
    pub fn playlist_changed(
        &self,
        playlist: &PlaylistRecord,
        owner: Option<&str>,
    ) -> Result<(), SearchError> {
        {
            let writer = self.lock();
            let key = format!("playlist/{}", playlist.id);
            if playlist.public {
                self.put(&writer, self.playlist_doc(playlist, owner), &key)?;
            } else {
                writer.delete_term(Term::from_field_text(self.fields.key, &key));
            }
        }
        self.commit()
    }

    /// Makes a newly published `track` searchable, with its `popularity` (blocking: the
    /// index commits to disk).
    pub fn track_published(
        &self,
        track: &TrackRecord,
        lyrics: Option<&Lyrics>,
        popularity: &Popularity,
    ) -> Result<(), SearchError> {
        {
            let writer = self.lock();
            self.add(&writer, track, lyrics, popularity)?;
        }
        self.commit()
    }

    /// Removes a deleted `track`; its artist and album go too when they have no other track
    /// (`artist_gone`, `album_gone`: what the store says now). Blocking.
    pub fn track_deleted(
        &self,
        track: &TrackRecord,
        artist_gone: bool,
        album_gone: bool,
    ) -> Result<(), SearchError> {
        let f = self.fields;
        {
            let writer = self.lock();
            writer.delete_term(Term::from_field_text(f.key, &format!("track/{}", track.id)));
            writer.delete_term(Term::from_field_text(
                f.key,
                &format!("lyrics/{}", track.id),
            ));
            if artist_gone {
                writer.delete_term(Term::from_field_text(
                    f.key,
                    &format!("artist/{}", track.artist_id),
                ));
            }
            if let Some(album_id) = &track.album_id
                && album_gone
            {
                writer.delete_term(Term::from_field_text(f.key, &format!("album/{album_id}")));
            }
        }
        self.commit()
    }

    /// Re-indexes the artist and album of each surviving track with the store's counts (after
    /// a delete left them with fewer tracks). Blocking.
    pub fn regroup(&self, survivors: &[(TrackRecord, Popularity)]) -> Result<(), SearchError> {
        if survivors.is_empty() {
            return Ok(());
        }
        {
            let writer = self.lock();
            for (track, popularity) in survivors {
                self.put_groups(&writer, track, popularity)?;
            }
        }
        self.commit()
    }

    /// The words of `text` as the index tokenizes them.
    fn words(&self, text: &str) -> Result<Vec<String>, SearchError> {
        let mut analyzer = self.index.tokenizer_for_field(self.fields.name)?;
        let mut stream = analyzer.token_stream(text);
        let mut words = Vec::new();
        while stream.advance() {
            words.push(stream.token().text.clone());
        }
        Ok(words)
    }

    /// Searches `text` among `kinds` (all when empty); returns the total number of matches
    /// and the hits from `offset`, at most `limit`.
    pub fn search(
        &self,
        text: &str,
        kinds: &[Kind],
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<Hit>), SearchError> {
        let (indexed, ready) = self.progress();
        if !ready {
            return Err(SearchError::Warming(indexed));
        }
        if text.is_empty() {
            return Err(SearchError::BadQuery("the query is empty".into()));
        }
        if text.chars().count() > QUERY_CHARS_MAX {
            return Err(SearchError::BadQuery(format!(
                "queries are at most {QUERY_CHARS_MAX} characters"
            )));
        }
        let mut words = self.words(text)?;
        // Punctuation alone finds nothing; past the first words, the rest add nothing a
        // listener would miss.
        if words.is_empty() {
            return Ok((0, Vec::new()));
        }
        words.truncate(QUERY_WORDS_MAX);
        let limit = limit.clamp(1, PAGE_MAX);
        let offset = offset.min(OFFSET_MAX);
        // Exact words (and the prefix being typed) first; only when they do not fill the page
        // are typos considered, and only for words the catalog does not have: most words are
        // spelled right, and fuzzy expansion is the expensive part. (A typo that makes
        // another real word is the price.)
        let kinds = if kinds.is_empty() {
            &Kind::DEFAULT[..]
        } else {
            kinds
        };
        let none = vec![false; words.len()];
        let exact = self.run(&self.query(&words, kinds, &none), limit, offset)?;
        if exact.0 >= offset + limit {
            return Ok(exact);
        }
        let searcher = self.reader.searcher();
        let last = words.len() - 1;
        let mut unknown = Vec::with_capacity(words.len());
        for (at, word) in words.iter().enumerate() {
            let known = searcher.doc_freq(&Term::from_field_text(self.fields.text, word))? > 0
                || (at == last
                    && searcher.doc_freq(&Term::from_field_text(self.fields.prefixes, word))? > 0);
            unknown.push(!known);
        }
        if !unknown.contains(&true) {
            return Ok(exact);
        }
        self.run(&self.query(&words, kinds, &unknown), limit, offset)
    }

    /// Every word must match (exactly, as the prefix being typed, or where `fuzzy` says so,
    /// within its edit distance); words in the name add to the score.
    fn query(&self, words: &[String], kinds: &[Kind], fuzzy: &[bool]) -> Plan {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let last = words.len() - 1;
        let mut scored: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut matching: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut parts = Vec::new();
        for (at, word) in words.iter().enumerate() {
            let mut options: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            let term = Term::from_field_text(f.text, word);
            options.push((
                Occur::Should,
                Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
            ));
            parts.push(Part::Term(term.clone(), IndexRecordOption::WithFreqs, 1.0));
            let edits = distance(word.chars().count());
            if fuzzy[at] && edits > 0 {
                // A fuzzy match scores its boost, whatever the term it matched.
                let typo = FuzzyTermQuery::new(term, edits, true);
                options.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(typo), FUZZY_SCORE)),
                ));
                parts.push(Part::Constant(FUZZY_SCORE));
            }
            let chars = word.chars().count();
            if at == last && (2..=PREFIX_CHARS_MAX).contains(&chars) {
                // Type-ahead: the word being typed is a prefix. Every document it prefixes
                // scores the same (what BM25 would give it at an average length): the length
                // of a list of prefixes says nothing about relevance.
                let prefix = Term::from_field_text(f.prefixes, word);
                let score = PREFIX_WEIGHT * idf(&searcher, &prefix);
                options.push((
                    Occur::Should,
                    Box::new(ConstScoreQuery::new(
                        Box::new(TermQuery::new(prefix, IndexRecordOption::Basic)),
                        score,
                    )),
                ));
                parts.push(Part::Constant(score));
            }
            let options = BooleanQuery::new(options);
            matching.push((Occur::Must, Box::new(options.clone())));
            scored.push((Occur::Must, Box::new(options) as Box<dyn Query>));
            let name = Term::from_field_text(f.name, word);
            scored.push((
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(TermQuery::new(name.clone(), IndexRecordOption::WithFreqs)),
                    NAME_WEIGHT,
                )),
            ));
            parts.push(Part::Term(name, IndexRecordOption::WithFreqs, NAME_WEIGHT));
        }
        if !kinds.is_empty() {
            let allowed: Vec<(Occur, Box<dyn Query>)> = kinds
                .iter()
                .map(|kind| {
                    let term = Term::from_field_text(f.kind, kind.as_str());
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(term, IndexRecordOption::Basic)) as Box<dyn Query>,
                    )
                })
                .collect();
            // A filter: which kinds are asked for does not change the order.
            let allowed: Box<dyn Query> = Box::new(ConstScoreQuery::new(
                Box::new(BooleanQuery::new(allowed)),
                0.0,
            ));
            matching.push((Occur::Must, allowed.box_clone()));
            scored.push((Occur::Must, allowed));
        }
        Plan {
            scored: BooleanQuery::new(scored),
            matching: BooleanQuery::new(matching),
            parts,
        }
    }

    /// Runs `plan`: the total number of matches and the page from `offset`.
    ///
    /// A document scores its text relevance times its popularity boost, and every segment
    /// holds its documents in falling popularity. So once the page is full, a segment is left
    /// as soon as no document further on could beat the page's last hit: the most each term
    /// can still add (from its posting list's block maxima, with a margin) plus the constant
    /// parts, times the boost of the document at hand, which no later one exceeds. A short
    /// prefix of a common word matches a third of a million-track catalog; this way only its
    /// most popular few thousand are scored. The total is then counted without scoring.
    fn run(
        &self,
        plan: &Plan,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<Hit>), SearchError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let page = self.top(&searcher, plan, limit, offset)?;
        use std::sync::atomic::Ordering::Relaxed;
        self.queries.fetch_add(1, Relaxed);
        self.matched.fetch_add(page.total as u64, Relaxed);
        self.scored.fetch_add(page.scored as u64, Relaxed);
        let mut hits = Vec::with_capacity(page.hits.len());
        for (score, address) in page.hits {
            let document: TantivyDocument = searcher.doc(address)?;
            let text = |field: Field| {
                document
                    .get_first(field)
                    .and_then(|value| value.as_str().map(str::to_string))
            };
            hits.push(Hit {
                kind: text(f.kind).unwrap_or_default(),
                id: text(f.id).unwrap_or_default(),
                name: text(f.name).unwrap_or_default(),
                artist: text(f.artist).filter(|artist| !artist.is_empty()),
                score,
            });
        }
        Ok((page.total, hits))
    }

    /// The page of [`Search::run`], unread.
    fn top(
        &self,
        searcher: &Searcher,
        plan: &Plan,
        limit: usize,
        offset: usize,
    ) -> Result<Page, SearchError> {
        if !self.pruning.load(std::sync::atomic::Ordering::Relaxed) {
            return exhaustive(searcher, plan, limit, offset);
        }
        let weight = plan
            .scored
            .weight(EnableScoring::enabled_from_searcher(searcher))?;
        let sorted = self.index.settings().sort_by_field == settings().sort_by_field;
        let wanted = offset + limit;
        // The page so far, worst first: lower score, then later address (tantivy's order).
        let mut page: std::collections::BinaryHeap<Ranked> = std::collections::BinaryHeap::new();
        let (mut total, mut stopped) = (0usize, false);
        let mut scored = 0usize;
        for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
            let mut scorer = weight.scorer(segment, 1.0)?;
            let popularity = segment
                .fast_fields()
                .u64("popularity")
                .map(|column| column.first_or_default_col(0))
                .ok();
            let alive = segment.alive_bitset();
            let keep =
                |score: Score, doc: DocId, page: &mut std::collections::BinaryHeap<Ranked>| {
                    let ranked = Ranked {
                        score,
                        address: DocAddress::new(ordinal as u32, doc),
                    };
                    if page.len() < wanted {
                        page.push(ranked);
                    } else if page.peek().is_some_and(|worst| ranked < *worst) {
                        page.pop();
                        page.push(ranked);
                    }
                };
            // The bound reads the common terms' postings whole, so it is made only once the
            // scoring it may save is worth that (at once for a prefix alone: it reads nothing).
            // It leaves rare terms out: a whole word typed, found in a few documents far down
            // the order, would hold it up to its last one. Their documents past the point
            // where the bound stops the scan are scored one by one instead.
            let (mut rare, common, cost) = split_terms(segment, &plan.parts)?;
            let mut bound: Option<Bound> = None;
            let mut here = 0u64;
            let mut doc = scorer.doc();
            while doc != TERMINATED {
                if alive.is_none_or(|alive| alive.is_alive(doc)) {
                    let plays = popularity.as_ref().map_or(0, |column| column.get_val(doc));
                    let boost = boost(plays);
                    if sorted && page.len() == wanted {
                        if bound.is_none() && cost <= here * BOUND_COST_RATIO {
                            bound = Some(Bound::new(searcher, segment, &common)?);
                        }
                        if let (Some(bound), Some(worst)) = (bound.as_mut(), page.peek())
                            && worst.score >= bound.at(doc) * boost
                        {
                            let later = rare_docs(segment, &rare, doc)?;
                            if later.len() > PROBES_MAX {
                                // Seeking to each would cost more than the scan they save
                                // (an intersection already visits few documents): the bound
                                // takes the rare terms in too (their postings are short), and
                                // the scan goes on.
                                let every: Vec<&Part> = plan.parts.iter().collect();
                                let mut whole = Bound::new(searcher, segment, &every)?;
                                whole.at(doc);
                                *bound = whole;
                                rare.clear();
                            } else {
                                for later in later {
                                    if scorer.doc() < later {
                                        scorer.seek(later);
                                    }
                                    if scorer.doc() == later
                                        && alive.is_none_or(|alive| alive.is_alive(later))
                                    {
                                        let plays = popularity
                                            .as_ref()
                                            .map_or(0, |column| column.get_val(later));
                                        scored += 1;
                                        let score = scorer.score() * self::boost(plays);
                                        keep(score, later, &mut page);
                                    }
                                }
                                stopped = true;
                                break;
                            }
                        }
                    }
                    total += 1;
                    scored += 1;
                    here += 1;
                    keep(scorer.score() * boost, doc, &mut page);
                }
                doc = scorer.advance();
            }
        }
        if stopped {
            total = searcher.search(&plan.matching, &Count)?;
        }
        let mut top = page.into_sorted_vec();
        top.drain(..offset.min(top.len()));
        Ok(Page {
            total,
            hits: top
                .into_iter()
                .map(|ranked| (ranked.score, ranked.address))
                .collect(),
            scored,
        })
    }
}

/// [`Search::top`] without stopping early: every match scored by tantivy's collectors.
fn exhaustive(
    searcher: &Searcher,
    plan: &Plan,
    limit: usize,
    offset: usize,
) -> Result<Page, SearchError> {
    let (top, total) = searcher.search(
        &plan.scored,
        &(
            TopDocs::with_limit(limit).and_offset(offset).tweak_score(
                move |segment: &SegmentReader| {
                    let popularity = segment
                        .fast_fields()
                        .u64("popularity")
                        .map(|column| column.first_or_default_col(0))
                        .ok();
                    move |doc: DocId, score: Score| {
                        let plays = popularity.as_ref().map_or(0, |column| column.get_val(doc));
                        score * boost(plays)
                    }
                },
            ),
            Count,
        ),
    )?;
    Ok(Page {
        total,
        hits: top,
        scored: total,
    })
}

/// A page of hits, before their documents are read.
struct Page {
    /// Documents matching.
    total: usize,
    hits: Vec<(Score, DocAddress)>,
    /// Documents scored to find the page.
    scored: usize,
}

/// What a fuzzy match of a word scores.
const FUZZY_SCORE: Score = 0.5;
/// The weight of the typed prefix's score, against an exact word's.
const PREFIX_WEIGHT: Score = 0.3;
/// The weight of a word found in the name, on top of its match in the text.
const NAME_WEIGHT: Score = 2.0;

/// BM25's inverse document frequency of `term` in `searcher` (tantivy's formula).
fn idf(searcher: &Searcher, term: &Term) -> Score {
    let docs = searcher.num_docs();
    let with = searcher.doc_freq(term).unwrap_or(0).min(docs);
    (1.0 + ((docs - with) as Score + 0.5) / (with as Score + 0.5)).ln()
}

/// A query, what decides which documents match, and the parts of its score.
struct Plan {
    scored: BooleanQuery,
    /// The same matches, with nothing optional: what the total counts.
    matching: BooleanQuery,
    parts: Vec<Part>,
}

/// Something a matching document's score may add.
enum Part {
    /// A term's BM25 score times a weight.
    Term(Term, IndexRecordOption, Score),
    /// A constant.
    Constant(Score),
}

/// Within one segment: the most a document from a given one on can score, before its
/// popularity boost.
struct Bound {
    constant: Score,
    /// Per term: (last document of a block of its postings, the most it adds to any document
    /// from that block to the end), and the block reached.
    terms: Vec<(Vec<(DocId, Score)>, usize)>,
}

/// Terms with at most this many documents in a segment are rare there.
#[cfg(not(test))]
const RARE_DOCS_MAX: u32 = 2_048;
/// Small in tests, so that their small catalogs have both kinds of terms.
#[cfg(test)]
const RARE_DOCS_MAX: u32 = 16;

/// Splits the scored parts in `segment`: its rare terms, the other parts, and the postings
/// of the common terms (what a [`Bound`] reads).
fn split_terms<'a>(
    segment: &SegmentReader,
    parts: &'a [Part],
) -> Result<(Vec<&'a Term>, Vec<&'a Part>, u64), SearchError> {
    let (mut rare, mut common, mut cost) = (Vec::new(), Vec::new(), 0u64);
    for part in parts {
        let Part::Term(term, _, _) = part else {
            common.push(part);
            continue;
        };
        let docs = segment
            .inverted_index(term.field())?
            .doc_freq(term)
            .map_err(io_error)?;
        if docs > RARE_DOCS_MAX {
            cost += u64::from(docs);
            common.push(part);
        } else if docs > 0 {
            rare.push(term);
        }
    }
    Ok((rare, common, cost))
}

/// The documents of the `rare` terms in `segment` from `from` on, ascending.
fn rare_docs(
    segment: &SegmentReader,
    rare: &[&Term],
    from: DocId,
) -> Result<Vec<DocId>, SearchError> {
    let mut docs = Vec::new();
    for term in rare {
        let postings = segment
            .inverted_index(term.field())?
            .read_postings(term, IndexRecordOption::Basic)
            .map_err(io_error)?;
        if let Some(mut postings) = postings {
            let mut doc = if postings.doc() < from {
                postings.seek(from)
            } else {
                postings.doc()
            };
            while doc != TERMINATED {
                docs.push(doc);
                doc = postings.advance();
            }
        }
    }
    docs.sort_unstable();
    docs.dedup();
    Ok(docs)
}

/// Rare terms' documents past the stopping point scored one by one at most; with more, the
/// bound takes the rare terms in and the scan goes on.
#[cfg(not(test))]
const PROBES_MAX: usize = 256;
/// Small in tests, so that they take both ways.
#[cfg(test)]
const PROBES_MAX: usize = 8;

/// Postings read to make a [`Bound`] against documents scored (scoring one costs tens of
/// times more than reading a posting).
const BOUND_COST_RATIO: u64 = 64;

impl Bound {
    /// Reads every term's postings in `segment` once, scoring each document as the query does.
    fn new(
        searcher: &Searcher,
        segment: &SegmentReader,
        parts: &[&Part],
    ) -> Result<Self, SearchError> {
        let mut bound = Bound {
            constant: 0.0,
            terms: Vec::new(),
        };
        for part in parts {
            let (term, record, weight) = match part {
                Part::Constant(score) => {
                    bound.constant += score;
                    continue;
                }
                Part::Term(term, record, weight) => (term, *record, *weight),
            };
            let Some(mut postings) = segment
                .inverted_index(term.field())?
                .read_block_postings(term, record)
                .map_err(io_error)?
            else {
                continue;
            };
            let bm25 = tantivy::query::Bm25Weight::for_terms(searcher, std::slice::from_ref(term))?
                .boost_by(weight);
            let norms = segment.get_fieldnorms_reader(term.field())?;
            let mut blocks = Vec::new();
            while let Some(&last) = postings.docs().last() {
                let most = postings
                    .docs()
                    .iter()
                    .zip(postings.freqs())
                    .map(|(&doc, &freq)| bm25.score(norms.fieldnorm_id(doc), freq.max(1)))
                    .fold(0.0, Score::max);
                blocks.push((last, most));
                postings.advance();
            }
            let mut most: Score = 0.0;
            for block in blocks.iter_mut().rev() {
                most = most.max(block.1);
                block.1 = most;
            }
            bound.terms.push((blocks, 0));
        }
        Ok(bound)
    }

    /// The most a document from `doc` on scores before its boost; `doc` never decreases
    /// from one call to the next.
    fn at(&mut self, doc: DocId) -> Score {
        let mut most = self.constant;
        for (blocks, at) in &mut self.terms {
            while *at < blocks.len() && blocks[*at].0 < doc {
                *at += 1;
            }
            most += blocks.get(*at).map_or(0.0, |block| block.1);
        }
        // Sums taken in another order may round differently.
        most * (1.0 + 1e-4)
    }
}

/// A hit kept for the page: ordered worst first (lower score, then later address).
#[derive(Debug, Clone, Copy)]
struct Ranked {
    score: Score,
    address: DocAddress,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| self.address.cmp(&other.address))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked {}

/// How a listing ([`Search::browse`]) is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// By name (folded: [`sort_key`]).
    Name,
    /// By artist, then as the index holds them.
    Artist,
    /// Newest first (albums and artists: their newest track).
    Added,
    /// Most played first.
    Popular,
    /// By year, oldest first.
    YearUp,
    /// By year, newest first.
    YearDown,
    /// Shuffled by a seed: the same seed pages through one order.
    Random(u64),
    /// A fixed order that survives merges and restarts (by id): for paging through
    /// everything, as a client syncing its library does.
    Stable,
}

/// What a listing keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this genre (exactly as tagged).
    pub genre: Option<String>,
    /// Only these years, inclusive (either order).
    pub years: Option<(u16, u16)>,
}

/// One item of a listing as the index holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub id: String,
    /// Title or name.
    pub name: String,
    /// The artist (tracks, albums).
    pub artist: String,
    /// The artist's id (tracks).
    pub artist_id: String,
    /// The album's id (tracks).
    pub album_id: String,
    /// Genre, if tagged.
    pub genre: Option<String>,
    /// Year (0: none).
    pub year: u16,
    /// When it (or its newest track) was added, Unix ms.
    pub added_ms: u64,
    /// An album's tracks; an artist's albums.
    pub count: u64,
    /// A track's or album's duration, ms; an artist's tracks.
    pub extra: u64,
    /// Qualified streams.
    pub plays: u64,
}

/// Most items in one page of a listing.
pub const BROWSE_PAGE_MAX: usize = 500;
/// Deepest offset of a listing.
pub const BROWSE_OFFSET_MAX: usize = 1_000_000;

impl Search {
    /// A page of everything of `kind` that `filter` keeps, in `sort` order: the total and the
    /// items from `offset`, at most `limit` ([`BROWSE_PAGE_MAX`]).
    pub fn browse(
        &self,
        kind: Kind,
        filter: &Filter,
        sort: Sort,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<Entry>), SearchError> {
        use tantivy::collector::DocSetCollector;
        let (indexed, ready) = self.progress();
        if !ready {
            return Err(SearchError::Warming(indexed));
        }
        let f = self.fields;
        let mut parts: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Must,
            Box::new(TermQuery::new(
                Term::from_field_text(f.kind, kind.as_str()),
                IndexRecordOption::Basic,
            )),
        )];
        if let Some(genre) = &filter.genre {
            parts.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.genre, genre),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some((from, to)) = filter.years {
            let (low, high) = (from.min(to), from.max(to));
            parts.push((
                Occur::Must,
                Box::new(tantivy::query::RangeQuery::new(
                    std::ops::Bound::Included(Term::from_field_u64(f.year, u64::from(low))),
                    std::ops::Bound::Included(Term::from_field_u64(f.year, u64::from(high))),
                )),
            ));
        }
        let query = BooleanQuery::new(parts);
        let limit = limit.clamp(1, BROWSE_PAGE_MAX);
        let offset = offset.min(BROWSE_OFFSET_MAX);
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(limit).and_offset(offset);
        fn addresses<K>(found: Vec<(K, DocAddress)>) -> Vec<DocAddress> {
            found.into_iter().map(|(_, address)| address).collect()
        }
        let (total, page): (usize, Vec<DocAddress>) = match sort {
            Sort::Name | Sort::Artist => {
                let field = if sort == Sort::Name {
                    "sort_name"
                } else {
                    "sort_artist"
                };
                let (total, found) = searcher.search(
                    &query,
                    &(Count, top.order_by_string_fast_field(field, Order::Asc)),
                )?;
                (total, addresses(found))
            }
            Sort::Added | Sort::Popular | Sort::YearUp | Sort::YearDown | Sort::Stable => {
                let (field, order) = match sort {
                    Sort::Added => ("added", Order::Desc),
                    Sort::Popular => ("popularity", Order::Desc),
                    Sort::YearUp => ("year", Order::Asc),
                    Sort::YearDown => ("year", Order::Desc),
                    _ => ("order", Order::Asc),
                };
                let (total, found) = searcher.search(
                    &query,
                    &(Count, top.order_by_fast_field::<u64>(field, order)),
                )?;
                (total, addresses(found))
            }
            Sort::Random(seed) => {
                use rand::SeedableRng;
                use rand::seq::SliceRandom;
                let mut all: Vec<DocAddress> = searcher
                    .search(&query, &DocSetCollector)?
                    .into_iter()
                    .collect();
                all.sort();
                all.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
                let total = all.len();
                (total, all.into_iter().skip(offset).take(limit).collect())
            }
        };
        let mut entries = Vec::with_capacity(page.len());
        for address in page {
            entries.push(self.entry(&searcher.doc(address)?));
        }
        Ok((total, entries))
    }

    /// The items of `kind` with these ids, in their order (ids not indexed are left out).
    pub fn entries(&self, kind: Kind, ids: &[String]) -> Result<Vec<Entry>, SearchError> {
        let (indexed, ready) = self.progress();
        if !ready {
            return Err(SearchError::Warming(indexed));
        }
        let f = self.fields;
        let searcher = self.reader.searcher();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let query = TermQuery::new(
                Term::from_field_text(f.key, &format!("{}/{id}", kind.as_str())),
                IndexRecordOption::Basic,
            );
            if let Some((_, address)) = searcher
                .search(&query, &TopDocs::with_limit(1).order_by_score())?
                .pop()
            {
                out.push(self.entry(&searcher.doc(address)?));
            }
        }
        Ok(out)
    }

    /// Every genre tagged, with its tracks and albums, by name.
    pub fn genres(&self) -> Result<Vec<(String, u64, u64)>, SearchError> {
        let (indexed, ready) = self.progress();
        if !ready {
            return Err(SearchError::Warming(indexed));
        }
        let f = self.fields;
        let searcher = self.reader.searcher();
        let mut names = std::collections::BTreeSet::new();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(f.genre)?;
            let mut terms = inverted.terms().stream().map_err(io_error)?;
            while terms.advance() {
                if let Ok(name) = std::str::from_utf8(terms.key()) {
                    names.insert(name.to_string());
                }
                // Bounded: a catalog with more genres than this lists the first ones.
                if names.len() >= 10_000 {
                    break;
                }
            }
        }
        let count = |kind: &str, genre: &str| -> Result<u64, SearchError> {
            let query = BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(f.kind, kind),
                        IndexRecordOption::Basic,
                    )) as Box<dyn Query>,
                ),
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(f.genre, genre),
                        IndexRecordOption::Basic,
                    )),
                ),
            ]);
            Ok(searcher.search(&query, &Count)? as u64)
        };
        let mut out = Vec::new();
        for name in names {
            let tracks = count("track", &name)?;
            if tracks > 0 {
                let albums = count("album", &name)?;
                out.push((name, tracks, albums));
            }
        }
        Ok(out)
    }

    fn entry(&self, document: &TantivyDocument) -> Entry {
        let f = self.fields;
        let text = |field: Field| {
            document
                .get_first(field)
                .and_then(|value| value.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        let number = |field: Field| {
            document
                .get_first(field)
                .and_then(|value| value.as_u64())
                .unwrap_or(0)
        };
        Entry {
            id: text(f.id),
            name: text(f.name),
            artist: text(f.artist),
            artist_id: text(f.artist_id),
            album_id: text(f.album_id),
            genre: Some(text(f.genre)).filter(|genre| !genre.is_empty()),
            year: u16::try_from(number(f.year)).unwrap_or(0),
            added_ms: number(f.added),
            count: number(f.count),
            extra: number(f.extra),
            plays: number(f.popularity),
        }
    }
}

/// Play counts a track's documents carry: its own, its artist's and its album's (summed over
/// at most [`POPULARITY_TRACKS_MAX`] of their tracks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Popularity {
    /// The track's qualified streams.
    pub track: u64,
    /// Its artist's.
    pub artist: u64,
    /// Its album's (0 without an album).
    pub album: u64,
    /// Its album's tracks, duration, newest upload and year.
    pub album_sums: AlbumSums,
    /// Its artist's albums, tracks and newest upload.
    pub artist_sums: ArtistSums,
}

/// What an album document counts over its tracks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlbumSums {
    /// Qualified streams.
    pub plays: u64,
    /// Tracks.
    pub tracks: u64,
    /// Total duration, ms.
    pub duration_ms: u64,
    /// The newest track's upload, Unix ms.
    pub added_ms: u64,
    /// The year its first track with one names (0: none).
    pub year: u16,
}

impl AlbumSums {
    fn add(&mut self, track: &TrackRecord, plays: u64) {
        self.plays += plays;
        self.tracks += 1;
        self.duration_ms += track.duration_ms;
        self.added_ms = self.added_ms.max(track.created_at_ms);
        if self.year == 0 {
            self.year = track.details.year.unwrap_or(0);
        }
    }
}

/// What an artist document counts over their tracks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArtistSums {
    /// Qualified streams.
    pub plays: u64,
    /// Albums.
    pub albums: u64,
    /// Tracks.
    pub tracks: u64,
    /// The newest track's upload, Unix ms.
    pub added_ms: u64,
}

impl ArtistSums {
    fn add(&mut self, track: &TrackRecord, plays: u64) {
        self.plays += plays;
        self.tracks += 1;
        self.added_ms = self.added_ms.max(track.created_at_ms);
    }
}

/// A name folded for sorting: lower case, leading punctuation and an English article
/// dropped ("The Beatles" sorts under B), at most 64 characters.
pub fn sort_key(name: &str) -> String {
    let lower: String = name
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .chars()
        .flat_map(char::to_lowercase)
        .take(64)
        .collect();
    match lower.strip_prefix("the ") {
        Some(rest) if !rest.trim().is_empty() => rest.trim_start().to_string(),
        _ => lower,
    }
}

/// A stable place for an id in a full listing (from its hash), whatever the index's
/// segments.
fn stable_order(id: &str) -> u64 {
    let hash = blake3::hash(id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_be_bytes(head)
}

impl Popularity {
    /// Reads `track`'s popularity from `store`.
    pub async fn of(store: &Store, track: &TrackRecord) -> Result<Self, StoreError> {
        let listening = store.listening();
        let track_plays = store.play_count(&track.id).await?;
        let ids = |tracks: Vec<TrackRecord>| -> Vec<String> {
            tracks.into_iter().map(|track| track.id).collect()
        };
        let artist_tracks = store
            .catalog()
            .artist_tracks(&track.artist_id, 0, POPULARITY_TRACKS_MAX)
            .await?;
        let mut artist_sums = ArtistSums::default();
        let mut albums = HashSet::new();
        for each in &artist_tracks {
            artist_sums.add(each, 0);
            if let Some(album) = &each.album_id {
                albums.insert(album.clone());
            }
        }
        artist_sums.albums = albums.len() as u64;
        let artist = listening
            .play_counts(&ids(artist_tracks))
            .await?
            .iter()
            .sum();
        let mut album_sums = AlbumSums::default();
        let album = match &track.album_id {
            Some(album_id) => {
                let album_tracks = store
                    .catalog()
                    .album_tracks(album_id, 0, POPULARITY_TRACKS_MAX)
                    .await?;
                for each in &album_tracks {
                    album_sums.add(each, 0);
                }
                listening
                    .play_counts(&ids(album_tracks))
                    .await?
                    .iter()
                    .sum()
            }
            None => 0,
        };
        Ok(Self {
            track: track_plays,
            artist,
            album,
            album_sums,
            artist_sums,
        })
    }
}

/// After a track of `artist_id` (and album `album_id`) is deleted: a track still on the album,
/// else one still of the artist, whose re-indexing recounts what is left (none when both are
/// gone).
pub async fn survivors(
    store: &Store,
    artist_id: &str,
    album_id: Option<&str>,
) -> Result<Vec<TrackRecord>, StoreError> {
    let catalog = store.catalog();
    if let Some(album) = album_id
        && let Some(survivor) = catalog.album_tracks(album, 0, 1).await?.pop()
    {
        // The album's tracks are its artist's: one survivor recounts both.
        return Ok(vec![survivor]);
    }
    Ok(catalog
        .artist_tracks(artist_id, 0, 1)
        .await?
        .into_iter()
        .collect())
}

/// Runs index work (tantivy writes and commits block) on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, SearchError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| SearchError::Store(StoreError::Backend(join.to_string())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(id: u8, title: &str, artist: &str, album: Option<&str>) -> TrackRecord {
        TrackRecord {
            id: format!("{id:032x}"),
            title: title.into(),
            artist: artist.into(),
            // One id per artist name, as one artist account would have.
            artist_id: format!(
                "{:032x}",
                artist
                    .bytes()
                    .fold(7u64, |h, b| h.wrapping_mul(31) ^ u64::from(b))
            ),
            album: album.map(str::to_string),
            album_id: album.map(|_| format!("{:032x}", u32::from(id) + 2000)),
            genre: None,
            markets: Vec::new(),
            duration_ms: 1,
            loudness_lufs: -14.0,
            tempo_bpm: None,
            gain_db: 0.0,
            owner: String::new(),
            created_at_ms: 0,
            renditions: Vec::new(),
            details: Default::default(),
        }
    }

    fn names(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|hit| hit.name.as_str()).collect()
    }

    #[tokio::test]
    async fn listings_filter_order_and_page_through_everything() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open_embedded(store_dir.path()).await.unwrap();
        let mut records = Vec::new();
        for (id, title, artist, album, genre, year) in [
            (1, "Zebra", "The Beatles", Some("Abbey Road"), "Rock", 1969),
            (2, "apple", "The Beatles", Some("Abbey Road"), "Rock", 1969),
            (3, "Mango", "Björk", Some("Homogenic"), "Electronic", 1997),
            (4, "banana", "Adele", None, "Pop", 2011),
            (5, "Cherry", "Adele", Some("21"), "Pop", 2011),
        ] {
            let mut record = track(id, title, artist, album);
            record.genre = Some(genre.to_string());
            record.details.year = Some(year);
            record.created_at_ms = u64::from(id) * 1_000;
            record.duration_ms = 60_000;
            records.push((record, u64::from(id)));
        }
        // Two tracks of one album share its id.
        records[1].0.album_id = records[0].0.album_id.clone();
        store.catalog().import_tracks(&records).await.unwrap();
        let search = Arc::new(Search::new().unwrap());
        assert!(matches!(
            search.browse(Kind::Track, &Filter::default(), Sort::Name, 10, 0),
            Err(SearchError::Warming(_))
        ));
        search.fill(&store).await.unwrap();
        let names = |entries: &[Entry]| -> Vec<String> {
            entries.iter().map(|entry| entry.name.clone()).collect()
        };
        let all = Filter::default();
        let (total, by_name) = search.browse(Kind::Track, &all, Sort::Name, 10, 0).unwrap();
        assert_eq!(total, 5);
        assert_eq!(
            names(&by_name),
            ["apple", "banana", "Cherry", "Mango", "Zebra"]
        );
        let (_, newest) = search.browse(Kind::Track, &all, Sort::Added, 2, 0).unwrap();
        assert_eq!(names(&newest), ["Cherry", "banana"]);
        let (_, by_artist) = search
            .browse(Kind::Artist, &all, Sort::Name, 10, 0)
            .unwrap();
        // "The Beatles" sorts under B.
        assert_eq!(names(&by_artist), ["Adele", "The Beatles", "Björk"]);
        assert_eq!(
            (by_artist[0].count, by_artist[0].extra),
            (1, 2),
            "Adele: one album, two tracks"
        );
        let pop = Filter {
            genre: Some("Pop".into()),
            years: None,
        };
        let (total, found) = search.browse(Kind::Track, &pop, Sort::Name, 10, 0).unwrap();
        assert_eq!(
            (total, names(&found)),
            (2, vec!["banana".into(), "Cherry".into()])
        );
        let sixties = Filter {
            genre: None,
            years: Some((1970, 1960)),
        };
        let (_, albums) = search
            .browse(Kind::Album, &sixties, Sort::Name, 10, 0)
            .unwrap();
        assert_eq!(names(&albums), ["Abbey Road"]);
        assert_eq!((albums[0].count, albums[0].extra), (2, 120_000));
        assert_eq!(
            (albums[0].year, albums[0].added_ms, albums[0].plays),
            (1969, 2_000, 3)
        );
        let (_, by_year) = search
            .browse(Kind::Album, &all, Sort::YearDown, 10, 0)
            .unwrap();
        assert_eq!(names(&by_year), ["21", "Homogenic", "Abbey Road"]);
        // A seed gives one order, page after page; another seed (almost surely) another.
        let shuffled = |seed| {
            let (_, first) = search
                .browse(Kind::Track, &all, Sort::Random(seed), 3, 0)
                .unwrap();
            let (_, rest) = search
                .browse(Kind::Track, &all, Sort::Random(seed), 3, 3)
                .unwrap();
            [names(&first), names(&rest)].concat()
        };
        assert_eq!(shuffled(7), shuffled(7));
        let mut sorted = shuffled(7);
        sorted.sort();
        assert_eq!(sorted.len(), 5);
        // The stable order pages through everything once, whatever a re-index does.
        let (_, first) = search
            .browse(Kind::Track, &all, Sort::Stable, 2, 0)
            .unwrap();
        search
            .track_published(&records[4].0, None, &Popularity::default())
            .unwrap();
        let (_, rest) = search
            .browse(Kind::Track, &all, Sort::Stable, 10, 2)
            .unwrap();
        let mut ids: Vec<String> = first.iter().chain(&rest).map(|e| e.id.clone()).collect();
        assert_eq!(ids.len(), 5);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 5, "none twice, none missed");
        // Genres with their counts, by name.
        assert_eq!(
            search.genres().unwrap(),
            [
                ("Electronic".to_string(), 1, 1),
                ("Pop".to_string(), 2, 1),
                ("Rock".to_string(), 2, 1)
            ]
        );
        // An upload re-indexes its album with the store's sums.
        let mut added = track(6, "Date", "Adele", Some("21"));
        added.album_id = records[4].0.album_id.clone();
        added.genre = Some("Pop".into());
        added.created_at_ms = 9_000;
        added.duration_ms = 30_000;
        store
            .catalog()
            .import_tracks(&[(added.clone(), 0)])
            .await
            .unwrap();
        let popularity = Popularity::of(&store, &added).await.unwrap();
        search.track_published(&added, None, &popularity).unwrap();
        let entry = &search
            .entries(Kind::Album, &[added.album_id.clone().unwrap()])
            .unwrap()[0];
        assert_eq!(
            (entry.count, entry.extra, entry.added_ms),
            (2, 90_000, 9_000)
        );
        assert_eq!(
            search
                .entries(Kind::Artist, &[added.artist_id.clone()])
                .unwrap()[0]
                .extra,
            3
        );
        // Deleting it recounts what is left of the album and the artist.
        store.delete_track(&added).await.unwrap();
        search.track_deleted(&added, false, false).unwrap();
        let mut left = Vec::new();
        for survivor in survivors(&store, &added.artist_id, added.album_id.as_deref())
            .await
            .unwrap()
        {
            let popularity = Popularity::of(&store, &survivor).await.unwrap();
            left.push((survivor, popularity));
        }
        search.regroup(&left).unwrap();
        let entry = &search
            .entries(Kind::Album, &[added.album_id.clone().unwrap()])
            .unwrap()[0];
        assert_eq!((entry.count, entry.extra), (1, 60_000));
        assert_eq!(
            search
                .entries(Kind::Artist, &[added.artist_id.clone()])
                .unwrap()[0]
                .extra,
            2
        );
    }

    #[tokio::test]
    async fn typos_prefixes_types_and_pages() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open_embedded(store_dir.path()).await.unwrap();
        let search = Arc::new(Search::new().unwrap());
        // Not served until the catalog is indexed.
        assert!(matches!(
            search.search("queen", &[], 10, 0),
            Err(SearchError::Warming(0))
        ));
        search.fill(&store).await.unwrap();
        for (id, title, artist, album) in [
            (
                1,
                "Bohemian Rhapsody",
                "Queen",
                Some("A Night at the Opera"),
            ),
            (2, "Rhapsody in Blue", "George Gershwin", None),
            (3, "Bohemian Like You", "The Dandy Warhols", None),
            (4, "Under Pressure", "Queen", None),
        ] {
            search
                .track_published(
                    &track(id, title, artist, album),
                    None,
                    &Popularity::default(),
                )
                .unwrap();
        }
        // Two typos, still first.
        let (_, hits) = search.search("bohemain rapsody", &[], 10, 0).unwrap();
        assert_eq!(hits[0].name, "Bohemian Rhapsody", "{hits:?}");
        // Type-ahead: the last word is a prefix.
        let (_, hits) = search.search("under pres", &[Kind::Track], 10, 0).unwrap();
        assert_eq!(names(&hits), ["Under Pressure"]);
        // Artists and albums are searchable, and filterable.
        let (_, hits) = search.search("queen", &[Kind::Artist], 10, 0).unwrap();
        assert_eq!(names(&hits), ["Queen"]);
        assert_eq!(hits[0].kind, "artist");
        let (_, hits) = search.search("opera", &[Kind::Album], 10, 0).unwrap();
        assert_eq!(names(&hits), ["A Night at the Opera"]);
        // Exact beats fuzzy: "rhapsody" is in two titles; both come, exact words first.
        let (total, hits) = search.search("rhapsody", &[Kind::Track], 1, 0).unwrap();
        assert_eq!((total, hits.len()), (2, 1));
        let (_, second) = search.search("rhapsody", &[Kind::Track], 1, 1).unwrap();
        assert_ne!(hits[0].id, second[0].id, "pages do not overlap");
        // Nothing like it.
        assert_eq!(search.search("zzzzzz", &[], 10, 0).unwrap().0, 0);
        // Deletes follow.
        search
            .track_deleted(&track(4, "Under Pressure", "Queen", None), true, false)
            .unwrap();
        assert_eq!(search.search("pressure", &[], 10, 0).unwrap().0, 0);
    }

    #[test]
    fn skipping_what_cannot_reach_the_page_ranks_as_scoring_everything() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let syllables = ["ka", "lo", "mi", "ra", "te", "su", "no", "vi", "bel", "dor"];
        let words: Vec<String> = (0..60)
            .map(|_| {
                (0..rng.gen_range(2..=4))
                    .map(|_| syllables[rng.gen_range(0..syllables.len())])
                    .collect()
            })
            .collect();
        // Skewed: a few words are everywhere, as in real titles.
        let phrase = |rng: &mut rand_chacha::ChaCha8Rng, most: usize| -> String {
            (0..rng.gen_range(1..=most))
                .map(|_| {
                    let at = (rng.r#gen::<f64>().powi(3) * words.len() as f64) as usize;
                    words[at].clone()
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let artists: Vec<String> = (0..60).map(|_| phrase(&mut rng, 2)).collect();
        let albums: Vec<String> = (0..300).map(|_| phrase(&mut rng, 3)).collect();
        let search = Search::new().unwrap();
        // Several segments, as merges would not leave them.
        search
            .lock()
            .set_merge_policy(Box::new(tantivy::merge_policy::NoMergePolicy));
        let mut catalog = Vec::new();
        for n in 0..3_000u32 {
            let album = rng.gen_range(0..albums.len());
            let mut record = track(
                0,
                &phrase(&mut rng, 3),
                &artists[album % artists.len()],
                None,
            );
            record.id = format!("{n:032x}");
            record.album = Some(albums[album].clone());
            record.album_id = Some(format!("{album:032x}"));
            // Zipf play counts in random order, some never played.
            let plays = if rng.gen_bool(0.1) {
                0
            } else {
                100_000 / rng.gen_range(1..5_000u64)
            };
            catalog.push((record, plays));
        }
        let popularity = |plays: u64| Popularity {
            track: plays,
            artist: plays * 3,
            album: plays * 2,
            ..Popularity::default()
        };
        // Several commits make several segments; re-indexing some tracks with new counts
        // leaves deleted documents behind in them.
        for part in catalog.chunks(400) {
            let writer = search.lock();
            for (record, plays) in part {
                search
                    .add(&writer, record, None, &popularity(*plays))
                    .unwrap();
            }
            drop(writer);
            search.commit().unwrap();
        }
        let writer = search.lock();
        for (record, plays) in catalog.iter().step_by(7) {
            search
                .add(&writer, record, None, &popularity(plays * 5 + 1))
                .unwrap();
        }
        drop(writer);
        search.commit().unwrap();
        assert!(search.reader.searcher().segment_readers().len() > 1);

        let mut queries: Vec<String> = Vec::new();
        for word in &words {
            for cut in 2..=word.len() {
                queries.push(word[..cut].to_string());
            }
        }
        for _ in 0..200 {
            let (title, _) = &catalog[rng.gen_range(0..catalog.len())];
            let cut = rng.gen_range(1..=title.title.len());
            queries.push(title.title[..cut].to_string());
            queries.push(format!("{} {}", title.artist, &title.title[..cut]));
        }
        let kinds: [&[Kind]; 3] = [&[], &[Kind::Track], &[Kind::Artist, Kind::Album]];
        let (mut matched, mut scored) = (0, 0);
        for (n, query) in queries.iter().enumerate() {
            let text = search.words(query).unwrap();
            if text.is_empty() {
                continue;
            }
            let fuzzy = vec![n % 5 == 0; text.len()];
            let plan = search.query(&text, kinds[n % kinds.len()], &fuzzy);
            let (limit, offset) = [(5, 0), (10, 0), (1, 0), (10, 7)][n % 4];
            let searcher = search.reader.searcher();
            let page = search.top(&searcher, &plan, limit, offset).unwrap();
            // The same searcher: a merge in between would change the statistics.
            let exhaustive = exhaustive(&searcher, &plan, limit, offset).unwrap();
            let (total, expected): (usize, Vec<Score>) = (
                exhaustive.total,
                exhaustive.hits.iter().map(|(score, _)| *score).collect(),
            );
            assert_eq!(page.total, total, "{query:?}: the total");
            let got: Vec<Score> = page.hits.iter().map(|(score, _)| *score).collect();
            assert_eq!(
                got.len(),
                expected.len(),
                "{query:?}: {got:?} against {expected:?}"
            );
            for (got, expected) in got.iter().zip(&expected) {
                assert!(
                    (got - expected).abs() <= expected.abs() * 1e-5,
                    "{query:?}: {got} against {expected}"
                );
            }
            // The same documents too, but for those tied with the page's last score (either
            // may be kept).
            let above = |hits: &[(Score, DocAddress)]| -> Vec<DocAddress> {
                let last = hits.last().map_or(0.0, |hit| hit.0);
                let mut above: Vec<DocAddress> = hits
                    .iter()
                    .filter(|hit| hit.0 > last * (1.0 + 1e-5))
                    .map(|hit| hit.1)
                    .collect();
                above.sort();
                above
            };
            assert_eq!(
                above(&page.hits),
                above(&exhaustive.hits),
                "{query:?}: the documents"
            );
            matched += page.total;
            scored += page.scored;
        }
        // And it does skip: short prefixes match much of the catalog.
        assert!(scored * 3 < matched, "scored {scored} of {matched}");
    }

    async fn follow(search: &Arc<Search>, store: &Store) {
        let cursor = search.cursor().unwrap();
        let changes = store
            .coordination()
            .changes_after(cursor, CHANGES_PER_COMMIT)
            .await
            .unwrap();
        search.apply(store, &changes, 0).await.unwrap();
    }

    fn found(search: &Search, text: &str, kind: Kind) -> Vec<String> {
        let (_, hits) = search.search(text, &[kind], 10, 0).unwrap();
        hits.into_iter().map(|hit| hit.name).collect()
    }

    #[tokio::test]
    async fn lyrics_are_found_after_a_rebuild_and_through_the_feed() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open_embedded(store_dir.path()).await.unwrap();
        let sung = |text: &str| crate::tags::parse_lyrics(text).unwrap();
        let mut song = track(1, "Harbour", "Band", None);
        song.details.lyrics = Some(
            store
                .put_lyrics(&sung("Lights on the water\nand nothing else"))
                .await
                .unwrap(),
        );
        store.catalog().import_tracks(&[(song, 3)]).await.unwrap();
        let search = Arc::new(Search::new().unwrap());
        search.fill(&store).await.unwrap();
        assert_eq!(found(&search, "lights water", Kind::Lyrics), ["Harbour"]);
        assert!(found(&search, "lights water", Kind::Track).is_empty());
        let (_, everything) = search.search("lights water", &[], 10, 0).unwrap();
        assert!(everything.is_empty(), "lyrics only when asked for");
        // A track published later is followed from the feed, lyrics and all.
        let mut later = track(2, "Later", "Band", None);
        later.details.lyrics = Some(
            store
                .put_lyrics(&sung("[00:01.00]paper moon"))
                .await
                .unwrap(),
        );
        store.publish_track(&later, &[]).await.unwrap();
        follow(&search, &store).await;
        assert_eq!(found(&search, "paper moon", Kind::Lyrics), ["Later"]);
    }

    #[tokio::test]
    async fn a_persisted_index_resumes_where_it_stopped_and_follows_the_feed() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open_embedded(store_dir.path()).await.unwrap();
        let dir = store_dir.path().join("search");
        let rhapsody = track(
            1,
            "Bohemian Rhapsody",
            "Queen",
            Some("A Night at the Opera"),
        );
        let pressure = track(2, "Under Pressure", "Queen", None);
        {
            let search = Arc::new(Search::open(Some(&dir)).unwrap());
            let feed = store.coordination().feed_state().await.unwrap();
            assert_eq!(search.resume(&feed), None, "a new index is built");
            search.fill(&store).await.unwrap();
            store.publish_track(&rhapsody, &[]).await.unwrap();
            follow(&search, &store).await;
            assert_eq!(
                found(&search, "rhapsody", Kind::Track),
                ["Bohemian Rhapsody"]
            );
        }
        // Published while no index was open.
        store.publish_track(&pressure, &[]).await.unwrap();
        let search = Arc::new(Search::open(Some(&dir)).unwrap());
        let feed = store.coordination().feed_state().await.unwrap();
        let cursor = search.resume(&feed).expect("the index resumes");
        assert_eq!(cursor, feed.head - 1, "one change behind");
        assert_eq!(
            found(&search, "rhapsody", Kind::Track),
            ["Bohemian Rhapsody"],
            "served at once, without a rebuild"
        );
        assert!(found(&search, "pressure", Kind::Track).is_empty());
        follow(&search, &store).await;
        assert_eq!(found(&search, "pressure", Kind::Track), ["Under Pressure"]);
        // Deletes: the artist stays while it has a track, the album goes with its last.
        store.delete_track(&rhapsody).await.unwrap();
        follow(&search, &store).await;
        assert!(found(&search, "rhapsody", Kind::Track).is_empty());
        assert!(found(&search, "opera", Kind::Album).is_empty());
        assert_eq!(found(&search, "queen", Kind::Artist), ["Queen"]);
        store.delete_track(&pressure).await.unwrap();
        follow(&search, &store).await;
        assert!(found(&search, "queen", Kind::Artist).is_empty());
        // A feed pruned past the index, or another database's feed: rebuilt.
        let mut pruned = store.coordination().feed_state().await.unwrap();
        assert_eq!(search.cursor(), Some(pruned.head));
        drop(search);
        pruned.pruned_through = pruned.head + 1;
        pruned.head += 1;
        let reopened = Search::open(Some(&dir)).unwrap();
        assert_eq!(reopened.resume(&pruned), None);
        let other = FeedState {
            id: "another database".into(),
            ..store.coordination().feed_state().await.unwrap()
        };
        assert_eq!(reopened.resume(&other), None);
    }

    #[tokio::test]
    async fn an_interrupted_build_is_not_resumed() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open_embedded(store_dir.path()).await.unwrap();
        let dir = store_dir.path().join("search");
        let search = Search::open(Some(&dir)).unwrap();
        // A commit before the catalog is indexed (an upload during the build) records no
        // position.
        search
            .track_published(
                &track(3, "Half Built", "Nobody", None),
                None,
                &Popularity::default(),
            )
            .unwrap();
        drop(search);
        let feed = store.coordination().feed_state().await.unwrap();
        assert_eq!(Search::open(Some(&dir)).unwrap().resume(&feed), None);
    }

    #[tokio::test]
    async fn an_import_asks_for_one_fill_unless_a_fill_covered_it() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open_embedded(store_dir.path()).await.unwrap();
        let search = Arc::new(Search::new().unwrap());
        let head = search.fill(&store).await.unwrap();
        store
            .catalog()
            .import_tracks(&[(track(5, "Imported", "Someone", None), 0)])
            .await
            .unwrap();
        let changes = store.coordination().changes_after(head, 10).await.unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].kind, ChangeKind::Import);
        assert!(
            search.apply(&store, &changes, head).await.unwrap(),
            "fill again"
        );
        assert!(
            !search
                .apply(&store, &changes, changes[0].seq)
                .await
                .unwrap(),
            "a fill that started after the import covered it"
        );
        assert_eq!(search.cursor(), Some(changes[0].seq));
    }

    #[tokio::test]
    async fn bad_queries_are_refused() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open_embedded(store_dir.path()).await.unwrap();
        let search = Search::build(&store).await.unwrap();
        assert!(matches!(
            search.search("", &[], 10, 0),
            Err(SearchError::BadQuery(_))
        ));
        // Punctuation alone finds nothing; it is not an error.
        assert_eq!(search.search("  !! ", &[], 10, 0).unwrap(), (0, Vec::new()));
        let long = "a".repeat(10 * 1024);
        assert!(matches!(
            search.search(&long, &[], 10, 0),
            Err(SearchError::BadQuery(_))
        ));
        // Words past the eighth are ignored.
        let many = "w ".repeat(20);
        assert!(search.search(&many, &[], 10, 0).is_ok());
        // Limits are clamped, not errors.
        assert!(search.search("x", &[], 0, 1_000_000).is_ok());
    }
}
