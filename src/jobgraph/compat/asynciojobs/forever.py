"""Forever jobs, as asynciojobs runs them, on jobgraph's forever jobs.

asynciojobs does not wait for forever jobs and cancels them once the other jobs are done,
as jobgraph does; but a job that requires a forever job waits for it to be *done*, where
jobgraph starts it once the forever job *runs*. So:

- a forever job that some finite job needs (directly or through other jobs) is waited
  for: it becomes an ordinary jobgraph job;
- the others stay jobgraph forever jobs; when one of them requires another, jobgraph is
  not told (it would start it early): the job's body first waits for the other's end;
- a scheduler of forever jobs only runs them until the first one ends (asynciojobs'
  run ends at the first job that ends when none is finite): a finite stand-in job
  waits for that moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .job import AbstractJob

if TYPE_CHECKING:
    from .purescheduler import PureScheduler


class Plan:
    """How one run treats its forever jobs."""

    def __init__(self, jobs: list[AbstractJob], log: PureScheduler | None) -> None:
        finite = [job for job in jobs if not job.forever]
        everlasting = {job for job in jobs if job.forever}
        self.log = log
        self.kept = everlasting - _needed(finite, everlasting)  # stay jobgraph forever jobs
        self.ended = {job: asyncio.Event() for job in self.kept}
        self.first_end = asyncio.Event()
        self.sentinel: Callable[[], Coroutine[Any, Any, None]] | None = (
            self._first_end if everlasting and not finite else None
        )

    def dropped(self, job: AbstractJob, req: AbstractJob) -> bool:
        """Whether the requirement edge is left out of jobgraph's graph (see above)."""
        return job in self.kept and req in self.kept

    def body_of(self, job: AbstractJob) -> Callable[[], Awaitable[Any]]:
        """The body of a forever job kept as such.

        It first waits for the forever jobs it requires to end, then runs, and says
        when it ends.
        """
        from .engine import body_of

        waits = [self.ended[req] for req in job.required if req in self.kept]
        run = body_of(job, self.log)

        async def body() -> Any:
            for ended in waits:
                await ended.wait()
            try:
                return await run()
            finally:
                if job.is_done():  # returned or raised; a cancelled job is not done
                    self.ended[job].set()
                    self.first_end.set()

        return body

    async def _first_end(self) -> None:
        await self.first_end.wait()


def _needed(finite: list[AbstractJob], everlasting: set[AbstractJob]) -> set[AbstractJob]:
    """The forever jobs some finite job requires, directly or through other jobs."""
    if not everlasting:
        return set()
    seen: set[AbstractJob] = set()
    stack = list(finite)
    while stack:
        for req in stack.pop().required:
            if req not in seen:
                seen.add(req)
                stack.append(req)
    return seen & everlasting
