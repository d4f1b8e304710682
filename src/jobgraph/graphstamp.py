"""The graph snapshot: an unchanged graph known up to date by one comparison.

A durable run whose every job is cached and ended well keeps a *graph snapshot*: its
*graph stamp*, one digest of the graph's shape (``recorder.graph_digest``) and of each
job's material (what its stamp covers but its requirements' results,
``fingerprint.material_of``), with a copy of the successes its jobs ended with, taken at
the scheduler's *success generation* (``Store.success_generation``: every write of one of
its successes counts one, with a token of its own, and drops its snapshots, whoever makes
it: the database's triggers count the writes of other code). The next run of that graph reads the
snapshot, which the store gives only while that count stays, makes the materials again and
compares the one digest: when it matches, every job ends ``UP_TO_DATE`` at once with the
successes of the snapshot, with no stamp made per job and no success read from its table.

Why this is the per-job decision and not a second opinion: the snapshot holds while no
success of the scheduler was written since, so its copy is what the table holds. Equal
stamps mean the same jobs with the same requirements, each with the same material. In the
run that kept it, each job's stamp was made from that material and from its requirements'
results, which are the results the copy holds, and each job's success is the one it
ended with (checked job by job before it is kept). So each job's stamp now would be the
one its success keeps, and the per-job check would find every job up to date. Anything
else (a file touched, a changed argument, a success written by another run since) changes
the stamp or drops the snapshot, and the run decides job by job as before.

The copy is taken from the run's own view of the successes (read as it starts, then each
of its own writes), never read back: the view is the table's when the generation moved by
exactly one at each of the run's own writes of successes, and by none else.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from .job import CORO_FUNCTION, FUNCTION, SHELL

if TYPE_CHECKING:
    from .plan import Plan
    from .store.base import Success

_STAMPED_KINDS = frozenset({FUNCTION, CORO_FUNCTION, SHELL})  # kinds with a material
_TAG = "graph-snapshot/1"
_PROTOCOL = 4  # readable by every supported Python


class Ended(NamedTuple):
    """What a job of a run that may keep a snapshot ended with: its success must be this."""

    fingerprint: str
    stamp: str  # as its success keeps it (fingerprint.sealed)
    run_id: str  # the run that produced its result


def eligible(plan: Plan) -> bool:
    """Whether a graph snapshot can stand for this plan.

    That needs every job cached, of a kind that has a stamp and run when its requirements
    succeed, and no requirement outside the plan.
    """
    if plan.external:
        return False
    for job in plan.jobs:
        if job._kind not in _STAMPED_KINDS or job.run_if != "success":
            return False
        if not (job.cache or job.inputs or job.outputs):
            return False
    return True


def graph_stamp(shape: str, materials: Sequence[str]) -> str:
    """The digest of a graph's ``shape`` and of its jobs' ``materials`` (in the plan's order)."""
    sha = hashlib.sha256(shape.encode())
    sha.update(b"\x1d")
    sha.update("\x1e".join(materials).encode())
    return sha.hexdigest()


def complete(materials: list[str | None]) -> list[str] | None:
    """``materials``, or None when a job has none (no graph stamp can be made then)."""
    return None if None in materials else cast("list[str]", materials)


def copied(ended: Sequence[Ended], successes: Sequence[Success | None]) -> bytes | None:
    """The snapshot's copy of ``successes`` (the jobs' in order), if each is the one ended.

    None when a job has no success, or one other than the one it ended with, or one kept
    without its stamp or parts: no snapshot then.
    """
    for end, success in zip(ended, successes, strict=True):
        if success is None or success.parts is None:
            return None
        if (success.fingerprint, success.stamp, success.run_id) != end:
            return None
    runs = [end.run_id for end in ended]
    one_run = len(set(runs)) == 1
    columns = (
        [end.fingerprint for end in ended],
        [end.stamp for end in ended],
        runs[0] if one_run else runs,  # most often, every result is one run's
        [cast("Success", success).result for success in successes],
    )
    return pickle.dumps((_TAG, len(ended), one_run, columns), protocol=_PROTOCOL)


def columns_of(payload: bytes, jobs: int) -> tuple[list[str], list[str], Sequence[str], list[Any]]:
    """The copy's fingerprints, stamps, result runs and pickled results, a column each.

    A ``ValueError`` when the payload is not a copy of ``jobs`` successes (the run then
    decides its jobs one at a time).
    """
    tag, count, one_run, columns = pickle.loads(payload)
    if tag != _TAG or count != jobs:
        raise ValueError(f"not a graph snapshot of {jobs} jobs")
    fingerprints, stamps, runs, results = columns
    runs = [runs] * count if one_run else runs
    if any(len(column) != count for column in (fingerprints, stamps, runs, results)):
        raise ValueError(f"not a graph snapshot of {jobs} jobs")
    return fingerprints, stamps, runs, results
