"""Start ``jobgraph serve`` in a subprocess for a test, and stop it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

TOKEN = "test-token-123"


class ServerProcess:
    """A running ``jobgraph serve`` on a free loopback port, working in ``folder``."""

    def __init__(self, folder: Path, *extra: str, ctrl_c: bool = False) -> None:
        """``ctrl_c``: give the server Ctrl-C's usual meaning, even where this test run was
        started with SIGINT ignored (in the background of a shell), which Python keeps."""
        self.folder = folder
        env = {**os.environ, "JOBGRAPH_TOKEN": TOKEN, "PYTHONPATH": str(Path(__file__).parent)}
        command = ["-c", _WITH_CTRL_C] if ctrl_c else ["-m", "jobgraph"]
        self.process = subprocess.Popen(
            [sys.executable, *command, "serve", "--port", "0", *extra],
            cwd=folder,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        found = re.search(r"serving on (http://\S+)", line)
        assert found, line + self.process.stderr.read()
        self.url = found.group(1).rstrip("/")

    def kill(self) -> None:
        """kill -9 the server (its launcher follows it: its input closes)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop the server as a service manager would (or with ``signum``)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        time.sleep(0.1)


_WITH_CTRL_C = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'jobgraph'; from jobgraph.cli import entry; entry()"
)
