"""Shared fixtures for the backend tests: OTLP request builders, a known data set and a live server."""

from __future__ import annotations

import gzip
import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otel_expansion.backend.server import serve

DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE


def ns(day: int, hour: int = 12) -> int:
    """Nanoseconds at 2024-05-<day> <hour>:00 UTC."""
    return int(datetime(2024, 5, day, hour, tzinfo=timezone.utc).timestamp()) * 10**9


def any_value(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(v) for v in value]))
    return common_pb2.AnyValue(string_value=str(value))


def kvs(attrs: dict[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def resource(attrs: dict[str, Any]) -> resource_pb2.Resource:
    return resource_pb2.Resource(attributes=kvs(attrs))


def sum_metric(
    name: str,
    points: list[tuple[dict[str, Any], float, int]],
    *,
    temporality: int = DELTA,
    start: int | None = None,
    unit: str = "",
) -> metrics_pb2.Metric:
    """A monotonic sum; each point is (attributes, value, end_ns)."""
    data = [
        metrics_pb2.NumberDataPoint(
            attributes=kvs(attrs),
            start_time_unix_nano=start if start is not None else end - 10**9,
            time_unix_nano=end,
            **({"as_int": value} if isinstance(value, int) else {"as_double": value}),
        )
        for attrs, value, end in points
    ]
    return metrics_pb2.Metric(
        name=name,
        unit=unit,
        sum=metrics_pb2.Sum(data_points=data, aggregation_temporality=temporality, is_monotonic=True),
    )


def hist_metric(
    name: str,
    bounds: list[float],
    points: list[tuple[dict[str, Any], list[int], float, float, float, int]],
    *,
    temporality: int = DELTA,
    start: int | None = None,
    unit: str = "s",
) -> metrics_pb2.Metric:
    """A histogram; each point is (attributes, bucket counts, sum, min, max, end_ns)."""
    data = [
        metrics_pb2.HistogramDataPoint(
            attributes=kvs(attrs),
            start_time_unix_nano=start if start is not None else end - 10**9,
            time_unix_nano=end,
            count=sum(counts),
            sum=total,
            min=lo,
            max=hi,
            explicit_bounds=bounds,
            bucket_counts=counts,
        )
        for attrs, counts, total, lo, hi, end in points
    ]
    return metrics_pb2.Metric(
        name=name,
        unit=unit,
        histogram=metrics_pb2.Histogram(data_points=data, aggregation_temporality=temporality),
    )


def metrics_request(
    *resources: tuple[dict[str, Any], list[metrics_pb2.Metric]],
) -> metrics_service_pb2.ExportMetricsServiceRequest:
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource(attrs),
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(
                        scope=common_pb2.InstrumentationScope(name="otel_expansion", version="0.1.0"),
                        metrics=metrics,
                    )
                ],
            )
            for attrs, metrics in resources
        ]
    )


def span(
    name: str, attrs: dict[str, Any], start: int, end: int, trace: int, span_id: int, error: bool = False
) -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=trace.to_bytes(16, "big"),
        span_id=span_id.to_bytes(8, "big"),
        name=name,
        kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=kvs(attrs),
        status=trace_pb2.Status(
            code=trace_pb2.Status.STATUS_CODE_ERROR if error else trace_pb2.Status.STATUS_CODE_OK
        ),
    )


def traces_request(
    *resources: tuple[dict[str, Any], list[trace_pb2.Span]],
) -> trace_service_pb2.ExportTraceServiceRequest:
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource(attrs),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        scope=common_pb2.InstrumentationScope(name="otel_expansion"), spans=spans
                    )
                ],
            )
            for attrs, spans in resources
        ]
    )


def logs_request(
    attrs: dict[str, Any], bodies: list[str], time_ns: int
) -> logs_service_pb2.ExportLogsServiceRequest:
    records = [
        logs_pb2.LogRecord(
            time_unix_nano=time_ns,
            severity_number=logs_pb2.SEVERITY_NUMBER_WARN,
            severity_text="WARN",
            body=common_pb2.AnyValue(string_value=body),
            attributes=kvs({"n": i}),
            trace_id=bytes(range(16)),
            span_id=bytes(range(8)),
        )
        for i, body in enumerate(bodies)
    ]
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource(attrs), scope_logs=[logs_pb2.ScopeLogs(log_records=records)]
            )
        ]
    )


# ------------------------------------------------------------------------------------------- known data set

LINUX = {
    "service.name": "gitx",
    "service.version": "1.2.0",
    "telemetry.sdk.name": "opentelemetry",
    "os.type": "linux",
    "os.version": "6.1",
    "host.arch": "amd64",
    "process.runtime.name": "cpython",
    "process.runtime.version": "3.11.7",
    "ci.detected": False,
    "container.detected": False,
    "otel_expansion.installation.id": "inst-a",
}
MAC = {
    **LINUX,
    "service.version": "1.3.0",
    "os.type": "darwin",
    "host.arch": "arm64",
    "process.runtime.version": "3.12.1",
    "ci.detected": True,
    "otel_expansion.installation.id": "inst-b",
}
BOUNDS = [0.1, 0.5, 1.0, 5.0]
REMOTE_ADD = {"cli.command.name": "remote add", "cli.command.outcome": "success"}
REMOTE_ADD_ERR = {
    "cli.command.name": "remote add",
    "cli.command.outcome": "error",
    "error.type": "ConnectionError",
}
STATUS = {"cli.command.name": "status", "cli.command.outcome": "success"}
STATUS_ERR = {"cli.command.name": "status", "cli.command.outcome": "error", "error.type": "ValueError"}


def known_data() -> list[tuple[str, Any]]:
    """Two installations over three days; the numbers every report test checks are derived in test_report."""
    d1, d3 = ns(1), ns(3)
    linux_metrics = [
        sum_metric(
            "cli.command.invocations",
            [(REMOTE_ADD, 60, d1), (REMOTE_ADD_ERR, 20, d1), (STATUS, 30, d1)],
            unit="{invocation}",
        ),
        hist_metric(
            "cli.command.duration",
            BOUNDS,
            [
                (REMOTE_ADD, [0, 30, 30, 0, 0], 40.0, 0.15, 0.99, d1),
                (REMOTE_ADD_ERR, [0, 10, 10, 0, 0], 12.0, 0.2, 0.9, d1),
                (STATUS, [30, 0, 0, 0, 0], 1.5, 0.02, 0.09, d1),
            ],
        ),
        sum_metric(
            "cli.command.errors",
            [({"cli.command.name": "remote add", "error.type": "ConnectionError"}, 20, d1)],
        ),
        sum_metric(
            "cli.feature.usage",
            [({"feature.name": "color-output"}, 12, d1), ({"feature.name": "json-output"}, 3, d1)],
        ),
        hist_metric(
            "cli.session.duration",
            [60.0, 300.0, 900.0, 3600.0],
            [({}, [2, 4, 2, 0, 0], 2000.0, 10.0, 800.0, d1)],
        ),
        hist_metric(
            "cli.session.commands",
            [1.0, 5.0, 10.0, 50.0],
            [({}, [0, 6, 2, 0, 0], 30.0, 2.0, 9.0, d1)],
            unit="{command}",
        ),
        sum_metric(
            "cli.activity",
            [({"activity.hour_of_week": 36}, 100, d1), ({"activity.hour_of_week": 37}, 50, d1)],
        ),
        sum_metric("otel_expansion.export.attempts", [({}, 10, d1)]),
        sum_metric("otel_expansion.export.failures", [({}, 2, d1)]),
        sum_metric(
            "otel_expansion.spool.dropped", [({"reason": "full"}, 3, d1), ({"reason": "expired"}, 1, d1)]
        ),
        hist_metric(
            "otel_expansion.export.duration",
            [0.05, 0.1, 0.5, 1.0],
            [({}, [5, 5, 0, 0, 0], 0.4, 0.01, 0.09, d1)],
        ),
    ]
    mac_metrics = [
        sum_metric("cli.command.invocations", [(REMOTE_ADD, 20, d3), (STATUS, 15, d3), (STATUS_ERR, 5, d3)]),
        hist_metric(
            "cli.command.duration",
            BOUNDS,
            [
                (REMOTE_ADD, [0, 10, 10, 0, 0], 14.0, 0.3, 0.95, d3),
                (STATUS, [10, 5, 0, 0, 0], 1.8, 0.05, 0.45, d3),
                (STATUS_ERR, [0, 5, 0, 0, 0], 1.0, 0.15, 0.3, d3),
            ],
        ),
        sum_metric(
            "cli.command.errors", [({"cli.command.name": "status", "error.type": "ValueError"}, 5, d3)]
        ),
    ]
    spans = traces_request(
        (
            LINUX,
            [
                span(
                    "gitx remote add",
                    {
                        **REMOTE_ADD,
                        "process.executable.name": "gitx",
                        "process.exit.code": 0,
                        "session.id": "s1",
                    },
                    d1,
                    d1 + 5 * 10**8,
                    1,
                    1,
                ),
                span(
                    "gitx status",
                    {**STATUS, "process.executable.name": "gitx", "process.exit.code": 0, "session.id": "s1"},
                    d1 + 10**9,
                    d1 + 11 * 10**8,
                    2,
                    2,
                ),
            ],
        ),
        (
            MAC,
            [
                span(
                    "gitx status",
                    {
                        **STATUS_ERR,
                        "process.executable.name": "gitx",
                        "process.exit.code": 2,
                        "session.id": "s2",
                    },
                    d3,
                    d3 + 2 * 10**8,
                    3,
                    3,
                    error=True,
                )
            ],
        ),
    )
    return [
        ("metrics", metrics_request((LINUX, linux_metrics))),
        ("metrics", metrics_request((MAC, mac_metrics))),
        ("traces", spans),
        ("logs", logs_request(LINUX, ["disk almost full"], d1)),
    ]


# ------------------------------------------------------------------------------------------------ server


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class LiveServer:
    """A real backend on 127.0.0.1 with a private database."""

    port: int
    db_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Response(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            conn.close()

    def post(
        self, signal: str, message: Any, *, gzip_body: bool = False, headers: dict[str, str] | None = None
    ) -> Response:
        body = message.SerializeToString()
        all_headers = {"Content-Type": "application/x-protobuf", **(headers or {})}
        if gzip_body:
            body = gzip.compress(body)
            all_headers["Content-Encoding"] = "gzip"
        return self.request("POST", f"/v1/{signal}", body, all_headers)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """serve() in a thread on a free port; stopped and joined after the test."""
    ports: list[int] = []
    bound = threading.Event()
    stop = threading.Event()
    db_path = tmp_path / "backend.sqlite"

    def ready(port: int) -> None:
        ports.append(port)
        bound.set()

    thread = threading.Thread(
        target=serve,
        kwargs={"host": "127.0.0.1", "port": 0, "db_path": db_path, "ready": ready, "stop": stop, "retention_days": 0},
        daemon=True,
    )
    thread.start()
    assert bound.wait(10), "server did not start"
    yield LiveServer(ports[0], db_path)
    stop.set()
    thread.join(10)
    assert not thread.is_alive(), "server did not stop"


# ---------------------------------------------------------------------------------------- a second app

DBTOOL = {
    "service.name": "dbtool",
    "service.version": "2.0.0",
    "os.type": "windows",
    "host.arch": "amd64",
    "process.runtime.version": "3.12.1",
    "ci.detected": False,
    "container.detected": True,
    "otel_expansion.installation.id": "inst-c",
}
DBTOOL_NEW = {**DBTOOL, "service.version": "2.1.0", "otel_expansion.installation.id": "inst-d"}
MIGRATE = {"cli.command.name": "migrate", "cli.command.outcome": "success"}
MIGRATE_ERR = {"cli.command.name": "migrate", "cli.command.outcome": "error", "error.type": "TimeoutError"}
STARTUP_BOUNDS = [0.05, 0.1, 0.25, 0.5]


def gauge_metric(name: str, points: list[tuple[dict[str, Any], float, int]]) -> metrics_pb2.Metric:
    return metrics_pb2.Metric(
        name=name,
        gauge=metrics_pb2.Gauge(
            data_points=[
                metrics_pb2.NumberDataPoint(
                    attributes=kvs(a), start_time_unix_nano=end - 10**9, time_unix_nano=end, as_double=v
                )
                for a, v, end in points
            ]
        ),
    )


def dbtool_data() -> list[tuple[str, Any]]:
    """A second app over days 2-10: two versions, handled exceptions, start-up times, sessions, a gauge."""
    old = [
        sum_metric("cli.command.invocations", [(MIGRATE, 7, ns(2)), (MIGRATE_ERR, 3, ns(2)), (MIGRATE, 5, ns(9))]),
        hist_metric(
            "cli.command.duration",
            BOUNDS,
            [(MIGRATE, [0, 2, 5, 5, 0], 30.0, 0.2, 4.0, ns(2)), (MIGRATE_ERR, [0, 0, 0, 1, 2], 25.0, 2.0, 9.0, ns(2))],
        ),
        sum_metric("cli.command.errors", [({"cli.command.name": "migrate", "error.type": "TimeoutError"}, 3, ns(2))]),
        sum_metric(
            "cli.exceptions.handled",
            [({"error.type": "KeyError", "exception.handled": True}, 4, ns(2)),
             ({"error.type": "OSError", "exception.handled": True}, 1, ns(9))],
        ),
        hist_metric("cli.startup.duration", STARTUP_BOUNDS, [({}, [1, 6, 3, 0, 0], 1.1, 0.04, 0.2, ns(2))]),
        sum_metric(
            "cli.feature.usage", [({"feature.name": "dry-run"}, 6, ns(2)), ({"feature.name": "dry-run"}, 2, ns(9))]
        ),
        gauge_metric("otel_expansion.spool.bytes", [({}, 4096.0, ns(2)), ({}, 1024.0, ns(9))]),
    ]
    new = [
        sum_metric("cli.command.invocations", [(MIGRATE, 20, ns(10)), (MIGRATE_ERR, 1, ns(10))]),
        hist_metric("cli.command.duration", BOUNDS, [(MIGRATE, [0, 10, 10, 0, 0], 12.0, 0.15, 0.9, ns(10))]),
        sum_metric("cli.command.errors", [({"cli.command.name": "migrate", "error.type": "TimeoutError"}, 1, ns(10))]),
        hist_metric("cli.startup.duration", STARTUP_BOUNDS, [({}, [0, 2, 2, 1, 0], 1.0, 0.06, 0.4, ns(10))]),
        sum_metric("otel_expansion.export.attempts", [({}, 3, ns(10))]),
    ]
    sessions = traces_request(
        (DBTOOL, [span("dbtool migrate", {**MIGRATE, "session.id": "d1"}, ns(2), ns(2) + 10**9, 10, 10),
                  span("dbtool migrate", {**MIGRATE, "session.id": "d1"}, ns(2) + 100 * 10**9,
                       ns(2) + 400 * 10**9, 11, 11),
                  span("dbtool migrate", {**MIGRATE, "session.id": "d1"}, ns(2) + 500 * 10**9,
                       ns(2) + 501 * 10**9, 12, 12)]),
        (DBTOOL_NEW, [span("dbtool migrate", {**MIGRATE, "session.id": "d2"}, ns(10), ns(10) + 3 * 10**9, 13, 13)]),
    )
    return [
        ("metrics", metrics_request((DBTOOL, old))),
        ("metrics", metrics_request((DBTOOL_NEW, new))),
        ("traces", sessions),
    ]


def two_apps() -> list[tuple[str, Any]]:
    return known_data() + dbtool_data()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through Playwright: the Debian ``chromium`` (PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH, else
    ``chromium`` on PATH); Playwright's own browser download is not needed."""
    import os
    import shutil

    from playwright.sync_api import sync_playwright

    executable = os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH") or shutil.which("chromium")
    if not executable:
        pytest.fail("Chromium is required: apt-get install -y chromium (scripts/test.sh does it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()
