"""Turn a scheduler's jobs into a validated, indexed plan (names, edges, order).

This is where every definition error is found, before anything runs: duplicate names,
unknown requirements (with a did-you-mean), cycles, impossible resource requests and
jobs that must go to a worker process but cannot be pickled.
"""

from __future__ import annotations

import difflib
import pickle
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, is_
from typing import TYPE_CHECKING, Any, overload

from . import graph
from .errors import (
    CycleError,
    DuplicateNameError,
    MissingDependencyError,
    PicklingError,
    ResourceError,
)
from .job import CORO_FUNCTION, CORO_OBJECT, FUNCTION, Job

if TYPE_CHECKING:
    from .scheduler import Scheduler


@dataclass
class Plan:
    """A validated graph: jobs by index, their requirements, dependents and an order."""

    jobs: list[Job]
    reqs: list[list[int]]
    succs: list[list[int]]
    order: list[int]
    # Name -> index, made on first use: a run that goes well never needs derived names.
    names: Callable[[], dict[str, int]]
    # Requirements outside the plan (a subgraph's), by the index that needs them.
    external: dict[int, list[Job]] = field(default_factory=dict)
    _position: list[int] | None = None
    _index_of: dict[Job, int] | None = None

    @property
    def by_name(self) -> dict[str, int]:
        """Every job's index by its name."""
        return self.names()

    def position(self) -> list[int]:
        """For each job index, its rank in the topological order."""
        if self._position is None:
            position = [0] * len(self.order)
            for rank, i in enumerate(self.order):
                position[i] = rank
            self._position = position
        return self._position

    def index(self, job: Job | str) -> int:
        """The index of a job (or job name) of this plan; ValueError if it is not in it.

        ``job._index`` is only trusted during a run (a job may be in a scheduler and in
        subgraphs of it), so queries go through a mapping of the plan's own.
        """
        if isinstance(job, str):
            found = self.by_name.get(job)
            if found is None:
                raise ValueError(f"no job named {job!r}{did_you_mean(job, self.by_name)}")
            return found
        if self._index_of is None:
            self._index_of = {j: i for i, j in enumerate(self.jobs)}
        i = self._index_of.get(job)
        if i is None:
            raise ValueError(f"job {job.name!r} is not part of this scheduler")
        return i

    def names_by_index(self) -> NamesByIndex:
        """Each job's name by index, read when asked (a run that goes well never asks)."""
        view = NamesByIndex(self.jobs)
        owner = self.jobs[0]._owner if self.jobs else None  # a subgraph's jobs: its parent's
        if owner is not None:
            owner._watch_names(view)
        return view


_EXPLICIT = attrgetter("_name")  # a job's name as given (None: derived)


class NamesByIndex(Sequence[str]):
    """The names of a list of jobs, as a sequence that reads each one when asked.

    Derived names follow the graph, so a change to it (see ``Scheduler._changed``) has
    the sequence keep the names of the moment first (:meth:`freeze`).
    """

    __slots__ = ("__weakref__", "_frozen", "_jobs")

    def __init__(self, jobs: list[Job]) -> None:
        self._jobs = jobs
        self._frozen: list[str] | None = None

    def freeze(self) -> None:
        """Read every name now and keep them."""
        if self._frozen is not None:
            return
        jobs = self._jobs
        explicit = list(map(_EXPLICIT, jobs))
        if None not in explicit:  # every job named by its maker: nothing to derive
            self._frozen = explicit
            return
        owner = jobs[0]._owner if jobs else None
        if owner is not None:
            by_name = owner._names()  # derives every unnamed job's name (fresh, if it changed)
            if explicit.count(None) == len(jobs) == len(by_name) and all(
                map(is_, jobs, owner._jobs)
            ):
                # None named, all the owner's: its names were made in this order.
                self._frozen = list(by_name)
                return
        # job.name, without its per-job lookups: (_auto is set by the derivation above).
        self._frozen = [
            j._name if j._name is not None else (j._auto if j._owner is owner else None) or j.name
            for j in jobs
        ]

    def frozen(self) -> list[str]:
        """Every name, read now (see :meth:`freeze`), as a plain list."""
        self.freeze()
        assert self._frozen is not None
        return self._frozen

    def __len__(self) -> int:
        return len(self._jobs)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if self._frozen is not None:
            return self._frozen[i]
        if isinstance(i, slice):
            return [job.name for job in self._jobs[i]]
        return self._jobs[i].name


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` suffix, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build(scheduler: Scheduler, external_ok: frozenset[Job] | None = None) -> Plan:
    """Validate ``scheduler``'s jobs and index them; raise a GraphError on any defect.

    ``external_ok`` is given for a subgraph: its jobs keep the names their own scheduler
    gave them, and requirements among ``external_ok`` are outside the plan, not missing.
    """
    jobs = list(scheduler._jobs)
    _index(jobs)
    if external_ok is None:
        names = scheduler._names
        external_ok = frozenset()
    else:
        names = _fixed(_kept_names(jobs))
    external: dict[int, list[Job]] = {}  # filled by _edges
    reqs, succs, forward = _edges(scheduler, jobs, names, external_ok, external)
    # Jobs are mostly added after what they require: then the order they were added in
    # is already a topological one, and there can be no cycle.
    order = graph.topological_order(reqs, succs) if forward else list(range(len(jobs)))
    if len(order) != len(jobs):
        placed = set(order)
        cycle = graph.find_cycle(reqs, (i for i in range(len(jobs)) if i not in placed))
        raise CycleError([jobs[i].name for i in cycle])
    return Plan(jobs, reqs, succs, order, names, external)


def _index(jobs: list[Job]) -> None:
    """Number the jobs; two with one explicit name are an error."""
    seen: set[str] = set()
    for i, job in enumerate(jobs):
        job._index = i
        name = job._name
        if name is not None:
            if name in seen:
                raise DuplicateNameError(name)
            seen.add(name)


def derive_names(jobs: list[Job]) -> dict[str, int]:
    """Give each unnamed job its unique derived name; return every name's index.

    Derived names (``fetch``, ``fetch-2``, ...) follow the order of ``jobs`` and avoid
    the explicit names. A duplicate explicit name keeps its first index here (the plan
    reports it as an error).
    """
    by_name: dict[str, int] = {}
    for i, job in enumerate(jobs):
        if job._name is not None:
            by_name.setdefault(job._name, i)
    suffix: dict[str, int] = {}
    bases: dict[int, str] = {}  # many jobs share one function: derive its name once
    for i, job in enumerate(jobs):
        if job._name is None:
            key = id(job._fn) if job._kind <= CORO_FUNCTION else -1
            base = bases.get(key) if key != -1 else None
            if base is None:
                base = job._default_name()
                if key != -1:
                    bases[key] = base
            n = suffix.get(base, 1)
            name = base if n == 1 else f"{base}-{n}"
            while name in by_name:
                n += 1
                name = f"{base}-{n}"
            suffix[base] = n + 1
            by_name[name] = i
            job._auto = name
    return by_name


def _fixed(names: dict[str, int]) -> Callable[[], dict[str, int]]:
    return lambda: names


def _kept_names(jobs: list[Job]) -> dict[str, int]:
    by_name: dict[str, int] = {}
    for job in jobs:
        if job.name in by_name:
            raise DuplicateNameError(job.name)
        by_name[job.name] = job._index
    return by_name


def _edges(
    scheduler: Scheduler,
    jobs: list[Job],
    names: Callable[[], dict[str, int]],
    external_ok: frozenset[Job],
    external: dict[int, list[Job]],
) -> tuple[list[list[int]], list[list[int]], bool]:
    """Requirements and dependents by index, and whether any job requires a later one.

    Requirements outside the plan (among ``external_ok``) go to ``external`` instead.
    """
    reqs: list[list[int]] = []
    succs: list[list[int]] = [[] for _ in jobs]
    forward = False
    outside_names = {j.name for j in external_ok}
    empty: list[int] = []
    n = len(jobs)
    for i, job in enumerate(jobs):
        wanted, data = job._requires, job._data_deps
        if not wanted and not data:
            reqs.append(empty)
            continue
        row: list[int] = []
        for req in (*wanted, *data) if data else wanted:
            try:
                r = req._index  # type: ignore[union-attr]
            except AttributeError:  # a name (cheaper than testing every job for one)
                r = -1
            if not (0 <= r < n and jobs[r] is req):
                found = names().get(req) if isinstance(req, str) else None
                if found is None:
                    if req in external_ok or req in outside_names:
                        external.setdefault(i, []).append(req)  # type: ignore[arg-type]
                        continue
                    _missing(scheduler, job, req, names())
                r = found
            if r not in row:
                row.append(r)
                succs[r].append(i)
                if r >= i:
                    forward = True
        reqs.append(row)
    return reqs, succs, forward


def _missing(scheduler: Scheduler, job: Job, req: Job | str, by_name: Mapping[str, int]) -> None:
    if isinstance(req, str):
        hint = did_you_mean(req, by_name)
        raise MissingDependencyError(f"job {job.name!r} requires unknown {req!r}{hint}")
    where = "another scheduler" if req._owner is not None else "no scheduler"
    raise MissingDependencyError(
        f"job {job.name!r} requires {req.name!r}, which belongs to {where}, not to "
        f"{scheduler.name!r}; add it to this scheduler (or make the nested scheduler "
        f"itself require it)"
    )


def check_resources(plan: Plan, pools: Mapping[str, float] | None) -> None:
    """Every job's request must name a known pool and fit in it."""
    pools = pools or {}
    for job in plan.jobs:
        if not job.resources:
            continue  # most jobs: no pool, and no empty dict made for them
        for pool, amount in job.resources.items():
            if pool not in pools:
                known = ", ".join(sorted(pools)) or "none"
                raise ResourceError(
                    f"job {job.name!r} asks for resource {pool!r}, but the scheduler has no "
                    f"such pool (pools: {known}){did_you_mean(pool, pools)}",
                    job.name,
                    pool,
                )
            if amount > pools[pool]:
                raise ResourceError(
                    f"job {job.name!r} asks for {amount} {pool!r} but the pool holds only "
                    f"{pools[pool]}: it could never start",
                    job.name,
                    pool,
                )
    _check_forever_holdings(plan, pools)


def _check_forever_holdings(plan: Plan, pools: Mapping[str, float]) -> None:
    """Forever jobs hold their units to the end: what is left must fit the other jobs."""
    held: dict[str, float] = {}
    for job in plan.jobs:
        if job.forever and job.resources:
            for pool, amount in job.resources.items():
                held[pool] = held.get(pool, 0) + amount
    if not held:
        return
    for job in plan.jobs:
        for pool, amount in (job.resources or {}).items():
            left = pools[pool] - held.get(pool, 0)
            if not job.forever and amount > left:
                raise ResourceError(
                    f"job {job.name!r} asks for {amount} {pool!r}, but forever jobs hold "
                    f"{held[pool]} of the {pools[pool]} until the run ends: it would wait "
                    f"forever",
                    job.name,
                    pool,
                )


def check_outside_results(plan: Plan) -> None:
    """A subgraph job that takes the result of a job outside it needs that result."""
    for i, outside in plan.external.items():
        for dep in outside:
            if (
                isinstance(dep, Job)
                and dep in plan.jobs[i]._data_deps
                and not (dep.state.is_success)
            ):
                raise MissingDependencyError(
                    f"job {plan.jobs[i].name!r} takes the result of {dep.name!r}, which is "
                    f"outside the subgraph and has no result (none in this process, none in "
                    f"the store)"
                )


def dask_executors(jobs: Iterable[Job], default_executor: object) -> list[Any]:
    """The distinct Dask executors that jobs of a run may use."""
    found = {id(default_executor): default_executor} if default_executor is not None else {}
    for job in jobs:
        if job.executor is not None and job.executor.__class__ is not str:
            found[id(job.executor)] = job.executor
    objects = [e for e in found.values() if not isinstance(e, str)]
    if not objects:
        return []  # the common case: no executor object, no Dask module imported
    from .executors.cluster import DaskExecutor

    return [e for e in objects if isinstance(e, DaskExecutor)]


def needs_process(job: Job, default_executor: object) -> bool:
    """True when a plain function must run in a worker process."""
    if job._kind != FUNCTION:
        return False
    chosen = job.executor if job.executor is not None else default_executor
    if chosen == "process":
        return True
    return chosen is None and job.timeout is not None


def check_picklable(plan: Plan, default_executor: object) -> None:
    """A function bound for a worker process must be importable (picklable)."""
    if dask_executors((), default_executor):
        for job in plan.jobs:
            if job._kind == CORO_OBJECT and job.executor is None:
                raise PicklingError(
                    f"job {job.name!r} holds a coroutine object, which cannot be sent to a "
                    f"Dask worker: pass the async function and its arguments instead"
                )
    for job in plan.jobs:
        if needs_process(job, default_executor):
            try:
                pickle.dumps(job._fn)
            except Exception as exc:
                why = _why_process(job, default_executor)
                raise PicklingError(
                    f"job {job.name!r} must run in a worker process ({why}), but its function "
                    f"{job._fn!r} cannot be pickled ({type(exc).__name__}: {exc}); define it at "
                    f"module level so it can be imported, or choose executor='thread' "
                    f"(where a timeout only abandons the thread)"
                ) from exc


def _why_process(job: Job, default_executor: object) -> str:
    """Which setting sends ``job`` to a worker process (see :func:`needs_process`)."""
    if job.executor is not None:
        return "its executor is 'process'"
    if default_executor is not None:
        return "the run's executor is 'process'"
    return "it has a timeout"
