"""asynciojobs' API on jobgraph's engine: change ``import asynciojobs`` and nothing else.

``PureScheduler``, ``Scheduler`` (nestable), ``AbstractJob``, ``Job``, ``PrintJob``,
``Sequence`` and ``Watch`` behave as asynciojobs documents them; docs/migrating.md says
what differs (a failing job never keeps its window slot, among others). After a run,
``scheduler.last_report`` is jobgraph's :class:`~jobgraph.Report` of it.
"""

from .job import AbstractJob, Job
from .printjob import PrintJob
from .purescheduler import PureScheduler, set_debug
from .scheduler import Scheduler
from .sequence import Sequence
from .watch import Watch

__all__ = [
    "AbstractJob",
    "Job",
    "PrintJob",
    "PureScheduler",
    "Scheduler",
    "Sequence",
    "Watch",
    "set_debug",
]
