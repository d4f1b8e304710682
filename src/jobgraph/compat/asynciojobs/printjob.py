"""``PrintJob``: a job that prints its messages and may then sleep (tutorials, tests)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .job import AbstractJob

if TYPE_CHECKING:
    from .purescheduler import PureScheduler


class PrintJob(AbstractJob):
    """Print ``messages`` (after ``banner`` if given), then sleep ``sleep`` seconds."""

    def __init__(
        self,
        *messages: Any,
        sleep: float | None = None,
        banner: str | None = None,
        scheduler: PureScheduler | None = None,
        label: Any = None,
        required: Any = None,
        critical: bool = True,
        forever: bool = False,
    ) -> None:
        self.messages = messages
        self.sleep = sleep
        self.banner = banner
        super().__init__(
            label=label, required=required, scheduler=scheduler, critical=critical, forever=forever
        )

    async def co_run(self) -> None:
        """Print, then sleep."""
        if self.banner:
            print(self.banner, end=" ")
        print(*self.messages)
        if self.sleep:
            print(f"Sleeping for {self.sleep}s")
            await asyncio.sleep(self.sleep)

    def details(self) -> str:
        """The sleep and the first message."""
        text = f"[+ sleep {self.sleep}s] " if self.sleep else ""
        first = str(self.messages[0]) if self.messages else ""
        return f"{text}msg= {first}{'...' if len(self.messages) > 1 else ''}"
