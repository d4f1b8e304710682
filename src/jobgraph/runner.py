"""The asyncio driver: feeds events to the core, starts bodies, records to the store.

The loop reads as prose: while the run is not finished, commit what ended, start what
the core says is ready, wait for something to end. Bodies are started and stopped by
:class:`~jobgraph.bodies.BodyStarter`; what is recorded goes through a
:class:`~jobgraph.recorder.Recorder`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import plan as _plan
from .bodies import Attempt, BodyStarter, Pools, QuickLane, seconds
from .core import RUN_IF_CODES, Core, Spec
from .errors import JobError, StoreError
from .executors.reaper import REAPER
from .executors.shell import kill_all_groups
from .job import CORO_FUNCTION, CORO_OBJECT, SHELL, Job
from .recorder import (
    LEASE_SECONDS,
    Kept,
    Print,
    Recorder,
    Remembered,
    Resumed,
    end_batch,
    fetch_outside_results,
)
from .state import TERMINAL, State
from .uptodate import UpToDateChecks
from .workers import WorkerPool

if TYPE_CHECKING:
    from .executors.cluster import DaskSession
    from .report import Report
    from .scheduler import Scheduler

_SUCCEEDED, _FAILED, _TIMED_OUT = State.SUCCEEDED, State.FAILED, State.TIMED_OUT
_CANCELLED, _UP_TO_DATE = State.CANCELLED, State.UP_TO_DATE
_SUCCESS = (_SUCCEEDED, _UP_TO_DATE)
_now = time.time
_OUTPUT_EVERY = 0.5  # seconds between writes of running commands' output to the store
_CHUNK = 4096  # most jobs handed to the workers' queue at once
_FREEZE_AT = 10_000  # graphs from this size on are hidden from the cyclic GC while running

# The SIGINT handler a run replaced, to put back at its end; None when it set none.
_SigintHandler = Callable[[int, Any], Any] | int | None

# An interrupt kept for the next run of this process (a flag in a list: no global statement).
_interrupted_early = [False]


def defer_interrupt() -> None:
    """Interrupt the next run of this process as soon as it can take a Ctrl-C.

    For a process about to start a run (a server's run host): an abort that comes before
    the run has put its own handler in place is kept, rather than lost or raised as
    KeyboardInterrupt in the middle of the run's set-up.
    """
    _interrupted_early[0] = True


def forget_early_interrupt() -> None:
    """Drop an interrupt kept by :func:`defer_interrupt` (its run is over)."""
    _interrupted_early[0] = False


class Runner(UpToDateChecks, BodyStarter):
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
        on_event: Any = None,
        source: Any = None,
        run_id: str | None = None,
        processes: int | None = None,
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
        self.kill_grace = scheduler.kill_grace if kill_grace is None else kill_grace
        self.parent = parent
        self.handle_sigint = handle_sigint
        self.resume = resume
        # Where the graph came from (the command line records its file and options).
        self.source = {"file": source} if isinstance(source, str) else source
        # Progress displays listen here: on_event("start" | "end", runner, index).
        self.on_event: Any = (
            on_event if on_event is not None else (parent.on_event if parent is not None else None)
        )
        self.force = _opt.check_force(owner, force)
        self.run_id = run_id  # chosen by the caller (a run submitted in the background)
        # processes: how many worker processes (default one per core); the artron layer
        # sets it to artron's nb_workers.
        self.shared: Pools = parent.shared if parent is not None else Pools(processes)
        self.prefix = ""  # "outer/" for the jobs of a nested scheduler, in the store
        self.parent_name = ""
        self._beat: asyncio.TimerHandle | None = None
        self._report: Report | None = None
        self.store_spec = scheduler.store if store is ... else store
        self.reason: str | None = None  # why the run stopped early: see Report.why()
        self.stop_kind: str | None = None  # "critical", "timeout", "interrupted", "cancelled"
        self.store_error: StoreError | None = None
        self.crash: BaseException | None = None
        self.nested: dict[int, Report] = {}
        self._active: dict[int, Attempt] = {}
        self._retry_timers: dict[int, asyncio.TimerHandle] = {}
        self._waker: asyncio.Future[None] | None = None
        self._woken = False  # a wake with no waiter: see _wake
        self._interrupts = 0
        self._timer: asyncio.TimerHandle | None = None
        self._resumed: dict[int, Resumed] = {}
        self._fresh: dict[int, Remembered] = {}  # up to date before the run starts
        self._prints: dict[int, Print] = {}  # cached jobs' fingerprints
        self._starting: list[int] = []  # jobs started since the last flush (durable runs)
        self._shells = False  # whether the graph has commands
        self._digests: dict[int, str | None] = {}
        self._unportable = False
        self._pickled: dict[int, bytes] = {}
        self._sources: dict[int, Remembered] = {}
        self._materials: dict[int, str] = {}
        self._result_runs: dict[int, str | None] = {}
        self._made: dict[int, str | None] = {}
        self._matched: str | None = None
        self._whole = False
        self._remote: Callable[[Job], DaskSession | None] | None = None

    # -- the run --------------------------------------------------------------------

    async def run(self) -> Report:
        """Validate, run every job to a terminal state, record it, and build the report."""
        self.loop = asyncio.get_running_loop()
        frozen = self.parent is None and len(self.scheduler._jobs) >= _FREEZE_AT
        with _collector_paused(frozen):
            self.plan = plan = self._validate()
        try:
            await self._prepare(plan, frozen)
        except BaseException:
            if self.parent is None:
                await self.shared.close_remote()  # e.g. a Dask cluster started for nothing
            raise
        core = self.core
        self.started_at = _now()
        self._give_fresh_results(self.started_at)  # they end as the run starts
        self._timer = self._arm_global_timeout()
        heartbeat = self._heartbeat()
        REAPER.enter()  # its helper starts with the first command or worker, if any
        sigint = self._install_sigint()  # last before the try: _close always puts it back
        try:
            core.start()
            self._collect_ended()
            await self._drive()
        except asyncio.CancelledError:
            self._abort("cancelled", "cancelled")
            await self._settle()
            raise
        finally:
            try:
                self._close(heartbeat, sigint, frozen)
                if self.parent is None:
                    await self.shared.close_remote()
            finally:
                REAPER.leave()  # after the pools closed: nothing of ours is left to watch
        if self.store_error is not None:
            raise self.store_error
        if self.crash is not None:
            raise RuntimeError("jobgraph stopped the run after an internal error") from (self.crash)
        return self.report()

    async def _drive(self) -> None:
        """While the run is not finished: commit, start what is ready, wait, record."""
        core = self.core
        while not core.finished:
            if core.aborted is not None:
                await self._settle()
                return
            # Workers pull more work themselves while they drain their queue.
            if self._workers.draining or not self._pump():
                await self._next_event()
        if self._timer is not None:
            self._timer.cancel()  # stopping forever jobs is not part of the run's time
        await self._stop_forever_jobs()

    def _pump(self) -> bool:
        """Commit what ended, then start what is ready; True if anything was started.

        Worker tasks call this too, so that short jobs flow without waking this loop.
        """
        core = self.core
        if core.aborted is not None:
            return False
        self._collect_ended()  # jobs ended since the last pump: stamped, recorded, flushed
        self._flush()
        # Chunks: a fan-out of a million quick jobs needs no million coroutines at once.
        ready = core.dispatch(max(_CHUNK - len(self._workers.queue), 1))
        if ready:
            self._start_all(ready)
        return bool(ready)

    def _start_all(self, ready: list[int]) -> None:
        core, quick, queue = self.core, self._quick, self._workers.queue
        for i in ready:
            if core.aborted is not None:
                core.finish(i, _CANCELLED)  # never started: the run was aborted meanwhile
            elif quick[i]:
                queue.append(i)  # a worker starts it (see workers.py)
            else:
                self._start(i)
        self._collect_ended()  # up-to-date jobs ended as they were met
        self._workers.kick()

    async def _settle(self) -> None:
        """After an abort: stop what runs, wait for it to end, cancel the rest."""
        self._cancel_running()
        await self._wind_down()

    async def _stop_forever_jobs(self) -> None:
        self._cancel_running(forever_only=True)
        await self._wind_down()

    async def _wind_down(self) -> None:
        """Wait for the stopped bodies, cancel what never started, commit it all."""
        while self._active:
            await self._next_event()
        for handle in self._retry_timers.values():
            handle.cancel()
        self._retry_timers.clear()
        self.core.cancel_rest()
        self._collect_ended()
        self._flush()

    async def _next_event(self) -> None:
        if self._woken:  # something happened since the last wait (an abort from a flush)
            self._woken = False
            return
        waker = self._waker = self.loop.create_future()
        await waker
        self._woken = False

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None and not waker.done():
            waker.set_result(None)
        else:
            # Nobody waits yet: the next wait returns at once, so an event that came
            # before it (a store error found by a flush) is never slept through.
            self._woken = True

    # -- set-up ---------------------------------------------------------------------

    def _validate(self) -> _plan.Plan:
        if self.store_spec is not None and self.scheduler.plan().external:
            # A subgraph's data from outside comes from the store when this process has none.
            fetch_outside_results(self.scheduler.plan(), self.store_spec, self.scheduler.name)
        plan = self.scheduler.validate_for(self.pools, self.executor)
        if self.parent is None and isinstance(self.force, (list, tuple, set)):
            # A misspelt name would force nothing and run the cached job's stale result.
            known = self.scheduler._job_names()
            for name in self.force:
                if name not in known:
                    hint = _plan.did_you_mean(name, known)
                    raise ValueError(
                        f"scheduler {self.scheduler.name!r}: force names unknown job {name!r}{hint}"
                    )
        return plan

    async def _prepare(self, plan: _plan.Plan, frozen: bool) -> None:
        """Connect to remote executors, open the record, build the core."""
        self._remote = await self._open_remote(plan)
        with _collector_paused(frozen):
            self.jobs = plan.jobs
            names = plan.names_by_index()  # one view: a durable run reads them all once
            self.rec = self._open_recorder(plan, names)
            self._durable = self.rec.durable
            self._fresh = self._up_to_date_at_start(plan, names)
            spec, self._quick = self._survey(plan, names)
            self.core = core = Core(spec)
            self._workers = WorkerPool(
                self.loop,
                self._coroutine_begins,
                self._coroutine_ended,
                self._pump,
                self._internal_error,
                QuickLane(
                    self.jobs,
                    core,
                    self._active,
                    self._ended,
                    # A list's own append: no call of ours per quick job.
                    self._starting.append if self._durable else None,
                    self._keep_result if self._durable else None,
                ),
                self._wake,
            )
            self._reset_jobs(plan)

    async def _open_remote(self, plan: _plan.Plan) -> Callable[[Job], DaskSession | None] | None:
        """Connect to the Dask clusters this run's jobs go to; None when there are none."""
        default = self.executor
        chosen = _plan.dask_executors(plan.jobs, default)
        if not chosen:
            return None
        await self.shared.open_remote(chosen, self.pools)
        remote = self.shared.remote
        from .executors.cluster import REMOTE_KINDS, DaskExecutor

        def session_for(job: Job) -> DaskSession | None:
            executor = job.executor if job.executor is not None else default
            if job._kind in REMOTE_KINDS and isinstance(executor, DaskExecutor):
                return remote(executor)
            return None  # runs here (a coroutine object, a nested scheduler, another executor)

        return session_for

    def _open_recorder(self, plan: _plan.Plan, names: _plan.NamesByIndex) -> Recorder:
        if self.parent is not None:
            self.prefix = self.parent.prefix + self.parent_name + "/"
            rec = self.parent.rec
            self._resumed = rec.resumed_nested(plan, self.prefix)
            return rec
        rec = Recorder(self.scheduler, self.store_spec)
        rec.run_id = self.run_id
        options = {"window": self.window, "timeout": self.timeout, "force": self.force}
        if self.source:
            options["origin"] = {**self.source, "file": str(Path(self.source["file"]).resolve())}
        self._resumed = rec.begin(plan, names, self.resume, options)
        return rec

    def _reset_jobs(self, plan: _plan.Plan) -> None:
        """Point every job at this run (its index and core), clean from any run before."""
        core, pending = self.core, State.PENDING
        for i, job in enumerate(plan.jobs):
            if job._attempts or job._state is not pending:
                job._reset()  # ran before: start clean
            job._index = i  # validating nested schedulers may have planned shared jobs
            job._run = core
        for i, kept in self._resumed.items():
            plan.jobs[i]._result = kept.result

    def _survey(self, plan: _plan.Plan, view: _plan.NamesByIndex) -> tuple[Spec, bytearray]:
        """The core's spec, and which jobs take the quick lane (see ``QuickLane``)."""
        jobs = plan.jobs
        n = len(jobs)
        run_if, critical, forever, quick = bytearray(n), bytearray(n), bytearray(n), bytearray(n)
        contended = self.window is not None
        # The run allows quick jobs when it has nothing to do at a job's start but record
        # it; a job is quick when it has nothing to arm either (see QuickLane).
        lane = self.on_event is None and self._remote is None
        for i, j in enumerate(jobs):  # one pass, writing only what differs from the default
            if j.run_if != "success":
                run_if[i] = RUN_IF_CODES[j.run_if]
            if j.critical:
                critical[i] = 1
            if j.forever:
                forever[i] = 1
            elif (
                lane
                and j._kind == CORO_FUNCTION
                and not j._data_deps
                and j.timeout is None
                and not (j.cache or j.inputs or j.outputs)
            ):
                quick[i] = 1
            if j.resources:
                contended = True
            if j._kind == SHELL:
                self._shells = True  # their output is kept as they end
        # Every job's name goes to the store: a durable run reads them all at once.
        names: Sequence[str] = view.frozen() if self._durable else view
        return Spec(
            names=names,
            reqs=plan.reqs,
            succs=plan.succs,
            run_if=run_if,
            critical=critical,
            forever=forever,
            resources=[j.resources for j in jobs] if contended else (),
            rank=_ranks(plan) if contended else (),
            window=self.window,
            pools=self.pools,
            done=dict.fromkeys([*self._resumed, *self._fresh], _UP_TO_DATE),
        ), quick

    def _arm_global_timeout(self) -> asyncio.TimerHandle | None:
        if self.timeout is None:
            return None
        reason = f"timed out after {seconds(self.timeout)}"
        return self.loop.call_later(self.timeout, self._abort, "timeout", reason)

    def _heartbeat(self) -> asyncio.TimerHandle | None:
        if self.parent is not None or not self.rec.durable:
            return None

        beats_per_lease = round(LEASE_SECONDS / 3 / _OUTPUT_EVERY)
        count = 0

        def beat() -> None:
            nonlocal count
            count += 1
            try:
                self._keep_output()  # live output for `jobgraph logs --follow`
                if count % beats_per_lease == 0:
                    self.rec.renew()
            except StoreError as exc:
                self._store_failed(exc)
            self._beat = self.loop.call_later(_OUTPUT_EVERY, beat)

        self._beat = self.loop.call_later(_OUTPUT_EVERY, beat)
        return self._beat

    def _keep_output(self) -> None:
        """Write what running commands printed since the last beat."""
        for i in list(self._active):
            job = self.jobs[i]
            if job._kind == SHELL:
                self.rec.output(self.prefix + job.name, job)

    def _install_sigint(self) -> _SigintHandler:
        """Ctrl-C interrupts the run; the handler in place before is put back after it.

        ``signal.signal`` and a thread-safe call into the loop (as ``asyncio.Runner``
        does), not ``loop.add_signal_handler``: that one checks the signal against
        every valid signal, as enums, each time (a millisecond per run), and gives
        back the default handler instead of the one it replaced.
        """
        if not self.handle_sigint or threading.current_thread() is not threading.main_thread():
            return None
        loop, interrupt = self.loop, self._interrupt

        def on_sigint(signum: int, frame: Any) -> None:
            loop.call_soon_threadsafe(interrupt)

        try:
            previous = signal.signal(signal.SIGINT, on_sigint)
        except (ValueError, OSError):
            return None
        if _interrupted_early[0] and self.parent is None:
            forget_early_interrupt()
            loop.call_soon(interrupt)  # it came before this run could take it
        # None: not set from Python; Python's own handler is then the usual one.
        return signal.default_int_handler if previous is None else previous

    def _close(self, heartbeat: Any, sigint: _SigintHandler, frozen: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._beat is not None:
            self._beat.cancel()
        if frozen:
            gc.unfreeze()
        self.ended_at = _now()
        try:
            self._finalize()
        finally:
            # Only once the end is recorded: a Ctrl-C meanwhile is still the run's.
            if sigint is not None:
                signal.signal(signal.SIGINT, sigint)

    # -- stopping the run -----------------------------------------------------------

    def _interrupt(self) -> None:
        """First Ctrl-C: stop gracefully and report. Second: stop everything now."""
        self._interrupts += 1
        self._abort("interrupted", "interrupted")
        if self._interrupts > 1:
            kill_all_groups()
            for i, attempt in list(self._active.items()):
                attempt.cancelled = True
                self._stop(i, attempt)
                self._ended(i, _CANCELLED, note="killed by a second interrupt")

    def _abort(self, kind: str, reason: str) -> None:
        if self.reason is None:
            self.reason, self.stop_kind = reason, kind
        self.core.abort(reason)
        self._wake()

    def _internal_error(self, exc: BaseException) -> None:
        """A bug of jobgraph's own: stop the run and raise it from run(), never hang."""
        if self.crash is None:
            self.crash = exc
        self._abort("crash", f"internal error: {type(exc).__name__}: {exc}")

    def _store_failed(self, exc: StoreError) -> None:
        """A hard store error: stop the run; it ends with the error, never as a success."""
        if self.store_error is None:
            self.store_error = exc
        self._abort("store", f"store error: {exc}")

    def _flush(self) -> None:
        if self.store_error is not None:
            return
        if self._starting:
            self._keep_starts()
        try:
            self.rec.flush()
        except StoreError as exc:
            self._store_failed(exc)

    # -- starting -------------------------------------------------------------------

    def _start(self, i: int) -> None:
        job = self.jobs[i]
        if (job.cache or job.inputs or job.outputs) and self._skip_if_up_to_date(i, job):
            return
        job._attempts += 1
        job._t0 = _now()
        if self.on_event is not None:
            self.on_event("start", self, i)
        if self._durable:
            self._record_start(i)
        try:
            if job._kind == CORO_FUNCTION and not job._data_deps and self._remote is None:
                # The common case, without the general dispatch of _start_body.
                # (**kwargs costs a dict even when empty: most jobs take no keywords.)
                kwargs = job._kwargs
                coro = job._fn(*job._args, **kwargs) if kwargs else job._fn(*job._args)
                self._run_coroutine(i, job, coro)
            else:
                args, kwargs = _arguments(job)
                self._start_body(i, job, args, kwargs)
        except Exception as exc:
            self._ended(i, _FAILED, exc=exc)

    def _record_start(self, i: int) -> None:
        """Note an attempt's start (a durable run's); the next flush records it."""
        self._starting.append(i)  # its time and number are the job's until it starts again

    def _keep_starts(self) -> None:
        """Record the starts of attempts begun since the last flush that did not end.

        An end in the same flush carries its attempt's number and start time: its start
        would say nothing more. (A job starts again only after a flush: a retry is
        dispatched by a later pump, and a pump flushes before it dispatches.)
        """
        state, jobs, names, prefix, rec = (
            self.core.state,
            self.jobs,
            self.core.names,
            self.prefix,
            self.rec,
        )
        for i in self._starting:
            if state[i] not in TERMINAL:
                job = jobs[i]
                assert job._t0 is not None
                rec.started(prefix + names[i], job._attempts, job._t0)
        self._starting.clear()  # the same list: the quick lane holds its append

    def _nested_body(self, i: int, job: Job) -> Any:
        return self._run_nested(i, job)

    async def _run_nested(self, i: int, job: Job) -> Report:
        inner = Runner(
            job,  # type: ignore[arg-type]  # a SCHEDULER job is a Scheduler
            timeout=None,
            parent=self,
            kill_grace=self.kill_grace,
            force=self.force,
            executor=job.executor if job.executor is not None else self.executor,
        )
        inner.parent_name = job.name
        try:
            report = await inner.run()
        finally:
            if hasattr(inner, "ended_at"):
                self.nested[i] = inner.report()
        if not report.ok:
            raise JobError(f"nested scheduler {job.name!r}: {report.why()}", job.name)
        return report

    # -- ending ---------------------------------------------------------------------

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
        if state is _SUCCEEDED and self._durable:
            state, exc = self._keep_result(i, job, result)
        if exc is not None:
            job._exception = exc
            job._error = _error_text(exc)
        job._note = note
        if (state is _FAILED or state is _TIMED_OUT) and self._may_retry(job):
            self._retry(i, job)
        else:
            job._result = result if state is _SUCCEEDED else None
            # Collected (end stamps, records) at the next pump, in one batch, before
            # anything new starts and before the store is flushed.
            self.core.finish(i, state)
            if self.core.aborted is not None and self.reason is None:
                self.reason, self.stop_kind = self.core.aborted, "critical"
        self._wake()

    def _succeeded(self, i: int, attempt: Attempt, result: Any) -> None:
        """A body returned: :meth:`_ended` for a success, without its general cases."""
        if self._durable:
            self._ended(i, _SUCCEEDED, result=result)  # the result is pickled for the store
            return
        del self._active[i]
        if attempt.timer is not None:
            attempt.timer.cancel()
        job = self.jobs[i]
        job._t1 = _now()
        job._note = None
        job._result = result
        self.core.succeeded(i)
        self._wake()

    def _keep_result(self, i: int, job: Job, result: Any) -> tuple[State, Exception | None]:
        """Pickle a result for the store; one that cannot be pickled fails the job."""
        if result is None:
            return _SUCCEEDED, None  # kept as no bytes at all: it reads back as None
        try:
            self._pickled[i] = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            error = TypeError(
                f"the result of job {job.name!r} ({type(result).__name__}) "
                f"cannot be stored: {type(exc).__name__}: {exc}"
            )
            error.__cause__ = exc
            return _FAILED, error
        return _SUCCEEDED, None

    def _collect_ended(self) -> None:
        """Stamp and record every job the core ended since the last call."""
        ended = self.core.collect()
        if not ended:
            return
        now, jobs = _now(), self.jobs
        for j in ended:
            job = jobs[j]
            if job._t1 is None:  # ended without running: skipped, cancelled
                job._t1 = now
        if self.on_event is not None:
            for j in ended:
                self.on_event("end", self, j)
        if not self._durable and not self._prints:  # the common case: nothing to keep
            return
        if self._resumed:  # already recorded as successes of the run being resumed
            ended = [j for j in ended if j not in self._resumed]
        if not self._durable:
            self._remember(ended)
        elif ended:
            core, prefix = self.core, self.prefix
            self.rec.ended(
                end_batch(
                    ended,
                    jobs,
                    core,
                    self.plan.reqs,
                    prefix,
                    Kept(self._pickled, self._prints, self._sources),
                )
            )
            if self._shells:
                for j in ended:
                    if jobs[j]._kind == SHELL:
                        self._output_at_end(prefix + core.names[j], jobs[j])

    def _remember(self, ended: list[int]) -> None:
        """Without a store: keep cached jobs' successes in the scheduler, for its next run."""
        states, jobs, prints = self.core.state, self.jobs, self._prints
        for j in ended:
            print_ = prints.get(j)
            if print_ is None or print_[0] is None or print_[1] is None:
                continue
            if states[j] in _SUCCESS:
                job = jobs[j]
                name = self.prefix + job.name
                self.rec.remember(name, print_[0], print_[1], job._result, print_[2])

    def _output_at_end(self, name: str, job: Job) -> None:
        """Keep the rest of what an ended command printed."""
        try:
            self.rec.output(name, job)
        except StoreError as exc:
            self._store_failed(exc)

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
            causes = core.causes[i]
            if causes:  # else the job's are already empty (fresh, or reset for this run)
                job._causes = causes
            job._run = None
            if job._kind == CORO_OBJECT and job._attempts == 0:
                job._fn.close()  # never started: avoid "coroutine was never awaited"
        if self.parent is None:
            self.shared.close()
            self._finish_record()

    def _finish_record(self) -> None:
        try:
            if self.store_error is None:
                report = self.report()
                snapshot = self._graph_snapshot_to_keep() if report.ok else None
                self.rec.finish(self.ended_at, report.exit_code, report.why(), snapshot)
        except StoreError as exc:
            self.store_error = exc
        finally:
            self.rec.close()

    def report(self) -> Report:
        """The report of this run (valid once it has ended)."""
        from .report import Report

        if self._report is None:
            self._report = Report.from_run(self)
        return self._report


@contextlib.contextmanager
def _collector_paused(big: bool) -> Iterator[None]:
    """For a big graph: no cyclic GC while the plan is built, then hide it from the GC.

    Building the plan allocates a few objects per job and frees none; the collector would
    traverse the whole, growing graph again and again. Frozen, the graph is skipped by
    every collection during the run (``gc.unfreeze()`` when the run ends).
    """
    if not big:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()  # only once the run will go on: the run's end unfreezes
    finally:
        if was_enabled:
            gc.enable()


def _arguments(job: Job) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
    if not job._data_deps:
        return job._args, job._kwargs
    return _substitute(job._args), _substitute(job._kwargs)


def _substitute(value: Any) -> Any:
    """Replace the jobs inside an argument by their results, keeping container types."""
    if isinstance(value, Job):
        return value.result()
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_substitute(v) for v in value]
        if hasattr(value, "_fields"):
            return type(value)(*items)  # a named tuple
        return _rebuild(value, items)
    if isinstance(value, dict):
        return _rebuild(value, {k: _substitute(v) for k, v in value.items()})
    return value


def _rebuild(original: Any, content: Any) -> Any:
    try:
        return type(original)(content)
    except Exception:  # a subclass with another constructor: fall back to its builtin base
        for base in (list, tuple, set, frozenset, dict):
            if isinstance(original, base):
                return base(content)
        raise


def _ranks(plan: _plan.Plan) -> list[tuple[float, ...]]:
    """Ready-queue keys: higher priority first, then the longest remaining path."""
    from .graph import remaining_path

    path = remaining_path(plan.order, plan.succs, [1.0] * len(plan.jobs))
    return [(-job.priority, -path[i], i) for i, job in enumerate(plan.jobs)]


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
