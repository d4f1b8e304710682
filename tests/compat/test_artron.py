"""jobgraph.compat.artron: artron's documented behaviour, on jobgraph's engine."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import jobgraph as jg
from compat import artron_builders
from compat.artron_builders import Bakery, Clock, Flaky, Fragile, Odd
from jobgraph.compat.artron import Graph, Manager, Task, TaskDependenciesError
from jobgraph.compat.artron.task import Task as TaskFromModule
from jobgraph.compat.artron.utils import strdate, strgmtime
from procs import alive, children_of, live_processes_with

DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
DURATION = re.compile(r"^\d\d:\d\d:\d\d$")
RECORD_KEYS = {
    *("tid", "inputs", "func", "require", "state", "results", "date_created"),
    *("date_start", "date_end", "time_duration", "time_duration_str"),
}


class Progress:
    """Like the progress bar of artron's README: update(count), close(), n."""

    def __init__(self) -> None:
        self.n = 0
        self.updates: list[int] = []
        self.closed = 0

    def update(self, count: int = 1) -> None:
        self.n += count
        self.updates.append(count)

    def close(self) -> None:
        self.closed += 1


def spawned_children() -> set[int]:
    """This process's live worker processes (multiprocessing's resource tracker aside)."""
    return set(children_of(os.getpid())) & set(live_processes_with("spawn_main"))


def wait_for_file(path: str, seconds: float = 60) -> bool:
    """Wait until ``path`` exists (a worker got that far); False after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def interrupt_once_there(path: str) -> threading.Thread:
    """Ctrl-C (SIGINT to this process) once ``path`` exists: the task is running then."""

    def interrupt() -> None:
        if wait_for_file(path):
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    return thread


def read_pid(path: str) -> int:
    with open(path) as f:
        return int(f.read())


def bakery_manager(**options: object) -> Manager:
    """The README's example in our words: six tasks, one fails, two depend on it."""
    manager = Manager(Bakery(), max_retry=2, **options)  # type: ignore[arg-type]
    pizza = Task("pizza", {"item": "pizza"}, "knead")
    dough = Task("dough", {"item": "dough"}, "knead")
    sauce = Task("sauce", {"item": "sauce"}, "burn")
    oven = Task("oven", {"item": "oven"}, "heat")
    delivery = Task("delivery", {"item": "van"}, "heat")
    bread = Task("bread", {"item": "bread"}, "heat")
    for required in ("dough", "sauce", "oven"):
        pizza.add_require(required)
    dough.add_require("oven")
    bread.add_require("dough")
    delivery.add_require("pizza")
    for task in (pizza, dough, sauce, oven, delivery, bread):
        manager.add(task)
    return manager


# -- the README's example --------------------------------------------------------------


@pytest.fixture(scope="module")
def bakery_run() -> tuple[Manager, dict[str, Any], set[int]]:
    """One run of the README's example for the tests below: manager, report, leftovers."""
    manager = bakery_manager()
    before = spawned_children()
    report = manager.start()
    return manager, report, spawned_children() - before


def test_readme_example_report_counts_and_exit_code(
    bakery_run: tuple[Manager, dict[str, Any], set[int]],
) -> None:
    _, report, leftovers = bakery_run
    assert report["exit_code"] == 1
    assert report["results"] == {
        "aborted": 0,
        "deps": 2,
        "failures": 1,
        "nrun": 0,
        "ready": 0,
        "success": 3,
    }
    assert set(report) == {"date_start", "date_end", "elapsed", "exit_code", "results", "tasks"}
    assert DATE.match(report["date_start"]) and DATE.match(report["date_end"])
    assert report["date_start"] <= report["date_end"]
    assert report["elapsed"] in ("00:00:00", "00:00:01", "00:00:02", "00:00:03", "00:00:04")
    assert not leftovers  # no worker outlives start()


def test_a_failed_attempt_logs_its_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    manager = Manager(Bakery(), max_retry=2)
    manager.add(Task("sauce", {"item": "sauce"}, "burn"))
    manager.start()
    err = capfd.readouterr().err  # logged in the worker process, once per attempt
    assert err.count("Traceback (most recent call last)") == 2
    assert err.count("RuntimeError: sauce burnt") == 2


def test_readme_example_records(bakery_run: tuple[Manager, dict[str, Any], set[int]]) -> None:
    records = {r["tid"]: r for r in bakery_run[1]["tasks"]}
    assert list(records) == ["pizza", "dough", "sauce", "oven", "delivery", "bread"]
    assert {tid: r["state"] for tid, r in records.items()} == {
        "pizza": Task.STATE_DEPENDENCY,
        "dough": Task.STATE_SUCCESS,
        "sauce": Task.STATE_ERROR,
        "oven": Task.STATE_SUCCESS,
        "delivery": Task.STATE_DEPENDENCY,  # transitively: it requires pizza
        "bread": Task.STATE_SUCCESS,
    }
    for record in records.values():
        assert set(record) == RECORD_KEYS
        assert DATE.match(record["date_created"])
        assert DURATION.match(record["time_duration_str"])
    assert records["dough"]["results"] == "kneaded dough"
    assert records["bread"]["results"] == "heated bread"
    assert records["sauce"]["results"] == "sauce burnt"
    assert records["dough"]["inputs"] == {"item": "dough"} and records["dough"]["func"] == "knead"
    assert records["pizza"]["require"] == ["dough", "sauce", "oven"]  # as declared
    for tid in ("dough", "sauce", "oven", "bread"):
        assert DATE.match(records[tid]["date_start"]) and DATE.match(records[tid]["date_end"])
        assert records[tid]["date_start"] <= records[tid]["date_end"]
    assert records["dough"]["time_duration"] >= 0.2
    assert records["dough"]["time_duration_str"] == "00:00:00"
    # A requirement ends before its dependent starts.
    assert records["oven"]["date_end"] <= records["dough"]["date_start"]
    assert records["dough"]["date_end"] <= records["bread"]["date_start"]
    for tid in ("pizza", "delivery"):
        assert records[tid]["results"] is None
        assert records[tid]["date_start"] is None and records[tid]["date_end"] is None
        assert records[tid]["time_duration"] == 0.0
        assert records[tid]["time_duration_str"] == "00:00:00"


def test_report_and_record_keys_come_in_artrons_order(
    bakery_run: tuple[Manager, dict[str, Any], set[int]],
) -> None:
    report = bakery_run[1]
    assert list(report) == ["elapsed", "date_end", "date_start", "results", "exit_code", "tasks"]
    assert list(report["results"]) == ["success", "failures", "deps", "nrun", "aborted", "ready"]
    assert list(report["tasks"][0]) == [
        *("tid", "inputs", "func", "require", "state", "results", "date_created"),
        *("date_start", "date_end", "time_duration_str", "time_duration"),
    ]


def test_the_tasks_themselves_hold_the_outcome(
    bakery_run: tuple[Manager, dict[str, Any], set[int]],
) -> None:
    manager, report, _ = bakery_run
    assert list(manager.tasks) == [r["tid"] for r in report["tasks"]]
    oven = manager.tasks["oven"]
    assert oven.state == Task.STATE_SUCCESS and oven.results == "heated oven"
    assert oven.is_finished() and not oven.is_runnable()
    # Records are copies: changing a task later leaves the report alone.
    record = report["tasks"][3]
    assert record == vars(oven)
    assert record is not vars(oven) and record["require"] is not oven.require


def test_a_second_start_runs_nothing_again(
    bakery_run: tuple[Manager, dict[str, Any], set[int]],
) -> None:
    manager, first, _ = bakery_run
    second = manager.start()
    assert second["results"] == first["results"]
    assert [r["date_end"] for r in second["tasks"]] == [r["date_end"] for r in first["tasks"]]


def test_tasks_that_ended_before_start_are_not_run_again() -> None:
    done = Task("done", {"item": "done"}, "heat")
    done.state, done.results = Task.STATE_SUCCESS, "from an earlier run"
    failed = Task("failed", {"item": "failed"}, "heat")
    failed.state = Task.STATE_ERROR
    manager = Manager(Bakery())
    for task in (
        done,
        failed,
        Task("next", {"item": "next"}, "heat", require=["done"]),
        Task("blocked", {"item": "blocked"}, "heat", require=["failed"]),
    ):
        manager.add(task)
    progress = Progress()
    manager.progress = progress
    report = manager.start()
    states = {r["tid"]: r["state"] for r in report["tasks"]}
    assert states == {"done": 3, "failed": -1, "next": 3, "blocked": -2}
    assert done.results == "from an earlier run" and manager.tasks["next"].results == "heated next"
    assert progress.n == 2  # the two tasks of this run


def test_all_tasks_succeed_exit_code_zero_and_a_tasks_dict_of_ones_own() -> None:
    mine: dict[str, Task] = {}
    manager = Manager(Bakery(), tasks=mine)
    manager.add(Task("oven", {"item": "oven"}, "heat"))
    manager.add(Task("bread", {"item": "bread"}, "heat", require=["oven"]))
    assert manager.tasks is mine and list(mine) == ["oven", "bread"]
    report = manager.start()
    assert report["exit_code"] == 0 and report["results"]["success"] == 2
    assert mine["bread"].results == "heated bread"


def test_a_task_whose_id_is_none_runs_and_is_reported_as_run() -> None:
    progress = Progress()
    manager = Manager(Bakery(), progress=progress)
    manager.add(Task(None, {"item": "none"}, "heat"))  # type: ignore[arg-type]
    manager.add(Task("after", {"item": "after"}, "heat", require=[None]))  # type: ignore[list-item]
    report = manager.start()
    assert report["exit_code"] == 0 and report["results"]["success"] == 2
    unnamed = manager.tasks[None]  # type: ignore[index]
    assert unnamed.state == Task.STATE_SUCCESS and unnamed.results == "heated none"
    assert DATE.match(unnamed.date_start or "") and DATE.match(unnamed.date_end or "")
    assert progress.n == 2


def test_no_task_is_a_success() -> None:
    report = Manager(Bakery()).start()
    assert report["exit_code"] == 0 and report["tasks"] == []


# -- retries -----------------------------------------------------------------------------


def test_a_task_failing_twice_succeeds_at_its_third_attempt() -> None:
    manager = Manager(Flaky(fails=2), max_retry=3)
    manager.add(Task("flaky", {}, "attempt"))
    manager.add(Task("after", {}, "attempt", require=["flaky"]))
    report = manager.start()
    flaky = manager.tasks["flaky"]
    assert flaky.state == Task.STATE_SUCCESS
    assert flaky.results == [1, 2, 3]  # retry=1, 2, 3, in the same worker call
    assert report["exit_code"] == 0


def test_with_two_attempts_the_same_task_fails_and_its_dependent_is_not_run() -> None:
    manager = Manager(Flaky(fails=2), max_retry=2)
    manager.add(Task("flaky", {}, "attempt"))
    manager.add(Task("after", {}, "attempt", require=["flaky"]))
    report = manager.start()
    assert manager.tasks["flaky"].state == Task.STATE_ERROR
    assert manager.tasks["flaky"].results == "not yet (attempts so far: [1, 2])"
    assert manager.tasks["after"].state == Task.STATE_DEPENDENCY
    assert report["results"]["failures"] == 1 and report["results"]["deps"] == 1


# -- the run's timeout and the number of workers -------------------------------------------


def test_run_timeout_stops_a_long_task_and_leaves_no_process(tmp_path: os.PathLike[str]) -> None:
    pid_file = os.path.join(tmp_path, "pid")
    before = spawned_children()
    # The timeout must strike once the long task really runs (its pid file is there): on
    # a machine too busy to start a worker in time, try again with a longer timeout.
    for run_timeout in (2.5, 5.0, 10.0, 20.0):
        manager = Manager(Clock(), run_timeout=run_timeout)
        manager.add(Task("long", {"pid_file": pid_file}, "hang"))
        manager.add(Task("after-long", {"seconds": 0}, "span", require=["long"]))
        manager.add(Task("quick", {"seconds": 0.1}, "span"))
        began = time.monotonic()
        report = manager.start()
        took = time.monotonic() - began
        if os.path.exists(pid_file):
            break
    assert wait_for_file(pid_file, 0), "the long task never started, even in 20 s"
    assert run_timeout <= took < run_timeout + 15
    assert report["results"] == {
        "success": 1,
        "failures": 0,
        "deps": 0,
        "nrun": 1,
        "aborted": 1,
        "ready": 0,
    }
    long = manager.tasks["long"]
    assert long.state == Task.STATE_RUNNING and long.date_end is None
    assert DATE.match(long.date_start or "")
    assert manager.tasks["after-long"].state == Task.STATE_INIT
    assert report["exit_code"] == 1
    assert not alive(read_pid(pid_file))
    assert spawned_children() <= before


def test_a_second_start_runs_again_the_tasks_a_timeout_stopped() -> None:
    manager = Manager(Clock(), nb_workers=1, run_timeout=1.0)
    manager.add(Task("one", {"seconds": 30}, "span"))
    manager.add(Task("two", {"seconds": 30}, "span"))
    manager.add(Task("three", {"seconds": 0}, "span", require=["one", "two"]))
    manager.start()
    states = sorted(t.state for t in manager.tasks.values())
    assert states == [Task.STATE_INIT, Task.STATE_READY, Task.STATE_RUNNING]
    # Stopped, not failed: they run again (quickly, this time), and so does their dependent.
    for tid in ("one", "two"):
        manager.tasks[tid].inputs = {"seconds": 0}
    manager.run_timeout = 60
    report = manager.start()
    assert report["results"]["success"] == 3 and report["exit_code"] == 0
    for task in manager.tasks.values():
        assert task.state == Task.STATE_SUCCESS and DATE.match(task.date_end or "")
        assert task.results[0] <= task.results[1]  # this run's span, not a stale one


def test_a_task_waiting_for_a_free_worker_at_the_timeout_is_ready() -> None:
    manager = Manager(Clock(), nb_workers=1, run_timeout=1.0)
    manager.add(Task("one", {"seconds": 30}, "span"))
    manager.add(Task("two", {"seconds": 30}, "span"))
    report = manager.start()
    assert report["results"]["aborted"] == 1 and report["results"]["ready"] == 1
    states = sorted(t.state for t in manager.tasks.values())
    assert states == [Task.STATE_READY, Task.STATE_RUNNING]


def test_one_worker_runs_the_tasks_one_at_a_time() -> None:
    manager = Manager(Clock(), nb_workers=1)
    for k in range(3):
        manager.add(Task(f"step/{k}", {"seconds": 0.15}, "span"))  # '/' is fine in an id
    report = manager.start()
    assert report["results"]["success"] == 3
    spans = sorted(tuple(t.results) for t in manager.tasks.values())
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start


def barrier_tasks(manager: Manager, count: int, directory: os.PathLike[str]) -> None:
    """``count`` tasks that each wait until all ``count`` run at once (60 s at most)."""
    for k in range(count):
        manager.add(Task(f"t{k}", {"directory": str(directory), "count": count}, "gather"))


def test_more_workers_than_cores_run_that_many_tasks_at_once(
    tmp_path: os.PathLike[str],
) -> None:
    workers = (os.cpu_count() or 1) + 2
    manager = Manager(Clock(), nb_workers=workers)
    barrier_tasks(manager, workers, tmp_path)
    report = manager.start()
    # Each task returns only once every other one has started: they all ran side by side.
    assert report["results"]["success"] == workers, [t.results for t in manager.tasks.values()]


def test_nb_workers_defaults_to_the_number_of_cpus(tmp_path: os.PathLike[str]) -> None:
    cpus = os.cpu_count() or 1
    manager = Manager(Clock())
    assert manager.nb_workers == cpus
    barrier_tasks(manager, cpus, tmp_path)
    report = manager.start()
    assert report["results"]["success"] == cpus, [t.results for t in manager.tasks.values()]


def test_progress_is_updated_as_tasks_end_and_closed() -> None:
    progress = Progress()
    manager = bakery_manager(progress=progress)
    manager.start()
    assert progress.updates == [1] * 6 and progress.n == 6
    assert progress.closed == 1


def test_an_error_from_progress_is_raised_once_the_run_is_over() -> None:
    class Broken(Progress):
        def update(self, count: int = 1) -> None:
            raise RuntimeError("the bar fell off")

    progress = Broken()
    manager = bakery_manager(progress=progress)
    before = spawned_children()
    with pytest.raises(RuntimeError, match="the bar fell off"):
        manager.start()
    # The run went on to its end; the tasks hold their outcome all the same.
    assert manager.tasks["bread"].state == Task.STATE_SUCCESS
    assert manager.tasks["delivery"].state == Task.STATE_DEPENDENCY
    assert spawned_children() <= before


def test_the_tasks_are_settled_even_when_the_run_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobgraph.compat.artron import _blocking

    real = _blocking.run_blocking

    def run_then_break(*args: Any) -> Any:
        real(*args)
        raise RuntimeError("the run broke")

    monkeypatch.setattr(_blocking, "run_blocking", run_then_break)

    class Broken(Progress):
        def update(self, count: int = 1) -> None:
            raise RuntimeError("the bar fell off")  # the listener stops at the first end

    manager = bakery_manager(progress=Broken())
    with pytest.raises(RuntimeError, match="the run broke"):  # the run's error, not ours
        manager.start()
    # Written after the run all the same, though nothing listened after the first end.
    states = {tid: t.state for tid, t in manager.tasks.items()}
    assert states == {
        "pizza": Task.STATE_DEPENDENCY,
        "dough": Task.STATE_SUCCESS,
        "sauce": Task.STATE_ERROR,
        "oven": Task.STATE_SUCCESS,
        "delivery": Task.STATE_DEPENDENCY,
        "bread": Task.STATE_SUCCESS,
    }


def test_an_error_from_progress_close_is_raised_with_the_tasks_settled() -> None:
    class Unclosable(Progress):
        def close(self) -> None:
            raise OSError("the terminal went away")

    progress = Unclosable()
    manager = bakery_manager(progress=progress)
    with pytest.raises(OSError, match="the terminal went away"):
        manager.start()
    assert progress.n == 6
    assert manager.tasks["bread"].state == Task.STATE_SUCCESS
    assert manager.tasks["delivery"].state == Task.STATE_DEPENDENCY


def test_a_module_can_be_the_builder() -> None:
    manager = Manager(artron_builders)
    manager.add(Task("hi", {"who": "world"}, "greet"))
    assert manager.start()["exit_code"] == 0
    assert manager.tasks["hi"].results == "hello world"


def test_a_worker_that_dies_fails_its_task_and_the_run_goes_on() -> None:
    manager = Manager(Fragile())
    manager.add(Task("crash", {}, "crash"))
    manager.add(Task("after", {}, "fine", require=["crash"]))
    manager.add(Task("other", {}, "fine"))
    report = manager.start()
    crash = manager.tasks["crash"]
    assert crash.state == Task.STATE_ERROR and "exit status 3" in crash.results
    assert DATE.match(crash.date_start or "") and DATE.match(crash.date_end or "")
    assert manager.tasks["after"].state == Task.STATE_DEPENDENCY
    assert report["results"]["success"] == 1


def test_a_result_that_cannot_be_pickled_fails_its_task_with_a_clear_message() -> None:
    manager = Manager(Odd(), max_retry=3)
    manager.add(Task("lock", {}, "lock"))
    manager.add(Task("after", {"value": 1}, "echo", require=["lock"]))
    manager.add(Task("fine", {"value": {"a": [1]}}, "echo"))
    report = manager.start()
    lock = manager.tasks["lock"]
    assert lock.state == Task.STATE_ERROR
    assert lock.results.startswith(
        "task 'lock' returned a lock, which cannot be sent back from the worker process: "
        "TypeError: cannot pickle"
    )
    assert DATE.match(lock.date_start or "") and DATE.match(lock.date_end or "")
    assert manager.tasks["after"].state == Task.STATE_DEPENDENCY
    assert manager.tasks["fine"].results == {"a": [1]}
    assert report["results"]["failures"] == 1


def test_a_system_exit_in_a_task_is_reported_by_name() -> None:
    manager = Manager(Odd())
    manager.add(Task("leave", {"code": 4}, "leave"))
    manager.add(Task("fine", {"value": 1}, "echo"))
    report = manager.start()
    leave = manager.tasks["leave"]
    assert leave.state == Task.STATE_ERROR and leave.results == "SystemExit: 4"
    assert report["results"]["success"] == 1


def test_ctrl_c_stops_the_run_kills_its_workers_and_raises(tmp_path: os.PathLike[str]) -> None:
    pid_file = os.path.join(tmp_path, "pid")
    manager = Manager(Clock(), run_timeout=120)
    manager.add(Task("long", {"pid_file": pid_file}, "hang"))
    before = spawned_children()
    interrupter = interrupt_once_there(pid_file)
    with pytest.raises(KeyboardInterrupt):
        manager.start()
    interrupter.join()
    assert manager.tasks["long"].state == Task.STATE_RUNNING  # stopped while it ran
    assert not alive(read_pid(pid_file))
    assert spawned_children() <= before


def test_ctrl_c_from_async_code_stops_the_run_kills_its_workers_and_raises(
    tmp_path: os.PathLike[str],
) -> None:
    pid_file = os.path.join(tmp_path, "pid")
    manager = Manager(Clock(), run_timeout=120)
    manager.add(Task("long", {"pid_file": pid_file}, "hang"))
    manager.add(Task("after", {"seconds": 0}, "span", require=["long"]))
    before = spawned_children()

    async def main() -> None:
        manager.start()

    interrupter = interrupt_once_there(pid_file)
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())  # its own Ctrl-C handler would only cancel main() later
    interrupter.join()
    assert time.monotonic() - began < 50  # not the task's minute, nor run_timeout
    assert manager.tasks["long"].state == Task.STATE_RUNNING
    assert manager.tasks["after"].state == Task.STATE_INIT
    assert not alive(read_pid(pid_file))
    assert spawned_children() <= before
    assert not [t for t in threading.enumerate() if t.name == "artron-start"]


def test_start_from_async_code_gives_ctrl_c_back_to_the_caller() -> None:
    async def main() -> tuple[object, object]:
        mine = signal.getsignal(signal.SIGINT)
        manager = Manager(Bakery())
        manager.add(Task("oven", {"item": "oven"}, "heat"))
        manager.start()
        return mine, signal.getsignal(signal.SIGINT)

    before, after = asyncio.run(main())
    assert after is before


def test_inputs_that_cannot_reach_a_worker_are_an_error_before_anything_runs() -> None:
    manager = Manager(Bakery())
    manager.add(Task("oven", {"item": "oven"}, "heat"))
    manager.add(Task("locked", {"item": threading.Lock()}, "heat"))
    with pytest.raises(jg.PicklingError) as caught:
        manager.start()
    assert str(caught.value).startswith(
        "task 'locked': input 'item' (lock) cannot be pickled for a worker process: "
        "TypeError: cannot pickle"
    )
    assert all(t.state == Task.STATE_INIT for t in manager.tasks.values())  # nothing ran


def test_start_works_from_async_code() -> None:
    async def main() -> dict[str, Any]:
        manager = Manager(Bakery())
        manager.add(Task("oven", {"item": "oven"}, "heat"))
        return manager.start()

    assert asyncio.run(main())["exit_code"] == 0


# -- errors before anything runs -----------------------------------------------------------


def test_a_cycle_is_an_immediate_error_naming_the_tasks() -> None:
    manager = Manager(Bakery(), run_timeout=60)
    manager.add(Task("egg", {"item": "egg"}, "heat", require=["hen"]))
    manager.add(Task("hen", {"item": "hen"}, "heat", require=["egg"]))
    manager.add(Task("alone", {"item": "alone"}, "heat"))
    began = time.monotonic()
    with pytest.raises(jg.CycleError) as caught:
        manager.start()
    assert time.monotonic() - began < 5
    assert sorted(caught.value.cycle[:-1]) == ["egg", "hen"]
    assert re.search(r"(egg -> hen -> egg|hen -> egg -> hen)", str(caught.value))
    assert all(t.state == Task.STATE_INIT for t in manager.tasks.values())  # nothing ran


def test_a_task_requiring_itself_is_a_cycle() -> None:
    manager = Manager(Bakery())
    manager.add(Task("a/b", {"item": "x"}, "heat", require=["a/b"]))
    with pytest.raises(ValueError, match="a/b -> a/b"):
        manager.start()


def test_a_requirement_never_added_is_an_immediate_error() -> None:
    manager = Manager(Bakery())
    manager.add(Task("bread", {"item": "bread"}, "heat", require=["doug"]))
    manager.add(Task("dough", {"item": "dough"}, "knead"))
    with pytest.raises(jg.MissingDependencyError, match="'bread' requires 'doug'") as caught:
        manager.start()
    assert "did you mean 'dough'?" in str(caught.value)
    assert manager.tasks["dough"].state == Task.STATE_INIT


def test_many_unknown_requirements_are_named_briefly_and_at_once() -> None:
    manager = Manager(Bakery())
    for k in range(3000):
        manager.add(Task(f"task-{k}", {"item": "x"}, "heat", require=[f"gone-{k}"]))
    began = time.monotonic()
    with pytest.raises(jg.MissingDependencyError) as caught:
        manager.start()
    assert time.monotonic() - began < 10  # no "did you mean" for each of them
    message = str(caught.value)
    assert message.count("which was never added") == 5
    assert message.startswith("task 'task-0' requires 'gone-0', which was never added")
    assert message.endswith("; and 2995 more")


def test_require_that_cannot_hold_task_ids_is_a_type_error_naming_the_task() -> None:
    with pytest.raises(TypeError, match=r"task 'pizza': require must be a list of task ids"):
        Task("pizza", {}, "knead", require="dough")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"task 'pizza': require must be a list .* not int"):
        Task("pizza", {}, "knead", require=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"task 'pizza' requires \['dough'\], which cannot be"):
        Task("pizza", {}, "knead", require=[["dough"]])  # type: ignore[list-item]
    assert Task("pizza", {}, "knead", require=("dough", "oven")).require == ["dough", "oven"]


def test_a_requirement_that_cannot_be_an_id_is_an_error_before_anything_runs() -> None:
    manager = Manager(Bakery())
    pizza = Task("pizza", {"item": "pizza"}, "knead")
    pizza.add_require({"tid": "dough"})  # type: ignore[arg-type]
    manager.add(pizza)
    manager.add(Task("oven", {"item": "oven"}, "heat"))
    with pytest.raises(TypeError, match=r"task 'pizza' requires \{'tid': 'dough'\}, which cannot"):
        manager.start()
    assert manager.tasks["oven"].state == Task.STATE_INIT
    pizza.require = "dough"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="task 'pizza': require must be a list of task ids"):
        manager.start()


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ("max_retry", 0, "Manager.max_retry must be a positive integer, not 0"),
        ("nb_workers", 2.5, "Manager.nb_workers must be a positive integer, not 2.5"),
        ("run_timeout", "60", "Manager.run_timeout must be a positive number of seconds"),
        ("run_timeout", float("nan"), "Manager.run_timeout must be a positive number"),
    ],
)
def test_options_changed_after_manager_are_checked_by_start(
    attribute: str, value: object, message: str
) -> None:
    manager = Manager(Bakery())
    manager.add(Task("oven", {"item": "oven"}, "heat"))
    setattr(manager, attribute, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        manager.start()
    assert manager.tasks["oven"].state == Task.STATE_INIT


def test_workers_cannot_be_passed() -> None:
    with pytest.raises(ValueError, match=r"workers=.*nb_workers"):
        Manager(Bakery(), workers=[object()])


def test_sleep_and_queue_are_accepted_and_unused() -> None:
    queue = object()
    manager = Manager(Bakery(), sleep=5, queue=queue)
    assert manager.sleep == 5 and manager.queue is queue
    # A chain of four tasks: polling every 5 s, as artron did, would take 15 s at least.
    for k in range(4):
        require = [f"step{k - 1}"] if k else None
        manager.add(Task(f"step{k}", {"item": "x"}, "heat", require=require))
    began = time.monotonic()
    assert manager.start()["exit_code"] == 0
    assert time.monotonic() - began < 10  # no polling period


@pytest.mark.parametrize(
    "options",
    [{"max_retry": 0}, {"nb_workers": 0}, {"run_timeout": -1}, {"run_timeout": float("inf")}],
)
def test_bad_options_are_errors(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        Manager(Bakery(), **options)  # type: ignore[arg-type]


def test_a_builder_that_cannot_reach_a_worker_is_an_error_before_anything_runs() -> None:
    class Local:
        def heat(self, item: str, retry: int) -> str:
            return item

    manager = Manager(Local())
    manager.add(Task("oven", {"item": "oven"}, "heat"))
    with pytest.raises(jg.PicklingError, match="the builder"):
        manager.start()


@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_a_builder_from_a_main_without_a_file_is_refused(how: str, tmp_path: Any) -> None:
    script = (
        "import jobgraph as jg\n"
        "from jobgraph.compat.artron import Manager, Task\n"
        "class Builder:\n"
        "    def heat(self, item, retry):\n"
        "        return item\n"
        "manager = Manager(Builder())\n"
        "manager.add(Task('oven', {'item': 'oven'}, 'heat'))\n"
        "try:\n"
        "    manager.start()\n"
        "except jg.PicklingError as exc:\n"
        "    print(exc)\n"
        "print(manager.tasks['oven'].state)\n"
    )
    argv, stdin = (
        ([sys.executable, "-c", script], None) if how == "-c" else ([sys.executable, "-"], script)
    )
    done = subprocess.run(
        argv, input=stdin, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    message, state = done.stdout.splitlines()
    assert message.startswith("the builder's class Builder is defined in __main__, which worker")
    assert "define the class in a module file" in message
    assert state == "0"  # nothing ran


# -- Task ---------------------------------------------------------------------------------


def test_task_fields_and_repr() -> None:
    task = Task("t1", {"item": "a"}, "heat")
    assert TaskFromModule is Task
    assert (task.tid, task.inputs, task.func, task.require) == ("t1", {"item": "a"}, "heat", [])
    assert task.state == Task.STATE_INIT == 0 and task.results is None
    assert DATE.match(task.date_created) and task.date_start is None and task.date_end is None
    assert (task.time_duration, task.time_duration_str) == (0.0, "00:00:00")
    assert json.loads(repr(task)) == {**vars(task)}
    constants = [Task.STATE_WRONG, Task.STATE_DEPENDENCY, Task.STATE_ERROR, Task.STATE_INIT]
    constants += [Task.STATE_READY, Task.STATE_RUNNING, Task.STATE_SUCCESS]
    assert constants == [-3, -2, -1, 0, 1, 2, 3]


def test_task_repr_never_fails() -> None:
    class Unshowable:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    task = Task("odd", {("a", 1): "a tuple as key"}, "heat")  # type: ignore[dict-item]
    circular: list[Any] = []
    circular.append(circular)
    task.results = circular
    task.func = Unshowable()  # type: ignore[assignment]
    fields = json.loads(repr(task))
    assert fields["tid"] == "odd" and fields["state"] == 0
    assert fields["inputs"] == "{('a', 1): 'a tuple as key'}"
    assert fields["results"] == "[[...]]"
    assert fields["func"] == "<Unshowable object>"


def test_task_run_in_process(caplog: pytest.LogCaptureFixture) -> None:
    done = Task("oven", {"item": "oven"}, "heat")
    done.run(Bakery(), retry=1)
    assert done.state == Task.STATE_SUCCESS and done.results == "heated oven"
    assert done.time_duration >= 0.1 and DATE.match(done.date_end or "")
    failed = Task("sauce", {"item": "sauce"}, "burn")
    with caplog.at_level(logging.ERROR):
        failed.run(Bakery(), retry=2)
    assert failed.state == Task.STATE_ERROR and failed.results == "sauce burnt"
    assert "Traceback" in caplog.text and "sauce burnt" in caplog.text


def test_task_with_requirements_cannot_run() -> None:
    task = Task("bread", {"item": "bread"}, "heat", require=["dough"])
    assert not task.is_runnable()
    with pytest.raises(TaskDependenciesError, match="'dough'"):
        task.run(Bakery(), retry=1)
    task.del_require("dough")
    assert task.is_runnable()


def test_update_childs_after_a_success_and_after_a_failure() -> None:
    oven = Task("oven", {}, "heat")
    dough = Task("dough", {}, "knead", require=["oven"])
    bread = Task("bread", {}, "heat", require=["dough"])
    tasks = {t.tid: t for t in (oven, dough, bread)}
    oven.state = Task.STATE_SUCCESS
    updated = list(oven.update_childs(tasks))
    assert [list(u) for u in updated] == [["dough"]] and updated[0]["dough"].require == []
    assert dough.require == ["oven"]  # the caller's tasks are left untouched
    oven.state = Task.STATE_ERROR
    marked = {tid: t.state for u in oven.update_childs(tasks) for tid, t in u.items()}
    assert marked == {"dough": Task.STATE_DEPENDENCY, "bread": Task.STATE_DEPENDENCY}
    oven.state = Task.STATE_RUNNING
    assert list(oven.update_childs(tasks)) == []


# -- Graph (the example of its docstring, in our words) ---------------------------------------


def test_graph_example() -> None:
    make = [Task(f"make-{k}", {"msg": f"hello {k}"}, "make") for k in range(1, 5)]
    for required in ("make-2", "make-3", "make-4"):
        make[0].add_require(required)
    make[1].add_require("make-4")
    graph = Graph({t.tid: t for t in make})
    assert graph == {
        "make-1": ["make-2", "make-3", "make-4"],
        "make-2": ["make-4"],
        "make-3": [],
        "make-4": [],
    }
    assert isinstance(graph, dict) and graph.size == 4
    assert sorted(graph.edges()) == [
        ("make-1", "make-2"),
        ("make-1", "make-3"),
        ("make-1", "make-4"),
        ("make-2", "make-4"),
        ("make-3", "make-3"),
        ("make-4", "make-4"),
    ]
    assert sorted(graph.isolated_vertices()) == ["make-3", "make-4"]
    graph.remove_vertex("make-4")
    assert graph == {"make-1": ["make-2", "make-3"], "make-2": [], "make-3": []}
    assert make[1].require == ["make-4"]  # the graph's lists are copies: tasks keep theirs
    assert sorted(graph.isolated_vertices()) == ["make-2", "make-3"]


def test_graph_keeps_only_tasks_in_init_and_lists_only() -> None:
    done = Task("done", {}, "make")
    done.state = Task.STATE_SUCCESS
    graph = Graph({"done": done, "todo": Task("todo", {}, "make")})
    assert graph == {"todo": []} and graph.size == 2
    with pytest.raises(ValueError, match="list"):
        graph["other"] = ("a",)  # type: ignore[assignment]


# -- utils ----------------------------------------------------------------------------------


def test_artron_date_and_duration_formats() -> None:
    import datetime as dt

    assert strdate(dt.datetime(2018, 8, 29, 20, 2, 39, 606789)) == "2018-08-29T20:02:39.606Z"
    paris = dt.timezone(dt.timedelta(hours=2))
    assert strdate(dt.datetime(2018, 8, 29, 22, 2, 39, tzinfo=paris)) == "2018-08-29T20:02:39.000Z"
    assert DATE.match(strdate())
    assert strgmtime(time.gmtime(15.9)) == "00:00:15" and strgmtime(3725.0) == "01:02:05"
    with pytest.raises(ValueError):
        strgmtime("15")  # type: ignore[arg-type]
