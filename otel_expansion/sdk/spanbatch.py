"""Replayed spans as one columnar batch: what a series of spans shares is held (and processed) once.

Why: a long-running program records one span per command, and most of a span is the same from command
to command (name, status, command, outcome, executable, session). Built one ``ReadableSpan`` at a time,
each span went through the level filter, the redaction memo and the encoder on its own; that per-span
Python was most of the export thread's cost. A :class:`SpanBatch` keeps the shared part in a
:class:`SpanTemplate` and per span only what varies (ids, times, measured attributes, events).

Span processors that know batches (ours: the level filter, redaction, staging) implement
``on_end_batch`` (the hook and its dispatch are in :mod:`otel_expansion.sdk.otel_internals`); for any
other processor the batch is materialised into the very ``ReadableSpan`` objects the per-span path would
have built (:meth:`SpanBatch.spans`), so what a processor sees, and what is exported, is the same either
way (``tests/sdk/test_replay.py`` holds the bytes equal).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from opentelemetry.sdk.trace import Event as SdkEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, TraceFlags, TraceState


class SpanTemplate(NamedTuple):
    """What the spans of one series share: name, status and the attributes that come first."""

    name: str
    attributes: dict[str, Any]
    status: Status
    trace_state: str = ""  # "ot=th:..." for spans kept by probability sampling (their adjusted count)


class SpanRow(NamedTuple):
    """What varies per span. ``extra`` attributes follow the template's (their keys never overlap);
    ``events`` are (name, attributes, time) triples."""

    template: int  # index into SpanBatch.templates
    trace_id: int
    span_id: int
    start: int
    end: int
    extra: dict[str, Any] | None
    events: tuple[tuple[str, Any, int], ...]


class SpanBatch:
    """Root, internal spans of one resource and scope, in the order they were recorded."""

    __slots__ = ("flags", "resource", "rows", "scope", "templates")

    def __init__(self, resource: Any, scope: InstrumentationScope, flags: TraceFlags,
                 templates: list[SpanTemplate], rows: list[SpanRow]) -> None:
        self.resource = resource
        self.scope = scope
        self.flags = flags
        self.templates = templates
        self.rows = rows

    def replace(self, templates: list[SpanTemplate] | None = None, rows: list[SpanRow] | None = None) -> SpanBatch:
        """A copy with new templates and/or rows (processors never mutate the batch they were given)."""
        return SpanBatch(self.resource, self.scope, self.flags,
                         self.templates if templates is None else templates, self.rows if rows is None else rows)

    def span(self, row: SpanRow) -> ReadableSpan:
        """One row as the ``ReadableSpan`` the tracer would have ended."""
        template = self.templates[row.template]
        attributes = template.attributes if not row.extra else {**template.attributes, **row.extra}
        return ReadableSpan(
            name=template.name,
            context=SpanContext(row.trace_id, row.span_id, is_remote=False, trace_flags=self.flags,
                                trace_state=TraceState.from_header([template.trace_state])
                                if template.trace_state else None),
            parent=None, resource=self.resource, attributes=attributes,
            events=tuple(SdkEvent(n, a, t) for n, a, t in row.events),
            kind=SpanKind.INTERNAL, status=template.status, start_time=row.start, end_time=row.end,
            instrumentation_scope=self.scope,
        )

    def spans(self) -> list[ReadableSpan]:
        return [self.span(row) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)
