//! The Subsonic methods that list the catalog: indexes of artists, album lists, random songs,
//! genres and search (an empty query pages through everything, as Symfonium syncs), all from
//! the origin's listings (`GET /v1/browse/*`).

use api::browse::{AlbumList, AlbumSummary, ArtistList, ArtistSummary, GenreList, TrackList};
use api::catalog::{ArtistView, TrackView};
use api::library::LikedTracks;

use super::auth::Caller;
use super::params::Params;
use super::response::{ErrorCode, Failure, Node};
use super::{get, views};
use crate::gateway::Gateway;

/// Articles the artist index ignores (as the origin's name order does).
pub const IGNORED_ARTICLES: &str = "The";

/// Artists listed in an index at most.
const INDEX_ARTISTS_MAX: usize = 20_000;

pub(super) fn query(pairs: &[(&str, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        out.append_pair(key, value);
    }
    out.finish()
}

/// Every artist, by name (pages of 500).
async fn all_artists(gateway: &Gateway, caller: &Caller) -> Result<Vec<ArtistSummary>, Failure> {
    let mut artists = Vec::new();
    loop {
        let page: ArtistList = get(
            gateway,
            caller,
            &format!(
                "/v1/browse/artists?sort=name&limit=500&offset={}",
                artists.len()
            ),
            "artists",
        )
        .await?;
        let done = page.items.len() < 500;
        artists.extend(page.items);
        if done || artists.len() >= INDEX_ARTISTS_MAX {
            return Ok(artists);
        }
    }
}

/// The letter an artist is indexed under: the first of its name without "The", upper case;
/// `#` for anything but a letter.
fn index_letter(name: &str) -> String {
    let trimmed = name.trim_start_matches(|c: char| !c.is_alphanumeric());
    let trimmed = match trimmed.get(..4) {
        Some(head) if head.eq_ignore_ascii_case("the ") && trimmed.len() > 4 => &trimmed[4..],
        _ => trimmed,
    };
    match trimmed.chars().next() {
        Some(c) if c.is_alphabetic() => c.to_uppercase().collect(),
        _ => "#".to_string(),
    }
}

pub(super) fn artist_id3(artist: &ArtistSummary) -> Node {
    Node::new("artist")
        .attr("id", &artist.id)
        .attr("name", &artist.name)
        .attr("coverArt", views::artist_art(&artist.id))
        .attr("albumCount", artist.album_count)
}

/// Artists grouped by letter, under `root` (`artists` or `indexes`).
fn grouped(root: &'static str, artists: &[ArtistSummary], id3: bool) -> Node {
    let mut groups: Vec<(String, Vec<Node>)> = Vec::new();
    for artist in artists {
        let letter = index_letter(&artist.name);
        let node = if id3 {
            artist_id3(artist)
        } else {
            Node::new("artist")
                .attr("id", &artist.id)
                .attr("name", &artist.name)
        };
        match groups.iter_mut().find(|(name, _)| *name == letter) {
            Some((_, nodes)) => nodes.push(node),
            None => groups.push((letter, vec![node])),
        }
    }
    groups.sort_by(|a, b| (a.0 == "#", &a.0).cmp(&(b.0 == "#", &b.0)));
    let mut node = Node::new(root).attr("ignoredArticles", IGNORED_ARTICLES);
    if !id3 {
        let newest = artists.iter().map(|a| a.added_at_ms).max().unwrap_or(0);
        node = node.attr("lastModified", newest);
    }
    node.list(
        "index",
        groups
            .into_iter()
            .map(|(name, artists)| {
                Node::new("index")
                    .attr("name", name)
                    .list("artist", artists)
            })
            .collect(),
    )
}

/// `getArtists` and `getIndexes`.
pub async fn artists(gateway: &Gateway, caller: &Caller, id3: bool) -> Result<Node, Failure> {
    let artists = all_artists(gateway, caller).await?;
    Ok(if id3 {
        grouped("artists", &artists, true)
    } else {
        grouped("indexes", &artists, false)
    })
}

/// An album summary as `albumID3` (id3) or as a directory `child`.
fn album_node(name: &'static str, album: &AlbumSummary, id3: bool) -> Node {
    if id3 {
        return views::album_summary(
            &album.id,
            Some(&album.title),
            &album.artist,
            &album.artist_id,
            album.track_count as usize,
            album.duration_ms.div_ceil(1000),
            album.added_at_ms,
        )
        .attr_opt("year", album.year)
        .attr_opt("genre", album.genre.as_ref())
        .attr("playCount", album.plays);
    }
    Node::new(name)
        .attr("id", &album.id)
        .attr("parent", &album.artist_id)
        .attr("isDir", true)
        .attr("title", &album.title)
        .attr("album", &album.title)
        .attr("artist", &album.artist)
        .attr_opt("year", album.year)
        .attr_opt("genre", album.genre.as_ref())
        .attr("coverArt", views::album_art(&album.id))
        .attr("duration", album.duration_ms.div_ceil(1000))
        .attr("playCount", album.plays)
        .attr("created", views::iso_time(album.added_at_ms))
}

/// `getAlbumList` (`id3` false) and `getAlbumList2`.
pub async fn album_list(
    gateway: &Gateway,
    caller: &Caller,
    params: &Params,
    id3: bool,
) -> Result<Node, Failure> {
    let kind = params.required("type")?;
    let size = params.number("size", 0..=500)?.unwrap_or(10);
    let offset = params.number("offset", 0..=1_000_000)?.unwrap_or(0);
    let root = if id3 { "albumList2" } else { "albumList" };
    let mut pairs = vec![
        ("limit", size.max(1).to_string()),
        ("offset", offset.to_string()),
    ];
    match kind {
        "random" => {
            pairs.push(("sort", "random".into()));
            pairs.push(("seed", rand::random::<u32>().to_string()));
        }
        "newest" | "recent" => pairs.push(("sort", "added".into())),
        "frequent" | "highest" => pairs.push(("sort", "popular".into())),
        "alphabeticalByName" => pairs.push(("sort", "name".into())),
        "alphabeticalByArtist" => pairs.push(("sort", "artist".into())),
        "byYear" => {
            let from = params.number("fromYear", 0..=9999)?;
            let to = params.number("toYear", 0..=9999)?;
            let (Some(from), Some(to)) = (from, to) else {
                return Err(Failure::missing("fromYear and toYear"));
            };
            pairs.push(("sort", if from <= to { "year" } else { "year_desc" }.into()));
            pairs.push(("from_year", from.min(to).to_string()));
            pairs.push(("to_year", from.max(to).to_string()));
        }
        "byGenre" => {
            pairs.push(("sort", "name".into()));
            pairs.push(("genre", params.required("genre")?.to_string()));
        }
        "starred" => return starred_albums(gateway, caller, root, size, offset, id3).await,
        other => {
            return Err(Failure::generic(format!("unknown album list type {other}")));
        }
    }
    if size == 0 {
        return Ok(Node::new(root).list("album", vec![]));
    }
    let page: AlbumList = get(
        gateway,
        caller,
        &format!("/v1/browse/albums?{}", query(&pairs)),
        "albums",
    )
    .await?;
    Ok(Node::new(root).list(
        "album",
        page.items
            .iter()
            .map(|album| album_node("album", album, id3))
            .collect(),
    ))
}

/// Albums of the songs the listener starred (liked), newest like first.
async fn starred_albums(
    gateway: &Gateway,
    caller: &Caller,
    root: &'static str,
    size: i64,
    offset: i64,
    id3: bool,
) -> Result<Node, Failure> {
    let liked: LikedTracks = get(gateway, caller, "/v1/me/tracks?limit=50", "starred").await?;
    let tracks: Vec<TrackView> = liked
        .items
        .into_iter()
        .filter_map(|item| item.track)
        .collect();
    let mut albums = views::albums_of(&tracks);
    if !id3 {
        albums = albums
            .into_iter()
            .map(|album| {
                let mut child = Node::new("album").attr("isDir", true);
                for key in [
                    "id", "name", "artist", "artistId", "coverArt", "duration", "created", "year",
                    "genre",
                ] {
                    if let Some(value) = album.get(key) {
                        let key = match key {
                            "name" => "title",
                            "artistId" => "parent",
                            key => key,
                        };
                        child = child.attr(key, value.clone());
                    }
                }
                child
            })
            .collect();
    }
    let page = albums
        .into_iter()
        .skip(offset as usize)
        .take(size as usize)
        .collect();
    Ok(Node::new(root).list("album", page))
}

/// `getRandomSongs`.
pub async fn random_songs(
    gateway: &Gateway,
    caller: &Caller,
    params: &Params,
) -> Result<Node, Failure> {
    let size = params.number("size", 0..=500)?.unwrap_or(10);
    let mut pairs = vec![
        ("sort", "random".to_string()),
        ("seed", rand::random::<u32>().to_string()),
        ("limit", size.max(1).to_string()),
    ];
    if let Some(genre) = params.get("genre") {
        pairs.push(("genre", genre.to_string()));
    }
    if let Some(from) = params.number("fromYear", 0..=9999)? {
        pairs.push(("from_year", from.to_string()));
    }
    if let Some(to) = params.number("toYear", 0..=9999)? {
        pairs.push(("to_year", to.to_string()));
    }
    let songs = if size == 0 {
        Vec::new()
    } else {
        let page: TrackList = get(
            gateway,
            caller,
            &format!("/v1/browse/tracks?{}", query(&pairs)),
            "songs",
        )
        .await?;
        page.items
            .iter()
            .map(|track| views::song("song", track, None))
            .collect()
    };
    Ok(Node::new("randomSongs").list("song", songs))
}

/// `getGenres`.
pub async fn genres(gateway: &Gateway, caller: &Caller) -> Result<Node, Failure> {
    let list: GenreList = get(gateway, caller, "/v1/browse/genres", "genres").await?;
    Ok(Node::new("genres").list(
        "genre",
        list.items
            .iter()
            .map(|genre| {
                Node::new("genre")
                    .attr("songCount", genre.track_count)
                    .attr("albumCount", genre.album_count)
                    .text(genre.name.clone())
            })
            .collect(),
    ))
}

/// A search query as clients send it: Symfonium sends `""` (two quotes) for everything.
fn search_text(params: &Params) -> Option<String> {
    let raw = params.get("query").unwrap_or("").trim();
    let raw = raw.trim_matches('"').trim();
    // Subsonic servers took Lucene syntax; a trailing `*` is the common one.
    let raw = raw.trim_end_matches('*').trim();
    (!raw.is_empty()).then(|| raw.to_string())
}

/// `search2` (`id3` false) and `search3`: with words, what the search finds; without, pages
/// of everything in a fixed order.
pub async fn search(
    gateway: &Gateway,
    caller: &Caller,
    params: &Params,
    id3: bool,
) -> Result<Node, Failure> {
    let text = search_text(params);
    let count = |name: &str| params.number(name, 0..=500).map(|n| n.unwrap_or(20));
    let skip = |name: &str| params.number(name, 0..=1_000_000).map(|n| n.unwrap_or(0));
    let (artist_count, album_count, song_count) = (
        count("artistCount")?,
        count("albumCount")?,
        count("songCount")?,
    );
    let (artist_offset, album_offset, song_offset) = (
        skip("artistOffset")?,
        skip("albumOffset")?,
        skip("songOffset")?,
    );
    let listing = |kind: &str, limit: i64, offset: i64| {
        let mut pairs = vec![("limit", limit.to_string()), ("offset", offset.to_string())];
        match &text {
            Some(text) => pairs.push(("q", text.clone())),
            None => pairs.push(("sort", "stable".into())),
        }
        format!("/v1/browse/{kind}?{}", query(&pairs))
    };
    // With words, the search's pages stop at 1000 hits: deeper asks get nothing.
    let searched_past = |offset: i64| text.is_some() && offset >= 1000;
    // The three lists are asked for at once: one round trip to the origin, not three.
    let artists = async {
        if artist_count == 0 || searched_past(artist_offset) {
            return Ok(Vec::new());
        }
        let page: ArtistList = get(
            gateway,
            caller,
            &listing("artists", artist_count, artist_offset),
            "artists",
        )
        .await?;
        Ok::<_, Failure>(
            page.items
                .iter()
                .map(|artist| {
                    if id3 {
                        artist_id3(artist)
                    } else {
                        Node::new("artist")
                            .attr("id", &artist.id)
                            .attr("name", &artist.name)
                    }
                })
                .collect(),
        )
    };
    let albums = async {
        if album_count == 0 || searched_past(album_offset) {
            return Ok(Vec::new());
        }
        let page: AlbumList = get(
            gateway,
            caller,
            &listing("albums", album_count, album_offset),
            "albums",
        )
        .await?;
        Ok::<_, Failure>(
            page.items
                .iter()
                .map(|album| album_node("album", album, id3))
                .collect(),
        )
    };
    let songs = async {
        if song_count == 0 || searched_past(song_offset) {
            return Ok(Vec::new());
        }
        let page: TrackList = get(
            gateway,
            caller,
            &listing("tracks", song_count, song_offset),
            "songs",
        )
        .await?;
        Ok::<_, Failure>(
            page.items
                .iter()
                .map(|track| views::song("song", track, None))
                .collect(),
        )
    };
    let (artists, albums, songs) = tokio::join!(artists, albums, songs);
    Ok(Node::new(if id3 {
        "searchResult3"
    } else {
        "searchResult2"
    })
    .list("artist", artists?)
    .list("album", albums?)
    .list("song", songs?))
}

/// `getMusicDirectory`: an artist's albums, or an album's songs.
pub async fn directory(
    gateway: &Gateway,
    caller: &Caller,
    params: &Params,
) -> Result<Node, Failure> {
    let id = super::hex_id(params, "id")?;
    match super::album_of(gateway, caller, id).await {
        Ok((album, tracks)) => {
            return Ok(Node::new("directory")
                .attr("id", &album.id)
                .attr("parent", &album.artist_id)
                .attr("name", album.title.as_deref().unwrap_or("(no album)"))
                .list(
                    "child",
                    tracks
                        .iter()
                        .map(|track| views::song("child", track, None))
                        .collect(),
                ));
        }
        Err(failure) if failure.code == ErrorCode::NotFound => {}
        Err(failure) => return Err(failure),
    }
    let artist: ArtistView =
        get(gateway, caller, &format!("/v1/artists/{id}"), "directory").await?;
    let tracks = super::all_tracks(
        gateway,
        caller,
        &format!("/v1/artists/{id}/tracks"),
        "artist",
    )
    .await?;
    let mut children: Vec<Node> = views::albums_of(&tracks)
        .into_iter()
        .map(|album| {
            let mut child = Node::new("child")
                .attr("parent", &artist.id)
                .attr("isDir", true);
            for key in [
                "id", "name", "artist", "coverArt", "year", "genre", "created",
            ] {
                if let Some(value) = album.get(key) {
                    child = child.attr(if key == "name" { "title" } else { key }, value.clone());
                }
            }
            child
        })
        .collect();
    // Songs without an album sit in the artist's directory itself.
    children.extend(
        tracks
            .iter()
            .filter(|track| track.album_id.is_none())
            .map(|track| views::song("child", track, None)),
    );
    Ok(Node::new("directory")
        .attr("id", &artist.id)
        .attr("name", &artist.name)
        .list("child", children))
}

/// `getLyrics` (by artist and title): the best match's words, as plain text.
pub async fn lyrics(gateway: &Gateway, caller: &Caller, params: &Params) -> Result<Node, Failure> {
    let (artist, title) = (params.get("artist"), params.get("title"));
    let words = format!("{} {}", title.unwrap_or(""), artist.unwrap_or(""));
    let words: String = words.trim().chars().take(256).collect();
    let empty = Node::new("lyrics");
    if words.is_empty() {
        return Ok(empty);
    }
    let page: TrackList = get(
        gateway,
        caller,
        &format!(
            "/v1/browse/tracks?{}",
            query(&[("q", words), ("limit", "5".into())])
        ),
        "lyrics",
    )
    .await?;
    let Some(track) = page.items.iter().find(|track| {
        track.lyrics != api::catalog::LyricsKind::None
            && title.is_none_or(|title| track.title.eq_ignore_ascii_case(title.trim()))
    }) else {
        return Ok(empty);
    };
    let found: api::catalog::LyricsView = get(
        gateway,
        caller,
        &format!("/v1/tracks/{}/lyrics", track.id),
        "lyrics",
    )
    .await?;
    let text: Vec<&str> = found.lines.iter().map(|line| line.text.as_str()).collect();
    Ok(Node::new("lyrics")
        .attr("artist", &found.artist)
        .attr("title", &found.title)
        .text(text.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_letters() {
        assert_eq!(index_letter("The Beatles"), "B");
        assert_eq!(index_letter("björk"), "B");
        assert_eq!(index_letter("Ædele"), "Æ");
        assert_eq!(index_letter("The"), "T");
        assert_eq!(index_letter("50 Cent"), "#");
        assert_eq!(index_letter(""), "#");
        assert_eq!(index_letter("...And You Will Know Us"), "A");
    }

    #[test]
    fn search_text_reads_sync_queries_as_everything() {
        let text = |query: &str| search_text(&Params::parse(query, b"").unwrap());
        assert_eq!(text("query=%22%22"), None);
        assert_eq!(text("query="), None);
        assert_eq!(text(""), None);
        assert_eq!(text("query=*"), None);
        assert_eq!(text("query=queen*"), Some("queen".into()));
    }
}
