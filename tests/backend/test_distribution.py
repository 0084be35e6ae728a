"""The distribution behind each percentile (/api/distribution, ``report --command``) against ground truth.

The generated population (tests/backend/population.py) goes through the real ingest path (gzip OTLP posted
to the backend on 127.0.0.1). For every app/version filter and range, each bar's count must equal the number
of generated durations inside its (lower, upper] exactly, the bars must add up to the sample size the report
gives, the coarsening must stop at the finest scale that fits the number of bars asked for, and the stated
error bounds must be the bucket arithmetic's. Explicit-bucket data (stored by 0.2) is drawn as its buckets.
ClickHouse (chDB) gives the same distributions.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from otel_expansion.backend.distribution import distribution
from otel_expansion.backend.ingest import flatten
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.rollup import DAY_NS
from otel_expansion.backend.server import parse_filter
from otel_expansion.backend.store import Store, open_readonly
from otel_expansion.cli.main import main
from otel_expansion.otlp import exponential

from .chdb_loader import ChdbDatabase
from .conftest import LINUX, REMOTE_ADD, LiveServer, metrics_request, ns, two_apps
from .population import COMMANDS, Population, exp_metric, generate, post_all, running_server, true_quantile

APP_FILTERS = [(None, None), ("alpha", None), ("alpha", "2.0"), (None, "1.0"), ("beta", "1.0")]


def windows(today: int) -> list[tuple[dict[str, str], int | None, int | None]]:
    return [({}, None, None), ({"days": "7"}, today - 6, today),
            ({"since": f"{(today - 20) * 86400}000000000", "until": f"{(today - 9) * 86400}000000000"},
             today - 20, today - 9)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Population, LiveServer, ChdbDatabase]]:
    pop = generate(seed=7)
    servers = running_server(tmp_path_factory.mktemp("distribution") / "b.sqlite")
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


def check_bars(d: dict[str, Any], values: list[float], asked: int) -> None:
    """Every value in exactly one bar; each bar a base-2 bucket at bar_scale holding exactly its values;
    bar_scale the finest (no finer than the data's scale) with at most ``asked`` non-empty bars."""
    assert d["samples"] == len(values)
    assert d["kind"] == "exponential"
    assert sum(b["count"] for b in d["bars"]) + d["zero_count"] == len(values)
    scale = d["bar_scale"]
    truth = Counter(exponential.index_of(v, scale) for v in values)
    got = {}
    for bar in d["bars"]:
        index = exponential.index_of(bar["upper"], scale)
        assert exponential.bucket_bounds(index, scale) == (bar["lower"], bar["upper"])
        got[index] = bar["count"]
    assert got == dict(truth)
    assert len(d["bars"]) <= asked
    if scale < d["scale"]:  # one scale finer would have needed more bars than asked for
        assert len({exponential.index_of(v, scale + 1) for v in values}) > asked
    assert d["bar_error"] == pytest.approx(exponential.relative_error(scale))
    assert d["quantile_error"] == pytest.approx(exponential.relative_error(d["scale"])) and d["scale"] >= 3
    assert d["quantile_error"] < 0.0434


@pytest.mark.parametrize(("service", "version"), APP_FILTERS)
def test_command_bars_hold_exactly_the_generated_durations(
        world: tuple[Population, LiveServer, ChdbDatabase], service: str | None, version: str | None) -> None:
    pop, server, _ = world
    apps = {**({"service": service} if service else {}), **({"version": version} if version else {})}
    for window, since, until in windows(pop.today):
        report = get(server, "/api/report", {**apps, **window})
        by_command = {c["command"]: c for c in report["commands"]}
        for command in [*COMMANDS, None]:
            values = [r.duration for r in pop.select(service, version, since, until, command)]
            for asked in (400, 12):
                query = {**apps, **window, "what": "command", "bars": str(asked),
                         **({"command": command} if command else {})}
                d = get(server, "/api/distribution", query)
                assert d["filter"] == report["filter"]
                check_bars(d, values, asked)
                figures = by_command[command] if command else report["totals"]
                for key, q in (("p50_s", 0.5), ("p95_s", 0.95), ("p99_s", 0.99)):
                    assert d[key] == figures[key]  # the percentiles the report shows
                    truth = true_quantile(values, q)
                    assert abs(d[key] - truth) / truth <= d["quantile_error"] + 1e-9
                assert d["samples"] == figures["samples"]


@pytest.mark.parametrize(("service", "version"), APP_FILTERS)
def test_session_lengths_are_the_sessions(world: tuple[Population, LiveServer, ChdbDatabase], service: str | None,
                                          version: str | None) -> None:
    pop, server, _ = world
    apps = {**({"service": service} if service else {}), **({"version": version} if version else {})}
    for window, since, until in windows(pop.today):
        lengths = pop.session_lengths(service, version, since, until)
        d = get(server, "/api/distribution", {**apps, **window, "what": "session_length", "bars": "400"})
        assert d["samples"] == len(lengths) and d["scale"] == 3 and d["quantile_error"] == 0.0
        assert Counter({exponential.index_of(b["upper"], 3): b["count"] for b in d["bars"]}) == Counter(
            exponential.index_of(v, 3) for v in lengths)
        for key, q in (("p50_s", 0.5), ("p95_s", 0.95), ("p99_s", 0.99)):
            assert d[key] == pytest.approx(true_quantile(lengths, q), rel=1e-11)  # exact per-session values
        assert (d["min_s"], d["max_s"]) == (pytest.approx(min(lengths)), pytest.approx(max(lengths)))


def test_clickhouse_gives_the_same_distributions(world: tuple[Population, LiveServer, ChdbDatabase]) -> None:
    pop, server, chdb = world
    now = pop.today * DAY_NS + 3600 * 10**9
    sqlite = SQLiteEngine(open_readonly(server.db_path))
    try:
        for service, version in APP_FILTERS:
            for window, _, _ in windows(pop.today):
                base = parse_filter({k: [v] for k, v in window.items()}, now)
                f = Filter(service, version, base.since_day, base.until_day)
                for what, command in [("command", c) for c in COMMANDS] + [("command", None),
                                                                           ("session_length", None)]:
                    for bars in (400, 10) if service is None and version is None else (10,):
                        embedded = distribution(sqlite, f, what, command, bars)
                        assert embedded["samples"] > 0 or window
                        assert distribution(chdb.engine(), f, what, command, bars) == embedded, (f, what, command)
    finally:
        sqlite.close()


def test_explicit_bucket_data_is_drawn_as_its_buckets(tmp_path: Path) -> None:
    """Data stored before 0.3 (explicit buckets): its own buckets, the open last one closed at the max; the
    same on ClickHouse; a command with both kinds shows both, every count kept."""
    db = tmp_path / "b.sqlite"
    chdb = ChdbDatabase()
    newer = metrics_request((LINUX, [exp_metric("cli.command.duration", [(REMOTE_ADD, [0.02, 0.3, 2.0], 20, ns(3))])]))
    with Store(db) as store:
        for signal, message in [*two_apps(), ("metrics", newer)]:
            store.write(signal, flatten(signal, message))
            chdb.load(signal, message)
    sqlite = SQLiteEngine(open_readonly(db))
    try:
        for engine in (sqlite, chdb.engine()):
            migrate = distribution(engine, Filter(service="dbtool"), "command", "migrate")
            assert migrate["kind"] == "explicit" and migrate["quantile_error"] is None
            assert [(b["lower"], b["upper"], b["count"], b["open_upper"]) for b in migrate["bars"]] == [
                (0.1, 0.5, 12, False), (0.5, 1.0, 15, False), (1.0, 5.0, 6, False), (5.0, 9.0, 2, True)]
            startup = distribution(engine, Filter(service="dbtool"), "startup")
            assert [(b["lower"], b["upper"], b["count"]) for b in startup["bars"]] == [
                (0.04, 0.05, 1), (0.05, 0.1, 8), (0.1, 0.25, 5), (0.25, 0.5, 1)]
            assert startup["samples"] == 15
            both = distribution(engine, Filter(), "command", "remote add")
            assert both["kind"] == "mixed" and both["samples"] == 103
            assert sum(b["count"] for b in both["bars"]) == 103
            assert sum(b["count"] for b in both["bars"] if b["kind"] == "exponential") == 3
        assert distribution(sqlite, Filter(), "command", "remote add") == distribution(
            chdb.engine(), Filter(), "command", "remote add")
    finally:
        sqlite.close()
        chdb.close()


def test_bad_distribution_queries_get_400(live_server: LiveServer) -> None:
    for query in ("what=bogus", "bars=0", "bars=x", "what=startup&command=x", "nope=1", "days=-1",
                  "what=command&what=startup"):
        response = live_server.request("GET", f"/api/distribution?{query}")
        assert response.status == 400, query
        assert "error" in json.loads(response.body)
    empty = json.loads(live_server.request("GET", "/api/distribution?command=none").body)
    assert (empty["samples"], empty["bars"]) == (0, [])


def test_report_command_prints_its_distribution(world: tuple[Population, LiveServer, ChdbDatabase],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    pop, server, _ = world
    assert main(["report", "--db", str(server.db_path), "--service", "beta", "--command", "deploy"]) == 0
    out = capsys.readouterr().out
    values = [r.duration for r in pop.select("beta", None, command="deploy")]
    head = next(line for line in out.splitlines() if line.startswith("Distribution of deploy"))
    assert f"n = {len(values):,}" in head and "percentiles within 4.33%" in head
    bars = out[out.index(head):].splitlines()[1:]
    counts = [re.search(r"\s(\d[\d,]*)\s+#+", line) for line in bars if line.strip()]
    assert all(counts) and sum(int(m.group(1).replace(",", "")) for m in counts if m) == len(values)
    assert main(["report", "--db", str(server.db_path), "--command", "nothing"]) == 1
