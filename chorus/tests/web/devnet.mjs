// `chorus devnet --web` in a real browser (Chromium, headless, through playwright-core): the
// page draws every node and the per-second source shares, with no script error. Run by
// chorus/tests/devnet.rs with CHORUS_DEVNET_URL, CHORUS_CHROMIUM and CHORUS_WEB_SHOTS set;
// exits non-zero with what failed.

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";

const require = createRequire(import.meta.url);
const { chromium } = require(require.resolve("playwright-core"));

const env = process.env;
mkdirSync(env.CHORUS_WEB_SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: env.CHORUS_CHROMIUM,
  headless: true,
  args: ["--no-sandbox"],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1300 } });
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${env.CHORUS_DEVNET_URL}/`);
  // Origin, super-node and listeners drawn; at least one second of shares.
  await page.waitForFunction(() => document.querySelectorAll("#graph circle").length >= 4);
  await page.waitForFunction(() => document.querySelectorAll("#shares rect").length >= 1);
  await page.waitForFunction(() => document.getElementById("summary").textContent.includes("plays started"));
  await page.screenshot({ path: `${env.CHORUS_WEB_SHOTS}/devnet.png` });
  if (errors.length) throw new Error(`script errors: ${errors.join("; ")}`);
} catch (error) {
  console.error(String(error && error.stack ? error.stack : error));
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log("ok");
