"""A run host: a process of the server's that runs its runs one after another.

Forking a process per run costs several times the run itself on a small run: the child
copies, page by page, every page of the launcher's memory it touches (on this kind of
machine, thousands of page faults, most of a small run's processor time). So the launcher
forks run hosts and gives each run to an idle one; a host keeps its pages from one run to
the next.

A host runs one run at a time, each as a run process of its own would: in the run's
folder, with its own ``run.log``, at the launcher's niceness, in a session of the host's own
(a server that dies leaves it running to the end of its run). Between runs it puts back
what a run may change in the process: the working folder, the environment, ``sys.path``
and the output descriptors. Modules a run imported stay loaded for the host's later runs,
as the flow modules loaded when the server started do: restart the server after changing
that code.

Ctrl-C (SIGINT) is how the server aborts a run. A host ignores it between runs, and the
launcher signals a host only while the host runs the run to abort (the launcher is single
threaded: it never gives the host another run before it has read that this one ended).

A run that raises out of ``Scheduler.run`` (its store unreachable, a bug) ends its host
with it, as it would end a run process: the host's process id is gone, so the run reads
``failed`` and can be resumed. A run that leaves a thread running (an abandoned function)
ends its host too, so that the thread does not live on into later runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import traceback
from typing import Any

from .handle import detach, redirect_output

RUNS_PER_HOST = 200  # then a fresh host: what runs leave behind does not pile up
DONE = b"done\n"


def serve(conn: socket.socket, first: dict[str, Any]) -> None:
    """The host's life: run ``first``, then each request read from ``conn``; never returns.

    It says ``done`` after each run but its last: a host that is about to end never
    looks idle to the launcher, so no run is ever given to a host that will not run it.
    """
    try:
        _prepare()
        reader = conn.makefile("rb")
        request = first
        for _ in range(RUNS_PER_HOST - 1):
            if not run_one(request):
                return
            conn.sendall(DONE)
            line = reader.readline()
            if not line:
                return  # the launcher is gone, or does not keep this host
            request = json.loads(line)
        run_one(request)
    finally:
        # Also after an exception (an abort that came once its run had ended): the host
        # just ends. Nobody waits for its status; exit handlers are the launcher's.
        os._exit(0)


def _prepare() -> None:
    """Once per host: a process group of its own, quiet, SIGINT ignored between runs.

    The host stays in the launcher's session: on Linux the scheduler shares the
    processor out by session first ("autogroups"), so all runs together weigh as much
    as the server, however many hosts run; a session per host would not yield to it.
    """
    detach(session=False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_one(request: dict[str, Any]) -> bool:
    """Run one request in its folder; whether this host may run another.

    Not when the run raised, nor when it left a thread running (a function run in a
    thread that timed out cannot be stopped): the host then ends, and what it left
    with it, as a run process of its own would.
    """
    from .launcher import LOG_FILE, run_request

    saved = _Saved()
    redirect_output(os.path.join(request["folder"], LOG_FILE))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # an abort: a first Ctrl-C
    try:
        run_request(request)
        reusable = threading.active_count() == 1
    except BaseException:
        traceback.print_exc()  # into the run's log
        reusable = False
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.stdout.flush()
        sys.stderr.flush()
        saved.restore()
        redirect_output(None)
    return reusable


class _Saved:
    """What a run may change in its process, to put back after it."""

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        self.path = list(sys.path)

    def restore(self) -> None:
        os.chdir(self.cwd)
        if dict(os.environ) != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
        sys.path[:] = self.path
