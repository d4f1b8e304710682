"""The end of a run: every job's ``co_shutdown()``, together, within a timeout."""

from __future__ import annotations

import asyncio
import inspect
import warnings
from typing import TYPE_CHECKING, Any

from .job import AbstractJob, Job

if TYPE_CHECKING:
    from .purescheduler import PureScheduler


def _may_act(job: AbstractJob) -> bool:
    """Whether ``job.co_shutdown()`` may do something (a task per no-op is costly)."""
    method = type(job).co_shutdown
    if method is AbstractJob.co_shutdown:
        return False
    return not (method is Job.co_shutdown and getattr(job, "coshutdown", None) is None)


def _warn(job: AbstractJob, exc: BaseException) -> None:
    warnings.warn(
        f"{job.repr_main()}.co_shutdown() raised {type(exc).__name__}: {exc}",
        RuntimeWarning,
        stacklevel=2,
    )


def _start(job: AbstractJob) -> asyncio.Future[Any] | None:
    """Call ``co_shutdown()``; a task for what it returns if that is awaitable.

    A plain (not async) ``co_shutdown`` has done its work by the time it returns.
    """
    outcome = job.co_shutdown()
    return asyncio.ensure_future(outcome) if inspect.isawaitable(outcome) else None


async def shut_down(sched: PureScheduler) -> bool:
    """True if every ``co_shutdown()`` returned, without raising, within the timeout."""
    fine = True
    tasks: dict[asyncio.Future[Any], AbstractJob] = {}
    for job in sched.jobs:
        if not _may_act(job):
            continue
        try:
            task = _start(job)
        except Exception as exc:
            _warn(job, exc)
            fine = False
            continue
        if task is not None:
            tasks[task] = job
    if not tasks:
        return fine
    sched._log("scheduler is shutting down...")
    done, pending = await asyncio.wait(tasks, timeout=sched.shutdown_timeout)
    for task in done:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            _warn(tasks[task], error)
            fine = False
    if pending:
        sched._log(f"{len(pending)}/{len(tasks)} co_shutdown() did not return in time")
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=3)  # one that ignores cancellation is abandoned
    return fine and not pending
