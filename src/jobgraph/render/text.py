"""Text views of a report: the debrief and the critical path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..state import FAILURE

if TYPE_CHECKING:
    from ..report import JobRecord, Report


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds:.2f}s"


def debrief(report: Report) -> str:
    """Jobs in topological order with state and duration, then each failure's traceback."""
    width = max((len(r.name) for r in report.jobs), default=4)
    lines = [
        f"run {report.run_id or ''}".rstrip() + f": {report.why()} "
        f"(exit code {report.exit_code}, {_duration(report.elapsed)})"
    ]
    for record in report.jobs:
        line = f"  {record.name:<{width}}  {record.state.name:<10}  {_duration(record.duration)}"
        if record.attempts > 1:
            line += f"  ({record.attempts} attempts)"
        if record.skipped_because:
            line += "  because " + ", ".join(record.skipped_because) + " failed"
        lines.append(line)
    for base, states in report.instances.items():
        ranges = "; ".join(f"{state.lower()} {numbers}" for state, numbers in states.items())
        lines.append(f"  {base}[...]: {ranges}")
    for record in report.jobs:
        if record.state in FAILURE and record.error:
            lines.append(f"\n--- {record.name} ({record.state.name}) ---")
            lines.append(record.error.rstrip())
        if record.note:
            lines.append(f"note on {record.name}: {record.note}")
    return "\n".join(lines) + "\n"


def critical_path(report: Report) -> list[tuple[str, float]]:
    """Walk back from the job that ended last through the requirement that ended last."""
    timed = {
        r.name: r
        for r in report.jobs
        if r.started_at is not None and r.ended_at is not None and not r.forever
    }
    if not timed:
        return []
    current: JobRecord | None = max(timed.values(), key=lambda r: r.ended_at or 0.0)
    chain: list[tuple[str, float]] = []
    while current is not None:
        chain.append((current.name, current.duration or 0.0))
        before = [timed[n] for n in current.requires if n in timed]
        current = max(before, key=lambda r: r.ended_at or 0.0) if before else None
    chain.reverse()
    return chain
