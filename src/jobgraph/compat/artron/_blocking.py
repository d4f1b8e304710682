"""Running a manager's scheduler to its end from a plain call, even inside async code.

artron's ``start()`` blocked its caller; so does this one. Called from a running event
loop (a notebook, say), the run gets a loop of its own in a thread, and Ctrl-C still
stops it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import jobgraph as jg

from ...scheduler import close_loop
from . import _engine


def run_blocking(scheduler: jg.Scheduler, listener: _engine.Listener, workers: int) -> jg.Report:
    """Run ``scheduler`` to its end, even when called from a running event loop."""
    options = {"on_event": listener, "processes": workers}  # as many processes as workers
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return scheduler.run(**options)
    # Called from async code (a notebook, say): artron's start() blocked there, and so does
    # this one, with jobgraph's loop in a thread of its own.
    return _run_in_thread(scheduler, options)


def _run_in_thread(scheduler: jg.Scheduler, options: dict[str, Any]) -> jg.Report:
    """Run ``scheduler`` on a loop of a thread of its own; Ctrl-C here stops the run.

    On Ctrl-C (or any error while waiting), the run's task is cancelled: jobgraph then
    stops the workers and cancels what did not start; once the thread is over, the error
    is raised again.
    """
    loop = asyncio.new_event_loop()
    run = loop.create_task(scheduler.co_run(**options))  # started by the thread
    report: concurrent.futures.Future[jg.Report] = concurrent.futures.Future()
    grace = scheduler.kill_grace
    thread = threading.Thread(
        target=_serve, args=(loop, run, report, grace), name="artron-start", daemon=True
    )
    thread.start()
    try:
        with _ctrl_c_raises():
            while True:  # woken up now and then: a signal taken by another thread is seen
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    return report.result(timeout=0.5)
    except BaseException:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            loop.call_soon_threadsafe(run.cancel)
        thread.join()
        raise


def _serve(
    loop: asyncio.AbstractEventLoop, run: asyncio.Task[jg.Report], report: Any, grace: float
) -> None:
    """The thread's body: run ``run`` on ``loop``, hand its outcome to ``report``."""
    asyncio.set_event_loop(loop)
    try:
        report.set_result(loop.run_until_complete(run))
    except BaseException as exc:
        report.set_exception(exc)
    finally:
        close_loop(loop, grace)  # as jobgraph's run() does: leftovers get ``grace`` seconds


@contextlib.contextmanager
def _ctrl_c_raises() -> Iterator[None]:
    """Make Ctrl-C raise ``KeyboardInterrupt`` here, whatever the caller's loop set up.

    ``asyncio.run`` takes Ctrl-C to cancel its main task, which cannot happen while
    ``start()`` blocks it: the first Ctrl-C would wait for the end of the run.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are taken by the main thread only
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
