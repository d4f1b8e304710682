"""The jobgraph command, run as a user runs it (a real process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from procs import jobgraph_cli

BUILD = textwrap.dedent(
    """
    window: 2
    jobs:
      fetch:
        shell: echo data > data.csv
        outputs: [data.csv]
      clean:
        shell: tr a-z A-Z < data.csv > clean.csv
        requires: [fetch]
        inputs: [data.csv]
        outputs: [clean.csv]
        retries: 1
        timeout: 60
      size:
        call: os.path:getsize
        args: [clean.csv]
        requires: clean
        cache: true
        inputs: [clean.csv]
    """
)


def jobgraph(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return jobgraph_cli(*args, cwd=cwd)


@pytest.fixture
def build(tmp_path: Path) -> Path:
    (tmp_path / "build.yaml").write_text(BUILD)
    return tmp_path


def test_run_a_workflow_then_everything_is_up_to_date(build: Path):
    first = jobgraph("run", "build.yaml", "--report", "r1.json", cwd=build)
    assert first.returncode == 0, first.stderr
    assert (build / "clean.csv").read_text() == "DATA\n"
    assert json.loads((build / "r1.json").read_text())["counts"] == {"SUCCEEDED": 3}
    second = jobgraph("run", "build.yaml", "--report", "r2.json", cwd=build)
    assert second.returncode == 0
    assert json.loads((build / "r2.json").read_text())["counts"] == {"UP_TO_DATE": 3}
    assert (build / ".jobgraph" / "state.db").exists()


def test_plain_progress_lines_and_summary_when_not_a_terminal(build: Path):
    out = jobgraph("run", "build.yaml", cwd=build)
    lines = out.stderr.splitlines()
    assert any(line.endswith("start   fetch") for line in lines)
    assert any(" succeeded  clean " in line for line in lines)
    assert lines[-2].startswith("jobgraph: ok (3 succeeded")
    quiet = jobgraph("run", "build.yaml", "-q", "--force", cwd=build)
    assert quiet.stderr.startswith("jobgraph: ok (3 succeeded")


def test_exit_status_is_the_report_exit_code(tmp_path: Path):
    (tmp_path / "fail.yaml").write_text(
        "jobs:\n  bad:\n    shell: exit 3\n  after:\n    shell: echo no\n    requires: [bad]\n"
    )
    out = jobgraph("run", "fail.yaml", "--junit", "j.xml", cwd=tmp_path)
    assert out.returncode == 1
    assert (
        "FAILED bad: jobgraph.errors.ShellError: command exited with status 3" in out.stderr
        or "FAILED bad: ShellError: command exited with status 3" in out.stderr
    )
    cases = ET.parse(tmp_path / "j.xml").getroot().iter("testcase")
    assert {c.get("name"): [e.tag for e in c] for c in cases} == {
        "bad": ["failure"],
        "after": ["skipped"],
    }
    fast = jobgraph("run", "fail.yaml", "--fail-fast", "-q", cwd=tmp_path)
    assert fast.returncode == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "jobs:\n  a:\n    shell: echo\n    requirez: [b]\n",
            "bad.yaml:4: unknown key in job 'a': 'requirez' (did you mean 'requires'?)",
        ),
        (
            "jobs:\n  a:\n    shell: echo\n    requires: [sumary]\n  summary:\n    shell: echo\n",
            "bad.yaml:4: job 'a' requires unknown 'sumary' (did you mean 'summary'?)",
        ),
        (
            "jobs:\n  a:\n    shell: echo\n    requires: [b]\n  b:\n    shell: echo\n"
            "    requires: [a]\n",
            "cycle in requirements: a -> b -> a",
        ),
        (
            "jobs:\n  a:\n    shell: echo\n    timeout: soon\n",
            "bad.yaml:4: job 'a': timeout must be a positive finite number",
        ),
        ("jobs:\n  a: [unclosed\n", "bad.yaml:3: not valid YAML"),
        (
            "windw: 3\njobs:\n  a:\n    shell: echo\n",
            "bad.yaml:1: unknown top-level key 'windw' (did you mean 'window'?)",
        ),
        (
            "jobs:\n  a:\n    call: nosuchmodule:f\n",
            "bad.yaml:3: job 'a': cannot import 'nosuchmodule'",
        ),
        (
            "jobs:\n  a:\n    shell: echo\n    call: os:getcwd\n",
            "bad.yaml:2: job 'a' needs exactly one of 'shell' or 'call'",
        ),
    ],
)
def test_bad_workflows_exit_2_with_one_clear_line(tmp_path: Path, text: str, message: str):
    (tmp_path / "bad.yaml").write_text(text)
    out = jobgraph("run", "bad.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("jobgraph: error: ")
    assert message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_options_and_files_exit_2(build: Path):
    assert jobgraph("run", "missing.yaml", cwd=build).returncode == 2
    assert jobgraph("run", "build.yaml", "-j", "0", cwd=build).returncode == 2
    out = jobgraph("run", "build.yaml", "--only", "clen", cwd=build)
    assert out.returncode == 2 and "no job named 'clen' (did you mean 'clean'?)" in out.stderr


def test_python_file_with_a_scheduler_or_a_main(tmp_path: Path):
    (tmp_path / "flow.py").write_text(
        textwrap.dedent(
            """
        import jobgraph as jg
        def double(x):
            return 2 * x
        async def plus(x):
            return x + 1
        a = jg.Job(double, 21, name="a")
        scheduler = jg.Scheduler(jg.Job(plus, a, name="b"))
        """
        )
    )
    out = jobgraph("run", "flow.py", "--report", "r.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    records = json.loads((tmp_path / "r.json").read_text())["jobs"]
    assert [(r["name"], r["result"]) for r in records] == [("a", "42"), ("b", "43")]
    (tmp_path / "flow2.py").write_text(
        "import jobgraph as jg\ndef main():\n    return jg.Scheduler(jg.Job(len, 'ab'))\n"
    )
    assert jobgraph("run", "flow2.py", cwd=tmp_path).returncode == 0
    (tmp_path / "flow3.py").write_text("x = 1\n")
    out = jobgraph("run", "flow3.py", cwd=tmp_path)
    assert out.returncode == 2 and "defines no module-level 'scheduler'" in out.stderr


def test_only_dry_run_and_force(build: Path):
    out = jobgraph("run", "build.yaml", "--only", "fetch", cwd=build)
    assert out.returncode == 0 and (build / "data.csv").exists()
    assert not (build / "clean.csv").exists()
    dry = jobgraph("run", "build.yaml", "--dry-run", cwd=build)
    assert dry.returncode == 0 and not (build / "clean.csv").exists()
    assert "fetch: up to date" in dry.stdout
    assert "clean: would run: never ran" in dry.stdout
    jobgraph("run", "build.yaml", cwd=build)
    forced = jobgraph("run", "build.yaml", "--force", "clean", "--report", "f.json", cwd=build)
    counts = json.loads((build / "f.json").read_text())["counts"]
    assert forced.returncode == 0 and counts == {"SUCCEEDED": 1, "UP_TO_DATE": 2}


def test_history_commands(build: Path):
    jobgraph("run", "build.yaml", cwd=build)
    runs = json.loads(jobgraph("runs", "--json", cwd=build).stdout)
    assert len(runs) == 1 and runs[0]["exit_code"] == 0
    run_id = runs[0]["run_id"]
    shown = json.loads(jobgraph("show", run_id, "--json", cwd=build).stdout)
    assert shown["run_id"] == run_id and shown["counts"] == {"SUCCEEDED": 3}
    assert "clean" in jobgraph("show", run_id, cwd=build).stdout
    (build / "say.yaml").write_text("jobs:\n  say:\n    shell: echo hello; echo oops >&2\n")
    jobgraph("run", "say.yaml", cwd=build)
    both = json.loads(jobgraph("runs", "--json", cwd=build).stdout)
    newest = both[0]["run_id"]
    digests = [r["graph_digest"] for r in both]  # two graphs: two shapes
    assert all(len(d) == 64 for d in digests) and digests[0] != digests[1]
    assert jobgraph("logs", newest, "say", cwd=build).stdout == "hello\n"
    assert jobgraph("logs", newest, "say", "--stderr", cwd=build).stdout == "oops\n"
    assert jobgraph("show", "nope", cwd=build).returncode == 2
    explained = json.loads(jobgraph("explain", "build.yaml", "--json", cwd=build).stdout)
    assert explained["clean"] == ["up to date"]


def test_resume_a_failed_run_by_id(tmp_path: Path):
    flag = tmp_path / "fixed"
    (tmp_path / "flaky.yaml").write_text(
        textwrap.dedent(
            f"""
        jobs:
          first:
            shell: echo once >> ran.txt
          second:
            shell: test -e {flag}
            requires: [first]
        """
        )
    )
    failed = jobgraph("run", "flaky.yaml", "-q", cwd=tmp_path)
    assert failed.returncode == 1
    run_id = json.loads(jobgraph("runs", "--json", cwd=tmp_path).stdout)[0]["run_id"]
    flag.write_text("")
    resumed = jobgraph("resume", run_id, "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "ran.txt").read_text() == "once\n"  # first did not run again


def test_graph_command(build: Path):
    dot = jobgraph("graph", "build.yaml", cwd=build)
    assert dot.returncode == 0 and '"fetch" -> "clean";' in dot.stdout
    mermaid = jobgraph("graph", "build.yaml", "--format", "mermaid", cwd=build)
    assert mermaid.stdout.startswith("flowchart LR")
    written = jobgraph("graph", "build.yaml", "--format", "dot", "-o", "g.dot", cwd=build)
    assert written.returncode == 0 and (build / "g.dot").exists()


def test_help_lists_the_commands(tmp_path: Path):
    out = jobgraph("--help", cwd=tmp_path)
    for command in ("run", "graph", "explain", "runs", "show", "logs", "resume"):
        assert command in out.stdout


def test_more_user_errors_are_one_line(build: Path):
    def one_line(*args: str) -> str:
        out = jobgraph(*args, cwd=build)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr
        lines = out.stderr.strip().splitlines()
        assert lines[-1].startswith("jobgraph: error: ")
        return lines[-1]

    assert "'-j' / '--jobs'" in one_line("run", "build.yaml", "-j", "0")
    assert "No such command 'nope'" in one_line("nope")
    assert "no job named 'zzz'" in one_line("run", "build.yaml", "--force", "zzz")
    (build / "a-file").write_text("")  # a folder that cannot exist, even for root
    assert "cannot write" in one_line(
        "run", "build.yaml", "-q", "--report", str(build / "a-file" / "r.json")
    )
    (build / "dup.yaml").write_text("jobs:\n  a:\n    shell: echo\n  a:\n    shell: echo\n")
    assert "dup.yaml:4: duplicate key 'a'" in one_line("run", "dup.yaml")
    (build / "typ.yaml").write_text("jobs:\n  a:\n    shell: echo\n    critical: 'no'\n")
    assert "typ.yaml:4: job 'a': 'critical' must be true or false" in one_line("run", "typ.yaml")
    jobgraph("run", "build.yaml", "-q", cwd=build)
    run_id = json.loads(jobgraph("runs", "--json", cwd=build).stdout)[0]["run_id"]
    assert "has no job 'nosuch'" in one_line("logs", run_id, "nosuch")


def test_resume_runs_the_same_selection(tmp_path: Path):
    (tmp_path / "two.yaml").write_text(
        "jobs:\n  a:\n    shell: echo a >> log.txt; exit 1\n  b:\n    shell: echo b >> log.txt\n"
    )
    failed = jobgraph("run", "two.yaml", "--only", "a", "-q", cwd=tmp_path)
    assert failed.returncode == 1
    run_id = json.loads(jobgraph("runs", "--json", cwd=tmp_path).stdout)[0]["run_id"]
    jobgraph("resume", run_id, "-q", cwd=tmp_path)
    assert (tmp_path / "log.txt").read_text() == "a\na\n"  # b was never selected


def test_logs_follow_prints_output_as_it_comes_until_the_job_ends(tmp_path: Path):
    (tmp_path / "talk.yaml").write_text(
        "jobs:\n  talk:\n    shell: echo one; sleep 1.5; echo two\n"
    )
    running = subprocess.Popen(
        [sys.executable, "-m", "jobgraph", "run", "talk.yaml", "-q"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        runs: list[dict[str, object]] = []
        while not runs and time.monotonic() < deadline:
            listed = jobgraph("runs", "--json", cwd=tmp_path)
            runs = json.loads(listed.stdout) if listed.returncode == 0 else []
            time.sleep(0.1)
        followed = jobgraph("logs", str(runs[0]["run_id"]), "talk", "--follow", cwd=tmp_path)
        assert followed.returncode == 0, followed.stderr
        assert followed.stdout == "one\ntwo\n"  # it waited for the end of the job
    finally:
        running.wait(30)


@pytest.mark.parametrize(
    "command",
    [
        ["runs"],
        ["status", "last"],
        ["run", "graph.py"],
        ["run", "graph.py", "--dry-run"],
        ["explain", "graph.py"],
        ["prune"],
    ],
)
def test_a_postgresql_store_without_psycopg_is_a_one_line_error(tmp_path: Path, command):
    (tmp_path / "graph.py").write_text(
        "import jobgraph as jg\nscheduler = jg.Scheduler(jg.Job(print, 1, name='p'))\n"
    )
    blocked = "import sys; sys.modules['psycopg'] = None; from jobgraph.cli import main; main()"
    url = "postgresql://nobody@localhost:1/none"
    done = subprocess.run(
        [sys.executable, "-c", blocked, *command, "--store", url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "the PostgreSQL store needs psycopg 3: pip install 'jobgraph[postgres]'" in done.stderr
