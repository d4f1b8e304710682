"""Every bad input in one table: its own error type, a message naming the culprit, and
nothing run (the issue on reliability).

A case is given through the library (``jg.Job``, ``jg.Scheduler``, ``run()``) or as a YAML
workflow, which is both loaded here (for the exception type) and run by the ``jobgraph``
command (for its exit status and its one line on standard error). Every job body leaves a
file behind when it runs, so "nothing ran" is checked by looking, not assumed.

Two defects can only show once a job runs: a result that cannot be pickled, and an
argument that must reach a worker process (API.md, sections 5 and 6). There the job fails
alone, naming itself and the type, its dependent is skipped, and the rest goes on.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import jobgraph as jg
from jobgraph.executors.process import UnpicklableError
from jobgraph.workflow import WorkflowError, load
from procs import jobgraph_cli


def touch(path: str, *inputs: Any) -> str:
    """A job body that leaves ``path`` behind; ``inputs`` are there to be (un)picklable."""
    Path(path).touch()
    return path


def touch_then_lock(path: str) -> object:
    """Runs (and says so), then returns what no store and no pipe can take."""
    touch(path)
    return threading.Lock()


class Marks:
    """Where bodies leave their files: what ran is what is there."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "ran"
        self.folder.mkdir()
        self.store = str(root / "state.db")

    def path(self, name: str) -> str:
        return str(self.folder / name)

    def job(self, name: str, *args: Any, **options: Any) -> jg.Job:
        return jg.Job(touch, self.path(name), *args, name=name, **options)

    def ran(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir())


# A library case builds a scheduler (raising, if the defect is in a definition) and names
# the run options; the test runs it.
Built = tuple[jg.Scheduler, dict[str, Any]]
Build = Callable[[Marks], Built]


@dataclass(frozen=True)
class Refused:
    """Refused before anything runs: this exact exception type, these words in its text."""

    error: type[Exception]
    says: tuple[str, ...]


@dataclass(frozen=True)
class FailsAlone:
    """Only running shows it: ``job`` fails with ``error``; ``ran`` ran; ``after`` (which
    requires ``job``) did not."""

    job: str
    error: type[Exception]
    says: tuple[str, ...]
    ran: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    id: str
    given: Build | str  # a library build, or the text of a YAML workflow
    expect: Refused | FailsAlone
    line: int = 0  # YAML: the line the message points at


def api(id: str, build: Build, error: type[Exception], *says: str) -> Case:
    return Case(f"api-{id}", build, Refused(error, says))


def yaml(id: str, text: str, line: int, error: type[Exception], *says: str) -> Case:
    return Case(f"yaml-{id}", text, Refused(error, says), line)


def alone(*jobs: jg.Job | jg.Scheduler, **options: Any) -> Built:
    return jg.Scheduler(*jobs, name="main"), options


# -- library builds that take more than a line ---------------------------------------------


def cycle(m: Marks) -> Built:
    a = m.job("a")
    b = m.job("b", requires=a)
    a.requires(b)
    return alone(a, b, m.job("free"))


def cycle_through_data(m: Marks) -> Built:
    a = m.job("a")
    b = m.job("b", a)  # takes a's result
    a.requires(b)
    return alone(a, b, m.job("free"))


def self_loop(m: Marks) -> Built:
    a = m.job("a")
    a.requires(a)
    return alone(a, m.job("free"))


def required_elsewhere(m: Marks) -> Built:
    summary = m.job("summary")
    jg.Scheduler(summary, name="other")
    return alone(m.job("report", requires=summary), m.job("free"))


def lambda_in(**options: Any) -> Build:
    def build(m: Marks) -> Built:
        path = m.path("local")
        job = jg.Job(lambda: touch(path), name="local", **options.get("job", {}))
        return alone(job, m.job("free"), **options.get("run", {}))

    return build


def with_lock(argument_of: str, **options: Any) -> Build:
    """``bad`` gets a lock as argument, or returns one; ``after`` requires it."""

    def build(m: Marks) -> Built:
        if argument_of == "argument":
            bad = m.job("bad", threading.Lock(), **options.get("job", {}))
        else:
            bad = jg.Job(touch_then_lock, m.path("bad"), name="bad", **options.get("job", {}))
        return alone(bad, m.job("after", requires=bad), m.job("free"), **options.get("run", {}))

    return build


def forever_holds_the_pool(m: Marks) -> Built:
    server = m.job("server", forever=True, resources={"db": 1})
    return jg.Scheduler(server, m.job("client", resources={"db": 1}), resources={"db": 1}), {}


def one(m: Marks, **job: Any) -> Built:
    """A good job, then one built with ``job``'s options (the defect, if it is in them)."""
    free = m.job("free")
    return alone(free, m.job("bad", **job))


def runs_with(**options: Any) -> Build:
    return lambda m: alone(m.job("build"), m.job("free"), **options)


def scheduler_with(**options: Any) -> Build:
    return lambda m: (jg.Scheduler(m.job("build"), name="main", **options), {})


LOCK = "_thread.lock"
NOT_PICKLED = "cannot be pickled"

API_CASES = [
    # -- the shape of the graph
    api("cycle", cycle, jg.CycleError, "cycle in requirements: a -> b -> a"),
    api("cycle-through-data", cycle_through_data, jg.CycleError, "a -> b -> a"),
    api("self-loop", self_loop, jg.CycleError, "cycle in requirements: a -> a"),
    api(
        "inputs-not-paths",
        lambda m: alone(m.job("a", inputs=["in.txt", 3]), m.job("free")),
        ValueError,
        "job 'a': inputs must be file paths or glob patterns (str or os.PathLike), not "
        "['in.txt', 3]",
    ),
    api(
        "inputs-bytes",
        lambda m: alone(m.job("a", inputs=[b"in.txt"]), m.job("free")),
        ValueError,
        "job 'a': inputs must be text paths, not [b'in.txt']",
    ),
    api(
        "outputs-an-empty-path",
        lambda m: alone(m.job("a", outputs=[""]), m.job("free")),
        ValueError,
        "job 'a': outputs may not hold an empty path: ['']",
    ),
    api(
        "env-keys-not-names",
        lambda m: alone(m.job("a", env_keys=["HOME", None]), m.job("free")),
        ValueError,
        "job 'a': env_keys must be non-empty strings, not ['HOME', None]",
    ),
    api(
        "self-loop-by-name",
        lambda m: alone(m.job("a", requires="a"), m.job("free")),
        jg.CycleError,
        "cycle in requirements: a -> a",
    ),
    api(
        "requires-a-job-of-another-scheduler",
        required_elsewhere,
        jg.MissingDependencyError,
        "job 'report' requires 'summary', which belongs to another scheduler, not to 'main'",
    ),
    api(
        "requires-an-unknown-name",
        lambda m: alone(m.job("summary"), m.job("report", requires="sumary")),
        jg.MissingDependencyError,
        "job 'report' requires unknown 'sumary' (did you mean 'summary'?)",
    ),
    api(
        "duplicate-name",
        lambda m: alone(m.job("same"), m.job("free"), m.job("same")),
        jg.DuplicateNameError,
        "two jobs are named 'same'",
    ),
    # -- bodies bound for a worker process
    api(
        "unpicklable-function-executor-process",
        lambda_in(job={"executor": "process"}),
        jg.PicklingError,
        "job 'local' must run in a worker process (its executor is 'process')",
        NOT_PICKLED,
    ),
    api(
        "unpicklable-function-with-timeout",
        lambda_in(job={"timeout": 5}),
        jg.PicklingError,
        "job 'local' must run in a worker process (it has a timeout)",
        "executor='thread'",
    ),
    api(
        "unpicklable-function-run-executor-process",
        lambda_in(run={"executor": "process"}),
        jg.PicklingError,
        "job 'local' must run in a worker process (the run's executor is 'process')",
    ),
    # -- job options
    *(
        api(
            f"timeout-{label}",
            lambda m, v=value: one(m, timeout=v),
            ValueError,
            "job 'bad': timeout must be a positive finite number of seconds",
            f"not {value!r}",
        )
        for label, value in [
            ("zero", 0),
            ("negative", -1),
            ("nan", math.nan),
            ("inf", math.inf),
            ("string", "10"),
        ]
    ),
    api(
        "scheduler-timeout-zero",
        scheduler_with(timeout=0),
        ValueError,
        "scheduler 'main': timeout must be a positive finite number of seconds, not 0",
    ),
    api(
        "run-timeout-negative",
        runs_with(timeout=-1),
        ValueError,
        "scheduler 'main': timeout must be a positive finite number of seconds, not -1",
    ),
    *(
        api(
            f"retries-{label}",
            lambda m, v=value: one(m, retries=v),
            ValueError,
            f"job 'bad': retries must be a non-negative integer, not {value!r}",
        )
        for label, value in [("negative", -1), ("float", 1.5), ("string", "2"), ("none", None)]
    ),
    api(
        "retry-delay-negative",
        lambda m: one(m, retries=1, retry_delay=-1),
        ValueError,
        "job 'bad': retry_delay must be a non-negative finite number of seconds, not -1",
    ),
    api(
        "retry-backoff-zero",
        lambda m: one(m, retries=1, retry_backoff=0),
        ValueError,
        "job 'bad': retry_backoff must be a positive finite number of seconds, not 0",
    ),
    api(
        "run-if-unknown",
        lambda m: one(m, run_if="always"),
        ValueError,
        "job 'bad': run_if must be one of success, done, failure, not 'always'",
    ),
    api(
        "executor-misspelt",
        lambda m: one(m, executor="procss"),
        ValueError,
        "job 'bad': executor must be one of thread, process, local",
        "not 'procss'",
    ),
    api(
        "priority-string",
        lambda m: one(m, priority="high"),
        ValueError,
        "job 'bad': priority must be a finite number, not 'high'",
    ),
    # -- resources
    api(
        "resource-unknown-pool",
        lambda m: alone(m.job("free"), m.job("train", resources={"gpus": 1})),
        jg.ResourceError,
        "job 'train' asks for resource 'gpus', but the scheduler has no such pool",
    ),
    api(
        "resource-misspelt-pool",
        lambda m: (
            jg.Scheduler(m.job("train", resources={"gpus": 1}), resources={"gpu": 2}),
            {},
        ),
        jg.ResourceError,
        "job 'train' asks for resource 'gpus'",
        "(did you mean 'gpu'?)",
    ),
    api(
        "resource-more-than-the-pool",
        lambda m: (
            jg.Scheduler(m.job("free"), m.job("train", resources={"gpu": 3}), resources={"gpu": 2}),
            {},
        ),
        jg.ResourceError,
        "job 'train' asks for 3 'gpu' but the pool holds only 2",
    ),
    api(
        "resource-held-by-forever-jobs",
        forever_holds_the_pool,
        jg.ResourceError,
        "job 'client' asks for 1 'db', but forever jobs hold 1 of the 1",
    ),
    api(
        "resource-negative",
        lambda m: one(m, resources={"gpu": -1}),
        ValueError,
        "job 'bad': resources['gpu'] must be a positive number, not -1",
    ),
    api(
        "resource-not-a-mapping",
        lambda m: one(m, resources=["gpu"]),
        ValueError,
        "job 'bad': resources must be a mapping of name to amount, not ['gpu']",
    ),
    api(
        "pool-negative",
        scheduler_with(resources={"gpu": -2}),
        ValueError,
        "scheduler 'main': resources['gpu'] must be a positive number, not -2",
    ),
    api(
        "run-resources-drop-a-pool",
        lambda m: (
            jg.Scheduler(m.job("train", resources={"gpu": 1}), resources={"gpu": 1}),
            {"resources": {"cpu": 4}},
        ),
        jg.ResourceError,
        "job 'train' asks for resource 'gpu'",
        "(pools: cpu)",
    ),
    # -- window
    *(
        api(
            f"window-{label}",
            scheduler_with(window=value),
            ValueError,
            f"scheduler 'main': window must be a positive integer or None, not {value!r}",
        )
        for label, value in [("zero", 0), ("negative", -3), ("float", 1.5), ("string", "4")]
    ),
    api(
        "run-window-zero",
        runs_with(window=0),
        ValueError,
        "scheduler 'main': window must be a positive integer or None, not 0",
    ),
    # -- unknown options and run options of the wrong kind
    api(
        "unknown-run-option",
        runs_with(windw=2),
        TypeError,
        "unknown run option 'windw' (did you mean 'window'?)",
    ),
    api(
        "unknown-scheduler-keyword",
        scheduler_with(windw=2),
        TypeError,
        "Scheduler() got an unexpected keyword argument 'windw' (did you mean 'window'?)",
    ),
    api(
        "run-option-given-to-the-scheduler",
        scheduler_with(resume="last"),
        TypeError,
        "unexpected keyword argument 'resume' (it is an option of run(), not of the constructor)",
    ),
    api(
        "force-unknown-job",
        runs_with(force=["biuld"]),
        ValueError,
        "scheduler 'main': force names unknown job 'biuld' (did you mean 'build'?)",
    ),
    api(
        "force-one-string",
        runs_with(force="build"),
        ValueError,
        "scheduler 'main': force must be True, False, None or a list of job names, not 'build'",
    ),
    # -- wrong types
    api(
        "fn-not-callable",
        lambda m: alone(m.job("free"), jg.Job(42, name="bad")),
        TypeError,
        "a job needs a callable, a coroutine function or a coroutine, not 42",
    ),
    api(
        "fn-a-command-string",
        lambda m: alone(m.job("free"), jg.Job(f"touch {m.path('bad')}", name="bad")),
        TypeError,
        "a job needs a callable",
        "not 'touch ",
    ),
    api(
        "requires-a-number",
        lambda m: one(m, requires=3),
        TypeError,
        "requires takes jobs, sequences, names or iterables of them, not 3",
    ),
    api(
        "requires-a-number-in-a-list",
        lambda m: alone(m.job("a"), m.job("b", requires=["a", 2.5])),
        TypeError,
        "requires takes jobs, sequences, names or iterables of them, not 2.5",
    ),
    api(
        "name-not-a-string",
        lambda m: alone(m.job("free"), jg.Job(touch, m.path("bad"), name=3)),
        ValueError,
        "a job name must be a non-empty string, not 3",
    ),
    api(
        "name-blank",
        lambda m: alone(m.job("free"), jg.Job(touch, m.path("bad"), name="  ")),
        ValueError,
        "a job name must be a non-empty string, not '  '",
    ),
    api(
        "name-with-slash",
        lambda m: alone(m.job("free"), m.job("a/b")),
        ValueError,
        "job name 'a/b' may not contain '/'",
    ),
    api(
        "scheduler-given-a-string",
        lambda m: alone(m.job("free"), "bad"),
        TypeError,
        "a scheduler holds jobs and sequences, not 'bad'",
    ),
    api(
        "sequence-given-a-function",
        lambda m: alone(jg.Sequence(m.job("free"), touch)),
        TypeError,
        "a Sequence holds jobs and sequences, not <function touch",
    ),
    api(
        "shell-command-a-number",
        lambda m: alone(m.job("free"), jg.Shell(3, name="bad")),
        ValueError,
        "a shell command must be a non-empty string or list, not 3",
    ),
    # -- defects only running can show: the job fails alone, the run is not ok
    Case(
        "api-unpicklable-argument-executor-process",
        with_lock("argument", job={"executor": "process"}),
        FailsAlone("bad", UnpicklableError, ("argument 1", LOCK, NOT_PICKLED), ran=("free",)),
    ),
    Case(
        "api-unpicklable-argument-with-timeout",
        with_lock("argument", job={"timeout": 5}),
        FailsAlone("bad", UnpicklableError, ("argument 1", LOCK, NOT_PICKLED), ran=("free",)),
    ),
    Case(
        "api-unpicklable-result-with-a-store",
        lambda m: with_lock("result", run={"store": m.store})(m),
        FailsAlone(
            "bad",
            TypeError,
            ("the result of job 'bad' (lock) cannot be stored", LOCK),
            ran=("bad", "free"),
        ),
    ),
    Case(
        "api-unpicklable-result-from-a-worker",
        with_lock("result", job={"executor": "process"}),
        FailsAlone(
            "bad",
            UnpicklableError,
            ("the result (lock) cannot be pickled back from the worker", LOCK),
            ran=("bad", "free"),
        ),
    ),
]


# Every command leaves ran_<job> in the workflow's folder, where the command runs.
YAML_CASES = [
    yaml(
        "syntax-error",
        "jobs:\n  a:\n    shell: touch ran_a\n    requires: [b\n  b:\n    shell: touch ran_b\n",
        5,
        WorkflowError,
        "not valid YAML: expected ',' or ']'",
        "(while parsing a flow sequence that starts at line 4)",
    ),
    yaml(
        "tab-indent",
        "jobs:\n  a:\n\tshell: touch ran_a\n",
        3,
        WorkflowError,
        "not valid YAML: found character '\\t' that cannot start any token",
    ),
    yaml(
        "unknown-job-key",
        "jobs:\n  a:\n    shell: touch ran_a\n    timout: 5\n",
        4,
        WorkflowError,
        "unknown key in job 'a': 'timout' (did you mean 'timeout'?)",
    ),
    yaml(
        "unknown-top-level-key",
        "jobs:\n  a:\n    shell: touch ran_a\nwindw: 2\n",
        4,
        WorkflowError,
        "unknown top-level key 'windw' (did you mean 'window'?)",
    ),
    yaml(
        "duplicate-job",
        "jobs:\n  a:\n    shell: touch ran_a\n  a:\n    shell: touch ran_b\n",
        4,
        WorkflowError,
        "duplicate key 'a'",
    ),
    yaml(
        "timeout-a-word",
        "jobs:\n  a:\n    shell: touch ran_a\n  b:\n    shell: touch ran_b\n    timeout: soon\n",
        6,
        WorkflowError,
        "job 'b'",
        "timeout must be a positive finite number of seconds, not 'soon'",
    ),
    yaml(
        "timeout-zero",
        "jobs:\n  a:\n    shell: touch ran_a\n    timeout: 0\n",
        4,
        WorkflowError,
        "job 'a'",
        "timeout must be a positive finite number of seconds, not 0",
    ),
    yaml(
        "timeout-nan",
        "jobs:\n  a:\n    shell: touch ran_a\n    timeout: .nan\n",
        4,
        WorkflowError,
        "job 'a'",
        "timeout must be a positive finite number of seconds, not nan",
    ),
    yaml(
        "retries-negative",
        "jobs:\n  a:\n    shell: touch ran_a\n    retries: -1\n",
        4,
        WorkflowError,
        "job 'a'",
        "retries must be a non-negative integer, not -1",
    ),
    yaml(
        "requires-a-number",
        "jobs:\n  a:\n    shell: touch ran_a\n  b:\n    shell: touch ran_b\n    requires: 3\n",
        6,
        WorkflowError,
        "job 'b': 'requires' must be a job name or a list of them, not 3",
    ),
    yaml(
        "requires-an-unknown-job",
        "jobs:\n  summary:\n    shell: touch ran_summary\n  b:\n    shell: touch ran_b\n"
        "    requires:\n      - summary\n      - sumary\n",
        8,
        jg.MissingDependencyError,
        "job 'b' requires unknown 'sumary' (did you mean 'summary'?)",
    ),
    yaml(
        "cycle",
        "jobs:\n  a:\n    shell: touch ran_a\n    requires: [b]\n  b:\n    shell: touch ran_b\n"
        "    requires: [a]\n  free:\n    shell: touch ran_free\n",
        2,
        jg.CycleError,
        "cycle in requirements: a -> b -> a",
    ),
    yaml(
        "self-loop",
        "jobs:\n  free:\n    shell: touch ran_free\n  a:\n    shell: touch ran_a\n"
        "    requires: a\n",
        4,
        jg.CycleError,
        "cycle in requirements: a -> a",
    ),
    yaml(
        "resource-unknown-pool",
        "resources: {gpu: 1}\njobs:\n  a:\n    shell: touch ran_a\n  b:\n    shell: touch ran_b\n"
        "    resources:\n      gpus: 1\n",
        8,
        WorkflowError,
        "job 'b' asks for resource 'gpus', but the scheduler has no such pool",
        "(did you mean 'gpu'?)",
    ),
    yaml(
        "resource-more-than-the-pool",
        "resources: {gpu: 1}\njobs:\n  a:\n    shell: touch ran_a\n  b:\n    shell: touch ran_b\n"
        "    resources: {gpu: 2}\n",
        7,
        WorkflowError,
        "job 'b' asks for 2 'gpu' but the pool holds only 1",
    ),
    yaml(
        "resource-negative",
        "resources: {gpu: 1}\njobs:\n  a:\n    shell: touch ran_a\n    resources: {gpu: -1}\n",
        5,
        WorkflowError,
        "job 'a'",
        "resources['gpu'] must be a positive number, not -1",
    ),
    yaml(
        "window-zero",
        "name: build\njobs:\n  a:\n    shell: touch ran_a\nwindow: 0\n",
        5,
        WorkflowError,
        "scheduler 'build': window must be a positive integer or None, not 0",
    ),
    yaml(
        "top-level-timeout-a-word",
        "jobs:\n  a:\n    shell: touch ran_a\ntimeout: soon\n",
        4,
        WorkflowError,
        "scheduler 'bad': timeout must be a positive finite number of seconds, not 'soon'",
    ),
    yaml(
        "critical-not-a-bool",
        "jobs:\n  a:\n    shell: touch ran_a\n    critical: maybe\n",
        4,
        WorkflowError,
        "job 'a': 'critical' must be true or false, not 'maybe'",
    ),
    yaml(
        "name-with-slash",
        "jobs:\n  free:\n    shell: touch ran_free\n  a/b:\n    shell: touch ran_a\n",
        4,
        WorkflowError,
        "job name 'a/b' may not contain '/'",
    ),
    yaml(
        "shell-a-number",
        "jobs:\n  a:\n    shell: 3\n",
        3,
        WorkflowError,
        "job 'a': a shell command must be a non-empty string or list, not 3",
    ),
    yaml(
        "call-not-a-function",
        "jobs:\n  free:\n    shell: touch ran_free\n  a:\n    call: os:sep\n",
        5,
        WorkflowError,
        "job 'a': call 'os:sep' names str, not a function",
    ),
    yaml(
        "jobs-a-list",
        "jobs:\n  - a\n",
        1,
        WorkflowError,
        "'jobs' must be a mapping of job names to jobs",
    ),
    Case(
        "yaml-unpicklable-result",
        "jobs:\n  bad:\n    call: threading:Lock\n  after:\n    shell: touch ran_after\n"
        "    requires: [bad]\n  free:\n    shell: touch ran_free\n",
        FailsAlone(
            "bad",
            TypeError,
            ("the result of job 'bad' (lock) cannot be stored", LOCK),
            ran=("ran_free",),
        ),
    ),
]

CASES = API_CASES + YAML_CASES


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_names_the_culprit_and_runs_nothing(case: Case, tmp_path: Path) -> None:
    if isinstance(case.given, str):
        check_yaml_in_process(case, case.given, tmp_path / "lib")
        check_yaml_by_the_command(case, case.given, tmp_path / "cli")
    else:
        check_library(case.expect, case.given, Marks(tmp_path))


def check_library(expect: Refused | FailsAlone, build: Build, marks: Marks) -> None:
    if isinstance(expect, Refused):
        with pytest.raises(expect.error) as caught:
            scheduler, options = build(marks)
            scheduler.run(**options)
        check_error(caught.value, expect)
        assert marks.ran() == []
        return
    scheduler, options = build(marks)
    report = scheduler.run(**options)
    check_failed_alone(expect, scheduler, report)
    assert marks.ran() == sorted(expect.ran)


def check_error(error: BaseException | None, expect: Refused | FailsAlone) -> None:
    """``error`` is of exactly the expected type, and its text holds the expected words."""
    assert type(error) is expect.error
    for words in expect.says:
        assert words in str(error)


def check_failed_alone(expect: FailsAlone, scheduler: jg.Scheduler, report: jg.Report) -> None:
    jobs = {job.name: job for job in scheduler.jobs}
    bad = jobs[expect.job]
    assert bad.state is jg.State.FAILED
    check_error(bad.exception(), expect)
    assert jobs["after"].state is jg.State.SKIPPED
    assert jobs["after"].skipped_because == [expect.job]
    assert jobs["free"].state is jg.State.SUCCEEDED
    assert not report.ok and report.exit_code == 1
    assert report.why().startswith(f"job {expect.job!r} failed: ")


def write(folder: Path, text: str) -> Path:
    folder.mkdir()
    path = folder / "bad.yaml"
    path.write_text(text)
    return path


def ran_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("ran_*"))


def check_yaml_in_process(case: Case, text: str, folder: Path) -> None:
    path = write(folder, text)
    expect = case.expect
    if isinstance(expect, FailsAlone):
        scheduler = load(path)
        report = scheduler.run(store=str(folder / "state.db"))
        check_failed_alone(expect, scheduler, report)
        assert ran_in(folder) == sorted(expect.ran)
        return
    with pytest.raises(expect.error) as caught:
        load(path).run()
    check_error(caught.value, expect)
    assert str(caught.value).startswith(f"{path}:{case.line}: ")
    assert ran_in(folder) == []


def check_yaml_by_the_command(case: Case, text: str, folder: Path) -> None:
    write(folder, text)
    out = jobgraph_cli("run", "bad.yaml", cwd=folder, timeout=30)
    expect = case.expect
    if isinstance(expect, FailsAlone):
        assert out.returncode == 1, out.stderr
        assert f"FAILED {expect.job}: " in out.stderr
        for words in expect.says:
            assert words in out.stderr
        assert ran_in(folder) == sorted(expect.ran)
        return
    # One line, the same words as the library's, no traceback; no store, nothing run.
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    line, *more = out.stderr.splitlines()
    assert more == [], out.stderr
    assert line.startswith(f"jobgraph: error: bad.yaml:{case.line}: ")
    for words in expect.says:
        assert words in line
    assert ran_in(folder) == []
    assert not (folder / ".jobgraph").exists()
