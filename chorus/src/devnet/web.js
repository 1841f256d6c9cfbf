// The devnet, drawn: nodes on rings (origin in the middle, super-nodes, listeners outside,
// grouped by region), the last second's transfers as lines, the source shares over time.
// Everything from the network goes in as text or numbers, never as markup.

const SVG = "http://www.w3.org/2000/svg";
const COLORS = { origin: "#d1495b", super_node: "#2e86ab", listener: "#1c7c54" };
const graph = document.getElementById("graph");
const shares = document.getElementById("shares");

document.body.style.cssText = "margin:0;font:15px/1.4 system-ui,sans-serif;background:#f6f7f5;color:#1b1f1d";
for (const el of document.querySelectorAll("header, main")) el.style.cssText = "padding:0.5em 1.5em;max-width:1100px";
graph.style.cssText = "width:min(100%,760px);background:#fff;border:1px solid #d9dfdb;border-radius:10px";
shares.style.cssText = "width:100%;background:#fff;border:1px solid #d9dfdb;border-radius:10px";

function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.append(document.createTextNode(String(text)));
  return el;
}

let positions = new Map();
let kinds = new Map();
let layoutKey = "";

function layout(nodes) {
  const key = nodes.map((n) => n.id).join(",");
  if (key === layoutKey) return;
  layoutKey = key;
  positions = new Map();
  kinds = new Map();
  const regions = [...new Set(nodes.filter((n) => n.region).map((n) => n.region))].sort();
  const ring = (list, radius, region) => {
    const index = regions.indexOf(region);
    const span = (2 * Math.PI) / Math.max(regions.length, 1);
    list.forEach((node, i) => {
      const angle = span * index + (span * (i + 0.5)) / list.length - Math.PI / 2;
      positions.set(node.id, [radius * Math.cos(angle), radius * Math.sin(angle)]);
    });
  };
  const origins = nodes.filter((n) => n.kind === "origin");
  origins.forEach((node, i) => positions.set(node.id, [i * 30 - (origins.length - 1) * 15, 0]));
  for (const region of regions) {
    ring(nodes.filter((n) => n.kind === "super_node" && n.region === region), 200, region);
    ring(nodes.filter((n) => n.kind === "listener" && n.region === region), 420, region);
  }
  for (const node of nodes) kinds.set(node.id, node.kind);
  graph.replaceChildren();
  graph.append(s("g", { id: "edges" }));
  const dots = s("g", { id: "nodes" });
  for (const node of nodes) {
    const [x, y] = positions.get(node.id) || [0, 0];
    const r = node.kind === "origin" ? 16 : node.kind === "super_node" ? 10 : 5;
    const dot = s("circle", { cx: x, cy: y, r, fill: COLORS[node.kind] || "#888" });
    dot.append(s("title", {}, `${node.kind.replace("_", "-")} ${node.id}${node.region ? ` (${node.region})` : ""}`));
    dots.append(dot);
  }
  regions.forEach((region, index) => {
    const angle = ((2 * Math.PI) / regions.length) * (index + 0.5) - Math.PI / 2;
    dots.append(s("text", { x: 480 * Math.cos(angle), y: 480 * Math.sin(angle), "text-anchor": "middle", "font-size": 22, fill: "#5d6862" }, region));
  });
  graph.append(dots);
}

function draw(state) {
  layout(state.nodes);
  const group = document.getElementById("edges");
  group.replaceChildren();
  const top = Math.max(1, ...state.edges.map((e) => e.bytes));
  for (const edge of state.edges) {
    const from = positions.get(edge.from);
    const to = positions.get(edge.to);
    if (!from || !to) continue;
    group.append(s("line", {
      x1: from[0], y1: from[1], x2: to[0], y2: to[1],
      stroke: COLORS[kinds.get(edge.from)] || "#888",
      "stroke-opacity": 0.55,
      "stroke-width": 1 + 5 * (edge.bytes / top),
      "data-edge": `${edge.from}>${edge.to}`,
    }));
  }
  // Source shares, second by second, as stacked bars of the last 300 seconds.
  const seconds = state.shares.slice(-300);
  shares.replaceChildren();
  // A fixed window of 300 seconds: the bars fill it from the left as the run goes on.
  const width = 1000 / 300;
  seconds.forEach((second, i) => {
    const total = second.origin + second.super_nodes + second.peers;
    if (!total) return;
    let y = 230;
    for (const [key, color] of [["peers", "#1c7c54"], ["super_nodes", "#2e86ab"], ["origin", "#d1495b"]]) {
      const h = (220 * second[key]) / total;
      y -= h;
      shares.append(s("rect", { x: i * width, y, width: Math.max(width - 0.5, 0.5), height: h, fill: color }));
    }
  });
  const sum = state.summary || {};
  const pct = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)} %`);
  const ms = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} ms`);
  document.getElementById("summary").textContent =
    `${sum.started ?? 0} plays started, ${sum.playing ?? 0} playing · first audio p50 ${ms(sum.p50_ms)}, p99 ${ms(sum.p99_ms)} · ` +
    `from peers and super-nodes ${pct(sum.peer_share)} · ${state.edges.length} transfers in the last second · ` +
    `${state.nodes.filter((n) => n.kind === "listener").length} listeners, ${state.nodes.filter((n) => n.kind === "super_node").length} super-nodes`;
  document.getElementById("legend").textContent = "Origin red, super-nodes blue, listeners green; lines are the last second's transfers, coloured by sender.";
}

async function tick() {
  try {
    const response = await fetch("/state.json", { cache: "no-store" });
    if (response.ok) draw(await response.json());
  } catch {
    document.getElementById("summary").textContent = "The devnet has stopped.";
  }
}
tick();
setInterval(tick, 1000);
