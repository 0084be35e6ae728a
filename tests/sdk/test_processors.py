"""Privacy span processors and level views, inside a real SDK TracerProvider/MeterProvider."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from otel_expansion.config import Level
from otel_expansion.privacy.redaction import Redactor
from otel_expansion.sdk.pipeline import Pipeline, privacy_chain, views_for
from otel_expansion.sdk.staging import Staging


class Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def provider(level: Level) -> tuple[TracerProvider, Collect]:
    out = Collect()
    tp = TracerProvider()
    tp.add_span_processor(privacy_chain(level, Redactor(), SimpleSpanProcessor(out)))
    return tp, out


def test_spans_dropped_below_enhanced() -> None:
    """basic never lets a span through."""
    tp, out = provider(Level.BASIC)
    tp.get_tracer("t").start_span("x").end()
    assert out.spans == []


def test_unknown_attributes_dropped_below_full_and_redacted_at_full() -> None:
    """Our own spans: attributes outside the signal model are dropped below full; at full they pass, redacted."""
    for level, expect_kept in ((Level.ENHANCED, False), (Level.FULL, True)):
        tp, out = provider(level)
        span = tp.get_tracer("otel_expansion").start_span(
            "deploy to bob@example.com", attributes={"cli.command.name": "deploy", "http.url": "https://h/p?token=1"})
        span.add_event("note", {"who": "carol@example.com"})
        span.end()
        (s,) = out.spans
        assert s.attributes is not None and s.attributes["cli.command.name"] == "deploy"
        assert ("http.url" in s.attributes) is expect_kept
        assert "bob@example.com" not in s.name
        text = repr(dict(s.attributes)) + repr([dict(e.attributes or {}) for e in s.events])
        assert "token=1" not in text and "carol@example.com" not in text


@pytest.mark.parametrize("level", [Level.ENHANCED, Level.FULL])
def test_foreign_spans_fail_closed_at_every_level(level: Level) -> None:
    """Another instrumentation's span keeps only the keys privacy.foreign lists, each value passing its
    rule: no events, no status text; named after its scope (an imported module)."""
    # the scope names an imported module (opentelemetry-instrumentation: a dependency, in every matrix cell)
    import opentelemetry.instrumentation.instrumentor  # noqa: F401
    from opentelemetry.trace import Status, StatusCode

    tp, out = provider(level)
    span = tp.get_tracer("opentelemetry.instrumentation.instrumentor").start_span(
        "jsmith", attributes={"process.command_args": ["tool", "--user", "jsmith"], "process.pid": 4242,
                              "process.executable.name": "/home/jsmith/tool", "error.type": "ValueError",
                              "process.exit.code": 1})
    span.add_event("exception", {"exception.message": "no user jsmith"})
    span.set_status(Status(StatusCode.ERROR, "ValueError: no user jsmith"))
    span.end()
    (s,) = out.spans
    assert s.name == "opentelemetry.instrumentation.instrumentor"
    assert dict(s.attributes or {}) == {"error.type": "ValueError", "process.exit.code": 1}
    assert s.events == () and s.status.status_code == StatusCode.ERROR and not s.status.description


def test_views_drop_instruments_and_attributes_per_level() -> None:
    """basic drops performance instruments; feature attributes beyond the name never reach metrics."""
    staging = Staging()
    p = Pipeline({"service.name": "s"}, Level.BASIC, Redactor(), staging)
    p.instruments["cli.command.cpu_time"].record(1.0, {"cli.command.name": "x"})
    p.instruments["cli.feature.usage"].add(1, {"feature.name": "f", "user": "dave@example.com"})
    p.collect()
    points, _ = staging.take()
    names = {pt.key.name for pt in points}
    assert names == {"cli.feature.usage"}
    assert points[0].key.attributes == (("feature.name", "f"),)
    assert len(views_for(Level.FULL)) == len(views_for(Level.BASIC))


def test_replay_keeps_original_timestamps() -> None:
    """Replayed runs keep their own start/end times on spans and on the aggregated points."""
    staging = Staging()
    p = Pipeline({"service.name": "s"}, Level.ENHANCED, Redactor(), staging)
    p.ingest({"level": 2, "commands": [{"name": "b", "exe": "x", "start": 1_000, "end": 5_000, "exit": 0}]})
    p.collect(1_000, 5_000)
    points, spans = staging.take()
    assert spans and spans[0].end_ns == 5_000
    assert all(pt.start_ns == 1_000 and pt.time_ns == 5_000 for pt in points)


def test_withheld_foreign_attributes_are_counted_where_the_backend_sees_them() -> None:
    """What the filter keeps back of another instrumentation's span is counted in the pipeline's staging
    (taken into ``dropped.foreign`` by the service loop), not only on the processor object."""
    import opentelemetry.instrumentation.instrumentor  # noqa: F401

    staging = Staging()
    p = Pipeline({"service.name": "s"}, Level.ENHANCED, Redactor(), staging)
    tracer = p.tracer_provider.get_tracer("opentelemetry.instrumentation.instrumentor")
    for _ in range(3):  # two attributes withheld each time, one kept
        tracer.start_span("GET /users/jsmith", attributes={
            "url.full": "https://h/users/jsmith", "user.name": "jsmith", "error.type": "ValueError"}).end()
    assert staging.take_withheld() == 6
    assert staging.take_withheld() == 0  # taken once
