"""Load OTLP requests into chDB the way the collector's ClickHouse exporter writes them.

Mirrors what exporter/clickhouseexporter (v0.161.0) appends per data point or span: attribute maps with
every value rendered by pcommon ``AsString`` (booleans ``true``/``false``, integers in decimal), the
service name lifted from the resource, metric times truncated to seconds (``DateTime`` columns), span
start as ``Timestamp`` (``DateTime64(9)``) and ``Duration`` in nanoseconds, ``SpanKind``/``StatusCode``
as the pdata enum names.
"""

from __future__ import annotations

import json
from typing import Any

from otel_expansion.backend.clickhouse import ClickHouseEngine
from otel_expansion.backend.rollup import as_string
from tests.backend.clickhouse_ddl import render

DATABASE = "otel_expansion"
_created = [0]
_KINDS = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
_STATUS = {0: "Unset", 1: "Ok", 2: "Error"}


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _map(key_values: Any) -> str:
    items = ", ".join(f"{_q(kv.key)}, {_q(as_string(_value(kv.value)))}" for kv in key_values)
    return f"map({items})" if items else "map()"


def _q(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _float(x: float) -> str:
    return repr(float(x)) if x == x and abs(x) != float("inf") else ("inf" if x > 0 else "-inf")


class ChdbDatabase:
    """An in-process ClickHouse holding the exporter's tables."""

    def __init__(self) -> None:
        from chdb import session

        _created[0] += 1  # chDB sessions in one process share state: each instance gets its own database
        self.database = f"{DATABASE}_{_created[0]}"
        self.session = session.Session()
        self.session.query(f"DROP DATABASE IF EXISTS {self.database}")
        self.session.query(f"CREATE DATABASE {self.database}")
        for statement in render(self.database):
            self.session.query(statement)

    def run(self, sql: str) -> list[list[Any]]:
        result = self.session.query(sql, "JSONCompact")
        text = result.bytes().decode() if hasattr(result, "bytes") else str(result)
        return list(json.loads(text)["data"]) if text.strip() else []

    def engine(self) -> ClickHouseEngine:
        return ClickHouseEngine(self.run, self.database)

    def close(self) -> None:
        self.session.close()

    def load(self, signal: str, request: Any) -> None:
        rows: dict[str, list[str]] = {}
        if signal == "metrics":
            for rm in request.resource_metrics:
                res = rm.resource.attributes
                service = next((as_string(_value(kv.value)) for kv in res if kv.key == "service.name"), "")
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        kind = metric.WhichOneof("data")
                        common = f"{_map(res)}, '', {_q(sm.scope.name)}, {_q(sm.scope.version)}, map(), 0, '', " \
                                 f"{_q(service)}, {_q(metric.name)}, {_q(metric.description)}, {_q(metric.unit)}"
                        for p in getattr(metric, kind).data_points:
                            start, end = p.start_time_unix_nano // 10**9, p.time_unix_nano // 10**9
                            times = f"toDateTime({start}), toDateTime({end})"
                            if kind == "sum":
                                number = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                                rows.setdefault("otel_metrics_sum", []).append(
                                    f"({common}, {_map(p.attributes)}, {times}, {_float(number)}, {p.flags},"
                                    f" [], [], [], [], [], {metric.sum.aggregation_temporality},"
                                    f" {str(metric.sum.is_monotonic).lower()})"
                                )
                            elif kind == "gauge":
                                number = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                                rows.setdefault("otel_metrics_gauge", []).append(
                                    f"({common}, {_map(p.attributes)}, {times}, {_float(number)}, {p.flags},"
                                    " [], [], [], [], [])"
                                )
                            elif kind == "histogram":
                                rows.setdefault("otel_metrics_histogram", []).append(
                                    f"({common}, {_map(p.attributes)}, {times}, {p.count}, {_float(p.sum)},"
                                    f" {list(p.bucket_counts)}, [{', '.join(_float(b) for b in p.explicit_bounds)}],"
                                    f" [], [], [], [], [], {p.flags}, {_float(p.min)}, {_float(p.max)},"
                                    f" {metric.histogram.aggregation_temporality})"
                                )
                            elif kind == "exponential_histogram":
                                rows.setdefault("otel_metrics_exponential_histogram", []).append(
                                    f"({common}, {_map(p.attributes)}, {times}, {p.count}, {_float(p.sum)},"
                                    f" {p.scale}, {p.zero_count}, {p.positive.offset},"
                                    f" {list(p.positive.bucket_counts)}, {p.negative.offset},"
                                    f" {list(p.negative.bucket_counts)}, [], [], [], [], [], {p.flags},"
                                    f" {_float(p.min)}, {_float(p.max)},"
                                    f" {metric.exponential_histogram.aggregation_temporality})"
                                )
        elif signal == "traces":
            for rs in request.resource_spans:
                res = rs.resource.attributes
                service = next((as_string(_value(kv.value)) for kv in res if kv.key == "service.name"), "")
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        rows.setdefault("otel_traces", []).append(
                            f"(fromUnixTimestamp64Nano({s.start_time_unix_nano}), {_q(s.trace_id.hex())},"
                            f" {_q(s.span_id.hex())}, {_q(s.parent_span_id.hex())}, {_q(s.trace_state)}, {_q(s.name)},"
                            f" {_q(_KINDS[s.kind])}, {_q(service)}, {_map(res)}, {_q(ss.scope.name)},"
                            f" {_q(ss.scope.version)}, {_map(s.attributes)},"
                            f" {s.end_time_unix_nano - s.start_time_unix_nano}, {_q(_STATUS[s.status.code])},"
                            f" {_q(s.status.message)}, [], [], [], [], [], [], [])"
                        )
        for table, values in rows.items():
            self.session.query(f"INSERT INTO {self.database}.{table} VALUES " + ", ".join(values))
