"""``jobgraph doctor``: a store's health, runs left by dead owners, and releasing them."""

from __future__ import annotations

import os
import runpy
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import jobgraph as jg
from jobgraph.doctor import RunCheck, Verdict, judge_run, to_release
from jobgraph.store import RunInfo, RunLockedError, open_store
from jobgraph.store.sqlite import SCHEMA_VERSION
from procs import jobgraph_cli
from store import pg

HOST = socket.gethostname()

FLOW = """
import os
import time

import jobgraph as jg

LEDGER, GATE = {ledger!r}, {gate!r}


def note(line: str) -> None:
    with open(LEDGER, "a") as f:
        f.write(line + "\\n")


def first() -> str:
    note("first")
    return "one"


def second(x: str) -> str:
    note("second began")
    deadline = time.monotonic() + 30
    while not os.path.exists(GATE):  # the test kills the run here
        if time.monotonic() > deadline:
            raise RuntimeError("the gate never opened")
        time.sleep(0.02)
    return x + "+two"


one = jg.Job(first, name="first")
scheduler = jg.Scheduler(one, jg.Job(second, one, name="second"), name="killed")
"""


def doctor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return jobgraph_cli("doctor", *args, cwd=cwd, timeout=30)


def dead_pid() -> int:
    """The pid of a process of this machine that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def add(a: int, b: int) -> int:
    return a + b


def small_graph(name: str = "small") -> jg.Scheduler:
    a = jg.Job(add, 1, 2, name="a")
    return jg.Scheduler(a, jg.Job(add, a, 10, name="b"), name=name)


def held_run(store: str, owner: str, lease: float = 30.0) -> str:
    """A run recorded through the store API, held by ``owner`` for ``lease`` seconds."""
    run_id = uuid.uuid4().hex[:12]
    opened = open_store(store)
    assert opened is not None
    try:
        opened.create_run(RunInfo(run_id=run_id, scheduler="small", started_at=time.time()))
        opened.acquire(run_id, owner, lease, time.time())
    finally:
        opened.close()
    return run_id


def owner_of(store: str, run_id: str) -> tuple[str | None, float | None]:
    opened = open_store(store)
    assert opened is not None
    try:
        info = opened.find_run("", run_id)
    finally:
        opened.close()
    assert info is not None
    return info.owner, info.lease_until


# -- verdicts, judged without any process -------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "lease_left", "alive", "verdict"),
    [
        (None, None, True, Verdict.UNHELD),
        (f"{HOST}:100:t", 20.0, False, Verdict.DEAD),  # a fresh lease does not save the dead
        (f"{HOST}:100:t", 20.0, True, Verdict.RUNNING),
        (f"{HOST}:100:t", -5.0, True, Verdict.STALLED),
        ("elsewhere:100:t", 20.0, False, Verdict.RUNNING),  # another machine's pids mean nothing
        ("elsewhere:100:t", -5.0, True, Verdict.EXPIRED),
    ],
)
def test_a_run_is_judged_by_its_owner_here_and_by_its_lease_elsewhere(
    owner: str | None, lease_left: float | None, alive: bool, verdict: Verdict
):
    now = 1000.0
    until = None if lease_left is None else now + lease_left
    info = RunInfo("r1", "s", 1.0, owner=owner, lease_until=until)
    check = judge_run(info, now, HOST, lambda pid: alive)
    assert check.verdict is verdict
    assert check.owner == ("none" if owner is None else f"100@{owner.split(':')[0]}")


def test_release_takes_the_dead_and_refuses_a_live_owner_of_this_machine_even_forced():
    now = 1000.0

    def run(run_id: str, owner: str, left: float, alive: bool) -> RunCheck:
        info = RunInfo(run_id, "s", 1.0, owner=owner, lease_until=now + left)
        return judge_run(info, now, HOST, lambda _: alive)

    dead, here, far, gone = (
        run("dead", f"{HOST}:1:t", 20, False),
        run("here", f"{HOST}:2:t", 20, True),
        run("far", "elsewhere:3:t", 20, True),
        run("gone", "elsewhere:4:t", -1, True),
    )
    runs = [dead, here, far, gone]
    assert [c.info.run_id for c in to_release(runs, (), dead=True, force=False)] == ["dead", "gone"]
    with pytest.raises(ValueError, match="live process of this machine"):
        to_release(runs, ["here"], dead=False, force=True)
    with pytest.raises(ValueError, match=r"lease is fresh.*--force"):
        to_release(runs, ["far"], dead=False, force=False)
    assert to_release(runs, ["far"], dead=False, force=True) == [far]
    with pytest.raises(ValueError, match="no unfinished run 'nope'"):
        to_release(runs, ["nope"], dead=False, force=False)


# -- SQLite stores, through the command ------------------------------------------------------


def test_a_healthy_store_after_a_real_run_exits_0(tmp_path: Path):
    (tmp_path / "flow.py").write_text(
        "import jobgraph as jg\n"
        "scheduler = jg.Scheduler(jg.Shell('echo hi', name='hi'), name='tiny')\n"
    )
    ran = jobgraph_cli("run", "flow.py", "-q", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    checked = doctor(cwd=tmp_path)  # the default store, as 'jobgraph run' uses it
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines() == [
        "store:      .jobgraph/state.db (SQLite)",
        "integrity:  ok",
        f"schema:     version {SCHEMA_VERSION} (current)",
        "runs:       all ended",
        "verdict:    healthy",
    ]


def test_a_killed_run_is_reported_released_then_resumed(tmp_path: Path):
    ledger, gate, db = tmp_path / "ledger", tmp_path / "gate", tmp_path / "state.db"
    flow = tmp_path / "flow.py"
    flow.write_text(FLOW.format(ledger=str(ledger), gate=str(gate)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobgraph", "run", "flow.py", "--store", "state.db", "-q"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while "second began" not in (ledger.read_text() if ledger.exists() else ""):
            assert time.monotonic() < deadline and proc.poll() is None, "the run never got going"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    opened = open_store(str(db))
    assert opened is not None
    (run,) = opened.runs()
    opened.close()

    found = doctor("--store", "state.db", cwd=tmp_path)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "runs:       1 run did not end" in found.stdout
    assert f"{run.run_id}  started " in found.stdout
    assert f"owner {proc.pid}@{HOST}  lease " in found.stdout
    assert (
        f"owner dead: resumable now with 'jobgraph resume {run.run_id} --store state.db'"
        in found.stdout
    )
    assert "--release-dead" in found.stdout.splitlines()[-1]

    released = doctor("--store", "state.db", "--release-dead", cwd=tmp_path)
    assert released.returncode == 1, released.stdout + released.stderr  # not resumed yet
    assert f"released:   {run.run_id}" in released.stdout
    assert "held by nobody: resumable now" in released.stdout
    assert owner_of(str(db), run.run_id) == (None, None)

    gate.write_text("open")
    scheduler = runpy.run_path(str(flow))["scheduler"]
    report = scheduler.run(store=str(db), resume=run.run_id)
    assert report.ok, report.why()
    assert report.counts == {jg.State.UP_TO_DATE: 1, jg.State.SUCCEEDED: 1}
    assert ledger.read_text().splitlines() == ["first", "second began", "second began"]
    assert doctor("--store", "state.db", cwd=tmp_path).returncode == 0


def test_a_run_held_from_another_machine_is_released_only_when_forced(tmp_path: Path):
    db = str(tmp_path / "state.db")
    small_graph().run(store=db)
    run_id = held_run(db, "buildbox:4242:abc")  # that machine died, its lease still fresh

    found = doctor("--store", db, cwd=tmp_path)
    assert found.returncode == 0  # nothing here can tell it from a live run
    assert "owner 4242@buildbox  lease fresh" in found.stdout
    assert "still running on buildbox" in found.stdout
    with pytest.raises(RunLockedError):
        small_graph().run(store=db, resume=run_id)

    refused = doctor("--store", db, "--release", run_id, cwd=tmp_path)
    assert refused.returncode == 2
    assert "whose lease is fresh" in refused.stderr and "--force" in refused.stderr
    assert owner_of(db, run_id)[0] == "buildbox:4242:abc"

    forced = doctor("--store", db, "--release", run_id, "--force", cwd=tmp_path)
    assert forced.returncode == 1, forced.stdout + forced.stderr
    assert f"released:   {run_id}" in forced.stdout
    report = small_graph().run(store=db, resume=run_id)  # at once, no lease to wait for
    assert report.ok and report.run_id == run_id


def test_a_live_owner_of_this_machine_is_never_released(tmp_path: Path):
    db = str(tmp_path / "state.db")
    small_graph().run(store=db)
    run_id = held_run(db, f"{HOST}:{os.getpid()}:me")

    found = doctor("--store", db, cwd=tmp_path)
    assert found.returncode == 0
    assert "still running (its owner lives on this machine)" in found.stdout
    refused = doctor("--store", db, "--release", run_id, "--force", cwd=tmp_path)
    assert refused.returncode == 2
    assert f"held by {os.getpid()}@{HOST}, a live process of this machine" in refused.stderr
    assert owner_of(db, run_id)[0] == f"{HOST}:{os.getpid()}:me"
    released = doctor("--store", db, "--release-dead", cwd=tmp_path)
    assert "released:   nothing" in released.stdout
    assert owner_of(db, run_id)[0] == f"{HOST}:{os.getpid()}:me"


@pytest.mark.parametrize(
    ("first_page", "problem"),
    [(2, "database disk image is malformed"), (1, "file is not a database")],
)
def test_a_corrupted_file_exits_2_naming_the_problem(tmp_path: Path, first_page: int, problem: str):
    db = tmp_path / "state.db"
    small_graph().run(store=str(db))
    page = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
    size = db.stat().st_size
    assert size >= 4 * page
    with db.open("r+b") as f:  # garbage over every page from first_page on
        f.seek((first_page - 1) * page)
        f.write(b"\xde\xad\xbe\xef" * ((size - (first_page - 1) * page) // 4))
    found = doctor("--store", str(db), cwd=tmp_path)
    assert found.returncode == 2, found.stdout + found.stderr
    assert f"  - {problem}" in found.stdout
    assert "verdict:    broken: the store is damaged" in found.stdout
    released = doctor("--store", str(db), "--release-dead", cwd=tmp_path)
    assert released.returncode == 2
    assert "cannot release runs" in released.stderr


def test_a_missing_store_is_an_error_that_creates_nothing(tmp_path: Path):
    where = tmp_path / "nowhere" / "state.db"
    found = doctor("--store", str(where), cwd=tmp_path)
    assert found.returncode == 2
    assert (
        found.stderr
        == f"jobgraph: error: no store at {where} (runs are recorded there by 'jobgraph run')\n"
    )
    default = doctor(cwd=tmp_path)
    assert default.returncode == 2
    assert "no store at .jobgraph/state.db" in default.stderr
    assert list(tmp_path.iterdir()) == []


def test_schema_versions_older_and_newer_are_told_apart_and_left_as_they_are(tmp_path: Path):
    empty = tmp_path / "empty.db"
    empty.touch()
    older = doctor("--store", str(empty), cwd=tmp_path)
    assert older.returncode == 1
    assert "schema:     none yet (jobgraph creates it when it next opens the store)" in older.stdout
    assert empty.stat().st_size == 0  # reported, not migrated

    newer = tmp_path / "newer.db"
    small_graph().run(store=str(newer))
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    found = doctor("--store", str(newer), cwd=tmp_path)
    assert found.returncode == 2
    assert (
        f"schema:     version 99, newer than this jobgraph's ({SCHEMA_VERSION}): upgrade jobgraph"
        in found.stdout
    )


# -- PostgreSQL -------------------------------------------------------------------------------


def test_a_postgres_store_is_checked_and_its_dead_runs_released(tmp_path: Path):
    with pg.fresh_schema() as url:
        small_graph().run(store=url)
        healthy = doctor("--store", url, cwd=tmp_path)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert (
            "(PostgreSQL)" in healthy.stdout
            and f"version {SCHEMA_VERSION} (current)" in healthy.stdout
        )

        run_id = held_run(url, f"{HOST}:{dead_pid()}:gone")
        found = doctor("--store", url, cwd=tmp_path)
        assert found.returncode == 1, found.stdout + found.stderr
        assert f"owner dead: resumable now with run(resume={run_id!r})" in found.stdout
        released = doctor("--store", url, "--release-dead", cwd=tmp_path)
        assert f"released:   {run_id}" in released.stdout
        assert owner_of(url, run_id) == (None, None)
        assert small_graph().run(store=url, resume=run_id).ok
        assert doctor("--store", url, cwd=tmp_path).returncode == 0


def test_a_missing_postgres_schema_is_an_error_that_creates_nothing(tmp_path: Path):
    import psycopg

    server = pg.server_url()
    schema = f"jg_test_{uuid.uuid4().hex[:12]}"
    url = f"{server}{'&' if '?' in server else '?'}schema={schema}"
    found = doctor("--store", url, cwd=tmp_path)
    assert found.returncode == 2
    assert f"(schema {schema}): the schema does not exist" in found.stderr
    with psycopg.connect(server) as db:
        assert (
            db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            is None
        )
