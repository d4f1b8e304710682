"""The asyncio driver: feeds events to the core and starts job bodies.

The loop reads as prose: while the run is not finished, start what the core says is
ready, wait for something to end, and record it. Job bodies run where their kind
belongs: coroutines on this loop (their first step eagerly, so a coroutine that never
suspends costs no task), plain functions in a thread pool or a worker process, shell
commands as subprocesses in their own process group, nested schedulers as their own run.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import math
import signal
import threading
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import plan as _plan
from .core import RUN_IF_CODES, Core, Spec
from .errors import JobError, MissingDependencyError
from .executors.process import WorkerPool
from .executors.shell import kill_all_groups, run_shell
from .job import CORO_FUNCTION, CORO_OBJECT, FUNCTION, SCHEDULER, SHELL, Job
from .state import State

if TYPE_CHECKING:
    from .report import Report
    from .scheduler import Scheduler

_SUCCEEDED, _FAILED, _TIMED_OUT = State.SUCCEEDED, State.FAILED, State.TIMED_OUT
_CANCELLED = State.CANCELLED
_now = time.time
_FREEZE_AT = 10_000  # graphs from this size on are hidden from the cyclic GC while running


class Attempt:
    """One start of a job's body that has not ended yet."""

    __slots__ = ("cancelled", "future", "pool", "timed_out", "timer")

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.pool: WorkerPool | None = None  # set when the body runs in a worker process
        self.timed_out = False
        self.cancelled = False


class Resources:
    """Pools shared by a run and its nested runs (threads, worker processes)."""

    def __init__(self) -> None:
        self._threads: ThreadPoolExecutor | None = None
        self._processes: WorkerPool | None = None

    @property
    def threads(self) -> ThreadPoolExecutor:
        """The thread pool, started on first use."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(thread_name_prefix="jobgraph")
        return self._threads

    @property
    def processes(self) -> WorkerPool:
        """The worker-process pool, started on first use."""
        if self._processes is None:
            self._processes = WorkerPool()
        return self._processes

    def close(self) -> None:
        """Stop the pools; threads that were abandoned (soft timeouts) are not waited for."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._processes.close()


class Runner:
    """Runs one scheduler's graph once."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        window: Any = ...,
        timeout: Any = ...,
        resources: Any = ...,
        store: Any = ...,
        executor: Any = ...,
        resume: Any = None,
        force: Any = None,
        kill_grace: float | None = None,
        parent: Runner | None = None,
        handle_sigint: bool = False,
    ) -> None:
        from . import options as _opt
        from .scheduler import _check_window

        owner = f"scheduler {scheduler.name!r}"
        self.scheduler = scheduler
        self.window = scheduler.window if window is ... else _check_window(owner, window)
        self.timeout = (
            scheduler.timeout
            if timeout is ...
            else (None if timeout is None else _opt.check_seconds(owner, "timeout", timeout))
        )
        self.pools = (
            scheduler.pools
            if resources is ...
            else (_opt.check_amounts(owner, "resources", resources) or {})
        )
        self.executor = (
            scheduler.executor if executor is ... else _opt.check_executor(owner, executor)
        )
        chosen_store = scheduler.store if store is ... else store
        if chosen_store is not None or resume is not None or force not in (None, False):
            raise NotImplementedError(
                "stores, resume and force are not available in this version of jobgraph"
            )
        self.kill_grace = scheduler.kill_grace if kill_grace is None else kill_grace
        self.parent = parent
        self.handle_sigint = handle_sigint
        self.shared: Resources = parent.shared if parent is not None else Resources()
        self.reason: str | None = None  # why the run stopped early: see Report.why()
        self.stop_kind: str | None = None  # "critical", "timeout", "interrupted", "cancelled"
        self.nested: dict[int, Report] = {}
        self._active: dict[int, Attempt] = {}
        self._retry_timers: dict[int, asyncio.TimerHandle] = {}
        self._waker: asyncio.Future[None] | None = None
        self._interrupts = 0

    # -- the run --------------------------------------------------------------------

    async def run(self) -> Report:
        """Validate, run every job to a terminal state, and build the report."""
        self.plan = plan = self._validate()
        self.jobs = plan.jobs
        self.core = core = Core(self._spec(plan))
        self.loop = asyncio.get_running_loop()
        self.started_at = _now()
        pending = State.PENDING
        for job in plan.jobs:
            if job._attempts or job._state is not pending:
                job._reset()  # ran before: start clean
            job._run = core
        timer = self._arm_global_timeout()
        sigint = self._install_sigint()
        frozen = self.parent is None and len(plan.jobs) >= _FREEZE_AT
        if frozen:
            # The graph is built: keep the cyclic collector from re-traversing it on
            # every full collection during the run (quadratic-looking at a million jobs).
            gc.freeze()
        try:
            core.start()
            self._stamp_ended()
            await self._drive()
        except asyncio.CancelledError:
            self._abort("cancelled", "cancelled")
            await self._settle()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if sigint:
                self.loop.remove_signal_handler(signal.SIGINT)
            if frozen:
                gc.unfreeze()
            self.ended_at = _now()
            self._finalize()
        return self.report()

    async def _drive(self) -> None:
        """While the run is not finished: start what is ready, wait, record."""
        core = self.core
        while not core.finished:
            if core.aborted is not None:
                await self._settle()
                return
            ready = core.dispatch()
            if ready:
                for i in ready:
                    self._start(i)
                continue
            await self._next_event()
        await self._stop_forever_jobs()

    async def _settle(self) -> None:
        """After an abort: stop what runs, wait for it to end, cancel the rest."""
        self._cancel_running()
        while self._active:
            await self._next_event()
        for handle in self._retry_timers.values():
            handle.cancel()
        self._retry_timers.clear()
        self.core.cancel_rest()
        self._stamp_ended()

    async def _stop_forever_jobs(self) -> None:
        for attempt in list(self._active.values()):
            self._stop(attempt)
        while self._active:
            await self._next_event()
        self.core.cancel_rest()
        self._stamp_ended()

    async def _next_event(self) -> None:
        waker = self._waker = self.loop.create_future()
        await waker

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None and not waker.done():
            waker.set_result(None)

    # -- validation and set-up ------------------------------------------------------

    def _validate(self) -> _plan.Plan:
        plan = self.scheduler.plan()
        plan.claim()
        _plan.check_resources(plan, self.pools)
        _plan.check_picklable(plan, self.executor)
        for i, outside in plan.external.items():
            for dep in outside:
                if dep in plan.jobs[i]._data_deps and not dep.state.is_success:
                    raise MissingDependencyError(
                        f"job {plan.jobs[i].name!r} takes the result of {dep.name!r}, which "
                        f"is outside the subgraph and has no result"
                    )
        for job in plan.jobs:
            if job._kind == SCHEDULER:
                job.validate()  # type: ignore[attr-defined]
        plan.claim()  # nested validation may have re-planned shared jobs
        return plan

    def _spec(self, plan: _plan.Plan) -> Spec:
        jobs = plan.jobs
        contended = self.window is not None or any(j.resources for j in jobs)
        return Spec(
            names=[j.name for j in jobs],
            reqs=plan.reqs,
            succs=plan.succs,
            run_if=bytes(RUN_IF_CODES[j.run_if] for j in jobs),
            critical=bytes(j.critical for j in jobs),
            forever=bytes(j.forever for j in jobs),
            resources=[j.resources for j in jobs] if contended else (),
            rank=_ranks(plan) if contended else (),
            window=self.window,
            pools=self.pools,
        )

    def _arm_global_timeout(self) -> asyncio.TimerHandle | None:
        if self.timeout is None:
            return None
        reason = f"timed out after {_seconds(self.timeout)}"
        return self.loop.call_later(self.timeout, self._abort, "timeout", reason)

    def _install_sigint(self) -> bool:
        if not self.handle_sigint or threading.current_thread() is not threading.main_thread():
            return False
        try:
            self.loop.add_signal_handler(signal.SIGINT, self._interrupt)
        except (NotImplementedError, RuntimeError, ValueError):
            return False
        return True

    def _interrupt(self) -> None:
        """First Ctrl-C: stop gracefully and report. Second: stop everything now."""
        self._interrupts += 1
        self._abort("interrupted", "interrupted")
        if self._interrupts > 1:
            kill_all_groups()
            for i, attempt in list(self._active.items()):
                self._stop(attempt)
                self._ended(i, _CANCELLED, note="killed by a second interrupt")

    def _abort(self, kind: str, reason: str) -> None:
        if self.reason is None:
            self.reason, self.stop_kind = reason, kind
        self.core.abort(reason)
        self._wake()

    # -- starting bodies ------------------------------------------------------------

    def _start(self, i: int) -> None:
        job = self.jobs[i]
        job._attempts += 1
        job._t0 = _now()
        try:
            args, kwargs = _arguments(job)
            kind = job._kind
            if kind == CORO_FUNCTION:
                self._step(i, job, job._fn(*args, **kwargs))
            elif kind == FUNCTION:
                self._start_function(i, job, args, kwargs)
            elif kind == CORO_OBJECT:
                self._start_coroutine_object(i, job)
            elif kind == SHELL:
                self._watch(i, job, self.loop.create_task(run_shell(job, self.kill_grace)))  # type: ignore[arg-type]
            else:
                self._watch(i, job, self.loop.create_task(self._run_nested(i, job)))
        except Exception as exc:
            self._ended(i, _FAILED, exc=exc)

    def _step(self, i: int, job: Job, coro: Any) -> None:
        """Run a coroutine's first step now; only one that suspends gets a task."""
        context = contextvars.copy_context()
        try:
            yielded = context.run(coro.send, None)
        except StopIteration as stop:
            self._ended(i, _SUCCEEDED, result=stop.value)
            return
        except Exception as exc:
            self._ended(i, _FAILED, exc=exc)
            return
        task = context.run(self.loop.create_task, _Resume(coro, yielded).wait())
        self._watch(i, job, task)

    def _start_coroutine_object(self, i: int, job: Job) -> None:
        import inspect

        coro = job._fn
        if inspect.getcoroutinestate(coro) != inspect.CORO_CREATED:
            raise RuntimeError(
                f"job {job.name!r} holds a coroutine object that has already run; a coroutine "
                f"can run once: pass the async function (and its arguments) to run it again"
            )
        self._step(i, job, coro)

    def _start_function(self, i: int, job: Job, args: Any, kwargs: Any) -> None:
        if _plan.needs_process(job, self.executor):
            pool = self.shared.processes
            attempt = self._watch(i, job, pool.submit(job._fn, args, kwargs))
            attempt.pool = pool
            return
        call = functools.partial(job._fn, *args, **kwargs)
        chosen = job.executor if job.executor is not None else self.executor
        if chosen is not None and not isinstance(chosen, str):
            # Any concurrent.futures-style executor: submit(fn) -> Future.
            self._watch(i, job, asyncio.wrap_future(chosen.submit(call), loop=self.loop))
            return
        context = contextvars.copy_context()
        future = self.loop.run_in_executor(self.shared.threads, context.run, call)
        self._watch(i, job, future)

    def _watch(self, i: int, job: Job, future: asyncio.Future[Any]) -> Attempt:
        attempt = Attempt()
        attempt.future = future
        self._active[i] = attempt
        if job.timeout is not None:
            attempt.timer = self.loop.call_later(job.timeout, self._time_out, i, attempt)
        future.add_done_callback(functools.partial(self._future_done, i, attempt))
        return attempt

    async def _run_nested(self, i: int, job: Job) -> Report:
        inner = Runner(
            job,  # type: ignore[arg-type]  # SCHEDULER jobs are schedulers
            timeout=None,
            parent=self,
            executor=job.executor if job.executor is not None else self.executor,
        )
        try:
            report = await inner.run()
        finally:
            if hasattr(inner, "ended_at"):
                self.nested[i] = inner.report()
        if not report.ok:
            raise JobError(f"nested scheduler {job.name!r}: {report.why()}", job.name)
        return report

    # -- ending attempts ------------------------------------------------------------

    def _future_done(self, i: int, attempt: Attempt, future: asyncio.Future[Any]) -> None:
        if self._active.get(i) is not attempt:
            return  # this attempt was already recorded (soft timeout, forced stop)
        if attempt.timed_out:
            self._ended(i, _TIMED_OUT, exc=self._timeout_error(i))
        elif attempt.cancelled or future.cancelled():
            self._ended(i, _CANCELLED)
        elif future.exception() is not None:
            self._ended(i, _FAILED, exc=future.exception())
        else:
            self._ended(i, _SUCCEEDED, result=future.result())

    def _time_out(self, i: int, attempt: Attempt) -> None:
        attempt.timed_out = True
        if self._stop(attempt):
            note = (
                "the function ran in a thread (or an executor that cannot stop it): it was "
                "abandoned and may still be running"
            )
            self._ended(i, _TIMED_OUT, exc=self._timeout_error(i), note=note)

    def _timeout_error(self, i: int) -> TimeoutError:
        job = self.jobs[i]
        return TimeoutError(f"job {job.name!r} timed out after {_seconds(job.timeout or 0)}")

    def _stop(self, attempt: Attempt) -> bool:
        """Stop an attempt's body. True when it cannot be stopped (a thread) and is abandoned."""
        future = attempt.future
        if attempt.pool is not None and future is not None:
            attempt.pool.kill(future)
            return False
        if isinstance(future, asyncio.Task):
            future.cancel()
            return False
        if future is not None:
            future.cancel()  # a call still queued in its pool will not start
        return True

    def _cancel_running(self) -> None:
        for i, attempt in list(self._active.items()):
            attempt.cancelled = True
            if self._stop(attempt):
                self._ended(i, _CANCELLED, note="the thread could not be stopped and was abandoned")

    def _ended(
        self,
        i: int,
        state: State,
        *,
        result: Any = None,
        exc: BaseException | None = None,
        note: str | None = None,
    ) -> None:
        """Record the end of an attempt: retry it, or tell the core the job ended."""
        attempt = self._active.pop(i, None)
        if attempt is not None and attempt.timer is not None:
            attempt.timer.cancel()
        job = self.jobs[i]
        job._t1 = _now()
        if exc is not None:
            job._exception = exc
            job._error = _error_text(exc)
        job._note = note
        if (state is _FAILED or state is _TIMED_OUT) and self._may_retry(job):
            self._retry(i, job)
        else:
            job._result = result
            self.core.finish(i, state)
            self._stamp_ended()
            if self.core.aborted is not None and self.reason is None:
                self.reason, self.stop_kind = self.core.aborted, "critical"
        self._wake()

    def _stamp_ended(self) -> None:
        """Give jobs the core ended without running (skipped, cancelled) their end time."""
        ended = self.core.collect()
        if ended:
            now = _now()
            for j in ended:
                job = self.jobs[j]
                if job._t1 is None:
                    job._t1 = now

    def _may_retry(self, job: Job) -> bool:
        return job._attempts <= job.retries and self.core.aborted is None

    def _retry(self, i: int, job: Job) -> None:
        delay = job.retry_delay * job.retry_backoff ** (job._attempts - 1)
        self.core.retry(i, delayed=delay > 0)
        if delay > 0:
            self._retry_timers[i] = self.loop.call_later(delay, self._retry_due, i)

    def _retry_due(self, i: int) -> None:
        self._retry_timers.pop(i, None)
        self.core.wake(i)
        self._wake()

    # -- the end ----------------------------------------------------------------------

    def _finalize(self) -> None:
        core = self.core
        for i, job in enumerate(self.jobs):
            job._state = core.state[i]
            job._causes = core.causes[i]
            job._run = None
            if job._kind == CORO_OBJECT and job._attempts == 0:
                job._fn.close()  # never started: avoid "coroutine was never awaited"
        if self.parent is None:
            self.shared.close()

    def report(self) -> Report:
        """The report of this run (valid once it has ended)."""
        from .report import Report

        return Report.from_run(self)


class _Resume:
    """Carries on a coroutine whose first step already ran (see ``Runner._step``)."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Any, yielded: Any) -> None:
        self.coro = coro
        self.yielded = yielded

    def __await__(self) -> Any:
        coro, value = self.coro, self.yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation travels into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value

    async def wait(self) -> Any:
        """A coroutine that awaits the rest of the job's coroutine (for a Task)."""
        return await self


def _arguments(job: Job) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
    if not job._data_deps:
        return job._args, job._kwargs
    return _substitute(job._args), _substitute(job._kwargs)


def _substitute(value: Any) -> Any:
    """Replace the jobs inside an argument by their results."""
    if isinstance(value, Job):
        return value.result()
    if isinstance(value, tuple):
        return tuple(_substitute(v) for v in value)
    if isinstance(value, list):
        return [_substitute(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return type(value)(_substitute(v) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v) for k, v in value.items()}
    return value


def _ranks(plan: _plan.Plan) -> list[tuple[float, ...]]:
    """Ready-queue keys: higher priority first, then the longest remaining path."""
    from .graph import remaining_path

    path = remaining_path(plan.order, plan.succs, [1.0] * len(plan.jobs))
    return [(-job.priority, -path[i], i) for i, job in enumerate(plan.jobs)]


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _seconds(value: float) -> str:
    return f"{value:g}s" if math.isfinite(value) else str(value)
