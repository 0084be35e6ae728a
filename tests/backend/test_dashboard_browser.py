"""The dashboard driven in headless Chromium through Playwright, with two apps in one backend.

Uses the Debian ``chromium`` executable (scripts/test.sh installs it; Playwright's own browser download
is not needed): PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH, else ``chromium`` on PATH.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import LiveServer, two_apps


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    for signal, message in two_apps():
        assert live_server.post(signal, message).status == 200
    page = browser.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(live_server.url + "/")
    expect(page.locator("#status")).to_contain_text("invocations")
    yield page
    assert not errors, errors
    page.close()


def kpi(page: Page, label: str) -> str:
    return page.locator(".kpi", has_text=label).locator(".value").inner_text()


def test_picker_lists_both_apps_and_filters_every_chart(page: Page) -> None:
    assert page.locator("#service option").all_inner_texts() == ["All apps", "dbtool", "gitx"]
    assert kpi(page, "Invocations") == "186"
    commands = page.locator("#chart-commands g.bar")
    expect(commands).to_have_count(3)

    page.select_option("#service", "dbtool")
    expect(page.locator(".kpi", has_text="Invocations").locator(".value")).to_have_text("36")
    expect(page.locator("#status")).to_contain_text("dbtool · all time: 36 invocations")  # the header is filtered
    assert page.locator("#service option").all_inner_texts() == ["All apps", "dbtool", "gitx"]  # still switchable
    assert page.locator("#version option").all_inner_texts() == ["All versions", "2.0.0", "2.1.0"]
    expect(page.locator("#chart-commands g.bar")).to_have_count(1)
    assert page.locator("#chart-commands g.bar").get_attribute("data-label") == "migrate"
    # version adoption: one line per version; versions chart and error matrix filled
    assert sorted(p.get_attribute("data-series") or "" for p in page.locator("#chart-adoption path.series").all()) == [
        "2.0.0", "2.1.0"]
    assert [b.get_attribute("data-label") for b in page.locator("#chart-versions g.bar").all()] == ["2.1.0", "2.0.0"]
    expect(page.locator("#handled")).to_contain_text("KeyError")
    expect(page.locator("#handled")).to_contain_text("handled (record_exception)")
    expect(page.locator("#error-matrix")).to_contain_text("20.0%")
    expect(page.locator("#startup")).to_contain_text("p99")
    expect(page.locator("#active")).to_contain_text("Active installations")
    expect(page.locator("#sessions")).to_contain_text("Open now")
    expect(page.locator("#features")).to_contain_text("dry-run")
    assert page.locator("#chart-environment g.segment").first.get_attribute("data-value") == "windows"

    page.select_option("#version", "2.1.0")
    expect(page.locator(".kpi", has_text="Invocations").locator(".value")).to_have_text("21")
    assert kpi(page, "Errors") == "1"

    page.select_option("#service", "gitx")
    expect(page.locator(".kpi", has_text="Invocations").locator(".value")).to_have_text("150")
    assert page.locator("#version").input_value() == ""  # a new app resets the version
    assert [b.get_attribute("data-label") for b in page.locator("#chart-errors g.bar").all()] == [
        "ConnectionError", "ValueError"]


def test_all_apps_view_keeps_versions_per_app(page: Page) -> None:
    """Two apps' versions are never merged: each bar and adoption line names its app."""
    labels = [b.get_attribute("data-label") or "" for b in page.locator("#chart-versions g.bar").all()]
    assert labels and all(label.split(" ")[0] in ("dbtool", "gitx") for label in labels)
    assert len(labels) == len(set(labels))


def test_range_buttons_keep_the_app(page: Page) -> None:
    page.select_option("#service", "dbtool")
    expect(page.locator(".kpi", has_text="Invocations").locator(".value")).to_have_text("36")
    with page.expect_response(lambda r: "/api/report" in r.url) as response:
        page.click("#range button[data-days='7']")
    assert "service=dbtool" in response.value.url and "days=7" in response.value.url
    expect(page.locator(".kpi", has_text="Invocations").locator(".value")).to_have_text("0")


def test_a_million_fits_with_sample_sizes_and_cut_tables(browser: Browser, live_server: LiveServer) -> None:
    """At 1400 px, 1,000,000 invocations fit their KPI box (nothing clipped or overflowing), each duration
    percentile says how many durations it was read from, and a cut table says how much it shows."""
    from .conftest import metrics_request, ns, sum_metric

    runs = [({"cli.command.name": f"cmd-{i:02d}", "cli.command.outcome": "success"}, 1_000_000 // 60, ns(3))
            for i in range(60)]
    runs.append(({"cli.command.name": "cmd-00", "cli.command.outcome": "success"}, 1_000_000 - 60 * (1_000_000 // 60),
                 ns(3)))
    request = metrics_request(({"service.name": "big", "service.version": "1.0",
                                "otel_expansion.installation.id": "i"}, [sum_metric("cli.command.invocations", runs)]))
    assert live_server.post("metrics", request).status == 200
    for signal, message in two_apps():
        assert live_server.post(signal, message).status == 200
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(live_server.url + "/?")
    page.select_option("#service", "big")
    expect(page.locator(".kpi", has_text="Invocations").locator(".value")).to_have_text("1,000,000")
    for box in page.locator(".kpi").all():
        value = box.locator(".value")
        assert value.evaluate("e => e.scrollWidth <= e.clientWidth"), value.inner_text()
        assert box.evaluate("e => e.scrollWidth <= e.clientWidth"), box.inner_text()
    page.select_option("#service", "")
    expect(page.locator(".kpi", has_text="Duration p50").locator(".sub")).to_contain_text("n = ")
    expect(page.locator("#commands-table .cut")).to_have_text("50 of 63 shown")
    expect(page.locator("#commands .cut")).to_have_text("12 of 63 shown")
    page.close()
