"""Rollups kept at ingest: what one request adds to the per-day aggregates the report reads.

Pure functions over decoded rows, no SQL. The keys are the report's dimensions, every value a string
('' when absent), spelled as the collector's ClickHouse exporter spells attribute values (``AsString``:
``true``/``false``, integers in decimal), so both engines group by identical values:
- metric rollup: (metric, UTC day, service, version, command, outcome, error type, label) -> value
  (sum of deltas; a gauge keeps its latest value), count, sum, min, max of histograms;
- bucket rollup: (metric, day, service, version, command, label, lower, upper) -> count;
- environment rollup: (day, service, version, key, value) -> invocations.
``label`` is the one extra attribute a metric is grouped by (feature name, drop reason, hour of week...).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DAY_NS",
    "ENVIRONMENT_KEYS",
    "INVOCATIONS",
    "LABELS",
    "SESSION_BOUNDS",
    "Rollup",
    "as_string",
    "bucket_of",
]

DAY_NS = 86_400 * 10**9
INVOCATIONS = "cli.command.invocations"
ENVIRONMENT_KEYS = ("os.type", "host.arch", "process.runtime.version", "ci.detected", "container.detected")
LABELS = {
    "cli.feature.usage": "feature.name",
    "cli.activity": "activity.hour_of_week",
    "cli.exceptions.handled": "exception.handled",
    "otel_expansion.spool.dropped": "reason",
    "otel_expansion.export.failures": "reason",
}
"""The attribute each metric is grouped by besides command, outcome and error type."""

SESSION_BOUNDS = {
    "length_s": (1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0),
    "commands": (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0),
}
"""Bucket layouts of the session rollup (the SDK's own session histogram layouts)."""


def as_string(value: Any) -> str:
    """An attribute value as the ClickHouse exporter stores it in its String maps."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def bucket_of(value: float, bounds: tuple[float, ...]) -> tuple[float, float]:
    """The (lower, upper] explicit-bounds bucket holding ``value`` (OTel: upper bound inclusive)."""
    lower = -math.inf
    for bound in bounds:
        if value <= bound:
            return lower, bound
        lower = bound
    return lower, math.inf


MetricKey = tuple[str, int, str, str, str, str, str, str]
BucketKey = tuple[str, int, str, str, str, str, float, float]
EnvKey = tuple[int, str, str, str, str]


@dataclass(slots=True)
class Rollup:
    """Aggregates of one request, merged in memory before one upsert per key."""

    metrics: dict[MetricKey, list[Any]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    buckets: dict[BucketKey, int] = field(default_factory=dict)
    env: dict[EnvKey, float] = field(default_factory=dict)
    active: set[tuple[int, str, str, str]] = field(default_factory=set)

    def add_number(self, key: MetricKey, kind: str, value: float, end_ns: int) -> None:
        self.kinds[key[0]] = kind
        acc = self.metrics.get(key)
        if acc is None:
            self.metrics[key] = [value, 0, 0.0, None, None, end_ns]
        elif kind == "gauge":
            if end_ns >= acc[5]:
                acc[0], acc[5] = value, end_ns
        else:
            acc[0] += value
            acc[5] = max(acc[5], end_ns)

    def add_histogram(
        self,
        key: MetricKey,
        count: int,
        total: float | None,
        minimum: float | None,
        maximum: float | None,
        bounds: list[float],
        counts: list[int],
        end_ns: int,
    ) -> None:
        self.kinds[key[0]] = "histogram"
        acc = self.metrics.get(key)
        if acc is None:
            acc = self.metrics[key] = [0.0, 0, 0.0, None, None, end_ns]
        acc[1] += count
        acc[2] += total or 0.0
        if minimum is not None:
            acc[3] = minimum if acc[3] is None else min(acc[3], minimum)
        if maximum is not None:
            acc[4] = maximum if acc[4] is None else max(acc[4], maximum)
        acc[5] = max(acc[5], end_ns)
        metric, day, service, version, command, _outcome, _error, label = key
        edges = [-math.inf, *bounds, math.inf]
        for i, n in enumerate(counts[: len(edges) - 1]):
            if n:
                bkey = (metric, day, service, version, command, label, edges[i], edges[i + 1])
                self.buckets[bkey] = self.buckets.get(bkey, 0) + n
