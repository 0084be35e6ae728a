"""OTLP encoding: SDK spans to stored bytes, spool rows to Export*ServiceRequest protobuf or OTLP/JSON.

Only the sender and the in-process pipeline import this (it loads the generated protobuf classes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otel_expansion.otlp.model import (
    BATCH_ID_ATTRIBUTE,
    EXPONENTIAL_HISTOGRAM,
    HISTOGRAM,
    Attrs,
    AttrValue,
    MetricPoint,
    SpanRecord,
)

DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA


def any_value(value: AttrValue | object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def key_values(attrs: Iterable[tuple[str, object]]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs]


def span_to_proto(span: Any) -> bytes:
    """One finished SDK ReadableSpan (already redacted) as OTLP ``Span`` bytes, by the OTLP exporter
    family's own encoder (ids, flags, trace state, events, links, status and dropped counts as the
    stock exporters send them)."""
    request = encode_spans([span])
    return bytes(request.resource_spans[0].scope_spans[0].spans[0].SerializeToString())


def _resource(attrs: Attrs, batch_id: str | None) -> Resource:
    kv = list(attrs)
    if batch_id:
        kv.append((BATCH_ID_ATTRIBUTE, batch_id))
    return Resource(attributes=key_values(kv))


def traces_request(spans: Sequence[SpanRecord], batch_id: str | None = None) -> ExportTraceServiceRequest:
    """Group spans by resource and scope, as OTLP wants them."""
    req = ExportTraceServiceRequest()
    groups: dict[Attrs, dict[tuple[str, str], list[bytes]]] = {}
    for rec in spans:
        groups.setdefault(rec.resource, {}).setdefault((rec.scope_name, rec.scope_version), []).append(rec.data)
    for resource, scopes in groups.items():
        rs = req.resource_spans.add()
        rs.resource.CopyFrom(_resource(resource, batch_id))
        for (name, version), items in scopes.items():
            ss = rs.scope_spans.add()
            ss.scope.CopyFrom(InstrumentationScope(name=name, version=version))
            for data in items:
                ss.spans.add().ParseFromString(data)
    return req


def metrics_request(points: Sequence[MetricPoint], batch_id: str | None = None) -> ExportMetricsServiceRequest:
    """Group points by resource, scope and metric; every point is a delta."""
    req = ExportMetricsServiceRequest()
    groups: dict[Attrs, dict[tuple[str, str], dict[tuple[str, str, str, str, bool], list[MetricPoint]]]] = {}
    for p in points:
        k = p.key
        metric_id = (k.name, k.kind, k.unit, k.description, k.is_monotonic)
        groups.setdefault(k.resource, {}).setdefault((k.scope_name, k.scope_version), {}).setdefault(
            metric_id, []
        ).append(p)
    for resource, scopes in groups.items():
        rm = req.resource_metrics.add()
        rm.resource.CopyFrom(_resource(resource, batch_id))
        for (sname, sversion), metrics in scopes.items():
            sm = rm.scope_metrics.add()
            sm.scope.CopyFrom(InstrumentationScope(name=sname, version=sversion))
            for (name, kind, unit, description, monotonic), pts in metrics.items():
                m = sm.metrics.add(name=name, unit=unit, description=description)
                if kind == HISTOGRAM:
                    m.histogram.aggregation_temporality = DELTA
                    for p in pts:
                        dp = m.histogram.data_points.add(
                            start_time_unix_nano=p.start_ns,
                            time_unix_nano=p.time_ns,
                            count=p.count,
                            sum=p.sum,
                            bucket_counts=list(p.bucket_counts),
                            explicit_bounds=list(p.key.bounds),
                            attributes=key_values(p.key.attributes),
                        )
                        if p.count:
                            dp.min, dp.max = p.min, p.max
                elif kind == EXPONENTIAL_HISTOGRAM:
                    m.exponential_histogram.aggregation_temporality = DELTA
                    for p in pts:
                        edp = m.exponential_histogram.data_points.add(
                            start_time_unix_nano=p.start_ns,
                            time_unix_nano=p.time_ns,
                            count=p.count,
                            sum=p.sum,
                            scale=p.scale,
                            zero_count=p.zero_count,
                            attributes=key_values(p.key.attributes),
                        )
                        edp.positive.offset = p.offset
                        edp.positive.bucket_counts.extend(p.bucket_counts)
                        if p.negative_counts:
                            edp.negative.offset = p.negative_offset
                            edp.negative.bucket_counts.extend(p.negative_counts)
                        if p.count:
                            edp.min, edp.max = p.min, p.max
                else:
                    m.sum.aggregation_temporality = DELTA
                    m.sum.is_monotonic = monotonic
                    for p in pts:
                        number = m.sum.data_points.add(
                            start_time_unix_nano=p.start_ns,
                            time_unix_nano=p.time_ns,
                            attributes=key_values(p.key.attributes),
                        )
                        if float(p.value).is_integer() and abs(p.value) < 2**63:
                            number.as_int = int(p.value)
                        else:
                            number.as_double = float(p.value)
    return req


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any) -> None:
    """OTLP/JSON carries ids as hex, where protobuf's JSON mapping would use base64."""
    import base64

    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def to_dict(message: Any) -> dict[str, Any]:
    """The OTLP/JSON form of a message: lowerCamelCase keys, enums as numbers, ids as hex."""
    from google.protobuf.json_format import MessageToDict

    data: dict[str, Any] = MessageToDict(message, use_integers_for_enums=True, preserving_proto_field_name=False)
    _hex_ids(data)
    return data


def to_json(message: Any) -> bytes:
    return json.dumps(to_dict(message), separators=(",", ":")).encode()


def serialize(message: Any, protocol: str) -> bytes:
    return to_json(message) if protocol == "http/json" else bytes(message.SerializeToString())
