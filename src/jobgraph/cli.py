"""The ``jobgraph`` command. Heavy modules are imported inside commands, so --help is fast.

Exit status: a run's report exit code (0 ok, 1 a job failed, 2 aborted, 3 timed out, 130
interrupted); 2 for a bad file or option, with one message naming the problem.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_STORE = os.path.join(".jobgraph", "state.db")
USER_ERROR = 2


class UserError(click.ClickException):
    """A mistake in a file or an option: one line, exit status 2, no traceback."""

    exit_code = USER_ERROR

    def show(self, file: Any = None) -> None:
        """Print ``jobgraph: error: ...`` on standard error."""
        click.echo(f"jobgraph: error: {self.format_message()}", err=True)


def _names(values: tuple[str, ...]) -> list[str]:
    """NAME options may repeat or hold commas: --only a --only b,c."""
    return [n for value in values for n in value.split(",") if n]


def _store_option(default: str | None = DEFAULT_STORE) -> Callable[[F], F]:
    return click.option(
        "--store",
        "store",
        default=default,
        show_default=True,
        help="Where runs are recorded: a path, sqlite:///path or postgresql://...",
    )


def _executor_option() -> Callable[[F], F]:
    return click.option(
        "--executor",
        default="local",
        show_default=True,
        callback=lambda ctx, param, value: _executor_text(value),
        help="Where job bodies run: local, thread, process, dask (a local cluster) or "
        "dask://HOST:PORT (a running cluster).",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobgraph")
def main() -> None:
    """Run a graph of jobs: functions, coroutines and shell commands."""


# -- run ----------------------------------------------------------------------------------


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-j", "--jobs", "window", type=click.IntRange(min=1), help="At most N jobs at once.")
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds for the whole run."
)
@click.option("--fail-fast", is_flag=True, help="The first failure stops the run.")
@click.option(
    "--force",
    "force",
    multiple=True,
    is_flag=False,
    flag_value="*",
    help="Run cached jobs anyway: all (no value) or the NAMEs given.",
)
@click.option(
    "--resume",
    "resume",
    is_flag=False,
    flag_value="last",
    default=None,
    help="Resume the last run, or RUN.",
)
@_store_option()
@_executor_option()
@click.option(
    "--report", "report_path", type=click.Path(dir_okay=False), help="Write the JSON report here."
)
@click.option(
    "--junit", "junit_path", type=click.Path(dir_okay=False), help="Write JUnit XML here."
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write the HTML report here."
)
@click.option("--only", multiple=True, help="Only these jobs and what they need.")
@click.option("--dry-run", is_flag=True, help="Say what would run and why; run nothing.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
def run(
    file: str,
    window: int | None,
    timeout: float | None,
    fail_fast: bool,
    force: tuple[str, ...],
    resume: str | None,
    store: str,
    executor: str,
    report_path: str | None,
    junit_path: str | None,
    html_path: str | None,
    only: tuple[str, ...],
    dry_run: bool,
    quiet: bool,
) -> None:
    """Run the jobs of FILE (a Python file or a YAML workflow)."""
    scheduler = _prepare(file, only, fail_fast)
    forced: Any = True if "*" in force else (_names(force) or None)
    if isinstance(forced, list):
        plan = _checked(scheduler.plan)
        for name in forced:
            _checked(lambda n=name: plan.index(n))
    if dry_run:
        _dry_run(scheduler, store, forced)
        return
    # What `jobgraph resume RUN` needs to run the same selection the same way.
    origin = {
        "file": str(Path(file).resolve()),
        "only": _names(only),
        "fail_fast": fail_fast,
        "window": window,
        "timeout": timeout,
        "executor": executor,
    }
    options: dict[str, Any] = {
        "store": _open(store),
        "force": forced,
        "source": origin,
        "executor": _executor(executor),
    }
    if window is not None:
        options["window"] = window
    if timeout is not None:
        options["timeout"] = timeout
    if resume is not None:
        options["resume"] = resume
    report = _run(scheduler, options, quiet)
    problem = _write_reports(report, report_path, junit_path, html_path, scheduler)
    click.echo(_summary(report, report_path or html_path or junit_path), err=True)
    if problem:
        click.echo(f"jobgraph: error: {problem}", err=True)
        sys.exit(USER_ERROR)
    sys.exit(report.exit_code)


def _prepare(file: str, only: tuple[str, ...], fail_fast: bool) -> Any:
    scheduler = _load(file)
    names = _names(only)
    if names:
        plan = _checked(scheduler.plan)
        for name in names:
            _checked(lambda n=name: plan.index(n))
        scheduler = scheduler.subgraph(ends=names)
    if fail_fast:
        for job in scheduler.jobs:
            job.critical = True
    return scheduler


def _run(scheduler: Any, options: dict[str, Any], quiet: bool) -> Any:
    from .progress import LiveProgress, PlainProgress

    display: Any = None
    if not quiet:
        live = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        if live:
            known = _known_durations(options.get("store"), scheduler.name)
            display = LiveProgress(len(scheduler.jobs), known)
        else:
            display = PlainProgress(sys.stderr)
    try:
        with _workflow_folder(options.get("source")):
            return _checked(lambda: scheduler.run(on_event=display, **options))
    finally:
        if display is not None:
            display.close()


@contextlib.contextmanager
def _workflow_folder(origin: dict[str, Any] | None) -> Iterator[None]:
    """Run a YAML workflow from its own folder: ``call:`` jobs see the paths commands see.

    The store is already open and report paths are written after, from where we were.
    """
    file = Path(origin["file"]) if origin and origin.get("file") else None
    if file is None or file.suffix not in (".yaml", ".yml"):
        yield
        return
    before = os.getcwd()
    os.chdir(file.resolve().parent)
    try:
        yield
    finally:
        os.chdir(before)


def _known_durations(store: Any, scheduler: str) -> dict[str, float]:
    """How long each job took in the last recorded run (for the live view's ETA)."""
    if store is None:
        return {}
    last = store.find_run(scheduler, "last")
    if last is None:
        return {}
    return {
        end.name: end.ended_at - end.started_at
        for end in store.recorded_ends(last.run_id).values()
        if end.started_at is not None and end.ended_at is not None
    }


def _executor_text(text: str) -> str:
    """Check an --executor value early (a usage error, before anything is loaded)."""
    if text in ("local", "thread", "process", "dask") or (
        text.startswith("dask://") and len(text) > len("dask://")
    ):
        return text
    raise click.BadParameter(
        f"{text!r} is not one of local, thread, process, dask, dask://HOST:PORT",
        param_hint="'--executor'",
    )


def _executor(text: str) -> Any:
    """The executor an --executor value names (a Dask one is created here)."""
    from .options import executor_from_text

    try:
        return executor_from_text(text)
    except ImportError as exc:
        raise UserError(str(exc)) from None


def _open(store: str) -> Any:
    from .store import open_store

    try:
        return _checked(lambda: open_store(store))
    except ImportError as exc:
        if exc.name != "psycopg":
            raise
        raise UserError(str(exc)) from None  # the PostgreSQL store's: it says what to install


def _dry_run(scheduler: Any, store: str, forced: Any) -> None:
    with _reading(scheduler, store):
        for job in _checked(scheduler.topological_order):
            reasons = scheduler.explain(job, force=forced)
            verdict = "up to date" if reasons.up_to_date else "would run: " + "; ".join(reasons)
            click.echo(f"{job.name}: {verdict}")


@contextlib.contextmanager
def _reading(scheduler: Any, store: str) -> Iterator[None]:
    """Give ``scheduler`` its store, opened once for every job explained, if it exists.

    Reads never create a store: without one, everything is explained as never run.
    """
    opened = _open(store) if store and _store_exists(store) else None
    scheduler.store = opened
    try:
        yield
    finally:
        if opened is not None:
            opened.close()


def _store_exists(store: str) -> bool:
    """A database server is taken to exist; a SQLite file must (reads never create one)."""
    from .store import sqlite_file

    file = _checked(lambda: sqlite_file(store))
    return file is None or Path(file).exists()


def _write_reports(
    report: Any,
    json_path: str | None,
    junit_path: str | None,
    html_path: str | None,
    scheduler: Any,
) -> str | None:
    """Write the reports asked for; return what went wrong (the run's outcome stands)."""
    from .render.html import write_html

    writers = [
        (json_path, report.to_json),
        (junit_path, report.to_junit),
        (html_path, lambda p: write_html(report, scheduler, p)),
    ]
    for path, write in writers:
        if path:
            try:
                write(path)
            except OSError as exc:
                return f"cannot write {path}: {exc.strerror or exc}"
    return None


def _summary(report: Any, where: str | None) -> str:
    from .progress import summary

    return summary(report, where)


# -- loading files ---------------------------------------------------------------------------


def _load(file: str) -> Any:
    path = Path(file)
    if not path.exists():
        raise UserError(f"{file}: no such file")
    if path.suffix in (".yaml", ".yml"):
        from .workflow import load

        return _checked(lambda: load(path))
    if path.suffix == ".py":
        return _load_python(path)
    raise UserError(f"{file}: expected a Python file (.py) or a YAML workflow (.yaml, .yml)")


def _load_python(path: Path) -> Any:
    import runpy

    from .scheduler import Scheduler

    sys.path.insert(0, str(path.parent.resolve()))
    try:
        namespace = runpy.run_path(str(path), run_name="__jobgraph__")
    except Exception as exc:
        raise UserError(f"{path}: could not be loaded: {type(exc).__name__}: {exc}") from exc
    found = namespace.get("scheduler")
    if found is None and callable(namespace.get("main")):
        try:
            found = namespace["main"]()
        except Exception as exc:
            raise UserError(f"{path}: main() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(found, Scheduler):
        raise UserError(f"{path}: defines no module-level 'scheduler' (nor a main() returning one)")
    return found


def _checked(action: Any) -> Any:
    """Run ``action``; definition errors become one-line user errors (exit status 2)."""
    from .errors import GraphError, StoreError

    try:
        return action()
    except (GraphError, StoreError, ValueError, TypeError) as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise UserError(f"{where}{exc.strerror or exc}") from exc


# -- graph, explain ----------------------------------------------------------------------------


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dot", "mermaid", "svg", "png", "html"]),
    default="dot",
    show_default=True,
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here.")
def graph(file: str, fmt: str, output: str | None) -> None:
    """Draw the graph of FILE."""
    scheduler = _load(file)
    if fmt in ("dot", "mermaid") and not output:
        click.echo(_checked(scheduler.dot if fmt == "dot" else scheduler.mermaid), nl=False)
        return
    suffix = {"mermaid": ".mmd"}.get(fmt, f".{fmt}")
    target = output or str(Path(file).with_suffix(suffix).name)
    try:
        written = _checked(
            lambda: scheduler.export(target if target.endswith(suffix) else target + suffix)
        )
    except (RuntimeError, OSError) as exc:
        raise UserError(f"{target}: {getattr(exc, 'strerror', None) or exc}") from exc
    click.echo(written)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("names", nargs=-1)
@_store_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def explain(file: str, names: tuple[str, ...], store: str, as_json: bool) -> None:
    """Say why jobs of FILE would run (all of them, or the NAMEs)."""
    scheduler = _load(file)
    with _reading(scheduler, store):
        jobs = list(names) or [job.name for job in _checked(scheduler.topological_order)]
        answers = {name: list(_checked(lambda n=name: scheduler.explain(n))) for name in jobs}
    if as_json:
        click.echo(json.dumps(answers, indent=2))
        return
    for name, reasons in answers.items():
        click.echo(f"{name}: {'; '.join(reasons)}")


# -- history ----------------------------------------------------------------------------------


def _history(store: str) -> Any:
    if not _store_exists(store):
        raise UserError(f"no store at {store} (runs are recorded by 'jobgraph run')")
    return _open(store)


@main.command()
@_store_option()
@click.option("--limit", default=20, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs(store: str, limit: int, as_json: bool) -> None:
    """List recorded runs, newest first."""
    from .report import iso

    rows = _history(store).runs(limit)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "run_id": r.run_id,
                        "scheduler": r.scheduler,
                        "started_at": iso(r.started_at),
                        "ended_at": iso(r.ended_at),
                        "exit_code": r.exit_code,
                        "why": r.why,
                        "graph_digest": r.graph_digest or None,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    for r in rows:
        state = "running or died" if r.ended_at is None else f"exit {r.exit_code}: {r.why}"
        click.echo(f"{r.run_id}  {iso(r.started_at)}  {r.scheduler}  {state}")


@main.command()
@click.argument("run_id")
@_store_option()
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report.")
def show(run_id: str, store: str, as_json: bool) -> None:
    """Show the report of a past run."""
    from .report import Report

    report = _checked(lambda: Report.from_store(_history(store), run_id))
    click.echo(report.to_json() if as_json else report.debrief(), nl=not as_json)
    if as_json:
        click.echo()


@main.command()
@click.argument("run_id")
@click.argument("job")
@_store_option()
@click.option(
    "--stderr", "stream", flag_value="stderr", default="stdout", help="Show standard error instead."
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the job runs.")
@click.option("--server", metavar="URL", help="A jobgraph server (jobgraph serve).")
@click.option("--token", envvar="JOBGRAPH_TOKEN", help="The server's token.")
def logs(
    run_id: str,
    job: str,
    store: str,
    stream: str,
    follow: bool,
    server: str | None,
    token: str | None,
) -> None:
    """Print a shell job's output (live while it runs, with --follow)."""
    from .logs import follow_output

    if server:
        from .cli_remote import remote_logs

        remote_logs(run_id, job, server, token, stream, follow)
        return
    history = _history(store)
    if history.find_run("", run_id) is None:
        raise UserError(f"no run {run_id!r} in {store}")
    known = set(history.recorded_ends(run_id)) | {s.name for s in history.job_starts(run_id)}
    if job not in known:
        from .plan import did_you_mean

        raise UserError(f"run {run_id} has no job {job!r}{did_you_mean(job, known)}")
    for text in follow_output(history, run_id, job, stream, follow):
        click.echo(text, nl=False)


@main.command()
@click.argument("run_id")
@_store_option()
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
def resume(run_id: str, store: str, quiet: bool) -> None:
    """Resume a recorded run (its jobs that ended well do not run again)."""
    history = _history(store)
    info = history.find_run("", run_id)
    if info is None:
        raise UserError(f"no run {run_id!r} in {store}")
    origin = info.origin
    if not origin.get("file"):
        raise UserError(
            f"run {run_id} was not started by 'jobgraph run FILE': resume it from "
            f"Python with run(resume={run_id!r})"
        )
    scheduler = _prepare(
        origin["file"], tuple(origin.get("only") or ()), bool(origin.get("fail_fast"))
    )
    options: dict[str, Any] = {"store": _open(store), "resume": run_id, "source": origin}
    for key in ("window", "timeout"):
        if origin.get(key) is not None:
            options[key] = origin[key]
    if origin.get("executor") not in (None, "local"):
        options["executor"] = _executor(origin["executor"])
    report = _run(scheduler, options, quiet)
    click.echo(_summary(report, None), err=True)
    sys.exit(report.exit_code)


# Registering commands: serve, submit, status, wait, abort (cli_remote); doctor (cli_doctor);
# prune (cli_prune).
from . import cli_doctor, cli_prune, cli_remote  # noqa: E402, F401


def entry() -> None:
    """The console script: click's usage errors become one line, exit status 2."""
    try:
        main(standalone_mode=False)
    except click.UsageError as exc:
        command = exc.ctx.info_name if exc.ctx and exc.ctx.parent else None
        hint = f" (see 'jobgraph {command + ' ' if command else ''}--help')"
        click.echo(f"jobgraph: error: {exc.format_message()}{hint}", err=True)
        sys.exit(USER_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    entry()
