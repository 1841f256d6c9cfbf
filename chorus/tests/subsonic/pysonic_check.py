"""py-sonic (libsonic) against a Chorus gateway: every method the gateway serves, with the
app password as token and salt (a new salt per request), by form POST and again by GET.

Run by chorus/tests/subsonic_clients.rs with CHORUS_SUBSONIC_* in the environment; exits
non-zero with the failed check on stderr.
"""

import os
import sys
import urllib.request

import libsonic

# py-sonic 1.2.0 still names Python 2's urllib2 on its GET path (useGET=True); it is
# urllib.request on Python 3.
libsonic.connection.urllib2 = urllib.request

env = os.environ
host, port = env["CHORUS_SUBSONIC_HOST"], int(env["CHORUS_SUBSONIC_PORT"])
user, password = env["CHORUS_SUBSONIC_USER"], env["CHORUS_SUBSONIC_PASSWORD"]
first, second, single = (
    env["CHORUS_SUBSONIC_FIRST"],
    env["CHORUS_SUBSONIC_SECOND"],
    env["CHORUS_SUBSONIC_SINGLE"],
)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def ids(items):
    return [item["id"] for item in items]


def run(use_get):
    how = "GET" if use_get else "POST"
    conn = libsonic.Connection(
        host, user, password, port=port, serverPath="/rest", appName="py-sonic", useGET=use_get
    )
    check(conn.ping(), "ping")
    check(conn.getLicense()["license"]["valid"], "getLicense")
    folders = conn.getMusicFolders()["musicFolders"]["musicFolder"]
    check(len(folders) == 1, f"getMusicFolders: {folders}")
    user_info = conn.getUser(user)["user"]
    check(user_info["username"] == user and user_info["streamRole"], f"getUser: {user_info}")

    artists = conn.getArtists()["artists"]["index"]
    artist = artists[0]["artist"][0]
    check(artist["name"] == "The Quiet Ones" and artist["albumCount"] == 1, f"getArtists: {artists}")
    indexes = conn.getIndexes()["indexes"]
    check(indexes["index"][0]["artist"][0]["id"] == artist["id"], f"getIndexes: {indexes}")
    with_albums = conn.getArtist(artist["id"])["artist"]
    album_id = with_albums["album"][0]["id"]
    album = conn.getAlbum(album_id)["album"]
    check(ids(album["song"]) == [first, second], f"getAlbum order: {album}")
    check(album["songCount"] == 2 and album["year"] == 1999, f"getAlbum: {album}")
    directory = conn.getMusicDirectory(artist["id"])["directory"]
    check(len(directory["child"]) == 2, f"getMusicDirectory (artist): {directory}")
    directory = conn.getMusicDirectory(album_id)["directory"]
    check(ids(directory["child"]) == [first, second], f"getMusicDirectory (album): {directory}")
    song = conn.getSong(first)["song"]
    check(song["title"] == "First Light" and song["duration"] == 40, f"getSong: {song}")

    for kind in ["newest", "random", "frequent", "recent", "highest", "alphabeticalByName",
                 "alphabeticalByArtist"]:
        listed = conn.getAlbumList2(kind, size=10)["albumList2"]["album"]
        check(ids(listed) == [album_id], f"getAlbumList2 {kind}: {listed}")
        listed = conn.getAlbumList(kind, size=10)["albumList"]["album"]
        check(ids(listed) == [album_id], f"getAlbumList {kind}: {listed}")
    listed = conn.getAlbumList2("byGenre", genre="Jazz")["albumList2"]["album"]
    check(ids(listed) == [album_id], f"getAlbumList2 byGenre: {listed}")
    listed = conn.getAlbumList2("byYear", fromYear=1990, toYear=2000)["albumList2"]["album"]
    check(ids(listed) == [album_id], f"getAlbumList2 byYear: {listed}")
    random = conn.getRandomSongs(size=10)["randomSongs"]["song"]
    check(sorted(ids(random)) == sorted([first, second, single]), f"getRandomSongs: {random}")
    genres = {g["value"]: g["songCount"] for g in conn.getGenres()["genres"]["genre"]}
    check(genres == {"Jazz": 2, "Rock": 1}, f"getGenres: {genres}")

    found = conn.search3("light")["searchResult3"]
    check(sorted(ids(found["song"])) == sorted([first, second]), f"search3: {found}")
    found = conn.search2("night songs")["searchResult2"]
    check(ids(found["album"]) == [album_id], f"search2: {found}")
    # A library sync: the empty query, one song a page.
    synced = []
    for offset in range(4):
        page = conn.search3('""', artistCount=0, albumCount=0, songCount=1, songOffset=offset)
        synced += ids(page["searchResult3"].get("song", []))
    check(sorted(synced) == sorted([first, second, single]), f"search3 sync: {synced}")

    lyrics = conn.getLyrics(artist="The Quiet Ones", title="First Light")["lyrics"]
    check(lyrics["value"] == "hello dawn\ngoodbye night", f"getLyrics: {lyrics}")

    stream = conn.stream(first).read()
    check(len(stream) == song["size"], f"stream: {len(stream)} bytes, song size {song['size']}")
    check(stream[:4] == b"OggS", "stream is Ogg")
    capped = conn.stream(first, maxBitRate=32).read()
    check(0 < len(capped) < len(stream), f"stream maxBitRate=32: {len(capped)} bytes")
    check(conn.download(first).read() == stream, "download")

    conn.star(sids=[first], artistIds=[artist["id"]])
    starred = conn.getStarred2()["starred2"]
    check(ids(starred["song"]) == [first] and ids(starred["artist"]) == [artist["id"]],
          f"getStarred2: {starred}")
    conn.unstar(sids=[first], artistIds=[artist["id"]])
    starred = conn.getStarred()["starred"]
    check(not starred.get("song") and not starred.get("artist"), f"getStarred: {starred}")

    created = conn.createPlaylist(name=f"py-sonic {how}", songIds=[first, second])["playlist"]
    check(ids(created["entry"]) == [first, second], f"createPlaylist: {created}")
    conn.updatePlaylist(created["id"], name=f"py-sonic {how} 2", songIdsToAdd=[single],
                        songIndexesToRemove=[0])
    playlist = conn.getPlaylist(created["id"])["playlist"]
    check(playlist["name"] == f"py-sonic {how} 2", f"updatePlaylist name: {playlist}")
    check(ids(playlist["entry"]) == [second, single], f"updatePlaylist songs: {playlist}")
    listed = ids(conn.getPlaylists()["playlists"]["playlist"])
    check(created["id"] in listed, f"getPlaylists: {listed}")
    conn.deletePlaylist(created["id"])
    try:
        conn.getPlaylist(created["id"])
        check(False, "a deleted playlist is still there")
    except libsonic.errors.DataNotFoundError:
        pass

    conn.savePlayQueue([first, second], current=second, position=2500)
    queue = conn.getPlayQueue()["playQueue"]
    check(queue["current"] == second and queue["position"] == 2500, f"getPlayQueue: {queue}")
    check(ids(queue["entry"]) == [first, second], f"getPlayQueue entries: {queue}")
    conn.scrobble(first, submission=True)
    conn.scrobble(second, submission=False)

    try:
        conn.getSong("0" * 32)
        check(False, "an unknown song was found")
    except libsonic.errors.DataNotFoundError:
        pass
    wrong = libsonic.Connection(host, user, "not the password", port=port, serverPath="/rest",
                                useGET=use_get)
    try:
        wrong.ping()
        check(False, "a wrong password was let in")
    except libsonic.errors.CredentialError:
        pass
    print(f"py-sonic over {how}: ok")


try:
    run(use_get=False)
    run(use_get=True)
except Exception as error:  # noqa: BLE001 - every failure is reported the same way
    print(f"py-sonic check failed: {type(error).__name__}: {error}", file=sys.stderr)
    sys.exit(1)
