"""Functions that worker processes import by name (they must live in a module)."""

from __future__ import annotations

import os
import signal
import time


def pid() -> int:
    """The worker's process id."""
    return os.getpid()


def exit_hard(code: int) -> None:
    """Leave without cleanup, as a crash would."""
    os._exit(code)


def kill_self() -> None:
    """Die by SIGKILL."""
    os.kill(os.getpid(), signal.SIGKILL)


def sleep_then_touch(seconds: float, path: str) -> str:
    """Sleep, then create ``path``: if the file appears, the job was not stopped."""
    time.sleep(seconds)
    with open(path, "w") as f:
        f.write("still running")
    return path


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def async_double(x: int) -> int:
    """A coroutine function sent to a worker."""
    return 2 * x


def fail(message: str) -> None:
    """Raise ValueError."""
    raise ValueError(message)


class BadRow(Exception):
    """An exception whose constructor needs two arguments: it cannot be unpickled as is."""

    def __init__(self, row: int, why: str) -> None:
        super().__init__(f"row {row}: {why}")


def raise_bad_row() -> None:
    """Raise an exception that pickle cannot rebuild."""
    raise BadRow(12, "bad")


def sleep_for(seconds: float) -> float:
    """Sleep, then return how long."""
    time.sleep(seconds)
    return seconds


def ledger_job(ledger: str, name: str, seconds: float) -> str:
    """Append ``name`` to an fsync'd ledger (one line per execution), then sleep a little."""
    import os as _os

    fd = _os.open(ledger, _os.O_WRONLY | _os.O_APPEND | _os.O_CREAT, 0o644)
    try:
        _os.write(fd, (name + "\n").encode())
        _os.fsync(fd)
    finally:
        _os.close(fd)
    time.sleep(seconds)
    return name


def segfault() -> None:
    """Crash the process with SIGSEGV (a bug in a C extension would)."""
    import ctypes

    ctypes.string_at(0)
