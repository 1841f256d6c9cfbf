//! Chorus catalog views as Subsonic elements: songs (`child`), albums (`albumID3`), artists
//! (`artistID3`), with cover art ids the gateway resolves (`getCoverArt`).

use api::catalog::{AlbumView, RenditionSummary, TrackView};

use super::response::Node;

/// Cover art id of an album.
pub fn album_art(id: &str) -> String {
    format!("al-{id}")
}

/// Cover art id of an artist.
pub fn artist_art(id: &str) -> String {
    format!("ar-{id}")
}

/// Cover art id of a track.
pub fn track_art(id: &str) -> String {
    format!("tr-{id}")
}

/// ISO 8601 (UTC, seconds) of a Unix time in ms, as Subsonic dates are written.
pub fn iso_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// The rendition played when no bitrate is asked for: `normal`, else the highest.
pub fn default_rendition(renditions: &[RenditionSummary]) -> Option<&RenditionSummary> {
    renditions
        .iter()
        .find(|rendition| rendition.quality == "normal")
        .or_else(|| renditions.last())
}

/// A rendition's average bitrate in kbit/s, from its size and the track's duration (the
/// encoder's nominal figure says little for VBR).
pub fn kbps(rendition: &RenditionSummary, duration_ms: u64) -> u64 {
    if duration_ms == 0 {
        return u64::from(rendition.bitrate_bps / 1000);
    }
    rendition.bytes * 8 / duration_ms
}

/// The largest rendition the listener may play (`premium`: every quality; else up to
/// `normal`) whose average bitrate is at most `max_kbps` (0: no cap), else the smallest.
pub fn rendition_for(track: &TrackView, max_kbps: u64, premium: bool) -> Option<&RenditionSummary> {
    let allowed = || {
        track
            .renditions
            .iter()
            .filter(move |rendition| premium || rendition.quality != "high")
    };
    allowed()
        .filter(|rendition| max_kbps == 0 || kbps(rendition, track.duration_ms) <= max_kbps)
        .max_by_key(|rendition| rendition.bytes)
        .or_else(|| allowed().min_by_key(|rendition| rendition.bytes))
}

/// The file suffix of a codec.
pub fn suffix(codec: &str) -> &'static str {
    if codec.eq_ignore_ascii_case("opus") {
        "opus"
    } else {
        "ogg"
    }
}

/// A path-like name for clients that show one (never a real path).
fn display_path(track: &TrackView, suffix: &str) -> String {
    let clean = |text: &str| text.replace(['/', '\\'], "_");
    match &track.album {
        Some(album) => format!(
            "{}/{}/{}.{suffix}",
            clean(&track.artist),
            clean(album),
            clean(&track.title)
        ),
        None => format!("{}/{}.{suffix}", clean(&track.artist), clean(&track.title)),
    }
}

/// A song as element `name` (`song`, `entry` or `child`); `starred` is when it was liked.
pub fn song(name: &'static str, track: &TrackView, starred: Option<u64>) -> Node {
    let rendition = default_rendition(&track.renditions);
    let codec = rendition.map_or("vorbis", |rendition| rendition.codec.as_str());
    let suffix = suffix(codec);
    let mut node = Node::new(name)
        .attr("id", &track.id)
        .attr(
            "parent",
            track.album_id.as_ref().unwrap_or(&track.artist_id),
        )
        .attr("isDir", false)
        .attr("title", &track.title)
        .attr_opt("album", track.album.as_ref())
        .attr("artist", &track.artist)
        .attr_opt("track", track.track_number)
        .attr_opt("year", track.year)
        .attr_opt("genre", track.genre.as_ref())
        .attr(
            "coverArt",
            match (&track.artwork, &track.album_id) {
                (None, Some(album)) => album_art(album),
                _ => track_art(&track.id),
            },
        )
        .attr_opt("size", rendition.map(|rendition| rendition.bytes))
        .attr(
            "contentType",
            if suffix == "opus" {
                "audio/ogg; codecs=opus"
            } else {
                "audio/ogg"
            },
        )
        .attr("suffix", suffix)
        .attr("duration", track.duration_ms.div_ceil(1000))
        .attr_opt(
            "bitRate",
            rendition.map(|rendition| kbps(rendition, track.duration_ms)),
        )
        .attr("path", display_path(track, suffix))
        .attr("isVideo", false)
        .attr_opt("discNumber", track.disc_number)
        .attr("created", iso_time(track.created_at_ms))
        .attr_opt("albumId", track.album_id.as_ref())
        .attr("artistId", &track.artist_id)
        .attr("type", "music")
        .attr("mediaType", "song")
        .attr_opt("musicBrainzId", track.musicbrainz.recording_id.as_ref())
        .attr_opt("bpm", track.tempo_bpm.map(|bpm| bpm.round() as u32))
        .attr_opt("starred", starred.map(iso_time));
    if let Some(album_artist) = &track.album_artist {
        node = node.attr("displayAlbumArtist", album_artist);
    }
    node.child(Node::new("replayGain").attr("trackGain", track.gain_db))
}

/// An album (`albumID3`) with its songs listed when `songs` is set.
pub fn album(view: &AlbumView, tracks: &[TrackView], songs: bool) -> Node {
    let duration_s: u64 = tracks.iter().map(|t| t.duration_ms.div_ceil(1000)).sum();
    let created = tracks.iter().map(|t| t.created_at_ms).min().unwrap_or(0);
    let genre = tracks.iter().find_map(|t| t.genre.clone());
    let mut node = album_summary(
        &view.id,
        view.title.as_deref(),
        &view.artist,
        &view.artist_id,
        tracks.len(),
        duration_s,
        created,
    )
    .attr_opt("year", view.year)
    .attr_opt("genre", genre);
    if songs {
        node = node.list(
            "song",
            tracks
                .iter()
                .map(|track| song("song", track, None))
                .collect(),
        );
    }
    node
}

/// An album's summary element from its parts.
pub fn album_summary(
    id: &str,
    title: Option<&str>,
    artist: &str,
    artist_id: &str,
    songs: usize,
    duration_s: u64,
    created_ms: u64,
) -> Node {
    Node::new("album")
        .attr("id", id)
        .attr("name", title.unwrap_or("(no album)"))
        .attr("artist", artist)
        .attr("artistId", artist_id)
        .attr("coverArt", album_art(id))
        .attr("songCount", songs)
        .attr("duration", duration_s)
        .attr("created", iso_time(created_ms))
}

/// The albums of a set of tracks (an artist's), in the order first seen, as summaries.
pub fn albums_of(tracks: &[TrackView]) -> Vec<Node> {
    let mut order: Vec<&str> = Vec::new();
    let mut groups: std::collections::HashMap<&str, Vec<&TrackView>> = Default::default();
    for track in tracks {
        if let Some(album) = track.album_id.as_deref() {
            let group = groups.entry(album).or_default();
            if group.is_empty() {
                order.push(album);
            }
            group.push(track);
        }
    }
    order
        .into_iter()
        .map(|id| {
            let group = &groups[id];
            let first = group[0];
            album_summary(
                id,
                first.album.as_deref(),
                first.album_artist.as_deref().unwrap_or(&first.artist),
                &first.artist_id,
                group.len(),
                group.iter().map(|t| t.duration_ms.div_ceil(1000)).sum(),
                group.iter().map(|t| t.created_at_ms).min().unwrap_or(0),
            )
            .attr_opt("year", first.year)
            .attr_opt("genre", first.genre.as_ref())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso_time(1_796_256_000_123), "2026-12-03T00:00:00Z");
    }

    fn rendition(quality: &str, bytes: u64) -> RenditionSummary {
        RenditionSummary {
            quality: quality.into(),
            rendition_id: String::new(),
            codec: "vorbis".into(),
            bitrate_bps: 0,
            bytes,
            chunks: 1,
        }
    }

    #[test]
    fn bitrate_caps_pick_renditions() {
        let track: TrackView = serde_json::from_value(serde_json::json!({
            "id": "t", "title": "t", "artist": "a", "artist_id": "a", "album": null,
            "album_id": null, "genre": null, "album_artist": null, "track_number": null,
            "disc_number": null, "year": null, "isrc": null, "musicbrainz": {},
            "lyrics": "none", "artwork": null, "markets": [], "duration_ms": 100_000,
            "loudness_lufs": null, "tempo_bpm": null, "gain_db": 0.0,
            "renditions": [
                serde_json::to_value(rendition("low", 600_000)).unwrap(),
                serde_json::to_value(rendition("normal", 1_200_000)).unwrap(),
                serde_json::to_value(rendition("high", 2_400_000)).unwrap(),
            ],
        }))
        .unwrap();
        // 48, 96 and 192 kbit/s on average.
        assert_eq!(rendition_for(&track, 0, true).unwrap().quality, "high");
        assert_eq!(rendition_for(&track, 0, false).unwrap().quality, "normal");
        assert_eq!(rendition_for(&track, 320, true).unwrap().quality, "high");
        assert_eq!(rendition_for(&track, 320, false).unwrap().quality, "normal");
        assert_eq!(rendition_for(&track, 128, true).unwrap().quality, "normal");
        assert_eq!(rendition_for(&track, 96, true).unwrap().quality, "normal");
        assert_eq!(rendition_for(&track, 64, true).unwrap().quality, "low");
        assert_eq!(rendition_for(&track, 8, false).unwrap().quality, "low");
        let node = song("song", &track, Some(0));
        assert_eq!(
            node.get("bitRate"),
            Some(&super::super::response::Value::Int(96))
        );
    }
}
