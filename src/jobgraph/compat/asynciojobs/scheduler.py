"""``Scheduler``: a scheduler that is also a job, so schedulers nest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .job import AbstractJob
from .purescheduler import PureScheduler

if TYPE_CHECKING:
    from .watch import Watch


class Scheduler(PureScheduler, AbstractJob):
    """A :class:`PureScheduler` that can be a job of another scheduler.

    Its ``jobs_window`` and ``timeout`` apply to its own jobs. Like any job it is
    critical by default; then ``co_run()`` raises instead of returning False: the
    exception of the critical job that failed, or ``TimeoutError``. The other keywords
    (``critical``, ``forever``, ``label``, ``required``, ``scheduler``) are
    :class:`AbstractJob`'s.
    """

    def __init__(
        self,
        *jobs_or_sequences: Any,
        jobs_window: int | None = None,
        timeout: float | None = None,
        shutdown_timeout: float | None = 1,
        watch: Watch | None = None,
        verbose: bool = False,
        **kwds: Any,
    ) -> None:
        PureScheduler.__init__(
            self,
            *jobs_or_sequences,
            jobs_window=jobs_window,
            timeout=timeout,
            shutdown_timeout=shutdown_timeout,
            watch=watch,
            verbose=verbose,
        )
        AbstractJob.__init__(self, **kwds)

    async def co_run(self) -> Any:
        """Run as a :class:`PureScheduler`; a critical scheduler raises on failure."""
        fine = await PureScheduler.co_run(self)
        if fine or not self.critical:
            return fine
        if self.failed_time_out():
            raise TimeoutError(
                f"critical scheduler {self._get_text_label()!r} timed out after {self.timeout}s"
            )
        for job in self.topological_order():
            exc = job.raised_exception()
            if job.critical and exc is not None:
                raise exc
        raise RuntimeError(f"critical scheduler {self._get_text_label()!r} failed: {self.why()}")

    def check_cycles(self) -> bool:
        """True if neither this scheduler nor any nested one has a cycle."""
        if not PureScheduler.check_cycles(self):
            return False
        return all(job.check_cycles() for job in self.jobs if isinstance(job, PureScheduler))

    def text_label(self) -> str:
        """``Scheduler with N jobs``."""
        return f"{type(self).__name__} with {len(self.jobs)} jobs"

    def dot_cluster_name(self) -> str:
        """The DOT subgraph name of this nested scheduler (DOT wants ``cluster_``)."""
        return f"cluster_{self.repr_id()}"

    def _iterate_jobs(self, scan_schedulers: bool) -> Iterator[Any]:
        return self.iterate_jobs(scan_schedulers)

    def _job_count(self) -> int:
        return 1 + self._total_length()
