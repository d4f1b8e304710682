"""Graph exports: DOT, Mermaid, SVG/PNG/HTML through Graphviz, and clear errors."""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET

import pytest

import jobgraph as jg


def small() -> jg.Scheduler:
    a = jg.Job(lambda: 1, name="fetch")
    b = jg.Job(lambda x: x, a, name='say "hi"')
    return jg.Scheduler(b)


def test_dot_lists_nodes_edges_and_states():
    scheduler = small()
    text = scheduler.dot()
    assert text.startswith('digraph "scheduler" {')
    assert '"fetch" -> "say \\"hi\\"";' in text
    assert "PENDING" in text
    scheduler.run()
    assert "SUCCEEDED" in scheduler.dot()


def test_mermaid_is_a_flowchart_with_state_classes():
    scheduler = small()
    scheduler.run()
    text = scheduler.mermaid()
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert any("-->" in line for line in lines)
    assert "classDef succeeded" in text
    assert "#quot;hi#quot;" in text


def test_export_dot_and_mermaid_by_suffix(tmp_path):
    scheduler = small()
    assert scheduler.export(str(tmp_path / "g.dot")).endswith("g.dot")
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    scheduler.export(str(tmp_path / "g.mmd"))
    assert (tmp_path / "g.mmd").read_text().startswith("flowchart LR")


def test_unknown_suffix_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"unknown suffix '\.pdf'.*\.svg"):
        small().export(str(tmp_path / "g.pdf"))


needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI") != "true",
    reason="Graphviz 'dot' is not installed (CI installs it)",
)


@needs_dot
def test_export_svg_png_html(tmp_path):
    scheduler = small()
    scheduler.export(str(tmp_path / "g.svg"))
    svg = ET.parse(tmp_path / "g.svg").getroot()
    assert svg.tag.endswith("svg")
    assert "fetch" in (tmp_path / "g.svg").read_text()
    scheduler.export(str(tmp_path / "g.png"))
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_html_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    small().export(str(tmp_path / "g.html"))
    page = (tmp_path / "g.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and '<svg class="graph"' in page
    assert "fetch" in page and "http://www.w3.org/2000/svg" in page


def test_missing_graphviz_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' here
    with pytest.raises(RuntimeError, match="install Graphviz"):
        small().export(str(tmp_path / "g.svg"))
    assert not (tmp_path / "g.svg").exists()
