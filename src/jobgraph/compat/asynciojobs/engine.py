"""Run an asynciojobs-style scheduler as a :class:`jobgraph.Scheduler`.

Each job becomes a ``jobgraph.Job`` whose body awaits the job's ``co_run()`` and records
its life cycle on it. asynciojobs' rules map onto jobgraph's options:

- a non-critical job's exception does not stop its dependents: every job runs with
  ``run_if="done"``; a critical job is ``critical=True``, whose failure aborts the run;
- forever jobs: see :mod:`.forever`;
- ``jobs_window`` and ``timeout`` as :mod:`.checks` translates them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

# Every run of the layer goes through the runner and its report: imported with the layer
# (as asynciojobs imports all of itself), not on the first run, whose timing scripts see.
from ... import report as _report  # noqa: F401
from ... import runner as _runner  # noqa: F401
from ...errors import CycleError
from ...job import Job as _JgJob
from ...scheduler import Scheduler as _JgScheduler
from ...state import State
from . import checks, forever
from .job import DONE, IDLE, RUNNING, SCHEDULED, AbstractJob

if TYPE_CHECKING:
    from .purescheduler import PureScheduler

# exit codes of jobgraph's Report (API.md section 4)
_CRITICAL, _TIMED_OUT = 2, 3


async def run(sched: PureScheduler) -> bool:
    """Run ``sched``'s jobs; record the outcome on it and on its jobs; shut them down."""
    sched._failed_critical = False
    sched._failed_timeout = False
    sched._did_shutdown = False
    sched.last_report = None
    jobs = list(sched.jobs)
    for job in jobs:
        job._forget_run()
    if not jobs:
        return True
    window, timeout = checks.window(sched), checks.timeout(sched)
    checks.nested(sched)
    graph = _translate(sched, jobs, window, timeout)
    if timeout is not None and timeout <= 0:
        code = _TIMED_OUT  # asyncio.wait(timeout=0) returned before any job could start
    else:
        sched._log(f"entering co_run() with {len(jobs)} jobs")
        try:
            report = sched.last_report = await graph.co_run()  # validates first
        except CycleError:
            list(sched.topological_order())  # the same cycle, told with the jobs' labels
            raise
        code = report.exit_code
        _mark_scheduled(jobs)
    if code == _TIMED_OUT:
        sched._failed_timeout = sched.timeout if sched.timeout is not None else True
        sched._log("TIMEOUT occurred", force=True)
    elif code == _CRITICAL:
        sched._failed_critical = True
        sched._log("Emergency exit upon exception in critical job", force=True)
    await sched.co_shutdown()
    return code not in (_CRITICAL, _TIMED_OUT)


def _translate(
    sched: PureScheduler, jobs: list[AbstractJob], window: int | None, timeout: float | None
) -> _JgScheduler:
    """One jobgraph job per job, with requirements, flags, window and timeout."""
    log = sched if sched._talks() else None
    plan = forever.Plan(jobs, log)
    names = _Names()
    mapped: dict[AbstractJob, _JgJob] = {}
    for job in jobs:
        kept = job in plan.kept
        node = _JgJob(
            plan.body_of(job) if kept else body_of(job, log),
            name=names.unique(job._get_text_label()),
            critical=bool(job.critical),
            forever=kept,
        )
        # Set after construction: passed to Job(), this known-valid constant would make
        # it check every option again, a third of the translation's time.
        node.run_if = "done"
        mapped[job] = job._node = node
    for job, node in mapped.items():
        if job.required:
            # Inside jobgraph: set the list directly rather than through requires(),
            # which flattens nested specifications this loop does not have.
            node._requires = [
                mapped[r] if r in mapped else checks.outside(sched, job, r)
                for r in job.required
                if not plan.dropped(job, r)
            ]
    nodes = list(mapped.values())
    if plan.sentinel is not None:
        nodes.append(_JgJob(plan.sentinel, name=names.unique("first forever job ends")))
    name = _name(checks.label_of(sched))
    # An expired timeout (0 or less) never reaches jobgraph: the caller ends the run.
    running_timeout = timeout if timeout is not None and timeout > 0 else None
    return _JgScheduler(*nodes, name=name, window=window, timeout=running_timeout)


def _name(label: str) -> str:
    """A label as a jobgraph name: no '/' (it separates nested names), never blank."""
    base = label.replace("/", "\u2215") if "/" in label else label
    return base if base.strip() else "job"


class _Names:
    """Job names from labels (see :func:`_name`), ``-2``, ``-3``... for repeats, never a clash.

    jobgraph numbers unnamed jobs alike, but in its scheduler's order, which adopting
    requirements can change: here, names follow the asynciojobs scheduler's own order.
    """

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.repeats: dict[str, int] = {}  # label -> suffixes handed out: no rescans

    def unique(self, label: str) -> str:
        """A name for ``label`` that no job of this run has yet."""
        base = _name(label)
        count = self.repeats.get(base, 0)
        name = base if count == 0 else f"{base}-{count + 1}"
        while name in self.used:  # an explicit label looked like a numbered repeat
            count += 1
            name = f"{base}-{count + 1}"
        self.repeats[base] = count + 1
        self.used.add(name)
        return name


def body_of(job: AbstractJob, log: PureScheduler | None) -> Callable[[], Awaitable[Any]]:
    """The jobgraph body of ``job``: await ``co_run()``, keeping its life cycle on the job.

    A closure rather than a function with arguments: jobgraph looks for jobs inside a
    job's arguments, a cost per job that a closure does not have.
    """

    async def body() -> Any:
        job._phase = RUNNING
        job._running = True
        if log is not None:
            log._log(f"STARTING {job.repr_main()}")
        try:
            value = await job.co_run()
        except asyncio.CancelledError as exc:
            if _cancelled_from_outside():
                job._phase = SCHEDULED  # stopped: scheduled and started, never done
            else:  # the job raised CancelledError itself: that is its outcome
                job._exception, job._phase = exc, DONE
            raise
        except Exception as exc:
            job._exception = exc
            job._phase = DONE
            if log is not None:
                log._log(f"RAISED {job.repr_main()} {exc!r}")
            raise
        except BaseException:
            job._phase = SCHEDULED
            raise
        job._result = value
        job._phase = DONE
        if log is not None:
            log._log(f"DONE {job.repr_main()} {job.repr_result()}")
        return value

    return body


def _cancelled_from_outside() -> bool:
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return cancelling is None or cancelling() > 0


def _mark_scheduled(jobs: list[AbstractJob]) -> None:
    """Mark the jobs that were scheduled but never started, as asynciojobs tells them.

    Such a job had all its requirements done (it waited for a window slot, or the run
    stopped first), unless a requirement's critical failure ended the run: asynciojobs
    stopped there and scheduled nothing more.
    """
    for job in jobs:
        node = job._node
        if (
            job._phase == IDLE
            and node is not None
            and node.state is State.CANCELLED
            and all(_done_quietly(req) for req in job.required)
        ):
            job._phase = SCHEDULED


def _done_quietly(job: AbstractJob) -> bool:
    return job.is_done() and not (job.critical and job.raised_exception() is not None)
