"""Self-health building blocks: failure classes, histogram points, and the sent history's bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_expansion.export import history
from otel_expansion.export.health import failure_class, histogram_point
from otel_expansion.export.transport import Outcome, SendResult
from otel_expansion.otlp.exponential import bucket_bounds, index_of
from otel_expansion.otlp.model import EXPONENTIAL_HISTOGRAM


@pytest.mark.parametrize(("result", "expected"), [
    (SendResult(Outcome.RETRY, status=503), "http_503"),
    (SendResult(Outcome.DROP, status=400), "http_400"),
    (SendResult(Outcome.RETRY, error="connect: [Errno 111] Connection refused"), "refused"),
    (SendResult(Outcome.RETRY, error="read: timed out"), "timeout"),
    (SendResult(Outcome.RETRY, error="tls setup: SSLError: bad certificate"), "tls"),
    (SendResult(Outcome.RETRY, error="send: [Errno 104] Connection reset by peer"), "connection"),
    (SendResult(Outcome.RETRY, error="something else"), "other"),
])
def test_failure_class(result: SendResult, expected: str) -> None:
    """Each failed request is counted under the cause a person would name."""
    assert failure_class(result) == expected


def test_histogram_point_uses_upper_inclusive_buckets() -> None:
    """A value equal to a bound lands in that bound's bucket, as OpenTelemetry defines it."""
    point = histogram_point((), "otel_expansion.spool.size", [1024.0, 1500.0, 1e12], 7)
    assert point.count == 3 and point.min == 1024.0 and point.max == 1e12
    assert point.bucket_counts[0] == 1 and point.bucket_counts[1] == 1 and point.bucket_counts[-1] == 1
    assert len(point.bucket_counts) == len(point.key.bounds) + 1


def test_duration_point_is_base2_exponential_with_every_value_in_its_bucket() -> None:
    """Self-health durations use the views' exponential buckets: each value inside (lower, upper] of its
    bucket, an exact power of two on its bucket's upper edge, nothing lost."""
    values = [0.005, 0.006, 0.25, 1000.0, 1e-5]
    point = histogram_point((), "otel_expansion.export.duration", values, 7, (("outcome", "success"),))
    assert point.key.kind == EXPONENTIAL_HISTOGRAM and point.key.bounds == ()
    assert point.count == 5 and sum(point.bucket_counts) == 5 and point.zero_count == 0
    assert point.scale >= 3  # 1e-5 .. 1000 s fits MAX_SIZE buckets at scale 3 or finer
    for v in values:
        i = index_of(v, point.scale)
        lower, upper = bucket_bounds(i, point.scale)
        assert lower < v <= upper
        assert point.bucket_counts[i - point.offset] >= 1
    assert bucket_bounds(index_of(0.25, point.scale), point.scale)[1] == 0.25


def _entry(i: int, size: int) -> history.SentEntry:
    return history.SentEntry(float(i), "http://127.0.0.1:1", f"b{i}", "traces", 1, size, "http/json", 200,
                             b"{}" + b" " * size, "")


def test_history_keeps_the_newest_within_both_bounds(tmp_path: Path) -> None:
    """Count and byte bounds both hold; the oldest entries go first; clear removes all."""
    home = str(tmp_path / "home")
    for i in range(5):
        history.record(home, _entry(i, 10), max_batches=3, max_bytes=10**6)
    assert [e.batch_id for e in history.entries(home)] == ["b2", "b3", "b4"]
    history.record(home, _entry(9, 5000), max_batches=3, max_bytes=5200)
    assert [e.batch_id for e in history.entries(home)] == ["b9"]
    assert history.entries(home, signal="metrics") == [] and history.entries(home, since=10.0) == []
    assert history.clear(home) == 1 and history.entries(home) == []


def test_history_off_keeps_nothing(tmp_path: Path) -> None:
    """A bound of 0 turns the history off: no directory is created."""
    history.record(str(tmp_path / "home"), _entry(1, 1), max_batches=0, max_bytes=100)
    assert not (tmp_path / "home").exists()
