"""Merging two delta points of one series into one: how the spool keeps one row per series across runs.

Pure: every field merges the same way whatever the kind (a sum's histogram fields hold their neutral
values, a histogram's ``value`` stays 0); exponential histograms merge their buckets at the coarser of the
two scales (pairwise downscaling, exact), so the operation is associative and commutative and the order in
which runs reach the spool never matters.

Points merge only within one UTC day (the day of their end, ``time_ns // DAY_NS``, where a backend files a
delta point): the spool keeps one open row per series and day (``schema.day_key_hash``) and the replay
collects one point per series and day (``sdk/replay.py``), so every count lands on the day its commands
ran, and a series costs at most one row per day whatever the number of runs.
"""

from __future__ import annotations

import dataclasses

from otel_expansion.otlp import exponential
from otel_expansion.otlp.model import EXPONENTIAL_HISTOGRAM, MetricPoint

__all__ = ["DAY_NS", "add_buckets", "buckets_of", "day_of", "merge", "within_day"]

DAY_NS = 86_400 * 10**9
"""One UTC day: the unit a backend files delta points under (by their end)."""


def day_of(ns: int) -> int:
    """The UTC day (days since the epoch) of an instant."""
    return ns // DAY_NS


def within_day(p: MetricPoint) -> MetricPoint:
    """``p`` with its window starting no earlier than the UTC day it ends on: the windows of one series'
    points on different days never overlap (a point whose collection straddled midnight, a long-running
    program's, is filed whole on the day it ended)."""
    floor = p.time_ns // DAY_NS * DAY_NS
    return p if p.start_ns >= floor else dataclasses.replace(p, start_ns=floor)


def buckets_of(p: MetricPoint) -> exponential.Buckets:
    """An exponential point's buckets."""
    return exponential.Buckets(p.scale, p.zero_count, p.offset, p.bucket_counts, p.negative_offset,
                               p.negative_counts)


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
    if a.key.kind == EXPONENTIAL_HISTOGRAM:  # exact at the coarser scale of the two (downscaled pairwise)
        e = exponential.merge(buckets_of(a), buckets_of(b))
        return MetricPoint(
            key=a.key, start_ns=min(a.start_ns, b.start_ns), time_ns=max(a.time_ns, b.time_ns),
            count=a.count + b.count, sum=a.sum + b.sum, min=min(a.min, b.min), max=max(a.max, b.max),
            bucket_counts=e.counts, scale=e.scale, zero_count=e.zero_count, offset=e.offset,
            negative_offset=e.negative_offset, negative_counts=e.negative_counts,
        )
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
