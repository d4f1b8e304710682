"""Commands for runs in the background and on servers: serve, submit, status, wait, abort.

``--server URL`` (with ``--token`` or ``$JOBGRAPH_TOKEN``) talks to ``jobgraph serve``;
without it, the run is found in the local store, as ``jobgraph runs`` finds it.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .cli import DEFAULT_STORE, UserError, _executor_option, _store_option, main

F = TypeVar("F", bound=Callable[..., Any])
EXIT_STILL_RUNNING = 124  # `wait --timeout` ran out first (as timeout(1) says it)


def _server_options(fn: F) -> F:
    fn = click.option(
        "--token", envvar="JOBGRAPH_TOKEN", help="The server's token (or $JOBGRAPH_TOKEN)."
    )(fn)
    return click.option("--server", metavar="URL", help="A jobgraph server (jobgraph serve).")(fn)


def _handle(run_id: str, server: str | None, token: str | None, store: str) -> Any:
    """A handle on run ``run_id``: on the server, or in the local store."""
    from .client import Client, ServerError

    try:
        if server:
            return Client(server, token or "").attach(run_id)
        from .handle import attach

        return attach(run_id, store)
    except ServerError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot reach {server}: {exc}") from None
    except Exception as exc:  # no such run, an unreadable store
        raise UserError(str(exc)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@_store_option()
@_executor_option()
@click.option("--flows", "modules", multiple=True, help="A module that registers flows.")
@click.option(
    "--folder",
    default=".jobgraph/server",
    show_default=True,
    help="Where each run works (a folder per run).",
)
def serve(
    host: str, port: int, store: str, executor: str, modules: tuple[str, ...], folder: str
) -> None:
    """Serve the HTTP API and the live web view (every request needs the token)."""
    from .server import serve as run_server

    def announce(url: str, token: str, flows: list[str]) -> None:
        click.echo(f"jobgraph: serving on {url}", err=True)
        click.echo(f"  token: {token}", err=True)
        click.echo(f"  web view: {url}?token={token}", err=True)
        if flows:
            click.echo(f"  flows: {', '.join(flows)}", err=True)
        sys.stderr.flush()

    # SIGTERM (a service manager's, a container's stop) stops the server as Ctrl-C does.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        run_server(
            host, port, store, folder, None if executor == "local" else executor, modules, announce
        )
    except KeyboardInterrupt:
        click.echo("jobgraph: server stopped (runs it started go on)", err=True)
    except OSError as exc:
        raise UserError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@_server_options
@_store_option()
@click.option("--flow", help="A flow registered on the server (instead of FILE).")
@click.option("--param", "params", multiple=True, metavar="KEY=JSON", help="A flow parameter.")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the end; exit with its code.")
def submit(
    file: str | None,
    server: str | None,
    token: str | None,
    store: str,
    flow: str | None,
    params: tuple[str, ...],
    wait_: bool,
) -> None:
    """Start a run in the background (here, or on --server) and print its id."""
    if (file is None) == (flow is None):
        raise UserError("give a workflow FILE or --flow NAME (one of them)")
    if flow is not None and not server:
        raise UserError("--flow needs --server: flows are registered on a server")
    handle = (
        _remote_submit(server, token, file, flow, params) if server else _local_submit(file, store)
    )
    click.echo(handle.run_id)
    if wait_:
        handle.wait()
        sys.exit(handle.report().exit_code)


def _remote_submit(
    server: str, token: str | None, file: str | None, flow: str | None, params: tuple[str, ...]
) -> Any:
    from .client import Client, ServerError

    values = dict(_param(p) for p in params)
    try:
        client = Client(server, token or "")
        if flow is not None:
            return client.submit(flow=flow, params=values)
        if file is None or not file.endswith((".yaml", ".yml")):
            raise UserError("a server runs YAML workflows (or registered flows), not {file!r}")
        return client.submit(file)
    except ServerError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot reach {server}: {exc}") from None


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"--param takes KEY=VALUE, not {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value  # plain text


def _local_submit(file: str | None, store: str) -> Any:
    from .cli import _checked, _load

    assert file is not None
    scheduler = _load(file)
    return _checked(lambda: scheduler.submit(store=store))


@main.command()
@click.argument("run_id")
@_server_options
@_store_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(run_id: str, server: str | None, token: str | None, store: str, as_json: bool) -> None:
    """Print a run's state: pending, running, succeeded, failed or aborted."""
    handle = _handle(run_id, server, token, store)
    state = handle.state
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "state": state}))
        return
    why = handle.report().why() if state in ("succeeded", "failed", "aborted") else ""
    click.echo(f"{run_id}: {state}" + (f" ({why})" if why else ""))


@main.command(name="wait")
@click.argument("run_id")
@_server_options
@_store_option()
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after S seconds.")
def wait_command(
    run_id: str, server: str | None, token: str | None, store: str, timeout: float | None
) -> None:
    """Wait for a run to end; exit with its exit code (124 if --timeout ran out)."""
    handle = _handle(run_id, server, token, store)
    started = time.monotonic()
    if not handle.wait(timeout):
        click.echo(
            f"{run_id}: still {handle.state} after {time.monotonic() - started:.0f}s", err=True
        )
        sys.exit(EXIT_STILL_RUNNING)
    report = handle.report()
    click.echo(f"{run_id}: {handle.state} ({report.why()})", err=True)
    sys.exit(report.exit_code)


@main.command()
@click.argument("run_id")
@_server_options
@_store_option()
def abort(run_id: str, server: str | None, token: str | None, store: str) -> None:
    """Abort a run: its running jobs are cancelled and recorded."""
    handle = _handle(run_id, server, token, store)
    try:
        handle.abort()
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"{run_id}: aborting", err=True)


def remote_logs(
    run_id: str, job: str, server: str, token: str | None, stream: str, follow: bool
) -> None:
    """``jobgraph logs RUN JOB --server URL``: print (and follow) a job's output."""
    from .handle import ENDED
    from .logs import following

    handle = _handle(run_id, server, token, DEFAULT_STORE)
    read = handle.fresh_stdout if stream == "stdout" else handle.fresh_stderr
    for text in following(lambda: read(job), lambda: handle.state in ENDED, follow):
        click.echo(text, nl=False)
