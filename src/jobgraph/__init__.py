"""jobgraph: run a graph of jobs (functions, coroutines, shell commands) with dependencies.

The public names are the ones of the API reference; everything else is internal. They
are imported on first use, so that ``jobgraph --help`` starts without loading asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "Client": "client",
    "CycleError": "errors",
    "DaskExecutor": "executors.cluster",
    "DuplicateNameError": "errors",
    "GraphError": "errors",
    "JobError": "errors",
    "MissingDependencyError": "errors",
    "PicklingError": "errors",
    "ResourceError": "errors",
    "ShellError": "errors",
    "StoreError": "errors",
    "WorkerDiedError": "errors",
    "RunHandle": "handle",
    "attach": "handle",
    "Job": "job",
    "Sequence": "job",
    "Shell": "job",
    "ShellResult": "job",
    "JobRecord": "report",
    "Report": "report",
    "Scheduler": "scheduler",
    "State": "state",
    "WorkflowError": "workflow",
    "load_workflow": "workflow",
    "flow": "flows",
}

__all__ = [
    "Client",
    "CycleError",
    "DaskExecutor",
    "DuplicateNameError",
    "GraphError",
    "Job",
    "JobError",
    "JobRecord",
    "MissingDependencyError",
    "PicklingError",
    "Report",
    "ResourceError",
    "RunHandle",
    "Scheduler",
    "Sequence",
    "Shell",
    "ShellError",
    "ShellResult",
    "State",
    "StoreError",
    "WorkerDiedError",
    "WorkflowError",
    "__version__",
    "attach",
    "flow",
    "load_workflow",
]

if TYPE_CHECKING:
    from .client import Client
    from .errors import (
        CycleError,
        DuplicateNameError,
        GraphError,
        JobError,
        MissingDependencyError,
        PicklingError,
        ResourceError,
        ShellError,
        StoreError,
        WorkerDiedError,
    )
    from .executors.cluster import DaskExecutor
    from .flows import flow
    from .handle import RunHandle, attach
    from .job import Job, Sequence, Shell, ShellResult
    from .report import JobRecord, Report
    from .scheduler import Scheduler
    from .state import State
    from .workflow import WorkflowError
    from .workflow import load as load_workflow


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'jobgraph' has no attribute {name!r}")
    attribute = "load" if name == "load_workflow" else name
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value  # next time, no lookup
    return value


def __dir__() -> list[str]:
    return __all__
