"""The dashboard in real headless Chromium: it fetches /api/report and draws the data as SVG.

CI must install Chromium (Debian/Ubuntu: ``apt-get install -y chromium``); without it these tests fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from .conftest import LiveServer, known_data

DASHBOARD = Path(__file__).parents[2] / "otel_expansion" / "backend" / "dashboard.html"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is required for the dashboard test: install it (apt-get install -y chromium)")


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran (virtual time lets fetch() and rendering finish)."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def status_text(dom: str) -> str:
    """The header status line: '<scope>: N invocations, M errors · updated ...' once the report loaded."""
    match = re.search(r'<span id="status"[^>]*>([^<]*)</span>', dom)
    assert match, "status element missing"
    return match.group(1)


class Svg(HTMLParser):
    """Collects, per <svg id>, the text of its <text> elements and its elements' data-* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, list[str]] = {}
        self.data: dict[str, list[dict[str, str]]] = {}
        self.kpis: list[str] = []
        self._svg: str | None = None
        self._in_text = False
        self._in_kpi_value = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self._svg = attributes.get("id", "")
            self.texts.setdefault(self._svg, [])
            self.data.setdefault(self._svg, [])
        elif self._svg is not None:
            if tag == "text":
                self._in_text = True
            found = {k: v for k, v in attributes.items() if k.startswith("data-")}
            if found:
                self.data[self._svg].append(found)
        if tag == "div" and attributes.get("class") in ("value", "value bad"):
            self._in_kpi_value = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None
        elif tag == "text":
            self._in_text = False
        elif tag == "div":
            self._in_kpi_value = False

    def handle_data(self, data: str) -> None:
        if self._svg is not None and self._in_text:
            self.texts[self._svg].append(data)
        if self._in_kpi_value:
            self.kpis.append(data)


def test_charts_render_real_data(live_server: LiveServer, tmp_path: Path) -> None:
    """Headless Chromium draws every chart from /api/report: labels, points and segments match the data."""
    for signal, message in known_data():
        assert live_server.post(signal, message).status == 200
    dom = dump_dom(live_server.url + "/", tmp_path / "profile")
    svg = Svg()
    svg.feed(dom)
    assert {
        "chart-commands",
        "chart-usage",
        "chart-errors",
        "chart-durations",
        "chart-environment",
        "chart-activity",
    } <= set(svg.texts), sorted(svg.texts)
    commands = [d["data-label"] for d in svg.data["chart-commands"]]
    assert commands == ["remote add", "status"]
    assert {"remote add", "status", "100", "50"} <= set(svg.texts["chart-commands"])
    assert [d["data-label"] for d in svg.data["chart-errors"]] == ["ConnectionError", "ValueError"]
    assert [d["data-day"] for d in svg.data["chart-usage"]] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert "500 ms / 950 ms" in svg.texts["chart-durations"]
    assert "70 ms / 400 ms" in svg.texts["chart-durations"]
    assert "linux 73%" in svg.texts["chart-environment"]
    assert svg.kpis[:5] == ["150", "25", "16.7%", "2", "2"]  # sessions; "0 open now" below the figure
    assert "all apps · all time: 150 invocations, 25 errors · updated" in status_text(dom)  # filtered figures
    assert re.search(r"<td>remote add</td><td>100</td><td>20</td><td>20\.0%</td>", dom)


def test_empty_store_shows_empty_states(live_server: LiveServer, tmp_path: Path) -> None:
    """With no data the page still loads the report and shows empty states instead of charts."""
    dom = dump_dom(live_server.url + "/", tmp_path / "profile")
    assert "all apps · all time: 0 invocations, 0 errors · updated" in status_text(dom)
    assert "No data in this range yet." in dom
    assert 'id="chart-commands"' not in dom


def test_page_is_self_contained() -> None:
    """No external resources: no src/href attributes, no URLs except the SVG namespace."""
    html = DASHBOARD.read_text()
    assert not re.search(r"\b(src|href)\s*=", html)
    assert re.findall(r"https?://[^\s\"'`]+", html) == ["http://www.w3.org/2000/svg"]
    assert "@import" not in html and "url(" not in html
