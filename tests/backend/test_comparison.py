"""The previous-period comparison against ground truth, for every filter, on both engines.

A generated population (tests/backend/population.py: three app versions, 28 UTC days up to today,
installations, error outcomes, exponential durations) goes through the real ingest path: gzip OTLP posted
to the backend on 127.0.0.1. ``/api/report`` with a range must then report, for the same filter over the
N days just before the range, exactly the invocations, errors and installations of the population, their
deltas, and per command p50/p95 within the 5% bound; ClickHouse (chDB) must give the same section.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import previous_period, render_report, report_from
from otel_expansion.backend.rollup import DAY_NS
from otel_expansion.backend.server import parse_filter
from otel_expansion.backend.store import open_readonly
from otel_expansion.cli.main import main

from .chdb_loader import ChdbDatabase
from .conftest import LiveServer
from .population import COMMANDS, Population, Run, generate, post_all, running_server, true_quantile

APP_FILTERS = [(None, None), ("alpha", None), ("alpha", "2.0"), (None, "1.0"), ("beta", "1.0")]


def iso(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def ranges(today: int) -> list[tuple[dict[str, str], int, int]]:
    """(query, first day, last day) of the current window."""
    return [
        ({"days": "7"}, today - 6, today),
        ({"days": "10"}, today - 9, today),
        ({"days": "20"}, today - 19, today),  # the previous 20 days reach past the data: partly empty
        ({"since": iso(today - 20), "until": iso(today - 9)}, today - 20, today - 9),
        ({"since": iso(today - 3)}, today - 3, today),
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Population, LiveServer, ChdbDatabase]]:
    pop = generate(seed=41)
    servers = running_server(tmp_path_factory.mktemp("comparison") / "b.sqlite")
    server = next(servers)
    post_all(server, pop)
    chdb = ChdbDatabase()
    for signal, message in pop.requests:
        chdb.load(signal, message)
    yield pop, server, chdb
    chdb.close()
    next(servers, None)


def get(server: LiveServer, path: str, query: dict[str, str]) -> dict[str, Any]:
    response = server.request("GET", f"{path}?{urlencode(query)}")
    assert response.status == 200, response.body
    result: dict[str, Any] = json.loads(response.body)
    return result


def expect_delta(figure: dict[str, Any], current: float, previous: float) -> None:
    assert (figure["current"], figure["previous"]) == (current, previous)
    assert figure["delta"] == current - previous
    assert figure["delta_pct"] == (None if not previous else pytest.approx((current - previous) / previous,
                                                                           rel=1e-9))


def check_quantiles(figure: dict[str, Any], runs: list[Run], key: str, q: float) -> None:
    values = [r.duration for r in runs]
    if not values:
        assert figure is None or figure[key] is None
        return
    truth = true_quantile(values, q)
    got = figure[key]
    assert min(values) * (1 - 1e-11) <= got <= max(values) * (1 + 1e-11)  # the report keeps 12 digits
    assert abs(got - truth) / truth <= 0.05, (key, got, truth)


@pytest.mark.parametrize(("service", "version"), APP_FILTERS)
def test_previous_period_matches_the_population_through_http(
        world: tuple[Population, LiveServer, ChdbDatabase], service: str | None, version: str | None) -> None:
    pop, server, _ = world
    for query, first, last in ranges(pop.today):
        full = {**query, **({"service": service} if service else {}), **({"version": version} if version else {})}
        report = get(server, "/api/report", full)
        c = report["comparison"]
        n = last - first + 1
        assert (c["since"], c["until"], c["days"]) == (iso(first - n), iso(first - 1), n), query
        now = pop.select(service, version, first, last)
        before = pop.select(service, version, first - n, first - 1)
        t = c["totals"]
        expect_delta(t["invocations"], len(now), len(before))
        expect_delta(t["errors"], sum(r.error for r in now), sum(r.error for r in before))
        expect_delta(t["installations"], len({r.installation for r in now}), len({r.installation for r in before}))
        expect_delta(t["samples"], len(now), len(before))
        assert t["invocations"]["current"] == report["totals"]["invocations"]  # the report's own figures
        assert t["p50_s"]["current"] == report["totals"]["p50_s"]
        check_quantiles({"p50_s": t["p50_s"]["previous"]}, before, "p50_s", 0.5)
        check_quantiles({"p95_s": t["p95_s"]["previous"]}, before, "p95_s", 0.95)
        # the previous figures are those of a report over the previous days themselves
        earlier = get(server, "/api/report", {**{k: v for k, v in full.items() if k in ("service", "version")},
                                               "since": c["since"], "until": c["until"]})
        by_command = {x["command"]: x for x in earlier["commands"]}
        assert t["p95_s"]["previous"] == earlier["totals"]["p95_s"]
        rows = {x["command"]: x for x in c["commands"]}
        assert set(rows) == {r.command for r in now + before}
        for command in COMMANDS:
            if command not in rows:
                continue
            row = rows[command]
            cur = [r for r in now if r.command == command]
            old = [r for r in before if r.command == command]
            expect_delta(row["invocations"], len(cur), len(old))
            expect_delta(row["errors"], sum(r.error for r in cur), sum(r.error for r in old))
            for key, q in (("p50_s", 0.5), ("p95_s", 0.95)):
                check_quantiles({key: row[key]["previous"]}, old, key, q)
                check_quantiles({key: row[key]["current"]}, cur, key, q)
                if old:
                    assert row[key]["previous"] == by_command[command][key]
                if cur and old:
                    assert row[key]["delta"] == pytest.approx(row[key]["current"] - row[key]["previous"])


def test_no_range_no_comparison(world: tuple[Population, LiveServer, ChdbDatabase]) -> None:
    _, server, _ = world
    assert get(server, "/api/report", {})["comparison"] is None
    assert get(server, "/api/report", {"until": iso(world[0].today - 2)})["comparison"] is None


def test_days_n_previous_period_is_the_n_utc_days_before() -> None:
    now = 20_000 * DAY_NS + 15 * 3600 * 10**9
    for days in (1, 7, 30):
        f = parse_filter({"days": [str(days)], "service": ["x"]}, now)
        before = previous_period(f, now)
        assert before is not None and before.service == "x"
        assert (before.since_day, before.until_day) == (20_000 - 2 * days + 1, 20_000 - days)


@pytest.mark.parametrize(("service", "version"), APP_FILTERS)
def test_clickhouse_gives_the_same_comparison(
        world: tuple[Population, LiveServer, ChdbDatabase], service: str | None, version: str | None) -> None:
    pop, server, chdb = world
    now = pop.today * DAY_NS + 3600 * 10**9
    sqlite = SQLiteEngine(open_readonly(server.db_path))
    try:
        for query, _, _ in ranges(pop.today)[1:4]:  # a days=N range, one reaching past the data, since/until
            f = parse_filter({k: [v] for k, v in query.items()}, now)
            f = Filter(service, version, f.since_day, f.until_day)
            embedded = report_from(sqlite, f, now_ns=now)["comparison"]
            assert embedded is not None and embedded["totals"]["invocations"]["current"] >= 0
            assert report_from(chdb.engine(), f, now_ns=now)["comparison"] == embedded, query
    finally:
        sqlite.close()


def test_text_report_shows_the_deltas(world: tuple[Population, LiveServer, ChdbDatabase],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    pop, server, _ = world
    assert main(["report", "--db", str(server.db_path), "--days", "7", "--service", "alpha"]) == 0
    out = capsys.readouterr().out
    now = pop.select("alpha", None, pop.today - 6, pop.today)
    before = pop.select("alpha", None, pop.today - 13, pop.today - 7)
    delta = len(now) - len(before)
    pct = f"{delta / len(before) * 100:+.1f}%"
    assert f"Compared with the previous 7 days ({iso(pop.today - 13)} .. {iso(pop.today - 7)})" in out
    assert f"invocations {len(now):,} ({delta:+,}, {pct})" in out
    lines = out.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("Compared with"))
    line = next(x for x in lines[start:] if x.strip().startswith("build "))
    cur = len([r for r in now if r.command == "build"])
    old = len([r for r in before if r.command == "build"])
    assert line.split()[1:4] == [f"{cur:,}", f"{old:,}", f"{(cur - old) / old * 100:+.1f}%"]
    report = report_from(SQLiteEngine(open_readonly(server.db_path)), Filter(), now_ns=pop.today * DAY_NS)
    assert "Compared with" not in render_report(report)  # all time: nothing to compare with
