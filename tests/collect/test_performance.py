"""CPU and peak memory readings."""

from __future__ import annotations

import subprocess
import sys

from otel_expansion import collect as performance
from tests.conftest import ROOT

PEAK = """
from otel_expansion import collect as performance
before = performance.peak_rss_bytes()
blob = bytearray(max(512 << 20, before + (256 << 20)))  # above any high-water mark inherited from the runner
blob[::4096] = b"x" * len(blob[::4096])
print(before, performance.peak_rss_bytes())
"""


def test_cpu_time_advances_with_work() -> None:
    """CPU seconds grow while the process computes."""
    before = performance.cpu_seconds()
    sum(i * i for i in range(300_000))
    assert performance.cpu_seconds() > before


def test_peak_rss_is_plausible_and_grows() -> None:
    """Peak RSS is reported in bytes and reflects a large allocation.

    Linux keeps a forked parent's high-water mark across exec, so the child's starting peak can be the
    test runner's; the child allocates 256 MiB above whatever baseline it starts with.
    """
    out = subprocess.run([sys.executable, "-c", PEAK], capture_output=True, text=True, check=True, cwd=ROOT,
                         timeout=30).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert 1 << 20 < before < 1 << 40 and after > before + (128 << 20) and after >= 512 << 20
