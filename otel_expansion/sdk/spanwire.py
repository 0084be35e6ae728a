"""Fast OTLP ``Span`` encoding for spans leaving the SDK pipeline into the spool.

Why: building a protobuf ``Span`` object field by field costs more than the whole span did in the SDK; a
long-running program records one span per command, so that encoding dominated the export thread. This
writes the same wire bytes directly (fields in number order, proto3 defaults omitted, oneof values always
present), caching the encoded key/value pairs that repeat from span to span (command name, outcome,
executable, session id). Anything it does not handle (a value OTLP cannot carry, text that is not valid
UTF-8) falls back to :func:`otel_expansion.export.encode.span_to_proto`, which decides the same way the
protobuf classes do. Pure Python, no OTel import.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

_CACHE_LIMIT = 8192
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_pack_d = struct.Struct("<d").pack
_pack_q = struct.Struct("<Q").pack


class Unencodable(ValueError):
    """A value this encoder leaves to the protobuf classes."""


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: object) -> bytes:
    """An ``AnyValue`` message body, mirroring ``export.encode.any_value``'s type decisions."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise Unencodable("integer outside int64")
        return b"\x18" + _varint(int(value))
    if isinstance(value, float):
        return b"\x21" + _pack_d(value)
    if isinstance(value, str):
        return _ld(b"\x0a", value.encode("utf-8"))
    if isinstance(value, bytes):
        return _ld(b"\x3a", value)
    if isinstance(value, (list, tuple)):
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", _any_value(v)) for v in value))
    return _ld(b"\x0a", str(value).encode("utf-8"))


class SpanEncoder:
    """Encodes finished ReadableSpans; one instance per pipeline (its cache is not shared across threads
    unsafely: a lost cache entry is recomputed, never wrong)."""

    def __init__(self) -> None:
        self._kv: dict[tuple[str, type, object], bytes] = {}

    def key_value(self, key: str, value: object) -> bytes:
        """One encoded ``KeyValue`` (tag included), cached for hashable repeating values."""
        t = type(value)
        if t is float:  # measurements rarely repeat: not worth a cache slot
            return _ld(b"\x4a", (_ld(b"\x0a", key.encode("utf-8")) if key else b"") + b"\x12\x09\x21"
                       + _pack_d(value))  # type: ignore[arg-type]
        ck = (key, t, value)
        try:
            hit = self._kv.get(ck)
        except TypeError:  # an unhashable value (a list): encode without caching
            hit, ck = None, None  # type: ignore[assignment]
        if hit is not None:
            return hit
        body = _any_value(value)
        kv = (_ld(b"\x0a", key.encode("utf-8")) if key else b"") + _ld(b"\x12", body)
        out = _ld(b"\x4a", kv)
        if ck is not None:
            if len(self._kv) >= _CACHE_LIMIT:
                self._kv.clear()
            self._kv[ck] = out
        return out

    def _attributes(self, attrs: Iterable[tuple[str, object]], tag: bytes) -> bytes:
        parts = [self.key_value(str(k), v) for k, v in attrs]
        if tag == b"\x4a":
            return b"".join(parts)
        # event attributes use field 3 (0x1a) instead of the span's field 9 (0x4a): retag the cached form
        return b"".join(tag + p[1:] for p in parts)

    def encode(self, span: Any) -> bytes:
        """The span as OTLP ``Span`` bytes (same content as ``span_to_proto``)."""
        ctx = span.context
        out = [
            b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"),
            b"\x12\x08", ctx.span_id.to_bytes(8, "big"),
        ]
        if span.parent is not None:
            out += [b"\x22\x08", span.parent.span_id.to_bytes(8, "big")]
        if span.name:
            out.append(_ld(b"\x2a", span.name.encode("utf-8")))
        out.append(b"\x30" + _varint(span.kind.value + 1))
        if span.start_time:
            out.append(b"\x39" + _pack_q(span.start_time))
        if span.end_time:
            out.append(b"\x41" + _pack_q(span.end_time))
        attrs = span.attributes
        if attrs:
            out.append(self._attributes(attrs.items(), b"\x4a"))
        dropped = getattr(span, "dropped_attributes", 0)
        if dropped:
            out.append(b"\x50" + _varint(dropped))
        for event in span.events:
            body = []
            if event.timestamp:
                body.append(b"\x09" + _pack_q(event.timestamp))
            if event.name:
                body.append(_ld(b"\x12", event.name.encode("utf-8")))
            if event.attributes:
                body.append(self._attributes(event.attributes.items(), b"\x1a"))
            out.append(_ld(b"\x5a", b"".join(body)))
        status = span.status
        message = status.description
        code = status.status_code.value
        out.append(_ld(b"\x7a", (_ld(b"\x12", message.encode("utf-8")) if message else b"")
                       + (b"\x18" + _varint(code) if code else b"")))
        return b"".join(out)
