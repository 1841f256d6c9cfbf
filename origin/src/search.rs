//! Catalog search (tantivy): tracks, artists, albums and public playlists, typo-tolerant,
//! with prefix completion of the last word for type-ahead, ranked by text relevance times a
//! popularity boost (`1 + 0.1 ln(1 + qualified streams)`: relevance decides, popularity orders
//! the near-ties).
//!
//! The index is rebuilt from the store at every start ([`Search::fill`]; in memory, or in
//! memory-mapped files with [`Search::new_in`]) and follows ingest, deletes and playlist
//! changes (a track is searchable once its upload is answered). Name, artist and album words
//! are one `text` field; the 2–12 character prefixes of name and artist words are a
//! `prefixes` field, so the word being typed is one term lookup. Every query word must match:
//! exactly, as the typed prefix (the last word), or, when the exact query does not fill the
//! page and the word is not in the index, within an edit distance that grows with its length
//! (1 for 4–7 letters, 2 from 8). Words in the name add to the score.
//!
//! Popularity follows the play counts: [`Search::plays_changed`] notes tracks that gained
//! streams and [`Search::refresh_popularity`] (run every few seconds) re-indexes those whose
//! count moved to another power of two, with their artist and album.
//!
//! Bounds: empty queries and queries longer than [`QUERY_CHARS_MAX`] are refused; words past
//! the first [`QUERY_WORDS_MAX`] are ignored; a page holds at most [`PAGE_MAX`] hits and
//! offsets stop at [`OFFSET_MAX`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TEXT, TantivyDocument,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::TokenStream;
use tantivy::{
    DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader, Term, doc,
};

use crate::store::{PlaylistRecord, Store, StoreError, TrackRecord};

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
}

impl Kind {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Track => "track",
            Kind::Artist => "artist",
            Kind::Album => "album",
            Kind::Playlist => "playlist",
        }
    }

    /// Parses an API name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "track" => Some(Kind::Track),
            "artist" => Some(Kind::Artist),
            "album" => Some(Kind::Album),
            "playlist" => Some(Kind::Playlist),
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
    popularity: Field,
}

/// Longest word prefix indexed for type-ahead.
pub const PREFIX_CHARS_MAX: usize = 12;

/// The search index.
pub struct Search {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// Tracks that gained streams since the last [`Search::refresh_popularity`].
    pending: Mutex<HashSet<String>>,
    /// The popularity bucket each track was last indexed with (absent: 0).
    buckets: Mutex<HashMap<String, u32>>,
    /// Tracks indexed by [`Search::fill`] so far.
    indexed: std::sync::atomic::AtomicU64,
    /// Searches are served (the catalog is indexed).
    ready: std::sync::atomic::AtomicBool,
}

/// Tracks noted by [`Search::plays_changed`] between refreshes; more are dropped until the
/// next refresh (their next stream notes them again).
pub const PENDING_MAX: usize = 100_000;

/// Which power of two a play count is in: re-indexing happens when it changes.
fn bucket(plays: u64) -> u32 {
    64 - plays.leading_zeros()
}

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

impl Search {
    /// An empty index in memory.
    pub fn new() -> Result<Self, SearchError> {
        Self::new_in(None)
    }

    /// An empty index, in memory or in files under `dir` (emptied first: the index is
    /// rebuilt from the store at every start). Files are memory-mapped, so a large catalog's
    /// index lives in the page cache, which the kernel may reclaim, not in the heap.
    pub fn new_in(dir: Option<&std::path::Path>) -> Result<Self, SearchError> {
        let mut schema = Schema::builder();
        let fields = Fields {
            key: schema.add_text_field("key", STRING),
            kind: schema.add_text_field("kind", STRING | STORED),
            id: schema.add_text_field("id", STRING | STORED),
            name: schema.add_text_field("name", TEXT | STORED),
            artist: schema.add_text_field("artist", STORED),
            album: schema.add_text_field("album", STORED),
            text: schema.add_text_field("text", unpositioned(IndexRecordOption::WithFreqs)),
            prefixes: schema.add_text_field("prefixes", unpositioned(IndexRecordOption::Basic)),
            popularity: schema.add_u64_field("popularity", FAST),
        };
        let index = match dir {
            None => Index::create_in_ram(schema.build()),
            Some(dir) => {
                match std::fs::remove_dir_all(dir) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(SearchError::Store(StoreError::Io(error))),
                }
                std::fs::create_dir_all(dir)
                    .map_err(|error| SearchError::Store(StoreError::Io(error)))?;
                Index::create_in_dir(dir, schema.build())?
            }
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
            pending: Mutex::new(HashSet::new()),
            buckets: Mutex::new(HashMap::new()),
            indexed: std::sync::atomic::AtomicU64::new(0),
            ready: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// An index of everything in `store` (see [`Search::fill`]).
    pub async fn build(store: &Store) -> Result<Arc<Self>, SearchError> {
        let search = Arc::new(Self::new()?);
        search.fill(store).await?;
        Ok(search)
    }

    /// Indexes everything in `store`: tracks with their play counts, each artist and album
    /// once with the sum of theirs, and the public playlists; then searches are served. The
    /// catalog is read a page at a time and each page is indexed on the blocking pool with the
    /// writer taken for that page only, so uploads indexed meanwhile do not wait for the whole
    /// catalog. Until it is done, [`Search::search`] answers [`SearchError::Warming`].
    pub async fn fill(self: &Arc<Self>, store: &Store) -> Result<(), SearchError> {
        const PAGE: usize = 10_000;
        let mut artists: HashMap<String, (String, u64)> = HashMap::new();
        let mut albums: HashMap<String, (String, String, u64)> = HashMap::new();
        let mut buckets = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let tracks = store.catalog().tracks_after(after.as_deref(), PAGE).await?;
            let Some(last) = tracks.last() else {
                break;
            };
            after = Some(last.id.clone());
            let ids: Vec<String> = tracks.iter().map(|track| track.id.clone()).collect();
            let plays = store.listening().play_counts(&ids).await?;
            for (track, &plays) in tracks.iter().zip(&plays) {
                if plays > 0 {
                    buckets.insert(track.id.clone(), bucket(plays));
                }
                let artist = artists
                    .entry(track.artist_id.clone())
                    .or_insert_with(|| (track.artist.clone(), 0));
                artist.1 += plays;
                if let (Some(album), Some(album_id)) = (&track.album, &track.album_id) {
                    let entry = albums
                        .entry(album_id.clone())
                        .or_insert_with(|| (album.clone(), track.artist.clone(), 0));
                    entry.2 += plays;
                }
            }
            let done = tracks.len();
            let search = self.clone();
            blocking(move || {
                let writer = search.lock();
                for (track, plays) in tracks.iter().zip(plays) {
                    search.put(
                        &writer,
                        search.track_doc(track, plays),
                        &format!("track/{}", track.id),
                    )?;
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
                let owner = store
                    .accounts()
                    .account(&playlist.owner)
                    .await?
                    .map(|owner| owner.username);
                playlists.push((playlist, owner));
            }
            if !full {
                break;
            }
        }
        let search = self.clone();
        blocking(move || {
            let f = search.fields;
            {
                let writer = search.lock();
                for (id, (name, plays)) in artists {
                    let document = doc!(f.kind => "artist", f.id => id.as_str(), f.name => name, f.popularity => plays);
                    search.put(&writer, document, &format!("artist/{id}"))?;
                }
                for (id, (name, artist, plays)) in albums {
                    let document = doc!(f.kind => "album", f.id => id.as_str(), f.name => name, f.artist => artist, f.popularity => plays);
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
            search
                .buckets
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .extend(buckets);
            search.commit()?;
            search
                .ready
                .store(true, std::sync::atomic::Ordering::Release);
            Ok(())
        })
        .await
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

    fn commit(&self) -> Result<(), SearchError> {
        self.lock().commit()?;
        // Searches right after see it (the reload policy would within a second anyway).
        self.reader.reload()?;
        Ok(())
    }

    fn track_doc(&self, track: &TrackRecord, plays: u64) -> TantivyDocument {
        let f = self.fields;
        doc!(
            f.kind => "track",
            f.id => track.id.as_str(),
            f.name => track.title.as_str(),
            f.artist => track.artist.as_str(),
            f.album => track.album.clone().unwrap_or_default(),
            f.popularity => plays,
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

    /// Replaces the document under `key`.
    fn put(
        &self,
        writer: &IndexWriter,
        mut document: TantivyDocument,
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
        let mut prefixes = String::new();
        for word in self.words(&format!("{name} {artist}"))? {
            let chars: Vec<char> = word.chars().collect();
            for end in 2..=chars.len().min(PREFIX_CHARS_MAX) {
                prefixes.extend(&chars[..end]);
                prefixes.push(' ');
            }
        }
        document.add_text(f.text, format!("{name} {artist} {album}"));
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
        popularity: &Popularity,
    ) -> Result<(), SearchError> {
        let f = self.fields;
        self.put(
            writer,
            self.track_doc(track, popularity.track),
            &format!("track/{}", track.id),
        )?;
        let artist = doc!(
            f.kind => "artist",
            f.id => track.artist_id.as_str(),
            f.name => track.artist.as_str(),
            f.popularity => popularity.artist,
        );
        self.put(writer, artist, &format!("artist/{}", track.artist_id))?;
        if let (Some(album), Some(album_id)) = (&track.album, &track.album_id) {
            let album = doc!(
                f.kind => "album",
                f.id => album_id.as_str(),
                f.name => album.as_str(),
                f.artist => track.artist.as_str(),
                f.popularity => popularity.album,
            );
            self.put(writer, album, &format!("album/{album_id}"))?;
        }
        Ok(())
    }

    /// Notes tracks that gained qualified streams (cheap: called on every events batch).
    pub fn plays_changed(&self, tracks: impl IntoIterator<Item = String>) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for track in tracks {
            if pending.len() >= PENDING_MAX {
                break;
            }
            pending.insert(track);
        }
    }

    /// Re-indexes the noted tracks whose play count moved to another power of two (and
    /// their artist and album). Returns how many were re-indexed.
    pub async fn refresh_popularity(self: &Arc<Self>, store: &Store) -> Result<usize, SearchError> {
        let pending: Vec<String> = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            pending.drain().collect()
        };
        if pending.is_empty() {
            return Ok(0);
        }
        let counts = store.listening().play_counts(&pending).await?;
        let mut changed = Vec::new();
        {
            let mut buckets = self
                .buckets
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            for (id, count) in pending.into_iter().zip(counts) {
                let now = bucket(count);
                if buckets.get(&id).copied().unwrap_or(0) != now {
                    buckets.insert(id.clone(), now);
                    changed.push(id);
                }
            }
        }
        if changed.is_empty() {
            return Ok(0);
        }
        let mut updates = Vec::with_capacity(changed.len());
        for id in &changed {
            if let Some(track) = store.catalog().track(id).await? {
                let popularity = Popularity::of(store, &track).await?;
                updates.push((track, popularity));
            }
        }
        let search = self.clone();
        blocking(move || {
            {
                let writer = search.lock();
                for (track, popularity) in &updates {
                    search.add(&writer, track, popularity)?;
                }
            }
            search.commit()
        })
        .await?;
        Ok(changed.len())
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
        popularity: &Popularity,
    ) -> Result<(), SearchError> {
        {
            let writer = self.lock();
            self.add(&writer, track, popularity)?;
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
    fn query(&self, words: &[String], kinds: &[Kind], fuzzy: &[bool]) -> BooleanQuery {
        let f = self.fields;
        let last = words.len() - 1;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (at, word) in words.iter().enumerate() {
            let mut options: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            let term = Term::from_field_text(f.text, word);
            options.push((
                Occur::Should,
                Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
            ));
            let edits = distance(word.chars().count());
            if fuzzy[at] && edits > 0 {
                let typo = FuzzyTermQuery::new(term, edits, true);
                options.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(typo), 0.5)),
                ));
            }
            let chars = word.chars().count();
            if at == last && (2..=PREFIX_CHARS_MAX).contains(&chars) {
                // Type-ahead: the word being typed is a prefix.
                let prefix = Term::from_field_text(f.prefixes, word);
                options.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(TermQuery::new(prefix, IndexRecordOption::Basic)),
                        0.3,
                    )),
                ));
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(options))));
            let in_name = TermQuery::new(
                Term::from_field_text(f.name, word),
                IndexRecordOption::WithFreqs,
            );
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(in_name), 2.0)),
            ));
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
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(allowed))));
        }
        BooleanQuery::new(clauses)
    }

    /// Runs `query`: the total number of matches and the page from `offset`.
    fn run(
        &self,
        query: &BooleanQuery,
        limit: usize,
        offset: usize,
    ) -> Result<(usize, Vec<Hit>), SearchError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let (top, total) = searcher.search(
            query,
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
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
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
        Ok((total, hits))
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
        let artist = listening
            .play_counts(&ids(artist_tracks))
            .await?
            .iter()
            .sum();
        let album = match &track.album_id {
            Some(album_id) => {
                let album_tracks = store
                    .catalog()
                    .album_tracks(album_id, 0, POPULARITY_TRACKS_MAX)
                    .await?;
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
        })
    }
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
        }
    }

    fn names(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|hit| hit.name.as_str()).collect()
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
                .track_published(&track(id, title, artist, album), &Popularity::default())
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
