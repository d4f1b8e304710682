"""Text listings and DOT graphs of an asynciojobs-style scheduler.

Jobs are numbered in topological order (``01``, ``02``...; a nested scheduler's jobs
right after it) so that a listing can show requirements as numbers.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

from .job import AbstractJob

if TYPE_CHECKING:
    from .purescheduler import PureScheduler


def _is_scheduler(job: Any) -> bool:
    from .purescheduler import PureScheduler

    return isinstance(job, PureScheduler)


def number(sched: PureScheduler) -> None:
    """Give every job, nested ones included, its number in topological order."""
    total = sched._total_length()
    width = len(str(max(total - 1, 1)))  # asynciojobs' width: 1..9 jobs, then 10..99
    _number_from(sched, 1, width)


def _number_from(sched: PureScheduler, start: int, width: int) -> int:
    for job in sched.topological_order():
        job._sched_id = f"{start:0{width}d}"
        start += 1
        if _is_scheduler(job):
            start = _number_from(job, start, width)  # type: ignore[arg-type]
    return start


def counts(sched: PureScheduler) -> tuple[int, int, int, int]:
    """Done, running (not done), idle and total jobs."""
    jobs = list(sched.jobs)
    done = sum(1 for j in jobs if j.is_done())
    running = sum(1 for j in jobs if j.is_running() and not j.is_done())
    idle = sum(1 for j in jobs if not j.is_running())
    return done, running, idle, len(jobs)


def _line(job: AbstractJob, depth: int) -> str:
    indent = ">" * depth + " " if depth else ""
    return (
        f"{job.repr_id()} {job.repr_short()} {indent}{job.repr_main()} "
        f"{job.repr_result()} {job.repr_requires()}"
    ).rstrip()


def _print_jobs(sched: PureScheduler, details: bool, silence_done: bool, depth: int) -> None:
    for job in sched.topological_order():
        if _is_scheduler(job):
            print(f"{_line(job, depth)} -> entries={_ids(sched_entries(job))}")
            _print_jobs(job, details, silence_done, depth + 1)  # type: ignore[arg-type]
            print(f"{job.repr_id()} --end-- {'<' * (depth + 1)} {job.repr_main()}")
            continue
        if silence_done and job.is_done():
            continue
        print(_line(job, depth))
        text = job.details() if details else None
        if text is not None:
            print(text)


def sched_entries(sched: Any) -> list[AbstractJob]:
    """The entry jobs of a (nested) scheduler."""
    return list(sched.entry_jobs())


def _ids(jobs: list[AbstractJob]) -> str:
    return "{" + ", ".join(j.repr_id() for j in jobs) + "}" if jobs else ""


def print_list(sched: PureScheduler, details: bool, silence_done: bool) -> None:
    """``list()``: every job in topological order, nested schedulers indented."""
    number(sched)
    _print_jobs(sched, details, silence_done, 0)


def print_list_safe(sched: PureScheduler, silence_done: bool, prefix: str = "") -> None:
    """``list_safe()``: no order needed, so a graph with a cycle can be shown too."""
    for i, job in enumerate(sched.jobs, 1):
        job._sched_id = f"{prefix}{i}"
    for job in sched.jobs:
        if silence_done and job.is_done():
            continue
        print(f"{job.repr_short()} {job.repr_id()} {job.repr_main()} {job.repr_requires()}")
        if _is_scheduler(job):
            print_list_safe(job, silence_done, f"{job.repr_id()}.")
            print("--end--", job.repr_id())


def print_debrief(sched: PureScheduler, details: bool, silence_done: bool) -> None:
    """``debrief()``: why the run failed, the listing, then the exceptions."""
    done, running, idle, total = counts(sched)
    print(f"----- {sched.why()}")
    print(f"scheduler has {total} jobs: {done} done, {running} ongoing, {idle} idle")
    print_list(sched, details, silence_done)
    failed = [j for j in sched.topological_order() if j.raised_exception() is not None]
    if not failed:
        return
    critical = [j for j in failed if j.is_critical()]
    print(f"===== {len(failed)} job(s) with an exception, including {len(critical)} critical")
    for job in critical + [j for j in failed if not j.is_critical()]:
        kind = "CRITICAL" if job.is_critical() else "non-critical"
        print(f"{kind} job {job.repr_id()} {job.repr_main()}:")
        exc = job.raised_exception()
        assert exc is not None
        print("".join(traceback.format_exception(exc)).rstrip())


# -- DOT ------------------------------------------------------------------------------


def _attributes(style: dict[str, Any]) -> str:
    """``key="value",...``; a list value (``style``) is joined with commas."""
    from ...render.dot import quote  # only for graphs: not loaded with the layer

    return ",".join(
        f"{key}={quote(','.join(value) if isinstance(value, list) else str(value))}"
        for key, value in style.items()
    )


def dot(sched: PureScheduler) -> str:
    """The whole graph in DOT, nested schedulers drawn as clusters."""
    number(sched)
    return "digraph asynciojobs{\ncompound=true;\n" + _dot_body(sched) + "}\n"


def _anchor(job: Any, first: bool) -> tuple[str, str]:
    """The node an edge to/from ``job`` attaches to, and the cluster to clip at."""
    if not _is_scheduler(job):
        return job.repr_id(), ""
    inner = list(job.entry_jobs() if first else job.exit_jobs()) or list(job.jobs)
    if not inner:
        return job.repr_id(), ""
    node, _ = _anchor(inner[(len(inner) - 1) // 2], first)
    return node, job.dot_cluster_name()


def _dot_body(sched: PureScheduler) -> str:
    out: list[str] = []
    for job in sched.topological_order():
        if _is_scheduler(job):
            out.append(f"subgraph {job.dot_cluster_name()} {{\n")  # type: ignore[attr-defined]
            out.append(f"graph [{_attributes(job.dot_style())}];\n")
            if not job.jobs:  # type: ignore[attr-defined]
                out.append(f'{job.repr_id()} [label="(empty)",shape=plaintext];\n')
            out.append(_dot_body(job))  # type: ignore[arg-type]
            out.append("}\n")
        else:
            out.append(f"{job.repr_id()} [{_attributes(job.dot_style())}];\n")
        for req in job.required:
            if req not in sched.jobs:
                continue
            head, lhead = _anchor(job, first=True)
            tail, ltail = _anchor(req, first=False)
            clip = [f"lhead={lhead}"] * bool(lhead) + [f"ltail={ltail}"] * bool(ltail)
            out.append(f"{tail} -> {head}" + (f" [{','.join(clip)}]" if clip else "") + ";\n")
    return "".join(out)
