"""Run an asynciojobs-style scheduler as a :class:`jobgraph.Scheduler`.

Each job becomes a ``jobgraph.Job`` whose body awaits the job's ``co_run()`` and records
its life cycle on it. asynciojobs' rules map onto jobgraph's options:

- a non-critical job's exception does not stop its dependents: every job runs with
  ``run_if="done"``; a critical job is ``critical=True``, whose failure aborts the run;
- a job that requires a forever job waits for it to be done, as in asynciojobs, so only
  forever jobs that nothing requires are jobgraph ``forever`` jobs (cancelled at the end);
- ``jobs_window`` is the window (0 means none) and ``timeout`` the run's timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ...job import Job as _JgJob
from ...scheduler import Scheduler as _JgScheduler
from .job import DONE, RUNNING, SCHEDULED, AbstractJob, Job

if TYPE_CHECKING:
    from .purescheduler import PureScheduler

# exit codes of jobgraph's Report (API.md section 4)
_CRITICAL, _TIMED_OUT = 2, 3


async def run(sched: PureScheduler) -> bool:
    """Run ``sched``'s jobs; record the outcome on it and on its jobs; shut them down."""
    sched._failed_critical = False
    sched._failed_timeout = False
    sched._did_shutdown = False
    jobs = list(sched.jobs)
    for job in jobs:
        job._forget_run()
    if not jobs:
        return True
    graph = _translate(sched, jobs)
    sched._log(f"entering co_run() with {len(jobs)} jobs")
    report = await graph.co_run()
    sched.last_report = report
    code = report.exit_code
    if code == _TIMED_OUT:
        sched._failed_timeout = sched.timeout if sched.timeout is not None else True
        sched._log("TIMEOUT occurred")
    elif code == _CRITICAL:
        sched._failed_critical = True
        sched._log("emergency exit upon exception in critical job")
    await sched.co_shutdown()
    return code not in (_CRITICAL, _TIMED_OUT)


def _translate(sched: PureScheduler, jobs: list[AbstractJob]) -> _JgScheduler:
    """One jobgraph job per job, with requirements, flags, window and timeout."""
    required = _required_forever(jobs)
    names: dict[str, int] = {}
    log = sched if sched._talks() else None
    mapped: dict[AbstractJob, _JgJob] = {}
    for job in jobs:
        node = _JgJob(
            _body(job, log),
            name=_unique(names, job._get_text_label()),
            critical=bool(job.critical),
            forever=bool(job.forever) and job not in required,
        )
        # Set after construction: passed to Job(), this known-valid constant would make
        # it check every option again, a third of the translation's time.
        node.run_if = "done"
        mapped[job] = job._node = node
    for job, node in mapped.items():
        if job.required:
            # Inside jobgraph: set the list directly rather than through requires(),
            # which flattens nested specifications this loop does not have.
            node._requires = [mapped[r] if r in mapped else _outside(job, r) for r in job.required]
    window = sched.jobs_window or None
    return _JgScheduler(*mapped.values(), window=window, timeout=sched.timeout)


def _required_forever(jobs: list[AbstractJob]) -> set[AbstractJob]:
    """The forever jobs that some job requires: those are waited for, not cancelled."""
    forever = {job for job in jobs if job.forever}
    if not forever:
        return forever
    return {req for job in jobs for req in job.required if req in forever}


def _outside(job: AbstractJob, req: AbstractJob) -> Any:
    raise ValueError(
        f"{job.repr_main()} requires {req.repr_main()}, which is not in this scheduler: "
        f"add it, or call sanitize() to drop such requirements"
    )


def _unique(seen: dict[str, int], label: str) -> str:
    """A job name from a label: no '/', and ``-2``, ``-3``... for repeats."""
    base = label.replace("/", "\u2215") if "/" in label else label
    base = base if base.strip() else "job"
    count = seen.get(base, 0) + 1
    seen[base] = count
    return base if count == 1 else f"{base}-{count}"


def _body(
    job: AbstractJob, verbose: PureScheduler | None
) -> Callable[[], Coroutine[Any, Any, Any]]:
    """The jobgraph body of ``job``: await ``co_run()``, record what happens on the job."""

    async def body() -> Any:
        job._phase = RUNNING
        job._running = True
        if verbose is not None:
            verbose._log(f"STARTING {job.repr_main()}")
        try:
            value = await job.co_run()
        except Exception as exc:
            job._exception = exc
            job._phase = DONE
            if verbose is not None:
                verbose._log(f"RAISED {job.repr_main()} {exc!r}")
            raise
        except BaseException:
            job._phase = SCHEDULED  # cancelled: scheduled and started, never done
            raise
        job._result = value
        job._phase = DONE
        if verbose is not None:
            verbose._log(f"DONE {job.repr_main()} {job.repr_result()}")
        return value

    return body


def _shuts_down(job: AbstractJob) -> bool:
    """Whether ``job.co_shutdown()`` may do something (a task per no-op is costly)."""
    method = type(job).co_shutdown
    if method is AbstractJob.co_shutdown:
        return False
    return not (method is Job.co_shutdown and getattr(job, "coshutdown", None) is None)


async def shut_down(sched: PureScheduler) -> bool:
    """Await every job's ``co_shutdown()`` together within the shutdown timeout."""
    tasks = [asyncio.ensure_future(job.co_shutdown()) for job in sched.jobs if _shuts_down(job)]
    if not tasks:
        return True
    sched._log("scheduler is shutting down...")
    done, pending = await asyncio.wait(tasks, timeout=sched.shutdown_timeout)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            sched._log(f"a co_shutdown() raised {task.exception()!r}")
    if not pending:
        return True
    sched._log(f"{len(pending)}/{len(tasks)} co_shutdown() did not return in time: cancelled")
    for task in pending:
        task.cancel()
    await asyncio.wait(pending, timeout=3)  # a shutdown ignoring cancellation is abandoned
    return False
