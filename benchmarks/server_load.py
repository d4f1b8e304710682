"""Load on one ``jobgraph serve``: many clients submitting small runs and polling them.

    python benchmarks/server_load.py [--clients 50] [--runs 20] [--processes 5]

Starts a server on loopback in a scratch folder, then ``--clients`` clients (threads,
spread over ``--processes`` processes so that the clients' own interpreter locks do not
count as server latency) each submit ``--runs`` one-job workflows one after the other and
poll each until it ended. Every API request's latency is measured on the client side.
Checks: every run succeeded, none is lost or duplicated (the server lists exactly the runs
submitted); prints the latency percentiles. Bounded by ``--limit`` seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

WORKFLOW = "jobs:\n  only:\n    shell: echo ok\n"
TOKEN = "bench-token"


def client_process(
    url: str, clients: int, runs: int, limit: float, poll: float, ready: Any, out: Any
) -> None:
    """Run ``clients`` threads; send back (latencies, run ids, states).

    The threads start together with every other process's, once all have imported
    jobgraph (``ready``, a barrier): the clients' own start-up is not part of the load.
    """
    import jobgraph as jg

    latencies: list[tuple[str, float]] = []
    found: list[tuple[str, str]] = []
    lock = threading.Lock()

    def timed(call: Any, kind: str = "state") -> Any:
        started = time.perf_counter()
        try:
            return call()
        finally:
            with lock:
                latencies.append((kind, time.perf_counter() - started))

    def one_client() -> None:
        client = jg.Client(url, TOKEN)
        deadline = time.monotonic() + limit
        for _ in range(runs):
            handle = timed(lambda: client.submit(WORKFLOW), "submit")
            state = "pending"
            while state not in ("succeeded", "failed", "aborted"):
                if time.monotonic() > deadline:
                    break
                time.sleep(poll)
                state = timed(lambda h=handle: h.state)
            with lock:
                found.append((handle.run_id, state))

    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    ready.wait()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.send((latencies, found))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--limit", type=float, default=600.0)
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between polls")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="jobgraph-load-")
    server = subprocess.Popen(
        [sys.executable, "-m", "jobgraph", "serve", "--port", "0"],
        cwd=folder,
        env={**os.environ, "JOBGRAPH_TOKEN": TOKEN},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stderr is not None
    url = re.search(r"serving on (\S+)", server.stderr.readline()).group(1)  # type: ignore[union-attr]
    started = [time.monotonic()]
    try:
        results = run_clients(url, args, started)
    finally:
        elapsed = time.monotonic() - started[0]
        server_cpu = cpu_seconds(server.pid)
        server.terminate()
        server.wait(timeout=30)
    report(results, args, elapsed, server_cpu, folder)
    return 0


def cpu_seconds(pid: int) -> float:
    """Processor time (user + system) process ``pid`` has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_clients(
    url: str, args: argparse.Namespace, started: list[float]
) -> list[tuple[list[float], list[Any]]]:
    """Start the client processes, release them together (``started[0]``: when)."""
    context = multiprocessing.get_context("spawn")
    per_process = [args.clients // args.processes] * args.processes
    per_process[0] += args.clients - sum(per_process)
    ready = context.Barrier(args.processes + 1, timeout=120)
    pipes, processes = [], []
    for clients in per_process:
        mine, theirs = context.Pipe()
        process = context.Process(
            target=client_process,
            args=(url, clients, args.runs, args.limit, args.poll, ready, theirs),
        )
        process.start()
        pipes.append(mine)
        processes.append(process)
    ready.wait()
    started[0] = time.monotonic()
    results = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join()
    return results


def report(
    results: list[Any], args: argparse.Namespace, elapsed: float, server_cpu: float, folder: str
) -> None:
    from jobgraph.store import open_store

    tagged = [x for lat, _ in results for x in lat]
    latencies = sorted(x for _, x in tagged)
    by_kind = {
        kind: round(
            sorted(x for k, x in tagged if k == kind)[int(0.99 * sum(k == kind for k, _ in tagged))]
            * 1000,
            1,
        )
        for kind in {k for k, _ in tagged}
    }
    found = [item for _, items in results for item in items]
    ids = [run_id for run_id, _ in found]
    states = statistics.multimode([s for _, s in found])
    not_ok = [f for f in found if f[1] != "succeeded"]
    store = open_store(os.path.join(folder, ".jobgraph", "state.db"))
    assert store is not None
    listed = {info.run_id for info in store.runs(limit=10 * len(ids) + 10)}
    expected = args.clients * args.runs

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    print(
        json.dumps(
            {
                "clients": args.clients,
                "runs_each": args.runs,
                "runs_submitted": len(ids),
                "runs_expected": expected,
                "distinct_run_ids": len(set(ids)),
                "runs_in_store": len(listed),
                "not_succeeded": len(not_ok),
                "most_common_state": states,
                "requests": len(latencies),
                "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99)},
                "max_ms": latencies[-1] * 1000,
                "p99_ms_by_request": by_kind,
                "elapsed_s": round(elapsed, 1),
                # The server's own processor time (threads answering requests), without
                # the launcher and the runs (other processes).
                "server_cpu_s": round(server_cpu, 2),
            },
            indent=1,
        )
    )
    ok = len(ids) == expected and len(set(ids)) == expected and not not_ok and listed == set(ids)
    for run_id, state in not_ok[:5]:
        log = Path(folder, ".jobgraph", "server", run_id, "run.log")
        text = log.read_text()[-800:] if log.exists() else "(no run.log)"
        print(f"run {run_id} ended {state}:\n{text}")
    print("every run completed once, none lost:", ok, "; p99 under 100 ms:", pct(0.99) < 100)


if __name__ == "__main__":
    sys.exit(main())
