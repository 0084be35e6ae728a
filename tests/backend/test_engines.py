"""The same report from the embedded store and from ClickHouse (chDB) holding the exporter's tables.

chDB runs the ClickHouse engine in-process; the tables are created with the clickhouseexporter's own DDL
at the pinned version (clickhouse_ddl.py) and filled the way the exporter fills them (chdb_loader.py).
Every section of the report must be equal, for every filter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.backend.ingest import flatten
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import report_from
from otel_expansion.backend.store import Store, open_readonly

from .chdb_loader import ChdbDatabase
from .conftest import ns, two_apps

DAY = 86400 * 10**9
NOW = ns(10, 12) + 10 * 60 * 10**9  # ten minutes after the last dbtool session ended: it is open
FILTERS = [
    Filter(),
    Filter(service="gitx"),
    Filter(service="dbtool"),
    Filter(service="dbtool", version="2.0.0"),
    Filter(version="1.3.0"),
    Filter(since_day=ns(2) // DAY),
    Filter(since_day=ns(2) // DAY, until_day=ns(3) // DAY),
    Filter(service="dbtool", until_day=ns(9) // DAY),
    Filter(service="nothing-here"),
    # weekly tier + daily edges: 2024-04-29 and 2024-05-06 are Mondays
    Filter(since_day=ns(1) // DAY - 2, until_day=ns(12) // DAY),
    Filter(since_day=ns(2) // DAY, until_day=ns(19) // DAY),
    Filter(since_day=ns(3) // DAY, until_day=ns(10) // DAY),
    Filter(until_day=ns(6) // DAY),
    Filter(service="dbtool", since_day=ns(6) // DAY),
]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SQLiteEngine, Any]]:
    db = tmp_path_factory.mktemp("engines") / "b.sqlite"
    chdb = ChdbDatabase()
    with Store(db) as store:
        for signal, message in two_apps():
            store.write(signal, flatten(signal, message))
            chdb.load(signal, message)
    sqlite = SQLiteEngine(open_readonly(db))
    yield sqlite, chdb.engine()
    sqlite.close()
    chdb.close()


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """Everything but what only one engine can know (stored row counts, ingest limits, the clock)."""
    return {k: v for k, v in report.items() if k not in ("generated_ns", "stored", "limits")}


@pytest.mark.parametrize("report_filter", FILTERS, ids=repr)
def test_every_section_equal_on_both_engines(engines: tuple[SQLiteEngine, Any], report_filter: Filter) -> None:
    sqlite, clickhouse = engines
    embedded = comparable(report_from(sqlite, report_filter, now_ns=NOW))
    fleet = comparable(report_from(clickhouse, report_filter, now_ns=NOW))
    for section in embedded:
        assert embedded[section] == fleet[section], section


def test_two_apps_known_numbers(engines: tuple[SQLiteEngine, Any]) -> None:
    """The sections product teams ask for first, checked by hand on the two-app data set."""
    sqlite, _ = engines
    everything = report_from(sqlite, Filter(), now_ns=NOW)
    assert [(a["service"], a["version"], a["invocations"]) for a in everything["apps"]] == [
        ("dbtool", "2.0.0", 15), ("dbtool", "2.1.0", 21), ("gitx", "1.2.0", 110), ("gitx", "1.3.0", 40)
    ]
    dbtool = report_from(sqlite, Filter(service="dbtool"), now_ns=NOW)
    assert (dbtool["totals"]["invocations"], dbtool["totals"]["errors"]) == (36, 4)
    assert dbtool["totals"]["installations"] == 2
    assert dbtool["errors"]["handled"] == 5 and dbtool["errors"]["unhandled"] == 4
    assert dbtool["errors"]["handled_by_type"] == [
        {"error_type": "KeyError", "count": 4}, {"error_type": "OSError", "count": 1}
    ]
    assert [(v["version"], v["invocations"], v["errors"]) for v in dbtool["versions"]["by_version"]] == [
        ("2.1.0", 21, 1), ("2.0.0", 15, 3)
    ]
    assert dbtool["errors"]["by_command_version"][0] == {
        "command": "migrate", "version": "2.0.0", "invocations": 15, "errors": 3, "error_rate": 0.2
    }
    # start-up: [1, 6, 3, 0, 0] + [0, 2, 2, 1, 0] over (.., 0.05, 0.1, 0.25, 0.5]: rank 7.5 of 15 in (0.05, 0.1]
    assert dbtool["startup"]["count"] == 15
    assert dbtool["startup"]["p50_s"] == pytest.approx(0.05 + 0.05 * 6.5 / 8)
    # sessions: d1 has 3 commands over 501 s, d2 (open: ended 10 minutes before NOW) 1 command over 3 s
    assert (dbtool["sessions"]["count"], dbtool["sessions"]["open"]) == (2, 1)
    assert dbtool["active_installations"]["daily"] == [
        {"day": "2024-05-02", "installations": 1}, {"day": "2024-05-09", "installations": 1},
        {"day": "2024-05-10", "installations": 1},
    ]
    assert [w["installations"] for w in dbtool["active_installations"]["weekly"]] == [1, 2]
    assert dbtool["features"] == [{"feature": "dry-run", "count": 8, "last_7_days": 2, "previous_7_days": 6}]
    assert {"name": "otel_expansion.spool.bytes", "kind": "gauge", "value": 1024,
            "meaning": "otel_expansion.spool.bytes", "unit": ""} in dbtool["health"]["metrics"]
    assert [c["command"] for c in dbtool["commands"]] == ["migrate"]
    assert dbtool["environment"]["os.type"] == [{"value": "windows", "invocations": 36, "share": 1.0}]


def test_time_filter_is_whole_utc_days(engines: tuple[SQLiteEngine, Any]) -> None:
    sqlite, _ = engines
    report = report_from(sqlite, Filter.from_ns(since_ns=ns(3, 23), until_ns=ns(9, 1)), now_ns=NOW)
    assert report["filter"] == {"service": None, "version": None, "since": "2024-05-03", "until": "2024-05-09"}
    assert report["totals"]["invocations"] == 40 + 5


def test_long_bucket_layout_folds_the_same_on_both_engines(tmp_path: Path) -> None:
    """A layout longer than the 32 kept buckets folds its tail into the last one, on either engine."""
    from .conftest import LINUX, REMOTE_ADD, hist_metric, metrics_request

    bounds = [float(b) for b in range(1, 41)]
    counts = [1] * 41
    request = metrics_request((LINUX, [hist_metric("cli.command.duration", bounds, [
        (REMOTE_ADD, counts, 800.0, 0.5, 45.0, ns(1))])]))
    chdb = ChdbDatabase()
    with Store(tmp_path / "l.sqlite") as store:
        store.write("metrics", flatten("metrics", request))
    chdb.load("metrics", request)
    sqlite = SQLiteEngine(open_readonly(tmp_path / "l.sqlite"))
    try:
        embedded = report_from(sqlite, Filter(), now_ns=NOW)["commands"]
        fleet = report_from(chdb.engine(), Filter(), now_ns=NOW)["commands"]
    finally:
        sqlite.close()
        chdb.close()
    assert embedded == fleet
    assert embedded[0]["p50_s"] == pytest.approx(20.5)  # rank 20.5 of 41 falls in (20, 21]
