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
        with open(pid_file, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)
        return "woke up"


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
