"""The columnar span batch: the same spans, and the same bytes, as one ReadableSpan at a time.

The replay test (test_replay.py) compares the whole pipeline with the old per-command replay under the
default redactor. These cover what it does not: redaction that changes names and values, a processor
that knows nothing of batches, rows the fast encoder leaves to the protobuf classes, and the level filter
taking what a lower level does not allow.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_expansion.config import Level
from otel_expansion.otlp.encode import span_to_proto
from otel_expansion.privacy.redaction import Redactor
from otel_expansion.sdk.pipeline import Pipeline
from otel_expansion.sdk.spanwire import SpanEncoder
from otel_expansion.sdk.staging import Staging, StagingSpanExporter
from tests.sdk.reference import reference_ingest
from tests.sdk.test_replay import RESOURCE, T0, bodies


def decoded(data: list[bytes]) -> list[trace_pb2.Span]:
    out = []
    for raw in data:
        msg = trace_pb2.Span()
        msg.ParseFromString(raw)
        msg.ClearField("trace_id")
        msg.ClearField("span_id")
        out.append(msg)
    return out


def staged(level: Level, items: list[dict[str, Any]], redactor: Redactor, batched: bool) -> list[trace_pb2.Span]:
    staging = Staging()
    if batched:
        pipeline = Pipeline(RESOURCE, level, redactor, staging)
    else:
        pipeline = Pipeline(RESOURCE, level, redactor, staging,
                            span_processor=SimpleSpanProcessor(StagingSpanExporter(staging)), batched=False)
    for body in items:
        if batched:
            pipeline.ingest(dict(body, level=int(level)))
        else:
            reference_ingest(pipeline, dict(body, level=int(level)))
    return decoded([s.data for s in staging.take()[1]])


@pytest.mark.parametrize("level", [Level.ENHANCED, Level.FULL])
def test_redaction_that_changes_spans_gives_the_same_spans_as_one_at_a_time(level: Level) -> None:
    """Custom patterns that hit a command name, an error type, an argument shape and event attributes:
    the batch redacts each template once and each row's own values, with the per-span result."""
    def redactor() -> Redactor:
        return Redactor(extra_patterns=[r"remote", r"Oops", r"--force", r"bad value", r"csv"])

    items = bodies(seed=7 + int(level), n_bodies=3, per_body=200)
    fast = staged(level, items, redactor(), batched=True)
    slow = staged(level, items, redactor(), batched=False)
    assert len(fast) == len(slow) == 600
    assert fast == slow
    names = {s.name for s in fast}
    assert "svc remote add" not in names and any("[REDACTED" in n or "<" in n for n in names), names


class Recording(SpanProcessor):
    """A processor with no ``on_end_batch``: it must get ReadableSpans, one call each."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def test_a_processor_without_batches_gets_each_span_as_the_tracer_would_end_it() -> None:
    staging = Staging()
    pipeline = Pipeline(RESOURCE, Level.FULL, Redactor(), staging)
    other = Recording()
    pipeline.tracer_provider.add_span_processor(other)
    body = bodies(seed=3, n_bodies=1, per_body=50)[0]
    pipeline.ingest(dict(body, level=int(Level.FULL)))
    ours = staging.take()[1]
    assert len(other.spans) == len(ours) == 50
    for span, record in zip(other.spans, ours, strict=True):
        assert isinstance(span, ReadableSpan) and span.end_time == record.end_ns
        assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "otel_expansion"
        assert span_to_proto(span) == record.data  # same span, ids included, as our staging encoded it
    first = other.spans[0]
    assert first.attributes is not None and first.attributes["session.previous_id"]  # the session's first
    assert all("session.previous_id" not in (s.attributes or {}) for s in other.spans[1:])


def test_level_filter_drops_what_enhanced_does_not_allow_from_a_batch() -> None:
    """Argument shapes and events are full-level: a body recorded at full, replayed at enhanced, loses them."""
    items = bodies(seed=11, n_bodies=1, per_body=100)
    spans = staged(Level.ENHANCED, [dict(items[0], level=int(Level.FULL))], Redactor(), batched=True)
    assert len(spans) == 100
    assert not any(s.events for s in spans)
    assert not any(kv.key == "cli.command.args" for s in spans for kv in s.attributes)


def test_rows_the_fast_encoder_leaves_alone_are_encoded_by_the_protobuf_classes() -> None:
    """Zero times and an integer outside int64 fall back per row (the exporter's encoder decides), not per
    batch: the other rows keep the fast path, and nothing is dropped."""
    staging = Staging()
    pipeline = Pipeline(RESOURCE, Level.FULL, Redactor(), staging)
    commands: list[dict[str, Any]] = [
        {"name": "job", "exe": "svc", "start": T0, "end": T0 + 10, "exit": 0},
        {"name": "job", "exe": "svc", "start": 0, "end": 0, "exit": 0},  # a clock at the epoch
        {"name": "job", "exe": "svc", "start": T0 + 20, "end": T0 + 30, "exit": 0, "mem": 1 << 70},
        {"name": "job", "exe": "svc", "start": T0 + 40, "end": T0 + 50, "exit": 0},
    ]
    pipeline.ingest({"commands": commands, "level": int(Level.FULL), "session": "s"})
    records = staging.take()[1]
    assert staging.take_dropped() == 0
    assert [r.end_ns for r in records] == [T0 + 10, 0, T0 + 30, T0 + 50]
    spans = decoded([r.data for r in records])
    assert [s.name for s in spans] == ["svc job"] * 4
    assert spans[1].start_time_unix_nano == 0 and spans[1].end_time_unix_nano == 0
    memory = [kv.value for kv in spans[2].attributes if kv.key == "cli.command.memory.peak"]
    assert memory and memory[0].string_value == str(1 << 70)  # what the OTLP exporters' encoder makes of it


def test_encode_batch_equals_encode_of_the_materialised_span() -> None:
    staging = Staging()
    pipeline = Pipeline(RESOURCE, Level.FULL, Redactor(), staging)
    captured: list[Any] = []

    class Capture(SpanProcessor):
        def on_end_batch(self, batch: Any) -> None:
            captured.append(batch)

        def on_end(self, span: ReadableSpan) -> None:
            raise AssertionError("a batch-aware processor gets the batch")

    pipeline.tracer_provider.add_span_processor(Capture())
    for body in bodies(seed=5, n_bodies=2, per_body=120):
        pipeline.ingest(dict(body, level=int(Level.FULL)))
    assert captured and sum(len(b) for b in captured) == 240
    encoder = SpanEncoder()
    for batch in captured:
        for row, data in zip(batch.rows, encoder.encode_batch(batch), strict=True):
            assert data == SpanEncoder().encode(batch.span(row)) == span_to_proto(batch.span(row))


def test_sampled_rows_encode_their_tracestate_as_the_protobuf_classes_do() -> None:
    """Commands kept by the service's span sample (``th``): the batch encoder writes the template's
    tracestate (``ot=th:...``) where ``span_to_proto`` does, bytes equal."""
    staging = Staging()
    pipeline = Pipeline(RESOURCE, Level.FULL, Redactor(), staging)
    captured: list[Any] = []

    class Capture(SpanProcessor):
        def on_end_batch(self, batch: Any) -> None:
            captured.append(batch)

    pipeline.tracer_provider.add_span_processor(Capture())
    for body in bodies(seed=7, n_bodies=1, per_body=60):
        commands = [dict(c, th=1 + i % 3) if i % 2 else c for i, c in enumerate(body["commands"])]
        pipeline.ingest(dict(body, commands=commands, level=int(Level.FULL)))
    encoder = SpanEncoder()
    states = set()
    for batch in captured:
        for row, data in zip(batch.rows, encoder.encode_batch(batch), strict=True):
            assert data == span_to_proto(batch.span(row))
            states.add(trace_pb2.Span.FromString(data).trace_state)
    assert states == {"", "ot=th:8", "ot=th:c", "ot=th:e"}
