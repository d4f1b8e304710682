"""The examples of docs/migrating.md run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "migrating.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
# Blocks that import the old libraries show the "before"; this environment need not have them.
OLD = re.compile(r"^(from|import) (artron|asynciojobs)\b", re.M)
RUNNABLE = [block for block in BLOCKS if not block.startswith("# before") and not OLD.search(block)]

# The "mybuild" module the artron examples import: a builder class and plain functions.
MYBUILD = """
def download(url, retry=None):
    return url.rsplit("/", 1)[-1]


def clean(path, retry=None):
    return path.upper()


class Builder:
    def download(self, url, retry):
        return download(url)

    def clean(self, path, retry):
        return clean(path)
"""


def test_the_document_has_examples() -> None:
    assert len(RUNNABLE) >= 4


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"example{i}" for i in range(len(RUNNABLE))])
def test_example_runs(block: str, tmp_path: Path) -> None:
    (tmp_path / "mybuild.py").write_text(MYBUILD)
    (tmp_path / "example.py").write_text(block)
    done = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
