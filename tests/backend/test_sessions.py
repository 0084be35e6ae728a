"""Session statistics are exact per-session values, on both engines, for every filter.

Generated sessions (two apps, two versions, lengths from 0 to hours, 1 to 40 commands, spans arriving
in several requests so stored sessions grow) are compared with values computed here from the same
sessions: count, min, max, nearest-rank median and p95 of lengths and of commands. A session whose last
command is stamped in the future (a clock ahead of ours) is not open.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest

from otel_expansion.backend.ingest import flatten
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import SESSION_IDLE_NS, report_from
from otel_expansion.backend.store import Store, open_readonly

from .chdb_loader import ChdbDatabase
from .conftest import ns, span, traces_request
from .engines import engine_for

DAY = 86400 * 10**9
NOW = ns(12, 12)
APPS = (("gitx", "1.0.0"), ("gitx", "2.0.0"), ("dbtool", "1.0.0"))


def generate(seed: int = 3) -> tuple[list[Any], list[dict[str, Any]]]:
    """Requests carrying the sessions' spans, and each session's truth."""
    rng = random.Random(seed)
    sessions = []
    span_id = 1
    chunks: dict[int, list[tuple[dict[str, Any], Any]]] = {}
    for i in range(300):
        service, version = APPS[i % len(APPS)]
        day = 1 + rng.randrange(10)
        start = ns(day, 1 + rng.randrange(20)) + rng.randrange(10**9)
        n = rng.choice([1, 1, 2, 3, 5, 8, 13, 40])
        length = 0 if n == 1 and rng.random() < 0.5 else int(math.exp(rng.uniform(math.log(1e6), math.log(4e12))))
        times = sorted([start, start + length] + [start + rng.randrange(length + 1) for _ in range(max(0, n - 2))])[:n]
        ends = [t + rng.randrange(10**6) for t in times]
        ends[-1] = times[-1] if n > 1 else ends[-1]
        first, last = min(times), max(ends)
        sid = f"s{i:04d}"
        res = {"service.name": service, "service.version": version, "otel_expansion.installation.id": "i1"}
        for k, (t, e) in enumerate(zip(times, ends, strict=True)):
            chunks.setdefault(k % 3, []).append((res, span("run", {"session.id": sid, "cli.command.name": "c"},
                                                           t, e, trace=span_id, span_id=span_id)))
            span_id += 1
        sessions.append({"service": service, "version": version, "day": first // DAY, "length_s": (last - first) / 1e9,
                         "commands": n, "last": last})
    future = {"service.name": "gitx", "service.version": "1.0.0", "otel_expansion.installation.id": "i2"}
    t = NOW + 3600 * 10**9  # an hour ahead of the report's clock
    chunks.setdefault(0, []).append((future, span("run", {"session.id": "future", "cli.command.name": "c"},
                                                  NOW - 10**9, t, trace=span_id, span_id=span_id)))
    sessions.append({"service": "gitx", "version": "1.0.0", "day": (NOW - 10**9) // DAY,
                     "length_s": (t - NOW + 10**9) / 1e9, "commands": 1, "last": t})
    recent = {"service.name": "dbtool", "service.version": "1.0.0", "otel_expansion.installation.id": "i3"}
    chunks.setdefault(1, []).append((recent, span("run", {"session.id": "recent", "cli.command.name": "c"},
                                                  NOW - 60 * 10**9, NOW - 59 * 10**9, trace=span_id + 1,
                                                  span_id=span_id + 1)))
    sessions.append({"service": "dbtool", "version": "1.0.0", "day": (NOW - 60 * 10**9) // DAY, "length_s": 1.0,
                     "commands": 1, "last": NOW - 59 * 10**9})
    requests = []
    for _, items in sorted(chunks.items()):
        by_res: dict[str, tuple[dict[str, Any], list[Any]]] = {}
        for res, s in items:
            by_res.setdefault(repr(sorted(res.items())), (res, []))[1].append(s)
        requests.append(traces_request(*by_res.values()))
    return requests, sessions


FILTERS = [
    Filter(),
    Filter(service="gitx"),
    Filter(service="gitx", version="2.0.0"),
    Filter(version="1.0.0"),
    Filter(since_day=ns(4) // DAY),
    Filter(since_day=ns(3) // DAY, until_day=ns(6) // DAY),
    Filter(service="dbtool", until_day=ns(5) // DAY),
    Filter(service="nothing"),
]


def nearest(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    requests, truth = generate()
    db = tmp_path_factory.mktemp("sessions") / "b.sqlite"
    chdb = ChdbDatabase()
    with Store(db) as store:
        for request in requests:
            store.write("traces", flatten("traces", request))
            chdb.load("traces", request)
    sqlite = SQLiteEngine(open_readonly(db))
    yield {"embedded": sqlite, "clickhouse": chdb.engine(), "truth": truth}
    sqlite.close()
    chdb.close()


def _matches(s: dict[str, Any], f: Filter) -> bool:
    return ((f.service is None or s["service"] == f.service) and (f.version is None or s["version"] == f.version)
            and (f.since_day is None or s["day"] >= f.since_day) and (f.until_day is None or s["day"] <= f.until_day))


@pytest.mark.parametrize("engine_name", ["embedded", "clickhouse"])
@pytest.mark.parametrize("report_filter", FILTERS, ids=repr)
def test_session_statistics_are_exact(data: dict[str, Any], engine_name: str, report_filter: Filter) -> None:
    got = report_from(data[engine_name], report_filter, now_ns=NOW)["sessions"]
    chosen = [s for s in data["truth"] if _matches(s, report_filter)]
    assert got["count"] == len(chosen)
    open_now = [s for s in chosen if NOW - SESSION_IDLE_NS <= s["last"] <= NOW]
    assert got["open"] == len(open_now)
    if not chosen:
        assert got["median_length_s"] is None and got["max_commands"] is None
        return
    lengths = [s["length_s"] for s in chosen]
    commands = [float(s["commands"]) for s in chosen]
    expected = {
        "min_length_s": min(lengths), "median_length_s": nearest(lengths, 0.5),
        "p95_length_s": nearest(lengths, 0.95), "max_length_s": max(lengths),
        "min_commands": min(commands), "median_commands": nearest(commands, 0.5),
        "p95_commands": nearest(commands, 0.95), "max_commands": max(commands),
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    assert got["min_length_s"] <= got["median_length_s"] <= got["p95_length_s"] <= got["max_length_s"]


def test_future_session_is_not_open(data: dict[str, Any]) -> None:
    for name in ("embedded", "clickhouse"):
        got = report_from(data[name], Filter(service="gitx"), now_ns=NOW)["sessions"]
        assert got["open"] == 0  # only the future one is recent for gitx
        assert report_from(data[name], Filter(service="dbtool"), now_ns=NOW)["sessions"]["open"] == 1


def test_value_lookup_uses_the_length_index(data: dict[str, Any]) -> None:
    """The exact value inside a bucket is read through the index on the same expression, not a scan."""
    conn = data["embedded"]._conn
    plan = " ".join(str(r[-1]) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT (last_ns - first_ns) / 1e9 FROM sessions WHERE (last_ns - first_ns) / 1e9 > ?"
        " AND (last_ns - first_ns) / 1e9 <= ? AND service = ? ORDER BY (last_ns - first_ns) / 1e9 LIMIT 1 OFFSET 3",
        [1.0, 2.0, "gitx"]))
    assert "SEARCH sessions USING INDEX sessions_length" in plan, plan


@pytest.mark.parametrize("engine_name", ["embedded", "clickhouse"])
def test_sampled_spans_count_as_the_commands_they_stand_for(tmp_path: Any, engine_name: str) -> None:
    """A long-running program samples its spans (tracestate ``ot=th``: 1 in 2 kept is ``th:8``, 1 in 4
    ``th:c``, 1 in 1024 ``th:ffc``): a session's commands are the kept spans' adjusted counts, not how many
    spans arrived (a service's 200,000 commands read as 15,347 before)."""
    from otel_expansion.backend.ingest import adjusted_count
    from otel_expansion.sdk.pipeline import trace_state

    assert [adjusted_count(trace_state(k)) for k in (1, 2, 10, 16)] == [2, 4, 1024, 65536]
    assert adjusted_count("") == adjusted_count("ot=rv:ab") == adjusted_count("ot=th:zz") == 1
    assert adjusted_count("vendor=th:8,ot=p:3;th:8") == 2
    res = {"service.name": "svc", "service.version": "1.0", "otel_expansion.installation.id": "i1"}
    spans = []
    for i, shift in enumerate([0, 1, 1, 2, 10, 0]):  # 1 + 2 + 2 + 4 + 1024 + 1 = 1034 commands
        s = span("work", {"session.id": "busy", "cli.command.name": "work"}, NOW - 10**9 * (100 - i),
                 NOW - 10**9 * (100 - i) + 1000, trace=500 + i, span_id=500 + i)
        if shift:
            s.trace_state = trace_state(shift)
        spans.append(s)
    quiet = span("work", {"session.id": "quiet", "cli.command.name": "work"}, NOW - 10**9, NOW - 10**9 + 10,
                 trace=600, span_id=600)
    request = traces_request((res, spans), (res, [quiet]))
    with engine_for(engine_name, "traces", request, tmp_path) as engine:
        got = report_from(engine, Filter(), now_ns=NOW)["sessions"]
    assert got["count"] == 2
    assert (got["min_commands"], got["max_commands"]) == (1, 1034)
