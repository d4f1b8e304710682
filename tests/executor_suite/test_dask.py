"""What only the Dask executor does: its own cluster, clients, resources, its command line."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import time

import pytest

import jobgraph as jg
from executor_suite import work
from procs import children_of

distributed = pytest.importorskip("distributed")


def test_without_an_address_a_local_cluster_is_started_and_closed():
    executor = jg.DaskExecutor(n_workers=1, threads_per_worker=1)
    job = jg.Job(work.where, name="where")
    shell = jg.Shell("echo $$", name="shell")
    report = jg.Scheduler(job, shell, executor=executor).run()
    assert report.ok, report.why()
    assert job.result() != os.getpid()
    assert int(shell.stdout()) not in (os.getpid(), job.result())  # a command, on the worker
    # The cluster's worker processes are gone with the run.
    assert not os.path.exists(f"/proc/{job.result()}") or _is_zombie(job.result())


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"


def test_an_executor_can_run_several_times(dask_cluster):
    executor = jg.DaskExecutor(address=dask_cluster.scheduler_address)
    for k in range(2):
        job = jg.Job(work.add, k, 1, name="again")
        assert jg.Scheduler(job, executor=executor).run().ok
        assert job.result() == k + 1


def test_a_client_of_yours_is_used_and_left_open(dask_cluster):
    client = distributed.Client(dask_cluster, set_as_default=False)
    try:
        job = jg.Job(work.add, 20, 22, name="answer")
        report = jg.Scheduler(job, executor=jg.DaskExecutor(client=client)).run()
        assert report.ok and job.result() == 42
        assert client.status == "running"
        assert client.submit(work.add, 1, 1).result() == 2
    finally:
        client.close()


def test_one_job_on_dask_the_others_here(dask_cluster):
    remote = jg.Job(work.where, executor=jg.DaskExecutor(address=dask_cluster.scheduler_address))
    here = jg.Job(work.where)
    assert jg.Scheduler(remote, here).run().ok
    assert remote.result() != os.getpid() and here.result() == os.getpid()


def test_resources_map_to_worker_resources(dask_cluster, tmp_path):
    log = str(tmp_path / "log")
    executor = jg.DaskExecutor(address=dask_cluster.scheduler_address)
    jobs = [jg.Job(work.hold, 0.3, log, resources={"slot": 1}, name=f"h{k}") for k in range(3)]
    report = jg.Scheduler(*jobs, executor=executor, resources={"slot": 4}).run()
    assert report.ok, report.why()
    # Each worker declares slot=2 and has one thread: two at once at most.
    assert work.most_at_once(log) <= 2


def test_a_resource_no_worker_declares_fails_the_job_clearly(dask_cluster):
    executor = jg.DaskExecutor(address=dask_cluster.scheduler_address)
    job = jg.Job(work.add, 1, 1, resources={"gpu": 1}, name="train")
    report = jg.Scheduler(job, executor=executor, resources={"gpu": 1}).run()
    assert job.state is jg.State.FAILED
    assert "needs gpu=1, and no worker of the Dask cluster declares that much" in report.why()


def test_more_of_a_resource_than_any_worker_has_fails_the_job_clearly(dask_cluster):
    executor = jg.DaskExecutor(address=dask_cluster.scheduler_address)
    job = jg.Job(work.add, 1, 1, resources={"slot": 3}, name="big")
    report = jg.Scheduler(job, executor=executor, resources={"slot": 4}).run()
    assert job.state is jg.State.FAILED
    assert "needs slot=3" in report.why() and "the most is 2" in report.why()


def test_a_run_that_fails_to_start_closes_its_local_cluster(tmp_path):
    executor = jg.DaskExecutor(n_workers=1, threads_per_worker=1)
    scheduler = jg.Scheduler(jg.Job(work.where, name="where"), executor=executor)
    before = set(children_of(os.getpid()))
    with pytest.raises(jg.StoreError, match="no run 'nosuch'"):
        scheduler.run(store=str(tmp_path / "s.db"), resume="nosuch")
    time.sleep(0.5)
    assert set(children_of(os.getpid())) - before == set()


def test_a_coroutine_object_cannot_go_to_dask(dask_cluster):
    async def hello() -> str:
        return "hi"

    executor = jg.DaskExecutor(address=dask_cluster.scheduler_address)
    coro = hello()
    with pytest.raises(ValueError, match="coroutine object"):
        jg.Job(coro, executor=executor, name="hello")
    scheduler = jg.Scheduler(jg.Job(coro, name="hello"), executor=executor)
    with pytest.raises(jg.GraphError, match="cannot be sent to a Dask worker"):
        scheduler.run()
    coro.close()


def test_functions_that_only_exist_here_are_sent_by_value(dask_cluster):
    executor = jg.DaskExecutor(address=dask_cluster.scheduler_address)
    offset = 5
    job = jg.Job(lambda x: x + offset, 10, name="lambda")
    assert jg.Scheduler(job, executor=executor).run().ok
    assert job.result() == 15


def test_an_unreachable_cluster_is_a_clear_error(monkeypatch):
    from jobgraph.executors import cluster

    monkeypatch.setattr(cluster, "_CONNECT_TIMEOUT", "0.5s")
    executor = jg.DaskExecutor(address="dask://127.0.0.1:9")
    with pytest.raises(OSError, match=r"cannot reach the Dask scheduler at tcp://127.0.0\.1:9"):
        jg.Scheduler(jg.Job(work.add, 1, 1), executor=executor).run()


def test_without_the_extra_dask_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name)
    )
    with pytest.raises(ImportError, match=r"pip install 'jobgraph\[dask\]'"):
        jg.DaskExecutor()


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="not both"):
        jg.DaskExecutor(address="tcp://x:1", client=object())
    with pytest.raises(ValueError, match="cluster options"):
        jg.DaskExecutor(address="tcp://x:1", n_workers=2)
    with pytest.raises(ValueError, match="non-empty string"):
        jg.DaskExecutor(address="")


def test_command_line_executor_dask_address(dask_cluster, tmp_path):
    flow = tmp_path / "flow.py"
    flow.write_text(
        textwrap.dedent(
            """
            import os
            import jobgraph as jg

            def where():
                return os.getpid()

            scheduler = jg.Scheduler(jg.Job(where, name="where"), jg.Shell("echo hi", name="hi"))
            """
        )
    )
    address = dask_cluster.scheduler_address.replace("tcp://", "dask://")
    out = subprocess.run(
        [sys.executable, "-m", "jobgraph", "run", str(flow), "--executor", address, "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "2 succeeded" in out.stderr


def test_command_line_rejects_an_unknown_executor(tmp_path):
    flow = tmp_path / "flow.py"
    flow.write_text("import jobgraph as jg\nscheduler = jg.Scheduler()\n")
    out = subprocess.run(
        [sys.executable, "-m", "jobgraph", "run", str(flow), "--executor", "spark"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "'spark' is not one of local, thread, process, dask, dask://HOST:PORT" in out.stderr


def test_the_timeout_clock_starts_when_a_worker_takes_the_job(dask_cluster):
    # Both single-thread workers are busy for 2 s with tasks of another client: the job
    # waits for one longer than its own timeout, and must not time out for that.
    client = distributed.Client(dask_cluster, set_as_default=False)
    try:
        blockers = [client.submit(time.sleep, 2.0, pure=False) for _ in range(2)]
        time.sleep(0.3)  # they started
        executor = jg.DaskExecutor(address=dask_cluster.scheduler_address)
        waiting = jg.Job(work.add, 1, 1, timeout=1.0, name="waiting")
        started = time.monotonic()
        report = jg.Scheduler(waiting, executor=executor).run()
        assert report.ok, report.why()
        assert waiting.result() == 2
        assert time.monotonic() - started >= 1.2  # it did wait, longer than its timeout
        client.gather(blockers)
    finally:
        client.close()
