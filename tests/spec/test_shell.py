"""Acceptance tests for jg.Shell (API.md sections 1 and 7, local part)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import jobgraph as jg
from procs import exactly, wait_until_gone
from spec.helpers_proc import record_of


def _wait_until_gone(argv: list[str], seconds: float = 3.0) -> list[int]:
    return wait_until_gone(exactly(argv), seconds)


# -- commands and results ----------------------------------------------------------------


def test_string_command_runs_through_sh_and_captures_output():
    job = jg.Shell("echo hello && echo oops >&2; echo $((2+3))", name="sh")
    report = jg.Scheduler(job).run()
    assert report.ok, report.why()
    result = job.result()
    assert result.returncode == 0
    assert result.stdout == "hello\n5\n"
    assert result.stderr == "oops\n"
    assert isinstance(result.stdout, str) and isinstance(result.stderr, str)


def test_list_command_is_exec_without_shell():
    # With no shell, '$HOME' and ';' are plain arguments.
    job = jg.Shell(["printf", "%s|", "$HOME", "a b", ";"], name="exec")
    assert jg.Scheduler(job).run().ok
    assert job.result().stdout == "$HOME|a b|;|"
    assert job.result().returncode == 0


def test_nonzero_exit_status_is_failed_with_returncode():
    job = jg.Shell("echo partial; echo problem >&2; exit 3", name="bad")
    report = jg.Scheduler(job).run()
    assert not report.ok
    assert report.exit_code == 1
    assert job.state is jg.State.FAILED
    assert record_of(report, "bad")["returncode"] == 3
    with pytest.raises(jg.JobError):
        job.result()
    # the output that arrived is still readable
    assert "partial" in job.stdout()
    assert "problem" in job.stderr()


def test_list_command_exit_status():
    job = jg.Shell(["sh", "-c", "exit 7"], name="seven")
    report = jg.Scheduler(job).run()
    assert job.state is jg.State.FAILED
    assert record_of(report, "seven")["returncode"] == 7


def test_successful_shell_returncode_in_report_is_zero():
    job = jg.Shell("true", name="t")
    report = jg.Scheduler(job).run()
    assert record_of(report, "t")["returncode"] == 0


def test_missing_program_fails_only_that_job():
    missing = jg.Shell(["/nonexistent/jobgraph-spec-program"], name="missing")
    other = jg.Shell("echo fine", name="other")
    report = jg.Scheduler(missing, other).run()
    assert missing.state is jg.State.FAILED
    assert other.state is jg.State.SUCCEEDED
    assert report.exit_code == 1


def test_env_is_given_to_the_command():
    job = jg.Shell(
        'printf "%s" "$JOBGRAPH_SPEC_VAR"', env={"JOBGRAPH_SPEC_VAR": "hello env"}, name="env"
    )
    assert jg.Scheduler(job).run().ok
    assert job.result().stdout == "hello env"


def test_cwd_is_the_working_directory(tmp_path: Path):
    (tmp_path / "marker.txt").write_text("x")
    job = jg.Shell("pwd; ls", cwd=tmp_path, name="cwd")
    assert jg.Scheduler(job).run().ok
    out = job.result().stdout.splitlines()
    assert Path(out[0]).resolve() == tmp_path.resolve()
    assert "marker.txt" in out


def test_shell_jobs_depend_on_each_other(tmp_path: Path):
    write = jg.Shell("echo data > out.txt", cwd=tmp_path, name="write")
    read = jg.Shell("cat out.txt", cwd=tmp_path, name="read", requires=write)
    assert jg.Scheduler(read).run().ok
    assert read.result().stdout == "data\n"


def test_failed_shell_skips_dependents():
    bad = jg.Shell("exit 1", name="bad")
    after = jg.Shell("echo never", name="after", requires=bad)
    jg.Scheduler(after).run()
    assert after.state is jg.State.SKIPPED
    assert after.skipped_because == ["bad"]


# -- live output ---------------------------------------------------------------------------


def test_stdout_and_fresh_stdout_while_running():
    shell = jg.Shell("echo one; sleep 0.4; echo two; sleep 0.4; echo three", name="talk")
    observed: dict[str, object] = {}

    async def watch():
        async def until(predicate, seconds=3.0):
            deadline = time.monotonic() + seconds
            while not predicate():
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.01)
            return True

        observed["got_one"] = await until(lambda: "one" in shell.stdout())
        observed["state_then"] = shell.state
        observed["all_1"] = shell.stdout()
        observed["fresh_1"] = shell.fresh_stdout()
        observed["fresh_empty"] = shell.fresh_stdout()
        observed["got_two"] = await until(lambda: "two" in shell.stdout())
        observed["fresh_2"] = shell.fresh_stdout()
        observed["all_2"] = shell.stdout()

    watcher = jg.Job(watch, name="watch")
    report = jg.Scheduler(shell, watcher).run()
    assert report.ok, report.why()
    assert observed["got_one"] is True
    assert observed["state_then"] is jg.State.RUNNING
    assert observed["all_1"] == "one\n"
    assert observed["fresh_1"] == "one\n"
    assert observed["fresh_empty"] == ""
    assert observed["got_two"] is True
    assert observed["fresh_2"] == "two\n"
    assert observed["all_2"] == "one\ntwo\n"
    assert shell.stdout() == "one\ntwo\nthree\n"
    assert shell.result().stdout == "one\ntwo\nthree\n"


def test_stderr_and_fresh_stderr_while_running():
    shell = jg.Shell("echo e1 >&2; sleep 0.4; echo e2 >&2", name="errs")
    observed: dict[str, object] = {}

    async def watch():
        deadline = time.monotonic() + 3
        while "e1" not in shell.stderr() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        observed["fresh_1"] = shell.fresh_stderr()
        observed["stdout"] = shell.stdout()

    assert jg.Scheduler(shell, jg.Job(watch)).run().ok
    assert observed["fresh_1"] == "e1\n"
    assert observed["stdout"] == ""
    assert shell.stderr() == "e1\ne2\n"
    assert shell.fresh_stderr() == "e2\n"


# -- timeouts kill the whole process group -------------------------------------------------


def test_timeout_kills_the_whole_process_group():
    # A distinctive duration so that only this test's processes match.
    argv = ["sleep", "30.4321"]
    job = jg.Shell("sleep 30.4321 & sleep 30.4321; wait", name="sleepers", timeout=0.5)
    started = time.monotonic()
    report = jg.Scheduler(job).run()
    elapsed = time.monotonic() - started
    assert job.state is jg.State.TIMED_OUT
    assert elapsed < 10
    assert not report.ok
    assert report.exit_code == 1
    assert _wait_until_gone(argv) == []


def test_timeout_kills_a_list_command():
    argv = ["sleep", "30.4322"]
    job = jg.Shell(argv, name="one_sleep", timeout=0.3)
    started = time.monotonic()
    jg.Scheduler(job).run()
    assert time.monotonic() - started < 10
    assert job.state is jg.State.TIMED_OUT
    assert _wait_until_gone(argv) == []


def test_global_timeout_kills_running_commands():
    argv = ["sleep", "30.4324"]
    job = jg.Shell("sleep 30.4324 & sleep 30.4324; wait", name="sleepers")
    started = time.monotonic()
    report = jg.Scheduler(job, timeout=0.4).run()
    assert time.monotonic() - started < 10
    assert report.exit_code == 3
    assert job.state is jg.State.CANCELLED
    assert _wait_until_gone(argv) == []


def test_shell_timeout_is_retried():
    job = jg.Shell("sleep 30.4325", name="retry", timeout=0.2, retries=1)
    started = time.monotonic()
    jg.Scheduler(job).run()
    assert time.monotonic() - started < 10
    assert job.state is jg.State.TIMED_OUT
    assert job.attempts == 2
    assert _wait_until_gone(["sleep", "30.4325"]) == []
