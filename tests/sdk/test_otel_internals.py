"""OpenTelemetry's private API is used in one module only, and each use there still does its job.

The version matrix (scripts/matrix.sh) runs these against the lowest and newest SDKs the package declares.
"""

from __future__ import annotations

import ast
import math
import random
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    InMemoryMetricReader,
)
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_expansion.sdk import otel_internals
from otel_expansion.sdk.aggregation import ValueBatch

PACKAGE = Path(otel_internals.__file__).resolve().parent.parent
ADAPTER = Path(otel_internals.__file__).resolve()
PRIVATE_ATTRIBUTES = {"_span_limits", "_active_span_processor", "_span_processors", "_get_empty_bucket_counts",
                      "_boundaries", "_record_min_max", "_create_aggregation"}
"""OpenTelemetry internals the adapter wraps; no other module may name them."""


def _private_otel_uses(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("opentelemetry"):
            private_module = any(part.startswith("_") for part in node.module.split("."))
            private_name = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if private_module or private_name:
                found.append(f"{path.name}:{node.lineno} from {node.module} import {private_name or '...'}")
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Constant) and node.value in PRIVATE_ATTRIBUTES:
            found.append(f"{path.name}:{node.lineno} {node.value!r}")
    return found


def test_private_api_only_in_the_adapter() -> None:
    outside = [use for p in sorted(PACKAGE.rglob("*.py")) if p != ADAPTER for use in _private_otel_uses(p)]
    assert outside == []
    assert _private_otel_uses(ADAPTER)  # the scan does see them where they are


def test_every_internal_is_documented() -> None:
    """The module docstring names each internal the adapter touches, with why."""
    doc = otel_internals.__doc__ or ""
    for name in [*PRIVATE_ATTRIBUTES, "_ExplicitBucketHistogramAggregation", "_BaseConfigurator", "on_end_batch",
                 "_lock", "_value", "_sum", "_min", "_max"]:
        assert f"``{name}``" in doc or f"{name}``" in doc or f".{name}``" in doc, name


def test_span_internals_are_readable() -> None:
    provider = TracerProvider(span_limits=SpanLimits(max_events=7))
    seen = InMemorySpanExporter()
    processor = SimpleSpanProcessor(seen)
    provider.add_span_processor(processor)
    limits = otel_internals.span_limits(provider)
    assert limits is not None and limits.max_events == 7
    active = otel_internals.active_span_processor(provider)
    assert isinstance(active, SpanProcessor)
    assert list(otel_internals.span_processors(active) or ()) == [processor]


def test_batch_handler_falls_back_to_on_end() -> None:
    class Plain(SpanProcessor):
        def __init__(self) -> None:
            self.ended: list[str] = []

        def on_end(self, span: object) -> None:
            self.ended.append(getattr(span, "name", ""))

    class Batch:
        def spans(self) -> list[object]:
            return [type("S", (), {"name": "a"})(), type("S", (), {"name": "b"})()]

    plain = Plain()
    otel_internals.batch_handler(plain)(Batch())  # type: ignore[arg-type]
    assert plain.ended == ["a", "b"]


def test_value_batch_equals_single_records() -> None:
    """The explicit-bucket subclass folds a batch into exactly the state N single records give."""
    values = [0.003, 0.2, 0.2, 7.0, 42.0, 0.0101]
    bounds = (0.01, 0.1, 1.0, 10.0)

    def point(batched: bool) -> HistogramDataPoint:
        reader = InMemoryMetricReader()
        aggregation = otel_internals.BatchingHistogramAggregation(bounds)
        provider = MeterProvider(metric_readers=[reader], views=[View(instrument_name="h", aggregation=aggregation)])
        histogram = provider.get_meter("t").create_histogram("h")
        if batched:
            histogram.record(ValueBatch(values), {"k": "v"})
        else:
            for v in values:
                histogram.record(v, {"k": "v"})
        data = reader.get_metrics_data()
        assert data is not None
        found = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
        assert isinstance(found, HistogramDataPoint)
        return found

    single, batch = point(False), point(True)
    assert (batch.count, batch.sum, batch.min, batch.max, list(batch.bucket_counts)) == (
        single.count, single.sum, single.min, single.max, list(single.bucket_counts))
    assert list(batch.bucket_counts) == [1, 1, 2, 1, 1]  # 0.0101 lies above the 0.01 bound


def _exponential_point(values: list[float], batches: list[int] | None) -> ExponentialHistogramDataPoint:
    """The point N single records (``batches`` None) or ValueBatches of the given sizes leave."""
    reader = InMemoryMetricReader()
    aggregation = otel_internals.BatchingExponentialHistogramAggregation(max_size=160, max_scale=20)
    provider = MeterProvider(metric_readers=[reader], views=[View(instrument_name="h", aggregation=aggregation)])
    histogram = provider.get_meter("t").create_histogram("h")
    if batches is None:
        for v in values:
            histogram.record(v, {"k": "v"})
    else:
        i = 0
        for size in batches:
            histogram.record(ValueBatch(values[i:i + size]), {"k": "v"})
            i += size
    data = reader.get_metrics_data()
    assert data is not None
    found = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    assert isinstance(found, ExponentialHistogramDataPoint)
    return found


def _exponential_state(p: ExponentialHistogramDataPoint) -> tuple[object, ...]:
    """Everything a point says (the bucket arrays without trailing zero buckets: single records grow the
    array in larger steps than a batch, which adds no bucket and changes no count)."""

    def counts(buckets: object) -> list[int]:
        found = list(buckets.bucket_counts)  # type: ignore[attr-defined]
        while found and found[-1] == 0:
            found.pop()
        return found

    return (p.count, p.sum, p.min, p.max, p.scale, p.zero_count, p.positive.offset, counts(p.positive),
            p.negative.offset, counts(p.negative))


def test_exponential_value_batch_equals_single_records() -> None:
    """The exponential subclass folds a batch into exactly the state N single records give: the usual
    batch (all normal, no power of two: counted by C-level maps), and batches with exact powers of two,
    zeros and subnormals (the per-value path), across scale changes."""
    rng = random.Random(7)
    durations = [rng.lognormvariate(-11, 1.5) for _ in range(3000)]  # ~10 us, spread over decades
    assert not any(math.frexp(v)[0] == 0.5 for v in durations)
    mixed = [*durations[:500], 0.5, 0.25, 2.0**-20, 0.0, 5e-324, 1e-310, 3.0, 0.0]
    rng.shuffle(mixed)
    for values, batches in ((durations, [1, 7, 1000, 992, 1000]), (durations, [3000]), (mixed, [100, 408]),
                            (sorted(durations)[::-1], [17, 2983])):
        assert _exponential_state(_exponential_point(values, batches)) == _exponential_state(
            _exponential_point(values, None))


def test_trace_flags_sampled_whatever_the_sdk() -> None:
    flags = otel_internals.trace_flags(TracerProvider().id_generator)
    assert flags.sampled
