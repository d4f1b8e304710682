"""The crash battery: kill -9 a mixed run at named fault points and at random moments.

A graph of plain functions (in threads and in a pool of 4 worker processes), coroutines
and shell commands, window 16, is run in a child process and killed again and again:
first at each named fault point (``crash_points_workload.POINTS``), then at random
moments, resuming each time until the run finishes. Every job writes an fsync'd ledger
line when it starts its work, so every execution is known. Checked after the run: no job
whose end was committed before a kill ran again, no job was lost, a job ran again only
if it was in flight (at most a window's worth per kill), nothing ran twice within one
process, every job ended well, the file passes ``PRAGMA integrity_check``, no process the
runner started was alive 5 s after a kill, and the final report (names, states with
UP_TO_DATE counted as SUCCEEDED, results) equals an uninterrupted run's.

CI runs the fast variant; ``JOBGRAPH_LONG=1`` runs the long one (2,000 jobs, 50 random
kills, each named point at several N). ``JOBGRAPH_CRASH_SEED`` changes the moments.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from jobgraph.executors.reaper import HELPER_NAME
from jobgraph.store import SQLiteStore
from procs import descendants, live_processes_with, survivors, wait_until_gone
from reliability import crash_points_workload as workload

HERE = Path(__file__).parent
LONG = os.environ.get("JOBGRAPH_LONG") == "1"
JOBS = 2000 if LONG else 320
RANDOM_KILLS = 50 if LONG else 5
NTHS = 3 if LONG else 1  # how many times each named point is hit (at different N)
MOST_N = 60 if LONG else 20
# A random kill lands once its segment ran this many jobs at most (progress, not time:
# on a loaded machine a timed kill could come after the run's end, and never land).
RANDOM_LINES = 12 if LONG else 30


def start(store: Path, ledger: Path, segment: int, summary: Path, fault: str | None):
    argv = [sys.executable, str(HERE / "crash_points_workload.py"), str(store), str(ledger)]
    argv += [str(segment), str(JOBS), str(summary)] + ([fault] if fault else [])
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def segment_lines(ledger: Path, segment: int) -> int:
    if not ledger.exists():
        return 0
    prefix = f"{segment} ".encode()
    return sum(line.startswith(prefix) for line in ledger.read_bytes().splitlines())


def watch_until_exit(
    proc: subprocess.Popen[bytes], kill_after: int | None, ledger: Path, segment: int
) -> set[int]:
    """Wait for ``proc`` (killing it once its segment logged ``kill_after`` jobs, if
    given); return every process seen below it meanwhile."""
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while proc.poll() is None:
        assert time.monotonic() < deadline, "a segment took over 2 minutes"
        kill = kill_after is not None and segment_lines(ledger, segment) >= kill_after
        seen |= descendants(proc.pid)  # after the ledger read: the last look before a kill
        if kill:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    return seen


def committed_ends(store: Path) -> set[str]:
    """Names of the jobs whose end the store holds (a new store: none)."""
    if not store.exists():
        return set()
    db = SQLiteStore(store)
    try:
        runs = db.runs()
        return set(db.job_ends(runs[0].run_id)) if runs else set()
    finally:
        db.close()


def plan_of_kills(rng: random.Random) -> list[str | None]:
    """The fault of each killed segment: named points first, then None (a random moment)."""
    named = [
        f"{point}:{rng.randint(1, MOST_N) if k else rng.randint(1, 5)}"
        for k in range(NTHS)
        for point in workload.POINTS
    ]
    return [*named, *([None] * RANDOM_KILLS)]


def uninterrupted_summary(tmp_path: Path) -> Any:
    ref = tmp_path / "reference"
    ref.mkdir()
    proc = start(ref / "state.db", ref / "ledger", 0, ref / "summary.json", None)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    return json.loads((ref / "summary.json").read_text())


def test_kill_nine_at_named_points_and_random_moments_then_resume(tmp_path: Path) -> None:
    store, ledger, summary = tmp_path / "state.db", tmp_path / "ledger", tmp_path / "summary.json"
    rng = random.Random(int(os.environ.get("JOBGRAPH_CRASH_SEED", "2025")))
    kills = plan_of_kills(rng)
    landed: list[str] = []
    done_at_kill: dict[int, set[str]] = {}  # segment -> jobs whose end was committed
    segment = 0
    while True:
        fault = kills[segment] if segment < len(kills) else None
        random_kill = segment < len(kills) and fault is None
        proc = start(store, ledger, segment, summary, fault)
        after = rng.randint(1, RANDOM_LINES) if random_kill else None
        family = watch_until_exit(proc, after, ledger, segment)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
        landed.append(fault or "random")
        # Nothing the runner started outlives it by 5 s: workers, commands, the reaper.
        assert wait_until_gone(str(ledger), 5.0) == []  # commands name the ledger
        assert live_processes_with(f"{HELPER_NAME} {proc.pid}") == []
        assert survivors(family) == [], fault
        done_at_kill[segment] = committed_ends(store)
        segment += 1
        assert segment < len(kills) + 5, "the run never finished"

    named = [k for k in landed if k != "random"]
    assert len(named) >= len(workload.POINTS), landed  # each named point at least once
    assert landed.count("random") == RANDOM_KILLS, landed  # progress-based: all land

    lines = [line.split() for line in ledger.read_text().splitlines()]
    runs = Counter(name for _, name in lines)
    names = {f"j{k:04d}" for k in range(JOBS)}
    assert set(runs) == names  # no job lost
    by_segment: dict[int, list[str]] = {}
    for seg, name in lines:
        by_segment.setdefault(int(seg), []).append(name)
    for seg, seen in by_segment.items():
        assert len(seen) == len(set(seen)), f"segment {seg} ran a job twice"
        later = set().union(*(set(s) for k, s in by_segment.items() if k > seg))
        # No job whose end was committed before the kill runs again...
        assert not (done_at_kill.get(seg, set()) & later), (seg, landed[seg])
        # ...and those that do were in flight: at most the window's worth per kill.
        assert len(set(seen) & later) <= workload.WINDOW, (seg, sorted(set(seen) & later))
    extra = sum(runs.values()) - len(names)
    assert extra <= len(landed) * workload.WINDOW

    db = SQLiteStore(store)
    try:
        (run,) = db.runs()
        assert run.exit_code == 0
        ends = db.job_ends(run.run_id)
        assert db.integrity_check() == "ok"
    finally:
        db.close()
    assert set(ends) == names
    assert {e.state for e in ends.values()} <= {"SUCCEEDED", "UP_TO_DATE"}
    assert json.loads(summary.read_text()) == uninterrupted_summary(tmp_path)
