"""Which recorded runs to delete: all but the newest few of each scheduler.

A store keeps every run until told otherwise (``jobgraph prune``). What a rerun needs is
not in old runs: the jobs' last successes (fingerprints, results) are kept apart and stay,
so pruning never makes a job run again. A deleted run can no longer be resumed or shown;
a kept run whose up-to-date jobs took their results from a deleted run keeps them only
while those jobs' successes stay the deleted run's (``Store.job_ends``). A run still
going on (its lease live, or lapsed less than a lease's length ago) is never deleted.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .recorder import LEASE_SECONDS
from .store.base import RunInfo, Store
from .store.journal import lease_live


@dataclass(frozen=True)
class Pruned:
    """What a prune did (or, dry, would do)."""

    deleted: list[RunInfo]  # the runs deleted (or to delete), newest first
    kept_live: list[RunInfo]  # runs old enough to go, kept because they are running
    kept: int  # the runs kept in all


def old_runs(runs: Sequence[RunInfo], keep: int) -> list[RunInfo]:
    """The runs after the newest ``keep`` of their scheduler (``runs`` newest first)."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the run a resume takes), not {keep}")
    seen: Counter[str] = Counter()
    old = []
    for run in runs:
        seen[run.scheduler] += 1
        if seen[run.scheduler] > keep:
            old.append(run)
    return old


def prune(store: Store, keep: int, *, dry_run: bool = False) -> Pruned:
    """Delete the runs of ``store`` after the newest ``keep`` of each scheduler."""
    runs = store.runs(sys.maxsize)
    old = old_runs(runs, keep)
    # A lease that lapsed only just now may be a runner late to renew it: kept too.
    now = time.time() - LEASE_SECONDS
    if dry_run or not old:
        gone = {r.run_id for r in old if not lease_live(r.owner, r.lease_until, now)}
    else:
        gone = set(store.delete_runs([r.run_id for r in old], now))
    going = [r for r in old if r.run_id in gone]
    live = [r for r in old if r.run_id not in gone]
    return Pruned(going, live, len(runs) - len(going))
