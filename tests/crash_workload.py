"""A few hundred jobs that log every execution to an fsync'd ledger (crash tests only).

Usage: python crash_workload.py STORE LEDGER SEGMENT
Each job appends "SEGMENT NAME" to LEDGER before doing its (short) work.
"""

from __future__ import annotations

import random
import sys
import time

import jobgraph as jg
from reliability.crash_points_workload import log

JOBS = 400
WINDOW = 8


def work(ledger: str, segment: str, name: str, seconds: float) -> str:
    """Log this execution durably, then work for a moment."""
    log(ledger, segment, name)
    time.sleep(seconds)
    return name


def graph(ledger: str, segment: str) -> list[jg.Job]:
    """A layered graph: each job needs up to two jobs of the layer before."""
    rng = random.Random(7)
    jobs: list[jg.Job] = []
    for k in range(JOBS):
        layer = k // 20
        before = jobs[(layer - 1) * 20 : layer * 20] if layer else []
        needs = rng.sample(before, k=min(len(before), rng.randint(0, 2)))
        jobs.append(
            jg.Job(
                work,
                ledger,
                segment,
                f"j{k:03d}",
                rng.uniform(0.01, 0.04),
                name=f"j{k:03d}",
                requires=needs,
            )
        )
    return jobs


def main() -> int:
    store, ledger, segment = sys.argv[1:4]
    scheduler = jg.Scheduler(*graph(ledger, segment), name="crash", window=WINDOW, store=store)
    report = scheduler.run(resume="last")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
