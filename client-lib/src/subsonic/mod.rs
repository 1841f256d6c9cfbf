//! OpenSubsonic on the gateway (`/rest/*`): the apps listeners already use (DSub, Symfonium,
//! Feishin, Supersonic, Tempo, play:Sub…) browse the catalog and play through the gateway,
//! P2P-assisted like every other gateway stream.
//!
//! Each request names its method (`/rest/getAlbum` or `/rest/getAlbum.view`), its format
//! (`f=json`, else XML) and its credentials; parameters come from the query string and, for a
//! form `POST`, the body. The caller logs in at the origin with an app password or API key
//! ([`auth`]); every catalog answer is the origin's, as that caller, written as Subsonic
//! elements ([`views`]). Failures are Subsonic errors in the envelope, with HTTP 200 as
//! clients expect (404 for a method this server does not have).

pub mod auth;
pub mod browse;
pub mod params;
pub mod playlists;
pub mod response;
pub mod views;

use std::sync::Arc;

use api::catalog::{AlbumView, ArtistView, LyricsView, TrackPage, TrackView};
use api::client::ApiError;
use api::library::{FollowedArtists, LikedTracks, PlayerState, PlayerUpdate};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::gateway::Gateway;
use auth::Caller;
use params::Params;
use response::{ErrorCode, Failure, Format, Node};

/// Tracks read for one album or artist at most (pages of 50).
const TRACKS_MAX: usize = 2_000;

/// Pictures kept in memory for `getCoverArt` (bytes over all).
pub const ART_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The Subsonic side of a gateway: sessions by credential and the picture cache.
#[derive(Debug, Default)]
pub struct Subsonic {
    sessions: auth::Sessions,
    art: std::sync::Mutex<ArtCache>,
}

/// Pictures by origin path, least recently used dropped first.
#[derive(Debug, Default)]
struct ArtCache {
    entries: std::collections::HashMap<String, (Bytes, String, u64)>,
    bytes: usize,
    clock: u64,
}

impl ArtCache {
    fn get(&mut self, path: &str) -> Option<(Bytes, String)> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(path).map(|(bytes, kind, used)| {
            *used = clock;
            (bytes.clone(), kind.clone())
        })
    }

    fn put(&mut self, path: String, bytes: Bytes, kind: String) {
        if bytes.len() > ART_CACHE_BYTES / 8 {
            return;
        }
        while self.bytes + bytes.len() > ART_CACHE_BYTES {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some((gone, _, _)) = self.entries.remove(&oldest) {
                self.bytes -= gone.len();
            }
        }
        self.clock += 1;
        self.bytes += bytes.len();
        if let Some((old, _, _)) = self.entries.insert(path, (bytes, kind, self.clock)) {
            self.bytes -= old.len();
        }
    }
}

/// What a method answers: an element in the envelope, or a response of its own (audio,
/// pictures).
enum Answer {
    Body(Option<Node>),
    Raw(Response),
}

/// Serves `/rest/{method}` for `gateway`.
pub async fn serve(
    gateway: Arc<Gateway>,
    method: String,
    query: Option<String>,
    headers: HeaderMap,
    form: Bytes,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded"));
    let form: &[u8] = if is_form { &form } else { &[] };
    let params = match Params::parse(query.as_deref().unwrap_or(""), form) {
        Ok(params) => params,
        Err(failure) => return envelope(Format::Xml, Err(failure)),
    };
    let format = Format::of(params.get("f"));
    let method = method.strip_suffix(".view").unwrap_or(&method).to_string();
    if !METHODS.contains(&method.as_str()) {
        let mut response = envelope(
            format,
            Err(Failure::new(
                ErrorCode::NotFound,
                format!("this server has no method {method}"),
            )),
        );
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    if method == "getOpenSubsonicExtensions" {
        // OpenSubsonic: answered without credentials, so a client can probe before logging in.
        return envelope(format, Ok(Some(extensions())));
    }
    let subsonic = gateway.subsonic();
    let caller = match subsonic.sessions.caller(gateway.api(), &params).await {
        Ok(caller) => caller,
        Err(failure) => return envelope(format, Err(failure)),
    };
    let mut answer = call(&gateway, &method, &caller, &params, &headers).await;
    if let Err(failure) = &answer
        && failure.code == ErrorCode::WrongCredentials
    {
        // The origin refused the remembered token (revoked, or expired early): log in once
        // more, which fails for good if the credential is gone.
        subsonic.sessions.forget(&caller).await;
        answer = match subsonic.sessions.caller(gateway.api(), &params).await {
            Ok(caller) => call(&gateway, &method, &caller, &params, &headers).await,
            Err(failure) => Err(failure),
        };
    }
    match answer {
        Ok(Answer::Raw(response)) => response,
        Ok(Answer::Body(body)) => envelope(format, Ok(body)),
        Err(failure) => envelope(format, Err(failure)),
    }
}

fn envelope(format: Format, body: Result<Option<Node>, Failure>) -> Response {
    let text = match body {
        Ok(body) => response::ok(format, body),
        Err(failure) => response::failed(format, &failure),
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        text,
    )
        .into_response()
}

/// The methods served.
pub const METHODS: &[&str] = &[
    "ping",
    "getLicense",
    "getOpenSubsonicExtensions",
    "getUser",
    "getMusicFolders",
    "getArtists",
    "getIndexes",
    "getMusicDirectory",
    "getAlbumList",
    "getAlbumList2",
    "getRandomSongs",
    "getGenres",
    "search2",
    "search3",
    "getLyrics",
    "getSong",
    "getAlbum",
    "getArtist",
    "getLyricsBySongId",
    "getCoverArt",
    "stream",
    "download",
    "star",
    "unstar",
    "getStarred",
    "getStarred2",
    "getPlayQueue",
    "savePlayQueue",
    "getPlaylists",
    "getPlaylist",
    "createPlaylist",
    "updatePlaylist",
    "deletePlaylist",
    "scrobble",
];

/// The origin's refusal as a Subsonic failure.
fn origin_failure(error: anyhow::Error, what: &str) -> Failure {
    match ApiError::of(&error) {
        Some(refused) if refused.status == 404 => Failure::not_found(what),
        Some(refused) if refused.status == 401 => {
            Failure::new(ErrorCode::WrongCredentials, "Wrong username or password")
        }
        Some(refused) if refused.status == 403 => {
            Failure::new(ErrorCode::NotAuthorized, refused.message.clone())
        }
        Some(refused) if refused.status == 400 => Failure::generic(refused.message.clone()),
        _ => Failure::generic(format!("{error:#}")),
    }
}

/// Checks an id is 32 hex characters (what every Chorus id is).
fn hex_id<'a>(params: &'a Params, name: &str) -> Result<&'a str, Failure> {
    let id = params.required(name)?;
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(Failure::not_found("an item with that id"))
    }
}

async fn get<T: serde::de::DeserializeOwned>(
    gateway: &Gateway,
    caller: &Caller,
    path: &str,
    what: &str,
) -> Result<T, Failure> {
    gateway
        .api()
        .get_as(caller.token(), path)
        .await
        .map_err(|error| origin_failure(error, what))
}

/// Every track of a paged listing (`path` takes `limit` and `offset`), up to [`TRACKS_MAX`].
async fn all_tracks(
    gateway: &Gateway,
    caller: &Caller,
    path: &str,
    what: &str,
) -> Result<Vec<TrackView>, Failure> {
    let mut tracks = Vec::new();
    while tracks.len() < TRACKS_MAX {
        let separator = if path.contains('?') { '&' } else { '?' };
        let page: TrackPage = get(
            gateway,
            caller,
            &format!("{path}{separator}limit=50&offset={}", tracks.len()),
            what,
        )
        .await?;
        let done = page.items.len() < 50;
        tracks.extend(page.items);
        if done {
            break;
        }
    }
    Ok(tracks)
}

async fn album_of(
    gateway: &Gateway,
    caller: &Caller,
    id: &str,
) -> Result<(AlbumView, Vec<TrackView>), Failure> {
    let mut view: AlbumView = get(
        gateway,
        caller,
        &format!("/v1/albums/{id}?limit=50"),
        "album",
    )
    .await?;
    let mut tracks = std::mem::take(&mut view.tracks.items);
    if tracks.len() == 50 {
        tracks = all_tracks(gateway, caller, &format!("/v1/albums/{id}"), "album")
            .await?
            .into_iter()
            .collect();
    }
    Ok((view, tracks))
}

async fn call(
    gateway: &Arc<Gateway>,
    method: &str,
    caller: &Caller,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Answer, Failure> {
    let body = |node: Node| Ok(Answer::Body(Some(node)));
    match method {
        "ping" => Ok(Answer::Body(None)),
        "getLicense" => body(
            Node::new("license")
                .attr("valid", true)
                .attr("email", "")
                .attr("licenseExpires", "2100-01-01T00:00:00Z"),
        ),
        "getUser" => {
            let asked = params.get("username").unwrap_or(caller.username());
            if asked != caller.username() {
                return Err(Failure::new(
                    ErrorCode::NotAuthorized,
                    "only your own user can be read",
                ));
            }
            body(user(caller))
        }
        "getMusicFolders" => body(Node::new("musicFolders").list(
            "musicFolder",
            vec![Node::new("musicFolder").attr("id", 1).attr("name", "Chorus")],
        )),
        "getArtists" => body(browse::artists(gateway, caller, true).await?),
        "getIndexes" => body(browse::artists(gateway, caller, false).await?),
        "getMusicDirectory" => body(browse::directory(gateway, caller, params).await?),
        "getAlbumList" => body(browse::album_list(gateway, caller, params, false).await?),
        "getAlbumList2" => body(browse::album_list(gateway, caller, params, true).await?),
        "getRandomSongs" => body(browse::random_songs(gateway, caller, params).await?),
        "getGenres" => body(browse::genres(gateway, caller).await?),
        "search2" => body(browse::search(gateway, caller, params, false).await?),
        "search3" => body(browse::search(gateway, caller, params, true).await?),
        "getLyrics" => body(browse::lyrics(gateway, caller, params).await?),
        "getSong" => {
            let id = hex_id(params, "id")?;
            let track: TrackView =
                get(gateway, caller, &format!("/v1/tracks/{id}"), "song").await?;
            body(views::song("song", &track, None))
        }
        "getAlbum" => {
            let id = hex_id(params, "id")?;
            let (view, tracks) = album_of(gateway, caller, id).await?;
            body(views::album(&view, &tracks, true))
        }
        "getArtist" => {
            let id = hex_id(params, "id")?;
            let artist: ArtistView =
                get(gateway, caller, &format!("/v1/artists/{id}"), "artist").await?;
            let tracks = all_tracks(
                gateway,
                caller,
                &format!("/v1/artists/{id}/tracks"),
                "artist",
            )
            .await?;
            let albums = views::albums_of(&tracks);
            body(
                Node::new("artist")
                    .attr("id", &artist.id)
                    .attr("name", &artist.name)
                    .attr("coverArt", views::artist_art(&artist.id))
                    .attr("albumCount", albums.len())
                    .list("album", albums),
            )
        }
        "getLyricsBySongId" => {
            let id = hex_id(params, "id")?;
            let found: Result<LyricsView, Failure> = get(
                gateway,
                caller,
                &format!("/v1/tracks/{id}/lyrics"),
                "lyrics",
            )
            .await;
            let mut list = Node::new("lyricsList");
            match found {
                Ok(lyrics) => list = list.list("structuredLyrics", vec![structured(&lyrics)]),
                Err(failure) if failure.code == ErrorCode::NotFound => {
                    list = list.list("structuredLyrics", vec![])
                }
                Err(failure) => return Err(failure),
            }
            body(list)
        }
        "getCoverArt" => cover_art(gateway, caller, params).await,
        "stream" | "download" => stream(gateway, caller, params, headers, method).await,
        "star" | "unstar" => {
            star(gateway, caller, params, method == "star").await?;
            Ok(Answer::Body(None))
        }
        "getStarred" | "getStarred2" => starred(gateway, caller, method == "getStarred2").await,
        "getPlayQueue" => {
            let state: PlayerState = get(gateway, caller, "/v1/me/player", "play queue").await?;
            if state.version == 0 {
                return Ok(Answer::Body(None));
            }
            let entries = tracks_by_id(gateway, caller, &state.queue).await?;
            body(
                Node::new("playQueue")
                    .attr_opt("current", state.queue.get(state.index as usize))
                    .attr("position", state.position_ms)
                    .attr("username", caller.username())
                    .attr("changed", views::iso_time(state.updated_at_ms))
                    .attr("changedBy", &state.device)
                    .list(
                        "entry",
                        entries
                            .iter()
                            .map(|track| views::song("entry", track, None))
                            .collect(),
                    ),
            )
        }
        "getPlaylists" => body(playlists::list(gateway, caller, params).await?),
        "getPlaylist" => body(playlists::one(gateway, caller, params).await?),
        "createPlaylist" => body(playlists::create(gateway, caller, params).await?),
        "updatePlaylist" => {
            playlists::update(gateway, caller, params).await?;
            Ok(Answer::Body(None))
        }
        "deletePlaylist" => {
            playlists::delete(gateway, caller, params).await?;
            Ok(Answer::Body(None))
        }
        "scrobble" => {
            playlists::scrobble(gateway, caller, params).await?;
            Ok(Answer::Body(None))
        }
        "savePlayQueue" => {
            save_play_queue(gateway, caller, params).await?;
            Ok(Answer::Body(None))
        }
        _ => Err(Failure::not_found("method")),
    }
}

/// Tracks by id, in that order, 100 a request (ids the catalog lacks are left out).
async fn tracks_by_id(
    gateway: &Gateway,
    caller: &Caller,
    ids: &[String],
) -> Result<Vec<TrackView>, Failure> {
    let mut tracks = Vec::with_capacity(ids.len());
    for group in ids.chunks(100) {
        let list: api::browse::TrackList = get(
            gateway,
            caller,
            &format!("/v1/browse/tracks?ids={}", group.join(",")),
            "songs",
        )
        .await?;
        tracks.extend(list.items);
    }
    Ok(tracks)
}

/// `getStarred` (`id3` false: artists as `artist`, albums as directories) and
/// `getStarred2`: liked songs, their albums, followed artists.
async fn starred(gateway: &Gateway, caller: &Caller, id3: bool) -> Result<Answer, Failure> {
    let liked: LikedTracks = get(gateway, caller, "/v1/me/tracks?limit=50", "starred").await?;
    let followed: FollowedArtists = get(
        gateway,
        caller,
        "/v1/me/following/artists?limit=50",
        "starred",
    )
    .await?;
    let songs: Vec<Node> = liked
        .items
        .iter()
        .filter_map(|item| {
            item.track
                .as_ref()
                .map(|track| views::song("song", track, Some(item.added_at_ms)))
        })
        .collect();
    let when: std::collections::HashMap<&str, u64> = followed
        .items
        .iter()
        .map(|artist| (artist.id.as_str(), artist.followed_at_ms))
        .collect();
    let artists: Vec<Node> = if followed.items.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<&str> = followed.items.iter().map(|a| a.id.as_str()).collect();
        let list: api::browse::ArtistList = get(
            gateway,
            caller,
            &format!("/v1/browse/artists?ids={}", ids.join(",")),
            "starred",
        )
        .await?;
        list.items
            .iter()
            .map(|artist| {
                let node = if id3 {
                    browse::artist_id3(artist)
                } else {
                    Node::new("artist")
                        .attr("id", &artist.id)
                        .attr("name", &artist.name)
                };
                node.attr_opt(
                    "starred",
                    when.get(artist.id.as_str()).map(|at| views::iso_time(*at)),
                )
            })
            .collect()
    };
    let tracks: Vec<TrackView> = liked
        .items
        .into_iter()
        .filter_map(|item| item.track)
        .collect();
    let albums = if id3 {
        views::albums_of(&tracks)
    } else {
        Vec::new()
    };
    Ok(Answer::Body(Some(
        Node::new(if id3 { "starred2" } else { "starred" })
            .list("artist", artists)
            .list("album", albums)
            .list("song", songs),
    )))
}

/// The OpenSubsonic extensions served.
fn extensions() -> Node {
    Node::top_level().list(
        "openSubsonicExtensions",
        [
            ("apiKeyAuthentication", 1),
            ("formPost", 1),
            ("songLyrics", 1),
            ("transcodeOffset", 1),
        ]
        .into_iter()
        .map(|(name, version)| {
            Node::new("openSubsonicExtensions")
                .attr("name", name)
                .values("versions", vec![response::Value::Int(version)])
        })
        .collect(),
    )
}

fn user(caller: &Caller) -> Node {
    let mut node = Node::new("user")
        .attr("username", caller.username())
        .attr("email", "")
        .attr("scrobblingEnabled", true);
    for (role, granted) in [
        ("adminRole", false),
        ("settingsRole", false),
        ("downloadRole", true),
        ("uploadRole", false),
        ("playlistRole", true),
        ("coverArtRole", true),
        ("commentRole", false),
        ("podcastRole", false),
        ("streamRole", true),
        ("jukeboxRole", false),
        ("shareRole", false),
        ("videoConversionRole", false),
    ] {
        node = node.attr(role, granted);
    }
    node.values("folder", vec![response::Value::Int(1)])
}

/// Lyrics as OpenSubsonic's `structuredLyrics` (the songLyrics extension).
fn structured(lyrics: &LyricsView) -> Node {
    Node::new("structuredLyrics")
        .attr("displayArtist", &lyrics.artist)
        .attr("displayTitle", &lyrics.title)
        .attr("lang", "xxx")
        .attr("synced", lyrics.synced)
        .list(
            "line",
            lyrics
                .lines
                .iter()
                .map(|line| {
                    Node::new("line")
                        .attr_opt("start", line.start_ms)
                        .text(line.text.clone())
                })
                .collect(),
        )
}

async fn cover_art(gateway: &Gateway, caller: &Caller, params: &Params) -> Result<Answer, Failure> {
    let id = params.required("id")?;
    let size = params.number("size", 1..=8192)?.unwrap_or(0) as u32;
    let (bytes, kind) = cover(gateway, caller.token(), id, size).await?;
    let mut response = Response::new(Body::from(bytes));
    if let Ok(value) = HeaderValue::from_str(&kind) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    Ok(Answer::Raw(response))
}

/// The picture of `id` (`al-`, `ar-` or `tr-` and the item's id) as the listener whose token
/// is `access` sees it, at the smallest size at least `size` (the largest for 0), and its
/// media type; pictures are kept in the gateway's memory (the web player uses it too).
pub(crate) async fn cover(
    gateway: &Gateway,
    access: &str,
    id: &str,
    size: u32,
) -> Result<(bytes::Bytes, String), Failure> {
    async fn get<T: serde::de::DeserializeOwned>(
        gateway: &Gateway,
        access: &str,
        path: &str,
        what: &str,
    ) -> Result<T, Failure> {
        gateway
            .api()
            .get_as(access, path)
            .await
            .map_err(|error| origin_failure(error, what))
    }
    let (kind, raw) = match (id.get(..3), id.get(3..)) {
        (Some(kind), Some(raw))
            if raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            (kind, raw)
        }
        _ => return Err(Failure::not_found("cover art")),
    };
    let artwork = match kind {
        "al-" => {
            get::<AlbumView>(
                gateway,
                access,
                &format!("/v1/albums/{raw}?limit=1"),
                "album",
            )
            .await?
            .artwork
        }
        "ar-" => {
            get::<ArtistView>(gateway, access, &format!("/v1/artists/{raw}"), "artist")
                .await?
                .image
        }
        "tr-" => {
            let track: TrackView =
                get(gateway, access, &format!("/v1/tracks/{raw}"), "song").await?;
            match (&track.artwork, &track.album_id) {
                (Some(artwork), _) => Some(artwork.clone()),
                (None, Some(album)) => {
                    get::<AlbumView>(
                        gateway,
                        access,
                        &format!("/v1/albums/{album}?limit=1"),
                        "album",
                    )
                    .await?
                    .artwork
                }
                (None, None) => None,
            }
        }
        _ => return Err(Failure::not_found("cover art")),
    };
    let artwork = artwork.ok_or_else(|| Failure::not_found("cover art"))?;
    // The smallest size at least as large as asked; the largest when none is or none asked.
    let mut sizes = artwork.sizes.clone();
    sizes.sort_by_key(|size| size.size);
    let chosen = sizes
        .iter()
        .find(|candidate| size > 0 && candidate.size >= size)
        .or(sizes.last())
        .ok_or_else(|| Failure::not_found("cover art"))?;
    let path = match chosen.url.find("/v1/images/") {
        Some(at) => chosen.url[at..].to_string(),
        None => return Err(Failure::generic("the origin named a picture elsewhere")),
    };
    let cached = gateway
        .subsonic()
        .art
        .lock()
        .ok()
        .and_then(|mut art| art.get(&path));
    let (bytes, kind) = match cached {
        Some(found) => found,
        None => {
            let (bytes, kind) = gateway
                .api()
                .image(&path)
                .await
                .map_err(|error| origin_failure(error, "cover art"))?;
            if let Ok(mut art) = gateway.subsonic().art.lock() {
                art.put(path, bytes.clone(), kind.clone());
            }
            (bytes, kind)
        }
    };
    Ok((bytes, kind))
}

/// The longest `timeOffset` taken, in seconds (a day).
const OFFSET_MAX_S: u64 = 86_400;

async fn stream(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    params: &Params,
    headers: &HeaderMap,
    method: &str,
) -> Result<Answer, Failure> {
    let id = hex_id(params, "id")?;
    let max_kbps = params.number("maxBitRate", 0..=100_000)?.unwrap_or(0) as u64;
    // Without a cap a stream is the best the listener's tier allows, which the origin picks:
    // no catalog read before the grant (one round trip to the first byte, the opening chunk
    // coming with the grant). A cap, or a download (named after its title), reads the track.
    let (quality, title, suffix) = if method == "stream" && max_kbps == 0 {
        (None, None, "ogg")
    } else {
        let track: TrackView = get(gateway, caller, &format!("/v1/tracks/{id}"), "song").await?;
        let cap = if method == "download" { 0 } else { max_kbps };
        let premium = caller.session.account.tier == api::accounts::Tier::Premium;
        let rendition = views::rendition_for(&track, cap, premium)
            .ok_or_else(|| Failure::not_found("a rendition of that song"))?;
        let quality = (cap > 0).then(|| rendition.quality.clone());
        (
            quality,
            Some(track.title.clone()),
            views::suffix(&rendition.codec),
        )
    };
    // A seek in a player that cannot ask for bytes: start the stream part-way (OpenSubsonic's
    // `transcodeOffset`). A download is always whole.
    let offset_ms = match method {
        "stream" => params.seconds_ms("timeOffset", OFFSET_MAX_S)?.unwrap_or(0),
        _ => 0,
    };
    let streamed = if offset_ms > 0 {
        gateway
            .stream_from(caller.token(), id, quality.as_deref(), offset_ms)
            .await
    } else {
        gateway
            .stream_as(caller.token(), id, quality.as_deref(), headers)
            .await
    };
    let mut response = streamed.map_err(|error| origin_failure(error, "song"))?;
    if let Some(title) = title.filter(|_| method == "download")
        && let Ok(value) = HeaderValue::from_str(&format!(
            "attachment; filename=\"{}.{suffix}\"",
            title.replace(['"', '\\', '/'], "_")
        ))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(Answer::Raw(response))
}

async fn star(
    gateway: &Gateway,
    caller: &Caller,
    params: &Params,
    add: bool,
) -> Result<(), Failure> {
    let method = if add {
        reqwest::Method::PUT
    } else {
        reqwest::Method::DELETE
    };
    let songs = params.all("id");
    let artists = params.all("artistId");
    if songs.is_empty() && artists.is_empty() && params.all("albumId").is_empty() {
        return Err(Failure::missing("id, albumId or artistId"));
    }
    if !params.all("albumId").is_empty() {
        return Err(Failure::generic(
            "albums cannot be starred here: star their songs or their artist",
        ));
    }
    for (ids, path) in [
        (songs, "/v1/me/tracks"),
        (artists, "/v1/me/following/artists"),
    ] {
        for id in ids.into_iter().take(500) {
            if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Failure::not_found("an item with that id"));
            }
            gateway
                .api()
                .send_as::<serde_json::Value, ()>(
                    method.clone(),
                    caller.token(),
                    &format!("{path}/{id}"),
                    None,
                )
                .await
                .map_err(|error| origin_failure(error, "item"))?;
        }
    }
    Ok(())
}

async fn save_play_queue(
    gateway: &Gateway,
    caller: &Caller,
    params: &Params,
) -> Result<(), Failure> {
    let queue: Vec<String> = params.all("id").into_iter().map(str::to_string).collect();
    if queue.len() > 1000 {
        return Err(Failure::generic("a play queue holds at most 1000 songs"));
    }
    let index = match params.get("current") {
        Some(current) => queue
            .iter()
            .position(|id| id == current)
            .ok_or_else(|| Failure::generic("current is not in the queue"))?,
        None => 0,
    };
    let position_ms = params.number("position", 0..=86_400_000)?.unwrap_or(0) as u64;
    let device: String = params
        .get("c")
        .filter(|client| !client.trim().is_empty())
        .unwrap_or("subsonic")
        .chars()
        .take(100)
        .collect();
    // Last writer wins, as Subsonic clients expect: the version read is the one written over.
    for _ in 0..3 {
        let state: PlayerState = get(gateway, caller, "/v1/me/player", "play queue").await?;
        let update = PlayerUpdate {
            queue: queue.clone(),
            index: index as u32,
            position_ms,
            device: device.clone(),
            version: state.version,
            updated_at_ms: None,
        };
        match gateway.api().put_player(caller.token(), &update).await {
            Ok(_) => return Ok(()),
            Err(error) if ApiError::code_of(&error) == Some("stale_version") => continue,
            Err(error) => return Err(origin_failure(error, "play queue")),
        }
    }
    Err(Failure::generic("the play queue kept changing: try again"))
}
