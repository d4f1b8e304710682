"""``Manager``: runs artron tasks, in worker processes, on jobgraph's engine.

The same public names, signature and documented report as ``artron.manager``; what
differs, and why, is listed in docs/migrating.md (the artron section).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, NamedTuple

import jobgraph as jg

from ...plan import did_you_mean
from . import _blocking, _engine
from .task import Task, check_require
from .utils import strdate, strgmtime

__all__ = ["Manager"]

LOGGER = logging.getLogger(__name__)

_INTERRUPTED = 130  # jobgraph's exit code for a run stopped by Ctrl-C
_NAMED_PROBLEMS = 5  # unknown requirements named in full (with a "did you mean")
_STOPPED = (Task.STATE_READY, Task.STATE_RUNNING)  # left by a stopped run: run again
_TO_RUN = (Task.STATE_INIT, *_STOPPED)

# Report keys of the counts, by task state (artron counts no other state).
_COUNTED = {
    Task.STATE_SUCCESS: "success",
    Task.STATE_ERROR: "failures",
    Task.STATE_DEPENDENCY: "deps",
    Task.STATE_INIT: "nrun",
    Task.STATE_RUNNING: "aborted",
    Task.STATE_READY: "ready",
}


class Manager:
    """Runs tasks on a builder in worker processes, honouring their requirements.

    Each task to run (see :meth:`start`) becomes a job of a :class:`jobgraph.Scheduler`;
    its attempts run in a jobgraph worker process (spawn start method), so the builder
    and the tasks (inputs, results) must be picklable: a builder is an instance of a
    class defined at the top level of an importable module (or of a script file guarded
    by ``if __name__ == '__main__':``), or a module (sent by name, imported by the
    worker). Each task gets its own copy of the builder, shared by its attempts.

    Args:
        builder: the object whose methods the tasks name (``getattr(builder, func)``).
        nb_workers: most tasks running at once; the number of CPUs when omitted.
        workers: not supported (jobgraph starts and stops its own worker processes):
            anything but None is a :class:`ValueError`.
        queue: accepted and unused (jobgraph does not pass tasks through a queue).
        run_timeout: seconds for the whole run, counted from :meth:`start`; tasks still
            running then are stopped (their processes killed) and reported as aborted.
        sleep: accepted and unused (artron's polling period: jobgraph does not poll).
        tasks: a mapping to keep the tasks in (task id -> task); a new dict if omitted.
        max_retry: attempts per task (at least 1); each gets ``retry=1, 2, ...``.
        progress: an object with ``update(count)`` and ``close()`` (a progress bar):
            ``update(1)`` as each task succeeds, fails or is skipped, ``close()`` at the end.
    """

    def __init__(
        self,
        builder: Any,
        nb_workers: int | None = None,
        workers: Any = None,
        queue: Any = None,
        run_timeout: float = 3600,
        sleep: float = 1,
        tasks: MutableMapping[str, Task] | None = None,
        max_retry: int = 3,
        progress: Any = None,
    ) -> None:
        if workers is not None:
            raise ValueError(
                "Manager(workers=...) is not supported: jobgraph starts and stops its own "
                "worker processes; pass nb_workers=N to bound how many tasks run at once"
            )
        self.builder = builder
        self.nb_workers = _positive_int("Manager(nb_workers=...)", _default_workers(nb_workers))
        self.workers = None
        self.queue = queue  # kept for scripts that read it back; jobgraph has no queue
        self.run_timeout = _positive_seconds("Manager(run_timeout=...)", run_timeout)
        self.sleep = sleep  # kept likewise: nothing polls
        self.tasks: MutableMapping[str, Task] = {} if tasks is None else tasks
        self.max_retry = _positive_int("Manager(max_retry=...)", max_retry)
        self.progress = progress

    def add(self, task: Task) -> None:
        """Add ``task`` (under its ``tid``, replacing a task of the same id)."""
        self.tasks[task.tid] = task

    def start(self) -> dict[str, Any]:
        """Run the tasks still to run and return the run's report.

        A task that ended ``STATE_SUCCESS`` is not run again and satisfies its
        dependents; one that ended ``STATE_ERROR`` or ``STATE_DEPENDENCY`` is not run
        again and its dependents end ``STATE_DEPENDENCY``; a task in ``STATE_READY`` or
        ``STATE_RUNNING``, left by a run stopped by its timeout or by Ctrl-C, runs again
        (from ``STATE_INIT``, its dates and results cleared), as do the tasks in
        ``STATE_INIT``. A task whose requirement fails ends ``STATE_DEPENDENCY``, as do
        the tasks that require it, transitively; independent tasks go on.

        Returns a dict, its keys in artron's order: ``elapsed`` (``'HH:MM:SS'``),
        ``date_end``, ``date_start`` (artron date strings), ``results`` (counts:
        ``success``, ``failures``, ``deps``, ``nrun``: never ran, ``aborted``: still
        running at the timeout, ``ready``: could start but found no free worker before
        the timeout), ``exit_code`` (0 when every task succeeded, else 1) and ``tasks``:
        one record (a shallow copy of the task's fields) per task, in the order they
        were added.

        Raises, before anything runs: :class:`ValueError` when ``max_retry``,
        ``nb_workers`` or ``run_timeout`` was set to a bad value after ``Manager()``;
        :class:`jobgraph.MissingDependencyError` when a task requires an id that was
        never added; :class:`TypeError` when a requirement cannot be a task id (not
        hashable); :class:`jobgraph.CycleError` when requirements form a cycle;
        :class:`jobgraph.PicklingError` when the builder or a task to run cannot be sent
        to a worker process. No worker process outlives this call, even when Ctrl-C
        stops the run (also from async code): the tasks keep their states, then
        ``KeyboardInterrupt`` is raised once the workers are gone.
        """
        began = time.monotonic()
        date_start = strdate()
        options = self._options()
        tasks = dict(self.tasks)  # one read: a shared dict proxy hands out copies
        self._check(tasks)
        scheduler, tids = self._scheduler(tasks, options)
        self._reset_stopped(tasks, tids.values())  # only once nothing can be refused
        listener = _engine.Listener(tasks, tids, self._publish, self.progress)
        with self._settled(scheduler, tasks, tids):
            try:
                run = _blocking.run_blocking(scheduler, listener, options.nb_workers)
            finally:
                if self.progress is not None and listener.error is None:
                    self.progress.close()
        if listener.error is not None:
            raise listener.error
        if run.exit_code == _INTERRUPTED:
            # jobgraph stopped the run cleanly on Ctrl-C; the script stops, as with artron.
            raise KeyboardInterrupt
        return _report(tasks.values(), date_start, time.monotonic() - began)

    def _options(self) -> _Options:
        """The options, checked again: they may have been changed since ``Manager()``."""
        return _Options(
            _positive_int("Manager.nb_workers", _default_workers(self.nb_workers)),
            _positive_seconds("Manager.run_timeout", self.run_timeout),
            _positive_int("Manager.max_retry", self.max_retry),
        )

    def _check(self, tasks: Mapping[Any, Task]) -> None:
        """Refuse what would fail in the run's machinery: name the culprit instead."""
        _engine.check_picklable(self.builder)
        _check_requirements(tasks)
        for tid, task in tasks.items():
            if _to_run(task):
                _engine.check_inputs(tid, task)

    def _reset_stopped(self, tasks: Mapping[Any, Task], tids: Iterable[Any]) -> None:
        """Tasks a stopped run left READY or RUNNING run again: back to STATE_INIT."""
        for tid in tids:
            if tasks[tid].state in _STOPPED:
                _engine.reset(tasks[tid])
                self._publish(tid, tasks[tid])

    @contextlib.contextmanager
    def _settled(
        self, scheduler: jg.Scheduler, tasks: Mapping[Any, Task], tids: Mapping[str, Any]
    ) -> Iterator[None]:
        """Settle the tasks after the run, however it ended (an error wins over ours)."""
        try:
            yield
        except BaseException:
            try:
                self._settle(scheduler, tasks, tids)
            except Exception:
                LOGGER.exception("could not record the tasks' states after the run")
            raise
        self._settle(scheduler, tasks, tids)

    def _scheduler(
        self, tasks: Mapping[Any, Task], options: _Options
    ) -> tuple[jg.Scheduler, dict[str, Any]]:
        """The tasks as jobs of a validated scheduler, and job name -> id of a task to run."""
        names = _job_names(tasks)
        jobs = {tid: self._job(tid, task, names[tid], options) for tid, task in tasks.items()}
        for tid, task in tasks.items():
            jobs[tid].requires(*(jobs[r] for r in task.require))
        scheduler = jg.Scheduler(
            *jobs.values(), name="artron", window=options.nb_workers, timeout=options.run_timeout
        )
        tids = {name: tid for tid, name in names.items()}
        try:
            scheduler.validate()
        except jg.CycleError as exc:
            raise jg.CycleError([str(tids[name]) for name in exc.cycle]) from None
        running = {name: tid for name, tid in tids.items() if _to_run(tasks[tid])}
        return scheduler, running

    def _job(self, tid: Any, task: Task, name: str, options: _Options) -> jg.Job:
        if _to_run(task):
            return jg.Job(
                _engine.run_attempts,
                _engine.portable(self.builder),
                task,
                options.max_retry,
                name=name,
                executor="process",
            )
        # Ended before this run: a stand-in passes its outcome on to its dependents.
        if task.state == Task.STATE_SUCCESS:
            return jg.Job(_engine.already_succeeded, name=name, executor="thread")
        return jg.Job(_engine.already_ended, tid, name=name, executor="thread")

    def _settle(
        self, scheduler: jg.Scheduler, tasks: Mapping[Any, Task], tids: Mapping[str, Any]
    ) -> None:
        """Write every job's end onto its task once more, after the run.

        The listener did so as each job ended, unless an error (say, from ``progress``)
        made it stop listening: the report must not depend on that. Requirements come
        first, so a task stopped by the timeout sees their final states.
        """
        for job in scheduler.topological_order():
            if job.name in tids:  # else a stand-in for a task that ended before start()
                tid = tids[job.name]
                _engine.apply_outcome(tasks[tid], job, tasks)
                self._publish(tid, tasks[tid])

    def _publish(self, tid: Any, task: Task) -> None:
        # A no-op for a plain dict; a shared dict proxy needs the task stored back.
        self.tasks[tid] = task


class _Options(NamedTuple):
    """The options of one run, checked at its start."""

    nb_workers: int
    run_timeout: float
    max_retry: int


def _to_run(task: Task) -> bool:
    """True for the tasks a run runs: new ones, and those a stopped run left behind."""
    return task.state in _TO_RUN


def _report(tasks: Iterable[Task], date_start: str, elapsed: float) -> dict[str, Any]:
    records = [_record(task) for task in tasks]
    counts = dict.fromkeys(_COUNTED.values(), 0)
    for record in records:
        key = _COUNTED.get(record["state"])
        if key is not None:
            counts[key] += 1
    return {  # artron's key order
        "elapsed": strgmtime(elapsed),
        "date_end": strdate(),
        "date_start": date_start,
        "results": counts,
        "exit_code": 0 if counts["success"] == len(records) else 1,
        "tasks": records,
    }


def _record(task: Task) -> dict[str, Any]:
    """The task's fields, as artron's report lists them.

    A shallow copy: the record and its ``require`` are new, ``inputs`` and ``results``
    are the task's own objects (copying them all could cost much).
    """
    record = dict(vars(task))
    record["require"] = list(task.require)
    return record


def _check_requirements(tasks: Mapping[Any, Task]) -> None:
    """Name the requirements on task ids that were never added (the first few in full)."""
    missing = []
    for tid, task in tasks.items():
        # task.require is a list, unless a script assigned something else: check it again.
        for req in check_require(tid, task.require):
            if req not in tasks:
                missing.append((tid, req))
    if not missing:
        return
    known = [tid for tid in tasks if isinstance(tid, str)]
    problems = [
        f"task {tid!r} requires {req!r}, which was never added{did_you_mean(str(req), known)}"
        for tid, req in missing[:_NAMED_PROBLEMS]
    ]
    if len(missing) > _NAMED_PROBLEMS:
        problems.append(f"and {len(missing) - _NAMED_PROBLEMS} more")
    raise jg.MissingDependencyError("; ".join(problems))


def _job_names(tids: Iterable[str]) -> dict[str, str]:
    """Task id -> job name: the id itself when jobgraph accepts it as a name."""
    tids = list(tids)
    taken = {tid for tid in tids if _usable_name(tid)}
    names: dict[str, str] = {}
    for k, tid in enumerate(tids):
        name = tid
        if not _usable_name(tid):
            # jobgraph names are non-empty strings without '/' (it separates nested names).
            name = f"task-{k}"
            while name in taken:
                name += "'"
            taken.add(name)
        names[tid] = name
    return names


def _usable_name(tid: Any) -> bool:
    return isinstance(tid, str) and bool(tid.strip()) and "/" not in tid


def _default_workers(nb_workers: int | None) -> int:
    return os.cpu_count() or 1 if nb_workers is None else nb_workers


def _positive_int(what: str, value: Any) -> int:
    """``value``, or a :class:`ValueError` naming ``what`` (the argument or attribute)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


def _positive_seconds(what: str, value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, not {value!r}")
    return float(value)
