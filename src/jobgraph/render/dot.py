"""Graphviz DOT text of a scheduler's graph, coloured by state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .colors import FILL

if TYPE_CHECKING:
    from ..scheduler import Scheduler


def quote(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(scheduler: Scheduler) -> str:
    """DOT text: one node per job (label: name and state), edges from requirement to job."""
    plan = scheduler.plan()
    lines = [
        f"digraph {quote(scheduler.name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    for i in plan.order:
        job = plan.jobs[i]
        state = job.state
        label = f"{job.name}\n{state.name}"
        extra = ", penwidth=2" if job.critical else ""
        extra += ', style="rounded,filled,dashed"' if job.forever else ""
        lines.append(
            f"  {quote(job.name)} [label={quote(label)}, fillcolor={quote(FILL[state])}{extra}];"
        )
    for i in plan.order:
        for r in plan.reqs[i]:
            lines.append(f"  {quote(plan.jobs[r].name)} -> {quote(plan.jobs[i].name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
