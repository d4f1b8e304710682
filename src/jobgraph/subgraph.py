"""A view of part of a scheduler's graph that can be run on its own."""

from __future__ import annotations

from typing import Any

from . import graph
from .job import Job, flatten_requirements
from .scheduler import Scheduler


class Subgraph(Scheduler):
    """A scheduler over jobs owned by another one (see :meth:`Scheduler.subgraph`).

    Its jobs keep their names; requirements left outside are treated as met.
    """

    __slots__ = ("_outside", "parent")

    def __init__(self, parent: Scheduler, jobs: list[Job], outside: frozenset[Job]) -> None:
        self.parent = parent
        self._outside = outside
        super().__init__(
            name=parent.name,  # its jobs are the same jobs: the same history in a store
            window=parent.window,
            resources=parent.pools or None,
            store=parent.store,
            executor=parent.executor,
        )
        if parent.timeout is not None:
            self.timeout = parent.timeout
        for job in jobs:
            self._jobs[job] = None

    def _take(self, job: Job) -> None:
        raise ValueError("a subgraph is a view of another scheduler; add jobs to that one")

    def _external_ok(self) -> frozenset[Job] | None:
        return self._outside

    def _job_names(self) -> set[str]:
        """The whole graph's names: forcing a job left outside the view is no mistake."""
        return self.parent._job_names()


def _indices(parent: Scheduler, spec: Any) -> list[int]:
    plan = parent.plan()
    return [plan.index(job) for job in flatten_requirements(spec)]


def make_subgraph(parent: Scheduler, starts: Any, ends: Any) -> Subgraph:
    """Jobs downstream of ``starts`` (included) and upstream of ``ends`` (included)."""
    plan = parent.plan()
    everything = set(range(len(plan.jobs)))
    keep = everything
    if starts is not None:
        first = _indices(parent, starts)
        keep = keep & (set(first) | graph.reachable(first, plan.succs))
    if ends is not None:
        last = _indices(parent, ends)
        keep = keep & (set(last) | graph.reachable(last, plan.reqs))
    chosen = [plan.jobs[i] for i in plan.order if i in keep]
    outside = frozenset(plan.jobs[i] for i in everything - keep)
    return Subgraph(parent, chosen, outside)
