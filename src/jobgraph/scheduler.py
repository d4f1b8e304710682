"""Scheduler: holds a graph of jobs, answers questions about it, and runs it."""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import graph
from . import options as _opt
from . import plan as _plan
from .job import SCHEDULER, Job, iter_jobs
from .state import TERMINAL, State

if TYPE_CHECKING:
    from .handle import RunHandle
    from .report import Report

# Options a single run may override.
RUN_OPTIONS = ("window", "timeout", "resources", "store", "executor", "resume", "force")
# Options for jobgraph's own callers (the command line, submit()), not in the API.
_EXTRA_OPTIONS = frozenset({"kill_grace", "on_event", "source", "run_id", "processes"})


class Scheduler(Job):
    """A graph of jobs and the options to run it with.

    A scheduler is itself a job: it can be added to another scheduler, where its own
    ``window`` and ``timeout`` apply to its own jobs, and its jobs are named
    ``outer/inner`` in reports.
    """

    __slots__ = (
        "_jobs",
        "_memo",
        "_name_views",
        "_naming",
        "_plan",
        "kill_grace",
        "pools",
        "store",
        "window",
    )
    _fixed_kind = SCHEDULER

    def __init__(
        self,
        *jobs_or_sequences: Any,
        name: str | None = None,
        window: int | None = None,
        timeout: float | None = None,
        resources: Mapping[str, int | float] | None = None,
        store: Any = None,
        executor: Any = None,
        critical: bool = False,
        **job_options: Any,
    ) -> None:
        _check_job_options(job_options)
        super().__init__(
            None, name=name, timeout=timeout, critical=critical, executor=executor, **job_options
        )
        owner = f"scheduler {self.name!r}"
        self.window = _check_window(owner, window)
        self.pools = _opt.check_amounts(owner, "resources", resources) or {}
        self.store = store
        self.kill_grace = 2.0  # seconds between SIGTERM and SIGKILL for stopped commands
        self._jobs: dict[Job, None] = {}
        self._plan: _plan.Plan | None = None
        self._naming: dict[str, int] | None = None  # see _names
        self._name_views: list[weakref.ref[_plan.NamesByIndex]] = []  # see _changed
        self._memo: dict[str, Any] = {}  # cached jobs' last successes when there is no store
        self.update(jobs_or_sequences)

    def _default_name(self) -> str:
        return "scheduler"

    # -- building the graph ---------------------------------------------------------

    def add(self, job: Any) -> Scheduler:
        """Add a job (or sequence) and every requirement not yet in a scheduler."""
        return self.update((job,))

    def update(self, jobs: Iterable[Any]) -> Scheduler:
        """Add several jobs or sequences; returns the scheduler."""
        self._changed()  # first: a bad item may stop the loop after some jobs were taken
        take = self._take
        for item in jobs:
            if isinstance(item, Job):  # the common case, without iter_jobs' generator
                take(item)
            else:
                for job in iter_jobs((item,)):
                    take(job)
        return self

    def _take(self, job: Job) -> None:
        owner = job._owner
        if owner is self:
            return
        if job is self:
            raise ValueError(f"scheduler {self.name!r} cannot contain itself")
        if owner is not None:
            raise ValueError(
                f"job {job.name!r} already belongs to scheduler {owner.name!r}; a job can "
                f"be in one scheduler only"
            )
        job._owner = self
        self._jobs[job] = None
        for req in job._requires:
            if not isinstance(req, str) and req._owner is None:
                self._adopt_requirements(job)  # some are in no scheduler yet
                return
        for req in job._data_deps:
            if req._owner is None:
                self._adopt_requirements(job)
                return

    def _adopt_requirements(self, job: Job) -> None:
        """Pull in the requirements of ``job`` that belong to no scheduler yet."""
        self._changed()
        queue = deque([job])  # breadth first, in argument order: derived names read naturally
        while queue:
            current = queue.popleft()
            for req in (*current._requires, *current._data_deps):
                if not isinstance(req, str) and req._owner is None and req is not self:
                    req._owner = self
                    self._jobs[req] = None
                    queue.append(req)

    def remove(self, job: Job, cascade: bool = False) -> Scheduler:
        """Remove ``job``; others stop requiring it (or, with ``cascade``, go too)."""
        if job._owner is not self:
            raise ValueError(f"job {job.name!r} is not part of scheduler {self.name!r}")
        doomed = {job}
        if cascade:
            plan = self.plan()
            doomed.update(plan.jobs[i] for i in graph.reachable([plan.index(job)], plan.succs))
        names = {gone.name for gone in doomed}  # while they are here: unique derived names
        self._changed()
        for gone in doomed:
            del self._jobs[gone]
            gone._owner = None
        for other in self._jobs:
            if other._requires:
                other._requires = [
                    r
                    for r in other._requires
                    if not (r in doomed if isinstance(r, Job) else r in names)
                ]
        return self

    def _changed(self) -> None:
        """Called before every change of the graph (nothing reads it until the change ends).

        Its plan and derived names are made again when next needed; the runs that read
        names lazily keep them as they were before the change.
        """
        views, self._name_views = self._name_views, []
        for ref in views:  # first: they read the names as they are before the change
            view = ref()
            if view is not None:
                view.freeze()
        self._plan = None
        self._naming = None

    def _watch_names(self, view: _plan.NamesByIndex) -> None:
        """Have ``view`` keep the names it reads now, before the graph next changes.

        The views of runs whose reports are gone are dropped here: a scheduler run again
        and again, never changed, would otherwise keep one dead reference per run.
        """
        views = [ref for ref in self._name_views if ref() is not None]
        views.append(weakref.ref(view))
        self._name_views = views

    def _names(self) -> dict[str, int]:
        """Every job's index by name, deriving the names of unnamed jobs first."""
        if self._naming is None:
            self._naming = _plan.derive_names(list(self._jobs))
        return self._naming

    def _derived_name(self, job: Job) -> str:
        self._names()
        return job._auto or job._default_name()

    @property
    def jobs(self) -> list[Job]:
        """The jobs of this scheduler, in the order they were added."""
        return list(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def __bool__(self) -> bool:
        return True

    def __iter__(self) -> Any:
        return iter(list(self._jobs))

    def __contains__(self, job: object) -> bool:
        return job in self._jobs

    # -- validation and queries -----------------------------------------------------

    def plan(self) -> _plan.Plan:
        """The validated, indexed graph (cached until the graph changes)."""
        # Every change to the graph (add, remove, job.requires) drops the cached plan.
        plan = self._plan
        if plan is None:
            plan = _plan.build(self, self._external_ok())
            self._plan = plan
        return plan

    def _external_ok(self) -> frozenset[Job] | None:
        return None  # a subgraph returns the jobs it leaves out

    def validate(self) -> Scheduler:
        """Raise a :class:`GraphError` for any defect of the graph; returns the scheduler.

        Nested schedulers are validated too.
        """
        self.validate_for(self.pools, self.executor)
        return self

    def validate_for(self, pools: Mapping[str, float], executor: Any) -> _plan.Plan:
        """Validate with a run's pools and default executor; return the plan."""
        plan = self.plan()
        _plan.check_resources(plan, pools)
        _plan.check_picklable(plan, executor)
        _plan.check_outside_results(plan)
        for job in plan.jobs:
            if isinstance(job, Scheduler):
                inner = executor if job.executor is None else job.executor
                job.validate_for(job.pools, inner)
        return plan

    def _job_names(self) -> set[str]:
        """The names a run option such as ``force`` may use: this graph's and nested ones'."""
        names: set[str] = set()
        for job in self.plan().jobs:
            names.add(job.name)
            if isinstance(job, Scheduler):
                names |= job._job_names()
        return names

    def check_cycles(self) -> bool:
        """True when the graph has no cycle."""
        from .errors import CycleError

        try:
            self.plan()
        except CycleError:
            return False
        return True

    def _jobs_at(self, indices: Iterable[int]) -> list[Job]:
        plan = self.plan()
        position = plan.position()
        return [plan.jobs[i] for i in sorted(indices, key=position.__getitem__)]

    def topological_order(self) -> list[Job]:
        """Every job, each after all the jobs it requires.

        The order jobs were added in, when that is one; else Kahn's order (ties by the
        order of adding).
        """
        plan = self.plan()
        return [plan.jobs[i] for i in plan.order]

    def entry_jobs(self) -> list[Job]:
        """Jobs that require nothing."""
        plan = self.plan()
        return [plan.jobs[i] for i in plan.order if not plan.reqs[i]]

    def exit_jobs(self) -> list[Job]:
        """Jobs nothing requires."""
        plan = self.plan()
        return [plan.jobs[i] for i in plan.order if not plan.succs[i]]

    def isolated_jobs(self) -> list[Job]:
        """Jobs with no requirement and no dependent."""
        plan = self.plan()
        return [plan.jobs[i] for i in plan.order if not plan.reqs[i] and not plan.succs[i]]

    def predecessors(self, job: Job | str) -> list[Job]:
        """The jobs ``job`` directly requires."""
        plan = self.plan()
        return self._jobs_at(plan.reqs[plan.index(job)])

    def successors(self, job: Job | str) -> list[Job]:
        """The jobs that directly require ``job``."""
        plan = self.plan()
        return self._jobs_at(plan.succs[plan.index(job)])

    def upstream(self, job: Job | str) -> list[Job]:
        """Every job ``job`` needs, directly or not."""
        plan = self.plan()
        return self._jobs_at(graph.reachable([plan.index(job)], plan.reqs))

    def downstream(self, job: Job | str) -> list[Job]:
        """Every job that needs ``job``, directly or not."""
        plan = self.plan()
        return self._jobs_at(graph.reachable([plan.index(job)], plan.succs))

    def edges(self) -> list[tuple[Job, Job]]:
        """Every ``(job, requirement)`` pair, in topological order of the job."""
        plan = self.plan()
        return [(plan.jobs[i], plan.jobs[r]) for i in plan.order for r in plan.reqs[i]]

    def subgraph(self, starts: Any = None, ends: Any = None) -> Scheduler:
        """A scheduler holding the jobs downstream of ``starts`` and upstream of ``ends``.

        Both ends are included. Requirements outside the subgraph are treated as met; a
        data dependency outside it takes the result that job last produced.
        """
        from .subgraph import make_subgraph

        return make_subgraph(self, starts, ends)

    def stats(self) -> str:
        """One line such as ``3 succeeded + 1 running + 2 pending = 6 jobs``."""
        counts: dict[State, int] = {}
        for job in self._jobs:
            counts[job.state] = counts.get(job.state, 0) + 1
        parts = [
            f"{counts[s]} {s.name.lower().replace('_', ' ')}" for s in _STATS_ORDER if s in counts
        ]
        total = len(self._jobs)
        return f"{' + '.join(parts) or '0 jobs'} = {total} job{'s' if total != 1 else ''}"

    def explain(self, job: Job | str, force: Any = None) -> Any:
        """The reasons ``job`` would run next time, or ``["up to date"]``.

        Reasons read: never ran, code changed, argument changed, input ``src/a.c``
        changed, output ``build/app`` missing, requirement ``b`` runs first (decided when
        it ends), forced. The job is compared with the store's record of its last success.
        """
        from .explain import explain

        return explain(self, job, force)

    # -- exports --------------------------------------------------------------------

    def dot(self) -> str:
        """The graph in Graphviz DOT, coloured by state."""
        from .render.dot import to_dot

        return to_dot(self)

    def mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        from .render.mermaid import to_mermaid

        return to_mermaid(self)

    def export(self, path: str) -> str:
        """Write the graph to ``path``; the suffix picks the format. Returns the path."""
        from .render.export import export

        return export(self, path)

    # -- running --------------------------------------------------------------------

    def run(self, **options: Any) -> Report:
        """Run the graph to the end and return its :class:`Report`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "Scheduler.run() cannot be called from a running event loop; "
                "use 'await scheduler.co_run()' instead"
            )
        # run() owns its loop, so it may own Ctrl-C too: first stop and report, then kill.
        report: Report = run_in_new_loop(
            self._execute(options, handle_sigint=True), self.kill_grace
        )
        return report

    def submit(self, **options: Any) -> RunHandle:
        """Start the run in a background process; return a handle to follow it.

        Takes the options of :meth:`run`. The run outlives the caller's event loop and,
        recorded in a store, the caller's process. See :mod:`jobgraph.handle`.
        """
        from .handle import submit

        return submit(self, options)

    async def co_run(self, **options: Any) -> Report:
        """Run the graph inside the running event loop and return its :class:`Report`."""
        return await self._execute(options, handle_sigint=False)

    async def _execute(self, options: dict[str, Any], handle_sigint: bool) -> Report:
        from .runner import Runner

        unknown = set(options) - set(RUN_OPTIONS) - _EXTRA_OPTIONS
        if unknown:
            name = sorted(unknown)[0]
            hint = _plan.did_you_mean(name, RUN_OPTIONS)
            raise TypeError(f"unknown run option {name!r}{hint}")
        runner = Runner(self, handle_sigint=handle_sigint, **options)
        return await runner.run()

    def __repr__(self) -> str:
        return f"<Scheduler {self.name!r} {len(self._jobs)} jobs {self.state.name}>"


def run_in_new_loop(main: Any, grace: float) -> Any:
    """Like ``asyncio.run``, but cleanup gives leftover tasks ``grace`` seconds, not forever.

    A job that ignored cancellation was abandoned by the run; ``asyncio.run`` would wait
    for it without end when it cancels the tasks left behind.
    """
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        close_loop(loop, grace)


def close_loop(loop: asyncio.AbstractEventLoop, grace: float) -> None:
    """Cancel what is left on ``loop``, give it ``grace`` seconds, then close the loop."""
    try:
        leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.wait(leftovers, timeout=grace + 1.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


# Ended work first, then what is under way, as in "3 succeeded + 1 running + 2 pending":
# the terminal states in their order, then the others from the furthest along back.
_STATS_ORDER = (
    *(s for s in State if s in TERMINAL),
    *reversed([s for s in State if s not in TERMINAL]),
)


# What a scheduler takes as a job of another scheduler (see Job); the rest is a mistake.
_JOB_OPTIONS = frozenset(
    {
        *("requires", "forever", "retries", "retry_delay", "retry_backoff", "priority"),
        *("cache", "inputs", "outputs", "env_keys", "run_if"),
    }
)


# The constructor's own keywords, for the did-you-mean of a misspelt one.
_OWN_OPTIONS = ("name", "window", "timeout", "resources", "store", "executor", "critical")


def _check_job_options(options: Mapping[str, Any]) -> None:
    for key in options:
        if key in _JOB_OPTIONS:
            continue
        if key in RUN_OPTIONS:
            hint = " (it is an option of run(), not of the constructor)"
        else:
            hint = _plan.did_you_mean(key, (*_OWN_OPTIONS, *sorted(_JOB_OPTIONS)))
        raise TypeError(f"Scheduler() got an unexpected keyword argument {key!r}{hint}")


def _check_window(owner: str, window: Any) -> int | None:
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"{owner}: window must be a positive integer or None, not {window!r}")
    return window
