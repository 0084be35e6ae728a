"""The inspector page (`otel-expansion ui`) in real headless Chromium, driven by Playwright.

Browsers cannot be downloaded here: Playwright drives the Debian ``chromium`` binary (executable_path, or
PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH). The page is checked after a run, a flush, a clear, and while the
user changes the level and consent from it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import ox
from tests.conftest import ROOT, RunCli, clean_env
from tests.export.servers import otlp_server

pytestmark = pytest.mark.slow


def chromium_path() -> str:
    path = os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if not path:
        pytest.fail("Chromium is required for the inspector test: apt-get install -y chromium")
    return path


class Inspector:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc, self.url = proc, url


@pytest.fixture
def inspector(run_cli: RunCli, home: Path) -> Iterator[Inspector]:
    run_cli("hello", "ann", OTEL_EXPANSION_SEND="false")
    run_cli("fail", OTEL_EXPANSION_SEND="false")
    proc = subprocess.Popen([sys.executable, "-m", "otel_expansion", "ui", "--json", "--home", str(home)],
                            env=clean_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # readiness: the server prints its URL once it listens
    try:
        yield Inspector(proc, json.loads(line)["url"])
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def page(inspector: Inspector) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page()
            tab.goto(inspector.url)
            yield tab
        finally:
            browser.close()


def setting(page: Any, name: str) -> str:
    return str(page.locator(f'#settings tr[data-setting="{name}"]').inner_text())


def test_page_shows_settings_pending_and_sources(page: Any) -> None:
    """After two runs: level and its source, consent, endpoint, and the two pending run records."""
    from playwright.sync_api import expect

    expect(page.locator("#pending-summary")).to_contain_text("2 run records not converted yet")
    assert "enhanced" in setting(page, "level") and "from default" in setting(page, "level")
    assert "not asked" in setting(page, "consent")
    assert "http://localhost:4318" in setting(page, "endpoint")
    expect(page.locator("#sent")).to_contain_text("nothing sent yet")
    expect(page.locator("#drops")).to_contain_text("nothing dropped")


def test_page_follows_a_flush_and_a_clear(page: Any, home: Path, run_cli: RunCli) -> None:
    """A flush shows up as sent batches with decoded content and health; a run appears live; clear empties."""
    from playwright.sync_api import expect

    with otlp_server() as srv:
        assert ox(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
        n_requests = len(srv.requests)
    expect(page.locator("#sent details.sent-entry")).to_have_count(n_requests)
    expect(page.locator("#sent")).to_contain_text("democli hello")  # the decoded span, by name
    expect(page.locator("#health")).to_contain_text("export attempts")
    expect(page.locator("#health")).to_contain_text(" ok")
    expect(page.locator("#health")).to_contain_text(f"{n_requests} requests, median")
    expect(page.locator("#pending-summary")).to_contain_text("0 run records not converted yet, 0 spans")
    run_cli("remote", "add", "x", OTEL_EXPANSION_SEND="false")
    expect(page.locator("#live li")).to_contain_text(["remote add exit 0"])
    page.click("#clear")
    expect(page.locator("#message")).to_have_text("clear: done")
    expect(page.locator("#sent")).to_contain_text("nothing sent yet")
    expect(page.locator("#pending-summary")).to_contain_text("0 run records")


def test_page_changes_level_and_consent(page: Any, home: Path) -> None:
    """Level and consent set from the page are what the `level`/`consent` commands then report."""
    from playwright.sync_api import expect

    page.select_option("#level-select", "basic")
    page.click("#level-apply")
    expect(page.locator('#settings tr[data-setting="level"]')).to_contain_text("basic")
    expect(page.locator('#settings tr[data-setting="level"]')).to_contain_text("from user")
    assert ox(home, "level").stdout.strip() == "basic"
    page.click("#consent-deny")
    expect(page.locator('#settings tr[data-setting="consent"]')).to_contain_text("denied")
    assert ox(home, "consent", "status").stdout.strip() == "denied"
    expect(page.locator("#pending-summary")).to_contain_text("0 run records")  # denying deleted them
    page.click("#consent-grant")
    expect(page.locator('#settings tr[data-setting="consent"]')).to_contain_text("granted")


def test_changes_need_the_token_and_a_local_host(inspector: Inspector) -> None:
    """A foreign page cannot change settings: no token or a rebinding Host header is refused."""
    def post(headers: dict[str, str]) -> int:
        req = urllib.request.Request(inspector.url + "api/level", data=b'{"level": "off"}', method="POST",
                                     headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    assert post({}) == 403
    assert post({"X-Inspector-Token": "guess"}) == 403
    port = inspector.url.rsplit(":", 1)[1].strip("/")
    req = urllib.request.Request(inspector.url + "api/state", headers={"Host": f"evil.example:{port}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 403
