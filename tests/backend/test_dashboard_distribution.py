"""The dashboard's distributions and previous-period comparison in headless Chromium (Playwright).

A generated population dated relative to today (tests/backend/population.py) is posted as gzip OTLP to a
live backend; the page must draw each command's distribution with non-zero bars where the data is (their
counts adding up to the sample size), mark p50/p95/p99 and n, show the previous period's deltas computed
from the population, and clip no number (element boxes measured as test_dashboard_look.py does).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import LiveServer
from .population import Population, generate, post_all


def signed(value: float, text: str) -> str:
    return ("+" if value > 0 else "\u2212" if value < 0 else "±") + text  # the page prints a minus sign


def count_text(value: float) -> str:
    return f"{abs(round(value, 1)):,.0f}" if float(value).is_integer() else f"{abs(value):,.1f}"


def change_text(current: float, previous: float) -> str:
    """What the page prints for a count compared with the previous period."""
    delta = current - previous
    text = signed(delta, count_text(delta))
    if previous:
        text += f" ({signed(delta, f'{abs(delta / previous * 100):.1f}')}%)"
    return text


@pytest.fixture
def world(browser: Browser, live_server: LiveServer) -> Iterator[tuple[Page, Population]]:
    pop = generate(seed=3)
    post_all(live_server, pop)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(live_server.url + "/")
    expect(page.locator("#status")).to_contain_text("invocations")
    yield page, pop
    assert not errors, errors
    page.close()


def nothing_clipped(page: Page) -> None:
    clipped = page.evaluate("""() => [...document.querySelectorAll(
            'td, th, .kpi .value, .kpi .label, .kpi .delta, .dist-note, h1, h2')]
        .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
        .map(e => e.textContent.slice(0, 60))""")
    assert clipped == [], clipped
    outside = page.evaluate("""() => [...document.querySelectorAll('.dist svg text')].filter(t => {
            const box = t.getBoundingClientRect(), svg = t.ownerSVGElement.getBoundingClientRect();
            return box.left < svg.left - 1 || box.right > svg.right + 1; }).map(t => t.textContent)""")
    assert outside == [], outside
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_command_row_opens_its_distribution(world: tuple[Page, Population]) -> None:
    page, pop = world
    with page.expect_response(lambda r: "/api/report" in r.url and "days=7" in r.url):
        page.click("#range button[data-days='7']")
    expect(page.locator("#comparison-range")).to_contain_text("previous 7 days")
    row = page.locator("#commands-table tbody tr[data-command='build']")
    with page.expect_response(lambda r: "/api/distribution" in r.url and "command=build" in r.url) as response:
        row.locator("td").first.click()
    assert "days=7" in response.value.url  # the page's filter applies to the distribution
    bars = page.locator("#dist-command rect.dist-bar")
    expect(bars.first).to_be_visible()
    counts = [int(b.get_attribute("data-count") or 0) for b in bars.all()]
    values = pop.select(since=pop.today - 6, command="build")
    assert all(n > 0 for n in counts) and sum(counts) == len(values)
    for bar in bars.all():  # each bar drawn where its durations are: a positive width and height
        box = bar.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0
    lower = min(float(b.get_attribute("data-lower") or 0) for b in bars.all())
    upper = max(float(b.get_attribute("data-upper") or 0) for b in bars.all())
    durations = [r.duration for r in values]
    assert lower < min(durations) and max(durations) <= upper
    assert sorted(m.get_attribute("data-q") or "" for m in page.locator("#dist-command line.marker").all()) == [
        "p50", "p95", "p99"]
    expect(page.locator("#commands-table .dist-note")).to_contain_text(f"n = {len(values):,}")
    expect(page.locator("#commands-table .dist-note")).to_contain_text("percentiles within ±4.3%")
    nothing_clipped(page)
    row.locator("td").first.click()  # closes again
    expect(page.locator("#dist-command")).to_have_count(0)


def test_cards_draw_all_commands_and_session_lengths(world: tuple[Page, Population]) -> None:
    page, pop = world
    for chart, total in (("#dist-all", len(pop.runs)), ("#dist-sessions", len(pop.sessions))):
        bars = page.locator(f"{chart} rect.dist-bar")
        expect(bars.first).to_be_visible()
        assert sum(int(b.get_attribute("data-count") or 0) for b in bars.all()) == total, chart
    nothing_clipped(page)


def test_previous_period_deltas_in_header_and_table(world: tuple[Page, Population]) -> None:
    page, pop = world
    expect(page.locator("#comparison")).to_contain_text("Pick 7, 30 or 90 days")  # all time: nothing before
    page.click("#range button[data-days='7']")
    now = pop.select(since=pop.today - 6)
    before = pop.select(since=pop.today - 13, until=pop.today - 7)
    delta = page.locator(".kpi .delta[data-key='invocations']")
    expect(delta).to_have_text(f"{change_text(len(now), len(before))} vs previous 7 days")
    installs = (len({r.installation for r in now}), len({r.installation for r in before}))
    expect(page.locator(".kpi .delta[data-key='installations']")).to_have_text(
        f"{change_text(*installs)} vs previous 7 days")
    errors = (sum(r.error for r in now), sum(r.error for r in before))
    expect(page.locator(".kpi .delta[data-key='errors']")).to_have_text(f"{change_text(*errors)} vs previous 7 days")
    for command in ("build", "test", "deploy"):
        cells = page.locator(f"#comparison tbody tr[data-command='{command}'] td")
        cur = len([r for r in now if r.command == command])
        old = len([r for r in before if r.command == command])
        expect(cells.nth(1)).to_have_text(count_text(cur))
        expect(cells.nth(2)).to_have_text(change_text(cur, old))
    nothing_clipped(page)
    page.click("#range button[data-days='30']")  # 30 days reach past the data: the previous period is empty
    expect(page.locator(".kpi .delta[data-key='invocations']")).to_have_text(
        f"{change_text(len(pop.runs), 0)} vs previous 30 days")
    page.select_option("#service", "beta")
    beta = pop.select("beta")
    expect(page.locator(".kpi .delta[data-key='invocations']")).to_have_text(
        f"{change_text(len(beta), 0)} vs previous 30 days")
    nothing_clipped(page)
