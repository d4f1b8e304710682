"""``jg.Client``: submit and follow runs on a ``jobgraph serve`` server.

Its handles answer like the local ones (:class:`~jobgraph.handle.RunHandle`): ``state``,
``wait()``, ``abort()``, ``report()``, ``stdout(job)``, ``fresh_stdout(job)``, ``resume()``.
Standard library only (``http.client``); every request carries the server's token.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from .handle import Following


class ServerError(Exception):
    """The server refused a request: ``status`` (HTTP) and its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status


class Client:
    """A connection to a ``jobgraph serve`` server at ``url``, with its ``token``."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get("JOBGRAPH_TOKEN", "")
        self.timeout = timeout
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"a server URL is http://HOST:PORT, not {url!r}")
        self._scheme, self._netloc, self._prefix = parts.scheme, parts.netloc, parts.path
        self._local = threading.local()  # one kept connection per thread

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def submit(
        self,
        workflow: str | os.PathLike[str] | None = None,
        *,
        flow: str | None = None,
        params: dict[str, Any] | None = None,
        **options: Any,
    ) -> RemoteHandle:
        """Start a workflow (a YAML file's path, or its text) or a registered ``flow``."""
        body: dict[str, Any] = {"options": options}
        if flow is not None:
            body.update(flow=flow, params=params or {})
        elif workflow is not None:
            text = os.fspath(workflow)
            is_file = "\n" not in text and Path(text).is_file()
            body["workflow"] = Path(text).read_text(encoding="utf-8") if is_file else text
        else:
            raise ValueError("submit() needs a workflow (a YAML file or text) or a flow name")
        answer = self.request("POST", "/api/runs", body)
        return RemoteHandle(self, answer["run_id"])

    def attach(self, run_id: str) -> RemoteHandle:
        """A handle for run ``run_id`` of the server (a 404 if it has none)."""
        self.request("GET", f"/api/runs/{quote(run_id)}")
        return RemoteHandle(self, run_id)

    def runs(self) -> list[dict[str, Any]]:
        """The server's recent runs, newest first."""
        return list(self.request("GET", "/api/runs")["runs"])

    def flows(self) -> list[dict[str, Any]]:
        """The server's registered flows and their parameters."""
        return list(self.request("GET", "/api/flows")["flows"])

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One JSON request; :class:`ServerError` for a refusal.

        Each thread keeps one connection open to the server (HTTP keep-alive): a client
        polling a run pays no new connection per question.
        """
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        connection, reused = self._connection()
        try:
            connection.request(method, self._prefix + path, body=data, headers=headers)
            answer = connection.getresponse()
            status, raw = answer.status, answer.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self._local.connection = None
            if not reused:
                raise
            # The server closed the kept connection before reading this request: it was
            # not handled, so sending it again on a new connection is safe.
            return self.request(method, path, body)
        except OSError:
            self._local.connection = None
            raise
        if status >= 400:
            try:
                reason = json.loads(raw).get("error", answer.reason)
            except ValueError:
                reason = answer.reason
            raise ServerError(status, str(reason))
        return json.loads(raw or b"null")

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        kind = (
            http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        )
        connection = kind(self._netloc, timeout=self.timeout)
        self._local.connection = connection
        return connection, False


class RemoteHandle(Following):
    """A run on a server: the same questions and commands as a local handle."""

    poll_seconds = 0.1  # each look is a request to the server

    def __init__(self, client: Client, run_id: str) -> None:
        super().__init__()
        self.client = client
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"<RemoteHandle {self.run_id} on {self.client.url}>"

    @property
    def _path(self) -> str:
        return f"/api/runs/{quote(self.run_id)}"

    @property
    def state(self) -> str:
        """``pending``, ``running``, ``succeeded``, ``failed`` or ``aborted``."""
        return str(self.client.request("GET", self._path)["state"])

    def abort(self) -> None:
        """Stop the run: running jobs are cancelled and recorded; it ends aborted."""
        self.client.request("POST", self._path + "/abort")

    def resume(self) -> RemoteHandle:
        """Run again what did not finish (same run id)."""
        self.client.request("POST", self._path + "/resume")
        return RemoteHandle(self.client, self.run_id)

    def report(self) -> Any:
        """The run's :class:`~jobgraph.Report` as recorded so far."""
        from .report import Report

        return Report.from_dict(self.client.request("GET", self._path + "/report"))

    def _output(self, name: str, stream: str, offset: int) -> tuple[str, int]:
        path = f"{self._path}/output/{quote(name, safe='')}?stream={stream}&offset={offset}"
        part = self.client.request("GET", path)
        return str(part["text"]), int(part["offset"])
