"""The examples in examples/ run as the README says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_build_pipeline_second_run_is_all_up_to_date(tmp_path: Path):
    copy = tmp_path / "build"
    shutil.copytree(EXAMPLES / "build", copy, ignore=shutil.ignore_patterns("out", ".jobgraph"))
    cli = [sys.executable, "-m", "jobgraph", "run", "pipeline.yaml", "-q", "--report", "r.json"]
    first = run(cli, copy)
    assert first.returncode == 0, first.stderr
    assert (copy / "out" / "summary.txt").read_text().startswith("most frequent:")
    second = run(cli, copy)
    assert second.returncode == 0
    assert json.loads((copy / "r.json").read_text())["counts"] == {"UP_TO_DATE": 4}
    (copy / "src" / "c.txt").write_text("zebra zebra zebra\n")
    third = run(cli, copy)
    assert json.loads((copy / "r.json").read_text())["counts"] == {"SUCCEEDED": 4}
    assert "zebra" in (copy / "out" / "summary.txt").read_text()
    assert third.returncode == 0


def test_python_examples_exit_0(tmp_path: Path):
    for name in ("data_pipeline.py", "flaky.py"):
        done = run([sys.executable, str(EXAMPLES / name)], tmp_path)
        assert done.returncode == 0, (name, done.stdout, done.stderr)
