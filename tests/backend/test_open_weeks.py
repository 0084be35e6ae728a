"""Open weeks: points of a week not yet closed write their daily rollup rows only; the weekly rows are written
once, from the daily ones, when the week closes.

The reference store writes both tiers for every point (every week of its data is closed, as every week was
before open weeks): the open store's report must equal it while the weeks are open (read from daily rows), and
its tables must equal it once they are closed, as must a store whose weekly rows an older release already wrote.
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

FIRST_WEEK = week_of(ns(1) // DAY_NS)
LAST_DAY = 31
AFTER = week_of(ns(LAST_DAY) // DAY_NS) + 1  # the week after the data
NOW = (7 * AFTER - 3) * DAY_NS + 5 * 3600 * 10**9  # early in that week
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
    """A store whose first open week is ``open_from``, its clock at ``now``, with the month written."""
    store = Store(db)
    store.clock = lambda: now
    store.write_group([])  # creates the meta row...
    store._conn.execute("UPDATE meta SET value = ? WHERE key = 'weekly_from'", (str(open_from),))
    store._open_week = None  # ...and this one is read again
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
    tmp = tmp_path_factory.mktemp("weeks")
    closed = write(tmp / "closed.sqlite", AFTER, NOW)  # every week of the data closed: both tiers per point
    closed.close()
    opened = write(tmp / "open.sqlite", FIRST_WEEK, ns(1, 1))  # every week open: daily rows only
    opened.close()
    return {"closed": tmp / "closed.sqlite", "open": tmp / "open.sqlite"}


def test_open_weeks_write_daily_rows_only(stores: dict[str, Path]) -> None:
    with sqlite3.connect(stores["open"]) as conn:
        for table in ("r_metric", "r_bucket", "r_exp", "r_env", "r_error"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE grain = 7").fetchone()[0] == 0, table
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE grain = 1").fetchone()[0] > 0, table
    with sqlite3.connect(stores["closed"]) as conn:
        for table in ("r_metric", "r_bucket", "r_exp", "r_env", "r_error"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE grain = 7").fetchone()[0] > 0, table


@pytest.mark.parametrize("f", FILTERS, ids=["all", "whole-weeks", "unbounded", "app", "one-week"])
def test_report_over_open_weeks_equals_both_tiers(stores: dict[str, Path], f: Filter) -> None:
    """Read from the daily tier while weeks are open: the same report as from closed weeks."""
    expected_engine = SQLiteEngine(open_readonly(stores["closed"]))
    open_engine = SQLiteEngine(open_readonly(stores["open"]))
    try:
        expected = report_from(expected_engine, f, NOW)
        assert expected["totals"]["invocations"] > 0
        approx_equal(report_from(open_engine, f, NOW), expected)
    finally:
        expected_engine.close()
        open_engine.close()


def test_closing_weeks_writes_what_both_tiers_wrote(stores: dict[str, Path], tmp_path: Path) -> None:
    """A later write closes every open week: then the tables equal those written with both tiers per point;
    weekly rows already there (an older release wrote both tiers) are replaced, never added to."""
    for name in ("open", "closed"):
        db = tmp_path / f"{name}.sqlite"
        shutil.copy(stores[name], db)
        store = Store(db)
        store.clock = lambda: NOW
        if name == "closed":  # as an older release left it: weekly rows for every week, no open week yet
            store._conn.execute("UPDATE meta SET value = ? WHERE key = 'weekly_from'", (str(FIRST_WEEK),))
        assert store.write_group([]) == []
        store.close()
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT value FROM meta WHERE key = 'weekly_from'").fetchone() == (str(AFTER),)
        same(weekly_rows(db), weekly_rows(stores["closed"]))
        same(snapshot(db), snapshot(stores["closed"]))


def weekly_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        return {table: sorted(conn.execute(f"SELECT * FROM {table} WHERE grain = 7").fetchall(), key=repr)
                for table in ("r_metric", "r_bucket", "r_exp", "r_env", "r_error")}


def test_late_point_of_a_closed_week_writes_both_tiers(tmp_path: Path) -> None:
    """After its week closed, a point still reaches the weekly rows (and an open week's point does not)."""
    db = tmp_path / "late.sqlite"
    store = Store(db)
    store.clock = lambda: NOW
    late = ("metrics", flatten("metrics", metrics_request(
        (LINUX, [sum_metric("cli.command.invocations", [(STATUS, 3, ns(8))])]))), None)
    current = ("metrics", flatten("metrics", metrics_request(
        (LINUX, [sum_metric("cli.command.invocations", [(STATUS, 4, NOW - 3600 * 10**9)])]))), None)
    store.write_group([late, current])
    store.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT grain, day, value FROM r_metric ORDER BY grain, day").fetchall()
    assert rows == [(1, ns(8) // DAY_NS, 3.0), (1, NOW // DAY_NS - 0, 4.0), (7, week_of(ns(8) // DAY_NS), 3.0)]
