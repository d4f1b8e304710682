"""Durable runs: what the runner writes to its store, and what a resume or rerun reads.

The promise kept here: a job's end is committed before its slot goes to another job and
before anything that depends on it starts. The runner buffers ends and calls
:meth:`Recorder.flush` (one transaction) before every dispatch, so the promise costs one
commit per scheduling step, not one per job.

Without a store, nothing is written: a resume uses the jobs' states from the previous run
in this process, and cached jobs remember their last success in the scheduler object.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import socket
import time
from array import array
from collections.abc import Mapping, Sequence
from itertools import chain, repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from .errors import StoreError
from .graphstamp import Ended, columns_of, copied
from .procfs import stat_fields
from .state import SUCCESS, State
from .store.base import (
    DONE_STATES,
    PARTS_UNREAD,
    SAME_RESULT,
    EndBatch,
    Generation,
    GraphSnapshot,
    JobEnd,
    JobStart,
    RunInfo,
    RunLockedError,
    Store,
    Success,
    new_run_id,
)
from .store.journal import new_successes

if TYPE_CHECKING:
    from .core import Core
    from .job import Job
    from .plan import NamesByIndex, Plan
    from .scheduler import Scheduler

LEASE_SECONDS = 30.0  # a run whose owner stopped renewing for this long can be taken over
# A graph snapshot holds a copy of the graph's results, and a run keeps what it writes of
# its successes in memory until it takes one: up to this much of them. A graph whose
# results weigh more keeps none (its reruns decide job by job).
_VIEW_BYTES = 64 << 20
_SEARCHED_RUNS = 50  # how far back a subgraph looks for the results it takes from outside


class Remembered(NamedTuple):
    """A cached job's last success, as the next run compares against it."""

    fingerprint: str
    kept_parts: dict[str, Any] | str  # from a store: JSON, parsed only if asked for
    result: Any
    pickled: bytes | None = None  # the stored bytes of the result, when a store has them
    stamp: str | None = None  # fingerprint.sealed(its stamp); None if the store kept none
    run_id: str | None = None  # the run that produced the result, when a store has it

    @property
    def parts(self) -> dict[str, Any]:
        """What the fingerprint covered (see fingerprint.py).

        A job whose stamp matches is up to date without them: most never need parsing.
        """
        kept = self.kept_parts
        if isinstance(kept, str):
            parsed: dict[str, Any] = json.loads(kept)
            return parsed
        return kept


class Resumed:
    """A job that ended well in the run being resumed: its result, ready to use."""

    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def split_holder(holder: str | None) -> tuple[str | None, int | None]:
    """The machine and pid in a lease holder (``host:pid:tag``, made by ``_owner``)."""
    if not holder:
        return None, None
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return host, int(pid) if pid.isdigit() else None


def local_pid(holder: str | None) -> int | None:
    """The pid in a lease holder (``host:pid:tag``) when it is a process of this machine."""
    host, pid = split_holder(holder)
    return pid if host == socket.gethostname() else None


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` lives (a zombie, never reaped where PID 1 does not, is dead)."""
    fields = stat_fields(pid)
    if fields is not None:
        return fields[0] != b"Z"
    try:  # gone, or no /proc: ask the kernel
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Lease holders whose runs go on in this process. A holder that names this process but is
# not here is a run of ours that stopped without giving its lease up (a store error), and
# may be taken over at once, as one of a dead process may.
_LIVE_HERE: set[str] = set()


def _dead_on_this_host(holder: str | None) -> bool:
    """True when ``holder`` names a run of this machine whose process or run is gone."""
    pid = local_pid(holder)
    if pid == os.getpid():
        return holder not in _LIVE_HERE
    return pid is not None and not pid_alive(pid)


def _list(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def graph_digest(names: Sequence[str], reqs: Sequence[Sequence[int]]) -> str:
    """A SHA-256 of the graph's shape: its jobs' names, in order, and what each requires.

    Two runs with one digest ran the same graph (whether its jobs' code, arguments or
    inputs changed is the fingerprints' part). The requirements go in as machine integers
    (each job's count, then every index), encoded in C: a few milliseconds for 10,000 jobs.
    """
    sha = hashlib.sha256("\x1e".join(names).encode())
    sha.update(array("q", map(len, reqs)).tobytes())
    sha.update(array("q", chain.from_iterable(reqs)).tobytes())
    return sha.hexdigest()


class Recorder:
    """Writes one run (and its nested runs, by name prefix) to a store."""

    def __init__(self, scheduler: Scheduler, store_spec: Any) -> None:
        self.scheduler = scheduler
        self.store: Store | None = None
        if store_spec is not None:
            from .store import open_store  # sqlite3 only when a store is used

            self.store = open_store(store_spec)
        self._owns_store = self.store is not None and self.store is not store_spec
        self.run_id: str | None = None
        self.owner = _owner()
        self.notes: list[str] = []  # about the run as a whole, e.g. "no earlier run to resume"
        self._starts: list[JobStart] = []
        self._ends: list[EndBatch] = []
        self._loaded: dict[str, JobEnd] = {}
        self._successes: dict[str, Success] | None = None
        self._parts: dict[str, str | None] | None = None  # read when first needed
        self._written: dict[tuple[str, str], int] = {}  # output already kept, per stream
        self.shape: str | None = None  # the graph's digest (with a store)
        self._names: list[str] = []  # the jobs' names, in the plan's order (with a store)
        # The run's view of its scheduler's successes for a graph snapshot (graphstamp.py):
        # the generation they were read at, moved on by each of its own writes, and what
        # it wrote itself (None: no snapshot can be taken, or none is wanted).
        self._generation: Generation | None = None
        self._wrote: dict[str, Success] | None = None
        self._wrote_bytes = 0

    @property
    def durable(self) -> bool:
        """True when a store keeps what this run records."""
        return self.store is not None

    # -- opening --------------------------------------------------------------------

    def begin(
        self, plan: Plan, names: NamesByIndex, resume: Any, options: dict[str, Any]
    ) -> dict[int, Resumed]:
        """Create (or reopen, to resume) the run; return the jobs that need not run again.

        ``names``: the jobs' names by index (read here only with a store).
        """
        if self.store is None:
            return self._resume_in_memory(plan) if resume else {}
        store = self.store
        found = self._find(store, resume) if resume else None
        self._names = names.frozen()
        self.shape = shape = graph_digest(self._names, plan.reqs)
        self.run_id = found.run_id if found else self.run_id or new_run_id()  # (or submit()'s)
        if found is None:
            options_text = json.dumps(options, default=str)
            store.create_run(
                RunInfo(
                    run_id=self.run_id,
                    scheduler=self.scheduler.name,
                    started_at=time.time(),
                    options=options_text,
                    graph_digest=shape,
                )
            )
        self._take_lease()
        if found is None:
            return {}
        self._note_shape(found, shape)
        self._loaded = store.job_ends(found.run_id)
        self._refuse_lost(found.run_id)
        return self._resumed(plan, "")

    def _refuse_lost(self, run_id: str) -> None:
        """Refuse to resume a run some of whose up-to-date results are gone.

        Going on would either give its jobs results made from two states of the graph, or
        give a job of the run a second result under the same run id (which other runs'
        ends may refer to). A new run decides those jobs as any run does.
        """
        lost = sorted(n for n, e in self._loaded.items() if e.result == SAME_RESULT)
        if not lost:
            return
        assert self.store is not None
        self.store.release(run_id, self.owner)
        raise StoreError(
            f"run {run_id} cannot be resumed: the results of {_list(lost)} are no longer "
            "kept (the run that made them was deleted, and their successes replaced); "
            "start a new run instead"
        )

    def _note_shape(self, found: RunInfo, shape: str) -> None:
        """Say so when the run resumed was of another graph (older runs have no digest)."""
        if found.graph_digest and found.graph_digest != shape:
            self.notes.append(
                f"the graph changed since run {found.run_id} started: its jobs are matched "
                "by name, and the jobs new to it run"
            )

    def _find(self, store: Store, resume: Any) -> RunInfo | None:
        key = "last" if resume is True else str(resume)
        info = store.find_run(self.scheduler.name, key)
        if info is None:
            if key != "last":
                raise StoreError(f"no run {key!r} to resume in the store")
            self.notes.append("no earlier run to resume: everything runs")
        return info

    def _take_lease(self) -> None:
        store, run_id = self.store, self.run_id
        assert store is not None and run_id is not None
        try:
            store.acquire(run_id, self.owner, LEASE_SECONDS, time.time())
        except RunLockedError as exc:
            if not _dead_on_this_host(exc.holder):
                raise
            store.acquire(run_id, self.owner, LEASE_SECONDS, time.time(), takeover=exc.holder)
        _LIVE_HERE.add(self.owner)

    def renew(self) -> None:
        """Heartbeat: keep the lease while the run goes on."""
        if self.store is not None and self.run_id is not None:
            self.store.renew(self.run_id, self.owner, LEASE_SECONDS, time.time())

    def _resumed(self, plan: Plan, prefix: str) -> dict[int, Resumed]:
        done: dict[int, Resumed] = {}
        for i, job in enumerate(plan.jobs):
            end = self._loaded.get(prefix + job.name)
            if end is not None and end.state in DONE_STATES:  # (none lost: see _refuse_lost)
                done[i] = Resumed(pickle.loads(end.result) if end.result is not None else None)
        return done

    def resumed_nested(self, plan: Plan, prefix: str) -> dict[int, Resumed]:
        """Jobs of a nested scheduler (named ``prefix``...) that need not run again."""
        return self._resumed(plan, prefix) if self._loaded else {}

    @staticmethod
    def _resume_in_memory(plan: Plan) -> dict[int, Resumed]:
        return {i: Resumed(job._result) for i, job in enumerate(plan.jobs) if job._state in SUCCESS}

    # -- recording ------------------------------------------------------------------

    def started(self, name: str, attempt: int, at: float) -> None:
        """An attempt began (kept with the next flush)."""
        if self.store is not None:
            self._starts.append(JobStart(name, attempt, at))

    def ended(self, ends: EndBatch) -> None:
        """Jobs ended (kept with the next flush)."""
        if self.store is not None:
            self._ends.append(ends)

    def flush(self) -> None:
        """Commit what was recorded since the last flush, in one transaction."""
        if self.store is None or not (self._starts or self._ends):
            return
        starts, batches = self._starts, self._ends
        self._starts, self._ends = [], []
        assert self.run_id is not None
        ends = EndBatch.joined(batches)
        if self._wrote is None:
            self.store.record(self.run_id, starts, ends)
            return
        wins = new_successes(ends, self.run_id)  # (as the store finds them)
        self._follow(wins, self.store.record(self.run_id, starts, ends))

    def follow_successes(self) -> None:
        """Keep the run's view of the successes, for a graph snapshot at its end."""
        if self.store is not None and self._wrote is None:
            self._wrote = {}

    def _follow(self, wins: list[tuple[Any, ...]], generation: Generation | None) -> None:
        """Take a flush's new successes into the view, or give the view up.

        The view stays the table's while each write of successes moved the generation
        by one from the last: nothing else wrote one in between.
        """
        if not wins:
            return
        known, written = self._generation, self._wrote
        if (
            generation is None
            or known is None
            or generation.writes != known.writes + 1
            or written is None
        ):
            self._drop_view()
            return
        self._generation = generation
        for name, fingerprint, result, parts, source, stamp in wins:
            kept = None if parts is None else PARTS_UNREAD
            written[name] = Success(fingerprint, result, kept, stamp, source)
            self._wrote_bytes += len(result) if result else 0
        if self._wrote_bytes > _VIEW_BYTES:
            self._drop_view()

    def _drop_view(self) -> None:
        self._generation, self._wrote = None, None

    def output(self, name: str, job: Job) -> None:
        """Keep what a command printed since the last call (``jobgraph logs`` reads it)."""
        if self.store is None or self.run_id is None:
            return
        for stream, buffer in (("stdout", job._stdout), ("stderr", job._stderr)):
            if buffer is None:
                continue
            text = buffer.read_all()
            done = self._written.get((name, stream), 0)
            if len(text) > done:
                self.store.append_output(self.run_id, name, stream, text[done:])
                self._written[(name, stream)] = len(text)

    def finish(
        self,
        ended_at: float,
        exit_code: int,
        why: str,
        snapshot: tuple[str, list[Ended]] | None = None,
    ) -> None:
        """Record the run's outcome and graph snapshot, if any; give the lease up.

        ``snapshot``: the graph stamp, and what each job ended with (``graphstamp.py``).
        """
        if self.store is None or self.run_id is None:
            return
        self.flush()
        if snapshot is not None:
            self._keep_snapshot(*snapshot)
        self.store.finish_run(self.run_id, ended_at, exit_code, why)
        self.store.release(self.run_id, self.owner)

    def _keep_snapshot(self, stamp: str, ended: list[Ended]) -> None:
        """Keep the graph snapshot, when the run's view of the successes still holds."""
        written, successes, generation = self._wrote, self._successes, self._generation
        if written is None or successes is None or generation is None or self.shape is None:
            return
        found = [written.get(name) or successes.get(name) for name in self._names]
        weight = sum(len(s.result) for s in found if s is not None and s.result is not None)
        if weight > _VIEW_BYTES:
            return  # a copy this heavy would be read back at every rerun: none
        payload = copied(ended, found)
        if payload is None:
            return
        assert self.store is not None and self.run_id is not None
        snapshot = GraphSnapshot(stamp, generation, payload)
        self.store.keep_graph_snapshot(
            self.scheduler.name, self.shape, snapshot, self.run_id, self.owner
        )

    def close(self) -> None:
        """Close a store this recorder opened itself; the run no longer goes on here."""
        _LIVE_HERE.discard(self.owner)
        if self._owns_store and self.store is not None:
            self.store.close()

    # -- fingerprints ---------------------------------------------------------------

    def successes(self) -> dict[str, Success]:
        """The scheduler's stored successes (read once per run; a store is needed)."""
        if self._successes is None:
            assert self.store is not None
            name = self.scheduler.name
            # Counted first: a success written after the count makes the view stale, and
            # the run's own next write then finds the generation moved by more than one.
            self._generation = self.store.success_generation(name)
            self._successes = self.store.successes_unparted(name)
        return self._successes

    def graph_snapshot(self) -> GraphSnapshot | None:
        """The graph snapshot kept for this scheduler's graph, while it holds."""
        if self.store is None or self.shape is None:
            return None
        return self.store.graph_snapshot(self.scheduler.name, self.shape)

    def remembered_in(self, snapshot: GraphSnapshot) -> list[Remembered] | None:
        """Each job's success as a graph snapshot has it, in order; None if one cannot be read.

        A pass per field, as ``end_batch`` records ends.
        """
        try:
            fingerprints, stamps, runs, blobs = columns_of(snapshot.payload, len(self._names))
            results = [None if blob is None else _loads(blob) for blob in blobs]
        except Exception:  # damaged, or a result whose class is gone: decided one by one
            return None
        fields = (fingerprints, repeat(PARTS_UNREAD), results, blobs, stamps, runs)
        return list(map(_REMEMBERED, zip(*fields, strict=False)))

    def remembered(self, name: str) -> Remembered | None:
        """The last success of a cached job, from the store or from this process."""
        if self.store is None:
            return self.scheduler._memo.get(name)
        successes = self._successes if self._successes is not None else self.successes()
        success = successes.get(name)
        if success is None or success.parts is None:
            return None
        try:
            result = pickle.loads(success.result) if success.result is not None else None
        except Exception:  # e.g. its class is gone: the job runs again
            return None
        return Remembered(
            success.fingerprint,
            success.parts,
            result,
            success.result,
            success.stamp,
            success.run_id,
        )

    def parts(self, name: str, known: Remembered) -> dict[str, Any]:
        """The parts of a remembered success (read, for all jobs at once, when first asked).

        Parts read later than the success they go with may be a newer success's: they
        only serve to spare unchanged files a hash (by their size and time, which any
        success's parts tell as well) and to say what changed.
        """
        if known.kept_parts != PARTS_UNREAD:
            return known.parts
        if self._parts is None:
            assert self.store is not None
            self._parts = self.store.success_parts(self.scheduler.name)
        text = self._parts.get(name)
        return json.loads(text) if text else {}

    def remember(
        self, name: str, fingerprint: str, parts: dict[str, Any], result: Any, stamp: str | None
    ) -> None:
        """Without a store, keep a cached job's success in the scheduler object."""
        if self.store is None:
            self.scheduler._memo[name] = Remembered(fingerprint, parts, result, stamp=stamp)


# A cached job's fingerprint, the parts to keep with its end (None: nothing new), its stamp.
Print = tuple[str | None, dict[str, Any] | None, str | None]


class Kept(NamedTuple):
    """What a run keeps about its jobs for their records (taken out as they are recorded)."""

    pickled: dict[int, bytes]  # results pickled for the store (none for a result of None)
    prints: Mapping[int, Print]  # the cached jobs' fingerprints
    sources: dict[int, Remembered]  # the success each UP_TO_DATE job's result comes from


_loads = pickle.loads
_REMEMBERED = functools.partial(tuple.__new__, Remembered)  # one in C, from its fields

_ATTEMPT = [attrgetter(f) for f in ("_attempts", "_t0", "_t1", "_error", "_returncode", "_note")]
_NAME = attrgetter("_name_")  # a state's name, without Enum's property (a call per read)


def end_batch(
    ended: list[int],
    jobs: Sequence[Job],
    core: Core,
    reqs: Sequence[Sequence[int]],
    prefix: str,
    kept: Kept,
) -> EndBatch:
    """The store's records of jobs ``ended`` (indices), built a column at a time.

    A column is one pass in C (``map`` over getters) rather than a tuple built per job:
    for runs of short jobs, recording their ends is most of what a store adds. The causes
    are the core's (the jobs' own are set at the run's end).
    """
    picked = list(map(jobs.__getitem__, ended))
    # A pass per field: a tuple per job would cost more, in garbage collections too.
    attempts, t0, t1, error, returncode, note = [list(map(get, picked)) for get in _ATTEMPT]
    states = list(map(_NAME, map(core.state.__getitem__, ended)))
    name_of = core.names.__getitem__
    names = list(map(name_of, ended))
    required = _requirement_names(ended, reqs, core.names)
    causes = list(map(core.causes.__getitem__, ended))
    if prefix:  # a nested scheduler's jobs are kept as "outer/inner", as its report names them
        names = [prefix + name for name in names]
        required = [tuple([prefix + r for r in req]) for req in required]
        causes = [tuple([prefix + c for c in cause]) for cause in causes]
    results: list[bytes | None] = list(map(kept.pickled.pop, ended, repeat(None)))
    n = len(ended)
    same = _all_same_results(ended, states, kept) if kept.sources else None
    if same is not None:  # all up to date, each referring to its success (a rerun's)
        empty, columns = [None] * n, [names, states, attempts, t0, t1, error, returncode]
        return EndBatch(
            [*columns, [SAME_RESULT] * n, empty, causes, note, empty, required, empty, same]
        )
    fingerprints: list[str | None] = [None] * n
    parts: list[str | None] = [None] * n
    stamps: list[str | None] = [None] * n
    if kept.prints:
        for k, j in enumerate(ended):
            print_ = kept.prints.get(j)
            if print_ is None or print_[0] is None or states[k] not in _SUCCESS_NAMES:
                continue
            fingerprints[k] = print_[0]
            if print_[1] is not None:
                # Parts go with a success, and with an UP_TO_DATE end whose files were
                # touched; an unchanged job's match the stored ones.
                parts[k], stamps[k] = json.dumps(print_[1]), print_[2]
    sources: list[str | None] = [None] * n
    if "UP_TO_DATE" in states:
        _up_to_date_results(ended, states, picked, kept.sources, (results, fingerprints, parts))
        sources = [kept.sources.pop(j).run_id if j in kept.sources else None for j in ended]
    columns = [names, states, attempts, t0, t1, error, returncode, results, fingerprints]
    return EndBatch([*columns, causes, note, parts, required, stamps, sources])


def _requirement_names(
    ended: list[int], reqs: Sequence[Sequence[int]], names: Sequence[str]
) -> list[tuple[str, ...]]:
    """The names of what each of jobs ``ended`` requires (most jobs require none or one)."""
    required: list[tuple[str, ...]] = []
    append = required.append
    for row in map(reqs.__getitem__, ended):
        if not row:
            append(())
        elif len(row) == 1:
            append((names[row[0]],))
        else:
            append(tuple([names[r] for r in row]))
    return required


def _all_same_results(ended: list[int], states: list[str], kept: Kept) -> list[str | None] | None:
    """The producing runs of a batch of ends that all refer to their successes' results.

    That is, every end is UP_TO_DATE with a success of a known run, and no parts to renew
    it with (its files were not touched): what ``_up_to_date_results`` makes of each such
    end, for a whole batch at once. None when some end is not such a one.
    """
    if states.count("UP_TO_DATE") != len(ended):
        return None
    prints = list(map(kept.prints.get, ended))
    if None in prints:
        return None
    if any(print_[1] is not None for print_ in cast("list[Print]", prints)):
        return None  # parts to renew a success with: its files were touched
    sources = kept.sources
    known = list(map(sources.get, ended))
    if None in known:
        return None
    runs: list[str | None] = list(map(_RUN_OF, known))
    if None in runs:
        return None
    for j in ended:
        del sources[j]  # (recorded: see Kept)
    return runs


_RUN_OF = attrgetter("run_id")


def _up_to_date_results(
    ended: list[int],
    states: list[str],
    picked: list[Job],
    sources: Mapping[int, Remembered],
    columns: tuple[list[bytes | None], list[str | None], list[str | None]],
) -> None:
    """Fill in the result (and fingerprint) columns of the UP_TO_DATE ends of a batch.

    An end that renews its success (its files were touched: it has parts) brings the
    stored bytes. Any other refers to the success's result, and keeps neither a copy of it
    nor of the fingerprint (``SAME_RESULT``; ``Store.job_ends`` reads them back).
    """
    results, fingerprints, parts = columns
    for k, state in enumerate(states):
        if state != "UP_TO_DATE":
            continue
        known = sources.get(ended[k])
        if known is not None and known.run_id is not None and parts[k] is None:
            results[k], fingerprints[k] = SAME_RESULT, None
        elif known is not None and known.pickled is not None:
            results[k] = known.pickled  # the stored bytes: no new pickling
        elif picked[k]._result is not None:
            results[k] = pickle.dumps(picked[k]._result)  # none stored: kept as it is now


_SUCCESS_NAMES = frozenset(state.name for state in SUCCESS)


def fetch_outside_results(plan: Plan, store_spec: Any, scheduler: str) -> None:
    """Give the jobs outside a subgraph, whose results it takes, their last stored result.

    The newest recorded runs of ``scheduler`` are searched for a good end of each one; a
    job found nowhere keeps no result (validation then names it).
    """
    wanted = {
        dep.name: dep
        for i, outside in plan.external.items()
        for dep in outside
        if dep in plan.jobs[i]._data_deps and not dep.state.is_success
    }
    if not wanted:
        return
    from .store import open_store

    store = open_store(store_spec)
    assert store is not None
    try:
        for run in store.runs(_SEARCHED_RUNS):
            if run.scheduler != scheduler:
                continue
            for name, end in store.job_ends(run.run_id).items():
                dep = wanted.get(name)
                if dep is not None and end.state in DONE_STATES and end.result != SAME_RESULT:
                    dep._result = pickle.loads(end.result) if end.result else None
                    dep._state = State.UP_TO_DATE
                    del wanted[name]
            if not wanted:
                return
    finally:
        if store is not store_spec:
            store.close()
