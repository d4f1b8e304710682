"""A run host: a process of the server's that runs its runs one after another.

Forking a process per run costs several times the run itself on a small run: the child
copies, page by page, every page of the launcher's memory it touches (on this kind of
machine, thousands of page faults, most of a small run's processor time). So the launcher
forks run hosts and gives each run to an idle one; a host keeps its pages from one run to
the next.

A host runs one run at a time, each as a run process of its own would: in the run's
folder, with its own ``run.log``, at the launcher's niceness, in a process group of its
own in the launcher's session (a server that dies leaves it running to the end of its
run). Between runs it puts back what a run may change in the process: the working
folder, the environment, ``sys.path`` and the output descriptors. Modules a run
imported stay loaded for the host's later runs, as the flow modules loaded when the
server started do: restart the server after changing that code.

Ctrl-C (SIGINT) is how the server aborts a run: the launcher marks the run's folder
(``abort``), then signals the host it gave the run to. The host acts on a signal only for
a run whose folder is marked (see ``_on_sigint``): an abort never reaches another run of
the same host, and one that came before the run could take it is kept until it can.

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
import time
import traceback
from typing import Any

from .handle import detach, redirect_output
from .launcher import ABORT_MARK, LOG_FILE, run_request
from .runner import defer_interrupt, forget_early_interrupt

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


_current: list[dict[str, Any]] = []  # the request being run, if any


def _prepare() -> None:
    """Once per host: a process group of its own, quiet, in "/", aborts taken as below.

    The host stays in the launcher's session: on Linux the scheduler shares the
    processor out by session first ("autogroups"), so all runs together weigh as much
    as the server, however many hosts run; a session per host would not yield to it.
    """
    detach(session=False)
    os.chdir("/")  # the launcher's folder may be removed while the server runs
    signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: Any) -> None:
    """An abort is for the run whose folder holds the launcher's abort mark.

    The run takes it as a first Ctrl-C once its own handler is in place (until then it
    is kept). A signal meant for a run that has ended, or that comes between runs, finds
    no mark in the current run's folder and is dropped; a run given to this host after
    its abort was sent finds the mark when it starts.
    """
    if _current and _abort_marked(_current[0]):
        defer_interrupt()


def _abort_marked(request: dict[str, Any]) -> bool:
    return os.path.exists(os.path.join(request["folder"], ABORT_MARK))


def run_one(request: dict[str, Any]) -> bool:
    """Run one request in its folder; whether this host may run another.

    Not when the run raised, nor when it left a thread running (a function run in a
    thread that timed out cannot be stopped): the host then ends, and what it left
    with it, as a run process of its own would.
    """
    saved = _Saved()
    try:
        redirect_output(os.path.join(request["folder"], LOG_FILE))
        _current.append(request)
        if _abort_marked(request):
            defer_interrupt()  # aborted before it reached this host
        run_request(request)
        reusable = _threads_ended()
    except BaseException:
        traceback.print_exc()  # into the run's log
        reusable = False
    finally:
        _current.clear()
        forget_early_interrupt()
        sys.stdout.flush()
        sys.stderr.flush()
        saved.restore()
        redirect_output(None)
    return reusable


def _threads_ended(seconds: float = 1.0) -> bool:
    """Whether the run left no thread behind, once its pools' threads had time to end.

    A run stops its thread pool without waiting for it: an idle pool thread ends a moment
    later (later still on a loaded machine). A thread still running a function after
    ``seconds`` was abandoned (a soft timeout) and stays.
    """
    deadline = time.monotonic() + seconds
    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not me:
            thread.join(max(0.0, deadline - time.monotonic()))
    return threading.active_count() == 1


class _Saved:
    """What a run may change in its process, to put back after it."""

    def __init__(self) -> None:
        self.environ = dict(os.environ)
        self.path = list(sys.path)

    def restore(self) -> None:
        os.chdir("/")
        if dict(os.environ) != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
        sys.path[:] = self.path
