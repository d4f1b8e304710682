"""``Task``: one call of a builder's method, with an id, inputs and requirements.

The same public names and documented behaviour as ``artron.task``. A task names the
method to call (``func``) on a *builder* given only when it runs, so one task can run on
different builders; ``inputs`` are the method's keyword arguments.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from .utils import strdate, strgmtime

__all__ = ["Task", "TaskDependenciesError"]

LOGGER = logging.getLogger(__name__)


class TaskDependenciesError(Exception):
    """A task was asked to run while it still has requirements."""


class Task:
    """A task to run on a builder: ``getattr(builder, func)(retry=..., **inputs)``.

    Args:
        tid: the task's unique identifier.
        inputs: keyword arguments for the builder's method.
        func: the name of the builder's method to call.
        require: ids of the tasks that must succeed before this one runs: a list (or
            another iterable) of hashable ids, copied; a string is a :class:`TypeError`.

    Attributes:
        tid, inputs, func, require: as given (``require`` is always a list).
        state: one of the ``STATE_*`` constants; ``STATE_INIT`` when created.
        results: the method's return value, or the error's text when it failed.
        date_created, date_start, date_end: artron date strings
            (``'2018-08-29T20:02:39.606Z'``, UTC); the last two are None until it runs.
        time_duration: how long it ran, in seconds.
        time_duration_str: the same as ``'HH:MM:SS'``.
    """

    STATE_WRONG = -3  # asked to run while it still had requirements
    STATE_DEPENDENCY = -2  # a task it requires (directly or not) did not succeed
    STATE_ERROR = -1  # its method raised
    STATE_INIT = 0  # created, not run yet
    STATE_READY = 1  # nothing left to wait for: waiting for a worker
    STATE_RUNNING = 2
    STATE_SUCCESS = 3

    def __init__(
        self, tid: str, inputs: dict[str, Any], func: str, require: list[str] | None = None
    ) -> None:
        self.tid = tid
        self.inputs = inputs
        self.func = func
        self.require: list[str] = check_require(tid, require)
        self.state: int = self.STATE_INIT
        self.results: Any = None
        self.date_created: str = strdate()
        self.date_start: str | None = None
        self.date_end: str | None = None
        self.time_duration_str: str = "00:00:00"
        self.time_duration: float = 0.0

    def __repr__(self) -> str:
        """The task's fields as JSON; it never fails.

        A value JSON cannot hold is shown by its ``repr`` (a field JSON cannot hold as a
        whole, such as a dict with tuple keys or a circular list, likewise).
        """
        fields = (f"{json.dumps(str(k))}: {_json_value(v)}" for k, v in vars(self).items())
        return "{" + ", ".join(fields) + "}"

    def run(self, builder: Any, retry: int) -> None:
        """Run the task once on ``builder``, passing ``retry`` (the attempt number).

        On success ``results`` holds the return value and ``state`` is ``STATE_SUCCESS``.
        An exception is not raised: it is logged with its traceback, ``results`` holds
        its text and ``state`` is ``STATE_ERROR``. Dates and durations are set either way.

        Raises:
            TaskDependenciesError: the task still has requirements (nothing is run).
        """
        if self.require:
            waiting = ", ".join(repr(tid) for tid in self.require)
            raise TaskDependenciesError(f"task {self.tid!r} cannot run: it requires {waiting}")
        self.date_start = strdate()
        self.state = self.STATE_RUNNING
        began = time.perf_counter()
        try:
            self.results = getattr(builder, self.func)(retry=retry, **self.inputs)
            self.state = self.STATE_SUCCESS
        except Exception as err:
            # Like artron, a failure is data (state and text), with the traceback logged.
            LOGGER.error("task %r failed (attempt %d): %s", self.tid, retry, err, exc_info=True)
            self.results = str(err)
            self.state = self.STATE_ERROR
        self.time_duration = time.perf_counter() - began
        self.time_duration_str = strgmtime(self.time_duration)
        self.date_end = strdate()

    def add_require(self, task_id: str) -> None:
        """Make this task require the task ``task_id``."""
        self.require.append(task_id)

    def del_require(self, task_id: str) -> None:
        """Drop the requirement on ``task_id`` (a :class:`ValueError` if there is none)."""
        self.require.remove(task_id)

    def is_runnable(self) -> bool:
        """True when the task is in ``STATE_INIT`` and requires nothing (any more)."""
        return self.state == self.STATE_INIT and not self.require

    def is_finished(self) -> bool:
        """True unless the task is in ``STATE_INIT`` or ``STATE_READY``.

        As in artron, a running task counts as finished here (it has left the queue).
        """
        return self.state not in (self.STATE_INIT, self.STATE_READY)

    def update_childs(self, tasks: Mapping[str, Task]) -> Iterator[dict[str, Task]]:
        """Yield the tasks that change because this task ended, as ``{tid: task}`` items.

        Only tasks in ``STATE_INIT`` that require this one change. If this task
        succeeded, each loses its requirement on it. If it failed (any negative state),
        each is marked ``STATE_DEPENDENCY``, loses the requirement, and the tasks that
        require it are marked in turn, transitively. While this task is running or
        waiting, nothing changes.

        ``tasks`` is left untouched: the yielded tasks are copies (taken once, at the
        first step), for the caller to store back.
        """
        copies = copy.deepcopy(dict(tasks))
        if self.state == self.STATE_SUCCESS:
            for child in _waiting_on(self.tid, copies):
                _drop_requirement(child, self.tid)
                yield {child.tid: child}
        elif self.state < self.STATE_INIT:
            yield from _mark_dependents(self.tid, copies)


def check_require(tid: Any, require: Any) -> list[Any]:
    """``require`` as a new list of task ids, or a :class:`TypeError` naming the task."""
    if require is None:
        return []
    if isinstance(require, (str, bytes)):
        raise TypeError(
            f"task {tid!r}: require must be a list of task ids, not a string; "
            f"write require=[{require!r}]"
        )
    try:
        ids = list(require)
    except TypeError:
        raise TypeError(
            f"task {tid!r}: require must be a list of task ids, not {type(require).__name__}"
        ) from None
    for required in ids:
        check_id(tid, required)
    return ids


def check_id(tid: Any, required: Any) -> None:
    """A :class:`TypeError` naming the task when ``required`` cannot be a task id."""
    try:
        hash(required)
    except TypeError:
        raise TypeError(
            f"task {tid!r} requires {_safe_repr(required)}, which cannot be a task id "
            f"(a {type(required).__name__} is not hashable)"
        ) from None


def _json_value(value: Any) -> str:
    try:
        return json.dumps(value, default=_safe_repr)
    except Exception:  # keys JSON refuses, a circular value, a repr that raises...
        return json.dumps(_safe_repr(value))


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} object>"


def _waiting_on(tid: str, tasks: Mapping[str, Task]) -> list[Task]:
    """The tasks still in ``STATE_INIT`` that require ``tid``."""
    return [t for t in tasks.values() if t.state == Task.STATE_INIT and tid in t.require]


def _drop_requirement(task: Task, tid: str) -> None:
    while tid in task.require:  # a requirement added twice goes entirely
        task.del_require(tid)


def _mark_dependents(failed: str, tasks: Mapping[str, Task]) -> Iterator[dict[str, Task]]:
    """Mark every task that (transitively) requires ``failed`` as a dependency error."""
    pending = [failed]
    while pending:
        parent = pending.pop()
        for child in _waiting_on(parent, tasks):
            # Marked children leave STATE_INIT, so a cycle cannot make this loop forever.
            child.state = Task.STATE_DEPENDENCY
            _drop_requirement(child, parent)
            yield {child.tid: child}
            pending.append(child.tid)
