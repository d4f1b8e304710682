"""The server's launcher and its run hosts, driven directly through the launcher's input.

Each test starts ``python -m jobgraph.launcher`` (or a variant with smaller limits) and
writes the messages a server would: ``{"start": REQUEST}`` and ``{"abort": RUN_ID}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobgraph.store import open_store
from procs import alive, survivors

HERE = Path(__file__).parent


class LauncherProcess:
    """A launcher on a pipe, a store and a folder per run, in ``tmp_path``."""

    def __init__(self, tmp_path: Path, prelude: str = "") -> None:
        self.tmp_path = tmp_path
        self.store = str(tmp_path / "state.db")
        code = textwrap.dedent(prelude) + "\nfrom jobgraph.launcher import main\nmain()\n"
        env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{HERE}"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, "[]"], stdin=subprocess.PIPE, cwd=tmp_path, env=env
        )

    def send(self, message: dict[str, object]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def start(self, workflow: str, **options: object) -> str:
        """Start a run of ``workflow`` (YAML text) with run ``options``; its run id."""
        return self.start_file("workflow.yaml", workflow, **options)

    def start_file(self, name: str, workflow: str | None = None, **options: object) -> str:
        """Start a run of the file ``name`` of its folder (written if ``workflow`` is given)."""
        run_id = uuid.uuid4().hex
        folder = self.folder(run_id)
        folder.mkdir()
        if workflow is not None:
            (folder / name).write_text(workflow)
        request = {
            "run_id": run_id,
            "store": self.store,
            "folder": str(folder),
            "workflow": str(folder / name),
            "options": options,
        }
        self.send({"start": request})
        return run_id

    def folder(self, run_id: str) -> Path:
        return self.tmp_path / run_id

    def pid_of(self, run_id: str, seconds: float = 20.0) -> int:
        """The process that runs ``run_id`` (from its run.pid)."""
        path = self.folder(run_id) / "run.pid"
        deadline = time.monotonic() + seconds
        while not path.exists():
            assert time.monotonic() < deadline, "no run.pid"
            time.sleep(0.01)
        return int(path.read_text())

    def ended(self, run_id: str, seconds: float = 30.0) -> tuple[int, str]:
        """Wait for the run's recorded end: its exit code and why."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            store = open_store(self.store) if Path(self.store).exists() else None
            info = store.find_run("", run_id) if store is not None else None
            if store is not None:
                store.close()
            if info is not None and info.ended_at is not None:
                assert info.exit_code is not None and info.why is not None
                return info.exit_code, info.why
            time.sleep(0.02)
        raise AssertionError(f"run {run_id} did not end in {seconds} s")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[LauncherProcess]:
    started = LauncherProcess(tmp_path)
    yield started
    started.close()


QUICK = "jobs:\n  a:\n    shell: echo hi\n"


def host_settles() -> None:
    """Give a host whose run ended the moment it takes to say it is free again.

    It says so just after the run's end is recorded, once the run's threads ended: a
    moment, longer on a loaded machine (a generous bound: nothing else tells it here).
    """
    time.sleep(1.0)


def test_runs_one_after_another_share_a_host(launcher: LauncherProcess) -> None:
    first = launcher.start(QUICK)
    assert launcher.ended(first) == (0, "ok")
    host_settles()
    second = launcher.start(QUICK)
    assert launcher.ended(second) == (0, "ok")
    host = launcher.pid_of(first)
    assert launcher.pid_of(second) == host != launcher.process.pid
    assert os.getpgid(host) == host  # a group of its own (killed as one)
    assert os.getsid(host) == os.getsid(launcher.process.pid) != os.getsid(0)
    assert (launcher.folder(first) / "run.log").exists()


def test_runs_at_the_same_time_get_hosts_of_their_own(launcher: LauncherProcess) -> None:
    slow = "jobs:\n  a:\n    shell: sleep 1\n"
    runs = [launcher.start(slow) for _ in range(3)]
    assert len({launcher.pid_of(run) for run in runs}) == 3
    assert [launcher.ended(run) for run in runs] == [(0, "ok")] * 3


SETS_AND_SEES = """
import os, sys

def leave_traces():
    os.environ["JOBGRAPH_TEST_LEAK"] = "1"
    sys.path.append("/leaked")
    os.chdir("/")

def look():
    return [os.environ.get("JOBGRAPH_TEST_LEAK"), "/leaked" in sys.path, os.getcwd()]
"""


def test_a_run_finds_nothing_an_earlier_run_of_its_host_changed(
    launcher: LauncherProcess, tmp_path: Path
) -> None:
    (tmp_path / "traces.py").write_text(SETS_AND_SEES)
    first = launcher.start("jobs:\n  t:\n    call: traces:leave_traces\n")
    assert launcher.ended(first) == (0, "ok")
    host_settles()
    second = launcher.start("jobs:\n  l:\n    call: traces:look\n")
    assert launcher.ended(second) == (0, "ok")
    assert launcher.pid_of(second) == launcher.pid_of(first)
    store = open_store(launcher.store)
    assert store is not None
    result = store.job_ends(second)["l"].result
    store.close()
    import pickle

    assert result is not None
    assert pickle.loads(result) == [None, False, str(launcher.folder(second))]


def test_abort_stops_the_run_and_the_host_runs_the_next(launcher: LauncherProcess) -> None:
    slow = launcher.start("jobs:\n  a:\n    shell: sleep 30\n")
    host = launcher.pid_of(slow)
    wait_for_running(launcher, slow)
    launcher.send({"abort": slow, "folder": str(launcher.folder(slow))})
    assert launcher.ended(slow, 15)[0] == 130  # a first Ctrl-C: interrupted
    host_settles()
    after = launcher.start(QUICK)
    assert launcher.ended(after) == (0, "ok")
    assert launcher.pid_of(after) == host


def test_a_late_abort_never_reaches_the_next_run_of_the_host(launcher: LauncherProcess) -> None:
    first = launcher.start(QUICK)
    assert launcher.ended(first) == (0, "ok")
    host_settles()
    second = launcher.start("jobs:\n  a:\n    shell: sleep 1\n")
    assert launcher.pid_of(second) == launcher.pid_of(first)
    wait_for_running(launcher, second)
    launcher.send({"abort": first, "folder": str(launcher.folder(first))})  # too late
    assert launcher.ended(second) == (0, "ok")


def test_a_run_that_cannot_begin_ends_its_host_and_the_next_gets_a_new_one(
    launcher: LauncherProcess,
) -> None:
    broken = launcher.start_file("missing.yaml")
    host = launcher.pid_of(broken)
    assert survivors({host}, 10.0) == []  # its process id is gone: the run reads failed
    log = (launcher.folder(broken) / "run.log").read_text()
    assert "cannot read the workflow" in log
    after = launcher.start(QUICK)
    assert launcher.ended(after) == (0, "ok")
    assert launcher.pid_of(after) != host


def test_a_host_ends_after_its_share_of_runs(tmp_path: Path) -> None:
    launcher = LauncherProcess(tmp_path, "import jobgraph.runhost as r; r.RUNS_PER_HOST = 2")
    try:
        runs = []
        for _ in range(3):
            runs.append(launcher.start(QUICK))
            assert launcher.ended(runs[-1]) == (0, "ok")
            host_settles()
        first, second, third = (launcher.pid_of(run) for run in runs)
        assert first == second != third
        assert survivors({first}, 10.0) == []
    finally:
        launcher.close()


def test_a_host_left_waiting_ends(tmp_path: Path) -> None:
    launcher = LauncherProcess(tmp_path, "import jobgraph.launcher as l; l.IDLE_SECONDS = 0.4")
    try:
        run = launcher.start(QUICK)
        assert launcher.ended(run) == (0, "ok")
        assert survivors({launcher.pid_of(run)}, 10.0) == []
    finally:
        launcher.close()


def test_when_the_server_goes_the_running_run_ends_recorded(tmp_path: Path) -> None:
    launcher = LauncherProcess(tmp_path)
    slow = launcher.start("jobs:\n  a:\n    shell: sleep 1\n")
    host = launcher.pid_of(slow)
    wait_for_running(launcher, slow)
    launcher.close()  # what the server's death does to the launcher's input
    assert launcher.process.returncode == 0
    assert alive(host)  # the run goes on
    assert launcher.ended(slow) == (0, "ok")
    assert survivors({host}, 10.0) == []  # then its host ends: nobody gives it runs any more


def wait_for_running(launcher: LauncherProcess, run_id: str) -> None:
    """Until the run's command has started (its start is recorded)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        store = open_store(launcher.store) if Path(launcher.store).exists() else None
        if store is not None:
            started = [s.name for s in store.job_starts(run_id)]
            store.close()
            if started:
                return
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never started a job")


ABANDONS = """
import time

def spin():
    time.sleep(3)
"""


def test_a_run_that_leaves_a_thread_running_ends_its_host(
    launcher: LauncherProcess, tmp_path: Path
) -> None:
    (tmp_path / "abandons.py").write_text(ABANDONS)
    workflow = "jobs:\n  s:\n    call: abandons:spin\n    timeout: 0.2\n"
    run = launcher.start(workflow, executor="thread")
    exit_code, why = launcher.ended(run)
    assert exit_code == 1 and "timed out" in why
    assert survivors({launcher.pid_of(run)}, 2.0) == []  # not 3 s: the thread went with it
    after = launcher.start(QUICK)
    assert launcher.ended(after) == (0, "ok")
    assert launcher.pid_of(after) != launcher.pid_of(run)


def test_an_abort_right_after_the_start_stops_that_run(launcher: LauncherProcess) -> None:
    # Sent together: the abort reaches the host before the run could take a Ctrl-C.
    for _ in range(3):
        run = launcher.start("jobs:\n  a:\n    shell: sleep 30\n")
        launcher.send({"abort": run, "folder": str(launcher.folder(run))})
        assert launcher.ended(run, 20)[0] == 130  # recorded, interrupted: never lost
    host_settles()
    after = launcher.start(QUICK)  # and the hosts go on
    assert launcher.ended(after) == (0, "ok")


def test_runs_go_on_when_the_launchers_folder_is_removed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    launcher = LauncherProcess(tmp_path, f"import os; os.chdir({str(home)!r})")
    try:
        first = launcher.start(QUICK)
        assert launcher.ended(first) == (0, "ok")
        home.rmdir()
        for _ in range(2):  # a host of before, and one forked now
            second = launcher.start("jobs:\n  a:\n    shell: sleep 0.5\n")
            third = launcher.start(QUICK)
            assert launcher.ended(second) == (0, "ok")
            assert launcher.ended(third) == (0, "ok")
    finally:
        launcher.close()
