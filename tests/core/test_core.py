"""The scheduling core, driven one event at a time (no asyncio, no clock)."""

from __future__ import annotations

import pytest

from jobgraph.core import RUN_IF_DONE, RUN_IF_FAILURE
from jobgraph.state import State, TransitionError

from .driver import drive, make_core

OK = State.SUCCEEDED


def all_succeed(i: int) -> State:
    return OK


def test_chain_starts_each_job_after_its_requirement():
    core = make_core([[], [0], [1]])
    assert drive(core, all_succeed) == [0, 1, 2]
    assert core.state == [OK, OK, OK]


def test_nothing_starts_before_start_is_called():
    core = make_core([[], []])
    assert core.dispatch() == []
    core.start()
    assert sorted(core.dispatch()) == [0, 1]
    assert core.dispatch() == []


def test_failure_skips_exactly_the_descendants_and_names_the_cause():
    # 0 -> 1 -> 2, 0 -> 3 ; 4 independent
    core = make_core([[], [0], [1], [0], []])
    drive(core, lambda i: State.FAILED if i == 1 else OK)
    assert core.state == [OK, State.FAILED, State.SKIPPED, OK, OK]
    assert core.causes[2] == ("j1",)


def test_skip_cause_travels_through_skipped_jobs():
    core = make_core([[], [0], [1], [2]])
    drive(core, lambda i: State.FAILED if i == 0 else OK)
    assert core.causes[3] == ("j0",)


def test_run_if_done_runs_after_a_failure():
    core = make_core([[], [0]], run_if=[0, RUN_IF_DONE])
    drive(core, lambda i: State.FAILED if i == 0 else OK)
    assert core.state == [State.FAILED, OK]


def test_run_if_done_waits_for_every_requirement():
    core = make_core([[], [], [0, 1]], run_if=[0, 0, RUN_IF_DONE])
    core.start()
    assert sorted(core.dispatch()) == [0, 1]
    core.finish(0, State.FAILED)
    assert core.dispatch() == []
    core.finish(1, OK)
    assert core.dispatch() == [2]


def test_run_if_failure_runs_only_when_a_requirement_failed():
    core = make_core([[], [0]], run_if=[0, RUN_IF_FAILURE])
    drive(core, all_succeed)
    assert core.state == [OK, State.SKIPPED]
    core = make_core([[], [0]], run_if=[0, RUN_IF_FAILURE])
    drive(core, lambda i: State.TIMED_OUT if i == 0 else OK)
    assert core.state == [State.TIMED_OUT, OK]


def test_critical_failure_aborts_and_starts_nothing_new():
    core = make_core([[], [], [0]], critical=[1, 0, 0])
    core.start()
    assert sorted(core.dispatch()) == [0, 1]
    core.finish(0, State.FAILED)
    assert core.aborted is not None and "critical job 'j0' failed" in core.aborted
    assert core.dispatch() == []
    core.finish(1, State.CANCELLED)
    core.cancel_rest()
    # j2's requirement failed: it is skipped (with the cause); j1 was stopped.
    assert core.state == [State.FAILED, State.CANCELLED, State.SKIPPED]
    assert core.causes[2] == ("j0",)
    assert core.finished


def test_window_limits_running_jobs():
    core = make_core([[] for _ in range(10)], window=3)
    peak = 0

    def watch(i: int, running: list[int]) -> None:
        nonlocal peak
        peak = max(peak, len(running))

    drive(core, all_succeed, on_start=watch)
    assert peak == 3
    assert core.state == [OK] * 10


def test_window_slot_is_given_back_whatever_the_outcome():
    outcomes = [State.FAILED, State.TIMED_OUT, State.CANCELLED, OK]
    core = make_core([[] for _ in range(8)], window=1)
    drive(core, lambda i: outcomes[i % 4])
    assert core.finished and core.running == 0


def test_resource_pool_limits_concurrency_and_others_backfill():
    wants = [{"gpu": 2}, {"gpu": 1}, {"gpu": 1}, None]
    core = make_core([[], [], [], []], resources=wants, pools={"gpu": 2})
    core.start()
    first = core.dispatch()
    # job 0 takes both units; 1 and 2 wait; 3 needs nothing and starts anyway
    assert sorted(first) == [0, 3]
    core.finish(0, OK)
    assert sorted(core.dispatch()) == [1, 2]


def test_priority_orders_ready_jobs_under_a_window():
    rank = [(0.0, 0.0, 0), (-5.0, 0.0, 1), (-1.0, 0.0, 2)]
    core = make_core([[], [], []], window=1, rank=rank)
    assert drive(core, all_succeed) == [1, 2, 0]


def test_forever_job_takes_no_slot_and_unblocks_dependents_when_running():
    # 0 forever, 1 requires 0, 2 independent; window 1
    core = make_core([[], [0], []], window=1, forever=[1, 0, 0])
    core.start()
    started = core.dispatch()
    assert 0 in started and core.running == 1
    assert core.state[0] is State.RUNNING
    core.finish(2 if 2 in started else 1, OK)
    again = core.dispatch()
    assert again
    core.finish(again[0], OK)
    assert core.finished  # forever job 0 still running: not waited for
    core.finish(0, State.CANCELLED)
    assert core.state == [State.CANCELLED, OK, OK]


def test_retry_releases_the_slot_and_requeues():
    core = make_core([[], []], window=1)
    core.start()
    (first,) = core.dispatch()
    core.retry(first, delayed=True)
    assert core.state[first] is State.PENDING and core.running == 0
    (second,) = core.dispatch()
    assert second != first
    core.wake(first)
    core.finish(second, OK)
    assert core.dispatch() == [first]


def test_illegal_transition_is_refused():
    core = make_core([[]])
    core.start()
    core.dispatch()
    core.finish(0, OK)
    with pytest.raises(TransitionError):
        core.finish(0, State.FAILED)


def test_jobs_ended_in_advance_count_as_done():
    from jobgraph import graph
    from jobgraph.core import Core, Spec

    reqs = [[], [0]]
    core = Core(
        Spec(names=["a", "b"], reqs=reqs, succs=graph.successors(reqs), done={0: State.UP_TO_DATE})
    )
    core.start()
    assert core.dispatch() == [1]


def test_a_whole_graph_ended_in_advance_ends_at_the_first_step_as_job_by_job():
    from jobgraph import graph
    from jobgraph.core import Core, Spec

    reqs = [[], [0], [0, 1]]
    done = {2: State.UP_TO_DATE, 0: State.UP_TO_DATE, 1: State.UP_TO_DATE}
    whole = Core(Spec(names=["a", "b", "c"], reqs=reqs, succs=graph.successors(reqs), done=done))
    whole.start()
    assert whole.finished and whole.dispatch() == []
    assert whole.collect() == [2, 0, 1] and whole.state == [State.UP_TO_DATE] * 3
    bad = Core(Spec(names=["a"], reqs=[[]], succs=[[]], done={0: State.TIMED_OUT}))
    with pytest.raises(TransitionError):  # PENDING -> TIMED_OUT: never in advance
        bad.start()
