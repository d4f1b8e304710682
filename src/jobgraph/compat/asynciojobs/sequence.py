"""``Sequence``: jobs that run one after the other, usable wherever a job is."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .job import AbstractJob

if TYPE_CHECKING:
    from .purescheduler import PureScheduler


class Sequence:
    """Each job requires the one before it; the first requires ``required``.

    A sequence is not a job of its own: a scheduler holds its jobs, and requiring a
    sequence means requiring its last job. ``scheduler``: add the jobs to it, now and
    when more are appended.
    """

    def __init__(
        self,
        *sequences_or_jobs: Any,
        required: Any = None,
        scheduler: PureScheduler | None = None,
    ) -> None:
        self.jobs: list[AbstractJob] = flatten(sequences_or_jobs)
        for before, after in zip(self.jobs, self.jobs[1:], strict=False):
            after.requires(before)
        if self.jobs and required is not None:
            self.jobs[0].requires(required)
        self.scheduler = scheduler
        if scheduler is not None:
            scheduler.update(self.jobs)

    def append(self, *sequences_or_jobs: Any) -> None:
        """Add jobs or sequences at the end; the first of them requires the current last."""
        new = flatten(sequences_or_jobs)
        if not new:
            return
        if self.jobs:
            new[0].requires(self.jobs[-1])
        self.jobs += new
        if self.scheduler is not None:
            self.scheduler.update(new)

    def requires(self, *requirements: Any) -> Sequence:
        """Add requirements to the first job; returns the sequence."""
        if self.jobs:
            self.jobs[0].requires(*requirements)
        return self

    def close_idle_jobs(self) -> None:
        """Close the jobs that did not run (no 'coroutine never awaited' warnings)."""
        for job in self.jobs:
            if job.is_idle():
                job.close()


def flatten(items: Iterable[Any]) -> list[AbstractJob]:
    """The jobs of a mix of jobs and sequences, in order; ``None`` is skipped."""
    jobs: list[AbstractJob] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, AbstractJob):
            jobs.append(item)
        elif isinstance(item, Sequence):
            jobs += item.jobs
        else:
            raise TypeError(f"expected a job or a Sequence, not {item!r}")
    return jobs
