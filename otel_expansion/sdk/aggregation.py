"""Histogram View aggregations (explicit and base-2 exponential) that also accept a batch of values.

Why: replaying N commands into the SDK used to cost N ``Histogram.record`` calls per histogram, each
walking the SDK's measurement path (attribute copy and hash, view matching, a lock) for one bucket
increment. The replay now groups the values of one series and records them as one :class:`ValueBatch`;
this aggregation (the SDK's explicit-bucket histogram, selected by our Views) folds the batch in value by
value, in order, so count, sum (same float additions in the same order), min, max and bucket counts are
exactly what N single records would have produced. Single values from anyone else take the SDK's path.
The exponential one (durations) hands each value of the batch to the SDK's own exponential aggregation,
so scale changes, bucket growth and counts are the SDK's, by construction.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from math import floor, frexp, log
from typing import Any

from opentelemetry.sdk.metrics._internal.aggregation import (
    _ExplicitBucketHistogramAggregation,
    _ExponentialBucketHistogramAggregation,
)
from opentelemetry.sdk.metrics._internal.exponential_histogram.buckets import Buckets as _SdkBuckets
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, ExponentialBucketHistogramAggregation


class ValueBatch(float):
    """Several histogram values of one series, recorded as one measurement.

    A float (the first value) so the SDK's ``Histogram.record`` checks pass; the aggregation reads
    ``values``. Callers pass only finite, non-negative values, as single records would have required.
    """

    values: Sequence[float]

    def __new__(cls, values: Sequence[float]) -> ValueBatch:
        self = super().__new__(cls, values[0] if values else 0.0)
        self.values = values
        return self


class _BatchingHistogram(_ExplicitBucketHistogramAggregation):
    def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
        batch = measurement.value
        if type(batch) is not ValueBatch:
            super().aggregate(measurement, should_sample_exemplar)
            return
        values = batch.values
        if not values:
            return
        state: Any = self  # the SDK's fields are typed for its own single-value updates
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
            total = state._sum
            for v in values:  # the same additions, in the same order, as one record() per value
                total += v
            state._sum = total
            if self._record_min_max:
                state._min = min(state._min, min(values))
                state._max = max(state._max, max(values))
            state._count += len(values)
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
