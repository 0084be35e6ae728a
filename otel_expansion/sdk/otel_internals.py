"""Everything the package takes from OpenTelemetry's private API, in one place.

Why one module: the public API of opentelemetry-sdk is stable, its underscored names are not, and the
hottest code (the replay of recorded runs) leans on a few of them. Kept here, one SDK minor release that
renames an internal breaks this module and the version matrix (``scripts/matrix.sh``, README "Version
matrix") shows it, instead of a guess spread over the pipeline, the aggregation and the distro.
``tests/sdk/test_otel_internals.py`` holds that no other module of the package touches these names.

Every internal used, and why (each one also has a public fallback, or fails closed, when it is gone):

- ``TracerProvider._span_limits`` (:func:`span_limits`): read only, to know whether the provider's span
  limits could change one of our spans; when they cannot, the replay builds spans directly instead of
  through ``Tracer.start_span``. Missing: the replay takes the tracer's path (same result, slower).
- ``TracerProvider._active_span_processor`` (:func:`active_span_processor`): where ``Span.end()`` hands
  its span; the replay hands its batch there. Missing: the replay takes the tracer's path.
- ``SynchronousMultiSpanProcessor._span_processors`` (:func:`span_processors`): the processors behind
  the provider's multi-processor, so those that know batches (:class:`BatchSpanProcessorHook`) get the
  whole batch once. Missing or not a tuple: every span goes through ``on_end`` of the active processor.
- ``on_end_batch`` (:class:`BatchSpanProcessorHook`, :func:`batch_handler`): not the SDK's, our own
  hook added to its ``SpanProcessor`` interface; a processor without it gets ``on_end`` per span.
- ``opentelemetry.sdk.metrics._internal.aggregation._ExplicitBucketHistogramAggregation`` and its private
  fields ``_lock``, ``_value``, ``_sum``, ``_min``, ``_max``, ``_boundaries``, ``_record_min_max``,
  ``_get_empty_bucket_counts``, plus the view hook ``ExplicitBucketHistogramAggregation._create_aggregation``
  (:class:`BatchingHistogramAggregation`): a histogram that folds a whole
  :class:`~otel_expansion.sdk.aggregation.ValueBatch` in one measurement, with exactly the state N single
  records would leave. No fallback: a renamed internal fails this module's import (the sender and
  service mode contain the failure and keep the data), and the version matrix fails loudly.
- ``opentelemetry.sdk._configuration._BaseConfigurator`` (:func:`base_configurator`): the base class
  ``opentelemetry-instrument`` loads configurators by; there is no public one.

Public names newer than the lowest supported SDK, feature-detected here for the same reason:
``IdGenerator.is_trace_id_random`` and ``TraceFlags.RANDOM_TRACE_ID`` (:func:`trace_flags`).

Overridden protected hooks of public classes, the SDK's documented way to extend them (not re-exported,
listed so a rename is looked for here): ``MetricReader._receive_metrics`` (sdk/staging.py),
``BaseDistro._configure`` and ``_BaseConfigurator._configure`` (auto/distro.py),
``BaseInstrumentor._instrument``/``_uninstrument`` (auto/instrumentors.py).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.trace import TraceFlags

from otel_expansion.sdk.aggregation import ValueBatch

if TYPE_CHECKING:
    from opentelemetry.sdk._configuration import _BaseConfigurator

    from otel_expansion.sdk.spanbatch import SpanBatch

from opentelemetry.sdk.metrics._internal.aggregation import _ExplicitBucketHistogramAggregation


def span_limits(provider: TracerProvider) -> SpanLimits | None:
    """The provider's span limits (``TracerProvider._span_limits``), or None when they cannot be read."""
    limits = getattr(provider, "_span_limits", None)
    return limits if isinstance(limits, SpanLimits) else None


def active_span_processor(provider: TracerProvider) -> SpanProcessor | None:
    """Where ``Span.end()`` hands its span (``TracerProvider._active_span_processor``), or None."""
    active = getattr(provider, "_active_span_processor", None)
    return active if isinstance(active, SpanProcessor) else None


def span_processors(active: SpanProcessor) -> Sequence[SpanProcessor] | None:
    """The processors behind a provider's multi-processor (``_span_processors``), or None when they cannot
    be read (then every span goes through ``on_end`` of the active processor itself)."""
    found = getattr(active, "_span_processors", None)
    return found if isinstance(found, tuple) else None


class BatchSpanProcessorHook(Protocol):
    """A span processor that takes a replayed batch at once (our level filter, redaction, staging)."""

    def on_end_batch(self, batch: SpanBatch) -> None: ...


def batch_handler(processor: SpanProcessor) -> Callable[[SpanBatch], None]:
    """``processor.on_end_batch`` when it has one, else a loop of ``on_end`` over the materialised spans."""
    handler: Callable[[SpanBatch], None] | None = getattr(processor, "on_end_batch", None)
    if handler is not None:
        return handler

    def each(batch: SpanBatch) -> None:
        for span in batch.spans():
            processor.on_end(span)

    return each


class _BatchingHistogram(_ExplicitBucketHistogramAggregation):
    """The SDK's explicit-bucket histogram state, plus folding a :class:`ValueBatch` in value by value."""

    def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
        batch = measurement.value
        if type(batch) is not ValueBatch:
            super().aggregate(measurement, should_sample_exemplar)
            return
        values = batch.values
        if not values:
            return
        state: Any = self  # the SDK's private fields are typed for its own single-value updates
        with self._lock:
            if state._value is None:
                state._value = self._get_empty_bucket_counts()
            counts = state._value
            bounds = self._boundaries
            total = state._sum
            for v in values:  # the same additions, in the same order, as one record() per value
                total += v
                counts[bisect_left(bounds, v)] += 1
            state._sum = total
            if self._record_min_max:
                state._min = min(state._min, min(values))
                state._max = max(state._max, max(values))


class BatchingHistogramAggregation(ExplicitBucketHistogramAggregation):
    """``ExplicitBucketHistogramAggregation`` that understands :class:`ValueBatch` measurements."""

    def _create_aggregation(self, instrument: Any, attributes: Any, reservoir_factory: Any,
                            start_time_unix_nano: int) -> Any:
        stock = super()._create_aggregation(instrument, attributes, reservoir_factory, start_time_unix_nano)
        stock.__class__ = _BatchingHistogram  # same state, one overridden method
        return stock


def trace_flags(id_generator: object) -> TraceFlags:
    """The flags the SDK's tracer gives a new root span: sampled, plus W3C level 2's random-trace-id flag
    when the generator says its ids are random. ``IdGenerator.is_trace_id_random`` and
    ``TraceFlags.RANDOM_TRACE_ID`` are public but newer than the lowest SDK we support (1.30): there the
    tracer sets only the sampled flag, and so do we."""
    random_flag = getattr(TraceFlags, "RANDOM_TRACE_ID", None)
    is_random = getattr(id_generator, "is_trace_id_random", None)
    if random_flag is not None and is_random is not None and is_random():
        return TraceFlags(TraceFlags.SAMPLED | random_flag)
    return TraceFlags(TraceFlags.SAMPLED)


def base_configurator() -> type[_BaseConfigurator]:
    """``opentelemetry.sdk._configuration._BaseConfigurator``: imported on use (it pulls in the SDK's
    whole configuration module, which only ``opentelemetry-instrument`` runs need)."""
    from opentelemetry.sdk._configuration import _BaseConfigurator

    return _BaseConfigurator
