"""asynciojobs' own test suite, run against jobgraph.compat.asynciojobs.

The suite is not part of this repository (its licence does not allow copying it): the
test downloads asynciojobs' source distribution from the package index, unpacks its
tests next to a one-line shim that makes ``import asynciojobs`` import the compat layer,
and runs them with pytest in a child process.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

VERSION = "0.21.3"
# The shim: asynciojobs is the layer. It also freezes what is loaded before the tests
# (pytest, jobgraph) out of the cyclic GC's way: two upstream tests time 15 parallel
# 0.1 s sleeps to within 8 ms, and a full collection of a process holding jobgraph too
# pauses longer than that (asynciojobs alone stays under it). See docs/migrating.md.
SHIM = """import gc
import sys

import jobgraph.compat.asynciojobs

sys.modules["asynciojobs"] = jobgraph.compat.asynciojobs
gc.freeze()
"""


def fetch_upstream_tests(where: Path) -> Path:
    """Download asynciojobs' sdist and unpack its ``tests`` folder under ``where``."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
         ":all:", f"asynciojobs=={VERSION}", "--dest", str(where)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"cannot download asynciojobs {VERSION}:\n{done.stderr}"
    (archive,) = where.glob("asynciojobs-*.tar.gz")
    top = f"asynciojobs-{VERSION}/tests/"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(top) and m.isfile()]
        for member in members:
            member.name = member.name[len(f"asynciojobs-{VERSION}/") :]
        tar.extractall(where, members=members, filter="data")
    return where / "tests"


def run_pytest(where: Path, *options: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *options, "tests"],
        cwd=where, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_the_upstream_suite_passes_against_the_compat_layer(tmp_path: Path) -> None:
    fetch_upstream_tests(tmp_path)
    (tmp_path / "conftest.py").write_text(SHIM)
    code, out = run_pytest(tmp_path)
    ran = sum(int(n) for n in re.findall(r"(\d+) (?:passed|failed)", out.splitlines()[-1]))
    assert ran >= 60, out[-8000:]  # 63 tests in 0.21.3: none may be silently left out
    if code != 0:
        # Some upstream tests time sleeps to within 8 ms of 0.1 s; on a loaded machine such
        # a test may miss once. The whole suite gets one more chance (the failed test
        # alone would run cold, slower than in the suite); anything else fails here.
        code, out = run_pytest(tmp_path)
    assert code == 0, out[-8000:]
    summary = [line for line in out.splitlines() if " passed" in line][-1]
    assert "failed" not in summary and "error" not in summary, summary
