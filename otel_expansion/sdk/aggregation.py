"""Histogram View aggregations (explicit and base-2 exponential) that also accept a batch of values.

Why: replaying N commands into the SDK used to cost N ``Histogram.record`` calls per histogram, each
walking the SDK's measurement path (attribute copy and hash, view matching, a lock) for one bucket
increment. The replay now groups the values of one series and records them as one :class:`ValueBatch`;
the aggregations in :mod:`otel_expansion.sdk.otel_internals` (the SDK's explicit-bucket and exponential
histograms, selected by our Views; they subclass SDK internals, so they live with the others) fold the batch in value
by value, in order, so count, sum (same float additions in the same order), min, max and bucket counts are
exactly what N single records would have produced. Single values from anyone else take the SDK's path.
The exponential one (durations) hands each value of the batch to the SDK's own exponential aggregation,
so scale changes, bucket growth and counts are the SDK's, by construction.
"""

from __future__ import annotations

from collections.abc import Sequence


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
