"""Instance ranges: parsing, one job per instance, reports by range."""

from __future__ import annotations

import json

import pytest

import jobgraph as jg
from jobgraph.instances import format_ranges, parse_ranges


def test_ranges_parse_and_format_back():
    assert parse_ranges("1,3-8") == [1, 3, 4, 5, 6, 7, 8]
    assert parse_ranges(" 7 , 0-2 ") == [7, 0, 1, 2]
    assert parse_ranges("5") == [5]
    assert format_ranges([8, 1, 3, 4, 5, 6, 7]) == "1,3-8"
    assert format_ranges([2]) == "2"
    assert format_ranges([]) == ""


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "is text such as"),
        ("1,,2", "'' is not a number"),
        ("a-3", "'a-3' is not a number"),
        ("3-1", "'3-1' goes backwards"),
        ("1-3,2", "names instance 2 more than once"),
        ("-2", "'-2' is not a number"),
        ("1-", "'1-' is not a number"),
    ],
)
def test_malformed_ranges_are_clear_value_errors(text, why):
    with pytest.raises(ValueError, match=why):
        parse_ranges(text)
    with pytest.raises(ValueError, match=why):
        jg.Job.instances(print, text)


def test_a_function_gets_its_instance_number_first():
    def render(frame: int, scale: int) -> int:
        return frame * scale

    jobs = jg.Job.instances(render, "1,3-4", 10, retries=1)
    assert [j.name for j in jobs] == ["render[1]", "render[3]", "render[4]"]
    assert all(j.retries == 1 for j in jobs)
    report = jg.Scheduler(jobs).run()
    assert report.ok
    assert [j.result() for j in jobs] == [10, 30, 40]


def test_a_command_finds_its_instance_in_the_environment():
    jobs = jg.Job.instances('echo "frame $JOBGRAPH_INSTANCE"', "2-3", name="frames")
    jg.Scheduler(jobs).run()
    assert [j.stdout() for j in jobs] == ["frame 2\n", "frame 3\n"]
    assert [j.name for j in jobs] == ["frames[2]", "frames[3]"]


def test_the_report_shows_instances_by_state_as_ranges():
    def check(k: int) -> int:
        if k in (2, 5):
            raise ValueError(f"frame {k} is broken")
        return k

    jobs = jg.Job.instances(check, "1-6")
    after = jg.Job(lambda: "done", name="after", requires=jobs[2])  # needs check[3]
    report = jg.Scheduler(jobs, after).run()
    assert report.instances == {"check": {"SUCCEEDED": "1,3-4,6", "FAILED": "2,5"}}
    assert json.loads(report.to_json())["instances"] == report.instances
    assert "check[...]: succeeded 1,3-4,6; failed 2,5" in report.debrief()
    assert after.result() == "done"


def test_instances_can_be_required_as_a_group():
    parts = jg.Job.instances(lambda k: k * k, "1-3", name="square")
    total = jg.Job(lambda: "sum", name="total", requires=parts)
    jg.Scheduler(total).run()
    assert [p.state for p in parts] == [jg.State.SUCCEEDED] * 3
    assert total.result() == "sum"
    assert "square[1-3]" in repr(parts)
