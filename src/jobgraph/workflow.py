"""YAML workflow files -> a Scheduler, with errors that name the file and the line.

    window: 4
    jobs:
      fetch:
        shell: curl -sSf -o data.csv https://example.org/data.csv
        outputs: [data.csv]
      stats:
        call: mypkg.stats:compute
        args: [data.csv]
        requires: [fetch]

Commands run in the workflow file's folder unless a job sets ``cwd``; relative ``inputs``,
``outputs`` and ``cwd`` are relative to that folder too. The folder is put on
``sys.path`` so ``call:`` can name modules that sit beside the file, and ``jobgraph run``
runs a workflow from its folder, so the arguments of ``call:`` jobs are read from there.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import CycleError, GraphError, MissingDependencyError, ResourceError
from .job import Job, Shell
from .plan import did_you_mean
from .scheduler import Scheduler

TOP_KEYS = ("name", "window", "timeout", "resources", "jobs")
JOB_KEYS = (
    "shell",
    "call",
    "args",
    "kwargs",
    "requires",
    "timeout",
    "retries",
    "retry_delay",
    "retry_backoff",
    "critical",
    "forever",
    "run_if",
    "resources",
    "priority",
    "cache",
    "inputs",
    "outputs",
    "env",
    "env_keys",
    "cwd",
)


# Keys read by the loader itself; every other job key is a Job option as it stands.
_SPECIAL = (
    "shell",
    "call",
    "args",
    "kwargs",
    "requires",
    "inputs",
    "outputs",
    "env",
    "env_keys",
    "cwd",
)


class WorkflowError(GraphError):
    """A workflow file is malformed; the message starts with ``FILE:LINE:``."""


class DuplicateKey(Exception):
    """A mapping of the file names one key twice (YAML would keep only the last)."""

    def __init__(self, name: str, line: int) -> None:
        super().__init__(name)
        self.name, self.line = name, line


@dataclass
class _Where:
    path: Path
    lines: dict[tuple[str, ...], int]

    def at(self, *key: str) -> str:
        """``file:line`` of a key path, or of the nearest enclosing one."""
        while key and key not in self.lines:
            key = key[:-1]
        return f"{self.path}:{self.lines.get(key, 1)}"


def load(path: str | Path) -> Scheduler:
    """Read a YAML workflow file and build its scheduler (raises :class:`WorkflowError`)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkflowError(f"{file}: cannot read the workflow: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise WorkflowError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    data, where = _parse(file, text)
    return _build(data, where)


# libyaml's parser when PyYAML was built with it (its wheels are): parsing is most of
# loading a small workflow, and a server loads one per submitted run, twice. An error is
# worded by the pure-Python parser when it rejects the text too (the two differ only on
# rare edge cases, e.g. a tab after "key:").
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(file: Path, text: str) -> tuple[dict[str, Any], _Where]:
    try:
        node, data = _load(_FAST_LOADER, text)
    except yaml.YAMLError as exc:
        raise WorkflowError(_yaml_problem(file, _in_plain_words(text, exc))) from None
    if not isinstance(data, dict):
        raise WorkflowError(f"{file}:1: a workflow is a mapping with a 'jobs' key")
    lines: dict[tuple[str, ...], int] = {}
    try:
        _record_lines(node, (), lines)
    except DuplicateKey as dup:
        raise WorkflowError(f"{file}:{dup.line}: duplicate key {dup.name!r}") from None
    return data, _Where(file, lines)


def _load(loader_class: Any, text: str) -> tuple[Any, Any]:
    """The document's node tree (for line numbers) and its value."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _in_plain_words(text: str, exc: yaml.YAMLError) -> yaml.YAMLError:
    """The pure-Python parser's error for ``text`` (libyaml words it differently)."""
    try:
        _load(yaml.SafeLoader, text)
    except yaml.YAMLError as told:
        return told
    return exc


def _yaml_problem(file: Path, exc: yaml.YAMLError) -> str:
    """``FILE:LINE: not valid YAML: ...``, with where the construct began when elsewhere.

    PyYAML notices an unclosed ``[`` or ``{`` only on a later line; the line that opened
    it is the one to fix, so it is named too.
    """
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc)
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and start is not None and start.line + 1 != line:
        problem += f" ({context} that starts at line {start.line + 1})"
    return f"{file}:{line}: not valid YAML: {problem}"


def _record_lines(node: Any, key: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> None:
    """Remember the line of every mapping key and sequence item, by its key path."""
    lines.setdefault(key, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            name = str(k.value)
            path = (*key, name)
            if name in seen:
                raise DuplicateKey(name, k.start_mark.line + 1)
            seen.add(name)
            lines[path] = k.start_mark.line + 1
            _record_lines(v, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*key, str(index)), lines)


def _build(data: dict[str, Any], where: _Where) -> Scheduler:
    _check_keys(data, TOP_KEYS, where, (), "top-level key")
    jobs_data = data.get("jobs")
    if not isinstance(jobs_data, dict) or not jobs_data:
        raise WorkflowError(f"{where.at('jobs')}: 'jobs' must be a mapping of job names to jobs")
    folder = where.path.parent.resolve()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # call: may name modules beside the workflow
    jobs = {str(name): _job(str(name), spec, where, folder) for name, spec in jobs_data.items()}
    for name, spec in jobs_data.items():
        _link(str(name), spec, jobs, where)
    try:
        scheduler = Scheduler(
            *jobs.values(),
            name=str(data.get("name") or where.path.stem),
            window=data.get("window"),
            timeout=data.get("timeout"),
            resources=data.get("resources"),
        )
    except (ValueError, TypeError) as exc:
        # Each top-level option is checked on its own: the message names the one at fault.
        key = next((k for k in ("window", "timeout", "resources") if f": {k}" in str(exc)), None)
        raise WorkflowError(f"{where.at(*(key,) if key else ())}: {exc}") from None
    try:
        scheduler.validate()
    except CycleError as exc:
        first = where.at("jobs", exc.cycle[0]) if exc.cycle else str(where.path)
        raise CycleError(exc.cycle, first) from None
    except ResourceError as exc:
        line = where.at("jobs", exc.job or "", "resources", exc.pool or "")
        raise WorkflowError(f"{line}: {exc}") from None
    except (GraphError, ValueError, TypeError) as exc:
        raise WorkflowError(f"{where.at()}: {exc}") from None
    return scheduler


def _check_keys(
    mapping: dict[str, Any], known: tuple[str, ...], where: _Where, key: tuple[str, ...], what: str
) -> None:
    for name in mapping:
        if name not in known:
            hint = did_you_mean(str(name), known)
            raise WorkflowError(f"{where.at(*key, str(name))}: unknown {what} {name!r}{hint}")


def _job(name: str, spec: Any, where: _Where, folder: Path) -> Job:
    key = ("jobs", name)
    try:
        Job._check_name(name)  # its key is its name: the line to fix is the key's own
    except ValueError as exc:
        raise WorkflowError(f"{where.at(*key)}: {exc}") from None
    if not isinstance(spec, dict):
        raise WorkflowError(f"{where.at(*key)}: job {name!r} must be a mapping of options")
    _check_keys(spec, JOB_KEYS, where, key, f"key in job {name!r}:")
    if ("shell" in spec) == ("call" in spec):
        raise WorkflowError(
            f"{where.at(*key)}: job {name!r} needs exactly one of 'shell' or 'call'"
        )
    try:
        options = _options(name, spec, folder)
        if "shell" in spec:
            cwd = _path(folder, spec.get("cwd", "."))
            return Shell(spec["shell"], cwd=cwd, env=_env(spec.get("env")), **options)
        args, kwargs = spec.get("args") or [], spec.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("'args' must be a list and 'kwargs' a mapping")
        return Job(_target(spec["call"]), *args, **options, **kwargs)
    except (ValueError, TypeError, ImportError, AttributeError) as exc:
        option = next((k for k in spec if k in str(exc)), "call" if "call" in spec else "shell")
        text, prefix = str(exc), f"job {name!r}: "
        # Errors from Job() name the job already: say it once.
        message = text if text.startswith(prefix) else prefix + text
        raise WorkflowError(f"{where.at(*key, option)}: {message}") from None


def _options(name: str, spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    simple = [k for k in JOB_KEYS if k not in _SPECIAL]  # passed on as they are
    options = {k: spec[k] for k in simple if k in spec}
    for key in ("critical", "forever", "cache"):
        if key in spec and not isinstance(spec[key], bool):
            raise ValueError(f"'{key}' must be true or false, not {spec[key]!r}")
    if "env_keys" in spec:
        options["env_keys"] = _strings("env_keys", spec["env_keys"])
    for key in ("inputs", "outputs"):
        if key in spec:
            options[key] = [_path(folder, v) for v in _strings(key, spec[key])]
    options["name"] = name
    return options


def _strings(key: str, value: Any) -> list[str]:
    """A string or a list of strings (paths, names); anything else is an error."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"'{key}' must be a string or a list of strings, not {value!r}")
    return values


def _path(folder: Path, value: str) -> str:
    return value if Path(value).is_absolute() else str(folder / value)


def _env(env: Any) -> dict[str, str] | None:
    if env is None:
        return None
    if not isinstance(env, dict):
        raise ValueError("'env' must be a mapping of variable names to values")
    return {str(k): str(v) for k, v in env.items()}


def _target(call: Any) -> Any:
    if not isinstance(call, str) or ":" not in call:
        raise ValueError(f"'call' must read 'module:function', not {call!r}")
    module_name, _, attribute = call.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # missing, or broken (a syntax error, an error at import)
        raise ImportError(
            f"cannot import {module_name!r} for call {call!r}: {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise AttributeError(f"{module_name!r} has no {attribute!r} (call {call!r})")
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"call {call!r} names {type(target).__name__}, not a function")
    return target


def _link(name: str, spec: dict[str, Any], jobs: dict[str, Job], where: _Where) -> None:
    wanted = spec.get("requires") or []
    wanted = [wanted] if isinstance(wanted, str) else wanted
    if not isinstance(wanted, list):
        raise WorkflowError(
            f"{where.at('jobs', name, 'requires')}: job {name!r}: 'requires' "
            f"must be a job name or a list of them, not {wanted!r}"
        )
    for index, other in enumerate(wanted):
        if str(other) not in jobs:
            line = where.at("jobs", name, "requires", str(index))
            raise MissingDependencyError(
                f"{line}: job {name!r} requires unknown {other!r}{did_you_mean(str(other), jobs)}"
            )
        jobs[name].requires(jobs[str(other)])
