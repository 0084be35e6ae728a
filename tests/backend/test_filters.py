"""Every section honours the app and version filters, on the embedded store and on ClickHouse (chDB).

A filtered report over the whole store must equal the unfiltered report of a store that only ever
received that app's (or that app version's) data: same apps table, versions, commands, errors, sessions,
environment, features, health... Only what describes the store itself may differ (the app catalog the
pickers offer, stored row counts, ingest limits, the echoed filter). ``days=N`` is N UTC days.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from otel_expansion.backend.ingest import flatten
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import report_from
from otel_expansion.backend.rollup import DAY_NS
from otel_expansion.backend.server import parse_filter
from otel_expansion.backend.store import Store, open_readonly

from .chdb_loader import ChdbDatabase
from .conftest import ns, two_apps

NOW = ns(10, 12) + 10 * 60 * 10**9
CASES = [("gitx", None), ("dbtool", None), ("dbtool", "2.0.0"), ("dbtool", "2.1.0"), (None, "1.3.0")]
STORE_ONLY = ("generated_ns", "stored", "limits", "filter", "catalog")


def _resource_attrs(resource: Any) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in resource.attributes}


def subset(service: str | None, version: str | None) -> list[tuple[str, Any]]:
    """two_apps() with only the resources of that app / version."""
    out = []
    for signal, message in two_apps():
        message = copy.deepcopy(message)
        field = {"metrics": "resource_metrics", "traces": "resource_spans", "logs": "resource_logs"}[signal]
        kept = [r for r in getattr(message, field)
                if (service is None or _resource_attrs(r.resource).get("service.name") == service)
                and (version is None or _resource_attrs(r.resource).get("service.version") == version)]
        message.ClearField(field)
        getattr(message, field).extend(kept)
        out.append((signal, message))
    return out


def engines_for(tmp: Path, data: list[tuple[str, Any]]) -> tuple[SQLiteEngine, ChdbDatabase]:
    chdb = ChdbDatabase()
    with Store(tmp / "b.sqlite") as store:
        for signal, message in data:
            store.write(signal, flatten(signal, message))
            chdb.load(signal, message)
    return SQLiteEngine(open_readonly(tmp / "b.sqlite")), chdb


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in STORE_ONLY}


@pytest.mark.parametrize(("service", "version"), CASES)
def test_filtered_report_equals_the_report_of_only_that_data(tmp_path: Path, service: str | None,
                                                             version: str | None) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "only").mkdir()
    full_sqlite, full_chdb = engines_for(tmp_path / "full", two_apps())
    only_sqlite, only_chdb = engines_for(tmp_path / "only", subset(service, version))
    try:
        f = Filter(service=service, version=version)
        expected = comparable(report_from(only_sqlite, Filter(), now_ns=NOW))
        assert expected["totals"]["invocations"] > 0
        for engine in (full_sqlite, full_chdb.engine()):
            got = comparable(report_from(engine, f, now_ns=NOW))
            for section in expected:
                assert got[section] == expected[section], (section, type(engine).__name__)
        assert comparable(report_from(only_chdb.engine(), Filter(), now_ns=NOW)) == expected
        apps = report_from(full_sqlite, f, now_ns=NOW)["apps"]
        assert apps
        assert all(service in (None, a["service"]) and version in (None, a["version"]) for a in apps)
        catalog = report_from(full_sqlite, f, now_ns=NOW)["catalog"]
        assert {a["service"] for a in catalog} == {"gitx", "dbtool"}  # the pickers still offer every app
    finally:
        full_sqlite.close()
        only_sqlite.close()
        full_chdb.close()
        only_chdb.close()


@pytest.mark.parametrize("days", [1, 7, 30])
def test_days_n_is_n_utc_days(days: int) -> None:
    now = ns(20, 15)
    f = parse_filter({"days": [str(days)]}, now)
    assert f.since_day is not None
    assert now // DAY_NS - f.since_day + 1 == days  # today and the days - 1 before it
