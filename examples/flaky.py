"""A flaky network: retries with backoff for errors, timeouts for hangs.

Run it with ``python examples/flaky.py``. The "download" fails twice before it works
(retries with a growing delay); one "mirror" hangs and is stopped by its timeout, and
the job that needs only the fast mirrors still runs; an alert runs because something
failed.
"""

from __future__ import annotations

import asyncio
import sys

import jobgraph as jg

attempts = {"download": 0}


async def download() -> str:
    """Fail the first two times, as a flaky network would."""
    attempts["download"] += 1
    await asyncio.sleep(0.05)
    if attempts["download"] < 3:
        raise ConnectionError(f"connection reset (attempt {attempts['download']})")
    return "payload"


async def mirror(name: str, delay: float) -> str:
    """A mirror that answers after ``delay`` seconds."""
    await asyncio.sleep(delay)
    return f"{name} ok"


def alert(*_: object) -> str:
    """Runs only when a requirement failed or timed out."""
    return "paged the on-call engineer"


def main() -> int:
    """Build the graph, run it, show what happened."""
    fetch = jg.Job(download, retries=3, retry_delay=0.1, retry_backoff=2.0, name="download")
    fast = [jg.Job(mirror, f"mirror-{k}", 0.05, timeout=2, name=f"mirror-{k}") for k in range(3)]
    stuck = jg.Job(mirror, "mirror-stuck", 3600, timeout=0.5, name="mirror-stuck")
    use = jg.Job(lambda payload, *ok: f"{payload} via {len(ok)} mirrors", fetch, *fast, name="use")
    page = jg.Job(alert, requires=[stuck, fetch], run_if="failure", name="alert")
    report = jg.Scheduler(use, stuck, page).run()
    print(report.debrief())
    print("download attempts:", fetch.attempts)
    print("use:", use.result())
    print("alert:", page.result())
    # The stuck mirror timing out is the point of this example.
    return 0 if report.why() == "job 'mirror-stuck' timed out after 0.5s" else 1


if __name__ == "__main__":
    sys.exit(main())
