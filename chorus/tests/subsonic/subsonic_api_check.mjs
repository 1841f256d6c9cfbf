// The npm package subsonic-api against a Chorus gateway: every method the gateway serves, with
// an API key (OpenSubsonic's apiKeyAuthentication), by GET and again by form POST.
//
// Run by chorus/tests/subsonic_clients.rs with CHORUS_SUBSONIC_* in the environment (and
// NODE_PATH naming where subsonic-api is installed); exits non-zero with the failed check.

import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { SubsonicAPI } = await import(require.resolve("subsonic-api"));

const env = process.env;
const url = env.CHORUS_SUBSONIC_URL;
const apiKey = env.CHORUS_SUBSONIC_API_KEY;
const [first, second, single] = [
  env.CHORUS_SUBSONIC_FIRST,
  env.CHORUS_SUBSONIC_SECOND,
  env.CHORUS_SUBSONIC_SINGLE,
];

function check(condition, what) {
  if (!condition) throw new Error(what);
}
const ids = (items) => (items ?? []).map((item) => item.id);
const same = (a, b) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
const ok = (answer, what) => {
  check(answer?.status === "ok", `${what}: ${JSON.stringify(answer)}`);
  return answer;
};

async function run(post) {
  const how = post ? "POST" : "GET";
  const api = new SubsonicAPI({ url, auth: { apiKey }, post });
  ok(await api.ping(), "ping");
  const extensions = ok(await api.getOpenSubsonicExtensions(), "getOpenSubsonicExtensions");
  const names = extensions.openSubsonicExtensions.map((e) => e.name);
  check(names.includes("apiKeyAuthentication"), `extensions: ${names}`);
  check(ok(await api.getLicense(), "getLicense").license.valid === true, "license");
  ok(await api.getMusicFolders(), "getMusicFolders");
  const user = ok(await api.getUser({ username: "listener" }), "getUser").user;
  check(user.username === "listener", `getUser: ${JSON.stringify(user)}`);

  const artists = ok(await api.getArtists(), "getArtists").artists.index;
  const artist = artists[0].artist[0];
  check(artist.name === "The Quiet Ones", `getArtists: ${JSON.stringify(artists)}`);
  ok(await api.getIndexes(), "getIndexes");
  const albumId = ok(await api.getArtist({ id: artist.id }), "getArtist").artist.album[0].id;
  const album = ok(await api.getAlbum({ id: albumId }), "getAlbum").album;
  check(same(ids(album.song), [first, second]), `getAlbum: ${JSON.stringify(album)}`);
  check(album.created instanceof Date, "getAlbum created is a date");
  ok(await api.getMusicDirectory({ id: albumId }), "getMusicDirectory");
  const song = ok(await api.getSong({ id: first }), "getSong").song;
  check(song.title === "First Light", `getSong: ${JSON.stringify(song)}`);
  for (const type of ["newest", "random", "alphabeticalByName", "frequent"]) {
    const list = ok(await api.getAlbumList2({ type, size: 5 }), `getAlbumList2 ${type}`);
    check(same(ids(list.albumList2.album), [albumId]), `getAlbumList2 ${type}`);
    ok(await api.getAlbumList({ type, size: 5 }), `getAlbumList ${type}`);
  }
  const random = ok(await api.getRandomSongs({ size: 10 }), "getRandomSongs").randomSongs.song;
  check(same(ids(random), [first, second, single]), "getRandomSongs");
  const genres = ok(await api.getGenres(), "getGenres").genres.genre;
  check(genres.length === 2, `getGenres: ${JSON.stringify(genres)}`);
  const found = ok(await api.search3({ query: "light" }), "search3").searchResult3;
  check(same(ids(found.song), [first, second]), `search3: ${JSON.stringify(found)}`);
  const all = ok(
    await api.search3({ query: "", songCount: 500, artistCount: 0, albumCount: 0 }),
    "search3 sync",
  ).searchResult3;
  check(same(ids(all.song), [first, second, single]), "search3 with an empty query: all songs");
  ok(await api.search2({ query: "night" }), "search2");

  const lyrics = ok(await api.getLyricsBySongId({ id: first }), "getLyricsBySongId");
  const lines = lyrics.lyricsList.structuredLyrics[0].line;
  check(lines[0].start === 1000 && lines[0].value === "hello dawn", `lyrics: ${JSON.stringify(lines)}`);
  ok(await api.getLyrics({ artist: "The Quiet Ones", title: "First Light" }), "getLyrics");

  const stream = await api.stream({ id: first });
  const bytes = new Uint8Array(await stream.arrayBuffer());
  check(stream.ok && bytes.length === song.size, `stream: ${bytes.length} bytes of ${song.size}`);
  const download = await api.download({ id: first });
  check(download.ok, "download");
  await download.arrayBuffer();

  ok(await api.star({ id: single }), "star");
  const starred = ok(await api.getStarred2(), "getStarred2").starred2;
  check(same(ids(starred.song), [single]), `getStarred2: ${JSON.stringify(starred)}`);
  ok(await api.unstar({ id: single }), "unstar");
  ok(await api.getStarred(), "getStarred");

  const created = ok(
    await api.createPlaylist({ name: `subsonic-api ${how}`, songId: [first, single] }),
    "createPlaylist",
  ).playlist;
  ok(
    await api.updatePlaylist({ playlistId: created.id, comment: "from node", songIndexToRemove: [1] }),
    "updatePlaylist",
  );
  const playlist = ok(await api.getPlaylist({ id: created.id }), "getPlaylist").playlist;
  check(playlist.comment === "from node" && same(ids(playlist.entry), [first]), `getPlaylist: ${JSON.stringify(playlist)}`);
  ok(await api.getPlaylists(), "getPlaylists");
  ok(await api.deletePlaylist({ id: created.id }), "deletePlaylist");

  ok(await api.savePlayQueue({ id: [second, single], current: single, position: 900 }), "savePlayQueue");
  const queue = ok(await api.getPlayQueue(), "getPlayQueue").playQueue;
  check(queue.current === single && queue.position === 900, `getPlayQueue: ${JSON.stringify(queue)}`);
  ok(await api.scrobble({ id: second, submission: true }), "scrobble");

  const cover = await api.getCoverArt({ id: `al-${albumId}` });
  check(cover.ok, "getCoverArt answers");
  await cover.arrayBuffer();

  const wrong = new SubsonicAPI({ url, auth: { apiKey: "not a key" }, post });
  const refused = await wrong.ping();
  check(refused.status === "failed" && refused.error.code === 44, `a wrong key: ${JSON.stringify(refused)}`);
  console.log(`subsonic-api over ${how}: ok`);
}

try {
  await run(false);
  await run(true);
} catch (error) {
  console.error(`subsonic-api check failed: ${error.message}`);
  process.exit(1);
}
