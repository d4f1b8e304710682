"""The HTML report, opened in a real headless browser (Debian's chromium via playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import jobgraph as jg
from jobgraph.render.html import write_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

needs_browser = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (CI installs it)",
)


def sample_run() -> tuple[jg.Report, jg.Scheduler]:
    async def fetch(k: int) -> int:
        return k

    def boom(*_: int) -> None:
        raise ValueError("bad row 12")

    sources = [jg.Job(fetch, k, name=f"fetch-{k}") for k in range(3)]
    merge = jg.Job(lambda *xs: sum(xs), *sources, name="merge")
    say = jg.Shell("echo hello from the shell", name="say", requires=merge)
    broken = jg.Job(boom, merge, name="broken")
    after = jg.Job(lambda: 1, name="after", requires=broken)
    scheduler = jg.Scheduler(say, after, broken)
    return scheduler.run(), scheduler


def test_the_page_is_self_contained_and_lists_every_job(tmp_path: Path):
    report, scheduler = sample_run()
    page = Path(write_html(report, scheduler, tmp_path / "r.html")).read_text()
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    for record in report.jobs:
        assert f"{record.name}: {record.state.name}" in page
    assert "hello from the shell" in page  # the command's output, for the details panel


@needs_browser
def test_the_page_loads_in_a_browser_without_errors(tmp_path: Path):
    from playwright.sync_api import sync_playwright

    report, scheduler = sample_run()
    target = tmp_path / "report.html"
    write_html(report, scheduler, target)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(target.as_uri())
        assert page.locator("svg.graph g.node").count() == len(report.jobs)
        assert page.locator("svg.timeline g.bar").count() >= 5
        page.locator("svg.graph g.node", has_text="broken").click()
        details = page.locator("#details").inner_text()
        assert "broken — FAILED" in details and "ValueError: bad row 12" in details
        page.locator("svg.graph g.node", has_text="say").click()
        assert "hello from the shell" in page.locator("#details").inner_text()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
