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
- ``opentelemetry.sdk.metrics._internal.aggregation._ExponentialBucketHistogramAggregation`` with its
  private fields ``_value_positive``, ``_value_negative``, ``_zero_count``, ``_count``, ``_scale``,
  ``_mapping``, ``_max_size`` and methods ``_get_scale_change``, ``_downscale``, ``_new_mapping``, plus
  ``opentelemetry.sdk.metrics._internal.exponential_histogram.buckets.Buckets``
  (:class:`BatchingExponentialHistogramAggregation`): the base-2 exponential histogram every duration uses
  (bounded relative error from microseconds to minutes), folding a whole ValueBatch with exactly the scale,
  buckets, count, sum, min and max N single records would leave: each sign's extremes go through the SDK's
  own single-value logic (rescale and grow), the rest are added by bucket index. No fallback, as above.
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
from collections import Counter
from collections.abc import Callable, Sequence
from functools import reduce
from itertools import repeat
from math import floor, frexp, ldexp, log
from operator import add, mul
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, ExponentialBucketHistogramAggregation
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.trace import TraceFlags

from otel_expansion.sdk.aggregation import ValueBatch

if TYPE_CHECKING:
    from opentelemetry.sdk._configuration import _BaseConfigurator

    from otel_expansion.sdk.spanbatch import SpanBatch

from opentelemetry.sdk.metrics._internal.aggregation import (
    _ExplicitBucketHistogramAggregation,
    _ExponentialBucketHistogramAggregation,
)
from opentelemetry.sdk.metrics._internal.exponential_histogram.buckets import Buckets as _SdkBuckets


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
            # the same additions, in the same order, as one record() per value (C loops: see the
            # exponential one), and each value's bucket by the same bisect, counted per bucket
            state._sum = reduce(add, values, state._sum)
            for i, n in Counter(map(bisect_left, repeat(bounds, len(values)), values)).items():
                counts[i] += n
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


_MIN_NORMAL = 2.2250738585072014e-308
_LARGE = 1e300


class _BatchingExponentialHistogram(_ExponentialBucketHistogramAggregation):
    def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
        batch = measurement.value
        if type(batch) is not ValueBatch:
            super().aggregate(measurement, should_sample_exemplar)
            return
        values = batch.values
        if not values:
            return
        state: Any = self
        with self._lock:
            if state._value_positive is None:
                state._value_positive = _SdkBuckets()  # type: ignore[no-untyped-call]
            if state._value_negative is None:
                state._value_negative = _SdkBuckets()  # type: ignore[no-untyped-call]
            # the same additions, in the same order, as one record() per value (a C loop of float adds;
            # not sum(), which compensates from Python 3.12 on)
            state._sum = reduce(add, values, state._sum)
            smallest, largest = min(values), max(values)
            if getattr(self, "_record_min_max", True):  # absent in older SDKs (1.30), which always record them
                state._min = min(state._min, smallest)
                state._max = max(state._max, largest)
            state._count += len(values)
            if smallest > 0:  # the usual batch (durations): every value positive, no per-value split
                positive, negative = list(values), []
            else:
                positive = [v for v in values if v > 0]
                negative = [-v for v in values if v < 0]
            zeros = len(values) - len(positive) - len(negative)
            state._zero_count += zeros
            if state._count == state._zero_count:
                state._scale = 0
                return
            # The SDK's single-value path for each sign's extremes first: any scale change and bucket growth
            # the batch needs happens there, exactly as value-by-value recording would make it (the final
            # scale depends only on the range). Every other value then falls inside the grown range.
            rests: list[list[float]] = []
            for side, buckets in ((positive, state._value_positive), (negative, state._value_negative)):
                if side:
                    lo, hi = min(side), max(side)
                    self._place(lo, buckets)
                    side.remove(lo)
                    if side:
                        self._place(hi, buckets)
                        side.remove(hi)
                rests.append(side)
            mapping = state._mapping
            to_index = mapping.map_to_index
            for rest, buckets in zip(rests, (state._value_positive, state._value_negative), strict=True):
                if not rest:
                    continue
                by_index: dict[int, int] = {}
                get = by_index.get
                factor = getattr(mapping, "_scale_factor", None) if mapping.scale > 0 else None
                if factor is None:
                    for v in rest:
                        i = to_index(v)
                        by_index[i] = get(i, 0) + 1
                elif (lo := min(rest)) > _MIN_NORMAL and (hi := max(rest)) < _LARGE and {
                        ldexp(1.0, e) for e in range(frexp(lo)[1] - 1, frexp(hi)[1] + 1)}.isdisjoint(rest):
                    # every value normal and none an exact power of two (the usual batch: checked in C
                    # loops, against the few powers of two between the extremes): LogarithmMapping's
                    # map_to_index is floor(log(v) * factor) for each, computed here by C-level maps, the
                    # same float operations, and counted per index in C
                    by_index = Counter(map(floor, map(mul, map(log, rest), repeat(factor, len(rest)))))
                else:  # LogarithmMapping.map_to_index inlined: normal values, not powers of two
                    for v in rest:
                        normal = _MIN_NORMAL < v < _LARGE and frexp(v)[0] != 0.5
                        i = floor(log(v) * factor) if normal else to_index(v)
                        by_index[i] = get(i, 0) + 1
                base, size = buckets.index_base, len(buckets.counts)
                for i, n in by_index.items():
                    j = i - base
                    if j < 0:
                        j += size
                    buckets.increment_bucket(j, n)

    def _place(self, value: float, buckets: Any) -> None:
        """The SDK's rescale/grow/increment for one positive magnitude (its aggregate(), lock held)."""
        state: Any = self
        index = state._mapping.map_to_index(value)
        low = high = 0
        rescale = False
        if len(buckets) == 0:
            buckets.index_start = buckets.index_end = buckets.index_base = index
        elif index < buckets.index_start and (buckets.index_end - index) >= state._max_size:
            rescale, low, high = True, index, buckets.index_end
        elif index > buckets.index_end and (index - buckets.index_start) >= state._max_size:
            rescale, low, high = True, buckets.index_start, index
        if rescale:
            change = self._get_scale_change(low, high)  # type: ignore[no-untyped-call]
            self._downscale(change, state._value_positive, state._value_negative)
            state._mapping = self._new_mapping(state._mapping.scale - change)
            index = state._mapping.map_to_index(value)
        state._scale = state._mapping.scale
        if index < buckets.index_start:
            span = buckets.index_end - index
            if span >= len(buckets.counts):
                buckets.grow(span + 1, state._max_size)
            buckets.index_start = index
        elif index > buckets.index_end:
            span = index - buckets.index_start
            if span >= len(buckets.counts):
                buckets.grow(span + 1, state._max_size)
            buckets.index_end = index
        bucket_index = index - buckets.index_base
        if bucket_index < 0:
            bucket_index += len(buckets.counts)
        buckets.increment_bucket(bucket_index)


class BatchingExponentialHistogramAggregation(ExponentialBucketHistogramAggregation):
    """``ExponentialBucketHistogramAggregation`` that understands :class:`ValueBatch` measurements."""

    def _create_aggregation(self, instrument: Any, attributes: Any, reservoir_factory: Any,
                            start_time_unix_nano: int) -> Any:
        stock = super()._create_aggregation(instrument, attributes, reservoir_factory, start_time_unix_nano)
        stock.__class__ = _BatchingExponentialHistogram  # same state, one overridden method
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
