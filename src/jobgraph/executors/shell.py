"""Shell commands in their own process group, with output readable as it arrives."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any

from ..errors import ShellError
from ..job import Shell, ShellResult
from ..output import OutputBuffer
from ..procfs import stat_fields
from .reaper import REAPER

_POLL = 0.02  # seconds between checks that a process group is gone
_DRAIN_SECONDS = 1.0  # how long output may keep coming once the command's group is gone
_LIVE_GROUPS: set[int] = set()  # process groups of commands that have not ended


def kill_all_groups() -> None:
    """SIGKILL every command still running (a second Ctrl-C: stop now, no grace)."""
    for pgid in list(_LIVE_GROUPS):
        signal_group(pgid, signal.SIGKILL)


async def run_shell(job: Shell, kill_grace: float) -> ShellResult:
    """Run ``job``'s command to the end; raise :class:`ShellError` on a non-zero status.

    Cancelling the caller stops the whole process group (SIGTERM, then SIGKILL after
    ``kill_grace`` seconds) before the cancellation propagates, so nothing outlives
    the job. Leftovers of a command that exited normally are stopped the same way.
    """
    out, err = OutputBuffer(), OutputBuffer()
    job._stdout, job._stderr = out, err
    transport, protocol = await _spawned(job, kill_grace)
    proc = asyncio.subprocess.Process(transport, protocol, asyncio.get_running_loop())
    REAPER.watch(proc.pid)  # stopped by the reaper if this process is killed meanwhile
    _LIVE_GROUPS.add(proc.pid)
    pumps = asyncio.gather(_pump(proc.stdout, out), _pump(proc.stderr, err))
    try:
        # Not proc.wait(): it also waits for the pipes, which an escaped child may hold.
        await protocol.exited
        # Background children may still hold the pipes open: stop them, then drain.
        await stop_group(proc.pid, kill_grace)
        await _drain(proc, pumps)
    except BaseException:
        await asyncio.shield(stop_group(proc.pid, kill_grace))
        await asyncio.shield(_drain(proc, pumps))
        raise
    finally:
        _LIVE_GROUPS.discard(proc.pid)
        REAPER.forget(proc.pid)
    assert proc.returncode is not None
    return conclude(job, proc.returncode)


def conclude(job: Shell, returncode: int) -> ShellResult:
    """The result of a command that exited; :class:`ShellError` for a non-zero status."""
    out, err = job._stdout, job._stderr
    assert out is not None and err is not None
    job._returncode = returncode
    result = ShellResult(returncode, out.read_all(), err.read_all())
    if returncode != 0:
        raise ShellError(returncode, job.command_line, err.tail(5))
    return result


def argv_of(job: Shell) -> list[str]:
    """The command as an argument list (a string runs through ``/bin/sh -c``)."""
    command = job.command
    return command if isinstance(command, list) else ["/bin/sh", "-c", command]


async def _drain(proc: asyncio.subprocess.Process, pumps: asyncio.Future[Any]) -> None:
    """Read what is left in the pipes, but not forever.

    A child that started a session of its own escaped the group kill and may hold the
    pipes open: after a short wait, stop reading and close them.
    """
    try:
        await asyncio.wait_for(asyncio.shield(pumps), _DRAIN_SECONDS)
    except asyncio.TimeoutError:
        pumps.cancel()
        for stream in (proc.stdout, proc.stderr):
            pipe = getattr(stream, "_transport", None)  # no public way to close a pipe
            if pipe is not None:
                pipe.close()
        with contextlib.suppress(asyncio.CancelledError):
            await pumps


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The standard stream protocol, plus a future set the moment the process exits."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=2**16, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _spawned(job: Shell, kill_grace: float) -> tuple[asyncio.SubprocessTransport, _Protocol]:
    """Start the command; a cancellation while it starts still stops its whole group.

    Cancelled mid-start, asyncio kills the process it started, but not the processes
    that one may have started already: they would outlive the job.
    """
    starting = asyncio.ensure_future(_spawn(job))
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            transport, _ = await starting
            await stop_group(transport.get_pid(), kill_grace)
            transport.close()
        raise


async def _spawn(job: Shell) -> tuple[asyncio.SubprocessTransport, _Protocol]:
    env = {**os.environ, **job.env} if job.env else None
    loop = asyncio.get_running_loop()
    return await loop.subprocess_exec(
        lambda: _Protocol(loop),
        *argv_of(job),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=job.cwd,
        env=env,
        start_new_session=True,  # own session and process group: we can stop all of it
    )


async def _pump(stream: asyncio.StreamReader | None, buffer: OutputBuffer) -> None:
    if stream is None:
        return
    while True:
        data = await stream.read(65536)
        if not data:
            buffer.feed(b"", final=True)
            return
        buffer.feed(data)


def group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` is alive (zombies do not count).

    ``killpg(pgid, 0)`` alone is not enough: where nobody reaps orphans (some container
    init processes do not), a finished background child stays a zombie in the group
    forever, and waiting for it to go would cost every such job the full grace period.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return True  # no /proc: trust killpg
    for pid in pids:
        fields = stat_fields(pid)
        if fields is not None and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to a process group, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def stop_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, wait up to ``grace`` seconds, then SIGKILL what is left."""
    if not group_alive(pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        await asyncio.sleep(_POLL)
    signal_group(pgid, signal.SIGKILL)
