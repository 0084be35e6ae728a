"""SpanProcessors that enforce the level and redaction inside the OTel pipeline.

Each wraps the next processor (usually a Simple/BatchSpanProcessor around an exporter) and passes on a
filtered copy: a ReadableSpan is immutable once ended, so the privacy step builds a new one rather than
mutating SDK internals. They never raise and never block.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Status

from otel_expansion.config.levels import Level
from otel_expansion.privacy import names
from otel_expansion.sdk import signals

log = logging.getLogger("otel_expansion.sdk")


class _Chained(SpanProcessor):
    def __init__(self, next_processor: SpanProcessor) -> None:
        self.next = next_processor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.next.on_start(span, parent_context=parent_context)

    def shutdown(self) -> None:
        self.next.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.next.force_flush(timeout_millis)


class LevelFilterSpanProcessor(_Chained):
    """Drops spans below the span level, and whatever of a span the level does not allow.

    Our spans were minimised when recorded; their attributes pass when the signal model allows the key
    at this level. Spans of other instrumentations (under ``opentelemetry-instrument``: contrib's click,
    HTTP clients...) fail closed at every level, ``full`` included: attributes only under keys our
    signal model declares for the level, with identifier-shaped values; no events, no status
    description, no link attributes; the span is named after its instrumentation scope (contrib's click
    names it after the typed command, an HTTP client after the URL).
    """

    def __init__(self, level: Level, next_processor: SpanProcessor) -> None:
        super().__init__(next_processor)
        self.level = level
        self.allowed = frozenset(n for n, a in signals.ATTRIBUTES.items() if a.level <= level)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if self.level < signals.SPAN_LEVEL:
                return
            attrs = dict(span.attributes or {})
            scope = span.instrumentation_scope
            if scope is None or scope.name != signals.SCOPE_NAME:
                self.next.on_end(self._foreign(span, attrs, scope.name if scope is not None else ""))
                return
            if self.level < Level.FULL:
                attrs = {k: v for k, v in attrs.items() if k in self.allowed}
            events = span.events if self.level >= Level.FULL else ()
            self.next.on_end(_copy(span, attrs, events, span.status))
        except Exception:  # never let telemetry break the host
            log.exception("level filter failed; span dropped")

    def _foreign(self, span: ReadableSpan, attrs: dict[str, Any], scope: str) -> ReadableSpan:
        kept: dict[str, Any] = {}
        for key, value in attrs.items():
            if key not in self.allowed:
                continue
            if type(value) is str and not names.token_ok(value):
                value = names.INVALID
            elif type(value) not in (bool, int, float, str):
                continue
            kept[key] = value
        # contrib click names a span by what was typed; the scope is a package name, the code's own
        name = scope if scope.isascii() and all(p.isidentifier() for p in scope.split(".")) else "<span>"
        status = Status(span.status.status_code)  # the description is exception text: never from others
        return _copy(span, kept, (), status, name=name, links=())


class RedactingSpanProcessor(_Chained):
    """Applies the redactor to span names, attribute values, events and status messages."""

    def __init__(self, redactor: Any, next_processor: SpanProcessor) -> None:
        super().__init__(next_processor)
        self.redactor = redactor

    def on_end(self, span: ReadableSpan) -> None:
        try:
            r = self.redactor
            attrs = r.attributes(span.attributes or {})
            events = tuple(
                SpanEvent(e.name, r.attributes(e.attributes or {}), e.timestamp) for e in span.events
            )
            status = span.status
            if status.description:
                status = Status(status.status_code, r.redact(status.description))
            self.next.on_end(_copy(span, attrs, events, status, name=r.redact(span.name)))
        except Exception:
            log.exception("redaction failed; span dropped rather than sent unredacted")


def _copy(span: ReadableSpan, attrs: Any, events: Any, status: Status, name: str | None = None,
          links: Any = None) -> ReadableSpan:
    return ReadableSpan(
        name=span.name if name is None else name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attrs,
        events=tuple(events),
        links=span.links if links is None else links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
