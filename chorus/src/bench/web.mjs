// `chorus bench web`: the web player's targets measured in Chromium (headless, through
// playwright-core), each next to a baseline taken in the same browser in the same run.
//
// Written out and run by chorus/src/bench/web.rs with CHORUS_BENCH_* in the environment; prints
// one JSON line of raw samples (milliseconds) on success.

import { createRequire } from "node:module";
import { instrument } from "./web_instrument.mjs";

const require = createRequire(import.meta.url);
const { chromium } = require(require.resolve("playwright-core"));

const env = process.env;
const base = env.CHORUS_BENCH_URL;
const loads = Number(env.CHORUS_BENCH_LOADS);
const words = JSON.parse(env.CHORUS_BENCH_WORDS);
const songs = JSON.parse(env.CHORUS_BENCH_SONGS);
const floorSongs = JSON.parse(env.CHORUS_BENCH_FLOOR_SONGS);
const out = { first_paint: [], first_paint_floor: [], keystroke: [], round_trip: [], play: [], stream_first_byte: [] };
const progress = (text) => process.stderr.write(`\r\x1b[2K${text}`);

const paint = (page) =>
  page
    .waitForFunction(() => performance.getEntriesByName("first-contentful-paint").length > 0)
    .then(() => page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0].startTime));

const browser = await chromium.launch({
  executablePath: env.CHORUS_CHROMIUM,
  headless: true,
  args: ["--autoplay-policy=no-user-gesture-required", "--mute-audio", "--no-sandbox"],
});
try {
  // First paint of the player, cold (a fresh context: no cache); the floor is a page of the
  // same size from a data URL (no server at all) in the same browser.
  const floorPage = `data:text/html,<!doctype html><title>x</title><p>${"Chorus ".repeat(400)}</p>`;
  for (let i = 0; i < loads; i++) {
    progress(`first paint: ${i + 1}/${loads}`);
    for (const [url, into] of [[`${base}/`, out.first_paint], [floorPage, out.first_paint_floor]]) {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(url);
      into.push(await paint(page));
      await context.close();
    }
  }

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(instrument);
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.waitForSelector("#signin:not([hidden])");
  await page.fill("#signin-user", env.CHORUS_BENCH_USER);
  await page.fill("#signin-password", env.CHORUS_BENCH_PASSWORD);
  await page.press("#signin-password", "Enter");
  await page.waitForSelector("#app:not([hidden])");

  // Search as you type: from each key going down to that prefix's results on screen; the
  // floor is a round trip from the page to the gateway and the origin (`/v1/me` through the
  // same proxy).
  for (const [n, word] of words.entries()) {
    progress(`search: word ${n + 1}/${words.length}`);
    await page.fill("#search", "");
    await page.focus("#search");
    for (let i = 1; i <= word.length; i++) {
      const prefix = word.slice(0, i);
      await page.keyboard.type(word[i - 1]);
      await page.waitForFunction((q) => document.body.dataset.searched === q, prefix);
      out.keystroke.push(await page.evaluate((q) => {
        const key = window.__keys[window.__keys.length - 1];
        return window.__shown.filter((entry) => entry.q === q).pop().at - key;
      }, prefix));
      out.round_trip.push(await page.evaluate(async () => {
        const start = performance.now();
        await (await fetch("/web/api/v1/me", { headers: { "x-chorus-web": "1" } })).json();
        return performance.now() - start;
      }));
    }
  }

  // Play songs never played here, from a search result: from the press to `currentTime > 0`.
  // The floor: the first byte of another fresh song's stream, fetched by the page.
  for (const [n, song] of songs.entries()) {
    progress(`play: ${n + 1}/${songs.length}`);
    await page.fill("#search", song.title);
    await page.waitForFunction((q) => document.body.dataset.searched === q, song.title);
    await page.click(`.hits [data-track="${song.id}"]`);
    await page.waitForFunction(() => window.__audible !== undefined, null, { timeout: 20000 });
    out.play.push(await page.evaluate(() => window.__audible - window.__pressed));
    await page.evaluate(() => document.getElementById("audio").pause());
    const floor = floorSongs[n];
    out.stream_first_byte.push(await page.evaluate(async (id) => {
      const start = performance.now();
      const response = await fetch(`/web/stream/${id}`);
      const reader = response.body.getReader();
      await reader.read();
      const took = performance.now() - start;
      await reader.cancel();
      return took;
    }, floor));
  }
  progress("");
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
