"""The writer's in-place exponential rollup rows (store._ExpRow) store what exponential.merge would, byte for byte."""

from __future__ import annotations

import random

from otel_expansion.backend.rollup import encode_exponential
from otel_expansion.backend.store import _ExpRow
from otel_expansion.otlp import exponential
from otel_expansion.otlp.exponential import Buckets


def _random_buckets(rng: random.Random, scale: int) -> Buckets:
    """Buckets as senders and merges make them: mostly trimmed, sometimes with empty end buckets, sometimes
    none at all, sometimes with negative buckets, a zero count, wide enough at times to pass MAX_SIZE merged."""
    width = rng.choice([0, 1, 3, 20, 60, 150, 300])
    counts = [rng.choice([0, 0, 1, 2, 5, 40]) for _ in range(width)]
    if counts and rng.random() < 0.7:
        counts[0] = counts[-1] = 1
    negative: tuple[int, ...] = ()
    if rng.random() < 0.05:
        negative = (1, 0, 2)
    return Buckets(scale, rng.choice([0, 0, 3]), rng.randrange(-400, 200), tuple(counts), rng.randrange(-20, 20),
                   negative)


def test_in_place_rows_equal_merge() -> None:
    rng = random.Random(23)
    for _ in range(400):
        scale = rng.choice([3, 3, 3, 2])
        first = _random_buckets(rng, 3)
        row = _ExpRow(first)
        expected = first
        for _ in range(rng.randrange(1, 12)):
            b = _random_buckets(rng, scale if rng.random() < 0.9 else 1)
            expected = exponential.merge(expected, b)
            if not row.add(b):  # what the store does: the general merge, then a fresh row
                row = _ExpRow(exponential.merge(row.buckets(), b))
            assert row.buckets() == expected
            assert row.encoded() == encode_exponential(expected)
            assert sum(row.counts) + row.zero_count + sum(row.negative_counts) == expected.total


def test_common_case_adds_in_place() -> None:
    """Same scale, positive buckets, within MAX_SIZE: added in place (no merged copy), extending either end."""
    row = _ExpRow(Buckets(3, 1, 10, (1, 2, 3)))
    assert row.add(Buckets(3, 2, 8, (4, 0, 5)))
    assert row.add(Buckets(3, 0, 14, (7,)))
    assert (row.offset, row.counts, row.zero_count) == (8, [4, 0, 6, 2, 3, 0, 7], 3)
    assert not row.add(Buckets(2, 0, 0, (1,)))  # another scale: exponential.merge decides
    assert not row.add(Buckets(3, 0, 8 + exponential.MAX_SIZE, (1,)))  # past MAX_SIZE: merge downscales
    assert (row.offset, row.counts, row.zero_count) == (8, [4, 0, 6, 2, 3, 0, 7], 3)  # unchanged by a refusal
