"""Write a graph to a file whose suffix picks the format."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..scheduler import Scheduler

FORMATS = (".dot", ".gv", ".mmd", ".svg", ".png", ".html")


class GraphvizMissingError(RuntimeError):
    """Rendering an image needs Graphviz's ``dot`` program, which is not installed."""


def render_image(dot_text: str, fmt: str) -> bytes:
    """Run Graphviz's ``dot`` to turn DOT text into ``svg`` or ``png`` bytes."""
    program = shutil.which("dot")
    if program is None:
        raise GraphvizMissingError(
            f"rendering {fmt.upper()} needs Graphviz's 'dot' program, which is not on PATH; "
            f"install Graphviz (e.g. 'apt-get install graphviz' or 'brew install graphviz'), "
            f"or export to .dot or .mmd instead"
        )
    done = subprocess.run(
        [program, f"-T{fmt}"],
        input=dot_text.encode(),
        capture_output=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"Graphviz 'dot' failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def export(scheduler: Scheduler, path: str) -> str:
    """Write ``scheduler``'s graph to ``path`` in the format its suffix names."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix in (".dot", ".gv"):
        target.write_text(scheduler.dot(), encoding="utf-8")
    elif suffix == ".mmd":
        target.write_text(scheduler.mermaid(), encoding="utf-8")
    elif suffix in (".svg", ".png"):
        target.write_bytes(render_image(scheduler.dot(), suffix[1:]))
    elif suffix == ".html":
        from .html import graph_page  # drawn by jobgraph itself: no Graphviz needed

        target.write_text(graph_page(scheduler), encoding="utf-8")
    else:
        raise ValueError(
            f"cannot export to {path!r}: unknown suffix {suffix or '(none)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    return str(target)
