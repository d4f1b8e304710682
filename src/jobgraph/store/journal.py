"""What the database stores share: journal batches, new successes, lease verdicts.

A flush is one journal row holding its batch of starts and ends pickled as plain tuples
(a row per job would cost more than the jobs). These helpers pack and unpack such rows and
decide about leases, so that each store keeps only its SQL.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from typing import Any

from .base import JobEnd, JobStart, RunLockedError

PICKLE_PROTOCOL = 4  # readable by every supported Python
TABLES = ("meta", "runs", "journal", "successes", "output")  # of the current schema, in both


def pack(entries: Sequence[tuple[Any, ...]]) -> bytes:
    """One batch of starts or ends, as stored in a journal row."""
    return pickle.dumps(list(map(tuple, entries)), protocol=PICKLE_PROTOCOL)


def ends_of(batches: Iterable[bytes]) -> dict[str, JobEnd]:
    """The job ends of a run's journal rows, in order; a later end (a resume) wins."""
    ends: dict[str, JobEnd] = {}
    for packed in batches:
        for fields in pickle.loads(packed):
            end = JobEnd(*fields)
            ends[end.name] = end
    return ends


def starts_of(batches: Iterable[bytes]) -> list[JobStart]:
    """The attempt starts of a run's journal rows, in order."""
    return [JobStart(*fields) for packed in batches for fields in pickle.loads(packed)]


def new_successes(ends: Sequence[JobEnd], run_id: str) -> list[tuple[Any, ...]]:
    """``(name, fingerprint, result, parts, run_id, stamp)`` of what a batch makes new.

    That is a success with a fingerprint, or an UP_TO_DATE end that carries parts: its
    inputs were touched but not changed, and their new size and mtime are kept so that the
    next run need not hash them again. Other UP_TO_DATE ends match the stored success.
    """
    return [
        (e.name, e.fingerprint, e.result, e.parts, run_id, e.stamp)
        for e in ends
        if e.fingerprint is not None and (e.state == "SUCCEEDED" or e.parts is not None)
    ]


def check_lease(
    run_id: str,
    holder: str | None,
    until: float | None,
    owner: str,
    takeover: str | None,
    now: float,
) -> None:
    """Raise :class:`RunLockedError` if a live lease of someone else holds the run."""
    live = holder is not None and until is not None and until > now
    if live and holder not in (owner, takeover):
        assert until is not None
        raise RunLockedError(
            f"run {run_id} is being run by {holder} (lease valid for another "
            f"{until - now:.0f}s); wait for it to end, or for its lease to expire",
            holder,
        )


def lost_lease(run_id: str) -> RunLockedError:
    """The error of a runner whose lease another process took."""
    return RunLockedError(
        f"run {run_id}: the lease was lost (another process took the run over); this runner stops"
    )
