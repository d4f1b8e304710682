"""Linux's /proc, read the one way jobgraph needs: a process's status fields."""

from __future__ import annotations


def stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None if unreadable.

    They start with the state (``b"Z"`` for a zombie), the parent, the process group;
    the start time is index 19. The command name is cut at its last ``)``: it may hold
    spaces, parentheses and even newlines.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
