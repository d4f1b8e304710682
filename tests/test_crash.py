"""Kill -9 a real run at random moments, resume each time: nothing finished runs twice."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import crash_workload as workload
from jobgraph.store import SQLiteStore

HERE = Path(__file__).parent
KILLS = 16


def start(store: Path, ledger: Path, segment: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "crash_workload.py"), str(store), str(ledger), str(segment)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_first_line(ledger: Path, segment: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    prefix = f"{segment} ".encode()
    while time.monotonic() < deadline and proc.poll() is None:
        if ledger.exists() and any(
            line.startswith(prefix) for line in ledger.read_bytes().splitlines()
        ):
            return
        time.sleep(0.01)


def test_kill_nine_at_random_moments_then_resume_until_done(tmp_path):
    store, ledger = tmp_path / "state.db", tmp_path / "ledger"
    rng = random.Random(int(os.environ.get("JOBGRAPH_CRASH_SEED", "2024")))
    segment, kills = 0, 0
    while True:
        proc = start(store, ledger, segment)
        if kills < KILLS:
            wait_for_first_line(ledger, segment, proc)
            time.sleep(rng.uniform(0.0, 0.15))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err.decode()
        segment += 1
        assert segment < KILLS + 5, "the run never finished"

    assert kills >= KILLS - 2, f"only {kills} kills landed before the run ended"
    lines = [line.split() for line in ledger.read_text().splitlines()]
    runs = Counter(name for _, name in lines)
    names = {f"j{k:03d}" for k in range(workload.JOBS)}
    assert set(runs) == names  # no job lost
    # A job runs again only if it was in flight at a kill: at most the window's worth each.
    by_segment: dict[int, set[str]] = {}
    for seg, name in lines:
        by_segment.setdefault(int(seg), set()).add(name)
    for seg, seen in by_segment.items():
        later = set().union(*(s for k, s in by_segment.items() if k > seg))
        assert len(seen & later) <= workload.WINDOW, (seg, sorted(seen & later))
    # within one segment nothing runs twice
    assert all(
        Counter(n for s, n in lines if int(s) == seg).most_common(1)[0][1] == 1
        for seg in by_segment
    )
    extra = sum(runs.values()) - len(names)
    assert extra <= kills * workload.WINDOW
    db = SQLiteStore(store)
    (run,) = db.runs()
    assert run.exit_code == 0
    ends = db.job_ends(run.run_id)
    assert {e.state for e in ends.values()} <= {"SUCCEEDED", "UP_TO_DATE"}
    assert set(ends) == names
    assert sqlite3.connect(store).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
