"""100,000 invocations, each its own point, through the real ingest path; the report stays exact.

Marked slow (about a minute of CPU on a 2-core box). Timing is printed, never asserted: the figures
live in benchmarks/bench_backend.py and the README.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from otel_expansion.backend.ingest import flatten
from otel_expansion.backend.query import Filter, SQLiteEngine
from otel_expansion.backend.report import report_from
from otel_expansion.backend.store import Store, open_readonly

from .conftest import LINUX, MAC, hist_metric, metrics_request, ns, sum_metric

INVOCATIONS = 100_000
PER_REQUEST = 1_000
COMMANDS = [f"cmd-{i}" for i in range(10)]


@pytest.mark.slow
def test_hundred_thousand_points(tmp_path: Path) -> None:
    db = tmp_path / "scale.sqlite"
    with Store(db) as store:
        for r in range(INVOCATIONS // PER_REQUEST):
            resource = LINUX if r % 2 else MAC
            points, durations = [], []
            for i in range(PER_REQUEST):
                n = r * PER_REQUEST + i
                failed = n % 10 == 0
                attrs = {"cli.command.name": COMMANDS[n % 10], "cli.command.outcome": "error" if failed else "success",
                         "run.id": n}  # an attribute that makes every point its own series: the worst case
                if failed:
                    attrs["error.type"] = "ValueError"
                day = 1 + n % 28
                points.append((attrs, 1, ns(day)))
                durations.append((attrs, [0, 1, 0], 0.5, 0.5, 0.5, ns(day)))
            request = metrics_request((resource, [sum_metric("cli.command.invocations", points),
                                                  hist_metric("cli.command.duration", [0.1, 1.0], durations)]))
            store.write("metrics", flatten("metrics", request), f"batch-{r}")
    engine = SQLiteEngine(open_readonly(db))
    started = time.perf_counter()
    report = report_from(engine, Filter())
    elapsed = time.perf_counter() - started
    by_app = report_from(engine, Filter(service="gitx", version="1.3.0", since_day=ns(15) // 86400 // 10**9))
    engine.close()
    print(f"report over {INVOCATIONS:,} stored invocations: {elapsed * 1e3:.0f} ms")
    assert report["totals"]["invocations"] == INVOCATIONS
    assert report["totals"]["errors"] == INVOCATIONS // 10
    assert report["stored"]["metric_points"] == 2 * INVOCATIONS
    assert {c["command"]: c["invocations"] for c in report["commands"]} == {c: INVOCATIONS // 10 for c in COMMANDS}
    assert report["totals"]["p50_s"] == pytest.approx(0.5)  # in (0.1, 1.0], clamped to the observed min = max
    assert len(report["usage_by_day"]) == 28
    # MAC (version 1.3.0) sent the even requests; count its points on days 15-28 the way they were made
    expected = sum(1 for n in range(INVOCATIONS) if (n // PER_REQUEST) % 2 == 0 and 1 + n % 28 >= 15)
    assert by_app["totals"]["invocations"] == expected
