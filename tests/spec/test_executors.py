"""Acceptance tests for where job bodies run (API.md sections 1 and 6, local part)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import pytest

import jobgraph as jg
from spec import helpers_proc as hp
from spec.helpers_proc import record_of


def test_default_coroutines_on_the_loop_functions_in_threads():
    seen: dict[str, object] = {}

    async def coro():
        seen["coro_thread"] = threading.get_ident()
        seen["coro_loop"] = asyncio.get_running_loop()
        return os.getpid()

    def plain():
        seen["plain_thread"] = threading.get_ident()
        try:
            asyncio.get_running_loop()
            seen["plain_has_loop"] = True
        except RuntimeError:
            seen["plain_has_loop"] = False
        return os.getpid()

    loop_thread: dict[str, object] = {}

    async def main():
        loop_thread["ident"] = threading.get_ident()
        loop_thread["loop"] = asyncio.get_running_loop()
        c, p = jg.Job(coro, name="coro"), jg.Job(plain, name="plain")
        report = await jg.Scheduler(c, p).co_run()
        return report, c, p

    report, c, p = asyncio.run(main())
    assert report.ok, report.why()
    assert seen["coro_thread"] == loop_thread["ident"]
    assert seen["coro_loop"] is loop_thread["loop"]
    assert seen["plain_thread"] != loop_thread["ident"]
    assert seen["plain_has_loop"] is False
    assert c.result() == os.getpid()
    assert p.result() == os.getpid()  # a thread, not a process


def test_plain_functions_do_not_block_each_other():
    def sleeper():
        time.sleep(0.3)

    jobs = [jg.Job(sleeper, name=f"s{i}") for i in range(4)]
    t0 = time.monotonic()
    assert jg.Scheduler(*jobs).run().ok
    assert time.monotonic() - t0 < 1.0  # in parallel threads, not one after the other


def test_plain_function_with_timeout_runs_in_a_worker_process():
    job = jg.Job(hp.getpid, name="pid", timeout=10)
    report = jg.Scheduler(job).run()
    assert report.ok, report.why()
    assert job.result() != os.getpid()


def test_plain_function_with_timeout_is_stopped_for_real(tmp_path: Path):
    target = tmp_path / "late.txt"
    job = jg.Job(hp.sleep_then_write, str(target), 0.6, name="late", timeout=0.2)
    t0 = time.monotonic()
    report = jg.Scheduler(job).run()
    assert time.monotonic() - t0 < 3
    assert job.state is jg.State.TIMED_OUT
    assert not report.ok
    # Give the function more than enough time to have written the file if it still ran.
    remaining = 1.0 - (time.monotonic() - t0)
    if remaining > 0:
        time.sleep(remaining)
    assert not target.exists()


def test_function_with_timeout_that_finishes_in_time(tmp_path: Path):
    target = tmp_path / "quick.txt"
    job = jg.Job(hp.sleep_then_write, str(target), 0.01, name="quick", timeout=5)
    assert jg.Scheduler(job).run().ok
    assert target.exists()
    assert job.result() == str(target)


def test_worker_process_exception_fails_the_job():
    job = jg.Job(hp.fail_with, "from the worker", name="w", executor="process")
    report = jg.Scheduler(job).run()
    assert job.state is jg.State.FAILED
    assert isinstance(job.exception(), ValueError)
    assert "from the worker" in str(job.exception())
    assert "from the worker" in report.why()


def test_executor_process_runs_in_another_pid():
    job = jg.Job(hp.getpid, name="pid", executor="process")
    assert jg.Scheduler(job).run().ok
    assert job.result() != os.getpid()


def test_scheduler_executor_process_applies_to_plain_functions():
    job = jg.Job(hp.getpid, name="pid")
    assert jg.Scheduler(job, executor="process").run().ok
    assert job.result() != os.getpid()


def test_run_option_executor_process_overrides_the_scheduler():
    job = jg.Job(hp.getpid, name="pid")
    sched = jg.Scheduler(job)
    assert sched.run(executor="process").ok
    assert job.result() != os.getpid()


def test_process_executor_data_passing():
    a = jg.Job(hp.identity, 20, name="a", executor="process")
    b = jg.Job(hp.add, a, 22, name="b", executor="process")
    assert jg.Scheduler(b).run().ok
    assert b.result() == 42


def test_unpicklable_argument_fails_only_that_job():
    bad = jg.Job(hp.identity, value=threading.Lock(), name="bad", executor="process")
    good = jg.Job(hp.identity, 5, name="good", executor="process")
    other = jg.Job(lambda: "thread", name="other")
    report = jg.Scheduler(bad, good, other).run()
    assert bad.state is jg.State.FAILED
    assert good.state is jg.State.SUCCEEDED
    assert other.state is jg.State.SUCCEEDED
    error = record_of(report, "bad")["error"] or ""
    assert "value" in error  # names the argument
    assert "pickle" in error.lower()
    assert report.exit_code == 1


def test_unpicklable_positional_argument_fails_that_job_with_a_clear_error():
    bad = jg.Job(hp.identity, threading.Lock(), name="bad", executor="process")
    report = jg.Scheduler(bad).run()
    assert bad.state is jg.State.FAILED
    error = record_of(report, "bad")["error"] or ""
    assert "argument" in error.lower()
    assert "pickle" in error.lower()


def test_unpicklable_result_fails_only_that_job():
    bad = jg.Job(hp.return_unpicklable, name="bad", executor="process")
    good = jg.Job(hp.identity, 1, name="good", executor="process")
    report = jg.Scheduler(bad, good).run()
    assert bad.state is jg.State.FAILED
    assert good.state is jg.State.SUCCEEDED
    assert "pickle" in (record_of(report, "bad")["error"] or "").lower()


def test_thread_executor_timeout_is_timed_out_and_report_says_thread_not_stopped():
    def slow():
        time.sleep(1.0)
        return "too late"

    job = jg.Job(slow, name="slow", executor="thread", timeout=0.2)
    after = jg.Job(lambda: None, name="other")
    t0 = time.monotonic()
    report = jg.Scheduler(job, after).run()
    assert time.monotonic() - t0 < 0.9  # the thread is abandoned, not waited for
    assert job.state is jg.State.TIMED_OUT
    assert not report.ok
    text = (report.debrief() + json.dumps(report.to_dict())).lower()
    assert "thread" in text
    assert any(word in text for word in ("stopped", "abandon")), text


def test_thread_executor_runs_in_this_process():
    job = jg.Job(os.getpid, name="pid", executor="thread", timeout=5)
    assert jg.Scheduler(job).run().ok
    assert job.result() == os.getpid()


def test_lambda_with_timeout_and_default_executor_is_a_clear_error_before_running():
    ran: list[int] = []
    job = jg.Job(lambda: ran.append(1), name="lam", timeout=1)
    other = jg.Job(lambda: ran.append(2), name="other")
    sched = jg.Scheduler(job, other)
    with pytest.raises(Exception) as info:
        sched.run()
    message = str(info.value)
    assert "lam" in message
    assert "thread" in message  # suggests executor="thread"
    assert "import" in message.lower() or "module level" in message.lower()
    assert ran == []


def test_local_function_with_timeout_is_a_clear_error_before_running():
    ran: list[int] = []

    def local():
        ran.append(1)

    sched = jg.Scheduler(jg.Job(local, name="local", timeout=1))
    with pytest.raises(Exception) as info:
        sched.validate()
    assert "thread" in str(info.value)
    with pytest.raises(Exception, match="thread"):
        sched.run()
    assert ran == []


def test_lambda_with_timeout_and_thread_executor_is_fine():
    job = jg.Job(lambda: 3, name="lam", timeout=1, executor="thread")
    assert jg.Scheduler(job).run().ok
    assert job.result() == 3


def test_coroutine_with_timeout_stays_on_the_loop():
    async def coro():
        return os.getpid()

    job = jg.Job(coro, name="coro", timeout=5)
    assert jg.Scheduler(job).run().ok
    assert job.result() == os.getpid()


def test_shell_commands_run_as_subprocesses():
    job = jg.Shell('echo "$$"', name="pid")
    assert jg.Scheduler(job).run().ok
    assert int(job.result().stdout.strip()) != os.getpid()


def test_bad_executor_name_is_value_error():
    with pytest.raises(ValueError):
        jg.Job(hp.getpid, executor="gpu-cluster")
