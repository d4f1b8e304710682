"""``PureScheduler``: a set of jobs and their requirements, run on jobgraph's engine.

The graph queries and edits work on the jobs' ``required`` sets directly; ``co_run()``
hands the graph to :mod:`.engine`, which runs it as a :class:`jobgraph.Scheduler`.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ... import graph as _graph
from ...scheduler import run_in_new_loop
from . import engine, listing, shutdown
from .job import AbstractJob, JobSet
from .sequence import flatten

if TYPE_CHECKING:
    from ...report import Report
    from .watch import Watch

_DEBUG = False
_GRACE = 1.0  # seconds left to tasks a job started and abandoned, when run() ends


def set_debug(debug: bool) -> None:
    """Make every scheduler report what it does, as ``verbose=True`` does for one."""
    global _DEBUG
    _DEBUG = bool(debug)


def in_new_loop(coroutine_function: Any, name: str, instead: str) -> Any:
    """Run a coroutine in a new event loop; inside a running one, say what to await."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_in_new_loop(coroutine_function(), _GRACE)
    raise RuntimeError(
        f"{name}() cannot be called from a running event loop; use 'await {instead}()' instead"
    )


class PureScheduler:
    """Jobs with requirements, run in an order that respects them.

    ``jobs_window``: at most this many jobs at once (``None`` or 0: no limit).
    ``timeout``: seconds for the whole run. ``shutdown_timeout``: seconds for the
    ``co_shutdown()`` calls at the end. ``watch``: times shown in verbose output are
    relative to it. ``verbose``: report jobs as they start and end.
    """

    def __init__(
        self,
        *jobs_or_sequences: Any,
        jobs_window: int | None = None,
        timeout: float | None = None,
        shutdown_timeout: float | None = 1,
        watch: Watch | None = None,
        verbose: bool = False,
    ) -> None:
        self.jobs = JobSet(flatten(jobs_or_sequences))
        self.jobs_window = jobs_window
        self.timeout = timeout
        self.shutdown_timeout = shutdown_timeout
        self.watch = watch
        self.verbose = verbose
        self._failed_critical = False
        self._failed_timeout: float | bool = False
        self._did_shutdown = False
        self.last_report: Report | None = None
        """jobgraph's :class:`~jobgraph.Report` of the last run (JSON, JUnit, debrief)."""

    # -- a set of jobs ----------------------------------------------------------------

    def update(self, jobs: Iterable[Any]) -> PureScheduler:
        """Add jobs and sequences; returns the scheduler."""
        self.jobs.update(flatten(jobs))
        return self

    def add(self, job: Any) -> Any:
        """Add one job or sequence; returns it."""
        self.update([job])
        return job

    def remove(self, job: AbstractJob) -> PureScheduler:
        """Remove a job (``KeyError`` if absent); returns the scheduler."""
        self.jobs.remove(job)
        return self

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self) -> Iterator[AbstractJob]:
        return iter(self.jobs)

    # -- outcome ----------------------------------------------------------------------

    def failed_time_out(self) -> bool:
        """True if the last run stopped because of its timeout."""
        return self._failed_timeout is not False  # the timeout itself may be 0

    def failed_critical(self) -> bool:
        """True if the last run stopped because a critical job raised."""
        return self._failed_critical

    def why(self) -> str:
        """Why the last run failed, or ``"FINE"``."""
        if self.failed_time_out():
            return f"TIMED OUT after {self._failed_timeout}s"
        if self._failed_critical:
            return "a CRITICAL job has raised an exception"
        return "FINE"

    # -- graph queries ----------------------------------------------------------------

    def _indices(self) -> tuple[list[AbstractJob], list[list[int]]]:
        """The jobs and, for each, the positions of its requirements in this scheduler."""
        jobs = list(self.jobs)
        where = {job: i for i, job in enumerate(jobs)}
        reqs = [[where[r] for r in job.required if r in where] for job in jobs]
        return jobs, reqs

    def topological_order(self) -> Iterator[AbstractJob]:
        """The jobs, each after its requirements; ``ValueError`` naming a cycle if any.

        Requirements outside this scheduler are not part of its graph and are ignored.
        """
        jobs, reqs = self._indices()
        order = _graph.topological_order(reqs, _graph.successors(reqs))
        if len(order) < len(jobs):
            left = set(range(len(jobs))) - set(order)
            cycle = _graph.find_cycle(reqs, left)
            names = " -> ".join(jobs[i]._get_text_label() for i in cycle)
            raise ValueError(f"the jobs' requirements form a cycle: {names}")
        return (jobs[i] for i in order)

    def check_cycles(self) -> bool:
        """True if the requirements form no cycle."""
        try:
            for _ in self.topological_order():
                pass
        except ValueError as exc:
            if self.verbose:
                print("check_cycles failed:", exc)
            return False
        return True

    def entry_jobs(self) -> Iterator[AbstractJob]:
        """The jobs with no requirement."""
        return (job for job in self.jobs if not job.required)

    def exit_jobs(
        self, *, discard_forever: bool = True, compute_backlinks: bool = True
    ) -> Iterator[AbstractJob]:
        """The jobs no other job requires (forever jobs left out unless asked)."""
        if compute_backlinks:
            self._backlinks()
        return (
            job
            for job in self.jobs
            if not (discard_forever and job.forever) and not job._s_successors
        )

    def _backlinks(self) -> None:
        """Fill each job's ``_s_successors``: the jobs of this scheduler requiring it."""
        for job in self.jobs:
            job._s_successors = JobSet()
        for job in self.jobs:
            for req in job.required:
                req._s_successors.add(job)

    def _neighbours(self, attribute: str, starts: Iterable[AbstractJob]) -> set[AbstractJob]:
        found: set[AbstractJob] = set()
        for start in starts:
            found.update(j for j in getattr(start, attribute) if j in self.jobs)
        return found

    def _closure(self, attribute: str, starts: Iterable[AbstractJob]) -> set[AbstractJob]:
        found = self._neighbours(attribute, starts)
        frontier = set(found)
        while frontier:
            frontier = self._neighbours(attribute, frontier) - found
            found |= frontier
        return found

    def predecessors(self, *starts: AbstractJob) -> set[AbstractJob]:
        """The jobs of this scheduler that any of ``starts`` requires."""
        return self._neighbours("required", starts)

    def successors(self, *starts: AbstractJob, compute_backlinks: bool = True) -> set[AbstractJob]:
        """The jobs of this scheduler that require any of ``starts``."""
        if compute_backlinks:
            self._backlinks()
        return self._neighbours("_s_successors", starts)

    def predecessors_upstream(self, *starts: AbstractJob) -> set[AbstractJob]:
        """Every job that any of ``starts`` requires, directly or not."""
        return self._closure("required", starts)

    def successors_downstream(
        self, *starts: AbstractJob, compute_backlinks: bool = True
    ) -> set[AbstractJob]:
        """Every job that requires any of ``starts``, directly or not."""
        if compute_backlinks:
            self._backlinks()
        return self._closure("_s_successors", starts)

    def iterate_jobs(self, scan_schedulers: bool = False) -> Iterator[Any]:
        """Every job, nested schedulers' jobs included; the schedulers too if asked."""
        if scan_schedulers:
            yield self
        for job in self.jobs:
            yield from job._iterate_jobs(scan_schedulers)

    # -- graph edits ------------------------------------------------------------------

    def sanitize(self, verbose: bool | None = None) -> bool:
        """Drop requirements on jobs outside this scheduler (nested ones too).

        Returns True if there was nothing to drop.
        """
        verbose = self.verbose if verbose is None else verbose
        fine = True
        for job in self.jobs:
            outside = [r for r in job.required if r not in self.jobs]
            for req in outside:
                job.required.remove(req)
            if outside:
                fine = False
                if verbose:
                    print(f"WARNING: {job.repr_main()} had {len(outside)} requirement(s) removed")
            if isinstance(job, PureScheduler):
                fine = job.sanitize(verbose) and fine
        return fine

    def bypass_and_remove(self, job: AbstractJob) -> None:
        """Remove ``job``; the jobs that required it now require its requirements."""
        if job not in self.jobs:
            raise ValueError(f"{job.repr_main()} is not in this scheduler")
        for down in [d for d in self.jobs if job in d.required]:
            down.required.remove(job)
            down.requires(list(job.required))
        self.jobs.remove(job)

    def keep_only(self, remains: Iterable[AbstractJob]) -> None:
        """Keep only the jobs in ``remains``; requirements on the others are dropped."""
        keep = set(remains)
        self.jobs = JobSet(j for j in self.jobs if j in keep)
        self.sanitize()

    def keep_only_between(
        self,
        *,
        starts: Iterable[AbstractJob] | None = None,
        ends: Iterable[AbstractJob] | None = None,
        keep_starts: bool = True,
        keep_ends: bool = True,
    ) -> None:
        """Keep the jobs downstream of ``starts`` and upstream of ``ends``.

        An empty or missing bound does not constrain; ``keep_starts``/``keep_ends`` say
        whether the bounds themselves stay.
        """
        first, last = set(starts or ()), set(ends or ())
        down = self.successors_downstream(*first) if first else set(self.jobs)
        up = self.predecessors_upstream(*last) if last else set(self.jobs)
        keep = down & up
        if keep_starts:
            keep |= first
        if keep_ends:
            keep |= last
        self.keep_only(keep)

    # -- running ----------------------------------------------------------------------

    def run(self) -> Any:
        """Run in a new event loop; see :meth:`co_run`. ``orchestrate`` is the same."""
        return in_new_loop(self.co_run, "run", "co_run")

    orchestrate = run

    async def co_run(self) -> Any:
        """Run every job once its requirements are done; then shut the jobs down.

        Returns False if a critical job raised or the timeout expired (running jobs are
        then cancelled), True otherwise. Forever jobs are not waited for: they are
        cancelled once the others are done.
        """
        return await engine.run(self)

    def shutdown(self) -> bool:
        """Run :meth:`co_shutdown` in a new event loop."""
        return bool(in_new_loop(self.co_shutdown, "shutdown", "co_shutdown"))

    async def co_shutdown(self) -> bool:
        """Await every job's ``co_shutdown()``, within ``shutdown_timeout`` seconds.

        Returns False if some did not return in time (they are cancelled). A scheduler
        shuts down once per run.
        """
        if self._did_shutdown:
            return True
        self._did_shutdown = True
        return await shutdown.shut_down(self)

    # -- listings and graphs ----------------------------------------------------------

    def list(self, details: bool = False, silence_done_jobs: bool = False) -> None:
        """Print the jobs in topological order with their state badges and results."""
        listing.print_list(self, details, silence_done_jobs)

    def list_safe(self, silence_done_jobs: bool = False) -> None:
        """Print the jobs in no particular order (works on a graph with cycles)."""
        listing.print_list_safe(self, silence_done_jobs)

    def debrief(self, details: bool = False, silence_done_jobs: bool = False) -> None:
        """Print why the run failed, the listing, and the jobs' exceptions."""
        listing.print_debrief(self, details, silence_done_jobs)

    def stats(self) -> str:
        """``2D + 3R + 4I = 9``: done, running, idle and total jobs."""
        done, running, idle, total = listing.counts(self)
        return f"{done}D + {running}R + {idle}I = {total}"

    def __repr__(self) -> str:
        done, running, idle, total = listing.counts(self)
        return (
            f"{type(self).__name__} with {done} done + {running} ongoing"
            f" + {idle} idle = {total} job(s)"
        )

    def dot_format(self) -> str:
        """The graph in Graphviz's DOT language (nested schedulers as clusters)."""
        return listing.dot(self)

    def export_as_dotfile(self, filename: str) -> str:
        """Write :meth:`dot_format` to ``filename``; returns a message saying so."""
        with open(filename, "w", encoding="utf-8") as out:
            out.write(self.dot_format())
        return f"(Over)wrote {filename}"

    def export_as_graphic(self, filename: str, suffix: str) -> str:
        """Write ``filename.dot`` and, with Graphviz's ``dot``, ``filename.<suffix>``.

        Without Graphviz the image is not made and a ``RuntimeWarning`` says what to
        install: as with asynciojobs, a missing ``dot`` does not stop the script.
        """
        from ...render.export import GraphvizMissingError, render_image

        self.export_as_dotfile(f"{filename}.dot")
        target = f"{filename}.{suffix}"
        try:
            image = render_image(self.dot_format(), suffix)
        except GraphvizMissingError as exc:
            warnings.warn(f"{target} not written: {exc}", RuntimeWarning, stacklevel=2)
            return target
        with open(target, "wb") as out:
            out.write(image)
        return target

    def export_as_pngfile(self, filename: str) -> str:
        """:meth:`export_as_graphic` as PNG; ``filename`` without the suffix."""
        return self.export_as_graphic(filename, "png")

    def export_as_svgfile(self, filename: str) -> str:
        """:meth:`export_as_graphic` as SVG; ``filename`` without the suffix."""
        return self.export_as_graphic(filename, "svg")

    def graph(self) -> Any:
        """The graph as a ``graphviz.Source`` (needs the ``graphviz`` Python package)."""
        try:
            from graphviz import Source
        except ImportError:
            raise ImportError(
                "PureScheduler.graph() needs the 'graphviz' Python package: "
                "pip install graphviz (or use dot_format() / export_as_svgfile())"
            ) from None
        return Source(source=self.dot_format())

    # -- closing coroutines of jobs that will not run ---------------------------------

    def close_idle_jobs(self) -> None:
        """Close the jobs that did not start."""
        for job in self.iterate_jobs():
            if job.is_idle():
                job.close()

    def close_done_jobs(self) -> None:
        """Close the jobs that are done."""
        for job in self.iterate_jobs():
            if job.is_done():
                job.close()

    def close_all_jobs(self) -> None:
        """Close every job."""
        for job in self.iterate_jobs():
            job.close()

    # -- for the nestable Scheduler and the listings ----------------------------------

    def _total_length(self) -> int:
        return sum(job._job_count() for job in self.jobs)

    def _talks(self) -> bool:
        return bool(self.verbose or _DEBUG)

    def _log(self, message: str, force: bool = False) -> None:
        """Verbose output (``force``: always), timed by the watch when there is one."""
        if not (force or self._talks()):
            return
        if self.watch is not None:
            self.watch.print_elapsed()
        else:
            from .watch import Watch

            Watch.print_wall_clock()
        print(f"SCHEDULER {self.stats()}: {message}")
