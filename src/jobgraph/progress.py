"""Live progress of a run: a rich view on a terminal, timestamped lines elsewhere.

A display is an ``on_event(kind, runner, index)`` callable given to ``Scheduler.run``;
``kind`` is ``"start"`` or ``"end"``. The summary printed at the end of a run is here too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from .state import FAILURE, State

if TYPE_CHECKING:
    from .report import Report
    from .runner import Runner


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _name(runner: Runner, i: int) -> str:
    return runner.prefix + runner.core.names[i]


def _first_line(runner: Runner, i: int) -> str:
    from .report import summary_line

    return summary_line(runner.jobs[i]._error)


class PlainProgress:
    """One timestamped line per job start and end (for CI logs and pipes)."""

    def __init__(self, out: IO[str]) -> None:
        self.out: IO[str] | None = out

    def __call__(self, kind: str, runner: Runner, i: int) -> None:
        """Print the line of one event (and stop printing if the reader went away)."""
        if self.out is None:
            return
        try:
            self._print(kind, runner, i, self.out)
        except (BrokenPipeError, OSError, ValueError):
            self.out = None  # `jobgraph run ... | head`: the run goes on, silently

    @staticmethod
    def _print(kind: str, runner: Runner, i: int, out: IO[str]) -> None:
        job = runner.jobs[i]
        name = _name(runner, i)
        if kind == "start":
            attempt = f" (attempt {job._attempts})" if job._attempts > 1 else ""
            out.write(f"{_clock()} start   {name}{attempt}\n")
        else:
            state = runner.core.state[i]
            took = f" {job.duration:.2f}s" if job.duration is not None else ""
            line = f"{_clock()} {state.name.lower():<10} {name}{took}"
            if state in FAILURE:
                line += f": {_first_line(runner, i)}"
            elif state is State.SKIPPED and job._causes:
                line += f" (because {', '.join(job._causes)} failed)"
            out.write(line + "\n")
        out.flush()

    def close(self) -> None:
        """Nothing to tear down."""


class LiveProgress:
    """A live terminal view: a bar for the run, the running jobs, failures as they happen."""

    def __init__(self, total: int, known: Mapping[str, float] | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.total = total
        self.known = dict(known or {})  # job name -> duration of its last run
        self.done = 0
        self.started = time.monotonic()
        self.running: dict[str, float] = {}
        self.finished: list[str] = []
        self.failures: list[str] = []
        self.console = Console(stderr=True)
        self.live = Live(
            console=self.console, refresh_per_second=8, transient=True, get_renderable=self._render
        )
        self.live.start()

    def __call__(self, kind: str, runner: Runner, i: int) -> None:
        """Take one event into the view."""
        name = _name(runner, i)
        if kind == "start":
            self.running[name] = time.monotonic()
            return
        self.running.pop(name, None)
        if runner.jobs[i].forever:
            return
        self.done += 1
        self.finished.append(name)
        state = runner.core.state[i]
        if state in FAILURE:
            message = f"[red]{state.name}[/red] {name}: {_first_line(runner, i)}"
            self.failures.append(message)
            self.live.console.print(message)

    def _eta(self, elapsed: float) -> str:
        left = self.total - self.done
        if left <= 0:
            return "0s"
        # With durations from the store, progress is measured in work, not in jobs.
        total_work = sum(self.known.values())
        if total_work > 0:
            share = sum(self.known.get(n, 0.0) for n in self.finished) / total_work
        else:
            share = self.done / max(self.total, 1)
        if share <= 0:
            return "?"
        return f"~{elapsed * (1 - share) / share:.0f}s"

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        head = Table.grid(padding=(0, 1))
        head.add_row(
            ProgressBar(total=max(self.total, 1), completed=self.done, width=40),
            Text(f"{self.done}/{self.total} jobs  {elapsed:.1f}s  ETA {self._eta(elapsed)}"),
        )
        rows = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for name, since in sorted(self.running.items(), key=lambda kv: kv[1])[:12]:
            rows.add_row(Text("running", style="yellow"), Text(name), Text(f"{now - since:.1f}s"))
        if len(self.running) > 12:
            rows.add_row(Text(""), Text(f"... and {len(self.running) - 12} more"), Text(""))
        return Group(head, rows)

    def close(self) -> None:
        """Stop the live view (it disappears; the summary follows)."""
        self.live.stop()


def summary(report: Report, where: str | None = None) -> str:
    """A few lines for the end of a run: counts, elapsed, failures, where the report is."""
    counts = ", ".join(
        f"{n} {state.name.lower().replace('_', ' ')}" for state, n in report.counts.items()
    )
    lines = [f"jobgraph: {report.why()} ({counts or 'no jobs'}; {report.elapsed:.1f}s)"]
    for record in report.bad:
        if record.state in FAILURE:
            lines.append(f"  {record.state.name} {record.name}: {record.first_error_line}")
    lines.extend(f"  note: {note}" for note in report.notes)
    if report.run_id:
        lines.append(f"  run {report.run_id}")
    if where:
        lines.append(f"  report: {where}")
    return "\n".join(lines)
