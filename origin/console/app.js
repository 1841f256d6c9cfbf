// The Chorus operator console: a page of the origin for its admins. It talks to the origin's
// own API with the admin's bearer token (kept for this tab only), builds the page from text
// nodes (never markup from the network) and draws its plot as SVG.

const $ = (id) => document.getElementById(id);
const main = $("main");
const SVG = "http://www.w3.org/2000/svg";

// ---------------------------------------------------------------------------------------
// Session and API

let tokens = JSON.parse(sessionStorage.getItem("chorus-console") || "null");

function keep(next) {
  tokens = next;
  if (next) sessionStorage.setItem("chorus-console", JSON.stringify(next));
  else sessionStorage.removeItem("chorus-console");
}

class Refused extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function raw(path, { method = "GET", body, auth = true } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (auth && tokens) headers.authorization = `Bearer ${tokens.access_token}`;
  return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

/** A JSON call to the origin's API; renews the session once on a 401. */
async function api(path, options = {}) {
  let response = await raw(path, options);
  if (response.status === 401 && tokens && options.auth !== false) {
    const renewed = await raw("/v1/sessions/refresh", {
      method: "POST",
      body: { refresh_token: tokens.refresh_token },
      auth: false,
    });
    if (renewed.ok) {
      keep(await renewed.json());
      response = await raw(path, options);
    }
  }
  if (response.status === 401 && options.auth !== false) {
    keep(null);
    showSignIn();
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = (json && json.error) || {};
    throw new Refused(response.status, error.code || "", error.message || response.statusText);
  }
  return json;
}

// ---------------------------------------------------------------------------------------
// Building the page

function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (value === true) element.setAttribute(key, "");
    else element.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const number = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en"));

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function show(...children) {
  main.replaceChildren(...children);
}

// Every route takes the page: a view still loading for an earlier one shows nothing when its
// answer arrives.
let page = 0;

function takePage() {
  const mine = ++page;
  const out = (...children) => {
    if (mine === page) show(...children);
  };
  out.stale = () => mine !== page;
  return out;
}

function failed(error) {
  show(h("p", { class: "error", role: "alert" }, `Could not load this: ${error.message}`));
}

function stat(title, rows) {
  return h("section", { class: "stat", "aria-label": title },
    h("h3", {}, title),
    h("dl", {}, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)])));
}

function table(caption, head, rows, numeric = []) {
  return h("table", {},
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, head.map((name, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : "" }, name)))),
    h("tbody", {}, rows.length
      ? rows.map((row) => h("tr", {}, row.map((cell, i) => h("td", { class: numeric.includes(i) ? "num" : "" }, cell))))
      : h("tr", {}, h("td", { colspan: head.length, class: "muted" }, "None."))));
}

// ---------------------------------------------------------------------------------------
// Views

let refresh = null;

const views = {
  async overview(_params, out) {
    const o = await api("/v1/admin/overview");
    const up = Math.round((o.at_ms - o.started_at_ms) / 60000);
    out(
      h("h2", {}, "Overview"),
      h("p", { class: "muted" }, `Since this origin started, ${up} min ago.`),
      h("div", { class: "cards" },
        stat("Catalog", [["tracks", number(o.catalog.tracks)], ["albums", number(o.catalog.albums)], ["artists", number(o.catalog.artists)]]),
        stat("Ingest jobs", [["running", number(o.ingest.running)], ["done", number(o.ingest.done)], ["refused (bad input)", number(o.ingest.rejected)], ["failed", number(o.ingest.failed)], ["audio ingested", `${number(Math.round(o.ingest.audio_s / 60))} min`]]),
        stat("Chunk egress", [["QUIC", bytes(o.egress.quic)], ["HTTP", bytes(o.egress.http)], ["with grants", bytes(o.egress.opening)]]),
        stat("Network", [["trackers online", `${o.trackers.filter((t) => t.online).length} of ${o.trackers.length}`], ["super-nodes", number(o.super_nodes.length)]]),
        stat("Rate-limit refusals", o.refusals.length ? o.refusals.map((r) => [r.bucket, number(r.refused)]) : [["none", "0"]]),
      ),
    );
  },

  async accounts(params, out) {
    const q = params.get("q") || "";
    const input = h("input", { id: "account-q", type: "search", value: q, placeholder: "username", required: true, pattern: "[A-Za-z0-9_.\\-]+", maxlength: 32 });
    const form = h("form", { class: "row", role: "search" },
      h("label", { for: "account-q" }, "Find an account"), input, h("button", { type: "submit" }, "Find"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      location.hash = `#/accounts?q=${encodeURIComponent(input.value.trim())}`;
    });
    out(h("h2", {}, "Accounts"), form);
    if (!q) return;
    const list = await api(`/v1/admin/accounts?q=${encodeURIComponent(q)}&limit=50`);
    const status = h("p", { role: "status", class: "muted" });
    const rows = list.items.map((account) => {
      const role = h("select", { "aria-label": `Role of ${account.username}` },
        ["listener", "artist", "admin", "super_node"].map((r) => h("option", { value: r, selected: r === account.role }, r)));
      const tier = h("select", { "aria-label": `Tier of ${account.username}` },
        ["free", "premium"].map((t) => h("option", { value: t, selected: t === account.tier }, t)));
      const region = h("input", { "aria-label": `Region of ${account.username}`, value: account.region, size: 3, maxlength: 2, pattern: "[A-Z]{2}" });
      const save = h("button", { type: "button", class: "primary" }, "Save");
      save.addEventListener("click", async () => {
        status.className = "muted";
        try {
          const changed = await api(`/v1/admin/accounts/${encodeURIComponent(account.username)}`, {
            method: "PATCH",
            body: { role: role.value, tier: tier.value, region: region.value.trim().toUpperCase() },
          });
          status.className = "ok";
          status.textContent = `Saved ${changed.username}: ${changed.role}, ${changed.tier}, ${changed.region}.`;
        } catch (error) {
          status.className = "error";
          status.textContent = `Not saved: ${error.message}`;
        }
      });
      return [account.username, role, tier, region, save];
    });
    if (out.stale()) return;
    main.append(
      table("Accounts found", ["username", "role", "tier", "region", ""], rows),
      list.truncated ? h("p", { class: "muted" }, "More accounts match: refine the search.") : "",
      status,
    );
  },

  async network(_params, out) {
    const [o, traffic] = await Promise.all([api("/v1/admin/overview"), api("/v1/admin/traffic")]);
    out(
      h("h2", {}, "Network"),
      h("h3", {}, "Origin egress and what listeners got from peers, per minute"),
      plot(traffic.minutes),
      h("h3", {}, "Tracker shards"),
      table("Tracker shards", ["address", "node", "state", "ping"],
        o.trackers.map((t) => [t.addr, `${t.node_id.slice(0, 16)}…`, t.online ? "online" : "not answering", t.rtt_ms ? `${t.rtt_ms} ms` : "—"]), [3]),
      h("h3", {}, "Super-nodes with a current role token"),
      table("Super-nodes", ["node", "account", "region", "token until"],
        o.super_nodes.map((n) => [`${n.node_id.slice(0, 16)}…`, n.username, n.region, new Date(n.expires_at_ms).toLocaleString()])),
    );
    if (!out.stale()) refresh = setTimeout(() => route(), 10000);
  },

  async royalties(params, out) {
    const asked = params.get("month") || "";
    const month = /^\d{4}-\d{2}$/.test(asked) ? asked : new Date().toISOString().slice(0, 7);
    const input = h("input", { id: "month", type: "month", value: month, required: true });
    const form = h("form", { class: "row" }, h("label", { for: "month" }, "Month"), input, h("button", { type: "submit" }, "Show"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      location.hash = `#/royalties?month=${input.value}`;
    });
    const exporter = h("button", { type: "button", id: "export" }, "Export CSV");
    exporter.addEventListener("click", async () => {
      // A call that renews the session first if it must.
      await api("/v1/me");
      const response = await raw(`/v1/royalties/export?month=${month}`);
      if (!response.ok) {
        exporter.textContent = "Export failed: try again";
        return;
      }
      const url = URL.createObjectURL(await response.blob());
      const link = h("a", { href: url, download: `royalties-${month}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
    out(h("h2", {}, "Royalties"), form);
    const report = await api(`/v1/royalties?month=${month}&limit=100`);
    if (out.stale()) return;
    main.append(
      h("div", { class: "row" },
        h("span", {}, `${number(report.counted)} streams counted of ${number(report.streams)}; flagged: ${number(report.flagged.looping)} looping, ${number(report.flagged.impossible_travel)} impossible travel, ${number(report.flagged.burst)} bursts.`),
        exporter),
      h("h3", {}, "Artists"),
      table("Artists", ["artist", "streams", "share"], report.artists.map((a) => [a.name || a.artist_id, number(a.streams), `${(a.share * 100).toFixed(2)} %`]), [1, 2]),
      h("h3", {}, `Tracks (${number(report.tracks_total)}; the export has them all)`),
      table("Tracks", ["track", "streams", "share"], report.tracks.map((t) => [t.title || t.track_id, number(t.streams), `${(t.share * 100).toFixed(2)} %`]), [1, 2]),
    );
  },
};

/** Origin egress against bytes from peers and super-nodes, per minute, as an SVG. */
function plot(minutes) {
  const width = 960;
  const height = 260;
  const pad = { left: 70, right: 10, top: 10, bottom: 30 };
  const wrap = h("figure", { class: "plot" });
  if (!minutes.length) {
    wrap.append(h("p", { class: "muted" }, "No traffic yet: it appears as listeners play."));
    return wrap;
  }
  const series = [
    { name: "origin egress", key: "origin_egress", class: "egress", color: "#d1495b" },
    { name: "from peers", key: "peers", class: "peers", color: "#1c7c54" },
    { name: "from super-nodes", key: "super_nodes", class: "super", color: "#2e86ab" },
  ];
  const t0 = minutes[0].at_ms;
  const t1 = Math.max(minutes[minutes.length - 1].at_ms, t0 + 60000);
  const top = Math.max(1, ...minutes.flatMap((m) => series.map((line) => m[line.key])));
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Bytes per minute over the last ${Math.round((t1 - t0) / 60000)} minutes` });
  for (const fraction of [0, 0.5, 1]) {
    const v = top * fraction;
    svg.append(
      s("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), stroke: "#d9dfdb" }),
      s("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 12, fill: "#5d6862" }, bytes(Math.round(v))),
    );
  }
  for (const t of [t0, t1]) {
    svg.append(s("text", { x: x(t), y: height - 8, "text-anchor": t === t0 ? "start" : "end", "font-size": 12, fill: "#5d6862" }, new Date(t).toLocaleTimeString()));
  }
  for (const line of series) {
    const points = minutes.map((m) => `${x(m.at_ms).toFixed(1)},${y(m[line.key]).toFixed(1)}`).join(" ");
    svg.append(s("polyline", { points, fill: "none", stroke: line.color, "stroke-width": 2, "data-series": line.key }));
    for (const m of minutes) {
      svg.append(s("circle", { cx: x(m.at_ms).toFixed(1), cy: y(m[line.key]).toFixed(1), r: 2.5, fill: line.color },
        s("title", {}, `${new Date(m.at_ms).toLocaleTimeString()}: ${line.name} ${bytes(m[line.key])}`)));
    }
  }
  const total = (key) => minutes.reduce((sum, m) => sum + m[key], 0);
  const peer = total("peers") + total("super_nodes");
  const share = peer + total("origin_reported") ? (100 * peer) / (peer + total("origin_reported")) : 0;
  wrap.append(svg,
    h("figcaption", { class: "legend" },
      series.map((line) => h("span", { class: line.class }, `${line.name}: ${bytes(total(line.key))}`)),
      h("span", {}, `peer share of what listeners reported: ${share.toFixed(1)} %`)));
  return wrap;
}

// ---------------------------------------------------------------------------------------
// Routing and signing in

async function route() {
  clearTimeout(refresh);
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const name = path || "overview";
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = views[name];
  const out = takePage();
  if (!view) {
    out(h("p", {}, "No such page."));
    return;
  }
  try {
    await view(new URLSearchParams(query), out);
  } catch (error) {
    if (error.status !== 401 && !out.stale()) failed(error);
  }
}

function showSignIn() {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-user").focus();
}

async function enter() {
  const me = await api("/v1/me");
  if (me.role !== "admin") {
    keep(null);
    showSignIn();
    $("signin-error").textContent = "This console is for admins.";
    return;
  }
  $("who").textContent = me.username;
  $("signin").hidden = true;
  $("app").hidden = false;
  await route();
}

async function boot() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    try {
      keep(await api("/v1/sessions", {
        method: "POST",
        body: { username: $("signin-user").value, password: $("signin-password").value },
        auth: false,
      }));
      $("signin-password").value = "";
      await enter();
    } catch (error) {
      $("signin-error").textContent = error.status === 401 ? "Wrong username or password." : error.message;
    }
  });
  $("signout").addEventListener("click", () => {
    keep(null);
    showSignIn();
  });
  window.addEventListener("hashchange", route);
  if (!tokens) return showSignIn();
  try {
    await enter();
  } catch {
    showSignIn();
  }
}

boot();
