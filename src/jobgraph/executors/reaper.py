"""The reaper: a helper process that stops a killed runner's commands and workers.

A runner stops its commands' process groups and its worker processes itself, but a
runner killed with SIGKILL runs no code: its commands (each in a session of its own, so
not touched by a signal to the runner's group) would live on. So, while a run goes on,
one small helper process holds the read end of a pipe whose write end only the runner
holds. The runner writes to it each process group it starts (``+PGID STARTTIME``) and
each that ended (``-PGID``). When the runner dies, the kernel closes the write end: the
helper reads EOF, sends SIGKILL to every group still registered, and exits. When the
last run of the process ends normally, the runner writes ``q`` and the helper exits
without touching anything.

Why not ``prctl(PR_SET_PDEATHSIG)``: it only reaches direct children (not a command's
background children), it fires when the parent *thread* ends rather than the process,
and setting it needs code in the child between fork and exec. One helper process covers
whole groups, costs one process per run (started at the first command or worker), and
no thread.

Why the helper is a POSIX shell script (``HELPER``), not Python: it starts in about a
millisecond, with no interpreter to load (tens of milliseconds of processor, most of the
cost of a small run: a server starts hundreds a minute), and it is spawned without
copying this process (a fork would make the runner copy its own memory again, page by
page, as it goes on writing to it).

The helper never kills what it was not told about: with each group it keeps the start
time of the group's leader (from ``/proc``). At the kill, a live process with that pid
but another start time is a newcomer that reused the pid, and is left alone; a leader
that is gone while members of its group live is still ours (Linux never hands out a pid
that is in use as a process group id).

Linux and POSIX only, as the rest of the executors. The one window left open: a command
started but not yet registered (a few microseconds, between fork and the first write)
when the runner is killed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading

from ..procfs import stat_fields

_QUIT = b"q\n"
_UNKNOWN = "-"  # no start time: the leader was already gone when it was registered


def start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), None if it is gone."""
    fields = stat_fields(pid)
    return fields[19].decode() if fields is not None and len(fields) > 19 else None


class Reaper:
    """The runner's side: starts the helper lazily and tells it what to watch.

    ``enter``/``leave`` bracket each run; the helper starts at the first :meth:`watch`
    and is told to exit once no run goes on and no group is watched.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs = 0
        self._groups: dict[int, str] = {}  # pgid -> its leader's start time
        self._fd: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._exiting: list[subprocess.Popen[bytes]] = []  # told to quit, not yet reaped

    @property
    def pid(self) -> int | None:
        """The helper process's pid while it runs (tests look at it)."""
        return self._proc.pid if self._proc is not None else None

    def enter(self) -> None:
        """A run begins."""
        with self._lock:
            self._runs += 1

    def leave(self) -> None:
        """A run ended: the last one stops the helper (when nothing is watched)."""
        with self._lock:
            self._runs = max(0, self._runs - 1)
            self._close_if_idle()

    def watch(self, pgid: int) -> None:
        """Kill process group ``pgid`` if this process dies before :meth:`forget`."""
        started = start_time(pgid) or _UNKNOWN
        with self._lock:
            self._groups[pgid] = started
            self._send(f"+{pgid} {started}\n".encode())

    def forget(self, pgid: int) -> None:
        """Group ``pgid`` is gone (or stopped by the runner itself): stop watching it."""
        with self._lock:
            if self._groups.pop(pgid, None) is None:
                return
            self._send(f"-{pgid}\n".encode())
            self._close_if_idle()

    # -- internals ------------------------------------------------------------------

    def _send(self, message: bytes) -> None:
        if self._fd is None:
            self._start()
        assert self._fd is not None
        try:
            os.write(self._fd, message)  # under PIPE_BUF: one atomic write
        except OSError:
            # The helper died (someone killed it): start another, tell it everything.
            self._stop_helper(quit_first=False)
            self._start()

    def _start(self) -> None:
        self._reap_exited()
        read_end, write_end = os.pipe()  # not inheritable: commands never hold the write end
        try:
            self._proc = subprocess.Popen(
                ["/bin/sh", "-c", HELPER, HELPER_NAME, str(os.getpid())],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a signal to the runner's group does not reach it
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._fd = write_end
        if self._groups:
            os.write(self._fd, b"".join(f"+{g} {s}\n".encode() for g, s in self._groups.items()))

    def _close_if_idle(self) -> None:
        if self._runs == 0 and not self._groups and self._fd is not None:
            self._stop_helper(quit_first=True)

    def _stop_helper(self, quit_first: bool) -> None:
        fd, proc = self._fd, self._proc
        self._fd = self._proc = None
        if fd is not None:
            if quit_first:
                with contextlib.suppress(OSError):
                    os.write(fd, _QUIT)
            os.close(fd)
        if proc is not None:
            # It exits at once on "q" or EOF, but on a busy machine "at once" may come
            # after many others had the processor: the run does not wait for it. It is
            # reaped (not left a zombie for long) when the next helper starts or stops.
            self._exiting.append(proc)
        self._reap_exited()

    def _reap_exited(self) -> None:
        self._exiting = [proc for proc in self._exiting if proc.poll() is None]

    def _forked(self) -> None:
        """In a child forked without exec: drop our copy, or the helper never sees EOF."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._proc, self._groups, self._runs = None, None, {}, 0
        self._exiting = []  # the parent's helpers, not ours to reap


REAPER = Reaper()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=REAPER._forked)


# -- the helper process -------------------------------------------------------------

# Lines on stdin: "+PGID START" (watch), "-PGID" (forget), "q" (quit). Each watched group
# is a shell variable g_PGID (set and unset in constant time, however many there are;
# anything but digits is refused, so eval only ever sees digits). At EOF, each group
# still watched is killed, unless its leader's pid now belongs to a process started at
# another time (field 22 of /proc/PID/stat, the 20th after the command name's ") "; the
# name may hold spaces, parentheses, even newlines). A group whose leader is gone is
# killed as a group; a watched worker that has no group of its own yet is killed alone.
# Groups 0 and 1 are never touched ("kill -- -1" would mean every process).
HELPER = """
set -f
trap '' INT HUP
while IFS= read -r line; do
  case $line in
    q) exit 0 ;;
    +*)
      set -- ${line#+}
      case ${1-} in ''|*[!0-9]*) continue ;; esac
      case ${2-} in ''|*[!0-9-]*) continue ;; esac
      eval "g_$1=$2" ;;
    -*)
      case ${line#-} in ''|*[!0-9]*) continue ;; esac
      unset "g_${line#-}" ;;
  esac
done
set | while IFS= read -r var; do
  case $var in g_[0-9]*=*) ;; *) continue ;; esac
  pgid=${var%%=*} started=${var#*=} now=
  pgid=${pgid#g_} started=${started#\\'} started=${started%\\'}
  case $pgid in 0|1) continue ;; esac
  if [ -r "/proc/$pgid/stat" ]; then
    stat=
    while IFS= read -r part || [ -n "$part" ]; do stat="$stat $part"; done < "/proc/$pgid/stat"
    set -- ${stat##*") "}
    if [ $# -ge 20 ]; then shift 19; now=$1; fi
  fi
  if [ -n "$now" ] && [ "$now" != "$started" ]; then continue; fi
  kill -s KILL -- "-$pgid" 2>/dev/null || { [ -n "$now" ] && kill -s KILL "$pgid" 2>/dev/null; }
done
exit 0
"""
HELPER_NAME = "jobgraph-reaper"  # its $0: ps shows "sh -c ... jobgraph-reaper RUNNER_PID"
