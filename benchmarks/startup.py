"""How long `jobgraph --help` takes to start, next to a bare Python start.

    python benchmarks/startup.py [--repeat 20]

The command imports its heavy modules lazily; the target is under 0.2 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def timed(argv: list[str]) -> float:
    """Seconds one run of ``argv`` takes, as a whole process."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    command = shutil.which("jobgraph")
    help_argv = [command, "--help"] if command else [sys.executable, "-m", "jobgraph", "--help"]
    bare, ours = [], []
    for _ in range(args.repeat):  # interleaved, so drift hits both alike
        bare.append(timed([sys.executable, "-c", "pass"]))
        ours.append(timed(help_argv))
    print(f"python -c pass: median {statistics.median(bare):.3f}s")
    print(
        f"jobgraph --help: median {statistics.median(ours):.3f}s "
        f"(min {min(ours):.3f}s, max {max(ours):.3f}s, {args.repeat} runs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
