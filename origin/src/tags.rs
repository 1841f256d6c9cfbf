//! What an audio file says about itself, and how an upload's JSON metadata overrides it.
//!
//! Tags are read with `lofty` (ID3v1/v2, APE, Vorbis comments in Ogg and FLAC, MP4 atoms,
//! RIFF INFO and ID3 in WAV and AIFF): title, artists, album, album artist, track and disc
//! number, year, genre, ISRC, MusicBrainz ids and embedded lyrics (plain, or LRC for synced
//! lyrics). A file whose tags do not parse is ingested without them: tags are a convenience,
//! the audio is what is checked.
//!
//! Everything read is bounded and cleaned: text loses control characters and is cut to
//! [`TEXT_CHARS_MAX`] characters, numbers outside their range are dropped, identifiers in the
//! wrong shape are dropped, lyrics stop at [`LYRICS_BYTES_MAX`] bytes and
//! [`LYRICS_LINES_MAX`] lines. lofty refuses any single allocation above its global limit
//! (16 MiB by default), and the file it reads is an upload already bounded in size.

use std::io::BufReader;

use api::catalog::TrackMetadata;
use lofty::config::ParseOptions;
use lofty::prelude::*;
use lofty::probe::Probe;

use crate::store::{LyricLine, Lyrics, MusicBrainzIds, TrackDetails};

/// Longest title, artist, album, album artist or genre kept, in characters.
pub const TEXT_CHARS_MAX: usize = 200;
/// Most lyrics text kept, in bytes (also the limit on the upload's `lyrics` field).
pub const LYRICS_BYTES_MAX: usize = 32 * 1024;
/// Most lyrics lines kept.
pub const LYRICS_LINES_MAX: usize = 2_000;

/// What a file's tags say, cleaned and bounded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileTags {
    /// Title.
    pub title: Option<String>,
    /// Artist.
    pub artist: Option<String>,
    /// Album title.
    pub album: Option<String>,
    /// Genre.
    pub genre: Option<String>,
    /// Numbers, year and identifiers (`lyrics` stays empty: see below).
    pub details: TrackDetails,
    /// Embedded lyrics.
    pub lyrics: Option<Lyrics>,
    /// The embedded front cover (else the first picture), as stored in the file.
    pub picture: Option<Vec<u8>>,
}

/// The front cover among the tags' pictures, else the first one; `None` past
/// [`crate::artwork::SOURCE_BYTES_MAX`].
fn picture(tags: &[&lofty::tag::Tag]) -> Option<Vec<u8>> {
    let pictures = || tags.iter().flat_map(|tag| tag.pictures());
    pictures()
        .find(|picture| picture.pic_type() == lofty::picture::PictureType::CoverFront)
        .or_else(|| pictures().next())
        .map(|picture| picture.data())
        .filter(|data| !data.is_empty() && data.len() <= crate::artwork::SOURCE_BYTES_MAX)
        .map(<[u8]>::to_vec)
}

/// Reads the tags of the file at `path`. Never fails: a file without readable tags has none.
pub fn read(path: &std::path::Path) -> FileTags {
    let read = || -> Result<FileTags, String> {
        let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
        let tagged = Probe::new(BufReader::new(file))
            .options(
                ParseOptions::new()
                    .read_properties(false)
                    .read_cover_art(true),
            )
            .guess_file_type()
            .map_err(|error| error.to_string())?
            .read()
            .map_err(|error| error.to_string())?;
        let mut tags: Vec<&lofty::tag::Tag> = tagged.primary_tag().into_iter().collect();
        tags.extend(tagged.tags());
        Ok(from_tags(&tags))
    };
    // A parser bug on a hostile file must cost the tags, not the ingest.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
        Ok(Ok(tags)) => tags,
        Ok(Err(error)) => {
            tracing::debug!(%error, "no readable tags");
            FileTags::default()
        }
        Err(_) => {
            tracing::warn!("reading tags panicked; ingesting without them");
            FileTags::default()
        }
    }
}

/// The first tag (primary first) that has a value for `get`.
fn first<T>(tags: &[&lofty::tag::Tag], get: impl Fn(&lofty::tag::Tag) -> Option<T>) -> Option<T> {
    tags.iter().find_map(|tag| get(tag))
}

fn from_tags(tags: &[&lofty::tag::Tag]) -> FileTags {
    let text = |key: ItemKey| first(tags, |tag| tag.get_string(key).and_then(clean_text));
    let year = first(tags, |tag| tag.date().map(|date| date.year))
        .or_else(|| {
            first(tags, |tag| {
                tag.get_string(ItemKey::Year)
                    .or_else(|| tag.get_string(ItemKey::OriginalReleaseDate))
                    .and_then(leading_year)
            })
        })
        .filter(|year| (1..=9999).contains(year));
    let lyrics = first(tags, |tag| {
        tag.get_string(ItemKey::Lyrics)
            .or_else(|| tag.get_string(ItemKey::UnsyncLyrics))
            .and_then(parse_lyrics)
    });
    FileTags {
        title: first(tags, |tag| tag.title().as_deref().and_then(clean_text)),
        artist: first(tags, |tag| tag.artist().as_deref().and_then(clean_text)),
        album: first(tags, |tag| tag.album().as_deref().and_then(clean_text)),
        genre: first(tags, |tag| tag.genre().as_deref().and_then(clean_text)),
        details: TrackDetails {
            album_artist: text(ItemKey::AlbumArtist),
            track_number: first(tags, |tag| tag.track()).filter(|n| (1..=9999).contains(n)),
            disc_number: first(tags, |tag| tag.disk()).filter(|n| (1..=999).contains(n)),
            year,
            isrc: first(tags, |tag| tag.get_string(ItemKey::Isrc).and_then(isrc)),
            musicbrainz: MusicBrainzIds {
                recording_id: first(tags, |tag| {
                    tag.get_string(ItemKey::MusicBrainzRecordingId)
                        .and_then(mbid)
                }),
                release_id: first(tags, |tag| {
                    tag.get_string(ItemKey::MusicBrainzReleaseId).and_then(mbid)
                }),
                artist_id: first(tags, |tag| {
                    tag.get_string(ItemKey::MusicBrainzArtistId).and_then(mbid)
                }),
                release_artist_id: first(tags, |tag| {
                    tag.get_string(ItemKey::MusicBrainzReleaseArtistId)
                        .and_then(mbid)
                }),
            },
            artwork: None,
            lyrics: None,
        },
        lyrics,
        picture: picture(tags),
    }
}

/// Text without control characters (line breaks and tabs become spaces), trimmed, at most
/// [`TEXT_CHARS_MAX`] characters; `None` if nothing is left.
pub fn clean_text(text: &str) -> Option<String> {
    let spaced: String = text
        .chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    let trimmed = crate::text::trim_blank(&spaced);
    let cut: String = trimmed.chars().take(TEXT_CHARS_MAX).collect();
    let cut = crate::text::trim_blank(&cut);
    (!cut.is_empty()).then(|| cut.to_string())
}

/// The year a date string starts with (`2004`, `2004-05-01`, `2004/05`).
fn leading_year(text: &str) -> Option<u16> {
    let digits: String = text
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (digits.len() == 4).then(|| digits.parse().ok()).flatten()
}

/// An ISRC in its canonical form (12 characters, upper case, no hyphens), or `None`.
pub fn isrc(text: &str) -> Option<String> {
    let code: String = text
        .trim()
        .chars()
        .filter(|&c| c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = code.as_bytes();
    let shaped = bytes.len() == 12
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..5].iter().all(u8::is_ascii_alphanumeric)
        && bytes[5..].iter().all(u8::is_ascii_digit);
    shaped.then_some(code)
}

/// A MusicBrainz id (a UUID) in lower case, or `None`.
pub fn mbid(text: &str) -> Option<String> {
    let id = text.trim().to_ascii_lowercase();
    let shaped = id.len() == 36
        && id.char_indices().all(|(at, c)| match at {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    shaped.then_some(id)
}

/// LRC's ID tags: a line that is one of these in brackets and nothing else is a header.
const LRC_HEADERS: [&str; 10] = [
    "ar", "ti", "al", "au", "by", "re", "ve", "length", "offset", "#",
];
/// Largest `[offset:]` honoured, either way.
const LRC_OFFSET_MAX_MS: i64 = 3_600_000;

/// Parses lyrics: LRC (`[mm:ss.xx]` stamps, several per line allowed, `[offset:±ms]`
/// honoured, header lines such as `[ar:…]` skipped) gives synced lines in time order; text
/// without stamps gives plain lines (`[Verse 1: Someone]` and the like are kept as words).
/// At most [`LYRICS_BYTES_MAX`] bytes are read, and the lines kept hold at most that many
/// bytes of words (a line with many stamps counts once per stamp) in at most
/// [`LYRICS_LINES_MAX`] lines; `None` when no words are left.
pub fn parse_lyrics(text: &str) -> Option<Lyrics> {
    let mut end = text.len().min(LYRICS_BYTES_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = text[..end]
        .trim_start_matches('\u{feff}')
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut offset_ms: i64 = 0;
    let mut timed: Vec<(u64, String)> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    // Bytes of words kept: a stamp's line counts once per stamp.
    let mut kept_bytes = 0usize;
    'lines: for line in text.lines() {
        let mut rest = line.trim();
        let mut stamps = Vec::new();
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(close) = inner.find(']') else {
                break;
            };
            let Some(ms) = lrc_time(&inner[..close]) else {
                break;
            };
            stamps.push(ms);
            rest = inner[close + 1..].trim_start();
        }
        if stamps.is_empty()
            && let Some((key, value)) = lrc_header(rest)
        {
            if key == "offset"
                && let Ok(offset) = value.trim().parse::<i64>()
            {
                offset_ms = offset.clamp(-LRC_OFFSET_MAX_MS, LRC_OFFSET_MAX_MS);
            }
            continue;
        }
        let words = clean_line(rest);
        if stamps.is_empty() {
            if !timed.is_empty() {
                // Untimed lines among synced ones are dropped, and do not count.
                continue;
            }
            if plain.len() >= LYRICS_LINES_MAX || kept_bytes + words.len() > LYRICS_BYTES_MAX {
                break;
            }
            kept_bytes += words.len();
            plain.push(words);
        } else {
            for stamp in stamps {
                if timed.len() >= LYRICS_LINES_MAX || kept_bytes + words.len() > LYRICS_BYTES_MAX {
                    break 'lines;
                }
                kept_bytes += words.len();
                timed.push((stamp, words.clone()));
            }
        }
    }
    let lyrics = if !timed.is_empty() {
        // A positive offset makes the lyrics come earlier.
        timed.sort_by_key(|(at, _)| *at);
        Lyrics {
            synced: true,
            lines: timed
                .into_iter()
                .map(|(at, text)| LyricLine {
                    start_ms: Some((at as i64).saturating_sub(offset_ms).max(0) as u64),
                    text,
                })
                .collect(),
        }
    } else {
        let first = plain.iter().position(|line| !line.is_empty())?;
        let last = plain.iter().rposition(|line| !line.is_empty())?;
        Lyrics {
            synced: false,
            lines: plain[first..=last]
                .iter()
                .map(|text| LyricLine {
                    start_ms: None,
                    text: text.clone(),
                })
                .collect(),
        }
    };
    lyrics
        .lines
        .iter()
        .any(|line| !line.text.is_empty())
        .then_some(lyrics)
}

/// A header line (`[ar:Someone]`, `[offset:+500]`: a known LRC ID tag in brackets and
/// nothing after): its key in lower case and its value.
fn lrc_header(line: &str) -> Option<(String, &str)> {
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    let (key, value) = inner.split_once(':')?;
    let key = key.trim().to_ascii_lowercase();
    LRC_HEADERS.contains(&key.as_str()).then_some((key, value))
}

/// `mm:ss`, `mm:ss.xx` or `mm:ss.xxx` in milliseconds.
fn lrc_time(tag: &str) -> Option<u64> {
    let (minutes, seconds) = tag.trim().split_once(':')?;
    if minutes.is_empty()
        || minutes.len() > 4
        || !minutes.bytes().all(|b| b.is_ascii_digit())
        || seconds.is_empty()
    {
        return None;
    }
    let (whole, fraction) = seconds.split_once(['.', ':']).unwrap_or((seconds, ""));
    if whole.len() != 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 3
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let minutes: u64 = minutes.parse().ok()?;
    let whole: u64 = whole.parse().ok()?;
    if whole >= 60 {
        return None;
    }
    let fraction_ms = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<u64>().ok()? * 100,
        2 => fraction.parse::<u64>().ok()? * 10,
        _ => fraction.parse::<u64>().ok()?,
    };
    Some(minutes * 60_000 + whole * 1000 + fraction_ms)
}

/// A lyrics line without control characters or surrounding space.
fn clean_line(line: &str) -> String {
    let kept: String = line
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect();
    crate::text::trim_blank(&kept).to_string()
}

/// A track's title, artist, album, genre, markets and details: the upload's metadata over
/// the file's tags, with the fallbacks filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInfo {
    /// Title.
    pub title: String,
    /// Artist display name.
    pub artist: String,
    /// Album title.
    pub album: Option<String>,
    /// Genre.
    pub genre: Option<String>,
    /// Regions where it may be played (empty: everywhere).
    pub markets: Vec<String>,
    /// Numbers, year, identifiers (`lyrics` is filled when they are stored).
    pub details: TrackDetails,
    /// Lyrics, to store beside the record.
    pub lyrics: Option<Lyrics>,
    /// The embedded cover, to prepare ([`TrackInfo::prepare_artwork`]) and store.
    pub picture: Option<Vec<u8>>,
    /// The cover's sizes, once prepared.
    pub artwork: Vec<crate::artwork::Sized>,
}

impl TrackInfo {
    /// Makes the cover's sizes from the embedded picture (CPU work: call off the async
    /// runtime). A picture that does not decode costs the artwork, not the upload.
    pub fn prepare_artwork(&mut self) {
        if let Some(picture) = self.picture.take() {
            match crate::artwork::prepare(&picture) {
                Ok(sizes) => self.artwork = sizes,
                Err(error) => tracing::info!(%error, "embedded cover art left out"),
            }
        }
    }

    /// `metadata` (already checked) over `tags`. The title falls back to `file_name`'s stem,
    /// then "Untitled"; the artist to `account_name`.
    pub fn resolve(
        tags: FileTags,
        metadata: Option<&TrackMetadata>,
        file_name: Option<&str>,
        account_name: &str,
    ) -> Self {
        let empty = TrackMetadata::default();
        let metadata = metadata.unwrap_or(&empty);
        let given = |value: &Option<String>| value.as_deref().and_then(clean_text);
        let stem = file_name
            .map(|name| {
                let name = name.rsplit(['/', '\\']).next().unwrap_or(name);
                name.rsplit_once('.').map_or(name, |(stem, _)| stem)
            })
            .and_then(clean_text);
        let mut details = tags.details;
        let mut lyrics = tags.lyrics;
        if let Some(album_artist) = given(&metadata.album_artist) {
            details.album_artist = Some(album_artist);
        }
        if metadata.track_number.is_some() {
            details.track_number = metadata.track_number;
        }
        if metadata.disc_number.is_some() {
            details.disc_number = metadata.disc_number;
        }
        if metadata.year.is_some() {
            details.year = metadata.year;
        }
        if let Some(code) = metadata.isrc.as_deref().and_then(isrc) {
            details.isrc = Some(code);
        }
        if let Some(given) = &metadata.lyrics {
            lyrics = parse_lyrics(given);
        }
        let artist = given(&metadata.artist)
            .or(tags.artist)
            .or_else(|| clean_text(account_name))
            .unwrap_or_else(|| "Unknown artist".into());
        if details.album_artist.as_deref() == Some(artist.as_str()) {
            details.album_artist = None;
        }
        Self {
            title: given(&metadata.title)
                .or(tags.title)
                .or(stem)
                .unwrap_or_else(|| "Untitled".into()),
            artist,
            album: given(&metadata.album).or(tags.album),
            genre: given(&metadata.genre).or(tags.genre),
            markets: metadata.markets.clone().unwrap_or_default(),
            details,
            lyrics,
            picture: tags.picture,
            artwork: Vec::new(),
        }
    }

    /// The album's id: the owner, album artist (or artist), title and year, case-folded, so
    /// one account's albums are told apart by all three and no account can add tracks to
    /// another's album.
    pub fn album_id(&self, owner: &str) -> Option<String> {
        let album = self.album.as_ref()?;
        let album_artist = self.details.album_artist.as_deref().unwrap_or(&self.artist);
        let year = self.details.year.map(|year| year.to_string());
        let key = format!(
            "album\0{owner}\0{}\0{}\0{}",
            album_artist.to_lowercase(),
            album.to_lowercase(),
            year.unwrap_or_default()
        );
        Some(hex::encode(&blake3::hash(key.as_bytes()).as_bytes()[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lrc_gives_synced_lines_in_time_order() {
        let lyrics = parse_lyrics(
            "[ar:Someone]\n[offset:+500]\n[00:12.00]First\n[00:05.50][01:00.250]Chorus\n\n[00:20]Third",
        )
        .unwrap();
        assert!(lyrics.synced);
        let lines: Vec<(Option<u64>, &str)> = lyrics
            .lines
            .iter()
            .map(|line| (line.start_ms, line.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (Some(5_000), "Chorus"),
                (Some(11_500), "First"),
                (Some(19_500), "Third"),
                (Some(59_750), "Chorus"),
            ]
        );
    }

    #[test]
    fn plain_lyrics_keep_their_lines_and_lose_the_blank_edges() {
        let lyrics =
            parse_lyrics("\n\nOne line\r\n\r[Verse 1: Someone] two\u{7}\rthree\n\n").unwrap();
        assert!(!lyrics.synced);
        let lines: Vec<&str> = lyrics.lines.iter().map(|line| line.text.as_str()).collect();
        assert_eq!(
            lines,
            vec!["One line", "", "[Verse 1: Someone] two", "three"]
        );
        assert_eq!(parse_lyrics("  \n\n "), None);
        assert_eq!(parse_lyrics("[ar:Only a header]"), None);
    }

    #[test]
    fn an_offset_applies_to_every_line_and_is_clamped() {
        let lyrics = parse_lyrics("[00:10.00]before\n[offset:-2000]\n[00:20.00]after").unwrap();
        let starts: Vec<Option<u64>> = lyrics.lines.iter().map(|line| line.start_ms).collect();
        assert_eq!(starts, vec![Some(12_000), Some(22_000)]);
        let lyrics = parse_lyrics(&format!("[offset:{}]\n[00:01.00]x", i64::MIN)).unwrap();
        assert_eq!(lyrics.lines[0].start_ms, Some(3_601_000));
        let lyrics = parse_lyrics(&format!("[offset:{}]\n[00:01.00]x", i64::MAX)).unwrap();
        assert_eq!(lyrics.lines[0].start_ms, Some(0));
    }

    #[test]
    fn lyrics_are_bounded() {
        let long = "la la la\n".repeat(20_000);
        let lyrics = parse_lyrics(&long).unwrap();
        assert!(lyrics.lines.len() <= LYRICS_LINES_MAX);
        assert!(lyrics.text().len() <= LYRICS_BYTES_MAX + LYRICS_LINES_MAX);
        // Many stamps on one long line: each copy counts against the bound.
        let stamped = format!("{}{}", "[0:00]".repeat(2_000), "w".repeat(20_000));
        let lyrics = parse_lyrics(&stamped).unwrap();
        let bytes: usize = lyrics.lines.iter().map(|line| line.text.len()).sum();
        assert!(bytes <= LYRICS_BYTES_MAX, "{bytes} bytes kept");
        assert!(lyrics.synced && !lyrics.lines.is_empty());
        // Cut inside a multi-byte character: still valid text.
        let wide = "é".repeat(LYRICS_BYTES_MAX);
        assert!(parse_lyrics(&wide).is_some());
    }

    #[test]
    fn identifiers_are_checked() {
        assert_eq!(isrc("us-rc1-76-07839").as_deref(), Some("USRC17607839"));
        assert_eq!(isrc("USRC1760783"), None);
        assert_eq!(isrc("12RC17607839"), None);
        assert_eq!(
            mbid(" 5B11F4CE-A62D-471E-81FC-A69A8278C7DA ").as_deref(),
            Some("5b11f4ce-a62d-471e-81fc-a69a8278c7da")
        );
        assert_eq!(mbid("5b11f4ce-a62d-471e-81fc-a69a8278c7d"), None);
        assert_eq!(mbid("5b11f4ce_a62d_471e_81fc_a69a8278c7da"), None);
        assert_eq!(leading_year("2004-05-01"), Some(2004));
        assert_eq!(leading_year("04"), None);
    }

    #[test]
    fn text_is_cleaned_and_cut() {
        assert_eq!(clean_text(" a\tb\u{0}c \n"), Some("a bc".into()));
        assert_eq!(clean_text("\u{3000} "), None);
        assert_eq!(clean_text(&"x".repeat(500)).unwrap().len(), TEXT_CHARS_MAX);
    }

    #[test]
    fn metadata_overrides_tags_and_fallbacks_fill_the_rest() {
        let tags = FileTags {
            title: Some("Tag title".into()),
            artist: Some("Tag artist".into()),
            album: Some("Tag album".into()),
            genre: None,
            details: TrackDetails {
                track_number: Some(3),
                year: Some(1999),
                ..TrackDetails::default()
            },
            lyrics: parse_lyrics("words"),
            picture: None,
        };
        let metadata = TrackMetadata {
            title: Some("Given".into()),
            year: Some(2001),
            lyrics: Some(String::new()),
            ..TrackMetadata::default()
        };
        let info = TrackInfo::resolve(tags.clone(), Some(&metadata), None, "account");
        assert_eq!(info.title, "Given");
        assert_eq!(info.artist, "Tag artist");
        assert_eq!(info.album.as_deref(), Some("Tag album"));
        assert_eq!(info.details.track_number, Some(3));
        assert_eq!(info.details.year, Some(2001));
        assert_eq!(info.lyrics, None);

        let bare = TrackInfo::resolve(
            FileTags::default(),
            None,
            Some("dir/My Song.flac"),
            "account",
        );
        assert_eq!(
            (bare.title.as_str(), bare.artist.as_str()),
            ("My Song", "account")
        );
        assert_eq!(bare.album_id("owner"), None);
    }

    #[test]
    fn albums_are_told_apart_by_album_artist_title_and_year() {
        let info = |album_artist: Option<&str>, album: &str, year: Option<u16>| TrackInfo {
            title: "t".into(),
            artist: "Track Artist".into(),
            album: Some(album.into()),
            genre: None,
            markets: Vec::new(),
            details: TrackDetails {
                album_artist: album_artist.map(str::to_string),
                year,
                ..TrackDetails::default()
            },
            lyrics: None,
            picture: None,
            artwork: Vec::new(),
        };
        let base = info(None, "Album", Some(2000));
        assert_eq!(
            base.album_id("o"),
            info(Some("track artist"), "ALBUM", Some(2000)).album_id("o")
        );
        assert_ne!(
            base.album_id("o"),
            info(Some("Various"), "Album", Some(2000)).album_id("o")
        );
        assert_ne!(
            base.album_id("o"),
            info(None, "Album", Some(2001)).album_id("o")
        );
        assert_ne!(base.album_id("o"), base.album_id("another owner"));
    }
}
