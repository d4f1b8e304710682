"""Job, Shell and Sequence: definitions of work. Nothing runs here.

A job's run-time fields (state, result, times) are written by the runner; this module
only reads them back for the user.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from inspect import CO_COROUTINE
from types import FunctionType, MappingProxyType
from typing import TYPE_CHECKING, Any

from . import options as _opt
from .errors import JobError
from .state import State

if TYPE_CHECKING:
    from .instances import Instances
    from .output import OutputBuffer
    from .scheduler import Scheduler

_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})  # shared: most jobs take no keywords

# What a job's body is; decides how the runner starts it.
FUNCTION, CORO_FUNCTION, CORO_OBJECT, SHELL, SCHEDULER = range(5)


def _kind_of(fn: Any) -> int:
    """What a body is, for anything but a plain function (which Job.__init__ checks)."""
    if inspect.iscoroutine(fn):
        return CORO_OBJECT
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    ):
        return CORO_FUNCTION
    if callable(fn):
        return FUNCTION
    raise TypeError(f"a job needs a callable, a coroutine function or a coroutine, not {fn!r}")


def _name_of(fn: Any) -> str:
    """Derive a readable default name from what a job runs."""
    target = getattr(fn, "func", fn)  # functools.partial
    name = getattr(target, "__name__", None)
    if name is None:
        name = type(target).__name__
    return "lambda" if name == "<lambda>" else str(name)


def _find_jobs(value: Any, found: list[Job]) -> bool:
    """Collect the jobs inside an argument (lists, tuples, sets, dict values)."""
    if isinstance(value, Job):
        found.append(value)
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        hits = [_find_jobs(item, found) for item in value]
        return any(hits)
    if isinstance(value, dict):
        hits = [_find_jobs(item, found) for item in value.values()]
        return any(hits)
    return False


def requirement_list(items: Any) -> list[Job | str]:
    """The jobs (or names) of a requirement specification, as a new list."""
    if type(items) is list or type(items) is tuple:
        for item in items:  # the common case, a flat list of jobs, without a generator
            if not isinstance(item, Job):
                break
        else:
            return list(items)
    return list(flatten_requirements(items))


def flatten_requirements(items: Any) -> Iterator[Job | str]:
    """Yield the jobs (or job names) in a nested requirement specification.

    A :class:`Sequence` stands for its last job: requiring a sequence means requiring
    all of it, and its last job already requires the others.
    """
    if items is None:
        return
    if isinstance(items, (Job, str)):
        yield items
    elif isinstance(items, Sequence):
        last = items.last
        if last is not None:
            yield last
    elif isinstance(items, Iterable):
        for item in items:
            yield from flatten_requirements(item)
    else:
        raise TypeError(
            f"requires takes jobs, sequences, names or iterables of them, not {items!r}"
        )


# The instance fields most jobs get, most common first. CPython keeps an instance's
# attributes in an array laid out by a table its class shares, which holds up to 30 names
# (3.11). An object that gets a name the table did not have when the object was made
# moves its attributes to a dict of its own: slower to read, more for the collector to
# walk. _prime() fills the table before the first job exists, so that a graph built
# before it first runs keeps compact jobs. Fields left out fall back to that dict.
_COMMON_FIELDS = (
    "_kind",
    "_fn",
    "_args",
    "_kwargs",
    "_owner",
    "_index",
    "_run",
    "_name",
    "_auto",
    "_requires",
    "_data_deps",
    "_state",
    "_causes",
    "_attempts",
    "_t0",
    "_t1",
    "_result",
    "_note",
    "_exception",
    "_error",
    "_returncode",
    "_stdout",
    "_stderr",
    "critical",
    "timeout",
    "retries",
    "cache",
    "inputs",
    "outputs",
    "priority",
)


def _prime(cls: type) -> None:
    """Teach ``cls``'s shared attribute table the common field names (see above)."""
    probe: object = object.__new__(cls)
    for field in _COMMON_FIELDS:
        setattr(probe, field, None)


def _utc(timestamp: float | None) -> _dt.datetime | None:
    if timestamp is None:
        return None
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc)


class Job:
    """One unit of work in a graph: a function, a coroutine, a command or a scheduler.

    See the API reference (section 1) for every option. Arguments that are jobs are
    replaced by those jobs' results when this job runs, and make them requirements.
    """

    # No __slots__: fields have class-level defaults, so building a job writes only what
    # its call gives (see _COMMON_FIELDS for how the instances stay compact).
    _fixed_kind: int | None = None  # a subclass whose body is always of one kind sets it
    _name: str | None = None
    _auto: str | None = None  # derived name, made unique by the scheduler
    _data_deps: tuple[Job, ...] = ()
    _requires: list[Job | str] | tuple[()] = ()  # the job's own list once it has any
    _owner: Scheduler | None = None
    _index = -1
    _run: Any = None
    critical = False
    forever = False
    priority: float = 0
    cache = False
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    env_keys: tuple[str, ...] = ()
    run_if = "success"
    timeout: float | None = None
    retries = 0
    retry_delay: float = 0.0
    retry_backoff: float = 1.0
    resources: Mapping[str, int | float] | None = None
    executor: Any = None
    # Run-time fields, as before any run (see _reset).
    _state = State.PENDING
    _result: Any = None
    _exception: BaseException | None = None
    _error: str | None = None
    _note: str | None = None
    _returncode: int | None = None
    _attempts = 0
    _t0: float | None = None
    _t1: float | None = None
    _causes: tuple[str, ...] = ()
    _stdout: OutputBuffer | None = None
    _stderr: OutputBuffer | None = None

    def __init__(
        self,
        fn: Any,
        *args: Any,
        name: str | None = None,
        requires: Any = (),
        critical: bool = False,
        forever: bool = False,
        timeout: float | None = None,
        retries: int = 0,
        retry_delay: float = 0.0,
        retry_backoff: float = 1.0,
        resources: Mapping[str, int | float] | None = None,
        priority: float = 0,
        cache: bool = False,
        inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = (),
        outputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = (),
        env_keys: str | Iterable[str] = (),
        run_if: str = "success",
        executor: Any = None,
        **kwargs: Any,
    ) -> None:
        kind = self._fixed_kind
        if kind is None:
            if type(fn) is FunctionType:  # the common case, without inspect's generality
                kind = CORO_FUNCTION if fn.__code__.co_flags & CO_COROUTINE else FUNCTION
            else:
                kind = _kind_of(fn)
        self._kind = kind
        self._fn = fn
        self._args = args
        self._kwargs = kwargs or _NO_KWARGS
        if name is not None:
            self._name = self._check_name(name)
        if args or kwargs:
            found: list[Job] = []
            if _find_jobs(args, found) | _find_jobs(kwargs, found):
                self._data_deps = tuple(dict.fromkeys(found))
        if requires:
            self._requires = requirement_list(requires)
        if critical:
            self.critical = bool(critical)
        if forever:
            self.forever = bool(forever)
        if cache:
            self.cache = bool(cache)
        if inputs:
            self.inputs = _opt.check_paths(self, "inputs", inputs)
        if outputs:
            self.outputs = _opt.check_paths(self, "outputs", outputs)
        if env_keys:
            self.env_keys = _opt.check_names(self, "env_keys", env_keys)
        # Compared with the defaults, not tested for truth: None or "" is a mistake to
        # report, not a default to take.
        if (
            timeout is not None
            or retries != 0
            or retry_delay != 0
            or retry_backoff != 1.0
            or resources is not None
            or priority != 0
            or run_if != "success"
            or executor is not None
        ):
            self.timeout = timeout
            self.retries = retries
            self.retry_delay = retry_delay
            self.retry_backoff = retry_backoff
            self.resources = resources
            self.priority = priority
            self.run_if = run_if
            self.executor = executor
            self._check_options()

    @staticmethod
    def instances(
        body: Any, ranges: str, *args: Any, name: str | None = None, **options: Any
    ) -> Instances:
        """One job per instance number of ``ranges`` (``"1,3-8"``), named ``name[3]``.

        A function receives its instance number as its first argument (before ``args``);
        a command (a string or a list) finds it in ``$JOBGRAPH_INSTANCE``. ``options`` are
        those of each job. The result is a list of the jobs, usable wherever jobs are.
        """
        from .instances import expand

        return expand(body, ranges, args, name, options)

    # -- construction helpers -------------------------------------------------------

    @staticmethod
    def _check_name(name: Any) -> str | None:
        if name is None:
            return None
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a job name must be a non-empty string, not {name!r}")
        if "/" in name:
            raise ValueError(f"job name {name!r} may not contain '/' (it separates nested names)")
        return name

    def _check_options(self) -> None:
        kind = "scheduler" if self._kind == SCHEDULER else "job"
        owner = f"{kind} {self.name!r}"
        if self.timeout is not None:
            self.timeout = _opt.check_seconds(owner, "timeout", self.timeout)
        self.retries, self.retry_backoff = _opt.check_retries(
            owner, self.retries, self.retry_backoff
        )
        self.retry_delay = _opt.check_seconds(
            owner, "retry_delay", self.retry_delay, allow_zero=True
        )
        self.resources = _opt.check_amounts(owner, "resources", self.resources)
        self.priority = _opt.check_priority(owner, self.priority)
        self.run_if = _opt.check_run_if(owner, self.run_if)
        self.executor = _opt.check_executor(owner, self.executor)
        if self._kind == CORO_OBJECT and _opt.ships_bodies(self.executor):
            raise ValueError(
                f"{owner}: a coroutine object can only run on this process's event loop, "
                f"not on executor {self.executor!r}; pass the async function and its "
                f"arguments instead"
            )
        if self._kind == CORO_OBJECT and self.retries:
            raise ValueError(
                f"{owner}: a coroutine object can run only once, so it cannot be "
                f"retried; pass the async function and its arguments instead"
            )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _prime(cls)

    def _reset(self) -> None:
        """Clear the run-time fields before a run (of a job that ran before)."""
        self._state = State.PENDING
        self._result = None
        self._exception = None
        self._error = None
        self._note = None
        self._returncode = None
        self._attempts = 0
        self._t0 = None
        self._t1 = None
        self._causes = ()
        self._stdout = None
        self._stderr = None

    # -- definition -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The job's identity: the explicit name, or one derived from its body.

        A derived name is made unique within its scheduler (``fetch``, ``fetch-2``, ...),
        in the order the jobs were added.
        """
        if self._name is not None:
            return self._name
        if self._owner is not None:
            return self._owner._derived_name(self)
        return self._default_name()

    def _default_name(self) -> str:
        return _name_of(self._fn)

    @property
    def requirements(self) -> list[Job]:
        """The jobs this job requires, data dependencies included (names not resolved)."""
        seen = dict.fromkeys(r for r in self._requires if isinstance(r, Job))
        seen.update(dict.fromkeys(self._data_deps))
        return list(seen)

    def requires(self, *others: Any) -> Job:
        """Add requirements after construction; returns the job."""
        if isinstance(self._requires, list):  # the job's own list
            self._requires.extend(flatten_requirements(others))
        else:  # the shared empty default
            self._requires = list(flatten_requirements(others))
        if self._owner is not None:
            self._owner._adopt_requirements(self)
        return self

    # -- run-time results -----------------------------------------------------------

    @property
    def state(self) -> State:
        """The job's current state (``PENDING`` before any run)."""
        run = self._run
        if run is not None:
            return run.state[self._index]  # type: ignore[no-any-return]
        return self._state

    @property
    def attempts(self) -> int:
        """How many times the body was started in the last run."""
        return self._attempts

    @property
    def started_at(self) -> _dt.datetime | None:
        """When the last attempt started (UTC), or None."""
        return _utc(self._t0)

    @property
    def ended_at(self) -> _dt.datetime | None:
        """When the job ended (UTC), or None."""
        return _utc(self._t1)

    @property
    def duration(self) -> float | None:
        """Seconds between the start of the last attempt and the end, or None."""
        if self._t0 is None or self._t1 is None:
            return None
        return max(0.0, self._t1 - self._t0)

    @property
    def skipped_because(self) -> list[str]:
        """Names of the failed jobs that caused this job to be skipped."""
        run = self._run
        causes = run.causes[self._index] if run is not None else self._causes
        return list(causes or ())

    def result(self) -> Any:
        """Return the job's result, or raise :class:`JobError` if it did not succeed."""
        state = self.state
        if state in (State.SUCCEEDED, State.UP_TO_DATE):
            return self._result
        message = f"job {self.name!r} did not succeed: it is {state.name}"
        if state is State.SKIPPED and self.skipped_because:
            message += " because " + ", ".join(repr(c) for c in self.skipped_because) + " failed"
        elif self._error:
            message += ": " + self._error.strip().splitlines()[-1]
        raise JobError(message, self.name) from self._exception

    def exception(self) -> BaseException | None:
        """The exception that ended the job, or None."""
        return self._exception

    # -- live output (shell jobs) ---------------------------------------------------

    def stdout(self) -> str:
        """All standard output received so far (shell jobs; empty for others)."""
        return self._stdout.read_all() if self._stdout is not None else ""

    def fresh_stdout(self) -> str:
        """Standard output received since the last call of this method."""
        return self._stdout.read_fresh() if self._stdout is not None else ""

    def stderr(self) -> str:
        """All standard error received so far (shell jobs; empty for others)."""
        return self._stderr.read_all() if self._stderr is not None else ""

    def fresh_stderr(self) -> str:
        """Standard error received since the last call of this method."""
        return self._stderr.read_fresh() if self._stderr is not None else ""

    def __repr__(self) -> str:
        kind = type(self).__name__
        text = f"<{kind} {self.name!r} {self.state.name}"
        if self._attempts > 1:
            text += f" attempt={self._attempts}"
        return text + ">"


_prime(Job)


class ShellResult:
    """What a shell job returns: its exit status and captured output (text)."""

    __slots__ = ("returncode", "stderr", "stdout")

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"ShellResult(returncode={self.returncode}, stdout={len(self.stdout)} chars)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShellResult):
            return NotImplemented
        return (self.returncode, self.stdout, self.stderr) == (
            other.returncode,
            other.stdout,
            other.stderr,
        )

    def __hash__(self) -> int:
        return hash((self.returncode, self.stdout, self.stderr))


class Shell(Job):
    """A job that runs a command in its own process group.

    A string runs through ``/bin/sh -c``; a list runs directly (no shell). ``env``
    entries are added to (and override) the current environment.
    """

    __slots__ = ("cwd", "env")
    _fixed_kind = SHELL

    def __init__(
        self,
        command: str | list[str] | tuple[str, ...],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        **job_options: Any,
    ) -> None:
        if isinstance(command, (list, tuple)):
            if not command or not all(isinstance(a, (str, os.PathLike)) for a in command):
                raise ValueError(f"a shell command list must be non-empty strings, not {command!r}")
            command = [os.fspath(a) for a in command]
        elif not isinstance(command, str) or not command.strip():
            raise ValueError(f"a shell command must be a non-empty string or list, not {command!r}")
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.env = dict(env) if env else None
        super().__init__(command, **job_options)

    def _default_name(self) -> str:
        command = self._fn
        first = command[0] if isinstance(command, list) else (command.split() or ["sh"])[0]
        return os.path.basename(first) or "sh"

    @property
    def command(self) -> str | list[str]:
        """The command as given."""
        return self._fn  # type: ignore[no-any-return]

    @property
    def command_line(self) -> str:
        """The command as one line of text (for reports and fingerprints)."""
        command = self._fn
        if isinstance(command, list):
            import shlex

            return shlex.join(command)
        return str(command)


class Sequence:
    """Jobs that run one after the other: each element requires the one before it.

    Elements are jobs or sequences. The first element requires ``requires``. A sequence
    can be required or added wherever a job can.
    """

    __slots__ = ("_items",)

    def __init__(self, *jobs_or_sequences: Job | Sequence, requires: Any = ()) -> None:
        items: list[Job | Sequence] = []
        for item in jobs_or_sequences:
            if not isinstance(item, (Job, Sequence)):
                raise TypeError(f"a Sequence holds jobs and sequences, not {item!r}")
            items.append(item)
        self._items = items
        for before, after in itertools.pairwise(items):
            after.requires(before)
        if requires:
            self.requires(requires)

    @property
    def first(self) -> Job | None:
        """The job that starts the sequence."""
        for item in self._items:
            head = item.first if isinstance(item, Sequence) else item
            if head is not None:
                return head
        return None

    @property
    def last(self) -> Job | None:
        """The job that ends the sequence."""
        for item in reversed(self._items):
            tail = item.last if isinstance(item, Sequence) else item
            if tail is not None:
                return tail
        return None

    def requires(self, *others: Any) -> Sequence:
        """Make the sequence's first element require ``others``; returns the sequence."""
        if self._items:
            self._items[0].requires(*others)
        return self

    def append(self, item: Job | Sequence) -> Sequence:
        """Add an element at the end; it requires the current last element."""
        if self._items:
            item.requires(self._items[-1])
        self._items.append(item)
        return self

    def __iter__(self) -> Iterator[Job]:
        for item in self._items:
            if isinstance(item, Sequence):
                yield from item
            else:
                yield item

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<Sequence of {len(self)} jobs>"


def iter_jobs(items: Iterable[Any]) -> Iterator[Job]:
    """Yield the jobs in a mix of jobs, sequences and nested iterables."""
    for item in items:
        if item is None:
            continue
        if isinstance(item, Job):
            yield item
        elif isinstance(item, Sequence):
            yield from item
        elif isinstance(item, Iterable) and not isinstance(item, str):
            yield from iter_jobs(item)
        else:
            raise TypeError(f"a scheduler holds jobs and sequences, not {item!r}")
