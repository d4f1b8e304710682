"""Acceptance tests for jg.Report (API.md section 4)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import jobgraph as jg
from spec.helpers_proc import record_of

TOP_KEYS = {
    "run_id",
    "started_at",
    "ended_at",
    "elapsed",
    "ok",
    "exit_code",
    "why",
    "counts",
    "jobs",
}
JOB_KEYS = {
    "name",
    "state",
    "requires",
    "attempts",
    "started_at",
    "ended_at",
    "duration",
    "error",
    "returncode",
    "skipped_because",
    "result",
}


def noop():
    return None


def load():
    raise ValueError("bad row 12")


def fail(message):
    def body():
        raise RuntimeError(message)

    return body


async def pause(seconds):
    await asyncio.sleep(seconds)
    return seconds


def _parse_iso_utc(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.tzinfo is not None, text
    assert moment.utcoffset() == dt.timedelta(0), text
    return moment


@pytest.fixture
def mixed_report():
    """A run with one job in each of SUCCEEDED, FAILED, SKIPPED, TIMED_OUT."""
    ok = jg.Job(noop, name="ok")
    bad = jg.Job(load, name="load")
    skipped = jg.Job(noop, name="skipped", requires=bad)

    async def slow():
        await asyncio.sleep(5)

    timed = jg.Job(slow, name="timed", timeout=0.1)
    shell = jg.Shell("echo out; exit 4", name="shell")
    return jg.Scheduler(ok, bad, skipped, timed, shell).run()


# -- ok, exit_code, why ------------------------------------------------------------------------


def test_ok_report():
    a = jg.Job(noop, name="a")
    b = jg.Job(noop, name="b", requires=a)
    report = jg.Scheduler(b).run()
    assert report.ok is True
    assert report.exit_code == 0
    assert report.why() == "ok"
    assert report.counts[jg.State.SUCCEEDED] == 2
    assert sum(report.counts.values()) == 2


def test_why_one_failure():
    report = jg.Scheduler(jg.Job(load, name="load"), jg.Job(noop, name="fine")).run()
    assert report.ok is False
    assert report.exit_code == 1
    assert report.why() == "job 'load' failed: ValueError: bad row 12"


def test_why_two_failures():
    report = jg.Scheduler(jg.Job(fail("x"), name="a"), jg.Job(fail("y"), name="b")).run()
    assert report.exit_code == 1
    why = report.why()
    match = re.fullmatch(r"2 jobs failed: (\w+), (\w+)", why)
    assert match, why
    assert set(match.groups()) == {"a", "b"}


def test_why_is_one_line(mixed_report):
    assert "\n" not in mixed_report.why()
    assert mixed_report.why() != "ok"


def test_why_timeout():
    async def slow():
        await asyncio.sleep(5)

    report = jg.Scheduler(jg.Job(slow, name="slow"), timeout=0.2).run()
    assert report.exit_code == 3
    assert report.ok is False
    assert report.why().startswith("timed out after")


def test_exit_code_critical_abort():
    report = jg.Scheduler(jg.Job(load, name="load", critical=True)).run()
    assert report.exit_code == 2
    assert report.ok is False
    assert "load" in report.why()


def test_exit_code_one_when_only_skips_and_timeouts(mixed_report):
    assert mixed_report.exit_code == 1
    assert mixed_report.ok is False


def test_exit_code_one_for_a_timed_out_job():
    async def slow():
        await asyncio.sleep(5)

    report = jg.Scheduler(jg.Job(slow, name="slow", timeout=0.1)).run()
    assert report.exit_code == 1
    assert report.ok is False
    assert "slow" in report.why()


# -- counts, jobs, times -----------------------------------------------------------------------


def test_counts_keyed_by_state(mixed_report):
    counts = mixed_report.counts
    assert all(isinstance(k, jg.State) for k in counts)
    assert counts[jg.State.SUCCEEDED] == 1
    assert counts[jg.State.FAILED] == 2
    assert counts[jg.State.SKIPPED] == 1
    assert counts[jg.State.TIMED_OUT] == 1
    assert sum(counts.values()) == 5


def test_jobs_in_topological_order():
    a = jg.Job(noop, name="a")
    b = jg.Job(noop, name="b", requires=a)
    c = jg.Job(noop, name="c", requires=[a, b])
    d = jg.Job(noop, name="d")
    e = jg.Job(noop, name="e", requires=[c, d])
    # added in an order that is not topological
    sched = jg.Scheduler(e, c, d, b, a)
    report = sched.run()
    records = report.to_dict()["jobs"]
    order = [r["name"] for r in records]
    assert sorted(order) == ["a", "b", "c", "d", "e"]
    position = {n: k for k, n in enumerate(order)}
    for r in records:
        for req in r["requires"]:
            assert position[req] < position[r["name"]]
    # report.jobs holds the same records in the same order
    assert len(report.jobs) == 5
    assert [getattr(r, "name", None) or r["name"] for r in report.jobs] == order


def test_report_times(mixed_report):
    report = mixed_report
    assert isinstance(report.elapsed, float)
    assert 0.1 <= report.elapsed < 10
    start, end = report.started_at, report.ended_at
    if isinstance(start, dt.datetime):
        assert end >= start
        assert abs((end - start).total_seconds() - report.elapsed) < 0.05


# -- to_dict / to_json -----------------------------------------------------------------------


def test_to_dict_schema(mixed_report):
    data = mixed_report.to_dict()
    assert set(data) >= TOP_KEYS
    assert "run_id" in data  # section 5 (stores) is not tested here
    start = _parse_iso_utc(data["started_at"])
    end = _parse_iso_utc(data["ended_at"])
    assert end >= start
    assert isinstance(data["elapsed"], (int, float))
    assert data["ok"] is False
    assert data["exit_code"] == 1
    assert data["why"] == mixed_report.why()
    # state name -> number (states with no job may be absent or zero)
    assert {k: v for k, v in data["counts"].items() if v} == {
        "SUCCEEDED": 1,
        "FAILED": 2,
        "SKIPPED": 1,
        "TIMED_OUT": 1,
    }
    assert set(data["counts"]) <= {s.name for s in jg.State}
    assert len(data["jobs"]) == 5
    for record in data["jobs"]:
        assert set(record) >= JOB_KEYS, set(JOB_KEYS) - set(record)


def test_to_dict_job_records(mixed_report):
    ok = record_of(mixed_report, "ok")
    assert ok["state"] == "SUCCEEDED"
    assert ok["requires"] == []
    assert ok["attempts"] == 1
    assert ok["error"] is None
    assert ok["returncode"] is None
    assert ok["skipped_because"] == []
    assert ok["result"] == repr(None)
    _parse_iso_utc(ok["started_at"])
    _parse_iso_utc(ok["ended_at"])
    assert isinstance(ok["duration"], (int, float)) and ok["duration"] >= 0

    load_ = record_of(mixed_report, "load")
    assert load_["state"] == "FAILED"
    assert "Traceback" in load_["error"]
    assert "ValueError: bad row 12" in load_["error"]
    assert load_["returncode"] is None

    skipped = record_of(mixed_report, "skipped")
    assert skipped["state"] == "SKIPPED"
    assert skipped["requires"] == ["load"]
    assert skipped["skipped_because"] == ["load"]
    assert skipped["attempts"] == 0
    assert skipped["started_at"] is None
    assert skipped["duration"] is None

    timed = record_of(mixed_report, "timed")
    assert timed["state"] == "TIMED_OUT"
    assert timed["error"]

    shell = record_of(mixed_report, "shell")
    assert shell["state"] == "FAILED"
    assert shell["returncode"] == 4


def test_result_is_a_short_repr():
    big = jg.Job(lambda: list(range(100_000)), name="big")
    small = jg.Job(lambda: {"rows": 3}, name="small")
    report = jg.Scheduler(big, small).run()
    assert record_of(report, "small")["result"] == repr({"rows": 3})
    text = record_of(report, "big")["result"]
    assert isinstance(text, str)
    assert len(text) < 1000


def test_state_name_up_to_date_style():
    report = jg.Scheduler(jg.Job(noop, name="x")).run()
    assert record_of(report, "x")["state"] == jg.State.SUCCEEDED.name


def test_to_json_without_path_returns_text(mixed_report):
    text = mixed_report.to_json()
    assert isinstance(text, str)
    data = json.loads(text)
    assert set(data) >= TOP_KEYS
    assert data["jobs"] == json.loads(json.dumps(mixed_report.to_dict()))["jobs"]


def test_to_json_with_path_writes_the_file(mixed_report, tmp_path: Path):
    path = tmp_path / "report.json"
    text = mixed_report.to_json(path)
    assert path.exists()
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk == json.loads(text)
    assert set(on_disk) >= TOP_KEYS
    assert on_disk["exit_code"] == 1
    # also with a string path
    path2 = tmp_path / "report2.json"
    mixed_report.to_json(str(path2))
    assert json.loads(path2.read_text(encoding="utf-8"))["ok"] is False


def test_to_dict_is_json_serialisable(mixed_report):
    json.dumps(mixed_report.to_dict())


# -- JUnit -----------------------------------------------------------------------------------


def _cases(xml_text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml_text.encode("utf-8") if xml_text.startswith("<?xml") else xml_text)
    return {case.get("name"): case for case in root.iter("testcase")}


def test_to_junit(mixed_report):
    cases = _cases(mixed_report.to_junit())
    assert len(cases) == 5
    assert set(cases) == {"ok", "load", "skipped", "timed", "shell"}

    def children(name):
        return {child.tag for child in cases[name]}

    assert "failure" not in children("ok") and "skipped" not in children("ok")
    assert "failure" in children("load")
    assert "failure" in children("timed")
    assert "failure" in children("shell")
    assert "skipped" in children("skipped")
    assert "failure" not in children("skipped")
    failure = cases["load"].find("failure")
    assert "bad row 12" in (failure.get("message", "") + (failure.text or ""))


def test_to_junit_cancelled_jobs_are_skipped(tmp_path: Path):
    async def slow():
        await asyncio.sleep(5)

    report = jg.Scheduler(jg.Job(slow, name="slow"), jg.Job(noop, name="fine"), timeout=0.2).run()
    path = tmp_path / "junit.xml"
    text = report.to_junit(path)
    assert path.exists()
    assert ET.parse(path).getroot() is not None
    cases = _cases(text)
    assert {c.tag for c in cases["slow"]} >= {"skipped"}
    assert "failure" not in {c.tag for c in cases["slow"]}
    assert not list(cases["fine"].iter("failure"))


# -- debrief ---------------------------------------------------------------------------------


def test_debrief(mixed_report):
    text = mixed_report.debrief()
    assert isinstance(text, str)
    for name, state in [
        ("ok", "SUCCEEDED"),
        ("load", "FAILED"),
        ("skipped", "SKIPPED"),
        ("timed", "TIMED_OUT"),
        ("shell", "FAILED"),
    ]:
        line = next(
            (ln for ln in text.splitlines() if re.search(rf"\b{name}\b", ln) and state in ln), None
        )
        assert line is not None, f"no line with {name} and {state} in:\n{text}"
    ok_line = next(ln for ln in text.splitlines() if re.search(r"\bok\b", ln) and "SUCCEEDED" in ln)
    assert re.search(r"\d", ok_line.replace("ok", "")), ok_line  # shows a duration
    assert "Traceback" in text
    assert "ValueError: bad row 12" in text
    # jobs come before the tracebacks, in topological order
    assert text.index("skipped") > text.index("load")
    assert text.index("Traceback") > text.index("skipped")


# -- critical path -----------------------------------------------------------------------------


def test_critical_path():
    a = jg.Job(pause, 0.2, name="a")
    b = jg.Job(pause, 0.1, name="b", requires=a)
    side = jg.Job(pause, 0.05, name="side")
    side2 = jg.Job(pause, 0.05, name="side2", requires=side)
    report = jg.Scheduler(b, side2).run()
    assert report.ok
    path = report.critical_path()
    assert isinstance(path, list)
    assert [name for name, _ in path] == ["a", "b"]
    for entry in path:
        assert isinstance(entry, tuple) and len(entry) == 2
        assert isinstance(entry[1], float)
    (_, da), (_, db) = path
    assert 0.18 <= da < 2
    assert 0.08 <= db < 2


def test_critical_path_single_job():
    report = jg.Scheduler(jg.Job(pause, 0.05, name="only")).run()
    path = report.critical_path()
    assert [n for n, _ in path] == ["only"]
    assert path[0][1] >= 0.04
