"""What a scheduler is checked for before it runs, with asynciojobs' meaning of its options.

asynciojobs took any ``jobs_window`` an ``asyncio.Queue`` takes as its size (0, None or a
negative number: no limit; a float: rounded up) and any ``timeout`` ``asyncio.wait``
takes (0 or less: expired at once). jobgraph's own options are stricter, so the layer
translates them here, and names the scheduler when a value makes no sense at all.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .purescheduler import PureScheduler


def label_of(sched: Any) -> str:
    """How messages name a scheduler: its label, else its class."""
    label = getattr(sched, "label", None)
    return str(label) if label is not None else type(sched).__name__


def _number(sched: PureScheduler, option: str, kind: str) -> float | None:
    """The option's value: None, or a number that is not NaN (an error names the rest)."""
    value = getattr(sched, option)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(
            f"scheduler {label_of(sched)!r}: {option} must be {kind} or None, not {value!r}"
        )
    return value


def window(sched: PureScheduler) -> int | None:
    """``jobs_window`` as jobgraph's window: None for no limit."""
    value = _number(sched, "jobs_window", "a number")
    if value is None or value <= 0 or math.isinf(value):
        return None
    return math.ceil(value)


def timeout(sched: PureScheduler) -> float | None:
    """``timeout`` in seconds (0 or less: already expired), None for none."""
    value = _number(sched, "timeout", "a number of seconds")
    return None if value is None or math.isinf(value) else float(value)


def nested(sched: PureScheduler) -> None:
    """Check every nested scheduler (at any depth) for a cycle or an outside requirement.

    Done before anything runs, so that a defect deep inside does not show only once the
    jobs before it have run. (The scheduler's own graph is checked as it is translated.)
    """
    from .purescheduler import PureScheduler

    for job in sched.jobs:
        if isinstance(job, PureScheduler):
            whole(job)


def whole(sched: PureScheduler) -> None:
    """Raise ``ValueError`` for a cycle or an outside requirement, nested schedulers too."""
    for job in sched.topological_order():  # raises, naming the cycle with labels
        for req in job.required:
            if req not in sched.jobs:
                outside(sched, job, req)
    nested(sched)


def outside(sched: PureScheduler, job: Any, req: Any) -> Any:
    """The error for ``job`` requiring ``req``, which ``sched`` does not hold."""
    raise ValueError(
        f"{job.repr_main()} requires {req.repr_main()}, which is not in scheduler "
        f"{label_of(sched)!r}: add it there, or call sanitize() to drop such requirements"
    )
