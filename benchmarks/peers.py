"""The peers: each turns a ``Dag`` into a ready-to-run object, in the way its users would.

A builder takes the DAG and the kind of job (``coro``: a no-op ``async def``;
``func``: a no-op plain function) and returns a runner: a callable with no argument
that runs the whole graph once and tells whether the peer itself reported success.
Building is timed apart from running. Every peer's no-op bumps the same counter, so
the harness checks that each job ran exactly once.

Peers are imported inside their builder, so a child process only pays for its own.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
from collections.abc import Callable
from typing import Any

from shapes import Dag

Runner = Callable[[], bool]
Builder = Callable[[Dag, str], Runner]

KINDS = ("coro", "func")

_CALLS = itertools.count()


class NotApplicable(Exception):
    """This peer cannot run this kind of job (e.g. dask and coroutines)."""


def noop_func(*_args: object) -> None:
    """Do nothing but count the call (a plain function job; dask passes results in)."""
    next(_CALLS)


async def noop_coro() -> None:
    """Do nothing but count the call (a coroutine job)."""
    next(_CALLS)


async def in_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` in the loop's default thread pool, as asyncio code runs a blocking call."""
    await asyncio.get_running_loop().run_in_executor(None, fn)


def calls_so_far() -> int:
    """Return how many no-op calls happened in this process; read it once, after the run."""
    return next(_CALLS)


def _check_kind(kind: str) -> None:
    """Raise ``ValueError`` for an unknown job kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")


# -- jobgraph ---------------------------------------------------------------------------


def _build_jobgraph(dag: Dag, kind: str, named: bool) -> Runner:
    """Build ``jg.Job`` objects (names derived or explicit) and one ``jg.Scheduler``."""
    import jobgraph as jg

    fn = noop_coro if kind == "coro" else noop_func
    jobs: list[jg.Job] = []
    for i in range(dag.n):
        requires = [jobs[p] for p in dag.preds(i)]
        name = f"j{i}" if named else None
        jobs.append(jg.Job(fn, name=name, requires=requires))
    scheduler = jg.Scheduler(*jobs)

    def run() -> bool:
        """Run the scheduler once; success is the report's ``ok``."""
        return bool(scheduler.run().ok)

    return run


def build_jobgraph(dag: Dag, kind: str) -> Runner:
    """Build jobgraph jobs the plain way: ``jg.Job(fn, requires=[...])``, names derived."""
    _check_kind(kind)
    return _build_jobgraph(dag, kind, named=False)


def build_jobgraph_named(dag: Dag, kind: str) -> Runner:
    """Build jobgraph jobs with explicit names ``j0 .. j{n-1}`` (no name derivation)."""
    _check_kind(kind)
    return _build_jobgraph(dag, kind, named=True)


# -- the plain asyncio floor ----------------------------------------------------------------


async def _floor_coro_node(deps: list[asyncio.Task[None]]) -> None:
    """Wait for the predecessors' tasks, then await the no-op coroutine."""
    for dep in deps:
        await dep
    await noop_coro()


async def _floor_func_node(deps: list[asyncio.Task[None]], loop: asyncio.AbstractEventLoop) -> None:
    """Wait for the predecessors' tasks, then run the no-op function in the default pool."""
    for dep in deps:
        await dep
    await loop.run_in_executor(None, noop_func)


async def _floor_main(dag: Dag, kind: str) -> None:
    """Create one task per job, in topological order, then wait for all of them."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    for i in range(dag.n):
        deps = [tasks[p] for p in dag.preds(i)]
        node = _floor_coro_node(deps) if kind == "coro" else _floor_func_node(deps, loop)
        tasks.append(loop.create_task(node))
    for task in tasks:
        await task


def build_floor(dag: Dag, kind: str) -> Runner:
    """Build nothing: the floor creates its tasks inside the run, from the DAG itself."""
    _check_kind(kind)

    def run() -> bool:
        """Run one ``asyncio.run`` that creates and awaits every task."""
        asyncio.run(_floor_main(dag, kind))
        return True

    return run


# -- asynciojobs ----------------------------------------------------------------------------


def _build_asynciojobs_api(dag: Dag, kind: str, module: str) -> Runner:
    """Build ``Job`` objects (one coroutine object each) and a ``Scheduler`` of ``module``.

    asynciojobs only runs coroutines; for ``func`` each job's coroutine runs the no-op
    in the loop's default thread pool, as the floor does.
    """
    _check_kind(kind)
    api = importlib.import_module(module)
    Job, Scheduler = api.Job, api.Scheduler

    jobs: list[Any] = []
    for i in range(dag.n):
        coro = noop_coro() if kind == "coro" else in_thread(noop_func)
        jobs.append(Job(coro, required=[jobs[p] for p in dag.preds(i)]))
    scheduler = Scheduler(*jobs)

    def run() -> bool:
        """Run the scheduler once; it returns ``True`` when all went well."""
        return scheduler.run() is True

    return run


def build_asynciojobs(dag: Dag, kind: str) -> Runner:
    """asynciojobs itself."""
    return _build_asynciojobs_api(dag, kind, "asynciojobs")


def build_compat_asynciojobs(dag: Dag, kind: str) -> Runner:
    """The same script on ``jobgraph.compat.asynciojobs`` (only the import differs)."""
    return _build_asynciojobs_api(dag, kind, "jobgraph.compat.asynciojobs")


# -- dask -----------------------------------------------------------------------------------


def build_dask(dag: Dag, kind: str) -> Runner:
    """Build a dask task-graph dict ``{"j3": (noop_func, "j1", "j2"), ...}``.

    It runs on dask's threaded scheduler (``dask.threaded.get``, default pool: one thread
    per core), asking for the graph's sinks, which makes every task run. Dask has no
    notion of a coroutine task, so only ``func`` applies.
    """
    _check_kind(kind)
    if kind != "func":
        raise NotApplicable("dask's threaded scheduler runs plain functions only")
    import dask.threaded

    keys = [f"j{i}" for i in range(dag.n)]
    graph = {keys[i]: (noop_func, *(keys[p] for p in dag.preds(i))) for i in range(dag.n)}
    sinks = [keys[i] for i in dag.sinks()]

    def run() -> bool:
        """Compute the sinks (so every task) with the threaded scheduler."""
        dask.threaded.get(graph, sinks)
        return True

    return run


# jobgraph imports its modules on first use; these are the ones a build and a run use.
_JOBGRAPH = ("jobgraph", "jobgraph.job", "jobgraph.scheduler", "jobgraph.runner", "jobgraph.report")
IMPORTS: dict[str, tuple[str, ...]] = {
    "jobgraph": _JOBGRAPH,
    "jobgraph-named": _JOBGRAPH,
    "floor": (),
    "asynciojobs": ("asynciojobs",),
    "compat-asynciojobs": ("jobgraph.compat.asynciojobs", *_JOBGRAPH),
    "dask": ("dask.threaded",),
}
"""Modules each peer needs: imported before the clock starts, so build time excludes them."""

PEERS: dict[str, Builder] = {
    "jobgraph": build_jobgraph,
    "jobgraph-named": build_jobgraph_named,
    "floor": build_floor,
    "asynciojobs": build_asynciojobs,
    "compat-asynciojobs": build_compat_asynciojobs,
    "dask": build_dask,
}
"""Peer name -> builder."""


def applicable(peer: str, kind: str) -> bool:
    """Tell whether the peer can run this kind of job at all."""
    return not (peer == "dask" and kind != "func")
