"""The dashboard's "Errors by stack signature" table in headless Chromium: every signature readable in full (an
eight-frame one wraps, nothing is cut or overflows), new errors marked, first/last version shown, and the
app, version and range filters applied to the table. Data goes in as gzip OTLP through the real receiver.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import LiveServer
from .test_error_groups import LONG, generate


@pytest.fixture
def page(browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    _events, requests = generate()
    for signal, message in requests:
        assert live_server.post(signal, message, gzip_body=True).status == 200
    width = getattr(request, "param", 1400)
    page = browser.new_page(viewport={"width": width, "height": 1000})
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(live_server.url + "/")
    expect(page.locator("#status")).to_contain_text("invocations")
    yield page
    assert not errors, errors
    page.close()


def _unclipped(page: Page) -> None:
    """No cell of the table is wider than its box, the table fits its card, the page does not scroll sideways."""
    clipped = page.evaluate("""() => [...document.querySelectorAll('#error-groups td, #error-groups th')]
        .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.slice(0, 80))""")
    assert clipped == [], clipped
    assert page.evaluate("""() => { const t = document.querySelector('#error-groups table');
        const card = t.closest('.card').getBoundingClientRect(); const r = t.getBoundingClientRect();
        return r.left >= card.left - 1 && r.right <= card.right + 1; }""")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("page", [1400, 800], indirect=True, ids=["1400px", "800px"])
def test_signatures_are_whole_and_readable(page: Page) -> None:
    """The longest signature (8 frames and the ellipsis) is in its cell verbatim and wraps inside it."""
    cell = page.locator("#error-groups td.signature", has_text="alpha.layer7")
    expect(cell).to_have_count(1)
    assert cell.text_content() == LONG
    assert cell.get_attribute("data-signature") == LONG
    box = cell.bounding_box()
    assert box is not None and box["height"] > 40  # wrapped onto several lines, not cut to one
    assert cell.evaluate("e => getComputedStyle(e).textOverflow !== 'ellipsis' && getComputedStyle(e).overflow"
                         " !== 'hidden'")
    expect(page.locator("#error-groups td.signature.no-stack").first).to_have_text("(no stack)")
    _unclipped(page)


def test_new_errors_and_versions_follow_the_filters(page: Page) -> None:
    """All apps: new groups are marked per app; picking an app, a version or a range redraws the table."""
    table = page.locator("#error-groups")
    new_rows = table.locator("tbody.error-group.is-new")
    expect(new_rows.first).to_be_visible()
    assert {r.locator("td.signature").text_content() for r in new_rows.all()} == {
        "alpha.cli:main > alpha.fs:write", "beta.app:run > beta.jobs:pick"}
    expect(table.locator(".note").first).to_contain_text("alpha 2.0.1")

    page.select_option("#service", "alpha")
    expect(page.locator("#status")).to_contain_text("alpha · all time")
    rows = table.locator("tbody.error-group")
    assert all("beta" not in (s or "") for s in table.locator("td.signature").all_text_contents())
    timeout = rows.filter(has_text="alpha.net:retry")
    expect(timeout).to_have_count(1)
    expect(timeout.locator("td.first")).to_have_text("2.0.0")
    expect(timeout.locator("td.last")).to_have_text("2.0.1")
    expect(table.locator("tbody.is-new")).to_have_count(1)
    expect(table.locator("tbody.is-new td.signature")).to_have_text("alpha.cli:main > alpha.fs:write")

    page.select_option("#version", "2.0.1")  # one version: nothing to compare with, nothing called new
    expect(page.locator("#status")).to_contain_text("version 2.0.1")
    expect(table.locator("tbody.is-new")).to_have_count(0)
    firsts = set(table.locator("td.first").all_text_contents())
    assert firsts == {"2.0.1"}
    expect(table.locator(".note").first).to_contain_text("NEW needs an older version")

    page.click("#range button[data-days='7']")  # the data is from 2024: nothing in the last 7 days
    expect(table).to_contain_text("No errors in this range.")
    _unclipped_empty = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert _unclipped_empty
