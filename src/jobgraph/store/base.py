"""The store interface: what a run records, and what a resume or a rerun reads back.

Kept small on purpose, so that another database (PostgreSQL) is one more class and no
change to the runner. Every method that writes commits before it returns.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple, overload

from ..errors import StoreError


class RunLockedError(StoreError):
    """Another live process owns the run."""

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class Success(NamedTuple):
    """What a job's last success left for the next run to compare against."""

    fingerprint: str
    result: bytes | None
    parts: str | None
    stamp: str | None = None  # see fingerprint.sealed (None in older stores)
    run_id: str | None = None  # the run that produced the result (its journal holds it too)


class Generation(NamedTuple):
    """Where a scheduler's successes stand: how many writes changed them, and the last one.

    The token is new at every write (random): two writes are never taken for one, even
    when the count comes back to an earlier value (a write a database server lost).
    """

    writes: int
    token: str


NO_GENERATION = Generation(0, "")  # a scheduler none of whose successes was ever written


class GraphSnapshot(NamedTuple):
    """A graph stamp with the successes it stands for (see ``graphstamp.py``)."""

    stamp: str  # the digest of the graph's shape and of its jobs' materials
    generation: Generation  # where the scheduler's successes stood when they were copied
    payload: bytes  # the successes of the graph's jobs, in order (graphstamp.copied)


@dataclass
class RunInfo:
    """One run as the store knows it."""

    run_id: str
    scheduler: str
    started_at: float
    ended_at: float | None = None
    exit_code: int | None = None
    why: str | None = None
    options: str = "{}"
    graph_digest: str = ""
    owner: str | None = None  # who holds the run's lease ("host:pid:tag"), while it runs
    lease_until: float | None = None

    @property
    def origin(self) -> dict[str, Any]:
        """Where ``jobgraph run`` took the run from (its file and options); {} otherwise."""
        try:
            origin = json.loads(self.options or "{}").get("origin")
        except (ValueError, AttributeError):  # not JSON, or not an object
            return {}
        return origin if isinstance(origin, dict) else {}


@dataclass(frozen=True)
class Checkup:
    """What a store's own check found (``jobgraph doctor``), read without changing the store."""

    location: str  # the store as messages name it (a URL's password hidden)
    problems: tuple[str, ...]  # damage found (none: the data is sound)
    version: int | None  # the schema version recorded; None: no jobgraph schema there
    current: int  # the schema version this jobgraph writes
    tables: frozenset[str] = frozenset()  # the tables present


class JobEnd(NamedTuple):
    """A job's terminal record in one run (a tuple: cheap to build and to batch)."""

    name: str
    state: str
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    returncode: int | None = None
    result: bytes | None = None
    fingerprint: str | None = None
    skipped_because: tuple[str, ...] = ()
    note: str | None = None
    parts: str | None = None  # JSON of what the fingerprint covers (see fingerprint.py)
    requires: tuple[str, ...] = ()  # names of its requirements (for reports of past runs)
    stamp: str | None = None  # with parts: the stamp to keep (see fingerprint.sealed)
    result_of: str | None = None  # UP_TO_DATE: the run that produced its result


# The result an up-to-date job's end keeps instead of a copy: "the result that run
# ``result_of`` produced", which the job's success holds (and that run's journal), so that
# rerunning an unchanged graph does not store every result and fingerprint again. No
# pickle is empty: this tells it from any result, None's included.
SAME_RESULT = b""

# The parts of a success read without them (``Store.successes_unparted``): no JSON is
# empty, so this tells them from any parts, as None tells a success kept without any.
PARTS_UNREAD = ""


class EndBatch(Sequence[JobEnd]):
    """Job ends held by columns, in :class:`JobEnd`'s field order.

    What a run hands :meth:`Store.record`: built a column at a time, without a tuple per
    job; a store that keeps its batches by columns (see ``journal.py``) takes them as they
    are, any other reads it as the :class:`JobEnd` rows it stands for.
    """

    __slots__ = ("columns",)

    def __init__(self, columns: Sequence[Sequence[Any]]) -> None:
        if len(columns) != _FIELDS or len({len(c) for c in columns}) > 1:
            raise ValueError(f"an EndBatch needs {_FIELDS} columns of one length")
        self.columns = columns

    @classmethod
    def empty(cls) -> EndBatch:
        """A batch of no ends."""
        return cls([()] * _FIELDS)

    def __len__(self) -> int:
        return len(self.columns[0])

    @overload
    def __getitem__(self, index: int) -> JobEnd: ...
    @overload
    def __getitem__(self, index: slice) -> list[JobEnd]: ...
    def __getitem__(self, index: int | slice) -> JobEnd | list[JobEnd]:
        if isinstance(index, slice):
            rows = zip(*(c[index] for c in self.columns), strict=True)
            return [JobEnd._make(row) for row in rows]
        return JobEnd._make([c[index] for c in self.columns])

    def __iter__(self) -> Iterator[JobEnd]:
        return map(JobEnd._make, zip(*self.columns, strict=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (EndBatch, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # (like a list: equal to its rows)

    @classmethod
    def joined(cls, batches: Sequence[EndBatch]) -> EndBatch:
        """One batch of the ends of ``batches``, in order (one copy of each column)."""
        if len(batches) == 1:
            return batches[0]
        if not batches:
            return cls.empty()
        columns = zip(*(b.columns for b in batches), strict=True)  # each field's columns
        return cls([list(chain.from_iterable(parts)) for parts in columns])


_FIELDS = len(JobEnd._fields)
DONE_STATES = ("SUCCEEDED", "UP_TO_DATE")  # the ends whose result a later run may take


def _made(success: Success, end: JobEnd) -> bool:
    """Whether ``success`` holds the result ``end`` refers to.

    By the run that made it; an end written before ends named it (schema 4 of
    jobgraph's development) has only the success's fingerprint to go by.
    """
    if end.result_of is None:
        return end.fingerprint is not None and success.fingerprint == end.fingerprint
    return success.run_id == end.result_of


class JobStart(NamedTuple):
    """An attempt that began."""

    name: str
    attempt: int
    started_at: float


def new_run_id() -> str:
    """A fresh, sortable-enough, unique run id."""
    # 48 random bits, as uuid4().hex[:12] gave, without importing uuid (and platform):
    # a few milliseconds off the first run in a process.
    return os.urandom(6).hex()


class Store(abc.ABC):
    """Where runs, job ends, fingerprints and output are kept."""

    # -- runs -----------------------------------------------------------------------

    @abc.abstractmethod
    def create_run(self, info: RunInfo) -> None:
        """Record a new run."""

    @abc.abstractmethod
    def find_run(self, scheduler: str, run_id: str) -> RunInfo | None:
        """The run ``run_id`` (or the newest run of ``scheduler`` for ``"last"``)."""

    @abc.abstractmethod
    def finish_run(self, run_id: str, ended_at: float, exit_code: int, why: str) -> None:
        """Record how a run ended."""

    @abc.abstractmethod
    def runs(self, limit: int = 50) -> list[RunInfo]:
        """Runs, newest first."""

    def delete_runs(self, run_ids: Sequence[str], now: float) -> list[str]:
        """Delete runs with their job records and output, in one transaction.

        A run whose lease is live at ``now`` is kept (it goes on somewhere). The jobs'
        last successes are kept too: they are the current state, not history. Returns
        the runs deleted. (A store of its own that cannot delete says so.)
        """
        raise StoreError(f"{type(self).__name__} cannot delete runs")

    def success_generation(self, scheduler: str) -> Generation | None:
        """Where ``scheduler``'s successes stand (:data:`NO_GENERATION`: never written).

        Each :meth:`record` that makes a success counts one more write, with a new token,
        in its own transaction, and drops the scheduler's graph snapshots; so does any
        other change of a success (the database's triggers see to writes of other code).
        A store that tells none (None, the default) keeps no graph snapshot: every rerun
        decides its jobs one at a time.
        """
        return None

    def keep_graph_snapshot(  # noqa: B027 - optional hook
        self, scheduler: str, graph_digest: str, snapshot: GraphSnapshot, run_id: str, owner: str
    ) -> None:
        """Keep the graph snapshot of ``scheduler``'s graph ``graph_digest`` (its latest).

        Only while ``owner`` holds ``run_id``'s lease (a run taken over meanwhile keeps
        none), and while the scheduler's success generation is still the snapshot's (a
        success written since: its copy is no longer what the store holds).
        """

    def graph_snapshot(self, scheduler: str, graph_digest: str) -> GraphSnapshot | None:
        """The graph snapshot kept for this scheduler and graph, while it holds.

        It holds while no success of the scheduler was written since it was taken: its
        generation is still the scheduler's. None otherwise, or if none was kept.
        """
        return None

    def compact(self) -> None:  # noqa: B027 - optional hook
        """Give the space of deleted records back, where the database does not itself."""

    # -- ownership ------------------------------------------------------------------

    @abc.abstractmethod
    def acquire(
        self, run_id: str, owner: str, ttl: float, now: float, takeover: str | None = None
    ) -> None:
        """Take the run's lease, or raise :class:`RunLockedError` if a live owner holds it.

        ``takeover`` names a holder known to be dead: its lease is taken even if valid.
        A run taken again (resumed) has no end any more until it ends again.
        """

    @abc.abstractmethod
    def renew(self, run_id: str, owner: str, ttl: float, now: float) -> None:
        """Extend the lease we hold (heartbeat); :class:`RunLockedError` if it was lost."""

    @abc.abstractmethod
    def release(self, run_id: str, owner: str) -> None:
        """Give the lease up."""

    # -- jobs -----------------------------------------------------------------------

    @abc.abstractmethod
    def record(
        self, run_id: str, starts: Sequence[JobStart], ends: Sequence[JobEnd]
    ) -> Generation | None:
        """Record attempts that began and jobs that ended, in one transaction.

        An end with a fingerprint and parts (a success, or an up-to-date job whose input
        files were touched) also becomes the job's last success. When the batch made one,
        returns the scheduler's new success generation (see :meth:`success_generation`);
        otherwise, or from a store that counts none, None.
        """

    @abc.abstractmethod
    def job_starts(self, run_id: str) -> list[JobStart]:
        """Every attempt that began in a run, in order."""

    def job_ends(self, run_id: str) -> dict[str, JobEnd]:
        """Every job end recorded for a run, by job name, results included.

        An up-to-date job's end keeps no copy of its result and fingerprint (see
        :data:`SAME_RESULT`): they are read from the job's success while that is still
        the one the end refers to, else from the journal of the run that produced it. If
        that run was deleted too (``jobgraph prune``), the end keeps ``SAME_RESULT``: its
        result is no longer known.
        """
        ends = self.recorded_ends(run_id)
        wanting = [name for name, end in ends.items() if end.result == SAME_RESULT]
        if not wanting:
            return ends
        info = self.find_run("", run_id)
        successes = self.successes(info.scheduler) if info is not None else {}
        elsewhere: dict[str, list[str]] = {}  # by the run that produced the result
        for name in wanting:
            end, success = ends[name], successes.get(name)
            if success is not None and _made(success, end):
                ends[name] = end._replace(result=success.result, fingerprint=success.fingerprint)
            elif end.result_of is not None and end.result_of != run_id:
                elsewhere.setdefault(end.result_of, []).append(name)
        for source, names in elsewhere.items():
            produced = self.recorded_ends(source)
            for name in names:
                made = produced.get(name)
                if made is not None and made.state in DONE_STATES and made.result != SAME_RESULT:
                    ends[name] = ends[name]._replace(
                        result=made.result, fingerprint=made.fingerprint
                    )
        return ends

    @abc.abstractmethod
    def recorded_ends(self, run_id: str) -> dict[str, JobEnd]:
        """Every job end of a run as kept (an up-to-date job's result as ``SAME_RESULT``)."""

    @abc.abstractmethod
    def last_success(self, scheduler: str, name: str) -> Success | None:
        """The fingerprint, result and parts of a job's last success, if any."""

    @abc.abstractmethod
    def successes(self, scheduler: str) -> dict[str, Success]:
        """Every job's last success for ``scheduler`` (one read for a whole run)."""

    def successes_unparted(self, scheduler: str) -> dict[str, Success]:
        """:meth:`successes` with each one's parts as :data:`PARTS_UNREAD` (None: none kept).

        A run reads this: most jobs of a rerun are decided without their parts, and the
        parts are most of what a success weighs (see :meth:`success_parts`).
        """
        return self.successes(scheduler)

    def success_parts(self, scheduler: str) -> dict[str, str | None]:
        """Every job's last success's parts for ``scheduler``, by job name."""
        return {name: success.parts for name, success in self.successes(scheduler).items()}

    # -- output ---------------------------------------------------------------------

    @abc.abstractmethod
    def append_output(self, run_id: str, name: str, stream: str, text: str) -> None:
        """Keep more of a job's output (stream is ``stdout`` or ``stderr``)."""

    @abc.abstractmethod
    def output(self, run_id: str, name: str, stream: str) -> str:
        """All the output kept for a job."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
