"""The live web view of jobgraph serve, in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import shutil
import time

import pytest

from procs import wait_until_gone
from server.serverproc import TOKEN

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (CI installs it)"
)
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def test_watch_a_run_change_state_and_abort_one_from_the_page(server, client):
    from playwright.sync_api import expect, sync_playwright

    gate = server.folder / "gate"
    waiting = client.submit(
        "jobs:\n"
        f"  wait:\n    shell: echo waiting; while [ ! -e {gate} ]; do sleep 0.1; done\n"
        "  after:\n    shell: echo after\n    requires: [wait]\n"
    )
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/?token={TOKEN}")
        page.locator(f'#runs li[data-run="{waiting.run_id}"]').click()
        job = page.locator('#graph g[data-job="wait"]')
        expect(job).to_have_attribute("data-state", "RUNNING", timeout=15_000)
        expect(page.locator('#graph g[data-job="after"]')).to_have_attribute(
            "data-state", "PENDING"
        )
        job.click()
        expect(page.locator("#output")).to_have_text("waiting\n", timeout=10_000)
        gate.write_text("open")
        expect(job).to_have_attribute("data-state", "SUCCEEDED", timeout=15_000)
        expect(page.locator("#run-state")).to_have_attribute(
            "data-state", "succeeded", timeout=15_000
        )
        assert page.locator("#timeline rect").count() == 2

        long = client.submit("jobs:\n  long:\n    shell: sleep 36.5\n")
        page.locator(f'#runs li[data-run="{long.run_id}"]').click()
        expect(page.locator('#graph g[data-job="long"]')).to_have_attribute(
            "data-state", "RUNNING", timeout=15_000
        )
        time.sleep(0.3)
        page.locator("#abort").click()
        expect(page.locator("#run-state")).to_have_attribute(
            "data-state", "aborted", timeout=15_000
        )
        expect(page.locator('#graph g[data-job="long"]')).to_have_attribute(
            "data-state", "CANCELLED", timeout=15_000
        )
        browser.close()
    assert errors == []
    assert long.state == "aborted"
    assert wait_until_gone("sleep 36.5", 5.0) == []


def test_the_page_without_the_token_shows_nothing(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        answer = page.goto(f"{server.url}/")
        assert answer is not None and answer.status == 401
        assert "unauthorized" in page.content() and "runs" not in page.content()
        browser.close()
