"""Acceptance tests for API.md section 1 (Jobs) and section 2 (States)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import math

import pytest

import jobgraph as jg
from spec.helpers_proc import state_names, timestamp

# -- small bodies ------------------------------------------------------------------------


def fetch():
    return "data"


def two():
    return 2


def three():
    return 3


def add(x, y):
    return x + y


async def async_double(x):
    await asyncio.sleep(0)
    return 2 * x


def boom():
    raise ValueError("bad row 12")


def noop():
    return None


# -- construction: Job options ---------------------------------------------------------


def test_job_accepts_every_documented_option():
    job = jg.Job(
        add,
        1,
        name="full",
        requires=(),
        critical=False,
        forever=False,
        timeout=5,
        retries=1,
        retry_delay=0.0,
        retry_backoff=1.0,
        resources=None,
        priority=3,
        cache=False,
        inputs=(),
        outputs=(),
        env_keys=(),
        run_if="done",
        executor=None,
        y=2,
    )
    assert job.name == "full"
    assert job.requirements == []


def test_job_kinds_plain_async_function_and_coroutine_object():
    async def coro_fn():
        return "from coroutine function"

    async def coro_obj():
        return "from coroutine object"

    a = jg.Job(fetch, name="plain")
    b = jg.Job(coro_fn, name="asyncfn")
    c = jg.Job(coro_obj(), name="coroobj")
    report = jg.Scheduler(a, b, c).run()
    assert report.ok, report.why()
    assert a.result() == "data"
    assert b.result() == "from coroutine function"
    assert c.result() == "from coroutine object"


def test_keyword_arguments_are_passed_to_the_function():
    job = jg.Job(add, 1, y=41)
    assert jg.Scheduler(job).run().ok
    assert job.result() == 42


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1, -0.5, 0, 0.0])
def test_bad_job_timeout_is_value_error_at_construction(bad):
    with pytest.raises(ValueError):
        jg.Job(noop, timeout=bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1, 0])
def test_bad_shell_timeout_is_value_error_at_construction(bad):
    with pytest.raises(ValueError):
        jg.Shell("true", timeout=bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1, 0])
def test_bad_scheduler_timeout_is_value_error_at_construction(bad):
    # A Scheduler is itself a job; its timeout obeys the same rule.
    with pytest.raises(ValueError):
        jg.Scheduler(jg.Job(noop), timeout=bad)


def test_positive_timeout_is_accepted():
    jg.Job(noop, timeout=0.5)
    jg.Job(noop, timeout=2)


# -- naming ------------------------------------------------------------------------------


def test_explicit_name_is_kept():
    job = jg.Job(fetch, name="download")
    jg.Scheduler(job).validate()
    assert job.name == "download"


def test_name_derived_from_function_and_made_unique():
    first, second, third = jg.Job(fetch), jg.Job(fetch), jg.Job(fetch)
    sched = jg.Scheduler(first, second, third)
    sched.validate()
    assert [first.name, second.name, third.name] == ["fetch", "fetch-2", "fetch-3"]
    report = sched.run()
    assert report.ok
    assert set(state_names(report)) == {"fetch", "fetch-2", "fetch-3"}


def test_derived_names_are_unique_as_soon_as_jobs_share_a_scheduler():
    first, second = jg.Job(fetch), jg.Job(fetch)
    assert first.name == second.name == "fetch"  # in no scheduler: the plain derivation
    sched = jg.Scheduler(first, second)  # no validate(): reading a name is enough
    assert [first.name, second.name] == ["fetch", "fetch-2"]
    third = jg.Job(fetch)
    sched.add(third)
    assert [first.name, second.name, third.name] == ["fetch", "fetch-2", "fetch-3"]


def _fetch_2() -> None:
    return None


_fetch_2.__name__ = "fetch-2"  # a function whose name reads as another's second


@pytest.mark.parametrize(
    "made",
    [
        lambda: [jg.Job(fetch) for _ in range(4)],  # none named: the scheduler's names
        lambda: [jg.Job(fetch), jg.Job(_fetch_2), jg.Job(fetch), jg.Job(fetch)],
        lambda: [jg.Job(fetch), jg.Job(fetch, name="fetch-2"), jg.Job(fetch)],
        lambda: [jg.Job(fetch, name=f"n{k}") for k in range(3)],  # all named
    ],
    ids=["none named", "a base like a number", "named and not", "all named"],
)
def test_a_runs_names_by_index_are_the_jobs_names(made):
    jobs = made()
    sched = jg.Scheduler(*jobs)
    view = sched.plan().names_by_index()
    assert view.frozen() == [job.name for job in sched.plan().jobs]
    assert len(set(view.frozen())) == len(jobs)


def test_derived_names_follow_the_graph_after_a_removal():
    first, second = jg.Job(fetch), jg.Job(fetch)
    sched = jg.Scheduler(first, second)
    assert second.name == "fetch-2"
    sched.remove(first)
    assert second.name == "fetch"
    assert sched.predecessors("fetch") == []  # and the graph finds it by that name


def test_removing_a_job_drops_requirements_on_its_unique_name_only():
    first, second = jg.Job(fetch), jg.Job(fetch)
    on_first = jg.Job(two, name="c", requires="fetch")
    on_second = jg.Job(two, name="d", requires="fetch-2")
    sched = jg.Scheduler(first, second, on_first, on_second)
    sched.remove(second)
    assert on_first.requirements == [] and on_first._requires == ["fetch"]
    assert on_second._requires == []
    assert sched.predecessors("c") == [first]


def test_a_bad_item_leaves_the_jobs_added_before_it_in_the_graph():
    sched = jg.Scheduler(jg.Job(fetch))
    sched.validate()
    added = jg.Job(fetch)
    with pytest.raises(TypeError):
        sched.update([added, 42])
    assert added in sched.plan().jobs
    assert added.name == "fetch-2"


def test_a_report_keeps_the_names_of_its_run_after_the_graph_changes():
    failed = jg.Job(boom)
    second = jg.Job(fetch, requires=failed)
    third = jg.Job(fetch, requires=second)
    sched = jg.Scheduler(failed, second, third)
    report = sched.run()
    sched.remove(second)  # third would now be derived as plain "fetch"
    records = {r["name"]: r for r in report.to_dict()["jobs"]}
    assert set(records) == {"boom", "fetch", "fetch-2"}
    assert records["fetch-2"]["requires"] == ["fetch"]
    assert records["fetch-2"]["skipped_because"] == ["boom"]


def test_running_a_scheduler_again_and_again_keeps_no_trace_per_run():
    # Each run's report reads names lazily and registers with the scheduler so that a
    # later change of the graph cannot rename its jobs; runs whose reports are gone
    # must not leave a reference behind each.
    sched = jg.Scheduler(jg.Job(fetch), jg.Job(fetch))
    for _ in range(50):
        assert sched.run().ok
    gc.collect()  # a finished run's objects hold each other: freed by the collector
    assert sched.run().ok
    assert len(sched._name_views) <= 2  # that last run's, and at most one not yet freed


def test_derived_names_are_deterministic_across_identical_graphs():
    def build():
        jobs = [jg.Job(fetch), jg.Job(fetch), jg.Job(two)]
        jg.Scheduler(*jobs).validate()
        return [j.name for j in jobs]

    assert build() == build()


def test_derived_name_does_not_collide_with_explicit_name():
    explicit = jg.Job(two, name="fetch")
    derived = jg.Job(fetch)
    sched = jg.Scheduler(explicit, derived)
    sched.validate()
    assert explicit.name == "fetch"
    assert derived.name != "fetch"
    assert derived.name.startswith("fetch")
    assert sched.run().ok


def test_shell_name_derived_from_command():
    job = jg.Shell("echo hello")
    jg.Scheduler(job).validate()
    assert "echo" in job.name


def test_same_explicit_name_twice_is_duplicate_name_error():
    a = jg.Job(fetch, name="x")
    b = jg.Job(two, name="x")
    with pytest.raises(jg.DuplicateNameError):
        jg.Scheduler(a, b).validate()


# -- data passing --------------------------------------------------------------------------


def test_job_arguments_are_replaced_by_results_and_become_requirements():
    x = jg.Job(two)
    y = jg.Job(three)
    total = jg.Job(add, x, y=y, name="total")
    assert set(total.requirements) == {x, y}
    sched = jg.Scheduler(total)  # requirements come along with the job
    report = sched.run()
    assert report.ok, report.why()
    assert total.result() == 5
    assert set(sched.predecessors(total)) == {x, y}


def test_data_passing_into_coroutine_function():
    x = jg.Job(three)
    doubled = jg.Job(async_double, x)
    assert jg.Scheduler(doubled).run().ok
    assert doubled.result() == 6


def test_data_passing_chain_of_three():
    a = jg.Job(two, name="a")
    b = jg.Job(add, a, 10, name="b")
    c = jg.Job(add, b, b, name="c")
    assert jg.Scheduler(c).run().ok
    assert c.result() == 24


def test_failed_data_dependency_skips_consumer():
    bad = jg.Job(boom, name="bad")
    consumer = jg.Job(add, bad, 1, name="consumer")
    report = jg.Scheduler(consumer).run()
    assert bad.state is jg.State.FAILED
    assert consumer.state is jg.State.SKIPPED
    assert consumer.skipped_because == ["bad"]
    assert not report.ok


# -- requires -----------------------------------------------------------------------------


def test_requires_accepts_a_single_job():
    a = jg.Job(noop, name="a")
    b = jg.Job(noop, name="b", requires=a)
    assert b.requirements == [a]


def test_requires_accepts_nested_iterables_and_ignores_none():
    a, b, c, d = (jg.Job(noop, name=n) for n in "abcd")
    job = jg.Job(noop, name="job", requires=[a, None, (b, [c, None]), {d}, None])
    assert set(job.requirements) == {a, b, c, d}
    assert len(job.requirements) == 4
    sched = jg.Scheduler(job)
    assert set(sched.predecessors(job)) == {a, b, c, d}
    assert sched.run().ok


def test_requires_none_means_no_requirement():
    job = jg.Job(noop, requires=None)
    assert job.requirements == []


def test_requires_a_generator():
    jobs = [jg.Job(noop, name=f"j{i}") for i in range(3)]
    last = jg.Job(noop, name="last", requires=(j for j in jobs))
    assert set(last.requirements) == set(jobs)


def test_requires_a_sequence_runs_after_all_of_it():
    order: list[str] = []

    def mark(name):
        def body():
            order.append(name)

        return body

    x = jg.Job(mark("x"), name="x")
    y = jg.Job(mark("y"), name="y")
    seq = jg.Sequence(x, y)
    z = jg.Job(mark("z"), name="z", requires=seq)
    report = jg.Scheduler(seq, z).run()
    assert report.ok, report.why()
    assert order == ["x", "y", "z"]


def test_sequence_chains_its_elements():
    order: list[str] = []

    def mark(name):
        def body():
            order.append(name)

        return body

    a, b, c = (jg.Job(mark(n), name=n) for n in "abc")
    sched = jg.Scheduler(jg.Sequence(a, b, c))
    assert sched.predecessors(b) == [a]
    assert sched.predecessors(c) == [b]
    assert sched.entry_jobs() == [a]
    assert sched.run().ok
    assert order == ["a", "b", "c"]


def test_sequence_requires_applies_to_its_first_element():
    first_req = jg.Job(noop, name="setup")
    a, b = jg.Job(noop, name="a"), jg.Job(noop, name="b")
    sched = jg.Scheduler(jg.Sequence(a, b, requires=first_req))
    assert sched.predecessors(a) == [first_req]
    assert sched.predecessors(b) == [a]


def test_nested_sequences():
    order: list[str] = []

    def mark(name):
        def body():
            order.append(name)

        return body

    a, b, c, d = (jg.Job(mark(n), name=n) for n in "abcd")
    report = jg.Scheduler(jg.Sequence(jg.Sequence(a, b), jg.Sequence(c, d))).run()
    assert report.ok
    assert order == ["a", "b", "c", "d"]


def test_job_requires_method_adds_and_returns_the_job():
    a = jg.Job(noop, name="a")
    b = jg.Job(noop, name="b")
    c = jg.Job(noop, name="c")
    job = jg.Job(noop, name="job")
    returned = job.requires(a, [b, None], None).requires(c)
    assert returned is job
    assert set(job.requirements) == {a, b, c}


def test_requirements_added_to_one_job_stay_its_own():
    # Jobs without requirements share one empty default: adding must never reach it.
    a, b, c = jg.Job(noop, name="a"), jg.Job(noop, name="b"), jg.Job(noop, name="c")
    a.requires(c)
    assert a.requirements == [c]
    assert b.requirements == []
    assert jg.Job(noop).requirements == []


def test_options_left_out_read_their_defaults_and_can_be_set():
    job = jg.Job(noop)
    assert (job.critical, job.timeout, job.retries, job.run_if, job.inputs) == (
        False,
        None,
        0,
        "success",
        (),
    )
    job.critical = True
    assert job.critical and not jg.Job(noop).critical


def test_a_subclass_of_job_runs_like_a_job():
    class Tagged(jg.Job):
        def __init__(self, fn, tag, **options):
            super().__init__(fn, **options)
            self.tag = tag

    jobs = [Tagged(noop, tag=str(i)) for i in range(3)]
    assert jg.Scheduler(*jobs).run().ok
    assert [j.tag for j in jobs] == ["0", "1", "2"]
    assert [j.name for j in jobs] == ["noop", "noop-2", "noop-3"]


def test_requirements_include_data_dependencies_and_explicit_ones():
    a = jg.Job(two, name="a")
    b = jg.Job(noop, name="b")
    job = jg.Job(add, a, 1, requires=b, name="job")
    assert set(job.requirements) == {a, b}


def test_requirement_ordering_is_respected_at_run_time():
    order: list[str] = []

    async def slow():
        await asyncio.sleep(0.05)
        order.append("slow")

    def after():
        order.append("after")

    s = jg.Job(slow, name="slow")
    a = jg.Job(after, name="after", requires=s)
    assert jg.Scheduler(a).run().ok
    assert order == ["slow", "after"]


# -- coroutine objects -----------------------------------------------------------------


def test_coroutine_object_runs_once_and_second_run_is_a_clear_error():
    calls: list[int] = []

    async def body():
        calls.append(1)
        return "once"

    job = jg.Job(body(), name="coro")
    sched = jg.Scheduler(job)
    first = sched.run()
    assert first.ok
    assert job.result() == "once"
    try:
        second = sched.run()
    except Exception as exc:  # a clear error raised by run() is acceptable
        assert "coroutine" in str(exc).lower()
    else:
        # Or the job fails with a clear message; it must never silently pass.
        assert not second.ok
        assert job.state is jg.State.FAILED
        assert job.state is not jg.State.SUCCEEDED
        text = str(job.exception()) + (second.to_dict()["jobs"][0]["error"] or "")
        assert "coroutine" in text.lower()
    assert calls == [1]


def test_coroutine_function_can_run_twice():
    calls: list[int] = []

    async def body():
        calls.append(1)

    sched = jg.Scheduler(jg.Job(body))
    assert sched.run().ok
    assert sched.run().ok
    assert calls == [1, 1]


# -- read-only attributes after a run ------------------------------------------------------


def test_attributes_after_success():
    async def body():
        await asyncio.sleep(0.05)
        return {"rows": 3}

    job = jg.Job(body, name="load")
    assert job.state is jg.State.PENDING
    before = dt.datetime.now(dt.timezone.utc).timestamp()
    report = jg.Scheduler(job).run()
    after = dt.datetime.now(dt.timezone.utc).timestamp()
    assert report.ok
    assert job.state is jg.State.SUCCEEDED
    assert isinstance(job.state, jg.State)
    assert job.result() == {"rows": 3}
    assert job.exception() is None
    assert job.attempts == 1
    assert job.skipped_because == []
    start, end = timestamp(job.started_at), timestamp(job.ended_at)
    assert before - 1 <= start <= end <= after + 1
    assert job.duration is not None
    assert 0.04 <= job.duration < 5
    assert abs((end - start) - job.duration) < 0.05


def test_job_datetimes_are_utc_when_datetimes():
    job = jg.Job(noop)
    jg.Scheduler(job).run()
    for value in (job.started_at, job.ended_at):
        if isinstance(value, dt.datetime):
            assert value.tzinfo is not None
            assert value.utcoffset() == dt.timedelta(0)


def test_attributes_after_failure_and_result_raises_job_error_chained():
    job = jg.Job(boom, name="load")
    report = jg.Scheduler(job).run()
    assert not report.ok
    assert job.state is jg.State.FAILED
    exc = job.exception()
    assert isinstance(exc, ValueError)
    assert "bad row 12" in str(exc)
    with pytest.raises(jg.JobError) as info:
        job.result()
    assert info.value.__cause__ is exc
    assert job.attempts == 1
    assert job.started_at is not None and job.ended_at is not None


def test_skipped_job_attributes():
    bad = jg.Job(boom, name="bad")
    child = jg.Job(noop, name="child", requires=bad)
    jg.Scheduler(child).run()
    assert child.state is jg.State.SKIPPED
    assert child.skipped_because == ["bad"]
    assert child.attempts == 0
    with pytest.raises(jg.JobError):
        child.result()


@pytest.mark.parametrize(
    "attribute",
    [
        "name",
        "requirements",
        "state",
        "attempts",
        "started_at",
        "ended_at",
        "duration",
        "skipped_because",
    ],
)
def test_run_time_attributes_are_read_only(attribute):
    job = jg.Job(noop, name="ro")
    jg.Scheduler(job).run()
    with pytest.raises(AttributeError):
        setattr(job, attribute, getattr(job, attribute))


def test_state_during_run_is_running():
    seen: list[jg.State] = []
    job_ref: list[jg.Job] = []

    async def body():
        seen.append(job_ref[0].state)

    job = jg.Job(body, name="me")
    job_ref.append(job)
    assert jg.Scheduler(job).run().ok
    assert seen == [jg.State.RUNNING]


def test_every_job_ends_in_exactly_one_terminal_state():
    terminal = {
        jg.State.SUCCEEDED,
        jg.State.UP_TO_DATE,
        jg.State.FAILED,
        jg.State.TIMED_OUT,
        jg.State.CANCELLED,
        jg.State.SKIPPED,
    }
    ok = jg.Job(noop, name="ok")
    bad = jg.Job(boom, name="bad")
    skipped = jg.Job(noop, name="skipped", requires=bad)

    async def slow():
        await asyncio.sleep(5)

    timed = jg.Job(slow, name="timed", timeout=0.1)
    report = jg.Scheduler(ok, bad, skipped, timed).run()
    states = state_names(report)
    assert states == {
        "ok": "SUCCEEDED",
        "bad": "FAILED",
        "skipped": "SKIPPED",
        "timed": "TIMED_OUT",
    }
    for job in (ok, bad, skipped, timed):
        assert job.state in terminal


def test_state_enum_members():
    names = {s.name for s in jg.State}
    assert {
        "PENDING",
        "READY",
        "RUNNING",
        "SUCCEEDED",
        "UP_TO_DATE",
        "FAILED",
        "TIMED_OUT",
        "CANCELLED",
        "SKIPPED",
    } <= names


def test_coroutine_timeout_cancels_the_coroutine():
    cancelled: list[bool] = []

    async def slow():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    job = jg.Job(slow, name="slow", timeout=0.1)
    report = jg.Scheduler(job).run()
    assert job.state is jg.State.TIMED_OUT
    assert cancelled == [True]
    assert report.elapsed < 3
    with pytest.raises(jg.JobError):
        job.result()


def test_derived_names_stay_unique_when_jobs_are_added_after_a_run():
    async def f() -> None:
        return None

    scheduler = jg.Scheduler(jg.Job(f), jg.Job(f))
    report = scheduler.run()
    scheduler.add(jg.Job(f))
    assert [job.name for job in scheduler.jobs] == ["f", "f-2", "f-3"]
    assert {r.name for r in report.jobs} == {"f", "f-2"}  # the run's, as they were
    assert scheduler.run().ok
