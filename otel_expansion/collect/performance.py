"""CPU time and peak memory of the current process, cheaply.

``resource.getrusage`` costs ~1 ms to import and nothing to call; psutil (~56 ms) is only imported where
``resource`` does not exist (Windows), and only when a command finishes.
"""

from __future__ import annotations

import sys
import time


def cpu_seconds() -> float:
    """User + system CPU seconds consumed by this process so far."""
    return time.process_time()


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process in bytes, or None when unknown."""
    try:
        import resource
    except ImportError:  # Windows
        try:
            import psutil

            info = psutil.Process().memory_info()
            return int(getattr(info, "peak_wset", info.rss))
        except Exception:
            return None
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (OSError, ValueError):
        return None
    # Linux reports KiB, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024
