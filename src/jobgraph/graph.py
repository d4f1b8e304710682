"""Pure graph algorithms on job indices: order, cycles, reachability, critical path.

A graph here is ``reqs``: for each job index, the indices of the jobs it requires.
Nothing in this module knows about jobs, states or time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

Reqs = Sequence[Sequence[int]]


def successors(reqs: Reqs) -> list[list[int]]:
    """Invert ``reqs``: for each index, the indices that require it."""
    succs: list[list[int]] = [[] for _ in range(len(reqs))]
    for i, row in enumerate(reqs):
        for r in row:
            succs[r].append(i)
    return succs


def topological_order(reqs: Reqs, succs: Sequence[Sequence[int]]) -> list[int]:
    """Kahn's algorithm; ties keep index order. Jobs on a cycle are left out."""
    indegree = [len(row) for row in reqs]
    queue = deque(i for i, d in enumerate(indegree) if d == 0)
    order: list[int] = []
    append, popleft = order.append, queue.popleft
    while queue:
        i = popleft()
        append(i)
        for s in succs[i]:
            indegree[s] -= 1
            if indegree[s] == 0:
                queue.append(s)
    return order


def find_cycle(reqs: Reqs, candidates: Iterable[int]) -> list[int]:
    """Return one cycle among ``candidates`` as indices, the first repeated last.

    ``candidates`` are the jobs Kahn's algorithm could not order; each of them is on a
    cycle or downstream of one, so following requirements from any of them must loop.
    """
    inside = set(candidates)
    start = next(iter(inside))
    path: list[int] = []
    position: dict[int, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = next(r for r in reqs[node] if r in inside)
    cycle = path[position[node] :]
    # Read along dependency arrows: a requires b shows as "b -> a"? We print the
    # requirement chain the user wrote: a requires b requires a  ->  "a -> b -> a".
    return [*cycle, node]


def reachable(starts: Iterable[int], edges: Sequence[Sequence[int]]) -> set[int]:
    """Every index reachable from ``starts`` along ``edges`` (starts excluded unless looped)."""
    seen: set[int] = set()
    stack = list(starts)
    while stack:
        for nxt in edges[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def remaining_path(
    order: Sequence[int], succs: Sequence[Sequence[int]], weight: Sequence[float]
) -> list[float]:
    """Length of the heaviest path from each job to the end of the graph, itself included."""
    best = [0.0] * len(succs)
    for i in reversed(order):
        tail = max((best[s] for s in succs[i]), default=0.0)
        best[i] = weight[i] + tail
    return best
