"""The scheduling core: events in, decisions out. No asyncio, no I/O, no clock.

The core knows jobs only by index. A driver (``runner.py``, or a test) tells it what
happened (:meth:`Core.finish`, :meth:`Core.retry`, :meth:`Core.abort`) and asks what to
start next (:meth:`Core.dispatch`). Each event costs O(1) amortised work plus the edges
it touches: nothing here scans all jobs, except the single sweep that cancels what is
left when an aborted run ends.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from .state import FAILURE, SUCCESS, TERMINAL, TRANSITIONS, State, check_transition

RUN_IF_SUCCESS, RUN_IF_DONE, RUN_IF_FAILURE = 0, 1, 2
RUN_IF_CODES = {"success": RUN_IF_SUCCESS, "done": RUN_IF_DONE, "failure": RUN_IF_FAILURE}

_PENDING, _READY, _RUNNING = State.PENDING, State.READY, State.RUNNING
_SUCCEEDED = State.SUCCEEDED
_SKIPPED, _CANCELLED = State.SKIPPED, State.CANCELLED
_ALL_UP_TO_DATE = frozenset({State.UP_TO_DATE})


@dataclass
class Spec:
    """The static description of a graph that the core schedules."""

    names: Sequence[str]
    reqs: Sequence[Sequence[int]]
    succs: Sequence[Sequence[int]]
    run_if: Sequence[int] = ()
    critical: Sequence[int] = ()  # bytes work: 1 for a critical job
    forever: Sequence[int] = ()
    resources: Sequence[Mapping[str, float] | None] = ()
    rank: Sequence[tuple[float, ...]] = ()  # ready-queue order: smaller starts first
    window: int | None = None
    pools: Mapping[str, float] = field(default_factory=dict)
    # Jobs already ended before the run starts (resumed or up to date).
    done: Mapping[int, State] = field(default_factory=dict)


class Core:
    """Bookkeeping of one run: what is ready, what may start, what a failure skips."""

    def __init__(self, spec: Spec) -> None:
        n = len(spec.names)
        self.spec = spec
        self.names = spec.names
        self.succs = spec.succs
        self.state: list[State] = [_PENDING] * n
        self.causes: list[tuple[str, ...]] = [()] * n
        self._waiting = [len(row) for row in spec.reqs]
        self._any_failed = bytearray(n)  # a requirement FAILED or TIMED_OUT
        self._announced = bytearray(n)  # forever jobs whose dependents were told it runs
        self._run_if = spec.run_if or bytes(n)
        self._critical = spec.critical or bytes(n)
        self._forever = spec.forever or bytes(n)
        self._resources = (
            [
                {pool: Fraction(amount) for pool, amount in wanted.items()} if wanted else None
                for wanted in spec.resources
            ]
            if spec.resources
            else [None] * n
        )
        # Exact arithmetic: floats taken and given back would drift (0.1 + 0.2 ...).
        self._free = {pool: Fraction(size) for pool, size in spec.pools.items()}
        self._blocked: dict[str, list[int]] = {}
        self._window = spec.window
        self._running = 0  # jobs holding a window slot (forever jobs hold none)
        self._contended = spec.window is not None or any(self._resources)
        self._rank = spec.rank
        self._heap: list[tuple[tuple[float, ...], int]] = []
        self._forever_ready: list[int] = []
        self._fifo: deque[int] = deque()
        forever_jobs = bytes(self._forever).count(1)
        self._has_forever = forever_jobs > 0
        self.unfinished = n - forever_jobs
        self.aborted: str | None = None
        self.abort_cause: str | None = None
        self.ended: list[int] = []  # terminal jobs not yet collected by the driver

    # -- queries --------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once every job that is not a forever job has ended."""
        return self.unfinished == 0

    @property
    def running(self) -> int:
        """How many window slots are taken."""
        return self._running

    # -- events ---------------------------------------------------------------------

    def start(self) -> None:
        """Make the jobs with no requirements ready; apply jobs ended in advance."""
        done, n = self.spec.done, len(self.state)
        if len(done) == n and not self._has_forever and set(done.values()) <= _ALL_UP_TO_DATE:
            self._end_all(done)  # a whole graph ended in advance (an unchanged rerun)
            return
        for i, state in done.items():
            self._end(i, state)
        for i, waiting in enumerate(self._waiting):
            if waiting == 0 and self.state[i] is _PENDING:
                self._make_ready(i)

    def _end_all(self, done: Mapping[int, State]) -> None:
        """:meth:`_end` of every job at once, each ``UP_TO_DATE`` (from PENDING, allowed).

        Nobody is left to notify or to make ready, and nothing fails to skip others.
        """
        states = self.state
        for i, ended in done.items():
            states[i] = ended
        self.unfinished = 0
        self.ended.extend(done)

    def dispatch(self, limit: int | None = None) -> list[int]:
        """Return the jobs to start now (marked RUNNING), within window and pools.

        ``limit`` caps how many are handed out at once (the rest stay ready), so a
        driver can start a huge fan-out in chunks instead of holding it all in memory.
        """
        if self.aborted is not None:
            return []
        if not self._contended:
            fifo = self._fifo
            if not fifo:
                return []
            state = self.state
            if limit is None or len(fifo) <= limit:
                batch = [i for i in fifo if state[i] is _READY]
                fifo.clear()
            else:
                popleft = fifo.popleft
                batch = [i for i in (popleft() for _ in range(limit)) if state[i] is _READY]
            if self._has_forever:
                for i in batch:
                    self._to_running(i)
            else:
                for i in batch:
                    state[i] = _RUNNING  # _to_running's case when no job is a forever job
                self._running += len(batch)
            return batch
        return self._dispatch_contended(limit)

    def finish(self, i: int, state: State) -> None:
        """Job ``i`` ended in terminal ``state``: release what it held, update dependents."""
        if self.state[i] is _RUNNING:
            if self._resources[i] or self._forever[i]:
                self._release(i)
            else:
                self._running -= 1  # _release's common case: a window slot, no pools
        self._end(i, state)
        if state in FAILURE and self._critical[i] and self.aborted is None:
            self.abort(
                f"critical job {self.names[i]!r} {state.name.lower().replace('_', ' ')}",
                cause=self.names[i],
            )

    def succeeded(self, i: int) -> None:
        """``finish(i, SUCCEEDED)``, with its common case written out.

        That case, a running job that holds no pool and is not a forever job, is most
        of a big run's events: it gives back its window slot and counts down its
        dependents, making ready those that waited only for it.
        """
        state = self.state
        if state[i] is not _RUNNING or self._resources[i] or self._forever[i]:
            self.finish(i, _SUCCEEDED)
            return
        self._running -= 1
        state[i] = _SUCCEEDED
        self.unfinished -= 1
        self.ended.append(i)
        waiting, run_if = self._waiting, self._run_if
        fifo = None if self._contended else self._fifo
        for j in self.succs[i]:
            if state[j] is _PENDING:  # else ended (skipped) or made ready by a forever job
                left = waiting[j] - 1
                waiting[j] = left
                if left == 0:
                    if run_if[j] == RUN_IF_FAILURE:
                        self._requirements_ended(j)
                    elif fifo is not None:
                        state[j] = _READY  # _make_ready, written out for a plain run
                        fifo.append(j)
                    else:
                        self._make_ready(j)

    def retry(self, i: int, delayed: bool) -> None:
        """Job ``i`` failed an attempt and will run again (after a delay if ``delayed``)."""
        self._release(i)
        if delayed:
            self._set(i, _PENDING)
        else:
            self._set(i, _READY)
            self._push(i)

    def wake(self, i: int) -> None:
        """A retry's delay is over: job ``i`` is ready again."""
        if self.state[i] is _PENDING:
            self._set(i, _READY)
            self._push(i)

    def abort(self, reason: str, cause: str | None = None) -> None:
        """Start nothing new; the driver cancels what runs, then calls :meth:`cancel_rest`."""
        if self.aborted is None:
            self.aborted = reason
            self.abort_cause = cause

    def cancel_rest(self) -> None:
        """End every job that has not ended (and is not running) as CANCELLED."""
        if not self.unfinished and not self._has_forever:
            return  # every job has ended: no sweep at the end of a run that went well
        state = self.state
        for i in range(len(state)):
            if state[i] not in TERMINAL and state[i] is not _RUNNING:
                self._end(i, _CANCELLED)

    def collect(self) -> list[int]:
        """Hand the driver the jobs that ended since the last call."""
        ended, self.ended = self.ended, []
        return ended

    # -- internals ------------------------------------------------------------------

    def _set(self, i: int, new: State) -> None:
        check_transition(self.names[i], self.state[i], new)
        self.state[i] = new

    def _make_ready(self, i: int) -> None:
        # Only ever called for a PENDING job (a legal move): no table lookup on this path.
        self.state[i] = _READY
        self._push(i)

    def _push(self, i: int) -> None:
        if not self._contended:
            self._fifo.append(i)
        elif self._forever[i]:
            self._forever_ready.append(i)  # they take no slot: no need to queue by rank
        else:
            heapq.heappush(self._heap, (self._rank[i] if self._rank else (0.0,), i))

    def _to_running(self, i: int) -> None:
        self.state[i] = _RUNNING  # dispatch hands out READY jobs only: a legal move
        if self._forever[i]:
            # A forever job satisfies its dependents once it is running (the first time).
            if not self._announced[i]:
                self._announced[i] = 1
                self._notify(i, State.SUCCEEDED)
        else:
            self._running += 1

    def _dispatch_contended(self, limit: int | None) -> list[int]:
        batch = self._dispatch_forever() if self._forever_ready else []
        heap, window = self._heap, self._window
        room = limit if limit is not None else len(heap)
        while heap and (window is None or self._running < window) and len(batch) < room:
            _, i = heapq.heappop(heap)
            if self.state[i] is not _READY:
                continue  # ended while queued (a forever requirement failed)
            short = self._short_pool(i)
            if short is not None:
                self._blocked.setdefault(short, []).append(i)
                continue
            self._take(i)
            self._to_running(i)
            batch.append(i)
        return batch

    def _dispatch_forever(self) -> list[int]:
        """Forever jobs take no window slot: they start as soon as their pools allow."""
        started, waiting = [], []
        for i in self._forever_ready:
            if self.state[i] is not _READY:
                continue
            if self._short_pool(i) is None:
                self._take(i)
                self._to_running(i)
                started.append(i)
            else:
                waiting.append(i)
        self._forever_ready = waiting
        return started

    def _short_pool(self, i: int) -> str | None:
        wanted = self._resources[i]
        if wanted:
            for pool, amount in wanted.items():
                if self._free[pool] < amount:
                    return pool
        return None

    def _take(self, i: int) -> None:
        wanted = self._resources[i]
        if wanted:
            for pool, amount in wanted.items():
                self._free[pool] -= amount

    def _release(self, i: int) -> None:
        if not self._forever[i]:  # forever jobs hold no window slot
            self._running -= 1
        wanted = self._resources[i]
        if wanted:
            for pool, amount in wanted.items():
                self._free[pool] += amount
                for j in self._blocked.pop(pool, ()):
                    if self.state[j] is _READY:
                        self._push(j)

    def _end(self, i: int, state: State) -> None:
        old = self.state[i]
        if state not in TRANSITIONS[old]:  # _set, inlined: once per job on the hot path
            check_transition(self.names[i], old, state)
        self.state[i] = state
        if not self._forever[i]:
            self.unfinished -= 1
        self.ended.append(i)
        if self._announced[i]:
            if state in FAILURE:
                self._skip_waiting_dependents(i)
            return
        self._notify(i, state)

    def _notify(self, i: int, state: State) -> None:
        """Tell job ``i``'s dependents that it ended (or, for forever jobs, started)."""
        if state is _CANCELLED and self.aborted is not None:
            return  # the run is aborting: its dependents end CANCELLED in cancel_rest
        ok = state in SUCCESS
        for j in self.succs[i]:
            if self.state[j] is not _PENDING:
                continue  # already ended (skipped), or ready through a forever job
            self._waiting[j] -= 1
            if not ok:
                if state in FAILURE:
                    self._any_failed[j] = 1
                if self._run_if[j] == RUN_IF_SUCCESS:
                    self._skip(j, self._cause(i, state))
                    continue
            if self._waiting[j] == 0:
                if self._run_if[j] == RUN_IF_FAILURE:
                    self._requirements_ended(j)
                else:
                    self._make_ready(j)  # _requirements_ended's common case

    def _requirements_ended(self, j: int) -> None:
        if self._run_if[j] == RUN_IF_FAILURE and not self._any_failed[j]:
            self._skip(j, ())
        else:
            self._make_ready(j)

    def _cause(self, i: int, state: State) -> tuple[str, ...]:
        if state in FAILURE:
            return (self.names[i],)
        return self.causes[i] or (self.names[i],)

    def _skip(self, j: int, causes: tuple[str, ...]) -> None:
        self.causes[j] = causes
        self._end(j, _SKIPPED)

    def _skip_waiting_dependents(self, i: int) -> None:
        """A forever job failed after starting: dependents not yet started are skipped."""
        for j in self.succs[i]:
            if self.state[j] in (_PENDING, _READY) and self._run_if[j] == RUN_IF_SUCCESS:
                self._skip(j, (self.names[i],))
