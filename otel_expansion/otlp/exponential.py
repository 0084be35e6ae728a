"""Base-2 exponential histogram buckets: index mapping, downscaling, merging and bounded-error quantiles.

Why here, pure and dependency-free: the spool merges points of one series recorded by different runs
(each run's SDK aggregation may have settled on a different scale), the sender builds self-health points,
and both backends merge stored rows at query time. All of them must agree exactly on what an index means,
so the arithmetic lives once, below every user (the OpenTelemetry data model, "ExponentialHistogram"):

- at scale ``s`` the base is ``2 ** (2 ** -s)`` and bucket ``i`` holds values in ``(base**i, base**(i+1)]``;
- going down one scale merges buckets pairwise (``i >> 1``), so any two histograms merge exactly at the
  smaller of their scales: no count is ever dropped or moved outside the range that held it;
- a quantile read from bucket ``(L, U]`` as ``2LU / (L + U)`` is within ``(U - L) / (U + L)`` of every value
  the bucket may hold: 4.33% at scale 3, the coarsest scale :data:`MAX_SIZE` buckets need to span 10 us to
  60 s (and ~1e-6 s to ~1e6 s). Clamping to the recorded [min, max] only moves it closer.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate, compress
from operator import add
from typing import NamedTuple

__all__ = ["MAX_SCALE", "MAX_SIZE", "Accumulator", "Buckets", "bucket_bounds", "downscale", "from_values", "index_of",
           "merge", "merge_all", "quantile", "quantiles", "relative_error", "trimmed"]

MAX_SIZE = 320
"""Buckets per sign: 40 doublings at scale 3, so 10 us .. 60 s (22.5 doublings) keeps every run at scale >= 3."""
MAX_SCALE = 20
"""The SDK's own largest scale."""


class Buckets(NamedTuple):
    """One exponential histogram's buckets: positive counts from ``offset``, zero count, negative counts.

    A named tuple, not a frozen dataclass: the embedded backend builds one per point and per rollup row merged
    (and its server unpickles thousands a request); a tuple is built in C, a frozen dataclass's ``__init__`` sets
    each field through ``object.__setattr__`` (about 2 us against 0.5 on the benchmark box)."""

    scale: int
    zero_count: int = 0
    offset: int = 0
    counts: tuple[int, ...] = ()
    negative_offset: int = 0
    negative_counts: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return self.zero_count + sum(self.counts) + sum(self.negative_counts)


def index_of(value: float, scale: int) -> int:
    """The bucket index of ``abs(value) > 0`` at ``scale`` (exact at powers of two, as the SDK's mappings)."""
    value = abs(value)
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, 0.5 <= mantissa < 1
    if scale <= 0:
        base0 = exponent - 2 if mantissa == 0.5 else exponent - 1
        return base0 >> -scale
    if mantissa == 0.5:  # an exact power of two is the upper (inclusive) edge of its bucket
        return ((exponent - 1) << scale) - 1
    index = math.ceil(math.log2(value) * (1 << scale)) - 1
    # log2 may round across an edge: settle on the bucket whose (lower, upper] truly holds the value
    lower, upper = bucket_bounds(index, scale)
    if value <= lower:
        index -= 1
    elif value > upper:
        index += 1
    return index


def bucket_bounds(index: int, scale: int) -> tuple[float, float]:
    """``(lower, upper]`` of bucket ``index`` at ``scale``."""
    return _edge(index, scale), _edge(index + 1, scale)


def _edge(index: int, scale: int) -> float:
    if scale <= 0:
        return float(math.ldexp(1.0, index << -scale))
    whole, part = divmod(index, 1 << scale)
    return math.ldexp(2.0 ** (part / (1 << scale)), whole)


def relative_error(scale: int) -> float:
    """The largest relative error of a quantile read from one bucket at ``scale`` (before clamping)."""
    base = math.pow(2.0, math.pow(2.0, -scale))
    return (base - 1.0) / (base + 1.0)


def _down(offset: int, counts: Sequence[int], by: int) -> tuple[int, tuple[int, ...]]:
    if by <= 0 or not counts:
        return offset, tuple(counts)
    new_offset = offset >> by
    out = [0] * (((offset + len(counts) - 1) >> by) - new_offset + 1)
    # only the non-empty buckets reach Python (compress skips the empty ones in C): an SDK point spans
    # up to MAX_SIZE buckets of which a few hold counts
    for i in compress(range(offset, offset + len(counts)), counts):
        out[(i >> by) - new_offset] += counts[i - offset]
    return new_offset, tuple(out)


def trimmed(offset: int, counts: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """Without leading and trailing empty buckets: one canonical form, however a buffer grew."""
    start, end = 0, len(counts)
    while start < end and not counts[start]:
        start += 1
    while end > start and not counts[end - 1]:
        end -= 1
    return (offset + start, tuple(counts[start:end])) if start < end else (0, ())



def downscale(b: Buckets, to_scale: int) -> Buckets:
    """The same counts at a scale no finer than ``to_scale`` (buckets merge pairwise per step)."""
    by = b.scale - to_scale
    if by <= 0:
        return b
    offset, counts = _down(b.offset, b.counts, by)
    n_offset, n_counts = _down(b.negative_offset, b.negative_counts, by)
    return Buckets(to_scale, b.zero_count, offset, counts, n_offset, n_counts)


def _span(b: Buckets) -> int:
    return max(len(b.counts), len(b.negative_counts))


def _add(a_off: int, a: Sequence[int], b_off: int, b: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    if not a:
        return trimmed(b_off, b)
    if not b:
        return trimmed(a_off, a)
    if a_off == b_off and len(a) == len(b):  # the common case: one series, one layout
        return trimmed(a_off, tuple(map(add, a, b)))
    start = min(a_off, b_off)
    out = [0] * (max(a_off + len(a), b_off + len(b)) - start)
    i = a_off - start
    out[i: i + len(a)] = a
    j = b_off - start
    out[j: j + len(b)] = map(add, out[j: j + len(b)], b)
    return trimmed(start, out)


def merge(a: Buckets, b: Buckets, max_size: int = MAX_SIZE) -> Buckets:
    """Both histograms' counts at the finer common scale that keeps each sign within ``max_size`` buckets."""
    scale = min(a.scale, b.scale)
    if a.scale == b.scale and not a.negative_counts and not b.negative_counts:  # the common case, directly
        offset, counts = _add(a.offset, a.counts, b.offset, b.counts)
        if len(counts) <= max_size:
            return Buckets(scale, a.zero_count + b.zero_count, offset, counts)
    while True:
        x, y = downscale(a, scale), downscale(b, scale)
        offset, counts = _add(x.offset, x.counts, y.offset, y.counts)
        n_offset, n_counts = _add(x.negative_offset, x.negative_counts, y.negative_offset, y.negative_counts)
        merged = Buckets(scale, x.zero_count + y.zero_count, offset, counts, n_offset, n_counts)
        if _span(merged) <= max_size:
            return merged
        scale -= 1


def _add_all(parts: Sequence[tuple[int, Sequence[int]]]) -> tuple[int, tuple[int, ...]]:
    """The bucket-wise sum of (offset, counts) parts at one scale, trimmed."""
    parts = [p for p in parts if p[1]]
    if not parts:
        return 0, ()
    if len(parts) == 1:
        return trimmed(*parts[0])
    start = min(off for off, _ in parts)
    out = [0] * (max(off + len(c) for off, c in parts) - start)
    for off, c in parts:
        j = off - start
        out[j: j + len(c)] = map(add, out[j: j + len(c)], c)
    return trimmed(start, out)


def merge_all(items: Sequence[Buckets], max_size: int = MAX_SIZE) -> Buckets:
    """:func:`merge` of many histograms at once, equal to merging them pairwise in any order (the coarsest
    input scale, then coarser only while the sum spans more than ``max_size`` buckets; a pairwise chain stops
    at that same scale, since every partial sum spans no more than the whole): one pass over each input's
    buckets instead of a merged copy per input."""
    if len(items) == 1:
        return items[0]
    if len(items) == 2:  # the commonest case (a key in two requests of a group): merge's direct path
        return merge(items[0], items[1], max_size)
    scale = min(b.scale for b in items)
    while True:
        parts = [downscale(b, scale) for b in items]
        offset, counts = _add_all([(x.offset, x.counts) for x in parts])
        n_offset, n_counts = _add_all([(x.negative_offset, x.negative_counts) for x in parts])
        merged = Buckets(scale, sum(x.zero_count for x in parts), offset, counts, n_offset, n_counts)
        if _span(merged) <= max_size:
            return merged
        scale -= 1


def from_values(values: Iterable[float], max_size: int = MAX_SIZE, scale: int = MAX_SCALE) -> Buckets:
    """Buckets of ``values`` at the finest scale (at most ``scale``) that fits ``max_size`` buckets per sign."""
    data = list(values)
    for side in ([v for v in data if v > 0], [-v for v in data if v < 0]):
        if side:
            lo, hi = min(side), max(side)
            while scale > -10 and index_of(hi, scale) - index_of(lo, scale) + 1 > max_size:
                scale -= 1
    pos: dict[int, int] = {}
    neg: dict[int, int] = {}
    zero = 0
    for v in data:
        if v == 0:
            zero += 1
        else:
            side_counts = pos if v > 0 else neg
            i = index_of(v, scale)
            side_counts[i] = side_counts.get(i, 0) + 1
    offset, counts = _dense(pos)
    n_offset, n_counts = _dense(neg)
    return Buckets(scale, zero, offset, counts, n_offset, n_counts)


def _dense(side: dict[int, int]) -> tuple[int, tuple[int, ...]]:
    if not side:
        return 0, ()
    lo = min(side)
    counts = [0] * (max(side) - lo + 1)
    for i, n in side.items():
        counts[i - lo] += n
    return lo, tuple(counts)


def quantile(b: Buckets, q: float, minimum: float | None = None, maximum: float | None = None) -> float | None:
    """The q-quantile (nearest rank: the ceil(q * n)-th smallest value), clamped to [minimum, maximum].

    Read from the bucket holding that rank as ``2LU / (L + U)``: within :func:`relative_error` of the
    true value. The zero bucket reads as 0; negative buckets mirror the positive ones.
    """
    total = b.total
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    estimate: float | None = None
    for i in range(len(b.negative_counts) - 1, -1, -1):  # most negative first
        seen += b.negative_counts[i]
        if seen >= rank:
            lower, upper = bucket_bounds(b.negative_offset + i, b.scale)
            estimate = -2.0 * lower * upper / (lower + upper)
            break
    if estimate is None:
        seen += b.zero_count
        if seen >= rank:
            estimate = 0.0
    if estimate is None:
        for i, n in enumerate(b.counts):
            seen += n
            if seen >= rank:
                lower, upper = bucket_bounds(b.offset + i, b.scale)
                estimate = 2.0 * lower * upper / (lower + upper)
                break
    if estimate is None:  # counts and total disagree: the largest bucket holds the rank
        lower, upper = bucket_bounds(b.offset + max(len(b.counts) - 1, 0), b.scale)
        estimate = upper
    if minimum is not None and math.isfinite(minimum):
        estimate = max(estimate, minimum)
    if maximum is not None and math.isfinite(maximum):
        estimate = min(estimate, maximum)
    return estimate


def quantiles(b: Buckets, qs: Sequence[float], minimum: float | None = None,
              maximum: float | None = None) -> list[float | None]:
    """:func:`quantile` for each of ``qs`` (same values), from one running sum of the buckets (C-speed
    ``accumulate`` and a ``bisect`` per rank): a report reads p50, p95 and p99 of every command."""
    total = b.total
    if total <= 0:
        return [None] * len(qs)
    negative = list(accumulate(reversed(b.negative_counts)))  # most negative first
    below = (negative[-1] if negative else 0) + b.zero_count
    positive = list(accumulate(b.counts))
    out: list[float | None] = []
    for q in qs:
        rank = max(1, math.ceil(q * total - 1e-9))
        if negative and rank <= negative[-1]:
            i = len(b.negative_counts) - 1 - bisect_left(negative, rank)
            lower, upper = bucket_bounds(b.negative_offset + i, b.scale)
            estimate = -2.0 * lower * upper / (lower + upper)
        elif rank <= below:
            estimate = 0.0
        elif positive and rank - below <= positive[-1]:
            lower, upper = bucket_bounds(b.offset + bisect_left(positive, rank - below), b.scale)
            estimate = 2.0 * lower * upper / (lower + upper)
        else:  # counts and total disagree: the largest bucket holds the rank
            estimate = bucket_bounds(b.offset + max(len(b.counts) - 1, 0), b.scale)[1]
        if minimum is not None and math.isfinite(minimum):
            estimate = max(estimate, minimum)
        if maximum is not None and math.isfinite(maximum):
            estimate = min(estimate, maximum)
        out.append(estimate)
    return out


class Accumulator:
    """Merges many histograms (e.g. a report's stored rows) into one, adding whole bucket ranges at once."""

    __slots__ = ("counts", "negative", "offset", "scale", "zero_count")

    def __init__(self) -> None:
        self.scale = MAX_SCALE
        self.zero_count = 0
        self.offset = 0
        self.counts: list[int] = []
        self.negative: dict[int, int] = {}

    def add(self, b: Buckets) -> None:
        if b.scale < self.scale:
            by = self.scale - b.scale
            if self.counts:
                self.offset, down = _down(self.offset, self.counts, by)
                self.counts = list(down)
            self.negative = _shifted(self.negative, by)
            self.scale = b.scale
        self.zero_count += b.zero_count
        offset, counts = b.offset, b.counts
        if b.scale > self.scale:
            offset, counts = _down(offset, counts, b.scale - self.scale)
        if counts:
            if not self.counts:
                self.offset, self.counts = offset, list(counts)
            else:
                if offset < self.offset:
                    self.counts[:0] = [0] * (self.offset - offset)
                    self.offset = offset
                end = offset + len(counts) - self.offset
                if end > len(self.counts):
                    self.counts.extend([0] * (end - len(self.counts)))
                i = offset - self.offset
                self.counts[i:end] = map(add, self.counts[i:end], counts)
        if b.negative_counts:
            by = b.scale - self.scale
            for i, n in enumerate(b.negative_counts, b.negative_offset):
                if n:
                    j = i >> by
                    self.negative[j] = self.negative.get(j, 0) + n

    def result(self) -> Buckets:
        offset, counts = trimmed(self.offset, self.counts)
        n_offset, n_counts = _dense(self.negative)
        return Buckets(self.scale, self.zero_count, offset, counts, n_offset, n_counts)


def _shifted(side: dict[int, int], by: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for i, n in side.items():
        out[i >> by] = out.get(i >> by, 0) + n
    return out
