"""Deleting old runs: which go, what stays, and that no job runs again because of it."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from jobgraph.prune import old_runs, prune
from jobgraph.store import RunInfo, SQLiteStore
from procs import jobgraph_cli

GRAPH = textwrap.dedent(
    """
    import os
    import jobgraph as jg

    def count(path):
        with open("calls.txt", "a") as f:
            f.write(path + "\\n")
        return "x" * 100_000

    scheduler = jg.Scheduler(
        jg.Job(count, "in.txt", inputs=["in.txt"], name="read"),
        name=os.environ.get("GRAPH", "graph"),
    )
    """
)


def info(run_id: str, scheduler: str) -> RunInfo:
    return RunInfo(run_id=run_id, scheduler=scheduler, started_at=0.0)


def test_the_newest_runs_of_each_scheduler_are_kept():
    runs = [info("b3", "b"), info("a2", "a"), info("b2", "b"), info("a1", "a"), info("b1", "b")]
    assert [r.run_id for r in old_runs(runs, 1)] == ["b2", "a1", "b1"]
    assert [r.run_id for r in old_runs(runs, 2)] == ["b1"]
    assert old_runs(runs, 3) == []
    with pytest.raises(ValueError, match="keep must be at least 1"):
        old_runs(runs, 0)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "g.py").write_text(GRAPH)
    (tmp_path / "in.txt").write_text("data")
    return tmp_path


def run_ids(folder: Path) -> list[str]:
    listed = jobgraph_cli("runs", "--json", cwd=folder)
    return [r["run_id"] for r in json.loads(listed.stdout)]


def test_prune_keeps_the_newest_runs_and_every_job_stays_up_to_date(folder: Path):
    for _ in range(4):
        assert jobgraph_cli("run", "g.py", "-q", cwd=folder).returncode == 0
    before = run_ids(folder)
    database = folder / ".jobgraph" / "state.db"

    dry = jobgraph_cli("prune", "--keep", "2", "--dry-run", cwd=folder)
    assert dry.returncode == 0, dry.stderr
    assert f"would delete {before[2]}" in dry.stdout and f"would delete {before[3]}" in dry.stdout
    assert "would delete 2 runs; kept 2" in dry.stdout
    assert run_ids(folder) == before  # nothing deleted

    size = database.stat().st_size
    pruned = jobgraph_cli("prune", "--keep", "2", "--vacuum", "--json", cwd=folder)
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout) == {
        "dry_run": False,
        "deleted": before[2:],
        "kept_running": [],
        "kept": 2,
    }
    assert run_ids(folder) == before[:2]
    assert database.stat().st_size < size  # the first run's result is gone from the file
    assert jobgraph_cli("show", before[3], cwd=folder).returncode == 2

    # The job's last success is not history: it is still up to date.
    again = jobgraph_cli("run", "g.py", "--report", "r.json", cwd=folder)
    assert json.loads((folder / "r.json").read_text())["counts"] == {"UP_TO_DATE": 1}
    assert again.returncode == 0
    assert (folder / "calls.txt").read_text() == "in.txt\n"  # it ran once, in the first run


def test_prune_keeps_a_run_still_going_on_and_counts_per_scheduler(folder: Path):
    for graph in ("one", "two", "one"):
        jobgraph_cli("run", "g.py", "-q", cwd=folder, env={"GRAPH": graph})
    one_new, _, one_old = run_ids(folder)
    store = SQLiteStore(folder / ".jobgraph" / "state.db")
    store.acquire(one_old, "elsewhere:1:x", ttl=600, now=time.time())  # as a live runner
    store.close()

    pruned = jobgraph_cli("prune", "--keep", "1", cwd=folder)
    assert pruned.returncode == 0, pruned.stderr
    assert f"kept {one_old}: still running" in pruned.stdout
    assert "deleted 0 runs; kept 3" in pruned.stdout
    assert len(run_ids(folder)) == 3 and one_new in run_ids(folder)


def test_prune_of_a_missing_store_is_a_clear_error(tmp_path: Path):
    missing = jobgraph_cli("prune", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no store at .jobgraph/state.db" in missing.stderr


def test_a_run_whose_lease_lapsed_only_just_now_is_kept_as_if_running(tmp_path: Path):
    store = SQLiteStore(tmp_path / "s.db")
    now = time.time()
    for run_id, lapsed in (("late", 5), ("dead", 120), ("newest", None)):
        store.create_run(RunInfo(run_id=run_id, scheduler="g", started_at=now))
        if lapsed is not None:  # a lease of 30 s, taken 30 + lapsed seconds ago
            store.acquire(run_id, "elsewhere:1:x", ttl=30, now=now - 30 - lapsed)
    pruned = prune(store, keep=1)
    assert [r.run_id for r in pruned.deleted] == ["dead"]
    assert [r.run_id for r in pruned.kept_live] == ["late"]
    assert [r.run_id for r in store.runs()] == ["newest", "late"]
    assert prune(store, keep=5).deleted == []  # nothing old: nothing written


def test_vacuum_with_dry_run_is_refused(folder: Path):
    jobgraph_cli("run", "g.py", "-q", cwd=folder)
    refused = jobgraph_cli("prune", "--dry-run", "--vacuum", cwd=folder)
    assert refused.returncode == 2 and "does nothing with --dry-run" in refused.stderr
