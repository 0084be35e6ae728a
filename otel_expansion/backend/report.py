"""The questions a CLI team asks of its telemetry, answered from the store as one JSON-ready dict.

Metrics are the source of truth for counts (they exist at every collection level); spans add distinct
session ids. Points are summed as deltas: the SDK sends delta temporality, and cumulative points are
turned into deltas per series (resource, name, attributes) by subtracting the previous point with the
same start time; a new start time or a decrease is a reset and counts in full. Min and max of a
cumulative histogram cannot be differenced, so they stay the cumulative extremes (a wider range).
Each point is dated by its end time (UTC days); the SDK merges runs into one point per send, so
per-day usage is as fine as the send interval.

Percentiles come from merged histogram buckets: every bucket is read as counts spread evenly over its
range, so with one bucket layout this is the usual linear interpolation inside the bucket holding the
rank, and points with different layouts still merge. Open-ended first/last buckets are closed with the
observed min/max, and estimates are clamped to [min, max].
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from otel_expansion.backend.store import connect

__all__ = ["ENVIRONMENT_KEYS", "Histogram", "build_report", "render_report"]

ENVIRONMENT_KEYS = ("os.type", "host.arch", "process.runtime.version", "service.version", "ci.detected")
UNKNOWN = "(unknown)"
_MAX_FILLED_DAYS = 400


@dataclass(slots=True)
class Histogram:
    """Merged histogram: bucket counts keyed by (lower, upper) edges, infinite edges kept open."""

    buckets: dict[tuple[float, float], int] = field(default_factory=dict)
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

    def quantile(self, q: float) -> float | None:
        """Estimate the q-quantile (0 < q < 1); None when there is nothing to estimate from."""
        lo = self.min if math.isfinite(self.min) else None
        hi = self.max if math.isfinite(self.max) else None
        segments: list[tuple[float, float, int]] = []
        for (lower, upper), n in self.buckets.items():
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

    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None


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


@dataclass(slots=True)
class _Point:
    resource_id: int
    name: str
    kind: str
    attributes: dict[str, Any]
    command: str | None
    outcome: str | None
    error_type: str | None
    end_ns: int
    value: float
    count: int
    sum: float | None
    min: float | None
    max: float | None
    bounds: list[float]
    buckets: list[int]


_POINT_QUERY = """
SELECT resource_id, name, kind, temporality, attributes, command, outcome, error_type, start_ns, end_ns,
       value, count, sum, min, max, bounds, bucket_counts
FROM metric_points
WHERE kind IN ('sum', 'histogram', 'gauge')
  AND (temporality = 'cumulative' OR ?1 IS NULL OR end_ns >= ?1)
ORDER BY end_ns, id
"""


def _load_points(conn: Any, since_ns: int | None) -> list[_Point]:
    out: list[_Point] = []
    previous: dict[tuple[int, str, str], tuple[int, _Point]] = {}
    for row in conn.execute(_POINT_QUERY, (since_ns,)):
        (
            rid,
            name,
            kind,
            temporality,
            attrs,
            command,
            outcome,
            error_type,
            start_ns,
            end_ns,
            value,
            count,
            total,
            minimum,
            maximum,
            bounds,
            buckets,
        ) = row
        point = _Point(
            rid,
            name,
            kind,
            json.loads(attrs),
            command,
            outcome,
            error_type,
            end_ns,
            value or 0.0,
            count or 0,
            total,
            minimum,
            maximum,
            json.loads(bounds) if bounds else [],
            json.loads(buckets) if buckets else [],
        )
        if temporality == "cumulative" and kind != "gauge":
            key = (rid, name, attrs)
            last = previous.get(key)
            previous[key] = (start_ns, point)
            if last is not None and last[0] == start_ns:
                point = _difference(point, last[1])
        if since_ns is None or end_ns >= since_ns:
            out.append(point)
    return out


def _difference(current: _Point, last: _Point) -> _Point:
    """current - last for a cumulative series; the whole current point when the series was reset."""
    if current.kind == "sum":
        if current.value < last.value:
            return current
        return replace(current, value=current.value - last.value)
    if current.count < last.count or current.bounds != last.bounds:
        return current
    buckets = [a - b for a, b in zip(current.buckets, last.buckets, strict=False)]
    if any(n < 0 for n in buckets):
        return current
    total = None if current.sum is None or last.sum is None else current.sum - last.sum
    return replace(current, count=current.count - last.count, sum=total, buckets=buckets)


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _merge(points: Iterable[_Point]) -> Histogram:
    histogram = Histogram()
    for p in points:
        histogram.add(p.bounds, p.buckets, p.count, p.sum, p.min, p.max)
    return histogram


def _day(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).date().isoformat()


def _label(value: Any) -> str:
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ranked(counts: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def build_report(db_path: Path, since_ns: int | None = None) -> dict[str, Any]:
    """Everything the terminal report and the dashboard show, computed in one read of the store."""
    conn = connect(db_path)
    try:
        return _build(conn, since_ns)
    finally:
        conn.close()


def _build(conn: Any, since_ns: int | None) -> dict[str, Any]:
    points = _load_points(conn, since_ns)
    by_name: dict[str, list[_Point]] = defaultdict(list)
    for p in points:
        by_name[p.name].append(p)

    invocations = by_name.get("cli.command.invocations", [])
    total = sum(p.value for p in invocations)
    errors = sum(p.value for p in invocations if p.outcome == "error")
    durations = by_name.get("cli.command.duration", [])
    all_durations = _merge(durations)

    per_command: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    per_day: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    per_resource: dict[int, float] = defaultdict(float)
    for p in invocations:
        failed = p.value if p.outcome == "error" else 0.0
        command = p.command or UNKNOWN
        per_command[command][0] += p.value
        per_command[command][1] += failed
        per_day[_day(p.end_ns)][0] += p.value
        per_day[_day(p.end_ns)][1] += failed
        per_resource[p.resource_id] += p.value
    duration_by_command: dict[str, list[_Point]] = defaultdict(list)
    for p in durations:
        duration_by_command[p.command or UNKNOWN].append(p)
    commands = []
    names = set(per_command) | set(duration_by_command)
    for command in sorted(names, key=lambda c: (-per_command[c][0] if c in per_command else 0.0, c)):
        runs, failed = per_command.get(command, (0.0, 0.0))
        histogram = _merge(duration_by_command.get(command, []))
        commands.append(
            {
                "command": command,
                "invocations": _number(runs),
                "errors": _number(failed),
                "error_rate": _ratio(failed, runs),
                "p50_s": histogram.quantile(0.5),
                "p95_s": histogram.quantile(0.95),
            }
        )

    errors_by_type: dict[str, float] = defaultdict(float)
    error_commands: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for p in by_name.get("cli.command.errors", []):
        error_type = p.error_type or UNKNOWN
        errors_by_type[error_type] += p.value
        error_commands[error_type][p.command or UNKNOWN] += p.value

    session_durations = _merge(by_name.get("cli.session.duration", []))
    session_commands = _merge(by_name.get("cli.session.commands", []))
    window = (since_ns,)
    distinct_sessions = conn.execute(
        "SELECT COUNT(DISTINCT session_id) FROM spans WHERE session_id IS NOT NULL"
        " AND (?1 IS NULL OR start_ns >= ?1)",
        window,
    ).fetchone()[0]
    installations = conn.execute(
        "SELECT COUNT(DISTINCT installation_id) FROM resources WHERE installation_id IS NOT NULL AND id IN ("
        " SELECT resource_id FROM metric_points WHERE ?1 IS NULL OR end_ns >= ?1"
        " UNION SELECT resource_id FROM spans WHERE ?1 IS NULL OR start_ns >= ?1"
        " UNION SELECT resource_id FROM logs WHERE ?1 IS NULL OR time_ns >= ?1)",
        window,
    ).fetchone()[0]

    return {
        "generated_ns": time.time_ns(),
        "since_ns": since_ns,
        "totals": {
            "invocations": _number(total),
            "errors": _number(errors),
            "error_rate": _ratio(errors, total),
            "sessions": distinct_sessions,
            "installations": installations,
            "p50_s": all_durations.quantile(0.5),
            "p95_s": all_durations.quantile(0.95),
        },
        "commands": commands,
        "usage_by_day": _usage_by_day(per_day),
        "errors_by_type": [
            {
                "error_type": error_type,
                "count": _number(count),
                "commands": [
                    {"command": c, "count": _number(n)} for c, n in _ranked(error_commands[error_type])[:5]
                ],
            }
            for error_type, count in _ranked(errors_by_type)
        ],
        "sessions": {
            "count": session_durations.count,
            "distinct_ids": distinct_sessions,
            "median_duration_s": session_durations.quantile(0.5),
            "p95_duration_s": session_durations.quantile(0.95),
            "median_commands": session_commands.quantile(0.5),
            "mean_commands": session_commands.mean(),
        },
        "environment": _environment(conn, per_resource, total),
        "features": [
            {"feature": name, "count": _number(n)}
            for name, n in _ranked(_sum_by(by_name.get("cli.feature.usage", []), "feature.name"))
        ],
        "activity": _activity(by_name.get("cli.activity", [])),
        "health": _health(by_name),
        "stored": {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("resources", "spans", "metric_points", "logs")
        },
    }


def _sum_by(points: Iterable[_Point], attribute: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for p in points:
        out[_label(p.attributes.get(attribute))] += p.value
    return out


def _usage_by_day(per_day: dict[str, list[float]]) -> list[dict[str, Any]]:
    if not per_day:
        return []
    days = sorted(per_day)
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    if (last - first).days < _MAX_FILLED_DAYS:  # a continuous axis: days without use show as zero
        days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    return [
        {
            "day": day,
            "invocations": _number(per_day[day][0]) if day in per_day else 0,
            "errors": _number(per_day[day][1]) if day in per_day else 0,
        }
        for day in days
    ]


def _environment(conn: Any, per_resource: dict[int, float], total: float) -> dict[str, list[dict[str, Any]]]:
    weights: dict[str, dict[str, float]] = {key: defaultdict(float) for key in ENVIRONMENT_KEYS}
    stored = dict(conn.execute("SELECT id, attributes FROM resources"))
    for rid, runs in per_resource.items():
        attrs = json.loads(stored[rid]) if rid in stored else {}
        for key in ENVIRONMENT_KEYS:
            weights[key][_label(attrs.get(key))] += runs
    return {
        key: [
            {"value": value, "invocations": _number(n), "share": _ratio(n, total)}
            for value, n in _ranked(weights[key])
        ]
        for key in ENVIRONMENT_KEYS
    }


def _activity(points: list[_Point]) -> list[float | int]:
    if not points:
        return []
    hours = [0.0] * 168
    for p in points:
        hour = p.attributes.get("activity.hour_of_week")
        if isinstance(hour, int) and not isinstance(hour, bool) and 0 <= hour < 168:
            hours[hour] += p.value
    return [_number(n) for n in hours]


def _health(by_name: dict[str, list[_Point]]) -> dict[str, Any]:
    attempts = sum(p.value for p in by_name.get("otel_expansion.export.attempts", []))
    failures = sum(p.value for p in by_name.get("otel_expansion.export.failures", []))
    dropped = _sum_by(by_name.get("otel_expansion.spool.dropped", []), "reason")
    export_duration = _merge(by_name.get("otel_expansion.export.duration", []))
    metrics = []
    for name in sorted(n for n in by_name if n.startswith("otel_expansion.")):
        series = by_name[name]
        kind = series[-1].kind
        if kind == "histogram":
            value: float = sum(p.count for p in series)
        elif kind == "gauge":
            value = max(series, key=lambda p: p.end_ns).value
        else:
            value = sum(p.value for p in series)
        metrics.append({"name": name, "kind": kind, "value": _number(value)})
    return {
        "export_attempts": _number(attempts),
        "export_failures": _number(failures),
        "export_failure_rate": _ratio(failures, attempts),
        "export_duration_p50_s": export_duration.quantile(0.5),
        "export_duration_p95_s": export_duration.quantile(0.95),
        "spool_dropped": _number(sum(dropped.values())),
        "spool_dropped_by_reason": [{"reason": r, "count": _number(n)} for r, n in _ranked(dropped)],
        "metrics": metrics,
    }


# ---------------------------------------------------------------------------------------------- render


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


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


def render_report(report: dict[str, Any]) -> str:
    """The report as plain text for a terminal: aligned tables, no colour, no width assumptions."""
    totals = report["totals"]
    since = report.get("since_ns")
    scope = (
        "all time"
        if since is None
        else "since " + datetime.fromtimestamp(since / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    )
    out = [
        f"otel-expansion report ({scope})",
        "",
        f"Invocations {_count(totals['invocations'])}  errors {_count(totals['errors'])}"
        f" ({_percent(totals['error_rate'])})  sessions {totals['sessions']}"
        f"  installations {totals['installations']}"
        f"  duration p50 {_duration(totals['p50_s'])} p95 {_duration(totals['p95_s'])}",
    ]
    commands = report["commands"]
    if commands:
        out += ["", "Top commands"]
        out += _table(
            ["command", "runs", "errors", "error rate", "p50", "p95"],
            [
                [
                    c["command"],
                    _count(c["invocations"]),
                    _count(c["errors"]),
                    _percent(c["error_rate"]),
                    _duration(c["p50_s"]),
                    _duration(c["p95_s"]),
                ]
                for c in commands[:20]
            ],
        )
    days = report["usage_by_day"]
    if days:
        peak = max(d["invocations"] for d in days) or 1
        out += ["", "Usage by day (UTC)"]
        out += _table(
            ["day", "runs", "errors", ""],
            [
                [
                    d["day"],
                    _count(d["invocations"]),
                    _count(d["errors"]),
                    "#" * round(30 * d["invocations"] / peak),
                ]
                for d in days[-31:]
            ],
            "lrrl",
        )
    if report["errors_by_type"]:
        out += ["", "Errors by type"]
        out += _table(
            ["error.type", "count", "top commands"],
            [
                [e["error_type"], _count(e["count"]), ", ".join(c["command"] for c in e["commands"][:3])]
                for e in report["errors_by_type"][:15]
            ],
            "lrl",
        )
    sessions = report["sessions"]
    if sessions["count"] or sessions["distinct_ids"]:
        out += [
            "",
            f"Sessions: {sessions['count']} ended ({sessions['distinct_ids']} distinct ids seen),"
            f" median duration {_duration(sessions['median_duration_s'])},"
            f" median commands {_count(sessions['median_commands'])}",
        ]
    environment = report["environment"]
    if any(environment.values()):
        out += ["", "Environment (share of invocations)"]
        for key, values in environment.items():
            shown = ", ".join(f"{v['value']} {_percent(v['share'])}" for v in values[:6])
            out.append(f"  {key}: {shown or '-'}")
    if report["features"]:
        out += ["", "Feature usage"]
        out += _table(
            ["feature", "count"], [[f["feature"], _count(f["count"])] for f in report["features"][:20]]
        )
    health = report["health"]
    out += [
        "",
        f"Self-health: export attempts {_count(health['export_attempts'])}, failures"
        f" {_count(health['export_failures'])} ({_percent(health['export_failure_rate'])}), export p50"
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
    stored = report["stored"]
    out.append(
        f"Stored: {stored['spans']} spans, {stored['metric_points']} metric points,"
        f" {stored['logs']} logs, {stored['resources']} resources"
    )
    return ("\n".join(out) + "\n").translate(_UNSAFE_FOR_TERMINALS)
