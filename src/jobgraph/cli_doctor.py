"""``jobgraph doctor``: check a store, report runs left running by a dead owner, release them.

Exit status: 0 healthy (every run ended or is really running), 1 something needs attention
(a run whose owner is dead, a schema that the next open will migrate), 2 a broken store
(damage found, an unreadable file, a schema newer than this jobgraph) or a bad option.
"""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING

import click

from .cli import DEFAULT_STORE, UserError, _checked, _store_option, main

if TYPE_CHECKING:
    from .doctor import Diagnosis, RunCheck


@main.command()
@_store_option()
@click.option(
    "--release",
    "named",
    multiple=True,
    metavar="RUN",
    help="Release RUN's lease (its owner is dead), so that a resume need not wait.",
)
@click.option(
    "--release-dead", is_flag=True, help="Release the lease of every run whose owner is dead."
)
@click.option(
    "--force",
    is_flag=True,
    help="With --release: even if the lease is fresh (its machine is known to be down). "
    "Never a run whose owner lives on this machine.",
)
def doctor(store: str, named: tuple[str, ...], release_dead: bool, force: bool) -> None:
    """Check a store: integrity, schema version, and the runs that did not end."""
    from .doctor import examine, release, to_release, unfinished

    if force and not named:
        raise UserError("--force goes with --release RUN")
    try:
        diagnosis: Diagnosis = _checked(lambda: examine(store))
    except ImportError as exc:  # psycopg, for a PostgreSQL store
        raise UserError(str(exc)) from None
    freed: list[str] | None = None  # None: no release asked for
    if named or release_dead:
        if not diagnosis.readable:
            raise UserError(
                f"cannot release runs of {diagnosis.checkup.location}: {_why(diagnosis)}"
            )
        chosen = _checked(lambda: to_release(diagnosis.runs or (), named, release_dead, force))
        freed = _checked(lambda: release(store, chosen))
        diagnosis.runs = _checked(lambda: unfinished(store))  # as they are now
    for line in report(diagnosis, store, freed):
        click.echo(line)
    sys.exit(diagnosis.exit_code)


def report(diagnosis: Diagnosis, store: str, freed: list[str] | None = None) -> list[str]:
    """The lines ``jobgraph doctor`` prints about ``diagnosis`` (and the runs ``freed``)."""
    problems = diagnosis.problems
    lines = [f"store:      {diagnosis.checkup.location} ({diagnosis.kind})"]
    lines.append("integrity:  " + ("ok" if not problems else _count(len(problems), "problem")))
    lines += [f"  - {problem}" for problem in problems]
    lines.append(f"schema:     {_schema(diagnosis)}")
    if freed is not None and not freed:
        lines.append("released:   nothing (no run's owner is dead)")
    lines += [f"released:   {run_id} (a resume takes it at once)" for run_id in freed or ()]
    if diagnosis.runs is None:
        lines.append("runs:       not read (the store must be sound and its schema current)")
    elif not diagnosis.runs:
        lines.append("runs:       all ended")
    else:
        lines.append(f"runs:       {_count(len(diagnosis.runs), 'run')} did not end")
        for check in diagnosis.runs:
            lines += _run(check, store)
    lines.append(f"verdict:    {_verdict(diagnosis)}")
    return lines


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _schema(diagnosis: Diagnosis) -> str:
    from .doctor import Schema

    version, current = diagnosis.checkup.version, diagnosis.checkup.current
    if version is None and diagnosis.problems:
        return "unknown (not readable)"
    if diagnosis.schema is Schema.CURRENT:
        return f"version {version} (current)"
    if diagnosis.schema is Schema.NEWER:
        return f"version {version}, newer than this jobgraph's ({current}): upgrade jobgraph"
    if version is None:
        return "none yet (jobgraph creates it when it next opens the store)"
    return f"version {version}, older than {current} (migrated when jobgraph next opens the store)"


def _run(check: RunCheck, store: str) -> list[str]:
    info = check.info
    head = f"  {info.run_id}  started {_when(info.started_at)}  scheduler {info.scheduler!r}"
    head += f"  owner {check.owner}"
    return [f"{head}  {_lease(check.lease_left)}", f"    {_judged(check, store)}"]


def _judged(check: RunCheck, store: str) -> str:
    from .doctor import Verdict

    verdict, run_id = check.verdict, check.info.run_id
    if verdict is Verdict.RUNNING and check.local:
        return "still running (its owner lives on this machine)"
    if verdict is Verdict.RUNNING:
        return (
            f"still running on {check.host}, as far as its lease tells (if that machine is "
            f"down: --release {run_id} --force)"
        )
    if verdict is Verdict.STALLED:
        return (
            "owner alive on this machine but its lease expired: stopped, stuck, or its pid "
            "was reused (a resume would take the run over)"
        )
    resume = f"resumable now with {_resume_hint(check, store)}"
    if verdict is Verdict.DEAD:
        return f"owner dead: {resume}"
    if verdict is Verdict.EXPIRED:
        return f"owner unknown on {check.host}, its lease expired: {resume}"
    return f"held by nobody: {resume}"


def _resume_hint(check: RunCheck, store: str) -> str:
    """How to resume: through ``jobgraph resume`` if the run came from a file, else Python."""
    run_id = check.info.run_id
    if not check.info.origin.get("file"):
        return f"run(resume={run_id!r})"
    where = "" if store == DEFAULT_STORE else f" --store {shlex.quote(store)}"
    return f"'jobgraph resume {run_id}{where}'"


def _lease(left: float | None) -> str:
    if left is None:
        return "no lease"
    return f"lease fresh ({left:.0f}s left)" if left > 0 else f"lease expired {-left:.0f}s ago"


def _verdict(diagnosis: Diagnosis) -> str:
    from .doctor import BROKEN, HEALTHY

    code = diagnosis.exit_code
    if code == BROKEN:
        return f"broken: {_why(diagnosis)}"
    if code == HEALTHY:
        return "healthy"
    waiting = diagnosis.attention
    if not waiting:
        return f"needs attention: {_why(diagnosis)}"
    dead = [c for c in waiting if c.dead]
    hint = "; 'jobgraph doctor --release-dead' frees the leases of dead owners" if dead else ""
    verb = "is" if len(waiting) == 1 else "are"
    return (
        f"needs attention: {_count(len(waiting), 'run')} did not end and {verb} not running{hint}"
    )


def _why(diagnosis: Diagnosis) -> str:
    from .doctor import Schema

    if diagnosis.problems:
        salvage = ""
        if diagnosis.kind == "SQLite":
            file = diagnosis.checkup.location
            salvage = f" (restore a backup, or salvage: sqlite3 {file} .recover | sqlite3 new.db)"
        return f"the store is damaged{salvage}"
    if diagnosis.schema is Schema.NEWER:
        return "its schema is newer than this jobgraph understands"
    # Only asked about a store with problems or a schema not current: here, an older one.
    return "its schema is older (jobgraph migrates it when it next opens the store)"


def _when(timestamp: float) -> str:
    """To the second, as in reports: ``2026-11-21T14:03:07Z``."""
    from .report import iso

    return iso(int(timestamp)) or ""
