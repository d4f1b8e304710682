"""The store-fault battery: fail the Nth write of a run, for every N.

A 50-job run (results, failures, skips) is recorded in an SQLite store whose Nth write
fails once, for every N from 1 to the number of writes the run makes. "database is
locked" is transient: it is retried and the run ends as if nothing happened. "disk I/O
error" is not: the run stops with StoreError; resuming it then finishes the work. Either
way the final report, times aside, is the report of a run without faults.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import jobgraph as jg
from jobgraph.store import SQLiteStore

JOBS = 50


class FaultyStore(SQLiteStore):
    """An SQLite store whose ``fail_at``-th write attempt raises ``error`` (once)."""

    def __init__(self, path: Path, fail_at: int = 0, error: str = "") -> None:
        self.writes = 0  # opening the store writes too: counted from the start
        self.fail_at, self.error = fail_at, error
        super().__init__(path)

    def _write(self, body: Callable[[sqlite3.Connection], Any]) -> Any:
        def faulty(db: sqlite3.Connection) -> Any:
            self.writes += 1
            if self.writes == self.fail_at:
                raise sqlite3.OperationalError(self.error)
            return body(db)

        return super()._write(faulty)


def square(x: int) -> int:
    if x % 17 == 5:
        raise ValueError(f"no square for {x}")
    return x * x


def total(*parts: int) -> int:
    return sum(parts)


def graph() -> jg.Scheduler:
    """Layers of squares, each summed by a job requiring the one before: fails and skips."""
    jobs: list[jg.Job] = []
    for i in range(JOBS):
        if i % 5 == 4:
            jobs.append(jg.Job(total, *jobs[-3:], name=f"sum{i}"))
        else:
            jobs.append(jg.Job(square, i, name=f"sq{i}"))
    return jg.Scheduler(*jobs, name="faults")


def outcome(report: jg.Report) -> list[tuple[Any, ...]]:
    """The report without times: each job's name, state (a resumed success counts as one),
    requirements, result, first error line and skip causes."""
    rows = []
    for job in report.to_dict()["jobs"]:
        state = "SUCCEEDED" if job["state"] == "UP_TO_DATE" else job["state"]
        error = (job["error"] or "").strip().splitlines()[-1:]
        rows.append((job["name"], state, tuple(job["requires"]), job["result"], tuple(error),
                     tuple(job["skipped_because"])))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[Any, ...]], int]:
    """The outcome of a run without faults, and how many writes it made."""
    store = FaultyStore(tmp_path_factory.mktemp("clean") / "runs.db")
    report = graph().run(store=store)
    assert report.counts[jg.State.FAILED] and report.counts[jg.State.SKIPPED]
    return outcome(report), store.writes


# How many writes a run makes varies a little (ends are committed in batches, as they come):
# go a few past the clean run's count, where a run may have no fault at all.
SPARE = 5


def test_a_locked_database_at_any_write_is_retried(tmp_path: Path, clean: Any) -> None:
    expected, writes = clean
    for n in range(1, writes + SPARE):
        store = FaultyStore(tmp_path / f"locked{n}.db", n, "database is locked")
        report = graph().run(store=store)
        assert outcome(report) == expected, f"write {n}"


def test_a_disk_error_at_any_write_stops_the_run_and_a_resume_finishes_it(
    tmp_path: Path, clean: Any
) -> None:
    expected, writes = clean
    failed = 0
    for n in range(1, writes + SPARE):
        path = tmp_path / f"io{n}.db"
        try:
            store = FaultyStore(path, n, "disk I/O error")  # opening the store writes too
            report = graph().run(store=store)
        except jg.StoreError as exc:
            assert "disk I/O error" in str(exc)
            failed += 1
            report = graph().run(store=SQLiteStore(path), resume="last")
        else:
            assert store.writes < n  # the run made fewer writes: no fault happened
        assert outcome(report) == expected, f"write {n}"
        check = sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()
        assert check == ("ok",)
    assert failed >= writes - 2  # nearly every write was failed once
