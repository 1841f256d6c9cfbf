//! The Subsonic 1.16.1 XML schema (`subsonic-rest-api.xsd`) as rules this project checks
//! answers against, element by element: each element's type follows from its parent's type
//! and its name, as the schema's complex types say; every attribute must be one its type has
//! (the schema's, or one OpenSubsonic adds, listed apart), of the right kind; every required
//! attribute must be there; every child must be one its type allows.

use std::collections::HashMap;

/// What an attribute holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Int,
    Long,
    Bool,
    Double,
    DateTime,
    Status,
    MediaType,
}

struct Type {
    required: &'static [(&'static str, Kind)],
    optional: &'static [(&'static str, Kind)],
    /// OpenSubsonic's additions.
    open: &'static [(&'static str, Kind)],
    /// (child name, child type name)
    children: &'static [(&'static str, &'static str)],
    /// Text content allowed (and of this kind).
    text: Option<Kind>,
}

use Kind::*;

const CHILD_OPEN: &[(&str, Kind)] = &[
    ("mediaType", Text),
    ("played", DateTime),
    ("bpm", Int),
    ("comment", Text),
    ("sortName", Text),
    ("musicBrainzId", Text),
    ("displayArtist", Text),
    ("displayAlbumArtist", Text),
    ("displayComposer", Text),
    ("bitDepth", Int),
    ("samplingRate", Int),
    ("channelCount", Int),
    ("explicitStatus", Text),
];

const CHILD: Type = Type {
    required: &[("id", Text), ("isDir", Bool), ("title", Text)],
    optional: &[
        ("parent", Text),
        ("album", Text),
        ("artist", Text),
        ("track", Int),
        ("year", Int),
        ("genre", Text),
        ("coverArt", Text),
        ("size", Long),
        ("contentType", Text),
        ("suffix", Text),
        ("transcodedContentType", Text),
        ("transcodedSuffix", Text),
        ("duration", Int),
        ("bitRate", Int),
        ("path", Text),
        ("isVideo", Bool),
        ("userRating", Int),
        ("averageRating", Double),
        ("playCount", Long),
        ("discNumber", Int),
        ("created", DateTime),
        ("starred", DateTime),
        ("albumId", Text),
        ("artistId", Text),
        ("type", MediaType),
        ("bookmarkPosition", Long),
        ("originalWidth", Int),
        ("originalHeight", Int),
    ],
    open: CHILD_OPEN,
    children: &[("replayGain", "ReplayGain")],
    text: None,
};

const ARTIST: Type = Type {
    required: &[("id", Text), ("name", Text)],
    optional: &[
        ("artistImageUrl", Text),
        ("starred", DateTime),
        ("userRating", Int),
        ("averageRating", Double),
    ],
    open: &[],
    children: &[],
    text: None,
};

const ARTIST_ID3_REQUIRED: &[(&str, Kind)] = &[("id", Text), ("name", Text), ("albumCount", Int)];
const ARTIST_ID3_OPTIONAL: &[(&str, Kind)] = &[
    ("coverArt", Text),
    ("artistImageUrl", Text),
    ("starred", DateTime),
];
const ARTIST_ID3_OPEN: &[(&str, Kind)] = &[("musicBrainzId", Text), ("sortName", Text)];

const ALBUM_ID3_REQUIRED: &[(&str, Kind)] = &[
    ("id", Text),
    ("name", Text),
    ("songCount", Int),
    ("duration", Int),
    ("created", DateTime),
];
const ALBUM_ID3_OPTIONAL: &[(&str, Kind)] = &[
    ("artist", Text),
    ("artistId", Text),
    ("coverArt", Text),
    ("playCount", Long),
    ("starred", DateTime),
    ("year", Int),
    ("genre", Text),
];
const ALBUM_ID3_OPEN: &[(&str, Kind)] = &[
    ("played", DateTime),
    ("userRating", Int),
    ("musicBrainzId", Text),
    ("displayArtist", Text),
    ("sortName", Text),
    ("isCompilation", Bool),
];

const PLAYLIST_REQUIRED: &[(&str, Kind)] = &[
    ("id", Text),
    ("name", Text),
    ("songCount", Int),
    ("duration", Int),
    ("created", DateTime),
    ("changed", DateTime),
];
const PLAYLIST_OPTIONAL: &[(&str, Kind)] = &[
    ("comment", Text),
    ("owner", Text),
    ("public", Bool),
    ("coverArt", Text),
];

fn types() -> HashMap<&'static str, Type> {
    let mut types = HashMap::new();
    let none: &[(&str, Kind)] = &[];
    let simple = |required, optional, children, text| Type {
        required,
        optional,
        open: none,
        children,
        text,
    };
    types.insert(
        "Response",
        Type {
            required: &[("status", Status), ("version", Text)],
            optional: &[],
            open: &[
                ("type", Text),
                ("serverVersion", Text),
                ("openSubsonic", Bool),
            ],
            children: &[
                ("error", "Error"),
                ("license", "License"),
                ("musicFolders", "MusicFolders"),
                ("indexes", "Indexes"),
                ("artists", "ArtistsID3"),
                ("artist", "ArtistWithAlbumsID3"),
                ("album", "AlbumWithSongsID3"),
                ("song", "Child"),
                ("directory", "Directory"),
                ("genres", "Genres"),
                ("albumList", "AlbumList"),
                ("albumList2", "AlbumList2"),
                ("randomSongs", "Songs"),
                ("searchResult2", "SearchResult2"),
                ("searchResult3", "SearchResult3"),
                ("playlists", "Playlists"),
                ("playlist", "PlaylistWithSongs"),
                ("lyrics", "Lyrics"),
                ("user", "User"),
                ("starred", "Starred"),
                ("starred2", "Starred2"),
                ("playQueue", "PlayQueue"),
                ("openSubsonicExtensions", "OpenSubsonicExtension"),
                ("lyricsList", "LyricsList"),
            ],
            text: None,
        },
    );
    types.insert(
        "Error",
        simple(&[("code", Int)], &[("message", Text)], &[], None),
    );
    types.insert(
        "License",
        simple(
            &[("valid", Bool)],
            &[
                ("email", Text),
                ("licenseExpires", DateTime),
                ("trialExpires", DateTime),
            ],
            &[],
            None,
        ),
    );
    types.insert(
        "MusicFolders",
        simple(&[], &[], &[("musicFolder", "MusicFolder")], None),
    );
    types.insert(
        "MusicFolder",
        simple(&[("id", Int)], &[("name", Text)], &[], None),
    );
    types.insert(
        "Indexes",
        simple(
            &[("lastModified", Long), ("ignoredArticles", Text)],
            &[],
            &[
                ("shortcut", "Artist"),
                ("index", "Index"),
                ("child", "Child"),
            ],
            None,
        ),
    );
    types.insert(
        "Index",
        simple(&[("name", Text)], &[], &[("artist", "Artist")], None),
    );
    types.insert("Artist", ARTIST);
    types.insert(
        "ArtistsID3",
        simple(
            &[("ignoredArticles", Text)],
            &[],
            &[("index", "IndexID3")],
            None,
        ),
    );
    types.insert(
        "IndexID3",
        simple(&[("name", Text)], &[], &[("artist", "ArtistID3")], None),
    );
    types.insert(
        "ArtistID3",
        Type {
            required: ARTIST_ID3_REQUIRED,
            optional: ARTIST_ID3_OPTIONAL,
            open: ARTIST_ID3_OPEN,
            children: &[],
            text: None,
        },
    );
    types.insert(
        "ArtistWithAlbumsID3",
        Type {
            required: ARTIST_ID3_REQUIRED,
            optional: ARTIST_ID3_OPTIONAL,
            open: ARTIST_ID3_OPEN,
            children: &[("album", "AlbumID3")],
            text: None,
        },
    );
    types.insert(
        "AlbumID3",
        Type {
            required: ALBUM_ID3_REQUIRED,
            optional: ALBUM_ID3_OPTIONAL,
            open: ALBUM_ID3_OPEN,
            children: &[],
            text: None,
        },
    );
    types.insert(
        "AlbumWithSongsID3",
        Type {
            required: ALBUM_ID3_REQUIRED,
            optional: ALBUM_ID3_OPTIONAL,
            open: ALBUM_ID3_OPEN,
            children: &[("song", "Child")],
            text: None,
        },
    );
    types.insert("Child", CHILD);
    types.insert(
        "ReplayGain",
        Type {
            required: &[],
            optional: &[],
            open: &[
                ("trackGain", Double),
                ("albumGain", Double),
                ("trackPeak", Double),
                ("albumPeak", Double),
                ("baseGain", Double),
                ("fallbackGain", Double),
            ],
            children: &[],
            text: None,
        },
    );
    types.insert(
        "Directory",
        simple(
            &[("id", Text), ("name", Text)],
            &[
                ("parent", Text),
                ("starred", DateTime),
                ("userRating", Int),
                ("averageRating", Double),
                ("playCount", Long),
            ],
            &[("child", "Child")],
            None,
        ),
    );
    types.insert("Genres", simple(&[], &[], &[("genre", "Genre")], None));
    types.insert(
        "Genre",
        simple(
            &[("songCount", Int), ("albumCount", Int)],
            &[],
            &[],
            Some(Text),
        ),
    );
    types.insert("AlbumList", simple(&[], &[], &[("album", "Child")], None));
    types.insert(
        "AlbumList2",
        simple(&[], &[], &[("album", "AlbumID3")], None),
    );
    types.insert("Songs", simple(&[], &[], &[("song", "Child")], None));
    types.insert(
        "SearchResult2",
        simple(
            &[],
            &[],
            &[("artist", "Artist"), ("album", "Child"), ("song", "Child")],
            None,
        ),
    );
    types.insert(
        "SearchResult3",
        simple(
            &[],
            &[],
            &[
                ("artist", "ArtistID3"),
                ("album", "AlbumID3"),
                ("song", "Child"),
            ],
            None,
        ),
    );
    types.insert(
        "Playlists",
        simple(&[], &[], &[("playlist", "Playlist")], None),
    );
    types.insert(
        "Playlist",
        simple(
            PLAYLIST_REQUIRED,
            PLAYLIST_OPTIONAL,
            &[("allowedUser", "Name")],
            None,
        ),
    );
    types.insert(
        "PlaylistWithSongs",
        simple(
            PLAYLIST_REQUIRED,
            PLAYLIST_OPTIONAL,
            &[("allowedUser", "Name"), ("entry", "Child")],
            None,
        ),
    );
    types.insert("Name", simple(&[], &[], &[], Some(Text)));
    types.insert(
        "Lyrics",
        simple(&[], &[("artist", Text), ("title", Text)], &[], Some(Text)),
    );
    types.insert(
        "User",
        simple(
            &[
                ("username", Text),
                ("scrobblingEnabled", Bool),
                ("adminRole", Bool),
                ("settingsRole", Bool),
                ("downloadRole", Bool),
                ("uploadRole", Bool),
                ("playlistRole", Bool),
                ("coverArtRole", Bool),
                ("commentRole", Bool),
                ("podcastRole", Bool),
                ("streamRole", Bool),
                ("jukeboxRole", Bool),
                ("shareRole", Bool),
                ("videoConversionRole", Bool),
            ],
            &[
                ("email", Text),
                ("maxBitRate", Int),
                ("avatarLastChanged", DateTime),
            ],
            &[("folder", "FolderId")],
            None,
        ),
    );
    types.insert("FolderId", simple(&[], &[], &[], Some(Int)));
    types.insert(
        "Starred",
        simple(
            &[],
            &[],
            &[("artist", "Artist"), ("album", "Child"), ("song", "Child")],
            None,
        ),
    );
    types.insert(
        "Starred2",
        simple(
            &[],
            &[],
            &[
                ("artist", "ArtistID3"),
                ("album", "AlbumID3"),
                ("song", "Child"),
            ],
            None,
        ),
    );
    types.insert(
        "PlayQueue",
        simple(
            &[
                ("username", Text),
                ("changed", DateTime),
                ("changedBy", Text),
            ],
            &[("current", Text), ("position", Long)],
            &[("entry", "Child")],
            None,
        ),
    );
    types.insert(
        "OpenSubsonicExtension",
        simple(&[("name", Text)], &[], &[("versions", "Version")], None),
    );
    types.insert("Version", simple(&[], &[], &[], Some(Int)));
    types.insert(
        "LyricsList",
        simple(&[], &[], &[("structuredLyrics", "StructuredLyrics")], None),
    );
    types.insert(
        "StructuredLyrics",
        simple(
            &[("lang", Text), ("synced", Bool)],
            &[
                ("displayArtist", Text),
                ("displayTitle", Text),
                ("offset", Long),
            ],
            &[("line", "Line")],
            None,
        ),
    );
    types.insert("Line", simple(&[], &[("start", Long)], &[], Some(Text)));
    types
}

fn fits(kind: Kind, value: &str) -> bool {
    match kind {
        Text => true,
        Int => value.parse::<i32>().is_ok(),
        Long => value.parse::<i64>().is_ok(),
        Bool => value == "true" || value == "false",
        Double => value.parse::<f64>().is_ok_and(f64::is_finite),
        // xs:dateTime as the answers write it: 2026-12-04T21:12:18Z (fraction optional).
        DateTime => {
            let bytes = value.as_bytes();
            bytes.len() >= 20
                && bytes[4] == b'-'
                && bytes[7] == b'-'
                && bytes[10] == b'T'
                && bytes[13] == b':'
                && bytes[16] == b':'
                && value.ends_with('Z')
                && value[..4].parse::<u16>().is_ok()
        }
        Status => value == "ok" || value == "failed",
        MediaType => ["music", "podcast", "audiobook", "video"].contains(&value),
    }
}

/// Every way `xml` (a whole answer) breaks the rules, as `path: problem` lines.
pub fn violations(xml: &str) -> Vec<String> {
    let types = types();
    let mut out = Vec::new();
    let document = match roxmltree::Document::parse(xml) {
        Ok(document) => document,
        Err(error) => return vec![format!("not XML: {error}")],
    };
    let root = document.root_element();
    if root.tag_name().name() != "subsonic-response"
        || root.tag_name().namespace() != Some("http://subsonic.org/restapi")
    {
        out.push(format!("root is {:?}", root.tag_name()));
    }
    check(&types, root, "Response", "subsonic-response", &mut out);
    out
}

fn check(
    types: &HashMap<&'static str, Type>,
    node: roxmltree::Node,
    type_name: &str,
    path: &str,
    out: &mut Vec<String>,
) {
    let Some(kind) = types.get(type_name) else {
        out.push(format!("{path}: no type {type_name}"));
        return;
    };
    for (name, _) in kind.required {
        if node.attribute(*name).is_none() {
            out.push(format!("{path}: required attribute {name} missing"));
        }
    }
    for attribute in node.attributes() {
        let name = attribute.name();
        if attribute.namespace().is_some() || name == "xmlns" {
            continue;
        }
        let known = kind
            .required
            .iter()
            .chain(kind.optional)
            .chain(kind.open)
            .find(|(known, _)| *known == name);
        match known {
            Some((_, value_kind)) if fits(*value_kind, attribute.value()) => {}
            Some((_, value_kind)) => out.push(format!(
                "{path}@{name}: {:?} is not {value_kind:?}",
                attribute.value()
            )),
            None => out.push(format!("{path}@{name}: not an attribute of {type_name}")),
        }
    }
    let text: String = node
        .children()
        .filter(|child| child.is_text())
        .filter_map(|child| child.text())
        .collect();
    match kind.text {
        Some(text_kind) if !fits(text_kind, &text) => {
            out.push(format!("{path}: text {text:?} is not {text_kind:?}"))
        }
        None if !text.trim().is_empty() => out.push(format!("{path}: unexpected text {text:?}")),
        _ => {}
    }
    for child in node.children().filter(roxmltree::Node::is_element) {
        let name = child.tag_name().name();
        match kind.children.iter().find(|(known, _)| *known == name) {
            Some((_, child_type)) => {
                check(types, child, child_type, &format!("{path}/{name}"), out)
            }
            None => out.push(format!("{path}: {name} is not a child of {type_name}")),
        }
    }
}

#[test]
fn the_rules_catch_what_they_should() {
    let ok = r#"<?xml version="1.0" encoding="UTF-8"?>
<subsonic-response xmlns="http://subsonic.org/restapi" status="ok" version="1.16.1"><song id="a" isDir="false" title="t" duration="3" created="2026-12-04T21:12:18Z"/></subsonic-response>"#;
    assert_eq!(violations(ok), Vec::<String>::new());
    let bad = r#"<subsonic-response xmlns="http://subsonic.org/restapi" status="fine" version="1.16.1"><song id="a" isDir="no" duration="x" invented="1"/><nothing/></subsonic-response>"#;
    let found = violations(bad);
    assert_eq!(found.len(), 6, "{found:#?}");
}
