"""The same behaviour on every executor: in-process, worker processes and Dask.

Each test runs three times (see ``conftest.py``): states, data passing, retries,
timeouts, shells, limits, the store and reports must not depend on where bodies run.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import jobgraph as jg
from executor_suite import work
from procs import wait_until_gone


def run(executor: Any, *jobs: jg.Job, resume: Any = None, **options: Any) -> jg.Report:
    return jg.Scheduler(*jobs, executor=executor, **options).run(resume=resume)


def test_results_pass_from_job_to_job(executor):
    a = jg.Job(work.add, 1, 2, name="a")
    b = jg.Job(work.add, a, 10, name="b")
    c = jg.Job(work.async_double, b, name="c")
    d = jg.Job(work.add, a, c, name="d")
    report = run(executor, d)
    assert report.ok, report.why()
    assert [j.result() for j in (a, b, c, d)] == [3, 13, 26, 29]
    assert report.counts == {jg.State.SUCCEEDED: 4}


def test_plain_functions_run_where_the_executor_says(executor):
    job = jg.Job(work.where, name="where")
    run(executor, job)
    elsewhere = executor is not None
    assert (job.result() != os.getpid()) is elsewhere


def test_a_failure_skips_exactly_its_dependents(executor):
    bad = jg.Job(work.fail, "bad row 12", name="bad")
    after = jg.Job(work.add, bad, 1, name="after")
    later = jg.Job(work.add, 1, 1, name="later", requires=[after])
    free = jg.Job(work.add, 2, 2, name="free")
    report = run(executor, later, free)
    assert bad.state is jg.State.FAILED
    assert after.state is jg.State.SKIPPED and later.state is jg.State.SKIPPED
    assert after.skipped_because == ["bad"] and later.skipped_because == ["bad"]
    assert free.result() == 4
    assert report.why() == "job 'bad' failed: ValueError: bad row 12"
    assert isinstance(bad.exception(), ValueError)
    assert report.exit_code == 1


def test_retries_apply(executor, tmp_path):
    job = jg.Job(work.flaky, str(tmp_path / "calls"), 2, retries=2, name="flaky")
    report = run(executor, job)
    assert report.ok, report.why()
    assert job.result() == 3 and job.attempts == 3


def test_a_timed_out_function_ends_timed_out(executor, tmp_path):
    marker = tmp_path / "touched"
    job = jg.Job(work.sleep_then_touch, 1.5, str(marker), timeout=0.3, name="slow")
    quick = jg.Job(work.add, 2, 2, name="quick")
    report = run(executor, job, quick)
    assert job.state is jg.State.TIMED_OUT
    assert quick.result() == 4
    assert report.why() == "job 'slow' timed out after 0.3s"
    record = next(r for r in report.jobs if r.name == "slow")
    if isinstance(executor, jg.DaskExecutor):
        # Dask cannot stop a running function: the report says it was left running.
        assert "abandoned" in record.note
    else:
        time.sleep(1.6)
        assert not marker.exists(), "the timed-out function went on running"


def test_a_timed_out_coroutine_is_cancelled_and_its_finally_runs(executor, tmp_path):
    marker = tmp_path / "finally"
    job = jg.Job(work.sleep_with_finally, 30, str(marker), timeout=0.5, name="nap")
    started = time.monotonic()
    run(executor, job)
    assert job.state is jg.State.TIMED_OUT
    assert time.monotonic() - started < 15
    assert marker.read_text() == "finally ran"


def test_a_coroutine_that_ignores_the_stop_is_abandoned_and_the_report_says_so(executor):
    job = jg.Job(work.stubborn, 6.0, timeout=0.3, name="stubborn")
    scheduler = jg.Scheduler(job, executor=executor)
    scheduler.kill_grace = 0.2
    started = time.monotonic()
    report = scheduler.run()
    assert job.state is jg.State.TIMED_OUT
    assert time.monotonic() - started < 5.5  # abandoned, not waited for
    note = next(r.note for r in report.jobs if r.name == "stubborn")
    assert "ignored the request to stop" in note and "may still be running" in note


def test_shell_output_status_and_failure(executor):
    talk = jg.Shell("echo out; echo err >&2", name="talk")
    broken = jg.Shell("echo oops >&2; exit 3", name="broken")
    report = run(executor, talk, broken)
    assert talk.state is jg.State.SUCCEEDED
    assert talk.stdout() == "out\n" and talk.stderr() == "err\n"
    assert talk.result().returncode == 0 and talk.result().stdout == "out\n"
    assert broken.state is jg.State.FAILED
    assert "command exited with status 3" in report.why()
    assert broken.stderr() == "oops\n"


def test_a_timed_out_command_leaves_no_process_behind(executor):
    # A marker no other test uses, to find the command's processes.
    job = jg.Shell("sleep 31.4159 & sleep 31.4159; wait", timeout=0.5, name="sleepers")
    started = time.monotonic()
    report = run(executor, job)
    assert job.state is jg.State.TIMED_OUT
    assert report.why() == "job 'sleepers' timed out after 0.5s"
    assert time.monotonic() - started < 15
    assert wait_until_gone("sleep 31.4159", 5.0) == []


def test_a_critical_failure_stops_the_rest(executor):
    long = jg.Shell("sleep 32.718", name="long")
    doomed = jg.Job(work.fail, "stop", critical=True, name="doomed")
    pending = jg.Job(work.add, 1, 1, name="pending", requires=[long])
    report = run(executor, long, doomed, pending)
    assert doomed.state is jg.State.FAILED
    assert long.state is jg.State.CANCELLED
    assert pending.state is jg.State.CANCELLED
    assert not report.ok
    assert wait_until_gone("sleep 32.718", 5.0) == []


def test_resource_pools_limit_what_runs_at_once(executor, tmp_path):
    log = str(tmp_path / "log")
    jobs = [jg.Job(work.hold, 0.4, log, resources={"slot": 1}, name=f"h{k}") for k in range(4)]
    report = run(executor, *jobs, resources={"slot": 1})
    assert report.ok, report.why()
    assert work.most_at_once(log) == 1


def test_cached_jobs_are_up_to_date_on_a_rerun_with_the_store(executor, tmp_path):
    store = str(tmp_path / "state.db")

    def graph() -> tuple[jg.Job, jg.Job]:
        a = jg.Job(work.add, 2, 3, cache=True, name="a")
        return a, jg.Job(work.add, a, 10, cache=True, name="b")

    first = graph()
    assert run(executor, *first, store=store).ok
    second = graph()
    report = run(executor, *second, store=store)
    assert report.counts == {jg.State.UP_TO_DATE: 2}
    assert second[1].result() == 15


def test_resume_does_not_run_finished_jobs_again(executor, tmp_path):
    store = str(tmp_path / "state.db")
    counter = tmp_path / "calls"
    first = jg.Job(work.flaky, str(counter), 0, name="first")
    broken = jg.Job(work.fail, "not yet", name="second", requires=[first])
    assert not run(executor, broken, store=store).ok
    again = jg.Job(work.flaky, str(counter), 0, name="first")
    fixed = jg.Job(work.add, 1, 1, name="second", requires=[again])
    report = run(executor, fixed, store=store, resume="last")
    assert report.ok, report.why()
    assert counter.read_text() == "1"  # 'first' ran once, in the first run


def test_an_unpicklable_argument_fails_only_that_job(executor):
    if executor is None:
        pytest.skip("in-process bodies take any argument")
    bad = jg.Job(work.add, 1, threading.Lock(), name="bad")
    good = jg.Job(work.add, 1, 1, name="good")
    report = run(executor, bad, good)
    assert good.result() == 2
    error = next(r.error for r in report.jobs if r.name == "bad")
    assert "argument 1" in error and "cannot be pickled" in error


def test_a_worker_that_dies_fails_that_attempt_and_the_run_goes_on(executor):
    if executor is None:
        pytest.skip("in-process bodies have no worker of their own to lose")
    crash = jg.Job(work.exit_hard, 3, retries=1, name="crash")
    after = jg.Job(work.add, 1, 2, name="after", requires=[crash], run_if="done")
    report = run(executor, crash, after)
    assert crash.state is jg.State.FAILED and crash.attempts == 2
    assert isinstance(crash.exception(), jg.WorkerDiedError)
    assert "died" in report.why()
    assert after.result() == 3


def test_reports_are_the_same_everywhere(executor, tmp_path):
    a = jg.Job(work.add, 1, 1, name="a")
    b = jg.Job(work.fail, "no", name="b", requires=[a])
    c = jg.Shell("true", name="c", requires=[b])
    report = run(executor, c)
    data = report.to_dict()
    states = {j["name"]: j["state"] for j in data["jobs"]}
    assert states == {"a": "SUCCEEDED", "b": "FAILED", "c": "SKIPPED"}
    assert data["ok"] is False
    Path(tmp_path / "junit.xml").write_text(report.to_junit())
    assert 'failures="1"' in report.to_junit()
