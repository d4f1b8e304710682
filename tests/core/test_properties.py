"""Property tests of the core on random graphs (hypothesis)."""

from __future__ import annotations

import graphlib
import itertools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from jobgraph import graph
from jobgraph.core import RUN_IF_SUCCESS, Core
from jobgraph.state import FAILURE, SUCCESS, TERMINAL, State

from .driver import drive, make_core

# CI runs the default; the long variant sets JOBGRAPH_PROPERTY_EXAMPLES=20000.
EXAMPLES = int(os.environ.get("JOBGRAPH_PROPERTY_EXAMPLES", "500"))

OUTCOMES = [State.SUCCEEDED, State.SUCCEEDED, State.SUCCEEDED, State.FAILED, State.TIMED_OUT]


@st.composite
def dags(draw: st.DrawFn, max_jobs: int = 200) -> list[list[int]]:
    """Random DAGs: each job requires a few jobs with a smaller index."""
    n = draw(st.integers(min_value=1, max_value=max_jobs))
    reqs: list[list[int]] = []
    for i in range(n):
        if i == 0:
            reqs.append([])
            continue
        picks = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True))
        reqs.append(picks)
    return reqs


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[list[int]], list[State], int | None, int]:
    reqs = draw(dags())
    outcomes = [draw(st.sampled_from(OUTCOMES)) for _ in reqs]
    window = draw(st.one_of(st.none(), st.integers(1, 4)))
    seed = draw(st.integers(0, 2**16))
    return reqs, outcomes, window, seed


def descendants(reqs: list[list[int]], roots: set[int]) -> set[int]:
    return graph.reachable(roots, graph.successors(reqs))


@settings(max_examples=EXAMPLES, deadline=None)
@given(runs())
def test_random_runs_keep_every_promise(case):
    reqs, outcomes, window, seed = case
    core = make_core(reqs, window=window, rank=[(0.0, 0.0, i) for i in range(len(reqs))])
    ended_before_start: list[bool] = []
    peak = 0

    def on_start(i: int, running: list[int]) -> None:
        nonlocal peak
        peak = max(peak, len(running))
        # no job starts before all its requirements ended successfully
        ended_before_start.append(all(core.state[r] in SUCCESS for r in reqs[i]))

    drive(core, lambda i: outcomes[i], seed=seed, on_start=on_start)
    assert all(ended_before_start)
    if window is not None:
        assert peak <= window
    # exactly one terminal state per job
    assert all(s in TERMINAL for s in core.state)
    assert core.running == 0
    # a failure skips exactly its descendants
    failed = {i for i, s in enumerate(core.state) if s in FAILURE}
    skipped = {i for i, s in enumerate(core.state) if s is State.SKIPPED}
    assert skipped == descendants(reqs, failed)
    for i in skipped:
        assert core.causes[i] and {int(c[1:]) for c in core.causes[i]} <= failed


@settings(max_examples=EXAMPLES, deadline=None)
@given(runs(), st.data())
def test_resources_never_overdrawn(case, data):
    reqs, outcomes, _, seed = case
    pools = {"cpu": 3.0, "gpu": 1.0}
    wants = [
        data.draw(
            st.sampled_from(
                [None, {"cpu": 1.0}, {"cpu": 2.0}, {"gpu": 1.0}, {"cpu": 3.0, "gpu": 1.0}]
            )
        )
        for _ in reqs
    ]
    core = make_core(
        reqs, resources=wants, pools=pools, rank=[(0.0, 0.0, i) for i in range(len(reqs))]
    )

    def on_start(i: int, running: list[int]) -> None:
        for pool, size in pools.items():
            used = sum((wants[j] or {}).get(pool, 0.0) for j in running)
            assert used <= size

    drive(core, lambda i: outcomes[i], seed=seed, on_start=on_start)
    assert all(s in TERMINAL for s in core.state)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 25), st.data())
def test_cycle_detection_agrees_with_graphlib(n, data):
    reqs = [data.draw(st.lists(st.integers(0, n - 1), max_size=3, unique=True)) for _ in range(n)]
    succs = graph.successors(reqs)
    order = graph.topological_order(reqs, succs)
    sorter = graphlib.TopologicalSorter({i: reqs[i] for i in range(n)})
    try:
        expected = list(sorter.static_order())
    except graphlib.CycleError:
        assert len(order) < n
        cycle = graph.find_cycle(reqs, set(range(n)) - set(order))
        assert cycle[0] == cycle[-1]
        for a, b in itertools.pairwise(cycle):
            assert b in reqs[a]  # each name along the cycle requires the next
    else:
        assert len(order) == n == len(expected)
        position = {j: k for k, j in enumerate(order)}
        assert all(position[r] < position[i] for i in range(n) for r in reqs[i])


def test_run_if_success_is_the_default():
    assert RUN_IF_SUCCESS == 0


# -- crashes and resumes --------------------------------------------------------------


def drive_until_crash(core: Core, outcomes: list[State], seed: int, events: int) -> set[int]:
    """Run ``core`` for ``events`` job ends at most, then "crash": the jobs that ended well.

    Only ends matter across a crash: what ran and did not end is in flight and runs again.
    """
    drive(core, lambda i: outcomes[i], seed=seed, ends=events)
    return {i for i, s in enumerate(core.state) if s in SUCCESS}


@st.composite
def crashing_runs(draw: st.DrawFn) -> tuple[list[list[int]], list[State], int | None, list[int]]:
    reqs = draw(dags(max_jobs=200))
    outcomes = [draw(st.sampled_from(OUTCOMES)) for _ in reqs]
    window = draw(st.one_of(st.none(), st.integers(1, 8)))
    crashes = draw(st.lists(st.integers(0, 2 * len(reqs)), max_size=3))
    return reqs, outcomes, window, crashes


@settings(max_examples=EXAMPLES, deadline=None)
@given(crashing_runs(), st.integers(0, 2**16))
def test_resuming_from_any_point_gives_the_same_terminal_states(case, seed):
    reqs, outcomes, window, crashes = case
    whole = make_core(reqs, window=window)
    drive(whole, lambda i: outcomes[i], seed=seed)
    done: set[int] = set()
    for k, events in enumerate(crashes):
        core = make_core(reqs, window=window, done={i: State.UP_TO_DATE for i in done})
        kept = drive_until_crash(core, outcomes, seed + k, events)
        assert done <= kept  # a job that ended well never ends otherwise later
        done = kept
    last = make_core(reqs, window=window, done={i: State.UP_TO_DATE for i in done})
    started = drive(last, lambda i: outcomes[i], seed=seed)
    assert not done & set(started)  # no job that ended well runs again
    as_whole = [State.SUCCEEDED if s is State.UP_TO_DATE else s for s in last.state]
    assert as_whole == whole.state
