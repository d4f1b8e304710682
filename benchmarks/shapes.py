"""Deterministic DAG shapes used by the benchmarks.

A graph of ``n`` jobs is numbered ``0 .. n-1`` in a topological order: every job
requires only jobs with a smaller index. It is stored in compressed sparse row
form (two flat integer arrays) so that the harness's own description of a
million-job graph costs a few megabytes, not the hundreds of megabytes a list of
tuples would, and does not blur the peak memory figures of the peers.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass

SEED = 20261121
"""Seed of the random layered DAG: the same shape and size always give the same graph."""

LAYER_WIDTH = 100
"""Jobs per layer of the ``layered`` shape (the last layer may be smaller)."""

MIN_FANIN = 1
MAX_FANIN = 3
"""Each job of a ``layered`` DAG (past the first layer) requires 1 to 3 jobs of the layer before."""


@dataclass(frozen=True)
class Dag:
    """A DAG as predecessor lists: job ``i`` requires ``targets[offsets[i]:offsets[i + 1]]``."""

    n: int
    offsets: array[int]
    targets: array[int]

    def preds(self, i: int) -> array[int]:
        """Return the indices of the jobs that job ``i`` requires (all smaller than ``i``)."""
        return self.targets[self.offsets[i] : self.offsets[i + 1]]

    @property
    def edges(self) -> int:
        """Return the number of requirement edges."""
        return len(self.targets)

    def sinks(self) -> list[int]:
        """Return the jobs that no other job requires, in increasing order."""
        required = bytearray(self.n)
        for target in self.targets:
            required[target] = 1
        return [i for i in range(self.n) if not required[i]]


def _from_pred_lists(n: int, pred_lists: Iterator[list[int]]) -> Dag:
    """Pack the predecessor lists of jobs ``0 .. n-1`` (in that order) into a ``Dag``."""
    offsets = array("q", [0])
    targets = array("q")
    for preds in pred_lists:
        targets.extend(preds)
        offsets.append(len(targets))
    if len(offsets) != n + 1:
        raise ValueError(f"expected {n} predecessor lists, got {len(offsets) - 1}")
    return Dag(n, offsets, targets)


def chain(n: int) -> Dag:
    """Return a chain: job ``i`` requires job ``i - 1``."""
    return _from_pred_lists(n, ([i - 1] if i else [] for i in range(n)))


def fanout(n: int) -> Dag:
    """Return a fan-out: job 0 is the root, the other ``n - 1`` jobs each require it."""
    return _from_pred_lists(n, ([0] if i else [] for i in range(n)))


def independent(n: int) -> Dag:
    """Return ``n`` jobs with no requirement at all."""
    return Dag(n, array("q", [0] * (n + 1)), array("q"))


def _layered_preds(n: int, rng: random.Random) -> Iterator[list[int]]:
    """Yield the predecessor lists of a layered DAG, job by job."""
    for i in range(n):
        layer_start = i - i % LAYER_WIDTH
        if layer_start == 0:
            yield []
            continue
        prev_start = layer_start - LAYER_WIDTH
        fanin = rng.randint(MIN_FANIN, MAX_FANIN)
        yield sorted(rng.sample(range(prev_start, layer_start), fanin))


def layered(n: int) -> Dag:
    """Return a random layered DAG (seeded with ``SEED``).

    Jobs are cut into layers of ``LAYER_WIDTH`` consecutive indices; every job past
    the first layer requires 1 to 3 distinct random jobs of the previous layer. The
    width is fixed rather than ``sqrt(n)`` so that the number of jobs ready at once
    stays the same at every size, and per-job costs can be compared across sizes.
    """
    return _from_pred_lists(n, _layered_preds(n, random.Random(SEED)))


SHAPES: dict[str, Callable[[int], Dag]] = {
    "chain": chain,
    "fanout": fanout,
    "layered": layered,
    "independent": independent,
}
"""Shape name -> generator of an ``n``-job DAG of that shape."""


def make_dag(shape: str, n: int) -> Dag:
    """Return the ``n``-job DAG of the named shape."""
    if n < 1:
        raise ValueError(f"a graph needs at least one job, got n={n}")
    try:
        generate = SHAPES[shape]
    except KeyError:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}") from None
    return generate(n)
