// The web player in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
// Run by chorus/tests/web_player.rs with CHORUS_WEB_* in the environment (and NODE_PATH naming
// where playwright-core is installed). It signs in, browses, searches as it types, plays a song
// and watches `audio.currentTime` advance, likes a song, makes a playlist and reorders it by
// drag and by keyboard (the order survives a reload), shuffles and repeats, downloads a song,
// then (once the test has stopped the origin: it writes `origin-down?` and waits for a line)
// lists and plays the download with the origin gone. Screenshots go to CHORUS_WEB_SHOTS. The
// last line of output is JSON with what was measured in the page; a failed check exits
// non-zero with what failed.

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { instrument } from "../../src/bench/web_instrument.mjs";

const require = createRequire(import.meta.url);
const { chromium } = require(require.resolve("playwright-core"));

const env = process.env;
const base = env.CHORUS_WEB_URL;
const user = env.CHORUS_WEB_USER;
const password = env.CHORUS_WEB_PASSWORD;
const shots = env.CHORUS_WEB_SHOTS;
mkdirSync(shots, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

const browser = await chromium.launch({
  executablePath: env.CHORUS_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--autoplay-policy=no-user-gesture-required", "--mute-audio", "--no-sandbox"],
});
const measured = {};
const errors = [];
let step = 0;
let page;
const shot = async (name) => {
  step += 1;
  await page.screenshot({ path: `${shots}/${String(step).padStart(2, "0")}-${name}.png` });
};

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(instrument);
  page = await context.newPage();
  page.on("pageerror", (error) => errors.push(String(error)));

  // First paint, cold.
  await page.goto(`${base}/`);
  await page.waitForSelector("#signin:not([hidden])");
  await page.waitForFunction(() => performance.getEntriesByName("first-contentful-paint").length > 0);
  measured.first_paint_ms = await page.evaluate(
    () => performance.getEntriesByName("first-contentful-paint")[0].startTime,
  );
  // Labelled and keyboard-usable: the sign-in fields have labels, Tab reaches them.
  check(await page.locator('label[for="signin-user"]').count() === 1, "a label for the username");
  await shot("sign-in");

  // A wrong password is refused with a message; the right one signs in.
  await page.fill("#signin-user", user);
  await page.fill("#signin-password", "not the password");
  await page.press("#signin-password", "Enter");
  await page.waitForFunction(() => document.getElementById("signin-error").textContent.length > 0);
  check(await page.isVisible("#signin"), "still signing in after a wrong password");
  await page.fill("#signin-password", password);
  await page.press("#signin-password", "Enter");
  await page.waitForSelector("#app:not([hidden]) .grid .tile img");
  await page.waitForFunction(() =>
    [...document.querySelectorAll(".tile img")].some((img) => img.complete && img.naturalWidth > 0),
  );
  await shot("albums-with-covers");

  // Album page, then artist page.
  await page.click(".tile >> nth=0");
  await page.waitForSelector(".head h2");
  const albumTitle = await page.textContent(".head h2");
  check(albumTitle === "Night Songs", `the album page (${albumTitle})`);
  const songs = await page.locator(".track .title").allTextContents();
  check(songs.join("|") === "First Light|Second Light", `the album's songs in order (${songs})`);
  await page.click(".head a");
  await page.waitForFunction(() => document.querySelector(".head h2")?.textContent === "The Quiet Ones");
  check(await page.locator(".track .title").count() === 3, "the artist's three songs");

  // Search as you type: each keystroke's results, timed in the page from the key going down
  // to the results for that prefix on screen.
  await page.goto(`${base}/#/`);
  await page.waitForSelector(".grid .tile");
  const latencies = [];
  for (const word of ["light", "night", "loud", "second", "quiet"]) {
    await page.fill("#search", "");
    await page.focus("#search");
    for (let i = 1; i <= word.length; i++) {
      const prefix = word.slice(0, i);
      await page.keyboard.type(word[i - 1]);
      await page.waitForFunction((q) => document.body.dataset.searched === q, prefix);
      const latency = await page.evaluate((q) => {
        const key = window.__keys[window.__keys.length - 1];
        const shown = window.__shown.filter((entry) => entry.q === q).pop();
        return shown.at - key;
      }, prefix);
      latencies.push(latency);
    }
  }
  latencies.sort((a, b) => a - b);
  measured.search_samples = latencies.length;
  measured.search_p50_ms = latencies[Math.floor(latencies.length * 0.5)];
  measured.search_p95_ms = latencies[Math.ceil(latencies.length * 0.95) - 1];
  await page.fill("#search", "first light");
  await page.waitForFunction(() => document.body.dataset.searched === "first light");
  await shot("search");

  // Play from the results: from the press to the audio moving, timed in the page.
  await page.click('.hits [data-track] >> text="First Light · The Quiet Ones"');
  await page.waitForFunction(() => window.__audible !== undefined, null, { timeout: 15000 });
  measured.play_to_audible_ms = await page.evaluate(() => window.__audible - window.__pressed);
  await page.waitForFunction(() => document.getElementById("audio").currentTime > 1.5, null, {
    timeout: 15000,
  });
  check((await page.textContent("#now-title")) === "First Light", "the player shows the song");
  // Another listener's gateway holds this song: past the opening chunks (the origin's, with
  // the grant), its bytes come from that peer, and the page shows them while it plays.
  await page.waitForFunction(() => document.getElementById("src-origin").textContent !== "0 B");
  await page.waitForFunction(() => Number(document.body.dataset.peerBytes || 0) > 0, null, {
    timeout: 15000,
  });
  const playedAt = await page.evaluate(() => document.getElementById("audio").currentTime);
  await page.waitForFunction(
    (t) => document.getElementById("audio").currentTime > t + 0.5,
    playedAt,
    { timeout: 15000 },
  );
  measured.peer_bytes = await page.evaluate(() => Number(document.body.dataset.peerBytes));
  measured.sources = await page.evaluate(() => ({
    cache: document.getElementById("src-cache").textContent,
    peers: document.getElementById("src-peers").textContent,
    super_nodes: document.getElementById("src-super").textContent,
    origin: document.getElementById("src-origin").textContent,
  }));
  await shot("playing");
  // Pause with the button, play again with Space; seek.
  await page.click("#play");
  await page.waitForFunction(() => document.getElementById("audio").paused);
  await page.evaluate(() => document.activeElement.blur());
  await page.keyboard.press("Space");
  await page.waitForFunction(() => !document.getElementById("audio").paused);
  await page.evaluate(() => {
    const seek = document.getElementById("seek");
    seek.value = "20";
    seek.dispatchEvent(new Event("change"));
  });
  await page.waitForFunction(() => document.getElementById("audio").currentTime > 20, null, {
    timeout: 15000,
  });

  // Like a song; it is among the liked songs.
  await page.goto(`${base}/#/album/${env.CHORUS_WEB_ALBUM}`);
  await page.waitForSelector('.track [aria-label="Like Second Light"]');
  await page.click('[aria-label="Like Second Light"]');
  await page.waitForSelector('[aria-label="Like Second Light"][aria-pressed="true"]');
  await page.goto(`${base}/#/liked`);
  await page.waitForSelector('.track .title >> text="Second Light"');

  // A page still loading when another is opened never replaces it: the album answers late,
  // after the liked songs are shown.
  await page.route("**/web/api/v1/albums/**", async (route) => {
    await new Promise((resolve) => setTimeout(resolve, 700));
    await route.continue();
  });
  await page.evaluate((album) => { location.hash = `#/album/${album}`; }, env.CHORUS_WEB_ALBUM);
  await page.evaluate(() => { location.hash = "#/liked"; });
  await page.waitForSelector('main h2 >> text="Liked songs"');
  await page.waitForTimeout(1200);
  check(
    (await page.textContent("main h2")) === "Liked songs",
    "a late answer for an earlier page does not replace the page shown",
  );
  await page.unroute("**/web/api/v1/albums/**");

  // A playlist: made, filled from the album and the single, reordered by drag and by
  // keyboard; the order holds after a reload.
  await page.goto(`${base}/#/playlists`);
  await page.fill("#new-playlist", "Road trip");
  await page.press("#new-playlist", "Enter");
  await page.waitForSelector('h2 >> text="Road trip"');
  const playlistUrl = page.url();
  await page.goto(`${base}/#/album/${env.CHORUS_WEB_ALBUM}`);
  await page.waitForSelector('[aria-label="Add First Light to a playlist"]');
  for (const title of ["First Light", "Second Light"]) {
    await page.selectOption(`[aria-label="Add ${title} to a playlist"]`, { label: "Road trip" });
    await page.waitForTimeout(200);
  }
  await page.goto(playlistUrl);
  await page.waitForSelector(".track .title");
  // Add the single through the API the page uses, as the search view has no "+ playlist".
  await page.evaluate(async ([playlist, single]) => {
    await fetch(`/web/api/v1/playlists/${playlist}/tracks`, {
      method: "POST",
      headers: { "x-chorus-web": "1", "content-type": "application/json" },
      body: JSON.stringify({ track_ids: [single] }),
    });
  }, [playlistUrl.split("/").pop(), env.CHORUS_WEB_SINGLE]);
  await page.reload();
  await page.waitForSelector('.track .title >> text="Loud Single"');
  const order = async () => page.locator(".track .title").allTextContents();
  check((await order()).join("|") === "First Light|Second Light|Loud Single", `filled (${await order()})`);
  // Drag the last song above the first.
  await page.dragAndDrop('.track[data-index="2"]', '.track[data-index="0"]', {
    targetPosition: { x: 40, y: 3 },
  });
  await page.waitForFunction(
    () => document.querySelector('.track[data-index="0"] .title')?.textContent === "Loud Single",
  );
  // Then move the (now) second song down with the keyboard.
  await page.focus('[aria-label="Move First Light down"]');
  await page.keyboard.press("Enter");
  await page.waitForFunction(
    () => document.querySelector('.track[data-index="2"] .title')?.textContent === "First Light",
  );
  await page.reload();
  await page.waitForSelector(".track .title");
  const kept = (await order()).join("|");
  check(kept === "Loud Single|Second Light|First Light", `the order after a reload (${kept})`);
  await shot("playlist-reordered");

  // Started from the middle, the queue goes on in the list's order.
  await page.click('.track[data-index="1"] .title');
  await page.waitForFunction(() => document.getElementById("now-title").textContent === "Second Light");
  await page.click("#next");
  await page.waitForFunction(() => document.getElementById("now-title").textContent === "First Light");

  // Shuffle and repeat; next moves on in the queue.
  await page.click('main .actions button:has-text("Play")');
  await page.waitForFunction(() => document.getElementById("now-title").textContent === "Loud Single");
  await page.click("#next");
  await page.waitForFunction(() => document.getElementById("now-title").textContent === "Second Light");
  await page.click("#shuffle");
  check((await page.getAttribute("#shuffle", "aria-pressed")) === "true", "shuffle on");
  await page.click("#repeat");
  check((await page.getAttribute("#repeat", "title")) === "Repeat: all", "repeat all");
  await page.goto(`${base}/#/queue`);
  await page.waitForSelector(".track .title");
  await shot("queue");

  // The operator console on the origin: an admin signs in, reads the overview, finds the
  // listener and makes them premium, sees the traffic plot, and exports the month's
  // royalties as CSV.
  {
    const admin = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 900 } });
    const consolePage = await admin.newPage();
    consolePage.on("pageerror", (error) => errors.push(`console: ${error}`));
    const before = page;
    page = consolePage;
    await page.goto(`${env.CHORUS_CONSOLE_URL}/console`);
    await page.waitForSelector("#signin:not([hidden])");
    // A listener is turned away.
    await page.fill("#signin-user", user);
    await page.fill("#signin-password", password);
    await page.press("#signin-password", "Enter");
    await page.waitForFunction(() => document.getElementById("signin-error").textContent.includes("admins"));
    await page.fill("#signin-user", env.CHORUS_ADMIN_USER);
    await page.fill("#signin-password", password);
    await page.press("#signin-password", "Enter");
    await page.waitForSelector('section[aria-label="Catalog"] dd');
    const tracks = await page.textContent('section[aria-label="Catalog"] dd');
    check(tracks === "3", `the catalog has 3 tracks (${tracks})`);
    await shot("console-overview");
    await page.goto(`${env.CHORUS_CONSOLE_URL}/console#/accounts?q=${user}`);
    await page.waitForSelector(`[aria-label="Tier of ${user}"]`);
    await page.selectOption(`[aria-label="Tier of ${user}"]`, "premium");
    await page.click('button:has-text("Save")');
    await page.waitForSelector('p[role="status"].ok');
    await page.reload();
    await page.waitForSelector(`[aria-label="Tier of ${user}"]`);
    check(await page.inputValue(`[aria-label="Tier of ${user}"]`) === "premium", "the listener is premium after a reload");
    await shot("console-premium-granted");
    await page.goto(`${env.CHORUS_CONSOLE_URL}/console#/network`);
    await page.waitForSelector('polyline[data-series="origin_egress"]', { state: "attached" });
    await shot("console-network");
    await page.goto(`${env.CHORUS_CONSOLE_URL}/console#/royalties`);
    await page.waitForSelector("#export");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export")]);
    const saved = `${shots}/royalties.csv`;
    await download.saveAs(saved);
    const { readFileSync } = await import("node:fs");
    const csv = readFileSync(saved, "utf8");
    check(csv.startsWith("track_id,title,artist_id,artist,streams,share"), `the CSV header (${csv.slice(0, 60)})`);
    await shot("console-royalties");
    await admin.close();
    page = before;
  }

  // A download, then the origin goes away: the download is listed and plays.
  await page.goto(`${base}/#/album/${env.CHORUS_WEB_ALBUM}`);
  await page.click('[aria-label="Download Second Light"]');
  await page.waitForSelector('[aria-label="Download Second Light"]:has-text("✓")', { timeout: 30000 });
  await page.evaluate(() => document.getElementById("audio").pause());
  console.log("origin-down?");
  await lines.next();
  await page.goto(`${base}/#/downloads`);
  await page.reload();
  await page.waitForSelector('.track .title >> text="Second Light"', { timeout: 15000 });
  await page.click('.track .title >> text="Second Light"');
  await page.waitForFunction(() => document.getElementById("audio").currentTime > 1, null, {
    timeout: 15000,
  });
  await shot("offline-download-playing");
  check(errors.length === 0, `no script errors in the page: ${errors.join("; ")}`);
} catch (error) {
  if (page) await shot("failed").catch(() => {});
  console.error(String(error && error.stack ? error.stack : error));
  console.error(`page errors: ${errors.join("; ")}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(JSON.stringify(measured));
process.exit(0);
