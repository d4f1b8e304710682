"""Executor benchmarks, side by side in one run.

    python benchmarks/executors.py dask [--jobs 10000] [--shape layered] [--repeat 3]
    python benchmarks/executors.py cpu [--jobs 200] [--ms 50] [--repeat 3]

``dask``: the same graph of no-op plain functions through ``jg.DaskExecutor`` and submitted
directly with ``client.submit`` (each task taking its requirements' futures), on one
local cluster of worker processes sized to the machine, started once and shared; the runs
alternate, and the figure is the median of the per-pair ratios.

``cpu``: pure-Python loops of about ``--ms`` milliseconds each, in the thread pool (the
default for plain functions) and with ``executor="process"``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from typing import Any

from shapes import make_dag

import jobgraph as jg


def noop(*_: Any) -> None:
    """A job that does nothing (its arguments are its requirements' results)."""


def spin(loops: int) -> int:
    """Pure-Python work that holds the GIL the whole time."""
    total = 0
    for k in range(loops):
        total += k * k % 7
    return total


# -- dask ---------------------------------------------------------------------------


def through_jobgraph(address: str, shape: str, n: int) -> float:
    dag = make_dag(shape, n)
    started = time.perf_counter()
    jobs: list[jg.Job] = []
    for i in range(n):
        jobs.append(jg.Job(noop, requires=[jobs[p] for p in dag.preds(i)], name=f"j{i}"))
    report = jg.Scheduler(*jobs, executor=jg.DaskExecutor(address=address)).run()
    assert report.ok, report.why()
    return time.perf_counter() - started


def through_client(client: Any, shape: str, n: int) -> float:
    import distributed

    dag = make_dag(shape, n)
    started = time.perf_counter()
    futures: list[Any] = []
    for i in range(n):
        preds = [futures[p] for p in dag.preds(i)]
        futures.append(client.submit(noop, *preds, key=f"d{i}-{started}", pure=False))
    distributed.wait(futures)
    assert all(f.status == "finished" for f in futures)
    elapsed = time.perf_counter() - started
    client.cancel(futures)
    return elapsed


def through_get(client: Any, shape: str, n: int) -> float:
    dag = make_dag(shape, n)
    started = time.perf_counter()
    graph = {f"g{i}": (noop, *[f"g{p}" for p in dag.preds(i)]) for i in range(n)}
    client.get(graph, [f"g{i}" for i in dag.sinks()])
    return time.perf_counter() - started


def bench_dask(n: int, shape: str, repeat: int) -> None:
    import distributed

    cluster = distributed.LocalCluster(
        processes=True, dashboard_address=":0", silence_logs=logging.CRITICAL
    )
    client = distributed.Client(cluster)
    workers = len(client.scheduler_info()["workers"])
    ours, submits, gets = [], [], []
    try:
        through_client(client, shape, 200)  # warm every path up
        through_get(client, shape, 200)
        through_jobgraph(cluster.scheduler_address, shape, 200)
        for _ in range(repeat):
            submits.append(through_client(client, shape, n))
            gets.append(through_get(client, shape, n))
            ours.append(through_jobgraph(cluster.scheduler_address, shape, n))
    finally:
        client.close()
        cluster.close()
    print(f"dask, {n} no-op functions ({shape}, {workers} workers), medians of {repeat}:")
    print(f"  jobgraph DaskExecutor  {statistics.median(ours) / n * 1e6:7.0f} us/job")
    for label, theirs in (("client.submit", submits), ("client.get", gets)):
        ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
        print(
            f"  {label:<22} {statistics.median(theirs) / n * 1e6:7.0f} us/job; "
            f"jobgraph/{label} {statistics.median(ratios):.2f} "
            f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)})"
        )


# -- cpu ----------------------------------------------------------------------------


def calibrate(ms: float) -> int:
    loops = 100_000
    started = time.perf_counter()
    spin(loops)
    return int(loops * ms / 1000 / (time.perf_counter() - started))


def through(executor: str | None, n: int, loops: int) -> float:
    jobs = [jg.Job(spin, loops, name=f"s{k}") for k in range(n)]
    started = time.perf_counter()
    report = jg.Scheduler(*jobs, executor=executor).run()
    assert report.ok, report.why()
    return time.perf_counter() - started


def bench_cpu(n: int, ms: float, repeat: int) -> None:
    loops = calibrate(ms)
    threads, processes = [], []
    for _ in range(repeat):
        threads.append(through("thread", n, loops))
        processes.append(through("process", n, loops))
    ratios = [t / p for t, p in zip(threads, processes, strict=True)]
    print(
        f"cpu, {n} jobs of ~{ms:g} ms: threads {statistics.median(threads):.2f}s, "
        f"processes {statistics.median(processes):.2f}s; threads/processes "
        f"{statistics.median(ratios):.2f}x (median of {repeat} pairs: "
        f"{', '.join(f'{r:.2f}' for r in ratios)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["dask", "cpu", "all"])
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--shape", default="layered")
    parser.add_argument("--ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.what in ("dask", "all"):
        bench_dask(args.jobs or 10_000, args.shape, args.repeat)
    if args.what in ("cpu", "all"):
        bench_cpu(args.jobs or 200, args.ms, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
