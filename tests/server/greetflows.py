"""Flows registered for the server tests (``jobgraph serve --flows greetflows``)."""

from __future__ import annotations

import jobgraph as jg


@jg.flow("greet")
def greet(name: str, times: int = 1) -> jg.Scheduler:
    """Say hello ``times`` times."""
    return jg.Scheduler(
        *[jg.Shell(f"echo hello {name}", name=f"hello-{k}") for k in range(times)], name="greet"
    )
