"""Several runners and readers against one PostgreSQL store at once.

    python benchmarks/pg_stress.py [--runners 8] [--readers 2] [--seconds 60] [--url DSN]

Each runner process runs small graphs (20 jobs, some cached) one after the other on runs
of its own; each reader process lists runs and rebuilds reports the whole time. At the end
every run must be complete in the store: ended, every job recorded once, the ledger the
jobs write agreeing with the store; no process may have met an error. Exit status 0 when
all holds. A schema of its own is created and dropped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
import uuid
from pathlib import Path
from typing import Any

JOBS = 20


def work(ledger: str, tag: str) -> str:
    """A job: append one line to the runner's ledger (every execution is counted)."""
    with open(ledger, "a") as f:
        f.write(tag + "\n")
    return tag


def runner(url: str, seconds: float, ledger: str, index: int, out: Any) -> None:
    import jobgraph as jg

    deadline, done, errors = time.monotonic() + seconds, [], []
    while time.monotonic() < deadline:
        run = len(done)
        jobs = [
            jg.Job(work, ledger, f"{index}-{run}-{k}", name=f"j{k}", cache=(k % 5 == 0))
            for k in range(JOBS)
        ]
        for k in range(1, JOBS):
            if k % 4:  # chains of four: dependents wait for their requirement's commit
                jobs[k].requires(jobs[k - 1])
        try:
            report = jg.Scheduler(*jobs, name=f"runner{index}-{run}").run(store=url)
            done.append(report.run_id)
        except Exception as exc:  # an error reaching the user: the check fails
            errors.append(f"{type(exc).__name__}: {exc}")
    out.send((done, errors))


def reader(url: str, seconds: float, out: Any) -> None:
    from jobgraph import Report
    from jobgraph.store import open_store

    store = open_store(url)
    assert store is not None
    deadline, reads, errors = time.monotonic() + seconds, 0, []
    while time.monotonic() < deadline:
        try:
            for info in store.runs(limit=20):
                Report.from_store(store, info.run_id)
                reads += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    out.send((reads, errors))


def check(url: str, runs: list[str], ledgers: list[Path]) -> list[str]:
    """What is wrong with the store after the load (empty when all holds)."""
    from jobgraph.store import open_store

    store = open_store(url)
    assert store is not None
    problems = []
    executed = sum(len(p.read_text().splitlines()) for p in ledgers if p.exists())
    recorded = 0
    for run_id in runs:
        info = store.find_run("", run_id)
        ends = store.job_ends(run_id)
        if info is None or info.ended_at is None or info.exit_code != 0:
            problems.append(f"run {run_id} is not recorded as ended well: {info}")
        if len(ends) != JOBS:
            problems.append(f"run {run_id} has {len(ends)} job ends, not {JOBS}")
        recorded += sum(1 for end in ends.values() if end.state == "SUCCEEDED")
    if executed != recorded:
        problems.append(f"jobs executed {executed} times, {recorded} successes recorded")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runners", type=int, default=8)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--url", default="postgresql://postgres@localhost:5432/test")
    parser.add_argument("--folder", default=None, help="where the ledgers go (a scratch one)")
    args = parser.parse_args(argv)
    import tempfile

    import psycopg

    schema = f"jg_stress_{uuid.uuid4().hex[:10]}"
    url = f"{args.url}{'&' if '?' in args.url else '?'}schema={schema}"
    folder = Path(args.folder or tempfile.mkdtemp(prefix="jobgraph-stress-"))
    context = multiprocessing.get_context("spawn")
    ledgers = [folder / f"ledger{k}" for k in range(args.runners)]
    pipes, processes = [], []
    try:
        for k in range(args.runners):
            mine, theirs = context.Pipe()
            pipes.append(("runner", mine))
            processes.append(
                context.Process(target=runner, args=(url, args.seconds, str(ledgers[k]), k, theirs))
            )
        for _ in range(args.readers):
            mine, theirs = context.Pipe()
            pipes.append(("reader", mine))
            processes.append(context.Process(target=reader, args=(url, args.seconds, theirs)))
        for process in processes:
            process.start()
        results = [(kind, pipe.recv()) for kind, pipe in pipes]
        for process in processes:
            process.join()
        runs = [r for kind, (done, _) in results if kind == "runner" for r in done]
        reads = sum(n for kind, (n, _) in results if kind == "reader")
        errors = [e for _, (_, errs) in results for e in errs]
        problems = check(url, runs, ledgers)
    finally:
        with psycopg.connect(args.url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    summary = {
        "runners": args.runners,
        "readers": args.readers,
        "seconds": args.seconds,
        "runs": len(runs),
        "jobs": len(runs) * JOBS,
        "reports_read": reads,
        "errors": errors[:5],
        "problems": problems[:5],
    }
    print(json.dumps(summary, indent=1))
    return 0 if not errors and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
