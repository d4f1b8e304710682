"""A self-contained HTML report: the graph coloured by state, a timeline, job details.

Everything is in one file (inline SVG, CSS and a little JavaScript, no network): it can
be mailed, archived by CI, or opened offline. Clicking a job (in the graph or on the
timeline) shows its details and output. The critical path is outlined in both views.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .colors import FILL

if TYPE_CHECKING:
    from ..report import JobRecord, Report

GRAPH_LIMIT = 1500  # more jobs than this: the graph view is left out (the timeline stays)
OUTPUT_LIMIT = 20_000  # characters of each stream kept per job
NODE_W, NODE_H, GAP_X, GAP_Y = 170, 34, 70, 16


def write_html(report: Report, scheduler: Any, path: str | Path) -> str:
    """Write the report of ``scheduler``'s run as one HTML file; return the path."""
    Path(path).write_text(render(report, _outputs(scheduler)), encoding="utf-8")
    return str(path)


def _outputs(scheduler: Any, prefix: str = "") -> dict[str, tuple[str, str]]:
    """Output of every command, by (nested) job name."""
    found: dict[str, tuple[str, str]] = {}
    for job in getattr(scheduler, "jobs", []):
        name = prefix + job.name
        if job._stdout is not None:
            found[name] = (job.stdout()[-OUTPUT_LIMIT:], job.stderr()[-OUTPUT_LIMIT:])
        if hasattr(job, "jobs"):
            found.update(_outputs(job, name + "/"))
    return found


def render(report: Report, outputs: dict[str, tuple[str, str]] | None = None) -> str:
    """The HTML text of a report."""
    records = report.jobs
    critical = {name for name, _ in report.critical_path()}
    details = [_details(r, (outputs or {}).get(r.name)) for r in records]
    graph = (
        _graph_svg(records, critical)
        if len(records) <= GRAPH_LIMIT
        else (f"<p>The graph has {len(records)} jobs: too many to draw here.</p>")
    )
    title = html.escape(f"jobgraph report: {report.why()}")
    data = json.dumps(details).replace("</", "<\\/")
    return _PAGE.format(
        title=title,
        why=html.escape(report.why()),
        summary=html.escape(_counts(report)),
        graph=graph,
        timeline=_timeline_svg(records, critical, report.started_at_ts),
        data=data,
        style=_STYLE,
        script=_SCRIPT,
    )


def graph_page(scheduler: Any) -> str:
    """A self-contained page with just the graph, coloured by the jobs' current states."""
    from ..report import JobRecord

    plan = scheduler.plan()
    records = [
        JobRecord(plan.jobs[i].name, plan.jobs[i].state, [plan.jobs[r].name for r in plan.reqs[i]])
        for i in plan.order
    ]
    title = html.escape(scheduler.name)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}'
        f"</title><style>{_STYLE}</style></head><body><h1>{title}</h1>\n"
        f"{_graph_svg(records, set())}\n</body></html>\n"
    ).replace('onclick="show(', 'data-show="(')


def _counts(report: Report) -> str:
    parts = [f"{n} {s.name.lower().replace('_', ' ')}" for s, n in report.counts.items()]
    run = f"run {report.run_id} · " if report.run_id else ""
    return f"{run}{', '.join(parts)} · {report.elapsed:.2f}s · exit code {report.exit_code}"


def _details(record: JobRecord, output: tuple[str, str] | None) -> dict[str, Any]:
    data = record.to_dict()
    data["stdout"], data["stderr"] = output or ("", "")
    return data


# -- the graph: layers by longest path from the entry jobs -------------------------------------


def _layers(records: list[JobRecord]) -> dict[str, int]:
    layer: dict[str, int] = {}
    for record in records:  # records come in topological order
        layer[record.name] = 1 + max((layer.get(r, -1) for r in record.requires), default=-1)
    return layer


def _graph_svg(records: list[JobRecord], critical: set[str]) -> str:
    layer = _layers(records)
    rows: dict[int, int] = {}
    where: dict[str, tuple[int, int]] = {}
    for record in records:
        column = layer[record.name]
        row = rows.get(column, 0)
        rows[column] = row + 1
        where[record.name] = (20 + column * (NODE_W + GAP_X), 20 + row * (NODE_H + GAP_Y))
    width = 40 + (max(layer.values(), default=0) + 1) * (NODE_W + GAP_X)
    height = 40 + max(rows.values(), default=1) * (NODE_H + GAP_Y)
    parts = [
        f'<svg class="graph" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    parts += _edges(records, where, critical)
    parts += [_node(k, r, where[r.name], r.name in critical) for k, r in enumerate(records)]
    parts.append("</svg>")
    return "\n".join(parts)


def _edges(
    records: list[JobRecord], where: dict[str, tuple[int, int]], critical: set[str]
) -> list[str]:
    lines = []
    for record in records:
        x2, y2 = where[record.name]
        for req in record.requires:
            if req not in where:
                continue
            x1, y1 = where[req]
            hot = " critical" if req in critical and record.name in critical else ""
            a, b = x1 + NODE_W, y1 + NODE_H // 2
            c, d = x2, y2 + NODE_H // 2
            lines.append(
                f'<path class="edge{hot}" d="M{a},{b} C{a + 35},{b} {c - 35},{d} {c},{d}"/>'
            )
    return lines


def _node(k: int, record: JobRecord, at: tuple[int, int], hot: bool) -> str:
    x, y = at
    label = html.escape(record.name if len(record.name) <= 22 else record.name[:21] + "…")
    css = "node critical" if hot else "node"
    return (
        f'<g class="{css}" data-job="{k}" onclick="show({k})">'
        f"<title>{html.escape(record.name)}: {record.state.name}</title>"
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" '
        f'fill="{FILL[record.state]}"/>'
        f'<text x="{x + 8}" y="{y + 15}">{label}</text>'
        f'<text class="state" x="{x + 8}" y="{y + 28}">{record.state.name}</text></g>'
    )


# -- the timeline: each job on the first free lane ---------------------------------------------


def _lanes(records: list[JobRecord]) -> list[tuple[int, JobRecord]]:
    timed = sorted(
        (r for r in records if r.started_at is not None and r.ended_at is not None),
        key=lambda r: r.started_at or 0.0,
    )
    free_at: list[float] = []
    placed = []
    for record in timed:
        lane = next(
            (k for k, t in enumerate(free_at) if t <= (record.started_at or 0.0)), len(free_at)
        )
        if lane == len(free_at):
            free_at.append(0.0)
        free_at[lane] = record.ended_at or 0.0
        placed.append((lane, record))
    return placed


def _timeline_svg(records: list[JobRecord], critical: set[str], start: float) -> str:
    placed = _lanes(records)
    if not placed:
        return "<p>No job ran.</p>"
    index = {r.name: k for k, r in enumerate(records)}
    end = max(r.ended_at or start for _, r in placed)
    span = max(end - start, 1e-6)
    width, lane_h = 900, 22
    height = 30 + (max(lane for lane, _ in placed) + 1) * lane_h
    parts = [
        f'<svg class="timeline" width="{width + 20}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<text class="axis" x="10" y="14">0s</text>'
        f'<text class="axis" x="{width - 40}" y="14">{span:.2f}s</text>',
    ]
    for lane, record in placed:
        x = 10 + ((record.started_at or start) - start) / span * width
        w = max(((record.ended_at or start) - (record.started_at or start)) / span * width, 2)
        y = 22 + lane * lane_h
        label = html.escape(record.name) if w > 8 * len(record.name) else ""
        css = "bar critical" if record.name in critical else "bar"
        k = index[record.name]
        parts.append(
            f'<g class="{css}" data-job="{k}" onclick="show({k})">'
            f"<title>{html.escape(record.name)} ({record.duration or 0:.3f}s)</title>"
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{lane_h - 4}" '
            f'fill="{FILL[record.state]}"/>'
            f'<text x="{x + 4:.1f}" y="{y + 13}">{label}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
.summary { color: #555; margin-bottom: 1em; }
section { margin: 1em 0; overflow-x: auto; }
.node rect { stroke: #555; stroke-width: 1; cursor: pointer; }
.node.critical rect, .bar.critical rect { stroke: #c92a2a; stroke-width: 2.5; }
.node text { font-size: 12px; pointer-events: none; }
.node text.state { font-size: 10px; fill: #555; }
.edge { fill: none; stroke: #999; stroke-width: 1.2; }
.edge.critical { stroke: #c92a2a; stroke-width: 2; }
.bar rect { stroke: #555; stroke-width: .5; cursor: pointer; }
.bar text { font-size: 11px; pointer-events: none; }
.axis { font-size: 11px; fill: #777; }
#details { border: 1px solid #ccc; border-radius: 6px; padding: .8em; min-height: 3em; }
#details pre { background: #f6f6f6; padding: .6em; overflow-x: auto; max-height: 20em; }
#details table td { padding: 0 1em 0 0; vertical-align: top; }
"""

_SCRIPT = """
const jobs = JSON.parse(document.getElementById("jobs").textContent);
function text(value) { return value === null || value === undefined ? "" : String(value); }
function show(k) {
  const job = jobs[k];
  const box = document.getElementById("details");
  box.textContent = "";
  const title = document.createElement("h2");
  title.textContent = job.name + " — " + job.state;
  box.appendChild(title);
  const table = document.createElement("table");
  for (const key of ["attempts", "started_at", "ended_at", "duration", "returncode",
                     "requires", "skipped_because", "result", "note"]) {
    const value = Array.isArray(job[key]) ? job[key].join(", ") : text(job[key]);
    if (value === "") continue;
    const row = table.insertRow();
    row.insertCell().textContent = key;
    row.insertCell().textContent = value;
  }
  box.appendChild(table);
  for (const key of ["error", "stdout", "stderr"]) {
    if (!job[key]) continue;
    const head = document.createElement("h3");
    head.textContent = key;
    const pre = document.createElement("pre");
    pre.textContent = job[key];
    box.appendChild(head);
    box.appendChild(pre);
  }
}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{style}</style></head>
<body>
<h1>{why}</h1>
<div class="summary">{summary}</div>
<section><h2>Graph</h2>{graph}</section>
<section><h2>Timeline</h2>{timeline}</section>
<section><h2>Job</h2><div id="details">Click a job in the graph or on the timeline.</div>
</section>
<script type="application/json" id="jobs">{data}</script>
<script>{script}</script>
</body></html>
"""
