"""Mermaid flowchart text of a scheduler's graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..state import State
from .colors import FILL

if TYPE_CHECKING:
    from ..scheduler import Scheduler


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(scheduler: Scheduler) -> str:
    """A ``flowchart LR`` with one node per job, classed by state."""
    plan = scheduler.plan()
    ids = {i: f"j{i}" for i in range(len(plan.jobs))}
    lines = ["flowchart LR"]
    used: set[State] = set()
    for i in plan.order:
        job = plan.jobs[i]
        state = job.state
        used.add(state)
        lines.append(f"  {ids[i]}[{_label(job.name)}]:::{state.name.lower()}")
    for i in plan.order:
        for r in plan.reqs[i]:
            lines.append(f"  {ids[r]} --> {ids[i]}")
    for state in State:
        if state in used:
            lines.append(f"  classDef {state.name.lower()} fill:{FILL[state]},stroke:#333")
    return "\n".join(lines) + "\n"
