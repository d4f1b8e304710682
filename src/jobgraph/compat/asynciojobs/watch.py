"""``Watch``: elapsed time since a starting point, printed for debugging and tests."""

from __future__ import annotations

from datetime import datetime


class Watch:
    """Remembers when it was started (or reset) and prints the time since then.

    ``message``: printed at creation, after the elapsed time (``show_elapsed``) and/or the
    wall clock (``show_wall_clock``).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        show_elapsed: bool = True,
        show_wall_clock: bool = False,
    ) -> None:
        self.start = datetime.now()
        text = f" {message or ''}\n"
        if show_elapsed:
            self.print_elapsed(text)
        if show_wall_clock:
            self.print_wall_clock(text)

    def reset(self) -> None:
        """Start counting from now."""
        self.start = datetime.now()

    def seconds(self) -> float:
        """Seconds since the start."""
        return (datetime.now() - self.start).total_seconds()

    def elapsed(self) -> str:
        """Seconds since the start as ``SSS.mmm``."""
        return f"{self.seconds():07.3f}"

    def print_elapsed(self, suffix: str = " ") -> None:
        """Print ``SSS.mmm`` and ``suffix`` (no newline unless the suffix has one)."""
        print(f"{self.elapsed()} {suffix}", end="")

    @staticmethod
    def print_wall_clock(suffix: str = " ") -> None:
        """Print the time of day as ``HH:MM:SS.mmm`` and ``suffix``."""
        now = datetime.now()
        print(f"{now:%H:%M:%S}.{now.microsecond // 1000:03d}{suffix}", end="")
