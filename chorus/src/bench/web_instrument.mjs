// Put in the page before any of its scripts by the web player's browser test and `chorus bench
// web` (Playwright's `addInitScript`): when each key went down, when search results were shown
// (the app marks `body[data-searched]`), when a play was pressed, and when its audio first
// moved (watched every animation frame: `timeupdate` comes only every quarter second).
export function instrument() {
  window.__keys = [];
  window.__shown = [];
  document.addEventListener("keydown", () => window.__keys.push(performance.now()), true);
  document.addEventListener(
    "click",
    (event) => {
      if (event.target.closest && event.target.closest("[data-track]")) {
        window.__pressed = performance.now();
        window.__audible = undefined;
        const watch = () => {
          const audio = document.getElementById("audio");
          if (audio && audio.currentTime > 0) window.__audible = performance.now();
          else requestAnimationFrame(watch);
        };
        requestAnimationFrame(watch);
      }
    },
    true,
  );
  document.addEventListener("DOMContentLoaded", () => {
    new MutationObserver(() => {
      window.__shown.push({ q: document.body.dataset.searched, at: performance.now() });
    }).observe(document.body, { attributes: true, attributeFilter: ["data-searched"] });
  });
}
