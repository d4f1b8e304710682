"""``Graph``: the requirements of the tasks still to run, as a dict of lists.

The same public names and documented behaviour as ``artron.graph``. jobgraph's
:class:`~jobgraph.compat.artron.manager.Manager` does not need it (jobgraph's own graph
runs the tasks); it is kept for scripts that inspect their tasks with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .task import Task

__all__ = ["Graph"]


class Graph(dict[str, list[str]]):
    """Task id -> list of the task ids it requires, for the tasks in ``STATE_INIT``.

    Tasks in any other state are left out. Every value is a list: assigning anything
    else to a key is a :class:`ValueError`.

    Args:
        tasks: task id -> :class:`~jobgraph.compat.artron.task.Task`.

    Attributes:
        size: how many tasks were given (all of them, whatever their state).

    Example::

        >>> a = Task('a', {}, 'build')
        >>> b = Task('b', {}, 'build', require=['a'])
        >>> Graph({'a': a, 'b': b})
        {'a': [], 'b': ['a']}
    """

    def __init__(self, tasks: Mapping[str, Task]) -> None:
        super().__init__()
        self.size = len(tasks)
        for task in tasks.values():
            if task.state == Task.STATE_INIT:
                self[task.tid] = list(task.require)

    def __setitem__(self, key: str, value: list[str]) -> None:
        """Set the requirements of ``key``; ``value`` must be a list."""
        if not isinstance(value, list):
            raise ValueError(f"a Graph maps task ids to lists, not to {type(value).__name__}")
        super().__setitem__(key, value)

    def edges(self) -> Iterator[tuple[str, str]]:
        """Yield ``(task, required)`` pairs; a task with no requirement gives ``(task, task)``."""
        for vertex, required in self.items():
            if not required:
                yield (vertex, vertex)
            for neighbour in required:
                yield (vertex, neighbour)

    def isolated_vertices(self) -> Iterator[str]:
        """Yield the ids of the tasks that require nothing."""
        for vertex, required in self.items():
            if not required:
                yield vertex

    def remove_vertex(self, vertex: str) -> None:
        """Remove ``vertex`` and every requirement on it (a ``KeyError`` if it is absent)."""
        del self[vertex]
        for required in self.values():
            while vertex in required:
                required.remove(vertex)
