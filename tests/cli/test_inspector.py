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
    assert "enhanced" in setting(page, "level") and "the program's default" in setting(page, "level")
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
    expect(page.locator('#settings tr[data-setting="level"]')).to_contain_text("set by the user")
    assert ox(home, "level").stdout.strip() == "basic"
    page.click("#consent-deny")
    expect(page.locator('#settings tr[data-setting="consent"]')).to_contain_text("denied")
    assert ox(home, "consent", "status").stdout.strip() == "denied"
    expect(page.locator("#pending-summary")).to_contain_text("0 run records")  # denying deleted them
    page.click("#consent-grant")
    expect(page.locator('#settings tr[data-setting="consent"]')).to_contain_text("allowed by the user (granted")
    assert "granted:" not in setting(page, "consent")  # settings in words, not the stored encoding


def test_page_at_1400px_has_units_meanings_and_nothing_clipped(page: Any, home: Path, tmp_path: Path) -> None:
    """Screenshot at 1400 px after a flush: every self-health figure has a unit and a one-line meaning,
    the page uses the dashboard's stylesheet, and no number or label is cut off by its box."""
    from playwright.sync_api import expect

    with otlp_server() as srv:
        assert ox(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.reload()
    expect(page.locator("#sent details.sent-entry").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "inspector-1400.png"), full_page=True)
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(245, 246, 248)"  # --bg
    figures = page.locator("#health tr")
    assert figures.count() >= 6
    units = ("request", "byte", "KiB", "MiB", "run record", " s ", " ms", "yes", "no", "none", "ok")
    for i in range(figures.count()):
        name, value = figures.nth(i).locator("td").nth(0), figures.nth(i).locator("td").nth(1)
        assert name.locator(".meaning").inner_text().strip(), name.inner_text()
        shown = " " + value.inner_text() + " "
        assert any(u in shown for u in units), f"{name.inner_text()!r}: {shown!r} has no unit"
    assert layout_problems(page) == []


def layout_problems(page: Any) -> list[str]:
    """What a reader cannot read: text cut off by its box, a cell reaching past its card, a figure's name
    squeezed to a letter or two per line, a page that scrolls sideways."""
    problems: list[str] = page.evaluate("""() => {
        const out = [];
        for (const e of document.querySelectorAll('td, th, .kpi .value, .kpi .label, h1, h2')) {
            if (e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
                out.push('clipped: ' + e.textContent.slice(0, 60));
        }
        for (const td of document.querySelectorAll('.card td')) {
            const card = td.closest('.card').getBoundingClientRect(), box = td.getBoundingClientRect();
            if (box.right > card.right + 1 || box.left < card.left - 1)
                out.push('past its card: ' + td.textContent.slice(0, 60));
        }
        const names = '#health td:first-child > div:first-child, #drops td:first-child > div:first-child';
        for (const name of document.querySelectorAll(names)) {
            const lines = name.getBoundingClientRect().height / (parseFloat(getComputedStyle(name).fontSize) * 1.2);
            if (lines > 2.5) out.push('squeezed to ' + Math.round(lines) + ' lines: ' + name.textContent);
        }
        if (document.documentElement.scrollWidth > window.innerWidth) out.push('scrolls sideways');
        return out;
    }""")
    return problems


def test_a_failed_send_and_no_result_read_whole_at_1400_and_1920px(page: Any, home: Path, tmp_path: Path) -> None:
    """The last send failed (a refused endpoint): at 1400 and 1920 px the self-health figures keep their
    names readable, the error is said whole in the figure's meaning line, nothing is cut off or runs past
    the card, no sideways scroll; the same holds when no round's result is kept (a long sentence). The
    pending list shows the exponential histograms (durations) too."""
    from playwright.sync_api import expect

    result = ox(home, "flush", "--endpoint", "http://127.0.0.1:9", "--timeout", "1")
    assert result.returncode == 1 and "Connection refused" in result.stderr, result.stderr
    row = page.locator('#health tr[data-figure="last send"]')
    for width in (1400, 1920):
        page.set_viewport_size({"width": width, "height": 1000})
        page.reload()
        expect(row.locator("td.num")).to_contain_text("failed")
        expect(row.locator(".meaning")).to_contain_text("ConnectionRefusedError: [Errno 111] Connection refused")
        page.screenshot(path=str(tmp_path / f"inspector-failed-{width}.png"), full_page=True)
        assert layout_problems(page) == [], width
    expect(page.locator("#pending")).to_contain_text("cli.command.duration {")
    expect(page.locator("#pending")).to_contain_text("cli.command.cpu_time {")
    page.click("#consent-deny")
    page.click("#consent-grant")
    for width in (1400, 1920):
        page.set_viewport_size({"width": width, "height": 1000})
        page.reload()
        expect(row.locator("td.num")).to_contain_text("no result kept (")
        page.screenshot(path=str(tmp_path / f"inspector-no-result-{width}.png"), full_page=True)
        assert layout_problems(page) == [], width


def test_last_send_is_explained_after_the_history_is_cleared(page: Any, home: Path) -> None:
    """Refuse then allow after a send: the attempts stay counted, and "last send" says what the files
    show, in the words of `status` (no round's result kept, the attempts counted), never a guessed cause
    nor a bare "none kept" beside them."""
    from playwright.sync_api import expect

    with otlp_server() as srv:
        assert ox(home, "flush", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url).returncode == 0
    page.click("#consent-deny")
    page.click("#consent-grant")
    row = page.locator('#health tr[data-figure="last send"]')
    attempts = page.locator('#health tr[data-figure="export attempts"] td.num').inner_text()
    n = int(attempts.split()[0])
    assert n > 0, attempts  # the flush's requests stay counted
    expect(row).to_contain_text(f"no result kept ({n} send attempt{'s' if n != 1 else ''} counted")
    text = ox(home, "status").stdout
    words = row.locator("td.num").inner_text()
    assert f"last send: {words}" in text, (words, text)  # the page and the terminal say the same


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
