"""The live web view of ``jobgraph serve``: one self-contained page that polls the API.

The runs on the left; for the chosen run, its graph coloured by state, a timeline, each
job's output as it arrives, and an abort button. The token comes from the page's address
(``/?token=...``, as the server prints it) and goes with every API call.
"""

from __future__ import annotations

from .colors import FILL

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jobgraph</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }
#side { width: 300px; border-right: 1px solid #ddd; overflow: auto; }
#side h1 { font-size: 16px; margin: 12px; }
#runs { list-style: none; margin: 0; padding: 0; }
#runs li { padding: 6px 12px; cursor: pointer; border-bottom: 1px solid #eee; }
#runs li.chosen { background: #eef4ff; }
#main { flex: 1; overflow: auto; padding: 12px 20px; }
.badge { display: inline-block; padding: 1px 6px; border-radius: 8px; color: #fff;
  font-size: 12px; }
#head { display: flex; gap: 12px; align-items: center; }
#abort { background: #c0392b; color: #fff; border: 0; padding: 6px 12px; border-radius: 4px;
  cursor: pointer; }
#abort:disabled { background: #aaa; cursor: default; }
svg text { font-size: 12px; pointer-events: none; }
svg g.job { cursor: pointer; }
#output { background: #111; color: #ddd; padding: 8px; min-height: 80px; max-height: 300px;
  overflow: auto; white-space: pre-wrap; font: 12px monospace; }
.muted { color: #888; }
</style></head>
<body>
<div id="side"><h1>jobgraph runs</h1><ul id="runs"></ul></div>
<div id="main">
  <p id="empty" class="muted">Choose a run.</p>
  <div id="detail" hidden>
    <div id="head"><h2 id="run-title"></h2>
      <span id="run-state" class="badge"></span>
      <button id="abort">Abort</button></div>
    <p id="why" class="muted"></p>
    <h3>Graph</h3><svg id="graph"></svg>
    <h3>Timeline</h3><svg id="timeline"></svg>
    <h3>Output of <span id="job-name" class="muted">(click a job)</span></h3>
    <pre id="output"></pre>
  </div>
</div>
<script>
const COLORS = __COLORS__;
const RUN_COLORS = {pending: "#999", running: "#2e86de", succeeded: "#27ae60",
  failed: "#c0392b", aborted: "#e67e22"};
const token = new URLSearchParams(location.search).get("token") || "";
let chosen = null, job = null, offset = 0, graph = null;

async function api(path, method) {
  const answer = await fetch(path, {method: method || "GET",
    headers: {"Authorization": "Bearer " + token}});
  if (!answer.ok) throw new Error(path + ": " + answer.status);
  return answer.json();
}

function el(tag, attrs, parent) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

async function refreshRuns() {
  const {runs} = await api("/api/runs");
  const list = document.getElementById("runs");
  list.replaceChildren();
  for (const run of runs) {
    const item = document.createElement("li");
    item.dataset.run = run.run_id;
    item.dataset.state = run.state;
    if (run.run_id === chosen) item.className = "chosen";
    item.innerHTML = `<span class="badge" style="background:${RUN_COLORS[run.state]}">` +
      `${run.state}</span> ${run.scheduler || ""} <span class="muted">${run.run_id}</span>`;
    item.onclick = () => choose(run.run_id);
    list.appendChild(item);
  }
}

function choose(runId) {
  chosen = runId; job = null; offset = 0; graph = null;
  document.getElementById("output").textContent = "";
  document.getElementById("job-name").textContent = "(click a job)";
  document.getElementById("empty").hidden = true;
  document.getElementById("detail").hidden = false;
  refreshRun();
}

function layers(jobs) {
  const depth = {}, byName = Object.fromEntries(jobs.map(j => [j.name, j]));
  const visit = (name, seen) => {
    if (name in depth) return depth[name];
    if (seen.has(name) || !byName[name]) return 0;
    seen.add(name);
    const reqs = byName[name].requires.filter(r => byName[r]);
    depth[name] = reqs.length ? 1 + Math.max(...reqs.map(r => visit(r, seen))) : 0;
    return depth[name];
  };
  jobs.forEach(j => visit(j.name, new Set()));
  return depth;
}

function drawGraph(jobs, states) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const depth = layers(jobs), rows = {}, pos = {};
  for (const j of jobs) {
    const d = depth[j.name];
    rows[d] = (rows[d] || 0) + 1;
    pos[j.name] = {x: 20 + d * 180, y: 20 + (rows[d] - 1) * 50};
  }
  const height = 40 + 50 * Math.max(1, ...Object.values(rows));
  const width = 200 + 180 * Math.max(0, ...Object.values(depth));
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  for (const j of jobs) for (const r of j.requires) if (pos[r])
    el("line", {x1: pos[r].x + 140, y1: pos[r].y + 15, x2: pos[j.name].x,
      y2: pos[j.name].y + 15, stroke: "#999"}, svg);
  for (const j of jobs) {
    const state = states[j.name] || "PENDING";
    const g = el("g", {"class": "job", "data-job": j.name, "data-state": state}, svg);
    el("rect", {x: pos[j.name].x, y: pos[j.name].y, width: 140, height: 30, rx: 5,
      fill: COLORS[state] || "#ccc", stroke: "#333"}, g);
    const label = el("text", {x: pos[j.name].x + 8, y: pos[j.name].y + 19}, g);
    label.textContent = j.name + " · " + state.toLowerCase();
    g.onclick = () => { job = j.name; offset = 0;
      document.getElementById("output").textContent = "";
      document.getElementById("job-name").textContent = j.name; refreshOutput(); };
  }
}

function drawTimeline(records) {
  const svg = document.getElementById("timeline");
  svg.replaceChildren();
  const timed = records.filter(r => r.started_at);
  const t = r => Date.parse(r);
  const start = Math.min(...timed.map(r => t(r.started_at)));
  const end = Math.max(Date.now(), ...timed.map(r => r.ended_at ? t(r.ended_at) : 0));
  const scale = 600 / Math.max(1, end - start);
  svg.setAttribute("width", 800); svg.setAttribute("height", 20 + 22 * timed.length);
  timed.forEach((r, k) => {
    const x = 150 + (t(r.started_at) - start) * scale;
    const w = Math.max(2, ((r.ended_at ? t(r.ended_at) : end) - t(r.started_at)) * scale);
    el("rect", {x, y: 10 + 22 * k, width: w, height: 16, fill: COLORS[r.state] || "#ccc"}, svg);
    el("text", {x: 4, y: 23 + 22 * k}, svg).textContent = r.name;
  });
}

async function refreshRun() {
  if (!chosen) return;
  const run = await api("/api/runs/" + chosen);
  document.getElementById("run-title").textContent = (run.scheduler || "run") + " " + chosen;
  const badge = document.getElementById("run-state");
  badge.textContent = run.state; badge.dataset.state = run.state;
  badge.style.background = RUN_COLORS[run.state];
  document.getElementById("why").textContent = run.why || "";
  document.getElementById("abort").disabled = !["pending", "running"].includes(run.state);
  if (run.state === "pending") return;
  if (!graph) graph = (await api("/api/runs/" + chosen + "/graph")).jobs;
  const report = await api("/api/runs/" + chosen + "/report");
  const states = Object.fromEntries(report.jobs.map(r => [r.name, r.state]));
  drawGraph(graph, states);
  drawTimeline(report.jobs);
}

async function refreshOutput() {
  if (!chosen || !job) return;
  const path = `/api/runs/${chosen}/output/${encodeURIComponent(job)}?offset=${offset}`;
  const part = await api(path);
  offset = part.offset;
  if (part.text) document.getElementById("output").textContent += part.text;
}

document.getElementById("abort").onclick = async () => {
  document.getElementById("abort").disabled = true;
  await api("/api/runs/" + chosen + "/abort", "POST");
};

async function tick() {
  try { await refreshRuns(); await refreshRun(); await refreshOutput(); }
  catch (error) { document.getElementById("why").textContent = String(error); }
  setTimeout(tick, 700);
}
tick();
</script>
</body></html>
"""


def page() -> str:
    """The web view's HTML (self-contained: no file or network access besides the API)."""
    import json

    colors = {state.name: color for state, color in FILL.items()}
    return _PAGE.replace("__COLORS__", json.dumps(colors))
