"""Merging two delta points of one series into one: how the spool keeps one row per series across runs.

Pure and kind-agnostic: every field merges the same way whatever the kind (a sum's histogram fields hold
their neutral values, a histogram's ``value`` stays 0), so the operation is associative and commutative
and the order in which runs reach the spool never matters.
"""

from __future__ import annotations

from otel_expansion.otlp.model import MetricPoint

__all__ = ["add_buckets", "merge"]


def add_buckets(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Elementwise sum; an empty tuple means "no buckets recorded" and acts as all zeros."""
    if not a:
        return b
    if not b:
        return a
    if len(a) != len(b):
        raise ValueError(f"bucket counts differ in length: {len(a)} != {len(b)}")
    return tuple(x + y for x, y in zip(a, b, strict=True))


def merge(a: MetricPoint, b: MetricPoint) -> MetricPoint:
    """One point covering both deltas; ValueError when they belong to different series or bucket layouts."""
    if a.key.bounds != b.key.bounds:
        raise ValueError(f"histogram bounds differ for {a.key.name!r}: {a.key.bounds} != {b.key.bounds}")
    if a.key != b.key:
        raise ValueError(f"cannot merge points of different series: {a.key.name!r} and {b.key.name!r}")
    return MetricPoint(
        key=a.key,
        start_ns=min(a.start_ns, b.start_ns),
        time_ns=max(a.time_ns, b.time_ns),
        value=a.value + b.value,
        count=a.count + b.count,
        sum=a.sum + b.sum,
        min=min(a.min, b.min),
        max=max(a.max, b.max),
        bucket_counts=add_buckets(a.bucket_counts, b.bucket_counts),
    )
