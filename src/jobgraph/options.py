"""Validation of job and scheduler options, with messages that name the culprit."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

RUN_IF = ("success", "done", "failure")
EXECUTOR_NAMES = ("thread", "process", "local")


def check_seconds(owner: str, option: str, value: Any, *, allow_zero: bool = False) -> float:
    """Return ``value`` as float seconds, or raise ValueError naming ``owner`` and ``option``."""
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    number = float(value) if ok_type else math.nan
    positive = number >= 0 if allow_zero else number > 0
    if not ok_type or not math.isfinite(number) or not positive:
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(
            f"{owner}: {option} must be {kind} finite number of seconds, not {value!r}"
        )
    return number


def check_retries(owner: str, retries: Any, backoff: Any) -> tuple[int, float]:
    """Validate a retry count and backoff factor."""
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"{owner}: retries must be a non-negative integer, not {retries!r}")
    factor = check_seconds(owner, "retry_backoff", backoff)
    return retries, factor


def check_run_if(owner: str, run_if: Any) -> str:
    """Validate a ``run_if`` condition."""
    if run_if not in RUN_IF:
        raise ValueError(f"{owner}: run_if must be one of {', '.join(RUN_IF)}, not {run_if!r}")
    return str(run_if)


def check_amounts(owner: str, option: str, amounts: Any) -> dict[str, int | float] | None:
    """Validate a mapping of resource name to a positive amount (requests or pool sizes)."""
    if amounts is None:
        return None
    if not isinstance(amounts, Mapping):
        raise ValueError(f"{owner}: {option} must be a mapping of name to amount, not {amounts!r}")
    checked: dict[str, int | float] = {}
    for key, amount in amounts.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{owner}: {option} names must be non-empty strings, not {key!r}")
        good = isinstance(amount, (int, float)) and not isinstance(amount, bool)
        if not good or not math.isfinite(amount) or amount <= 0:
            raise ValueError(
                f"{owner}: {option}[{key!r}] must be a positive number, not {amount!r}"
            )
        checked[key] = amount
    return checked or None


def check_executor(owner: str, executor: Any) -> Any:
    """Validate an executor choice: None, a known name, or an executor object."""
    if executor is None or executor == "local":
        return None
    if isinstance(executor, str):
        if executor not in EXECUTOR_NAMES:
            names = ", ".join(EXECUTOR_NAMES)
            raise ValueError(
                f"{owner}: executor must be one of {names} or an executor object, not {executor!r}"
            )
        return executor
    from .executors.cluster import DaskExecutor

    if not isinstance(executor, DaskExecutor) and not callable(getattr(executor, "submit", None)):
        raise ValueError(
            f"{owner}: executor object {executor!r} is neither a DaskExecutor nor an "
            f"executor with a submit() method (such as concurrent.futures executors)"
        )
    return executor


def executor_from_text(text: str | None) -> Any:
    """The executor a command-line value names: local, thread, process, dask, dask://..."""
    if text is None or text == "local":
        return None
    if text == "dask" or text.startswith("dask://"):
        from .executors.cluster import DaskExecutor

        return DaskExecutor(address=None if text == "dask" else text)
    return check_executor("--executor", text)


def ships_bodies(executor: Any) -> bool:
    """True for executors that run bodies in other processes (they must be pickled)."""
    from .executors.cluster import DaskExecutor

    return executor == "process" or isinstance(executor, DaskExecutor)


def check_priority(owner: str, priority: Any) -> float:
    """Validate a priority (any finite number; higher runs first)."""
    good = isinstance(priority, (int, float)) and not isinstance(priority, bool)
    if not good or not math.isfinite(priority):
        raise ValueError(f"{owner}: priority must be a finite number, not {priority!r}")
    return float(priority)


def check_force(owner: str, force: Any) -> Any:
    """Validate ``force``: None, a bool, or a list, tuple or set of job names.

    A single string is refused: taken as a collection it would force every job whose
    name is one of its letters, and taken as nothing it would force nothing, silently.
    """
    if force is None or isinstance(force, bool):
        return force
    if isinstance(force, (list, tuple, set)) and all(isinstance(n, str) for n in force):
        return force
    raise ValueError(
        f"{owner}: force must be True, False, None or a list of job names, not {force!r}"
    )


def check_paths(job: Any, option: str, value: Any) -> tuple[str, ...]:
    """File paths or glob patterns (``str`` or ``os.PathLike``, one or several) as strings.

    One path is taken as such, not as the characters of a string. ``job`` is named in the
    error (only then: naming a job can cost more than the check).
    """
    items = [value] if isinstance(value, (str, os.PathLike)) else value
    try:
        paths = tuple(map(os.fspath, items))
    except TypeError:
        raise ValueError(
            f"job {job.name!r}: {option} must be file paths or glob patterns (str or "
            f"os.PathLike), not {value!r}"
        ) from None
    if not all(isinstance(p, str) for p in paths):  # bytes: os.fspath keeps them
        raise ValueError(f"job {job.name!r}: {option} must be text paths, not {value!r}")
    if not all(paths):
        raise ValueError(f"job {job.name!r}: {option} may not hold an empty path: {value!r}")
    return paths


def check_names(job: Any, option: str, value: Any) -> tuple[str, ...]:
    """Names (one ``str``, or several) as a tuple: one name, not its characters."""
    names = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"job {job.name!r}: {option} must be non-empty strings, not {value!r}")
    return names
