"""OTLP/HTTP payloads in, plain rows out: decompression with a cap, decoding, flattening.

Everything here is pure (no sockets, no SQLite) so the server stays thin and each step is testable alone.
Decoding uses the generated opentelemetry-proto classes; OTLP/JSON differs from protobuf's canonical JSON
only in trace and span ids (hex instead of base64), which :func:`decode` converts before parsing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import marshal
import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from otel_expansion.otlp.exponential import Buckets
from otel_expansion.otlp.messages import request_class, response_class
from otel_expansion.otlp.model import BATCH_ID_ATTRIBUTE

__all__ = [
    "BATCH_ID_ATTRIBUTE",
    "JSON",
    "MAX_BODY_BYTES",
    "PROTOBUF",
    "SIGNALS",
    "LogRow",
    "Packed",
    "PayloadError",
    "PointRow",
    "ResourceData",
    "SpanRow",
    "content_id",
    "decode",
    "decompress",
    "digest",
    "encode_response",
    "encode_status",
    "flatten",
    "media_type",
    "session_totals",
]

SIGNALS = ("traces", "metrics", "logs")
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_BODY_BYTES = 32 * 2**20
"""Largest accepted request body, compressed or not: one SDK batch is far below this."""


_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_TEMPORALITY = {1: "delta", 2: "cumulative"}
_NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK


class PayloadError(Exception):
    """A request the receiver refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __reduce__(self) -> tuple[type[PayloadError], tuple[int, str]]:
        return PayloadError, (self.status, self.message)  # crosses from a decoding worker process intact


def media_type(content_type: str | None) -> str | None:
    """The OTLP encoding a Content-Type names (parameters such as charset ignored), else None."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if base == JSON:
        return JSON
    return None


def decompress(body: bytes, encoding: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """Undo Content-Encoding, streaming so a gzip bomb stops at ``limit`` bytes instead of filling memory."""
    coding = (encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        if len(body) > limit:
            raise PayloadError(413, f"body larger than {limit} bytes")
        return body
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise PayloadError(415, f"unsupported Content-Encoding {encoding!r}")
    out = bytearray()
    data = body
    try:
        while data:  # a loop because gzip allows several concatenated members
            inflater = zlib.decompressobj(47 if coding != "deflate" else zlib.MAX_WBITS)
            while data and not inflater.eof:
                out += inflater.decompress(data, limit + 1 - len(out))
                if len(out) > limit:
                    raise PayloadError(413, f"decompressed body larger than {limit} bytes")
                data = inflater.unconsumed_tail
            if not inflater.eof:
                raise PayloadError(400, "truncated compressed body")
            data = inflater.unused_data
    except zlib.error as exc:
        raise PayloadError(400, f"bad {coding} body: {exc}") from None
    return bytes(out)


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON spells ids in hex; protobuf's JSON parser expects base64 for bytes fields."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError:
                    raise PayloadError(400, f"{key} is not hex: {value[:40]!r}") from None
            else:
                value = _hex_ids_to_base64(value)
            out[key] = value
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def decode(signal: str, body: bytes, encoding: str) -> Any:
    """Parse an Export*ServiceRequest; any malformed payload becomes ``PayloadError(400)``."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    message = request_class(signal)()
    if not body:
        return message
    if encoding == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise PayloadError(400, f"undecodable protobuf: {exc}") from None
        return message
    try:
        tree = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(400, f"undecodable JSON: {exc}") from None
    if not isinstance(tree, dict):
        raise PayloadError(400, "JSON body is not an object")
    try:
        json_format.ParseDict(_hex_ids_to_base64(tree), message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise PayloadError(400, f"JSON does not match OTLP: {exc}") from None
    return message


def encode_response(signal: str, encoding: str) -> bytes:
    """An empty Export*ServiceResponse (full success) in the request's encoding."""
    if encoding == JSON:
        return b"{}"
    return bytes(response_class(signal)().SerializeToString())


def encode_status(code: int, message: str, encoding: str) -> bytes:
    """A google.rpc.Status body, as OTLP/HTTP requires for 4xx/5xx answers."""
    from google.rpc import status_pb2  # type: ignore[import-untyped]

    status = status_pb2.Status(code=code, message=message)
    if encoding == JSON:
        return json.dumps({"code": code, "message": message}).encode()
    return bytes(status.SerializeToString())


# ---------------------------------------------------------------------------------------------- flatten


class SpanRow(NamedTuple):
    scope_name: str
    scope_version: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    duration_ns: int
    status_code: int
    status_message: str
    attributes: str
    events: str
    command: str | None
    outcome: str | None
    error_type: str | None
    session_id: str | None
    exit_code: int | None
    adjusted: int = 1  # how many spans this one stands for (its tracestate's ot=th); not a stored column


def adjusted_count(trace_state: str) -> int:
    """The number of spans a span kept by probability sampling stands for: ``1/p`` from the threshold of its
    ``ot=th:`` tracestate entry (OpenTelemetry's probability sampling: rejection threshold ``T`` of 56 bits,
    ``p = (2**56 - T) / 2**56``), rounded; 1 for a span without one or with a malformed one."""
    if "th:" not in trace_state:
        return 1
    for member in trace_state.split(","):
        key, _, value = member.strip().partition("=")
        if key != "ot":
            continue
        for entry in value.split(";"):
            name, _, digits = entry.partition(":")
            if name != "th" or not 0 < len(digits) <= 14:
                continue
            try:
                threshold = int(digits.ljust(14, "0"), 16)
            except ValueError:
                return 1
            kept = (1 << 56) - threshold
            return max(1, round((1 << 56) / kept)) if kept > 0 else 1
    return 1


class PointRow(NamedTuple):
    scope_name: str
    scope_version: str
    name: str
    unit: str
    kind: str
    temporality: str | None
    monotonic: int | None
    attributes: str
    command: str | None
    outcome: str | None
    error_type: str | None
    start_ns: int
    end_ns: int
    value: float | None
    samples: int | None  # the histogram's count ("count" would shadow tuple.count)
    sum: float | None
    min: float | None
    max: float | None
    bounds: str | None
    bucket_counts: str | None


class LogRow(NamedTuple):
    scope_name: str
    scope_version: str
    time_ns: int
    observed_ns: int
    severity_number: int
    severity_text: str
    event_name: str
    body: str
    attributes: str
    trace_id: str
    span_id: str


@dataclass(slots=True)
class ResourceData:
    """Everything one Resource* entry of a request carries, ready to store."""

    attributes: dict[str, Any]
    batch_id: str | None
    fingerprint: bytes
    spans: list[SpanRow] = field(default_factory=list)
    points: list[PointRow] = field(default_factory=list)
    logs: list[LogRow] = field(default_factory=list)
    exp: dict[tuple[str, str], Buckets] = field(default_factory=dict)
    """Exponential points' buckets as decoded, keyed by the (bounds, bucket_counts) text stored for them:
    the rollup reads them here instead of parsing that JSON back (a row whose text changed misses)."""
    digest: str | None = None
    """:func:`content_id` of the entry as received, when a decoding worker computed it (else the writer does)."""
    legacy_digest: str | None = None
    """:func:`digest` of the rows as received, kept only when the limits cut the entry (its rows then no longer
    give it): what a store written before schema 5 recorded for this content (see Store._stored)."""
    cut: dict[str, int] | None = None
    """What the length limits cut, when a decoding worker already applied them (else the writer does)."""
    rolled: Any = None
    """A ``rollup.Rolled``: the entry's rollup computed ahead by a decoding worker (else the writer rolls it)."""
    packed: Packed | None = None
    """The spans (and rolled points) as a decoding worker hands them over (see :meth:`pack`); their lists are
    then empty."""

    def rows(self) -> int:
        """Spans, points and logs held, packed or not."""
        packed = self.packed
        held = len(self.spans) + len(self.points) + len(self.logs)
        return held if packed is None else held + packed.spans + packed.points

    def pack(self) -> None:
        """Hand the rows over as bytes (a decoding worker's last step): spans always, points when the entry is
        rolled ahead (the writer then stores them as they are). Each row becomes the plain tuple of the columns
        it stores, in one ``marshal`` blob: the server unpickles one bytes object instead of a named tuple per
        row (5 us a row in its result thread) and hands the tuples to ``executemany`` untouched. Marshal keeps
        every value's type and bits (str, int, float, None). The sessions the spans touch are summed here
        (:func:`session_totals`): the writer needs no span row unless one is already stored."""
        if self.packed is not None:
            return
        spans, points = self.spans, self.points if self.rolled is not None else []
        adjusted = [row.adjusted for row in spans]
        self.packed = Packed(
            marshal.dumps([row[:-1] for row in spans]) if spans else b"", len(spans),
            marshal.dumps([tuple(row) for row in points]) if points else b"", len(points),
            adjusted if any(n != 1 for n in adjusted) else None, session_totals(spans),
        )
        self.spans = []
        if points:
            self.points = []

    def unpack(self) -> None:
        """The rows back as named tuples (the writer's rare paths: a span already stored, a value cut)."""
        packed = self.packed
        if packed is None:
            return
        self.packed = None
        if packed.spans:
            adjusted = packed.adjusted or [1] * packed.spans
            self.spans = [SpanRow._make((*row, n))
                          for row, n in zip(marshal.loads(packed.span_rows), adjusted, strict=True)]
        if packed.points:
            self.points = [PointRow(*row) for row in marshal.loads(packed.point_rows)]


@dataclass(slots=True)
class Packed:
    """An entry's rows as :meth:`ResourceData.pack` hands them over."""

    span_rows: bytes
    spans: int
    point_rows: bytes
    points: int
    adjusted: list[int] | None
    """Each span's adjusted count, when one is not 1 (not a stored column)."""
    sessions: dict[str, list[int]]
    """:func:`session_totals` of the spans."""


def session_totals(spans: Iterable[SpanRow]) -> dict[str, list[int]]:
    """Per session id: [first start, last end, commands] of these spans (a sampled span counts as the commands
    it stands for: its adjusted count)."""
    seen: dict[str, list[int]] = {}
    for row in spans:
        if not row.session_id:
            continue
        acc = seen.get(row.session_id)
        if acc is None:
            seen[row.session_id] = [row.start_ns, row.end_ns, row.adjusted]
        else:
            acc[0], acc[1], acc[2] = min(acc[0], row.start_ns), max(acc[1], row.end_ns), acc[2] + row.adjusted
    return seen


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)  # JSON has no NaN/Infinity
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def _attrs(key_values: Iterable[Any]) -> dict[str, Any]:
    out = {}
    for kv in key_values:  # most values are strings: read those here, without a call
        value = kv.value
        out[kv.key] = value.string_value if value.WhichOneof("value") == "string_value" else _value(value)
    return out


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json(attrs: Any) -> str:
    """Canonical JSON (one encoder reused: json.dumps with options builds a new one per call)."""
    return _ENCODER.encode(attrs)


_DERIVED_MAX = 4096


_Derived = tuple[str, "str | None", "str | None", "str | None", "str | None", "int | None"]
_DERIVED: dict[tuple[Any, ...], _Derived] = {}


def _derived(attrs: dict[str, Any]) -> _Derived:
    """What a row stores from its attribute map: its :func:`_json`, the command, outcome and error type columns
    (:func:`_columns`), the session id and the exit code; remembered: the points of one series and the spans of
    one session repeat the same few maps (the key holds each value's type: ``True == 1`` but they encode
    differently)."""
    try:
        key = (tuple(attrs.items()), tuple(map(type, attrs.values())))
        found = _DERIVED.get(key)
    except TypeError:  # a list or map value: not hashable, derived each time
        return _derive(attrs)
    if found is None:
        if len(_DERIVED) >= _DERIVED_MAX:
            _DERIVED.clear()
        found = _DERIVED[key] = _derive(attrs)
    return found


def _derive(attrs: dict[str, Any]) -> _Derived:
    return (_json(attrs), *_columns(attrs), _text(attrs, "session.id"), _int(attrs, "process.exit.code"))


_DIGITS = bytes(range(48, 58)) + bytes(246)
"""A byte's decimal digit for 0..9, else a zero byte (bytes.translate table)."""


def _int_list(values: list[int]) -> str:
    """``_json(values)`` for a list of non-negative integers, without the encoder (same text: ``[1,2,3]``).

    Bucket counts are nearly all single digits (an SDK point spans up to 320 buckets, most of them empty): those
    are written as bytes (one digit each, a comma between: all in C, about a third of repr's cost); otherwise the
    list's repr less the spaces after its commas (integers never contain one)."""
    try:
        raw = bytes(values)
    except ValueError:  # a count above 255
        return repr(values).replace(" ", "")
    digits = raw.translate(_DIGITS)
    if not digits or b"\0" in digits:  # empty, or a count above 9
        return repr(values).replace(" ", "")
    out = bytearray(b",") * (2 * len(digits) - 1)
    out[0::2] = digits
    return "[" + out.decode("ascii") + "]"


def _columns(attrs: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """The attributes stored in columns of their own (and grouped by): command, outcome, error type.

    The one place an attribute becomes a column, for spans and points alike.
    """
    return _text(attrs, "cli.command.name"), _text(attrs, "cli.command.outcome"), _text(attrs, "error.type")


def _text(attrs: dict[str, Any], key: str) -> str | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else _json(value)


def _int(attrs: dict[str, Any], key: str) -> int | None:
    value = attrs.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_new_row = tuple.__new__
"""A row tuple of a NamedTuple class from its full tuple of values (the class's own __new__ is Python code)."""


def _hex(raw: bytes) -> str:
    return raw.hex()


def _spans(scope_spans: Sequence[Any]) -> Iterator[SpanRow]:
    for scope_span in scope_spans:
        scope = scope_span.scope
        scope_name, scope_version = scope.name, scope.version
        for span in scope_span.spans:
            attrs = _attrs(span.attributes)
            events = [
                {"name": event.name, "time_ns": event.time_unix_nano, "attributes": _attrs(event.attributes)}
                for event in span.events
            ] if span.events else None
            derived = _derived(attrs)
            start, end, status, trace_state = span.start_time_unix_nano, span.end_time_unix_nano, span.status, \
                span.trace_state
            yield _new_row(SpanRow, (  # SpanRow(...) without namedtuple's Python-level __new__
                scope_name,
                scope_version,
                span.trace_id.hex(),
                span.span_id.hex(),
                span.parent_span_id.hex(),
                span.name,
                span.kind,
                start,
                end,
                end - start,
                status.code,
                status.message,
                derived[0],
                _json(events) if events else "[]",
                *derived[1:],
                adjusted_count(trace_state) if trace_state else 1,
            ))


_PointBase = tuple[
    str,
    str,
    str,
    str,
    str,
    "str | None",
    "int | None",
    str,
    "str | None",
    "str | None",
    "str | None",
    int,
    int,
]


def _point_base(
    scope: Any, metric: Any, kind: str, temporality: str | None, monotonic: int | None, point: Any
) -> _PointBase:
    attrs_json, command, outcome, error_type = _derived(_attrs(point.attributes))[:4]
    return (
        scope.name,
        scope.version,
        metric.name,
        metric.unit,
        kind,
        temporality,
        monotonic,
        attrs_json,
        command,
        outcome,
        error_type,
        point.start_time_unix_nano,
        point.time_unix_nano,
    )


def _optional(point: Any, name: str) -> float | None:
    return float(getattr(point, name)) if point.HasField(name) else None


def _points(scope_metrics: Sequence[Any], exp: dict[tuple[str, str], Buckets] | None = None) -> Iterator[PointRow]:
    for scope_metric in scope_metrics:
        scope = scope_metric.scope
        for metric in scope_metric.metrics:
            kind = metric.WhichOneof("data")
            if kind in ("sum", "gauge"):
                data = getattr(metric, kind)
                temporality = _TEMPORALITY.get(data.aggregation_temporality) if kind == "sum" else None
                monotonic = int(data.is_monotonic) if kind == "sum" else None
                for point in data.data_points:
                    if point.flags & _NO_RECORDED_VALUE:
                        continue
                    number = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
                    base = _point_base(scope, metric, kind, temporality, monotonic, point)
                    yield _new_row(PointRow, (*base, float(number), None, None, None, None, None, None))
            elif kind in ("histogram", "exponential_histogram", "summary"):
                data = getattr(metric, kind)
                temporality = _TEMPORALITY.get(getattr(data, "aggregation_temporality", 0))
                for point in data.data_points:
                    if point.flags & _NO_RECORDED_VALUE:
                        continue
                    base = _point_base(scope, metric, kind, temporality, None, point)
                    if kind == "histogram":
                        has_sum = point.HasField("sum")
                        bounds: str | None = _json(list(point.explicit_bounds))
                        buckets: str | None = _json(list(point.bucket_counts))
                    elif kind == "exponential_histogram":  # scale, zero count, offsets in bounds; positive counts
                        has_sum = point.HasField("sum")
                        negative = point.negative
                        negative_counts = negative.bucket_counts[:]  # a list (slicing is faster than list())
                        positive = point.positive
                        positive_counts = positive.bucket_counts[:]
                        # _json of {"scale", "zero_count", "offset", "negative_offset", "negative_counts"}
                        # (keys sorted), written out: the same text without the encoder
                        bounds = (f'{{"negative_counts":{_int_list(negative_counts)},"negative_offset":'
                                  f'{negative.offset},"offset":{positive.offset},"scale":{point.scale},'
                                  f'"zero_count":{point.zero_count}}}')
                        buckets = _int_list(positive_counts)
                        if exp is not None:
                            exp[(bounds, buckets)] = Buckets(point.scale, point.zero_count, positive.offset,
                                                             tuple(positive_counts), negative.offset,
                                                             tuple(negative_counts))
                    else:  # summary quantiles are not kept: count/sum/min/max only
                        has_sum = kind == "summary" or point.HasField("sum")
                        bounds = buckets = None
                    minimum = _optional(point, "min") if kind != "summary" else None
                    maximum = _optional(point, "max") if kind != "summary" else None
                    yield _new_row(PointRow, (
                        *base,
                        None,
                        int(point.count),
                        float(point.sum) if has_sum else None,
                        minimum,
                        maximum,
                        bounds,
                        buckets,
                    ))


def _logs(scope_logs: Sequence[Any]) -> Iterator[LogRow]:
    for scope_log in scope_logs:
        scope = scope_log.scope
        for record in scope_log.log_records:
            yield LogRow(
                scope.name,
                scope.version,
                record.time_unix_nano,
                record.observed_time_unix_nano,
                record.severity_number,
                record.severity_text,
                record.event_name,
                _json(_value(record.body)) if record.HasField("body") else "null",
                _json(_attrs(record.attributes)),
                _hex(record.trace_id),
                _hex(record.span_id),
            )


_FLATTEN: dict[str, tuple[str, str, Callable[[Sequence[Any]], Iterator[Any]]]] = {
    "traces": ("resource_spans", "scope_spans", _spans),
    "metrics": ("resource_metrics", "scope_metrics", _points),
    "logs": ("resource_logs", "scope_logs", _logs),
}


def flatten(signal: str, request: Any) -> list[ResourceData]:
    """One ResourceData per Resource* entry, with the batch id attribute lifted out of the attributes.

    Byte-identical entries repeating an earlier batch id in the same request are dropped here: they are
    what a collector produces when it batches an SDK retry together with the original.
    """
    resources_field, scopes_field, rows = _FLATTEN[signal]
    out: list[ResourceData] = []
    seen: set[tuple[str, bytes]] = set()
    for entry in getattr(request, resources_field):
        attrs = _attrs(entry.resource.attributes)
        raw_batch = attrs.pop(BATCH_ID_ATTRIBUTE, None)
        batch_id = str(raw_batch) if raw_batch not in (None, "") else None
        fingerprint = hashlib.sha256(entry.SerializeToString(deterministic=True)).digest()
        if batch_id is not None:
            if (batch_id, fingerprint) in seen:
                continue
            seen.add((batch_id, fingerprint))
        data = ResourceData(attrs, batch_id, fingerprint)
        scopes = getattr(entry, scopes_field)
        found = list(_points(scopes, data.exp) if signal == "metrics" else rows(scopes))
        if signal == "traces":
            data.spans = found
        elif signal == "metrics":
            data.points = found
        else:
            data.logs = found
        out.append(data)
    return out


_ROW_FORMATS = {
    cls: cls.__name__ + "(" + ", ".join(f"{name}=%r" for name in cls._fields) + ")"
    for cls in (SpanRow, PointRow, LogRow)
}


def _rows_repr(rows: Sequence[Any]) -> str:
    """``repr(rows)`` of a list of row tuples, byte for byte, without namedtuple's per-row __repr__ call."""
    return "[" + ", ".join(_ROW_FORMATS[type(row)] % row for row in rows) + "]"


def content_id(resource: ResourceData) -> str:
    """What identifies an entry's content among its batch's parts (schema 5 on): its fingerprint, the SHA-256 of
    the entry as received (serialised deterministically, so OTLP/JSON and protobuf of one content agree), as 20
    hex digits.

    Why not :func:`digest`: the rows are a function of those bytes, so both tell the same entries apart, but
    the digest writes every row out as text first (3.5 us a row in the decoding workers). An entry built
    without a fingerprint falls back to the digest."""
    return resource.fingerprint.hex()[:20] if resource.fingerprint else digest(resource)


def digest(resource: ResourceData) -> str:
    """Content of one resource entry as received (before any limit cuts it): a retried batch repeats it
    exactly, a split one does not. What stores before schema 5 recorded (see :func:`content_id`); read now
    only to recognise a batch such a store holds.

    The text hashed is ``repr((spans, points, logs))`` (stored ids stay comparable across releases).
    """
    h = hashlib.sha1(resource.fingerprint)
    text = "(" + ", ".join(_rows_repr(rows) for rows in (resource.spans, resource.points, resource.logs)) + ")"
    h.update(text.encode())
    return h.hexdigest()[:20]
