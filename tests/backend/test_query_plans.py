"""The report path never scans a growing table: every statement report_from runs is checked with
EXPLAIN QUERY PLAN (SQLite's own plan, on a real store), for each kind of filter.

A full scan is allowed only of tables bounded by the number of apps and versions or of fixed names
(app_days, limits, counters) and of a subquery's already-grouped rows; every rollup, session, install
and raw table must be reached by a SEARCH on an index.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from otel_expansion.backend.distribution import distribution
from otel_expansion.backend.ingest import flatten
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import previous_period, report_from
from otel_expansion.backend.rollup import DAY_NS
from otel_expansion.backend.store import Store, open_readonly

from .conftest import ns, two_apps

BOUNDED = {"app_days", "limits", "counters"}
FILTERS = [
    Filter(),
    Filter(service="gitx"),
    Filter(version="1.3.0"),
    Filter(service="dbtool", version="2.0.0"),
    Filter(since_day=ns(3) // DAY_NS),
    Filter(since_day=ns(2) // DAY_NS, until_day=ns(3) // DAY_NS),
    Filter(service="dbtool", since_day=ns(1) // DAY_NS - 2, until_day=ns(19) // DAY_NS),
]


def assert_no_full_scan(conn: sqlite3.Connection, statements: list[str]) -> None:
    """Each SELECT's plan reaches growing tables only by an index SEARCH."""
    for sql in sorted({s for s in statements if s.lstrip().upper().startswith("SELECT")}):
        for row in conn.execute("EXPLAIN QUERY PLAN " + sql):
            step = str(row[-1])
            match = re.match(r"SCAN (\S+)", step)
            if match is None:
                continue
            table = match.group(1)
            assert table in BOUNDED or table.startswith("(subquery"), f"{step} in: {sql}"


@pytest.mark.parametrize("report_filter", FILTERS, ids=repr)
def test_distributions_and_the_previous_period_use_indexes(tmp_path: Path, report_filter: Filter) -> None:
    """The drill-down (/api/distribution: one command, all commands, start-up, session length) and the
    previous period's questions (a ranged filter moved back by its length) search indexes too."""
    db = tmp_path / "b.sqlite"
    with Store(db) as store:
        for signal, message in two_apps():
            store.write(signal, flatten(signal, message))
    conn = open_readonly(db)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    engine = SQLiteEngine(conn)
    for what, command in (("command", "migrate"), ("command", None), ("startup", None), ("session_length", None),
                          ("exit", None)):
        distribution(engine, report_filter, what, command)
    before = previous_period(report_filter, ns(10)) or Filter(report_filter.service, report_filter.version,
                                                              ns(1) // DAY_NS, ns(4) // DAY_NS)
    comparison = report_from(engine, before, now_ns=ns(10))["comparison"]
    assert comparison is not None
    conn.set_trace_callback(None)
    assert len({s for s in statements if s.lstrip().upper().startswith("SELECT")}) >= 10
    assert_no_full_scan(conn, statements)
    conn.close()


@pytest.mark.parametrize("report_filter", FILTERS, ids=repr)
def test_no_full_scan_on_the_report_path(tmp_path: Path, report_filter: Filter) -> None:
    db = tmp_path / "b.sqlite"
    with Store(db) as store:
        for signal, message in two_apps():
            store.write(signal, flatten(signal, message))
    conn = open_readonly(db)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    report = report_from(SQLiteEngine(conn), report_filter, now_ns=ns(10))
    conn.set_trace_callback(None)
    assert report["totals"]["invocations"] > 0 or report_filter.since_day is not None
    selects = sorted({s for s in statements if s.lstrip().upper().startswith("SELECT")})
    assert len(selects) >= 15  # every section's query was seen
    assert any("FROM r_error" in sql for sql in selects)  # errors by stack signature
    for sql in selects:
        for row in conn.execute("EXPLAIN QUERY PLAN " + sql):
            step = str(row[-1])
            match = re.match(r"SCAN (\S+)", step)
            if match is None:
                continue
            table = match.group(1)
            assert table in BOUNDED or table.startswith("(subquery"), f"{step} in: {sql}"
    conn.close()


def test_wal_is_checkpointed_and_truncated_past_its_limit(tmp_path: Path) -> None:
    """A store kept busy (a connection that never closes, as the server's) does not grow its WAL without
    bound: past the limit the server's writer checkpoints and truncates it after its commit."""
    from otel_expansion.backend import server
    from otel_expansion.backend.limits import Limits

    db = tmp_path / "b.sqlite"
    keeper = Store(db)  # stays open, like the server's connections: no checkpoint-on-close
    writer = server._Writer(db, Limits(), 0.0, wal_limit_bytes=64 * 1024)
    wal = Path(str(db) + "-wal")
    try:
        for _ in range(20):
            for signal, message in two_apps():
                writer.submit((signal, flatten(signal, message), None))
    finally:
        writer.close()
    assert writer.wal_checkpoints > 0
    assert wal.stat().st_size <= 64 * 1024
    keeper.close()
    assert open_readonly(db).execute("SELECT COUNT(*) FROM r_metric").fetchone()[0] > 0
