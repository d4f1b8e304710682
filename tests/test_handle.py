"""Runs in the background: submit(), the handle, attach(), abort and resume."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import jobgraph as jg
from procs import wait_until_gone


def test_submit_returns_at_once_and_the_handle_follows_the_run(tmp_path):
    double = jg.Job(lambda x: 2 * x, 21, name="double")  # a lambda: nothing is pickled
    talk = jg.Shell("echo one; sleep 0.6; echo two", name="talk")
    started = time.monotonic()
    handle = jg.Scheduler(double, talk).submit(store=str(tmp_path / "s.db"))
    assert time.monotonic() - started < 2
    assert handle.state in ("pending", "running")
    assert handle.wait(timeout=30) is True
    assert handle.state == "succeeded"
    report = handle.report()
    assert report.ok and report.run_id == handle.run_id
    assert {r.name: r.state for r in report.jobs} == {
        "double": jg.State.SUCCEEDED,
        "talk": jg.State.SUCCEEDED,
    }
    assert handle.stdout("talk") == "one\ntwo\n" and handle.stderr("talk") == ""


def test_fresh_stdout_returns_only_what_is_new(tmp_path):
    talk = jg.Shell("echo one; sleep 1.5; echo two", name="talk")
    handle = jg.Scheduler(talk).submit(store=str(tmp_path / "s.db"))
    deadline = time.monotonic() + 10
    first = ""
    while not first and time.monotonic() < deadline:
        first = handle.fresh_stdout("talk")  # kept while it runs, every half second
        time.sleep(0.1)
    assert first == "one\n"
    assert handle.wait(30)
    assert handle.fresh_stdout("talk") == "two\n"
    assert handle.fresh_stdout("talk") == ""
    assert handle.stdout("talk") == "one\ntwo\n"


def test_wait_with_a_timeout_says_false_while_it_runs(tmp_path):
    handle = jg.Scheduler(jg.Shell("sleep 1.5", name="nap")).submit(store=str(tmp_path / "s.db"))
    assert handle.wait(timeout=0.2) is False
    assert handle.state == "running"
    assert handle.wait(timeout=30) is True


def test_abort_cancels_running_jobs_and_the_run_ends_aborted(tmp_path):
    long = jg.Shell("sleep 33.1416", name="long")
    after = jg.Job(lambda: 1, name="after", requires=[long])
    handle = jg.Scheduler(after).submit(store=str(tmp_path / "s.db"))
    deadline = time.monotonic() + 10
    while handle.state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the command started
    handle.abort()
    assert handle.wait(30)
    assert handle.state == "aborted"
    states = {r.name: r.state for r in handle.report().jobs}
    assert states["long"] is jg.State.CANCELLED
    assert handle.report().exit_code == 130
    assert wait_until_gone("sleep 33.1416", 5.0) == []


def test_a_failed_run_is_failed(tmp_path):
    def broken() -> None:
        raise ValueError("bad row 12")

    handle = jg.Scheduler(jg.Job(broken, name="broken")).submit(store=str(tmp_path / "s.db"))
    assert handle.wait(30) and handle.state == "failed"
    assert handle.report().why() == "job 'broken' failed: ValueError: bad row 12"


def test_the_run_outlives_the_callers_event_loop(tmp_path):
    marker = tmp_path / "done"

    def slow() -> None:
        time.sleep(0.8)
        marker.write_text("ran")

    async def caller() -> jg.RunHandle:
        return jg.Scheduler(jg.Job(slow, name="slow")).submit()  # no store: a scratch one

    handle = asyncio.run(caller())
    assert not marker.exists()
    assert handle.wait(30) and handle.state == "succeeded"
    assert marker.read_text() == "ran"


def test_the_run_outlives_the_callers_process_and_can_be_attached(tmp_path):
    script = tmp_path / "caller.py"
    store = tmp_path / "s.db"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            import jobgraph as jg

            def slow():
                time.sleep(1.0)
                open({str(tmp_path / "done")!r}, "w").write("ran")

            if __name__ == "__main__":
                handle = jg.Scheduler(jg.Job(slow, name="slow")).submit(store={str(store)!r})
                print(handle.run_id)
            """
        )
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    assert not (tmp_path / "done").exists()  # the caller is gone, the run is not
    handle = jg.attach(run_id, store=str(store))
    assert handle.wait(30) and handle.state == "succeeded"
    assert (tmp_path / "done").read_text() == "ran"


def test_resume_runs_only_what_did_not_finish(tmp_path):
    calls = tmp_path / "calls"
    gate = tmp_path / "gate"

    def first() -> None:
        with calls.open("a") as f:
            f.write("first\n")

    def second() -> None:
        if not gate.exists():
            raise RuntimeError("not yet")

    one = jg.Job(first, name="first")
    two = jg.Job(second, name="second", requires=[one])
    handle = jg.Scheduler(two).submit(store=str(tmp_path / "s.db"))
    assert handle.wait(30) and handle.state == "failed"
    gate.write_text("open")
    again = handle.resume()
    assert again.run_id == handle.run_id
    assert again.wait(30) and again.state == "succeeded"
    assert calls.read_text() == "first\n"  # the finished job did not run again


def test_resume_before_the_end_is_an_error(tmp_path):
    handle = jg.Scheduler(jg.Shell("sleep 1", name="nap")).submit(store=str(tmp_path / "s.db"))
    with pytest.raises(RuntimeError, match="has not ended"):
        handle.resume()
    handle.wait(30)


def test_graph_mistakes_are_raised_by_submit(tmp_path):
    a = jg.Job(lambda: 1, name="a")
    b = jg.Job(lambda: 2, name="b", requires=[a])
    a.requires(b)
    with pytest.raises(jg.CycleError):
        jg.Scheduler(a, b).submit(store=str(tmp_path / "s.db"))


def test_a_store_other_processes_cannot_read_is_refused():
    from jobgraph.store import MemoryStore

    with pytest.raises(ValueError, match="needs a store other processes can read"):
        jg.Scheduler(jg.Job(lambda: 1)).submit(store=MemoryStore())


def test_attach_to_an_unknown_run_is_a_store_error(tmp_path):
    jg.Scheduler(jg.Job(lambda: 1, name="x")).run(store=str(tmp_path / "s.db"))
    with pytest.raises(jg.StoreError, match="no run 'nosuch'"):
        jg.attach("nosuch", store=str(tmp_path / "s.db"))


def test_an_abort_while_the_run_sets_up_is_kept_until_the_run_can_take_it(tmp_path):
    # submit() returns once the run holds its lease, while it still sets up (here, 30,000
    # jobs): an abort then is kept, not raised in the middle of the set-up (which ended
    # the process with the run unended and its lease held).
    async def idle() -> None:
        await asyncio.sleep(60)

    jobs = [jg.Job(idle, name=f"j{k}") for k in range(30_000)]
    handle = jg.Scheduler(*jobs, window=2).submit(store=str(tmp_path / "s.db"))
    handle.abort()
    assert handle.wait(60) and handle.state == "aborted"
    assert handle.report().stop_kind == "interrupted"


def test_a_handle_made_elsewhere_can_abort_a_run_of_this_machine(tmp_path):
    store = str(tmp_path / "s.db")
    handle = jg.Scheduler(jg.Shell("sleep 34.5", name="long")).submit(store=store)
    deadline = time.monotonic() + 10
    while handle.state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    other = jg.attach(handle.run_id, store=store)
    assert other.state == "running"
    other.abort()
    assert other.wait(30) and other.state == "aborted"
    assert Path(store).exists()
    assert wait_until_gone("sleep 34.5", 5.0) == []
