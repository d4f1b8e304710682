"""Deciding which cached jobs are up to date, and ending them so.

A run first checks the whole graph by stamp, before anything starts: a cached job whose
requirements are known up to date too, and whose stamp matches its last success's, ends
``UP_TO_DATE`` with the core's first step. Any other cached job is checked when the run
meets it, where a stamp that does not match leads to the stored parts and, for files
whose size or time changed, their hashes (see ``fingerprint.py``).
"""

from __future__ import annotations

import functools
import time
from operator import attrgetter
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import graphstamp as _graphstamp
from . import plan as _plan
from .job import Job
from .state import State

if TYPE_CHECKING:
    from .core import Core
    from .recorder import Print, Recorder, Remembered, Resumed
    from .runner import Runner

_SUCCEEDED, _UP_TO_DATE = State.SUCCEEDED, State.UP_TO_DATE
_now = time.time
_RUN_OF = attrgetter("run_id")


def _print_of(known: Remembered) -> Print:
    """An up-to-date job's print: its fingerprint and stamp, nothing new to keep."""
    return (known.fingerprint, None, known.stamp)


class UpToDateChecks:
    """The runner's checks of its cached jobs (a part of ``Runner``)."""

    jobs: list[Job]
    plan: _plan.Plan
    rec: Recorder
    core: Core
    prefix: str
    force: Any
    _resumed: dict[int, Resumed]
    _fresh: dict[int, Remembered]  # up to date before the run starts
    _prints: dict[int, Print]
    _pickled: dict[int, bytes]
    _digests: dict[int, str | None]
    _unportable: bool  # a required result's digest may differ in another process
    _sources: dict[int, Remembered]  # the success each up-to-date job's result comes from
    _result_runs: dict[int, str | None]  # the run that made each up-to-date job's result
    _materials: dict[int, str]  # each cached job's stamp material, as its check used it
    _made: dict[int, str | None]  # stamp materials made at the start (see _by_stamp)
    _matched: str | None  # the graph stamp that found the whole graph up to date
    _whole: bool  # a graph snapshot may stand for this run's plan (graphstamp.eligible)
    parent: Runner | None
    _durable: bool

    def _skip_if_up_to_date(self, i: int, job: Job) -> bool:
        """The fingerprint check; one that cannot be made means the job runs."""
        try:
            return self._up_to_date(i, job)
        except Exception:
            self._prints.pop(i, None)  # no fingerprint: the job runs, and is not remembered
            return False

    def _up_to_date(self, i: int, job: Job) -> bool:
        """Decide from the fingerprint whether a cached job can be skipped."""
        _fp = _fingerprints()
        reqs = self.plan.reqs[i]
        requires = {self.jobs[r].name: self._digest(r) for r in reqs} if reqs else {}
        stamp, inputs, known, unchanged = self._by_stamp(i, job, requires)
        if unchanged:
            assert known is not None
            # Nothing changed since that success, and no file was read to know it.
            self._prints[i] = (known.fingerprint, None, known.stamp)  # nothing new to keep
            return self._skip(i, job, known)
        previous = self.rec.parts(self.prefix + job.name, known) if known is not None else None
        parts = _fp.hash_inputs(_fp.stat_parts(job, requires, inputs), previous)
        print_ = _fp.fingerprint(parts)
        # Kept even when up to date: touched files' new mtimes spare the next run a hash.
        kept = _fp.sealed(stamp, print_) if stamp is not None and print_ is not None else None
        self._prints[i] = (print_, parts, kept)
        if self._forced(job) or known is None or print_ is None or print_ != known.fingerprint:
            return False
        if _fp.missing_outputs(job):
            return False
        return self._skip(i, job, known)

    def _forced(self, job: Job) -> bool:
        force = self.force
        return force is True or (isinstance(force, (list, tuple, set)) and job.name in force)

    def _by_stamp(
        self, i: int, job: Job, requires: dict[str, str | None]
    ) -> tuple[str | None, dict[str, list[Any]], Remembered | None, bool]:
        """The job's stamp, input files and last success, and whether it is up to date.

        Up to date on the stamp alone (not forced, no output missing): no file read, no
        parts parsed. Both the start-of-run pass and the check when met ask this first.
        """
        _fp = _fingerprints()
        known = self.rec.remembered(self.prefix + job.name)
        made = self._made.get(i)  # by the graph stamp's check, in the start-of-run pass
        if made is not None:
            stamp = _fp.stamp_with(made, requires)
            if self._unchanged(job, known, stamp):
                self._materials[i] = made
                return stamp, {}, known, True  # (its files are not needed then)
        # Its files looked at once for both the stamp and the parts that may follow.
        material, inputs = _fp.material_of(job)
        if material is not None:
            self._materials[i] = material  # for the graph stamp kept at the run's end
        stamp = _fp.stamp_with(material, requires)
        return stamp, inputs, known, self._unchanged(job, known, stamp)

    def _unchanged(self, job: Job, known: Remembered | None, stamp: str | None) -> bool:
        """Whether a job of this stamp is up to date on the stamp alone."""
        _fp = _fingerprints()
        return (
            known is not None
            and stamp is not None
            and known.stamp == _fp.sealed(stamp, known.fingerprint)
            and not self._forced(job)
            and not (job.outputs and _fp.missing_outputs(job))
        )

    def _up_to_date_at_start(
        self, plan: _plan.Plan, names: _plan.NamesByIndex
    ) -> dict[int, Remembered]:
        """The cached jobs known to be up to date before anything runs.

        A job is, when every job it requires is too (or was resumed), and its stamp
        matches its last success's: the stamp path of :meth:`_up_to_date`, taken for the
        whole graph in one pass. These jobs end ``UP_TO_DATE`` with the core's first step,
        never dispatched one by one: an unchanged graph is decided at once. Any other job
        is decided when it is met, as before (then with the files hashed if need be).
        """
        self._whole = self.parent is None and not self._resumed and _graphstamp.eligible(plan)
        if self._whole:
            self.rec.follow_successes()  # for the graph snapshot this run may keep
        if self.force is True or not _any_cached(plan.jobs):
            return {}
        try:
            whole = self._whole_graph_fresh(plan, names)
            return whole if whole is not None else self._fresh_job_by_job(plan)
        finally:
            self._made = {}  # a job met later is stamped then: its files may change first

    def _fresh_job_by_job(self, plan: _plan.Plan) -> dict[int, Remembered]:
        """:meth:`_up_to_date_at_start`, one job at a time (see there)."""
        _fp, jobs, all_reqs, resumed = _fingerprints(), plan.jobs, plan.reqs, self._resumed
        digests = self._digests
        fresh: dict[int, Remembered] = {}
        for i in plan.order:
            job = jobs[i]
            if not (job.cache or job.inputs or job.outputs) or i in resumed:
                continue
            if job.run_if != "success":
                continue  # the core may skip it, whatever its stamp: decided when met
            reqs = all_reqs[i]
            if reqs and not all(r in fresh or r in resumed for r in reqs):
                continue  # decided when met: a requirement may run first
            try:
                requires: dict[str, str | None] = {}
                for r in reqs:
                    if r not in digests:
                        self._keep_digest(r, self._known_result(r, fresh))
                    requires[jobs[r].name] = digests[r]
                _, _, known, unchanged = self._by_stamp(i, job, requires)
                if unchanged:
                    assert known is not None
                    fresh[i] = known
            except Exception:
                continue  # decided when met, where a check that fails means the job runs
        return fresh

    def _whole_graph_fresh(
        self, plan: _plan.Plan, names: _plan.NamesByIndex
    ) -> dict[int, Remembered] | None:
        """:meth:`_by_graph_stamp`, whose errors leave the jobs to be decided one by one.

        There, a check that fails means the job runs: a shortcut never stops a run.
        """
        try:
            return self._by_graph_stamp(plan, names)
        except Exception:
            return None

    def _by_graph_stamp(
        self, plan: _plan.Plan, view: _plan.NamesByIndex
    ) -> dict[int, Remembered] | None:
        """Every job, when the graph snapshot kept for this graph matches (``graphstamp.py``).

        Else None: the jobs are then decided one at a time, without making again the
        materials made here.
        """
        rec, shape = self.rec, self.rec.shape
        if not self._whole or shape is None or self.force:
            return None
        snapshot = rec.graph_snapshot()
        if snapshot is None:
            return None
        made = _fingerprints().materials_of(plan.jobs, view.frozen())
        self._made = dict(enumerate(made))
        materials = _graphstamp.complete(made)
        if materials is None or _graphstamp.graph_stamp(shape, materials) != snapshot.stamp:
            return None
        missing_outputs = _fingerprints().missing_outputs
        if any(job.outputs and missing_outputs(job) for job in plan.jobs):
            return None
        known = rec.remembered_in(snapshot)
        if known is None:
            return None  # a result that cannot be read back: decided job by job
        self._matched = snapshot.stamp
        return dict(enumerate(known))

    def _graph_snapshot_to_keep(self) -> tuple[str, list[_graphstamp.Ended]] | None:
        """The graph stamp this run leaves for the next, with what each job ended with.

        None when it leaves none (see ``graphstamp.py``). Only a run whose every job is
        cached and ended well, each with the material its stamp was made of and a known
        success, has one; and only when every result a job requires digests the same in
        any process (no object digested by its pickle, which may follow the hash seed). A
        run that found the graph unchanged leaves the snapshot it matched as it is. Any
        error here means no snapshot, never a failed run.
        """
        try:
            return self._graph_snapshot_made()
        except Exception:
            return None

    def _graph_snapshot_made(self) -> tuple[str, list[_graphstamp.Ended]] | None:
        if self._matched is not None:
            return None  # nothing changed: the snapshot it matched still holds
        plan, rec, shape = self.plan, self.rec, self.rec.shape
        if not self._whole or shape is None:  # (as decided when the run started)
            return None
        if self._unportable:  # (every required result was digested: each dependent has a stamp)
            return None
        states, prints, sources = self.core.state, self._prints, self._result_runs
        ended = []
        for i in range(len(plan.jobs)):
            print_ = prints.get(i)
            if print_ is None or print_[0] is None or print_[2] is None:
                return None
            state = states[i]
            if state is _SUCCEEDED and print_[1] is not None:
                made_by = rec.run_id
            elif state is _UP_TO_DATE and i in sources:
                made_by = sources[i]
            else:
                return None
            if made_by is None:
                return None
            ended.append(_graphstamp.Ended(print_[0], print_[2], made_by))
        materials = _graphstamp.complete(list(map(self._materials.get, range(len(plan.jobs)))))
        return None if materials is None else (_graphstamp.graph_stamp(shape, materials), ended)

    def _give_fresh_results(self, now: float) -> None:
        """Give the jobs found up to date at the start their results (the core ends them)."""
        fresh = self._fresh
        if not fresh:
            return
        # _up_to_date_job for each, a pass per field (a whole unchanged graph comes here).
        self._sources.update(fresh)
        known_ones = fresh.values()
        self._result_runs.update(zip(fresh, map(_RUN_OF, known_ones), strict=True))
        self._prints.update(zip(fresh, map(_print_of, known_ones), strict=True))  # as _up_to_date's
        for job, known in zip(map(self.jobs.__getitem__, fresh), known_ones, strict=True):
            job._result = known.result
            job._t0 = job._t1 = now

    def _known_result(self, r: int, fresh: dict[int, Remembered]) -> Any:
        """The result of a job known done before the run starts (up to date or resumed)."""
        known = fresh.get(r)
        return known.result if known is not None else self._resumed[r].result

    def _skip(self, i: int, job: Job, known: Remembered) -> bool:
        """End a cached job as UP_TO_DATE with its remembered result."""
        self._up_to_date_job(i, job, known, _now())
        self.core.finish(i, _UP_TO_DATE)
        return True

    def _up_to_date_job(self, i: int, job: Job, known: Remembered, now: float) -> None:
        """Give an up-to-date job its remembered result (the core ends it).

        Its end refers to that success rather than keeping a copy (see ``end_batch``).
        """
        job._result = known.result
        job._t0 = job._t1 = now
        self._sources[i] = known
        self._result_runs[i] = known.run_id  # (sources go once recorded: see end_batch)

    def _digest(self, r: int) -> str | None:
        if r not in self._digests:
            if self.core.state[r] in (_SUCCEEDED, _UP_TO_DATE):
                self._keep_digest(r, self.jobs[r]._result)
            else:
                self._digests[r] = None
        return self._digests[r]

    def _keep_digest(self, r: int, result: Any) -> None:
        """Digest a requirement's result, noting one whose digest may differ elsewhere."""
        self._digests[r], portable = _fingerprints().digest_portably(result)
        if not portable:
            self._unportable = True  # no graph snapshot: see _graph_snapshot_to_keep


def _any_cached(jobs: list[Job]) -> bool:
    """Whether some job is cached (``fingerprint.is_cached``), a pass in C per option."""
    return any(map(_CACHE, jobs)) or any(map(_INPUTS, jobs)) or any(map(_OUTPUTS, jobs))


_CACHE, _INPUTS, _OUTPUTS = map(attrgetter, ("cache", "inputs", "outputs"))


@functools.cache
def _fingerprints() -> ModuleType:
    """The fingerprint module, imported by the first run that has cached jobs.

    Once: an import statement in a per-job path costs a microsecond each time.
    """
    from . import fingerprint

    return fingerprint
