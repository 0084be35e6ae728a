"""Open days: points of a day not yet over write their daily rollup rows only; each day is added to its
week's rows once, from its daily rows, when it is over.

The reference store writes both tiers for every point (every day of its data closed, as every day was before
open days): the open store's report must equal it while the days are open (read from daily rows), and its
tables must equal it once they are closed; a store an older release wrote (both tiers, no open day) must never
have a day added to its weeks twice.
"""

from __future__ import annotations

import math
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.backend.ingest import ResourceData, flatten
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import report_from
from otel_expansion.backend.rollup import DAY_NS, week_of
from otel_expansion.backend.store import Store, open_readonly

from .conftest import LINUX, REMOTE_ADD, STATUS, hist_metric, metrics_request, ns, span, sum_metric, traces_request
from .test_group_commit import exp_metric, requests, same, snapshot

FIRST_DAY = ns(1) // DAY_NS
LAST_DAY = 31
NOW_DAY = ns(LAST_DAY) // DAY_NS + 3
NOW = NOW_DAY * DAY_NS + 5 * 3600 * 10**9  # early on a day after the data
BOUNDS = [0.1, 0.5, 1.0, 5.0]


def month() -> list[tuple[str, list[ResourceData], str | None]]:
    """The group-commit data (May 1-6, 2024) plus a month of sums, exponential and explicit histograms, error
    counters with signatures and sessions, on every day of May 2024 (five Monday-based weeks)."""
    rng = random.Random(9)
    out = requests()
    for day in range(1, LAST_DAY + 1):
        values = [rng.lognormvariate(-2, 1.5) for _ in range(rng.randint(1, 30))]
        failed = {**REMOTE_ADD, "cli.command.outcome": "error", "error.type": "ValueError"}
        metrics = [
            sum_metric("cli.command.invocations", [(STATUS, day % 5 + 1, ns(day)), (failed, 2, ns(day, 9))]),
            sum_metric("cli.command.errors", [({"cli.command.name": "remote add", "error.type": "ValueError",
                                                "cli.error.signature": f"app.cli:main > app.lib{day % 3}:run"},
                                               2, ns(day, 9))]),
            exp_metric([(STATUS, values, ns(day, 1 + day % 20)), (failed, values[:3], ns(day, 9))]),
            hist_metric("cli.startup.duration", BOUNDS, [(STATUS, [day % 2, 1, 0, 2, 0], 4.0, 0.05, 3.0, ns(day))]),
        ]
        out.append(("metrics", flatten("metrics", metrics_request((LINUX, metrics))), f"month-{day}"))
        spans = [span("status", {**STATUS, "session.id": f"m-{day // 3}"}, ns(day, h), ns(day, h) + 10**9, 900 + day,
                      h) for h in (2, 3)]
        out.append(("traces", flatten("traces", traces_request((LINUX, spans))), f"month-sp-{day}"))
    return out


def write(db: Path, open_from: int, now: int) -> Store:
    """A store whose first open day is ``open_from``, its clock at ``now``, with the month written."""
    store = Store(db)
    store.clock = lambda: now
    store.write_group([])  # creates the meta row...
    store._conn.execute("UPDATE meta SET value = ? WHERE key = 'weekly_from_day'", (str(open_from),))
    store._open_day = None  # ...and this one is read again
    for request in month():
        outcome = store.write(*request)
        assert outcome is not None
    return store


def approx_equal(a: Any, b: Any, path: str = "") -> None:
    """Equal reports; floats may differ in the last bits (sums added in another order)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            approx_equal(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            approx_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not math.isnan(a):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


FILTERS = [
    Filter.from_ns(None, None, None, None),
    Filter.from_ns(None, None, ns(3), ns(24)),  # two whole weeks and edge days
    Filter.from_ns(None, None, ns(6), None),  # from a Monday on, unbounded
    Filter.from_ns("gitx", None, ns(2), ns(30)),
    Filter.from_ns(None, None, ns(13), ns(19)),  # exactly one week
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("days")
    closed = write(tmp / "closed.sqlite", NOW_DAY, NOW)  # every day of the data closed: both tiers per point
    closed.close()
    opened = write(tmp / "open.sqlite", FIRST_DAY, ns(1, 1))  # every day open: daily rows only
    opened.close()
    return {"closed": tmp / "closed.sqlite", "open": tmp / "open.sqlite"}


TIERED = ("r_metric", "r_bucket", "r_exp", "r_env", "r_error")


def test_open_days_write_daily_rows_only(stores: dict[str, Path]) -> None:
    with sqlite3.connect(stores["open"]) as conn:
        for table in TIERED:
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE grain = 7").fetchone()[0] == 0, table
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE grain = 1").fetchone()[0] > 0, table
    with sqlite3.connect(stores["closed"]) as conn:
        for table in TIERED:
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE grain = 7").fetchone()[0] > 0, table


@pytest.mark.parametrize("f", FILTERS, ids=["all", "whole-weeks", "unbounded", "app", "one-week"])
def test_report_over_open_days_equals_both_tiers(stores: dict[str, Path], f: Filter) -> None:
    """Read from the daily tier while days are open: the same report as from closed days."""
    expected_engine = SQLiteEngine(open_readonly(stores["closed"]))
    open_engine = SQLiteEngine(open_readonly(stores["open"]))
    try:
        expected = report_from(expected_engine, f, NOW)
        assert expected["totals"]["invocations"] > 0
        approx_equal(report_from(open_engine, f, NOW), expected)
    finally:
        expected_engine.close()
        open_engine.close()


def test_closing_days_writes_what_both_tiers_wrote(stores: dict[str, Path], tmp_path: Path) -> None:
    """A later write adds every open day to its week: then the tables equal those written with both tiers per
    point. An engine opened before the days closed reads each question in one snapshot: no day twice."""
    db = tmp_path / "open.sqlite"
    shutil.copy(stores["open"], db)
    engine = SQLiteEngine(open_readonly(db))
    before = report_from(engine, FILTERS[0], NOW)
    store = Store(db)
    store.clock = lambda: NOW
    assert store.write_group([]) == []
    store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'weekly_from_day'").fetchone() == (str(NOW_DAY),)
    same(weekly_rows(db), weekly_rows(stores["closed"]))
    same(snapshot(db), snapshot(stores["closed"]))
    approx_equal(report_from(engine, FILTERS[0], NOW), before)
    engine.close()


def weekly_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        return {table: sorted(conn.execute(f"SELECT * FROM {table} WHERE grain = 7").fetchall(), key=repr)
                for table in TIERED}


def weeks_add_up(db: Path) -> None:
    """Every weekly invocation count is the sum of its days' counts: no day missing, none counted twice."""
    with sqlite3.connect(db) as conn:
        weekly = conn.execute("SELECT day, service, version, command, SUM(value) FROM r_metric WHERE grain = 7"
                              " AND metric = 'cli.command.invocations' GROUP BY 1, 2, 3, 4").fetchall()
        daily = conn.execute("SELECT (day + 3) / 7, service, version, command, SUM(value) FROM r_metric"
                             " WHERE grain = 1 AND metric = 'cli.command.invocations' GROUP BY 1, 2, 3, 4").fetchall()
    assert weekly and sorted(weekly) == sorted(daily)


def invocations(day_ns: int, n: int) -> tuple[str, list[ResourceData], str | None]:
    return ("metrics", flatten("metrics", metrics_request(
        (LINUX, [sum_metric("cli.command.invocations", [(STATUS, n, day_ns)])]))), None)


def test_older_release_store_never_counts_a_day_twice(stores: dict[str, Path], tmp_path: Path) -> None:
    """A store an older release wrote (both tiers for every point, today's too, and no open day): this release
    starts after the last day it holds, so that day is never added to its week again."""
    db = tmp_path / "old.sqlite"
    shutil.copy(stores["closed"], db)
    store = Store(db)
    store.clock = lambda: NOW
    store.write_group([])
    store._conn.execute("UPDATE meta SET value = ? WHERE key = 'weekly_from_day'", (str(NOW_DAY + 1),))
    store._open_day = None
    store.write(*invocations(NOW - 3600 * 10**9, 5))  # today's point, both tiers, as an older release wrote
    store.close()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'weekly_from_day'")  # as an older release left it
    expected = weekly_rows(db)
    for day in (0, 1, 2):
        store = Store(db)
        store.clock = lambda day=day: NOW + day * DAY_NS
        store.write_group([])
        store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'weekly_from_day'").fetchone() == (str(NOW_DAY + 2),)
    same(weekly_rows(db), expected)
    weeks_add_up(db)


def test_late_point_of_a_closed_day_writes_both_tiers(tmp_path: Path) -> None:
    """After its day closed, a point still reaches the weekly rows (and an open day's point does not, until its
    day is over)."""
    db = tmp_path / "late.sqlite"
    store = Store(db)
    store.clock = lambda: NOW
    store.write_group([invocations(ns(8), 3), invocations(NOW - 3600 * 10**9, 4)])
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT grain, day, value FROM r_metric ORDER BY grain, day").fetchall()
    assert rows == [(1, ns(8) // DAY_NS, 3.0), (1, NOW_DAY, 4.0), (7, week_of(ns(8) // DAY_NS), 3.0)]
    store.clock = lambda: NOW + DAY_NS
    store.write(*invocations(NOW + DAY_NS, 2))
    store.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT grain, day, value FROM r_metric WHERE grain = 7 ORDER BY day").fetchall()
    assert rows == [(7, week_of(ns(8) // DAY_NS), 3.0), (7, week_of(NOW_DAY), 4.0)]  # the 2 is today's: open
    store = Store(db)
    store.clock = lambda: NOW + 2 * DAY_NS
    store.write_group([])
    store.close()
    weeks_add_up(db)


def test_engine_inside_a_callers_transaction_reads_open_days(stores: dict[str, Path]) -> None:
    """A connection already in a read transaction: the engine still reads which days are open (in it)."""
    conn = open_readonly(stores["open"])
    conn.execute("BEGIN")
    engine = SQLiteEngine(conn)
    expected_engine = SQLiteEngine(open_readonly(stores["closed"]))
    try:
        approx_equal(report_from(engine, FILTERS[0], NOW), report_from(expected_engine, FILTERS[0], NOW))
        assert conn.in_transaction
    finally:
        engine.close()
        expected_engine.close()
