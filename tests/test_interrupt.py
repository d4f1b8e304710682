"""Ctrl-C: the first one stops and reports (exit 130), the second stops at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

from procs import wait_until_gone

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import jobgraph as jg

    async def wait_long():
        await asyncio.sleep(60)

    shell = jg.Shell({command!r}, name="shell")
    coro = jg.Job(wait_long, name="coro")
    after = jg.Shell("echo never", requires=shell, name="after")
    scheduler = jg.Scheduler(shell, coro, after)
    scheduler.kill_grace = {grace}
    print("started", flush=True)
    report = scheduler.run()
    print(report.to_json(), flush=True)
    sys.exit(report.exit_code)
    """
)


def start(command: str, grace: float) -> subprocess.Popen[str]:
    code = SCRIPT.format(command=command, grace=grace)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.5)  # let the jobs start
    return proc


def marker() -> tuple[str, str]:
    tag = f"{int(uuid.uuid4().hex[:6], 16) % 10**6:06d}"
    return f"sleep 60.{tag}", f"sleep 60.{tag}"


def test_first_interrupt_cancels_records_and_exits_130():
    command, mark = marker()
    proc = start(f"{command} & wait", grace=2.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 130
    report = json.loads(out)
    assert report["why"] == "interrupted" and report["exit_code"] == 130
    states = {job["name"]: job["state"] for job in report["jobs"]}
    assert states == {"shell": "CANCELLED", "coro": "CANCELLED", "after": "CANCELLED"}
    assert wait_until_gone(mark, 5.0) == []


def test_second_interrupt_kills_without_waiting_for_the_grace_period():
    command, mark = marker()
    # The command ignores SIGTERM: only SIGKILL stops it; the grace period is long.
    proc = start(f"trap '' TERM; {command} & wait", grace=30.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert time.monotonic() - started < 10
    assert proc.returncode == 130
    assert json.loads(out)["why"] == "interrupted"
    assert wait_until_gone(mark, 5.0) == []


def _stdout_of(code: str) -> str:
    """What a fresh Python process running ``code`` prints."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=True
    ).stdout


def test_interrupt_handler_is_removed_after_the_run():
    code = textwrap.dedent(
        """
        import signal
        import jobgraph as jg
        # Python's own handler, whatever this process inherited (a test run started in
        # the background of a shell inherits an ignored SIGINT, which Python keeps).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        jg.Scheduler(jg.Job(lambda: 1)).run()
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        """
    )
    out = _stdout_of(code)
    assert out.strip() == "True"


def test_a_handler_of_the_callers_is_put_back_after_the_run():
    code = textwrap.dedent(
        """
        import signal
        import jobgraph as jg
        def mine(signum, frame):
            pass
        for handler in (mine, signal.SIG_DFL, signal.SIG_IGN):
            signal.signal(signal.SIGINT, handler)
            jg.Scheduler(jg.Job(lambda: 1)).run()
            print(signal.getsignal(signal.SIGINT) is handler)
        """
    )
    out = _stdout_of(code)
    assert out.split() == ["True", "True", "True"]
