"""The reaper: nothing a runner started survives it being killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import jobgraph as jg
from jobgraph.executors import reaper
from jobgraph.executors.reaper import REAPER, Reaper
from procs import (
    alive,
    descendants,
    live_processes_with,
    survivors,
    wait_until_gone,
)

HERE = Path(__file__).parent


def unique_sleep() -> str:
    """A ``sleep`` duration no other process uses: it marks ours in /proc."""
    return f"sleep 300.{int(uuid.uuid4().hex[:6], 16):08d}"


def runner_script(tmp_path: Path, body: str) -> subprocess.Popen[bytes]:
    """Start a runner process running ``body`` (with ``jg`` and ``READY`` defined)."""
    script = tmp_path / "runner.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "import jobgraph as jg\n"
        f"READY = {str(tmp_path / 'ready')!r}\n"
        "if __name__ == '__main__':\n" + textwrap.indent(textwrap.dedent(body), "    ")
    )
    return subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE)


def wait_for(path: Path, proc: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_a_killed_runner_leaves_no_command_or_background_child(tmp_path: Path) -> None:
    marker = unique_sleep()
    family = f"{marker} & (sh -c '{marker}' &) ; {marker} & touch \"$READY\"; {marker}"
    proc = runner_script(
        tmp_path,
        f"""
        job = jg.Shell({family!r}, env={{"READY": READY}})
        jg.Scheduler(job, jg.Shell({marker!r}), window=4).run()
        """,
    )
    try:
        wait_for(tmp_path / "ready", proc)
        deadline = time.monotonic() + 10
        while len(live_processes_with(marker)) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        # four sleeps in the family, one alone (and the shells whose command lines name them)
        assert len(live_processes_with(marker)) >= 5
        family_tree = descendants(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert wait_until_gone(marker, 5.0) == []
    # The reaper too is gone: nothing the runner started is left.
    assert survivors(family_tree) == []


def test_a_killed_runner_leaves_no_worker_process(tmp_path: Path) -> None:
    proc = runner_script(
        tmp_path,
        """
        import proc_helpers
        job = jg.Job(proc_helpers.sleep_then_touch, 0.0, READY, executor="process")
        slow = jg.Job(proc_helpers.sleep_for, 300.0, executor="process", requires=[job])
        jg.Scheduler(job, slow, window=4).run(processes=2)
        """,
    )
    try:
        wait_for(tmp_path / "ready", proc)
        time.sleep(0.3)  # the second job is in a worker now
        family = descendants(proc.pid)
        workers = [
            p for p in family if b"multiprocessing" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert workers, "no worker process found"
    finally:
        proc.kill()
        proc.wait()
    assert survivors(family) == []


def test_a_normal_run_leaves_no_reaper_behind() -> None:
    seen: list[int | None] = []

    async def look() -> None:
        seen.append(REAPER.pid)

    first = jg.Shell("true")
    assert jg.Scheduler(first, jg.Job(look, requires=[first]), window=2).run().ok
    helper = seen[0]
    assert helper is not None
    assert REAPER.pid is None
    # Told to quit at the run's end, it is gone soon after (the run does not wait for it).
    assert survivors({helper}) == []
    assert wait_until_gone(f"{reaper.HELPER_NAME} {os.getpid()}", 5.0) == []


def test_the_helper_is_a_small_shell_process_holding_only_its_pipe() -> None:
    own = Reaper()
    own.enter()
    own.watch(os.getpid())  # starts it (our own pid: never killed, "q" comes first)
    try:
        helper = own.pid
        assert helper is not None
        # (An earlier run's helper, told to quit, may still be on its way out; and just
        # after exec, /proc shows an empty command line for a moment.)
        deadline = time.monotonic() + 5
        while helper not in live_processes_with(f"{reaper.HELPER_NAME} {os.getpid()}"):
            assert time.monotonic() < deadline, "the helper's command line never showed"
            time.sleep(0.01)
        assert os.getsid(helper) == helper  # a session of its own: our signals miss it
        # Its input is the pipe; nothing else of this process's (files, sockets) is open.
        assert os.readlink(f"/proc/{helper}/fd/0").startswith("pipe:")
        assert sorted(os.listdir(f"/proc/{helper}/fd"), key=int)[3:] == [], "inherited"
    finally:
        own.forget(os.getpid())
        own.leave()
    assert survivors({helper}) == []


def test_a_run_without_commands_starts_no_reaper() -> None:
    seen: list[int | None] = []

    async def look() -> None:
        seen.append(REAPER.pid)

    jg.Scheduler(jg.Job(look)).run()
    assert seen == [None]


def helper_told(lines: str, seconds: float = 5.0) -> int:
    """Run the reaper's helper on its own, tell it ``lines``, close; its exit status."""
    helper = subprocess.Popen(
        ["/bin/sh", "-c", reaper.HELPER, reaper.HELPER_NAME, "test"], stdin=subprocess.PIPE
    )
    assert helper.stdin is not None
    helper.stdin.write(lines.encode())
    helper.stdin.close()
    return helper.wait(seconds)


Spawn = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start processes for a test, each in a session of its own unless told; all killed after.

    A string is a marker command (``sleep N``) run through the shell; a list runs as is.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(
        command: str | list[str], own_group: bool = True, **options: Any
    ) -> subprocess.Popen[bytes]:
        argv = ["/bin/sh", "-c", f"{command}; true"] if isinstance(command, str) else command
        proc = subprocess.Popen(argv, start_new_session=own_group, **options)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_only_groups_still_registered_are_killed_when_the_runner_dies(spawn: Spawn) -> None:
    marker_kept, marker_killed = unique_sleep(), unique_sleep()
    kept, killed = spawn(marker_kept), spawn(marker_killed)
    stranger = spawn(unique_sleep())
    own = Reaper()
    own.enter()
    own.watch(kept.pid)
    own.watch(killed.pid)
    own.forget(kept.pid)
    helper = own._proc
    assert helper is not None and own._fd is not None
    os.close(own._fd)  # what the kernel does when this process dies: EOF
    assert helper.wait(5.0) == 0
    assert killed.wait(5.0) == -signal.SIGKILL
    assert wait_until_gone(marker_killed, 5.0) == []
    assert kept.poll() is None and stranger.poll() is None


def test_a_reused_pid_is_left_alone(spawn: Spawn) -> None:
    marker = unique_sleep()
    other = spawn(marker)
    # Registered with another start time: the pid now names a newcomer.
    assert helper_told(f"+{other.pid} 1\n") == 0
    assert other.poll() is None and live_processes_with(marker)


def test_the_helper_is_replaced_if_it_dies(spawn: Spawn) -> None:
    cmd = spawn(unique_sleep())
    own = Reaper()
    own.enter()
    own.watch(cmd.pid)
    first = own._proc
    assert first is not None
    first.kill()
    first.wait()
    other = spawn(unique_sleep())
    own.watch(other.pid)  # the write fails: a new helper takes both groups
    assert own._proc is not None and own._proc is not first
    assert own._fd is not None
    os.close(own._fd)
    own._proc.wait(5.0)
    assert cmd.wait(5.0) == -signal.SIGKILL
    assert other.wait(5.0) == -signal.SIGKILL


def test_a_worker_without_a_group_of_its_own_is_killed_alone(spawn: Spawn) -> None:
    # A worker process is watched by its pid before it makes its own group.
    worker = spawn(unique_sleep(), own_group=False)  # in our group
    assert helper_told(f"+{worker.pid} {reaper.start_time(worker.pid)}\n") == 0
    assert worker.wait(5.0) == -signal.SIGKILL
    assert alive(os.getpid())  # not our group: only the worker


def test_groups_zero_and_one_are_never_signalled() -> None:
    # "kill -- -1" would be every process; a start time that matches pid 1's is given.
    assert helper_told(f"+1 {reaper.start_time(1)}\n+0 -\n") == 0
    assert alive(os.getpid())


NAMED_ODDLY = """
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, b"a\\nb) c", 0, 0, 0)  # PR_SET_NAME: a newline and a ")"
print("named", flush=True)
time.sleep(300)
"""


def test_a_process_name_with_a_newline_does_not_stop_the_kills(spawn: Spawn) -> None:
    odd = spawn([sys.executable, "-c", NAMED_ODDLY], stdout=subprocess.PIPE)
    plain = spawn(unique_sleep())
    assert odd.stdout is not None and odd.stdout.readline() == b"named\n"
    assert b"\n" in Path(f"/proc/{odd.pid}/stat").read_bytes().rsplit(b")", 1)[0]
    lines = "".join(f"+{pid} {reaper.start_time(pid)}\n" for pid in (odd.pid, plain.pid))
    assert helper_told(lines) == 0
    assert odd.wait(5.0) == -signal.SIGKILL
    assert plain.wait(5.0) == -signal.SIGKILL


def test_many_groups_come_and_go_without_slowing_the_helper() -> None:
    # Pids far above any in use (pid_max is at most 2**22): nothing real is named.
    first = 2**22 + 10
    lines = [f"+{first + k} 1" for k in range(5000)] + [f"-{first + k}" for k in range(5000)]
    started = time.monotonic()
    assert helper_told("\n".join(lines) + "\nq\n", 60) == 0
    # Each line costs the same however many are watched (seconds, not minutes).
    assert time.monotonic() - started < 30
