"""Builders for the artron compatibility tests (worker processes import them by name)."""

from __future__ import annotations

import os
import time


class Bakery:
    """A builder whose methods the tasks name; each takes a moment, as real work would."""

    def knead(self, item: str, retry: int) -> str:
        time.sleep(0.2)
        return f"kneaded {item}"

    def heat(self, item: str, retry: int) -> str:
        time.sleep(0.1)
        return f"heated {item}"

    def burn(self, item: str, retry: int) -> str:
        time.sleep(0.05)
        raise RuntimeError(f"{item} burnt")


class Clock:
    """Reports when each call ran, and can stay busy for a long time."""

    def span(self, seconds: float, retry: int) -> tuple[float, float]:
        began = time.time()
        time.sleep(seconds)
        return (began, time.time())

    def hang(self, pid_file: str, retry: int) -> str:
        """Write this process's id to ``pid_file`` (all at once), then sleep a minute."""
        with open(pid_file + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
        time.sleep(60)
        return "woke up"

    def gather(self, directory: str, count: int, retry: int) -> int:
        """A barrier: wait until ``count`` calls are running at once, then return.

        Each call leaves a file in ``directory``; all return once ``count`` files are
        there. Raises ``TimeoutError`` after 60 seconds (fewer calls ran at once).
        """
        with open(os.path.join(directory, str(os.getpid())), "w"):
            pass
        deadline = time.monotonic() + 60
        while len(os.listdir(directory)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(os.listdir(directory))} of {count} ran at once")
            time.sleep(0.02)
        return count


class Flaky:
    """Fails its first ``fails`` attempts; remembers the attempt numbers it was given."""

    def __init__(self, fails: int) -> None:
        self.fails = fails
        self.seen: list[int] = []

    def attempt(self, retry: int) -> list[int]:
        self.seen.append(retry)
        if retry <= self.fails:
            raise ValueError(f"not yet (attempts so far: {self.seen})")
        return self.seen


def greet(who: str, retry: int) -> str:
    """A module is a builder too: tasks name its functions."""
    return f"hello {who}"


class Fragile:
    """Its worker process dies in the middle of the task."""

    def crash(self, retry: int) -> None:
        os._exit(3)

    def fine(self, retry: int) -> str:
        return "fine"


class Odd:
    """Methods whose outcome is hard to send back or to describe."""

    def leave(self, code: int, retry: int) -> None:
        raise SystemExit(code)

    def lock(self, retry: int) -> object:
        import threading

        return threading.Lock()

    def echo(self, value: object, retry: int) -> object:
        return value
