"""jobgraph serve: the HTTP API, its token, flows, the client and the command line."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import jobgraph as jg
from jobgraph.client import ServerError
from procs import jobgraph_cli, wait_until_gone
from server.serverproc import TOKEN, ServerProcess

WORKFLOW = """
jobs:
  a:
    shell: echo hello; sleep 0.3; echo world
  b:
    shell: echo b > b.txt
    requires: [a]
"""


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize(
    "path", ["/api/runs", "/openapi.json", "/", "/api/runs/x/report", "/api/flows"]
)
def test_every_request_needs_the_token(server, path):
    for token in (None, "wrong", TOKEN + "x", ""):
        status, body = get(server.url + path, token)
        assert status == 401
        assert json.loads(body) == {"error": "unauthorized"}  # nothing else leaks


def test_the_openapi_document_describes_the_api(server):
    status, body = get(server.url + "/openapi.json", TOKEN)
    document = json.loads(body)
    assert status == 200 and document["openapi"].startswith("3.")
    assert {"/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/abort"} <= set(document["paths"])


def test_a_submitted_workflow_runs_and_is_followed(client, server):
    handle = client.submit(WORKFLOW)
    assert handle.wait(30) and handle.state == "succeeded"
    assert handle.stdout("a") == "hello\nworld\n"
    report = handle.report()
    assert report.ok and report.counts == {jg.State.SUCCEEDED: 2}
    assert report.run_id == handle.run_id
    # Each run works in a folder of its own.
    assert (server.folder / ".jobgraph/server" / handle.run_id / "b.txt").read_text() == "b\n"
    assert [r["run_id"] for r in client.runs()] == [handle.run_id]


def test_fresh_output_through_the_server(client):
    handle = client.submit("jobs:\n  talk:\n    shell: echo one; sleep 1.5; echo two\n")
    deadline, first = time.monotonic() + 10, ""
    while not first and time.monotonic() < deadline:
        first = handle.fresh_stdout("talk")
        time.sleep(0.1)
    assert first == "one\n"
    assert handle.wait(30)
    assert handle.fresh_stdout("talk") == "two\n" and handle.fresh_stdout("talk") == ""


def test_a_bad_workflow_is_a_400_with_the_reason(client, server):
    with pytest.raises(ServerError, match=r"unknown key in job 'a': 'shel'.*HTTP 400"):
        client.submit("jobs:\n  a:\n    shel: echo\n")
    with pytest.raises(ServerError, match=r"a -> b -> a.*HTTP 400"):
        client.submit(
            "jobs:\n  a:\n    shell: echo\n    requires: [b]\n"
            "  b:\n    shell: echo\n    requires: [a]\n"
        )
    assert client.runs() == []
    assert list((server.folder / ".jobgraph/server").iterdir()) == []  # nothing left


def test_flows_are_submitted_by_name_with_checked_parameters(client):
    assert client.flows() == [
        {
            "name": "greet",
            "params": [
                {"name": "name", "required": True, "default": None, "type": "str"},
                {"name": "times", "required": False, "default": 1, "type": "int"},
            ],
        }
    ]
    handle = client.submit(flow="greet", params={"name": "ada", "times": 2})
    assert handle.wait(30) and handle.state == "succeeded"
    assert handle.stdout("hello-1") == "hello ada\n"
    with pytest.raises(ServerError, match=r"parameter 'times' must be int.*HTTP 400"):
        client.submit(flow="greet", params={"name": "ada", "times": "two"})
    with pytest.raises(ServerError, match=r"missing a required argument: 'name'.*HTTP 400"):
        client.submit(flow="greet", params={})
    with pytest.raises(ServerError, match=r"unexpected keyword argument 'colour'.*HTTP 400"):
        client.submit(flow="greet", params={"name": "ada", "colour": "red"})
    with pytest.raises(ServerError, match=r"no flow named 'gret' \(registered: greet\)"):
        client.submit(flow="gret")


def test_abort_through_the_server(client):
    handle = client.submit("jobs:\n  long:\n    shell: sleep 35.25\n")
    deadline = time.monotonic() + 10
    while handle.state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    handle.abort()
    assert handle.wait(30) and handle.state == "aborted"
    assert {r.name: r.state for r in handle.report().jobs} == {"long": jg.State.CANCELLED}
    assert wait_until_gone("sleep 35.25", 5.0) == []


def test_resume_through_the_server(client, server):
    gate = server.folder / "gate"
    text = (
        "jobs:\n  first:\n    shell: echo run >> ../../../ledger\n"
        f"  second:\n    shell: test -e {gate}\n    requires: [first]\n"
    )
    handle = client.submit(text)
    assert handle.wait(30) and handle.state == "failed"
    gate.write_text("open")
    again = handle.resume()
    assert again.wait(30) and again.state == "succeeded"
    assert (server.folder / "ledger").read_text() == "run\n"  # 'first' ran once


def test_unknown_runs_are_404s(client):
    with pytest.raises(ServerError, match=r"no run 'nosuch'.*HTTP 404"):
        client.attach("nosuch")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_the_server_at_once(tmp_path, signum):
    server = ServerProcess(tmp_path, ctrl_c=True)
    started = time.monotonic()
    server.stop(signum)
    assert server.process.returncode == 0
    assert time.monotonic() - started < 8  # not the 10 s after which it would be killed
    assert server.process.stderr is not None  # (no run: nothing else holds the pipe)
    assert "server stopped (runs it started go on)" in server.process.stderr.read()


def test_nothing_is_lost_when_the_server_is_killed(tmp_path):
    """kill -9 the server mid-run: the run goes on and ends recorded; a restart sees it."""
    first = ServerProcess(tmp_path)
    client = jg.Client(first.url, TOKEN)
    handle = client.submit("jobs:\n  a:\n    shell: echo a\n  b:\n    shell: sleep 1.5\n")
    time.sleep(0.5)
    first.kill()
    second = ServerProcess(tmp_path)
    try:
        again = jg.Client(second.url, TOKEN).attach(handle.run_id)
        assert again.wait(30) and again.state == "succeeded"
        assert again.report().counts == {jg.State.SUCCEEDED: 2}
    finally:
        second.stop()


def test_a_run_killed_with_its_server_can_be_resumed_after_a_restart(tmp_path):
    import os
    import signal

    gate = tmp_path / "gate"
    first = ServerProcess(tmp_path)
    client = jg.Client(first.url, TOKEN)
    text = (
        "jobs:\n  one:\n    shell: echo run >> ../../../ledger\n"
        f"  two:\n    shell: while [ ! -e {gate} ]; do sleep 0.1; done\n    requires: [one]\n"
    )
    handle = client.submit(text)
    deadline = time.monotonic() + 20
    while handle.state == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    while "two" not in {r.name for r in handle.report().jobs} and time.monotonic() < deadline:
        time.sleep(0.1)
    # The machine goes down: the server, and the run's process with its commands.
    from jobgraph.store import open_store

    info = open_store(str(tmp_path / ".jobgraph/state.db")).find_run("", handle.run_id)
    run_pid = int(info.owner.split(":")[1])
    first.kill()
    os.killpg(run_pid, signal.SIGKILL)
    second = ServerProcess(tmp_path)
    try:
        again = jg.Client(second.url, TOKEN).attach(handle.run_id)
        assert again.wait(10) and again.state == "failed"  # its process died: resumable
        records = {r.name: r.state for r in again.report().jobs}
        assert records["one"] is jg.State.SUCCEEDED  # intact
        gate.write_text("open")
        resumed = again.resume()
        assert resumed.wait(30) and resumed.state == "succeeded"
        assert (tmp_path / "ledger").read_text() == "run\n"
    finally:
        second.stop()


def test_command_line_against_a_server(server, tmp_path):
    workflow = tmp_path / "w.yaml"
    workflow.write_text(WORKFLOW)
    common = ["--server", server.url, "--token", TOKEN]

    def jobgraph(*args: str) -> subprocess.CompletedProcess[str]:
        return jobgraph_cli(*args, cwd=tmp_path, timeout=60)

    submitted = jobgraph("submit", str(workflow), *common)
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    waited = jobgraph("wait", run_id, *common)
    assert waited.returncode == 0 and "succeeded" in waited.stderr
    assert jobgraph("status", run_id, *common).stdout.startswith(f"{run_id}: succeeded")
    assert jobgraph("logs", run_id, "a", *common).stdout == "hello\nworld\n"
    flow = jobgraph("submit", "--flow", "greet", "--param", "name=bob", "--wait", *common)
    assert flow.returncode == 0, flow.stderr
    refused = jobgraph("status", run_id, "--server", server.url, "--token", "bad")
    assert refused.returncode == 2 and "unauthorized" in refused.stderr


def test_command_line_in_the_background_without_a_server(tmp_path):
    workflow = tmp_path / "w.yaml"
    workflow.write_text("jobs:\n  a:\n    shell: sleep 0.5; echo done\n")
    store = str(tmp_path / "s.db")

    def jobgraph(*args: str) -> subprocess.CompletedProcess[str]:
        return jobgraph_cli(*args, "--store", store, cwd=tmp_path, timeout=60)

    submitted = jobgraph("submit", str(workflow))
    assert submitted.returncode == 0, submitted.stderr
    run_id = submitted.stdout.strip()
    assert jobgraph("wait", run_id).returncode == 0
    assert jobgraph("logs", run_id, "a").stdout == "done\n"
    assert Path(store).exists()


def test_flows_are_found_through_entry_points(tmp_path, monkeypatch):
    """An installed package declares its flows in the 'jobgraph.flows' entry point group."""
    from jobgraph import flows

    package = tmp_path / "site"
    (package / "teamflows").mkdir(parents=True)
    (package / "teamflows" / "__init__.py").write_text(
        "import jobgraph as jg\n\n"
        "@jg.flow('team-nightly')\n"
        "def nightly(branch: str) -> jg.Scheduler:\n"
        "    return jg.Scheduler(jg.Shell(f'echo {branch}', name='build'), name='nightly')\n"
    )
    info = package / "teamflows-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: teamflows\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[jobgraph.flows]\nteam = teamflows\n")
    monkeypatch.syspath_prepend(str(package))
    assert "team-nightly" in flows.load()
    scheduler = flows.build("team-nightly", {"branch": "main"})
    assert scheduler.run().ok


def test_the_servers_executor_applies_to_its_runs(tmp_path):
    (tmp_path / "where.py").write_text("import os\n\ndef pid():\n    return os.getpid()\n")
    server = ServerProcess(tmp_path, "--executor", "process")
    try:
        client = jg.Client(server.url, TOKEN)
        text = "jobs:\n  p:\n    call: where:pid\n"
        handle = client.submit(text)
        assert handle.wait(30), handle.state
        assert handle.state == "succeeded", handle.report().why()
        # The job ran in a worker process, not in the run's own process.
        record = next(r for r in handle.report().jobs if r.name == "p")
        run_pid = (server.folder / ".jobgraph/server" / handle.run_id / "run.pid").read_text()
        assert record.result is not None and record.result != run_pid
    finally:
        server.stop()


def test_output_can_be_streamed_until_the_job_ends(client, server):
    handle = client.submit("jobs:\n  talk:\n    shell: echo one; sleep 1; echo two\n")
    deadline = time.monotonic() + 10
    while handle.state == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    request = urllib.request.Request(
        f"{server.url}/api/runs/{handle.run_id}/output/talk?follow=1",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.headers["Transfer-Encoding"] == "chunked"
        first = answer.read1()  # the first chunk, while the job still runs
        rest = answer.read()
    assert (first + rest).decode() == "one\ntwo\n"
    assert first.decode() == "one\n"
    assert handle.wait(10) and handle.state == "succeeded"


def test_command_line_follows_a_jobs_output_on_a_server(client, server, tmp_path):
    handle = client.submit("jobs:\n  talk:\n    shell: echo one; sleep 1.5; echo two\n")
    followed = jobgraph_cli(
        "logs",
        handle.run_id,
        "talk",
        "--follow",
        "--server",
        server.url,
        "--token",
        TOKEN,
        cwd=tmp_path,
        timeout=60,
    )
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "one\ntwo\n"
