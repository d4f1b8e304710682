"""The graph stamp: an unchanged graph known up to date by one comparison.

A durable run whose every job is cached and ended well keeps a *graph stamp* in its
record: one digest of the graph's shape (``recorder.graph_digest``), of each job's
material (what its stamp covers but its requirements' results, ``fingerprint.material_of``)
and of the success each job ended with (its fingerprint, its stamp, and the run that
produced its result). The next run of the scheduler computes the same digest from its
graph and from the successes it reads anyway. When it equals the newest graph stamp kept,
every job ends ``UP_TO_DATE`` at once, with no stamp made and matched per job.

Why this is the per-job decision and not a second opinion: equal digests mean the same
jobs with the same requirements, each job with the same material, and each job's success
the very row the earlier run ended with. In that run, each job's stamp was made from that
material and from its requirements' results, which are the results those rows hold. So
each job's stamp now would be the one its success keeps, and the per-job check would find
every job up to date. Anything else (a file touched, a changed argument, a success written
by another run since) changes the digest, and the run decides job by job as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

from .job import CORO_FUNCTION, FUNCTION, SHELL

if TYPE_CHECKING:
    from .plan import Plan
    from .store.base import Success

_STAMPED_KINDS = frozenset({FUNCTION, CORO_FUNCTION, SHELL})  # kinds with a material


def eligible(plan: Plan) -> bool:
    """Whether a graph stamp can stand for this plan.

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


def graph_stamp(shape: str, materials: Sequence[str], kept: Sequence[str]) -> str:
    """The digest of a graph's ``shape``, its jobs' ``materials`` and ``kept`` successes.

    Both lists are in the plan's job order; ``kept`` as :func:`kept_text` gives them.
    """
    sha = hashlib.sha256(shape.encode())
    sha.update(b"\x1d")
    sha.update("\x1e".join(materials).encode())
    sha.update(b"\x1d")
    sha.update("\x1e".join(kept).encode())
    return sha.hexdigest()


def kept_text(fingerprint: str, stamp: str, run_id: str) -> str:
    """What a graph stamp takes of a success: its fingerprint, stamp and result's run."""
    return f"{fingerprint}\x00{stamp}\x00{run_id}"


def kept_of(successes: Mapping[str, Success], names: Sequence[str]) -> list[str] | None:
    """:func:`kept_text` of the stored successes of jobs ``names``, in order.

    None when a job has no success, or one that cannot be part of a graph stamp (kept
    without its stamp, parts or run).
    """
    kept: list[str] = []
    append, get = kept.append, successes.get
    for name in names:
        success = get(name)
        if success is None or success.parts is None:
            return None
        stamp, run_id = success.stamp, success.run_id
        if stamp is None or run_id is None:
            return None
        append(f"{success.fingerprint}\x00{stamp}\x00{run_id}")  # kept_text, inline
    return kept


def complete(materials: list[str | None]) -> list[str] | None:
    """``materials``, or None when a job has none (no graph stamp can be made then)."""
    return None if None in materials else cast("list[str]", materials)
