"""The distribution behind a percentile: one figure's merged buckets under a filter, as bars to draw.

A p95 alone hides whether a command is slow for everybody or fast with a slow tail. This answers, for a
command's duration (or all commands'), start-up time, exit time, export latency or session length, the
counts behind the report's percentiles, from the same engine questions the report asks (so both engines
give the same bars, and the bars add up to the report's sample size exactly):

- base-2 exponential buckets (durations since 0.3) are merged exactly for the filter, then coarsened by
  merging neighbours pairwise (one scale down at a time, never moving a count outside the range that held
  it) until at most ``bars`` non-empty buckets remain. Each bar ``(L, U]`` spans a factor
  ``2 ** (2 ** -bar_scale)``: any value it holds is within ``bar_error`` of ``2LU / (L + U)``; the reported
  percentiles are read from the uncoarsened buckets (``quantile_error``, <= 4.33% at scale 3);
- explicit-bucket histograms (data stored before 0.3) are drawn as their own buckets, the open first and
  last ones closed at the recorded min and max; their percentiles are interpolated, with no stated bound;
- session lengths come from the per-session rollup (base-2 buckets at scale 3; their percentiles are the
  exact per-session values the report shows).
"""

from __future__ import annotations

import math
from typing import Any

from otel_expansion.backend.query import Engine, Filter
from otel_expansion.backend.report import (
    DURATION,
    EXPORT_DURATION,
    STARTUP_METRICS,
    UNKNOWN,
    Histogram,
    _hists,
    _quantiles,
    _round,
)
from otel_expansion.backend.rollup import SESSION_SCALE
from otel_expansion.otlp import exponential
from otel_expansion.otlp.exponential import Buckets
from otel_expansion.sdk import signals

__all__ = ["DEFAULT_BARS", "FIGURES", "MAX_BARS", "distribution", "render_distribution"]

FIGURES: dict[str, tuple[str, ...]] = {
    "command": (DURATION,),
    "startup": STARTUP_METRICS,
    "exit": (signals.EXIT_DURATION,),
    "export": (EXPORT_DURATION,),
    "session_length": (),
}
"""What a distribution may be asked of, and the histogram metrics behind it (session lengths: the sessions)."""
DEFAULT_BARS = 40
MAX_BARS = 400
_MIN_SCALE = -10


def coarsen(b: Buckets, bars: int) -> Buckets:
    """The same counts at the finest scale (at most ``b.scale``) where at most ``bars`` buckets are non-empty."""
    while b.scale > _MIN_SCALE and _non_empty(b) > bars:
        b = exponential.downscale(b, b.scale - 1)
    return b


def _non_empty(b: Buckets) -> int:
    return sum(1 for n in b.counts if n) + sum(1 for n in b.negative_counts if n)


def _exponential_bars(b: Buckets) -> list[dict[str, Any]]:
    out = []
    for i in range(len(b.negative_counts) - 1, -1, -1):  # most negative first
        if b.negative_counts[i]:
            lower, upper = exponential.bucket_bounds(b.negative_offset + i, b.scale)
            out.append({"lower": -upper, "upper": -lower, "count": b.negative_counts[i], "kind": "exponential"})
    for i, n in enumerate(b.counts):
        if n:
            lower, upper = exponential.bucket_bounds(b.offset + i, b.scale)
            out.append({"lower": lower, "upper": upper, "count": n, "kind": "exponential"})
    return out


def _explicit_bars(buckets: dict[tuple[float, float], int], lo: float | None, hi: float | None) -> list[dict[str, Any]]:
    """Explicit buckets as bars; an open first or last bucket is closed at the recorded min or max."""
    out = []
    for (lower, upper), n in sorted(buckets.items()):
        if not n:
            continue
        open_lower, open_upper = lower == -math.inf, upper == math.inf
        if open_lower:
            lower = lo if lo is not None and lo <= upper else min(0.0, upper)
        if open_upper:
            upper = hi if hi is not None and hi >= lower else lower
        out.append({"lower": lower, "upper": upper, "count": n, "kind": "explicit",
                    "open_lower": open_lower, "open_upper": open_upper})
    return out


def _from_histogram(h: Histogram | None, bars: int) -> dict[str, Any]:
    if h is None:
        return {"samples": 0, "min_s": None, "max_s": None, **_quantiles(None), "kind": None, "scale": None,
                "quantile_error": None, "bar_scale": None, "bar_error": None, "zero_count": 0, "bars": []}
    lo = h.min if math.isfinite(h.min) else None
    hi = h.max if math.isfinite(h.max) else None
    merged = h.exp.result() if h.exp is not None else None
    if merged is not None and merged.total == 0:
        merged = None
    shown = coarsen(merged, bars) if merged is not None else None
    drawn = _exponential_bars(shown) if shown is not None else []
    drawn += _explicit_bars(h.buckets, lo, hi)
    drawn.sort(key=lambda bar: (bar["lower"], bar["upper"]))
    kind = "mixed" if merged is not None and h.buckets else "exponential" if merged is not None else (
        "explicit" if h.buckets else None)
    return {
        "samples": h.count,
        "min_s": _round(lo),
        "max_s": _round(hi),
        **_quantiles(h),
        "kind": kind,
        "scale": merged.scale if merged is not None else None,
        "quantile_error": _round(exponential.relative_error(merged.scale)) if kind == "exponential" and merged
        else None,
        "bar_scale": shown.scale if shown is not None else None,
        "bar_error": _round(exponential.relative_error(shown.scale)) if shown is not None else None,
        "zero_count": merged.zero_count if merged is not None else 0,
        "bars": drawn,
    }


def _session_lengths(engine: Engine, f: Filter, bars: int) -> dict[str, Any]:
    """Session lengths from the per-session rollup: scale-3 base-2 buckets (older rollups: explicit ones)."""
    positive: dict[int, int] = {}
    zero = 0
    other: dict[tuple[float, float], int] = {}
    for kind, lo, hi, n in engine.sessions(f):
        if kind != "length_s" or not n:
            continue
        lo, hi, n = float(lo), float(hi), int(n)
        if lo == hi and lo <= 0:
            zero += n
            continue
        index = exponential.index_of(hi, SESSION_SCALE) if hi > 0 and math.isfinite(hi) else None
        if index is not None and exponential.bucket_bounds(index, SESSION_SCALE) == (lo, hi):
            positive[index] = positive.get(index, 0) + n
        else:
            other[(lo, hi)] = other.get((lo, hi), 0) + n
    stats = {row[0]: row[1:] for row in engine.session_stats(f, (0.5, 0.95, 0.99))}.get("length_s")
    h = Histogram(buckets=other)
    if positive or zero:
        first = min(positive, default=0)
        counts = [0] * ((max(positive) - first + 1) if positive else 0)
        for i, n in positive.items():
            counts[i - first] += n
        h.add_exponential(Buckets(SESSION_SCALE, zero, first, tuple(counts)))
    if stats is None:
        return _from_histogram(None, bars)
    h.count, h.min, h.max = int(stats[0]), float(stats[1]), float(stats[2])
    out = _from_histogram(h, bars)
    # the report's session figures are exact per-session values (nearest rank), not read from buckets
    out.update({"p50_s": _round(float(stats[3])), "p95_s": _round(float(stats[4])), "p99_s": _round(float(stats[5])),
                "quantile_error": 0.0})
    return out


def distribution(engine: Engine, f: Filter, what: str = "command", command: str | None = None,
                 bars: int = DEFAULT_BARS) -> dict[str, Any]:
    """The bars behind one figure's percentiles under ``f`` (``command``: one command, else all commands)."""
    if what not in FIGURES:
        raise ValueError(f"unknown figure {what!r} (one of {', '.join(FIGURES)})")
    if command is not None and what != "command":
        raise ValueError("a command applies to command durations only")
    bars = max(1, min(int(bars), MAX_BARS))
    if what == "session_length":
        body = _session_lengths(engine, f, bars)
    elif command is None:
        body = _from_histogram(_hists(engine, f, FIGURES[what], []).get(()), bars)
    else:  # the report labels an empty command "(unknown)": that label reads both
        found = [h for name in ({command, ""} if command == UNKNOWN else {command})
                 for h in _hists(engine, f, FIGURES[what], [], name).values() if h.count or h.buckets or h.exp]
        h = found[0] if found else None
        for extra in found[1:]:
            h = _combined(found[0], extra)
        body = _from_histogram(h, bars)
    return {"what": what, "command": command, "requested_bars": bars, **body}


def _combined(a: Histogram, b: Histogram) -> Histogram:
    out = Histogram(buckets=dict(a.buckets), count=a.count + b.count, sum=a.sum + b.sum, min=min(a.min, b.min),
                    max=max(a.max, b.max))
    for key, n in b.buckets.items():
        out.buckets[key] = out.buckets.get(key, 0) + n
    for h in (a, b):
        if h.exp is not None:
            out.add_exponential(h.exp.result())
    return out


# ---------------------------------------------------------------------------------------------- render


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if value < 1e-3:
        return f"{value * 1e6:.3g} us"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def render_distribution(d: dict[str, Any], width: int = 40) -> list[str]:
    """A compact text histogram: one line per bar (range, count, #s), the percentiles and the error bound."""
    name = d["command"] if d["command"] is not None else {"command": "all commands", "startup": "start-up time",
                                                          "exit": "exit time", "export": "export latency",
                                                          "session_length": "session length"}[d["what"]]
    if not d["samples"]:
        return [f"Distribution of {name}: no measurements in this range"]
    bound = (f"percentiles within {d['quantile_error'] * 100:.2f}%" if d["quantile_error"] else
             "percentiles exact" if d["quantile_error"] == 0.0 else "explicit buckets: percentiles interpolated")
    bars_note = f"; bars at scale {d['bar_scale']} (each within {d['bar_error'] * 100:.1f}%)" if d["bar_error"] else ""
    out = [f"Distribution of {name}: n = {d['samples']:,}, p50 {_seconds(d['p50_s'])}, p95 {_seconds(d['p95_s'])},"
           f" p99 {_seconds(d['p99_s'])}, min {_seconds(d['min_s'])}, max {_seconds(d['max_s'])} ({bound}{bars_note})"]
    peak = max([b["count"] for b in d["bars"]] + [d["zero_count"], 1])
    rows = ([("0", "", d["zero_count"])] if d["zero_count"] else []) + [
        (_seconds(b["lower"]), _seconds(b["upper"]), b["count"]) for b in d["bars"]]
    left = max(len(r[0]) for r in rows)
    right = max(len(r[1]) for r in rows)
    digits = max(len(f"{r[2]:,}") for r in rows)
    marks = {key: d[key] for key in ("p50_s", "p95_s", "p99_s") if d[key] is not None}
    for (lower, upper, n), bar in zip(rows, [None] * bool(d["zero_count"]) + d["bars"], strict=True):
        here = [k[:3] for k, v in marks.items() if bar is not None and bar["lower"] < v <= bar["upper"]]
        span = f"{lower:>{left}} .. {upper:<{right}}" if upper else f"{lower:>{left}}    {'':<{right}}"
        line = f"  {span}  {n:>{digits},}  {'#' * max(1, round(width * n / peak))}"
        out.append(line + (f"  <- {', '.join(here)}" if here else ""))
    return out
