"""The exceptions jobgraph raises.

Two families are kept apart, as doit does: a *definition* error (the graph or a job's
options are wrong, so nothing runs) derives from :class:`GraphError` or plain
:class:`ValueError`; a *run-time* failure of a job's body is reported through
:class:`JobError`, chained to the original exception.
"""

from __future__ import annotations

from collections.abc import Sequence


class GraphError(ValueError):
    """The graph cannot be run as defined; raised before anything runs."""


class CycleError(GraphError):
    """The requirements form a cycle.

    ``cycle`` lists the job names along one cycle, the first name repeated last,
    as in :class:`graphlib.CycleError`.
    """

    def __init__(self, cycle: Sequence[str], where: str = "") -> None:
        self.cycle: list[str] = list(cycle)
        prefix = f"{where}: " if where else ""
        super().__init__(prefix + "cycle in requirements: " + " -> ".join(self.cycle))


class DuplicateNameError(GraphError):
    """Two jobs of one scheduler were given the same explicit name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"two jobs are named {name!r}; job names must be unique in a scheduler")


class MissingDependencyError(GraphError):
    """A job requires a job that is not part of the graph (or has no stored result)."""


class ResourceError(GraphError):
    """A job asks for a resource the scheduler cannot provide.

    ``job`` and ``pool`` name the culprit as data, so a workflow file can point at the
    line of the request.
    """

    def __init__(self, message: str, job: str | None = None, pool: str | None = None) -> None:
        super().__init__(message)
        self.job, self.pool = job, pool


class PicklingError(GraphError):
    """A job that must run in a worker process cannot be sent to one."""


class JobError(Exception):
    """A job did not succeed; raised by ``job.result()`` and chained to the cause."""

    def __init__(self, message: str, job_name: str | None = None) -> None:
        super().__init__(message)
        self.job_name = job_name


class ShellError(Exception):
    """A shell command exited with a non-zero status."""

    def __init__(self, returncode: int, command: str, stderr_tail: str = "") -> None:
        self.returncode = returncode
        self.command = command
        message = f"command exited with status {returncode}: {command}"
        if returncode < 0:
            message = f"command killed by signal {-returncode}: {command}"
        if stderr_tail:
            message += f"\n{stderr_tail}"
        super().__init__(message)


class WorkerDiedError(Exception):
    """The worker process running a job died before returning a result."""


class StoreError(Exception):
    """The store could not record or read what a run needs; the run stops."""
