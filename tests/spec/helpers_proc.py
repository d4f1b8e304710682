"""Module-level helpers for the spec tests.

Functions sent to worker processes must be importable, so they live here (not in the
test modules). The small utilities at the end are shared by several test files.
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from pathlib import Path

# -- bodies that may run in a worker process ------------------------------------------


def getpid() -> int:
    return os.getpid()


def add(x, y):
    return x + y


def identity(value):
    return value


def sleep_then_write(path: str, delay: float) -> str:
    """Sleep, then write a file: if the worker is really killed, the file never appears."""
    time.sleep(delay)
    Path(path).write_text("written after the timeout", encoding="utf-8")
    return path


def sleep_and_return(delay: float, value=None):
    time.sleep(delay)
    return value


def return_unpicklable():
    return threading.Lock()


def fail_with(message: str):
    raise ValueError(message)


# -- shared test utilities -------------------------------------------------------------


class Gauge:
    """Counts how many bodies are inside at once (thread-safe), and the maximum seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.max = 0
        self.total = 0

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.total += 1
            self.max = max(self.max, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


def timestamp(value) -> float:
    """A job time (datetime or float seconds) as float seconds since the epoch."""
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    return float(value)


def record_of(report, name: str) -> dict:
    """The documented JSON record (section 4) of the job called ``name``."""
    for record in report.to_dict()["jobs"]:
        if record["name"] == name:
            return record
    names = [r["name"] for r in report.to_dict()["jobs"]]
    raise AssertionError(f"no record named {name!r} in report; names: {names}")


def state_names(report) -> dict[str, str]:
    """``{job name: state name}`` from the documented JSON records."""
    return {r["name"]: r["state"] for r in report.to_dict()["jobs"]}
