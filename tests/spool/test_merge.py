"""Properties of merging delta points: the spool may combine runs in any order and grouping."""

from __future__ import annotations

import math
import random
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_expansion.otlp.model import HISTOGRAM, SUM, MetricPoint, SeriesKey
from otel_expansion.spool.merge import add_buckets, merge

RESOURCE = (("service.name", "tool"), ("service.version", "1.2.3"))
SUM_KEY = SeriesKey(RESOURCE, "scope", "1", "cli.command.invocations", SUM, attributes=(("cmd", "build"),))
HIST_KEY = SeriesKey(
    RESOURCE, "scope", "1", "cli.command.duration", HISTOGRAM, unit="s", bounds=(0.1, 1.0, 10.0)
)

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
times = st.integers(min_value=0, max_value=2**62)


@st.composite
def points(draw: st.DrawFn, key: SeriesKey | None = None) -> MetricPoint:
    key = key if key is not None else draw(st.sampled_from([SUM_KEY, HIST_KEY]))
    start = draw(times)
    if key.kind == SUM:
        return MetricPoint(key, start, start + draw(times), value=draw(finite))
    observed = draw(st.lists(finite, min_size=0, max_size=5))
    buckets = draw(
        st.lists(st.integers(0, 10**6), min_size=len(key.bounds) + 1, max_size=len(key.bounds) + 1)
    )
    return MetricPoint(
        key,
        start,
        start + draw(times),
        count=sum(buckets),
        sum=math.fsum(observed),
        min=min(observed, default=math.inf),
        max=max(observed, default=-math.inf),
        bucket_counts=tuple(buckets),
    )


def same_key_points(n_min: int, n_max: int) -> st.SearchStrategy[list[MetricPoint]]:
    return st.sampled_from([SUM_KEY, HIST_KEY]).flatmap(
        lambda key: st.lists(points(key), min_size=n_min, max_size=n_max)
    )


def close(x: float, y: float, *parts: MetricPoint, field: str) -> bool:
    """Equal within the rounding error of adding the parts' magnitudes."""
    scale = sum(abs(getattr(p, field)) for p in parts)
    return math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12 * scale + 1e-300)


def assert_equal_up_to_rounding(a: MetricPoint, b: MetricPoint, *parts: MetricPoint) -> None:
    assert a.key == b.key
    assert (a.start_ns, a.time_ns, a.count, a.min, a.max, a.bucket_counts) == (
        b.start_ns,
        b.time_ns,
        b.count,
        b.min,
        b.max,
        b.bucket_counts,
    )
    assert close(a.value, b.value, *parts, field="value")
    assert close(a.sum, b.sum, *parts, field="sum")


class TestMergeProperties:
    @given(same_key_points(3, 3))
    def test_associative(self, pts: list[MetricPoint]) -> None:
        """Grouping does not matter: (a+b)+c equals a+(b+c), sums within float rounding."""
        a, b, c = pts
        assert_equal_up_to_rounding(merge(merge(a, b), c), merge(a, merge(b, c)), a, b, c)

    @given(same_key_points(2, 2))
    def test_commutative(self, pts: list[MetricPoint]) -> None:
        """Order does not matter: a+b equals b+a exactly."""
        a, b = pts
        assert merge(a, b) == merge(b, a)

    @given(same_key_points(1, 12), st.randoms(use_true_random=False))
    def test_preserves_counts_buckets_and_extremes(self, pts: list[MetricPoint], rnd: random.Random) -> None:
        """Any merge order keeps exact counts, bucket totals, extremes and the covered time range."""
        shuffled = list(pts)
        rnd.shuffle(shuffled)
        total = reduce(merge, shuffled)
        assert total.count == sum(p.count for p in pts)
        width = len(pts[0].bucket_counts)
        assert total.bucket_counts == tuple(sum(p.bucket_counts[i] for p in pts) for i in range(width))
        assert sum(total.bucket_counts) == sum(sum(p.bucket_counts) for p in pts)
        assert total.min == min(p.min for p in pts)
        assert total.max == max(p.max for p in pts)
        assert total.start_ns == min(p.start_ns for p in pts)
        assert total.time_ns == max(p.time_ns for p in pts)
        assert close(total.value, math.fsum(p.value for p in pts), *pts, field="value")
        assert close(total.sum, math.fsum(p.sum for p in pts), *pts, field="sum")

    @given(points(SUM_KEY), st.integers(-(10**9), 10**9), st.integers(-(10**9), 10**9))
    @settings(max_examples=50)
    def test_integral_sums_are_exact(self, base: MetricPoint, x: int, y: int) -> None:
        """Counter values that are whole numbers add exactly, as the spool's totals rely on."""
        a = MetricPoint(SUM_KEY, base.start_ns, base.time_ns, value=float(x))
        b = MetricPoint(SUM_KEY, base.start_ns, base.time_ns, value=float(y))
        assert merge(a, b).value == float(x + y)


class TestMergeRejects:
    @given(points(SUM_KEY), points(HIST_KEY))
    @settings(max_examples=25)
    def test_different_keys(self, a: MetricPoint, b: MetricPoint) -> None:
        """Points of different series are never combined."""
        other = MetricPoint(
            SeriesKey(RESOURCE, "scope", "1", "cli.command.invocations", SUM, attributes=(("cmd", "test"),)),
            a.start_ns,
            a.time_ns,
            value=1.0,
        )
        with pytest.raises(ValueError, match="different series"):
            merge(a, other)
        with pytest.raises(ValueError):
            merge(a, b)

    def test_different_bounds(self) -> None:
        """Histograms with different bucket boundaries are rejected with a bounds message."""
        other_key = SeriesKey(
            RESOURCE, "scope", "1", "cli.command.duration", HISTOGRAM, unit="s", bounds=(1.0,)
        )
        a = MetricPoint(HIST_KEY, 0, 1, count=1, bucket_counts=(1, 0, 0, 0))
        b = MetricPoint(other_key, 0, 1, count=1, bucket_counts=(0, 1))
        with pytest.raises(ValueError, match="bounds differ"):
            merge(a, b)

    def test_bucket_length_mismatch(self) -> None:
        """Bucket tuples of different lengths cannot be added elementwise."""
        a = MetricPoint(HIST_KEY, 0, 1, count=1, bucket_counts=(1, 0, 0, 0))
        b = MetricPoint(HIST_KEY, 0, 1, count=1, bucket_counts=(1, 0))
        with pytest.raises(ValueError, match="differ in length"):
            merge(a, b)

    def test_empty_buckets_act_as_zeros(self) -> None:
        """An empty bucket tuple means none recorded, so it merges as zeros rather than failing."""
        assert add_buckets((), (1, 2)) == (1, 2)
        assert add_buckets((3, 4), ()) == (3, 4)
        assert add_buckets((1, 2), (3, 4)) == (4, 6)
