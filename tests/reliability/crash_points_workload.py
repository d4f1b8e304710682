"""A mixed graph that logs every execution to an fsync'd ledger (crash battery only).

Usage: python crash_points_workload.py STORE LEDGER SEGMENT JOBS SUMMARY [POINT:N]

Plain functions (some in worker processes), coroutine functions (some that never
suspend) and shell commands;
each job appends "SEGMENT NAME" to LEDGER (and syncs it) before its short work. With
``POINT:N``, this process kills itself with SIGKILL at the Nth occurrence of a named
fault point, patched into jobgraph here (never in src/). A run that finishes writes
SUMMARY: per job its name, state (UP_TO_DATE counted as SUCCEEDED) and result.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import jobgraph as jg

WINDOW = 16
PROCESSES = 4
LAYER = 40  # jobs per layer; each job needs up to two jobs of the layer before


def log(ledger: str, segment: str, name: str) -> None:
    """Append one line for this execution and make it durable before going on.

    ``crash_workload.py`` (the older crash test) logs its jobs with this too.
    """
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{segment} {name}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def work(ledger: str, segment: str, name: str, seconds: float) -> str:
    """A plain function job (in a thread or a worker process)."""
    log(ledger, segment, name)
    time.sleep(seconds)
    return f"result of {name}"


async def co_work(ledger: str, segment: str, name: str, seconds: float) -> str:
    """A coroutine function job."""
    log(ledger, segment, name)
    await asyncio.sleep(seconds)
    return f"result of {name}"


async def co_instant(ledger: str, segment: str, name: str) -> str:
    """A coroutine function job that ends at its first step (the run's quick lane)."""
    log(ledger, segment, name)
    return f"result of {name}"


def shell_command(ledger: str, segment: str, name: str) -> str:
    # sync FILE fsyncs the ledger: the line is durable before the command goes on.
    return f"echo '{segment} {name}' >> '{ledger}' && sync '{ledger}' && echo 'result of {name}'"


def graph(ledger: str, segment: str, jobs: int) -> list[jg.Job]:
    """The same graph for every segment: names, kinds and edges depend on ``jobs`` only."""
    rng = random.Random(11)
    made: list[jg.Job] = []
    for k in range(jobs):
        layer = k // LAYER
        before = made[(layer - 1) * LAYER : layer * LAYER] if layer else []
        needs = rng.sample(before, k=min(len(before), rng.randint(0, 2)))
        name, seconds = f"j{k:04d}", rng.uniform(0.002, 0.02)
        kind = k % 8
        job: jg.Job
        if kind in (0, 1, 2):
            job = jg.Job(work, ledger, segment, name, seconds, name=name, requires=needs)
        elif kind == 3:
            job = jg.Job(
                work, ledger, segment, name, seconds, name=name, requires=needs, executor="process"
            )
        elif kind == 4:
            job = jg.Job(co_work, ledger, segment, name, seconds, name=name, requires=needs)
        elif kind == 5:
            job = jg.Job(co_instant, ledger, segment, name, name=name, requires=needs)
        else:
            job = jg.Shell(shell_command(ledger, segment, name), name=name, requires=needs)
        made.append(job)
    return made


# -- fault points -------------------------------------------------------------------

POINTS = ("before-start", "after-start-flush", "body-returned", "end-commit", "after-end-commit")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_fault(point: str, nth: int) -> None:
    """Patch jobgraph, in this process only, to SIGKILL it at the Nth ``point``."""
    from jobgraph.bodies import QuickLane
    from jobgraph.recorder import Recorder
    from jobgraph.runner import Runner
    from jobgraph.store.sqlite import SQLiteStore

    seen = 0

    def hit() -> bool:
        nonlocal seen
        seen += 1
        return seen == nth

    def wrap(cls: Any, attr: str, make: Callable[[Any], Any]) -> None:
        setattr(cls, attr, make(getattr(cls, attr)))

    def dying_first(original: Any) -> Any:
        def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
            if hit():
                die()
            return original(self, *args, **kwargs)

        return patched

    if point == "before-start":  # the start of an attempt is not even noted yet
        wrap(Runner, "_record_start", dying_first)
    elif point == "after-start-flush":  # a start is committed, its body not yet begun

        def flush(original: Any) -> Any:
            def patched(self: Recorder) -> None:
                had_starts = bool(self._starts)
                original(self)
                if had_starts and hit():
                    die()

            return patched

        wrap(Recorder, "flush", flush)
    elif point == "body-returned":  # the body is done, its end not yet recorded
        wrap(Runner, "_ended", dying_first)
        wrap(QuickLane, "succeeded", dying_first)  # the same for a job that never suspended
    elif point == "end-commit":  # inside the write transaction of a flush with ends

        def record(original: Any) -> Any:
            def patched(self: SQLiteStore, run_id: str, starts: Any, ends: Any) -> None:
                if ends and hit():
                    write = self._write

                    def dying_write(body: Any) -> Any:
                        return write(lambda db: (body(db), die()))

                    self._write = dying_write  # type: ignore[method-assign]
                original(self, run_id, starts, ends)

            return patched

        wrap(SQLiteStore, "record", record)
    elif point == "after-end-commit":  # the ends are committed, nothing else done yet

        def recorded(original: Any) -> Any:
            def patched(self: SQLiteStore, run_id: str, starts: Any, ends: Any) -> None:
                original(self, run_id, starts, ends)
                if ends and hit():
                    die()

            return patched

        wrap(SQLiteStore, "record", recorded)
    else:
        raise SystemExit(f"unknown fault point {point!r}; known: {', '.join(POINTS)}")


def summary(report: jg.Report, jobs: list[jg.Job]) -> list[list[Any]]:
    """What must equal an uninterrupted run's: names, states, results (no times, no pids)."""
    states = {r.name: r.state.name for r in report.jobs}
    rows = []
    for job in jobs:
        state = "SUCCEEDED" if states[job.name] == "UP_TO_DATE" else states[job.name]
        result = job.result() if state == "SUCCEEDED" else None
        if isinstance(result, jg.ShellResult):
            result = [result.returncode, result.stdout]
        rows.append([job.name, state, result])
    return rows


def main() -> int:
    store, ledger, segment, jobs, out = sys.argv[1:6]
    if len(sys.argv) > 6:
        point, _, nth = sys.argv[6].partition(":")
        install_fault(point, int(nth))
    # Functions are pickled by module name for the worker processes: use the importable
    # module, not __main__.
    import crash_points_workload as me

    made = me.graph(ledger, segment, int(jobs))
    scheduler = jg.Scheduler(*made, name="battery", window=WINDOW, store=store)
    report = scheduler.run(resume="last", processes=PROCESSES)
    with open(out, "w") as f:
        json.dump(summary(report, made), f)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
