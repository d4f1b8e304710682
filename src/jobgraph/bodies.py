"""Starting and stopping job bodies: where each kind of job runs, and how it is stopped.

Coroutines run on worker tasks (see ``workers.py``): a short job costs no task of its
own, a job that suspends keeps its worker for its whole life. Plain functions run
in a thread pool, a worker process, or an executor object. Commands run in their own
process group. A timeout or an abort stops each the way it can really be stopped, and
whatever refuses to stop is abandoned after a grace period, so no run ever hangs on it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import plan as _plan
from .executors.shell import run_shell
from .job import CORO_FUNCTION, CORO_OBJECT, FUNCTION, SHELL, Job
from .state import State
from .workers import WorkerPool

if TYPE_CHECKING:
    from .core import Core
    from .executors.cluster import DaskSession
    from .executors.process import WorkerPool as ProcessPool

_SUCCEEDED, _FAILED, _TIMED_OUT = State.SUCCEEDED, State.FAILED, State.TIMED_OUT
_CANCELLED = State.CANCELLED
_ABANDON_AFTER = 3.0  # seconds past the grace period before a stubborn body is given up

THREAD_NOTE = (
    "the function ran in a thread (or an executor that cannot stop it): it was abandoned "
    "and may still be running"
)
IGNORED_NOTE = "the job ignored the request to stop: it was abandoned and may still be running"


class Attempt:
    """One start of a job's body that has not ended yet.

    Its fields are class-level defaults: a start sets none of them (most attempts of
    short jobs never need one).
    """

    future: asyncio.Future[Any] | None = None
    timer: asyncio.TimerHandle | None = None
    pool: ProcessPool | None = None  # set when the body runs in a worker process
    remote = False  # True when the body runs on a Dask worker
    timed_out = False
    cancelled = False


class QuickLane:
    """Starts and ends a run's quick jobs for its workers (see ``workers.py``).

    A quick job is a coroutine function with nothing to arm at its start: no timeout, no
    cache, inputs or outputs, no data to pass, not a forever job, in a run with no
    progress display and no cluster (``Runner._survey`` decides). Its attempt exists only
    once it did not end at its first step. In a durable run its start is recorded with
    the next flush and its result is pickled for the store; one that cannot be fails the
    job the usual way.
    """

    def __init__(
        self,
        jobs: list[Job],
        core: Core,
        active: dict[int, Attempt],
        ended: Callable[..., None],
        recorded: Callable[[int], None] | None,
        kept: Callable[[int, Job, Any], tuple[State, BaseException | None]] | None,
    ) -> None:
        self._jobs, self._core, self._active = jobs, core, active
        self._ended = ended
        # With a store: note a start; pickle a result for it (a failure if it cannot be).
        self._recorded, self._kept = recorded, kept

    def open(self, i: int) -> Any:
        """Start quick job ``i``: its coroutine, or None when it does not start."""
        if self._core.aborted is not None:
            self._ended(i, _CANCELLED)  # stopped while queued: it never starts
            return None
        job = self._jobs[i]
        job._attempts += 1
        job._t0 = time.time()
        if self._recorded is not None:
            self._recorded(i)
        kwargs = job._kwargs  # **kwargs costs a dict even when empty: most jobs take none
        try:
            return job._fn(*job._args, **kwargs) if kwargs else job._fn(*job._args)
        except Exception as exc:
            self._ended(i, _FAILED, exc=exc)
            return None

    def succeeded(self, i: int, result: Any) -> None:
        """Quick job ``i`` returned ``result`` at its first step.

        Its note is already None: only a stopped attempt has one, and such an attempt is
        a usual one that ends the usual way. The driver is not woken: the worker that ran
        this job goes on with what it made ready, and wakes the driver when it stops.
        """
        job = self._jobs[i]
        job._t1 = time.time()
        if self._kept is not None and result is not None:  # (None is kept as no bytes)
            state, exc = self._kept(i, job, result)
            if exc is not None:
                self._ended(i, state, exc=exc)  # it cannot be stored: that fails it
                return
        job._result = result
        self._core.succeeded(i)

    def adopt(self, i: int, task: asyncio.Task[Any]) -> Attempt:
        """Quick job ``i`` suspended or raised in ``task``: from now on, a usual attempt."""
        attempt = Attempt()
        attempt.future = task
        self._active[i] = attempt
        return attempt


class Pools:
    """Thread and worker-process pools shared by a run and its nested runs."""

    def __init__(self, process_workers: int | None = None) -> None:
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPool | None = None
        self._process_workers = process_workers  # None: one per core
        self._remote: dict[int, DaskSession] = {}  # id(DaskExecutor) -> its open session

    @property
    def threads(self) -> ThreadPoolExecutor:
        """The thread pool, started on first use."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(thread_name_prefix="jobgraph")
        return self._threads

    @property
    def processes(self) -> ProcessPool:
        """The worker-process pool, started on first use."""
        if self._processes is None:
            from .executors.process import WorkerPool as ProcessPool  # multiprocessing: lazily

            self._processes = ProcessPool(self._process_workers)
        return self._processes

    def close(self) -> None:
        """Stop the pools; threads that were abandoned (soft timeouts) are not waited for."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._processes.close()

    async def open_remote(self, executors: Iterable[Any], resources: Mapping[str, float]) -> None:
        """Connect to each Dask cluster (starting local ones) before any job is sent there."""
        from .executors.cluster import DaskSession

        loop = asyncio.get_running_loop()
        for executor in executors:
            if id(executor) not in self._remote:
                session = self._remote[id(executor)] = DaskSession(executor, resources)
                # A cluster takes a while; cancelled meanwhile, close_remote() tells the
                # opening thread to close what it opens.
                await asyncio.shield(loop.run_in_executor(None, session.open))

    def remote(self, executor: Any) -> DaskSession:
        """The open session of a Dask executor."""
        return self._remote[id(executor)]

    async def close_remote(self) -> None:
        """Disconnect from the clusters, stopping the local ones (in a thread: it blocks)."""
        sessions = list(self._remote.values())
        self._remote.clear()
        if sessions:
            loop = asyncio.get_running_loop()
            # All at once, and on to the end even if this wait is cancelled.
            closing = [loop.run_in_executor(None, session.close) for session in sessions]
            await asyncio.shield(asyncio.gather(*closing, return_exceptions=True))


class BodyStarter:
    """The part of the runner that starts bodies and stops them (a mixin of Runner)."""

    loop: asyncio.AbstractEventLoop
    jobs: list[Job]
    core: Core
    shared: Pools
    executor: Any
    kill_grace: float
    _active: dict[int, Attempt]
    _workers: WorkerPool
    _remote: Callable[[Job], DaskSession | None] | None

    def _ended(
        self,
        i: int,
        state: State,
        *,
        result: Any = None,
        exc: BaseException | None = None,
        note: str | None = None,
    ) -> None:
        raise NotImplementedError

    def _nested_body(self, i: int, job: Job) -> Any:
        raise NotImplementedError

    def _succeeded(self, i: int, attempt: Attempt, result: Any) -> None:
        raise NotImplementedError

    # -- starting -------------------------------------------------------------------

    def _start_body(self, i: int, job: Job, args: Any, kwargs: Any) -> None:
        kind = job._kind
        if self._remote is not None:  # this run sends some jobs to a Dask cluster
            session = self._remote(job)
            if session is not None:
                attempt = Attempt()
                attempt.remote = True  # its clock starts when a worker takes it, not here
                on_start = functools.partial(self._arm, i, attempt) if job.timeout else None
                body = session.run(job, args, kwargs, self.kill_grace, on_start)
                self._active[i] = attempt
                self._workers.submit(i, attempt, body)
                return
        if kind == CORO_FUNCTION:
            self._run_coroutine(i, job, job._fn(*args, **kwargs))
        elif kind == FUNCTION:
            self._start_function(i, job, args, kwargs)
        elif kind == CORO_OBJECT:
            self._run_coroutine(i, job, _fresh_coroutine(job))
        elif kind == SHELL:
            self._run_coroutine(i, job, run_shell(job, self.kill_grace))  # type: ignore[arg-type]
        else:
            self._run_coroutine(i, job, self._nested_body(i, job))

    def _run_coroutine(self, i: int, job: Job, coro: Any) -> None:
        attempt = Attempt()
        self._active[i] = attempt
        self._workers.submit(i, attempt, coro)

    def _coroutine_begins(self, i: int, attempt: Attempt, task: asyncio.Task[Any]) -> bool:
        """A worker takes the job: False if it was stopped while queued.

        Stopped also means the run was aborted meanwhile: it starts nothing new, and the
        abort ends this attempt as cancelled (it is still without a future).
        """
        if self._active.get(i) is not attempt or self.core.aborted is not None:
            return False
        attempt.future = task
        if self.jobs[i].timeout is not None and not attempt.remote:
            self._arm(i, attempt)
        return True

    def _coroutine_ended(
        self, i: int, attempt: Attempt, result: Any, exc: BaseException | None
    ) -> None:
        ours = attempt.timed_out or attempt.cancelled
        if exc is None and not ours:  # the common case, straight to the record
            if self._active.get(i) is attempt:
                self._succeeded(i, attempt, result)
            return
        if ours:
            _clear_cancels(attempt.future)  # whether the job re-raised them or not
        note = None
        if isinstance(exc, asyncio.CancelledError):
            note = getattr(exc, "note", None)  # stopped here, but its body may go on elsewhere
            exc = (
                None
                if ours
                else asyncio.CancelledError("the job's coroutine was cancelled from inside")
            )
        self._attempt_ended(i, attempt, result, exc, note)

    def _start_function(self, i: int, job: Job, args: Any, kwargs: Any) -> None:
        timed = job.timeout is not None
        if _plan.needs_process(job, self.executor):
            pool = self.shared.processes
            attempt = Attempt()
            attempt.pool = pool
            self._active[i] = attempt
            # The clock starts when a worker takes the call, not while it waits for one.
            on_start = functools.partial(self._arm, i, attempt) if timed else None
            self._watch(i, attempt, pool.submit(job._fn, args, kwargs, on_start=on_start))
            return
        call = (
            functools.partial(job._fn, *args, **kwargs)
            if kwargs
            else functools.partial(job._fn, *args)
        )
        chosen = job.executor if job.executor is not None else self.executor
        if chosen is not None and not isinstance(chosen, str):
            # Any concurrent.futures-style executor: submit(fn) -> Future.
            attempt = self._watch(
                i, Attempt(), asyncio.wrap_future(chosen.submit(call), loop=self.loop)
            )
            if timed:
                self._arm(i, attempt)
            return
        attempt = Attempt()
        if timed:
            call = _announcing(call, self.loop, functools.partial(self._arm, i, attempt))
        context = contextvars.copy_context()
        self._watch(i, attempt, self.loop.run_in_executor(self.shared.threads, context.run, call))

    def _watch(self, i: int, attempt: Attempt, future: asyncio.Future[Any]) -> Attempt:
        attempt.future = future
        self._active[i] = attempt
        future.add_done_callback(functools.partial(self._future_done, i, attempt))
        return attempt

    def _arm(self, i: int, attempt: Attempt) -> None:
        """Start the job's timeout clock (when its body really starts)."""
        timeout = self.jobs[i].timeout
        if timeout is not None and self._active.get(i) is attempt and attempt.timer is None:
            attempt.timer = self.loop.call_later(timeout, self._time_out, i, attempt)

    # -- ending ---------------------------------------------------------------------

    def _future_done(self, i: int, attempt: Attempt, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self._attempt_ended(i, attempt, None, None)
            return
        exc = future.exception()
        result = None if exc is not None else future.result()
        if exc is None and inspect.iscoroutine(result) and self._active.get(i) is attempt:
            # A plain function that returned a coroutine: await it here, on the loop.
            attempt.future = None
            self._workers.submit(i, attempt, result)
            return
        self._attempt_ended(i, attempt, result, exc)

    def _attempt_ended(
        self,
        i: int,
        attempt: Attempt,
        result: Any,
        exc: BaseException | None,
        note: str | None = None,
    ) -> None:
        """An attempt's body ended (or was stopped): record the right terminal state."""
        if self._active.get(i) is not attempt:
            return  # already recorded (a body abandoned at its timeout, a forced stop)
        if attempt.timed_out:
            self._ended(i, _TIMED_OUT, exc=self._timeout_error(i), note=note)
        elif attempt.cancelled:
            self._ended(i, _CANCELLED, note=note)
        elif exc is not None:
            self._ended(i, _FAILED, exc=exc)
        else:
            self._ended(i, _SUCCEEDED, result=result)

    def _timeout_error(self, i: int) -> TimeoutError:
        job = self.jobs[i]
        return TimeoutError(f"job {job.name!r} timed out after {seconds(job.timeout or 0)}")

    # -- stopping -------------------------------------------------------------------

    def _time_out(self, i: int, attempt: Attempt) -> None:
        future = attempt.future
        if self._active.get(i) is not attempt or (future is not None and future.done()):
            return  # the body ended just before: its own end is recorded
        attempt.timed_out = True
        if self._stop(i, attempt):
            self._ended(i, _TIMED_OUT, exc=self._timeout_error(i), note=THREAD_NOTE)

    def _stop(self, i: int, attempt: Attempt) -> bool:
        """Stop an attempt's body. True when it cannot be stopped and is abandoned now."""
        future = attempt.future
        if attempt.pool is not None and future is not None:
            attempt.pool.kill(future)
            return False
        if isinstance(future, asyncio.Task):
            future.cancel()
            give_up = self.kill_grace + _ABANDON_AFTER
            self.loop.call_later(give_up, self._abandon, i, attempt)
            return False
        if future is not None:
            future.cancel()  # a call still queued in its pool will not start
        return True

    def _abandon(self, i: int, attempt: Attempt) -> None:
        """A body asked to stop is still running: record it and go on without it."""
        if self._active.get(i) is attempt:
            state = _TIMED_OUT if attempt.timed_out else _CANCELLED
            exc = self._timeout_error(i) if attempt.timed_out else None
            self._ended(i, state, exc=exc, note=IGNORED_NOTE)

    def _cancel_running(self, *, forever_only: bool = False) -> None:
        if not forever_only:  # quick jobs are never forever jobs
            for i in self._workers.drop_quick():
                self._ended(i, _CANCELLED)  # still queued for a worker: it never starts
        for i, attempt in list(self._active.items()):
            if forever_only and not self.jobs[i].forever:
                continue
            attempt.cancelled = True
            if attempt.future is None and attempt.pool is None:
                self._ended(i, _CANCELLED)  # still queued for a worker: it never starts
            elif self._stop(i, attempt):
                self._ended(i, _CANCELLED, note=THREAD_NOTE)


def _clear_cancels(task: Any) -> None:
    """Leave a worker's task with no cancellation pending once its job took ours."""
    uncancel = getattr(task, "uncancel", None)  # Python 3.11+
    cancelling = getattr(task, "cancelling", None)
    if uncancel is not None and cancelling is not None:
        while cancelling():
            uncancel()


def _fresh_coroutine(job: Job) -> Any:
    coro = job._fn
    if inspect.getcoroutinestate(coro) != inspect.CORO_CREATED:
        raise RuntimeError(
            f"job {job.name!r} holds a coroutine object that has already run; a coroutine "
            f"can run once: pass the async function (and its arguments) to run it again"
        )
    return coro


def _announcing(call: Any, loop: asyncio.AbstractEventLoop, on_start: Any) -> Any:
    """Wrap ``call`` so the loop hears when a thread starts it."""

    def announced() -> Any:
        loop.call_soon_threadsafe(on_start)
        return call()

    return announced


def seconds(value: float) -> str:
    """``30s``, ``0.5s``: a duration as people write it."""
    return f"{value:g}s"
