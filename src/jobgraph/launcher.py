"""The server's launcher: a single-threaded process that forks one process per run.

A server answers requests in threads; forking from a threaded process can leave the
child with a lock held forever. So the server starts this process once, with jobgraph
and the flow modules imported, and sends it one JSON line per run to start: it forks at
once (a few milliseconds) and the child builds the graph and runs it, recording
everything in the store. Children run in sessions of their own: a server that dies (or is
killed) leaves them running to their end.

Requests: ``{"run_id", "store", "folder", "workflow" | "flow" + "params", "options",
"resume"}``, one per line. No reply: the server does not wait for the fork; the run's
process id lands in ``FOLDER/run.pid``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

PID_FILE = "run.pid"
LOG_FILE = "run.log"  # what a run's own process printed (not its jobs: the store has those)
RUN_NICENESS = 5  # runs yield the processor to the server that answers about them


def main() -> None:
    """Read requests from stdin, fork a run for each, reply on stdout."""
    # Imported once here, not in every run: each run is a fork of this process.
    from . import fingerprint, flows, handle, recorder, report, runner, workflow  # noqa: F401
    from .store import sqlite  # noqa: F401

    modules = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
    flows.load(modules)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the system
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when to stop
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run(request)
        # The server finds the run's process here (to tell a run that died, to abort it).
        pid_file = os.path.join(request["folder"], PID_FILE)
        with open(pid_file + ".new", "w") as f:
            f.write(str(pid))
        os.replace(pid_file + ".new", pid_file)


def _run(request: dict[str, Any]) -> None:
    from .handle import run_in_child

    def body() -> int:
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

    # Its own output goes to run.log in its folder: a run that cannot even begin (the
    # store unreachable, a bug) says why there. Runs yield the processor to the server.
    run_in_child(body, log=os.path.join(request["folder"], LOG_FILE), niceness=RUN_NICENESS)


def build(request: dict[str, Any]) -> Any:
    """The scheduler a request names: a YAML workflow file, or a flow and its parameters."""
    if request.get("workflow"):
        from .workflow import load

        return load(request["workflow"])
    from .flows import build as build_flow

    return build_flow(request["flow"], request.get("params"))


if __name__ == "__main__":
    main()
