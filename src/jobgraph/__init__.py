"""jobgraph: run a graph of jobs (functions, coroutines, shell commands) with dependencies.

The public names are the ones of the API reference; everything else is internal.
"""

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
from .job import Job, Sequence, Shell, ShellResult
from .report import JobRecord, Report
from .scheduler import Scheduler
from .state import State

__version__ = "0.1.0"

__all__ = [
    "CycleError",
    "DuplicateNameError",
    "GraphError",
    "Job",
    "JobError",
    "JobRecord",
    "MissingDependencyError",
    "PicklingError",
    "Report",
    "ResourceError",
    "Scheduler",
    "Sequence",
    "Shell",
    "ShellError",
    "ShellResult",
    "State",
    "StoreError",
    "WorkerDiedError",
    "__version__",
]
