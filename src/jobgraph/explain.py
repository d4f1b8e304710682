"""Why a job would run: the make-style explanation of a cached job's next run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import fingerprint as _fp
from .recorder import Recorder

if TYPE_CHECKING:
    from .job import Job
    from .scheduler import Scheduler

UP_TO_DATE = "up to date"


class Explanation(list[str]):
    """The reasons a job would run, in words; ``["up to date"]`` when it would not."""

    @property
    def up_to_date(self) -> bool:
        """True when the job would be skipped."""
        return list(self) == [UP_TO_DATE]

    def __str__(self) -> str:
        return "; ".join(self)


def explain(scheduler: Scheduler, job: Job | str, force: Any = None) -> Explanation:
    """Explain ``job`` of ``scheduler`` against what its store (or this process) remembers."""
    plan = scheduler.plan()
    target = plan.index(job)
    recorder = Recorder(scheduler, scheduler.store)
    try:
        needed = {target} | _upstream(plan.reqs, target)
        verdicts: dict[int, Explanation] = {}
        digests: dict[int, str | None] = {}
        for i in plan.order:
            if i in needed:
                verdicts[i] = _verdict(plan, i, recorder, verdicts, digests, force)
        return verdicts[target]
    finally:
        recorder.close()


def _upstream(reqs: Any, start: int) -> set[int]:
    from .graph import reachable

    return reachable([start], reqs)


def _verdict(
    plan: Any,
    i: int,
    recorder: Recorder,
    verdicts: dict[int, Explanation],
    digests: dict[int, str | None],
    force: Any,
) -> Explanation:
    job = plan.jobs[i]
    known = recorder.remembered(job.name) if _fp.is_cached(job) else None
    digests[i] = _fp.try_digest(known.result) if known is not None else None
    if not _fp.is_cached(job):
        return Explanation(
            [
                "not cached: runs every time (give it cache=True, inputs or "
                "outputs to skip it when unchanged)"
            ]
        )
    if force is True or (isinstance(force, (list, tuple, set)) and job.name in force):
        return Explanation(["forced"])
    running = [plan.jobs[r].name for r in plan.reqs[i] if not verdicts[r].up_to_date]
    if running:
        return Explanation(
            [f"requirement {name!r} runs first (decided when it ends)" for name in running]
        )
    requires = {plan.jobs[r].name: digests[r] for r in plan.reqs[i]}
    before = recorder.parts(job.name, known) if known else None
    parts = _fp.parts_of(job, requires, before)
    reasons = _fp.differences(parts, before)
    reasons += [f"output {path} missing" for path in _fp.missing_outputs(job)]
    return Explanation(reasons or [UP_TO_DATE])
