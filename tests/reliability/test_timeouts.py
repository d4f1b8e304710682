"""The timeout battery: hundreds of commands stopped at once leave no process behind.

Each command starts background children and a grandchild in its process group; one more
ignores SIGTERM. Every job must end TIMED_OUT and, a few seconds later, no process any of
them started may be alive.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import jobgraph as jg
from procs import wait_until_found, wait_until_gone

COMMANDS = 200


def test_two_hundred_timeouts_leave_no_descendant() -> None:
    # A duration no other process uses marks every sleep the battery starts in /proc.
    marker = f"sleep 300.{int(uuid.uuid4().hex[:6], 16):08d}"
    probe = subprocess.Popen(marker.split())  # the marker does find such a process
    assert wait_until_found(marker) == [probe.pid]
    probe.kill()
    probe.wait()
    family = f"{marker} & (sh -c '{marker}' &) ; {marker} & {marker}"
    jobs = [jg.Shell(family, name=f"family{i}", timeout=0.3) for i in range(COMMANDS)]
    stubborn = jg.Shell(["/bin/sh", "-c", f"trap '' TERM; {marker} & wait"], timeout=0.3)
    scheduler = jg.Scheduler(*jobs, stubborn, window=50)
    scheduler.kill_grace = 0.5  # SIGKILL half a second after SIGTERM
    started = time.monotonic()
    report = scheduler.run()
    assert time.monotonic() - started < 120
    assert report.counts[jg.State.TIMED_OUT] == COMMANDS + 1
    assert wait_until_gone(marker, 5.0) == []
