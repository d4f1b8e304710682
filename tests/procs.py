"""Helpers to look at processes from tests (Linux /proc)."""

from __future__ import annotations

import os
import time


def live_processes_with(marker: str) -> list[int]:
    """PIDs of live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != b"Z":
            found.append(int(pid))
    return found


def wait_until_gone(marker: str, seconds: float = 5.0) -> list[int]:
    """Wait up to ``seconds`` for processes matching ``marker`` to end; return survivors."""
    deadline = time.monotonic() + seconds
    while True:
        alive = live_processes_with(marker)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def children_of(parent: int) -> list[int]:
    """PIDs of live (non-zombie) direct children of ``parent``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] != b"Z":
            found.append(int(pid))
    return found
