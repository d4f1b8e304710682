"""Worker processes: reuse, crashes, kills, pickling errors, nothing left behind."""

from __future__ import annotations

import os
import time

import jobgraph as jg
import proc_helpers as ph
from procs import children_of, live_processes_with


def test_workers_are_reused_across_jobs():
    jobs = [jg.Job(ph.pid, executor="process", name=f"p{i}") for i in range(8)]
    report = jg.Scheduler(*jobs).run()
    assert report.ok
    pids = {job.result() for job in jobs}
    assert len(pids) <= 2 * 2  # a small pool, not one process per job


def test_a_worker_that_dies_fails_only_its_job_and_the_run_goes_on():
    crash = jg.Job(ph.exit_hard, 3, executor="process", name="crash")
    killed = jg.Job(ph.kill_self, executor="process", name="killed")
    after = jg.Job(ph.add, 1, 2, executor="process", name="after", requires=[])
    report = jg.Scheduler(crash, killed, after).run()
    assert crash.state is jg.State.FAILED and killed.state is jg.State.FAILED
    assert after.result() == 3
    records = {r.name: r for r in report.jobs}
    assert "worker process died (exit status 3)" in records["crash"].error
    assert "killed by signal 9" in records["killed"].error


def test_a_segfault_fails_only_that_attempt():
    crash = jg.Job(ph.segfault, executor="process", name="segv", retries=1)
    after = jg.Job(ph.add, 2, 3, executor="process", name="after", requires=[crash], run_if="done")
    report = jg.Scheduler(crash, after).run()
    assert crash.state is jg.State.FAILED and crash.attempts == 2
    assert "killed by signal 11" in report.why()
    assert after.result() == 5


def test_a_timed_out_job_does_not_disturb_the_jobs_in_other_workers():
    slow_ok = jg.Job(ph.sleep_for, 1.0, timeout=10, name="slow-ok")
    doomed = jg.Job(ph.sleep_for, 10, timeout=0.3, name="doomed")
    report = jg.Scheduler(slow_ok, doomed).run()
    assert doomed.state is jg.State.TIMED_OUT
    assert slow_ok.state is jg.State.SUCCEEDED and slow_ok.result() == 1.0
    assert report.why() == "job 'doomed' timed out after 0.3s"


def test_the_pool_is_sized_to_the_machine():
    from jobgraph.executors.process import WorkerPool

    assert WorkerPool().size == (os.cpu_count() or 1)


def test_a_crashed_worker_is_retried():
    job = jg.Job(ph.exit_hard, 1, executor="process", retries=2)
    jg.Scheduler(job).run()
    assert job.state is jg.State.FAILED and job.attempts == 3


def test_a_timed_out_function_is_really_stopped(tmp_path):
    marker = tmp_path / "touched"
    job = jg.Job(ph.sleep_then_touch, 1.5, str(marker), timeout=0.3)
    other = jg.Job(ph.add, 2, 2, executor="process")
    started = time.monotonic()
    report = jg.Scheduler(job, other).run()
    assert job.state is jg.State.TIMED_OUT
    assert other.result() == 4
    assert time.monotonic() - started < 10
    time.sleep(2.0)
    assert not marker.exists()
    assert "timed out after 0.3s" in report.why()


def test_exceptions_come_back_with_the_remote_traceback():
    job = jg.Job(ph.fail, "bad row 12", executor="process", name="load")
    report = jg.Scheduler(job).run()
    assert report.why() == "job 'load' failed: ValueError: bad row 12"
    assert "proc_helpers.py" in report.jobs[0].error  # where it was raised, in the worker
    assert isinstance(job.exception(), ValueError)


def test_coroutine_functions_run_in_workers_too():
    job = jg.Job(ph.async_double, 21, executor="process")
    jg.Scheduler(job).run()
    assert job.result() == 42


def test_scheduler_wide_process_executor():
    jobs = [jg.Job(ph.add, i, i) for i in range(4)]
    report = jg.Scheduler(*jobs, executor="process").run()
    assert report.ok and [j.result() for j in jobs] == [0, 2, 4, 6]


def test_unpicklable_argument_fails_that_job_naming_the_argument():
    import threading

    bad = jg.Job(ph.add, 1, threading.Lock(), executor="process", name="bad")
    good = jg.Job(ph.add, 1, 1, executor="process", name="good")
    report = jg.Scheduler(bad, good).run()
    assert good.result() == 2
    error = report.jobs[0].error if report.jobs[0].name == "bad" else report.jobs[1].error
    assert "argument 1" in error and "cannot be pickled" in error


def test_no_worker_outlives_the_run():
    def workers() -> set[int]:
        return set(children_of(os.getpid())) & set(live_processes_with("spawn_main"))

    before = workers()  # other fixtures' processes (a shared Dask cluster) are not ours
    jobs = [jg.Job(ph.add, i, 1, executor="process") for i in range(3)]
    jg.Scheduler(*jobs).run()
    assert jobs[0].result() == 1
    assert workers() - before == set()


def test_any_concurrent_futures_executor_can_run_functions():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="custom") as pool:
        import threading

        job = jg.Job(lambda: threading.current_thread().name, executor=pool)
        other = jg.Job(lambda: threading.current_thread().name)
        jg.Scheduler(job, other).run()
    assert job.result().startswith("custom")
    assert other.result().startswith("jobgraph")
