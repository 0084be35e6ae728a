"""Plain data the spool stores: aggregated metric points and encoded spans.

The spool knows nothing of OpenTelemetry objects or the network; these records are the whole contract
between the SDK side (which produces them) and the export side (which encodes and sends them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from otel_expansion._types import Attrs, AttrValue

__all__ = [
    "BATCH_ID_ATTRIBUTE", "BATCH_ID_HEADER", "EXPONENTIAL_HISTOGRAM", "HISTOGRAM", "SUM", "AttrValue", "Attrs", "Batch",
    "MetricPoint",
    "SeriesKey", "SpanRecord", "attrs_of",
]

BATCH_ID_ATTRIBUTE = "otel_expansion.batch.id"
"""Resource attribute naming the SDK batch; it survives a collector, unlike the HTTP header. Defined once:
the encoder writes it, the embedded backend reads it."""

SUM = "sum"
HISTOGRAM = "histogram"
EXPONENTIAL_HISTOGRAM = "exponential_histogram"


def attrs_of(mapping: object) -> Attrs:
    """Canonical, hashable form of an attribute mapping (lists become tuples, keys sorted)."""
    items = getattr(mapping, "items", None)
    if items is None:
        return ()
    out = []
    for key, value in items():
        if isinstance(value, list):
            value = tuple(value)
        out.append((str(key), value))
    out.sort(key=lambda kv: kv[0])
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Identity of one metric series: points with equal keys merge across runs."""

    resource: Attrs
    scope_name: str
    scope_version: str
    name: str
    kind: str  # SUM, HISTOGRAM or EXPONENTIAL_HISTOGRAM
    unit: str = ""
    description: str = ""
    attributes: Attrs = ()
    is_monotonic: bool = True
    bounds: tuple[float, ...] = ()  # explicit histogram bucket boundaries


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One delta point. For sums only ``value`` matters; for histograms the rest.

    Explicit-bucket histograms keep one count per bucket of ``key.bounds`` in ``bucket_counts``; base-2
    exponential ones keep their positive buckets there (from ``offset``, at ``scale``), plus ``zero_count``
    and the negative buckets (see :mod:`otel_expansion.otlp.exponential`).
    """

    key: SeriesKey
    start_ns: int
    time_ns: int
    value: float = 0.0
    count: int = 0
    sum: float = 0.0
    min: float = float("inf")
    max: float = float("-inf")
    bucket_counts: tuple[int, ...] = ()
    scale: int = 0
    zero_count: int = 0
    offset: int = 0
    negative_offset: int = 0
    negative_counts: tuple[int, ...] = ()


class SpanRecord(NamedTuple):
    """One finished span, already redacted and encoded as an OTLP ``Span`` protobuf message.

    A named tuple, not a frozen dataclass: a long-running program makes one per command, and a frozen
    dataclass's ``__init__`` cost more than the rest of staging the span."""

    resource: Attrs
    scope_name: str
    scope_version: str
    data: bytes
    end_ns: int


@dataclass(slots=True)
class Batch:
    """Rows reserved for one send; the id is stable across retries so receivers can drop duplicates."""

    id: str
    created_ns: int
    attempts: int
    points: list[MetricPoint] = field(default_factory=list)
    spans: list[SpanRecord] = field(default_factory=list)


BATCH_ID_HEADER = "X-Otel-Expansion-Batch-Id"
"""HTTP header carrying the batch id (plus a per-signal suffix) on every export request."""
