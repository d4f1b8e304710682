"""Journal rows: a batch packed by columns reads back as the entries that went in."""

from __future__ import annotations

import pickle

import pytest

from jobgraph.store import EndBatch, JobEnd, JobStart, MemoryStore, RunInfo
from jobgraph.store.journal import ends_of, new_successes, pack, starts_of


def test_a_batch_reads_back_whatever_its_columns_hold():
    result = pickle.dumps([1, 2])
    ends = [
        JobEnd("a", "SUCCEEDED", 1, 1.0, 2.0, result=result, requires=("x",)),
        JobEnd("b", "FAILED", 2, 1.5, 2.5, error="E", returncode=3, requires=("a", "x")),
        JobEnd("c", "SKIPPED", skipped_because=("b",)),
        JobEnd("d", "SUCCEEDED", 1, 3.0, 4.0, result=result, fingerprint="f", parts="{}"),
    ]
    assert list(ends_of([pack(ends)]).values()) == ends


def test_columns_of_one_value_and_of_mostly_empty_values_are_kept_short():
    # 40 ends of one state; one error among them; times differ from end to end.
    ends = [JobEnd(f"j{k}", "SUCCEEDED", 1, float(k), k + 0.5) for k in range(40)]
    ends[7] = ends[7]._replace(error="Traceback ...", note="retried")
    packed = pack(ends)
    _, rows, columns = pickle.loads(packed)
    kinds = dict(zip(JobEnd._fields, columns, strict=True))
    assert rows == 40
    assert kinds["state"] == (0, "SUCCEEDED") and kinds["requires"] == (0, ())  # kept once
    assert kinds["error"] == (1, {7: "Traceback ..."}) and kinds["result"] == (0, None)
    assert kinds["started_at"][0] == 2 and kinds["name"][0] == 2  # one value per row
    assert list(ends_of([packed]).values()) == ends


def test_values_equal_to_others_of_another_type_are_kept_per_row():
    # 1 == 1.0 == True: only values that equal nothing of another type are kept once.
    starts = [JobStart("a", 1, 2.0), JobStart("b", True, 2)]
    _, _, columns = pickle.loads(pack(starts))
    assert columns[1][0] == 2 and columns[2][0] == 2
    back = starts_of([pack(starts)])
    assert [(type(s.attempt), type(s.started_at)) for s in back] == [(int, float), (bool, int)]


def test_a_column_of_one_number_of_one_type_is_kept_once():
    # Jobs found up to date at a run's start end at one time, with no attempt.
    ends = [JobEnd(f"j{k}", "UP_TO_DATE", 0, 5.0, 5.0, fingerprint=f"f{k}") for k in range(30)]
    _, _, columns = pickle.loads(pack(ends))
    kinds = dict(zip(JobEnd._fields, columns, strict=True))
    assert kinds["attempts"] == (0, 0) and kinds["started_at"] == (0, 5.0)
    back = list(ends_of([pack(ends)]).values())
    assert back == ends and type(back[0].attempts) is int and type(back[0].ended_at) is float
    mixed = [JobStart("a", 1, 2.0), JobStart("b", 1, 2.0), JobStart("c", True, 2)]
    _, _, columns = pickle.loads(pack(mixed))
    assert columns[1][0] == 2 and columns[2][0] == 2  # 1 == True, 2.0 == 2: per row
    assert [type(s.attempt) for s in starts_of([pack(mixed)])] == [int, int, bool]


def test_an_empty_batch_and_a_row_of_the_older_layout_read_back():
    old = pickle.dumps([tuple(JobStart("a", 1, 2.0))], protocol=4)  # one tuple per entry
    assert starts_of([pack([]), old]) == [JobStart("a", 1, 2.0)]
    older_end = pickle.dumps([tuple(JobEnd("a", "SUCCEEDED", 1))], protocol=4)
    assert ends_of([older_end]) == {"a": JobEnd("a", "SUCCEEDED", 1)}


def test_a_later_end_of_the_same_job_wins():
    first = pack([JobEnd("a", "FAILED", 1)])
    second = pack([JobEnd("a", "SUCCEEDED", 2)])
    assert ends_of([first, second])["a"].state == "SUCCEEDED"


def batch_of(ends):
    return EndBatch([list(column) for column in zip(*ends, strict=True)])


def test_an_end_batch_reads_as_its_rows():
    ends = [JobEnd("a", "SUCCEEDED", 1, 1.0, 2.0), JobEnd("b", "FAILED", 2, error="E")]
    batch = batch_of(ends)
    assert len(batch) == 2 and list(batch) == ends
    assert (batch[1], batch[-1], batch[0:1]) == (ends[1], ends[1], ends[:1])
    assert batch == ends and batch != ends[:1] and batch == batch_of(ends)
    joined = EndBatch.joined([batch, batch_of(ends[:1]), EndBatch.empty()])
    assert joined == [*ends, ends[0]]
    assert EndBatch.joined([batch]) is batch and EndBatch.joined([]) == []
    assert list(EndBatch.empty()) == [] and len(EndBatch.empty()) == 0
    assert list(ends_of([pack(batch)]).values()) == ends


def test_an_end_batch_needs_every_column_at_one_length():
    fields = len(JobEnd._fields)
    with pytest.raises(ValueError, match=f"{fields} columns of one length"):
        EndBatch([["a"], ["SUCCEEDED"]])
    columns = [["a"]] * (fields - 1) + [[None, None]]
    with pytest.raises(ValueError, match="one length"):
        EndBatch(columns)


def test_a_store_without_columns_takes_a_batch_as_its_rows():
    store = MemoryStore()
    store.create_run(RunInfo(run_id="r", scheduler="s", started_at=1.0))
    ends = [JobEnd("a", "SUCCEEDED", 1, fingerprint="f", parts="{}"), JobEnd("b", "SKIPPED")]
    store.record("r", [], batch_of(ends))
    assert store.job_ends("r") == {"a": ends[0], "b": ends[1]}
    assert store.last_success("s", "a").fingerprint == "f"


@pytest.mark.parametrize("as_batch", [True, False], ids=["by columns", "by rows"])
def test_new_successes_are_the_successes_and_the_up_to_date_ends_with_parts(as_batch):
    unchanged = [JobEnd(f"u{k}", "UP_TO_DATE", fingerprint=f"f{k}") for k in range(3)]
    touched = JobEnd("t", "UP_TO_DATE", fingerprint="ft", parts="{}", stamp="st")
    success = JobEnd("s", "SUCCEEDED", 1, result=b"r", fingerprint="fs", parts="{}")
    plain = JobEnd("p", "SUCCEEDED", 1)  # not cached: no fingerprint

    def new(ends):
        return new_successes(batch_of(ends) if as_batch else ends, "run")

    assert new(unchanged) == [] and new([plain]) == []  # an up-to-date rerun's batch
    assert new([*unchanged, touched, plain]) == [("t", "ft", None, "{}", "run", "st")]
    assert new([success, *unchanged]) == [("s", "fs", b"r", "{}", "run", None)]


def test_a_journal_row_of_fourteen_columns_reads_back_without_a_result_source():
    # Rows written before ends could refer to the run that made their result.
    older = pack(
        [("a", "UP_TO_DATE", 1, 1.0, 2.0, None, None, b"x", "f", (), None, None, (), None)]
    )
    (end,) = ends_of([older]).values()
    assert end.result == b"x" and end.result_of is None
