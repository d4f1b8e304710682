"""The server's launcher: a single-threaded process that gives each run to a run host.

A server answers requests in threads; forking from a threaded process can leave the
child with a lock held forever. So the server starts this process once, with jobgraph
and the flow modules imported, and sends it one JSON line per message:

- ``{"start": REQUEST}``: give the run to an idle run host (see ``runhost.py``), or fork
  a new one (a few milliseconds). The host's process id lands in ``FOLDER/run.pid``.
  A request is ``{"run_id", "store", "folder", "workflow" | "flow" + "params",
  "options", "resume"}``.
- ``{"abort": RUN_ID, "folder": FOLDER}``: SIGINT (a first Ctrl-C) to the host running
  that run. This process knows which host runs what, and gives a host another run only
  after reading that the last one ended: a late abort never reaches the next run. A run
  it never started (one of a launcher that is gone) gets the signal through its
  ``run.pid``: the host of a launcher that is gone ends with its run, so that pid is
  still that run's.

No reply: the server does not wait. This process and its hosts run in a session of
their own: a server that dies (or is killed) closes this process's input; it then stops,
and each host finishes its run and ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from typing import Any

PID_FILE = "run.pid"
ABORT_MARK = "abort"  # in a run's folder: its abort was asked for (see runhost.py)
LOG_FILE = "run.log"  # what a run's own process printed (not its jobs: the store has those)
RUN_NICENESS = 5  # runs yield the processor to the server that answers about them
IDLE_HOSTS = 64  # at most this many hosts wait for a run; more end at once
IDLE_SECONDS = 60.0  # a host that waited this long for a run ends
STARTED_KEPT = 100_000  # run ids remembered as ours (an abort of an older one: by run.pid)


class Host:
    """The launcher's side of one run host: its process, its socket, its run."""

    def __init__(self, pid: int, conn: socket.socket, run_id: str) -> None:
        self.pid = pid
        self.conn = conn
        self.run_id: str | None = run_id
        self.idle_since = 0.0


class Launcher:
    """Reads messages, hands runs to hosts, and follows which host runs what."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.idle: list[Host] = []
        self.busy: dict[str, Host] = {}  # run id -> the host running it
        # The runs given to hosts of ours, the latest STARTED_KEPT (a dict keeps order).
        self.started: dict[str, None] = {}
        self.pending = b""

    def serve(self) -> None:
        """Until the server closes our input, then let the hosts end."""
        self.selector.register(0, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select(IDLE_SECONDS / 4):
                if key.fd == 0:
                    if not self._read_messages():
                        return self._stop()
                else:
                    self._host_said(key.data)
            self._retire_idle()

    def _read_messages(self) -> bool:
        data = os.read(0, 1 << 16)
        if not data:
            return False
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            if line.strip():
                self._message(json.loads(line))
        return True

    def _message(self, message: dict[str, Any]) -> None:
        if "abort" in message:
            self._abort(message["abort"], message["folder"])
        else:
            self._start(message["start"])

    def _start(self, request: dict[str, Any]) -> None:
        while self.idle:
            host = self.idle.pop()  # the most recent: its pages are the warmest
            try:
                host.conn.sendall(json.dumps(request).encode() + b"\n")
            except OSError:  # it ended meanwhile
                self._forget(host)
                continue
            host.run_id = request["run_id"]
            break
        else:
            host = self._fork(request)
        self.busy[request["run_id"]] = host
        self.started[request["run_id"]] = None
        if len(self.started) > STARTED_KEPT:
            del self.started[next(iter(self.started))]
        # The server finds the run's process here (to tell a run that died, to abort it).
        pid_file = os.path.join(request["folder"], PID_FILE)
        with open(pid_file + ".new", "w") as f:
            f.write(str(host.pid))
        os.replace(pid_file + ".new", pid_file)

    def _fork(self, request: dict[str, Any]) -> Host:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the new host: nothing of the launcher's but its own socket
            try:
                from .runhost import serve

                ours.close()
                self.selector.close()
                for host in [*self.idle, *self.busy.values()]:
                    host.conn.close()
                serve(theirs, request)
            finally:
                os._exit(1)  # never back into the launcher's loop
        theirs.close()
        host = Host(pid, ours, request["run_id"])
        self.selector.register(ours, selectors.EVENT_READ, host)
        return host

    def _host_said(self, host: Host) -> None:
        try:
            said = host.conn.recv(64)
        except OSError:
            said = b""
        if host.run_id is not None:
            self.busy.pop(host.run_id, None)
            host.run_id = None
        if not said:  # it ended (its run raised, it retired, or it was killed)
            self._forget(host)
        elif len(self.idle) < IDLE_HOSTS:
            host.idle_since = time.monotonic()
            self.idle.append(host)
        else:
            self._forget(host)  # closing its socket ends it

    def _retire_idle(self) -> None:
        """End the hosts that waited long for a run (the oldest are first in the list)."""
        now = time.monotonic()
        while self.idle and now - self.idle[0].idle_since > IDLE_SECONDS:
            self._forget(self.idle[0])

    def _forget(self, host: Host) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(host.conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(host)
        host.conn.close()

    def _abort(self, run_id: str, folder: str) -> None:
        host = self.busy.get(run_id)
        if host is not None:
            pid: int | None = host.pid
        elif run_id in self.started:
            # It ended: its host may run another run now, which is not to stop. (The mark
            # below guards a host only until its run's own Ctrl-C handler is in place.)
            return
        else:
            pid = read_pid(folder)  # a run of an earlier launcher's: its host ends with it
        if pid is None:
            return
        # The mark first: a host acts on the signal only for a run whose folder has it.
        with contextlib.suppress(OSError):
            open(os.path.join(folder, ABORT_MARK), "w").close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGINT)

    def _stop(self) -> None:
        for host in [*self.idle, *self.busy.values()]:
            self._forget(host)  # idle hosts end now, busy ones after their run


def read_pid(folder: str | os.PathLike[str]) -> int | None:
    """The pid a run folder's ``run.pid`` names; None before a host took the run."""
    try:
        with open(os.path.join(folder, PID_FILE)) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def main() -> None:
    """Load jobgraph and the flows once, then serve the server's messages."""
    # Imported once here, not in every run: each host is a fork of this process.
    from . import (  # noqa: F401
        fingerprint,
        flows,
        handle,
        recorder,
        report,
        runhost,  # as "jobgraph.runhost": this module runs as __main__
        runner,
        workflow,
    )
    from .executors import shell  # noqa: F401
    from .store import sqlite  # noqa: F401

    modules = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
    flows.load(modules)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # hosts are reaped by the system
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when to stop
    yield_to_the_server()
    Launcher().serve()


def yield_to_the_server() -> None:
    """Runs yield the processor to the server that answers about them.

    So does starting them (a burst of submissions is a burst of forks here). This process
    and its hosts share one session of their own, niced: Linux shares the processor out
    between sessions first (autogroups), then by niceness within each, so the session's
    own niceness is set too where the kernel has autogroups.
    """
    os.setsid()  # also: the server's terminal (its Ctrl-C, its hang-up) no longer reaches us
    os.nice(RUN_NICENESS)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write(str(RUN_NICENESS))


def run_request(request: dict[str, Any]) -> int:
    """Build the request's scheduler in its folder and run it; the report's exit code."""
    os.chdir(request["folder"])
    scheduler = build(request)
    options = dict(request.get("options") or {})
    if options.get("executor") is not None:
        from .options import executor_from_text

        options["executor"] = executor_from_text(options["executor"])
    if request.get("resume"):
        options["resume"] = request["run_id"]
    report = scheduler.run(store=request["store"], run_id=request["run_id"], **options)
    return int(report.exit_code)


def build(request: dict[str, Any]) -> Any:
    """The scheduler a request names: a YAML workflow file, or a flow and its parameters."""
    if request.get("workflow"):
        from .workflow import load

        return load(request["workflow"])
    from .flows import build as build_flow

    return build_flow(request["flow"], request.get("params"))


if __name__ == "__main__":
    main()
