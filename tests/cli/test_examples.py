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
    copy = tmp_path / "examples" / "build"
    shutil.copytree(EXAMPLES / "build", copy, ignore=shutil.ignore_patterns("out", ".jobgraph"))
    # As the README runs it: from the top of the checkout, not from the workflow's folder.
    cli = [
        sys.executable,
        "-m",
        "jobgraph",
        "run",
        "examples/build/pipeline.yaml",
        "-q",
        "--report",
        "r.json",
    ]
    first = run(cli, tmp_path)
    assert first.returncode == 0, first.stderr
    assert (copy / "out" / "summary.txt").read_text().startswith("most frequent:")
    second = run(cli, tmp_path)
    assert second.returncode == 0
    assert json.loads((tmp_path / "r.json").read_text())["counts"] == {"UP_TO_DATE": 4}
    assert (tmp_path / ".jobgraph" / "state.db").exists()  # the store: where we ran it
    (copy / "src" / "c.txt").write_text("zebra zebra zebra\n")
    third = run(cli, tmp_path)
    assert json.loads((tmp_path / "r.json").read_text())["counts"] == {"SUCCEEDED": 4}
    assert "zebra" in (copy / "out" / "summary.txt").read_text()
    assert third.returncode == 0


def test_python_examples_exit_0(tmp_path: Path):
    for name in ("data_pipeline.py", "flaky.py"):
        done = run([sys.executable, str(EXAMPLES / name)], tmp_path)
        assert done.returncode == 0, (name, done.stdout, done.stderr)
