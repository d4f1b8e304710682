"""Reading a job's kept output, and following it while the job runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

POLL = 0.25  # seconds between looks at the store while following


def follow_output(store: Any, run_id: str, job: str, stream: str, follow: bool) -> Iterator[str]:
    """Yield a job's output; with ``follow``, keep yielding until the job has ended."""
    shown = 0

    def fresh() -> str:
        nonlocal shown
        text: str = store.output(run_id, job, stream)
        part, shown = text[shown:], len(text)
        return part

    return following(fresh, lambda: _ended(store, run_id, job), follow)


def following(fresh: Callable[[], str], ended: Callable[[], bool], follow: bool) -> Iterator[str]:
    """Yield what ``fresh()`` returns that is new; with ``follow``, until ``ended()``."""
    while True:
        over = not follow or ended()  # before reading: what came with the end is shown too
        text = fresh()
        if text:
            yield text
        if over:
            return
        time.sleep(POLL)


def _ended(store: Any, run_id: str, job: str) -> bool:
    if job in store.recorded_ends(run_id):
        return True
    info = store.find_run("", run_id)
    return info is None or info.ended_at is not None
