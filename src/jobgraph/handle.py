"""Runs in the background: ``Scheduler.submit()``, ``attach()`` and the handle they return.

A submitted run goes on in a process of its own, forked from the caller, so the graph
needs no pickling (lambdas and local functions are fine) and the run outlives the
caller's event loop; in its own session, it outlives the caller's process too. All the
handle knows comes from the store the run writes to, so a handle made elsewhere with
:func:`attach` sees the same things. Aborting sends the run what Ctrl-C would: running
jobs are cancelled and recorded, and the run ends interrupted (the handle says aborted).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StoreError
from .recorder import local_pid, pid_alive
from .store import Store, open_store
from .store.base import RunInfo, new_run_id

if TYPE_CHECKING:
    from .report import Report
    from .scheduler import Scheduler

PENDING, RUNNING, SUCCEEDED, FAILED, ABORTED = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "aborted",
)
ENDED = (SUCCEEDED, FAILED, ABORTED)
_POLL = 0.05  # seconds between looks at the store while waiting
_START_WAIT = 30.0  # at most this long, submit() waits for the run to be recorded
_EXIT_INTERRUPTED = 130


class Following:
    """What every run handle answers the same way: waiting, and output read in pieces.

    A handle says its ``state`` and reads a job's output from an offset (``_output``);
    the rest follows from those two.
    """

    poll_seconds = _POLL  # between looks at the run while waiting

    def __init__(self) -> None:
        self._cursors: dict[tuple[str, str], int] = {}  # what fresh_* already returned

    @property
    def state(self) -> str:
        """``pending``, ``running``, ``succeeded``, ``failed`` or ``aborted``."""
        raise NotImplementedError

    def _output(self, name: str, stream: str, offset: int) -> tuple[str, int]:
        """A job's output from ``offset`` on, and the offset after it."""
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ended (True), or ``timeout`` seconds passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.state not in ENDED:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_seconds)
        return True

    def stdout(self, job: Any) -> str:
        """What job ``job`` (a job, or its name: ``outer/inner`` when nested) printed."""
        return self._output(_name(job), "stdout", 0)[0]

    def stderr(self, job: Any) -> str:
        """What job ``job`` wrote to its standard error so far."""
        return self._output(_name(job), "stderr", 0)[0]

    def fresh_stdout(self, job: Any) -> str:
        """What job ``job`` printed since the last call of this method on this handle."""
        return self._fresh(_name(job), "stdout")

    def fresh_stderr(self, job: Any) -> str:
        """What job ``job`` wrote to its standard error since the last such call."""
        return self._fresh(_name(job), "stderr")

    def _fresh(self, name: str, stream: str) -> str:
        text, self._cursors[(name, stream)] = self._output(
            name, stream, self._cursors.get((name, stream), 0)
        )
        return text


class RunHandle(Following):
    """Follow and steer a run that goes on elsewhere (another process or machine).

    Everything is read from the run's store: ``state``, ``report()``, the output of its
    commands. ``abort()`` and ``resume()`` act on it.
    """

    def __init__(
        self,
        run_id: str,
        store: str,
        *,
        pid: int | None = None,
        scheduler: Scheduler | None = None,
        options: dict[str, Any] | None = None,
        since: float = 0.0,
        opened: Store | None = None,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.store_path = store
        self._store: Store | None = opened  # a connection the caller lends (a server's)
        self._pid = pid  # the run's process, when this handle started it
        self._scheduler = scheduler
        self._options = dict(options or {})
        self._since = since  # an end recorded before this is an earlier attempt's (resume)

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id} {self.state}>"

    @property
    def store(self) -> Store:
        """The run's store (opened on first use)."""
        if self._store is None:
            store = open_store(self.store_path)
            assert store is not None
            self._store = store
        return self._store

    # -- state ----------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``pending``, ``running``, ``succeeded``, ``failed`` or ``aborted``."""
        return self.state_of(self.store.find_run("", self.run_id))

    def state_of(self, info: RunInfo | None) -> str:
        """The state, given the run's record just read (read again only in a race)."""
        if info is None or (info.ended_at is not None and info.ended_at < self._since):
            # Not begun yet, or a resume whose process has not taken the run over yet.
            if self._alive() is not False:
                return PENDING
            info = self.store.find_run("", self.run_id)  # it may have begun and ended since
            if info is None or info.ended_at is None or info.ended_at < self._since:
                return FAILED
        if info.ended_at is None:
            # No end recorded: running, unless its process is gone (killed: resumable).
            if self._alive(info.owner, info.lease_until) is not False:
                return RUNNING
            # Gone: but it may have recorded its end between the two looks.
            info = self.store.find_run("", self.run_id)
            if info is None or info.ended_at is None:
                return FAILED
        if info.exit_code == 0:
            return SUCCEEDED
        return ABORTED if info.exit_code == _EXIT_INTERRUPTED else FAILED

    def report(self) -> Report:
        """The run's report as recorded so far (complete once it ended)."""
        from .report import Report

        return Report.from_store(self.store, self.run_id)

    def _output(self, name: str, stream: str, offset: int) -> tuple[str, int]:
        text = self.store.output(self.run_id, name, stream)
        return text[offset:], len(text)

    # -- steering -------------------------------------------------------------------

    def abort(self) -> None:
        """Stop the run: running jobs are cancelled and recorded; it ends aborted."""
        if self.state in ENDED:
            return
        pid = self._pid
        if pid is None:
            info = self.store.find_run("", self.run_id)
            pid = local_pid(info.owner if info else None)
        if pid is None:
            raise RuntimeError(
                f"run {self.run_id} is not run by a process of this machine: abort it "
                f"where it runs (or through the server that runs it)"
            )
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # what a first Ctrl-C does: stop, record, report

    def resume(self) -> RunHandle:
        """Run again what did not finish (in the background); return its handle."""
        if self.state not in ENDED:
            raise RuntimeError(f"run {self.run_id} has not ended: wait for it, or abort it")
        if self._scheduler is not None:
            options = {**self._options, "resume": self.run_id}
            return submit(self._scheduler, options)
        return _resume_from_origin(self)

    def _await_start(self, limit: float = _START_WAIT) -> None:
        """Return once the run's process has recorded the run and holds it (or died).

        Then ``attach(run_id)`` elsewhere finds the run, and ``abort()`` its process.
        """
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            info = self.store.find_run("", self.run_id)
            if info is not None:
                if info.ended_at is None and info.owner is not None:
                    return  # running, and held by its process
                if info.ended_at is not None and info.ended_at >= self._since:
                    return  # over already
            if self._alive() is False:
                return
            time.sleep(_POLL / 5)

    def _alive(self, owner: str | None = None, lease_until: float | None = None) -> bool | None:
        """Is the run's process alive? None when this machine cannot tell."""
        if self._pid is not None:
            return _pid_alive(self._pid, child=True)
        if self._since and time.time() - self._since < _START_WAIT:
            return None  # (re)started moments ago, its process not known yet: no verdict
        pid = local_pid(owner)
        if pid is not None:
            return _pid_alive(pid, child=False)
        if lease_until is not None:
            return lease_until > time.time()  # a run elsewhere renews its lease while alive
        return None


def attach(run_id: str, store: Any) -> RunHandle:
    """A handle for a run started elsewhere, found in ``store`` (a path or URL)."""
    path = store_location(store)
    handle = RunHandle(run_id, path)
    if handle.store.find_run("", run_id) is None:
        raise StoreError(f"no run {run_id!r} in the store {path!r}")
    return handle


def submit(scheduler: Scheduler, options: dict[str, Any]) -> RunHandle:
    """Start ``scheduler.run(**options)`` in a background process (see :meth:`submit`)."""
    options = dict(options)
    store = options.pop("store", scheduler.store)
    path = store_location(store) if store is not None else _scratch_store()
    run_id = options.pop("run_id", None) or _resumed_id(options, path, scheduler) or new_run_id()
    # Mistakes in the graph or the options are the caller's errors, raised here.
    scheduler.validate_for(
        options.get("resources") or scheduler.pools, options.get("executor", scheduler.executor)
    )
    now = time.time()
    pid = os.fork()
    if pid == 0:  # the child
        child_options = {**options, "store": path, "run_id": run_id}
        run_in_child(lambda: scheduler.run(**child_options).exit_code)
    handle = RunHandle(
        run_id, path, pid=pid, scheduler=scheduler, options={**options, "store": path}, since=now
    )
    handle._await_start()
    return handle


def run_in_child(body: Callable[[], int]) -> None:
    """What a forked run process does, then exits with ``body()``'s exit code.

    Its own session (the caller's Ctrl-C and exit do not reach it); SIGINT is a first
    Ctrl-C (what ``abort()`` sends), kept until the run can take it if it comes while the
    run is still setting up (raised there, it would end the process with the run's lease
    held and no end recorded); its own output goes nowhere; it leaves with ``os._exit``,
    never running the exit handlers of the process it was forked from.
    """
    code = 1
    try:
        detach()
        from .runner import defer_interrupt  # imported now: not in a signal handler

        signal.signal(signal.SIGINT, lambda signum, frame: defer_interrupt())
        code = body()
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def detach(session: bool = True) -> None:
    """In a process just forked to run runs: no terminal, no loop, a session of its own.

    With ``session=False``: a process group of its own, in the parent's session.
    """
    if session:
        os.setsid()
    else:
        os.setpgid(0, 0)
    redirect_output(None)
    asyncio.events._set_running_loop(None)  # forked from inside a running loop, maybe
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # runs wait for their commands


def redirect_output(log: str | None) -> None:
    """No input; output to ``log`` (appended) or nowhere: never the caller's terminal."""
    devnull = os.open(os.devnull, os.O_RDWR)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log else devnull
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {devnull, out} - {0, 1, 2}:  # one of them may have been given 0-2 itself
        os.close(fd)


def _resumed_id(options: dict[str, Any], path: str, scheduler: Scheduler) -> str | None:
    resume = options.get("resume")
    if not resume:
        return None
    key = "last" if resume is True else str(resume)
    store = open_store(path)
    assert store is not None
    try:
        info = store.find_run(scheduler.name, key)
    finally:
        store.close()
    if info is None and key != "last":
        raise StoreError(f"no run {key!r} to resume in the store")
    return info.run_id if info else None


def store_location(store: Any) -> str:
    """Where other processes find ``store``: an absolute SQLite path, or a server's URL."""
    from .store import SQLiteStore, sqlite_file
    from .store.postgres import PostgresStore

    if isinstance(store, SQLiteStore):
        return str(store.path)
    if isinstance(store, PostgresStore):
        return store.location
    if isinstance(store, (str, os.PathLike)):
        text = os.fspath(store)
        file = sqlite_file(text)
        # A database server: every process reaches it by the same URL.
        return text if file is None else str(Path(file).resolve())
    raise ValueError(
        f"a run in the background needs a store other processes can read (a path, "
        f"sqlite:///path or postgresql://...), not {store!r}"
    )


def _scratch_store() -> str:
    """Where a run submitted without a store keeps its records (for its handle)."""
    return str(Path(tempfile.mkdtemp(prefix="jobgraph-run-")) / "state.db")


def _name(job: Any) -> str:
    return job if isinstance(job, str) else str(job.name)


def _pid_alive(pid: int, child: bool) -> bool:
    if child:
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)  # reap our own child once it ended
            if done:
                return False
    return pid_alive(pid)


def _resume_from_origin(handle: RunHandle) -> RunHandle:
    """Resume a run started by ``jobgraph run FILE``: the command line knows its file."""
    info = handle.store.find_run("", handle.run_id)
    if info is None or '"origin"' not in info.options:
        raise RuntimeError(
            f"run {handle.run_id} was not started from a file: resume it from the process "
            f"that has its scheduler (scheduler.submit(resume={handle.run_id!r}))"
        )
    now = time.time()
    command = [sys.executable, "-m", "jobgraph", "resume", handle.run_id, "--store"]
    process = subprocess.Popen(
        [*command, handle.store_path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return RunHandle(handle.run_id, handle.store_path, pid=process.pid, since=now)
