"""Property tests: whatever way a graph is built, its plan is the graph that was described.

The graphs here are built every way a user can: in order or not, with requirements as
jobs or names, given before or after adding, with removals and later additions. The
plan skips the topological sort when jobs come after what they require, so both kinds
of order are drawn.
"""

from __future__ import annotations

import graphlib

from hypothesis import given, settings
from hypothesis import strategies as st

import jobgraph as jg


async def _noop() -> None:
    return None


@st.composite
def described_graphs(draw: st.DrawFn) -> tuple[list[list[int]], list[int], list[str]]:
    """Requirements by index (acyclic), an order of adding, and how each edge is given."""
    n = draw(st.integers(1, 12))
    reqs = [
        draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        for i in range(n)
    ]
    order = draw(st.permutations(range(n)))
    ways = draw(st.lists(st.sampled_from(["job", "name", "later"]), min_size=n, max_size=n))
    return reqs, list(order), ways


def _build(
    reqs: list[list[int]], order: list[int], ways: list[str], named: bool
) -> tuple[jg.Scheduler, list[jg.Job]]:
    jobs = [
        jg.Job(_noop, name=f"j{i}" if named or ways[i] == "name" else None)
        for i in range(len(reqs))
    ]
    for i, wanted in enumerate(reqs):
        if ways[i] == "job":
            jobs[i].requires(*(jobs[r] for r in wanted))
        elif ways[i] == "name":
            if all(jobs[r]._name is not None for r in wanted):
                jobs[i].requires(*(f"j{r}" for r in wanted))
            else:
                jobs[i].requires(*(jobs[r] for r in wanted))
    scheduler = jg.Scheduler()
    for i in order:
        scheduler.add(jobs[i])
    for i, wanted in enumerate(reqs):
        if ways[i] == "later":
            jobs[i].requires(*(jobs[r] for r in wanted))  # after adding: its requirements change
    return scheduler, jobs


def _check(scheduler: jg.Scheduler, jobs: list[jg.Job], reqs: list[list[int]]) -> None:
    index = {job: i for i, job in enumerate(jobs)}
    for i, job in enumerate(jobs):
        assert sorted(index[p] for p in scheduler.predecessors(job)) == sorted(reqs[i])
        dependents = sorted(j for j in range(len(jobs)) if i in reqs[j])
        assert sorted(index[s] for s in scheduler.successors(job)) == dependents
    order = [index[job] for job in scheduler.topological_order()]
    assert sorted(order) == list(range(len(jobs)))
    position = {i: k for k, i in enumerate(order)}
    assert all(position[r] < position[i] for i in range(len(jobs)) for r in reqs[i])
    # The graph described is acyclic (graphlib agrees), so no CycleError was right.
    graphlib.TopologicalSorter({i: reqs[i] for i in range(len(jobs))}).prepare()


@settings(max_examples=200, deadline=None)
@given(described_graphs(), st.booleans())
def test_the_plan_is_the_graph_described(case, named):
    reqs, order, ways = case
    scheduler, jobs = _build(reqs, order, ways, named)
    _check(scheduler, jobs, reqs)


@settings(max_examples=100, deadline=None)
@given(described_graphs())
def test_jobs_added_in_order_keep_that_order(case):
    reqs, _, _ = case
    jobs: list[jg.Job] = []
    for wanted in reqs:
        jobs.append(jg.Job(_noop, requires=[jobs[r] for r in wanted]))
    scheduler = jg.Scheduler(*jobs)
    assert scheduler.topological_order() == jobs
    _check(scheduler, jobs, reqs)


@settings(max_examples=100, deadline=None)
@given(described_graphs(), st.data())
def test_removing_and_adding_again_gives_the_new_graph(case, data):
    reqs, order, ways = case
    scheduler, jobs = _build(reqs, order, ways, named=True)
    scheduler.plan()  # a plan made before the changes must not leak into the next one
    gone = data.draw(st.integers(0, len(jobs) - 1))
    scheduler.remove(jobs[gone])
    extra = jg.Job(_noop, name="extra", requires=[j for k, j in enumerate(jobs) if k != gone][:2])
    scheduler.add(extra)
    kept = [j for k, j in enumerate(jobs) if k != gone] + [extra]
    new_reqs = [
        [kept.index(jobs[r]) for r in reqs[k] if r != gone] for k in range(len(jobs)) if k != gone
    ]
    new_reqs.append([kept.index(r) for r in extra.requirements])
    _check(scheduler, kept, new_reqs)
    assert scheduler.run().ok


def test_a_job_that_requires_itself_is_a_cycle():
    job = jg.Job(_noop, name="me")
    job.requires(job)
    try:
        jg.Scheduler(job).validate()
    except jg.CycleError as exc:
        assert exc.cycle == ["me", "me"]
    else:
        raise AssertionError("no CycleError")


def test_a_repeated_explicit_name_is_still_found():
    first, second = jg.Job(_noop, name="x"), jg.Job(_noop, name="x")
    scheduler = jg.Scheduler(first, jg.Job(_noop, requires=[first]), second)
    try:
        scheduler.validate()
    except jg.DuplicateNameError as exc:
        assert "x" in str(exc)
    else:
        raise AssertionError("no DuplicateNameError")
