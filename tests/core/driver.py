"""Drive the scheduling core one event at a time, without asyncio (tests only)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from jobgraph import graph
from jobgraph.core import Core, Spec
from jobgraph.state import State


def make_core(
    reqs: Sequence[Sequence[int]],
    *,
    window: int | None = None,
    run_if: Sequence[int] = (),
    critical: Sequence[bool] = (),
    forever: Sequence[bool] = (),
    resources: Sequence[Mapping[str, float] | None] = (),
    pools: Mapping[str, float] | None = None,
    rank: Sequence[tuple[float, ...]] = (),
    done: Mapping[int, State] | None = None,
) -> Core:
    """A core over jobs named j0, j1, ... with the given requirements."""
    names = [f"j{i}" for i in range(len(reqs))]
    return Core(
        Spec(
            names=names,
            reqs=reqs,
            succs=graph.successors(reqs),
            run_if=bytes(run_if),
            critical=bytes(critical),
            forever=bytes(forever),
            resources=resources,
            rank=rank,
            window=window,
            pools=pools or {},
            done=done or {},
        )
    )


def drive(
    core: Core,
    outcome: Callable[[int], State],
    seed: int = 0,
    on_start: Callable[[int, list[int]], None] | None = None,
    ends: int | None = None,
) -> list[int]:
    """Run the core to the end: each step ends one random running job with ``outcome``.

    Returns the order jobs were started in. ``on_start(i, running)`` sees every start.
    With ``ends``, stop after that many job ends (a crash: what runs is left running).
    """
    rng = random.Random(seed)
    core.start()
    running: list[int] = []
    started: list[int] = []
    ended = 0
    while not core.finished and (ends is None or ended < ends):
        for i in core.dispatch():
            running.append(i)
            started.append(i)
            if on_start is not None:
                on_start(i, running)
        if core.finished:
            break
        assert running, "the core is stuck: nothing runs and the run is not finished"
        i = running.pop(rng.randrange(len(running)))
        state = outcome(i)
        if state is State.SUCCEEDED:
            core.succeeded(i)  # the runner's path for a success
        else:
            core.finish(i, state)
        ended += 1
        if core.aborted is not None:
            for j in running:
                core.finish(j, State.CANCELLED)
            running.clear()
            core.cancel_rest()
    return started
