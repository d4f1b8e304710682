"""``jobgraph doctor``: is a store sound, and what became of the runs that did not end.

The verdicts are pure functions (a run's record, the time, this machine's name and a way to
ask whether a pid lives, in; a verdict out), so every case can be judged in a test without
killing a process. :func:`examine` and :func:`release` are the edges that touch a store.

A run's owner is judged as the runner judges it when it resumes (``recorder.py``): a
process of this machine is dead or alive for sure; one of another machine is presumed dead
once its lease expired, since a live runner renews it every 10 s.
"""

from __future__ import annotations

import enum
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import StoreError
from .recorder import pid_alive, split_holder
from .store import open_store, sqlite_file
from .store.base import Checkup, RunInfo
from .store.journal import TABLES

HEALTHY, ATTENTION, BROKEN = 0, 1, 2  # the command's exit codes
_ALL_RUNS = 1_000_000_000  # Store.runs() takes a limit; the doctor reads every run
_SQLITE_OWN = frozenset({"sqlite_sequence"})  # tables SQLite adds by itself


class Schema(enum.Enum):
    """How a store's schema compares with the one this jobgraph writes."""

    CURRENT = "current"
    OLDER = "older"  # migrated (or created, when empty) the next time jobgraph opens it
    NEWER = "newer"  # written by a newer jobgraph: this one refuses to open it


class Verdict(enum.Enum):
    """What became of a run that did not end."""

    RUNNING = "running"  # its owner lives on this machine, or renews its lease elsewhere
    STALLED = "stalled"  # its owner's pid lives on this machine, but the lease expired
    DEAD = "dead"  # its owner was a process of this machine, now gone
    EXPIRED = "expired"  # its owner is on another machine and stopped renewing the lease
    UNHELD = "unheld"  # nobody holds it (released, or its runner died before taking it)


@dataclass(frozen=True)
class RunCheck:
    """A run that did not end, and the verdict on its owner."""

    info: RunInfo
    verdict: Verdict
    host: str | None  # the owner's machine
    pid: int | None  # the owner's process
    lease_left: float | None  # seconds the lease still runs (negative: expired that long ago)
    local: bool  # the owner is a process of the machine that judged it

    @property
    def dead(self) -> bool:
        """True when nobody will end the run: its owner died, or let its lease expire."""
        return self.verdict in (Verdict.DEAD, Verdict.EXPIRED)

    @property
    def owner(self) -> str:
        """The owner as people read it: ``pid@host`` (``none`` when nobody holds the run)."""
        if self.info.owner is None:
            return "none"
        return self.info.owner if self.pid is None else f"{self.pid}@{self.host}"


@dataclass
class Diagnosis:
    """Everything ``jobgraph doctor`` found about one store."""

    checkup: Checkup
    kind: str  # "SQLite" or "PostgreSQL"
    runs: list[RunCheck] | None = None  # the runs that did not end; None: not read

    @property
    def schema(self) -> Schema:
        """The schema's version compared with this jobgraph's (none yet counts as older)."""
        version, current = self.checkup.version, self.checkup.current
        if version is not None and version > current:
            return Schema.NEWER
        return Schema.CURRENT if version == current else Schema.OLDER

    @property
    def problems(self) -> list[str]:
        """The damage found: the store's own check, then tables that should be there."""
        found = list(self.checkup.problems)
        if found:
            return found  # a damaged file's list of tables means little
        tables = self.checkup.tables - _SQLITE_OWN
        if self.checkup.version is None and tables:
            found.append(
                f"not a jobgraph store: no schema version (tables: {', '.join(sorted(tables))})"
            )
        elif self.schema is Schema.CURRENT:
            found += [f"table {name!r} is missing" for name in TABLES if name not in tables]
        return found

    @property
    def readable(self) -> bool:
        """True when the runs can be read (and released) without changing the schema."""
        return not self.problems and self.schema is Schema.CURRENT

    @property
    def attention(self) -> list[RunCheck]:
        """The runs someone should look at: every one not simply running."""
        return [check for check in self.runs or () if check.verdict is not Verdict.RUNNING]

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 something needs attention, 2 a broken (or too new) store."""
        if self.problems or self.schema is Schema.NEWER:
            return BROKEN
        if self.schema is Schema.OLDER or self.attention:
            return ATTENTION
        return HEALTHY


# -- verdicts (pure) --------------------------------------------------------------------


def judge_run(info: RunInfo, now: float, here: str, alive: Callable[[int], bool]) -> RunCheck:
    """The verdict on a run that did not end, as of ``now``, judged on machine ``here``."""
    host, pid = split_holder(info.owner)
    left = None if info.lease_until is None else info.lease_until - now
    fresh = left is not None and left > 0
    local = host == here and pid is not None
    if info.owner is None:
        verdict = Verdict.UNHELD
    elif pid is not None and local:
        # A process of this machine: its pid says for sure (the lease only says if it
        # still renews: a pid alive with an expired lease is stopped, stuck, or reused).
        verdict = Verdict.DEAD if not alive(pid) else Verdict.RUNNING if fresh else Verdict.STALLED
    else:
        verdict = Verdict.RUNNING if fresh else Verdict.EXPIRED
    return RunCheck(info, verdict, host, pid, left, local)


def to_release(
    runs: Iterable[RunCheck], named: Iterable[str], dead: bool, force: bool
) -> list[RunCheck]:
    """The runs to release: those ``named``, and with ``dead`` every one of a dead owner.

    Raises :class:`ValueError` naming a run that is unknown or ended, one whose owner
    lives on this machine (never released: stop it instead), or, without ``force``, one
    whose lease another machine still renews.
    """
    unfinished = {check.info.run_id: check for check in runs}
    chosen = {run_id: check for run_id, check in unfinished.items() if dead and check.dead}
    for run_id in named:
        check = unfinished.get(run_id)
        if check is None:
            raise ValueError(f"no unfinished run {run_id!r} in the store (unknown, or it ended)")
        if check.local and check.verdict in (Verdict.RUNNING, Verdict.STALLED):
            raise ValueError(
                f"run {run_id} is held by {check.owner}, a live process of this machine: "
                f"not released (stop it first, e.g. with 'jobgraph abort {run_id}')"
            )
        if check.verdict is Verdict.RUNNING and not force:
            raise ValueError(
                f"run {run_id} is held by {check.owner}, whose lease is fresh: it may still "
                f"be running there; if that machine is down, add --force"
            )
        chosen[run_id] = check
    return list(chosen.values())


# -- the edges: reading and writing a store -----------------------------------------------


def examine(
    store: str,
    here: str | None = None,
    alive: Callable[[int], bool] = pid_alive,
) -> Diagnosis:
    """Check the store at ``store`` (a path or URL) and judge its runs that did not end.

    Nothing is created or migrated: a missing SQLite file or PostgreSQL schema is a
    :class:`StoreError`, and the runs are read only when the schema is the current one.
    """
    file = sqlite_file(store)
    if file is None:
        from .store.postgres import checkup as pg_checkup

        diagnosis = Diagnosis(pg_checkup(store), "PostgreSQL")
    else:
        if not Path(file).exists():  # checked first: opening it would create it
            raise StoreError(f"no store at {file} (runs are recorded there by 'jobgraph run')")
        from .store.sqlite import checkup as sqlite_checkup

        diagnosis = Diagnosis(sqlite_checkup(file), "SQLite")
    if diagnosis.readable:
        diagnosis.runs = unfinished(store, here, alive)
    return diagnosis


def unfinished(
    store: str, here: str | None = None, alive: Callable[[int], bool] = pid_alive
) -> list[RunCheck]:
    """The runs of ``store`` that did not end, newest first, each with its verdict."""
    opened = open_store(store)
    assert opened is not None
    try:
        runs = [info for info in opened.runs(_ALL_RUNS) if info.ended_at is None]
    finally:
        opened.close()
    now = time.time()
    machine = here or socket.gethostname()
    return [judge_run(info, now, machine, alive) for info in runs]


def release(store: str, checks: Iterable[RunCheck]) -> list[str]:
    """Give up the leases of the runs ``checks`` judged; the ids now free to resume.

    A lease is given up only if its holder is still the one judged: a run taken over in the
    meantime (resumed by someone) keeps its new owner and is not in the answer.
    """
    opened = open_store(store)
    assert opened is not None
    freed = []
    try:
        for check in checks:
            run_id, owner = check.info.run_id, check.info.owner
            if owner is not None:
                opened.release(run_id, owner)
            after = opened.find_run("", run_id)
            if after is not None and after.owner is None and after.ended_at is None:
                freed.append(run_id)
    finally:
        opened.close()
    return freed
