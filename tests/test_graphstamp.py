"""The graph stamp: a rerun of an unchanged graph is decided by one comparison, and that
decision is always the one the jobs' own checks would make."""

from __future__ import annotations

import functools
import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import jobgraph as jg
from jobgraph import fingerprint
from jobgraph.store import GraphSnapshot, MemoryStore, SQLiteStore, Store
from store import pg

_draws = itertools.count()


class Ledger:
    """Which jobs ran (plain functions run in threads: list.append is atomic)."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def read(self, name: str) -> Callable[[str], str]:
        def body(path: str) -> str:
            self.ran.append(name)
            return Path(path).read_text()

        body.__name__ = body.__qualname__ = "read"
        return body

    def upper(self, name: str) -> Callable[..., str]:
        def body(text: str, *rest: object) -> str:
            self.ran.append(name)
            return text.upper()

        body.__name__ = body.__qualname__ = "upper"
        return body

    def lower(self, name: str) -> Callable[..., str]:
        def body(text: str, *rest: object) -> str:
            self.ran.append(name)
            return text.lower()

        body.__name__ = body.__qualname__ = "upper"  # the same name, other code
        return body

    def draw(self, name: str) -> Callable[[], int]:
        def body() -> int:
            self.ran.append(name)
            return next(_draws)  # another result at each run

        body.__name__ = body.__qualname__ = "draw"
        return body

    def write(self, name: str) -> Callable[[str, int], str]:
        def body(text: str, number: int) -> str:
            self.ran.append(name)
            Path("out.txt").write_text(f"{text} {number}")
            return "out.txt"

        body.__name__ = body.__qualname__ = "write"
        return body


def graph(
    ledger: Ledger,
    store: object,
    *,
    arg: int = 1,
    lower: bool = False,
    extra: bool = False,
    only_draw: bool = False,
) -> jg.Scheduler:
    """read(a.txt) -> upper -> write(out.txt) <- draw, with environment and arguments."""
    draw = jg.Job(ledger.draw("draw"), cache=True, name="draw")
    if only_draw:  # another graph under the same scheduler name
        return jg.Scheduler(draw, name="g", store=store)
    read = jg.Job(ledger.read("read"), "a.txt", inputs="a.txt", name="read")
    body = ledger.lower("upper") if lower else ledger.upper("upper")
    upper = jg.Job(body, read, arg, cache=True, env_keys="JG_TEST_FLAVOUR", name="upper")
    write = jg.Job(ledger.write("write"), upper, draw, outputs="out.txt", name="write")
    jobs = [read, upper, draw, write]
    if extra:
        jobs.append(jg.Job(ledger.upper("extra"), read, cache=True, name="extra"))
    return jg.Scheduler(*jobs, name="g", store=store)


def run(store: object, **options: object) -> tuple[dict[str, str], list[str]]:
    """One run of the graph in the working folder: each job's state, and what ran."""
    force = options.pop("force", None)
    ledger = Ledger()
    report = graph(ledger, store, **options).run(force=force)  # type: ignore[arg-type]
    assert report.ok, report.why()
    return {job.name: job.state.name for job in report.jobs}, sorted(ledger.ran)


def _edit(path: str, text: str | None = None) -> None:
    """Change a file's content (or, without text, only its time)."""
    if text is not None:
        Path(path).write_text(text)
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))


# Each change is made to a folder where the graph ran once; some run other graphs first.
CHANGES: dict[str, Callable[[], dict[str, object]]] = {
    "nothing": lambda: {},
    "input touched, same content": lambda: _edit("a.txt") or {},
    "input edited": lambda: _edit("a.txt", "other text") or {},
    "argument": lambda: {"arg": 2},
    "code": lambda: {"lower": True},
    "environment": lambda: os.environ.__setitem__("JG_TEST_FLAVOUR", "salt") or {},
    "output deleted": lambda: os.remove("out.txt") or {},
    "a job added": lambda: {"extra": True},
    "forced": lambda: {"force": True},
    "one job forced": lambda: {"force": ["upper"]},
}


def _between(store: object, **options: object) -> dict[str, object]:
    run(store, **options)
    return {}


DRAW_ALONE = "draw forced alone (a new result for a requirement)"
# Changes made by another run under the same scheduler name, before the graph runs again.
BETWEEN: dict[str, Callable[[object], dict[str, object]]] = {
    # The same shape, another argument: that run keeps a graph stamp of its own.
    "a run of the same shape with another argument": lambda store: _between(store, arg=3),
    # Another shape: the rerun finds this graph's stamp, but a success it names is gone.
    DRAW_ALONE: lambda store: _between(store, only_draw=True, force=True),
    "a run with one more job": lambda store: _between(store, extra=True),
}


def _decide(folder: Path, stamps: bool, options: dict[str, object], monkeypatch) -> object:
    monkeypatch.chdir(folder)
    with monkeypatch.context() as patch:
        if not stamps:
            patch.setattr(SQLiteStore, "graph_snapshot", lambda self, scheduler, digest: None)
        return run(folder / "state.db", **options)


def _agree(tmp_path: Path, monkeypatch, change: Callable[[], dict[str, object]]) -> object:
    """Decide the rerun after ``change`` with graph stamps and without (each in its own copy
    of the folder, files and store alike); both must run the same jobs to the same ends."""
    monkeypatch.setenv("JG_TEST_FLAVOUR", "plain")  # (put back after the test)
    folder = tmp_path / "with"
    folder.mkdir()
    monkeypatch.chdir(folder)
    Path("a.txt").write_text("some text")
    run(folder / "state.db")
    options = change()
    shutil.copytree(folder, tmp_path / "without")  # times kept to the nanosecond
    with_stamps = _decide(folder, True, options, monkeypatch)
    without = _decide(tmp_path / "without", False, options, monkeypatch)
    assert with_stamps == without
    return with_stamps


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_a_rerun_decides_as_its_jobs_own_checks_do(tmp_path, monkeypatch, change):
    decided = _agree(tmp_path, monkeypatch, CHANGES[change])
    if change == "nothing":
        assert decided == ({n: "UP_TO_DATE" for n in ("read", "upper", "draw", "write")}, [])


@pytest.mark.parametrize("between", list(BETWEEN), ids=list(BETWEEN))
def test_a_rerun_after_another_graphs_run_decides_as_its_jobs_own_checks_do(
    tmp_path, monkeypatch, between
):
    store = tmp_path / "with" / "state.db"
    _agree(tmp_path, monkeypatch, lambda: BETWEEN[between](store))


def test_a_requirement_rerun_alone_makes_what_used_its_result_run_again(tmp_path, monkeypatch):
    # The case the successes in the stamp are for: nothing of the graph's own changed.
    store = tmp_path / "with" / "state.db"
    states, ran = _agree(tmp_path, monkeypatch, lambda: BETWEEN[DRAW_ALONE](store))
    assert ran == ["write"] and states["draw"] == "UP_TO_DATE"


def _stamps_made(monkeypatch) -> list[int]:
    made: list[int] = []
    original = fingerprint.stamp_with

    def counted(*args: object) -> str | None:
        made.append(1)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(fingerprint, "stamp_with", counted)
    return made


@pytest.mark.parametrize("kind", ["sqlite", "memory store", "postgres"])
def test_an_unchanged_rerun_makes_no_stamp_of_any_job(tmp_path, monkeypatch, kind):
    if kind == "postgres":
        with pg.fresh_schema() as url:
            _unchanged_rerun(tmp_path, monkeypatch, url)
    else:
        _unchanged_rerun(
            tmp_path, monkeypatch, tmp_path / "state.db" if kind == "sqlite" else MemoryStore()
        )


def _unchanged_rerun(tmp_path: Path, monkeypatch, store: object) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JG_TEST_FLAVOUR", "plain")
    Path("a.txt").write_text("some text")
    run(store)
    made = _stamps_made(monkeypatch)
    ledger = Ledger()
    scheduler = graph(ledger, store)
    report = scheduler.run()
    assert made == [] and ledger.ran == []
    assert {job.name: job.result() for job in scheduler.jobs if job.name != "draw"} == {
        "read": "some text",
        "upper": "SOME TEXT",
        "write": "out.txt",
    }
    assert report.counts == {jg.State.UP_TO_DATE: 4}
    Path("a.txt").write_text("changed")  # then the jobs are decided one by one again
    _, ran = run(store)
    assert made and ran == ["read", "upper", "write"]


def test_only_a_run_whose_every_job_is_cached_and_ended_well_keeps_a_graph_stamp(tmp_path):
    store = tmp_path / "s.db"

    def keeps(*jobs: jg.Job) -> bool:
        report = jg.Scheduler(*jobs, name="k", store=store).run()
        found = SQLiteStore(store)
        try:
            last = found.find_run("k", report.run_id)
            assert last is not None
            return found.graph_snapshot("k", last.graph_digest) is not None
        finally:
            found.close()

    def fails() -> None:
        raise ValueError("no")

    assert keeps(jg.Job(str.upper, "a", cache=True, name="a"))
    assert not keeps(jg.Job(str.upper, "b", name="b"))  # not cached: it always runs
    assert not keeps(jg.Job(fails, cache=True, name="c"))


async def _coro_job(x: int) -> int:
    return x


def test_the_materials_of_a_graph_are_each_jobs_own(tmp_path):
    # materials_of makes the usual jobs' materials in a loop of its own: the same texts.
    (tmp_path / "in.txt").write_text("x")
    (tmp_path / "b.txt").write_text("y")
    (tmp_path / "dir").mkdir()
    folder, inp = str(tmp_path), str(tmp_path / "in.txt")
    jobs = [
        jg.Job(str.upper, "a", cache=True, name="plain"),
        jg.Job(len, inp, inputs=inp, name="one input"),
        jg.Job(len, inp, inputs=[inp, str(tmp_path / "b.txt")], name="two inputs"),
        jg.Job(len, 1, 2.5, None, True, inputs=f"{folder}/*.txt", name="pattern"),
        jg.Job(len, inputs=str(tmp_path / "gone.txt"), name="missing input"),
        jg.Job(len, inputs=str(tmp_path / "dir"), name="a folder"),
        jg.Job(len, [1, 2], cache=True, name="a list"),
        jg.Job(dict, a=1, cache=True, name="keywords"),
        jg.Job(str.upper, "a", cache=True, env_keys=["HOME", "JG_NONE"], name="env"),
        jg.Job(_coro_job, 3, cache=True, name="coroutine function"),
        jg.Job(functools.partial(len, "ab"), cache=True, name="partial"),
        jg.Job(_coro_job(4), cache=True, name="coroutine object"),
        jg.Shell("echo hi", inputs=inp, cwd=folder, name="shell"),
    ]
    try:
        materials = [fingerprint.material_of(job)[0] for job in jobs]
        assert fingerprint.materials_of(jobs) == materials
        assert materials.count(None) == 3  # the coroutine object's, a missing file's, a folder's

    finally:
        jobs[-2]._fn.close()


def _snapshot_of(store_path: Path, scheduler: str) -> GraphSnapshot | None:
    """The graph snapshot kept for the graph of the scheduler's newest run of a graph."""
    found = SQLiteStore(store_path)
    try:
        last = next(r for r in found.runs() if r.scheduler == scheduler and r.graph_digest)
        return found.graph_snapshot(scheduler, last.graph_digest)
    finally:
        found.close()


def _load_function(path: Path, name: str = "f") -> Callable[..., object]:
    """A new function object at each call, from a module of one name read from ``path``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("jg_code", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)  # type: ignore[no-any-return]


def test_a_functions_code_stands_in_its_stamp_by_its_files_size_and_time(tmp_path):
    source = tmp_path / "work.py"
    source.write_text("def f(x):\n    return x  # first\n")
    key = fingerprint._code_key(_load_function(source))
    assert key is not None and fingerprint._code_key(_load_function(source)) == key
    _edit(str(source), "def f(x):\n    return x  # second\n")  # the same bytecode
    assert fingerprint._code_key(_load_function(source)) not in (key, None)
    namespace: dict[str, object] = {}
    exec(compile("def g(): return 1", "<string>", "exec"), namespace)
    exec(compile("def h(): return 1", "relative.py", "exec"), namespace)
    assert fingerprint._code_key(namespace["g"]) is None  # no file: its code digest, then
    assert fingerprint._code_key(namespace["h"]) is None  # found from another folder?
    assert fingerprint._code_key(functools.partial(len, "a")) is None


def test_every_success_in_a_graph_snapshot_is_each_ones_own(tmp_path, monkeypatch):
    from jobgraph.recorder import Recorder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JG_TEST_FLAVOUR", "plain")
    Path("a.txt").write_text("some text")
    run(tmp_path / "state.db")
    snapshot = _snapshot_of(tmp_path / "state.db", "g")
    assert snapshot is not None
    recorder = Recorder(graph(Ledger(), None), tmp_path / "state.db")
    names = ["read", "upper", "draw", "write"]  # the plan's order
    try:
        each = [recorder.remembered(name) for name in names]
        recorder._names = names
        assert recorder.remembered_in(snapshot) == each and None not in each
        recorder._names = [*names, "never ran"]
        assert recorder.remembered_in(snapshot) is None  # a copy of another graph's
        recorder._names = names
        assert recorder.remembered_in(snapshot._replace(payload=b"damaged")) is None
    finally:
        recorder.close()


class Tagged:
    """A result with no canonical encoding but its pickle (which holds a set)."""

    def __init__(self) -> None:
        self.tags = {"a", "b", "c"}


def test_a_run_keeps_no_graph_stamp_when_a_required_result_digests_by_its_pickle(tmp_path):
    # Its digest may differ in another process (a set's order follows the hash seed):
    # the jobs' own checks decide there, as they would have.
    store = tmp_path / "s.db"
    tagged = jg.Job(Tagged, cache=True, name="tagged")
    jg.Scheduler(jg.Job(repr, tagged, cache=True, name="shown"), name="t", store=store).run()
    plain = jg.Job(str.upper, "x", cache=True, name="plain")
    jg.Scheduler(jg.Job(len, plain, cache=True, name="length"), name="p", store=store).run()
    found = SQLiteStore(store)
    try:
        stamps = {
            run.scheduler: found.graph_snapshot(run.scheduler, run.graph_digest)
            for run in found.runs()
        }
    finally:
        found.close()
    assert stamps["t"] is None and stamps["p"] is not None
    assert not fingerprint.portable(Tagged()) and fingerprint.portable({"a": [1, "b"]})


def test_an_error_in_the_graph_stamp_check_leaves_the_jobs_to_their_own_checks(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JG_TEST_FLAVOUR", "plain")
    Path("a.txt").write_text("some text")
    run(tmp_path / "state.db")

    def broken(jobs: object) -> list[str]:
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(fingerprint, "materials_of", broken)
    assert run(tmp_path / "state.db") == (
        {n: "UP_TO_DATE" for n in ("read", "upper", "draw", "write")},
        [],
    )


def test_a_store_of_ones_own_without_graph_stamps_still_skips_what_is_unchanged(
    tmp_path, monkeypatch
):
    # store= takes any Store: one written before graph stamps has the base's defaults.
    class Plain(MemoryStore):
        success_generation = Store.success_generation
        keep_graph_snapshot = Store.keep_graph_snapshot
        graph_snapshot = Store.graph_snapshot

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JG_TEST_FLAVOUR", "plain")
    Path("a.txt").write_text("some text")
    store = Plain()
    run(store)
    made = _stamps_made(monkeypatch)
    assert run(store) == ({n: "UP_TO_DATE" for n in ("read", "upper", "draw", "write")}, [])
    assert made  # decided job by job


def test_a_damaged_graph_snapshot_leaves_the_jobs_to_their_own_checks(tmp_path, monkeypatch):
    original = SQLiteStore.graph_snapshot

    def damaged(self: SQLiteStore, scheduler: str, digest: str) -> GraphSnapshot | None:
        found = original(self, scheduler, digest)
        return None if found is None else found._replace(payload=b"\x80damaged")

    monkeypatch.setattr(SQLiteStore, "graph_snapshot", damaged)
    decided = _agree(tmp_path, monkeypatch, CHANGES["nothing"])
    assert decided == ({n: "UP_TO_DATE" for n in ("read", "upper", "draw", "write")}, [])


def test_a_run_whose_results_weigh_too_much_keeps_no_graph_snapshot(tmp_path, monkeypatch):
    from jobgraph import recorder

    monkeypatch.setattr(recorder, "_VIEW_BYTES", 8)  # less than the results' pickles
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JG_TEST_FLAVOUR", "plain")
    Path("a.txt").write_text("some text")
    run(tmp_path / "state.db")
    assert _snapshot_of(tmp_path / "state.db", "g") is None
    made = _stamps_made(monkeypatch)
    assert run(tmp_path / "state.db") == (
        {n: "UP_TO_DATE" for n in ("read", "upper", "draw", "write")},
        [],
    )
    assert made  # decided job by job
    # ... and a run that wrote nothing keeps no heavy copy of what others wrote either.
    assert _snapshot_of(tmp_path / "state.db", "g") is None


def _meddling_graph(store: Path, arg: int, ran: list[str]) -> jg.Scheduler:
    """x -> a; with ``arg=2``, a's body writes a new success of x from another run."""

    def draw() -> int:
        ran.append("x")
        return next(_draws)

    def body(value: int, number: int) -> int:
        ran.append("a")
        if number == 2:  # another run of the scheduler, while this one goes on
            other = jg.Job(draw, cache=True, name="x")
            jg.Scheduler(other, name="m", store=store).run(force=True)
        return value

    x = jg.Job(draw, cache=True, name="x")
    return jg.Scheduler(x, jg.Job(body, x, arg, cache=True, name="a"), name="m", store=store)


def test_a_success_written_by_another_run_meanwhile_leaves_no_graph_snapshot(tmp_path):
    # Taken from this run's own view, the copy would hold x's old success, which the other
    # run replaced: the next run would find everything up to date with x's old result.
    store, ran = tmp_path / "s.db", []
    _meddling_graph(store, 1, ran).run()
    assert _snapshot_of(store, "m") is not None
    report = _meddling_graph(store, 2, ran).run()
    assert report.ok and {j.name: j.state.name for j in report.jobs}["x"] == "UP_TO_DATE"
    assert _snapshot_of(store, "m") is None
    del ran[:]
    _meddling_graph(store, 2, ran).run()  # decided job by job: x's result is another now
    assert ran == ["a", "x"]  # (the body's other run draws x again)


def test_a_success_written_before_the_run_read_the_successes_leaves_no_graph_snapshot(
    tmp_path, monkeypatch
):
    # The count is read first: a success written between the two reads makes the view's
    # count too low, and the run keeps no snapshot (its copy would have that success).
    store = tmp_path / "state.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JG_TEST_FLAVOUR", "plain")
    Path("a.txt").write_text("some text")
    run(store)
    _edit("a.txt")  # touched: decided job by job, reading the successes
    original = SQLiteStore.successes_unparted

    def meanwhile(self: SQLiteStore, scheduler: str) -> object:
        monkeypatch.setattr(SQLiteStore, "successes_unparted", original)
        other = SQLiteStore(store)
        try:
            other.create_run(jg.store.RunInfo("elsewhere", "g", 1.0))
            other.record(
                "elsewhere",
                [],
                [jg.store.JobEnd("extra", "SUCCEEDED", fingerprint="f", parts="{}")],
            )
        finally:
            other.close()
        return original(self, scheduler)

    monkeypatch.setattr(SQLiteStore, "successes_unparted", meanwhile)
    states, ran = run(store)
    assert ran == [] and set(states.values()) == {"UP_TO_DATE"}
    assert _snapshot_of(store, "g") is None


def test_ends_that_all_refer_to_their_successes_are_recorded_as_one_by_one(tmp_path, monkeypatch):
    from jobgraph import recorder

    monkeypatch.setenv("JG_TEST_FLAVOUR", "plain")
    folder = tmp_path / "quick"
    folder.mkdir()
    monkeypatch.chdir(folder)
    Path("a.txt").write_text("some text")
    run(folder / "state.db")
    shutil.copytree(folder, tmp_path / "slow")
    ends, original, quick = {}, recorder._all_same_results, []

    def watched(*args: object) -> object:
        found = original(*args)  # type: ignore[arg-type]
        quick.append(found is not None)
        return found

    for copy in ("quick", "slow"):
        monkeypatch.chdir(tmp_path / copy)
        with monkeypatch.context() as patch:
            patch.setattr(recorder, "_all_same_results", watched)
            if copy == "slow":
                patch.setattr(recorder, "_all_same_results", lambda *args: None)
            run(tmp_path / copy / "state.db")
        found = SQLiteStore(tmp_path / copy / "state.db")
        try:
            last = found.find_run("g", "last")
            assert last is not None
            ends[copy] = {
                name: end._replace(started_at=None, ended_at=None)
                for name, end in found.recorded_ends(last.run_id).items()
            }
        finally:
            found.close()
    assert quick == [True]  # the quick copy took the batch at once
    assert ends["quick"] == ends["slow"] and len(ends["quick"]) == 4
