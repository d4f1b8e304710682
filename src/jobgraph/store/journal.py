"""What the database stores share: journal batches, new successes, lease verdicts.

A flush is one journal row holding its batch of starts and ends (a row per job would
cost more than the jobs). A batch is kept by columns: most of a batch's ends share their
state, and most of their fields are empty, so a column of equal values is kept once and a
column of mostly empty ones as the few rows that have a value. These helpers pack and unpack
such rows and decide about leases, so that each store keeps only its SQL.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import StoreError
from .base import PARTS_UNREAD, EndBatch, GraphSnapshot, JobEnd, JobStart, RunLockedError

PICKLE_PROTOCOL = 4  # readable by every supported Python
# The tables of the current schema, in both.
TABLES = ("meta", "runs", "journal", "successes", "output", "generations", "graph_snapshots")
# What the SQL stores select of a success for Store.successes, {parts} being "parts", or
# this for Store.successes_unparted (the parts not read, but told from none kept).
SUCCESS_COLUMNS = "name, fingerprint, result, {parts}, stamp, run_id"
UNREAD_PARTS = f"CASE WHEN parts IS NULL THEN NULL ELSE '{PARTS_UNREAD}' END"


# A packed batch: (_COLUMNS, rows, columns), each column one of
#   (_SAME, value): every row holds value;
#   (_SOME, {row: value}): the rows not named hold None;
#   (_EACH, [value, ...]): one value per row.
# A journal row written before batches were kept by columns is a list of tuples.
_COLUMNS, _SAME, _SOME, _EACH = "columns/1", 0, 1, 2


def pack(entries: Sequence[tuple[Any, ...]]) -> bytes:
    """One batch of starts or ends, as stored in a journal row."""
    if not entries:
        return pickle.dumps((_COLUMNS, 0, []), protocol=PICKLE_PROTOCOL)
    rows = len(entries)
    held = entries.columns if isinstance(entries, EndBatch) else zip(*entries, strict=True)
    columns = [_column(values, rows) for values in held]
    return pickle.dumps((_COLUMNS, rows, columns), protocol=PICKLE_PROTOCOL)


def _column(values: Sequence[Any], rows: int) -> tuple[int, Any]:
    first = values[0]
    # Counted by ==, so only for values that equal nothing of another type (1 == 1.0),
    # or, for numbers, once all are known to be of one type.
    if (first is None or first == () or type(first) in _ATOMS) and values.count(first) == rows:
        return _SAME, first
    if type(first) in _NUMBERS and values.count(first) == rows and _one_type(values):
        return _SAME, first  # attempts of one number; times of jobs ended at once
    empty = values.count(None)
    if empty * 4 >= rows * 3:
        return _SOME, {k: v for k, v in enumerate(values) if v is not None}
    return _EACH, values


def _one_type(values: Sequence[Any]) -> bool:
    kinds = set(map(type, values))
    return len(kinds) == 1


_ATOMS, _NUMBERS = (str, bytes), (int, float)


def _unpack(packed: bytes) -> list[tuple[Any, ...]]:
    """The entries of one journal row, as tuples of their fields."""
    batch = pickle.loads(packed)
    if isinstance(batch, list):  # the older layout: one tuple per entry
        return batch
    tag, rows, columns = batch
    if tag != _COLUMNS:
        raise StoreError(f"a journal row of an unknown layout ({tag!r}): upgrade jobgraph")
    spread = [_spread(column, rows) for column in columns]
    return list(zip(*spread, strict=True)) if spread else []


def _spread(column: tuple[int, Any], rows: int) -> Sequence[Any]:
    kind, held = column
    if kind == _SAME:
        return [held] * rows
    if kind == _SOME:
        return [held.get(k) for k in range(rows)]
    return held  # type: ignore[no-any-return]


def ends_of(batches: Iterable[bytes]) -> dict[str, JobEnd]:
    """The job ends of a run's journal rows, in order; a later end (a resume) wins."""
    ends: dict[str, JobEnd] = {}
    for packed in batches:
        for fields in _unpack(packed):
            end = JobEnd(*fields)
            ends[end.name] = end
    return ends


def starts_of(batches: Iterable[bytes]) -> list[JobStart]:
    """The attempt starts of a run's journal rows, in order."""
    return [JobStart(*fields) for packed in batches for fields in _unpack(packed)]


def new_successes(ends: Sequence[JobEnd], run_id: str) -> list[tuple[Any, ...]]:
    """``(name, fingerprint, result, parts, run_id, stamp)`` of what a batch makes new.

    That is a success with a fingerprint, or an UP_TO_DATE end that carries parts: its
    inputs were touched but not changed, and their new size and mtime are kept so that the
    next run need not hash them again (the success keeps the run that produced its
    result). Other UP_TO_DATE ends refer to the stored success.
    """
    if isinstance(ends, EndBatch) and ends.columns[_FINGERPRINT].count(None) == len(ends):
        # No end with a fingerprint: a run without cached jobs, or an up-to-date rerun's
        # (its ends refer to the successes, without their fingerprints). No row built.
        return []
    return [
        (e.name, e.fingerprint, e.result, e.parts, e.result_of or run_id, e.stamp)
        for e in ends
        if e.fingerprint is not None and (e.state == "SUCCEEDED" or e.parts is not None)
    ]


_FINGERPRINT = JobEnd._fields.index("fingerprint")


def check_lease(
    run_id: str,
    holder: str | None,
    until: float | None,
    owner: str,
    takeover: str | None,
    now: float,
) -> None:
    """Raise :class:`RunLockedError` if a live lease of someone else holds the run."""
    if lease_live(holder, until, now) and holder not in (owner, takeover):
        assert until is not None
        raise RunLockedError(
            f"run {run_id} is being run by {holder} (lease valid for another "
            f"{until - now:.0f}s); wait for it to end, or for its lease to expire",
            holder,
        )


def lease_live(holder: str | None, until: float | None, now: float) -> bool:
    """Whether a run's lease is held and not expired at ``now``."""
    return holder is not None and until is not None and until > now


def run_gone(run_id: str) -> RunLockedError:
    """The error of a runner whose run was deleted under it (pruned while its lease lapsed)."""
    return RunLockedError(f"run {run_id} is no longer in the store (deleted); this runner stops")


def lost_lease(run_id: str) -> RunLockedError:
    """The error of a runner whose lease another process took."""
    return RunLockedError(
        f"run {run_id}: the lease was lost (another process took the run over); this runner stops"
    )


def snapshot_row(
    scheduler: str, graph_digest: str, snapshot: GraphSnapshot, run_id: str
) -> tuple[Any, ...]:
    """A ``graph_snapshots`` row, in its columns' order (both stores' schema 7)."""
    writes, token = snapshot.generation
    return (scheduler, graph_digest, snapshot.stamp, writes, token, snapshot.payload, run_id)
