"""``jobgraph serve``: an HTTP API (and a live web view) to submit and steer runs.

Standard library only: a threading HTTP server answers JSON requests; runs are started
by the launcher process (see ``launcher.py``) and everything about them is read from the
store, so a server that restarts (even after kill -9) finds every run as it was. Each
request needs the server's token (``Authorization: Bearer TOKEN``, or ``?token=`` for a
browser); a wrong or missing one gets 401 and nothing else.
"""

from __future__ import annotations

import hmac
import json
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from .handle import ENDED, RunHandle, store_location
from .launcher import ABORT_MARK, PID_FILE, read_pid
from .store import Store, open_store
from .store.base import RunInfo, new_run_id

_MAX_BODY = 10 * 1024 * 1024  # bytes: a workflow is text, not data
_RUN_OPTIONS = ("window", "timeout", "force")  # what a submission may set for its run
_FOLLOW_POLL = 0.25  # seconds between looks at the store while streaming output


class ApiError(Exception):
    """A request the server refuses: its status and the reason, as JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Launcher:
    """The launcher process (one per server): starts the runs, in its run hosts."""

    def __init__(self, modules: list[str]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "jobgraph.launcher", json.dumps(modules)],
            stdin=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()

    def start(self, request: dict[str, Any]) -> None:
        """Ask for a run to be started (no waiting: its pid lands in its folder)."""
        self._send({"start": request})

    def abort(self, run_id: str, folder: str) -> None:
        """Ask for a run to be stopped as a first Ctrl-C would (no waiting)."""
        self._send({"abort": run_id, "folder": folder})

    def _send(self, message: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        try:
            with self._lock:  # whole lines: messages never interleave
                self._process.stdin.write(json.dumps(message) + "\n")
                self._process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise ApiError(500, "the launcher process is gone; restart the server") from None

    def close(self) -> None:
        """Stop the launcher (runs it started go on to their end)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=10)


class Service:
    """What the API does, apart from HTTP: runs, their state, output, abort, resume."""

    def __init__(
        self,
        store: str,
        folder: str,
        token: str,
        executor: str | None = None,
        modules: tuple[str, ...] = (),
    ) -> None:
        from . import flows

        self.store_path = store_location(store)
        self.folder = Path(folder).resolve()  # each run works in folder/RUN_ID
        self.token = token
        self.executor = executor
        self.flow_names = flows.load(modules)
        self.launcher = Launcher(list(modules))
        self._stores: queue.SimpleQueue[Store] = queue.SimpleQueue()
        self._since: dict[str, float] = {}  # run -> when this server (re)started it

    # -- requests -------------------------------------------------------------------

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start a workflow (YAML text) or a registered flow; answer its run id."""
        request = self._request(body)
        run_id = request["run_id"]
        folder = Path(request["folder"])
        folder.mkdir(parents=True)
        try:
            if "workflow_text" in request:
                workflow = folder / "workflow.yaml"
                workflow.write_text(request.pop("workflow_text"), encoding="utf-8")
                request["workflow"] = str(workflow)
            self._check(request)
        except ApiError:
            shutil.rmtree(folder, ignore_errors=True)  # a refused run leaves nothing
            raise
        (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
        self._since[run_id] = time.time()
        self.launcher.start(request)
        return {"run_id": run_id, "state": "pending"}

    def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        options = body.get("options") or {}
        if not isinstance(options, dict) or set(options) - set(_RUN_OPTIONS):
            allowed = ", ".join(_RUN_OPTIONS)
            raise ApiError(400, f"'options' is a mapping of {allowed}, not {options!r}")
        if self.executor is not None:
            options = {**options, "executor": self.executor}
        run_id = new_run_id()
        request: dict[str, Any] = {
            "run_id": run_id,
            "store": self.store_path,
            "folder": str(self.folder / run_id),
            "options": options,
        }
        if isinstance(body.get("workflow"), str):
            request["workflow_text"] = body["workflow"]
        elif isinstance(body.get("flow"), str):
            params = body.get("params") or {}
            if not isinstance(params, dict):
                raise ApiError(400, f"'params' must be a mapping, not {params!r}")
            request.update(flow=body["flow"], params=params)
        else:
            raise ApiError(400, "give 'workflow' (YAML text) or 'flow' (a registered name)")
        return request

    def _check(self, request: dict[str, Any]) -> None:
        """Build and validate here, so that a bad submission is a 400, not a failed run."""
        from .errors import GraphError
        from .flows import FlowError
        from .launcher import build
        from .workflow import WorkflowError

        try:
            scheduler = build(request)
            plan = scheduler.validate().plan()
        except (WorkflowError, FlowError, GraphError) as exc:
            raise ApiError(400, str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"{type(exc).__name__}: {exc}") from None
        # The graph as the web view draws it, pending jobs included (the store only
        # knows jobs that started).
        graph = [
            {"name": job.name, "requires": [plan.jobs[r].name for r in plan.reqs[i]]}
            for i, job in enumerate(plan.jobs)
        ]
        (Path(request["folder"]) / "graph.json").write_text(json.dumps(graph), encoding="utf-8")

    def runs(self) -> dict[str, Any]:
        """Recent runs, newest first."""
        with self._store() as store:
            infos = store.runs(limit=200)
            return {"runs": [self._summary(info.run_id, info, store) for info in infos]}

    def run(self, run_id: str) -> dict[str, Any]:
        """One run's state and outcome."""
        with self._store() as store:
            return self._summary(run_id, self._known(store, run_id), store)

    def report(self, run_id: str) -> dict[str, Any]:
        """The run's report (as recorded so far)."""
        from .report import Report

        with self._store() as store:
            if self._known(store, run_id) is None:
                raise ApiError(409, f"run {run_id!r} has not begun yet")
            return Report.from_store(store, run_id).to_dict()

    def graph(self, run_id: str) -> dict[str, Any]:
        """The run's jobs and their requirements (all of them, not only those that ran)."""
        known = self.folder / run_id / "graph.json"
        if known.exists():
            return {"jobs": json.loads(known.read_text(encoding="utf-8"))}
        report = self.report(run_id)
        return {"jobs": [{"name": j["name"], "requires": j["requires"]} for j in report["jobs"]]}

    def output(self, run_id: str, job: str, stream: str, offset: int) -> dict[str, Any]:
        """A job's output from ``offset`` on, and whether more may come."""
        if stream not in ("stdout", "stderr"):
            raise ApiError(400, f"stream is stdout or stderr, not {stream!r}")
        with self._store() as store:
            info = self._known(store, run_id)
            text = store.output(run_id, job, stream)
            ended = self._handle(run_id, store).state_of(
                info
            ) in ENDED or job in store.recorded_ends(run_id)
        return {"text": text[offset:], "offset": len(text), "ended": ended}

    def abort(self, run_id: str) -> dict[str, Any]:
        """Stop a run: its running jobs are cancelled and recorded."""
        state = self.run(run_id)["state"]
        if state in ENDED:
            return {"run_id": run_id, "state": state}
        if (self.folder / run_id / "request.json").exists():
            # Started by a server of this folder: the launcher knows which process runs it.
            self.launcher.abort(run_id, str(self.folder / run_id))
        else:
            with self._store() as store:
                self._handle(run_id, store).abort()
        return {"run_id": run_id, "state": "aborting"}

    def resume(self, run_id: str) -> dict[str, Any]:
        """Run again what did not finish in an ended run (same run id)."""
        state = self.run(run_id)["state"]
        if state not in ENDED:
            raise ApiError(409, f"run {run_id} has not ended ({state}): abort it first")
        spec = self.folder / run_id / "request.json"
        if not spec.exists():
            raise ApiError(409, f"run {run_id} was not started by this server")
        request = json.loads(spec.read_text(encoding="utf-8"))
        (self.folder / run_id / PID_FILE).unlink(missing_ok=True)  # the old run's
        (self.folder / run_id / ABORT_MARK).unlink(missing_ok=True)  # its abort, if any
        self._since[run_id] = time.time()  # its earlier end stops counting from now on
        self.launcher.start({**request, "resume": True})
        return {"run_id": run_id, "state": "pending"}

    def flows(self) -> dict[str, Any]:
        """The registered flows and their parameters."""
        from .flows import describe

        return {"flows": describe()}

    # -- helpers --------------------------------------------------------------------

    def _handle(self, run_id: str, store: Store | None = None) -> RunHandle:
        pid = read_pid(self.folder / run_id)  # None: not taken yet, or not this server's
        since = self._since.get(run_id, 0.0)
        return RunHandle(run_id, self.store_path, pid=pid, since=since, opened=store)

    def _known(self, store: Store, run_id: str) -> RunInfo | None:
        """The run's record; None for one started here that has not begun; else a 404."""
        info = store.find_run("", run_id)
        if info is None and run_id not in self._since:
            raise ApiError(404, f"no run {run_id!r}")
        return info

    def _summary(self, run_id: str, info: RunInfo | None, store: Store) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "state": self._handle(run_id, store).state_of(info),
            "scheduler": info.scheduler if info else None,
            "started_at": info.started_at if info else None,
            "ended_at": info.ended_at if info else None,
            "exit_code": info.exit_code if info else None,
            "why": info.why if info else None,
        }

    def _store(self) -> _Borrowed:
        return _Borrowed(self)

    def close(self) -> None:
        """Stop the launcher and close the store connections."""
        self.launcher.close()
        while not self._stores.empty():
            self._stores.get().close()


class _Borrowed:
    """A store connection from the service's pool, for one request."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.store: Store | None = None

    def __enter__(self) -> Store:
        try:
            self.store = self.service._stores.get_nowait()
        except queue.Empty:
            store = open_store(self.service.store_path)
            assert store is not None
            self.store = store
        return self.store

    def __exit__(self, *exc: Any) -> None:
        assert self.store is not None
        self.service._stores.put(self.store)


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the service; JSON in and out."""

    protocol_version = "HTTP/1.1"  # keep-alive: a polling client reuses its connection
    wbufsize = -1  # headers and body leave in one write (flushed after each request)
    server: ApiServer

    def setup(self) -> None:
        """No Nagle delay: a small answer must not wait for the client's delayed ACK."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        """Answer a GET (the name http.server calls)."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Answer a POST."""
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Say nothing per request: a polling web view would fill the terminal."""

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
            body = self._body() if method == "POST" else {}
            if not self._authorized(query):
                raise ApiError(401, "unauthorized")
            status, answer = self._route(method, url.path, query, body)
        except ApiError as exc:
            status, answer = exc.status, {"error": str(exc)}
        except Exception as exc:  # a bug of ours: say so, keep serving
            status, answer = 500, {"error": f"{type(exc).__name__}: {exc}"}
        self._reply(status, answer)

    def _authorized(self, query: dict[str, list[str]]) -> bool:
        header = self.headers.get("Authorization", "")
        given = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        given = given or (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.server.service.token.encode())

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ApiError(413, f"request body over {_MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            data = json.loads(raw or b"{}")
        except ValueError as exc:
            raise ApiError(400, f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> tuple[int, Any]:
        service = self.server.service
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        if method == "GET" and parts == []:
            from .render.live import page

            return 200, page()
        if method == "GET" and parts == ["openapi.json"]:
            from .openapi import document

            return 200, document()
        if parts[:2] != ["api", "runs"] and parts != ["api", "flows"]:
            raise ApiError(404, f"no such resource: {path}")
        if parts == ["api", "flows"] and method == "GET":
            return 200, service.flows()
        if parts == ["api", "runs"]:
            if method == "POST":
                return 201, service.submit(body)
            return 200, service.runs()
        run_id, rest = parts[2], parts[3:]
        if method == "GET" and rest == []:
            return 200, service.run(run_id)
        if method == "GET" and rest == ["report"]:
            return 200, service.report(run_id)
        if method == "GET" and rest == ["graph"]:
            return 200, service.graph(run_id)
        if method == "GET" and rest[:1] == ["output"] and len(rest) > 1:
            stream = (query.get("stream") or ["stdout"])[0]
            offset = _int((query.get("offset") or ["0"])[0])
            part = service.output(run_id, "/".join(rest[1:]), stream, offset)  # checks first
            if (query.get("follow") or ["0"])[0] in ("1", "true"):
                return 200, _Follow(run_id, "/".join(rest[1:]), stream, offset)
            return 200, part
        if method == "POST" and rest == ["abort"]:
            return 202, service.abort(run_id)
        if method == "POST" and rest == ["resume"]:
            return 202, service.resume(run_id)
        raise ApiError(404 if method == "GET" else 405, f"no such resource: {method} {path}")

    def _follow(self, follow: _Follow) -> None:
        """Stream the output as plain text, chunk by chunk, until the job has ended."""
        service = self.server.service
        self.send_response(200, "OK")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        offset = follow.offset
        while True:
            part = service.output(follow.run_id, follow.job, follow.stream, offset)
            offset = part["offset"]
            if part["text"]:
                data = part["text"].encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            if part["ended"]:
                break
            time.sleep(_FOLLOW_POLL)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _reply(self, status: int, answer: Any) -> None:
        if isinstance(answer, _Follow):
            self._follow(answer)
            return
        if isinstance(answer, str):  # the web view
            data, kind = answer.encode(), "text/html; charset=utf-8"
        else:
            data, kind = json.dumps(answer).encode(), "application/json"
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="jobgraph"')
        self.end_headers()
        self.wfile.write(data)


class _Follow(NamedTuple):
    """A request to stream a job's output as it comes (``?follow=1``)."""

    run_id: str
    job: str
    stream: str
    offset: int


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"offset must be a whole number, not {text!r}") from None
    if value < 0:
        raise ApiError(400, f"offset must not be negative, not {value}")
    return value


class ApiServer(ThreadingHTTPServer):
    """The HTTP server, holding the service its handlers use."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default 5 drops connections when many clients come at once

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        super().__init__(address, Handler)
        self.service = service


def new_token() -> str:
    """The token the server asks for, unless ``JOBGRAPH_TOKEN`` sets one."""
    return os.environ.get("JOBGRAPH_TOKEN") or secrets.token_urlsafe(24)


def serve(
    host: str,
    port: int,
    store: str,
    folder: str,
    executor: str | None,
    modules: tuple[str, ...],
    announce: Any,
) -> None:
    """Serve until interrupted; ``announce(url, token)`` says where, once listening."""
    service = Service(store, folder, new_token(), executor, modules)
    server = ApiServer((host, port), service)
    try:
        bound_port = server.server_address[1]
        announce(f"http://{host}:{bound_port}/", service.token, service.flow_names)
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        service.close()
