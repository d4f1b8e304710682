"""A drop-in layer for scripts written for artron 0.0.5, running on jobgraph's engine.

Change the import line and keep the script::

    from jobgraph.compat.artron import Task, Manager   # was: from artron import ...

``task``, ``graph``, ``manager`` and ``utils`` mirror artron's modules. What differs from
artron, and why, is in docs/migrating.md.
"""

from __future__ import annotations

from .graph import Graph
from .manager import Manager
from .task import Task, TaskDependenciesError

__all__ = ["Graph", "Manager", "Task", "TaskDependenciesError"]
