"""What a Dask worker runs for a job, and how the scheduler stops it there.

These functions are sent to the workers by reference, so ``jobgraph`` must be installed
where the workers run. Each running shell command or coroutine registers a stop function
under its task key; :func:`stop_task`, broadcast to the workers, finds and calls it. A
plain function cannot be stopped from outside its thread, so it is not registered.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .shell import group_alive, signal_group

_POLL = 0.02  # seconds between checks that a stopped process group is gone
_READ_AFTER_EXIT = 1.0  # how long an escaped child may keep a command's pipes open

_running: dict[str, Callable[[], object]] = {}  # task key -> what stops it (this worker only)
_stopped: dict[str, None] = {}  # keys stopped before they started here (oldest first)
_REMEMBER_STOPPED = 100_000
_lock = threading.Lock()


class StoppedError(Exception):
    """The job was stopped on the scheduler's request (a timeout or an abort)."""


def run_task(payload: bytes) -> Any:
    """Run one pickled job body: ``(key, coroutine, topic, (fn, args, kwargs))``.

    With ``coroutine``, ``fn`` is an ``async def`` function, run in a loop of its own that
    :func:`stop_task` can cancel. Otherwise ``fn`` is a plain function (commands are
    :func:`run_command` calls); a coroutine it returns is run to its end, as locally.
    With a ``topic``, the start is announced there first (the job's timeout starts then).
    """
    import cloudpickle  # a dependency of Dask: present wherever a worker runs

    key, coroutine, topic, (fn, args, kwargs) = cloudpickle.loads(payload)
    if topic is not None:
        _announce(topic, key)
    if coroutine:
        return _run_coroutine(key, fn, args, kwargs)
    result = fn(*args, **kwargs)
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return result


def _announce(topic: str, key: str) -> None:
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return  # not on a worker (a test calling it directly): nobody listens
    worker.log_event(topic, key)


def _run_coroutine(
    key: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Any:
    async def main() -> Any:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        assert task is not None
        _register(key, lambda: loop.call_soon_threadsafe(task.cancel))
        try:
            return await fn(*args, **kwargs)
        finally:
            _unregister(key)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        # Not a BaseException out of a worker thread: the worker must go on.
        raise StoppedError(f"task {key} was stopped") from None


def run_command(
    key: str,
    argv: list[str],
    cwd: str | None,
    env: Mapping[str, str] | None,
    grace: float,
) -> tuple[int, bytes, bytes]:
    """Run a command in its own session; return its status and output.

    Whatever the command leaves running in its process group is stopped when it exits,
    and :func:`stop_task` stops the whole group (SIGTERM, then SIGKILL after ``grace``).
    """
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        start_new_session=True,
    )
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    readers = [_reader(proc.stdout, chunks["out"]), _reader(proc.stderr, chunks["err"])]
    try:
        _register(key, lambda: _terminate(proc.pid, grace))
        returncode = proc.wait()
    finally:
        _unregister(key)
        stop_group(proc.pid, grace)
    for reader in readers:
        reader.join(_READ_AFTER_EXIT)  # an escaped child may hold a pipe: do not wait for it
    return returncode, b"".join(chunks["out"]), b"".join(chunks["err"])


def stop_task(key: str) -> bool:
    """Stop the task ``key`` if it runs on this worker (the scheduler asks every worker).

    True when it was running here. A task stopped before it started is remembered, so
    that it cannot start afterwards on this worker.
    """
    with _lock:
        stop = _running.pop(key, None)
        if stop is None:
            _stopped[key] = None
            if len(_stopped) > _REMEMBER_STOPPED:
                del _stopped[next(iter(_stopped))]  # the oldest: long past its start
            return False
    stop()
    return True


def stop_group(pgid: int, grace: float) -> None:
    """SIGTERM a process group, wait up to ``grace`` seconds, then SIGKILL what is left."""
    if not group_alive(pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(_POLL)
    signal_group(pgid, signal.SIGKILL)


def _reader(stream: Any, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        for block in iter(lambda: stream.read1(65536), b""):
            into.append(block)

    thread = threading.Thread(target=read, daemon=True, name="jobgraph-output")
    thread.start()
    return thread


def _terminate(pgid: int, grace: float) -> None:
    """SIGTERM now, SIGKILL after ``grace`` (the command may ignore SIGTERM)."""
    signal_group(pgid, signal.SIGTERM)

    def kill() -> None:
        if group_alive(pgid):  # not a group that ended (its id may be reused)
            signal_group(pgid, signal.SIGKILL)

    killer = threading.Timer(grace, kill)
    killer.daemon = True
    killer.start()


def _register(key: str, stop: Callable[[], object]) -> None:
    """Make the task stoppable; if it was stopped before it got here, stop it now."""
    with _lock:
        early = key in _stopped
        if not early:
            _running[key] = stop
    if early:
        stop()
        raise StoppedError(f"task {key} was stopped before it started")


def _unregister(key: str) -> None:
    with _lock:
        _running.pop(key, None)
