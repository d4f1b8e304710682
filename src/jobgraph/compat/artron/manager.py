"""``Manager``: runs artron tasks, in worker processes, on jobgraph's engine.

The same public names, signature and documented report as ``artron.manager``; what
differs, and why, is listed in docs/migrating.md (the artron section).
"""

from __future__ import annotations

import asyncio
import difflib
import math
import os
import time
from collections.abc import Iterable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jobgraph as jg

from . import _engine
from .task import Task
from .utils import strdate, strgmtime

__all__ = ["Manager"]

_INTERRUPTED = 130  # jobgraph's exit code for a run stopped by Ctrl-C

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

    Each task in ``STATE_INIT`` becomes a job of a :class:`jobgraph.Scheduler`; its
    attempts run in a jobgraph worker process (spawn start method), so the builder and
    the tasks (inputs, results) must be picklable: a builder is an instance of a class
    defined at the top level of an importable module (or of a script guarded by
    ``if __name__ == '__main__':``), or a module (sent by name, imported by the worker).
    Each task gets its own copy of the builder, shared by its attempts.

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
        self.nb_workers = _positive_int("nb_workers", _default_workers(nb_workers))
        self.workers = None
        self.queue = queue  # kept for scripts that read it back; jobgraph has no queue
        self.run_timeout = _positive_seconds("run_timeout", run_timeout)
        self.sleep = sleep  # kept likewise: nothing polls
        self.tasks: MutableMapping[str, Task] = {} if tasks is None else tasks
        self.max_retry = _positive_int("max_retry", max_retry)
        self.progress = progress

    def add(self, task: Task) -> None:
        """Add ``task`` (under its ``tid``, replacing a task of the same id)."""
        self.tasks[task.tid] = task

    def start(self) -> dict[str, Any]:
        """Run the tasks in ``STATE_INIT`` and return the run's report.

        A task whose requirement fails ends ``STATE_DEPENDENCY``, as do the tasks that
        require it, transitively; independent tasks go on. Tasks in another state are
        not run again: a requirement on one in ``STATE_SUCCESS`` is met, one in any other
        state makes its dependents end ``STATE_DEPENDENCY``.

        Returns a dict: ``date_start``, ``date_end`` (artron date strings), ``elapsed``
        (``'HH:MM:SS'``), ``exit_code`` (0 when every task succeeded, else 1),
        ``results`` (counts: ``success``, ``failures``, ``deps``, ``aborted``: still
        running at the timeout, ``ready``: could start but found no free worker before
        the timeout, ``nrun``: never ran) and ``tasks``: one record (the task's fields)
        per task, in the order they were added.

        Raises, before anything runs: :class:`jobgraph.MissingDependencyError` when a
        task requires an id that was never added, :class:`jobgraph.CycleError` when
        requirements form a cycle, :class:`jobgraph.PicklingError` when the builder
        cannot be sent to a worker process. No worker process outlives this call, even
        when Ctrl-C stops the run (the tasks keep their states; ``KeyboardInterrupt``
        is raised once the workers are gone).
        """
        began = time.monotonic()
        date_start = strdate()
        tasks = dict(self.tasks)  # one read: a shared dict proxy hands out copies
        _engine.check_picklable(self.builder)
        _check_requirements(tasks)
        scheduler, tids = self._scheduler(tasks)
        listener = _engine.Listener(tasks, tids, self._publish, self.progress)
        try:
            run = _run_blocking(scheduler, listener, self.nb_workers)
        finally:
            if self.progress is not None and listener.error is None:
                self.progress.close()
        self._settle(scheduler, tasks, tids)
        if listener.error is not None:
            raise listener.error
        if run.exit_code == _INTERRUPTED:
            # jobgraph stopped the run cleanly on Ctrl-C; the script stops, as with artron.
            raise KeyboardInterrupt
        return _report(tasks.values(), date_start, time.monotonic() - began)

    def _scheduler(self, tasks: Mapping[str, Task]) -> tuple[jg.Scheduler, dict[str, str]]:
        """The tasks as jobs of a validated scheduler, and job name -> task id."""
        names = _job_names(tasks)
        jobs = {tid: self._job(tid, task, names[tid]) for tid, task in tasks.items()}
        for tid, task in tasks.items():
            jobs[tid].requires(*(jobs[r] for r in task.require))
        scheduler = jg.Scheduler(
            *jobs.values(), name="artron", window=self.nb_workers, timeout=self.run_timeout
        )
        tids = {name: tid for tid, name in names.items()}
        try:
            scheduler.validate()
        except jg.CycleError as exc:
            raise jg.CycleError([str(tids[name]) for name in exc.cycle]) from None
        running = {name: tid for name, tid in tids.items() if tasks[tid].state == Task.STATE_INIT}
        return scheduler, running

    def _job(self, tid: str, task: Task, name: str) -> jg.Job:
        if task.state == Task.STATE_INIT:
            return jg.Job(
                _engine.run_attempts,
                _engine.portable(self.builder),
                task,
                self.max_retry,
                name=name,
                executor="process",
            )
        # Ended before this run: a stand-in passes its outcome on to its dependents.
        if task.state == Task.STATE_SUCCESS:
            return jg.Job(_engine.already_succeeded, name=name, executor="thread")
        return jg.Job(_engine.already_ended, tid, name=name, executor="thread")

    def _settle(
        self, scheduler: jg.Scheduler, tasks: Mapping[str, Task], tids: Mapping[str, str]
    ) -> None:
        """Write every job's end onto its task once more, after the run.

        The listener did so as each job ended, unless an error (say, from ``progress``)
        made it stop listening: the report must not depend on that. Requirements come
        first, so a task stopped by the timeout sees their final states.
        """
        for job in scheduler.topological_order():
            tid = tids.get(job.name)
            if tid is not None:
                _engine.apply_outcome(tasks[tid], job, tasks)
                self._publish(tid, tasks[tid])

    def _publish(self, tid: str, task: Task) -> None:
        # A no-op for a plain dict; a shared dict proxy needs the task stored back.
        self.tasks[tid] = task


def _run_blocking(scheduler: jg.Scheduler, listener: _engine.Listener, workers: int) -> jg.Report:
    """Run ``scheduler`` to its end, even when called from a running event loop."""
    options = {"on_event": listener, "processes": workers}  # as many processes as workers
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return scheduler.run(**options)
    # Called from async code (a notebook, say): artron's start() blocked there, and so does
    # this one, with jobgraph's loop in a thread of its own (Ctrl-C is not caught there).
    with ThreadPoolExecutor(1, thread_name_prefix="artron-start") as pool:
        return pool.submit(scheduler.run, **options).result()


def _report(tasks: Iterable[Task], date_start: str, elapsed: float) -> dict[str, Any]:
    records = [_record(task) for task in tasks]
    counts = dict.fromkeys(_COUNTED.values(), 0)
    for record in records:
        key = _COUNTED.get(record["state"])
        if key is not None:
            counts[key] += 1
    return {
        "date_start": date_start,
        "date_end": strdate(),
        "elapsed": strgmtime(elapsed),
        "exit_code": 0 if counts["success"] == len(records) else 1,
        "results": counts,
        "tasks": records,
    }


def _record(task: Task) -> dict[str, Any]:
    """The task's fields, as artron's report lists them (a copy: later changes stay out)."""
    record = dict(vars(task))
    record["require"] = list(task.require)
    return record


def _check_requirements(tasks: Mapping[str, Task]) -> None:
    """Name every requirement on a task id that was never added."""
    known = [tid for tid in tasks if isinstance(tid, str)]
    problems = [
        f"task {tid!r} requires {req!r}, which was never added{_did_you_mean(req, known)}"
        for tid, task in tasks.items()
        for req in task.require
        if req not in tasks
    ]
    if problems:
        raise jg.MissingDependencyError("; ".join(problems))


def _did_you_mean(word: Any, known: list[str]) -> str:
    close = difflib.get_close_matches(str(word), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Manager({what}=...) must be a positive integer, not {value!r}")
    return value


def _positive_seconds(what: str, value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ValueError(f"Manager({what}=...) must be a positive number of seconds, not {value!r}")
    return float(value)
