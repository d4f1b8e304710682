"""Job bodies of the executor suite: importable by name, so any executor can run them."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def where() -> int:
    """The process id the body runs in."""
    return os.getpid()


async def async_double(x: int) -> int:
    """A coroutine function that suspends once."""
    await asyncio.sleep(0)
    return 2 * x


def fail(message: str) -> None:
    """Raise ValueError."""
    raise ValueError(message)


def flaky(counter: str, failures: int) -> int:
    """Fail the first ``failures`` calls (counted in a file, shared by every process)."""
    path = Path(counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls <= failures:
        raise RuntimeError(f"call {calls} fails")
    return calls


def sleep_then_touch(seconds: float, path: str) -> str:
    """Sleep, then create ``path``: if the file appears, the body was not stopped."""
    time.sleep(seconds)
    Path(path).write_text("still running")
    return path


async def sleep_with_finally(seconds: float, path: str) -> None:
    """Sleep; whatever happens, write ``path`` on the way out."""
    try:
        await asyncio.sleep(seconds)
    finally:
        Path(path).write_text("finally ran")


def hold(seconds: float, log: str) -> None:
    """Append start and end times to ``log`` (to measure how many ran at once)."""
    with open(log, "a") as f:
        f.write(f"start {time.time()}\n")
    time.sleep(seconds)
    with open(log, "a") as f:
        f.write(f"end {time.time()}\n")


def most_at_once(log: str) -> int:
    """The largest number of bodies between their start and end at the same moment."""
    events = []
    for line in Path(log).read_text().splitlines():
        kind, moment = line.split()
        events.append((float(moment), 1 if kind == "start" else -1))
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def exit_hard(code: int) -> None:
    """Leave the process without cleanup, as a crash would."""
    os._exit(code)


async def stubborn(seconds: float) -> str:
    """Ignore every request to stop, for ``seconds`` at most."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            continue
    return "done"
