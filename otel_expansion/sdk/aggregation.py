"""A histogram View aggregation that also accepts a batch of values in one measurement.

Why: replaying N commands into the SDK used to cost N ``Histogram.record`` calls per histogram, each
walking the SDK's measurement path (attribute copy and hash, view matching, a lock) for one bucket
increment. The replay now groups the values of one series and records them as one :class:`ValueBatch`;
this aggregation (the SDK's explicit-bucket histogram, selected by our Views) folds the batch in value by
value, in order, so count, sum (same float additions in the same order), min, max and bucket counts are
exactly what N single records would have produced. Single values from anyone else take the SDK's path.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics._internal.aggregation import _ExplicitBucketHistogramAggregation
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation


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
