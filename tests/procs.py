"""Helpers to look at processes from tests (Linux /proc)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from jobgraph.procfs import stat_fields
from jobgraph.recorder import pid_alive as alive


def _pids() -> list[str]:
    return [pid for pid in os.listdir("/proc") if pid.isdigit()]


def live_processes(match: Callable[[bytes], bool]) -> list[int]:
    """PIDs of live (non-zombie) processes whose raw command line (NUL-separated) matches."""
    found = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        fields = stat_fields(pid)
        if fields is not None and fields[0] != b"Z" and match(cmdline):
            found.append(int(pid))
    return found


def live_processes_with(marker: str) -> list[int]:
    """PIDs of live (non-zombie) processes whose command line contains ``marker``."""
    return live_processes(
        lambda cmdline: marker in cmdline.replace(b"\0", b" ").decode(errors="replace")
    )


def exactly(argv: list[str]) -> Callable[[bytes], bool]:
    """A match for processes whose command line is exactly ``argv``."""
    wanted = "\0".join(argv).encode() + b"\0"
    return lambda cmdline: cmdline == wanted


def wait_until_gone(marker: str | Callable[[bytes], bool], seconds: float = 5.0) -> list[int]:
    """Wait up to ``seconds`` for matching processes to end; return the survivors.

    ``marker``: text their command line contains, or a match such as :func:`exactly`.
    """
    deadline = time.monotonic() + seconds
    while True:
        left = live_processes_with(marker) if isinstance(marker, str) else live_processes(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def wait_until_found(marker: str, seconds: float = 5.0) -> list[int]:
    """Wait up to ``seconds`` for processes whose command line contains ``marker``.

    A process that has just been started can show an empty command line for a moment:
    its parent learns that the exec succeeded before the kernel has set the new
    command line up.
    """
    deadline = time.monotonic() + seconds
    while True:
        found = live_processes_with(marker)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def jobgraph_cli(
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
):
    """Run the ``jobgraph`` command in a child process (``env``: variables to add)."""
    return subprocess.run(
        [sys.executable, "-m", "jobgraph", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )


def _children_by_parent() -> dict[int, list[int]]:
    """Live (non-zombie) processes by parent pid: one pass over /proc."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        fields = stat_fields(pid)
        if fields is not None and fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(pid))
    return children


def children_of(parent: int) -> list[int]:
    """PIDs of live (non-zombie) direct children of ``parent``."""
    return _children_by_parent().get(parent, [])


def descendants(pid: int) -> set[int]:
    """Live processes below ``pid``, at any depth."""
    children = _children_by_parent()
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def survivors(pids: set[int], seconds: float = 5.0) -> list[int]:
    """Wait up to ``seconds`` for ``pids`` to end; those still alive."""
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]
