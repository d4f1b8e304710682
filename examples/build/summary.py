"""The last step of the example pipeline: a short summary of the word counts."""

from __future__ import annotations

from pathlib import Path


def write(counts: str, longest: str, target: str) -> str:
    """Write the three most frequent and the longest words; return the summary."""
    top = [line.split()[-1] for line in Path(counts).read_text().splitlines()[:3]]
    long = [line.split()[-1] for line in Path(longest).read_text().splitlines()[:1]]
    text = f"most frequent: {', '.join(top)}\nlongest: {', '.join(long)}\n"
    Path(target).write_text(text)
    return text
