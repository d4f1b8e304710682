"""Durable runs: the store records runs, resume skips what finished, fingerprints skip
what is unchanged, and explain says why anything runs."""

from __future__ import annotations

import asyncio
import functools
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import jobgraph as jg
from jobgraph.store import MemoryStore, RunLockedError, SQLiteStore


class Counter:
    """Counts calls per name (plain functions run in threads)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def job(self, name: str, value: object = None, fail: bool = False):
        def body(*args: object) -> object:
            with self.lock:
                self.calls[name] = self.calls.get(name, 0) + 1
            if fail:
                raise ValueError(f"{name} broke")
            return value if value is not None else name

        body.__name__ = body.__qualname__ = name
        return body


def chain(store, counter: Counter, fail_c: bool = False) -> jg.Scheduler:
    a = jg.Job(counter.job("a", 1), name="a")
    b = jg.Job(counter.job("b"), a, name="b")
    c = jg.Job(counter.job("c", fail=fail_c), b, name="c")
    return jg.Scheduler(c, name="chain", store=store)


def test_a_run_is_recorded_with_its_jobs(tmp_path):
    store = tmp_path / "s.db"
    report = chain(store, Counter()).run()
    assert report.run_id
    db = SQLiteStore(store)
    (info,) = db.runs()
    assert (info.run_id, info.exit_code, info.why) == (report.run_id, 0, "ok")
    ends = db.job_ends(report.run_id)
    assert {n: e.state for n, e in ends.items()} == {
        "a": "SUCCEEDED",
        "b": "SUCCEEDED",
        "c": "SUCCEEDED",
    }
    assert pickle.loads(ends["a"].result) == 1


def test_resume_skips_what_succeeded_and_reuses_stored_results(tmp_path):
    store = tmp_path / "s.db"
    counter = Counter()
    first = chain(store, counter, fail_c=True).run()
    assert first.why() == "job 'c' failed: ValueError: c broke"
    counter2 = Counter()
    second = chain(store, counter2).run(resume="last")
    assert second.ok and second.run_id == first.run_id
    assert counter2.calls == {"c": 1}
    assert {r.name: r.state for r in second.jobs}["a"] is jg.State.UP_TO_DATE


def test_resume_by_run_id_and_unknown_run(tmp_path):
    store = tmp_path / "s.db"
    first = chain(store, Counter(), fail_c=True).run()
    chain(store, Counter()).run()  # a newer, unrelated run
    counter = Counter()
    assert chain(store, counter).run(resume=first.run_id).ok
    assert counter.calls == {"c": 1}
    with pytest.raises(jg.StoreError, match="no run 'nope'"):
        chain(store, Counter()).run(resume="nope")


def test_resume_with_nothing_to_resume_runs_everything_and_says_so(tmp_path):
    counter = Counter()
    report = chain(tmp_path / "s.db", counter).run(resume="last")
    assert report.ok and counter.calls == {"a": 1, "b": 1, "c": 1}
    assert report.notes == ["no earlier run to resume: everything runs"]
    assert report.to_dict()["notes"] == report.notes


def test_resume_in_memory_without_a_store():
    counter = Counter()
    scheduler = chain(None, counter, fail_c=True)
    scheduler.run()
    c = scheduler.jobs[0]
    c._fn = Counter().job("c")  # fix the broken job in place
    report = scheduler.run(resume="last")
    assert report.ok and counter.calls == {"a": 1, "b": 1, "c": 1}


def test_a_result_that_cannot_be_stored_fails_that_job_not_the_run(tmp_path):
    bad = jg.Job(lambda: threading.Lock(), name="bad")
    good = jg.Job(lambda: 2, name="good")
    after = jg.Job(lambda x: x, bad, name="after")
    report = jg.Scheduler(good, after, store=tmp_path / "s.db").run()
    assert good.result() == 2 and bad.state is jg.State.FAILED
    assert after.state is jg.State.SKIPPED
    assert "cannot be stored" in report.why()


def test_a_coroutine_result_that_cannot_be_stored_fails_that_job_not_the_run(tmp_path):
    async def unpicklable() -> object:
        return threading.Lock()

    async def plain() -> int:
        return 2

    bad, good = jg.Job(unpicklable, name="bad"), jg.Job(plain, name="good")
    after = jg.Job(plain, requires=bad, name="after")
    report = jg.Scheduler(good, after, store=tmp_path / "s.db").run()
    assert good.result() == 2 and bad.state is jg.State.FAILED
    assert after.state is jg.State.SKIPPED
    assert "cannot be stored" in report.why()
    ends = SQLiteStore(tmp_path / "s.db").job_ends(report.run_id)
    assert pickle.loads(ends["good"].result) == 2 and ends["bad"].state == "FAILED"


def test_each_attempt_is_recorded_by_its_end_or_by_its_start(tmp_path):
    async def quick() -> None:
        return None

    tries: list[int] = []

    async def flaky() -> None:
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("first try")

    async def slow() -> None:
        await asyncio.sleep(0.3)

    jobs = [
        jg.Job(quick, name="quick"),
        jg.Job(flaky, retries=1, retry_delay=0.05, name="flaky"),
        jg.Job(slow, name="slow"),
    ]
    report = jg.Scheduler(*jobs, store=tmp_path / "s.db").run()
    assert report.ok, report.why()
    store = SQLiteStore(tmp_path / "s.db")
    ends = store.job_ends(report.run_id)
    starts = {(s.name, s.attempt) for s in store.job_starts(report.run_id)}
    # An attempt that ended before the next write needs no start: its end has it.
    assert ends["quick"].attempts == 1 and ends["quick"].started_at is not None
    assert ("quick", 1) not in starts
    # The failed try of a retried job, and a job still running at a write, have theirs.
    assert ("flaky", 1) in starts and ends["flaky"].attempts == 2
    assert ("slow", 1) in starts


def test_shell_output_is_kept_in_the_store(tmp_path):
    job = jg.Shell("echo hello; echo oops >&2", name="sh")
    report = jg.Scheduler(job, store=tmp_path / "s.db").run()
    db = SQLiteStore(tmp_path / "s.db")
    assert db.output(report.run_id, "sh", "stdout") == "hello\n"
    assert db.output(report.run_id, "sh", "stderr") == "oops\n"


def test_nested_jobs_are_recorded_as_outer_slash_inner(tmp_path):
    async def quick() -> int:
        return 2

    inner = jg.Scheduler(jg.Job(lambda: 1, name="x"), jg.Job(quick, name="y"), name="inner")
    report = jg.Scheduler(inner, store=tmp_path / "s.db").run()
    assert report.ok, report.why()
    ends = SQLiteStore(tmp_path / "s.db").job_ends(report.run_id)
    assert set(ends) == {"inner", "inner/x", "inner/y"}
    # A nested run's result is its report: stored with its records, and read back whole.
    stored = pickle.loads(ends["inner"].result)
    assert stored.ok and {j.name for j in stored.jobs} == {"x", "y"}


def test_a_skipped_job_is_stored_with_its_cause(tmp_path):
    def broken() -> None:
        raise ValueError("no")

    first = jg.Job(broken, name="first")
    then = jg.Job(lambda: 1, requires=first, name="then")
    report = jg.Scheduler(then, store=tmp_path / "s.db").run()
    ends = SQLiteStore(tmp_path / "s.db").job_ends(report.run_id)
    assert ends["then"].state == "SKIPPED" and ends["then"].skipped_because == ("first",)
    stored = jg.Report.from_store(SQLiteStore(tmp_path / "s.db"), report.run_id)
    assert stored.why() == report.why()


def test_a_result_of_none_is_stored_as_no_bytes_and_reads_back_as_none(tmp_path):
    async def nothing() -> None:
        return None

    async def five() -> int:
        return 5

    quiet, loud = jg.Job(nothing, name="quiet"), jg.Job(five, name="loud")
    scheduler = jg.Scheduler(quiet, loud, name="results", store=tmp_path / "s.db")
    report = scheduler.run()
    ends = SQLiteStore(tmp_path / "s.db").job_ends(report.run_id)
    assert ends["quiet"].result is None and pickle.loads(ends["loud"].result) == 5
    stored = jg.Report.from_store(SQLiteStore(tmp_path / "s.db"), report.run_id)
    # As in the live report: the repr of each result.
    assert {j.name: j.result for j in stored.jobs} == {j.name: j.result for j in report.jobs}
    assert {j.name: j.result for j in stored.jobs} == {"quiet": "None", "loud": "5"}
    resumed = scheduler.run(resume=report.run_id)
    assert resumed.counts == {jg.State.UP_TO_DATE: 2}
    assert (quiet.result(), loud.result()) == (None, 5)


def test_a_nested_job_is_stored_skipped_because_of_its_outer_slash_inner_cause(tmp_path):
    def broken() -> None:
        raise ValueError("no")

    x = jg.Job(broken, name="x")
    y = jg.Job(lambda: 1, requires=x, name="y")
    inner = jg.Scheduler(x, y, name="inner")
    report = jg.Scheduler(inner, store=tmp_path / "s.db").run()
    ends = SQLiteStore(tmp_path / "s.db").job_ends(report.run_id)
    assert ends["inner/y"].skipped_because == ("inner/x",)
    stored = jg.Report.from_store(SQLiteStore(tmp_path / "s.db"), report.run_id)
    live = {j.name: j.skipped_because for j in report.jobs}
    assert {j.name: j.skipped_because for j in stored.jobs}["inner/y"] == live["inner/y"]


# -- fingerprints ---------------------------------------------------------------------


def build(tmp_path: Path, counter: Counter, store) -> tuple[jg.Scheduler, dict[str, jg.Job]]:
    def compile_one(src: str) -> str:
        counter.job("cc-" + Path(src).stem)()
        out = Path(src).with_suffix(".o")
        out.write_text(Path(src).read_text().upper())
        return out.read_text()

    jobs = {}
    for stem in ("a", "b"):
        src = str(tmp_path / f"{stem}.c")
        jobs[stem] = jg.Job(
            compile_one, src, inputs=[src], outputs=[src[:-2] + ".o"], name=f"cc-{stem}"
        )
    jobs["link"] = jg.Job(counter.job("link"), jobs["a"], jobs["b"], cache=True, name="link")
    return jg.Scheduler(jobs["link"], name="build", store=store), jobs


def test_a_cached_job_that_returns_none_is_up_to_date_on_a_rerun(tmp_path):
    ran = []

    def touch() -> None:
        ran.append(1)

    def graph() -> jg.Scheduler:
        return jg.Scheduler(jg.Job(touch, cache=True, name="t"), name="n", store=tmp_path / "s.db")

    assert graph().run().ok
    assert SQLiteStore(tmp_path / "s.db").last_success("n", "t").result is None  # no bytes
    again = graph().run()
    assert again.counts == {jg.State.UP_TO_DATE: 1} and ran == [1]


def test_unchanged_cached_jobs_are_up_to_date_with_their_stored_result(tmp_path):
    (tmp_path / "a.c").write_text("a")
    (tmp_path / "b.c").write_text("b")
    store = tmp_path / "s.db"
    counter = Counter()
    build(tmp_path, counter, store)[0].run()
    again = Counter()
    scheduler, jobs = build(tmp_path, again, store)
    report = scheduler.run()
    assert again.calls == {}
    assert report.counts == {jg.State.UP_TO_DATE: 3}
    assert jobs["a"].result() == "A"


def test_changing_one_input_reruns_exactly_what_depends_on_it(tmp_path):
    (tmp_path / "a.c").write_text("a")
    (tmp_path / "b.c").write_text("b")
    store = tmp_path / "s.db"
    build(tmp_path, Counter(), store)[0].run()
    (tmp_path / "a.c").write_text("a2")
    counter = Counter()
    build(tmp_path, counter, store)[0].run()
    assert counter.calls == {"cc-a": 1, "link": 1}


def test_early_cutoff_when_a_rerun_gives_the_same_result(tmp_path):
    (tmp_path / "a.c").write_text("a")
    (tmp_path / "b.c").write_text("b")
    store = tmp_path / "s.db"
    build(tmp_path, Counter(), store)[0].run()
    (tmp_path / "a.c").write_text("A")  # different input, same compiled result "A"
    counter = Counter()
    build(tmp_path, counter, store)[0].run()
    assert counter.calls == {"cc-a": 1}


def test_missing_output_and_force_rerun(tmp_path):
    (tmp_path / "a.c").write_text("a")
    (tmp_path / "b.c").write_text("b")
    store = tmp_path / "s.db"
    build(tmp_path, Counter(), store)[0].run()
    (tmp_path / "b.o").unlink()
    counter = Counter()
    build(tmp_path, counter, store)[0].run()
    assert counter.calls == {"cc-b": 1}
    counter = Counter()
    build(tmp_path, counter, store)[0].run(force=["link"])
    assert counter.calls == {"link": 1}
    counter = Counter()
    build(tmp_path, counter, store)[0].run(force=True)
    assert counter.calls == {"cc-a": 1, "cc-b": 1, "link": 1}


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """The input files whose contents a run reads to hash them."""
    from jobgraph import fingerprint as fp

    seen: list[str] = []
    real = fp._hash_file

    def spy(path: str) -> str | None:
        seen.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(fp, "_hash_file", spy)
    return seen


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_touched_input_is_hashed_once_then_known_again_by_its_size_and_mtime(
    tmp_path, hashed, kind
):
    (tmp_path / "a.c").write_text("a")
    (tmp_path / "b.c").write_text("b")
    store = tmp_path / "s.db" if kind == "sqlite" else MemoryStore()
    build(tmp_path, Counter(), store)[0].run()
    assert sorted(hashed) == ["a.c", "b.c"]
    hashed.clear()
    build(tmp_path, Counter(), store)[0].run()
    assert hashed == []  # unchanged: nothing read

    stat = (tmp_path / "a.c").stat()
    os.utime(tmp_path / "a.c", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    counter = Counter()
    report = build(tmp_path, counter, store)[0].run()
    assert counter.calls == {} and report.counts == {jg.State.UP_TO_DATE: 3}
    assert hashed == ["a.c"]  # touched: read once, same content
    hashed.clear()
    report = build(tmp_path, Counter(), store)[0].run()
    assert report.counts == {jg.State.UP_TO_DATE: 3} and hashed == []  # its new mtime kept


@pytest.fixture
def dispatched(monkeypatch) -> list[str]:
    """The jobs a run starts one by one (each cached one then checked when it is met)."""
    from jobgraph.runner import Runner

    seen: list[str] = []
    real = Runner._start

    def spy(self: Runner, i: int) -> None:
        seen.append(self.jobs[i].name)
        real(self, i)

    monkeypatch.setattr(Runner, "_start", spy)
    return seen


@pytest.mark.parametrize("kind", ["sqlite", "memory store", "no store"])
def test_an_unchanged_graph_is_decided_before_any_job_starts(tmp_path, dispatched, kind):
    (tmp_path / "a.c").write_text("a")
    (tmp_path / "b.c").write_text("b")
    store = {"sqlite": tmp_path / "s.db", "memory store": MemoryStore(), "no store": None}[kind]
    first, _ = build(tmp_path, Counter(), store)
    first.run()
    dispatched.clear()
    # Without a store, the scheduler object itself remembers: the same one runs again.
    if store is None:
        scheduler, jobs = first, first_jobs(first)
    else:
        scheduler, jobs = build(tmp_path, Counter(), store)
    report = scheduler.run()
    assert report.counts == {jg.State.UP_TO_DATE: 3} and dispatched == []
    assert jobs["link"].result() == "link" and jobs["a"].result() == "A"

    # A changed input: its job and what depends on it are checked when met, and run.
    (tmp_path / "a.c").write_text("a2")
    counter = Counter()
    scheduler, _ = (first, {}) if store is None else build(tmp_path, counter, store)
    report = scheduler.run()
    assert sorted(dispatched) == ["cc-a", "link"]
    assert report.counts == {jg.State.UP_TO_DATE: 1, jg.State.SUCCEEDED: 2}


def first_jobs(scheduler: jg.Scheduler) -> dict[str, jg.Job]:
    jobs = {job.name: job for job in scheduler.jobs}
    return {"a": jobs["cc-a"], "b": jobs["cc-b"], "link": jobs["link"]}


def test_a_store_of_an_older_jobgraph_still_skips_what_is_unchanged(tmp_path, hashed):
    (tmp_path / "a.c").write_text("a")
    (tmp_path / "b.c").write_text("b")
    store = tmp_path / "s.db"
    build(tmp_path, Counter(), store)[0].run()
    with sqlite3.connect(store) as db:  # as schema 1 left it: successes without stamps
        db.execute("UPDATE successes SET stamp = NULL")
    hashed.clear()
    counter = Counter()
    report = build(tmp_path, counter, store)[0].run()
    assert counter.calls == {} and report.counts == {jg.State.UP_TO_DATE: 3}
    assert hashed == []  # the stored parts' sizes and mtimes still spare the reads
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM successes WHERE stamp IS NULL").fetchone() == (0,)


def test_a_partial_job_runs_again_when_its_bound_arguments_change(tmp_path):
    counter = Counter()
    body = counter.job("p")

    def scheduler(bound: int) -> jg.Scheduler:
        job = jg.Job(functools.partial(body, bound), cache=True, name="p")
        return jg.Scheduler(job, name="s", store=tmp_path / "s.db")

    scheduler(1).run()
    assert scheduler(1).run().counts == {jg.State.UP_TO_DATE: 1}
    assert scheduler(2).explain("p") == ["argument changed"]
    scheduler(2).run()
    assert counter.calls == {"p": 2}


def test_a_success_rewritten_without_its_stamp_is_not_taken_as_unchanged(tmp_path):
    # An older jobgraph sharing the store writes successes without stamps: the column
    # keeps the old stamp, which must not vouch for the new fingerprint.
    counter = Counter()
    job = jg.Job(counter.job("j"), 1, cache=True, name="j")
    jg.Scheduler(job, name="s", store=tmp_path / "s.db").run()
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("UPDATE successes SET fingerprint = 'x' || substr(fingerprint, 2)")
    report = jg.Scheduler(
        jg.Job(counter.job("j"), 1, cache=True, name="j"), name="s", store=tmp_path / "s.db"
    ).run()
    assert report.counts == {jg.State.SUCCEEDED: 1} and counter.calls == {"j": 2}


def test_explain_gives_the_reasons(tmp_path):
    (tmp_path / "a.c").write_text("a")
    (tmp_path / "b.c").write_text("b")
    store = tmp_path / "s.db"
    scheduler, jobs = build(tmp_path, Counter(), store)
    assert scheduler.explain(jobs["a"])[0] == "never ran"
    assert scheduler.explain("link") == [
        "requirement 'cc-a' runs first (decided when it ends)",
        "requirement 'cc-b' runs first (decided when it ends)",
    ]
    scheduler.run()
    scheduler, jobs = build(tmp_path, Counter(), store)
    assert scheduler.explain("link").up_to_date
    (tmp_path / "a.c").write_text("a2")
    (tmp_path / "b.o").unlink()
    assert scheduler.explain("cc-a") == [f"input {tmp_path / 'a.c'} changed"]
    assert scheduler.explain("cc-b") == [f"output {tmp_path / 'b.o'} missing"]
    assert scheduler.explain("cc-b", force=True) == ["forced"]
    plain = jg.Scheduler(jg.Job(lambda: 1, name="p"))
    assert plain.explain("p")[0].startswith("not cached")


def test_code_argument_and_environment_changes_are_noticed(tmp_path, monkeypatch):
    store = tmp_path / "s.db"

    def make(arg: int, code: int) -> jg.Scheduler:
        fn = (lambda x: x + 1) if code == 1 else (lambda x: x + 2)
        return jg.Scheduler(
            jg.Job(fn, arg, cache=True, env_keys=["JG_MODE"], name="j"), name="s", store=store
        )

    monkeypatch.setenv("JG_MODE", "fast")
    make(1, 1).run()
    assert make(1, 1).explain("j").up_to_date
    assert make(2, 1).explain("j") == ["argument changed"]
    assert make(1, 2).explain("j") == ["code changed"]
    monkeypatch.setenv("JG_MODE", "slow")
    assert make(1, 1).explain("j") == ["environment variable JG_MODE changed"]


@pytest.mark.parametrize(
    "args", [(), ("x",), (1, 2.5, None, True, "\u00e9\n"), ("a" * 100, -3), (1.0, 1, True)]
)
def test_plain_arguments_digest_as_the_general_encoding_does(args):
    # The one-step encoding of plain positional arguments gives the general path's bytes:
    # stored fingerprints stay valid, and 1, 1.0 and True stay apart.
    from jobgraph import fingerprint as fp

    job = jg.Job(lambda *a: None, *args)
    assert fp._arguments(job) == fp.digest([job._args, {}])
    assert fp._arguments(jg.Job(lambda *a: None, 1)) != fp._arguments(jg.Job(lambda *a: None, 1.0))


def test_fingerprints_do_not_depend_on_the_hash_seed(tmp_path):
    script = textwrap.dedent(
        """
        import jobgraph as jg
        from jobgraph import fingerprint as fp
        def f(x): return x in {"red", "green", "blue"}
        job = jg.Job(f, {"b": {1, 2, "x"}, "a": frozenset({"q", "r"})}, cache=True, name="f")
        s = jg.Scheduler(job)
        print(fp.fingerprint(fp.parts_of(job, {}, None)), fp.stamp_of(job, {})[0])
        """
    )
    seen = set()
    for seed in ("0", "1", "123", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        seen.add(out.stdout.strip())
    assert len(seen) == 1 and [len(d) for d in seen.pop().split()] == [64, 64]


def test_cached_jobs_are_remembered_in_process_without_a_store():
    counter = Counter()
    job = jg.Job(counter.job("j"), 5, cache=True, name="j")
    scheduler = jg.Scheduler(job)
    scheduler.run()
    report = scheduler.run()
    assert counter.calls == {"j": 1} and report.counts == {jg.State.UP_TO_DATE: 1}


# -- ownership and store errors -------------------------------------------------------


def test_a_second_runner_of_a_live_run_gets_a_clear_error(tmp_path):
    store = tmp_path / "s.db"
    first = chain(store, Counter(), fail_c=True).run()
    db = SQLiteStore(store)
    db.acquire(first.run_id, "otherhost:1:abc", ttl=60, now=__import__("time").time())
    with pytest.raises(RunLockedError, match="being run by otherhost"):
        chain(store, Counter()).run(resume=first.run_id)


def test_a_run_whose_owner_died_on_this_machine_is_taken_over(tmp_path):
    import socket
    import time

    store = tmp_path / "s.db"
    first = chain(store, Counter(), fail_c=True).run()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    db = SQLiteStore(store)
    db.acquire(first.run_id, f"{socket.gethostname()}:{dead.pid}:x", ttl=60, now=time.time())
    assert chain(store, Counter()).run(resume=first.run_id).ok


def test_a_hard_store_error_stops_the_run_with_store_error(tmp_path):
    class Broken(jg.store.MemoryStore if hasattr(jg, "store") else object):  # type: ignore[misc]
        pass

    from jobgraph.store import MemoryStore

    class FailingStore(MemoryStore):
        def record(self, run_id, starts, ends):
            raise jg.StoreError("disk I/O error")

    jobs = [jg.Job(lambda: 1, name=f"j{k}") for k in range(5)]
    with pytest.raises(jg.StoreError, match="disk I/O error"):
        jg.Scheduler(*jobs, store=FailingStore()).run()


LONG_RUN = textwrap.dedent(
    """
    import sys, time
    import jobgraph as jg
    def slow():
        time.sleep(30)
    jg.Scheduler(jg.Job(slow, name="slow"), name="long", store=sys.argv[1]).run()
    """
)


def test_two_processes_on_one_run_one_wins_then_the_other_takes_over(tmp_path):
    import signal
    import time

    store = tmp_path / "s.db"
    first = subprocess.Popen([sys.executable, "-c", LONG_RUN, str(store)])
    try:
        deadline = time.monotonic() + 20
        run_id = None
        while run_id is None and time.monotonic() < deadline:
            time.sleep(0.1)
            if store.exists():
                runs = SQLiteStore(store).runs()
                run_id = runs[0].run_id if runs else None
        assert run_id is not None
        second = jg.Scheduler(jg.Job(lambda: None, name="slow"), name="long", store=store)
        started = time.monotonic()
        with pytest.raises(RunLockedError, match=f"run {run_id} is being run by"):
            second.run(resume=run_id)
        assert time.monotonic() - started < 1.0
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    report = second.run(resume=run_id)  # the owner is dead: taken over at once
    assert report.ok and report.run_id == run_id


def test_a_subgraph_takes_outside_results_from_the_store(tmp_path):
    store = tmp_path / "s.db"

    def graph() -> tuple[jg.Scheduler, jg.Job]:
        a = jg.Job(lambda: 20, name="a")
        b = jg.Job(lambda x: x + 1, a, name="b")
        c = jg.Job(lambda x: x * 2, b, name="c")
        return jg.Scheduler(c, name="chain3", store=store), b

    graph()[0].run()  # records a's result
    scheduler, b = graph()  # new objects, as in another process: no result in memory
    report = scheduler.subgraph(starts=b).run()
    assert report.ok and b.result() == 21
    with pytest.raises(jg.MissingDependencyError, match="none in the store"):
        jg.Scheduler(
            jg.Job(lambda x: x, jg.Job(lambda: 1, name="q"), name="r"), name="other", store=store
        ).subgraph(starts="r").run()


def test_a_scheduler_run_again_passes_its_jobs_the_new_results():
    made = iter(range(1, 100))
    a = jg.Job(lambda: next(made), name="a")
    b = jg.Job(lambda value: value * 10, a, name="b")
    scheduler = jg.Scheduler(b, name="again")
    assert scheduler.run().ok and b.result() == 10
    assert scheduler.run().ok and b.result() == 20


def test_a_result_that_cannot_be_digested_makes_its_dependents_run_not_the_run_fail(tmp_path):
    huge = 10**5000  # digesting it raises ValueError (too many digits for str)
    store = tmp_path / "s.db"

    def graph(counter: Counter) -> jg.Scheduler:
        big = jg.Job(counter.job("big", huge), cache=True, name="big")
        use = jg.Job(counter.job("use"), big, cache=True, name="use")
        return jg.Scheduler(use, name="huge", store=store)

    assert graph(Counter()).run().ok
    counter = Counter()
    report = graph(counter).run()
    assert report.ok and counter.calls == {"use": 1}
    assert report.counts == {jg.State.UP_TO_DATE: 1, jg.State.SUCCEEDED: 1}


def test_a_job_run_only_on_failure_is_skipped_when_its_requirements_are_up_to_date(tmp_path):
    store = tmp_path / "s.db"

    def graph(run_if: str) -> jg.Scheduler:
        a = jg.Job(Counter().job("a"), cache=True, name="a")
        b = jg.Job(Counter().job("b"), requires=[a], cache=True, run_if=run_if, name="b")
        return jg.Scheduler(b, name="cleanup", store=store)

    assert graph("success").run().counts == {jg.State.SUCCEEDED: 2}
    report = graph("failure").run()
    assert report.counts == {jg.State.UP_TO_DATE: 1, jg.State.SKIPPED: 1}


def test_jobs_up_to_date_at_the_start_end_within_the_run(tmp_path):
    (tmp_path / "a.c").write_text("a")
    (tmp_path / "b.c").write_text("b")
    store = tmp_path / "s.db"
    build(tmp_path, Counter(), store)[0].run()
    report = build(tmp_path, Counter(), store)[0].run()
    assert report.counts == {jg.State.UP_TO_DATE: 3}
    assert len(report.jobs) == 3
    assert all(report.started_at_ts <= r.started_at == r.ended_at for r in report.jobs)
    ends = SQLiteStore(store).job_ends(report.run_id)
    assert all(report.started_at_ts <= end.started_at for end in ends.values())


def journal_bytes(store: Path, run_id: str) -> int:
    with sqlite3.connect(store) as db:
        query = "SELECT sum(length(ends)) FROM journal WHERE run_id = ?"
        return int(db.execute(query, (run_id,)).fetchone()[0])


def big_graph(src: Path, store: Path) -> tuple[jg.Scheduler, jg.Job]:
    def read(path: str) -> str:
        return Path(path).read_text() * 20_000

    a = jg.Job(read, str(src), inputs=[str(src)], name="a")
    b = jg.Job(len, a, cache=True, name="b")
    return jg.Scheduler(b, name="big", store=store), b


def test_an_up_to_date_rerun_refers_to_the_stored_results_instead_of_storing_them_again(
    tmp_path,
):
    src, store = tmp_path / "in.txt", tmp_path / "s.db"
    src.write_text("abcde")
    first = big_graph(src, store)[0].run()
    rerun = big_graph(src, store)[0].run()
    assert rerun.counts == {jg.State.UP_TO_DATE: 2}
    assert journal_bytes(store, first.run_id) > 100_000  # a's result, once
    assert journal_bytes(store, rerun.run_id) < 2_000  # names and states, no result again

    ends = SQLiteStore(store).job_ends(rerun.run_id)
    assert pickle.loads(ends["a"].result) == "abcde" * 20_000
    assert pickle.loads(ends["b"].result) == 100_000
    shown = {r.name: r.result for r in jg.Report.from_store(SQLiteStore(store), rerun.run_id).jobs}
    assert shown["b"] == "100000" and shown["a"].startswith("'abcdeabcde")

    scheduler, b = big_graph(src, store)
    resumed = scheduler.run(resume=rerun.run_id)  # results come from the successes
    assert resumed.counts == {jg.State.UP_TO_DATE: 2} and b.result() == 100_000
    scheduler, b = big_graph(src, store)
    assert scheduler.subgraph(starts=b).run().ok and b.result() == 100_000


def shown_results(store: Path, run_id: str) -> dict[str, str | None]:
    report = jg.Report.from_store(SQLiteStore(store), run_id)
    return {r.name: r.result for r in report.jobs}


def test_an_up_to_date_result_is_read_from_the_run_that_made_it_once_its_success_changed(
    tmp_path,
):
    src, store = tmp_path / "in.txt", tmp_path / "s.db"
    src.write_text("one")
    big_graph(src, store)[0].run()
    rerun = big_graph(src, store)[0].run()
    src.write_text("three")
    assert big_graph(src, store)[0].run().counts == {jg.State.SUCCEEDED: 2}  # new successes

    # The rerun's ends refer to the first run's results, which that run's journal keeps.
    assert shown_results(store, rerun.run_id)["b"] == "60000"
    scheduler, b = big_graph(src, store)
    resumed = scheduler.run(resume=rerun.run_id)  # a finished run: everything was done
    assert resumed.counts == {jg.State.UP_TO_DATE: 2} and b.result() == 3 * 20_000


def test_a_forced_rerun_does_not_change_what_an_earlier_up_to_date_end_shows(tmp_path):
    made = iter(range(1, 10))

    def graph() -> jg.Scheduler:
        return jg.Scheduler(jg.Job(lambda: next(made), cache=True, name="a"), name="f", store=store)

    store = tmp_path / "s.db"
    graph().run()  # a = 1
    rerun = graph().run()  # up to date: a = 1
    forced = graph().run(force=True)  # the same fingerprint, a new success: a = 2
    assert shown_results(store, forced.run_id)["a"] == "2"
    assert shown_results(store, rerun.run_id)["a"] == "1"


def test_a_run_whose_up_to_date_results_are_gone_is_not_resumed_but_refused(tmp_path):
    src, store, broken = tmp_path / "in.txt", tmp_path / "s.db", tmp_path / "broken"
    seen: list[tuple[str, int]] = []

    def graph() -> jg.Scheduler:
        def check(text: str, size: int) -> int:
            seen.append((text[:5], size))
            if broken.exists():
                raise ValueError("broken")
            return size

        a = jg.Job(lambda path: Path(path).read_text() * 2, str(src), inputs=[src], name="a")
        b = jg.Job(len, a, name="b")
        return jg.Scheduler(jg.Job(check, a, b, name="c"), name="mixed", store=store)

    src.write_text("one")
    broken.touch()
    first = graph().run()
    failed = graph().run()  # a up to date (the first run's result), b ran, c failed
    src.write_text("three")
    graph().run()  # a new success for a
    db = SQLiteStore(store)
    assert db.delete_runs([first.run_id], now=time.time()) == [first.run_id]
    db.close()

    # a's result in the failed run is gone: going on would give c the old b with a new a,
    # or give a second result to jobs of that run. It is refused, and left resumable by
    # nobody else's lease.
    broken.unlink()
    seen.clear()
    with pytest.raises(jg.StoreError, match=f"run {failed.run_id} cannot be resumed: the "):
        graph().run(resume=failed.run_id)
    assert seen == []
    shown = shown_results(store, failed.run_id)
    assert shown["a"] == "<no longer kept: the run that made it was deleted>"
    assert graph().run().ok and seen == [("three", 10)]  # a new run decides a as usual


def test_a_touched_input_keeps_the_result_with_the_renewed_success(tmp_path):
    src, store = tmp_path / "in.txt", tmp_path / "s.db"
    src.write_text("abcde")
    big_graph(src, store)[0].run()
    stat = src.stat()
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert big_graph(src, store)[0].run().counts == {jg.State.UP_TO_DATE: 2}
    success = SQLiteStore(store).last_success("big", "a")
    assert success is not None and pickle.loads(success.result) == "abcde" * 20_000
    scheduler, b = big_graph(src, store)
    assert scheduler.run().counts == {jg.State.UP_TO_DATE: 2} and b.result() == 100_000


def test_a_run_records_its_graph_digest_and_a_resume_says_when_the_graph_changed(tmp_path):
    store = tmp_path / "s.db"
    first = chain(store, Counter(), fail_c=True).run()
    again = chain(store, Counter(), fail_c=True).run()
    runs = {r.run_id: r.graph_digest for r in SQLiteStore(store).runs()}
    assert len(runs[first.run_id]) == 64 and runs[first.run_id] == runs[again.run_id]

    same = chain(store, Counter()).run(resume=again.run_id)
    assert same.ok and same.notes == []
    counter = Counter()
    grown = chain(store, counter, fail_c=True)
    grown.add(jg.Job(counter.job("d"), name="d"))
    resumed = grown.run(resume=first.run_id)
    assert resumed.notes == [
        f"the graph changed since run {first.run_id} started: its jobs are matched by name, "
        "and the jobs new to it run"
    ]
    assert counter.calls == {"c": 1, "d": 1}  # a and b were done in that run
    assert {r.run_id: r.graph_digest for r in SQLiteStore(store).runs()}[first.run_id] == (
        runs[first.run_id]  # the run keeps the digest of the graph it started with
    )


def test_paths_and_a_single_path_are_inputs_and_outputs_as_strings_are(tmp_path):
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("data")
    ran: list[int] = []

    def copy() -> None:
        ran.append(1)
        out.write_text(src.read_text())

    def graph() -> jg.Scheduler:
        # A pathlib.Path, and one path given alone: not the characters of a string.
        job = jg.Job(copy, inputs=src, outputs=[out], env_keys="HOME", name="copy")
        assert (job.inputs, job.outputs, job.env_keys) == ((str(src),), (str(out),), ("HOME",))
        return jg.Scheduler(job, name="paths", store=tmp_path / "s.db")

    assert graph().run().ok
    assert graph().run().counts == {jg.State.UP_TO_DATE: 1} and ran == [1]
    src.write_text("changed")
    assert graph().run().counts == {jg.State.SUCCEEDED: 1} and ran == [1, 1]
