"""Group commit: several requests in one transaction store exactly what they store one at a time.

The server's single writer hands every queued request to ``Store.write_group``; these tests compare its
tables with the same requests written one by one, check that a failing request is rolled back alone, and
that concurrent senders over HTTP get 200 only for what is stored.
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from otel_expansion.backend.ingest import ResourceData, flatten
from otel_expansion.backend.store import Store, WriteResult
from otel_expansion.otlp import exponential
from otel_expansion.otlp.model import BATCH_ID_HEADER

from .conftest import (
    CUMULATIVE,
    LINUX,
    REMOTE_ADD,
    STATUS,
    LiveServer,
    kvs,
    metrics_request,
    ns,
    span,
    sum_metric,
    traces_request,
    two_apps,
)

# every table a report reads, and the bookkeeping ingest keeps; the columns that are not ingest times
TABLES = {
    "r_metric": "*",
    "r_bucket": "*",
    "r_exp": "metric, grain, day, service, version, command, label, buckets",
    "app_days": "*",
    "r_env": "*",
    "active": "*",
    "active_count": "*",
    "installations": "*",
    "sessions": "*",
    "r_session": "*",
    "cumulative": "*",
    "dim_values": "*",
    "limits": "*",
    "counters": "*",
    "seen_batches": "batch_id, signal",
    "metric_points": "name, kind, attributes, start_ns, end_ns, value, count, sum, min, max, bounds, bucket_counts",
    "spans": "trace_id, span_id, name, session_id, start_ns, end_ns",
    "logs": "time_ns, body",
}


def exp_metric(points: list[tuple[dict[str, Any], list[float], int]], temporality: int = 1) -> metrics_pb2.Metric:
    """A base-2 exponential histogram of the given values per point, as the SDK's views send it."""
    out = []
    for attrs, values, end in points:
        b = exponential.from_values(values)
        point = metrics_pb2.ExponentialHistogramDataPoint(
            attributes=kvs(attrs), start_time_unix_nano=ns(1, 0), time_unix_nano=end, count=len(values),
            sum=sum(values), min=min(values), max=max(values), scale=b.scale, zero_count=b.zero_count)
        point.positive.offset = b.offset
        point.positive.bucket_counts.extend(b.counts)
        out.append(point)
    return metrics_pb2.Metric(name="cli.command.duration", unit="s", exponential_histogram=(
        metrics_pb2.ExponentialHistogram(data_points=out, aggregation_temporality=temporality)))


def requests() -> list[tuple[str, list[ResourceData], str | None]]:
    """Two apps' known data, exponential durations (delta and cumulative), repeated sessions and batches."""
    rng = random.Random(5)
    out: list[tuple[str, list[ResourceData], str | None]] = [
        (signal, flatten(signal, message), None) for signal, message in two_apps()
    ]
    for i in range(6):
        values = [rng.lognormvariate(-3, 2) for _ in range(50)]
        delta = exp_metric([(REMOTE_ADD, values, ns(1 + i % 3)), (STATUS, values[:7], ns(2))])
        out.append(("metrics", flatten("metrics", metrics_request((LINUX, [delta]))), f"exp-{i}"))
        cumulative = exp_metric([(STATUS, values[: 10 + i], ns(4, 1 + i))], CUMULATIVE)
        out.append(("metrics", flatten("metrics", metrics_request((LINUX, [cumulative]))), f"cum-{i}"))
        spans = [span("status", {**STATUS, "session.id": f"s-{i % 2}"}, ns(5, i), ns(5, i) + 10**9, 100 + i, j)
                 for j in range(1, 4)]
        out.append(("traces", flatten("traces", traces_request((LINUX, spans))), f"sp-{i}"))
    out.append(out[-1])  # a retried batch: dropped
    out.append(("metrics", flatten("metrics", metrics_request(
        (LINUX, [sum_metric("cli.command.invocations", [(STATUS, 4, ns(6))])]))), "sum-1"))
    return out


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        return {table: sorted(conn.execute(f"SELECT {columns} FROM {table}").fetchall(), key=repr)
                for table, columns in TABLES.items()}


def same(a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]]) -> None:
    """Equal tables; REAL sums may differ in the last bits only (another order of float additions)."""
    assert a.keys() == b.keys()
    for table in a:
        assert len(a[table]) == len(b[table]), table
        for x, y in zip(a[table], b[table], strict=True):
            for u, v in zip(x, y, strict=True):
                if isinstance(u, float) and isinstance(v, float) and not (math.isnan(u) and math.isnan(v)):
                    assert u == pytest.approx(v, rel=1e-12, abs=1e-12), (table, x, y)
                else:
                    assert u == v, (table, x, y)


def test_group_stores_what_requests_one_by_one_store(tmp_path: Path) -> None:
    """Every rollup, session, counter and raw row: one group == the same requests one transaction each."""
    todo = requests()
    with Store(tmp_path / "one.sqlite") as store:
        one = [store.write(*request) for request in todo]
    with Store(tmp_path / "group.sqlite") as store:
        grouped = store.write_group(todo[:9]) + store.write_group(todo[9:])
    assert grouped == one
    assert sum(r.duplicates for r in one) == 1
    expected = snapshot(tmp_path / "one.sqlite")
    assert expected["r_exp"] and expected["sessions"] and expected["r_metric"]
    same(snapshot(tmp_path / "group.sqlite"), expected)


def test_failing_request_is_rolled_back_alone(tmp_path: Path) -> None:
    """An unstorable request in a group gets its exception; the others are stored, its rows are not."""
    good = ("metrics", flatten("metrics", metrics_request(
        (LINUX, [sum_metric("cli.command.invocations", [(STATUS, 4, ns(1))])]))), "good")
    # a timestamp beyond SQLite's signed 64-bit range, after a first resource that stores fine
    bad = ("traces", flatten("traces", traces_request(
        (LINUX, [span("status", STATUS, ns(1), ns(1) + 5, 1, 1)]),
        (LINUX, [span("x", {}, 2**64 - 1, 2**64 - 1, 2, 2)]))), "bad")
    also = ("metrics", flatten("metrics", metrics_request(
        (LINUX, [sum_metric("cli.command.invocations", [(STATUS, 3, ns(1))])]))), "also")
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        results = store.write_group([good, bad, also, good])
        assert isinstance(results[1], OverflowError)
        assert [r for i, r in enumerate(results) if i != 1] == [
            WriteResult(1, 0, 0, 1, 0), WriteResult(1, 0, 0, 1, 0), WriteResult(0, 1, 0, 0, 0)]
        with pytest.raises(OverflowError):  # write() raises what its request raised
            store.write(*bad)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM seen_batches WHERE batch_id LIKE 'bad%'").fetchone()[0] == 0
        assert conn.execute(
            "SELECT value FROM r_metric WHERE metric = 'cli.command.invocations' AND grain = 1"
        ).fetchall() == [(7.0,)]


def test_concurrent_senders_all_stored_exactly(live_server: LiveServer) -> None:
    """Eight senders, each request answered 200 only once stored: the invocation total is exact."""
    statuses: list[int] = []

    def send(s: int) -> None:
        for i in range(15):
            request = metrics_request((LINUX, [sum_metric("cli.command.invocations", [(STATUS, s + 1, ns(1))])]))
            statuses.append(live_server.post("metrics", request, headers={BATCH_ID_HEADER: f"{s}-{i}"}).status)
        statuses.append(live_server.post("metrics", request, headers={BATCH_ID_HEADER: f"{s}-0"}).status)

    threads = [threading.Thread(target=send, args=(s,)) for s in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * (8 * 16)
    with sqlite3.connect(live_server.db_path) as conn:
        assert conn.execute(
            "SELECT SUM(value) FROM r_metric WHERE metric = 'cli.command.invocations' AND grain = 1"
        ).fetchone()[0] == 15 * sum(range(1, 9))


def test_resent_spans_counted_once(tmp_path: Path) -> None:
    """Spans already stored (or twice in one request) are inserted and counted in their session once."""
    attrs = {**STATUS, "session.id": "s-9"}
    a, b, c = (span("status", attrs, ns(2, h), ns(2, h) + 10**9, 7, h) for h in (1, 2, 3))
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        first = store.write("traces", flatten("traces", traces_request((LINUX, [a, b]))), "t-1")
        again = store.write("traces", flatten("traces", traces_request((LINUX, [a, c, c]))), "t-2")
        grouped = store.write_group([("traces", flatten("traces", traces_request((LINUX, [b, c]))), "t-3")])
    assert (first.spans, again.spans, grouped) == (2, 1, [WriteResult(1, 0, 0, 0, 0)])
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 3
        assert conn.execute("SELECT commands FROM sessions WHERE session_id = 's-9'").fetchall() == [(3,)]
        assert conn.execute("SELECT SUM(n) FROM r_session WHERE kind = 'commands'").fetchone()[0] == 1
