"""The runner's edge cases: cancellation, tasks, races, resources, stubborn bodies."""

from __future__ import annotations

import asyncio
import collections
import threading
import time

import pytest

import jobgraph as jg
import proc_helpers as ph


def test_a_coroutine_cancelled_from_inside_fails_and_skips_its_dependents():
    async def cancels_itself():
        await asyncio.sleep(0)
        raise asyncio.CancelledError()

    a = jg.Job(cancels_itself, name="a")
    b = jg.Job(lambda: 1, requires=a, name="b")
    report = jg.Scheduler(a, b).run()
    assert a.state is jg.State.FAILED and b.state is jg.State.SKIPPED
    assert "cancelled from inside" in report.why()


def test_cancelled_error_in_the_first_step_is_a_failure_not_a_crash():
    async def at_once():
        raise asyncio.CancelledError()

    a = jg.Job(at_once)
    c = jg.Job(lambda: 2)
    report = jg.Scheduler(a, c).run()
    assert a.state is jg.State.FAILED and c.result() == 2
    assert report.exit_code == 1


def test_coroutine_jobs_run_in_worker_tasks_not_in_the_callers():
    seen = []

    async def who():
        seen.append(asyncio.current_task())
        async with asyncio.timeout(5):  # needs the job's own task to work
            await asyncio.sleep(0)
        return "ok"

    async def main() -> None:
        jobs = [jg.Job(who) for _ in range(3)]
        report = await jg.Scheduler(*jobs).co_run()
        assert report.ok
        assert None not in seen and asyncio.current_task() not in seen

    asyncio.run(main())


def test_asyncio_timeout_inside_a_job_times_out_only_that_job():
    async def bounded():
        async with asyncio.timeout(0.05):
            await asyncio.sleep(5)

    a = jg.Job(bounded, name="a")
    b = jg.Job(lambda: 1, name="b")
    report = jg.Scheduler(a, b).run()
    assert a.state is jg.State.FAILED and "TimeoutError" in report.why()
    assert b.result() == 1


def test_abort_runs_the_finally_of_a_suspended_coroutine():
    cleaned = []

    async def suspended():
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0)
            cleaned.append(True)

    def boom():
        raise ValueError("x")

    report = jg.Scheduler(jg.Job(suspended), jg.Job(boom, critical=True)).run()
    assert report.exit_code == 2 and cleaned == [True]


def test_after_a_critical_failure_at_submission_the_rest_of_the_batch_does_not_start():
    started = threading.Event()
    bad = jg.Job(ph.add, 1, threading.Lock(), executor="process", critical=True, name="bad")
    other = jg.Job(started.set, name="other")
    report = jg.Scheduler(bad, other).run()
    assert report.exit_code == 2
    assert other.state is jg.State.CANCELLED and not started.is_set()


def test_an_exception_that_cannot_be_unpickled_fails_the_job_without_hanging():
    job = jg.Job(ph.raise_bad_row, executor="process", name="row")
    started = time.monotonic()
    report = jg.Scheduler(job).run()
    assert time.monotonic() - started < 20
    assert job.state is jg.State.FAILED
    assert "cannot be read back" in report.jobs[0].error


def test_a_command_whose_escaped_child_holds_the_pipe_does_not_hang_the_job():
    job = jg.Shell("setsid sleep 8 & echo hi", name="escape")
    started = time.monotonic()
    jg.Scheduler(job).run()
    assert time.monotonic() - started < 5
    assert job.result().stdout == "hi\n"


def test_fractional_resources_never_drift():
    jobs = [
        jg.Job(lambda: None, resources={"cpu": amount}, name=f"j{k}")
        for k, amount in enumerate([0.1, 0.2, 0.3, 0.1, 0.2, 0.3])
    ]
    last = jg.Job(lambda: "all", resources={"cpu": 1.0}, requires=jobs, name="last")
    report = jg.Scheduler(last, resources={"cpu": 1.0}).run(timeout=10)
    assert report.ok and last.result() == "all"


def test_forever_jobs_holding_a_pool_others_need_is_an_error_before_running():
    server = jg.Job(asyncio.sleep, 10, forever=True, resources={"db": 1}, name="server")
    client = jg.Job(lambda: 1, resources={"db": 1}, name="client")
    with pytest.raises(jg.ResourceError, match="would wait forever"):
        jg.Scheduler(server, client, resources={"db": 1}).validate()


def test_stopping_a_stubborn_forever_job_does_not_count_as_a_run_timeout():
    server = jg.Shell("trap '' TERM; sleep 30 & wait", forever=True, name="server")
    work = jg.Job(lambda: 1, name="work")
    scheduler = jg.Scheduler(server, work, timeout=1)
    scheduler.kill_grace = 1.5
    report = scheduler.run()
    assert report.ok and report.exit_code == 0
    assert server.state is jg.State.CANCELLED


def test_many_jobs_under_a_window_with_a_forever_job():
    server = jg.Job(asyncio.sleep, 30, forever=True, name="server")
    jobs = [jg.Job(lambda: None, requires=server) for _ in range(2000)]
    report = jg.Scheduler(server, *jobs, window=1).run(timeout=60)
    assert report.ok and report.counts[jg.State.SUCCEEDED] == 2000


def test_subgraph_with_a_requirement_named_outside_it():
    a = jg.Job(lambda: 1, name="a")
    b = jg.Job(lambda: 2, requires="a", name="b")
    scheduler = jg.Scheduler(a, b)
    sub = scheduler.subgraph(starts=[b])
    assert [j.name for j in sub.topological_order()] == ["b"]
    assert sub.run().ok


def test_validate_looks_inside_nested_schedulers():
    x = jg.Job(lambda: 1, name="x")
    y = jg.Job(lambda: 1, name="y", requires=x)
    x.requires(y)
    inner = jg.Scheduler(x, y, name="inner")
    outer = jg.Scheduler(inner)
    with pytest.raises(jg.CycleError):
        outer.validate()


def test_why_names_the_shell_error_not_its_stderr():
    job = jg.Shell("echo first >&2; echo second >&2; exit 1", name="sh")
    report = jg.Scheduler(job).run()
    assert report.why().startswith(
        "job 'sh' failed: jobgraph.errors.ShellError: command exited with status 1"
    ) or report.why().startswith("job 'sh' failed: ShellError: command exited with status 1")


def test_process_timeout_clock_starts_when_a_worker_takes_the_call():
    jobs = [jg.Job(ph.sleep_for, 0.5, timeout=2.0, name=f"w{k}") for k in range(6)]
    report = jg.Scheduler(*jobs).run()
    assert report.ok, report.why()


def test_a_coroutine_that_ignores_cancellation_is_abandoned():
    async def stubborn():
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    job = jg.Job(stubborn, timeout=0.2, name="stubborn")
    scheduler = jg.Scheduler(job)
    scheduler.kill_grace = 0.1
    started = time.monotonic()
    report = scheduler.run()
    assert time.monotonic() - started < 10
    assert job.state is jg.State.TIMED_OUT
    assert "ignored the request to stop" in report.jobs[0].note


def test_a_plain_function_returning_a_coroutine_is_awaited():
    async def inner():
        return 7

    job = jg.Job(lambda: inner())
    jg.Scheduler(job).run()
    assert job.result() == 7


def test_data_passing_keeps_named_tuples():
    Point = collections.namedtuple("Point", "x y")
    a = jg.Job(lambda: 3)
    seen = jg.Job(lambda p: (type(p).__name__, p.x, p.y), Point(a, 4))
    jg.Scheduler(seen).run()
    assert seen.result() == ("Point", 3, 4)


def test_an_alert_skipped_because_nothing_failed_keeps_the_run_ok():
    work = jg.Job(lambda: 1, name="work")
    alert = jg.Job(lambda: "page", requires=work, run_if="failure", name="alert")
    report = jg.Scheduler(work, alert).run()
    assert alert.state is jg.State.SKIPPED
    assert report.ok and report.exit_code == 0 and report.why() == "ok"


def test_suspended_jobs_all_run_at_once():
    async def nap():
        await asyncio.sleep(0.3)

    jobs = [jg.Job(nap) for _ in range(50)]
    started = time.monotonic()
    assert jg.Scheduler(*jobs).run().ok
    assert time.monotonic() - started < 3.0  # 50 x 0.3 s in sequence would be 15 s


def test_each_job_runs_in_its_own_context():
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen = []

    async def setter():
        var.set("set by a job")

    async def reader():
        seen.append(var.get())

    first = jg.Job(setter)
    second = jg.Job(reader, requires=first)
    jg.Scheduler(second).run()
    assert seen == ["unset"]


def test_task_groups_work_inside_jobs():
    async def fan():
        async with asyncio.TaskGroup() as group:
            parts = [group.create_task(asyncio.sleep(0.01, result=k)) for k in range(3)]
        return sum(p.result() for p in parts)

    job = jg.Job(fan)
    jg.Scheduler(job, jg.Job(fan), jg.Job(lambda: 1)).run()
    assert job.result() == 3


def test_a_timed_out_job_does_not_disturb_jobs_that_ran_on_its_worker():
    async def quick(k):
        return k

    async def slow():
        await asyncio.sleep(10)

    slow_job = jg.Job(slow, timeout=0.2, name="slow")
    quick_jobs = [jg.Job(quick, k, name=f"q{k}") for k in range(20)]
    after = [jg.Job(quick, k, requires=slow_job, run_if="done", name=f"a{k}") for k in range(5)]
    report = jg.Scheduler(slow_job, *quick_jobs, *after).run()
    assert slow_job.state is jg.State.TIMED_OUT
    assert [j.result() for j in quick_jobs] == list(range(20))
    assert [j.result() for j in after] == list(range(5))
    assert report.exit_code == 1


def test_a_burst_of_quick_jobs_still_honours_the_run_timeout():
    async def quick():
        # Short, never suspending, yet 150k of them outlast the timeout five times over
        # (no-op jobs alone may all end before it on a fast machine).
        until = time.perf_counter() + 1e-5
        while time.perf_counter() < until:
            pass

    jobs = [jg.Job(quick) for _ in range(150_000)]
    started = time.monotonic()
    report = jg.Scheduler(*jobs, timeout=0.3).run()
    assert report.exit_code == 3, report.why()
    assert report.counts[jg.State.CANCELLED] > 0
    assert time.monotonic() - started < 30


def test_an_unreadable_input_makes_the_job_run(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    prep = jg.Shell("true", name="prep")
    build = jg.Shell("echo built", inputs=[str(folder)], requires=prep, name="build")
    report = jg.Scheduler(build).run(timeout=30)
    assert report.ok and build.result().stdout == "built\n"


def test_a_keyboard_interrupt_raised_by_a_job_still_gives_it_an_end():
    async def ctrl_c():
        raise KeyboardInterrupt

    job = jg.Job(ctrl_c, name="ctrl-c")
    with pytest.raises(KeyboardInterrupt):
        jg.Scheduler(job).run()
    assert job.state.is_terminal


def test_a_swallowed_timeout_leaves_no_cancellation_on_the_worker():
    seen = []

    async def swallow():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "swallowed"

    async def after():
        seen.append(asyncio.current_task().cancelling())

    first = jg.Job(swallow, timeout=0.1, name="swallow")
    second = jg.Job(after, requires=first, run_if="done", name="after")
    jg.Scheduler(second).run()
    assert first.state is jg.State.TIMED_OUT
    assert seen == [0]


def test_plain_progress_stops_quietly_when_its_reader_goes_away():
    import io

    from jobgraph.progress import PlainProgress

    out = io.StringIO()
    out.close()
    progress = PlainProgress(out)
    report = jg.Scheduler(jg.Job(lambda: 1)).run(on_event=progress)
    assert report.ok and progress.out is None


def test_scheduler_rejects_options_it_does_not_know():
    with pytest.raises(TypeError, match=r"'resume' \(it is an option of run\(\)"):
        jg.Scheduler(resume="last")
    with pytest.raises(TypeError, match="unexpected keyword argument 'windw'"):
        jg.Scheduler(windw=3)
    assert jg.Scheduler(retries=2, priority=1).retries == 2  # options as a nested job are fine


def test_a_run_whose_last_job_is_up_to_date_after_a_long_one_ends():
    # The driver sleeps while a worker drains the queue. Here the worker runs a job
    # longer than its time slice, yields to the loop (the driver wakes, sees the worker
    # busy, sleeps again), then finds the last job up to date: ending a job that way
    # wakes nobody, so the worker's stopping must. It once hung the run for ever.
    async def slow() -> int:
        await asyncio.sleep(0.05)  # longer than a worker's slice of 20 ms
        return 1

    def after(x: int) -> int:
        return x + 1

    first = jg.Job(slow, name="slow", cache=True)
    sched = jg.Scheduler(first, jg.Job(after, first, name="after", cache=True))
    assert sched.run().ok

    async def again() -> jg.Report:
        return await asyncio.wait_for(sched.co_run(force=["slow"]), 10)

    report = asyncio.run(again())
    assert {r.name: r.state for r in report.jobs} == {
        "slow": jg.State.SUCCEEDED,
        "after": jg.State.UP_TO_DATE,
    }
