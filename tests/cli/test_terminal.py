"""On a terminal, the run shows a live view (a bar, the running jobs) then the summary."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path


def test_live_view_on_a_terminal(tmp_path: Path):
    (tmp_path / "slow.yaml").write_text(
        "jobs:\n  one:\n    shell: sleep 0.6\n  two:\n    shell: sleep 0.6\n"
        "  three:\n    shell: exit 1\n    requires: [one]\n"
    )
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobgraph", "run", "slow.yaml"],
        cwd=tmp_path,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(leader)
    text = seen.decode(errors="replace")
    assert proc.returncode == 1
    assert "jobs" in text and "ETA" in text  # the status line of the live view
    assert "running" in text  # the running jobs
    assert "FAILED three" in text  # failures as they happen
    assert "jobgraph: job 'three' failed" in text  # then the summary
