"""The soak: run after run in one process, with jobs killed on the way; nothing piles up.

Each round runs a mixed graph (plain functions, coroutines, commands, worker-process jobs)
in which some commands and worker-process calls are killed by their timeouts and one
round in three is stopped by the run's own timeout, with an SQLite store. After warming
up, the process's open file descriptors must return to their count, its children to none,
and its memory must not keep growing. CI runs it for 15 s; JOBGRAPH_SOAK_SECONDS=1800 is
the long variant.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import jobgraph as jg
from procs import children_of

SECONDS = float(os.environ.get("JOBGRAPH_SOAK_SECONDS", "15"))
PAGE = os.sysconf("SC_PAGE_SIZE")


def square(x: int) -> int:
    return x * x


def stuck(seconds: float) -> None:
    time.sleep(seconds)


async def tick(x: int) -> int:
    await asyncio.sleep(0.001)
    return x


def graph(round_: int) -> jg.Scheduler:
    jobs: list[jg.Job] = []
    for i in range(20):
        jobs.append(jg.Job(square, i, name=f"sq{i}"))
        jobs.append(jg.Job(tick, i, name=f"tick{i}", requires=jobs[-1]))
    jobs.append(jg.Shell("echo done", name="echo", requires=jobs[-2:]))
    jobs.append(jg.Shell("sleep 30 & sleep 30", name="killed-command", timeout=0.2))
    jobs.append(jg.Job(stuck, 30, name="killed-worker", timeout=0.2))
    if round_ % 3 == 0:
        jobs.append(jg.Shell("sleep 30", name="stopped-by-the-run"))
    return jg.Scheduler(*jobs, name="soak", window=8, timeout=3 if round_ % 3 == 0 else None)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def children() -> list[int]:
    return children_of(os.getpid())


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def settle(keep: set[int], seconds: float = 5.0) -> None:
    """Wait for stopped children other than ``keep`` to be gone (reaping is asynchronous)."""
    deadline = time.monotonic() + seconds
    while set(children()) - keep and time.monotonic() < deadline:
        time.sleep(0.05)


def test_runs_with_kills_leave_nothing_behind(tmp_path: Path) -> None:
    store = tmp_path / "soak.db"
    earlier = set(children())  # what other tests left running in this process (a cluster)
    for round_ in range(3):  # warm up: imports, caches, the store's connection pool
        graph(round_).run(store=store)
    # multiprocessing's resource tracker: one per process, for good, by design.
    trackers = {pid for pid in children() if b"resource_tracker" in cmdline(pid)}
    keep = earlier | trackers
    settle(keep)
    fds, memory = open_fds(), resident_mb()
    rounds, peak = 3, memory
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        report = graph(rounds).run(store=store)
        assert report.counts[jg.State.TIMED_OUT] == 2  # both killed jobs, every round
        rounds += 1
        peak = max(peak, resident_mb())
    settle(keep)
    print(f"soak: {rounds} rounds, fds {fds} -> {open_fds()}, RSS {memory:.0f} -> "
          f"{resident_mb():.0f} MB (peak {peak:.0f})")  # fmt: skip
    assert set(children()) <= keep
    assert open_fds() <= fds
    # Python keeps freed memory for reuse: growth shows as a rising floor, not a spike.
    assert resident_mb() - memory < 30, (memory, resident_mb(), peak, rounds)
