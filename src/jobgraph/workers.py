"""Coroutine jobs run on a few worker tasks, not on one task each.

A worker takes jobs from a queue and drives each one's coroutine itself. A job that ends
without suspending (the common case for short jobs) costs no task and no loop step; the
worker goes straight on to the next one, and to the scheduler for more. A job that
suspends keeps its worker — so ``asyncio.current_task()``, ``asyncio.timeout()`` and task
groups inside the job see one task for the job's whole life — and hands the queue to a
new worker. So there are about as many workers as suspended jobs, plus one.

Each job runs in a copy of the context, as it would in a task of its own. Cancelling a
job cancels its worker task; the worker then clears that request (``uncancel``) and lives
on only if the job was not suspended.

Most jobs of a big graph are *quick*: a coroutine function with nothing to arm (no
timeout, no cache, no data to pass). The run queues such a job as its bare index, and
the worker starts it itself; the run learns of its attempt only if it does not end at
its first step (it suspended or raised). A job that ends at once never needed one: nothing
else ran while it did.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, Protocol


class QuickStarts(Protocol):
    """How the run starts and ends its quick jobs (see the module's doc)."""

    def open(self, i: int) -> Any:
        """Start quick job ``i``: its coroutine, or None if it does not start after all."""

    def succeeded(self, i: int, result: Any) -> None:
        """Quick job ``i`` ended at its first step and returned ``result``."""

    def adopt(self, i: int, task: asyncio.Task[Any]) -> Any:
        """Quick job ``i`` suspended or raised in ``task``: give it its attempt now."""


class Worker:
    """Whether a worker task is draining the queue (not held by a suspended job)."""

    __slots__ = ("draining",)

    def __init__(self) -> None:
        self.draining = True


Queued = tuple[int, Any, Any] | int  # (job index, attempt, coroutine), or a quick job's index
_SLICE = 0.02  # seconds a worker may run quick jobs before it lets the loop breathe


class WorkerPool:
    """The queue of coroutine jobs and the worker tasks that drain it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        begin: Callable[[int, Any, asyncio.Task[Any]], bool],
        end: Callable[[int, Any, Any, BaseException | None], None],
        refill: Callable[[], object],
        crash: Callable[[BaseException], None],
        quick: QuickStarts,
        idle: Callable[[], None],
    ) -> None:
        self.loop = loop
        self.queue: deque[Queued] = deque()
        self.draining = 0  # workers free to take the next job
        self._begin = begin  # (i, attempt, task) -> False to skip a job stopped meanwhile
        self._end = end  # (i, attempt, result, exception or None)
        self._refill = refill  # ask the scheduler for more ready jobs
        self._crash = crash  # an unexpected error: the run must stop and say so
        self._quick = quick
        # The run's driver sleeps while workers drain the queue: the last one to stop
        # wakes it, whatever the jobs it ran did (ended the run, or left it waiting).
        self._idle = idle

    def submit(self, i: int, attempt: Any, coro: Any) -> None:
        """Queue a job's coroutine; start a worker if none is free."""
        self.queue.append((i, attempt, coro))
        if not self.draining:
            self._spawn()

    def kick(self) -> None:
        """Start a worker if jobs wait and none is free (after quick jobs were queued)."""
        if self.queue and not self.draining:
            self._spawn()

    def drop_quick(self) -> list[int]:
        """Take the quick jobs out of the queue (the run stops: they never start)."""
        dropped = [item for item in self.queue if item.__class__ is int]
        if dropped:
            kept = [item for item in self.queue if item.__class__ is not int]
            self.queue.clear()
            self.queue.extend(kept)
        return dropped

    def _spawn(self) -> None:
        worker = Worker()
        self.draining += 1
        # Not an eager task even where Python has them: a worker must never start
        # inside the code that is queueing jobs.
        self.loop.create_task(self._work(worker)).add_done_callback(_retrieved)

    async def _work(self, worker: Worker) -> None:
        task = asyncio.current_task()
        assert task is not None
        queue = self.queue
        open_quick, quick_succeeded, adopt = (
            self._quick.open,
            self._quick.succeeded,
            self._quick.adopt,
        )
        slice_end = time.monotonic() + _SLICE
        try:
            while True:
                if not queue:
                    self._refill()
                    if not queue:
                        return
                item = queue.popleft()
                if item.__class__ is int:  # a quick job: started here, see the module's doc
                    i, attempt, coro = item, None, open_quick(item)
                    if coro is None:
                        continue  # it did not start (the run stopped, or the call failed)
                else:
                    i, attempt, coro = item  # type: ignore[misc]
                    if not self._begin(i, attempt, task):
                        coro.close()
                        continue
                # The first step runs here: a job that ends without suspending (most short
                # jobs) then costs no generator. (_step, written out for that common case.)
                context = contextvars.copy_context()  # as a task of its own would have
                try:
                    value = context.run(coro.send, None)
                except StopIteration as stop:
                    if attempt is None:
                        quick_succeeded(i, stop.value)
                    else:
                        self._end(i, attempt, stop.value, None)
                except BaseException as exc:
                    _failed(self, i, attempt if attempt is not None else adopt(i, task), exc)
                else:
                    if attempt is None:
                        attempt = adopt(i, task)
                    await _Drive(self, worker, i, attempt, coro, context, value)
                if not worker.draining:  # it was held by a suspended job: take up again
                    worker.draining = True
                    self.draining += 1
                if time.monotonic() > slice_end:
                    # Let timers, signals and other tasks run between bursts of quick jobs.
                    await asyncio.sleep(0)
                    slice_end = time.monotonic() + _SLICE
        except Exception as exc:  # a bug of ours must stop the run, never hang it
            self._crash(exc)
        finally:
            if worker.draining:
                self.draining -= 1
                if not self.draining:
                    self._idle()

    def handed_off(self, worker: Worker) -> None:
        """A job suspended in ``worker``: someone else must drain the queue."""
        worker.draining = False
        self.draining -= 1
        if not self.queue:
            self._refill()  # what became ready meanwhile (a forever job's dependents)
        if self.queue and not self.draining:
            self._spawn()


def _retrieved(task: asyncio.Task[None]) -> None:
    """Mark a worker's end as seen: a Ctrl-C it passed on is not "never retrieved"."""
    if not task.cancelled():
        task.exception()


class _Drive:
    """Go on with a suspended job's coroutine inside the current worker task."""

    __slots__ = ("attempt", "context", "coro", "i", "pool", "value", "worker")

    def __init__(
        self,
        pool: WorkerPool,
        worker: Worker,
        i: int,
        attempt: Any,
        coro: Any,
        context: contextvars.Context,
        value: Any,
    ) -> None:
        self.pool, self.worker, self.i, self.attempt = pool, worker, i, attempt
        self.coro, self.context, self.value = coro, context, value  # what its first step yielded

    def __await__(self) -> Generator[Any, Any, None]:
        coro, context, value = self.coro, self.context, self.value
        self.pool.handed_off(self.worker)
        done = False
        while not done:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as thrown:  # a cancellation travels into the job
                done, value = _step(self.pool, self.i, self.attempt, context, coro.throw, thrown)
            else:
                done, value = _step(self.pool, self.i, self.attempt, context, coro.send, sent)


def _step(
    pool: WorkerPool, i: int, attempt: Any, context: contextvars.Context, method: Any, arg: Any
) -> tuple[bool, Any]:
    """One step of job ``i``'s coroutine: (True, None) once it has ended and is recorded."""
    try:
        return False, context.run(method, arg)
    except StopIteration as stop:
        pool._end(i, attempt, stop.value, None)
    except BaseException as exc:
        _failed(pool, i, attempt, exc)
    return True, None


def _failed(pool: WorkerPool, i: int, attempt: Any, exc: BaseException) -> None:
    """Record that job ``i``'s coroutine raised ``exc``."""
    pool._end(i, attempt, None, exc)
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        raise exc  # recorded first: the job has its end, the process still stops
