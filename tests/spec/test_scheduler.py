"""Acceptance tests for jg.Scheduler (API.md sections 1, 2 and 3)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import threading
import time

import pytest

import jobgraph as jg
from spec.helpers_proc import Gauge, record_of, state_names

# -- helpers -------------------------------------------------------------------------------


def noop():
    return None


def boom():
    raise ValueError("bad row 12")


def gauged_async(gauge: Gauge, seconds: float = 0.05):
    async def body():
        gauge.enter()
        try:
            await asyncio.sleep(seconds)
        finally:
            gauge.leave()

    return body


def gauged_thread(gauge: Gauge, seconds: float = 0.05):
    def body():
        gauge.enter()
        try:
            time.sleep(seconds)
        finally:
            gauge.leave()

    return body


def names(jobs) -> list[str]:
    return [j.name for j in jobs]


# -- window ----------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 2, 3])
def test_window_limits_concurrency_of_coroutines(window):
    gauge = Gauge()
    jobs = [jg.Job(gauged_async(gauge), name=f"j{i}") for i in range(8)]
    report = jg.Scheduler(*jobs, window=window).run()
    assert report.ok, report.why()
    assert gauge.total == 8
    assert gauge.max == window


def test_window_limits_concurrency_of_threads():
    gauge = Gauge()
    jobs = [jg.Job(gauged_thread(gauge), name=f"j{i}") for i in range(6)]
    report = jg.Scheduler(*jobs, window=2).run()
    assert report.ok
    assert gauge.max == 2


def test_window_limits_mixed_kinds_including_shell():
    gauge = Gauge()
    jobs = [jg.Job(gauged_async(gauge, 0.1), name=f"a{i}") for i in range(3)]
    jobs += [jg.Job(gauged_thread(gauge, 0.1), name=f"t{i}") for i in range(3)]
    shells = [jg.Shell("sleep 0.1", name=f"s{i}") for i in range(3)]
    report = jg.Scheduler(*jobs, *shells, window=2).run()
    assert report.ok, report.why()
    assert gauge.max <= 2
    # Every kind counts: the recorded run times of all nine jobs never overlap by more
    # than two (ends are processed before starts at equal times).
    events = []
    for record in report.to_dict()["jobs"]:
        start = dt.datetime.fromisoformat(record["started_at"]).timestamp()
        end = dt.datetime.fromisoformat(record["ended_at"]).timestamp()
        events += [(start, 1), (end, -1)]
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    assert peak <= 2


def test_no_window_runs_everything_at_once():
    gauge = Gauge()
    jobs = [jg.Job(gauged_async(gauge, 0.1), name=f"j{i}") for i in range(6)]
    assert jg.Scheduler(*jobs).run().ok
    assert gauge.max == 6


def test_window_overridden_by_run_option():
    gauge = Gauge()
    jobs = [jg.Job(gauged_async(gauge), name=f"j{i}") for i in range(6)]
    assert jg.Scheduler(*jobs, window=5).run(window=1).ok
    assert gauge.max == 1


# -- resources -----------------------------------------------------------------------------


def test_resource_pool_limits_concurrency():
    gauge = Gauge()
    jobs = [jg.Job(gauged_async(gauge), name=f"j{i}", resources={"db": 1}) for i in range(6)]
    report = jg.Scheduler(*jobs, resources={"db": 2}).run()
    assert report.ok, report.why()
    assert gauge.max == 2


def test_resource_units_are_counted():
    small, big = Gauge(), Gauge()
    both = Gauge()

    def body(g):
        async def run():
            g.enter()
            both.enter()
            try:
                await asyncio.sleep(0.05)
            finally:
                g.leave()
                both.leave()

        return run

    jobs = [jg.Job(body(small), name=f"s{i}", resources={"gpu": 1}) for i in range(4)]
    jobs += [jg.Job(body(big), name=f"b{i}", resources={"gpu": 3}) for i in range(2)]
    report = jg.Scheduler(*jobs, resources={"gpu": 3}).run()
    assert report.ok
    assert small.max <= 3
    assert big.max == 1
    # a job holding 3 units never overlaps anything else
    assert both.max <= 3


def test_jobs_without_resources_are_not_limited_by_pools():
    gauge = Gauge()
    jobs = [jg.Job(gauged_async(gauge), name=f"j{i}") for i in range(4)]
    jobs.append(jg.Job(noop, name="user", resources={"db": 1}))
    assert jg.Scheduler(*jobs, resources={"db": 1}).run().ok
    assert gauge.max == 4


def test_request_bigger_than_pool_is_value_error_before_anything_runs():
    ran: list[str] = []
    early = jg.Job(lambda: ran.append("early"), name="early")
    greedy = jg.Job(lambda: ran.append("greedy"), name="greedy", resources={"gpu": 3})
    sched = jg.Scheduler(early, greedy, resources={"gpu": 2})
    with pytest.raises(ValueError):
        sched.validate()
    with pytest.raises(ValueError):
        sched.run()
    assert ran == []


def test_request_bigger_than_run_option_pool_is_value_error():
    ran: list[str] = []
    job = jg.Job(lambda: ran.append("x"), name="x", resources={"gpu": 2})
    sched = jg.Scheduler(job, resources={"gpu": 4})
    with pytest.raises(ValueError):
        sched.run(resources={"gpu": 1})
    assert ran == []


# -- priority --------------------------------------------------------------------------------


def test_priority_order_under_window_one():
    order: list[str] = []

    def mark(name):
        async def body():
            order.append(name)
            await asyncio.sleep(0.01)

        return body

    jobs = [
        jg.Job(mark("p0"), name="p0", priority=0),
        jg.Job(mark("p5"), name="p5", priority=5),
        jg.Job(mark("pm1"), name="pm1", priority=-1),
        jg.Job(mark("p2"), name="p2", priority=2),
        jg.Job(mark("p9"), name="p9", priority=9),
    ]
    assert jg.Scheduler(*jobs, window=1).run().ok
    assert order == ["p9", "p5", "p2", "p0", "pm1"]


def test_priority_tie_goes_to_longest_remaining_path():
    order: list[str] = []

    def mark(name):
        async def body():
            order.append(name)

        return body

    lone = jg.Job(mark("lone"), name="lone")
    head = jg.Job(mark("head"), name="head")
    mid = jg.Job(mark("mid"), name="mid", requires=head)
    tail = jg.Job(mark("tail"), name="tail", requires=mid)
    assert jg.Scheduler(lone, head, mid, tail, window=1).run().ok
    assert order[0] == "head"


# -- critical and non-critical failures -----------------------------------------------------


def test_critical_failure_aborts_the_run():
    started: list[str] = []
    cancelled: list[str] = []

    async def crit():
        started.append("crit")
        await asyncio.sleep(0.1)
        raise ValueError("critical problem")

    async def long():
        started.append("long")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append("long")
            raise

    def waiting(name):
        async def body():
            started.append(name)

        return body

    c = jg.Job(crit, name="crit", critical=True, priority=10)
    lg = jg.Job(long, name="long", priority=10)
    q1 = jg.Job(waiting("queued1"), name="queued1")
    q2 = jg.Job(waiting("queued2"), name="queued2")
    after = jg.Job(waiting("after"), name="after", requires=lg)
    t0 = time.monotonic()
    report = jg.Scheduler(c, lg, q1, q2, after, window=2).run()
    assert time.monotonic() - t0 < 3
    assert sorted(started) == ["crit", "long"]
    assert cancelled == ["long"]
    assert report.exit_code == 2
    assert not report.ok
    states = state_names(report)
    assert states["crit"] == "FAILED"
    assert states["long"] == "CANCELLED"
    assert states["queued1"] == "CANCELLED"
    assert states["queued2"] == "CANCELLED"
    assert states["after"] in ("CANCELLED", "SKIPPED")  # see the dedicated test below
    assert "crit" in report.why()


@pytest.mark.parametrize("recorded", [False, True], ids=["in-memory", "with-a-store"])
def test_jobs_queued_behind_a_critical_failure_never_start(tmp_path, recorded):
    # Ready jobs are handed to the workers in batches; once the critical job fails, the
    # rest of its batch must not start. With a store every job is started the usual
    # way; without one, most are quick jobs that a worker starts itself.
    started: list[int] = []

    async def boom() -> None:
        raise ValueError("critical problem")

    def body(k: int):
        async def run() -> None:
            started.append(k)

        return run

    first = jg.Job(boom, name="first", critical=True)
    rest = [jg.Job(body(k), name=f"q{k}") for k in range(50)]
    store = str(tmp_path / "runs.db") if recorded else None
    report = jg.Scheduler(first, *rest).run(store=store)
    assert started == []
    states = state_names(report)
    assert states["first"] == "FAILED"
    assert all(states[f"q{k}"] == "CANCELLED" for k in range(50))
    assert report.exit_code == 2


def test_a_run_stopped_mid_burst_ends_every_job_once():
    # A global timeout lands while thousands of quick jobs are queued or running: each
    # ends exactly once, in a terminal state, and only those that succeeded ran.
    ran = itertools.count()

    async def work() -> None:
        sum(range(2000))  # long enough that the burst outlasts the timeout
        next(ran)

    jobs = [jg.Job(work) for _ in range(20_000)]
    report = jg.Scheduler(*jobs).run(timeout=0.05)
    states = [job.state for job in jobs]
    assert all(state.is_terminal for state in states)
    succeeded = states.count(jg.State.SUCCEEDED)
    assert 0 < succeeded < len(jobs)
    assert next(ran) == succeeded
    assert succeeded + states.count(jg.State.CANCELLED) == len(jobs)
    assert report.exit_code == 3


def test_jobs_still_queued_when_the_run_is_cancelled_never_start():
    # The first job cancels the run's task, then suspends: its worker hands the queue
    # on, but the run's own task wakes first and must end the queued jobs itself.
    started: list[int] = []

    def body(k: int):
        async def run() -> None:
            started.append(k)

        return run

    async def main() -> list[jg.Job]:
        async def first() -> None:
            run.cancel()
            await asyncio.sleep(5)

        jobs = [jg.Job(first, name="first")] + [jg.Job(body(k)) for k in range(20)]
        run = asyncio.ensure_future(jg.Scheduler(*jobs).co_run())
        with pytest.raises(asyncio.CancelledError):
            await run
        return jobs

    jobs = asyncio.run(main())
    assert started == []
    assert [job.state for job in jobs] == [jg.State.CANCELLED] * len(jobs)


def test_a_quick_job_that_suspends_is_still_cancelled_by_an_abort():
    # A coroutine job without options is started by a worker and only registered as
    # running when it suspends: the abort must still find and cancel it.
    cleaned: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(5)
        finally:
            cleaned.append("slow")

    async def boom() -> None:
        await asyncio.sleep(0.05)
        raise ValueError("stop")

    t0 = time.monotonic()
    report = jg.Scheduler(jg.Job(slow, name="slow"), jg.Job(boom, critical=True)).run()
    assert time.monotonic() - t0 < 3
    assert cleaned == ["slow"]
    assert state_names(report)["slow"] == "CANCELLED"


def test_dependent_of_job_cancelled_by_abort_is_cancelled_not_skipped():
    # API.md section 2: CANCELLED is "stopped, or never started, because the run was
    # aborted"; SKIPPED names *failed* jobs as its cause. 'after' never started because
    # a critical job aborted the run, and its requirement did not fail.
    async def crit():
        await asyncio.sleep(0.05)
        raise ValueError("critical problem")

    async def long():
        await asyncio.sleep(5)

    c = jg.Job(crit, name="crit", critical=True)
    lg = jg.Job(long, name="long")
    after = jg.Job(noop, name="after", requires=lg)
    report = jg.Scheduler(c, lg, after).run()
    assert report.exit_code == 2
    assert lg.state is jg.State.CANCELLED
    assert after.state is jg.State.CANCELLED
    assert "long" not in after.skipped_because


def test_critical_failure_of_a_plain_function():
    c = jg.Job(boom, name="crit", critical=True)
    later = jg.Job(noop, name="later", requires=c)
    report = jg.Scheduler(c, later).run()
    assert report.exit_code == 2
    assert later.state in (jg.State.CANCELLED, jg.State.SKIPPED)


def test_non_critical_failure_skips_exactly_descendants():
    ran: list[str] = []

    def mark(name):
        def body():
            ran.append(name)

        return body

    root = jg.Job(mark("root"), name="root")
    bad = jg.Job(boom, name="bad", requires=root)
    child = jg.Job(mark("child"), name="child", requires=bad)
    grandchild = jg.Job(mark("grandchild"), name="grandchild", requires=child)
    sibling = jg.Job(mark("sibling"), name="sibling", requires=root)
    independent = jg.Job(mark("independent"), name="independent")
    indep_child = jg.Job(mark("indep_child"), name="indep_child", requires=independent)
    report = jg.Scheduler(grandchild, sibling, indep_child).run()
    states = state_names(report)
    assert states == {
        "root": "SUCCEEDED",
        "bad": "FAILED",
        "child": "SKIPPED",
        "grandchild": "SKIPPED",
        "sibling": "SUCCEEDED",
        "independent": "SUCCEEDED",
        "indep_child": "SUCCEEDED",
    }
    assert sorted(ran) == ["indep_child", "independent", "root", "sibling"]
    assert child.skipped_because == ["bad"]
    assert grandchild.skipped_because == ["bad"]
    assert record_of(report, "grandchild")["skipped_because"] == ["bad"]
    assert report.exit_code == 1


def test_skip_names_every_failed_requirement():
    bad1 = jg.Job(boom, name="bad1")
    bad2 = jg.Job(boom, name="bad2")
    child = jg.Job(noop, name="child", requires=[bad1, bad2])
    jg.Scheduler(child).run()
    assert child.state is jg.State.SKIPPED
    assert set(child.skipped_because) <= {"bad1", "bad2"}
    assert child.skipped_because  # at least one cause named


def test_timed_out_requirement_skips_dependents():
    async def slow():
        await asyncio.sleep(5)

    t = jg.Job(slow, name="slow", timeout=0.1)
    child = jg.Job(noop, name="child", requires=t)
    report = jg.Scheduler(child).run()
    assert t.state is jg.State.TIMED_OUT
    assert child.state is jg.State.SKIPPED
    assert child.skipped_because == ["slow"]
    assert report.exit_code == 1


# -- run_if ------------------------------------------------------------------------------------


def test_run_if_done_runs_after_failure_and_success():
    ran: list[str] = []
    bad = jg.Job(boom, name="bad")
    good = jg.Job(noop, name="good")
    cleanup = jg.Job(
        lambda: ran.append("cleanup"), name="cleanup", requires=[bad, good], run_if="done"
    )
    cleanup2 = jg.Job(lambda: ran.append("cleanup2"), name="cleanup2", requires=good, run_if="done")
    report = jg.Scheduler(cleanup, cleanup2).run()
    assert cleanup.state is jg.State.SUCCEEDED
    assert cleanup2.state is jg.State.SUCCEEDED
    assert sorted(ran) == ["cleanup", "cleanup2"]
    assert report.exit_code == 1


def test_run_if_done_waits_for_all_requirements():
    order: list[str] = []

    async def slow():
        await asyncio.sleep(0.1)
        order.append("slow")

    bad = jg.Job(boom, name="bad")
    s = jg.Job(slow, name="slow")
    cleanup = jg.Job(
        lambda: order.append("cleanup"), name="cleanup", requires=[bad, s], run_if="done"
    )
    jg.Scheduler(cleanup).run()
    assert order == ["slow", "cleanup"]


def test_run_if_failure():
    ran: list[str] = []
    bad = jg.Job(boom, name="bad")
    good = jg.Job(noop, name="good")
    alert = jg.Job(
        lambda: ran.append("alert"), name="alert", requires=[bad, good], run_if="failure"
    )
    quiet = jg.Job(lambda: ran.append("quiet"), name="quiet", requires=good, run_if="failure")
    jg.Scheduler(alert, quiet).run()
    assert alert.state is jg.State.SUCCEEDED
    assert quiet.state is jg.State.SKIPPED
    assert ran == ["alert"]


def test_run_if_failure_after_timeout():
    async def slow():
        await asyncio.sleep(5)

    t = jg.Job(slow, name="slow", timeout=0.1)
    alert = jg.Job(noop, name="alert", requires=t, run_if="failure")
    jg.Scheduler(alert).run()
    assert alert.state is jg.State.SUCCEEDED


def test_run_if_bad_value_is_value_error():
    with pytest.raises(ValueError):
        jg.Job(noop, run_if="sometimes")


# -- forever jobs ------------------------------------------------------------------------------


def test_forever_job_is_cancelled_at_the_end_and_run_is_ok():
    ticks: list[int] = []

    async def server():
        while True:
            ticks.append(1)
            await asyncio.sleep(0.02)

    async def work():
        await asyncio.sleep(0.15)

    f = jg.Job(server, name="server", forever=True)
    w = jg.Job(work, name="work")
    t0 = time.monotonic()
    report = jg.Scheduler(f, w).run()
    assert time.monotonic() - t0 < 3
    assert f.state is jg.State.CANCELLED
    assert w.state is jg.State.SUCCEEDED
    assert report.ok
    assert report.exit_code == 0
    assert report.why() == "ok"
    assert ticks  # it really ran


def test_forever_job_takes_no_window_slot():
    alive = threading.Event()
    seen: list[bool] = []

    async def server():
        alive.set()
        while True:
            await asyncio.sleep(0.02)

    async def work():
        await asyncio.sleep(0.05)
        seen.append(alive.is_set())

    f = jg.Job(server, name="server", forever=True, priority=100)
    w1 = jg.Job(work, name="w1")
    w2 = jg.Job(work, name="w2")
    t0 = time.monotonic()
    report = jg.Scheduler(f, w1, w2, window=1, timeout=5).run()
    assert time.monotonic() - t0 < 3
    assert report.ok, report.why()
    assert seen == [True, True]
    assert f.state is jg.State.CANCELLED


def test_forever_job_starts_even_when_the_window_is_full():
    alive = threading.Event()
    seen: list[bool] = []

    async def server():
        alive.set()
        while True:
            await asyncio.sleep(0.02)

    async def work():
        # Holds the only slot until the forever job is seen running (or 1 s passes).
        deadline = time.monotonic() + 1.0
        while not alive.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        seen.append(alive.is_set())

    f = jg.Job(server, name="server", forever=True, priority=-100)
    w = jg.Job(work, name="work", priority=100)
    report = jg.Scheduler(f, w, window=1, timeout=5).run()
    assert report.ok, report.why()
    assert seen == [True]


def test_critical_timeout_aborts_the_run():
    async def slow():
        await asyncio.sleep(5)

    async def other():
        await asyncio.sleep(5)

    c = jg.Job(slow, name="crit", critical=True, timeout=0.1)
    o = jg.Job(other, name="other")
    t0 = time.monotonic()
    report = jg.Scheduler(c, o).run()
    assert time.monotonic() - t0 < 3
    assert c.state is jg.State.TIMED_OUT
    assert o.state is jg.State.CANCELLED
    assert report.exit_code == 2


def test_dependent_of_forever_job_starts_once_it_runs():
    alive = threading.Event()
    observed: list[bool] = []

    async def server():
        alive.set()
        while True:
            await asyncio.sleep(0.02)

    async def client():
        observed.append(alive.is_set())
        await asyncio.sleep(0.05)
        return "talked"

    f = jg.Job(server, name="server", forever=True)
    c = jg.Job(client, name="client", requires=f)
    t0 = time.monotonic()
    report = jg.Scheduler(c, timeout=5).run()
    assert time.monotonic() - t0 < 3
    assert report.ok, report.why()
    assert observed == [True]
    assert c.result() == "talked"
    assert f.state is jg.State.CANCELLED


def test_only_forever_jobs_finish():
    async def server():
        while True:
            await asyncio.sleep(0.02)

    report = jg.Scheduler(jg.Job(server, name="server", forever=True), timeout=5).run()
    assert report.exit_code in (0,)
    assert report.elapsed < 3


# -- nested schedulers -----------------------------------------------------------------------


def test_nested_scheduler_window_applies_to_its_own_jobs():
    inner_gauge, outer_gauge = Gauge(), Gauge()
    inner = jg.Scheduler(
        *[jg.Job(gauged_async(inner_gauge, 0.05), name=f"i{i}") for i in range(4)],
        name="inner",
        window=1,
    )
    outer_jobs = [jg.Job(gauged_async(outer_gauge, 0.1), name=f"o{i}") for i in range(3)]
    outer = jg.Scheduler(inner, *outer_jobs, name="outer")
    report = outer.run()
    assert report.ok, report.why()
    assert inner_gauge.max == 1
    assert inner_gauge.total == 4
    assert outer_gauge.max == 3


def test_nested_scheduler_names_in_report():
    a = jg.Job(noop, name="a")
    b = jg.Job(noop, name="b", requires=a)
    inner = jg.Scheduler(a, b, name="inner")
    c = jg.Job(noop, name="c", requires=inner)
    report = jg.Scheduler(inner, c, name="outer").run()
    assert report.ok, report.why()
    recorded = [r["name"] for r in report.to_dict()["jobs"]]
    assert any(n == "inner/a" or n.endswith("/inner/a") for n in recorded), recorded
    assert any(n == "inner/b" or n.endswith("/inner/b") for n in recorded), recorded
    assert "a" not in recorded and "b" not in recorded


def test_nested_scheduler_runs_before_its_dependents():
    order: list[str] = []
    inner = jg.Scheduler(
        jg.Job(lambda: order.append("in1"), name="in1"),
        jg.Job(lambda: order.append("in2"), name="in2"),
        name="inner",
    )
    after = jg.Job(lambda: order.append("after"), name="after", requires=inner)
    assert jg.Scheduler(after, name="outer").run().ok
    assert order[-1] == "after"
    assert sorted(order[:2]) == ["in1", "in2"]


def test_nested_scheduler_timeout_applies_to_its_own_jobs():
    async def slow():
        await asyncio.sleep(5)

    async def quick():
        await asyncio.sleep(0.05)

    inner = jg.Scheduler(jg.Job(slow, name="slow"), name="inner", timeout=0.3)
    other = jg.Job(quick, name="other")
    t0 = time.monotonic()
    report = jg.Scheduler(inner, other, name="outer").run()
    assert time.monotonic() - t0 < 3
    assert not report.ok
    states = state_names(report)
    slow_name = next(n for n in states if n.endswith("inner/slow"))
    assert states[slow_name] in ("CANCELLED", "TIMED_OUT")
    assert states["other"] == "SUCCEEDED"
    assert inner.state is not jg.State.SUCCEEDED


def test_nested_failure_skips_dependents_of_the_nested_scheduler():
    inner = jg.Scheduler(jg.Job(boom, name="bad"), name="inner")
    after = jg.Job(noop, name="after", requires=inner)
    report = jg.Scheduler(after, name="outer").run()
    assert not report.ok
    assert after.state is jg.State.SKIPPED
    assert inner.state is jg.State.FAILED


# -- global timeout ----------------------------------------------------------------------------


def test_global_timeout():
    async def slow():
        await asyncio.sleep(5)

    async def quick():
        return 1

    s = jg.Job(slow, name="slow")
    q = jg.Job(quick, name="quick")
    waiting = jg.Job(noop, name="waiting", requires=s)
    t0 = time.monotonic()
    report = jg.Scheduler(s, q, waiting, timeout=0.3).run()
    assert time.monotonic() - t0 < 3
    assert report.exit_code == 3
    assert not report.ok
    assert report.why().startswith("timed out after")
    assert "0.3" in report.why()
    assert s.state is jg.State.CANCELLED
    assert q.state is jg.State.SUCCEEDED
    assert waiting.state in (jg.State.CANCELLED, jg.State.SKIPPED)  # see the next test


def test_dependent_of_job_cancelled_by_global_timeout_is_cancelled_not_skipped():
    # API.md section 2: CANCELLED is "stopped, or never started, because the run was
    # aborted, timed out or interrupted"; skipped_because names *failed* jobs.
    async def slow():
        await asyncio.sleep(5)

    s = jg.Job(slow, name="slow")
    waiting = jg.Job(noop, name="waiting", requires=s)
    report = jg.Scheduler(s, waiting, timeout=0.2).run()
    assert report.exit_code == 3
    assert s.state is jg.State.CANCELLED
    assert waiting.state is jg.State.CANCELLED
    assert "slow" not in waiting.skipped_because


def test_global_timeout_as_run_option():
    async def slow():
        await asyncio.sleep(5)

    t0 = time.monotonic()
    report = jg.Scheduler(jg.Job(slow, name="slow")).run(timeout=0.2)
    assert time.monotonic() - t0 < 3
    assert report.exit_code == 3
    assert report.why().startswith("timed out after")


def test_global_timeout_message_whole_seconds():
    async def slow():
        await asyncio.sleep(5)

    report = jg.Scheduler(jg.Job(slow, name="slow"), timeout=1).run()
    assert report.why() == "timed out after 1s"


# -- retries ---------------------------------------------------------------------------------


def test_retries_until_success():
    calls: list[float] = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RuntimeError(f"attempt {len(calls)} failed")
        return "finally"

    job = jg.Job(flaky, name="flaky", retries=2)
    report = jg.Scheduler(job).run()
    assert report.ok, report.why()
    assert job.result() == "finally"
    assert job.attempts == 3
    assert record_of(report, "flaky")["attempts"] == 3


def test_retries_exhausted():
    calls: list[int] = []

    async def always():
        calls.append(1)
        raise RuntimeError("nope")

    job = jg.Job(always, name="always", retries=2)
    report = jg.Scheduler(job).run()
    assert job.state is jg.State.FAILED
    assert job.attempts == 3
    assert len(calls) == 3
    assert report.exit_code == 1


def test_no_retries_by_default():
    calls: list[int] = []

    def once():
        calls.append(1)
        raise RuntimeError("nope")

    job = jg.Job(once, name="once")
    jg.Scheduler(job).run()
    assert calls == [1]
    assert job.attempts == 1


def test_retry_delay_and_backoff_are_respected():
    calls: list[float] = []

    async def always():
        calls.append(time.monotonic())
        raise RuntimeError("nope")

    job = jg.Job(always, name="always", retries=2, retry_delay=0.1, retry_backoff=3.0)
    jg.Scheduler(job).run()
    assert len(calls) == 3
    first_gap, second_gap = calls[1] - calls[0], calls[2] - calls[1]
    assert 0.08 <= first_gap < 1.5
    assert 0.27 <= second_gap < 2.0


def test_timed_out_attempt_is_retried():
    calls: list[int] = []

    async def slow():
        calls.append(1)
        await asyncio.sleep(5)

    job = jg.Job(slow, name="slow", timeout=0.1, retries=1)
    t0 = time.monotonic()
    jg.Scheduler(job).run()
    assert time.monotonic() - t0 < 3
    assert job.state is jg.State.TIMED_OUT
    assert job.attempts == 2
    assert calls == [1, 1]


def test_successful_retry_lets_dependents_run():
    calls: list[int] = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first time")
        return 10

    f = jg.Job(flaky, name="flaky", retries=1)
    child = jg.Job(lambda x: x + 1, f, name="child")
    assert jg.Scheduler(child).run().ok
    assert child.result() == 11


@pytest.mark.parametrize(
    "bad", [{"retries": -1}, {"retry_delay": -1.0}, {"retry_delay": float("nan")}]
)
def test_bad_retry_options_are_value_errors(bad):
    with pytest.raises(ValueError):
        jg.Job(noop, **bad)


# -- graph queries ---------------------------------------------------------------------------


@pytest.fixture
def diamond():
    """a -> (b, c) -> d, plus e -> f and an isolated g."""
    a = jg.Job(noop, name="a")
    b = jg.Job(noop, name="b", requires=a)
    c = jg.Job(noop, name="c", requires=a)
    d = jg.Job(noop, name="d", requires=[b, c])
    e = jg.Job(noop, name="e")
    f = jg.Job(noop, name="f", requires=e)
    g = jg.Job(noop, name="g")
    sched = jg.Scheduler(d, f, g)
    return sched, dict(a=a, b=b, c=c, d=d, e=e, f=f, g=g)


def test_topological_order_keeps_the_order_of_adding_when_it_is_one():
    a = jg.Job(noop, name="a")
    b = jg.Job(noop, name="b", requires=a)
    c = jg.Job(noop, name="c")
    d = jg.Job(noop, name="d", requires=b)
    sched = jg.Scheduler(a, b, c, d)
    assert names(sched.topological_order()) == ["a", "b", "c", "d"]
    a.requires(c)  # now a requires a job added after it: the order must move c first
    order = names(sched.topological_order())
    assert order.index("c") < order.index("a") < order.index("b") < order.index("d")


def test_topological_order(diamond):
    sched, j = diamond
    order = sched.topological_order()
    assert set(order) == set(j.values())
    assert len(order) == 7
    position = {job: k for k, job in enumerate(order)}
    for job in order:
        for req in sched.predecessors(job):
            assert position[req] < position[job]


def test_entry_exit_isolated(diamond):
    sched, j = diamond
    assert set(sched.entry_jobs()) == {j["a"], j["e"], j["g"]}
    assert set(sched.exit_jobs()) == {j["d"], j["f"], j["g"]}
    assert set(sched.isolated_jobs()) == {j["g"]}


def test_predecessors_successors(diamond):
    sched, j = diamond
    assert set(sched.predecessors(j["d"])) == {j["b"], j["c"]}
    assert set(sched.successors(j["a"])) == {j["b"], j["c"]}
    assert list(sched.predecessors(j["a"])) == []
    assert list(sched.successors(j["d"])) == []


def test_upstream_downstream_are_transitive(diamond):
    sched, j = diamond
    assert set(sched.upstream(j["d"])) == {j["a"], j["b"], j["c"]}
    assert set(sched.downstream(j["a"])) == {j["b"], j["c"], j["d"]}
    assert set(sched.downstream(j["e"])) == {j["f"]}
    assert list(sched.upstream(j["g"])) == []


def test_edges_are_job_requirement_pairs(diamond):
    sched, _ = diamond
    edges = {(x.name, y.name) for x, y in sched.edges()}
    assert edges == {("b", "a"), ("c", "a"), ("d", "b"), ("d", "c"), ("f", "e")}
    assert len(sched.edges()) == 5


def test_subgraph_starts(diamond):
    sched, j = diamond
    sub = sched.subgraph(starts=j["b"])
    assert set(names(sub.topological_order())) == {"b", "d"}


def test_subgraph_ends(diamond):
    sched, j = diamond
    sub = sched.subgraph(ends=j["b"])
    assert set(names(sub.topological_order())) == {"a", "b"}


def test_subgraph_starts_and_ends(diamond):
    sched, j = diamond
    sub = sched.subgraph(starts=j["a"], ends=j["d"])
    assert set(names(sub.topological_order())) == {"a", "b", "c", "d"}
    sub2 = sched.subgraph(starts=[j["b"]], ends=[j["d"]])
    assert set(names(sub2.topological_order())) == {"b", "d"}


def test_subgraph_runs_with_outside_requirements_treated_as_met():
    ran: list[str] = []
    a = jg.Job(lambda: ran.append("a"), name="a")
    b = jg.Job(lambda: ran.append("b"), name="b", requires=a)
    c = jg.Job(lambda: ran.append("c"), name="c", requires=b)
    sched = jg.Scheduler(c)
    sub = sched.subgraph(starts=b)
    report = sub.run()
    assert report.ok, report.why()
    assert ran == ["b", "c"]
    assert isinstance(sub, jg.Scheduler)


def test_subgraph_data_dependency_outside_without_store_is_missing_dependency():
    a = jg.Job(lambda: 1, name="a")
    b = jg.Job(lambda x: x + 1, a, name="b")
    sched = jg.Scheduler(b)
    with pytest.raises(jg.MissingDependencyError):
        sched.subgraph(starts=b).run()


# -- validation ------------------------------------------------------------------------------


def test_cycle_error():
    a = jg.Job(noop, name="a")
    b = jg.Job(noop, name="b", requires=a)
    a.requires(b)
    sched = jg.Scheduler(a, b)
    assert sched.check_cycles() is False
    with pytest.raises(jg.CycleError) as info:
        sched.validate()
    cycle = info.value.cycle
    assert isinstance(cycle, list)
    assert cycle[0] == cycle[-1]
    assert len(cycle) == 3
    assert set(cycle) == {"a", "b"}
    assert " -> ".join(cycle) in str(info.value)
    assert re.search(r"\b(a -> b -> a|b -> a -> b)\b", str(info.value))


def test_longer_cycle_and_run_validates_first():
    ran: list[str] = []
    a = jg.Job(lambda: ran.append("a"), name="a")
    b = jg.Job(lambda: ran.append("b"), name="b", requires=a)
    c = jg.Job(lambda: ran.append("c"), name="c", requires=b)
    free = jg.Job(lambda: ran.append("free"), name="free")
    a.requires(c)
    sched = jg.Scheduler(a, b, c, free)
    with pytest.raises(jg.CycleError) as info:
        sched.run()
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1] and len(cycle) == 4
    assert set(cycle) == {"a", "b", "c"}
    # the cycle is listed along requirement edges (each requires the next, or vice versa)
    pairs = set(itertools.pairwise(cycle))
    forward = {("a", "c"), ("c", "b"), ("b", "a")}
    backward = {(y, x) for x, y in forward}
    assert pairs in (forward, backward)
    assert ran == []


def test_self_cycle():
    a = jg.Job(noop, name="a")
    a.requires(a)
    sched = jg.Scheduler(a)
    assert sched.check_cycles() is False
    with pytest.raises(jg.CycleError) as info:
        sched.validate()
    assert info.value.cycle == ["a", "a"]


def test_check_cycles_true_for_a_dag(diamond):
    sched, _ = diamond
    assert sched.check_cycles() is True


def test_duplicate_name_error_before_running():
    ran: list[str] = []
    a = jg.Job(lambda: ran.append("1"), name="same")
    b = jg.Job(lambda: ran.append("2"), name="same")
    with pytest.raises(jg.DuplicateNameError):
        jg.Scheduler(a, b).validate()
    c = jg.Job(lambda: ran.append("3"), name="same")
    d = jg.Job(lambda: ran.append("4"), name="same")
    with pytest.raises(jg.DuplicateNameError):
        jg.Scheduler(c, d).run()
    assert ran == []


def test_missing_dependency_by_name_with_did_you_mean():
    fetch = jg.Job(noop, name="fetch_data")
    load = jg.Job(noop, name="load", requires="fetch_dta")
    sched = jg.Scheduler(fetch, load)
    with pytest.raises(jg.MissingDependencyError) as info:
        sched.validate()
    message = str(info.value)
    assert "fetch_dta" in message
    assert "did you mean" in message.lower()
    assert "fetch_data" in message
    with pytest.raises(jg.MissingDependencyError):
        sched.run()


def test_requirement_by_existing_name_works():
    order: list[str] = []
    fetch = jg.Job(lambda: order.append("fetch"), name="fetch_data")
    load = jg.Job(lambda: order.append("load"), name="load", requires="fetch_data")
    assert jg.Scheduler(load, fetch).run().ok
    assert order == ["fetch", "load"]


def test_graph_errors_hierarchy():
    for cls in (jg.CycleError, jg.DuplicateNameError, jg.MissingDependencyError):
        assert issubclass(cls, jg.GraphError)
    assert issubclass(jg.GraphError, ValueError)


def test_validate_on_a_good_graph_does_not_raise(diamond):
    sched, _ = diamond
    sched.validate()


# -- building the graph ----------------------------------------------------------------------


def test_add_update_remove_return_the_scheduler():
    sched = jg.Scheduler()
    a, b, c = (jg.Job(noop, name=n) for n in "abc")
    assert sched.add(a) is sched
    assert sched.update([b, c]) is sched
    assert sched.remove(c) is sched
    assert set(sched.topological_order()) == {a, b}


def test_add_brings_requirements_along():
    a = jg.Job(noop, name="a")
    b = jg.Job(noop, name="b", requires=a)
    c = jg.Job(lambda x: x, b, name="c")
    sched = jg.Scheduler().add(c)
    assert set(names(sched.topological_order())) == {"a", "b", "c"}
    assert sched.run().ok


def test_requires_after_add_brings_the_requirement_in():
    order: list[str] = []
    a = jg.Job(lambda: order.append("a"), name="a")
    b = jg.Job(lambda: order.append("b"), name="b")
    sched = jg.Scheduler(b)
    b.requires(a)
    assert set(names(sched.topological_order())) == {"a", "b"}
    assert sched.run().ok
    assert order == ["a", "b"]


def test_update_accepts_sequences_and_nested_iterables():
    a, b, c, d = (jg.Job(noop, name=n) for n in "abcd")
    sched = jg.Scheduler().update([jg.Sequence(a, b), [c, [d]]])
    assert set(names(sched.topological_order())) == {"a", "b", "c", "d"}
    assert sched.predecessors(b) == [a]


def test_add_sequence():
    a, b = jg.Job(noop, name="a"), jg.Job(noop, name="b")
    sched = jg.Scheduler().add(jg.Sequence(a, b))
    assert names(sched.topological_order()) == ["a", "b"]


def test_remove_drops_the_job_from_requirements():
    ran: list[str] = []
    a = jg.Job(lambda: ran.append("a"), name="a")
    b = jg.Job(lambda: ran.append("b"), name="b", requires=a)
    c = jg.Job(lambda: ran.append("c"), name="c", requires=b)
    sched = jg.Scheduler(c)
    sched.remove(a)
    assert set(names(sched.topological_order())) == {"b", "c"}
    assert sched.entry_jobs() == [b]
    report = sched.run()
    assert report.ok, report.why()
    assert ran == ["b", "c"]


def test_remove_cascade_removes_downstream():
    a = jg.Job(noop, name="a")
    b = jg.Job(noop, name="b", requires=a)
    c = jg.Job(noop, name="c", requires=b)
    d = jg.Job(noop, name="d", requires=a)
    other = jg.Job(noop, name="other")
    sched = jg.Scheduler(c, d, other)
    returned = sched.remove(b, cascade=True)
    assert returned is sched
    assert set(names(sched.topological_order())) == {"a", "d", "other"}
    assert sched.run().ok


# -- run / co_run ------------------------------------------------------------------------------


def test_run_inside_running_loop_raises_runtime_error_naming_co_run():
    sched = jg.Scheduler(jg.Job(noop, name="x"))
    caught: list[BaseException] = []

    async def main():
        try:
            sched.run()
        except RuntimeError as exc:
            caught.append(exc)

    asyncio.run(main())
    assert len(caught) == 1
    assert "co_run" in str(caught[0])


def test_co_run_inside_a_loop():
    async def body():
        await asyncio.sleep(0.01)
        return 7

    job = jg.Job(body, name="body")
    sched = jg.Scheduler(job)

    async def main():
        return await sched.co_run()

    report = asyncio.run(main())
    assert report.ok
    assert job.result() == 7


def test_co_run_accepts_run_options():
    gauge = Gauge()
    sched = jg.Scheduler(*[jg.Job(gauged_async(gauge), name=f"j{i}") for i in range(4)])

    async def main():
        return await sched.co_run(window=1)

    assert asyncio.run(main()).ok
    assert gauge.max == 1


def test_scheduler_can_run_twice():
    calls: list[int] = []
    sched = jg.Scheduler(jg.Job(lambda: calls.append(1), name="x"))
    assert sched.run().ok
    assert sched.run().ok
    assert calls == [1, 1]


# -- stats -------------------------------------------------------------------------------------

_STATS = re.compile(r"^(\d+ [a-z_ ]+?)( \+ \d+ [a-z_ ]+?)* = (\d+) jobs?$")


def _parse_stats(line: str) -> tuple[dict[str, int], int]:
    assert "\n" not in line
    assert _STATS.match(line), line
    left, total = line.rsplit(" = ", 1)
    parts = {}
    for part in left.split(" + "):
        count, state = part.split(" ", 1)
        parts[state] = int(count)
    return parts, int(total.split()[0])


def test_stats_before_and_after_a_run():
    sched = jg.Scheduler(jg.Job(noop, name="a"), jg.Job(noop, name="b"), jg.Job(boom, name="c"))
    parts, total = _parse_stats(sched.stats())
    assert parts == {"pending": 3}
    assert total == 3
    sched.run()
    parts, total = _parse_stats(sched.stats())
    assert parts == {"succeeded": 2, "failed": 1}
    assert total == 3


def test_stats_during_a_run():
    seen: list[str] = []
    sched_ref: list[jg.Scheduler] = []

    async def slow():
        await asyncio.sleep(0.3)

    async def probe():
        await asyncio.sleep(0.1)
        seen.append(sched_ref[0].stats())

    s = jg.Job(slow, name="slow")
    p = jg.Job(probe, name="probe")
    done = jg.Job(noop, name="done")
    after = jg.Job(noop, name="after", requires=s)
    sched = jg.Scheduler(s, p, done, after)
    sched_ref.append(sched)
    assert sched.run().ok
    parts, total = _parse_stats(seen[0])
    assert parts == {"succeeded": 1, "running": 2, "pending": 1}
    assert total == 4
