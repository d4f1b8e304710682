"""Journal rows: a batch packed by columns reads back as the entries that went in."""

from __future__ import annotations

import pickle

from jobgraph.store import JobEnd, JobStart
from jobgraph.store.journal import ends_of, pack, starts_of


def test_a_batch_reads_back_whatever_its_columns_hold():
    result = pickle.dumps([1, 2])
    ends = [
        JobEnd("a", "SUCCEEDED", 1, 1.0, 2.0, result=result, requires=("x",)),
        JobEnd("b", "FAILED", 2, 1.5, 2.5, error="E", returncode=3, requires=("a", "x")),
        JobEnd("c", "SKIPPED", skipped_because=("b",)),
        JobEnd("d", "SUCCEEDED", 1, 3.0, 4.0, result=result, fingerprint="f", parts="{}"),
    ]
    assert list(ends_of([pack(ends)]).values()) == ends


def test_columns_of_equal_values_and_of_mostly_empty_values_read_back():
    # 40 ends: one state, one attempt count (each kept once); one error among them.
    ends = [JobEnd(f"j{k}", "SUCCEEDED", 1, float(k), k + 0.5) for k in range(40)]
    ends[7] = ends[7]._replace(error="Traceback ...", note="retried")
    assert list(ends_of([pack(ends)]).values()) == ends


def test_equal_but_different_values_are_not_merged_into_one():
    # 1 == 1.0 == True: a column is kept as one value only when that cannot change a row.
    starts = [JobStart("a", 1, 1.0), JobStart("b", 1, 1)]
    assert [type(s.started_at) for s in starts_of([pack(starts)])] == [float, int]


def test_an_empty_batch_and_a_row_of_the_older_layout_read_back():
    old = pickle.dumps([tuple(JobStart("a", 1, 2.0))], protocol=4)  # one tuple per entry
    assert starts_of([pack([]), old]) == [JobStart("a", 1, 2.0)]
    older_end = pickle.dumps([tuple(JobEnd("a", "SUCCEEDED", 1))], protocol=4)
    assert ends_of([older_end]) == {"a": JobEnd("a", "SUCCEEDED", 1)}


def test_a_later_end_of_the_same_job_wins():
    first = pack([JobEnd("a", "FAILED", 1)])
    second = pack([JobEnd("a", "SUCCEEDED", 2)])
    assert ends_of([first, second])["a"].state == "SUCCEEDED"
