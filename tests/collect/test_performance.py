"""CPU and peak memory readings."""

from __future__ import annotations

from otel_expansion.collect import performance


def test_cpu_time_advances_with_work() -> None:
    """CPU seconds grow while the process computes."""
    before = performance.cpu_seconds()
    sum(i * i for i in range(300_000))
    assert performance.cpu_seconds() > before


def test_peak_rss_is_plausible_and_grows() -> None:
    """Peak RSS is reported in bytes and reflects a large allocation."""
    before = performance.peak_rss_bytes()
    assert before is not None and 1 << 20 < before < 1 << 40
    blob = bytearray(64 << 20)
    blob[::4096] = b"x" * len(blob[::4096])
    after = performance.peak_rss_bytes()
    assert after is not None and after >= before + (32 << 20)
