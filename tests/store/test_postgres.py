"""The PostgreSQL store end to end: runs, incremental reruns, resume, leases, lost servers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

import jobgraph as jg
from jobgraph.store import RunLockedError, open_store
from procs import jobgraph_cli
from store import pg


@pytest.fixture
def url():
    with pg.fresh_schema() as made:
        yield made


def add(a: int, b: int) -> int:
    return a + b


def run_around(disruption: Callable[[], None], url: str) -> None:
    """Five jobs, ``disruption`` as a job, five more: the run goes on and records all."""
    jobs = [jg.Job(add, k, 1, name=f"before{k}") for k in range(5)]
    middle = jg.Job(disruption, name="disruption", requires=jobs)
    after = [jg.Job(add, k, 2, name=f"after{k}", requires=[middle]) for k in range(5)]
    report = jg.Scheduler(*after, name="pg").run(store=url)
    assert report.ok, report.why()
    stored = jg.Report.from_store(open_store(url), report.run_id)
    assert stored.counts == {jg.State.SUCCEEDED: 11}


def test_runs_are_recorded_and_reruns_are_incremental(url):
    def graph() -> list[jg.Job]:
        a = jg.Job(add, 1, 2, cache=True, name="a")
        return [a, jg.Job(add, a, 10, cache=True, name="b"), jg.Shell("echo hi", name="talk")]

    first = jg.Scheduler(*graph(), name="pg").run(store=url)
    assert first.ok
    second = jg.Scheduler(*graph(), name="pg").run(store=url)
    assert second.counts == {jg.State.UP_TO_DATE: 2, jg.State.SUCCEEDED: 1}
    store = open_store(url)
    assert [r.run_id for r in store.runs()] == [second.run_id, first.run_id]
    assert store.output(first.run_id, "talk", "stdout") == "hi\n"
    assert jg.Report.from_store(store, first.run_id).ok
    store.close()


def test_resume_runs_only_what_did_not_finish(url, tmp_path):
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"

    def first() -> None:
        with ledger.open("a") as f:
            f.write("first\n")

    def second() -> None:
        if not gate.exists():
            raise RuntimeError("not yet")

    def graph() -> jg.Scheduler:
        one = jg.Job(first, name="first")
        return jg.Scheduler(jg.Job(second, name="second", requires=[one]), name="pg")

    assert not graph().run(store=url).ok
    gate.write_text("open")
    assert graph().run(store=url, resume="last").ok
    assert ledger.read_text() == "first\n"


def test_a_second_runner_resuming_the_same_run_is_refused_at_once(url):
    release = threading.Event()

    def hold() -> None:
        release.wait(20)

    def graph() -> jg.Scheduler:
        return jg.Scheduler(jg.Job(hold, name="hold"), name="pg")

    first = graph()
    done: list[jg.Report] = []
    runner = threading.Thread(target=lambda: done.append(first.run(store=url)))
    runner.start()
    store = open_store(url)
    deadline = time.monotonic() + 10
    while store.find_run("pg", "last") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run_id = store.find_run("pg", "last").run_id
    started = time.monotonic()
    with pytest.raises(RunLockedError, match=f"run {run_id} is being run by"):
        graph().run(store=url, resume=run_id)
    assert time.monotonic() - started < 1.0
    release.set()
    runner.join(30)
    assert done and done[0].ok
    store.close()


def test_a_lost_connection_mid_run_is_retried_and_nothing_is_lost(url):
    import psycopg

    def cut() -> None:
        # What a server restart does to the runner: its connection is gone.
        with psycopg.connect(pg.server_url(), autocommit=True) as db:
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'jobgraph' AND pid <> pg_backend_pid()"
            )

    run_around(cut, url)


def test_past_the_retry_budget_it_is_a_store_error(monkeypatch):
    from jobgraph.store import postgres

    monkeypatch.setattr(postgres, "_RETRIES", 2)
    monkeypatch.setattr(postgres, "_MAX_DELAY", 0.05)
    with pytest.raises(jg.StoreError, match=r"store postgresql://postgres@127\.0\.0\.1:1/test"):
        open_store("postgresql://postgres@127.0.0.1:1/test")


def test_without_psycopg_the_store_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"pip install 'jobgraph\[postgres\]'"):
        open_store("postgresql://postgres@localhost/test")


def test_the_command_line_works_unchanged(url, tmp_path):
    workflow = tmp_path / "w.yaml"
    workflow.write_text("jobs:\n  hello:\n    shell: echo hello\n")

    def jobgraph(*args: str) -> subprocess.CompletedProcess[str]:
        return jobgraph_cli(*args, "--store", url, cwd=tmp_path, timeout=60)

    ran = jobgraph("run", str(workflow), "-q")
    assert ran.returncode == 0, ran.stderr
    listed = jobgraph("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    import json

    run_id = json.loads(listed.stdout)[0]["run_id"]
    assert jobgraph("logs", run_id, "hello").stdout == "hello\n"


def test_a_password_never_shows_in_messages():
    from jobgraph.store.postgres import _safe

    assert _safe("postgresql://ada:s3cret@db/x") == "postgresql://ada:***@db/x"
    assert _safe("postgresql://ada@db/x") == "postgresql://ada@db/x"


def test_runners_and_readers_at_once_lose_nothing():
    """benchmarks/pg_stress.py, shortened: 4 runners and 2 readers for 8 s."""
    from pathlib import Path

    script = Path(__file__).parents[2] / "benchmarks" / "pg_stress.py"
    command = [sys.executable, str(script), "--runners", "4", "--readers", "2", "--seconds", "8"]
    out = subprocess.run(
        [*command, "--url", pg.server_url()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    import json

    summary = json.loads(out.stdout)
    assert summary["runs"] > 20 and summary["reports_read"] > 0


CHAIN = """
import sys, time
import jobgraph as jg

def step(ledger, name):
    with open(ledger, "a") as f:
        f.write(name + "\\n")
    time.sleep(0.05)

if __name__ == "__main__":
    url, ledger, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "resume"
    jobs = []
    for k in range(30):
        jobs.append(jg.Job(step, ledger, f"s{k}", name=f"s{k}", requires=jobs[-1:]))
    report = jg.Scheduler(*jobs, name="chain").run(store=url, resume="last" if resume else None)
    sys.exit(report.exit_code)
"""


def test_a_killed_runner_is_taken_over_and_no_job_completes_twice(url, tmp_path):
    import os
    import signal

    script, ledger = tmp_path / "chain.py", tmp_path / "ledger"
    script.write_text(CHAIN)
    first = subprocess.Popen([sys.executable, str(script), url, str(ledger), "new"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ledger.exists() and len(ledger.read_text().splitlines()) >= 10:
            break
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    second = subprocess.run([sys.executable, str(script), url, str(ledger), "resume"], timeout=60)
    assert second.returncode == 0
    lines = ledger.read_text().splitlines()
    assert set(lines) == {f"s{k}" for k in range(30)}  # every job ran
    assert len(lines) - 30 <= 1  # at most the one running at the kill ran twice


def test_a_server_works_unchanged_on_postgresql(url, tmp_path):
    from server.serverproc import TOKEN, ServerProcess

    server = ServerProcess(tmp_path, "--store", url)
    try:
        handle = jg.Client(server.url, TOKEN).submit("jobs:\n  hi:\n    shell: echo hi\n")
        assert handle.wait(30) and handle.state == "succeeded"
        assert handle.stdout("hi") == "hi\n"
        assert open_store(url).find_run("", handle.run_id).exit_code == 0
    finally:
        server.stop()


def test_a_database_restart_mid_run_is_ridden_out(url):
    """A real restart of the local server (where this machine can do it, as CI's can)."""
    import os
    import shutil

    versions = os.listdir("/etc/postgresql") if os.path.isdir("/etc/postgresql") else []
    if not (shutil.which("pg_ctlcluster") and os.geteuid() == 0 and len(versions) == 1):
        pytest.skip("needs root and a local Debian PostgreSQL cluster to restart")

    def restart() -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "restart"],
            check=True,
            timeout=60,
        )

    run_around(restart, url)


def test_a_run_on_postgresql_can_go_to_the_background(url):
    store = open_store(url)
    talk = jg.Shell("echo far", name="talk")
    handle = jg.Scheduler(talk, name="bg").submit(store=store)  # the object, not its URL
    assert handle.wait(30) and handle.state == "succeeded"
    assert handle.stdout(talk) == "far\n"  # a job, or its name
    store.close()


def test_a_store_of_schema_1_is_migrated_and_keeps_its_successes(url):
    import psycopg

    from jobgraph.store.postgres import _MIGRATIONS, SCHEMA_VERSION, checkup, split_schema

    server, schema = split_schema(url)
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
        db.execute(f'SET search_path TO "{schema}"')
        db.execute(_MIGRATIONS[0])
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute("INSERT INTO successes VALUES ('build', 'a', 'f', NULL, '{}', 'r0')")
    store = open_store(url)
    try:
        assert store.last_success("build", "a") == ("f", None, "{}", None, "r0")  # no stamp yet
    finally:
        store.close()
    assert checkup(url).version == SCHEMA_VERSION
    with psycopg.connect(server, autocommit=True) as db:
        # Journal batches are stored as they are (compressing them cost more than the rest).
        storage = db.execute(
            "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attname IN ('starts', 'ends') ORDER BY attname",
            (f'"{schema}".journal',),
        ).fetchall()
    assert storage == [("ends", "e"), ("starts", "e")]
