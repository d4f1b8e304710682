"""How artron tasks run on jobgraph's engine (the internals of ``Manager.start``).

Each task becomes a :class:`jobgraph.Job` whose body, :func:`run_attempts`, runs in a
jobgraph worker process and makes the task's attempts there, one after the other, as an
artron worker did. A task that still fails raises :class:`TaskFailed`, so jobgraph marks
its job FAILED and skips its dependents; the exception carries the task's outcome back.
:func:`apply_outcome` then writes each job's end onto its :class:`Task`.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jobgraph as jg

from .task import Task
from .utils import strdate, strgmtime

_S = jg.State
LOGGER = logging.getLogger("jobgraph.compat.artron.task")  # where Task.run logs, too


class Outcome(NamedTuple):
    """What a task's attempts left behind, sent back from the worker process."""

    results: Any
    date_start: str  # when the first attempt started
    date_end: str  # when the last attempt ended
    duration: float  # seconds, all attempts together
    attempts: int


class TaskFailed(Exception):
    """A task failed at each of its attempts; ``outcome`` holds its last error's text."""

    def __init__(self, tid: str, outcome: Outcome) -> None:
        super().__init__(tid, outcome)  # both in args: the exception pickles back whole
        self.tid = tid
        self.outcome = outcome

    def __str__(self) -> str:
        tries = f"{self.outcome.attempts} attempt" + ("s" if self.outcome.attempts > 1 else "")
        return f"task {self.tid!r} failed ({tries}): {self.outcome.results}"


class AlreadyEnded(Exception):
    """A task that had ended (not successfully) before ``start()``: it is not run again."""


class ModuleRef(NamedTuple):
    """A module used as the builder, sent by name (a module cannot be pickled)."""

    name: str


def portable(builder: Any) -> Any:
    """The builder as it can be sent to a worker process: a module goes by its name."""
    if isinstance(builder, types.ModuleType):
        return ModuleRef(builder.__name__)
    return builder


def run_attempts(builder: Any, task: Task, max_retry: int) -> Outcome:
    """Run ``task`` on ``builder`` until it succeeds, at most ``max_retry`` times.

    This is the body of each task's job, run in a jobgraph worker process; ``builder``
    and ``task`` arrive there pickled (copies). Attempts are numbered from 1 and retried
    at once, as artron's workers do. Returns the outcome, or raises :class:`TaskFailed`.
    """
    if isinstance(builder, ModuleRef):
        builder = importlib.import_module(builder.name)
    task.require = []  # jobgraph starts the job only once every requirement succeeded
    date_start = strdate()
    duration = 0.0
    attempt = 0  # the number of the last attempt made, reported in the outcome
    for attempt in range(1, max_retry + 1):
        task.run(builder, retry=attempt)
        duration += task.time_duration
        if task.state == Task.STATE_SUCCESS:
            _check_result(task)  # a result that cannot go back fails the task at once
            break
    outcome = Outcome(task.results, date_start, task.date_end or strdate(), duration, attempt)
    if task.state != Task.STATE_SUCCESS:
        raise TaskFailed(task.tid, outcome)
    return outcome


def _check_result(task: Task) -> None:
    """Fail ``task`` (no further attempt) if its result cannot go back to the parent."""
    try:
        pickle.dumps(task.results, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        message = (
            f"task {task.tid!r} returned a {type(task.results).__name__}, which cannot be "
            f"sent back from the worker process: {type(exc).__name__}: {exc}"
        )
        LOGGER.error("%s", message)
        task.state, task.results = Task.STATE_ERROR, message


def already_succeeded() -> None:
    """Stand-in body for a task that succeeded before ``start()``: it is not run again."""


def already_ended(tid: str) -> None:
    """Stand-in body for a task that ended otherwise before ``start()``: fail its job."""
    raise AlreadyEnded(f"task {tid!r} had already ended without success")


def check_picklable(builder: Any) -> None:
    """Refuse, before anything runs, a builder that cannot reach the worker processes."""
    _check_importable(builder)
    try:
        pickle.dumps(portable(builder))
    except Exception as exc:
        raise jg.PicklingError(
            f"the builder ({type(builder).__name__}) cannot be sent to worker processes: "
            f"{type(exc).__name__}: {exc}; use an instance of a class (or a module) defined "
            f"at the top level of an importable module, holding only picklable attributes"
        ) from exc


def _check_importable(builder: Any) -> None:
    """Refuse a builder from a ``__main__`` that worker processes cannot import again.

    A spawned worker finds ``__main__``'s classes by running the script's file again
    (or importing the module given to ``-m``); code read from stdin, ``-c`` or typed in
    an interactive session has no file, so pickle's reference to it leads nowhere.
    """
    if isinstance(builder, types.ModuleType):
        module, what, fix = builder.__name__, "the builder's functions are", "functions"
    else:
        cls = type(builder)
        module, what, fix = cls.__module__, f"the builder's class {cls.__qualname__} is", "class"
    if module != "__main__" or _main_is_importable():
        return
    raise jg.PicklingError(
        f"{what} defined in __main__, which worker processes cannot import: the code was "
        f"not read from a file (stdin, -c or an interactive session); define the {fix} in "
        f"a module file and import that module"
    )


def _main_is_importable() -> bool:
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if isinstance(name, str) and name != "__main__" and not name.endswith(".__main__"):
        return True  # run with -m: workers import that module
    path = getattr(main, "__file__", None)
    return isinstance(path, str) and os.path.isfile(path)


def check_inputs(tid: Any, task: Task) -> None:
    """Refuse, before anything runs, a task that cannot be sent to a worker process."""
    try:
        pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise jg.PicklingError(_unpicklable(tid, task, exc)) from exc


def _unpicklable(tid: Any, task: Task, exc: Exception) -> str:
    """Name the input that cannot be pickled (or else the task as a whole)."""
    inputs = task.inputs if isinstance(task.inputs, dict) else {}
    for name, value in inputs.items():
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as inner:
            return (
                f"task {tid!r}: input {name!r} ({type(value).__name__}) cannot be pickled for "
                f"a worker process: {type(inner).__name__}: {inner}"
            )
    return f"task {tid!r} cannot be pickled for a worker process: {type(exc).__name__}: {exc}"


def reset(task: Task) -> None:
    """Make a task that a stopped run left READY or RUNNING ready to run again."""
    _set_times(task, Task.STATE_INIT, None, None, 0.0)


def apply_outcome(task: Task, job: jg.Job, tasks: Mapping[str, Task]) -> None:
    """Write the end of ``job`` onto ``task`` in artron's terms (``tasks``: all of them)."""
    state = job.state
    if state in (_S.SUCCEEDED, _S.UP_TO_DATE):
        _set_outcome(task, Task.STATE_SUCCESS, job.result())
    elif state in (_S.FAILED, _S.TIMED_OUT):
        _set_failure(task, job)
    elif state is _S.SKIPPED:
        _set_times(task, Task.STATE_DEPENDENCY, None, None, 0.0)
    elif state is _S.CANCELLED and job.attempts:
        # Stopped by the run's timeout while it ran: artron reports it still RUNNING.
        _set_times(task, Task.STATE_RUNNING, _date(job.started_at), None, 0.0)
    elif state is _S.CANCELLED:
        met = all(_succeeded(tasks.get(tid)) for tid in task.require)
        _set_times(task, Task.STATE_READY if met else Task.STATE_INIT, None, None, 0.0)


def _succeeded(task: Task | None) -> bool:
    return task is not None and task.state == Task.STATE_SUCCESS


def _set_outcome(task: Task, state: int, outcome: Outcome) -> None:
    _set_times(task, state, outcome.date_start, outcome.date_end, outcome.duration)
    task.results = outcome.results


def _set_failure(task: Task, job: jg.Job) -> None:
    exc = job.exception()
    if isinstance(exc, TaskFailed):
        _set_outcome(task, Task.STATE_ERROR, exc.outcome)
        return
    # The task's own code never ran to its end: its worker died, or the builder's method
    # raised a BaseException that is not an Exception (SystemExit, say), out of Task.run.
    duration = job.duration or 0.0
    _set_times(task, Task.STATE_ERROR, _date(job.started_at), _date(job.ended_at), duration)
    task.results = _error_text(exc)


def _error_text(exc: BaseException | None) -> str:
    text = "" if exc is None else str(exc)
    if exc is not None and not isinstance(exc, Exception):
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text or type(exc).__name__


def _set_times(
    task: Task, state: int, date_start: str | None, date_end: str | None, duration: float
) -> None:
    task.state = state
    task.results = None
    task.date_start = date_start
    task.date_end = date_end
    task.time_duration = duration
    task.time_duration_str = strgmtime(duration)


def _date(moment: Any) -> str | None:
    return None if moment is None else strdate(moment)


class Listener:
    """The run's ``on_event``: RUNNING states, task ends and ``progress`` as they happen.

    It never raises into jobgraph's loop: the first error (say, from ``progress``) is
    kept in ``error``, the following events are ignored, and ``start()`` raises it once
    the run is over.
    """

    def __init__(
        self,
        tasks: Mapping[str, Task],
        tids: Mapping[str, Any],
        publish: Callable[[str, Task], None],
        progress: Any,
    ) -> None:
        self.tasks = tasks
        self.tids = tids  # job name -> task id (None is an id), for the tasks this run runs
        self.publish = publish
        self.progress = progress
        self.error: Exception | None = None

    def __call__(self, kind: str, runner: Any, index: int) -> None:
        """Take one event of the run: ``kind`` is ``"start"`` or ``"end"``."""
        if self.error is not None:
            return
        job: jg.Job = runner.jobs[index]
        if job.name not in self.tids:
            return  # a stand-in for a task that ended before start()
        try:
            self._take(kind, self.tids[job.name], job)
        except Exception as exc:
            self.error = exc

    def _take(self, kind: str, tid: Any, job: jg.Job) -> None:
        task = self.tasks[tid]
        if kind == "start":
            task.state = Task.STATE_RUNNING
            task.date_start = strdate()
        else:
            apply_outcome(task, job, self.tasks)
        self.publish(tid, task)
        if kind == "end" and self.progress is not None and _has_ended(task):
            self.progress.update(1)


def _has_ended(task: Task) -> bool:
    """True for the end states of a task that is done (not stopped by the timeout)."""
    return task.state in (Task.STATE_SUCCESS, Task.STATE_ERROR, Task.STATE_DEPENDENCY)
