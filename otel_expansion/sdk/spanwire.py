"""Fast OTLP ``Span`` encoding for spans leaving the SDK pipeline into the spool.

Why: building a protobuf ``Span`` object field by field costs more than the whole span did in the SDK; a
long-running program records one span per command, so that encoding dominated the export thread. This
writes the same wire bytes directly (fields in number order, proto3 defaults omitted, oneof values always
present), caching the encoded key/value pairs that repeat from span to span (command name, outcome,
executable, session id). Anything it does not handle (a value OTLP cannot carry, text that is not valid
UTF-8) falls back to :func:`otel_expansion.otlp.encode.span_to_proto`, which decides the same way the
protobuf classes do. Pure Python, no OTel import.
"""

from __future__ import annotations

import struct
from typing import Any

_CACHE_LIMIT = 8192
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_pack_d = struct.Struct("<d").pack
_pack_q = struct.Struct("<Q").pack
_pack_ids = struct.Struct(">HQQHQ").pack  # trace id (field 1) and span id (field 2), tags included
_pack_times = struct.Struct("<BQBQ").pack  # start (field 7) and end (field 8) time, tags included
_MASK64 = (1 << 64) - 1
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)  # field 16, fixed32: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)  # ... and SPAN_FLAGS_CONTEXT_IS_REMOTE


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
    """An ``AnyValue`` message body, mirroring ``otlp.encode.any_value``'s type decisions."""
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
    raise Unencodable(f"attribute value of type {type(value).__name__}")


class SpanEncoder:
    """Encodes finished ReadableSpans. Its caches are plain dicts: a lost entry under a thread race is
    recomputed, never wrong."""

    def __init__(self) -> None:
        self._kv: dict[tuple[str, type, object], bytes] = {}  # span attribute KeyValue, tag 9 included
        self._event_kv: dict[tuple[str, type, object], bytes] = {}  # the same with the event's tag 3
        self._float_prefix: dict[str, bytes] = {}  # KeyValue bytes up to a double's 8 bytes
        self._names: dict[str, bytes] = {}  # span name field
        self._event_names: dict[str, bytes] = {}
        self._kinds: dict[object, bytes] = {}
        self._statuses: dict[tuple[object, object], bytes] = {}

    def key_value(self, key: str, value: object) -> bytes:
        """One encoded ``KeyValue`` (tag 9 included), cached for hashable repeating values."""
        t = type(value)
        if t is float:  # measurements rarely repeat: cache the key part only
            prefix = self._float_prefix.get(key)
            if prefix is None:
                kf = _ld(b"\x0a", key.encode("utf-8")) if key else b""
                prefix = self._float_prefix[key] = b"\x4a" + _varint(len(kf) + 11) + kf + b"\x12\x09\x21"
            return prefix + _pack_d(value)
        ck: tuple[str, type, object] | None = (key, t, value)
        try:
            hit = self._kv.get(ck)  # type: ignore[arg-type]
        except TypeError:  # an unhashable value (a list): encode without caching
            hit, ck = None, None
        if hit is not None:
            return hit
        body = _any_value(value)
        out = _ld(b"\x4a", (_ld(b"\x0a", key.encode("utf-8")) if key else b"") + _ld(b"\x12", body))
        if ck is not None:
            if len(self._kv) >= _CACHE_LIMIT:
                self._kv.clear()
                self._event_kv.clear()
            self._kv[ck] = out
        return out

    def _attributes(self, attrs: Any, out: list[bytes]) -> None:
        values = attrs.values()
        try:
            parts = list(map(self._kv.get, zip(attrs.keys(), map(type, values), values, strict=True)))
        except TypeError:  # an unhashable value
            out.extend(self.key_value(k, v) for k, v in attrs.items())
            return
        if None in parts:  # floats and values not seen yet
            items = list(attrs.items())
            i = 0
            while True:
                try:
                    i = parts.index(None, i)
                except ValueError:
                    break
                parts[i] = self.key_value(*items[i])
        out.extend(parts)  # type: ignore[arg-type]

    def _event_attributes(self, attrs: Any) -> bytes:
        cache = self._event_kv
        parts = []
        for k, v in attrs.items():
            t = type(v)
            if t is float or t is list or t is tuple:
                parts.append(b"\x1a" + self.key_value(k, v)[1:])  # field 3 instead of the span's 9
                continue
            hit = cache.get((k, t, v))
            if hit is None:
                hit = cache[(k, t, v)] = b"\x1a" + self.key_value(k, v)[1:]
            parts.append(hit)
        return b"".join(parts)

    def _event(self, name: str, attrs: Any, timestamp: int) -> bytes:
        body = b"\x09" + _pack_q(timestamp) if timestamp else b""
        field = self._event_names.get(name)
        if field is None:
            field = _ld(b"\x12", name.encode("utf-8")) if name else b""
            if len(self._event_names) >= _CACHE_LIMIT:
                self._event_names.clear()
            self._event_names[name] = field
        body += field
        if attrs:
            body += self._event_attributes(attrs)
        return _ld(b"\x5a", body)

    def _status(self, status: Any) -> bytes:
        skey = (status.status_code, status.description)
        field = self._statuses.get(skey)
        if field is None:
            message, code = status.description, status.status_code.value
            field = _ld(b"\x7a", (_ld(b"\x12", message.encode("utf-8")) if message else b"")
                        + (b"\x18" + _varint(code) if code else b""))
            if len(self._statuses) >= _CACHE_LIMIT:
                self._statuses.clear()
            self._statuses[skey] = field
        return field

    def encode_batch(self, batch: Any) -> list[bytes | None]:
        """Every row of a :class:`~otel_expansion.sdk.spanbatch.SpanBatch` as ``Span`` bytes, equal to
        ``encode`` of the materialised span; a template's name, kind, shared attributes, status and flags
        are encoded once. None for a row this encoder leaves to the protobuf classes."""
        parts_of: list[tuple[bytes, bytes, bytes] | None] = []
        for t in batch.templates:
            try:
                head = (_ld(b"\x1a", t.trace_state.encode("utf-8")) if t.trace_state else b"") + (
                    _ld(b"\x2a", t.name.encode("utf-8")) if t.name else b"") + b"\x30\x01"  # kind INTERNAL
                shared: list[bytes] = []
                if t.attributes:
                    self._attributes(t.attributes, shared)
                parts_of.append((head, b"".join(shared), self._status(t.status) + _FLAGS_LOCAL))
            except (ValueError, UnicodeError):
                parts_of.append(None)
        out: list[bytes | None] = []
        append = out.append
        for row in batch.rows:
            parts = parts_of[row.template]
            start, end, tid = row.start, row.end, row.trace_id
            if parts is None or not (0 < start < 1 << 64 and 0 < end < 1 << 64):
                append(None)  # unencodable template, or a zero time the generic path omits
                continue
            head, shared, tail = parts
            chunks = [_pack_ids(0x0A10, tid >> 64, tid & _MASK64, 0x1208, row.span_id), head,
                      _pack_times(0x39, start, 0x41, end), shared]
            try:
                if row.extra:
                    self._attributes(row.extra, chunks)
                for name, attrs, timestamp in row.events:
                    if getattr(attrs, "dropped", 0):
                        raise Unencodable("event with dropped attributes")
                    chunks.append(self._event(name, attrs, timestamp))
            except (ValueError, UnicodeError):
                append(None)
                continue
            chunks.append(tail)
            append(b"".join(chunks))
        return out

    def encode(self, span: Any) -> bytes:
        """The span as OTLP ``Span`` bytes (same content as ``span_to_proto``, the OTLP exporters' own
        encoder); trace state, links and dropped counts are left to it."""
        ctx = span.context
        if ctx.trace_state or span.links or span.dropped_events or span.dropped_links:
            raise Unencodable("trace state, links or dropped counts")
        out = [b"\x0a\x10", ctx.trace_id.to_bytes(16, "big"), b"\x12\x08", ctx.span_id.to_bytes(8, "big")]
        if span.parent is not None:
            out += [b"\x22\x08", span.parent.span_id.to_bytes(8, "big")]
        name = span.name
        field = self._names.get(name)
        if field is None:
            field = _ld(b"\x2a", name.encode("utf-8")) if name else b""
            if len(self._names) >= _CACHE_LIMIT:
                self._names.clear()
            self._names[name] = field
        out.append(field)
        kind = span.kind
        field = self._kinds.get(kind)
        if field is None:
            field = self._kinds[kind] = b"\x30" + _varint(kind.value + 1)
        out.append(field)
        start, end = span.start_time, span.end_time
        if start:
            out += [b"\x39", _pack_q(start)]
        if end:
            out += [b"\x41", _pack_q(end)]
        attrs = span.attributes
        if attrs:
            self._attributes(attrs, out)
        dropped = getattr(span, "dropped_attributes", 0)
        if dropped:
            out.append(b"\x50" + _varint(dropped))
        for event in span.events:
            if event.dropped_attributes:
                raise Unencodable("event with dropped attributes")
            out.append(self._event(event.name, event.attributes, event.timestamp))
        out.append(self._status(span.status))
        parent = span.parent  # flags: the context's is-remote bit is known (and set for remote parents)
        out.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
        return b"".join(out)
