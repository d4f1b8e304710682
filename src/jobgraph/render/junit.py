"""JUnit XML of a report: one test case per job."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from ..state import FAILURE, State

if TYPE_CHECKING:
    from ..report import Report


def to_junit(report: Report, suite: str = "jobgraph") -> str:
    """Failed and timed-out jobs carry ``<failure>``; skipped and cancelled ``<skipped>``."""
    counts = report.counts
    failures = sum(counts.get(s, 0) for s in FAILURE)
    skipped = counts.get(State.SKIPPED, 0) + counts.get(State.CANCELLED, 0)
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(len(report.jobs)),
        failures=str(failures),
        time=f"{report.elapsed:.3f}",
    )
    node = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(report.jobs)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{report.elapsed:.3f}",
        timestamp=report.started_at.isoformat(),
    )
    for record in report.jobs:
        case = ET.SubElement(
            node,
            "testcase",
            name=record.name,
            classname=suite,
            time=f"{record.duration or 0.0:.3f}",
        )
        if record.state in FAILURE:
            kind = "timeout" if record.state is State.TIMED_OUT else "failure"
            failure = ET.SubElement(case, "failure", message=record.first_error_line, type=kind)
            failure.text = record.error or ""
        elif record.state in (State.SKIPPED, State.CANCELLED):
            why = record.state.name.lower()
            if record.skipped_because:
                why += " because " + ", ".join(record.skipped_because) + " failed"
            ET.SubElement(case, "skipped", message=why)
        if record.note:
            ET.SubElement(case, "system-out").text = record.note
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
