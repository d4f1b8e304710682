"""``AbstractJob`` and ``Job``: the nodes of an asynciojobs-style graph.

A job knows its requirements and where it is in its life cycle (idle, scheduled,
running, done); what it does is its ``co_run()`` coroutine. Running is the scheduler's
business (see :mod:`.engine`), which writes the life-cycle fields below.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Iterable, Iterator, MutableSet
from typing import TYPE_CHECKING, Any

from ...state import State

if TYPE_CHECKING:
    from .purescheduler import PureScheduler

# Life cycle, as the engine records it (asynciojobs reads it off an asyncio.Task).
IDLE, SCHEDULED, RUNNING, DONE = range(4)


class JobSet(MutableSet[Any]):
    """A set of jobs that remembers insertion order, so listings and names are stable.

    It compares equal to a plain ``set`` with the same jobs, as asynciojobs' sets do.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items: dict[Any, None] = dict.fromkeys(items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, value: Any) -> None:
        """Add ``value`` (no effect if it is already there)."""
        self._items[value] = None

    def discard(self, value: Any) -> None:
        """Remove ``value`` if present."""
        self._items.pop(value, None)

    def remove(self, value: Any) -> None:
        """Remove ``value``; ``KeyError`` if it is not there, as for a set."""
        del self._items[value]

    def update(self, items: Iterable[Any]) -> None:
        """Add every item of ``items``."""
        self._items.update(dict.fromkeys(items))

    def copy(self) -> JobSet:
        """A shallow copy."""
        return JobSet(self._items)

    def __repr__(self) -> str:
        return "{" + ", ".join(map(repr, self._items)) + "}"

    # The methods of ``set`` that scripts call, beyond the operators of the ABC.
    def union(self, *others: Iterable[Any]) -> JobSet:
        """The jobs of this set and of ``others``."""
        result = self.copy()
        for other in others:
            result.update(other)
        return result

    def intersection(self, *others: Iterable[Any]) -> JobSet:
        """The jobs of this set that are in every one of ``others``."""
        keep = [set(other) for other in others]
        return JobSet(j for j in self._items if all(j in k for k in keep))

    def difference(self, *others: Iterable[Any]) -> JobSet:
        """The jobs of this set that are in none of ``others``."""
        drop = set().union(*others)
        return JobSet(j for j in self._items if j not in drop)

    def symmetric_difference(self, other: Iterable[Any]) -> JobSet:
        """The jobs in exactly one of the two sets."""
        theirs = JobSet(other)
        return JobSet(
            [*(j for j in self if j not in theirs), *(j for j in theirs if j not in self)]
        )

    def issubset(self, other: Iterable[Any]) -> bool:
        """Whether every job of this set is in ``other``."""
        return self <= JobSet(other)

    def issuperset(self, other: Iterable[Any]) -> bool:
        """Whether every job of ``other`` is in this set."""
        return self >= JobSet(other)

    def intersection_update(self, *others: Iterable[Any]) -> None:
        """Keep only the jobs that are in every one of ``others``."""
        self._items = self.intersection(*others)._items

    def difference_update(self, *others: Iterable[Any]) -> None:
        """Remove the jobs that are in any of ``others``."""
        self._items = self.difference(*others)._items

    def symmetric_difference_update(self, other: Iterable[Any]) -> None:
        """Keep the jobs in exactly one of the two sets."""
        self._items = self.symmetric_difference(other)._items

    # Set operators of the ABC rebuild through this, keeping the order.
    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> JobSet:
        return cls(it)


@functools.cache
def _sequence_class() -> type:
    from .sequence import Sequence  # sequence.py imports this module

    return Sequence


def _unicode_ok() -> bool:
    """Whether stdout can show the badges' symbols (a C locale cannot)."""
    return _encodes_badges(sys.stdout.encoding or "utf-8")  # stdout may be swapped


@functools.lru_cache(maxsize=8)
def _encodes_badges(encoding: str) -> bool:
    try:
        "\u2613\u21ba\u2691\u2690\u26a0\u2605\u2609\u221e".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


class AbstractJob:
    """A node of the graph: requirements, flags and a life cycle; subclasses add ``co_run``.

    ``forever``: the scheduler does not wait for it and cancels it once the other jobs are
    done. ``critical`` (the default): its exception aborts the scheduler's run; a
    non-critical job's exception is recorded and its dependents still run. ``required``:
    one job, a sequence or any nested collection of them (``None`` ignored).
    ``scheduler``: add the new job to it. ``label``: how listings and graphs show it.
    """

    def __init__(
        self,
        *,
        forever: bool = False,
        critical: bool = True,
        label: Any = None,
        required: Any = None,
        scheduler: PureScheduler | None = None,
    ) -> None:
        self.forever = forever
        self.critical = critical
        self.label = label
        self.required = JobSet()
        if required is not None:
            self.requires(required)
        self._phase = IDLE
        self._running = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._sched_id: str | None = None
        self._s_successors = JobSet()
        self._node: Any = None  # its jobgraph job during a run: tells 'waiting for a slot'
        if scheduler is not None:
            scheduler.add(self)

    # -- requirements -----------------------------------------------------------------

    def requires(self, *requirements: Any, remove: bool = False) -> AbstractJob:
        """Add (or with ``remove=True`` drop) requirements; returns the job.

        Takes jobs, sequences, ``None`` and any nesting of lists, tuples, sets or other
        iterables of them. Removing a requirement that is not there is a ``KeyError``.
        """
        for item in requirements:
            if type(item) is list and not remove:
                self._add_all(item)
            else:
                self._require(item, remove)
        return self

    def _add_all(self, items: list[Any]) -> None:
        """The common case, a list of jobs, without the general walk (large graphs)."""
        add = self.required._items.__setitem__
        for item in items:
            if isinstance(item, AbstractJob) and item is not self:
                add(item, None)
            else:
                self._require(item, False)

    def _require(self, item: Any, remove: bool) -> None:
        if item is None:
            return
        if isinstance(item, AbstractJob):
            if remove:
                self.required.remove(item)
            elif item is not self:  # a job never waits for itself
                self.required.add(item)
        elif isinstance(item, _sequence_class()):
            jobs: list[AbstractJob] = item.jobs  # type: ignore[attr-defined]
            if jobs:
                self._require(jobs[-1], remove)
        elif isinstance(item, (str, bytes)) or not isinstance(item, Iterable):
            raise TypeError(
                f"{self.repr_main()}: a requirement must be a job, a Sequence or a "
                f"collection of them, not {item!r}"
            )
        else:
            for sub in item:
                self._require(sub, remove)

    # -- life cycle -------------------------------------------------------------------

    def is_idle(self) -> bool:
        """True until the job's requirements are met and it is handed to the window."""
        return not self.is_scheduled()

    def is_scheduled(self) -> bool:
        """True once its requirements are met (it may still wait for a window slot)."""
        if self._phase != IDLE or self._running:
            return True
        node = self._node  # READY: waits for a slot; RUNNING: its body is about to start
        return node is not None and (node.state is State.READY or node.state is State.RUNNING)

    def is_running(self) -> bool:
        """True once it got a window slot and started (and still once done)."""
        return self._running

    def is_done(self) -> bool:
        """True once ``co_run()`` returned or raised (not if it was cancelled)."""
        return self._phase == DONE

    def raised_exception(self) -> BaseException | None:
        """The exception ``co_run()`` raised, or None."""
        return self._exception

    def is_critical(self) -> bool:
        """Whether an exception of this job aborts its scheduler's run."""
        return bool(self.critical)

    def result(self) -> Any:
        """What ``co_run()`` returned (None if it raised); ``ValueError`` if not done."""
        if self._phase != DONE:
            raise ValueError(f"job {self._get_text_label()!r} not finished")
        return self._result

    def _forget_run(self) -> None:
        """Back to idle, before a new run of the scheduler."""
        self._phase = IDLE
        self._running = False
        self._result = None
        self._exception = None
        self._node = None

    # -- behaviour, for subclasses ----------------------------------------------------

    async def co_run(self) -> Any:
        """What the job does; subclasses must define it."""
        raise NotImplementedError(f"{type(self).__name__} must define 'async def co_run(self)'")

    async def co_shutdown(self) -> Any:
        """Housekeeping once the enclosing scheduler's run is over; nothing by default."""

    def close(self) -> None:
        """Release resources of a job that will not run (e.g. close a coroutine)."""

    def details(self) -> str | None:
        """Extra text shown by ``list(details=True)``; None by default."""
        return None

    def text_label(self) -> str | None:
        """A one-line description for listings, when no ``label`` is given."""
        return None

    def graph_label(self) -> str | None:
        """A description for graphs (may hold newlines); falls back to the text label."""
        return None

    def standalone_run(self) -> Any:
        """Run just this job's ``co_run()`` in a new event loop (for debugging)."""
        from .purescheduler import in_new_loop

        return in_new_loop(self.co_run, "standalone_run", "co_run")

    # -- representations --------------------------------------------------------------

    def _get_text_label(self) -> str:
        if self.label is not None:
            return str(self.label)
        text = self.text_label()
        return "NOLABEL" if text is None else str(text)

    def _get_graph_label(self) -> str:
        text = self.graph_label()
        if text is not None:
            return str(text)
        return f"{self.repr_id()}: {self._get_text_label()}"

    def repr_id(self) -> str:
        """The job's number in its scheduler's listing, '??' before any listing."""
        return self._sched_id or "??"

    def repr_short(self) -> str:
        """A 7-character badge: critical, exception, life cycle, forever."""
        if _unicode_ok():
            marks = ("\u2613", "\u21ba", "\u2691", "\u2690", "\u26a0", "\u2605", "\u2609", "\u221e")
        else:
            marks = ("x", "o", ".", ">", "!", ":(", ":)", "8")
        done, running, scheduled, idle, crit, boom, alive, forever = marks
        cycle = (
            done
            if self.is_done()
            else running
            if self.is_running()
            else scheduled
            if self.is_scheduled()
            else idle
        )
        blank = " " * len(boom)
        exc = boom if self.raised_exception() else alive if self.is_running() else blank
        first = crit if self.is_critical() else " "
        return f"{first} {exc} {cycle} {forever if self.forever else ' '}"

    def repr_main(self) -> str:
        """``<ClassName `label`>``."""
        return f"<{type(self).__name__} `{self._get_text_label()}`>"

    def repr_result(self) -> str:
        """The outcome: the exception, the result, or ``[not done]``."""
        exc = self.raised_exception()
        if exc:
            kind = "CRIT. EXC." if self.is_critical() else "exception"
            return f"!! {kind} => {type(exc).__name__}:{exc}!!"
        if self.is_done():
            return f"[[ -> {self.result()}]]"
        return "[not done]"

    def repr_requires(self) -> str:
        """``requires={01, 02}`` with the ids of the requirements, or empty."""
        if not self.required:
            return ""
        return "requires={" + ", ".join(r.repr_id() for r in self.required) + "}"

    def __repr__(self) -> str:
        return f"{self.repr_short()} {self.repr_main()} {self.repr_result()} {self.repr_requires()}"

    def dot_style(self) -> dict[str, Any]:
        """Graphviz attributes: rounded unless a scheduler, dashed if forever, red if critical."""
        from .purescheduler import PureScheduler

        styles = [] if isinstance(self, PureScheduler) else ["rounded"]
        if self.forever:
            styles.append("dashed")
        style: dict[str, Any] = {"style": styles, "shape": "box"}
        label = self._get_graph_label()
        if label != "NOLABEL":
            style["label"] = label
        if self.is_critical():
            style.update(color="red", penwidth=2)
        else:
            style["penwidth"] = 0.5
        return style

    # -- helpers of the scheduler's walks ---------------------------------------------

    def _iterate_jobs(self, scan_schedulers: bool) -> Iterator[AbstractJob]:
        yield self

    def _job_count(self) -> int:
        return 1


class Job(AbstractJob):
    """A job made of a coroutine (object): ``Job(fetch(url), label="fetch")``.

    ``coshutdown``: an optional coroutine awaited when the enclosing scheduler shuts down.
    Other keywords are :class:`AbstractJob`'s. A coroutine runs once: running a ``Job``
    a second time is a clear ``RuntimeError``.
    """

    def __init__(self, corun: Any, *args: Any, coshutdown: Any = None, **kwds: Any) -> None:
        if not inspect.isawaitable(corun):
            hint = " (call it: Job(f(...)))" if inspect.iscoroutinefunction(corun) else ""
            raise TypeError(f"Job() needs a coroutine or awaitable, not {corun!r}{hint}")
        self.corun = corun
        self.coshutdown = coshutdown
        self._consumed = False
        super().__init__(*args, **kwds)

    def text_label(self) -> str:
        """``Job[name (...)]`` after the coroutine's function."""
        name = getattr(self.corun, "__name__", None)
        return "Job instance" if name is None else f"Job[{name} (...)]"

    async def co_run(self) -> Any:
        """Await the coroutine and return its result."""
        if self._consumed:
            raise RuntimeError(
                f"job {self._get_text_label()!r} already ran: a coroutine runs once; "
                f"create a new Job to run it again"
            )
        self._consumed = True
        return await self.corun

    async def co_shutdown(self) -> Any:
        """Await ``coshutdown`` if one was given."""
        if self.coshutdown is not None:
            return await self.coshutdown
        return None

    def close(self) -> None:
        """Close the coroutines of a job that will not run (no 'never awaited' warning)."""
        for coro in (self.corun, self.coshutdown):
            close = getattr(coro, "close", None)
            if close is not None and not (coro is self.corun and self._consumed):
                close()
