"""SpanProcessors that enforce the level and redaction inside the OTel pipeline.

Each wraps the next processor (usually a Simple/BatchSpanProcessor around an exporter) and passes on a
filtered copy: a ReadableSpan is immutable once ended, so the privacy step builds a new one rather than
mutating SDK internals. They never raise and never block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Status

from otel_expansion.config import Level
from otel_expansion.privacy import foreign
from otel_expansion.sdk import signals
from otel_expansion.sdk.otel_internals import batch_handler
from otel_expansion.sdk.spanbatch import SpanBatch, SpanRow, SpanTemplate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from otel_expansion.privacy.redaction import Redactor

log = logging.getLogger("otel_expansion.sdk")


class _Chained(SpanProcessor):
    def __init__(self, next_processor: SpanProcessor) -> None:
        self.next = next_processor
        self.next_batch = batch_handler(next_processor)

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
    HTTP clients...) fail closed at every level, ``full`` included: attributes only under keys
    ``privacy.foreign`` lists for the level, each value passing its rule; no events, no status
    description, no link attributes; the span is named after its instrumentation scope (contrib's click
    names it after the typed command, an HTTP client after the URL).
    """

    def __init__(self, level: Level, next_processor: SpanProcessor,
                 count_withheld: Callable[[int], None] | None = None) -> None:
        super().__init__(next_processor)
        self.level = level
        self.allowed = frozenset(n for n, a in signals.ATTRIBUTES.items() if a.level <= level)
        self.withheld = 0  # attributes of other instrumentations' spans not sent (privacy.foreign)
        self.count_withheld = count_withheld  # where they are counted for the backend (``dropped.foreign``)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if self.level < signals.SPAN_LEVEL:
                return
            scope = span.instrumentation_scope
            if scope is None or scope.name != signals.SCOPE_NAME:  # another instrumentation's span: fail closed
                self.next.on_end(self._foreign(span, dict(span.attributes or {}), scope.name if scope else ""))
                return
            if self.level >= Level.FULL:  # everything of ours passes: hand the span on as it is, no copy
                self.next.on_end(span)
                return
            attrs = span.attributes or {}
            allowed = self.allowed
            if not span.events and allowed.issuperset(attrs):
                self.next.on_end(span)  # nothing to remove: no copy
                return
            kept = {k: v for k, v in attrs.items() if k in allowed}
            self.next.on_end(_copy(span, kept, (), span.status))
        except Exception:  # never let telemetry break the host
            log.exception("level filter failed; span dropped")

    def on_end_batch(self, batch: SpanBatch) -> None:
        """The same decisions as ``on_end``, taken once per template (a batch holds our spans only)."""
        try:
            if self.level < signals.SPAN_LEVEL:
                return
            if batch.scope.name != signals.SCOPE_NAME:  # not ours: the per-span, fail-closed path
                for span in batch.spans():
                    self.on_end(span)
                return
            if self.level >= Level.FULL:  # everything of ours passes as it is
                self.next_batch(batch)
                return
            allowed = self.allowed
            templates = batch.templates
            if not all(allowed.issuperset(t.attributes) for t in templates):
                templates = [t._replace(attributes={k: v for k, v in t.attributes.items() if k in allowed})
                             for t in templates]
            rows = batch.rows
            if any(row.events or (row.extra and not allowed.issuperset(row.extra)) for row in rows):
                rows = [row._replace(events=(), extra={k: v for k, v in row.extra.items() if k in allowed}
                                     if row.extra else row.extra) for row in rows]
            self.next_batch(batch.replace(templates, rows))
        except Exception:  # never let telemetry break the host
            log.exception("level filter failed; %d spans dropped", len(batch))

    def _foreign(self, span: ReadableSpan, attrs: dict[str, Any], scope: str) -> ReadableSpan:
        # only keys privacy.foreign lists for the level, each value passing its key's rule
        kept, withheld = foreign.attributes(attrs, self.level)
        if withheld:
            self.withheld += withheld
            if self.count_withheld is not None:
                self.count_withheld(withheld)
        # contrib click names a span by what was typed; the scope is an imported module's name, code's own
        name = foreign.scope_name(scope)
        status = Status(span.status.status_code)  # the description is exception text: never from others
        return _copy(span, kept, (), status, name=name, links=())


class RedactingSpanProcessor(_Chained):
    """Applies the redactor to span names, attribute values, events and status messages."""

    def __init__(self, redactor: Redactor, next_processor: SpanProcessor) -> None:
        super().__init__(next_processor)
        self.redactor = redactor
        # (key, type, value) -> the redacted pairs: spans of one program repeat their attribute values
        self._memo: dict[tuple[str, type, object], Any] = {}  # _CLEAN or the redacted pairs
        self._float_keys: dict[str, Any] = {}
        self._float_memo: dict[tuple[str, type], Any] = {}  # (key, float) -> _CLEAN: floats kept as they are

    def on_end(self, span: ReadableSpan) -> None:
        try:
            r = self.redactor
            source = span.attributes or {}
            attrs, same = self.attributes(source)
            scope = span.instrumentation_scope
            # our own span's name is a program name and a command name (closed vocabulary): by part
            name = r.name(span.name) if scope is not None and scope.name == signals.SCOPE_NAME else r.redact(span.name)
            status = span.status
            if status.description:
                description = r.redact(status.description)
                if description != status.description:
                    status = Status(status.status_code, description)
            cleaned = [(e, *self.attributes(e.attributes or {})) for e in span.events]
            if same and name == span.name and status is span.status and all(c[2] for c in cleaned):
                self.next.on_end(span)  # already clean (our own replayed spans): no copy
                return
            events = [SpanEvent(e.name, event_attrs, e.timestamp) for e, event_attrs, _ in cleaned]
            self.next.on_end(_copy(span, attrs, events, status, name=name))
        except Exception:
            log.exception("redaction failed; span dropped rather than sent unredacted")

    def on_end_batch(self, batch: SpanBatch) -> None:
        """``on_end`` for a batch: names, statuses and shared attributes once per template, then what
        varies per span (memoised per key and value, as for single spans)."""
        try:
            r = self.redactor
            templates: list[SpanTemplate] = []
            changed = False
            for t in batch.templates:
                attrs, same = self.attributes(t.attributes)
                name = r.name(t.name)  # a batch is our own replayed spans: see on_end
                status = t.status
                if status.description:
                    description = r.redact(status.description)
                    if description != status.description:
                        status = Status(status.status_code, description)
                if not same or name != t.name or status is not t.status:
                    changed = True
                    t = SpanTemplate(name, attrs, status, t.trace_state)
                templates.append(t)
            rows: list[SpanRow] = []
            attributes, known = self.attributes, self._known_clean
            for row in batch.rows:
                extra, events = row.extra, row.events
                same = True
                if extra and not known(extra):
                    extra, same = attributes(extra)
                if events and not all(known(a) for _, a, _ in events if a):
                    cleaned = [(n, *attributes(a or {}), t) for n, a, t in events]
                    if not all(c[2] for c in cleaned):
                        same = False
                        events = tuple((n, a, t) for n, a, _, t in cleaned)
                if not same:
                    changed = True
                    row = row._replace(extra=extra, events=events)
                rows.append(row)
            self.next_batch(batch.replace(templates, rows) if changed else batch)
        except Exception:
            log.exception("redaction failed; %d spans dropped rather than sent unredacted", len(batch))

    def _known_clean(self, attrs: Any) -> bool:
        """Whether every pair of ``attrs`` was seen before and left as it is (a span's measured values and
        repeated names): the common case, decided without building anything."""
        memo, floats = self._memo, self._float_memo
        try:
            for k, v in attrs.items():
                t = type(v)
                if (floats.get((k, t)) if t is float else memo.get((k, t, v))) is not _CLEAN:
                    return False
        except TypeError:  # an unhashable value
            return False
        return len(attrs) <= _MEMO_MAX_ATTRS

    def attributes(self, attrs: Any) -> tuple[Any, bool]:
        """``redactor.attributes(attrs)``, memoised per key and value (same result, fewer regex runs),
        and whether it equals ``attrs`` (nothing to redact: then ``attrs`` itself is returned)."""
        r = self.redactor
        if len(attrs) > _MEMO_MAX_ATTRS:
            return dict(r.attributes(attrs)), False
        try:
            return self._memoised(attrs)
        except TypeError:  # an unhashable value: no memo for this mapping
            return dict(r.attributes(attrs)), False

    def _memoised(self, attrs: Any) -> tuple[Any, bool]:
        r = self.redactor
        memo = self._memo
        values = attrs.values()
        types = list(map(type, values))
        hits = list(map(memo.get, zip(attrs.keys(), types, values, strict=True)))
        clean = hits.count(_CLEAN)
        if clean == len(hits):  # every pair seen before and left as it is: nothing to build
            return attrs, True
        if float in types:  # floats are judged by key alone
            clean += list(map(self._float_memo.get, zip(attrs.keys(), types, strict=True))).count(_CLEAN)
            if clean == len(hits):
                return attrs, True
        out: dict[str, Any] = {}
        same = True
        for (k, v), hit in zip(attrs.items(), hits, strict=True):
            if hit is _CLEAN:
                out[k] = v
                continue
            if hit is None:
                if type(v) is float:
                    rule: Any = self._float_keys.get(k)  # (key,) or the redacted pairs
                    if rule is None:
                        # a float's fate depends only on its key: kept under the (redacted) key, or replaced
                        probe = tuple(r.attributes({k: 1.5}).items())
                        rule = (probe[0][0],) if len(probe) == 1 and probe[0][1] == 1.5 else probe
                        self._float_keys[k] = rule
                    if len(rule) == 1 and type(rule[0]) is str:
                        out[rule[0]] = v
                        same = same and rule[0] == k
                        if rule[0] == k:
                            self._float_memo[(k, float)] = _CLEAN
                    else:
                        out.update(rule)
                        same = False
                    continue
                pairs = tuple(r.attributes({k: v}).items())
                unchanged = len(pairs) == 1 and pairs[0][0] == k and type(pairs[0][1]) is type(v) and pairs[0][1] == v
                hit = _CLEAN if unchanged else pairs
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                memo[(k, type(v), v)] = hit
                if unchanged:
                    out[k] = v
                    continue
            out.update(hit)
            same = False
        return out, same and len(out) == len(attrs)


_MEMO_LIMIT = 16384
_MEMO_MAX_ATTRS = 64  # the redactor's own count limit: above it, let it decide what is kept
_CLEAN: Any = object()  # memo: the pair is stored as it is


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
