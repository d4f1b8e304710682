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
