"""CPU time and peak memory of the current process, cheaply.

``resource.getrusage`` costs ~1 ms to import and nothing to call; psutil (~56 ms) is only imported where
``resource`` does not exist (Windows), and only when a command finishes.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def cpu_seconds() -> float:
    """User + system CPU seconds consumed by this process so far."""
    return time.process_time()


_rusage: list[Any] = []  # [resource.getrusage, RUSAGE_SELF] once loaded, [None, 0] without ``resource``


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process in bytes, or None when unknown.

    Called once per command at ``enhanced``: ``resource`` is looked up once, not imported per call.
    """
    if not _rusage:
        _load_rusage()
    getrusage, who = _rusage
    if getrusage is None:
        return _psutil_peak()
    try:
        peak = getrusage(who).ru_maxrss
    except (OSError, ValueError):
        return None
    # Linux reports KiB, macOS bytes.
    return int(peak) * _SCALE


_SCALE = 1 if sys.platform == "darwin" else 1024


def _load_rusage() -> None:
    try:
        import resource
    except ImportError:  # Windows
        _rusage[:] = [None, 0]
        return
    _rusage[:] = [resource.getrusage, resource.RUSAGE_SELF]


def _psutil_peak() -> int | None:
    try:
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    except Exception:
        return None


_TICKS: list[int] = []


def startup_seconds(command_start_mono_ns: int) -> float | None:
    """Seconds from the process's start to ``command_start_mono_ns`` (a ``perf_counter_ns`` reading).

    Linux: ``starttime`` of ``/proc/self/stat`` (clock ticks since boot, 10 ms resolution) against
    ``CLOCK_BOOTTIME``, with two os-level calls; no psutil. None where that is unavailable.
    """
    try:
        fd = os.open("/proc/self/stat", os.O_RDONLY)
    except (OSError, AttributeError):
        return None
    try:
        raw = os.read(fd, 1024)
        now_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        now_mono = time.perf_counter_ns()
        if not _TICKS:
            _TICKS.append(os.sysconf("SC_CLK_TCK"))
        # the command name (field 2) may hold spaces and parentheses: fields resume after the last ")"
        start_ticks = int(raw[raw.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    finally:
        os.close(fd)
    started = start_ticks / _TICKS[0]
    command_start = now_boot - (now_mono - command_start_mono_ns) / 1e9
    return max(0.0, command_start - started)
