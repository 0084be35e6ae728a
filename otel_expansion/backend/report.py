"""The questions a product team asks of its telemetry, answered by an engine as one JSON-ready dict.

Each section is one grouped query to an :class:`~otel_expansion.backend.query.Engine`: the embedded
store's rollups (query.py) or the collector's ClickHouse tables (clickhouse.py); this module only merges
the few rows that come back, so report time depends on the number of groups, not of stored rows.
Metrics are the source of truth for counts (they exist at every collection level); sessions come from
span session ids, open sessions included. Each point is dated by its end time (UTC days); the SDK
merges runs into one point per send, so per-day usage is as fine as the send interval.

Percentiles of durations come from base-2 exponential buckets (sent as OTLP ExponentialHistogram since
0.3): the nearest-rank quantile read from the bucket holding it, within 4.4% of the true value from
microseconds to minutes, clamped to [min, max]. Explicit-bucket data (older data, other histograms) is
read as before: every bucket's counts spread evenly over its range, so with one bucket layout this is
the usual linear interpolation inside the bucket holding the rank, and points with different layouts
still merge. Open-ended first/last buckets are closed with the observed min/max, and estimates are
clamped to [min, max].
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from otel_expansion.backend.error_groups import error_groups, render_error_groups
from otel_expansion.backend.query import Engine, Filter, SQLiteEngine
from otel_expansion.backend.rollup import DAY_NS, ENVIRONMENT_KEYS
from otel_expansion.backend.store import open_readonly
from otel_expansion.otlp import exponential
from otel_expansion.otlp.exponential import Accumulator, Buckets
from otel_expansion.sdk import signals

__all__ = ["ENVIRONMENT_KEYS", "STARTUP_METRICS", "Histogram", "build_report", "render_report", "report_from"]

UNKNOWN = "(unknown)"
DURATION = signals.DURATION
ERRORS = signals.ERRORS
HANDLED = signals.HANDLED
FEATURES = signals.FEATURE_USAGE
ACTIVITY = signals.ACTIVITY
EXPORT_DURATION = signals.EXPORT_DURATION
STARTUP_METRICS = (signals.STARTUP_TIME, "cli.startup.duration", "process.startup.duration")
"""Histograms of process start-up time (process start to the command's start), whichever name is sent."""
SESSION_IDLE_NS = 30 * 60 * 10**9
"""A session with no command for this long is over (the SDK's rule); newer ones count as open."""
_HEALTH_SUMS = (signals.EXPORT_ATTEMPTS, signals.EXPORT_FAILURES, signals.SPOOL_DROPPED)
_MAX_FILLED_DAYS = 400
_EPOCH = date(1970, 1, 1)


@dataclass(slots=True)
class Histogram:
    """Merged histogram: bucket counts keyed by (lower, upper) edges, infinite edges kept open."""

    buckets: dict[tuple[float, float], int] = field(default_factory=dict)
    exp: Accumulator | None = None  # base-2 exponential buckets (durations since 0.3)
    _merged: Buckets | None = None  # exp's result, once all rows are in
    count: int = 0
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    def add(
        self,
        bounds: list[float],
        counts: list[int],
        count: int,
        total: float | None,
        minimum: float | None,
        maximum: float | None,
    ) -> None:
        edges = [-math.inf, *bounds, math.inf]
        for i, bucket_count in enumerate(counts[: len(edges) - 1]):
            if bucket_count:
                key = (edges[i], edges[i + 1])
                self.buckets[key] = self.buckets.get(key, 0) + bucket_count
        self.count += count
        self.sum += total or 0.0
        if minimum is not None:
            self.min = min(self.min, minimum)
        if maximum is not None:
            self.max = max(self.max, maximum)

    def add_exponential(self, b: Buckets) -> None:
        if self.exp is None:
            self.exp = Accumulator()
        self.exp.add(b)
        self._merged = None

    def quantile(self, q: float) -> float | None:
        """Estimate the q-quantile (0 < q < 1); None when there is nothing to estimate from.

        Exponential buckets alone: the nearest-rank quantile within exponential.relative_error(scale) (<= 4.4%
        for durations up to 1e6 times apart), clamped to [min, max]. Mixed with explicit buckets (data stored
        before 0.3 in the same range), both are read as buckets with counts spread evenly, as before.
        """
        lo = self.min if math.isfinite(self.min) else None
        hi = self.max if math.isfinite(self.max) else None
        buckets = self.buckets
        if self.exp is not None:
            if self._merged is None:
                self._merged = self.exp.result()
            merged = self._merged
            if not buckets:
                return exponential.quantile(merged, q, lo, hi)
            buckets = dict(buckets)
            for lower, upper, n in _exponential_segments(merged):
                buckets[(lower, upper)] = buckets.get((lower, upper), 0) + n
        segments: list[tuple[float, float, int]] = []
        for (lower, upper), n in buckets.items():
            if lower == -math.inf:
                lower = lo if lo is not None and lo <= upper else min(0.0, upper)
            if upper == math.inf:
                upper = hi if hi is not None and hi >= lower else lower
            segments.append((lower, upper, n))
        total = sum(n for _, _, n in segments)
        if total <= 0:
            return None
        rank = q * total
        points = sorted({edge for a, b, _ in segments for edge in (a, b)})
        previous_x, previous_f = points[0], 0.0
        for x in points:
            below = _cdf(segments, x, inclusive=False)
            if below >= rank and x > previous_x:
                estimate = previous_x + (x - previous_x) * (rank - previous_f) / (below - previous_f)
                break
            at = _cdf(segments, x, inclusive=True)
            if at >= rank:
                estimate = x
                break
            previous_x, previous_f = x, at
        else:
            estimate = points[-1]
        if lo is not None:
            estimate = max(estimate, lo)
        if hi is not None:
            estimate = min(estimate, hi)
        return estimate

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """:meth:`quantile` of each of ``qs``; exponential buckets alone are read in one pass."""
        if self.exp is not None and not self.buckets:
            if self._merged is None:
                self._merged = self.exp.result()
            return exponential.quantiles(self._merged, qs, self.min if math.isfinite(self.min) else None,
                                         self.max if math.isfinite(self.max) else None)
        return [self.quantile(q) for q in qs]

    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None


def _exponential_segments(b: Buckets) -> list[tuple[float, float, int]]:
    out = [(*exponential.bucket_bounds(b.offset + i, b.scale), n) for i, n in enumerate(b.counts) if n]
    if b.zero_count:
        out.append((0.0, 0.0, b.zero_count))
    for i, n in enumerate(b.negative_counts):
        if n:
            lower, upper = exponential.bucket_bounds(b.negative_offset + i, b.scale)
            out.append((-upper, -lower, n))
    return out


def _hists(
    engine: Engine, f: Filter, metrics: Sequence[str], group: Sequence[str], command: str | None = None
) -> dict[tuple[Any, ...], Histogram]:
    """Per group: explicit buckets (older data), exponential buckets and count/sum/min/max, merged
    (``command``: that command's points only)."""
    width = len(group)
    if command is None:  # engines that predate the command keyword keep working
        out = _histograms(engine.buckets(f, metrics, group), engine.histogram_stats(f, metrics, group), width)
        exp = engine.exponential(f, metrics, group)
    else:
        out = _histograms(engine.buckets(f, metrics, group, command=command),
                          engine.histogram_stats(f, metrics, group, command=command), width)
        exp = engine.exponential(f, metrics, group, command=command)
    for row in exp:
        out[tuple(row[:width])].add_exponential(row[width])
    return out


def _cdf(segments: list[tuple[float, float, int]], x: float, *, inclusive: bool) -> float:
    """Counts at or below x, each bucket's count spread evenly over (lower, upper]."""
    total = 0.0
    for lower, upper, n in segments:
        if upper == lower:
            if x > upper or (inclusive and x == upper):
                total += n
        elif x >= upper:
            total += n
        elif x > lower:
            total += n * (x - lower) / (upper - lower)
    return total


def _histograms(
    bucket_rows: Iterable[tuple[Any, ...]], stat_rows: Iterable[tuple[Any, ...]], width: int
) -> dict[tuple[Any, ...], Histogram]:
    """Merge bucket rows ``(*key, lo, hi, n)`` and stat rows ``(*key, count, sum, min, max)`` per key."""
    out: dict[tuple[Any, ...], Histogram] = defaultdict(Histogram)
    for row in bucket_rows:
        key, (lower, upper, n) = tuple(row[:width]), row[width:]
        if n:
            h = out[key]
            edge = (float(lower), float(upper))
            h.buckets[edge] = h.buckets.get(edge, 0) + int(n)
    for row in stat_rows:
        key, (count, total, minimum, maximum) = tuple(row[:width]), row[width:]
        h = out[key]
        h.count += int(count or 0)
        h.sum += float(total or 0.0)
        if minimum is not None and int(count or 0):
            h.min = min(h.min, float(minimum))
        if maximum is not None and int(count or 0):
            h.max = max(h.max, float(maximum))
    return out


def _quantiles(h: Histogram | None) -> dict[str, float | int | None]:
    """p50/p95/p99 in seconds and ``samples``: how many durations they were read from."""
    if h is None:
        return {"p50_s": None, "p95_s": None, "p99_s": None, "samples": 0}
    p50, p95, p99 = h.quantiles((0.5, 0.95, 0.99))
    return {"p50_s": _round(p50), "p95_s": _round(p95), "p99_s": _round(p99), "samples": h.count}


def _round(value: float | None) -> float | None:
    """Twelve significant digits: both engines sum floats in different orders."""
    return None if value is None else float(f"{value:.12g}")


def _day_iso(day: int) -> str:
    return (_EPOCH + timedelta(days=int(day))).isoformat()


def _week_iso(week: int) -> str:
    return (_EPOCH + timedelta(days=int(week) * 7 - 3)).isoformat()


def _ratio(part: float, whole: float) -> float | None:
    return _round(part / whole) if whole else None


def _label(value: Any) -> str:
    return UNKNOWN if value in (None, "") else str(value)


def _ranked(counts: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _number(value: float | None) -> float | int:
    value = float(value or 0.0)
    return int(value) if value.is_integer() else _round(value) or 0.0


def build_report(db_path: Path, since_ns: int | None = None, **filters: Any) -> dict[str, Any]:
    """The report from the embedded store at ``db_path`` (see :func:`report_from`)."""
    engine = SQLiteEngine(open_readonly(db_path))
    try:
        return report_from(engine, Filter.from_ns(since_ns=since_ns, **filters))
    finally:
        engine.close()


def report_from(engine: Engine, f: Filter, now_ns: int | None = None) -> dict[str, Any]:
    """Everything the terminal report and the dashboard show; each section is one engine query."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    commands_rows = engine.invocations(f, ["command"])
    total = sum(r[1] for r in commands_rows)
    errors = sum(r[2] for r in commands_rows)
    duration_metric = [DURATION]
    by_command = _hists(engine, f, duration_metric, ["command"])
    overall = _hists(engine, f, duration_metric, [])
    per_day = {r[0]: (r[1], r[2]) for r in engine.invocations(f, ["day"])}
    last_day = max(per_day, default=None)
    trend: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    if last_day is not None:
        window = replace(f, since_day=max(last_day - 13, f.since_day if f.since_day is not None else last_day - 13))
        for command, day, runs, _ in engine.invocations(window, ["command", "day"]):
            if day > last_day - 7:
                trend[command][0] += runs
            elif day > last_day - 14:
                trend[command][1] += runs
    commands = []
    names = {r[0] for r in commands_rows} | {k[0] for k in by_command}
    counts = {r[0]: (r[1], r[2]) for r in commands_rows}
    for command in sorted(names, key=lambda c: (-counts.get(c, (0.0, 0.0))[0], c)):
        runs, failed = counts.get(command, (0.0, 0.0))
        recent, previous = trend.get(command, (0.0, 0.0))
        commands.append(
            {
                "command": _label(command),
                "invocations": _number(runs),
                "errors": _number(failed),
                "error_rate": _ratio(failed, runs),
                **_quantiles(by_command.get((command,))),
                "last_7_days": _number(recent),
                "previous_7_days": _number(previous),
            }
        )
    sessions = _sessions(engine, f, now_ns)
    handled = {_label(r[0]): r[1] for r in engine.metric_sum(f, [HANDLED], ["error_type"])}
    unhandled_rows = engine.metric_sum(f, [ERRORS], ["error_type", "command"])
    unhandled: dict[str, float] = defaultdict(float)
    error_commands: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for error_type, command, n in unhandled_rows:
        unhandled[_label(error_type)] += n
        error_commands[_label(error_type)][_label(command)] += n
    errors_by_type = [
        {
            "error_type": error_type,
            "count": _number(count),
            "commands": [{"command": c, "count": _number(n)} for c, n in _ranked(error_commands[error_type])[:5]],
        }
        for error_type, count in _ranked(unhandled)
    ]
    report: dict[str, Any] = {
        "generated_ns": now_ns,
        "filter": {
            "service": f.service,
            "version": f.version,
            "since": None if f.since_day is None else _day_iso(f.since_day),
            "until": None if f.until_day is None else _day_iso(f.until_day),
        },
        "apps": [
            {
                "service": _label(s),
                "version": _label(v),
                "invocations": _number(n),
                "errors": _number(e),
                "first_day": _day_iso(first),
                "last_day": _day_iso(last),
            }
            for s, v, n, e, first, last in sorted(engine.apps(f), key=lambda r: (str(r[0]), str(r[1])))
        ],
        "catalog": [{"service": _label(s), "version": _label(v)} for s, v in engine.catalog()],
        "totals": {
            "invocations": _number(total),
            "errors": _number(errors),
            "error_rate": _ratio(errors, total),
            "installations": engine.installations(f),
            "sessions": sessions["count"],
            "open_sessions": sessions["open"],
            **_quantiles(overall.get(())),
        },
        "commands": commands,
        "usage_by_day": _usage_by_day(per_day),
        "active_installations": {
            "daily": [{"day": _day_iso(d), "installations": int(n)} for d, n in sorted(engine.active(f, "day"))],
            "weekly": [{"week": _week_iso(w), "installations": int(n)} for w, n in sorted(engine.active(f, "week"))],
        },
        "versions": _versions(engine, f),
        "errors": {
            "unhandled": _number(sum(unhandled.values())),
            "handled": _number(sum(handled.values())),
            "by_type": errors_by_type,
            "handled_by_type": [{"error_type": t, "count": _number(n)} for t, n in _ranked(handled)],
            "by_command_version": [
                {
                    "command": _label(c),
                    "version": _label(v),
                    "invocations": _number(n),
                    "errors": _number(e),
                    "error_rate": _ratio(e, n),
                }
                for c, v, n, e in sorted(
                    engine.invocations(f, ["command", "version"]), key=lambda r: (-r[3], -r[2], str(r[0]), str(r[1]))
                )
                if e
            ],
        },
        "errors_by_type": errors_by_type,  # kept from the first report shape (same as errors.by_type)
        "error_groups": error_groups(engine, f),  # by stack signature, with versions (error_groups.py)
        "startup": _startup(engine, f),
        "sessions": sessions,
        "environment": _environment(engine, f, total),
        "features": _features(engine, f),
        "activity": _activity(engine.metric_sum(f, [ACTIVITY], ["label"])),
        "health": _health(engine, f),
        "limits": [{"what": w, "count": int(n)} for w, n in sorted(engine.limits(f), key=lambda r: (-r[1], r[0]))],
        "stored": engine.stored(),
    }
    report["comparison"] = _comparison(engine, f, now_ns, report)
    return report


def _versions(engine: Engine, f: Filter) -> dict[str, Any]:
    """Per app and version: two apps' "1.0.0" are two versions."""
    rows = engine.invocations(f, ["service", "version"])
    metric = [DURATION]
    hist = _hists(engine, f, metric, ["service", "version"])
    return {
        "by_version": [
            {
                "service": _label(s),
                "version": _label(v),
                "invocations": _number(n),
                "errors": _number(e),
                "error_rate": _ratio(e, n),
                **_quantiles(hist.get((s, v))),
            }
            for s, v, n, e in sorted(rows, key=lambda r: (-r[2], str(r[0]), str(r[1])))
        ],
        "adoption": [
            {"day": _day_iso(d), "service": _label(s), "version": _label(v), "invocations": _number(n)}
            for d, s, v, n, _ in sorted(
                engine.invocations(f, ["day", "service", "version"]), key=lambda r: (r[0], str(r[1]), str(r[2]))
            )
        ],
    }


def _startup(engine: Engine, f: Filter) -> dict[str, Any]:
    metrics = list(STARTUP_METRICS)
    overall = _hists(engine, f, metrics, []).get(())
    by_version = _hists(engine, f, metrics, ["service", "version"])
    return {
        "count": overall.count if overall else 0,
        **_quantiles(overall),
        "by_version": [
            {"service": _label(k[0]), "version": _label(k[1]), "count": h.count, **_quantiles(h)}
            for k, h in sorted(by_version.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))
        ],
    }


def previous_period(f: Filter, now_ns: int) -> Filter | None:
    """The same filter over the days just before its range, as many of them (None without a first day).

    A range open at its end ends today (``days=N`` is today and the N - 1 UTC days before it), so the
    previous period of ``days=N`` is the N whole UTC days before those.
    """
    if f.since_day is None:
        return None
    last = f.until_day if f.until_day is not None else max(now_ns // DAY_NS, f.since_day)
    days = last - f.since_day + 1
    if days <= 0:
        return None
    return replace(f, since_day=f.since_day - days, until_day=f.since_day - 1)


def _delta(current: float | None, previous: float | None) -> dict[str, Any]:
    """A figure now and in the previous period: the difference and the difference relative to before."""
    if current is None or previous is None:
        return {"current": current, "previous": previous, "delta": None, "delta_pct": None}
    return {"current": current, "previous": previous, "delta": _round(current - previous),
            "delta_pct": _round((current - previous) / previous) if previous else None}


def _comparison(engine: Engine, f: Filter, now_ns: int, report: dict[str, Any]) -> dict[str, Any] | None:
    """The report's headline figures and per-command usage and durations against the previous period.

    The previous period is :func:`previous_period` with every other filter kept; its figures come from the
    same engine questions as the report's own (the current figures are the report's, not recomputed).
    """
    before = previous_period(f, now_ns)
    if before is None or before.since_day is None or before.until_day is None:
        return None
    rows = {_label(r[0]): (r[1], r[2]) for r in engine.invocations(before, ["command"])}
    by_command: dict[str, Histogram] = {_label(k[0]): h for k, h in _hists(engine, before, [DURATION],
                                                                            ["command"]).items()}
    overall = _hists(engine, before, [DURATION], []).get(())
    runs = sum(n for n, _ in rows.values())
    failed = sum(e for _, e in rows.values())
    totals = report["totals"]
    earlier = {"invocations": _number(runs), "errors": _number(failed), "error_rate": _ratio(failed, runs),
               "installations": engine.installations(before), **_quantiles(overall)}
    current = {c["command"]: c for c in report["commands"]}
    commands = []
    for name in sorted(set(current) | set(rows) | set(by_command),
                       key=lambda c: (-(current[c]["invocations"] if c in current else 0),
                                      -rows.get(c, (0.0, 0.0))[0], c)):
        now = current.get(name) or {"invocations": 0, "errors": 0, "error_rate": None, **_quantiles(None)}
        n, e = rows.get(name, (0.0, 0.0))
        then = {"invocations": _number(n), "errors": _number(e), "error_rate": _ratio(e, n),
                **_quantiles(by_command.get(name))}
        commands.append({"command": name, **{key: _delta(now[key], then[key]) for key in _COMPARED},
                         "samples": _delta(now["samples"], then["samples"])})
    return {
        "since": _day_iso(before.since_day),
        "until": _day_iso(before.until_day),
        "days": before.until_day - before.since_day + 1,
        "totals": {key: _delta(totals[key], earlier[key]) for key in (*_COMPARED, "installations", "samples")},
        "commands": commands,
    }


_COMPARED = ("invocations", "errors", "error_rate", "p50_s", "p95_s")
"""Figures compared with the previous period (per command and in total; installations in total only)."""


def _sessions(engine: Engine, f: Filter, now_ns: int) -> dict[str, Any]:
    """Exact statistics of per-session values (nearest rank): never above the longest or below the shortest."""
    stats = {row[0]: row[1:] for row in engine.session_stats(f, (0.5, 0.95))}
    length = stats.get("length_s")
    commands = stats.get("commands")

    def pick(row: tuple[Any, ...] | None, i: int) -> float | None:
        return None if row is None else _round(float(row[i]))

    return {
        "count": int(length[0]) if length else 0,
        "open": engine.open_sessions(f, now_ns - SESSION_IDLE_NS, now_ns),
        "min_length_s": pick(length, 1),
        "median_length_s": pick(length, 3),
        "p95_length_s": pick(length, 4),
        "max_length_s": pick(length, 2),
        "min_commands": pick(commands, 1),
        "median_commands": pick(commands, 3),
        "p95_commands": pick(commands, 4),
        "max_commands": pick(commands, 2),
    }


def _usage_by_day(per_day: dict[int, tuple[float, float]]) -> list[dict[str, Any]]:
    if not per_day:
        return []
    first, last = min(per_day), max(per_day)
    days = range(first, last + 1) if last - first < _MAX_FILLED_DAYS else sorted(per_day)
    return [
        {
            "day": _day_iso(day),
            "invocations": _number(per_day[day][0]) if day in per_day else 0,
            "errors": _number(per_day[day][1]) if day in per_day else 0,
        }
        for day in days
    ]


def _environment(engine: Engine, f: Filter, total: float) -> dict[str, list[dict[str, Any]]]:
    weights: dict[str, dict[str, float]] = {key: defaultdict(float) for key in ENVIRONMENT_KEYS}
    for key, value, n in engine.environment(f):
        if key in weights:
            weights[key][_label(value)] += n
    return {
        key: [
            {"value": value, "invocations": _number(n), "share": _ratio(n, total)}
            for value, n in _ranked(weights[key])
        ]
        for key in ENVIRONMENT_KEYS
    }


def _features(engine: Engine, f: Filter) -> list[dict[str, Any]]:
    rows = engine.metric_sum(f, [FEATURES], ["label", "day"])
    totals: dict[str, float] = defaultdict(float)
    per_day: dict[str, dict[int, float]] = defaultdict(dict)
    for label, day, n in rows:
        totals[_label(label)] += n
        per_day[_label(label)][day] = per_day[_label(label)].get(day, 0.0) + n
    last = max((r[1] for r in rows), default=0)
    return [
        {
            "feature": name,
            "count": _number(n),
            "last_7_days": _number(sum(v for d, v in per_day[name].items() if d > last - 7)),
            "previous_7_days": _number(sum(v for d, v in per_day[name].items() if last - 14 < d <= last - 7)),
        }
        for name, n in _ranked(totals)
    ]


def _activity(rows: list[tuple[Any, ...]]) -> list[float | int]:
    if not rows:
        return []
    hours = [0.0] * 168
    for label, n in rows:
        try:
            hour = int(label)
        except (TypeError, ValueError):
            continue
        if 0 <= hour < 168:
            hours[hour] += n
    return [_number(n) for n in hours]


def _health(engine: Engine, f: Filter) -> dict[str, Any]:
    sums = {(m, label): n for m, label, n in engine.metric_sum(f, list(_HEALTH_SUMS), ["metric", "label"])}
    attempts = sum(n for (m, _), n in sums.items() if m == signals.EXPORT_ATTEMPTS)
    failures = sum(n for (m, _), n in sums.items() if m == signals.EXPORT_FAILURES)
    dropped: dict[str, float] = defaultdict(float)
    for (m, label), n in sums.items():
        if m == signals.SPOOL_DROPPED:
            dropped[_label(label)] += n
    metric = [EXPORT_DURATION]
    export = _hists(engine, f, metric, []).get(())
    return {
        "export_attempts": _number(attempts),
        "export_failures": _number(failures),
        "export_failure_rate": _ratio(failures, attempts),
        "export_duration_p50_s": _round(export.quantile(0.5)) if export else None,
        "export_duration_p95_s": _round(export.quantile(0.95)) if export else None,
        "spool_dropped": _number(sum(dropped.values())),
        "spool_dropped_by_reason": [{"reason": r, "count": _number(n)} for r, n in _ranked(dropped)],
        "metrics": [
            {"name": name, "kind": kind, "value": _number(value), **_meaning(str(name), str(kind))}
            for name, kind, value in sorted(engine.metric_totals(f, "otel_expansion."))
        ],
    }


_UNIT_WORDS = {"{request}": "requests", "{span}": "spans", "{item}": "items", "{command}": "commands",
               "{run}": "runs", "{record}": "records"}


def _meaning(name: str, kind: str) -> dict[str, str]:
    """What a self-health figure is (its declared description) and what its number counts: a counter's
    total in its unit, a histogram's number of measurements (its values are in ``unit``)."""
    declared = {m.name: m for m in signals.METRICS}.get(name)
    if declared is None:
        return {"meaning": name, "unit": "measurements" if kind == "histogram" else ""}
    meaning = declared.description.split(" (self-health)")[0].rstrip(".")
    if kind == "histogram":
        return {"meaning": meaning, "unit": "measurements"}
    return {"meaning": meaning, "unit": _UNIT_WORDS.get(declared.unit, declared.unit.strip("{}"))}


# ---------------------------------------------------------------------------------------------- render


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if 0 < seconds < 0.001:  # a 22 us command is not "0 ms"
        return f"{seconds * 1e6:.0f} us"
    if seconds < 0.0995:  # three significant digits, as the distribution line prints them (10.6 ms, not 11)
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _more(rows: Sequence[Any], shown: int) -> list[str]:
    """A table cut to ``shown`` rows says so (the JSON output and the dashboard hold every row)."""
    return [f"  ({shown} of {len(rows)} shown; --json for all)"] if len(rows) > shown else []


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f}%"


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _table(headers: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    """Aligned columns; ``align`` has one l/r per column (default: first left, the rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align, strict=False)
        ]
        return ("  " + "  ".join(padded)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


# Telemetry is untrusted input: escape sequences in a command name must not drive the reader's terminal.
_UNSAFE_FOR_TERMINALS = {c: "?" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0),
                                          *range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def _scope(report: dict[str, Any]) -> str:
    f = report["filter"]
    parts = [f["service"] or "all apps"]
    if f["version"]:
        parts.append(f"version {f['version']}")
    if f["since"] or f["until"]:
        parts.append(f"{f['since'] or 'start'} .. {f['until'] or 'today'} (UTC days)")
    else:
        parts.append("all time")
    return ", ".join(parts)


def _change(figure: dict[str, Any], show: Any, *, points: bool = False) -> str:
    """``now (+delta, +pct%)`` for a compared figure; a rate's delta is in percentage points."""
    if figure["current"] is None and figure["previous"] is None:
        return "-"
    text = show(figure["current"])
    if figure["delta"] is None:
        return f"{text} (was {show(figure['previous'])})"
    if points:
        delta = f"{figure['delta'] * 100:+.1f} pt"
    elif show is _duration:
        delta = ("+" if figure["delta"] >= 0 else "-") + _duration(abs(figure["delta"]))
    else:
        delta = f"{figure['delta']:+,.0f}" if float(figure["delta"]).is_integer() else f"{figure['delta']:+,.1f}"
    pct = "" if figure["delta_pct"] is None else f", {figure['delta_pct'] * 100:+.1f}%"
    return f"{text} ({delta}{pct})"


def _render_comparison(report: dict[str, Any]) -> list[str]:
    """The previous-period section: headline figures, then the commands that changed the most first."""
    comparison = report.get("comparison")
    if not comparison:
        return []
    t = comparison["totals"]
    out = [
        "",
        f"Compared with the previous {comparison['days']} days ({comparison['since']} .. {comparison['until']}):"
        f" invocations {_change(t['invocations'], _count)}, errors {_change(t['errors'], _count)},"
        f" error rate {_change(t['error_rate'], _percent, points=True)},"
        f" installations {_change(t['installations'], _count)},"
        f" p50 {_change(t['p50_s'], _duration)}, p95 {_change(t['p95_s'], _duration)}",
    ]
    commands = comparison["commands"]
    if commands:
        out += _table(
            ["command", "runs", "prev", "change", "error rate", "prev", "p50", "prev", "p95", "prev"],
            [
                [
                    c["command"],
                    _count(c["invocations"]["current"]),
                    _count(c["invocations"]["previous"]),
                    "-" if c["invocations"]["delta_pct"] is None else f"{c['invocations']['delta_pct'] * 100:+.1f}%",
                    _percent(c["error_rate"]["current"]),
                    _percent(c["error_rate"]["previous"]),
                    _duration(c["p50_s"]["current"]),
                    _duration(c["p50_s"]["previous"]),
                    _duration(c["p95_s"]["current"]),
                    _duration(c["p95_s"]["previous"]),
                ]
                for c in commands[:20]
            ],
        )
        out += _more(commands, 20)
    return out


def terminal_safe(value: Any) -> Any:
    """``value`` with every string in it (dict keys and values, list items, nested) made printable: each
    character Python does not call printable (controls, ``\\r``, ``\\n``, ``\\t``, escape sequences, bidi
    overrides and isolates, line separators) becomes ``?``. Stored names are untrusted input: cleaned per
    cell, before layout, one cannot add a line to the report, move the cursor or reorder what follows."""
    if isinstance(value, str):
        return value if value.isprintable() else "".join(c if c.isprintable() else "?" for c in value)
    if isinstance(value, dict):
        return {terminal_safe(k): terminal_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(terminal_safe(v) for v in value)
    return value


def render_report(report: dict[str, Any]) -> str:
    """The report as plain text for a terminal: aligned tables, no colour, no width assumptions."""
    report = terminal_safe(report)
    totals = report["totals"]
    out = [
        f"otel-expansion report ({_scope(report)})",
        "",
        f"Invocations {_count(totals['invocations'])}  errors {_count(totals['errors'])}"
        f" ({_percent(totals['error_rate'])})  installations {totals['installations']}"
        f"  sessions {totals['sessions']} ({totals['open_sessions']} open)"
        f"  duration p50 {_duration(totals['p50_s'])} p95 {_duration(totals['p95_s'])}"
        f" p99 {_duration(totals['p99_s'])}",
    ]
    if len(report["apps"]) > 1 or (report["filter"]["service"] is None and report["apps"]):
        out += ["", "Apps and versions"]
        out += _table(
            ["app", "version", "runs", "errors", "first day", "last day"],
            [
                [a["service"], a["version"], _count(a["invocations"]), _count(a["errors"]), a["first_day"],
                 a["last_day"]]
                for a in report["apps"][:30]
            ],
            "llrrll",
        )
        out += _more(report["apps"], 30)
    commands = report["commands"]
    if commands:
        out += ["", "Top commands (trend: last 7 days vs the 7 before)"]
        out += _table(
            ["command", "runs", "errors", "error rate", "p50", "p95", "p99", "7d", "prev 7d"],
            [
                [
                    c["command"],
                    _count(c["invocations"]),
                    _count(c["errors"]),
                    _percent(c["error_rate"]),
                    _duration(c["p50_s"]),
                    _duration(c["p95_s"]),
                    _duration(c["p99_s"]),
                    _count(c["last_7_days"]),
                    _count(c["previous_7_days"]),
                ]
                for c in commands[:20]
            ],
        )
        out += _more(commands, 20)
    versions = report["versions"]["by_version"]
    if versions:
        out += ["", "Versions"]
        out += _table(
            ["app", "version", "runs", "errors", "error rate", "p50", "p95", "p99"],
            [
                [
                    v["service"],
                    v["version"],
                    _count(v["invocations"]),
                    _count(v["errors"]),
                    _percent(v["error_rate"]),
                    _duration(v["p50_s"]),
                    _duration(v["p95_s"]),
                    _duration(v["p99_s"]),
                ]
                for v in versions[:20]
            ],
            "llrrrrrr",
        )
        out += _more(versions, 20)
    days = report["usage_by_day"]
    if days:
        peak = max(d["invocations"] for d in days) or 1
        active = {a["day"]: a["installations"] for a in report["active_installations"]["daily"]}
        out += ["", "Usage by day (UTC)"]
        out += _table(
            ["day", "runs", "errors", "active installs", ""],
            [
                [
                    d["day"],
                    _count(d["invocations"]),
                    _count(d["errors"]),
                    str(active.get(d["day"], 0)),
                    "#" * round(30 * d["invocations"] / peak),
                ]
                for d in days[-31:]
            ],
            "lrrrl",
        )
        out += _more(days, 31)
    weekly = report["active_installations"]["weekly"]
    if weekly:
        out.append("Active installations per week: " + ", ".join(
            f"{w['week']} {w['installations']}" for w in weekly[-8:]))
    errors = report["errors"]
    if errors["by_type"] or errors["handled_by_type"]:
        out += ["", f"Errors: {_count(errors['unhandled'])} failed commands, {_count(errors['handled'])} handled"
                " exceptions (record_exception)"]
        out += _table(
            ["error.type", "failed", "top commands"],
            [
                [e["error_type"], _count(e["count"]), ", ".join(c["command"] for c in e["commands"][:3])]
                for e in errors["by_type"][:15]
            ],
            "lrl",
        )
        out += _more(errors["by_type"], 15)
        if errors["handled_by_type"]:
            out += _table(
                ["handled error.type", "count"],
                [[e["error_type"], _count(e["count"])] for e in errors["handled_by_type"][:10]],
            )
            out += _more(errors["handled_by_type"], 10)
    if errors["by_command_version"]:
        out += ["", "Error rate by command and version"]
        out += _table(
            ["command", "version", "runs", "errors", "error rate"],
            [
                [e["command"], e["version"], _count(e["invocations"]), _count(e["errors"]), _percent(e["error_rate"])]
                for e in errors["by_command_version"][:15]
            ],
            "llrrr",
        )
        out += _more(errors["by_command_version"], 15)
    out += render_error_groups(report["error_groups"], _table, _count)
    startup = report["startup"]
    if startup["count"]:
        out += [
            "",
            f"Start-up time: {_count(startup['count'])} {'run' if startup['count'] == 1 else 'runs'},"
            f" p50 {_duration(startup['p50_s'])},"
            f" p95 {_duration(startup['p95_s'])}, p99 {_duration(startup['p99_s'])}",
        ]
    sessions = report["sessions"]
    if sessions["count"]:
        out += [
            "",
            f"Sessions: {sessions['count']} ({sessions['open']} open), median length"
            f" {_duration(sessions['median_length_s'])} (p95 {_duration(sessions['p95_length_s'])}),"
            f" median commands {_count(sessions['median_commands'])}",
        ]
    out += _render_comparison(report)
    environment = report["environment"]
    if any(environment.values()):
        out += ["", "Environment (share of invocations)"]
        for key, values in environment.items():
            shown = ", ".join(f"{v['value']} {_percent(v['share'])}" for v in values[:6])
            out.append(f"  {key}: {shown or '-'}")
    if report["features"]:
        out += ["", "Feature usage"]
        out += _table(
            ["feature", "count", "7d", "prev 7d"],
            [
                [f["feature"], _count(f["count"]), _count(f["last_7_days"]), _count(f["previous_7_days"])]
                for f in report["features"][:20]
            ],
        )
        out += _more(report["features"], 20)
    health = report["health"]
    out += [
        "",
        f"Self-health: export attempts {_count(health['export_attempts'])}, failures"
        f" {_count(health['export_failures'])} ({_percent(health['export_failure_rate'])}), export latency p50"
        f" {_duration(health['export_duration_p50_s'])} p95 {_duration(health['export_duration_p95_s'])},"
        f" spool dropped {_count(health['spool_dropped'])}"
        + (
            ""
            if not health["spool_dropped_by_reason"]
            else " ("
            + ", ".join(f"{d['reason']} {_count(d['count'])}" for d in health["spool_dropped_by_reason"])
            + ")"
        ),
    ]
    if report["limits"]:
        out.append("Ingest limits applied: " + ", ".join(f"{x['what']} {x['count']}" for x in report["limits"]))
    stored = report["stored"]
    out.append(
        f"Stored in this database (every app, all time, whatever the filter): {_count(stored['spans'])} spans,"
        f" {_count(stored['metric_points'])} metric points, {_count(stored['logs'])} logs,"
        f" {_count(stored['resources'])} resources"
    )
    return ("\n".join(out) + "\n").translate(_UNSAFE_FOR_TERMINALS)
