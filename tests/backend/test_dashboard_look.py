"""The dashboard at 1400 px in headless Chromium: numbers and labels are not cut off, and its stylesheet is
the one the inspector page links (one look for both pages; tests/cli/test_inspector.py checks that side).

Units and meanings of the dashboard's own figures are its content (tests/backend/test_dashboard_browser.py).
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, expect

from .conftest import LiveServer, two_apps


def test_dashboard_at_1400px_clips_nothing_and_shares_the_inspectors_stylesheet(
        browser: Browser, live_server: LiveServer, tmp_path: Path) -> None:
    """Screenshot at 1400 px: no table cell, KPI value or heading is wider than its box, no sideways
    scroll; the page's <style> is what the inspector serves as /look.css."""
    from otel_expansion.cli.ui import shared_style

    for signal, message in two_apps():
        assert live_server.post(signal, message).status == 200
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(live_server.url + "/")
        expect(page.locator("#status")).to_contain_text("invocations")
        page.screenshot(path=str(tmp_path / "dashboard-1400.png"), full_page=True)
        clipped = page.evaluate("""() => [...document.querySelectorAll('td, th, .kpi .value, .kpi .label, h1, h2')]
            .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
            .map(e => e.textContent.slice(0, 60))""")
        assert clipped == [], clipped
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        inline = page.evaluate("document.querySelector('style').textContent")
        assert inline == shared_style() and "--bg" in inline
    finally:
        page.close()
