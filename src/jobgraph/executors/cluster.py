"""Jobs on a Dask distributed cluster: :class:`DaskExecutor` and one run's session on it.

The scheduler stays the orchestrator: it decides what starts, keeps states, retries,
timeouts, fingerprints and the store. Dask only runs bodies. Each attempt is one Dask
task with a unique key; its result comes back to the scheduler (the store records it,
and dependents receive it as an argument).

All talk with the cluster happens on the Dask client's own event loop (a thread that
``distributed`` runs for a synchronous client); the run's loop hands calls over and gets
results back through thread-safe futures, so a slow cluster never blocks the run's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..errors import WorkerDiedError
from ..job import CORO_FUNCTION, FUNCTION, SHELL, Job
from ..output import OutputBuffer
from . import cluster_tasks as tasks

INSTALL_HINT = "the Dask executor needs Dask's distributed scheduler: pip install 'jobgraph[dask]'"
ABANDONED_NOTE = (
    "the function ran on a Dask worker, which cannot stop a running function: it was "
    "abandoned and may still be running there"
)
IGNORED_NOTE = (
    "the job ignored the request to stop: it was abandoned and may still be running on its "
    "Dask worker"
)
_CONNECT_TIMEOUT = "20s"  # how long to look for a cluster's scheduler before giving up
_STOP_WAIT = 2.0  # seconds past the grace period to wait for a stopped task to report back
REMOTE_KINDS = (FUNCTION, CORO_FUNCTION, SHELL)  # what can run on a worker


class DaskExecutor:
    """Run jobs on a Dask distributed cluster.

    ``address=None`` and ``client=None``: a ``LocalCluster`` of worker processes sized to
    the machine is started for each run and closed at its end (``cluster_options`` go to
    ``LocalCluster``, e.g. ``n_workers=4``). ``address`` (``tcp://host:port``, or
    ``dask://host:port``) connects to a running cluster for each run; ``client`` uses a
    ``distributed.Client`` you manage (never closed by jobgraph).
    """

    def __init__(
        self, address: str | None = None, client: Any = None, **cluster_options: Any
    ) -> None:
        if importlib.util.find_spec("distributed") is None:
            raise ImportError(INSTALL_HINT)
        if address is not None and client is not None:
            raise ValueError("DaskExecutor: give an address or a client, not both")
        if cluster_options and (address is not None or client is not None):
            raise ValueError(
                "DaskExecutor: cluster options apply to the local cluster it starts, "
                "not to an existing one (given an address or a client)"
            )
        if client is not None and getattr(client, "asynchronous", False):
            raise ValueError(
                "DaskExecutor: the client must be synchronous (Client(...) without "
                "asynchronous=True); jobgraph runs it from its own thread"
            )
        self.address = _address(address) if address is not None else None
        self.client = client
        self.cluster_options = cluster_options

    def __repr__(self) -> str:
        where = self.address or ("a client" if self.client is not None else "a local cluster")
        return f"DaskExecutor({where})"


def _address(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"DaskExecutor: address must be a non-empty string, not {text!r}")
    return "tcp://" + text[len("dask://") :] if text.startswith("dask://") else text


class DaskSession:
    """One run's use of a :class:`DaskExecutor`: opened before the run, closed after it."""

    def __init__(self, executor: DaskExecutor, resources: Mapping[str, float]) -> None:
        self.executor = executor
        self.resources = dict(resources)
        self.client: Any = None
        self._cluster: Any = None
        self._capacity: dict[str, float] = {}  # resource -> most that one worker declares
        self._topic = f"jobgraph-started-{os.urandom(16).hex()}"  # where workers say "started"
        self._starts: dict[str, Callable[[], object]] = {}  # key -> what to call then
        self._closed = False
        self._futures: dict[str, Any] = {}  # key -> Dask future (touched on the client loop)
        self._outbox: list[_Call] = []  # calls not yet submitted (filled from the run's loop)
        self._lock = threading.Lock()
        self._deliveries: set[asyncio.Future[None]] = set()  # keeps them from the GC

    # -- opening and closing (blocking: called from a thread) --------------------------

    def open(self) -> None:
        """Connect to the cluster, starting a local one when no address or client is given."""
        import dask
        import distributed

        executor = self.executor
        if executor.client is not None:
            self.client = executor.client
        elif executor.address is not None:
            try:
                self.client = distributed.Client(  # type: ignore[no-untyped-call]
                    executor.address, timeout=_CONNECT_TIMEOUT, set_as_default=False
                )
            except OSError as exc:
                raise OSError(
                    f"cannot reach the Dask scheduler at {executor.address}: {exc}"
                ) from exc
        else:
            # A worker lost mid-job fails that attempt (jobgraph's retries apply), instead
            # of Dask running it again behind the scheduler's back.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                options = {
                    "processes": True,
                    "dashboard_address": ":0",  # any free port: runs side by side never clash
                    "silence_logs": logging.CRITICAL,  # the report tells what failed
                    "resources": self.resources or None,
                    **executor.cluster_options,
                }
                self._cluster = distributed.LocalCluster(**options)  # type: ignore[no-untyped-call]
            self.client = distributed.Client(  # type: ignore[no-untyped-call]
                self._cluster, set_as_default=False
            )
        self._read_capacity()
        self.client.subscribe_topic(self._topic, self._started)
        with self._lock:
            closed = self._closed
        if closed:  # the run gave up while this was opening: nobody else will close it
            self._close_now()

    def close(self) -> None:
        """Disconnect; stop the local cluster if this session started it.

        Safe while :meth:`open` is still running in another thread: it closes what it
        opens once it is done.
        """
        with self._lock:
            self._closed = True
        self._close_now()

    def _close_now(self) -> None:
        client, cluster = self.client, self._cluster
        self.client = self._cluster = None
        try:
            if client is not None and client is self.executor.client:
                client.unsubscribe_topic(self._topic)  # yours: it goes on without us
            elif client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    def _read_capacity(self) -> None:
        """The most of each resource that one worker declares (workers may join later)."""
        workers = self.client.scheduler_info().get("workers", {})
        capacity: dict[str, float] = {}
        for worker in workers.values():
            for name, amount in (worker.get("resources") or {}).items():
                capacity[name] = max(capacity.get(name, 0), amount)
        self._capacity = capacity

    # -- running a job (on the run's loop) --------------------------------------------

    async def run(
        self,
        job: Job,
        args: Any,
        kwargs: Any,
        grace: float,
        on_start: Callable[[], None] | None = None,
    ) -> Any:
        """Run one attempt of ``job`` on the cluster; cancelling it stops the task there.

        ``on_start`` is called (on this loop) when a worker starts the task.
        """
        key = f"{job.name}-{os.urandom(8).hex()}"  # unique per attempt
        kind = job._kind
        topic = None
        if on_start is not None:  # the timeout clock starts when a worker takes the task
            topic = self._topic
            loop = asyncio.get_running_loop()
            self._starts[key] = lambda: loop.call_soon_threadsafe(on_start)
        if kind == SHELL:
            job._stdout, job._stderr = OutputBuffer(), OutputBuffer()
            call: tuple[Any, tuple[Any, ...], dict[str, Any]] = (
                tasks.run_command,
                (key, *_command(job), grace),
                {},
            )
        else:
            call = (job._fn, args, kwargs)
        payload = _dumps(*call, (key, kind == CORO_FUNCTION, topic))
        resources = self._resources_for(job)
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._send(_Call(key, payload, resources, done))
        remote = asyncio.wrap_future(done)
        try:
            value = await asyncio.shield(remote)
        except asyncio.CancelledError:
            await self._stop(key, kind, remote, grace)
            if kind == SHELL and not remote.cancelled() and remote.exception() is None:
                _feed_output(job, remote.result())  # what it printed before it was stopped
            raise
        if kind == SHELL:
            _feed_output(job, value)
            return _conclude(job, value[0])
        return value

    def _send(self, call: _Call) -> None:
        """Queue a call for the client's loop, which submits what is queued in one go."""
        with self._lock:
            self._outbox.append(call)
            first = len(self._outbox) == 1
        if first:
            try:
                self.client.loop.asyncio_loop.call_soon_threadsafe(self._submit_queued)
            except RuntimeError as exc:  # its loop is closed: a client closed under the run
                with self._lock:
                    self._outbox.remove(call)
                raise RuntimeError(f"the Dask client is closed: {exc}") from None

    def _resources_for(self, job: Job) -> dict[str, float] | None:
        """The Dask worker resources of a job; an error if no worker could ever run it."""
        if not job.resources:
            return None
        if self._cluster is not None:
            # Our own cluster's workers declare the run's pools; the pools (here) hold the
            # limits of nested schedulers' own pools.
            return {k: v for k, v in job.resources.items() if k in self._capacity} or None
        short = self._short_of(job.resources)
        if short:
            self._read_capacity()  # a worker that has them may have joined since
            short = self._short_of(job.resources)
        if short:
            name, amount = short[0]
            has = self._capacity.get(name, 0)
            raise ValueError(
                f"job {job.name!r} needs {name}={amount:g}, and no worker of the Dask "
                f"cluster declares that much (the most is {has:g}; start workers with "
                f"--resources {name}={amount:g})"
            )
        return dict(job.resources)

    def _short_of(self, needs: Mapping[str, float]) -> list[tuple[str, float]]:
        return [(k, v) for k, v in sorted(needs.items()) if v > self._capacity.get(k, 0)]

    async def _stop(self, key: str, kind: int, remote: asyncio.Future[Any], grace: float) -> None:
        """Stop the task on the cluster; wait (bounded) until a command or coroutine ended.

        Raises :class:`_Abandoned` when the body may go on running on its worker.
        """
        with contextlib.suppress(Exception):  # a lost cluster: the job ends here all the same
            stopping = asyncio.run_coroutine_threadsafe(
                self._stop_remote(key, kind), self.client.loop.asyncio_loop
            )
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(stopping)), _STOP_WAIT)
        if kind == FUNCTION:
            remote.cancel()
            raise _Abandoned(ABANDONED_NOTE)
        await asyncio.wait({remote}, timeout=grace + _STOP_WAIT)
        if not remote.done():
            remote.cancel()
            raise _Abandoned(IGNORED_NOTE)

    # -- on the client's loop -------------------------------------------------------

    def _started(self, event: tuple[float, str]) -> None:
        """A worker took a task (on the client's loop): start its job's timeout clock."""
        start = self._starts.pop(event[1], None)
        if start is not None:
            with contextlib.suppress(RuntimeError):  # the run's loop is gone: nothing to time
                start()

    def _submit_queued(self) -> None:
        """Submit the queued calls: one graph for those without resources (one message)."""
        with self._lock:
            calls, self._outbox = self._outbox, []
        try:
            futures = self._submit(calls)
        except Exception as exc:  # e.g. the cluster went away: these calls fail, not hang
            for c in calls:
                _settle(c.done, exc=exc)
            return
        for c in calls:
            self._futures[c.key] = futures[c.key]
            delivery = asyncio.ensure_future(self._deliver(c, futures[c.key]))
            self._deliveries.add(delivery)
            delivery.add_done_callback(self._deliveries.discard)

    def _submit(self, calls: list[_Call]) -> dict[str, Any]:
        client = self.client
        plain = {c.key: (tasks.run_task, c.payload) for c in calls if c.resources is None}
        futures = {}
        if plain:
            submitted = client.get(plain, list(plain), sync=False)
            futures = dict(zip(plain, submitted, strict=True))
        for c in calls:
            if c.resources is not None:
                futures[c.key] = client.submit(
                    tasks.run_task, c.payload, key=c.key, pure=False, resources=c.resources
                )
        return futures

    async def _deliver(self, call: _Call, future: Any) -> None:
        """Wait for a task's result and hand it (or its error) to the run's loop."""
        from distributed.scheduler import KilledWorker

        try:
            result = await self.client.gather(future, asynchronous=True)
        except KilledWorker as exc:
            worker = getattr(getattr(exc, "last_worker", None), "address", "")
            where = f" ({worker})" if worker else ""
            _settle(call.done, exc=WorkerDiedError(f"the Dask worker running it died{where}"))
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            text = (
                f"its Dask task {call.key} was cancelled outside jobgraph, or the "
                f"connection to the Dask scheduler was lost"
            )
            _settle(call.done, exc=RuntimeError(text))
        except Exception as exc:
            _settle(call.done, exc=exc)
        else:
            _settle(call.done, result=result)
        finally:
            self._futures.pop(call.key, None)
            self._starts.pop(call.key, None)

    async def _stop_remote(self, key: str, kind: int) -> None:
        client = self.client
        future = self._futures.get(key)
        if kind != FUNCTION:
            found = await client.run(tasks.stop_task, key, asynchronous=True, on_error="ignore")
            if any(value is True for value in found.values()):
                return  # it stops, and its future reports back when it did
        if future is not None:
            await client.cancel(future, force=True, asynchronous=True)


class _Call(NamedTuple):
    """One attempt on its way to the cluster."""

    key: str
    payload: bytes
    resources: dict[str, float] | None
    done: concurrent.futures.Future[Any]


def _settle(
    done: concurrent.futures.Future[Any], result: Any = None, exc: BaseException | None = None
) -> None:
    """Complete a call's future unless the run stopped listening (it cancelled it)."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if exc is not None:
            done.set_exception(exc)
        else:
            done.set_result(result)


class _Abandoned(asyncio.CancelledError):
    """The job was stopped here but its body goes on elsewhere (the report says so)."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


def _dumps(
    fn: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], head: tuple[Any, ...]
) -> bytes:
    """Pickle a call for a worker (see ``run_task``), naming what cannot be pickled."""
    import cloudpickle

    from .process import dumps_call

    def dumps(call: Any) -> bytes:
        return bytes(cloudpickle.dumps((*head, call)))

    return dumps_call(fn, args, kwargs, dumps, "a Dask worker")


def _command(job: Job) -> tuple[list[str], str | None, dict[str, str] | None]:
    from .shell import argv_of

    return argv_of(job), job.cwd, job.env  # type: ignore[arg-type,attr-defined]


def _feed_output(job: Job, value: tuple[int, bytes, bytes]) -> None:
    _, out, err = value
    assert job._stdout is not None and job._stderr is not None
    job._stdout.feed(out, final=True)
    job._stderr.feed(err, final=True)


def _conclude(job: Job, returncode: int) -> Any:
    from .shell import conclude

    return conclude(job, returncode)  # type: ignore[arg-type]
