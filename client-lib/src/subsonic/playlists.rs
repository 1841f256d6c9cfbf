//! Subsonic playlists on the listener's Chorus playlists, and `scrobble` as listening events.

use api::events::{Event, EventKind};
use api::playlists::{
    AddTracks, NewPlaylist, PlaylistChange, PlaylistCreated, PlaylistSummaries, PlaylistView,
    RemoveTracks,
};

use super::auth::Caller;
use super::params::Params;
use super::response::{Failure, Node};
use super::{get, hex_id, origin_failure, views};
use crate::gateway::Gateway;
use api::catalog::TrackView;
use reqwest::Method;

/// Playlists listed at most (pages of 50).
const PLAYLISTS_MAX: usize = 1_000;
/// Songs read of one playlist at most (pages of 100).
const PLAYLIST_SONGS_MAX: usize = 10_000;
/// Track ids one origin request adds or removes at most.
const IDS_PER_REQUEST: usize = 100;

async fn send<B: serde::Serialize + ?Sized>(
    gateway: &Gateway,
    caller: &Caller,
    method: Method,
    path: &str,
    body: Option<&B>,
) -> Result<serde_json::Value, Failure> {
    gateway
        .api()
        .send_as(method, caller.token(), path, body)
        .await
        .map_err(|error| origin_failure(error, "playlist"))
}

/// A playlist with every song (up to [`PLAYLIST_SONGS_MAX`]): the songs a client sees and,
/// for each, its place in the playlist (songs deleted from the catalog since are not shown,
/// but keep their places).
async fn read(
    gateway: &Gateway,
    caller: &Caller,
    id: &str,
) -> Result<(PlaylistView, Vec<(usize, TrackView)>), Failure> {
    let mut view: PlaylistView = get(
        gateway,
        caller,
        &format!("/v1/playlists/{id}?limit=100"),
        "playlist",
    )
    .await?;
    let total = view.tracks.total.min(PLAYLIST_SONGS_MAX);
    let mut items = std::mem::take(&mut view.tracks.items);
    while items.len() < total {
        let page: PlaylistView = get(
            gateway,
            caller,
            &format!("/v1/playlists/{id}?limit=100&offset={}", items.len()),
            "playlist",
        )
        .await?;
        if page.tracks.items.is_empty() {
            break;
        }
        items.extend(page.tracks.items);
    }
    let shown = items
        .into_iter()
        .filter_map(|item| item.track.map(|track| (item.position, track)))
        .collect();
    Ok((view, shown))
}

fn tracks_of(shown: &[(usize, TrackView)]) -> Vec<TrackView> {
    shown.iter().map(|(_, track)| track.clone()).collect()
}

fn playlist_node(view: &PlaylistView, tracks: &[TrackView], entries: bool) -> Node {
    let duration: u64 = tracks.iter().map(|t| t.duration_ms.div_ceil(1000)).sum();
    let mut node = Node::new("playlist")
        .attr("id", &view.id)
        .attr("name", &view.name)
        .attr("comment", &view.description)
        .attr(
            "owner",
            view.owner.username.as_deref().unwrap_or(&view.owner.id),
        )
        .attr("public", view.public)
        .attr("songCount", tracks.len())
        .attr("duration", duration)
        .attr("created", views::iso_time(view.created_at_ms))
        .attr("changed", views::iso_time(view.updated_at_ms));
    if let Some(first) = tracks.first() {
        node = node.attr(
            "coverArt",
            match &first.album_id {
                Some(album) => views::album_art(album),
                None => views::track_art(&first.id),
            },
        );
    }
    if entries {
        node = node.list(
            "entry",
            tracks
                .iter()
                .map(|track| views::song("entry", track, None))
                .collect(),
        );
    }
    node
}

/// `getPlaylists`: the caller's own and collaborating playlists.
pub async fn list(gateway: &Gateway, caller: &Caller, params: &Params) -> Result<Node, Failure> {
    if let Some(user) = params.get("username")
        && user != caller.username()
    {
        return Err(Failure::new(
            super::response::ErrorCode::NotAuthorized,
            "only your own playlists can be listed",
        ));
    }
    let mut summaries = Vec::new();
    while summaries.len() < PLAYLISTS_MAX {
        let page: PlaylistSummaries = get(
            gateway,
            caller,
            &format!("/v1/me/playlists?limit=50&offset={}", summaries.len()),
            "playlists",
        )
        .await?;
        let done = page.items.len() < 50;
        summaries.extend(page.items);
        if done {
            break;
        }
    }
    let mut nodes = Vec::with_capacity(summaries.len());
    for summary in &summaries {
        // Durations and cover art need the songs: read each (a household's few playlists).
        let (view, shown) = read(gateway, caller, &summary.id).await?;
        nodes.push(playlist_node(&view, &tracks_of(&shown), false));
    }
    Ok(Node::new("playlists").list("playlist", nodes))
}

/// `getPlaylist`.
pub async fn one(gateway: &Gateway, caller: &Caller, params: &Params) -> Result<Node, Failure> {
    let id = hex_id(params, "id")?;
    let (view, shown) = read(gateway, caller, id).await?;
    Ok(playlist_node(&view, &tracks_of(&shown), true))
}

fn song_ids<'a>(params: &'a Params, name: &str) -> Result<Vec<&'a str>, Failure> {
    let ids = params.all(name);
    if ids
        .iter()
        .any(|id| id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Failure::not_found("a song with that id"));
    }
    Ok(ids)
}

async fn add_songs(
    gateway: &Gateway,
    caller: &Caller,
    id: &str,
    songs: &[&str],
) -> Result<(), Failure> {
    for group in songs.chunks(IDS_PER_REQUEST) {
        let body = AddTracks {
            track_ids: group.iter().map(|id| id.to_string()).collect(),
            position: None,
            snapshot_id: None,
        };
        send(
            gateway,
            caller,
            Method::POST,
            &format!("/v1/playlists/{id}/tracks"),
            Some(&body),
        )
        .await?;
    }
    Ok(())
}

/// Removes the songs at `positions` (any order, repeats ignored), highest first so the
/// others keep their places.
async fn remove_positions(
    gateway: &Gateway,
    caller: &Caller,
    id: &str,
    mut positions: Vec<usize>,
) -> Result<(), Failure> {
    positions.sort_unstable_by(|a, b| b.cmp(a));
    positions.dedup();
    for group in positions.chunks(IDS_PER_REQUEST) {
        let body = RemoveTracks {
            track_ids: None,
            positions: Some(group.to_vec()),
            snapshot_id: None,
        };
        send(
            gateway,
            caller,
            Method::DELETE,
            &format!("/v1/playlists/{id}/tracks"),
            Some(&body),
        )
        .await?;
    }
    Ok(())
}

/// `createPlaylist`: a new playlist (`name`), or, with `playlistId`, an existing one's songs
/// replaced; the playlist as it now is.
pub async fn create(gateway: &Gateway, caller: &Caller, params: &Params) -> Result<Node, Failure> {
    let songs = song_ids(params, "songId")?;
    let id = match params.get("playlistId") {
        Some(_) => {
            let id = hex_id(params, "playlistId")?.to_string();
            // Every place goes, those of songs deleted from the catalog too.
            let (view, _) = read(gateway, caller, &id).await?;
            remove_positions(gateway, caller, &id, (0..view.tracks.total).collect()).await?;
            if let Some(name) = params.get("name") {
                let change = PlaylistChange {
                    name: Some(name.to_string()),
                    description: None,
                    public: None,
                    collaborative: None,
                    collaborators: None,
                    snapshot_id: None,
                };
                send(
                    gateway,
                    caller,
                    Method::PUT,
                    &format!("/v1/playlists/{id}"),
                    Some(&change),
                )
                .await?;
            }
            id
        }
        None => {
            let name = params.required("name")?;
            let created: PlaylistCreated = gateway
                .api()
                .send_as(
                    Method::POST,
                    caller.token(),
                    "/v1/playlists",
                    Some(&NewPlaylist {
                        name: name.to_string(),
                        description: None,
                        public: Some(false),
                        collaborative: None,
                    }),
                )
                .await
                .map_err(|error| origin_failure(error, "playlist"))?;
            created.id
        }
    };
    add_songs(gateway, caller, &id, &songs).await?;
    let (view, shown) = read(gateway, caller, &id).await?;
    Ok(playlist_node(&view, &tracks_of(&shown), true))
}

/// `updatePlaylist`: name, comment, visibility, songs added and removed by index.
pub async fn update(gateway: &Gateway, caller: &Caller, params: &Params) -> Result<(), Failure> {
    let id = hex_id(params, "playlistId")?.to_string();
    let adds = song_ids(params, "songIdToAdd")?;
    let mut removes = Vec::new();
    for index in params.all("songIndexToRemove") {
        removes.push(
            index
                .trim()
                .parse::<usize>()
                .map_err(|_| Failure::generic("songIndexToRemove is a whole number"))?,
        );
    }
    let change = PlaylistChange {
        name: params.get("name").map(str::to_string),
        description: params.get("comment").map(str::to_string),
        public: params.flag("public")?,
        collaborative: None,
        collaborators: None,
        snapshot_id: None,
    };
    if change.name.is_some() || change.description.is_some() || change.public.is_some() {
        send(
            gateway,
            caller,
            Method::PUT,
            &format!("/v1/playlists/{id}"),
            Some(&change),
        )
        .await?;
    }
    // Removals by index first: an index names a song as the client saw the playlist, which
    // leaves out songs deleted from the catalog; each maps to its place.
    if !removes.is_empty() {
        let (_, shown) = read(gateway, caller, &id).await?;
        let mut positions = Vec::with_capacity(removes.len());
        for index in removes {
            let (position, _) = shown
                .get(index)
                .ok_or_else(|| Failure::generic(format!("no song at index {index}")))?;
            positions.push(*position);
        }
        remove_positions(gateway, caller, &id, positions).await?;
    }
    add_songs(gateway, caller, &id, &adds).await
}

/// `deletePlaylist`.
pub async fn delete(gateway: &Gateway, caller: &Caller, params: &Params) -> Result<(), Failure> {
    let id = hex_id(params, "id")?;
    send::<()>(
        gateway,
        caller,
        Method::DELETE,
        &format!("/v1/playlists/{id}"),
        None,
    )
    .await?;
    Ok(())
}

/// `scrobble`: each song (`id`, with its `time` in ms) as a listening event: "now playing"
/// (`submission=false`) starts a play; a submission is a play that reached the song's end.
/// Event ids come from the account, song and time, so a scrobble sent twice counts once.
pub async fn scrobble(gateway: &Gateway, caller: &Caller, params: &Params) -> Result<(), Failure> {
    let ids = song_ids(params, "id")?;
    if ids.is_empty() {
        return Err(Failure::missing("id"));
    }
    let times = params.all("time");
    let submission = params.flag("submission")?.unwrap_or(true);
    let now = crate::player::unix_now().0;
    let mut events = Vec::new();
    for (at, id) in ids
        .iter()
        .take(api::events::EVENTS_PER_BATCH_MAX)
        .enumerate()
    {
        let time = match times.get(at) {
            Some(time) => time
                .trim()
                .parse::<u64>()
                .map_err(|_| Failure::generic("time is milliseconds since 1970"))?,
            None => now,
        };
        let play = blake3::hash(format!("{}/{id}/{time}", caller.session.account.id).as_bytes());
        let play_id = play.to_hex()[..32].to_string();
        let (kind, position_ms) = if submission {
            let track: TrackView =
                get(gateway, caller, &format!("/v1/tracks/{id}"), "song").await?;
            (EventKind::Complete, track.duration_ms.min(86_400_000))
        } else {
            (EventKind::PlayStart, 0)
        };
        let kind_name = if submission { "end" } else { "start" };
        events.push(Event {
            id: format!("{}-{kind_name}", &play_id[..24]),
            play_id,
            kind,
            track_id: id.to_string(),
            position_ms,
            at: time.min(now),
            region: None,
            // A finished play reports where the gateway got its bytes.
            sources: submission.then(|| gateway.unreported_traffic(id)),
        });
    }
    gateway
        .api()
        .post_events(caller.token(), &events)
        .await
        .map_err(|error| origin_failure(error, "song"))?;
    Ok(())
}
