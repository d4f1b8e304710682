"""Shell jobs: process groups, output, exit status, stopping whole trees."""

from __future__ import annotations

import asyncio
import time
import uuid

import jobgraph as jg
from jobgraph.executors.shell import group_alive
from procs import live_processes_with, wait_until_gone


def marker_sleep(seconds: int) -> tuple[str, str]:
    """A sleep command line that can be found in /proc, and the marker to find it."""
    tag = uuid.uuid4().hex[:8]
    # `exec -a` is not portable in sh; a unique duration fraction marks the process.
    return (
        f"sleep {seconds}.{int(tag, 16) % 10**6:06d}",
        f"sleep {seconds}.{int(tag, 16) % 10**6:06d}",
    )


def test_timeout_kills_background_children_too():
    command, marker = marker_sleep(30)
    job = jg.Shell(f"{command} & {command}; wait", timeout=0.5)
    started = time.monotonic()
    report = jg.Scheduler(job).run()
    assert job.state is jg.State.TIMED_OUT
    assert time.monotonic() - started < 10
    assert wait_until_gone(marker, 5.0) == []
    assert report.exit_code == 1


def test_sigterm_trap_is_killed_after_the_grace_period():
    command, marker = marker_sleep(30)
    script = f"trap '' TERM; {command} & wait"
    job = jg.Shell(["/bin/sh", "-c", script], timeout=0.3)
    scheduler = jg.Scheduler(job)
    scheduler.kill_grace = 0.5
    started = time.monotonic()
    scheduler.run()
    assert job.state is jg.State.TIMED_OUT
    assert time.monotonic() - started < 10
    assert wait_until_gone(marker, 5.0) == []


def test_leftover_background_process_is_stopped_when_the_command_exits():
    command, marker = marker_sleep(30)
    job = jg.Shell(f"{command} & echo started")
    jg.Scheduler(job).run()
    assert job.state is jg.State.SUCCEEDED
    assert job.result().stdout == "started\n"
    assert wait_until_gone(marker, 5.0) == []


def test_exit_status_and_output_are_recorded():
    job = jg.Shell("echo out; echo err >&2; exit 3", name="three")
    report = jg.Scheduler(job).run()
    assert job.state is jg.State.FAILED
    record = report.jobs[0]
    assert record.returncode == 3
    assert "command exited with status 3" in record.error
    assert job.stdout() == "out\n" and job.stderr() == "err\n"


def test_list_command_runs_without_a_shell(tmp_path):
    job = jg.Shell(["printf", "%s|", "a b", "$HOME"], cwd=tmp_path, env={"X": "1"})
    jg.Scheduler(job).run()
    assert job.result().stdout == "a b|$HOME|"


def test_env_and_cwd(tmp_path):
    job = jg.Shell("echo $JG_TEST_VALUE; pwd", cwd=tmp_path, env={"JG_TEST_VALUE": "v42"})
    jg.Scheduler(job).run()
    assert job.result().stdout.split() == ["v42", str(tmp_path)]


def test_output_is_readable_while_the_command_runs():
    job = jg.Shell("echo first; sleep 0.6; echo second")
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        while job.state is not jg.State.RUNNING:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        seen.append((job.stdout(), job.fresh_stdout()))
        while job.state is jg.State.RUNNING:
            await asyncio.sleep(0.01)
        seen.append((job.stdout(), job.fresh_stdout()))

    async def main() -> None:
        await asyncio.gather(jg.Scheduler(job).co_run(), watch())

    asyncio.run(main())
    assert seen[0] == ("first\n", "first\n")
    assert seen[1] == ("first\nsecond\n", "second\n")
    assert job.fresh_stdout() == ""


def test_group_alive_ignores_zombies():
    import subprocess

    child = subprocess.Popen(["/bin/sh", "-c", "sleep 0.1 & exit 0"], start_new_session=True)
    child.wait()
    time.sleep(0.4)
    assert not group_alive(child.pid)


def test_undecodable_output_is_replaced_not_fatal():
    job = jg.Shell(["printf", "\\377ok"])
    jg.Scheduler(job).run()
    assert job.result().stdout == "\ufffdok"


def test_no_marker_processes_left():
    assert live_processes_with("jobgraph-never-started-marker") == []
