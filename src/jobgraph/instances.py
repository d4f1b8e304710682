"""Instance ranges (``"1,3-8"``): one job per instance number, and reports by range.

``Job.instances(render, "1-100")`` makes jobs ``render[1]`` .. ``render[100]``; a function
receives its instance number as its first argument, a command finds it in the
``JOBGRAPH_INSTANCE`` environment variable. Reports group them back:
``{"render": {"SUCCEEDED": "1,3-100", "FAILED": "2"}}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .job import Job
    from .report import JobRecord

ENV = "JOBGRAPH_INSTANCE"
_PART = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")
_MEMBER = re.compile(r"^(?P<base>.+)\[(?P<number>\d+)\]$")


def parse_ranges(text: Any) -> list[int]:
    """``"1,3-8"`` -> ``[1, 3, 4, 5, 6, 7, 8]``; a malformed range is a ``ValueError``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"an instance range is text such as '1,3-8', not {text!r}")
    numbers: list[int] = []
    for part in text.split(","):
        found = _PART.fullmatch(part)
        if found is None:
            raise ValueError(
                f"instance range {text!r}: {part.strip()!r} is not a number or a range "
                f"such as '3-8'"
            )
        first = int(found.group(1))
        last = int(found.group(2)) if found.group(2) is not None else first
        if last < first:
            raise ValueError(f"instance range {text!r}: {part.strip()!r} goes backwards")
        numbers.extend(range(first, last + 1))
    if len(set(numbers)) != len(numbers):
        twice = sorted({n for n in numbers if numbers.count(n) > 1})
        raise ValueError(f"instance range {text!r} names instance {twice[0]} more than once")
    return numbers


def format_ranges(numbers: Iterable[int]) -> str:
    """``[1, 3, 4, 5]`` -> ``"1,3-5"`` (sorted, runs of consecutive numbers joined)."""
    ordered = sorted(set(numbers))
    parts: list[str] = []
    start = previous = None
    for number in [*ordered, None]:
        if number is not None and previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = number
    return ",".join(parts)


class Instances(list["Job"]):
    """The jobs of one instance range, in instance order (usable wherever jobs are)."""

    def __init__(self, name: str, numbers: list[int], jobs: Iterable[Job]) -> None:
        super().__init__(jobs)
        self.name = name
        self.numbers = numbers

    def __repr__(self) -> str:
        return f"<Instances {self.name}[{format_ranges(self.numbers)}]: {len(self)} jobs>"


def expand(
    body: Any, ranges: str, args: tuple[Any, ...], name: str | None, options: dict[str, Any]
) -> Instances:
    """One job per instance of ``ranges`` (see :meth:`Job.instances`)."""
    from .job import Job, Shell, _name_of

    numbers = parse_ranges(ranges)
    if isinstance(body, (str, list, tuple)):
        if args:
            raise TypeError("a command takes no arguments: its instance is $" + ENV)
        env = dict(options.pop("env", None) or {})
        base = name or Shell(body)._default_name()
        jobs: list[Job] = [
            Shell(body, name=f"{base}[{k}]", env={**env, ENV: str(k)}, **options) for k in numbers
        ]
    else:
        base = name or _name_of(body)
        jobs = [Job(body, k, *args, name=f"{base}[{k}]", **options) for k in numbers]
    return Instances(base, numbers, jobs)


def group(records: Iterable[JobRecord]) -> dict[str, dict[str, str]]:
    """Instance jobs of a report by base name, then state: ``{"render": {"FAILED": "2"}}``."""
    found: dict[str, dict[str, list[int]]] = {}
    for record in records:
        member = _MEMBER.match(record.name)
        if member is not None:
            states = found.setdefault(member["base"], {})
            states.setdefault(record.state.name, []).append(int(member["number"]))
    return {
        base: {state: format_ranges(numbers) for state, numbers in states.items()}
        for base, states in found.items()
    }
