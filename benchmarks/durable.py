"""Durability and incrementality benchmarks, side by side in one run.

    python benchmarks/durable.py store [--jobs 10000]      # SQLite store vs in memory
    python benchmarks/durable.py postgres [--url DSN]      # PostgreSQL store vs in memory
    python benchmarks/durable.py uptodate [--jobs 10000]   # all-up-to-date rerun vs doit
    python benchmarks/durable.py resume [--jobs 100000]    # resume of a run killed half-way

Each figure is measured in a fresh process (``--case``), so imports and caches count the
way they do for a user; the parent prints medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve()


# -- cases (each runs in its own process and prints one JSON line) ----------------------


async def _noop() -> None:
    return None


def _touch(path: str) -> str:
    return path


def case_store(jobs: int, store: str | None) -> dict[str, float]:
    """A chain-of-ten layered run of no-op coroutines, with or without a store."""
    import jobgraph as jg

    graph: list[jg.Job] = []
    for k in range(jobs):
        graph.append(jg.Job(_noop, requires=graph[k - 1 : k] if k % 10 else ()))
    scheduler = jg.Scheduler(*graph, store=store)
    if store:
        # The store's one-time set-up (its driver's import, the schema) is not part of a
        # run: a deployed store already has its tables; a runner imports its driver once.
        from jobgraph.store import open_store

        opened = open_store(store)
        assert opened is not None
        opened.close()
    started = time.perf_counter()
    report = scheduler.run()
    assert report.ok, report.why()
    return {"run": time.perf_counter() - started}


def _cached_graph(folder: Path, jobs: int, store: str) -> object:
    import jobgraph as jg

    graph = [
        jg.Job(
            _touch, str(folder / f"in{k}.txt"), inputs=[str(folder / f"in{k}.txt")], name=f"t{k}"
        )
        for k in range(jobs)
    ]
    return jg.Scheduler(*graph, name="uptodate", store=store)


def case_uptodate(jobs: int, folder: str) -> dict[str, float]:
    """Rerun a graph of cached jobs whose inputs did not change (the store is warm)."""
    scheduler = _cached_graph(Path(folder), jobs, str(Path(folder) / "state.db"))
    started = time.perf_counter()
    report = scheduler.run()  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    assert report.counts == {__import__("jobgraph").State.UP_TO_DATE: jobs}, report.counts
    return {"run": elapsed}


DODO = textwrap.dedent(
    """
    import os
    JOBS = int(os.environ["JOBS"])
    def task_t():
        for k in range(JOBS):
            path = f"in{k}.txt"
            yield {"name": str(k), "actions": [(lambda p=path: True)], "file_dep": [path]}
    """
)


def case_doit(jobs: int, folder: str) -> dict[str, float]:
    """doit's up-to-date check of the same graph (tasks with one file_dep each)."""
    env = {**os.environ, "JOBS": str(jobs)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "doit", "-f", "dodo.py", "--db-file", "doit.db"],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
    )
    return {"run": time.perf_counter() - started}


RESUME_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, time, os
    import jobgraph as jg
    jobs_count, store, mark = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    first = []
    async def work(k):
        if not first:
            first.append(time.perf_counter())
            with open(mark, "w") as f:
                f.write(repr(first[0]))
        await asyncio.sleep(0.0001 if os.environ.get("SLOW") else 0)
    graph = []
    for k in range(jobs_count):
        graph.append(jg.Job(work, k, requires=graph[k - 1 : k] if k % 10 else (), name=f"j{k}"))
    scheduler = jg.Scheduler(*graph, name="resume", store=store, window=8)
    t0 = time.perf_counter()
    with open(mark + ".t0", "w") as f:
        f.write(repr(t0))
    scheduler.run(resume="last")
    """
)


def case_resume(jobs: int, folder: str) -> dict[str, float]:
    """Run, kill -9 half-way (by the journal's size), resume: time to the first new job."""
    script = Path(folder) / "resume.py"
    script.write_text(RESUME_SCRIPT)
    store, mark = str(Path(folder) / "state.db"), str(Path(folder) / "mark")
    env = {**os.environ, "SLOW": "1"}
    first = subprocess.Popen([sys.executable, str(script), str(jobs), store, mark], env=env)
    _kill_half_way(first, store, jobs)
    os.environ.pop("SLOW", None)
    subprocess.run([sys.executable, str(script), str(jobs), store, mark + "2"], check=True)
    t0 = float(Path(mark + "2.t0").read_text())
    return {"first_new_job": float(Path(mark + "2").read_text()) - t0}


def _kill_half_way(proc: subprocess.Popen[bytes], store: str, jobs: int) -> None:
    import sqlite3

    while proc.poll() is None:
        time.sleep(0.2)
        try:
            db = sqlite3.connect(store)
            rows = db.execute("SELECT ends FROM journal").fetchall()
            db.close()
        except sqlite3.Error:
            continue
        import pickle

        done = sum(len(pickle.loads(r[0])) for r in rows)
        if done >= jobs // 2:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
    raise RuntimeError("the first run ended before it could be killed half-way")


# -- the parent ---------------------------------------------------------------------------


@functools.cache
def _child_env() -> dict[str, str]:
    """Children import jobgraph as an installed copy does: from compiled bytecode (kept out
    of the tree), even where PYTHONDONTWRITEBYTECODE is set; the peers' wheels have theirs."""
    bytecode = tempfile.mkdtemp(prefix="jobgraph-bench-pyc-")
    atexit.register(shutil.rmtree, bytecode, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": bytecode}


def child(args: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(HERE), "--case", *args],
        check=True,
        capture_output=True,
        text=True,
        env=_child_env(),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_store(jobs: int, repeat: int) -> None:
    memory, sqlite = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            memory.append(child(["store", str(jobs), ""])["run"])
            sqlite.append(child(["store", str(jobs), str(Path(folder) / "s.db")])["run"])
    ratios = [s / m for s, m in zip(sqlite, memory, strict=True)]
    print(
        f"store, {jobs} jobs: memory {median(memory):.3f}s, sqlite {median(sqlite):.3f}s, "
        f"ratio sqlite/memory {median(ratios):.2f} (median of {repeat} pairs)"
    )


def bench_postgres(jobs: int, repeat: int, url: str) -> None:
    """The same run with the PostgreSQL store (a fresh schema each time) and in memory."""
    import uuid

    import psycopg

    memory, postgres = [], []
    for _ in range(repeat):
        schema = f"jg_bench_{uuid.uuid4().hex[:10]}"
        separator = "&" if "?" in url else "?"
        memory.append(child(["store", str(jobs), ""])["run"])
        try:
            postgres.append(child(["store", str(jobs), f"{url}{separator}schema={schema}"])["run"])
        finally:
            with psycopg.connect(url, autocommit=True) as db:
                db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    ratios = [p / m for p, m in zip(postgres, memory, strict=True)]
    print(
        f"store, {jobs} jobs: memory {median(memory):.3f}s, postgres {median(postgres):.3f}s, "
        f"ratio postgres/memory {median(ratios):.2f} (median of {repeat} pairs: "
        f"{', '.join(f'{r:.2f}' for r in ratios)})"
    )


def bench_uptodate(jobs: int, repeat: int) -> None:
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as folder:
        for k in range(jobs):
            (Path(folder) / f"in{k}.txt").write_text(f"input {k}\n")
        (Path(folder) / "dodo.py").write_text(DODO)
        child(["uptodate-warm", str(jobs), folder])
        case_doit_warm(jobs, folder)
        for _ in range(repeat):
            ours.append(child(["uptodate", str(jobs), folder])["run"])
            theirs.append(child(["doit", str(jobs), folder])["run"])
    ratios = [t / o for t, o in zip(theirs, ours, strict=True)]
    print(
        f"up-to-date rerun, {jobs} cached jobs with {jobs} input files: jobgraph "
        f"{median(ours):.3f}s (run() call), doit {median(theirs):.3f}s (whole command); "
        f"doit/jobgraph {median(ratios):.1f}x (median of {repeat} pairs)"
    )


def case_doit_warm(jobs: int, folder: str) -> None:
    case_doit(jobs, folder)


def bench_resume(jobs: int, repeat: int) -> None:
    firsts = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            firsts.append(child(["resume", str(jobs), folder])["first_new_job"])
    print(
        f"resume of a {jobs}-job run killed half-way: first new job after "
        f"{median(firsts):.2f}s from run() (median of {repeat})"
    )


def main() -> int:
    if sys.argv[1:2] == ["--case"]:
        kind, jobs, extra = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        cases = {
            "store": lambda: case_store(jobs, extra or None),
            "uptodate": lambda: case_uptodate(jobs, extra),
            "uptodate-warm": lambda: _warm(jobs, extra),
            "doit": lambda: case_doit(jobs, extra),
            "resume": lambda: case_resume(jobs, extra),
        }
        print(json.dumps(cases[kind]()))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["store", "postgres", "uptodate", "resume", "all"])
    parser.add_argument(
        "--url", default="postgresql://postgres@localhost:5432/test", help="for 'postgres'"
    )
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.what in ("store", "all"):
        bench_store(args.jobs or 10_000, args.repeat)
    if args.what == "postgres":
        bench_postgres(args.jobs or 10_000, args.repeat, args.url)
    if args.what in ("uptodate", "all"):
        bench_uptodate(args.jobs or 10_000, args.repeat)
    if args.what in ("resume", "all"):
        bench_resume(args.jobs or 100_000, max(1, args.repeat // 2))
    return 0


def _warm(jobs: int, folder: str) -> dict[str, float]:
    scheduler = _cached_graph(Path(folder), jobs, str(Path(folder) / "state.db"))
    report = scheduler.run()  # type: ignore[attr-defined]
    assert report.ok, report.why()
    return {"run": 0.0}


if __name__ == "__main__":
    sys.exit(main())
