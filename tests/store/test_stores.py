"""The store contract, run against every implementation."""

from __future__ import annotations

import pickle
import sqlite3
import threading

import pytest

from jobgraph.errors import StoreError
from jobgraph.store import (
    GraphSnapshot,
    JobEnd,
    JobStart,
    MemoryStore,
    RunInfo,
    RunLockedError,
    SQLiteStore,
    open_store,
)
from jobgraph.store.base import NO_GENERATION, PARTS_UNREAD, SAME_RESULT
from jobgraph.store.sqlite import SCHEMA_VERSION
from store import pg


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "postgres":
        with pg.fresh_schema() as url:
            made = open_store(url)
            yield made
            made.close()
        return
    made = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield made
    made.close()


def run(store, run_id="r1", scheduler="build", t=1.0):
    store.create_run(RunInfo(run_id=run_id, scheduler=scheduler, started_at=t))
    return run_id


def test_runs_are_listed_newest_first_and_found_by_id_or_last(store):
    run(store, "r1")
    run(store, "r2")
    run(store, "x1", scheduler="other")
    assert [r.run_id for r in store.runs()] == ["x1", "r2", "r1"]
    assert store.find_run("build", "last").run_id == "r2"
    assert store.find_run("build", "r1").scheduler == "build"
    assert store.find_run("build", "nope") is None
    assert store.find_run("missing", "last") is None


def test_each_write_of_a_schedulers_successes_counts_and_drops_its_graph_snapshots(store):
    for run_id, scheduler in [("r1", "b"), ("r2", "b"), ("x1", "other")]:
        store.create_run(RunInfo(run_id, scheduler, 1.0))
        store.acquire(run_id, "me", 30.0, 1.0)
    assert store.success_generation("b") == NO_GENERATION  # nothing written yet
    assert store.record("r1", [], [JobEnd("a", "FAILED")]) is None  # no success made
    success = JobEnd("a", "SUCCEEDED", fingerprint="f", parts="{}", stamp="s")
    first = store.record("r1", [], [success])
    assert first.writes == 1 and first == store.success_generation("b") and first.token
    snap = GraphSnapshot("stamp", first, b"payload")
    store.keep_graph_snapshot("b", "g1", snap, "r1", "me")
    store.keep_graph_snapshot("b", "g2", snap._replace(stamp="other"), "r2", "me")
    store.keep_graph_snapshot("b", "g3", snap, "r2", "someone else")  # not the lease's holder
    store.keep_graph_snapshot("b", "g4", snap._replace(generation=NO_GENERATION), "r1", "me")
    lost = snap._replace(generation=first._replace(token="another write's"))
    store.keep_graph_snapshot("b", "g5", lost, "r1", "me")  # the count alone is not enough
    assert store.graph_snapshot("b", "g1") == snap
    assert store.graph_snapshot("b", "g2") == snap._replace(stamp="other")
    for digest in ("g3", "g4", "g5"):
        assert store.graph_snapshot("b", digest) is None
    assert store.graph_snapshot("other", "g1") is None
    store.record("x1", [], [success])  # another scheduler's success: b's snapshots hold
    assert store.graph_snapshot("b", "g1") == snap and store.success_generation("other").writes == 1
    store.release("r1", "me")
    store.delete_runs(["r1"], now=0.0)  # the copy is the successes' state, not history
    assert store.graph_snapshot("b", "g1") == snap
    second = store.record("r2", [], [success._replace(fingerprint="f2")])
    assert second.writes == 2 and second.token != first.token
    assert store.graph_snapshot("b", "g1") is None and store.graph_snapshot("b", "g2") is None


# Writes of successes as other code makes them: an older jobgraph that had the store open
# when it was migrated (schema 6 wrote no written_by), or a hand.
_EDITS = {
    "sqlite": [
        "UPDATE successes SET stamp = NULL WHERE name = 'a'",
        "INSERT OR REPLACE INTO successes (scheduler, name, fingerprint, result, parts, "
        "run_id) VALUES ('b', 'a', 'f2', NULL, '{}', 'r0')",
        "DELETE FROM successes WHERE name = 'c'",
    ],
    "postgres": [
        "UPDATE successes SET stamp = NULL WHERE name = 'a'",
        "INSERT INTO successes (scheduler, name, fingerprint, result, parts, run_id) "
        "VALUES ('b', 'a', 'f2', NULL, '{}', 'r0') ON CONFLICT (scheduler, name) DO UPDATE "
        "SET fingerprint = EXCLUDED.fingerprint, run_id = EXCLUDED.run_id",
        "INSERT INTO successes (scheduler, name, fingerprint, result, parts, run_id) "
        "VALUES ('b', 'new', 'f', NULL, '{}', 'r0')",
        "DELETE FROM successes WHERE name = 'c'",
    ],
}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_success_written_by_other_code_drops_the_graph_snapshots(tmp_path, kind):
    # Triggers count what jobgraph's own writes count themselves.
    if kind == "postgres":
        with pg.fresh_schema() as url:
            import psycopg

            from jobgraph.store.postgres import split_schema

            base, schema = split_schema(url)

            def edit(statement: str) -> None:
                with psycopg.connect(base, autocommit=True) as db:  # its own search path
                    db.execute(f'SET search_path TO "{schema}"')
                    db.execute(statement)

            _foreign_writes(open_store(url), edit, _EDITS[kind])
        return

    def edit_file(statement: str) -> None:
        with sqlite3.connect(tmp_path / "s.db") as db:
            db.execute(statement)

    _foreign_writes(SQLiteStore(tmp_path / "s.db"), edit_file, _EDITS[kind])


def _foreign_writes(store, edit, statements) -> None:
    store.create_run(RunInfo("r1", "b", 1.0))
    store.acquire("r1", "me", 30.0, 1.0)
    success = JobEnd("a", "SUCCEEDED", fingerprint="f", parts="{}", stamp="s")
    counted = store.record("r1", [], [success, success._replace(name="c")])
    snap = GraphSnapshot("stamp", counted, b"payload")
    try:
        for statement in statements:
            store.keep_graph_snapshot("b", "g", snap, "r1", "me")
            assert store.graph_snapshot("b", "g") == snap
            edit(statement)
            assert store.graph_snapshot("b", "g") is None, statement
            now = store.success_generation("b")
            assert now.writes == snap.generation.writes + 1, statement
            snap = snap._replace(generation=now)
    finally:
        store.close()


def test_finish_run_records_the_outcome(store):
    run(store)
    store.finish_run("r1", 5.0, 1, "job 'a' failed: E")
    info = store.find_run("build", "r1")
    assert (info.ended_at, info.exit_code, info.why) == (5.0, 1, "job 'a' failed: E")


def test_job_ends_round_trip_and_successes_keep_fingerprints(store):
    run(store)
    result = pickle.dumps({"rows": 12})
    ends = [
        JobEnd("a", "SUCCEEDED", 1, 1.0, 2.0, result=result, fingerprint="f1"),
        JobEnd("b", "FAILED", 2, 1.0, 2.0, error="Traceback...\nValueError: x", returncode=3),
        JobEnd("c", "SKIPPED", skipped_because=("b",)),
    ]
    store.record("r1", [JobStart("a", 1, 1.0)], ends)
    assert store.job_starts("r1") == [JobStart("a", 1, 1.0)]
    back = store.job_ends("r1")
    assert back["a"].result == result and back["a"].fingerprint == "f1"
    assert back["b"].returncode == 3 and back["b"].attempts == 2
    assert back["c"].skipped_because == ("b",)
    success = store.last_success("build", "a")
    assert (success.fingerprint, success.result) == ("f1", result)
    assert store.last_success("build", "b") is None
    assert store.last_success("other", "a") is None


def test_a_later_success_replaces_the_fingerprint(store):
    run(store, "r1")
    store.record("r1", [], [JobEnd("a", "SUCCEEDED", fingerprint="f1")])
    run(store, "r2")
    store.record("r2", [], [JobEnd("a", "SUCCEEDED", fingerprint="f2")])
    assert store.last_success("build", "a").fingerprint == "f2"


def test_successes_read_without_their_parts_and_the_parts_alone(store):
    run(store)
    ends = [
        JobEnd("a", "SUCCEEDED", fingerprint="fa", parts='{"args": "x"}', stamp="sa"),
        JobEnd("b", "SUCCEEDED", fingerprint="fb"),  # kept without parts
    ]
    store.record("r1", [], ends)
    whole, unparted = store.successes("build"), store.successes_unparted("build")
    assert unparted["a"] == whole["a"]._replace(parts=PARTS_UNREAD) or unparted == whole
    assert unparted["b"].parts is None and unparted["b"] == whole["b"]
    assert store.success_parts("build") == {"a": '{"args": "x"}', "b": None}


def test_an_up_to_date_end_with_parts_refreshes_the_success_and_one_without_does_not(store):
    # A job whose input files were touched (same content, new mtime) is UP_TO_DATE, and its
    # end carries the parts with the new mtimes: they replace the stored ones.
    run(store, "r1")
    store.record("r1", [], [JobEnd("a", "SUCCEEDED", fingerprint="f", parts="{}", stamp="s1")])
    run(store, "r2")
    store.record("r2", [], [JobEnd("a", "UP_TO_DATE", fingerprint="f")])
    assert store.last_success("build", "a").stamp == "s1"
    renewed = JobEnd("a", "UP_TO_DATE", fingerprint="f", parts="{}", stamp="s2", result_of="r1")
    store.record("r2", [], [renewed])
    assert store.last_success("build", "a").stamp == "s2"
    # Still the success of the run that produced its result.
    assert store.successes("build")["a"] == ("f", None, "{}", "s2", "r1")


def test_an_up_to_date_end_reads_back_its_result_from_the_run_that_made_it(store):
    result = pickle.dumps([1, 2, 3])
    run(store, "r1")
    store.record("r1", [], [JobEnd("a", "SUCCEEDED", fingerprint="f", result=result, parts="{}")])
    run(store, "r2")
    refers = JobEnd("a", "UP_TO_DATE", result=SAME_RESULT, result_of="r1")
    store.record("r2", [], [refers])
    assert store.recorded_ends("r2")["a"] == refers  # kept as a reference
    back = store.job_ends("r2")["a"]
    assert (back.result, back.fingerprint, back.result_of) == (result, "f", "r1")
    assert store.last_success("build", "a").run_id == "r1"  # a reference renews nothing

    # A later success (forced: the same fingerprint, another result) replaces the stored
    # one: r2's result is still the one r1 made, read from r1's journal.
    run(store, "r3")
    store.record("r3", [], [JobEnd("a", "SUCCEEDED", fingerprint="f", result=b"x", parts="{}")])
    assert store.job_ends("r2")["a"].result == result
    # With r1 deleted too, r2's result is no longer known.
    assert store.delete_runs(["r1"], now=0.0) == ["r1"]
    assert store.job_ends("r2")["a"].result == SAME_RESULT


def test_deleting_runs_takes_their_records_and_output_and_keeps_successes_and_live_runs(store):
    for run_id in ("r1", "r2", "r3"):
        run(store, run_id)
        store.record(
            run_id,
            [JobStart("a", 1, 1.0)],
            [JobEnd("a", "SUCCEEDED", fingerprint=f"f-{run_id}", result=b"x", parts="{}")],
        )
        store.append_output(run_id, "a", "stdout", f"{run_id}\n")
    store.acquire("r2", "pid-1", ttl=10, now=100)  # r2 goes on

    assert store.delete_runs(["r1", "r2", "nope"], now=105) == ["r1"]
    assert [r.run_id for r in store.runs()] == ["r3", "r2"]
    assert store.find_run("build", "r1") is None
    assert store.job_ends("r1") == {} and store.job_starts("r1") == []
    assert store.output("r1", "a", "stdout") == ""
    assert store.output("r2", "a", "stdout") == "r2\n"
    assert store.last_success("build", "a").fingerprint == "f-r3"  # the current state stays
    assert store.delete_runs(["r2"], now=111) == ["r2"]  # its lease ran out
    assert [r.run_id for r in store.runs()] == ["r3"]


def test_a_runner_whose_run_was_deleted_is_told_so_at_its_next_write(store):
    run(store, "r1")
    store.acquire("r1", "pid-1", ttl=10, now=100)
    assert store.delete_runs(["r1"], now=200) == ["r1"]  # its lease had lapsed
    end = JobEnd("a", "SUCCEEDED", fingerprint="f", parts="{}")
    for write in (
        lambda: store.record("r1", [], [end]),
        lambda: store.append_output("r1", "a", "stdout", "text"),
        lambda: store.renew("r1", "pid-1", 10, 201),
    ):
        with pytest.raises(RunLockedError, match="run r1 is no longer in the store"):
            write()
    assert store.runs() == [] and store.last_success("build", "a") is None
    store.finish_run("r1", 202.0, 0, "ok")  # nothing to keep, and no error either


def test_output_is_appended_in_order(store):
    run(store)
    store.append_output("r1", "sh", "stdout", "one\n")
    store.append_output("r1", "sh", "stdout", "two\n")
    store.append_output("r1", "sh", "stderr", "oops\n")
    assert store.output("r1", "sh", "stdout") == "one\ntwo\n"
    assert store.output("r1", "sh", "stderr") == "oops\n"
    assert store.output("r1", "other", "stdout") == ""


def test_lease_keeps_a_second_owner_out_until_it_expires(store):
    run(store)
    store.acquire("r1", "pid-1", ttl=10, now=100)
    with pytest.raises(RunLockedError, match="r1"):
        store.acquire("r1", "pid-2", ttl=10, now=105)
    store.acquire("r1", "pid-1", ttl=10, now=105)  # the owner may renew by acquiring
    store.acquire("r1", "pid-2", ttl=10, now=200)  # expired: taken over
    store.release("r1", "pid-2")
    store.acquire("r1", "pid-3", ttl=10, now=201)
    with pytest.raises(RunLockedError) as caught:
        store.acquire("r1", "pid-4", ttl=10, now=202)
    assert caught.value.holder == "pid-3"
    store.acquire("r1", "pid-4", ttl=10, now=202, takeover="pid-3")  # known dead


def test_open_store_accepts_paths_urls_and_objects(tmp_path):
    assert open_store(None) is None
    memory = MemoryStore()
    assert open_store(memory) is memory
    assert isinstance(open_store(tmp_path / "a.db"), SQLiteStore)
    by_url = open_store(f"sqlite:///{tmp_path}/b.db")  # tmp_path is absolute: 4 slashes
    assert isinstance(by_url, SQLiteStore) and by_url.path == tmp_path / "b.db"
    with pytest.raises(ValueError, match="unknown store URL"):
        open_store("redis://x")


def test_sqlite_file_is_wal_with_a_schema_version(tmp_path):
    SQLiteStore(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION
    )


def test_a_sqlite_store_of_schema_1_is_migrated_and_keeps_its_successes(tmp_path):
    from jobgraph.store.sqlite import _MIGRATIONS

    db = sqlite3.connect(tmp_path / "s.db")
    db.executescript(_MIGRATIONS[0])
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO successes VALUES ('build', 'a', 'f', NULL, '{}', 'r0')")
    db.commit()
    db.close()
    store = SQLiteStore(tmp_path / "s.db")
    assert store.last_success("build", "a") == ("f", None, "{}", None, "r0")  # no stamp yet
    store.close()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION
    )


def test_sqlite_refuses_a_newer_schema(tmp_path):
    SQLiteStore(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(tmp_path / "s.db")


def test_sqlite_waits_out_a_writer_holding_the_lock(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    run(store)
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    store.record("r1", [], [JobEnd("a", "SUCCEEDED")])  # blocks, then goes through
    assert "a" in store.job_ends("r1")
    assert store.integrity_check() == "ok"


def test_sqlite_hard_error_is_a_store_error(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    store.close()
    with pytest.raises(StoreError):
        store.runs()


def test_renewing_a_lost_lease_is_an_error(store):
    run(store)
    store.acquire("r1", "pid-1", ttl=10, now=100)
    store.acquire("r1", "pid-2", ttl=10, now=200)  # pid-1's lease expired: taken over
    with pytest.raises(RunLockedError, match="lease was lost"):
        store.renew("r1", "pid-1", ttl=10, now=201)
