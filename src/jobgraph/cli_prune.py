"""``jobgraph prune``: delete old runs from a store, keeping the newest of each scheduler."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from .cli import UserError, _checked, _history, _store_option, main

if TYPE_CHECKING:
    from .prune import Pruned


@main.command()
@_store_option()
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Runs kept for each scheduler, the newest.",
)
@click.option("--dry-run", is_flag=True, help="Say which runs would go; delete nothing.")
@click.option("--vacuum", is_flag=True, help="Then give the freed space back to the disk (SQLite).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def prune(store: str, keep: int, dry_run: bool, vacuum: bool, as_json: bool) -> None:
    """Delete old runs (their job records and output).

    The jobs' last successes stay, so no job runs again because of it; a deleted run can
    no longer be resumed or shown. A run still going on is never deleted.
    """
    from .prune import prune as prune_runs

    if vacuum and dry_run:
        raise UserError("--vacuum frees what a prune deleted: it does nothing with --dry-run")
    history = _history(store)
    try:
        pruned: Pruned = _checked(lambda: prune_runs(history, keep, dry_run=dry_run))
        if vacuum and not dry_run:
            _checked(history.compact)
    finally:
        history.close()
    if as_json:
        click.echo(json.dumps(_as_json(pruned, dry_run), indent=2))
        return
    for line in _lines(pruned, keep, dry_run):
        click.echo(line)


def _lines(pruned: Pruned, keep: int, dry_run: bool) -> list[str]:
    from .report import iso

    verb = "would delete" if dry_run else "deleted"
    lines = [f"{verb} {r.run_id}  {iso(r.started_at)}  {r.scheduler}" for r in pruned.deleted]
    runs = "run" if len(pruned.deleted) == 1 else "runs"
    lines.append(
        f"{verb} {len(pruned.deleted)} {runs}; kept {pruned.kept} "
        f"(the newest {keep} of each scheduler, and any still running)"
    )
    lines += [f"kept {r.run_id}: still running" for r in pruned.kept_live]
    return lines


def _as_json(pruned: Pruned, dry_run: bool) -> dict[str, object]:
    return {
        "dry_run": dry_run,
        "deleted": [r.run_id for r in pruned.deleted],
        "kept_running": [r.run_id for r in pruned.kept_live],
        "kept": pruned.kept,
    }
