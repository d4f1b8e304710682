"""jobgraph.compat.asynciojobs: asynciojobs' documented behaviour, on jobgraph's engine.

The first tests are the examples of asynciojobs' documentation, rewritten; the others
pin each documented rule, and the defects the layer does not reproduce.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from jobgraph.compat.asynciojobs import (
    AbstractJob,
    Job,
    PrintJob,
    PureScheduler,
    Scheduler,
    Sequence,
    Watch,
    set_debug,
)


async def say(log: list[str], word: str, delay: float = 0.0) -> str:
    log.append(word)
    await asyncio.sleep(delay)
    return word


async def fail(delay: float = 0.0, message: str = "boom") -> None:
    await asyncio.sleep(delay)
    raise ValueError(message)


async def tick(ticks: list[int], period: float = 0.01) -> None:
    while True:
        ticks.append(1)
        await asyncio.sleep(period)


class Counting(AbstractJob):
    """Records how many jobs of its group run at once."""

    def __init__(self, group: dict[str, int], delay: float, **kwds: Any) -> None:
        super().__init__(**kwds)
        self.group, self.delay = group, delay

    async def co_run(self) -> None:
        self.group["now"] += 1
        self.group["peak"] = max(self.group["peak"], self.group["now"])
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.group["now"] -= 1


# -- the documentation's examples ---------------------------------------------------


def test_nested_scheduler_example_runs_as_a_four_step_sequence() -> None:
    log: list[str] = []
    main = Scheduler(
        Sequence(
            Job(say(log, "begin", 0.01)),
            Scheduler(
                Sequence(Job(say(log, "middle-begin", 0.01)), Job(say(log, "middle-end", 0.01)))
            ),
            Job(say(log, "end", 0.01)),
        )
    )
    assert main.run() is True
    assert log == ["begin", "middle-begin", "middle-end", "end"]


def test_parallel_jobs_overlap_and_a_sequence_does_not() -> None:
    parallel = Scheduler(Job(asyncio.sleep(0.2)), Job(asyncio.sleep(0.2)))
    begin = time.monotonic()
    assert parallel.run()
    overlapped = time.monotonic() - begin
    chained = Scheduler(Sequence(Job(asyncio.sleep(0.2)), Job(asyncio.sleep(0.2))))
    begin = time.monotonic()
    assert chained.run()
    assert time.monotonic() - begin >= 0.4 > overlapped


def test_topological_order_lists_each_job_after_its_requirements() -> None:
    log: list[str] = []
    a = Job(say(log, "a"), label="a")
    b = Job(say(log, "b"), label="b", required=a)
    c = Job(say(log, "c"), label="c", required=[a, b])
    sched = PureScheduler(c, b, a)
    assert [j.label for j in sched.topological_order()] == ["a", "b", "c"]
    assert sched.run()
    assert log == ["a", "b", "c"]
    assert [j.result() for j in (a, b, c)] == ["a", "b", "c"]


def test_watch_prints_elapsed_time(capsys: pytest.CaptureFixture[str]) -> None:
    watch = Watch("hello")
    assert capsys.readouterr().out == "000.000  hello\n"
    time.sleep(0.05)
    assert 0.05 <= watch.seconds() < 5
    watch.print_elapsed()
    assert capsys.readouterr().out.startswith("000.0")


# -- failures, criticality, timeouts ------------------------------------------------


def test_a_non_critical_failure_does_not_block_its_dependents() -> None:
    log: list[str] = []
    broken = Job(fail(), critical=False, label="broken")
    after = Job(say(log, "after"), required=broken, label="after")
    sched = PureScheduler(broken, after)
    assert sched.run() is True
    assert isinstance(broken.raised_exception(), ValueError)
    assert broken.is_done() and broken.result() is None
    assert after.result() == "after"
    assert sched.why() == "FINE"


def test_a_critical_failure_stops_the_run_and_cancels_what_runs() -> None:
    slow = Job(asyncio.sleep(5), label="slow", critical=False)
    broken = Job(fail(0.05), label="broken")  # critical by default
    never = Job(asyncio.sleep(0), label="never", required=broken)
    sched = PureScheduler(slow, broken, never)
    begin = time.monotonic()
    assert sched.run() is False
    assert time.monotonic() - begin < 3
    assert sched.failed_critical() and not sched.failed_time_out()
    assert sched.why() == "a CRITICAL job has raised an exception"
    assert slow.is_running() and not slow.is_done()
    assert never.is_idle()
    never.close()


def test_a_critical_scheduler_raises_what_its_critical_job_raised() -> None:
    sched = Scheduler(Job(fail(message="the cause")))
    with pytest.raises(ValueError, match="the cause"):
        sched.run()
    quiet = Scheduler(Job(fail()), critical=False)
    assert quiet.run() is False


def test_a_timeout_stops_the_run_and_keeps_what_finished() -> None:
    quick = Job(asyncio.sleep(0.01, result="quick"))
    slow = Job(asyncio.sleep(10))
    sched = PureScheduler(quick, slow, timeout=0.3)
    begin = time.monotonic()
    assert sched.run() is False
    assert time.monotonic() - begin < 5
    assert sched.failed_time_out() and sched.why() == "TIMED OUT after 0.3s"
    assert quick.result() == "quick"
    assert not slow.is_done()
    with pytest.raises(ValueError, match="not finished"):
        slow.result()


def test_a_critical_scheduler_that_times_out_raises_timeout_error() -> None:
    with pytest.raises(TimeoutError, match=r"timed out after 0\.2s"):
        Scheduler(Job(asyncio.sleep(10)), timeout=0.2).run()


def test_nested_criticality_bubbles_up_only_through_critical_schedulers() -> None:
    def nest(outer: bool, inner: bool, job: bool) -> Scheduler:
        return Scheduler(
            Scheduler(Job(fail(message="deep"), critical=job), critical=inner), critical=outer
        )

    assert nest(False, False, True).run() is True  # the inner one returns False quietly
    assert nest(False, True, True).run() is False  # the inner one raises: critical job
    with pytest.raises(ValueError, match="deep"):
        nest(True, True, True).run()


# -- window, forever, shutdown ------------------------------------------------------


def test_the_window_bounds_jobs_running_at_once() -> None:
    group = {"now": 0, "peak": 0}
    sched = PureScheduler(*(Counting(group, 0.05) for _ in range(6)), jobs_window=2)
    assert sched.run()
    assert group["peak"] == 2


def test_a_failing_job_gives_its_window_slot_back() -> None:
    # asynciojobs kept the slot of a job that raised: with a window of 1 the rest hung.
    log: list[str] = []
    first = Job(fail(), critical=False, label="first")
    rest = [Job(say(log, str(i)), critical=False, label=str(i)) for i in range(3)]
    sched = PureScheduler(first, *rest, jobs_window=1, timeout=10)
    assert sched.run() is True
    assert sorted(log) == ["0", "1", "2"]


def test_a_job_waiting_for_a_slot_is_scheduled_but_not_running() -> None:
    seen: dict[str, bool] = {}
    waiting = Job(asyncio.sleep(0), label="waiting")

    async def look() -> None:
        await asyncio.sleep(0.01)
        seen.update(scheduled=waiting.is_scheduled(), running=waiting.is_running())

    sched = PureScheduler(Job(look()), waiting, jobs_window=1)
    assert waiting.is_idle()
    assert sched.run()
    assert seen == {"scheduled": True, "running": False}
    assert waiting.is_done() and waiting.is_running()


def test_forever_jobs_are_cancelled_once_the_others_are_done() -> None:
    ticks: list[int] = []
    ticker = Job(tick(ticks), forever=True)
    work = Job(asyncio.sleep(0.1))
    assert PureScheduler(ticker, work).run() is True
    assert ticks and not ticker.is_done() and work.is_done()


def test_a_job_requiring_a_forever_job_waits_for_it_to_be_done() -> None:
    log: list[str] = []
    sub = Scheduler(Sequence(Job(say(log, "one", 0.05)), Job(say(log, "two", 0.05))), forever=True)
    main = Scheduler(Sequence(Job(say(log, "begin")), sub, Job(say(log, "end"))))
    assert main.run()
    assert log == ["begin", "one", "two", "end"]


class Closing(Job):
    def __init__(self, record: list[str], name: str, delay: float, **kwds: Any) -> None:
        super().__init__(asyncio.sleep(0), label=name, **kwds)
        self.record, self.delay = record, delay

    async def co_shutdown(self) -> None:
        await asyncio.sleep(self.delay)
        self.record.append(str(self.label))


def test_jobs_are_shut_down_after_the_run_within_the_shutdown_timeout() -> None:
    record: list[str] = []
    sched = PureScheduler(
        Closing(record, "quick", 0.0), Closing(record, "slow", 5.0), shutdown_timeout=0.2
    )
    begin = time.monotonic()
    assert sched.run()
    assert time.monotonic() - begin < 3
    assert record == ["quick"]
    assert asyncio.run(sched.co_shutdown()) is True  # once per run: nothing more to do


# -- graph queries and edits --------------------------------------------------------


def diamond() -> tuple[PureScheduler, list[Job]]:
    jobs = [Job(asyncio.sleep(0), label=f"j{i}") for i in range(4)]
    top, left, right, bottom = jobs
    left.requires(top)
    right.requires(top)
    bottom.requires(left, right)
    return PureScheduler(*jobs), jobs


def test_graph_queries() -> None:
    sched, (top, left, right, bottom) = diamond()
    assert list(sched.entry_jobs()) == [top]
    assert list(sched.exit_jobs()) == [bottom]
    assert sched.predecessors(bottom) == {left, right}
    assert set(sched.successors(top)) == {left, right}
    assert sched.predecessors_upstream(bottom) == {top, left, right}
    assert sched.successors_downstream(top) == {left, right, bottom}
    assert sched.check_cycles()
    sched.close_all_jobs()


def test_bypass_and_remove_keeps_the_order() -> None:
    sched, (top, left, right, bottom) = diamond()
    sched.bypass_and_remove(left)
    assert left not in sched.jobs and top in bottom.required and right in bottom.required
    assert sched.sanitize()
    with pytest.raises(ValueError, match="not in this scheduler"):
        sched.bypass_and_remove(left)
    sched.close_all_jobs()
    left.close()


def test_keep_only_between_and_keep_only() -> None:
    sched, (top, left, right, bottom) = diamond()
    sched.keep_only_between(starts=[top], ends=[bottom], keep_starts=False)
    assert sched.jobs == {left, right, bottom}
    assert not left.required  # top is gone, and so is the requirement
    sched.keep_only([left])
    assert sched.jobs == {left}
    for job in (top, left, right, bottom):
        job.close()


def test_cycles_are_found_and_named() -> None:
    a, b = Job(asyncio.sleep(0), label="a"), Job(asyncio.sleep(0), label="b")
    a.requires(b)
    b.requires(a)
    sched = PureScheduler(a, b)
    assert not sched.check_cycles()
    with pytest.raises(ValueError, match="cycle"):
        list(sched.topological_order())
    with pytest.raises(ValueError, match="cycle"):
        sched.run()
    sched.close_all_jobs()


def test_requiring_a_job_outside_the_scheduler_is_a_clear_error() -> None:
    outside = Job(asyncio.sleep(0), label="outside")
    inside = Job(asyncio.sleep(0), label="inside", required=outside)
    sched = PureScheduler(inside)
    with pytest.raises(
        ValueError, match="requires <Job `outside`>, which is not in scheduler 'PureScheduler'"
    ):
        sched.run()
    assert not sched.sanitize()  # drops it
    assert sched.run()
    outside.close()


def test_requires_accepts_nested_collections_and_removal() -> None:
    jobs = [Job(asyncio.sleep(0)) for _ in range(4)]
    target = Job(asyncio.sleep(0), required=[jobs[0], (jobs[1],), {jobs[2]}, [[jobs[3]]], None])
    assert len(target.required) == 4
    target.requires(jobs[0], remove=True)
    assert len(target.required) == 3
    with pytest.raises(TypeError, match="a requirement must be a job"):
        target.requires("j1")
    for job in (*jobs, target):
        job.close()


def test_a_coroutine_function_instead_of_a_coroutine_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"call it: Job\(f\(\.\.\.\)\)"):
        Job(say)


def test_a_job_runs_its_coroutine_once() -> None:
    job = Job(asyncio.sleep(0, result=1), critical=False)
    sched = PureScheduler(job)
    assert sched.run() and job.result() == 1
    assert sched.run()
    assert isinstance(job.raised_exception(), RuntimeError)
    assert "already ran" in str(job.raised_exception())


# -- listings, graphs, reports --------------------------------------------------------


def test_list_debrief_and_stats(capsys: pytest.CaptureFixture[str]) -> None:
    log: list[str] = []
    first = Job(say(log, "x"), label="first")
    second = Job(fail(), label="second", required=first, critical=False)
    sched = PureScheduler(first, second)
    assert sched.stats() == "0D + 0R + 2I = 2"
    assert sched.run()
    assert sched.stats() == "2D + 0R + 0I = 2"
    assert repr(sched) == "PureScheduler with 2 done + 0 ongoing + 0 idle = 2 job(s)"
    sched.list()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("1 ") and "<Job `first`> [[ -> x]]" in lines[0]
    assert lines[1].startswith("2 ") and "exception => ValueError:boom" in lines[1]
    assert lines[1].endswith("requires={1}")
    sched.debrief()
    out = capsys.readouterr().out
    assert out.startswith("----- FINE") and "1 job(s) with an exception" in out
    assert "raise ValueError(message)" in out  # the traceback
    sched.list_safe()
    assert "<Job `second`>" in capsys.readouterr().out


def test_printjob_prints_and_sleeps(capsys: pytest.CaptureFixture[str]) -> None:
    job = PrintJob("hello", "world", sleep=0.01, banner="==")
    assert PureScheduler(job).run()
    assert capsys.readouterr().out == "== hello world\nSleeping for 0.01s\n"
    assert job.details() == "[+ sleep 0.01s] msg= hello..."


def test_dot_format_draws_nested_schedulers_as_clusters(tmp_path: Any) -> None:
    inner = Scheduler(Job(asyncio.sleep(0), label="in"), label="inner")
    outer = Scheduler(
        Sequence(Job(asyncio.sleep(0), label="a"), inner, Job(asyncio.sleep(0), label="z")),
        label="outer",
    )
    text = outer.dot_format()
    assert text.startswith("digraph asynciojobs{")
    assert "subgraph cluster_2 {" in text
    assert '3 [style="rounded",shape="box",label="3: in"' in text
    assert "1 -> 3 [lhead=cluster_2];" in text and "3 -> 4 [ltail=cluster_2];" in text
    target = tmp_path / "g.dot"
    assert outer.export_as_dotfile(str(target)) == f"(Over)wrote {target}"
    assert target.read_text() == text
    outer.close_all_jobs()


def test_an_image_without_graphviz_warns_and_keeps_the_dot_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")
    sched = PureScheduler(Job(asyncio.sleep(0), label="only"))
    with pytest.warns(RuntimeWarning, match="needs Graphviz's 'dot' program"):
        name = sched.export_as_svgfile(str(tmp_path / "g"))
    assert name == f"{tmp_path / 'g'}.svg"
    assert (tmp_path / "g.dot").exists()
    sched.close_all_jobs()


def test_the_run_leaves_a_jobgraph_report() -> None:
    broken = Job(fail(), label="load", critical=False)
    sched = PureScheduler(broken, Job(asyncio.sleep(0), label="load"))
    assert sched.run()
    report = sched.last_report
    assert report is not None
    names = {record["name"]: record["state"] for record in report.to_dict()["jobs"]}
    assert names == {"load": "FAILED", "load-2": "SUCCEEDED"}


def test_set_debug_reports_what_runs(capsys: pytest.CaptureFixture[str]) -> None:
    set_debug(True)
    try:
        PureScheduler(Job(asyncio.sleep(0), label="traced")).run()
    finally:
        set_debug(False)
    out = capsys.readouterr().out
    assert "STARTING <Job `traced`>" in out and "DONE <Job `traced`> [[ -> None]]" in out


def test_orchestrate_is_run_and_an_empty_scheduler_is_fine() -> None:
    assert PureScheduler().orchestrate() is True


# -- corner cases found in review -----------------------------------------------------


def test_a_scheduler_of_forever_jobs_runs_them_until_the_first_one_ends() -> None:
    ticks: list[int] = []
    ends = Job(asyncio.sleep(0.2, result="ended"), forever=True, label="ends")
    sched = PureScheduler(Job(tick(ticks), forever=True), ends, timeout=5)
    begin = time.monotonic()
    assert sched.run() is True
    assert 0.15 < time.monotonic() - begin < 3
    assert ends.result() == "ended" and len(ticks) > 3


def test_a_nested_forever_scheduler_monitors_while_the_main_work_runs() -> None:
    ticks: list[int] = []
    monitor = Scheduler(Job(tick(ticks), forever=True), forever=True, label="monitor")
    main = Scheduler(monitor, Job(asyncio.sleep(0.2)))
    assert main.run() is True
    assert len(ticks) > 3


def test_a_forever_job_required_only_by_a_forever_job_does_not_hold_the_run() -> None:
    ticks: list[int] = []
    first = Job(tick(ticks), forever=True, label="first")
    second = Job(tick(ticks), forever=True, label="second", required=first)
    sched = PureScheduler(first, second, Job(asyncio.sleep(0.1)), timeout=5)
    begin = time.monotonic()
    assert sched.run() is True
    assert time.monotonic() - begin < 3
    assert first.is_running() and not second.is_running()  # it waits for first to be done
    second.close()


def test_repeated_labels_never_clash_with_one_another() -> None:
    jobs = [Job(asyncio.sleep(0), label=label) for label in ("a", "a", "a-2")]
    sched = PureScheduler(*jobs)
    assert sched.run()
    assert sched.last_report is not None
    assert sorted(r["name"] for r in sched.last_report.to_dict()["jobs"]) == ["a", "a-2", "a-2-2"]


class Grumpy(Job):
    async def co_shutdown(self) -> None:
        raise OSError("cannot close")


class Plain(Job):
    closed = False

    def co_shutdown(self) -> None:  # type: ignore[override]  # not async: works too
        Plain.closed = True


def test_a_failing_shutdown_is_a_warning_naming_the_job() -> None:
    sched = PureScheduler(Grumpy(asyncio.sleep(0), label="grumpy"), Plain(asyncio.sleep(0)))
    with pytest.warns(RuntimeWarning, match=r"<Grumpy `grumpy`>.co_shutdown\(\) raised OSError"):
        assert sched.run() is True
    assert Plain.closed


def test_windows_and_timeouts_mean_what_they_meant_in_asynciojobs() -> None:
    group = {"now": 0, "peak": 0}
    assert PureScheduler(*(Counting(group, 0.02) for _ in range(4)), jobs_window=1.5).run()
    assert group["peak"] == 2  # a queue of size 1.5 is full at 2
    assert PureScheduler(Job(asyncio.sleep(0)), jobs_window=-1).run()
    for spent in (0, -1):  # asyncio.wait() takes both as already expired
        never = Job(asyncio.sleep(0))
        expired = PureScheduler(never, timeout=spent)
        assert expired.run() is False and expired.failed_time_out() and never.is_idle()
        never.close()
    odd = Scheduler(Job(asyncio.sleep(0)), jobs_window="2", label="named")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"scheduler 'named': jobs_window must be a number"):
        odd.run()
    odd.close_all_jobs()


def test_a_cycle_in_a_nested_scheduler_is_found_before_anything_runs() -> None:
    log: list[str] = []
    a, b = Job(say(log, "a"), label="a"), Job(say(log, "b"), label="b")
    a.requires(b)
    b.requires(a)
    main = PureScheduler(Sequence(Job(say(log, "first"), label="first"), Scheduler(a, b)))
    with pytest.raises(ValueError, match=r"form a cycle: (a -> b -> a|b -> a -> b)"):
        main.run()
    assert log == [] and main.last_report is None
    main.close_all_jobs()
    a.close()
    b.close()


def test_a_top_level_cycle_is_told_with_labels() -> None:
    a, b = Job(asyncio.sleep(0), label="x"), Job(asyncio.sleep(0), label="x")
    a.requires(b)
    b.requires(a)
    with pytest.raises(ValueError, match="form a cycle: x -> x -> x"):
        PureScheduler(a, b).run()
    a.close()
    b.close()


def test_job_sets_have_the_set_methods_scripts_use() -> None:
    sched, (top, left, right, bottom) = diamond()
    assert sched.jobs.difference({top}) == {left, right, bottom}
    assert bottom.required.issubset(sched.jobs) and sched.jobs.issuperset(bottom.required)
    assert sched.jobs.intersection([left, top]) == {top, left}
    assert list(sched.jobs.union([top])) == [top, left, right, bottom]  # order kept
    sched.close_all_jobs()


def test_a_job_raising_cancelled_error_itself_has_it_as_its_exception() -> None:
    async def gives_up() -> None:
        raise asyncio.CancelledError("giving up")

    job = Job(gives_up(), label="quitter")
    sched = PureScheduler(job)
    assert sched.run() is False and sched.failed_critical()
    assert isinstance(job.raised_exception(), asyncio.CancelledError)


def test_a_job_waiting_for_a_slot_when_the_run_stops_stays_scheduled() -> None:
    waiting = Job(asyncio.sleep(0), label="waiting")
    sched = PureScheduler(Job(fail(0.05)), waiting, jobs_window=1)
    assert sched.run() is False
    assert waiting.is_scheduled() and not waiting.is_running()
    waiting.close()


def test_run_inside_an_event_loop_names_co_run() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"use 'await co_run\(\)'"):
            PureScheduler().run()

    asyncio.run(main())


def test_many_jobs_with_one_label_get_names_in_linear_time() -> None:
    jobs = [Job(asyncio.sleep(0)) for _ in range(20_000)]  # all "Job[sleep (...)]"
    sched = PureScheduler(*jobs)
    begin = time.monotonic()
    assert sched.run()
    assert time.monotonic() - begin < 30  # quadratic naming took minutes here
    assert sched.last_report is not None
    assert len({r["name"] for r in sched.last_report.to_dict()["jobs"]}) == 20_000
