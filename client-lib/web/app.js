// The Chorus web player: a page of the gateway that plays through <audio> on the gateway's
// P2P-assisted stream. No framework and no build step; every string from the network goes
// into the page as text, never as markup.

const $ = (id) => document.getElementById(id);
const main = $("main");
const audio = $("audio");

// ---------------------------------------------------------------------------------------
// Talking to the gateway

class Refused extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A JSON call to the gateway (`/web/...`); the origin's API is under `/web/api/v1/`. */
async function call(path, { method = "GET", body, signal } = {}) {
  const headers = { "x-chorus-web": "1" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: "same-origin",
  });
  if (response.status === 204) return null;
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = json && json.error ? json.error : {};
    if (response.status === 401 && path !== "/web/session" && $("signin").hidden) showSignIn();
    throw new Refused(response.status, error.code || "", error.message || response.statusText);
  }
  return json;
}
const api = (path, options) => call(`/web/api/v1/${path}`, options);

// ---------------------------------------------------------------------------------------
// Building the page

/** An element with attributes (`on*` functions become listeners) and children (strings
 * become text). */
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      element.className = value;
    } else if (value === true) {
      element.setAttribute(key, "");
    } else {
      element.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function time(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function cover(kind, id, size, alt = "") {
  const img = h("img", {
    class: "cover",
    src: `/web/cover/${kind}-${id}?size=${size}`,
    alt,
    loading: "lazy",
    width: size,
    height: size,
  });
  img.addEventListener("error", () => img.removeAttribute("src"), { once: true });
  return img;
}

function show(...children) {
  main.replaceChildren(...children);
}

// Every navigation (a route, a keystroke in the search box) takes the page: a view still
// loading for an earlier one shows nothing when its answer arrives.
let page = 0;

function takePage() {
  const mine = ++page;
  if (searching) searching.abort();
  const out = (...children) => {
    if (mine === page) show(...children);
  };
  out.stale = () => mine !== page;
  return out;
}

function failed(error) {
  show(h("p", { class: "error", role: "alert" }, `Could not load this: ${error.message}`));
}

// ---------------------------------------------------------------------------------------
// Liked songs and playlists (kept in memory for the buttons on every row)

const liked = new Set();
let playlists = [];
let downloadsOffered = false;

async function loadLiked() {
  liked.clear();
  let offset = 0;
  for (let page = 0; page < 20; page++) {
    const list = await api(`me/tracks?limit=50&offset=${offset}`);
    for (const item of list.items) liked.add(item.id);
    offset += list.items.length;
    if (list.items.length < 50) break;
  }
}

async function loadPlaylists() {
  const list = await api("me/playlists?limit=50");
  playlists = list.items.filter((item) => item.owned || item.collaborative);
}

async function toggleLike(track, button) {
  const was = liked.has(track.id);
  await api(`me/tracks/${track.id}`, { method: was ? "DELETE" : "PUT" });
  if (was) liked.delete(track.id);
  else liked.add(track.id);
  button.textContent = was ? "♡" : "♥";
  button.setAttribute("aria-pressed", String(!was));
  button.classList.toggle("liked", !was);
}

// ---------------------------------------------------------------------------------------
// Track lists

/** A list of tracks; `options.playlist` makes rows draggable and removable. */
function trackList(tracks, options = {}) {
  const list = h("ol", { class: "tracks", "aria-label": options.label || "Songs" });
  tracks.forEach((track, index) => {
    if (!track) return;
    const like = h(
      "button",
      {
        type: "button",
        "aria-pressed": String(liked.has(track.id)),
        "aria-label": `Like ${track.title}`,
        class: liked.has(track.id) ? "liked" : "",
        title: "Like",
      },
      liked.has(track.id) ? "♥" : "♡",
    );
    like.addEventListener("click", () => toggleLike(track, like).catch(failed));
    const actions = h("span", { class: "row-actions" }, like);
    if (options.playlist) {
      const at = index;
      actions.append(
        h("button", {
          type: "button",
          "aria-label": `Move ${track.title} up`,
          title: "Move up",
          disabled: at === 0,
          onclick: () => options.playlist.move(at, at - 1),
        }, "↑"),
        h("button", {
          type: "button",
          "aria-label": `Move ${track.title} down`,
          title: "Move down",
          disabled: at === tracks.length - 1,
          onclick: () => options.playlist.move(at, at + 1),
        }, "↓"),
        h("button", {
          type: "button",
          "aria-label": `Remove ${track.title} from the playlist`,
          title: "Remove",
          onclick: () => options.playlist.remove(at),
        }, "✕"),
      );
    } else if (playlists.length) {
      const select = h(
        "select",
        { "aria-label": `Add ${track.title} to a playlist` },
        h("option", { value: "" }, "+ playlist"),
        playlists.map((playlist) => h("option", { value: playlist.id }, playlist.name)),
      );
      select.addEventListener("change", async () => {
        const id = select.value;
        select.value = "";
        if (!id) return;
        await api(`playlists/${id}/tracks`, { method: "POST", body: { track_ids: [track.id] } })
          .catch(failed);
      });
      actions.append(select);
    }
    if (downloadsOffered && !options.downloaded) {
      const save = h("button", {
        type: "button",
        "aria-label": `Download ${track.title}`,
        title: "Download for offline",
      }, "⤓");
      save.addEventListener("click", async () => {
        save.disabled = true;
        save.textContent = "…";
        try {
          await call(`/web/downloads/${track.id}`, { method: "POST" });
          save.textContent = "✓";
        } catch (error) {
          save.textContent = "⤓";
          save.disabled = false;
          failed(error);
        }
      });
      actions.append(save);
    }
    const title = h(
      "button",
      { type: "button", class: "link title", "data-track": track.id },
      track.title,
    );
    title.addEventListener("click", () => {
      const playable = tracks.filter(Boolean);
      player.playList(playable, playable.indexOf(track));
    });
    const row = h(
      "li",
      { class: "track", "data-id": track.id, "data-index": index },
      h("span", { class: "num" }, options.playlist || options.downloaded ? index + 1 : track.track_number || index + 1),
      h("span", {}, title, h("div", { class: "sub" }, track.artist, track.album ? ` · ${track.album}` : "")),
      h("span", { class: "dur" }, time(track.duration_ms / 1000)),
      actions,
    );
    if (player.current && player.current.id === track.id) row.classList.add("playing");
    if (options.playlist) draggable(row, index, options.playlist);
    list.append(row);
  });
  if (!list.children.length) list.append(h("li", { class: "muted" }, options.empty || "Nothing here yet."));
  return list;
}

/** Drag and drop to reorder a playlist's rows. */
function draggable(row, index, playlist) {
  row.draggable = true;
  row.addEventListener("dragstart", (event) => {
    event.dataTransfer.setData("text/plain", String(index));
    event.dataTransfer.effectAllowed = "move";
  });
  const clear = () => row.classList.remove("drop-before", "drop-after");
  row.addEventListener("dragover", (event) => {
    event.preventDefault();
    const box = row.getBoundingClientRect();
    const after = event.clientY > box.top + box.height / 2;
    row.classList.toggle("drop-after", after);
    row.classList.toggle("drop-before", !after);
  });
  row.addEventListener("dragleave", clear);
  row.addEventListener("drop", (event) => {
    event.preventDefault();
    const after = row.classList.contains("drop-after");
    clear();
    const from = Number(event.dataTransfer.getData("text/plain"));
    if (!Number.isInteger(from)) return;
    let to = after ? index + 1 : index;
    if (to > from) to -= 1;
    if (to !== from) playlist.move(from, to);
  });
}

// ---------------------------------------------------------------------------------------
// Views

const views = {
  async home(_params, _id, out) {
    const albums = await api("browse/albums?sort=added&limit=24");
    out(
      h("h2", {}, "New albums"),
      albumGrid(albums.items),
      h("p", {}, h("a", { href: "#/albums" }, "All albums →")),
    );
  },

  async albums(params, _id, out) {
    const offset = Number(params.get("offset") || 0);
    const albums = await api(`browse/albums?sort=name&limit=60&offset=${offset}`);
    const more = offset + albums.items.length < albums.total;
    out(
      h("h2", {}, "Albums"),
      albumGrid(albums.items),
      more ? h("p", {}, h("a", { href: `#/albums?offset=${offset + 60}` }, "More →")) : "",
    );
  },

  async album(params, id, out) {
    const album = await api(`albums/${id}?limit=50`);
    const tracks = album.tracks.items;
    out(
      h(
        "div",
        { class: "head" },
        cover("al", album.id, 300, `Cover of ${album.title || "the album"}`),
        h(
          "div",
          {},
          h("h2", {}, album.title || "Singles"),
          h("p", {}, h("a", { href: `#/artist/${album.artist_id}` }, album.artist), album.year ? ` · ${album.year}` : ""),
          h("div", { class: "actions" },
            h("button", { type: "button", onclick: () => player.playList(tracks, 0) }, "▶ Play"),
            h("button", { type: "button", onclick: () => player.playList(tracks, 0, true) }, "⤮ Shuffle")),
        ),
      ),
      trackList(tracks, { label: `Songs of ${album.title || "the album"}` }),
    );
  },

  async artists(params, _id, out) {
    const offset = Number(params.get("offset") || 0);
    const artists = await api(`browse/artists?sort=name&limit=100&offset=${offset}`);
    out(
      h("h2", {}, "Artists"),
      h("ul", { class: "grid" }, artists.items.map((artist) =>
        h("li", {}, h("a", { class: "tile", href: `#/artist/${artist.id}` },
          cover("ar", artist.id, 300, ""),
          h("div", { class: "name" }, artist.name),
          h("div", { class: "muted" }, `${artist.album_count} albums · ${artist.track_count} songs`))))),
      offset + artists.items.length < artists.total
        ? h("p", {}, h("a", { href: `#/artists?offset=${offset + 100}` }, "More →"))
        : "",
    );
  },

  async artist(params, id, out) {
    const [artist, tracks] = await Promise.all([
      api(`artists/${id}`),
      api(`artists/${id}/tracks?limit=50`),
    ]);
    out(
      h("div", { class: "head" },
        cover("ar", artist.id, 300, ""),
        h("div", {}, h("h2", {}, artist.name),
          h("div", { class: "actions" },
            h("button", { type: "button", onclick: () => player.playList(tracks.items, 0) }, "▶ Play"),
            h("button", {
              type: "button",
              onclick: async (event) => {
                await api(`me/following/artists/${id}`, { method: "PUT" }).catch(failed);
                event.target.textContent = "Following";
              },
            }, "Follow")))),
      trackList(tracks.items, { label: `Songs by ${artist.name}` }),
    );
  },

  async liked(_params, _id, out) {
    const list = await api("me/tracks?limit=50");
    const tracks = list.items.map((item) => item.track).filter(Boolean);
    out(
      h("h2", {}, "Liked songs"),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => player.playList(tracks, 0) }, "▶ Play")),
      trackList(tracks, { label: "Liked songs", empty: "Songs you like (♡) show up here." }),
    );
  },

  async playlists(_params, _id, out) {
    await loadPlaylists();
    const name = h("input", { id: "new-playlist", required: true, placeholder: "New playlist" });
    const form = h("form", { class: "actions" },
      h("label", { for: "new-playlist", class: "visually-hidden" }, "Name of the new playlist"),
      name,
      h("button", { type: "submit" }, "Create"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const made = await api("playlists", { method: "POST", body: { name: name.value } }).catch(failed);
      if (!made) return;
      await loadPlaylists().catch(() => {});
      location.hash = `#/playlist/${made.id}`;
    });
    out(
      h("h2", {}, "Playlists"),
      form,
      h("ul", { class: "tracks", "aria-label": "Your playlists" }, playlists.map((playlist) =>
        h("li", { class: "hit" }, h("a", { href: `#/playlist/${playlist.id}` }, playlist.name),
          h("span", { class: "muted" }, ` · ${playlist.tracks_total} songs`)))),
    );
  },

  async playlist(params, id, out) {
    const view = await api(`playlists/${id}?limit=100`);
    let snapshot = view.snapshot_id;
    const tracks = view.tracks.items.map((item) => item.track);
    const editing = {
      async move(from, to) {
        if (to < 0 || to >= tracks.length) return;
        const changed = await api(`playlists/${id}/tracks`, {
          method: "PUT",
          body: { range_start: from, insert_before: to > from ? to + 1 : to, snapshot_id: snapshot },
        }).catch(failed);
        if (changed) {
          snapshot = changed.snapshot_id;
          await views.playlist(params, id, out);
          main.querySelector(`[data-index="${to}"] .title`)?.focus();
        }
      },
      async remove(at) {
        const changed = await api(`playlists/${id}/tracks`, {
          method: "DELETE",
          body: { positions: [at], snapshot_id: snapshot },
        }).catch(failed);
        if (changed) await views.playlist(params, id, out);
      },
    };
    out(
      h("h2", {}, view.name),
      h("p", { class: "muted" }, view.description || "", ` ${view.tracks.total} songs · drag a song, or use ↑ ↓, to reorder`),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => player.playList(tracks.filter(Boolean), 0) }, "▶ Play"),
        h("button", { type: "button", onclick: () => player.playList(tracks.filter(Boolean), 0, true) }, "⤮ Shuffle")),
      trackList(tracks, { playlist: editing, label: `Songs of ${view.name}`, empty: "Add songs with “+ playlist” on any song." }),
    );
  },

  async downloads(params, id, out) {
    const list = await call("/web/downloads");
    const tracks = list.map((entry) => ({
      ...(entry.track || {}),
      id: entry.track_id,
      title: (entry.track && entry.track.title) || entry.track_id,
      artist: (entry.track && entry.track.artist) || "",
      duration_ms: entry.duration_ms,
    }));
    const rows = trackList(tracks, { downloaded: true, label: "Downloads", empty: "Download songs (⤓) to play them with no network." });
    list.forEach((entry, index) => {
      const row = rows.querySelector(`[data-index="${index}"] .row-actions`);
      if (!row) return;
      const days = Math.max(0, Math.round((entry.expires_at_ms - Date.now()) / 86400000));
      row.prepend(h("span", { class: "muted" }, `${bytes(entry.bytes)} · ${days} d left`));
      row.append(h("button", {
        type: "button",
        "aria-label": `Remove the download of ${tracks[index].title}`,
        onclick: async () => {
          await call(`/web/downloads/${entry.track_id}`, { method: "DELETE" }).catch(failed);
          views.downloads(params, id, out);
        },
      }, "✕"));
    });
    out(h("h2", {}, "Downloads"), rows);
  },

  async queue(_params, _id, out) {
    out(
      h("h2", {}, "Queue"),
      h("p", { class: "muted" }, `Shuffle ${player.shuffle ? "on" : "off"} · repeat ${player.repeat}`),
      trackList(player.upcoming(), { label: "Queue", empty: "Play something to fill the queue." }),
    );
  },

  async search(params, _id, out) {
    const q = params.get("q") || "";
    $("search").value = q;
    await searchFor(q, out);
  },
};

function albumGrid(albums) {
  return h("ul", { class: "grid", "aria-label": "Albums" }, albums.map((album) =>
    h("li", {}, h("a", { class: "tile", href: `#/album/${album.id}` },
      cover("al", album.id, 300, ""),
      h("div", { class: "name" }, album.title || "Singles"),
      h("div", { class: "muted" }, album.artist, album.year ? ` · ${album.year}` : "")))));
}

// ---------------------------------------------------------------------------------------
// Search as you type: each keystroke asks at once and cancels the question before it.

let searching = null;

async function searchFor(q, out = takePage()) {
  if (!q.trim()) {
    out(h("p", { class: "muted" }, "Type to search songs, albums and artists."));
    document.body.dataset.searched = "";
    return;
  }
  searching = new AbortController();
  let results;
  try {
    results = await api(`search?q=${encodeURIComponent(q)}&limit=30`, { signal: searching.signal });
  } catch (error) {
    if (error.name === "AbortError") return;
    throw error;
  }
  if (out.stale()) return;
  const groups = { track: [], album: [], artist: [], playlist: [] };
  for (const hit of results.items) (groups[hit.type] || []).push(hit);
  const link = (hit) => {
    switch (hit.type) {
      case "album": return h("a", { class: "hit", href: `#/album/${hit.id}` }, hit.name, hit.artist ? ` · ${hit.artist}` : "");
      case "artist": return h("a", { class: "hit", href: `#/artist/${hit.id}` }, hit.name);
      case "playlist": return h("a", { class: "hit", href: `#/playlist/${hit.id}` }, hit.name, hit.artist ? ` · ${hit.artist}` : "");
      default: {
        const button = h("button", { type: "button", class: "link hit", "data-track": hit.id }, hit.name, hit.artist ? ` · ${hit.artist}` : "");
        button.addEventListener("click", () => {
          // Plays at once; the rest of the song's details follow.
          const track = { id: hit.id, title: hit.name, artist: hit.artist || "", duration_ms: 0 };
          player.playList([track], 0);
          api(`tracks/${hit.id}`)
            .then((view) => {
              Object.assign(track, view);
              if (player.current === track) player.describe(track);
            })
            .catch(() => {});
        });
        return button;
      }
    }
  };
  const section = (title, hits) => hits.length
    ? h("section", { class: "hits" }, h("h3", {}, title), hits.map(link))
    : "";
  out(
    h("h2", {}, `Results for “${q}”`),
    results.items.length ? "" : h("p", { class: "muted" }, "Nothing found."),
    section("Songs", groups.track),
    section("Albums", groups.album),
    section("Artists", groups.artist),
    section("Playlists", groups.playlist),
  );
  // For anyone measuring: the results on screen are for this query.
  document.body.dataset.searched = q;
}

// ---------------------------------------------------------------------------------------
// Listening events (what counts a stream for the artist's royalties and for trending): a
// start, progress every 30 s of playing, and how the play ended. Sent in the background;
// kept (at most 500) and sent again when the origin could not be reached.

const events = {
  pending: [],
  play: null,
  id() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  },
  record(type, position_s, sources, play = this.play, at = Date.now()) {
    if (!play) return;
    const event = {
      id: this.id(),
      play_id: play.id,
      type,
      track_id: play.track,
      position_ms: Math.min(86400000, Math.max(0, Math.round(position_s * 1000))),
      at,
    };
    if (sources) event.sources = sources;
    this.pending.push(event);
    if (this.pending.length > 500) this.pending.splice(0, this.pending.length - 500);
    this.flush();
  },
  start(track) {
    this.end("skip");
    const play = { id: this.id(), track: track.id, reported: 0, counts: null };
    this.play = play;
    this.record("play_start", 0);
    // Where the gateway got this track's bytes so far for this browser, so the play's own
    // share is known (nothing yet, 404, when this browser never streamed it).
    call(`/web/traffic/${track.id}`)
      .then((counts) => { play.counts = counts; })
      .catch((error) => {
        if (error.status === 404) play.counts = { cache: 0, peers: 0, super_nodes: 0, origin: 0 };
      });
  },
  progress(position_s) {
    if (!this.play) return;
    const mark = Math.floor(position_s / 30);
    if (mark > this.play.reported) {
      this.play.reported = mark;
      this.record("progress", position_s);
    }
  },
  end(type) {
    if (!this.play) return Promise.resolve();
    const play = this.play;
    const position = audio.currentTime || 0;
    const at = Date.now();
    this.play = null;
    // The play's last event carries where its bytes came from (what the gateway served for
    // the track since the play began): the origin's console plots it. Without the count at
    // its start, it carries none.
    if (!play.counts) return Promise.resolve(this.record(type, position, null, play, at));
    return call(`/web/traffic/${play.track}`)
      .then((now) => {
        const since = (key) => Math.min(2 ** 32, Math.max(0, now[key] - play.counts[key]));
        return { cache: since("cache"), peers: since("peers"), super_nodes: since("super_nodes"), origin: since("origin") };
      })
      .catch(() => null)
      .then((sources) => this.record(type, position, sources, play, at));
  },
  async flush() {
    if (this.sending || !this.pending.length) return;
    this.sending = true;
    const batch = this.pending.slice(0, 500);
    try {
      await api("events", { method: "POST", body: batch });
      this.pending.splice(0, batch.length);
    } catch (error) {
      // Refused outright (not a network failure): dropping them is all that helps.
      if (error.status && error.status < 500 && error.status !== 429) this.pending.splice(0, batch.length);
    } finally {
      this.sending = false;
    }
  },
};
setInterval(() => events.flush(), 30000);

// ---------------------------------------------------------------------------------------
// The player: a queue with shuffle and repeat over <audio>.

const player = {
  list: [],
  order: [],
  at: -1,
  shuffle: false,
  repeat: "off",
  current: null,

  /** Plays `tracks` from `index`; with `shuffle`, shuffled from a random one. */
  playList(tracks, index, shuffle = false) {
    this.list = tracks.slice();
    if (shuffle) {
      this.shuffle = true;
      $("shuffle").setAttribute("aria-pressed", "true");
      index = Math.floor(Math.random() * this.list.length);
    }
    this.reorder(index);
    this.start();
  },

  /** The play order from the list's `current`: in list order from it, or, shuffled, it
   * first and the rest in a random order. Sets where in the order playing is. */
  reorder(current) {
    const all = this.list.map((_, i) => i);
    if (!this.shuffle) {
      this.order = all;
      this.at = Math.max(0, current);
      return;
    }
    const rest = all.filter((i) => i !== current);
    for (let i = rest.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [rest[i], rest[j]] = [rest[j], rest[i]];
    }
    this.order = this.list.length ? [current, ...rest] : [];
    this.at = 0;
  },

  upcoming() {
    return this.order.slice(Math.max(this.at, 0)).map((i) => this.list[i]);
  },

  start() {
    const track = this.list[this.order[this.at]];
    if (!track) return;
    this.current = track;
    events.start(track);
    audio.src = `/web/stream/${track.id}`;
    document.body.dataset.playing = track.id;
    audio.play().catch(() => {});
    this.describe(track);
    traffic.follow(track.id);
  },

  /** Shows what is playing (again, when more of it is known). */
  describe(track) {
    $("now-title").textContent = track.title;
    $("now-artist").textContent = track.artist || "";
    const now = $("now-cover");
    now.src = `/web/cover/tr-${track.id}?size=128`;
    now.alt = `Cover of ${track.title}`;
    $("seek").max = String((track.duration_ms || 0) / 1000);
    $("length").textContent = time((track.duration_ms || 0) / 1000);
    for (const row of document.querySelectorAll(".track")) {
      row.classList.toggle("playing", row.dataset.id === track.id);
    }
    if ("mediaSession" in navigator) {
      navigator.mediaSession.metadata = new MediaMetadata({
        title: track.title,
        artist: track.artist || "",
        album: track.album || "",
        artwork: [{ src: `/web/cover/tr-${track.id}?size=300`, sizes: "300x300", type: "image/jpeg" }],
      });
    }
  },

  next(ended = false) {
    if (!this.order.length) return;
    if (ended && this.repeat === "one") {
      events.start(this.current);
      audio.currentTime = 0;
      audio.play().catch(() => {});
      return;
    }
    if (this.at + 1 < this.order.length) {
      this.at += 1;
    } else if (this.repeat === "all") {
      this.at = 0;
    } else {
      return;
    }
    this.start();
  },

  previous() {
    if (audio.currentTime > 3 || this.at <= 0) {
      audio.currentTime = 0;
      return;
    }
    this.at -= 1;
    this.start();
  },

  toggleShuffle() {
    this.shuffle = !this.shuffle;
    if (this.list.length) this.reorder(this.order[this.at]);
    $("shuffle").setAttribute("aria-pressed", String(this.shuffle));
  },

  cycleRepeat() {
    this.repeat = { off: "all", all: "one", one: "off" }[this.repeat];
    const button = $("repeat");
    button.setAttribute("aria-pressed", String(this.repeat !== "off"));
    button.title = `Repeat: ${this.repeat}`;
    button.querySelector(".one").toggleAttribute("hidden", this.repeat !== "one");
  },
};

// Where the playing track's bytes came from, asked every second while it plays.
const traffic = {
  track: null,
  timer: null,
  follow(track) {
    this.track = track;
    if (!this.timer) this.timer = setInterval(() => this.poll(), 1000);
    this.poll();
  },
  async poll() {
    if (!this.track) return;
    if (audio.paused && this.polledPaused) return;
    this.polledPaused = audio.paused;
    let counts;
    try {
      counts = await call(`/web/traffic/${this.track}`);
    } catch {
      return;
    }
    const total = counts.cache + counts.peers + counts.super_nodes + counts.origin;
    const share = (n) => (total ? `${(100 * n) / total}%` : "0");
    const bar = $("source-bar");
    bar.querySelector(".cache").style.width = share(counts.cache);
    bar.querySelector(".peers").style.width = share(counts.peers);
    bar.querySelector(".super").style.width = share(counts.super_nodes);
    bar.querySelector(".origin").style.width = share(counts.origin);
    $("src-cache").textContent = bytes(counts.cache);
    $("src-peers").textContent = bytes(counts.peers);
    $("src-super").textContent = bytes(counts.super_nodes);
    $("src-origin").textContent = bytes(counts.origin);
    bar.setAttribute(
      "aria-label",
      `This track's bytes: ${bytes(counts.cache)} from the cache, ${bytes(counts.peers)} from peers, ` +
        `${bytes(counts.super_nodes)} from super-nodes, ${bytes(counts.origin)} from the origin`,
    );
    document.body.dataset.peerBytes = String(counts.peers + counts.super_nodes);
  },
};

function wirePlayer() {
  const play = $("play");
  play.addEventListener("click", () => {
    if (!player.current) return;
    if (audio.paused) audio.play().catch(() => {});
    else audio.pause();
  });
  $("next").addEventListener("click", () => player.next());
  $("prev").addEventListener("click", () => player.previous());
  $("shuffle").addEventListener("click", () => player.toggleShuffle());
  $("repeat").addEventListener("click", () => player.cycleRepeat());
  const seek = $("seek");
  let dragging = false;
  seek.addEventListener("input", () => {
    dragging = true;
    $("elapsed").textContent = time(Number(seek.value));
  });
  seek.addEventListener("change", () => {
    dragging = false;
    audio.currentTime = Number(seek.value);
  });
  audio.addEventListener("timeupdate", () => {
    events.progress(audio.currentTime);
    if (!dragging) seek.value = String(audio.currentTime);
    $("elapsed").textContent = time(audio.currentTime);
  });
  const paused = () => {
    play.querySelector(".icon-play").toggleAttribute("hidden", !audio.paused);
    play.querySelector(".icon-pause").toggleAttribute("hidden", audio.paused);
    play.title = audio.paused ? "Play" : "Pause";
    play.querySelector(".visually-hidden").textContent = audio.paused ? "Play" : "Pause";
  };
  audio.addEventListener("play", paused);
  audio.addEventListener("pause", paused);
  audio.addEventListener("durationchange", () => {
    if (Number.isFinite(audio.duration) && player.current && !player.current.duration_ms) {
      seek.max = String(audio.duration);
      $("length").textContent = time(audio.duration);
    }
  });
  audio.addEventListener("ended", () => {
    events.end("complete");
    player.next(true);
  });
  audio.addEventListener("error", () => {
    $("now-artist").textContent = "This song could not be played (the origin may be out of reach).";
  });
  if ("mediaSession" in navigator) {
    navigator.mediaSession.setActionHandler("play", () => audio.play());
    navigator.mediaSession.setActionHandler("pause", () => audio.pause());
    navigator.mediaSession.setActionHandler("nexttrack", () => player.next());
    navigator.mediaSession.setActionHandler("previoustrack", () => player.previous());
  }
  // Space plays and pauses, unless typing or on a button.
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target.closest && target.closest("input, select, textarea, button, a");
    if (event.key === " " && !typing && player.current) {
      event.preventDefault();
      play.click();
    }
  });
}

// ---------------------------------------------------------------------------------------
// Routing and signing in

async function route() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name = "", id] = path.split("/");
  const params = new URLSearchParams(query);
  const view = views[name || "home"];
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${name}`);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  const out = takePage();
  if (!view || (id !== undefined && !/^[0-9a-f]{32}$/.test(id))) {
    out(h("p", {}, "No such page. ", h("a", { href: "#/" }, "Home")));
    return;
  }
  try {
    await view(params, id, out);
  } catch (error) {
    if (error.status !== 401 && !out.stale()) failed(error);
  }
}

function showSignIn() {
  audio.pause();
  traffic.track = null;
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-user").focus();
}

async function signedIn(who) {
  // Listening not yet sent belongs to whoever played it: never sent as someone else.
  if (events.owner !== who.username) {
    events.pending = [];
    events.play = null;
    player.list = [];
    player.order = [];
    player.current = null;
  }
  events.owner = who.username;
  downloadsOffered = who.downloads;
  $("who").textContent = who.username;
  $("nav-downloads").hidden = !downloadsOffered;
  $("signin").hidden = true;
  $("app").hidden = false;
  // Liked songs and playlists mark every row; with the origin down, the page still opens.
  await Promise.all([loadLiked(), loadPlaylists()]).catch(() => {});
  await route();
}

function wireSignIn() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    $("signin-submit").disabled = true;
    try {
      const who = await call("/web/session", {
        method: "POST",
        body: { username: $("signin-user").value, password: $("signin-password").value },
      });
      $("signin-password").value = "";
      await signedIn(who);
    } catch (error) {
      $("signin-error").textContent =
        error.status === 401 || error.status === 400 ? "Wrong username or password." : error.message;
    } finally {
      $("signin-submit").disabled = false;
    }
  });
  $("signout").addEventListener("click", async () => {
    await events.end("skip");
    await events.flush();
    await call("/web/session", { method: "DELETE" }).catch(() => {});
    audio.pause();
    showSignIn();
  });
  const search = $("search");
  search.addEventListener("input", () => {
    const q = search.value;
    history.replaceState(null, "", `#/search?q=${encodeURIComponent(q)}`);
    for (const link of document.querySelectorAll("nav a")) link.removeAttribute("aria-current");
    searchFor(q).catch(failed);
  });
  $("search-form").addEventListener("submit", (event) => event.preventDefault());
}

async function boot() {
  wireSignIn();
  wirePlayer();
  window.addEventListener("hashchange", () => {
    if (location.hash.startsWith("#/search") && document.activeElement === $("search")) return;
    route();
  });
  try {
    await signedIn(await call("/web/session"));
  } catch {
    showSignIn();
  }
}

boot();
