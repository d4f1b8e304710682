"""A pool of reusable worker processes (spawn start method) driven from the event loop.

Each worker runs one call at a time and lives in its own session, so a call that times
out is stopped by killing the worker's whole process group; the pool starts a new worker
in its place. A worker that dies (a crash, ``os._exit``, kill -9) fails only the call it
was running. Results come back through a pipe watched by the loop: no thread per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import pickle
import signal
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from ..errors import WorkerDiedError
from .reaper import REAPER


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (shown as its cause)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnpicklableError(TypeError):
    """An argument or a result could not be sent between processes."""


def dumps_call(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    dumps: Callable[[Any], bytes] | None = None,
    where: str = "a worker process",
) -> bytes:
    """Pickle a call; on failure name the argument that cannot be pickled."""
    dumps = dumps or functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        return dumps((fn, args, dict(kwargs)))
    except Exception as exc:
        raise UnpicklableError(_culprit(fn, args, kwargs, exc, dumps, where)) from exc


def _culprit(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    exc: Exception,
    dumps: Callable[[Any], bytes],
    where: str,
) -> str:
    named = [("the function", fn)]
    named += [(f"argument {k} ({v!r:.60})", v) for k, v in enumerate(args)]
    named += [(f"argument {k!r} ({v!r:.60})", v) for k, v in kwargs.items()]
    for label, value in named:
        try:
            dumps(value)
        except Exception as inner:
            return f"{label} cannot be pickled for {where}: {type(inner).__name__}: {inner}"
    return f"the call cannot be pickled for {where}: {type(exc).__name__}: {exc}"


_ACK = b"\x01"  # prefix of a payload whose start the worker must announce
_STARTED = pickle.dumps(("started",))


def _worker_main(conn: Connection) -> None:
    """Entry point of a worker process: run calls until told to stop."""
    os.setsid()  # own process group: killing it stops whatever the call started
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    while True:
        try:
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not payload:
            return
        if payload[:1] == _ACK:
            # The parent wants to know when the call really starts (its timeout clock).
            conn.send_bytes(_STARTED)
            payload = payload[1:]
        conn.send_bytes(_call(payload))


def _call(payload: bytes) -> bytes:
    try:
        fn, args, kwargs = pickle.loads(payload)
        result = fn(*args, **kwargs)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except BaseException as exc:
        return _error_reply(exc, traceback.format_exc())
    try:
        return pickle.dumps(("ok", result), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        message = f"the result ({type(result).__name__}) cannot be pickled back from the worker"
        return _error_reply(UnpicklableError(f"{message}: {type(exc).__name__}: {exc}"), "")


def _error_reply(exc: BaseException, tb: str) -> bytes:
    try:
        return pickle.dumps(("err", exc, tb))
    except Exception:
        text = f"{type(exc).__name__}: {exc}"
        return pickle.dumps(("err", RuntimeError(text), tb))


class _Worker:
    __slots__ = ("conn", "future", "on_start", "process")

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.future: asyncio.Future[Any] | None = None
        self.on_start: Callable[[], None] | None = None


class WorkerPool:
    """Reusable worker processes; ``submit`` returns an asyncio future of the result."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size or os.cpu_count() or 1
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy: dict[asyncio.Future[Any], _Worker] = {}
        self._queue: deque[tuple[bytes, asyncio.Future[Any], Callable[[], None] | None]] = deque()
        self._closed = False

    @property
    def workers(self) -> int:
        """How many worker processes are alive."""
        return len(self._idle) + len(self._busy)

    def submit(
        self,
        fn: Any,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        on_start: Callable[[], None] | None = None,
    ) -> Any:
        """Queue a call; raises :class:`UnpicklableError` naming what cannot be sent.

        ``on_start`` is called when a worker takes the call (a timeout starts then).
        """
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        payload = dumps_call(fn, args, kwargs)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((payload, future, on_start))
        self._feed()
        return future

    def kill(self, future: asyncio.Future[Any]) -> None:
        """Stop the call behind ``future`` now (its worker is killed and replaced)."""
        worker = self._busy.pop(future, None)
        if worker is None:
            queued = next((e for e in self._queue if e[1] is future), None)
            if queued is not None:
                self._queue.remove(queued)
        else:
            self._discard(worker)
            self._feed()
        if not future.done():
            future.cancel()

    def close(self) -> None:
        """Stop every worker; none outlives this call by more than a moment."""
        self._closed = True
        for _, future, _ in self._queue:
            future.cancel()
        self._queue.clear()
        for worker in self._idle:
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(b"")
        for worker in [*self._idle, *self._busy.values()]:
            self._discard(worker, gently=worker in self._idle)
        self._idle.clear()
        self._busy.clear()

    # -- internals ------------------------------------------------------------------

    def _feed(self) -> None:
        while self._queue and (self._idle or self.workers < self.size):
            payload, future, on_start = self._queue.popleft()
            if future.done():
                continue
            worker = self._idle.pop() if self._idle else self._spawn()
            worker.future = future
            worker.on_start = on_start
            self._busy[future] = worker
            try:
                worker.conn.send_bytes(payload if on_start is None else _ACK + payload)
            except OSError as exc:
                self._busy.pop(future, None)
                self._discard(worker)
                future.set_exception(WorkerDiedError(f"worker process unavailable: {exc}"))
                continue

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main, args=(child,), daemon=True, name="jobgraph-worker"
        )
        process.start()
        assert process.pid is not None
        # A busy worker would not notice a killed runner until its call returns.
        REAPER.watch(process.pid)
        child.close()
        worker = _Worker(process, parent)
        asyncio.get_running_loop().add_reader(parent.fileno(), self._on_reply, worker)
        return worker

    def _on_reply(self, worker: _Worker) -> None:
        future = worker.future
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            self._on_death(worker)
            return
        try:
            reply = pickle.loads(data)
        except Exception as exc:  # e.g. an exception class that cannot be rebuilt here
            text = f"the worker's reply cannot be read back: {type(exc).__name__}: {exc}"
            reply = ("err", RuntimeError(text), "")
        if reply[0] == "started":
            if worker.on_start is not None:
                worker.on_start()
            return
        worker.future = None
        if future is not None:
            self._busy.pop(future, None)
            _settle(future, reply)
        self._idle.append(worker)
        self._feed()

    def _on_death(self, worker: _Worker) -> None:
        future = worker.future
        if future is not None:
            self._busy.pop(future, None)
        self._discard(worker)
        if future is not None and not future.done():
            code = worker.process.exitcode
            how = (
                f"killed by signal {-code}"
                if code is not None and code < 0
                else (f"exit status {code}")
            )
            future.set_exception(WorkerDiedError(f"the worker process died ({how})"))
        self._feed()

    def _discard(self, worker: _Worker, gently: bool = False) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        process = worker.process
        if gently:
            process.join(0.5)
        if process.is_alive() or not gently:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.join(1.0)
        if process.pid is not None:
            REAPER.forget(process.pid)
        worker.conn.close()
        if worker in self._idle:
            self._idle.remove(worker)


def _settle(future: asyncio.Future[Any], reply: tuple[Any, ...]) -> None:
    if future.done():
        return
    if reply[0] == "ok":
        future.set_result(reply[1])
        return
    exc, tb = reply[1], reply[2]
    if tb:
        exc.__cause__ = RemoteTraceback(tb)
    future.set_exception(exc)
